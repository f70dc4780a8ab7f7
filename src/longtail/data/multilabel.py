"""Long-tailed multi-label data: label counts, long-tailed subsets, co-occurrence, sampling.

A multi-label data set's labels are a multi-hot matrix ``Y`` of shape ``(N, C)`` (``Y[i, c] = 1``
when example ``i`` carries label ``c``). Here:

* :func:`as_multihot` checks such a matrix (a list of rows, an array, a tensor, or a dataset with a
  ``.targets`` attribute holding one) and :func:`multilabel_counts` counts each label's positives
  (the ``class_counts`` the multi-label losses of :mod:`longtail.losses.multilabel` take);
* :func:`cooccurrence` and :func:`cooccurrence_summary` describe which labels come together;
* :func:`longtail_multilabel` keeps a subset whose label frequencies follow a long-tailed profile
  as closely as a greedy choice of examples can, and reports what it got, co-occurrence included
  (an example brings all its labels: keeping a tail example keeps its head labels too);
* :class:`MultiLabelClassAwareSampler` is class-aware sampling for multi-label data (a label
  drawn first, then an example carrying it) that splits an epoch across DDP replicas like
  :class:`longtail.ClassBalancedSampler`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import expected
from longtail.data.profiles import PROFILES, check_ratio, imbalance_counts

# the sampler lives beside the single-label samplers (it shares their epoch and DDP logic) and
# is exported here too, beside the multi-label data helpers
from longtail.weighting import MultiLabelClassAwareSampler

__all__ = [
    "LongTailedMultiLabel",
    "MultiLabelClassAwareSampler",
    "as_multihot",
    "cooccurrence",
    "cooccurrence_summary",
    "longtail_multilabel",
    "multilabel_counts",
]


def as_multihot(targets: Any, *, name: str = "targets") -> np.ndarray:
    """A checked multi-hot label matrix ``(N, C)`` as a ``bool`` NumPy array.

    Args:
        targets: 0/1 rows: a list of lists, a NumPy array or a tensor (any numeric or bool
            dtype), or an object (a dataset) with a ``.targets`` attribute holding them.
        name: the argument name used in error messages.

    Raises:
        ValueError: not a non-empty 2-D matrix with at least one column, or an entry other than
            0 and 1.

    Example:
        >>> as_multihot([[1, 0, 1], [0, 0, 1]]).astype(int).tolist()
        [[1, 0, 1], [0, 0, 1]]
    """
    if not isinstance(targets, (torch.Tensor, np.ndarray, list, tuple)) and hasattr(
        targets, "targets"
    ):
        targets = targets.targets
    if isinstance(targets, torch.Tensor):
        arr = targets.detach().cpu().numpy()
    else:
        try:
            arr = np.asarray(targets)
        except (TypeError, ValueError) as err:
            raise expected(name, "a multi-hot (N, C) matrix of 0/1 labels", repr(targets)) from err
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise expected(name, "a non-empty multi-hot (N, C) matrix of 0/1 labels", arr.shape)
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise expected(name, "a numeric or boolean multi-hot matrix", f"dtype {arr.dtype}")
    binary = (arr == 0) | (arr == 1)
    if not binary.all():
        bad = arr[~binary][:5].tolist()
        raise expected(name, "0/1 labels (a multi-hot matrix)", f"values {bad}")
    return arr == 1


def multilabel_counts(targets: Any) -> np.ndarray:
    """Positive examples per label, ``int64`` ``(C,)``: the column sums of the multi-hot matrix.

    These are the ``class_counts`` of the multi-label losses (``create_loss("distribution-
    balanced", class_counts=multilabel_counts(Y), num_samples=len(Y))``). Unlike single-label
    counts they sum to more than the number of examples whenever an example has several labels.

    Example:
        >>> multilabel_counts([[1, 0, 1], [0, 0, 1], [1, 1, 1]]).tolist()
        [2, 1, 3]
    """
    return as_multihot(targets).sum(0).astype(np.int64)


def cooccurrence(targets: Any) -> np.ndarray:
    """Label co-occurrence ``Yᵀ Y``, ``int64`` ``(C, C)``: entry ``(j, k)`` counts the examples
    carrying both labels; the diagonal is :func:`multilabel_counts`.

    Example:
        >>> cooccurrence([[1, 0, 1], [0, 0, 1], [1, 1, 1]]).tolist()
        [[2, 1, 2], [1, 1, 1], [2, 1, 3]]
    """
    y = as_multihot(targets).astype(np.int64)
    return y.T @ y


def _thirds(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head and tail classes: the first and last thirds of ``order`` (head first)."""
    c = len(order)
    k = max(c // 3, 1)
    return order[:k], order[c - k :]


def cooccurrence_summary(targets: Any, order: Sequence[int] | None = None) -> dict[str, float]:
    """Summary statistics of a multi-label matrix's label structure.

    Returns a dict of Python numbers:

    * ``examples``, ``labels`` (C);
    * ``labels_per_example_mean`` / ``labels_per_example_max``;
    * ``single_label_fraction`` / ``no_label_fraction``: examples with exactly one / no label;
    * ``pair_density``: the fraction of label pairs that occur together in some example;
    * ``tail_with_head``: of the examples carrying a *tail* label, the fraction that also carry a
      *head* label, head and tail being the first and last thirds of ``order`` (default: the
      labels by decreasing frequency, ties by index). This is what makes re-sampling multi-label
      data hard (Wu et al., ECCV 2020): every tail example drawn again brings its head labels
      along. NaN when no example carries a tail label.

    Example:
        >>> s = cooccurrence_summary([[1, 0, 1], [0, 0, 1], [1, 1, 1]])
        >>> s["labels_per_example_mean"], s["pair_density"], s["tail_with_head"]
        (2.0, 1.0, 1.0)
    """
    y = as_multihot(targets)
    n, c = y.shape
    per_example = y.sum(1)
    co = y.astype(np.int64).T @ y.astype(np.int64)
    pairs = c * (c - 1) // 2
    together = int((np.triu(co, 1) > 0).sum())
    if order is None:
        order = _frequency_order(co.diagonal())
    order = np.asarray(order, dtype=np.int64)
    head, tail = _thirds(order)
    with_tail = y[:, tail].any(1)
    with_head = y[:, head].any(1)
    n_tail = int(with_tail.sum())
    return {
        "examples": int(n),
        "labels": int(c),
        "labels_per_example_mean": float(per_example.mean()),
        "labels_per_example_max": int(per_example.max()),
        "single_label_fraction": float((per_example == 1).mean()),
        "no_label_fraction": float((per_example == 0).mean()),
        "pair_density": float(together / pairs) if pairs else float("nan"),
        "tail_with_head": float((with_tail & with_head).sum() / n_tail) if n_tail else float("nan"),
    }


def _frequency_order(counts: np.ndarray) -> np.ndarray:
    """Labels by decreasing count, ties by index (head first)."""
    return np.lexsort((np.arange(len(counts)), -np.asarray(counts)))


# ------------------------------------------------------------------------- long-tailed subset
@dataclass(frozen=True)
class LongTailedMultiLabel:
    """What :func:`longtail_multilabel` kept and got.

    Attributes:
        indices: the examples kept (sorted row indices of the source matrix).
        order: the labels head first (by decreasing frequency in the source, ties by index).
        target_counts: the profile's count for each label (label-index order).
        counts: each label's positives in the subset (label-index order).
        cooccurrence: ``Yᵀ Y`` of the subset (``(C, C)``, diagonal ``counts``).
    """

    indices: np.ndarray
    order: np.ndarray
    target_counts: np.ndarray
    counts: np.ndarray
    cooccurrence: np.ndarray

    def summary(self, targets: Any) -> dict[str, float]:
        """How close the subset is to its profile, and its co-occurrence
        (:func:`cooccurrence_summary`, head and tail by the source's order), given the source's
        targets.

        Adds ``target_ratio`` / ``ratio`` (largest over smallest count, wanted and got; the got
        one over labels with a positive), ``mean_relative_error`` / ``max_relative_error``
        (``|n_c − n*_c| / n*_c``) and ``labels_over`` / ``labels_under`` (labels above / below
        their target).
        """
        y = as_multihot(targets)[self.indices]
        err = np.abs(self.counts - self.target_counts) / self.target_counts
        got = self.counts[self.counts > 0]
        out = cooccurrence_summary(y, self.order)
        out.update(
            target_ratio=float(self.target_counts.max() / self.target_counts.min()),
            ratio=float(got.max() / got.min()) if got.size else float("nan"),
            mean_relative_error=float(err.mean()),
            max_relative_error=float(err.max()),
            labels_over=int((self.counts > self.target_counts).sum()),
            labels_under=int((self.counts < self.target_counts).sum()),
        )
        return out


def _label_targets(
    available: np.ndarray,
    order: np.ndarray,
    ratio: Any,
    profile: Any,
    n_max: Any,
    counts: Sequence[int] | None,
) -> np.ndarray:
    """:func:`longtail_multilabel`'s per-label targets, in label-index order: ``counts`` when
    given, else the profile over the labels ranked by ``order`` (head first)."""
    c = len(available)
    if counts is not None:
        want = np.asarray(counts)
        if want.shape != (c,) or not np.issubdtype(want.dtype, np.integer) or (want < 1).any():
            raise expected("counts", f"{c} integer targets >= 1, one per label", repr(counts))
        return want.astype(np.int64)
    ratio = check_ratio(ratio)
    if profile not in PROFILES:
        raise expected("profile", f"one of {PROFILES}", repr(profile))
    top = int(available[order[0]]) if n_max is None else check_int("n_max", n_max, minimum=1)
    ranked = np.asarray(imbalance_counts(top, c, ratio, profile), dtype=np.int64)
    want = np.empty(c, dtype=np.int64)
    want[order] = ranked
    return want


def longtail_multilabel(
    targets: Any,
    ratio: float,
    *,
    profile: str = "exp",
    n_max: int | None = None,
    counts: Sequence[int] | None = None,
    seed: int = 0,
) -> LongTailedMultiLabel:
    """Choose examples of a multi-label set so that each label's frequency follows a long-tailed
    profile as closely as a greedy choice can.

    **The profile.** Labels are ranked by their frequency in the source (head first, ties by
    index); the label of rank ``r`` is given ``n*_r = imbalance_counts(n_max, C, ratio,
    profile)[r]`` (default ``n_max``: the most frequent label's count), capped at the examples
    the source has for it. ``counts`` gives the targets directly instead (label-index order).

    **The choice (greedy).** An example brings *all* its labels, so the counts cannot be set one
    label at a time. The labels are visited from the smallest target to the largest (the tail
    first: its examples are scarce and, once kept, they fix part of the head's counts). While a
    label has fewer positives than its target, its unkept examples are added a quarter of the
    missing number at a time, cheapest first: an example costs
    ``Σ_{k ≠ c} y_k · max(0, n_k + 1 − n*_k) / n*_k``, how far past their targets it pushes its
    other labels, relative to the targets (ties: fewer labels, then a random order drawn from
    ``seed``), the costs computed again after each quarter. This is a greedy heuristic, not an
    optimum. The counts cannot always follow the profile: an example brings its co-occurring
    labels along, so the head labels (visited last, after their positives arrived with the
    tail's examples) and the labels that often occur with others usually end above their
    targets. :meth:`LongTailedMultiLabel.summary` says by how much, and what co-occurrence the
    subset has.

    Args:
        targets: the source's multi-hot matrix ``(N, C)`` (see :func:`as_multihot`).
        ratio: ``n*_max / n*_min ≥ 1``.
        profile: ``"exp"`` or ``"step"`` (:func:`longtail.imbalance_counts`).
        n_max: the head label's target (default: its count in the source).
        counts: per-label targets instead of a profile (then ``ratio`` is ignored; give 1).
        seed: seeds the random tie-break.

    Returns:
        A :class:`LongTailedMultiLabel`.

    Raises:
        ValueError: bad targets, ratio, profile, n_max or counts, or a label with no example.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.eye(5, dtype=bool)[rng.integers(0, 5, 5000)]  # one label per example
        >>> y |= rng.random((5000, 5)) < 0.02  # and a few co-occurring ones
        >>> sub = longtail_multilabel(y, ratio=10, n_max=500)
        >>> sub.target_counts.tolist(), sub.counts.tolist()  # label 4 is the most frequent
        ([281, 88, 158, 50, 500], [281, 88, 158, 50, 500])
        >>> round(sub.summary(y)["labels_per_example_mean"], 3)
        1.0
    """
    y = as_multihot(targets)
    available = y.sum(0).astype(np.int64)
    if (available == 0).any():
        raise expected(
            "targets",
            "at least one example of every label",
            f"none of {np.flatnonzero(available == 0).tolist()}",
        )
    order = _frequency_order(available)
    want = np.minimum(_label_targets(available, order, ratio, profile, n_max, counts), available)

    yi = y.astype(np.int64)
    indices = np.flatnonzero(_greedy_keep(y, yi, want, check_int("seed", seed)))
    sub = yi[indices]
    got = sub.sum(0)
    _warn_if_ratio_short(want, got)
    return LongTailedMultiLabel(
        indices=indices,
        order=order,
        target_counts=want,
        counts=got,
        cooccurrence=sub.T @ sub,
    )


def _greedy_keep(y: np.ndarray, yi: np.ndarray, want: np.ndarray, seed: int) -> np.ndarray:
    """Which examples :func:`longtail_multilabel`'s greedy choice keeps (a bool mask ``(N,)``):
    the labels from the smallest target up, each topped up a quarter of its shortfall at a
    time with its cheapest unkept examples."""
    n, c = y.shape
    tiebreak = np.random.default_rng(seed).permutation(n)
    labels_per_example = yi.sum(1)
    kept = np.zeros(n, dtype=bool)
    have = np.zeros(c, dtype=np.int64)
    for label in np.lexsort((np.arange(c), want)):  # smallest target first
        need = int(want[label] - have[label])
        while need > 0:
            candidates = np.flatnonzero(y[:, label] & ~kept)
            # what a candidate costs: how far past its target each of its other labels would go
            # (relative to the target, so a head label's overshoot costs less than a tail's)
            over = np.maximum(have + 1 - want, 0) / want
            over[label] = 0.0
            cost = yi[candidates] @ over
            chunk = max(1, -(-need // 4))  # re-cost after each quarter of what is missing
            pick = np.lexsort((tiebreak[candidates], labels_per_example[candidates], cost))
            chosen = candidates[pick[:chunk]]
            kept[chosen] = True
            have += yi[chosen].sum(0)
            need = int(want[label] - have[label])
    return kept


def _warn_if_ratio_short(want: np.ndarray, got: np.ndarray) -> None:
    """Warn when co-occurrence left the subset's imbalance ratio below half its targets'."""
    asked, realized = want.max() / want.min(), got.max() / got.min()
    if realized < asked / 2:
        warnings.warn(
            f"the subset's imbalance ratio is {realized:.3g}, not the targets' {asked:.3g}: its "
            "examples bring co-occurring labels along, so labels end above their targets "
            f"(targets {want.tolist()[:8]}, counts {got.tolist()[:8]}"
            f"{', ...' if len(want) > 8 else ''}; summary() says more)",
            stacklevel=3,
        )
