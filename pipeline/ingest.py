"""Turn a corpus on disk into a clip manifest: adapter records + container probe + hash."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from .clip_warnings import ClipWarning
from .corpora import Clip, CorpusAdapter
from .hashing import file_sha256
from .manifest import Failure, ManifestEntry
from .media import ProbeError, probe
from .text.alignment import WORD_TIMES_KEY, parse_word_times

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    entries: list[ManifestEntry]
    failures: list[Failure]
    # clips kept but doubtful (a cut a little past the file's end), in words
    warnings: list[ClipWarning] = field(default_factory=list)


def ingest(adapter: CorpusAdapter) -> IngestResult:
    """Probe every clip the adapter yields. A clip whose file cannot be probed is a failure
    (recorded with its reason) and stays out of the manifest; the rest proceed."""
    entries: list[ManifestEntry] = []
    failures: list[Failure] = []
    warnings: list[ClipWarning] = []
    seen: dict[str, str] = {}
    # utterances cut from one long file (IEMOCAP dialogs, MOSEI videos): probe and hash it once
    probed: dict[Path, tuple] = {}
    for clip in adapter.clips():
        if clip.clip_id in seen:
            why = (f"duplicate clip id: {clip.path} was dropped, {seen[clip.clip_id]} keeps "
                   f"the id {clip.clip_id}")
            log.warning("ingest: %s", why)
            failures.append(Failure(clip.clip_id, "ingest", why, "ValueError"))
            continue
        seen[clip.clip_id] = clip.path
        try:
            path = _inside(adapter.root, clip.path)
            if path not in probed:
                probed[path] = (probe(path), file_sha256(path))
            info, sha = probed[path]
            if doubt := check_times(clip, info.duration):
                log.warning("ingest: %s: %s", clip.clip_id, doubt)
                warnings.append(ClipWarning(clip.clip_id, "ingest", doubt))
            audio_sha = _audio_file(adapter.root, clip, probed)
        except (ProbeError, ValueError, OSError) as e:
            log.warning("ingest: %s: %s", clip.clip_id, e)
            failures.append(Failure(clip.clip_id, "ingest", str(e), type(e).__name__))
            continue
        entries.append(
            ManifestEntry(
                clip_id=clip.clip_id,
                path=clip.path,
                sha256=sha,
                speaker=clip.speaker,
                session=clip.session,
                label=clip.label,
                transcript=clip.transcript,
                start=clip.start,
                end=clip.end,
                duration=(clip.end - clip.start) if clip.end > 0 else info.duration,
                fps=info.fps,
                n_frames=info.n_frames,
                width=info.width,
                height=info.height,
                sample_rate=info.sample_rate,
                channels=info.channels,
                has_audio=info.has_audio,
                has_video=info.has_video,
                rotation=info.rotation,
                scores=dict(clip.scores),
                audio_path=clip.audio_path,
                audio_sha256=audio_sha,
                # how n_frames was found: container, counted or estimated (see probe)
                meta={**clip.meta, **({"n_frames_from": info.n_frames_from} if info.has_video
                                      else {})},  # fmt: skip
            )
        )
    for rel, why in getattr(adapter, "skipped", []):
        failures.append(Failure(Path(rel).stem, "ingest", f"skipped {rel}: {why}", "ValueError"))
    return IngestResult(entries, failures, warnings)


TIME_SLACK = 0.5  # seconds a cut or a word time may pass the media's end (rounding, codecs)
# A cut passing the file's end by more than this, but within TIME_SLACK, is kept with a
# warning: the clip is shorter than its times say (about 2 frames at 25 fps; rounding of
# annotation times and container durations stays under it).
TIME_WARN = 0.08


def check_times(clip: Clip, media_seconds: float) -> str:
    """Refuse a clip whose cut or word times cannot be right for its media: NaN, negative,
    an end before its start, or past the end of the file (more than :data:`TIME_SLACK`).
    Return a warning, in words, when they pass the end by less than that but more than
    :data:`TIME_WARN` ("" when all is well)."""
    start, end = clip.start, clip.end
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"{clip.path}: cut {start}..{end} is not a pair of numbers")
    if start < 0 or end < 0:
        raise ValueError(f"{clip.path}: cut {start}..{end} s starts before the file")
    if end and end <= start:
        raise ValueError(f"{clip.path}: cut {start}..{end} s ends before it starts")
    if media_seconds > 0 and max(start, end) > media_seconds + TIME_SLACK:
        raise ValueError(
            f"{clip.path}: cut {start}..{end} s reaches past the file's end ({media_seconds:.3f} s)"
        )
    doubt = ""
    if media_seconds > 0 and max(start, end) > media_seconds + TIME_WARN:
        doubt = (f"cut {start:.3f}..{end:.3f} s passes the file's end ({media_seconds:.3f} s) "
                 f"by {max(start, end) - media_seconds:.3f} s: the clip holds less than its "
                 f"times say; check the annotation or the file")
    raw = clip.meta.get(WORD_TIMES_KEY, "")
    if not raw:
        return doubt
    span = (end - start) if end else media_seconds - start
    where = clip.meta.get("transcript_file", clip.path)
    for word, ws, we in parse_word_times(raw):
        if not (math.isfinite(ws) and math.isfinite(we)) or ws < -TIME_SLACK or we < ws:
            raise ValueError(f"{where}: word {word!r} has times {ws}..{we} s, not a valid span")
        if span > 0 and ws > span + TIME_SLACK:
            raise ValueError(
                f"{where}: word {word!r} starts at {ws:.3f} s, past the clip's end "
                f"({span:.3f} s): the word times do not belong to this media"
            )
    return doubt


def _audio_file(root: Path, clip: Clip, probed: dict[Path, tuple]) -> str:
    """The sha256 of the clip's separate audio file ("" when it has none), after checking it
    is inside the root and holds an audio track. A declared file that is missing or holds no
    sound fails the clip: its audio must not come quietly from another source."""
    if not clip.audio_path:
        return ""
    try:
        path = _inside(root, clip.audio_path)
    except ValueError as e:
        raise ValueError(f"its audio file {e}") from e
    if path not in probed:
        try:
            probed[path] = (probe(path), file_sha256(path))
        except ProbeError as e:
            raise ProbeError(f"its audio file {clip.audio_path}: {e}") from e
    info, sha = probed[path]
    if not info.has_audio:
        raise ProbeError(f"its audio file {clip.audio_path} has no audio track")
    return sha


def _inside(root: Path, rel: str) -> Path:
    root_r = root.resolve()
    p = (root_r / rel).resolve()
    if not p.is_relative_to(root_r):
        raise ValueError(f"{rel!r} points outside the corpus root {root}")
    return p
