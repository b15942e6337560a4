"""Read a clip's media bytes once: the one owner of opening, hashing and checking them.

What is decoded must be the bytes that were hashed. Hashing a file and then opening it again
to decode it lets a replacement in between (an atomic rename, as sync tools do) store another
recording's features under the manifest's hash. So a file is opened once, and everything
read of it goes through that one descriptor.

1. :func:`open_source` opens the file without blocking (``O_NONBLOCK``: a FIFO where a video
   was never hangs the stage) and refuses anything but a regular file (FIFO, device,
   directory, socket) before a byte is read. It notes the descriptor's identity: device,
   inode, size, mtime and ctime in ns.
2. Decoders read through :meth:`SourceFile.reader`, file objects over that descriptor
   (``os.pread``, each with its own position), so renaming the path changes nothing they
   read. Bytes are hashed in file order as the readers pass the hash frontier; a read ahead
   of it first hashes the gap, from the same descriptor. What a decoder gets at or past the
   frontier is exactly what was hashed; a re-read behind it (a seek back) is covered by 3.
3. :meth:`SourceFile.finish` hashes what no decoder read, then refuses the file when it
   changed while it was read (its size, mtime or ctime moved: an in-place write moves ctime
   even when the mtime is set back), when the path no longer names the file that was read
   (replaced during the read), or when its sha256 is not the one the manifest recorded.
4. :class:`ClipFiles` does this for a clip's media file and its separate audio file, and
   hands the extractor a :class:`~pipeline.features.base.ClipSource` whose decoders read
   through them (``source.media_input()``, ``source.sound_input()``).
5. Before a cached clip is reused, :func:`reuse_problem` checks the same files in the
   parent: hashed through :class:`SourceFile` unless the media-hash memo holds the sha256
   of a file of the same identity (device, inode, size, mtime, ctime). A worker's hash is
   memoised with the identity of the descriptor it read, never a later stat of the path.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import file_kind
from ..hashing import FileIdentity, MediaHashMemo, file_identity

if TYPE_CHECKING:
    from ..features.base import ClipSource

HASH_CHUNK = 1 << 20  # bytes hashed per read where no decoder read them


class SourceFileError(OSError):
    """A media file cannot be opened, or is not a regular file."""


class MediaChangedError(RuntimeError):
    """A media file's bytes are not those the manifest recorded at ingest, or the file
    changed while it was read."""


def _refuse_special(label: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise SourceFileError(
            f"{label} is {file_kind(mode)}, not a regular file: refusing to read it"
        )


class SourceFile:
    """One media file, open once; its bytes are hashed as they are read (module docstring).

    Use as a context manager, or :meth:`close` it. ``label`` names the file in messages
    (the manifest's name for it); ``expected`` is its sha256 at ingest ('' = none known).
    """

    def __init__(self, path: str | Path, label: str = "", expected: str = "") -> None:
        self.path = Path(path)
        self.label = label or self.path.name
        self.expected = expected
        try:
            _refuse_special(self.label, os.stat(self.path).st_mode)  # before opening it
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags)
        except SourceFileError:
            raise
        except OSError as e:
            raise SourceFileError(f"{self.label}: cannot open ({e.strerror or e})") from e
        try:
            st = os.fstat(self._fd)
            _refuse_special(self.label, st.st_mode)  # it may have been swapped for one
        except BaseException:
            os.close(self._fd)
            raise
        self.identity: FileIdentity = file_identity(st)
        self.size = st.st_size
        self._sha = hashlib.sha256()
        self._hashed = 0  # the hash frontier: bytes [0, _hashed) are in _sha
        self._digest: str | None = None
        self._short = False  # a read found fewer bytes than the size at open

    # -- reading ---------------------------------------------------------------------------
    def reader(self, owned: bool = False) -> SourceReader:
        """A new file object over the open file (position 0) for a decoder, e.g.
        ``av.open(f.reader())``. ``owned``: closing the reader closes this file too."""
        return SourceReader(self, owned)

    def _pread(self, n: int, pos: int) -> bytes:
        data = os.pread(self._fd, n, pos)
        if len(data) < n:
            self._short = True
        self._seen(pos, data)
        return data

    def _seen(self, pos: int, data: bytes) -> None:
        """Hash ``data``, read at ``pos``, as far as it passes the frontier."""
        end = pos + len(data)
        if end <= self._hashed or self._digest is not None:
            return
        if pos > self._hashed:
            self._hash_to(pos)
            if self._hashed < pos:  # the file ended before the gap did
                return
        self._sha.update(memoryview(data)[self._hashed - pos :])
        self._hashed = end

    def _hash_to(self, upto: int) -> None:
        while self._hashed < upto:
            chunk = os.pread(self._fd, min(HASH_CHUNK, upto - self._hashed), self._hashed)
            if not chunk:
                self._short = True
                return
            self._sha.update(chunk)
            self._hashed += len(chunk)

    # -- checking --------------------------------------------------------------------------
    def finish(self) -> str:
        """The file's sha256, once every byte is hashed; MediaChangedError when the file
        changed while it was read, is no longer at its path, or is not the ingested one."""
        if self._digest is None:
            self._hash_to(self.size)
            self._digest = self._sha.hexdigest()
        try:
            there = file_identity(os.stat(self.path))
        except OSError:
            there = None
        if there is None or there[:2] != self.identity[:2]:  # another device or inode
            what = "removed" if there is None else "replaced by another file"
            raise MediaChangedError(
                f"{self.label} was {what} while it was read: rerun the stage once it is "
                f"no longer being replaced"
            )
        if self._short or self._hashed != self.size:
            raise MediaChangedError(f"{self.label} shrank while it was read: rerun the stage")
        now = file_identity(os.fstat(self._fd))
        if now != self.identity:
            raise MediaChangedError(
                f"{self.label} changed while it was read ({_moved(self.identity, now)}): "
                f"rerun the stage once it is no longer being written"
            )
        if why := not_ingested(self.label, self._digest, self.expected):
            raise MediaChangedError(why)
        return self._digest

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _moved(before: FileIdentity, after: FileIdentity) -> str:
    names = ("device", "inode", "size", "mtime", "ctime")
    return ", ".join(f"its {n} moved" for n, a, b in zip(names, before, after, strict=True)
                     if a != b)


class SourceReader:
    """A read-only, seekable file object over a :class:`SourceFile` (what PyAV reads)."""

    def __init__(self, source: SourceFile, owned: bool = False) -> None:
        self._src = source
        self._pos = 0
        self._owned = owned
        self.closed = False

    @property
    def name(self) -> str:
        return str(self._src.path)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        left = self._src.size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        data = self._src._pread(n, self._pos)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._src.size}[whence]
        if base + offset < 0:
            raise OSError(f"{self.name}: seek before the start of the file")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed and self._owned:
            self._src.close()
        self.closed = True

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_reader(media: str | Path | SourceReader) -> SourceReader:
    """A reader for a decoder: ``media`` itself, or a reader over a file opened now (not
    hashed against anything: the runner opens clips through :class:`ClipFiles`). Raises
    SourceFileError for a file that cannot be opened or is not a regular file."""
    if isinstance(media, SourceReader):
        return media
    return SourceFile(media, label=str(media)).reader(owned=True)


def media_name(media: str | Path | SourceReader) -> Path:
    """The path a message about ``media`` names."""
    return Path(media.name if isinstance(media, SourceReader) else media)


def hash_file(path: str | Path) -> tuple[str, FileIdentity]:
    """sha256 of a regular file and the identity of what was hashed (for the memo);
    SourceFileError for a file that cannot be read, MediaChangedError for one that changed
    while it was read."""
    with SourceFile(path) as f:
        return f.finish(), f.identity


class ClipFiles:
    """A clip's media file and, when the extractor reads one, its separate audio file, each
    open once (context manager). :attr:`source` is the clip with its decoders pointed at
    them; :meth:`finish` checks both and returns the media's sha256."""

    def __init__(self, source: ClipSource) -> None:
        self.media = SourceFile(source.path, source.path.name, source.sha256)
        self.audio: SourceFile | None = None
        try:
            if source.audio_path is not None:
                self.audio = _open_audio(source)
        except BaseException:
            self.media.close()
            raise
        self.source: ClipSource = replace(source, files=self)

    def media_reader(self) -> SourceReader:
        return self.media.reader()

    def sound_reader(self) -> SourceReader:
        return (self.audio or self.media).reader()

    def finish(self) -> str:
        sha = self.media.finish()
        if self.audio is not None:
            self.audio.finish()
        return sha

    def close(self) -> None:
        self.media.close()
        if self.audio is not None:
            self.audio.close()

    def __enter__(self) -> ClipFiles:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_audio(source: ClipSource) -> SourceFile:
    assert source.audio_path is not None
    label = source.audio_name or source.audio_path.name
    if not os.path.exists(source.audio_path):
        raise MediaChangedError(missing_audio(label))
    return SourceFile(source.audio_path, label, source.audio_sha256)


def not_ingested(label: str, sha: str, recorded: str) -> str:
    """Why a file whose bytes hash to ``sha`` is not the ingested one ('' when it is, or when
    the manifest recorded no hash)."""
    if recorded and sha != recorded:
        return (f"{label} changed since ingest (its sha256 is now {sha[:12]}, the manifest "
                f"has {recorded[:12]}): rerun ingest")
    return ""


def missing_audio(label: str) -> str:
    return (f"its audio file {label} is missing (it was there at ingest): restore it, or "
            f"rerun ingest")


# -- in the parent, before a cached clip is reused ----------------------------------------


def _memo_sha256(path: Path, memo: MediaHashMemo) -> str:
    sha = memo.get(path)
    if sha is None:
        sha, identity = hash_file(path)
        memo.put(path, sha, identity)
    return sha


def _file_problem(path: Path, label: str, recorded: str, memo: MediaHashMemo) -> str:
    try:
        sha = _memo_sha256(path, memo)
    except (SourceFileError, MediaChangedError) as e:
        return str(e)
    return not_ingested(label, sha, recorded)


def reuse_problem(source: ClipSource, memo: MediaHashMemo) -> str:
    """Why the clip's media or separate audio file is not the ingested one, so that its cache
    entry must not be reused ("" when both are): the words a worker would say, from the
    memo or by hashing the file through :class:`SourceFile` (no FIFO blocks it)."""
    why = _file_problem(source.path, source.path.name, source.sha256, memo)
    audio = source.audio_path
    if why or audio is None:
        return why
    label = source.audio_name or audio.name
    if not audio.exists():
        return missing_audio(label)
    return _file_problem(audio, label, source.audio_sha256, memo)


def known_sha256(path: Path, memo: MediaHashMemo) -> str:
    """A file's sha256 for a manifest that has none: from the memo, or hashed now ('' when it
    cannot be read: the worker that opens it says why)."""
    try:
        return _memo_sha256(path, memo)
    except (SourceFileError, MediaChangedError):
        return ""
