"""Run batches of clips on workers, and survive a worker that dies.

1. The batches go through joblib (loky processes by default, Dask for a cluster), as they
   come back. Each worker watches its parent and exits when the parent is gone, so a killed
   stage leaves no workers running on.
2. When a worker dies (out of memory, a codec's segfault), joblib abandons the whole call.
   The clips with no outcome yet are retried one clip per task on fresh local workers,
   at most ``n_jobs`` at a time, so a second death names few suspects.
3. Each suspect then runs alone in a fresh worker; a clip that kills that one too is
   recorded as failed ("worker died: ..."), and the stage goes on with the rest.
4. A loky worker keeps its models for the whole stage (:func:`keep_worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from .config import RunnerConfig
from .extras import needs

with needs("running a stage", "pipeline"):
    from joblib import Parallel, delayed, parallel_config

log = logging.getLogger(__name__)

_WATCHING = False


def watch_parent(parent_pid: int) -> None:
    """In a worker process started by ``parent_pid``: exit as soon as that parent is gone
    (workers of a killed stage would otherwise run on to the end of their batch)."""
    global _WATCHING
    if _WATCHING or os.getpid() == parent_pid or os.getppid() != parent_pid:
        return  # the parent itself, a thread, or a cluster worker started by a nanny
    _WATCHING = True

    def _watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=_watch, name="mer-parent-watch", daemon=True).start()


def keep_worker() -> None:
    """Initializer of loky workers: turn off loky's memory-leak guard, which restarts a
    worker whose memory grew 300 MB since its first task, with a warning that a worker
    stopped "by a memory leak". An extractor's worker grows for good reasons after its first
    batch (frame buffers sized to larger videos, allocator arenas), and a restart reloads
    its models; memory is bounded by the extractors' own limits (``runner.spill_mb``,
    ``faces.batch_mb``), and a worker that runs out of it is handled as a death (step 2)."""
    from joblib.externals.loky import process_executor

    process_executor._USE_PSUTIL = False


def _death_errors() -> tuple[type[BaseException], ...]:
    from joblib.externals.loky.process_executor import BrokenProcessPool

    errors: list[type[BaseException]] = [BrokenProcessPool]
    with contextlib.suppress(ImportError):
        from distributed import KilledWorker

        errors.append(KilledWorker)
    return tuple(errors)


def death_reason(err: BaseException) -> str:
    """What killed a worker, in words (signal 9 is the kernel's out-of-memory killer's)."""
    text = str(err)
    codes = re.search(r"exit codes of the workers are \{([^}]*)\}", text)
    what = codes.group(1) if codes else type(err).__name__
    hint = ", often out of memory" if "SIGKILL" in what or "-9" in what else ""
    return f"worker died: {what}{hint}"


@contextlib.contextmanager
def backend(cfg: RunnerConfig) -> Iterator[dict[str, Any]]:
    """joblib keyword arguments for ``cfg``'s backend (a Dask client open while in use)."""
    if cfg.backend == "dask":
        with needs("runner.backend dask", "pipeline"):
            from distributed import Client, LocalCluster

        if cfg.scheduler:
            client = Client(cfg.scheduler)
        else:
            cluster = LocalCluster(
                n_workers=cfg.n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        try:
            with parallel_config(backend="dask"):
                yield {"n_jobs": -1}
        finally:
            client.close()
            if not cfg.scheduler:
                cluster.close()
    elif cfg.backend == "sequential" or cfg.n_jobs == 1:
        yield {"n_jobs": 1, "backend": "sequential"}
    else:
        loky = {"initializer": keep_worker} if cfg.backend == "loky" else {}
        yield {"n_jobs": cfg.n_jobs, "backend": cfg.backend, **loky}


def run_batches(
    fn: Callable[..., list[Any]],
    batches: Sequence[list[Any]],
    args: tuple[Any, ...],
    cfg: RunnerConfig,
    key: Callable[[Any], str],
    on_done: Callable[[list[Any]], None],
    on_lost: Callable[[Any, str], None],
) -> None:
    """Call ``fn(*args, batch)`` for every batch; ``on_done(outcomes)`` as each returns.

    An item whose worker died twice is passed to ``on_lost(item, reason)`` instead. ``key``
    names an item; ``fn`` returns one outcome per item, each with ``clip_id``."""
    done: set[str] = set()

    def record(outcomes: list[Any]) -> None:
        done.update(o.clip_id for o in outcomes)
        on_done(outcomes)

    try:
        with backend(cfg) as pkw:
            par = Parallel(return_as="generator_unordered", **pkw)
            for outcomes in par(delayed(fn)(*args, b) for b in batches):
                record(outcomes)
        return
    except _death_errors() as e:
        reason = death_reason(e)
        left = [item for b in batches for item in b if key(item) not in done]
        log.warning("%s; retrying its %d unfinished clip(s) on fresh workers", reason,
                    len(left))
    suspects = _retry(fn, args, left, max(1, cfg.n_jobs), record)
    for item, first_reason in suspects:
        lost = _retry(fn, args, [item], 1, record)
        if lost:
            _, reason = lost[0]
            log.warning("%s: %s again, recorded as failed", key(item), reason)
            on_lost(item, f"{reason} (twice: first {first_reason})")


def _retry(
    fn: Callable[..., list[Any]],
    args: tuple[Any, ...],
    items: list[Any],
    n_workers: int,
    record: Callable[[list[Any]], None],
) -> list[tuple[Any, str]]:
    """Run ``items`` one per task on at most ``n_workers`` fresh loky workers; return the
    items whose task was lost to a worker's death, with the reason."""
    from joblib.externals.loky import get_reusable_executor

    lost: list[tuple[Any, str]] = []
    pending = list(items)
    while pending:
        executor = get_reusable_executor(max_workers=n_workers, reuse=False,
                                         initializer=keep_worker)
        running: dict[Future, Any] = {}
        broken = False
        while (pending or running) and not broken:
            while pending and len(running) < n_workers:
                item = pending.pop(0)
                running[executor.submit(fn, *args, [item])] = item
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                item = running.pop(fut)
                try:
                    record(fut.result())
                except _death_errors() as e:
                    lost.append((item, death_reason(e)))
                    broken = True
        for fut, item in running.items():  # abandoned with the broken executor
            try:
                record(fut.result())
            except _death_errors() as e:
                lost.append((item, death_reason(e)))
    return lost
