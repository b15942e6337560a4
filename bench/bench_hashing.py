"""What checking media against the manifest costs: stage time on a cold cache and on a warm
rerun (everything reused), on the sample corpus (64 clips of 2.3 s) and on one 10-minute
clip (encoded here with PyAV: a moving real face and the sample's speech looped), with this
checkout's code and, for comparison, another checkout's (``--before``, e.g. a worktree of
the commit before read-once hashing). Also the bare sha256 time of the media.

    .venv/bin/python bench/bench_hashing.py [--before /path/to/old/checkout] [--quick]
        [--stages mel faces] [--out bench/results/hashing.json]

Each stage run is its own process (``mer extract``) with 1 worker, so start-up counts; its
wall seconds and its CPU seconds (user + sys: on a shared machine, the figure to compare)
are recorded. Prints one JSON line per measurement and saves them to
``bench/results/hashing.json``, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def _stage(code: Path, root: Path, corpus: Path, stage: str, cache: Path) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(code))
    args = [str(BIN / "python"), "-m", "pipeline.cli", "extract", stage, "--corpus",
            str(corpus), "--adapter", "folder", "--name", "b", "--root", str(root),
            "--set", "runner.n_jobs=1", "--set", f"runner.cache_dir={cache}", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=code)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    from run_all import long_clip

    from pipeline.hashing import file_sha256

    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, help="another checkout to compare with")
    ap.add_argument("--quick", action="store_true", help="no 10-minute clip")
    ap.add_argument("--stages", nargs="+", default=["mel", "faces"])
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/hashing.json")
    args = ap.parse_args()
    sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
    load = [round(x, 2) for x in os.getloadavg()]
    codes = {"now": REPO, **({"before": args.before.resolve()} if args.before else {})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {"sample64": Path(tmp) / "sample64"}
        corpora["sample64"].mkdir()
        for i, c in enumerate(sample):
            os.link(c, corpora["sample64"] / f"c{i:02d}.mp4")
        if not args.quick:
            corpora["clip10min"] = Path(tmp) / "clip10min"
            corpora["clip10min"].mkdir()
            long_clip(sample[0], corpora["clip10min"] / "long.mp4", 600)
        for cname, corpus in corpora.items():
            files = sorted(corpus.glob("*.mp4"))
            t0 = time.perf_counter()
            for f in files:
                file_sha256(f)
            row = {"corpus": cname, "files": len(files),
                   "megabytes": round(sum(f.stat().st_size for f in files) / 2**20, 1),
                   "sha256_seconds": round(time.perf_counter() - t0, 3)}
            for label, code in codes.items():
                for stage in args.stages:
                    root = Path(tmp) / f"{cname}-{label}-{stage}"
                    cache = root / "cache"
                    for run in ("cold", "warm"):
                        wall, cpu = _stage(code, root, corpus, stage, cache)
                        row[f"{label}_{stage}_{run}_seconds"] = round(wall, 2)
                        row[f"{label}_{stage}_{run}_cpu_seconds"] = round(cpu, 2)
                    shutil.rmtree(root, ignore_errors=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "hashing", "load_before": load, "load_after": [
        round(x, 2) for x in os.getloadavg()], "rows": rows}, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
