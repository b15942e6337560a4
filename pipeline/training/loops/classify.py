"""Classification losses, predictions and scores for single- and multi-label corpora."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from ..data import LabelSpace
from ..metrics import headline, multi_label_metrics, single_label_metrics


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, multi: bool) -> torch.Tensor:
    """Cross-entropy (single-label) or binary cross-entropy per emotion (multi-label)."""
    if multi:
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    return F.cross_entropy(logits, targets.long())


def predict(logits: torch.Tensor, multi: bool) -> np.ndarray:
    """Class indices, or 0/1 per emotion (sigmoid >= 0.5, as the MPUC code rounds)."""
    if multi:
        return (torch.sigmoid(logits) >= 0.5).int().cpu().numpy()
    return logits.argmax(1).cpu().numpy()


def metrics_for(labels: LabelSpace, targets: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    if labels.multi_label:
        return multi_label_metrics(targets, preds, labels.names)
    return single_label_metrics(targets, preds, labels.names)


def score(labels: LabelSpace, targets: np.ndarray, preds: np.ndarray) -> float:
    return metrics_for(labels, targets, preds)[headline(labels.multi_label)]
