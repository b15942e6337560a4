"""Hyper-parameters of the backbones and heads (plain dataclasses, no torch import).

Each class is one sub-section of ``train`` in ``params.yaml``. Where the MPUC paper is
silent the value of the authors' code is the default, noted beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError


def _positive(obj: object, key: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{key}.{name}: must be > 0, got {getattr(obj, name)}")


def _fraction(value: float, key: str) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{key}: must be in [0, 1), got {value}")


@dataclass(frozen=True)
class TCNConfig:
    """Conv-TasNet temporal convolutional network (Asteroid; MPUC ref [68]) on mel frames."""

    bn_chan: int = 64  # bottleneck channels (MPUC code)
    hid_chan: int = 128  # channels inside each block (MPUC code)
    kernel: int = 3
    n_blocks: int = 5  # dilations 1, 2, 4, 8, 16
    n_repeats: int = 2
    dropout: float = 0.1  # MPUC code

    def validate(self, key: str) -> None:
        _positive(self, key, "bn_chan", "hid_chan", "kernel", "n_blocks", "n_repeats")
        _fraction(self.dropout, f"{key}.dropout")


@dataclass(frozen=True)
class R2Plus1DConfig:
    """torchvision R(2+1)D-18 on face crops."""

    # Local file with torchvision's Kinetics-400 r2plus1d_18 state dict (R2Plus1D_18_Weights.
    # KINETICS400_V1, r2plus1d_18-91a641e6.pth). "" = train from scratch. Never downloaded.
    weights: str = ""
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; (2, 2, 2, 2) = R(2+1)D-18

    def validate(self, key: str) -> None:
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ConfigError(f"{key}.layers: four stage depths >= 1, got {list(self.layers)}")


@dataclass(frozen=True)
class STGCNConfig:
    """Spatio-temporal graph convolution (Yu et al. 2018; MPUC ref [65]) on iBUG-68 landmarks."""

    # false: all 68 points (the paper: FAN's 68 landmarks); true: drop the 17 jaw points
    # (51 nodes), as the MPUC code did with OpenFace landmarks.
    drop_jaw: bool = False
    channels: int = 64  # temporal channels (MPUC code)
    spatial_channels: int = 16  # graph-convolution channels (MPUC code)
    kernel: int = 3
    dropout: float = 0.1  # MPUC code

    def validate(self, key: str) -> None:
        _positive(self, key, "channels", "spatial_channels", "kernel")
        _fraction(self.dropout, f"{key}.dropout")


@dataclass(frozen=True)
class TransformerConfig:
    """Transformer encoder (Vaswani et al.; MPUC ref [60]) on word vectors."""

    d_model: int = 300  # MPUC code: the GloVe width; other inputs are projected to it
    heads: int = 5  # MPUC code
    layers: int = 6  # MPUC code
    ff_dim: int = 2048  # PyTorch's default, as in the MPUC code
    dropout: float = 0.1

    def validate(self, key: str) -> None:
        _positive(self, key, "d_model", "heads", "layers", "ff_dim")
        if self.d_model % self.heads:
            raise ConfigError(f"{key}.d_model ({self.d_model}) must be divisible by heads")
        _fraction(self.dropout, f"{key}.dropout")


@dataclass(frozen=True)
class SpecCNNConfig:
    """Qian & Han §4.3: 3x3 convolutions (padding 1), ReLU, 2x2 max-pool, 8 channels each."""

    channels: int = 8
    layers: int = 4

    def validate(self, key: str) -> None:
        _positive(self, key, "channels", "layers")


@dataclass(frozen=True)
class LSTMConfig:
    """Qian & Han §4.3: unidirectional LSTM, 200 hidden units, 2 layers, with attention."""

    hidden: int = 200
    layers: int = 2  # the authors' code: 1
    dropout: float = 0.0

    def validate(self, key: str) -> None:
        _positive(self, key, "hidden", "layers")
        _fraction(self.dropout, f"{key}.dropout")
