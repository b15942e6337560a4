"""Qian & Han STFT spectrogram segments (§4.2): 256-point FFT, 50 % hop, ~1 s segments.

At 16 kHz a segment of 128 frames with hop 128 spans 128 * 128 / 16000 = 1.02 s. The
256-point FFT gives 129 bins; the Nyquist bin is dropped to make 128 x 128 (the paper's
input size). Power is taken as |STFT|^2 of a Hann-windowed frame without centre padding
(pylab.specgram's framing) and, with ``log``, converted to dB. It is computed in float64 and
rounded once to float32, with a window and logarithm that give the same bits on every CPU
(:mod:`pipeline.features.spectral`).
The audio is read as a stream and segments go to the output as they fill, so memory does not
grow with the recording's length.

Output ``spectrogram``: float32 (N, 128, 128), segment-major; each segment is (time, freq).
``timestamps``: start of each segment in seconds. ``real_frames``: int32 (N,), the frames of
each segment that hold audio (the rest is padding). ``valid``: a segment holds any audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ConfigError
from ..store import ClipSink
from . import register, spectral
from .audio import audio_attrs, audio_key_inputs, clip_audio_blocks
from .base import AUDIO_FIELD, ClipSource, ExtractionError, StreamingExtractor
from .framing import FrameStream


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
    """(frames, n_fft // 2 + 1) float64 power spectrum, Hann window, no centre padding,
    computed to the same bits on any CPU (:mod:`pipeline.features.spectral`)."""
    if len(wav) < n_fft:
        wav = np.pad(wav, (0, n_fft - len(wav)))
    return spectral.power_spectrum(spectral.frames_of(wav, n_fft, hop), spectral.hann(n_fft))


class _Segmenter:
    """Groups spectrum frames into segments of ``segment_frames`` every
    ``segment_hop_frames``, as they arrive."""

    def __init__(self, c: SpectrogramConfig) -> None:
        self.c = c
        self.pad_value = -100.0 if c.log else 0.0
        self.frames = np.zeros((0, c.n_fft // 2 + (0 if c.drop_nyquist else 1)), np.float32)
        self.first = 0  # frame index of self.frames[0]
        self.next = 0  # frame index where the next segment starts
        self.n_segments = 0
        self.reached_end = False  # the last segment emitted ends at or past the last frame

    def push(self, feat: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
        """Add frames; return the segments now complete as (segment, start frame, real)."""
        self.frames = np.concatenate([self.frames, feat])
        out = []
        L, H = self.c.segment_frames, self.c.segment_hop_frames
        while self.next + L <= self.first + len(self.frames):
            lo = self.next - self.first
            out.append((self.frames[lo : lo + L], self.next, L))
            self.next += H
        self._drop()
        return out

    def finish(self, n_frames: int) -> list[tuple[np.ndarray, int, int]]:
        """The tail after the last frame (``n_frames`` in all): padded, dropped or refused
        by ``pad_last`` and ``min_tail_frames``."""
        c = self.c
        L, H = c.segment_frames, c.segment_hop_frames
        out: list[tuple[np.ndarray, int, int]] = []
        if self.n_segments and self.next - H + L >= n_frames:
            return out  # the last full segment ended exactly at the end
        if self.next >= n_frames:
            return out
        chunk = self.frames[self.next - self.first :]
        if not c.pad_last or (len(chunk) < c.min_tail_frames and self.n_segments):
            return out
        pad = np.full((L - len(chunk), chunk.shape[1]), self.pad_value, np.float32)
        out.append((np.concatenate([chunk, pad]), self.next, len(chunk)))
        return out

    def _drop(self) -> None:
        keep = max(0, min(self.next - self.first, len(self.frames)))
        self.frames = self.frames[keep:]
        self.first += keep


@register
class SpectrogramExtractor(StreamingExtractor):
    name = "spectrogram"
    config_class = SpectrogramConfig
    primary = "spectrogram"
    row_unit = "segments"
    # 2: float64, rounded once; the same bits on every CPU (1: float32, whose last bits
    # followed numpy's SIMD level)
    version = "2"
    libraries = ("numpy", "av", "soxr")
    source_fields = (AUDIO_FIELD,)  # a clip's separate audio file, when it has one

    def clip_inputs(self, source: ClipSource) -> dict[str, Any]:
        return audio_key_inputs(source)

    def _features(self, stretch: np.ndarray) -> np.ndarray:
        c = self.config
        power = power_frames(stretch, c.n_fft, c.hop_length)
        if c.drop_nyquist:
            power = power[:, :-1]
        # float64 up to here, rounded once to the stored float32
        return (spectral.power_db(power + 1e-10, 0.0) if c.log else power).astype(np.float32)

    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        c = self.config
        frames = FrameStream(c.n_fft, c.hop_length, pad=0, min_length=c.n_fft)
        segmenter = _Segmenter(c)

        def emit(segments: list[tuple[np.ndarray, int, int]]) -> None:
            if not segments:
                return
            segmenter.n_segments += len(segments)
            real = np.array([r for _, _, r in segments], np.int32)
            sink.append(
                {"spectrogram": np.stack([seg for seg, _, _ in segments]).astype(np.float32),
                 "real_frames": real},
                np.array([s * c.hop_length / c.sample_rate for _, s, _ in segments]),
                real > 0,
            )

        for block in clip_audio_blocks(source, c.sample_rate):
            stretch = frames.push(block)
            if stretch is not None:
                emit(segmenter.push(self._features(stretch)))
        stretch = frames.finish()
        if stretch is not None:
            emit(segmenter.push(self._features(stretch)))
        emit(segmenter.finish(frames.n_frames))
        seconds = frames.n_samples / c.sample_rate
        if not segmenter.n_segments:
            raise ExtractionError(
                f"{source.clip_id}: audio of {seconds:.3f} s is shorter than one "
                f"{c.segment_frames}-frame segment and spectrogram.pad_last is false"
            )
        return {"sample_rate": c.sample_rate, "audio_seconds": seconds,
                **audio_attrs(source, seconds)}
