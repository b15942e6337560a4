"""Content hashes for media and model files, and stable hashes of parameter dictionaries.

Everything that goes into a cache key or a stored file is a hash of *content*: never a path,
a host name or a modification time, so the same inputs give the same keys and bytes on any
checkout and machine. File hashes are memoised on (path, size, mtime) in the process, which
only saves re-reading a file that has not changed; the value is always the content's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .files import open_regular

_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a regular file's bytes (a FIFO or a device is refused, never waited on)."""
    h = hashlib.sha256()
    with open_regular(path, Path(path).name) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256_memo(path: str | Path) -> str:
    """:func:`file_sha256`, read again only when the file's size or mtime changed."""
    p = Path(path)
    st = os.stat(p)
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    sha = _MEMO.get(key)
    if sha is None:
        sha = _MEMO[key] = file_sha256(p)
    return sha


def params_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj`` (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class MediaHashMemo:
    """A file of ``{path: [size, mtime_ns, sha256]}`` kept in the local cache, so that checking
    a large corpus's media against its manifest re-reads only the files whose size or mtime
    moved (as ``git status`` does). It only ever saves work: a stat that does not match means
    the file is hashed again. Never part of any output."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._data: dict[str, list[Any]] = {}
        self._dirty = False
        try:
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                self._data = data
        except (OSError, ValueError):
            pass

    @staticmethod
    def _stat(path: Path) -> tuple[str, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return str(Path(path).absolute()), st.st_size, st.st_mtime_ns

    def get(self, path: str | Path) -> str | None:
        """The file's sha256 when its stat is the one memoised, else None."""
        st = self._stat(Path(path))
        if st is None:
            return None
        rec = self._data.get(st[0])
        if isinstance(rec, list) and len(rec) == 3 and rec[0] == st[1] and rec[1] == st[2]:
            return str(rec[2])
        return None

    def put(self, path: str | Path, sha: str) -> str:
        st = self._stat(Path(path))
        if st is not None:
            self._data[st[0]] = [st[1], st[2], sha]
            self._dirty = True
        return sha

    def save(self) -> None:
        if not self._dirty:
            return
        from .store.writer import atomic_write_text

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self._data, sort_keys=True))
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
        self._dirty = False
