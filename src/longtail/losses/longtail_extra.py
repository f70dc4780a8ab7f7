"""Long-tail losses the peer libraries are asked for: class-dependent temperatures (CDT),
Gaussian-clouded logits (GCL), influence-balanced loss (IB), MiSLAS's label-aware smoothing, LADE
and LiVT's balanced BCE. (Seesaw is in ``seesaw.py``, the equalization losses in
``equalization.py``.)"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validation import (
    as_counts,
    check_choice,
    check_class_vector,
    check_counts_length,
    check_finite_number,
    check_in_range,
    check_positive,
    check_reduction,
    expected,
)
from ._adjusted import adjusted_cross_entropy, adjusted_loss
from ._base import WeightedLoss, counts_buffer, first_order
from ._buffer_ce import BufferCE
from ._reduce import compute_dtype_for, flatten_inputs, reduce_loss
from ._registry import export_function, register_loss
from ._stepped_random import SteppedRandom, check_seed, generator
from .focal import _masked_reduce, _per_class_factor, _sigmoid_targets
from .logit_adjustment import log_prior


# ---------------------------------------------------------------------------------------- CDT
@export_function
def cdt_temperatures(class_counts: Any, gamma: float = 0.1) -> torch.Tensor:
    """CDT's class-dependent temperatures ``a_c = (n_max / n_c)^γ`` (float64, CPU).

    Example:
        >>> cdt_temperatures([100, 10, 1], gamma=0.5).tolist()
        [1.0, 3.1622776601683795, 10.0]
    """
    check_positive("gamma", gamma, allow_zero=True)
    n = as_counts(class_counts, allow_zero=False)
    return (n.max() / n).pow(gamma)


def cdt_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    gamma: float = 0.1,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-dependent temperatures (Ye et al., "Identifying and Compensating for Feature
    Deviation in Imbalanced Deep Learning", arXiv 2020): cross-entropy on logits divided by a
    temperature that grows towards the tail.

    .. math::

        \\ell_i = -\\log \\frac{e^{z_{y}/a_{y}}}{\\sum_c e^{z_c / a_c}},\\qquad
        a_c = \\Big(\\frac{n_{\\max}}{n_c}\\Big)^{\\gamma}

    A minor class must reach a larger logit to be predicted in training, which compensates for
    the deviation of its test features. ``γ = 0`` is cross-entropy; CDT is the VS loss (Kini et
    al. 2021) without its additive term (``vs`` with ``tau=0``, its ``Δ_c = 1/a_c``).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        gamma: the exponent γ ≥ 0; default 0.1. Uncertain: the paper selects γ on a grid per
            dataset (CIFAR-10 in [0, 0.4], CIFAR-100 and Tiny-ImageNet in [0, 0.2], iNaturalist in
            [0, 0.1]) and has no single default; 0.1 lies in every range.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    scale = cdt_temperatures(class_counts, gamma).reciprocal()
    return adjusted_loss(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        class_scale=scale,
    )


@register_loss(
    name="cdt",
    function=cdt_loss,
    family="imbalance",
    description="class-dependent temperatures: CE(z_c / a_c), a_c = (n_max / n_c)^γ",
    paper="Ye et al., arXiv 2020",
    needs_counts=True,
    uncertain=("gamma",),
)
class CDTLoss(WeightedLoss):
    """Module form of :func:`cdt_loss`; the counts and ``1 / a`` are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        gamma: float = 0.1,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.gamma = gamma
        scale = cdt_temperatures(counts, gamma).reciprocal()
        self.register_buffer("class_scale", scale.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return adjusted_loss(
            logits,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            class_scale=self.class_scale,
        )


# ---------------------------------------------------------------------------------------- GCL
@export_function
def gcl_cloud_sizes(class_counts: Any) -> torch.Tensor:
    """GCL's relative cloud sizes ``(log n_max − log n_c) / (log n_max − log n_min)`` (float64,
    CPU): 0 for the most frequent class, 1 for the rarest; all 0 when every count is equal."""
    n = as_counts(class_counts, allow_zero=False)
    m = n.max().log() - n.log()
    top = m.max()
    return m / top if top > 0 else torch.zeros_like(m)


def _gcl(logits, target, cloud, noise_mul, margin, scale, seed, weight, ignore_index, reduction):
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    check_counts_length(cloud, flat.num_classes)
    x = flat.logits.to(flat.compute_dtype)
    if noise_mul == 0 or not bool((cloud != 0).any()):
        m = None if margin == 0 else x.new_full((x.shape[0],), float(margin))
        loss = adjusted_cross_entropy(x, flat.target, scale=scale, margin=m)
        return reduce_loss(loss, flat, weight, reduction)
    idx = flat.target.unsqueeze(1)
    with torch.no_grad():
        rows = x.shape[0] if flat.valid is None else int(flat.valid.sum())
        draw = torch.randn(
            (rows, flat.num_classes),
            generator=generator(seed, x.device),
            device=x.device,
            dtype=torch.float32,
        )
        # |δ|, δ ~ N(0, 1/3) clamped to [−1, 1] (the official code's Normal(0, 1/3).clamp(−1, 1)),
        # times β and the cloud size; 3|δ| = min(|N(0, 1)|, 3)
        buf = draw.to(x.dtype).clamp_(-3.0, 3.0).abs_()
        buf.mul_(cloud.to(device=x.device, dtype=x.dtype) * (noise_mul / 3.0))
        if flat.valid is not None:  # the draws go to the entries not ignored, in order
            full = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
            full[flat.valid] = buf
            buf = full
        torch.sub(x, buf, out=buf)  # the clouded logits, in the noise's buffer
        buf.mul_(scale)
        if margin != 0:
            buf.scatter_add_(1, idx, buf.new_full((x.shape[0], 1), -scale * float(margin)))
    loss = BufferCE.apply(x, buf, idx, float(scale))
    return reduce_loss(loss, flat, weight, reduction)


def _check_gcl(noise_mul: float, margin: float, scale: float, seed: Any) -> None:
    check_positive("noise_mul", noise_mul, allow_zero=True)
    check_finite_number("margin", margin)
    check_positive("scale", scale)
    check_seed(seed)


def gcl_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    noise_mul: float = 0.5,
    margin: float = 0.0,
    scale: float = 30.0,
    seed: int | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Gaussian clouded logit loss (Li et al., "Long-tailed Visual Recognition via Gaussian
    Clouded Logit Adjustment", CVPR 2022): cross-entropy on cosine logits pushed down by a random,
    class-dependent amount, larger towards the tail.

    .. math::

        \\tilde z_{ic} = z_{ic} - \\beta\\, |\\delta_{ic}|\\, \\frac{\\log n_{\\max} - \\log n_c}
            {\\log n_{\\max} - \\log n_{\\min}} - m\\,[c = y_i],\\qquad
        \\ell_i = \\mathrm{CE}(s\\, \\tilde z_i,\\ y_i)

    with ``δ ~ N(0, 1/3)`` clamped to ``[−1, 1]``, drawn for every entry, ``β`` = ``noise_mul``,
    ``m`` = ``margin`` and ``s`` = ``scale``, as the official code (``Keke921/GCLLoss``, its
    ``GCLLoss``). The noise perturbs every logit, the target's included (the "cloud"): a tail
    class's logits are pushed down more, so its samples stay active (softmax saturation comes
    later). Meant for cosine logits (:class:`longtail.models.NormedLinear`), hence ``s``. The
    paper's second stage (classifier re-training with class-balanced sampling) is a sampler, not
    this loss.

    Random: ``seed`` fixes the draw (None: torch's global generator, a fresh draw each call; an
    int: a generator seeded with it, the same draw each call). The module (:class:`GCLLoss`)
    draws afresh for each training step, reproducibly, from its seed and a step counter advanced
    by each backward pass (see ``longtail.losses._stepped_random``); a test fixes the noise by
    passing ``seed`` to the function, or by building the module with a seed.

    Equal counts (no cloud) or ``noise_mul = 0`` leave ``CE(s (z − m e_y))``: with ``margin = 0``
    scaled cross-entropy, else LDAM with equal counts.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        noise_mul: the cloud's amplitude β; default 0.5, the official CIFAR script's. Uncertain:
            the official ``GCLLoss`` class defaults to 1.0 and the setting varies by dataset.
        margin: the target margin ``m``; default 0, the official CIFAR script's. Uncertain: the
            ``GCLLoss`` class defaults to 0.5.
        scale: the logit scale ``s``; default 30, the official code's.
        seed: the seed of the noise, or None (torch's global generator).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_gcl(noise_mul, margin, scale, seed)
    return _gcl(
        logits,
        target,
        gcl_cloud_sizes(class_counts),
        noise_mul,
        margin,
        scale,
        seed,
        weight,
        ignore_index,
        reduction,
    )


@register_loss(
    name="gcl",
    function=gcl_loss,
    family="imbalance",
    description="Gaussian clouded logits: CE(s(z − β|δ| log(n_max/n_c)/log(n_max/n_min) − m e_y))",
    paper="Li et al., CVPR 2022",
    needs_counts=True,
    uncertain=("noise_mul", "margin"),
)
class GCLLoss(SteppedRandom, WeightedLoss):
    """Module form of :func:`gcl_loss`: the counts and cloud sizes are buffers; the noise is
    drawn per training step from the buffers ``noise_seed`` and ``noise_step`` (the step advances
    when a gradient flows back through the output), so it is reproducible and resumable.
    ``seed=None`` draws the base seed from torch's global generator as the module is built
    (so ``torch.manual_seed(s)`` first gives run ``s`` its own draws); give ``seed`` to fix it."""

    def __init__(
        self,
        class_counts: Any,
        *,
        noise_mul: float = 0.5,
        margin: float = 0.0,
        scale: float = 30.0,
        seed: int | None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_gcl(noise_mul, margin, scale, seed)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.noise_mul, self.margin, self.scale = noise_mul, margin, scale
        self.register_buffer("cloud", gcl_cloud_sizes(counts).to(torch.float32))
        self._init_random(seed)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = _gcl(
            logits,
            target,
            self.cloud,
            self.noise_mul,
            self.margin,
            self.scale,
            self.draw_seed(),
            self.weight,
            self.ignore_index,
            self.reduction,
        )
        return self._advance_on_backward(out)


# ----------------------------------------------------------------------------------------- IB
def _check_ib(alpha: float, epsilon: float, stage: Any) -> None:
    check_positive("alpha", alpha)
    check_positive("epsilon", epsilon)
    if isinstance(stage, bool) or stage not in (1, 2):
        raise expected("stage", "1 (cross-entropy) or 2 (IB re-weighting)", repr(stage))


def _ib(logits, target, alpha, epsilon, stage, feature_norm, weight, ignore_index, reduction):
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    if stage == 1:
        return reduce_loss(
            adjusted_cross_entropy(flat.logits, flat.target), flat, weight, reduction
        )
    if not isinstance(feature_norm, torch.Tensor) or not feature_norm.is_floating_point():
        got = "None" if feature_norm is None else type(feature_norm).__name__
        raise expected(
            "feature_norm",
            "a floating tensor of the per-sample feature norms ‖h‖₁ in stage 2 "
            "(loss(logits, target, feature_norm))",
            got,
        )
    if tuple(feature_norm.shape) != flat.batch_shape:
        raise expected(
            "feature_norm",
            f"of shape {flat.batch_shape} (one norm per sample)",
            f"shape {tuple(feature_norm.shape)}",
        )
    h = feature_norm.reshape(-1).to(flat.compute_dtype)
    if h.numel() and bool((h.detach() < 0).any() | ~torch.isfinite(h.detach()).all()):
        raise expected("feature_norm", "finite and non-negative (an L1 norm)", "other values")
    x = flat.logits.to(flat.compute_dtype)
    logp_y = torch.log_softmax(x, dim=1).gather(1, flat.target.unsqueeze(1)).squeeze(1)
    # ‖p − y‖₁ = (1 − p_y) + Σ_{c≠y} p_c = 2 (1 − p_y), with 1 − p_y = −expm1(log p_y) exact
    influence = -2.0 * torch.expm1(logp_y) * h
    loss = -logp_y * (alpha / (influence + epsilon))
    return reduce_loss(loss, flat, weight, reduction)


def ib_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 1000.0,
    epsilon: float = 0.001,
    stage: int = 1,
    feature_norm: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Influence-balanced loss (Park et al., "Influence-Balanced Loss for Imbalanced Visual
    Classification", ICCV 2021), with its two-stage schedule.

    .. math::

        \\text{stage 1:}\\ \\ell_i = \\mathrm{CE}(z_i, y_i),\\qquad
        \\text{stage 2:}\\ \\ell_i = \\frac{\\alpha\\, \\mathrm{CE}(z_i, y_i)}
            {\\lVert p_i - e_{y_i} \\rVert_1 \\cdot \\lVert h_i \\rVert_1 + \\epsilon}

    ``p = softmax(z)``, ``h_i`` the features that enter the last (linear) layer:
    ``‖p − y‖₁ ‖h‖₁`` is the L1 norm of the gradient of the sample's loss w.r.t. that layer's
    weights (its influence), so samples that pull the decision boundary hard (often head-class
    samples near it) are down-weighted. The paper trains with cross-entropy first (stage 1, the
    first half of training: 100 of 200 CIFAR epochs in the official script) and switches to the
    IB loss (stage 2).

    How the feature norm reaches the loss: it is an input of the call, ``feature_norm`` (the
    module takes it as ``forward``'s third argument), the per-sample ``‖h_i‖₁ = h.abs().sum(1)``
    of the penultimate features, with the batch shape ``(N,)`` / ``(N, d1, ...)``. Required in
    stage 2, unused in stage 1. As in the official code (``pseulki/IB-Loss``) neither the
    influence nor ``‖h‖₁`` is detached: the gradient flows through the re-weighting (into
    ``feature_norm`` too when it requires grad). The official code takes the plain mean of
    ``w_y·ℓ`` with a class ``weight``; longtail's ``"mean"`` is torch's weighted mean
    ``Σ w ℓ / Σ w``.

    Stateful only through the stage: the module (:class:`IBLoss`) keeps it in a buffer
    (``set_stage(2)`` at the start epoch), this function takes it as ``stage``.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - feature_norm: ``(N,)`` or ``(N, d1, ...)`` (stage 2).
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        alpha: the IB loss's scale α; default 1000, the official CIFAR training script's.
            Uncertain: the official ``IBLoss`` class defaults to 10000.
        epsilon: ε in the denominator; default 0.001, the official code's.
        stage: 1 (plain cross-entropy) or 2 (the IB re-weighting); default 1, where the paper's
            schedule starts.
        feature_norm: ``‖h_i‖₁`` per sample, required in stage 2 (see above).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_ib(alpha, epsilon, stage)
    return _ib(logits, target, alpha, epsilon, stage, feature_norm, weight, ignore_index, reduction)


@register_loss(
    name="ib",
    function=ib_loss,
    family="imbalance",
    description="influence-balanced: CE, then (stage 2) α·CE / (‖p − y‖₁·‖h‖₁ + ε), ‖h‖₁ an input",
    paper="Park et al., ICCV 2021",
    uncertain=("alpha",),
)
class IBLoss(WeightedLoss):
    """Module form of :func:`ib_loss`: the stage is the int64 buffer ``ib_stage`` (so a resumed
    run keeps it); :meth:`set_stage` switches it; ``forward(logits, target, feature_norm=None)``.

    ``feature_norm`` is an input of each call, not a setting: the constructor takes it only
    because the module's keywords are the function's; it must be None there.
    """

    def __init__(
        self,
        *,
        alpha: float = 1000.0,
        epsilon: float = 0.001,
        stage: int = 1,
        feature_norm: None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_ib(alpha, epsilon, stage)
        if feature_norm is not None:
            raise expected(
                "feature_norm",
                "None when building the loss (it is an input of each call: "
                "loss(logits, target, feature_norm))",
                type(feature_norm).__name__,
            )
        self.alpha, self.epsilon = alpha, epsilon
        self.feature_norm = None
        self.register_buffer("ib_stage", torch.tensor(stage, dtype=torch.int64))

    @property
    def stage(self) -> int:
        """The current stage, 1 or 2."""
        return int(self.ib_stage)

    def set_stage(self, stage: int) -> None:
        """Switch to ``stage`` (1: cross-entropy, 2: IB), e.g. ``set_stage(2)`` at the start
        epoch of the IB re-weighting."""
        _check_ib(self.alpha, self.epsilon, stage)
        self.ib_stage.fill_(stage)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, feature_norm: torch.Tensor | None = None
    ) -> torch.Tensor:
        return _ib(
            logits,
            target,
            self.alpha,
            self.epsilon,
            self.stage,
            feature_norm,
            self.weight,
            self.ignore_index,
            self.reduction,
        )


# ------------------------------------------------------------------ label-aware smoothing (MiSLAS)
SMOOTHING_SHAPES = ("concave", "linear", "convex")


@export_function
def label_aware_epsilons(
    class_counts: Any, smooth_head: float = 0.3, smooth_tail: float = 0.0, shape: str = "concave"
) -> torch.Tensor:
    """MiSLAS's per-class smoothing ``ε_c`` (float64, CPU), from ``ε_K`` (the rarest class,
    ``smooth_tail``) to ``ε_1`` (the most frequent, ``smooth_head``), with ``u = (n_c − n_K) /
    (n_1 − n_K)``: concave ``ε_K + (ε_1 − ε_K) sin(πu/2)``, linear ``ε_K + (ε_1 − ε_K) u``,
    convex ``ε_1 + (ε_1 − ε_K) sin(3π/2 + πu/2)``. Equal counts (``n_1 = n_K``) give ``u = 1``:
    every class is a head class, smoothed by ``ε_1`` (the official code divides 0 by 0 there).

    Example:
        >>> label_aware_epsilons([101, 51, 1], 0.4, 0.1, "linear").tolist()
        [0.4, 0.25, 0.1]
    """
    check_in_range("smooth_head", smooth_head, 0.0, 1.0)
    check_in_range("smooth_tail", smooth_tail, 0.0, 1.0)
    check_choice("shape", shape, SMOOTHING_SHAPES)
    n = as_counts(class_counts)
    span = n.max() - n.min()
    u = (n - n.min()) / span if span > 0 else torch.ones_like(n)
    if shape == "concave":
        return smooth_tail + (smooth_head - smooth_tail) * torch.sin(u * (math.pi / 2))
    if shape == "linear":
        return smooth_tail + (smooth_head - smooth_tail) * u
    return smooth_head + (smooth_head - smooth_tail) * torch.sin(1.5 * math.pi + u * (math.pi / 2))


class _SmoothedCE(torch.autograd.Function):
    """``(1 − ε_i)(−log p_y) + ε_i · mean_c(−log p_c)`` per sample, closed-form backward
    ``p − (1 − ε_i) e_y − ε_i / C``."""

    @staticmethod
    def forward(ctx, x, target, eps):  # type: ignore[override]
        logp = torch.log_softmax(x, dim=1)
        idx = target.unsqueeze(1)
        nll = logp.gather(1, idx).squeeze(1).neg()
        loss = torch.lerp(nll, logp.mean(1).neg(), eps)
        ctx.save_for_backward(logp, idx, eps)
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        logp, idx, eps = ctx.saved_tensors
        grad = torch.softmax(logp, dim=1)  # = p (the softmax kernel, not exp: see _adjusted)
        grad.sub_((eps / logp.shape[1]).unsqueeze(1))
        grad.scatter_add_(1, idx, (eps - 1).unsqueeze(1))
        grad.mul_(g.unsqueeze(1))
        return grad, None, None


def _label_aware(logits, target, eps_per_class, weight, ignore_index, reduction):
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    check_counts_length(eps_per_class, flat.num_classes)
    x = flat.logits.to(flat.compute_dtype)
    eps = eps_per_class.to(device=x.device, dtype=x.dtype)[flat.target]
    return reduce_loss(_SmoothedCE.apply(x, flat.target, eps), flat, weight, reduction)


def label_aware_smoothing_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    smooth_head: float = 0.3,
    smooth_tail: float = 0.0,
    shape: str = "concave",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Label-aware smoothing (Zhong et al., "Improving Calibration for Long-Tailed Recognition"
    (MiSLAS), CVPR 2021): label smoothing whose ε depends on the target's class count, larger for
    head classes (more over-confident), smaller for tail classes.

    .. math::

        \\ell_i = (1 - \\varepsilon_{y_i})(-\\log p_{y_i})
            + \\frac{\\varepsilon_{y_i}}{C} \\sum_c (-\\log p_c),\\qquad
        \\varepsilon_c = f(n_c)

    with ``f`` the concave, linear or convex schedule from ``ε_K`` (rarest class) to ``ε_1``
    (most frequent) of :func:`label_aware_epsilons`, as the official ``LabelAwareSmoothing``
    (``dvlab-research/MiSLAS``). MiSLAS uses it in its second stage (classifier re-training,
    with mixup-trained features and shifted batch norm); those are not part of the loss.

    Equal ``ε`` for every class is torch's label smoothing (``cross_entropy(label_smoothing=ε)``)
    and ``ε = 0`` cross-entropy, both without ``weight``: a class ``weight`` multiplies the whole
    sample's loss here (``w_y ℓ_i``), where torch weights each term of its smoothing sum.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``.
        smooth_head: ``ε_1``, the most frequent class's ε; default 0.3, the official configs
            for CIFAR-10-LT (ρ = 100), ImageNet-LT and iNaturalist 2018. Uncertain: the others
            differ (0.4 for CIFAR-100-LT ρ = 100 and Places-LT, 0.2 for CIFAR-100-LT ρ = 10, 0.1
            for CIFAR-10-LT ρ = 10).
        smooth_tail: ``ε_K``, the rarest class's ε; default 0.0, the same configs'. Uncertain:
            0.1 for CIFAR-100-LT ρ = 100 and Places-LT.
        shape: ``"concave"`` (default, the official code's), ``"linear"`` or ``"convex"``.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    eps = label_aware_epsilons(class_counts, smooth_head, smooth_tail, shape)
    return _label_aware(logits, target, eps, weight, ignore_index, reduction)


@register_loss(
    name="label-aware-smoothing",
    function=label_aware_smoothing_loss,
    family="imbalance",
    description="MiSLAS label-aware smoothing: smoothing ε_y from ε_K (tail) to ε_1 (head)",
    paper="Zhong et al., CVPR 2021",
    needs_counts=True,
    uncertain=("smooth_head", "smooth_tail"),
)
class LabelAwareSmoothingLoss(WeightedLoss):
    """Module form of :func:`label_aware_smoothing_loss`; the counts and the per-class ε are
    buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        smooth_head: float = 0.3,
        smooth_tail: float = 0.0,
        shape: str = "concave",
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        counts = counts_buffer(self, class_counts)
        self.smooth_head, self.smooth_tail, self.shape = smooth_head, smooth_tail, shape
        eps = label_aware_epsilons(counts, smooth_head, smooth_tail, shape)
        self.register_buffer("epsilons", eps.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _label_aware(
            logits, target, self.epsilons, self.weight, self.ignore_index, self.reduction
        )


# --------------------------------------------------------------------------------------- LADE
class _LADERShares(torch.autograd.Function):
    """Per-sample shares of LADER: ``−c_i z_{i y_i} + S``, ``S = Σ_c π_c (T_c + λ T_c²)``,
    ``T_c = logsumexp_{i valid} z_ic − log π_c − log C − log n``, ``c_i = n π_{y_i} / n_{y_i}``.
    Closed-form backward: ``∂S/∂z_ic = π_c (1 + 2λ T_c) softmax_i(z_·c)_i`` (a softmax down each
    column) from the exponentials saved in forward, plus the ``−c_i`` at each target."""

    @staticmethod
    def forward(ctx, x, idx, valid, log_pi, lam, own):  # type: ignore[override]
        xm = x if valid is None else x.masked_fill(~valid.unsqueeze(1), float("-inf"))
        n = x.shape[0] if valid is None else int(valid.sum())
        top = xm.amax(0)
        e = torch.sub(xm, top).exp_()  # e_ic = exp(z_ic − max_i z_ic), 0 on ignored rows
        total = e.sum(0)
        t = top + total.log() - log_pi - math.log(x.shape[1]) - math.log(n)
        pi = log_pi.exp()
        shared = (pi * (t + lam * t.square())).sum()
        ctx.save_for_backward(e, idx, own)
        ctx.coef = pi * (1 + 2 * lam * t) / total
        return shared - own * x.gather(1, idx).squeeze(1)

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        e, idx, own = ctx.saved_tensors
        grad = e * (ctx.coef * g.sum())  # S enters every sample's share (e kept: retain_graph)
        grad.scatter_add_(1, idx, (-own * g).unsqueeze(1))
        return grad, None, None, None, None, None


def _lade(logits, target, log_pi, alpha, remine_lambda, weight, ignore_index, reduction):
    check_finite_number("alpha", alpha)
    check_positive("remine_lambda", remine_lambda, allow_zero=True)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    c = flat.num_classes
    check_counts_length(log_pi, c)
    x = flat.logits.to(flat.compute_dtype)
    log_pi = log_pi.to(device=x.device, dtype=x.dtype)
    loss = adjusted_cross_entropy(x, flat.target, class_bias=log_pi)  # LADE-CE: the PC softmax
    labels = flat.target if flat.valid is None else flat.target[flat.valid]
    n = labels.numel()
    if alpha == 0 or n == 0:
        return reduce_loss(loss, flat, weight, reduction)
    # LADER, summed over every class (absent ones too, as the official code: their first term
    # is 0); sample i's share of it is −N π_y z_iy / N_y + S, so that their mean is LADER
    n_c = torch.bincount(labels, minlength=c).to(x.dtype).clamp_min(1)
    own = (n * log_pi.exp() / n_c)[flat.target]
    idx = flat.target.unsqueeze(1)
    shares = _LADERShares.apply(x, idx, flat.valid, log_pi, float(remine_lambda), own)
    return reduce_loss(loss + alpha * shares, flat, weight, reduction)


def lade_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    alpha: float = 0.1,
    remine_lambda: float = 0.1,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """LADE (Hong et al., "Disentangling Label Distribution for Long-tailed Visual Recognition",
    CVPR 2021): the PC-softmax cross-entropy plus α times the LADE regulariser.

    .. math::

        L = \\frac1N \\sum_i \\mathrm{CE}(z_i + \\log \\pi,\\ y_i) + \\alpha\\, L_{\\mathrm{LADER}},

        L_{\\mathrm{LADER}} = -\\sum_c \\pi_c \\Big[\\frac{1}{N_c} \\sum_{i: y_i = c} z_{ic}
            - T_c - \\lambda T_c^2\\Big],\\qquad
        T_c = \\log \\frac1N \\sum_{i=1}^{N} e^{z_{ic} - \\log \\pi_c + \\log(1/C)}

    over the batch (``N`` entries, ``N_c`` of class ``c``); ``π`` is the training prior. The
    logits ``z`` are trained to be the label-distribution-free (uniform-prior) logits: predict
    with ``argmax z``, or, for a known test prior ``π_t``, ``argmax z + log π_t`` (that test-time
    adjustment is left out: it is a post-hoc step, not the loss). LADER is the regularised
    Donsker-Varadhan (ReMINE) bound estimated on each batch, as the official code
    (``hyperconnect/LADE``, ``LADELoss`` + ``PriorCELoss``) computes it, including its sum over
    every class (a class absent from the batch contributes its ``T`` terms with a zero first
    term); the official code's ``+1e-9`` inside the logarithms of π and 1/C is left out.

    LADER is a quantity of the whole batch. Per sample (``reduction="none"``), sample ``i``
    carries ``CE_i + α (−N π_{y_i} z_{i y_i} / N_{y_i} + Σ_c π_c (T_c + λ T_c²))``: their mean is
    ``L``, their sum ``N·L``, and with ``weight`` their weighted mean. ``α = 0`` is the
    logit-adjusted loss with τ = 1 (balanced softmax).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype (every position of a
          dense map is an entry of the batch).
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0.
        alpha: α, the regulariser's weight; default 0.1, the official configs for CIFAR-100-LT,
            ImageNet-LT and Places-LT. Uncertain: iNaturalist 2018 uses 0.05.
        remine_lambda: λ of the ReMINE term; default 0.1, the same configs'. Uncertain:
            iNaturalist 2018 uses 0.5.
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    return _lade(
        logits,
        target,
        log_prior(class_counts),
        alpha,
        remine_lambda,
        weight,
        ignore_index,
        reduction,
    )


@register_loss(
    name="lade",
    function=lade_loss,
    family="imbalance",
    description="LADE: PC-softmax CE(z + log π) + α·LADER (batch ReMINE bound on the logits)",
    paper="Hong et al., CVPR 2021",
    needs_counts=True,
    uncertain=("alpha", "remine_lambda"),
)
class LADELoss(WeightedLoss):
    """Module form of :func:`lade_loss`; the counts and ``log π`` (float64) are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        alpha: float = 0.1,
        remine_lambda: float = 0.1,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_finite_number("alpha", alpha)
        check_positive("remine_lambda", remine_lambda, allow_zero=True)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.alpha, self.remine_lambda = alpha, remine_lambda
        # float64: π = exp(log π) multiplies N·z_y in the regulariser, where a float32 rounding
        # of log π shows
        self.register_buffer("log_prior", log_prior(counts))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _lade(
            logits,
            target,
            self.log_prior,
            self.alpha,
            self.remine_lambda,
            self.weight,
            self.ignore_index,
            self.reduction,
        )


# ------------------------------------------------------------------------------------ Bal-BCE
@export_function
def balanced_sigmoid_bias(class_counts: Any) -> torch.Tensor:
    """Bal-BCE's logit bias ``log π_c − log(1 − π_c)`` (float64, CPU); counts all > 0 and at
    least two classes."""
    n = as_counts(class_counts, allow_zero=False)
    if n.numel() < 2:
        raise expected("class_counts", "counts of at least 2 classes", n.tolist())
    return n.log() - (n.sum() - n).log()


def _balanced_bce(logits, target, bias, weight, ignore_index, reduction, label_smoothing):
    check_reduction(reduction)
    check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    if logits.dim() < 2:
        raise expected(
            "logits", "of shape (N, C) or (N, C, d1, ...)", f"shape {tuple(logits.shape)}"
        )
    c = logits.shape[1]
    check_counts_length(bias, c)
    if weight is not None:
        check_class_vector("weight", torch.as_tensor(weight), c)
    ctype = compute_dtype_for(logits.dtype)
    if not isinstance(target, torch.Tensor):
        raise expected("target", "a tensor", type(target).__name__)
    idx, t, ignored = _sigmoid_targets(logits, target, ignore_index, ctype)
    shape = [1] * logits.dim()
    shape[1] = -1
    x = logits.to(ctype) + bias.to(device=logits.device, dtype=ctype).reshape(shape)
    if idx is not None:
        t = torch.zeros_like(x).scatter_(1, idx, 1.0)
    elif t.numel() and bool(((t < 0) | (t > 1)).any()):
        raise expected("target", "probabilities in [0, 1]", "values outside")
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / c
    w = _per_class_factor(weight, "weight", x)
    if ignored is None and reduction != "none":
        total = F.binary_cross_entropy_with_logits(x, t, weight=w, reduction="sum")
        # "mean": C × the mean over elements, i.e. Σ_c per sample, averaged over samples
        return total if reduction == "sum" else total * (c / max(x.numel(), 1))
    loss = F.binary_cross_entropy_with_logits(x, t, weight=w, reduction="none")
    if ignored is None:
        return loss
    out = _masked_reduce(loss, ignored, reduction)
    return out * c if reduction == "mean" else out


def balanced_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Balanced binary cross-entropy, the loss of LiVT (Xu et al., "Learning Imbalanced Data with
    Vision Transformers", CVPR 2023): one sigmoid per class, each logit shifted by its class's
    prior log-odds.

    .. math::

        \\ell_{ic} = \\mathrm{BCE}\\big(z_{ic} + \\log \\pi_c - \\log(1 - \\pi_c),\\ t_{ic}\\big),
        \\qquad \\pi_c = n_c / \\textstyle\\sum_k n_k

    the "unbiased extension of the sigmoid" with its logit margin, as the official ``BCE_loss``
    with ``type='Bal'`` (``XuZhengzhuo/LiVT``, ``util/loss.py``). Targets are one-hot (class
    indices), or the soft rows of mixup / CutMix, or any 0/1 targets; ``label_smoothing`` ε
    turns ``t`` into ``(1 − ε) t + ε/C`` (LiVT trains with ε = 0.1 on index targets, the same
    one-hot smoothing as timm).

    Reduction: ``"none"`` gives the per-element ``ℓ_ic`` (the logits' shape, as BCE);
    ``"sum"`` their sum; ``"mean"`` is the official code's ``C × BCE-mean``, i.e. the sum over
    classes averaged over samples (with ignored entries left out of the count). A ``weight``
    multiplies column ``c`` (BCE's per-class weight).

    Equal counts do not give plain BCE: the bias is then ``−log(C − 1)`` for every class (0 only
    for two classes), the prior log-odds of a uniform one-hot label.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: targets of the logits' shape, or class indices ``(N,)`` for ``(N, C)`` logits.
        - output: a scalar, or the logits' shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``, all > 0, ``C ≥ 2``.
        weight: per-class weights ``(C,)``.
        ignore_index: index targets equal to it, or dense target entries equal to it, are left out.
        reduction: ``"mean" | "sum" | "none"`` (see above).
        label_smoothing: ε in [0, 1]; default 0 (none), torch's convention.
    """
    bias = balanced_sigmoid_bias(class_counts)
    return _balanced_bce(logits, target, bias, weight, ignore_index, reduction, label_smoothing)


@register_loss(
    name="bal-bce",
    function=balanced_bce_loss,
    family="imbalance",
    description="LiVT balanced BCE: BCE(z + log π − log(1 − π)) on one-hot / mixup targets",
    paper="Xu et al., CVPR 2023",
    needs_counts=True,
    target="multilabel",
)
class BalancedBCELoss(WeightedLoss):
    """Module form of :func:`balanced_bce_loss`; the counts and the bias are buffers."""

    def __init__(
        self,
        class_counts: Any,
        *,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_in_range("label_smoothing", label_smoothing, 0.0, 1.0)
        counts = counts_buffer(self, class_counts, allow_zero=False)
        self.label_smoothing = label_smoothing
        self.register_buffer("bias", balanced_sigmoid_bias(counts).to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _balanced_bce(
            logits,
            target,
            self.bias,
            self.weight,
            self.ignore_index,
            self.reduction,
            self.label_smoothing,
        )
