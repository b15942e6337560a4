"""Aligned multi-modality windows over the feature shards, in numpy (no torch).

The trainer's :class:`~pipeline.training.dataset.WindowDataset` is this class plus torch
tensors; other projects use it (or :func:`pipeline.api.iter_windows`) with the core install.

One item is a clip: ``{"index": int, "clip_id": str, "target": value or None, "views": [view,
...]}`` where each view is ``{modality: {"x": (steps, ...) array, "mask": (steps,) bool
array}}``. All modalities of a view are cut at the same times (the shards share one time
base); with ``views=2`` and random windows the two views are two random windows of the same
clip (the MPUC temporal augmentation). Masked steps are zero. Without random windows the
window is the centred one (evaluation). Cutting rules: :mod:`pipeline.training.windows`.

HDF5 files are opened lazily, by each process on first use (DataLoader workers open their
own handles; nothing open is pickled). Window randomness comes from ``(seed, epoch, index)``
so an epoch draws the same windows whatever the number of workers or ranks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..store.format import RESERVED, TIMESTAMPS, VALID
from ..store.reader import FeatureReader, open_shard, shard_clip
from .config import InputConfig
from .windows import clip_rows, gather, row_spacing, sequence_rows, time_rows, window_start

ROWS = {"time": time_rows, "sequence": sequence_rows, "clip": clip_rows}


class DataError(RuntimeError):
    """Shards or manifests do not hold what the training configuration asks for."""


class WindowSet:
    """Windows of ``inputs`` (modality -> how its shards become an input) over ``clip_ids``.

    ``feature_dirs`` maps each modality to its feature directory; ``window_seconds`` 0 takes
    the whole clip; ``durations`` (seconds, per clip) default to the end of the last row.
    ``targets`` (one per clip) are optional: they are only handed through.
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
        cache: bool = False,
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
        self.epoch = 0
        self._reset()

    # -- process-local state -------------------------------------------------------------
    def _reset(self) -> None:
        self._readers: dict[str, FeatureReader] = {}
        self._files: dict[tuple[str, str], h5py.File] = {}
        self._clips: dict[tuple[str, str], _ClipRows] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_files"], state["_clips"] = {}, {}, {}
        return state

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

    def _group(self, modality: str, clip_id: str) -> h5py.Group:
        reader = self._reader(modality)
        try:
            shard = reader.index["clips"][clip_id]
        except KeyError:
            raise DataError(f"clip {clip_id!r} is not in {reader.dir}") from None
        f = self._files.get((modality, shard))
        if f is None:
            f = self._files[(modality, shard)] = open_shard(reader.dir, shard)
        return shard_clip(f, clip_id)  # the one check of every reader: nothing from elsewhere

    def clip(self, modality: str, clip_id: str) -> _ClipRows:
        """Timestamps, validity and the modality's array of one clip: an open HDF5 dataset
        (rows read on demand), or in memory with ``cache``."""
        self._own()
        key = (modality, clip_id)
        rows = self._clips.get(key)
        if rows is None:
            group = self._group(modality, clip_id)
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
            array = group[name][()] if self.cache else group[name]
            rows = _ClipRows(group[TIMESTAMPS][()], group[VALID][()].astype(bool), array)
            self._clips[key] = rows  # timestamps are small; arrays stay on disk unless cached
        return rows

    def duration(self, i: int) -> float:
        if self.durations[i] > 0:
            return float(self.durations[i])
        ends = []
        for m in self.inputs:
            ts = self.clip(m, self.clip_ids[i]).timestamps
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
        starts = [window_start(dur, length, rng) for _ in range(self.views)]
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


@dataclass
class _ClipRows:
    timestamps: np.ndarray
    valid: np.ndarray
    array: np.ndarray | h5py.Dataset

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.array.dtype == np.float64 else self.array.dtype

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
