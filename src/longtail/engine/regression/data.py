"""The data of a DIR run: loading, the DIR split, label bins and shot regions, the target
transform, and the data's part of the run identity.

Targets stay float64 in their original units from the file to every bin, region and metric;
only the network's target (:class:`TargetTransform`) is float32.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longtail._validation import expected
from longtail.engine.regression.config import IMAGE_DATASETS, RegressionConfig, is_csv
from longtail.engine.run import fingerprint
from longtail.regression import (
    IMAGE_SPLIT_FILES,
    ShotRegions,
    auto_bin_width,
    bin_index,
    fixed_width_bins,
    group_edges,
    load_csv_table,
    load_diamonds,
    load_image_dir,
    max_groups,
    shot_regions,
    tabular_dir,
)

__all__ = [
    "RegressionData",
    "TargetTransform",
    "check_regression_data",
    "prepare_regression_data",
    "run_identity",
]


@dataclass
class RegressionData:
    """A DIR data set ready for training (targets in original units, float64).

    ``x_*`` are standardised float32 features (tables) or uint8 images ``(N, 3, S, S)``;
    ``edges`` are the fine label bins over the training targets (width ``bin_width``);
    ``regions`` their many/medium/few labels; ``image_mean``/``image_std`` the channel
    statistics of the training images (images only); ``fingerprint`` identifies the six tensors
    (:func:`~longtail.engine.run.fingerprint`), as a run's identity records them.
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
    fingerprint: str = ""

    @property
    def train_hist(self) -> list[int]:
        return self.regions.counts.tolist()

    @property
    def test_hist(self) -> list[int]:
        """Test samples per fine bin (targets beyond the edges count in the end bins)."""
        idx = bin_index(self.y_test, self.edges)
        return torch.bincount(idx, minlength=self.edges.numel() - 1).tolist()

    @property
    def ratio(self) -> float | None:
        """Largest over smallest training count among the non-empty bins."""
        c = self.regions.counts[self.regions.counts > 0]
        return float(c.max() / c.min()) if c.numel() else None

    def sizes(self) -> dict[str, int]:
        return {
            "train_size": len(self.y_train),
            "val_size": len(self.y_val),
            "test_size": len(self.y_test),
        }


# -------------------------------------------------------------------------------------- loading
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


def _load_images(dataset: str, data_dir: str | None, size: int) -> list[torch.Tensor]:
    if not data_dir:
        raise expected(
            "data_dir", f"the folder holding the {dataset} split CSV and images (--data-dir)", None
        )
    splits = ("train", "val", "test")
    parts = [load_image_dir(dataset, data_dir, s, size).load_all() for s in splits]
    return [t for xy in parts for t in xy]


def _load_table(
    dataset: str,
    target: str,
    bins: float | None,
    split: tuple[int, int, int],
    drop: tuple[str, ...],
) -> tuple[list[torch.Tensor], float, tuple[str, ...]]:
    """(x/y tensors of the three splits, bin width, feature names) of a table."""
    val_pb, test_pb, seed = split
    if dataset == "diamonds":
        tab = load_diamonds(bins, val_pb, test_pb, seed, drop=drop)
    else:
        if not Path(dataset).is_file():
            # the absolute path: a relative one is read from the current folder (or, in a
            # config file, from the file's folder), and the user needs to see which
            got = f"{dataset!r}, which is not a file (looked for {str(Path(dataset).absolute())!r})"
            what = "a registered dataset name or an existing .csv file"
            raise FileNotFoundError(str(expected("dataset", what, got)))
        df = load_csv_table(dataset, target, drop)
        bins = bins or auto_bin_width(df[target].to_numpy(dtype=np.float64))
        tab = tabular_dir(
            df, target, bins=bins, val_per_bin=val_pb, test_per_bin=test_pb, seed=seed, drop=drop
        )
    tensors = [tab.x_train, tab.y_train, tab.x_val, tab.y_val, tab.x_test, tab.y_test]
    return tensors, float(bins), tab.feature_names


@functools.lru_cache(maxsize=2)
def _load_data(key: tuple[Any, ...], stamp: Any = None) -> RegressionData:
    (dataset, target, data_dir, bins, val_pb, test_pb, split_seed, drop, size, many, few) = key
    if dataset in IMAGE_DATASETS:
        if drop:  # images have no columns: a --drop here was meant for some other data
            raise expected("drop", f"absent for the image data set {dataset}", list(drop))
        tensors, kind, names = _load_images(dataset, data_dir, size), "image", ()
    else:
        split = (val_pb, test_pb, split_seed)
        tensors, bins, names = _load_table(dataset, target, bins, split, drop)
        kind = "table"
    xtr, ytr, xva, yva, xte, yte = tensors
    for split, y in (("training", ytr), ("validation", yva), ("test", yte)):
        if y.numel() == 0:
            raise expected(
                f"the {split} split of {dataset}",
                "non-empty (more rows, or wider --bins: each bin gives at most a third of its "
                "rows to validation and to test)",
                "no rows",
            )
    ytr, yva, yte = (y.to(torch.float64) for y in (ytr, yva, yte))  # exact for ages, no-op else
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
        fingerprint=fingerprint(xtr, ytr, xva, yva, xte, yte),
    )


