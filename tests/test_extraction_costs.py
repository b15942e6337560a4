"""What was cut from each clip's cost keeps what it guarded: the same samples from the faster
audio path, one BLAS thread while a clip is extracted (and the caller's threads after), cache
files in place and synced before their batch is reported, and landmark workers that spread
over the cores of a GPU machine. Real media (the sample clips), real libraries."""

from __future__ import annotations

import os
import shutil
import sys
import types
from pathlib import Path

import av
import numpy as np
from threadpoolctl import threadpool_info

from pipeline.cache_commit import CacheCommitter
from pipeline.media.audio import iter_audio
from pipeline.media.source_file import SourceFile
from tests.media import write_wav


def _reference(path: Path) -> tuple[int, np.ndarray]:
    """Every sample of the first audio stream as PyAV gives it from the path with its default
    probing (``to_ndarray`` of each frame, converted to planar float when it is not)."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        conv = av.AudioResampler(format="fltp", rate=s.codec_context.sample_rate)
        parts = []
        for frame in c.decode(s):
            frames = [frame] if frame.format.name == "fltp" else conv.resample(frame)
            parts += [f.to_ndarray() for f in frames]
        parts += [f.to_ndarray() for f in conv.resample(None)]
        return s.codec_context.sample_rate, np.concatenate(parts, axis=1)


def test_audio_read_through_the_owner_is_what_pyav_gives(tmp_path, sample_clips):
    """Probing without decoding video frames and reading planar frames from their planes
    change no sample: MP4/AAC clips, a WAV (16-bit PCM, converted), at the native rate."""
    wav = write_wav(sample_clips[2], tmp_path / "s.wav", 2.0, rate=16000)
    for path in [*sample_clips[:6], wav]:
        rate, want = _reference(path)
        with SourceFile(path) as f:
            got = np.concatenate(list(iter_audio(f.reader(), rate, mono=False)), axis=1)
            f.finish()
        np.testing.assert_array_equal(got, want)


def _blas_threads() -> int:
    return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")


def test_one_thread_per_clip_and_the_callers_threads_after():
    import pipeline.thread_limits as tl
    from pipeline.thread_limits import one_thread

    before = _blas_threads()
    with one_thread():
        assert _blas_threads() == 1
    assert _blas_threads() == before
    scans = []
    real = tl.ThreadpoolController

    class Counting(real):
        def __init__(self) -> None:
            scans.append(1)
            super().__init__()

    tl.ThreadpoolController = Counting
    try:
        tl._controller = None
        for _ in range(20):
            with one_thread():
                pass
        assert len(scans) == 1  # one scan of the libraries, not one per clip
        sys.modules["_a_module_imported_since"] = types.ModuleType("x")
        with one_thread():
            pass
        assert len(scans) == 2
    finally:
        sys.modules.pop("_a_module_imported_since", None)
        tl.ThreadpoolController = real
        tl._controller = None


def test_a_batch_is_reported_with_its_files_synced_and_in_place(tmp_path):
    finals = []
    with CacheCommitter() as c:
        for i in range(6):
            tmp = tmp_path / f"{i}.h5.tmp"
            tmp.write_bytes(os.urandom(1000))
            final = tmp_path / "ab" / f"{i}.h5"
            final.parent.mkdir(exist_ok=True)
            c.commit(f"c{i}", tmp, final)
            finals.append((final, tmp))
        # a file whose directory vanished cannot be put in place: its clip fails
        gone = tmp_path / "gone"
        gone.mkdir()
        (tmp_path / "x.tmp").write_bytes(b"x")
        c.commit("bad", tmp_path / "x.tmp", gone / "x.h5")
        shutil.rmtree(gone)
    for final, tmp in finals:
        assert final.stat().st_size == 1000 and not tmp.exists()
    assert list(c.errors) == ["bad"] and isinstance(c.errors["bad"], FileNotFoundError)
    assert not (tmp_path / "x.tmp").exists()


def test_landmark_workers_spread_over_cores_on_a_gpu_machine(monkeypatch):
    """On a machine whose GPU ``auto`` would take, dlib landmarks (the default backend) still
    run on the CPU: their workers get device cpu, touch no GPU, and take one torch thread
    each, so ``runner.n_jobs`` workers spread over the cores."""
    import torch

    from pipeline import devices, runner
    from pipeline.devices import CudaStatus, worker_config
    from pipeline.features import make_extractor

    usable = CudaStatus(True, "1 CUDA device(s): NVIDIA H100", 1, "13.0", "580.65.06",
                        ("NVIDIA H100",))
    monkeypatch.setattr(devices, "cuda_status", lambda: usable)
    monkeypatch.setattr(devices, "_PLACED", None)
    assert make_extractor("faces", {"device": "auto"}).device == "cuda"  # the GPU is there
    lm = make_extractor("landmarks", {"device": "auto"})
    assert lm.config.backend == "dlib" and lm.device == "cpu"
    config = worker_config({"device": "auto", "backend": "dlib"}, lm.device)
    assert config["device"] == "cpu"
    placed = []
    monkeypatch.setattr(torch.cuda, "set_device", placed.append)
    monkeypatch.setattr(runner, "_WORKER_EXTRACTORS", {})
    threads = torch.get_num_threads()
    try:
        ex = runner._worker_extractor("landmarks", config, n_threads=1, slot=3)
        assert ex.device == "cpu" and placed == [] and devices._PLACED is None
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
