"""`dvc repro` on a copy of the project: no-op rerun, param change reruns one stage,
a new clip is the only one extracted."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _dvc(root: Path, *args: str) -> str:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1", TQDM_DISABLE="1")
    proc = subprocess.run([str(BIN / "dvc"), *args], cwd=root, env=env, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_dvc_repro_is_incremental(tmp_path, sample_clips):
    root = tmp_path / "proj"
    root.mkdir()
    for name in ("pipeline", "stages"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "dvc.yaml", root)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runner"]["n_jobs"] = 1
    params["folds"]["schemes"] = params["folds"]["schemes"][1:2]
    params["folds"]["schemes"][0]["n_folds"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    clips = [c for c in sample_clips if c.parent.name == "Actor_01"][:3]
    for c in clips[:2]:
        dst = root / "data" / "sample" / c.parent.name / c.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(c, dst)
    _dvc(root, "init", "--no-scm", "-q")
    _dvc(root, "config", "core.analytics", "false")

    out = _dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'mel'" in out and "extracting 2, reusing 0" in out
    assert (root / "data/features/sample/mel/index.json").exists()

    out = _dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage" not in out, out

    text = (root / "params.yaml").read_text().replace("segment_hop_frames: 128",
                                                      "segment_hop_frames: 64")
    (root / "params.yaml").write_text(text)
    out = _dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'spectrogram'" in out
    assert "Running stage 'mel'" not in out and "Running stage 'ingest'" not in out

    c = clips[2]
    shutil.copy2(c, root / "data" / "sample" / c.parent.name / c.name)
    out = _dvc(root, "repro", "mel", "spectrogram")
    assert "Running stage 'ingest'" in out and "Running stage 'mel'" in out
    assert "mel: 3 clips, extracting 1, reusing 2" in out
