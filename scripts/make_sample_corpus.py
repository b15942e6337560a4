"""Generate the small synthetic RAVDESS-format sample corpus under ``data/sample/``.

This is a *maintainer* script: the generated corpus is committed to the repository, so
users, tests and smoke runs never need to run it. Rerun it only when the corpus itself
has to change (and then update ``data/sample/README.md`` accordingly).

What it produces
----------------
64 short audio-video clips named like RAVDESS files::

    <out>/Actor_XX/MM-VV-EE-II-SS-RR-AA.mp4

with modality 01 (full AV), vocal channel 01 (speech), emotions neutral (01), happy (03),
sad (04) and angry (05), intensity 01, statements 01/02, repetitions 01/02 and four
pseudo-actors (odd = male voice, even = female voice, as in RAVDESS).

* Audio: real synthetic speech from the ``espeak-ng`` command-line program, one voice per
  actor; the emotion changes pitch, speaking rate and loudness (see ``EMOTIONS``). The
  second repetition gets a small seeded jitter of pitch and rate. Audio is resampled to
  48 kHz mono, padded with ~0.2 s of silence at both ends and encoded as AAC.
* Video: 30 fps, 192x192, H.264/yuv420p. Every frame shows a real face: the public-domain
  NASA astronaut photograph shipped with scikit-image (``skimage.data.astronaut``), styled
  per actor (crop/zoom, mirror, rotation, colour tint). The emotion drives the head motion
  (neutral ~still, happy = fast bobbing, sad = slow downward drift/tilt + darkening,
  angry = fast side-to-side shake) and the lower face is stretched vertically in proportion
  to the speech RMS envelope, so the mouth moves in sync with the audio.

Everything is deterministic for a given ``--seed``.

Dependencies
------------
* ``espeak-ng`` on ``PATH`` (Debian/Ubuntu package ``espeak-ng``), called via subprocess.
* Python: numpy, scipy, scikit-image, opencv-python, av (PyAV). PyAV is used for encoding
  when its build has ``libx264``; otherwise the ``ffmpeg`` CLI is used.
* ``--verify`` (on by default) additionally needs facenet-pytorch (MTCNN, CPU) to check
  that a face is detected in >= 95 % of sampled frames of every clip.

Usage::

    .venv/bin/python scripts/make_sample_corpus.py [--out data/sample] [--seed 0] [--no-verify]
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import resample_poly
from skimage import data as skdata

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

FPS = 30
SAMPLE_RATE = 48_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 1600
FRAME_W = 192
FRAME_H = 192
PAD_SECONDS = 0.2
AUDIO_GAIN = 0.9  # fixed headroom for resampling overshoot (same for every clip)
AUDIO_BITRATE = 48_000
VIDEO_CRF = 21
# Macroblock-tree rate control is off: with it, the libx264 bundled in the PyAV 18 wheels
# produced a different bitstream (and different decoded pixels) on every run.
X264_PARAMS = "mbtree=0"
MAX_TOTAL_BYTES = 5 * 1024 * 1024
MIN_FACE_RATE = 0.95

MODALITY = "01"  # full audio-video
VOCAL_CHANNEL = "01"  # speech
INTENSITY = "01"  # normal
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
REPETITIONS = (1, 2)

# Landmarks of the face in skimage.data.astronaut() (512x512), from facenet-pytorch MTCNN.
FACE_CENTER = (224.0, 117.0)  # centre of the detected face box (x, y)
MOUTH_CENTER = (223.5, 140.5)  # midpoint of the two mouth corners
MOUTH_WIDTH = 44.0
UPPER_LIP_Y = 133.0  # between nose tip (y~129) and mouth line; the stretch pivots here


@dataclass(frozen=True)
class Emotion:
    """Prosody and motion parameters of one emotion."""

    code: int
    name: str
    pitch_delta: int  # added to the actor's espeak -p (0..99)
    speed_factor: float  # multiplies the actor's espeak -s (words per minute)
    amplitude: int  # espeak -a (0..200, default 100)


@dataclass(frozen=True)
class Actor:
    """One pseudo-actor: espeak voice plus a visual style of the astronaut face."""

    number: int
    voice: str
    pitch: int
    speed: int
    scale: float  # output pixels per source pixel
    offset: tuple[float, float]  # shift of the face centre in the output frame (px)
    mirror: bool
    rotation_deg: float
    tint: tuple[float, float, float]  # RGB gains
    hue_shift: int  # OpenCV hue units (0..179)


EMOTIONS: tuple[Emotion, ...] = (
    Emotion(1, "neutral", pitch_delta=0, speed_factor=1.00, amplitude=100),
    Emotion(3, "happy", pitch_delta=22, speed_factor=1.18, amplitude=125),
    Emotion(4, "sad", pitch_delta=-18, speed_factor=0.78, amplitude=55),
    Emotion(5, "angry", pitch_delta=8, speed_factor=1.22, amplitude=160),
)

ACTORS: tuple[Actor, ...] = (
    Actor(
        1,
        "en+m1",
        pitch=42,
        speed=165,
        scale=1.00,
        offset=(0.0, 0.0),
        mirror=False,
        rotation_deg=0.0,
        tint=(1.00, 1.00, 1.00),
        hue_shift=0,
    ),
    Actor(
        2,
        "en+f2",
        pitch=55,
        speed=170,
        scale=1.15,
        offset=(6.0, 4.0),
        mirror=True,
        rotation_deg=5.0,
        tint=(1.08, 0.98, 0.90),
        hue_shift=0,
    ),
    Actor(
        3,
        "en+m3",
        pitch=35,
        speed=160,
        scale=0.90,
        offset=(-8.0, -4.0),
        mirror=False,
        rotation_deg=-6.0,
        tint=(0.88, 0.98, 1.10),
        hue_shift=8,
    ),
    Actor(
        4,
        "en+f4",
        pitch=62,
        speed=175,
        scale=1.05,
        offset=(4.0, 8.0),
        mirror=True,
        rotation_deg=-2.0,
        tint=(1.00, 1.06, 0.92),
        hue_shift=170,
    ),
)


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the corpus."""

    actor: Actor
    emotion: Emotion
    statement: int
    repetition: int

    @property
    def filename(self) -> str:
        """RAVDESS-style file name, e.g. ``01-01-03-01-02-01-04.mp4``."""
        fields = (
            MODALITY,
            VOCAL_CHANNEL,
            f"{self.emotion.code:02d}",
            INTENSITY,
            f"{self.statement:02d}",
            f"{self.repetition:02d}",
            f"{self.actor.number:02d}",
        )
        return "-".join(fields) + ".mp4"

    @property
    def relpath(self) -> Path:
        """Path relative to the corpus root (``Actor_XX/<filename>``)."""
        return Path(f"Actor_{self.actor.number:02d}") / self.filename


