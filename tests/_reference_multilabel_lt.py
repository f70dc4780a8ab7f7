"""Loop-based transcriptions of the long-tailed multi-label losses of
``longtail/losses/multilabel.py`` (family "multilabel"), one sample and one class at a time, in
Python floats, sharing no code with longtail:

* ``asl`` — Ridnik et al., ICCV 2021 (the official ``AsymmetricLoss``: p_m = max(p − m, 0), the
  focusing weights detached, as its training script builds it), with that gradient;
* ``distribution-balanced`` — Wu et al., ECCV 2020 (the official ``ResampleLoss``: rebalance
  weights, NTR's prior bias −(κ/λ) log(N/n − 1) and λ on the negatives, focal factor);
* ``cb-bce`` / ``cb-focal`` — Cui et al., CVPR 2019 (effective-number weights per column, or
  per example: the mean weight of its positive labels, w_y for one label, Cui's own form);
* ``la-bce`` — BCE(z + τ log(n_c/N));
* ``zlpr`` — Su et al. 2022, log(1 + Σ_neg e^s) + log(1 + Σ_pos e^−s), one value per sample;
* ``decoupled-softmax`` — Gupta et al., ICLR 2024 (the official ``SimLoss``'s decoupled softmax);
* ``pu-mlc`` — Yuan et al. 2023 (the official ``vpuLoss``), with its gradient (temperature and
  re-balance factor held constant).

The stop-gradient references compute the gradient by central differences of the transcription,
with the quantities the official code detaches frozen at the input's values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from _reference import (
    BINARY_ONLY,
    FAMILY_EQUIVALENCES,
    REFERENCES,
    ROW_LEVEL,
    Reference,
    logsumexp,
    reduce_elements,
)

# ZLPR and PU-MLC are defined on label sets (ZLPR's Ω⁺/Ω⁻, PU-MLC's positives vs unlabelled):
# a soft target has no meaning for them and is refused.
BINARY_ONLY |= {"zlpr", "pu-mlc"}
# ZLPR's two log-sums couple all the classes of a sample: its value is one per sample.
ROW_LEVEL |= {"zlpr"}


def _rows(target, c):
    """0/1 (or soft) rows as they are; class indices as one-hot rows."""
    out = []
    for t in target:
        if isinstance(t, list):
            out.append([float(v) for v in t])
        else:
            out.append([1.0 if k == t else 0.0 for k in range(c)])
    return out


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def softplus(x: float) -> float:
    """log(1 + e^x)."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def log_sigmoid(x: float) -> float:
    return -softplus(-x)


def bce(x: float, t: float) -> float:
    return t * softplus(-x) + (1 - t) * softplus(x)


def numeric_gradient(f, z, h=1e-6):
    """∂f/∂z by central differences, z a list of rows."""
    out = []
    for i, row in enumerate(z):
        grad_row = []
        for c in range(len(row)):
            up = [list(r) for r in z]
            down = [list(r) for r in z]
            up[i][c] += h
            down[i][c] -= h
            grad_row.append((f(up) - f(down)) / (2 * h))
        out.append(grad_row)
    return out


def _mean(rows):
    return sum(sum(r) for r in rows) / sum(len(r) for r in rows)


# ------------------------------------------------------------------------------------- ASL
def asl_elements(z, target, kw, frozen=None):
    """Element losses; the focusing weights from ``frozen`` (the official code's no_grad)."""
    gp, gn, m = kw["gamma_pos"], kw["gamma_neg"], kw["clip"]
    z0 = z if frozen is None else frozen
    t = _rows(target, len(z[0]))
    rows = []
    for i, row in enumerate(z):
        out = []
        for c, x in enumerate(row):
            p0 = sigmoid(z0[i][c])
            w_pos = (1 - p0) ** gp
            w_neg = max(p0 - m, 0.0) ** gn
            log_p = log_sigmoid(x)
            # 1 − p_m = min(1 − p + m, 1)
            log_q = math.log(min(sigmoid(-x) + m, 1.0)) if m > 0 else log_sigmoid(-x)
            out.append(-(t[i][c] * w_pos * log_p + (1 - t[i][c]) * w_neg * log_q))
        rows.append(out)
    return rows


