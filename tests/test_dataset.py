"""The window Dataset: aligned cuts, two views, padding and masks, lazy HDF5 per worker."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.store import ClipFeatures, ShardWriter
from pipeline.training.config import InputConfig
from pipeline.training.dataset import DataError, WindowDataset, fit_standardizer

# Each row holds its own timestamp, so a cut shows exactly which times it took.
RATES = {"mel": 30.0, "landmarks": 25.0}
WORD_TIMES = np.array([0.10, 0.50, 0.55, 1.30, 1.70])
DURATIONS = {"long": 2.0, "short": 0.5}


def _write(root: Path) -> dict[str, Path]:
    dirs = {}
    for m in ("mel", "landmarks", "words"):
        dirs[m] = root / m
        array = {"mel": "mel", "landmarks": "landmarks_crop", "words": "vectors"}[m]
        with ShardWriter(dirs[m], m, {}, {}, array, compression="gzip") as w:
            for cid, dur in DURATIONS.items():
                if m == "words":
                    ts = WORD_TIMES[dur > WORD_TIMES]
                    x = np.repeat(ts[:, None], 3, 1).astype(np.float32)
                else:
                    ts = np.arange(0, dur, 1 / RATES[m])
                    shape = (len(ts), 68, 2) if m == "landmarks" else (len(ts), 2)
                    x = np.broadcast_to(ts.reshape(-1, *([1] * (len(shape) - 1))), shape).astype(
                        np.float32
                    )
                valid = np.ones(len(ts), bool)
                if m == "mel" and cid == "long":
                    valid[30:33] = False  # a gap at 1.0-1.1 s
                w.add(cid, ClipFeatures({array: x}, ts, valid), source_sha256=cid)
    return dirs


INPUTS = {
    "mel": InputConfig("mel", 10, "time", "tcn"),
    "landmarks": InputConfig("landmarks_crop", 10, "time", "stgcn"),
    "words": InputConfig("vectors", 4, "sequence", "transformer", False),
}


@pytest.fixture
def shards(tmp_path: Path) -> dict[str, Path]:
    return _write(tmp_path)


def _dataset(shards, **kw) -> WindowDataset:
    kw.setdefault("window_seconds", 1.0)
    return WindowDataset(
        shards, INPUTS, list(DURATIONS), np.array([0, 1]), list(DURATIONS.values()), **kw
    )


def test_modalities_are_cut_at_the_same_times(shards):
    ds = _dataset(shards, views=2, random_windows=True, seed=3)
    item = ds[0]
    assert item["target"].item() == 0 and len(item["views"]) == 2
    for view in item["views"]:
        mel, lm = view["mel"], view["landmarks"]
        assert mel["x"].shape == (10, 2) and lm["x"].shape == (10, 68, 2)
        both = mel["mask"] & lm["mask"]
        # the nearest rows of both modalities lie within half a row spacing of the step time
        gap = (mel["x"][both, 0] - lm["x"][both, 0, 0]).abs()
        assert both.sum() >= 6 and float(gap.max()) <= 1 / 60 + 1 / 50 + 1e-6
        # ten evenly spaced steps across a one-second window
        steps = np.diff(lm["x"][:, 0, 0].numpy())
        assert np.allclose(steps, 0.1, atol=0.041)
        # the invalid mel rows (1.0-1.1 s) never feed a step; masked steps are zero
        taken = mel["x"][mel["mask"], 0].numpy()
        assert not np.isin(np.round(taken * 30), [30, 31, 32]).any()
        assert (mel["x"][~mel["mask"]] == 0).all()
    # both windows cross the gap, and there the mel steps are masked
    assert all((~v["mel"]["mask"]).any() for v in item["views"])


def test_two_views_are_two_random_windows_drawn_per_epoch(shards):
    ds = _dataset(shards, views=2, random_windows=True, seed=3)
    first = [v["landmarks"]["x"][0, 0, 0].item() for v in ds[(0, 0)]["views"]]
    assert first[0] != pytest.approx(first[1])  # two different windows of the same clip
    assert first == [v["landmarks"]["x"][0, 0, 0].item() for v in ds[(0, 0)]["views"]]
    other = [v["landmarks"]["x"][0, 0, 0].item() for v in ds[(1, 0)]["views"]]
    assert other != first  # another epoch draws other windows
    ds.set_epoch(1)
    assert [v["landmarks"]["x"][0, 0, 0].item() for v in ds[0]["views"]] == other
    # evaluation: the centred window, the same every time
    centred = _dataset(shards)[0]["views"][0]["landmarks"]["x"][:, 0, 0]
    assert centred[0].item() == pytest.approx(0.56, abs=0.021)
    # or the first window (the MPUC code's start_frame = 0), chosen by train.window.eval_at
    first = _dataset(shards, eval_at="first")[0]["views"][0]["landmarks"]["x"][:, 0, 0]
    assert first[0].item() == pytest.approx(0.06, abs=0.021)
    # training windows are random whatever eval_at says
    ds = _dataset(shards, views=2, random_windows=True, seed=3, eval_at="first")
    assert [v["landmarks"]["x"][0, 0, 0].item() for v in ds[(0, 0)]["views"]] == [
        v["landmarks"]["x"][0, 0, 0].item() for v in _dataset(
            shards, views=2, random_windows=True, seed=3)[(0, 0)]["views"]]  # fmt: skip


def test_short_clip_is_padded_and_masked(shards):
    view = _dataset(shards)[1]["views"][0]  # 0.5 s clip, 1 s window
    for m in ("mel", "landmarks"):
        mask = view[m]["mask"]
        assert mask[:4].all() and not mask[6:].any()
        assert (view[m]["x"][~mask] == 0).all()
    words = view["words"]  # one word starts before 0.5 s
    assert words["mask"].tolist() == [True, False, False, False]
    assert words["x"][0, 0].item() == pytest.approx(0.10)
    assert (words["x"][1:] == 0).all()


def test_sequence_mode_takes_the_words_of_the_window(shards):
    ds = _dataset(shards, window_seconds=0.8)
    view = ds.cut_views(0, [0.5], 0.8)[0]["words"]  # 0.5-1.3 s: the words at 0.50 and 0.55
    assert view["mask"].tolist() == [True, True, False, False]
    assert view["x"][:2, 0].tolist() == pytest.approx([0.50, 0.55])
    view = ds.cut_views(0, [0.8], 0.4)[0]["words"]  # no word starts in 0.8-1.2 s
    assert view["mask"].tolist() == [True, False, False, False]
    assert view["x"][0, 0].item() == pytest.approx(0.55)  # the word under way


def test_whole_clip_window_and_clip_mode(shards):
    inputs = dict(INPUTS, mel=InputConfig("mel", 80, "clip", "tcn"))
    ds = WindowDataset(shards, inputs, ["long"], np.array([0]), [2.0], window_seconds=0.0)
    view = ds[0]["views"][0]
    assert view["mel"]["mask"].sum() == 57  # 60 rows, 3 invalid, padded to 80
    assert view["landmarks"]["x"][-1, 0, 0].item() == pytest.approx(1.92, abs=0.021)


def test_hdf5_is_opened_lazily_and_per_worker(shards):
    ds = _dataset(shards, views=2, random_windows=True)
    assert not ds._readers and not ds._files
    reference = [ds[i] for i in range(2)]
    assert ds._files  # opened on first use in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert not clone._files and not clone._datasets and not clone._decoded
    fresh = _dataset(shards, views=2, random_windows=True)
    batches = list(DataLoader(fresh, batch_size=1, num_workers=2))
    assert not fresh._files  # the workers opened their own handles, the parent none
    for item, batch in zip(reference, batches, strict=True):
        for v in range(2):
            for m in INPUTS:
                assert torch.equal(item["views"][v][m]["x"], batch["views"][v][m]["x"][0])


def test_missing_array_and_clip_fail_with_what_to_set(shards):
    bad = dict(INPUTS, mel=InputConfig("melspec", 10, "time", "tcn"))
    ds = WindowDataset(shards, bad, ["long"], np.array([0]), [2.0], window_seconds=1.0)
    with pytest.raises(DataError, match=r"no array 'melspec'.*train\.inputs\.mel\.array"):
        ds[0]
    ds = WindowDataset(shards, INPUTS, ["nope"], np.array([0]), [2.0], window_seconds=1.0)
    with pytest.raises(DataError, match="clip 'nope' is not in"):
        ds[0]


def test_standardizer_uses_valid_rows_only(shards):
    ds = _dataset(shards)
    stats = fit_standardizer(ds, ["mel", "words"])
    rows = np.concatenate(
        [np.delete(np.arange(0, 2.0, 1 / 30), range(30, 33)), np.arange(0, 0.5, 1 / 30)]
    )
    assert stats["mel"][0] == pytest.approx(rows.mean(), rel=1e-5)
    assert stats["mel"][1] == pytest.approx(rows.std(), rel=1e-4)
    assert "words" not in stats  # words are not standardised (standardize: false)


def test_numpy_windows_are_the_trainers_windows(shards):
    """pipeline.api.iter_windows (numpy, no torch) cuts exactly what WindowDataset cuts."""
    from pipeline import api

    kw = dict(window_seconds=1.0, views=2, random_windows=True, seed=5)
    ds = _dataset(shards, **kw)
    ds.set_epoch(2)
    items = list(api.iter_windows(shards, {m: {"array": c.array, "steps": c.steps,
                                               "mode": c.mode} for m, c in INPUTS.items()},
                                  list(DURATIONS), epoch=2,
                                  durations=list(DURATIONS.values()), **kw))
    assert [it["clip_id"] for it in items] == list(DURATIONS)
    for i, item in enumerate(items):
        ref = ds[i]
        assert item["target"] is None and len(item["views"]) == 2
        for view, ref_view in zip(item["views"], ref["views"], strict=True):
            for m in INPUTS:
                assert isinstance(view[m]["x"], np.ndarray)
                assert np.array_equal(view[m]["x"], ref_view[m]["x"].numpy())
                assert np.array_equal(view[m]["mask"], ref_view[m]["mask"].numpy())
    # another epoch draws other windows; the two views of a clip differ
    other = next(api.iter_windows(shards, {"mel": INPUTS["mel"]}, ["long"], epoch=3,
                                  durations=[2.0], **kw))
    assert not np.array_equal(other["views"][0]["mel"]["x"], items[0]["views"][0]["mel"]["x"])
    assert not np.array_equal(items[0]["views"][0]["mel"]["x"], items[0]["views"][1]["mel"]["x"])
