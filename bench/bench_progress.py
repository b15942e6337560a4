"""What live progress costs an extraction: the same spectrogram run over sample clips with
two loky workers, with the progress line on and off (in one invocation, alternating), plus
the Manager process the line needs. Prints and saves JSON (bench/results/progress.json).

    .venv/bin/python bench/bench_progress.py [--clips 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _cpu() -> float:
    """User + system CPU seconds of this process, its finished children (the Manager of
    each run) and its live ones (loky keeps its workers between runs)."""
    import psutil

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            live += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + live


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import multiprocessing

    import psutil

    from pipeline import progress
    from pipeline.config import load_params
    from pipeline.manifest import read_manifest
    from pipeline.paths import Layout
    from pipeline.runner import run_extraction
    from pipeline.workflow import run_ingest
    from tests.conftest import make_project

    t0 = time.perf_counter()
    manager = multiprocessing.Manager()
    start_s = time.perf_counter() - t0
    rss = psutil.Process(manager._process.pid).memory_info().rss
    manager.shutdown()

    clips = sorted((REPO / "data" / "sample").glob("Actor_*/*.mp4"))[: args.clips]
    out: dict = {"clips": len(clips), "manager_start_s": round(start_s, 3),
                 "manager_rss_mb": round(rss / 2**20, 1), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp), clips, {"runner": {"n_jobs": 2, "batch_clips": 4}})
        params = load_params(root / "params.yaml")
        run_ingest(params, root)
        entries = read_manifest(Layout("sample", root=root).clips_csv)
        progress.configure(stream=io.StringIO())  # drawn, not shown
        for i in range(args.repeats * 2):
            show = i % 2 == 0
            cache = root / f"cache{i}"  # a cold cache each run: every clip extracted
            c0, w0 = _cpu(), time.perf_counter()
            run_extraction("spectrogram", params.section("spectrogram"), entries,
                           root / "corpus", root / f"out{i}", cache, params.runner,
                           progress=show)
            out["runs"].append({"progress": show, "wall_s": round(time.perf_counter() - w0, 3),
                                "cpu_s": round(_cpu() - c0, 3)})
    for key in (True, False):
        runs = [r for r in out["runs"] if r["progress"] is key]
        name = "on" if key else "off"
        out[f"median_wall_s_{name}"] = sorted(r["wall_s"] for r in runs)[len(runs) // 2]
        out[f"median_cpu_s_{name}"] = sorted(r["cpu_s"] for r in runs)[len(runs) // 2]
    print(json.dumps(out, indent=2))
    dest = REPO / "bench" / "results" / "progress.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
