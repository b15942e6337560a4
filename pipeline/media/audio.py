"""Decode the audio track of a media file into float32 samples, resampled on the fly.

:func:`iter_audio` streams: packets are decoded one at a time, cut and downmixed at the native
rate, and resampled by a streaming soxr resampler, so memory holds one block of a few seconds
whatever the length of the file. :func:`decode_audio` joins the blocks into one waveform for
callers that want it whole. Both give the same samples (soxr's streaming and one-shot
resampling agree to the bit). The samples are the same on every x86-64 CPU: FFmpeg's SIMD level
is pinned (:mod:`pipeline.media.ffmpeg_cpu`), and soxr's default (HQ) quality runs its SSE
engine (``cr32s``) on every x86-64 CPU: it selects code by the CPU (AVX) only for VHQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from ..extras import needs
from . import ffmpeg_cpu
from .source_file import SourceFileError, SourceReader, as_reader, media_name

_WARMUP = 0.2  # seconds decoded before a cut's start
AUDIO_ONLY = {"skip_frame": "all"}  # codec options while probing a file for its sound


class AudioDecodeError(RuntimeError):
    """The file has no audio track, or its audio cannot be decoded."""


def iter_audio(
    path: str | Path | SourceReader,
    sample_rate: int,
    mono: bool = True,
    start: float = 0.0,
    end: float = 0.0,
    block_seconds: float = 10.0,
) -> Iterator[np.ndarray]:
    """Yield the audio of ``path`` (a file, or a reader over one opened by
    :mod:`pipeline.media.source_file`) as float32 blocks in [-1, 1] of about ``block_seconds``
    each at ``sample_rate``, shape (samples,) or, with ``mono`` False, (channels, samples).

    ``start``/``end`` in seconds cut a segment (``end`` 0 = to the end of the file). Time 0 is
    the start of the audio stream, the time base shared by every feature of a clip. Raises
    :class:`AudioDecodeError` (when iterated) for a file with no audio or undecodable audio.
    """
    media, path = path, media_name(path)
    ffmpeg_cpu.pin()  # the same decoded samples on every x86-64 CPU
    try:
        reader = as_reader(media)
    except SourceFileError as e:
        raise AudioDecodeError(str(e)) from e
    try:
        # No video frame is decoded to probe the streams (``skip_frame`` reaches only video
        # decoders): the sound needs none, and a 720p probe costs more than the sound.
        # PyAV's 32 KiB reads: a demuxer that skips the video's samples seeks often, and each
        # seek refills the whole buffer (256 KiB reads cost 2.6x the CPU on a 10-min clip).
        container = av.open(reader, options=AUDIO_ONLY)
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
        reader.close()
        raise AudioDecodeError(f"{path}: cannot open ({e})") from e
    with reader, container:
        if not container.streams.audio:
            raise AudioDecodeError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        native = int(stream.codec_context.sample_rate or sample_rate)
        # Cut at the native rate, then resample the cut: a cut and the same stretch of a
        # whole-file decode then hold the same samples. Planar float output (AAC, Opus, MP3
        # decoders) is used as is; other sample formats are converted.
        converter = av.AudioResampler(format="fltp", rate=native)
        out = _Output(native, sample_rate, block_seconds, mono)
        first: int | None = None  # native sample index (from `origin`) of the cut's start
        last: int | None = None  # ... and of its end (None: to the end of the file)
        pos = 0  # native samples seen since the origin
        origin = 0.0
        if start > _WARMUP:
            # Seek a little early: a codec with overlapping frames (AAC) needs one frame of
            # context before its output is exact.
            container.seek(int((start - _WARMUP) / stream.time_base), stream=stream,
                           backward=True)
        try:
            for frame in container.decode(stream):
                if first is None:
                    origin = float(frame.time or 0.0) if start > _WARMUP else 0.0
                    first = max(0, int(round((start - origin) * native)))
                    last = int(round((end - origin) * native)) if end > 0 else None
                arrays = (
                    [_planes(frame)]
                    if frame.format.name == "fltp"
                    else [o.to_ndarray() for o in converter.resample(frame)]
                )
                for a in arrays:
                    pos = _take(a, pos, first, last, mono, out)
                yield from out.drain()
                if last is not None and pos >= last:
                    break
            else:
                for a in (o.to_ndarray() for o in converter.resample(None)):
                    pos = _take(a, pos, first or 0, last, mono, out)
        except av.FFmpegError as e:
            raise AudioDecodeError(f"{path}: audio decode failed ({e})") from e
        if out.n_in == 0:
            if pos == 0:
                raise AudioDecodeError(f"{path}: audio track holds no samples")
            raise AudioDecodeError(f"{path}: no audio between {start} s and {end} s")
        yield from out.drain(final=True)


def _planes(frame: av.AudioFrame) -> np.ndarray:
    """(channels, samples) float32 of a planar float frame: its planes' own bytes, as
    ``to_ndarray`` gives them without its per-frame stacking."""
    n = frame.samples
    planes = frame.planes
    if len(planes) == 1:
        return np.frombuffer(planes[0], np.float32, n).reshape(1, n)
    return np.stack([np.frombuffer(p, np.float32, n) for p in planes])


def _take(
    a: np.ndarray, pos: int, first: int | None, last: int | None, mono: bool, out: _Output
) -> int:
    """Feed the part of decoded block ``a`` (channels, n) that lies in [first, last)."""
    n = a.shape[1]
    lo = max(0, (first or 0) - pos)
    hi = n if last is None else min(n, last - pos)
    if hi > lo:
        part = a[:, lo:hi].astype(np.float32, copy=False)
        if mono and part.shape[0] > 1:
            part = part.mean(axis=0, keepdims=True)
        out.feed(part)
    return pos + n


class _Output:
    """Native-rate samples in, resampled blocks of about ``block_seconds`` out."""

    def __init__(self, native: int, rate: int, block_seconds: float, mono: bool) -> None:
        self.native, self.rate, self.mono = native, rate, mono
        self.block = max(1, int(block_seconds * native))
        self.pending: list[np.ndarray] = []
        self.n_pending = 0
        self.n_in = 0
        self.ready: list[np.ndarray] = []
        self.stream = None
        self.channels = 0

    def feed(self, part: np.ndarray) -> None:
        self.pending.append(part)
        self.n_pending += part.shape[1]
        self.n_in += part.shape[1]

    def drain(self, final: bool = False) -> Iterator[np.ndarray]:
        if self.n_pending >= self.block or (final and self.pending):
            joined = np.concatenate(self.pending, axis=1)
            self.pending, self.n_pending = [], 0
            yield self._resample(joined, final)
        elif final and self.stream is not None:
            yield self._resample(np.zeros((self.channels, 0), np.float32), True)

    def _resample(self, block: np.ndarray, last: bool) -> np.ndarray:
        if self.native == self.rate:
            return block[0] if self.mono else block
        with needs("audio resampling", "extract"):
            import soxr

        if self.stream is None:
            self.channels = block.shape[0]
            self.stream = soxr.ResampleStream(self.native, self.rate, self.channels,
                                              dtype="float32")
        y = self.stream.resample_chunk(np.ascontiguousarray(block.T), last=last)
        y = np.ascontiguousarray(y.T, dtype=np.float32)
        return y[0] if self.mono else y


def decode_audio(
    path: str | Path | SourceReader,
    sample_rate: int,
    mono: bool = True,
    start: float = 0.0,
    end: float = 0.0,
) -> np.ndarray:
    """The whole of :func:`iter_audio`'s output as one array, (samples,) or (channels, n)."""
    blocks = [b for b in iter_audio(path, sample_rate, mono, start, end) if b.shape[-1]]
    if not blocks:
        raise AudioDecodeError(f"{media_name(path)}: audio track holds no samples")
    return np.concatenate(blocks, axis=-1)
