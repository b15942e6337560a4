"""The CPU-independent numerics give librosa's and numpy's numbers (tests/test_cpu_kernels.py
checks that they give the same bytes under other CPUs' kernels)."""

import math

import numpy as np
import pytest

from pipeline import portable_math as pm
from pipeline.features import make_extractor, spectral
from pipeline.features.base import ClipSource
from pipeline.media import decode_audio, probe


def _ulps(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(a - ref) / np.spacing(np.abs(ref))


def test_log_and_exp_are_within_a_few_ulps_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate([10.0 ** rng.uniform(-300, 300, 20000), rng.uniform(0.5, 2.0, 20000),
                        rng.uniform(1e-12, 1e3, 20000)])
    assert _ulps(pm.log(x), np.log(x)).max() <= 4
    assert _ulps(pm.log10(x), np.log10(x)).max() <= 5
    y = np.concatenate([rng.uniform(-700, 700, 20000), rng.uniform(-3, 3, 20000)])
    assert _ulps(pm.exp(y), np.exp(y)).max() <= 3
    for v in (1.0, 10.0, 1e-5, 6.4, 1000.0):  # scalars against the C library
        assert pm.log(v) == pytest.approx(math.log(v), rel=1e-15, abs=1e-300)
        assert pm.log10(v) == pytest.approx(math.log10(v), rel=1e-15, abs=1e-15)
    assert pm.log10(10.0) == 1.0 and pm.log(1.0) == 0.0 and pm.exp(0.0) == 1.0
    np.testing.assert_array_equal(pm.log(np.array([0.0, np.inf])), [-np.inf, np.inf])
    assert np.isnan(pm.log(np.array([-1.0, np.nan]))).all()
    np.testing.assert_array_equal(pm.exp(np.array([-1000.0, 1000.0])), [0.0, np.inf])


def test_cos_2pi_is_exact_at_the_octants_and_close_elsewhere():
    for d in (1, 7, 256, 1102, 2048, 12345):
        n = np.arange(-d, 3 * d + 5)
        ref = np.cos(2 * np.pi * (n % d).astype(np.longdouble) / d).astype(np.float64)
        assert np.abs(pm.cos_2pi(n, d) - ref).max() < 1e-15
    octants = pm.cos_2pi(np.arange(8), 8)
    assert octants[::2].tolist() == [1.0, 0.0, -1.0, 0.0]  # exact where cos is 0 or +-1
    np.testing.assert_allclose(np.abs(octants[1::2]), math.sqrt(0.5), rtol=0, atol=2e-16)


def test_window_and_filterbank_are_librosas():
    import librosa

    ref = librosa.util.pad_center(librosa.filters.get_window("hann", 1102, fftbins=True),
                                  size=2048)
    np.testing.assert_allclose(spectral.hann(1102, 2048), ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(spectral.hann(256), np.hanning(257)[:-1], rtol=0, atol=1e-15)
    rng = np.random.default_rng(0)
    for sr, n_fft, n_mels in ((22050, 2048, 80), (22050, 2048, 128), (16000, 512, 40)):
        bank = spectral.mel_bank(sr, n_fft, n_mels)
        dense = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, dtype=np.float64)
        np.testing.assert_allclose(bank.dense(), dense, rtol=0, atol=1e-14 * dense.max())
        spec = rng.random((1 + n_fft // 2, 40))
        np.testing.assert_allclose(bank.apply(spec), dense @ spec, rtol=1e-13)


def test_power_to_db_is_librosas():
    import librosa

    power = np.random.default_rng(1).random((128, 60)) ** 6
    np.testing.assert_allclose(spectral.power_to_db_max(power),
                               librosa.power_to_db(power, ref=np.max), rtol=0, atol=1e-12)


def _source(path) -> ClipSource:
    info = probe(path)
    return ClipSource(clip_id=path.stem, path=path, fps=info.fps, duration=info.duration,
                      has_audio=info.has_audio, has_video=info.has_video)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_mel_variants_match_librosa_on_the_same_audio(sample_clips, variant):
    """The extractor against librosa's own float32 pipeline on the same decoded samples: the
    difference is librosa's float32 rounding (measured over the sample: at most 1.2e-7 on
    values in [1e-8, 0.8] for paper, 1.5e-5 dB for code)."""
    import librosa

    ex = make_extractor("mel", {"variant": variant})
    src = _source(sample_clips[5])
    mel = ex.extract(src).arrays["mel"]
    y = decode_audio(sample_clips[5], 22050)
    if variant == "paper":
        y = np.append(y[0], y[1:] - np.float32(0.97) * y[:-1])
        ref = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=276 * 16,
                                             win_length=1102, n_mels=80, power=1.0)
        ref = np.clip((20 * np.log10(np.maximum(1e-5, ref)) - 20 + 100) / 100, 1e-8, 1).T
        n = len(ref)
        np.testing.assert_allclose(mel[:n], ref, rtol=0, atol=1e-6)
    else:
        ref = librosa.power_to_db(
            librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=735,
                                           n_mels=128), ref=np.max).T
        assert mel.shape == ref.shape
        np.testing.assert_allclose(mel, ref, rtol=0, atol=1e-4)


def test_spectrogram_is_numpys_specgram(sample_clips):
    """Segments against numpy's float64 power spectrum in dB of the same samples (measured
    over the sample: at most 3.8e-6 dB apart, float32 rounding)."""
    feats = make_extractor("spectrogram").extract(_source(sample_clips[6]))
    y = decode_audio(sample_clips[6], 16000).astype(np.float64)
    n = 1 + (len(y) - 256) // 128
    frames = y[np.arange(256)[None, :] + 128 * np.arange(n)[:, None]] * np.hanning(257)[:-1]
    ref = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1))[:, :128] ** 2 + 1e-10)
    got = feats.arrays["spectrogram"].reshape(-1, 128)  # segments of consecutive frames
    m = min(n, int(feats.arrays["real_frames"].sum()))
    assert m > 100
    np.testing.assert_allclose(got[:m], ref[:m], rtol=0, atol=2e-5)
