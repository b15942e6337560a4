"""Metrics of the papers (numpy only).

Single-label (RAVDESS, IEMOCAP): accuracy = WA (weighted accuracy: the fraction of clips
right), UA (unweighted accuracy: the mean of the per-class recalls), weighted F1.
Multi-label (CMU-MOSEI), per emotion as in the MPUC code: weighted accuracy
``(tp * n / p + tn) / (2 n)`` (p positives, n negatives in the truth) and F1 weighted by
class support (sklearn's ``average="weighted"`` over the two classes); "overall" is the
mean over emotions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows are the true class, columns the predicted one."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def unweighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else np.nan


def _f1(tp: float, fp: float, fn: float) -> float:
    denom = 2 * tp + fp + fn
    return 2 * tp / denom if denom else 0.0


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Per-class F1 weighted by each class's support in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(1)
    if support.sum() == 0:
        return float("nan")
    f1 = [
        _f1(cm[c, c], cm[:, c].sum() - cm[c, c], cm[c].sum() - cm[c, c]) for c in range(n_classes)
    ]
    return float(np.dot(f1, support) / support.sum())


def binary_weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """MOSEI weighted accuracy ``(tp * n / p + tn) / (2 n)``; plain accuracy when the
    truth holds only one class (the formula is undefined there)."""
    t, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    pos, neg = t.sum(), (~t).sum()
    if pos == 0 or neg == 0:
        return accuracy(t, p)
    tp, tn = (t & p).sum(), (~t & ~p).sum()
    return float((tp * neg / pos + tn) / (2 * neg))


def one_class_labels(y_true: np.ndarray, names: Sequence[str]) -> dict[str, str]:
    """The emotions (multi-label) whose truth holds one class only: ``"no"`` clip has it, or
    ``"only"`` clips with it. There :func:`binary_weighted_accuracy` is plain accuracy."""
    t = np.asarray(y_true) > 0.5
    if t.ndim != 2 or not len(t):
        return {}
    out = {n: "no" for e, n in enumerate(names) if not t[:, e].any()}
    out.update({n: "only" for e, n in enumerate(names) if t[:, e].all()})
    return out


def single_label_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    n = len(names)
    cm = confusion_matrix(y_true, y_pred, n)
    support = cm.sum(1)
    out = {
        "accuracy": accuracy(y_true, y_pred),
        "ua": unweighted_accuracy(y_true, y_pred, n),
        "f1_weighted": weighted_f1(y_true, y_pred, n),
    }
    out["wa"] = out["accuracy"]
    for c, name in enumerate(names):
        out[f"recall_{name}"] = float(cm[c, c] / support[c]) if support[c] else float("nan")
    return out


def multi_label_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true) > 0.5, np.asarray(y_pred) > 0.5
    out: dict[str, float] = {}
    for e, name in enumerate(names):
        out[f"w_acc_{name}"] = binary_weighted_accuracy(y_true[:, e], y_pred[:, e])
        out[f"f1_{name}"] = weighted_f1(y_true[:, e], y_pred[:, e], 2)
    out["w_acc"] = float(np.mean([out[f"w_acc_{n}"] for n in names]))
    out["f1"] = float(np.mean([out[f"f1_{n}"] for n in names]))
    return out


def headline(multi_label: bool) -> str:
    """The metric a method is ranked by, and that early stopping on score watches."""
    return "w_acc" if multi_label else "accuracy"


def summarize(per_fold: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """mean and (population) standard deviation over folds of every metric (NaN, e.g. the
    recall of a class no test clip has, is left out; all NaN gives NaN)."""
    keys = sorted({k for f in per_fold for k in f})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {k: float(np.nanmean([f.get(k, np.nan) for f in per_fold])) for k in keys}
        std = {k: float(np.nanstd([f.get(k, np.nan) for f in per_fold])) for k in keys}
    return {"mean": mean, "std": std}
