"""A torch Dataset of aligned multi-modality windows over the feature shards.

One item is a clip: ``{"index": int, "clip_id": str, "target": tensor, "views": [view, ...]}``
(no ``target`` when the dataset has no targets) where each
view is ``{modality: {"x": (steps, ...) tensor, "mask": (steps,) bool tensor}}``. The cutting
(same times for all modalities, two random views for MPUC, centred window for evaluation,
lazy per-process HDF5 handles, ``(seed, epoch, index)`` randomness) is
:class:`~pipeline.training.windowset.WindowSet`'s, in numpy; this class only makes tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import needs
from .config import InputConfig
from .windowset import DataError, WindowSet, fit_standardizer

with needs("WindowDataset", "train"):
    import torch
    from torch.utils.data import Dataset


class WindowDataset(WindowSet, Dataset):
    """``workers`` and ``prefetch_factor`` say how the trainer's DataLoaders read it
    (``train.num_workers`` resolved, ``train.prefetch_factor``)."""

    def __init__(
        self,
        feature_dirs: Mapping[str, str | Path],
        inputs: Mapping[str, InputConfig | Mapping[str, Any]],
        clip_ids: Sequence[str],
        targets: np.ndarray | None = None,
        durations: Sequence[float] | None = None,
        window_seconds: float = 0.0,
        views: int = 1,
        random_windows: bool = False,
        seed: int = 0,
        cache: bool | str | Path = False,
        meta: dict | None = None,
        workers: int = 0,
        prefetch_factor: int = 2,
        eval_at: str = "centre",
    ) -> None:
        from ..api import input_config  # mappings of fields, as iter_windows takes them

        inputs = {m: input_config(spec) for m, spec in inputs.items()}
        super().__init__(
            feature_dirs, inputs, clip_ids, targets, durations=durations,
            window_seconds=window_seconds, views=views, random_windows=random_windows,
            seed=seed, cache=cache, meta=meta, eval_at=eval_at,
        )
        self.workers, self.prefetch_factor = workers, prefetch_factor

    def cut_views(self, i: int, starts: Sequence[float], length: float) -> list[dict]:
        views = super().cut_views(i, starts, length)
        return [
            {m: {"x": torch.from_numpy(v["x"]), "mask": torch.from_numpy(v["mask"])}
             for m, v in view.items()}
            for view in views
        ]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        item = super().__getitem__(key)
        i = item["index"]
        out = {"index": i, "clip_id": item["clip_id"], "views": item["views"]}
        if self.targets is not None:
            out["target"] = torch.as_tensor(self.targets[i])
        return out


__all__ = ["DataError", "WindowDataset", "fit_standardizer"]
