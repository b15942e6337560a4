"""Receive one clip's features a block of rows at a time, with memory bounded by a threshold.

An extractor that can produce its output progressively (face crops of a long video,
spectrogram segments of a long recording) appends row blocks to a :class:`ClipSink` instead
of building whole arrays. The sink keeps blocks in memory while they total less than
``spill_bytes``; a clip that stays under it is written exactly as a whole
:class:`~pipeline.store.ClipFeatures` would be. Past the threshold, the blocks so far go to
resizable, chunked HDF5 datasets in the target group and every later block is appended
there, so a ten-minute or ten-hour clip costs the same memory. Checksums are computed at
:meth:`ClipSink.close` by reading the datasets back in blocks (same value as
:func:`~pipeline.store.format.array_checksum` of the whole array).

Without a group (``ClipSink()``) the sink only collects: :meth:`close` returns the
``ClipFeatures``, which is how ``Extractor.extract`` serves callers that want arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import h5py
import numpy as np

from .format import RESERVED, TIMESTAMPS, VALID, ClipFeatures, dataset_checksum
from .writer import Compression, compression_kwargs, set_clip_attrs, write_clip_group

CHUNK_BYTES = 2**20  # target size of one HDF5 chunk of a spilled dataset


class ClipSink:
    """Row blocks in; one clip group (or ``ClipFeatures``) out. See the module docstring."""

    def __init__(
        self,
        group: h5py.Group | None = None,
        spill_bytes: int = 64 * 2**20,
        compression: Compression = "gzip",
        on_rows: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """``on_rows``: called with the timestamps of every appended block (live progress)."""
        self.group = group
        self.on_rows = on_rows
        self.spill_bytes = spill_bytes
        self.compression = compression
        self._blocks: dict[str, list[np.ndarray]] = {}
        self._buffered = 0
        self._spilled = False
        self._n = 0
        self._names: tuple[str, ...] = ()

    @property
    def n_steps(self) -> int:
        return self._n

    @property
    def spilled(self) -> bool:
        return self._spilled

    def append(
        self, arrays: Mapping[str, np.ndarray], timestamps: np.ndarray, valid: np.ndarray
    ) -> None:
        """Add rows: every array time-first with ``len(timestamps)`` rows, the same array
        names (and per-row shapes and dtypes) on every call."""
        rows = {name: np.asarray(a) for name, a in arrays.items()}
        rows[TIMESTAMPS] = np.asarray(timestamps, dtype=np.float64)
        rows[VALID] = np.asarray(valid, dtype=bool)
        n = len(rows[TIMESTAMPS])
        names = tuple(arrays)
        if not names:
            raise ValueError("a clip needs at least one feature array")
        if self._names and names != self._names:
            raise ValueError(f"arrays {names} differ from the first block's {self._names}")
        for name, a in rows.items():
            if name in RESERVED and name in arrays:
                raise ValueError(f"array name {name!r} is reserved")
            if a.dtype == object:
                raise ValueError(f"array {name!r} has object dtype; store plain numbers")
            if a.ndim == 0 or a.shape[0] != n:
                raise ValueError(f"array {name!r} has shape {a.shape}; expected {n} rows")
        self._names = names
        if n == 0:
            return
        if self.on_rows is not None:
            self.on_rows(rows[TIMESTAMPS])
        self._n += n
        if self._spilled:
            for name, a in rows.items():
                self._extend(name, a)
            return
        for name, a in rows.items():
            self._blocks.setdefault(name, []).append(np.ascontiguousarray(a))
            self._buffered += a.nbytes
        if self.group is not None and self._buffered > self.spill_bytes:
            self._spill()

    def take(self, name: str, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (any order, repeats allowed) of array ``name`` written so far."""
        index = np.asarray(index, dtype=np.int64)
        if not self._spilled:
            return self._joined(name)[index]
        uniq, inverse = np.unique(index, return_inverse=True)
        rows = self.group[name][uniq][inverse]
        return rows.astype(bool) if name == VALID else rows

    def put(self, name: str, index: np.ndarray, values: np.ndarray) -> None:
        """Overwrite rows ``index`` (distinct) of array ``name`` with ``values``."""
        index = np.asarray(index, dtype=np.int64)
        if not self._spilled:
            self._joined(name)[index] = values
            return
        order = np.argsort(index)
        values = np.asarray(values)[order]
        self.group[name][index[order]] = values.astype(np.uint8) if name == VALID else values

    def close(
        self, attrs: Mapping[str, Any], source_sha256: str = "", cache_key: str = ""
    ) -> ClipFeatures | None:
        """Finish the clip: write it into the group (returns None), or return it whole."""
        if not self._spilled:
            feats = ClipFeatures(
                arrays={name: self._joined(name) for name in self._names},
                timestamps=self._joined(TIMESTAMPS),
                valid=self._joined(VALID),
                attrs=dict(attrs),
            )
            if self.group is None:
                return feats
            write_clip_group(self.group, feats, source_sha256, cache_key, self.compression)
            return None
        g = self.group
        for name in (*self._names, *RESERVED):
            g[name].attrs["sha256"] = dataset_checksum(g[name])
        set_clip_attrs(g, dict(attrs), source_sha256, self._n, cache_key)
        return None

    def _joined(self, name: str) -> np.ndarray:
        blocks = self._blocks.get(name)
        if blocks is None:
            raise KeyError(f"no array {name!r} in this clip")
        if len(blocks) > 1:
            blocks[:] = [np.concatenate(blocks)]
        return blocks[0]

    def _spill(self) -> None:
        assert self.group is not None
        for name, blocks in self._blocks.items():
            first = blocks[0]
            row_bytes = max(1, first[:1].nbytes)
            chunk_rows = max(1, min(CHUNK_BYTES // row_bytes, 1 << 16))
            # Spilled arrays are large by definition: compress all but the time axis and flags.
            kwargs = {} if name in RESERVED else compression_kwargs(self.compression, 1 << 20)
            self.group.create_dataset(
                name,
                shape=(0, *first.shape[1:]),
                maxshape=(None, *first.shape[1:]),
                dtype=np.uint8 if name == VALID else first.dtype,
                chunks=(chunk_rows, *first.shape[1:]),
                track_times=False,
                **kwargs,
            )
            for block in blocks:
                self._extend(name, block)
        self._blocks.clear()
        self._buffered = 0
        self._spilled = True

    def _extend(self, name: str, a: np.ndarray) -> None:
        ds = self.group[name]
        if name == VALID:
            a = a.astype(np.uint8)
        n0 = ds.shape[0]
        ds.resize(n0 + len(a), axis=0)
        ds[n0:] = a
