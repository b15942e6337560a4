"""Loader throughput: training windows per second out of the trainer's DataLoaders.

Shards in the real layouts and sizes (gzip, as the runner writes them by default): 112 x 112
RGB face crops (a photograph, moved and lit per frame: it compresses like real crops) and 68
landmarks at 30 fps, 80-band mel frames at 30 fps, 300-d word vectors every 0.3 s, 128 x 128
spectrogram segments, for ``--clips`` clips of 1.5-3 s. Each item is a clip's two random
1.5 s windows (the pretraining views) with the shipped input settings (8 face frames, 30
landmark steps, 30 words, ...), read through ``make_loader`` (what training uses) at the
paper's batch of 32 clips.

Cases: the audio modalities (mel + spectrogram) and all five, each read from the shards and
from the shared decoded cache (``train.cache_clips``), with 0, 1, 2 and the machine's cores
DataLoader workers. Per case: windows/s over ``--epochs`` epochs after one warm-up epoch,
CPU milliseconds per window of the training process and of its workers (psutil), and
memory (RSS, and PSS, which counts a page shared by several processes once in total).
One torch thread per process. Prints each row and saves JSON to bench/results/loader.json.

    .venv/bin/python bench/bench_loader.py                  # all cases (~3 min quiet)
    .venv/bin/python bench/bench_loader.py --cases all --workers 0 2

On a machine shared with other jobs, wall-clock windows/s move with the load; the CPU per
window moves much less. ``idle_machine_windows_per_second`` is what the measured CPU costs
allow on this machine when idle: the least of cores / (CPU a window, all processes),
workers / (a worker's CPU a window) and 1 / (the training process's CPU a window).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import FoldScheme, load_params  # noqa: E402
from pipeline.paths import Layout  # noqa: E402
from pipeline.training.data import CorpusData  # noqa: E402
from pipeline.training.distributed import DistContext  # noqa: E402
from pipeline.training.loops.common import make_loader  # noqa: E402
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus  # noqa: E402

ALL = ["mel", "spectrogram", "faces", "landmarks", "words"]
CASES = {"audio": ["mel", "spectrogram"], "all": ALL}


def spec(clips: int) -> SyntheticSpec:
    return SyntheticSpec(
        n_classes=4,
        n_speakers=4,
        clips_per_class_speaker=max(1, clips // 16),
        min_seconds=1.5,
        max_seconds=3.0,
        mel_bins=80,
        spec_size=128,
        face_size=112,
        word_dim=300,
        compression="gzip",
        face_texture="photo",
    )


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return out


def _memory(procs: list[psutil.Process]) -> dict[str, float]:
    rss = pss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1)}


def measure(
    root: Path,
    mods: list[str],
    workers: int,
    cache: bool,
    batch: int,
    epochs: int,
    seconds: float,
) -> dict:
    cfg = load_params(REPO / "params.yaml").section("train")
    cfg = replace(
        cfg,
        modalities=tuple(mods),
        cache_clips=cache,
        num_workers=workers,
        checkpoint_dir=str(root / "cache"),
    )
    data = CorpusData(Layout(spec(0).corpus, root=root), cfg)
    ds = data.dataset(list(data.entries), mods, window_seconds=1.5, views=2, random_windows=True)
    me = psutil.Process()
    t0 = time.perf_counter()
    loader, sampler = make_loader(ds, batch, DistContext(), True, 0)
    sampler.set_epoch(0)
    for _ in loader:  # warm-up: the cache built, workers started, files opened
        pass
    first = time.perf_counter() - t0
    procs = _tree(me)
    c0, t0 = _cpu(procs), time.perf_counter()
    done = 0
    while done < epochs or time.perf_counter() - t0 < seconds:
        done += 1
        sampler.set_epoch(done)
        for _ in loader:
            pass
    wall = time.perf_counter() - t0
    c1 = _cpu(procs)
    memory = _memory(procs)
    windows = 2 * len(ds) * done
    main = c1.get(me.pid, 0.0) - c0.get(me.pid, 0.0)
    work = sum(c1[p] - c0.get(p, 0.0) for p in c1 if p != me.pid)
    del loader  # stops the workers
    # the bounds an idle machine would give: its cores, each worker, the training process
    cores, tiny = len(os.sched_getaffinity(0)), 1e-12
    limits = [windows / max(main, tiny)]
    if workers:
        limits += [cores * windows / max(main + work, tiny), workers * windows / max(work, tiny)]
    return {
        "modalities": mods,
        "workers": workers,
        "cache_clips": cache,
        "clips": len(ds),
        "batch": batch,
        "first_epoch_seconds": round(first, 3),
        "epochs": done,
        "windows_per_second": round(windows / wall, 1),
        "cpu_ms_per_window": round(1000 * (main + work) / windows, 4),
        "main_cpu_ms_per_window": round(1000 * main / windows, 4),
        "workers_cpu_ms_per_window": round(1000 * work / windows, 4),
        "idle_machine_windows_per_second": round(min(limits), 1),
        **memory,
    }


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2, help="at least this many timed epochs")
    ap.add_argument("--seconds", type=float, default=8.0, help="and at least this long")
    ap.add_argument("--root", default="", help="reuse (or make) the corpus here")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--cache", nargs="*", default=["off", "on"], choices=["off", "on"])
    ap.add_argument("--workers", nargs="*", type=int, default=sorted({0, 1, 2, cores}))
    ap.add_argument("--out", default=str(REPO / "bench/results/loader.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    result: dict = {
        "benchmark": "loader",
        "command": " ".join(sys.argv),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": cores,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_at_start": os.getloadavg(),
        },
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        t0 = time.perf_counter()
        if not (root / "manifests").exists():
            scheme = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4)
            write_synthetic_corpus(root, spec(args.clips), ALL, [scheme])
        result["corpus_seconds"] = round(time.perf_counter() - t0, 1)
        for case in args.cases:
            for cache in args.cache:
                base = None
                for w in args.workers:
                    row = {
                        "case": case,
                        **measure(
                            root,
                            CASES[case],
                            w,
                            cache == "on",
                            args.batch,
                            args.epochs,
                            args.seconds,
                        ),
                    }
                    if w == 0:
                        base = row["windows_per_second"], row["idle_machine_windows_per_second"]
                    if base:
                        row["speedup_vs_0_workers"] = round(row["windows_per_second"] / base[0], 2)
                        row["idle_machine_speedup_vs_0_workers"] = round(
                            row["idle_machine_windows_per_second"] / base[1], 2
                        )
                    result["results"].append(row)
                    print(json.dumps(row), flush=True)
        cache_dir = root / "cache"
        result["cache_bytes"] = sum(p.stat().st_size for p in cache_dir.rglob("*.bin"))
    result["machine"]["load_average_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
