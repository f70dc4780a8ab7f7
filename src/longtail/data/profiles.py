"""Long-tailed class profiles and imbalanced subsets of any labelled data set.

The standard benchmarks (CIFAR-10-LT, CIFAR-100-LT, ...) keep, of a balanced training set,
``n_i`` examples of class ``i`` with ``n_0 = n_max`` and the imbalance ratio
``ρ = n_max / n_min``. :func:`imbalance_counts` computes the counts, :func:`imbalanced_indices`
picks the examples and :func:`imbalanced_subset` wraps the result as a dataset.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from longtail._labels import as_labels, check_int, label_counts
from longtail._validation import as_counts, check_choice, expected

__all__ = [
    "PROFILES",
    "ImbalancedSubset",
    "head_order",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
    "largest_n_max",
    "profile_counts",
]

#: Names accepted by the ``profile`` argument of :func:`imbalance_counts`.
PROFILES = ("exp", "step")


def check_ratio(ratio: Any) -> float:
    """``ratio`` as a float, refused unless a finite number >= 1 (an imbalance ratio)."""
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, numbers.Real)
        or not math.isfinite(ratio)
        or ratio < 1
    ):
        raise expected("ratio", "a finite number >= 1 (n_max / n_min)", repr(ratio))
    return float(ratio)


_check_ratio = check_ratio  # the older private name


def imbalance_counts(n_max: int, num_classes: int, ratio: float, profile: str = "exp") -> list[int]:
    """Per-class example counts of a long-tailed profile, head class first.

    With ``C = num_classes`` and ``ρ = ratio``:

    * ``"exp"`` (exponential decay, Cao et al., "Learning Imbalanced Datasets with
      Label-Distribution-Aware Margin Loss", NeurIPS 2019):
      ``n_i = int(n_max * (1/ρ) ** (i / (C - 1)))`` for ``i = 0 .. C-1``, computed exactly so
      (as the LDAM-DRW code does); CIFAR-10, ``n_max = 5000``, ``ρ = 100`` gives
      ``[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]``.
    * ``"step"``: the first ``floor(C / 2)`` classes keep ``n_max``, the others
      ``int(n_max / ρ)``.

    ``C == 1`` gives ``[n_max]``.

    Example:
        >>> imbalance_counts(5000, 10, ratio=100, profile="exp")
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        >>> imbalance_counts(500, 4, ratio=10, profile="step")
        [500, 500, 50, 50]

    Args:
        n_max: Examples of the largest (first) class, ``>= 1``.
        num_classes: Number of classes ``C >= 1``.
        ratio: Imbalance ratio ``ρ = n_max / n_min >= 1`` (1 means balanced).
        profile: ``"exp"`` (default) or ``"step"``.

    Returns:
        A list of ``C`` ints.

    Raises:
        ValueError: On a bad argument, or if the ratio would leave some class with no example.
    """
    n_max = check_int("n_max", n_max, minimum=1)
    num_classes = check_int("num_classes", num_classes, minimum=1)
    ratio = check_ratio(ratio)
    check_choice("profile", profile, PROFILES)
    c = num_classes
    if c == 1:
        return [n_max]
    if profile == "exp":
        counts = [int(n_max * (1 / ratio) ** (i / (c - 1))) for i in range(c)]
    else:
        counts = [n_max if i < c // 2 else int(n_max / ratio) for i in range(c)]
    if min(counts) < 1:
        raise expected(
            "ratio",
            f"small enough that every class keeps at least one example (n_max / ratio >= 1, "
            f"n_max = {n_max}, {profile!r} profile)",
            f"{ratio}, which leaves classes {[i for i, n in enumerate(counts) if n < 1]} empty",
        )
    return counts


def imbalanced_indices(
    targets: Any,
    ratio: float | None = None,
    profile: str = "exp",
    n_max: int | None = None,
    counts: Sequence[int] | None = None,
    seed: int = 0,
    num_classes: int | None = None,
) -> np.ndarray:
    """Indices of a long-tailed subset of labelled data.

    Give either ``counts`` (examples to keep per class) or ``ratio`` (with ``profile`` and
    ``n_max``, turned into counts by :func:`imbalance_counts`; ``n_max`` defaults to the size of
    the largest class present). Class ``c`` keeps the first ``counts[c]`` positions of a seeded
    permutation of its examples (one ``numpy.random.default_rng(seed)`` for all classes, used in
    class order). Class 0 is the head.

    Args:
        targets: Integer labels (list, array, tensor) or a dataset with a ``.targets`` attribute.
        ratio: Imbalance ratio ``n_max / n_min >= 1``; exclusive with ``counts``.
        profile: ``"exp"`` (default) or ``"step"``; used with ``ratio``.
        n_max: Examples kept of class 0; default the size of the largest class present.
        counts: Per-class numbers of examples to keep (non-negative ints, length ``C``).
        seed: Seed of the permutations. Default 0.
        num_classes: Number of classes ``C``; default ``max label + 1``.

    Returns:
        The kept indices into ``targets``, ``int64``, sorted ascending.

    Raises:
        ValueError: On bad labels or arguments, or when a class has fewer examples than asked for.
    """
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    labels = as_labels(targets, num_classes=num_classes)
    present = label_counts(labels, num_classes)
    c = len(present)
    seed = check_int("seed", seed)

    if (counts is None) == (ratio is None):
        raise expected(
            "ratio` or `counts",
            "given (exactly one of them)",
            "both" if counts is not None else "neither",
        )
    if counts is not None:
        t = as_counts(counts, name="counts", num_classes=c)
        if not bool((t == t.round()).all()):
            raise expected("counts", "whole numbers", t.tolist())
        wanted = [int(v) for v in t.tolist()]
    else:
        if n_max is None:
            n_max = int(present.max())
        wanted = imbalance_counts(n_max, c, ratio, profile)

    rng = np.random.default_rng(seed)
    # positions grouped by class, ascending within each class: one sort, not a scan per class
    by_class = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(present)])
    kept = []
    for cls, k in enumerate(wanted):
        have = int(present[cls])
        if k > have:
            raise expected(
                f"counts[{cls}]",
                f"at most {have}, the number of examples of class {cls}",
                f"{k} requested",
            )
        positions = by_class[starts[cls] : starts[cls + 1]]
        kept.append(rng.permutation(positions)[:k])
    return np.sort(np.concatenate(kept)).astype(np.int64)


class ImbalancedSubset(Subset):
    """A :class:`torch.utils.data.Subset` that also knows its labels.

    Attributes:
        targets: The labels of the kept examples, as a list of ints (in subset order), so the
            subset can itself be passed where a dataset with ``.targets`` is expected.
        class_counts: Examples per class in the subset (list of ints, length ``num_classes``).
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: Sequence[int],
        targets: Sequence[int],
        num_classes: int | None = None,
    ) -> None:
        super().__init__(dataset, [int(i) for i in indices])
        labels = as_labels(targets, num_classes=num_classes)
        if len(labels) != len(self.indices):
            raise expected("targets", f"of length {len(self.indices)} (one per index)", len(labels))
        self.targets: list[int] = labels.tolist()
        self.class_counts: list[int] = label_counts(labels, num_classes).tolist()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_examples={len(self)}, class_counts={self.class_counts})"


