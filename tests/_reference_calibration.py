"""Loop-based transcriptions of the calibration and metric-surrogate losses (float64, pure Python).

Each is written from its paper's formula (or, where longtail follows the official code, from that
code's arithmetic), one sample, one class, one pair at a time, sharing no code with longtail:

* ``acls`` — Park et al., ICCV 2023 (official code's normalisation), with its stop-gradient
  gradient;
* ``dual-focal`` — Tao et al., ICML 2023;
* ``correctness-aware`` — Liu et al., arXiv 2404.13016 (official code's balancing);
* ``anyloss`` — Han et al., arXiv 2405.14745 (one-vs-rest, macro);
* ``dice`` — Watcharasupat et al., DCASE 2021;
* ``macro-auc-pairwise`` / ``macro-auc-univariate`` — Wu et al., ICML 2023;
* ``auc-m`` — Yuan et al., ICCV 2021 (stateful: a, b, α given explicitly, see STATE);
* ``psl`` — Yang et al., NeurIPS 2024.
"""

from __future__ import annotations

import math

from _reference import (
    FAMILY_EQUIVALENCES,
    REFERENCES,
    STATE,
    Reference,
    ce_row,
    logsumexp,
    reduce,
    reduce_elements,
)

#: Batch-level losses: the loss is a per-class quantity over the whole batch (a confusion matrix,
#: an overlap, an average over positive/negative pairs, or per-class 1/|P_k|, 1/|N_k| weights), so
#: no sample has a loss of its own and ``reduction="none"`` raises ``ValueError``; ``"mean"`` is
#: the (weighted) mean over classes, ``"sum"`` the sum over classes. The registry-wide contract
#: (tests/test_loss_contract.py) calls every loss with ``reduction="none"`` and so cannot express
#: them yet; tests/test_losses_calibration.py checks them against the rest of the contract.
BATCH_LEVEL: dict[str, str] = {
    "anyloss": "F-β / G-mean / balanced accuracy of the batch's soft confusion matrix, per class",
    "dice": "the Dice overlap of each class over the whole batch",
    "macro-auc-pairwise": "an average over each class's positive/negative pairs of the batch",
    "macro-auc-univariate": "per-class averages over the batch's positives and its negatives",
}


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _softmax(row) -> list[float]:
    lse = logsumexp(list(row))
    return [math.exp(v - lse) for v in row]


def _dense(z, target) -> list[list[float]]:
    """Multi-label targets as 0/1 rows (class-index targets become one-hot rows)."""
    c = len(z[0])
    if target and not isinstance(target[0], list):
        return [[1.0 if k == int(y) else 0.0 for k in range(c)] for y in target]
    return [list(map(float, r)) for r in target]


def _per_class_mean(values, weight, reduction):
    """Weighted mean (or sum) over the classes that are defined: ``values`` maps class -> L_k."""
    if reduction == "none":
        raise ValueError("a batch-level loss has no reduction='none'")
    w = {k: (1.0 if weight is None else weight[k]) for k in values}
    total = sum(w[k] * v for k, v in values.items())
    if reduction == "sum":
        return total
    den = sum(w.values())
    return total / den if den > 0 else 0.0


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


# -------------------------------------------------------------------------------------- AnyLoss
def anyloss(z, target, metric, beta, amplifier, weight=None, reduction="mean"):
    """1 − M_k per class (one-vs-rest), M from the soft confusion matrix of amplified sigmoids
    ŷ = σ(L(σ(z) − ½)); classes whose metric is undefined in the batch are left out."""
    t = _dense(z, target)
    values = {}
    for k in range(len(z[0])):
        yh = [_sigmoid(amplifier * (_sigmoid(r[k]) - 0.5)) for r in z]
        y = [r[k] for r in t]
        n1, n0 = sum(y), sum(1 - v for v in y)
        tp = sum(a * b for a, b in zip(y, yh, strict=True))
        tn = sum((1 - a) * (1 - b) for a, b in zip(y, yh, strict=True))
        if metric == "f-beta":
            if n1 == 0:
                continue
            m = (1 + beta**2) * tp / (beta**2 * n1 + sum(yh))
        else:
            if n1 == 0 or n0 == 0:
                continue
            if metric == "g-mean":
                m = tp * tn / (n1 * n0)
            else:
                m = (n0 * tp + n1 * tn) / (2 * n1 * n0)
        values[k] = 1 - m
    return _per_class_mean(values, weight, reduction)


