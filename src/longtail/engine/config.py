"""The training recipe as data: a config dataclass, named methods and presets.

The paper recipe is that of the LDAM-DRW and MM repositories (METHODS.md §4): ResNet-32, 200
epochs, batch 128, SGD (lr 0.1, momentum 0.9, weight decay 2e-4), linear warm-up over 5 epochs,
lr × 0.01 from epoch 160 and × 0.0001 from epoch 180, deferred re-weighting from epoch 160 with
effective-number weights (β = 0.9999), random 4-pixel-padded crops and horizontal flips.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from longtail._validation import check_choice, expected

__all__ = [
    "METHODS",
    "PRESETS",
    "MethodSpec",
    "TrainConfig",
    "get_method",
    "make_config",
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


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` named ``name``; unknown names raise ``ValueError``."""
    try:
        return METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(METHODS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Expected argument `method` to be one of {', '.join(METHODS)}, but got {name!r}.{hint}"
        ) from None


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved beside its results).

    Epochs are 0-based: ``warmup_epochs = 5`` means epochs 0..4 ramp the learning rate linearly
    from ``lr/5`` to ``lr``; ``lr_steps = ((160, 0.01), (180, 0.0001))`` multiplies the base
    learning rate by 0.01 from epoch 160 on and by 0.0001 from 180 on; ``drw_epoch`` is the
    first epoch with deferred weights or samples.
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    profile: str = "exp"
    ratio: float = 100.0
    n_max: int | None = None  # examples kept of the head class; default: all it has
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

    def __post_init__(self) -> None:
        get_method(self.method)
        check_choice("profile", self.profile, ("exp", "step"))
        if not (isinstance(self.ratio, int | float) and self.ratio >= 1):
            raise expected("ratio", "a number >= 1 (n_max / n_min)", repr(self.ratio))
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise expected(name, "a positive integer", repr(v))
        for name in ("warmup_epochs", "drw_epoch", "eval_every", "padding", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise expected(name, "a non-negative integer", repr(v))
        if self.few_threshold > self.many_threshold:
            raise expected(
                "few_threshold",
                f"<= many_threshold ({self.many_threshold})",
                repr(self.few_threshold),
            )
        self.lr_steps = tuple((int(e), float(f)) for e, f in self.lr_steps)
        self.ratio = float(self.ratio)

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
        """The settings that make two runs the same run (everything but bookkeeping)."""
        d = self.to_dict()
        # how a run executes, not what it computes (compile changes rounding only)
        for k in ("data_dir", "threads", "download", "eval_batch_size", "compile"):
            d.pop(k, None)
        return d


# Presets set the schedule; everything else keeps the paper's values. "paper" compiles the
# training step (torch.compile: 1.3-1.7x the eager speed on CPU here, for a one-off compile of
# under two minutes). "quick" is a short
# schedule (8 epochs) on a narrower, shallower CIFAR ResNet (ResNet-20 of width 8, 4.5 times
# fewer multiply-adds than ResNet-32), sized so that a Fashion-MNIST exp-100 run takes about two
# minutes and a step-10 run about four on a 2-core CPU, while keeping the shape of the paper's
# schedule: warm-up, then DRW and the two lr steps at 80% and 90% of training.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"compile": True},
    "quick": {
        "epochs": 8,
        "model": "resnet20",
        "width": 8,
        "warmup_epochs": 1,
        "lr_steps": ((6, 0.01), (7, 0.0001)),
        "drw_epoch": 6,
        "eval_every": 0,
    },
}


def make_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a preset, updated by ``overrides`` (``None`` values ignored).

    When ``epochs`` is overridden without the schedule, the schedule is rescaled to keep the
    preset's proportions (DRW and lr steps at 80% / 90% of training, warm-up 2.5%, at least 1).
    """
    check_choice("preset", preset, tuple(PRESETS))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = {**PRESETS[preset], **overrides, "preset": preset}
    if "epochs" in overrides and not {"drw_epoch", "lr_steps", "warmup_epochs"} & set(overrides):
        e = int(overrides["epochs"])
        base["drw_epoch"] = round(0.8 * e)
        base["lr_steps"] = ((round(0.8 * e), 0.01), (round(0.9 * e), 0.0001))
        base["warmup_epochs"] = max(1, round(0.025 * e)) if e > 1 else 0
    return TrainConfig(**base)
