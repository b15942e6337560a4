"""MPUC pretraining of one fold: modality-pairwise contrastive learning without labels.

Training clips only (``pretrain.clips: train``); two random windows per clip; the loss of
``pretrain.loss`` on the projections; early stopping on the loss of the validation clips
(fixed random windows, so the value is comparable from epoch to epoch). The result is the
encoder (backbones + projection heads) and what it needs to be rebuilt: modality input
shapes and standardisation constants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from ...config import to_dict
from ...models.factory import MultiModalEncoder, build_encoder
from ..checkpoint import Checkpointer
from ..config import PretrainConfig, TrainConfig
from ..data import CorpusData, Fold
from ..dataset import WindowDataset, fit_standardizer
from ..distributed import DistContext, gather_batch, sum_over_ranks, wrap
from ..losses import pairwise_contrastive_loss, pairwise_supcon_loss
from .common import cat_views, eval_loader, make_loader, split_views, to_device, to_device_model
from .fit import FitResult, fit

log = logging.getLogger(__name__)


def contrastive_loss(
    projections: dict[str, torch.Tensor], labels: torch.Tensor, cfg: PretrainConfig
) -> torch.Tensor:
    """``pretrain.loss`` on projections (B, V, d) per modality."""
    if cfg.loss == "paper":
        return pairwise_contrastive_loss(projections, cfg.temperature, cfg.reduction)
    supervised = labels if cfg.loss == "supervised" else None
    return pairwise_supcon_loss(projections, supervised, cfg.temperature)


class PretrainTask:
    def __init__(
        self,
        encoder: MultiModalEncoder,
        train_ds: WindowDataset,
        val_ds: WindowDataset,
        train_cfg: TrainConfig,
        cfg: PretrainConfig,
        ctx: DistContext,
    ) -> None:
        self.model = to_device_model(encoder, ctx)
        self.net = wrap(self.model, ctx)
        self.cfg, self.ctx, self.precision = cfg, ctx, ctx.precision
        self.loader, self.sampler = make_loader(
            train_ds, cfg.optim.batch_size, ctx, True, train_cfg.seed
        )
        self.val_loader = (
            eval_loader(
                val_ds,
                ctx,
                batch_sampler=validation_batches(len(val_ds), cfg.optim.batch_size, ctx),
                persistent=True,
            )
            if len(val_ds) >= 2
            else None
        )

    def batches(self, epoch: int):
        self.sampler.set_epoch(epoch)
        return self.loader

    def projections(
        self, batch: dict[str, Any], net: torch.nn.Module, gather: bool = True
    ) -> dict[str, torch.Tensor]:
        """Projections (B, V, d) per modality; ``gather``: of the global batch (every rank's
        share, rank order), else of this rank's batch alone."""
        views = [to_device(v, self.ctx.device) for v in batch["views"]]
        with self.precision.autocast():
            _, proj = net(cat_views(views))
        proj = {m: split_views(p.float(), len(views)) for m, p in proj.items()}  # loss in fp32
        if not gather:
            return proj
        return {m: gather_batch(p, self.ctx) for m, p in proj.items()}

    def loss(self, batch: dict[str, Any]) -> torch.Tensor | None:
        if len(batch["index"]) * self.ctx.world_size < 2:
            return None
        labels = gather_batch(batch["target"].to(self.ctx.device), self.ctx, grad=False)
        return contrastive_loss(self.projections(batch, self.net), labels, self.cfg)

    def validate(self) -> dict[str, float] | None:
        """The mean loss over the validation clips in batches of ``optim.batch_size``, in
        order (each clip once: the same batches with any number of ranks, which share them
        out whole and sum)."""
        if self.val_loader is None:
            return None
        total, n = None, 0  # summed on the device in float64, read once
        for batch in self.val_loader:
            if len(batch["index"]) < 2:
                continue
            labels = batch["target"].to(self.ctx.device)
            proj = self.projections(batch, self.model, gather=False)
            value = contrastive_loss(proj, labels, self.cfg).double()
            total = value if total is None else total + value
            n += 1
        total, n = sum_over_ranks([float(total) if total is not None else 0.0, float(n)])
        return {"loss": total / n, "score": -total / n} if n else None


def validation_batches(n: int, batch_size: int, ctx: DistContext) -> list[list[tuple[int, int]]]:
    """This rank's whole batches of clips 0..n-1 in order (batch k goes to rank k mod world),
    as epoch-0 keys: no clip is padded in or counted twice."""
    batches = [
        [(0, i) for i in range(s, min(s + batch_size, n))] for s in range(0, n, max(1, batch_size))
    ]
    return batches[ctx.rank :: ctx.world_size]


