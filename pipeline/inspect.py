"""Look inside feature directories: what they hold (``describe``) and whether it is sound
(``verify``). Backs ``mer inspect`` and ``mer verify``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .store import FeatureReader, ShardError
from .store.format import CLIPS_GROUP, INDEX_NAME, RESERVED


def _shard_summary(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        clips = f[CLIPS_GROUP]
        shapes: dict[str, list[tuple[int, ...]]] = {}
        for cid in clips:
            for name, ds in clips[cid].items():
                if name not in RESERVED:
                    shapes.setdefault(name, []).append(ds.shape)
        return {
            "file": str(path),
            "schema_version": int(attrs.get("schema_version", -1)),
            "feature": str(attrs.get("feature", "")),
            "complete": bool(attrs.get("complete", False)),
            "n_clips": len(clips),
            "params": json.loads(attrs.get("params", "{}")),
            "provenance": json.loads(attrs.get("provenance", "{}")),
            "arrays": {k: _shape_range(v) for k, v in shapes.items()},
        }


def _shape_range(shapes: list[tuple[int, ...]]) -> dict[str, Any]:
    steps = [s[0] for s in shapes]
    trailing = sorted({s[1:] for s in shapes})
    return {
        "time_steps": {"min": min(steps), "max": max(steps), "mean": float(np.mean(steps))},
        "per_step_shape": [list(t) for t in trailing],
    }


def describe(path: Path) -> dict[str, Any]:
    """A summary of a shard file or a feature directory."""
    if path.is_file():
        return _shard_summary(path)
    if not (path / INDEX_NAME).exists():
        raise FileNotFoundError(f"{path}: neither a shard file nor a finished feature directory")
    with FeatureReader(path) as r:
        shards = sorted(r.index["shards"])
        first = _shard_summary(path / shards[0]) if shards else {}
        valid = []
        for cid in r.clip_ids:
            feats = r.read(cid)
            valid.append(float(feats.valid.mean()) if feats.n_steps else 0.0)
        arrays: dict[str, Any] = {}
        for s in shards:
            for name, info in _shard_summary(path / s)["arrays"].items():
                arrays.setdefault(name, []).append(info)
        return {
            "directory": str(path),
            "feature": r.feature,
            "schema_version": r.index["schema_version"],
            "n_clips": len(r),
            "n_shards": len(shards),
            "bytes": sum(v["bytes"] for v in r.index["shards"].values()),
            "valid_fraction": {"mean": float(np.mean(valid)) if valid else 0.0,
                               "min": float(np.min(valid)) if valid else 0.0},
            "arrays": {k: _merge(v) for k, v in arrays.items()},
            "params": r.params,
            "provenance": first.get("provenance", {}),
            "clips_head": r.clip_ids[:5],
        }


def _merge(infos: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "time_steps": {
            "min": min(i["time_steps"]["min"] for i in infos),
            "max": max(i["time_steps"]["max"] for i in infos),
        },
        "per_step_shape": sorted({tuple(s) for i in infos for s in i["per_step_shape"]}),
    }


def verify(feature_dir: Path, manifest: Path | None = None) -> list[str]:
    """Every problem found, as sentences; an empty list means the directory is sound.

    Checks: index present and readable, every shard complete, every clip readable with
    matching checksums, one per-step shape per array, no leftover temporary files, and (with
    ``manifest``) every manifest clip present unless recorded as a failure.
    """
    problems: list[str] = []
    try:
        reader = FeatureReader(feature_dir)
    except ShardError as e:
        return [str(e)]
    with reader:
        for tmp in sorted(feature_dir.glob("*.tmp")):
            problems.append(f"{tmp}: leftover temporary file from an interrupted write")
        trailing: dict[str, set[tuple[int, ...]]] = {}
        for cid in reader.clip_ids:
            try:
                feats = reader.read(cid, verify=True)
            except ShardError as e:
                problems.append(f"clip {cid}: {e}")
                continue
            for name, arr in feats.arrays.items():
                trailing.setdefault(name, set()).add(arr.shape[1:])
        for name, shapes in trailing.items():
            if len(shapes) > 1:
                problems.append(
                    f"array {name!r} has inconsistent per-step shapes across clips: "
                    f"{sorted(shapes)}"
                )
        if manifest is not None:
            problems += _missing_from(reader, manifest)
    return problems


def _missing_from(reader: FeatureReader, manifest: Path) -> list[str]:
    with open(manifest, newline="") as f:
        ids = [row["clip_id"] for row in csv.DictReader(f)]
    failures_csv = manifest.parent / "failures" / f"{reader.feature}.csv"
    failed: set[str] = set()
    if failures_csv.exists():
        with open(failures_csv, newline="") as f:
            failed = {row["clip_id"] for row in csv.DictReader(f)}
    problems = []
    for cid in ids:
        if cid not in reader and cid not in failed:
            problems.append(f"clip {cid}: in {manifest} but not in {reader.dir} nor in "
                            f"{failures_csv.name}")
    extra = set(reader.clip_ids) - set(ids)
    if extra:
        problems.append(f"{len(extra)} clip(s) in {reader.dir} are not in {manifest}: "
                        f"{', '.join(sorted(extra)[:5])}")
    return problems
