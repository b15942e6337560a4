"""Fold manifests: deterministic, speaker-disjoint where promised, every clip tested once."""

import pytest

from pipeline.config import FoldScheme
from pipeline.folds import FoldError, check_folds, fold_manifest, make_folds
from pipeline.manifest import ManifestEntry


def _ravdess_like(n_actors: int = 24) -> list[ManifestEntry]:
    emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
    out = []
    for a in range(1, n_actors + 1):
        for i, emo in enumerate(emotions):
            for rep in (1, 2):
                out.append(ManifestEntry(f"a{a:02d}-{i}-{rep}", f"Actor_{a:02d}/x{i}{rep}.mp4",
                                         speaker=f"Actor_{a:02d}", label=emo))
    return out


ACTOR_10 = FoldScheme("actor_kfold", "group_kfold", n_folds=10, val_fraction=0.1)
RANDOM_10 = FoldScheme("random_kfold", "stratified_kfold", n_folds=10, val_fraction=0.1)
HOLDOUT = FoldScheme("actor_holdout", "group_holdout", n_train=18, n_val=3, n_test=3)


def test_actor_kfold_shares_no_actor_and_tests_every_clip_once():
    entries = _ravdess_like()
    spk = {e.clip_id: e.speaker for e in entries}
    m = fold_manifest(entries, ACTOR_10, seed=42)
    assert len(m["folds"]) == 10
    tested = []
    for f in m["folds"]:
        parts = [{spk[c] for c in f[k]} for k in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(parts[1]) >= 1 and len(parts[2]) in (2, 3)
        tested += f["test"]
        assert len(f["train"]) + len(f["val"]) + len(f["test"]) == len(entries)
    assert sorted(tested) == sorted(spk)


def test_random_kfold_is_stratified_and_complete():
    entries = _ravdess_like()
    m = fold_manifest(entries, RANDOM_10, seed=1)
    tested = [c for f in m["folds"] for c in f["test"]]
    assert sorted(tested) == sorted(e.clip_id for e in entries)
    label = {e.clip_id: e.label for e in entries}
    for f in m["folds"]:
        counts = {}
        for c in f["test"]:
            counts[label[c]] = counts.get(label[c], 0) + 1
        assert max(counts.values()) - min(counts.values()) <= 1
        assert not set(f["val"]) & set(f["test"])


def test_holdout_18_3_3_like_the_authors_code():
    entries = _ravdess_like()
    m = fold_manifest(entries, HOLDOUT, seed=42)
    (f,) = m["folds"]
    spk = {e.clip_id: e.speaker for e in entries}
    assert [len({spk[c] for c in f[k]}) for k in ("train", "val", "test")] == [18, 3, 3]


def test_holdout_is_the_authors_actor_split_exactly():
    """The MPUC code: actors 1..24, random.seed(42); random.shuffle -> test 1, 4, 21; val 8,
    9, 20 (the actors written down from the authors' split, not recomputed here)."""
    entries = _ravdess_like()
    (f,) = fold_manifest(entries, HOLDOUT, seed=42)["folds"]
    spk = {e.clip_id: int(e.speaker.split("_")[1]) for e in entries}
    actors = {k: sorted({spk[c] for c in f[k]}) for k in ("train", "val", "test")}
    assert actors["test"] == [1, 4, 21] and actors["val"] == [8, 9, 20]
    assert actors["train"] == sorted(set(range(1, 25)) - {1, 4, 21, 8, 9, 20})
    # the order of the manifest does not matter (actors are put in natural order first)
    (g,) = fold_manifest(entries[::-1], HOLDOUT, seed=42)["folds"]
    assert g == f


KFOLD_811 = FoldScheme("kfold_811", "kfold_811", n_folds=10)


def test_kfold_811_rotates_test_and_validation_folds():
    entries = _ravdess_like()
    m = fold_manifest(entries, KFOLD_811, seed=42)
    folds = m["folds"]
    assert len(folds) == 10
    ids = sorted(e.clip_id for e in entries)
    assert sorted(c for f in folds for c in f["test"]) == ids
    assert sorted(c for f in folds for c in f["val"]) == ids
    for i, f in enumerate(folds):
        assert f["val"] == folds[(i + 1) % 10]["test"]  # 8:1:1, validation = the next fold
        assert sorted(f["train"] + f["val"] + f["test"]) == ids
        n = len(entries)
        assert abs(len(f["test"]) - n / 10) <= 8 and abs(len(f["train"]) - 0.8 * n) <= 16
    with pytest.raises(FoldError, match="at least 3 folds"):
        make_folds(entries, FoldScheme("k", "kfold_811", n_folds=2), 0)


def test_deterministic_from_seed():
    entries = _ravdess_like()
    assert fold_manifest(entries, ACTOR_10, 7) == fold_manifest(entries, ACTOR_10, 7)
    assert fold_manifest(entries, ACTOR_10, 7) != fold_manifest(entries, ACTOR_10, 8)


def test_impossible_schemes_fail_with_reason():
    with pytest.raises(FoldError, match="10 folds over 4 speaker groups"):
        make_folds(_ravdess_like(4), ACTOR_10, 0)
    with pytest.raises(FoldError, match="18/3/3 groups requested but the corpus has 4"):
        make_folds(_ravdess_like(4), HOLDOUT, 0)


def test_checker_catches_a_leaking_fold():
    entries = _ravdess_like(6)
    folds = make_folds(entries, FoldScheme("k", "group_kfold", n_folds=3), 0)
    folds[0].train.append(folds[0].test[0])
    with pytest.raises(FoldError, match="two parts"):
        check_folds(entries, folds, FoldScheme("k", "group_kfold", n_folds=3))
