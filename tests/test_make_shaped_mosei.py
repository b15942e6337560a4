"""The MOSEI-shaped generator: every segment lies inside the one generated video, so ingest
takes every segment of the standard folds (a segment past the video's end is refused)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

from pipeline.corpora import get_adapter
from pipeline.ingest import ingest
from pipeline.media.probe import probe

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_shaped_corpus.py"


def test_generated_mosei_segments_all_ingest(tmp_path):
    spec = importlib.util.spec_from_file_location("make_shaped_corpus", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_shaped_corpus"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "CMU_MOSEI"
    assert mod.main(["mosei", "--out", str(out), "--videos", "6", "2", "2", "--size",
                     "192x192"]) == 0  # fmt: skip
    result = ingest(get_adapter("mosei", out, {"source": "sdk", "media": "full"}))
    assert not result.failures, result.failures[:3]
    assert len(result.entries) == 20  # two segments a video
    assert Counter(e.meta["split"] for e in result.entries) == {
        "train": 12, "valid": 4, "test": 4}  # fmt: skip
    # inside the video, not merely within ingest's tolerance past its end
    video = probe(next((out / "_generated").rglob("*.mp4"))).duration
    assert max(e.end for e in result.entries) <= video
