"""IEMOCAP adapter on a miniature copy of the release's layout and annotation files."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from pipeline.config import FoldScheme, load_params
from pipeline.corpora import get_adapter
from pipeline.corpora.iemocap import face_side, parse_utterance_id, read_wdseg
from pipeline.folds import check_folds, make_folds
from pipeline.manifest import ManifestEntry, read_failures, read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.text.alignment import parse_word_times
from pipeline.workflow import run_feature, run_ingest

# (utterance, start, end, code, transcript) per dialog; times inside the ~2.3 s dialog video
DIALOGS = {
    "Ses01F_impro01": [
        ("Ses01F_impro01_F000", 0.10, 0.80, "neu", "Excuse me."),
        ("Ses01F_impro01_M000", 0.90, 1.50, "exc", "Do you have your forms?"),
        ("Ses01F_impro01_F001", 1.55, 2.20, "fru", "Yeah. [LAUGHTER]"),
    ],
    "Ses02M_script01_1": [
        ("Ses02M_script01_1_M000", 0.20, 1.00, "hap", "I'm so glad you came."),
        ("Ses02M_script01_1_F000", 1.10, 2.00, "ang", "Don't talk to me."),
        ("Ses02M_script01_1_F001", 2.00, 2.30, "xxx", "Fine."),
    ],
    "Ses03F_impro02": [
        ("Ses03F_impro02_F000", 0.10, 1.00, "sad", "He's gone."),
        ("Ses03F_impro02_M000", 1.10, 2.10, "neu", "I know."),
    ],
}
WDSEG = """\tSFrm  EFrm    SegAScr Word
\t    0     9    -123456 <s>
\t   10    29    -234567 EXCUSE
\t   30    41    -123456 ++BREATHING++
\t   42    59    -345678 ME(2)
\t   60    69    -123456 </s>
 Total score:    -1234567
"""


def _eval_block(utt, start, end, code):
    return (
        f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 2.0000]\n"
        "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\n"
        "A-E3:\tval 3; act 2; dom  2;\t()\nA-E4:\tval 2; act 3; dom  3;\t(calm)\n\n"
    )


def _dialog_avi(src: Path, dst: Path) -> None:
    """A side-by-side two-actor video (mpeg4 + PCM in AVI, as in the release) from a sample."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vs = out.add_stream("mpeg4", rate=30)
        vs.width, vs.height, vs.pix_fmt = 384, 192, "yuv420p"
        aout = out.add_stream("pcm_s16le", rate=16000)
        aout.layout = "mono"
        res = av.AudioResampler(format="s16", layout="mono", rate=16000)
        for frame in inp.decode(inp.streams.video[0], inp.streams.audio[0]):
            if isinstance(frame, av.VideoFrame):
                img = frame.to_ndarray(format="rgb24")
                two = av.VideoFrame.from_ndarray(np.concatenate([img, img[:, ::-1]], 1), "rgb24")
                out.mux(vs.encode(two))
            else:
                for r in res.resample(frame):
                    out.mux(aout.encode(r))
        out.mux(vs.encode())
        out.mux(aout.encode())


