"""The trainer on real shards: mel and spectrogram extracted from sample-corpus clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_project

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.training.data import CorpusData
from pipeline.training.workflow import run_evaluate, run_pretrain
from pipeline.workflow import run_feature, run_folds, run_ingest

FAST = {
    "name": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 0.001,
    "step_epochs": 0,
    "gamma": 0.9,
    "batch_size": 32,
    "max_epochs": 2,
    "patience": 0,
    "min_delta": 0.0,
    "monitor": "loss",
}


@pytest.fixture(scope="module")
def extracted(sample_clips, tmp_path_factory) -> Path:
    """Two emotions of every actor (statement 1, first repetition): 8 clips, 4 actor folds,
    with mel and spectrogram extracted."""
    clips = [c for c in sample_clips if c.stem.split("-")[2] in ("01", "05")]
    clips = [c for c in clips if c.stem.split("-")[4:6] == ["01", "01"]]
    assert len(clips) == 8
    root = make_project(
        tmp_path_factory.mktemp("sample"),
        clips,
        dict(
        runner={"n_jobs": 1, "backend": "sequential"},
        folds={
            "schemes": [
                {
                    "name": "actor_kfold",
                    "kind": "group_kfold",
                    "n_folds": 4,
                    "group_by": "speaker",
                    "val_fraction": 0.1,
                }
            ]
        },
        train={
            "folds": [0],
            "seeds": [],
            "threads": 1,
            "tcn": {
                "bn_chan": 8,
                "hid_chan": 8,
                "kernel": 3,
                "n_blocks": 2,
                "n_repeats": 1,
                "dropout": 0.1,
            },
            "feature_dim": 32,
            "projection_hidden": 32,
        },
        pretrain={"loss": "paper", "reduction": "mean", "optim": FAST},
        evaluate={
            "methods": ["probe", "qian_han"],
            "probe": {"hidden": 16, "optim": FAST},
            "qian_han": {"audio": "spectrogram", "text": "mel", "optim": FAST},
        },
        ),
    )
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    for feature in ("mel", "spectrogram"):
        run_feature(params, feature, root, progress=False)
    return root


def test_pretrain_and_evaluate_on_real_mel_and_spectrogram_shards(extracted):
    root = extracted
    params = load_params(root / "params.yaml")
    # the shipped input settings on real shards: the paper mel (a frame per 0.2 s, padded to
    # 128) as one array per clip, and one 128 x 128 spectrogram segment per window
    tc = params.section("train")
    data = CorpusData(Layout("sample", root=root), tc)
    ds = data.dataset(data.folds()[0].train, tc.modalities, views=2, random_windows=True)
    item = ds[0]
    mel, spec = item["views"][0]["mel"], item["views"][0]["spectrogram"]
    assert mel["x"].shape == (16, 80) and 8 <= int(mel["mask"].sum()) <= 16
    assert spec["x"].shape == (1, 128, 128) and bool(spec["mask"].all())
    assert np.isfinite(spec["x"].numpy()).all() and spec["x"].std() > 1.0
    assert data.labels.names == ("angry", "neutral")

    assert run_pretrain(params, root) == 0
    assert run_evaluate(params, root) == 0
    doc = json.loads((root / "data/reports/sample/evaluate.json").read_text())
    assert set(doc["methods"]) == {"probe", "qian_han"} and doc["classes"] == ["angry", "neutral"]
    rows = (root / "data/reports/sample/confusion/probe.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # one test actor: two clips


# bf16 against fp32 on the sample (2 epochs each): the tolerances the docs state
LOSS_RTOL, LOSS_ATOL = 0.02, 1e-3  # each epoch's training and validation loss
ACCURACY_ATOL = 0.5  # test accuracy of each method: at most one of the fold's 2 test clips


def _run(root: Path, precision: str) -> dict:
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["precision"] = precision
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(root / "params.yaml")
    assert run_pretrain(params, root) == 0 and run_evaluate(params, root) == 0
    rep = root / "data/reports/sample"
    return {
        "pretrain": json.loads((rep / "pretrain.json").read_text()),
        "evaluate": json.loads((rep / "evaluate.json").read_text()),
        "curve": (rep / "pretrain_curves/fold-0.csv").read_text().splitlines()[1:],
    }


def test_bf16_trains_the_sample_within_tolerance_of_fp32(extracted, tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        root = tmp_path / precision
        shutil.copytree(extracted, root, ignore=shutil.ignore_patterns("models", "reports"))
        runs[precision] = _run(root, precision)
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert bf16["pretrain"]["precision"]["autocast"] == "bfloat16"
    assert fp32["pretrain"]["precision"]["autocast"] is None
    assert bf16["curve"] != fp32["curve"]  # bf16 did run in another arithmetic
    for a, b in zip(fp32["curve"], bf16["curve"], strict=True):
        _, train_a, val_a, _ = (float(v) for v in a.split(","))
        _, train_b, val_b, _ = (float(v) for v in b.split(","))
        assert abs(train_b - train_a) <= LOSS_RTOL * abs(train_a) + LOSS_ATOL
        assert abs(val_b - val_a) <= LOSS_RTOL * abs(val_a) + LOSS_ATOL
    for method, result in fp32["evaluate"]["methods"].items():
        other = bf16["evaluate"]["methods"][method]
        a, b = result["mean"]["accuracy"], other["mean"]["accuracy"]
        assert abs(a - b) <= ACCURACY_ATOL, (method, a, b)
