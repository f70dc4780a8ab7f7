"""Losses for long-tailed multi-label classification: ASL, DB, CB-BCE / CB-focal, logit-adjusted
BCE, ZLPR (the multi-label softmax), the decoupled softmax of DEXML and PU-MLC.

All take logits ``(N, C)`` (one score per class), ``(N, C, d1, ...)`` (every position a sample,
class dimension 1) or, where it has a meaning, ``(N,)`` (one binary problem), and targets that are
0/1 multi-hot rows of the logits' shape, or class indices ``(N, d1, ...)`` (one positive per row:
the one-hot rows). With a single logit column, ``(N, 1, ...)``, targets of the batch shape are
that column's 0/1 labels (a binary task), never class indices. ``ignore_index`` drops a whole
row given as a class index, or one entry of a dense target (a missing label). Soft targets in
``[0, 1]`` are taken where the loss has a meaning for them (said in each docstring); ZLPR and
PU-MLC take 0/1 targets only and refuse others with a ``ValueError``.

What ``reduction`` means differs with the kind of loss, as for the other losses of the package:

* element-wise losses (``asl``, ``distribution-balanced``, ``cb-bce``, ``cb-focal``, ``la-bce``):
  ``"none"`` gives one value per logit (the logits' shape), ``"mean"`` their mean over the entries
  not ignored (``BCEWithLogitsLoss``'s), ``weight`` ``(C,)`` multiplies column ``c``;
* ``decoupled-softmax``: one value per positive entry (``"none"`` has the logits' shape, 0 on the
  negatives), a sample's values summing to its loss; ``"mean"`` is the mean over samples;
* ``zlpr``: one value per sample (``"none"`` has the batch shape ``(N, d1, ...)``);
* ``pu-mlc``: a batch-level quantity (a mean over the batch inside a log, per class), so no
  ``"none"``; ``"mean"`` / ``"sum"`` over classes.

A row with no positive label (all negative) is valid input everywhere; what each loss does with
it is in its docstring.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import (
    as_counts,
    check_class_vector,
    check_counts_length,
    check_finite_number,
    check_in_range,
    check_positive,
    check_reduction,
    expected,
)
from ._base import WeightedLoss, first_order
from ._reduce import compute_dtype_for
from ._registry import register_loss
from .surrogates import (
    _check_batch_reduction,
    _check_flag,
    _Multilabel,
    _multilabel_inputs,
)

# ------------------------------------------------------------------------------ shared helpers


def _inputs(
    logits: Any, target: Any, weight: Any, ignore_index: int, *, binary: bool = False
) -> _Multilabel:
    """Checked multi-label inputs flattened to ``(M, C)``; ``binary`` refuses soft targets.

    Dense targets in ``[0, 1]`` with no entry equal to ``ignore_index`` (the common case) are
    checked with one ``aminmax`` pass; anything else takes the general path of the package's
    multi-label losses (class indices, ignored entries, and the error messages).
    """
    inp = _dense_fast_path(logits, target, weight, ignore_index)
    if inp is None:
        inp = _multilabel_inputs(logits, target, weight=weight, ignore_index=ignore_index)
    if binary and inp.labels is None and inp.t.numel() and _has_soft_entries(inp.t):
        raise expected(
            "target",
            "0/1 targets (this loss has no meaning for soft targets)",
            "values strictly between 0 and 1",
        )
    return inp


def _dense_fast_path(
    logits: Any, target: Any, weight: Any, ignore_index: int
) -> _Multilabel | None:
    if not (
        isinstance(logits, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and logits.is_floating_point()
        and target.is_floating_point()
        and logits.dim() >= 1
        and target.shape == logits.shape
        and target.numel() > 0
    ):
        return None
    lo, hi = torch.stack(torch.aminmax(target.detach())).tolist()
    if not (0 <= lo and hi <= 1) or lo <= ignore_index <= hi:
        return None  # out of range (an error), NaN, or maybe ignored entries: the general path
    shape = tuple(logits.shape)
    x = logits.unsqueeze(1) if logits.dim() == 1 else logits
    t = target.unsqueeze(1) if target.dim() == 1 else target
    c = x.shape[1]
    check_class_vector("weight", weight, c)
    if x.dim() > 2:
        x = x.movedim(1, -1).reshape(-1, c)
        t = t.movedim(1, -1).reshape(-1, c)
    ctype = compute_dtype_for(logits.dtype)
    return _Multilabel(x.to(ctype), t.to(ctype), None, shape, ctype, None)


def _has_soft_entries(t: torch.Tensor) -> bool:
    """Whether targets in ``[0, 1]`` hold a value other than 0 and 1: ``Σ t (1 − t) > 0``, a sum
    of non-negative terms, exactly 0 for 0/1 targets (two float passes, no boolean ones)."""
    flat = t.reshape(-1)
    return bool(torch.dot(flat, 1 - flat) > 0)


def _weight_row(weight: Any, inp: _Multilabel) -> torch.Tensor | None:
    return None if weight is None else weight.to(device=inp.x.device, dtype=inp.dtype)


def _reduce_elements(
    loss: torch.Tensor, inp: _Multilabel, weight: Any, reduction: str
) -> torch.Tensor:
    """Element losses ``(M, C)``: ``weight`` multiplies column c; ignored entries count for
    nothing (0 with ``"none"``, neither in the sum nor in the mean's count)."""
    w = _weight_row(weight, inp)
    if w is not None:
        loss = loss * w
    if inp.valid is not None:
        loss = torch.where(inp.valid, loss, loss.new_zeros(()))
    if reduction == "none":
        return inp.unflatten(loss)
    total = loss.sum()
    if reduction == "sum":
        return total
    count = loss.numel() if inp.valid is None else int(inp.valid.sum())
    return total / max(count, 1)  # an empty batch (or all ignored): the 0 of the sum


def _rows_counted(inp: _Multilabel) -> torch.Tensor | None:
    """Rows with at least one entry not ignored (None: every row)."""
    return None if inp.valid is None else inp.valid.any(1)


def _unflatten_rows(values: torch.Tensor, inp: _Multilabel) -> torch.Tensor:
    """``(M,)`` row values back in the batch shape ``(N, d1, ...)``."""
    if len(inp.shape) <= 2:
        return values.reshape(inp.shape[:1])
    return values.reshape(inp.shape[0], *inp.shape[2:])


def _reduce_rows(values: torch.Tensor, inp: _Multilabel, reduction: str) -> torch.Tensor:
    rows = _rows_counted(inp)
    if rows is not None:
        values = torch.where(rows, values, values.new_zeros(()))
    if reduction == "none":
        return _unflatten_rows(values, inp)
    total = values.sum()
    if reduction == "sum":
        return total
    count = values.numel() if rows is None else int(rows.sum())
    return total / max(count, 1)


def _element_factor(
    inp: _Multilabel, weight: Any, extra: torch.Tensor | None = None
) -> torch.Tensor | None:
    """What multiplies each element loss: ``extra`` (M, C), the ``weight`` row and the mask of
    the entries not ignored (None when all three are absent)."""
    f = extra
    w = _weight_row(weight, inp)
    if w is not None:
        f = w if f is None else f * w
    if inp.valid is not None:
        v = inp.valid.to(inp.dtype)
        f = v if f is None else f * v
    return f


def _element_count(inp: _Multilabel) -> int:
    """The denominator of ``"mean"`` over elements: the entries not ignored (at least 1)."""
    return max(inp.x.numel() if inp.valid is None else int(inp.valid.sum()), 1)


class _FusedLoss(torch.autograd.Function):
    """Shared ending of the losses whose forward also computes the gradient (closed form): the
    element (or row) values and their derivatives, scaled by ``factor``, summed unless
    ``reduction="none"``; the backward only scales the saved derivative."""

    @staticmethod
    def finish(ctx, loss, grad, factor, reduction, count, n_inputs):
        """``loss`` and ``grad`` are fresh tensors of the forward (scaled in place)."""
        if factor is not None:
            loss.mul_(factor)
            grad.mul_(factor)
        ctx.n_inputs = n_inputs
        ctx.scale = None
        if reduction != "none":
            ctx.scale = 1.0 / count if reduction == "mean" else 1.0
            loss = loss.sum() * ctx.scale
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        if ctx.scale is None:  # "none": one incoming gradient per value
            g = g if g.dim() == grad.dim() else g.unsqueeze(-1)
            out = grad * g
        else:
            out = grad * (g * ctx.scale)
        return (out,) + (None,) * (ctx.n_inputs - 1)


def _counts(class_counts: Any, num_classes: int) -> torch.Tensor:
    counts = as_counts(class_counts, allow_zero=False)
    check_counts_length(counts, num_classes)
    return counts


def _num_samples(counts: torch.Tensor, num_samples: Any, *, strict: bool) -> float:
    """N, the number of training examples the counts come from (default ``Σ n_c``)."""
    if num_samples is None:
        total = float(counts.sum())
        if strict and total <= float(counts.max()):  # one class: N / n_c - 1 would be 0
            raise expected(
                "num_samples",
                "given for counts of a single class (the default, the sum of the counts, equals "
                "that class's count, and the prior n_c / N would be 1)",
                "None",
            )
        return total
    check_positive("num_samples", num_samples)
    top = float(counts.max())
    if num_samples < top or (strict and num_samples <= top):
        what = f"{'greater than' if strict else 'at least'} every class count (max {top:g})"
        raise expected("num_samples", what, repr(num_samples))
    return float(num_samples)


def _class_shape(x: torch.Tensor) -> list[int]:
    shape = [1] * x.dim()
    shape[1] = -1
    return shape


# ------------------------------------------------------------------------------------- ASL
def asymmetric_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Asymmetric loss, ASL (Ridnik et al., "Asymmetric Loss For Multi-Label Classification",
    ICCV 2021): a focal loss with separate focusing for positives and negatives, and a
    probability shift that discards easy negatives.

    .. math::

        \\ell^+ = -(1 - p)^{\\gamma^+} \\log p,\\qquad
        \\ell^- = -p_m^{\\gamma^-} \\log(1 - p_m),\\qquad
        p = \\sigma(z),\\ p_m = \\max(p - m, 0)

    and ``ℓ = t ℓ⁺ + (1 − t) ℓ⁻`` for each logit. Soft targets take this convex combination
    (the official code instead mixes the exponents, ``γ = γ⁺ t + γ⁻ (1 − t)``; both agree on 0/1
    targets).

    **Gradient.** The focusing weights ``(1 − p)^γ⁺`` and ``p_m^γ⁻`` are held constant in the
    backward (detached), as in the official training: its ``train.py`` builds
    ``AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)``,
    which computes them under ``torch.no_grad``. The gradient is therefore that of
    ``−w⁺ log p`` and ``−w⁻ log(1 − p_m)`` with ``w`` constants (it is 0 on a negative whose
    ``p ≤ m``, whose loss is 0).

    The official code clamps probabilities at ``eps = 1e-8`` before the log; here
    ``log p = log σ(z)`` is computed in log space (and ``log(1 − p)`` too when ``m = 0``), so the
    two differ only where ``p < 1e-8`` (``z < −18.4``), where this one keeps a gradient.

    ``γ⁺ = γ⁻ = 0`` with ``m = 0`` is binary cross-entropy with logits.

    Reduction: ``"mean"`` is the mean over the entries (``BCEWithLogitsLoss``'s); the official
    code returns the sum over the batch and the classes, ``reduction="sum"`` here.

    Shape:
        - logits: ``(N, C)``, ``(N, C, d1, ...)`` or ``(N,)``; any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices
          ``(N, d1, ...)``.
        - output: a scalar, or the logits' shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits, target: see Shape.
        gamma_pos: ``γ⁺ ≥ 0``, focusing of the positives; default 0, the paper's choice (and the
            official training's ``gamma_pos=0``).
        gamma_neg: ``γ⁻ ≥ 0``, focusing of the negatives; default 4, the paper's.
        clip: the probability margin ``m`` in ``[0, 1)``; default 0.05, the paper's (the
            official ``clip``).
        weight: per-class factor ``(C,)`` of column ``c`` (``BCEWithLogitsLoss``'s ``weight``).
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    check_positive("gamma_pos", gamma_pos, allow_zero=True)
    check_positive("gamma_neg", gamma_neg, allow_zero=True)
    _check_clip(clip)
    inp = _inputs(logits, target, weight, ignore_index)
    out = _ASL.apply(
        inp.x,
        inp.t,
        float(gamma_pos),
        float(gamma_neg),
        float(clip),
        _element_factor(inp, weight),
        reduction,
        _element_count(inp),
        clip > 0 and _is_hard(inp),
    )
    return inp.unflatten(out) if reduction == "none" else out


class _ASL(_FusedLoss):
    """ASL's element losses and their gradient with the focusing weights held constant:
    positives ``−w⁺ log p`` (``d/dz = −w⁺ (1 − p)``), negatives ``−w⁻ log(1 − p_m)``
    (``d/dz = w⁻ p (1 − p) / (1 − p_m)`` where ``p > m``, else 0; ``w⁻ p`` for ``m = 0``).

    For 0/1 targets and ``m > 0`` (``hard``), each logit has one term: ``−w log v`` with
    ``v = p`` or ``1 − p_m`` and ``w = w⁺`` or ``w⁻``, computed once, in five fresh buffers."""

    @staticmethod
    def forward(ctx, x, t, gamma_pos, gamma_neg, clip, factor, reduction, count, hard):  # type: ignore[override]
        if hard:
            p = torch.sigmoid(x)
            q = (1.0 + clip - p).clamp_(max=1.0)  # 1 − p_m
            tiny = torch.finfo(p.dtype).tiny
            loss = torch.lerp(q, p, t).clamp_min_(tiny).log_().neg_()  # −log v
            if p.numel() and bool(p.amin() <= tiny):
                # p underflowed: there −log p = softplus(−z), which is at least −z
                torch.maximum(loss, x * -t, out=loss)
            # the unweighted derivative: −(1 − p) for a positive, p (1 − p) / q for a negative
            r = q.reciprocal_().mul_(p)
            grad = torch.addcmul(r, r, t, value=-1.0).sub_(t)
            grad.addcmul_(grad, p, value=-1.0)
            if not gamma_neg:  # 0 where p <= m (the clamp's flat part)
                grad.mul_((p > clip).to(grad.dtype).add_(t).clamp_(max=1.0))
            w = (p - clip).clamp_(min=0.0)  # p_m, then w⁻ = p_m^γ⁻
            if gamma_neg == 4:
                w.square_().square_()
            elif gamma_neg:
                w.pow_(gamma_neg)
            else:
                w.fill_(1.0)
            if gamma_pos:
                w = torch.lerp(w, (1 - p).pow_(gamma_pos), t)
            else:
                w.addcmul_(w, t, value=-1.0).add_(t)  # 1 for a positive
            loss.mul_(w)
            grad.mul_(w)
            return _FusedLoss.finish(ctx, loss, grad, factor, reduction, count, 9)
        p = torch.sigmoid(x)
        q1 = 1 - p
        lpos = F.softplus(-x)  # −log p, exact in the tails
        gpos = q1.neg()
        if gamma_pos:
            wp = q1.pow(gamma_pos)
            lpos.mul_(wp)
            gpos.mul_(wp)
        if clip > 0:
            q = (q1 + clip).clamp_(max=1.0)  # 1 − p_m
            lneg = torch.log(q).neg_()
            gneg = (p * q1).div_(q)
            pm = (p - clip).clamp_(min=0.0)
            if not gamma_neg:  # 0 where p <= m (the clamp's flat part)
                gneg.masked_fill_(pm == 0, 0.0)
        else:
            lneg = F.softplus(x)  # −log(1 − p)
            gneg = p.clone()
            pm = p
        if gamma_neg:
            if gamma_neg == 4:
                wn = (pm * pm).square_()
            elif gamma_neg == 2:
                wn = pm * pm
            else:
                wn = pm.pow(gamma_neg)
            lneg.mul_(wn)
            gneg.mul_(wn)
        loss = torch.lerp(lneg, lpos, t)
        grad = torch.lerp(gneg, gpos, t)
        return _FusedLoss.finish(ctx, loss, grad, factor, reduction, count, 9)


def _check_clip(clip: Any) -> None:
    check_in_range("clip", clip, 0.0, 1.0)
    if clip >= 1:
        raise expected("clip", "a probability margin in [0, 1)", repr(clip))


@register_loss(
    name="asl",
    function=asymmetric_loss,
    family="multilabel",
    description="asymmetric loss: focusing γ⁺/γ⁻ per sign, shifted negatives p_m = max(p − m, 0)",
    paper="Ridnik et al., ICCV 2021",
    target="multilabel",
    stop_gradient="the focusing weights (1 − p)^γ⁺ and p_m^γ⁻ (the official training's "
    "disable_torch_grad_focal_loss=True)",
)
class AsymmetricLoss(WeightedLoss):
    """Module form of :func:`asymmetric_loss`."""

    def __init__(
        self,
        *,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma_pos", gamma_pos, allow_zero=True)
        check_positive("gamma_neg", gamma_neg, allow_zero=True)
        _check_clip(clip)
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return asymmetric_loss(
            logits,
            target,
            gamma_pos=self.gamma_pos,
            gamma_neg=self.gamma_neg,
            clip=self.clip,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ---------------------------------------------------------------------------------------- DB
def db_statistics(
    class_counts: Any,
    *,
    kappa: float = 0.05,
    lam: float = 2.0,
    num_samples: Any = None,
    ntr: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-class constants of the DB loss, float64: ``1 / n_c`` and the NTR bias
    ``ν_c = −(κ / λ) log(N / n_c − 1)`` (zeros without ``ntr``; see
    :func:`distribution_balanced_loss`)."""
    counts = as_counts(class_counts, allow_zero=False)
    inv = 1.0 / counts
    if not ntr:
        return inv, torch.zeros_like(counts)
    n = _num_samples(counts, num_samples, strict=True)
    return inv, -(kappa / lam) * torch.log(n / counts - 1)


def _rebalance_weights(t: torch.Tensor, inv: torch.Tensor, alpha, beta, mu) -> torch.Tensor:
    """DB's ``r̂`` (M, C) from the targets and ``1/n``. A row with no positive has rate 0 and
    ``r = ∞``: it gets the limit of ``r̂`` (``α + 1`` for ``β > 0``), through a rate floored at
    the dtype's smallest normal number."""
    rate = (t @ inv).clamp_min_(torch.finfo(t.dtype).tiny)  # Σ_c t_ic / n_c
    ratio = torch.outer(rate.reciprocal_(), inv)  # r_ic = (1 / n_c) / Σ_k t_ik / n_k
    return ratio.sub_(mu).mul_(beta).sigmoid_().add_(alpha)


def _db(
    inp: _Multilabel,
    inv: torch.Tensor,
    bias: torch.Tensor,
    rebalance: bool,
    alpha: float,
    beta: float,
    mu: float,
    ntr: bool,
    lam: float,
    gamma: float,
    weight: Any,
    reduction: str,
) -> torch.Tensor:
    """The DB loss on checked flat inputs."""
    x, t = inp.x, inp.t
    rhat = None
    if rebalance:
        rhat = _rebalance_weights(t, inv.to(device=x.device, dtype=x.dtype), alpha, beta, mu)
    b = bias.to(device=x.device, dtype=x.dtype) if ntr else None
    out = _SigmoidTerms.apply(
        x,
        t,
        b,
        float(lam) if ntr else 1.0,
        float(gamma),
        _element_factor(inp, weight, rhat),
        reduction,
        _element_count(inp),
        _is_hard(inp),
    )
    return inp.unflatten(out) if reduction == "none" else out


class _SigmoidTerms(_FusedLoss):
    """``t ℓ⁺ + (1 − t) ℓ⁻`` with ``z = x + bias``,
    ``ℓ⁺ = softplus(−z) σ(−z)^γ`` and ``ℓ⁻ = softplus(λz)/λ · σ(λz)^γ`` (DB's terms; the sigmoid
    focal loss without α for ``bias = None``, ``λ = 1``), with their derivatives
    ``−σ(−z)^γ (σ(−z) + γ σ(z) softplus(−z))`` and
    ``σ(λz)^γ (σ(λz) + γ σ(−λz) softplus(λz))``.

    For 0/1 targets (``hard``) each logit has one of the two terms: with ``u = −z`` for a
    positive and ``u = λz`` for a negative (the logit of the wrong answer, scaled), both are
    ``h(u) = softplus(u) σ(u)^γ`` (divided by λ for a negative), with derivative
    ``± σ(u)^γ (σ(u) + γ σ(−u) softplus(u))``: one sigmoid and one softplus per logit, not two."""

    @staticmethod
    def forward(ctx, x, t, bias, lam, gamma, factor, reduction, count, hard):  # type: ignore[override]
        z = x if bias is None else x + bias
        if hard:  # few fresh (M, C) buffers: on CPU each costs about a pass over it
            # u = z (λ − (λ + 1) t): −z for a positive, λz for a negative
            u = torch.addcmul(z * lam if lam != 1.0 else z, z, t, value=-(lam + 1.0))
            q = torch.sigmoid(u)  # the wrong answer's probability
            loss = F.softplus(u)
            del u
            if gamma:
                qg = q * q if gamma == 2 else q.pow(gamma)
                grad = torch.neg(q).add_(1.0).mul_(loss).mul_(gamma).add_(q).mul_(qg)
                loss.mul_(qg)
            else:
                grad = q
            torch.addcmul(grad, grad, t, value=-2.0, out=grad)  # the sign: − for a positive
            if lam != 1.0:  # a negative's term is divided by λ
                loss.mul_(1.0 / lam)
                torch.addcmul(loss, loss, t, value=lam - 1.0, out=loss)
            return _FusedLoss.finish(ctx, loss, grad, factor, reduction, count, 9)
        s = torch.sigmoid(-z)  # 1 − p
        lpos = F.softplus(-z)
        if lam == 1.0:
            u = torch.sigmoid(z)
            lneg = F.softplus(z)
        else:
            a = z * lam
            u = torch.sigmoid(a)
            lneg = F.softplus(a).div_(lam)
        if gamma:
            sg = s * s if gamma == 2 else s.pow(gamma)
            ug = u * u if gamma == 2 else u.pow(gamma)
            gpos = (lpos * (1 - s)).mul_(gamma).add_(s).mul_(sg).neg_()
            gneg = (lneg * (1 - u)).mul_(gamma * lam).add_(u).mul_(ug)
            lpos.mul_(sg)
            lneg.mul_(ug)
        else:
            gpos, gneg = s.neg_(), u
        loss = torch.lerp(lneg, lpos, t)
        grad = torch.lerp(gneg, gpos, t)
        return _FusedLoss.finish(ctx, loss, grad, factor, reduction, count, 9)


def _is_hard(inp: _Multilabel) -> bool:
    """Every target is 0 or 1."""
    return inp.labels is not None or not inp.t.numel() or not _has_soft_entries(inp.t)


def _check_db(alpha, beta, mu, kappa, lam, gamma, rebalance, ntr) -> None:
    _check_flag("rebalance", rebalance)
    _check_flag("ntr", ntr)
    check_positive("alpha", alpha, allow_zero=True)
    check_finite_number("beta", beta)
    check_finite_number("mu", mu)
    check_positive("kappa", kappa, allow_zero=True)
    check_positive("lam", lam)
    check_positive("gamma", gamma, allow_zero=True)


def distribution_balanced_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    rebalance: bool = True,
    alpha: float = 0.1,
    beta: float = 10.0,
    mu: float = 0.2,
    ntr: bool = True,
    kappa: float = 0.05,
    lam: float = 2.0,
    gamma: float = 2.0,
    num_samples: int | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Distribution-balanced loss, DB (Wu et al., "Distribution-Balanced Loss for Multi-Label
    Classification in Long-Tailed Datasets", ECCV 2020): a sigmoid focal loss with re-balanced
    weights and negative-tolerant regularisation, each switchable.

    **Re-balanced weighting** (``rebalance``). Class-aware re-sampling draws an example with
    probability ``∝ P^I_i = Σ_{k ∈ y_i} 1 / n_k`` while each of its labels ``c`` asks for
    ``P^C_c = 1 / n_c``; the weight of every logit of row ``i`` is the smoothed ratio

    .. math::

        r_{ic} = \\frac{1 / n_c}{\\sum_k t_{ik} / n_k},\\qquad
        \\hat r_{ic} = \\alpha + \\sigma\\big(\\beta (r_{ic} - \\mu)\\big)

    applied to positives and negatives alike (the official ``rebalance_weight``). A row with no
    positive has ``r = ∞``: its weight is the limit ``α + 1`` (for ``β > 0``). Defaults
    ``α = 0.1``, ``β = 10``, ``μ = 0.2``: the official COCO-MLT config (``map_param``); its VOC-MLT
    config has ``μ = 0.3``, so ``mu`` is uncertain.

    **Negative-tolerant regularisation** (``ntr``). Each logit is shifted by a class-specific bias
    initialised from the prior ``p_c = n_c / N``, and the negative term is sharpened by ``λ``:

    .. math::

        z' = z + \\nu_c,\\quad \\nu_c = -\\frac{\\kappa}{\\lambda}\\log\\Big(\\frac{1}{p_c} - 1
        \\Big),\\qquad
        \\ell^+ = \\log(1 + e^{-z'}),\\quad \\ell^- = \\frac{1}{\\lambda}\\log(1 + e^{\\lambda z'})

    as the official ``logit_reg_functions`` computes it (``init_bias = κ``, ``neg_scale = λ``; the
    bias carries the official ``1/λ``). Defaults ``κ = 0.05``, ``λ = 2``: the COCO-MLT config; the
    VOC-MLT config has ``λ = 5``, so ``lam`` is uncertain. Off, ``ℓ⁺ = log(1 + e^{−z})``,
    ``ℓ⁻ = log(1 + e^{z})``.

    **Focal.** Both terms are multiplied by the focal factor ``(1 − p_t)^γ`` of their own
    (regularised) logit, ``σ(−z')^γ`` and ``σ(λz')^γ``, not detached (the official config's
    ``focal=True, gamma=2``, with which the paper's results are reported). The official
    config's factor ``balance_param = 2`` on the loss (so on the learning rate) is left out.

    The element loss is ``r̂ · (t ℓ⁺ + (1 − t) ℓ⁻)`` (soft targets take this convex combination and
    the soft rate ``Σ_k t_ik / n_k``). With ``rebalance=False, ntr=False, gamma=0`` it is binary
    cross-entropy with logits.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar, or the logits' shape with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        class_counts: positive examples per class ``(C,)`` in the training set, all > 0.
        rebalance: apply the re-balanced weights ``r̂``.
        alpha, beta, mu: the smoothing function's ``α ≥ 0``, ``β`` and ``μ`` (see above).
        ntr: apply negative-tolerant regularisation.
        kappa: ``κ ≥ 0``, the scale of the prior bias.
        lam: ``λ > 0``, the sharpening of the negative term.
        gamma: the focal ``γ ≥ 0`` (0: no focal factor).
        num_samples: ``N``, the number of training examples the counts come from, for the prior
            ``p_c = n_c / N``; must exceed every count. Default ``None``: ``Σ_c n_c``, exact for
            single-label data but too large for multi-label data (pass ``N`` then).
        weight: per-class factor ``(C,)`` of column ``c``.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean"`` over the entries (the official default) ``| "sum" | "none"``.
    """
    check_reduction(reduction)
    _check_db(alpha, beta, mu, kappa, lam, gamma, rebalance, ntr)
    inp = _inputs(logits, target, weight, ignore_index)
    _counts(class_counts, inp.x.shape[1])
    inv, bias = db_statistics(class_counts, kappa=kappa, lam=lam, num_samples=num_samples, ntr=ntr)
    return _db(
        inp,
        inv.to(inp.dtype),
        bias.to(inp.dtype),
        rebalance,
        alpha,
        beta,
        mu,
        ntr,
        lam,
        gamma,
        weight,
        reduction,
    )


@register_loss(
    name="distribution-balanced",
    function=distribution_balanced_loss,
    family="multilabel",
    description="DB: focal BCE with re-balanced weights r̂ and negative-tolerant regularisation",
    paper="Wu et al., ECCV 2020",
    needs_counts=True,
    target="multilabel",
    uncertain=("mu", "lam"),
)
class DistributionBalancedLoss(WeightedLoss):
    """Module form of :func:`distribution_balanced_loss`; the counts, ``1/n`` and the NTR bias
    are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        rebalance: bool = True,
        alpha: float = 0.1,
        beta: float = 10.0,
        mu: float = 0.2,
        ntr: bool = True,
        kappa: float = 0.05,
        lam: float = 2.0,
        gamma: float = 2.0,
        num_samples: int | None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_db(alpha, beta, mu, kappa, lam, gamma, rebalance, ntr)
        counts = as_counts(class_counts, allow_zero=False)
        self.register_buffer("class_counts", counts.to(torch.float32))
        inv, bias = db_statistics(counts, kappa=kappa, lam=lam, num_samples=num_samples, ntr=ntr)
        self.register_buffer("inv_counts", inv.to(torch.float32))
        self.register_buffer("bias", bias.to(torch.float32))
        self.rebalance, self.alpha, self.beta, self.mu = rebalance, alpha, beta, mu
        self.ntr, self.kappa, self.lam, self.gamma = ntr, kappa, lam, gamma
        self.num_samples = num_samples

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inp = _inputs(logits, target, self.weight, self.ignore_index)
        check_counts_length(self.class_counts, inp.x.shape[1])
        return _db(
            inp,
            self.inv_counts.to(inp.dtype),
            self.bias.to(inp.dtype),
            self.rebalance,
            self.alpha,
            self.beta,
            self.mu,
            self.ntr,
            self.lam,
            self.gamma,
            self.weight,
            self.reduction,
        )


# --------------------------------------------------------------------------- CB-BCE, CB-focal
def effective_number_weights(class_counts: Any, beta: float) -> torch.Tensor:
    """Class-balanced weights ``w_c = (1 − β) / (1 − β^{n_c})`` normalised to sum to ``C``
    (Cui et al., CVPR 2019), float64; ``β = 0`` gives ones."""
    counts = as_counts(class_counts, allow_zero=False)
    _check_cb_beta(beta)
    if beta == 0:
        return torch.ones_like(counts)
    # 1 − β^n = −expm1(n log β), accurate for β near 1
    w = (1 - beta) / -torch.expm1(counts * math.log(beta))
    return w * (counts.numel() / w.sum())


def _check_cb_beta(beta: Any) -> None:
    check_in_range("beta", beta, 0.0, 1.0)
    if beta >= 1:
        raise expected("beta", "in [0, 1) (β = 1 would weight every class infinitely)", beta)


#: How :func:`class_balanced_bce_loss` applies the class weights: to each class's column, or to
#: each example (row) as the mean weight of its positive labels.
CB_MODES = ("class", "example")


def _check_cb_mode(mode: Any) -> None:
    if mode not in CB_MODES:
        raise expected("mode", f"one of {CB_MODES}", repr(mode))


def _cb_factor(inp: _Multilabel, w: torch.Tensor, mode: str, weight: Any) -> torch.Tensor:
    """What multiplies each element: ``w_c`` per column (``"class"``) or, per row, the mean of
    ``w`` over the row's positive labels (``"example"``; target-weighted for soft targets,
    ignored entries left out, 1, the mean class weight, for a row with none), times the user's
    per-class ``weight``."""
    if mode == "example":
        t = inp.t if inp.valid is None else torch.where(inp.valid, inp.t, inp.t.new_zeros(()))
        positives = t.sum(1, keepdim=True)
        mean_w = (t @ w.unsqueeze(1)) / positives.clamp_min(torch.finfo(t.dtype).tiny)
        w = torch.where(positives > 0, mean_w, torch.ones_like(mean_w))
    return _times_weight(w, weight, inp.x.shape[1])


def _bce_or_focal(
    inp: _Multilabel,
    shift: torch.Tensor | None,
    w_row: torch.Tensor | None,
    gamma: float,
    reduction: str,
) -> torch.Tensor:
    """BCE with logits (``gamma = 0``, torch's kernel) or the sigmoid focal loss without α, of
    ``x + shift``, column ``c`` weighted by ``w_row[c]``, on checked flat inputs."""
    if gamma:
        out = _SigmoidTerms.apply(
            inp.x,
            inp.t,
            shift,
            1.0,
            float(gamma),
            _element_factor(inp, None, w_row),
            reduction,
            _element_count(inp),
            _is_hard(inp),
        )
        return inp.unflatten(out) if reduction == "none" else out
    x = inp.x if shift is None else inp.x + shift
    if inp.valid is None:
        # an empty batch: the 0 of the sum, not torch's 0/0
        red = "sum" if reduction == "mean" and x.numel() == 0 else reduction
        out = F.binary_cross_entropy_with_logits(x, inp.t, weight=w_row, reduction=red)
        return inp.unflatten(out) if reduction == "none" else out
    loss = F.binary_cross_entropy_with_logits(x, inp.t, weight=w_row, reduction="none")
    loss = torch.where(inp.valid, loss, loss.new_zeros(()))
    if reduction == "none":
        return inp.unflatten(loss)
    total = loss.sum()
    return total if reduction == "sum" else total / _element_count(inp)


def _times_weight(w: torch.Tensor, weight: Any, c: int) -> torch.Tensor:
    """Per-class factors ``w`` times the user's ``weight`` (checked: one finite value per
    class)."""
    if weight is None:
        return w
    if not isinstance(weight, torch.Tensor):
        raise expected("weight", f"a 1-D tensor of length {c} (one value per class)", weight)
    check_class_vector("weight", weight, c)
    return w.to(weight.device) * weight.to(w.dtype)


def class_balanced_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    beta: float = 0.9999,
    mode: str = "class",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-balanced binary cross-entropy (Cui et al., "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019): BCE with logits, column ``c`` weighted by the inverse
    effective number of class ``c``'s positives.

    .. math::

        w_c = \\frac{1 - \\beta}{1 - \\beta^{n_c}}\\ \\text{normalised to}\\ \\sum_c w_c = C,
        \\qquad \\ell_{ic} = w_c\\,\\mathrm{BCE}(z_{ic}, t_{ic})

    ``mode`` says where the weights go. ``"class"`` (default): every class's weight multiplies
    its own column, both its positive and negative terms (the "by class" mode of the DB authors'
    code), the usual multi-label form. ``"example"``: every column of row ``i`` is multiplied by
    the mean weight of the row's positive labels, ``Σ_c t_ic w_c / Σ_c t_ic`` (their
    ``average_w``; a row with no positive label gets 1, the mean class weight). On single-label
    targets (class indices, or one-hot rows) that is ``w_{y_i}`` on the whole row: Cui et al.'s
    own sigmoid class-balanced loss, ``CB(z, y) = w_y Σ_c BCE(z_c, [c = y])``. The two modes
    differ on one-hot targets. ``β = 0`` gives weight 1 for every class: plain BCE.

    Default ``β = 0.9999``: uncertain, Cui et al. tune β per data set (0.9 to 0.9999), 0.9999
    being their choice for long-tailed CIFAR-10.

    Soft targets are taken (BCE's). Reduction: ``"mean"`` over the entries (BCE's).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N,)`` for
          ``(N, C)`` logits.
        - output: a scalar, or the logits' shape with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        class_counts: positive examples per class ``(C,)``, all > 0.
        beta: ``β`` in ``[0, 1)``.
        mode: ``"class"`` (per column) or ``"example"`` (per row; Cui et al.'s single-label
            form), see above.
        weight: a further per-class factor ``(C,)``, on column ``c`` in either mode.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    _check_cb_beta(beta)
    _check_cb_mode(mode)
    inp = _inputs(logits, target, weight, ignore_index)
    _counts(class_counts, inp.x.shape[1])
    w = effective_number_weights(class_counts, beta).to(inp.dtype)
    return _bce_or_focal(inp, None, _cb_factor(inp, w, mode, weight), 0.0, reduction)


class _ClassBalancedSigmoid(WeightedLoss):
    """Counts and β held by the module; ``cb_weight`` (the normalised weights) is a buffer."""

    _gamma: float = 0.0

    def _setup(self, class_counts: Any, beta: float, mode: str) -> None:
        _check_cb_mode(mode)
        counts = as_counts(class_counts, allow_zero=False)
        self.register_buffer("class_counts", counts.to(torch.float32))
        self.beta, self.mode = beta, mode
        self.register_buffer("cb_weight", effective_number_weights(counts, beta).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inp = _inputs(logits, target, self.weight, self.ignore_index)
        check_counts_length(self.class_counts, inp.x.shape[1])
        factor = _cb_factor(inp, self.cb_weight.to(inp.dtype), self.mode, self.weight)
        return _bce_or_focal(inp, None, factor, self._gamma, self.reduction)


@register_loss(
    name="cb-bce",
    function=class_balanced_bce_loss,
    family="multilabel",
    description="class-balanced BCE: w_c ∝ (1 − β)/(1 − β^n_c), Σw = C, per column (or per row: "
    "mode='example')",
    paper="Cui et al., CVPR 2019",
    needs_counts=True,
    target="multilabel",
    uncertain=("beta",),
)
class ClassBalancedBCELoss(_ClassBalancedSigmoid):
    """Module form of :func:`class_balanced_bce_loss`; counts and weights are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        beta: float = 0.9999,
        mode: str = "class",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        self._setup(class_counts, beta, mode)


def class_balanced_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    beta: float = 0.9999,
    gamma: float = 1.0,
    mode: str = "class",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-balanced sigmoid focal loss (Cui et al., "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019): :func:`class_balanced_bce_loss`'s weights on the sigmoid
    focal loss of Lin et al. (without α).

    .. math::

        \\ell_{ic} = w_c\\,(1 - p_t)^{\\gamma}\\,\\mathrm{BCE}(z_{ic}, t_{ic}),\\qquad
        w_c = \\frac{1 - \\beta}{1 - \\beta^{n_c}}\\ \\text{normalised to}\\ \\sum_c w_c = C

    (the weights as in :func:`class_balanced_bce_loss`: per column by default, or with
    ``mode="example"`` per row, the mean weight of its positive labels, which on single-label
    targets is Cui et al.'s ``w_y (1 − p_t)^γ`` on the whole row). ``γ = 0`` is CB-BCE;
    ``β = 0`` is the sigmoid focal loss without α.

    Defaults: ``β = 0.9999`` and ``γ = 1``, both uncertain: Cui et al. tune them per data set
    (β from 0.9 to 0.9999, γ in {0.5, 1, 2}).

    Soft targets are taken (``p_t = p t + (1 − p)(1 − t)``, torchvision's). Reduction: ``"mean"``
    over the entries.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N,)`` for
          ``(N, C)`` logits.
        - output: a scalar, or the logits' shape with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        class_counts: positive examples per class ``(C,)``, all > 0.
        beta: ``β`` in ``[0, 1)``.
        gamma: focusing ``γ ≥ 0``.
        mode: ``"class"`` or ``"example"``, as in :func:`class_balanced_bce_loss`.
        weight: a further per-class factor ``(C,)``, on column ``c`` in either mode.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    check_positive("gamma", gamma, allow_zero=True)
    _check_cb_beta(beta)
    _check_cb_mode(mode)
    inp = _inputs(logits, target, weight, ignore_index)
    _counts(class_counts, inp.x.shape[1])
    w = effective_number_weights(class_counts, beta).to(inp.dtype)
    return _bce_or_focal(inp, None, _cb_factor(inp, w, mode, weight), gamma, reduction)


@register_loss(
    name="cb-focal",
    function=class_balanced_focal_loss,
    family="multilabel",
    description="class-balanced sigmoid focal: w (1−p_t)^γ BCE, w as cb-bce (per column or row)",
    paper="Cui et al., CVPR 2019",
    needs_counts=True,
    target="multilabel",
    uncertain=("beta", "gamma"),
)
class ClassBalancedFocalLoss(_ClassBalancedSigmoid):
    """Module form of :func:`class_balanced_focal_loss`; counts and weights are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        beta: float = 0.9999,
        gamma: float = 1.0,
        mode: str = "class",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self._setup(class_counts, beta, mode)
        self.gamma = gamma

    @property
    def _gamma(self) -> float:  # type: ignore[override]
        return self.gamma


# ------------------------------------------------------------------------------------ LA-BCE
def logit_adjusted_bce_bias(
    class_counts: Any, *, tau: float = 1.0, num_samples: Any = None
) -> torch.Tensor:
    """``τ log π_c``, ``π_c = n_c / N``, float64 (see :func:`logit_adjusted_bce_loss`)."""
    counts = as_counts(class_counts, allow_zero=False)
    n = _num_samples(counts, num_samples, strict=False)
    return tau * torch.log(counts / n)


def _la_bce(logits, target, bias, weight, ignore_index, reduction) -> torch.Tensor:
    inp = _inputs(logits, target, weight, ignore_index)
    check_counts_length(bias, inp.x.shape[1])
    shift = bias.to(device=inp.x.device, dtype=inp.dtype)
    return _bce_or_focal(inp, shift, _weight_row(weight, inp), 0.0, reduction)


def logit_adjusted_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    tau: float = 1.0,
    num_samples: int | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Logit-adjusted binary cross-entropy: the logit adjustment of Menon et al. ("Long-Tail
    Learning via Logit Adjustment", ICLR 2021) on each sigmoid, ``τ log π_c`` added to class
    ``c``'s logit before BCE.

    .. math::

        \\ell_{ic} = \\mathrm{BCE}\\big(z_{ic} + \\tau \\log \\pi_c,\\ t_{ic}\\big),\\qquad
        \\pi_c = n_c / N

    Menon et al. adjust a softmax; this is the same shift applied to one-vs-rest sigmoids, a
    common multi-label baseline. It is not the Bayes-optimal shift of a sigmoid, which is the
    prior log-odds ``log π_c − log(1 − π_c)`` (``bal-bce``, LiVT's); the two agree as
    ``π_c → 0``. ``τ = 0`` is plain BCE. Default ``τ = 1``, Menon et al.'s.

    Soft targets are taken (BCE's). Reduction: ``"mean"`` over the entries.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N,)`` for
          ``(N, C)`` logits.
        - output: a scalar, or the logits' shape with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        class_counts: positive examples per class ``(C,)``, all > 0.
        tau: ``τ``, the scale of the adjustment.
        num_samples: ``N``, the number of training examples the counts come from (at least every
            count). Default ``None``: ``Σ_c n_c``, exact for single-label data but too large for
            multi-label data (pass ``N`` then).
        weight: per-class factor ``(C,)`` of column ``c``.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    check_finite_number("tau", tau)
    bias = logit_adjusted_bce_bias(class_counts, tau=tau, num_samples=num_samples)
    return _la_bce(logits, target, bias, weight, ignore_index, reduction)


@register_loss(
    name="la-bce",
    function=logit_adjusted_bce_loss,
    family="multilabel",
    description="logit-adjusted BCE: BCE(z + τ log π_c) with π_c = n_c / N on each sigmoid",
    paper="Menon et al., ICLR 2021",
    needs_counts=True,
    target="multilabel",
)
class LogitAdjustedBCELoss(WeightedLoss):
    """Module form of :func:`logit_adjusted_bce_loss`; counts and the shift are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        tau: float = 1.0,
        num_samples: int | None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_finite_number("tau", tau)
        counts = as_counts(class_counts, allow_zero=False)
        self.register_buffer("class_counts", counts.to(torch.float32))
        bias = logit_adjusted_bce_bias(counts, tau=tau, num_samples=num_samples)
        self.register_buffer("bias", bias.to(torch.float32))
        self.tau, self.num_samples = tau, num_samples

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _la_bce(logits, target, self.bias, self.weight, self.ignore_index, self.reduction)


# -------------------------------------------------------------------------------------- ZLPR
def _log_one_plus_sum_exp(a: torch.Tensor) -> torch.Tensor:
    """``log(1 + Σ_c e^{a_c})`` per row, entries at −∞ left out (a row of them gives 0)."""
    zero = a.new_zeros(a.shape[0], 1)
    return torch.logsumexp(torch.cat([zero, a], 1), 1)


def zlpr_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """ZLPR, the multi-label softmax cross-entropy (Su et al., "ZLPR: A Novel Loss for
    Multi-label Classification", arXiv 2208.02955, 2022; first as Su's 2020 post generalising
    softmax + cross-entropy to multi-label classification).

    .. math::

        \\ell_i = \\log\\Big(1 + \\sum_{c \\in \\Omega^-_i} e^{s_{ic}}\\Big)
                + \\log\\Big(1 + \\sum_{c \\in \\Omega^+_i} e^{-s_{ic}}\\Big)

    with ``Ω⁺`` the positive and ``Ω⁻`` the negative labels of sample ``i``: every positive score
    is pushed above 0 and every negative below, with the threshold 0 built in, and one positive
    per row gives (a smoothed) softmax cross-entropy. It has no hyper-parameter.

    One value per sample: ``reduction="none"`` gives the batch shape ``(N,)`` (``(N, d1, ...)``
    for dense inputs), not one per logit; ``"mean"`` is the mean over the samples that have an
    entry not ignored. A per-class ``weight`` ``w_c ≥ 0`` scales class ``c``'s exponential inside
    its sum (``w_c e^{±s}``: a class of weight 0 drops out of the loss). A row with no positive
    has only its first term, a row with no negative only its second.

    Targets are 0/1 only (a soft target raises ``ValueError``): the loss is defined on the
    label sets. (Su later proposed a soft-label version, which is not this formula.)

    Shape:
        - logits: ``(N, C)``, ``(N, C, d1, ...)`` or ``(N,)``, any floating dtype.
        - target: 0/1 targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar, or ``(N, d1, ...)`` with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        weight: per-class factors ``(C,)`` ``≥ 0`` inside the sums.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out (an
            entry: out of both sums).
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    inp = _inputs(logits, target, weight, ignore_index, binary=True)
    w = _weight_row(weight, inp)
    if w is not None and bool((w < 0).any()):
        raise expected("weight", "non-negative (it scales exponentials)", w.tolist())
    log_w = None if w is None else torch.log(w).clamp_min(_BIG_NEG)
    neg = 1 - inp.t if inp.valid is None else (1 - inp.t) * inp.valid.to(inp.dtype)
    rows = _rows_counted(inp)
    count = inp.x.shape[0] if rows is None else int(rows.sum())
    out = _ZLPR.apply(inp.x, inp.t, neg, log_w, reduction, max(count, 1))
    return _unflatten_rows(out, inp) if reduction == "none" else out


#: A finite stand-in for −∞ (a weight of 0's log), so that ``0 · it`` is 0 and not NaN.
_BIG_NEG = -1e30


class _ZLPR(_FusedLoss):
    """ZLPR per row with its gradient: with ``a = z (1 − 2t) + log w`` and each group's
    ``m = max(0, max a)``, ``ℓ = Σ_groups m + log(e^{−m} + Σ e^{a − m})`` and
    ``∂ℓ/∂z_c = ± e^{a_c − m} / (e^{−m} + Σ e^{a − m})`` (+ for negatives, − for positives)."""

    @staticmethod
    def forward(ctx, x, t, neg, log_w, reduction, count):  # type: ignore[override]
        a = torch.addcmul(x, x, t, value=-2.0)  # z for negatives, −z for positives
        if log_w is not None:
            a.add_(log_w)
        # each group's max over its own entries, floored at 0 (the "1 +"): an entry of the other
        # group, multiplied by 0, cannot raise it
        m_pos = (a * t).amax(1, keepdim=True).clamp_min_(0.0)
        m_neg = (a * neg).amax(1, keepdim=True).clamp_min_(0.0)
        # ≤ 0 within each group; the clamp keeps an ignored entry's finite before it is zeroed
        e = a.sub_(torch.lerp(m_neg, m_pos, t)).clamp_max_(0.0).exp_()
        e_pos = e * t
        e_neg = e.mul_(neg)
        d_pos = torch.exp(-m_pos).add_(e_pos.sum(1, keepdim=True))
        d_neg = torch.exp(-m_neg).add_(e_neg.sum(1, keepdim=True))
        loss = (m_pos + m_neg).add_(d_pos.log()).add_(d_neg.log()).squeeze(1)
        grad = e_neg.div_(d_neg).sub_(e_pos.div_(d_pos))
        return _FusedLoss.finish(ctx, loss, grad, None, reduction, count, 6)


@register_loss(
    name="zlpr",
    function=zlpr_loss,
    family="multilabel",
    description="ZLPR multi-label softmax: log(1 + Σ_neg e^s) + log(1 + Σ_pos e^−s), per sample",
    paper="Su et al., arXiv 2022",
    target="multilabel",
)
class ZLPRLoss(WeightedLoss):
    """Module form of :func:`zlpr_loss`."""

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return zlpr_loss(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------- decoupled softmax
def decoupled_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scale: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Decoupled softmax, the loss of DEXML (Gupta et al., "Dual-Encoders for Extreme
    Multi-label Classification", ICLR 2024): a softmax cross-entropy per positive label whose
    denominator holds that label and the negatives only, the other positives left out.

    .. math::

        \\ell_i = \\frac{1}{|P_i|}\\sum_{c \\in P_i} t_{ic}\\Big(-\\log
        \\frac{e^{s z_{ic}}}{e^{s z_{ic}} + \\sum_{n \\in N_i} e^{s z_{in}}}\\Big)

    with ``P_i`` the positive labels (``t > 0``) and ``N_i`` the negatives (``t = 0``) of sample
    ``i``, as the official ``SimLoss`` with ``loss_criterion='decoupled-softmax'`` computes it
    (``loss_weighted``: soft targets weight their positive's term, the official option; soft
    targets with no entry equal to 0, as label smoothing makes them, leave no negative and are
    refused with a ``ValueError``). The official training samples one positive per row each
    step (``loss_sample: True``), an unbiased estimate of this mean over the positives. One
    positive per row is softmax cross-entropy (``scale`` times the logits).

    ``scale`` is the inverse temperature ``1/τ``; default 1 for classifier logits. Uncertain:
    DEXML trains on cosine similarities with ``τ = 0.05`` (``scale = 20``).

    One value per positive: ``reduction="none"`` gives the logits' shape, ``ℓ_ic`` at the
    positives (``1/|P_i|`` included, so a row sums to its ``ℓ_i``) and 0 elsewhere; ``"sum"``
    adds them; ``"mean"`` is ``Σ ℓ_i`` over the samples, divided by their number (the official
    ``sum / batch size``); only samples with every entry ignored are not counted. A row with no
    positive has loss 0 (and counts in the mean, as in the official code); a positive with no
    negative in its row has loss 0. A per-class ``weight`` multiplies the terms of class ``c``.

    Shape:
        - logits: ``(N, C)``, ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar, or the logits' shape with ``reduction="none"``.

    Args:
        logits, target: see Shape.
        scale: ``s = 1/τ > 0``, multiplies the logits.
        weight: per-class factor ``(C,)`` of the positive terms.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_reduction(reduction)
    check_positive("scale", scale)
    if isinstance(logits, torch.Tensor) and (logits.dim() < 2 or logits.shape[1] < 2):
        # one column: a positive has no negative to be softmaxed against, a loss of 0 always
        raise expected(
            "logits",
            "(N, C) or (N, C, d1, ...) with C >= 2 (each positive is softmaxed against the "
            "negatives of its row)",
            f"shape {tuple(logits.shape)}",
        )
    inp = _inputs(logits, target, weight, ignore_index)
    t = inp.t
    soft = inp.labels is None and _has_soft_entries(t)
    pos = (t > 0).to(inp.dtype) if soft else t
    neg = 1 - pos if inp.valid is None else (1 - pos) * inp.valid.to(inp.dtype)
    if soft and t.numel() and not bool((neg > 0).any()):
        # label-smoothed targets (0.05 / 0.95): every entry a (weighted) positive, no
        # negative left, a loss of exactly 0 and no gradient; a silent no-op, refused
        raise expected(
            "target",
            "soft targets with some entries equal to 0 (the decoupled softmax's negatives are "
            "the entries equal to 0; an entry above 0 is a positive, weighted by its value)",
            "soft targets with no entry 0 (label smoothing?): no negative anywhere, so the "
            "loss would be 0 with no gradient",
        )
    coef = t / pos.sum(1, keepdim=True).clamp_min(1)  # t / |P_i|, 0 off the positives
    w = _weight_row(weight, inp)
    if w is not None:
        coef = coef * w
    rows = _rows_counted(inp)
    count = inp.x.shape[0] if rows is None else int(rows.sum())
    out = _DecoupledSoftmax.apply(inp.x, coef, neg, float(scale), reduction, max(count, 1))
    return inp.unflatten(out) if reduction == "none" else out


class _DecoupledSoftmax(torch.autograd.Function):
    """The decoupled softmax's element values ``coef · softplus(lse⁻ − s z)`` (``lse⁻`` the
    log-sum-exp of the row's negatives) and their gradient. A value depends on its own logit and
    on the row's negatives, so the backward takes the cotangent ``g`` (one per value with
    ``"none"``) through ``a = coef σ(lse⁻ − s z)``: ``−s g a`` at a positive, and
    ``s softmax⁻(s z) Σ_positives g a`` at a negative."""

    @staticmethod
    def forward(ctx, x, coef, neg, scale, reduction, count):  # type: ignore[override]
        sx = x * scale if scale != 1 else x.clone()
        m = torch.addcmul(sx, neg - 1, sx.new_full((), -_BIG_NEG)).amax(1, keepdim=True)
        has_neg = m > _BIG_NEG / 2
        m = torch.where(has_neg, m, torch.zeros_like(m))
        # the negatives' exponentials, shifted (≤ 1; the clamp keeps the others finite before
        # they are zeroed)
        e = (sx - m).clamp_max_(0.0).exp_().mul_(neg)
        total = e.sum(1, keepdim=True)
        total1 = torch.where(total > 0, total, torch.ones_like(total))
        lse = torch.where(has_neg, m + total1.log(), m.new_full((), -math.inf))
        d = sx.neg_().add_(lse)  # lse⁻ − s z
        loss = F.softplus(d).mul_(coef)
        a = torch.sigmoid(d).mul_(coef)
        ctx.scale = scale
        ctx.factor = None if reduction == "none" else (1.0 / count if reduction == "mean" else 1.0)
        ctx.save_for_backward(a, e.div_(total1))
        return loss if reduction == "none" else loss.sum() * ctx.factor

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        a, soft_neg = ctx.saved_tensors
        ga = a * g if ctx.factor is None else a * (g * ctx.factor)
        grad = soft_neg * ga.sum(1, keepdim=True) - ga
        if ctx.scale != 1:
            grad = grad * ctx.scale
        return grad, None, None, None, None, None


@register_loss(
    name="decoupled-softmax",
    function=decoupled_softmax_loss,
    family="multilabel",
    description="DEXML decoupled softmax: CE per positive against the negatives only",
    paper="Gupta et al., ICLR 2024",
    target="multilabel",
    uncertain=("scale",),
)
class DecoupledSoftmaxLoss(WeightedLoss):
    """Module form of :func:`decoupled_softmax_loss`."""

    def __init__(
        self,
        *,
        scale: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("scale", scale)
        self.scale = scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return decoupled_softmax_loss(
            logits,
            target,
            scale=self.scale,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------------ PU-MLC
def pu_mlc_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 0.55,
    alpha: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """PU-MLC, positive-unlabelled multi-label classification (Yuan, Zhang and Huang, "Positive
    Label Is All You Need for Multi-Label Classification", arXiv 2306.16016, 2023): negative
    labels are discarded, and each class is learnt from its positives and the whole (unlabelled)
    batch with the variational PU loss of Chen et al. (NeurIPS 2020), re-balanced and with a
    temperature.

    For each class ``c``, over the batch's samples ``U`` (all unlabelled) and its positives ``P_c``:

    .. math::

        L_c = w_c \\log\\Big(\\frac{1}{|U|}\\sum_{i \\in U}\\sigma(z_{ic}/T_c)\\Big)
              - \\frac{1}{|P_c|}\\sum_{i \\in P_c}\\log\\sigma(z_{ic}/T_c)

    with the temperature ``T_c = min(α · std_i z_ic, 1)`` (the batch's standard deviation of the
    class's logits, divided by ``|U|``) and the adaptive re-balance factor
    ``w_c = (mean_{i ∈ U} σ(z_ic/T_c))^γ``, both held constant in the backward, as the official
    ``vpuLoss`` computes them (``detach()`` and ``torch.no_grad``). The official code adds
    ``1e-10`` inside its logs; here they are computed in log space (``log σ``, a log-sum-exp).
    A class whose logits are all equal in the batch (a batch of one) has ``std = 0``, which the
    official code divides by: here its temperature is 1. A class with no positive in the batch
    has only its first term. The paper's mixup regulariser needs the model and is not part of
    this loss.

    Targets are 0/1 only: 1 a positive label, 0 unlabelled (a soft target raises
    ``ValueError``).

    Defaults ``γ = 0.55``, ``α = 1``: the official README's MS-COCO command; its PASCAL VOC command
    uses ``α = 2``, ``γ = 0.85``, so both are uncertain.

    A batch-level loss (a mean over the batch inside a log): ``reduction="none"`` raises
    ``ValueError``; ``"sum"`` is ``Σ_c w'_c L_c`` (the official loss with ``weight=None``),
    ``"mean"`` the weighted mean over the classes with an entry in the batch
    (``Σ w'_c L_c / Σ w'_c``, ``w'`` the ``weight`` argument).

    Shape:
        - logits: ``(N, C)``, ``(N, C, d1, ...)`` (every position a sample) or ``(N,)``.
        - target: 0/1 targets of the logits' shape, or class indices ``(N, d1, ...)``.
        - output: a scalar; float32 for half inputs, else the input's dtype.

    Args:
        logits, target: see Shape.
        gamma: ``γ ≥ 0`` of the re-balance factor (0: no re-balancing).
        alpha: ``α > 0``, the scale of the temperature.
        weight: per-class weights ``(C,)`` of the mean (or sum) over classes.
        ignore_index: a class-index row, or a dense target entry, equal to it is left out of
            the class's sets.
        reduction: ``"mean" | "sum"``.
    """
    _check_batch_reduction("pu-mlc", reduction)
    check_positive("gamma", gamma, allow_zero=True)
    check_positive("alpha", alpha)
    inp = _inputs(logits, target, weight, ignore_index, binary=True)
    vf = None if inp.valid is None else inp.valid.to(inp.dtype)
    c = inp.x.shape[1]
    n_u = inp.x.new_full((c,), inp.x.shape[0]) if vf is None else vf.sum(0)
    defined = n_u > 0
    f = defined.to(inp.dtype)
    if weight is not None:
        f = f * weight.to(device=inp.x.device, dtype=inp.dtype)
    if reduction == "mean":
        den = f.sum()
        f = f / torch.where(den > 0, den, torch.ones_like(den))
    return _PUMLC.apply(inp.x, inp.t, vf, n_u, float(gamma), float(alpha), f)


class _PUMLC(_FusedLoss):
    """PU-MLC's per-class terms, summed with the class factors ``f``, and their gradient with the
    temperature ``T`` and the factor ``w`` constant:
    ``∂L_c/∂z_ic = (1 − σ_ic) (w_c σ_ic / Σ_j σ_jc − t_ic / |P_c|) / T_c``."""

    @staticmethod
    def forward(ctx, x, t, vf, n_u, gamma, alpha, f):  # type: ignore[override]
        defined = n_u > 0
        n_u1 = torch.where(defined, n_u, torch.ones_like(n_u))
        mean = (x if vf is None else x * vf).sum(0) / n_u1
        dev = (x - mean).square_()
        var = (dev if vf is None else dev.mul_(vf)).sum(0) / n_u1
        temp = var.sqrt_().mul_(alpha).clamp_(max=1.0)
        temp = torch.where(temp > 0, temp, torch.ones_like(temp))
        xs = x * temp.reciprocal()
        sig = torch.sigmoid(xs)
        if vf is not None:
            sig.mul_(vf)
        sig_sum = sig.sum(0)
        if bool((sig_sum[defined] == 0).any()):  # every σ of a class underflowed: log space
            ls = F.logsigmoid(xs)
            masked = ls if vf is None else torch.where(vf > 0, ls, ls.new_full((), -math.inf))
            masked = torch.where(defined, masked, torch.zeros_like(masked))
            log_sum = torch.logsumexp(masked, 0)
            soft = torch.exp(ls - log_sum)  # σ / Σσ
            if vf is not None:
                soft.mul_(vf)
        else:
            log_sum = torch.where(sig_sum > 0, sig_sum, torch.ones_like(sig_sum)).log()
            soft = sig.mul_(
                torch.where(sig_sum > 0, sig_sum, torch.ones_like(sig_sum)).reciprocal()
            )
        log_mean = torch.where(defined, log_sum - n_u1.log(), torch.zeros_like(log_sum))
        w = torch.exp(gamma * log_mean) if gamma else torch.ones_like(log_mean)
        # the positives' mean log σ, from the (few) positive entries only
        rows, cols = t.nonzero(as_tuple=True)
        n_p = t.sum(0).clamp_min(1)
        p_sum = torch.zeros_like(n_p).index_add_(0, cols, F.logsigmoid(xs[rows, cols]))
        per_class = w * log_mean - p_sum / n_p
        out = (per_class * f).sum()
        # ∂/∂z = (1 − σ) (w σ / Σσ − t / |P|) / T
        one_minus = torch.sigmoid(xs.neg_())
        grad = soft.mul_(w).sub_(t * n_p.reciprocal()).mul_(one_minus).mul_(f / temp)
        ctx.n_inputs = 7
        ctx.scale = 1.0
        ctx.save_for_backward(grad)
        return out


@register_loss(
    name="pu-mlc",
    function=pu_mlc_loss,
    family="multilabel",
    description="PU-MLC: variational PU loss per class (positives vs batch), re-balanced, tempered",
    paper="Yuan et al., arXiv 2023",
    target="multilabel",
    stop_gradient="the temperature T_c = min(α·std z, 1) and the re-balance factor w_c "
    "(the official vpuLoss's detach / no_grad)",
    uncertain=("gamma", "alpha"),
    per_sample=False,
)
class PUMLCLoss(WeightedLoss):
    """Module form of :func:`pu_mlc_loss`."""

    def __init__(
        self,
        *,
        gamma: float = 0.55,
        alpha: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        check_positive("alpha", alpha)
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return pu_mlc_loss(
            logits,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
