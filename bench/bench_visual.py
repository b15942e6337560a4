"""Visual stages throughput: decode alone, faces and landmarks, in one run, at the default
params (the repository's params.yaml), with peak memory.

Media: the sample corpus (64 clips, 192x192) and a 1280x720 30 fps talking-head clip this
script generates (``--seconds``, default 30 s; a real face moving, see
pipeline.media.synthetic). Each figure is the median of ``--reps`` runs, interleaved so that
load from other processes hits all of them alike. ``fps`` is frames per wall-clock second;
``cpu_fps`` frames per second of this process's CPU time (less sensitive to a busy machine).

- decode: the video decoded to the codec's frames (``iter_decoded``), and also converted to
  RGB arrays (``iter_frames``).
- faces: the faces extractor at the defaults; its share of time per step (decode, colour
  conversion, key-frame detection, following, crops).
- landmarks: the landmarks extractor (dlib backend) on the faces above, decode included.
- memory: each stage again in its own process on the long clip and on its first third,
  peak RSS (VmHWM) and the RSS after loading models.
- agreement: box IoU of the faces extractor with facenet-pytorch's MTCNN called on every
  full-size frame (every ``--iou-every``-th frame).
- memory on a 7680 x 4320 clip of 6 frames: decode alone and faces, peak RSS.
- small faces: a 1920 x 1080 clip with a face of 1/20 of the long side, the faces extractor
  against facenet-pytorch's MTCNN on every full-size frame (frames with a face, fps); and a
  1280 x 720 clip with a 1/20 face beside a large one (frames where both are found, fps).
- speaker: ``select: speaker`` on a speaking face (mouth opening with a sample clip's speech
  energy) beside a still one, both sides, over 8 sample clips' audio.
- the share of frames with a face in every sample clip (the corpus target is >= 95 %).

Prints a summary and saves JSON to ``bench/results/visual.json``.

    .venv/bin/python bench/bench_visual.py [--seconds 30] [--reps 3] [--quick]
        [--device auto|cpu|cuda] [--faces-only]

``--faces-only`` (the GPU check, scripts/gpu_check.sh): decode and faces on the 1280x720
clip only.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()  # before torch runs: the kernels the stages use (pipeline/kernels.py)

from pipeline.config import load_params, to_dict  # noqa: E402
from pipeline.features import ClipSource, make_extractor  # noqa: E402
from pipeline.media.synthetic import encode_video, talking_head_frames  # noqa: E402
from pipeline.media.video import iter_decoded, iter_frames  # noqa: E402
from pipeline.store import ShardWriter  # noqa: E402
from pipeline.vision.boxes import iou  # noqa: E402


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _timed(fn) -> tuple[object, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _source(path: Path, **kw) -> ClipSource:
    return ClipSource(clip_id=path.stem, path=path.resolve(), **kw)


DEVICE = "auto"  # faces.device for every run (--device)


def _extractors(faces_dir: Path | None = None):
    params = load_params(REPO / "params.yaml")
    faces = make_extractor("faces", {**to_dict(params.section("faces")), "device": DEVICE})
    faces.ensure_setup()
    lm_cfg = to_dict(params.section("landmarks"))
    lm_cfg["faces_dir"] = str(faces_dir) if faces_dir else ""
    landmarks = make_extractor("landmarks", lm_cfg)
    return faces, landmarks


def _write_faces(faces, results: dict[str, tuple[ClipSource, object]], out_dir: Path) -> None:
    """Faces shards as the runner writes them, for the landmarks extractor to read."""
    with ShardWriter(
        out_dir,
        feature="faces",
        params={"feature": "faces", **faces.cache_token()},
        provenance=faces.provenance(),
        primary="crops",
    ) as w:
        for cid, (src, feats) in results.items():
            w.add(cid, feats, source_sha256=src.sha256)


def _decode(path: Path, **kw) -> int:
    return sum(1 for _ in iter_decoded(path, **kw))


def _decode_rgb(path: Path, **kw) -> int:
    return sum(1 for _ in iter_frames(path, **kw))


def _fps(frames: int, seconds: list[float]) -> float:
    return round(frames / statistics.median(seconds), 1)


def long_clip_speed(clip: Path, reps: int, work: Path, landmarks: bool = True) -> dict:
    faces, _ = _extractors()
    src = _source(clip)
    faces.extract(_source(clip, end=0.5))  # warm-up (first-call costs are not throughput)
    wall = {"decode": [], "decode_rgb": [], "faces": []}
    cpu = {k: [] for k in wall}
    n = feats = None
    for _ in range(reps):
        n, w, c = _timed(lambda: _decode(clip))
        wall["decode"].append(w)
        cpu["decode"].append(c)
        _, w, c = _timed(lambda: _decode_rgb(clip))
        wall["decode_rgb"].append(w)
        cpu["decode_rgb"].append(c)
        feats, w, c = _timed(lambda: faces.extract(src))
        wall["faces"].append(w)
        cpu["faces"].append(c)
    steps = dict(faces.last_tracker.seconds)
    faces_dir = work / "faces_long"
    _write_faces(faces, {src.clip_id: (src, feats)}, faces_dir)
    if landmarks:
        _, lm = _extractors(faces_dir)
        lm.ensure_setup()
        wall["landmarks"], cpu["landmarks"] = [], []
        for _ in range(max(1, reps - 1)):
            _, w, c = _timed(lambda: lm.extract(src))
            wall["landmarks"].append(w)
            cpu["landmarks"].append(c)
    fps = {k: _fps(n, v) for k, v in wall.items()}
    cpu_fps = {k: _fps(n, v) for k, v in cpu.items()}
    total = statistics.median(wall["faces"])
    inside = sum(steps.values())
    breakdown = {"decode_and_other": round(max(0.0, total - inside) / total, 3)}
    breakdown.update({k: round(v / total, 3) for k, v in steps.items()})
    return {
        "device": faces.device,
        "batch_size": faces.batch_in_use,
        "frames": n,
        "fps": fps,
        "cpu_fps": cpu_fps,
        "faces_over_decode": round(fps["faces"] / fps["decode"], 3),
        "faces_over_decode_cpu": round(cpu_fps["faces"] / cpu_fps["decode"], 3),
        "faces_over_decode_rgb": round(fps["faces"] / fps["decode_rgb"], 3),
        "faces_time_share": breakdown,
        "face_rate": feats.attrs["face_rate"],
        "detect_scale": feats.attrs["detect_scale"],
        "key_frames": feats.attrs["n_key"],
        "followed": feats.attrs["n_followed"],
        "redetected": feats.attrs["n_redetected"],
        "crops_mb": round(feats.arrays["crops"].nbytes / 2**20, 1),
    }


def sample_corpus(clips: list[Path], work: Path) -> dict:
    faces, _ = _extractors()
    faces.extract(_source(clips[0]))  # warm-up
    n = sum(_decode(c) for c in clips)  # warm the file cache too
    _, w_dec, c_dec = _timed(lambda: [_decode(c) for c in clips])
    results, rates = {}, {}
    w_faces = c_faces = 0.0
    for c in clips:
        feats, w, cp = _timed(lambda c=c: faces.extract(_source(c)))
        w_faces += w
        c_faces += cp
        results[c.stem] = (_source(c), feats)
        rates[c.stem] = float(feats.valid.mean())
    faces_dir = work / "faces_sample"
    _write_faces(faces, results, faces_dir)
    _, landmarks = _extractors(faces_dir)
    landmarks.ensure_setup()
    _, w_lm, c_lm = _timed(lambda: [landmarks.extract(_source(c)) for c in clips])
    worst = min(rates, key=rates.get)
    return {
        "clips": len(clips),
        "frames": n,
        "fps": {
            "decode": round(n / w_dec, 1),
            "faces": round(n / w_faces, 1),
            "landmarks": round(n / w_lm, 1),
        },
        "cpu_fps": {
            "decode": round(n / c_dec, 1),
            "faces": round(n / c_faces, 1),
            "landmarks": round(n / c_lm, 1),
        },
        "faces_over_decode": round(w_dec / w_faces, 3),
        "min_face_rate": round(rates[worst], 4),
        "min_face_rate_clip": worst,
        "clips_below_95": sorted(k for k, v in rates.items() if v < 0.95),
    }


def agreement(clips: list[Path], every: int) -> dict:
    """Box IoU of the faces extractor against MTCNN on every ``every``-th full-size frame."""
    from facenet_pytorch import MTCNN

    faces, _ = _extractors()
    mtcnn = MTCNN(keep_all=True, device="cpu")
    overlaps, mismatched, compared = [], 0, 0
    for clip in clips:
        feats = faces.extract(_source(clip))
        for i, (_, rgb) in enumerate(iter_frames(clip)):
            if i % every:
                continue
            b, p = mtcnn.detect(rgb)
            ours = feats.arrays["boxes"][i]
            compared += 1
            if b is None or not np.isfinite(ours).all():
                mismatched += int((b is None) != (not np.isfinite(ours).all()))
                continue
            overlaps.append(float(iou(ours, np.asarray(b[int(np.argmax(p))], np.float64))))
    o = np.array(overlaps)
    return {
        "frames_compared": compared,
        "face_found_mismatch": mismatched,
        "iou_mean": round(float(o.mean()), 4),
        "iou_p5": round(float(np.percentile(o, 5)), 4),
        "iou_min": round(float(o.min()), 4),
    }


def small_faces(work: Path, seconds: float) -> dict:
    """A 1920 x 1080 clip with one face of 1/20 of the long side (96 px): the faces extractor
    at the defaults against facenet-pytorch's MTCNN on every full-size frame (its default
    20-px minimum face), frames with a face and frames per second of each."""
    from facenet_pytorch import MTCNN

    from pipeline.media.synthetic import people_frames

    clip = work / "small_face_1920x1080.mp4"
    n = int(round(seconds * 30))
    side = 1920 / 20 / 0.45  # the face box is about 0.45 of the patch
    encode_video(clip, people_frames(n, 1920, 1080, sides=(side, 0)), fps=30)
    faces, _ = _extractors()
    faces.extract(_source(clip, end=0.3))  # warm-up
    feats, w_ours, _ = _timed(lambda: faces.extract(_source(clip)))
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def plain() -> list[bool]:
        return [mtcnn.detect(rgb)[0] is not None for _, rgb in iter_frames(clip)]

    found, w_plain, _ = _timed(plain)
    b = feats.arrays["boxes"][feats.valid]
    return {
        "frames": n,
        "face_px_median": round(float(np.median(b[:, 2] - b[:, 0])), 1) if len(b) else 0,
        "faces_rate": round(float(feats.valid.mean()), 4),
        "plain_mtcnn_rate": round(float(np.mean(found)), 4),
        "faces_fps": round(n / w_ours, 2),
        "plain_mtcnn_fps": round(n / w_plain, 2),
        "speedup": round(w_plain / w_ours, 2),
        "small_face_scans": feats.attrs["n_small_face_scans"],
        "key_frames": feats.attrs["n_key"],
    }


def small_beside_large(work: Path, seconds: float) -> dict:
    """A 1280 x 720 clip with a large face (box about 270 px) and one of 1/20 of the long side
    (64 px) beside it: the faces extractor keeping every track (``select: all``) against
    facenet-pytorch's MTCNN on every full-size frame; frames where each finds both faces."""
    from facenet_pytorch import MTCNN

    from pipeline.media.synthetic import people_frames

    clip = work / "small_beside_large_1280x720.mp4"
    n = int(round(seconds * 30))
    encode_video(clip, people_frames(n, 1280, 720, sides=(600, 1280 / 20 / 0.45)), fps=30)
    cfg = {**to_dict(load_params(REPO / "params.yaml").section("faces")), "device": DEVICE}
    faces = make_extractor("faces", {**cfg, "select": "all"})
    faces.extract(_source(clip, end=0.3))  # warm-up
    feats, w_ours, _ = _timed(lambda: faces.extract(_source(clip)))
    b, t = feats.arrays["boxes"], feats.timestamps
    cx = (b[:, 0] + b[:, 2]) / 2
    both_ours = [
        bool((cx[m] < 640).any() and (cx[m] >= 640).any())
        for m in (t == u for u in np.unique(t))
    ]
    mtcnn = MTCNN(keep_all=True, device="cpu")

    def plain() -> list[bool]:
        out = []
        for _, rgb in iter_frames(clip):
            boxes, _ = mtcnn.detect(rgb)
            c = [] if boxes is None else [(x[0] + x[2]) / 2 for x in boxes]
            out.append(any(v < 640 for v in c) and any(v >= 640 for v in c))
        return out

    both_plain, w_plain, _ = _timed(plain)
    return {
        "frames": n,
        "both_faces_rate": round(float(np.mean(both_ours)), 4),
        "plain_mtcnn_both_rate": round(float(np.mean(both_plain)), 4),
        "n_tracks": feats.attrs["n_tracks"],
        "faces_fps": round(n / w_ours, 2),
        "plain_mtcnn_fps": round(n / w_plain, 2),
        "speedup": round(w_plain / w_ours, 2),
        "small_face_scans": feats.attrs["n_small_face_scans"],
    }


