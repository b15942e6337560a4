"""A throw-away DVC project made of this repo's code, params and a few sample clips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def dvc(root: Path, *args: str) -> str:
    """Run the venv's dvc in ``root``; fail the test with its output when it fails."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", TQDM_DISABLE="1")  # fmt: skip
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def make_dvc_project(
    root: Path, clips: list[Path], edit_params: Callable[[dict], None] | None = None
) -> Path:
    """Copy pipeline/, stages/, dvc.yaml and params.yaml (one worker, then ``edit_params``)
    into ``root``, put ``clips`` under data/sample/, and ``dvc init`` it."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "dvc.yaml", root)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runner"]["n_jobs"] = 1
    if edit_params:
        edit_params(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for c in clips:
        dst = root / "data" / "sample" / c.parent.name / c.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(c, dst)
    dvc(root, "init", "--no-scm", "-q")
    dvc(root, "config", "core.analytics", "false")
    return root
