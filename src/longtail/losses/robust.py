"""Losses for classification under label noise: the normalised and active-passive losses of
Ma et al. (ICML 2020), reverse and symmetric cross-entropy (Wang et al., ICCV 2019), MAE
(Ghosh et al., AAAI 2017) and generalised cross-entropy (Zhang & Sabuncu, NeurIPS 2018).

Most of them are a function of the target's probability alone, ``ℓ = φ(s)`` with
``s = −log p_y``: they are computed from ``torch.nn.functional.cross_entropy(reduction="none")``
(one fused kernel forward and backward), and autograd's gradient is ``φ'(s)·(softmax(z) − e_y)``.
The normalised losses also need a sum over every class.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_positive, expected
from ._base import WeightedLoss, first_order
from ._reduce import FlatInputs, flatten_inputs, reduce_loss
from ._registry import register_loss

#: ``log 0 := A`` in the reverse cross-entropy (Wang et al. 2019 set A = −4).
LOG_ZERO = -4.0


# --------------------------------------------------------------------------------- helpers
def _flat(logits, target, weight, ignore_index, reduction) -> FlatInputs:
    # every loss here needs C ≥ 2 (a normaliser Σ_k −log p_k > 0, a wrong class to move to)
    return flatten_inputs(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        min_classes=2,
    )


def _logits(flat: FlatInputs) -> torch.Tensor:
    return flat.logits.to(flat.compute_dtype)


def _nll(flat: FlatInputs) -> torch.Tensor:
    """``s = −log softmax(z)_y`` per sample, ``(M,)``, in the compute dtype (one fused kernel)."""
    return F.cross_entropy(_logits(flat), flat.target, reduction="none")


def _one_minus_p(s: torch.Tensor) -> torch.Tensor:
    """``1 − p_y`` from ``s = −log p_y``; exact when p_y is near 1."""
    return -torch.expm1(-s)


class _NormalizedCE(torch.autograd.Function):
    """``α·NCE + b·(1 − p_y)`` per sample from the log-probabilities ``l = log_softmax(z)``
    (``b = −βA``: NCE+RCE; ``b = 0``: NCE), with ``NCE = s / D``, ``s = −l_y``, ``D = −Σ_k l_k``.

    ``D ≥ log C > 0`` (the smallest p_k is ≤ 1/C), so the ratio is always defined, and the
    log-softmax makes it precise whatever offset the logits share. The gradient with respect to
    ``l`` is a constant per row plus a term at the target,

        ∂ℓ/∂l_k = α s / D² − δ_ky (α / D + b p_y),

    one ``(M, C)`` buffer that autograd's log-softmax backward (as cross-entropy's) turns into
    the gradient with respect to ``z``: the cost of cross-entropy and one row sum.
    """

    @staticmethod
    def forward(ctx, logp, idx, alpha, b):  # type: ignore[override]
        s = logp.gather(1, idx).view(-1).neg()
        den = logp.sum(1).neg_()
        ctx.save_for_backward(idx, s, den)
        ctx.alpha, ctx.b, ctx.shape = alpha, b, logp.shape
        loss = s / den
        if alpha != 1:
            loss = loss * alpha
        if b != 0:
            loss = loss + b * -torch.expm1(-s)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        idx, s, den = ctx.saved_tensors
        ga = grad * ctx.alpha
        at_y = ga / den
        if ctx.b != 0:
            at_y = at_y + grad * ctx.b * torch.exp(-s)
        out = (ga * s / (den * den)).unsqueeze(1).expand(ctx.shape).clone()
        out.scatter_add_(1, idx, at_y.neg().unsqueeze(1))
        return out, None, None, None


def _nce(flat: FlatInputs, alpha: float = 1.0, b: float = 0.0) -> torch.Tensor:
    """``α·(−log p_y) / Σ_k (−log p_k) + b (1 − p_y)`` per sample."""
    logp = torch.log_softmax(_logits(flat), dim=1)
    return _NormalizedCE.apply(logp, flat.target.unsqueeze(1), float(alpha), float(b))


class _NormalizedFocal(torch.autograd.Function):
    """``α·NFL + b (1 − p_y)`` per sample (``b = −βA``: NFL+RCE), with ``NFL = f_y / F``,
    ``f_k = −(1 − p_k)^γ log p_k``, ``F = Σ_k f_k``, and its gradient.

    Autograd through the ``(M, C)`` chain (log-softmax, expm1, pow, products) keeps a buffer per
    step, and on CPU each fresh ``(M, C)`` buffer costs about as much as a pass over it (page
    faults). Written out, with ``l = log p``, ``u = 1 − p``, ``w = u^γ`` (so ``f = −w l``):

        −g_k = −∂f_k/∂l_k = w_k + γ p_k f_k / u_k,
        G_k  = ∂ℓ/∂l_k    = α (δ_ky g_y F − f_y g_k) / F² − b p_y δ_ky,
        J_j  = ∂ℓ/∂z_j    = G_j − p_j Σ_k G_k          (the chain rule through log-softmax).

    The forward computes ``J`` in four buffers, in place (``l`` becomes ``p``, ``w`` becomes
    ``−g``, then ``G``, then ``J``), when a gradient is wanted, and saves it alone; the backward
    scales its rows. ``f / u`` is ``−u^(γ−1) l``, finite for γ < 1 as p → 1 (where ``u^(γ−1)``
    alone is infinite and the product tends to 0); ``u`` is clamped at the smallest normal
    number, which changes nothing but ``w = 0`` into ``tiny^γ`` where p = 1 exactly (and there
    ``f = −w·0 = 0``). ``F ≥ f_k > 0`` at the smallest p_k (≤ 1/C).
    """

    @staticmethod
    def forward(ctx, x, idx, gamma, alpha, b):  # type: ignore[override]
        logp = torch.log_softmax(x, dim=1)
        u = torch.expm1(logp).neg_().clamp_min_(torch.finfo(logp.dtype).tiny)  # 1 − p, exact
        w = u.pow(gamma)
        wl = torch.mul(w, logp)  # −f
        den = wl.sum(1).neg_()
        f_y = wl.gather(1, idx).view(-1).neg()
        u_y = u.gather(1, idx).view(-1)
        loss = f_y / den
        if alpha != 1:
            loss = loss * alpha
        if b != 0:
            loss = loss + b * u_y
        if ctx.needs_input_grad[0]:
            p = logp.exp_()
            neg_g = w.addcdiv_(wl.mul_(p), u, value=-gamma)  # w + γ p f / u, in w's buffer
            del u, wl
            at_y = alpha * neg_g.gather(1, idx).view(-1) / den
            if b != 0:
                at_y = at_y + b * p.gather(1, idx).view(-1)
            big_g = neg_g.mul_((alpha * f_y / (den * den)).unsqueeze(1))
            big_g.scatter_add_(1, idx, at_y.neg().unsqueeze(1))
            total = big_g.sum(1, keepdim=True)
            ctx.save_for_backward(big_g.addcmul_(p, total, value=-1.0))
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        (jac,) = ctx.saved_tensors
        return jac * grad.unsqueeze(1), None, None, None, None


def _nfl(flat: FlatInputs, gamma: float, alpha: float = 1.0, b: float = 0.0) -> torch.Tensor:
    """``α·FL_y / Σ_k FL_k + b (1 − p_y)``, ``FL_k = −(1 − p_k)^γ log p_k``, per sample."""
    return _NormalizedFocal.apply(
        _logits(flat), flat.target.unsqueeze(1), float(gamma), float(alpha), float(b)
    )


def _rce(s: torch.Tensor, log_zero: float) -> torch.Tensor:
    """``−Σ_k p_k log q_k`` for one-hot q with ``log 0 := A``: ``−A (1 − p_y)``."""
    return _one_minus_p(s) * -log_zero


def _check_log_zero(log_zero: Any) -> None:
    if not (isinstance(log_zero, (int, float)) and math.isfinite(log_zero) and log_zero < 0):
        raise expected("log_zero", "a finite number < 0 (the value taken for log 0)", log_zero)


def _check_alpha_beta(alpha: Any, beta: Any) -> None:
    check_positive("alpha", alpha, allow_zero=True)
    check_positive("beta", beta, allow_zero=True)


def _check_q(q: Any) -> None:
    if not (isinstance(q, (int, float)) and 0 < q <= 1):
        raise expected("q", "a number in (0, 1]", repr(q))


class _FunctionLoss(WeightedLoss):
    """A module that calls its loss function with its hyper-parameters (attributes of the same
    names, listed in ``_hyper``) and the shared ``weight`` / ``ignore_index`` / ``reduction``."""

    _hyper: tuple[str, ...] = ()

    def _call(self, function, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return function(
            logits,
            target,
            **{k: getattr(self, k) for k in self._hyper},
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------------- NCE
def normalized_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Normalised cross-entropy, NCE (Ma et al., "Normalized Loss Functions for Deep Learning with
    Noisy Labels", ICML 2020).

    .. math::

        \\ell_i = \\frac{-\\log p_{i,y_i}}{-\\sum_{k=1}^{C} \\log p_{i,k}},
        \\qquad p_i = \\mathrm{softmax}(z_i)

    The normalisation makes ``Σ_k ℓ(z, k) = 1`` for every ``z``, hence robust to symmetric label
    noise (Ma et al.); alone it underfits, which the active-passive combinations
    (``nce-rce``) address. The official code (``HanxunH/Active-Passive-Losses``) computes the same.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    flat = _flat(logits, target, weight, ignore_index, reduction)
    return reduce_loss(_nce(flat), flat, weight, reduction)


@register_loss(
    name="nce",
    function=normalized_cross_entropy,
    family="robust-to-noise",
    description="normalised cross-entropy −log p_y / Σ_k −log p_k (sums to 1 over labels)",
    paper="Ma et al., ICML 2020",
)
class NormalizedCrossEntropyLoss(_FunctionLoss):
    """Module form of :func:`normalized_cross_entropy`."""

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(normalized_cross_entropy, logits, target)


# ------------------------------------------------------------------------------------- NFL
def normalized_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 0.5,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Normalised focal loss, NFL (Ma et al., "Normalized Loss Functions for Deep Learning with
    Noisy Labels", ICML 2020).

    .. math::

        \\ell_i = \\frac{-(1 - p_{i,y_i})^{\\gamma} \\log p_{i,y_i}}
                       {-\\sum_{k=1}^{C} (1 - p_{i,k})^{\\gamma} \\log p_{i,k}}

    γ = 0 is NCE. The official code (``HanxunH/Active-Passive-Losses``) takes the factors
    ``(1 − p_k)^γ`` from ``.data`` (constants in the backward, in the numerator and in the
    normaliser) and differentiates only the ``log p_k``; its value is this formula, its gradient
    is not the formula's. longtail follows the paper and differentiates all of it (the paper's
    robustness argument is about the loss; the true gradient is what gradcheck verifies).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        gamma: focusing parameter γ ≥ 0; default 0.5, the paper's setting for NFL and NFL+RCE
            (every dataset of its experiments).
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    check_positive("gamma", gamma, allow_zero=True)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    return reduce_loss(_nfl(flat, gamma), flat, weight, reduction)


@register_loss(
    name="nfl",
    function=normalized_focal_loss,
    family="robust-to-noise",
    description="normalised focal loss FL_y / Σ_k FL_k (sums to 1 over labels)",
    paper="Ma et al., ICML 2020",
)
class NormalizedFocalLoss(_FunctionLoss):
    """Module form of :func:`normalized_focal_loss`."""

    _hyper = ("gamma",)

    def __init__(
        self,
        *,
        gamma: float = 0.5,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(normalized_focal_loss, logits, target)


# ------------------------------------------------------------------------------------- RCE
def reverse_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    log_zero: float = LOG_ZERO,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Reverse cross-entropy, RCE (Wang et al., "Symmetric Cross Entropy for Robust Learning
    with Noisy Labels", ICCV 2019).

    .. math::

        \\ell_i = -\\sum_{k=1}^{C} p_{i,k} \\log q_{i,k} = -A\\,(1 - p_{i,y_i}),
        \\qquad q_i = e_{y_i},\\ \\log 0 := A

    The cross-entropy with prediction and label swapped; ``log 0`` is truncated to the constant
    ``A``. It is a passive loss in the terms of Ma et al. (ICML 2020) and, up to the factor −A/2,
    the MAE.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        log_zero: ``A < 0``, the value taken for ``log 0``; default −4, the paper's. The
            official code clamps the one-hot label at 1e-4 instead, which is
            ``A = log 1e-4 ≈ −9.21`` (and clamps p at 1e-7, a change below 1e-6 here); longtail
            follows the paper; pass ``log_zero=math.log(1e-4)`` for the code's value.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_log_zero(log_zero)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    return reduce_loss(_rce(_nll(flat), log_zero), flat, weight, reduction)


@register_loss(
    name="rce",
    function=reverse_cross_entropy,
    family="robust-to-noise",
    description="reverse cross-entropy −Σ_k p_k log q_k with log 0 := A, i.e. −A (1 − p_y)",
    paper="Wang et al., ICCV 2019",
)
class ReverseCrossEntropyLoss(_FunctionLoss):
    """Module form of :func:`reverse_cross_entropy`."""

    _hyper = ("log_zero",)

    def __init__(
        self,
        *,
        log_zero: float = LOG_ZERO,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_log_zero(log_zero)
        self.log_zero = log_zero

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(reverse_cross_entropy, logits, target)


# ------------------------------------------------------------------------------------- MAE
def mae_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean absolute error between the softmax and the one-hot label, MAE (Ghosh et al., "Robust
    Loss Functions under Label Noise for Deep Neural Networks", AAAI 2017; the passive loss of
    Ma et al., ICML 2020).

    .. math::

        \\ell_i = \\sum_{k=1}^{C} |p_{i,k} - q_{i,k}| = 2\\,(1 - p_{i,y_i}),
        \\qquad q_i = e_{y_i}

    The L1 distance as both papers define it, so 2(1 − p_y); the Active-Passive-Losses code
    computes ``1 − p_y`` (half of it), which is the comp-sum loss at τ = 2 and generalised
    cross-entropy at q = 1 (both tested).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    flat = _flat(logits, target, weight, ignore_index, reduction)
    return reduce_loss(2.0 * _one_minus_p(_nll(flat)), flat, weight, reduction)


@register_loss(
    name="mae",
    function=mae_loss,
    family="robust-to-noise",
    description="mean absolute error Σ_k |p_k − q_k| = 2 (1 − p_y) of the softmax",
    paper="Ghosh et al., AAAI 2017",
)
class MAELoss(_FunctionLoss):
    """Module form of :func:`mae_loss`."""

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(mae_loss, logits, target)


# ---------------------------------------------------------------------------- APL: NCE+RCE
def nce_rce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    log_zero: float = LOG_ZERO,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Active-passive loss NCE+RCE (Ma et al., "Normalized Loss Functions for Deep Learning with
    Noisy Labels", ICML 2020).

    .. math::

        \\ell_i = \\alpha\\,\\mathrm{NCE}(z_i, y_i) + \\beta\\,\\mathrm{RCE}(z_i, y_i)
        = \\alpha \\frac{-\\log p_{i,y_i}}{-\\sum_k \\log p_{i,k}} - \\beta A (1 - p_{i,y_i})

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        alpha: weight of the active term (NCE); default 1, the paper's CIFAR-10 setting (its
            CIFAR-100 setting is α = 10, β = 0.1): the paper gives one per dataset, so the
            default is uncertain.
        beta: weight of the passive term (RCE); default 1, the paper's CIFAR-10 setting
            (uncertain, as ``alpha``).
        log_zero: ``A`` of the RCE; default −4, Wang et al.'s (whose RCE the paper uses); the
            official code's clamp of the label at 1e-4 is ``A = log 1e-4``. See
            :func:`reverse_cross_entropy`.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_alpha_beta(alpha, beta)
    _check_log_zero(log_zero)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    loss = _nce(flat, alpha, -beta * log_zero)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="nce-rce",
    function=nce_rce_loss,
    family="robust-to-noise",
    description="active-passive loss α·NCE + β·RCE",
    paper="Ma et al., ICML 2020",
    uncertain=("alpha", "beta"),
)
class NCERCELoss(_FunctionLoss):
    """Module form of :func:`nce_rce_loss`."""

    _hyper = ("alpha", "beta", "log_zero")

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        log_zero: float = LOG_ZERO,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_alpha_beta(alpha, beta)
        _check_log_zero(log_zero)
        self.alpha, self.beta, self.log_zero = alpha, beta, log_zero

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(nce_rce_loss, logits, target)


# ---------------------------------------------------------------------------- APL: NFL+RCE
def nfl_rce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.5,
    log_zero: float = LOG_ZERO,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Active-passive loss NFL+RCE (Ma et al., "Normalized Loss Functions for Deep Learning with
    Noisy Labels", ICML 2020).

    .. math::

        \\ell_i = \\alpha\\,\\mathrm{NFL}_{\\gamma}(z_i, y_i) + \\beta\\,\\mathrm{RCE}(z_i, y_i)

    with NFL as in :func:`normalized_focal_loss` (the gradient of the whole formula, where the
    official code holds NFL's ``(1 − p)^γ`` factors constant) and RCE as in
    :func:`reverse_cross_entropy`.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        alpha: weight of the active term (NFL); default 1, the paper's CIFAR-10 setting (its
            CIFAR-100 setting is α = 10, β = 0.1): one per dataset, so the default is uncertain.
        beta: weight of the passive term (RCE); default 1, the paper's CIFAR-10 setting
            (uncertain, as ``alpha``).
        gamma: NFL's focusing parameter; default 0.5, the paper's.
        log_zero: ``A`` of the RCE; default −4 (see :func:`reverse_cross_entropy`).
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_alpha_beta(alpha, beta)
    check_positive("gamma", gamma, allow_zero=True)
    _check_log_zero(log_zero)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    loss = _nfl(flat, gamma, alpha, -beta * log_zero)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="nfl-rce",
    function=nfl_rce_loss,
    family="robust-to-noise",
    description="active-passive loss α·NFL + β·RCE",
    paper="Ma et al., ICML 2020",
    uncertain=("alpha", "beta"),
)
class NFLRCELoss(_FunctionLoss):
    """Module form of :func:`nfl_rce_loss`."""

    _hyper = ("alpha", "beta", "gamma", "log_zero")

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.5,
        log_zero: float = LOG_ZERO,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_alpha_beta(alpha, beta)
        check_positive("gamma", gamma, allow_zero=True)
        _check_log_zero(log_zero)
        self.alpha, self.beta, self.gamma, self.log_zero = alpha, beta, gamma, log_zero

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(nfl_rce_loss, logits, target)


# ------------------------------------------------------------------------------------- SCE
def symmetric_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    log_zero: float = LOG_ZERO,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Symmetric cross-entropy, SCE / "SL" (Wang et al., "Symmetric Cross Entropy for Robust
    Learning with Noisy Labels", ICCV 2019).

    .. math::

        \\ell_i = \\alpha\\,(-\\log p_{i,y_i}) + \\beta\\,(-A)(1 - p_{i,y_i})

    cross-entropy plus the reverse cross-entropy (:func:`reverse_cross_entropy`).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        alpha: weight of the cross-entropy; default 0.1, the paper's CIFAR-10 setting (it uses
            α = 0.01, β = 1 on MNIST and α = 6, β = 0.1 on CIFAR-100): one per dataset, so the
            default is uncertain.
        beta: weight of the reverse cross-entropy; default 1, the paper's CIFAR-10 setting
            (uncertain, as ``alpha``).
        log_zero: ``A``, the value taken for ``log 0``; default −4, the paper's (the official
            code's clamp at 1e-4 is ``A = log 1e-4``; see :func:`reverse_cross_entropy`).
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_alpha_beta(alpha, beta)
    _check_log_zero(log_zero)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    s = _nll(flat)
    return reduce_loss(alpha * s + beta * _rce(s, log_zero), flat, weight, reduction)


@register_loss(
    name="sce",
    function=symmetric_cross_entropy,
    family="robust-to-noise",
    description="symmetric cross-entropy α·CE + β·RCE",
    paper="Wang et al., ICCV 2019",
    uncertain=("alpha", "beta"),
)
class SymmetricCrossEntropyLoss(_FunctionLoss):
    """Module form of :func:`symmetric_cross_entropy`."""

    _hyper = ("alpha", "beta", "log_zero")

    def __init__(
        self,
        *,
        alpha: float = 0.1,
        beta: float = 1.0,
        log_zero: float = LOG_ZERO,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_alpha_beta(alpha, beta)
        _check_log_zero(log_zero)
        self.alpha, self.beta, self.log_zero = alpha, beta, log_zero

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(symmetric_cross_entropy, logits, target)


# ------------------------------------------------------------------------------------- GCE
def generalized_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    q: float = 0.7,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Generalised cross-entropy, the L_q loss (Zhang & Sabuncu, "Generalized Cross Entropy Loss
    for Training Deep Neural Networks with Noisy Labels", NeurIPS 2018).

    .. math::

        \\ell_i = \\frac{1 - p_{i,y_i}^{\\,q}}{q}

    q → 0 is cross-entropy (the limit of the Box-Cox transform), q = 1 is ``1 − p_y`` (half the
    MAE); GCE with q is the comp-sum loss with τ = 1 + q (Mao et al., ICML 2023). Computed as
    ``−expm1(q log p_y) / q``, exact for small q. The truncated L_q loss of the same paper needs
    per-sample state (pruning) and is not this function.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        q: in (0, 1]; default 0.7, the paper's setting in its experiments.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_q(q)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    loss = torch.expm1(_nll(flat) * -q).neg() / q
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="gce",
    function=generalized_cross_entropy,
    family="robust-to-noise",
    description="generalised cross-entropy (1 − p_y^q) / q: CE as q → 0, (1 − p_y) at q = 1",
    paper="Zhang & Sabuncu, NeurIPS 2018",
)
class GeneralizedCrossEntropyLoss(_FunctionLoss):
    """Module form of :func:`generalized_cross_entropy`."""

    _hyper = ("q",)

    def __init__(
        self,
        *,
        q: float = 0.7,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_q(q)
        self.q = q

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(generalized_cross_entropy, logits, target)
