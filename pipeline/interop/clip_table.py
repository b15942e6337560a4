"""One record per clip of a corpus: its manifest row, its fold, and its arrays of every chosen
feature, for the exports to other toolkits (:mod:`.hf_datasets`, :mod:`.lhotse_cuts`).

Features are the directories under a feature root (``data/features/<corpus>/<feature>``);
a clip a feature has no shard row for (it failed there) has ``None`` for that feature.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..manifest import ManifestEntry, read_manifest
from ..store import ClipFeatures, FeatureReader
from ..store.format import INDEX_NAME


@dataclass
class ClipRecord:
    entry: ManifestEntry
    fold: int  # the fold whose test part holds the clip (-1: none, or no fold manifest)
    part: str  # train / val / test of the chosen fold ("" without one)
    features: dict[str, ClipFeatures | None] = field(default_factory=dict)


def feature_names(feature_root: str | Path, wanted: Sequence[str] = ()) -> list[str]:
    """The features to export: ``wanted`` (each must exist), else every feature directory."""
    root = Path(feature_root)
    found = sorted(p.name for p in root.iterdir() if (p / INDEX_NAME).exists()) if (
        root.is_dir()) else []  # fmt: skip
    if not wanted:
        if not found:
            raise FileNotFoundError(f"no feature directories under {root}")
        return found
    missing = [w for w in wanted if w not in found]
    if missing:
        raise FileNotFoundError(
            f"no feature directory {root / missing[0]} (found: {', '.join(found) or 'none'})"
        )
    return list(dict.fromkeys(wanted))


def fold_parts(folds_json: str | Path | None, fold: int | None) -> tuple[dict[str, int], dict]:
    """(clip -> the fold testing it, clip -> its part of fold ``fold``) from a fold manifest."""
    if folds_json is None:
        if fold is not None:
            raise ValueError("a fold number needs a fold manifest (folds/<scheme>.json)")
        return {}, {}
    doc = json.loads(Path(folds_json).read_text())
    tested: dict[str, int] = {}
    parts: dict[str, str] = {}
    numbers = [int(f["fold"]) for f in doc["folds"]]
    if fold is not None and fold not in numbers:
        raise ValueError(f"{folds_json}: no fold {fold}; folds: {numbers}")
    for f in doc["folds"]:
        for cid in f["test"]:
            tested.setdefault(cid, int(f["fold"]))
        if fold is not None and int(f["fold"]) == fold:
            for part in ("train", "val", "test"):
                for cid in f.get(part, ()):
                    parts[cid] = part
    return tested, parts


def clip_records(
    feature_root: str | Path,
    manifest: str | Path,
    features: Sequence[str],
    folds_json: str | Path | None = None,
    fold: int | None = None,
) -> Iterator[ClipRecord]:
    """Every clip of the manifest in its order (only those in fold ``fold`` when given)."""
    tested, parts = fold_parts(folds_json, fold)
    readers = {f: FeatureReader(Path(feature_root) / f) for f in features}
    try:
        for e in read_manifest(manifest):
            part = parts.get(e.clip_id, "")
            if fold is not None and not part:
                continue
            feats = {f: (r.read(e.clip_id) if e.clip_id in r else None)
                     for f, r in readers.items()}
            yield ClipRecord(e, tested.get(e.clip_id, -1), part, feats)
    finally:
        for r in readers.values():
            r.close()


def feature_params(feature_root: str | Path, feature: str) -> dict[str, Any]:
    """The extractor parameters recorded in a feature directory's index."""
    with FeatureReader(Path(feature_root) / feature) as r:
        return dict(r.params.get("params", {}))
