"""Cross-entropy with the semantics of ``torch.nn.functional.cross_entropy``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_class_vector, check_in_range, check_reduction, expected
from ._base import WeightedLoss
from ._reduce import compute_dtype_for, flatten_inputs
from ._registry import register_loss


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy ``−log softmax(z)_y``, exactly as ``torch.nn.functional.cross_entropy``.

    .. math::

        \\ell_i = -(1-\\varepsilon) w_{y_i} \\log p_{i,y_i}
                  - \\frac{\\varepsilon}{C} \\sum_c w_c \\log p_{i,c}

    with ``"mean"`` dividing by ``Σ_i w_{y_i}`` over the entries not ignored.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices, or class
          probabilities of the logits' shape.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``; half inputs are computed in float32.
        target: class indices ``(N, d1, ...)`` (int) or class probabilities of ``logits``' shape.
        weight: per-class rescaling ``(C,)``.
        ignore_index: label to skip (index targets only).
        reduction: ``"mean" | "sum" | "none"``.
        label_smoothing: ε in [0, 1]; default 0 (none), as torch.

    Returns:
        The loss in float32 for half inputs (as under autocast), else in the input dtype.
        ``"mean"`` of an empty batch, of one whose labels are all ignored, or of one whose
        labels' weights sum to 0 is ``0`` (torch gives ``nan``). Integer targets of any dtype
        are accepted (torch takes int64 and uint8 only).
    """
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise expected("logits", "a floating-point tensor", type(logits).__name__)
        if target.shape != logits.shape:
            raise expected(
                "target",
                f"class probabilities of the logits' shape {tuple(logits.shape)}",
                f"shape {tuple(target.shape)}",
            )
        if logits.dim() == 0:
            raise expected("logits", "of shape (N, C), (N, C, d1, ...) or (C,)", "a 0-d tensor")
        check_class_vector("weight", weight, logits.shape[1 if logits.dim() > 1 else 0])
        ctype = compute_dtype_for(logits.dtype)
        if reduction == "mean" and logits.dim() > 1 and logits.shape[0] == 0:
            return logits.sum().to(ctype)
        return F.cross_entropy(
            logits.to(ctype),
            target.to(ctype),
            weight=None if weight is None else weight.to(ctype),
            reduction=reduction,
            label_smoothing=label_smoothing,
        )
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    ctype = flat.compute_dtype
    if reduction == "mean" and (
        flat.target.numel() == 0 or (flat.valid is not None and not flat.valid.any())
    ):
        return logits.sum().to(ctype) * 0 + 0.0  # attached; + 0.0 makes a -0.0 plain 0.0
    w = None if weight is None else weight.to(device=logits.device, dtype=ctype)
    mean_of_weights = reduction == "mean" and w is not None
    out = F.cross_entropy(
        logits.to(ctype),
        target.long(),  # any integer dtype, as every other class-index loss here
        weight=w,
        ignore_index=ignore_index,
        reduction="sum" if mean_of_weights else reduction,
        label_smoothing=label_smoothing,
    )
    if not mean_of_weights:
        return out
    # torch's weighted mean, Σ ℓ_i / Σ w_{y_i} over the entries not ignored, except that weights
    # summing to 0 over the batch give 0 (as an empty batch) where torch gives nan
    den = w[flat.target] if flat.valid is None else w[flat.target] * flat.valid.to(ctype)
    den = den.sum()
    return out / torch.where(den > 0, den, den.new_ones(()))


@register_loss(
    name="ce",
    function=cross_entropy,
    family="standard",
    description="cross-entropy, torch semantics (weight, ignore_index, smoothing, soft labels)",
    paper="-",
)
class CrossEntropyLoss(WeightedLoss):
    """Module form of :func:`cross_entropy` (``weight`` is a buffer)."""

    def __init__(
        self,
        *,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )
