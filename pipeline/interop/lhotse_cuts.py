"""Export a corpus's features as lhotse manifests: a ``RecordingSet``, a ``SupervisionSet`` and
a ``CutSet`` whose cuts carry the features (``mer export lhotse``).

How it maps:

1. Recordings: one per media file (clips cut from one long file, as IEMOCAP dialogues or
   CMU-MOSEI videos, share it), id from the file's path, the sound file as its source
   (a clip's separate audio file where it has one), its native sampling rate and channels.
   A cut file's duration is its last clip's end (the manifest does not record the file's).
2. Supervisions: one per clip, id the clip id, with its time span, ``text`` (transcript),
   ``speaker`` and, in ``custom``, ``emotion`` (the label), ``scores`` (multi-label corpora),
   ``session`` and the adapter's extra fields. lhotse has no emotion field: ``custom`` is
   where its recipes keep such labels.
3. Cuts: one ``MonoCut`` per clip, id the clip id, on its recording at the clip's start. The
   cut's ``features`` (``cut.load_features()``) are the one feature named by ``features``
   (default ``mel``): a 2-D array whose rows lie a whole number of audio samples apart, as
   lhotse's ``Features`` require. Every other exported feature is a custom field
   (``cut.load_custom(name)``, or ``cut.load_<name>()``): a ``TemporalArray`` (time on axis
   0, its frame shift) when the feature's rows are evenly spaced in every clip, else an
   ``Array`` with ``<name>_timestamps`` beside it (one kind per feature, for every cut).
   ``cut.load_<name>()`` gives the rows inside the cut's span (lhotse rounds it to whole
   frames); ``cut.custom[name].load()`` the stored array whole. Arrays are stored exactly
   (float32 stays float32, no lilcom compression) in one HDF5 file per feature through
   lhotse's ``NumpyHdf5Writer``, so lhotse reads them without this package.
4. Rows: a fixed-length feature's padding past the clip's end (``valid`` False from some
   row to the last) is not exported; any other invalid row is kept, with
   ``<name>_valid`` (a ``TemporalArray`` of 0/1) telling which.

What does not map: lhotse cannot recompute these features (their ``type`` is
``mer-<feature>``, not one of its extractors); folds (a cut's ``custom["fold"]`` names the
fold that tests it; split the ``CutSet`` with ``filter``); reading a recording's audio from
a video container needs a lhotse audio backend that decodes it (ffmpeg); the shards'
checksums and provenance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import needs
from ..store import ClipFeatures, FeatureReader
from .clip_table import clip_records, feature_names, feature_params

SPACING_TOLERANCE = 1e-6  # seconds: rows "evenly spaced" when every gap is within this


def recording_id(path: str) -> str:
    """A recording id from a media path relative to the corpus root."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).with_suffix("").as_posix())


def trim_padding(feats: ClipFeatures) -> int:
    """How many rows to export: up to the last valid row (the rest is padding)."""
    valid = np.asarray(feats.valid, bool)
    return int(np.nonzero(valid)[0][-1]) + 1 if valid.any() else 0


def frame_shift(timestamps: np.ndarray, sample_rate: int = 0) -> float | None:
    """The rows' spacing in seconds when they are evenly spaced (a whole number of samples
    of ``sample_rate`` apart when given), else None."""
    t = np.asarray(timestamps, np.float64)
    if len(t) < 2:
        return None
    gaps = np.diff(t)
    step = float(np.median(gaps))
    if step <= 0 or np.abs(gaps - step).max() > SPACING_TOLERANCE:
        return None
    if sample_rate:
        hop = round(step * sample_rate)
        if hop <= 0 or abs(hop / sample_rate - step) > SPACING_TOLERANCE:
            return None
        return hop / sample_rate
    return step


def _spacing(timestamps: np.ndarray, valid: np.ndarray, rate: int) -> float | None:
    n = int(np.nonzero(valid)[0][-1]) + 1 if valid.any() else 0
    return frame_shift(timestamps[:n], rate) if n > 1 else 1.0  # one row: any spacing fits


