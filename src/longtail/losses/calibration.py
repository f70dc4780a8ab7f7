"""Losses for calibrated probabilities: ACLS, dual focal loss, and the correctness-aware (CA) loss.

Each is a per-sample loss on class-index targets, so weight / ignore_index / reduction are applied
by :func:`longtail.losses._reduce.reduce_loss` with the conventions of ``torch.nn``.
"""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_positive, expected
from ._base import WeightedLoss, first_order
from ._reduce import flatten_inputs, reduce_loss
from ._registry import register_loss


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise expected(name, "True or False", repr(value))


# ------------------------------------------------------------------------------------------ ACLS
def acls_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    pos_lambda: float = 1.0,
    neg_lambda: float = 0.1,
    alpha: float = 0.1,
    margin: float = 10.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """ACLS, adaptive and conditional label smoothing (Park et al., "ACLS: Adaptive and
    Conditional Label Smoothing for Network Calibration", ICCV 2023).

    Cross-entropy plus a regulariser on the logits that pulls the largest logit below ``M`` and
    keeps every other logit within ``M`` of the largest:

    .. math::

        \\ell_i = -\\log p_{i,y_i} + \\alpha \\Big[\\lambda_{pos} \\sum_{j: z_{ij} = m_i}
            \\mathrm{ReLU}(z_{ij} - M)^2
            + \\frac{\\lambda_{neg}}{C - 1} \\sum_{j: z_{ij} < m_i}
            \\mathrm{ReLU}(\\mathrm{sg}(m_i) - z_{ij} - M)^2\\Big],
        \\qquad m_i = \\max_j z_{ij}

    The "positive" of the regulariser is the *predicted* class (the arg-max), not the label; a
    tie at the top makes every tied class positive. ``sg`` is a stop-gradient: the official code
    (``cvlab-yonsei/ACLS``, ``calibrate/losses/acls.py``) detaches the maximum in the negative
    term, and longtail does the same (the registry's ``stop_gradient``). The mean over the batch
    is the official code's ``pos.sum() / N + neg.sum() / (N (C - 1))``; longtail follows that code
    (the negative term averaged over the ``C - 1`` non-maximal logits of each sample).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` (or ``(N, C, d1, ...)``).
        target: class indices.
        pos_lambda: ``λ_pos``, the weight of the positive (arg-max) term; default 1.0, the
            official code's default and config (``configs/loss/acls.yaml``).
        neg_lambda: ``λ_neg``, the weight of the negative term; default 0.1, same source.
        alpha: ``α``, the weight of the regulariser against cross-entropy; default 0.1, same
            source. ``alpha=0`` is cross-entropy.
        margin: ``M ≥ 0``; default 10.0, same source. With a margin no logit reaches, ACLS is
            cross-entropy.
        weight: per-class weights, weighted mean ``Σ w_y ℓ / Σ w_y`` as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_acls(pos_lambda, neg_lambda, alpha, margin)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    z = flat.logits.to(flat.compute_dtype)
    loss = _ACLS.apply(z, flat.target.unsqueeze(1), pos_lambda, neg_lambda, alpha, margin)
    return reduce_loss(loss, flat, weight, reduction)


def _check_acls(pos_lambda: float, neg_lambda: float, alpha: float, margin: float) -> None:
    for name, value in (("pos_lambda", pos_lambda), ("neg_lambda", neg_lambda), ("alpha", alpha)):
        check_positive(name, value, allow_zero=True)
    check_positive("margin", margin, allow_zero=True)


class _ACLS(torch.autograd.Function):
    """Per-sample ACLS with its gradient in closed form (the maximum of the negative term held
    constant):

        ∂ℓ/∂z_j = p_j − [j = y] + 2αλ_pos ReLU(z_j − M) [z_j = m] − 2αλ_neg/(C−1) ReLU(m − z_j − M)

    With ``M ≥ 0`` the negative term can run over every class (``ReLU(m − z_j − M) = 0`` at the
    maximum), so no mask is built; the tied maxima are found only in the rows whose maximum
    passes the margin (the positive term is 0 elsewhere).
    """

    @staticmethod
    def forward(ctx, z, idx, pos_lambda, neg_lambda, alpha, margin):  # type: ignore[override]
        logp = torch.log_softmax(z, dim=1)
        loss = -logp.gather(1, idx).squeeze(1)
        c = z.shape[1]
        k_neg = alpha * neg_lambda / max(c - 1, 1)
        k_pos = alpha * pos_lambda
        m = z.amax(dim=1, keepdim=True) if z.shape[0] else z.new_zeros(0, 1)
        if k_neg != 0:
            loss = loss + k_neg * (m - margin - z).clamp_min_(0).square_().sum(1)
        rows = top = over = None
        if k_pos != 0:
            excess = (m.squeeze(1) - margin).clamp_min(0)
            rows = excess.nonzero().squeeze(1)
            if rows.numel():
                top = (z[rows] == m[rows]).to(z.dtype)  # the tied maxima of those rows
                over = excess[rows]
                loss = loss.index_add(0, rows, k_pos * top.sum(1) * over.square())
            else:
                rows = None
        ctx.save_for_backward(z, logp, idx, m)
        ctx.extra = (rows, top, over, k_pos, k_neg, margin)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        z, logp, idx, m = ctx.saved_tensors
        rows, top, over, k_pos, k_neg, margin = ctx.extra
        grad = torch.exp(logp)
        grad.scatter_add_(1, idx, torch.full_like(idx, -1, dtype=grad.dtype))
        if k_neg != 0:
            grad.add_((m - margin - z).clamp_min_(0), alpha=-2 * k_neg)
        if rows is not None:
            grad.index_add_(0, rows, top * (2 * k_pos * over).unsqueeze(1))
        grad.mul_(g.unsqueeze(1))
        return grad, None, None, None, None, None


@register_loss(
    name="acls",
    function=acls_loss,
    family="calibration",
    description="CE + α(λ⁺ ReLU(z_max − M)² + λ⁻ mean_j ReLU(sg(z_max) − z_j − M)²)",
    paper="Park et al., ICCV 2023",
    stop_gradient="the row maximum in the negative term (the official code detaches it)",
)
class ACLSLoss(WeightedLoss):
    """Module form of :func:`acls_loss`."""

    def __init__(
        self,
        *,
        pos_lambda: float = 1.0,
        neg_lambda: float = 0.1,
        alpha: float = 0.1,
        margin: float = 10.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_acls(pos_lambda, neg_lambda, alpha, margin)
        self.pos_lambda = pos_lambda
        self.neg_lambda = neg_lambda
        self.alpha = alpha
        self.margin = margin

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return acls_loss(
            logits,
            target,
            pos_lambda=self.pos_lambda,
            neg_lambda=self.neg_lambda,
            alpha=self.alpha,
            margin=self.margin,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------------ dual focal
def dual_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 5.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Dual focal loss (Tao, Dong and Xu, "Dual Focal Loss for Calibration", ICML 2023).

    .. math::

        \\ell_i = -\\big(1 - p_{i,y_i} + p_{i,j_i}\\big)^{\\gamma} \\log p_{i,y_i},
        \\qquad p_{i,j_i} = \\max\\{p_{i,c} : p_{i,c} < p_{i,y_i}\\}

    ``p_j`` is the largest probability *strictly* below the target's (the second largest when the
    target is the top class), and 0 when there is none (every class ties with or beats the
    target), as in the official code (``Linwei94/ICML2023-DualFocalLoss``, ``dual_focal_loss.py``),
    whose gradient also flows through ``p_j``. The comparison is made on the logits, which order
    the classes as the probabilities do. ``γ = 0`` is cross-entropy.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` (or ``(N, C, d1, ...)``).
        target: class indices.
        gamma: γ ≥ 0. Default 5.0; uncertain: the paper tunes γ per dataset and network (its
            runs use 5 to 7), and the official code's default is 0, which is plain cross-entropy.
        weight: per-class weights, weighted mean ``Σ w_y ℓ / Σ w_y`` as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``. (The official code
            sums by default; ``reduction="sum"`` gives that.)
    """
    check_positive("gamma", gamma, allow_zero=True)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    z = flat.logits.to(flat.compute_dtype)
    idx = flat.target.unsqueeze(1)
    if gamma == 0 or z.shape[0] == 0:
        loss = -torch.log_softmax(z, dim=1).gather(1, idx).squeeze(1)
    else:
        loss = _DualFocal.apply(z, idx, float(gamma))
    return reduce_loss(loss, flat, weight, reduction)


