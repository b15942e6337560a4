"""Export feature directories as .csd files that mmsdk loads and aligns; import them back."""

import contextlib
import io

import numpy as np
import pytest

from pipeline.config import load_params
from pipeline.interop.csd import export_csd, import_csd
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_ingest


@pytest.fixture(scope="module")
def features(tmp_path_factory, sample_clips):
    from tests.conftest import make_project

    root = make_project(
        tmp_path_factory.mktemp("csd"),
        sample_clips[:3],
        {"runner": {"n_jobs": 1}, "mel": {"variant": "code"}},
    )
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    for f in ("mel", "spectrogram"):
        run_feature(params, f, root, progress=False)
    return Layout("sample", root=root)


def test_mmsdk_loads_and_aligns_our_export(features, tmp_path):
    from mmsdk import mmdatasdk

    mel = export_csd(features.features_dir("mel"), tmp_path / "mel.csd")
    spec = export_csd(features.features_dir("spectrogram"), tmp_path / "spec.csd")
    with contextlib.redirect_stdout(io.StringIO()):
        ds = mmdatasdk.mmdataset({"mel": str(mel), "spec": str(spec)})
        assert sorted(ds["mel"].keys()) == sorted(ds["spec"].keys())
        with FeatureReader(features.features_dir("mel")) as r:
            cid = r.clip_ids[0]
            np.testing.assert_allclose(ds["mel"][cid]["features"][()], r.read(cid).arrays["mel"])
        # the SDK's own alignment: spectrogram segments collapsed onto each mel frame's span
        ds.align("spec", collapse_functions=[lambda iv, f: np.mean(f, axis=0)])
    keys = list(ds["mel"].keys())
    assert keys and all("[" in k for k in keys)
    first = ds["mel"][keys[0]]
    assert first["features"].shape[0] == 1 and first["features"].shape[1] == 128


def test_import_round_trip(features, tmp_path):
    csd = export_csd(features.features_dir("spectrogram"), tmp_path / "spec.csd")
    out = import_csd(csd, tmp_path / "imported", feature="spec")
    with FeatureReader(out) as a, FeatureReader(features.features_dir("spectrogram")) as b:
        assert a.clip_ids == sorted(b.clip_ids)
        for cid in a.clip_ids:
            got, want = a.read(cid), b.read(cid)
            np.testing.assert_array_equal(
                got.arrays["spec"], want.arrays["spectrogram"].reshape(want.n_steps, -1)
            )
            np.testing.assert_allclose(got.timestamps, want.timestamps)
