"""Feature directories against each other and against the clip manifest (for
:mod:`pipeline.verify`): the same clip set (less each stage's recorded failures), the same
source media, the audio file the manifest names, time spans that fit the clip and end
together, and derived features on their source's rows."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ..files import text_file
from ..manifest import ManifestEntry
from ..store.format import TIMESTAMPS, VALID
from ..store.reader import shard_clip
from .directory import AUDIO_FEATURES, SAME_ROWS, VISUAL_FEATURES, ClipFacts, FeatureDir


def _failures_csv(manifest: Path, feature: str) -> Path:
    return manifest.parent / "failures" / f"{feature}.csv"


def _failed(manifest: Path | None, feature: str) -> set[str]:
    """Clips the stage recorded as failed (none known without a manifest)."""
    path = _failures_csv(manifest, feature) if manifest is not None else None
    if path is None or not path.exists():
        return set()
    with text_file(path, encoding="utf-8") as f:
        return {row.get("clip_id") or "" for row in csv.DictReader(f)}


def _all_clips(dirs: list[FeatureDir], entries: list[ManifestEntry] | None) -> list[str]:
    seen: dict[str, None] = {}
    for e in entries or []:
        seen.setdefault(e.clip_id)
    for d in dirs:
        for cid in d.clip_ids:
            seen.setdefault(cid)
    return list(seen)


def _names(dirs: Sequence[FeatureDir]) -> str:
    return ", ".join(d.label for d in dirs)


def check_clip_sets(
    dirs: list[FeatureDir], entries: list[ManifestEntry] | None, manifest: Path | None
) -> list[str]:
    problems = []
    failed = {d.label: _failed(manifest, d.feature) for d in dirs}
    expected = {e.clip_id for e in entries} if entries is not None else None
    for cid in _all_clips(dirs, entries):
        if expected is not None and cid not in expected:
            for d in dirs:
                if cid in d:
                    problems.append(f"clip {cid}: in {d.label} ({d.path}) but not in {manifest}")
            continue
        missing = [d for d in dirs if cid not in d and cid not in failed[d.label]]
        if not missing:
            continue
        have = [d for d in dirs if cid in d]
        where = ", ".join(f"{d.label} ({d.path})" for d in missing)
        if manifest is None:
            problems.append(f"clip {cid}: in {_names(have)} but missing from {where}")
            continue
        logs = ", ".join(str(_failures_csv(manifest, d.feature)) for d in missing)
        text = f"clip {cid}: in {manifest} but missing from {where}, and not recorded in {logs}"
        problems.append(text + (f"; present in {_names(have)}" if have else ""))
    return problems


def check_sources(
    dirs: list[FeatureDir], entries: list[ManifestEntry] | None, manifest: Path | None
) -> list[str]:
    problems = []
    want = {e.clip_id: e.sha256 for e in entries or [] if e.sha256}
    for cid in _all_clips(dirs, entries):
        shas = {d.label: d.clips[cid].sha256 for d in dirs if cid in d.clips}
        if cid in want:
            stale = [label for label, sha in shas.items() if sha != want[cid]]
            if stale:
                made = "; ".join(f"{label} has {shas[label][:12] or '(none)'}" for label in stale)
                problems.append(
                    f"clip {cid}: source_sha256 differs from the media's sha256 "
                    f"{want[cid][:12]} in {manifest} ({made}): rerun {', '.join(stale)}"
                )
        elif len(set(shas.values())) > 1:
            groups: dict[str, list[str]] = {}
            for label, sha in shas.items():
                groups.setdefault(sha, []).append(label)
            made = "; ".join(f"{sha[:12] or '(none)'} in {', '.join(ls)}"
                             for sha, ls in groups.items())
            problems.append(
                f"clip {cid}: source_sha256 differs across features ({made}): they were made "
                f"from different versions of the media file"
            )
    return problems


def _reads_audio(feature: str) -> bool:
    """Whether the feature's extractor reads a clip's separate audio file (declares it)."""
    try:
        from .features import get_extractor_class
        from .features.base import AUDIO_FIELD

        fields = get_extractor_class(feature).source_fields
    except (ImportError, ValueError):  # a feature this installation does not know
        return False
    return isinstance(fields, tuple) and AUDIO_FIELD in fields


def check_audio_files(
    dirs: list[FeatureDir], entries: list[ManifestEntry] | None, manifest: Path | None
) -> list[str]:
    """A clip's sound must come from the audio file the manifest names now (its
    ``audio_sha256``), or from the media's own track when it names none."""
    problems = []
    for e in entries or []:
        for d in dirs:
            facts = d.clips.get(e.clip_id)
            if facts is None or not (facts.audio_sha256 or _reads_audio(d.feature)):
                continue
            if facts.audio_sha256 == e.audio_sha256:
                continue
            now = (f"its audio file {e.audio_path} ({e.audio_sha256[:12]})" if e.audio_path
                   else "the media's own audio track")
            made = (f"an audio file of sha256 {facts.audio_sha256[:12]}" if facts.audio_sha256
                    else "the media's own audio track")
            problems.append(
                f"clip {e.clip_id}: {d.label} was made from {made}, but {manifest} reads "
                f"{now}: rerun {d.label}"
            )
    return problems


