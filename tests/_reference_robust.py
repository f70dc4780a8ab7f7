"""Loop-based transcriptions of the noise-robust and "standard extra" losses, from the papers.

One sample at a time, one class at a time, in plain Python floats; nothing is shared with
longtail. Each loss is written as its paper writes it (RCE as −Σ_k p_k log q_k with log 0 := A,
MAE as Σ_k |p_k − q_k|, comp-sum through u = Σ_{y'≠y} e^{z_{y'} − z_y}, the sparsemax loss through
its sorted support), not through the closed forms longtail computes, so that the two meet only in
the value.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from _reference import FAMILY_EQUIVALENCES, REFERENCES, Reference, reduce


# --------------------------------------------------------------------------------- helpers
def softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(v - m) for v in row]
    total = sum(e)
    return [v / total for v in e]


def _per_sample(fn):
    """A Reference.loss from a per-sample ``fn(row, y, kw) -> float``."""

    def loss(z, y, counts, weight, reduction, kw):
        return reduce(
            [fn(list(row), t, kw) for row, t in zip(z, y, strict=True)], y, weight, reduction
        )

    return loss


# ------------------------------------------------------------------- Ma et al., ICML 2020
def nce(row, y, kw=None) -> float:
    p = softmax(row)
    return -math.log(p[y]) / sum(-math.log(pk) for pk in p)


def focal_term(pk: float, gamma: float) -> float:
    return -((1.0 - pk) ** gamma) * math.log(pk)


def nfl(row, y, kw) -> float:
    p = softmax(row)
    g = kw["gamma"]
    return focal_term(p[y], g) / sum(focal_term(pk, g) for pk in p)


def rce(row, y, kw) -> float:
    """−Σ_k p_k log q_k, q the one-hot label, log 0 := A."""
    p = softmax(row)
    total = 0.0
    for k, pk in enumerate(p):
        log_q = 0.0 if k == y else kw["log_zero"]  # log 1 = 0, log 0 := A
        total -= pk * log_q
    return total


def mae(row, y, kw=None) -> float:
    """Σ_k |p_k − q_k|."""
    p = softmax(row)
    return sum(abs(pk - (1.0 if k == y else 0.0)) for k, pk in enumerate(p))


def ce(row, y) -> float:
    return -math.log(softmax(row)[y])


def nce_rce(row, y, kw) -> float:
    return kw["alpha"] * nce(row, y) + kw["beta"] * rce(row, y, kw)


def nfl_rce(row, y, kw) -> float:
    return kw["alpha"] * nfl(row, y, kw) + kw["beta"] * rce(row, y, kw)


# ------------------------------------------------------------------ Wang et al., ICCV 2019
def sce(row, y, kw) -> float:
    return kw["alpha"] * ce(row, y) + kw["beta"] * rce(row, y, kw)


# ---------------------------------------------------------- Zhang & Sabuncu, NeurIPS 2018
def gce(row, y, kw) -> float:
    q = kw["q"]
    return (1.0 - softmax(row)[y] ** q) / q


REFERENCES.update(
    {
        "nce": Reference(_per_sample(nce)),
        # the paper's γ = 0.5 (default), and γ = 2 (the focal loss's own default)
        "nfl": Reference(_per_sample(nfl), ({}, {"gamma": 2.0}, {"gamma": 0.0})),
        # A = −4 (paper), A = log 1e-4 (the official code's clamp)
        "rce": Reference(_per_sample(rce), ({}, {"log_zero": math.log(1e-4)})),
        "mae": Reference(_per_sample(mae)),
        # CIFAR-10 (default) and CIFAR-100 settings of Ma et al.
        "nce-rce": Reference(
            _per_sample(nce_rce), ({}, {"alpha": 10.0, "beta": 0.1, "log_zero": -2.0})
        ),
        "nfl-rce": Reference(
            _per_sample(nfl_rce), ({}, {"alpha": 10.0, "beta": 0.1, "gamma": 1.0})
        ),
        # CIFAR-10 (default), CIFAR-100 and MNIST settings of Wang et al.
        "sce": Reference(
            _per_sample(sce),
            ({}, {"alpha": 6.0, "beta": 0.1}, {"alpha": 0.01, "beta": 1.0, "log_zero": -6.0}),
        ),
        "gce": Reference(_per_sample(gce), ({}, {"q": 0.3}, {"q": 1.0})),
    }
)


# ---------------------------------------------------------------------------- equivalences
def _ce_fn(z, y, reduction):
    return F.cross_entropy(z, y, reduction=reduction)


FAMILY_EQUIVALENCES += [
    dict(loss="nfl", kwargs={"gamma": 0.0}, other="nce", why="γ = 0: FL is CE (Ma et al.)"),
    dict(
        loss="rce",
        kwargs={"log_zero": -2.0},
        other="mae",
        why="RCE = −A (1 − p_y) and MAE = 2 (1 − p_y): equal at A = −2 (Ma et al.)",
    ),
    dict(
        loss="nce-rce",
        kwargs={"alpha": 1.0, "beta": 0.0},
        other="nce",
        why="β = 0 leaves the active term",
    ),
    dict(
        loss="nce-rce",
        kwargs={"alpha": 0.0, "beta": 2.5, "log_zero": -3.0},
        other="rce",
        other_kwargs={"log_zero": -7.5},
        why="α = 0 leaves β·RCE_A = RCE_{βA}",
    ),
    dict(
        loss="nfl-rce",
        kwargs={"alpha": 1.0, "beta": 0.0, "gamma": 1.5},
        other="nfl",
        other_kwargs={"gamma": 1.5},
        why="β = 0 leaves the active term",
    ),
    dict(
        loss="nfl-rce",
        kwargs={"alpha": 3.0, "beta": 2.0, "gamma": 0.0},
        other="nce-rce",
        other_kwargs={"alpha": 3.0, "beta": 2.0},
        why="γ = 0: NFL is NCE (Ma et al.)",
    ),
    dict(loss="sce", kwargs={"alpha": 1.0, "beta": 0.0}, other=_ce_fn, why="β = 0 is CE"),
    dict(
        loss="sce",
        kwargs={"alpha": 0.0, "beta": 1.0},
        other="rce",
        why="α = 0 is RCE (Wang et al.)",
    ),
    dict(
        loss="gce",
        kwargs={"q": 1e-9},
        other=_ce_fn,
        why="q → 0 is CE (Zhang & Sabuncu; the error is q (log p)² / 2 ≈ 1e-8 here)",
    ),
]
