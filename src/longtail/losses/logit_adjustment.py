"""Prior-corrected losses: logit adjustment, balanced softmax, vector scaling (VS)."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import as_counts, check_finite_number, expected
from ._adjusted import adjusted_loss
from ._base import WeightedLoss, counts_buffer
from ._registry import export_function, register_loss


@export_function
def log_prior(class_counts: Any) -> torch.Tensor:
    """``log π_c = log(n_c / Σ n)`` (float64, CPU); zero counts are rejected."""
    n = as_counts(class_counts, allow_zero=False)
    return n.log() - n.sum().log()


def _affine_ce(logits, target, class_scale, class_bias, weight, ignore_index, reduction):
    return adjusted_loss(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        class_scale=class_scale,
        class_bias=class_bias,
    )


def logit_adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    tau: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Logit-adjusted loss (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).

    .. math::

        \\ell_i = \\mathrm{CE}(z_i + \\tau \\log \\pi,\\ y_i),\\qquad \\pi_c = n_c / \\sum_k n_k

    Train with this loss and predict with the raw ``argmax z`` (the adjustment is in the loss).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        tau: the adjustment's strength τ; default 1, the paper's (Fisher-consistent for the
            balanced error).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    check_finite_number("tau", tau)
    return _affine_ce(
        logits, target, None, tau * log_prior(class_counts), weight, ignore_index, reduction
    )


@export_function
def adjust_logits(logits: torch.Tensor, class_counts: Any, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al. 2021): ``z − τ log π``; predict with its argmax.

    For a model trained with plain cross-entropy. ``logits`` is ``(N, C)``, ``(N, C, d1, ...)``
    or one unbatched row ``(C,)`` (as the losses take); the result has the same shape and dtype.
    Give it logits on the scale the model was trained at: for a cosine classifier
    (:class:`~longtail.NormedLinear`, z in [-1, 1]) that is s·z, the scale of its loss, not z.

    Example:
        >>> import torch
        >>> adjust_logits(torch.zeros(1, 3), class_counts=[98, 1, 1]).argmax(1).tolist()
        [1]
    """
    check_finite_number("tau", tau)
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1:
        raise expected(
            "logits",
            "a tensor of shape (N, C, ...) or (C,)",
            getattr(logits, "shape", type(logits)),
        )
    axis = 0 if logits.dim() == 1 else 1  # the class axis
    lp = log_prior(class_counts)
    if lp.numel() != logits.shape[axis]:
        raise expected(
            "class_counts",
            f"of length {logits.shape[axis]} (the number of classes)",
            f"length {lp.numel()}",
        )
    shape = [1] * logits.dim()
    shape[axis] = -1
    return logits - (tau * lp).to(device=logits.device, dtype=logits.dtype).reshape(shape)


def balanced_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Balanced softmax (Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition",
    NeurIPS 2020).

    .. math::  \\ell_i = \\mathrm{CE}(z_i + \\log n,\\ y_i)

    Equal counts give plain cross-entropy; it is the logit-adjusted loss with τ = 1 (log n and
    log π differ by a constant, which softmax ignores). No hyper-parameters.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    return _affine_ce(
        logits, target, None, log_prior(class_counts), weight, ignore_index, reduction
    )


@export_function
def vs_factors(
    class_counts: Any, gamma: float = 0.3, tau: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """VS factors: multiplicative ``Δ_c = (n_c / n_max)^γ``, additive ``ι_c = τ log π_c``."""
    check_finite_number("gamma", gamma)
    check_finite_number("tau", tau)
    n = as_counts(class_counts, allow_zero=False)
    return (n / n.max()).pow(gamma), tau * log_prior(n)


def vs_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    gamma: float = 0.3,
    tau: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Vector-scaling loss (Kini et al., "Label-Imbalanced and Group-Sensitive Classification under
    Overparameterization", NeurIPS 2021).

    .. math::  \\ell_i = \\mathrm{CE}(\\Delta \\odot z_i + \\iota,\\ y_i),\\quad
               \\Delta_c = (n_c/n_{\\max})^{\\gamma},\\ \\iota_c = \\tau \\log \\pi_c

    γ = 0 is logit adjustment.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        gamma: exponent γ of the multiplicative factor; default 0.3, the authors' code's.
        tau: strength τ of the additive factor; default 1.0, the authors' code's.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    a, b = vs_factors(class_counts, gamma, tau)
    return _affine_ce(logits, target, a, b, weight, ignore_index, reduction)


@register_loss(
    name="logit-adjusted",
    function=logit_adjusted_loss,
    family="imbalance",
    description="logit-adjusted CE: CE(z + τ log π) (post-hoc form: longtail.adjust_logits)",
    paper="Menon et al., ICLR 2021",
    needs_counts=True,
)
class LogitAdjustedLoss(WeightedLoss):
    """Module form of :func:`logit_adjusted_loss`; counts and the bias τ log π are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        tau: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_finite_number("tau", tau)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.tau = tau
        self.register_buffer("bias", (tau * log_prior(counts)).to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _affine_ce(
            logits, target, None, self.bias, self.weight, self.ignore_index, self.reduction
        )

    def adjust(self, logits: torch.Tensor) -> torch.Tensor:
        """Post-hoc adjustment with this module's counts and τ."""
        return adjust_logits(logits, self.class_counts, self.tau)


@register_loss(
    name="balanced-softmax",
    function=balanced_softmax_loss,
    family="imbalance",
    description="balanced softmax: CE(z + log n)",
    paper="Ren et al., NeurIPS 2020",
    needs_counts=True,
)
class BalancedSoftmaxLoss(WeightedLoss):
    """Module form of :func:`balanced_softmax_loss`."""

    def __init__(
        self,
        class_counts: Any,
        *,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.register_buffer("bias", log_prior(counts).to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _affine_ce(
            logits, target, None, self.bias, self.weight, self.ignore_index, self.reduction
        )


@register_loss(
    name="vs",
    function=vs_loss,
    family="imbalance",
    description="vector scaling: CE((n/n_max)^γ ⊙ z + τ log π)",
    paper="Kini et al., NeurIPS 2021",
    needs_counts=True,
)
class VSLoss(WeightedLoss):
    """Module form of :func:`vs_loss`; Δ and ι are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        gamma: float = 0.3,
        tau: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.gamma, self.tau = gamma, tau
        a, b = vs_factors(counts, gamma, tau)
        self.register_buffer("class_scale", a.to(torch.float32))
        self.register_buffer("bias", b.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _affine_ce(
            logits,
            target,
            self.class_scale,
            self.bias,
            self.weight,
            self.ignore_index,
            self.reduction,
        )
