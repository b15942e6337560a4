"""The benchmark suite: every extraction stage with 1 and 2 workers, decode-only as the
reference, and peak memory against clip length and corpus size. Prints and saves JSON to
``bench/results/suite.json``.

Each measurement runs in its own process (so its peak RSS is its own) on a temp project:

- ``stages``: every registered feature over the sample corpus, ``runner.n_jobs`` 1 and 2,
  a cold per-clip cache and cold workers (their model loading and imports are included);
  clips/s, media-seconds/s and the largest peak RSS of the stage process or one worker.
- ``clip_length``: the `mel` and `spectrogram` stages on one clip of 10 s and one of 10 min
  (the sample's frames and speech looped), peak RSS.
- ``corpus_size``: the `spectrogram` stage over 10 and 1,000 clips (copies of sample clips),
  peak RSS.

    .venv/bin/python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _child(argv: list[str]) -> dict:
    """Run ``bench/run_all.py --child ...`` and return its JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], text=True,
                          capture_output=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _project(tmp: Path, clips: list[Path], n_jobs: int) -> Path:
    corpus = tmp / "corpus"
    for i, c in enumerate(clips):
        # RAVDESS names must be unique: vary the actor field for copies
        parts = c.stem.split("-")
        actor = int(parts[6]) + 4 * (i // 64)
        name = "-".join(parts[:6] + [f"{actor:02d}"]) + c.suffix
        dst = corpus / f"Actor_{actor:02d}" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():  # a hard link stays inside the corpus root (a symlink would not)
            try:
                os.link(c, dst)
            except OSError:
                shutil.copy2(c, dst)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["corpus"]["root"] = str(corpus)
    params["runner"]["cache_dir"] = str(tmp / "cache")
    params["runner"]["n_jobs"] = n_jobs
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp


def child_stage(feature: str, n_jobs: int, clips: list[Path]) -> dict:
    from pipeline.config import load_params
    from pipeline.manifest import read_manifest
    from pipeline.workflow import layout, run_feature, run_ingest

    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp), clips, n_jobs)
        params = load_params(root / "params.yaml")
        run_ingest(params, root)
        lay = layout(params, root)
        media = sum(e.duration for e in read_manifest(lay.clips_csv))
        if feature == "decode":
            from pipeline.media import decode_audio
            from pipeline.media.video import iter_frames

            t0 = time.perf_counter()
            n = 0
            for e in read_manifest(lay.clips_csv):
                decode_audio(e.media_path(params.corpus.root), 16000)
                n += sum(1 for _ in iter_frames(e.media_path(params.corpus.root)))
            dt = time.perf_counter() - t0
            extra = {"frames": n, "frames_per_second": round(n / dt, 1)}
        else:
            if feature == "landmarks":  # needs the faces shards first
                run_feature(params, "faces", root, progress=False)
            t0 = time.perf_counter()
            run_feature(params, feature, root, progress=False)
            dt = time.perf_counter() - t0
            extra = json.loads(lay.metrics_json(feature).read_text())
    # loky keeps its workers for reuse; stop and reap them so their peak RSS is counted
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "feature": feature, "n_jobs": n_jobs, "clips": len(clips),
        "media_seconds": round(media, 2), "wall_seconds": round(dt, 3),
        "clips_per_second": round(len(clips) / dt, 2),
        "media_seconds_per_second": round(media / dt, 1),
        "peak_rss_mb": round(max(rss_self, rss_kids), 1), **extra,
    }


def long_clip(src: Path, out: Path, seconds: float) -> Path:
    """A ``seconds``-long 192x192 clip: a moving real face, and ``src``'s speech looped."""
    import numpy as np

    from pipeline.media import decode_audio
    from pipeline.media.synthetic import encode_video, talking_head_frames

    speech = decode_audio(src, 48000)
    audio = np.tile(speech, int(seconds * 48000 / len(speech)) + 1)[: int(seconds * 48000)]
    frames = talking_head_frames(int(seconds * 30), width=192, height=192)
    return encode_video(out, frames, fps=30.0, audio=audio, sample_rate=48000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="16 clips, no 1,000-clip corpus")
    ap.add_argument("--child", nargs="*")
    args = ap.parse_args()
    if args.child is not None:
        feature, n_jobs, *clips = args.child
        print(json.dumps(child_stage(feature, int(n_jobs), [Path(c) for c in clips])))
        return

    from pipeline.features import EXTRACTORS

    sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
    clips = sample[:16] if args.quick else sample
    result: dict = {"benchmark": "suite", "machine": {"cpu": platform.machine(),
                    "python": platform.python_version()}, "stages": [],
                    "clip_length": [], "corpus_size": []}
    for feature in ["decode", *EXTRACTORS]:
        for n_jobs in (1, 2):
            if feature == "decode" and n_jobs == 2:
                continue
            row = _child([feature, str(n_jobs), *map(str, clips)])
            result["stages"].append(row)
            print(json.dumps(row))
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (10, 600):
            f = long_clip(sample[0], Path(tmp) / f"01-01-01-01-01-01-{seconds % 97:02d}.mp4",
                          seconds)
            for feature in ("mel", "spectrogram"):
                row = {"clip_seconds": seconds, **_child([feature, "1", str(f)])}
                result["clip_length"].append(row)
                print(json.dumps(row))
        for n in (10,) if args.quick else (10, 1000):
            pool = [sample[i % len(sample)] for i in range(n)]
            row = {"corpus_clips": n, **_child(["spectrogram", "2", *map(str, pool)])}
            result["corpus_size"].append(row)
            print(json.dumps(row))
    out = REPO / "bench/results/suite.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
