"""Synthetic test media made on the fly: a moving real face, and a plain encoder.

Benchmarks and tests use these to get video of any size and length without shipping it:
:func:`talking_head_frames` moves the public-domain astronaut photograph of scikit-image (a real
face) over a grey background with smooth head motion; :func:`people_frames` shows two such
faces side by side (sizes, blur and a mouth that opens with an envelope, e.g. of speech from
:func:`speech_envelope`, per face); :func:`encode_video` writes any frames
(and optionally a mono waveform) to an H.264/AAC MP4 with PyAV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .ffmpeg_cpu import pin


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
    pin()  # FFmpeg's SIMD level, as for decoding: the same file whatever this process ran before
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


# The 200 x 200 patch of the astronaut photograph around her face, and where MTCNN puts her
# mouth in it (centre between the mouth corners; their distance is about 43 px).
FACE_PATCH = (slice(17, 217), slice(124, 324))
MOUTH_IN_PATCH = (101.0, 126.0)


def people_frames(
    n_frames: int,
    width: int = 400,
    height: int = 200,
    sides: tuple[int, int] = (170, 170),
    blur: tuple[Sequence[float] | None, Sequence[float] | None] = (None, None),
    mouth: tuple[Sequence[float] | None, Sequence[float] | None] = (None, None),
    fps: float = 30.0,
) -> Iterator[np.ndarray]:
    """Two people (the astronaut's face twice), one in each half of the frame, swaying a
    little. Per face: ``sides`` the patch size in pixels (the face box is about 0.45 of it;
    0 = no face), ``blur`` a Gaussian sigma per frame (lowers MTCNN's confidence), ``mouth`` an
    opening in [0, 1] per frame (:func:`open_mouth`; 0 = the photo's own mouth)."""
    import cv2
    from skimage import data

    patch = np.ascontiguousarray(data.astronaut()[FACE_PATCH])
    for i in range(n_frames):
        t = i / fps
        img = np.full((height, width, 3), (96, 96, 112), np.uint8)
        for k, (cx, phase) in enumerate(((0.25 * width, 0.0), (0.75 * width, 1.3))):
            if sides[k] <= 0:
                continue
            src = patch
            if mouth[k] is not None and mouth[k][i] > 0.02:
                src = open_mouth(src, float(mouth[k][i]))
            if blur[k] is not None and blur[k][i] > 0:
                src = cv2.GaussianBlur(src, (0, 0), blur[k][i])
            img = paste_swaying(img, src, sides[k], cx, t, phase, tilt=3.0, sway=4.0)
        yield img


def open_mouth(patch: np.ndarray, opening: float, drop_px: float = 20.0) -> np.ndarray:
    """The 200 x 200 face ``patch`` with its mouth opened: the lower lip and chin moved down
    by ``opening * drop_px`` pixels (tapering off sideways and below the chin), the gap dark
    like a mouth's inside. A synthetic stand-in for speech: a landmark model sees the inner
    lips part, as on a real talking face."""
    import cv2

    mx, my = MOUTH_IN_PATCH
    h, w = patch.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    across = np.clip(1 - np.abs(xs - mx) / 34.0, 0, 1) ** 0.5
    below = np.clip((my + 75 - ys) / 35.0, 0, 1) * (ys >= my)
    shift = (opening * drop_px) * across * below
    src_y = ys - shift
    out = cv2.remap(patch, xs, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    gap = (ys >= my) & (src_y < my) & (shift > 0.5)
    out[gap] = (45, 20, 25)
    return out


def paste_swaying(
    img: np.ndarray, patch: np.ndarray, side: float, cx: float, t: float, phase: float,
    tilt: float, sway: float,
) -> np.ndarray:
    """Draw the 200 x 200 ``patch`` onto ``img`` at ``side`` pixels, centred at ``cx`` and
    mid-height, tilting ``tilt`` degrees and swaying ``sway`` pixels with time ``t`` (seconds;
    ``phase`` offsets one face's motion from another's). Returns ``img``, drawn on in place."""
    import cv2

    height, width = img.shape[:2]
    m = cv2.getRotationMatrix2D(
        (100.0, 100.0), tilt * math.sin(2 * math.pi * 0.3 * t + phase), side / 200
    )
    m[0, 2] += cx + sway * math.sin(2 * math.pi * 0.2 * t + phase) - 100.0
    m[1, 2] += height / 2 - 100.0
    return cv2.warpAffine(
        patch, m, (width, height), dst=img, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_TRANSPARENT,
    )  # fmt: skip


def speech_envelope(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float = 30.0):
    """An opening in [0, 1] per video frame from the audio's energy: 0 at 35 dB under its
    loudest frame or quieter, 1 at the loudest."""
    hop = sample_rate / fps
    rms = np.array([
        np.sqrt(np.mean(audio[int(i * hop) : int((i + 1) * hop)] ** 2) + 1e-12)
        for i in range(n_frames)
    ])  # fmt: skip
    db = 20 * np.log10(rms)
    return np.clip((db - db.max() + 35) / 35, 0, 1)
