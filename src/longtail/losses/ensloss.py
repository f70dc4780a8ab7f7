"""EnsLoss (Dai, ICML 2025): an ensemble of convex, calibrated margin losses, one drawn at random
for every training step, given by its derivative alone."""

from __future__ import annotations

from typing import Any

import torch

from .._validation import check_finite_number, check_reduction, expected
from ._base import WeightedLoss
from ._reduce import compute_dtype_for
from ._registry import register_loss
from ._stepped_random import SteppedRandom, check_seed, generator
from .focal import _masked_reduce, _per_class_factor, _sigmoid_targets

#: The official code's floor of the drawn derivatives (``np.maximum(g, -1.0)``).
_FLOOR = -1.0
#: The official code's shift ``g − 1e-6``: the derivative at the margin 0 is < 0 (calibration).
_SHIFT = 1e-6


def _inverse_box_cox(eps: torch.Tensor, lam: float) -> torch.Tensor:
    """``BC⁻¹_λ(ε)``: ``exp(ε)`` for λ = 0, else ``max(1 + λε, 0)^(1/λ)`` (non-decreasing in ε)."""
    if lam == 0:
        return eps.exp()
    return (eps * lam + 1.0).clamp_min(0.0).pow(1.0 / lam)


def _derivatives(margins: torch.Tensor, lam: float, seed: int | None) -> torch.Tensor:
    """The loss-derivatives ``g`` of one EnsLoss draw at the 1-D ``margins`` (no graph).

    One standard normal draw per margin (float32, from a generator seeded with ``seed``, or
    torch's global generator for None), ``g = −BC⁻¹_λ(ε)`` sorted increasingly and floored at −1,
    given to the margins in increasing order (the smallest margin gets the most negative
    derivative, so ``g`` is non-decreasing in the margin: a convex loss); margins that tie share
    the mean of the derivatives that fall to them (a derivative is a function of the margin);
    ``g / s`` where ``s > 1``; minus 1e-6.
    """
    m = margins.numel()
    draw = torch.randn(
        m, generator=generator(seed, margins.device), device=margins.device, dtype=torch.float32
    ).to(margins.dtype)
    # −BC⁻¹ is non-increasing in ε: ε sorted decreasingly gives g sorted increasingly
    g = _inverse_box_cox(draw.sort(descending=True).values, lam).neg_().clamp_min_(_FLOOR)
    ranked, order = margins.sort(stable=True)
    if m > 1:
        new = torch.ones(m, dtype=torch.bool, device=margins.device)
        torch.ne(ranked[1:], ranked[:-1], out=new[1:])
        if not bool(new.all()):  # ties: each group of equal margins gets its mean derivative
            group = new.cumsum(0).sub_(1)
            total = torch.zeros_like(g).index_add_(0, group, g)
            count = torch.zeros_like(g).index_add_(0, group, torch.ones_like(g))
            g = total.div_(count)[group]
    out = torch.empty_like(g).scatter_(0, order, g)
    tail = margins > 1
    out = torch.where(tail, out / torch.where(tail, margins, 1.0), out)
    return out.sub_(_SHIFT)


