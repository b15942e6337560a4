"""Data loading shared by the loops: per-rank samplers, loaders, batches on the device."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from ..batches import collate_packed, unpacked
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


def loader_options(ds: Dataset, ctx: DistContext, persistent: bool = True) -> dict[str, Any]:
    """How every DataLoader of the trainer reads ``ds``: the dataset's workers
    (``train.num_workers``, resolved when the dataset was built) with ``prefetch_factor``
    batches each, kept alive between epochs (``persistent``), and pinned host memory on
    CUDA so that copies to the GPU overlap the compute. A Subset reads as its dataset.
    With workers, the dataset is prepared first (clip facts read, shared cache built, files
    closed) so that the workers inherit what it read and open only the arrays."""
    base = ds.dataset if isinstance(ds, Subset) else ds
    workers = int(getattr(base, "workers", 0))
    opts: dict[str, Any] = {"num_workers": workers, "pin_memory": ctx.device.type == "cuda"}
    if workers:
        if isinstance(base, WindowDataset):
            base.prepare()
        opts["prefetch_factor"] = int(getattr(base, "prefetch_factor", 2))
        opts["persistent_workers"] = persistent
        opts["collate_fn"] = collate_packed  # one shared buffer a batch (batches.py)
    return opts


class Batches:
    """A DataLoader whose batches come out as the loops use them (unpacked)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Any]:
        return (unpacked(b) for b in self.loader)

    def __len__(self) -> int:
        return len(self.loader)


def make_loader(
    ds: WindowDataset,
    batch_size: int,
    ctx: DistContext,
    shuffle: bool,
    seed: int,
) -> tuple[Batches, EpochSampler]:
    """``batch_size`` is the global batch: each of the world's ranks loads its share."""
    sampler = EpochSampler(len(ds), ctx, shuffle, seed)
    loader = DataLoader(
        ds,
        batch_size=max(1, batch_size // ctx.world_size),
        sampler=sampler,
        **loader_options(ds, ctx),
    )
    return Batches(loader), sampler


def eval_loader(
    ds: Dataset,
    ctx: DistContext,
    batch_size: int = 64,
    batch_sampler: Sequence[Sequence[Any]] | None = None,
    persistent: bool = False,
) -> Batches:
    """The clips of ``ds`` in order (or ``batch_sampler``'s batches), for validation,
    prediction and features. ``persistent``: for a loader read every epoch."""
    opts = loader_options(ds, ctx, persistent)
    if batch_sampler is not None:
        return Batches(DataLoader(ds, batch_sampler=batch_sampler, **opts))
    return Batches(DataLoader(ds, batch_size=batch_size, **opts))


def to_device_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """``model`` on the run's device; on CUDA the video convolutions (3-D) take the
    channels-last layout their fast kernels want (``Precision.channels_last``)."""
    model = model.to(ctx.device)
    if ctx.precision.channels_last:
        for m in model.modules():
            if isinstance(m, nn.Conv3d):
                m.to(memory_format=torch.channels_last_3d)
    return model


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
