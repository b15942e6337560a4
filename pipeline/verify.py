"""Whether feature directories are sound, alone and against each other and the manifest
(``verify``, ``verify_features``). Backs ``mer verify``."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .manifest import ManifestEntry, read_manifest
from .store import FeatureReader, ShardError
from .store.format import (
    CLIPS_GROUP,
    INDEX_NAME,
    READABLE_SCHEMAS,
    RESERVED,
    TIMESTAMPS,
    VALID,
)
from .store.integrity import UnsafeObjectError, clip_group_problems, member_problems, reach
from .store.reader import shard_clip, shard_path

# Cross-modality checks. Rows of these features span the clip's audio or its video frames, so
# their data must reach the clip's end, and an audio feature must end where a visual one does.
AUDIO_FEATURES = ("mel", "spectrogram")
VISUAL_FEATURES = ("faces", "landmarks")
# (source, derived): the derived feature takes its rows (timestamps, valid) from the source's.
SAME_ROWS = (("faces", "landmarks"),)


@dataclass
class _ClipFacts:
    """What the cross-directory checks need of one clip of one directory (no feature arrays)."""

    shard: Path
    sha256: str
    first: float | None  # first valid timestamp (None: no valid row)
    last: float | None  # last valid timestamp
    end: float | None  # where the clip's real data ends (see _data_end)
    tolerance: float  # seconds allowed between ``end`` and the clip's end
    capped: bool  # cut to the extractor's fixed length: need not reach the clip's end
    rows_digest: str  # sha256 of timestamps and valid
    audio_sha256: str = ""  # the separate audio file the sound came from ("" = the media's)


@dataclass
class _Dir:
    path: Path
    label: str
    feature: str
    clip_ids: list[str]  # as index.json lists them
    primary: str = ""
    clips: dict[str, _ClipFacts] = field(default_factory=dict)  # those that could be read
    listed: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.listed = set(self.clip_ids)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.listed


def verify(feature_dir: Path, manifest: Path | None = None, tolerance: float = 0.5) -> list[str]:
    """Every problem found in one feature directory, as sentences (empty: it is sound).
    See :func:`verify_features`."""
    return verify_features([feature_dir], manifest, tolerance)


def verify_features(
    feature_dirs: Sequence[Path], manifest: Path | None = None, tolerance: float = 0.5
) -> list[str]:
    """Every problem found in feature directories, alone and against each other, as one
    sentence each naming the clip, the feature and the numbers; an empty list means sound.

    Each directory: index readable, shards complete and listed, every clip's group present,
    each array as long as its timestamps and matching its checksum (read in blocks, never
    whole), one per-step shape per array, no leftover temporary files.

    Across them (and against ``manifest``, the corpus's clips.csv, when given): the same clip
    set, less the clips each stage recorded as failed (``failures/<feature>.csv`` beside the
    manifest); each clip's ``source_sha256`` the same everywhere (the manifest's when given),
    and its sound from the audio file the manifest names (``audio_sha256``) or, when it
    names none, from the media's own track; valid timestamps inside the clip's duration, the
    audio features' and visual features' data reaching its end and ending together, within
    ``tolerance`` seconds (or a feature's row spacing when wider); derived features
    (landmarks) on exactly their source's rows (faces).
    """
    entries = read_manifest(manifest) if manifest is not None else None
    problems: list[str] = []
    readers: list[tuple[Path, FeatureReader]] = []
    for path in feature_dirs:
        path = Path(path)
        try:
            readers.append((path, FeatureReader(path)))
        except ShardError as e:
            problems.append(str(e))
        except (KeyError, TypeError, AttributeError) as e:
            problems.append(f"{path / INDEX_NAME}: not a feature index ({e!r})")
    names = [r.feature for _, r in readers]
    dirs: list[_Dir] = []
    for path, reader in readers:
        label = reader.feature if names.count(reader.feature) == 1 else str(path)
        d = _Dir(path, label, reader.feature, reader.clip_ids, reader.primary)
        problems += _scan(d, reader, tolerance)
        dirs.append(d)
    problems += _check_clip_sets(dirs, entries, manifest)
    problems += _check_sources(dirs, entries, manifest)
    problems += _check_audio_files(dirs, entries, manifest)
    problems += _check_times(dirs, entries, manifest)
    problems += _check_same_rows(dirs)
    return problems


def _length_cap(params: dict[str, Any]) -> int:
    inner = params.get("params", {})
    return int(inner.get("fixed_length") or inner.get("max_words") or 0)


def _scan(d: _Dir, reader: FeatureReader, tolerance: float) -> list[str]:
    """Check one directory's files and clips; fill ``d.clips`` with what later checks need."""
    problems = [
        f"{tmp}: leftover temporary file from an interrupted write"
        for tmp in sorted(d.path.glob("*.tmp"))
    ]
    by_shard: dict[str, list[str]] = {}
    for cid, shard in reader.index["clips"].items():
        by_shard.setdefault(shard, []).append(cid)
    listed = set(reader.index.get("shards", {}))
    for stray in sorted(p.name for p in d.path.glob("shard-*.h5")):
        if stray not in listed:
            problems.append(f"{d.path / stray}: shard file not listed in {INDEX_NAME}")
    shapes: dict[str, dict[tuple[int, ...], str]] = {}
    for shard, cids in by_shard.items():
        lost = f"{len(cids)} clip(s) of {d.label} in it are unreadable: {', '.join(cids[:5])}"
        lost += ", ..." if len(cids) > 5 else ""
        try:
            spath = shard_path(d.path, shard)
        except ShardError as e:
            problems.append(f"{e}; {lost}")
            continue
        try:
            f = h5py.File(spath, "r")
        except OSError as e:
            problems.append(f"{spath}: cannot open shard ({e}); {lost}")
            continue
        with f:
            if not bool(f.attrs.get("complete", False)):
                problems.append(f"{spath}: shard is marked incomplete; {lost}")
                continue
            version = int(f.attrs.get("schema_version", -1))
            if version not in READABLE_SCHEMAS:
                problems.append(f"{spath}: unreadable schema version {version}; {lost}")
                continue
            try:
                groups = reach(f, CLIPS_GROUP)
            except (UnsafeObjectError, KeyError) as e:
                problems.append(f"{spath}: no /{CLIPS_GROUP} group of its own ({e}); {lost}")
                continue
            if not isinstance(groups, h5py.Group):
                problems.append(f"{spath}: no /{CLIPS_GROUP} group; {lost}")
                continue
            for cid in sorted(set(groups) - set(cids)):
                problems.append(f"clip {cid}: {d.label}: in {spath} but not in {INDEX_NAME}")
            for cid in cids:
                if cid not in groups:
                    problems.append(
                        f"clip {cid}: {d.label}: listed in {d.path / INDEX_NAME} under "
                        f"{shard}, but {spath} has no such clip"
                    )
                    continue
                try:
                    group = reach(groups, cid)
                except UnsafeObjectError as e:
                    problems.append(f"clip {cid}: {d.label}: {e}")
                    continue
                try:
                    facts = _check_clip(group, cid, d, reader.params, spath, tolerance,
                                        shapes, problems, version)
                except Exception as e:  # noqa: BLE001 - a damaged file is a finding, not a crash
                    problems.append(f"clip {cid}: {d.label}: unreadable in {spath} "
                                    f"({type(e).__name__}: {e})")
                    facts = None
                if facts is not None:
                    d.clips[cid] = facts
    for name, seen in shapes.items():
        if len(seen) > 1:
            eg = "; ".join(f"{list(s)} in clip {cid}" for s, cid in sorted(seen.items()))
            problems.append(
                f"{d.label}: array {name!r} has {len(seen)} per-step shapes across clips "
                f"(first seen: {eg})"
            )
    return problems


def _check_clip(
    group: h5py.Group,
    cid: str,
    d: _Dir,
    params: dict[str, Any],
    spath: Path,
    tolerance: float,
    shapes: dict[str, dict[tuple[int, ...], str]],
    problems: list[str],
    schema: int = 2,
) -> _ClipFacts | None:
    """One clip's checks; its facts for the cross-directory checks (None: rows unreadable)."""
    where = f"clip {cid}: {d.label}"
    primary = d.primary
    unsafe = member_problems(group)
    for name in RESERVED:
        if name in unsafe:
            problems.append(f"{where}: {name!r} {unsafe[name]} in {spath}")
            return None
    try:
        times = np.asarray(group[TIMESTAMPS][()], dtype=np.float64)
        valid = np.asarray(group[VALID][()]).astype(bool)
    except (KeyError, OSError) as e:
        problems.append(f"{where}: timestamps/valid unreadable in {spath} ({e})")
        return None
    n = len(times) if times.ndim == 1 else -1
    if n < 0 or valid.shape != (n,):
        problems.append(
            f"{where}: timestamps of shape {times.shape} and valid of shape {valid.shape} in "
            f"{spath}; expected two 1-D arrays of one length"
        )
        return None
    n_steps = int(group.attrs.get("n_steps", n))
    if n_steps != n:
        problems.append(f"{where}: n_steps attribute says {n_steps} but it has {n} timestamps")
    if not np.isfinite(times[valid]).all():
        problems.append(f"{where}: valid rows with non-finite timestamps in {spath}")
        return None
    for name, phrase in clip_group_problems(group, schema):
        what = f"{where} array {name!r} in {spath}" if name else f"{where} in {spath}"
        problems.append(f"{what}: {phrase}")
    unsafe = member_problems(group)
    for name, ds in group.items():
        if name in RESERVED or name in unsafe or not isinstance(ds, h5py.Dataset):
            continue
        what = f"{where} array {name!r} in {spath}"
        if ds.ndim == 0 or ds.shape[0] != n:
            problems.append(f"{what}: shape {ds.shape}, but the clip has {n} timestamps")
            continue
        shapes.setdefault(name, {}).setdefault(tuple(ds.shape[1:]), cid)
        if name != primary:  # other arrays may hold NaN by design (dlib's confidence)
            continue
        bad = _non_finite_valid_rows(ds, valid)
        if bad:
            problems.append(f"{what}: {bad} valid row(s) hold NaN or infinite values")
    if "track" in group and "track" not in unsafe:
        problems.extend(f"{where}: {p} in {spath}" for p in _track_problems(group, times, valid))
    rows = np.flatnonzero(valid)
    steps = np.diff(np.unique(times)) if "track" in group else np.diff(times)
    spacing = float(np.median(steps)) if len(steps) else 0.0
    end, exact = _data_end(group, d.feature, params, times, rows)
    sha = group.attrs.get("source_sha256", "")
    audio = group.attrs.get("audio_sha256", "")
    cap = _length_cap(params)
    return _ClipFacts(
        shard=spath,
        sha256=sha.decode() if isinstance(sha, bytes) else str(sha),
        first=float(times[rows].min()) if len(rows) else None,
        last=float(times[rows].max()) if len(rows) else None,
        end=end,
        tolerance=tolerance if exact else max(tolerance, spacing),
        capped=bool(cap and n == cap and valid[-1]),
        rows_digest=_rows_digest(times, valid),
        audio_sha256=audio.decode() if isinstance(audio, bytes) else str(audio),
    )


def _track_problems(group: h5py.Group, times: np.ndarray, valid: np.ndarray) -> list[str]:
    """A clip with a ``track`` array (``faces.select: all``: a row per face): rows in time
    then track order, one row per (time, track), track -1 only on rows without a face."""
    ds = group["track"]
    if ds.shape != times.shape or ds.dtype.kind not in "iu":
        return [f"'track' array of shape {ds.shape} and type {ds.dtype}: expected integers, "
                f"one per row"]  # fmt: skip
    track = np.asarray(ds[()], np.int64)
    out = []
    dt, dk = np.diff(times), np.diff(track)
    if ((dt < 0) | ((dt == 0) & (dk <= 0))).any():
        out.append("rows not in time then track order (or a track twice at one time)")
    if (valid & (track < 0)).any():
        out.append("valid rows with track -1 (no face)")
    if (~valid & (track >= 0)).any():
        out.append("rows of a track without a face")
    return out


def _non_finite_valid_rows(ds: h5py.Dataset, valid: np.ndarray, block_rows: int = 4096) -> int:
    """How many valid rows of a float array hold a NaN or an infinity (read in blocks)."""
    if ds.dtype.kind != "f" or not valid.any():
        return 0
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = max(1, min(block_rows, (16 * 2**20) // row_bytes))
    bad = 0
    for i in range(0, ds.shape[0], step):
        v = valid[i : i + step]
        if not v.any():
            continue
        block = np.asarray(ds[i : i + step])
        finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
        bad += int((v & ~finite).sum())
    return bad


def _data_end(
    group: h5py.Group, feature: str, params: dict[str, Any], times: np.ndarray,
    rows: np.ndarray,
) -> tuple[float | None, bool]:
    """Where the clip's data ends, and whether that is exact to a hop (else a row spacing).

    Visual rows are video frames whether or not they hold a face: the last frame. Audio rows
    are frames or segments: the last valid one, plus the real frames of a segment feature
    (``real_frames`` with the extractor's ``hop_length`` and ``sample_rate``)."""
    if feature in VISUAL_FEATURES:
        return (float(times.max()) if len(times) else None), False
    if not len(rows):
        return None, False
    last = int(rows[np.argmax(times[rows])])
    inner = params.get("params", {})
    hop, sr = inner.get("hop_length"), inner.get("sample_rate")
    if "real_frames" in group and hop and sr:
        real = group["real_frames"]
        if real.shape == times.shape:
            return float(times[last] + int(real[last]) * hop / sr), True
    return float(times[last]), False


def _rows_digest(times: np.ndarray, valid: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(times, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(valid, dtype=bool).tobytes())
    return h.hexdigest()


def _failures_csv(manifest: Path, feature: str) -> Path:
    return manifest.parent / "failures" / f"{feature}.csv"


def _failed(manifest: Path | None, feature: str) -> set[str]:
    """Clips the stage recorded as failed (none known without a manifest)."""
    path = _failures_csv(manifest, feature) if manifest is not None else None
    if path is None or not path.exists():
        return set()
    with open(path, newline="") as f:
        return {row["clip_id"] for row in csv.DictReader(f)}


def _all_clips(dirs: list[_Dir], entries: list[ManifestEntry] | None) -> list[str]:
    seen: dict[str, None] = {}
    for e in entries or []:
        seen.setdefault(e.clip_id)
    for d in dirs:
        for cid in d.clip_ids:
            seen.setdefault(cid)
    return list(seen)


def _names(dirs: Sequence[_Dir]) -> str:
    return ", ".join(d.label for d in dirs)


def _check_clip_sets(
    dirs: list[_Dir], entries: list[ManifestEntry] | None, manifest: Path | None
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


def _check_sources(
    dirs: list[_Dir], entries: list[ManifestEntry] | None, manifest: Path | None
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


def _check_audio_files(
    dirs: list[_Dir], entries: list[ManifestEntry] | None, manifest: Path | None
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


def _check_times(
    dirs: list[_Dir], entries: list[ManifestEntry] | None, manifest: Path | None
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


def _check_same_rows(dirs: list[_Dir]) -> list[str]:
    problems = []
    for source, derived in SAME_ROWS:
        for ds in (d for d in dirs if d.feature == source):
            for dd in (d for d in dirs if d.feature == derived):
                for cid, fd in dd.clips.items():
                    fs = ds.clips.get(cid)
                    if fs is None or fs.rows_digest == fd.rows_digest:
                        continue
                    detail = _first_difference(cid, (ds.label, fs), (dd.label, fd))
                    problems.append(
                        f"clip {cid}: {dd.label} rows differ from {ds.label} rows ({detail}), "
                        f"but {derived} takes its frames from {source}: rerun {derived}"
                    )
    return problems


def _first_difference(cid: str, *sides: tuple[str, _ClipFacts]) -> str:
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
