"""One feature directory alone: its index, shards and clips (for :mod:`pipeline.verify`).

1. Every shard the index lists is opened (a shard that cannot be opened, is incomplete, or
   holds no ``/clips`` group is a finding naming the clips it loses); files the index does
   not list, and leftover temporary files, are findings.
2. The schema a shard is checked under is the newest any of its evidence claims: the index,
   the shard's attribute, or the checksums its clips carry. A shard that claims schema 1
   while its index or its clips say 2 is a finding, and its clips are still checked as
   schema 2 (a damaged or edited version number cannot switch checks off).
3. Each clip group: only its own data (no links out), every checksum, rows and shapes that
   fit; the facts the cross-directory checks need are kept in :class:`ClipFacts`.

Damage anywhere is a finding, never an exception: whatever a damaged file raises while a
shard is read is reported against that shard and the clips not yet checked in it. Each shard
is read in a child process (:mod:`.isolated`): a header that makes the HDF5 library itself
crash is reported as such, and each of that shard's clips is then read alone, so the damaged
one is named and the others are still checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..store import FeatureReader
from ..store.format import (
    ATTRS_SHA256,
    CLIPS_GROUP,
    INDEX_NAME,
    READABLE_SCHEMAS,
    RESERVED,
    SCHEMA_VERSION,
    TIMESTAMPS,
    VALID,
)
from ..store.integrity import UnsafeObjectError, clip_group_problems, member_problems, reach
from ..store.reader import ShardError, shard_path
from .isolated import ReaderCrashedError, call_isolated
from .speaker import speaker_problems

# Cross-modality checks. Rows of these features span the clip's audio or its video frames, so
# their data must reach the clip's end, and an audio feature must end where a visual one does.
AUDIO_FEATURES = ("mel", "spectrogram")
VISUAL_FEATURES = ("faces", "landmarks")
# (source, derived): the derived feature takes its rows (timestamps, valid) from the source's.
SAME_ROWS = (("faces", "landmarks"),)


@dataclass
class ClipFacts:
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
class FeatureDir:
    """One feature directory as the checks see it: what its index lists, and the facts of
    the clips that could be read."""

    path: Path
    label: str
    feature: str
    clip_ids: list[str]  # as index.json lists them
    primary: str = ""
    clips: dict[str, ClipFacts] = field(default_factory=dict)  # those that could be read
    listed: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.listed = set(self.clip_ids)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.listed


def _length_cap(params: dict[str, Any]) -> int:
    inner = params.get("params", {})
    return int(inner.get("fixed_length") or inner.get("max_words") or 0)


def scan(d: FeatureDir, reader: FeatureReader, tolerance: float) -> list[str]:
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
    index_schema = reader.index.get("schema_version")
    for shard, cids in by_shard.items():
        try:
            found, clips, shapes = call_isolated(
                _scan_shard_safely, d, reader.params, shard, cids, index_schema, tolerance,
                shapes)
        except ReaderCrashedError as crash:  # each clip alone, to name the one that does it
            found, clips = [], {}
            for cid in cids:
                try:
                    more, one, shapes = call_isolated(
                        _scan_shard_safely, d, reader.params, shard, [cid], index_schema,
                        tolerance, shapes, False)
                except ReaderCrashedError as e:
                    more, one = [f"clip {cid}: {d.label}: {e} in {d.path / shard}"], {}
                found += more
                clips.update(one)
            found.insert(0, f"{d.path / shard}: {crash}; the file is damaged")
        problems += found
        d.clips.update(clips)
    for name, seen in shapes.items():
        if len(seen) > 1:
            eg = "; ".join(f"{list(s)} in clip {cid}" for s, cid in sorted(seen.items()))
            problems.append(
                f"{d.label}: array {name!r} has {len(seen)} per-step shapes across clips "
                f"(first seen: {eg})"
            )
    return problems


def _lost(d: FeatureDir, cids: list[str]) -> str:
    return (f"{len(cids)} clip(s) of {d.label} in it are unreadable: {', '.join(cids[:5])}"
            + (", ..." if len(cids) > 5 else ""))


def _scan_shard_safely(
    d: FeatureDir, params: dict[str, Any], shard: str, cids: list[str], index_schema: object,
    tolerance: float, shapes: dict[str, dict[tuple[int, ...], str]], strays: bool = True,
) -> tuple[list[str], dict[str, ClipFacts], dict[str, dict[tuple[int, ...], str]]]:
    """One shard's findings, the facts of its sound clips and the array shapes seen; whatever
    the damaged file raises is a finding about the clips not yet checked."""
    done: set[str] = set()
    clips: dict[str, ClipFacts] = {}
    try:
        problems = _scan_shard(d, params, shard, cids, index_schema, tolerance, shapes, done,
                               clips, strays)
    except Exception as e:  # noqa: BLE001 - a damaged file is a finding, not a crash
        left = [c for c in cids if c not in done]
        problems = [f"{d.path / shard}: unreadable ({type(e).__name__}: {e}); "
                    f"{_lost(d, left)}"]
    return problems, clips, shapes


def _scan_shard(
    d: FeatureDir, params: dict[str, Any], shard: str, cids: list[str], index_schema: object,
    tolerance: float, shapes: dict[str, dict[tuple[int, ...], str]], done: set[str],
    clips: dict[str, ClipFacts], strays: bool,
) -> list[str]:
    """One shard's findings (the clips of ``cids``); ``done`` collects the clips checked,
    ``clips`` the facts of those that could be read."""
    problems: list[str] = []
    lost = _lost(d, cids)
    try:
        spath = shard_path(d.path, shard)
    except ShardError as e:
        return [f"{e}; {lost}"]
    try:
        f = h5py.File(spath, "r")
    except OSError as e:
        return [f"{spath}: cannot open shard ({e}); {lost}"]
    with f:
        if not bool(f.attrs.get("complete", False)):
            return [f"{spath}: shard is marked incomplete; {lost}"]
        version = f.attrs.get("schema_version", -1)
        if not isinstance(version, int | np.integer) or int(version) not in READABLE_SCHEMAS:
            return [f"{spath}: unreadable schema version {version!r}; {lost}"]
        version = int(version)
        if index_schema != version:
            problems.append(f"{spath}: claims schema version {version}, but "
                            f"{d.path / INDEX_NAME} says {index_schema!r}")
        try:  # the readers' one check of how an object is reached: hard links only
            groups = reach(f, CLIPS_GROUP)
        except UnsafeObjectError as e:
            return [*problems, f"{spath}: /{CLIPS_GROUP}: {e}; {lost}"]
        except KeyError:
            return [*problems, f"{spath}: no /{CLIPS_GROUP} group; {lost}"]
        if not isinstance(groups, h5py.Group):
            return [*problems, f"{spath}: no /{CLIPS_GROUP} group; {lost}"]
        names = set(groups)
        for cid in sorted(names - set(cids)) if strays else ():
            problems.append(f"clip {cid}: {d.label}: in {spath} but not in {INDEX_NAME}")
        # checked as the newest schema any evidence claims (the index or the clips' own
        # checksums): a version number edited down cannot switch checks off
        schema = max([version, *([index_schema] if index_schema in READABLE_SCHEMAS else [])])
        for cid in cids:
            if cid not in names:
                problems.append(
                    f"clip {cid}: {d.label}: listed in {d.path / INDEX_NAME} under "
                    f"{shard}, but {spath} has no such clip"
                )
            else:
                try:
                    group = reach(groups, cid)
                    if schema < SCHEMA_VERSION and ATTRS_SHA256 in group.attrs:
                        problems.append(f"clip {cid}: {d.label}: carries schema "
                                        f"{SCHEMA_VERSION} checksums in {spath}, which claims "
                                        f"schema {version}; checked as schema {SCHEMA_VERSION}")
                        schema = SCHEMA_VERSION
                    facts = _check_clip(group, cid, d, params, spath, tolerance, shapes,
                                        problems, schema)
                except UnsafeObjectError as e:  # a link out of the file: refused
                    problems.append(f"clip {cid}: {d.label}: {e}")
                    facts = None
                except Exception as e:  # noqa: BLE001 - a damaged file is a finding
                    problems.append(f"clip {cid}: {d.label}: unreadable in {spath} "
                                    f"({type(e).__name__}: {e})")
                    facts = None
                if facts is not None:
                    clips[cid] = facts
            done.add(cid)
    return problems


def _check_clip(
    group: h5py.Group,
    cid: str,
    d: FeatureDir,
    params: dict[str, Any],
    spath: Path,
    tolerance: float,
    shapes: dict[str, dict[tuple[int, ...], str]],
    problems: list[str],
    schema: int = 2,
) -> ClipFacts | None:
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
        problems.extend(f"{where}: {p} in {spath}" for p in track_problems(group, times, valid))
    if d.feature == "faces":
        problems.extend(f"{where}: {p} in {spath}" for p in speaker_problems(group.attrs))
    rows = np.flatnonzero(valid)
    steps = np.diff(np.unique(times)) if "track" in group else np.diff(times)
    spacing = float(np.median(steps)) if len(steps) else 0.0
    end, exact = _data_end(group, d.feature, params, times, rows)
    sha = group.attrs.get("source_sha256", "")
    audio = group.attrs.get("audio_sha256", "")
    cap = _length_cap(params)
    return ClipFacts(
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


def track_problems(group: h5py.Group, times: np.ndarray, valid: np.ndarray) -> list[str]:
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
    if (track < -1).any():
        out.append(f"track ids below -1 (e.g. {int(track.min())}): a track is 0 or more, "
                   f"-1 only on a row without a face")
    n_tracks = group.attrs.get("n_tracks")
    if isinstance(n_tracks, int | np.integer) and (track >= int(n_tracks)).any():
        out.append(f"track ids up to {int(track.max())}, but the clip has {int(n_tracks)} "
                   f"track(s)")
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


