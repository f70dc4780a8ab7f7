"""Loop-based transcriptions of the noise-robust and "standard extra" losses, from the papers.

One sample at a time, one class at a time, in plain Python floats; nothing is shared with
longtail. Each loss is written as its paper writes it (RCE as −Σ_k p_k log q_k with log 0 := A,
MAE as Σ_k |p_k − q_k|, comp-sum through u = Σ_{y'≠y} e^{z_{y'} − z_y}, the sparsemax loss through
its sorted support), not through the closed forms longtail computes, so that the two meet only in
the value.
"""

from __future__ import annotations

import math

import torch
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


# --------------------------------------------------------- Mao, Mohri & Zhong, ICML 2023
def comp_sum(row, y, kw) -> float:
    """Φ^τ(u), u = Σ_{y'≠y} exp(z_{y'} − z_y)."""
    tau = kw["tau"]
    u = sum(math.exp(v - row[y]) for j, v in enumerate(row) if j != y)
    if tau == 1.0:
        return math.log(1.0 + u)
    return ((1.0 + u) ** (1.0 - tau) - 1.0) / (1.0 - tau)


# ------------------------------------------------------- Hui, Belkin & Wright, ICML 2023
def squentropy(row, y, kw=None) -> float:
    c = len(row)
    return ce(row, y) + sum(v * v for j, v in enumerate(row) if j != y) / (c - 1)


# ------------------------------------------------------- de Brébisson & Vincent, 2016
def z_loss(row, y, kw) -> float:
    c = len(row)
    mu = sum(row) / c
    var = sum(v * v for v in row) / c - mu * mu
    z = (row[y] - mu) / math.sqrt(var)
    t = kw["a"] * (kw["b"] - z)
    softplus = t + math.log1p(math.exp(-t)) if t > 0 else math.log1p(math.exp(t))
    return softplus / kw["a"]


# ----------------------------------------------------------------- Zhao et al., AAAI 2022
def encouraging(row, y, kw) -> float:
    """−log p + ρ·bonus(p), the conservative bonus: log(1 − p) up to LE, then its tangent
    (the official code, with its clamp of 1 − p at 1e-5 in the log)."""
    p = softmax(row)[y]
    le = kw["log_end"]
    if le < 1.0 and p > le:
        bonus = (p - le) / (le - 1.0) + math.log(1.0 - le)
    else:
        bonus = math.log(max(1.0 - p, 1e-5))
    return -math.log(p) + kw["bonus_weight"] * bonus


# ------------------------------------------------------------------ Sun et al., arXiv 2021
def sparse_softmax(row, y, kw) -> float:
    """log Σ_{j ∈ Ω_k ∪ {y}} e^{z_j} − z_y, Ω_k the indices of the k largest logits."""
    order = sorted(range(len(row)), key=lambda j: -row[j])
    omega = set(order[: kw["k"]]) | {y}
    m = max(row[j] for j in omega)
    return m + math.log(sum(math.exp(row[j] - m) for j in omega)) - row[y]


# ------------------------------------------------------- Martins & Astudillo, ICML 2016
def sparsemax_tau(row) -> tuple[float, int]:
    """τ(z) and |S(z)| by the paper's sort-based algorithm (sort, then the largest k with
    1 + k z_(k) > Σ_{j≤k} z_(j))."""
    zs = sorted(row, reverse=True)
    k_z, cum, cum_k = 0, 0.0, 0.0
    for k, v in enumerate(zs, start=1):
        cum += v
        if 1.0 + k * v > cum:
            k_z, cum_k = k, cum
    return (cum_k - 1.0) / k_z, k_z


def sparsemax_row(row) -> list[float]:
    tau, _ = sparsemax_tau(row)
    return [max(v - tau, 0.0) for v in row]


def sparsemax_loss(row, y, kw=None) -> float:
    """−z_y + ½ Σ_{j∈S} (z_j² − τ²) + ½ (the paper's sparsemax loss)."""
    tau, _ = sparsemax_tau(row)
    support = [v for v in row if v > tau]
    return -row[y] + 0.5 * sum(v * v - tau * tau for v in support) + 0.5


REFERENCES.update(
    {
        # τ = 0 (sum-exponential), 0.5, 1.5 (GCE-like), 2 (MAE) from the paper's family
        "comp-sum": Reference(
            _per_sample(comp_sum), ({}, {"tau": 0.0}, {"tau": 0.5}, {"tau": 1.5}, {"tau": 2.0})
        ),
        "squentropy": Reference(_per_sample(squentropy)),
        "z-loss": Reference(_per_sample(z_loss), ({}, {"a": 1.0, "b": 1.0}, {"a": 5.0, "b": -0.5})),
        # LE = 0.75 (default), 1 (the full bonus), 0.5 with half the bonus
        "encouraging": Reference(
            _per_sample(encouraging),
            ({}, {"log_end": 1.0}, {"log_end": 0.5, "bonus_weight": 0.5}, {"log_end": 0.2}),
        ),
        # the default k = 10 ≥ C is cross-entropy; k = 1, 2, 3 are sparse
        "sparse-softmax": Reference(
            _per_sample(sparse_softmax), ({}, {"k": 1}, {"k": 2}, {"k": 3})
        ),
        "sparsemax": Reference(_per_sample(sparsemax_loss)),
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


def _sum_exponential(z, y, reduction):
    """Σ_{y'≠y} e^{z_{y'} − z_y}: the comp-sum loss at τ = 0 (Mao et al.)."""
    out = torch.exp(z - z.gather(1, y[:, None])).sum(1) - 1.0
    return out if reduction == "none" else out.mean()


def _one_minus_p(z, y, reduction):
    """1 − p_y: half the MAE Σ_k |p_k − q_k| = 2 (1 − p_y)."""
    out = 1.0 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    return out if reduction == "none" else out.mean()


FAMILY_EQUIVALENCES += [
    dict(
        loss="comp-sum",
        kwargs={"tau": 2.0},
        other=_one_minus_p,
        why="τ = 2 is 1 − p_y, half the MAE of Ghosh et al. / Ma et al. (Mao et al.)",
    ),
    dict(
        loss="comp-sum", kwargs={"tau": 1.0}, other="ce", why="τ = 1 is cross-entropy (Mao et al.)"
    ),
    dict(
        loss="comp-sum",
        kwargs={"tau": 0.0},
        other=_sum_exponential,
        why="τ = 0 is the sum-exponential loss (Mao et al.)",
    ),
    dict(
        loss="comp-sum",
        kwargs={"tau": 1.7},
        other="gce",
        other_kwargs={"q": 0.7},
        why="τ ∈ (1, 2] is GCE with q = τ − 1 (Mao et al.)",
    ),
    dict(
        loss="comp-sum",
        kwargs={"tau": 2.0},
        other="gce",
        other_kwargs={"q": 1.0},
        why="τ = 2 is 1 − p_y: GCE at q = 1, half the MAE (Mao et al.)",
    ),
    dict(
        loss="encouraging",
        kwargs={"bonus_weight": 0.0},
        other="ce",
        why="no bonus is cross-entropy (Zhao et al.)",
    ),
    dict(
        loss="sparse-softmax",
        kwargs={"k": 5},
        other="ce",
        why="k = C keeps every class: the softmax (Sun et al.)",
    ),
]
