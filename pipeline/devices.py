"""Which device a stage runs on, why, and which GPU each worker takes.

``device: auto`` means CUDA when this torch build can use a GPU here, else the CPU. The
pinned torch wheel is built for CUDA 13.0: it needs an NVIDIA driver of branch R580 or newer,
and a GPU of compute capability at least that of the oldest architecture the wheel carries
(7.5 for CUDA 13.0). When ``auto`` falls back to the CPU the log says why, once per stage
(no NVIDIA driver, driver too old, capability too low, a CPU-only torch build). ``cuda``
asked for explicitly on such a machine is an error with the same reason.

Extraction workers spread over the visible GPUs: worker ``k`` uses GPU ``k mod n``
(:func:`place_worker`), and extraction's forward passes run in exact fp32
(:func:`exact_fp32`, restored afterwards): TF32 convolutions move MTCNN's boxes far enough
that CPU and GPU faces would differ.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Oldest driver branch each CUDA major version runs on (NVIDIA's CUDA toolkit release
# notes, "minimum required driver version" with minor-version compatibility).
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class CudaStatus:
    """What this machine and this torch build allow."""

    usable: bool  # auto would choose CUDA
    reason: str  # why (in words, for the log)
    n_devices: int = 0  # usable GPUs
    torch_cuda: str = ""  # CUDA version the torch wheel was built for ("" = CPU build)
    driver: str = ""  # NVIDIA driver version ("" = none found)
    names: tuple[str, ...] = ()  # the GPUs' names


def driver_version() -> str:
    """The loaded NVIDIA kernel driver's version ("" when there is none)."""
    try:
        text = DRIVER_VERSION_FILE.read_text()
    except OSError:
        return ""
    m = re.search(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)", text)
    return m.group(1) if m else ""


def min_capability(arch_list: list[str]) -> tuple[int, int] | None:
    """The lowest compute capability among a torch build's ``sm_XY`` architectures."""
    caps = []
    for a in arch_list:
        m = re.fullmatch(r"sm_(\d+?)(\d)a?", a)
        if m:
            caps.append((int(m.group(1)), int(m.group(2))))
    return min(caps) if caps else None


def cuda_status() -> CudaStatus:
    """Whether ``auto`` can take the GPU, and why not when it cannot."""
    import torch

    built = torch.version.cuda or ""
    driver = driver_version()
    if not built:
        return CudaStatus(False, "this torch build has no CUDA support (a CPU-only wheel)")
    need = MIN_DRIVER.get(int(built.split(".")[0]))
    if not torch.cuda.is_available():
        if not driver:
            return CudaStatus(False, "no NVIDIA GPU driver found (no GPU here)", 0, built)
        major = int(driver.split(".")[0])
        if need and major < need:
            return CudaStatus(
                False,
                f"NVIDIA driver {driver} is too old: torch is built for CUDA {built}, which "
                f"needs driver R{need} or newer",
                0,
                built,
                driver,
            )
        return CudaStatus(
            False,
            f"NVIDIA driver {driver} is loaded but torch sees no CUDA device (check "
            f"CUDA_VISIBLE_DEVICES and the device permissions)",
            0,
            built,
            driver,
        )
    n = torch.cuda.device_count()
    names = tuple(torch.cuda.get_device_name(i) for i in range(n))
    lowest = min_capability(torch.cuda.get_arch_list())
    if lowest is not None:
        caps = [tuple(torch.cuda.get_device_capability(i)) for i in range(n)]
        too_low = [i for i, c in enumerate(caps) if c < lowest]
        if too_low:
            i = too_low[0]
            return CudaStatus(
                False,
                f"GPU {i} ({names[i]}) has compute capability {caps[i][0]}.{caps[i][1]}; this "
                f"torch build (CUDA {built}) needs {lowest[0]}.{lowest[1]} or higher",
                0,
                built,
                driver,
                names,
            )
    return CudaStatus(True, f"{n} CUDA device(s): {', '.join(names)}", n, built, driver, names)


_SAID: set[tuple[str, str, str]] = set()


def choose_device(preference: str, stage: str) -> str:
    """``"cpu"`` or ``"cuda"`` for ``preference`` (auto | cpu | cuda), logged once per stage
    and process. ``cuda`` on a machine that cannot run it raises RuntimeError naming why."""
    if preference == "cpu":
        return "cpu"
    if preference not in ("auto", "cuda"):
        raise ValueError(f"{stage}.device: auto, cpu or cuda, got {preference!r}")
    status = cuda_status()
    if preference == "cuda" and not status.usable:
        raise RuntimeError(f"{stage}.device is cuda but CUDA cannot be used: {status.reason}")
    chosen = "cuda" if status.usable else "cpu"
    said = (stage, preference, chosen)
    if said not in _SAID:
        _SAID.add(said)
        log.info("%s: device %s -> %s (%s)", stage, preference, chosen, status.reason)
    return chosen


def device_provenance(device: str) -> dict[str, str]:
    """What a shard records about the device that made it."""
    import torch

    out = {"device": device, "torch": torch.__version__}
    if device == "cuda":
        status = cuda_status()
        out.update(
            cuda=status.torch_cuda,
            driver=status.driver,
            gpu=status.names[0] if status.names else "",
            fp32="ieee (TF32 off)",
        )
    return out


def worker_gpu(slot: int, n_gpus: int) -> int:
    """The GPU of worker ``slot``: slot mod n, so that workers fill every GPU in turn."""
    if n_gpus < 1:
        raise ValueError("no GPU to place the worker on")
    return slot % n_gpus


_PLACED: int | None = None  # this process's GPU, once placed


def place_worker(device: str, slot: int) -> int | None:
    """Put this worker process on GPU ``slot mod n`` (``torch.cuda.set_device``) when
    ``device`` is cuda; the first call in a process decides and later ones keep it, so a
    worker loads its models on one GPU only. The runner passes the index of the worker's
    first batch as ``slot``: the first batches go one to each worker, so workers take the
    GPUs in turn. Returns the GPU index (None on the CPU)."""
    global _PLACED
    if device != "cuda":
        return None
    if _PLACED is None:
        torch = sys.modules.get("torch") or __import__("torch")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:  # the extractor's setup stops with the reason (choose_device)
            return None
        _PLACED = worker_gpu(slot, n)
        torch.cuda.set_device(_PLACED)
        log.info("worker on GPU %d", _PLACED)
    return _PLACED


_EXACT_GUARD = threading.Lock()
_EXACT_DEPTH = 0
_EXACT_SAVED: tuple[bool, bool] = (False, False)


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """Full fp32 for convolutions and matmuls on CUDA (TF32 off), as on the CPU, while the
    block runs (an extractor's forward pass). The switches are process-wide: the first block
    in (of any thread) saves them and the last one out restores them, so extraction never
    leaves TF32 off for the training that follows in the same process. Uses the legacy
    switches only: torch refuses to read them once the new per-backend API was mixed in.
    """
    import torch

    global _EXACT_DEPTH, _EXACT_SAVED
    with _EXACT_GUARD:
        if _EXACT_DEPTH == 0:
            _EXACT_SAVED = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        _EXACT_DEPTH += 1
    try:
        yield
    finally:
        with _EXACT_GUARD:
            _EXACT_DEPTH -= 1
            if _EXACT_DEPTH == 0:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (
                    _EXACT_SAVED
                )


def worker_config(config: dict, device: str | None) -> dict:
    """The config the workers get: ``device`` as this machine resolved it (the one in the
    cache key), so that a worker never runs ``auto`` its own way under another's key."""
    if device is None or "device" not in config:
        return config
    return {**config, "device": device}
