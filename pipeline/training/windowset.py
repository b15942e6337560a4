"""Aligned multi-modality windows over the feature shards, in numpy (no torch).

The trainer's :class:`~pipeline.training.dataset.WindowDataset` is this class plus torch
tensors; other projects use it (or :func:`pipeline.api.iter_windows`) with the core install.

One item is a clip: ``{"index": int, "clip_id": str, "target": value or None, "views": [view,
...]}`` where each view is ``{modality: {"x": (steps, ...) array, "mask": (steps,) bool
array}}``. All modalities of a view are cut at the same times (the shards share one time
base); with ``views=2`` and random windows the two views are two random windows of the same
clip (the MPUC temporal augmentation). Masked steps are zero. Without random windows the
window is the centred one, or the first with ``eval_at="first"`` (evaluation). Cutting
rules: :mod:`pipeline.training.windows`.

HDF5 files are opened lazily, by each process on first use (DataLoader workers open their
own handles; nothing open is pickled). Window randomness comes from ``(seed, epoch, index)``
so an epoch draws the same windows whatever the number of workers or ranks.

Reading, and what each process keeps:

1. A clip's small facts (timestamps, validity, row shape, dtype, shard) are read once per
   process into ``meta`` (a mapping several WindowSets may share); :meth:`WindowSet.prepare`
   reads them all before DataLoader workers start, so the workers inherit them and open
   nothing but the arrays they read.
2. The array itself: with ``cache`` a directory, a view of the decoded clip in one
   memory-mapped file that all processes share (:mod:`pipeline.training.clipcache`); with
   ``cache=True``, decoded into this process's memory; otherwise the HDF5 dataset, kept
   open in a small per-process LRU (each open dataset holds HDF5's chunk cache, so an
   unbounded set of open clips would grow without limit), and only the rows a window needs
   are read.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..store.format import RESERVED, TIMESTAMPS, VALID
from ..store.reader import FeatureReader, open_shard, shard_clip
from .clipcache import ClipCache, read_dtype
from .config import InputConfig
from .windows import clip_rows, gather, row_spacing, sequence_rows, time_rows, window_start

ROWS = {"time": time_rows, "sequence": sequence_rows, "clip": clip_rows}
CHUNK_CACHE_BYTES = 4 * 2**20  # HDF5 chunk cache of each open dataset (1 MiB thrashes on crops)
# Open HDF5 datasets a process keeps, by the decoded bytes their chunk caches can hold (the
# smaller of a dataset's size and CHUNK_CACHE_BYTES): audio clips stay open, face clips come
# and go. Unbounded, every clip of a long corpus would keep its chunk cache in every worker.
OPEN_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ClipMeta:
    """A clip's facts for one array: enough to cut windows without opening the shard."""

    shard: str
    timestamps: np.ndarray
    valid: np.ndarray
    row_shape: tuple[int, ...]
    dtype: np.dtype  # what rows are handed out as (float64 read as float32)


class DataError(RuntimeError):
    """Shards or manifests do not hold what the training configuration asks for."""


