"""Media the visual-stage tests make for themselves: no-face clips, corrupt clips, clips with a
face that leaves the frame while a tone plays."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from pipeline.media.synthetic import encode_video, talking_head_frames


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
