"""Label-distributionally robust losses (LDR-KL, ALDR-KL), one-vs-rest losses (OVR, SOVR) and the
harmonic head.

The harmonic loss (Baek et al. 2025) is cross-entropy on logits ``−n log d_c``, ``d_c`` the
distance from a feature vector to a learned class centre: the centres are parameters of the model,
not of the loss, and the loss's input is a distance, not a logit. It is therefore given here as the
head's function, :func:`harmonic_logits`, to train with the registered ``"ce"``; it is not a
registered loss (the loss contract feeds every loss real-valued logits, which distances are not).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import check_choice, check_in_range, check_positive, expected
from ._adjusted import adjusted_cross_entropy
from ._base import WeightedLoss, first_order
from ._reduce import FlatInputs, flatten_inputs, reduce_loss
from ._registry import export_function, register_loss

#: How LDR-KL / ALDR-KL normalise the scores before the loss: the official code's two ways, or
#: none (the paper's formula on the raw logits).
NORMALIZATIONS = ("softplus", "l1", None)

_LOG_SOFTPLUS_CUT = -20.0  # below, log softplus(z) = z − e^z / 2 to within float64 rounding
_L1_FLOOR = 1e-12  # the smallest mean |z| "l1" divides by: a row of zeros stays zeros


_SOFTPLUS_UNDERFLOW = 1e-30  # a row's mean softplus below this: every logit under about −69


def _log_softplus(z: torch.Tensor) -> torch.Tensor:
    hi = z.clamp(min=_LOG_SOFTPLUS_CUT)
    lo = z.clamp(max=_LOG_SOFTPLUS_CUT)
    return torch.where(z > _LOG_SOFTPLUS_CUT, torch.log(F.softplus(hi)), lo - torch.exp(lo) / 2)


def _normalize(z: torch.Tensor, how: str | None):
    """The scores the LDR losses see, ``z̃ = base / scale`` for ``z`` (M, C) in the compute
    dtype: ``base`` (``z`` itself, or a fresh buffer with ``"softplus"``), each row's ``scale``
    (``(M, 1)``: mean |z|, or mean softplus; None for raw scores) and the rows where the scale is
    special (floored, or past softplus underflow: their ``base`` is already ``z̃``, their scale
    1), or None when there are none."""
    if how is None:
        return z, None, None
    if how == "l1":
        raw = torch.linalg.vector_norm(z, 1, dim=1, keepdim=True).div_(z.shape[1])
        floor = raw < _L1_FLOOR  # a row of (near) zeros: divided by the floor, a constant
        return z, raw.clamp_min(_L1_FLOOR), floor if bool(floor.any()) else None
    sp = F.softplus(z)
    scale = sp.mean(1, keepdim=True)
    tiny = scale < _SOFTPLUS_UNDERFLOW
    if not bool(tiny.any()):
        return sp, scale, None
    # those rows in log space: softplus(z) / mean softplus(z) = exp(log sp − log mean sp)
    log_sp = _log_softplus(z)
    log_mean = torch.logsumexp(log_sp, 1, keepdim=True) - math.log(z.shape[1])
    base = torch.where(tiny, torch.exp(log_sp - log_mean), sp)
    return base, torch.where(tiny, torch.ones_like(scale), scale), tiny


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Σ_k a_ik b_ik`` per row, ``(M, 1)``, without an ``(M, C)`` temporary."""
    return torch.linalg.vecdot(a, b, dim=1).unsqueeze(1)


def _log_softmax_(x: torch.Tensor) -> torch.Tensor:
    """``log_softmax(x, 1)`` written over ``x``, a fresh row-major ``(M, C)`` buffer we own (one
    ``(M, C)`` allocation fewer, as longtail's fused cross-entropy does on CPU; elsewhere, or for
    another layout, an ordinary out-of-place call)."""
    if x.device.type == "cpu" and x.is_contiguous():
        return torch._log_softmax(x, 1, False, out=x)
    return torch.log_softmax(x, dim=1)


