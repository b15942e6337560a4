"""What ``faces.select: speaker`` costs per clip, with each backend, against ``confidence``.

On the committed two-face test clips (``tests/data/speaker/``: 3 s, 25 fps, 400 x 150, two
real faces), the faces extractor runs with ``select: confidence``, ``speaker`` with the lips
backend and ``speaker`` with the SyncNet backend; each is run once to load its models, then
``--reps`` times, timed in CPU seconds (user + sys of this process, the figure that does not
depend on the machine's load) and wall seconds. One torch thread, as the runner's workers.

Without ``--syncnet-model`` the SyncNet backend runs a seeded untrained network (the same
layers and the same arithmetic as the authors' weights): its cost is right, its choices are
meaningless.

    .venv/bin/python bench/speaker_cost.py [--reps 3] [--syncnet-model FILE]
        [--device cpu] [--out bench/results/speaker_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()  # before torch runs: the kernels the stages use (pipeline/kernels.py)

from pipeline.config import load_params, to_dict  # noqa: E402
from pipeline.features import ClipSource, make_extractor  # noqa: E402

CLIPS = sorted((REPO / "tests/data/speaker").glob("*.mp4"))


def untrained_weights(path: Path) -> Path:
    import torch

    from pipeline.vision.syncnet_net import SyncNet

    torch.manual_seed(0)
    torch.save(SyncNet().state_dict(), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--syncnet-model", type=Path, help="the SyncNet weights (default: untrained)")
    ap.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/speaker_cost.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    base = to_dict(load_params(REPO / "params.yaml").section("faces"))
    base["device"] = args.device
    with tempfile.TemporaryDirectory() as tmp:
        model = args.syncnet_model or untrained_weights(Path(tmp) / "untrained.model")
        configs = {
            "confidence": {**base, "select": "confidence"},
            "speaker_lips": {**base, "select": "speaker"},
            "speaker_syncnet": {
                **base, "select": "speaker",
                "speaker": {**base["speaker"], "backend": "syncnet", "syncnet_model": str(model)},
            },
        }  # fmt: skip
        results: dict = {}
        for name, cfg in configs.items():
            ex = make_extractor("faces", cfg)
            per_clip = {}
            for clip in CLIPS:
                src = ClipSource(clip_id=clip.stem, path=clip)
                ex.extract(src)  # loads the models; not timed
                cpu, wall = [], []
                for _ in range(args.reps):
                    t0, w0 = time.process_time(), time.perf_counter()
                    attrs = ex.extract(src).attrs
                    cpu.append(time.process_time() - t0)
                    wall.append(time.perf_counter() - w0)
                per_clip[clip.stem] = {
                    "cpu_s": round(float(np.median(cpu)), 3),
                    "wall_s": round(float(np.median(wall)), 3),
                    "status": attrs.get("speaker_status", ""),
                }
                print(f"{name:16s} {clip.stem:10s} cpu {per_clip[clip.stem]['cpu_s']:.2f} s "
                      f"wall {per_clip[clip.stem]['wall_s']:.2f} s", flush=True)
            results[name] = per_clip
    ref = {c: results["confidence"][c]["cpu_s"] for c in results["confidence"]}
    doc = {
        "what": "faces extractor CPU s per 3 s two-face clip, by select rule / speaker backend",
        "syncnet_weights": str(args.syncnet_model) if args.syncnet_model else "untrained",
        "device": args.device,
        "reps": args.reps,
        "results": results,
        "cpu_vs_confidence": {
            name: round(float(np.mean([r[c]["cpu_s"] / ref[c] for c in r])), 2)
            for name, r in results.items()
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_avg": os.getloadavg(),
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cores": os.cpu_count()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: doc[k] for k in ("cpu_vs_confidence", "peak_rss_mb", "load_avg")}))


if __name__ == "__main__":
    main()
