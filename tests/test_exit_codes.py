"""Every command: one clear line and the documented exit code (README, ``mer --help``,
pipeline.exits): 0 ok, 1 failures with --strict or verify problems, 2 bad arguments or
parameters, 3 missing input, 4 the run itself failed, 130 interrupted. Each code and each way
a new user met a wrong one, on a real project made of the sample clips."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pipeline.cli import main as mer
from pipeline.corpora import ADAPTERS
from pipeline.features import EXTRACTORS
from pipeline.manifest import read_failures
from pipeline.store.format import SCHEMA_VERSION
from tests.conftest import make_project

BIN = Path(sys.executable).parent


def _mer(root: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "mer"), *args], cwd=root, text=True,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def faced(tmp_path_factory, sample_clips) -> Path:
    """A project of two sample clips whose faces were extracted (left untouched)."""
    root = make_project(tmp_path_factory.mktemp("faced"), sample_clips[:2],
                        {"runner": {"n_jobs": 1}})
    assert mer(["extract", "faces", "--root", str(root), "--params",
                str(root / "params.yaml"), "-q"]) == 0
    return root


@pytest.fixture
def project(faced, tmp_path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(faced, root, symlinks=True)
    return root


def _run(root: Path, *args: str) -> int:
    return mer([*args, "--root", str(root), "--params", str(root / "params.yaml")])


def test_version_and_python_m_pipeline(tmp_path):
    from pipeline import __version__

    p = subprocess.run([str(BIN / "mer"), "--version"], capture_output=True, text=True)
    assert p.returncode == 0
    assert f"mer-pipeline {__version__}" in p.stdout and f"schema {SCHEMA_VERSION}" in p.stdout
    q = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert q.returncode == 0 and q.stdout == p.stdout
    # python -m pipeline is the mer command: the same exit codes too
    q = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(tmp_path / "nope")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert q.returncode == 3 and q.stderr.startswith("mer: ")


def test_help_lists_stages_adapters_and_exit_codes():
    p = subprocess.run([str(BIN / "mer"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    text = p.stdout
    for name in [*EXTRACTORS, *ADAPTERS]:  # from the registries: a new one appears by itself
        assert name in text, name
    assert ", ".join(sorted(EXTRACTORS)) in text and ", ".join(sorted(ADAPTERS)) in text
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130 "):
        assert f"  {code}" in text, code


def test_each_exit_code(project, tmp_path, capsys):
    """0, 1, 2, 3 and 4 (130: test_ctrl_c_is_one_line_and_stops_the_workers)."""
    assert _run(project, "inspect", str(project / "data/features/sample/faces")) == 0
    assert _run(project, "verify", str(project / "data/features/sample/faces")) == 0
    (project / "data/features/sample/faces/shard-00000.h5").rename(
        project / "data/features/sample/faces/shard-00001.h5")
    assert _run(project, "verify", str(project / "data/features/sample/faces")) == 1
    assert _run(project, "extract", "mel", "--set", "mel.variant=codes") == 2
    assert _run(project, "extract", "mel", "--corpus", str(tmp_path / "nowhere")) == 3
    (project / "garbage.h5").write_bytes(b"not an HDF5 file at all")
    capsys.readouterr()
    assert _run(project, "inspect", str(project / "garbage.h5")) == 4
    err = capsys.readouterr().err
    assert err.startswith("mer: failed: ") and err.count("\n") == 1


def test_strict_ingest_exits_1(tmp_path, sample_clips):
    """``mer ingest --strict`` with a file that cannot be read (it set runner.strict only,
    which ingest does not read)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy2(sample_clips[0], videos / "good.mp4")
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 9)
    args = ["ingest", "--adapter", "folder", "--corpus", str(videos), "--name", "v", "--root",
            str(tmp_path / "p"), "-q"]
    assert mer(args) == 0
    assert mer([*args, "--strict"]) == 1


def test_yaml_tag_in_params_is_a_parameter_error(project, capsys):
    """A YAML tag (or a syntax error) in params.yaml exits 2 naming the file and line, not 4."""
    params = project / "params.yaml"
    params.write_text(params.read_text() + "\nextra_tag: !!python/object/apply:os.system [ls]\n")
    capsys.readouterr()
    assert _run(project, "ingest") == 2
    err = capsys.readouterr().err
    assert "params.yaml" in err and "not plain YAML" in err and err.count("\n") == 1
    params.write_text("corpus: [unclosed\n")
    assert _run(project, "ingest") == 2
    assert _run(project, "ingest", "--set", "corpus.name=!!binary x") == 2


def test_landmarks_before_faces_is_missing_input(tmp_path, sample_clips, capsys):
    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    capsys.readouterr()
    assert _run(root, "extract", "landmarks", "-q") == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run the faces stage first" in err
    assert not (root / "data/features/sample/landmarks").exists()
    assert not (root / "manifests/sample/failures/landmarks.csv").exists()


