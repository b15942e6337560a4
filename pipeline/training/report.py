"""Reports under ``data/reports/<corpus>/``: DVC metrics (JSON), confusion plots (CSV of
actual/predicted for DVC's confusion template) and a short human-readable summary."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import dump_json
from ..store.writer import atomic_write_text
from .data import LabelSpace
from .metrics import headline, summarize


def confusion_rows(labels: LabelSpace, y_true: np.ndarray, y_pred: np.ndarray) -> list[list[str]]:
    """(actual, predicted) rows; multi-label corpora get one row per clip and emotion
    ("happy:yes" / "happy:no")."""
    if not labels.multi_label:
        names = labels.names
        return [[names[int(t)], names[int(p)]] for t, p in zip(y_true, y_pred, strict=True)]
    rows = []
    for t, p in zip(y_true, y_pred, strict=True):
        for e, name in enumerate(labels.names):
            actual = f"{name}:{'yes' if t[e] > 0.5 else 'no'}"
            rows.append([actual, f"{name}:{'yes' if p[e] else 'no'}"])
    return rows


def write_confusion(path: Path, rows: Sequence[Sequence[str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["actual", "predicted"])
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())


FOLD_KEYS = ("accuracy", "ua", "f1_weighted", "w_acc", "f1")


def _fold_keys(metrics: Mapping[str, float]) -> dict[str, float]:
    """The per-fold entries of the metrics document (per-class values only in the mean)."""
    return {k: metrics[k] for k in FOLD_KEYS if k in metrics}


def _fmt(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.2f}"


def evaluation_summary(
    corpus: str,
    scheme: str,
    labels: LabelSpace,
    per_method: Mapping[str, Mapping[str, Mapping[str, float]]],
    reference: Mapping[int, float],
    seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """The metrics document: per method mean, std and per-fold values; chance levels."""
    key = headline(labels.multi_label)
    chance = 0.5 if labels.multi_label else 1.0 / len(labels.names)
    doc: dict[str, Any] = {
        "corpus": corpus,
        "scheme": scheme,
        "task": "multi_label" if labels.multi_label else "single_label",
        "classes": list(labels.names),
        "headline": key,
        "chance": chance,
        "majority": float(np.mean(list(reference.values()))) if reference else chance,
        "seeds": list(seeds),
        "methods": {},
    }
    for name, folds in per_method.items():
        s = summarize(list(folds.values()))
        doc["methods"][name] = {
            "mean": s["mean"],
            "std": s["std"],
            "folds": {str(k): _fold_keys(v) for k, v in folds.items()},
        }
    return doc


def markdown_report(doc: Mapping[str, Any], pretrain: Mapping[str, Any] | None) -> str:
    key, chance, majority = doc["headline"], doc["chance"], doc["majority"]
    lines = [
        f"# Evaluation: {doc['corpus']}, folds `{doc['scheme']}`",
        "",
        f"Classes: {', '.join(doc['classes'])}. Headline metric: {key} on the test clips "
        f"of each fold, mean ± std over folds. Chance: {_fmt(chance)} %; always predicting "
        f"the training folds' most frequent class: {_fmt(majority)} %.",
        "",
        f"| method | {key} (%) | vs chance (points) | UA / F1 (%) |",
        "| --- | --- | --- | --- |",
    ]
    second = "f1" if doc["task"] == "multi_label" else "ua"
    best_name, best = "", -1.0
    for name, m in doc["methods"].items():
        mean, std = m["mean"].get(key, float("nan")), m["std"].get(key, float("nan"))
        lines.append(
            f"| {name} | {_fmt(mean)} ± {_fmt(std)} | {100 * (mean - chance):+.2f} | "
            f"{_fmt(m['mean'].get(second, float('nan')))} |"
        )
        if mean > best:
            best_name, best = name, mean
    lines += [
        "",
        f"Best: **{best_name}** at {_fmt(best)} %, {100 * (best - chance):+.2f} points above "
        f"chance ({best / chance:.2f}x chance).",
    ]
    noise = noise_line(doc)
    if noise:
        lines.append(noise)
    if "probe" in doc["methods"] and "probe_untrained" in doc["methods"]:
        a = doc["methods"]["probe"]["mean"][key]
        b = doc["methods"]["probe_untrained"]["mean"][key]
        lines.append(
            f"Contrastive pretraining moves the probe from {_fmt(b)} % (untrained encoders) "
            f"to {_fmt(a)} % ({100 * (a - b):+.2f} points)."
        )
    if pretrain:
        lines += ["", "## Pretraining", ""]
        for k, v in pretrain.get("mean", {}).items():
            if v is not None:
                lines.append(f"- {k}: {v:.4g}")
    return "\n".join(lines) + "\n"


def noise_line(doc: Mapping[str, Any]) -> str:
    """How far apart two methods' means must be to differ: 2 standard errors of the
    difference (about 95 %), the runs (seeds x folds) taken as independent, with the median
    standard deviation of the methods."""
    key = doc["headline"]
    methods = doc["methods"].values()
    stds = [m["std"].get(key) for m in methods]
    stds = [x for x in stds if x is not None and x == x]
    n = min((len(m["folds"]) for m in methods), default=0)
    if not stds or n < 2:
        return ""
    gap = 2 * np.sqrt(2) * float(np.median(stds)) / np.sqrt(n)
    k = len(doc.get("seeds") or [0])
    runs = f"{n} runs ({k} seeds x {n // k} folds)"
    return (
        f"Mean ± std over {runs}. Two methods differ (about 95 %) when their means are more "
        f"than ~{100 * gap:.1f} points apart (2 standard errors of the difference, median "
        f"std); closer methods are within the noise."
    )


def finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (null): strict JSON for DVC."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_evaluation(
    out_dir: Path,
    doc: Mapping[str, Any],
    confusions: Mapping[str, Sequence[Sequence[str]]],
    pretrain: Mapping[str, Any] | None = None,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_json(out_dir / "evaluate.json", finite(doc))
    conf_dir = out_dir / "confusion"
    conf_dir.mkdir(exist_ok=True)
    for old in conf_dir.glob("*.csv"):
        if old.stem not in confusions:
            old.unlink()
    for name, rows in confusions.items():
        write_confusion(conf_dir / f"{name}.csv", rows)
    atomic_write_text(out_dir / "report.md", markdown_report(doc, pretrain))
