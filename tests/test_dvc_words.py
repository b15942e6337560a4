"""`dvc repro` runs the words stage offline on the sample corpus, then on a plain folder of
videos chosen through the corpus params."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.manifest import read_manifest
from pipeline.text.tokenize import tokenize

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _dvc(root: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", TQDM_DISABLE="1")  # fmt: skip
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_dvc_repro_words_on_sample_then_on_a_folder(tmp_path, sample_clips):
    root = tmp_path / "proj"
    root.mkdir()
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "dvc.yaml", root)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runner"]["n_jobs"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for c in sample_clips[:2]:
        dst = root / "data" / "sample" / c.parent.name / c.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(c, dst)
    _dvc(root, "init", "--no-scm", "-q")
    _dvc(root, "config", "core.analytics", "false")

    out = _dvc(root, "repro", "words")
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
    params["corpus"].update(name="myvids", adapter="folder", root=str(videos))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _dvc(root, "repro", "words", "spectrogram")
    assert "Running stage 'ingest'" in out and "Running stage 'words'" in out
    failures = {
        stage: (root / f"manifests/myvids/failures/{stage}.csv").read_text()
        for stage in ("ingest", "words", "spectrogram")
    }
    assert "broken," in failures["ingest"] and "not a readable media file" in failures["ingest"]
    assert "silent,words,silent: empty transcript" in failures["words"]
    assert failures["spectrogram"].strip() == "clip_id,stage,reason,exception_type"
    assert (root / "data/features/myvids/words/index.json").exists()
    assert "Running stage" not in _dvc(root, "repro", "words", "spectrogram")
