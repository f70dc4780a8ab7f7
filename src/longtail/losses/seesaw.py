"""Seesaw loss (Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation", CVPR 2021)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validation import check_positive, expected
from ._base import WeightedLoss, first_order
from ._reduce import flatten_inputs, reduce_loss
from ._registry import register_loss


def _cumulative_counts(cum_samples: Any, num_classes: int, device: torch.device) -> torch.Tensor:
    """The counts before this batch as an int64 ``(C,)`` tensor (zeros for None), checked."""
    if cum_samples is None:
        return torch.zeros(num_classes, dtype=torch.int64, device=device)
    t = torch.as_tensor(cum_samples, device=device)
    if t.dim() != 1 or t.numel() != num_classes:
        raise expected(
            "cum_samples",
            f"a 1-D tensor of length {num_classes} (one count per class)",
            f"shape {tuple(t.shape)}",
        )
    if t.is_floating_point():
        if not torch.isfinite(t).all() or (t != t.round()).any():
            raise expected("cum_samples", "whole numbers of samples", t.tolist())
        t = t.to(torch.int64)
    if (t < 0).any():
        raise expected("cum_samples", "non-negative", t.tolist())
    return t.to(torch.int64)


class _SeesawCE(torch.autograd.Function):
    """``CE(z + log S, y)`` per sample with ``S`` a constant of the backward (mmdetection detaches
    the softmax), fused: ``log S_yj = p·min(log N_j − log N_y, 0) + q·max(log σ_j −
    log max(σ_y, eps), 0)`` (``j ≠ y``) and then ``z + log S`` are built in one row-major buffer,
    which the log-softmax then overwrites; backward ``softmax(z + log S) − e_y``."""

    @staticmethod
    def forward(ctx, x, idx, log_n, log_ny, p, q, log_eps):  # type: ignore[override]
        x_y = x.gather(1, idx)
        buf = None
        if q > 0:
            # q·max(log σ_j − log max(σ_y, eps), 0), in the (row-major) log-softmax's buffer
            buf = torch.log_softmax(x, dim=1).contiguous()
            floor = buf.gather(1, idx).clamp_min_(log_eps)
            buf.sub_(floor).clamp_min_(0.0).mul_(q)
        if p > 0:
            mitigation = torch.sub(log_n.unsqueeze(0), log_ny.unsqueeze(1)).clamp_max_(0.0)
            buf = mitigation.mul_(p) if buf is None else buf.add_(mitigation, alpha=p)
        buf = x.clone(memory_format=torch.contiguous_format) if buf is None else buf.add_(x)
        # the target column is z_y itself (its factors are 1; an ignored row's label may be an
        # unseen class)
        buf.scatter_(1, idx, x_y)
        if buf.device.type == "cpu":
            # our row-major buffer: the CPU kernel reads each row before writing it (_adjusted)
            logp = torch._log_softmax(buf, 1, False, out=buf)
        else:
            logp = torch.log_softmax(buf, dim=1)
        ctx.save_for_backward(logp, idx)
        return logp.gather(1, idx).squeeze(1).neg()

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        logp, idx = ctx.saved_tensors
        grad = torch.softmax(logp, dim=1)  # the softmax kernel, not exp (see _adjusted)
        grad.scatter_add_(1, idx, grad.new_full((idx.shape[0], 1), -1.0))
        grad.mul_(g.unsqueeze(1))
        return grad, None, None, None, None, None, None


def _seesaw(
    logits, target, p, q, eps, cum_samples, weight, ignore_index, reduction, on_counts=None
):
    check_positive("p", p, allow_zero=True)
    check_positive("q", q, allow_zero=True)
    check_positive("eps", eps)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    x = flat.logits.to(flat.compute_dtype)
    c = flat.num_classes
    labels = flat.target if flat.valid is None else flat.target[flat.valid]
    counts = _cumulative_counts(cum_samples, c, x.device)
    counts = counts + torch.bincount(labels, minlength=c)  # this batch counts (mmdet's order)
    if on_counts is not None:
        on_counts(counts)
    idx = flat.target.unsqueeze(1)
    log_n = log_ny = None
    if p > 0:
        log_n = counts.to(torch.float64).log().to(x.dtype)  # log 0 = −inf: M = 0, unseen class
        # N_y ≥ 1 for every entry not ignored; the clamp keeps ignored rows free of −inf − −inf
        log_ny = counts.clamp_min(1).to(torch.float64).log().to(x.dtype)[flat.target]
    loss = _SeesawCE.apply(x, idx, log_n, log_ny, float(p), float(q), math.log(eps))
    return reduce_loss(loss, flat, weight, reduction)


def seesaw_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    p: float = 0.8,
    q: float = 2.0,
    eps: float = 0.01,
    cum_samples: Any = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Seesaw loss (Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation", CVPR 2021).

    Cross-entropy whose negative terms are re-weighted per pair (target ``i = y``, class ``j``):

    .. math::

        \\ell = -\\log \\frac{e^{z_i}}{e^{z_i} + \\sum_{j \\neq i} S_{ij} e^{z_j}},\\qquad
        S_{ij} = M_{ij} C_{ij},

        M_{ij} = \\begin{cases} (N_j / N_i)^p & N_i > N_j \\\\ 1 & \\text{else} \\end{cases},
        \\qquad
        C_{ij} = \\begin{cases} (\\sigma_j / \\sigma_i)^q & \\sigma_j > \\sigma_i \\\\
        1 & \\text{else} \\end{cases}

    ``N_c`` is the number of samples of class ``c`` seen so far in training, *this batch included*
    (the mitigation factor ``M`` spares the rare class ``j`` the negative gradients of the frequent
    class ``i``); ``σ = softmax(z)`` (the compensation factor ``C`` restores the penalty when class
    ``j`` is wrongly scored above the target). As in the official code (mmdetection's
    ``seesaw_ce_loss``) ``σ_i`` is floored at ``eps`` and both factors are constants of the
    backward (the softmax is detached), so the gradient is that of CE on ``z + log S``.

    Two differences from mmdetection, both deliberate:

    * ``N_j = 0`` (a class not seen yet) gives ``M_ij = 0``, the paper's formula; mmdetection
      clamps the counts at 1, giving ``(1/N_i)^p``. They differ only until every class has been
      seen, and without the clamp the factor depends only on the ratios of the counts, so a
      repeated batch gives the same loss.
    * The objectness branch (mmdetection's two extra logits for foreground/background, with their
      own cross-entropy) is left out: this is the classification loss over the ``C`` classes.
      Counts are not all-reduced across processes (mmdetection neither).

    ``p = 0`` and ``q = 0`` is cross-entropy.

    Stateful: the module (:class:`SeesawLoss`) keeps the cumulative counts in a buffer
    (``cum_samples``) and adds each batch's labels in ``forward``; this function takes the counts
    *before* the batch and returns the loss the module would.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype.
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits, target: as above.
        p: exponent of the mitigation factor; default 0.8, the paper's and mmdetection's.
        q: exponent of the compensation factor; default 2.0, the paper's and mmdetection's.
        eps: floor of ``σ_i`` in the compensation ratio; default 0.01, mmdetection's (the paper
            does not need one).
        cum_samples: samples per class seen before this batch, ``(C,)`` whole numbers; None for
            none (the module's state at the start of training).
        weight, ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``; ignored
            entries are not counted in ``N``.
    """
    return _seesaw(logits, target, p, q, eps, cum_samples, weight, ignore_index, reduction)


