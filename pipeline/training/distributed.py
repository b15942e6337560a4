"""torch.distributed for multi-GPU / multi-node runs started with ``torchrun``.

``torchrun --nproc_per_node=N stages/pretrain.py`` (or ``--nnodes``/``--rdzv-endpoint`` for
several machines) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without
them the run is a single process. The backend is NCCL on CUDA and gloo on CPU. Each rank
trains on its share of every batch (DistributedSampler, DDP averages gradients); the
contrastive losses gather the projections of all ranks (with gradients) so their negatives
are the whole global batch, exactly as in a single process. Rank 0 writes checkpoints,
models and reports; checkpoints must be on a file system every rank sees.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


@contextlib.contextmanager
def distributed(device_preference: str = "auto", threads: int = 0) -> Iterator[DistContext]:
    """Join the process group torchrun describes (if any) for the duration of the block;
    ``threads`` > 0 sets torch's CPU threads meanwhile."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    started, before = False, torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        started = True
    try:
        yield DistContext(rank, world, local_rank, device)
    finally:
        torch.set_num_threads(before)
        if started:
            dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around ``module`` when there are several ranks."""
    if not ctx.enabled:
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the summed gradient of its own slice
    (an all_reduce, which every backend supports)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.batch = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_batch(tensor: torch.Tensor, ctx: DistContext, grad: bool = True) -> torch.Tensor:
    """The tensors of every rank concatenated on the batch axis (rank order)."""
    if not ctx.enabled:
        return tensor
    if grad:
        return _GatherWithGrad.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