def _dataset_targets(dataset: Any) -> Any:
    if hasattr(dataset, "targets"):
        return dataset.targets
    # Fall back to reading every item's label (loads every example once).
    try:
        return [int(dataset[i][1]) for i in range(len(dataset))]
    except (TypeError, IndexError, ValueError) as err:
        raise expected(
            "dataset",
            "a dataset with a `.targets` attribute or (input, label) items",
            type(dataset).__name__,
        ) from err


def imbalanced_subset(
    dataset: Dataset,
    ratio: float | None,
    profile: str = "exp",
    n_max: int | None = None,
    seed: int = 0,
    *,
    counts: Sequence[int] | None = None,
    num_classes: int | None = None,
) -> ImbalancedSubset:
    """A long-tailed subset of a labelled dataset (e.g. CIFAR-10 -> CIFAR-10-LT).

    The labels come from ``dataset.targets`` (as torchvision datasets provide) or, failing that,
    from ``dataset[i][1]``. Examples are chosen by :func:`imbalanced_indices`; e.g.
    ``imbalanced_subset(cifar10_train, ratio=100)`` keeps the 12406 examples of CIFAR-10-LT
    (exp profile, ``n_max = 5000``).

    Args:
        dataset: The (balanced) dataset.
        ratio: Imbalance ratio ``n_max / n_min >= 1`` (``None`` when ``counts`` is given).
        profile: ``"exp"`` (default) or ``"step"``.
        n_max: Examples kept of class 0; default the size of the largest class.
        seed: Seed of the per-class permutations. Default 0.
        counts: Explicit per-class counts instead of ``ratio``.
        num_classes: Number of classes; default ``max label + 1``.

    Returns:
        An :class:`ImbalancedSubset` with ``.targets`` and ``.class_counts``.
    """
    labels = as_labels(_dataset_targets(dataset), name="dataset.targets", num_classes=num_classes)
    idx = imbalanced_indices(
        labels,
        ratio=ratio,
        profile=profile,
        n_max=n_max,
        counts=counts,
        seed=seed,
        num_classes=num_classes,
    )
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    return ImbalancedSubset(dataset, idx.tolist(), labels[idx], num_classes=num_classes)


