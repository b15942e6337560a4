"""Timing truth across the visual and audio features: frames shown before a late audio track
are kept at their true times, the ``code`` mel variant can put a row on each actual video frame
time (variable frame rate, late audio), and containers with no frame count get one counted."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO
from visual_helpers import encode_frames

from pipeline.config import load_params, to_dict
from pipeline.features import ClipSource, make_extractor
from pipeline.media.probe import probe
from pipeline.media.synthetic import talking_head_frames
from pipeline.media.video import frame_times, iter_decoded

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 48000


def _source(path: Path, **kw) -> ClipSource:
    info = probe(path)
    return ClipSource(clip_id=path.stem, path=Path(path).resolve(), fps=info.fps,
                      has_audio=info.has_audio, has_video=info.has_video, **kw)  # fmt: skip


def _speech_like(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))


def _mel_frames() -> dict:
    mel = to_dict(load_params(REPO / "params.yaml").section("mel"))
    mel["variant"] = "code"
    mel["code"]["align_frames"] = True
    return mel


def test_late_audio_keeps_the_first_frames_at_their_true_times(tmp_path):
    clip = encode_frames(tmp_path / "late.mp4", list(talking_head_frames(30, 192, 144)),
                         audio=_speech_like(1.0).astype(np.float32), audio_delay=0.04)  # fmt: skip
    with av.open(str(clip)) as c:
        a = c.streams.audio[0]
        assert float(a.start_time * a.time_base) == pytest.approx(0.04, abs=0.002)
    times = [t for t, _ in iter_decoded(clip)]
    assert len(times) == 30  # none dropped
    assert times[0] == pytest.approx(-0.04, abs=0.002)  # before the first audio sample
    faces = make_extractor("faces", load_params(REPO / "params.yaml").section("faces"))
    f = faces.extract(_source(clip))
    assert f.n_steps == 30 and f.valid.all()
    np.testing.assert_allclose(f.timestamps, times)
    # the code mel variant with align_frames: a row at each of those times
    m = make_extractor("mel", _mel_frames()).extract(_source(clip))
    np.testing.assert_allclose(m.timestamps, f.timestamps)
    # a cut still starts at its start
    cut = [t for t, _ in iter_decoded(clip, start=0.2)]
    assert cut[0] >= 0.2 - 1e-6 and len(cut) < 30
    # sampled at 10 fps: the grid k / 10 reaches back to the frame at -0.04 (k = -1)
    sampled = [t for t, _ in iter_decoded(clip, fps=10)]
    assert sampled[0] == pytest.approx(-0.04, abs=0.002) and 0 <= sampled[1] < 1 / 30
    assert len(sampled) == 11


def test_mel_on_frame_times_equals_the_nominal_grid_on_constant_frame_rate(tmp_path):
    clip = encode_frames(tmp_path / "cfr.mp4", list(talking_head_frames(45, 96, 96)),
                         fps=30, audio=_speech_like(1.5).astype(np.float32))  # fmt: skip
    cfg = _mel_frames()
    aligned = make_extractor("mel", cfg).extract(_source(clip))
    cfg["code"]["align_frames"] = False
    nominal = make_extractor("mel", cfg).extract(_source(clip))
    n = aligned.n_steps
    assert n == 45 and nominal.n_steps >= n
    np.testing.assert_allclose(aligned.timestamps, nominal.timestamps[:n], atol=1e-6)
    np.testing.assert_allclose(aligned.arrays["mel"], nominal.arrays["mel"][:n], atol=1e-3)


def test_mel_rows_follow_a_variable_frame_rate(tmp_path):
    gaps = np.array([33, 33, 50, 17, 100, 33, 67, 33, 33, 40, 26, 33] * 3)
    times = np.concatenate([[0], np.cumsum(gaps)]) / 1000.0
    clip = encode_frames(
        tmp_path / "vfr.mp4",
        list(talking_head_frames(len(times), 96, 96)),
        times=times,
        audio=_speech_like(times[-1] + 0.2).astype(np.float32),
    )
    np.testing.assert_allclose(frame_times(clip), times, atol=1e-3)
    m = make_extractor("mel", _mel_frames()).extract(_source(clip))
    np.testing.assert_allclose(m.timestamps, times, atol=1e-3)
    # the nominal grid (the average rate) misses frames by more than a 30 fps frame interval
    cfg = _mel_frames()
    cfg["code"]["align_frames"] = False
    nominal = make_extractor("mel", cfg).extract(_source(clip))
    assert np.abs(nominal.timestamps[: len(times)] - times).max() > 1 / 30


def test_mpeg1_program_stream_frames_are_counted(tmp_path):
    path = tmp_path / "clip.mpg"
    with av.open(str(path), "w", format="mpeg") as out:
        s = out.add_stream("mpeg1video", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(75):
            frame = np.full((48, 64, 3), i * 3, np.uint8)
            out.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(s.encode(None))
    info = probe(path)
    assert info.n_frames == 75 == sum(1 for _ in iter_decoded(path))
    assert info.n_frames_from == "counted"
    mp4 = encode_frames(tmp_path / "c.mp4", list(talking_head_frames(10, 64, 64)))
    assert probe(mp4).n_frames == 10 and probe(mp4).n_frames_from == "container"
