"""The on-disk contract of feature shards (documented for users in docs/FORMAT.md).

Keep this module, the writer and docs/FORMAT.md in step: a layout change bumps
SCHEMA_VERSION and teaches the reader the old one (or to refuse it with a reason).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# 2: timestamps and valid carry a sha256 like every array, and each clip group an
# ``attrs_sha256`` over its other attributes, so every stored value is checkable.
SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
INDEX_NAME = "index.json"
SHARD_PATTERN = "shard-{:05d}.h5"
CLIPS_GROUP = "clips"
TIMESTAMPS = "timestamps"
VALID = "valid"
RESERVED = (TIMESTAMPS, VALID)
ATTRS_SHA256 = "attrs_sha256"


def array_checksum(arr: np.ndarray) -> str:
    """sha256 of the array's C-order bytes, prefixed with dtype and shape."""
    a = np.ascontiguousarray(arr)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B") if a.size else b"")
    return h.hexdigest()


def dataset_checksum(ds: Any, block_bytes: int = 16 * 2**20) -> str:
    """:func:`array_checksum` of an HDF5 dataset (or any array-like with ``shape``, ``dtype``
    and row slicing), read ``block_bytes`` at a time, so memory stays bounded however long
    the clip."""
    dtype = np.dtype(ds.dtype)
    shape = tuple(ds.shape)
    h = hashlib.sha256(f"{dtype.str}{shape}".encode())
    if not shape:
        h.update(memoryview(np.ascontiguousarray(ds[()])).cast("B"))
        return h.hexdigest()
    row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
    step = max(1, block_bytes // row_bytes)
    for i in range(0, shape[0], step):
        block = np.ascontiguousarray(ds[i : i + step])
        if block.size:
            h.update(memoryview(block).cast("B"))
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def attrs_checksum(attrs: Mapping[str, Any]) -> str:
    """sha256 of a clip group's attributes (all but ``attrs_sha256`` itself), in a canonical
    JSON form, so the same values hash the same whether read back from HDF5 or not."""
    plain = {str(k): _plain(v) for k, v in attrs.items() if k != ATTRS_SHA256}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ClipFeatures:
    """What an extractor returns for one clip, and what a reader gives back.

    Every array in ``arrays`` is time-first with ``len(timestamps)`` rows. ``timestamps`` are
    seconds from the start of the clip's audio/video (the time base shared by all features of
    a clip); ``valid`` marks rows that hold real data (False: no face, padding, ...).
    ``attrs`` holds small scalar or string facts about the clip (numbers, strings, bools).
    """

    arrays: dict[str, np.ndarray]
    timestamps: np.ndarray
    valid: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
        self.valid = np.asarray(self.valid, dtype=bool)
        n = len(self.timestamps)
        if self.timestamps.ndim != 1 or self.valid.shape != (n,):
            raise ValueError("timestamps and valid must be 1-D and of the same length")
        if not self.arrays:
            raise ValueError("a clip needs at least one feature array")
        for name, arr in self.arrays.items():
            if name in RESERVED:
                raise ValueError(f"array name {name!r} is reserved")
            if arr.dtype == object:
                raise ValueError(f"array {name!r} has object dtype; store plain numbers")
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(
                    f"array {name!r} has shape {arr.shape}; expected {n} rows (time first)"
                )

    @property
    def n_steps(self) -> int:
        return len(self.timestamps)
