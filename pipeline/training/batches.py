"""One shared-memory buffer per batch between DataLoader workers and the training process.

A batch of window items holds 2 + 2 x views x modalities tensors (index, target, and each
view's ``x`` and ``mask`` per modality: 22 for two views of five modalities). A worker hands
every tensor to the training process as its own shared-memory file, whose descriptor goes
through a socket with an authentication handshake: about a quarter of a millisecond of the
training process's CPU per tensor whatever its size (measured by ``bench/bench_loader.py``),
more than cutting an audio window costs. The workers then cost the training process more
than they save it. So a worker collates a batch into one buffer, and the training process
takes the tensors out of it as views (no copy).

How it works:

1. :func:`collate_packed` (the DataLoader's ``collate_fn`` when it has workers) lays the
   batch out as :func:`torch.utils.data.default_collate` would (the same nesting, each
   leaf stacked along a new first axis, integers as int64), but every leaf goes into one
   uint8 buffer at 64-byte aligned offsets, allocated in shared memory inside a worker.
2. The DataLoader's pinning thread calls :meth:`PackedBatch.pin_memory`: one buffer pinned.
3. :meth:`PackedBatch.unpack` returns the nested batch, each tensor a view of the buffer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

ALIGN = 64


@dataclass(frozen=True)
class Leaf:
    """Where one stacked tensor lies in the buffer."""

    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Plain:
    """A part of the batch that is not packed (e.g. strings), as default_collate made it."""

    value: Any


@dataclass
class PackedBatch:
    buffer: torch.Tensor  # uint8, one dimension
    layout: Any  # nested dicts / lists of Leaf and Plain

    def pin_memory(self) -> PackedBatch:
        return PackedBatch(self.buffer.pin_memory(), self.layout)

    def unpack(self) -> Any:
        return _unpack(self.buffer, self.layout)


def _unpack(buffer: torch.Tensor, node: Any) -> Any:
    if isinstance(node, Leaf):
        return buffer[node.offset : node.offset + node.nbytes].view(node.dtype).view(node.shape)
    if isinstance(node, Plain):
        return node.value
    if isinstance(node, dict):
        return {k: _unpack(buffer, v) for k, v in node.items()}
    return [_unpack(buffer, v) for v in node]


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (bool, int)):
        return torch.tensor(value, dtype=torch.int64) if not isinstance(value, bool) else None
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return torch.from_numpy(value)
    return None


def _plan(items: Sequence[Any], leaves: list[tuple[Leaf, list[torch.Tensor]]], end: list[int]):
    first = items[0]
    if isinstance(first, Mapping):
        return {k: _plan([it[k] for it in items], leaves, end) for k in first}
    if isinstance(first, (list, tuple)) and not isinstance(first, str):
        return [_plan([it[i] for it in items], leaves, end) for i in range(len(first))]
    tensors = [_as_tensor(it) for it in items]
    if any(t is None for t in tensors):
        return Plain(default_collate(list(items)))
    shape = (len(tensors), *tensors[0].shape)
    size = tensors[0].element_size() * int(np.prod(shape))
    leaf = Leaf(end[0], tensors[0].dtype, shape, size)
    end[0] += -(-size // ALIGN) * ALIGN
    leaves.append((leaf, tensors))
    return leaf


def collate_packed(items: Sequence[Any]) -> PackedBatch:
    """The batch of ``items`` in one buffer (in shared memory inside a DataLoader worker)."""
    leaves: list[tuple[Leaf, list[torch.Tensor]]] = []
    end = [0]
    layout = _plan(items, leaves, end)
    if get_worker_info() is not None:  # shared memory: handed over without a copy
        buffer = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(end[0]))
    else:
        buffer = torch.empty(end[0], dtype=torch.uint8)
    for leaf, tensors in leaves:
        out = _unpack(buffer, leaf)
        torch.stack(tensors, out=out)
    return PackedBatch(buffer, layout)


def unpacked(batch: Any) -> Any:
    """A batch as the loops use it, whether it came packed or not."""
    return batch.unpack() if isinstance(batch, PackedBatch) else batch
