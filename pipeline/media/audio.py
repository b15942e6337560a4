"""Decode the audio track of a media file into a float32 waveform, resampled on the fly.

Packets are decoded one at a time; memory holds the waveform at the native rate (about
192 KB per second at 48 kHz mono float32) and its resampled copy.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

_WARMUP = 0.2  # seconds decoded before a cut's start


class AudioDecodeError(RuntimeError):
    """The file has no audio track, or its audio cannot be decoded."""


def decode_audio(
    path: str | Path,
    sample_rate: int,
    mono: bool = True,
    start: float = 0.0,
    end: float = 0.0,
) -> np.ndarray:
    """Return the audio of ``path`` as float32 in [-1, 1], shape (samples,) or (channels, n).

    ``start``/``end`` in seconds cut a segment (``end`` 0 = to the end of the file). Time 0 is
    the start of the audio stream, the time base shared by every feature of a clip.
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise AudioDecodeError(f"{path}: cannot open ({e})") from e
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        native = int(stream.codec_context.sample_rate or sample_rate)
        # Decode at the native rate, cut there, then resample the cut with soxr: a cut and the
        # same stretch of a whole-file decode then hold the same samples. Planar float output
        # (AAC, Opus, MP3 decoders) is used as is; other sample formats are converted.
        resampler = av.AudioResampler(format="fltp", rate=native)
        chunks: list[np.ndarray] = []
        offset: float | None = None  # time of the first decoded sample
        if start > _WARMUP:
            # Seek a little early: a codec with overlapping frames (AAC) needs one frame of
            # context before its output is exact.
            target = start - _WARMUP
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        try:
            for frame in container.decode(stream):
                if offset is None:
                    offset = float(frame.time or 0.0) if start > _WARMUP else 0.0
                if frame.format.name == "fltp":
                    chunks.append(frame.to_ndarray())
                else:
                    chunks.extend(o.to_ndarray() for o in resampler.resample(frame))
                if end > 0 and frame.time is not None and frame.time > end:
                    break
            chunks.extend(o.to_ndarray() for o in resampler.resample(None))
        except av.FFmpegError as e:
            raise AudioDecodeError(f"{path}: audio decode failed ({e})") from e
    if not chunks:
        raise AudioDecodeError(f"{path}: audio track holds no samples")
    chunks = [c for c in chunks if c.size]
    if not chunks:
        raise AudioDecodeError(f"{path}: audio track holds no samples")
    wav = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if mono and wav.shape[0] > 1:
        wav = wav.mean(axis=0, keepdims=True)
    if start > 0 or end > 0:
        base = offset or 0.0
        s = max(0, int(round((start - base) * native)))
        e = int(round((end - base) * native)) if end > 0 else wav.shape[1]
        wav = wav[:, s:e]
        if wav.shape[1] == 0:
            raise AudioDecodeError(f"{path}: no audio between {start} s and {end} s")
    if native != sample_rate:
        import soxr

        wav = np.ascontiguousarray(soxr.resample(wav.T, native, sample_rate).T, dtype=np.float32)
    return wav[0] if mono else wav
