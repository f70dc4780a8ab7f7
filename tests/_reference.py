"""Independent, loop-based transcriptions of each paper's formula (float64, pure Python math).

These are deliberately naive: one sample at a time, one class at a time, written from the papers'
equations, sharing no code with longtail. Tests compare longtail against them.

:data:`REFERENCES` maps every registered loss to its transcription; the registry-wide contract
(tests/test_loss_contract.py) checks each loss against its entry, and *fails* for a loss without
one. A new loss adds one entry here (see :class:`Reference`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The problem every reference is checked on: C classes with these training counts (long-tailed,
#: all > 0). Per-class settings in :data:`REFERENCES` have C entries.
COUNTS = [500, 120, 40, 9, 2]
C = len(COUNTS)


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ce_row(row: list[float], y: int) -> float:
    """−log softmax(row)_y."""
    return logsumexp(row) - row[y]


def ce(z, y) -> list[float]:
    return [ce_row(list(r), t) for r, t in zip(z, y, strict=True)]


def ce_smoothed(z, y, weight=None, reduction="mean", eps=0.0):
    """torch's label-smoothed, weighted cross-entropy, written out:
    ℓ_i = (1−ε) w_y (−log p_y) + ε/C Σ_c w_c (−log p_c); "mean" divides by Σ_i w_{y_i}."""
    c = len(z[0])
    w = [1.0] * c if weight is None else list(weight)
    per, den = [], 0.0
    for row, t in zip(z, y, strict=True):
        nll = [ce_row(list(row), k) for k in range(c)]
        per.append((1 - eps) * w[t] * nll[t] + eps / c * sum(w[k] * nll[k] for k in range(c)))
        den += w[t]
    if reduction == "none":
        return per
    return sum(per) if reduction == "sum" else sum(per) / den


def ldam_margins(counts, max_m=0.5) -> list[float]:
    raw = [n ** (-0.25) for n in counts]
    top = max(raw)
    return [max_m * r / top for r in raw]


def ldam(z, y, counts, max_m=0.5, s=30.0) -> list[float]:
    m = ldam_margins(counts, max_m)
    out = []
    for row, t in zip(z, y, strict=True):
        adj = [s * (v - (m[t] if c == t else 0.0)) for c, v in enumerate(row)]
        out.append(ce_row(adj, t))
    return out


def mm_delta_row(row, t, delta_minus, beta) -> float:
    """Δ of the seed paper: Δ⁺ if argmax_j z_j = y (ties count as y), else Δ⁻."""
    others = [v for c, v in enumerate(row) if c != t]
    max_other = max(others)
    is_argmax = row[t] >= max_other
    if is_argmax:
        return math.exp(-max(row[t] - max_other, 0.0) - beta * delta_minus)
    return math.exp(-max(max_other - row[t], 0.0) - delta_minus)


def mm(z, y, delta_minus, beta, s=30.0, counts=None, max_m=0.5) -> list[float]:
    """MM loss; with ``counts`` the MM-LDAM variant (δ⁻_i = δ⁻ − m_{y_i})."""
    m = ldam_margins(counts, max_m) if counts is not None else None
    out = []
    for row, t in zip(z, y, strict=True):
        dm = delta_minus - (m[t] if m is not None else 0.0)
        d = mm_delta_row(list(row), t, dm, beta)
        adj = [s * (v - (d if c == t else 0.0)) for c, v in enumerate(row)]
        out.append(ce_row(adj, t))
    return out


def mm_gradient(z, y, delta_minus, beta, s=30.0, counts=None, max_m=0.5) -> list[list[float]]:
    """∂ mean ℓ / ∂z of the MM loss with Δ a constant (the official code's no_grad):
    s (softmax(s(z − Δ e_y)) − e_y) / N, row by row."""
    m = ldam_margins(counts, max_m) if counts is not None else None
    out = []
    for row, t in zip(z, y, strict=True):
        d = mm_delta_row(list(row), t, delta_minus - (m[t] if m is not None else 0.0), beta)
        adj = [s * (v - (d if c == t else 0.0)) for c, v in enumerate(row)]
        lse = logsumexp(adj)
        out.append(
            [s * (math.exp(a - lse) - (1.0 if c == t else 0.0)) / len(z) for c, a in enumerate(adj)]
        )
    return out


def focal(z, y, gamma, alpha=None) -> list[float]:
    out = []
    for row, t in zip(z, y, strict=True):
        lse = logsumexp(list(row))
        p = math.exp(row[t] - lse)
        a = 1.0 if alpha is None else alpha[t]
        out.append(-a * (1 - p) ** gamma * math.log(p))
    return out


def sigmoid_focal(x, t, gamma, alpha, pos_weight=None) -> list[list[float]]:
    out = []
    for xr, tr in zip(x, t, strict=True):
        row = []
        for c, (xv, tv) in enumerate(zip(xr, tr, strict=True)):
            p = 1 / (1 + math.exp(-xv))
            pw = 1.0 if pos_weight is None else pos_weight[c]
            bce = -(pw * tv * math.log(p) + (1 - tv) * math.log(1 - p))
            pt = p * tv + (1 - p) * (1 - tv)
            a = alpha[c] if isinstance(alpha, list) else alpha
            at = 1.0 if a is None else a * tv + (1 - a) * (1 - tv)
            row.append(at * (1 - pt) ** gamma * bce)
        out.append(row)
    return out


def logit_adjusted(z, y, counts, tau=1.0) -> list[float]:
    total = sum(counts)
    return [
        ce_row([v + tau * math.log(counts[c] / total) for c, v in enumerate(row)], t)
        for row, t in zip(z, y, strict=True)
    ]


def balanced_softmax(z, y, counts) -> list[float]:
    return [
        ce_row([v + math.log(counts[c]) for c, v in enumerate(row)], t)
        for row, t in zip(z, y, strict=True)
    ]


def vs(z, y, counts, gamma=0.3, tau=1.0) -> list[float]:
    total, top = sum(counts), max(counts)
    return [
        ce_row(
            [
                (counts[c] / top) ** gamma * v + tau * math.log(counts[c] / total)
                for c, v in enumerate(row)
            ],
            t,
        )
        for row, t in zip(z, y, strict=True)
    ]


def reduce(losses, y, weight=None, reduction="mean"):
    """torch's reduction of per-sample losses: weight w_{y_i}; "mean" is Σ w ℓ / Σ w."""
    w = [1.0 if weight is None else weight[t] for t in y]
    if reduction == "none":
        return [wi * li for wi, li in zip(w, losses, strict=True)]
    total = sum(wi * li for wi, li in zip(w, losses, strict=True))
    if reduction == "sum":
        return total
    return total / sum(w)


def reduce_elements(rows, weight=None, reduction="mean"):
    """BCE's reduction of per-element losses: weight w_c multiplies column c; "mean" is over all
    elements (torchvision's sigmoid focal, ``BCEWithLogitsLoss``)."""
    out = [[(1.0 if weight is None else weight[c]) * v for c, v in enumerate(r)] for r in rows]
    if reduction == "none":
        return out
    total = sum(sum(r) for r in out)
    if reduction == "sum":
        return total
    return total / sum(len(r) for r in out)


# ------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Reference:
    """The transcription of one registered loss.

    Attributes:
        loss: ``(z, target, counts, weight, reduction, kw) -> value``: ``z`` the logits as nested
            lists of floats, ``target`` a list of class indices (``"index"`` losses) or of 0/1
            rows (``"multilabel"``), ``counts`` :data:`COUNTS`, ``weight`` None or a list of C
            floats, ``reduction`` ``"mean" | "sum" | "none"``, ``kw`` the hyper-parameters (the
            registry's defaults updated by one of ``settings``). Returns a float, or a list
            (nested for per-element losses) for ``"none"``.
        settings: hyper-parameters to check besides the defaults (``{}`` is the defaults): pick
            values that make each hyper-parameter matter, from the paper's own settings.
        gradient: for a loss whose registry entry has ``stop_gradient`` (gradcheck cannot check
            it), the gradient its paper's code computes: ``(z, y, counts, kw) -> rows`` of the
            gradient of the unweighted ``"mean"`` with respect to ``z``.
    """

    loss: Callable[..., Any]
    settings: tuple[dict[str, Any], ...] = field(default=({},))
    gradient: Callable[..., Any] | None = None


def _per_sample(fn):
    """A Reference.loss from a per-sample transcription ``fn(z, y, counts, kw)``."""

    def loss(z, y, counts, weight, reduction, kw):
        return reduce(fn(z, y, counts, kw), y, weight, reduction)

    return loss


def _ce(z, y, counts, weight, reduction, kw):
    return ce_smoothed(z, y, weight, reduction, kw.get("label_smoothing", 0.0))


def _sigmoid_focal(z, t, counts, weight, reduction, kw):
    alpha, pw = kw["alpha"], kw["pos_weight"]
    rows = sigmoid_focal(z, t, kw["gamma"], alpha, pw)
    return reduce_elements(rows, weight, reduction)


ALPHA = [0.1, 0.3, 0.5, 0.7, 0.9]  # per-class settings, one value per class of COUNTS
POS_WEIGHT = [1.0, 2.0, 3.0, 0.5, 1.5]

REFERENCES: dict[str, Reference] = {
    "ce": Reference(_ce, ({}, {"label_smoothing": 0.1})),
    "focal": Reference(
        _per_sample(lambda z, y, n, kw: focal(z, y, kw["gamma"], kw["alpha"])),
        ({}, {"gamma": 0.5}, {"gamma": 1.0, "alpha": ALPHA}),
    ),
    "sigmoid-focal": Reference(
        _sigmoid_focal,
        (
            {},
            {"gamma": 0.0, "alpha": None},
            {"gamma": 1.5, "alpha": ALPHA, "pos_weight": POS_WEIGHT},
        ),
    ),
    "ldam": Reference(
        _per_sample(lambda z, y, n, kw: ldam(z, y, n, kw["max_margin"], kw["scale"])),
        ({}, {"max_margin": 0.3, "scale": 10.0}),
    ),
    "mm": Reference(
        _per_sample(lambda z, y, n, kw: mm(z, y, kw["delta_minus"], kw["beta"], kw["scale"])),
        ({}, {"delta_minus": 1.2, "beta": 1.3, "scale": 19.0}),
        gradient=lambda z, y, n, kw: mm_gradient(z, y, kw["delta_minus"], kw["beta"], kw["scale"]),
    ),
    "mm-ldam": Reference(
        _per_sample(
            lambda z, y, n, kw: mm(
                z, y, kw["delta_minus"], kw["beta"], kw["scale"], n, kw["max_margin"]
            )
        ),
        # the official HMM-LDAM script's CIFAR-100 exp-100 setting
        ({}, {"delta_minus": 1.29, "beta": 1.528, "scale": 19.0, "max_margin": 0.4}),
        gradient=lambda z, y, n, kw: mm_gradient(
            z, y, kw["delta_minus"], kw["beta"], kw["scale"], n, kw["max_margin"]
        ),
    ),
    "logit-adjusted": Reference(
        _per_sample(lambda z, y, n, kw: logit_adjusted(z, y, n, kw["tau"])), ({}, {"tau": 0.5})
    ),
    "balanced-softmax": Reference(_per_sample(lambda z, y, n, kw: balanced_softmax(z, y, n))),
    "vs": Reference(
        _per_sample(lambda z, y, n, kw: vs(z, y, n, kw["gamma"], kw["tau"])),
        ({}, {"gamma": 0.2, "tau": 1.5}),
    ),
}


# ------------------------------------------------------------------------- the loss families
# Each family of losses keeps its transcriptions in its own tests/_reference_<family>.py, which
# imports this module and adds to REFERENCES; it may also add equivalences (dicts with the fields
# of test_loss_contract.Equivalence) and visible exemptions. Importing them here means a new
# family touches no shared test file.
FAMILY_EQUIVALENCES: list[dict[str, Any]] = []
FLAT_ONLY: set[str] = set()  # losses that take only (N, C) logits (say why where added)
NO_HALF: set[str] = set()  # losses that refuse float16 / bfloat16 inputs (say why where added)
# Multi-label losses defined on label sets only: they refuse soft targets (ValueError), so the
# properties draw 0/1 targets for them (say why where added).
BINARY_ONLY: set[str] = set()
# Multi-label losses with one value per sample, not per logit: reduction="none" gives the batch
# shape (N, d1, ...) instead of the logits' shape (say why where added).
ROW_LEVEL: set[str] = set()
# Stateful losses (running statistics, a stage, a dual variable): their function takes the state
# explicitly, and STATE[name](module) gives the keyword arguments that pass the module's current
# state to it, so "module == function" is checked on the same state.
STATE: dict[str, Callable[[Any], dict[str, Any]]] = {}

for _path in sorted(Path(__file__).parent.glob("_reference_*.py")):
    importlib.import_module(_path.stem)