@torch.no_grad()
def retrieval_accuracy(
    encoder: MultiModalEncoder, ds: WindowDataset, ctx: DistContext
) -> dict[str, float]:
    """Cross-modal retrieval on ``ds`` (centred windows): for each ordered modality pair
    (m, n), the fraction of clips whose nearest z^n (cosine) to z^m_i is their own."""
    encoder.eval()
    projs: dict[str, list[torch.Tensor]] = {}
    for batch in eval_loader(ds, ctx):
        with ctx.precision.autocast():
            _, p = encoder(to_device(batch["views"][0], ctx.device))
        for m, t in p.items():
            projs.setdefault(m, []).append(F.normalize(t.float(), dim=-1))
    projs = {m: [t.cpu() for t in ts] for m, ts in projs.items()}  # one copy at the end
    z = {m: torch.cat(t) for m, t in projs.items()}
    out = {}
    for m in z:
        for n in z:
            if m != n:
                hits = (z[m] @ z[n].T).argmax(1) == torch.arange(len(z[m]))
                out[f"top1_{m}_to_{n}"] = float(hits.float().mean())
    if out:
        out["top1_mean"] = float(np.mean(list(out.values())))
        out["top1_chance"] = 1.0 / max(len(ds), 1)
    return out


@dataclass
class PretrainedEncoder:
    """What the pretrain stage saves per fold and the evaluate stage loads."""

    encoder: MultiModalEncoder
    shapes: dict[str, tuple[int, ...]]
    stats: dict[str, tuple[float, float]]
    fit: FitResult
    metrics: dict[str, float]
    precision: dict[str, Any] = field(default_factory=dict)  # Precision.describe()

    def payload(self, fold: int, train_cfg: TrainConfig, cfg: PretrainConfig) -> dict[str, Any]:
        return {
            "fold": fold,
            "modalities": list(self.shapes),
            "shapes": {m: list(s) for m, s in self.shapes.items()},
            "stats": {m: list(s) for m, s in self.stats.items()},
            "train": to_dict(train_cfg),
            "pretrain": to_dict(cfg),
            "encoder": {k: v.cpu() for k, v in self.encoder.state_dict().items()},
            "fit": self.fit.summary(),
            "metrics": self.metrics,
            "precision": self.precision,
        }


def pretrain_fold(
    data: CorpusData,
    fold: Fold,
    train_cfg: TrainConfig,
    cfg: PretrainConfig,
    ctx: DistContext,
    checkpointer: Checkpointer | None = None,
) -> PretrainedEncoder:
    mods = list(train_cfg.modalities)
    clips = fold.train if cfg.clips == "train" else fold.train + fold.val + fold.test
    views = train_cfg.window.views
    if cfg.loss != "paper" and views < 2:
        raise ValueError(f"pretrain.loss {cfg.loss} needs train.window.views >= 2")
    train_ds = data.dataset(clips, mods, views=views, random_windows=True)
    # Validation windows are random but fixed (epoch 0 of another seed): comparable values.
    val_ds = data.dataset(fold.val, mods, views=views, random_windows=True, seed=train_cfg.seed + 1)
    if len(train_ds) < 2:
        raise ValueError(f"fold {fold.number}: {len(train_ds)} usable training clip(s)")
    stats = fit_standardizer(train_ds, mods)
    shapes = train_ds.input_shapes()
    torch.manual_seed(train_cfg.seed)
    encoder = build_encoder(mods, shapes, train_cfg, stats)
    task = PretrainTask(encoder, train_ds, val_ds, train_cfg, cfg, ctx)
    result = fit(task, cfg.optim, train_cfg.seed, checkpointer, f"pretrain fold {fold.number}")
    best = result.history[result.best_epoch] if result.history else {}
    metrics = {
        "val_loss": best.get("val_loss", float("nan")),
        "train_loss": best.get("train_loss", float("nan")),
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
    }
    eval_val = data.dataset(fold.val, mods, views=1, random_windows=False)
    if len(eval_val) >= 2 and len(mods) > 1:
        metrics.update(retrieval_accuracy(task.model, eval_val, ctx))
    return PretrainedEncoder(task.model, shapes, stats, result, metrics, ctx.precision.describe())
