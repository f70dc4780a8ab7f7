"""Independent, loop-based transcriptions of each paper's formula (float64, pure Python math).

These are deliberately naive: one sample at a time, one class at a time, written from the papers'
equations (and METHODS.md), sharing no code with longtail. Tests compare longtail against them.
"""

from __future__ import annotations

import math


def logsumexp(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ce_row(row: list[float], y: int) -> float:
    """−log softmax(row)_y."""
    return logsumexp(row) - row[y]


def ce(z, y) -> list[float]:
    return [ce_row(list(r), t) for r, t in zip(z, y, strict=True)]


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
    w = [1.0 if weight is None else weight[t] for t in y]
    if reduction == "none":
        return [wi * li for wi, li in zip(w, losses, strict=True)]
    total = sum(wi * li for wi, li in zip(w, losses, strict=True))
    if reduction == "sum":
        return total
    return total / sum(w)
