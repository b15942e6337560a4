"""Loader throughput: training windows per second out of the window Dataset.

Shards in the real layouts and sizes (gzip, as the runner writes them by default): 112 x 112
RGB face crops and 68 landmarks at 30 fps, 80-band mel frames at 30 fps, 300-d word vectors
every 0.3 s, 128 x 128 spectrogram segments, for 32 clips of 1.5-3 s. Each item is a clip's
two random 1.5 s windows (the pretraining views) with the shipped input settings (8 face
frames, 30 landmark steps, 30 words, ...). Measured: the audio modalities and all five,
with 0 and 2 DataLoader workers, and with decoded clips cached in memory. One thread per
process. Prints and saves JSON to bench/results/loader.json.

    .venv/bin/python bench/bench_loader.py
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import FoldScheme, load_params  # noqa: E402
from pipeline.paths import Layout  # noqa: E402
from pipeline.training.data import CorpusData  # noqa: E402
from pipeline.training.distributed import DistContext  # noqa: E402
from pipeline.training.loops.common import EpochSampler  # noqa: E402
from pipeline.training.synthetic import SyntheticSpec, write_synthetic_corpus  # noqa: E402

SPEC = SyntheticSpec(
    n_classes=4,
    n_speakers=4,
    clips_per_class_speaker=2,
    min_seconds=1.5,
    max_seconds=3.0,
    mel_bins=80,
    spec_size=128,
    face_size=112,
    word_dim=300,
    compression="gzip",
)
ALL = ["mel", "spectrogram", "faces", "landmarks", "words"]
CASES = [
    ("audio", ["mel", "spectrogram"], 0, False),
    ("all", ALL, 0, False),
    ("all", ALL, 2, False),
    ("all_cached", ALL, 0, True),
]


def measure(root: Path, modalities: list[str], workers: int, cache: bool) -> dict:
    params = load_params(REPO / "params.yaml")
    cfg = params.section("train")
    cfg = replace(cfg, modalities=tuple(modalities), cache_clips=cache, scheme="actor_kfold")
    data = CorpusData(Layout(SPEC.corpus, root=root), cfg)
    ids = list(data.entries)
    ds = data.dataset(ids, modalities, window_seconds=1.5, views=2, random_windows=True)
    sampler = EpochSampler(len(ds), DistContext(), shuffle=True, seed=0)
    loader = DataLoader(
        ds, batch_size=8, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    sampler.set_epoch(0)
    t0 = time.perf_counter()
    for _ in loader:  # first epoch: worker start, file opening (and filling the cache)
        pass
    first = time.perf_counter() - t0
    epochs, t0 = 3, time.perf_counter()
    for e in range(1, 1 + epochs):
        sampler.set_epoch(e)
        for _ in loader:
            pass
    steady = (time.perf_counter() - t0) / epochs
    windows = 2 * len(ds)
    return {
        "modalities": modalities,
        "workers": workers,
        "cache_clips": cache,
        "clips": len(ds),
        "first_epoch_seconds": round(first, 3),
        "windows_per_second": round(windows / steady, 1),
        "clips_per_second": round(len(ds) / steady, 1),
    }


def main() -> None:
    torch.set_num_threads(1)
    result: dict = {
        "benchmark": "loader",
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        scheme = FoldScheme(name="actor_kfold", kind="group_kfold", n_folds=4)
        write_synthetic_corpus(root, SPEC, ALL, [scheme])
        for name, mods, workers, cache in CASES:
            row = {"case": name, **measure(root, mods, workers, cache)}
            result["results"].append(row)
            print(json.dumps(row))
    out = REPO / "bench/results/loader.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