def _ensloss(logits, target, lam, seed, weight, ignore_index, reduction):
    check_reduction(reduction)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    if not isinstance(target, torch.Tensor) or target.is_complex():
        raise expected("target", "a tensor", type(target).__name__)
    ctype = compute_dtype_for(logits.dtype)
    x = logits.to(ctype)
    idx, t, ignored = _sigmoid_targets(logits, target, ignore_index, ctype)
    w = _per_class_factor(weight, "weight", x)
    with torch.no_grad():
        if idx is not None:  # class indices: +1 for the class, −1 for every other (one-vs-rest)
            sign = torch.full(x.shape, -1.0, dtype=ctype, device=x.device)
            sign.scatter_(1, idx, 1.0)
        else:
            if t.numel() and bool(((t < 0) | (t > 1)).any()):
                raise expected("target", "0/1 (or soft) targets in [0, 1]", "values outside")
            sign = t * 2.0 - 1.0  # ỹ = 2t − 1, the official code's arithmetic
        margins = (x.detach() * sign).reshape(-1)  # logical order, whatever x's layout
        if ignored is None:
            g = _derivatives(margins, lam, seed)
        else:  # the draws go to the entries not ignored: ignoring an entry is dropping it
            keep = ~ignored.expand(x.shape).reshape(-1)
            g = torch.zeros_like(margins)
            g[keep] = _derivatives(margins[keep], lam, seed)
        slope = g.reshape(x.shape).mul_(sign)  # ∂ℓ/∂z = g ỹ
        if w is not None:
            slope.mul_(w)
    loss = slope * x  # = g·s (times w): the value of the drawn loss's linearisation
    if ignored is not None:
        return _masked_reduce(loss, ignored, reduction)
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def ens_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    lam: float = 0.0,
    seed: int | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """EnsLoss (Dai, "EnsLoss: Stochastic Calibrated Loss Ensembles for Preventing Overfitting in
    Classification", ICML 2025): at every training step a random convex, classification-calibrated
    margin loss, given by its derivatives at the batch's margins.

    .. math::

        s_i = \\tilde y_i z_i,\\quad \\tilde y_i = 2 t_i - 1 \\in \\{-1, +1\\},\\qquad
        \\ell_i = \\operatorname{sg}(g_i)\\, s_i,\\qquad
        g = \\operatorname{rank}_s\\big(\\max(-\\mathrm{BC}_\\lambda^{-1}(\\varepsilon), -1)\\big),
        \\ \\varepsilon_i \\sim \\mathcal N(0, 1),\\quad
        g_i \\leftarrow g_i / s_i \\text{ if } s_i > 1,\\quad g_i \\leftarrow g_i - 10^{-6}

    The paper bypasses the loss: SGD sees a loss only through its derivative φ′(s) at each
    sample's margin, and a convex loss is calibrated iff φ′(0) < 0 (Bartlett et al., 2006), so
    each step draws derivatives that are (i) non-decreasing in the margin (convexity) and
    (ii) negative at 0 (calibration). The construction is the official code's (``ensLoss`` in
    ``losses.py`` of ``statmlben/ensLoss``), step by step: one ε ~ N(0, 1) per sample;
    ``g = −BC⁻¹_λ(ε)`` with the inverse Box-Cox transform (``exp(ε)`` for λ = 0, else
    ``max(1 + λε, 0)^(1/λ)``); ``g`` sorted and given to the samples in order of their margins
    (the smallest margin gets the most negative derivative); floored at −1; divided by ``s``
    where ``s > 1`` (a tail that flattens); minus 1e-6; ``ℓ = g·s`` with ``g`` detached, averaged.
    So the gradient is ``g·ỹ`` (``stop_gradient`` in the registry) and the value is the drawn
    loss's linearisation ``g·s``, not a loss value: compare runs by accuracy, not by this number.
    Two details are this library's: margins that tie share the mean of the derivatives that fall
    to them (the official code's sort breaks ties arbitrarily; the mean changes no reduced value,
    only makes each sample's value independent of the batch order), and the draw is taken on the
    logits' device from a seeded generator (the official code draws on the CPU with the global
    generator and then moves the derivatives to a hard-coded CUDA device, so it runs on a GPU
    only). The official class's ``period`` attribute is not used by its forward.

    Binary and one-vs-rest: the paper is binary (one logit per sample, ``y ∈ {−1, +1}``). Logits
    ``(N,)`` with 0/1 targets ``(N,)`` are that case. ``(N, C)`` logits (or ``(N, C, d1, ...)``)
    with 0/1 targets of their shape, or class indices ``(N,)`` (+1 for the class, −1 for every
    other), are C one-vs-rest binary problems whose margins are ranked together, as one loss for
    every class: this multi-class use is this library's extension (the official forward flattens
    whatever it is given, which is the same). Soft targets ``t ∈ [0, 1]`` give ``ỹ = 2t − 1``,
    the official code's arithmetic (a soft label shrinks the margin towards 0).

    Random: ``seed`` fixes the draw (None: torch's global generator, a fresh draw each call; an
    int: a generator seeded with it on the logits' device). The module (:class:`EnsLoss`) draws
    afresh for each training step, reproducibly, from its seed and a step counter advanced by
    each backward pass (see ``longtail.losses._stepped_random``): the paper's "doubly stochastic"
    gradient, one loss per mini-batch; two modules with the same seed draw the same losses, and a
    resumed run (the counter is in ``state_dict()``) continues the sequence.

    Cost: two sorts of the batch's N·C margins and draws (O(M log M), with int64 indices), where
    BCE is element-wise.

    Shape:
        - logits: ``(N,)``, ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: 0/1 (or soft) targets of the logits' shape, or class indices ``(N,)`` for
          ``(N, C)`` logits.
        - output: a scalar, or the logits' shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits, target: as above.
        lam: λ of the inverse Box-Cox transform that maps the normal draws to derivatives;
            default 0 (``−exp(ε)``), the official code's ``lam``.
        seed: the seed of the draw, or None (torch's global generator).
        weight: per-class factors ``(C,)`` multiplying column ``c`` (``BCEWithLogitsLoss``'s
            ``weight``), for ``(N, C, ...)`` logits.
        ignore_index: a class-index target equal to it drops its row; a dense target entry equal
            to it drops that entry. Dropped entries take no draw and no rank, count neither in the
            sum nor in the mean, and are 0 with ``"none"``.
        reduction: ``"mean"`` (over the entries not ignored, the official ``loss.mean()``),
            ``"sum"`` or ``"none"``.
    """
    check_finite_number("lam", lam)
    check_seed(seed)
    return _ensloss(logits, target, float(lam), seed, weight, ignore_index, reduction)


@register_loss(
    name="ensloss",
    function=ens_loss,
    family="multilabel",
    description="EnsLoss: a random convex calibrated margin loss each step, given by sorted "
    "derivatives g·ỹz",
    paper="Dai, ICML 2025",
    target="multilabel",
    stop_gradient="the drawn loss-derivatives g (sorted by margin, floored, tail-scaled): "
    "detached, as in the official code",
)
class EnsLoss(SteppedRandom, WeightedLoss):
    """Module form of :func:`ens_loss`: the derivatives are drawn per training step from the
    buffers ``noise_seed`` and ``noise_step`` (the step advances when a gradient flows back
    through the output), so they are reproducible and resumable. ``seed=None`` draws the base
    seed from torch's global generator as the module is built (so ``torch.manual_seed(s)``
    first gives run ``s`` its own draws); give ``seed`` to fix it."""

    def __init__(
        self,
        *,
        lam: float = 0.0,
        seed: int | None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_finite_number("lam", lam)
        self.lam = lam
        self._init_random(seed)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = _ensloss(
            logits,
            target,
            float(self.lam),
            self.draw_seed(),
            self.weight,
            self.ignore_index,
            self.reduction,
        )
        return self._advance_on_backward(out)
