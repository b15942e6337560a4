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


def test_strided_is_the_qian_han_codes_split():
    """The authors' rule, followed step by step as their loader does it on arrays in corpus
    order (utterances sorted by id): indexes 0, 5, 10, ... test; the other indexes, taken
    from a Python set, every 10th of them validation; the rest training."""
    entries = [ManifestEntry(f"Ses0{s}F_impro0{d}_F{u:03d}", "x.wav", label=("ang", "hap")[u % 2])
               for s in (1, 2) for d in (1, 2, 3) for u in range(37)]  # fmt: skip
    ids = sorted(e.clip_id for e in entries)
    every = list(range(len(ids)))
    test_idx = list(range(0, len(ids), 5))
    rest = list(set(every) - set(test_idx))
    val_idx = rest[::10]
    train_idx = list(set(rest) - set(val_idx))
    scheme = FoldScheme("code", "strided")
    (f,) = fold_manifest(entries[::-1], scheme, seed=0)["folds"]  # the input order is irrelevant
    assert f["test"] == sorted(ids[i] for i in test_idx)
    assert f["val"] == sorted(ids[i] for i in val_idx)
    assert f["train"] == sorted(ids[i] for i in train_idx)
    n = len(ids)
    assert (len(f["train"]), len(f["val"]), len(f["test"])) == (159, 18, 45) and n == 222
    with pytest.raises(FoldError, match="test_every and val_every must be >= 2"):
        make_folds(entries, FoldScheme("c", "strided", test_every=1), 0)


def _authors_random_split(entries, seed=42, perc=0.9):
    """The MPUC code's random split as its loader does it: instances grouped by class (classes
    sorted), each in file order; one global generator seeded once; per class a random.sample
    for training + validation, a random.sample of that for validation, the rest test."""
    import random as stdlib_random

    stdlib_random.seed(seed)
    by_class: dict[str, list[str]] = {}
    for cid in sorted(e.clip_id for e in entries):
        by_class.setdefault(next(e.label for e in entries if e.clip_id == cid), []).append(cid)
    train, val, full = [], [], []
    for label in sorted(by_class):
        cl = by_class[label]
        picked = stdlib_random.sample(cl, int(len(cl) * perc))
        full += picked
        chosen = stdlib_random.sample(picked, int(int(len(cl) * perc) * 0.1))
        val += chosen
        train += list(set(picked) - set(chosen))
    test = list(set(e.clip_id for e in entries) - set(full))
    return sorted(train), sorted(val), sorted(test)


def test_class_holdout_draws_as_the_mpuc_code():
    entries = _ravdess_like()
    scheme = FoldScheme("code_random", "class_holdout", train_fraction=0.9, val_fraction=0.1)
    (f,) = fold_manifest(entries, scheme, seed=42)["folds"]
    train, val, test = _authors_random_split(entries)
    assert (f["train"], f["val"], f["test"]) == (train, val, test)
    assert len(f["test"]) == 8 * (48 - int(48 * 0.9))  # 5 of each class's 48 clips
    assert fold_manifest(entries, scheme, seed=43)["folds"][0] != f


def test_leaky_is_explicit_and_splits_takes_only_when_asked(tmp_path, caplog):
    """RAVDESS paired recordings: the folds stage keeps a take's two clips together unless a
    scheme says leaky: true (the MPUC code's random split), which then splits many takes."""
    import json
    import logging

    from pipeline.config import params_from_dict
    from pipeline.manifest import write_manifest
    from pipeline.paths import Layout
    from pipeline.workflow import run_folds

    takes = []
    for e in _ravdess_like():
        for m in ("01", "02"):
            takes.append(ManifestEntry(f"{m}-{e.clip_id}", e.path, speaker=e.speaker,
                                       label=e.label, meta={"performance": e.clip_id}))  # fmt: skip

    def split_takes(manifest) -> int:
        (fold,) = manifest["folds"]
        part = {cid: p for p in ("train", "val", "test") for cid in fold[p]}
        return sum(part[f"01-{t}"] != part[f"02-{t}"] for t in {c[3:] for c in part})

    kept = FoldScheme("r", "class_holdout", together="performance")
    leaky = FoldScheme("r", "class_holdout", leaky=True)
    assert split_takes(fold_manifest(takes, kept, 42)) == 0
    manifest = fold_manifest(takes, leaky, 42)
    assert manifest["leaky"] is True and split_takes(manifest) > 50
    with pytest.raises(FoldError, match="contradict"):
        make_folds(takes, FoldScheme("r", "class_holdout", together="performance", leaky=True), 0)
    # the folds stage: `together` for the plain scheme, a warning and a record for the leaky one
    lay = Layout("rav", tmp_path)
    lay.clips_csv.parent.mkdir(parents=True)
    write_manifest(lay.clips_csv, takes)
    schemes = [{"name": "kept", "kind": "class_holdout"},
               {"name": "leak", "kind": "class_holdout", "leaky": True}]  # fmt: skip
    raw = {"corpus": {"name": "rav", "adapter": "ravdess", "root": "x"},
           "folds": {"seed": 42, "schemes": schemes}, "train": {"scheme": "leak"}}  # fmt: skip
    params = params_from_dict(raw)
    caplog.set_level(logging.INFO)
    assert run_folds(params, tmp_path) == 0
    stage = {n: json.loads((lay.folds_dir / f"{n}.json").read_text()) for n in ("kept", "leak")}
    assert stage["kept"]["together"] == "performance" and split_takes(stage["kept"]) == 0
    assert stage["leak"]["leaky"] is True and split_takes(stage["leak"]) > 50
    said = [r for r in caplog.records if "leak is leaky (on purpose)" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING]  # the scheme training will use
    caplog.clear()
    assert run_folds(params_from_dict({**raw, "train": {"scheme": "kept"}}), tmp_path) == 0
    said = [r for r in caplog.records if "leak is leaky (on purpose)" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO]  # written, not trained on
    # one clip per take (recordings: av): nothing can leak, nothing is said
    singles = [e for e in takes if e.clip_id.startswith("01-")]
    write_manifest(lay.clips_csv, singles)
    caplog.clear()
    assert run_folds(params, tmp_path) == 0
    alone = json.loads((lay.folds_dir / "leak.json").read_text())
    assert "leaky" not in alone and "leaky" not in caplog.text
