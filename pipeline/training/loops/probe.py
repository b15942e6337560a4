"""MPUC downstream evaluation (§III-C): frozen 512-d backbone features of every modality,
concatenated, into an fc-ReLU-fc classifier trained on the fold's training clips with
early stopping on its validation clips. The projection heads are discarded.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset

from ...models.heads import MLPHead
from ..checkpoint import Checkpointer
from ..config import ProbeConfig
from ..data import LabelSpace
from ..dataset import WindowDataset
from ..distributed import DistContext, gather_objects
from .classify import classification_loss, predict, score
from .common import eval_loader, to_device
from .fit import FitResult, epoch_seed, fit


@torch.no_grad()
def extract_features(
    branches: Mapping[str, nn.Module], ds: WindowDataset, ctx: DistContext, batch_size: int = 64
) -> np.ndarray:
    """(N, sum of feature dims) features of the clips' centred windows, in dataset order.
    Each rank computes a share of the clips; every rank gets all of them."""
    for b in branches.values():
        b.eval()
    mine = list(range(ctx.rank, len(ds), ctx.world_size))
    rows: dict[int, np.ndarray] = {}
    parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    for batch in eval_loader(Subset(ds, mine), ctx, batch_size=batch_size):
        view = to_device(batch["views"][0], ctx.device)
        with ctx.precision.autocast():
            feats = [b(view[m]["x"], view[m]["mask"]) for m, b in branches.items()]
        parts.append((batch["index"], torch.cat([f.float() for f in feats], 1)))
    for index, feats in parts:  # copied to the host once the device is done
        for i, f in zip(index.tolist(), feats.cpu().numpy(), strict=True):
            rows[i] = f
    for part in gather_objects(rows, ctx):
        rows.update(part)
    return np.stack([rows[i] for i in range(len(ds))]) if len(ds) else np.zeros((0, 0))


class ArrayTask:
    """Minibatches of in-memory (features, targets), reshuffled each epoch from the seed."""

    def __init__(
        self,
        model: nn.Module,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        labels: LabelSpace,
        batch_size: int,
        seed: int,
        device: torch.device,
    ) -> None:
        self.model = model.to(device)
        self.x, self.y = (torch.as_tensor(a).to(device) for a in train)
        self.vx, self.vy = (torch.as_tensor(a).to(device) for a in val)
        self.labels, self.batch_size, self.seed = labels, batch_size, seed

    def batches(self, epoch: int):
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(len(self.x), generator=g)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            yield self.x[idx], self.y[idx]

    def loss(self, batch) -> torch.Tensor:
        x, y = batch
        return classification_loss(self.model(x), y, self.labels.multi_label)

    def validate(self) -> dict[str, float] | None:
        if len(self.vx) == 0:
            return None
        logits = self.model(self.vx)
        loss = classification_loss(logits, self.vy, self.labels.multi_label).item()
        preds = predict(logits, self.labels.multi_label)
        return {"loss": loss, "score": score(self.labels, self.vy.cpu().numpy(), preds)}


def train_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    labels: LabelSpace,
    cfg: ProbeConfig,
    seed: int,
    device: torch.device,
    checkpointer: Checkpointer | None = None,
) -> tuple[nn.Module, FitResult]:
    torch.manual_seed(seed)
    model = MLPHead(train[0].shape[1], cfg.hidden, len(labels.names))
    task = ArrayTask(model, train, val, labels, cfg.optim.batch_size, seed, device)
    result = fit(task, cfg.optim, seed, checkpointer, "probe")
    return task.model, result


@torch.no_grad()
def probe_predict(model: nn.Module, x: np.ndarray, multi: bool, device: torch.device) -> np.ndarray:
    model.eval()
    return predict(model(torch.as_tensor(x).to(device)), multi)
