"""The runner on a 2-worker Dask LocalCluster writes the same shards as local processes."""

import dataclasses

from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_ingest


def test_dask_backend_matches_local_run(project_factory, sample_clips, caplog):
    root = project_factory(sample_clips[:6], runner={"n_jobs": 2, "batch_clips": 1})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    lay = Layout("sample", root=root)
    run_feature(params, "spectrogram", root, progress=False, out_dir=root / "local")

    dask_params = dataclasses.replace(
        params,
        runner=dataclasses.replace(params.runner, backend="dask", cache_dir=str(root / "c2")),
    )
    caplog.set_level("INFO", logger="pipeline.runner")
    run_feature(dask_params, "spectrogram", root, progress=False, out_dir=root / "dask")
    assert "extracting 6, reusing 0" in caplog.text  # really extracted on the cluster
    # with an out_dir, the failures CSV lies beside the shards
    assert (root / "dask.failures.csv").read_text().count("\n") == 1  # header only
    assert not lay.failures_csv("spectrogram").exists()

    with FeatureReader(root / "local") as a, FeatureReader(root / "dask") as b:
        assert a.clip_ids == b.clip_ids and len(a) == 6
        for cid in a.clip_ids:
            fa, fb = a.read(cid), b.read(cid)
            assert fa.arrays.keys() == fb.arrays.keys()
            for k in fa.arrays:
                assert (fa.arrays[k] == fb.arrays[k]).all()
            assert (fa.timestamps == fb.timestamps).all()
