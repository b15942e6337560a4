"""Small building blocks shared by the backbones."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_SYNC_FREE = [0]  # depth of sync_free_paths() blocks


def sync_free(x: torch.Tensor) -> bool:
    """Whether a backbone takes its paths that never read a tensor's values on the host (no
    boolean selection, no lengths moved to the CPU): always on CUDA, where such a read makes
    the host wait for the GPU at every step; on a CPU, whose own paths skip padding, only
    inside :func:`sync_free_paths`."""
    return x.is_cuda or _SYNC_FREE[0] > 0


@contextlib.contextmanager
def sync_free_paths() -> Iterator[None]:
    """Run the CUDA paths on a CPU (the host-sync check of a training step, the tests)."""
    _SYNC_FREE[0] += 1
    try:
        yield
    finally:
        _SYNC_FREE[0] -= 1


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only steps where ``mask`` is true.

    ``mask`` has the leading shape of ``x`` up to and including ``dim``; a row with no valid
    step gives zeros.
    """
    m = mask.to(x.dtype)
    while m.dim() < x.dim():
        m = m.unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1.0)


class Standardize(nn.Module):
    """(x - mean) / std with constants fitted on the training clips (kept in the state)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = (x.float() - self.mean) / self.std
        m = mask
        while m.dim() < y.dim():
            m = m.unsqueeze(-1)
        return y * m.to(y.dtype)
