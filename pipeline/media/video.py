"""Stream the frames of a video as RGB arrays, one at a time (never the whole video in memory).

Time base
---------
A frame's timestamp is its presentation time in seconds on the file's timeline, measured from
the *media origin*: the start time of the audio stream when the file has one (so time 0 is the
first audio sample, the origin :func:`pipeline.media.decode_audio` uses), else the start time of
the video stream. For the sample corpus (and most MP4 files) both streams start at 0, so the
origin is 0. Cuts (``start``/``end``) are given on the same timeline, and so a feature computed
from frames and one computed from audio samples can be cut at the same times.

Orientation
-----------
Frames are turned upright by the stream's display matrix (phone videos) when ``upright`` is
set, so pixel coordinates refer to the frame as it is displayed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..progress import frame_read
from . import ffmpeg_cpu
from .source_file import SourceFileError, SourceReader, as_reader, media_name

# How far short of its declared duration a video may end before it counts as truncated (s).
TRUNCATION_SLACK = 0.5


class VideoDecodeError(RuntimeError):
    """The file cannot be opened, has no video track, or its video cannot be decoded."""


def _origin(container: av.container.InputContainer, video: av.video.stream.VideoStream) -> float:
    for stream in (*container.streams.audio[:1], video):
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0


@contextlib.contextmanager
def _open_video(media: str | Path | SourceReader) -> Iterator[tuple[Any, Any]]:
    """The container and its first video stream; VideoDecodeError when there is none.
    ``media`` is a path or a reader over a file opened by :mod:`.source_file`."""
    ffmpeg_cpu.pin()  # the same decoded and converted pixels on every x86-64 CPU
    try:
        reader = as_reader(media)
    except SourceFileError as e:
        raise VideoDecodeError(str(e)) from e
    try:
        container = av.open(reader)
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
        reader.close()
        raise VideoDecodeError(f"{media_name(media)}: cannot open ({e})") from e
    with reader, container:
        if not container.streams.video:
            raise VideoDecodeError(f"{media_name(media)}: no video track")
        yield container, container.streams.video[0]


def iter_decoded(
    path: str | Path | SourceReader,
    fps: float = 0.0,
    start: float = 0.0,
    end: float = 0.0,
    threads: int = 0,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Like :func:`iter_frames`, but yields the decoded ``av.VideoFrame`` (still in the codec's
    pixel format, about half the bytes of RGB) for callers that convert frames lazily with
    :func:`to_rgb`."""
    media, path = path, media_name(path)
    with _open_video(media) as (container, stream):
        if threads > 0:
            stream.thread_type = "AUTO"
            stream.thread_count = threads
        origin = _origin(container, stream)
        if start > 0 and stream.time_base is not None:
            try:
                container.seek(
                    int((start + origin) / stream.time_base), stream=stream, backward=True
                )
            except av.FFmpegError as e:
                raise VideoDecodeError(f"{path}: cannot seek to {start} s ({e})") from e
        step = 1.0 / fps if fps > 0 else 0.0
        next_time = start
        first = True
        last = -math.inf
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = float(frame.time) - origin
                last = max(last, t)
                # From the file's start, frames shown before the audio begins are kept, at
                # their true (negative) times; a cut drops the frames before it.
                if start > 0 and t < start - 1e-6:
                    continue
                if first and step and t < start:  # the sampling grid reaches back to it
                    next_time = start + math.floor((t - start) / step + 1e-6) * step
                first = False
                if end > 0 and t >= end - 1e-6:
                    return
                if step:
                    if t < next_time - 1e-6:
                        continue
                    next_time = start + (math.floor((t - start) / step + 1e-6) + 1) * step
                frame_read(t - start)  # live progress (pipeline.progress)
                yield t, frame
        except av.FFmpegError as e:
            raise VideoDecodeError(f"{path}: video decode failed ({e})") from e
        _check_complete(path, stream, origin, last, end)


def frame_times(
    path: str | Path | SourceReader, start: float = 0.0, end: float = 0.0
) -> np.ndarray:
    """The presentation times of the video frames :func:`iter_decoded` yields (same origin,
    cut and kept frames), read from the packets without decoding them."""
    media, path = path, media_name(path)
    with _open_video(media) as (container, stream):
        origin = _origin(container, stream)
        try:
            pts = [
                float(pkt.pts * stream.time_base)
                for pkt in container.demux(stream)
                if pkt.size and pkt.pts is not None
            ]
        except av.FFmpegError as e:
            raise VideoDecodeError(f"{path}: cannot read the video packets ({e})") from e
    t = np.sort(np.array(pts, np.float64)) - origin
    if start > 0:
        t = t[t >= start - 1e-6]
    if end > 0:
        t = t[t < end - 1e-6]
    return t


