"""Workers that die, runs that overlap, outputs that must not depend on where they ran.

Real stages in real worker processes; deaths are real SIGKILLs (what the kernel's
out-of-memory killer sends), aimed at the worker by the pid in its temporary file's name."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.cli import main as mer
from pipeline.manifest import read_failures
from pipeline.paths import Layout
from pipeline.store import FeatureReader
from tests.conftest import make_project

BIN = Path(sys.executable).parent
NAME = "vids"


def _videos(tmp_path: Path, clips: list[Path]) -> Path:
    root = tmp_path / "videos"
    root.mkdir()
    for i, clip in enumerate(clips):
        shutil.copy2(clip, root / f"c{i}.mp4")
    return root


def _args(root: Path, videos: Path, *stages: str, jobs: int = 2) -> list[str]:
    return ["extract", *stages, "--corpus", str(videos), "--adapter", "folder", "--name", NAME,
            "--root", str(root), "--set", f"runner.cache_dir={root / 'cache'}",
            "--set", f"runner.n_jobs={jobs}", "--set", "runner.batch_clips=1", "-q"]


def _tmp_files(cache: Path) -> list[Path]:
    return list(cache.rglob("*.h5.*.tmp")) if cache.exists() else []


def _worker_pid(tmp: Path) -> int:
    return int(tmp.name.split(".h5.", 1)[1].split(".")[1])


class Killer(threading.Thread):
    """Kills every worker found writing the clip of the first temporary file it sees."""

    def __init__(self, cache: Path) -> None:
        super().__init__(daemon=True)
        self.cache, self.key, self.kills, self.stop = cache, "", 0, False

    def run(self) -> None:
        while not self.stop:
            for tmp in _tmp_files(self.cache):
                key = tmp.name.split(".h5.", 1)[0]
                self.key = self.key or key
                if key == self.key:
                    try:
                        os.kill(_worker_pid(tmp), signal.SIGKILL)
                        self.kills += 1
                    except (ProcessLookupError, ValueError):
                        pass
            time.sleep(0.002)


def test_a_worker_that_dies_costs_one_clip(tmp_path, sample_clips):
    videos = _videos(tmp_path, sample_clips[:4])
    root = tmp_path / "p"
    killer = Killer(root / "cache")
    killer.start()
    try:
        code = mer(_args(root, videos, "faces"))
    finally:
        killer.stop = True
        killer.join()
    assert code == 0 and killer.kills >= 2
    lay = Layout(NAME, root)
    fails = read_failures(lay.failures_csv("faces"))
    assert len(fails) == 1, fails
    assert "worker died" in fails[0].reason and "twice" in fails[0].reason
    assert "often out of memory" in fails[0].reason
    with FeatureReader(lay.features_dir("faces")) as r:
        assert len(r) == 3 and fails[0].clip_id not in r


def test_workers_stop_when_the_stage_is_killed(tmp_path, sample_clips):
    videos = _videos(tmp_path, sample_clips[:8])
    root = tmp_path / "p"
    proc = subprocess.Popen([str(BIN / "mer"), *_args(root, videos, "faces")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(pids) < 2 and proc.poll() is None:
        pids |= {_worker_pid(t) for t in _tmp_files(root / "cache")}
        time.sleep(0.01)
    assert pids, "no worker started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    alive = set(pids)
    while alive and time.time() < deadline:
        alive = {p for p in alive if _alive(p)}
        time.sleep(0.1)
    assert not alive, f"workers {alive} kept running after their stage was killed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (gone) parent's reaper is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_two_runs_at_once_never_lose_a_clip(tmp_path, sample_clips):
    """Two terminals start the same stage on a cold cache: each run completes with every
    clip or refuses at once, and the shards equal an uninterrupted run's, bit for bit."""
    videos = _videos(tmp_path, sample_clips[:4])
    ref = tmp_path / "ref"
    assert mer(_args(ref, videos, "mel", jobs=1)) == 0
    want = (Layout(NAME, ref).features_dir("mel") / "shard-00000.h5").read_bytes()
    for i in range(3):
        root = tmp_path / f"r{i}"
        runs = [subprocess.Popen([str(BIN / "mer"), *_args(root, videos, "mel", jobs=1)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        outs = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
        for code, err in outs:
            assert code == 0 or (code == 4 and "another run is writing" in err), err
        assert any(code == 0 for code, _ in outs)
        lay = Layout(NAME, root)
        assert read_failures(lay.failures_csv("mel")) == []
        assert (lay.features_dir("mel") / "shard-00000.h5").read_bytes() == want


STAGES = ("mel", "spectrogram", "words", "faces", "landmarks")


@pytest.mark.slow
def test_same_inputs_same_bytes_in_two_checkouts(tmp_path, sample_clips):
    """Two projects at different paths, each with its own cache: every extraction stage
    writes byte-identical shards and index (no path, host or time in what is stored)."""
    roots = [make_project(tmp_path / name, sample_clips[:1], {"runner": {"n_jobs": 1}})
             for name in ("one", "second-checkout")]
    for root in roots:
        assert mer(["ingest", "--root", str(root), "--params", str(root / "params.yaml"),
                    "-q"]) == 0
        for stage in STAGES:
            assert mer(["extract", stage, "--root", str(root), "--params",
                        str(root / "params.yaml"), "-q"]) == 0
    for stage in STAGES:
        files = sorted(p.name for p in Layout("sample", roots[0]).features_dir(stage).iterdir())
        assert "index.json" in files and len(files) > 1
        for name in files:
            a = (Layout("sample", roots[0]).features_dir(stage) / name).read_bytes()
            b = (Layout("sample", roots[1]).features_dir(stage) / name).read_bytes()
            assert a == b, f"{stage}/{name} differs between the two checkouts"
