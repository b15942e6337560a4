"""Audio throughput: audio-seconds extracted per second on one core, decode included.

Runs in one process (one core) over the sample corpus and over a 60 s AAC clip made from
the sample's speech, for decode alone, both mel variants and the spectrogram. The first clip
is extracted once before timing (librosa's one-off compilation is not throughput).
Prints and saves JSON to bench/results/audio.json.

    .venv/bin/python bench/bench_audio.py
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

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
    t0 = time.perf_counter()
    for _ in range(repeat):
        for f in files:
            fn(f)
    dt = time.perf_counter() - t0
    return {"task": name, "files": len(files) * repeat, "audio_seconds": round(audio, 2),
            "wall_seconds": round(dt, 3), "x_realtime_per_core": round(audio / dt, 1)}


def main() -> None:
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
    result = {
        "benchmark": "audio",
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores_used": 1, "python": platform.python_version()},
        "results": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_x_realtime_per_core": 500,
    }
    out = REPO / "bench/results/audio.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for r in rows:
        print(f"{r['set']:8s} {r['task']:12s} {r['x_realtime_per_core']:8.1f}x real time "
              f"({r['audio_seconds']} s audio in {r['wall_seconds']} s)")
    print(f"peak RSS {result['peak_rss_mb']} MB -> {out}")


if __name__ == "__main__":
    main()
