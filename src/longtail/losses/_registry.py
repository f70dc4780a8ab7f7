"""The loss registry: one entry per loss, created by name.

Modelled on timm's optimizer factory: an entry is a frozen dataclass; ``create_loss(name, **kw)``
builds the module; ``list_losses(filter)`` lists names; tests iterate the registry, so a new entry
is tested without a new test.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class LossInfo:
    """A registered loss.

    Attributes:
        name: registry name (kebab-case), e.g. ``"ldam"``.
        cls: the ``nn.Module`` class.
        function: the function in :mod:`longtail.functional` the module calls.
        description: one line for ``longtail losses``.
        paper: short citation.
        needs_counts: the loss needs the training class counts (``class_counts=``).
        defaults: keyword defaults that ``create_loss`` passes unless overridden.
        target: ``"index"`` (integer labels) or ``"multilabel"`` (a 0/1 matrix like the logits).
    """

    name: str
    cls: type[nn.Module]
    function: Callable[..., Any]
    description: str
    paper: str
    needs_counts: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    target: str = "index"


_REGISTRY: dict[str, LossInfo] = {}


def register_loss(info: LossInfo) -> LossInfo:
    """Add ``info`` to the registry; a name may be registered once."""
    if info.name in _REGISTRY:
        raise ValueError(f"Expected a new loss name, but `{info.name}` is already registered.")
    _REGISTRY[info.name] = info
    return info


def get_loss_info(name: str) -> LossInfo:
    """The registry entry for ``name``; unknown names raise ``ValueError`` naming close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Expected `name` to be one of the registered losses {sorted(_REGISTRY)}, "
            f"but got {name!r}.{hint}"
        ) from None


def list_losses(filter: str = "") -> list[str]:
    """Sorted names of the registered losses, optionally filtered by a glob (``"*focal*"``)."""
    names = sorted(_REGISTRY)
    return [n for n in names if fnmatch.fnmatch(n, filter)] if filter else names


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name`` with the entry's defaults updated by ``kwargs``.

    Every entry accepts ``class_counts``, so a training engine can pass the counts uniformly;
    losses that do not use them (``ce``, ``focal``, ``mm``, ...) ignore them. Prior-aware losses
    (``needs_counts``) require them.

    Example:
        >>> crit = create_loss("mm", class_counts=[500, 50, 5], delta_minus=0.6, beta=1.5)
        >>> crit
        MaxMarginLoss(delta_minus=0.6, beta=1.5, scale=30.0, reduction='mean', ignore_index=-100)
    """
    info = get_loss_info(name)
    counts = kwargs.pop("class_counts", None)
    if info.needs_counts:
        if counts is None:
            raise ValueError(
                f"Expected `class_counts` (the training class counts) for loss {name!r}, "
                "but got None."
            )
        kwargs["class_counts"] = counts
    return info.cls(**{**info.defaults, **kwargs})
