"""Two-face composites of real talking-head clips, and how ``faces.select: speaker`` does on
them: right / right but warned / wrong but warned / wrong and silent, per kind of clip, and
the cost of the choice against ``select: confidence``.

Input: a folder of real talking-head clips *with their own sound* (one person each, the
same length or longer than ``--seconds``), e.g. clips of the GRID audiovisual corpus
(Cooke et al. 2006, CC BY 4.0: ``sNN/*.mpg``, 3 s, 25 fps, 360 x 288). Not shipped here.
Each composite puts two of them side by side (each at its own size on a grey canvas) and
gives it one sound:

- ``both``: both people talking (their own, different utterances), the sound of one of
  them; every ordered pair once, the speaker on the left for even pairs, on the right for
  odd ones;
- ``swap``: the same pairs with the two people's sides swapped;
- ``still``: the speaker beside the other person frozen on one frame;
- ``sizes``: ``both`` with the non-speaker at 0.6 of its size, and (``sizes_small``) the
  speaker at 0.6;
- ``third``: both talking, the sound of a third person (nobody on screen speaks): the
  right answer is a warning, never a silent pick.

For each composite the faces extractor runs with ``select: speaker`` (the parameters of
params.yaml, or ``--calibrate``: every threshold open, so that the raw scores of each kind
come back for choosing them); a choice is *right* when the kept face is the speaker's (the
side of the kept rows), *warned* when the clip got a warning. Cost: CPU seconds per clip of
``speaker`` against ``confidence`` on the same composites (``--cost N`` of them).

    .venv/bin/python bench/speaker_composites.py --clips DIR [--limit N] [--calibrate]
        [--cost 10] [--out bench/results/speaker.json]
    .venv/bin/python bench/speaker_composites.py --rescore bench/results/speaker.json

``--rescore`` decides a ``--calibrate`` run again with the thresholds of params.yaml, and
finds the loosest thresholds that leave no wrong face and no third person's sound silent.

``--backend syncnet --syncnet-model FILE`` does the same for the SyncNet backend (the
authors' ``syncnet_v2.model``; scores are SyncNet confidences, and ``--rescore`` then
searches ``syncnet_sure_conf`` / ``syncnet_margin``): how its thresholds can be calibrated
where the weights are at hand.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()  # before torch runs: the kernels the stages use (pipeline/kernels.py)

from pipeline.config import load_params, to_dict  # noqa: E402
from pipeline.features import ClipSource, make_extractor  # noqa: E402
from pipeline.media.audio import decode_audio  # noqa: E402
from pipeline.media.synthetic import encode_video  # noqa: E402
from pipeline.media.video import iter_frames  # noqa: E402

SR = 48000
CANVAS_GREY = (96, 96, 112)


@dataclass
class Composite:
    name: str
    kind: str
    left: str  # clip names
    right: str
    sound: str
    speaker_side: str  # left | right | none
    path: str = ""


def read_clip(path: Path, n_frames: int) -> tuple[list[np.ndarray], np.ndarray, float]:
    """The first ``n_frames`` RGB frames, the sound at SR, and the frame rate."""
    import av

    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate or 25)
    frames = [np.ascontiguousarray(f) for _, f in itertools.islice(iter_frames(path), n_frames)]
    return frames, decode_audio(path, SR), fps


def compose(
    left: list[np.ndarray], right: list[np.ndarray], scale: tuple[float, float]
) -> list[np.ndarray]:
    """Frames with ``left`` and ``right`` side by side, each scaled, centred in its half."""
    import cv2

    h, w = left[0].shape[:2]
    out = []
    for a, b in zip(left, right, strict=False):
        img = np.full((h, 2 * w, 3), CANVAS_GREY, np.uint8)
        for k, (src, s) in enumerate(((a, scale[0]), (b, scale[1]))):
            sw, sh = int(round(w * s)) // 2 * 2, int(round(h * s)) // 2 * 2
            small = src if s == 1 else cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA)
            x0, y0 = k * w + (w - sw) // 2, (h - sh) // 2
            img[y0 : y0 + sh, x0 : x0 + sw] = small
        out.append(img)
    return out


def plan(names: list[str], limit: int, seed: int = 0) -> list[Composite]:
    rng = np.random.default_rng(seed)
    pairs = list(itertools.permutations(names, 2))  # (speaker, other)
    if limit and len(pairs) > limit:
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), limit, replace=False))]
    out = []
    for k, (spk, oth) in enumerate(pairs):
        left_is_spk = k % 2 == 0
        lr = (spk, oth) if left_is_spk else (oth, spk)
        side = "left" if left_is_spk else "right"
        other_side = "right" if left_is_spk else "left"
        out.append(Composite(f"both_{k:03d}", "both", *lr, spk, side))
        out.append(Composite(f"swap_{k:03d}", "swap", *lr[::-1], spk, other_side))
        if k % 3 == 0:
            out.append(Composite(f"still_{k:03d}", "still", *lr, spk, side))
            out.append(Composite(f"sizes_{k:03d}", "sizes", *lr, spk, side))
            out.append(Composite(f"sizes_small_{k:03d}", "sizes_small", *lr, spk, side))
        if k % 2 == 0:
            third = [n for n in names if n not in (spk, oth)]
            c = third[int(rng.integers(len(third)))]
            out.append(Composite(f"third_{k:03d}", "third", *lr, c, "none"))
    return out


def make(comp: Composite, clips: dict, n: int, out_dir: Path) -> Path:
    lf, rf = clips[comp.left][0][:n], clips[comp.right][0][:n]
    scale = (1.0, 1.0)
    if comp.kind == "still":  # the non-speaker frozen on its middle frame
        frozen = lambda fr: [fr[len(fr) // 2]] * len(fr)  # noqa: E731
        lf, rf = (lf, frozen(rf)) if comp.speaker_side == "left" else (frozen(lf), rf)
    if comp.kind in ("sizes", "sizes_small"):
        small_left = (comp.speaker_side == "left") == (comp.kind == "sizes_small")
        scale = (0.6, 1.0) if small_left else (1.0, 0.6)
    audio = clips[comp.sound][1][: int(n / clips[comp.sound][2] * SR)]
    fps = clips[comp.left][2]
    path = out_dir / f"{comp.name}.mp4"
    encode_video(path, compose(lf, rf, scale), fps=fps, audio=audio, sample_rate=SR)
    return path


def chosen_side(feats) -> str:
    """The side of the kept face (by most of its rows), or 'none'."""
    b = feats.arrays["boxes"][feats.valid]
    if len(b) == 0:
        return "none"
    w = feats.attrs["frame_width"]
    left = ((b[:, 0] + b[:, 2]) / 2 < w / 2).mean()
    return "left" if left >= 0.5 else "right"


def outcome(comp: Composite, side: str, warned: bool) -> str:
    if comp.speaker_side == "none":
        return "warned" if warned else "silent_pick"
    right = side == comp.speaker_side
    return ("right" if not warned else "right_warned") if right else (
        "wrong_warned" if warned else "wrong_silent"
    )


# the threshold grid --rescore searches: (sure from, to, step; margin to, step) per backend
GRID = {"lips": (0.0, 1.0, 0.01, 0.6, 0.01), "syncnet": (0.0, 15.0, 0.1, 6.0, 0.1)}
OPEN = {  # --calibrate: every threshold open, so that the best-scoring face is always kept
    "lips": {"sure_corr": -1.0, "margin": 0.0},
    "syncnet": {"syncnet_min_conf": -1e9, "syncnet_sure_conf": -1e9, "syncnet_margin": 0.0},
}
# params.yaml's (floor, sure, margin) names of each backend's thresholds
THRESHOLDS = {
    "lips": ("speaker_min_corr", "sure_corr", "margin"),
    "syncnet": ("syncnet_min_conf", "syncnet_sure_conf", "syncnet_margin"),
}


def rescore(rows: list[dict], min_corr: float, sure: float, margin: float) -> dict:
    """Outcomes per kind had the thresholds been these (rows of a ``--calibrate`` run, where
    the best-scoring face was always kept): a clip is warned when its best score is under
    ``min_corr`` or ``sure``, or leads the runner-up by less than ``margin``."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        lead = r["score"] - r["runner_up"] if np.isfinite(r["runner_up"]) else np.inf
        warned = r["score"] < max(min_corr, sure) or lead < margin
        comp = Composite(**{k: r[k] for k in Composite.__dataclass_fields__})
        o = outcome(comp, r["chosen_side"], warned)
        kind = out.setdefault(r["kind"], {"n": 0})
        kind[o] = kind.get(o, 0) + 1
        kind["n"] += 1
    return out


