"""Training time estimates for the real corpora, from the benchmarks' JSON.

Reads ``bench/results/train_step.json`` (``bench_train_step.py`` on this CPU: CPU seconds and
operations a window per method, fp32 and bf16) and ``bench/results/loader.json``
(``bench_loader.py``: CPU milliseconds a window of the loader), and multiplies them by the
windows an epoch of each preset reads on the real corpus:

- RAVDESS (``ravdess-mpuc``): 1,440 clips (2,880 with ``recordings: paired``), 10 actor
  folds: ~1,150 training and ~130 validation clips a fold;
- CMU-MOSEI (``mosei-mpuc``): ~16,300 training and ~1,870 validation segments of ~7 s;
- IEMOCAP (``iemocap-qianhan``): 5,531 utterances, 10 folds 8:1:1: ~4,420 training and ~553
  validation utterances.

A training window costs a step's forward and backward; a validation window a forward
(about a third of the operations). Pretraining reads two windows a clip (the two views).

CPU: the measured CPU seconds a window (one thread) spread over ``--cores`` cores (assumes
they scale, which 2 threads on a 2-core machine do only roughly). GPU (not measured; no GPU
was available): the counted operations over an assumed sustained rate, ``--gpu-peak``
(TFLOP/s) x ``--utilisation`` (a range), for bf16 and for fp32 (TF32 off). Prints a
Markdown table and saves JSON.

    .venv/bin/python bench/estimate_times.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (corpus, preset, method, training windows an epoch, validation windows an epoch)
EPOCHS = [
    ("RAVDESS", "ravdess-mpuc", "pretrain", 2 * 1150, 2 * 130),
    ("RAVDESS", "ravdess-mpuc", "unimodal_faces", 1150, 130),
    ("RAVDESS", "ravdess-mpuc", "late_fusion", 1150, 130),
    ("RAVDESS", "ravdess-mpuc", "attention", 1150, 130),
    ("RAVDESS", "ravdess-mpuc", "probe", 0, 1440),  # features of every clip, once a fold
    ("CMU-MOSEI", "mosei-mpuc", "pretrain", 2 * 16300, 2 * 1870),
    ("CMU-MOSEI", "mosei-mpuc", "late_fusion", 16300, 1870),
    ("CMU-MOSEI", "mosei-mpuc", "attention", 16300, 1870),
    ("CMU-MOSEI", "mosei-mpuc", "probe", 0, 22800),
    ("IEMOCAP", "iemocap-qianhan", "qian_han", 4420, 553),
]
LOADER_CASE = {"RAVDESS": "all", "CMU-MOSEI": "all", "IEMOCAP": "audio"}


def _fmt(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-step", default=str(REPO / "bench/results/train_step.json"))
    ap.add_argument("--flops", default="", help="a train_step.json with the operations")
    ap.add_argument("--loader", default=str(REPO / "bench/results/loader.json"))
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--gpu", default="H100 SXM")
    ap.add_argument("--gpu-peak-bf16", type=float, default=989.0)  # dense, TFLOP/s
    ap.add_argument("--gpu-peak-fp32", type=float, default=67.0)  # no TF32
    ap.add_argument("--utilisation", type=float, nargs=2, default=[0.3, 0.5])
    ap.add_argument("--out", default=str(REPO / "bench/results/estimates.json"))
    args = ap.parse_args()
    steps = json.loads(Path(args.train_step).read_text())["steps"]
    cpu = {(r["method"], r["precision"]): r["cpu_seconds_per_step"] / r["windows_per_step"]
           for r in steps if r.get("cpu_seconds_per_step")}
    flops_rows = json.loads(Path(args.flops).read_text())["steps"] if args.flops else steps
    gflop = {r["method"]: r["gflop_per_window"] for r in flops_rows if r.get("gflop_per_window")}
    loader = {}
    if Path(args.loader).exists():
        for r in json.loads(Path(args.loader).read_text())["results"]:
            if r["workers"] == 0:
                loader[(r["case"], r["cache_clips"])] = r["cpu_ms_per_window"] / 1000
    rows, out = [], []
    lo, hi = args.utilisation
    for corpus, preset, method, train_w, val_w in EPOCHS:
        probe_like = method == "probe"
        fwd = gflop.get("probe", 0.0) if probe_like else gflop.get(method, 0.0) / 3
        total_gflop = train_w * gflop.get(method, 0.0) + val_w * fwd
        row = {"corpus": corpus, "preset": preset, "method": method, "train_windows": train_w,
               "val_windows": val_w, "gflop_per_window": gflop.get(method)}
        for prec in ("fp32", "bf16"):
            per = cpu.get((method, prec))
            if per is not None:
                cpu_s = (train_w + (val_w / 3 if not probe_like else val_w)) * per
                row[f"cpu_{prec}_seconds"] = cpu_s / args.cores
        peak = {"bf16": args.gpu_peak_bf16, "fp32": args.gpu_peak_fp32}
        for prec, p in peak.items():
            row[f"gpu_{prec}_seconds"] = [total_gflop / (p * 1e3 * u) for u in (hi, lo)]
        case = LOADER_CASE[corpus]
        for cached in (True, False):
            per = loader.get((case, cached))
            if per is not None:
                row[f"loader_cpu_seconds_{'cache' if cached else 'shards'}"] = (
                    (train_w + val_w) * per
                )
        out.append(row)
        cells = [corpus, method, f"{train_w:,} + {val_w:,}"]
        g = row["gflop_per_window"]
        cells.append("?" if not g else f"{g:.0f}" if g >= 10 else f"{g:.2g}")
        for prec in ("fp32", "bf16"):
            v = row.get(f"cpu_{prec}_seconds")
            cells.append(_fmt(v) if v else "not run")
        for prec in ("fp32", "bf16"):
            a, b = row[f"gpu_{prec}_seconds"]
            # a small model is bound by kernel launches, not operations: no FLOP estimate
            cells.append(f"{_fmt(a)}-{_fmt(b)}" if g and g >= 1 else "launch-bound")
        c, s = row.get("loader_cpu_seconds_cache"), row.get("loader_cpu_seconds_shards")
        cells.append(f"{_fmt(c) if c else '?'} / {_fmt(s) if s else '?'}")
        rows.append("| " + " | ".join(cells) + " |")
    head = (
        "| corpus | method | windows an epoch (train + validation) | GFLOP a window | "
        f"this CPU fp32 ({args.cores} cores) | this CPU bf16 | {args.gpu} fp32, estimated | "
        f"{args.gpu} bf16, estimated | loader CPU-seconds (cache / shards) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    print(head)
    print("\n".join(rows))
    doc = {"assumptions": vars(args), "epochs": out}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2))
    print(f"-> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
