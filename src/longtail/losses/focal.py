"""Focal loss (Lin et al., ICCV 2017): softmax and sigmoid forms."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_positive, check_reduction, expected
from ._base import WeightedLoss, first_order, keep_number_or_per_class, per_class_tensor
from ._reduce import compute_dtype_for, flatten_inputs, reduce_loss
from ._registry import register_loss


def _alpha_vector(alpha: Any, num_classes: int, like: torch.Tensor) -> torch.Tensor | None:
    if alpha is None:
        return None
    a = torch.as_tensor(alpha, dtype=like.dtype, device=like.device)
    if a.dim() == 0:
        return a.expand(num_classes)
    if a.dim() != 1 or a.numel() != num_classes:
        raise expected(
            "alpha", f"a number or one value per class ({num_classes})", f"shape {tuple(a.shape)}"
        )
    return a


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: Any = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    .. math::

        \\ell_i = -\\alpha_{y_i} (1 - p_{i,y_i})^{\\gamma} \\log p_{i,y_i},
        \\qquad p_i = \\mathrm{softmax}(z_i)

    ``p`` is the *unweighted* softmax. (The LDAM-DRW repository computes ``p`` from the weighted
    cross-entropy, its issue #6, which makes class weights change the focusing term; longtail does
    not copy that.)

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N, d1, ...)``.
        gamma: focusing parameter γ ≥ 0; default 2, the paper's (its Table 1a, for detection);
            γ = 0 is cross-entropy. The LDAM-DRW code (and longtail's ``focal`` method) uses 1.
        alpha: a per-class factor ``(C,)`` (or one number for all classes) that multiplies the loss;
            it does not enter the denominator of ``"mean"``. Default: none.
        weight: per-class weight with torch's weighted mean ``Σ w ℓ / Σ w`` (class-balanced focal
            uses either; ``alpha`` keeps the plain mean as the CB-focal code does).
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    check_positive("gamma", gamma, allow_zero=True)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    logp = torch.log_softmax(flat.logits.to(flat.compute_dtype), dim=1)
    logpt = logp.gather(1, flat.target.unsqueeze(1)).squeeze(1)
    loss = -logpt
    if gamma != 0:
        # 1 − p computed as −expm1(log p): exact when p is near 1. The clamp keeps the gradient of
        # u**γ finite for γ < 1 at p == 1 (its true limit there is 0 anyway).
        u = (-torch.expm1(logpt)).clamp_min(torch.finfo(logpt.dtype).tiny)
        loss = u.pow(gamma) * loss
    a = _alpha_vector(alpha, flat.num_classes, loss)
    if a is not None:
        loss = loss * a[flat.target]
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="focal",
    function=focal_loss,
    family="imbalance",
    description="softmax focal loss −α_y (1−p_y)^γ log p_y, p from the unweighted softmax",
    paper="Lin et al., ICCV 2017",
)
class FocalLoss(WeightedLoss):
    """Module form of :func:`focal_loss`; ``alpha`` and ``weight`` are buffers."""

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma
        keep_number_or_per_class(self, "alpha", alpha)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(
            logits,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class _SoftTargetFocal(torch.autograd.Function):
    """Element-wise sigmoid focal loss for soft targets t ∈ [0, 1], closed-form backward."""

    @staticmethod
    def forward(ctx, x, t, gamma, alpha, pos_weight):  # type: ignore[override]
        # ce = BCE-with-logits(x, t; pos_weight) = (1 − t)·x + (1 + (pw − 1)·t)·softplus(−x)
        sp = F.softplus(-x)
        lw = None if pos_weight is None else 1 + (pos_weight - 1) * t
        ce = (1 - t) * x + (sp if lw is None else lw * sp)
        p = torch.sigmoid(x)
        q = p + t - 2 * p * t  # 1 − p_t
        loss = ce if gamma == 0 else ce * q.pow(gamma)
        at = None
        if alpha is not None:
            at = alpha * t + (1 - alpha) * (1 - t)
            loss = loss * at
        ctx.save_for_backward(p, t, ce, q, at, lw)
        ctx.gamma = gamma
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        p, t, ce, q, at, lw = ctx.saved_tensors
        gamma = ctx.gamma
        # d ce/dx = p − t without pos_weight; with it, (1 − t) − lw·(1 − p)
        dce = p - t if lw is None else (1 - t) - lw * (1 - p)
        if gamma != 0:
            # d q/dx = (1 − 2t)·p·(1 − p); d q^γ/dx = γ q^(γ−1) dq/dx. Clamp q for γ < 1 at q == 0.
            qc = q.clamp_min(torch.finfo(q.dtype).tiny)
            dmod = gamma * qc.pow(gamma - 1) * (1 - 2 * t) * p * (1 - p)
            grad = dce * q.pow(gamma) + ce * dmod
        else:
            grad = dce
        if at is not None:
            grad = grad * at
        return grad * g, None, None, None, None


def _at(f: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """A per-class factor (0-dim or (1, C)) at each row's positive class: (N, 1)."""
    return f.expand(idx.shape[0], -1).gather(1, idx) if f.dim() else f.expand(idx.shape)


