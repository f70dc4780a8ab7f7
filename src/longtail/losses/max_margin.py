"""Maximum Margin (MM) loss and its LDAM variant (MM-LDAM, the official ``HMM-LDAM``).

The MM loss is cross-entropy with a target margin Δ computed from the logits themselves. Δ is
computed in one place, :func:`mm_gap_delta`, which both the fused training path (through
:func:`mm_margin_fn`, the margin the primitive of ``_adjusted`` calls) and the public helper
:func:`mm_margin` use, so what the tests check of Δ is what training uses.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .._validation import check_counts_length, check_finite_number, check_positive
from ._adjusted import adjusted_loss
from ._base import WeightedLoss, counts_buffer
from ._registry import export_function, register_loss
from .ldam import ldam_margins


def mm_delta(gap: torch.Tensor, delta_minus: float | torch.Tensor, beta: float) -> torch.Tensor:
    """Δ of the MM loss from the gap ``g = z_y − max_{j≠y} z_j``: ``exp(−|g| − δ)``, with
    ``δ = β·δ⁻`` where ``g ≥ 0`` (the target is an argmax, ties included), else ``δ⁻``."""
    # δ = δ⁻ + [g ≥ 0]·(β − 1)·δ⁻, built in the gap's dtype (a where() of two Python numbers
    # would come out in the default dtype and cost float64 inputs their precision)
    delta = (gap >= 0).to(gap.dtype).mul_(delta_minus * (beta - 1)).add_(delta_minus)
    return delta.add_(gap.abs()).neg_().exp_()


def mm_gap_delta(
    z: torch.Tensor,
    idx: torch.Tensor,
    delta_minus: float | torch.Tensor,
    beta: float,
    scale: float = 1.0,
) -> torch.Tensor:
    """Δ ``(M, 1)`` of the MM loss for the rows of ``z``, the one computation of the gap and Δ.

    Args:
        z: ``(M, C)`` logits times ``scale``, in a buffer the caller owns: its target column is
            overwritten (with −inf, to take the max over ``j ≠ y`` in one pass without a copy).
        idx: ``(M, 1)`` int64 labels.
        delta_minus: δ⁻, a number or ``(M, 1)`` per sample.
        beta: δ⁺ = β·δ⁻.
        scale: the factor ``z`` carries; the gap is taken in unscaled logits.
    """
    zy = z.gather(1, idx)
    z.scatter_(1, idx, float("-inf"))
    gap = zy - z.amax(1, keepdim=True)
    if scale != 1.0:
        gap = gap / scale
    return mm_delta(gap, delta_minus, beta)


def mm_margin_fn(
    z: torch.Tensor,
    idx: torch.Tensor,
    scale: float,
    *,
    delta_minus: float | torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """The MM margin as the fused primitive calls it (a ``MarginFn`` once ``delta_minus`` and
    ``beta`` are bound): ``delta_minus`` is a number (MM) or per class ``(C,)`` (MM-LDAM)."""
    if torch.is_tensor(delta_minus):
        # per class, from class_counts: one per class of the logits, or the counts were wrong
        check_counts_length(delta_minus, z.shape[1])
        delta_minus = delta_minus.to(device=z.device, dtype=z.dtype)[idx]
    return mm_gap_delta(z, idx, delta_minus, beta, scale)


@export_function
@torch.no_grad()
def mm_margin(
    logits: torch.Tensor,
    target: torch.Tensor,
    delta_minus: float | torch.Tensor = 0.6,
    beta: float = 1.5,
) -> torch.Tensor:
    """The MM loss's per-sample target margin Δ, a constant (computed without gradient).

    With ``g = z_y − max_{j≠y} z_j``:

    .. math::

        \\Delta = \\begin{cases}
            \\exp(-\\max(g, 0) - \\delta^+) & \\text{if } \\arg\\max_j z_j = y \\ (g \\ge 0) \\\\
            \\exp(-\\max(-g, 0) - \\delta^-) & \\text{otherwise}
        \\end{cases},\\qquad \\delta^+ = \\beta\\,\\delta^-

    Three bugs of the official code are *not* copied: the max over ``j ≠ y`` excludes the target
    column (the code zeroes it, so the max never drops below 0), ``z_y`` is each sample's own target
    logit (the code uses the first sample's label for every row), and a tie (``g = 0``) counts as
    ``argmax = y`` (the code's strict masks give Δ = 0 there). Training computes Δ with the same
    function (:func:`mm_gap_delta`).

    Args:
        logits: ``(M, C)`` with ``C ≥ 2``.
        target: ``(M,)`` int64 labels in ``[0, C)``.
        delta_minus: δ⁻, a number or a per-sample ``(M,)`` tensor; default 0.6, as
            :func:`max_margin_loss`.
        beta: δ⁺ = β·δ⁻; default 1.5, as :func:`max_margin_loss`.

    Returns:
        ``(M,)`` margins in the compute dtype (float32 for half inputs).
    """
    z = logits.to(torch.promote_types(logits.dtype, torch.float32), copy=True)
    dm = delta_minus.to(z).unsqueeze(1) if torch.is_tensor(delta_minus) else delta_minus
    return mm_gap_delta(z, target.long().unsqueeze(1), dm, beta).squeeze(1)


def _mm(logits, target, delta_minus, beta, scale, weight, ignore_index, reduction):
    # delta_minus: a number (MM) or a per-class (C,) tensor (MM-LDAM)
    return adjusted_loss(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        scale=scale,
        margin_fn=functools.partial(mm_margin_fn, delta_minus=delta_minus, beta=beta),
        min_classes=2,
    )


def _check_mm(delta_minus: float, beta: float, scale: float) -> None:
    check_finite_number("delta_minus", delta_minus)
    check_positive("beta", beta, allow_zero=True)
    check_positive("scale", scale)


def max_margin_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    delta_minus: float = 0.6,
    beta: float = 1.5,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Maximum Margin loss (Kang et al., "Learning Imbalanced Datasets with Maximum Margin Loss",
    ICIP 2021).

    .. math::

        \\ell_i = -\\log \\frac{e^{s(z_y-\\Delta)}}{e^{s(z_y-\\Delta)} + \\sum_{j\\neq y} e^{s z_j}}

    with Δ from :func:`mm_margin` held constant in the backward pass, as the official code
    (``ihaeyong/Maximum-Margin-LDAM``) does, on cosine logits
    (:class:`longtail.models.NormedLinear`) scaled by ``s``.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        delta_minus: δ⁻ (hard negative margin); default 0.6, the paper's best for CIFAR-10
            exp-100 (its Tables 2-3 give the best per setting, from 0.6 to 2.4).
        beta: δ⁺ = β·δ⁻; default 1.5, the paper's best for CIFAR-10 exp-100 (1.0 to 1.8 in
            other settings).
        scale: logit scale ``s``; default 30, as LDAM's. Uncertain: the official scripts use
            values from 10 to 30 (19 for CIFAR-100 exp-100), and the paper states none.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (DRW
            weights come in through ``weight``).
    """
    _check_mm(delta_minus, beta, scale)
    return _mm(
        logits,
        target,
        float(delta_minus),
        float(beta),
        scale,
        weight,
        ignore_index,
        reduction,
    )


def mm_ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    delta_minus: float = 0.6,
    beta: float = 1.5,
    scale: float = 30.0,
    max_margin: float = 0.5,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """MM loss with LDAM-shifted margins (Kang et al., ICIP 2021; the official ``HMM-LDAM``).

    Per sample ``δ⁻_i = δ⁻ − m_{y_i}`` and ``δ⁺_i = β δ⁻_i``, with ``m`` the LDAM margins of
    :func:`longtail.functional.ldam_margins` (largest ``max_margin``, for the rarest class): rare
    classes get a smaller δ and so a larger Δ. Otherwise as :func:`max_margin_loss`.

    .. math::

        \\ell_i = \\mathrm{CE}\\big(s(z_i - \\Delta_i e_{y_i}), y_i\\big),\\qquad
        \\Delta_i = \\mathrm{MM}\\big(z_i;\\ \\delta^-_i = \\delta^- - m_{y_i},\\ \\beta\\big)

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        delta_minus, beta: as :func:`max_margin_loss` (defaults 0.6 and 1.5). Uncertain: the
            official HMM-LDAM script for CIFAR-100 exp-100 uses δ⁻ = 1.29, β = 1.528.
        scale: as :func:`max_margin_loss` (default 30; uncertain, 19 in that script).
        max_margin: the largest LDAM margin; default 0.5, LDAM's.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_mm(delta_minus, beta, scale)
    dm = float(delta_minus) - ldam_margins(class_counts, max_margin)
    return _mm(logits, target, dm, float(beta), scale, weight, ignore_index, reduction)


_MM_STOP_GRADIENT = "Δ, computed from the logits, is a constant (the official code's no_grad)"


@register_loss(
    name="mm",
    function=max_margin_loss,
    family="imbalance",
    description="maximum margin: CE(s(z − Δ e_y)), Δ = exp(−|g| − δ±) from the hard margin g",
    paper="Kang et al., ICIP 2021",
    stop_gradient=_MM_STOP_GRADIENT,
    uncertain=("scale",),
)
class MaxMarginLoss(WeightedLoss):
    """Module form of :func:`max_margin_loss`."""

    def __init__(
        self,
        *,
        delta_minus: float = 0.6,
        beta: float = 1.5,
        scale: float = 30.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_mm(delta_minus, beta, scale)
        self.delta_minus, self.beta, self.scale = float(delta_minus), float(beta), float(scale)

    def _delta_minus(self) -> float | torch.Tensor:
        return self.delta_minus

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _mm(
            logits,
            target,
            self._delta_minus(),
            self.beta,
            self.scale,
            self.weight,
            self.ignore_index,
            self.reduction,
        )


@register_loss(
    name="mm-ldam",
    function=mm_ldam_loss,
    family="imbalance",
    description="maximum margin with per-class δ⁻ shifted by the LDAM margins (HMM-LDAM)",
    paper="Kang et al., ICIP 2021",
    needs_counts=True,
    stop_gradient=_MM_STOP_GRADIENT,
    uncertain=("delta_minus", "beta", "scale"),
)
class MMLDAMLoss(MaxMarginLoss):
    """Module form of :func:`mm_ldam_loss`; counts and per-class δ⁻ are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        delta_minus: float = 0.6,
        beta: float = 1.5,
        scale: float = 30.0,
        max_margin: float = 0.5,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(
            delta_minus=delta_minus,
            beta=beta,
            scale=scale,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
        )
        counts_buffer(self, class_counts, allow_zero=False)
        self.max_margin = max_margin
        dm = self.delta_minus - ldam_margins(class_counts, max_margin)
        self.register_buffer("delta_minus_per_class", dm.to(torch.float32))

    def _delta_minus(self) -> float | torch.Tensor:
        return self.delta_minus_per_class
