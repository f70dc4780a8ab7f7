"""Every longtail loss as a function, in the manner of ``torch.nn.functional``.

The names come from the loss registry: each registered loss's function and each helper marked
with :func:`longtail.losses.export_function` (``ldam_margins``, ``mm_margin``, ``log_prior``, ...),
so a new loss is here as soon as its file in ``longtail/losses/`` registers it.
"""

import difflib as _difflib
import sys as _sys
from typing import Any as _Any

from .losses import functional_exports as _functional_exports

globals().update(_functional_exports())

__all__ = sorted(_functional_exports())


def __getattr__(name: str) -> _Any:
    # a loss registered after this module was imported (a user's own, from outside the package)
    exports = _functional_exports()
    if name in exports:
        return exports[name]
    # obj set and name not: Python then adds no "Did you mean" of its own (from dir(module),
    # which knows no registry name), after ours
    raise AttributeError(
        f"module {__name__!r} has no attribute {name!r}{_hint(name, exports)}",
        obj=_sys.modules[__name__],
    )


def _hint(name: str, exports: dict[str, _Any]) -> str:
    """Close function names, found also through the registry names (``bal_bce_loss`` is the
    loss ``bal-bce``, whose function is ``balanced_bce_loss``)."""
    from .losses import get_loss_info, list_losses

    # every way of reaching a function: its own name, and its loss's name as an identifier
    ways = {f: f for f in exports}
    for loss in list_losses():
        function = get_loss_info(loss).function.__name__
        if function in exports:
            stem = loss.replace("-", "_")
            ways.setdefault(stem, function)
            ways.setdefault(f"{stem}_loss", function)
    found = [ways[k] for k in _difflib.get_close_matches(name, ways, n=6, cutoff=0.7)]
    found = list(dict.fromkeys(found))[:3]
    return f". Did you mean {' or '.join(map(repr, found))}?" if found else ""
