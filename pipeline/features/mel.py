"""MPUC mel-spectrograms (Franceschini et al. 2022, §III-A), in both variants.

``paper`` follows the text: librosa, 80 mel bands with the DCTTS settings (22.05 kHz,
pre-emphasis 0.97, n_fft 2048, hop 276 = 12.5 ms, window 1102 = 50 ms, magnitude mel,
``clip((20 log10 mel - ref_db + max_db) / max_db, 1e-8, 1)``), one frame kept in 16 and the
time axis padded/cut to 128. ``code`` follows the authors' code: 128 bands,
``power_to_db(ref=max)`` and a hop of ``sample_rate / fps`` so one mel frame falls on each
video frame.

The numbers are librosa's (its framing, Hann window, Slaney mel filterbank and dB formulas),
computed in float64 by :mod:`pipeline.features.spectral` and rounded once to float32, so the
stored bytes are the same on every CPU (the BLAS kernel, numpy's SIMD level and the C
library's variant do not reach them; ``tests/test_cpu_kernels.py``).

Output ``mel``: float32 (T, n_mels). ``timestamps``: centre of each frame in seconds.
``valid``: False on padding rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..config import ConfigError
from ..store import ClipFeatures
from . import register, spectral
from .audio import Preemphasis, audio_attrs, audio_key_inputs, clip_audio_blocks
from .base import AUDIO_FIELD, ClipSource, ExtractionError, Extractor
from .framing import FrameStream


@dataclass(frozen=True)
class MelSettings:
    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 276  # 12.5 ms at 22.05 kHz; 0 = one frame per video frame (sr / fps)
    win_length: int = 1102  # 50 ms at 22.05 kHz
    n_mels: int = 80
    preemphasis: float = 0.97  # 0 = none
    # dctts: clip((20 log10(mel) - ref_db + max_db) / max_db, 1e-8, 1) on the magnitude mel;
    # power_to_db_max: librosa.power_to_db(power mel, ref=np.max) as in the MPUC code.
    scaling: Literal["dctts", "power_to_db_max"] = "dctts"
    ref_db: float = 20.0
    max_db: float = 100.0
    frame_step: int = 16  # keep one frame in frame_step
    fixed_length: int = 128  # pad/cut the time axis to this many frames; 0 = keep length
    align_fps: float = 0.0  # hop_length 0: frame rate to align to; 0 = the clip's own fps
    # hop_length 0: a row centred on each actual video frame time (read from the video's
    # packets: true on variable frame rate and late audio) instead of a nominal fps grid.
    align_frames: bool = False

    def validate(self, key: str) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "n_mels", "frame_step"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{key}.{name}: must be > 0, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"{key}.win_length: must be <= n_fft ({self.n_fft})")
        if self.hop_length < 0 or self.fixed_length < 0 or self.align_fps < 0:
            raise ConfigError(f"{key}: hop_length, fixed_length, align_fps must be >= 0")
        if self.align_frames and self.hop_length:
            raise ConfigError(f"{key}.align_frames: needs hop_length 0 (a row per video frame)")


@dataclass(frozen=True)
class MelConfig:
    """Both variants spelled out; ``variant`` picks the one the stage computes."""

    variant: Literal["paper", "code"] = "paper"
    paper: MelSettings = field(default_factory=MelSettings)
    code: MelSettings = field(
        default_factory=lambda: MelSettings(
            hop_length=0,
            win_length=2048,
            n_mels=128,
            preemphasis=0.0,
            scaling="power_to_db_max",
            frame_step=1,
            fixed_length=0,
        )
    )

    @property
    def active(self) -> MelSettings:
        return self.paper if self.variant == "paper" else self.code


def mel_spectrum(stretch: np.ndarray, s: MelSettings, hop: int) -> np.ndarray:
    """(n_mels, k) float64 mel spectrum (magnitude for ``dctts``, power otherwise) of the k
    frames of ``stretch``, a run of samples as
    :class:`~pipeline.features.framing.FrameStream` gives: librosa's
    ``stft(center=False)`` and ``filters.mel``, computed to the same bits on any CPU
    (:mod:`pipeline.features.spectral`)."""
    power = spectral.power_spectrum(
        spectral.frames_of(stretch, s.n_fft, hop), spectral.hann(s.win_length, s.n_fft)
    ).T
    bank = spectral.mel_bank(s.sample_rate, s.n_fft, s.n_mels)
    return bank.apply(np.sqrt(power) if s.scaling == "dctts" else power)


def scale_mel(mel: np.ndarray, s: MelSettings) -> np.ndarray:
    """(T, n_mels) float32 features from the (n_mels, T) float64 spectrum of the whole clip,
    rounded to float32 once, at the end."""
    if s.scaling == "dctts":
        db = spectral.amplitude_db(mel, 1e-5)
        out = np.clip((db - s.ref_db + s.max_db) / s.max_db, 1e-8, 1.0)
    else:  # power_to_db(ref=max) needs the whole clip's maximum
        out = spectral.power_to_db_max(mel)
    return out.T.astype(np.float32)


def clip_mel(source: ClipSource, s: MelSettings, hop: int) -> tuple[np.ndarray, int]:
    """(T, n_mels) features of the clip and its length in samples, read as a stream.

    Frames are centred (librosa's ``center=True``, zero padding) on a pre-emphasised signal
    padded to at least one window, so a clip shorter than a window still gives one frame.
    Memory holds one audio block and the spectrum, never the whole waveform.
    """
    frames = FrameStream(s.n_fft, hop, pad=s.n_fft // 2, min_length=s.n_fft)
    pre = Preemphasis(s.preemphasis)
    parts = []
    for block in clip_audio_blocks(source, s.sample_rate):
        stretch = frames.push(pre(block))
        if stretch is not None:
            parts.append(mel_spectrum(stretch, s, hop))
    stretch = frames.finish()
    if stretch is not None:
        parts.append(mel_spectrum(stretch, s, hop))
    return scale_mel(np.concatenate(parts, axis=1), s), frames.n_samples


def mel_at_times(
    source: ClipSource, s: MelSettings, times: np.ndarray
) -> tuple[np.ndarray, int]:
    """(len(times), n_mels) features from windows centred on ``times`` (seconds from the
    clip's start; zeros outside the audio), as librosa's centred STFT computes each frame.
    Holds the clip's waveform in memory."""
    pre = Preemphasis(s.preemphasis)
    audio = np.concatenate([pre(b) for b in clip_audio_blocks(source, s.sample_rate)])
    half = s.n_fft // 2
    centre = np.round(np.asarray(times, np.float64) * s.sample_rate).astype(np.int64)
    lo = int(min(0, centre.min() - half)) if len(centre) else 0
    hi = int(max(len(audio), centre.max() + half + 1)) if len(centre) else len(audio)
    padded = np.zeros(hi - lo, np.float32)
    padded[-lo : -lo + len(audio)] = audio
    window = spectral.hann(s.win_length, s.n_fft)
    bank = spectral.mel_bank(s.sample_rate, s.n_fft, s.n_mels)
    cols = []
    for i in range(0, len(centre), 256):  # a few hundred frames at a time
        idx = (centre[i : i + 256, None] - half - lo) + np.arange(s.n_fft)[None, :]
        power = spectral.power_spectrum(padded[idx], window).T
        cols.append(bank.apply(np.sqrt(power) if s.scaling == "dctts" else power))
    return scale_mel(np.concatenate(cols, axis=1), s), len(audio)


@register
class MelExtractor(Extractor):
    name = "mel"
    config_class = MelConfig
    primary = "mel"
    row_unit = "frames"
    # 2: computed in float64 with a fixed summation order, the same bits on every CPU (1:
    # librosa in float32, whose last bits followed the BLAS kernel and SIMD level)
    version = "2"
    libraries = ("numpy", "av", "soxr")
    source_fields = (AUDIO_FIELD,)  # a clip's separate audio file, when it has one

    def params(self) -> dict[str, Any]:
        # Only the active variant defines the output (the other one is not part of the key).
        from ..config import to_dict

        return {"variant": self.config.variant, **to_dict(self.config.active)}

    def clip_inputs(self, source: ClipSource) -> dict[str, Any]:
        return audio_key_inputs(source)

    def hop_for(self, source: ClipSource) -> int:
        s = self.config.active
        if s.hop_length > 0:
            return s.hop_length
        fps = s.align_fps or source.fps
        if fps <= 0:
            raise ExtractionError(
                f"{source.clip_id}: mel hop_length 0 aligns to the video frame rate, but the "
                f"clip has no video frame rate; set mel.{self.config.variant}.align_fps"
            )
        return int(round(s.sample_rate / fps))

    def _frame_times(self, source: ClipSource) -> np.ndarray:
        from ..media.video import VideoDecodeError, frame_times

        if not source.has_video:
            raise ExtractionError(
                f"{source.clip_id}: mel align_frames needs the clip's video frame times, but "
                f"the media has no video track"
            )
        try:
            t = frame_times(source.media_input(), source.start, source.end) - source.start
        except VideoDecodeError as e:
            raise ExtractionError(f"{source.clip_id}: {e}") from e
        if not len(t):
            raise ExtractionError(f"{source.clip_id}: no video frame to align the mel rows to")
        return t

    def extract(self, source: ClipSource) -> ClipFeatures:
        s = self.config.active
        if s.align_frames:  # rows at the frame times; the hop is only recorded
            hop = int(round(s.sample_rate / source.fps)) if source.fps > 0 else 0
        else:
            hop = self.hop_for(source)
        step = s.frame_step
        if s.align_frames:
            times = self._frame_times(source)[::step]
            feats, n_samples = mel_at_times(source, s, times)
        else:
            # Keeping one frame in `step` of a hop-`hop` STFT is the STFT with hop
            # `hop * step` (same centred frames), computed directly.
            feats, n_samples = clip_mel(source, s, hop * step)
            times = np.arange(len(feats)) * hop * step / s.sample_rate
        valid = np.ones(len(feats), dtype=bool)
        if s.fixed_length:
            n = s.fixed_length
            if len(feats) >= n:
                feats, times, valid = feats[:n], times[:n], valid[:n]
            else:
                pad = n - len(feats)
                dt = step * hop / s.sample_rate
                if s.align_frames and len(times) > 1:
                    dt = float(np.median(np.diff(times)))
                fill = feats.min() if s.scaling == "power_to_db_max" else 1e-8
                feats = np.concatenate([feats, np.full((pad, feats.shape[1]), fill, np.float32)])
                times = np.concatenate([times, times[-1] + dt * np.arange(1, pad + 1)])
                valid = np.concatenate([valid, np.zeros(pad, dtype=bool)])
        return ClipFeatures(
            arrays={"mel": feats},
            timestamps=times,
            valid=valid,
            attrs={
                "hop_length": hop,
                "sample_rate": s.sample_rate,
                "audio_seconds": n_samples / s.sample_rate,
                **audio_attrs(source, n_samples / s.sample_rate),
            },
        )
