"""Live progress tells the truth: a line at least every 2 seconds with an ETA while a long
clip is extracted, frame by frame; clip counts as each clip finishes in worker processes;
training runs and epochs with an overall ETA; nothing with -q or --json; no loky "memory
leak" warning when workers grow."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from pipeline import progress
from pipeline.config import load_params
from pipeline.manifest import read_manifest
from pipeline.paths import Layout
from pipeline.runner import run_extraction
from pipeline.workflow import run_ingest

LINE = re.compile(r"(\w+): +(\d+)% \| (\d+)/(\d+) clips \| (?:([\d,]+) frames .*?\| )?.*"
                  r"ETA (\?|\d+:\d\d)")


class Captured:
    """A stream that stamps each line written with the time it arrived."""

    def write(self, text: str) -> None:
        for part in re.split(r"[\r\n]+", text.replace("\x1b[K", "")):
            if part.strip():
                self.lines.append((time.monotonic(), part))

    def flush(self) -> None:
        pass

    def __init__(self, tty: bool = True) -> None:
        self.lines: list[tuple[float, str]] = []
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty  # a terminal: the line is redrawn in place


@pytest.fixture
def captured():
    stream = Captured()
    progress.configure(enabled=True, stream=stream)
    yield stream
    progress._settings.update(enabled=True, interval=None, stream=None)


def _project(project_factory, clips, **runner):
    root = project_factory(clips, runner={"n_jobs": 1, "batch_clips": 4, **runner})
    params = load_params(root / "params.yaml")
    run_ingest(params, root)
    return root, params


def test_a_long_clip_shows_progress_every_two_seconds_with_an_eta(
    project_factory, sample_clips, captured, monkeypatch, one_torch_thread
):
    """The real faces extractor and runner on one clip, its decoder slowed to ~8 frames/s so
    that the clip takes ~10 s (what a 720p clip costs a CPU worker): a progress line arrives
    at least every 2 s, each with an ETA once the first frames are in, and the frame count
    and the share done rise inside the clip, not only when it ends."""
    import pipeline.features.faces as faces_module

    real = faces_module.iter_decoded

    def slowed(*args, **kwargs):
        for item in real(*args, **kwargs):  # the real decoder, its progress hook included
            time.sleep(0.12)
            yield item

    monkeypatch.setattr(faces_module, "iter_decoded", slowed)
    root, params = _project(project_factory, sample_clips[:1])
    entries = read_manifest(Layout("sample", root=root).clips_csv)
    t0 = time.monotonic()
    summary = run_extraction("faces", params.section("faces"), entries, root / "corpus",
                             root / "out", root / "cache", params.runner)
    t1 = time.monotonic()
    assert summary.n_extracted == 1 and not summary.failures
    assert t1 - t0 > 8, "the slowed clip should take several seconds"
    lines = [(t, LINE.match(text)) for t, text in captured.lines]
    assert all(m for _, m in lines), [text for _, text in captured.lines]
    stamps = [t0] + [t for t, _ in lines] + [t1]
    gaps = np.diff(stamps)
    assert gaps.max() <= 2.0, [(round(t - t0, 2), x) for t, x in captured.lines]
    assert np.median(gaps) <= 0.6  # a terminal's line: redrawn twice a second
    inside = [m for _, m in lines if m.group(3) == "0"]  # the clip not yet finished
    shares = [int(m.group(2)) for m in inside]
    frames = [int((m.group(5) or "0").replace(",", "")) for m in inside]
    assert len(set(shares)) >= 4, f"share done inside the clip: {shares}"
    assert len(set(frames)) >= 2, f"frames done inside the clip: {frames}"
    assert shares == sorted(shares)
    etas = [m.group(6) for m in inside if int(m.group(2)) > 0]
    assert etas and all(e != "?" for e in etas), etas
    final = lines[-1][1]
    assert final.group(3) == final.group(4) == "1" and final.group(2) == "100"


def test_worker_processes_report_each_clip_as_it_finishes(
    project_factory, sample_clips, captured
):
    """Two loky workers, batches of 4 clips: the clip count moves one clip at a time (the
    workers report through the parent's queue), not only when a batch of 4 returns."""
    progress.configure(interval=0.01)  # many draws per clip: the count is seen as it moves
    root, params = _project(project_factory, sample_clips[:8], n_jobs=2, batch_clips=4)
    entries = read_manifest(Layout("sample", root=root).clips_csv)
    summary = run_extraction("spectrogram", params.section("spectrogram"), entries,
                             root / "corpus", root / "out", root / "cache", params.runner)
    assert summary.n_extracted == 8
    counts = {int(m.group(3)) for _, t in captured.lines if (m := LINE.match(t))}
    assert counts - {0, 4, 8}, f"clip counts seen: {sorted(counts)}"
    assert max(counts) == 8


@dataclass
class _Task:
    model: object
    steps: int = 3

    def batches(self, epoch: int):
        import torch

        for _ in range(self.steps):
            time.sleep(0.02)
            yield torch.ones(4, 3)

    def loss(self, batch):
        return (self.model(batch) ** 2).mean()

    def validate(self):
        return None


def test_training_shows_one_line_per_run_and_epoch_with_an_overall_eta(captured, caplog):
    import torch

    from pipeline.training.config import OptimConfig
    from pipeline.training.loops.fit import fit

    progress.configure(interval=0.05)
    cfg = replace(OptimConfig(), max_epochs=6, patience=0, step_epochs=0)
    with caplog.at_level(logging.INFO, logger="pipeline.training.loops.fit"), \
            progress.TrainingProgress("evaluate", n_runs=2) as bar:  # fmt: skip
        for k in range(2):
            bar.begin(f"probe fold {k}")
            fit(_Task(torch.nn.Linear(3, 1)), cfg, seed=0)
            bar.end()
    text = [t for _, t in captured.lines]
    runs = {re.search(r"run (\d)/2 probe fold (\d)", t).groups() for t in text
            if "probe fold" in t}
    assert {("1", "0"), ("2", "1")} <= runs, text
    epochs = {int(m.group(1)) for t in text if (m := re.search(r"epoch (\d)/6", t))}
    assert len(epochs) >= 3, text
    assert all(re.search(r"ETA <=(\d+:\d\d|\?)", t) for t in text), text
    assert re.search(r"100% \| .*ETA <=0:00", text[-1]), text[-1]
    # per-epoch detail is debug logging (-v), not a line per epoch at the default level
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "epoch" in r.msg]


