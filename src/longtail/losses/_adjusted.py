"""One fused primitive under the imbalance losses: cross-entropy on affinely adjusted logits.

Most imbalance-aware losses are

.. math::

    \\ell_i = \\mathrm{CE}\\big(s\\,(a \\odot z_i + b - \\Delta_i e_{y_i}),\\ y_i\\big)

with a per-class scale ``a`` (VS loss), a per-class bias ``b`` (logit adjustment, balanced softmax,
VS), a per-sample target margin ``Δ_i`` (LDAM: a constant per class; MM: a function of the logits,
given as ``margin_fn``) and a global scale ``s`` (LDAM, MM). ``a``, ``b``, ``Δ`` and ``s`` are
constants of the loss: no gradient flows into them (for MM this is the stop-gradient on Δ of the
official code). The primitive knows no particular loss: a loss is a choice of these four.

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

from collections.abc import Callable

import torch

from .._validation import check_counts_length
from ._base import first_order
from ._reduce import flatten_inputs, reduce_loss
from ._registry import export_function

#: A per-sample target margin computed from the logits: ``margin_fn(z, idx, s)`` gets the
#: ``(M, C)`` buffer ``z = s·(a ⊙ logits + b)`` (owned by the primitive: the function may overwrite
#: its target column, which the primitive rewrites afterwards), the ``(M, 1)`` labels and ``s``,
#: and returns ``Δ`` as ``(M, 1)``, in units of the unscaled logits. It runs without gradient.
MarginFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


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
    def forward(ctx, logits, target, scale, class_scale, class_bias, margin, margin_fn):  # type: ignore[override]
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
            or margin_fn is not None
            or not logits.is_contiguous()
        ):
            # upcast before scaling: a half product s·z would round (and overflow past 65504/s)
            adj = _row_major_buffer(logits, ctype).copy_(logits)
            if scale != 1.0:
                adj.mul_(scale)
        else:
            adj = logits  # nothing to adjust, already row-major: log_softmax makes the copy
        idx = target.unsqueeze(1)
        if margin_fn is not None:
            # the margin reads the buffer we own anyway (MM masks the target column in it for one
            # amax pass: no top-k, no extra (M, C) copy), then the target column is rewritten
            zy = adj.gather(1, idx)
            delta = margin_fn(adj, idx, scale)
            adj.scatter_(1, idx, zy - scale * delta.to(zy.dtype))
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
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        logp, target, class_scale = ctx.saved_tensors
        grad = torch.softmax(logp, dim=1)
        idx = target.unsqueeze(1)
        grad.scatter_add_(1, idx, grad.new_full((idx.shape[0], 1), -1.0))
        coef = grad_loss.to(grad.dtype)
        grad.mul_((coef * ctx.scale if ctx.scale != 1.0 else coef).unsqueeze(1))
        if class_scale is not None:
            grad.mul_(class_scale.to(grad.dtype))
        return grad.to(ctx.in_dtype), None, None, None, None, None, None


@export_function
def adjusted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scale: float = 1.0,
    class_scale: torch.Tensor | None = None,
    class_bias: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
    margin_fn: MarginFn | None = None,
) -> torch.Tensor:
    """Per-sample ``CE(scale · (class_scale ⊙ z + class_bias − margin_i e_{y_i}), y_i)``.

    The fused primitive under the imbalance losses (see the module docstring): one affine pass,
    one ``log_softmax``, and the closed-form backward ``s·a ⊙ (softmax − e_y)``.

    Args:
        logits: ``(M, C)`` floating logits (any float dtype; computed in at least float32).
        target: ``(M,)`` int64 labels, all in ``[0, C)`` (callers resolve ``ignore_index`` first).
        scale: the global logit scale ``s``.
        class_scale: ``(C,)`` multiplicative per-class factor ``a`` or None.
        class_bias: ``(C,)`` additive per-class bias ``b`` or None.
        margin: ``(M,)`` per-sample margin ``Δ_i`` subtracted from the target logit, or None.
        margin_fn: instead of ``margin``, a margin computed from the logits inside, as a
            constant (see :data:`MarginFn`; the MM loss's is
            :func:`longtail.losses.max_margin.mm_margin_fn`).

    Returns:
        ``(M,)`` per-sample losses in the compute dtype (float32 for half inputs). Gradients flow to
        ``logits`` only.
    """
    if margin is not None and margin_fn is not None:
        raise ValueError("Expected `margin` or `margin_fn`, but got both.")
    return _AdjustedCrossEntropy.apply(
        logits, target, float(scale), class_scale, class_bias, margin, margin_fn
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
    margin_fn: MarginFn | None = None,
    min_classes: int = 1,
) -> torch.Tensor:
    """A class-index loss built on :func:`adjusted_cross_entropy`: checks and flattens the
    inputs, looks up per-class quantities (all ``(C,)``, derived from ``class_counts``) for each
    sample, and applies weight / ignore_index / reduction.

    ``class_margin`` is a per-class target margin (LDAM); ``margin_fn`` one computed from the
    logits (MM), which needs ``min_classes=2`` (a max over the other classes).
    """
    flat = flatten_inputs(
        logits,
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        min_classes=min_classes,
    )
    dev, dt = flat.logits.device, flat.compute_dtype

    def per_class(v):
        if not torch.is_tensor(v):
            return v
        check_counts_length(v, flat.num_classes)
        return v.to(device=dev, dtype=dt)

    class_scale, class_bias = per_class(class_scale), per_class(class_bias)
    margin = None if class_margin is None else per_class(class_margin)[flat.target]
    loss = adjusted_cross_entropy(
        flat.logits,
        flat.target,
        scale=scale,
        class_scale=class_scale,
        class_bias=class_bias,
        margin=margin,
        margin_fn=margin_fn,
    )
    return reduce_loss(loss, flat, weight, reduction)