class _BinaryFocal(torch.autograd.Function):
    """Sigmoid focal loss for 0/1 targets in one variable, gradient computed in the forward.

    With ``u = x·(1 − 2t)`` (the logit of the *wrong* answer), ``1 − p_t = σ(u)`` and
    ``BCE = softplus(u)``, so every element is ``f_t · σ(u)^γ · softplus(u)``, where the factor
    ``f_t`` folds α_t, pos_weight and weight (``f1`` for positives, ``f0`` for negatives), and

        d/dx = f_t · (1 − 2t) · σ(u)^γ · (γ (1 − σ(u)) softplus(u) + σ(u)).

    On CPU a fresh (N, C) buffer costs about as much as a pass over it (page faults), so the
    forward works in two buffers, in place: q = σ(−u), then softplus(u) = −log q beside it, then
    σ(u) = 1 − q over q; it sums the loss with dot products and turns the second buffer into the
    gradient, which is all it keeps. The backward only scales it. Index targets (one positive per
    row) never build the one-hot matrix: the positives are a gather/scatter of N entries.
    """

    @staticmethod
    def forward(ctx, x, idx, t, gamma, f0, f1, reduction):  # type: ignore[override]
        tiny = torch.finfo(x.dtype).tiny
        a = torch.neg(x)  # −u
        if idx is not None:
            x_at = x.gather(1, idx)
            a.scatter_(1, idx, x_at)
        else:
            a.addcmul_(x, t, value=2.0)
        a.sigmoid_().clamp_min_(tiny)  # q = σ(−u), no denormals, no log 0
        b = torch.log(a).neg_()  # softplus(u) = −log q
        if a.amin() <= tiny:
            # q underflowed (u > 87 in float32): there softplus(u) = u to working precision,
            # and softplus(u) ≥ u everywhere
            u = x.clone()
            if idx is not None:
                u.scatter_(1, idx, x_at.neg())
            else:
                u.addcmul_(x, t, value=-2.0)
            torch.maximum(b, u, out=b)
            del u
        a.neg_().add_(1.0)  # s = σ(u) = 1 − q
        # element loss h = s^γ·sp. For γ = 1, 2 it is p·(s·sp) with p = 1 or s (no new buffer);
        # for other γ, p = s^γ beside sp (s^(γ−1) would be infinite at s = 0 for γ < 1).
        folded = gamma in (1, 2)
        if folded:
            b.mul_(a)  # s·sp
            p = a if gamma == 2 else None
        else:
            p = None if gamma == 0 else a.pow(gamma)

        def h_of(bb, pp):
            return bb if pp is None else bb * pp

        scalar = f0.dim() == 0 and f1.dim() == 0
        if idx is not None:  # the element loss at each row's positive
            h_at = h_of(b.gather(1, idx), None if p is None else p.gather(1, idx))
        if idx is not None and reduction != "none":
            if scalar and p is not None:
                neg = torch.dot(b.reshape(-1), p.reshape(-1)) * f0
            elif scalar:
                neg = b.sum() * f0
            else:
                neg = (h_of(b, p).sum(0) * f0.reshape(-1)).sum()
            out = neg + (h_at * (_at(f1, idx) - _at(f0, idx))).sum()
        elif idx is not None:
            out = h_of(b, p) * f0
            out.scatter_(1, idx, h_at * _at(f1, idx))
        else:
            ft = torch.where(t > 0.5, f1, f0)
            out = h_of(b, p) * ft
            if reduction != "none":
                out = out.sum()
        if reduction == "mean":
            out = out / x.numel()

        # gradient s^γ (γ (1 − s) sp + s): folded, p·(γ (1 − s)(s·sp) + s²);
        # otherwise p·(γ (1 − s) sp + s)
        if gamma == 0:
            grad = a
        else:
            torch.addcmul(b, b, a, value=-1.0, out=b).mul_(gamma)
            if folded:
                torch.addcmul(b, a, a, out=b)
            else:
                b.add_(a)
            if p is not None:
                b.mul_(p)
            grad = b
        if idx is not None:
            g_at = grad.gather(1, idx)
            grad.mul_(f0)
            grad.scatter_(1, idx, g_at.mul_(_at(f1, idx)).neg_())
        else:
            grad.mul_(torch.where(t > 0.5, -f1, f0))
        ctx.save_for_backward(grad)
        ctx.scale = 1.0 / x.numel() if reduction == "mean" else 1.0
        return out

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad * (g * ctx.scale), None, None, None, None, None, None