# ----------------------------------------------------------------------------------------- Dice
def dice(z, target, smooth, squared, weight=None, reduction="mean"):
    """1 − (2 Σ p t + ε) / (Σ p + Σ t + ε) per class over the batch (squared: Σ p² + Σ t²)."""
    t = _dense(z, target)
    values = {}
    for k in range(len(z[0])):
        p = [_sigmoid(r[k]) for r in z]
        y = [r[k] for r in t]
        inter = sum(a * b for a, b in zip(p, y, strict=True))
        e = 2 if squared else 1
        den = sum(v**e for v in p) + sum(v**e for v in y) + smooth
        if den > 0:
            values[k] = 1 - (2 * inter + smooth) / den
    return _per_class_mean(values, weight, reduction)


# ---------------------------------------------------------------------------------- macro-AUC
def surrogate(name, m) -> float:
    if name == "logistic":
        return math.log1p(math.exp(-m)) if m > -30 else -m + math.log1p(math.exp(m))
    if name == "squared":
        return (1 - m) ** 2
    return max(0.0, 1 - m)


def macro_auc_pairwise(z, target, surr, weight=None, reduction="mean"):
    """(1/K) Σ_k 1/(|P_k||N_k|) Σ_{i∈P_k} Σ_{j∈N_k} ℓ(f_ik − f_jk); soft targets weight the pair
    (i, j), i ≠ j, by t_i (1 − t_j)."""
    t = _dense(z, target)
    values = {}
    for k in range(len(z[0])):
        num = den = 0.0
        for i, (ri, ti) in enumerate(zip(z, t, strict=True)):
            for j, (rj, tj) in enumerate(zip(z, t, strict=True)):
                w = ti[k] * (1 - tj[k])
                if i == j or w == 0:
                    continue
                num += w * surrogate(surr, ri[k] - rj[k])
                den += w
        if den > 0:
            values[k] = num / den
    return _per_class_mean(values, weight, reduction)


def macro_auc_univariate(z, target, surr, weight=None, reduction="mean"):
    """(1/K) Σ_k [1/|P_k| Σ_{P_k} ℓ(f_ik) + 1/|N_k| Σ_{N_k} ℓ(−f_ik)]."""
    t = _dense(z, target)
    values = {}
    for k in range(len(z[0])):
        n1 = sum(r[k] for r in t)
        n0 = sum(1 - r[k] for r in t)
        if n1 == 0 or n0 == 0:
            continue
        pos = sum(r[k] * surrogate(surr, f[k]) for f, r in zip(z, t, strict=True)) / n1
        neg = sum((1 - r[k]) * surrogate(surr, -f[k]) for f, r in zip(z, t, strict=True)) / n0
        values[k] = pos + neg
    return _per_class_mean(values, weight, reduction)


# ---------------------------------------------------------------------------------------- AUC-M
def _per_class(value, c):
    return list(value) if isinstance(value, (list, tuple)) else [float(value)] * c


def auc_m(z, target, margin, imratio, a, b, alpha) -> list[list[float]]:
    """F = (1−p)(h−a)² 1[y=1] + p(h−b)² 1[y=0] + 2α(p(1−p)m + p h 1[y=0] − (1−p) h 1[y=1])
    − p(1−p)α², h = σ(z), per element, each class with its own p, a, b, α (p: the batch's ratio of
    positives when imratio is None)."""
    t = _dense(z, target)
    c = len(z[0])
    a, b, alpha = _per_class(a, c), _per_class(b, c), _per_class(alpha, c)
    if imratio is None:
        p = [sum(r[k] for r in t) / len(t) for k in range(c)]
    else:
        p = _per_class(imratio, c)
    out = []
    for row, tr in zip(z, t, strict=True):
        vals = []
        for k in range(c):
            h, y, pk, al = _sigmoid(row[k]), tr[k], p[k], alpha[k]
            vals.append(
                (1 - pk) * (h - a[k]) ** 2 * y
                + pk * (h - b[k]) ** 2 * (1 - y)
                + 2 * al * (pk * (1 - pk) * margin + pk * h * (1 - y) - (1 - pk) * h * y)
                - pk * (1 - pk) * al**2
            )
        out.append(vals)
    return out


