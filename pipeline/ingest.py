"""Turn a corpus on disk into a clip manifest: adapter records + container probe + hash.

1. The adapter yields clips; each clip's media (and separate audio file) is opened once,
   refused unless it is a regular file (:mod:`pipeline.files`: a FIFO never blocks ingest),
   hashed, and probed from that same open file. Messages name files as the manifest does
   (relative to the corpus root), never as a symlink's target.
2. The clip's cut, word times and transcript are checked against the media's duration
   (:func:`check_times`, :mod:`pipeline.text.limits`); a separate audio file that is far
   longer or shorter than the media is kept with a warning.
3. A clip that fails a check is a failure row with the reason; so is each file or row the
   adapter skipped, under the id its clip would have had. The rest go to the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from .clip_warnings import ClipWarning
from .corpora import Clip, CorpusAdapter
from .features.audio import DURATION_SLACK  # a separate audio file's length: the same slack
from .files import open_regular
from .manifest import Failure, ManifestEntry
from .media import MediaInfo, ProbeError
from .media.probe import probe_file
from .text.alignment import WORD_TIMES_KEY, parse_word_times
from .text.limits import max_words, transcript_problem

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
                probed[path] = probe_and_hash(path, clip.path)
            info, sha = probed[path]
            doubts = [check_times(clip, info.duration)]
            seconds = (clip.end - clip.start) if clip.end > 0 else info.duration - clip.start
            if why := transcript_problem(clip.transcript, seconds):
                raise ValueError(f"{clip.meta.get('transcript_file', clip.path)}: {why}")
            audio_sha, audio_doubt = _audio_file(adapter.root, clip, probed, info)
            doubts.append(audio_doubt)
        except (ProbeError, ValueError, OSError) as e:
            log.warning("ingest: %s: %s", clip.clip_id, e)
            failures.append(Failure(clip.clip_id, "ingest", str(e), type(e).__name__))
            continue
        for doubt in filter(None, doubts):
            log.warning("ingest: %s: %s", clip.clip_id, doubt)
            warnings.append(ClipWarning(clip.clip_id, "ingest", doubt))
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
    for rel, why, *cid in getattr(adapter, "skipped", []):
        clip_id = cid[0] if cid else adapter.skipped_id(rel)
        failures.append(Failure(clip_id, "ingest", f"skipped {rel}: {why}", "ValueError"))
    return IngestResult(entries, failures, warnings)


def probe_and_hash(path: Path, name: str) -> tuple[MediaInfo, str]:
    """Probe facts and sha256 of one open file (so both are of the same bytes), refused
    unless it is a regular file; messages call it ``name``."""
    try:
        f = open_regular(path, name)
    except FileNotFoundError:
        raise ProbeError(f"{name}: file not found") from None
    except OSError as e:
        raise ProbeError(str(e) if e.filename is None else f"{name}: {e.strerror}") from None
    with f:
        h = hashlib.sha256()
        while block := f.read(1 << 20):
            h.update(block)
        return probe_file(f, name), h.hexdigest()


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
    words = parse_word_times(raw)
    if span > 0 and len(words) > max_words(span):
        raise ValueError(f"{where}: {len(words)} timed words for a clip of {span:.2f} s (at "
                         f"most {max_words(span)}): they cannot belong to this clip")
    for word, ws, we in words:
        if not (math.isfinite(ws) and math.isfinite(we)) or ws < -TIME_SLACK or we < ws:
            raise ValueError(f"{where}: word {word!r} has times {ws}..{we} s, not a valid span")
        if span > 0 and ws > span + TIME_SLACK:
            raise ValueError(
                f"{where}: word {word!r} starts at {ws:.3f} s, past the clip's end "
                f"({span:.3f} s): the word times do not belong to this media"
            )
    return doubt


def _audio_file(
    root: Path, clip: Clip, probed: dict[Path, tuple], media: MediaInfo
) -> tuple[str, str]:
    """The sha256 of the clip's separate audio file ("" when it has none), after checking it
    is inside the root and holds an audio track, and a warning ("" when none) when it is far
    longer or shorter than the media. A declared file that is missing or holds no sound fails
    the clip: its audio must not come quietly from another source."""
    if not clip.audio_path:
        return "", ""
    try:
        path = _inside(root, clip.audio_path)
    except ValueError as e:
        raise ValueError(f"its audio file {e}") from e
    if path not in probed:
        try:
            probed[path] = probe_and_hash(path, clip.audio_path)
        except ProbeError as e:
            raise ProbeError(f"its audio file {e}") from e
    info, sha = probed[path]
    if not info.has_audio:
        raise ProbeError(f"its audio file {clip.audio_path} has no audio track")
    doubt = ""
    if media.duration > 0 and abs(info.duration - media.duration) > DURATION_SLACK:
        what = "video" if media.has_video else "media"
        doubt = (f"its audio file {clip.audio_path} lasts {info.duration:.2f} s but its "
                 f"{what} {clip.path} {media.duration:.2f} s (more than {DURATION_SLACK} s "
                 f"apart): the audio may be another take, or offset from the {what}")
    return sha, doubt


def _inside(root: Path, rel: str) -> Path:
    root_r = root.resolve()
    p = (root_r / rel).resolve()
    if not p.is_relative_to(root_r):
        raise ValueError(f"{rel!r} points outside the corpus root {root}")
    return p
