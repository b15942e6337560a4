"""Data loading shared by the loops: per-rank samplers, loaders, batches on the device."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..dataset import WindowDataset
from ..distributed import DistContext


class EpochSampler(Sampler):
    """This rank's share of the clips, shuffled per epoch from the seed, as (epoch, index)
    keys so that the dataset draws that epoch's windows even in persistent workers."""

    def __init__(self, n: int, ctx: DistContext, shuffle: bool, seed: int) -> None:
        self.inner = DistributedSampler(
            range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def make_loader(
    ds: WindowDataset,
    batch_size: int,
    ctx: DistContext,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
) -> tuple[DataLoader, EpochSampler]:
    """``batch_size`` is the global batch: each of the world's ranks loads its share."""
    sampler = EpochSampler(len(ds), ctx, shuffle, seed)
    loader = DataLoader(
        ds,
        batch_size=max(1, batch_size // ctx.world_size),
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=ctx.device.type == "cuda",
    )
    return loader, sampler


def to_device(view: Mapping[str, Mapping[str, torch.Tensor]], device: torch.device) -> dict:
    return {m: {k: t.to(device, non_blocking=True) for k, t in v.items()} for m, v in view.items()}


def cat_views(views: Sequence[Mapping[str, Mapping[str, torch.Tensor]]]) -> dict:
    """Stack V views of a batch into one batch of V * B (view-major) for one forward pass."""
    if len(views) == 1:
        return dict(views[0])
    return {m: {k: torch.cat([v[m][k] for v in views]) for k in views[0][m]} for m in views[0]}


def split_views(t: torch.Tensor, n_views: int) -> torch.Tensor:
    """(V * B, ...) from :func:`cat_views` back to (B, V, ...)."""
    return t.reshape(n_views, -1, *t.shape[1:]).transpose(0, 1)


def first_view(batch: Mapping[str, Any], device: torch.device) -> dict:
    return to_device(batch["views"][0], device)