def all_clips() -> list[ClipSpec]:
    """All 64 clips in a fixed order."""
    return [
        ClipSpec(actor, emotion, statement, rep)
        for actor in ACTORS
        for emotion in EMOTIONS
        for statement in STATEMENTS
        for rep in REPETITIONS
    ]


def clip_rng(seed: int, clip: ClipSpec, stream: int) -> np.random.Generator:
    """Independent, order-free random stream per clip (``stream`` separates uses)."""
    key = [seed, clip.actor.number, clip.emotion.code, clip.statement, clip.repetition, stream]
    return np.random.default_rng(key)


# ----------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class EspeakParams:
    """Arguments of one espeak-ng call."""

    voice: str  # -v
    pitch: int  # -p (0..99)
    speed: int  # -s (words per minute)
    amplitude: int  # -a (0..200)


def espeak_params(clip: ClipSpec, seed: int) -> EspeakParams:
    """espeak-ng voice, pitch, speed and amplitude for a clip."""
    actor, emo = clip.actor, clip.emotion
    pitch = actor.pitch + emo.pitch_delta
    speed = actor.speed * emo.speed_factor
    if clip.repetition > 1:  # small seeded jitter so repetitions are not identical
        rng = clip_rng(seed, clip, 0)
        signs = rng.choice([-1, 1], size=2)
        pitch += int(signs[0] * rng.integers(1, 4))  # +-1..3 pitch units
        speed *= 1.0 + float(signs[1] * rng.uniform(0.02, 0.05))  # +-2..5 % rate
    return EspeakParams(actor.voice, int(np.clip(pitch, 0, 99)), round(speed), emo.amplitude)


