"""The GPU check: what a first CUDA machine has to show, in a few minutes (docs/gpu.md).

Steps, each timed, each recorded as ok / failed / not run (with the reason):

1. ``environment``: torch, its CUDA, the driver, the GPUs, and what ``device: auto`` chooses.
2. ``cuda_tests``: the tests with a CUDA branch (device choice, faces window, CPU/GPU faces,
   FAN landmarks, gloo ranks); on a GPU a skipped test counts as a failure.
3. ``faces_speed``: bench/bench_visual.py --faces-only on the GPU: faces fps on a 1280x720
   talking-head clip against decode alone on the same machine (goal: >= 300 fps a stream).
4. ``fan_speed``: landmarks with the FAN backend on that clip's faces, fps. With no 2D-FAN-4
   weights file (``--fan-weights``), an untrained FAN(4) of the same shape: speed only.
5. ``agreement``: faces on 16 sample clips on the CPU and on the GPU (same frames with a
   face, box IoU, probabilities) and FAN points on a few frames (pixels).
6. ``training``: ``bench/bench_train_step.py`` on the GPU: ravdess-mpuc pretraining fed by
   its DataLoader at the paper's batch (steps/s, windows/s, waiting for data, peak memory,
   utilisation from ``nvidia-smi``), fp32 against bf16; each method's step time; and the
   host syncs of a step (``torch.cuda.set_sync_debug_mode("error")``, HostSyncs).
7. ``torchrun_evaluate``: the evaluate stage under torchrun on 2 GPUs (when there are two):
   early stopping on, to show the ranks stop together.

``--dry-run`` runs every step it can on the CPU (small clips, small models, two gloo ranks
for torchrun) to show the check itself works; its figures say nothing about a GPU. Writes
one JSON (``--out``) after every step and prints a summary at the end.

    scripts/gpu_check.sh [--dry-run] [--wheels DIR]   # installs what is missing, then this
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()  # before torch runs: the CPU side computes as the stages do


class CannotRunError(Exception):
    """A step that cannot run here (the reason is recorded)."""


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dry = args.dry_run
        self.device = "cpu" if self.dry else "cuda"
        self.work = Path(tempfile.mkdtemp(prefix="mer-gpu-check-"))
        self.out = Path(args.out)
        self.doc: dict[str, Any] = {
            "dry_run": self.dry,
            "device": self.device,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "steps": {},
        }
        self.tiny = args.sizes == "tiny" or (args.sizes == "auto" and self.dry)
        self.clip: Path | None = None
        self.faces_dir: Path | None = None

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")

    def run(self, name: str, fn) -> None:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            out = {"status": "ok", **fn()}
        except CannotRunError as e:
            out = {"status": "not run", "reason": str(e)}
        except Exception as e:  # noqa: BLE001 - a failed step is recorded, the rest go on
            out = {
                "status": "failed",
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc().splitlines()[-12:],
            }
        out["seconds"] = round(time.perf_counter() - t0, 1)
        self.doc["steps"][name] = out
        self.save()
        print(f"   {out['status']} in {out['seconds']} s", flush=True)

    # -- steps ---------------------------------------------------------------------------
    def environment(self) -> dict:
        import torch

        from pipeline.devices import cuda_status

        st = cuda_status()
        out = {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_cuda": st.torch_cuda,
            "driver": st.driver,
            "gpus": list(st.names),
            "auto_chooses": "cuda" if st.usable else "cpu",
            "reason": st.reason,
            "arch_list": torch.cuda.get_arch_list() if torch.version.cuda else [],
        }
        if st.usable:
            out["capabilities"] = [
                ".".join(map(str, torch.cuda.get_device_capability(i))) for i in range(st.n_devices)
            ]
        if not self.dry and not st.usable:
            raise RuntimeError(f"CUDA cannot be used here: {st.reason} (run with --dry-run)")
        return out

    def cuda_tests(self) -> dict:
        tests = [
            "tests/test_devices.py",
            "tests/test_distributed.py",
            "tests/test_faces.py::test_decoding_streams_through_a_bounded_window",
            "tests/test_faces.py::test_the_window_on_a_gpu_is_cuda_batch_size",
            "tests/test_faces.py::test_cpu_and_gpu_agree",
            "tests/test_landmarks.py::test_fan_backend_loads_local_weights_and_matches_face_alignment",
            "tests/test_landmarks.py::test_fan_stage_end_to_end_on_a_short_clip",
        ]
        cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests]
        res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        tail = (res.stdout + res.stderr).strip().splitlines()[-15:]
        summary = tail[-1] if tail else ""
        skipped = [line for line in tail if line.startswith("SKIPPED")]
        out = {"summary": summary, "skipped": skipped, "returncode": res.returncode}
        if res.returncode != 0:
            raise RuntimeError(f"tests failed: {summary}\n" + "\n".join(tail))
        if skipped and not self.dry:
            raise RuntimeError(f"tests skipped on a GPU machine: {skipped}")
        return out

    def _clip(self, short: bool = False) -> Path:
        """A 1280x720 30 fps talking-head clip (10 s; 1 s in a dry run), or its first 10
        frames (``short``; 4 in a dry run), generated once."""
        from pipeline.media.synthetic import encode_video, talking_head_frames

        name = "talking_head_short.mp4" if short else "talking_head_1280x720.mp4"
        path = self.work / name
        if not path.exists():
            n = (4 if self.dry else 10) if short else (30 if self.dry else 300)
            encode_video(path, talking_head_frames(n, 1280, 720, 30.0), fps=30)
        return path

    def faces_speed(self) -> dict:
        seconds, reps = ("1", "1") if self.dry else ("10", "2")
        out_json = self.work / "visual.json"
        cmd = [
            sys.executable,
            str(REPO / "bench/bench_visual.py"),
            "--faces-only",
            "--device",
            self.device,
            "--seconds",
            seconds,
            "--reps",
            reps,
            "--out",
            str(out_json),
        ]
        res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError((res.stdout + res.stderr)[-3000:])
        clip = json.loads(out_json.read_text())["clip_1280x720"]
        fps = clip["fps"]
        return {
            "device": clip["device"],
            "batch_size": clip["batch_size"],
            "frames": clip["frames"],
            "faces_fps": fps["faces"],
            "decode_only_fps": fps["decode"],
            "decode_rgb_fps": fps["decode_rgb"],
            "faces_over_decode": clip["faces_over_decode"],
            "goal_fps": 300,
            "meets_goal": fps["faces"] >= 300,
            "time_share": clip["faces_time_share"],
            "face_rate": clip["face_rate"],
        }

    def _faces_shards(self) -> Path:
        """The 1280x720 clip's faces (on this run's device), as shards for landmarks."""
        if self.faces_dir is None:
            from pipeline.config import load_params, to_dict
            from pipeline.features import ClipSource, make_extractor
            from pipeline.store import ShardWriter

            cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
            faces = make_extractor("faces", {**cfg, "device": self.device})
            self.faces_dir = self.work / "faces"
            with ShardWriter(
                self.faces_dir,
                feature="faces",
                params={"feature": "faces", **faces.cache_token()},
                provenance=faces.provenance(),
                primary="crops",
            ) as w:
                for clip in (self._clip(), self._clip(short=True)):
                    src = ClipSource(clip_id=clip.stem, path=clip)
                    w.add(src.clip_id, faces.extract(src), source_sha256=src.sha256)
        return self.faces_dir

    def _fan_weights(self) -> tuple[Path, str]:
        if self.args.fan_weights:
            path = Path(self.args.fan_weights)
            if not path.is_file():
                raise CannotRunError(f"--fan-weights {path}: no such file")
            return path, f"2D-FAN-4 weights {path}"
        import torch
        from face_alignment.models import FAN

        torch.manual_seed(0)
        path = self.work / "fan4-untrained.pth"
        torch.save(FAN(4).state_dict(), path)
        return path, "untrained FAN(4) (no weights file given): speed only, points meaningless"

    def fan_speed(self) -> dict:
        from pipeline.config import load_params, to_dict
        from pipeline.features import ClipSource, make_extractor

        weights, what = self._fan_weights()
        clip = self._clip(short=self.dry)  # FAN on a CPU: about a second a face
        cfg = to_dict(load_params(REPO / "params.yaml").section("landmarks"))
        cfg.update(
            backend="fan",
            fan_weights=str(weights),
            fan_sha256="",
            device=self.device,
            faces_dir=str(self._faces_shards()),
        )
        lm = make_extractor("landmarks", cfg)
        lm.ensure_setup()
        src = ClipSource(clip_id=clip.stem, path=clip)
        import torch

        warm = torch.zeros(cfg["fan_batch_size"], 3, 256, 256, device=lm.landmarker.device)
        with torch.inference_mode():
            lm.landmarker.net(warm)  # first-call costs (cuDNN autotuning) are not throughput
        _sync()
        t0 = time.perf_counter()
        feats = lm.extract(src)
        _sync()
        dt = time.perf_counter() - t0
        n = len(feats.timestamps)
        return {
            "device": lm.device,
            "weights": what,
            "flip": cfg["fan_flip"],
            "batch_size": cfg["fan_batch_size"],
            "frames": n,
            "fps": round(n / dt, 1),
            "decode_included": True,
        }

    def agreement(self) -> dict:
        import numpy as np

        from pipeline.config import load_params, to_dict
        from pipeline.features import ClipSource, make_extractor
        from pipeline.vision.boxes import iou

        sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
        if not sample:
            raise CannotRunError("no sample corpus under data/sample")
        picks = [
            sample[i]
            for i in np.linspace(0, len(sample) - 1, 4 if self.dry else 16).round().astype(int)
        ]
        cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
        cpu = make_extractor("faces", {**cfg, "device": "cpu"})
        dev = make_extractor("faces", {**cfg, "device": self.device})
        min_iou, max_dprob, valid_mismatch, worst = 1.0, 0.0, 0, ""
        for clip in picks:
            src = ClipSource(clip_id=clip.stem, path=clip)
            a, b = cpu.extract(src), dev.extract(src)
            valid_mismatch += int((a.valid != b.valid).sum())
            both = a.valid & b.valid
            if both.any():
                m = float(iou(a.arrays["boxes"], b.arrays["boxes"])[both].min())
                if m < min_iou:
                    min_iou, worst = m, clip.name
            max_dprob = max(max_dprob, float(np.abs(a.arrays["probs"] - b.arrays["probs"]).max()))
        out = {
            "compared": f"cpu vs {self.device}"
            + (" (dry run: the code path only, not a GPU figure)" if self.dry else ""),
            "faces_clips": len(picks),
            "faces_frames_with_face_differing": valid_mismatch,
            "faces_min_box_iou": round(min_iou, 4),
            "faces_min_iou_clip": worst,
            "faces_max_prob_diff": float(f"{max_dprob:.3g}"),
            "faces_within_test_tolerance": valid_mismatch == 0
            and min_iou > 0.95
            and max_dprob <= 1e-3,
        }
        weights, what = self._fan_weights()
        lm_cfg = to_dict(load_params(REPO / "params.yaml").section("landmarks"))
        lm_cfg.update(
            backend="fan",
            fan_weights=str(weights),
            fan_sha256="",
            faces_dir=str(self._faces_shards()),
        )
        clip = self._clip(short=True)
        part = ClipSource(clip_id=clip.stem, path=clip)
        a = make_extractor("landmarks", {**lm_cfg, "device": "cpu"}).extract(part)
        b = make_extractor("landmarks", {**lm_cfg, "device": self.device}).extract(part)
        d = np.linalg.norm(a.arrays["landmarks"] - b.arrays["landmarks"], axis=-1)
        out.update(
            fan_frames=int(len(a.timestamps)),
            fan_weights=what,
            fan_max_point_diff_px=float(f"{np.nanmax(d):.3g}") if np.isfinite(d).any() else None,
        )
        return out

    def _training_params(self, root: Path, methods: list[str], epochs: int, patience: int):
        import yaml

        base = yaml.safe_load((REPO / "params.yaml").read_text())
        optim = {"max_epochs": epochs, "patience": patience, "step_epochs": 0}
        train = base["train"]
        train.update(
            modalities=["faces", "mel", "landmarks", "words"],
            scheme="actor_kfold",
            folds=[0],
            device=self.device,
            threads=0,
            cache_clips=True,
            checkpoint_dir=str(root / "checkpoints"),
            checkpoint_seconds=3600,
            window={"seconds": 1.0, "views": 2},
        )
        train["inputs"].update(
            mel={"array": "mel", "steps": 30, "mode": "time", "backbone": "tcn"},
            spectrogram={
                "array": "spectrogram",
                "steps": 1,
                "mode": "sequence",
                "backbone": "spec_cnn",
            },
        )
        if self.tiny:  # small models: the code path, in seconds on a CPU
            train.update(feature_dim=16, projection_hidden=16)
            train["tcn"].update(bn_chan=8, hid_chan=8, n_blocks=2)
            train["stgcn"].update(channels=4, spatial_channels=2)
            train["transformer"].update(d_model=8, heads=2, layers=1, ff_dim=16)
            train["r2plus1d"]["layers"] = [1, 1, 1, 1]
            train["lstm"].update(hidden=8, layers=1)
        pre = base["pretrain"]
        pre["optim"].update(optim)
        ev = base["evaluate"]
        ev["methods"] = methods
        for m in ("unimodal", "late_fusion"):
            ev[m].update(optim)
        ev["attention"]["optim"].update(optim)
        ev["probe"]["optim"].update(optim)
        ev["qian_han"].update(audio="spectrogram", text="words")
        ev["qian_han"]["optim"].update(optim)
        return {"corpus": {"name": "synth"}, "train": train, "pretrain": pre, "evaluate": ev}

    def _synthetic(self) -> Path:
        from pipeline.config import FoldScheme
        from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus

        root = self.work / "synth"
        if not (root / "manifests").exists():
            spec = SyntheticSpec(
                n_classes=4,
                n_speakers=4,
                clips_per_class_speaker=2,
                face_size=16 if self.tiny else 112,
                mel_bins=16 if self.tiny else 128,
                spec_size=32 if self.tiny else 128,
                word_dim=12 if self.tiny else 300,
            )
            scheme = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4, val_fraction=0.3)
            modalities = ("mel", "spectrogram", "faces", "landmarks", "words")
            write_synthetic_corpus(root, spec, modalities=modalities, schemes=[scheme])
        return root

    def training(self) -> dict:
        """bench/bench_train_step.py on this device: pretraining of ravdess-mpuc fed by its
        DataLoader (a RAVDESS-shaped synthetic corpus, the paper's batch of 32 clips, fp32
        and bf16), every method's step time, and the host syncs of a step."""
        out_json = self.work / "train_step.json"
        sizes = ["--sizes", "tiny" if self.tiny else "full"]
        if self.dry:  # the code path on the CPU, in about a minute with tiny models
            sizes += ["--clips", "16", "--batch", "2", "--steps", "1", "--epoch-steps", "2"]
            sizes += ["--workers", "1", "--threads", "1"]
        else:  # ~3 minutes: corpus ~1, 2 x (setup, 6 methods x 7 steps, 32 loader-fed steps)
            sizes += ["--clips", "256", "--paper-batch", "--steps", "5", "--warmup", "2"]
            sizes += ["--epoch-steps", "30", "--workers", "auto", "--threads", "0"]
        cmd = [
            sys.executable,
            str(REPO / "bench/bench_train_step.py"),
            "--device",
            self.device,
            "--precisions",
            "fp32",
            "bf16",
            "--epoch",
            "--sync-check",
            *sizes,
            "--out",
            str(out_json),
        ]
        res = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=330)
        if res.returncode != 0:
            raise RuntimeError((res.stdout + res.stderr)[-4000:])
        doc = json.loads(out_json.read_text())
        steps = {}
        for row in doc["steps"]:
            steps.setdefault(row["method"], {})[row["precision"]] = row["seconds_per_step"]
        for times in steps.values():
            if times.get("fp32") and times.get("bf16"):
                times["bf16_speedup"] = round(times["fp32"] / times["bf16"], 2)
        syncs = doc.get("sync_check", {})
        bad = {m: v for m, v in syncs.items() if not v["ok"]}
        if bad:
            raise RuntimeError(f"host syncs in a training step: {json.dumps(bad)}")
        return {
            "device": self.device,
            "model_sizes": doc["sizes"],
            "batch_clips": doc["batch_clips"],
            "corpus_seconds": doc.get("corpus_seconds"),
            "pretrain_fed_by_loader": doc.get("epoch", []),
            "seconds_per_step": steps,
            "sync_check": {m: "no host reads" if v["ok"] else v for m, v in syncs.items()},
            "gpu_note": "" if not self.dry else "dry run: CPU figures, GPU not measured",
        }

    def torchrun_evaluate(self) -> dict:
        import torch
        import yaml

        if not self.dry and torch.cuda.device_count() < 2:
            raise CannotRunError(f"{torch.cuda.device_count()} GPU here: the 2-GPU run needs two")
        root = self._synthetic()
        raw = self._training_params(root, ["late_fusion", "qian_han"], 4, 1)
        (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29517",
            str(REPO / "stages/evaluate.py"),
            "--params",
            "params.yaml",
            "--quiet",
        ]
        env = _env()
        env["OMP_NUM_THREADS"] = "1"
        res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError((res.stdout + res.stderr)[-4000:])
        report = json.loads((root / "data/reports/synth/evaluate.json").read_text())
        # Each rank logs every run's last epoch with its values; rank 0's values are
        # broadcast, so the two ranks' lines must be the same, line for line.
        ends = [ln.split(": ", 1)[1] for ln in res.stderr.splitlines() if " epoch " in ln]
        unpaired = sorted({e for e in ends if ends.count(e) != 2})
        if unpaired:
            raise RuntimeError(f"the ranks disagree on their last epochs: {unpaired}")
        return {
            "last_epoch_lines": sorted(set(ends)),
            "ranks": 2,
            "backend": "gloo (CPU, dry run)" if self.dry else "nccl",
            "methods": raw["evaluate"]["methods"],
            "max_epochs": 4,
            "patience": 1,
            "report_keys": sorted(report)[:12],
        }


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def loaded_distributions() -> list[str]:
    """name==version of every installed distribution this process imported from (the
    wheel list of scripts/gpu_check.sh is checked against it)."""
    import importlib.metadata as md

    owners = md.packages_distributions()
    names = {d for m in list(sys.modules) for d in owners.get(m.split(".")[0], [])}
    out = []
    for n in sorted(names, key=str.lower):
        try:
            out.append(f"{n}=={md.version(n)}")
        except md.PackageNotFoundError:
            continue
    return out


