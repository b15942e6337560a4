"""Device choice on machines this one is not: the GPU side is faked at torch's device queries
(availability, count, capability) and at the driver's version file; everything above them
(pipeline.devices, the extractors' params and cache keys, the trainer's device) is real."""

from __future__ import annotations

import logging

import pytest
import torch

from pipeline import devices
from pipeline.devices import (
    CudaStatus,
    choose_device,
    min_capability,
    place_worker,
    worker_config,
    worker_gpu,
)
from pipeline.features import ExtractionError, make_extractor
from pipeline.runner import cache_key
from pipeline.training.distributed import resolve_device


@pytest.fixture
def fresh(monkeypatch):
    """Forget which choices were logged and which GPU this process took."""
    monkeypatch.setattr(devices, "_SAID", set())
    monkeypatch.setattr(devices, "_PLACED", None)


def _machine(monkeypatch, tmp_path, *, driver="", gpus=(), built="13.0"):
    """A machine with an NVIDIA driver ``driver`` ("" = none) and GPUs ``(name, (major,
    minor))``, as torch and /proc would report them."""
    version_file = tmp_path / "nvidia-version"
    if driver:
        version_file.write_text(
            f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {driver}  Tue Jul  8 2025\n"
            "GCC version:  gcc version 12.2.0\n"
        )
    monkeypatch.setattr(devices, "DRIVER_VERSION_FILE", version_file)
    monkeypatch.setattr(torch.version, "cuda", built)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(gpus))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(gpus))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: gpus[i][0])
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: gpus[i][1])
    arch = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: arch)


H200 = ("NVIDIA H200", (9, 0))
V100 = ("Tesla V100-SXM2-16GB", (7, 0))


def test_auto_says_which_device_and_why_once_per_stage(monkeypatch, tmp_path, fresh, caplog):
    caplog.set_level(logging.INFO, logger="pipeline.devices")
    _machine(monkeypatch, tmp_path)
    assert choose_device("auto", "faces") == "cpu"
    assert choose_device("auto", "faces") == "cpu"
    assert choose_device("auto", "landmarks") == "cpu"
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "faces: device auto -> cpu (no NVIDIA GPU driver found (no GPU here))",
        "landmarks: device auto -> cpu (no NVIDIA GPU driver found (no GPU here))",
    ]


@pytest.mark.parametrize(
    ("driver", "gpus", "built", "chosen", "reason"),
    [
        ("", (), "13.0", "cpu", "no NVIDIA GPU driver found"),
        (
            "550.54.15",
            (),
            "13.0",
            "cpu",
            "NVIDIA driver 550.54.15 is too old: torch is built "
            "for CUDA 13.0, which needs driver R580 or newer",
        ),
        ("580.65.06", (), "13.0", "cpu", "torch sees no CUDA device"),
        (
            "580.65.06",
            (V100,),
            "13.0",
            "cpu",
            "GPU 0 (Tesla V100-SXM2-16GB) has compute "
            "capability 7.0; this torch build (CUDA 13.0) needs 7.5 or higher",
        ),
        ("580.65.06", (H200, H200), "13.0", "cuda", "2 CUDA device(s): NVIDIA H200"),
        ("", (), None, "cpu", "no CUDA support (a CPU-only wheel)"),
    ],
)
def test_the_reasons(monkeypatch, tmp_path, fresh, caplog, driver, gpus, built, chosen, reason):
    caplog.set_level(logging.INFO, logger="pipeline.devices")
    _machine(monkeypatch, tmp_path, driver=driver, gpus=gpus, built=built)
    assert choose_device("auto", "faces") == chosen
    assert reason in caplog.records[0].getMessage()
    if chosen == "cpu":  # asked for explicitly, the same reason stops the stage
        with pytest.raises(RuntimeError, match="faces.device is cuda but CUDA cannot be used"):
            choose_device("cuda", "faces")
        explicit = make_extractor("faces", {"device": "cuda"})
        assert explicit.params()["device"] == "cuda"  # planned here, checked where it loads
        with pytest.raises(ExtractionError, match=reason.split(" (")[0][:30]):
            explicit.ensure_setup()


