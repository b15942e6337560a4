"""Every shipped preset's smoke run, end to end through ``mer reproduce``, on a miniature of
its corpus (synthetic features in the real layout, tiny models): folds, pretraining and
evaluation as the preset sets them, and a table of ours beside the paper's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from training_helpers import mosei_project

from pipeline.cli import main
from pipeline.config import ConfigError
from pipeline.corpora.mosei_shaped import MoseiShape
from pipeline.reproduce import SHIPPED, compare, load_preset, preset_params, reproduce
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus

PRESETS = sorted(p.stem for p in SHIPPED.glob("*.yaml"))

# small models, so that a smoke run on a miniature takes seconds (the presets' own smoke
# settings set the folds and epochs)
TINY = {
    "train": {
        "threads": 1,
        "cache_clips": True,
        "window": {"seconds": 1.0},
        "feature_dim": 16,
        "projection_hidden": 16,
        "tcn": {"bn_chan": 8, "hid_chan": 8, "n_blocks": 2, "n_repeats": 1},
        "stgcn": {"channels": 4, "spatial_channels": 2},
        "r2plus1d": {"layers": [1, 1, 1, 1]},
        "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff_dim": 16},
        "lstm": {"hidden": 8},
        "spec_cnn": {"channels": 2, "layers": 2},
    },
    "evaluate": {"probe": {"hidden": 8}, "attention": {"heads": 2},
                 "qian_han": {"discriminator_hidden": 8}},  # fmt: skip
    "runner": {"n_jobs": 1, "backend": "sequential"},
}


def test_shipped_presets_are_valid_and_name_the_papers_numbers():
    assert {"ravdess-mpuc", "mosei-mpuc", "iemocap-qianhan"} <= set(PRESETS)
    assert any(p.endswith("-code") for p in PRESETS)
    for name in PRESETS:
        for smoke in (False, True):
            params = preset_params(name, smoke=smoke)
            assert params.section("train").scheme in {s.name for s in params.folds.schemes}
        preset = load_preset(SHIPPED / f"{name}.yaml")
        assert preset["paper"] and preset["stages"]
    mosei = preset_params("mosei-mpuc")
    assert mosei.section("evaluate").task == "multi"
    assert mosei.folds.schemes[0].kind == "predefined"
    assert preset_params("iemocap-qianhan").folds.schemes[0].kind == "kfold_811"
    assert preset_params("ravdess-mpuc-code").section("train").scheme == "actor_holdout"
    smoke = preset_params("ravdess-mpuc", smoke=True).section("evaluate")
    assert smoke.unimodal_optim("faces").max_epochs == 2  # smoke shortens every optimiser
    full = preset_params("ravdess-mpuc").section("evaluate")
    assert (full.unimodal_optim("faces").lr, full.unimodal_optim("faces").max_epochs) == (0.01, 150)


def _miniature(name: str, tmp: Path, sample_clips) -> Path:
    """The corpus of preset ``name`` in miniature: its corpus name, modalities and groups."""
    params = preset_params(name)
    corpus, mods = params.corpus.name, params.section("train").modalities
    if corpus == "mosei":
        shape = MoseiShape(videos=(4, 2, 2), segments=(2, 2), seconds=(1.0, 1.2), no_emotion=0.3)
        return mosei_project(tmp, sample_clips[0], shape, corpus, mods)
    root = tmp / "proj"
    if corpus == "ravdess":  # 24 actors (the 18/3/3 split), 2 emotions, one clip each
        spec = SyntheticSpec(corpus, n_classes=2, n_speakers=24, clips_per_class_speaker=1,
                             face_size=16, min_seconds=1.2, max_seconds=1.6)  # fmt: skip
    else:  # IEMOCAP: 4 classes, 10 speakers
        spec = SyntheticSpec(corpus, n_classes=4, n_speakers=10, clips_per_class_speaker=1,
                             spec_size=16, min_seconds=1.2, max_seconds=2.2)  # fmt: skip
    write_synthetic_corpus(root, spec, modalities=mods)
    return root


@pytest.mark.parametrize("name", PRESETS)
def test_preset_smoke_run_on_a_miniature(name, tmp_path, sample_clips):
    root = _miniature(name, tmp_path, sample_clips)
    reproduce(name, None, root, smoke=True, overrides=[TINY], extract=False)
    params = preset_params(name, root, smoke=True)
    out = root / "data/reports" / params.corpus.name / "reproduce" / name
    doc = json.loads((out / "reproduce.json").read_text())
    paper = load_preset(SHIPPED / f"{name}.yaml")["paper"]
    rows = {(r[0], r[1]): r for r in doc["rows"]}
    for result, metrics in paper.items():
        for metric, value in metrics.items():
            _, _, ours, _, theirs, diff = rows[(result, metric)]
            assert theirs == value and ours is not None and 0.0 <= ours <= 100.0
            assert diff == pytest.approx(ours - value, abs=0.01)
    assert doc["smoke"] and doc["scheme"] == params.section("train").scheme
    assert all(t["epochs"] > 0 for t in doc["timing"].values())
    text = (out / "reproduce.md").read_text()
    assert "| result | metric | ours (%) | paper (%) | ours − paper |" in text
    assert "seconds per epoch" in text
    resolved = yaml.safe_load((out / "params.yaml").read_text())
    assert resolved["train"]["folds"] == [0]  # the smoke settings were applied
    if params.corpus.name == "mosei":
        assert doc["task"] == "multi_label" and ("probe", "f1_surprised") in rows


def test_mer_reproduce_command(tmp_path, sample_clips, capsys):
    root = _miniature("iemocap-qianhan", tmp_path, sample_clips)
    sets = ["train.threads=1", "train.spec_cnn.channels=2", "train.spec_cnn.layers=2",
            "train.lstm.hidden=8", "evaluate.qian_han.discriminator_hidden=8"]  # fmt: skip
    args = ["reproduce", "iemocap-qianhan", "--smoke", "--no-extract", "--root", str(root)]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "| qian_han_baseline | wa |" in out and "| 74.62 |" in out
    assert "reproduce/iemocap-qianhan" in out


def test_compare_lists_every_paper_number_and_a_missing_result():
    ev = {"headline": "accuracy", "methods": {"probe": {"mean": {"accuracy": 0.5},
          "std": {"accuracy": 0.1}, "folds": {"0": {}, "1": {}}}}}  # fmt: skip
    doc = compare(ev, {"probe": {"accuracy": 78.54}, "attention": {"accuracy": 65.4}})
    assert doc["rows"][0] == ["probe", "accuracy", 50.0, 10.0, 78.54, -28.54]
    assert doc["rows"][1][:3] == ["attention", "accuracy", None] and doc["runs"] == 2


def test_bad_presets_are_refused_with_the_reason(tmp_path):
    (tmp_path / "params").mkdir()
    bad = tmp_path / "params" / "bad.yaml"
    bad.write_text("params: {}\nstages: [voice]\n")
    with pytest.raises(ConfigError, match="unknown stage 'voice'"):
        load_preset(bad)
    bad.write_text("parms: {}\n")
    with pytest.raises(ConfigError, match="unknown preset key 'parms'"):
        load_preset(bad)
    assert main(["reproduce", "no-such-preset", "--root", str(tmp_path), "-q"]) == 3
