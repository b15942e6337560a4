"""Per-clip warnings: a clip that was extracted but looks doubtful, said in words.

Any extractor raises one by returning a non-empty ``warning`` string among its clip
attributes (:data:`WARNING_ATTR`; e.g. faces: "a face in 3.0 % of the 945 frames, under
faces.min_face_rate 0.95 ..."). The attribute is stored with the clip, so a clip reused from
the cache keeps its warning. After each stage, :func:`collect_warnings` reads them from the
written shards into ``manifests/<corpus>/warnings/<feature>.csv`` (beside the failures table;
header only when there are none), which ``mer extract`` counts and the QA page lists.
A warning never drops the clip; the extractor's own ``strict`` option (faces: ``strict``)
turns its warning into a failure instead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .manifest import _csv_text
from .store import FeatureReader
from .store.writer import atomic_write_text

WARNING_ATTR = "warning"
WARNING_COLUMNS = ("clip_id", "stage", "warning")


@dataclass(frozen=True)
class ClipWarning:
    clip_id: str
    stage: str
    warning: str


def collect_warnings(feature: str, feature_dir: Path) -> list[ClipWarning]:
    """The warnings of every clip in the shards of ``feature_dir``, in clip order."""
    out = []
    with FeatureReader(feature_dir) as reader:
        for clip_id in reader.clip_ids:
            text = reader.group(clip_id, members=False).attrs.get(WARNING_ATTR, "")
            if isinstance(text, bytes):
                text = text.decode()
            if text:
                out.append(ClipWarning(str(clip_id), feature, str(text)))
    return sorted(out, key=lambda w: w.clip_id)


def write_warnings(path: str | Path, warnings: list[ClipWarning]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [list(WARNING_COLUMNS)] + [[w.clip_id, w.stage, w.warning] for w in warnings]
    atomic_write_text(path, _csv_text(rows))


def read_warnings(path: str | Path) -> list[ClipWarning]:
    """The table's rows ([] when the stage wrote none, or never ran)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [ClipWarning(**row) for row in csv.DictReader(f)]
