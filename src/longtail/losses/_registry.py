"""The loss registry: one entry per loss, registered, exported and listed from one place.

Modelled on timm's model and optimizer registries: an entry is a frozen dataclass
(:class:`LossInfo`); one decorator on the module class registers the loss *and* exports its class
(from :mod:`longtail.losses`, :mod:`longtail`) and its function (from :mod:`longtail.functional`);
``create_loss(name, **kw)`` builds the module; ``list_losses(filter, family=...)`` lists names;
``longtail losses`` and the README's loss table are printed from it; the tests iterate it, so a new
entry is tested without a new test. Adding a loss is one new file under ``longtail/losses/``
(every module of the package is imported automatically)::

    def my_loss(logits, target, class_counts, *, tau=1.0, weight=None, ignore_index=-100,
                reduction="mean"):
        ...

    @register_loss(name="my", function=my_loss, family="imbalance",
                   description="...", paper="Author et al., Venue Year", needs_counts=True)
    class MyLoss(WeightedLoss):
        ...

plus its loop-based reference in ``tests/_reference.py``.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from torch import nn

from .._validation import check_choice, close_names, did_you_mean, expected

#: The fixed vocabulary of loss families (``longtail losses --family F``), with what each means.
FAMILIES: dict[str, str] = {
    "standard": "the usual losses, the baselines the others are measured against",
    "imbalance": "class-imbalanced and long-tailed classification (re-weighting, margins, priors)",
    "robust-to-noise": "classification under label noise",
    "calibration": "classification with calibrated probabilities",
    "metric-surrogate": "smooth surrogates of a metric (AUC, F-score, balanced accuracy, ...)",
    "regression-as-classification": "regression on binned targets, trained as classification",
    "multilabel": "binary and multi-label classification (one sigmoid per class)",
}

#: What a loss's ``target`` is.
TARGETS: dict[str, str] = {
    "index": "integer class indices (N,) or (N, d1, ...)",
    "multilabel": "0/1 or soft targets of the logits' shape (or class indices for (N, C) logits)",
    "soft": "class-probability rows of the logits' shape (or class indices)",
    "value": "real-valued regression targets (N,) or (N, d1, ...), within the support the classes "
    "stand for (class k stands for the value k unless the loss is given `values`)",
}

#: The keyword-only arguments every loss shares, in this order, last in every signature
#: (``label_smoothing`` only where it has a meaning).
CONVENTIONS: tuple[str, ...] = ("weight", "ignore_index", "reduction", "label_smoothing")

#: What :func:`create_loss` does with ``class_counts`` given to a loss that does not use them:
#: ``"error"`` (a ``ValueError``: silently ignored counts hide a wrong loss choice). Callers that
#: have counts for every loss (a training engine) use :func:`create_loss_for_counts`.
UNUSED_COUNTS = "error"

_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def hyperparameter_defaults(function: Callable[..., Any]) -> dict[str, Any]:
    """The defaults of ``function``'s keyword-only arguments, the shared conventions left out.

    These are the loss's hyper-parameters; :class:`LossInfo` takes its ``defaults`` from here, so
    the function, the module and ``create_loss`` cannot disagree on them.
    """
    return {
        n: p.default
        for n, p in inspect.signature(function).parameters.items()
        if p.kind is p.KEYWORD_ONLY and n not in CONVENTIONS and p.default is not p.empty
    }


@dataclass(frozen=True, kw_only=True)
class LossInfo:
    """A registered loss.

    Attributes:
        name: registry name (kebab-case), e.g. ``"ldam"``.
        cls: the ``nn.Module`` class (its ``forward`` calls ``function`` or computes the same).
        function: the function in :mod:`longtail.functional`.
        family: one of :data:`FAMILIES`.
        description: one line for ``longtail losses``.
        paper: short citation (``"Cao et al., NeurIPS 2019"``; ``"-"`` for a standard loss).
        needs_counts: the loss needs the training class counts (``class_counts=``); a loss that
            does not use them refuses them (see :data:`UNUSED_COUNTS`).
        target: one of :data:`TARGETS`; the training engine takes ``"index"`` losses only.
        defaults: the hyper-parameters and their defaults, read from ``function``'s signature
            (given explicitly, they must equal it).
        compiles: ``torch.compile`` gives the eager result (the tests check it); False needs
            ``compile_note`` saying why not.
        compile_note: why the loss does not compile (empty when it does).
        stop_gradient: what the backward treats as a constant, as the paper's code does (the MM
            loss's Δ); empty when the gradient is the true derivative (then gradcheck applies).
        uncertain: hyper-parameters whose default is uncertain (the paper gives none, or several);
            the function's docstring says so.
        per_sample: the loss is a mean of per-sample terms, so ``reduction="none"`` has a
            meaning; False for a batch-level quantity (a soft F-score or an AUC of the whole
            batch), which takes only ``"mean"`` and ``"sum"`` and cannot be a training engine's
            method (the engine weights per-sample values).
    """

    name: str
    cls: type[nn.Module]
    function: Callable[..., Any]
    family: str
    description: str
    paper: str
    needs_counts: bool = False
    target: str = "index"
    defaults: Mapping[str, Any] | None = None
    compiles: bool = True
    compile_note: str = ""
    stop_gradient: str = ""
    uncertain: tuple[str, ...] = ()
    per_sample: bool = True
    _keywords: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise expected("name", "a kebab-case loss name such as 'mm-ldam'", repr(self.name))
        if not (isinstance(self.cls, type) and issubclass(self.cls, nn.Module)):
            raise expected("cls", f"an nn.Module class for loss {self.name!r}", repr(self.cls))
        if not callable(self.function):
            raise expected("function", f"the function of loss {self.name!r}", repr(self.function))
        check_choice("family", self.family, tuple(FAMILIES))
        check_choice("target", self.target, tuple(TARGETS))
        for attr in ("description", "paper"):
            text = getattr(self, attr)
            if not isinstance(text, str) or not text.strip() or "\n" in text:
                raise expected(attr, f"one line of text for loss {self.name!r}", repr(text))
        if not self.compiles and not self.compile_note:
            raise expected(
                "compile_note", f"why loss {self.name!r} does not compile (compiles=False)", "''"
            )
        derived = hyperparameter_defaults(self.function)
        if self.defaults is not None and dict(self.defaults) != derived:
            raise expected(
                "defaults",
                f"the defaults of {self.function.__name__}'s keyword-only arguments {derived}",
                dict(self.defaults),
            )
        object.__setattr__(self, "defaults", MappingProxyType(derived))
        object.__setattr__(self, "uncertain", tuple(self.uncertain))
        for key in self.uncertain:
            if key not in derived:
                raise expected("uncertain", f"hyper-parameters of loss {self.name!r}", repr(key))
        params = inspect.signature(self.cls).parameters
        keywords = tuple(
            n
            for n, p in params.items()
            if n != "class_counts" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        object.__setattr__(self, "_keywords", keywords)

    @property
    def keywords(self) -> tuple[str, ...]:
        """The keyword arguments :func:`create_loss` accepts for this loss (``class_counts``
        aside), in the module's order."""
        return self._keywords

    @property
    def single_label(self) -> bool:
        """Takes one class index per sample and gives one value per sample (what the training
        engine feeds a loss and weights)."""
        return self.target == "index" and self.per_sample

    @property
    def call_inputs(self) -> tuple[str, ...]:
        """The inputs the module's ``forward`` takes beyond ``(logits, target)``: IB's
        ``feature_norm``, ALDR-KL's ``index``; a trainer that feeds only those two cannot train
        the loss's method."""
        return tuple(inspect.signature(self.cls.forward).parameters)[3:]


