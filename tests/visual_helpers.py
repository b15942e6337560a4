"""Media the visual-stage tests make for themselves: no-face clips, corrupt clips, clips with a
face that leaves the frame while a tone plays, and awkward real-world variants (variable frame
rate, a phone's display rotation, odd sizes, two faces, audio only)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.media.ffmpeg_cpu import pin
from pipeline.media.synthetic import (  # noqa: F401 - re-exported for the tests
    FACE_PATCH,
    encode_video,
    paste_swaying,
    people_frames,
    speech_envelope,
    talking_head_frames,
)


def no_face_clip(path: Path, n_frames: int = 20, size: int = 160, seed: int = 0) -> Path:
    """A short H.264 + AAC clip of smooth coloured noise: nothing like a face."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_frames):
        small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        frames.append(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC))
    audio = 0.1 * rng.standard_normal(int(48000 * n_frames / 30)).astype(np.float32)
    return encode_video(path, frames, fps=30, audio=audio)


def truncated_clip(src: Path, dst: Path, keep: float = 0.5) -> Path:
    """A copy of ``src`` remuxed with its index first ("faststart") and cut to ``keep`` of its
    bytes: the container opens and probes fine, the video data breaks off mid-stream."""
    tmp = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as i, av.open(str(tmp), "w", options={"movflags": "faststart"}) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        for pkt in i.demux():
            if pkt.dts is None:
                continue
            pkt.stream = streams[pkt.stream.index]
            o.mux(pkt)
    data = tmp.read_bytes()
    tmp.unlink()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def face_gap_clip(
    path: Path,
    seconds: float = 2.0,
    gap: tuple[float, float] = (1.0, 1.5),
    size: int = 256,
    fps: int = 30,
) -> Path:
    """A moving face on every frame except during ``gap`` (grey frames), and a loud 440 Hz tone
    during exactly the same interval (near-silence elsewhere): an event both modalities see at
    the same times."""
    n = int(round(seconds * fps))
    frames = []
    for i, rgb in enumerate(talking_head_frames(n, width=size, height=size, fps=fps)):
        t = i / fps
        frames.append(np.full_like(rgb, 110) if gap[0] <= t < gap[1] else rgb)
    sr = 48000
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.001 * np.sin(2 * np.pi * 220 * t)
    on = (t >= gap[0]) & (t < gap[1])
    audio[on] = 0.5 * np.sin(2 * np.pi * 440 * t[on])
    return encode_video(path, frames, fps=fps, audio=audio.astype(np.float32), sample_rate=sr)


def encode_frames(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    audio_delay: float = 0.0,
) -> Path:
    """An H.264 (+ mono AAC) MP4 with the awkward parts of real recordings.

    ``audio_delay``: the audio starts this many seconds after the first video frame.

    ``times``: each frame's presentation time in seconds, written on a 1/1000 s time base (a
    variable frame rate when the gaps differ); None = a constant ``fps``. ``rotation``: the
    display matrix's counterclockwise turn in degrees (a phone's portrait recording is -90):
    the ``frames`` are the pictures as displayed, and each is stored turned the other way, as a
    phone's sensor records them. ``pix_fmt`` yuv444p takes odd sizes (yuv420p does not).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    pin()  # FFmpeg's SIMD level, as for every decode: the same bytes whatever ran before
    turns = round(rotation / 90) % 4
    with av.open(str(path), "w") as out:
        vs = astream = None
        for i, shown in enumerate(frames):
            stored = np.ascontiguousarray(np.rot90(shown, -turns))
            if vs is None:
                vs = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                vs.width, vs.height = stored.shape[1], stored.shape[0]
                vs.pix_fmt = pix_fmt
                vs.options = {"preset": "veryfast", "threads": "1"}  # one thread: repeatable
                if times is not None:
                    vs.codec_context.time_base = Fraction(1, 1000)
                if rotation:
                    vs.set_display_rotation(rotation)
                if audio is not None:  # every stream is added before the first packet
                    # The fast AAC coder: ten minutes encode in about 3 s instead of 7.
                    astream = out.add_stream("aac", rate=sample_rate, options={"aac_coder": "fast"})
                    astream.layout = "mono"
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            if times is not None:
                frame.pts = round(times[i] * 1000)
                frame.time_base = Fraction(1, 1000)
            out.mux(vs.encode(frame))
        if vs is None:
            raise ValueError("encode_frames: no frames given")
        out.mux(vs.encode(None))
        if astream is not None:
            _write_mono(out, astream, audio, sample_rate, delay=audio_delay)
    return path


def _write_mono(out, stream, audio: np.ndarray, sample_rate: int, delay: float = 0.0) -> None:
    """Encode a mono float waveform into ``stream`` of container ``out`` and flush it;
    ``delay`` > 0 starts it that many seconds late (past the AAC encoder's 1024 samples of
    priming, which the muxer shifts the stream back by)."""
    wav = np.asarray(audio, np.float32).reshape(1, -1)
    shift = int(round(delay * sample_rate)) + 1024 if delay > 0 else 0
    for i in range(0, wav.shape[1], 1024):
        af = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(wav[:, i : i + 1024]), format="flt", layout="mono"
        )
        af.sample_rate = sample_rate
        af.pts = i + shift
        out.mux(stream.encode(af))
    out.mux(stream.encode(None))


def encode_audio_only(path: Path, audio: np.ndarray, sample_rate: int = 48000) -> Path:
    """A mono AAC file with no video track (``.m4a``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        _write_mono(out, stream, audio, sample_rate)
    return path


def two_faces_frames(
    n_frames: int,
    width: int = 320,
    height: int = 180,
    big: int = 150,
    small: int = 100,
    blur_big: float = 0.0,
    fps: float = 30.0,
) -> Iterator[np.ndarray]:
    """Two copies of the astronaut's face side by side, each swaying a little: a ``big``-pixel
    one in the left half and a ``small``-pixel one in the right half (sizes of the 200-pixel
    patch around the face). ``blur_big`` > 0 blurs the big face (Gaussian sigma in patch
    pixels), which lowers MTCNN's confidence in it below the sharp small face's."""
    import cv2
    from skimage import data

    patch = data.astronaut()[FACE_PATCH]
    big_patch = cv2.GaussianBlur(patch, (0, 0), blur_big) if blur_big > 0 else patch
    for i in range(n_frames):
        t = i / fps
        img = np.full((height, width, 3), (96, 96, 112), np.uint8)
        for src, side, cx, phase in (
            (big_patch, big, 0.28 * width, 0.0),
            (patch, small, 0.76 * width, 1.3),
        ):
            img = paste_swaying(img, src, side, cx, t, phase, tilt=4.0, sway=6.0)
        yield img
