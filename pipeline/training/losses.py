"""Contrastive losses of the two papers, vectorised (tests check them against loops).

- :func:`pairwise_contrastive_loss`: MPUC Eq. (1)-(2) as printed: cosine similarity over
  temperature, the denominator over j != i (the positive is not in it), L^{m,n} summed over
  the batch (or averaged), averaged over all ordered pairs of distinct modalities.
- :func:`pairwise_supcon_loss`: what the MPUC authors' code computes instead: SupCon
  (Khosla et al.) between the two windows of modality m and of modality n, with its
  details kept (self-contrast masked, the positive in the denominator, the mean over
  positives divided by (count + 1)). With ``labels`` it is the code's supervised mode.
- :func:`discriminator_infonce`: Qian & Han Eq. (6): a discriminator scores (audio, text)
  pairs; the positive is the sample's own text, negatives are texts of other emotions.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F  # noqa: N812


def _as_views(z: torch.Tensor) -> torch.Tensor:
    return z.unsqueeze(1) if z.dim() == 2 else z


def eq1_loss(
    anchors: torch.Tensor, others: torch.Tensor, temperature: float, reduction: str = "sum"
) -> torch.Tensor:
    """L^{m,n} of Eq. (1) for anchors z^m (B, d) against z^n (B, d)."""
    b = anchors.shape[0]
    if b < 2:
        raise ValueError("the contrastive loss needs at least two clips in a batch")
    sim = F.normalize(anchors, dim=-1) @ F.normalize(others, dim=-1).T / temperature
    eye = torch.eye(b, dtype=torch.bool, device=sim.device)
    per_anchor = torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1) - sim.diagonal()
    return per_anchor.sum() if reduction == "sum" else per_anchor.mean()


def _stream_pairs(z: Mapping[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(anchor, other) batches: every ordered pair of distinct modalities, for every pair of
    views (v, w); a single modality contrasts its distinct views instead."""
    zs = {m: _as_views(t) for m, t in z.items()}
    mods = list(zs)
    n_views = next(iter(zs.values())).shape[1]
    if len(mods) > 1:
        return [
            (zs[m][:, v], zs[n][:, w])
            for m in mods
            for n in mods
            if m != n
            for v in range(n_views)
            for w in range(n_views)
        ]
    (m,) = mods
    if n_views < 2:
        raise ValueError("one modality with one view has no pairs to contrast")
    return [(zs[m][:, v], zs[m][:, w]) for v in range(n_views) for w in range(n_views) if v != w]


def pairwise_contrastive_loss(
    z: Mapping[str, torch.Tensor], temperature: float = 0.07, reduction: str = "sum"
) -> torch.Tensor:
    """MPUC Eq. (2): the mean of Eq. (1) over ordered modality pairs (m != n).

    ``z[m]`` is (B, d) or (B, V, d) for V windows; with V > 1 every pair of windows (v, w)
    is contrasted and averaged too (V = 1 is exactly Eq. (1)-(2)).
    """
    pairs = _stream_pairs(z)
    return torch.stack([eq1_loss(a, o, temperature, reduction) for a, o in pairs]).mean()


def supcon_loss(
    features: torch.Tensor,
    contrast: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
    mask_temperature: float = 0.01,
) -> torch.Tensor:
    """The MPUC code's SupConLoss(features, features_contrast): both (B, V, d), normalised.

    Anchors are the V windows of ``features``; they are contrasted with the V windows of
    ``contrast``. Positives: the same clip (unsupervised) or, with ``labels``, the same class
    (multi-label: a softmax over label overlaps, as the code does). The entry with the
    anchor's own index is left out of positives and denominator.
    """
    b, v = features.shape[:2]
    if labels is None:
        pos = torch.eye(b, device=features.device)
    elif labels.dim() == 1:
        pos = (labels[:, None] == labels[None, :]).float()
    else:
        lab = F.normalize(labels.float(), p=1, dim=-1)
        pos = torch.softmax(lab @ lab.T / mask_temperature, dim=-1)
    anchor = torch.cat(torch.unbind(features, dim=1), dim=0)  # (V*B, d), window-major
    other = torch.cat(torch.unbind(contrast, dim=1), dim=0)
    logits = anchor @ other.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    pos = pos.repeat(v, v)
    not_self = 1.0 - torch.eye(b * v, device=features.device)
    pos = pos * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    mean_log_prob_pos = (pos * log_prob).sum(1) / (pos.sum(1) + 1)
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


def pairwise_supcon_loss(
    z: Mapping[str, torch.Tensor],
    labels: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> torch.Tensor:
    """The MPUC code's modality-contrastive loss: SupCon for every ordered pair m != n of
    modalities (each (B, V, d), V = 2 windows), averaged. One modality: its own windows."""
    zs = {m: F.normalize(_as_views(t), dim=-1) for m, t in z.items()}
    mods = list(zs)
    if zs[mods[0]].shape[1] < 2:
        raise ValueError("the SupCon-style loss needs two windows per clip (train.window.views)")
    pairs = [(m, n) for m in mods for n in mods if m != n] or [(mods[0], mods[0])]
    losses = [supcon_loss(zs[m], zs[n], labels, temperature) for m, n in pairs]
    return torch.stack(losses).mean()


def discriminator_infonce(
    scores: torch.Tensor, labels: torch.Tensor, negatives: str = "other_emotions"
) -> torch.Tensor:
    """Qian & Han Eq. (6), averaged over the batch.

    ``scores[i, j]`` = d(e_a^i, e_t^j). For sample i the positive is j = i; negatives are
    the batch's j with another emotion (``other_emotions``; multi-label: another label set)
    or every j != i (``all``). A sample without negatives contributes log 1 = 0.
    """
    b = scores.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    if negatives == "all":
        neg = ~eye
    elif labels.dim() == 1:
        neg = labels[:, None] != labels[None, :]
    else:
        neg = (labels[:, None, :] != labels[None, :, :]).any(-1)
    logits = scores.masked_fill(~(neg | eye), float("-inf"))
    return (torch.logsumexp(logits, dim=1) - scores.diagonal()).mean()
