"""Resumable training state: atomic saves, loads that check what the state belongs to.

A checkpoint is named by a key (a hash of everything that defines the run: parameters,
fold, features, world size, the trainer's source code). A run finds its own checkpoint,
continues after the last saved epoch, and, when the run had finished, reuses the result.
Files are written under a temporary name and renamed, so an interruption never leaves half
a checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..hashing import params_hash
from ..store.writer import create_new

log = logging.getLogger(__name__)

# Part of every checkpoint key, with the hash of the trainer's source code.
TRAINER_VERSION = "1"


def atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    os.close(create_new(tmp))  # a new file: a link planted at the name is not followed
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str | Path) -> Any:
    """Load a file written by :func:`atomic_save` (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def code_fingerprint() -> str:
    """A hash of the trainer's and the models' source: a checkpoint resumes only under the
    code that wrote it."""
    h = hashlib.sha256(TRAINER_VERSION.encode())
    package = Path(__file__).resolve().parents[1]
    for sub in ("training", "models"):
        for path in sorted((package / sub).rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def run_key(**parts: Any) -> str:
    return params_hash({"code": code_fingerprint(), **parts})[:20]


class Checkpointer:
    """Saves at most every ``interval_s`` seconds (0 = every call) and always when forced;
    only the writer (rank 0) writes, every rank reads."""

    def __init__(
        self,
        directory: str | Path,
        key: str,
        writer: bool = True,
        interval_s: float = 60.0,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self.path = Path(directory) / f"{key}.pt"
        self.key = key
        self.writer = writer
        self.interval_s = interval_s
        self.sync = sync  # a barrier: every rank has read before the writer writes again
        self._last = time.monotonic()

    def load(self) -> dict[str, Any] | None:
        state = self._read()
        if self.sync is not None:
            self.sync()
        return state

    def _read(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = load(self.path)
        except Exception as e:  # a damaged file is not fatal: start over
            log.warning("ignoring unreadable checkpoint %s (%s)", self.path, e)
            return None
        if state.get("key") != self.key:
            return None
        log.info("resuming from %s (epoch %d)", self.path, state.get("epoch", 0))
        return state

    def maybe_save(self, state: dict[str, Any], force: bool = False) -> bool:
        due = force or time.monotonic() - self._last >= self.interval_s
        if due and self.writer:
            atomic_save({**state, "key": self.key}, self.path)
            self._last = time.monotonic()
        return due
