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
"""

from __future__ import annotations

import torch


class _AdjustedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, scale, class_scale, class_bias, margin):  # type: ignore[override]
        ctype = torch.promote_types(logits.dtype, torch.float32)
        if class_scale is not None:
            a = class_scale.to(ctype) * scale
            b = (
                class_bias.to(ctype) * scale
                if class_bias is not None
                else torch.zeros((), dtype=ctype, device=logits.device)
            )
            adj = torch.addcmul(b, logits, a)
        elif class_bias is not None:
            adj = torch.add(class_bias.to(ctype) * scale, logits, alpha=scale)
        elif scale != 1.0 or logits.dtype != ctype:
            adj = logits.to(ctype) * scale
        else:
            adj = logits
        idx = target.unsqueeze(1)
        if margin is not None:
            if adj is logits:
                adj = adj.clone()
            adj.scatter_add_(1, idx, margin.to(ctype).unsqueeze(1) * (-scale))
        logp = torch.log_softmax(adj, dim=1)
        del adj
        loss = logp.gather(1, idx).squeeze(1).neg()
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
        grad.mul_((grad_loss.to(grad.dtype) * ctx.scale).unsqueeze(1))
        if class_scale is not None:
            grad.mul_(class_scale.to(grad.dtype))
        return grad.to(ctx.in_dtype), None, None, None, None, None


def adjusted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    scale: float = 1.0,
    class_scale: torch.Tensor | None = None,
    class_bias: torch.Tensor | None = None,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample ``CE(scale · (class_scale ⊙ z + class_bias − margin_i e_{y_i}), y_i)``.

    Args:
        logits: ``(M, C)`` floating logits (any float dtype; computed in at least float32).
        target: ``(M,)`` int64 labels, all in ``[0, C)`` (callers resolve ``ignore_index`` first).
        scale: the global logit scale ``s``.
        class_scale: ``(C,)`` multiplicative per-class factor ``a`` or None.
        class_bias: ``(C,)`` additive per-class bias ``b`` or None.
        margin: ``(M,)`` per-sample margin ``Δ_i`` subtracted from the target logit, or None.

    Returns:
        ``(M,)`` per-sample losses in the compute dtype (float32 for half inputs). Gradients flow to
        ``logits`` only.
    """
    return _AdjustedCrossEntropy.apply(
        logits, target, float(scale), class_scale, class_bias, margin
    )
