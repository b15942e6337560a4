"""CPU kernels pinned where their choice would reach stored values.

OpenCV, Intel MKL (PyTorch's BLAS on x86-64) and oneDNN (PyTorch's convolutions) each pick
their code by the CPU they run on (AVX2, AVX-512, cache sizes), and their float results differ
in the last bits from one CPU to another: a face box, and with it a crop's pixels, would then
depend on the machine. The visual extractors call these before their first frame:

1. :func:`pin_opencv`: ``cv2.setUseOptimized(False)``: OpenCV runs its baseline code (and no
   IPP), the same on every x86-64 CPU. For the whole process.
2. :func:`pin_mkl`: MKL's conditional numerical reproducibility, branch ``COMPATIBLE`` and
   ``STRICT``: the same results on every x86-64 CPU and for any thread count (Intel's
   guarantee). MKL reads it once, before its first call: the stages and ``mer`` set
   ``MKL_CBWR`` in the environment at start (:func:`pin_mkl_environment`, inherited by their
   workers), and :func:`pin_mkl` sets it through MKL's own call when the process has not used
   MKL yet, or fails with what to do when it has.
3. :func:`cpu_exact`: oneDNN off around the model (its JIT kernels follow the CPU's ISA and
   cache sizes): convolutions take PyTorch's own path (im2col and the pinned MKL GEMM).

The cost is in ``bench/bench_visual.py``; ``tests/test_cpu_kernels.py`` plays other CPUs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

MKL_CBWR = "COMPATIBLE,STRICT"
_CBWR_BRANCH = 1  # mkl_cbwr_get(MKL_CBWR_BRANCH)
_CBWR_ALL = -1  # mkl_cbwr_get(MKL_CBWR_ALL)
_CBWR_COMPATIBLE = 3
_CBWR_STRICT = 0x10000
_MODE_CHANGE_FAILURE = -8


class KernelPinError(RuntimeError):
    """A library's kernels could not be pinned, so stored values would follow the CPU."""


def pin_mkl_environment() -> None:
    """Set ``MKL_CBWR`` for this process and its children, unless it is set already (a
    stage's or ``mer``'s first step, before anything calls MKL)."""
    os.environ.setdefault("MKL_CBWR", MKL_CBWR)


def pin_opencv() -> None:
    """OpenCV's baseline code path, no IPP (for the whole process)."""
    import cv2

    if cv2.useOptimized():
        cv2.setUseOptimized(False)


def _torch_mkl() -> ctypes.CDLL | None:
    """PyTorch's CPU library when it carries MKL's service calls, else None."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    return lib if hasattr(lib, "mkl_serv_cbwr_set") else None


def pin_mkl() -> None:
    """MKL in CNR mode ``COMPATIBLE,STRICT`` in this process; KernelPinError when MKL already
    ran in another mode (results would then follow the CPU)."""
    lib = _torch_mkl()
    if lib is None:  # no MKL (other BLAS, other architecture): nothing of MKL's to pin
        return
    wanted = _CBWR_COMPATIBLE | _CBWR_STRICT
    if lib.mkl_serv_cbwr_get(_CBWR_ALL) == wanted:
        return
    status = lib.mkl_serv_cbwr_set(wanted)
    if status == 0 and lib.mkl_serv_cbwr_get(_CBWR_ALL) == wanted:
        return
    now = lib.mkl_serv_cbwr_get(_CBWR_BRANCH)
    raise KernelPinError(
        f"Intel MKL already ran in this process in another numerical mode (branch {now}, "
        f"status {status}): its results would depend on the CPU. Start Python with "
        f"MKL_CBWR={MKL_CBWR} in the environment (the stages and `mer` do this themselves)"
        if status == _MODE_CHANGE_FAILURE
        else f"Intel MKL refused conditional numerical reproducibility mode {MKL_CBWR} "
        f"(status {status}); unset MKL_CBWR or set it to {MKL_CBWR}"
    )


@contextlib.contextmanager
def cpu_exact(device: str = "cpu") -> Iterator[None]:
    """oneDNN off for the block on the CPU (nothing changes on CUDA)."""
    import torch

    if str(device).startswith("cuda"):
        yield
        return
    with torch.backends.mkldnn.flags(enabled=False):
        yield
