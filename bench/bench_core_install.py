"""What the core install costs a project that only reads features.

Builds a venv with only ``pip install <this checkout>`` (numpy, h5py, pyyaml) unless one is
given, and measures:

- ``pip_install_s``: making the venv and that install (registry or pip cache; omitted for a
  given venv);
- ``import_api_s``: ``python -X importtime -c "import pipeline.api"``, cumulative time of
  ``pipeline.api`` (median, min and max of ``--repeat`` runs, each a fresh interpreter), and the
  same for ``import numpy, h5py`` alone (what reading cannot avoid), run after each;
- ``process_cpu_s``: CPU time of those interpreters (start-up included);
- ``torch_imported``: whether importing the API loaded torch;
- ``venv_bytes``: disk use of the core venv and, with ``--full``, of a full one (``make
  setup``'s, every extra).

    .venv/bin/python bench/bench_core_install.py [--venv DIR] [--full DIR] [--repeat 15]

Prints one JSON object and saves it to ``bench/results/core_install.json``. The 2-core
machine is shared, so single runs vary; the median is the figure to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.lstat().st_blocks * 512
    return total


def _import_us(python: Path, stmt: str, modules: set[str]) -> tuple[int, float]:
    """Cumulative microseconds of the top-level imports ``modules`` in ``python -X importtime
    -c stmt`` (summed), and the CPU seconds of that whole process (start-up included), which
    a loaded machine disturbs less than wall time."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([str(python), "-X", "importtime", "-c", stmt], capture_output=True,
                          text=True, env=env, cwd=tempfile.gettempdir(), check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    found = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m and m.group(3) in modules and not m.group(2):
            found[m.group(3)] = int(m.group(1))
    if set(found) != modules:
        raise RuntimeError(f"no import time for {modules - set(found)}:\n{proc.stderr[-2000:]}")
    return sum(found.values()), cpu


def _stats(values: list[int]) -> dict[str, float]:
    s = [v / 1e6 for v in values]
    return {"median": round(statistics.median(s), 4), "min": round(min(s), 4),
            "max": round(max(s), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, help="an existing core venv (default: build one)")
    ap.add_argument("--full", type=Path, help="a full venv (make setup) to size")
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    result: dict = {}
    tmp = None
    venv = args.venv
    if venv is None:
        tmp = tempfile.TemporaryDirectory(prefix="core-venv-")
        venv = Path(tmp.name) / "venv"
        base = getattr(sys, "_base_executable", sys.executable)
        t0 = time.perf_counter()
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        src = Path(tmp.name) / "src"  # a copy: pip's build/ and egg-info stay out of the repo
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        shutil.copytree(REPO / "pipeline", src / "pipeline",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        str(src)], check=True, capture_output=True)
        result["pip_install_s"] = round(time.perf_counter() - t0, 1)
    python = venv / "bin" / "python"
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    result["core_packages"] = freeze
    api, base, api_cpu, base_cpu = [], [], [], []
    for _ in range(args.repeat):  # interleaved: both see the same load on a shared machine
        us, cpu = _import_us(python, "import pipeline.api", {"pipeline.api"})
        api.append(us)
        api_cpu.append(cpu)
        us, cpu = _import_us(python, "import numpy, h5py", {"numpy", "h5py"})
        base.append(us)
        base_cpu.append(cpu)
    result["import_api_s"] = _stats(api)
    result["import_numpy_h5py_s"] = _stats(base)
    result["process_cpu_s"] = {"import_api": _stats([int(c * 1e6) for c in api_cpu]),
                               "import_numpy_h5py": _stats([int(c * 1e6) for c in base_cpu])}
    check = subprocess.run([str(python), "-c", "import sys, pipeline.api; "
                            "print('torch' in sys.modules)"], capture_output=True, text=True,
                           check=True, cwd=tempfile.gettempdir())
    result["torch_imported"] = check.stdout.strip() == "True"
    result["venv_bytes"] = {"core": _du(venv)}
    if args.full:
        result["venv_bytes"]["full"] = _du(args.full)
    result["repeat"] = args.repeat
    print(json.dumps(result, indent=2))
    out = REPO / "bench" / "results" / "core_install.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
