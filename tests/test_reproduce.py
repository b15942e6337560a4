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
from pipeline.manifest import read_manifest
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


# the cell of the paper's own method each preset's run must be compared with
HEADLINE = {
    "ravdess-mpuc": ("Ours: images + acoustics + landmarks, actor split ✓", 78.54),
    "ravdess-mpuc-random": ("Ours: images + acoustics + landmarks, actor split ✗", 93.17),
    "ravdess-mpuc-code": ("Ours: acoustics + landmarks, actor split ✓", 77.10),
    "mosei-mpuc": ("Ours", 66.70),
    "mosei-mpuc-code": ("Ours", 66.70),
    "iemocap-qianhan": ("Contrastive regularization (Proposed)", 76.06),
    "iemocap-qianhan-code": ("Contrastive regularization (Proposed)", 76.06),
}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_smoke_run_on_a_miniature(name, tmp_path, sample_clips):
    root = _miniature(name, tmp_path, sample_clips)
    reproduce(name, None, root, smoke=True, overrides=[TINY], extract=False)
    params = preset_params(name, root, smoke=True)
    out = root / "data/reports" / params.corpus.name / "reproduce" / name
    doc = json.loads((out / "reproduce.json").read_text())
    evaluation = json.loads((out.parents[1] / "evaluate.json").read_text())
    cells = {c["label"]: c for c in load_preset(SHIPPED / f"{name}.yaml")["paper"]["cells"]}
    label, value = HEADLINE[name]
    assert evaluation["paper"]["cell"] == doc["paper"]["cell"] == label
    assert evaluation["paper"]["value"] == value and "paper_reason" not in evaluation
    trained = set(params.section("train").modalities)
    for result, metric, ours, _, theirs, diff in doc["rows"]:
        assert ours is not None and 0.0 <= ours <= 100.0
        mods = evaluation["methods"][result]["modalities"]
        assert set(mods) <= trained | {"spectrogram", "words"}
        if theirs is None:
            assert doc["cell_reasons"][result]
            continue
        cell = cells[doc["cells"][result]]
        assert set(cell["modalities"]) == set(mods) and cell["results"][result][metric] == theirs
        assert diff == pytest.approx(ours - theirs, abs=0.01)
    assert {r[0] for r in doc["rows"]} == set(evaluation["methods"])
    assert doc["smoke"] and doc["scheme"] == params.section("train").scheme
    assert all(t["epochs"] > 0 for t in doc["timing"].values())
    assert all(c["n_folds"] == 1 and c["ci_low"] is None for c in doc["comparisons"])
    assert bool(doc["comparisons"]) == ("are not tested" in (out / "reproduce.md").read_text())
    text = (out / "reproduce.md").read_text()
    assert "| result | metric | ours (%) | paper (%) | ours − paper | paper cell |" in text
    assert f"\u201c{label}\u201d" in text and "seconds per epoch" in text
    if name.endswith("-code"):
        differences = load_preset(SHIPPED / f"{name}.yaml")["differences"]
        assert differences and all(d in text for d in differences)
    resolved = yaml.safe_load((out / "params.yaml").read_text())
    assert resolved["train"]["folds"] == [0]  # the smoke settings were applied
    if params.corpus.name == "mosei":
        assert doc["task"] == "multi_label" and ("probe", "f1_surprised") in {
            (r[0], r[1]) for r in doc["rows"]}  # fmt: skip
        # w-ACC is plain accuracy for an emotion the test part lacks (or holds only): said
        fold = json.loads((root / "manifests/mosei/folds/sdk_standard.json").read_text())
        scores = {e.clip_id: e.scores for e in read_manifest(root / "manifests/mosei/clips.csv")}
        test = [scores[c] for c in fold["folds"][0]["test"]]
        one_class = {e for e in test[0] if len({s[e] > 0 for s in test}) == 1}
        said = {n.split(" ")[0][len("w_acc_"):] for n in doc["notes"] if n.startswith("w_acc_")}
        assert said == one_class
    # faces from scratch, the encoder pretrained on the test clips: said where it happens
    scratch = "faces" in trained and not params.section("train").r2plus1d.weights
    assert any(n.startswith("Faces: the R(2+1)D-18 backbone trained from scratch")
               for n in doc["notes"]) == scratch  # fmt: skip
    assert any("pretrained on every clip, the test clips included" in n
               for n in doc["notes"]) == (name == "mosei-mpuc-code")  # fmt: skip
    assert all(n in text for n in doc["notes"])


