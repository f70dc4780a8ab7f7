"""Losses for imbalanced classification, each a function plus a thin ``nn.Module``, by name.

Every module of this package is imported here, so a loss registers itself (with
:func:`register_loss`) just by being in a file of the package; its module class is then exported
from here (and from :mod:`longtail`), its function from :mod:`longtail.functional`. No list of
names is kept by hand.
"""

import importlib
import pkgutil
from typing import Any

from ._registry import (
    CONVENTIONS,
    FAMILIES,
    TARGETS,
    LossInfo,
    create_loss,
    create_loss_for_counts,
    export_function,
    functional_exports,
    get_loss_info,
    list_losses,
    module_exports,
    register_loss,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

globals().update(module_exports())

__all__ = [
    "CONVENTIONS",
    "FAMILIES",
    "TARGETS",
    "LossInfo",
    "create_loss",
    "create_loss_for_counts",
    "export_function",
    "functional_exports",
    "get_loss_info",
    "list_losses",
    "module_exports",
    "register_loss",
]
__all__ += module_exports()  # every registered loss module, from the registry


def __getattr__(name: str) -> Any:
    # a loss registered after this package was imported (a user's own, from outside the package)
    try:
        return module_exports()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
