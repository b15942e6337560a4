"""CPU kernels pinned where their choice would reach stored values.

OpenCV, PyTorch's own kernels (ATen), Intel MKL (PyTorch's BLAS on x86-64) and oneDNN
(PyTorch's convolutions) each pick their code by the CPU they run on (AVX2, AVX-512, cache
sizes), and their float results differ in the last bits from one CPU to another: a face box,
a crop's pixels or a trained model would then depend on the machine. Seen here: MTCNN's boxes
change with ``MKL_ENABLE_INSTRUCTIONS=AVX2`` and ``ONEDNN_MAX_CPU_ISA=SSE41``, the crops with
OpenCV's optimisations off, a pretrained encoder also with ``ATEN_CPU_CAPABILITY=default``.
The visual extractors and the training stages pin them, on the CPU:

1. :func:`opencv_baseline`: ``cv2.setUseOptimized(False)`` around the resizes whose pixels
   are stored (crops, the detector's inputs): OpenCV runs its baseline code (and no IPP), the
   same on every x86-64 CPU.
2. :func:`pin_torch`: MKL's conditional numerical reproducibility, branch ``COMPATIBLE``,
   ``STRICT``: the same results on every x86-64 CPU and for any thread count (Intel's
   guarantee); and ATen's ``DEFAULT`` kernels (compiled for no particular CPU) instead of its
   AVX2 or AVX-512 ones. Both are read once, before the first call: the stages and ``mer``
   set ``MKL_CBWR`` and ``ATEN_CPU_CAPABILITY`` in the environment at start
   (:func:`pin_environment`, inherited by their workers); :func:`pin_torch` sets MKL's through
   its own call when the process has not used it yet, and fails with what to do when a
   library already runs in another mode.
3. :func:`cpu_exact`: oneDNN off for a block (its JIT kernels follow the CPU's ISA and cache
   sizes): convolutions take PyTorch's own path (im2col and the pinned MKL GEMM).

``tests/test_cpu_kernels.py`` plays other CPUs; the README (*Same bytes on any CPU*) gives
the cost.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
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


ATEN_CAPABILITY = "default"


def pin_environment() -> None:
    """Set ``MKL_CBWR`` and ``ATEN_CPU_CAPABILITY`` for this process and its children (a
    stage's or ``mer``'s first step, before anything runs torch)."""
    os.environ["MKL_CBWR"] = MKL_CBWR
    os.environ["ATEN_CPU_CAPABILITY"] = ATEN_CAPABILITY


_opencv_lock = threading.Lock()


@contextlib.contextmanager
def opencv_baseline() -> Iterator[None]:
    """OpenCV's baseline code path, no IPP, for the block (one block at a time across
    threads; OpenCV's own setting is restored after it, so other code is unaffected)."""
    import cv2

    with _opencv_lock:
        before = cv2.useOptimized()
        cv2.setUseOptimized(False)
        try:
            yield
        finally:
            cv2.setUseOptimized(before)


def _torch_mkl() -> ctypes.CDLL | None:
    """PyTorch's CPU library when it carries MKL's service calls, else None."""
    import torch

    if not torch.backends.mkl.is_available():
        return None
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    return lib if hasattr(lib, "mkl_serv_cbwr_set") else None


def pin_torch() -> None:
    """PyTorch's CPU kernels pinned in this process (MKL's CNR mode and ATen's DEFAULT
    kernels); KernelPinError when either already runs in another mode."""
    os.environ["ATEN_CPU_CAPABILITY"] = ATEN_CAPABILITY  # read at the first dispatched op
    import torch

    now = torch.backends.cpu.get_cpu_capability()
    if now != ATEN_CAPABILITY.upper():
        raise KernelPinError(
            f"PyTorch already chose its {now} CPU kernels in this process: its results would "
            f"depend on the CPU. Start Python with ATEN_CPU_CAPABILITY={ATEN_CAPABILITY} in "
            f"the environment (the stages and `mer` do this themselves)"
        )
    _pin_mkl()


def _pin_mkl() -> None:
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
    # only the on/off switch (mkldnn.flags() would also set oneDNN's TF32 flag, and warn)
    before = torch.backends.mkldnn.set_flags(_enabled=False, _fp32_precision=None)[0]
    try:
        yield
    finally:
        torch.backends.mkldnn.set_flags(_enabled=before, _fp32_precision=None)
