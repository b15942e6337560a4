"""Every stage writes the same bytes whichever CPU runs it, played on this one.

Each stage script (the extraction stages, then pretrain and evaluate) runs on eight sample
clips once as this CPU runs it, and once under each profile of ``tests/cpu_profiles.py``: the
kernel choices of OpenBLAS, numpy, PyTorch (ATen, MKL, oneDNN), OpenCV, the C library and
FFmpeg on another machine. Every output file must be byte-identical, except the run facts
that hold times (``*.run.json``, ``timing-*.json``) and the lock files, which DVC does not
track.

A profile needs the instructions it plays: one this CPU lacks (e.g. AVX-512 on a CPU without
it) is skipped, saying so.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_params
from pipeline.workflow import run_folds, run_ingest
from tests.cpu_profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]
STAGES = ("mel", "spectrogram", "words", "faces", "landmarks", "pretrain", "evaluate")
# what each profile needs of this CPU (numpy's names for the features)
NEEDS = {"skylake-x": ("AVX512_SKX",), "haswell": ("AVX2", "FMA3"), "zen": ("AVX2", "FMA3"),
         "sandybridge": ("AVX",), "prescott": ()}
# run facts with wall times, and the writers' lock files (their process ids): not outputs
NOT_OUTPUTS = ("*.run.json", "timing-*.json", ".*.lock")
FAST = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.001, "step_epochs": 0,
        "gamma": 0.9, "batch_size": 32, "max_epochs": 2, "patience": 0, "min_delta": 0.0,
        "monitor": "loss"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_clips) -> Path:
    """Eight clips (two emotions of four actors), ingested, with 4 actor folds, and training
    shrunk to seconds (fold 0, two epochs, small models, every method)."""
    from tests.conftest import make_project

    clips = [c for c in sample_clips if c.stem.split("-")[2] in ("01", "05")
             and c.stem.split("-")[4:6] == ["01", "01"]]  # fmt: skip
    assert len(clips) == 8
    root = make_project(tmp_path_factory.mktemp("cpu") / "base", clips, {
        "runner": {"n_jobs": 1, "backend": "sequential", "cache_dir": "data/cache"},
        "folds": {"seed": 42, "schemes": [{"name": "actor_kfold", "kind": "group_kfold",
                                           "n_folds": 4, "group_by": "speaker"}]},
        "train": {"folds": [0], "seeds": [], "threads": 1, "feature_dim": 32,
                  "projection_hidden": 32,
                  "tcn": {"bn_chan": 8, "hid_chan": 8, "kernel": 3, "n_blocks": 2,
                          "n_repeats": 1, "dropout": 0.1},
                  "spec_cnn": {"channels": 4, "layers": 2},
                  "lstm": {"hidden": 16, "layers": 1, "dropout": 0.0}},
        "pretrain": {"loss": "paper", "reduction": "mean", "optim": FAST},
        "evaluate": {"probe": {"hidden": 16, "optim": FAST}, "unimodal": FAST,
                     "late_fusion": FAST, "attention": {"heads": 2, "optim": FAST},
                     "qian_han": {"audio": "spectrogram", "text": "mel", "alpha": 0.1,
                                  "negatives": "other_emotions", "discriminator_hidden": 16,
                                  "dropout": 0.0, "window_seconds": 0.0, "segments": "all",
                                  "max_segments": 4, "optim": {**FAST, "name": "adam",
                                                               "lr": 0.001}}},
    })
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    return root


def run_stages(base: Path, dest: Path, profile: str) -> Path:
    """A copy of ``base`` with every stage run by its script as ``profile``'s CPU would."""
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("data"))
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_CBWR", "ATEN_CPU_CAPABILITY")}
    env.update(PROFILES[profile][0] if profile in PROFILES else {})
    for stage in STAGES:
        proc = subprocess.run(
            [sys.executable, str(REPO / "tests" / "cpu_profiles.py"), profile,
             str(REPO / "stages" / f"{stage}.py"), "--quiet"],
            cwd=dest, env=env, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, f"{stage} as {profile}:\n{proc.stderr[-3000:]}"
    return dest


def outputs(root: Path) -> list[Path]:
    """Every file the stages wrote (relative), but :data:`NOT_OUTPUTS`."""
    skip = {p for pattern in NOT_OUTPUTS for p in root.rglob(pattern)}
    return sorted(p.relative_to(root) for d in ("data", "manifests") for p in (root / d).rglob("*")
                  if p.is_file() and p not in skip and "cache" not in p.relative_to(root).parts)


@pytest.fixture(scope="module")
def reference(project, tmp_path_factory) -> Path:
    """The stages as this CPU runs them."""
    root = run_stages(project, tmp_path_factory.mktemp("cpu") / "this-cpu", "this-cpu")
    written = outputs(root)
    for stage in STAGES[:5]:  # every extraction stage stored its eight clips
        assert any(p.name == "index.json" and stage in p.parts for p in written), stage
    assert any(p.suffix == ".pt" for p in written)
    assert any(p.name == "evaluate.json" for p in written)
    return root


@pytest.mark.parametrize("profile", list(PROFILES))
def test_stages_write_the_same_bytes_on_another_cpu(profile, project, reference,
                                                    tmp_path_factory):
    import numpy as np

    have = np._core._multiarray_umath.__cpu_features__
    missing = [f for f in NEEDS[profile] if not have.get(f)]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}: it cannot play {profile}")
    root = run_stages(project, tmp_path_factory.mktemp("cpu") / profile, profile)
    assert outputs(root) == outputs(reference)
    differ = [str(p) for p in outputs(reference)
              if not filecmp.cmp(reference / p, root / p, shallow=False)]
    assert not differ, f"as {profile} ({PROFILES[profile][0]}), these files differ: {differ}"
