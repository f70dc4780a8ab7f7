"""Loop-based transcriptions of the binary / multi-label losses (family "multilabel") beyond
sigmoid focal (whose transcription is in tests/_reference.py): EnsLoss.

* ``ensloss`` — Dai, ICML 2025, step by step as the official ``ensLoss.forward``
  (``statmlben/ensLoss``, ``losses.py``): margins ỹz with ỹ = 2t − 1; one N(0, 1) draw per
  entry, −BC⁻¹_λ of it, sorted, floored at −1, given to the entries in order of their margins;
  divided by the margin where it exceeds 1; minus 1e-6; ℓ = g·s. Two details are longtail's and
  are written out here as its docstring states them: the (N, C) entries are ranked together, and
  tied margins share the mean of the derivatives that fall to them.

The random numbers are drawn with a ``torch.Generator`` seeded as longtail's modules document
(``seed + step·φ + rank·ψ``; a fresh module is at step 0 on rank 0, so its draw seed is the base
seed, 0 for None); everything around the draw is written out here in Python floats, one entry at a
time, sharing no code with longtail.
"""

from __future__ import annotations

import math

import torch

from _reference import REFERENCES, STATE, Reference, reduce_elements


def _rows(target, c):
    """0/1 (or soft) rows as they are; class indices as one-hot rows."""
    out = []
    for t in target:
        if isinstance(t, list):
            out.append([float(v) for v in t])
        else:
            out.append([1.0 if k == t else 0.0 for k in range(c)])
    return out


def normal_draws(seed, count):
    """``count`` float32 N(0, 1) draws of a CPU generator seeded with ``seed`` (None: 0)."""
    if count == 0:
        return []
    g = torch.Generator().manual_seed(0 if seed is None else seed)
    return torch.randn(count, generator=g, dtype=torch.float32).tolist()


def inverse_box_cox(e, lam):
    if lam == 0:
        return math.exp(e)
    base = 1.0 + lam * e
    if base <= 0:
        return math.inf if lam < 0 else 0.0
    return base ** (1.0 / lam)


def ensloss_slopes(z, target, lam, seed):
    """(margins, derivatives g) of every entry, rows of C, for one draw."""
    c = len(z[0]) if z else 0
    t = _rows(target, c)
    margins = [[(2.0 * t[i][k] - 1.0) * z[i][k] for k in range(c)] for i in range(len(z))]
    flat = [(margins[i][k], i, k) for i in range(len(z)) for k in range(c)]
    # the official code: rd_grad = sort(−BC⁻¹(randn)); rd_grad = maximum(rd_grad, −1)
    drawn = sorted(-inverse_box_cox(e, lam) for e in normal_draws(seed, len(flat)))
    drawn = [max(v, -1.0) for v in drawn]
    # g_batch[argsort(s)] = rd_grad: the j-th smallest margin gets the j-th smallest derivative
    ranked = sorted(range(len(flat)), key=lambda j: flat[j][0])
    g = [[0.0] * c for _ in z]
    start = 0
    while start < len(ranked):  # a run of equal margins shares its derivatives' mean
        stop = start
        while stop + 1 < len(ranked) and flat[ranked[stop + 1]][0] == flat[ranked[start]][0]:
            stop += 1
        share = sum(drawn[start : stop + 1]) / (stop - start + 1)
        for j in ranked[start : stop + 1]:
            s, i, k = flat[j]
            gi = share / s if s > 1.0 else share  # the tail: g / s where s > 1
            g[i][k] = gi - 1e-6  # g(0) < 0: calibrated
        start = stop + 1
    return margins, g, t


def ensloss(z, target, lam, seed):
    margins, g, _ = ensloss_slopes(z, target, lam, seed)
    return [
        [gv * s for gv, s in zip(gr, sr, strict=True)] for gr, sr in zip(g, margins, strict=True)
    ]


def ensloss_gradient(z, target, lam, seed):
    """∂ mean ℓ / ∂z with g held constant: g·ỹ / (N·C)."""
    _, g, t = ensloss_slopes(z, target, lam, seed)
    count = sum(len(r) for r in z)
    return [
        [gv * (2.0 * tv - 1.0) / count for gv, tv in zip(gr, tr, strict=True)]
        for gr, tr in zip(g, t, strict=True)
    ]


REFERENCES["ensloss"] = Reference(
    lambda z, t, n, w, r, kw: reduce_elements(ensloss(z, t, kw["lam"], kw["seed"]), w, r),
    # λ > 0 floors part of the draws at 0 (max(1 + λε, 0)), λ < 0 sends part of them to −1; the
    # seed is state (STATE below: the module's step seed), so no setting names it
    ({}, {"lam": 0.5}, {"lam": -0.5}, {"lam": 1.0}),
    gradient=lambda z, t, n, kw: ensloss_gradient(z, t, kw["lam"], kw["seed"]),
)
STATE["ensloss"] = lambda m: {"seed": m.draw_seed()}
