"""Turn a corpus on disk into a clip manifest: adapter records + container probe + hash."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .corpora import CorpusAdapter
from .hashing import file_sha256
from .manifest import Failure, ManifestEntry
from .media import ProbeError, probe

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    entries: list[ManifestEntry]
    failures: list[Failure]


def ingest(adapter: CorpusAdapter) -> IngestResult:
    """Probe every clip the adapter yields. A clip whose file cannot be probed is a failure
    (recorded with its reason) and stays out of the manifest; the rest proceed."""
    entries: list[ManifestEntry] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    # utterances cut from one long file (IEMOCAP dialogs, MOSEI videos): probe and hash it once
    probed: dict[Path, tuple] = {}
    for clip in adapter.clips():
        if clip.clip_id in seen:
            failures.append(Failure(clip.clip_id, "ingest", "duplicate clip id", "ValueError"))
            continue
        seen.add(clip.clip_id)
        try:
            path = _inside(adapter.root, clip.path)
            if path not in probed:
                probed[path] = (probe(path), file_sha256(path))
            info, sha = probed[path]
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
                # how n_frames was found: container, counted or estimated (see probe)
                meta={**clip.meta, **({"n_frames_from": info.n_frames_from} if info.has_video
                                      else {})},  # fmt: skip
            )
        )
    for rel, why in getattr(adapter, "skipped", []):
        failures.append(Failure(Path(rel).stem, "ingest", f"skipped {rel}: {why}", "ValueError"))
    return IngestResult(entries, failures)


def _inside(root: Path, rel: str) -> Path:
    root_r = root.resolve()
    p = (root_r / rel).resolve()
    if not p.is_relative_to(root_r):
        raise ValueError(f"{rel!r} points outside the corpus root {root}")
    return p
