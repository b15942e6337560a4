"""The contrastive losses against direct, loop-by-loop implementations of the equations."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.training.losses import (
    discriminator_infonce,
    eq1_loss,
    pairwise_contrastive_loss,
    pairwise_supcon_loss,
    supcon_loss,
)


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(u @ v / (u.norm() * v.norm()))


def _eq1_loop(zm: torch.Tensor, zn: torch.Tensor, tau: float, reduction: str) -> float:
    """MPUC Eq. (1), summed (or averaged) over i, one term at a time."""
    n = len(zm)
    terms = []
    for i in range(n):
        num = math.exp(_cos(zm[i], zn[i]) / tau)
        den = sum(math.exp(_cos(zm[i], zn[j]) / tau) for j in range(n) if j != i)
        terms.append(-math.log(num / den))
    return sum(terms) if reduction == "sum" else sum(terms) / n


def _eq2_loop(z: dict[str, torch.Tensor], tau: float, reduction: str) -> float:
    """MPUC Eq. (2): every ordered pair of distinct modalities, divided by |M|(|M| - 1)."""
    mods = list(z)
    total = sum(_eq1_loop(z[m], z[n], tau, reduction) for m in mods for n in mods if m != n)
    return total / (len(mods) * (len(mods) - 1))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_pairwise_loss_matches_equations_1_and_2(reduction):
    g = torch.Generator().manual_seed(1)
    z = {m: torch.randn(6, 5, generator=g, dtype=torch.float64) for m in ("a", "v", "l")}
    got = pairwise_contrastive_loss(z, temperature=0.07, reduction=reduction).item()
    assert got == pytest.approx(_eq2_loop(z, 0.07, reduction), rel=1e-9)


def test_pairwise_loss_is_asymmetric_and_pairs_every_window():
    g = torch.Generator().manual_seed(2)
    a, b = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(2))
    assert eq1_loss(a, b, 0.5).item() != pytest.approx(eq1_loss(b, a, 0.5).item())
    # two windows per clip: every (window of m, window of n) pair of Eq. (1), averaged
    z = {m: torch.randn(5, 2, 4, generator=g, dtype=torch.float64) for m in ("a", "v")}
    expect = [
        _eq1_loop(z[m][:, v], z[n][:, w], 0.1, "sum")
        for m, n in (("a", "v"), ("v", "a"))
        for v in range(2)
        for w in range(2)
    ]
    got = pairwise_contrastive_loss(z, temperature=0.1).item()
    assert got == pytest.approx(sum(expect) / len(expect), rel=1e-9)
    # one modality: its two windows are the pair
    single = {"a": z["a"]}
    expect = (
        _eq1_loop(z["a"][:, 0], z["a"][:, 1], 0.1, "sum")
        + _eq1_loop(z["a"][:, 1], z["a"][:, 0], 0.1, "sum")
    ) / 2
    assert pairwise_contrastive_loss(single, 0.1).item() == pytest.approx(expect, rel=1e-9)


def test_pairwise_loss_rewards_aligned_modalities_and_rejects_bad_input():
    g = torch.Generator().manual_seed(3)
    za = torch.randn(8, 16, generator=g)
    aligned = pairwise_contrastive_loss({"a": za, "b": za + 0.01 * torch.randn(8, 16)})
    shuffled = pairwise_contrastive_loss({"a": za, "b": za[torch.randperm(8, generator=g)]})
    assert aligned < shuffled
    with pytest.raises(ValueError, match="at least two clips"):
        eq1_loss(za[:1], za[:1], 0.07)
    with pytest.raises(ValueError, match="no pairs"):
        pairwise_contrastive_loss({"a": za})


def _supcon_loop(f: torch.Tensor, c: torch.Tensor, labels, tau: float) -> float:
    """The MPUC code's SupConLoss, anchor by anchor: positives exclude the anchor's own
    index, the denominator runs over every other index, the mean over positives is divided
    by (count + 1)."""
    b, v = f.shape[:2]
    anchors = [f[i % b, i // b] for i in range(b * v)]  # window-major, as torch.cat(unbind)
    others = [c[i % b, i // b] for i in range(b * v)]
    total = 0.0
    for a in range(b * v):
        logits = [float(anchors[a] @ others[k]) / tau for k in range(b * v)]
        den = math.log(sum(math.exp(logits[k]) for k in range(b * v) if k != a))
        same = [
            k
            for k in range(b * v)
            if k != a and (k % b == a % b if labels is None else labels[k % b] == labels[a % b])
        ]
        total += sum(logits[k] - den for k in same) / (len(same) + 1)
    return -total / (b * v)


@pytest.mark.parametrize("supervised", [False, True])
def test_supcon_matches_the_authors_formula(supervised):
    g = torch.Generator().manual_seed(4)
    f = torch.nn.functional.normalize(
        torch.randn(5, 2, 3, generator=g, dtype=torch.float64), dim=-1
    )
    c = torch.nn.functional.normalize(
        torch.randn(5, 2, 3, generator=g, dtype=torch.float64), dim=-1
    )
    labels = torch.tensor([0, 1, 0, 2, 1]) if supervised else None
    got = supcon_loss(f, c, labels, temperature=0.07).item()
    assert got == pytest.approx(_supcon_loop(f, c, labels, 0.07), rel=1e-9)
    # pairwise: each ordered modality pair, averaged
    z = {"a": f, "b": c}
    both = (_supcon_loop(f, c, labels, 0.07) + _supcon_loop(c, f, labels, 0.07)) / 2
    assert pairwise_supcon_loss(z, labels, 0.07).item() == pytest.approx(both, rel=1e-9)


def test_supcon_needs_two_windows():
    with pytest.raises(ValueError, match="two windows"):
        pairwise_supcon_loss({"a": torch.randn(4, 3), "b": torch.randn(4, 3)})


def _infonce_loop(scores: torch.Tensor, labels: list[int], negatives: str) -> float:
    n = len(labels)
    total = 0.0
    for i in range(n):
        pos = math.exp(float(scores[i, i]))
        neg = sum(
            math.exp(float(scores[i, j]))
            for j in range(n)
            if j != i and (negatives == "all" or labels[j] != labels[i])
        )
        total += -math.log(pos / (pos + neg))
    return total / n


@pytest.mark.parametrize("negatives", ["other_emotions", "all"])
def test_qian_han_infonce_matches_equation_6(negatives):
    g = torch.Generator().manual_seed(5)
    scores = torch.randn(7, 7, generator=g, dtype=torch.float64)
    labels = [0, 1, 1, 2, 0, 3, 1]
    got = discriminator_infonce(scores, torch.tensor(labels), negatives).item()
    assert got == pytest.approx(_infonce_loop(scores, labels, negatives), rel=1e-9)


def test_qian_han_infonce_multilabel_negatives_differ_in_label_set():
    scores = torch.zeros(3, 3, dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # clip 0 has one negative (clip 2); clip 2 has two
    expect = (math.log(2) + math.log(2) + math.log(3)) / 3
    assert discriminator_infonce(scores, labels).item() == pytest.approx(expect)
