"""Decoded clips in one uncompressed, memory-mapped file per feature array (``cache_clips``).

Windows are cut from a clip's rows at random places every epoch. Read from the gzip shards,
every window pays the decoding of the HDF5 chunks it touches (for face crops, chunks of ~19
frames cut into 28 x 28 tiles: a few megabytes inflated for 16 frames); held in each
process's memory, every DataLoader worker and every rank would keep its own copy. Here the
clips are decoded once, into a plain file that every process maps read-only: the operating
system keeps one copy in its page cache for all workers, ranks, folds, methods and both
stages, and can drop it under memory pressure (it is a file, not anonymous memory).

How it works:

1. The file is named by the feature directory (its name and a hash of its path), the array
   and a hash of the directory's ``index.json`` (which changes whenever the feature is
   re-extracted) and this module's format version: ``<cache dir>/<modality>-<array>-<dir>-
   <key>.bin`` with its index ``<...>.json``. A new build removes the directory's older ones.
2. The first process that needs it takes an exclusive ``flock`` on ``<...>.lock`` (others
   wait, then find it built), decodes every clip of the directory in turn (one clip in
   memory at a time) into ``<...>.bin.tmp``, then writes the index (offset, shape and the
   shard's sha256 of each clip's array) and renames both into place, the index last: an
   index never names a file that was not finished. Before that, the free disk space is
   checked against the decoded size.
3. Readers map the ``.bin`` read-only (lazily in each process; a map is never pickled) and
   take each clip as a view; rows are copied out only when a window gathers them. float64
   arrays are stored as float32, what the trainer reads them as.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..locks import open_lock_file
from ..store.format import INDEX_NAME
from ..store.reader import FeatureReader, ShardError, open_shard, shard_clip

FORMAT_VERSION = 1
ALIGN = 64  # every clip starts on a 64-byte boundary (any dtype's views are aligned)


class CacheSpaceError(RuntimeError):
    """The decoded clips do not fit on the cache's disk."""


def read_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype rows are handed out in: float64 becomes float32, the rest stays."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.float64 else np.dtype(dtype)


@dataclass(frozen=True)
class CachedArray:
    offset: int
    shape: tuple[int, ...]


