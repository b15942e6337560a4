"""Run the evaluation methods over the folds of a fold manifest and collect metrics.

Methods (``evaluate.methods``):

- ``probe``: MPUC. The pretrained encoder of the fold (frozen), its backbones' 512-d
  features concatenated, an fc-ReLU-fc classifier.
- ``probe_untrained``: the same classifier on encoders that were never trained: what the
  pretraining adds.
- ``unimodal`` (one result per modality), ``late_fusion``, ``attention``: the MPUC paper's
  supervised baselines, trained end to end.
- ``qian_han``: CNN + LSTM model-level fusion with contrastive regularization (alpha);
  ``qian_han_baseline``: the same with alpha = 0 (no discriminator).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import build, to_dict
from ..hashing import file_sha256
from ..models.factory import build_branches, build_encoder
from .checkpoint import Checkpointer, load, run_key
from .config import EvaluateConfig, InputConfig, OptimConfig, QianHanConfig, TrainConfig
from .data import CorpusData, Fold
from .dataset import WindowDataset, fit_standardizer
from .distributed import DistContext
from .loops.classify import metrics_for
from .loops.fit import fit
from .loops.probe import extract_features, probe_predict, train_probe
from .loops.supervised import FusionClassifier, QianHanModel, SupervisedTask

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    metrics: dict[str, float]
    y_true: np.ndarray
    y_pred: np.ndarray
    fit: dict[str, float] = field(default_factory=dict)
    clip_ids: tuple[str, ...] = ()  # the test clips, in the order of y_true and y_pred


@dataclass
class Evaluator:
    data: CorpusData
    train_cfg: TrainConfig
    cfg: EvaluateConfig
    ctx: DistContext
    models_dir: Path  # where the pretrain stage wrote fold-<k>.pt
    checkpoint_dir: Path
    run_suffix: str = ""  # this seed's file suffix (TrainConfig.run_suffix)

    def runs(self) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(result name, method, modalities) for every configured method."""
        mods = tuple(self.train_cfg.modalities)
        for method in self.cfg.methods:
            if method == "unimodal":
                for m in mods:
                    yield f"unimodal_{m}", method, (m,)
            elif method.startswith("qian_han"):
                yield method, method, (self.cfg.qian_han.audio, self.cfg.qian_han.text)
            else:
                yield method, method, mods

    def checkpointer(
        self, name: str, fold: Fold, mods: tuple[str, ...], **parts: Any
    ) -> Checkpointer:
        key = run_key(
            stage="evaluate",
            name=name,
            fold=[fold.train, fold.val, fold.test],
            train=model_params(self.train_cfg),
            world=self.ctx.world_size,
            precision=self.ctx.precision.name,
            features=self.data.feature_fingerprint(mods),
            **parts,
        )
        return Checkpointer(
            self.checkpoint_dir,
            f"evaluate-{name}-fold{fold.number}-{key}",
            writer=self.ctx.is_main,
            interval_s=self.train_cfg.checkpoint_seconds,
            sync=self.ctx.barrier,
        )

    def run(self, name: str, method: str, mods: tuple[str, ...], fold: Fold) -> FoldOutcome:
        if method in ("probe", "probe_untrained"):
            return self._probe(name, method, mods, fold)
        task, optim, test_ds = self.supervised_task(method, mods, fold)
        return self._fit_supervised(name, task, mods, fold, optim, test_ds)

    def supervised_task(
        self, method: str, mods: tuple[str, ...], fold: Fold
    ) -> tuple[SupervisedTask, OptimConfig, WindowDataset]:
        """An end-to-end method's task on the fold, untrained, with its optimiser settings
        and test clips (``run`` trains it; the benchmarks time its steps)."""
        if method.startswith("qian_han"):
            return self._qian_han(method, fold)
        return self._supervised(method, mods, fold)

    # -- MPUC linear evaluation ----------------------------------------------------------
    def _probe(self, name: str, method: str, mods: tuple[str, ...], fold: Fold) -> FoldOutcome:
        data, cfg = self.data, self.train_cfg
        sets = {s: data.dataset(getattr(fold, s), mods) for s in ("train", "val", "test")}
        token: dict[str, Any] = {}
        if method == "probe":
            path = self.models_dir / f"fold-{fold.number}{self.run_suffix}.pt"
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: no pretrained encoder for fold {fold.number}; run the pretrain "
                    f"stage (dvc repro pretrain) with the same train.scheme"
                )
            payload = load(path)
            if list(payload["modalities"]) != list(mods):
                raise ValueError(
                    f"{path} encodes {payload['modalities']} but train.modalities is "
                    f"{list(mods)}; rerun the pretrain stage"
                )
            saved = build(TrainConfig, payload["train"], "train")
            shapes = {m: tuple(s) for m, s in payload["shapes"].items()}
            stats = {m: tuple(s) for m, s in payload["stats"].items()}
            encoder = build_encoder(payload["modalities"], shapes, saved, stats)
            encoder.load_state_dict(payload["encoder"])
            token["encoder"] = file_sha256(path)
        else:
            stats = fit_standardizer(sets["train"], mods)
            torch.manual_seed(cfg.seed)
            encoder = build_encoder(mods, sets["train"].input_shapes(), cfg, stats)
        encoder.to(self.ctx.device)
        feats = {s: extract_features(encoder.branches, ds, self.ctx) for s, ds in sets.items()}
        ckpt = self.checkpointer(name, fold, mods, probe=to_dict(self.cfg.probe), **token)
        model, result = train_probe(
            (feats["train"], sets["train"].targets),
            (feats["val"], sets["val"].targets),
            data.labels,
            self.cfg.probe,
            cfg.seed,
            self.ctx.device,
            ckpt,
        )
        preds = probe_predict(model, feats["test"], data.labels.multi_label, self.ctx.device)
        return self._outcome(sets["test"].targets, preds, result.summary(),
                             sets["test"].clip_ids)

    # -- supervised baselines ------------------------------------------------------------
    def _supervised(self, method: str, mods: tuple[str, ...], fold: Fold):
        cfg = self.train_cfg
        if method == "unimodal":
            optim = self.cfg.unimodal_optim(mods[0])
        else:
            optim = self.cfg.attention.optim if method == "attention" else getattr(self.cfg, method)
        train_ds = self.data.dataset(fold.train, mods, random_windows=True)
        stats = fit_standardizer(train_ds, mods)
        torch.manual_seed(cfg.seed)
        branches = build_branches(mods, train_ds.input_shapes(), cfg, stats, cfg.feature_dim)
        model = FusionClassifier(
            branches,
            len(self.data.labels.names),
            cfg.feature_dim,  # "two fc layers with a ReLU"; the width is not given
            "attention" if method == "attention" else "concat",
            self.cfg.attention.heads,
        )
        return self._task(model, mods, fold, optim, train_ds, None)

    def _qian_han(self, method: str, fold: Fold):
        qh, cfg = self.cfg.qian_han, self.train_cfg
        mods = (qh.audio, qh.text)
        alpha = qh.alpha if method == "qian_han" else 0.0
        inputs = segment_inputs(cfg, qh)
        train_ds = self.data.dataset(
            fold.train,
            mods,
            window_seconds=qh.window_seconds,
            random_windows=qh.window_seconds > 0,
            inputs=inputs,
        )
        stats = fit_standardizer(train_ds, mods)
        torch.manual_seed(cfg.seed)
        branches = build_branches(
            mods,
            train_ds.input_shapes(),
            cfg,
            stats,
            None,
            backbones={qh.audio: "spec_cnn", qh.text: "lstm"},
        )
        model = QianHanModel(
            branches[qh.audio],
            branches[qh.text],
            len(self.data.labels.names),
            qh.discriminator_hidden,
            qh.dropout,
            with_discriminator=alpha > 0,
            text_dropout=qh.text_dropout,
        )
        extra = (qh.audio, qh.text, alpha, qh.negatives)
        return self._task(model, mods, fold, qh.optim, train_ds, extra, qh.window_seconds, inputs)

    def _task(
        self,
        model,
        mods,
        fold,
        optim,
        train_ds,
        qian_han,
        window_seconds=None,
        inputs=None,
    ) -> tuple[SupervisedTask, OptimConfig, WindowDataset]:
        val_ds = self.data.dataset(fold.val, mods, window_seconds=window_seconds, inputs=inputs)
        test_ds = self.data.dataset(fold.test, mods, window_seconds=window_seconds, inputs=inputs)
        task = SupervisedTask(
            model, train_ds, val_ds, self.data.labels, optim, self.train_cfg, self.ctx, qian_han
        )
        return task, optim, test_ds

    def _fit_supervised(self, name, task, mods, fold, optim, test_ds) -> FoldOutcome:
        ckpt = self.checkpointer(
            name,
            fold,
            mods,
            optim=to_dict(optim),
            qian_han=to_dict(self.cfg.qian_han),
            heads=self.cfg.attention.heads,
        )
        result = fit(task, optim, self.train_cfg.seed, ckpt, f"{name} fold {fold.number}")
        return self._outcome(test_ds.targets, task.predict(test_ds), result.summary(),
                             test_ds.clip_ids)

    def _outcome(
        self, y_true: np.ndarray, y_pred: np.ndarray, fit_summary, clip_ids=()
    ) -> FoldOutcome:
        metrics = metrics_for(self.data.labels, y_true, y_pred)
        return FoldOutcome(metrics, y_true, y_pred, fit_summary, tuple(clip_ids))


def segment_inputs(cfg: TrainConfig, qh: QianHanConfig) -> dict[str, InputConfig]:
    """The CNN's input for ``qian_han.segments``: the first ~1 s segment (steps 1), or up to
    ``max_segments`` segments in order, which the CNN pools (masked mean of its outputs)."""
    steps = 1 if qh.segments == "first" else qh.max_segments
    return {qh.audio: replace(cfg.input(qh.audio), steps=steps, mode="sequence")}


def model_params(cfg: TrainConfig) -> dict[str, Any]:
    """The parts of ``train`` that define a model and its data (not where or how it runs)."""
    d = to_dict(
        replace(
            cfg,
            folds=(),
            seeds=(),
            num_workers=0,
            prefetch_factor=2,
            threads=0,
            device="auto",
            cache_clips=False,
        )
    )
    for k in ("checkpoint_dir", "checkpoint_seconds"):
        d.pop(k)
    return d
