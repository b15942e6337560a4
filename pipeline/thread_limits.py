"""One BLAS/OpenMP thread while a clip is extracted, at no per-clip cost.

A matrix product's sums come out the same in every process on every machine only with one
thread (with 2 threads every sample mel differs in the last bits), so the stored bytes do
not depend on core count or ``runner.n_jobs``; parallelism comes from the worker processes.

Finding the loaded thread pools means scanning the process's libraries (about 4 ms), which
``threadpool_limits`` did for every clip. :func:`one_thread` keeps the controller and scans
again only when a module was imported since the last scan (a new native library comes only
with one). The limit is lifted after each clip, so a stage run in the caller's process (as
``mer reproduce`` can) leaves its thread settings as they were.
"""

from __future__ import annotations

import sys
from typing import Any

from .extras import needs

with needs("running a stage", "pipeline"):
    from threadpoolctl import ThreadpoolController

_controller: Any = None
_n_modules = -1


def one_thread() -> Any:
    """A context manager: one thread in every loaded BLAS/OpenMP pool while it is open."""
    global _controller, _n_modules
    if _controller is None or len(sys.modules) != _n_modules:
        _n_modules = len(sys.modules)
        _controller = ThreadpoolController()
    return _controller.limit(limits=1)
