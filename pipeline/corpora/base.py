"""The corpus-independent clip record and the adapter interface.

An adapter turns a corpus as it lies on disk into :class:`Clip` records. It never decodes
media: probing (duration, fps, sample rate) is the ingest stage's job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import FoldScheme
from ..ids import MAX_LEN, is_valid_name

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_clip_id(raw: str) -> str:
    """A clip id usable as an HDF5 name and a file name: [A-Za-z0-9._-], no leading dot.

    Accents are dropped (``Zoë`` -> ``Zoe``), other characters become ``_``; a name with no
    ASCII letter or digit at all (``日本語``) gets a stable id from its hash.
    """
    if not raw:
        raise ValueError("cannot make a clip id from an empty name")
    ascii_ = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
    cid = _UNSAFE.sub("_", ascii_).strip("._")
    if not any(ch.isalnum() for ch in cid):
        cid = "clip_" + hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]
    if len(cid) > MAX_LEN:  # keep it a usable file name, still unique
        cid = cid[: MAX_LEN - 13] + "_" + hashlib.sha1(raw.encode("utf-8")).hexdigest()[:12]
    return cid


@dataclass
class Clip:
    """One utterance/clip of a corpus.

    ``path`` is relative to the corpus root. ``start``/``end`` (seconds) cut an utterance out
    of a longer file (IEMOCAP dialogs); both 0 mean the whole file. ``label`` is the single
    class of single-label corpora; ``scores`` holds per-emotion scores of multi-label ones.
    ``meta`` carries corpus-specific fields (RAVDESS intensity, statement, ...).
    ``audio_path`` (relative to the root, like ``path``) names a separate file the clip's sound
    is read from instead of ``path``'s own audio track (CREMA-D's WAV beside its FLV, a
    RAVDESS audio-only take beside its video); it shares ``path``'s time axis, so
    ``start``/``end`` cut both. "" = the media's own track.
    """

    clip_id: str
    path: str
    speaker: str = ""
    session: str = ""
    label: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    transcript: str = ""
    start: float = 0.0
    end: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)
    audio_path: str = ""

    def __post_init__(self) -> None:
        if not is_valid_name(self.clip_id) or self.clip_id != safe_clip_id(self.clip_id):
            raise ValueError(f"clip id {self.clip_id!r} is not safe; use safe_clip_id()")
        for what, rel in (("path", self.path), ("audio path", self.audio_path)):
            if rel and (Path(rel).is_absolute() or ".." in Path(rel).parts):
                raise ValueError(f"clip {what} must be relative to the corpus root: {rel!r}")


def check_options(adapter: str, checks: Iterable[tuple[str, object, Iterable[str]]]) -> None:
    """ValueError naming the first adapter option (name, value, allowed values) whose value
    is not allowed, and what is."""
    for option, value, allowed in checks:
        allowed = tuple(allowed)
        if value not in allowed:
            raise ValueError(
                f"{adapter} option {option}={value!r} is not allowed; allowed: "
                + ", ".join(allowed)
            )


def check_codes(name: str, checks: Iterable[tuple[str, Mapping[str, object], str]]) -> None:
    """ValueError naming the file ``name``'s first field (code, table of known codes, what
    the field is) whose code the table does not know, and the codes it does."""
    for code, table, what in checks:
        if code not in table:
            raise ValueError(
                f"{name!r}: unknown {what} code {code}; known: {', '.join(sorted(table))}"
            )


class LayoutError(FileNotFoundError):
    """The corpus root does not hold the layout the adapter reads (wrong root or adapter)."""


class CorpusAdapter(ABC):
    """Reads one corpus layout. Subclasses set ``name`` and ``labels`` and implement clips().

    The common contract (checked for every adapter by ``tests/test_corpus_contract.py``):

    - ``clips()`` yields :class:`Clip` records with safe, unique ids and paths relative to the
      root; labels from ``labels`` (or "" where a clip has none); speakers where the corpus
      names them; transcripts where ``has_transcripts``.
    - A root that is not this corpus raises :class:`LayoutError` naming what is missing and
      the expected ``layout``. A file that does not parse, or a missing label file that only
      part of the corpus needs, goes to ``skipped`` as ``(relative path, reason)`` (or
      ``(relative path, reason, clip id)``); the rest of the corpus is still yielded (ingest
      records each skipped file as a failure, under the id :meth:`skipped_id` gives it).
    - ``fold_schemes`` are the corpus's standard splits (``folds.schemes`` entries);
      ``disjoint`` maps a scheme name to the manifest column that no two parts of one of its
      folds may share (speaker-disjoint where the corpus says so); ``together`` names the
      column of clips that render one take, never split by any scheme.
    """

    name: str = ""
    title: str = ""  # the corpus's own name, for messages
    labels: tuple[str, ...] = ()
    multi_label: bool = False
    has_transcripts: bool = False
    layout: str = ""  # the expected on-disk layout, shown in error messages
    fold_schemes: tuple[FoldScheme, ...] = ()
    disjoint: dict[str, str] = {}
    # A manifest column naming the take a clip renders, where several clips render one take
    # (RAVDESS's full-AV and video-only files): the folds stage keeps each take's clips in one
    # part of every scheme (FoldScheme.together).
    together: str = ""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.skipped: list[tuple[str, ...]] = []

    def check_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{self.name} corpus root {self.root} does not exist or is not a folder; "
                f"set corpus.root in params.yaml to where the corpus lies"
            )

    def layout_error(self, what: str) -> LayoutError:
        """The error for a root that does not hold this corpus: what is missing, and the
        layout expected (so a wrong root or a wrong ``--adapter`` is plain)."""
        title = self.title or self.name
        return LayoutError(
            f"{self.root} does not look like {title} (adapter {self.name!r}): {what}. "
            f"Expected layout under corpus.root:\n{self.layout.rstrip()}"
        )

    def skip(self, rel: str | Path, why: str, clip_id: str = "") -> None:
        """Record a file that is left out, with the reason (it becomes an ingest failure,
        under ``clip_id`` when given, else :meth:`skipped_id`)."""
        self.skipped.append((Path(rel).as_posix(), why, *([clip_id] if clip_id else [])))

    def skipped_id(self, rel: str) -> str:
        """The id a skipped file's failure row gets: the one its clip would have had, by the
        adapter's rule (here the file's stem, made safe)."""
        try:
            return safe_clip_id(Path(rel).stem)
        except ValueError:
            return "skipped"

    @abstractmethod
    def clips(self) -> Iterator[Clip]:
        """Yield the corpus's clips in a stable order."""