def _asl(z, target, counts, weight, reduction, kw):
    return reduce_elements(asl_elements(z, target, kw), weight, reduction)


def _asl_gradient(z, target, counts, kw):
    return numeric_gradient(lambda zz: _mean(asl_elements(zz, target, kw, frozen=z)), z)


# ---------------------------------------------------------------------------------------- DB
def db_elements(z, target, counts, kw):
    c_num = len(z[0])
    t = _rows(target, c_num)
    n_total = kw["num_samples"] if kw["num_samples"] is not None else sum(counts)
    lam = kw["lam"] if kw["ntr"] else 1.0
    rows = []
    for i, row in enumerate(z):
        rate = sum(t[i][k] / counts[k] for k in range(c_num))
        out = []
        for c, x in enumerate(row):
            if not kw["rebalance"]:
                rhat = 1.0
            elif rate > 0:
                r = (1.0 / counts[c]) / rate
                rhat = kw["alpha"] + sigmoid(kw["beta"] * (r - kw["mu"]))
            else:
                rhat = kw["alpha"] + 1.0
            if kw["ntr"]:
                nu = -(kw["kappa"] / kw["lam"]) * math.log(n_total / counts[c] - 1)
                zz = x + nu
            else:
                zz = x
            l_pos = softplus(-zz) * sigmoid(-zz) ** kw["gamma"]
            l_neg = softplus(lam * zz) / lam * sigmoid(lam * zz) ** kw["gamma"]
            out.append(rhat * (t[i][c] * l_pos + (1 - t[i][c]) * l_neg))
        rows.append(out)
    return rows


def _db(z, target, counts, weight, reduction, kw):
    return reduce_elements(db_elements(z, target, counts, kw), weight, reduction)


# --------------------------------------------------------------------------- CB-BCE, CB-focal
def cb_weights(counts, beta):
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    total = sum(raw)
    return [len(counts) * w / total for w in raw]


def cb_elements(z, target, counts, beta, gamma, mode="class"):
    t = _rows(target, len(z[0]))
    w = cb_weights(counts, beta)
    rows = []
    for i, row in enumerate(z):
        if mode == "example":  # Cui et al.: the sample's class weight on all its terms
            positives = sum(t[i])
            mean_w = sum(t[i][c] * w[c] for c in range(len(w))) / positives if positives else 1.0
            w_i = [mean_w] * len(w)
        else:
            w_i = w
        out = []
        for c, x in enumerate(row):
            p = sigmoid(x)
            p_t = p * t[i][c] + (1 - p) * (1 - t[i][c])
            out.append(w_i[c] * (1 - p_t) ** gamma * bce(x, t[i][c]))
        rows.append(out)
    return rows


def _cb_bce(z, target, counts, weight, reduction, kw):
    rows = cb_elements(z, target, counts, kw["beta"], 0.0, kw["mode"])
    return reduce_elements(rows, weight, reduction)


def _cb_focal(z, target, counts, weight, reduction, kw):
    rows = cb_elements(z, target, counts, kw["beta"], kw["gamma"], kw["mode"])
    return reduce_elements(rows, weight, reduction)


# ------------------------------------------------------------------------------------ LA-BCE
def _la_bce(z, target, counts, weight, reduction, kw):
    t = _rows(target, len(z[0]))
    n_total = kw["num_samples"] if kw["num_samples"] is not None else sum(counts)
    shift = [kw["tau"] * math.log(n / n_total) for n in counts]
    rows = [[bce(x + shift[c], t[i][c]) for c, x in enumerate(row)] for i, row in enumerate(z)]
    return reduce_elements(rows, weight, reduction)