def _check_complete(
    path: Path, stream: av.video.stream.VideoStream, origin: float, last: float, end: float
) -> None:
    """Raise when the stream stopped well before the end its header declares: a truncated
    file whose data breaks off cleanly at a packet boundary decodes without any error."""
    if stream.duration is None or stream.time_base is None:
        return
    declared = float((stream.start_time or 0) * stream.time_base) - origin
    declared += float(stream.duration * stream.time_base)
    expected = min(declared, end) if end > 0 else declared
    rate = float(stream.average_rate or 0) or 30.0
    if last < expected - TRUNCATION_SLACK - 2.0 / rate:
        stop = "no frame" if last == -math.inf else f"the last frame at {last:.3f} s"
        raise VideoDecodeError(
            f"{path}: video truncated or corrupt: {stop}, but the stream declares {declared:.3f} s"
        )


def iter_frames(
    path: str | Path | SourceReader,
    fps: float = 0.0,
    start: float = 0.0,
    end: float = 0.0,
    upright: bool = True,
    threads: int = 0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time, rgb)`` for the frames of ``path``'s first video stream.

    ``time`` is seconds from the media origin (see the module docstring); ``rgb`` is a
    ``(H, W, 3)`` uint8 array owned by the caller. ``fps`` > 0 samples the stream: a frame is
    kept when it is the first at or after each point of the grid ``start + k / fps`` (0 keeps
    every frame; a rate above the source's keeps every frame). ``start``/``end`` (seconds, end
    0 = to the end) keep frames with ``start <= time < end``; from the file's start (``start``
    0) the frames shown before the media origin (a video that starts before its audio) are
    kept too, at their true, negative times. ``threads`` > 0 lets the decoder
    use that many threads (0: FFmpeg's default).

    Raises :class:`VideoDecodeError` for an unreadable file or a decode error mid-stream
    (frames already yielded stay valid).
    """
    for t, frame in iter_decoded(path, fps=fps, start=start, end=end, threads=threads):
        yield t, to_rgb(frame, upright=upright)


def rotation_turns(frame: av.VideoFrame) -> int:
    """Quarter turns counterclockwise that make ``frame`` upright (from its display matrix)."""
    return round((frame.rotation or 0) / 90) % 4


def to_rgb(
    frame: av.VideoFrame,
    upright: bool = True,
    size: tuple[int, int] | None = None,
    out: np.ndarray | None = None,
    copy: bool = True,
) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a decoded frame.

    ``size`` = (width, height) of the (upright) result scales it on the way (area averaging),
    which costs less than converting the full frame and resizing it. ``out`` receives the
    pixels when given: reusing one buffer avoids the page faults of a fresh multi-megabyte
    array per frame, which cost more than the colour conversion itself. ``copy`` False (and
    no ``out``) returns a read-only view of the converted frame's own pixels instead: one
    frame's bytes less at the peak (a 7680 x 4320 frame is 99 MB).
    """
    turns = rotation_turns(frame) if upright else 0
    # One swscale thread: its automatic threading costs more than it saves on one frame
    # (about 3x slower for 1280x720 here).
    if size is None:
        rgb_frame = frame.reformat(format="rgb24", threads=1)
    else:
        w, h = size if turns % 2 == 0 else (size[1], size[0])
        rgb_frame = frame.reformat(
            width=w, height=h, format="rgb24", interpolation="AREA", threads=1
        )
    plane = rgb_frame.planes[0]
    width, height = rgb_frame.width, rgb_frame.height
    rgb = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, : width * 3]
    rgb = rgb.reshape(height, width, 3)
    if turns:
        # The display matrix rotates the frame counterclockwise; so does np.rot90.
        rgb = np.rot90(rgb, turns)
    if out is None:
        if turns:
            return np.ascontiguousarray(rgb)
        return rgb.copy() if copy else rgb
    out[...] = rgb
    return out


def upright_size(frame: av.VideoFrame, upright: bool = True) -> tuple[int, int]:
    """(width, height) of the frame as :func:`to_rgb` returns it."""
    if upright and rotation_turns(frame) % 2:
        return frame.height, frame.width
    return frame.width, frame.height
