"""Training step time per method and precision, and a loader-fed pretraining run.

The methods at the presets' model sizes: ``pretrain`` (MPUC, ``ravdess-mpuc``: R(2+1)D-18
faces + TCN mel + ST-GCN landmarks, two 3 s windows a clip), ``probe`` (the frozen
encoder's features: its forward pass, no gradient), ``unimodal_faces``, ``late_fusion`` and
``attention`` (``ravdess-mpuc``), ``qian_han`` (``iemocap-qianhan``: spectrogram CNN on up to
10 segments + 2-layer LSTM on 30 word vectors, with the regularizer). Inputs come from a
synthetic corpus of RAVDESS-like clips (3-4.5 s; 112 x 112 face crops, 80 mel bands, 68
landmarks, 300-d words, 128 x 128 spectrogram segments), decoded once (``cache_clips``).

1. ``steps``: for each method and precision, a few batches are read first, then
   ``--warmup`` + ``--steps`` optimisation steps (``train_step``: forward, loss, backward,
   update) are timed on them: wall and CPU seconds a step, windows a second, and the
   floating-point operations of a window (matmuls and convolutions, forward and backward,
   counted by ``torch.utils.flop_counter``). Reading is left out (``bench_loader.py``).
2. ``--epoch``: pretraining as it runs, fed by its DataLoader (``--workers``, pinned memory
   on CUDA): steps/s, windows/s, the share of time spent waiting for data, peak GPU memory,
   GPU utilisation sampled from ``nvidia-smi`` every 200 ms.
3. ``--sync-check``: steps of every method with the backbones' sync-free paths under
   :class:`~pipeline.training.hostsync.HostSyncs` (and, on CUDA, with
   ``torch.cuda.set_sync_debug_mode("error")``): the host reads a step makes.

On a CPU the batch is small (``--batch``, default 4 clips: the R(2+1)D backward holds ~256 MB
a window); ``--paper-batch`` takes the presets' batches (32 / 64). Prints and saves JSON.

    .venv/bin/python bench/bench_train_step.py                   # this CPU, fp32 and bf16
    .venv/bin/python bench/bench_train_step.py --device cuda --paper-batch --epoch --sync-check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from pipeline.config import FoldScheme, params_from_dict  # noqa: E402
from pipeline.models.common import sync_free_paths  # noqa: E402
from pipeline.models.factory import build_encoder  # noqa: E402
from pipeline.paths import Layout  # noqa: E402
from pipeline.reproduce import load_preset, merge, preset_path  # noqa: E402
from pipeline.training.data import CorpusData  # noqa: E402
from pipeline.training.dataset import fit_standardizer  # noqa: E402
from pipeline.training.distributed import distributed  # noqa: E402
from pipeline.training.evaluate import Evaluator  # noqa: E402
from pipeline.training.hostsync import HostSyncs  # noqa: E402
from pipeline.training.loops.common import to_device  # noqa: E402
from pipeline.training.loops.fit import make_optimizer, train_step  # noqa: E402
from pipeline.training.loops.pretrain import PretrainTask  # noqa: E402
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus  # noqa: E402

METHODS = ("pretrain", "probe", "unimodal_faces", "late_fusion", "attention", "qian_han")
MODALITIES = ("mel", "spectrogram", "faces", "landmarks", "words")
TINY = {  # the code path in seconds on a CPU (dry runs)
    "feature_dim": 16,
    "projection_hidden": 16,
    "tcn": {"bn_chan": 8, "hid_chan": 8, "n_blocks": 2, "n_repeats": 1},
    "stgcn": {"channels": 4, "spatial_channels": 2},
    "transformer": {"d_model": 8, "heads": 2, "layers": 1, "ff_dim": 16},
    "r2plus1d": {"layers": [1, 1, 1, 1]},
    "lstm": {"hidden": 8, "layers": 1},
    "spec_cnn": {"channels": 2, "layers": 2},
}


def corpus_spec(clips: int, tiny: bool) -> SyntheticSpec:
    return SyntheticSpec(
        n_classes=8 if clips >= 32 else 2,
        n_speakers=4,
        clips_per_class_speaker=max(1, clips // (4 * (8 if clips >= 32 else 2))),
        min_seconds=3.0,
        max_seconds=4.5,
        mel_bins=16 if tiny else 80,
        spec_size=32 if tiny else 128,
        face_size=16 if tiny else 112,
        word_dim=12 if tiny else 300,
        compression="lzf",
        face_texture="noise" if tiny else "photo",
    )


def preset_raw(name: str) -> dict[str, Any]:
    return load_preset(preset_path(name)).get("params") or {}


def bench_params(
    root: Path, device: str, precision: str, workers: Any, tiny: bool, threads: int = 0
):
    """params.yaml with the ravdess-mpuc trainer and iemocap-qianhan's Qian & Han settings."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    raw = merge(
        base,
        {
            k: v
            for k, v in preset_raw("ravdess-mpuc").items()
            if k in ("train", "pretrain", "evaluate")
        },
    )
    qh = preset_raw("iemocap-qianhan")
    raw = merge(
        raw,
        {
            "corpus": {"name": "synth"},
            "train": {
                "device": device,
                "precision": precision,
                "num_workers": workers,
                "threads": threads,
                "folds": [0],
                "seeds": [0],
                "cache_clips": True,
                "checkpoint_dir": str(root / "cache"),
                "inputs": {
                    "words": qh["train"]["inputs"]["words"],
                    "spectrogram": qh["train"]["inputs"]["spectrogram"],
                },
                "lstm": qh["train"]["lstm"],
                "spec_cnn": qh["train"]["spec_cnn"],
                **(TINY if tiny else {}),
            },
            "evaluate": {"qian_han": qh["evaluate"]["qian_han"]},
        },
    )
    if tiny:
        raw["train"]["inputs"]["mel"]["steps"] = 16
    return params_from_dict(raw)


