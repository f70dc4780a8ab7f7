"""Alternatives to cross-entropy for single-label classification: the comp-sum family
(Mao, Mohri & Zhong, ICML 2023), squentropy (Hui, Belkin & Wright, ICML 2023), the Z-loss
(de Brébisson & Vincent, 2016), the encouraging loss (Zhao et al., AAAI 2022), the sparse-softmax
loss (Sun et al., 2021) and the sparsemax loss (Martins & Astudillo, ICML 2016).

Losses that are a function of ``s = −log p_y`` alone (comp-sum, encouraging) are computed from
``torch.nn.functional.cross_entropy(reduction="none")``; the others have a written-out gradient
where autograd would keep several ``(M, C)`` buffers (on CPU a fresh ``(M, C)`` buffer costs
about as much as a pass over it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_finite_number, check_in_range, check_positive, expected
from ._base import first_order
from ._reduce import compute_dtype_for, reduce_loss
from ._registry import export_function, register_loss
from .robust import _flat, _FunctionLoss, _logits, _nll, _one_minus_p


# -------------------------------------------------------------------------------- comp-sum
def _check_tau(tau: Any) -> None:
    check_positive("tau", tau, allow_zero=True)


def comp_sum_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    tau: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The comp-sum losses (Mao, Mohri & Zhong, "Cross-Entropy Loss Functions: Theoretical
    Analysis and Applications", ICML 2023).

    .. math::

        \\ell_i = \\Phi^{\\tau}\\Big(\\sum_{y' \\neq y_i} e^{z_{i,y'} - z_{i,y_i}}\\Big),\\qquad
        \\Phi^{\\tau}(u) = \\begin{cases}
            \\frac{(1 + u)^{1-\\tau} - 1}{1 - \\tau} & \\tau \\neq 1 \\\\
            \\log(1 + u) & \\tau = 1 \\end{cases}

    With ``1 + u = 1/p_y`` this is ``(p_y^{τ−1} − 1)/(1 − τ)``: τ = 0 is the sum-exponential
    loss ``Σ_{y'≠y} e^{z_{y'} − z_y}``, τ = 1 cross-entropy, τ ∈ (1, 2] generalised
    cross-entropy with q = τ − 1 (τ = 2 is ``1 − p_y``, the MAE up to a factor 2); all of these
    are tested. Computed as ``expm1((1 − τ) s)/(1 − τ)`` with ``s = −log p_y``. For τ < 1 the loss
    grows like ``e^{(1−τ) s}``: at a margin of a few hundred (float32) it and its gradient are
    infinite, as the formula is.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        tau: τ ≥ 0. Default 1 (cross-entropy): the paper studies the family and compares several
            τ without recommending one, so the default is uncertain.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_tau(tau)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    s = _nll(flat)
    loss = s if tau == 1 else torch.expm1(s * (1.0 - tau)) / (1.0 - tau)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="comp-sum",
    function=comp_sum_loss,
    family="standard",
    description="comp-sum Φ^τ(Σ_{y'≠y} e^{z_y'−z_y}): sum-exp (τ=0), CE (1), GCE, 1 − p_y (2)",
    paper="Mao et al., ICML 2023",
    uncertain=("tau",),
)
class CompSumLoss(_FunctionLoss):
    """Module form of :func:`comp_sum_loss`."""

    _hyper = ("tau",)

    def __init__(
        self,
        *,
        tau: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_tau(tau)
        self.tau = tau

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(comp_sum_loss, logits, target)


# ------------------------------------------------------------------------------ squentropy
class _Squentropy(torch.autograd.Function):
    """``−log p_y + Σ_{j≠y} z_j² / (C − 1)`` per sample and its gradient.

    The sum of squares is ``‖z‖² − z_y²`` (a norm, no ``(M, C)`` buffer); where ``z_y²`` is more
    than half of ``‖z‖²`` that difference would cancel, and those rows are summed again with the
    target left out. The gradient of a row, ``p − e_y + 2 (z − z_y e_y)/(C − 1)``, is one softmax
    and one in-place pass.
    """

    @staticmethod
    def forward(ctx, x, idx):  # type: ignore[override]
        c = x.shape[1]
        s = F.cross_entropy(x, idx.view(-1), reduction="none")
        x_y = x.gather(1, idx).view(-1)
        total = torch.linalg.vector_norm(x, dim=1).square_()
        y2 = x_y.square()
        sq = total - y2
        dominant = (y2 > 0.5 * total).nonzero().view(-1)
        if dominant.numel():
            rows = x[dominant].scatter_(1, idx[dominant], 0.0)
            sq[dominant] = torch.linalg.vector_norm(rows, dim=1).square_()
        ctx.save_for_backward(x, idx, x_y)
        return s + sq / (c - 1)

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        x, idx, x_y = ctx.saved_tensors
        two = (2.0 / (x.shape[1] - 1)) * grad
        out = torch.softmax(x, dim=1).mul_(grad.unsqueeze(1))
        out.addcmul_(x, two.unsqueeze(1))
        out.scatter_add_(1, idx, (-grad - two * x_y).unsqueeze(1))
        return out, None


def squentropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Squentropy (Hui, Belkin & Wright, "Cut your Losses with Squentropy", ICML 2023):
    cross-entropy plus the average square loss over the incorrect classes.

    .. math::

        \\ell_i = -\\log p_{i,y_i} + \\frac{1}{C - 1} \\sum_{j \\neq y_i} z_{i,j}^2

    on the raw logits ``z`` (no softmax in the square term). It has no hyper-parameter.

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
    loss = _Squentropy.apply(_logits(flat), flat.target.unsqueeze(1))
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="squentropy",
    function=squentropy_loss,
    family="standard",
    description="cross-entropy + mean square of the wrong classes' logits Σ_{j≠y} z_j² / (C−1)",
    paper="Hui et al., ICML 2023",
)
class SquentropyLoss(_FunctionLoss):
    """Module form of :func:`squentropy_loss`."""

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(squentropy_loss, logits, target)


# ---------------------------------------------------------------------------------- Z-loss
class _ZLoss(torch.autograd.Function):
    """``softplus(a (b − ẑ_y)) / a`` with ``ẑ_y = (z_y − μ)/σ``, and its gradient.

    With ``d = z − μ``, ``σ = ‖d‖/√C`` and ``ℓ' = −σ(a (b − ẑ_y))`` (the logistic function):

        ∂ẑ_y/∂z_j = (δ_jy − 1/C)/σ − ẑ_y d_j / (C σ²),

    one ``(M, C)`` buffer forward (``d``) and one backward (the gradient). A row of equal logits
    (σ = 0, ẑ_y = 0/0) is given ẑ_y = 0 and the gradient with σ taken as 1: finite, and the
    loss there is shift- and scale-invariant's only choice (by symmetry).
    """

    @staticmethod
    def forward(ctx, x, idx, a, b):  # type: ignore[override]
        c = x.shape[1]
        d = x - x.mean(1, keepdim=True)
        d.sub_(d.mean(1, keepdim=True))  # the classic correction of a rounded mean (offsets)
        sigma = torch.linalg.vector_norm(d, dim=1) / math.sqrt(c)
        sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
        zy = d.gather(1, idx).view(-1) / sigma
        arg = (b - zy) * a
        ctx.save_for_backward(d, idx, sigma, zy, arg)
        ctx.a = a
        return F.softplus(arg) / a

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        d, idx, sigma, zy, arg = ctx.saved_tensors
        c = d.shape[1]
        lprime = -torch.sigmoid(arg) * grad  # dℓ/dẑ_y times the incoming gradient
        c1 = lprime / sigma
        c2 = lprime * zy / (c * sigma * sigma)
        out = torch.mul(d, c2.neg().unsqueeze(1)).sub_((c1 / c).unsqueeze(1))
        out.scatter_add_(1, idx, c1.unsqueeze(1))
        return out, None, None, None


def _check_z(a: Any, b: Any) -> None:
    check_positive("a", a)
    check_finite_number("b", b)


def z_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    a: float = 0.1,
    b: float = 10.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The Z-loss (de Brébisson and Vincent, "The Z-loss: a shift and scale invariant
    classification loss belonging to the Spherical Family", arXiv 1604.08859, 2016).

    .. math::

        \\mu_i = \\tfrac{1}{C} \\sum_k z_{i,k},\\quad
        \\sigma_i^2 = \\tfrac{1}{C} \\sum_k z_{i,k}^2 - \\mu_i^2,\\quad
        \\ell_i = \\frac{1}{a} \\mathrm{softplus}\\Big(a \\big(b - \\frac{z_{i,y_i} - \\mu_i}
        {\\sigma_i}\\big)\\Big)

    The target's z-score through a softplus: invariant to shifting and scaling the logits (the
    z-score is bounded by √(C − 1)). Not the "z-loss" regulariser ``λ (log Σ e^z)²`` of PaLM /
    T5. A row of equal logits (σ = 0) is given the z-score 0 (the paper does not define it).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        a: sharpness ``a > 0`` (a → ∞ is the hinge ``max(0, b − ẑ_y)``). Default 0.1, uncertain:
            the paper tunes ``a`` and ``b`` per task (they set which top-k error the loss
            favours) and gives no default; longtail's choice.
        b: location (the z-score beyond which the target counts as well ranked). Default 10,
            uncertain, as ``a``.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_z(a, b)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    loss = _ZLoss.apply(_logits(flat), flat.target.unsqueeze(1), float(a), float(b))
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="z-loss",
    function=z_loss,
    family="standard",
    description="Z-loss softplus(a(b − ẑ_y))/a of the target's z-score (shift/scale invariant)",
    paper="de Brébisson & Vincent, arXiv 2016",
    uncertain=("a", "b"),
)
class ZLoss(_FunctionLoss):
    """Module form of :func:`z_loss`."""

    _hyper = ("a", "b")

    def __init__(
        self,
        *,
        a: float = 0.1,
        b: float = 10.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_z(a, b)
        self.a, self.b = a, b

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(z_loss, logits, target)


# ---------------------------------------------------------------------------- encouraging
#: The official code clamps ``1 − p`` at this value in ``log(1 − p)`` (``cl_eps``); it matters
#: only for ``log_end = 1`` (the full bonus), where the bonus is otherwise unbounded below.
ENCOURAGING_EPS = 1e-5


def _check_encouraging(log_end: Any, bonus_weight: Any) -> None:
    check_in_range("log_end", log_end, 0.0, 1.0)
    check_positive("bonus_weight", bonus_weight, allow_zero=True)


def encouraging_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    log_end: float = 0.75,
    bonus_weight: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The encouraging loss (Zhao et al., "Well-classified Examples are Underestimated in
    Classification with Deep Neural Networks", AAAI 2022): cross-entropy plus a bonus that keeps
    rewarding well-classified examples.

    .. math::

        \\ell_i = -\\log p_{i,y_i} + \\rho\\, B(p_{i,y_i}),\\qquad
        B(p) = \\begin{cases} \\log(1 - p) & p \\le \\mathrm{LE} \\\\
            \\frac{p - \\mathrm{LE}}{\\mathrm{LE} - 1} + \\log(1 - \\mathrm{LE}) & p > \\mathrm{LE}
            \\end{cases}

    ``log(1 − p)`` is the full bonus; the *conservative* bonus continues it past ``p = LE`` by
    its tangent, so the loss stays bounded below. As the official code
    (``lancopku/well-classified-examples-are-underestimated``, ``EncouragingLoss``), with
    ``LE = 1`` the full bonus is taken with ``1 − p`` clamped at 1e-5. ``bonus_weight`` (ρ) = 0 is
    cross-entropy (tested).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        log_end: LE in [0, 1], where the log bonus ends; default 0.75, the official code's and
            its ImageNet scripts' (its README: "0.75 for high accuracy scenarios", lower for low
            accuracy; 1 is the full bonus). The paper uses several, so the default is uncertain.
        bonus_weight: ρ ≥ 0, the bonus's factor; default 1, the paper's loss (the official
            code's ``bonus_rho``).
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_encouraging(log_end, bonus_weight)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    s = _nll(flat)
    loss = s
    if bonus_weight != 0:
        u = _one_minus_p(s)  # 1 − p_y, exact near p_y = 1
        if log_end < 1:
            floor = 1.0 - log_end  # the log branch is taken only where u ≥ 1 − LE
            tangent = (log_end - torch.exp(-s)) / floor + math.log(floor)
            bonus = torch.where(u < floor, tangent, torch.log(u.clamp_min(floor)))
        else:
            bonus = torch.log(u.clamp_min(ENCOURAGING_EPS))
        loss = s + bonus_weight * bonus
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="encouraging",
    function=encouraging_loss,
    family="standard",
    description="encouraging loss −log p_y + ρ·log(1 − p_y), the bonus's tangent past p_y = LE",
    paper="Zhao et al., AAAI 2022",
    uncertain=("log_end",),
)
class EncouragingLoss(_FunctionLoss):
    """Module form of :func:`encouraging_loss`."""

    _hyper = ("log_end", "bonus_weight")

    def __init__(
        self,
        *,
        log_end: float = 0.75,
        bonus_weight: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_encouraging(log_end, bonus_weight)
        self.log_end, self.bonus_weight = log_end, bonus_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(encouraging_loss, logits, target)


# ------------------------------------------------------------------------- sparse-softmax
class _SparseSoftmax(torch.autograd.Function):
    """``log Σ_{j∈Ω} e^{z_j} − z_y`` with ``Ω`` the k largest logits and the target, and its
    gradient ``softmax over Ω − e_y``.

    The value depends only on the k largest *values* (``torch.topk``), not on which of several
    equal logits topk picked. So does the gradient: where logits equal to the k-th largest are
    left out of the top k (a tie across the boundary, seen as ``v_{k+1} = v_k``), the weight of
    the ``t`` boundary slots is shared equally by all ``m`` logits of that value (each gets
    ``t/m`` of one), a subgradient that does not depend on the logits' memory layout.
    """

    @staticmethod
    def forward(ctx, x, idx, k):  # type: ignore[override]
        vals, inds = torch.topk(x, k + 1, dim=1)  # one more: a tie across the boundary shows
        beyond = vals[:, k]
        vals, inds = vals[:, :k], inds[:, :k]
        thr = vals[:, k - 1 :]
        x_y = x.gather(1, idx)
        outside = x_y < thr
        # in units of z_y: the log-sum-exp of the shifted values is the loss itself, precise
        # however large a common offset of the logits (as cross-entropy's max − z_y is)
        shifted = torch.cat([vals - x_y, torch.where(outside, 0.0, -math.inf)], dim=1)
        loss = torch.logsumexp(shifted, dim=1)
        tied = (beyond == thr.view(-1)).nonzero().view(-1)
        ctx.save_for_backward(x, idx, shifted, inds, thr, loss, tied)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        x, idx, shifted, inds, thr, loss, tied = ctx.saved_tensors
        k = inds.shape[1]
        g = grad.unsqueeze(1)
        q = torch.exp(shifted - loss.unsqueeze(1)) * g  # the softmax over Ω ∪ {y}, times g
        out = torch.zeros_like(x).scatter_(1, inds, q[:, :k])
        if tied.numel():
            eq = x[tied] == thr[tied]
            slots = (x[tied].gather(1, inds[tied]) == thr[tied]).sum(1, keepdim=True)
            slots = slots.to(x.dtype)
            share = slots / eq.sum(1, keepdim=True) * q[tied, k - 1 : k]
            out[tied] = torch.where(eq, share, out[tied])
        out.scatter_add_(1, idx, q[:, k:] - g)  # q_y where y is outside the top k (else 0)
        return out, None, None


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise expected("k", "an integer >= 1", repr(k))


def sparse_softmax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    k: int = 10,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The sparse-softmax loss (Sun et al., "Sparse-softmax: A Simpler and Faster Alternative
    Softmax Transformation", arXiv 2112.12433, 2021): cross-entropy over the k largest logits.

    .. math::

        \\ell_i = \\log \\sum_{j \\in \\Omega_k(z_i) \\cup \\{y_i\\}} e^{z_{i,j}} - z_{i,y_i}

    ``Ω_k`` is the set of the k largest logits; the sparse-softmax gives those classes
    ``e^{z_j}/Σ_Ω e^{z}`` and every other class 0. The paper writes the loss with ``Ω_k``; where
    the target is not among the k largest, longtail adds it to the set (longtail's reading of
    that case), so that the loss is always the cross-entropy of the softmax restricted to
    ``Ω_k ∪ {y}`` and the target is in its own normaliser. ``k ≥ C`` is cross-entropy (tested).
    Ties at the k-th value change no value; their gradient is shared equally (see
    ``_SparseSoftmax``).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, C ≥ 2.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: unnormalised scores.
        target: class indices.
        k: how many of the largest logits the softmax keeps, an integer ≥ 1. Default 10,
            uncertain: the paper tunes k per task (it targets problems of over 100 classes) and
            gives no default; longtail's choice.
        weight: per-class weights ``(C,)``, with torch's weighted mean ``Σ w_y ℓ / Σ w_y``.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy`` (``"mean"`` of an
            empty batch is a 0 attached to the graph).
    """
    _check_k(k)
    flat = _flat(logits, target, weight, ignore_index, reduction)
    if k >= flat.num_classes:
        loss = _nll(flat)
    else:
        loss = _SparseSoftmax.apply(_logits(flat), flat.target.unsqueeze(1), k)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="sparse-softmax",
    function=sparse_softmax_loss,
    family="standard",
    description="sparse-softmax: cross-entropy over the k largest logits and the target",
    paper="Sun et al., arXiv 2021",
    uncertain=("k",),
)
class SparseSoftmaxLoss(_FunctionLoss):
    """Module form of :func:`sparse_softmax_loss`."""

    _hyper = ("k",)

    def __init__(
        self,
        *,
        k: int = 10,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_k(k)
        self.k = k

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(sparse_softmax_loss, logits, target)


# ------------------------------------------------------------------------------ sparsemax
#: Newton (Michelot) steps :func:`_sparsemax_threshold` takes before it falls back to the sort.
SPARSEMAX_STEPS = 100


def _sparsemax_threshold(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, τ)`` for the rows of ``x`` (M, C): ``z = x − max_j x_j`` (a fresh buffer the caller
    may overwrite) and ``τ ∈ [−1, −1/C]`` with ``sparsemax(x) = max(z − τ, 0)``. In these shifted
    coordinates nothing rounds to the ulp of a large common offset of the logits.

    Newton's method on the convex, decreasing, piecewise-linear ``f(τ) = Σ_j (z_j − τ)_+ − 1``
    from a lower bound of its root: the step ``τ ← τ + f(τ)/|S(τ)|`` with
    ``S(τ) = {j : z_j > τ}`` is Michelot's (1986) iteration ``τ ← (Σ_S z_j − 1)/|S|``. From below,
    each step stays below the root (the tangent of a convex function lies under it) and shrinks
    ``S``; it stops, exactly, when ``S`` stops changing: a handful of passes (measured: 4 to 12
    for C from 10 to 10⁵) where the sort of Martins & Astudillo's algorithm costs some 70
    cross-entropies on CPU. If ``S`` still moves after :data:`SPARSEMAX_STEPS` steps
    (floating-point ties within rounding of τ), the sort gives τ.
    """
    z = x - x.amax(1, keepdim=True)
    n = x.shape[1]
    # two lower bounds of τ: z_max − 1 = −1, and the mean's (Σ z − 1)/C
    tau = ((z.sum(1, keepdim=True) - 1) / n).clamp_min_(-1.0)
    buf = torch.empty_like(z)
    sign = torch.empty_like(z)
    count = None
    for _ in range(SPARSEMAX_STEPS):
        torch.sub(z, tau, out=buf).relu_()
        new_count = torch.sign(buf, out=sign).sum(1, keepdim=True)  # |S(τ)|, ≥ 1
        tau = tau + (buf.sum(1, keepdim=True) - 1) / new_count
        if count is not None and torch.equal(new_count, count):
            return z, tau
        count = new_count
    zs = torch.sort(z, dim=1, descending=True).values
    cs = zs.cumsum(1)
    ks = torch.arange(1, n + 1, device=x.device, dtype=x.dtype)
    k = (1 + ks * zs > cs).sum(1, keepdim=True)
    return z, (cs.gather(1, k - 1) - 1) / k


class _Sparsemax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        z, tau = _sparsemax_threshold(x)
        p = z.sub_(tau).relu_()
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        (p,) = ctx.saved_tensors
        support = p > 0
        g = torch.where(support, grad, torch.zeros_like(grad))
        mean = g.sum(1, keepdim=True) / support.sum(1, keepdim=True)
        return torch.where(support, grad - mean, torch.zeros_like(grad))


@export_function
def sparsemax(logits: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Sparsemax (Martins & Astudillo, ICML 2016): the Euclidean projection of ``logits`` onto the
    probability simplex along ``dim``, ``max(z − τ(z), 0)``; sparse, unlike the softmax.

    Differentiable (its Jacobian is ``diag(s) − s sᵀ/|S|`` on the support ``S``, indicator
    ``s``). Half inputs are computed and returned in float32.

    Example:
        >>> import torch, longtail as lt
        >>> lt.functional.sparsemax(torch.tensor([[1.0, 0.5, -1.0]])).tolist()
        [[0.75, 0.25, 0.0]]
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    x = logits.to(compute_dtype_for(logits.dtype)).movedim(dim, -1)
    shape = x.shape
    if shape[-1] == 0:
        raise expected("logits", f"of at least one entry along dim {dim}", tuple(logits.shape))
    out = _Sparsemax.apply(x.reshape(-1, shape[-1]))
    return out.reshape(shape).movedim(-1, dim)


class _SparsemaxLoss(torch.autograd.Function):
    """``L = −z_y + ½ Σ_{j∈S} (z_j² − τ²) + ½`` per sample, gradient ``sparsemax(z) − e_y``.

    In the shifted coordinates of :func:`_sparsemax_threshold` (``z = x − max x``,
    ``p = (z − τ)_+``, ``Σ p = 1``): ``Σ_S (z_j² − τ²) = Σ_j p_j (z_j + τ) = ‖p‖² + 2τ``, so
    ``L = ½‖p‖² + τ − z_y + ½`` — sums of small numbers, shift-invariant as L is.
    """

    @staticmethod
    def forward(ctx, x, idx):  # type: ignore[override]
        z, tau = _sparsemax_threshold(x)
        z_y = z.gather(1, idx).view(-1)
        p = z.sub_(tau).relu_()
        half_sq = torch.linalg.vector_norm(p, dim=1).square_().mul_(0.5)
        ctx.save_for_backward(p, idx)
        return (half_sq + tau.view(-1) + 0.5 - z_y).clamp_min_(0.0)

    @staticmethod
    @first_order
    def backward(ctx, grad):  # type: ignore[override]
        p, idx = ctx.saved_tensors
        out = p * grad.unsqueeze(1)
        out.scatter_add_(1, idx, grad.neg().unsqueeze(1))
        return out, None


def sparsemax_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The sparsemax loss (Martins & Astudillo, "From Softmax to Sparsemax: A Sparse Model of
    Attention and Multi-Label Classification", ICML 2016).

    .. math::

        \\ell_i = -z_{i,y_i} + \\tfrac12 \\sum_{j \\in S(z_i)} \\big(z_{i,j}^2 - \\tau(z_i)^2\\big)
            + \\tfrac12,\\qquad
        \\nabla_{z_i} \\ell_i = \\mathrm{sparsemax}(z_i) - e_{y_i}

    ``S(z)`` is the support of ``sparsemax(z) = max(z − τ(z), 0)`` (see :func:`sparsemax`). The
    sparsemax analogue of the logistic loss: convex, zero once ``z_y`` exceeds every other logit
    by 1, and for two classes the modified Huber loss of the margin (tested). It has no
    hyper-parameter. ``τ`` is found by Newton (Michelot) steps rather than the paper's sort,
    which on CPU costs tens of cross-entropies; the value is the same (tested against the sort).

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
    loss = _SparsemaxLoss.apply(_logits(flat), flat.target.unsqueeze(1))
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="sparsemax",
    function=sparsemax_loss,
    family="standard",
    description="sparsemax loss, gradient sparsemax(z) − e_y: zero at a margin of 1",
    paper="Martins & Astudillo, ICML 2016",
)
class SparsemaxLoss(_FunctionLoss):
    """Module form of :func:`sparsemax_loss`."""

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._call(sparsemax_loss, logits, target)
