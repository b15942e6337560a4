"""The papers' tasks: CMU-MOSEI trained multi-label from the manifest the MOSEI adapter writes
(clips with no emotion kept), reported as w-ACC and F1 per emotion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from training_helpers import mosei_project, tiny_params

from pipeline.corpora.mosei import EMOTIONS
from pipeline.corpora.mosei_shaped import MoseiShape
from pipeline.manifest import read_manifest
from pipeline.paths import Layout
from pipeline.training.workflow import run_evaluate

MODS = ("mel", "spectrogram")


def test_mosei_adapter_manifest_trains_multilabel_and_keeps_clips_without_emotion(
    tmp_path, sample_clips
):
    # segments within the stand-in sample video (2.3 s): ingest refuses cuts past a file's end
    shape = MoseiShape(videos=(4, 2, 2), segments=(3, 3), seconds=(0.7, 0.9), no_emotion=0.3)
    root = mosei_project(tmp_path, sample_clips[0], shape)
    entries = read_manifest(Layout("synth", root=root).clips_csv)
    assert any(e.label for e in entries)  # the adapter writes a dominant label ...
    none = [e for e in entries if not e.label]
    assert none and all(set(e.scores) == set(EMOTIONS) for e in entries)
    params = tiny_params(
        root,
        MODS,
        train={"scheme": "sdk_standard"},
        evaluate={"methods": ["probe_untrained", "late_fusion"]},
    )
    assert run_evaluate(params, root) == 0  # ... but the task is multi-label by default
    rep = root / "data/reports/synth"
    doc = json.loads((rep / "evaluate.json").read_text())
    assert doc["task"] == "multi_label" and doc["headline"] == "w_acc"
    assert doc["classes"] == sorted(EMOTIONS)
    split = {e.clip_id: e.meta["split"] for e in entries}
    n_test = sum(s == "test" for s in split.values())
    assert n_test == 2 * 3
    for m in doc["methods"].values():
        assert "accuracy" not in m["mean"]  # no single-label accuracy
        for emo in EMOTIONS:
            assert 0.0 <= m["mean"][f"w_acc_{emo}"] <= 1.0 and f"f1_{emo}" in m["mean"]
        assert set(m["folds"]["0"]) == {"w_acc", "f1"}
    # every test clip is scored, those with no emotion too (6 rows each: one per emotion)
    rows = (rep / "confusion/late_fusion.csv").read_text().splitlines()[1:]
    assert len(rows) == n_test * len(EMOTIONS)
    no_emotion_test = [e for e in none if split[e.clip_id] == "test"]
    yes = sum(r.split(",")[0].endswith(":yes") for r in rows)
    present = sum(v > 0 for e in entries if split[e.clip_id] == "test" for v in e.scores.values())
    assert yes == present and (no_emotion_test or present < n_test * 6)


def test_qian_han_segments_first_or_all_pooled(tmp_path):
    """segments: first gives the CNN one ~1 s segment; all gives every segment of the
    utterance, and the utterance embedding is the mean of the CNN's per-segment outputs."""
    import torch
    from training_helpers import synthetic_project

    from pipeline.models.qian_han import SpecCNN
    from pipeline.training.data import CorpusData
    from pipeline.training.evaluate import segment_inputs

    root = synthetic_project(tmp_path, MODS, min_seconds=2.2, max_seconds=3.0, spec_size=16)
    cnn = None
    for segments, expect in (("first", 1), ("all", 3)):
        ev = {"qian_han": {"segments": segments, "max_segments": 4}}
        params = tiny_params(root, MODS, evaluate=ev)
        tc, qh = params.section("train"), params.section("evaluate").qian_han
        data = CorpusData(Layout("synth", root=root), tc)
        ids = data.folds()[0].test[:3]
        ds = data.dataset(ids, MODS, window_seconds=0.0, inputs=segment_inputs(tc, qh))
        for i in range(len(ds)):
            view = ds[i]["views"][0]["spectrogram"]
            assert view["x"].shape[0] == (1 if segments == "first" else 4)
            assert int(view["mask"].sum()) == expect  # 2.2-3.0 s: three 1.024 s segments
        if segments == "all":
            torch.manual_seed(0)
            cnn = SpecCNN(16, 16, tc.spec_cnn)
            x, mask = view["x"][None], view["mask"][None]
            pooled = cnn(x, mask)
            each = [cnn(x[:, k : k + 1], mask[:, k : k + 1]) for k in range(3)]
            torch.testing.assert_close(pooled, torch.stack(each).mean(0))
            assert not torch.allclose(each[0], pooled)  # the later segments count
    assert cnn is not None
    # both variants train and report through the evaluate stage
    for segments in ("first", "all"):
        ev = {"methods": ["qian_han"], "qian_han": {"segments": segments}}
        params = tiny_params(root, MODS, train={"folds": [0]}, evaluate=ev)
        assert run_evaluate(params, root) == 0
        doc = json.loads((root / "data/reports/synth/evaluate.json").read_text())
        assert 0.0 <= doc["methods"]["qian_han"]["mean"]["accuracy"] <= 1.0