def _file_stamp(config: RegressionConfig) -> Any:
    """Identity of the file behind the data, so a replaced or edited file is read again."""
    if is_csv(config.dataset):
        path = Path(config.dataset)
    elif config.dataset in IMAGE_DATASETS and config.data_dir:
        path = Path(config.data_dir) / IMAGE_SPLIT_FILES[config.dataset]
    else:
        return None
    if not path.is_file():
        return None
    st = os.stat(path)
    return (str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)


def prepare_regression_data(config: RegressionConfig) -> RegressionData:
    """Load and split the data of ``config`` (cached: a bench's runs share one load).

    Raises:
        ValueError: a CSV file that is empty, only a header or not text; no target column, NaN
            or non-numeric targets, non-numeric feature columns (``drop`` them), a bin width
            making more than 100,000 bins, an empty split, a missing ``data_dir``.
        FileNotFoundError: a missing CSV file or DIR split file.
    """
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
    return _load_data(key, _file_stamp(config))


def check_regression_data(config: RegressionConfig) -> RegressionData:
    """:func:`prepare_regression_data`, then the checks that need the data.

    Warns when fewer than half of the label bins holding training data hold a test example too
    (a bin gives the test set a row only from 3 rows up): the bins are narrower than the data,
    and the balanced test set is a handful of rows.

    Raises:
        ValueError: as :func:`prepare_regression_data`; training targets that are all equal
            (nothing to regress), or all in one label bin (DIR's metrics compare label regions);
            for Group-DIR methods, ``num_groups`` larger than the number of label bins the
            training targets span (groups finer than the label bins); ``target_transform="log"``
            for targets that are not all positive.
    """
    data = prepare_regression_data(config)
    low, high = float(data.y_train.min()), float(data.y_train.max())
    if not high > low:
        raise expected(
            "the training targets",
            "not all equal (a constant leaves nothing to learn)",
            f"all {low:g}",
        )
    filled = [j for j, n in enumerate(data.train_hist) if n > 0]
    if len(filled) < 2:
        raise expected(
            "bins",
            f"a width that puts the training targets (from {low:g} to {high:g}) in at least 2 "
            "label bins: DIR's metrics compare label regions",
            f"{data.bin_width:g}, one bin",
        )
    tested = sum(1 for j in filled if data.test_hist[j] > 0)
    if tested < len(filled) / 2:
        warnings.warn(
            f"only {tested} of the {len(filled)} label bins with training data have a test "
            f"example ({sum(data.test_hist)} test rows in all; a bin gives the test set a row "
            f"only from 3 rows up): the {data.bin_width:g}-wide bins are too narrow for this "
            "data, and its test metrics are those of a handful of rows. Wider --bins fix it.",
            stacklevel=2,
        )
    few_rows = [
        f"{len(y)} {name} rows"
        for name, y in (("test", data.y_test), ("validation", data.y_val))
        if len(y) < _FEW_ROWS
    ]
    if few_rows and tested >= len(filled) / 2:  # (the warning above says it already)
        warnings.warn(
            f"the DIR split left {' and '.join(few_rows)} (a label bin gives each of them at "
            "most a third of its rows): errors measured on so few rows are not a measurement to "
            "compare methods or pick epochs by. A larger table, or wider --bins, gives more.",
            stacklevel=2,
        )
    if config.spec.loss == "group-dir":
        most = max_groups(low, high, data.bin_width)
        if config.num_groups > most:
            raise expected(
                "num_groups",
                f"at most {most}, the number of label values {data.bin_width:g} apart that fit "
                f"in the training targets' range [{low:g}, {high:g}] (more groups would be "
                f"narrower than the {data.bin_width:g}-wide label bins)",
                config.num_groups,
            )
        group_edges(data.y_train, config.num_groups, config.group_edges)  # raises if they clash
    if config.target_transform == "log" and bool((data.y_train <= 0).any()):
        raise expected(
            "target_transform", "'standardize' or 'none' for targets that are not all > 0", "'log'"
        )
    return data


#: Fewer test or validation rows than this draw a warning (the DIR benchmarks have hundreds).
_FEW_ROWS = 30


def run_identity(config: RegressionConfig, data: RegressionData | None = None) -> dict[str, Any]:
    """Everything that determines the DIR run of ``config``: its config identity and its data.

    ``data`` defaults to :func:`prepare_regression_data` (no training): a bench runner can
    identify a job without running it.
    """
    data = prepare_regression_data(config) if data is None else data
    return {**config.identity(), "data": data.fingerprint}


# ----------------------------------------------------------------------------- target transform
class TargetTransform:
    """The target the network regresses, and back: standardised (optionally after a log).

    The statistics are float64 over the float64 training targets; only the standardised target
    is cast to float32, so targets such as ``1e9 + k`` keep their differences.
    """

    def __init__(self, kind: str, y_train: torch.Tensor) -> None:
        self.kind = kind
        if kind == "log" and bool((y_train <= 0).any()):
            raise expected(
                "target_transform",
                "'standardize' or 'none' for targets that are not all positive",
                "'log'",
            )
        base = y_train.to(torch.float64)
        base = base.log() if kind == "log" else base
        if kind == "none":
            self.shift, self.scale = 0.0, 1.0
        else:
            self.shift = float(base.mean())
            sd = float(base.std()) if base.numel() > 1 else 0.0
            self.scale = sd if sd > 0 else 1.0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        base = y.to(torch.float64)
        base = base.log() if self.kind == "log" else base
        return ((base - self.shift) / self.scale).to(torch.float32)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        y = z.to(torch.float64) * self.scale + self.shift
        return y.exp() if self.kind == "log" else y
