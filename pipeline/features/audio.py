"""Shared audio access for the spectral extractors: the clip's waveform as a stream of blocks.

A clip's sound comes from its separate audio file when the manifest names one
(``audio_path``: CREMA-D's WAV, a RAVDESS audio-only take), else from its media's own track.
The extractors that read it declare the ``audio`` source field, so the file's content hash is
in their cache key and the runner checks the bytes as they are read; the clip's stored
attributes say which file the sound came from (:func:`audio_attrs`), with a warning when its
length is not the video's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..clip_warnings import WARNING_ATTR
from ..media import AudioDecodeError
from ..media.audio import iter_audio
from .base import ClipSource, ExtractionError

# Seconds the audio read from a separate file may differ from the clip's (video) duration
# before the clip gets a warning: a frame or two and a codec's padding, but not another take.
DURATION_SLACK = 0.25


def clip_audio_blocks(
    source: ClipSource, sample_rate: int, block_seconds: float = 10.0
) -> Iterator[np.ndarray]:
    """Mono float32 blocks of the clip's audio at ``sample_rate`` (about ``block_seconds``
    each); ExtractionError when there is no audio, it cannot be decoded, or it holds a
    non-finite sample."""
    if source.audio_path is None and not source.has_audio:
        raise ExtractionError(f"{source.clip_id}: the media has no audio track")
    n = 0
    try:
        for block in iter_audio(
            source.sound_input(), sample_rate, mono=True, start=source.start, end=source.end,
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


def audio_key_inputs(source: ClipSource) -> dict[str, float]:
    """What else defines the stored clip when its sound comes from a separate file (the
    warning's threshold), for the extractor's ``clip_inputs``; nothing otherwise."""
    return {} if source.audio_path is None else {"duration_slack": DURATION_SLACK}


def audio_attrs(source: ClipSource, audio_seconds: float) -> dict[str, str]:
    """Clip attributes that say where the sound came from: for a clip with a separate audio
    file, its manifest path and sha256, and a ``warning`` when the ``audio_seconds`` read
    from it differ from the clip's duration by more than :data:`DURATION_SLACK`. Nothing
    for a clip read from its media's own track (its stored bytes stay as they were)."""
    if source.audio_path is None:
        return {}
    out = {"audio_file": source.audio_name, "audio_sha256": source.audio_sha256}
    if source.duration > 0 and abs(audio_seconds - source.duration) > DURATION_SLACK:
        out[WARNING_ATTR] = (
            f"the audio file {source.audio_name} gives {audio_seconds:.2f} s of sound for a "
            f"clip of {source.duration:.2f} s (more than {DURATION_SLACK} s apart): the audio "
            f"may be another take, or offset from the video"
        )
    return out


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
