"""CMU Multimodal SDK computational sequences (``.csd``) to and from feature directories.

Export: each clip becomes one SDK entry whose ``features`` are the chosen array flattened to
(T, D) float32 and whose ``intervals`` are (T, 2) [start, end] seconds: a row's start is its
timestamp and its end the next row's timestamp (the last row ends one median step later).
Rows with ``valid`` 0 (padding, frames without a face) are left out, as the SDK has no mask.
The file is written by ``mmsdk`` itself, so the SDK's loading and alignment code reads it.

Import: each entry becomes a clip (its id made safe for HDF5, see ``safe_clip_id``) with the
entry's features as the array, the interval starts as timestamps, every row valid.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..corpora import safe_clip_id
from ..extras import needs
from ..hashing import file_sha256
from ..ids import check_name
from ..store import ClipFeatures, FeatureReader, ShardWriter
from ..store.integrity import check_group_safe, reach

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet():
    """mmsdk prints status lines and progress bars for every step; keep them off the terminal."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _intervals(ts: np.ndarray) -> np.ndarray:
    if len(ts) == 0:
        return np.zeros((0, 2))
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0
    ends = np.append(ts[1:], ts[-1] + step)
    return np.stack([ts, ends], axis=1).astype(np.float64)


def export_csd(
    feature_dir: str | Path,
    out_path: str | Path,
    array: str = "",
    name: str = "",
    dataset: str = "",
    only_valid: bool = True,
) -> Path:
    """Write ``feature_dir``'s ``array`` (default: its primary array) as a ``.csd`` file."""
    with needs(".csd files", "extract"):
        from mmsdk.mmdatasdk import computational_sequence

    out_path = Path(out_path)
    data: dict[str, dict[str, np.ndarray]] = {}
    with FeatureReader(feature_dir) as r:
        array = array or r.primary
        root = name or f"{r.feature}_{array}"
        for cid in r.clip_ids:
            feats = r.read(cid)
            if array not in feats.arrays:
                raise KeyError(f"clip {cid} has no array {array!r}; has {sorted(feats.arrays)}")
            x = feats.arrays[array].reshape(feats.n_steps, -1).astype(np.float32)
            iv = _intervals(feats.timestamps)
            keep = feats.valid if only_valid else np.ones(feats.n_steps, bool)
            if not keep.any():
                continue
            data[cid] = {"features": x[keep], "intervals": iv[keep]}
        params = r.params
    meta: dict[str, Any] = {
        "root name": root,
        "computational sequence description": f"mer-pipeline feature {r.feature!r}, array "
        f"{array!r}, flattened per time step; parameters: {params}",
        "computational sequence version": "1.0",
        "alignment compatible": True,
        "dataset name": dataset or Path(feature_dir).parent.name,
        "dataset version": "",
        "creator": "mer-pipeline",
        "contact": "",
        "featureset bib citation": "",
        "dataset bib citation": "",
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp.csd")
    with _quiet():
        cs = computational_sequence(root)
        cs.setData(data, root)
        cs.setMetadata(meta, root)
        cs.deploy(str(tmp))
    tmp.replace(out_path)
    return out_path


def read_csd(path: str | Path) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """(root name, {entry: (features, intervals)}, metadata) with plain h5py (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"computational sequence {path} not found")
    with h5py.File(path, "r") as f:
        try:
            root = next(iter(f.keys()))
            # only this file's bytes: every group reached through hard links, no member a
            # link, external storage or a virtual dataset
            data = reach(f, root, "data")
            entries = {}
            for k in data:
                g = reach(data, k)
                check_group_safe(g)
                entries[k] = (g["features"][()], g["intervals"][()])
            meta = {}
            if "metadata" in reach(f, root):
                metadata = reach(f, root, "metadata")
                check_group_safe(metadata)
                for k, ds in metadata.items():
                    v = ds[0]
                    meta[k] = v.decode() if isinstance(v, bytes) else str(v)
        except (StopIteration, KeyError, AttributeError, TypeError) as e:
            raise ValueError(f"{path}: not a computational sequence ({e!r})") from e
    return root, entries, meta


def import_csd(csd_path: str | Path, out_dir: str | Path, feature: str = "") -> Path:
    """Write a ``.csd`` file's entries as a feature directory (one clip per entry)."""
    root, entries, meta = read_csd(csd_path)
    feature = check_name(feature or root, "feature name", str(csd_path))
    nonfinite: dict[str, int] = {}
    with ShardWriter(
        out_dir,
        feature=feature,
        params={"imported_from": Path(csd_path).name, "sha256": file_sha256(csd_path),
                "root name": root},
        provenance={"source": "CMU Multimodal SDK computational sequence", "metadata": meta},
        primary=feature,
    ) as w:
        for entry, (x, iv) in sorted(entries.items()):
            x = np.asarray(x)
            x = x.reshape(len(x), -1) if x.ndim == 1 else x
            x = x.astype(np.float32)
            # rows with NaN or infinities (COVAREP in the SDK's own files has -inf) are kept
            # but marked not valid, and said so
            finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if not finite.all():
                nonfinite[entry] = int((~finite).sum())
            w.add(
                safe_clip_id(entry),
                ClipFeatures(
                    {feature: x},
                    iv[:, 0],
                    finite,
                    attrs={"csd_entry": entry, "n_nonfinite_rows": int((~finite).sum())},
                ),
                source_sha256="",
            )
    if nonfinite:
        eg = ", ".join(f"{k} ({n})" for k, n in list(nonfinite.items())[:5])
        log.warning(
            "%s: %d row(s) of %d entries hold NaN or infinite values and are marked not valid "
            "(valid = 0): %s%s", csd_path, sum(nonfinite.values()), len(nonfinite), eg,
            ", ..." if len(nonfinite) > 5 else "",
        )
    return Path(out_dir)
