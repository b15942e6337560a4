"""Is one method better than another on these folds? Paired, fold-level comparisons.

The runs of ``evaluate.json`` are (fold, seed) pairs keyed ``<k>`` or ``<k>-seed-<s>``. Two
methods run on the same folds see the same test clips, so their difference is measured
within each run; the seeds of one fold share its test clips and training clips, so they are
not independent samples: the fold is the unit.

How it works:

1. Pair the two methods' runs by key; keep the runs where both have the metric.
2. Average the paired differences over the seeds of each fold: one difference per fold.
3. With two or more folds: Student's t over the per-fold differences (df = folds - 1), the
   mean difference, its two-sided 95 % interval and p-value. With one fold there is no
   spread between folds to measure, so no interval and no verdict either way.
4. Words that match the interval: higher or lower when the interval excludes 0, "no
   difference shown" when it includes 0 (which is not evidence that they are equal).

The folds of a cross-validation share most of their training clips, so per-fold results are
somewhat correlated and the interval is, if anything, a little narrow (the Nadeau-Bengio
correction would widen it). Numpy only: Student's t from the regularized incomplete beta.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

TEST = "paired t over per-fold mean differences"
LEVEL = 0.95


def fold_of(run: str) -> str:
    """The fold of a run key: ``"3-seed-1"`` -> ``"3"``, ``"3"`` -> ``"3"``."""
    return run.split("-seed-")[0]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(ln + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`t_sf`)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > 1.0 - q:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if t_sf(mid, df) > 1.0 - q else (lo, mid)
    return (lo + hi) / 2.0


def per_fold_differences(
    a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]], metric: str
) -> tuple[dict[str, float], int]:
    """fold -> mean over its seeds of ``a - b``, and how many paired runs went in."""
    diffs: dict[str, list[float]] = {}
    for run, ma in a.items():
        va, vb = ma.get(metric), (b.get(run) or {}).get(metric)
        if va is None or vb is None or va != va or vb != vb:
            continue
        diffs.setdefault(fold_of(run), []).append(float(va) - float(vb))
    n_runs = sum(len(v) for v in diffs.values())
    return {f: sum(v) / len(v) for f, v in diffs.items()}, n_runs


def compare_pair(
    method: str,
    baseline: str,
    a: Mapping[str, Mapping[str, float]],
    b: Mapping[str, Mapping[str, float]],
    metric: str,
) -> dict[str, Any]:
    """One comparison: ``method - baseline`` on ``metric`` (fractions in, percentage points
    out), with the fold-level interval, p-value and verdict."""
    folds, n_runs = per_fold_differences(a, b, metric)
    d = [100.0 * v for v in folds.values()]
    n = len(d)
    out: dict[str, Any] = {
        "method": method,
        "baseline": baseline,
        "metric": metric,
        "n_folds": n,
        "n_runs": n_runs,
        "mean_diff": sum(d) / n if n else None,
        "ci_low": None,
        "ci_high": None,
        "p": None,
        "test": TEST,
    }
    if n < 2:
        out["verdict"] = (
            "no paired runs" if n == 0 else
            "cannot tell: one fold, so no spread between folds to judge the difference by"
        )  # fmt: skip
        return out
    mean = out["mean_diff"]
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    se = sd / math.sqrt(n)
    half = t_ppf(0.5 + LEVEL / 2, n - 1) * se
    # all folds the same difference: exact, p 0 (or 1 when that difference is 0)
    p = 2.0 * t_sf(abs(mean) / se, n - 1) if se > 0 else float(mean == 0)
    out.update(ci_low=mean - half, ci_high=mean + half, p=min(1.0, p))
    out["verdict"] = verdict(method, baseline, out["ci_low"], out["ci_high"])
    return out


def verdict(method: str, baseline: str, low: float, high: float) -> str:
    pct = f"{round(100 * LEVEL)} %"
    if low > 0:
        return f"{method} higher than {baseline} (the {pct} interval excludes 0)"
    if high < 0:
        return f"{method} lower than {baseline} (the {pct} interval excludes 0)"
    return f"no difference shown (the {pct} interval includes 0)"


def baseline_pairs(results: Sequence[str]) -> list[tuple[str, str]]:
    """(method, baseline) for each comparison the report makes among ``results``: what each
    paper claims for its method. Qian & Han: the regularizer against the same model without
    it. MPUC: the probe against untrained encoders (what pretraining adds) and against each
    supervised baseline (Table I's claim)."""
    have = list(results)
    pairs = []
    if "qian_han" in have and "qian_han_baseline" in have:
        pairs.append(("qian_han", "qian_han_baseline"))
    if "probe" in have:
        supervised = [r for r in have if r.startswith("unimodal_")]
        supervised += [r for r in ("late_fusion", "attention") if r in have]
        pairs += [("probe", r) for r in ("probe_untrained", *supervised) if r in have]
    return pairs


def comparisons(
    methods: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str],
    pairs: Sequence[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Every (method, baseline) pair (default :func:`baseline_pairs`) on every metric both
    have: ``methods`` is ``evaluate.json``'s ``methods`` (each with its per-run ``folds``)."""
    pairs = baseline_pairs(list(methods)) if pairs is None else pairs
    out = []
    for method, baseline in pairs:
        a, b = methods[method]["folds"], methods[baseline]["folds"]
        for metric in metrics:
            if any(metric in v for v in a.values()) and any(metric in v for v in b.values()):
                out.append(compare_pair(method, baseline, a, b, metric))
    return out
