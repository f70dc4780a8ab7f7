"""Long-tailed class profiles and imbalanced subsets of any labelled data set.

The standard benchmarks (CIFAR-10-LT, CIFAR-100-LT, ...) keep, of a balanced training set,
``n_i`` examples of class ``i`` with ``n_0 = n_max`` and the imbalance ratio
``ρ = n_max / n_min``. :func:`imbalance_counts` computes the counts, :func:`imbalanced_indices`
picks the examples and :func:`imbalanced_subset` wraps the result as a dataset.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from longtail._labels import as_labels, check_int, label_counts
from longtail._validation import RENUMBER, as_counts, check_choice, expected, first_few

__all__ = [
    "PROFILES",
    "RATIO_TOLERANCE",
    "ImbalancedSubset",
    "head_order",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
    "largest_n_max",
    "largest_ratio",
    "profile_counts",
    "realized_ratio",
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
            hint = ""
            if have == 0:  # labels used as indices: {3, 7, 42} leaves 0..41 empty
                seen = np.flatnonzero(present).tolist()
                hint = (
                    " Labels are class indices 0..C-1; the labels present are "
                    f"{first_few(seen)}: {RENUMBER}."
                )
            elif counts is None:
                hint = (
                    " With `ratio`, class 0 is the head; "
                    "longtail.data.profiles.profile_counts(class_sizes, ratio, profile) makes "
                    "the largest class the head (as the command line does) and gives the "
                    "`counts` to pass."
                )
            short = expected(
                f"counts[{cls}]",
                f"at most {have}, the number of examples of class {cls}",
                f"{k} requested",
            )
            raise ValueError(str(short) + hint)
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
    def label_of(item: Any) -> int:
        if isinstance(item, Mapping):  # a dict per example (the Hugging Face style)
            key = next((k for k in ("label", "labels") if k in item), None)
            if key is None:
                raise KeyError(f"no 'label' or 'labels' key (keys {list(item)})")
            return int(item[key])
        return int(item[1])

    try:
        return [label_of(dataset[i]) for i in range(len(dataset))]
    except (TypeError, IndexError, ValueError, KeyError) as err:
        raise expected(
            "dataset",
            "a dataset with a `.targets` attribute, (input, label) items, or dict items with a "
            "'label' or 'labels' key",
            f"{type(dataset).__name__} ({type(err).__name__}: {err})",
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
    from ``dataset[i][1]`` (or ``dataset[i]["label"]``, else ``["labels"]``, for dict items).
    Examples are chosen by :func:`imbalanced_indices`; e.g.
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


#: A head size "gives" a requested ratio when its profile's ``n_max / n_min`` is within this
#: relative tolerance of it (see :func:`largest_n_max`).
RATIO_TOLERANCE = 0.01


def _tail_count(n_max: int, num_classes: int, ratio: float, profile: str) -> int:
    """The last (smallest) count of ``imbalance_counts(n_max, num_classes, ratio, profile)``,
    by the same expression, without building the list (0 when the tail would be empty)."""
    c = num_classes
    if c == 1:
        return n_max
    i = c - 1
    if profile == "exp":
        return int(n_max * (1 / ratio) ** (i / (c - 1)))
    return n_max if i < c // 2 else int(n_max / ratio)


def realized_ratio(n_max: int, num_classes: int, ratio: float, profile: str = "exp") -> float:
    """``n_max / n_min`` of the profile ``imbalance_counts(n_max, num_classes, ratio, profile)``.

    The counts are rounded down (``int``, the LDAM-DRW convention), so the ratio a profile
    realizes may differ from the one asked for when the tail is small: ``n_max = 27``,
    ``ratio = 4`` over 3 classes gives counts ``[27, 13, 6]`` and a realized ratio of 4.5.

    Example:
        >>> realized_ratio(27, 3, 4.0), realized_ratio(24, 3, 4.0), realized_ratio(6000, 10, 100)
        (4.5, 4.0, 100.0)

    Raises:
        ValueError: On a bad argument, or if the ratio would leave the tail class empty.
    """
    counts = imbalance_counts(n_max, num_classes, ratio, profile)
    return counts[0] / min(counts)


def _gives_ratio(n: int, c: int, ratio: float, profile: str) -> bool:
    tail = _tail_count(n, c, ratio, profile)
    return tail >= 1 and abs(n / tail - ratio) <= RATIO_TOLERANCE * ratio


def _smallest_head(c: int, ratio: float, profile: str) -> int:
    """The smallest ``n_max`` whose profile keeps one example of the tail class."""
    n = max(1, math.floor(ratio) - 2)  # n <= ratio - 2: the tail count is 0 (or n is 1)
    while _tail_count(n, c, ratio, profile) < 1:
        n += 1
    return n


def _head_sizes(have: list[int], ratio: float, profile: str) -> tuple[int, int, int]:
    """``(smallest, largest, chosen)`` head sizes for class sizes ``have`` in head order:
    the profile of every size in ``[smallest, largest]`` fits the data (``largest`` is 0 when
    even ``smallest`` does not fit); ``chosen`` is the largest of them that gives ``ratio``
    within :data:`RATIO_TOLERANCE`, else ``largest``."""
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
    smallest = _smallest_head(c, ratio, profile)
    if lo < smallest:
        return smallest, 0, 0
    # every n >= smallest keeps the tail: look down from the largest for one that gives the
    # ratio; from n / ratio >= 1 / RATIO_TOLERANCE + 1 on every size does, so the walk is short
    chosen = next(
        (n for n in range(lo, smallest - 1, -1) if _gives_ratio(n, c, ratio, profile)), lo
    )
    return smallest, lo, chosen


def largest_ratio(counts: Sequence[int], profile: str = "exp") -> int:
    """The largest whole imbalance ratio that a ``profile`` can cut from classes of these
    sizes: some head size fits them and gives the ratio within :data:`RATIO_TOLERANCE` (found
    by bisection over ``1 .. max(counts)``); 1 when no class is empty, as every class keeps
    its examples.

    Example:
        >>> largest_ratio([8, 8]), largest_ratio([200, 200, 200], "step")
        (8, 200)
    """
    have = sorted((int(n) for n in counts), reverse=True)
    lo, hi = 1, max(have)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        _, largest, chosen = _head_sizes(have, float(mid), profile)
        if largest and _gives_ratio(chosen, len(have), float(mid), profile):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _no_head_fits(
    counts: list[int], have: list[int], order: list[int], ratio: float, profile: str, smallest: int
) -> ValueError:
    """The error of data from which no head size of the profile can be taken: why, and what
    to ask for instead."""
    c = len(have)
    what = f"classes from which a {profile!r} profile of ratio {ratio:g} can be taken"
    got = f"class sizes {counts}"
    if have[-1] == 0:
        return expected(
            "data",
            what,
            f"{got}: class {order[-1]} has no example, and every class of a profile keeps at "
            "least one (leave the empty class out of the data)",
        )
    tail = "int(n_max / ratio)" if profile == "step" else "int(n_max * (1 / ratio))"
    if have[0] < smallest:
        why = (
            f"the largest class has {have[0]} examples, and a ratio of {ratio:g} needs a head "
            f"of at least {smallest} examples so that the tail class keeps one (its count is "
            f"{tail})"
        )
    else:
        want = imbalance_counts(smallest, c, ratio, profile)
        k = next(k for k in range(c) if want[k] > have[k])
        why = (
            f"a ratio of {ratio:g} needs a head of at least {smallest} examples so that the "
            f"tail class keeps one (its count is {tail}), and that profile asks {want[k]} "
            f"examples of class {order[k]} (position {k} of the profile), which has {have[k]}"
        )
    natural = max(have) / min(have)
    most = largest_ratio(have, profile)
    return expected(
        "data",
        what,
        f"{got}: {why}. Train on the data's own imbalance, the natural profile (ratio "
        f"{natural:.1f} here; train --profile natural, bench --settings natural), ask for a "
        f"ratio this data allows (at most {most} for the {profile!r} profile: train --ratio "
        f"{most}, bench --settings {profile}{most}), or set the head size with --n-max (with a "
        "ratio it allows)",
    )


def largest_n_max(available: Any, ratio: float, profile: str = "exp") -> int:
    """The default head size ``n_max``: the largest whose profile the data can give and that
    realizes the requested ratio.

    With the classes in :func:`head_order`, position ``k`` of the profile asks
    ``imbalance_counts(n_max, C, ratio, profile)[k]`` examples of the ``k``-th class; every
    count grows with ``n_max``, so the head sizes whose profile fits are found by bisection.
    The counts are rounded down (the LDAM-DRW convention), so on small data the largest of
    them may realize another ratio (``n_max / n_min``) than the one asked for: of classes of
    27, 13 and 6 examples, ``ratio=4`` would give ``27 / 6 = 4.5``. Among the sizes that fit,
    the largest that realizes ``ratio`` within :data:`RATIO_TOLERANCE` (1 %) is taken (here 24:
    counts ``[24, 12, 6]``); if none does, the largest that fits (:func:`profile_counts` then
    warns). Where the largest size that fits already realizes the ratio -- any head of at
    least ``101 * ratio`` examples, e.g. Fashion-MNIST's 6000 with ratio 100 -- it is the
    answer, as before.

    Example:
        >>> largest_n_max([6000] * 10, 100)
        6000
        >>> largest_n_max([133, 128, 120, 130], 1.0)  # balanced: the smallest class decides
        120
        >>> largest_n_max([133, 128, 120, 130], 10.0)  # 133 / int(13.3) = 10.2; 131 / 13 = 10.08
        131
        >>> largest_n_max([27, 13, 6], 4.0)  # 27 would give counts [27, 13, 6]: ratio 4.5
        24

    Raises:
        ValueError: When no head size fits (the message says why: the largest class is smaller
            than the head the ratio needs to keep one tail example, or a class between is too
            small, and names what the data allows), or on a bad argument.
    """
    counts = [int(v) for v in as_counts(available, name="available").tolist()]
    ratio = check_ratio(ratio)
    check_choice("profile", profile, PROFILES)
    order = head_order(counts)
    have = [counts[c] for c in order]
    smallest, largest, chosen = _head_sizes(have, ratio, profile)
    if not largest:
        raise _no_head_fits(counts, have, order, ratio, profile, smallest)
    return chosen


def profile_counts(
    available: Any, ratio: float, profile: str = "exp", n_max: int | None = None
) -> tuple[list[int], list[int], int]:
    """Per-class counts of a profile over data with ``available`` examples per class.

    Returns ``(counts, order, n_max)``: ``counts[c]`` examples to keep of class ``c`` (indexed
    by class, not by profile position), the :func:`head_order` used, and the head size
    (``n_max`` if given, else :func:`largest_n_max`). A class asked for more than it has raises
    ``ValueError`` naming it. When the counts' ratio ``n_max / n_min`` differs from ``ratio``
    by more than :data:`RATIO_TOLERANCE` (a small tail, rounded down), a ``UserWarning`` says
    so: the ratio asked for is then not the one trained on.

    Example:
        >>> profile_counts([100, 300, 200], 10.0)
        ([30, 300, 94], [1, 2, 0], 300)
    """
    have = [int(v) for v in as_counts(available, name="available").tolist()]
    order = head_order(have)
    default = n_max is None
    if n_max is None:
        n_max = largest_n_max(have, ratio, profile)
    by_position = imbalance_counts(n_max, len(have), ratio, profile)
    counts = [0] * len(have)
    for k, cls in enumerate(order):
        counts[cls] = by_position[k]
        if counts[cls] > have[cls]:
            _, largest, chosen = _head_sizes([have[c] for c in order], ratio, profile)
            if not largest:
                fits = "no n_max fits this ratio"
            elif chosen == largest:
                fits = f"the largest n_max that fits is {largest}, the default"
            else:  # larger sizes fit, but their rounded-down tail is another ratio
                fits = (
                    f"the largest n_max that gives ratio {ratio:g} is {chosen}, the default; "
                    f"up to {largest} fit, at another ratio"
                )
            raise expected(
                "n_max",
                f"a head size whose {profile!r} profile the data can give (class {cls}, "
                f"position {k} of the profile, has {have[cls]} examples; {fits})",
                f"{n_max}, which asks {counts[cls]} of class {cls}",
            )
    realized = by_position[0] / min(by_position)
    if abs(realized - ratio) > RATIO_TOLERANCE * ratio and len(have) > 1:
        why = (
            "no head size that the data can give realizes it within 1 %, so the largest that "
            "fits is used"
            if default
            else "the counts are rounded down"
        )
        warnings.warn(
            f"The {profile!r} profile of ratio {ratio:g} with head size n_max = {n_max} has "
            f"counts from {by_position[0]} to {min(by_position)}: its realized imbalance "
            f"ratio is {realized:.3g}, not {ratio:g} ({why}). The run trains on (and its "
            f"record's data.imbalance_ratio reports) {realized:.3g}; the config keeps the "
            f"requested {ratio:g}.",
            UserWarning,
            stacklevel=2,
        )
    return counts, order, n_max
