"""Cross-entropy of adjusted logits built, without gradient, in a buffer the loss owns.

Several losses adjust the logits by something that is a constant of the backward (a random drop,
random noise) and then take cross-entropy. Built as ``x + constant`` with autograd, that costs an
``(N, C)`` tensor for the adjusted logits, another for the log-probabilities and a pass to add the
gradient back. :class:`BufferCE` instead takes the adjusted logits in a row-major buffer the caller
allocated (often the buffer of its random draws), overwrites them with the log-probabilities, and
hands ``scale · (softmax − e_y)`` back to the logits ``x`` they were computed from (``buf = scale
· x + constant``).
"""

from __future__ import annotations

import torch

from ._base import first_order


class BufferCE(torch.autograd.Function):
    """Per-sample ``−log softmax(buf)_y``; the gradient w.r.t. ``x`` is ``scale·(softmax(buf) −
    e_y)``. ``buf`` must be a fresh row-major ``(M, C)`` tensor of the compute dtype (it is
    overwritten); ``x`` is only the tensor the gradient goes to."""

    @staticmethod
    def forward(ctx, x, buf, idx, scale):  # type: ignore[override]
        if buf.device.type == "cpu":
            # row-major and ours: the CPU kernel reads each row before writing it (see _adjusted)
            logp = torch._log_softmax(buf, 1, False, out=buf)
        else:
            logp = torch.log_softmax(buf, dim=1)
        ctx.save_for_backward(logp, idx)
        ctx.scale = scale
        return logp.gather(1, idx).squeeze(1).neg()

    @staticmethod
    @first_order
    def backward(ctx, g):  # type: ignore[override]
        logp, idx = ctx.saved_tensors
        grad = torch.softmax(logp, dim=1)  # the softmax kernel, not exp (see _adjusted)
        grad.scatter_add_(1, idx, grad.new_full((idx.shape[0], 1), -1.0))
        grad.mul_((g * ctx.scale if ctx.scale != 1.0 else g).unsqueeze(1))
        return grad, None, None, None


def row_major(shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised row-major buffer of ``like``'s dtype and device."""
    return torch.empty(shape, dtype=like.dtype, device=like.device)
