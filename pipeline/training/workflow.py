"""The ``pretrain`` and ``evaluate`` stages as library functions.

Outputs (``<root>/data/...``):

- ``models/<corpus>/pretrain/<scheme>/fold-<k>.pt``: per fold the pretrained encoder
  (state dict), its input shapes, standardisation constants and the parameters it was
  built with (``torch.load(weights_only=True)`` reads it).
- ``reports/<corpus>/pretrain.json`` (metrics), ``pretrain_curves/fold-<k>.csv`` (losses
  per epoch, plots).
- ``reports/<corpus>/evaluate.json`` (metrics), ``confusion/<method>.csv`` (plots),
  ``report.md``, ``predictions.csv`` (per test clip, :mod:`.predictions`).

Training state lives in ``<train.checkpoint_dir>/<corpus>/training`` (outside the DVC outs):
an interrupted stage resumes there, and a stage rerun with unchanged inputs and code reuses
finished runs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import progress as live
from ..config import Params, to_dict
from ..manifest import dump_json
from ..paths import Layout
from ..store.writer import atomic_write_text
from .checkpoint import Checkpointer, atomic_save, run_key
from .config import EvaluateConfig, PretrainConfig, TrainConfig
from .data import CorpusData, Fold
from .distributed import distributed
from .evaluate import Evaluator, model_params
from .loops.pretrain import pretrain_fold
from .metrics import one_class_labels, summarize
from .paper_cells import split_facts
from .predictions import predictions_of, write_predictions
from .report import confusion_rows, evaluation_summary, finite, write_evaluation

log = logging.getLogger(__name__)


def models_dir(root: Path, corpus: str, scheme: str) -> Path:
    return root / "data" / "models" / corpus / "pretrain" / scheme


def reports_dir(root: Path, corpus: str) -> Path:
    return root / "data" / "reports" / corpus


def checkpoint_dir(root: Path, cfg: TrainConfig, corpus: str) -> Path:
    return root / cfg.checkpoint_dir / corpus / "training"


def run_pretrain(params: Params, root: str | Path = ".") -> int:
    root = Path(root)
    tc: TrainConfig = params.section("train")
    pc: PretrainConfig = params.section("pretrain")
    ec: EvaluateConfig = params.section("evaluate")
    corpus = params.corpus.name
    out = models_dir(root, corpus, tc.scheme)
    with distributed(tc.device, tc.threads, tc.precision) as ctx, \
            live.TrainingProgress("pretrain", show=ctx.is_main) as bar:
        data = CorpusData(Layout(corpus, root=root), tc, ec.task, ec.multilabel_threshold)
        bar.expect(len(tc.run_seeds()) * len(data.folds()))
        per_fold, curves, written = {}, {}, set()
        timing: dict[str, dict[str, float]] = {}
        for seed in tc.run_seeds():
            tcs = replace(tc, seed=seed)
            data.cfg = tcs  # datasets draw their windows from the run's seed
            for fold in data.folds():
                run = f"{fold.number}{tc.run_suffix(seed)}"
                key = run_key(
                    stage="pretrain",
                    fold=[fold.train, fold.val, fold.test],
                    train=model_params(tcs),
                    pretrain=to_dict(pc),
                    world=ctx.world_size,
                    precision=ctx.precision.name,
                    features=data.feature_fingerprint(tc.modalities),
                )
                ckpt = Checkpointer(
                    checkpoint_dir(root, tc, corpus),
                    f"pretrain-fold{run}-{key}",
                    writer=ctx.is_main,
                    interval_s=tc.checkpoint_seconds,
                    sync=ctx.barrier,
                )
                t0 = time.perf_counter()
                bar.begin(f"fold {run}")
                res = pretrain_fold(data, fold, tcs, pc, ctx, ckpt)
                bar.end()
                _tally(timing, "pretrain", time.perf_counter() - t0, res.fit.epochs)
                per_fold[run] = res.metrics
                curves[run] = res.fit.history
                if ctx.is_main:
                    name = f"fold-{run}.pt"
                    atomic_save(res.payload(fold.number, tcs, pc), out / name)
                    written.add(name)
                log.info("pretrain fold %s: %s", run, json.dumps(res.metrics))
        if ctx.is_main:
            for old in out.glob("fold-*.pt"):
                if old.name not in written:
                    old.unlink()
            s = summarize(list(per_fold.values()))
            doc = {
                "scheme": tc.scheme,
                "modalities": list(tc.modalities),
                "loss": pc.loss,
                "seeds": list(tc.run_seeds()),
                "precision": ctx.precision.describe(),
                "mean": s["mean"],
                "std": s["std"],
                "folds": {str(k): v for k, v in per_fold.items()},
            }
            rep = reports_dir(root, corpus)
            dump_json(rep / "pretrain.json", finite(doc))
            write_curves(rep / "pretrain_curves", curves)
            write_timing(rep / "timing-pretrain.json", timing)
        ctx.barrier()
    return 0


def _tally(timing: dict[str, dict[str, float]], name: str, seconds: float, epochs: int) -> None:
    t = timing.setdefault(name, {"seconds": 0.0, "epochs": 0, "runs": 0})
    t["seconds"] += seconds
    t["epochs"] += int(epochs)
    t["runs"] += 1


def write_timing(path: Path, timing: dict[str, dict[str, float]]) -> None:
    """Wall time and epochs per method (not a DVC metric: it changes on every run). A run
    taken whole from a finished checkpoint counts its epochs but hardly any time."""
    for t in timing.values():
        t["seconds_per_epoch"] = t["seconds"] / t["epochs"] if t["epochs"] else float("nan")
    dump_json(path, finite(timing))


def write_curves(out: Path, per_fold: dict[str, list[dict]]) -> None:
    """One CSV per fold (epoch, train_loss, val_loss, lr) for DVC's line plots."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.csv"):
        old.unlink()
    cols = ["epoch", "train_loss", "val_loss", "lr"]
    for fold, rows in per_fold.items():
        lines = [",".join(cols)]
        lines += [",".join(f"{r.get(c, float('nan'))}" for c in cols) for r in rows]
        atomic_write_text(out / f"fold-{fold}.csv", "\n".join(lines) + "\n")