def write_corpus(root: Path, clips: int, tiny: bool) -> float:
    t0 = time.perf_counter()
    scheme = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4, val_fraction=0.25)
    write_synthetic_corpus(root, corpus_spec(clips, tiny), MODALITIES, [scheme])
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def with_batch(pc, ec, batch: int | None):
    """The pretrain and evaluate sections with every method's batch set to ``batch``."""
    if not batch:
        return pc, ec
    pc = replace(pc, optim=replace(pc.optim, batch_size=batch))
    ec = replace(
        ec,
        probe=replace(ec.probe, optim=replace(ec.probe.optim, batch_size=batch)),
        unimodal=replace(ec.unimodal, batch_size=batch),
        late_fusion=replace(ec.late_fusion, batch_size=batch),
        attention=replace(ec.attention, optim=replace(ec.attention.optim, batch_size=batch)),
        qian_han=replace(ec.qian_han, optim=replace(ec.qian_han.optim, batch_size=batch)),
    )
    return pc, ec


def make_tasks(root: Path, params, ctx, methods, batch: int | None) -> dict[str, Any]:
    """method -> (task, optimiser settings); ``batch`` replaces the methods' batch sizes."""
    tc, pc, ec = (params.section(s) for s in ("train", "pretrain", "evaluate"))
    pc, ec = with_batch(pc, ec, batch)
    data = CorpusData(Layout("synth", root=root), tc, ec.task, ec.multilabel_threshold)
    fold = data.folds()[0]
    out = {}
    for method in methods:
        if method in ("pretrain", "probe"):
            mods = tc.modalities
            ds = data.dataset(fold.train, mods, views=tc.window.views, random_windows=True)
            torch.manual_seed(0)
            enc = build_encoder(mods, ds.input_shapes(), tc, fit_standardizer(ds, mods))
            optim = pc.optim if method == "pretrain" else ec.probe.optim
            task = PretrainTask(enc, ds, ds, tc, replace(pc, optim=optim), ctx)
            out[method] = (task, optim)
            continue
        ev = Evaluator(data, tc, ec, ctx, root / "models", root / "cache")
        name, mods = method, tc.modalities
        if method.startswith("unimodal_"):
            name, mods = "unimodal", (method.split("_", 1)[1],)
        elif method == "qian_han":
            mods = (ec.qian_han.audio, ec.qian_han.text)
        task, optim, _ = ev.supervised_task(name, tuple(mods), fold)
        out[method] = (task, optim)
    return out


def windows_in(task, batch) -> int:
    views = len(batch["views"]) if isinstance(task, PretrainTask) else 1
    return views * len(batch["index"])


