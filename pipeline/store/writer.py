"""Write feature shards: HDF5 files of bounded size plus an index, atomically.

Layout (see docs/FORMAT.md)::

    <feature dir>/
      index.json                  written last: its presence means the directory is complete
      shard-00000.h5              file attrs: schema_version, feature, primary, params (JSON),
                                  provenance (JSON), n_clips, complete
        /clips/<clip_id>/         group attrs: source_sha256, n_steps, cache_key, + extractor's
          <array>                 time-first arrays (attr sha256 = checksum of the raw bytes)
          timestamps              float64 (T,) seconds
          valid                   uint8 (T,) 1 = real data

A run writes the whole directory as a hidden sibling (``.<name>.writing-<pid>/``) and swaps
it into place when the index is written: readers see the old complete directory or the new
complete one, never a mix, and a crash leaves the old directory (or none) plus a hidden
leftover that the next run removes.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .format import (
    ATTRS_SHA256,
    CLIPS_GROUP,
    INDEX_NAME,
    SCHEMA_VERSION,
    SHARD_PATTERN,
    TIMESTAMPS,
    VALID,
    ClipFeatures,
    array_checksum,
    attrs_checksum,
)

Compression = str  # "gzip" | "lzf" | "none"


def compression_kwargs(compression: Compression, n_elements: int) -> dict[str, Any]:
    if compression == "none" or n_elements < 64:
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {compression!r}; allowed: gzip, lzf, none")


def write_clip_group(
    group: h5py.Group,
    feats: ClipFeatures,
    source_sha256: str,
    cache_key: str = "",
    compression: Compression = "gzip",
) -> None:
    """Write one clip's arrays, timestamps, validity and attrs into an empty group."""
    for name, arr in feats.arrays.items():
        arr = np.ascontiguousarray(arr)
        ds = group.create_dataset(
            name, data=arr, track_times=False, **compression_kwargs(compression, arr.size)
        )
        ds.attrs["sha256"] = array_checksum(arr)
    for name, arr in ((TIMESTAMPS, feats.timestamps), (VALID, feats.valid.astype(np.uint8))):
        ds = group.create_dataset(name, data=arr, track_times=False)
        ds.attrs["sha256"] = array_checksum(arr)
    set_clip_attrs(group, feats.attrs, source_sha256, feats.n_steps, cache_key)


def set_clip_attrs(
    group: h5py.Group, attrs: dict[str, Any], source_sha256: str, n_steps: int, cache_key: str
) -> None:
    """A clip group's attributes, with the checksum that covers them (``attrs_sha256``)."""
    group.attrs["source_sha256"] = source_sha256
    group.attrs["n_steps"] = n_steps
    group.attrs["cache_key"] = cache_key
    for key, value in attrs.items():
        if key == ATTRS_SHA256:
            continue
        group.attrs[key] = value
    group.attrs[ATTRS_SHA256] = attrs_checksum(dict(group.attrs))


def create_new(path: Path) -> int:
    """Create ``path`` as a new empty file and return its descriptor (open for writing). A
    temporary file's name can be guessed, so whatever lies there (a leftover, or a link
    planted to make the write land in another file) is removed first, and the file is
    created with ``O_EXCL | O_NOFOLLOW``: never through a link, never into a file that was
    there."""
    path = Path(path)
    path.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o666)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all; the temporary name is unique to this process and
    thread, so two writers never delete or interleave each other's half-written file, and it
    is created new (:func:`create_new`). The rename replaces a link planted at ``path``
    itself, never the file it points to."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(create_new(tmp), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