def synthesize(text: str, params: EspeakParams) -> np.ndarray:
    """Run espeak-ng and return 48 kHz mono float32 audio in [-1, 1]."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng not found on PATH (Debian package 'espeak-ng')")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        cmd = [
            espeak,
            "-v",
            params.voice,
            "-p",
            str(params.pitch),
            "-s",
            str(params.speed),
            "-a",
            str(params.amplitude),
            "-w",
            str(wav_path),
            text,
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        with wave.open(str(wav_path), "rb") as wf:
            if wf.getnchannels() != 1 or wf.getsampwidth() != 2:
                raise RuntimeError(f"unexpected espeak-ng output format: {wf.getparams()}")
            rate = wf.getframerate()
            pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
    x = pcm.astype(np.float64) / 32768.0
    g = math.gcd(SAMPLE_RATE, rate)
    y = resample_poly(x, SAMPLE_RATE // g, rate // g) * AUDIO_GAIN
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def pad_audio(speech: np.ndarray) -> np.ndarray:
    """Pad with >= PAD_SECONDS of silence at both ends, ending on a video-frame boundary."""
    pad = int(round(PAD_SECONDS * SAMPLE_RATE))
    n = pad + len(speech) + pad
    n_total = -(-n // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
    out = np.zeros(n_total, dtype=np.float32)
    out[pad : pad + len(speech)] = speech
    return out


def frame_envelope(audio: np.ndarray) -> np.ndarray:
    """Mouth opening in [0, 1] per video frame from the speech RMS envelope."""
    frames = audio.reshape(-1, SAMPLES_PER_FRAME).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    smooth = np.convolve(np.pad(rms, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    # Absolute scale (not per-clip normalised) so louder speech opens the mouth wider.
    return np.clip(smooth / 0.28, 0.0, 1.0)


# ----------------------------------------------------------------------------- video


def styled_source(actor: Actor) -> tuple[np.ndarray, float]:
    """Astronaut image with the actor's tint/mirroring; returns (RGB float32, x-flip sign)."""
    img = skdata.astronaut()
    if actor.hue_shift:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + actor.hue_shift) % 180).astype(np.uint8)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    out = img.astype(np.float32) * np.asarray(actor.tint, dtype=np.float32)
    if actor.mirror:
        out = out[:, ::-1].copy()
    return np.clip(out, 0, 255), (-1.0 if actor.mirror else 1.0)


