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

from _reference import (
    FAMILY_EQUIVALENCES,
    REFERENCES,
    STATE,
    Reference,
    ce_row,
    logsumexp,
    reduce,
)


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


# --------------------------------------------------------------------------------------- CDT
def cdt(z, y, counts, gamma):
    """CE(z_c / a_c), a_c = (n_max / n_c)^γ."""
    top = max(counts)
    a = [(top / n) ** gamma for n in counts]
    return [ce_row([v / a[c] for c, v in enumerate(row)], t) for row, t in zip(z, y, strict=True)]


REFERENCES["cdt"] = Reference(
    lambda z, y, n, w, r, kw: reduce(cdt(z, y, n, kw["gamma"]), y, w, r),
    # the paper's grid ends: 0.2 (CIFAR-100), 0.4 (CIFAR-10)
    ({}, {"gamma": 0.2}, {"gamma": 0.4}),
)


# --------------------------------------------------------------------------------------- GCL
def gcl_draws(seed, rows, c):
    """|δ| for ``rows`` × ``c`` entries, δ = clamp(N(0, 1)/3, −1, 1) from float32 normal draws
    of a generator seeded with ``seed`` (None: 0, a fresh module's base seed at step 0)."""
    if rows == 0:
        return []
    g = torch.Generator().manual_seed(0 if seed is None else seed)
    draws = torch.randn((rows, c), generator=g, dtype=torch.float32).tolist()
    return [[min(abs(v), 3.0) / 3.0 for v in row] for row in draws]


def gcl(z, y, counts, noise_mul, margin, scale, seed=None):
    """CE(s·(z_c − β|δ_c|·(log n_max − log n_c)/(log n_max − log n_min) − m·[c = y]))."""
    logs = [math.log(n) for n in counts]
    top = max(logs) - min(logs)
    cloud = [(max(logs) - v) / top if top > 0 else 0.0 for v in logs]
    noisy = noise_mul != 0 and any(cloud)
    delta = gcl_draws(seed, len(z), len(counts)) if noisy else None
    out = []
    for i, (row, t) in enumerate(zip(z, y, strict=True)):
        adj = []
        for c, v in enumerate(row):
            if noisy:
                v = v - noise_mul * delta[i][c] * cloud[c]
            if c == t:
                v = v - margin
            adj.append(scale * v)
        out.append(ce_row(adj, t))
    return out


REFERENCES["gcl"] = Reference(
    lambda z, y, n, w, r, kw: reduce(
        gcl(z, y, n, kw["noise_mul"], kw["margin"], kw["scale"], kw["seed"]), y, w, r
    ),
    # the official GCLLoss class's defaults (β = 1, m = 0.5), and a smaller scale
    ({}, {"noise_mul": 1.0, "margin": 0.5}, {"noise_mul": 0.2, "scale": 10.0}),
)
STATE["gcl"] = lambda m: {"seed": m.draw_seed()}


# ---------------------------------------------------------------------------------------- IB
def ib(z, y, feature_norm, alpha, epsilon):
    """α·CE / (‖p − e_y‖₁·‖h‖₁ + ε), ‖p − e_y‖₁ summed over the classes."""
    out = []
    for row, t, h in zip(z, y, feature_norm, strict=True):
        lse = logsumexp(list(row))
        p = [math.exp(v - lse) for v in row]
        grad_l1 = sum(abs(pc - (1.0 if c == t else 0.0)) for c, pc in enumerate(p))
        out.append((lse - row[t]) * alpha / (grad_l1 * h + epsilon))
    return out


def _ib_loss(z, y, counts, weight, reduction, kw):
    # stage 2 needs a feature norm per sample, which the contract's calls do not pass: the
    # contract checks stage 1 (the default); tests/test_losses_longtail.py checks stage 2
    assert kw["stage"] == 1
    return reduce([ce_row(list(row), t) for row, t in zip(z, y, strict=True)], y, weight, reduction)


REFERENCES["ib"] = Reference(_ib_loss, ({}, {"alpha": 100.0, "epsilon": 0.01}))
STATE["ib"] = lambda m: {"stage": m.stage}


