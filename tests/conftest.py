"""Shared fixtures: the shipped sample corpus, a project root in a temp dir, seeding."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # torch is a declared dependency; tests that need it import it
        pass


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The RAVDESS-format sample corpus shipped in git."""
    if not any(SAMPLE.glob("Actor_*/*.mp4")):
        pytest.fail(f"sample corpus missing under {SAMPLE}; run scripts/make_sample_corpus.py")
    return SAMPLE


@pytest.fixture(scope="session")
def sample_clips(sample_dir: Path) -> list[Path]:
    return sorted(sample_dir.glob("Actor_*/*.mp4"))


def make_project(tmp: Path, clips: list[Path], params_overrides: dict | None = None) -> Path:
    """A project root in ``tmp``: params.yaml (the repo's, with overrides) and a corpus made
    of copies of ``clips`` in their Actor_XX folders. Returns the root."""
    import yaml

    corpus = tmp / "corpus"
    for c in clips:
        dst = corpus / c.parent.name / c.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(c, dst)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["corpus"]["root"] = str(corpus)
    params["runner"]["cache_dir"] = str(tmp / "cache")
    for section, values in (params_overrides or {}).items():
        if isinstance(values, dict) and isinstance(params.get(section), dict):
            params[section].update(values)
        else:
            params[section] = values
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp


@pytest.fixture
def project_factory(tmp_path: Path):
    def factory(clips: list[Path], **overrides) -> Path:
        return make_project(tmp_path, clips, overrides)

    return factory


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for the module, as the runner's workers use: MTCNN's small batches
    run fastest so, and two threads fighting for a 2-core machine run several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


os.environ.setdefault("TQDM_DISABLE", "1")
# MKL's reproducible mode and ATen's kernels are chosen before torch's first call, and tests
# run extractors in this process after other tests ran torch: pin them as the stages do.
from pipeline.kernels import pin_environment  # noqa: E402

pin_environment()
