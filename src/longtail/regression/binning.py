"""Label bins for deep imbalanced regression: equal-width bins, fine bins, groups, shot regions.

Continuous targets are discretised in three places, each with its own bins:

* shot regions and the DIR metrics use *fine* bins of a fixed width aligned to multiples of that
  width (1 year for AgeDB-DIR / IMDB-WIKI-DIR, 0.1 for STS-B-DIR), as the DIR benchmarks do;
* LDS and FDS use label bins (the same fine bins, or any edges the user gives);
* Group-DIR uses ``G`` contiguous equal-width groups over the training label range.

Edges are float64 tensors of length ``num_bins + 1``; bin ``b`` is ``[edges[b], edges[b + 1])``,
except the last, which also holds its top edge.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch

from .._validation import check_positive, expected
from ..metrics import regions_of_counts

# A bin specification: a bin width (fine bins aligned to its multiples) or explicit edges.
Bins = Union[float, Sequence[float], np.ndarray, torch.Tensor]  # noqa: UP007 (a runtime alias)

REGIONS = ("many", "medium", "few")


def as_targets(targets: Any, name: str = "targets") -> torch.Tensor:
    """Targets as a flat float64 CPU tensor; NaN or infinite values raise ``ValueError``."""
    if isinstance(targets, torch.Tensor):
        t = targets.detach().to(device="cpu", dtype=torch.float64)
    else:
        try:
            t = torch.from_numpy(np.array(targets, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise expected(name, "a sequence of numbers", type(targets).__name__) from err
    t = t.reshape(-1)
    _check_finite(t, name)
    return t


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
        bad = torch.nonzero(~torch.isfinite(t)).flatten()[:5].tolist()
        raise expected(name, "finite numbers (no NaN or inf)", f"non-finite values at {bad}")


def _check_edges(edges: Any) -> torch.Tensor:
    e = torch.as_tensor(
        edges.detach().cpu() if isinstance(edges, torch.Tensor) else np.asarray(edges),
        dtype=torch.float64,
    ).reshape(-1)
    if e.numel() < 2:
        raise expected("bin edges", "at least 2 increasing numbers", f"{e.numel()} values")
    if not bool(torch.isfinite(e).all()) or not bool((e[1:] > e[:-1]).all()):
        raise expected("bin edges", "finite and strictly increasing", e.tolist()[:10])
    return e


def equal_width_bins(
    targets: Any, num_bins: int, low: float | None = None, high: float | None = None
) -> torch.Tensor:
    """Edges of ``num_bins`` equal-width bins over ``[low, high]``.

    Args:
        targets: the training targets (any shape; only used when ``low`` or ``high`` is None).
        num_bins: number of bins, >= 1.
        low, high: the range; default the smallest and largest target.

    Returns:
        float64 edges of shape ``(num_bins + 1,)``, ``edges[0] == low``, ``edges[-1] == high``.

    >>> equal_width_bins([0.0, 10.0], 4)
    tensor([ 0.0000,  2.5000,  5.0000,  7.5000, 10.0000], dtype=torch.float64)
    """
    if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
        raise expected("num_bins", "an integer >= 1", repr(num_bins))
    if low is None or high is None:
        t = as_targets(targets)
        if t.numel() == 0:
            raise expected("targets", "non-empty when low or high is not given", "no targets")
        low = float(t.min()) if low is None else low
        high = float(t.max()) if high is None else high
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise expected("high", f"finite and greater than low={low}", repr(high))
    edges = torch.linspace(low, high, num_bins + 1, dtype=torch.float64)
    edges[0], edges[-1] = low, high  # exact ends, whatever linspace rounds
    return edges


#: The most fine bins a bin width may make: more is a typo (``--bins 1e-9``), and the per-bin
#: tensors (histograms, FDS statistics, LDS densities) would not fit in memory.
MAX_BINS = 100_000


def auto_bin_width(targets: Any, num_bins: int = 100) -> float:
    """A round bin width giving at most ``num_bins`` bins over the targets' range.

    ``(max − min) / num_bins`` rounded up to 1, 2 or 5 times a power of ten (so 0.4 to 1 times
    ``num_bins`` bins, one more where the range straddles an edge); 1.0 for a single
    value. Integer targets (ages, counts) get at least 1: a narrower bin than 1 would leave
    every other bin empty by construction (0 to 34 in bins of 0.5), which skews the shot
    regions and the LDS density.

    >>> auto_bin_width([326.0, 18823.0]), auto_bin_width([0.25, 5.0]), auto_bin_width([3.0])
    (200.0, 0.05, 1.0)
    >>> auto_bin_width([0.0, 17.0, 34.0]), auto_bin_width([0.0, 17.5, 34.0])
    (1.0, 0.5)
    """
    t = as_targets(targets)
    span = float(t.max() - t.min()) if t.numel() else 0.0
    if not span > 0:
        return 1.0
    raw = span / num_bins
    if raw < 1 and bool((t == t.round()).all()):
        return 1.0
    return _round_width(raw)


def _round_width(raw: float) -> float:
    """``raw`` (> 0) rounded up to 1, 2 or 5 times a power of ten."""
    k = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * 10.0**k >= raw * (1 - 1e-9):
            return float(round(m * 10.0**k, 12 - k if k < 0 else 12))
    return float(10.0 ** (k + 1))  # pragma: no cover - m = 10 always fits


def bin_count(low: float, high: float, bin_width: float) -> int:
    """How many fine bins of width ``bin_width`` (aligned to its multiples) cover ``[low, high]``.

    >>> bin_count(20.0, 22.5, 1.0)
    3
    """
    check_positive("bin_width", bin_width)
    return _lattice_index(float(high), bin_width) - _lattice_index(float(low), bin_width) + 1


def check_bin_count(low: float, high: float, bin_width: float, name: str = "bin_width") -> int:
    """:func:`bin_count`, refusing a width that makes more than :data:`MAX_BINS` bins.

    The check runs before anything per bin is allocated, so ``bin_width=1e-9`` over prices fails
    at once with the number of bins it would make and a width that makes about 100.

    Raises:
        ValueError: naming ``name`` (``"bins"`` for the engine's option).
    """
    n = bin_count(low, high, bin_width)
    if n > MAX_BINS:
        raise expected(
            name,
            f"a bin width that makes at most {MAX_BINS:,} bins over the targets' range "
            f"[{low:g}, {high:g}]",
            f"{bin_width!r}, which would make {n:,} bins (a width of "
            f"{_round_width((high - low) / 100) if high > low else 1.0:g} makes about 100)",
        )
    return n


def fixed_width_bins(targets: Any, bin_width: float) -> torch.Tensor:
    """Fine bins of width ``bin_width`` aligned to its multiples, covering the targets.

    Bin ``k`` is ``[k·w, (k+1)·w)``: with ``w = 1`` an age of 25.0 or 25.9 is in bin ``[25, 26)``,
    as the DIR benchmarks bin ages by ``int(age)``. The edges run from the bin of the smallest
    target to one past the bin of the largest, so the largest target lies inside the last bin.
    Each edge is the double nearest to the decimal ``k·w`` (``3·0.1`` is 0.30000000000000004 in
    floating point, which would put a score of 0.3 in the wrong bin), also for large targets
    such as ``1e9 + k``.

    Raises:
        ValueError: a width that would make more than :data:`MAX_BINS` bins
            (:func:`check_bin_count`), non-finite targets, a width that is not positive.

    >>> fixed_width_bins([20.0, 22.5], 1.0)
    tensor([20., 21., 22., 23.], dtype=torch.float64)
    """
    check_positive("bin_width", bin_width)
    floating = isinstance(targets, torch.Tensor) and targets.is_floating_point()
    dtype = targets.dtype if floating else torch.float64
    t = as_targets(targets)
    if t.numel() == 0:
        raise expected("targets", "non-empty", "no targets")
    check_bin_count(float(t.min()), float(t.max()), bin_width)
    k0 = _lattice_index(float(t.min()), bin_width, dtype)
    k1 = _lattice_index(float(t.max()), bin_width, dtype)
    return _lattice_edges(k0, k1 + 1, bin_width)


def _lattice_edges(k0: int, k1: int, bin_width: float) -> torch.Tensor:
    """``k·w`` for ``k = k0..k1`` (float64), each the double nearest to the decimal product."""
    return torch.from_numpy(_lattice_values(np.arange(k0, k1 + 1, dtype=np.float64), bin_width))


def _lattice_values(k: Any, bin_width: float) -> np.ndarray:
    """``k·w`` elementwise (float64), each the double nearest to the decimal product.

    ``w`` is written as its shortest decimal ``m·10^-d``; then ``k·m`` is an exact integer and
    one correctly rounded division by ``10^d`` gives the nearest double. (Rounding ``k·w`` to 12
    decimals instead is wrong for large ``k·w``: the scaled value exceeds float64's exact range.)
    """
    k = np.asarray(k, dtype=np.float64)
    _sign, digits, exponent = decimal.Decimal(repr(float(bin_width))).as_tuple()
    m = int("".join(map(str, digits)))
    exact = (float(np.abs(k).max()) if k.size else 0.0) * m < 2**53
    if isinstance(exponent, int) and exponent < 0 and -exponent <= 22 and exact:
        return (k * m) / 10.0**-exponent  # 10^d is exact in float64 up to d = 22
    return k * bin_width


def _lattice_index(x: Any, bin_width: float, dtype: torch.dtype = torch.float64) -> Any:
    """The bin ``k`` of ``x`` on the lattice of ``w``: the largest ``k`` whose edge ``k·w`` (the
    double nearest the decimal product) is ``<= x``, so 0.3 is in bin 3 of ``w = 0.1`` although
    ``0.3 / 0.1 = 2.9999999999999996``.

    The edge and ``x`` are compared in the targets' ``dtype`` (float32 for half and float32
    targets), as :func:`bin_index` compares them: a float32 label ``float32(0.7) = 0.69999999``
    is in bin 7. ``floor(x / w)`` is within one of that ``k``; one step each way settles it.
    (A tolerance on ``x / w`` instead put 1000005.4998 in the bin of ``[1000005.5, 1000006)``
    with ``w = 0.5``: what it forgives grows with the magnitude.)
    """
    xs = np.asarray(x, dtype=np.float64)
    cast = np.float64 if dtype == torch.float64 else np.float32
    xd = xs.astype(cast)
    k = np.floor(xs / bin_width)
    k = k + (_lattice_values(k + 1, bin_width).astype(cast) <= xd)
    k = k - (_lattice_values(k, bin_width).astype(cast) > xd)
    return int(k) if k.ndim == 0 else k.astype(np.int64)


def bin_index(targets: torch.Tensor, edges: Any) -> torch.Tensor:
    """The bin of each target: ``b`` with ``edges[b] <= y < edges[b + 1]``.

    A target equal to the top edge goes to the last bin. Targets outside ``[edges[0], edges[-1]]``
    (a test label beyond the training range) are *clamped* to the first or last bin, as the DIR
    code clamps ages above its last bucket into it. The comparison is made in the targets' own
    floating dtype (at least float32), so a float32 target of 0.7 falls in the bin that starts at
    float32(0.7) rather than one below it.

    Args:
        targets: tensor of any shape (or anything ``torch.as_tensor`` takes); NaN raises.
        edges: increasing bin edges, e.g. from :func:`equal_width_bins`.

    Returns:
        int64 bin indices of the targets' shape, on the targets' device.

    >>> bin_index(torch.tensor([0.0, 2.4, 2.5, 10.0, 12.0]), equal_width_bins([0.0, 10.0], 4))
    tensor([0, 0, 1, 3, 3])
    """
    if not isinstance(targets, torch.Tensor):
        targets = torch.from_numpy(np.array(targets, dtype=np.float64))
    e = _check_edges(edges)
    _check_finite(targets, "targets")
    dtype = (
        torch.promote_types(targets.dtype, torch.float32)
        if targets.is_floating_point()
        else torch.float64
    )
    t = targets.detach().to(dtype)
    e = e.to(device=t.device, dtype=dtype)
    idx = torch.searchsorted(e, t.contiguous().reshape(-1), right=True) - 1
    return idx.clamp_(0, e.numel() - 2).reshape(targets.shape)


def max_groups(low: float, high: float, bin_width: float) -> int:
    """The most groups a label grid of step ``bin_width`` over ``[low, high]`` supports.

    This is the number of grid values in the range, ``floor((high - low) / w) + 1``: more groups
    than distinct possible labels would leave groups that no label can fall in.

    >>> max_groups(0, 100, 1)
    101
    """
    check_positive("bin_width", bin_width)
    return int(_lattice_index(float(high) - float(low), bin_width)) + 1


def group_labels(
    targets: Any,
    num_groups: int,
    low: float | None = None,
    high: float | None = None,
    *,
    bin_width: float | None = None,
) -> torch.Tensor:
    """Group-DIR group labels: ``G`` contiguous equal-width groups over ``[low, high]``.

    Pu et al., "Leveraging Group Classification with Descending Soft Labeling for Deep Imbalanced
    Regression", AAAI 2025, aggregate "the data at nearby labels into the same groups"; the paper
    does not say how the boundaries are drawn. longtail uses equal-width groups over the
    *training* label range (pass the training minimum and maximum as ``low`` and ``high`` for test
    targets too); targets outside it are clamped to the first or last group.

    Rules (``ValueError`` otherwise): ``num_groups >= 2`` (one group is plain regression), and
    with ``bin_width`` (the label resolution, e.g. 1 year), ``num_groups`` must not exceed
    :func:`max_groups`, the number of distinct labels the range can hold.

    Args:
        targets: tensor of targets (any shape); NaN raises.
        num_groups: ``G`` (the paper uses 15 to 40; 20 by default in its experiments).
        low, high: the training label range; default the targets' own minimum and maximum.
        bin_width: optional label resolution used to check ``num_groups``.

    Returns:
        int64 group labels in ``[0, G)``, of the targets' shape and device.

    >>> group_labels(torch.tensor([0.0, 24.9, 25.0, 99.0, 100.0]), 4, 0.0, 100.0)
    tensor([0, 0, 1, 3, 3])
    """
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 2:
        raise expected("num_groups", "an integer >= 2 (one group is plain regression)", num_groups)
    if not isinstance(targets, torch.Tensor):
        targets = torch.from_numpy(np.array(targets, dtype=np.float64))
    edges = equal_width_bins(targets, num_groups, low, high)
    if bin_width is not None:
        most = max_groups(float(edges[0]), float(edges[-1]), bin_width)
        if num_groups > most:
            raise expected(
                "num_groups",
                f"at most {most}, the number of labels of step {bin_width} in "
                f"[{float(edges[0])}, {float(edges[-1])}]",
                num_groups,
            )
    return bin_index(targets, edges)


#: How Group-DIR's group boundaries are drawn over the training targets (:func:`group_edges`).
GROUP_EDGES = ("equal-width", "equal-frequency")


def group_edges(
    train_targets: Any,
    num_groups: int,
    kind: str = "equal-width",
    *,
    bin_width: float | None = None,
) -> torch.Tensor:
    """Edges ``(G + 1,)`` of Group-DIR's ``G`` contiguous groups over the training targets.

    * ``"equal-width"`` (the default, longtail's reading of Pu et al. 2025, see
      :func:`group_labels`): ``G`` groups of equal width over ``[min, max]`` of the training
      targets. On a long-tailed target most groups of the tail hold a handful of training samples
      (or none) and the head sits in one or two groups.
    * ``"equal-frequency"`` (an option; the paper only asks for groups of nearby labels): each
      group holds ``N / G`` training targets (up to ties). Edge ``k`` lies halfway between the
      sorted targets ``k·N/G − 1`` and ``k·N/G`` (0-based, rounded); the first and last edges are
      the smallest and largest target. The tail is then one or two wide groups and the head is cut
      finely.

    Test targets are grouped with the same edges (:func:`bin_index`; outside the training range
    they are clamped to the first or last group).

    Raises:
        ValueError: ``num_groups < 2``; training targets that are all equal; with
            ``bin_width``, more equal-width groups than labels of that step in the range
            (:func:`max_groups`); equal-frequency groups whose edges coincide (more groups than
            the targets have distinct values between the quantiles: use fewer groups).

    >>> group_edges([0.0, 1.0, 2.0, 3.0, 10.0, 100.0], 2)
    tensor([  0.,  50., 100.], dtype=torch.float64)
    >>> group_edges([0.0, 1.0, 2.0, 3.0, 10.0, 100.0], 2, "equal-frequency")
    tensor([  0.0000,   2.5000, 100.0000], dtype=torch.float64)
    """
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 2:
        raise expected("num_groups", "an integer >= 2 (one group is plain regression)", num_groups)
    if kind not in GROUP_EDGES:
        raise expected("kind", f"one of {', '.join(map(repr, GROUP_EDGES))}", repr(kind))
    t = as_targets(train_targets, "train_targets")
    if t.numel() == 0:
        raise expected("train_targets", "non-empty", "no targets")
    low, high = float(t.min()), float(t.max())
    if not high > low:
        raise expected("train_targets", "not all equal (groups need a range)", f"all {low:g}")
    if kind == "equal-width":
        edges = equal_width_bins(t, num_groups, low, high)
        if bin_width is not None:
            most = max_groups(low, high, bin_width)
            if num_groups > most:
                raise expected(
                    "num_groups",
                    f"at most {most}, the number of labels of step {bin_width} in "
                    f"[{low:g}, {high:g}]",
                    num_groups,
                )
        return edges
    y = t.sort().values
    n = y.numel()
    cut = [round(k * n / num_groups) for k in range(1, num_groups)]
    inner = [(float(y[max(c - 1, 0)]) + float(y[min(c, n - 1)])) / 2 for c in cut]
    edges = torch.tensor([low, *inner, high], dtype=torch.float64)
    if not bool((edges[1:] > edges[:-1]).all()):
        distinct = int(torch.unique(edges).numel()) - 1
        if distinct < 2:  # no G >= 2 fits: the way out is the other kind of groups
            raise expected(
                "group_edges",
                "'equal-width' for these training targets (--group-edges equal-width): no "
                "number of equal-frequency groups fits, their quantiles coincide",
                "'equal-frequency'",
            )
        raise expected(
            "num_groups",
            f"at most about {distinct} equal-frequency groups for these training targets (their "
            "quantiles coincide: too few distinct values)",
            num_groups,
        )
    return edges


def resolve_bins(bins: Bins, train_targets: Any) -> tuple[torch.Tensor, float | None]:
    """``bins`` (a width or explicit edges) as ``(edges, bin_width or None)``."""
    if isinstance(bins, (int, float)) and not isinstance(bins, bool):
        check_positive("bins", bins)
        t = as_targets(train_targets)
        if t.numel():  # refused under the callers' name, `bins`, before anything is allocated
            check_bin_count(float(t.min()), float(t.max()), float(bins), name="bins")
        return fixed_width_bins(t, float(bins)), float(bins)
    return _check_edges(bins), None


def bin_of(targets: torch.Tensor, edges: torch.Tensor, bin_width: float | None) -> np.ndarray:
    """Bins of float64 CPU ``targets``: the lattice for fixed-width bins, else :func:`bin_index`.

    Fixed-width bins index by the lattice of :func:`fixed_width_bins` (``floor(y / w)``, exact
    at the edges) and may fall outside ``[0, B)`` for targets outside the edges; callers decide
    what that means.
    """
    if bin_width is None:
        return bin_index(targets, edges).numpy()
    k0 = _lattice_index(float(edges[0]), bin_width)
    return np.asarray(_lattice_index(targets.numpy(), bin_width)).reshape(-1) - k0


@dataclass(frozen=True)
class ShotRegions:
    """Many / medium / few-shot label bins of a training set (Yang et al., ICML 2021).

    Attributes:
        edges: float64 bin edges ``(B + 1,)``.
        counts: int64 training samples per bin ``(B,)``.
        regions: ``"many"``, ``"medium"`` or ``"few"`` for each bin.
        bin_width: the width of fixed-width bins, or None for explicit edges.
        many_threshold, few_threshold: a bin is many-shot with more than ``many_threshold``
            training samples, few-shot with fewer than ``few_threshold``, medium otherwise.
    """

    edges: torch.Tensor
    counts: torch.Tensor
    regions: tuple[str, ...]
    bin_width: float | None
    many_threshold: int
    few_threshold: int

    def assign(self, targets: Any) -> np.ndarray:
        """The region of each target (a NumPy array of ``"many"``/``"medium"``/``"few"``).

        With fixed-width bins, a target in a bin outside the training range has no training
        sample in its bin and is few-shot, as in the DIR code (which counts the training samples
        with the test label's value). With explicit edges, targets outside them are clamped to the
        first or last bin, as :func:`bin_index` does.
        """
        labels = np.asarray((*self.regions, "few"))
        idx = bin_of(as_targets(targets), self.edges, self.bin_width)
        outside = (idx < 0) | (idx >= len(self.regions))
        return labels[np.where(outside, len(self.regions), idx)]  # the trailing "few"

    def masks(self, targets: Any) -> dict[str, np.ndarray]:
        """Boolean masks ``{"many": ..., "medium": ..., "few": ...}`` over ``targets``."""
        r = self.assign(targets)
        return {name: r == name for name in REGIONS}


def shot_regions(
    train_targets: Any,
    bins: Bins = 1.0,
    many_threshold: int = 100,
    few_threshold: int = 20,
) -> ShotRegions:
    """Label the bins of the training label histogram as many-, medium- or few-shot.

    The DIR protocol (Yang et al., "Delving into Deep Imbalanced Regression", ICML 2021): a bin is
    *many-shot* with more than 100 training samples, *few-shot* with fewer than 20, *medium*
    otherwise (so exactly 100 is medium and exactly 20 is medium).

    Args:
        train_targets: the training targets.
        bins: a bin width (fine bins aligned to its multiples: 1 for ages, 0.1 for STS-B scores)
            or explicit bin edges.
        many_threshold, few_threshold: the thresholds (100 and 20 in the DIR benchmarks).

    >>> r = shot_regions([0.5] * 150 + [1.5] * 100 + [2.5] * 19, bins=1.0)
    >>> r.regions
    ('many', 'medium', 'few')
    >>> r.assign([0.2, 1.0, 2.9, 7.0]).tolist()
    ['many', 'medium', 'few', 'few']
    """
    _check_thresholds(many_threshold, few_threshold)
    t = as_targets(train_targets, "train_targets")
    if t.numel() == 0:
        raise expected("train_targets", "non-empty", "no targets")
    edges, width = resolve_bins(bins, t)
    idx = torch.from_numpy(bin_of(t, edges, width)).clamp_(0, edges.numel() - 2)
    counts = torch.bincount(idx, minlength=edges.numel() - 1)
    regions = regions_of_counts(counts, many_threshold, few_threshold)
    return ShotRegions(edges, counts, regions, width, many_threshold, few_threshold)


def _check_thresholds(many_threshold: float, few_threshold: float) -> None:
    for name, v in (("many_threshold", many_threshold), ("few_threshold", few_threshold)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise expected(name, "a number >= 0", repr(v))
    if few_threshold > many_threshold:
        raise expected("few_threshold", f"<= many_threshold={many_threshold}", repr(few_threshold))


def assign_regions(targets: Any, regions: ShotRegions) -> np.ndarray:
    """The shot region of each target under ``regions`` (same as ``regions.assign(targets)``)."""
    return regions.assign(targets)