class _DualFocal(torch.autograd.Function):
    """Per-sample dual focal loss ``−u^γ L``, ``u = 1 − p_y + p_j``, ``L = log p_y``, with the
    gradient (through ``p_j`` too, as the official code) in closed form:

        ∂ℓ/∂z_c = p_c (u^γ − γ u^{γ−1} L (p_y − p_j)) + [c = y] (γ u^{γ−1} L p_y − u^γ)
                  − [c = j] γ u^{γ−1} L p_j

    ``j`` is found without a boolean mask: the logits not strictly below ``z_y`` are pushed down
    by a large finite constant (the sign of ``z − z_y`` says which), and the maximum taken.
    """

    @staticmethod
    def forward(ctx, z, idx, gamma):  # type: ignore[override]
        logp = torch.log_softmax(z, dim=1)
        logpt = logp.gather(1, idx).squeeze(1)
        zy = z.gather(1, idx)
        push = torch.finfo(z.dtype).min / 4  # (sign + 1) ∈ {0, 1, 2}: at least min / 2, finite
        shifted = torch.sub(z, zy).sign_().add_(1).mul_(push).add_(z)
        zj, j = shifted.max(dim=1)
        del shifted
        pj = torch.exp(zj - (zy.squeeze(1) - logpt))  # z_j − lse; 0 where nothing is below z_y
        # 1 − p_y as −expm1(log p_y): exact when p_y is near 1. The clamp keeps u^(γ−1) finite
        # for γ < 1 where u is 0 (where also L = 0).
        u = (pj - torch.expm1(logpt)).clamp_min(torch.finfo(z.dtype).tiny)
        ug = u.pow(gamma)
        ctx.save_for_backward(logp, idx, j.unsqueeze(1), logpt, pj, u, ug)
        ctx.gamma = gamma
        return -ug * logpt

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        logp, idx, j, logpt, pj, u, ug = ctx.saved_tensors
        k = ctx.gamma * (ug / u) * logpt  # γ u^{γ−1} L
        py = torch.exp(logpt)
        grad = torch.exp(logp).mul_((g * (ug - k * (py - pj))).unsqueeze(1))
        grad.scatter_add_(1, idx, (g * (k * py - ug)).unsqueeze(1))
        grad.scatter_add_(1, j, (-g * k * pj).unsqueeze(1))
        return grad, None, None


