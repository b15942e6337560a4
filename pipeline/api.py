"""The stable Python API for other projects.

Everything here keeps its name and behaviour across minor versions; the file layout it reads
is specified in docs/FORMAT.md (schema version in every file; a newer schema is refused with a
reason rather than misread). Reading needs only the core install (numpy, h5py, pyyaml:
``pip install .`` in a checkout, or the wheel ``make wheel`` builds); importing this module
imports neither torch nor the extraction stack.

    from pipeline.api import open_features, read_clips, read_folds, iter_windows

    with open_features("data/features/sample/mel") as mel:
        for clip_id in mel.clip_ids:
            f = mel.read(clip_id)          # ClipFeatures: arrays, timestamps (s), valid
    clips = read_clips("manifests/sample/clips.csv")       # list of ManifestEntry
    folds = read_folds("manifests/sample/folds/actor_kfold.json")   # train/val/test ids
    for item in iter_windows({"mel": "data/features/sample/mel"}, {"mel": {"steps": 32}},
                             folds[0].train, window_seconds=2.0):
        x, mask = item["views"][0]["mel"]["x"], item["views"][0]["mel"]["mask"]

``iter_windows`` and ``WindowSet`` cut aligned windows of several modalities at the same times,
by the trainer's rules, as numpy arrays. ``WindowDataset`` is the torch ``Dataset`` the trainer
uses (the same windows as tensors); it needs the ``train`` extra and is
imported only when first used; :func:`window_dataset` builds one from a feature root, a clip
manifest and a fold, its targets from the manifest's labels:

    ds = window_dataset("data/features/sample", "manifests/sample/clips.csv",
                        folds[0], {"mel": {"steps": 32}}, part="train", window_seconds=2.0)
    ds[0]["clip_id"], ds[0]["target"], ds[0]["views"][0]["mel"]["x"]   # torch tensors

Features of media files without a corpus folder or DVC (the stages' extractors, cache and
failure rules; needs ``[extract,pipeline]``; see docs/api.md):

    run = extract(["a.mp4", "b.mp4"], ["mel", "faces"], out="feats")   # -> Extraction
    with run.reader("mel") as mel: ...                                   # FeatureReader
    arrays = extract("a.mp4", ["mel"])["mel"].arrays["mel"]              # one file: arrays
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .extras import MissingExtraError, needs
from .manifest import ManifestEntry, read_manifest
from .store import ClipFeatures, FeatureReader, ShardError
from .training.config import InputConfig
from .training.data import Fold
from .training.data import read_folds as _read_folds
from .training.windowset import DataError, WindowSet

if TYPE_CHECKING:
    from .file_extraction import Extraction
    from .training.dataset import WindowDataset


def open_features(feature_dir: str | Path) -> FeatureReader:
    """A reader over one feature directory (``data/features/<corpus>/<feature>``)."""
    return FeatureReader(feature_dir)


def read_clips(clips_csv: str | Path) -> list[ManifestEntry]:
    """The rows of a clip manifest."""
    return read_manifest(clips_csv)


def read_folds(fold_json: str | Path) -> list[Fold]:
    """The folds of a fold manifest, each with its train, val and test clip ids."""
    return _read_folds(Path(fold_json))


def input_config(spec: InputConfig | Mapping[str, Any]) -> InputConfig:
    """An :class:`InputConfig` from itself or a mapping of its fields (``array``, ``steps``,
    ``mode``: time | sequence | clip)."""
    if isinstance(spec, InputConfig):
        return spec
    unknown = set(spec) - set(InputConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"unknown input field(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(InputConfig.__dataclass_fields__)}"
        )
    cfg = InputConfig(**spec)
    if cfg.mode not in ("time", "sequence", "clip"):
        raise ValueError(f"input mode must be time, sequence or clip, got {cfg.mode!r}")
    cfg.validate("input")
    return cfg


def window_set(
    feature_dirs: Mapping[str, str | Path],
    inputs: Mapping[str, InputConfig | Mapping[str, Any]],
    clip_ids: Sequence[str] | None = None,
    **options: Any,
) -> WindowSet:
    """A :class:`WindowSet` (numpy windows) over ``clip_ids``, by default every clip of the
    first modality's feature directory. ``options``: ``window_seconds`` (0 = whole clip),
    ``views``, ``random_windows``, ``seed``, ``durations``, ``targets``, ``cache``."""
    specs = {m: input_config(s) for m, s in inputs.items()}
    if clip_ids is None:
        first = next(iter(specs), None)
        if first is None:
            raise ValueError("no inputs given")
        with FeatureReader(feature_dirs[first]) as r:
            clip_ids = list(r.clip_ids)
    return WindowSet(feature_dirs, specs, clip_ids, **options)


def iter_windows(
    feature_dirs: Mapping[str, str | Path],
    inputs: Mapping[str, InputConfig | Mapping[str, Any]],
    clip_ids: Sequence[str] | None = None,
    epoch: int = 0,
    **options: Any,
) -> Iterator[dict[str, Any]]:
    """One item per clip: ``{"index", "clip_id", "target", "views": [{modality: {"x", "mask"}}]}``
    with numpy arrays, the windows of ``epoch`` (see :func:`window_set` for the options)."""
    ws = window_set(feature_dirs, inputs, clip_ids, **options)
    try:
        for i in range(len(ws)):
            yield ws[(epoch, i)]
    finally:
        ws.close()


def extract(
    files: str | Path | Sequence[str | Path],
    features: Sequence[str],
    params: Any = None,
    out: str | Path | None = None,
    *,
    name: str = "files",
    n_jobs: int | None = None,
    progress: bool = True,
) -> Extraction | dict[str, ClipFeatures]:
    """Extract ``features`` (``mel``, ``spectrogram``, ``faces``, ``landmarks``, ``words``)
    of media files with the stages' extractors, cache and failure rules, no DVC.

    ``files``: a list of paths gives an :class:`~pipeline.file_extraction.Extraction` (readers over
    the shards, the clip id of each file, the failure rows); one path (not in a list) gives
    ``{feature: ClipFeatures}`` of that file, or raises
    :class:`~pipeline.features.ExtractionError` with the reason. ``params``: a ``Params``, the
    path of a params.yaml or a mapping of sections (default: every section's defaults, the
    papers' values as in the project's params.yaml). ``out``: where the manifest, shards,
    failures and per-clip cache go (a project layout; default: a new temporary folder).
    ``n_jobs``: worker processes (default ``runner.n_jobs``, at most one per file).
    """
    with needs("pipeline.api.extract", "extract"):
        from .file_extraction import extract_files

    single = isinstance(files, (str, Path))
    listed = [files] if single else list(files)
    run = extract_files(listed, features, params, out, name=name, n_jobs=n_jobs,
                        progress=progress)
    if not single:
        return run
    return {f: run.read(listed[0], f) for f in dict.fromkeys(features)}


def window_dataset(
    feature_root: str | Path,
    manifest: str | Path,
    fold: Fold | str | Path,
    inputs: Mapping[str, InputConfig | Mapping[str, Any]],
    part: str = "train",
    *,
    number: int = 0,
    task: str = "auto",
    **options: Any,
) -> WindowDataset:
    """The torch :class:`WindowDataset` of one part (``train``, ``val``, ``test``) of a fold:
    the modalities of ``inputs`` from ``feature_root/<modality>``, targets and durations from
    the clip manifest (class index, or 0/1 per emotion for multi-label manifests; ``task``
    ``single`` / ``multi`` / ``auto`` as ``evaluate.task``), the clips that are labelled and
    present in every modality. ``fold``: a :class:`Fold` or a fold manifest's path (then
    fold ``number``). ``options`` as :func:`window_set`. Items hold ``clip_id``. Needs
    ``pip install mer-pipeline[train]``."""
    with needs("window_dataset", "train"):
        from .training.dataset import WindowDataset

    from .training.data import label_space

    if isinstance(fold, (str, Path)):
        folds = {f.number: f for f in read_folds(fold)}
        if number not in folds:
            raise ValueError(f"{fold}: no fold {number}; folds: {sorted(folds)}")
        fold = folds[number]
    if part not in ("train", "val", "test"):
        raise ValueError(f"part must be train, val or test, got {part!r}")
    entries = {e.clip_id: e for e in read_manifest(manifest)}
    labels = label_space(list(entries.values()), task, 0.0)
    specs = {m: input_config(s) for m, s in inputs.items()}
    dirs = {m: Path(feature_root) / m for m in specs}
    present = None
    for d in dirs.values():
        with FeatureReader(d) as r:
            present = set(r.clip_ids) if present is None else present & set(r.clip_ids)
    ids = [c for c in getattr(fold, part) if c in entries and c in (present or set())
           and labels.labelled(entries[c])]
    import numpy as np

    targets = (np.stack([labels.encode(entries[c]) for c in ids]) if ids
               else np.zeros(0, np.int64))
    options.setdefault("durations", [entries[c].duration for c in ids])
    ds = WindowDataset(dirs, specs, ids, targets, **options)
    ds.labels = labels.names
    return ds


def __getattr__(name: str) -> Any:
    if name == "WindowDataset":  # torch: only when asked for
        with needs("WindowDataset", "train"):
            from .training.dataset import WindowDataset

        return WindowDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# WindowDataset is not in __all__: a star import must work without torch.
__all__ = [
    "ClipFeatures",
    "DataError",
    "FeatureReader",
    "Fold",
    "InputConfig",
    "ManifestEntry",
    "MissingExtraError",
    "ShardError",
    "WindowSet",
    "extract",
    "input_config",
    "iter_windows",
    "open_features",
    "read_clips",
    "read_folds",
    "window_dataset",
    "window_set",
]
