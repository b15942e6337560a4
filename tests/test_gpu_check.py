"""The GPU check's wheel list stays the project's: every pinned entry is the version installed
here, and packages pinned in pyproject.toml carry the same pin in the list."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess

from conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _wheels() -> dict[str, str]:
    block = re.search(r"^WHEELS=\(\n(.*?)^\)", SCRIPT.read_text(), re.M | re.S)
    assert block, f"no WHEELS=( ... ) list in {SCRIPT}"
    out = {}
    for line in block.group(1).split():
        name, _, version = line.partition("==")
        out[_norm(name)] = version
    return out


def test_the_wheel_list_is_what_is_installed_and_pinned():
    wheels = _wheels()
    assert "torch" not in wheels  # preinstalled on the GPU machine
    assert wheels["torchvision"] == ""  # the build matching that torch
    for name, version in wheels.items():
        if version:
            assert md.version(name) == version, name
    # the exact tested versions live in constraints.txt (pyproject.toml holds ranges)
    pins = [line.strip() for line in (REPO / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")]
    checked = 0
    for pin in pins:
        name, _, version = pin.partition("==")
        if _norm(name) in wheels and wheels[_norm(name)]:
            assert wheels[_norm(name)] == version, name
            checked += 1
    assert checked >= 10, "the wheel list and constraints.txt share too few packages"


def test_the_script_parses_and_names_its_steps():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = (REPO / "scripts" / "gpu_check.py").read_text()
    for step in (
        "environment",
        "cuda_tests",
        "faces_speed",
        "fan_speed",
        "agreement",
        "training",
        "torchrun_evaluate",
    ):
        assert f'("{step}", check.{step})' in text, step


def test_the_dry_run_trains_fed_by_its_loader_and_finds_no_host_syncs(tmp_path):
    """The training section of the GPU check, on the CPU at tiny size: ravdess-mpuc
    pretraining fed by its DataLoader in fp32 and bf16, each method's step, the sync check."""
    import json
    import sys

    out = tmp_path / "check.json"
    cmd = [sys.executable, str(REPO / "scripts/gpu_check.py"), "--dry-run", "--only", "training"]
    res = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    step = json.loads(out.read_text())["steps"]["training"]
    assert step["status"] == "ok", step
    fed = {r["precision"]: r for r in step["pretrain_fed_by_loader"]}
    assert set(fed) == {"fp32", "bf16"}
    for row in fed.values():
        assert row["steps_per_second"] > 0 and row["workers"] == 1
        assert row["gpu_utilisation"] == "not measured (CPU)"
    methods = {"pretrain", "probe", "unimodal_faces", "late_fusion", "attention", "qian_han"}
    assert set(step["seconds_per_step"]) == methods
    assert all(set(t) >= {"fp32", "bf16"} for t in step["seconds_per_step"].values())
    assert step["sync_check"] == {m: "no host reads" for m in methods - {"probe"}}
