"""What the pinned CPU kernels cost the faces stage (MTCNN): CPU seconds with the kernels the
stages pin (``pipeline/kernels.py``: MKL's reproducible mode, ATen's DEFAULT kernels, no
oneDNN) against PyTorch's own choice of kernels for this CPU, and partly pinned mixes.

Each setting runs in its own process (ATen and MKL read their mode once): the faces
extractor (defaults of ``params.yaml``, one torch thread) over ``--clips`` sample clips after
one untimed clip; CPU seconds (user + sys) and a digest of the stored arrays (the same digest:
the same bytes). Prints and saves JSON to bench/results/kernel_pins.json.

    .venv/bin/python bench/bench_kernel_pins.py [--clips 12]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# name: (ATEN_CPU_CAPABILITY, MKL_CBWR, oneDNN on); "" = the library's own choice
SETTINGS = {
    "pinned (as the stages run)": ("default", "COMPATIBLE,STRICT", False),
    "ATen's own kernels": ("", "COMPATIBLE,STRICT", False),
    "oneDNN on": ("default", "COMPATIBLE,STRICT", True),
    "MKL's AVX2 reproducible branch, ATen's own kernels": ("", "AVX2,STRICT", False),
    "MKL's AVX2 branch, ATen's own kernels, oneDNN on": ("", "AVX2,STRICT", True),
    "nothing pinned": ("", "", True),
}


def child(name: str, n: int) -> dict:
    aten, cbwr, onednn = SETTINGS[name]
    sys.path.insert(0, str(REPO))
    import pipeline.vision.mtcnn as mtcnn
    from pipeline.config import load_params, to_dict
    from pipeline.features import ClipSource, make_extractor

    if onednn:
        mtcnn.cpu_exact = lambda *a, **k: contextlib.nullcontext()
    if aten != "default" or cbwr != "COMPATIBLE,STRICT":
        mtcnn.pin_torch = lambda: None  # the environment above sets what is pinned
    cfg = to_dict(load_params(REPO / "params.yaml").section("faces"))
    ex = make_extractor("faces", {**cfg, "torch_threads": 1, "decode_threads": 1})
    clips = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))[: n + 1]
    ex.extract(ClipSource(clip_id="warm", path=clips[-1]))
    before = resource.getrusage(resource.RUSAGE_SELF)
    digest = hashlib.sha256()
    for c in clips[:-1]:
        feats = ex.extract(ClipSource(clip_id=c.stem, path=c))
        for key in sorted(feats.arrays):
            digest.update(feats.arrays[key].tobytes())
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    return {"setting": name, "clips": len(clips) - 1, "cpu_seconds": round(cpu, 2),
            "digest": digest.hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/kernel_pins.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.clips)))
        return
    rows = []
    for name, (aten, cbwr, _) in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
        env.update({k: v for k, v in (("ATEN_CPU_CAPABILITY", aten), ("MKL_CBWR", cbwr)) if v})
        p = subprocess.run([sys.executable, __file__, "--child", name, "--clips", str(args.clips)],
                           env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    out = {"benchmark": "kernel_pins", "load_average": os.getloadavg(), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
