"""Loop-based transcriptions of the regression-as-classification losses (HL-Gauss, two-hot, R2CCP,
Z-Error, NTL-MSE, NTL-WAS) and of LDR-KL, ALDR-KL, OVR and SOVR, from the papers' formulas (and,
where longtail follows it, the official code's), in plain Python floats. Shares no code with
longtail.

"value" losses get real targets; a target's class, for the per-class ``weight``, is the class
whose value is nearest (ties to the larger value).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

import longtail as lt
from _reference import FAMILY_EQUIVALENCES, REFERENCES, STATE, C, Reference, logsumexp, reduce


# ------------------------------------------------------------------------------------ helpers
def _values(kw) -> list[float]:
    v = kw.get("values")
    return [float(k) for k in range(C)] if v is None else [float(x) for x in v]


def _softmax(row: list[float]) -> list[float]:
    m = max(row)
    e = [math.exp(x - m) for x in row]
    s = sum(e)
    return [x / s for x in e]


def _nearest(y: float, v: list[float]) -> int:
    """The class whose value is nearest y; a tie (y half-way) goes to the larger value."""
    return sum(1 for a, b in itertools.pairwise(v) if (a + b) / 2 <= y)


def _value_loss(per_sample):
    """A Reference.loss for a "value" loss: ``per_sample(row, y, v, kw)``, weight by nearest
    class."""

    def loss(z, t, counts, weight, reduction, kw):
        v = _values(kw)
        out = [per_sample(list(row), float(y), v, kw) for row, y in zip(z, t, strict=True)]
        return reduce(out, [_nearest(float(y), v) for y in t], weight, reduction)

    return loss


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# ------------------------------------------------------------------------------------ HL-Gauss
def hl_gauss_row(z, y, v, kw):
    """Imani & White / Farebrother et al.: q_k = mass of N(y, σ²) on bin k, renormalised over
    the bins; bins around the values, edges at the midpoints and half a gap past the ends."""
    n = len(v)
    edges = [v[0] - (v[1] - v[0]) / 2]
    edges += [(v[k] + v[k + 1]) / 2 for k in range(n - 1)]
    edges += [v[-1] + (v[-1] - v[-2]) / 2]
    sigma = kw["sigma_ratio"] * (v[-1] - v[0]) / (n - 1)
    cdf = [_phi((e - y) / sigma) for e in edges]
    total = cdf[-1] - cdf[0]
    lse = logsumexp(z)
    return -sum((cdf[k + 1] - cdf[k]) / total * (z[k] - lse) for k in range(n))


def two_hot_row(z, y, v, kw):
    """Farebrother et al.: mass 1 − a on v_k, a on v_{k+1}, v_k ≤ y ≤ v_{k+1}."""
    k = max(j for j in range(len(v) - 1) if v[j] <= y)
    a = (y - v[k]) / (v[k + 1] - v[k])
    lse = logsumexp(z)
    return (1 - a) * (lse - z[k]) + a * (lse - z[k + 1])


def r2ccp_row(z, y, v, kw):
    """Guha et al. (official code's weights): λ Σ q |y − b|^p + τ Σ q log q."""
    q = _softmax(z)
    dist = sum(qk * abs(y - b) ** kw["power"] for qk, b in zip(q, v, strict=True))
    neg_entropy = sum(qk * math.log(qk) for qk in q if qk > 0)
    return kw["loss_weight"] * dist + kw["entropy_weight"] * neg_entropy


def _z_error(z, t, counts, weight, reduction, kw):
    """Godin: squared error of Σ softmax · v, entries with |z-score| > τ masked (batch mean and
    unbiased std of the errors, + 1e-8)."""
    v = _values(kw)
    errs = []
    for row, y in zip(z, t, strict=True):
        q = _softmax(list(row))
        errs.append((float(y) - sum(qk * vk for qk, vk in zip(q, v, strict=True))) ** 2)
    n = len(errs)
    keep = [1.0] * n
    if n >= 2:
        mu = sum(errs) / n
        sd = math.sqrt(sum((e - mu) ** 2 for e in errs) / (n - 1))
        keep = [1.0 if abs((e - mu) / (sd + 1e-8)) <= kw["threshold"] else 0.0 for e in errs]
    w = [1.0 if weight is None else weight[_nearest(float(y), v)] for y in t]
    per = [wi * m * e for wi, m, e in zip(w, keep, errs, strict=True)]
    if reduction == "none":
        return per
    if reduction == "sum":
        return sum(per)
    den = sum(wi * m for wi, m in zip(w, keep, strict=True))
    return sum(per) / den if den > 0 else 0.0


# ---------------------------------------------------------------------- Number Token Losses
def _ntl(wasserstein: bool):
    """Zausinger et al.: CE + λ NTL, NTL-MSE (v_y − Σ p v)², NTL-WAS Σ p |v − v_y|."""

    def loss(z, t, counts, weight, reduction, kw):
        v = _values(kw)
        out = []
        for row, y in zip(z, t, strict=True):
            row = list(row)
            p = _softmax(row)
            ce = logsumexp(row) - row[y]
            if wasserstein:
                ntl = sum(pk * abs(vk - v[y]) for pk, vk in zip(p, v, strict=True))
            else:
                ntl = (v[y] - sum(pk * vk for pk, vk in zip(p, v, strict=True))) ** 2
            out.append(ce + kw["ntl_weight"] * ntl)
        return reduce(out, t, weight, reduction)

    return loss


# ------------------------------------------------------------------------------- LDR / ALDR
def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _normalized(row: list[float], how) -> list[float]:
    """The official code's normalisations: softplus / mean softplus, or z / mean |z|."""
    if how == "softplus":
        sp = [_softplus(x) for x in row]
        m = sum(sp) / len(sp)
        return [s / m for s in sp]
    if how == "l1":
        m = sum(abs(x) for x in row) / len(row)
        return [x / m for x in row]
    return list(row)


def _ldr_value(zt: list[float], y: int, margin: float, lam: float) -> float:
    """λ log (1/C) Σ_k exp((c [k≠y] + z_k − z_y) / λ)."""
    a = [((margin if k != y else 0.0) + zt[k] - zt[y]) / lam for k in range(len(zt))]
    return lam * (logsumexp(a) - math.log(len(zt)))


def _ldr(z, t, counts, weight, reduction, kw):
    out = [
        _ldr_value(_normalized(list(row), kw["normalize"]), y, kw["margin"], kw["lam"])
        for row, y in zip(z, t, strict=True)
    ]
    return reduce(out, t, weight, reduction)


def _aldr_lambda(zt: list[float], lam0: float, alpha: float) -> float:
    """One step from λ₀: p = softmax(z/λ₀), λ = λ₀ − λ₀ KL(p ‖ 1/C) / (α log C)."""
    c = len(zt)
    p = _softmax([x / lam0 for x in zt])
    kl = sum(pk * math.log(c * pk) for pk in p if pk > 0)
    return lam0 - lam0 * kl / (alpha * math.log(c))


def _aldr(z, t, counts, weight, reduction, kw):
    lam0, alpha = kw["lam"], kw["alpha"]
    out = []
    for row, y in zip(z, t, strict=True):
        zt = _normalized(list(row), kw["normalize"])
        lam = _aldr_lambda(zt, lam0, alpha)
        penalty = alpha * math.log(len(zt)) / (2 * lam0) * (lam - lam0) ** 2
        out.append(_ldr_value(zt, y, kw["margin"], lam) - penalty)
    return reduce(out, t, weight, reduction)


def _aldr_gradient(z, t, counts, kw):
    """∂ mean ℓ / ∂z with λ_i a constant (the official code detaches it): on the normalised
    scores softmax((c[k≠y] + z̃)/λ_i) − e_y, then through the normalisation's Jacobian."""
    lam0, alpha, how = kw["lam"], kw["alpha"], kw["normalize"]
    n = len(z)
    rows = []
    for row, y in zip(z, t, strict=True):
        row = list(row)
        c = len(row)
        zt = _normalized(row, how)
        lam = _aldr_lambda(zt, lam0, alpha)
        s = _softmax([((kw["margin"] if k != y else 0.0) + zt[k]) / lam for k in range(c)])
        g = [s[k] - (1.0 if k == y else 0.0) for k in range(c)]  # ∂ℓ/∂z̃
        if how == "l1":
            m = sum(abs(x) for x in row) / c
            dot = sum(gk * xk for gk, xk in zip(g, row, strict=True))
            g = [
                g[j] / m - math.copysign(1.0, row[j]) * dot / (c * m * m) if row[j] else g[j] / m
                for j in range(c)
            ]
        elif how == "softplus":
            sp = [_softplus(x) for x in row]
            m = sum(sp) / c
            dot = sum(gk * sk for gk, sk in zip(g, sp, strict=True))
            sig = [1 / (1 + math.exp(-x)) for x in row]
            g = [sig[j] * (g[j] / m - dot / (c * m * m)) for j in range(c)]
        rows.append([gj / n for gj in g])
    return rows


# ------------------------------------------------------------------------------- OVR / SOVR
def _ovr_row(row: list[float], y: int) -> float:
    """Kanai et al.: softplus(−z_y) + Σ_{k≠y} softplus(z_k)."""
    return _softplus(-row[y]) + sum(_softplus(x) for k, x in enumerate(row) if k != y)


def _ovr(z, t, counts, weight, reduction, kw):
    return reduce([_ovr_row(list(r), y) for r, y in zip(z, t, strict=True)], t, weight, reduction)


def _sovr(z, t, counts, weight, reduction, kw):
    """OVR for the ⌊ρ n⌋ entries of smallest margin z_y − max_{k≠y} z_k (ties by position)."""
    rows = [list(r) for r in z]
    margins = [
        r[y] - max(x for k, x in enumerate(r) if k != y) for r, y in zip(rows, t, strict=True)
    ]
    k = int(kw["ratio"] * len(rows))
    switched = set(sorted(range(len(rows)), key=lambda i: (margins[i], i))[:k])
    out = [
        _ovr_row(r, y) if i in switched else logsumexp(r) - r[y]
        for i, (r, y) in enumerate(zip(rows, t, strict=True))
    ]
    return reduce(out, t, weight, reduction)


# ------------------------------------------------------------------------------ the references
UNEVEN = [-1.0, 0.5, 2.0, 3.0, 5.0]  # increasing, unequal gaps, spanning the targets in [0, 4]
SHUFFLED = [2.0, -1.0, 0.5, 4.0, 3.0]  # number tokens need no order

REFERENCES["hl-gauss"] = Reference(
    _value_loss(hl_gauss_row),
    ({}, {"sigma_ratio": 0.3}, {"values": UNEVEN, "sigma_ratio": 1.5}),
)
REFERENCES["two-hot"] = Reference(_value_loss(two_hot_row), ({}, {"values": UNEVEN}))
REFERENCES["r2ccp"] = Reference(
    _value_loss(r2ccp_row),
    (
        {},
        {"power": 1.0, "loss_weight": 1.0, "entropy_weight": 0.2},  # the paper's form, τ = 0.2
        {"values": UNEVEN, "power": 2.0, "entropy_weight": 0.0},
    ),
)
REFERENCES["z-error"] = Reference(
    _z_error, ({}, {"threshold": 1.0}, {"threshold": 0.5, "values": UNEVEN})
)
REFERENCES["ntl-mse"] = Reference(_ntl(False), ({}, {"ntl_weight": 0.3, "values": SHUFFLED}))
REFERENCES["ntl-was"] = Reference(_ntl(True), ({}, {"ntl_weight": 2.0, "values": SHUFFLED}))
REFERENCES["ldr-kl"] = Reference(
    _ldr,
    (
        {},
        {"normalize": None, "margin": 1.0, "lam": 1.0},
        {"normalize": "l1", "margin": 0.3, "lam": 0.5},
    ),
)
REFERENCES["aldr-kl"] = Reference(
    _aldr,
    (
        {},
        {"normalize": None, "margin": 0.5, "lam": 1.0, "alpha": 3.0},
        {"normalize": "softplus", "lam": 0.5, "alpha": 1.5},
    ),
    gradient=_aldr_gradient,
)
# ALDR-KL's state is per training sample: the module's table is read and written only by a call
# with the samples' dataset indices, crit(logits, target, index) (tests/test_losses_regcls.py
# checks it against the function with lambdas=table[index]). A call without them, as the
# contract's, starts every entry from λ₀: the function's lambdas=None.
STATE["aldr-kl"] = lambda module: {"lambdas": None}
REFERENCES["ovr"] = Reference(_ovr)
REFERENCES["sovr"] = Reference(_sovr, ({}, {"ratio": 0.75}, {"ratio": 1.0}))


# ------------------------------------------------------------------------------ equivalences
def _reduced(per: torch.Tensor, reduction: str) -> torch.Tensor:
    return per if reduction == "none" else per.sum() if reduction == "sum" else per.mean()


def ce_minus_log_c(z, y, reduction):
    return _reduced(F.cross_entropy(z, y, reduction="none") - math.log(z.shape[1]), reduction)


def crammer_singer(margin: float):
    def crammer_singer_hinge(z, y, reduction):
        idx = y.unsqueeze(1)
        zy = z.gather(1, idx).squeeze(1)
        worst = (z + margin).scatter(1, idx, float("-inf")).amax(1)
        return _reduced((worst - zy).clamp_min(0), reduction)

    return crammer_singer_hinge


def bce_one_hot_summed(z, y, reduction):
    target = F.one_hot(y, z.shape[1]).to(z)
    per = F.binary_cross_entropy_with_logits(z, target, reduction="none").sum(1)
    return _reduced(per, reduction)


def mse_of_expected_value(z, y, reduction):
    values = torch.arange(z.shape[1], dtype=z.dtype)
    return _reduced((y.to(z) - z.softmax(1) @ values).square(), reduction)


def ce_plus_expected_distance(weight: float):
    def ce_plus_r2ccp_distance(z, y, reduction):
        ce = F.cross_entropy(z, y, reduction=reduction)
        dist = lt.functional.r2ccp_loss(
            z, y, power=1.0, loss_weight=1.0, entropy_weight=0.0, reduction=reduction
        )
        return ce + weight * dist

    return ce_plus_r2ccp_distance


# The contract's equivalence test draws integer targets: for the "value" losses they are the
# classes' values 0..C-1 (the default values), where a target's distribution is its one-hot.
FAMILY_EQUIVALENCES += [
    {
        "loss": "hl-gauss",
        "kwargs": {"sigma_ratio": 1e-6},
        "other": "ce",
        "why": "σ → 0 puts the Gaussian's mass in the bin holding y: the one-hot of a class value "
        "(Imani & White; Farebrother et al.)",
    },
    {
        "loss": "two-hot",
        "kwargs": {},
        "other": "ce",
        "why": "the two-hot of a class value is its one-hot (Farebrother et al.)",
    },
    {
        "loss": "hl-gauss",
        "kwargs": {"sigma_ratio": 1e-6},
        "other": "two-hot",
        "why": "σ → 0: HL-Gauss and two-hot agree at the class values (between them, HL-Gauss "
        "tends to the nearest class's one-hot instead: tests/test_losses_regcls.py)",
    },
    {
        "loss": "ntl-mse",
        "kwargs": {"ntl_weight": 0.0},
        "other": "ce",
        "why": "λ = 0 leaves the cross-entropy of L_CE + λ L_NTL (Zausinger et al.)",
    },
    {
        "loss": "ntl-was",
        "kwargs": {"ntl_weight": 0.0},
        "other": "ce",
        "why": "λ = 0 leaves the cross-entropy of L_CE + λ L_NTL (Zausinger et al.)",
    },
    {
        "loss": "ntl-was",
        "kwargs": {"ntl_weight": 0.7},
        "other": ce_plus_expected_distance(0.7),
        "why": "W1 to a point mass is the expected distance: NTL-WAS is R2CCP's distance term "
        "with p = 1 (Zausinger et al.; Guha et al.)",
    },
    {
        "loss": "z-error",
        "kwargs": {"threshold": 1e9},
        "other": mse_of_expected_value,
        "why": "τ → ∞ masks nothing: the squared error of the predicted value (Godin)",
    },
    {
        "loss": "ldr-kl",
        "kwargs": {"lam": 1.0, "margin": 0.0, "normalize": None},
        "other": ce_minus_log_c,
        "why": "λ = 1, c = 0: cross-entropy minus log C (Zhu et al.)",
    },
    {
        "loss": "ldr-kl",
        "kwargs": {"lam": 1e-9, "margin": 0.5, "normalize": None},
        "other": crammer_singer(0.5),
        "why": "λ → 0: the Crammer-Singer hinge with margin c (Zhu et al.)",
    },
    {
        "loss": "aldr-kl",
        "kwargs": {"alpha": 1e12, "normalize": "softplus"},
        "other": "ldr-kl",
        "other_kwargs": {"normalize": "softplus"},
        "why": "α → ∞ keeps every λ_i at λ₀ and the penalty vanishes: LDR-KL (Zhu et al.)",
    },
    {
        "loss": "aldr-kl",
        "kwargs": {"alpha": 1e12, "normalize": None, "lam": 1.0, "margin": 0.0},
        "other": ce_minus_log_c,
        "why": "α → ∞, λ₀ = 1, c = 0, raw scores: cross-entropy minus log C (Zhu et al.)",
    },
    {
        "loss": "ovr",
        "kwargs": {},
        "other": bce_one_hot_summed,
        "why": "one logistic loss per class: BCE with logits on the one-hot, summed (Kanai et al.)",
    },
    {
        "loss": "sovr",
        "kwargs": {"ratio": 0.0},
        "other": "ce",
        "why": "no sample switched: cross-entropy (Kanai et al.)",
    },
    {
        "loss": "sovr",
        "kwargs": {"ratio": 1.0},
        "other": "ovr",
        "why": "every sample switched: the one-vs-rest loss (Kanai et al.)",
    },
]
