"""Features of media files named one by one, from Python, without a corpus folder or DVC
(what :func:`pipeline.api.extract` calls).

How it works:

1. The files become a clip manifest the way the ``folder`` adapter makes one: their common
   folder is the corpus root, each file a clip whose id is its path relative to that folder
   (``alice/take 1.mp4`` -> ``alice_take_1``), with the transcript of a ``.txt``/``.srt``/
   ``.vtt`` file beside it if there is one; ingest probes and hashes each file, and a file it
   cannot read is a failure row, not an exception.
2. Each feature runs through the stages' own runner (:func:`pipeline.workflow.run_feature`)
   on that manifest, into the project layout under ``out``: ``manifests/<name>/clips.csv``,
   ``data/features/<name>/<feature>/`` and the failures, warnings and metrics files, with
   the per-clip cache at ``runner.cache_dir`` (relative paths under ``out``). So the same
   extractors, cache keys and failure rules apply as in a stage, a second call with the same
   files and parameters reuses every clip, and ``mer verify`` / ``mer report --root out``
   work on the result. Landmarks are computed on the faces shards, so asking for landmarks
   runs faces first.
3. :class:`Extraction` opens readers over the shards and lists the failures.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, Params, load_params, params_from_dict
from .corpora.folder import Folder
from .features.base import ExtractionError
from .manifest import Failure, read_failures
from .paths import Layout
from .store import ClipFeatures, FeatureReader


class _Files(Folder):
    """The ``folder`` adapter over a given list of files (relative to ``root``), no
    ``labels.csv``."""

    name = "folder"

    def __init__(self, root: Path, rel_paths: Sequence[str]) -> None:
        super().__init__(root, labels_csv="")
        self.rel_paths = list(rel_paths)

    def _files(self) -> Iterator[dict[str, str]]:
        yield from ({"path": rel} for rel in self.rel_paths)


def _params(params: Params | str | Path | Mapping[str, Any] | None) -> Params:
    if params is None:
        return params_from_dict({})
    if isinstance(params, Params):
        return params
    if isinstance(params, (str, Path)):
        return load_params(params)
    if isinstance(params, Mapping):
        return params_from_dict(dict(params))
    raise TypeError(f"params: a Params, a params.yaml path or a mapping, not {type(params)}")


def _order(features: Sequence[str]) -> list[str]:
    """The features to run, faces before landmarks (which reads its shards)."""
    from .features import get_extractor_class

    wanted = list(dict.fromkeys(features))
    if not wanted:
        raise ValueError("no features asked for")
    for f in wanted:
        get_extractor_class(f)  # an unknown name fails here, with the known ones
    if "landmarks" in wanted:
        if "faces" in wanted:
            wanted.remove("faces")
        wanted.insert(wanted.index("landmarks"), "faces")
    return wanted


@dataclass
class Extraction:
    """What :func:`extract_files` wrote under ``root`` (a project layout, see step 2)."""

    root: Path
    name: str
    features: tuple[str, ...]
    clip_ids: dict[str, str]  # each file as given -> its clip id
    failures: list[Failure] = field(default_factory=list)  # ingest's and each feature's

    @property
    def layout(self) -> Layout:
        return Layout(self.name, root=self.root)

    @property
    def manifest(self) -> Path:
        """The clip manifest (``clips.csv``) of the files."""
        return self.layout.clips_csv

    def feature_dir(self, feature: str) -> Path:
        return self.layout.features_dir(feature)

    def reader(self, feature: str) -> FeatureReader:
        """A reader over ``feature``'s shards (close it, or use it in a ``with`` block)."""
        return FeatureReader(self.feature_dir(feature))

    def clip_id(self, file_or_clip: str | Path) -> str:
        key = str(file_or_clip)
        if key in self.clip_ids:
            return self.clip_ids[key]
        if key in self.clip_ids.values():
            return key
        raise KeyError(f"{key}: not one of the files or clip ids of this extraction")

    def failure(self, file_or_clip: str | Path, feature: str) -> Failure | None:
        cid = self.clip_id(file_or_clip)
        for f in self.failures:
            if f.clip_id == cid and f.stage in (feature, "ingest"):
                return f
        return None

    def read(self, file_or_clip: str | Path, feature: str) -> ClipFeatures:
        """One file's features (:class:`ExtractionError` if it failed, with the reason)."""
        cid = self.clip_id(file_or_clip)
        why = self.failure(cid, feature)
        if why is not None:
            raise ExtractionError(f"{file_or_clip}: {why.stage}: {why.reason}")
        with self.reader(feature) as r:
            return r.read(cid)


def extract_files(
    files: Sequence[str | Path],
    features: Sequence[str],
    params: Params | str | Path | Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    name: str = "files",
    n_jobs: int | None = None,
    progress: bool = True,
) -> Extraction:
    """Extract ``features`` of ``files`` into ``out`` (see the module docstring)."""
    from .ingest import ingest
    from .manifest import write_failures, write_manifest
    from .workflow import run_feature

    paths = [Path(f).expanduser().absolute() for f in files]
    if not paths:
        raise ValueError("no files given")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    base = Path(os.path.commonpath([p.parent for p in paths]))
    rel = [p.relative_to(base).as_posix() for p in paths]
    adapter = _Files(base, rel)
    order = _order(features)
    p = _params(params)
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="mer-extract-"))
    root.mkdir(parents=True, exist_ok=True)
    runner = dataclasses.replace(
        p.runner, n_jobs=n_jobs or max(1, min(p.runner.n_jobs, len(paths)))
    )
    try:
        p = dataclasses.replace(
            p, runner=runner,
            corpus=dataclasses.replace(p.corpus, name=name, adapter="folder", root=str(base)),
        )
        p.corpus.validate("corpus")
    except ConfigError as e:
        raise ValueError(str(e)) from e
    lay = Layout(name, root=root)
    result = ingest(adapter)
    write_manifest(lay.clips_csv, result.entries)
    write_failures(lay.failures_csv("ingest"), result.failures)
    ids = {str(f): adapter_id for f, adapter_id in zip(files, _ids(rel), strict=True)}
    failures = list(result.failures)
    if result.entries:
        for feature in order:
            run_feature(p, feature, root, progress=progress)
            failures += read_failures(lay.failures_csv(feature))
    return Extraction(root, name, tuple(order), ids, failures)


def _ids(rel_paths: Sequence[str]) -> list[str]:
    from .corpora.folder import clip_id_for

    return [clip_id_for(r) for r in rel_paths]
