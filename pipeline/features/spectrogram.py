"""Qian & Han STFT spectrogram segments (§4.2): 256-point FFT, 50 % hop, ~1 s segments.

At 16 kHz a segment of 128 frames with hop 128 spans 128 * 128 / 16000 = 1.02 s. The
256-point FFT gives 129 bins; the Nyquist bin is dropped to make 128 x 128 (the paper's
input size). Power is taken as |STFT|^2 of a Hann-windowed frame without centre padding
(pylab.specgram's framing) and, with ``log``, converted to dB.

Output ``spectrogram``: float32 (N, 128, 128), segment-major; each segment is (time, freq).
``timestamps``: start of each segment in seconds. ``real_frames``: int32 (N,), the frames of
each segment that hold audio (the rest is padding). ``valid``: a segment holds any audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ConfigError
from ..store import ClipFeatures
from . import register
from .audio import clip_waveform
from .base import ClipSource, ExtractionError, Extractor


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 16000
    n_fft: int = 256
    hop_length: int = 128  # 50 % of n_fft
    segment_frames: int = 128  # frames per segment: 128 * 128 / 16 kHz = 1.02 s
    segment_hop_frames: int = 128  # hop between segment starts (128 = no overlap)
    drop_nyquist: bool = True  # 129 bins -> 128
    log: bool = True  # 10 log10(power + 1e-10)
    pad_last: bool = True  # pad a short tail (or a short clip) to a full segment
    min_tail_frames: int = 32  # a tail shorter than this is dropped (unless it is all there is)

    def validate(self, key: str) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "segment_frames", "segment_hop_frames"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}: must be > 0, got {getattr(self, name)}")


def power_frames(wav: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) power spectrum, Hann window, no centre padding."""
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    n = 1 + (len(wav) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = wav[idx] * np.hanning(n_fft + 1)[:-1].astype(np.float32)
    spec = np.fft.rfft(frames, axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


@register
class SpectrogramExtractor(Extractor):
    name = "spectrogram"
    config_class = SpectrogramConfig
    primary = "spectrogram"
    libraries = ("numpy", "av")

    def extract(self, source: ClipSource) -> ClipFeatures:
        c = self.config
        wav = clip_waveform(source, c.sample_rate)
        power = power_frames(wav, c.n_fft, c.hop_length)
        if c.drop_nyquist:
            power = power[:, :-1]
        feat = 10.0 * np.log10(power + 1e-10) if c.log else power
        pad_value = -100.0 if c.log else 0.0
        L, H = c.segment_frames, c.segment_hop_frames
        segs, starts, real = [], [], []
        for s in range(0, len(feat), H):
            chunk = feat[s : s + L]
            if len(chunk) < L:
                if not c.pad_last or (len(chunk) < c.min_tail_frames and segs):
                    break
                chunk = np.concatenate(
                    [chunk, np.full((L - len(chunk), feat.shape[1]), pad_value, np.float32)]
                )
            segs.append(chunk)
            starts.append(s * c.hop_length / c.sample_rate)
            real.append(min(L, len(feat) - s))
            if s + L >= len(feat):
                break
        if not segs:
            raise ExtractionError(
                f"{source.clip_id}: audio of {len(wav) / c.sample_rate:.3f} s is shorter than "
                f"one {L}-frame segment and spectrogram.pad_last is false"
            )
        return ClipFeatures(
            arrays={
                "spectrogram": np.stack(segs).astype(np.float32),
                "real_frames": np.asarray(real, dtype=np.int32),
            },
            timestamps=np.asarray(starts),
            valid=np.asarray(real) > 0,
            attrs={"sample_rate": c.sample_rate, "audio_seconds": len(wav) / c.sample_rate},
        )
