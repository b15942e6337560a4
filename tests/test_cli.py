"""The `mer` command end to end on a temp project: exit codes, JSON output, inspect/verify."""

import json
import subprocess
import sys
from pathlib import Path

import h5py

BIN = Path(sys.executable).parent


def _mer(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mer"), *args], cwd=root, text=True,
                          capture_output=True, timeout=300)


def test_extract_inspect_verify(project_factory, sample_clips):
    root = project_factory(sample_clips[:3], runner={"n_jobs": 1})
    p = _mer(root, "extract", "spectrogram", "--json", "-q")
    assert p.returncode == 0, p.stderr
    [out] = json.loads(p.stdout)["stages"]
    assert out["feature"] == "spectrogram" and out["failed"] == 0
    fdir = root / "data/features/sample/spectrogram"

    p = _mer(root, "inspect", str(fdir), "--json")
    info = json.loads(p.stdout)
    assert info["n_clips"] == 3 and info["arrays"]["spectrogram"]["per_step_shape"] == [[128, 128]]
    assert info["provenance"]["libraries"]["numpy"]

    p = _mer(root, "verify", str(fdir), "--manifest", "manifests/sample/clips.csv", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["ok"]

    # damage one array: verify names the clip and exits 1
    shard = next(fdir.glob("shard-*.h5"))
    with h5py.File(shard, "r+") as f:
        cid = next(iter(f["clips"]))
        ds = f["clips"][cid]["spectrogram"]
        ds[0, 0, 0] = ds[0, 0, 0] + 5.0
    p = _mer(root, "verify", str(fdir))
    assert p.returncode == 1 and f"clip {cid}" in p.stdout and "checksum" in p.stdout


def test_bad_parameter_and_missing_input_exit_codes(project_factory, sample_clips):
    root = project_factory(sample_clips[:1])
    p = _mer(root, "extract", "mel", "--set", "mel.variant=codes")
    assert p.returncode == 2 and "allowed values: 'paper', 'code'" in p.stderr
    p = _mer(root, "extract", "mel", "--corpus", str(root / "nowhere"))
    assert p.returncode == 3 and "corpus.root" in p.stderr
    p = _mer(root, "inspect", str(root / "nothing"))
    assert p.returncode == 3
    (root / "garbage.h5").write_bytes(b"not an HDF5 file at all")
    p = _mer(root, "inspect", str(root / "garbage.h5"))
    assert p.returncode == 4 and "Traceback" not in p.stderr
    assert p.stderr.startswith("mer: failed: OSError") and "-v shows" in p.stderr
    p = _mer(root, "inspect", "-v", str(root / "garbage.h5"))
    assert p.returncode == 4 and "Traceback" in p.stderr


def test_strict_flag_turns_failures_into_exit_1(project_factory, sample_clips, tmp_path):
    from tests.media import strip_audio

    root = project_factory(sample_clips[:1], runner={"n_jobs": 1})
    strip_audio(sample_clips[1], root / "corpus" / "Actor_01" / "01-01-03-01-01-01-01.mp4")
    p = _mer(root, "extract", "mel", "-q")
    assert p.returncode == 0
    p = _mer(root, "extract", "mel", "-q", "--strict")
    assert p.returncode == 1
