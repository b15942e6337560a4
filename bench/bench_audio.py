"""Audio throughput: audio-seconds extracted per second on one core, decode included.

Runs in one process (one core) over the sample corpus and over a 60 s AAC clip made from
the sample's speech, for decode alone, both mel variants and the spectrogram. The first clip
is extracted once before timing (librosa's one-off compilation is not throughput). Wall and
CPU time (user + system of the process: the figure to compare on a shared machine).
``--baseline REV`` also runs it, in the same invocation, on the ``pipeline/`` of git
revision REV (e.g. a commit before a change), one after the other.
Prints and saves JSON to bench/results/audio.json.

    .venv/bin/python bench/bench_audio.py [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
# --code DIR (what --baseline passes to its child): the pipeline/ package to measure
CODE = Path(sys.argv[sys.argv.index("--code") + 1]) if "--code" in sys.argv else REPO
sys.path.insert(0, str(CODE))

from pipeline.features import make_extractor  # noqa: E402
from pipeline.features.base import ClipSource  # noqa: E402
from pipeline.media import decode_audio, probe  # noqa: E402


def long_clip(src_dir: Path, out: Path, seconds: float = 60.0) -> Path:
    """An AAC-in-mp4 file of ``seconds`` made of the sample corpus's speech back to back."""
    pieces, total = [], 0.0
    for p in sorted(src_dir.glob("Actor_*/*.mp4")):
        w = decode_audio(p, 48000)
        pieces.append(w)
        total += len(w) / 48000
        if total >= seconds:
            break
    wav = np.concatenate(pieces)[: int(seconds * 48000)]
    with av.open(str(out), "w") as c:
        s = c.add_stream("aac", rate=48000, layout="mono")
        for i in range(0, len(wav), 1024):
            frame = av.AudioFrame.from_ndarray(wav[None, i : i + 1024], format="fltp",
                                               layout="mono")
            frame.sample_rate = 48000
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    return out


def source(p: Path) -> ClipSource:
    info = probe(p)
    return ClipSource(clip_id=p.stem, path=p, fps=info.fps or 30.0, duration=info.duration,
                      has_audio=info.has_audio, has_video=info.has_video)


def measure(name: str, fn, files: list[Path], repeat: int = 1) -> dict:
    fn(files[0])  # warm-up
    audio = sum(probe(f).duration for f in files) * repeat
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        for f in files:
            fn(f)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"task": name, "files": len(files) * repeat, "audio_seconds": round(audio, 2),
            "wall_seconds": round(dt, 3), "x_realtime_per_core": round(audio / dt, 1),
            "cpu_seconds": round(cpu, 3), "x_realtime_per_cpu_second": round(audio / cpu, 1)}


def run_rows() -> list[dict]:
    import torch

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    sample = sorted((REPO / "data/sample").glob("Actor_*/*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        longf = long_clip(REPO / "data/sample", Path(tmp) / "long.mp4")
        extractors = {
            "mel_paper": make_extractor("mel"),
            "mel_code": make_extractor("mel", {"variant": "code"}),
            "spectrogram": make_extractor("spectrogram"),
        }
        rows = []
        for label, files, rep in (("sample", sample, 1), ("long60s", [longf], 3)):
            rows.append({"set": label, **measure("decode_16k", lambda f: decode_audio(f, 16000),
                                                 files, rep)})
            rows.append({"set": label, **measure("decode_22k", lambda f: decode_audio(f, 22050),
                                                 files, rep)})
            for name, ex in extractors.items():
                rows.append({"set": label,
                             **measure(name, lambda f, ex=ex: ex.extract(source(f)), files, rep)})
    return rows


def baseline_rows(rev: str) -> list[dict]:
    """:func:`run_rows` on the ``pipeline/`` of git revision ``rev``, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", rev, "pipeline"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        out = Path(tmp) / "rows.json"
        subprocess.run([sys.executable, __file__, "--code", tmp, "--rows", str(out)],
                       check=True)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", help="git revision to measure too, before this checkout")
    ap.add_argument("--code", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rows:  # a child of --baseline: measure, hand the rows back
        Path(args.rows).write_text(json.dumps(run_rows()))
        return
    runs = {}
    if args.baseline:
        runs[f"baseline {args.baseline}"] = baseline_rows(args.baseline)
    runs["this checkout"] = run_rows()
    load = os.getloadavg()
    result = {
        "benchmark": "audio",
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores_used": 1, "python": platform.python_version(),
                    "load_average_1_5_15": [round(v, 2) for v in load]},
        "results": runs["this checkout"],
        **({"baseline": {"revision": args.baseline, "results": runs[f"baseline {args.baseline}"]}}
           if args.baseline else {}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_x_realtime_per_core": 500,
    }
    out = REPO / "bench/results/audio.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for label, rows in runs.items():
        print(label)
        for r in rows:
            print(f"  {r['set']:8s} {r['task']:12s} {r['x_realtime_per_core']:8.1f}x real time "
                  f"({r['audio_seconds']} s audio in {r['wall_seconds']} s wall), "
                  f"{r['x_realtime_per_cpu_second']:8.1f}x per CPU second ({r['cpu_seconds']} s)")
    print(f"load average {load}; peak RSS {result['peak_rss_mb']} MB -> {out}")


if __name__ == "__main__":
    main()
