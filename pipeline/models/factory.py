"""Build backbones and the MPUC multimodal encoder from the ``train`` parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..training.config import TrainConfig
from .common import Standardize
from .heads import MLPHead
from .qian_han import AttentionLSTM, SpecCNN
from .r2plus1d import R2Plus1D
from .stgcn import STGCN
from .tcn import TCN
from .text_transformer import TextTransformer

# Input rows each backbone takes (after the leading time/segment axis).
ROW_SHAPES = {
    "tcn": "(features,)",
    "transformer": "(features,)",
    "lstm": "(features,)",
    "r2plus1d": "(height, width, 3)",
    "stgcn": "(68 or 51 points, 2)",
    "spec_cnn": "(height, width)",
}


def build_backbone(kind: str, shape: Sequence[int], cfg: TrainConfig) -> nn.Module:
    """A backbone for inputs of ``shape`` = (steps, *row); it has ``out_dim``."""
    steps, row = shape[0], tuple(shape[1:])
    ok = {
        "tcn": len(row) == 1,
        "transformer": len(row) == 1,
        "lstm": len(row) == 1,
        "r2plus1d": len(row) == 3 and row[-1] == 3,
        "stgcn": len(row) == 2 and row[-1] == 2,
        "spec_cnn": len(row) == 2,
    }
    if kind not in ok:
        raise ValueError(f"unknown backbone {kind!r}; known: {', '.join(sorted(ok))}")
    if not ok[kind]:
        raise ValueError(f"backbone {kind} takes rows {ROW_SHAPES[kind]}; the data has {row}")
    d = cfg.feature_dim
    if kind == "tcn":
        return TCN(row[0], d, cfg.tcn)
    if kind == "transformer":
        return TextTransformer(row[0], steps, d, cfg.transformer)
    if kind == "lstm":
        return AttentionLSTM(row[0], cfg.lstm)
    if kind == "r2plus1d":
        return R2Plus1D(cfg.r2plus1d)
    if kind == "stgcn":
        return STGCN(row[0], d, cfg.stgcn)
    return SpecCNN(row[0], row[1], cfg.spec_cnn)


class Branch(nn.Module):
    """One modality: standardisation, backbone, and a linear map to ``dim`` if needed."""

    def __init__(self, backbone: nn.Module, dim: int | None, mean: float, std: float) -> None:
        super().__init__()
        self.norm = Standardize(mean, std)
        self.backbone = backbone
        out = backbone.out_dim
        self.to_dim = nn.Linear(out, dim) if dim and dim != out else nn.Identity()
        self.out_dim = dim or out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = self.norm(x, mask)
        return self.to_dim(self.backbone(x, mask))


def build_branches(
    modalities: Sequence[str],
    shapes: Mapping[str, Sequence[int]],
    cfg: TrainConfig,
    stats: Mapping[str, tuple[float, float]],
    dim: int | None = None,
    backbones: Mapping[str, str] | None = None,
) -> nn.ModuleDict:
    """Branches for ``modalities``; ``backbones`` overrides train.inputs.<m>.backbone."""
    out = nn.ModuleDict()
    for m in modalities:
        kind = (backbones or {}).get(m, cfg.input(m).backbone)
        mean, std = stats.get(m, (0.0, 1.0)) if cfg.input(m).standardize else (0.0, 1.0)
        out[m] = Branch(build_backbone(kind, shapes[m], cfg), dim, mean, std)
    return out


class MultiModalEncoder(nn.Module):
    """MPUC: a backbone per modality (-> ``feature_dim``) and an fc-ReLU-fc projection head
    per modality. ``features`` are what the downstream classifier sees; ``forward`` also
    returns the projections the contrastive loss compares."""

    def __init__(self, branches: nn.ModuleDict, proj_hidden: int) -> None:
        super().__init__()
        self.branches = branches
        self.heads = nn.ModuleDict(
            {m: MLPHead(b.out_dim, proj_hidden, b.out_dim) for m, b in branches.items()}
        )

    @property
    def modalities(self) -> list[str]:
        return list(self.branches)

    def features(self, view: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {m: b(view[m]["x"], view[m]["mask"]) for m, b in self.branches.items()}

    def forward(self, view):
        feats = self.features(view)
        return feats, {m: self.heads[m](f) for m, f in feats.items()}


def build_encoder(
    modalities: Sequence[str],
    shapes: Mapping[str, Sequence[int]],
    cfg: TrainConfig,
    stats: Mapping[str, tuple[float, float]],
) -> MultiModalEncoder:
    branches = build_branches(modalities, shapes, cfg, stats, dim=cfg.feature_dim)
    return MultiModalEncoder(branches, cfg.projection_hidden)
