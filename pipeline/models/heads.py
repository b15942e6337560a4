"""Heads: the fc-ReLU-fc projection / prediction head and the attention fusion baseline."""

from __future__ import annotations

import torch
from torch import nn


class MLPHead(nn.Sequential):
    """fc - ReLU - fc (MPUC §III-B/C); ``hidden=0`` makes it a single linear layer."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        if hidden > 0:
            super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))
        else:
            super().__init__(nn.Linear(in_dim, out_dim))


class AttentionFusion(nn.Module):
    """MPUC §IV-B attention baseline: the modality features (one 512-d token each) go
    through multi-head self-attention (Vaswani et al.), are concatenated and classified by
    an fc-ReLU-fc head."""

    def __init__(self, n_tokens: int, dim: int, heads: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.head = MLPHead(n_tokens * dim, hidden, n_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, M, dim) -> logits (B, n_out)."""
        attended, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return self.head(self.norm(tokens + attended).flatten(1))
