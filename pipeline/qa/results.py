"""The results half of the QA page: what the trainer wrote under ``data/reports/<corpus>/``,
shown as a researcher would show it.

1. Headline: method x metric, mean ± std over the runs (folds x seeds) of ``evaluate.json``,
   the paper's number beside it when the run says which one (``paper``), and the
   statistics the evaluation wrote (``comparisons``) as written: this page computes no
   significance of its own.
2. Per fold (each run's headline metric per method) and per speaker (from
   ``predictions.csv``: each speaker's test clips, pooled over runs; past 40 speakers the 20
   lowest and 20 highest, said on the page).
3. Confusion matrices per method in % of each true class (``confusion/<method>.csv``).
4. Training curves: each pretraining run's training and validation loss per epoch
   (``pretrain_curves/``), and cross-modal retrieval top-1 per run (``pretrain.json``: it is
   measured once per run, on the best epoch's encoder).
5. Misclassified clips: per method up to :data:`EXAMPLES` clips wrong in the most runs, each
   with a face crop from the faces shards (its middle frame with a face) and its transcript.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..manifest import ManifestEntry
from ..store import FeatureReader, ShardError
from .page import Page, plt

EXAMPLES = 3  # misclassified clips shown per method
SPEAKERS = 40  # speakers listed in full up to this many
METRIC_NAMES = {
    "accuracy": "accuracy (WA)", "ua": "UA", "f1_weighted": "weighted F1",
    "w_acc": "weighted accuracy", "f1": "F1",
}
METHOD_TITLES = {
    "probe": "MPUC: probe on the pretrained encoders",
    "probe_untrained": "MPUC: probe on untrained encoders",
    "late_fusion": "late fusion (supervised)",
    "attention": "attention fusion (supervised)",
    "qian_han": "Qian & Han: contrastive regularization",
    "qian_han_baseline": "Qian & Han: baseline (alpha 0)",
}


def method_title(name: str) -> str:
    if name.startswith("unimodal_"):
        return f"unimodal {name[len('unimodal_'):]} (supervised)"
    return METHOD_TITLES.get(name, name)


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def headline_section(rep: Page, doc: dict[str, Any]) -> None:
    methods = doc.get("methods") or {}
    if not methods:
        return
    multi = doc.get("task") == "multi_label"
    metrics = ["w_acc", "f1"] if multi else ["accuracy", "ua", "f1_weighted"]
    key = doc.get("headline", metrics[0])
    rep.h2("Results")
    seeds = doc.get("seeds") or []
    runs = {len(m.get("folds", {})) for m in methods.values()}
    rep.p(
        f"Test clips of each fold of {doc.get('scheme', '?')}; mean ± std (%) over "
        f"{'/'.join(map(str, sorted(runs)))} runs ({max(1, len(seeds))} seed(s) x folds). "
        f"Headline metric: {METRIC_NAMES.get(key, key)}. Chance {_pct(doc.get('chance'))} %, "
        f"always the training folds' most frequent class {_pct(doc.get('majority'))} %. "
        f"Classes: {', '.join(doc.get('classes', []))}."
    )
    paper = doc.get("paper")
    rows = []
    for name, m in methods.items():
        row = {"method": method_title(name), "id": name}
        for k in metrics:
            row[METRIC_NAMES[k]] = f"{_pct(m['mean'].get(k))} ± {_pct(m['std'].get(k))}"
        row["runs"] = len(m.get("folds", {}))
        rows.append(row)
    if isinstance(paper, dict) and paper.get("value") is not None:
        col = METRIC_NAMES.get(paper.get("metric", key), paper.get("metric", key))
        value = paper["value"]
        shown = f"{value:.2f}" if isinstance(value, (int, float)) else str(value)
        rows.append({"method": f"paper: {paper.get('cell', '')}", "id": "",
                     col: f"{shown} (paper)"})
        rep.table(rows)
        rep.p(f"Paper's number: {shown} % {col} for {paper.get('cell', '')} "
              f"({paper.get('source', 'source not given')}).", note=True)
    else:
        rep.table(rows)
        reason = doc.get("paper_reason")  # evaluate.json: paper null, the reason beside it
        if reason:
            rep.p(f"No paper number beside these: {reason}.", note=True)
    comparisons = doc.get("comparisons")
    if comparisons:
        rep.h3("Statistics the evaluation reports")
        rep.p("As written by the evaluation (evaluate.json, comparisons); differences in "
              "points of the metric, with their confidence interval and test.", note=True)
        rep.table([{
            "method": method_title(c.get("method", "")),
            "baseline": method_title(c.get("baseline", "")),
            "metric": METRIC_NAMES.get(c.get("metric", ""), c.get("metric", "")),
            "folds": c.get("n_folds"), "runs": c.get("n_runs"),
            "mean difference": _pts(c.get("mean_diff")),
            "CI": f"[{_pts(c.get('ci_low'))}, {_pts(c.get('ci_high'))}]",
            "p": c.get("p"), "test": c.get("test"), "verdict": c.get("verdict"),
        } for c in comparisons])
    elif comparisons is not None:
        rep.p("The evaluation reports no comparison between methods.", note=True)


def _pts(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):+.2f}"


def per_fold_section(rep: Page, doc: dict[str, Any]) -> None:
    methods = doc.get("methods") or {}
    key = doc.get("headline", "accuracy")
    runs = sorted({r for m in methods.values() for r in m.get("folds", {})},
                  key=lambda r: [int(x) if x.isdigit() else x for x in r.replace("-", " ").split()])
    if not runs:
        return
    rep.h2("Per fold")
    rep.p(f"{METRIC_NAMES.get(key, key)} (%) on each run's test clips (run = fold, with its "
          f"seed when there are several).", note=True)
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run}
        for name, m in methods.items():
            row[name] = _pct(m.get("folds", {}).get(run, {}).get(key))
        rows.append(row)
    rep.table(rows)


def per_speaker_section(rep: Page, preds: list[dict[str, str]],
                        entries: dict[str, ManifestEntry], multi: bool,
                        order: list[str] = ()) -> None:
    if not preds:
        return
    hit: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in preds:
        e = entries.get(p["clip_id"])
        speaker = e.speaker if e is not None else "(not in the manifest)"
        hit[speaker][p["method"]].append(_agreement(p["actual"], p["predicted"], multi))
    methods = list(dict.fromkeys([*order, *(p["method"] for p in preds)]))
    methods = [m for m in methods if any(m in per for per in hit.values())]
    rows = []
    for speaker, per in hit.items():
        row: dict[str, Any] = {"speaker": speaker,
                               "test clips": max(len(v) for v in per.values())}
        for m in methods:
            row[m] = _pct(float(np.mean(per[m]))) if per.get(m) else ""
        row["_mean"] = float(np.mean([np.mean(v) for v in per.values()]))
        rows.append(row)
    rows.sort(key=lambda r: (r["_mean"], r["speaker"]))
    rep.h2("Per speaker")
    what = ("share of emotions decided right" if multi else "accuracy")
    note = (f"{what} (%) on each speaker's test clips, pooled over the runs (predictions.csv)"
            f"; 'test clips' counts clip tests over runs. Sorted from the lowest mean.")
    if len(rows) > SPEAKERS:
        rows = rows[: SPEAKERS // 2] + rows[-SPEAKERS // 2:]
        note += (f" Summarised: the {SPEAKERS // 2} lowest and {SPEAKERS // 2} highest of "
                 f"{len(hit)} speakers.")
    rep.p(note, note=True)
    rep.table([{k: v for k, v in r.items() if k != "_mean"} for r in rows])


def _agreement(actual: str, predicted: str, multi: bool) -> float:
    if not multi:
        return float(actual == predicted)
    a, p = set(filter(None, actual.split(";"))), set(filter(None, predicted.split(";")))
    return 1.0 - len(a ^ p) / max(1, len(a | p)) if (a or p) else 1.0


def confusion_section(rep: Page, reports_dir: Path, classes: list[str],
                      order: list[str] = ()) -> None:
    """``order``: the methods in the order of the headline table (others after them)."""
    files = sorted((reports_dir / "confusion").glob("*.csv")) if (
        reports_dir / "confusion").is_dir() else []  # fmt: skip
    rank = {m: i for i, m in enumerate(order)}
    files.sort(key=lambda f: (rank.get(f.stem, len(rank)), f.stem))
    drawn = False
    for cf in files:
        rows = _read_csv(cf)
        if not rows or not {"actual", "predicted"} <= set(rows[0]):
            continue
        found = sorted({r["actual"] for r in rows} | {r["predicted"] for r in rows})
        labels = [c for c in classes if c in found] + [c for c in found if c not in classes]
        idx = {lab: i for i, lab in enumerate(labels)}
        mat = np.zeros((len(labels), len(labels)))
        for r in rows:
            mat[idx[r["actual"]], idx[r["predicted"]]] += 1
        support = mat.sum(1, keepdims=True)
        pct = np.divide(100 * mat, support, out=np.zeros_like(mat), where=support > 0)
        if not drawn:
            rep.h2("Confusion matrices")
            rep.p("Each row is a true class, in % of its test clips (all folds and seeds "
                  "pooled); the diagonal is each class's recall.", note=True)
            drawn = True
        p = plt()
        size = max(3.6, 0.55 * len(labels) + 1.8)
        fig, ax = p.subplots(figsize=(size + 0.9, size))
        im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        if len(labels) <= 12:
            for i in range(len(labels)):
                for j in range(len(labels)):
                    ax.text(j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=8,
                            color="white" if pct[i, j] > 60 else "black")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(method_title(cf.stem), fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label("% of the true class")
        n = int(mat.sum())
        rep.figure(fig, f"confusion_{cf.stem}",
                   f"{method_title(cf.stem)} ({cf.stem}): {n} test decisions, recall "
                   f"{np.trace(mat) / n:.1%} overall" if n else cf.stem, compact=True)


def curves_section(rep: Page, reports_dir: Path) -> None:
    curve_dir = reports_dir / "pretrain_curves"
    files = sorted(curve_dir.glob("*.csv")) if curve_dir.is_dir() else []
    pre = reports_dir / "pretrain.json"
    doc = json.loads(pre.read_text()) if pre.exists() else {}
    if not files and not doc:
        return
    rep.h2("Training curves")
    p = plt()
    if files:
        fig, axes = p.subplots(1, 2, figsize=(11, 3.4))
        cmap = p.get_cmap("tab10")
        for i, f in enumerate(files):
            rows = _read_csv(f)
            run = f.stem.removeprefix("fold-")
            epoch = [int(float(r["epoch"])) for r in rows]
            for ax, col in zip(axes, ("train_loss", "val_loss"), strict=True):
                y = [float(r[col]) if r.get(col) not in (None, "", "nan") else np.nan
                     for r in rows]
                ax.plot(epoch, y, color=cmap(i % 10), lw=1, label=f"run {run}")
        from matplotlib.ticker import MaxNLocator

        for ax, what in zip(axes, ("training", "validation"), strict=True):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"pretraining: {what} contrastive loss")
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
        if len(files) <= 12:
            axes[1].legend(fontsize=7, ncol=2)
        rep.figure(fig, "pretrain_loss",
                   f"Contrastive loss per epoch of each pretraining run ({len(files)} runs, "
                   f"pretrain_curves/); the encoder kept is the one of the best validation "
                   f"epoch.")
    folds = doc.get("folds") or {}
    if folds:
        runs = list(folds)
        top = [folds[r].get("top1_mean") for r in runs]
        chance = next((folds[r].get("top1_chance") for r in runs
                       if folds[r].get("top1_chance") is not None), None)
        if any(t is not None for t in top):
            fig, ax = p.subplots(figsize=(max(5, 0.45 * len(runs) + 2), 3))
            ax.bar(range(len(runs)), [np.nan if t is None else 100 * t for t in top],
                   color="#4a7ab5")
            if chance is not None:
                ax.axhline(100 * chance, color="#b42318", ls="--", lw=1, label="chance")
                ax.legend(fontsize=8)
            ax.set_xticks(range(len(runs)), runs, rotation=45, ha="right", fontsize=8)
            ax.set_title("cross-modal retrieval top-1 on the validation clips")
            ax.set_xlabel("run (fold, seed)")
            ax.set_ylabel("top-1 (%)")
            rep.figure(fig, "pretrain_retrieval",
                       "Share of validation clips whose other-modality projection is the "
                       "nearest, mean of both directions; measured once per run, on the best "
                       "epoch's encoder (training does not record it per epoch).")
        rep.table([{"run": r, "epochs": v.get("epochs"), "best epoch": v.get("best_epoch"),
                    "val loss": v.get("val_loss"), "top-1 (%)": _pct(v.get("top1_mean")),
                    "chance (%)": _pct(v.get("top1_chance"))} for r, v in folds.items()])


def examples_section(rep: Page, preds: list[dict[str, str]],
                     entries: dict[str, ManifestEntry], faces_dir: Path) -> None:
    wrong: dict[str, dict[str, list[dict[str, str]]]] = defaultdict(lambda: defaultdict(list))
    tests: dict[tuple[str, str], int] = defaultdict(int)
    for p in preds:
        tests[(p["method"], p["clip_id"])] += 1
        if p["actual"] != p["predicted"]:
            wrong[p["method"]][p["clip_id"]].append(p)
    if not preds:
        return
    rep.h2("Misclassified clips")
    have_faces = (faces_dir / "index.json").exists()
    rep.p(f"Per method, up to {EXAMPLES} test clips wrong in the most runs"
          + (", with a face crop (the middle frame with a face)" if have_faces else
             "; no faces shards, so no face crops") + " and the transcript.", note=True)
    reader = FeatureReader(faces_dir) if have_faces else None
    try:
        for method in dict.fromkeys(p["method"] for p in preds):
            clips = wrong.get(method, {})
            picked = sorted(clips, key=lambda c: (-len(clips[c]), c))[:EXAMPLES]
            rep.h3(method_title(method))
            if not picked:
                rep.p("No test clip misclassified.", note=True)
                continue
            cards = []
            for cid in picked:
                e = entries.get(cid)
                seen = clips[cid]
                preds_txt = ", ".join(sorted({p["predicted"] or "(none)" for p in seen}))
                said = e.transcript if e is not None and e.transcript else "(no transcript)"
                img = _thumbnail(rep, reader, cid) if reader is not None else ""
                cards.append(
                    "<div class='example'>" + img
                    + f"<div><strong>{_esc(cid)}</strong> ({_esc(e.speaker if e else '?')})</div>"
                    + f"<div>true: <span class='good'>{_esc(seen[0]['actual'] or '(none)')}"
                    + f"</span>; predicted: <span class='bad'>{_esc(preds_txt)}</span> "
                    + f"(wrong in {len(seen)} of {tests[(method, cid)]} runs)</div>"
                    + f"<div class='note'>{_esc(said)}</div></div>"
                )
            rep.raw("<div class='examples'>" + "".join(cards) + "</div>")
    finally:
        if reader is not None:
            reader.close()


def _esc(text: str) -> str:
    import html

    return html.escape(str(text))


def _thumbnail(rep: Page, reader: FeatureReader, clip_id: str) -> str:
    path = rep.out / f"face_{clip_id}.png"
    if not path.exists():
        try:
            feats = reader.read(clip_id, arrays=("crops",))
        except (KeyError, ShardError):
            return "<div class='note'>(no face shard row)</div>"
        rows = np.nonzero(feats.valid)[0]
        if not len(rows):
            return "<div class='note'>(no frame with a face)</div>"
        plt().imsave(path, feats.arrays["crops"][rows[len(rows) // 2]])
    rep.figures.append(path.name)
    return f"<img src='{_esc(path.name)}' alt='face of {_esc(clip_id)}'>"


def read_predictions(reports_dir: Path) -> list[dict[str, str]]:
    path = reports_dir / "predictions.csv"
    return _read_csv(path) if path.exists() else []