def export_lhotse(
    feature_root: str | Path,
    manifest: str | Path,
    corpus_root: str | Path,
    out: str | Path,
    features: Sequence[str] = (),
    cut_features: str = "mel",
    folds_json: str | Path | None = None,
) -> Path:
    """Write ``recordings.jsonl.gz``, ``supervisions.jsonl.gz``, ``cuts.jsonl.gz`` and one
    ``<feature>.h5`` per feature under ``out``; returns the cuts file."""
    with needs("the lhotse export", "export"):
        from lhotse import (
            AudioSource,
            CutSet,
            Features,
            MonoCut,
            Recording,
            RecordingSet,
            SupervisionSegment,
            SupervisionSet,
        )
        from lhotse.features.io import NumpyHdf5Writer

    names = feature_names(feature_root, features or ())
    if cut_features and cut_features not in names:
        if features:
            raise ValueError(f"--cut-features {cut_features} is not one of {', '.join(names)}")
        cut_features = ""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    rates = {f: int(feature_params(feature_root, f).get("sample_rate", 0) or 0) for f in names}
    primaries, temporal = {}, {}
    for f in names:  # a feature is temporal when its rows are evenly spaced in every clip
        with FeatureReader(Path(feature_root) / f) as r:
            primaries[f] = r.primary
            rate = rates[f] if f == cut_features else 0
            temporal[f] = all(_spacing(*r.rows(c), rate) is not None for c in r.clip_ids)
    writers = {f: NumpyHdf5Writer(out / f"{f}.h5") for f in names}
    root = Path(corpus_root).absolute()
    recordings: dict[str, Any] = {}
    ends: dict[str, float] = {}
    supervisions, cuts = [], []
    try:
        for rec in clip_records(feature_root, manifest, names, folds_json):
            e = rec.entry
            rid = recording_id(e.path)
            sound = e.audio_path or e.path
            rate = e.sample_rate or 16000
            duration = e.duration if e.duration > 0 else max(e.end - e.start, 0.0)
            ends[rid] = max(ends.get(rid, 0.0), e.start + duration)
            if rid not in recordings:
                recordings[rid] = (str(root / sound), rate, max(1, e.channels))
            custom_sup: dict[str, Any] = {"emotion": e.label, "session": e.session,
                                          **{k: v for k, v in e.meta.items()}}
            if e.scores:
                custom_sup["scores"] = dict(e.scores)
            sup = SupervisionSegment(
                id=e.clip_id, recording_id=rid, start=e.start, duration=duration, channel=0,
                text=e.transcript, speaker=e.speaker, custom=custom_sup,
            )
            supervisions.append(sup)
            cut_feats = None
            custom: dict[str, Any] = {"fold": rec.fold} if folds_json is not None else {}
            for f in names:
                feats = rec.features[f]
                if feats is None:
                    continue
                n = trim_padding(feats)
                arrays = {k: v[:n] for k, v in feats.arrays.items()}
                ts, valid = feats.timestamps[:n], feats.valid[:n]
                primary = primaries[f]
                w = writers[f]
                shift = frame_shift(ts, rates[f] if f == cut_features else 0) if (
                    temporal[f]) else None  # fmt: skip
                for name, a in arrays.items():
                    field = f if name == primary else f"{f}_{name}"
                    key = f"{e.clip_id}/{name}"
                    if f == cut_features and name == primary and shift and a.ndim == 2:
                        cut_feats = Features(
                            type=f"mer-{f}", num_frames=len(a), num_features=a.shape[1],
                            frame_shift=shift, sampling_rate=rates[f],
                            start=e.start + float(ts[0]), duration=len(a) * shift,
                            storage_type=w.name, storage_path=w.storage_path,
                            storage_key=w.write(key, a), recording_id=rid, channels=0,
                        )
                    elif a.dtype.kind == "S":
                        custom[field] = [x.decode("utf-8") for x in a]
                    elif shift:
                        custom[field] = w.store_array(key, a, frame_shift=shift, temporal_dim=0,
                                                      start=float(ts[0]) if len(ts) else 0.0)
                    else:
                        custom[field] = w.store_array(key, a)
                if not shift:
                    custom[f"{f}_timestamps"] = w.store_array(f"{e.clip_id}/timestamps", ts)
                if not valid.all():
                    v = valid.astype(np.uint8)
                    custom[f"{f}_valid"] = (
                        w.store_array(f"{e.clip_id}/valid", v, frame_shift=shift,
                                      temporal_dim=0, start=float(ts[0]))
                        if shift else w.store_array(f"{e.clip_id}/valid", v))
            cuts.append((e.clip_id, rid, e.start, duration, sup, cut_feats, custom))
    finally:
        for w in writers.values():
            w.close()
    recs = {}
    for rid, (path, rate, channels) in recordings.items():
        recs[rid] = Recording(
            id=rid, sources=[AudioSource(type="file", channels=list(range(channels)),
                                         source=path)],
            sampling_rate=rate, num_samples=round(ends[rid] * rate), duration=ends[rid],
        )
    RecordingSet.from_recordings(recs.values()).to_file(out / "recordings.jsonl.gz")
    SupervisionSet.from_segments(supervisions).to_file(out / "supervisions.jsonl.gz")
    cutset = CutSet.from_cuts(
        MonoCut(id=cid, start=start, duration=dur, channel=0, recording=recs[rid],
                supervisions=[sup], features=feats, custom=custom)
        for cid, rid, start, dur, sup, feats, custom in cuts
    )
    path = out / "cuts.jsonl.gz"
    cutset.to_file(path)
    return path
