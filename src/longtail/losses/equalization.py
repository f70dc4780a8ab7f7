"""Equalization losses: the softmax equalization loss (Tan et al., CVPR 2020) and EQL v2 (Tan et
al., CVPR 2021)."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .._validation import as_counts, check_counts_length, check_in_range, check_positive, expected
from ._adjusted import adjusted_cross_entropy
from ._base import WeightedLoss, counts_buffer, first_order
from ._buffer_ce import BufferCE, row_major
from ._reduce import flatten_inputs, reduce_loss
from ._registry import export_function, register_loss
from ._stepped_random import SteppedRandom, check_seed, generator


# ------------------------------------------------------------------------- softmax EQL
def _tail_classes(class_counts: Any, threshold: float) -> torch.Tensor:
    """Classes whose frequency ``n_c / Σn`` is below λ (``T_λ(f_c) = 1``), as a bool ``(C,)``."""
    n = as_counts(class_counts)
    if n.sum() <= 0:
        raise expected("class_counts", "counts with a positive total", n.tolist())
    return (n / n.sum()) < threshold


def _softmax_eql(logits, target, tail, gamma, seed, weight, ignore_index, reduction):
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    check_counts_length(tail, flat.num_classes)
    x = flat.logits.to(flat.compute_dtype)
    cols = torch.nonzero(tail.to(x.device)).flatten()
    if not (gamma > 0 and cols.numel()):
        return reduce_loss(adjusted_cross_entropy(x, flat.target), flat, weight, reduction)
    idx = flat.target.unsqueeze(1)
    with torch.no_grad():
        rows = x.shape[0] if flat.valid is None else int(flat.valid.sum())
        u = torch.rand(
            (rows, cols.numel()),
            generator=generator(seed, x.device),
            device=x.device,
            dtype=torch.float32,
        )
        beta = u < gamma  # β = 1 with probability γ
        whole = flat.valid is None and cols.numel() == x.shape[1]
        if whole:
            drop = beta  # every class a tail class: no scatter
        else:
            drop = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
            if flat.valid is None:
                drop.index_copy_(1, cols, beta)
            else:
                drop[flat.valid.nonzero().flatten().unsqueeze(1), cols] = beta
        drop.scatter_(1, idx, False)  # w_y = 1: the target is never dropped
        # w̃_k = 0: e^{z_k} leaves the denominator. The adjusted logits go to the draws' buffer
        # when it has their shape and dtype (one (N, C) tensor fewer)
        buf = u if whole and u.dtype == x.dtype else row_major(x.shape, x)
        torch.where(drop, torch.tensor(float("-inf"), dtype=x.dtype, device=x.device), x, out=buf)
    loss = BufferCE.apply(x, buf, idx, 1.0)
    return reduce_loss(loss, flat, weight, reduction)


def _check_eql(threshold: float, gamma: float, seed: Any) -> None:
    check_positive("threshold", threshold, allow_zero=True)
    check_in_range("gamma", gamma, 0.0, 1.0)
    check_seed(seed)


def softmax_eql_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Any,
    *,
    threshold: float = 0.005,
    gamma: float = 0.9,
    seed: int | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax equalization loss (Tan et al., "Equalization Loss for Long-Tailed Object
    Recognition", CVPR 2020, its softmax form for image classification).

    .. math::

        \\ell_i = -\\log \\frac{e^{z_y}}{\\sum_k \\tilde w_k e^{z_k}},\\qquad
        \\tilde w_k = 1 - \\beta\\, T_\\lambda(f_k)\\,(1 - y_k)

    with ``f_k = n_k / Σ n`` the class frequency, ``T_λ(f) = 1`` for ``f < λ`` (a tail class),
    else 0, and ``β`` a Bernoulli variable, 1 with probability γ. A tail class that is not the
    target leaves the softmax's denominator with probability γ, so it receives no discouraging
    gradient from that sample.

    Random: ``β`` is drawn for every (sample, tail class) entry (the paper does not say at which
    level ``β`` is drawn; per entry is how the public transcriptions read it). ``seed`` fixes the
    draw: None draws from torch's global generator (a fresh draw each call), an int from a
    generator seeded with it (the same draw each call). The module
    (:class:`SoftmaxEQLLoss`) draws afresh for each training step, reproducibly, from its seed
    and a step counter that advances on each backward pass
    (see ``longtail.losses._stepped_random``).

    λ = 0 (no tail class) or γ = 0 is cross-entropy.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        class_counts: training examples per class ``(C,)``.
        threshold: the frequency threshold λ below which a class is a tail class; default 0.005.
            Uncertain: the paper sets λ per dataset (it ablates λ through the share of tail
            classes) and its authors' code has only the sigmoid (detection) form; 0.005 is the
            default of the softmax EQL in the BagOfTricks-LT benchmark (Zhang et al., AAAI 2021),
            a public reimplementation.
        gamma: γ, the probability that a tail class's negative term is dropped; default 0.9.
            Uncertain, for the same reason (BagOfTricks-LT's default).
        seed: the seed of the random drop, or None (torch's global generator).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    _check_eql(threshold, gamma, seed)
    tail = _tail_classes(class_counts, threshold)
    return _softmax_eql(logits, target, tail, gamma, seed, weight, ignore_index, reduction)


@register_loss(
    name="softmax-eql",
    function=softmax_eql_loss,
    family="imbalance",
    description="softmax equalization: tail negatives (f < λ) leave the softmax with probability γ",
    paper="Tan et al., CVPR 2020",
    needs_counts=True,
    uncertain=("threshold", "gamma"),
)
class SoftmaxEQLLoss(SteppedRandom, WeightedLoss):
    """Module form of :func:`softmax_eql_loss`: the tail classes are a buffer; the random drop
    is drawn per training step from the buffers ``noise_seed`` and ``noise_step`` (the step
    advances when a gradient flows back through the output), so it is reproducible and resumable.
    ``seed=None`` draws the base seed from torch's global generator as the module is built
    (so ``torch.manual_seed(s)`` first gives run ``s`` its own draws); give ``seed`` to fix it."""

    def __init__(
        self,
        class_counts: Any,
        *,
        threshold: float = 0.005,
        gamma: float = 0.9,
        seed: int | None = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        _check_eql(threshold, gamma, seed)
        counts_buffer(self, class_counts)
        self.threshold, self.gamma = threshold, gamma
        self.register_buffer("tail", _tail_classes(class_counts, threshold))
        self._init_random(seed)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = _softmax_eql(
            logits,
            target,
            self.tail,
            self.gamma,
            self.draw_seed(),
            self.weight,
            self.ignore_index,
            self.reduction,
        )
        return self._advance_on_backward(out)


# ------------------------------------------------------------------------------------ EQL v2
_INITIAL_RATIO = 100.0  # the official code's initial pos/neg ratio: every weight 1


def _float64(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def _statistic(value: Any, name: str, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    t = _float64(value).to(like.device)
    if t.dim() != 1 or t.numel() != num_classes:
        raise expected(
            name, f"a 1-D tensor of length {num_classes} (one per class)", f"shape {tuple(t.shape)}"
        )
    if not torch.isfinite(t).all() or (t < 0).any():
        raise expected(name, "finite and non-negative", t.tolist())
    return t


@export_function
def eqlv2_weights(
    pos_grad: Any, neg_grad: Any, *, gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """EQL v2's per-class weights ``(q_c, r_c)`` of the positive and negative terms from the
    accumulated gradient magnitudes: ``r = f(g_pos / g_neg)``, ``q = 1 + α (1 − r)``,
    ``f(x) = 1 / (1 + e^{−γ (x − μ)})``. A class with nothing accumulated yet (both 0) has the
    official code's initial ratio 100 (weights 1). Float64, on the statistics' device."""
    pos, neg = _float64(pos_grad), _float64(neg_grad)
    ratio = pos / (neg + 1e-10)
    ratio = torch.where((pos == 0) & (neg == 0), torch.full_like(ratio, _INITIAL_RATIO), ratio)
    neg_w = torch.sigmoid(gamma * (ratio - mu))
    return 1 + alpha * (1 - neg_w), neg_w


class _EQLv2(torch.autograd.Function):
    """Per-sample ``Σ_c w_c BCE(x_c, [c = y])`` with ``w = q`` at the target, ``r`` elsewhere;
    closed-form backward, which also hands the per-class sums of ``|∂L/∂z|`` over the positive
    and the negative entries to ``collect`` (the module's statistics)."""

    @staticmethod
    def forward(ctx, x, idx, pos_w, neg_w, collect):  # type: ignore[override]
        x_y = x.gather(1, idx).squeeze(1)
        neg_y, pos_y = neg_w[idx.squeeze(1)], pos_w[idx.squeeze(1)]
        sp = F.softplus(x)  # BCE of a negative: log(1 + e^x)
        loss = sp @ neg_w - neg_y * sp.gather(1, idx).squeeze(1) + pos_y * F.softplus(-x_y)
        ctx.save_for_backward(x, idx, pos_w, neg_w)
        ctx.collect = collect
        return loss

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        x, idx, pos_w, neg_w = ctx.saved_tensors
        s = torch.sigmoid(x)
        s_y = s.gather(1, idx)
        if ctx.collect is not None:
            # |∂ℓ/∂z| summed over the batch, per class: |g_i| r_c σ_ic at the negatives,
            # |g_i| q_y (1 − σ_iy) at the positives; from σ, without an (N, C) |grad|
            with torch.no_grad():
                ga, y = g.abs(), idx.squeeze(1)
                # to a mean of 1 over the samples that get a gradient: a factor on the whole
                # loss ("mean"'s 1/N, a mixed-precision loss scale that doubles and halves)
                # leaves the statistics alone; per-sample weights still count relative to each
                # other; an overflowed (inf) backward adds nothing
                ga = ga * (ga.ne(0).sum() / ga.sum().clamp_min(torch.finfo(ga.dtype).tiny))
                at_y = torch.zeros_like(neg_w).index_add_(0, y, ga * s_y.squeeze(1))
                neg = neg_w * ((ga.unsqueeze(0) @ s).squeeze(0) - at_y)
                pos = torch.zeros_like(pos_w).index_add_(0, y, ga * (1 - s_y.squeeze(1)))
                ctx.collect(pos * pos_w, neg)
        grad = s.mul_(neg_w)  # r_c σ(x_c) for the negatives
        grad.scatter_(1, idx, (s_y - 1) * pos_w[idx.squeeze(1)].unsqueeze(1))  # q_y (σ − 1)
        grad.mul_(g.unsqueeze(1))
        return grad, None, None, None, None


def _eqlv2(logits, target, gamma, mu, alpha, pos_grad, neg_grad, weight, ignore_index, reduction,
           collect=None):  # fmt: skip
    check_positive("gamma", gamma, allow_zero=True)
    check_positive("alpha", alpha, allow_zero=True)
    if not isinstance(mu, (int, float)):
        raise expected("mu", "a number", repr(mu))
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    x = flat.logits.to(flat.compute_dtype)
    c = flat.num_classes
    if (pos_grad is None) != (neg_grad is None):
        raise expected("pos_grad", "given together with neg_grad (or both None)", "one of them")
    if pos_grad is None:
        pos_w = neg_w = torch.ones(c, dtype=x.dtype, device=x.device)
    else:
        pos = _statistic(pos_grad, "pos_grad", c, x)
        neg = _statistic(neg_grad, "neg_grad", c, x)
        pos_w, neg_w = eqlv2_weights(pos, neg, gamma=gamma, mu=mu, alpha=alpha)
        pos_w, neg_w = pos_w.to(x.dtype), neg_w.to(x.dtype)
    loss = _EQLv2.apply(x, flat.target.unsqueeze(1), pos_w, neg_w, collect)
    return reduce_loss(loss, flat, weight, reduction)


def eqlv2_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float = 12.0,
    mu: float = 0.8,
    alpha: float = 4.0,
    pos_grad: Any = None,
    neg_grad: Any = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Equalization loss v2 (Tan et al., "Equalization Loss v2: A New Gradient Balance Approach
    for Long-tailed Object Detection", CVPR 2021): one sigmoid per class, each class's positive
    and negative terms re-weighted by the gradients accumulated so far.

    .. math::

        \\ell_i = \\sum_c w_{ic}\\, \\mathrm{BCE}(z_{ic}, [c = y_i]),\\qquad
        w_{ic} = \\begin{cases} q_c = 1 + \\alpha (1 - r_c) & c = y_i \\\\ r_c & c \\neq y_i
        \\end{cases},\\qquad r_c = f\\Big(\\frac{G^{+}_c}{G^{-}_c}\\Big),\\
        f(x) = \\frac{1}{1 + e^{-\\gamma (x - \\mu)}}

    ``G⁺_c`` and ``G⁻_c`` are the magnitudes of the gradient (w.r.t. the logits) accumulated over
    training for class ``c``'s positive and negative entries. A class whose negatives dominate
    (``G⁺/G⁻`` small, a tail class) gets ``r → 0`` (its negative gradients are suppressed) and
    ``q → 1 + α`` (its positives amplified). "mean" is over samples: the official code's
    ``Σ w·BCE / n``.

    Stateful. This function takes the statistics explicitly (``pos_grad``, ``neg_grad``; None
    for none yet: every weight 1, the official code's initial ratio of 100, which a class with
    nothing accumulated also keeps). The module (:class:`EQLv2Loss`) keeps them in buffers and
    adds ``|∂L/∂z|`` of each backward pass through it: the gradient that actually reaches the
    logits, rescaled per pass to a mean of 1 over the samples that receive one. So a factor on
    the whole loss ("mean"'s 1/N, the loss scale of ``torch.amp.GradScaler``, which doubles and
    halves during training) leaves the statistics as the official code's, while ``weight`` and
    any per-sample weighting downstream still count relative to each other. The official code
    (``tztztztztz/eqlv2``) computes the same magnitudes analytically in ``forward`` as
    ``|σ(z) − t|·w`` summed over the batch; longtail collects them in backward so that a forward
    pass without a backward (an evaluation) leaves the statistics alone. As in the official
    code, a step that the optimizer then skips (a ``GradScaler`` overflow upstream) has already
    counted. Like the official code, the statistics are summed
    over processes (``all_reduce``) under ``torch.distributed``. The detection code's background
    (objectness) column, which has weight 1 and no statistics, is left out: all ``C`` columns
    are classes.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        gamma: γ, the steepness of the mapping ``f``; default 12, the paper's and official code's.
        mu: μ, the ratio at which ``f = 1/2``; default 0.8, the paper's and official code's.
        alpha: α, the positive weights' gain; default 4.0, the paper's and official code's.
        pos_grad, neg_grad: accumulated ``G⁺``, ``G⁻`` ``(C,)`` (both or neither).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
    """
    return _eqlv2(
        logits, target, gamma, mu, alpha, pos_grad, neg_grad, weight, ignore_index, reduction
    )


@register_loss(
    name="eqlv2",
    function=eqlv2_loss,
    family="imbalance",
    description="EQL v2: per-class sigmoid BCE re-weighted by accumulated pos/neg gradient ratios",
    paper="Tan et al., CVPR 2021",
)
class EQLv2Loss(WeightedLoss):
    """Module form of :func:`eqlv2_loss`: ``pos_grad`` and ``neg_grad`` are float32 buffers,
    accumulated in each backward pass through the loss (and all-reduced under
    ``torch.distributed``)."""

    def __init__(
        self,
        *,
        gamma: float = 12.0,
        mu: float = 0.8,
        alpha: float = 4.0,
        pos_grad: Any = None,
        neg_grad: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("gamma", gamma, allow_zero=True)
        check_positive("alpha", alpha, allow_zero=True)
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        if (pos_grad is None) != (neg_grad is None):
            raise expected("pos_grad", "given together with neg_grad (or both None)", "one")
        stats = [None, None]
        if pos_grad is not None:
            pos = torch.as_tensor(pos_grad)
            stats = [
                _statistic(v, n, pos.numel(), pos).to(torch.float32)
                for v, n in ((pos_grad, "pos_grad"), (neg_grad, "neg_grad"))
            ]
        # None until the first batch tells the number of classes
        self.register_buffer("pos_grad", stats[0])
        self.register_buffer("neg_grad", stats[1])

    def _collect(self, pos: torch.Tensor, neg: torch.Tensor) -> None:
        with torch.no_grad():
            stats = torch.stack([pos, neg])
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                dist.all_reduce(stats)
            if self.pos_grad is None or self.pos_grad.shape != pos.shape:
                self.pos_grad = torch.zeros_like(pos, dtype=torch.float32)
                self.neg_grad = torch.zeros_like(pos, dtype=torch.float32)
            self.pos_grad += stats[0].to(self.pos_grad.dtype)
            self.neg_grad += stats[1].to(self.neg_grad.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # statistics gathered after training began: make room in a freshly built module
        for name in ("pos_grad", "neg_grad"):
            v = state_dict.get(prefix + name)
            mine = getattr(self, name)
            if v is not None and (mine is None or mine.shape != v.shape):
                setattr(self, name, torch.empty_like(v))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        collect = self._collect if torch.is_grad_enabled() and logits.requires_grad else None
        return _eqlv2(
            logits,
            target,
            self.gamma,
            self.mu,
            self.alpha,
            self.pos_grad,
            self.neg_grad,
            self.weight,
            self.ignore_index,
            self.reduction,
            collect,
        )