# --------------------------------------------------------------------- label-aware smoothing
def label_aware_epsilons(counts, head, tail, shape):
    n1, nk = max(counts), min(counts)
    out = []
    for n in counts:
        u = (n - nk) / (n1 - nk) if n1 > nk else 1.0
        if shape == "concave":
            out.append(tail + (head - tail) * math.sin(u * math.pi / 2))
        elif shape == "linear":
            out.append(tail + (head - tail) * u)
        else:
            out.append(head + (head - tail) * math.sin(1.5 * math.pi + u * math.pi / 2))
    return out


def label_aware_smoothing(z, y, counts, head, tail, shape):
    """(1 − ε_y)(−log p_y) + ε_y mean_c(−log p_c)."""
    eps = label_aware_epsilons(counts, head, tail, shape)
    out = []
    for row, t in zip(z, y, strict=True):
        lse = logsumexp(list(row))
        nll = [lse - v for v in row]
        out.append((1 - eps[t]) * nll[t] + eps[t] * sum(nll) / len(nll))
    return out


REFERENCES["label-aware-smoothing"] = Reference(
    lambda z, y, n, w, r, kw: reduce(
        label_aware_smoothing(z, y, n, kw["smooth_head"], kw["smooth_tail"], kw["shape"]), y, w, r
    ),
    # the official CIFAR-100-LT setting, and the other two schedules
    (
        {},
        {"smooth_head": 0.4, "smooth_tail": 0.1},
        {"shape": "linear", "smooth_tail": 0.05},
        {"shape": "convex", "smooth_head": 0.4, "smooth_tail": 0.1},
    ),
)


# -------------------------------------------------------------------------------------- LADE
def lade_lader(z, y, counts, lam):
    """The official LADELoss: −Σ_c π_c [first_c − T_c − λ T_c²] over every class, first_c the
    mean of z_ic over the batch's samples of class c (0 if none), T_c = logsumexp_i(z_ic −
    log π_c + log(1/C)) − log N."""
    total, c, n = sum(counts), len(counts), len(z)
    pi = [k / total for k in counts]
    out = 0.0
    for k in range(c):
        own = [row[k] for row, t in zip(z, y, strict=True) if t == k]
        first = sum(own) / len(own) if own else 0.0
        t_k = logsumexp([row[k] - math.log(pi[k]) + math.log(1.0 / c) for row in z]) - math.log(n)
        out -= pi[k] * (first - t_k - lam * t_k**2)
    return out


def lade_pc_ce(z, y, counts):
    total = sum(counts)
    return [
        ce_row([v + math.log(counts[c] / total) for c, v in enumerate(row)], t)
        for row, t in zip(z, y, strict=True)
    ]


def lade_per_sample(z, y, counts, alpha, lam):
    """The per-sample shares (their mean is PC-CE mean + α·LADER): CE_i + α (−N π_y z_iy / N_y
    + Σ_c π_c (T_c + λ T_c²))."""
    total, c, n = sum(counts), len(counts), len(z)
    pi = [k / total for k in counts]
    shared = 0.0
    for k in range(c):
        t_k = logsumexp([row[k] - math.log(pi[k]) - math.log(c) for row in z]) - math.log(n)
        shared += pi[k] * (t_k + lam * t_k**2)
    n_c = [sum(1 for t in y if t == k) for k in range(c)]
    ce = lade_pc_ce(z, y, counts)
    return [
        ce_i + alpha * (-n * pi[t] * row[t] / n_c[t] + shared)
        for ce_i, row, t in zip(ce, z, y, strict=True)
    ]


def _lade_loss(z, y, counts, weight, reduction, kw):
    return reduce(
        lade_per_sample(z, y, counts, kw["alpha"], kw["remine_lambda"]), y, weight, reduction
    )


REFERENCES["lade"] = Reference(
    _lade_loss,
    # the official iNaturalist 2018 setting, and a strong regulariser
    ({}, {"alpha": 0.05, "remine_lambda": 0.5}, {"alpha": 1.0}),
)


