"""Streaming video decode: frame count, timestamps, sampling, cuts, time base, bad files."""

from __future__ import annotations

import av
import numpy as np
import pytest
from visual_helpers import truncated_clip

from pipeline.media.video import VideoDecodeError, iter_decoded, iter_frames, to_rgb


def _container_frames(path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def test_frames_match_pyav_and_are_rgb(sample_clips):
    clip = sample_clips[0]
    ours = list(iter_frames(clip))
    ref = _container_frames(clip)
    assert len(ours) == len(ref) > 30
    for (t, rgb), (t_ref, rgb_ref) in zip(ours, ref, strict=True):
        assert t == pytest.approx(t_ref)
        assert rgb.dtype == np.uint8 and rgb.shape == (192, 192, 3)
        np.testing.assert_array_equal(rgb, rgb_ref)
    times = np.array([t for t, _ in ours])
    assert times[0] == 0.0
    np.testing.assert_allclose(np.diff(times), 1 / 30, atol=1e-3)


def test_generator_is_lazy(sample_clips):
    gen = iter_frames(sample_clips[0])
    t, rgb = next(gen)
    assert t == 0.0 and rgb.shape == (192, 192, 3)
    gen.close()  # closing early releases the container


def test_sampling_rate_keeps_first_frame_at_each_grid_point(sample_clips):
    clip = sample_clips[1]
    all_times = np.array([t for t, _ in iter_frames(clip)])
    times = np.array([t for t, _ in iter_frames(clip, fps=10)])
    expected = []
    k = 0
    for t in all_times:
        if t >= k / 10 - 1e-6:
            expected.append(t)
            k = int(np.floor(t * 10 + 1e-6)) + 1
    np.testing.assert_allclose(times, expected)
    assert len(times) == pytest.approx(len(all_times) / 3, abs=1)
    # A rate above the source's keeps every frame.
    assert len(list(iter_frames(clip, fps=60))) == len(all_times)


def test_start_end_cut(sample_clips):
    clip = sample_clips[2]
    all_times = np.array([t for t, _ in iter_frames(clip)])
    cut = [(t, rgb) for t, rgb in iter_frames(clip, start=0.5, end=1.5)]
    times = np.array([t for t, _ in cut])
    np.testing.assert_allclose(times, all_times[(all_times >= 0.5 - 1e-6) & (all_times < 1.5)])
    # The frame at a cut is the same picture as in the uncut stream.
    ref = dict((round(t, 4), rgb) for t, rgb in iter_frames(clip))
    np.testing.assert_array_equal(cut[0][1], ref[round(times[0], 4)])


def test_sample_clips_audio_and_video_start_at_zero(sample_clips):
    """The time base shared with the audio features: both streams start at 0."""
    for clip in sample_clips[::8]:
        with av.open(str(clip)) as c:
            v, a = c.streams.video[0], c.streams.audio[0]
            assert float(v.start_time * v.time_base) == 0.0
            assert float(a.start_time * a.time_base) == 0.0
        t0, _ = next(iter_frames(clip))
        assert t0 == 0.0


def test_to_rgb_scaled_copy(sample_clips):
    _, frame = next(iter_decoded(sample_clips[0]))
    small = to_rgb(frame, size=(96, 96))
    full = to_rgb(frame)
    assert small.shape == (96, 96, 3)
    out = np.empty_like(full)
    assert to_rgb(frame, out=out) is out
    np.testing.assert_array_equal(out, full)
    # area averaging: the small copy is close to a 2x2 block mean of the full frame
    blocks = full.reshape(96, 2, 96, 2, 3).mean(axis=(1, 3))
    assert np.abs(blocks - small).mean() < 3


def test_unreadable_and_truncated_files(tmp_path, sample_clips):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(VideoDecodeError, match="cannot open"):
        list(iter_frames(junk))
    # Cut mid-packet (a decode error) and at a packet boundary (decodes cleanly, stops early).
    for keep in (0.3, 0.5):
        cut = truncated_clip(sample_clips[0], tmp_path / f"cut{keep}.mp4", keep=keep)
        with pytest.raises(VideoDecodeError, match="decode failed|truncated"):
            list(iter_frames(cut))
    silent = tmp_path / "audio_only.m4a"
    with av.open(str(silent), "w") as o:
        s = o.add_stream("aac", rate=48000)
        s.layout = "mono"
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        o.mux(s.encode(f))
        o.mux(s.encode(None))
    with pytest.raises(VideoDecodeError, match="no video track"):
        list(iter_frames(silent))
