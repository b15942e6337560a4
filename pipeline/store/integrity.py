"""Whether an HDF5 clip group can be trusted: it holds only its own data, and that data is
what was written.

1. **Confinement.** Every object is reached through hard links only, from the file's root
   (:func:`reach`: the ``/clips`` group, a clip group, a ``.csd`` entry and its ``data``
   group), and every member of a clip group is a hard link to a dataset stored in the same
   file: external links, soft links, external raw storage and virtual datasets would let a
   file serve another file's bytes. :func:`clip_group` checks both, and every reader goes
   through it (the feature reader, the trainer's windows and ``iter_windows``, inspect,
   verify, export and import of ``.csd``, the runner before a cache entry is reused).
2. **Bounded size.** A dataset may not declare more bytes than it can hold: its stored bytes
   no more than the file's size, its declared size no more than :data:`MAX_RATIO` times the
   bytes it stores (no compressor gets close). A crafted header of ``10**12`` rows is refused
   instead of read.
3. **Checksums.** Every dataset (``timestamps`` and ``valid`` included, schema 2 on) carries
   ``sha256`` of its bytes, and the group ``attrs_sha256`` of its attributes.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .format import ATTRS_SHA256, CLIPS_GROUP, RESERVED, attrs_checksum, dataset_checksum

MAX_RATIO = 4096  # declared bytes per stored byte (gzip tops out near 1,000)
SMALL = 1 << 16  # datasets up to this many declared bytes need no storage check


class UnsafeObjectError(OSError):
    """An HDF5 object points outside its file or declares an impossible size."""


def _file_size(obj: h5py.HLObject) -> int:
    try:
        return os.stat(obj.file.filename).st_size
    except OSError:
        return 0


def _link_problem(link: object) -> str:
    if isinstance(link, h5py.ExternalLink):
        return f"is an external link to {link.filename}:{link.path}"
    if isinstance(link, h5py.SoftLink):
        return f"is a soft link to {link.path}"
    return ""


def reach(group: h5py.Group, *names: str) -> h5py.Group | h5py.Dataset:
    """The object at ``group/names[0]/names[1]/...``, each step a hard link within the file;
    :class:`UnsafeObjectError` naming the step that is a link out of it (KeyError for a
    name that is not there)."""
    obj = group
    for name in names:
        where = f"{group.file.filename}:{obj.name.rstrip('/')}/{name}"
        if not isinstance(obj, h5py.Group):
            raise UnsafeObjectError(f"{where}: {obj.name} is not a group")
        try:
            link = obj.get(name, getlink=True)
        except (OSError, RuntimeError, ValueError) as e:
            raise UnsafeObjectError(f"{where} has an unreadable link ({e})") from e
        if link is None:
            raise KeyError(f"{where} does not exist")
        if why := _link_problem(link):
            raise UnsafeObjectError(f"{where} {why}, refused")
        try:
            obj = obj[name]
        except (OSError, RuntimeError, ValueError) as e:
            raise UnsafeObjectError(f"{where} cannot be opened ({e})") from e
    return obj


def clip_group(
    f: h5py.Group, clip_id: str, parent: str = CLIPS_GROUP, members: bool = True
) -> h5py.Group:
    """The group of ``clip_id`` under ``parent`` (a shard's ``/clips``), reached through hard
    links only and holding only sound members (:func:`reach`, :func:`check_group_safe`):
    the one check of every reader. UnsafeObjectError otherwise, KeyError when absent.
    ``members`` False skips the member check for a reader of the group's attributes only
    (they live in the group's own header, never elsewhere)."""
    group = reach(f, parent, clip_id)
    if not isinstance(group, h5py.Group):
        raise UnsafeObjectError(f"{f.file.filename}:{group.name} is not a clip group")
    if members:
        check_group_safe(group)
    return group


def dataset_problem(ds: h5py.Dataset) -> str:
    """Why ``ds`` must not be read ('' when it may)."""
    try:
        if ds.is_virtual:
            return "is a virtual dataset (its data lies in other files)"
        if ds.external:
            return "has external raw storage (its data lies in another file)"
        declared = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize) if ds.shape else 0
        if declared <= SMALL:
            return ""
        stored = int(ds.id.get_storage_size())
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        return f"has an unreadable header ({e})"
    size = _file_size(ds)
    if size and stored > size:
        return f"declares {stored} stored bytes but the file has only {size}"
    if declared > MAX_RATIO * stored + SMALL:
        return (f"declares shape {ds.shape} ({declared} bytes) but stores only {stored} "
                f"bytes: refusing to read it")
    return ""


def member_problems(group: h5py.Group) -> dict[str, str]:
    """``{name: why}`` for each member of ``group`` that must not be read."""
    out: dict[str, str] = {}
    for name in group:
        try:
            link = group.get(name, getlink=True)
        except (OSError, RuntimeError, KeyError) as e:
            out[name] = f"has an unreadable link ({e})"
            continue
        if why := _link_problem(link):
            out[name] = why
            continue
        try:
            obj = group[name]
        except (OSError, RuntimeError, KeyError) as e:
            out[name] = f"cannot be opened ({e})"
            continue
        if isinstance(obj, h5py.Dataset):
            why = dataset_problem(obj)
            if why:
                out[name] = why
        elif isinstance(obj, h5py.Group):
            out[name] = "is a group where a dataset was expected"
    return out


def check_group_safe(group: h5py.Group) -> None:
    """Raise :class:`UnsafeObjectError` naming the first member that must not be read."""
    bad = member_problems(group)
    if bad:
        name, why = next(iter(bad.items()))
        raise UnsafeObjectError(f"{group.file.filename}:{group.name}/{name} {why}")


def clip_group_problems(group: h5py.Group, schema: int = 2) -> list[tuple[str, str]]:
    """Everything wrong with one stored clip group, as ``(array name or '', phrase)`` (empty:
    sound). Reads each dataset in blocks to check its checksum; never raises for a damaged
    file."""
    bad = member_problems(group)
    problems = [(name, why) for name, why in bad.items()]
    for res in RESERVED:
        if res not in group and res not in bad:
            problems.append(("", f"no {res!r} array"))
    for name in group:
        if name in bad:
            continue
        try:
            ds = group[name]
            stored = ds.attrs.get("sha256")
        except (OSError, RuntimeError, KeyError) as e:
            problems.append((name, f"cannot be read ({e})"))
            continue
        if isinstance(stored, bytes):
            stored = stored.decode()
        if not stored:
            if name not in RESERVED or schema >= 2:
                problems.append((name, "no sha256 attribute to check it against"))
            continue
        try:
            actual = dataset_checksum(ds)
        except (OSError, RuntimeError, ValueError) as e:
            problems.append((name, f"cannot be read, corrupt data ({e})"))
            continue
        if actual != stored:
            problems.append((name,
                f"checksum mismatch (corrupt data): the data hashes to "
                f"{actual[:12]}, the stored sha256 is {stored[:12]}"
            ))
    try:
        attrs = dict(group.attrs)
    except (OSError, RuntimeError) as e:
        return [*problems, ("", f"attributes unreadable ({e})")]
    want = attrs.get(ATTRS_SHA256)
    if isinstance(want, bytes):
        want = want.decode()
    if want:
        if attrs_checksum(attrs) != want:
            problems.append(("", "attributes changed since written (attrs_sha256 mismatch)"))
    elif schema >= 2:
        problems.append(("", "no attrs_sha256 attribute to check the attributes against"))
    return problems
