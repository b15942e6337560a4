"""Spectra, mel filterbanks and decibels, computed to the same bits on every CPU.

The mel and spectrogram extractors compute what librosa and numpy compute (the same framing,
Hann window, FFT, Slaney mel filterbank and dB formulas), in a way whose stored float32
values do not depend on the machine. What would otherwise depend on it, and what is done:

1. The mel filterbank product (a BLAS matrix product: its summation order, and so its last
   bits, follow the OpenBLAS kernel the CPU selects) is a sum over each band's FFT bins in
   a fixed order (:meth:`MelBank.apply`); the filterbank is built with
   :mod:`pipeline.portable_math`'s ``log``/``exp`` (numpy's follow the SIMD level).
2. Logarithms (dB) use :func:`pipeline.portable_math.log10`; the Hann window uses
   :func:`pipeline.portable_math.cos_2pi` (numpy's ``cos`` follows the C library's FMA
   variant); the magnitude is ``sqrt(re * re + im * im)`` (numpy's complex ``abs`` follows
   the SIMD level).
3. Everything runs in float64 and is rounded once, to the stored float32, at the end. The FFT
   is numpy's pocketfft (no CPU dispatch: the same bits under every OpenBLAS kernel, numpy
   SIMD level and C library variant; ``tests/test_cpu_kernels.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .. import portable_math as pm


@functools.lru_cache(maxsize=16)
def hann(win_length: int, n_fft: int | None = None) -> np.ndarray:
    """Periodic Hann window of ``win_length`` (float64, read-only), centred in ``n_fft``
    zeros when given: librosa's ``pad_center(get_window("hann", win_length), size=n_fft)``
    and ``np.hanning(win_length + 1)[:-1]``."""
    w = 0.5 - 0.5 * pm.cos_2pi(np.arange(win_length), win_length)
    if n_fft is not None and n_fft > win_length:
        lpad = (n_fft - win_length) // 2
        w = np.concatenate([np.zeros(lpad), w, np.zeros(n_fft - win_length - lpad)])
    w.flags.writeable = False
    return w


def power_spectrum(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """(n_frames, n_fft // 2 + 1) float64 ``|FFT(frame * window)|**2`` of the rows of
    ``frames`` (n_frames, n_fft)."""
    spec = np.fft.rfft(np.asarray(frames, np.float64) * window, axis=-1)
    return spec.real * spec.real + spec.imag * spec.imag


def frames_of(stretch: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(k, n_fft) view of the frames of ``stretch`` (``1 + (len - n_fft) // hop`` of them,
    no padding)."""
    return np.lib.stride_tricks.sliding_window_view(stretch, n_fft)[::hop]


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above."""
    hz = np.asarray(hz, np.float64)
    f_sp = 200.0 / 3
    logstep = pm.log(6.4) / 27.0
    min_log_mel = 1000.0 / f_sp
    log_part = min_log_mel + pm.log(np.maximum(hz, 1000.0) / 1000.0) / logstep
    return np.where(hz >= 1000.0, log_part, hz / f_sp)


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, np.float64)
    f_sp = 200.0 / 3
    logstep = pm.log(6.4) / 27.0
    min_log_mel = 1000.0 / f_sp
    log_part = 1000.0 * pm.exp(logstep * (np.maximum(mels, min_log_mel) - min_log_mel))
    return np.where(mels >= min_log_mel, log_part, f_sp * mels)


@dataclass(frozen=True)
class MelBank:
    """A mel filterbank kept band by band: band ``m`` weighs FFT bins ``index[m, j]`` by
    ``weights[m, j]`` (zero weights past the band's end)."""

    index: np.ndarray  # (n_mels, width) int64
    weights: np.ndarray  # (n_mels, width) float64
    n_bins: int  # n_fft // 2 + 1

    def dense(self) -> np.ndarray:
        """The (n_mels, n_bins) matrix, as librosa.filters.mel returns it (float64)."""
        out = np.zeros((len(self.index), self.n_bins))
        np.put_along_axis(out, self.index, self.weights, axis=1)
        return out

    def apply(self, spec: np.ndarray) -> np.ndarray:
        """(n_mels, T) float64 ``dense() @ spec`` for a (n_bins, T) spectrum, summed over
        each band's bins in ascending order (the same bits on every CPU)."""
        spec = np.asarray(spec, np.float64)
        out = np.zeros((len(self.index), spec.shape[1]))
        for j in range(self.index.shape[1]):
            out += self.weights[:, j, None] * spec[self.index[:, j]]
        return out


@functools.lru_cache(maxsize=8)
def mel_bank(sr: int, n_fft: int, n_mels: int) -> MelBank:
    """Slaney-normalised mel filterbank from 0 Hz to ``sr / 2``: librosa.filters.mel's
    (default arguments) weights, in float64."""
    n_bins = 1 + n_fft // 2
    fft_hz = np.arange(n_bins) * (1.0 / (n_fft * (1.0 / sr)))
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    lower = -ramps[:n_mels] / fdiff[:n_mels, None]
    upper = ramps[2:] / fdiff[1:, None]
    dense = np.maximum(0.0, np.minimum(lower, upper))
    dense *= (2.0 / (mel_hz[2:] - mel_hz[:n_mels]))[:, None]
    nz = dense > 0
    first = np.where(nz.any(axis=1), nz.argmax(axis=1), 0)
    last = np.where(nz.any(axis=1), n_bins - nz[:, ::-1].argmax(axis=1), 0)
    width = max(1, int((last - first).max()))
    index = np.minimum(first[:, None] + np.arange(width)[None, :], n_bins - 1)
    weights = np.where(np.arange(width)[None, :] < (last - first)[:, None],
                       np.take_along_axis(dense, index, axis=1), 0.0)
    index.flags.writeable = False
    weights.flags.writeable = False
    return MelBank(index, weights, n_bins)


def amplitude_db(x: np.ndarray, floor: float) -> np.ndarray:
    """``20 log10(max(floor, x))`` in float64."""
    return 20.0 * pm.log10(np.maximum(floor, x))


def power_db(x: np.ndarray, floor: float) -> np.ndarray:
    """``10 log10(max(floor, x))`` in float64."""
    return 10.0 * pm.log10(np.maximum(floor, x))


def power_to_db_max(power: np.ndarray, amin: float = 1e-10, top_db: float = 80.0) -> np.ndarray:
    """librosa.power_to_db(power, ref=np.max, amin, top_db), in float64."""
    log_spec = power_db(power, amin) - power_db(np.max(power), amin)
    return np.maximum(log_spec, log_spec.max() - top_db)
