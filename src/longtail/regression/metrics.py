"""Deep imbalanced regression metrics, overall and per shot region (Yang et al., ICML 2021).

``mae``, ``mse``, ``gm`` (geometric mean of the absolute errors) and ``pearson`` (correlation of
predictions and targets), each over the whole test set and over its many-, medium- and few-shot
regions (:func:`~longtail.regression.shot_regions` of the *training* labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import expected
from .binning import Bins, ShotRegions, as_targets, bin_index, shot_regions

METRICS = ("mae", "mse", "gm", "pearson")


def geometric_mean_error(abs_errors: Any) -> float:
    """``scipy.stats.gmean`` of the absolute errors, ``exp(mean(log|e|))``, in float64.

    An exact zero error makes the mean of the logs −inf and GM 0, exactly what
    ``scipy.stats.gmean`` returns (the DIR code applies ``gmean`` to the raw absolute errors, no
    epsilon); longtail returns that 0 without scipy's divide-by-zero warning. Empty input: NaN.

    >>> geometric_mean_error([1.0, 4.0])
    2.0
    >>> geometric_mean_error([0.0, 4.0])
    0.0
    """
    e = np.abs(np.asarray(abs_errors, dtype=np.float64)).reshape(-1)
    if e.size == 0 or np.isnan(e).any():
        return float("nan")
    if (e == 0).any():
        return 0.0
    return float(np.exp(np.mean(np.log(e))))


def _pearson(p: np.ndarray, t: np.ndarray) -> float:
    """Pearson's r; NaN when undefined (fewer than 2 samples, or a constant side)."""
    if p.size < 2:
        return float("nan")
    dp, dt = p - p.mean(), t - t.mean()
    den = np.sqrt((dp * dp).sum() * (dt * dt).sum())
    return float((dp * dt).sum() / den) if den > 0 else float("nan")


def _block(p: np.ndarray, t: np.ndarray) -> dict[str, float | None]:
    if p.size == 0:
        return dict.fromkeys(METRICS)
    e = p - t
    return {
        "mae": float(np.mean(np.abs(e))),
        "mse": float(np.mean(e * e)),
        "gm": geometric_mean_error(e),
        "pearson": _pearson(p, t),
    }


def regression_metrics(
    pred: Any,
    target: Any,
    train_targets: Any,
    bins: Bins = 1.0,
    many_threshold: int = 100,
    few_threshold: int = 20,
    *,
    regions: ShotRegions | None = None,
) -> dict[str, float | None]:
    """MAE, MSE, GM and Pearson's r, overall and per shot region, as plain floats.

    Keys: ``mae, mse, gm, pearson`` and ``mae_many, mae_medium, mae_few, mse_many, ...,
    pearson_few``. A region with no test sample has ``None`` for its four metrics; Pearson's r is
    NaN where it is undefined (one sample, or constant predictions). NaN predictions give NaN
    metrics; NaN targets raise ``ValueError``. Per-region MAE and MSE are
    means over the region's test samples, as in the DIR code's ``shot_metrics``; GM is
    :func:`geometric_mean_error`.

    Args:
        pred, target: predictions and test targets, ``(N,)`` or ``(N, 1)`` (tensors or arrays).
        train_targets: the training targets that define the shot regions.
        bins: bin width (1 for ages, 0.1 for STS-B) or explicit edges (see
            :func:`~longtail.regression.shot_regions`).
        many_threshold, few_threshold: more than 100 training samples is many-shot, fewer than
            20 few-shot.
        regions: precomputed :class:`~longtail.regression.ShotRegions` (then ``train_targets``,
            ``bins`` and the thresholds are not used).

    >>> m = regression_metrics([1.0, 2.0], [1.5, 2.0], train_targets=[1.0] * 200 + [2.0] * 5)
    >>> m["mae"], m["mae_many"], m["mae_few"], m["mae_medium"]
    (0.25, 0.5, 0.0, None)
    """
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred, dtype=np.float64)
    p = p.reshape(-1)  # NaN predictions give NaN metrics; NaN targets raise
    t = as_targets(target, "target").numpy()
    if p.shape != t.shape:
        raise expected("pred", f"one prediction per target ({t.size})", f"{p.size} predictions")
    if regions is None:
        regions = shot_regions(train_targets, bins, many_threshold, few_threshold)
    out = _block(p, t)
    masks = regions.masks(t)
    for name in ("many", "medium", "few"):
        block = _block(p[masks[name]], t[masks[name]])
        out.update({f"{k}_{name}": v for k, v in block.items()})
    return out


def per_bin_mae(pred: Any, target: Any, edges: Any) -> tuple[list[float | None], list[int]]:
    """Mean absolute error per label bin, and the number of targets in each bin.

    Errors and bins are computed in float64 from the targets as given (never a float32 copy).
    Targets outside the edges count in the end bins (:func:`~longtail.regression.bin_index`).

    Returns:
        ``(mae, counts)``: one entry per bin; ``mae`` is ``None`` for a bin without targets.

    >>> per_bin_mae([1.0, 2.0, 6.0], [1.5, 2.0, 5.0], [0.0, 4.0, 8.0, 12.0])
    ([0.25, 1.0, None], [2, 1, 0])
    """
    p = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred, dtype=np.float64)
    t = as_targets(target, "target")
    p = p.reshape(-1)
    if p.shape[0] != t.numel():
        raise expected("pred", f"one prediction per target ({t.numel()})", f"{p.size} predictions")
    idx = bin_index(t, edges).numpy()
    nb = len(edges) - 1  # bin_index checked them: 1-D, increasing
    counts = np.bincount(idx, minlength=nb)
    sums = np.bincount(idx, weights=np.abs(p - t.numpy()), minlength=nb)
    mae = [float(s / c) if c > 0 else None for s, c in zip(sums, counts, strict=True)]
    return mae, counts.tolist()
