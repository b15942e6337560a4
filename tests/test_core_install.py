"""The core install reads the features: a fresh venv with only the package's wheel (built as
``make wheel`` builds it) and its core dependencies (numpy, h5py, pyyaml; no extra) reads
shards the real stages wrote, through pipeline.api and through the plain-h5py snippet of
docs/FORMAT.md, and runs ``mer inspect`` and ``mer verify``, and torch is neither installed
there nor imported.

The venv is built from the registry like any user's (about 30 s with a warm pip cache); set
MER_CORE_VENV to a folder to keep it between runs (it is rebuilt when pyproject.toml changes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import api
from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.workflow import run_feature, run_folds, run_ingest

REPO = Path(__file__).resolve().parents[1]
FEATURES = ("mel", "spectrogram")

# Runs inside the core venv, in the project root; prints one JSON line.
CORE_SCRIPT = r'''
import importlib.util, json, sys
import numpy as np

assert importlib.util.find_spec("torch") is None, "torch is installed in the core venv"
import pipeline, pipeline.api as api
from pipeline.cli import main

out = {"pipeline_file": pipeline.__file__, "sums": {}, "windows": []}
clips = api.read_clips("manifests/sample/clips.csv")
(fold,) = api.read_folds("manifests/sample/folds/holdout.json")
out["clips"] = sorted(c.clip_id for c in clips)
out["fold"] = sorted(fold.train + fold.val + fold.test)
for feature in FEATURES:
    with api.open_features(f"data/features/sample/{feature}") as r:
        for cid in r.clip_ids:
            f = r.read(cid)
            out["sums"][f"{feature}/{cid}"] = float(np.asarray(f.arrays[r.primary], "f8").sum())
for item in api.iter_windows({m: f"data/features/sample/{m}" for m in FEATURES},
                             {"mel": {"steps": 16}, "spectrogram": {"steps": 2,
                                                                    "mode": "sequence"}},
                             list(fold.train), window_seconds=1.0,
                             durations=[{c.clip_id: c.duration for c in clips}[i]
                                        for i in fold.train]):
    v = item["views"][0]
    out["windows"].append([item["clip_id"], list(v["mel"]["x"].shape),
                           int(v["mel"]["mask"].sum()), list(v["spectrogram"]["x"].shape)])

snippet = {}
exec(SNIPPET, snippet)  # docs/FORMAT.md, as written
out["snippet"] = [snippet["clip_id"], list(snippet["mel"].shape), len(snippet["t"]),
                  int(snippet["valid"].sum()), float(np.asarray(snippet["mel"], "f8").sum())]

out["verify"] = main(["verify", "--manifest", "manifests/sample/clips.csv", "-q",
                      *[f"data/features/sample/{m}" for m in FEATURES]])
out["verify_params"] = main(["verify", "-q"])  # the corpus of params.yaml
out["inspect"] = main(["inspect", "-q", "data/features/sample/mel"])
heavy = {"torch", "torchvision", "av", "librosa", "cv2", "dask", "dvc", "joblib", "scipy"}
out["heavy_imported"] = sorted({m.split(".")[0] for m in sys.modules} & heavy)
print(json.dumps(out))
'''


def _format_snippet() -> str:
    text = (REPO / "docs" / "FORMAT.md").read_text()
    section = text.split("## Reading a shard with plain h5py", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/FORMAT.md has no python block under 'Reading a shard with plain h5py'"
    return match.group(1)


def _source_copy(tmp_path: Path) -> Path:
    """The files a pip install of the package reads, copied (pip builds in the source tree:
    its build/ and egg-info stay out of the checkout, and no stale build/ file is packed)."""
    src = tmp_path / "mer-pipeline-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "pipeline", src / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _wheel(tmp_path: Path) -> Path:
    """The package's wheel, built as ``make wheel`` builds it (from a copy of the source)."""
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist),
         str(_source_copy(tmp_path))],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stderr[-3000:]}"
    (wheel,) = dist.glob("mer_pipeline-*-py3-none-any.whl")
    return wheel


def _core_venv(tmp_path: Path) -> Path:
    """A venv holding only the core install of this checkout: its wheel (what README's
    Installing section says works today) with the core dependencies."""
    keep = os.environ.get("MER_CORE_VENV")
    venv = Path(keep) if keep else tmp_path / "core-venv"
    stamp = venv / ".core-installed"
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    wheel = _wheel(tmp_path)
    if stamp.exists() and stamp.read_text() == key:
        # a kept venv: refresh the package itself (not its dependencies) from this checkout
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
               "--force-reinstall", str(wheel)]
        subprocess.run(pip, check=True, capture_output=True, timeout=600)
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"pip install of the core package failed (it needs the package registry):"
                    f"\n{proc.stderr[-3000:]}")
    stamp.write_text(key)
    return venv


@pytest.mark.slow
def test_core_install_reads_features_without_torch(project_factory, sample_clips, tmp_path):
    # shards of the sample, written by the real stages in this (full) environment
    clips = [c for a in (1, 2, 3) for c in
             [p for p in sample_clips if p.parent.name == f"Actor_{a:02d}"][:2]]
    root = project_factory(clips, runner={"n_jobs": 1}, folds={"seed": 0, "schemes": [
        {"name": "holdout", "kind": "group_holdout", "n_train": 1, "n_val": 1, "n_test": 1}]})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    for feature in FEATURES:
        assert run_feature(params, feature, root, progress=False) == 0
    lay = Layout("sample", root=root)
    expected = {}
    for feature in FEATURES:
        with api.open_features(lay.features_dir(feature)) as r:
            for cid in r.clip_ids:
                x = np.asarray(r.read(cid).arrays[r.primary], "f8")
                expected[f"{feature}/{cid}"] = float(x.sum())

    venv = _core_venv(tmp_path)
    script = (f"FEATURES = {FEATURES!r}\nSNIPPET = {_format_snippet()!r}\n" + CORE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", script], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert Path(out["pipeline_file"]).is_relative_to(venv), out["pipeline_file"]  # installed
    assert out["heavy_imported"] == []
    assert out["sums"] == expected  # every clip of both features, the same values
    assert out["clips"] == out["fold"] and len(out["clips"]) == len(clips)
    n_train = len(api.read_folds(lay.folds_dir / "holdout.json")[0].train)
    assert len(out["windows"]) == n_train == 2
    for _cid, mel_shape, mel_rows, spec_shape in out["windows"]:
        assert mel_shape[0] == 16 and mel_rows > 0 and spec_shape[:2] == [2, 128]
    cid, shape, n_t, n_valid, total = out["snippet"]
    assert shape[0] == n_t and 0 < n_valid <= n_t and total == expected[f"mel/{cid}"]
    assert out["verify"] == out["verify_params"] == out["inspect"] == 0

    # the console script itself; a command needing an extra says which one, in one line
    mer = str(venv / "bin" / "mer")
    ok = subprocess.run([mer, "verify", "data/features/sample/mel"], cwd=root, env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("OK: "), ok.stderr
    wanted = {
        ("train",): "mer: the train command needs the `train` extra: `pip install \".[train]\"` "
        "in a checkout of mer-pipeline (no module named 'torch')",
        ("extract", "faces"): "mer: faces needs the `extract` extra: `pip install "
        "\".[extract]\"` in a checkout of mer-pipeline (no module named 'av')",
    }
    for args, line in wanted.items():
        res = subprocess.run([mer, *args], cwd=root, env=env, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 3, (args, res.stdout, res.stderr)
        assert res.stderr.strip().splitlines() == [line], res.stderr