class _LDRCrossEntropy(torch.autograd.Function):
    """``ce_i = CE((z̃_i − c e_{y_i}) / λ_i, y_i)`` on the normalised scores ``z̃``, with the
    closed-form backward ``(softmax − e_y) / λ_i`` pulled back through the normalisation; with
    ``alpha``, first ALDR's closed-form step ``λ_i = λ₀ − λ₀ KL(softmax(z̃/λ_i^old) ‖ 1/C) /
    (α log C)`` (returned, without gradient). Returns ``(ce, λ)``.

    Few ``(M, C)`` buffers (on CPU each fresh one costs its page faults as much as a pass over
    it): the log-probabilities are written over the adjusted scores, and the backward needs only
    them, since ``Σ_k (p − e_y)_k a_k = Σ_k (p − e_y)_k log p_k`` (the two differ by a row
    constant, and ``p − e_y`` sums to 0)."""

    @staticmethod
    def forward(ctx, logits, target, margin, lam, how, alpha, lam_old):  # type: ignore[override]
        ctype = torch.promote_types(logits.dtype, torch.float32)
        z = logits.to(ctype)
        base, scale, special = _normalize(z, how)  # z̃ = base / scale
        idx = target.unsqueeze(1)
        c = z.shape[1]
        if alpha is None and how == "softplus" and base.is_contiguous():
            buf = base  # softplus's fresh buffer: scaled and log-softmaxed in place
        else:
            buf = torch.empty(z.shape, dtype=ctype, device=z.device)  # row-major, ours
        if alpha is None:
            lam_row = torch.full((z.shape[0],), lam, dtype=ctype, device=z.device)
        else:
            first = lam_old.unsqueeze(1) if scale is None else lam_old.unsqueeze(1) * scale
            logq = _log_softmax_(torch.div(base, first, out=buf))
            work = torch.exp(logq)  # q, then q log q
            kl = work.mul_(logq).sum(1).add_(math.log(c))
            del work, logq
            lam_row = lam - lam * kl / (alpha * math.log(c))
        inv = lam_row.reciprocal().unsqueeze(1)
        mult = inv if scale is None else inv / scale
        a = torch.mul(base, mult, out=buf)  # (z̃ − c e_y) / λ once the margin is in
        del base
        if margin:
            a.scatter_add_(1, idx, inv * -margin)
        logp = _log_softmax_(a)
        ce = logp.gather(1, idx).squeeze(1).neg_()
        ctx.save_for_backward(logp, target, inv, z, scale, special)
        ctx.how, ctx.margin, ctx.in_dtype = how, margin, logits.dtype
        ctx.mark_non_differentiable(lam_row)
        return ce, lam_row

    @staticmethod
    @first_order
    def backward(ctx, grad_ce, grad_lam):  # type: ignore[override]
        logp, target, inv, z, scale, special = ctx.saved_tensors
        idx = target.unsqueeze(1)
        s = torch.softmax(logp, dim=1)  # ∂ce/∂z̃ = (softmax − e_y) / λ
        s.scatter_add_(1, idx, s.new_full((s.shape[0], 1), -1.0))
        coef = inv * grad_ce.to(s.dtype).unsqueeze(1)
        if ctx.how is None:
            return s.mul_(coef).to(ctx.in_dtype), None, None, None, None, None, None
        # (1/C) Σ_k s_k z̃_k with z̃ = λ a + c e_y, and Σ_k s_k a_k = Σ_k s_k log p_k
        dot = _rowdot(s, logp).div_(inv)
        if ctx.margin:
            dot.add_(s.gather(1, idx), alpha=ctx.margin)
        dot.div_(z.shape[1])
        if ctx.how == "l1":  # z̃ = z / S, S = mean |z|: (s − sign(z) dot) / S
            if special is not None:
                dot.masked_fill_(special, 0.0)  # S clamped to the floor: a constant
            grad = s.sub_(torch.sign(z).mul_(dot))
            return grad.mul_(coef / scale).to(ctx.in_dtype), None, None, None, None, None, None
        # z̃ = sp / M, sp = softplus(z), M = mean sp: σ(z)/M ⊙ (s − dot)
        factor = torch.sigmoid(z)
        if special is not None:  # M underflowed: σ(z)/M = z̃ σ(z)/sp(z), in log space
            zt = torch.exp(_log_softplus(z) - torch.logsumexp(_log_softplus(z), 1, keepdim=True))
            zt.mul_(z.shape[1])
            ratio = torch.exp(F.logsigmoid(z) - _log_softplus(z)).mul_(zt)
            factor = torch.where(special, ratio, factor / scale)
            return s.sub_(dot).mul_(factor).mul_(coef).to(ctx.in_dtype), *([None] * 6)
        grad = s.sub_(dot).mul_(factor)
        return grad.mul_(coef / scale).to(ctx.in_dtype), None, None, None, None, None, None


