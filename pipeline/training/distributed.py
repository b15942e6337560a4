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

from ..devices import choose_device, worker_gpu
from ..kernels import cpu_exact, pin_torch
from .precision import FP32, Precision, precision_scope, resolve_precision


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    precision: Precision = FP32  # train.precision resolved on ``device``

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
    """``auto``: CUDA when this torch build can use a GPU here, else CPU (the log says which
    and why); ``cuda`` on a machine that cannot run it is an error naming the reason. Local
    rank ``k`` takes GPU ``k mod n``."""
    if choose_device(preference, "train") == "cuda":
        return torch.device("cuda", worker_gpu(local_rank, torch.cuda.device_count()))
    return torch.device("cpu")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own randomness (dropout): rank 0 keeps ``seed`` (a single
    process draws what rank 0 of a run would), the others draw apart from it."""
    if rank == 0:
        return seed
    return (seed * 1_000_033 + 7_919 * rank) % (2**63)


def current_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (itself without a process group): decisions that
    must agree, such as early stopping, are taken on rank 0 and followed by all."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=_collective_device())
    return box[0]


def sum_over_ranks(values: list[float]) -> list[float]:
    """Element-wise sums of ``values`` over the ranks (float64; itself without a group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


@contextlib.contextmanager
def distributed(
    device_preference: str = "auto", threads: int = 0, precision: str = "fp32"
) -> Iterator[DistContext]:
    """Join the process group torchrun describes (if any) for the duration of the block;
    ``threads`` > 0 sets torch's CPU threads meanwhile; ``precision`` (``train.precision``)
    sets the numeric switches meanwhile (:mod:`pipeline.training.precision`). On the CPU in
    fp32, torch's kernels are pinned for the block (:mod:`pipeline.kernels`), so a model
    trains to the same bytes on every x86-64 CPU; bf16/fp16 on a CPU keep oneDNN (its AMX
    and AVX-512 kernels are what make them fast there), and promise no such thing."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local_rank)
    policy = resolve_precision(precision, device)
    started, before = False, torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        started = True
    if device.type == "cpu":
        pin_torch()
    try:
        exact = cpu_exact(device.type) if policy.name == "fp32" else contextlib.nullcontext()
        with precision_scope(policy), exact:
            yield DistContext(rank, world, local_rank, device, policy)
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
