"""Audio decode and the mel / spectrogram extractors on real sample media."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.features import ExtractionError, make_extractor
from pipeline.features.base import ClipSource
from pipeline.media import AudioDecodeError, ProbeError, decode_audio, probe
from tests.media import strip_audio, truncate


def _source(path: Path, **kw) -> ClipSource:
    info = probe(path)
    return ClipSource(clip_id=path.stem, path=path, fps=info.fps, duration=info.duration,
                      has_audio=info.has_audio, has_video=info.has_video, **kw)


def test_probe_reads_headers(sample_clips):
    info = probe(sample_clips[0])
    assert info.has_audio and info.has_video
    assert info.fps == pytest.approx(30.0) and info.sample_rate == 48000
    assert 1.0 < info.duration < 5.0 and info.width > 0


def test_decode_resamples_and_matches_duration(sample_clips):
    info = probe(sample_clips[0])
    wav = decode_audio(sample_clips[0], 16000)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) / 16000 - info.duration) < 0.1
    assert 0.01 < np.abs(wav).max() <= 1.0
    # a cut inside the file is the same samples as the slice of the whole decode
    cut = decode_audio(sample_clips[0], 16000, start=0.5, end=1.5)
    assert abs(len(cut) - 16000) <= 2
    np.testing.assert_allclose(cut[100:1000], wav[8100:9000], atol=1e-4)


def test_paper_mel_matches_librosa_reference(sample_clips):
    import librosa

    ex = make_extractor("mel")
    feats = ex.extract(_source(sample_clips[1]))
    mel = feats.arrays["mel"]
    assert mel.shape == (128, 80) and mel.dtype == np.float32
    n_real = int(feats.valid.sum())
    assert 5 < n_real < 128 and not feats.valid[n_real:].any()
    assert np.allclose(np.diff(feats.timestamps), 16 * 276 / 22050)
    # independent reference: librosa's own melspectrogram on the pre-emphasised signal
    y = decode_audio(sample_clips[1], 22050)
    y = np.append(y[0], y[1:] - 0.97 * y[:-1])
    ref = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=276,
                                         win_length=1102, n_mels=80, power=1.0)
    ref = np.clip((20 * np.log10(np.maximum(1e-5, ref)) - 20 + 100) / 100, 1e-8, 1).T[::16]
    np.testing.assert_allclose(mel[:n_real], ref[:n_real], atol=1e-4)


def test_code_mel_has_one_frame_per_video_frame(sample_clips):
    ex = make_extractor("mel", {"variant": "code"})
    src = _source(sample_clips[2])
    feats = ex.extract(src)
    assert feats.arrays["mel"].shape[1] == 128 and feats.attrs["hop_length"] == 735
    assert abs(feats.n_steps - src.duration * src.fps) <= 2
    np.testing.assert_allclose(feats.timestamps[:4], np.arange(4) / 30.0)
    assert feats.arrays["mel"].max() == pytest.approx(0.0)  # power_to_db(ref=max)


def test_spectrogram_segments_are_128_by_128(sample_clips):
    ex = make_extractor("spectrogram")
    src = _source(sample_clips[3])
    feats = ex.extract(src)
    spec = feats.arrays["spectrogram"]
    assert spec.shape[1:] == (128, 128) and spec.dtype == np.float32
    assert spec.shape[0] == len(feats.timestamps) == len(feats.arrays["real_frames"])
    np.testing.assert_allclose(feats.timestamps, np.arange(spec.shape[0]) * 128 * 128 / 16000)
    assert feats.arrays["real_frames"][0] == 128


def test_short_clip_is_padded_to_one_segment(sample_clips):
    ex = make_extractor("spectrogram")
    src = _source(sample_clips[0], start=0.2, end=0.6)
    feats = ex.extract(src)
    assert feats.arrays["spectrogram"].shape == (1, 128, 128)
    assert feats.arrays["real_frames"][0] < 128
    with pytest.raises(ExtractionError, match="shorter than one 128-frame segment"):
        make_extractor("spectrogram", {"pad_last": False}).extract(src)


def test_no_audio_track_is_a_clear_extraction_error(sample_clips, tmp_path):
    silent = strip_audio(sample_clips[0], tmp_path / "silent.mp4")
    src = _source(silent)
    assert not src.has_audio and src.has_video
    for name in ("mel", "spectrogram"):
        with pytest.raises(ExtractionError, match="no audio track"):
            make_extractor(name).extract(src)
    with pytest.raises(AudioDecodeError, match="no audio track"):
        decode_audio(silent, 16000)


def test_corrupt_and_empty_files(sample_clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ProbeError, match="empty"):
        probe(empty)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ProbeError, match="not a readable media file"):
        probe(text)
    cut = truncate(sample_clips[0], tmp_path / "cut.mp4", 0.3)
    src = ClipSource(clip_id="cut", path=cut)
    with pytest.raises(ExtractionError):
        make_extractor("mel").extract(src)