def majority_accuracy(data: CorpusData, fold: Fold) -> float:
    """Test accuracy of always predicting the most frequent class of the training clips
    (multi-label: always "absent", whose weighted accuracy is 0.5)."""
    if data.labels.multi_label:
        return 0.5
    train = [data.entries[c].label for c in fold.train if c in data.entries]
    test = [data.entries[c].label for c in fold.test if c in data.entries]
    if not train or not test:
        return float("nan")
    values, counts = np.unique(train, return_counts=True)
    return float(np.mean(np.asarray(test) == values[counts.argmax()]))


def run_evaluate(params: Params, root: str | Path = ".", paper: dict | None = None) -> int:
    """The evaluate stage; ``paper`` is a preset's paper section (``mer reproduce``), whose
    matching cell goes into ``evaluate.json``."""
    root = Path(root)
    tc: TrainConfig = params.section("train")
    ec: EvaluateConfig = params.section("evaluate")
    corpus = params.corpus.name
    with distributed(tc.device, tc.threads, tc.precision) as ctx, \
            live.TrainingProgress("evaluate", show=ctx.is_main) as bar:
        data = CorpusData(Layout(corpus, root=root), tc, ec.task, ec.multilabel_threshold)
        folds = data.folds()
        per_method: dict[str, dict[str, dict[str, float]]] = {}
        confusions: dict[str, list[list[str]]] = {}
        predictions = []
        timing: dict[str, dict[str, float]] = {}
        modalities: dict[str, tuple[str, ...]] = {}
        one_class: dict[tuple[str, str], set[str]] = {}
        for seed in tc.run_seeds():
            tcs = replace(tc, seed=seed)
            data.cfg = tcs
            ev = Evaluator(
                data,
                tcs,
                ec,
                ctx,
                models_dir(root, corpus, tc.scheme),
                checkpoint_dir(root, tc, corpus),
                tc.run_suffix(seed),
            )
            bar.expect(len(tc.run_seeds()) * len(list(ev.runs())) * len(folds))
            for name, method, mods in ev.runs():
                for fold in folds:
                    run = f"{fold.number}{ev.run_suffix}"
                    t0 = time.perf_counter()
                    bar.begin(f"{name} fold {run}")
                    outcome = ev.run(name, method, mods, fold)
                    bar.end()
                    _tally(timing, name, time.perf_counter() - t0, outcome.fit.get("epochs", 0))
                    per_method.setdefault(name, {})[run] = outcome.metrics
                    modalities[name] = mods
                    if data.labels.multi_label:
                        for e, how in one_class_labels(outcome.y_true, data.labels.names).items():
                            one_class.setdefault((e, how), set()).add(str(fold.number))
                    confusions.setdefault(name, []).extend(
                        confusion_rows(data.labels, outcome.y_true, outcome.y_pred)
                    )
                    predictions += predictions_of(data.labels, name, run, fold.number, seed,
                                                  outcome.clip_ids, outcome.y_true,
                                                  outcome.y_pred)
                    log.info("%s fold %s: %s", name, run, _short(outcome.metrics))
        if ctx.is_main:
            reference = {f.number: majority_accuracy(data, f) for f in folds}
            manifest = json.loads((data.layout.folds_dir / f"{tc.scheme}.json").read_text())
            split = split_facts(manifest)
            if split["leaky"]:
                split["leaked_test_clips"] = leaked_test_clips(data, folds, params)
            notes = evaluation_notes(params, modalities, split, one_class)
            doc = evaluation_summary(
                corpus, tc.scheme, data.labels, per_method, reference, tc.run_seeds(),
                modalities, paper, split, notes,
            )  # fmt: skip
            doc["precision"] = ctx.precision.describe()
            rep = reports_dir(root, corpus)
            pre = rep / "pretrain.json"
            pretrain = json.loads(pre.read_text()) if pre.exists() else None
            write_evaluation(rep, doc, confusions, pretrain)
            write_predictions(rep / "predictions.csv", predictions)
            write_timing(rep / "timing-evaluate.json", timing)
        ctx.barrier()
    return 0


