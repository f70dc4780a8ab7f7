"""Shared pieces of the loss modules: weight / ignore_index / reduction held as module state."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .._validation import as_counts, check_reduction, expected


def per_class_tensor(value: Any, name: str = "weight") -> torch.Tensor | None:
    """A per-class vector given as a sequence, array or tensor, as a tensor (or None).

    A floating-point tensor keeps its dtype, so that a module holding it computes what its
    function computes with the same tensor (a float64 weight stays float64); anything else
    (a list, a NumPy array, an integer tensor) becomes float32.
    """
    if value is None:
        return None
    keep = isinstance(value, torch.Tensor) and value.is_floating_point()
    t = torch.as_tensor(value)
    if t.dim() != 1:
        raise expected(name, "a 1-D per-class vector", f"shape {tuple(t.shape)}")
    return t.detach() if keep else t.detach().to(torch.float32)


def keep_number_or_per_class(module: torch.nn.Module, name: str, value: Any) -> None:
    """Hold ``value`` on ``module`` as ``name`` the way its function takes it: a number (or a
    0-d tensor), which applies to every class, as a float attribute; anything else as a
    per-class buffer (:func:`per_class_tensor`, which refuses other shapes)."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = value.item()
    if isinstance(value, int | float) and not isinstance(value, bool):
        setattr(module, name, float(value))
    else:
        module.register_buffer(name, per_class_tensor(value, name))


def first_order(backward: Any) -> Any:
    """Decorate the ``backward`` of an ``autograd.Function`` written out in closed form.

    The closed-form gradient is computed from tensors saved without a graph, so a second
    derivative through it (``create_graph=True``) would silently miss its dependence on the
    input (``torch``'s ``once_differentiable`` raises only where the incoming gradient itself
    requires grad, not after a ``mean``). This raises instead, and runs the backward without
    building a graph.
    """
    import functools

    @functools.wraps(backward)
    def wrapper(ctx: Any, *grads: Any) -> Any:
        if torch.is_grad_enabled():
            name = type(ctx).__name__.removesuffix("Backward")
            raise RuntimeError(
                f"second derivatives (create_graph=True) are not implemented for this longtail "
                f"loss: its gradient is written out in closed form (fused kernel {name}); "
                "ce, focal and gce are composed from torch ops and have them"
            )
        return backward(ctx, *grads)

    return wrapper


class WeightedLoss(nn.Module):
    """Base of the loss modules: ``weight`` (a buffer), ``ignore_index``, ``reduction``.

    ``weight`` is a buffer, so ``.to(device)``, ``state_dict()`` and DDP carry it. Deferred
    re-weighting changes it during training with :meth:`set_weight`; the training engine sets
    ``reduction = "none"`` on a built loss and weights and averages the per-sample values itself.

    A subclass takes the three keyword-only, last, in this order (the registry's conventions),
    and keeps each other constructor argument as an attribute (or buffer) of the same name, which
    ``repr`` shows.
    """

    def __init__(self, *, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.register_buffer("weight", per_class_tensor(weight))

    def set_weight(self, weight: Any) -> None:
        """Replace the per-class weights (``None`` for unweighted), keeping the module's device."""
        w = per_class_tensor(weight)
        if w is not None:
            device = self.weight.device if self.weight is not None else _module_device(self)
            w = w.to(device)
        self.weight = w

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint taken after deferred re-weighting began holds a weight that a freshly built
        # loss (weight=None) has no buffer for yet: make room, so a resumed run loads it.
        w = state_dict.get(prefix + "weight")
        if w is not None and (self.weight is None or self.weight.shape != w.shape):
            self.weight = torch.empty(w.shape, dtype=w.dtype, device=_module_device(self))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        parts = []
        for name, p in inspect.signature(type(self)).parameters.items():
            if name == "class_counts" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                continue
            value = getattr(self, name, None)
            if isinstance(value, torch.Tensor):  # a per-class buffer: its shape, not its values
                value = str(tuple(value.shape))
            else:
                value = repr(value)
            parts.append(f"{name}={value}")
        return ", ".join(parts)


def _module_device(module: nn.Module) -> torch.device:
    for t in (*module.buffers(), *module.parameters()):
        return t.device
    return torch.device("cpu")


def counts_buffer(module: nn.Module, class_counts: Any, *, allow_zero: bool = True) -> torch.Tensor:
    """Register checked ``class_counts`` as a float32 buffer; return them as float64."""
    counts = as_counts(class_counts, allow_zero=allow_zero)
    module.register_buffer("class_counts", counts.to(torch.float32))
    return counts
