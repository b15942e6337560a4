"""The public API reads what the stages wrote."""

from pipeline import api
from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.workflow import run_feature, run_folds, run_ingest


def test_api_reads_manifests_folds_and_features(project_factory, sample_clips):
    clips = [c for a in range(1, 5) for c in
             [p for p in sample_clips if p.parent.name == f"Actor_{a:02d}"][:2]]
    root = project_factory(clips, runner={"n_jobs": 1}, folds={"seed": 0, "schemes": [
        {"name": "holdout", "kind": "group_holdout", "n_train": 2, "n_val": 1, "n_test": 1}]})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    run_feature(params, "spectrogram", root, progress=False)
    lay = Layout("sample", root=root)
    entries = api.read_clips(lay.clips_csv)
    (fold,) = api.read_folds(lay.folds_dir / "holdout.json")
    assert set(fold.train) | set(fold.val) | set(fold.test) == {e.clip_id for e in entries}
    with api.open_features(lay.features_dir("spectrogram")) as r:
        f = r.read(fold.test[0])
        assert f.arrays["spectrogram"].shape[1:] == (128, 128)
        assert len(f.timestamps) == len(f.valid) == f.arrays["spectrogram"].shape[0]
