"""The one place that checks class-index inputs and applies weight / ignore_index / reduction.

Every class-index loss in longtail is written as a per-sample loss on flat inputs
(logits ``(M, C)``, labels ``(M,)``); :func:`flatten_inputs` turns the user's inputs into that form
(moving the class dimension of ``(N, C, d1, ...)`` inputs last), and :func:`reduce_loss` turns the
per-sample values back into what ``reduction`` asks for, with the conventions of ``torch.nn``:

* ``weight`` is a per-class rescaling; ``"mean"`` is the weighted mean
  ``Σ w_{y_i} ℓ_i / Σ w_{y_i}``;
* entries whose label equals ``ignore_index`` contribute nothing, to the sum or to the count;
* ``"none"`` returns one value per entry (``0`` where ignored), in the input's batch shape.

One deliberate difference from ``torch.nn.functional.cross_entropy``: ``"mean"`` over an empty
batch (or one where every label is ignored) is ``0``, still attached to the graph, not ``nan``.
A NaN there would poison a whole training run for the sake of one empty micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_class_vector, check_reduction, expected


@dataclass
class FlatInputs:
    """Checked inputs of a class-index loss, flattened to ``(M, C)`` logits, ``(M,)`` labels."""

    logits: torch.Tensor  # (M, C), the user's dtype
    target: torch.Tensor  # (M,) int64, ignored entries replaced by 0 so that gather/scatter work
    valid: torch.Tensor | None  # (M,) bool, None when nothing is ignored
    batch_shape: tuple[int, ...]  # (N, d1, ...) for reduction="none"
    compute_dtype: torch.dtype  # float32 for half inputs, else the input dtype

    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]


def compute_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """Losses are computed in at least float32 (half and bfloat16 inputs are upcast inside)."""
    return torch.promote_types(dtype, torch.float32)


def flatten_inputs(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    min_classes: int = 1,
) -> FlatInputs:
    """Check ``logits`` (N, C, d1, ...) and integer ``target`` (N, d1, ...); flatten them.

    Raises ``ValueError`` for a non-floating ``logits``, a non-integer ``target``, mismatched
    shapes, labels outside ``[0, C)`` other than ``ignore_index``, a ``weight`` that is not one
    finite value per class, and an unknown ``reduction``.
    """
    check_reduction(reduction)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    if (
        not isinstance(target, torch.Tensor)
        or target.is_floating_point()
        or target.is_complex()
        or target.dtype == torch.bool  # as torch's cross_entropy: a bool is no class index
    ):
        got = target.dtype if isinstance(target, torch.Tensor) else type(target).__name__
        raise expected("target", "an integer tensor of class indices", got)
    unbatched = logits.dim() == 1 and target.dim() == 0  # one sample: (C,) and (), as torch
    if unbatched:
        logits, target = logits.unsqueeze(0), target.unsqueeze(0)
    if logits.dim() < 2:
        raise expected(
            "logits",
            "of shape (N, C) or (N, C, d1, ...), or (C,) with a 0-d target",
            f"shape {tuple(logits.shape)} with a target of shape {tuple(target.shape)}",
        )
    num_classes = logits.shape[1]
    if num_classes < min_classes:
        raise expected("logits", f"of at least {min_classes} classes", f"{num_classes}")
    batch_shape = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != batch_shape:
        raise expected(
            "target",
            f"of shape {batch_shape} to match logits of shape {tuple(logits.shape)}",
            f"shape {tuple(target.shape)}",
        )
    check_class_vector("weight", weight, num_classes)

    if logits.dim() > 2:
        logits = logits.movedim(1, -1).reshape(-1, num_classes)
    target = target.reshape(-1).long()

    valid = None
    if target.numel():
        # One reduction and one sync in the common case (every label a class, none ignored).
        lo, hi = torch.stack(torch.aminmax(target)).tolist()
        if lo < 0 or hi >= num_classes or lo <= ignore_index <= hi:
            ignored = target == ignore_index
            out_of_range = ((target < 0) | (target >= num_classes)) & ~ignored
            if out_of_range.any():
                bad = target[out_of_range][:5].tolist()
                raise expected(
                    "target",
                    f"class indices in [0, {num_classes}) (or ignore_index={ignore_index})",
                    f"labels {bad}",
                )
            if ignored.any():
                valid = ~ignored
                target = target.masked_fill(ignored, 0)
    if unbatched:
        batch_shape = ()
    return FlatInputs(logits, target, valid, batch_shape, compute_dtype_for(logits.dtype))


def reduce_loss(
    loss: torch.Tensor,
    flat: FlatInputs,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Apply per-class ``weight``, the ignore mask and ``reduction`` to per-sample ``loss`` (M,)."""
    w = None
    if weight is not None:
        w = weight.to(device=loss.device, dtype=loss.dtype)[flat.target]
    if flat.valid is not None:
        # where, not a product: an ignored entry's value may be anything, even inf.
        loss = torch.where(flat.valid, loss, loss.new_zeros(()))
        mask = flat.valid.to(loss.dtype)
        w = mask if w is None else w * mask

    if reduction == "none":
        out = loss if w is None else loss * w
        return out.reshape(flat.batch_shape)
    if reduction == "sum":
        return loss.sum() if w is None else (loss * w).sum()
    if w is None:
        if loss.numel() == 0:
            return loss.sum()  # 0, attached to the graph
        return loss.mean()
    num = (loss * w).sum()
    den = w.sum()
    # Σw = 0 (empty batch, all ignored, zero weights) implies Σwℓ = 0: return that 0, not 0/0.
    return num / torch.where(den > 0, den, den.new_ones(()))
