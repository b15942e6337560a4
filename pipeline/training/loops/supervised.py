"""Supervised training end to end: the MPUC baselines (unimodal, late fusion, attention,
§IV-B) and Qian & Han's model-level fusion with and without contrastive regularization.

Each trains on the fold's training clips (one random window per clip and epoch), stops
early on the validation clips and predicts the test clips from their centred windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...models.heads import AttentionFusion, MLPHead
from ...models.qian_han import Discriminator
from ..config import OptimConfig, TrainConfig
from ..data import LabelSpace
from ..dataset import WindowDataset
from ..distributed import DistContext, gather_batch, wrap
from ..losses import discriminator_infonce
from .classify import classification_loss, predict, score
from .common import eval_loader, make_loader, to_device, to_device_model


class FusionClassifier(nn.Module):
    """Backbones (one per modality) -> concatenation (late fusion) or attention over the
    modality features -> fc-ReLU-fc. With one modality it is the unimodal baseline."""

    def __init__(
        self, branches: nn.ModuleDict, n_out: int, hidden: int, fusion: str, heads: int = 8
    ) -> None:
        super().__init__()
        self.branches = branches
        dims = [b.out_dim for b in branches.values()]
        if fusion == "attention":
            self.head = AttentionFusion(len(dims), dims[0], heads, hidden, n_out)
        else:
            self.head = MLPHead(sum(dims), hidden, n_out)
        self.fusion = fusion

    def forward(self, view: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
        feats = [b(view[m]["x"], view[m]["mask"]) for m, b in self.branches.items()]
        if self.fusion == "attention":
            return self.head(torch.stack(feats, 1))
        return self.head(torch.cat(feats, 1))


class QianHanModel(nn.Module):
    """CNN (audio) + LSTM with attention (text), a linear classifier on the concatenated
    embeddings (Eq. 1), and, when regularising, the pair discriminator d(e_a, e_t)."""

    def __init__(
        self,
        audio: nn.Module,
        text: nn.Module,
        n_out: int,
        discriminator_hidden: int,
        dropout: float,
        with_discriminator: bool,
        text_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.audio, self.text = audio, text
        self.dropout = nn.Dropout(dropout)
        self.text_dropout = nn.Dropout(text_dropout)  # on the input word vectors (code: 0.75)
        self.classifier = nn.Linear(audio.out_dim + text.out_dim, n_out)
        self.discriminator = (
            Discriminator(audio.out_dim, text.out_dim, discriminator_hidden)
            if with_discriminator
            else None
        )

    def forward(self, view: dict[str, dict[str, torch.Tensor]], audio: str, text: str):
        e_a = self.audio(view[audio]["x"], view[audio]["mask"])
        e_t = self.text(self.text_dropout(view[text]["x"]), view[text]["mask"])
        return self.classifier(self.dropout(torch.cat([e_a, e_t], 1))), e_a, e_t


class SupervisedTask:
    """Cross-entropy (or BCE) training; for Qian & Han, (1 - alpha) CE + alpha InfoNCE."""

    def __init__(
        self,
        model: nn.Module,
        train_ds: WindowDataset,
        val_ds: WindowDataset,
        labels: LabelSpace,
        optim: OptimConfig,
        train_cfg: TrainConfig,
        ctx: DistContext,
        qian_han: tuple[str, str, float, str] | None = None,
    ) -> None:
        self.model = to_device_model(model, ctx)
        self.net = wrap(self.model, ctx)
        self.labels, self.ctx, self.qian_han = labels, ctx, qian_han
        self.precision = ctx.precision
        self.loader, self.sampler = make_loader(
            train_ds, optim.batch_size, ctx, True, train_cfg.seed
        )
        self.val_ds = val_ds
        self._loaders: dict[int, Any] = {}  # validation / prediction loaders, one per dataset

    def batches(self, epoch: int):
        self.sampler.set_epoch(epoch)
        return self.loader

    def forward(self, net: nn.Module, view: dict) -> tuple[torch.Tensor, Any, Any]:
        """Logits and (Qian & Han) the two embeddings, in fp32 whatever the autocast."""
        with self.precision.autocast():
            if self.qian_han is None:
                out = (net(view), None, None)
            else:
                out = net(view, *self.qian_han[:2])
        return tuple(t.float() if t is not None else None for t in out)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        view = to_device(batch["views"][0], self.ctx.device)
        target = batch["target"].to(self.ctx.device)
        logits, e_a, e_t = self.forward(self.net, view)
        ce = classification_loss(logits, target, self.labels.multi_label)
        if self.qian_han is None or self.model.discriminator is None:
            return ce
        alpha, negatives = self.qian_han[2], self.qian_han[3]
        e_a, e_t = gather_batch(e_a, self.ctx), gather_batch(e_t, self.ctx)
        target = gather_batch(target, self.ctx, grad=False)
        nce = discriminator_infonce(self.model.discriminator(e_a, e_t), target, negatives)
        return (1 - alpha) * ce + alpha * nce

    @torch.no_grad()
    def outputs(self, ds: WindowDataset) -> tuple[torch.Tensor, np.ndarray]:
        """Logits and targets of every clip of ``ds`` (centred windows; unwrapped model)."""
        self.model.eval()
        logits = []
        if id(ds) not in self._loaders:  # the validation loader's workers live on
            self._loaders[id(ds)] = eval_loader(ds, self.ctx, persistent=ds is self.val_ds)
        for batch in self._loaders[id(ds)]:
            view = to_device(batch["views"][0], self.ctx.device)
            logits.append(self.forward(self.model, view)[0])
        return torch.cat(logits), ds.targets

    def validate(self) -> dict[str, float] | None:
        if len(self.val_ds) == 0:
            return None
        logits, targets = self.outputs(self.val_ds)
        t = torch.as_tensor(targets).to(logits.device)
        loss = classification_loss(logits, t, self.labels.multi_label).item()
        preds = predict(logits, self.labels.multi_label)
        return {"loss": loss, "score": score(self.labels, targets, preds)}

    def predict(self, ds: WindowDataset) -> np.ndarray:
        logits, _ = self.outputs(ds)
        return predict(logits, self.labels.multi_label)
