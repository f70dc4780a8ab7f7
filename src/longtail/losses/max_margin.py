"""Maximum Margin (MM) loss and its LDAM variant (MM-LDAM, the official ``HMM-LDAM``)."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_finite_number, check_positive
from ._adjusted import adjusted_loss, mm_delta
from ._base import WeightedLoss, counts_buffer
from ._registry import LossInfo, register_loss
from .ldam import ldam_margins


@torch.no_grad()
def mm_margin(
    logits: torch.Tensor,
    target: torch.Tensor,
    delta_minus: float | torch.Tensor,
    beta: float,
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
    ``argmax = y`` (the code's strict masks give Δ = 0 there).

    Args:
        logits: ``(M, C)`` with ``C ≥ 2``.
        target: ``(M,)`` int64 labels in ``[0, C)``.
        delta_minus: δ⁻, a number or a per-sample ``(M,)`` tensor (MM-LDAM).
        beta: δ⁺ = β·δ⁻.

    Returns:
        ``(M,)`` margins in the compute dtype.
    """
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    idx = target.unsqueeze(1)
    other = z.scatter(1, idx, float("-inf")).amax(1)
    return mm_delta(z.gather(1, idx).squeeze(1) - other, delta_minus, beta)


def _mm(logits, target, delta_minus, beta, scale, weight, ignore_index, reduction):
    # delta_minus: a number (MM) or a per-class (C,) tensor (MM-LDAM)
    return adjusted_loss(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        scale=scale,
        mm_delta_minus=delta_minus,
        mm_beta=beta,
    )


def _check_mm(delta_minus: float, beta: float, scale: float) -> None:
    check_finite_number("delta_minus", delta_minus)
    check_positive("beta", beta, allow_zero=True)
    check_positive("scale", scale)


def max_margin_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    delta_minus: float,
    beta: float,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Maximum Margin loss (Kang et al., "Learning Imbalanced Datasets with Maximum Margin Loss",
    ICIP 2021).

    .. math::

        \\ell_i = -\\log \\frac{e^{s(z_y-\\Delta)}}{e^{s(z_y-\\Delta)} + \\sum_{j\\neq y} e^{s z_j}}

    with Δ from :func:`mm_margin` held constant in the backward pass, as the official code does,
    on cosine logits (:class:`longtail.models.NormedLinear`) scaled by ``s``.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` (or ``(N, C, d1, ...)``), ``C ≥ 2``.
        target: class indices.
        delta_minus: δ⁻ (hard negative margin); best values per setting in the paper's Tables 2-3,
            e.g. 0.6 for CIFAR-10 exp-100.
        beta: δ⁺ = β·δ⁻ (1.5 for CIFAR-10 exp-100).
        scale: logit scale ``s`` (official scripts use 10–30).
        weight, reduction, ignore_index: as in ``torch.nn.functional.cross_entropy`` (DRW weights
            come in through ``weight``).
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
    delta_minus: float,
    beta: float,
    scale: float = 30.0,
    max_margin: float = 0.5,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """MM loss with LDAM-shifted margins (the official ``HMM-LDAM``).

    Per sample ``δ⁻_i = δ⁻ − m_{y_i}`` and ``δ⁺_i = β δ⁻_i``, with ``m`` the LDAM margins of
    :func:`longtail.functional.ldam_margins` (largest ``max_margin``, for the rarest class): rare
    classes get a smaller δ and so a larger Δ. Otherwise as :func:`max_margin_loss`.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.
    """
    _check_mm(delta_minus, beta, scale)
    dm = float(delta_minus) - ldam_margins(class_counts, max_margin)
    return _mm(logits, target, dm, float(beta), scale, weight, ignore_index, reduction)


class MaxMarginLoss(WeightedLoss):
    """Module form of :func:`max_margin_loss`."""

    def __init__(
        self,
        delta_minus: float = 0.6,
        beta: float = 1.5,
        scale: float = 30.0,
        weight: Any = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__(weight, reduction, ignore_index)
        _check_mm(delta_minus, beta, scale)
        self.delta_minus, self.beta, self.scale = float(delta_minus), float(beta), float(scale)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _mm(
            logits,
            target,
            self.delta_minus,
            self.beta,
            self.scale,
            self.weight,
            self.ignore_index,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return (
            f"delta_minus={self.delta_minus}, beta={self.beta}, scale={self.scale}, "
            + super().extra_repr()
        )


class MMLDAMLoss(MaxMarginLoss):
    """Module form of :func:`mm_ldam_loss`; counts and per-class δ⁻ are buffers."""

    def __init__(
        self,
        class_counts: Any,
        delta_minus: float = 0.6,
        beta: float = 1.5,
        scale: float = 30.0,
        max_margin: float = 0.5,
        weight: Any = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ):
        super().__init__(delta_minus, beta, scale, weight, reduction, ignore_index)
        counts_buffer(self, class_counts, allow_zero=False)
        self.max_margin = max_margin
        dm = self.delta_minus - ldam_margins(class_counts, max_margin)
        self.register_buffer("delta_minus_per_class", dm.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _mm(
            logits,
            target,
            self.delta_minus_per_class,
            self.beta,
            self.scale,
            self.weight,
            self.ignore_index,
            self.reduction,
        )


register_loss(
    LossInfo(
        name="mm",
        cls=MaxMarginLoss,
        function=max_margin_loss,
        description="maximum margin: CE(s(z − Δ e_y)), Δ = exp(−|g| − δ±) from the hard margin g",
        paper="Kang et al., ICIP 2021",
        defaults={"delta_minus": 0.6, "beta": 1.5, "scale": 30.0},
    )
)
register_loss(
    LossInfo(
        name="mm-ldam",
        cls=MMLDAMLoss,
        function=mm_ldam_loss,
        description="maximum margin with per-class δ⁻ shifted by the LDAM margins (HMM-LDAM)",
        paper="Kang et al., ICIP 2021",
        needs_counts=True,
        defaults={"delta_minus": 0.6, "beta": 1.5, "scale": 30.0, "max_margin": 0.5},
    )
)
