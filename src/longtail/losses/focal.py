"""Focal loss (Lin et al., ICCV 2017): softmax and sigmoid forms."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive, check_reduction, expected
from ._base import WeightedLoss, per_class_tensor
from ._reduce import compute_dtype_for, flatten_inputs, reduce_loss
from ._registry import LossInfo, register_loss


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

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices ``(N, d1, ...)``.
        gamma: focusing parameter γ ≥ 0 (paper default 2; γ = 0 is cross-entropy).
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


class FocalLoss(WeightedLoss):
    """Module form of :func:`focal_loss`; ``alpha`` and ``weight`` are buffers."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight, reduction, ignore_index)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma
        self.register_buffer(
            "alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(
            logits, target, self.gamma, self.alpha, self.weight, self.ignore_index, self.reduction
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, " + super().extra_repr()


class _SigmoidFocal(torch.autograd.Function):
    """Element-wise sigmoid focal loss with a closed-form backward (fewer passes than autograd)."""

    @staticmethod
    def forward(ctx, x, t, gamma, alpha, pos_weight):  # type: ignore[override]
        # ce = BCE-with-logits(x, t; pos_weight) = (1 − t)·x + (1 + (pw − 1)·t)·softplus(−x)
        sp = F.softplus(-x)
        lw = None if pos_weight is None else 1 + (pos_weight - 1) * t
        ce = (1 - t) * x + (sp if lw is None else lw * sp)
        p = torch.sigmoid(x)
        q = p + t - 2 * p * t  # 1 − p_t
        mod = q.pow(gamma) if gamma != 0 else None
        loss = ce if mod is None else ce * mod
        at = None
        if alpha is not None:
            at = alpha * t + (1 - alpha) * (1 - t)
            loss = loss * at
        ctx.save_for_backward(p, t, ce, q, at, lw)
        ctx.gamma = gamma
        return loss

    @staticmethod
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


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: Any = 0.25,
    pos_weight: Any = None,
    weight: Any = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sigmoid focal loss for binary and multi-label targets (torchvision semantics, extended).

    .. math::

        \\ell = \\alpha_t (1 - p_t)^{\\gamma}\\, \\mathrm{BCE}(x, t),\\quad
        p = \\sigma(x),\\ p_t = p t + (1-p)(1-t),\\ \\alpha_t = \\alpha t + (1-\\alpha)(1-t)

    Args:
        logits: any shape; for per-class ``alpha``/``pos_weight``/``weight`` the class dim is 1.
        target: 0/1 (or soft) targets of ``logits``' shape, or integer class indices ``(N,)`` for
            ``(N, C)`` logits (turned into one-hot rows).
        gamma: focusing parameter γ ≥ 0 (default 2, as torchvision).
        alpha: balance of positives in [0, 1] (default 0.25, torchvision); a ``(C,)`` tensor gives
            one per class; ``None`` (or a negative number, torchvision's convention) turns it off.
        pos_weight: per-class weight of the positive term, as in ``BCEWithLogitsLoss``.
        weight: per-class rescaling of each element, as ``BCEWithLogitsLoss``'s ``weight``.
        reduction: ``"mean"`` (over all elements, as torchvision), ``"sum"`` or ``"none"``.
    """
    check_reduction(reduction)
    check_positive("gamma", gamma, allow_zero=True)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise expected(
            "logits", "a floating-point tensor", getattr(logits, "dtype", type(logits).__name__)
        )
    ctype = compute_dtype_for(logits.dtype)
    x = logits.to(ctype)
    if not target.is_floating_point():
        if logits.dim() != 2 or target.shape != logits.shape[:1]:
            if target.shape != logits.shape:
                raise expected(
                    "target",
                    f"0/1 targets of shape {tuple(logits.shape)} or class indices of shape "
                    f"({logits.shape[0]},)",
                    f"shape {tuple(target.shape)}",
                )
            t = target.to(ctype)
        else:
            c = logits.shape[1]
            if target.numel() and (target.min() < 0 or target.max() >= c):
                raise expected(
                    "target",
                    f"class indices in [0, {c})",
                    target[(target < 0) | (target >= c)][:5].tolist(),
                )
            t = F.one_hot(target.long(), c).to(ctype)
    else:
        if target.shape != logits.shape:
            raise expected(
                "target",
                f"of the logits' shape {tuple(logits.shape)}",
                f"shape {tuple(target.shape)}",
            )
        t = target.to(ctype)
    if t.numel() and ((t < 0) | (t > 1)).any():
        raise expected("target", "probabilities in [0, 1]", "values outside")

    def per_class(v: Any, name: str) -> torch.Tensor | None:
        v = per_class_tensor(v, name) if v is not None and torch.as_tensor(v).dim() == 1 else v
        if isinstance(v, torch.Tensor):
            if logits.dim() < 2 or v.numel() != logits.shape[1]:
                raise expected(
                    name, "one value per class (dim 1 of logits)", f"shape {tuple(v.shape)}"
                )
            shape = [1] * logits.dim()
            shape[1] = -1
            return v.to(device=x.device, dtype=ctype).reshape(shape)
        return v

    if isinstance(alpha, (int, float)):
        a = None if alpha < 0 else float(alpha)
        if a is not None and a > 1:
            raise expected("alpha", "in [0, 1] (or negative to disable)", alpha)
    else:
        a = per_class(alpha, "alpha")
    pw = per_class(pos_weight, "pos_weight")
    if isinstance(pw, (int, float)):
        pw = torch.tensor(float(pw), dtype=ctype, device=x.device)
    loss = _SigmoidFocal.apply(x, t, float(gamma), a, pw)
    w = per_class(weight, "weight")
    if w is not None:
        loss = loss * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() * 0 if loss.numel() == 0 else loss.mean()


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss`; per-class tensors are buffers."""

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Any = 0.25,
        pos_weight: Any = None,
        weight: Any = None,
        reduction: str = "mean",
    ):
        super().__init__()
        check_reduction(reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma
        self.reduction = reduction
        if alpha is not None and not isinstance(alpha, (int, float)):
            self.register_buffer("alpha", per_class_tensor(alpha, "alpha"))
        else:
            self.alpha = alpha
        self.register_buffer("pos_weight", per_class_tensor(pos_weight, "pos_weight"))
        self.register_buffer("weight", per_class_tensor(weight, "weight"))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(
            logits, target, self.gamma, self.alpha, self.pos_weight, self.weight, self.reduction
        )

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


register_loss(
    LossInfo(
        name="focal",
        cls=FocalLoss,
        function=focal_loss,
        description="softmax focal loss −α_y (1−p_y)^γ log p_y, p from the unweighted softmax",
        paper="Lin et al., ICCV 2017",
        defaults={"gamma": 2.0},
    )
)
register_loss(
    LossInfo(
        name="sigmoid-focal",
        cls=SigmoidFocalLoss,
        function=sigmoid_focal_loss,
        description="sigmoid focal (binary/multi-label; torchvision + per-class α, pos_weight)",
        paper="Lin et al., ICCV 2017",
        defaults={"gamma": 2.0, "alpha": 0.25},
        target="multilabel",
    )
)
