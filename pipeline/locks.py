"""One writer per output: a lock file beside each feature directory.

Two runs of one stage on one output (two terminals, two cluster jobs) would otherwise write
and delete each other's files. :func:`output_lock` takes an exclusive ``flock`` on
``<parent>/.<name>.lock`` for the whole run (shards, failures CSV, metrics); a second run
refuses at once with a message naming the holder. The kernel drops the lock when its process
dies, so a crash never leaves a stale lock. Re-entrant within one process (a stage that takes
it and calls the runner, which takes it too). Different outputs lock independently, so other
stages and corpora still run in parallel.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

_HELD: dict[str, int] = {}  # lock path -> depth, in this process
_GUARD = threading.Lock()


class OutputBusyError(RuntimeError):
    """Another run holds the lock on this output."""


def lock_path(output: Path) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def output_lock(output: str | Path, what: str = "") -> Iterator[None]:
    path = lock_path(Path(output))
    key = str(path.absolute())
    with _GUARD:
        if _HELD.get(key):
            _HELD[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _GUARD:
                _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise OutputBusyError(
                f"{what or Path(output).name}: another run is writing {output} ({holder}); "
                f"wait for it to finish, or write elsewhere (mer extract --out)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        with _GUARD:
            _HELD[key] = 1
        try:
            yield
        finally:
            with _GUARD:
                _HELD.pop(key, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
