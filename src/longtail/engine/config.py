"""The training recipe as data: a config dataclass, named methods and presets.

The paper recipe is that of the LDAM-DRW code (Cao et al., NeurIPS 2019), which the MM paper
keeps: ResNet-32, 200 epochs, batch 128, SGD (lr 0.1, momentum 0.9, weight decay 2e-4), linear
warm-up over 5 epochs, lr × 0.01 from epoch 160 and × 0.0001 from epoch 180, deferred
re-weighting from epoch 160 with effective-number weights (β = 0.9999), random 4-pixel-padded
crops and horizontal flips.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from dataclasses import dataclass, field
from typing import Any

from longtail._validation import (
    check_choice,
    check_in_range,
    check_positive,
    check_seed,
    did_you_mean,
    expected,
    lookup,
)
from longtail.engine.loggers import log_kinds
from longtail.losses import create_loss_for_counts, get_loss_info
from longtail.models import MODELS

__all__ = [
    "METHODS",
    "PRESETS",
    "PRESET_ALIASES",
    "MethodSpec",
    "TrainConfig",
    "get_method",
    "loss_method",
    "make_config",
    "rescaled_schedule",
]


@dataclass(frozen=True)
class MethodSpec:
    """A named recipe: which loss, which classifier, which re-weighting and re-sampling.

    Attributes:
        name: Registry name, e.g. ``"ldam-drw"``.
        loss: Name of the loss in :func:`longtail.create_loss`.
        loss_kwargs: Keyword arguments for the loss (overridable per run).
        normed: Cosine classifier (LDAM, MM: their margins assume cosine logits).
        reweight: ``"none"``, ``"drw"`` (effective-number class weights from ``drw_epoch``) or
            ``"cb"`` (effective-number class weights from the start, Cui et al. 2019).
        resample: ``"none"``, ``"cb"`` (class-balanced sampling from the start) or ``"drs"``
            (class-balanced sampling from ``drw_epoch``).
        description: One line for listings.
        label: Display name in tables and plots (the paper's row name); reports list methods
            in registry order.
    """

    name: str
    loss: str
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    normed: bool = False
    reweight: str = "none"
    resample: str = "none"
    description: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        check_choice("reweight", self.reweight, ("none", "drw", "cb"))
        check_choice("resample", self.resample, ("none", "cb", "drs"))

    @property
    def deferred(self) -> str | None:
        """``"DRW"`` or ``"DRS"`` when the method defers re-weighting or re-sampling, else None.

        The deferred phase is what defines such a method: without it, LDAM-DRW is LDAM.
        """
        if self.reweight == "drw":
            return "DRW"
        if self.resample == "drs":
            return "DRS"
        return None


def _m(*args: Any, **kwargs: Any) -> tuple[str, MethodSpec]:
    spec = MethodSpec(*args, **kwargs)
    return spec.name, spec


# The Table 1 rows of the MM paper (HG-DRS and SSP need other machinery and are left out),
# plus two prior-aware losses. Focal uses γ = 1 as the LDAM-DRW code does for its Focal rows.
METHODS: dict[str, MethodSpec] = dict(
    [
        _m("erm", "ce", description="cross-entropy, uniform sampling", label="ERM"),
        _m("focal", "focal", {"gamma": 1.0}, description="focal loss (γ=1)", label="Focal"),
        _m("ldam", "ldam", normed=True, description="LDAM loss, cosine classifier", label="LDAM"),
        _m(
            "mm",
            "mm",
            normed=True,
            description="Maximum Margin loss, cosine classifier",
            label="MM",
        ),
        _m(
            "cb-rs",
            "ce",
            resample="cb",
            description="cross-entropy, class-balanced sampling",
            label="CB-RS",
        ),
        _m(
            "cb-rw",
            "ce",
            reweight="cb",
            description="cross-entropy, effective-number weights",
            label="CB-RW",
        ),
        _m(
            "cb-focal",
            "focal",
            {"gamma": 1.0},
            reweight="cb",
            description="focal, CB weights",
            label="CB-Focal",
        ),
        _m(
            "erm-drw",
            "ce",
            reweight="drw",
            description="cross-entropy + DRW (M-DRW)",
            label="ERM-DRW (M-DRW)",
        ),
        _m(
            "ldam-drw",
            "ldam",
            normed=True,
            reweight="drw",
            description="LDAM + DRW",
            label="LDAM-DRW",
        ),
        _m("mm-drw", "mm", normed=True, reweight="drw", description="MM + DRW", label="MM-DRW"),
        _m(
            "mm-ldam-drw",
            "mm-ldam",
            normed=True,
            reweight="drw",
            description="MM-LDAM + DRW",
            label="MM-LDAM-DRW",
        ),
        _m(
            "logit-adjusted",
            "logit-adjusted",
            description="logit-adjusted loss (τ=1)",
            label="Logit adjustment",
        ),
        _m(
            "balanced-softmax",
            "balanced-softmax",
            description="balanced softmax",
            label="Balanced softmax",
        ),
    ]
)


#: ``--method loss:NAME`` trains any registered single-label loss as a method of its own.
LOSS_METHOD_PREFIX = "loss:"


def loss_method(loss: str) -> MethodSpec:
    """The method ``loss:NAME``: the registered loss ``NAME`` alone, built on the fly.

    Plain logits (no cosine classifier), no re-weighting, no re-sampling, the loss's own defaults;
    so a loss put in the registry can be put in Table 1 (``table1_jobs(methods=("loss:vs",))``)
    without a line of code. Multi-label losses are refused: the engine feeds one class index per
    sample.

    Example:
        >>> loss_method("vs").loss, loss_method("vs").name
        ('vs', 'loss:vs')
    """
    try:
        info = get_loss_info(loss)
    except ValueError as err:
        raise ValueError(f"{err} (method {LOSS_METHOD_PREFIX}{loss})") from None
    if not info.single_label:
        raise expected(
            "method",
            f"{LOSS_METHOD_PREFIX}NAME with a single-label, per-sample loss (the engine trains "
            f"on one class index per sample and weights per-sample values)",
            f"{LOSS_METHOD_PREFIX}{loss}, whose target is {info.target!r}"
            + ("" if info.per_sample else " and whose value is a batch-level quantity"),
        )
    extra = call_inputs_text(info)
    if extra:
        raise expected(
            "method",
            f"{LOSS_METHOD_PREFIX}NAME with a loss of (logits, target) alone (the engine feeds "
            "nothing else)",
            f"{LOSS_METHOD_PREFIX}{loss}, whose method needs {extra} with every call "
            f"(without it {loss} would train as a lesser loss; use it in a loop of your own)",
        )
    return MethodSpec(
        name=f"{LOSS_METHOD_PREFIX}{loss}",
        loss=loss,
        description=f"the {loss!r} loss with its defaults: {info.description}",
        label=f"{LOSS_METHOD_PREFIX}{loss}",
    )


# What a loss's call takes beyond (logits, target), and why its method needs it.
_CALL_INPUTS = {
    "feature_norm": "`feature_norm` (each sample's feature norm: IB's second stage is weighted "
    "by it)",
    "index": "`index` (each sample's dataset index: the per-sample λ it updates on every visit)",
}


def call_inputs_text(info: Any) -> str:
    """``info.call_inputs`` (what a loss's call takes beyond logits and target) in words; ``""``
    for a loss of ``(logits, target)`` alone."""
    return " and ".join(_CALL_INPUTS.get(p, f"`{p}`") for p in info.call_inputs)


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` named ``name``: a method of :data:`METHODS`, or ``loss:NAME`` for a
    registered single-label loss (:func:`loss_method`); unknown names raise ``ValueError``."""
    if isinstance(name, str) and name.startswith(LOSS_METHOD_PREFIX):
        return loss_method(name[len(LOSS_METHOD_PREFIX) :])
    context = f" (or {LOSS_METHOD_PREFIX}NAME for a loss of `longtail losses`)"
    return lookup(METHODS, name, "method", context)


def _non_deferred(spec: MethodSpec) -> str:
    """What a deferred method trains as when its deferred phase never starts."""
    plain = dataclasses.replace(
        spec,
        reweight="none" if spec.reweight == "drw" else spec.reweight,
        resample="none" if spec.resample == "drs" else spec.resample,
    )
    for other in METHODS.values():
        same = (other.loss, other.loss_kwargs, other.normed, other.reweight, other.resample)
        if same == (plain.loss, plain.loss_kwargs, plain.normed, plain.reweight, plain.resample):
            return f"method {other.name!r}"
    return f"the {spec.loss!r} loss without {spec.deferred}"


# Loss arguments that the training engine sets itself: the training class counts, the epoch's
# class weights (DRW / CB re-weighting replaces any `weight` every epoch), and the reduction
# (it asks for per-sample losses and weights and averages them itself). A value given for one
# of them would be ignored, so it is refused.
ENGINE_LOSS_KWARGS = ("class_counts", "weight", "reduction")


def _loss_parameters(loss: str) -> tuple[list[str], bool]:
    """Keyword parameters of the loss's constructor, and whether it takes ``**kwargs``."""
    params = inspect.signature(get_loss_info(loss).cls.__init__).parameters
    names = [
        n
        for n, p in params.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    return names, any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_loss_kwargs(method: str, spec: MethodSpec, own: Any) -> None:
    """Refuse loss arguments the method's loss does not take, before any run starts.

    What is checked is what the engine will pass: the method's own ``loss_kwargs`` updated by
    the run's. Scalar values are also tried on the loss (built for two classes), so that a value
    the loss refuses (``max_margin=-1``) fails here and not after the run folder is written.
    """
    if not isinstance(own, dict) or not all(isinstance(k, str) for k in own):
        raise expected("loss_kwargs", "a dict of loss keyword arguments", repr(own))
    kwargs = {**spec.loss_kwargs, **own}
    names, takes_any = _loss_parameters(spec.loss)
    settable = [n for n in names if n not in ENGINE_LOSS_KWARGS]
    for key, value in kwargs.items():
        if key in ENGINE_LOSS_KWARGS:
            raise expected(
                "loss_kwargs",
                f"arguments of the {spec.loss!r} loss of method {method!r}",
                f"{key!r}, which the training engine sets itself (it passes the class counts, "
                "each epoch's class weights, and asks for per-sample losses)",
            )
        if key not in names and not takes_any:
            raise ValueError(
                str(
                    expected(
                        "loss_kwargs",
                        f"arguments of the {spec.loss!r} loss of method {method!r} "
                        f"({', '.join(settable) or 'it takes none'})",
                        repr(key),
                    )
                )
                + did_you_mean(key, settable)
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise expected(f"loss_kwargs[{key!r}]", "a finite number", repr(value))
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in kwargs.values()):
        try:
            create_loss_for_counts(spec.loss, [2, 1], **kwargs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{err} (loss_kwargs of method {method!r})") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The declared type of each TrainConfig field, checked on construction (None where a field is
# checked otherwise: loss_kwargs, lr_steps).
_FIELD_KINDS = {
    **dict.fromkeys(("dataset", "profile", "method", "model", "preset"), "str"),
    "data_dir": "str",
    **dict.fromkeys(("ratio", "lr", "momentum", "weight_decay", "cb_beta"), "number"),
    **dict.fromkeys(
        (
            "n_max",
            "val_per_class",
            "seed",
            "epochs",
            "batch_size",
            "warmup_epochs",
            "drw_epoch",
            "width",
            "padding",
            "eval_every",
            "eval_batch_size",
            "many_threshold",
            "few_threshold",
            "threads",
        ),
        "int",
    ),
    **dict.fromkeys(
        ("augment", "flip", "channels_last", "compile", "flush_denormal", "download"), "bool"
    ),
}
_OPTIONAL = frozenset({"data_dir", "n_max", "threads"})


def _epochs_text(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved beside its results).

    Epochs are 0-based: ``warmup_epochs = 5`` means epochs 0..4 ramp the learning rate linearly
    from ``lr/5`` to ``lr``; ``lr_steps = ((160, 0.01), (180, 0.0001))`` multiplies the base
    learning rate by 0.01 from epoch 160 on and by 0.0001 from 180 on; ``drw_epoch`` is the
    first epoch with deferred weights or samples.

    The data: ``profile`` ``"exp"`` or ``"step"`` with ``ratio`` cuts the training set to a
    long-tailed profile whose head is the largest class (ties by label) and whose head size
    ``n_max`` is by default the largest the profile can take from the data at hand;
    ``"natural"`` keeps every training example (the data's own imbalance; ``ratio`` must then
    be 1). ``val_per_class > 0`` sets that many training images of every class apart, before
    the profile, as a balanced validation split, and evaluates the run on it instead of the
    test set: for choosing a recipe without looking at test numbers.

    Construction checks every value (a ``ValueError`` names the field): numbers must be finite,
    loss arguments must be arguments of the method's loss, and a deferred method (DRW or DRS)
    needs ``drw_epoch < epochs``; otherwise its deferred phase never happens and the run would
    be that of the non-deferred method under the deferred method's name. Schedules that are
    legal but odd (a step after the last epoch, two steps at one epoch, ...) are listed by
    :meth:`schedule_warnings`.
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    profile: str = "exp"
    ratio: float = 100.0
    n_max: int | None = None  # examples kept of the head class; default: the most that fit
    val_per_class: int = 0  # > 0: evaluate on this many training images per class, held out
    method: str = "erm"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    warmup_epochs: int = 5
    lr_steps: tuple[tuple[int, float], ...] = ((160, 0.01), (180, 0.0001))
    drw_epoch: int = 160
    cb_beta: float = 0.9999
    model: str = "resnet32"
    width: int = 16
    augment: bool = True
    padding: int = 4
    flip: bool = True
    eval_every: int = 1  # evaluate every k epochs (0: only after the last)
    eval_batch_size: int = 1000
    many_threshold: int = 100
    few_threshold: int = 20
    channels_last: bool = True
    compile: bool = False  # torch.compile the training step (pays off on long runs)
    flush_denormal: bool = True
    threads: int | None = None
    download: bool = True
    preset: str = "paper"
    log: tuple[str, ...] = ()  # loggers beside log.jsonl: tensorboard, csv (bookkeeping)

    def __post_init__(self) -> None:
        self.log = log_kinds(self.log)
        self._check_types()
        spec = get_method(self.method)
        check_choice("profile", self.profile, ("exp", "step", "natural"))
        self.preset = PRESET_ALIASES.get(self.preset, self.preset)
        check_choice("preset", self.preset, (*PRESETS, *PRESET_ALIASES))
        check_choice("model", self.model, MODELS)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise expected("dataset", "a dataset name or the path of an .npz file", self.dataset)
        if not (
            isinstance(self.ratio, int | float)
            and not isinstance(self.ratio, bool)
            and math.isfinite(self.ratio)
            and self.ratio >= 1
        ):
            raise expected("ratio", "a finite number >= 1 (n_max / n_min)", repr(self.ratio))
        check_positive("lr", self.lr)
        check_positive("momentum", self.momentum, allow_zero=True)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_in_range("cb_beta", self.cb_beta, 0.0, 1.0)
        for name in ("epochs", "batch_size", "eval_batch_size", "width"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise expected(name, "a positive integer", repr(v))
        for name in ("n_max", "threads"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                raise expected(name, "a positive integer or None", repr(v))
        for name in (
            "warmup_epochs",
            "drw_epoch",
            "val_per_class",
            "eval_every",
            "padding",
            "many_threshold",
            "few_threshold",
        ):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise expected(name, "a non-negative integer", repr(v))
        check_seed("seed", self.seed)
        if self.few_threshold > self.many_threshold:
            raise expected(
                "few_threshold",
                f"<= many_threshold ({self.many_threshold})",
                repr(self.few_threshold),
            )
        if self.profile == "natural" and (self.ratio != 1 or self.n_max is not None):
            raise expected(
                "ratio` and `n_max",
                "1 and None with the natural profile (it keeps every training example: the "
                "data's own imbalance, reported in the record)",
                f"ratio {self.ratio!r}, n_max {self.n_max!r}",
            )
        self.lr_steps = self._checked_lr_steps(self.lr_steps)
        self.ratio = float(self.ratio)
        _check_loss_kwargs(self.method, spec, self.loss_kwargs)
        if spec.deferred and self.drw_epoch >= self.epochs:
            raise expected(
                "drw_epoch",
                f"less than epochs ({self.epochs}) for method {self.method!r} (0-based epochs: "
                f"its {spec.deferred} phase must start within the run, or the run trains as "
                f"{_non_deferred(spec)}; give more epochs)",
                self.drw_epoch,
            )

    def _check_types(self) -> None:
        """Every field has its declared type: a config file's ``augment = "false"`` is a string,
        truthy, and would silently keep augmentation on; ``momentum = "0.9"`` would fail deep
        inside a comparison. Refuse both, naming the field."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kind = _FIELD_KINDS.get(f.name)
            if kind is None or (v is None and f.name in _OPTIONAL):
                continue
            if kind == "bool" and not isinstance(v, bool):
                raise expected(f.name, "true or false (a boolean)", f"{v!r} ({type(v).__name__})")
            if kind == "str" and not isinstance(v, str):
                raise expected(f.name, "a string", f"{v!r} ({type(v).__name__})")
            if kind == "number" and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise expected(f.name, "a number", f"{v!r} ({type(v).__name__})")
            if kind == "int" and not _is_int(v):
                raise expected(f.name, "an integer", f"{v!r} ({type(v).__name__})")
        if not isinstance(self.loss_kwargs, dict):
            raise expected("loss_kwargs", "a mapping of loss arguments", repr(self.loss_kwargs))

    @staticmethod
    def _checked_lr_steps(steps: Any) -> tuple[tuple[int, float], ...]:
        what = "a sequence of (epoch, factor) pairs: epochs non-negative integers, factors > 0"
        try:
            pairs = [tuple(s) for s in steps]
        except TypeError:
            raise expected("lr_steps", what, repr(steps)) from None
        out = []
        for pair in pairs:
            if len(pair) != 2:
                raise expected("lr_steps", what, repr(steps))
            epoch, factor = pair
            if not _is_int(epoch) or epoch < 0:
                raise expected("lr_steps", what, f"epoch {epoch!r} in {steps!r}")
            check_positive(f"lr_steps factor of epoch {epoch}", factor)
            out.append((epoch, float(factor)))
        return tuple(out)

    @property
    def spec(self) -> MethodSpec:
        return get_method(self.method)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` (warm-up, then steps)."""
        if epoch < self.warmup_epochs:
            return self.lr * (epoch + 1) / self.warmup_epochs
        factor = 1.0
        for start, f in self.lr_steps:
            if epoch >= start:
                factor = f
        return self.lr * factor

    def describe_schedule(self) -> str:
        """The run's schedule in one line, with 0-based epochs.

        Example:
            >>> print(make_config("smoke", method="ldam-drw").describe_schedule())
            ... # doctest: +NORMALIZE_WHITESPACE
            schedule (0-based epochs): 8 epochs, epochs 0-7; warm-up: 1 epoch (epoch 0 already
            at the full lr); lr 0.1, × 0.01 from epoch 6, × 0.0001 from epoch 7; DRW (deferred
            re-weighting) from epoch 6
        """
        e, w, last = self.epochs, self.warmup_epochs, self.epochs - 1

        def when(epoch: int) -> str:
            return f"epoch {epoch}" + (" (after the last epoch: never)" if epoch > last else "")

        parts = [f"{e} epoch{'s' if e > 1 else ''}, {_epochs_text(0, last)}"]
        if w == 0:
            parts.append("no warm-up")
        elif w == 1:
            # the ramp is lr·(epoch+1)/w, so one epoch of warm-up already runs at the full lr
            parts.append("warm-up: 1 epoch (epoch 0 already at the full lr)")
        else:
            ramp = f"lr ramps from {self.lr / w:g} to {self.lr:g}"
            parts.append(f"warm-up: {_epochs_text(0, w - 1)} ({ramp})")
        lr = f"lr {self.lr:g}"
        lr += "".join(f", × {f:g} from {when(s)}" for s, f in self.lr_steps) or ", no steps"
        parts.append(lr)
        spec = self.spec
        if spec.reweight == "drw":
            parts.append(f"DRW (deferred re-weighting) from {when(self.drw_epoch)}")
        elif spec.reweight == "cb":
            parts.append("class-balanced weights from epoch 0")
        if spec.resample == "drs":
            parts.append(f"DRS (deferred re-sampling) from {when(self.drw_epoch)}")
        elif spec.resample == "cb":
            parts.append("class-balanced sampling from epoch 0")
        return "schedule (0-based epochs): " + "; ".join(parts)

    def schedule_warnings(self) -> list[str]:
        """Phases of the schedule that cannot happen as written, one sentence each.

        Lists an lr step after the last epoch, at epoch 0 (no step: a different base lr) or
        inside the warm-up (it takes effect only when the warm-up ends), two lr steps at one
        epoch, steps out of order, a warm-up as long as the run, and, for a deferred method
        (DRW, DRS), a start at epoch 0 (not deferred) or inside the warm-up. A deferred start at
        or after ``epochs`` is no warning: construction refuses it. The paper's schedule starts
        DRW with the first lr step, by design, so that coincidence is not listed.
        """
        e, w, last = self.epochs, self.warmup_epochs, self.epochs - 1
        out = []
        if w >= e and w > 1:
            out.append(
                f"the warm-up ({w} epochs) lasts the whole run of {e} epochs"
                + (f": the lr never reaches {self.lr:g}" if w > e else "")
            )
        seen: dict[int, float] = {}
        for s, f in self.lr_steps:
            if s > last:
                out.append(
                    f"the lr step × {f:g} at epoch {s} never happens: the last epoch is {last}"
                )
            elif s == 0:
                out.append(
                    f"the lr step × {f:g} at epoch 0 is no step: it scales lr from the start"
                )
            elif s < w:
                out.append(
                    f"the lr step × {f:g} at epoch {s} falls inside the warm-up "
                    f"({_epochs_text(0, w - 1)}) and takes effect only at epoch {w}"
                )
            if s in seen:
                out.append(
                    f"the lr steps × {seen[s]:g} and × {f:g} are both at epoch {s}: "
                    f"only × {f:g} applies"
                )
            seen[s] = f
        starts = [s for s, _ in self.lr_steps]
        if starts != sorted(starts):
            out.append(
                f"the lr steps are not in epoch order ({starts}): a step listed later wins "
                "from its epoch on, even over a step of a later epoch"
            )
        preset_warmup = PRESETS[self.preset].get("warmup_epochs", _PAPER_WARMUP)
        if w == 0 and preset_warmup > 0:
            out.append(
                f"no warm-up: the {self.preset} preset warms up for {preset_warmup} epoch(s), "
                f"which does not fit before the lr steps of a {e}-epoch run"
            )
        phase = self.spec.deferred
        if phase and self.drw_epoch == 0:
            out.append(
                f"{phase} starts at epoch 0, so nothing is deferred: {self.method!r} trains "
                "class-balanced from the start"
            )
        elif phase and self.drw_epoch < w:
            out.append(
                f"{phase} starts at epoch {self.drw_epoch}, inside the warm-up "
                f"({_epochs_text(0, w - 1)})"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists), with the method's resolved loss settings."""
        d = dataclasses.asdict(self)
        d["lr_steps"] = [list(s) for s in self.lr_steps]
        spec = self.spec
        d["loss"] = spec.loss
        d["loss_kwargs"] = {**spec.loss_kwargs, **self.loss_kwargs}
        d["normed"] = spec.normed
        d["reweight"] = spec.reweight
        d["resample"] = spec.resample
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        spec_kwargs = get_method(kw.get("method", "erm")).loss_kwargs
        if "loss_kwargs" in kw:  # stored resolved: keep only the run's own overrides
            kw["loss_kwargs"] = {
                k: v for k, v in kw["loss_kwargs"].items() if spec_kwargs.get(k, object()) != v
            }
        if "lr_steps" in kw:
            kw["lr_steps"] = tuple(tuple(s) for s in kw["lr_steps"])
        return cls(**kw)

    def identity(self) -> dict[str, Any]:
        """The settings that make two runs the same run: the resolved config less bookkeeping
        (:func:`longtail.engine.run.config_identity`). The data is identified apart, by the
        fingerprint of the tensors a run loads (:func:`longtail.engine.train.run_identity`)."""
        from longtail.engine.run import config_identity

        return config_identity(self.to_dict())


# Presets set the schedule; everything else keeps the paper's values. "paper" compiles the
# training step (torch.compile: 1.3-1.7x the eager speed on CPU here, for a one-off compile of
# under two minutes): a GPU job. "cpu" is the recipe a 2-core CPU can run to convergence (below).
# "smoke" (called "quick" before it was known not to converge) is a short schedule (8 epochs) on
# a narrower, shallower CIFAR ResNet (ResNet-20 of width 8), about two minutes a Fashion-MNIST
# exp-100 run: for smoke tests and quick looks, not for comparing methods (its cosine-classifier
# runs do not learn the rarest class in 8 epochs).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"compile": True},
    "smoke": {
        "epochs": 8,
        "model": "resnet20",
        "width": 8,
        "warmup_epochs": 1,
        "lr_steps": ((6, 0.01), (7, 0.0001)),
        "drw_epoch": 6,
        "eval_every": 0,
    },
    # "cpu": the recipe chosen by convergence on a validation split (results/preset-selection,
    # docs/preset-selection.md): the 5-layer CNN of width 16 (64 features) for 60 epochs, the
    # paper's schedule shape rescaled (rescaled_schedule(60): warm-up 2 epochs, DRW and lr ×
    # 0.01 from epoch 48, × 0.0001 from 54). 40 epochs were not converged; twice 60 epochs
    # moved no method's validation error beyond 2 SE.
    "cpu": {
        "epochs": 60,
        "model": "cnn5",
        "width": 16,
        **{
            "warmup_epochs": 2,
            "lr_steps": ((48, 0.01), (54, 0.0001)),
            "drw_epoch": 48,
        },
        "eval_every": 0,
    },
}

#: Older preset names still accepted (records and scripts made before the rename use them).
PRESET_ALIASES = {"quick": "smoke"}

_SCHEDULE_KEYS = ("drw_epoch", "lr_steps", "warmup_epochs")
_PAPER_WARMUP = 5  # TrainConfig's default warm-up (the paper's)


def rescaled_schedule(epochs: int) -> dict[str, Any]:
    """The paper's schedule shape for a run of ``epochs`` epochs (0-based).

    The paper's 200 epochs start DRW and the first lr step (× 0.01) at 80% of training, the
    second step (× 0.0001) at 90%, after 2.5% of warm-up (at least one epoch). Rounding those
    fractions can merge phases or push them past the end on short runs, so the phases are then
    moved apart: for ``epochs >= 3``, ``warmup_epochs < drw_epoch == first step < second step <
    epochs`` always holds (the warm-up shrinks first, down to none at 3 epochs). Two epochs
    cannot hold all three phases: there is no warm-up, DRW and the first step start at epoch 1,
    and the second step is left at epoch 2, after the run, where
    :meth:`TrainConfig.schedule_warnings` reports it. One epoch holds no DRW: a deferred
    method is refused (:class:`TrainConfig` raises), and the others get both lr steps after
    the run, reported the same way.

    Example:
        >>> rescaled_schedule(20)
        {'drw_epoch': 16, 'lr_steps': ((16, 0.01), (18, 0.0001)), 'warmup_epochs': 1}
    """
    if epochs >= 3:
        second = max(2, min(round(0.9 * epochs), epochs - 1))
        first = max(1, min(round(0.8 * epochs), second - 1))
        warmup = min(max(1, round(0.025 * epochs)), first - 1)
    else:
        first, second, warmup = 1, 2, 0
    return {
        "drw_epoch": first,
        "lr_steps": ((first, 0.01), (second, 0.0001)),
        "warmup_epochs": warmup,
    }


def make_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a preset, updated by ``overrides`` (``None`` values ignored).

    When ``epochs`` is overridden, each of ``drw_epoch``, ``lr_steps`` and ``warmup_epochs``
    that is not given too is rescaled to the new length by :func:`rescaled_schedule` (DRW and
    the lr steps at 80% / 90% of training, warm-up 2.5%, phases kept apart and inside the run
    where the run is long enough for that; see there for runs of one or two epochs); those
    given are taken as written. :class:`TrainConfig` checks the result, and
    :meth:`TrainConfig.schedule_warnings` lists what cannot happen as written.
    """
    check_choice("preset", preset, (*PRESETS, *PRESET_ALIASES))
    preset = PRESET_ALIASES.get(preset, preset)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = {**PRESETS[preset], **overrides, "preset": preset}
    if base.get("profile") == "natural":
        base.setdefault("ratio", 1.0)  # the data's own imbalance: nothing is cut
    if "epochs" in overrides:
        epochs = overrides["epochs"]
        if not _is_int(epochs) or epochs < 1:
            raise expected("epochs", "a positive integer", repr(epochs))
        rescaled = rescaled_schedule(epochs)
        base.update({k: v for k, v in rescaled.items() if k not in overrides})
    return TrainConfig(**base)
