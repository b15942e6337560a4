"""The benchmark suite: every extraction stage with 1 and 2 workers, decode-only as the
reference, peak memory against clip length and corpus size, and the time to resume a killed
stage. Prints one JSON line per measurement and saves them all to
``bench/results/suite.json``.

Each measurement runs in its own process, so its peak RSS is its own: the largest of the
stage process (``VmHWM``, reset after any prerequisite stage ran) and its workers (reaped
loky workers, ``RUSAGE_CHILDREN``). Every run starts from a cold per-clip cache and cold
workers, so worker start-up and model loading are included.

- ``stages``: each feature over the sample corpus (64 clips of 2.3 s), ``runner.n_jobs`` 1
  and 2: clips/s, media-seconds/s, peak RSS, and the 2-worker speed-up.
- ``clip_length``: each stage on one clip of 10 s and one of 10 min (192 x 192, 30 fps, a
  moving real face, the sample's speech looped), 1 worker, peak RSS.
- ``corpus_size``: each stage over 10 and 1,000 clips (hard links to sample clips), 2
  workers, peak RSS.
- ``resume``: the faces stage (2 workers) killed with SIGKILL when half of the corpus is in
  the per-clip cache, then rerun: the rerun's time against an uninterrupted run.

    .venv/bin/python bench/run_all.py [--quick]

``--quick`` uses 16 clips, skips the 10-minute clip and the 1,000-clip corpus (a few
minutes). The training benchmarks are separate: bench_loader.py, bench_train_step.py
(then estimate_times.py) and bench_probe.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STAGES = ("mel", "spectrogram", "faces", "landmarks", "words")
NEEDS = {"landmarks": "faces"}  # a stage whose input is another stage's shards


def _child(argv: list[str]) -> dict:
    """Run ``bench/run_all.py --child ...`` and return its JSON line."""
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], text=True,
                          capture_output=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _project(root: Path, clips: list[Path]) -> Path:
    """A project in ``root`` whose corpus is ``clips`` (hard links), ingested."""
    from pipeline.config import load_params
    from pipeline.workflow import run_ingest

    corpus = root / "corpus"
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
    params["runner"]["cache_dir"] = str(root / "cache")
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    run_ingest(load_params(root / "params.yaml"), root)
    return root


def _peak_self_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Reset this process's peak RSS (Linux: writing 5 to clear_refs)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _params(root: Path, n_jobs: int, cache: str):
    from pipeline.config import load_params

    params = load_params(root / "params.yaml")
    runner = dataclasses.replace(params.runner, n_jobs=n_jobs, cache_dir=str(root / cache))
    return dataclasses.replace(params, runner=runner)


def child_stage(feature: str, n_jobs: int, root: Path) -> dict:
    from pipeline.manifest import read_manifest
    from pipeline.workflow import layout, run_feature

    params = _params(root, n_jobs, f"cache-{feature}-{n_jobs}")
    lay = layout(params, root)
    entries = read_manifest(lay.clips_csv)
    media = sum(e.duration for e in entries)
    need = NEEDS.get(feature)
    if need and not (lay.features_dir(need) / "index.json").exists():
        # In this process, before the measurement, without workers: not counted.
        run_feature(_params(root, 1, f"cache-{need}-pre"), need, root, progress=False)
    _reset_peak()
    if feature == "decode":
        from pipeline.media import decode_audio
        from pipeline.media.video import iter_decoded

        t0 = time.perf_counter()
        n = 0
        for e in entries:
            decode_audio(e.media_path(params.corpus.root), 16000)
            n += sum(1 for _ in iter_decoded(e.media_path(params.corpus.root)))
        dt = time.perf_counter() - t0
        extra = {"frames": n, "frames_per_second": round(n / dt, 1)}
    else:
        t0 = time.perf_counter()
        run_feature(params, feature, root, progress=False)
        dt = time.perf_counter() - t0
        extra = json.loads(lay.metrics_json(feature).read_text())
    # loky keeps its workers for reuse; stop and reap them so their peak RSS is counted
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    rss_kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "feature": feature, "n_jobs": n_jobs, "clips": len(entries),
        "media_seconds": round(media, 2), "wall_seconds": round(dt, 3),
        "clips_per_second": round(len(entries) / dt, 2),
        "media_seconds_per_second": round(media / dt, 1),
        "peak_rss_mb": round(max(_peak_self_mb(), rss_kids), 1), **extra,
    }


def resume(root: Path, feature: str, n_jobs: int) -> dict:
    """Kill a real stage process (and its workers) when half the clips are cached; rerun."""
    from pipeline.manifest import read_manifest
    from pipeline.workflow import layout, run_feature

    params = _params(root, n_jobs, f"cache-resume-{feature}")
    lay = layout(params, root)
    cache = lay.cache_dir / feature
    n = len(read_manifest(lay.clips_csv))
    cfg = yaml.safe_load((root / "params.yaml").read_text())
    cfg["runner"].update(n_jobs=n_jobs, cache_dir=str(root / f"cache-resume-{feature}"))
    (root / "resume.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "stages" / f"{feature}.py"), "--params", "resume.yaml",
         "--quiet"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while proc.poll() is None and len(list(cache.glob("*/*.h5"))) < n // 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the stage and its loky workers: a dead node
    proc.wait()
    killed_after = time.perf_counter() - t0
    done = len(list(cache.glob("*/*.h5")))
    t0 = time.perf_counter()
    run_feature(params, feature, root, progress=False)
    rerun = time.perf_counter() - t0
    metrics = json.loads(lay.metrics_json(feature).with_suffix(".run.json").read_text())
    return {"feature": feature, "n_jobs": n_jobs, "clips": n, "killed_after_s":
            round(killed_after, 2), "done_at_kill": done, "rerun_seconds": round(rerun, 2),
            "rerun_extracted": metrics["extracted"], "rerun_reused": metrics["reused_from_cache"]}


def long_clip(src: Path, out: Path, seconds: float) -> Path:
    """A ``seconds``-long 192x192 clip: a moving real face, and ``src``'s speech looped."""
    import numpy as np

    from pipeline.media import decode_audio
    from pipeline.media.synthetic import encode_video, talking_head_frames

    speech = decode_audio(src, 48000)
    audio = np.tile(speech, int(seconds * 48000 / len(speech)) + 1)[: int(seconds * 48000)]
    frames = talking_head_frames(int(seconds * 30), width=192, height=192)
    return encode_video(out, frames, fps=30.0, audio=audio, sample_rate=48000)


