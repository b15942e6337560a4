"""ingest -> folds -> mel/spectrogram on a temp project: failures recorded, cache reuse."""

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline.config import load_params
from pipeline.manifest import read_manifest
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from pipeline.workflow import run_feature, run_folds, run_ingest
from tests.media import strip_audio, truncate


def _clips(sample_clips, n_per_actor=2):
    by = {}
    for c in sample_clips:
        by.setdefault(c.parent.name, []).append(c)
    return [c for cs in by.values() for c in cs[:n_per_actor]]


@pytest.fixture
def project(project_factory, sample_clips):
    root = project_factory(
        _clips(sample_clips),
        runner={"n_jobs": 1},
        folds={"seed": 1, "schemes": [
            {"name": "actor_kfold", "kind": "group_kfold", "n_folds": 4},
        ]},
    )
    corpus = root / "corpus"
    # bad inputs beside the good clips: a truncated video, one with no audio track, and an
    # empty file, all with valid RAVDESS names
    src = sample_clips[0]
    truncate(src, corpus / "Actor_01" / "01-01-03-01-01-01-01.mp4", 0.3)
    strip_audio(src, corpus / "Actor_02" / "01-01-03-01-01-01-02.mp4")
    (corpus / "Actor_03" / "01-01-03-01-01-01-03.mp4").write_bytes(b"")
    return root


def _failures(path: Path) -> dict[str, dict]:
    with open(path) as f:
        return {r["clip_id"]: r for r in csv.DictReader(f)}


def test_stages_record_bad_clips_and_finish_the_rest(project, caplog):
    caplog.set_level("INFO")
    params = load_params(project / "params.yaml")
    lay = Layout("sample", root=project)
    assert run_ingest(params, project) == 0
    entries = {e.clip_id: e for e in read_manifest(lay.clips_csv)}
    ingest_fail = _failures(lay.failures_csv("ingest"))
    assert "empty" in ingest_fail["01-01-03-01-01-01-03"]["reason"]
    assert ingest_fail["01-01-03-01-01-01-03"]["exception_type"] == "ProbeError"
    # the mp4 index (moov) sits at the end: a cut-short file is not readable media
    assert "not a readable media file" in ingest_fail["01-01-03-01-01-01-01"]["reason"]
    assert len(entries) == 9
    assert not entries["01-01-03-01-01-01-02"].has_audio

    assert run_folds(params, project) == 0
    folds = json.loads((lay.folds_dir / "actor_kfold.json").read_text())
    assert len(folds["folds"]) == 4

    for feature in ("mel", "spectrogram"):
        assert run_feature(params, feature, project, progress=False) == 0
        fails = _failures(lay.failures_csv(feature))
        assert "no audio track" in fails["01-01-03-01-01-01-02"]["reason"]
        with FeatureReader(lay.features_dir(feature)) as r:
            good = set(entries) - set(fails)
            assert set(r.clip_ids) == good and len(good) == 8
            for cid in r.clip_ids:
                feats = r.read(cid, verify=True)
                assert feats.attrs["source_sha256"] == entries[cid].sha256
        metrics = json.loads(lay.metrics_json(feature).read_text())
        assert metrics["clips"] == len(entries) and metrics["failed"] == len(fails)

    # strict mode turns the recorded failures into a non-zero exit, still writing the rest
    strict = load_params(project / "params.yaml")
    import dataclasses

    strict = dataclasses.replace(strict, runner=dataclasses.replace(strict.runner, strict=True))
    assert run_feature(strict, "mel", project, progress=False) == 1


def test_rerun_reuses_cache_and_new_clip_is_the_only_one_extracted(
    project, sample_clips, caplog
):
    params = load_params(project / "params.yaml")
    lay = Layout("sample", root=project)
    run_ingest(params, project)
    run_feature(params, "mel", project, progress=False)
    before = {p.name: p.read_bytes() for p in lay.features_dir("mel").glob("*.h5")}

    caplog.clear()
    caplog.set_level("INFO", logger="pipeline.runner")
    # the stage's out is deleted (as DVC does) and rebuilt from the per-clip cache
    shutil.rmtree(lay.features_dir("mel"))
    run_feature(params, "mel", project, progress=False)
    assert "extracting 1, reusing 8" in caplog.text  # only the failed clip is retried
    after = {p.name: p.read_bytes() for p in lay.features_dir("mel").glob("*.h5")}
    assert after == before, "shards rebuilt from the cache differ from the first run"

    new = next(c for c in sample_clips if c.parent.name == "Actor_04" and
               not (project / "corpus" / "Actor_04" / c.name).exists())
    shutil.copy2(new, project / "corpus" / "Actor_04" / new.name)
    run_ingest(params, project)
    caplog.clear()
    run_feature(params, "mel", project, progress=False)
    assert "extracting 2, reusing 8" in caplog.text
    assert new.stem in FeatureReader(lay.features_dir("mel"))


def test_changed_params_miss_the_cache(project, caplog):
    params = load_params(project / "params.yaml")
    run_ingest(params, project)
    run_feature(params, "spectrogram", project, progress=False)
    raw = (project / "params.yaml").read_text().replace("segment_hop_frames: 128",
                                                        "segment_hop_frames: 64")
    (project / "params.yaml").write_text(raw)
    caplog.set_level("INFO", logger="pipeline.runner")
    run_feature(load_params(project / "params.yaml"), "spectrogram", project, progress=False)
    assert "extracting 9, reusing 0" in caplog.text
