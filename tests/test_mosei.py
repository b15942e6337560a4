"""CMU-MOSEI adapter on tiny computational sequences written with mmsdk, and raw transcripts."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI import cmu_mosei_std_folds as sdk

from pipeline.config import FoldScheme, load_params
from pipeline.corpora import get_adapter
from pipeline.corpora.mosei import STANDARD_FOLD_SIZES, standard_folds
from pipeline.corpora.mosei_shaped import write_csd
from pipeline.folds import check_folds, make_folds
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.text.alignment import parse_word_times
from pipeline.workflow import run_feature, run_ingest

TRAIN = sdk.standard_train_fold[:2]
VALID, TEST = sdk.standard_valid_fold[0], sdk.standard_test_fold[0]
ORPHAN = "zzNotInAnyFold"
VIDEOS = [*TRAIN, VALID, TEST, ORPHAN]
# per video: two segments with [sentiment, happy, sad, anger, surprise, disgust, fear]
SEGMENTS = [
    ((0.0, 1.1), [1.0, 2.0, 0, 0, 0.33, 0, 0]),
    ((1.1, 2.2), [-1.5, 0, 0, 1.66, 0, 0.33, 0]),
]
WORDS = [("sp", 0.0, 0.2), ("i", 0.2, 0.4), ("don't", 0.4, 0.7), ("glorpify", 0.7, 1.0),
         ("sp", 1.0, 1.2), ("dogs", 1.2, 1.6), ("bark", 1.6, 2.1)]  # fmt: skip




def _glove_row(i, word):
    return np.zeros(4, np.float32) if word in ("sp", "glorpify") else np.full(4, i + 1, np.float32)


@pytest.fixture(scope="module")
def mosei_root(tmp_path_factory, sample_clips):
    root = tmp_path_factory.mktemp("CMU_MOSEI")
    labels, words, glove = {}, {}, {}
    for v in VIDEOS:
        labels[v] = {
            "intervals": np.array([s for s, _ in SEGMENTS]),
            "features": np.array([f for _, f in SEGMENTS], np.float32),
        }
        words[v] = {
            "intervals": np.array([[a, b] for _, a, b in WORDS]),
            "features": np.array([[w.encode()] for w, _, _ in WORDS]),
        }
        glove[v] = {
            "intervals": words[v]["intervals"],
            "features": np.stack([_glove_row(i, w) for i, (w, _, _) in enumerate(WORDS)]),
        }
    write_csd(root / "CMU_MOSEI_Labels.csd", "All Labels", labels)
    write_csd(root / "CMU_MOSEI_TimestampedWords.csd", "words", words)
    write_csd(root / "CMU_MOSEI_TimestampedGloveVectors.csd", "glove_vectors", glove)
    trans = root / "Raw/Transcript/Segmented/Combined"
    trans.mkdir(parents=True)
    (trans / f"{TRAIN[0]}.txt").write_text(
        f"{TRAIN[0]}___0___0.0___1.1___I don't glorpify\n"
        f"{TRAIN[0]}___1___1.1___2.2___Dogs bark\n"
        f"{TRAIN[0]}___2___2.2___2.3___Unlabelled tail\n"
    )
    video = root / "Raw/Videos/Full/Combined" / f"{TRAIN[0]}.mp4"
    video.parent.mkdir(parents=True)
    shutil.copy2(sample_clips[0], video)
    return root


def test_sdk_folds_are_the_sdks_lists():
    folds = standard_folds()
    counts = {k: sum(v == k for v in folds.values()) for k in ("train", "valid", "test")}
    assert counts == STANDARD_FOLD_SIZES
    for name, ids in (("train", sdk.standard_train_fold), ("valid", sdk.standard_valid_fold),
                      ("test", sdk.standard_test_fold)):  # fmt: skip
        assert all(folds[v] == name for v in ids)


def test_segments_labels_words_from_the_csd_files(mosei_root):
    clips = {c.clip_id: c for c in get_adapter("mosei", mosei_root).clips()}
    assert len(clips) == 2 * len(VIDEOS)
    first = clips[f"{TRAIN[0]}_0"]
    assert first.scores == {"happy": 2.0, "sad": 0.0, "angry": 0.0, "surprised": 0.33,
                            "disgust": 0.0, "fearful": 0.0}  # fmt: skip
    assert first.label == "happy" and first.meta["present"] == "happy+surprised"
    assert first.meta["sentiment"] == "1.0000" and first.meta["split"] == "train"
    assert first.transcript == "i don't glorpify"  # SDK words, silences dropped
    assert parse_word_times(first.meta["word_times"]) == [
        ("i", 0.2, 0.4), ("don't", 0.4, 0.7), ("glorpify", 0.7, 1.0)
    ]  # fmt: skip
    assert first.path == f"Raw/Videos/Full/Combined/{TRAIN[0]}.mp4"
    assert (first.start, first.end) == (0.0, 1.1) and first.speaker == TRAIN[0]
    second = clips[f"{TRAIN[0]}_1"]
    assert second.label == "angry" and second.transcript == "dogs bark"
    assert parse_word_times(second.meta["word_times"])[0] == ("dogs", pytest.approx(0.1), 0.5)
    assert clips[f"{VALID}_0"].meta["split"] == "valid"
    assert clips[f"{TEST}_1"].meta["split"] == "test" and clips[f"{ORPHAN}_0"].meta["split"] == ""
    seg = {c.clip_id: c for c in get_adapter("mosei", mosei_root, {"media": "segmented"}).clips()}
    assert seg[f"{TRAIN[0]}_1"].path == f"Raw/Videos/Segmented/Combined/{TRAIN[0]}_1.mp4"
    assert (seg[f"{TRAIN[0]}_1"].start, seg[f"{TRAIN[0]}_1"].end) == (0.0, 0.0)


def test_predefined_scheme_reproduces_the_standard_folds(mosei_root, tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    # manifest entries straight from the adapter (no media needed to check folds)
    from pipeline.manifest import ManifestEntry

    entries = [ManifestEntry(c.clip_id, c.path, speaker=c.speaker, label=c.label, meta=c.meta)
               for c in get_adapter("mosei", mosei_root).clips()]  # fmt: skip
    scheme = FoldScheme(name="sdk_standard", kind="predefined", split_by="split")
    (fold,) = make_folds(entries, scheme, seed=0)
    check_folds(entries, [fold], scheme)
    vid = {e.clip_id: e.meta["video_id"] for e in entries}
    assert {vid[c] for c in fold.train} == set(TRAIN)
    assert {vid[c] for c in fold.val} == {VALID} and {vid[c] for c in fold.test} == {TEST}
    assert len(fold.train) == 4 and len(fold.val) == 2 and len(fold.test) == 2
    assert not any(vid[c] == ORPHAN for c in fold.train + fold.val + fold.test)


def test_raw_transcripts_mode(mosei_root):
    clips = list(get_adapter("mosei", mosei_root, {"source": "raw"}).clips())
    assert [c.clip_id for c in clips] == [f"{TRAIN[0]}_0", f"{TRAIN[0]}_1", f"{TRAIN[0]}_2"]
    assert clips[0].transcript == "I don't glorpify" and clips[0].label == "happy"
    assert clips[1].scores["angry"] == pytest.approx(1.66) and "word_times" not in clips[1].meta
    assert clips[2].scores == {} and clips[2].label == ""  # a segment with no labels


def test_missing_files_say_which_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CMU_MOSEI_Labels\.csd.*Put the file there"):
        list(get_adapter("mosei", tmp_path).clips())
    with pytest.raises(FileNotFoundError, match="Transcript/Segmented/Combined"):
        list(get_adapter("mosei", tmp_path, {"source": "raw"}).clips())


def test_ingest_and_words_with_the_sdk_glove_vectors(mosei_root, tmp_path):
    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["corpus"] = {"name": "mosei", "adapter": "mosei", "root": str(mosei_root)}
    params["runner"].update(n_jobs=1, cache_dir=str(tmp_path / "cache"))
    csd = mosei_root / "CMU_MOSEI_TimestampedGloveVectors.csd"
    params["words"] = {"vectors": {"format": "mosei-csd", "path": str(csd)}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = load_params(tmp_path / "params.yaml")
    assert run_ingest(p, tmp_path) == 0
    lay = Layout("mosei", tmp_path)
    entries = {e.clip_id: e for e in read_manifest(lay.clips_csv)}
    assert sorted(entries) == [f"{TRAIN[0]}_0", f"{TRAIN[0]}_1"]  # only this video is on disk
    fails = read_failures(lay.failures_csv("ingest"))
    assert len(fails) == 2 * (len(VIDEOS) - 1)
    assert all("Raw/Videos/Full/Combined/" in f.reason and "not found" in f.reason for f in fails)
    assert entries[f"{TRAIN[0]}_0"].scores["happy"] == 2.0
    assert run_feature(p, "words", tmp_path, progress=False) == 0
    with FeatureReader(lay.features_dir("words")) as r:
        f = r.read(f"{TRAIN[0]}_0")
        assert [t.decode() for t in f.arrays["tokens"]] == ["i", "don't", "glorpify"]
        np.testing.assert_array_equal(f.arrays["vectors"][:2], [np.full(4, 2.0), np.full(4, 3.0)])
        assert f.arrays["oov"].tolist() == [False, False, True]
        np.testing.assert_allclose(f.timestamps, [0.2, 0.4, 0.7])
        g = r.read(f"{TRAIN[0]}_1")
        np.testing.assert_array_equal(g.arrays["vectors"], [np.full(4, 6.0), np.full(4, 7.0)])
    metrics = json.loads(lay.metrics_json("words").read_text())
    assert metrics["tokens"] == 5 and metrics["oov_tokens"] == 1 and metrics["oov_rate"] == 0.2