def test_missing_model_files_are_missing_input(project, capsys):
    """Missing FAN weights exit 3, as missing word vectors do (they exited 4 and 3)."""
    capsys.readouterr()
    assert _run(project, "extract", "landmarks", "-q", "--set", "landmarks.backend=fan",
                "--set", f"landmarks.fan_weights={project / 'no-such.pth.tar'}") == 3
    err = capsys.readouterr().err
    assert "no-such.pth.tar" in err and err.count("\n") == 1
    assert _run(project, "extract", "words", "-q", "--set", "words.vectors.format=glove",
                "--set", f"words.vectors.path={project / 'no-glove.txt'}") == 3
    assert "no-glove.txt" in capsys.readouterr().err
    # the speaker choice's lip pass loads dlib's predictor: missing is missing input too,
    # named by the faces parameter that sets it
    assert _run(project, "extract", "faces", "-q", "--set", "faces.select=speaker",
                "--set", f"faces.speaker.dlib_model={project / 'no-dlib.dat'}") == 3
    err = capsys.readouterr().err
    assert "no-dlib.dat" in err and "faces.speaker.dlib_model" in err and err.count("\n") == 1


def test_unknown_clip_in_show_is_missing_input(project, capsys):
    capsys.readouterr()
    out = project / "m.png"
    assert _run(project, "show", "faces", "no_such_clip", "--out", str(out)) == 3
    err = capsys.readouterr().err
    assert "clip no_such_clip is not in" in err and err.count("\n") == 1
    assert not out.exists()
    assert _run(project, "show", "landmarks", "no_such_clip") == 3  # no landmarks at all
    assert _run(project, "show", "faces", "../x") == 2  # not a clip id


def test_folder_without_videos_is_missing_input_with_prefix_and_json(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no media here")
    args = ["ingest", "--adapter", "folder", "--corpus", str(empty), "--name", "e"]
    p = _mer(tmp_path, *args)
    assert p.returncode == 3 and p.stderr.startswith("mer: ") and "no clips found" in p.stderr
    p = _mer(tmp_path, *args, "--json")
    doc = json.loads(p.stdout)
    assert p.returncode == 3 and doc["exit"] == 3 and not doc["ok"] and "no clips" in doc["error"]


def test_json_over_several_stages_is_one_document(tmp_path, sample_clips):
    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    p = _mer(root, "extract", "spectrogram", "words", "--json", "-q")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)  # one document, json.load reads it
    assert [s["feature"] for s in doc["stages"]] == ["spectrogram", "words"]
    assert all(s["failed"] == 0 for s in doc["stages"]) and doc["exit"] == 0

    # each stage's summary is said once: one line names its failures file
    p = _mer(root, "extract", "spectrogram", "words")
    assert p.returncode == 0
    lines = (p.stdout + p.stderr).splitlines()
    for stage in ("spectrogram", "words"):
        said = [ln for ln in lines if f"failures/{stage}.csv" in ln]
        assert len(said) == 1, said


def test_mistyped_stage_leaves_no_lock_file(tmp_path, sample_clips, capsys):
    from pipeline.config import load_params
    from pipeline.workflow import run_feature, run_ingest

    root = make_project(tmp_path, sample_clips[:1], {"runner": {"n_jobs": 1}})
    capsys.readouterr()
    assert _run(root, "extract", "mell", "-q") == 2
    assert "unknown feature 'mell'" in capsys.readouterr().err
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    with pytest.raises(ValueError, match="unknown feature 'mell'"):
        run_feature(params, "mell", root)
    assert not [p for p in root.rglob("*.lock")], list(root.rglob("*.lock"))


def test_failure_reasons_hold_no_absolute_path_or_errno(tmp_path, sample_clips):
    root = make_project(tmp_path, sample_clips[:2], {"runner": {"n_jobs": 1}})
    assert _run(root, "ingest", "-q") == 0
    gone = next((root / "corpus").rglob("*.mp4"))
    gone.unlink()  # missing since ingest: a failure row whose error names the file
    assert _run(root, "extract", "spectrogram", "-q") == 0
    [fail] = read_failures(root / "manifests/sample/failures/spectrogram.csv")
    assert gone.name in fail.reason
    for absolute in (str(root), str(root.resolve()), "/tmp"):
        assert absolute not in fail.reason, fail.reason
    assert "Errno" not in fail.reason, fail.reason


def test_inspect_into_a_closed_pipe_ends_quietly(faced):
    """``mer inspect ... | head``: the reader is gone before mer writes."""
    read, write = os.pipe()
    os.close(read)
    p = subprocess.run([str(BIN / "mer"), "inspect", "data/features/sample/faces"], cwd=faced,
                       stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert "BrokenPipeError" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 0, p.stderr


def test_ctrl_c_is_one_line_and_stops_the_workers(tmp_path, sample_clips):
    """A real SIGINT, as a terminal's Ctrl-C sends it (to the whole process group), to a
    real ``mer extract`` while its two workers extract faces."""
    root = make_project(tmp_path, sample_clips[:6], {"runner": {"n_jobs": 2, "batch_clips": 1}})
    assert _run(root, "ingest", "-q") == 0
    # As a terminal starts it: SIGINT at its default. A shell's background job (`make test &`,
    # nohup) ignores SIGINT, and Python then never turns it into KeyboardInterrupt.
    p = subprocess.Popen([str(BIN / "mer"), "extract", "faces"], cwd=root, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    proc = psutil.Process(p.pid)

    def workers() -> list[psutil.Process]:  # the loky workers, not the progress manager or
        found = []                           # the resource trackers, which start first
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if any("LokyProcess" in part for part in child.cmdline()):
                    found.append(child)
        return found

    deadline = time.monotonic() + 240
    while len(workers()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    started = workers()
    assert len(started) >= 2, "the workers never started"
    time.sleep(2.0)  # let them take their first clips
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.rstrip().splitlines()[-1] == "mer: interrupted"
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, alive