def _masked_reduce(loss: torch.Tensor, ignored: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce element losses with the ``ignored`` entries (a mask broadcastable to ``loss``) left
    out of the sum and of the count."""
    loss = torch.where(ignored, loss.new_zeros(()), loss)
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = (~ignored).expand(loss.shape).sum()
    # nothing left (an empty batch, every row ignored): the 0 of the sum, not 0/0
    return total / count.clamp_min(1).to(total.dtype)


def _sigmoid_targets(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int, ctype: torch.dtype
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``(idx, t, ignored)``: class indices ``(N, 1)`` or dense targets of the logits' shape
    (one of the two), and where entries are ignored ((N, 1) rows for indices, else x's shape)."""
    if logits.dim() == 2 and target.shape == logits.shape[:1]:
        from .surrogates import _batch_shaped_target

        target = _batch_shaped_target(target, logits.shape[1], tuple(logits.shape), ignore_index)
    if not target.is_floating_point() and logits.dim() == 2 and target.shape == logits.shape[:1]:
        c = logits.shape[1]
        labels = target.long()
        drop = labels == ignore_index
        bad = ((labels < 0) | (labels >= c)) & ~drop
        if bad.any():
            raise expected(
                "target",
                f"class indices in [0, {c}) (or ignore_index={ignore_index})",
                f"labels {labels[bad][:5].tolist()}",
            )
        ignored = drop.unsqueeze(1) if drop.any() else None
        if ignored is not None:
            labels = labels.masked_fill(drop, 0)
        return labels.unsqueeze(1), None, ignored
    if target.shape != logits.shape:
        raise expected(
            "target",
            f"0/1 targets of the logits' shape {tuple(logits.shape)}"
            + (f" or class indices of shape ({logits.shape[0]},)" if logits.dim() == 2 else ""),
            f"shape {tuple(target.shape)}",
        )
    t = target.to(ctype)
    if t.isnan().any():
        raise expected("target", "0/1 (or soft) targets", "NaN entries")
    drop = t == ignore_index
    if drop.any():
        return None, t.masked_fill(drop, 0), drop
    return None, t, None


def _per_class_factor(v: Any, name: str, x: torch.Tensor) -> Any:
    """A scalar as it is (a 0-d tensor as its number), or one value per class shaped to
    broadcast along dim 1 of ``x``."""
    if isinstance(v, torch.Tensor) and v.dim() == 0:
        v = v.item()
    if v is None or isinstance(v, (int, float)):
        return v
    v = per_class_tensor(v, name)
    if x.dim() < 2 or v.numel() != x.shape[1]:
        raise expected(name, "one value per class (dim 1 of logits)", f"shape {tuple(v.shape)}")
    shape = [1] * x.dim()
    shape[1] = -1
    return v.to(device=x.device, dtype=x.dtype).reshape(shape)


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: Any = 0.25,
    pos_weight: Any = None,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sigmoid focal loss for binary and multi-label targets (Lin et al., "Focal Loss for Dense
    Object Detection", ICCV 2017), with torchvision's semantics, extended.

    .. math::

        \\ell = \\alpha_t (1 - p_t)^{\\gamma}\\, \\mathrm{BCE}(x, t),\\quad
        p = \\sigma(x),\\ p_t = p t + (1-p)(1-t),\\ \\alpha_t = \\alpha t + (1-\\alpha)(1-t)

    Shape:
        - logits: any shape; for per-class ``alpha``/``pos_weight``/``weight`` the class dim is 1.
        - target: 0/1 (or soft) targets of the logits' shape, or integer class indices ``(N,)``
          for ``(N, C)`` logits (one-hot rows, never built); for ``(N, 1)`` logits, targets
          ``(N,)`` are the 0/1 labels of the one column (a binary task).
        - output: a scalar, or the logits' shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: any floating dtype; half inputs are computed in float32.
        target: see Shape.
        gamma: focusing parameter γ ≥ 0; default 2, the paper's and torchvision's.
        alpha: balance of positives in [0, 1]; default 0.25, the paper's and torchvision's; a
            ``(C,)`` tensor gives one per class; ``None`` (or a negative number, torchvision's
            convention) turns it off.
        pos_weight: per-class weight of the positive term, as in ``BCEWithLogitsLoss``.
        weight: per-class rescaling of each element, as ``BCEWithLogitsLoss``'s ``weight`` (a
            factor, not the denominator of ``"mean"``).
        ignore_index: a class-index target equal to it drops its whole row; a dense target entry
            equal to it drops that entry (a missing label). Dropped entries are 0 with
            ``"none"`` and count neither in the sum nor in the mean's denominator.
        reduction: ``"mean"`` (over all elements not ignored, as torchvision over all elements),
            ``"sum"`` or ``"none"``.
    """
    check_reduction(reduction)
    check_positive("gamma", gamma, allow_zero=True)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise expected(
            "logits", "a floating-point tensor", getattr(logits, "dtype", type(logits).__name__)
        )
    if not isinstance(target, torch.Tensor) or target.is_complex():
        raise expected("target", "a tensor", type(target).__name__)
    ctype = compute_dtype_for(logits.dtype)
    x = logits.to(ctype)
    idx, t, ignored = _sigmoid_targets(logits, target, ignore_index, ctype)
    if isinstance(alpha, (int, float)):
        a = None if alpha < 0 else float(alpha)
        if a is not None and a > 1:
            raise expected("alpha", "in [0, 1] (or negative to disable)", alpha)
    else:
        a = _per_class_factor(alpha, "alpha", x)
    pw = _per_class_factor(pos_weight, "pos_weight", x)
    w = _per_class_factor(weight, "weight", x)
    inner = reduction if ignored is None else "none"

    if t is not None and not bool(((t == 0) | (t == 1)).all()):
        if ((t < 0) | (t > 1)).any():
            raise expected("target", "probabilities in [0, 1]", "values outside")
        loss = _SoftTargetFocal.apply(x, t, float(gamma), a, pw)
        if w is not None:
            loss = loss * w
        if ignored is not None:
            return _masked_reduce(loss, ignored, reduction)
        if reduction == "none":
            return loss
        return loss.sum() if reduction == "sum" else loss.mean()

    # factors of the positives (f1) and negatives (f0): α_t · pos_weight · weight
    one = torch.ones((), dtype=ctype, device=x.device)
    f1 = one if a is None else one * a
    f0 = one if a is None else one - a
    if pw is not None:
        f1 = f1 * pw
    if w is not None:
        f1, f0 = f1 * w, f0 * w
    if x.numel() == 0:
        return x * 0 if reduction == "none" else x.sum()
    if idx is not None:  # per-class factors as (1, C) rows
        f1 = f1.reshape(1, -1) if f1.dim() else f1
        f0 = f0.reshape(1, -1) if f0.dim() else f0
    loss = _BinaryFocal.apply(x, idx, t, float(gamma), f0, f1, inner)
    return loss if ignored is None else _masked_reduce(loss, ignored, reduction)


@register_loss(
    name="sigmoid-focal",
    function=sigmoid_focal_loss,
    family="multilabel",
    description="sigmoid focal (binary/multi-label; torchvision + per-class α, pos_weight)",
    paper="Lin et al., ICCV 2017",
    target="multilabel",
)
class SigmoidFocalLoss(WeightedLoss):
    """Module form of :func:`sigmoid_focal_loss`; per-class tensors are buffers."""

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: Any = 0.25,
        pos_weight: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma
        keep_number_or_per_class(self, "alpha", alpha)
        keep_number_or_per_class(self, "pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(
            logits,
            target,
            gamma=self.gamma,
            alpha=self.alpha,
            pos_weight=self.pos_weight,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