def test_mer_reproduce_command(tmp_path, sample_clips, capsys):
    root = _miniature("iemocap-qianhan", tmp_path, sample_clips)
    sets = ["train.threads=1", "train.spec_cnn.channels=2", "train.spec_cnn.layers=2",
            "train.lstm.hidden=8", "evaluate.qian_han.discriminator_hidden=8"]  # fmt: skip
    args = ["reproduce", "iemocap-qianhan", "--smoke", "--no-extract", "--root", str(root)]
    assert main([*args, *(x for s in sets for x in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "| qian_han_baseline | wa |" in out and "| 74.62 |" in out
    assert "reproduce/iemocap-qianhan" in out


def _evaluation(results: dict[str, list[str]], actor_split: bool | None = None) -> dict:
    """An evaluate.json with one fold per result, each at 50 % (accuracy, w_acc, wa)."""
    metrics = {"accuracy": 0.5, "wa": 0.5, "ua": 0.5, "w_acc": 0.5, "f1": 0.5}
    return {
        "headline": "accuracy",
        "split": {} if actor_split is None else {"actor_split": actor_split},
        "methods": {r: {"mean": dict(metrics), "std": dict.fromkeys(metrics, 0.0),
                        "folds": {"0": dict(metrics)}, "modalities": m}
                    for r, m in results.items()},
    }  # fmt: skip


def _paper(name: str) -> dict:
    return load_preset(SHIPPED / f"{name}.yaml")["paper"]


def test_every_cell_of_every_table_is_found_by_what_was_trained():
    for name in ("ravdess-mpuc", "mosei-mpuc", "iemocap-qianhan"):
        paper = _paper(name)
        for cell in paper["cells"]:
            for result, values in cell["results"].items():
                mods = list(reversed(cell["modalities"]))  # order does not matter
                doc = compare(_evaluation({result: mods}, cell.get("actor_split")), paper)
                assert doc["cells"] == {result: cell["label"]}
                rows = {r[1]: r[4] for r in doc["rows"]}
                assert rows == {k: float(v) for k, v in values.items()}


def test_two_modalities_get_their_own_cell_and_no_row_for_an_untrained_modality():
    """RAVDESS trained on mel + landmarks (--set train.modalities=[mel, landmarks])."""
    paper = _paper("ravdess-mpuc")
    run = {"probe": ["mel", "landmarks"], "unimodal_mel": ["mel"],
           "unimodal_landmarks": ["landmarks"], "late_fusion": ["mel", "landmarks"]}  # fmt: skip
    for actor_split, want in ((True, (77.10, 58.50, 62.05)), (False, (89.50, 75.90, 76.35))):
        doc = compare(_evaluation(run, actor_split), paper)
        rows = {r[0]: r[4] for r in doc["rows"]}
        assert (rows["probe"], rows["unimodal_mel"], rows["unimodal_landmarks"]) == want
        assert rows["late_fusion"] is None and "unimodal_faces" not in rows
        assert "no late_fusion on mel + landmarks" in doc["cell_reasons"]["late_fusion"]
    doc = compare(_evaluation({"probe": ["faces", "mel"]}, False), paper)
    assert doc["rows"][0][4] == 80.32
    # CMU-MOSEI without words: "Ours wout/ text", overall and per emotion
    doc = compare(_evaluation({"probe": ["faces", "mel", "landmarks"]}), _paper("mosei-mpuc"))
    rows = {r[1]: r[4] for r in doc["rows"]}
    assert doc["cells"]["probe"] == "Ours wout/ text"
    assert (rows["w_acc"], rows["f1"], rows["f1_surprised"]) == (55.50, 27.77, 2.76)
    # a combination the table lacks: no paper number, and why
    doc = compare(_evaluation({"probe": ["mel"]}, True), paper)
    assert doc["rows"][0][4] is None and "its cells:" in doc["cell_reasons"]["probe"]


def test_the_headline_paper_cell_or_the_reason_there_is_none():
    from pipeline.training.paper_cells import headline_cell, match_cells

    paper = _paper("ravdess-mpuc")
    cell, why = headline_cell(paper, match_cells(paper, {"probe": ["mel", "landmarks"]}, True))
    assert (cell["cell"], cell["value"], cell["metric"], cell["source"], why) == (
        "Ours: acoustics + landmarks, actor split ✓", 77.10, "accuracy", "MPUC Table I", "")
    cell, why = headline_cell(paper, match_cells(paper, {"unimodal_mel": ["mel"]}, True))
    assert cell is None and why == "the run has no probe result, the method MPUC Table I reports"
    cell, why = headline_cell(paper, match_cells(paper, {"probe": ["words", "mel"]}, True))
    assert cell is None and "no probe on words + mel, actor split ✓" in why
    assert headline_cell(None, {})[0] is None


def test_bad_presets_are_refused_with_the_reason(tmp_path):
    (tmp_path / "params").mkdir()
    bad = tmp_path / "params" / "bad.yaml"
    bad.write_text("params: {}\nstages: [voice]\n")
    with pytest.raises(ConfigError, match="unknown stage 'voice'"):
        load_preset(bad)
    bad.write_text("parms: {}\n")
    with pytest.raises(ConfigError, match="unknown preset key 'parms'"):
        load_preset(bad)
    bad.write_text("paper: {probe: {accuracy: 78.54}}\n")  # not keyed by what was trained
    with pytest.raises(ConfigError, match="paper: expected"):
        load_preset(bad)
    bad.write_text("paper: {source: T, cells: [{label: a, modalities: [mel], results: {p: {x: 1}}},"
                   " {label: b, modalities: [mel], results: {p: {x: 2}}}]}\n")  # fmt: skip
    with pytest.raises(ConfigError, match="also in 'a'"):
        load_preset(bad)
    assert main(["reproduce", "no-such-preset", "--root", str(tmp_path), "-q"]) == 3
