"""Temporal convolutional network on mel frames (Conv-TasNet TCN as in Asteroid, the
backbone the MPUC paper adapts, ref [68]).

Input ``(B, T, n_mels)`` with a ``(B, T)`` mask; output ``(B, out_dim)``: a global-layer-
normed bottleneck, ``n_repeats`` x ``n_blocks`` residual depthwise-separable blocks with
dilations 1, 2, 4, ..., then the mean over valid steps, PReLU and a linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import masked_mean
from .config import TCNConfig


class GlobalLayerNorm(nn.Module):
    """Normalise each sample over channels and valid time steps (gLN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        count = (m.sum((1, 2), keepdim=True) * x.shape[1]).clamp(min=1.0)
        mean = (x * m).sum((1, 2), keepdim=True) / count
        var = (((x - mean) * m) ** 2).sum((1, 2), keepdim=True) / count
        return ((x - mean) / torch.sqrt(var + 1e-8) * self.gamma + self.beta) * m


class TCNBlock(nn.Module):
    def __init__(self, chan: int, hid: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(chan, hid, 1)
        self.act1, self.norm1 = nn.PReLU(), GlobalLayerNorm(hid)
        pad = (kernel - 1) * dilation // 2
        self.depth = nn.Conv1d(hid, hid, kernel, padding=pad, dilation=dilation, groups=hid)
        self.act2, self.norm2 = nn.PReLU(), GlobalLayerNorm(hid)
        self.res = nn.Conv1d(hid, chan, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm1(self.act1(self.inp(x)), mask)
        y = self.depth(y)[..., : x.shape[-1]]
        y = self.norm2(self.act2(y), mask)
        return self.res(y)


class TCN(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, cfg: TCNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or TCNConfig()
        self.out_dim = out_dim
        self.in_norm = GlobalLayerNorm(in_dim)
        self.bottleneck = nn.Conv1d(in_dim, cfg.bn_chan, 1)
        self.blocks = nn.ModuleList(
            TCNBlock(cfg.bn_chan, cfg.hid_chan, cfg.kernel, 2**b)
            for _ in range(cfg.n_repeats)
            for b in range(cfg.n_blocks)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Sequential(nn.PReLU(), nn.Linear(cfg.bn_chan, out_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1).to(x.dtype)  # padded steps stay zero between blocks
        h = x.transpose(1, 2)  # (B, F, T)
        h = self.dropout(self.bottleneck(self.in_norm(h, mask))) * m
        for block in self.blocks:
            h = (h + self.dropout(block(h, mask))) * m
        return self.out(masked_mean(h.transpose(1, 2), mask))