def test_qian_han_input_dropout_on_the_word_vectors(tmp_path):
    """text_dropout (the authors' code: 0.75) drops the LSTM's input vectors in training
    and nothing at test."""
    import torch
    from training_helpers import synthetic_project

    from pipeline.models.factory import build_branches
    from pipeline.training.data import CorpusData
    from pipeline.training.loops.supervised import QianHanModel

    root = synthetic_project(tmp_path, MODS, spec_size=16)
    params = tiny_params(root, MODS, evaluate={"qian_han": {"text_dropout": 0.75}})
    tc, qh = params.section("train"), params.section("evaluate").qian_han
    data = CorpusData(Layout("synth", root=root), tc)
    ds = data.dataset(data.folds()[0].train[:8], MODS, window_seconds=0.0)
    view = {m: {k: torch.stack([ds[i]["views"][0][m][k] for i in range(8)]) for k in ("x", "mask")}
            for m in MODS}  # fmt: skip
    torch.manual_seed(0)
    branches = build_branches(MODS, ds.input_shapes(), tc, {}, None,
                              backbones={"spectrogram": "spec_cnn", "mel": "lstm"})  # fmt: skip
    model = QianHanModel(branches["spectrogram"], branches["mel"], 2, 8, 0.0, False,
                         text_dropout=qh.text_dropout)  # fmt: skip
    seen = []
    model.text.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    model.train()
    model(view, "spectrogram", "mel")
    kept = seen[-1][view["mel"]["mask"]] != 0
    assert 0.65 < 1 - kept.float().mean().item() < 0.85  # ~75 % of the input values dropped
    model.eval()
    model(view, "spectrogram", "mel")
    torch.testing.assert_close(seen[-1], view["mel"]["x"])  # nothing dropped at test
    assert params.section("evaluate").qian_han.text_dropout == 0.75


def test_unimodal_baselines_take_their_modalitys_optimiser(tmp_path):
    """MPUC §IV-B trains each unimodal baseline with its own settings."""
    from training_helpers import synthetic_project

    from pipeline.config import ConfigError, params_from_dict
    from pipeline.training.data import CorpusData
    from pipeline.training.distributed import DistContext
    from pipeline.training.evaluate import Evaluator

    root = synthetic_project(tmp_path)
    ev = {"methods": ["unimodal"], "unimodal_by_modality": {"landmarks": {"max_epochs": 1}}}
    params = tiny_params(root, evaluate=ev)
    tc, ec = params.section("train"), params.section("evaluate")
    assert ec.unimodal_optim("landmarks").max_epochs == 1
    assert ec.unimodal_optim("landmarks").lr == ec.unimodal.lr == 0.01  # the rest inherited
    data = CorpusData(Layout("synth", root=root), tc)
    e = Evaluator(data, tc, ec, DistContext(), tmp_path / "models", tmp_path / "ckpt")
    fold = data.folds()[0]
    epochs = {m: e.run(n, meth, m, fold).fit["epochs"] for n, meth, m in e.runs()}
    assert epochs == {("mel",): 3, ("landmarks",): 1}
    with pytest.raises(ConfigError, match=r"unimodal_by_modality\.mel\.lrr"):
        params_from_dict({"evaluate": {"unimodal_by_modality": {"mel": {"lrr": 1}}}})


def test_seeds_run_every_fold_and_report_mean_and_std_over_seeds_and_folds(tmp_path):
    from training_helpers import synthetic_project

    from pipeline.training.workflow import run_pretrain

    root = synthetic_project(tmp_path)
    ev = {"methods": ["probe", "late_fusion"]}
    params = tiny_params(root, train={"folds": [0, 1], "seeds": [0, 5]}, evaluate=ev)
    assert run_pretrain(params, root) == 0 and run_evaluate(params, root) == 0
    models = sorted(p.name for p in (root / "data/models/synth/pretrain/actor_kfold").iterdir())
    assert models == ["fold-0-seed-0.pt", "fold-0-seed-5.pt", "fold-1-seed-0.pt",
                      "fold-1-seed-5.pt"]  # fmt: skip
    rep = root / "data/reports/synth"
    doc = json.loads((rep / "evaluate.json").read_text())
    assert doc["seeds"] == [0, 5]
    for m in doc["methods"].values():
        runs = m["folds"]
        assert set(runs) == {"0-seed-0", "1-seed-0", "0-seed-5", "1-seed-5"}
        acc = [r["accuracy"] for r in runs.values()]
        assert m["mean"]["accuracy"] == pytest.approx(np.mean(acc))
        assert m["std"]["accuracy"] == pytest.approx(np.std(acc))
    # the seeds are different runs: other windows, initial weights, batches
    pre = json.loads((rep / "pretrain.json").read_text())
    assert pre["folds"]["0-seed-0"] != pre["folds"]["0-seed-5"]
    text = (rep / "report.md").read_text()
    assert "4 runs (2 seeds x 2 folds)" in text and "points apart" not in text
    (c,) = [c for c in doc["comparisons"] if c["metric"] == "accuracy"]
    assert (c["method"], c["baseline"], c["n_folds"], c["n_runs"]) == ("probe", "late_fusion", 2, 4)
    assert "| probe − late_fusion | accuracy | 2 (4) |" in text and c["verdict"] in text
    assert doc["methods"]["probe"]["modalities"] == ["mel", "landmarks"]
