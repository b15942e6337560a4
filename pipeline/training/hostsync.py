"""Finding host syncs in a training step: operations that read a tensor's values on the host.

On CUDA such a read (``loss.item()``, ``bool(mask.any())``, a boolean-mask selection, whose
size the host must know, lengths moved to the CPU) waits for everything queued on the GPU,
so the host cannot run ahead and the GPU idles while the next step is prepared.
:class:`HostSyncs` records every call, while it is active, of the operations behind those
reads, with the project's source line that made it. It works on a CPU too, where it shows
the reads a GPU would wait on; :func:`pipeline.models.common.sync_free_paths` makes the
backbones take their CUDA paths there. On CUDA, ``torch.cuda.set_sync_debug_mode("error")``
is the definitive check; the GPU check (``scripts/gpu_check.py``) runs both.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = str(Path(__file__).resolve().parents[1])

# Operators whose result (or whose output's size) the host must read.
READS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2"}
INDEXING = {"index", "index_put", "index_put_", "_index_put_impl_"}


@dataclass
class HostSyncs(TorchDispatchMode):
    """While active, ``events`` lists (operator, project source line) of every host read.
    Reads made from ``ignore`` (path fragments; e.g. the optimiser's step counters, which
    live on the CPU) are left out."""

    ignore: tuple[str, ...] = ("torch/optim/",)
    events: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.__name__.split(".")[0]
        if name in READS or (name in INDEXING and _bool_index(args)):
            self._record(name)
        return func(*args, **(kwargs or {}))

    def _record(self, name: str) -> None:
        stack = traceback.extract_stack()[:-2]
        if any(part in frame.filename for frame in stack for part in self.ignore):
            return
        ours = [f for f in stack if f.filename.startswith(PACKAGE)]
        where = f"{ours[-1].filename[len(PACKAGE) + 1 :]}:{ours[-1].lineno}" if ours else "?"
        self.events.append((name, where))


def _bool_index(args: Any) -> bool:
    indices = args[1] if len(args) > 1 else ()
    if isinstance(indices, (list, tuple)):
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)
    return False
