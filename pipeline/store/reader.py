"""Read feature shards written by :mod:`pipeline.store.writer`.

Opens shards lazily (a torch DataLoader worker opens its own handles) and checks the schema
version and completeness of every file it opens. Every reader of shards opens them with
:func:`open_shard` (a file of its directory, not a link out of it) and reaches a clip with
:func:`~pipeline.store.integrity.clip_group` (hard links only, no member from elsewhere).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..files import check_regular, read_text
from ..ids import is_valid_name
from .format import (
    INDEX_NAME,
    READABLE_SCHEMAS,
    TIMESTAMPS,
    VALID,
    ClipFeatures,
    array_checksum,
)
from .integrity import UnsafeObjectError, check_group_safe, clip_group


class ShardError(RuntimeError):
    """A feature directory or shard is incomplete, corrupt, or of an unreadable schema."""


SHARD_NAME_RE = re.compile(r"shard-\d{5,}\.h5")


def shard_path(feature_dir: Path, name: str) -> Path:
    """The shard ``name`` of ``feature_dir``, refused unless it is a plain shard file name
    whose file lies in that directory (not a link to elsewhere)."""
    if not SHARD_NAME_RE.fullmatch(name):
        raise ShardError(f"{feature_dir}: {name!r} is not a shard file name")
    path = feature_dir / name
    if path.is_symlink() and path.resolve().parent != feature_dir.resolve():
        raise ShardError(f"{path}: a link to {path.resolve()}, outside {feature_dir}")
    try:  # HDF5 would block on a FIFO
        check_regular(path)
    except FileNotFoundError:
        pass  # opening it says so
    except OSError as e:
        raise ShardError(str(e)) from None
    return path


def open_shard(feature_dir: Path, name: str, rdcc_nbytes: int | None = None) -> h5py.File:
    """The shard ``name`` of ``feature_dir`` opened for reading, after :func:`shard_path`'s
    check, refused (ShardError) unless complete and of a readable schema. ``rdcc_nbytes``:
    the HDF5 chunk cache per open dataset (h5py's default when None)."""
    path = shard_path(Path(feature_dir), name)
    try:
        f = h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes)
    except OSError as e:
        raise ShardError(f"{path}: cannot open shard ({e})") from e
    if not bool(f.attrs.get("complete", False)):
        f.close()
        raise ShardError(f"{path}: shard is marked incomplete")
    if int(f.attrs.get("schema_version", -1)) not in READABLE_SCHEMAS:
        f.close()
        raise ShardError(f"{path}: unreadable schema version")
    return f


def shard_clip(f: h5py.File, clip_id: str, members: bool = True) -> h5py.Group:
    """The clip group of ``clip_id`` in an open shard through the one check
    (:func:`~pipeline.store.integrity.clip_group`; ``members`` False for a reader of its
    attributes only); ShardError in one line otherwise."""
    try:
        return clip_group(f, clip_id, members=members)
    except UnsafeObjectError as e:
        raise ShardError(f"clip {clip_id!r}: {e}") from e
    except KeyError:
        raise ShardError(f"{f.filename}: no clip {clip_id!r}") from None


def read_clip_group(
    group: h5py.Group, verify: bool = False, arrays: Iterable[str] | None = None
) -> ClipFeatures:
    """One clip group as ClipFeatures: every array, or only those named in ``arrays``."""
    check_group_safe(group)
    wanted = None if arrays is None else set(arrays)
    if wanted is not None and (missing := wanted - set(group)):
        raise KeyError(f"{group.name} has no array(s) {sorted(missing)}")
    out: dict[str, np.ndarray] = {}
    for name, ds in group.items():
        if name in (TIMESTAMPS, VALID) or (wanted is not None and name not in wanted):
            continue
        arr = ds[()]
        if verify and ds.attrs.get("sha256") != array_checksum(arr):
            raise ShardError(f"{group.name}/{name}: checksum mismatch (corrupt data)")
        out[name] = arr
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in group.attrs.items()}
    return ClipFeatures(
        arrays=out,
        timestamps=group[TIMESTAMPS][()],
        valid=group[VALID][()].astype(bool),
        attrs=attrs,
    )


def read_index(path: Path) -> dict[str, Any]:
    """A feature directory's ``index.json`` as a mapping; :class:`ShardError` in one line for
    anything else (not a regular file, not UTF-8, not JSON, nested too deep, not an
    object)."""
    try:
        index = json.loads(read_text(path, errors="strict"))
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError included
        raise ShardError(f"{path}: not a readable feature index ({e})") from None
    except RecursionError:
        raise ShardError(f"{path}: not a feature index (JSON nested too deep)") from None
    if not isinstance(index, dict):
        raise ShardError(f"{path}: not a feature index (a JSON {type(index).__name__}, not "
                         f"an object)")
    return index


