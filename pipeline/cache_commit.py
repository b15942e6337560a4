"""Put a worker's finished per-clip cache files in place, durably, off the extraction's path.

1. The worker writes a clip's cache file under a temporary name and hands it to
   :class:`CacheCommitter`, then goes on with the next clip.
2. A second thread fsyncs the temporary file and only then renames it to its final name, so
   a file under its final name was always synced whole first: a crash, even of the machine,
   never leaves a half-written cache file that looks complete.
3. :meth:`CacheCommitter.wait` (the end of a batch, or leaving a ``with`` block) waits for
   every file, so the batch is reported done only when its files are synced and in place:
   a killed run (Ctrl-C, SIGKILL) loses only the clips of the batches in flight. The
   directories are not synced (one fsync per directory costs as much as one per file, and
   the cache spreads over 256): after a crash of the machine itself, a rename of the last
   seconds may be lost, and that clip is extracted again; a file under its final name is
   never a partial one.

The fsync (about 4-5 ms a file on this project's machines) so overlaps the next clip's work
instead of adding to it.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .store.writer import fsync_file


class CacheCommitter:
    """See the module docstring. ``errors`` maps a clip id to what went wrong with its file
    (that clip is then a failure: its features are not in the cache)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mer-cache-commit")
        self._pending: list[tuple[str, Future]] = []
        self._by_path: dict[Path, Future] = {}
        self.errors: dict[str, BaseException] = {}

    def commit(self, clip_id: str, tmp: Path, final: Path) -> None:
        """Sync ``tmp`` and rename it to ``final``, in the background."""
        fut = self._pool.submit(_put, tmp, final)
        self._pending.append((clip_id, fut))
        self._by_path[final] = fut

    def settle(self, final: Path) -> None:
        """Wait until a file bound for ``final`` is in place: before a clip of the same cache
        key (the same media and inputs) is looked up, or its temporary name written again."""
        fut = self._by_path.pop(final, None)
        if fut is not None:
            with contextlib.suppress(OSError):
                fut.result()  # its clip's failure is recorded on leaving the block

    def wait(self) -> None:
        """Until every file handed over is synced and in place (or failed: ``errors``)."""
        for clip_id, fut in self._pending:
            try:
                fut.result()
            except OSError as e:
                self.errors[clip_id] = e
        self._pool.shutdown(wait=True)

    def __enter__(self) -> CacheCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()


def _put(tmp: Path, final: Path) -> None:
    try:
        fsync_file(tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
