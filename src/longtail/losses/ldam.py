"""LDAM loss (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
Loss", NeurIPS 2019)."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import as_counts, check_positive
from ._adjusted import adjusted_loss
from ._base import WeightedLoss, counts_buffer
from ._registry import export_function, register_loss


@export_function
def ldam_margins(class_counts: Any, max_margin: float = 0.5) -> torch.Tensor:
    """Per-class LDAM margins ``m_c = max_margin · n_c^(−1/4) / max_k n_k^(−1/4)`` (float64, CPU).

    The rarest class gets ``max_margin``. Zero counts are rejected (``n^(−1/4)`` is infinite).

    Example:
        >>> ldam_margins([10000, 100, 1]).tolist()
        [0.05, 0.15811388300841897, 0.5]
    """
    check_positive("max_margin", max_margin, allow_zero=True)
    n = as_counts(class_counts, allow_zero=False)
    m = n.pow(-0.25)
    return m * (max_margin / m.max())


def _ldam(logits, target, margins, scale, weight, ignore_index, reduction):
    return adjusted_loss(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        scale=scale,
        class_margin=margins,
    )


def ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    max_margin: float = 0.5,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """LDAM loss (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin
    Loss", NeurIPS 2019): cross-entropy with a class-dependent margin on the target logit.

    .. math::

        \\ell_i = -\\log \\frac{e^{s(z_{y} - m_{y})}}
            {e^{s(z_{y} - m_{y})} + \\sum_{j \\neq y} e^{s z_j}},
        \\qquad m_c = \\frac{\\text{max\\_margin}\\cdot n_c^{-1/4}}{\\max_k n_k^{-1/4}}

    Meant for cosine logits (:class:`longtail.models.NormedLinear`), hence the scale ``s``.

    Example:
        >>> import torch, longtail as lt
        >>> logits = torch.tensor([[0.9, 0.1, -0.3], [0.2, 0.4, 0.1]])
        >>> loss = lt.functional.ldam_loss(logits, torch.tensor([0, 2]), class_counts=[100, 10, 1])
        >>> round(loss.item(), 4)
        12.0012

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` (or ``(N, C, d1, ...)``).
        target: class indices.
        class_counts: training examples per class ``(C,)``, all > 0.
        max_margin: the largest margin (the rarest class); default 0.5, the paper's CIFAR runs
            and the official code (``kaidic/LDAM-DRW``).
        scale: logit scale ``s``; default 30, the official code's.
        weight: per-class weights (e.g. DRW), weighted mean as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    check_positive("scale", scale)
    return _ldam(
        logits,
        target,
        ldam_margins(class_counts, max_margin),
        scale,
        weight,
        ignore_index,
        reduction,
    )


@register_loss(
    name="ldam",
    function=ldam_loss,
    family="imbalance",
    description="label-distribution-aware margin: CE(s(z − m_y e_y)), m_c ∝ n_c^(−1/4)",
    paper="Cao et al., NeurIPS 2019",
    needs_counts=True,
)
class LDAMLoss(WeightedLoss):
    """Module form of :func:`ldam_loss`; counts and margins are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        max_margin: float = 0.5,
        scale: float = 30.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("scale", scale)
        counts_buffer(self, class_counts, allow_zero=False)
        self.max_margin = max_margin
        self.scale = scale
        self.register_buffer("margins", ldam_margins(class_counts, max_margin).to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _ldam(
            logits, target, self.margins, self.scale, self.weight, self.ignore_index, self.reduction
        )
