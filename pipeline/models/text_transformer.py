"""Transformer encoder (Vaswani et al., MPUC ref [60]) on word vectors.

Input ``(B, T, D)`` word vectors with a ``(B, T)`` mask; output ``(B, out_dim)``. Vectors are
projected to ``d_model`` when D differs, get sinusoidal positions, pass ``layers`` encoder
layers with padding masked out of attention, and are averaged over the valid words (as the
MPUC code does) before a linear layer.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .common import masked_mean
from .config import TransformerConfig


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe


class TextTransformer(nn.Module):
    def __init__(
        self, in_dim: int, steps: int, out_dim: int, cfg: TransformerConfig | None = None
    ) -> None:
        super().__init__()
        cfg = cfg or TransformerConfig()
        d = cfg.d_model
        self.inp = nn.Linear(in_dim, d) if in_dim != d else nn.Identity()
        self.register_buffer("positions", sinusoidal_positions(steps, d), persistent=False)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_dim, cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.float()) + self.positions[: x.shape[1]]
        attend = mask.clone()
        attend[:, 0] |= ~mask.any(1)  # a clip without words still attends to one step
        h = self.encoder(h, src_key_padding_mask=~attend)
        return self.out(masked_mean(h, mask))
