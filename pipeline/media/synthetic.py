"""Synthetic test media made on the fly: a moving real face, and a plain encoder.

Benchmarks and tests use these to get video of any size and length without shipping it:
:func:`talking_head_frames` moves the public-domain astronaut photograph of scikit-image (a real
face) over a grey background with smooth head motion; :func:`encode_video` writes any frames
(and optionally a mono waveform) to an H.264/AAC MP4 with PyAV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def talking_head_frames(
    n_frames: int, width: int = 1280, height: int = 720, fps: float = 30.0, seed: int = 0
) -> Iterator[np.ndarray]:
    """``n_frames`` RGB frames (H, W, 3) uint8 of one real face moving smoothly.

    The face is about a quarter of the frame height tall, drifts sideways and up and down,
    nods, turns slightly and zooms a little, as a speaker on camera does.
    """
    import cv2
    from skimage import data

    face = data.astronaut()  # 512 x 512; the face centre is near (224, 117)
    rng = np.random.default_rng(seed)
    phases = rng.uniform(0, 2 * math.pi, size=4)
    base_scale = 1.5 * height / 512
    for i in range(n_frames):
        t = i / fps
        scale = base_scale * (1 + 0.05 * math.sin(2 * math.pi * 0.2 * t + phases[0]))
        angle = 6.0 * math.sin(2 * math.pi * 0.3 * t + phases[1])
        cx = width / 2 + 0.08 * width * math.sin(2 * math.pi * 0.15 * t + phases[2])
        cy = height * 0.42 + 0.04 * height * math.sin(2 * math.pi * 0.5 * t + phases[3])
        m = cv2.getRotationMatrix2D((224.0, 117.0), angle, scale)
        m[0, 2] += cx - 224.0
        m[1, 2] += cy - 117.0
        yield cv2.warpAffine(
            face,
            m,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(96, 96, 112),
        )


def encode_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float = 30.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 48000,
    crf: int = 23,
    preset: str = "veryfast",
) -> Path:
    """Write RGB frames (and an optional mono float waveform in [-1, 1]) to an MP4 file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as out:
        vs = None
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for rgb in frames:
            if vs is None:
                vs = out.add_stream("libx264", rate=rate)
                vs.width, vs.height = rgb.shape[1], rgb.shape[0]
                vs.pix_fmt = "yuv420p"
                vs.options = {"crf": str(crf), "preset": preset}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            out.mux(vs.encode(frame))
        if vs is None:
            raise ValueError("encode_video: no frames given")
        out.mux(vs.encode(None))
        if astream is not None:
            wav = np.asarray(audio, np.float32).reshape(1, -1)
            chunk = 1024
            for i in range(0, wav.shape[1], chunk):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(wav[:, i : i + chunk]), format="flt", layout="mono"
                )
                af.sample_rate = sample_rate
                af.pts = i
                out.mux(astream.encode(af))
            out.mux(astream.encode(None))
    return path
