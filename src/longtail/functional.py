"""Every longtail loss as a function, in the manner of ``torch.nn.functional``.

The names come from the loss registry: each registered loss's function and each helper marked
with :func:`longtail.losses.export_function` (``ldam_margins``, ``mm_margin``, ``log_prior``, ...),
so a new loss is here as soon as its file in ``longtail/losses/`` registers it.
"""

from typing import Any

from .losses import functional_exports as _functional_exports

globals().update(_functional_exports())

__all__ = sorted(_functional_exports())


def __getattr__(name: str) -> Any:
    # a loss registered after this module was imported (a user's own, from outside the package)
    try:
        return _functional_exports()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
