"""Training: determinism, resuming from checkpoints, metrics, the pretrain/evaluate stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from training_helpers import pretrain_task, synthetic_project, tiny_params

from pipeline.manifest import read_manifest, write_manifest
from pipeline.paths import Layout
from pipeline.training.checkpoint import Checkpointer
from pipeline.training.loops.fit import fit
from pipeline.training.metrics import (
    binary_weighted_accuracy,
    multi_label_metrics,
    single_label_metrics,
)
from pipeline.training.workflow import run_evaluate, run_pretrain


def _pretrain_task(root: Path, **over):
    return pretrain_task(root, **over)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return synthetic_project(tmp_path_factory.mktemp("synth"))


def test_a_training_step_is_deterministic_with_a_fixed_seed(project):
    states = []
    for seed in (7, 7, 8):
        task, optim = _pretrain_task(project, train={"seed": seed})
        fit(task, optim, seed=seed)
        states.append(task.model.state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
    # another seed: other initial weights, windows and batches
    assert not all(torch.equal(v, states[2][k]) for k, v in states[0].items())


class _InterruptError(Exception):
    pass


class _Stops:
    """The task, interrupted when it reaches ``epoch``."""

    def __init__(self, task, epoch: int) -> None:
        self.task, self.epoch, self.model = task, epoch, task.model

    def batches(self, epoch):
        if epoch == self.epoch:
            raise _InterruptError
        return self.task.batches(epoch)

    def loss(self, batch):
        return self.task.loss(batch)

    def validate(self):
        return self.task.validate()


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(project, tmp_path):
    over = {"pretrain": {"optim": {"max_epochs": 4, "step_epochs": 2, "gamma": 0.5}}}
    task, optim = _pretrain_task(project, **over)
    whole = fit(task, optim, seed=3)
    expected = task.model.state_dict()

    ckpt = Checkpointer(tmp_path, "run", interval_s=0)
    task, optim = _pretrain_task(project, **over)
    with pytest.raises(_InterruptError):
        fit(_Stops(task, 2), optim, seed=3, checkpointer=ckpt)
    assert ckpt.load()["epoch"] == 2
    task, optim = _pretrain_task(project, **over)  # a new process would start from scratch
    resumed = fit(task, optim, seed=3, checkpointer=ckpt)
    for name, value in expected.items():
        assert torch.allclose(value, task.model.state_dict()[name], atol=1e-6), name
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch
    # a finished run is reused as it is
    task, optim = _pretrain_task(project, **over)
    again = fit(_Stops(task, 0), optim, seed=3, checkpointer=ckpt)
    assert again.epochs == 4


def test_single_label_metrics_on_known_predictions():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 2, 1, 1, 2, 0])
    m = single_label_metrics(y, p, ["a", "b", "c"])
    assert m["accuracy"] == m["wa"] == pytest.approx(5 / 8)
    assert m["ua"] == pytest.approx((2 / 4 + 2 / 2 + 1 / 2) / 3)
    assert m["recall_a"] == pytest.approx(0.5)
    assert m["f1_weighted"] == pytest.approx(f1_score(y, p, average="weighted"))


def test_mosei_metrics_follow_the_mpuc_code():
    t = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 0]])
    p = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [1, 0]])
    # happy: p = 2 positives, n = 3 negatives, tp = 1, tn = 2 -> (1 * 3 / 2 + 2) / 6
    assert binary_weighted_accuracy(t[:, 0], p[:, 0]) == pytest.approx((1 * 3 / 2 + 2) / 6)
    m = multi_label_metrics(t, p, ["happy", "sad"])
    assert m["f1_sad"] == pytest.approx(f1_score(t[:, 1], p[:, 1], average="weighted"))
    assert m["w_acc"] == pytest.approx((m["w_acc_happy"] + m["w_acc_sad"]) / 2)
    assert m["f1"] == pytest.approx((m["f1_happy"] + m["f1_sad"]) / 2)
    assert binary_weighted_accuracy(np.zeros(3), np.zeros(3)) == 1.0  # one class only


ALL = [
    "probe",
    "probe_untrained",
    "unimodal",
    "late_fusion",
    "attention",
    "qian_han",
    "qian_han_baseline",
]


def test_stages_write_metrics_plots_and_reuse_finished_runs(tmp_path):
    root = synthetic_project(tmp_path, ("mel", "landmarks", "spectrogram"))
    params = tiny_params(
        root,
        train={"folds": [0, 1]},
        evaluate={"methods": ALL, "qian_han": {"audio": "spectrogram", "text": "mel"}},
    )
    assert run_pretrain(params, root) == 0
    models = sorted((root / "data/models/synth/pretrain/actor_kfold").glob("*.pt"))
    assert [m.name for m in models] == ["fold-0.pt", "fold-1.pt"]
    assert run_evaluate(params, root) == 0
    rep = root / "data/reports/synth"
    pre = json.loads((rep / "pretrain.json").read_text())
    assert set(pre["folds"]) == {"0", "1"} and "top1_mean" in pre["mean"]
    doc = json.loads((rep / "evaluate.json").read_text())
    names = [
        "probe",
        "probe_untrained",
        "unimodal_mel",
        "unimodal_landmarks",
        "late_fusion",
        "attention",
        "qian_han",
        "qian_han_baseline",
    ]
    assert sorted(doc["methods"]) == sorted(names) and doc["chance"] == 0.5
    for name in names:
        m = doc["methods"][name]
        assert set(m["folds"]) == {"0", "1"} and 0.0 <= m["mean"]["accuracy"] <= 1.0
        rows = (rep / "confusion" / f"{name}.csv").read_text().splitlines()
        assert rows[0] == "actual,predicted" and len(rows) == 1 + 12  # 6 test clips a fold
    assert "chance" in (rep / "report.md").read_text()
    curves = (rep / "pretrain_curves/fold-1.csv").read_text().splitlines()
    assert curves[0] == "epoch,train_loss,val_loss,lr" and len(curves) == 1 + 3
    assert set(doc["methods"]["probe"]["folds"]["0"]) == {"accuracy", "ua", "f1_weighted"}
    # a rerun with the same inputs takes the finished runs from the checkpoints
    ckpts = root / "checkpoints/synth/training"
    before = {p.name: p.stat().st_mtime_ns for p in ckpts.glob("*.pt")}
    assert len(before) == 2 + 8 * 2  # pretrain and every method, two folds
    assert run_pretrain(params, root) == 0 and run_evaluate(params, root) == 0
    after = {p.name: p.stat().st_mtime_ns for p in ckpts.glob("*.pt")}
    assert after == before
    assert json.loads((rep / "evaluate.json").read_text()) == doc


def test_multilabel_corpus_is_trained_with_bce_and_reported_per_emotion(tmp_path):
    """CMU-MOSEI style: score_<emotion> columns and no single label."""
    root = synthetic_project(tmp_path, ("mel", "spectrogram"))
    csv = Layout("synth", root=root).clips_csv
    entries = read_manifest(csv)
    for i, e in enumerate(entries):
        e.scores = {"happy": float(e.label == "class0"), "sad": float(i % 3 == 0) * 2.0}
        e.label = ""
    write_manifest(csv, entries)
    params = tiny_params(
        root,
        ("mel", "spectrogram"),
        train={"folds": [0]},
        evaluate={"methods": ["probe", "late_fusion", "qian_han"]},
    )
    assert run_pretrain(params, root) == 0 and run_evaluate(params, root) == 0
    rep = root / "data/reports/synth"
    doc = json.loads((rep / "evaluate.json").read_text())
    assert doc["task"] == "multi_label" and doc["headline"] == "w_acc"
    assert doc["classes"] == ["happy", "sad"] and doc["chance"] == 0.5
    for m in doc["methods"].values():
        assert {"w_acc", "f1", "w_acc_happy", "f1_sad"} <= set(m["mean"])
        assert 0.0 <= m["mean"]["w_acc"] <= 1.0
    rows = (rep / "confusion/probe.csv").read_text().splitlines()[1:]
    assert len(rows) == 6 * 2 and {r.split(",")[0].split(":")[0] for r in rows} == {"happy", "sad"}


def test_trainer_params_are_validated_with_the_key_named():
    from pipeline.config import ConfigError, load_params, params_from_dict

    shipped = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert shipped.section("train").modalities == ("mel", "spectrogram")
    assert shipped.section("pretrain").temperature == 0.07
    assert shipped.section("evaluate").qian_han.alpha == 0.1
    bad = [
        ({"train": {"modalities": ["voice"]}}, r"train\.modalities: unknown modality 'voice'"),
        ({"train": {"inputs": {"mel": {"mode": "window"}}}}, r"train\.inputs\.mel\.mode"),
        ({"evaluate": {"methods": ["svm"]}}, r"evaluate\.methods: unknown method 'svm'"),
        ({"evaluate": {"qian_han": {"alpha": 1.5}}}, r"evaluate\.qian_han\.alpha"),
        ({"pretrain": {"optim": {"name": "rmsprop"}}}, r"pretrain\.optim\.name"),
        ({"train": {"transformer": {"d_model": 30, "heads": 4}}}, r"train\.transformer\.d_model"),
    ]
    for raw, message in bad:
        with pytest.raises(ConfigError, match=message):
            params_from_dict(raw)


def test_supcon_without_two_windows_is_refused(project):
    params = tiny_params(project, pretrain={"loss": "supcon"}, train={"window": {"views": 1}})
    with pytest.raises(ValueError, match="views >= 2"):
        run_pretrain(params, project)


@pytest.mark.parametrize("loss", ["supcon", "supervised"])
def test_code_variants_of_the_loss_train(project, loss):
    over = {"pretrain": {"loss": loss, "optim": {"max_epochs": 2}}}
    task, optim = _pretrain_task(project, **over)
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    result = fit(task, optim, seed=0)
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in result.history)
    assert any(not torch.equal(v, task.model.state_dict()[k]) for k, v in before.items())
