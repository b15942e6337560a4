"""R(2+1)D-18 (torchvision) on face-crop clips, with Kinetics-400 weights from a local file.

Input ``(B, T, H, W, 3)`` uint8 RGB crops (or floats in [0, 1]) with a ``(B, T)`` mask;
output ``(B, 512)``: the network's pooled features (its Kinetics classifier is dropped).
Frames are scaled to [0, 1] and normalised with the Kinetics mean and std the weights were
trained with; masked frames are zero after normalisation.

Weights are never downloaded: torchvision's ``weights=`` API is not used. Point
``train.r2plus1d.weights`` at a copy of torchvision's ``r2plus1d_18-91a641e6.pth``
(``R2Plus1D_18_Weights.KINETICS400_V1``), loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

from .config import R2Plus1DConfig

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
WEIGHTS_HELP = (
    "set train.r2plus1d.weights to a local copy of torchvision's Kinetics-400 R(2+1)D-18 "
    "state dict (R2Plus1D_18_Weights.KINETICS400_V1, file r2plus1d_18-91a641e6.pth, published "
    'under https://download.pytorch.org/models/), or to "" to train from scratch'
)


def video_resnet(layers: tuple[int, ...] = (2, 2, 2, 2)) -> VideoResNet:
    """torchvision's R(2+1)D; layers (2, 2, 2, 2) is r2plus1d_18 exactly."""
    return VideoResNet(
        block=BasicBlock,
        conv_makers=[Conv2Plus1D] * 4,
        layers=list(layers),
        stem=R2Plus1dStem,
    )


def load_weights(net: VideoResNet, path: str | Path) -> None:
    """Load a state dict from ``path`` into ``net``, leaving out the Kinetics classifier."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"R(2+1)D weights file {path} not found: {WEIGHTS_HELP}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict ({type(state).__name__}); {WEIGHTS_HELP}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path}: does not match R(2+1)D with layers {net_layers(net)}: missing "
            f"{missing[:3]}, unexpected {result.unexpected_keys[:3]}; {WEIGHTS_HELP}"
        )


def net_layers(net: VideoResNet) -> list[int]:
    return [len(getattr(net, f"layer{i}")) for i in range(1, 5)]


class R2Plus1D(nn.Module):
    def __init__(self, cfg: R2Plus1DConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or R2Plus1DConfig()
        self.net = video_resnet(cfg.layers)
        if cfg.weights:
            load_weights(self.net, cfg.weights)
        self.net.fc = nn.Identity()
        self.out_dim = 512
        self.register_buffer("mean", torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        v = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        v = (v.permute(0, 4, 1, 2, 3) - self.mean) / self.std  # (B, 3, T, H, W)
        v = v * mask[:, None, :, None, None].to(v.dtype)
        if self.net.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d):
            v = v.contiguous(memory_format=torch.channels_last_3d)  # weights made so on CUDA
        return self.net(v)
