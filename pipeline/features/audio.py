"""Shared audio access for the spectral extractors."""

from __future__ import annotations

import numpy as np

from ..media import AudioDecodeError, decode_audio
from .base import ClipSource, ExtractionError


def clip_waveform(source: ClipSource, sample_rate: int) -> np.ndarray:
    """Mono float32 waveform of the clip at ``sample_rate``; ExtractionError if there is none."""
    if not source.has_audio:
        raise ExtractionError(f"{source.clip_id}: the media has no audio track")
    try:
        wav = decode_audio(source.path, sample_rate, mono=True, start=source.start, end=source.end)
    except AudioDecodeError as e:
        raise ExtractionError(str(e)) from e
    if wav.size == 0 or not np.isfinite(wav).all():
        raise ExtractionError(f"{source.clip_id}: audio is empty or holds non-finite samples")
    return wav
