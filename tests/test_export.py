"""``mer export hf|lhotse``: the features load with the real ``datasets`` and lhotse, and one
clip's values come back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.cli import main as mer
from pipeline.config import load_params
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_folds, run_ingest

FEATURES = ("mel", "spectrogram", "faces", "words")


@pytest.fixture(scope="module")
def project(tmp_path_factory, sample_clips):
    from tests.conftest import make_project

    clips = [c for a in (1, 2, 3, 4) for c in
             [p for p in sample_clips if p.parent.name == f"Actor_{a:02d}"][::15]]
    scheme = {"name": "actor_kfold", "kind": "group_kfold", "n_folds": 4, "group_by": "speaker",
              "val_fraction": 0.1}
    root = make_project(tmp_path_factory.mktemp("export"), clips,
                        {"runner": {"n_jobs": 1}, "folds": {"schemes": [scheme]}})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    run_folds(params, root)
    for feature in FEATURES:
        assert run_feature(params, feature, root, progress=False) == 0
    return root


def _stored(root, feature: str, clip_id: str):
    with FeatureReader(Layout("sample", root=root).features_dir(feature)) as r:
        return r.read(clip_id)


def _args(root, *rest: str) -> list[str]:
    return ["export", *rest, "--root", str(root), "--params", str(root / "params.yaml"), "-q"]


def test_hf_export_loads_with_datasets_and_round_trips(project, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    out = tmp_path / "hf"
    assert mer(_args(project, "hf", str(out), "--scheme", "actor_kfold")) == 0
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]
    lay = Layout("sample", root=project)
    assert len(ds) == 8
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert isinstance(ds.features["mel"], datasets.Array2D)
    assert isinstance(ds.features["faces"], datasets.Array4D)  # the crops, uint8
    # datasets' numpy format widens integers to int64 and makes float lists float32; the
    # values of arrays survive that, those of float64 lists are compared in Python numbers
    row = ds.with_format("numpy")[3]
    plain = ds[3]
    cid = str(row["clip_id"])
    from pipeline.manifest import read_manifest

    entry = {e.clip_id: e for e in read_manifest(lay.clips_csv)}[cid]
    assert ds.features["label"].int2str(int(row["label"])) == entry.label
    assert str(row["speaker"]) == entry.speaker and str(row["transcript"]) == entry.transcript
    for feature in FEATURES:
        stored = _stored(project, feature, cid)
        for name, a in stored.arrays.items():
            column = feature if name == FeatureReader(lay.features_dir(feature)).primary \
                else f"{feature}_{name}"  # fmt: skip
            if a.dtype.kind == "S":
                assert plain[column] == [x.decode() for x in a]
                continue
            declared = ds.features[column]
            dtype = declared.dtype if a.ndim > 1 else declared.feature.dtype
            assert dtype == str(a.dtype), column  # stored as the shards' type
            got = row[column] if a.ndim > 1 else np.array(plain[column], dtype=a.dtype)
            np.testing.assert_array_equal(got, a, err_msg=column)
        np.testing.assert_array_equal(np.array(plain[f"{feature}_timestamps"]),
                                      stored.timestamps)
        np.testing.assert_array_equal(np.array(plain[f"{feature}_valid"]), stored.valid)
    # each clip's test fold, as the fold manifest says
    (fold0,) = [f for f in __import__("pipeline.api", fromlist=["x"]).read_folds(
        lay.folds_dir / "actor_kfold.json") if f.number == 0]
    assert {r["clip_id"] for r in ds if r["fold"] == 0} == set(fold0.test)

    split = tmp_path / "hf-fold0"
    assert mer(_args(project, "hf", str(split), "--scheme", "actor_kfold", "--fold", "0",
                     "--features", "mel")) == 0
    dd = datasets.load_dataset(str(split), cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "validation", "test"}
    assert list(dd["test"]["clip_id"]) == list(fold0.test)
    assert list(dd["validation"]["clip_id"]) == list(fold0.val)
    assert "spectrogram" not in dd["train"].features


def test_lhotse_export_loads_with_lhotse_and_round_trips(project, tmp_path):
    from lhotse import CutSet, RecordingSet, SupervisionSet
    from lhotse.qa import validate

    out = tmp_path / "lhotse"
    assert mer(_args(project, "lhotse", str(out), "--scheme", "actor_kfold")) == 0
    cuts = CutSet.from_file(out / "cuts.jsonl.gz").to_eager()
    recordings = RecordingSet.from_file(out / "recordings.jsonl.gz")
    supervisions = SupervisionSet.from_file(out / "supervisions.jsonl.gz")
    assert len(cuts) == len(recordings) == len(supervisions) == 8
    validate(cuts)  # lhotse's own consistency checks of cuts, features and recordings
    cut = cuts[list(cuts.ids)[2]]
    mel = _stored(project, "mel", cut.id)
    n = int(np.nonzero(mel.valid)[0][-1]) + 1  # rows past the clip's end are padding
    assert cut.features.type == "mer-mel" and cut.num_features == 80
    np.testing.assert_array_equal(cut.features.load(), mel.arrays["mel"][:n])
    assert cut.load_features().dtype == np.float32
    np.testing.assert_array_equal(cut.load_features(), mel.arrays["mel"][:n][: cut.num_frames])
    spec = _stored(project, "spectrogram", cut.id)
    # the stored array whole; cut.load_<name>() gives the rows inside the cut's span
    np.testing.assert_array_equal(cut.custom["spectrogram"].load(), spec.arrays["spectrogram"])
    inside = cut.load_custom("spectrogram")
    np.testing.assert_array_equal(inside, spec.arrays["spectrogram"][: len(inside)])
    assert cut.custom["spectrogram"].frame_shift == pytest.approx(1.024)
    faces = _stored(project, "faces", cut.id)
    np.testing.assert_array_equal(cut.load_faces(), faces.arrays["crops"])
    np.testing.assert_array_equal(cut.load_faces_boxes(), faces.arrays["boxes"])
    words = _stored(project, "words", cut.id)
    assert cut.custom["words_tokens"] == [t.decode() for t in words.arrays["tokens"]]
    vectors = cut.custom["words"]
    np.testing.assert_array_equal(vectors.load(), words.arrays["vectors"])
    if "words_timestamps" in cut.custom:  # word times not evenly spaced in some clip
        np.testing.assert_array_equal(cut.load_words_timestamps(), words.timestamps)
    else:  # evenly spread words (no word times given): a TemporalArray
        np.testing.assert_allclose(
            vectors.start + vectors.frame_shift * np.arange(vectors.num_frames),
            words.timestamps, atol=1e-6)
    sup = cut.supervisions[0]
    from pipeline.manifest import read_manifest

    entry = {e.clip_id: e for e in read_manifest(Layout("sample", root=project).clips_csv)}[
        cut.id]
    assert (sup.text, sup.speaker, sup.custom["emotion"]) == (
        entry.transcript, entry.speaker, entry.label)
    assert cut.custom["fold"] in range(4)
    assert cut.recording.sources[0].source.endswith(entry.path)
