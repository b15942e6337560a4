"""Per-clip test predictions of the evaluation (``data/reports/<corpus>/predictions.csv``).

One row per (method, run, test clip): ``method, run, fold, seed, clip_id, actual,
predicted``. ``run`` is the fold number with the seed's suffix (as in ``evaluate.json``'s
``folds``); single-label corpora name the class; multi-label corpora list the emotions
present, joined by ``;`` ("" for none). The QA page reads it to show misclassified clips; it
is small (a row per test clip and method), written atomically, and the same for the same
inputs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store.writer import atomic_write_text
from .data import LabelSpace

COLUMNS = ("method", "run", "fold", "seed", "clip_id", "actual", "predicted")


@dataclass(frozen=True)
class Prediction:
    method: str
    run: str
    fold: int
    seed: int
    clip_id: str
    actual: str
    predicted: str


def label_text(labels: LabelSpace, value: np.ndarray | int) -> str:
    """A target or prediction in words: the class name, or the emotions present."""
    if not labels.multi_label:
        return labels.names[int(value)]
    v = np.asarray(value)
    return ";".join(n for n, x in zip(labels.names, v, strict=True) if float(x) > 0.5)


def predictions_of(
    labels: LabelSpace,
    method: str,
    run: str,
    fold: int,
    seed: int,
    clip_ids: Sequence[str],
    y_true: np.ndarray,
    y_pred: np.ndarray,
) -> list[Prediction]:
    if len(clip_ids) != len(y_true) or len(y_true) != len(y_pred):
        raise ValueError(
            f"{method} run {run}: {len(clip_ids)} clip ids for {len(y_true)} targets and "
            f"{len(y_pred)} predictions"
        )
    return [
        Prediction(method, run, fold, seed, c, label_text(labels, t), label_text(labels, p))
        for c, t, p in zip(clip_ids, y_true, y_pred, strict=True)
    ]


def write_predictions(path: Path, rows: Iterable[Prediction]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r.method, r.run, r.fold, r.seed, r.clip_id, r.actual, r.predicted])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


def read_predictions(path: Path) -> list[Prediction]:
    with open(path, newline="") as f:
        return [
            Prediction(r["method"], r["run"], int(r["fold"]), int(r["seed"]), r["clip_id"],
                       r["actual"], r["predicted"])
            for r in csv.DictReader(f)
        ]