def _emit(result: dict, section: str, row: dict) -> None:
    result[section].append(row)
    print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="16 clips; no 10-minute clip, no 1,000-clip corpus")
    ap.add_argument("--child", nargs=3, metavar=("FEATURE", "N_JOBS", "ROOT"))
    args = ap.parse_args()
    if args.child is not None:
        feature, n_jobs, root = args.child
        print(json.dumps(child_stage(feature, int(n_jobs), Path(root))))
        return

    sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
    clips = sample[:16] if args.quick else sample
    result: dict = {"benchmark": "suite", "quick": args.quick,
                    "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                                "python": platform.python_version()},
                    "stages": [], "speedup_2_workers": {}, "clip_length": [],
                    "corpus_size": [], "resume": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp) / "sample", clips)
        for feature in ("decode", *STAGES):
            times = {}
            for n_jobs in (1,) if feature == "decode" else (1, 2):
                row = _child([feature, str(n_jobs), str(root)])
                times[n_jobs] = row.get("wall_seconds")
                _emit(result, "stages", row)
            if times.get(1) and times.get(2):
                result["speedup_2_workers"][feature] = round(times[1] / times[2], 2)
        _emit(result, "resume", resume(root, "faces", 2))

        for seconds in (10,) if args.quick else (10, 600):
            src_dir = Path(tmp) / f"long{seconds}"
            src_dir.mkdir()
            f = long_clip(sample[0], src_dir / f"01-01-01-01-01-01-{seconds % 97:02d}.mp4",
                          seconds)
            proj = _project(Path(tmp) / f"len{seconds}", [f])
            for feature in ("decode", *STAGES):
                _emit(result, "clip_length",
                      {"clip_seconds": seconds, **_child([feature, "1", str(proj)])})
        for n in (10,) if args.quick else (10, 1000):
            proj = _project(Path(tmp) / f"corpus{n}", [sample[i % len(sample)]
                                                         for i in range(n)])
            for feature in ("decode", *STAGES):
                _emit(result, "corpus_size",
                      {"corpus_clips": n, **_child([feature, "2", str(proj)])})
    print(json.dumps({"speedup_2_workers": result["speedup_2_workers"]}))
    out = REPO / "bench/results" / ("suite-quick.json" if args.quick else "suite.json")
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
