"""The numeric precision of training (``train.precision``), one explicit policy per run.

Extraction always runs in exact fp32 (:func:`pipeline.devices.exact_fp32`, scoped to the
networks' forward passes). Training runs in the precision its parameters name:

- ``fp32``: full fp32 everywhere; on CUDA TF32 is off, so a GPU computes what a CPU does
  (up to summation order). On a CPU, exactly the arithmetic of every earlier version.
- ``tf32``: fp32 tensors, TF32 convolutions and matmuls on CUDA (Ampere and newer); the
  same as ``fp32`` on a CPU, which has no TF32.
- ``bf16``: the forward passes under ``torch.autocast`` in bfloat16 (CUDA, or a CPU);
  parameters, optimiser state and the losses stay fp32. No loss scaling is needed.
- ``fp16``: autocast in float16 with a gradient scaler (CUDA only).
- ``auto``: ``bf16`` on a GPU that supports it (compute capability 8.0 and newer), else
  ``fp32``. The resolved value is what the run records.

How it is applied:

1. :func:`resolve_precision` turns the parameter and the device into a :class:`Precision`.
2. :func:`precision_scope` sets the process-wide switches for the run (TF32 for convolutions
   and matmuls, ``cudnn.benchmark`` on CUDA: every training input has a fixed shape) and
   restores what was there before when the run ends, so nothing leaks into what follows.
3. The training tasks run their forward passes under :meth:`Precision.autocast` and compute
   the losses in fp32; :func:`~pipeline.training.loops.fit.fit` scales the loss for fp16.
4. :meth:`Precision.describe` is stored with every model and report (provenance).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

log = logging.getLogger(__name__)

PrecisionName = Literal["auto", "fp32", "tf32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "tf32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """A resolved precision (``name`` is never ``auto``) on a device type."""

    name: str = "fp32"
    device_type: str = "cpu"
    requested: str = "fp32"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST.get(self.name)

    @property
    def tf32(self) -> bool:
        """TF32 convolutions and matmuls (CUDA only) for what runs in fp32."""
        return self.device_type == "cuda" and self.name != "fp32"

    @property
    def cudnn_benchmark(self) -> bool:
        return self.device_type == "cuda"

    @property
    def channels_last(self) -> bool:
        """Video convolutions in channels-last (NDHWC) layout: what CUDA's tensor-core
        kernels take. On a CPU the layout stays as it is (fp32 unchanged there)."""
        return self.device_type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context forward passes run in: autocast for bf16 / fp16, else nothing."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 on CUDA; a disabled scaler (a pass-through) otherwise."""
        enabled = self.name == "fp16" and self.device_type == "cuda"
        return torch.amp.GradScaler(self.device_type, enabled=enabled)

    def describe(self) -> dict[str, Any]:
        """What a model or report records about the arithmetic it was trained in."""
        return {
            "requested": self.requested,
            "precision": self.name,
            "device": self.device_type,
            "autocast": str(self.autocast_dtype).replace("torch.", "")
            if self.autocast_dtype
            else None,
            "tf32": self.tf32,
            "cudnn_benchmark": self.cudnn_benchmark,
            "channels_last_video": self.channels_last,
        }


FP32 = Precision()


def resolve_precision(requested: str, device: torch.device | str) -> Precision:
    """``train.precision`` on ``device``; an unusable choice is an error naming why."""
    kind = torch.device(device).type
    if requested not in PRECISIONS:
        raise ValueError(
            f"train.precision: {requested!r} is not allowed; allowed: {', '.join(PRECISIONS)}"
        )
    name = requested
    if requested == "auto":
        name = "bf16" if kind == "cuda" and _native_bf16(device) else "fp32"
    elif requested == "tf32" and kind != "cuda":
        name = "fp32"  # a CPU has no TF32: the same arithmetic as fp32
    elif requested == "fp16" and kind != "cuda":
        raise ValueError("train.precision fp16 needs CUDA; on a CPU use bf16 or fp32")
    elif requested == "bf16" and kind == "cuda" and not _native_bf16(device):
        raise ValueError(
            "train.precision bf16: this GPU has no bfloat16 support (compute capability "
            "below 8.0); use fp16, tf32 or fp32"
        )
    if name != requested:
        log.info("train.precision %s -> %s on %s", requested, name, kind)
    return Precision(name, kind, requested)


def _native_bf16(device: torch.device | str) -> bool:
    """bfloat16 in the GPU's hardware (compute capability 8.0 and newer); older GPUs only
    emulate it, slower than fp32."""
    return torch.cuda.get_device_capability(torch.device(device))[0] >= 8


def tf32_state() -> tuple[bool, bool, bool]:
    """(cuDNN TF32, cuBLAS TF32, cudnn.benchmark): the process-wide switches. The legacy
    switches only: torch refuses to read them once the per-backend API was mixed in."""
    return (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.benchmark,
    )


def _set_state(state: tuple[bool, bool, bool]) -> None:
    (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.benchmark,
    ) = state


@contextlib.contextmanager
def precision_scope(precision: Precision) -> Iterator[Precision]:
    """The switches ``precision`` needs, for the duration of the block; the earlier state
    (whatever extraction or the caller left) comes back afterwards."""
    before = tf32_state()
    _set_state((precision.tf32, precision.tf32, precision.cudnn_benchmark))
    try:
        yield precision
    finally:
        _set_state(before)