def summary(doc: dict) -> str:
    lines = [f"GPU check ({'dry run on the CPU' if doc['dry_run'] else 'on the GPU'})"]
    for name, st in doc["steps"].items():
        head = f"  {name:<18} {st['status']:<8} {st['seconds']:>6} s"
        if st["status"] == "ok":
            if name == "environment":
                head += f"  torch {st['torch']}, auto -> {st['auto_chooses']} ({st['reason']})"
            elif name == "faces_speed":
                head += (
                    f"  faces {st['faces_fps']} fps vs decode {st['decode_only_fps']} fps on "
                    f"{st['device']} (goal 300)"
                )
            elif name == "fan_speed":
                head += f"  {st['fps']} fps on {st['device']} ({st['weights'].split(':')[0]})"
            elif name == "agreement":
                head += (
                    f"  faces min IoU {st['faces_min_box_iou']}, max dprob "
                    f"{st['faces_max_prob_diff']}, FAN max {st['fan_max_point_diff_px']} px"
                )
            elif name == "training":
                head += "  " + "; ".join(
                    f"pretrain {r['precision']} {r['steps_per_second']} steps/s, "
                    f"{r['windows_per_second']} windows/s, data wait {r['data_wait_share']}"
                    for r in st["pretrain_fed_by_loader"]
                )
            elif name == "cuda_tests":
                head += f"  {st['summary']}"
        else:
            head += f"  {st.get('reason') or st.get('error', '')[:300]}"
        lines.append(head)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="every step the CPU can run")
    ap.add_argument("--out", default=str(REPO / "bench/results/gpu_check.json"))
    ap.add_argument("--fan-weights", default="", help="a 2D-FAN-4 state dict (else untrained)")
    ap.add_argument("--only", nargs="*", default=[], help="run only these steps")
    ap.add_argument(
        "--sizes",
        choices=["auto", "tiny", "full"],
        default="auto",
        help="training model sizes: full (params.yaml) on a GPU, tiny in a dry run (auto)",
    )
    args = ap.parse_args()
    check = Check(args)
    steps = [
        ("environment", check.environment),
        ("cuda_tests", check.cuda_tests),
        ("faces_speed", check.faces_speed),
        ("fan_speed", check.fan_speed),
        ("agreement", check.agreement),
        ("training", check.training),
        ("torchrun_evaluate", check.torchrun_evaluate),
    ]
    t0 = time.perf_counter()
    for name, fn in steps:
        if args.only and name not in args.only and name != "environment":
            continue
        check.run(name, fn)
        if name == "environment" and check.doc["steps"][name]["status"] != "ok":
            break
    check.doc["seconds"] = round(time.perf_counter() - t0, 1)
    check.doc["distributions_loaded"] = loaded_distributions()
    check.save()
    shutil.rmtree(check.work, ignore_errors=True)
    print()
    print(summary(check.doc))
    print(f"total {check.doc['seconds']} s; saved {check.out}")
    return 1 if any(s["status"] == "failed" for s in check.doc["steps"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