class FeatureReader:
    """Random access to the clips of one feature directory.

    >>> with FeatureReader("data/features/sample/mel") as r:
    ...     feats = r.read(r.clip_ids[0])
    """

    def __init__(self, feature_dir: str | Path) -> None:
        self.dir = Path(feature_dir)
        index_path = self.dir / INDEX_NAME
        if not index_path.exists():
            left = sorted(self.dir.parent.glob(f".{self.dir.name}.writing-*/{INDEX_NAME}"))
            if left and not self.dir.exists():
                raise ShardError(
                    f"{self.dir}: missing, but a run that was killed while swapping it in left "
                    f"the finished directory at {left[-1].parent}; the next run of the stage "
                    f"moves it into place"
                )
            raise ShardError(
                f"{self.dir}: no {INDEX_NAME}; the feature directory is missing or was not "
                f"finished (rerun the stage that writes it)"
            )
        self.index: dict[str, Any] = read_index(index_path)
        version = self.index.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise ShardError(
                f"{self.dir}: schema version {version} is not readable by this version of "
                f"mer-pipeline (reads {', '.join(map(str, READABLE_SCHEMAS))}); "
                f"re-extract the features or install a matching mer-pipeline"
            )
        types = {"feature": str, "primary": str, "params": dict, "clips": dict, "shards": dict}
        for key, tp in types.items():
            if key in ("feature", "clips") and key not in self.index:
                raise ShardError(f"{index_path}: not a feature index (no {key!r})")
            if not isinstance(self.index.get(key, tp()), tp):
                raise ShardError(f"{index_path}: not a feature index ({key!r} is not a "
                                 f"{'string' if tp is str else 'JSON object'})")
        self.feature: str = self.index["feature"]
        self.primary: str = self.index.get("primary", "")
        self.params: dict[str, Any] = self.index.get("params", {})
        self._clips: dict[str, str] = dict(self.index["clips"])
        shards = self.index.get("shards", {})
        for cid, shard in self._clips.items():
            if not is_valid_name(cid):
                raise ShardError(f"{index_path}: clip id {cid!r} is not a safe name")
            if not isinstance(shard, str) or not SHARD_NAME_RE.fullmatch(shard):
                raise ShardError(
                    f"{index_path}: clip {cid} points to {shard!r}, which is not a shard "
                    f"file name of this directory (shard-NNNNN.h5)"
                )
        for shard, info in shards.items():
            if not isinstance(shard, str) or not SHARD_NAME_RE.fullmatch(shard):
                raise ShardError(f"{index_path}: {shard!r} is not a shard file name")
            if not isinstance(info, dict):
                raise ShardError(f"{index_path}: the entry of {shard} is not a JSON object")
        self._files: dict[str, h5py.File] = {}

    @property
    def clip_ids(self) -> list[str]:
        return list(self._clips)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._clips

    def __len__(self) -> int:
        return len(self._clips)

    def _shard(self, name: str) -> h5py.File:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open_shard(self.dir, name)
        return f

    def group(self, clip_id: str, members: bool = True) -> h5py.Group:
        """The open clip group of ``clip_id`` (KeyError when the index has no such clip),
        through the one check of every reader (:func:`shard_clip`; ``members`` False for a
        reader of the group's attributes only)."""
        try:
            name = self._clips[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in {self.dir}") from None
        try:
            return shard_clip(self._shard(name), clip_id, members)
        except OSError as e:
            raise ShardError(f"{self.dir / name}: cannot read clip {clip_id!r} ({e})") from e

    def shard_attrs(self, clip_id: str | None = None) -> dict[str, Any]:
        """File attributes (params and provenance decoded) of the shard holding ``clip_id``."""
        name = self._clips[clip_id] if clip_id else next(iter(self.index["shards"]))
        attrs = dict(self._shard(name).attrs)
        for key in ("params", "provenance"):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
        return attrs

    def read(
        self, clip_id: str, verify: bool = False, arrays: Iterable[str] | None = None
    ) -> ClipFeatures:
        """One clip's arrays (all, or those named in ``arrays``); ``verify`` recomputes each
        array's checksum."""
        group = self.group(clip_id)
        try:
            return read_clip_group(group, verify=verify, arrays=arrays)
        except UnsafeObjectError as e:
            raise ShardError(f"clip {clip_id!r}: {e}") from e
        except (OSError, KeyError) as e:
            raise ShardError(f"{group.file.filename}: cannot read clip {clip_id!r} ({e})") from e

    def clip_attrs(self, clip_id: str) -> dict[str, Any]:
        """One clip group's attributes, without reading its arrays."""
        group = self.group(clip_id, members=False)
        try:
            return {k: (v.item() if isinstance(v, np.generic) else v)
                    for k, v in group.attrs.items()}
        except OSError as e:
            raise ShardError(f"{self.dir}: cannot read clip {clip_id!r} ({e})") from e

    def rows(self, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(timestamps, valid)`` of one clip, without reading its arrays."""
        group = self.group(clip_id)
        try:
            return group[TIMESTAMPS][()], group[VALID][()].astype(bool)
        except (OSError, KeyError) as e:
            raise ShardError(f"{self.dir}: cannot read clip {clip_id!r} ({e})") from e

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for DataLoader workers: each process reopens its own handles.
        state = self.__dict__.copy()
        state["_files"] = {}
        return state