@register_loss(
    name="seesaw",
    function=seesaw_loss,
    family="imbalance",
    description="seesaw: CE with negatives scaled by (N_j/N_y)^p (counts seen) and (σ_j/σ_y)^q",
    paper="Wang et al., CVPR 2021",
    stop_gradient="the compensation factor (σ_j/σ_y)^q: detached, as in mmdetection",
)
class SeesawLoss(WeightedLoss):
    """Module form of :func:`seesaw_loss`; the samples seen per class are the int64 buffer
    ``cum_samples``, updated in ``forward`` with each batch's (not ignored) labels in training
    mode with gradients on only: after ``.eval()``, or under ``torch.no_grad()`` (a validation
    pass in a loop that puts the model, not the loss, in eval mode), a batch is scored with the
    counts plus its own labels, as in training, but the buffer keeps its value (like
    BatchNorm's running statistics; mmdetection computes the loss in training only, so it never
    meets the case)."""

    def __init__(
        self,
        *,
        p: float = 0.8,
        q: float = 2.0,
        eps: float = 0.01,
        cum_samples: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("p", p, allow_zero=True)
        check_positive("q", q, allow_zero=True)
        check_positive("eps", eps)
        self.p, self.q, self.eps = p, q, eps
        counts = None
        if cum_samples is not None:
            counts = torch.as_tensor(cum_samples)
            counts = _cumulative_counts(counts, counts.numel(), counts.device)
        # None until the first batch tells the number of classes
        self.register_buffer("cum_samples", counts)

    def _store(self, counts: torch.Tensor) -> None:
        self.cum_samples = counts

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint taken after training began holds counts a fresh module has no buffer for
        counts = state_dict.get(prefix + "cum_samples")
        if counts is not None and (
            self.cum_samples is None or self.cum_samples.shape != counts.shape
        ):
            self.cum_samples = torch.empty_like(counts)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _seesaw(
            logits,
            target,
            self.p,
            self.q,
            self.eps,
            self.cum_samples,
            self.weight,
            self.ignore_index,
            self.reduction,
            # in eval mode, or without gradients, the counts are read, not updated (as
            # BatchNorm's running statistics): a validation loss must not change what training
            # sees next, and the usual loop calls model.eval() and no_grad(), not loss.eval()
            on_counts=self._store if self.training and torch.is_grad_enabled() else None,
        )
