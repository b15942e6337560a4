"""The epoch loop every trainer shares: optimiser, step schedule, early stopping on a
validation value, resumable checkpoints, and a per-epoch seed.

Seeding each epoch from ``(seed, epoch)`` (dropout, shuffling, windows) makes a run that
resumes from a checkpoint take exactly the steps of an uninterrupted one. Under torchrun each
rank seeds torch from ``(seed, epoch, rank)`` (its own dropout masks; rank 0 draws what a
single process draws); shuffling and windows have their own seeds, shared by the ranks.

Under torchrun every decision is rank 0's: its validation values (the ranks' can differ a
little, batch-norm statistics being per rank) are broadcast before the early-stopping test,
so all ranks stop at the same epoch and their collectives stay matched. The training loss is
the mean over every rank's batches.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ... import progress as live
from ..checkpoint import Checkpointer
from ..config import OptimConfig
from ..distributed import current_rank, from_rank0, rank_seed, sum_over_ranks
from ..precision import FP32, Precision

log = logging.getLogger(__name__)


class TrainTask(Protocol):
    model: nn.Module  # every trainable parameter (not wrapped in DDP)
    # Optional: the run's precision (fp16 scales the loss); fp32 when the task has none.
    # The task runs its own forward passes under ``precision.autocast()``.
    precision: Precision

    def batches(self, epoch: int) -> Iterable[Any]: ...

    def loss(self, batch: Any) -> torch.Tensor | None:
        """The batch's loss, or None to skip the batch."""

    def validate(self) -> dict[str, float] | None:
        """{"loss": ..., "score": ...} on the validation clips; None without any."""


@dataclass
class FitResult:
    best_epoch: int = -1
    best_value: float = math.nan
    epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "epochs": self.epochs,
            "stopped_early": int(self.stopped_early),
        }


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def seed_torch(seed: int) -> None:
    """torch.manual_seed without its per-call cost when CUDA is absent."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def make_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _improved(value: float, best: float, cfg: OptimConfig) -> bool:
    if math.isnan(best):
        return True
    if cfg.monitor == "loss":
        return value < best - cfg.min_delta
    return value > best + cfg.min_delta


def train_step(
    task: TrainTask,
    batch: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> torch.Tensor | None:
    """One optimisation step on ``batch``; its loss as a float64 tensor on the device (not
    read on the host), or None when the task skips the batch."""
    loss = task.loss(batch)
    if loss is None:
        return None
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach().double()


def fit(
    task: TrainTask,
    cfg: OptimConfig,
    seed: int,
    checkpointer: Checkpointer | None = None,
    name: str = "train",
) -> FitResult:
    """Train ``task.model``; on return it holds the weights of the best validation epoch
    (of the last epoch when there is no validation set)."""
    model = task.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = (
        torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_epochs, cfg.gamma)
        if cfg.step_epochs
        else None
    )
    scaler = getattr(task, "precision", FP32).grad_scaler()  # a pass-through but for fp16
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    start, bad, done = 0, 0, False
    state = checkpointer.load() if checkpointer else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, bad, done = state["epoch"], state["bad"], state["done"]
        best_state = state["best_state"]
        result = FitResult(**state["result"])

    epoch = start
    for epoch in range(start, 0 if done else cfg.max_epochs):
        seed_torch(rank_seed(epoch_seed(seed, epoch), current_rank()))
        model.train()
        # The losses are summed on the device (float64: the same sum as Python's over the
        # float32 values) and read once per epoch: no host sync per step.
        loss_sum, steps = None, 0
        for batch in task.batches(epoch):
            value = train_step(task, batch, optimizer, scaler)
            if value is None:
                continue
            loss_sum = value if loss_sum is None else loss_sum + value
            steps += 1
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        model.eval()
        with torch.no_grad():
            val = task.validate()
        total = float(loss_sum) if loss_sum is not None else 0.0
        total, count = sum_over_ranks([total, float(steps)])
        train_loss = total / count if count else math.nan
        row = {"epoch": epoch, "train_loss": train_loss, "lr": lr}
        if val is not None:
            row.update({f"val_{k}": float(v) for k, v in val.items()})
            value = float(val[cfg.monitor])
        else:
            value = -train_loss if cfg.monitor == "score" else train_loss
        row, value, val = from_rank0((row, value, val))  # every rank decides as rank 0 does
        if _improved(value, result.best_value, cfg) or val is None:
            result.best_value, result.best_epoch, bad = value, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        result.history.append(row)
        result.epochs = epoch + 1
        stop = bool(cfg.patience) and bad >= cfg.patience
        result.stopped_early = stop
        last = stop or epoch + 1 >= cfg.max_epochs
        log.debug("%s epoch %d: %s", name, epoch, _fmt(row))  # every epoch at -v
        live.epoch_done(epoch + 1, cfg.max_epochs)
        if checkpointer is not None:
            checkpointer.maybe_save(
                {
                    "epoch": epoch + 1,
                    "bad": bad,
                    "done": last,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "best_state": best_state,
                    "result": vars(result),
                },
                force=last,
            )
        if stop:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


def _fmt(row: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