# -------------------------------------------------------------------------------------- ZLPR
def zlpr_rows(z, target, weight):
    t = _rows(target, len(z[0]))
    w = [1.0] * len(z[0]) if weight is None else list(weight)
    out = []
    for i, row in enumerate(z):
        neg = sum(w[c] * math.exp(s) for c, s in enumerate(row) if t[i][c] == 0)
        pos = sum(w[c] * math.exp(-s) for c, s in enumerate(row) if t[i][c] == 1)
        out.append(math.log(1 + neg) + math.log(1 + pos))
    return out


def _zlpr(z, target, counts, weight, reduction, kw):
    rows = zlpr_rows(z, target, weight)
    if reduction == "none":
        return rows
    return sum(rows) if reduction == "sum" else sum(rows) / len(rows)


# ------------------------------------------------------------------------- decoupled softmax
def decoupled_softmax_elements(z, target, scale):
    t = _rows(target, len(z[0]))
    rows = []
    for i, row in enumerate(z):
        s = [scale * v for v in row]
        positives = [c for c in range(len(row)) if t[i][c] > 0]
        negatives = [c for c in range(len(row)) if t[i][c] == 0]
        out = [0.0] * len(row)
        for c in positives:
            denominator = [s[c]] + [s[n] for n in negatives]
            out[c] = t[i][c] * (logsumexp(denominator) - s[c]) / len(positives)
        rows.append(out)
    return rows


def _decoupled_softmax(z, target, counts, weight, reduction, kw):
    rows = decoupled_softmax_elements(z, target, kw["scale"])
    if weight is not None:
        rows = [[weight[c] * v for c, v in enumerate(r)] for r in rows]
    if reduction == "none":
        return rows
    total = sum(sum(r) for r in rows)
    return total if reduction == "sum" else total / len(rows)


# ------------------------------------------------------------------------------------ PU-MLC
def pu_mlc_classes(z, target, kw, frozen=None):
    """Per-class L_c; temperature and re-balance factor from ``frozen`` (the official detach)."""
    t = _rows(target, len(z[0]))
    z0 = z if frozen is None else frozen
    n = len(z)
    out = []
    for c in range(len(z[0])):
        col0 = [z0[i][c] for i in range(n)]
        mean0 = sum(col0) / n
        std0 = math.sqrt(sum((v - mean0) ** 2 for v in col0) / n)
        temp = min(kw["alpha"] * std0, 1.0)
        temp = temp if temp > 0 else 1.0
        w = (sum(sigmoid(v / temp) for v in col0) / n) ** kw["gamma"]
        u_term = math.log(sum(sigmoid(z[i][c] / temp) for i in range(n)) / n)
        positives = [i for i in range(n) if t[i][c] == 1]
        p_term = 0.0
        if positives:
            p_term = sum(log_sigmoid(z[i][c] / temp) for i in positives) / len(positives)
        out.append(w * u_term - p_term)
    return out


def _reduce_classes(values, weight, reduction):
    w = [1.0] * len(values) if weight is None else list(weight)
    total = sum(wc * v for wc, v in zip(w, values, strict=True))
    return total if reduction == "sum" else total / sum(w)


def _pu_mlc(z, target, counts, weight, reduction, kw):
    return _reduce_classes(pu_mlc_classes(z, target, kw), weight, reduction)


def _pu_mlc_gradient(z, target, counts, kw):
    return numeric_gradient(
        lambda zz: _reduce_classes(pu_mlc_classes(zz, target, kw, frozen=z), None, "mean"), z
    )


