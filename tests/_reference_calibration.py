"""Loop-based transcriptions of the calibration and metric-surrogate losses (float64, pure Python).

Each is written from its paper's formula (or, where longtail follows the official code, from that
code's arithmetic), one sample, one class, one pair at a time, sharing no code with longtail:

* ``acls`` — Park et al., ICCV 2023 (official code's normalisation), with its stop-gradient
  gradient;
* ``dual-focal`` — Tao et al., ICML 2023;
* ``correctness-aware`` — Liu et al., arXiv 2404.13016 (official code's balancing).
"""

from __future__ import annotations

import math

from _reference import (
    FAMILY_EQUIVALENCES,
    REFERENCES,
    Reference,
    ce_row,
    logsumexp,
    reduce,
)


def _softmax(row) -> list[float]:
    lse = logsumexp(list(row))
    return [math.exp(v - lse) for v in row]


# ------------------------------------------------------------------------------------------ ACLS
def acls_row(row, t, pos_lambda, neg_lambda, alpha, margin) -> float:
    """CE + α [λ_pos Σ_{j = argmax} ReLU(z_j − M)² + λ_neg/(C−1) Σ_{j ≠ argmax} ReLU(m − z_j − M)²]
    (the official code: positives are the entries equal to the row maximum)."""
    c = len(row)
    m = max(row)
    pos = sum(max(v - margin, 0.0) ** 2 for v in row if v == m)
    neg = sum(max(m - v - margin, 0.0) ** 2 for v in row if v != m)
    return ce_row(list(row), t) + alpha * (pos_lambda * pos + neg_lambda * neg / max(c - 1, 1))


def acls_gradient(z, y, counts, kw) -> list[list[float]]:
    """∂ mean ℓ / ∂z with the maximum of the negative term held constant (the official code's
    detach): softmax − e_y, + 2αλ_pos ReLU(z_j − M) at the maximum, − 2αλ_neg/(C−1)
    ReLU(m − z_j − M) elsewhere; divided by N."""
    al, pl, nl, big_m = kw["alpha"], kw["pos_lambda"], kw["neg_lambda"], kw["margin"]
    out = []
    for row, t in zip(z, y, strict=True):
        c = len(row)
        m = max(row)
        p = _softmax(row)
        g = []
        for j, v in enumerate(row):
            d = p[j] - (1.0 if j == t else 0.0)
            if v == m:
                d += al * pl * 2 * max(v - big_m, 0.0)
            else:
                d -= al * nl / max(c - 1, 1) * 2 * max(m - v - big_m, 0.0)
            g.append(d / len(z))
        out.append(g)
    return out


# ------------------------------------------------------------------------------------ dual focal
def dual_focal_row(row, t, gamma) -> float:
    """−(1 − p_y + p_j)^γ log p_y, p_j the largest probability strictly below p_y (0 if none)."""
    p = _softmax(row)
    below = [q for q in p if q < p[t]]
    pj = max(below) if below else 0.0
    log_py = row[t] - logsumexp(list(row))
    return -((1 - p[t] + pj) ** gamma) * log_py


# ----------------------------------------------------------------------------- correctness-aware
def correctness_aware(z, y, balanced) -> list[float]:
    """v_i (max_c p_ic − 1[argmax = y_i])²; balanced: v = n / (2 n_correct) for correct samples,
    n / (2 n_wrong) for wrong ones (the official code's 1 − acc / acc weights, normalised), 1 when
    either group is empty."""
    err, correct = [], []
    for row, t in zip(z, y, strict=True):
        p = _softmax(row)
        pred = max(range(len(row)), key=lambda k: row[k])  # the first of tied maxima
        correct.append(pred == t)
        err.append((max(p) - (1.0 if pred == t else 0.0)) ** 2)
    n, nc = len(err), sum(correct)
    if not balanced or nc == 0 or nc == n:
        return err
    factor = {True: n / (2 * nc), False: n / (2 * (n - nc))}
    return [e * factor[ok] for e, ok in zip(err, correct, strict=True)]


def correctness_aware_official(z, y) -> float:
    """The official training loop's loss (balanced, mean): Σ w (conf − correct)² / Σ w with
    w = 1 − acc for correct samples and acc for wrong ones."""
    err, correct = [], []
    for row, t in zip(z, y, strict=True):
        p = _softmax(row)
        pred = max(range(len(row)), key=lambda k: row[k])
        correct.append(pred == t)
        err.append((max(p) - (1.0 if pred == t else 0.0)) ** 2)
    acc = sum(correct) / len(correct)
    w = [1 - acc if ok else acc for ok in correct]
    return sum(a * b for a, b in zip(w, err, strict=True)) / sum(w)


# ------------------------------------------------------------------------------- the references
def _per_sample(fn):
    def loss(z, y, counts, weight, reduction, kw):
        return reduce([fn(list(r), t, kw) for r, t in zip(z, y, strict=True)], y, weight, reduction)

    return loss


def _ca(z, y, counts, weight, reduction, kw):
    return reduce(correctness_aware(z, y, kw["balanced"]), y, weight, reduction)


REFERENCES["acls"] = Reference(
    _per_sample(
        lambda r, t, kw: acls_row(
            r, t, kw["pos_lambda"], kw["neg_lambda"], kw["alpha"], kw["margin"]
        )
    ),
    (
        {},
        {"margin": 1.0, "alpha": 0.5, "pos_lambda": 0.7, "neg_lambda": 0.3},
        {"margin": 0.0, "alpha": 1.0},
    ),
    gradient=acls_gradient,
)
REFERENCES["dual-focal"] = Reference(
    _per_sample(lambda r, t, kw: dual_focal_row(r, t, kw["gamma"])),
    ({}, {"gamma": 0.5}, {"gamma": 2.0}),
)
REFERENCES["correctness-aware"] = Reference(_ca, ({}, {"balanced": False}))


# ------------------------------------------------------------------------------ equivalences
def mse_confidence_correctness(z, y, reduction):
    """The official CA code's ``mse_criterion(conf_out, correctness.float())``."""
    import torch.nn.functional as F

    conf, pred = z.softmax(1).max(1)
    return F.mse_loss(conf, (pred == y).to(z.dtype), reduction=reduction)


FAMILY_EQUIVALENCES += [
    {
        "loss": "dual-focal",
        "kwargs": {"gamma": 0.0},
        "other": "ce",
        "why": "γ = 0: the dual modulating factor is 1, cross-entropy (Tao et al.)",
    },
    {
        "loss": "dual-focal",
        "kwargs": {"gamma": 0.0},
        "other": "focal",
        "other_kwargs": {"gamma": 0.0},
        "why": "dual focal and focal at their neutral setting γ = 0 are both cross-entropy",
    },
    {
        "loss": "acls",
        "kwargs": {"alpha": 0.0},
        "other": "ce",
        "why": "α = 0 turns the ACLS regulariser off: cross-entropy (Park et al.)",
    },
    {
        "loss": "acls",
        "kwargs": {"pos_lambda": 0.0, "neg_lambda": 0.0},
        "other": "ce",
        "why": "both regulariser terms off: cross-entropy",
    },
    {
        "loss": "acls",
        "kwargs": {"margin": 1000.0, "alpha": 1.0},
        "other": "ce",
        "why": "a margin no logit (gap) reaches: every ReLU is 0, cross-entropy",
    },
    {
        "loss": "correctness-aware",
        "kwargs": {"balanced": False},
        "other": mse_confidence_correctness,
        "why": "unbalanced CA is the official code's MSE between confidence and correctness",
    },
]
