"""The sentiment metrics of the CMU-MOSI / CMU-MOSEI literature, from continuous scores.

Truth and prediction are scores in [-3, 3]. Reported as in that literature:

- ``mae``: mean absolute error; ``corr``: Pearson correlation;
- ``acc7``: 7-class accuracy after rounding both to integers in [-3, 3];
- ``acc2`` / ``f1``: binary accuracy and weighted F1 of negative (< 0) vs non-negative (>= 0);
- ``acc2_nonzero`` / ``f1_nonzero``: the same for negative vs positive with the segments whose
  truth is exactly 0 left out (the other of the two conventions papers report).
"""

from __future__ import annotations

import numpy as np

from .metrics import accuracy, weighted_f1


def seven_class_index(scores: np.ndarray) -> np.ndarray:
    """0..6 for scores rounded to -3..3 (the labels of the adapter's ``label: 7class``)."""
    return (np.round(np.clip(np.asarray(scores, np.float64), -3.0, 3.0)) + 3).astype(int)


def sentiment_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"need two equal, non-empty score vectors; got {y_true.shape}, "
                         f"{y_pred.shape}")  # fmt: skip
    out = {
        "mae": float(np.abs(y_true - y_pred).mean()),
        "corr": float(np.corrcoef(y_true, y_pred)[0, 1])
        if y_true.std() > 0 and y_pred.std() > 0
        else float("nan"),
        "acc7": accuracy(seven_class_index(y_true), seven_class_index(y_pred)),
    }
    t, p = (y_true >= 0).astype(int), (y_pred >= 0).astype(int)
    out["acc2"], out["f1"] = accuracy(t, p), weighted_f1(t, p, 2)
    keep = y_true != 0
    t, p = (y_true[keep] > 0).astype(int), (y_pred[keep] > 0).astype(int)
    out["acc2_nonzero"] = accuracy(t, p)
    out["f1_nonzero"] = weighted_f1(t, p, 2) if keep.any() else float("nan")
    return out
