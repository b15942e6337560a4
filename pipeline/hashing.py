"""Content hashes for media and model files, and stable hashes of parameter dictionaries.

Everything that goes into a cache key or a stored file is a hash of *content*: never a path,
a host name or a modification time, so the same inputs give the same keys and bytes on any
checkout and machine. File hashes are memoised on the file's identity (device, inode, size,
mtime and ctime in ns: what a rewrite cannot keep, even with its mtime set back), which only
saves re-reading a file that has not changed; the value is always the content's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .files import open_regular

FileIdentity = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns

_MEMO: dict[tuple[str, FileIdentity], str] = {}


def file_identity(st: os.stat_result) -> FileIdentity:
    """What a rewrite of a file cannot keep: a new file (a rename over it) has another inode;
    an in-place write moves the ctime, which no user can set back (``touch -r`` sets only
    the mtime and atime)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a regular file's bytes (a FIFO or a device is refused, never waited on)."""
    h = hashlib.sha256()
    with open_regular(path, Path(path).name) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256_memo(path: str | Path) -> str:
    """:func:`file_sha256`, read again only when the file's identity changed."""
    p = Path(path)
    key = (str(p.resolve()), file_identity(os.stat(p)))
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
    """A file of ``{path: [device, inode, size, mtime_ns, ctime_ns, sha256]}`` kept in the
    local cache, so that checking a large corpus's media against its manifest re-reads only
    the files whose identity (:func:`file_identity`) moved, as ``git status`` does. It only
    ever saves work: an identity that does not match means the file is hashed again. The
    identity stored is that of the open file whose bytes were hashed (never a later stat of
    the path), so a file replaced after it was hashed is never taken for the one hashed.
    Never part of any output."""

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

    def get(self, path: str | Path) -> str | None:
        """The file's sha256 when its identity now is the one memoised, else None."""
        try:
            now = list(file_identity(os.stat(path)))
        except OSError:
            return None
        rec = self._data.get(str(Path(path).absolute()))
        if isinstance(rec, list) and len(rec) == 6 and rec[:5] == now:
            return str(rec[5])
        return None

    def put(self, path: str | Path, sha: str, identity: FileIdentity) -> str:
        """Memoise ``sha`` for ``path`` as the file of ``identity`` (that of the open file
        the bytes were hashed from)."""
        self._data[str(Path(path).absolute())] = [*identity, sha]
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