class WindowSet:
    """Windows of ``inputs`` (modality -> how its shards become an input) over ``clip_ids``.

    ``feature_dirs`` maps each modality to its feature directory; ``window_seconds`` 0 takes
    the whole clip; ``durations`` (seconds, per clip) default to the end of the last row.
    ``targets`` (one per clip) are optional: they are only handed through. ``cache``: False,
    True (decoded clips in this process's memory) or a directory (decoded clips in one
    memory-mapped file per modality, shared by every process). ``meta``: a mapping to keep
    the clips' timestamps and validity in, shared with other WindowSets of the same shards.
    """

    def __init__(
        self,
        feature_dirs: Mapping[str, str | Path],
        inputs: Mapping[str, InputConfig],
        clip_ids: Sequence[str],
        targets: np.ndarray | Sequence[Any] | None = None,
        durations: Sequence[float] | None = None,
        window_seconds: float = 0.0,
        views: int = 1,
        random_windows: bool = False,
        seed: int = 0,
        cache: bool | str | Path = False,
        meta: MutableMapping[tuple[str, str, str], ClipMeta] | None = None,
        eval_at: str = "centre",
    ) -> None:
        missing = [m for m in inputs if m not in feature_dirs]
        if missing:
            raise DataError(f"no feature directory for modality {', '.join(missing)}")
        self.feature_dirs = {m: Path(feature_dirs[m]) for m in inputs}
        self.inputs = dict(inputs)
        self.clip_ids = list(clip_ids)
        self.targets = None if targets is None else np.asarray(targets)
        if self.targets is not None and len(self.targets) != len(self.clip_ids):
            raise ValueError("one target per clip is needed")
        self.durations = list(durations) if durations is not None else [0.0] * len(clip_ids)
        self.window_seconds = window_seconds
        self.views = views
        self.random_windows = random_windows
        self.seed = seed
        self.cache = cache
        self.eval_at = eval_at
        self.epoch = 0
        self._meta = {} if meta is None else meta
        self._shared: dict[str, ClipCache] = {}
        self._reset()

    # -- process-local state -------------------------------------------------------------
    def _reset(self) -> None:
        self._readers: dict[str, FeatureReader] = {}
        self._files: dict[tuple[str, str], h5py.File] = {}
        self._datasets: OrderedDict[tuple[str, str], h5py.Dataset] = OrderedDict()
        self._open_bytes = 0
        self._decoded: dict[tuple[str, str], np.ndarray] = {}  # cache=True
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for k in ("_readers", "_files", "_decoded"):
            state[k] = {}
        state["_datasets"], state["_open_bytes"] = OrderedDict(), 0
        return state

    def prepare(self) -> WindowSet:
        """Read every clip's facts (and build the shared decoded cache, if any) in this
        process, then close what is open: DataLoader workers started afterwards inherit the
        facts and open only the arrays they read."""
        for m in self.inputs:
            for cid in self.clip_ids:
                self.meta(m, cid)
            if isinstance(self.cache, (str, Path)):
                self._shared_cache(m).ensure()
        self.close()
        return self

    def _own(self) -> None:
        if os.getpid() != self._pid:  # forked: never use another process's handles
            self._reset()

    def _reader(self, modality: str) -> FeatureReader:
        self._own()
        r = self._readers.get(modality)
        if r is None:
            r = self._readers[modality] = FeatureReader(self.feature_dirs[modality])
        return r

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._reset()

    def set_epoch(self, epoch: int) -> None:
        """Draw the windows of ``epoch`` (call before iterating, like a DistributedSampler)."""
        self.epoch = epoch

    # -- reading ---------------------------------------------------------------------------
    def array_name(self, modality: str) -> str:
        return self.inputs[modality].array or self._reader(modality).primary

    def _shard_file(self, modality: str, shard: str) -> h5py.File:
        reader = self._reader(modality)
        f = self._files.get((modality, shard))
        if f is None:
            f = open_shard(reader.dir, shard, rdcc_nbytes=CHUNK_CACHE_BYTES)
            self._files[(modality, shard)] = f
        return f

    def _group(self, modality: str, clip_id: str) -> tuple[str, h5py.Group]:
        reader = self._reader(modality)
        try:
            shard = reader.index["clips"][clip_id]
        except KeyError:
            raise DataError(f"clip {clip_id!r} is not in {reader.dir}") from None
        # the one check of every reader: nothing from outside the shard
        return shard, shard_clip(self._shard_file(modality, shard), clip_id)

    def _shared_cache(self, modality: str) -> ClipCache:
        c = self._shared.get(modality)
        if c is None:
            c = ClipCache(self.feature_dirs[modality], self.array_name(modality), self.cache)
            self._shared[modality] = c
        return c

    def meta(self, modality: str, clip_id: str) -> ClipMeta:
        """The clip's timestamps, validity, row shape and dtype (read once, then kept)."""
        key = (str(self.feature_dirs[modality]), self.inputs[modality].array, clip_id)
        meta = self._meta.get(key)
        if meta is None:
            self._own()
            shard, group = self._group(modality, clip_id)
            name = self.array_name(modality)
            if name not in group:
                raise DataError(
                    f"{self.feature_dirs[modality]} has no array {name!r} (arrays: "
                    f"{', '.join(sorted(k for k in group if k not in RESERVED))}); set "
                    f"train.inputs.{modality}.array"
                )
            if "track" in group:  # faces.select: all: a row per face, several at one time
                raise DataError(
                    f"{self.feature_dirs[modality]}: clip {clip_id!r} holds every face track "
                    f"(faces.select: all); training takes one person per clip: extract "
                    f"{modality} with another faces.select"
                )
            ds = group[name]
            meta = ClipMeta(
                shard,
                group[TIMESTAMPS][()],
                group[VALID][()].astype(bool),
                tuple(ds.shape[1:]),
                read_dtype(ds.dtype),
            )
            self._meta[key] = meta
        return meta

    def _array(self, modality: str, clip_id: str, meta: ClipMeta) -> np.ndarray | h5py.Dataset:
        """The clip's rows: a view of the shared decoded file, this process's decoded copy,
        or the open HDF5 dataset (rows read on demand)."""
        if isinstance(self.cache, (str, Path)):
            return self._shared_cache(modality).clip(clip_id)
        key = (modality, clip_id)
        if self.cache:
            arr = self._decoded.get(key)
            if arr is None:
                arr = self._decoded[key] = self._open(modality, clip_id, meta)[()]
            return arr
        ds = self._datasets.get(key)
        if ds is None:
            ds = self._datasets[key] = self._open(modality, clip_id, meta)
            self._open_bytes += _cache_bytes(ds)
            while self._open_bytes > OPEN_BYTES and len(self._datasets) > 1:
                _, old = self._datasets.popitem(last=False)
                self._open_bytes -= _cache_bytes(old)
        else:
            self._datasets.move_to_end(key)
        return ds

    def _open(self, modality: str, clip_id: str, meta: ClipMeta) -> h5py.Dataset:
        f = self._shard_file(modality, meta.shard)  # checked as in meta(): this process's handle
        return shard_clip(f, clip_id)[self.array_name(modality)]

    def clip(self, modality: str, clip_id: str) -> _ClipRows:
        """Timestamps, validity and the modality's array of one clip."""
        self._own()
        meta = self.meta(modality, clip_id)
        array = self._array(modality, clip_id, meta)
        return _ClipRows(meta.timestamps, meta.valid, array, meta.row_shape, meta.dtype)

    def duration(self, i: int) -> float:
        if self.durations[i] > 0:
            return float(self.durations[i])
        ends = []
        for m in self.inputs:
            ts = self.meta(m, self.clip_ids[i]).timestamps
            if len(ts):
                step = row_spacing(ts)
                ends.append(ts[-1] + (step if np.isfinite(step) else 0.0))
        return float(max(ends, default=0.0))

    # -- items -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clip_ids)

    def cut_views(self, i: int, starts: Sequence[float], length: float) -> list[dict]:
        """All modalities of clip ``i`` in the windows ``[start, start + length)``; each
        modality's rows are read from the shard once for all windows."""
        views: list[dict] = [{} for _ in starts]
        for m, spec in self.inputs.items():
            clip = self.clip(m, self.clip_ids[i])
            cut = ROWS[spec.mode]
            cuts = [cut(clip.timestamps, clip.valid, s, length, spec.steps) for s in starts]
            wanted = np.unique(np.concatenate([idx[mask] for idx, mask in cuts]))
            block = clip.read(wanted)
            for view, (idx, mask) in zip(views, cuts, strict=True):
                x = gather(block, np.searchsorted(wanted, idx), mask, clip.row_shape, clip.dtype)
                view[m] = {"x": x, "mask": mask}
        return views

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``i``, or ``(epoch, i)``: the windows of that epoch (from an EpochSampler,
        so that persistent workers need no set_epoch)."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        rng = np.random.default_rng([self.seed, epoch, i]) if self.random_windows else None
        dur = self.duration(i)
        length = self.window_seconds if self.window_seconds > 0 else dur
        starts = [window_start(dur, length, rng, self.eval_at) for _ in range(self.views)]
        views = self.cut_views(i, starts, length)
        target = None if self.targets is None else self.targets[i]
        return {"index": i, "clip_id": self.clip_ids[i], "target": target, "views": views}

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one modality input, (steps, ...), read from the first clip."""
        if not self.clip_ids:
            raise DataError("the dataset has no clips")
        (view,) = self.cut_views(0, [0.0], self.window_seconds or self.duration(0))
        return {m: tuple(v["x"].shape) for m, v in view.items()}

    def valid_rows(self, modality: str, i: int) -> np.ndarray:
        """Every valid row of one modality of clip ``i`` (float64)."""
        clip = self.clip(modality, self.clip_ids[i])
        return clip.read(np.flatnonzero(clip.valid)).astype(np.float64)


def _cache_bytes(ds: h5py.Dataset) -> int:
    return min(int(ds.size) * ds.dtype.itemsize, CHUNK_CACHE_BYTES)


@dataclass
class _ClipRows:
    timestamps: np.ndarray
    valid: np.ndarray
    array: np.ndarray | h5py.Dataset
    row_shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (sorted, unique) of the array."""
        if len(rows) == 0:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        first, span = int(rows[0]), int(rows[-1] - rows[0] + 1)
        if isinstance(self.array, np.ndarray):
            block = self.array[rows]
        elif 2 * len(rows) >= span:  # dense: one slice (h5py's fancy indexing is slow)
            block = self.array[first : first + span][rows - first]
        else:  # sparse: row by row, the chunk cache serves neighbours
            block = np.stack([self.array[int(r)] for r in rows])
        return block.astype(self.dtype, copy=False)


def fit_standardizer(
    dataset: WindowSet, modalities: Sequence[str], max_clips: int = 256
) -> dict[str, tuple[float, float]]:
    """One mean and standard deviation per modality over the valid rows of up to
    ``max_clips`` clips (evenly spread) of ``dataset``: the fold's training clips. Only the
    modalities whose input has ``standardize`` are read."""
    n = len(dataset)
    picks = np.unique(np.linspace(0, n - 1, min(n, max_clips)).round().astype(int)) if n else []
    stats = {}
    for m in modalities:
        if not dataset.inputs[m].standardize:
            continue
        total, total_sq, count = 0.0, 0.0, 0
        for i in picks:
            rows = dataset.valid_rows(m, int(i))
            total += rows.sum()
            total_sq += np.square(rows).sum()
            count += rows.size
        mean = total / max(count, 1)
        std = float(np.sqrt(max(total_sq / max(count, 1) - mean**2, 0.0)))
        stats[m] = (float(mean), std if std > 1e-8 else 1.0)
    return stats
