"""`dvc repro` runs the words stage offline on the sample corpus, then on a plain folder of
videos chosen through the corpus params."""

import json
import os
import shutil

import yaml

from pipeline.manifest import read_manifest
from pipeline.text.tokenize import tokenize
from tests.dvc_project import dvc, make_dvc_project


def test_dvc_repro_words_on_sample_then_on_a_folder(tmp_path, sample_clips):
    root = make_dvc_project(tmp_path / "proj", sample_clips[:2])

    out = dvc(root, "repro", "words")
    assert "Running stage 'words'" in out
    metrics = json.loads((root / "data/metrics/sample/words.json").read_text())
    entries = read_manifest(root / "manifests/sample/clips.csv")
    n_tokens = sum(len(tokenize(e.transcript)) for e in entries)
    assert metrics["clips"] == 2 and metrics["failed"] == 0 and metrics["tokens"] == n_tokens > 0
    assert metrics["oov_rate"] == 0.0

    # a folder of videos elsewhere on disk: one with a transcript, one without, one broken
    videos = tmp_path / "videos"
    (videos / "alice").mkdir(parents=True)
    shutil.copy2(sample_clips[0], videos / "alice" / "hello.mp4")
    (videos / "alice" / "hello.txt").write_text("Hello there, how are you?")
    shutil.copy2(sample_clips[1], videos / "silent.mp4")
    (videos / "broken.mp4").write_bytes(os.urandom(4096))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["corpus"].update(name="myvids", adapter="folder", root=str(videos))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = dvc(root, "repro", "words", "spectrogram")
    assert "Running stage 'ingest'" in out and "Running stage 'words'" in out
    failures = {
        stage: (root / f"manifests/myvids/failures/{stage}.csv").read_text()
        for stage in ("ingest", "words", "spectrogram")
    }
    assert "broken," in failures["ingest"] and "not a readable media file" in failures["ingest"]
    assert "silent,words,silent: empty transcript" in failures["words"]
    assert failures["spectrogram"].strip() == "clip_id,stage,reason,exception_type"
    assert (root / "data/features/myvids/words/index.json").exists()
    assert "Running stage" not in dvc(root, "repro", "words", "spectrogram")
