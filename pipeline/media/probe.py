"""Read a media file's container metadata (duration, fps, sample rate) without decoding.

The file is opened once through :func:`pipeline.files.open_regular` (a FIFO or a device is
refused, never waited on) and the demuxer reads that open file, so a caller that hashes the
same open file (ingest) probes exactly the bytes it hashed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

from ..files import open_regular


class ProbeError(RuntimeError):
    """The file is missing, empty, or not a media container PyAV can open."""


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds; the longest stream
    has_video: bool
    has_audio: bool
    fps: float  # 0 when there is no video stream
    n_frames: int  # video frames; 0 when there is no video
    n_frames_from: str  # "container" (its header), "counted" (packets), "estimated" or ""
    width: int
    height: int
    sample_rate: int  # 0 when there is no audio stream
    channels: int
    rotation: int  # degrees from the display matrix (phone videos), 0 if none


def _stream_duration(stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return 0.0


def probe(path: str | Path, name: str | Path | None = None) -> MediaInfo:
    """Open ``path`` and read its stream headers. Decodes at most one video frame (for the
    display rotation); reads the video packets when the container keeps no frame count.
    Messages call the file ``name`` (default: the path), e.g. the path the manifest holds
    rather than a symlink's target."""
    shown = name if name is not None else path
    try:
        f = open_regular(path, shown)
    except FileNotFoundError:
        raise ProbeError(f"{shown}: file not found") from None
    except OSError as e:
        raise ProbeError(str(e) if e.filename is None else f"{shown}: {e.strerror}") from None
    with f:
        return probe_file(f, shown)


def probe_file(f: BinaryIO, name: str | Path) -> MediaInfo:
    """:func:`probe` of an open regular file (read from its start; left open)."""
    if os.fstat(f.fileno()).st_size == 0:
        raise ProbeError(f"{name}: file is empty (0 bytes)")
    f.seek(0)
    try:
        container = av.open(f)
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise ProbeError(f"{name}: not a readable media file ({_plain(e)})") from e
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise ProbeError(f"{name}: no audio or video stream")
        durations = [_stream_duration(s) for s in (video, audio) if s is not None]
        duration = max(durations) if durations else 0.0
        if duration <= 0 and container.duration:
            duration = container.duration / av.time_base
        fps = 0.0
        n_frames = width = height = rotation = 0
        n_from = ""
        if video is not None:
            rate = video.average_rate or video.base_rate or video.guessed_rate
            fps = float(Fraction(rate)) if rate else 0.0
            n_frames = int(video.frames or 0)
            width, height = video.codec_context.width, video.codec_context.height
            rotation = _rotation(container, video)
            n_from = "container"
        sample_rate = channels = 0
        if audio is not None:
            sample_rate = int(audio.codec_context.sample_rate or 0)
            channels = int(audio.codec_context.channels or 0)
    if video is not None and n_frames <= 0:
        # MPEG-PS (.mpg), Matroska/WebM and raw streams store no frame count: count the video
        # packets (no decoding), or estimate from duration x fps when that fails.
        try:
            n_frames, n_from = _count_packets(f), "counted"
        except (av.FFmpegError, OSError):
            n_frames, n_from = int(round(duration * fps)), "estimated"
    return MediaInfo(
        duration=round(duration, 6),
        has_video=video is not None,
        has_audio=audio is not None,
        fps=round(fps, 6),
        n_frames=n_frames,
        n_frames_from=n_from,
        width=width,
        height=height,
        sample_rate=sample_rate,
        channels=channels,
        rotation=rotation,
    )


def _plain(e: Exception) -> str:
    """An FFmpeg error without its errno number and file name (the caller names the file)."""
    return getattr(e, "strerror", None) or str(e)


def _count_packets(f: BinaryIO) -> int:
    """Video frames of the open file ``f`` counted from its demuxed packets (one frame each)."""
    f.seek(0)
    with av.open(f) as container:
        stream = container.streams.video[0]
        return sum(1 for pkt in container.demux(stream) if pkt.size and pkt.pts is not None)


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Counterclockwise degrees (0-359) from the stream's display matrix (phone videos).

    PyAV exposes no stream-level side data (``stream.side_data`` does not exist in PyAV 18, so
    looking there found nothing and every phone video probed as unrotated), but FFmpeg copies
    the display matrix onto each decoded frame: the first frame is decoded to read it.
    """
    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation or 0)) % 360
    except Exception:  # noqa: BLE001 - rotation is best effort metadata
        return 0
    return 0
