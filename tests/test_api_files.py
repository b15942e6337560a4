"""``pipeline.api.extract`` on media files gives the stage's arrays, with the stage's cache and
failure rules; ``window_dataset`` builds the trainer's dataset from a feature root, a
manifest and a fold, its items carrying the clip id."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import api
from pipeline.config import load_params
from pipeline.features import ExtractionError
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_folds, run_ingest


def _same(a, b) -> None:
    assert a.arrays.keys() == b.arrays.keys()
    for name in a.arrays:
        np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=name)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.valid, b.valid)


def test_extract_two_files_gives_the_stage_arrays(project_factory, sample_clips, tmp_path,
                                                  one_torch_thread):
    clips = sample_clips[:2]
    root = project_factory(clips, runner={"n_jobs": 1})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    lay = Layout("sample", root=root)
    for feature in ("mel", "faces"):
        assert run_feature(params, feature, root, progress=False) == 0

    files = [root / "corpus" / c.parent.name / c.name for c in clips]
    run = api.extract([str(f) for f in files], ["mel", "faces"], params=root / "params.yaml",
                      out=tmp_path / "api", progress=False)
    assert not run.failures
    assert run.features == ("mel", "faces")
    for feature in ("mel", "faces"):
        with FeatureReader(lay.features_dir(feature)) as stage, run.reader(feature) as mine:
            assert sorted(mine.clip_ids) == sorted(stage.clip_ids)
            for f in files:
                cid = run.clip_id(str(f))
                assert cid == f.stem
                _same(mine.read(cid), stage.read(cid))
    # one file, not in a list: its arrays; the per-clip cache of the first call is reused
    one = api.extract(files[0], ["mel"], params=root / "params.yaml", out=tmp_path / "api",
                      progress=False)
    with FeatureReader(lay.features_dir("mel")) as stage:
        _same(one["mel"], stage.read(files[0].stem))
    facts = (tmp_path / "api" / "data" / "metrics" / "files" / "mel.run.json").read_text()
    assert '"reused_from_cache": 1' in facts


def test_extract_keeps_going_past_a_bad_file_and_names_it(sample_clips, tmp_path):
    bad = tmp_path / "in" / "broken.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"not a video at all")
    good = tmp_path / "in" / "good.mp4"
    good.write_bytes(sample_clips[0].read_bytes())
    run = api.extract([bad, good], ["spectrogram"], out=tmp_path / "out", n_jobs=1,
                      progress=False)
    (fail,) = run.failures
    assert fail.clip_id == "broken" and fail.stage == "ingest" and fail.reason
    assert run.read(good, "spectrogram").arrays["spectrogram"].shape[1:] == (128, 128)
    with pytest.raises(ExtractionError, match="broken.mp4.*ingest"):
        run.read(bad, "spectrogram")
    with pytest.raises(ExtractionError, match="broken"):
        api.extract(bad, ["spectrogram"], out=tmp_path / "out2", progress=False)
    with pytest.raises(ValueError, match="unknown feature 'melody'.*known: faces"):
        api.extract([good], ["melody"], out=tmp_path / "out3")
    with pytest.raises(FileNotFoundError, match="nothere.mp4"):
        api.extract([tmp_path / "nothere.mp4"], ["mel"], out=tmp_path / "out4")


def test_window_dataset_from_a_feature_root_a_manifest_and_a_fold(project_factory,
                                                                  sample_clips):
    # two emotions per actor (the first and the last of each actor's 16 clips)
    clips = [c for a in range(1, 5) for c in
             [p for p in sample_clips if p.parent.name == f"Actor_{a:02d}"][::15]]
    root = project_factory(clips, runner={"n_jobs": 1}, folds={"seed": 0, "schemes": [
        {"name": "holdout", "kind": "group_holdout", "n_train": 2, "n_val": 1, "n_test": 1}]})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    run_feature(params, "spectrogram", root, progress=False)
    lay = Layout("sample", root=root)
    inputs = {"spectrogram": {"steps": 2, "mode": "sequence"}}
    ds = api.window_dataset(lay.root / "data" / "features" / "sample", lay.clips_csv,
                            lay.folds_dir / "holdout.json", inputs, part="train")
    (fold,) = api.read_folds(lay.folds_dir / "holdout.json")
    assert ds.clip_ids == list(fold.train) and len(ds) == 4
    entries = {e.clip_id: e for e in api.read_clips(lay.clips_csv)}
    items = list(api.iter_windows({"spectrogram": lay.features_dir("spectrogram")}, inputs,
                                  fold.train))
    for i, item in enumerate(items):
        got = ds[i]
        assert got["clip_id"] == item["clip_id"] == fold.train[i]
        assert ds.labels[int(got["target"])] == entries[fold.train[i]].label
        np.testing.assert_array_equal(got["views"][0]["spectrogram"]["x"].numpy(),
                                      item["views"][0]["spectrogram"]["x"])
    test = api.window_dataset(lay.root / "data" / "features" / "sample", lay.clips_csv, fold,
                              inputs, part="test")
    assert test.clip_ids == list(fold.test)
    # a DataLoader batch keeps the clip ids beside the tensors
    import torch

    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert list(batch["clip_id"]) == list(fold.train) and batch["target"].shape == (4,)


def test_the_examples_of_docs_api_run_as_written(project_factory, sample_clips, monkeypatch,
                                                 capsys):
    import re

    from tests.conftest import REPO

    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) == 2, "docs/api.md lost an example"
    clips = [c for a in range(1, 5) for c in
             [p for p in sample_clips if p.parent.name == f"Actor_{a:02d}"][::5]]
    root = project_factory(clips, runner={"n_jobs": 1})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    for feature in ("mel", "spectrogram"):
        run_feature(params, feature, root, progress=False)
    (root / "data" / "sample").symlink_to(REPO / "data" / "sample")
    monkeypatch.chdir(root)
    for code in blocks:
        exec(compile(code, "docs/api.md", "exec"), {})  # noqa: S102 - the documented example
    out = capsys.readouterr().out
    assert "\n[]\n" in out and "128, 128)" in out
    assert (root / "api-example" / "manifests" / "files" / "clips.csv").exists()
    assert (root / "api-example-one" / "data" / "features" / "files" / "spectrogram").is_dir()