def _check_ldr(margin: float, lam: float, normalize: Any) -> None:
    check_positive("margin", margin, allow_zero=True)
    check_positive("lam", lam)
    check_choice("normalize", normalize, NORMALIZATIONS)


# ------------------------------------------------------------------------------------ LDR-KL
def _ldr_per_sample(flat: FlatInputs, margin: float, lam: float, normalize: Any) -> torch.Tensor:
    # λ log(1/C Σ_k exp((c 1[k≠y] + z_k − z_y)/λ)) = λ (CE((z − c e_y)/λ, y) − log C)
    if normalize is None:  # longtail's fused cross-entropy does it all
        m = None if not margin else torch.full_like(flat.target, margin, dtype=flat.compute_dtype)
        ce = adjusted_cross_entropy(flat.logits, flat.target, scale=1.0 / lam, margin=m)
    else:
        ce, _ = _LDRCrossEntropy.apply(
            flat.logits, flat.target, float(margin), float(lam), normalize, None, None
        )
    return lam * (ce - math.log(flat.num_classes))


def ldr_kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 0.1,
    lam: float = 10.0,
    normalize: str | None = "softplus",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """LDR-KL, the label-distributionally robust loss with a KL ball (Zhu, Ying, Yang, "Label
    Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML 2023).

    .. math::

        \\ell = \\max_{p \\in \\Delta_C} \\sum_k p_k\\,(c\\,[k \\ne y] + z_k - z_y)
                 - \\lambda\\, \\mathrm{KL}(p \\,\\|\\, 1/C)
              = \\lambda \\log \\frac{1}{C} \\sum_k
                 \\exp\\!\\Big(\\frac{c\\,[k \\ne y] + z_k - z_y}{\\lambda}\\Big)

    the worst case over label distributions near the uniform one. Its limits (the paper's):
    ``λ → 0`` is the Crammer-Singer hinge ``max(0, max_{k≠y} c + z_k − z_y)``, ``λ → ∞`` the
    mean margin ``(1/C) Σ_k (c [k≠y] + z_k − z_y)``, and ``λ = 1, c = 0`` cross-entropy minus
    ``log C`` (the tests check all three). Computed as ``λ (CE((z − c e_y)/λ, y) − log C)`` with
    longtail's fused cross-entropy.

    The paper writes the loss on the model's scores; its official code (``LDRLoss_V1``,
    ``Optimization-AI/ICML2023_LDR``, which produced its results) first normalises them,
    ``z ← softplus(z) / mean_k softplus(z_k)``. longtail follows the code by default
    (``normalize="softplus"``); ``normalize=None`` is the formula on the raw logits (and what
    the limits above are stated for).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices.
        margin: ``c``, the margin of the wrong classes; default 0.1, the official experiments'
            ``--margin`` (the class ``LDRLoss_V1`` defaults to 2, unused).
        lam: ``λ``, the KL ball's weight (a temperature); default 10, the official experiments'
            ``parameter_set = [10]`` (a grid {0.1, 1, 10} is commented out beside it).
        normalize: ``"softplus"`` (the official LDR code, the default), ``"l1"``
            (``z / mean_k |z_k|``, the official ALDR code) or ``None`` (the paper's formula).
        weight: per-class weights; weighted mean as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_ldr(margin, lam, normalize)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    return reduce_loss(_ldr_per_sample(flat, margin, lam, normalize), flat, weight, reduction)


@register_loss(
    name="ldr-kl",
    function=ldr_kl_loss,
    family="robust-to-noise",
    description="LDR-KL: λ log mean_k exp((c[k≠y] + z_k − z_y)/λ), worst case over a KL ball",
    paper="Zhu et al., ICML 2023",
)
class LDRKLLoss(WeightedLoss):
    """Module form of :func:`ldr_kl_loss`."""

    def __init__(
        self,
        *,
        margin: float = 0.1,
        lam: float = 10.0,
        normalize: str | None = "softplus",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_ldr(margin, lam, normalize)
        self.margin = margin
        self.lam = lam
        self.normalize = normalize

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ldr_kl_loss(
            logits,
            target,
            margin=self.margin,
            lam=self.lam,
            normalize=self.normalize,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ----------------------------------------------------------------------------------- ALDR-KL
def _check_aldr(margin: float, lam: float, alpha: float, normalize: Any) -> None:
    _check_ldr(margin, lam, normalize)
    check_positive("alpha", alpha)
    if alpha <= 1:
        raise expected("alpha", "a number > 1 (so that every λ_i stays > 0)", repr(alpha))


def _aldr(
    logits, target, margin, lam, alpha, normalize, lambdas, weight, ignore_index, reduction
) -> tuple[torch.Tensor, torch.Tensor, FlatInputs]:
    """The ALDR-KL loss and each entry's new λ (flat, (M,))."""
    _check_aldr(margin, lam, alpha, normalize)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction, min_classes=2
    )
    ctype = flat.compute_dtype
    log_c = math.log(flat.num_classes)
    if lambdas is None:
        lam_old = torch.full_like(flat.target, lam, dtype=ctype)
    else:
        lam_old = torch.as_tensor(lambdas).to(device=flat.logits.device, dtype=ctype)
        if lam_old.dim() == 0:
            lam_old = lam_old.expand(flat.target.shape)
        elif lam_old.numel() != flat.target.numel():
            raise expected(
                "lambdas",
                f"one λ per entry of target (shape {flat.batch_shape}) or None",
                f"shape {tuple(lam_old.shape)}",
            )
        lam_old = lam_old.reshape(-1)
        if not bool((lam_old > 0).all()) or not bool(torch.isfinite(lam_old).all()):
            raise expected("lambdas", "finite and > 0", lam_old[:5].tolist())
    # the closed-form λ step (no gradient: the official code detaches it), then
    # λ_i (CE((z̃ − c e_y)/λ_i, y) − log C) minus the penalty at the new λ_i
    ce, lam_new = _LDRCrossEntropy.apply(
        flat.logits, flat.target, float(margin), float(lam), normalize, float(alpha), lam_old
    )
    penalty = (alpha * log_c / (2 * lam)) * (lam_new - lam).square()
    loss = lam_new * (ce - log_c) - penalty
    return reduce_loss(loss, flat, weight, reduction), lam_new, flat