def test_min_capability_of_a_wheel():
    assert min_capability(["sm_75", "sm_80", "sm_90a", "sm_100", "sm_120"]) == (7, 5)
    assert min_capability(["sm_50", "sm_60", "sm_70", "sm_80"]) == (5, 0)
    assert min_capability([]) is None
    # the pinned wheel here: CUDA 13.0, oldest architecture 7.5 (Turing)
    assert torch.version.cuda.startswith("13.") and min_capability(torch.cuda.get_arch_list()) == (
        7,
        5,
    )


def test_workers_take_the_gpus_in_turn(monkeypatch, tmp_path, fresh):
    _machine(monkeypatch, tmp_path, driver="580.65.06", gpus=(H200, H200, H200))
    assert [worker_gpu(k, 3) for k in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert place_worker("cpu", 4) is None and chosen == []  # CPU stages touch no GPU
    assert place_worker("cuda", 4) == 1 and chosen == [1]
    assert place_worker("cuda", 2) == 1 and chosen == [1]  # a worker stays on its GPU
    # torchrun's local ranks likewise
    assert resolve_device("auto", local_rank=5) == torch.device("cuda", 2)
    assert resolve_device("cpu", local_rank=5) == torch.device("cpu")


def test_a_worker_without_gpu_is_not_placed_and_setup_says_why(monkeypatch, tmp_path, fresh):
    _machine(monkeypatch, tmp_path, driver="550.54.15")
    assert place_worker("cuda", 0) is None
    with pytest.raises(ExtractionError, match="driver 550.54.15 is too old"):
        make_extractor("faces", {"device": "cuda"}).ensure_setup()


def test_the_resolved_device_is_in_params_cache_key_and_provenance(monkeypatch, fresh):
    """faces with device auto: "cpu" here; with CUDA reported usable (faked only at the
    availability check) "cuda", its own cache key, and the GPU batch size."""
    from pipeline.manifest import ManifestEntry

    entry = ManifestEntry(clip_id="c", path="c.mp4", sha256="ab" * 32)
    cpu = make_extractor("faces", {"device": "auto"})
    assert cpu.params()["device"] == "cpu" and cpu.batch_in_use == cpu.config.batch_size
    assert cpu.provenance()["device"]["device"] == "cpu"
    usable = CudaStatus(
        True, "1 CUDA device(s): NVIDIA H200", 1, "13.0", "580.65.06", ("NVIDIA H200",)
    )
    monkeypatch.setattr(devices, "cuda_status", lambda: usable)
    gpu = make_extractor("faces", {"device": "auto"})
    assert gpu.params()["device"] == "cuda"
    assert gpu.batch_in_use == gpu.config.cuda_batch_size == 120
    assert gpu.track_settings().batch_size == 120
    prov = gpu.provenance()["device"]
    assert prov["device"] == "cuda" and prov["gpu"] == "NVIDIA H200"
    assert "TF32 off" in prov["fp32"]
    assert cache_key(cpu, entry) != cache_key(gpu, entry)
    # the workers run what the key says, not their own reading of auto
    assert worker_config({"device": "auto", "fps": 0}, gpu.device)["device"] == "cuda"
    assert worker_config({"sample_rate": 16000}, None) == {"sample_rate": 16000}
    explicit = make_extractor("faces", {"device": "cuda"})
    assert cache_key(explicit, entry) == cache_key(gpu, entry)  # auto and cuda: one output
    fan = make_extractor("landmarks", {"backend": "fan", "device": "auto"})
    assert fan.device == "cuda"
    assert make_extractor("landmarks", {"backend": "dlib"}).device == "cpu"


def test_extraction_runs_in_exact_fp32():
    """TF32 is off while an extractor's networks run, and as it was before afterwards (the
    first block in saves the switches, the last one out restores them, across threads)."""
    import threading

    from pipeline.devices import exact_fp32

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        faces = make_extractor("faces", {"device": "cpu"})
        faces.ensure_setup()
        assert torch.backends.cudnn.allow_tf32 is True  # loading changes nothing
        inside, go, done = [], threading.Event(), threading.Event()

        def other():
            with exact_fp32():
                go.set()
                done.wait(5)
                inside.append(torch.backends.cudnn.allow_tf32)

        t = threading.Thread(target=other)
        with exact_fp32():
            t.start()
            go.wait(5)
            assert torch.backends.cudnn.allow_tf32 is False
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False  # the other thread is still inside
        done.set()
        t.join()
        assert inside == [False]
        assert torch.backends.cudnn.allow_tf32 is True  # the last one out restored them
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
