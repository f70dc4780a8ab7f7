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
