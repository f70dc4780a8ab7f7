"""Smooth surrogates of metrics: AnyLoss (F-β, G-mean, balanced accuracy), Dice / soft F1, the
macro-AUC surrogates (pairwise and reweighted univariate), AUC-M (the AUC margin loss) and PSL.

Two kinds of loss live here.

* **Batch-level** losses (``anyloss``, ``dice``, ``macro-auc-pairwise``, ``macro-auc-univariate``):
  the loss is a per-class quantity computed over the whole batch (a confusion matrix, an overlap,
  an average over positive/negative pairs), so no sample has a loss of its own. ``"mean"``
  averages the per-class terms (with ``weight``, the weighted mean ``Σ w_k L_k / Σ w_k``; this is
  the macro average), ``"sum"`` adds them (``Σ w_k L_k``), and ``"none"`` raises ``ValueError``.
  A class whose term is undefined in the batch (an AUC with no positive or no negative example, an
  F-β with no positive) is left out of both.
* **Per-sample** losses: ``auc-m`` (one value per element, given the batch's positive ratio and the
  auxiliary variables) and ``psl`` (one value per sample).

All the multi-label losses take logits ``(N, C)`` or ``(N, C, d1, ...)`` (every position a sample,
class dimension 1) or ``(N,)`` (one binary problem); targets are 0/1 (or soft, in [0, 1]) of the
logits' shape, or class indices ``(N, d1, ...)`` (one-vs-rest: the one-hot rows, never given to the
user); with a single logit column, targets of the batch shape are its 0/1 labels (a binary task),
never class indices. ``ignore_index`` drops a whole row given as a class index, or one entry of
a dense target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from .._validation import (
    check_choice,
    check_class_vector,
    check_finite_number,
    check_positive,
    check_reduction,
    expected,
)
from ._base import WeightedLoss, first_order, keep_number_or_per_class, per_class_tensor
from ._reduce import compute_dtype_for, flatten_inputs, reduce_loss
from ._registry import register_loss


# ------------------------------------------------------------------------------ shared helpers
@dataclass
class _Multilabel:
    """Checked multi-label inputs flattened to ``(M, C)``."""

    x: torch.Tensor  # (M, C) logits in the compute dtype
    t: torch.Tensor  # (M, C) targets in [0, 1], 0 where ignored
    valid: torch.Tensor | None  # (M, C) bool, None when nothing is ignored
    shape: tuple[int, ...]  # the logits' shape, for reduction="none"
    dtype: torch.dtype  # the compute dtype
    labels: torch.Tensor | None = None  # (M,) class indices when given so (any value if ignored)

    def is_hard(self) -> bool:
        """Every target is 0 or 1."""
        return self.labels is not None or bool(((self.t == 0) | (self.t == 1)).all())

    def positives(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(class, sample) of every positive entry, for 0/1 targets."""
        if self.labels is None:
            k, i = (self.t == 1).t().nonzero(as_tuple=True)
            return k, i
        i = torch.arange(self.labels.shape[0], device=self.labels.device)
        if self.valid is not None:
            keep = self.valid[:, 0]
            return self.labels[keep], i[keep]
        return self.labels, i

    def negatives(self) -> torch.Tensor:
        """``1 − t``, 0 where ignored."""
        u = 1 - self.t
        return u if self.valid is None else u * self.valid

    def unflatten(self, values: torch.Tensor) -> torch.Tensor:
        """``(M, C)`` element values back in the logits' shape."""
        if len(self.shape) == 1:
            return values.reshape(self.shape)
        if len(self.shape) == 2:
            return values
        n, c, *rest = self.shape
        return values.reshape(n, *rest, c).movedim(-1, 1)


