"""One person per clip: faces linked into tracks, one track chosen by a rule and held for the
whole clip (largest, confidence, central, side, speaker), on clips made from the astronaut's
face; small faces found down to ``min_face``, and clips with few faces said in a warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, make_project
from visual_helpers import encode_frames, face_gap_clip, people_frames, speech_envelope

from pipeline.clip_warnings import read_warnings
from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, ExtractionError, make_extractor
from pipeline.manifest import read_failures
from pipeline.media.audio import decode_audio
from pipeline.paths import Layout
from pipeline.qa.report import build_report
from pipeline.vision.face_track import assign
from pipeline.workflow import run_feature, run_ingest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000
WIDTH = 400


def _base() -> dict:
    return to_dict(load_params(REPO / "params.yaml").section("faces"))


def _source(path: Path, **kw) -> ClipSource:
    return ClipSource(clip_id=path.stem, path=Path(path).resolve(), **kw)


def _left(feats) -> np.ndarray:
    """Per valid row: the chosen face's centre is in the left half."""
    b = feats.arrays["boxes"][feats.valid]
    return (b[:, 0] + b[:, 2]) / 2 < WIDTH / 2


def _held(feats) -> bool:
    """The rows follow one face: all on one side of the frame."""
    left = _left(feats)
    return bool(left.all() or not left.any())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tracks")
    n = 60
    quiet = np.zeros(int(SR * n / 30), np.float32)
    swap = np.where(np.arange(n) < n // 2, 6.0, 0.0)  # left blurred, then right blurred
    made = {
        # a big face and a small one
        "big_small": people_frames(n, WIDTH, 200, sides=(190, 110)),
        # equal faces whose confidence swaps half-way
        "swap": people_frames(n, WIDTH, 200, blur=(swap, swap[::-1])),
    }
    return {
        k: encode_frames(d / f"{k}.mp4", list(v), audio=quiet, sample_rate=SR)
        for k, v in made.items()
    }


def test_assign_links_by_overlap_and_nearness():
    prev = {0: np.array([0, 0, 50, 50.0]), 1: np.array([200, 0, 250, 50.0])}
    boxes = np.array([[205, 2, 255, 52.0], [10, 0, 60, 50.0], [400, 0, 450, 50.0]])
    assert assign(prev, boxes) == [1, 0, None]
    # near but twice the size is not the same face; far is not either
    assert assign({0: np.array([0, 0, 50, 50.0])}, np.array([[0, 0, 150, 150.0]])) == [None]


@pytest.mark.parametrize("rule", ["confidence", "largest", "central"])
def test_one_track_held_for_the_whole_clip(clips, rule):
    ex = make_extractor("faces", {**_base(), "select": rule})
    for name, path in clips.items():
        feats = ex.extract(_source(path))
        a = feats.attrs
        assert a["n_tracks"] == 2, (name, a)
        assert feats.valid.mean() >= 0.95, (name, rule, feats.valid.mean())
        assert _held(feats), f"{name}/{rule}: the kept face switched sides"
        if name == "big_small" and rule == "largest":
            assert _left(feats).all()  # the big face is on the left
    # confidence sums over the clip: on big_small the big sharp face wins everywhere
    feats = make_extractor("faces", {**_base(), "select": "confidence"}).extract(
        _source(clips["big_small"])
    )
    assert _left(feats).all()


def test_side_reads_the_manifest_column(clips):
    ex = make_extractor("faces", {**_base(), "select": "side"})
    for side, want_left in (("left", True), ("right", False)):
        feats = ex.extract(_source(clips["big_small"], meta={"face_side": side}))
        assert feats.attrs["select_used"] == "side"
        assert (_left(feats) == want_left).all(), side
    feats = ex.extract(_source(clips["big_small"]))  # no column: largest, and said
    assert feats.attrs["select_used"] == "largest"
    assert "face_side" in feats.attrs["warning"]


@pytest.fixture(scope="module")
def speaking(tmp_path_factory, sample_clips) -> dict[str, Path]:
    """A face whose mouth opens with espeak-ng speech (a sample clip's audio) beside a still
    face, the speaker once on the left and once on the right."""
    d = tmp_path_factory.mktemp("speaker")
    audio = decode_audio(sample_clips[5], SR)
    n = int(len(audio) / SR * 30)
    env = speech_envelope(audio, SR, n)
    assert env.std() > 0.2  # speech and pauses
    out = {}
    for side, k in (("left", 0), ("right", 1)):
        mouth = [None, None]
        mouth[k] = env
        frames = list(people_frames(n, WIDTH, 200, mouth=tuple(mouth)))
        out[side] = encode_frames(d / f"speaker_{side}.mp4", frames, audio=audio, sample_rate=SR)
    return out


def test_speaker_is_the_face_whose_mouth_follows_the_audio(speaking):
    ex = make_extractor("faces", {**_base(), "select": "speaker"})
    for side, path in speaking.items():
        feats = ex.extract(_source(path))
        a = feats.attrs
        assert a["select_used"] == "speaker", a.get("warning")
        assert (_left(feats) == (side == "left")).all(), (side, a)
        # the still face's r is noise: 0.02-0.33 over runs of the suite (the generated clip's
        # pixels vary with what ran before in the process), the speaker's 0.52-0.58
        assert a["select_score"] > a["select_runner_up"] + 0.1, a
    # no audio track: largest, with a warning saying why
    silent = speaking["left"].with_name("silent.mp4")
    frames = list(people_frames(40, WIDTH, 200))
    encode_frames(silent, frames)
    feats = ex.extract(_source(silent, has_audio=False))
    assert feats.attrs["select_used"] == "largest" and "speaker" in feats.attrs["warning"]


def _small_face_clip(path: Path, face_frac: float, n: int = 12) -> Path:
    """1920 x 1080 frames with one face whose box is ``face_frac`` of the long side."""
    side = face_frac * 1920 / 0.45  # the face box is about 0.45 of the patch
    frames = list(people_frames(n, 1920, 1080, sides=(side, 0)))
    return encode_frames(path, frames)


def test_small_faces_are_found_down_to_min_face_or_said(tmp_path):
    base = _base()
    assert base["min_face"] == 0.05
    ex = make_extractor("faces", base)
    f20 = ex.extract(_source(_small_face_clip(tmp_path / "f20.mp4", 1 / 20)))
    assert f20.valid.mean() >= 0.95, f20.attrs
    assert f20.attrs["n_small_face_scans"] > 0  # the fast scan (1/8 of the side) misses it
    w = f20.arrays["boxes"][f20.valid]
    assert np.median(w[:, 2] - w[:, 0]) < 1920 / 16
    f30 = ex.extract(_source(_small_face_clip(tmp_path / "f30.mp4", 1 / 30)))
    assert f30.valid.mean() >= 0.95 or "min_face_rate" in f30.attrs.get("warning", "")
    # asked for 1/30, it is found
    f30 = make_extractor("faces", {**base, "min_face": 1 / 30}).extract(
        _source(tmp_path / "f30.mp4")
    )
    assert f30.valid.mean() >= 0.95, f30.attrs
    # min_face 0 keeps the fast scan only (faces of 1/8 of the side): the 1/20 face is lost
    with pytest.raises(ExtractionError, match="no face found"):
        make_extractor("faces", {**base, "min_face": 0}).extract(_source(tmp_path / "f20.mp4"))


def test_a_clip_under_min_face_rate_is_a_warning_or_when_strict_a_failure(tmp_path):
    clip = face_gap_clip(tmp_path / "gap.mp4", seconds=2.0, gap=(1.0, 1.5))  # face in 75 %
    feats = make_extractor("faces", _base()).extract(_source(clip))
    assert feats.valid.mean() == pytest.approx(0.75, abs=0.03)
    assert "min_face_rate" in feats.attrs["warning"] and "75" in feats.attrs["warning"]
    with pytest.raises(ExtractionError, match="min_face_rate"):
        make_extractor("faces", {**_base(), "strict": True}).extract(_source(clip))


def test_stage_writes_warning_rows_the_summary_and_the_qa_page_show(sample_clips, tmp_path):
    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    actor = tmp_path / "corpus" / "Actor_05"
    actor.mkdir()
    face_gap_clip(actor / "01-01-01-01-01-01-05.mp4", seconds=2.0, gap=(1.0, 1.5))
    params = load_params(root / "params.yaml")
    assert run_ingest(params, root) == 0
    assert run_feature(params, "faces", root, progress=False) == 0
    lay = Layout("sample", root=root)
    warned = read_warnings(lay.warnings_csv("faces"))
    assert [w.clip_id for w in warned] == ["01-01-01-01-01-01-05"]
    assert "min_face_rate" in warned[0].warning and warned[0].stage == "faces"
    assert read_failures(lay.failures_csv("faces")) == []
    assert json.loads(lay.metrics_json("faces").read_text())["warned"] == 1
    # mel never warns: its table is there, with no rows
    assert run_feature(params, "mel", root, progress=False) == 0
    assert lay.warnings_csv("mel").exists() and read_warnings(lay.warnings_csv("mel")) == []
    text = build_report(lay).read_text()
    section = text[text.index(">Warnings</h2>") :]
    assert "1 clip(s) in faces" in section and "01-01-01-01-01-01-05" in section
    assert "the lowest face rate: " in text  # the worst clip's montage
    # a second run reuses the cached clip and keeps its warning
    assert run_feature(params, "faces", root, progress=False) == 0
    assert len(read_warnings(lay.warnings_csv("faces"))) == 1
    # strict: the same clip is a failure, and the stage says so in its exit code
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["faces"]["strict"] = True
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run_feature(load_params(root / "params.yaml"), "faces", root, progress=False) == 0
    fails = read_failures(lay.failures_csv("faces"))
    assert [f.clip_id for f in fails] == ["01-01-01-01-01-01-05"]
    assert "min_face_rate" in fails[0].reason
    assert read_warnings(lay.warnings_csv("faces")) == []


def test_one_person_clips_are_the_same_whatever_the_rule(sample_clips):
    src = _source(sample_clips[0])
    ref = make_extractor("faces", _base()).extract(src)
    for rule in ("largest", "central", "side", "speaker"):
        feats = make_extractor("faces", {**_base(), "select": rule}).extract(src)
        assert feats.attrs["n_tracks"] == 1 and "warning" not in feats.attrs, rule
        for name, a in ref.arrays.items():
            np.testing.assert_array_equal(feats.arrays[name], a, err_msg=f"{rule}: {name}")