def speaker(clips: list[Path], work: Path) -> dict:
    """select: speaker on two faces side by side, one whose mouth opens with a sample clip's
    espeak-ng speech (its audio energy) and one still, the speaker on each side in turn."""
    from pipeline.media.audio import decode_audio
    from pipeline.media.synthetic import people_frames, speech_envelope

    cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
    ex = make_extractor("faces", {**cfg, "select": "speaker"})
    rows = []
    for c in clips:
        audio = decode_audio(c, 48000)
        n = int(len(audio) / 48000 * 30)
        env = speech_envelope(audio, 48000, n)
        for k, side in enumerate(("left", "right")):
            mouth = [None, None]
            mouth[k] = env
            path = work / f"speaker_{c.stem}_{side}.mp4"
            frames = people_frames(n, 400, 200, mouth=tuple(mouth))
            encode_video(path, frames, fps=30, audio=audio, sample_rate=48000)
            feats = ex.extract(_source(path))
            b = feats.arrays["boxes"][feats.valid]
            left = float(np.mean((b[:, 0] + b[:, 2]) / 2 < 200))
            rows.append({
                "clip": c.stem, "side": side, "used": feats.attrs["select_used"],
                "right": bool(left == (1.0 if side == "left" else 0.0)),
                "r_chosen": feats.attrs["select_score"],
                "r_other": feats.attrs["select_runner_up"],
            })  # fmt: skip
    return {
        "cases": len(rows),
        "correct": sum(r["right"] for r in rows),
        "r_speaker_median": round(float(np.median([r["r_chosen"] for r in rows])), 3),
        "r_still_median": round(float(np.median([r["r_other"] for r in rows])), 3),
        "rows": rows,
    }


