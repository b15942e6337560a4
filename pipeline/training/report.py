"""Reports under ``data/reports/<corpus>/``: DVC metrics (JSON), confusion plots (CSV of
actual/predicted for DVC's confusion template) and a short human-readable summary.

``evaluate.json`` holds, beside each method's mean, std and per-run metrics: the modalities
each result was trained on, ``comparisons`` (each method against its baseline, paired over
folds: :mod:`.stats`), ``paper`` (the matching cell of the paper's table, or null and
``paper_reason``: :mod:`.paper_cells`) and ``notes`` (what a reader must know to trust the
numbers: faces trained from scratch, a leaky split, a w-ACC that fell back to accuracy).
"""

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
from .paper_cells import headline_cell, match_cells
from .stats import comparisons


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


def second_metric(task: str) -> str:
    return "f1" if task == "multi_label" else "ua"


def evaluation_summary(
    corpus: str,
    scheme: str,
    labels: LabelSpace,
    per_method: Mapping[str, Mapping[str, Mapping[str, float]]],
    reference: Mapping[int, float],
    seeds: Sequence[int] = (),
    modalities: Mapping[str, Sequence[str]] | None = None,
    paper: Mapping[str, Any] | None = None,
    split: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The metrics document: per method mean, std, per-run values and modalities; chance
    levels; the paired comparisons; the paper cell that matches (``paper``, a preset's paper
    section; ``split``, :func:`.paper_cells.split_facts` of the fold manifest); notes."""
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
    modalities = modalities or {}
    for name, folds in per_method.items():
        s = summarize(list(folds.values()))
        doc["methods"][name] = {
            "mean": s["mean"],
            "std": s["std"],
            "folds": {str(k): _fold_keys(v) for k, v in folds.items()},
            "modalities": list(modalities.get(name, ())),
        }
    doc["split"] = dict(split or {})
    doc["comparisons"] = comparisons(doc["methods"], [key, second_metric(doc["task"])])
    matches = match_cells(paper, modalities, (split or {}).get("actor_split"))
    cell, why = headline_cell(paper, matches)
    doc["paper"] = cell
    if cell is None:
        doc["paper_reason"] = why
    doc["notes"] = list(notes)
    return doc


def markdown_report(doc: Mapping[str, Any], pretrain: Mapping[str, Any] | None) -> str:
    key, chance, majority = doc["headline"], doc["chance"], doc["majority"]
    lines = [
        f"# Evaluation: {doc['corpus']}, folds `{doc['scheme']}`",
        "",
        f"Classes: {', '.join(doc['classes'])}. Headline metric: {key} on the test clips "
        f"of each fold, mean ± std over {_runs(doc)}. Chance: {_fmt(chance)} %; always "
        f"predicting the training folds' most frequent class: {_fmt(majority)} %.",
        "",
        f"| method | {key} (%) | vs chance (points) | UA / F1 (%) |",
        "| --- | --- | --- | --- |",
    ]
    second = second_metric(doc["task"])
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
    lines += paper_lines(doc)
    lines += comparison_lines(doc.get("comparisons") or [])
    if doc.get("notes"):
        lines += ["", "## Read with care", ""] + [f"- {n}" for n in doc["notes"]]
    if pretrain:
        lines += ["", "## Pretraining", ""]
        for k, v in pretrain.get("mean", {}).items():
            if v is not None:
                lines.append(f"- {k}: {v:.4g}")
    return "\n".join(lines) + "\n"


def _runs(doc: Mapping[str, Any]) -> str:
    n = min((len(m["folds"]) for m in doc["methods"].values()), default=0)
    k = len(doc.get("seeds") or [0])
    return f"{n} runs ({k} seeds x {n // k} folds)" if k > 1 else f"{n} fold(s)"


def paper_lines(doc: Mapping[str, Any]) -> list[str]:
    """The paper cell this run is compared with, or none and why."""
    cell = doc.get("paper")
    if cell:
        return ["", f"Paper: {cell['source']}, \u201c{cell['cell']}\u201d: {cell['result']} "
                    f"{cell['value']:.2f} % {cell['metric']}."]  # fmt: skip
    reason = doc.get("paper_reason")
    return ["", f"Paper: none ({reason})."] if reason else []


def _num(x: float | None, fmt: str = "+.2f") -> str:
    return "—" if x is None else format(x, fmt)


def comparison_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each method against its baseline, as :mod:`.stats` measured it."""
    if not rows:
        return []
    if all(r["n_folds"] < 2 for r in rows):  # a smoke run, a held-out split
        lines = [
            "",
            "## Each method against its baseline",
            "",
            "One fold: there is no spread between folds to judge a difference by, so these "
            "differences (percentage points, paired over the same test clips) are not tested.",
            "",
            "| method − baseline | metric | runs | difference |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {r['method']} − {r['baseline']} | {r['metric']} | {r['n_runs']} | "
                  f"{_num(r['mean_diff'])} |" for r in rows]  # fmt: skip
        return lines
    lines = [
        "",
        "## Each method against its baseline",
        "",
        "Paired: both methods on the same test clips of each (seed, fold) run; the seeds of "
        "a fold are averaged, then Student's t over the folds (95 % interval, two-sided p). "
        "Differences in percentage points.",
        "",
        "| method − baseline | metric | folds (runs) | difference | 95 % interval | p | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ci = "—" if r["ci_low"] is None else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
        p = "—" if r["p"] is None else (f"{r['p']:.3f}" if r["p"] >= 0.001 else "< 0.001")
        lines.append(
            f"| {r['method']} − {r['baseline']} | {r['metric']} | {r['n_folds']} "
            f"({r['n_runs']}) | {_num(r['mean_diff'])} | {ci} | {p} | {r['verdict']} |"
        )
    return lines


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
