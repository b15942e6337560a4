"""Opening input files with a bound: regular files only, never a FIFO or a device.

A named pipe, a character device or a socket left where a media file, a transcript or a
CSV was would block a plain ``open()`` (a FIFO with no writer) or feed it without end
(``/dev/zero``): the stage would hang forever. Every input the pipeline reads goes through
:func:`open_regular` (or :func:`check_regular` where a library opens the path itself):

1. Open without blocking (``O_NONBLOCK``: opening a FIFO returns at once).
2. ``fstat`` the open file: anything but a regular file is refused with
   :class:`NotRegularFileError`, naming what it is (an ``OSError``, so the callers that turn
   an unreadable file into a failure row handle it as they handle a missing one).
3. Hand on the same open file, so what was checked is what is read.

Symbolic links are followed (corpora are often trees of links); where a link is not wanted
(lock and temporary files) the writer opens with ``O_NOFOLLOW`` itself (:mod:`pipeline.locks`).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class NotRegularFileError(OSError):
    """A path that should be a file is a FIFO, a device, a socket or a directory."""


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words ("a regular file", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def _refusal(name: str | Path, mode: int) -> NotRegularFileError:
    return NotRegularFileError(
        f"{name} is {file_kind(mode)}, not a regular file: refusing to read it (reading it "
        f"could block forever); put the real file there"
    )


def check_regular(path: str | Path, name: str | Path | None = None) -> os.stat_result:
    """``os.stat(path)`` (links followed) if it is a regular file, else
    :class:`NotRegularFileError` naming ``name`` (default: the path). For libraries that open
    the path themselves (HDF5); prefer :func:`open_regular`, which checks what it opens."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refusal(name if name is not None else path, st.st_mode)
    return st


def open_regular(path: str | Path, name: str | Path | None = None) -> BinaryIO:
    """``path`` opened for binary reading, refused unless it is a regular file (see the
    module docstring); ``name`` is how messages call it (default: the path)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refusal(name if name is not None else path, st.st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def text_file(
    path: str | Path, name: str | Path | None = None, *, encoding: str = "utf-8-sig",
    errors: str = "strict",
) -> io.TextIOWrapper:
    """A regular file opened as text for ``csv`` (``newline=""``), through
    :func:`open_regular`."""
    return io.TextIOWrapper(open_regular(path, name), encoding=encoding, errors=errors,
                            newline="")


def read_text(
    path: str | Path, name: str | Path | None = None, *, max_bytes: int = 0,
    encoding: str = "utf-8-sig", errors: str = "strict",
) -> str:
    """A regular file's text. ``max_bytes`` (0 = no limit) refuses a larger file before
    reading it, so memory stays bounded; undecodable bytes raise ``ValueError`` naming the
    file and the byte offset (unless ``errors`` says otherwise)."""
    shown = name if name is not None else path
    with open_regular(path, shown) as f:
        if max_bytes:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise ValueError(
                    f"{shown} is {size / 2**20:.1f} MB, more than the {max_bytes / 2**20:.0f} "
                    f"MB any such file can need: refusing to read it"
                )
            data = f.read(max_bytes + 1)
            if len(data) > max_bytes:  # grew while read
                raise ValueError(f"{shown} grew past {max_bytes} bytes while read")
        else:
            data = f.read()
    try:
        return data.decode(encoding, errors)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{shown} is not UTF-8 text (invalid byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None
