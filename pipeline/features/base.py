"""The extractor interface shared by every feature (mel, spectrogram, faces, landmarks, words).

An extractor is configured once from a frozen config dataclass (its ``params.yaml`` section),
loads its models in :meth:`Extractor.setup` (once per worker process), and turns one clip into
:class:`~pipeline.store.ClipFeatures`. It does no bookkeeping: caching, parallelism, failure
records and shard writing belong to :mod:`pipeline.runner`.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..config import to_dict
from ..store import ClipFeatures, ClipSink

if TYPE_CHECKING:
    from ..media.source_file import ClipFiles, SourceReader


class ExtractionError(RuntimeError):
    """This clip cannot be processed (no audio, no face, empty transcript, ...).

    The runner records the message as the clip's failure reason and goes on.
    """


MEDIA_FIELDS = ("sha256", "start", "end", "fps", "duration", "has_audio", "has_video")
# The declared field for a clip's separate audio file (ClipSource.audio_path and friends).
AUDIO_FIELD = "audio"


@dataclass(frozen=True)
class ClipSource:
    """What an extractor gets to know about a clip (a manifest row, resolved)."""

    clip_id: str
    path: Path  # absolute media path
    sha256: str = ""
    start: float = 0.0  # seconds; start/end both 0 = the whole file
    end: float = 0.0
    fps: float = 0.0
    duration: float = 0.0
    has_audio: bool = True
    has_video: bool = True
    transcript: str = ""
    speaker: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    # The clip's separate audio file (absolute; None = the media's own track), its path as
    # the manifest names it (relative to the corpus root) and its sha256 at ingest.
    audio_path: Path | None = None
    audio_name: str = ""
    audio_sha256: str = ""
    # The clip's files as the runner opened them (pipeline.media.source_file): decoders read
    # through them, so what is decoded is what is hashed. None: the paths are opened.
    files: ClipFiles | None = field(default=None, compare=False, repr=False)

    @property
    def sound_path(self) -> Path:
        """The file the clip's sound is read from."""
        return self.audio_path or self.path

    def media_input(self) -> Path | SourceReader:
        """What a decoder opens for the clip's media (every decoder of an extractor reads
        through this, never ``path``): a reader over the file the runner opened and is
        hashing, else the path."""
        return self.files.media_reader() if self.files is not None else self.path

    def sound_input(self) -> Path | SourceReader:
        """What a decoder opens for the clip's sound: its separate audio file or its media,
        as :meth:`media_input`."""
        return self.files.sound_reader() if self.files is not None else self.sound_path


def restrict_source(source: ClipSource, fields: tuple[str, ...]) -> ClipSource:
    """``source`` with only its media facts and the declared ``fields`` (``transcript``,
    ``speaker``, ``meta.<key>``, ``audio``) filled in."""
    meta = {k: v for k, v in source.meta.items() if f"meta.{k}" in fields}
    audio = AUDIO_FIELD in fields
    return replace(
        source,
        transcript=source.transcript if "transcript" in fields else "",
        speaker=source.speaker if "speaker" in fields else "",
        meta=meta,
        audio_path=source.audio_path if audio else None,
        audio_name=source.audio_name if audio else "",
        audio_sha256=source.audio_sha256 if audio else "",
    )


def source_key_inputs(source: ClipSource, fields: tuple[str, ...]) -> dict[str, Any]:
    """The values of a clip that enter its cache key: the media facts and the declared fields
    (long texts as their sha256)."""
    from ..hashing import text_sha256

    out: dict[str, Any] = {name: getattr(source, name) for name in MEDIA_FIELDS}
    for name in sorted(fields):
        if name == AUDIO_FIELD:
            # The audio file's content; nothing at all for a clip without one, so the keys of
            # clips that read their media's own track are what they always were.
            if source.audio_path is not None:
                out[name] = source.audio_sha256
            continue
        value = source.meta.get(name[5:], "") if name.startswith("meta.") else getattr(
            source, name
        )
        out[name] = text_sha256(str(value))
    return out