def time_steps(method: str, task, optim, steps: int, warmup: int) -> dict[str, Any]:
    """Steps on batches read beforehand (no loading in the timing)."""
    device = task.ctx.device
    batches = []
    for b in task.batches(0):
        batches.append(b)
        if len(batches) >= min(steps + warmup, 4):
            break
    windows = windows_in(task, batches[0])
    if method == "probe":  # the frozen encoder's forward pass, as the probe's features
        enc = task.model.eval()

        def step(b):
            with torch.no_grad(), task.precision.autocast():
                view = to_device(b["views"][0], device)
                return [br(view[m]["x"], view[m]["mask"]) for m, br in enc.branches.items()]

        windows = len(batches[0]["index"])
    else:
        optimizer = make_optimizer(task.model.parameters(), optim)
        scaler = task.precision.grad_scaler()
        task.model.train()

        def step(b):
            return train_step(task, b, optimizer, scaler)

    with FlopCounterMode(display=False) as flops:  # matmuls and convolutions, one step
        step(batches[0])
    walls, cpus = [], []
    for k in range(warmup + steps if steps else 0):
        b = batches[k % len(batches)]
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        step(b)
        _sync(device)
        if k >= warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    sec = statistics.median(walls) if walls else None  # --steps 0: operations only
    return {
        "method": method,
        "precision": task.precision.name,
        "windows_per_step": windows,
        "seconds_per_step": round(sec, 4) if sec else None,
        "cpu_seconds_per_step": round(statistics.median(cpus), 4) if cpus else None,
        "windows_per_second": round(windows / sec, 2) if sec else None,
        "gflop_per_window": round(flops.get_total_flops() / windows / 1e9, 2),
        "steps_timed": steps,
    }