REFERENCES.update(
    {
        "asl": Reference(
            _asl,
            (
                {},
                {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},  # the official class default
                {"gamma_pos": 0.0, "gamma_neg": 2.0, "clip": 0.0},
            ),
            gradient=_asl_gradient,
        ),
        "distribution-balanced": Reference(
            _db,
            (
                {},
                {"rebalance": False},
                {"ntr": False, "gamma": 0.0},
                # the official VOC-MLT config's μ, λ; α, β, κ moved so that each matters
                {"mu": 0.3, "lam": 5.0, "kappa": 0.1, "alpha": 0.2, "beta": 5.0},
                {"num_samples": 1000, "gamma": 1.0},
            ),
        ),
        "cb-bce": Reference(
            _cb_bce, ({}, {"beta": 0.99}, {"beta": 0.0}, {"beta": 0.99, "mode": "example"})
        ),
        "cb-focal": Reference(
            _cb_focal,
            (
                {},
                {"beta": 0.999, "gamma": 2.0},
                {"beta": 0.9, "gamma": 0.5},
                {"beta": 0.999, "gamma": 2.0, "mode": "example"},
            ),
        ),
        "la-bce": Reference(_la_bce, ({}, {"tau": 0.5}, {"tau": 1.0, "num_samples": 700})),
        "zlpr": Reference(_zlpr),
        "decoupled-softmax": Reference(_decoupled_softmax, ({}, {"scale": 3.0})),
        "pu-mlc": Reference(
            _pu_mlc,
            ({}, {"gamma": 0.85, "alpha": 2.0}, {"gamma": 0.0, "alpha": 0.3}),
            gradient=_pu_mlc_gradient,
        ),
    }
)


# ------------------------------------------------------------------------------ equivalences
def bce_on_index(z, y, reduction):
    """BCE with logits on the one-hot rows of index targets."""
    return F.binary_cross_entropy_with_logits(
        z, F.one_hot(y, z.shape[1]).to(z), reduction=reduction
    )


def ce_at_the_label(z, y, reduction):
    """Cross-entropy; with "none", at each row's label of a (N, C) zero map (the decoupled
    softmax's one value per positive)."""
    if reduction != "none":
        return F.cross_entropy(z, y, reduction=reduction)
    per = F.cross_entropy(z, y, reduction="none")
    return torch.zeros_like(z).scatter(1, y.unsqueeze(1), per.unsqueeze(1))


FAMILY_EQUIVALENCES += [
    {
        "loss": "asl",
        "kwargs": {"gamma_pos": 0.0, "gamma_neg": 0.0, "clip": 0.0},
        "other": bce_on_index,
        "why": "no focusing and no shift: binary cross-entropy (Ridnik et al.)",
    },
    {
        "loss": "distribution-balanced",
        "kwargs": {"rebalance": False, "ntr": False, "gamma": 0.0},
        "other": bce_on_index,
        "why": "re-balancing, NTR and focal off: binary cross-entropy (Wu et al.)",
    },
    {
        "loss": "distribution-balanced",
        "kwargs": {"rebalance": False, "ntr": False, "gamma": 2.0},
        "other": "sigmoid-focal",
        "other_kwargs": {"gamma": 2.0, "alpha": None},
        "why": "both DB parts off: the sigmoid focal loss it is built on (no α)",
    },
    {
        "loss": "cb-bce",
        "kwargs": {"beta": 0.0},
        "other": bce_on_index,
        "why": "β = 0: every effective number is 1, every weight 1 (Cui et al.)",
    },
    {
        "loss": "cb-focal",
        "kwargs": {"beta": 0.0, "gamma": 2.0},
        "other": "sigmoid-focal",
        "other_kwargs": {"gamma": 2.0, "alpha": None},
        "why": "β = 0: unit weights, the sigmoid focal loss without α",
    },
    {
        "loss": "cb-focal",
        "kwargs": {"beta": 0.999, "gamma": 0.0},
        "other": "cb-bce",
        "other_kwargs": {"beta": 0.999},
        "why": "γ = 0: no focal factor, CB-BCE",
    },
    {
        "loss": "la-bce",
        "kwargs": {"tau": 0.0},
        "other": bce_on_index,
        "why": "τ = 0: no adjustment, binary cross-entropy",
    },
    {
        "loss": "decoupled-softmax",
        "kwargs": {},
        "other": ce_at_the_label,
        "why": "one positive per row: its denominator is the whole row, softmax cross-entropy",
    },
]