def child(phase: str, clip: Path, end: float, faces_dir: str) -> dict:
    """One stage in a fresh process: its peak memory."""
    src = _source(clip, end=end)
    if phase == "decode":
        before = _status_mb("VmRSS")
        n = _decode(clip, end=end)
    else:
        faces, landmarks = _extractors(Path(faces_dir) if faces_dir else None)
        ex = faces if phase == "faces" else landmarks
        ex.ensure_setup()
        before = _status_mb("VmRSS")
        n = ex.extract(src).n_steps
    return {
        "phase": phase,
        "frames": n,
        "rss_after_setup_mb": round(before, 1),
        "peak_rss_mb": round(_status_mb("VmHWM"), 1),
    }


def memory(
    clip: Path,
    frames: int,
    faces_dir: Path,
    phases: tuple[str, ...] = ("decode", "faces", "landmarks"),
) -> list[dict]:
    rows = []
    third = round(frames / 3 / 30.0, 3)
    for phase, end in (
        ("decode", third),
        ("decode", 0.0),
        ("faces", third),
        ("faces", 0.0),
        ("landmarks", 0.0),
    ):
        if phase not in phases:
            continue
        cmd = [sys.executable, __file__, "--child", phase, str(clip), str(end), str(faces_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            rows.append({"phase": phase, "error": proc.stderr[-1500:]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the 720p clip")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iou-every", type=int, default=10, help="0: skip the IoU check")
    ap.add_argument("--quick", action="store_true", help="10 s clip, 16 sample clips, 1 rep")
    ap.add_argument("--out", default=str(REPO / "bench/results/visual.json"))
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="faces")
    ap.add_argument(
        "--faces-only",
        action="store_true",
        help="only decode and faces on the 1280x720 clip (the GPU check)",
    )
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phase, clip, end, faces_dir = args.child
        print(json.dumps(child(phase, Path(clip), float(end), faces_dir)))
        return
    if args.quick:
        args.seconds, args.reps = 10.0, 1
    global DEVICE
    DEVICE = args.device
    sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
    if args.quick:
        sample = sample[::4]
    params = load_params(REPO / "params.yaml")
    cfg = params.section("faces")
    out: dict = {
        "machine": {
            "cpu_count": __import__("os").cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "settings": {
            "faces": to_dict(cfg),
            "landmarks_backend": params.section("landmarks").backend,
            "torch_threads": cfg.torch_threads,
            "reps": args.reps,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = work / "talking_head_1280x720.mp4"
        n_frames = int(round(args.seconds * 30))
        t0 = time.perf_counter()
        encode_video(clip, talking_head_frames(n_frames, 1280, 720, 30.0), fps=30)
        print(f"generated {clip.name}: {n_frames} frames in {time.perf_counter() - t0:.0f} s")
        long = long_clip_speed(clip, args.reps, work, landmarks=not args.faces_only)
        out["clip_1280x720"] = {"seconds": args.seconds, **long}
        print("1280x720:", json.dumps(long))
        if args.faces_only:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
            print(
                f"faces on {long['device']} at 1280x720: {long['fps']['faces']} fps; decode "
                f"only: {long['fps']['decode']} fps; saved {args.out}"
            )
            return
        out["memory_1280x720"] = memory(clip, long["frames"], work / "faces_long")
        print("memory:", json.dumps(out["memory_1280x720"]))
        big = work / "talking_head_7680x4320.mp4"
        encode_video(big, talking_head_frames(6, 7680, 4320, 30.0), fps=30)
        out["memory_7680x4320"] = memory(big, 6, work / "faces_long", phases=("decode", "faces"))
        print("memory 8K:", json.dumps(out["memory_7680x4320"]))
        out["small_face_1920x1080"] = small_faces(work, 3.0 if args.quick else 10.0)
        print("small face:", json.dumps(out["small_face_1920x1080"]))
        out["small_beside_large_1280x720"] = small_beside_large(work, 3.0 if args.quick else 10.0)
        print("small beside large:", json.dumps(out["small_beside_large_1280x720"]))
        out["speaker"] = speaker(sample[:: max(1, len(sample) // 8)][:8], work)
        print("speaker:", json.dumps({k: v for k, v in out["speaker"].items() if k != "rows"}))
        out["sample_corpus"] = sample_corpus(sample, work)
        print("sample corpus:", json.dumps(out["sample_corpus"]))
        if args.iou_every:
            out["agreement_1280x720"] = agreement([clip], args.iou_every)
            out["agreement_sample"] = agreement(sample[::4], max(2, args.iou_every // 2))
            print("agreement:", out["agreement_1280x720"], out["agreement_sample"])
    frac = out["clip_1280x720"]["faces_over_decode"]
    print(
        f"\nfaces / decode on 1280x720 at defaults (batch {cfg.batch_size}, key frame every "
        f"{cfg.key_interval}, detection scale {out['clip_1280x720']['detect_scale']}): "
        f"{frac:.0%} by wall clock, "
        f"{out['clip_1280x720']['faces_over_decode_cpu']:.0%} by CPU time (target 25 %)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
