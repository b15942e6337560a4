"""The exit codes of every command (``mer`` and the DVC stage scripts), and the one line an
error prints.

== ======================================================================================
0  success
1  some clips failed and ``--strict`` (``runner.strict``, ``ingest.strict``) was set, or
   ``mer verify`` found a problem
2  bad arguments or parameters (an unknown stage or key, a value not allowed, a YAML error)
3  missing input: a corpus, clip, file, model or word vectors that is not there, a stage
   that must run first, or a missing optional dependency (the line names the extra)
4  the run itself failed (an unreadable shard, a model that does not load, a lost cluster):
   one line says why; ``-v`` shows the traceback
130 interrupted (Ctrl-C): one line; workers are stopped, finished clips stay in the cache
== ======================================================================================

:func:`exit_code` maps an exception to its code, :func:`one_line` to its message (no
traceback, no errno numbers).
"""

from __future__ import annotations

import re

from .config import ConfigError
from .extras import MissingExtraError, extra_for
from .files import NotRegularFileError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_ERROR = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

CODES = {
    EXIT_OK: "ok",
    EXIT_FAILED: "clip failures with --strict, or problems found by verify",
    EXIT_USAGE: "bad arguments or parameters",
    EXIT_MISSING: "missing input (corpus, clip, file, model, an earlier stage, an extra)",
    EXIT_ERROR: "the run itself failed (one line says why; -v shows the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class MissingInputError(FileNotFoundError):
    """An input a command needs is not there (no clips, a stage that must run first, an
    unknown clip): exit 3, with a message that says what to do."""


def exit_code(exc: BaseException) -> int:
    """The documented exit code for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, MissingExtraError):
        return EXIT_MISSING
    if isinstance(exc, ModuleNotFoundError):
        return EXIT_MISSING if extra_for(exc.name or "") else EXIT_ERROR
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, FileNotFoundError | NotRegularFileError):  # the real file is not there
        return EXIT_MISSING
    if isinstance(exc, ValueError):
        return EXIT_USAGE
    return EXIT_ERROR


_ERRNO = re.compile(r"\[Errno -?\d+\] ")


def plain(text: str) -> str:
    """``text`` without Python's ``[Errno N]`` prefixes."""
    return _ERRNO.sub("", text)


def one_line(exc: BaseException, traceback_shown: bool = False) -> str:
    """What a command prints for ``exc`` (after ``mer: ``): one line, no errno numbers."""
    code = exit_code(exc)
    text = plain(str(exc)).strip() or type(exc).__name__
    if code == EXIT_INTERRUPTED:
        return "interrupted"
    if isinstance(exc, ConfigError):
        text = f"bad parameters: {text}"
    elif code == EXIT_ERROR:
        text = f"failed: {type(exc).__name__}: {text}" + (
            "" if traceback_shown else " (-v shows the traceback)")
    return " ".join(text.split("\n", 1)[0].split()) if code == EXIT_ERROR else text