def motion(
    emotion: Emotion, t: np.ndarray, duration: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame head motion: (dx px, dy px, rotation deg, brightness gain)."""
    phase = rng.uniform(0, 2 * np.pi)
    jit = 1.0 + rng.uniform(-0.1, 0.1)
    zeros = np.zeros_like(t)
    ones = np.ones_like(t)
    prog = t / max(duration, 1e-6)
    if emotion.name == "neutral":  # nearly still: tiny slow sway
        return 0.8 * np.sin(2 * np.pi * 0.3 * jit * t + phase), zeros, zeros, ones
    if emotion.name == "happy":  # quick up-down bobbing
        w = 2 * np.pi * 2.5 * jit
        return zeros, 6.0 * np.sin(w * t + phase), 1.5 * np.sin(w * t + phase + 1.0), ones
    if emotion.name == "sad":  # slow downward drift and tilt, progressive darkening
        dy = 14.0 * jit * prog
        rot = 7.0 * jit * prog
        return 0.5 * np.sin(2 * np.pi * 0.2 * t + phase), dy, rot, 0.85 - 0.15 * prog
    if emotion.name == "angry":  # fast side-to-side shake
        w = 2 * np.pi * 4.5 * jit
        return 7.0 * np.sin(w * t + phase), zeros, 2.0 * np.sin(w * t + phase), ones
    raise ValueError(emotion.name)


def render_frames(clip: ClipSpec, envelope: np.ndarray, seed: int) -> np.ndarray:
    """Render ``len(envelope)`` RGB uint8 frames (N, H, W, 3) for a clip."""
    actor = clip.actor
    src, flip = styled_source(actor)
    src_w = src.shape[1]
    face_x = FACE_CENTER[0] if flip > 0 else src_w - 1 - FACE_CENTER[0]
    mouth_x = MOUTH_CENTER[0] if flip > 0 else src_w - 1 - MOUTH_CENTER[0]

    n = len(envelope)
    t = np.arange(n) / FPS
    dx, dy, rot, gain = motion(clip.emotion, t, n / FPS, clip_rng(seed, clip, 1))

    vv, uu = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    out_center = (FRAME_W / 2 + actor.offset[0], FRAME_H / 2 + actor.offset[1])
    sig_x, sig_y = 0.7 * MOUTH_WIDTH, 0.9 * MOUTH_WIDTH
    frames = np.empty((n, FRAME_H, FRAME_W, 3), dtype=np.uint8)
    for i in range(n):
        # Forward affine source -> output, then invert to get source coords of each pixel.
        m = cv2.getRotationMatrix2D(
            (face_x, FACE_CENTER[1]), actor.rotation_deg + rot[i], actor.scale
        )
        m[0, 2] += out_center[0] + dx[i] - face_x
        m[1, 2] += out_center[1] + dy[i] - FACE_CENTER[1]
        inv = cv2.invertAffineTransform(m)
        xs = inv[0, 0] * uu + inv[0, 1] * vv + inv[0, 2]
        ys = inv[1, 0] * uu + inv[1, 1] * vv + inv[1, 2]
        # Jaw drop: stretch the region below the upper lip vertically with the envelope.
        a = 0.4 * float(envelope[i])
        if a > 0:
            g = np.exp(
                -0.5
                * (
                    ((xs - mouth_x) / sig_x) ** 2
                    + ((ys - MOUTH_CENTER[1] - 0.3 * MOUTH_WIDTH) / sig_y) ** 2
                )
            )
            below = np.maximum(ys - UPPER_LIP_Y, 0.0)
            ys = ys - a * g * below
        img = cv2.remap(
            src,
            xs.astype(np.float32),
            ys.astype(np.float32),
            interpolation=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        frames[i] = np.clip(img * gain[i] + 0.5, 0, 255).astype(np.uint8)
    return frames


# ----------------------------------------------------------------------------- encoding


def _pyav_has_libx264() -> bool:
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def encode_pyav(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """Write H.264 (yuv420p) + AAC mp4 with PyAV."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=FPS)
        vstream.width, vstream.height = FRAME_W, FRAME_H
        vstream.pix_fmt = "yuv420p"
        vstream.options = {
            "crf": str(VIDEO_CRF),
            "preset": "slow",
            "threads": "1",
            "x264-params": X264_PARAMS,
        }
        vstream.codec_context.thread_count = 1
        astream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        astream.bit_rate = AUDIO_BITRATE

        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, FPS)
            container.mux(vstream.encode(vf))
        container.mux(vstream.encode())

        chunk = 1024
        for start in range(0, len(audio), chunk):
            block = audio[start : start + chunk]
            af = av.AudioFrame.from_ndarray(block[np.newaxis, :], format="fltp", layout="mono")
            af.sample_rate = SAMPLE_RATE
            af.pts = start
            af.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(astream.encode(af))
        container.mux(astream.encode())


