"""The shell commands of README.md and docs/*.md run as written, from a new shell.

Every line of their ``bash``/``sh`` blocks is either run, in document order, in a copy of the
checkout whose ``.venv`` is this one, by a bash with a bare PATH (/usr/bin:/bin, no venv
activated: a new shell after the quick start), or skipped for a reason :data:`SKIP` names.
A new command in the docs runs here unless it is added there with its reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# pattern (searched in the command) -> why the test does not run it
SKIP: dict[str, str] = {
    r"^make (repro|test)\b": "the quick start itself: CI runs make test, a clean clone make repro",
    r"^make (lint|bench|wheel)\b": "make would rebuild this copy's .venv (its stamp is older "
                                   "than the copied pyproject.toml); ruff and the benchmarks "
                                   "run elsewhere, test_core_install builds the wheel",
    r"/tmp/mer-core|python3(\.11)? -m venv": "a new environment from the registry: "
                                             "tests/test_core_install.py does this",
    r"^\.venv/bin/dvc repro +(#|$)": "the whole pipeline (about 10 minutes): make repro",
    r"^\.venv/bin/dvc repro landmarks": "faces on all 64 clips (minutes): tests/test_dvc.py "
                                        "runs the visual stages on fewer clips",
    r"^\.venv/bin/mer show landmarks": "needs the landmarks of `dvc repro landmarks` above",
    r"~/|/data/|/abs/|/path/to|/shared/|HOST:|CMU_MOSEI_COVAREP|GoogleNews-vectors":
        "a placeholder for the reader's own data, machines or files",
    r"torchrun": "several processes (a multi-GPU run): tests/test_distributed.py",
    r"make_shaped_corpus\.py|bench_reproduce\.py|mer reproduce": "shaped corpora and preset "
        "runs take minutes: tests/test_reproduce.py and test_make_shaped_*.py",
    r"gpu_check\.sh": "the GPU check (minutes, a GPU machine): tests/test_gpu_check.py",
    r"dask (scheduler|worker)|#SBATCH|^srun|wait_for_workers|^kill %|^SCHED=|^REPO=|"
    r"^export PATH|^mkdir /tmp/mer-cluster|^sed .*params.yaml|^cd /": "a cluster (scheduler "
        "and workers) or its setup: tests/test_dask.py runs the same on a local cluster",
    r"runner\.backend=dask|^mer (extract|verify)": "with the cluster above",
    r"^\.venv/bin/dask --version": "with the cluster's setup above",
    r"data/features/ravdess|manifests/ravdess": "reads the RAVDESS features the skipped "
                                                  "command before it makes from your copy",
    r"pip install": "installs into an environment: make setup, tests/test_core_install.py",
    r"^\.venv/bin/mer export (hf|lhotse)": "reads every stage's outputs and the folds of a "
                                            "finished make repro: tests/test_export.py "
                                            "exports and loads them with datasets and lhotse",
    r"scripts/docs_tables\.py": "rewrites the docs from a finished make repro's evaluate.json: "
                                "tests/test_docs_tables.py",
    r"^\.venv/bin/python bench/": "a benchmark (minutes; make bench runs them all)",
    r"^\.venv/bin/mer verify +#": "checks every stage of the corpus: needs all of make repro's "
                                  "outputs (tests/test_verify.py)",
}


def commands() -> list[tuple[str, str]]:
    """(where, command) for every command line of the docs' shell blocks, in order."""
    out = []
    for doc in DOCS:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    out.append((doc.relative_to(REPO).as_posix(), line))
    return out


def skipped(command: str) -> str | None:
    for pattern, why in SKIP.items():
        if re.search(pattern, command):
            return why
    return None


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The tracked files of this checkout (as they are now) in a new git repository, with
    this .venv."""
    root = tmp_path_factory.mktemp("docs") / "mer-pipeline"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / name)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


def test_every_command_is_run_or_skipped_with_a_reason():
    found = commands()
    assert len(found) > 40
    ran = [c for _, c in found if not skipped(c)]
    assert any(c.startswith(".venv/bin/dvc repro mel") for c in ran)
    for pattern in SKIP:  # no stale reason: each one still skips a command of the docs
        assert any(re.search(pattern, c) for _, c in found), pattern


@pytest.mark.slow
def test_doc_commands_run_as_written_from_a_new_shell(checkout):
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "TQDM_DISABLE": "1"}
    ran = []
    for where, command in commands():
        if skipped(command):
            continue
        proc = subprocess.run(["bash", "-c", command], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (
            f"{where}: `{command}` exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-3000:]}")
        ran.append(command)
    assert any(c.startswith(".venv/bin/dvc repro mel") for c in ran)
    assert (checkout / "mel.csd").is_file()  # README's export-csd, after dvc repro mel
    assert (checkout / "data/features/sample/words/index.json").is_file()
