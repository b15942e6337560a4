"""Comparisons of a method with its baseline: paired over the same test clips, the folds as
the units, Student's t; and what evaluate.json and report.md say with them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from pipeline.training.data import LabelSpace
from pipeline.training.report import evaluation_summary, markdown_report
from pipeline.training.stats import baseline_pairs, compare_pair, comparisons, t_ppf, t_sf

FOLD_BASE = [0.55, 0.75, 0.90, 0.65]  # folds differ a lot: hard and easy test actors
SEED_JITTER = [0.0, 0.02, -0.02]


def _runs(offsets: list[float]) -> dict[str, dict[str, float]]:
    """4 folds x 3 seeds: the fold's level, a seed's jitter, plus the method's offset on
    that fold."""
    return {
        f"{k}-seed-{s}": {"accuracy": FOLD_BASE[k] + SEED_JITTER[s] + offsets[k]}
        for k in range(4)
        for s in range(3)
    }


def _constructed() -> dict[str, dict[str, dict[str, float]]]:
    """qian_han is 3.5-4.5 points below its baseline on every fold (a small, consistent
    loss); the probe is 13 points above unimodal_mel on average, all of it from one fold."""
    return {
        "qian_han_baseline": _runs([0.0] * 4),
        "qian_han": _runs([-0.035, -0.045, -0.04, -0.04]),
        "unimodal_mel": _runs([0.0] * 4),
        "probe": _runs([0.45, -0.03, 0.12, -0.02]),
    }


def test_student_t_matches_scipy():
    for df in (1, 2, 3, 5, 11, 30, 200):
        for t in (-6.0, -1.3, 0.0, 0.4, 2.2, 7.0, 40.0):
            assert t_sf(t, df) == pytest.approx(scipy_stats.t.sf(t, df), abs=1e-12)
        for q in (0.025, 0.5, 0.9, 0.975, 0.999):
            assert t_ppf(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), abs=1e-9)


def test_the_old_rule_is_wrong_both_ways_and_the_paired_test_is_not():
    """The rule it replaces: two methods differ when their means are more than 2 standard
    errors of an unpaired difference apart, the 12 runs independent, the median std of all
    methods. Here it calls a consistent 4-point loss noise and a one-fold 13-point gain a
    difference."""
    runs = _constructed()
    accs = {m: np.array([v["accuracy"] for v in r.values()]) for m, r in runs.items()}
    gap = 2 * math.sqrt(2) * float(np.median([a.std() for a in accs.values()])) / math.sqrt(12)
    loss = accs["qian_han"].mean() - accs["qian_han_baseline"].mean()
    gain = accs["probe"].mean() - accs["unimodal_mel"].mean()
    assert abs(loss) < gap < abs(gain)  # old: "noise" for the loss, "differ" for the gain

    a = compare_pair("qian_han", "qian_han_baseline", runs["qian_han"],
                     runs["qian_han_baseline"], "accuracy")  # fmt: skip
    assert (a["n_folds"], a["n_runs"]) == (4, 12)
    assert a["mean_diff"] == pytest.approx(-4.0) and a["ci_high"] < 0 and a["p"] < 0.01
    assert a["verdict"] == "qian_han lower than qian_han_baseline (the 95 % interval excludes 0)"

    b = compare_pair("probe", "unimodal_mel", runs["probe"], runs["unimodal_mel"], "accuracy")
    assert b["mean_diff"] == pytest.approx(13.0) and b["ci_low"] < 0 < b["ci_high"]
    assert b["p"] > 0.2 and b["verdict"] == "no difference shown (the 95 % interval includes 0)"

    # the interval and p are Student's t over the four per-fold differences (scipy's)
    d = 100 * (np.array([0.45, -0.03, 0.12, -0.02]))
    res = scipy_stats.ttest_1samp(d, 0.0)
    lo, hi = res.confidence_interval(0.95)
    assert (b["p"], b["ci_low"], b["ci_high"]) == pytest.approx((res.pvalue, lo, hi), abs=1e-9)


def test_seeds_of_a_fold_are_one_unit_and_one_fold_tells_nothing():
    runs = _constructed()
    one_fold = {m: {k: v for k, v in r.items() if k.startswith("2-")} for m, r in runs.items()}
    c = compare_pair("probe", "unimodal_mel", one_fold["probe"], one_fold["unimodal_mel"],
                     "accuracy")  # fmt: skip
    assert (c["n_folds"], c["n_runs"]) == (1, 3) and c["mean_diff"] == pytest.approx(12.0)
    assert c["ci_low"] is None and c["p"] is None and c["verdict"].startswith("cannot tell")
    same = compare_pair("x", "y", runs["unimodal_mel"], runs["unimodal_mel"], "accuracy")
    assert same["mean_diff"] == 0 and same["p"] == 1.0 and same["verdict"].startswith("no diff")
    # runs keyed without seeds ("0", "1", ...) and runs one method lacks
    a = {"0": {"accuracy": 0.5}, "1": {"accuracy": 0.6}, "2": {"accuracy": 0.7}}
    b = {"0": {"accuracy": 0.4}, "1": {"accuracy": None}, "2": {"accuracy": 0.65}}
    c = compare_pair("x", "y", a, b, "accuracy")
    assert (c["n_folds"], c["n_runs"]) == (2, 2) and c["mean_diff"] == pytest.approx(7.5)


def test_each_method_is_compared_with_its_own_baseline():
    results = ["probe", "probe_untrained", "unimodal_mel", "unimodal_spectrogram", "late_fusion",
               "attention", "qian_han", "qian_han_baseline"]  # fmt: skip
    assert baseline_pairs(results) == [
        ("qian_han", "qian_han_baseline"), ("probe", "probe_untrained"),
        ("probe", "unimodal_mel"), ("probe", "unimodal_spectrogram"),
        ("probe", "late_fusion"), ("probe", "attention"),
    ]  # fmt: skip
    assert baseline_pairs(["late_fusion", "attention", "qian_han"]) == []


def test_evaluate_json_carries_the_comparisons_and_report_md_says_them():
    runs = _constructed()
    labels = LabelSpace(("angry", "happy", "neutral", "sad"), False)
    doc = evaluation_summary("c", "actor_kfold", labels, runs, {0: 0.25}, seeds=(0, 1, 2))
    keys = ["method", "baseline", "metric", "n_folds", "n_runs", "mean_diff", "ci_low",
            "ci_high", "p", "test", "verdict"]  # fmt: skip
    assert [list(c) for c in doc["comparisons"]] == [keys, keys]
    assert [(c["method"], c["baseline"]) for c in doc["comparisons"]] == [
        ("qian_han", "qian_han_baseline"), ("probe", "unimodal_mel")]  # fmt: skip
    assert doc["comparisons"] == comparisons(doc["methods"], ["accuracy", "ua"])
    assert doc["paper"] is None and doc["paper_reason"].startswith("the run is not a paper preset")
    text = markdown_report(doc, None)
    assert "| qian_han − qian_han_baseline | accuracy | 4 (12) | -4.00 |" in text
    assert "qian_han lower than qian_han_baseline" in text
    assert "| probe − unimodal_mel | accuracy | 4 (12) | +13.00 |" in text
    assert "no difference shown" in text and "points apart" not in text


def test_the_report_says_what_must_be_known_to_trust_the_numbers(tmp_path):
    from training_helpers import tiny_params

    from pipeline.training.workflow import evaluation_notes

    params = tiny_params(tmp_path, ("faces", "mel"), pretrain={"clips": "all"})
    notes = evaluation_notes(
        params,
        {"probe": ("faces", "mel"), "unimodal_mel": ("mel",)},
        {"scheme": "code_random_leaky", "leaky": True, "leaked_test_clips": [241, 288]},
        {("happy", "no"): {"0", "2"}, ("sad", "only"): {"1"}},
    )
    assert notes == [
        "The folds `code_random_leaky` are leaky on purpose: the clips of one take may be in "
        "training and in test, so test clips can have near-copies in training (241 of 288 test "
        "clips here) and every score here is inflated.",
        "Faces: the R(2+1)D-18 backbone trained from scratch (train.r2plus1d.weights is empty); "
        "the paper's was pretrained on Kinetics-400.",
        "The encoder was pretrained on every clip, the test clips included (pretrain.clips: "
        "all, as the MPUC code's unsupervised mode does).",
        "w_acc_happy is plain accuracy on fold 0, 2: the test part has no happy clips, where "
        "(tp·n/p + tn)/(2n) is undefined.",
        "w_acc_sad is plain accuracy on fold 1: the test part has only sad clips, where "
        "(tp·n/p + tn)/(2n) is undefined.",
    ]
    weights = tiny_params(tmp_path, ("faces",), train={"r2plus1d": {"weights": "k400.pth"}})
    assert evaluation_notes(weights, {"probe": ("faces",)}, {}, {}) == []


def test_a_leaky_split_counts_the_test_clips_whose_take_is_in_training():
    from types import SimpleNamespace

    from training_helpers import tiny_params

    from pipeline.manifest import ManifestEntry
    from pipeline.training.data import Fold
    from pipeline.training.workflow import leaked_test_clips

    entries = {f"{m}-t{t}": ManifestEntry(f"{m}-t{t}", "x.mp4", meta={"performance": f"t{t}"})
               for m in ("01", "02") for t in range(4)}  # fmt: skip
    folds = [Fold(0, ("01-t0", "02-t1", "01-t2", "02-t2"), (), ("02-t0", "01-t1", "01-t3")),
             Fold(1, ("01-t3",), (), ("02-t3", "01-t0"))]  # fmt: skip
    params = tiny_params(Path("."), corpus={"adapter": "ravdess"})
    assert leaked_test_clips(SimpleNamespace(entries=entries), folds, params) == [3, 5]
    other = tiny_params(Path("."), corpus={"adapter": "iemocap"})  # no takes: nothing leaks
    assert leaked_test_clips(SimpleNamespace(entries=entries), folds, other) == [0, 5]
