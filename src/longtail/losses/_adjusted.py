"""One fused primitive under the imbalance losses: cross-entropy on affinely adjusted logits.

Most imbalance-aware losses are

.. math::

    \\ell_i = \\mathrm{CE}\\big(s\\,(a \\odot z_i + b - \\Delta_i e_{y_i}),\\ y_i\\big)

with a per-class scale ``a`` (VS loss), a per-class bias ``b`` (logit adjustment, balanced softmax,
VS), a per-sample target margin ``Δ_i`` (LDAM, MM) and a global scale ``s`` (LDAM, MM).
``a``, ``b``, ``Δ`` and ``s`` are constants of the loss: no gradient flows into them (for MM
this is the stop-gradient on Δ of the official code).

Composed from generic tensor ops this costs several passes over the ``(N, C)`` logits forward and
as many again in autograd's backward; here the forward is one affine pass, one ``log_softmax`` and a
gather, and the backward is the closed form

.. math::

    \\partial \\ell_i / \\partial z_i
    = g_i \\, s\\, a \\odot (\\mathrm{softmax}(\\tilde z_i) - e_{y_i})

computed in place from one ``softmax`` call. The softmax is taken of the saved log-probabilities
with the softmax kernel, not with ``exp``: on CPU ``torch.exp`` is about 20× slower on the very
negative log-probabilities that scaled logits (s = 30) produce.

The adjusted logits are written into a fresh row-major ``(M, C)`` buffer whatever the layout of the
caller's logits (transposed, a slice, the column-major view of a ``(1, C, H, W)`` map), so the loss
and its gradient do not depend on the layout; the in-place ``log_softmax`` is only correct on such
a buffer.
"""

from __future__ import annotations

import torch

from .._validation import check_counts_length
from ._reduce import flatten_inputs, reduce_loss


def mm_delta(gap: torch.Tensor, delta_minus: float | torch.Tensor, beta: float) -> torch.Tensor:
    """Δ of the MM loss from the gap ``g = z_y − max_{j≠y} z_j``: ``exp(−|g| − δ)``, with
    ``δ = β·δ⁻`` where ``g ≥ 0`` (the target is an argmax, ties included), else ``δ⁻``."""
    # δ = δ⁻ + [g ≥ 0]·(β − 1)·δ⁻, built in the gap's dtype (a where() of two Python numbers
    # would come out in the default dtype and cost float64 inputs their precision)
    delta = (gap >= 0).to(gap.dtype).mul_(delta_minus * (beta - 1)).add_(delta_minus)
    return delta.add_(gap.abs()).neg_().exp_()