# ------------------------------------------------------------------------------------------ PSL
def _psl_g(d, activation) -> float:
    """exp(σ(d)): 1 + tanh d, 1 + arctan d, ReLU(d + 1) or e^d (0 where negative)."""
    if activation == "tanh":
        return 1 + math.tanh(d)
    if activation == "atan":
        return max(1 + math.atan(d), 0.0)
    if activation == "relu":
        return max(d + 1, 0.0)
    return math.exp(d)


def psl_row(row, t, tau, tau_star, activation) -> float:
    """log Σ_j exp(σ((z_j − z_y)/τ) / τ*) = log Σ_j g(d_j)^(1/τ*), over every class j."""
    terms = []
    for v in row:
        g = _psl_g((v - row[t]) / tau, activation)
        if g > 0:
            terms.append(math.log(g) / tau_star)
    return logsumexp(terms)


# ------------------------------------------------------------------------------- the references
def _per_sample(fn):
    def loss(z, y, counts, weight, reduction, kw):
        return reduce([fn(list(r), t, kw) for r, t in zip(z, y, strict=True)], y, weight, reduction)

    return loss


def _ca(z, y, counts, weight, reduction, kw):
    return reduce(correctness_aware(z, y, kw["balanced"]), y, weight, reduction)


def _auc_m(z, t, counts, weight, reduction, kw):
    rows = auc_m(z, t, kw["margin"], kw["imratio"], kw["a"], kw["b"], kw["alpha"])
    return reduce_elements(rows, weight, reduction)


PER_CLASS = [0.1, 0.25, 0.4, 0.6, 0.05]  # per-class settings (C = 5 classes in _reference)

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
REFERENCES["anyloss"] = Reference(
    lambda z, t, n, w, red, kw: anyloss(z, t, kw["metric"], kw["beta"], kw["amplifier"], w, red),
    (
        {},
        {"metric": "g-mean", "amplifier": 10.0},
        {"metric": "balanced-accuracy", "amplifier": 5.0},
        {"beta": 2.0, "amplifier": 20.0},
    ),
)
REFERENCES["dice"] = Reference(
    lambda z, t, n, w, red, kw: dice(z, t, kw["smooth"], kw["squared"], w, red),
    ({}, {"smooth": 0.0}, {"squared": True, "smooth": 0.5}),
)
REFERENCES["macro-auc-pairwise"] = Reference(
    lambda z, t, n, w, red, kw: macro_auc_pairwise(z, t, kw["surrogate"], w, red),
    ({}, {"surrogate": "squared"}, {"surrogate": "hinge"}),
)
REFERENCES["macro-auc-univariate"] = Reference(
    lambda z, t, n, w, red, kw: macro_auc_univariate(z, t, kw["surrogate"], w, red),
    ({}, {"surrogate": "squared"}, {"surrogate": "hinge"}),
)
REFERENCES["auc-m"] = Reference(
    _auc_m,
    # a, b and α are state (passed by STATE, so no setting may name them): their initial 0.0
    # leaves the margin without effect here; tests/test_losses_calibration.py checks non-zero
    # a, b, α (and so the margin) against this reference.
    ({}, {"imratio": 0.3, "margin": 0.6}, {"imratio": PER_CLASS}),
)
REFERENCES["psl"] = Reference(
    _per_sample(lambda r, t, kw: psl_row(r, t, kw["tau"], kw["tau_star"], kw["activation"])),
    (
        {},
        {"tau": 2.0, "tau_star": 0.5},
        {"activation": "relu", "tau": 2.0},
        {"activation": "atan", "tau": 3.0, "tau_star": 2.0},
        {"activation": "identity", "tau_star": 0.7},
    ),
)

# The module's a, b, α (its parameters, or the initial numbers before its first call).
STATE["auc-m"] = lambda module: module.state_arguments()


# ------------------------------------------------------------------------------ equivalences
def ce_over_three(z, y, reduction):
    import torch.nn.functional as F

    return F.cross_entropy(z / 3.0, y, reduction=reduction)


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
        "loss": "psl",
        "kwargs": {"activation": "identity"},
        "other": "ce",
        "why": "σ(d) = d turns PSL back into the softmax loss (Yang et al.)",
    },
    {
        "loss": "psl",
        "kwargs": {"activation": "identity", "tau": 2.0, "tau_star": 1.5},
        "other": ce_over_three,
        "why": "σ(d) = d: the softmax loss on z / (τ τ*)",
    },
    {
        "loss": "correctness-aware",
        "kwargs": {"balanced": False},
        "other": mse_confidence_correctness,
        "why": "unbalanced CA is the official code's MSE between confidence and correctness",
    },
]
