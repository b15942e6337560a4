"""Export a corpus's features as a HuggingFace ``datasets`` dataset: Parquet files that
``datasets.load_dataset(OUT)`` loads, one row per clip.

How it maps (``mer export hf``):

1. A row is a clip of the manifest, in its order: ``clip_id``, ``path``, ``speaker``,
   ``session``, ``transcript``, ``start``, ``end``, ``duration``, ``fps``, ``sample_rate``,
   ``label`` (a ``ClassLabel`` over the manifest's labels), ``score_<emotion>`` (multi-label
   corpora), ``meta_<key>`` (the adapter's extra fields, as text) and, with a fold manifest,
   ``fold``: the fold whose test part holds the clip (-1 if none).
2. Each feature gives the columns ``<feature>`` (its primary array), ``<feature>_<array>``
   (its other arrays), ``<feature>_timestamps`` (seconds) and ``<feature>_valid``, time
   first and exactly as stored (padding rows included, ``valid`` False there): ``Array2D``
   .. ``Array5D`` with a variable first dimension for arrays of 2 to 5 dimensions, lists for
   per-row values; byte strings (word tokens) become text. A clip a feature failed on has
   null there.
3. Splits: without a fold, one ``train`` split of every clip (the ``fold`` column selects
   any fold's test clips); with ``fold=K`` the ``train``, ``validation`` and ``test`` splits
   of fold K. Files: ``OUT/data/<split>-00000-of-00001.parquet`` (the Hub's layout) and a
   dataset card ``OUT/README.md`` that names the source and the extractors' parameters.

What does not map: the media themselves (the ``path`` column names them; ``datasets``'
``Audio``/``Video`` types are not used), the shards' checksums and provenance beyond the
card, and several fold schemes at once (one export per scheme).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import needs
from ..store import ClipFeatures, atomic_write_text
from .clip_table import ClipRecord, clip_records, feature_names, feature_params

SPLITS = {"train": "train", "val": "validation", "test": "test"}
# Rows per Parquet row group: as many as hold about this many bytes of arrays (at most 64).
# datasets holds a row group's arrays as Python objects until it writes them, about 15 times
# their bytes: face crops (2.7 MB a 2.3 s clip) go 2 rows at a time, mel alone 64.
GROUP_BYTES = 8 * 2**20


def _array_type(sample: np.ndarray):
    import datasets

    if sample.dtype.kind == "S":
        return datasets.Sequence(datasets.Value("string"))
    dtype = str(sample.dtype)
    if sample.ndim == 1:
        return datasets.Sequence(datasets.Value(dtype))
    kinds = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D,
             5: datasets.Array5D}
    if sample.ndim not in kinds:
        raise ValueError(f"arrays of {sample.ndim} dimensions do not map to datasets")
    return kinds[sample.ndim](shape=(None, *sample.shape[1:]), dtype=dtype)


def _columns(feature: str, feats: ClipFeatures, primary: str) -> dict[str, np.ndarray]:
    out = {}
    for name, a in feats.arrays.items():
        out[feature if name == primary else f"{feature}_{name}"] = a
    out[f"{feature}_timestamps"] = feats.timestamps
    out[f"{feature}_valid"] = feats.valid
    return out


def _value(a: np.ndarray | None) -> Any:
    if a is None:
        return None
    if a.dtype.kind == "S":
        return [x.decode("utf-8") for x in a]
    return a if a.ndim > 1 else a.tolist()


def _schema(samples: dict[str, ClipFeatures], primaries: dict[str, str], labels: list[str],
            scores: list[str], metas: list[str], with_fold: bool):
    import datasets

    cols: dict[str, Any] = {
        "clip_id": datasets.Value("string"),
        "path": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "session": datasets.Value("string"),
        "transcript": datasets.Value("string"),
        "start": datasets.Value("float64"),
        "end": datasets.Value("float64"),
        "duration": datasets.Value("float64"),
        "fps": datasets.Value("float64"),
        "sample_rate": datasets.Value("int32"),
    }
    if labels:
        cols["label"] = datasets.ClassLabel(names=labels)
    for s in scores:
        cols[f"score_{s}"] = datasets.Value("float32")
    for m in metas:
        cols[f"meta_{m}"] = datasets.Value("string")
    if with_fold:
        cols["fold"] = datasets.Value("int32")
    for feature, primary in primaries.items():
        for name, a in _columns(feature, samples[feature], primary).items():
            cols[name] = _array_type(a)
    return datasets.Features(cols)


def _row(r: ClipRecord, primaries: dict[str, str], labels: list[str], scores: list[str],
         metas: list[str], with_fold: bool) -> dict[str, Any]:
    e = r.entry
    row: dict[str, Any] = {
        "clip_id": e.clip_id, "path": e.path, "speaker": e.speaker, "session": e.session,
        "transcript": e.transcript, "start": e.start, "end": e.end, "duration": e.duration,
        "fps": e.fps, "sample_rate": e.sample_rate,
    }
    if labels:
        row["label"] = labels.index(e.label) if e.label in labels else None
    for s in scores:
        row[f"score_{s}"] = e.scores.get(s)
    for m in metas:
        row[f"meta_{m}"] = e.meta.get(m)
    if with_fold:
        row["fold"] = r.fold
    for feature, primary in primaries.items():
        feats = r.features[feature]
        if feats is None:
            continue  # null columns
        for name, a in _columns(feature, feats, primary).items():
            row[name] = _value(a)
    return row


def export_hf(
    feature_root: str | Path,
    manifest: str | Path,
    out: str | Path,
    features: Sequence[str] = (),
    folds_json: str | Path | None = None,
    fold: int | None = None,
) -> Path:
    """Write the dataset (see the module docstring) under ``out``; returns ``out``."""
    with needs("the HuggingFace datasets export", "export"):
        import datasets  # noqa: F401
        from datasets.arrow_writer import ParquetWriter

    from ..manifest import read_manifest
    from ..store import FeatureReader

    names = feature_names(feature_root, features)
    primaries, samples = {}, {}
    for f in names:  # the array shapes and types of a feature: those of its first clip
        with FeatureReader(Path(feature_root) / f) as r:
            if not r.clip_ids:
                raise ValueError(f"{r.dir}: holds no clip")
            primaries[f], samples[f] = r.primary, r.read(r.clip_ids[0])
    entries = read_manifest(manifest)
    labels = sorted({e.label for e in entries if e.label})
    scores = sorted({k for e in entries for k in e.scores})
    metas = sorted({k for e in entries for k in e.meta})
    with_fold = folds_json is not None
    schema = _schema(samples, primaries, labels, scores, metas, with_fold)
    out = Path(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for old in data.glob("*.parquet"):
        old.unlink()
    splits = list(SPLITS.values()) if fold is not None else ["train"]
    row_bytes = sum(a.nbytes for f in samples.values() for a in f.arrays.values())
    rows = max(1, min(64, GROUP_BYTES // max(1, row_bytes)))
    writers = {s: ParquetWriter(features=schema, path=str(data / f"{s}-00000-of-00001.parquet"),
                                writer_batch_size=rows) for s in splits}
    counts = dict.fromkeys(splits, 0)
    try:  # one streaming pass: a clip's arrays are in memory while its row is written
        for r in clip_records(feature_root, manifest, names, folds_json, fold):
            split = SPLITS[r.part] if fold is not None else "train"
            writers[split].write(_row(r, primaries, labels, scores, metas, with_fold))
            counts[split] += 1
        for w in writers.values():
            w.finalize()
    finally:
        for w in writers.values():
            w.close()
    if not sum(counts.values()):
        raise ValueError(f"{manifest}: no clip to export")
    _card(out, feature_root, manifest, names, counts, folds_json, fold)
    return out


def _card(out: Path, feature_root, manifest, names, counts, folds_json, fold) -> None:
    params = {f: feature_params(feature_root, f) for f in names}
    splits = "\n".join(
        f"  - split: {s}\n    path: data/{s}-00000-of-00001.parquet" for s in counts
    )
    text = (
        "---\nconfigs:\n- config_name: default\n  data_files:\n" + splits + "\n---\n\n"
        f"# Features exported by mer-pipeline\n\n"
        f"One row per clip of `{Path(manifest).name}` "
        f"({', '.join(f'{s}: {n}' for s, n in counts.items())} clips); features "
        f"{', '.join(names)} from `{Path(feature_root).name}`"
        + (f"; fold {fold} of `{Path(folds_json).name}`" if fold is not None else "")
        + ". Arrays are time first, exactly as stored, with `<feature>_timestamps` (s) and "
        "`<feature>_valid` beside them.\n\n## Extractor parameters\n\n```json\n"
        + json.dumps(params, indent=2, sort_keys=True) + "\n```\n"
    )
    atomic_write_text(out / "README.md", text)
