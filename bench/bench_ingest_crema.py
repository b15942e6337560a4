"""Time to ingest a CREMA-D-shaped corpus of 7,442 clips made of hard links to the sample.

The corpus has CREMA-D's layout and names (91 actors × 12 sentences × 6 emotions; sentence
IEO's five non-neutral emotions at levels LO/MD/HI, the rest XX: 7,462 names, of which 20 are
dropped to match the release's 7,442), each ``VideoFlash/<name>.flv`` and
``AudioWAV/<name>.wav`` a hard link to one of the 64 sample MP4s, plus summaryTable.csv and
VideoDemographics.csv. Measured, in one process:

- ``adapter_s``: listing the clips (``CremaD.clips()``: names, tables, LFS check);
- ``ingest_s``: the ingest stage as ``mer ingest`` runs it (adapter, container probe and
  SHA-256 of every file: each FLV and the WAV its audio stages read, manifest and failures
  written).

Prints one JSON object and saves it to ``bench/results/ingest_crema_d.json``.

    .venv/bin/python bench/bench_ingest_crema.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def crema_names() -> list[str]:
    names = []
    for actor in range(1001, 1092):
        for s in SENTENCES:
            for e in EMOTIONS:
                levels = ("LO", "MD", "HI") if s == "IEO" and e != "NEU" else ("XX",)
                names += [f"{actor}_{s}_{e}_{lv}" for lv in levels]
    drop = set(names[::373][:20])  # the release lacks 20 of the 7,462 combinations
    return [n for n in names if n not in drop]


def link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build(root: Path) -> int:
    samples = sorted((REPO / "data" / "sample").glob("Actor_*/*.mp4"))
    names = crema_names()
    (root / "VideoFlash").mkdir(parents=True)
    (root / "AudioWAV").mkdir()
    for i, n in enumerate(names):
        link(samples[i % len(samples)], root / "VideoFlash" / f"{n}.flv")
        link(samples[i % len(samples)], root / "AudioWAV" / f"{n}.wav")
    (root / "processedResults").mkdir()
    with open(root / "processedResults" / "summaryTable.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "FileName", "VoiceVote", "VoiceLevel", "FaceVote", "FaceLevel",
                    "MultiModalVote", "MultiModalLevel"])  # fmt: skip
        for i, n in enumerate(names):
            v = n.split("_")[2][0]
            w.writerow([i + 1, n, v, "60", v, "70", v, "65"])
    with open(root / "VideoDemographics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
        for a in range(1001, 1092):
            w.writerow([a, 30, "Female" if a % 2 else "Male", "Caucasian", "Not Hispanic"])
    return len(names)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="build the corpus and project here and keep them")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(dir=REPO / "bench/results"))
    try:
        from pipeline.config import load_params
        from pipeline.corpora import get_adapter
        from pipeline.manifest import read_failures, read_manifest
        from pipeline.workflow import layout, run_ingest

        corpus = work / "CREMA-D"
        t0 = time.perf_counter()
        n = build(corpus)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        listed = sum(1 for _ in get_adapter("crema-d", corpus).clips())
        adapter_s = time.perf_counter() - t0
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["corpus"] = {"name": "crema-d", "adapter": "crema-d", "root": str(corpus)}
        params["runner"]["cache_dir"] = str(work / "cache")
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        p = load_params(work / "params.yaml")
        t0 = time.perf_counter()
        run_ingest(p, work)
        ingest_s = time.perf_counter() - t0
        lay = layout(p, work)
        result = {
            "benchmark": "ingest_crema_d",
            "clips_on_disk": n,
            "clips_listed": listed,
            "clips_in_manifest": len(read_manifest(lay.clips_csv)),
            "ingest_failures": len(read_failures(lay.failures_csv("ingest"))),
            "build_s": round(build_s, 2),
            "adapter_s": round(adapter_s, 3),
            "ingest_s": round(ingest_s, 2),
            "clips_per_s": round(n / ingest_s, 1),
            "cpu_count": os.cpu_count(),
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    out = REPO / "bench/results/ingest_crema_d.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
