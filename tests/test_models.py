"""Backbones and heads: output shapes, masks, the iBUG graph, R(2+1)D weights from a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import params_from_dict
from pipeline.models.config import (
    LSTMConfig,
    R2Plus1DConfig,
    SpecCNNConfig,
    STGCNConfig,
    TCNConfig,
    TransformerConfig,
)
from pipeline.models.factory import build_backbone, build_encoder
from pipeline.models.heads import AttentionFusion, MLPHead
from pipeline.models.qian_han import AttentionLSTM, Discriminator, SpecCNN
from pipeline.models.r2plus1d import R2Plus1D, video_resnet
from pipeline.models.stgcn import STGCN, landmark_nodes, normalized_adjacency
from pipeline.models.tcn import TCN
from pipeline.models.text_transformer import TextTransformer


def _mask(b: int, t: int, valid: int) -> torch.Tensor:
    m = torch.zeros(b, t, dtype=torch.bool)
    m[:, :valid] = True
    return m


def test_tcn_shape_and_padding_is_ignored():
    net = TCN(12, 32, TCNConfig(bn_chan=8, hid_chan=8, n_blocks=3, n_repeats=1)).eval()
    x = torch.randn(3, 20, 12)
    mask = _mask(3, 20, 14)
    out = net(x, mask)
    assert out.shape == (3, 32)
    noisy = x.clone()
    noisy[:, 14:] = 100 * torch.randn(3, 6, 12)  # what lies in padded steps does not matter
    assert torch.allclose(net(noisy, mask), out, atol=1e-5)


@pytest.mark.parametrize("drop_jaw, nodes", [(False, 68), (True, 51)])
def test_stgcn_on_the_ibug_graph(drop_jaw, nodes):
    adj = normalized_adjacency(drop_jaw)
    assert adj.shape == (nodes, nodes) and np.allclose(adj, adj.T)
    assert len(landmark_nodes(drop_jaw)) == nodes
    # connected: walking the edges from node 0 reaches every node
    reach = np.zeros(nodes, bool)
    reach[0] = True
    for _ in range(nodes):
        reach = (adj > 0).astype(float) @ reach > 0
    assert reach.all()
    cfg = STGCNConfig(drop_jaw=drop_jaw, channels=4, spatial_channels=2, dropout=0.0)
    net = STGCN(68, 24, cfg).eval()
    x = torch.rand(2, 6, 68, 2)
    out = net(x, _mask(2, 6, 5))
    assert out.shape == (2, 24)
    if drop_jaw:  # the jaw points are not looked at
        moved = x.clone()
        moved[:, :, :17] += 5.0
        assert torch.allclose(net(moved, _mask(2, 6, 5)), out, atol=1e-5)


def test_stgcn_rejects_other_point_counts():
    with pytest.raises(ValueError, match="iBUG-68"):
        STGCN(5, 8, STGCNConfig())


def test_text_transformer_and_lstm_shapes_and_masks():
    tr = TextTransformer(7, 5, 16, TransformerConfig(8, 2, 1, 16, 0.0)).eval()
    x = torch.randn(2, 5, 7)
    mask = _mask(2, 5, 3)
    out = tr(x, mask)
    assert out.shape == (2, 16)
    noisy = x.clone()
    noisy[:, 3:] = 50.0
    assert torch.allclose(tr(noisy, mask), out, atol=1e-5)
    assert torch.isfinite(tr(x, torch.zeros(2, 5, dtype=torch.bool))).all()  # no words at all
    lstm = AttentionLSTM(7, LSTMConfig(hidden=6, layers=2)).eval()
    emb = lstm(x, mask)
    assert emb.shape == (2, 6) and lstm.out_dim == 6
    assert torch.allclose(lstm(noisy, mask), emb, atol=1e-6)


def test_qian_han_cnn_discriminator_and_heads():
    cnn = SpecCNN(128, 128, SpecCNNConfig())
    x = torch.randn(2, 3, 128, 128)
    out = cnn(x, _mask(2, 3, 2))
    assert cnn.out_dim == 8 * 8 * 8 == 512 and out.shape == (2, 512)
    with pytest.raises(ValueError, match="do not halve"):
        SpecCNN(100, 128, SpecCNNConfig())
    disc = Discriminator(512, 6, 4)
    scores = disc(out, torch.randn(5, 6))
    assert scores.shape == (2, 5)
    assert [type(m).__name__ for m in MLPHead(4, 3, 2)] == ["Linear", "ReLU", "Linear"]
    assert len(MLPHead(4, 0, 2)) == 1
    assert AttentionFusion(3, 8, 2, 5, 4)(torch.randn(6, 3, 8)).shape == (6, 4)


def test_r2plus1d_loads_weights_from_a_local_file(tmp_path: Path):
    layers = (1, 1, 1, 1)
    torch.manual_seed(1)
    source = video_resnet(layers)  # with its 400-class Kinetics classifier
    path = tmp_path / "r2plus1d_tiny.pth"
    torch.save(source.state_dict(), path)
    net = R2Plus1D(R2Plus1DConfig(weights=str(path), layers=layers)).eval()
    for name, value in source.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(net.net.state_dict()[name], value), name
    crops = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    assert net(crops, _mask(2, 4, 3)).shape == (2, 512)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth not found.*r2plus1d\.weights"):
        R2Plus1D(R2Plus1DConfig(weights=str(tmp_path / "missing.pth"), layers=layers))
    with pytest.raises(ValueError, match="does not match"):
        R2Plus1D(R2Plus1DConfig(weights=str(path), layers=(2, 2, 2, 2)))


def test_factory_builds_an_encoder_from_params():
    p = params_from_dict(
        {
            "train": {
                "modalities": ["mel", "words"],
                "feature_dim": 12,
                "projection_hidden": 10,
                "tcn": {"bn_chan": 8, "hid_chan": 8, "n_blocks": 2, "n_repeats": 1},
                "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff_dim": 8},
            }
        }
    )
    cfg = p.section("train")
    enc = build_encoder(["mel", "words"], {"mel": (9, 5), "words": (4, 6)}, cfg, {"mel": (1, 2)})
    view = {
        "mel": {"x": torch.randn(3, 9, 5), "mask": _mask(3, 9, 9)},
        "words": {"x": torch.randn(3, 4, 6), "mask": _mask(3, 4, 2)},
    }
    feats, proj = enc(view)
    assert {m: f.shape for m, f in feats.items()} == {"mel": (3, 12), "words": (3, 12)}
    assert {m: p.shape for m, p in proj.items()} == {"mel": (3, 12), "words": (3, 12)}
    assert enc.branches["mel"].norm.mean.item() == 1.0  # the standardisation is kept
    with pytest.raises(ValueError, match=r"stgcn takes rows \(68 or 51 points, 2\)"):
        build_backbone("stgcn", (5, 7), cfg)
