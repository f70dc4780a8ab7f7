"""Loop-based transcriptions of the long-tail losses users ask the peer libraries for (family
"imbalance"): seesaw, softmax EQL, EQL v2, CDT, GCL, IB, label-aware smoothing, LADE, Bal-BCE.

Each is written from its paper's equations (and, where the paper leaves a detail open, from the
official code the longtail docstring names), one sample and one class at a time, in Python floats,
sharing no code with longtail. The random losses (GCL, softmax EQL) draw their random numbers with
a ``torch.Generator`` seeded as longtail's modules document (``seed + step·φ + rank·ψ``; a fresh
module is at step 0 on rank 0, so its draw seed is the base seed); the formula around the draws is
written out here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from _reference import FAMILY_EQUIVALENCES, REFERENCES, STATE, Reference, logsumexp, reduce


def _onehot_rows(target, c):
    """Index targets as one-hot rows; rows of floats as they are."""
    rows = []
    for t in target:
        if isinstance(t, list):
            rows.append([float(v) for v in t])
        else:
            rows.append([1.0 if k == t else 0.0 for k in range(c)])
    return rows


# ------------------------------------------------------------------------------------ seesaw
def seesaw_rows(z, y, p, q, eps, cum_samples=None):
    """Seesaw's adjusted logits z_j + log S_yj (j ≠ y), S = M·C, with the counts N seen so far:
    ``cum_samples`` plus this batch's labels."""
    c = len(z[0])
    n = [0.0] * c if cum_samples is None else [float(v) for v in cum_samples]
    for t in y:
        n[t] += 1.0
    rows = []
    for row, t in zip(z, y, strict=True):
        lse = logsumexp(list(row))
        sigma = [math.exp(v - lse) for v in row]
        adj = []
        for j, v in enumerate(row):
            if j == t:
                adj.append(v)
                continue
            log_s = 0.0
            if p > 0:
                if n[j] == 0:
                    adj.append(float("-inf"))  # M = 0: a class not seen yet
                    continue
                if n[t] > n[j]:
                    log_s += p * math.log(n[j] / n[t])
            if q > 0:
                ratio = sigma[j] / max(sigma[t], eps)
                if ratio > 1:
                    log_s += q * math.log(ratio)
            adj.append(v + log_s)
        rows.append(adj)
    return rows


def _ce_finite(row, t):
    """−log softmax(row)_t with −inf entries (removed from the softmax) allowed."""
    finite = [v for v in row if v != float("-inf")]
    return logsumexp(finite) - row[t]


def seesaw(z, y, p, q, eps, cum_samples=None):
    return [
        _ce_finite(r, t) for r, t in zip(seesaw_rows(z, y, p, q, eps, cum_samples), y, strict=True)
    ]


def seesaw_gradient(z, y, p, q, eps, cum_samples=None):
    """∂ mean ℓ / ∂z with S held constant (mmdetection detaches the softmax):
    (softmax(z + log S) − e_y) / N."""
    out = []
    for r, t in zip(seesaw_rows(z, y, p, q, eps, cum_samples), y, strict=True):
        lse = logsumexp([v for v in r if v != float("-inf")])
        out.append(
            [
                ((0.0 if v == float("-inf") else math.exp(v - lse)) - (1.0 if k == t else 0.0))
                / len(z)
                for k, v in enumerate(r)
            ]
        )
    return out


def _seesaw_loss(z, y, counts, weight, reduction, kw):
    per = seesaw(z, y, kw["p"], kw["q"], kw["eps"], kw["cum_samples"])
    return reduce(per, y, weight, reduction)


REFERENCES["seesaw"] = Reference(
    _seesaw_loss,
    (
        {},
        {"p": 0.5, "q": 1.0, "eps": 0.05},
        {"q": 0.0},
        # (a state argument cannot be a setting: the contract passes the module's state to the
        # function besides the setting; tests/test_losses_longtail.py checks carried counts)
    ),
    gradient=lambda z, y, n, kw: seesaw_gradient(
        z, y, kw["p"], kw["q"], kw["eps"], kw["cum_samples"]
    ),
)
STATE["seesaw"] = lambda m: {
    "cum_samples": None if m.cum_samples is None else m.cum_samples.clone()
}

FAMILY_EQUIVALENCES += [
    {
        "loss": "seesaw",
        "kwargs": {"p": 0.0, "q": 0.0},
        "other": "ce",
        "why": "both factors off (p = q = 0): S = 1, cross-entropy (Wang et al.)",
    },
]


# ----------------------------------------------------------------------- random draws (torch)
def drop_draws(seed, rows, cols, gamma):
    """Softmax EQL's β for ``rows`` × ``cols`` (tail classes): uniform float32 draws < γ from a
    generator seeded with ``seed`` (None: 0, a fresh module's base seed at step 0)."""
    if rows == 0 or cols == 0:
        return [[] for _ in range(rows)]
    g = torch.Generator().manual_seed(0 if seed is None else seed)
    return (torch.rand((rows, cols), generator=g, dtype=torch.float32) < gamma).tolist()