# ----------------------------------------------------------------------------------- Bal-BCE
def balanced_bce(z, target, counts, weight=None, reduction="mean", eps=0.0):
    """w_c·BCE(z_ic + log π_c − log(1 − π_c), t_ic); "mean" = C × the element mean."""
    total, c = sum(counts), len(counts)
    bias = [math.log(k / total) - math.log(1 - k / total) for k in counts]
    w = [1.0] * c if weight is None else list(weight)
    rows = []
    for row, t in zip(z, _onehot_rows(target, c), strict=True):
        rows.append(
            [w[k] * _bce(v + bias[k], (1 - eps) * t[k] + eps / c) for k, v in enumerate(row)]
        )
    if reduction == "none":
        return rows
    s = sum(sum(r) for r in rows)
    return s if reduction == "sum" else c * s / (len(rows) * c)


REFERENCES["bal-bce"] = Reference(
    lambda z, t, n, w, r, kw: balanced_bce(z, t, n, w, r, kw.get("label_smoothing", 0.0)),
    ({}, {"label_smoothing": 0.1}),  # LiVT's smoothing
)


# ------------------------------------------------------------------------------ equivalences
def scaled_ce_30(z, y, reduction):
    """CE(30 z): GCL without noise or margin (and LDAM without margin)."""
    return F.cross_entropy(30.0 * z, y, reduction=reduction)


def bce_shifted_by_uniform_prior(z, y, reduction):
    """C × BCE(z − log(C − 1), one-hot): Bal-BCE with equal counts (π = 1/C)."""
    c = z.shape[1]
    loss = F.binary_cross_entropy_with_logits(
        z - math.log(c - 1), F.one_hot(y, c).to(z), reduction="none"
    )
    return loss if reduction == "none" else loss.sum(1).mean()


UNIFORM_COUNTS = (20.0,) * 5

FAMILY_EQUIVALENCES += [
    {"loss": "cdt", "kwargs": {"gamma": 0.0}, "other": "ce", "why": "γ = 0: every a_c = 1 (Ye)"},
    {
        "loss": "cdt",
        "kwargs": {"gamma": 0.3},
        "other": "vs",
        "other_kwargs": {"gamma": 0.3, "tau": 0.0},
        "why": "CDT's 1/a_c is VS's Δ_c = (n_c/n_max)^γ; VS with τ = 0 has no additive term",
    },
    {
        "loss": "gcl",
        "kwargs": {"noise_mul": 0.0, "margin": 0.0},
        "other": scaled_ce_30,
        "why": "no cloud, no margin: CE(s z) (Li et al.)",
    },
    {
        "loss": "gcl",
        "kwargs": {"margin": 0.3},
        "other": "ldam",
        "other_kwargs": {"max_margin": 0.3},
        "why": "equal counts: no cloud; the margin m on the target, as LDAM's with equal counts",
        "counts": UNIFORM_COUNTS,
    },
    {"loss": "ib", "kwargs": {}, "other": "ce", "why": "stage 1 is cross-entropy (Park et al.)"},
    {
        "loss": "label-aware-smoothing",
        "kwargs": {"smooth_head": 0.0, "smooth_tail": 0.0},
        "other": "ce",
        "why": "ε = 0 for every class: cross-entropy (Zhong et al.)",
    },
    {
        "loss": "label-aware-smoothing",
        "kwargs": {"smooth_head": 0.1, "smooth_tail": 0.1, "shape": "convex"},
        "other": "ce",
        "other_kwargs": {"label_smoothing": 0.1},
        "why": "the same ε for every class is torch's label smoothing",
    },
    {
        "loss": "lade",
        "kwargs": {"alpha": 0.0},
        "other": "logit-adjusted",
        "other_kwargs": {"tau": 1.0},
        "why": "without LADER, LADE-CE is the PC softmax CE(z + log π) (Hong et al.)",
    },
    {
        "loss": "bal-bce",
        "kwargs": {},
        "other": bce_shifted_by_uniform_prior,
        "why": "equal counts: every bias is log(1/C) − log(1 − 1/C) = −log(C − 1) (Xu et al.)",
        "counts": UNIFORM_COUNTS,
    },
]
