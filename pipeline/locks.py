"""One writer per output: a lock file beside each feature directory.

Two runs of one stage on one output (two terminals, two cluster jobs) would otherwise write
and delete each other's files. :func:`output_lock` takes an exclusive ``flock`` on
``<parent>/.<name>.lock`` for the whole run (shards, failures CSV, metrics); a second run
refuses at once with a message naming the holder. The kernel drops the lock when its process
dies, so a crash never leaves a stale lock. Re-entrant within one process (a stage that takes
it and calls the runner, which takes it too). Different outputs lock independently, so other
stages and corpora still run in parallel.

The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and used only if
it is a regular file with one name: a link or a hard link planted at its path could otherwise
have the lock truncate another file. A filesystem without ``flock`` (some NFS and Lustre
mounts) is said in one line naming the lock file and the remedy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

_HELD: dict[str, int] = {}  # lock path -> depth, in this process
_GUARD = threading.Lock()


class OutputBusyError(RuntimeError):
    """Another run holds the lock on this output."""


class LockFileError(RuntimeError):
    """The lock file is not a plain file of its own (a link, a FIFO, a directory), or the
    filesystem cannot lock it."""


# flock on a filesystem that has no locks: "No locks available", or not supported at all
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def open_lock_file(path: Path) -> int:
    """A file descriptor of the lock file ``path``, created if need be; refused (a
    :class:`LockFileError`) unless it is a regular file with a single link, reached without
    following a symbolic link."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LockFileError(f"lock file {path} is a symbolic link: refusing to follow it; "
                                f"remove the link (the lock is a plain file)") from None
        if e.errno == errno.EISDIR:
            raise LockFileError(f"lock file {path} is a directory; remove it") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a plain file"
        raise LockFileError(f"lock file {path} is {what}: refusing to use it; remove it (the "
                            f"lock is a plain file of its own)")
    return fd


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
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise OutputBusyError(
                f"{what or Path(output).name}: another run is writing {output} ({holder}); "
                f"wait for it to finish, or write elsewhere (mer extract --out)"
            ) from None
        except OSError as e:
            if e.errno not in NO_LOCKS:
                raise
            raise LockFileError(
                f"cannot lock {path}: the filesystem it is on has no file locks "
                f"({os.strerror(e.errno)}); put the project's data/ (or mer extract --out) on "
                f"a filesystem with locks, such as a local disk, or mount NFS with locking"
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
