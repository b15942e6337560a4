"""Fold manifests: deterministic train/validation/test splits from a seed.

Kinds of scheme (``params.yaml`` ``folds.schemes``):
- ``group_kfold``: k folds over groups (actors/speakers): each group is in exactly one test
  fold; validation groups are drawn from the remaining ones. Speaker-disjoint, checked.
- ``stratified_kfold``: k folds over clips, stratified by label; validation clips drawn,
  stratified, from the rest. (RAVDESS "actor-split ✗" and IEMOCAP 8:1:1.)
- ``group_holdout``: one split with n_train / n_val / n_test groups, drawn as the MPUC
  authors' code draws its 18/3/3 RAVDESS actors: the groups in natural order (actor 1, 2, ...,
  24), Python's ``random.seed(seed); random.shuffle(groups)``, then the first n_train are
  training, the next n_val validation, the next n_test test. Seed 42 on RAVDESS gives test
  actors 1, 4, 21 and validation actors 8, 9, 20, the authors' split exactly.
- ``kfold_811``: k folds over clips stratified by label; fold i is the test part, fold i + 1
  (mod k) the validation part and the other k - 2 folds train (Qian & Han's IEMOCAP 10-fold
  8:1:1). Every clip is tested once and validates once.
- ``predefined``: one split the corpus defines, read from the ``split_by`` column of each
  clip (``train``, ``valid``/``val``, ``test``; CMU-MOSEI's SDK standard folds). Clips with
  another value (none) are in no part.
- ``strided``: one split in corpus order (clips sorted by id), as the Qian & Han code splits
  IEMOCAP (``data_loader.py``, ``split_dataset_skip``): clip 0 and every ``test_every``-th
  after it (5) are test, then of the rest, in order, the first and every ``val_every``-th
  (10) validation, the others training (72:8:20).
- ``class_holdout``: one split drawn as the MPUC code's random RAVDESS split
  (``utils/utils.py``, ``split_dataset(actor_split=False)``): Python's ``random.seed(seed)``,
  then per class (sorted), in clip-id order, ``random.sample`` of ``int(n x train_fraction)``
  clips for training and validation, ``random.sample`` of ``int(that x val_fraction)`` of
  them for validation; the rest of the class is test.

``together`` (any kind) names a column whose clips always share a part: the stratified kinds
deal such a group as one unit (a group of one clip is dealt exactly as a lone clip, so a
corpus whose groups are all single clips gets the folds it got without the option), and
:func:`check_folds` checks that no group is split. RAVDESS's paired recordings (the full-AV
and video-only files of one performance, ``meta_performance``) need it: split between train
and test, a performance's sound would be in both. ``leaky: true`` turns it off on purpose (the
MPUC code's random split leaks so); the manifest then records ``"leaky": true``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import FoldScheme
from .manifest import ManifestEntry

KFOLD_KINDS = ("group_kfold", "stratified_kfold", "kfold_811")  # every clip tested once


class FoldError(ValueError):
    """A scheme cannot be built on this corpus (too few groups or clips)."""


@dataclass
class Fold:
    train: list[str]
    val: list[str]
    test: list[str]


def _group_of(entry: ManifestEntry, column: str) -> str:
    if column in ("speaker", "session", "label"):
        return str(getattr(entry, column))
    if column in entry.meta:
        return entry.meta[column]
    raise FoldError(f"column {column!r} is not in the manifest (clip {entry.clip_id} has none)")


def _split_groups(groups: list[str], k: int, rng: np.random.Generator) -> list[list[str]]:
    order = list(rng.permutation(groups))
    return [sorted(order[i::k]) for i in range(k)]


def make_folds(entries: Sequence[ManifestEntry], scheme: FoldScheme, seed: int) -> list[Fold]:
    if scheme.leaky and scheme.together:
        raise FoldError(
            f"scheme {scheme.name}: leaky: true and together: {scheme.together} contradict "
            f"each other (leaky lets the clips of one {scheme.together} be split)"
        )
    rng = np.random.default_rng(seed)
    if scheme.kind == "group_kfold":
        return _group_kfold(entries, scheme, rng)
    if scheme.kind == "group_holdout":
        return [_group_holdout(entries, scheme, seed)]
    if scheme.kind == "stratified_kfold":
        return _stratified_kfold(entries, scheme, rng)
    if scheme.kind == "kfold_811":
        return _kfold_811(entries, scheme, rng)
    if scheme.kind == "predefined":
        return [_predefined(entries, scheme)]
    if scheme.kind == "strided":
        return [_strided(entries, scheme)]
    if scheme.kind == "class_holdout":
        return [_class_holdout(entries, scheme, seed)]
    raise FoldError(f"unknown scheme kind {scheme.kind!r}")


def _members(entries: Sequence[ManifestEntry], column: str) -> dict[str, list[str]]:
    by: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        by[_group_of(e, column)].append(e.clip_id)
    return dict(sorted(by.items()))


def _group_kfold(entries, scheme: FoldScheme, rng) -> list[Fold]:
    members = _members(entries, scheme.group_by)
    groups = list(members)
    k = scheme.n_folds
    parts = _split_groups(groups, k, rng) if k >= 2 and len(groups) >= k else []
    if not parts or len(groups) - max(len(p) for p in parts) < 2:
        raise FoldError(
            f"scheme {scheme.name}: {k} folds over {len(groups)} {scheme.group_by} groups is "
            f"not possible (need k >= 2, at least k groups, and 2 groups left for training "
            f"and validation in every fold)"
        )
    folds = []
    for i in range(k):
        test_g = parts[i]
        rest = [g for g in groups if g not in test_g]
        n_val = max(1, round(scheme.val_fraction * len(rest)))
        val_g = sorted(rng.choice(rest, size=n_val, replace=False).tolist())
        train_g = [g for g in rest if g not in val_g]
        folds.append(Fold(*(_ids(members, gs) for gs in (train_g, val_g, test_g))))
    return folds


def natural_key(text: str) -> list:
    """Sort key that orders the numbers inside names by value (Actor_2 before Actor_10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _group_holdout(entries, scheme: FoldScheme, seed: int) -> Fold:
    members = _members(entries, scheme.group_by)
    # The MPUC authors' draw: random.seed(42); random.shuffle(actors) over actors 1..24.
    # random.Random(seed) is the same generator without touching the global one.
    groups = sorted(members, key=natural_key)
    random.Random(seed).shuffle(groups)
    need = scheme.n_train + scheme.n_val + scheme.n_test
    if need > len(groups) or min(scheme.n_train, scheme.n_test) < 1:
        raise FoldError(
            f"scheme {scheme.name}: {scheme.n_train}/{scheme.n_val}/{scheme.n_test} groups "
            f"requested but the corpus has {len(groups)} {scheme.group_by} groups"
        )
    train_g = groups[: scheme.n_train]
    val_g = groups[scheme.n_train : scheme.n_train + scheme.n_val]
    test_g = groups[scheme.n_train + scheme.n_val : need]
    return Fold(*(_ids(members, sorted(gs)) for gs in (train_g, val_g, test_g)))


_PARTS = {"train": 0, "valid": 1, "val": 1, "validation": 1, "dev": 1, "test": 2}


def _predefined(entries, scheme: FoldScheme) -> Fold:
    parts: list[list[str]] = [[], [], []]
    for e in entries:
        value = _group_of(e, scheme.split_by).strip().lower()
        if value in _PARTS:
            parts[_PARTS[value]].append(e.clip_id)
    if not parts[0] or not parts[2]:
        raise FoldError(
            f"scheme {scheme.name}: column {scheme.split_by!r} puts {len(parts[0])} clips in "
            f"train and {len(parts[2])} in test; both need clips (values: train, valid, test)"
        )
    return Fold(*(sorted(p) for p in parts))


def _strided(entries, scheme: FoldScheme) -> Fold:
    if scheme.test_every < 2 or scheme.val_every < 2:
        raise FoldError(f"scheme {scheme.name}: test_every and val_every must be >= 2")
    units = _units(entries, scheme)
    order = sorted(units)  # corpus order: the Qian & Han code sorts utterances by id
    test = order[:: scheme.test_every]
    rest = [u for i, u in enumerate(order) if i % scheme.test_every]
    val = rest[:: scheme.val_every]
    train = [u for i, u in enumerate(rest) if i % scheme.val_every]
    if not train or not test:
        raise FoldError(f"scheme {scheme.name}: {len(order)} clips are too few to split")
    return Fold(*(sorted(c for u in part for c in units[u]) for part in (train, val, test)))


def _class_holdout(entries, scheme: FoldScheme, seed: int) -> Fold:
    if not 0.0 < scheme.train_fraction < 1.0:
        raise FoldError(f"scheme {scheme.name}: train_fraction must be in (0, 1)")
    units = _units(entries, scheme)
    label_of = {e.clip_id: e.label for e in entries}
    by_label: dict[str, list[str]] = defaultdict(list)
    for first in sorted(units):
        by_label[label_of[first]].append(first)
    rng = random.Random(seed)  # the code: random.seed(42), one generator for all classes
    train: list[str] = []
    val: list[str] = []
    for label in sorted(by_label):
        members = by_label[label]
        keep = rng.sample(members, int(len(members) * scheme.train_fraction))
        chosen = rng.sample(keep, int(len(keep) * scheme.val_fraction))
        val += chosen
        train += sorted(set(keep) - set(chosen))
    taken = set(train) | set(val)
    test = [u for u in units if u not in taken]
    if not train or not test:
        raise FoldError(f"scheme {scheme.name}: {len(units)} clips are too few to split")
    return Fold(*(sorted(c for u in part for c in units[u]) for part in (train, val, test)))


def _ids(members: dict[str, list[str]], groups: list[str]) -> list[str]:
    return sorted(cid for g in groups for cid in members[g])


def _units(entries, scheme: FoldScheme) -> dict[str, list[str]]:
    """The units a stratified kind deals: first clip id -> the clip ids that go together
    (each clip alone when the scheme has no ``together`` column)."""
    if not scheme.together:
        return {e.clip_id: [e.clip_id] for e in entries}
    groups: dict[str, list[ManifestEntry]] = defaultdict(list)
    for e in entries:
        groups[_group_of(e, scheme.together)].append(e)
    units = {}
    for value, members in groups.items():
        labels = {m.label for m in members}
        if len(labels) > 1:
            raise FoldError(
                f"scheme {scheme.name}: the clips of {scheme.together} {value!r} have different "
                f"labels ({', '.join(sorted(labels))}), so they cannot be dealt as one unit"
            )
        ids = sorted(m.clip_id for m in members)
        units[ids[0]] = ids
    return units


def _stratified_assign(entries, scheme: FoldScheme, rng, min_folds: int = 2) -> dict[str, int]:
    """Clip id -> fold number, each label's units (clips, or the clips of one ``together``
    group) dealt round-robin after a shuffle."""
    k = scheme.n_folds
    units = _units(entries, scheme)
    if k < min_folds or len(units) < k:
        raise FoldError(
            f"scheme {scheme.name}: cannot make {k} folds of {len(units)} "
            f"{f'clip groups (together: {scheme.together})' if scheme.together else 'clips'} "
            f"(need at least {min_folds} folds and one per fold)"
        )
    label_of = {e.clip_id: e.label for e in entries}
    by_label: dict[str, list[str]] = defaultdict(list)
    for first in units:
        by_label[label_of[first]].append(first)
    assign: dict[str, int] = {}
    offset = 0
    for label in sorted(by_label):
        firsts = list(rng.permutation(sorted(by_label[label])))
        for j, first in enumerate(firsts):
            for cid in units[first]:
                assign[cid] = (j + offset) % k
        offset += len(firsts)
    return assign


def _kfold_811(entries, scheme: FoldScheme, rng) -> list[Fold]:
    assign = _stratified_assign(entries, scheme, rng, min_folds=3)
    k = scheme.n_folds
    folds = []
    for i in range(k):
        part = {f: sorted(c for c, a in assign.items() if a == f) for f in (i, (i + 1) % k)}
        train = sorted(c for c, a in assign.items() if a not in part)
        folds.append(Fold(train, part[(i + 1) % k], part[i]))
    return folds


def _stratified_kfold(entries, scheme: FoldScheme, rng) -> list[Fold]:
    assign = _stratified_assign(entries, scheme, rng)
    units = _units(entries, scheme)
    k = scheme.n_folds
    folds = []
    for i in range(k):
        test = sorted(c for c, f in assign.items() if f == i)
        rest = [e for e in entries if assign[e.clip_id] != i]
        val: list[str] = []
        rest_by: dict[str, list[str]] = defaultdict(list)
        for e in rest:
            if e.clip_id in units:  # a unit's first clip stands for the unit
                rest_by[e.label].append(e.clip_id)
        for label in sorted(rest_by):
            cl = sorted(rest_by[label])
            n = int(round(scheme.val_fraction * len(cl)))
            chosen = rng.choice(cl, size=n, replace=False).tolist() if n else []
            val += [cid for first in chosen for cid in units[first]]
        val = sorted(val)
        vs = set(val)
        train = sorted(e.clip_id for e in rest if e.clip_id not in vs)
        folds.append(Fold(train, val, test))
    return folds


def check_folds(entries: Sequence[ManifestEntry], folds: list[Fold], scheme: FoldScheme) -> None:
    """Raise FoldError unless the folds are disjoint, cover the corpus as the kind promises,
    and (group kinds) share no group between train, validation and test."""
    all_ids = {e.clip_id for e in entries}
    for i, f in enumerate(folds):
        parts = [set(f.train), set(f.val), set(f.test)]
        if any(parts[a] & parts[b] for a, b in ((0, 1), (0, 2), (1, 2))):
            raise FoldError(f"{scheme.name} fold {i}: a clip is in two parts")
        if scheme.kind not in ("group_holdout", "predefined") and set().union(*parts) != all_ids:
            raise FoldError(f"{scheme.name} fold {i}: does not cover every clip")
        columns = [scheme.group_by] if scheme.kind.startswith("group") else []
        for column in columns + ([scheme.together] if scheme.together else []):
            group = {e.clip_id: _group_of(e, column) for e in entries}
            gs = [{group[c] for c in p} for p in parts]
            if gs[0] & gs[1] or gs[0] & gs[2] or gs[1] & gs[2]:
                raise FoldError(f"{scheme.name} fold {i}: a {column} is in two parts")
    if scheme.kind in KFOLD_KINDS:
        tests = [c for f in folds for c in f.test]
        if sorted(tests) != sorted(all_ids):
            raise FoldError(f"{scheme.name}: not every clip is in exactly one test fold")


def fold_manifest(
    entries: Sequence[ManifestEntry], scheme: FoldScheme, seed: int
) -> dict[str, Any]:
    folds = make_folds(entries, scheme, seed)
    check_folds(entries, folds, scheme)
    return {
        "scheme": scheme.name,
        "kind": scheme.kind,
        "group_by": scheme.group_by,
        **({"together": scheme.together} if scheme.together else {}),
        **({"leaky": True} if scheme.leaky else {}),
        "seed": seed,
        "n_clips": len(entries),
        "folds": [
            {"fold": i, "train": f.train, "val": f.val, "test": f.test} for i, f in enumerate(folds)
        ],
    }