class GpuSampler:
    """``nvidia-smi`` utilisation and memory every 200 ms while active."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.proc: subprocess.Popen | None = None
        self.error = ""

    def __enter__(self) -> GpuSampler:
        exe = shutil.which("nvidia-smi")
        if exe is None:
            self.error = "nvidia-smi not found: not measured"
            return self
        cmd = [
            exe,
            "--query-gpu=utilization.gpu,memory.used",
            "--format=csv,noheader,nounits",
            "-lms",
            "200",
            "-i",
            str(max(torch.cuda.current_device(), 0)),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                util, mem = (float(v) for v in line.split(","))
            except ValueError:
                continue
            self.samples.append((util, mem))

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_utilisation": self.error or "no samples: not measured"}
        util = [u for u, _ in self.samples]
        return {
            "gpu_utilisation_mean_percent": round(statistics.mean(util), 1),
            "gpu_utilisation_median_percent": statistics.median(util),
            "gpu_memory_used_max_mib": max(m for _, m in self.samples),
            "gpu_samples": len(util),
        }


def loader_fed(task, optim, steps: int, warmup: int) -> dict[str, Any]:
    """Pretraining as it runs: batches from the DataLoader, timed with the waits for data."""
    device = task.ctx.device
    optimizer = make_optimizer(task.model.parameters(), optim)
    scaler = task.precision.grad_scaler()
    task.model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    done, windows, wait, epoch = 0, 0, 0.0, 0
    sampler = GpuSampler() if device.type == "cuda" else nullcontext()
    t_start = None
    with sampler:
        while done < warmup + steps:
            it = iter(task.batches(epoch))
            while done < warmup + steps:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                if done == warmup:
                    _sync(device)
                    t_start, wait, windows = time.perf_counter(), 0.0, 0
                    t0 = t_start
                wait += time.perf_counter() - t0
                train_step(task, batch, optimizer, scaler)
                windows += windows_in(task, batch)
                done += 1
            epoch += 1
        _sync(device)
        wall = time.perf_counter() - t_start
    out = {
        "precision": task.precision.name,
        "steps_timed": steps,
        "batch_clips": optim.batch_size,
        "workers": task.loader.loader.num_workers,
        "steps_per_second": round(steps / wall, 3),
        "windows_per_second": round(windows / wall, 1),
        "data_wait_share": round(wait / wall, 3),
    }
    if device.type == "cuda":
        out["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
        out.update(sampler.summary())
    else:
        out["gpu_utilisation"] = "not measured (CPU)"
    return out


def sync_check(tasks: dict[str, Any]) -> dict[str, Any]:
    """Host reads in two steps of every method (sync-free backbone paths)."""
    out = {}
    for method, (task, optim) in tasks.items():
        if method == "probe":
            continue
        device = task.ctx.device
        optimizer = make_optimizer(task.model.parameters(), optim)
        scaler = task.precision.grad_scaler()
        batch = next(iter(task.batches(0)))
        train_step(task, batch, optimizer, scaler)  # first-call work (cuDNN choices) first
        _sync(device)
        error = None
        with sync_free_paths(), HostSyncs() as syncs:
            if device.type == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(2):
                    train_step(task, batch, optimizer, scaler)
            except RuntimeError as e:
                error = str(e).splitlines()[0]
            finally:
                if device.type == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
        out[method] = {
            "host_reads": [f"{op} at {where}" for op, where in syncs.events],
            "cuda_sync_debug_error": error
            if device.type == "cuda"
            else "not measured (CPU: no CUDA sync debug mode)",
            "ok": not syncs.events and error is None,
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4, help="clips a step (CPU default)")
    ap.add_argument("--paper-batch", action="store_true", help="the presets' batch sizes")
    ap.add_argument("--clips", type=int, default=64, help="synthetic clips (a quarter test)")
    ap.add_argument("--sizes", default="full", choices=["full", "tiny"])
    ap.add_argument("--epoch", action="store_true", help="also pretraining fed by its loader")
    ap.add_argument("--epoch-steps", type=int, default=20)
    ap.add_argument("--workers", default="auto", help="DataLoader workers for --epoch")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: CPU time per core; 0: all)"
    )
    ap.add_argument("--sync-check", action="store_true")
    ap.add_argument("--skip-steps", action="store_true", help="only --epoch / --sync-check")
    ap.add_argument("--root", default="", help="reuse (or make) the corpus here")
    ap.add_argument("--out", default=str(REPO / "bench/results/train_step.json"))
    args = ap.parse_args()
    tiny = args.sizes == "tiny"
    batch = None if args.paper_batch else args.batch
    workers = args.workers if args.workers == "auto" else int(args.workers)
    result: dict[str, Any] = {
        "benchmark": "train_step",
        "command": " ".join(sys.argv),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": len(os.sched_getaffinity(0)),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
        },
        "sizes": args.sizes,
        "batch_clips": batch or "presets' (32; probe, attention, qian_han 64)",
        "steps": [],
    }
    out_path = Path(args.out)

    def save() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if not (root / "manifests").exists():
            result["corpus_seconds"] = round(write_corpus(root, args.clips, tiny), 1)
        for precision in args.precisions:
            # the steps are timed on batches read beforehand: no workers needed there
            params = bench_params(root, args.device, precision, 0, tiny, args.threads)
            tc = params.section("train")
            with distributed(tc.device, tc.threads, tc.precision) as ctx:
                if args.device == "cuda":
                    result["machine"]["gpu"] = torch.cuda.get_device_name(ctx.device)
                t0 = time.perf_counter()
                tasks = make_tasks(root, params, ctx, args.methods, batch)
                result.setdefault("setup_seconds", {})[precision] = round(
                    time.perf_counter() - t0, 1
                )
                if not args.skip_steps:
                    for method, (task, optim) in tasks.items():
                        row = time_steps(method, task, optim, args.steps, args.warmup)
                        result["steps"].append(row)
                        print(json.dumps(row), flush=True)
                        save()
                if args.epoch:
                    fed = bench_params(root, args.device, precision, workers, tiny, args.threads)
                    task, optim = make_tasks(root, fed, ctx, ["pretrain"], batch)["pretrain"]
                    row = loader_fed(task, optim, args.epoch_steps, args.warmup)
                    del task
                    result.setdefault("epoch", []).append(row)
                    print(json.dumps(row), flush=True)
                if args.sync_check and precision == args.precisions[-1]:
                    result["sync_check"] = sync_check(tasks)
                    print(json.dumps(result["sync_check"]), flush=True)
                del tasks
            save()
    result["machine"]["load_average_at_end"] = os.getloadavg()
    save()
    print(f"-> {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