@register_loss(
    name="dual-focal",
    function=dual_focal_loss,
    family="calibration",
    description="dual focal −(1 − p_y + p_j)^γ log p_y, p_j the largest probability below p_y",
    paper="Tao et al., ICML 2023",
    uncertain=("gamma",),
)
class DualFocalLoss(WeightedLoss):
    """Module form of :func:`dual_focal_loss`."""

    def __init__(
        self,
        *,
        gamma: float = 5.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dual_focal_loss(
            logits,
            target,
            gamma=self.gamma,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ----------------------------------------------------------------------------- correctness-aware
def correctness_aware_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    balanced: bool = True,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Correctness-aware (CA) loss for post-hoc calibration (Liu, Wang, Zou, Zou and Zheng,
    "Optimizing Calibration by Gaining Aware of Prediction Correctness", arXiv 2404.13016, 2024).

    The calibrator's output confidence is pushed to 1 on correctly predicted samples and to 0 on
    wrong ones:

    .. math::

        \\ell_i = v_i\\,\\big(\\max_c p_{i,c} - \\mathbb 1[\\arg\\max_c z_{i,c} = y_i]\\big)^2,
        \\qquad p_i = \\mathrm{softmax}(z_i)

    ``logits`` are the *calibrated* logits (a temperature-scaled ``z / T``, say); the loss trains
    the calibrator, not the classifier. Correctness is that of ``logits``' arg-max (the first of
    tied maxima), which for an accuracy-preserving calibrator (temperature scaling) is the
    classifier's own prediction, as in the paper; it carries no gradient.

    With ``balanced=True`` (the official code, ``liuyvchi/Correctness-aware-calibration``,
    ``src/cal_metrics/temperature_scaling_CA.py``) correct and wrong samples count equally: ``v_i =
    n / (2 n_correct)`` for a correct sample and ``n / (2 n_wrong)`` for a wrong one (``n`` the
    samples not ignored), so the ``"mean"`` is the average of the mean error over correct samples
    and the mean error over wrong ones — the official code's weights ``1 − acc`` / ``acc`` with its
    normalisation. When every sample is correct (or every one wrong) ``v_i = 1`` (the official
    code divides by zero there). ``balanced=False`` is the plain mean squared error between
    confidence and correctness (``v_i = 1``).

    The paper feeds the calibrator features of transformed copies of each input (rotated,
    greyscaled, colour-jittered) to predict the temperature; that belongs to the calibrator's
    input, not to this loss.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"`` (each
          sample's ``v_i`` times its squared error); float32 for half inputs, else the input's
          dtype.

    Args:
        logits: calibrated logits ``(N, C)`` (or ``(N, C, d1, ...)``).
        target: class indices.
        balanced: balance correct and wrong samples as above; default True, the official code's
            training loop. Uncertain: the paper's written objective may be the plain mean
            (``balanced=False``); only the code was checked.
        weight: per-class weights on top of ``v_i``, weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_bool("balanced", balanced)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    z = flat.logits.to(flat.compute_dtype)
    if z.shape[0] == 0:
        return reduce_loss(z.sum(1), flat, weight, reduction)
    loss = _CorrectnessAware.apply(z, flat.target, flat.valid, balanced)
    return reduce_loss(loss, flat, weight, reduction)


class _CorrectnessAware(torch.autograd.Function):
    """Per-sample ``v (conf − c)²``, ``conf = p_pred``, with the gradient in closed form:
    ``∂ℓ/∂z = 2 v (conf − c) conf (e_pred − p)`` (the correctness ``c`` and the balancing ``v``
    are constants)."""

    @staticmethod
    def forward(ctx, z, target, valid, balanced):  # type: ignore[override]
        logp = torch.log_softmax(z, dim=1)
        pred = z.argmax(dim=1, keepdim=True)  # the first of tied maxima
        correct = (pred.squeeze(1) == target).to(z.dtype)
        conf = torch.exp(logp.gather(1, pred).squeeze(1))
        diff = conf - correct
        coef = 2 * diff * conf
        loss = diff.square()
        if balanced:
            n_correct = correct.sum() if valid is None else (correct * valid).sum()
            n = correct.new_tensor(correct.numel()) if valid is None else valid.sum().to(z.dtype)
            n_wrong = n - n_correct
            if bool((n_correct > 0) & (n_wrong > 0)):
                v = torch.where(correct > 0, n / (2 * n_correct), n / (2 * n_wrong))
                loss, coef = v * loss, v * coef
        ctx.save_for_backward(logp, pred, coef)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        logp, pred, coef = ctx.saved_tensors
        c = g * coef
        grad = torch.exp(logp).mul_(-c.unsqueeze(1))
        grad.scatter_add_(1, pred, c.unsqueeze(1))
        return grad, None, None, None


@register_loss(
    name="correctness-aware",
    function=correctness_aware_loss,
    family="calibration",
    description="CA: (max softmax − 1[prediction correct])², correct and wrong samples balanced",
    paper="Liu et al., arXiv 2024",
    uncertain=("balanced",),
)
class CorrectnessAwareLoss(WeightedLoss):
    """Module form of :func:`correctness_aware_loss`."""

    def __init__(
        self,
        *,
        balanced: bool = True,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_bool("balanced", balanced)
        self.balanced = balanced

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return correctness_aware_loss(
            logits,
            target,
            balanced=self.balanced,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )
