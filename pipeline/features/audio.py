"""Shared audio access for the spectral extractors: the clip's waveform as a stream of blocks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..media import AudioDecodeError
from ..media.audio import iter_audio
from .base import ClipSource, ExtractionError


def clip_audio_blocks(
    source: ClipSource, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of the clip's audio at ``sample_rate`` (about ``block_seconds``
    each); ExtractionError when there is no audio, it cannot be decoded, or it holds a
    non-finite sample."""
    if not source.has_audio:
        raise ExtractionError(f"{source.clip_id}: the media has no audio track")
    n = 0
    try:
        for block in iter_audio(
            source.path, sample_rate, mono=True, start=source.start, end=source.end,
            block_seconds=block_seconds,
        ):
            if not np.isfinite(block).all():
                raise ExtractionError(f"{source.clip_id}: audio holds non-finite samples")
            n += len(block)
            yield block
    except AudioDecodeError as e:
        raise ExtractionError(str(e)) from e
    if n == 0:
        raise ExtractionError(f"{source.clip_id}: audio is empty")


class Preemphasis:
    """``y[t] - coef * y[t-1]`` across blocks (the first sample of the clip is kept as is)."""

    def __init__(self, coef: float) -> None:
        self.coef = coef
        self._last: np.ndarray | None = None

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.coef <= 0 or len(block) == 0:
            return block
        prev = block[:1] if self._last is None else self._last
        out = block - self.coef * np.concatenate([prev, block[:-1]])
        if self._last is None:
            out[0] = block[0]
        self._last = block[-1:]
        return out