# ------------------------------------------------------------------------------- softmax EQL
def softmax_eql(z, y, counts, threshold, gamma, seed=None):
    """ℓ = −log(e^{z_y} / Σ_k w̃_k e^{z_k}), w̃_k = 1 − β T_λ(f_k)(1 − y_k), f = n / Σn."""
    total = sum(counts)
    tail = [k for k, n in enumerate(counts) if n / total < threshold]
    beta = drop_draws(seed, len(z), len(tail), gamma) if gamma > 0 else None
    out = []
    for i, (row, t) in enumerate(zip(z, y, strict=True)):
        w = [1.0] * len(row)
        if beta is not None:
            for col, k in enumerate(tail):
                if k != t and beta[i][col]:
                    w[k] = 0.0
        denom = [v for k, v in enumerate(row) if w[k] > 0]
        out.append(logsumexp(denom) - row[t])
    return out


REFERENCES["softmax-eql"] = Reference(
    lambda z, y, n, w, r, kw: reduce(
        softmax_eql(z, y, n, kw["threshold"], kw["gamma"], kw["seed"]), y, w, r
    ),
    # λ = 0.05 makes classes 3 and 4 of COUNTS tail classes, λ = 0.1 three of them
    ({}, {"threshold": 0.05}, {"threshold": 0.1, "gamma": 0.5}, {"gamma": 1.0, "threshold": 0.05}),
)
STATE["softmax-eql"] = lambda m: {"seed": m.draw_seed()}


# ------------------------------------------------------------------------------------ EQL v2
def eqlv2_weights(pos, neg, gamma, mu, alpha):
    """(q_c, r_c): r = 1 / (1 + exp(−γ (G⁺/G⁻ − μ))), q = 1 + α (1 − r); ratio 100 where
    nothing is accumulated (the official code's initial value)."""
    q, r = [], []
    for gp, gn in zip(pos, neg, strict=True):
        ratio = 100.0 if gp == 0 and gn == 0 else gp / (gn + 1e-10)
        rc = 1.0 / (1.0 + math.exp(-gamma * (ratio - mu)))
        r.append(rc)
        q.append(1.0 + alpha * (1.0 - rc))
    return q, r


def _bce(x, t):
    """−[t log σ(x) + (1 − t) log(1 − σ(x))], stable."""
    return max(x, 0.0) - x * t + math.log1p(math.exp(-abs(x)))


def eqlv2(z, y, gamma, mu, alpha, pos=None, neg=None):
    c = len(z[0])
    if pos is None:
        q, r = [1.0] * c, [1.0] * c
    else:
        q, r = eqlv2_weights(pos, neg, gamma, mu, alpha)
    return [
        sum((q[k] if k == t else r[k]) * _bce(v, 1.0 if k == t else 0.0) for k, v in enumerate(row))
        for row, t in zip(z, y, strict=True)
    ]


REFERENCES["eqlv2"] = Reference(
    lambda z, y, n, w, r, kw: reduce(
        eqlv2(z, y, kw["gamma"], kw["mu"], kw["alpha"], kw["pos_grad"], kw["neg_grad"]), y, w, r
    ),
    # the statistics are state (see seesaw): a fresh module has weights 1 whatever γ, μ, α; the
    # weighted forms are checked in tests/test_losses_longtail.py
    ({}, {"gamma": 6.0, "mu": 0.5, "alpha": 2.0}),
)
STATE["eqlv2"] = lambda m: {
    "pos_grad": None if m.pos_grad is None else m.pos_grad.clone(),
    "neg_grad": None if m.neg_grad is None else m.neg_grad.clone(),
}


def sum_of_bce_on_one_hot(z, y, reduction):
    """Σ_c BCE(z_c, [c = y]) per sample (the official EQL v2's ``Σ BCE / n`` for "mean")."""
    per = F.binary_cross_entropy_with_logits(
        z, F.one_hot(y, z.shape[1]).to(z), reduction="none"
    ).sum(1)
    return per if reduction == "none" else per.mean()


FAMILY_EQUIVALENCES += [
    {
        "loss": "softmax-eql",
        "kwargs": {"threshold": 0.0},
        "other": "ce",
        "why": "λ = 0: no tail class, every w̃ = 1, cross-entropy (Tan et al. 2020)",
    },
    {
        "loss": "softmax-eql",
        "kwargs": {"threshold": 0.5, "gamma": 0.0},
        "other": "ce",
        "why": "γ = 0: β is never 1, cross-entropy (Tan et al. 2020)",
    },
    {
        "loss": "eqlv2",
        "kwargs": {},
        "other": sum_of_bce_on_one_hot,
        "why": "no statistics yet: every weight 1, the sigmoid BCE summed over classes (Tan 2021)",
    },
]
