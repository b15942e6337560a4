"""Spatio-temporal graph convolutional network (Yu et al. 2018, MPUC ref [65]) on the
iBUG 68-point facial landmark graph.

Input ``(B, T, 68, 2)`` landmarks (``landmarks_crop``: x, y in [0, 1] of the face crop) with
a ``(B, T)`` mask; output ``(B, out_dim)``. With ``drop_jaw`` the 17 jaw points are removed
first (51 nodes, as the MPUC code did). Two ST-Conv blocks (gated temporal convolution,
graph convolution with the normalised adjacency D^-1/2 (A + I) D^-1/2, temporal convolution,
batch norm over nodes), a last temporal convolution, the mean over valid steps, and a linear
layer over the flattened nodes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .common import masked_mean
from .config import STGCNConfig

N_POINTS = 68
JAW = range(0, 17)


def _chain(a: int, b: int, closed: bool = False) -> list[tuple[int, int]]:
    edges = [(i, i + 1) for i in range(a, b)]
    return edges + [(b, a)] if closed else edges


# iBUG-68 contours: jaw 0-16, brows 17-21 / 22-26, nose bridge 27-30, lower nose 31-35,
# eyes 36-41 / 42-47 (closed), outer lip 48-59 and inner lip 60-67 (closed) ...
IBUG68_EDGES: tuple[tuple[int, int], ...] = tuple(
    _chain(0, 16)
    + _chain(17, 21)
    + _chain(22, 26)
    + _chain(27, 30)
    + _chain(31, 35)
    + [(30, 33)]
    + _chain(36, 41, closed=True)
    + _chain(42, 47, closed=True)
    + _chain(48, 59, closed=True)
    + _chain(60, 67, closed=True)
    # ... and a few links between the parts so that the graph is connected.
    + [(19, 37), (24, 44), (21, 27), (22, 27), (39, 27), (42, 27), (33, 51)]
    + [(48, 60), (54, 64), (0, 17), (16, 26), (4, 48), (12, 54), (8, 57)]
)


def landmark_nodes(drop_jaw: bool) -> list[int]:
    return [i for i in range(N_POINTS) if not (drop_jaw and i in JAW)]


def normalized_adjacency(drop_jaw: bool = False) -> np.ndarray:
    """D^-1/2 (A + I) D^-1/2 over the kept nodes (float32, symmetric)."""
    nodes = landmark_nodes(drop_jaw)
    pos = {n: i for i, n in enumerate(nodes)}
    a = np.eye(len(nodes), dtype=np.float32)
    for i, j in IBUG68_EDGES:
        if i in pos and j in pos:
            a[pos[i], pos[j]] = a[pos[j], pos[i]] = 1.0
    d = 1.0 / np.sqrt(a.sum(1))
    return (a * d[:, None] * d[None, :]).astype(np.float32)


class TimeBlock(nn.Module):
    """Gated temporal convolution per node: relu(conv1(x) + sigmoid(conv2(x)) + conv3(x))."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        pad = (0, kernel // 2)
        self.conv1, self.conv2, self.conv3 = (
            nn.Conv2d(cin, cout, (1, kernel), padding=pad) for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.permute(0, 3, 1, 2)  # (B, C, N, T)
        out = torch.relu(self.conv1(h) + torch.sigmoid(self.conv2(h)) + self.conv3(h))
        return out.permute(0, 2, 3, 1)  # (B, N, T, C)


class STConvBlock(nn.Module):
    def __init__(self, cin: int, spatial: int, cout: int, nodes: int, kernel: int) -> None:
        super().__init__()
        self.temporal1 = TimeBlock(cin, cout, kernel)
        self.theta = nn.Parameter(torch.empty(cout, spatial))
        nn.init.uniform_(self.theta, -1 / spatial**0.5, 1 / spatial**0.5)
        self.temporal2 = TimeBlock(spatial, cout, kernel)
        self.norm = nn.BatchNorm2d(nodes)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        t = self.temporal1(x)
        g = torch.einsum("ij,bjtc->bitc", adj, t)
        return self.norm(self.temporal2(torch.relu(g @ self.theta)))


class STGCN(nn.Module):
    def __init__(self, n_points: int, out_dim: int, cfg: STGCNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or STGCNConfig()
        if n_points == N_POINTS:
            nodes = landmark_nodes(cfg.drop_jaw)
        elif n_points == N_POINTS - len(JAW) and cfg.drop_jaw:
            nodes = list(range(n_points))  # the jaw is already gone
        else:
            raise ValueError(
                f"ST-GCN takes iBUG-68 landmarks (68 points, or 51 with drop_jaw); got {n_points}"
            )
        self.register_buffer("nodes", torch.tensor(nodes), persistent=False)
        self.register_buffer("adj", torch.from_numpy(normalized_adjacency(cfg.drop_jaw)))
        c, s, k = cfg.channels, cfg.spatial_channels, cfg.kernel
        self.block1 = STConvBlock(2, s, c, len(nodes), k)
        self.block2 = STConvBlock(c, s, c, len(nodes), k)
        self.last = TimeBlock(c, c, k)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(len(nodes) * c, out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[:, None, :, None].to(x.dtype)  # (B, 1, T, 1)
        h = x.float()[:, :, self.nodes].permute(0, 2, 1, 3) * m  # (B, N, T, 2)
        h = self.block1(h, self.adj) * m
        h = self.block2(h, self.adj) * m
        h = self.last(h)  # (B, N, T, C)
        pooled = masked_mean(h.transpose(1, 2), mask)  # (B, N, C)
        return self.out(self.dropout(pooled.flatten(1)))
