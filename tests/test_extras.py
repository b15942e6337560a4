"""Optional dependencies: the reading API imports none of them, and a missing one is named with
the extra that installs it (one line, no traceback).

Absence is made real in a child process: an import hook there refuses the named top-level
modules as an interpreter without them would (ModuleNotFoundError with the name). The test
of the core install (test_core_install.py) checks the same with nothing hidden: a venv
without the extras.
"""

from __future__ import annotations

import html
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipeline.extras import MissingExtraError, extra_for, needs, optional_import
from pipeline.manifest import ManifestEntry, write_manifest
from pipeline.store import ClipFeatures, ShardWriter

REPO = Path(__file__).resolve().parents[1]


def needs_extra(extra: str) -> str:
    """What a message says after naming the feature: the extra and how to install it today."""
    return f'needs the `{extra}` extra: `pip install ".[{extra}]"` in a checkout of mer-pipeline'

HIDE = """
import importlib.abc, importlib.machinery, sys

class _Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # importing a blocked module fails as it does where it is not installed; a library that
    # only probes for it (importlib.util.find_spec) is left alone
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}}", name=spec.name)

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _Absent())
"""


def _run(code: str, blocked: set[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    src = HIDE.format(blocked=blocked) + textwrap.dedent(code)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def _mer(args: list[str], blocked: set[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return _run(f"from pipeline.cli import main\nsys.exit(main({args!r}))", blocked, cwd)


def test_reading_api_imports_no_heavy_module():
    res = _run(
        """
        import pipeline.api
        heavy = {"torch", "torchvision", "av", "librosa", "cv2", "dask", "dvc", "joblib",
                 "gensim", "mmsdk", "matplotlib", "scipy"}
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        assert not loaded, loaded
        print("ok")
        """,
        blocked=set(),
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_window_dataset_without_torch_names_the_train_extra():
    res = _run(
        """
        import pipeline.api as api
        from pipeline.extras import MissingExtraError
        try:
            api.WindowDataset
        except MissingExtraError as e:
            print(e)
        """,
        blocked={"torch"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == (
        f"WindowDataset {needs_extra('train')} (no module named 'torch')"
    )


@pytest.mark.parametrize(
    ("args", "blocked", "line"),
    [
        (["train"], {"torch"}, f"the train command {needs_extra('train')}"),
        (["extract", "faces"], {"av"}, f"faces {needs_extra('extract')}"),
        (["extract", "mel"], {"joblib"}, f"mel {needs_extra('pipeline')}"),
        (["show", "faces", "c"], {"cv2"}, f"the show command {needs_extra('extract')}"),
        (["evaluate"], {"torchvision"}, f"the evaluate command {needs_extra('train')}"),
        (["export-csd", "x", "y.csd"], {"mmsdk"}, f".csd files {needs_extra('extract')}"),
    ],
)
def test_commands_name_the_missing_extra(args, blocked, line):
    res = _mer(args, blocked)
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    (msg,) = res.stderr.strip().splitlines()
    assert msg.startswith("mer: ") and line in msg, msg


def test_inspect_and_verify_run_without_any_extra(tmp_path):
    d = tmp_path / "feat"
    with ShardWriter(d, "feat", {}, {}, "x", compression="gzip") as w:
        w.add("c1", ClipFeatures({"x": np.ones((3, 2), np.float32)}, np.arange(3.0) / 10,
                                 np.ones(3, bool)), source_sha256="c1")
    blocked = {m for m in ("torch", "torchvision", "av", "librosa", "cv2", "joblib", "tqdm",
                           "dask", "distributed", "dvc", "matplotlib", "gensim", "mmsdk",
                           "scipy", "skimage", "PIL")}
    for args in (["inspect", str(d)], ["verify", str(d)]):
        res = _mer(args, blocked, cwd=tmp_path)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
    # verify with no path reads the corpus name from params.yaml (core sections only)
    (tmp_path / "params.yaml").write_text("corpus: {name: c}\nmel: {variant: code}\n")
    (tmp_path / "data" / "features" / "c").mkdir(parents=True)
    d.rename(tmp_path / "data" / "features" / "c" / "feat")
    write_manifest(tmp_path / "manifests" / "c" / "clips.csv",
                   [ManifestEntry("c1", "c1.mp4", sha256="c1", duration=0.3)])
    res = _mer(["verify"], blocked, cwd=tmp_path)
    assert res.returncode == 0 and "OK: data/features/c/feat" in res.stdout, res.stderr


def test_needs_names_the_extra_and_keeps_unrelated_errors():
    assert extra_for("torch.nn") == "train" and extra_for("torch", "extract") == "extract"
    assert extra_for("av", "train") == "extract" and extra_for("numpy") is None
    with pytest.raises(MissingExtraError, match=re.escape(
            f"faces {needs_extra('extract')} (no module named 'facenet_pytorch')")):
        with needs("faces", "extract"):
            raise ModuleNotFoundError("No module named 'facenet_pytorch'",
                                      name="facenet_pytorch")
    # a module that no extra installs is a bug, not an install choice: the error stays
    with pytest.raises(ModuleNotFoundError, match="pipeline_nonexistent") as info:
        optional_import("pipeline_nonexistent", "x")
    assert not isinstance(info.value, MissingExtraError)


def test_report_says_when_face_montages_cannot_be_drawn(tmp_path):
    """Without OpenCV the QA page says why it has no face montages (never a silent gap)."""
    faces = tmp_path / "data" / "features" / "c" / "faces"
    with ShardWriter(faces, "faces", {}, {}, "crops", compression="gzip") as w:
        w.add("c1", ClipFeatures({"crops": np.zeros((3, 4, 4, 3), np.uint8)},
                                 np.arange(3.0) / 30, np.array([True, False, True])),
              source_sha256="c1")
    res = _run(
        f"""
        from pathlib import Path
        from pipeline.paths import Layout
        from pipeline.qa.report import Report, _section_faces
        rep = Report(Path({str(tmp_path / "qa")!r}), "t")
        _section_faces(rep, Layout("c", root=Path({str(tmp_path)!r})))
        print(rep.write().read_text())
        """,
        blocked={"cv2"},
    )
    assert res.returncode == 0, res.stderr
    assert html.escape(f"No face montages: face montages {needs_extra('extract')} (no module "
                       "named 'cv2').") in res.stdout
    assert "Face detection rate per clip" in res.stdout


def test_train_without_the_extraction_stack_names_it():
    """params.yaml's extractor sections are validated by the extractors' modules: the trainer
    needs them importable, and says so."""
    blocked = {"av", "librosa", "cv2", "dlib", "face_alignment", "facenet_pytorch", "gensim",
               "mmsdk", "joblib", "dask", "distributed", "dvc", "matplotlib"}
    res = _mer(["train"], blocked)
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip() == (f"mer: the train command {needs_extra('extract')} (no module "
                                  "named 'av')")
