"""Look inside feature directories: what they hold (``describe``). Backs ``mer inspect``;
``mer verify`` is :mod:`pipeline.verify`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .files import check_regular
from .store import FeatureReader, ShardError
from .store.format import (
    CLIPS_GROUP,
    INDEX_NAME,
    RESERVED,
)
from .store.integrity import UnsafeObjectError, reach
from .store.reader import shard_clip, shard_path


def _shard_summary(path: Path) -> dict[str, Any]:
    check_regular(path)  # HDF5 would wait on a FIFO
    with h5py.File(path, "r") as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        try:
            clips = reach(f, CLIPS_GROUP)
        except UnsafeObjectError as e:
            raise ShardError(str(e)) from e
        shapes: dict[str, list[tuple[int, ...]]] = {}
        for cid in clips:
            for name, ds in shard_clip(f, cid).items():
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
        first = _shard_summary(shard_path(path, shards[0])) if shards else {}
        valid = []
        for cid in r.clip_ids:
            _, ok = r.rows(cid)
            valid.append(float(ok.mean()) if len(ok) else 0.0)
        arrays: dict[str, Any] = {}
        for s in shards:
            for name, info in _shard_summary(shard_path(path, s))["arrays"].items():
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