class ClipCache:
    """The decoded ``array`` of every clip of ``feature_dir``, kept under ``cache_dir``."""

    def __init__(self, feature_dir: str | Path, array: str, cache_dir: str | Path) -> None:
        self.feature_dir = Path(feature_dir)
        self.array = array
        self.cache_dir = Path(cache_dir)
        index = (self.feature_dir / INDEX_NAME).read_bytes()
        key = hashlib.sha256(b"%d\0%s\0" % (FORMAT_VERSION, array.encode()) + index).hexdigest()[
            :20
        ]
        where = hashlib.sha256(str(self.feature_dir.resolve()).encode()).hexdigest()[:8]
        self.prefix = f"{self.feature_dir.name}-{array}-{where}-"  # this directory's files
        stem = f"{self.prefix}{key}"
        self.bin_path = self.cache_dir / f"{stem}.bin"
        self.index_path = self.cache_dir / f"{stem}.json"
        self._index: dict | None = None
        self._map: np.memmap | None = None
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_map"] = None  # each process maps the file itself
        return state

    # -- building ------------------------------------------------------------------------
    def ensure(self) -> ClipCache:
        """Build the file if it is not there yet (once, whatever the number of processes)."""
        if self._index is None:
            if not self.index_path.exists():
                with self._lock():
                    if not self.index_path.exists():
                        self._build()
            self._index = json.loads(self.index_path.read_text())
        return self

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(self.bin_path.with_suffix(".lock"))  # a plain file, no link
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _dataset(self, reader: FeatureReader, files: dict, clip_id: str) -> h5py.Dataset:
        shard = reader.index["clips"][clip_id]
        if shard not in files:
            files[shard] = open_shard(reader.dir, shard)
        group = shard_clip(files[shard], clip_id)  # the readers' one check
        if self.array not in group:
            raise ShardError(f"{reader.dir / shard}: clip {clip_id!r} has no {self.array!r}")
        return group[self.array]

    def _plan(
        self, reader: FeatureReader, files: dict
    ) -> tuple[dict[str, CachedArray], np.dtype, int]:
        plan, dtype, offset = {}, None, 0
        for cid in reader.clip_ids:
            ds = self._dataset(reader, files, cid)
            dtype = read_dtype(ds.dtype) if dtype is None else dtype
            if read_dtype(ds.dtype) != dtype:
                raise ValueError(
                    f"{self.feature_dir}: array {self.array!r} has dtype {ds.dtype} in clip "
                    f"{cid} and {dtype} before it"
                )
            plan[cid] = CachedArray(offset, tuple(ds.shape))
            nbytes = int(np.prod(ds.shape)) * dtype.itemsize
            offset += -(-nbytes // ALIGN) * ALIGN
        return plan, dtype or np.dtype(np.float32), offset

    def _build(self) -> None:
        tmp = self.bin_path.with_name(self.bin_path.name + ".tmp")
        files: dict[str, h5py.File] = {}
        try:
            reader = FeatureReader(self.feature_dir)
            plan, dtype, total = self._plan(reader, files)
            free = shutil.disk_usage(self.cache_dir).free
            if total > free - min(2**30, free // 10):  # room for everything else
                raise CacheSpaceError(
                    f"train.cache_clips: the decoded {self.feature_dir.name} clips need "
                    f"{total / 2**30:.1f} GiB in {self.cache_dir}, which has "
                    f"{free / 2**30:.1f} GiB free; free space there, set train.checkpoint_dir "
                    f"to a larger disk, or set train.cache_clips: false"
                )
            sums = {}
            with open(tmp, "wb") as out:
                out.truncate(total)
                for cid, where in plan.items():
                    ds = self._dataset(reader, files, cid)
                    block = np.ascontiguousarray(ds[()].astype(dtype, copy=False))
                    out.seek(where.offset)
                    out.write(memoryview(block).cast("B") if block.size else b"")
                    sums[cid] = str(ds.attrs.get("sha256", ""))
                out.flush()
                os.fsync(out.fileno())
        finally:
            for f in files.values():
                f.close()
        doc = {
            "format": FORMAT_VERSION,
            "feature_dir": str(self.feature_dir),
            "array": self.array,
            "dtype": dtype.str,
            "bytes": total,
            "clips": {
                cid: {"offset": w.offset, "shape": list(w.shape), "sha256": sums[cid]}
                for cid, w in plan.items()
            },
        }
        os.replace(tmp, self.bin_path)
        index_tmp = self.index_path.with_name(self.index_path.name + ".tmp")
        index_tmp.write_text(json.dumps(doc))
        with open(index_tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(index_tmp, self.index_path)
        for old in self.cache_dir.glob(f"{self.prefix}*"):  # earlier extractions' files
            if old.suffix in (".bin", ".json") and old.stem != self.bin_path.stem:
                old.unlink(missing_ok=True)  # a process still mapping one keeps its pages

    # -- reading -------------------------------------------------------------------------
    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.ensure()._index["clips"]

    def clip(self, clip_id: str) -> np.ndarray:
        """The clip's rows: a read-only view of the mapped file."""
        index = self.ensure()._index
        if self._map is None or self._pid != os.getpid():
            self._map = np.memmap(self.bin_path, dtype=np.uint8, mode="r")
            self._pid = os.getpid()
        entry = index["clips"][clip_id]
        dtype = np.dtype(index["dtype"])
        shape = tuple(entry["shape"])
        count = int(np.prod(shape))
        start = entry["offset"]
        flat = self._map[start : start + count * dtype.itemsize].view(dtype)
        return flat.reshape(shape)

    @property
    def nbytes(self) -> int:
        return int(self.ensure()._index["bytes"])