def encode_ffmpeg(path: Path, frames: np.ndarray, audio: np.ndarray) -> None:
    """Fallback: write the mp4 with the ffmpeg CLI (raw frames on stdin, temp WAV)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("PyAV lacks libx264 and no ffmpeg CLI found")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "audio.wav"
        with wave.open(str(wav_path), "wb") as wf:
            wf.setnchannels(1)
            wf.setsampwidth(2)
            wf.setframerate(SAMPLE_RATE)
            wf.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
        cmd = [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{FRAME_W}x{FRAME_H}",
            "-r",
            str(FPS),
            "-i",
            "-",
            "-i",
            str(wav_path),
            "-c:v",
            "libx264",
            "-preset",
            "slow",
            "-crf",
            str(VIDEO_CRF),
            "-x264-params",
            X264_PARAMS,
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            str(AUDIO_BITRATE),
            "-ar",
            str(SAMPLE_RATE),
            "-ac",
            "1",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-movflags",
            "+faststart",
            str(path),
        ]
        subprocess.run(cmd, input=frames.tobytes(), check=True)


# ----------------------------------------------------------------------------- main steps


@dataclass(frozen=True)
class ClipResult:
    """Summary of one generated clip."""

    path: Path
    duration: float  # seconds (audio == video)
    frames: int
    speech_rms: float  # RMS of the synthesized speech before padding
    espeak: EspeakParams


def make_clip(clip: ClipSpec, out_dir: Path, seed: int, use_pyav: bool) -> ClipResult:
    """Synthesize, render and encode one clip; returns a small summary."""
    params = espeak_params(clip, seed)
    speech = synthesize(STATEMENTS[clip.statement], params)
    audio = pad_audio(speech)
    envelope = frame_envelope(audio)
    frames = render_frames(clip, envelope, seed)
    path = out_dir / clip.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    (encode_pyav if use_pyav else encode_ffmpeg)(path, frames, audio)
    rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    return ClipResult(path, len(audio) / SAMPLE_RATE, len(frames), rms, params)


def generate(out_dir: Path, seed: int) -> list[ClipResult]:
    """Generate all clips into ``out_dir``."""
    use_pyav = _pyav_has_libx264()
    print(f"encoder: {'PyAV (libx264)' if use_pyav else 'ffmpeg CLI'}")
    results = []
    for clip in all_clips():
        res = make_clip(clip, out_dir, seed, use_pyav)
        ep = res.espeak
        print(
            f"{clip.relpath}  {res.duration:.2f}s  espeak-ng -v {ep.voice} -p {ep.pitch} "
            f"-s {ep.speed} -a {ep.amplitude}  rms={res.speech_rms:.3f}"
        )
        results.append(res)
    return results


def verify(out_dir: Path) -> bool:
    """Check streams, MTCNN face-detection rate and total size; return True if all pass."""
    import av
    from facenet_pytorch import MTCNN

    detector = MTCNN(keep_all=True, device="cpu")
    ok = True
    rates = []
    durations = []
    paths = sorted(out_dir.glob("Actor_*/*.mp4"))
    if len(paths) != len(all_clips()):
        print(f"FAIL: expected {len(all_clips())} clips, found {len(paths)}")
        ok = False
    for path in paths:
        with av.open(str(path)) as container:
            vs, as_ = container.streams.video, container.streams.audio
            if len(vs) != 1 or len(as_) != 1:
                print(f"FAIL {path.name}: {len(vs)} video / {len(as_)} audio streams")
                ok = False
                continue
            fps = vs[0].average_rate
            if fps is None or abs(float(fps) - FPS) > 1e-3:
                print(f"FAIL {path.name}: video rate {fps}")
                ok = False
            actx = as_[0].codec_context
            if actx.sample_rate != SAMPLE_RATE or actx.channels != 1:
                print(f"FAIL {path.name}: audio {actx.sample_rate} Hz x {actx.channels} ch")
                ok = False
            a_dur = float(as_[0].duration * as_[0].time_base) if as_[0].duration else 0.0
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        duration = len(frames) / FPS
        if abs(a_dur - duration) > 0.05:
            print(f"FAIL {path.name}: audio {a_dur:.3f}s vs video {duration:.3f}s")
            ok = False
        sampled = frames[::10]
        if not sampled:
            print(f"FAIL {path.name}: no video frames")
            ok = False
            continue
        boxes, _ = detector.detect(sampled)
        found = sum(b is not None and len(b) > 0 for b in boxes)
        rate = found / len(sampled)
        rates.append(rate)
        durations.append(duration)
        flag = "ok " if rate >= MIN_FACE_RATE else "LOW"
        print(
            f"{flag} {path.relative_to(out_dir)}  frames={len(frames)} "
            f"dur={duration:.2f}s  face {found}/{len(sampled)} = {rate:.0%}"
        )
        ok &= rate >= MIN_FACE_RATE
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    if rates:
        print(
            f"face rate: min {min(rates):.0%}, mean {np.mean(rates):.1%}; "
            f"duration {min(durations):.2f}-{max(durations):.2f}s"
        )
    print(f"total size of {out_dir}: {total / 1e6:.2f} MB ({total} bytes)")
    if total > MAX_TOTAL_BYTES:
        print(f"FAIL: corpus larger than {MAX_TOTAL_BYTES} bytes")
        ok = False
    print("verify:", "PASS" if ok else "FAIL")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="check streams, MTCNN face rate and size afterwards",
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="skip generation, only verify an existing corpus"
    )
    args = parser.parse_args(argv)
    if not args.verify_only:
        generate(args.out, args.seed)
    if args.verify or args.verify_only:
        return 0 if verify(args.out) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