@pytest.fixture(scope="module")
def iemocap_root(tmp_path_factory, sample_clips):
    root = tmp_path_factory.mktemp("IEMOCAP_full_release")
    for dialog, utts in DIALOGS.items():
        session = root / f"Session{int(dialog[3:5])}"
        evals = session / "dialog" / "EmoEvaluation"
        evals.mkdir(parents=True, exist_ok=True)
        text = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        text += "".join(_eval_block(u, s, e, c) for u, s, e, c, _ in utts)
        (evals / f"{dialog}.txt").write_text(text)
        (evals / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
        (evals / "Categorical").mkdir(exist_ok=True)  # the release's sub-folders are ignored
        trans = session / "dialog" / "transcriptions"
        trans.mkdir(parents=True, exist_ok=True)
        lines = [f"{u} [{s:08.4f}-{e:08.4f}]: {t}" for u, s, e, _, t in utts]
        lines.insert(1, f"{dialog}_MXX0 [000.0000-000.5000]: [overlap]")
        (trans / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
        _dialog_avi(sample_clips[0], session / "dialog" / "avi" / "DivX" / f"{dialog}.avi")
        for u, s, e, _, _ in utts:
            wav = session / "sentences" / "wav" / dialog / f"{u}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            sf.write(wav, np.zeros(int((e - s) * 16000), np.int16), 16000)
    seg = root / "Session1/sentences/ForcedAlignment/Ses01F_impro01/Ses01F_impro01_F000.wdseg"
    seg.parent.mkdir(parents=True)
    seg.write_text(WDSEG)
    return root


def test_four_class_mapping(iemocap_root):
    clips = {c.clip_id: c for c in get_adapter("iemocap", iemocap_root).clips()}
    # fru and xxx are outside the 4-class setting; exc and hap both count as happy
    assert {k: c.label for k, c in clips.items()} == {
        "Ses01F_impro01_F000": "neutral",
        "Ses01F_impro01_M000": "happy",
        "Ses02M_script01_1_M000": "happy",
        "Ses02M_script01_1_F000": "angry",
        "Ses03F_impro02_F000": "sad",
        "Ses03F_impro02_M000": "neutral",
    }
    c = clips["Ses02M_script01_1_F000"]
    assert c.path == "Session2/dialog/avi/DivX/Ses02M_script01_1.avi"
    assert (c.start, c.end) == (1.1, 2.0) and c.transcript == "Don't talk to me."
    assert c.speaker == "Ses02_F" and c.session == "Session2"
    assert c.meta["emotion_code"] == "ang" and c.meta["improvised"] == "False"
    assert (c.meta["valence"], c.meta["activation"], c.meta["dominance"]) == (
        "2.5000",
        "3.0000",
        "2.0000",
    )
    assert (
        c.meta["sentence_wav"]
        == "Session2/sentences/wav/Ses02M_script01_1/Ses02M_script01_1_F000.wav"
    )


def test_all_labels_and_audio_only_media(iemocap_root):
    clips = list(
        get_adapter("iemocap", iemocap_root, {"classes": "all", "media": "sentence_wav"}).clips()
    )
    labels = {c.clip_id: c.label for c in clips}
    assert len(clips) == 8
    assert (
        labels["Ses01F_impro01_M000"] == "excited" and labels["Ses02M_script01_1_M000"] == "happy"
    )
    assert labels["Ses01F_impro01_F001"] == "frustrated"
    assert labels["Ses02M_script01_1_F001"] == "no_agreement"
    wav = next(c for c in clips if c.clip_id == "Ses03F_impro02_F000")
    assert wav.path == "Session3/sentences/wav/Ses03F_impro02/Ses03F_impro02_F000.wav"
    assert (wav.start, wav.end) == (0.0, 0.0)
    impro = list(get_adapter("iemocap", iemocap_root, {"dialogs": "impro"}).clips())
    assert {c.meta["dialog"] for c in impro} == {"Ses01F_impro01", "Ses03F_impro02"}


def test_speaker_side_of_the_dialog_frame(iemocap_root):
    # the actor wearing markers (the dialog's letter) is on the left; the other on the right
    assert parse_utterance_id("Ses01F_impro01_M000")["mocap"] == "F"
    assert (
        face_side("Ses01F_impro01_F000") == "left" and face_side("Ses01F_impro01_M000") == "right"
    )
    assert face_side("Ses02M_script01_1_M000") == "left"
    assert face_side("Ses02M_script01_1_F000") == "right"
    assert face_side("Ses02M_script01_1_F000", mocap_side="right") == "left"
    sides = {c.clip_id: c.meta["face_side"] for c in get_adapter("iemocap", iemocap_root).clips()}
    assert sides["Ses01F_impro01_M000"] == "right" and sides["Ses02M_script01_1_M000"] == "left"
    with pytest.raises(ValueError, match="not an IEMOCAP utterance id"):
        parse_utterance_id("Ses01X_impro01_F000")


def test_forced_alignment_word_times(iemocap_root):
    seg = (
        iemocap_root / "Session1/sentences/ForcedAlignment/Ses01F_impro01/Ses01F_impro01_F000.wdseg"
    )
    assert read_wdseg(seg) == [("excuse", 0.1, 0.3), ("me", 0.42, 0.6)]
    clip = next(
        c for c in get_adapter("iemocap", iemocap_root).clips() if c.clip_id.endswith("F000")
    )
    assert parse_word_times(clip.meta["word_times"]) == [("excuse", 0.1, 0.3), ("me", 0.42, 0.6)]


def test_missing_corpus_and_bad_options(tmp_path, iemocap_root):
    with pytest.raises(FileNotFoundError, match="EmoEvaluation"):
        list(get_adapter("iemocap", tmp_path).clips())
    with pytest.raises(ValueError, match="classes"):
        get_adapter("iemocap", iemocap_root, {"classes": "7"})
    with pytest.raises(ValueError, match="unknown option corpus.options.colour"):
        get_adapter("iemocap", iemocap_root, {"colour": "red"})


def test_ingest_cuts_utterances_and_words_use_alignment(iemocap_root, tmp_path):
    import yaml

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    params["corpus"] = {"name": "iemocap", "adapter": "iemocap", "root": str(iemocap_root)}
    params["runner"].update(n_jobs=1, cache_dir=str(tmp_path / "cache"))
    params["words"] = {"max_words": 30, "pad": True}
    params["folds"] = {"seed": 3, "schemes": []}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = load_params(tmp_path / "params.yaml")
    assert run_ingest(p, tmp_path) == 0
    lay = Layout("iemocap", tmp_path)
    entries = {e.clip_id: e for e in read_manifest(lay.clips_csv)}
    assert len(entries) == 6
    e = entries["Ses01F_impro01_M000"]
    assert e.duration == pytest.approx(0.6) and e.width == 384 and e.meta["face_side"] == "right"
    assert run_feature(p, "words", tmp_path, progress=False) == 0
    assert read_failures(lay.failures_csv("words")) == []
    with FeatureReader(lay.features_dir("words")) as r:
        f = r.read("Ses01F_impro01_F000")
        assert f.n_steps == 30 and f.valid.sum() == 2 and f.attrs["timing"] == "aligned"
        np.testing.assert_allclose(f.timestamps[:2], [0.1, 0.42])
        g = r.read("Ses02M_script01_1_F000")
        assert [t.decode() for t in g.arrays["tokens"][g.valid]] == [
            "do",
            "n't",
            "talk",
            "to",
            "me",
        ]
    assert json.loads(lay.metrics_json("words").read_text())["tokens"] > 0


def _entries(n_per_label=25, sessions=5):
    out = []
    for i in range(n_per_label * 4):
        s = i % sessions + 1
        out.append(
            ManifestEntry(
                clip_id=f"Ses0{s}F_impro01_F{i:03d}",
                path="x.avi",
                speaker=f"Ses0{s}_F",
                session=f"Session{s}",
                label=("neutral", "happy", "sad", "angry")[i % 4],
            )
        )
    return out


def test_fold_schemes_of_the_papers():
    entries = _entries()
    # Qian & Han: 10-fold 8:1:1 = 10 stratified folds, validation 1/9 of the rest (~1/10)
    scheme = FoldScheme(name="kfold_811", kind="stratified_kfold", n_folds=10, val_fraction=1 / 9)
    folds = make_folds(entries, scheme, seed=7)
    check_folds(entries, folds, scheme)
    for f in folds:
        assert len(f.test) == 10 and abs(len(f.val) - 10) <= 2 and len(f.train) >= 78
    # leave-one-session-out: one session tests, one validates, the rest train
    loso = FoldScheme(name="loso", kind="group_kfold", n_folds=5, group_by="session")
    folds = make_folds(entries, loso, seed=7)
    check_folds(entries, folds, loso)
    by_id = {e.clip_id: e.session for e in entries}
    assert sorted({by_id[c] for f in folds for c in f.test}) == [f"Session{i}" for i in range(1, 6)]
    for f in folds:
        assert len({by_id[c] for c in f.test}) == 1 and len({by_id[c] for c in f.val}) == 1
