"""CREMA-D, SAVEE, eNTERFACE'05, MELD and CMU-MOSI: each adapter's options and bad layouts
beyond the common contract (tests/test_corpus_contract.py), on the same miniatures."""

from __future__ import annotations

import numpy as np
import pytest
from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI import cmu_mosi_std_folds as sdk
from sklearn.metrics import f1_score

from pipeline.cli import main as mer
from pipeline.corpora import get_adapter
from pipeline.corpora.crema_d import parse_name as crema_name
from pipeline.corpora.enterface import parse_name as enterface_name
from pipeline.corpora.mosi import STANDARD_FOLD_SIZES, seven_class, standard_folds
from pipeline.corpora.savee import parse_name as savee_name
from pipeline.manifest import read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.training.sentiment import sentiment_metrics
from tests.miniatures import MINIATURES, place


def build(name, tmp_path, sample_clips):
    root = tmp_path / name
    root.mkdir()
    return root, MINIATURES[name](root, sample_clips)


# -- CREMA-D ----------------------------------------------------------------------------------
def test_crema_d_names():
    assert crema_name("1076_MTI_SAD_XX.flv") == {
        "actor": "1076", "sentence": "MTI", "emotion": "SAD", "level": "XX"
    }  # fmt: skip
    with pytest.raises(ValueError, match="emotion code JOY"):
        crema_name("1001_DFA_JOY_XX.wav")
    with pytest.raises(ValueError, match="not a CREMA-D name"):
        crema_name("1001_DFA_ANG.wav")


