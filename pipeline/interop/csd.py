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
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..corpora import safe_clip_id
from ..extras import needs
from ..files import check_regular
from ..hashing import file_sha256
from ..ids import check_name
from ..manifest import Failure, write_failures
from ..store import ClipFeatures, FeatureReader, ShardWriter
from ..store.integrity import check_group_safe, reach
from ..store.writer import create_new

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
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp.csd")
    os.close(create_new(tmp))  # a new file: a link planted at the name is never written through
    try:
        with _quiet():
            cs = computational_sequence(root)
            cs.setData(data, root)
            cs.setMetadata(meta, root)
            cs.deploy(str(tmp))
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def read_csd(
    path: str | Path, problems: dict[str, str] | None = None
) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """(root name, {entry: (features, intervals)}, metadata) with plain h5py (no pickles).

    A file that is not a computational sequence is a ValueError in one line. An entry that
    cannot be read (``features`` or ``intervals`` missing or not an array) is one too, or,
    when ``problems`` is given, recorded there (``{entry: why}``) and left out."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"computational sequence {path} not found")
    check_regular(path)
    with h5py.File(path, "r") as f:
        try:
            root = next(iter(f.keys()))
            # only this file's bytes: every group reached through hard links, no member a
            # link, external storage or a virtual dataset
            data = reach(f, root, "data")
            if not isinstance(data, h5py.Group):
                raise TypeError(f"{root}/data is not a group")
            entries = {}
            for k in data:
                try:
                    g = reach(data, k)
                    if isinstance(g, h5py.Group):
                        check_group_safe(g)  # no links or external storage: this file's bytes
                    entries[k] = _entry_arrays(g)
                except ValueError as e:
                    if problems is None:
                        raise ValueError(f"{path}: entry {k!r}: {e}") from None
                    problems[k] = str(e)
            meta = {}
            if "metadata" in reach(f, root):
                metadata = reach(f, root, "metadata")
                check_group_safe(metadata)
                for k, ds in metadata.items():
                    v = ds[0]
                    meta[k] = v.decode() if isinstance(v, bytes) else str(v)
        except StopIteration:
            raise ValueError(f"{path}: not a computational sequence (the file is empty)") from None
        except (KeyError, AttributeError, TypeError, IndexError) as e:
            why = e.args[0] if e.args else type(e).__name__
            raise ValueError(f"{path}: not a computational sequence (expected <root>/data/"
                             f"<entry>/features and intervals, and <root>/metadata: {why})"
                             ) from None
    return root, entries, meta


def _entry_arrays(g: object) -> tuple[np.ndarray, np.ndarray]:
    """An entry's ``(features, intervals)``; ValueError saying what is wrong with them."""
    if not isinstance(g, h5py.Group):
        raise ValueError("not a group holding features and intervals")
    arrays = []
    for name in ("features", "intervals"):
        ds = g.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise ValueError(f"no {name!r} array" if ds is None else f"{name!r} is not an array")
        kind = ds.dtype.kind
        if kind == "c":
            raise ValueError(f"{name!r} holds complex numbers ({ds.dtype}); a feature value is a "
                             f"real number (store the magnitude, or real and imaginary parts)")
        if kind not in "biuf" or ds.shape == ():
            raise ValueError(f"{name!r} is not an array of real numbers ({ds.dtype}, shape "
                             f"{ds.shape})")
        arrays.append(ds[()])
    x, iv = arrays
    if iv.ndim != 2 or iv.shape[1] != 2 or len(iv) != len(x):
        raise ValueError(f"intervals of shape {iv.shape} for {len(x)} feature rows; expected "
                         f"({len(x)}, 2)")
    return x, iv


def import_csd(csd_path: str | Path, out_dir: str | Path, feature: str = "") -> Path:
    """Write a ``.csd`` file's entries as a feature directory (one clip per entry). An entry
    that cannot be imported (unreadable, complex values, an id another entry already took
    once made safe) is a row of ``<out>.failures.csv`` beside the directory; the rest are
    imported."""
    problems: dict[str, str] = {}
    root, entries, meta = read_csd(csd_path, problems)
    feature = check_name(feature or root, "feature name", str(csd_path))
    nonfinite: dict[str, int] = {}
    taken: dict[str, str] = {}
    with ShardWriter(
        out_dir,
        feature=feature,
        params={"imported_from": Path(csd_path).name, "sha256": file_sha256(csd_path),
                "root name": root},
        provenance={"source": "CMU Multimodal SDK computational sequence", "metadata": meta},
        primary=feature,
    ) as w:
        for entry, (x, iv) in sorted(entries.items()):
            cid = safe_clip_id(entry)
            if cid in taken:
                problems[entry] = (f"its clip id {cid} is already the id of entry "
                                   f"{taken[cid]!r}; rename one of them")
                continue
            taken[cid] = entry
            x = np.asarray(x)
            x = x.reshape(len(x), -1) if x.ndim == 1 else x
            x = x.astype(np.float32)
            # rows with NaN or infinities (COVAREP in the SDK's own files has -inf) are kept
            # but marked not valid, and said so
            finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if not finite.all():
                nonfinite[entry] = int((~finite).sum())
            w.add(
                cid,
                ClipFeatures(
                    {feature: x},
                    iv[:, 0],
                    finite,
                    attrs={"csd_entry": entry, "n_nonfinite_rows": int((~finite).sum())},
                ),
                source_sha256="",
            )
        if not taken:
            raise ValueError(f"{csd_path}: no entry could be imported (first: "
                             f"{next(iter(problems.items()), ('', 'none'))})")
    write_failures(import_failures_csv(out_dir), [
        Failure(_failure_id(entry), "import-csd", f"entry {entry!r}: {why}", "ValueError")
        for entry, why in sorted(problems.items())])
    if problems:
        log.warning("%s: %d entr(ies) not imported, see %s", csd_path, len(problems),
                    import_failures_csv(out_dir))
    if nonfinite:
        eg = ", ".join(f"{k} ({n})" for k, n in list(nonfinite.items())[:5])
        log.warning(
            "%s: %d row(s) of %d entries hold NaN or infinite values and are marked not valid "
            "(valid = 0): %s%s", csd_path, sum(nonfinite.values()), len(nonfinite), eg,
            ", ..." if len(nonfinite) > 5 else "",
        )
    return Path(out_dir)


def import_failures_csv(out_dir: str | Path) -> Path:
    """``<out>.failures.csv`` beside the imported directory (as ``mer extract --out``)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.failures.csv"


def _failure_id(entry: str) -> str:
    try:
        return safe_clip_id(entry)
    except ValueError:
        return "entry"