def test_quiet_and_json_runs_print_no_progress(tmp_path, sample_clips):
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    for i, clip in enumerate(sample_clips[:2]):
        shutil.copy2(clip, videos / f"c{i}.mp4")
    base = [sys.executable, "-m", "pipeline.cli", "extract", "spectrogram", "--adapter",
            "folder", "--corpus", str(videos), "--name", "v", "--root", str(tmp_path),
            "--set", f"runner.cache_dir={tmp_path / 'cache'}", "--set", "runner.n_jobs=1"]
    for flag in ("-q", "--json", ""):
        (tmp_path / "cache").exists() and shutil.rmtree(tmp_path / "cache")
        proc = subprocess.run(base + ([flag] if flag else []), capture_output=True, text=True,
                              timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert proc.returncode == 0, proc.stderr[-2000:]
        shown = "clips |" in proc.stderr
        assert shown == (flag == ""), (flag, proc.stderr[-1000:])


def _grow(mb: int, batch: list[int]) -> list:
    """A worker task that keeps ``mb`` MB more each call (as a worker's model cache or frame
    buffers do) and takes over a second (loky checks a worker's memory once a second)."""
    from pipeline.runner import ClipOutcome

    held = globals().setdefault("_HELD", [])
    held.append(np.ones(mb * 2**20 // 8))
    time.sleep(1.2)
    import os

    return [ClipOutcome(f"c{batch[0]}", True, 0.0, reason=str(os.getpid()))]


def test_workers_that_grow_are_kept_without_a_leak_warning():
    """loky restarts a worker whose memory grew 300 MB since its first task, with a
    "memory leak" warning: our workers keep their models, and say nothing."""
    import psutil  # noqa: F401 - loky's guard runs only with psutil (a dev dependency)

    from pipeline.config import RunnerConfig
    from pipeline.execution import run_batches

    cfg = RunnerConfig(n_jobs=2, backend="loky")
    got = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_batches(_grow, [[i] for i in range(8)], (160,), cfg, key=str,
                    on_done=got.extend, on_lost=lambda *a: None)
    assert len(got) == 8
    pids = {o.reason for o in got}
    assert len(pids) <= 2, f"workers were restarted: {pids}"
    assert not [w for w in caught if "memory leak" in str(w.message)]
