"""The SyncNet network (Chung & Zisserman 2016), as released by the authors.

Layer for layer the network of ``joonson/syncnet_python``'s ``SyncNetModel.py`` (class ``S``,
lines 16-117), with the same module names, so that the authors' ``syncnet_v2.model`` state
dict loads unchanged: two trunks (``netcnnaud`` over MFCCs, ``netcnnlip`` over 5 frames of a
face), each followed by a two-layer head (``netfcaud``, ``netfclip``) to a 1024-d
embedding. Loading and checking the weights: :mod:`pipeline.vision.syncnet`.
"""

from __future__ import annotations

import numpy as np

from ..extras import needs

with needs("faces (speaker backend syncnet)", "extract"):
    import torch
    from torch import nn

EMBED_DIM = 1024  # the released model's num_layers_in_fc_layers

# The two trunks as (out channels, kernel, stride, padding, pool) rows: a conv, batch
# norm and ReLU each, then a max pool when ``pool`` is (kernel, stride, padding). Built in
# this order they take the module indices of the authors' nn.Sequential (SyncNetModel.py
# lines 24-51 and 67-94), hence the same state-dict names ("netcnnlip.4.weight", ...).
# The audio trunk's first pool is the authors' 1 x 1 (a no-op, kept for the indices).
_AUDIO = (
    (64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1), 0)),
    (192, (3, 3), (1, 1), (1, 1), ((3, 3), (1, 2), 0)),
    (384, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), None),
    (256, (3, 3), (1, 1), (1, 1), ((3, 3), (2, 2), 0)),
    (512, (5, 4), (1, 1), (0, 0), None),
)
_LIPS = (
    (96, (5, 7, 7), (1, 2, 2), 0, ((1, 3, 3), (1, 2, 2), 0)),
    (256, (1, 5, 5), (1, 2, 2), (0, 1, 1), ((1, 3, 3), (1, 2, 2), (0, 1, 1))),
    (256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, (1, 3, 3), 1, (0, 1, 1), None),
    (256, (1, 3, 3), 1, (0, 1, 1), ((1, 3, 3), (1, 2, 2), 0)),
    (512, (1, 6, 6), 1, 0, None),
)


def _trunk(rows: tuple, in_ch: int, dims: int) -> nn.Sequential:
    conv, norm, pool = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dims == 2
        else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
    )  # fmt: skip
    layers: list[nn.Module] = []
    for out_ch, kernel, stride, padding, pooling in rows:
        layers += [conv(in_ch, out_ch, kernel, stride, padding), norm(out_ch), nn.ReLU()]
        if pooling is not None:
            layers.append(pool(*pooling))
        in_ch = out_ch
    return nn.Sequential(*layers)


def _head(dim: int) -> nn.Sequential:
    """512 -> 512 (batch norm, ReLU) -> ``dim``: the embedding (SyncNetModel.py 53-65)."""
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """The released SyncNet (``S`` of SyncNetModel.py): the module names are the authors',
    which are the names in their state dict."""

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.netcnnaud = _trunk(_AUDIO, 1, 2)
        self.netfcaud = _head(embed_dim)
        self.netfclip = _head(embed_dim)
        self.netcnnlip = _trunk(_LIPS, 3, 3)

    def embed_sound(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed_dim)."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_lips(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 face crops -> (N, embed_dim)."""
        return self.netfclip(self.netcnnlip(frames).flatten(1))


def embed(net: SyncNet, fn: str, x: np.ndarray, device: str, batch: int) -> np.ndarray:
    """``net.<fn>`` over ``x`` (float32, batched on ``device``) -> float32 (N, embed_dim)."""
    out = [np.zeros((0, EMBED_DIM), np.float32)]
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            part = torch.from_numpy(np.ascontiguousarray(x[i : i + batch])).to(device)
            out.append(getattr(net, fn)(part).float().cpu().numpy())
    return np.concatenate(out)