_REGISTRY: dict[str, LossInfo] = {}
_HELPERS: dict[str, Callable[..., Any]] = {}


def _exported_names() -> dict[str, str]:
    """Every exported name, mapped to what exports it (for collision messages)."""
    names = {fn: "a helper function" for fn in _HELPERS}
    for info in _REGISTRY.values():
        names[info.function.__name__] = f"loss {info.name!r}"
        names[info.cls.__name__] = f"loss {info.name!r}"
    return names


def _add(info: LossInfo) -> LossInfo:
    if info.name in _REGISTRY:
        raise ValueError(f"Expected a new loss name, but `{info.name}` is already registered.")
    taken = _exported_names()
    for obj in (info.function, info.cls):
        if obj.__name__ in taken:
            raise expected(
                "loss",
                f"exported under a new name ({info.name!r})",
                f"{obj.__name__!r}, already exported by {taken[obj.__name__]}",
            )
    _REGISTRY[info.name] = info
    return info


def register_loss(
    info: LossInfo | None = None,
    /,
    *,
    name: str | None = None,
    function: Callable[..., Any] | None = None,
    family: str | None = None,
    description: str | None = None,
    paper: str | None = None,
    needs_counts: bool = False,
    target: str = "index",
    compiles: bool = True,
    compile_note: str = "",
    stop_gradient: str = "",
    uncertain: Sequence[str] = (),
    per_sample: bool = True,
) -> Any:
    """Register a loss; used as a class decorator on its module (the usual way)::

        @register_loss(name="ldam", function=ldam_loss, family="imbalance",
                       description="...", paper="Cao et al., NeurIPS 2019", needs_counts=True)
        class LDAMLoss(WeightedLoss): ...

    This adds the :class:`LossInfo` to the registry, which is all it takes for the class to be
    exported from :mod:`longtail.losses` and :mod:`longtail`, the function from
    :mod:`longtail.functional`, the loss to be listed by ``longtail losses`` and the README, and
    to be checked by the registry-wide tests. The keywords are the fields of :class:`LossInfo`
    (``defaults`` are read from the function's signature).

    ``register_loss(info)`` with a ready :class:`LossInfo` registers it and returns it.

    Raises:
        ValueError: a name already registered, a function or class name already exported, or an
            invalid field (unknown family or target, a multi-line description, ...).
    """
    if info is not None:
        if not isinstance(info, LossInfo):
            raise expected(
                "info", "a LossInfo (or use register_loss(name=...) as a decorator)", info
            )
        return _add(info)

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        _add(
            LossInfo(
                name=name,  # type: ignore[arg-type]  # checked by LossInfo
                cls=cls,
                function=function,  # type: ignore[arg-type]
                family=family,  # type: ignore[arg-type]
                description=description,  # type: ignore[arg-type]
                paper=paper,  # type: ignore[arg-type]
                needs_counts=needs_counts,
                target=target,
                compiles=compiles,
                compile_note=compile_note,
                stop_gradient=stop_gradient,
                uncertain=tuple(uncertain),
                per_sample=per_sample,
            )
        )
        return cls

    return decorate