def check_times(
    dirs: list[FeatureDir], entries: list[ManifestEntry] | None, manifest: Path | None
) -> list[str]:
    problems = []
    durations = {e.clip_id: e.duration for e in entries or [] if e.duration > 0}
    for cid in _all_clips(dirs, entries):
        span = durations.get(cid)
        flagged = set()
        for d in dirs:
            f = d.clips.get(cid)
            if f is None or f.first is None or f.last is None:
                continue
            tol = f.tolerance
            parts = []
            if f.first < -tol:
                parts.append(f"its first valid row is at {f.first:.3f} s, before the clip starts")
            if span is not None:
                if f.last > span + tol:
                    parts.append(f"valid rows reach {f.last:.3f} s, "
                                 f"{f.last - span:.3f} s past the clip's end")
                elif d.feature in AUDIO_FEATURES + VISUAL_FEATURES and f.end is not None:
                    if f.end > span + tol:
                        parts.append(f"its data ends at {f.end:.3f} s, "
                                     f"{f.end - span:.3f} s past the clip's end")
                    elif f.end < span - tol and not f.capped:
                        parts.append(f"its data ends at {f.end:.3f} s, "
                                     f"{span - f.end:.3f} s before the clip's end")
            if parts:
                flagged.add(d.label)
                of = f"clip duration {span:.3f} s in {manifest}, " if span is not None else ""
                problems.append(
                    f"clip {cid}: {d.label}: {'; '.join(parts)} ({of}tolerance {tol:.2f} s)"
                )
        ends = [
            (d, d.clips[cid]) for d in dirs
            if cid in d.clips and d.label not in flagged and d.clips[cid].end is not None
            and not d.clips[cid].capped
        ]
        for da, fa in ends:
            if da.feature not in AUDIO_FEATURES:
                continue
            for dv, fv in ends:
                if dv.feature not in VISUAL_FEATURES:
                    continue
                tol = max(fa.tolerance, fv.tolerance)
                gap = abs(fa.end - fv.end)  # type: ignore[operator]
                if gap > tol:
                    problems.append(
                        f"clip {cid}: {da.label} data ends at {fa.end:.3f} s but {dv.label} "
                        f"data at {fv.end:.3f} s, {gap:.3f} s apart (tolerance {tol:.2f} s)"
                    )
    return problems


def check_same_rows(dirs: list[FeatureDir]) -> list[str]:
    problems = []
    for source, derived in SAME_ROWS:
        for ds in (d for d in dirs if d.feature == source):
            for dd in (d for d in dirs if d.feature == derived):
                for cid, fd in dd.clips.items():
                    fs = ds.clips.get(cid)
                    if fs is None or fs.rows_digest == fd.rows_digest:
                        continue
                    try:
                        detail = _first_difference(cid, (ds.label, fs), (dd.label, fd))
                    except Exception as e:  # noqa: BLE001 - damage is a finding, not a crash
                        detail = f"rows unreadable: {type(e).__name__}: {e}"
                    problems.append(
                        f"clip {cid}: {dd.label} rows differ from {ds.label} rows ({detail}), "
                        f"but {derived} takes its frames from {source}: rerun {derived}"
                    )
    return problems


def _first_difference(cid: str, *sides: tuple[str, ClipFacts]) -> str:
    """Where two directories' rows of a clip first differ, in words (re-reads the two small
    row arrays)."""
    rows = []
    for _, facts in sides:
        with h5py.File(facts.shard, "r") as f:
            g = shard_clip(f, cid)
            rows.append((g[TIMESTAMPS][()], g[VALID][()].astype(bool)))
    (la, _), (lb, _) = sides
    (ta, va), (tb, vb) = rows
    if len(ta) != len(tb):
        return f"{lb} has {len(tb)} rows, {la} {len(ta)}"
    diff = np.flatnonzero(ta != tb)
    if len(diff):
        i = int(diff[0])
        return (f"{len(diff)} of {len(ta)} timestamps differ, first row {i}: {lb} has "
                f"{tb[i]:.3f} s, {la} {ta[i]:.3f} s")
    i = int(np.flatnonzero(va != vb)[0])
    return f"row {i} at {ta[i]:.3f} s is valid in {la if va[i] else lb} only"