class Extractor(ABC):
    """Base class. Subclasses set the class attributes and implement :meth:`extract`."""

    name: ClassVar[str]  # stage and section name in params.yaml
    config_class: ClassVar[type]
    version: ClassVar[str] = "1"  # bump when the output of the same params changes
    primary: ClassVar[str]  # name of the main array in ClipFeatures.arrays
    row_unit: ClassVar[str] = "rows"  # what one row is, in progress lines ("frames", ...)
    libraries: ClassVar[tuple[str, ...]] = ("numpy",)  # distributions recorded as provenance
    # Numeric ClipFeatures.attrs that the stage sums over the corpus's clips into its metrics
    # JSON (e.g. words: n_tokens, n_oov), passed through corpus_metrics().
    summed_attrs: ClassVar[tuple[str, ...]] = ()
    # What the extractor reads of a clip beyond its media: ``transcript``, ``speaker``,
    # ``meta.<key>`` or ``audio`` (the clip's separate audio file, when it has one: the runner
    # opens it and checks the bytes the extractor reads against the manifest). The runner hands
    # it a ClipSource with only these filled in and puts their values in the clip's cache key,
    # so an undeclared input can never go stale unnoticed.
    source_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.config_class()
        self._ready = False

    def setup(self) -> None:  # noqa: B027 - optional hook, most extractors load nothing
        """Load models. Called once per worker before the first clip."""
        return None

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def params(self) -> dict[str, Any]:
        """The parameters that define the output (stored in every shard, part of the cache key)."""
        return to_dict(self.config)

    @classmethod
    def corpus_metrics(cls, sums: dict[str, float]) -> dict[str, Any]:
        """Stage metrics from the sums of ``summed_attrs`` (default: the sums themselves)."""
        return dict(sums)

    def model_token(self) -> str:
        """Identifies the model in use by content (e.g. the weights file's sha256, never a
        path or an mtime); '' if none."""
        return ""

    def check_inputs(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~pipeline.exits.MissingInputError` saying what to run first when
        what the stage reads from another stage is not there (landmarks: the faces shards).
        Called once before a stage starts, so no clip is tried."""

    def clip_inputs(self, source: ClipSource) -> dict[str, Any]:
        """Per-clip inputs other than the source's fields that define the output (e.g. the
        faces rows landmarks are computed on); part of the clip's cache key. Called in the
        parent process before any clip is extracted."""
        return {}

    def cache_token(self) -> dict[str, Any]:
        return {
            "feature": self.name,
            "version": self.version,
            "params": self.params(),
            "model": self.model_token(),
        }

    def provenance(self) -> dict[str, Any]:
        versions = {}
        for dist in ("mer-pipeline", *self.libraries):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        return {
            "extractor": f"{type(self).__module__}.{type(self).__qualname__}",
            "extractor_version": self.version,
            "model": self.model_token(),
            "libraries": versions,
        }

    @abstractmethod
    def extract(self, source: ClipSource) -> ClipFeatures:
        """Features of one clip. Raise :class:`ExtractionError` for a clip that cannot be
        processed; any other exception is also recorded as that clip's failure."""

    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        """Append the clip's rows to ``sink`` and return its attrs (what the runner calls).

        The default appends :meth:`extract`'s whole output in one block; extractors whose
        output grows with clip length derive from :class:`StreamingExtractor` instead.
        """
        feats = self.extract(source)
        sink.append(feats.arrays, feats.timestamps, feats.valid)
        return feats.attrs


class StreamingExtractor(Extractor):
    """An extractor that appends its output block by block (:meth:`extract_into`), so its
    memory is bounded by its batch size and the sink's spill threshold, not by clip length.
    :meth:`extract` collects the blocks for callers that want the arrays."""

    def extract(self, source: ClipSource) -> ClipFeatures:
        sink = ClipSink()
        attrs = self.extract_into(source, sink)
        feats = sink.close(attrs)
        assert feats is not None
        return feats

    @abstractmethod
    def extract_into(self, source: ClipSource, sink: ClipSink) -> dict[str, Any]:
        """Append the clip's rows to ``sink`` in blocks; return the clip's attrs. Raise
        :class:`ExtractionError` for a clip that cannot be processed (rows already appended
        are then discarded)."""