def test_crema_d_votes_media_and_lfs_pointers(tmp_path, sample_clips):
    root, _ = build("crema-d", tmp_path, sample_clips)
    voice = get_adapter("crema-d", root, {"label_source": "voice"})
    clips = {c.clip_id: c for c in voice.clips()}
    assert "1002_IEO_SAD_LO" not in clips  # a tied vote (N:S)
    assert "tied crowd vote 'N:S'" in dict(voice.skipped)["VideoFlash/1002_IEO_SAD_LO.flv"]
    assert clips["1002_TIE_NEU_XX"].label == "neutral"
    assert clips["1001_DFA_ANG_XX"].meta["intended"] == "angry"
    audio = {c.clip_id: c for c in get_adapter("crema-d", root, {"media": "audio"}).clips()}
    assert audio["1003_WSI_FEA_XX"].path == "AudioWAV/1003_WSI_FEA_XX.wav"
    assert audio["1003_WSI_FEA_XX"].transcript == "We'll stop in a couple of minutes."
    assert audio["1003_WSI_FEA_XX"].meta.get("gender") is None  # actor 1003 not in the table
    # a zip download of the repository: LFS pointers where the media should be
    pointer = root / "VideoFlash" / "1004_TSI_HAP_MD.flv"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    plain = get_adapter("crema-d", root)
    assert len(list(plain.clips())) == 6
    assert "git-lfs" in dict(plain.skipped)["VideoFlash/1004_TSI_HAP_MD.flv"]
    (root / "processedResults" / "summaryTable.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"summaryTable\.csv.*Expected layout"):
        list(get_adapter("crema-d", root, {"label_source": "face"}).clips())
    assert len(list(get_adapter("crema-d", root).clips())) == 6  # intended labels need no table


# -- SAVEE ------------------------------------------------------------------------------------
def test_savee_names_and_the_flat_audio_folder(tmp_path, sample_clips):
    assert savee_name("sa03.avi") == ("", "sa", 3)
    assert savee_name("KL_n30.wav") == ("KL", "n", 30)
    with pytest.raises(ValueError, match="outside 1..15"):
        savee_name("h16.wav")
    root = tmp_path / "savee"
    for i, name in enumerate(("DC_a01.wav", "JE_su02.wav", "JK_n17.wav", "x.wav")):
        place(sample_clips[i], root / "ALL" / name)
    adapter = get_adapter("savee", root, {"media": "audio"})
    clips = list(adapter.clips())
    assert [(c.clip_id, c.speaker, c.label) for c in clips] == [
        ("DC_a01", "DC", "angry"), ("JE_su02", "JE", "surprised"), ("JK_n17", "JK", "neutral")
    ]  # fmt: skip
    assert [rel for rel, _ in adapter.skipped] == ["ALL/x.wav"]
    with pytest.raises(FileNotFoundError, match="no AudioVisualClip/ folder"):
        list(get_adapter("savee", root).clips())


def test_savee_leave_one_speaker_out_through_mer_folds(tmp_path, sample_clips):
    """With no schemes in params, ``mer folds`` writes the corpus's standard ones."""
    root, _ = build("savee", tmp_path, sample_clips)
    proj = tmp_path / "proj"
    common = ["--corpus", str(root), "--adapter", "savee", "--name", "savee",
              "--root", str(proj), "-q"]  # fmt: skip
    assert mer(["ingest", *common]) == 0
    assert mer(["folds", *common, "--set", "folds.schemes=[]"]) == 0
    import json

    folds = json.loads((Layout("savee", proj).folds_dir / "loso.json").read_text())["folds"]
    speaker = {e.clip_id: e.speaker for e in read_manifest(Layout("savee", proj).clips_csv)}
    assert sorted({speaker[c] for f in folds for c in f["test"]}) == ["DC", "JE", "JK", "KL"]
    assert all(len({speaker[c] for c in f["test"]}) == 1 for f in folds)


# -- eNTERFACE'05 -----------------------------------------------------------------------------
def test_enterface_names_and_folder_checks(tmp_path, sample_clips):
    assert enterface_name("s12_an_3.avi") == (12, "an", 3)
    assert enterface_name("s_7_SU_1.avi") == (7, "su", 1)
    root, _ = build("enterface", tmp_path, sample_clips)
    place(sample_clips[0], root / "subject 3/anger/sentence 2/s3_an_4.avi")
    place(sample_clips[0], root / "subject 3/anger/sentence 1/s5_an_1.avi")
    adapter = get_adapter("enterface", root)
    clips = {c.clip_id: c for c in adapter.clips()}
    assert clips["s04_sa_2"].transcript == "Oh no, tell me this is not true, please!"
    assert clips["s04_sa_2"].speaker == "subject_04" and clips["s04_sa_2"].label == "sad"
    why = dict(adapter.skipped)
    assert "sentence 4 in the folder 'sentence 2'" in why["subject 3/anger/sentence 2/s3_an_4.avi"]
    assert "subject 5 in the folder of subject 3" in why["subject 3/anger/sentence 1/s5_an_1.avi"]


# -- MELD -------------------------------------------------------------------------------------
def test_meld_missing_split_file_and_sentiment(tmp_path, sample_clips):
    root, _ = build("meld", tmp_path, sample_clips)
    assert len(list(get_adapter("meld", root).clips())) == 6  # dev's CSV is under dev/
    (root / "dev" / "dev_sent_emo.csv").unlink()
    adapter = get_adapter("meld", root, {"label": "sentiment"})
    clips = {c.clip_id: c for c in adapter.clips()}
    assert sorted(clips) == ["test_dia0_utt0", "test_dia0_utt1", "train_dia0_utt0",
                             "train_dia0_utt1", "train_dia1_utt0"]  # fmt: skip
    assert clips["test_dia0_utt1"].label == "negative"
    assert clips["test_dia0_utt1"].meta["emotion"] == "fear"
    assert clips["train_dia0_utt1"].transcript == "You’re kidding."
    why = dict(adapter.skipped)["dev_sent_emo.csv"]
    assert "label file dev_sent_emo.csv not found" in why and "train_splits/" in why
    # an utterance whose clip is missing: an ingest failure naming where it was looked for
    (root / "output_repeated_splits_test" / "dia0_utt1.mp4").unlink()
    proj = tmp_path / "proj"
    assert mer(["ingest", "--corpus", str(root), "--adapter", "meld", "--name", "meld",
                "--root", str(proj), "-q"]) == 0  # fmt: skip
    lay = Layout("meld", proj)
    assert len(read_manifest(lay.clips_csv)) == 4
    reasons = " | ".join(f.reason for f in read_failures(lay.failures_csv("ingest")))
    assert "output_repeated_splits_test/dia0_utt1.mp4" in reasons
    assert "dev_sent_emo.csv not found" in reasons and "train_sent_emo.csv:5" in reasons


# -- CMU-MOSI ---------------------------------------------------------------------------------
def test_mosi_standard_folds_are_the_sdks():
    folds = standard_folds()
    assert {k: sum(v == k for v in folds.values()) for k in STANDARD_FOLD_SIZES} == (
        STANDARD_FOLD_SIZES
    )
    assert all(folds[v] == "test" for v in sdk.standard_test_fold)


def test_mosi_labels_sources_and_media(tmp_path, sample_clips):
    root, _ = build("mosi", tmp_path, sample_clips)
    vid = sdk.standard_train_fold[0]
    clips = {c.clip_id: c for c in get_adapter("mosi", root).clips()}
    first, second = clips[f"{vid}_1"], clips[f"{vid}_2"]  # numbered in time order
    assert first.meta["sentiment"] == "2.6000" and first.label == "strongly_positive"
    assert second.label == "weakly_negative" and second.meta["split"] == "train"
    assert first.transcript == "dogs bark" and second.transcript == "cats purr"
    binary = {c.clip_id: c.label for c in get_adapter("mosi", root, {"label": "binary"}).clips()}
    assert binary[f"{vid}_1"] == "non_negative" and binary[f"{vid}_2"] == "negative"
    full = {c.clip_id: c for c in get_adapter("mosi", root, {"media": "full"}).clips()}
    assert full[f"{vid}_2"].path == f"Raw/Video/Full/{vid}.mp4"
    assert (full[f"{vid}_2"].start, full[f"{vid}_2"].end) == (1.05, 2.0)
    # the raw release's transcripts, scores matched by order
    trans = root / "Raw/Transcript/Segmented"
    trans.mkdir(parents=True)
    (trans / f"{vid}.annotprocessed").write_text("1_DELIM_Dogs bark\n2_DELIM_Cats purr\nbroken\n")
    raw = get_adapter("mosi", root, {"source": "raw"})
    got = [(c.clip_id, c.transcript, c.meta["sentiment"]) for c in raw.clips()]
    assert got == [(f"{vid}_1", "Dogs bark", "2.6000"), (f"{vid}_2", "Cats purr", "-1.4000")]
    assert raw.skipped == [(f"Raw/Transcript/Segmented/{vid}.annotprocessed:3",
                            "not <segment>_DELIM_<text>")]  # fmt: skip
    (root / "CMU_MOSI_Opinion_Labels.csd").unlink()
    with pytest.raises(FileNotFoundError, match="CMU_MOSI_Opinion_Labels.csd not found"):
        list(get_adapter("mosi", root).clips())
    unlabelled = get_adapter("mosi", root, {"source": "raw"})
    assert [c.label for c in unlabelled.clips()] == ["", ""]
    assert "clips have no sentiment" in dict(unlabelled.skipped)["CMU_MOSI_Opinion_Labels.csd"]


def test_sentiment_metrics_match_direct_computation():
    rng = np.random.default_rng(0)
    truth = np.round(rng.uniform(-3, 3, 200) * 3) / 3
    truth[:10] = 0.0
    pred = np.clip(truth + rng.normal(0, 1, 200), -3, 3)
    m = sentiment_metrics(truth, pred)
    assert m["mae"] == pytest.approx(np.mean(np.abs(truth - pred)))
    assert m["corr"] == pytest.approx(np.corrcoef(truth, pred)[0, 1])
    idx = [SEVEN_INDEX[seven_class(t)] for t in truth], [SEVEN_INDEX[seven_class(p)] for p in pred]
    assert m["acc7"] == pytest.approx(np.mean(np.equal(*idx)))
    assert m["acc2"] == pytest.approx(np.mean((truth >= 0) == (pred >= 0)))
    assert m["f1"] == pytest.approx(f1_score(truth >= 0, pred >= 0, average="weighted"))
    nz = truth != 0
    assert m["acc2_nonzero"] == pytest.approx(np.mean((truth[nz] > 0) == (pred[nz] > 0)))
    assert m["f1_nonzero"] == pytest.approx(
        f1_score(truth[nz] > 0, pred[nz] > 0, average="weighted")
    )


SEVEN_INDEX = {
    name: i
    for i, name in enumerate(
        ("strongly_negative", "negative", "weakly_negative", "neutral", "weakly_positive",
         "positive", "strongly_positive")  # fmt: skip
    )
}


@pytest.mark.parametrize(("adapter", "option", "value"), [
    ("crema-d", "media", "nonsense"), ("crema-d", "audio", "nonsense"),
    ("crema-d", "label_source", "nonsense"), ("ravdess", "recordings", "nonsense"),
    ("iemocap", "dialogs", "nonsense"), ("mosi", "label", "nonsense"),
    ("mosei", "source", "nonsense"), ("meld", "splits", ["train", "nonsense"]),
    ("savee", "media", "nonsense"),
])  # fmt: skip
def test_a_bad_option_value_names_the_option_and_what_is_allowed(tmp_path, adapter, option,
                                                                  value):
    with pytest.raises(ValueError) as e:
        get_adapter(adapter, tmp_path, {option: value})
    assert f"{adapter} option {option}='nonsense' is not allowed; allowed: " in str(e.value)