class ShardWriter:
    """Writes clips into ``shard-NNNNN.h5`` files of at most ``max_bytes`` (uncompressed).

    Use as a context manager; :meth:`close` finishes the last shard and writes the index.
    If the block raises, no index is written, so the directory never looks complete.
    """

    def __init__(
        self,
        out_dir: str | Path,
        feature: str,
        params: dict[str, Any],
        provenance: dict[str, Any],
        primary: str,
        max_bytes: int = 256 * 2**20,
        compression: Compression = "gzip",
    ) -> None:
        self.final_dir = Path(out_dir)
        self.out_dir = self.final_dir.parent / f".{self.final_dir.name}.writing-{os.getpid()}"
        self.feature = feature
        self.params = params
        self.provenance = provenance
        self.primary = primary
        self.max_bytes = max_bytes
        self.compression = compression
        self.index: dict[str, str] = {}
        self.shards: dict[str, dict[str, Any]] = {}
        self._file: h5py.File | None = None
        self._name = ""
        self._bytes = 0
        self._count = 0

    def __enter__(self) -> ShardWriter:
        self.final_dir.parent.mkdir(parents=True, exist_ok=True)
        recover_interrupted_swap(self.final_dir)
        for stale in self.final_dir.parent.glob(f".{self.final_dir.name}.*-*"):
            if not _pid_alive(stale.name.rsplit("-", 1)[-1]):
                _remove(stale)
        _remove(self.out_dir)
        self.out_dir.mkdir()  # new: its files are written only inside it
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def _open_next(self) -> h5py.File:
        self._name = SHARD_PATTERN.format(len(self.shards))
        tmp = self.out_dir / (self._name + ".tmp")
        f = h5py.File(tmp, "w", track_order=True)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["feature"] = self.feature
        f.attrs["primary"] = self.primary
        f.attrs["params"] = json.dumps(self.params, sort_keys=True)
        f.attrs["provenance"] = json.dumps(self.provenance, sort_keys=True)
        f.attrs["complete"] = False
        f.create_group(CLIPS_GROUP, track_order=True)
        self._file, self._bytes, self._count = f, 0, 0
        return f

    def _finish_shard(self) -> None:
        if self._file is None:
            return
        f = self._file
        f.attrs["n_clips"] = self._count
        f.attrs["complete"] = True
        f.flush()
        f.close()
        self._file = None
        tmp = self.out_dir / (self._name + ".tmp")
        final = self.out_dir / self._name
        fsync_file(tmp)
        os.replace(tmp, final)
        self.shards[self._name] = {"n_clips": self._count, "bytes": final.stat().st_size}

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def _target(self, nbytes: int) -> h5py.File:
        if self._file is not None and self._count and self._bytes + nbytes > self.max_bytes:
            self._finish_shard()
        return self._file if self._file is not None else self._open_next()

    def add(
        self, clip_id: str, feats: ClipFeatures, source_sha256: str, cache_key: str = ""
    ) -> None:
        """Append one clip's features."""
        if clip_id in self.index:
            raise ValueError(f"clip {clip_id!r} written twice")
        nbytes = sum(a.nbytes for a in feats.arrays.values())
        f = self._target(nbytes)
        grp = f[CLIPS_GROUP].create_group(clip_id)
        write_clip_group(grp, feats, source_sha256, cache_key, self.compression)
        self._bytes += nbytes
        self._count += 1
        self.index[clip_id] = self._name

    def add_from(self, clip_id: str, src: h5py.Group) -> None:
        """Copy an already written clip group (from the per-clip cache) into the shard."""
        if clip_id in self.index:
            raise ValueError(f"clip {clip_id!r} written twice")
        nbytes = sum(ds.nbytes for ds in src.values() if isinstance(ds, h5py.Dataset))
        f = self._target(nbytes)
        f.copy(src, f[CLIPS_GROUP], name=clip_id)
        self._bytes += nbytes
        self._count += 1
        self.index[clip_id] = self._name

    def close(self) -> None:
        self._finish_shard()
        index = {
            "schema_version": SCHEMA_VERSION,
            "feature": self.feature,
            "primary": self.primary,
            "params": self.params,
            "n_clips": len(self.index),
            "shards": self.shards,
            "clips": self.index,
        }
        atomic_write_text(self.out_dir / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True))
        _fsync_dir(self.out_dir)
        if self.final_dir.exists() and _exchange(self.out_dir, self.final_dir):
            shutil.rmtree(self.out_dir, ignore_errors=True)  # now holds the old directory
        else:
            old = self.final_dir.parent / f".{self.final_dir.name}.old-{os.getpid()}"
            if self.final_dir.exists():
                os.replace(self.final_dir, old)
            # a kill here leaves no final directory: recover_interrupted_swap moves the
            # finished one into place on the next write
            os.replace(self.out_dir, self.final_dir)
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(self.final_dir.parent)


def _remove(path: Path) -> None:
    """Remove a leftover directory, or whatever else lies at its name (a link is removed,
    never followed)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so there is
    no moment without the final directory; False where the kernel or filesystem cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    return rc == 0


def recover_interrupted_swap(final_dir: Path) -> bool:
    """If a run was killed between moving the old directory aside and moving its finished one
    into place, move the finished one (it has its index) into place now. True if it did."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        return False
    done = [
        p for p in final_dir.parent.glob(f".{final_dir.name}.writing-*")
        if (p / INDEX_NAME).is_file() and not _pid_alive(p.name.rsplit("-", 1)[-1])
    ]
    if not done:
        return False
    newest = max(done, key=lambda p: (p / INDEX_NAME).stat().st_mtime_ns)
    os.replace(newest, final_dir)
    return True


def fsync_file(path: Path) -> None:
    """Flush a closed file's data to disk (so a rename after it survives power loss)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _pid_alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(pid) != os.getpid()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
