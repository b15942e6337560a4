"""Run a reader of untrusted files in a child process, so that a crash is a finding.

HDF5 is a C library: some damaged headers (a flipped bit in an object header that carries no
checksum) make it read out of bounds and kill the process with SIGSEGV, where no Python
``except`` can catch it. ``mer verify`` must report such a file, not die on it:

1. :func:`call_isolated` forks a child (Linux and other systems with ``fork``), which runs the
   function and sends back its return value, or the exception it raised.
2. A child that dies without answering raises :class:`ReaderCrashedError` in the parent, naming
   the signal; the caller reports the file as damaged and goes on with the others.
3. Where ``fork`` is not available the function runs in the process itself.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import signal
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ReaderCrashedError(RuntimeError):
    """The child process reading a file died (a signal or an exit) without an answer."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        if exitcode is not None and exitcode < 0:
            try:
                what = f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
            except ValueError:
                what = f"signal {-exitcode}"
        else:
            what = f"exit code {exitcode}"
        super().__init__(f"reading it crashed the HDF5 library ({what})")


def _child(send: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    faulthandler.disable()  # a crash here is the parent's finding, not a dump on stderr
    try:
        answer: tuple[bool, Any] = (True, fn(*args))
    except Exception as e:  # noqa: BLE001 - handed to the parent as it is
        answer = (False, e)
    try:
        send.send(answer)
    except Exception as e:  # noqa: BLE001 - an answer that does not pickle
        send.send((False, RuntimeError(f"{type(e).__name__}: {e}")))
    finally:
        send.close()


def call_isolated(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a forked child: its value, the exception it raised, or
    :class:`ReaderCrashedError` when the child died."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return fn(*args)
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        ok, value = recv.recv()
    except EOFError:  # the child died before it answered
        proc.join()
        raise ReaderCrashedError(proc.exitcode) from None
    finally:
        recv.close()
    proc.join()
    if not ok:
        raise value
    return value