def head_order(available: Any) -> list[int]:
    """Class indices from the class with the most examples to the one with the fewest, ties in
    label order: the order in which a profile's counts are given to the classes.

    On balanced data this is ``0 .. C-1`` (class 0 the head), the convention of CIFAR-10-LT and
    the LDAM-DRW code; on data whose classes differ in size, the largest class is the head, so
    that the profile cuts the most from the class that has the most.

    Example:
        >>> head_order([5, 9, 9, 2])
        [1, 2, 0, 3]
    """
    counts = [int(c) for c in as_counts(available, name="available").tolist()]
    return sorted(range(len(counts)), key=lambda c: (-counts[c], c))


def largest_n_max(available: Any, ratio: float, profile: str = "exp") -> int:
    """The largest head size ``n_max`` whose profile the data can give.

    With the classes in :func:`head_order`, position ``k`` of the profile asks
    ``imbalance_counts(n_max, C, ratio, profile)[k]`` examples of the ``k``-th class; every
    count grows with ``n_max``, so the answer is found by bisection. Equal classes of ``n``
    examples give ``n``; a class a little smaller than the head lowers ``n_max`` only if its
    position in the profile asks for more than it has.

    Example:
        >>> largest_n_max([6000] * 10, 100)
        6000
        >>> largest_n_max([133, 128, 120, 130], 1.0)  # balanced: the smallest class decides
        120
        >>> largest_n_max([133, 128, 120, 130], 10.0)
        133

    Raises:
        ValueError: when not even ``n_max = 1`` fits (an empty class), or on a bad argument.
    """
    counts = as_counts(available, name="available").tolist()
    order = head_order(counts)
    have = [int(counts[c]) for c in order]
    c = len(have)

    def within(n: int) -> bool:
        """No position of the profile asks more than its class has (false only from a size
        on: every count grows with n). A size too small for the ratio (a class would get no
        example) asks for less than any larger size, so it counts as within."""
        try:
            want = imbalance_counts(n, c, ratio, profile)
        except ValueError:
            return True
        return all(w <= h for w, h in zip(want, have, strict=True))

    lo, hi = 0, max(have)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if within(mid):
            lo = mid
        else:
            hi = mid - 1
    try:
        if lo:
            imbalance_counts(lo, c, ratio, profile)
    except ValueError:
        lo = 0  # the largest size within the data still leaves a class empty
    if lo == 0:
        raise expected(
            "data",
            f"classes from which a {profile!r} profile of ratio {ratio:g} can be taken",
            f"class sizes {[int(v) for v in counts]} (none fits, not even a head of one example)",
        )
    return lo


def profile_counts(
    available: Any, ratio: float, profile: str = "exp", n_max: int | None = None
) -> tuple[list[int], list[int], int]:
    """Per-class counts of a profile over data with ``available`` examples per class.

    Returns ``(counts, order, n_max)``: ``counts[c]`` examples to keep of class ``c`` (indexed
    by class, not by profile position), the :func:`head_order` used, and the head size
    (``n_max`` if given, else :func:`largest_n_max`). A class asked for more than it has raises
    ``ValueError`` naming it.

    Example:
        >>> profile_counts([100, 300, 200], 10.0)
        ([30, 300, 94], [1, 2, 0], 300)
    """
    have = [int(v) for v in as_counts(available, name="available").tolist()]
    order = head_order(have)
    if n_max is None:
        n_max = largest_n_max(have, ratio, profile)
    by_position = imbalance_counts(n_max, len(have), ratio, profile)
    counts = [0] * len(have)
    for k, cls in enumerate(order):
        counts[cls] = by_position[k]
        if counts[cls] > have[cls]:
            raise expected(
                "n_max",
                f"a head size whose {profile!r} profile the data can give (class {cls}, "
                f"position {k} of the profile, has {have[cls]} examples; the largest n_max "
                f"that fits is {largest_n_max(have, ratio, profile)})",
                f"{n_max}, which asks {counts[cls]} of class {cls}",
            )
    return counts, order, n_max