def aldr_kl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    margin: float = 0.1,
    lam: float = 10.0,
    alpha: float = 2.0,
    normalize: str | None = "l1",
    lambdas: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """ALDR-KL, the adaptive label-distributionally robust loss (Zhu, Ying, Yang, "Label
    Distributionally Robust Losses for Multi-class Classification: Consistency, Robustness and
    Adaptivity", ICML 2023): LDR-KL with a λ per sample, itself maximised over.

    .. math::

        \\ell_i = \\max_{\\lambda_i}\\; \\max_{p \\in \\Delta_C}
            \\sum_k p_k (c [k \\ne y] + z_k - z_y) - \\lambda_i \\mathrm{KL}(p \\| 1/C)
            - \\frac{\\alpha \\log C}{2 \\lambda_0} (\\lambda_i - \\lambda_0)^2

    solved, as the official code (``ALDRLoss_V1``) does, by one closed-form step per visit of a
    sample: ``p = softmax(z / λ_i^old)``, ``λ_i = λ₀ − λ₀ KL(p ‖ 1/C) / (α log C)`` (the maximiser
    over λ for that ``p``, in ``[λ₀ (1 − 1/α), λ₀]``), then the loss at that ``λ_i``:
    ``λ_i log (1/C) Σ_k exp((c [k≠y] + z_k − z_y)/λ_i) − (α log C / 2λ₀)(λ_i − λ₀)²``. The new
    ``λ_i`` is a constant of the backward (the code detaches it; ``stop_gradient`` in the
    registry). Two details of the code are not copied: its ``+ 1e-5`` on ``p`` before the log
    (the KL is taken from ``log_softmax`` here, exact without it), and its hard-coded CUDA
    device (every tensor here follows the logits). ``p`` is the code's ``softmax(z/λ)``,
    without the margin.

    **State.** ``lambdas`` is each entry's current ``λ_i`` (the state the code keeps per
    training sample; ``None``: ``λ₀`` for every entry, a sample's first visit). The function
    does not update it; :func:`aldr_kl_lambdas` gives the new ``λ_i``, and the module keeps a
    per-sample table when given one (see :class:`ALDRKLLoss`). With ``α → ∞`` every ``λ_i``
    stays ``λ₀`` and the penalty vanishes: LDR-KL (the tests check it).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - lambdas: the target's shape (or a scalar), > 0.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices.
        margin: ``c``; default 0.1, the official experiments' ``--margin``.
        lam: ``λ₀``; default 10, the official experiments' ``parameter_set = [10]``.
        alpha: ``α > 1``; default 2, the official experiments' ``--alpha``.
        normalize: the scores' normalisation: ``"l1"`` (``z / mean_k |z_k|``, the official ALDR
            code's default), ``"softplus"`` (its ``softplus=True``, used for CIFAR-100) or
            ``None`` (the paper's formula on the raw logits).
        lambdas: the entries' current ``λ_i`` (see State); default None (``λ₀``).
        weight: per-class weights; weighted mean as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    loss, _, _ = _aldr(
        logits, target, margin, lam, alpha, normalize, lambdas, weight, ignore_index, reduction
    )
    return loss


@export_function
def aldr_kl_lambdas(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    lam: float = 10.0,
    alpha: float = 2.0,
    normalize: str | None = "l1",
    lambdas: torch.Tensor | None = None,
) -> torch.Tensor:
    """The new per-entry ``λ_i`` of :func:`aldr_kl_loss` (the target's shape, no gradient):
    ``λ₀ − λ₀ KL(softmax(z/λ_i^old) ‖ 1/C) / (α log C)``. Keep it per training sample and pass it
    back as ``lambdas`` the next time the sample is seen, as the official code does."""
    _, lam_new, flat = _aldr(
        logits, target, 0.0, lam, alpha, normalize, lambdas, None, -100, "none"
    )
    return lam_new.reshape(flat.batch_shape)


@register_loss(
    name="aldr-kl",
    function=aldr_kl_loss,
    family="robust-to-noise",
    description="ALDR-KL: LDR-KL with a per-sample λ_i maximised in closed form (adaptive)",
    paper="Zhu et al., ICML 2023",
    stop_gradient="the per-sample λ_i (the official code detaches it)",
)
class ALDRKLLoss(WeightedLoss):
    """Module form of :func:`aldr_kl_loss`, with the per-sample ``λ`` state of the official code.

    ``lambdas`` here is the per-*sample* table (a buffer, so ``.to()``, ``state_dict()`` and DDP
    carry it): a 1-D tensor with one ``λ`` per training sample, e.g.
    ``torch.full((len(train_set),), 10.0)``. Call the module with the samples' dataset indices,
    ``crit(logits, target, index)``: it uses ``lambdas[index]`` as the entries' current ``λ_i``
    and stores their new ones (ignored entries keep theirs). Without ``index`` (or without a
    table, the default), every entry starts from ``λ₀``, as a first visit.
    """

    def __init__(
        self,
        *,
        margin: float = 0.1,
        lam: float = 10.0,
        alpha: float = 2.0,
        normalize: str | None = "l1",
        lambdas: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_aldr(margin, lam, alpha, normalize)
        self.margin = margin
        self.lam = lam
        self.alpha = alpha
        self.normalize = normalize
        table = None
        if lambdas is not None:
            table = torch.as_tensor(lambdas).detach().to(torch.float32).clone()
            if table.dim() != 1 or not bool((table > 0).all()):
                raise expected("lambdas", "a 1-D table of λ > 0, one per training sample", table)
        self.register_buffer("lambdas", table)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        t = state_dict.get(prefix + "lambdas")
        if t is not None and (self.lambdas is None or self.lambdas.shape != t.shape):
            self.lambdas = torch.empty(t.shape, dtype=t.dtype, device=t.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        current = None
        if index is not None:
            if self.lambdas is None:
                raise expected(
                    "lambdas",
                    "a per-sample table to look `index` up in (build the loss with "
                    "lambdas=torch.full((num_samples,), lam))",
                    "None",
                )
            index = torch.as_tensor(index, device=self.lambdas.device)
            if index.shape != target.shape:
                raise expected("index", f"of the target's shape {tuple(target.shape)}", index.shape)
            current = self.lambdas[index]
        loss, lam_new, flat = _aldr(
            logits,
            target,
            self.margin,
            self.lam,
            self.alpha,
            self.normalize,
            current,
            self.weight,
            self.ignore_index,
            self.reduction,
        )
        if index is not None:
            idx = index.reshape(-1)
            new = lam_new.to(self.lambdas.dtype)
            if flat.valid is not None:
                idx, new = idx[flat.valid], new[flat.valid]
            self.lambdas[idx] = new.detach()
        return loss


# ------------------------------------------------------------------------------- OVR and SOVR
def _ovr_rows(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``softplus(−z_y) + Σ_{k≠y} softplus(z_k)``, the target term taken directly (no
    cancellation of ``softplus(z_y) − z_y`` for a confident sample)."""
    sp = F.softplus(z)
    idx = target.unsqueeze(1)
    zy = z.gather(1, idx).squeeze(1)
    return sp.sum(1) - sp.gather(1, idx).squeeze(1) + F.softplus(-zy)


class _SwitchedOVR(torch.autograd.Function):
    """Per-row one-vs-rest loss or cross-entropy. ``switch`` None: one-vs-rest for every row;
    else ``(k, valid)``: one-vs-rest for the ``k`` rows of smallest logit margin
    ``z_y − max_{k≠y} z_k`` among the ``valid`` ones (ties by position), cross-entropy for the
    others. Backward: ``σ(z) − e_y`` on one-vs-rest rows, ``softmax(z) − e_y`` on the others."""

    @staticmethod
    def forward(ctx, logits, target, switch):  # type: ignore[override]
        ctype = torch.promote_types(logits.dtype, torch.float32)
        z = logits.to(ctype)
        ctx.in_dtype = logits.dtype
        if switch is None:
            ctx.save_for_backward(z, target)
            return _ovr_rows(z, target)
        k, valid = switch
        idx = target.unsqueeze(1)
        logp = torch.log_softmax(z, dim=1)
        lpy = logp.gather(1, idx)
        loss = lpy.squeeze(1).neg()
        if k:
            # the margin, read from our log-probabilities (the same differences as z's): the
            # target column masked for the max, then written back
            other = logp.scatter_(1, idx, float("-inf")).amax(1)
            logp.scatter_(1, idx, lpy)
            margin = lpy.squeeze(1) - other
            if valid is not None:
                margin = margin.masked_fill(~valid, float("inf"))
            rows = torch.sort(margin, stable=True).indices[:k]
        else:
            rows = torch.zeros(0, dtype=torch.long, device=z.device)
        zs = z.index_select(0, rows)
        loss = loss.index_copy(0, rows, _ovr_rows(zs, target.index_select(0, rows)))
        ctx.save_for_backward(logp, target, zs, rows)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        if len(ctx.saved_tensors) == 2:
            z, target = ctx.saved_tensors
            grad = torch.sigmoid(z)
        else:
            logp, target, zs, rows = ctx.saved_tensors
            grad = torch.softmax(logp, dim=1).index_copy_(0, rows, torch.sigmoid(zs))
        grad.scatter_add_(1, target.unsqueeze(1), grad.new_full((target.shape[0], 1), -1.0))
        grad.mul_(grad_loss.to(grad.dtype).unsqueeze(1))
        return grad.to(ctx.in_dtype), None, None


def ovr_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The one-vs-the-rest loss (as defined by Kanai, Yamaguchi, Yamada, Takahashi, Ohno, Ida,
    "One-vs-the-Rest Loss to Focus on Important Samples in Adversarial Training", ICML 2023;
    arXiv 2207.10283): one logistic loss per class, summed.

    .. math::

        \\ell = \\log(1 + e^{-z_y}) + \\sum_{k \\ne y} \\log(1 + e^{z_k})

    which is binary cross-entropy with logits on the one-hot target, summed over the classes (the
    tests check it). No hyper-parameters.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices.
        weight: per-class weights (of the sample's class); weighted mean as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    loss = _SwitchedOVR.apply(flat.logits, flat.target, None)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="ovr",
    function=ovr_loss,
    family="standard",
    description="one-vs-rest: softplus(−z_y) + Σ_{k≠y} softplus(z_k), a sigmoid per class",
    paper="Kanai et al., ICML 2023",
)
class OVRLoss(WeightedLoss):
    """Module form of :func:`ovr_loss`."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ovr_loss(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


def sovr_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ratio: float = 0.4,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """SOVR, the switching one-vs-the-rest loss (Kanai, Yamaguchi, Yamada, Takahashi, Ohno, Ida,
    "One-vs-the-Rest Loss to Focus on Important Samples in Adversarial Training", ICML 2023;
    arXiv 2207.10283): the one-vs-rest loss for the batch's samples of smallest logit margin,
    cross-entropy for the others.

    .. math::

        \\ell_i = \\begin{cases} \\ell_{\\mathrm{OVR}}(z_i, y_i) & i \\in S \\\\
                                 -\\log \\mathrm{softmax}(z_i)_{y_i} & \\text{otherwise}
                  \\end{cases},
        \\qquad S = \\text{the } \\lfloor \\rho\\, n \\rfloor \\text{ entries of smallest }
                   z_{y} - \\max_{k \\ne y} z_k

    over the ``n`` entries of the batch that are not ignored (ties in the margin broken by
    position). The switch is a batch statistic without gradient. ``ratio=0`` is
    cross-entropy, ``ratio=1`` the one-vs-rest loss (:func:`ovr_loss`).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices.
        ratio: ``ρ``, the fraction of the batch switched to the one-vs-rest loss; default 0.4.
            **Uncertain**: 0.4 is a reading of the paper's setting (about 40 % of each
            mini-batch) that could not be checked against its tables or code (none public); the
            rounding down of ``ρ n`` is longtail's choice.
        weight: per-class weights; weighted mean as in torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    check_in_range("ratio", ratio, 0.0, 1.0)
    flat = flatten_inputs(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        min_classes=2,
    )
    n = flat.target.numel() if flat.valid is None else int(flat.valid.sum())
    k = int(ratio * n)
    switch = None if k == n and flat.valid is None else (k, flat.valid)  # None: all switched
    loss = _SwitchedOVR.apply(flat.logits, flat.target, switch)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="sovr",
    function=sovr_loss,
    family="standard",
    description="switching OVR: one-vs-rest for the ρ smallest-margin samples of a batch, CE else",
    paper="Kanai et al., ICML 2023",
    uncertain=("ratio",),
)
class SOVRLoss(WeightedLoss):
    """Module form of :func:`sovr_loss`."""

    def __init__(
        self,
        *,
        ratio: float = 0.4,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_in_range("ratio", ratio, 0.0, 1.0)
        self.ratio = ratio

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sovr_loss(
            logits,
            target,
            ratio=self.ratio,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------ harmonic head
@export_function
def harmonic_logits(
    features: torch.Tensor, centers: torch.Tensor, *, exponent: float, eps: float = 1e-12
) -> torch.Tensor:
    """The harmonic head's logits ``−n log d_c`` (Baek, Liu, ..., Tegmark, "Harmonic Loss Trains
    Interpretable AI Models", arXiv 2502.01628, 2025): train them with cross-entropy
    (``longtail.functional.cross_entropy`` or the ``"ce"`` loss) and that is the harmonic loss.

    .. math::

        d_c = \\sqrt{\\lVert x - w_c \\rVert^2 + \\varepsilon},\\qquad
        \\mathrm{HarMax}(x)_c = \\frac{d_c^{-n}}{\\sum_j d_j^{-n}}
        = \\mathrm{softmax}(-n \\log d)_c,\\qquad \\ell = -\\log \\mathrm{HarMax}(x)_y

    The prediction is the nearest centre (the largest logit). Not a registered loss: the centres
    ``w`` are learned parameters of the model (an ``nn.Parameter`` of shape ``(C, D)`` next to
    the features' network), and the loss of the logits is plain cross-entropy.

    Args:
        features: ``(N, D)`` feature vectors.
        centers: ``(C, D)`` class centres.
        exponent: the harmonic exponent ``n`` > 0. No default: the paper ties it to the
            embedding dimension and the task (its Fashion-MNIST run uses ``n = 28 = √D``; other
            code uses ``√D`` to ``2D``).
        eps: ``ε`` added to the squared distance so that a feature on a centre has a finite
            logit and gradient; default 1e-12 (the paper gives none).

    Returns:
        ``(N, C)`` logits, in the features' dtype (float32 at least).
    """
    check_positive("exponent", exponent)
    check_positive("eps", eps)
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        raise expected("features", "a (N, D) tensor", getattr(features, "shape", features))
    if not isinstance(centers, torch.Tensor) or centers.dim() != 2:
        raise expected("centers", "a (C, D) tensor", getattr(centers, "shape", centers))
    if centers.shape[1] != features.shape[1]:
        raise expected(
            "centers",
            f"of dimension {features.shape[1]} (the features')",
            f"shape {tuple(centers.shape)}",
        )
    dtype = torch.promote_types(torch.promote_types(features.dtype, centers.dtype), torch.float32)
    x, w = features.to(dtype), centers.to(dtype)
    sq = (x.square().sum(1, keepdim=True) + w.square().sum(1) - 2 * x @ w.t()).clamp_min(0)
    return (-exponent / 2) * torch.log(sq + eps)