def _binary_labels(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``target`` as it is, after checking that its entries are 0/1 labels (or soft values in
    [0, 1], or ``ignore_index``): the targets of one logit column, given without that column."""
    t = target.double()
    bad = ((t < 0) | (t > 1)) & (t != ignore_index)
    if bad.any():
        raise expected(
            "target",
            f"0/1 labels (or ignore_index={ignore_index}) for logits of one class, a binary "
            "task (class indices would all be 0)",
            f"values {t[bad][:5].tolist()}",
        )
    return target


def _batch_shaped_target(
    target: torch.Tensor, num_classes: int, shape: tuple[int, ...], ignore_index: int
) -> torch.Tensor:
    """A target of the batch shape (the logits' ``shape`` less dim 1): with one logit column,
    that column's 0/1 labels, returned with the column added (as class indices they could only
    be 0, and an all-negative batch would read as all positive); else class indices as they
    are, which a bool vector is not."""
    if num_classes == 1:
        return _binary_labels(target, ignore_index).unsqueeze(1)
    if target.dtype == torch.bool:
        raise expected(
            "target",
            f"bool targets of the logits' shape {shape} (a bool vector is no class index)",
            f"shape {tuple(target.shape)}",
        )
    return target


def _multilabel_inputs(logits: Any, target: Any, *, weight: Any, ignore_index: int) -> _Multilabel:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    if not isinstance(target, torch.Tensor) or target.is_complex():
        got = target.dtype if isinstance(target, torch.Tensor) else type(target).__name__
        raise expected("target", "a tensor of 0/1 targets or class indices", got)
    shape = tuple(logits.shape)
    if logits.dim() == 0:
        raise expected("logits", "of shape (N,), (N, C) or (N, C, d1, ...)", f"shape {shape}")
    x = logits.unsqueeze(1) if logits.dim() == 1 else logits
    c = x.shape[1]
    check_class_vector("weight", weight, c)
    ctype = compute_dtype_for(logits.dtype)
    batch_shape = (x.shape[0], *x.shape[2:])
    x = x.movedim(1, -1).reshape(-1, c) if x.dim() > 2 else x
    valid = labels = None
    if logits.dim() > 1 and tuple(target.shape) == batch_shape:
        target = _batch_shaped_target(target, c, shape, ignore_index)
    if logits.dim() > 1 and not target.is_floating_point() and tuple(target.shape) == batch_shape:
        labels = target.reshape(-1).long()
        drop = labels == ignore_index
        bad = ((labels < 0) | (labels >= c)) & ~drop
        if bad.any():
            raise expected(
                "target",
                f"class indices in [0, {c}) (or ignore_index={ignore_index})",
                f"labels {labels[bad][:5].tolist()}",
            )
        t = torch.zeros(x.shape, dtype=ctype, device=x.device)
        if drop.any():
            valid = (~drop).unsqueeze(1).expand(-1, c)
            t.scatter_(1, labels.masked_fill(drop, 0).unsqueeze(1), (~drop).to(ctype).unsqueeze(1))
        else:
            t.scatter_(1, labels.unsqueeze(1), 1.0)
    elif tuple(target.shape) == shape:
        t = target.to(ctype)
        t = t.unsqueeze(1) if logits.dim() == 1 else t
        t = t.movedim(1, -1).reshape(-1, c) if t.dim() > 2 else t
        drop = t == ignore_index
        if drop.any():
            valid = ~drop
            t = t.masked_fill(drop, 0)
        if ((t < 0) | (t > 1) | t.isnan()).any():
            raise expected(
                "target", "0/1 (or soft) targets in [0, 1]", "values outside [0, 1] (or NaN)"
            )
    else:
        what = f"0/1 targets of the logits' shape {shape}"
        if logits.dim() > 1:
            what += f" or class indices of shape {batch_shape}"
        raise expected("target", what, f"shape {tuple(target.shape)}")
    return _Multilabel(x.to(ctype), t, valid, shape, ctype, labels)


def _check_batch_reduction(name: str, reduction: str) -> None:
    check_reduction(reduction)
    if reduction == "none":
        raise expected(
            "reduction",
            f"'mean' or 'sum' for loss {name!r}, a batch-level quantity computed per class "
            "over the whole batch: no sample has a loss of its own",
            "'none'",
        )


def _reduce_classes(
    values: torch.Tensor, defined: torch.Tensor, weight: Any, reduction: str
) -> torch.Tensor:
    """Weighted mean (or sum) over the classes whose term is defined; 0 when none is.

    ``values`` must be finite where ``defined`` is False (the caller guards its divisions), so
    that no NaN reaches the gradient through the masked entries.
    """
    w = defined.to(values.dtype)
    if weight is not None:
        w = w * weight.to(device=values.device, dtype=values.dtype)
    total = (values * w).sum()
    if reduction == "sum":
        return total
    den = w.sum()
    return total / torch.where(den > 0, den, torch.ones_like(den))


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise expected(name, "True or False", repr(value))


def _nonzero(x: torch.Tensor) -> torch.Tensor:
    """``x`` where it is not 0, else 1: a denominator that cannot divide by zero."""
    return torch.where(x != 0, x, torch.ones_like(x))


def _per_class_option(value: Any, name: str, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """A number, or one value per class, as a tensor of ``like``'s dtype that broadcasts over
    ``(M, C)`` (0-dim or ``(C,)``); gradients flow through a tensor given."""
    if isinstance(value, torch.Tensor):
        t = value.to(device=like.device, dtype=like.dtype)
    else:
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() > 1 or (t.dim() == 1 and t.numel() != num_classes):
        raise expected(
            name, f"a number or one value per class ({num_classes})", f"shape {tuple(t.shape)}"
        )
    return t


# -------------------------------------------------------------------------------------- AnyLoss
ANYLOSS_METRICS = ("f-beta", "g-mean", "balanced-accuracy")


def any_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    metric: str = "f-beta",
    beta: float = 1.0,
    amplifier: float = 73.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """AnyLoss (Han, Moniz and Chawla, "AnyLoss: Transforming Classification Metrics into Loss
    Functions", arXiv 2405.14745, 2024): one minus a confusion-matrix metric computed from
    amplified probabilities.

    For each class ``k`` (a binary problem: the paper's loss is binary), over the batch,

    .. math::

        \\hat y_{ik} = \\sigma\\big(L\\,(\\sigma(z_{ik}) - \\tfrac12)\\big),\\quad
        TP_k = \\sum_i t_{ik}\\hat y_{ik},\\quad TN_k = \\sum_i (1 - t_{ik})(1 - \\hat y_{ik}),
        \\quad n^+_k = \\sum_i t_{ik},\\quad n^-_k = \\sum_i (1 - t_{ik})

    and ``L_k = 1 − M_k`` with

    * ``"f-beta"``: ``M = (1 + β²) TP / (β² n⁺ + Σ_i ŷ_i)``;
    * ``"g-mean"``: ``M = TP · TN / (n⁺ n⁻)``, i.e. TPR·TNR, the square of the G-mean (the
      official code's ``sur_gmean``; the square root is not taken);
    * ``"balanced-accuracy"``: ``M = (n⁻ TP + n⁺ TN) / (2 n⁺ n⁻)``.

    The official code (``doheonhan/anyloss_extension``, README) adds ``1e-5`` to each denominator;
    longtail follows the paper's formulas without it and instead leaves out a class whose metric
    is undefined in the batch (no positive for F-β — its F-β is 0 whatever the scores; no
    positive or no negative for G-mean and balanced accuracy).

    Multi-class extension (longtail's, the paper's loss being binary): **one-vs-rest, macro**. Each
    column of the logits is one binary problem with the paper's sigmoid score, and the loss is
    the (weighted) mean of the per-class losses. ``(N,)`` logits with ``(N,)`` 0/1 targets are the
    paper's binary loss exactly; class-index targets are one-hot rows (one-vs-rest).

    A batch-level loss: ``reduction="none"`` raises ``ValueError`` (see the module docstring).

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype (sigmoid scores).
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar; float32 for half inputs, else the input's dtype.

    Args:
        logits: per-class scores (before the sigmoid).
        target: see Shape.
        metric: ``"f-beta"``, ``"g-mean"`` or ``"balanced-accuracy"``. Default ``"f-beta"``;
            uncertain: the paper studies the three (and accuracy) on an equal footing and has no
            default, F-β coming first.
        beta: β of F-β (> 0); default 1 (F1), the official code's ``b = 1``.
        amplifier: the amplifying scale ``L`` (> 0); default 73. Uncertain: 73 is reported as
            the paper's choice (not checked against its text), while the official README
            suggests ``L`` in [2, 70].
        weight: per-class weights of the macro average (``Σ w_k L_k / Σ w_k``).
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean"`` (macro average over classes) or ``"sum"`` (over classes).
    """
    _check_batch_reduction("anyloss", reduction)
    check_choice("metric", metric, ANYLOSS_METRICS)
    check_positive("beta", beta)
    check_positive("amplifier", amplifier)
    inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    w = None if weight is None else weight.to(device=inp.x.device, dtype=inp.dtype)
    vf = None if inp.valid is None else inp.valid.to(inp.dtype)
    return _AnyLoss.apply(inp.x, inp.t, vf, w, metric, float(beta), float(amplifier), reduction)


class _AnyLoss(torch.autograd.Function):
    """AnyLoss over the classes, with the gradient in closed form.

    Every metric's derivative is affine in the target: ``∂M_k/∂ŷ_ik = A_k t_ik + B_k v_ik``
    (``v`` the entries not ignored), so ``∂L/∂z_ik = −(w_k/W)(A_k t_ik + B_k v_ik) · L ŷ(1 − ŷ)
    · s(1 − s)`` with ``s = σ(z)``, ``ŷ = σ(L(s − ½))``.
    """

    @staticmethod
    def forward(ctx, x, t, vf, w, metric, beta, amplifier, reduction):  # type: ignore[override]
        s = torch.sigmoid(x)
        yhat = torch.sigmoid((s - 0.5).mul_(amplifier))
        tp = (t * yhat).sum(0)
        n_pos = t.sum(0)
        if vf is None:
            n_all = torch.full_like(n_pos, x.shape[0])
            pred = yhat.sum(0)
        else:
            n_all = vf.sum(0)
            pred = (yhat * vf).sum(0)
        n_neg = n_all - n_pos
        if metric == "f-beta":
            defined = n_pos > 0
            den = _nonzero(beta**2 * n_pos + pred)
            score = (1 + beta**2) * tp / den
            a_coef = (1 + beta**2) / den
            b_coef = -score / den
        else:
            defined = (n_pos > 0) & (n_neg > 0)
            tn = n_neg - (pred - tp)  # Σ (1 − t) v (1 − ŷ)
            if metric == "g-mean":
                den = _nonzero(n_pos * n_neg)
                score = tp * tn / den
                a_coef = (tn + tp) / den
                b_coef = -tp / den
            else:
                score = tp / (2 * _nonzero(n_pos)) + tn / (2 * _nonzero(n_neg))
                a_coef = 1 / (2 * _nonzero(n_pos)) + 1 / (2 * _nonzero(n_neg))
                b_coef = -1 / (2 * _nonzero(n_neg))
        cw = defined.to(x.dtype) if w is None else defined * w
        total = ((1 - score) * cw).sum()
        if reduction == "mean":
            den_w = cw.sum()
            den_w = torch.where(den_w > 0, den_w, torch.ones_like(den_w))
            total = total / den_w
            cw = cw / den_w
        ctx.save_for_backward(s, yhat, t, vf, -cw * a_coef * amplifier, -cw * b_coef * amplifier)
        return total

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        s, yhat, t, vf, a_coef, b_coef = ctx.saved_tensors
        if vf is None:
            dy = torch.addcmul(b_coef, t, a_coef)
        else:
            dy = torch.addcmul(b_coef * vf, t, a_coef)
        grad = dy.mul_(torch.addcmul(yhat, yhat, yhat, value=-1))
        grad.mul_(torch.addcmul(s, s, s, value=-1)).mul_(g)
        return grad, None, None, None, None, None, None, None


@register_loss(
    name="anyloss",
    per_sample=False,
    function=any_loss,
    family="metric-surrogate",
    description="AnyLoss: 1 − F-β / G-mean / balanced accuracy of amplified sigmoids, per class",
    paper="Han et al., arXiv 2024",
    target="multilabel",
    uncertain=("metric", "amplifier"),
)
class AnyLoss(WeightedLoss):
    """Module form of :func:`any_loss` (a batch-level loss: no ``reduction="none"``)."""

    def __init__(
        self,
        *,
        metric: str = "f-beta",
        beta: float = 1.0,
        amplifier: float = 73.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_batch_reduction("anyloss", reduction)
        check_choice("metric", metric, ANYLOSS_METRICS)
        check_positive("beta", beta)
        check_positive("amplifier", amplifier)
        self.metric = metric
        self.beta = beta
        self.amplifier = amplifier

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return any_loss(
            logits,
            target,
            metric=self.metric,
            beta=self.beta,
            amplifier=self.amplifier,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ----------------------------------------------------------------------------------------- Dice
def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    smooth: float = 1.0,
    squared: bool = False,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sørensen–Dice loss (soft F1) for multi-label frame classification (Watcharasupat et al.,
    "Improving Polyphonic Sound Event Detection on Multichannel Recordings with the Sørensen–Dice
    Coefficient Loss and Transfer Learning", DCASE Workshop 2021).

    Per class ``k``, over every sample (frame) of the batch, with ``p = σ(z)``:

    .. math::

        L_k = 1 - \\frac{2 \\sum_i p_{ik} t_{ik} + \\varepsilon}
                        {\\sum_i p_{ik} + \\sum_i t_{ik} + \\varepsilon}

    (``squared=True``: ``Σ p² + Σ t²`` in the denominator, the V-Net form of Milletari et al.).
    With ``ε = 0`` and 0/1 targets, ``1 − L_k`` is the F1 score of class ``k`` with soft counts.
    A class with a zero denominator (only possible with ``ε = 0``) is left out.

    The target is multi-label (``target="multilabel"``): the paper detects overlapping sound
    events, one sigmoid per class and frame. Frames are the samples: ``(N, C, T)`` logits are
    ``N·T`` samples of ``C`` classes.

    A batch-level loss: ``reduction="none"`` raises ``ValueError`` (see the module docstring).

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar; float32 for half inputs, else the input's dtype.

    Args:
        logits: per-class scores (before the sigmoid).
        target: see Shape.
        smooth: the smoothing ``ε ≥ 0`` in numerator and denominator. Default 1.0; uncertain: the
            paper's value was not found (1 is the common choice of Dice implementations).
        squared: squared terms in the denominator (V-Net); default False, the Sørensen–Dice form
            the paper is named after.
        weight: per-class weights of the average over classes (``Σ w_k L_k / Σ w_k``).
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean"`` (over classes) or ``"sum"`` (over classes).
    """
    _check_batch_reduction("dice", reduction)
    check_positive("smooth", smooth, allow_zero=True)
    _check_flag("squared", squared)
    inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    p = torch.sigmoid(inp.x)
    t = inp.t
    inter = (p * t).sum(0)
    pv = p if inp.valid is None else p * inp.valid
    den = (pv.square() if squared else pv).sum(0) + (t.square() if squared else t).sum(0) + smooth
    defined = den > 0
    return _reduce_classes(1 - (2 * inter + smooth) / _nonzero(den), defined, weight, reduction)


@register_loss(
    name="dice",
    per_sample=False,
    function=dice_loss,
    family="metric-surrogate",
    description="Sørensen–Dice / soft F1 per class over the batch (sigmoid, multi-label frames)",
    paper="Watcharasupat et al., DCASE 2021",
    target="multilabel",
    uncertain=("smooth",),
)
class DiceLoss(WeightedLoss):
    """Module form of :func:`dice_loss` (a batch-level loss: no ``reduction="none"``)."""

    def __init__(
        self,
        *,
        smooth: float = 1.0,
        squared: bool = False,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_batch_reduction("dice", reduction)
        check_positive("smooth", smooth, allow_zero=True)
        _check_flag("squared", squared)
        self.smooth = smooth
        self.squared = squared

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dice_loss(
            logits,
            target,
            smooth=self.smooth,
            squared=self.squared,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------ macro-AUC losses
SURROGATES = ("logistic", "squared", "hinge")


def _surrogate(name: str, m: torch.Tensor) -> torch.Tensor:
    """ℓ(m) of a margin ``m``: logistic ``log(1 + e^{−m})``, squared ``(1 − m)²``, hinge
    ``max(0, 1 − m)``."""
    if name == "logistic":
        return F.softplus(-m)
    if name == "squared":
        return (1 - m).square()
    return torch.relu(1 - m)


_PAIR_CHUNK = 1 << 22  # pairs (or M·M·classes products) handled at once


def _pairwise_sums(inp: _Multilabel, surrogate: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: ``Σ_{i≠j} t_i (1 − t_j) ℓ(f_i − f_j)`` and its normaliser
    ``Σ_{i≠j} t_i (1 − t_j)`` (``|P_k| |N_k|`` for 0/1 targets)."""
    x, t, u = inp.x, inp.t, inp.negatives()
    m, c = x.shape
    hard = inp.is_hard()
    t0, u0 = t.sum(0), u.sum(0)
    tu = 0 if hard else (t * u).sum(0)  # the i = j terms (none for 0/1 targets)
    pairs = t0 * u0 - tu
    if surrogate == "squared":
        # Σ_{i≠j} t_i u_j (1 − f_i + f_j)² from the moments T1 = Σ t f, T2 = Σ t f², U1, U2
        # (the i = j terms are t_i u_i (1 − f_i + f_i)² = t_i u_i): O(M·C), no pair formed
        tx = t * x
        t1, t2 = tx.sum(0), (tx * x).sum(0)
        xv = x if inp.valid is None else x * inp.valid
        u1, u2 = xv.sum(0) - t1, (xv * x).sum(0) - t2
        total = u0 * (t0 - 2 * t1 + t2) + 2 * (t0 - t1) * u1 + t0 * u2 - tu
        return total, pairs
    if inp.is_hard():
        # every positive entry (i, k) against the whole column k, the negatives weighted 1:
        # O(Σ_k |P_k| · M), no index per pair
        pk, pi = inp.positives()
        return _PairwiseHard.apply(x, pk, pi, u, surrogate), pairs
    # soft targets: every ordered pair i ≠ j, weighted t_i u_j, a few classes at a time
    sums = []
    step = max(1, _PAIR_CHUNK // max(1, m * m))
    off_diagonal = ~torch.eye(m, dtype=torch.bool, device=x.device).unsqueeze(-1)
    for lo in range(0, c, step):
        xs, ts, us = x[:, lo : lo + step], t[:, lo : lo + step], u[:, lo : lo + step]
        w = (ts.unsqueeze(1) * us.unsqueeze(0)) * off_diagonal
        vals = _surrogate(surrogate, xs.unsqueeze(1) - xs.unsqueeze(0))
        sums.append((w * vals).sum((0, 1)))
    return (torch.cat(sums) if sums else x.new_zeros(0)), pairs


class _PairwiseHard(torch.autograd.Function):
    """Per class ``Σ_{i ∈ P_k} Σ_j w_jk ℓ(f_ik − f_jk)`` (``w`` = 1 on the negatives), one
    positive entry per column of an ``(M, E)`` block of gathered columns, a block at a time; the
    backward recomputes each block's ``ℓ'`` (memory stays one block, whatever the number of
    pairs)."""

    @staticmethod
    def forward(ctx, x, pk, pi, w, surrogate):  # type: ignore[override]
        fp = x[pi, pk]
        sums = x.new_zeros(x.shape[1])
        for lo, hi in _blocks(len(pk), x.shape[0]):
            cols = pk[lo:hi]
            neg_margin = x.index_select(1, cols).sub_(fp[lo:hi])  # f_jk − f_ik, (M, E)
            if surrogate == "logistic":
                vals = F.softplus(neg_margin)  # log(1 + e^{−(f_i − f_j)})
            else:  # hinge max(0, 1 − (f_i − f_j))
                vals = neg_margin.add_(1).clamp_min_(0)
            sums.index_add_(0, cols, vals.mul_(w.index_select(1, cols)).sum(0))
        ctx.save_for_backward(x, pk, pi, w, fp)
        ctx.surrogate = surrogate
        return sums

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        x, pk, pi, w, fp = ctx.saved_tensors
        grad = torch.zeros_like(x, memory_format=torch.contiguous_format)
        grad_fp = torch.empty_like(fp)
        for lo, hi in _blocks(len(pk), x.shape[0]):
            cols = pk[lo:hi]
            neg_margin = x.index_select(1, cols).sub_(fp[lo:hi])
            if ctx.surrogate == "logistic":  # ∂ℓ/∂(f_j − f_i) = σ(f_j − f_i)
                d = torch.sigmoid_(neg_margin)
            else:  # 1 where 1 + f_j − f_i > 0
                d = neg_margin.add_(1).sign_().clamp_min_(0)
            d.mul_(w.index_select(1, cols)).mul_(g.index_select(0, cols))
            grad_fp[lo:hi] = -d.sum(0)
            grad.index_add_(1, cols, d)
        grad.index_put_((pi, pk), grad_fp, accumulate=True)
        return grad, None, None, None, None


def _blocks(rows: int, width: int) -> list[tuple[int, int]]:
    step = max(1, _PAIR_CHUNK // max(1, width))
    return [(lo, min(lo + step, rows)) for lo in range(0, rows, step)]


def macro_auc_pairwise_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    surrogate: str = "logistic",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Pairwise surrogate of macro-AUC (Wu, Li and Yin, "Towards Understanding Generalization of
    Macro-AUC in Multi-label Learning", ICML 2023).

    .. math::

        L = \\frac1K \\sum_{k=1}^{K} \\frac{1}{|P_k|\\,|N_k|}
            \\sum_{i \\in P_k} \\sum_{j \\in N_k} \\ell\\big(f_k(x_i) - f_k(x_j)\\big)

    over the batch, ``P_k`` / ``N_k`` the samples positive / negative for label ``k`` and ``ℓ`` a
    surrogate of the 0/1 loss of a margin: ``"logistic"`` ``log(1 + e^{−m})``, ``"squared"``
    ``(1 − m)²``, ``"hinge"`` ``max(0, 1 − m)``. ``f_k`` are the raw logits. A label with no
    positive or no negative in the batch has no AUC and is left out of the average. Soft targets
    weight the ordered pair ``(i, j)``, ``i ≠ j``, by ``t_i (1 − t_j)``.

    The squared surrogate is computed in closed form (O(N·C)); the others enumerate the pairs
    (O(Σ_k |P_k| |N_k|)).

    A batch-level loss: ``reduction="none"`` raises ``ValueError`` (see the module docstring).

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar; float32 for half inputs, else the input's dtype.

    Args:
        logits: per-label scores ``f_k(x_i)``.
        target: see Shape.
        surrogate: ``"logistic"``, ``"squared"`` or ``"hinge"``. Default ``"logistic"``;
            uncertain: the paper's analysis covers any of them and names no default.
        weight: per-label weights of the macro average (``Σ w_k L_k / Σ w_k``).
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean"`` (the macro average) or ``"sum"`` (over labels).
    """
    _check_batch_reduction("macro-auc-pairwise", reduction)
    check_choice("surrogate", surrogate, SURROGATES)
    inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    sums, pairs = _pairwise_sums(inp, surrogate)
    defined = pairs > 0
    return _reduce_classes(sums / _nonzero(pairs), defined, weight, reduction)


@register_loss(
    name="macro-auc-pairwise",
    per_sample=False,
    function=macro_auc_pairwise_loss,
    family="metric-surrogate",
    description="macro-AUC surrogate: mean over labels of ℓ(f_i − f_j), positive i, negative j",
    paper="Wu et al., ICML 2023",
    target="multilabel",
    uncertain=("surrogate",),
)
class MacroAUCPairwiseLoss(WeightedLoss):
    """Module form of :func:`macro_auc_pairwise_loss` (a batch-level loss)."""

    def __init__(
        self,
        *,
        surrogate: str = "logistic",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_batch_reduction("macro-auc-pairwise", reduction)
        check_choice("surrogate", surrogate, SURROGATES)
        self.surrogate = surrogate

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return macro_auc_pairwise_loss(
            logits,
            target,
            surrogate=self.surrogate,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


def macro_auc_univariate_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    surrogate: str = "logistic",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Reweighted univariate surrogate of macro-AUC (Wu, Li and Yin, "Towards Understanding
    Generalization of Macro-AUC in Multi-label Learning", ICML 2023).

    .. math::

        L = \\frac1K \\sum_{k=1}^{K} \\Big[\\frac{1}{|P_k|} \\sum_{i \\in P_k} \\ell(f_k(x_i))
            + \\frac{1}{|N_k|} \\sum_{j \\in N_k} \\ell(-f_k(x_j))\\Big]

    over the batch: each label's positives and negatives weigh the same however imbalanced the
    label is (the plain univariate loss averages over all ``i`` instead). With the logistic
    surrogate this is binary cross-entropy averaged over each label's positives and over its
    negatives separately. ``ℓ`` and the labels left out are as in
    :func:`macro_auc_pairwise_loss`; soft targets weight ``ℓ(f)`` by ``t`` and ``ℓ(−f)`` by
    ``1 − t``, with ``Σ t`` and ``Σ (1 − t)`` as the counts.

    A batch-level loss (the weights ``1/|P_k|``, ``1/|N_k|`` are batch counts):
    ``reduction="none"`` raises ``ValueError`` (see the module docstring).

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar; float32 for half inputs, else the input's dtype.

    Args:
        logits: per-label scores ``f_k(x_i)``.
        target: see Shape.
        surrogate: ``"logistic"``, ``"squared"`` or ``"hinge"``. Default ``"logistic"``;
            uncertain: the paper's analysis covers any of them and names no default.
        weight: per-label weights of the macro average (``Σ w_k L_k / Σ w_k``).
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean"`` (the macro average) or ``"sum"`` (over labels).
    """
    _check_batch_reduction("macro-auc-univariate", reduction)
    check_choice("surrogate", surrogate, SURROGATES)
    inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    t, u = inp.t, inp.negatives()
    n_pos, n_neg = t.sum(0), u.sum(0)
    defined = (n_pos > 0) & (n_neg > 0)
    if surrogate == "logistic":
        vf = None if inp.valid is None else inp.valid.to(inp.dtype)
        per_class = _UnivariateLogistic.apply(
            inp.x, t, vf, 1 / _nonzero(n_pos), 1 / _nonzero(n_neg)
        )
    else:
        pos = (t * _surrogate(surrogate, inp.x)).sum(0) / _nonzero(n_pos)
        neg = (u * _surrogate(surrogate, -inp.x)).sum(0) / _nonzero(n_neg)
        per_class = pos + neg
    return _reduce_classes(per_class, defined, weight, reduction)


class _UnivariateLogistic(torch.autograd.Function):
    """Per class ``Σ_i t softplus(−z)/n⁺ + Σ_i (1 − t) v softplus(z)/n⁻`` from one softplus pass
    (``softplus(−z) = softplus(z) − z``); gradient ``σ(z)(t/n⁺ + (1 − t) v/n⁻) − t/n⁺``."""

    @staticmethod
    def forward(ctx, x, t, vf, inv_pos, inv_neg):  # type: ignore[override]
        sp = F.softplus(x)
        tmp = torch.mul(t, sp)
        t_sp = tmp.sum(0)
        t_x = torch.mul(t, x, out=tmp).sum(0)
        all_sp = sp.sum(0) if vf is None else torch.mul(vf, sp, out=tmp).sum(0)
        del tmp, sp
        ctx.save_for_backward(x, t, vf, inv_pos, inv_neg)
        return (t_sp - t_x) * inv_pos + (all_sp - t_sp) * inv_neg

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        x, t, vf, inv_pos, inv_neg = ctx.saved_tensors
        gp, gn = g * inv_pos, g * inv_neg
        grad = torch.sigmoid(x)
        # σ (t/n⁺ + (1 − t) v/n⁻) − t/n⁺ = σ v/n⁻ + t (σ (1/n⁺ − 1/n⁻) − 1/n⁺)
        aux = torch.addcmul(-gp, grad, gp - gn).mul_(t)
        grad.mul_(gn)
        if vf is not None:
            grad.mul_(vf)
        grad.add_(aux)
        return grad, None, None, None, None


@register_loss(
    name="macro-auc-univariate",
    per_sample=False,
    function=macro_auc_univariate_loss,
    family="metric-surrogate",
    description="macro-AUC surrogate: ℓ(f) over each label's positives + ℓ(−f) over its negatives",
    paper="Wu et al., ICML 2023",
    target="multilabel",
    uncertain=("surrogate",),
)
class MacroAUCUnivariateLoss(WeightedLoss):
    """Module form of :func:`macro_auc_univariate_loss` (a batch-level loss)."""

    def __init__(
        self,
        *,
        surrogate: str = "logistic",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_batch_reduction("macro-auc-univariate", reduction)
        check_choice("surrogate", surrogate, SURROGATES)
        self.surrogate = surrogate

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return macro_auc_univariate_loss(
            logits,
            target,
            surrogate=self.surrogate,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ---------------------------------------------------------------------------------------- AUC-M
def _check_imratio(imratio: Any) -> None:
    if imratio is None:
        return
    if isinstance(imratio, (int, float)):
        values = torch.tensor([float(imratio)])
    elif isinstance(imratio, torch.Tensor) and imratio.dim() == 0:
        values = imratio.detach().reshape(1).double()
    else:
        values = per_class_tensor(imratio, "imratio").double()
    if not (torch.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()):
        raise expected(
            "imratio", "None, or ratios of positives in [0, 1] (one, or one per class)", imratio
        )


def auc_m_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 1.0,
    imratio: Any = None,
    a: Any = 0.0,
    b: Any = 0.0,
    alpha: Any = 0.0,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """AUC-M, the AUC min-max margin loss (Yuan, Yan, Sonka and Yang, "Large-scale Robust Deep AUC
    Maximization: A New Surrogate Loss and Empirical Studies on Medical Image Classification",
    ICCV 2021), one binary problem per class.

    With the score ``h = σ(z)`` and ``p`` the ratio of positives, each element is

    .. math::

        F = (1-p)(h-a)^2\\,t + p\\,(h-b)^2\\,(1-t)
            + 2\\alpha\\big(p(1-p)m + p\\,h\\,(1-t) - (1-p)\\,h\\,t\\big) - p(1-p)\\alpha^2

    which is *minimised* over the model, ``a`` and ``b`` and *maximised* over ``α ≥ 0``: train it
    with :class:`longtail.optim.PESG` (descent on the model, ``a`` and ``b``, projected ascent on
    ``α``). ``a``, ``b`` and ``α`` are the loss's state, given here explicitly (a number shared by
    every class, or one value per class); :class:`AUCMLoss` holds them as parameters, one per
    class. Each class is a separate AUC problem with its own ``a_k``, ``b_k``, ``α_k`` and
    ``p_k`` (LibAUC's ``MultiLabelAUCMLoss``, with the margin its code leaves out of the
    multi-label form put back, as in the paper).

    ``"mean"`` averages the elements (over samples and classes: the mean over classes of the
    paper's expectation per class), ``"sum"`` adds them, ``"none"`` returns them in the logits'
    shape (0 where ignored). ``weight`` multiplies each class's elements (not the denominator of
    ``"mean"``), as ``BCEWithLogitsLoss``'s ``weight``.

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar, or the logits' shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: per-class scores (``h = σ(logits)``; LibAUC takes ``h`` itself).
        target: see Shape.
        margin: ``m``; default 1.0, LibAUC's default (``libauc/losses/auc.py``). Uncertain: the
            paper tunes it (LibAUC's search space is {0.6, 0.8, 1.0}).
        imratio: ``p``, a number in [0, 1] or one per class; default None: each class's ratio of
            positives in the batch (among the entries not ignored), as LibAUC does when it is not
            given (and always in its current code).
        a, b: the primal auxiliary variables (the means of the positive and negative scores at the
            optimum); default 0.0, LibAUC's initial value.
        alpha: the dual variable ``α ≥ 0``; default 0.0, LibAUC's initial value.
        weight: per-class factors.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    check_positive("margin", margin, allow_zero=True)
    _check_imratio(imratio)
    inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    x, t, u = inp.x, inp.t, inp.negatives()
    c = x.shape[1]
    if imratio is None:
        count = x.new_full((c,), x.shape[0]) if inp.valid is None else inp.valid.sum(0).to(x)
        p = t.sum(0) / _nonzero(count)
    else:
        p = _per_class_option(imratio, "imratio", c, x)
    a_ = _per_class_option(a, "a", c, x)
    b_ = _per_class_option(b, "b", c, x)
    al = _per_class_option(alpha, "alpha", c, x)
    if reduction != "none":
        vf = None if inp.valid is None else inp.valid.to(x.dtype)
        w = None if weight is None else weight.to(device=x.device, dtype=x.dtype)
        total = _AUCMSum.apply(x, t, vf, p.detach(), a_, b_, al, float(margin), w)
        if reduction == "sum":
            return total
        count = x.numel() if vf is None else inp.valid.sum().item()
        return total / max(count, 1)
    h = torch.sigmoid(x)
    q = p * (1 - p)
    elem = (
        (1 - p) * (h - a_).square() * t
        + p * (h - b_).square() * u
        + 2 * al * (q * margin + p * h * u - (1 - p) * h * t)
        - q * al.square()
    )
    if weight is not None:
        elem = elem * weight.to(device=x.device, dtype=x.dtype)
    if inp.valid is not None:
        elem = torch.where(inp.valid, elem, elem.new_zeros(()))
    return inp.unflatten(elem)


def _sum_like(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-class gradient summed down to ``like``'s shape (0-dim: one value for all classes)."""
    return grad.sum() if like.dim() == 0 else grad


class _AUCMSum(torch.autograd.Function):
    """``Σ_k w_k Σ_i F_ik`` of AUC-M from per-class sums (``S1 = Σ v h``, ``S2 = Σ v h²``,
    ``T1 = Σ t h``, ``T2 = Σ t h²``, ``n⁺ = Σ t``, ``n = Σ v``), with every gradient in closed form:

        Σ_i F = (1−p)(T2 − 2a T1 + a² n⁺) + p((S2−T2) − 2b(S1−T1) + b²(n − n⁺))
                + 2α(p(1−p) m n + p(S1−T1) − (1−p) T1) − p(1−p) α² n
        ∂F/∂h = t (2(1−2p) h − 2(1−p) a + 2p b − 2α) + v (2p h − 2p b + 2α p)
    """

    @staticmethod
    def forward(ctx, x, t, vf, p, a, b, alpha, margin, w):  # type: ignore[override]
        h = torch.sigmoid(x)
        hv = h if vf is None else h * vf
        th = t * h
        s1, s2 = hv.sum(0), (hv * h).sum(0)
        t1, t2 = th.sum(0), (th * h).sum(0)
        n_pos = t.sum(0)
        n = torch.full_like(n_pos, x.shape[0]) if vf is None else vf.sum(0)
        q = p * (1 - p)
        per_class = (
            (1 - p) * (t2 - 2 * a * t1 + a * a * n_pos)
            + p * ((s2 - t2) - 2 * b * (s1 - t1) + b * b * (n - n_pos))
            + 2 * alpha * (q * margin * n + p * (s1 - t1) - (1 - p) * t1)
            - q * alpha * alpha * n
        )
        cw = torch.ones_like(per_class) if w is None else w
        ctx.save_for_backward(h, t, vf, p, a, b, alpha, cw, s1, t1, n_pos, n)
        ctx.margin = margin
        return (per_class * cw).sum()

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        h, t, vf, p, a, b, alpha, cw, s1, t1, n_pos, n = ctx.saved_tensors
        gw = g * cw
        c1 = gw * 2 * (1 - 2 * p)  # t · (c1 h + c0) + v · (d1 h + d0), times h(1 − h)
        c0 = gw * (-2 * (1 - p) * a + 2 * p * b - 2 * alpha)
        d1 = gw * 2 * p
        d0 = gw * 2 * p * (alpha - b)
        inner = torch.addcmul(c0.expand(h.shape[1]), h, c1).mul_(t)
        neg = torch.addcmul(d0.expand(h.shape[1]), h, d1)
        inner.add_(neg if vf is None else neg.mul_(vf))
        grad = inner.mul_(torch.addcmul(h, h, h, value=-1))
        q = p * (1 - p)
        grad_a = gw * (1 - p) * (2 * a * n_pos - 2 * t1)
        grad_b = gw * p * (2 * b * (n - n_pos) - 2 * (s1 - t1))
        grad_alpha = gw * 2 * (q * ctx.margin * n + p * (s1 - t1) - (1 - p) * t1 - q * alpha * n)
        return (
            grad,
            None,
            None,
            None,
            _sum_like(grad_a, a) if ctx.needs_input_grad[4] else None,
            _sum_like(grad_b, b) if ctx.needs_input_grad[5] else None,
            _sum_like(grad_alpha, alpha) if ctx.needs_input_grad[6] else None,
            None,
            None,
        )


_STATE = ("a", "b", "alpha")


@register_loss(
    name="auc-m",
    function=auc_m_loss,
    family="metric-surrogate",
    description="AUC margin (min-max) loss, per class; a, b, α trained with longtail.optim.PESG",
    paper="Yuan et al., ICCV 2021",
    target="multilabel",
    uncertain=("margin",),
)
class AUCMLoss(LazyModuleMixin, WeightedLoss):
    """Module form of :func:`auc_m_loss`, holding ``a``, ``b`` and ``α`` as parameters.

    They are ``nn.Parameter`` s (not buffers) because they are trained: the optimizer needs their
    gradients, which a buffer never gets; like buffers, they follow ``.to()``, ``state_dict()``
    and DDP. Given numbers (the default), they take one entry per class at the first call, from
    the logits (the class dimension, 1 for ``(N,)`` logits), each entry the given number;
    given tensors, they keep those shapes. :meth:`state_arguments` gives them as the keyword
    arguments of :func:`auc_m_loss`.

    Train with :class:`longtail.optim.PESG`::

        crit = AUCMLoss()
        crit(model(x0), y0)  # sizes a, b, α (or build the optimizer after a first call)
        opt = PESG([*model.parameters(), crit.a, crit.b], dual=[crit.alpha], lr=0.1)
    """

    def __init__(
        self,
        *,
        margin: float = 1.0,
        imratio: Any = None,
        a: Any = 0.0,
        b: Any = 0.0,
        alpha: Any = 0.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("margin", margin, allow_zero=True)
        _check_imratio(imratio)
        self.margin = margin
        keep_number_or_per_class(self, "imratio", imratio)
        self._initial: dict[str, float] = {}
        for name, value in (("a", a), ("b", b), ("alpha", alpha)):
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                value = float(value)
            if isinstance(value, (int, float)):
                check_finite_number(name, value)
                self._initial[name] = float(value)
                setattr(self, name, nn.UninitializedParameter())
            else:
                setattr(self, name, nn.Parameter(per_class_tensor(value, name)))

    def initialize_parameters(self, logits: torch.Tensor, *args: Any) -> None:  # type: ignore[override]
        """Give the state one entry per class (LazyModuleMixin calls this at the first call)."""
        if not isinstance(logits, torch.Tensor) or logits.dim() == 0:
            return  # the loss function raises the clear error
        c = 1 if logits.dim() == 1 else logits.shape[1]
        with torch.no_grad():
            for name in _STATE:
                p = getattr(self, name)
                if isinstance(p, nn.UninitializedParameter):
                    p.materialize((c,))
                    p.fill_(self._initial[name])

    def state_arguments(self) -> dict[str, Any]:
        """``a``, ``b`` and ``alpha`` as keyword arguments of :func:`auc_m_loss` (the initial
        numbers while the parameters are not yet sized)."""
        out: dict[str, Any] = {}
        for name in _STATE:
            p = getattr(self, name)
            out[name] = self._initial[name] if isinstance(p, nn.UninitializedParameter) else p
        return out

    def extra_repr(self) -> str:
        parts = [f"margin={self.margin!r}"]
        imr = self.imratio
        parts.append(f"imratio={tuple(imr.shape) if isinstance(imr, torch.Tensor) else imr!r}")
        for name, value in self.state_arguments().items():
            parts.append(
                f"{name}={tuple(value.shape) if isinstance(value, torch.Tensor) else value}"
            )
        w = None if self.weight is None else tuple(self.weight.shape)
        parts += [
            f"weight={w}",
            f"ignore_index={self.ignore_index}",
            f"reduction={self.reduction!r}",
        ]
        return ", ".join(parts)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return auc_m_loss(
            logits,
            target,
            margin=self.margin,
            imratio=self.imratio,
            **self.state_arguments(),
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------------------ PSL
PSL_ACTIVATIONS = ("tanh", "atan", "relu", "identity")


def _psl_log_activation(d: torch.Tensor, activation: str) -> torch.Tensor:
    """``σ(d) = log g(d)`` with ``g`` = ``1 + tanh d``, ``1 + arctan d``, ``ReLU(d + 1)`` or
    ``e^d``; ``−∞`` where ``g ≤ 0``, with a zero gradient there."""
    if activation == "identity":
        return d
    if activation == "tanh":
        return math.log(2.0) - F.softplus(-2 * d)  # log(1 + tanh d) = log 2 + log σ(2d)
    g = torch.atan(d) + 1 if activation == "atan" else d + 1
    positive = g > 0
    safe = torch.where(positive, g, torch.ones_like(g))
    return torch.where(positive, torch.log(safe), torch.full_like(g, float("-inf")))


def pairwise_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    tau: float = 1.0,
    tau_star: float = 1.0,
    activation: str = "tanh",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """PSL, the pairwise softmax loss (Yang et al., "PSL: Rethinking and Improving Softmax Loss
    from Pairwise Perspective for Recommendation", NeurIPS 2024), for class-index targets.

    The softmax loss ``log Σ_j exp(d_j)`` with ``d_j = (z_j − z_y)/τ`` has each pairwise term's
    ``exp(d_j)`` replaced by ``exp(σ(d_j)/τ*)``, ``σ`` a bounded surrogate activation:

    .. math::

        \\ell_i = \\log \\sum_{j=1}^{C} \\exp\\big(\\sigma(d_{ij}) / \\tau^*\\big),
        \\qquad d_{ij} = (z_{ij} - z_{i,y_i}) / \\tau

    with ``σ(d) = log(1 + tanh d)`` (``"tanh"``), ``log(1 + arctan d)`` (``"atan"``) or
    ``log ReLU(d + 1)`` (``"relu"``); ``"identity"`` (``σ(d) = d``) is the softmax loss itself,
    i.e. cross-entropy on ``z / (τ τ*)``. The sum runs over every class, the target included (its
    term is ``exp(σ(0)/τ*) = 1``), as the paper's sum over all items; the official code
    (``Tiny-Snow/IR-Benchmark``, ``optim_PSL.py``) sums over sampled negatives, the recommender's
    approximation of that sum. Where ``1 + arctan d ≤ 0`` or ``d + 1 ≤ 0`` the term is 0 (the
    paper's activations are meant for ``d`` in [−1, 1], cosine scores with ``τ ≥ 2``; ``"relu"``
    already floors there, ``"atan"`` is extended the same way).

    In a classifier the "items" are the classes and the user's positive item is the label.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` (or ``(N, C, d1, ...)``); the paper's scores are cosines.
        target: class indices.
        tau: the score temperature ``τ > 0``; default 1.0, the official code's. Uncertain: the
            paper assumes ``τ ≥ 2`` on cosine scores and tunes it per dataset.
        tau_star: the robustness temperature ``τ* > 0``; default 1.0, the official code's.
            Uncertain: the paper tunes it per dataset.
        activation: ``"tanh"`` (default, the official code's), ``"atan"``, ``"relu"`` or
            ``"identity"``.
        weight: per-class weights, weighted mean ``Σ w_y ℓ / Σ w_y`` as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    check_positive("tau", tau)
    check_positive("tau_star", tau_star)
    check_choice("activation", activation, PSL_ACTIVATIONS)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    z = flat.logits.to(flat.compute_dtype)
    idx = flat.target.unsqueeze(1)
    if activation == "tanh":
        loss = _PSLTanh.apply(z, idx, float(tau), float(tau_star))
    else:
        d = (z - z.gather(1, idx)) / tau
        loss = torch.logsumexp(_psl_log_activation(d, activation) / tau_star, dim=1)
    return reduce_loss(loss, flat, weight, reduction)


class _PSLTanh(torch.autograd.Function):
    """Per-sample PSL with ``σ = log(1 + tanh)``, written with the sigmoid: ``1 + tanh d =
    2 s``, ``s = sigmoid(2d)``, so ``ℓ = log Σ_j (2 s_j)^{1/τ*}`` needs no log per element (none
    at all for ``τ* = 1``). The gradient in closed form: with ``e_j = (2 s_j)^{1/τ*}`` and
    ``S = Σ_j e_j``, ``∂ℓ/∂z_j = 2 e_j (1 − s_j) / (τ τ* S)`` for ``j ≠ y``, and ``∂ℓ/∂z_y`` is
    minus the sum of the others (``d_y = 0`` whatever ``z_y``).
    """

    @staticmethod
    def forward(ctx, z, idx, tau, tau_star):  # type: ignore[override]
        s = torch.sigmoid((z - z.gather(1, idx)).mul_(2 / tau))
        e = None if tau_star == 1 else (2 * s).pow_(1 / tau_star)
        total = 2 * s.sum(1) if e is None else e.sum(1)  # ≥ 1: the target's own term is 1
        ctx.save_for_backward(s, e, idx, total)
        ctx.scale = 2 / (tau * tau_star)
        return torch.log(total)

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        s, e, idx, total = ctx.saved_tensors
        coef = (g * ctx.scale / total).unsqueeze(1)
        if e is None:  # e (1 − s) = 2 s (1 − s)
            grad = torch.addcmul(s, s, s, value=-1).mul_(2 * coef)
        else:
            grad = torch.addcmul(e, e, s, value=-1).mul_(coef)
        grad.scatter_add_(1, idx, -grad.sum(1, keepdim=True))  # the y entry: minus the others
        return grad, None, None, None


@register_loss(
    name="psl",
    function=pairwise_softmax_loss,
    family="metric-surrogate",
    description="pairwise softmax loss: log Σ_j exp(σ((z_j − z_y)/τ)/τ*), σ a bounded activation",
    paper="Yang et al., NeurIPS 2024",
    uncertain=("tau", "tau_star"),
)
class PairwiseSoftmaxLoss(WeightedLoss):
    """Module form of :func:`pairwise_softmax_loss`."""

    def __init__(
        self,
        *,
        tau: float = 1.0,
        tau_star: float = 1.0,
        activation: str = "tanh",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("tau", tau)
        check_positive("tau_star", tau_star)
        check_choice("activation", activation, PSL_ACTIVATIONS)
        self.tau = tau
        self.tau_star = tau_star
        self.activation = activation

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return pairwise_softmax_loss(
            logits,
            target,
            tau=self.tau,
            tau_star=self.tau_star,
            activation=self.activation,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