def leaked_test_clips(data: CorpusData, folds: list[Fold], params: Params) -> list[int]:
    """[test clips that have a clip of their take in training, test clips], over the folds
    (a leaky split; the take is the adapter's ``together`` column)."""
    from ..corpora import ADAPTERS

    column = getattr(ADAPTERS.get(params.corpus.adapter), "together", "")
    take = {c: e.meta.get(column) for c, e in data.entries.items()} if column else {}
    leaked = total = 0
    for f in folds:
        trained = {take.get(c) for c in f.train} - {None}
        total += len(f.test)
        leaked += sum(take.get(c) in trained for c in f.test)
    return [leaked, total]


def evaluation_notes(
    params: Params,
    modalities: dict[str, tuple[str, ...]],
    split: dict,
    one_class: dict[tuple[str, str], set[str]],
) -> list[str]:
    """What a reader must know before trusting the numbers, in words (the report's notes)."""
    tc: TrainConfig = params.section("train")
    pc: PretrainConfig = params.section("pretrain")
    notes = []
    if split.get("leaky"):
        leaked, total = split.get("leaked_test_clips") or [None, None]
        count = "" if leaked is None else f" ({leaked} of {total} test clips here)"
        notes.append(
            f"The folds `{split['scheme']}` are leaky on purpose: the clips of one take may be "
            f"in training and in test, so test clips can have near-copies in training"
            f"{count} and every score here is inflated."
        )
    if any("faces" in m for m in modalities.values()) and not tc.r2plus1d.weights:
        notes.append(
            "Faces: the R(2+1)D-18 backbone trained from scratch (train.r2plus1d.weights is "
            "empty); the paper's was pretrained on Kinetics-400."
        )
    if "probe" in modalities and pc.clips == "all":
        notes.append(
            "The encoder was pretrained on every clip, the test clips included "
            "(pretrain.clips: all, as the MPUC code's unsupervised mode does)."
        )
    for (emotion, how), folds in sorted(one_class.items()):
        which = ", ".join(sorted(folds, key=int))
        notes.append(
            f"w_acc_{emotion} is plain accuracy on fold {which}: the test part has "
            f"{'no' if how == 'no' else 'only'} {emotion} clips, where (tp·n/p + tn)/(2n) is "
            f"undefined."
        )
    return notes


def _short(metrics: dict[str, float]) -> str:
    keys = ("accuracy", "ua", "w_acc", "f1")
    return ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics)