def calibrate(rows: list[dict], backend: str = "lips") -> dict:
    """The loosest (sure, margin) with no wrong face and no third person's sound left
    unwarned: the most right-and-sure ``both``/``swap`` clips, then the lowest sure."""
    best = None
    lo, hi, step, m_hi, m_step = GRID[backend]
    for sure in np.arange(lo, hi, step):
        for margin in np.arange(0.0, m_hi, m_step):
            s = rescore(rows, -1e9, sure, margin)
            bad = sum(k.get("wrong_silent", 0) + k.get("silent_pick", 0) for k in s.values())
            if bad:
                continue
            good = sum(s.get(k, {}).get("right", 0) for k in ("both", "swap"))
            key = (good, -sure, -margin)
            if best is None or key > best[0]:
                best = (key, round(float(sure), 2), round(float(margin), 2), s)
    assert best is not None
    _, sure_name, margin_name = THRESHOLDS[backend]
    return {sure_name: best[1], margin_name: best[2], "summary": best[3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, help="folder of real AV clips")
    ap.add_argument("--pattern", default="*.mpg")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--limit", type=int, default=0, help="at most this many speaker pairs")
    ap.add_argument("--calibrate", action="store_true", help="open every threshold")
    ap.add_argument("--cost", type=int, default=10, help="composites timed against confidence")
    ap.add_argument("--out", type=Path, help="default bench/results/speaker[_syncnet].json")
    ap.add_argument("--rescore", type=Path, help="a --calibrate run's JSON: decide it again")
    ap.add_argument("--backend", choices=("lips", "syncnet"), default="lips")
    ap.add_argument("--syncnet-model", type=Path, help="syncnet: the weights file")
    args = ap.parse_args()
    if args.rescore:
        run = json.loads(args.rescore.read_text())
        backend = run.get("backend", "lips")
        cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
        sp = {**cfg["speaker"], "speaker_min_corr": cfg["speaker_min_corr"]}
        names = THRESHOLDS[backend]
        doc = {
            "params.yaml": {k: sp[k] for k in names},
            "with params.yaml": rescore(run["rows"], *(sp[k] for k in names)),
            "loosest safe": calibrate(run["rows"], backend),
        }
        print(json.dumps(doc, indent=1))
        return
    suffix = "_syncnet" if args.backend == "syncnet" else ""
    args.out = args.out or REPO / f"bench/results/speaker{suffix}.json"

    if args.clips is None:
        sys.exit("--clips DIR is needed (or --rescore JSON)")
    files = sorted(args.clips.glob(args.pattern))
    if len(files) < 3:
        sys.exit(f"{args.clips}: need at least 3 clips matching {args.pattern}")
    n = None
    clips = {}
    for f in files:
        frames, audio, fps = read_clip(f, 10**6)
        clips[f.stem] = (frames, audio, fps)
        n = min(n or len(frames), len(frames), int(args.seconds * fps))
    base = to_dict(load_params(REPO / "params.yaml").section("faces"))
    speaker = {**base["speaker"], "backend": args.backend}
    if args.syncnet_model:
        speaker["syncnet_model"] = str(args.syncnet_model)
    faces_cfg = {**base, "select": "speaker", "speaker": speaker}
    if args.calibrate:
        faces_cfg["speaker_min_corr"] = -1.0
        faces_cfg["speaker"] = {**speaker, **OPEN[args.backend]}
    ex = make_extractor("faces", faces_cfg)
    conf = make_extractor("faces", {**base, "select": "confidence"})
    comps = plan(sorted(clips), args.limit)
    rows = []
    cost = {"speaker": [], "confidence": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, comp in enumerate(comps):
            path = make(comp, clips, n, Path(tmp))
            src = ClipSource(clip_id=comp.name, path=path)
            t0 = time.process_time()
            feats = ex.extract(src)
            t_spk = time.process_time() - t0
            if i < args.cost:
                t0 = time.process_time()
                conf.extract(src)
                cost["confidence"].append(time.process_time() - t0)
                cost["speaker"].append(t_spk)
            a = feats.attrs
            warned = bool(a.get("warning"))
            side = chosen_side(feats)
            row = {
                **asdict(comp),
                "chosen_side": side,
                "n_tracks": int(a["n_tracks"]),
                "status": a.get("speaker_status", ""),
                "select_used": a["select_used"],
                "score": float(a["select_score"]),
                "runner_up": float(a["select_runner_up"]),
                "lag_s": float(a.get("speaker_lag_s", np.nan)),
                "warning": a.get("warning", ""),
                "outcome": outcome(comp, side, warned),
            }
            rows.append(row)
            print(f"{comp.name:16s} {row['outcome']:13s} score {row['score']:.2f} "
                  f"vs {row['runner_up']:.2f} {row['status']}", flush=True)
    summary: dict = {}
    for kind in sorted({r["kind"] for r in rows}):
        sel = [r["outcome"] for r in rows if r["kind"] == kind]
        summary[kind] = {o: sel.count(o) for o in sorted(set(sel))} | {"n": len(sel)}
    result = {
        "what": "faces select: speaker on two-face composites of real talking-head clips",
        "clips": [f.name for f in files],
        "seconds": n / next(iter(clips.values()))[2],
        "calibrate": args.calibrate,
        "backend": args.backend,
        "params": faces_cfg.get("speaker"),
        "speaker_min_corr": faces_cfg["speaker_min_corr"],
        "summary": summary,
        "cpu_s_per_clip": {k: round(float(np.median(v)), 3) for k, v in cost.items() if v},
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps({k: result[k] for k in ("summary", "cpu_s_per_clip")}, indent=1))


if __name__ == "__main__":
    main()