def export_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """Export a helper that is not itself a loss (``ldam_margins``, ``mm_margin``) from
    :mod:`longtail.functional`; a decorator."""
    if function.__name__ in _exported_names():
        raise expected("function", "a new exported name", repr(function.__name__))
    _HELPERS[function.__name__] = function
    return function


def functional_exports() -> dict[str, Callable[..., Any]]:
    """Every function :mod:`longtail.functional` exports: each loss's and each helper, by name."""
    out = {info.function.__name__: info.function for info in _REGISTRY.values()}
    out.update(_HELPERS)
    return dict(sorted(out.items()))


def module_exports() -> dict[str, type[nn.Module]]:
    """Every loss module class, by class name (exported by :mod:`longtail.losses`)."""
    return dict(sorted((info.cls.__name__, info.cls) for info in _REGISTRY.values()))


def get_loss_info(name: str) -> LossInfo:
    """The registry entry for ``name``; unknown names raise ``ValueError`` naming close matches."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = close_names(name, _REGISTRY, cutoff=0.5)  # "LDAM" means "ldam"
        if close:  # the likely names, not all of them
            raise ValueError(
                f"Expected `name` to be one of the registered losses, but got {name!r}. Did "
                f"you mean {' or '.join(repr(c) for c in close)}? (`longtail losses` lists "
                f"all {len(_REGISTRY)})"
            ) from None
        raise ValueError(
            f"Expected `name` to be one of the registered losses {sorted(_REGISTRY)}, "
            f"but got {name!r}."
        ) from None


def list_losses(filter: str = "", *, family: str | None = None) -> list[str]:
    """Sorted names of the registered losses.

    Args:
        filter: a glob on the name (``"*focal*"``); empty for all.
        family: only the losses of this family (one of :data:`FAMILIES`).

    Example:
        >>> list_losses("mm*")
        ['mm', 'mm-ldam']
        >>> list_losses("*focal*", family="imbalance")
        ['focal']
    """
    if family is not None:
        check_choice("family", family, tuple(FAMILIES))
    names = sorted(_REGISTRY)
    if filter:
        names = [n for n in names if fnmatch.fnmatch(n, filter)]
    if family is not None:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


def create_loss(name: str, class_counts: Any = None, **kwargs: Any) -> nn.Module:
    """Build the loss registered as ``name``.

    The defaults are those of the loss's function (``get_loss_info(name).defaults``), so
    ``create_loss(name, **kw)(z, y)`` equals ``function(z, y, **kw)``; for the losses whose
    formula is random (``gcl``, ``softmax-eql``, ``ensloss``), when both are given the same
    ``seed`` (without one, the function draws from torch's global generator at each call, the
    module once, for its base seed, when it is built).

    Args:
        name: a registered name (:func:`list_losses`).
        class_counts: the training class counts, required by the losses that use them
            (``get_loss_info(name).needs_counts``) and refused by the others (while
            :data:`UNUSED_COUNTS` is ``"warn"``, they are ignored with a ``FutureWarning``).
            :func:`create_loss_for_counts` passes them only where they are used.
        **kwargs: the loss's keyword arguments (``get_loss_info(name).keywords``).

    Raises:
        ValueError: an unknown name, missing (or, see above, unused) counts, a keyword argument
            the loss does not take (the message lists those it takes), or a bad value.

    Example:
        >>> crit = create_loss("mm", delta_minus=0.6, beta=1.5)
        >>> crit
        MaxMarginLoss(delta_minus=0.6, beta=1.5, scale=30.0, weight=None, ignore_index=-100, reduction='mean')
    """  # noqa: E501 - a doctest's output is one line
    info = get_loss_info(name)
    for key in kwargs:
        if key not in info.keywords:
            hint = did_you_mean(key, info.keywords)
            raise ValueError(
                f"Expected a keyword argument of loss {name!r} ({', '.join(info.keywords)}), "
                f"but got {key!r}.{hint}"
            )
    if info.needs_counts:
        if class_counts is None:
            raise expected("class_counts", f"the training class counts for loss {name!r}", "None")
        kwargs["class_counts"] = class_counts
    elif class_counts is not None:
        message = str(
            expected(
                "class_counts",
                f"None for loss {name!r}, which does not use the class counts "
                "(create_loss_for_counts passes them only to the losses that do)",
                "counts",
            )
        )
        if UNUSED_COUNTS == "error":
            raise ValueError(message)
        warnings.warn(message + " They are ignored; this will be an error.", FutureWarning, 2)
    return info.cls(**{**info.defaults, **kwargs})


def create_loss_for_counts(name: str, class_counts: Any, **kwargs: Any) -> nn.Module:
    """:func:`create_loss` for a caller that has the class counts whatever the loss (a training
    engine): passes them to the losses that use them, and only to those.

    Example:
        >>> create_loss_for_counts("ce", [500, 50, 5])
        CrossEntropyLoss(weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0)
    """
    counts = class_counts if get_loss_info(name).needs_counts else None
    return create_loss(name, class_counts=counts, **kwargs)
