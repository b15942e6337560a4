"""Clip manifests (``manifests/<corpus>/clips.csv``) and failure records.

clips.csv has one row per clip. Fixed columns (see docs/FORMAT.md) come first; then
``audio_path`` and ``audio_sha256`` when any clip reads its sound from a separate file;
then ``score_<emotion>`` columns for multi-label corpora and ``meta_<key>`` columns for
corpus-specific fields.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .files import text_file
from .ids import check_name
from .store.writer import atomic_write_text

FIXED_COLUMNS = (
    "clip_id",
    "path",
    "sha256",
    "speaker",
    "session",
    "label",
    "transcript",
    "start",
    "end",
    "duration",
    "fps",
    "n_frames",
    "width",
    "height",
    "sample_rate",
    "channels",
    "has_audio",
    "has_video",
    "rotation",
)
# Written only when some clip has a separate audio file, so other manifests keep their bytes.
AUDIO_COLUMNS = ("audio_path", "audio_sha256")
FAILURE_COLUMNS = ("clip_id", "stage", "reason", "exception_type")

# Python's csv module refuses fields over 131,072 characters by default; a transcript or the
# word times of an hour-long talk are longer. The limit is raised on purpose, for every CSV
# this package reads (the module-wide setting is the only one csv offers).
FIELD_LIMIT = 2**31 - 1
csv.field_size_limit(FIELD_LIMIT)


@dataclass
class ManifestEntry:
    """One row of clips.csv: a clip as the adapter described it plus what probing found."""

    clip_id: str
    path: str
    sha256: str = ""
    speaker: str = ""
    session: str = ""
    label: str = ""
    transcript: str = ""
    start: float = 0.0
    end: float = 0.0
    duration: float = 0.0
    fps: float = 0.0
    n_frames: int = 0
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    has_audio: bool = False
    has_video: bool = False
    rotation: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    # A separate file the clip's sound is read from (relative to the root, same time axis as
    # ``path``) and its content hash at ingest; "" = the media's own audio track.
    audio_path: str = ""
    audio_sha256: str = ""

    def media_path(self, root: str | Path) -> Path:
        """Absolute media path; refuses paths that escape the corpus root."""
        return self._inside(root, self.path, "path")

    def audio_file(self, root: str | Path) -> Path | None:
        """Absolute path of the separate audio file (None when there is none); refused, like
        the media path, when it escapes the corpus root (``..``, a symlink out)."""
        return self._inside(root, self.audio_path, "audio_path") if self.audio_path else None

    def _inside(self, root: str | Path, rel: str, what: str) -> Path:
        root = Path(root).resolve()
        p = (root / rel).resolve()
        if not p.is_relative_to(root):
            raise ValueError(f"clip {self.clip_id}: {what} {rel!r} points outside {root}")
        return p


_TYPES = {f.name: f.type for f in fields(ManifestEntry)}


def _parse(name: str, value: str) -> Any:
    tp = _TYPES[name]
    if tp in ("float", float):
        return float(value) if value else 0.0
    if tp in ("int", int):
        return int(float(value)) if value else 0
    if tp in ("bool", bool):
        return value.strip().lower() in ("1", "true", "yes")
    return value


def write_manifest(path: str | Path, entries: Iterable[ManifestEntry]) -> None:
    entries = list(entries)
    score_keys = sorted({k for e in entries for k in e.scores})
    meta_keys = sorted({k for e in entries for k in e.meta})
    audio = AUDIO_COLUMNS if any(e.audio_path for e in entries) else ()
    header = (
        list(FIXED_COLUMNS) + list(audio) + [f"score_{k}" for k in score_keys]
        + [f"meta_{k}" for k in meta_keys]
    )
    rows = []
    for e in entries:
        d = asdict(e)
        row = [d[c] for c in (*FIXED_COLUMNS, *audio)]
        row += [e.scores.get(k, "") for k in score_keys]
        row += [e.meta.get(k, "") for k in meta_keys]
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, _csv_text([header, *rows]))
    _check_round_trip(path, entries)


def _check_round_trip(path: Path, entries: list[ManifestEntry]) -> None:
    """Read back what was written: a manifest that does not give back its entries is an error
    now, naming the file and the clip, not an unreadable corpus later."""
    try:
        back = read_manifest(path)
    except (csv.Error, ValueError) as e:
        raise ValueError(f"{path}: the clip manifest just written cannot be read back ({e})") from e
    if len(back) != len(entries):
        raise ValueError(f"{path}: wrote {len(entries)} clips but reads back {len(back)}")
    for a, b in zip(entries, back, strict=True):
        if (a.clip_id, a.path, a.audio_path, a.transcript, a.meta) != (
                b.clip_id, b.path, b.audio_path, b.transcript,
                {k: b.meta.get(k, "") for k in a.meta}):
            raise ValueError(
                f"{path}: clip {a.clip_id} does not read back as written (path, audio path, "
                f"transcript or meta fields differ)"
            )


def _csv_text(rows: list[list[Any]]) -> str:
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return buf.getvalue()


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"clip manifest {path} not found; run the ingest stage first")
    try:
        return _read_rows(path)
    except csv.Error as e:
        raise ValueError(f"{path}: not a readable clip manifest ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from e


def _read_rows(path: Path) -> list[ManifestEntry]:
    with text_file(path, encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("clip_id", "path") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        out = []
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise ValueError(f"{path}, row {line}: wrong number of fields")
            cid = check_name(row.get("clip_id"), "clip id", f"{path}, row {line}")
            if cid in seen:
                raise ValueError(f"{path}, row {line}: clip id {cid} appears twice")
            seen.add(cid)
            try:
                kw = {k: _parse(k, v) for k, v in row.items() if k in _TYPES}
            except ValueError as e:
                raise ValueError(f"{path}, row {line}: {e}") from e
            kw["scores"] = {
                k[6:]: float(v) for k, v in row.items() if k.startswith("score_") and v != ""
            }
            kw["meta"] = {k[5:]: v for k, v in row.items() if k.startswith("meta_")}
            out.append(ManifestEntry(**kw))
    return out


@dataclass(frozen=True)
class Failure:
    clip_id: str
    stage: str
    reason: str
    exception_type: str


def write_failures(
    path: str | Path, failures: Iterable[Failure], roots: Sequence[tuple[Path, str]] = ()
) -> None:
    """Write the failure table (header only when nothing failed), each reason as
    :func:`plain_reason` makes it with ``roots``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [list(FAILURE_COLUMNS)] + [
        [f.clip_id, f.stage, plain_reason(f.reason, roots), f.exception_type] for f in failures
    ]
    atomic_write_text(path, _csv_text(rows))


def plain_reason(reason: str, roots: Sequence[tuple[Path, str]] = ()) -> str:
    """A failure reason as stored: no ``[Errno N]``, and each path under one of ``roots``
    (``(folder, what to call it)``) relative to it, so the table holds no absolute path of
    this machine (the same inputs give the same bytes on any checkout)."""
    from .exits import plain

    text = plain(reason)
    forms = sorted({(str(form), what) for root, what in roots
                    for form in (Path(root).absolute(), Path(root).resolve())},
                   key=lambda fw: -len(fw[0]))  # the deepest folder first
    for form, what in forms:
        if form == "/":
            continue
        text = text.replace(form + "/", "")
        text = re.sub(re.escape(form) + r"(?![\w.-])", what, text)
    return text


def read_failures(path: str | Path) -> list[Failure]:
    with text_file(path, encoding="utf-8") as f:
        return [Failure(**row) for row in csv.DictReader(f)]


def dump_json(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