def _row_major_buffer(logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A fresh row-major ``(M, C)`` buffer for the adjusted logits, whatever ``logits``' layout.

    Out-of-place ops would give their result the caller's strides (a transposed ``(C, M).t()``,
    or the ``(1, C, H, W)`` input that :func:`flatten_inputs` flattens to a column-major view),
    and the CPU ``_log_softmax(..., out=)`` kernel writes its result as if ``out`` were row-major
    whatever its strides (pytorch/pytorch#75923): the log-probabilities came out permuted.
    Writing the adjusted logits into this buffer with ``out=`` costs no extra pass.
    """
    return torch.empty(logits.shape, dtype=dtype, device=logits.device)


class _AdjustedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, scale, class_scale, class_bias, margin, mm_dm, mm_beta):  # type: ignore[override]
        ctype = torch.promote_types(logits.dtype, torch.float32)
        if class_scale is not None:
            a = class_scale.to(ctype) * scale
            b = (
                class_bias.to(ctype) * scale
                if class_bias is not None
                else torch.zeros((), dtype=ctype, device=logits.device)
            )
            adj = torch.addcmul(b, logits, a, out=_row_major_buffer(logits, ctype))
        elif class_bias is not None:
            adj = torch.add(
                class_bias.to(ctype) * scale,
                logits,
                alpha=scale,
                out=_row_major_buffer(logits, ctype),
            )
        elif scale != 1.0 and logits.dtype == ctype:
            adj = torch.mul(logits, scale, out=_row_major_buffer(logits, ctype))
        elif (
            scale != 1.0
            or logits.dtype != ctype
            or margin is not None
            or mm_dm is not None
            or not logits.is_contiguous()
        ):
            # upcast before scaling: a half product s·z would round (and overflow past 65504/s)
            adj = _row_major_buffer(logits, ctype).copy_(logits)
            if scale != 1.0:
                adj.mul_(scale)
        else:
            adj = logits  # nothing to adjust, already row-major: log_softmax makes the copy
        idx = target.unsqueeze(1)
        if mm_dm is not None:
            # MM: the max over j ≠ y read from the buffer we own anyway, with the target column
            # masked for one amax pass (no top-k, no extra (M, C) copy).
            zy = adj.gather(1, idx)
            adj.scatter_(1, idx, float("-inf"))
            gap = (zy - adj.amax(1, keepdim=True)) / scale
            delta = mm_delta(gap, mm_dm.unsqueeze(1) if torch.is_tensor(mm_dm) else mm_dm, mm_beta)
            adj.scatter_(1, idx, zy - scale * delta)
        elif margin is not None:
            adj.scatter_add_(1, idx, margin.to(ctype).unsqueeze(1) * (-scale))
        if adj is not logits and adj.device.type == "cpu":
            # The buffer is ours and row-major (see _row_major_buffer): write the log-probabilities
            # over it (one (M, C) allocation fewer; the CPU kernel reads each row before writing
            # it, checked bit-exact in tests).
            logp = torch._log_softmax(adj, 1, False, out=adj)
        else:
            logp = torch.log_softmax(adj, dim=1)
        del adj
        loss = logp.gather(1, idx).squeeze(1).neg()
        # logp is row-major, so is the gradient built from it; autograd maps it back through the
        # caller's views (transpose, movedim/reshape) to the caller's layout.
        ctx.save_for_backward(logp, target, class_scale)
        ctx.scale = scale
        ctx.in_dtype = logits.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):  # type: ignore[override]
        logp, target, class_scale = ctx.saved_tensors
        grad = torch.softmax(logp, dim=1)
        idx = target.unsqueeze(1)
        grad.scatter_add_(1, idx, grad.new_full((idx.shape[0], 1), -1.0))
        coef = grad_loss.to(grad.dtype)
        grad.mul_((coef * ctx.scale if ctx.scale != 1.0 else coef).unsqueeze(1))
        if class_scale is not None:
            grad.mul_(class_scale.to(grad.dtype))
        return grad.to(ctx.in_dtype), None, None, None, None, None, None, None


def adjusted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scale: float = 1.0,
    class_scale: torch.Tensor | None = None,
    class_bias: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
    mm_delta_minus: float | torch.Tensor | None = None,
    mm_beta: float = 1.0,
) -> torch.Tensor:
    """Per-sample ``CE(scale · (class_scale ⊙ z + class_bias − margin_i e_{y_i}), y_i)``.

    Args:
        logits: ``(M, C)`` floating logits (any float dtype; computed in at least float32).
        target: ``(M,)`` int64 labels, all in ``[0, C)`` (callers resolve ``ignore_index`` first).
        scale: the global logit scale ``s``.
        class_scale: ``(C,)`` multiplicative per-class factor ``a`` or None.
        class_bias: ``(C,)`` additive per-class bias ``b`` or None.
        margin: ``(M,)`` per-sample margin ``Δ_i`` subtracted from the target logit, or None.
        mm_delta_minus: instead of ``margin``, the MM loss's δ⁻ (a number or ``(M,)`` per sample):
            the margin is then :func:`mm_delta` of the gap of ``class_scale ⊙ z + class_bias``,
            computed inside, as a constant.
        mm_beta: the MM loss's β (δ⁺ = β δ⁻).

    Returns:
        ``(M,)`` per-sample losses in the compute dtype (float32 for half inputs). Gradients flow to
        ``logits`` only.
    """
    if margin is not None and mm_delta_minus is not None:
        raise ValueError("Expected `margin` or `mm_delta_minus`, but got both.")
    return _AdjustedCrossEntropy.apply(
        logits,
        target,
        float(scale),
        class_scale,
        class_bias,
        margin,
        mm_delta_minus,
        float(mm_beta),
    )


def adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    scale: float = 1.0,
    class_scale: torch.Tensor | None = None,
    class_bias: torch.Tensor | None = None,
    class_margin: torch.Tensor | None = None,
    mm_delta_minus: float | torch.Tensor | None = None,
    mm_beta: float = 1.0,
) -> torch.Tensor:
    """A class-index loss built on :func:`adjusted_cross_entropy`: checks and flattens the
    inputs, looks up per-class quantities (all ``(C,)``, derived from ``class_counts``) for each
    sample, and applies weight / ignore_index / reduction.

    ``class_margin`` is a per-class target margin (LDAM); ``mm_delta_minus`` is the MM loss's δ⁻,
    a number or a per-class ``(C,)`` tensor (MM-LDAM).
    """
    flat = flatten_inputs(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        min_classes=2 if mm_delta_minus is not None else 1,
    )
    dev, dt = flat.logits.device, flat.compute_dtype

    def per_class(v):
        if not torch.is_tensor(v):
            return v
        check_counts_length(v, flat.num_classes)
        return v.to(device=dev, dtype=dt)

    class_scale, class_bias = per_class(class_scale), per_class(class_bias)
    margin = None if class_margin is None else per_class(class_margin)[flat.target]
    dm = per_class(mm_delta_minus)
    if torch.is_tensor(dm):
        dm = dm[flat.target]
    loss = adjusted_cross_entropy(
        flat.logits,
        flat.target,
        scale=scale,
        class_scale=class_scale,
        class_bias=class_bias,
        margin=margin,
        mm_delta_minus=dm,
        mm_beta=mm_beta,
    )
    return reduce_loss(loss, flat, weight, reduction)
