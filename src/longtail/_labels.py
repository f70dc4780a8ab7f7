"""Turning user-supplied class labels into a checked NumPy array (private helper).

Shared by :mod:`longtail.weighting` (samplers) and :mod:`longtail.data` (imbalanced subsets).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from longtail._validation import expected

MAX_IMPLIED_CLASSES = 2**24
"""The most classes a largest label may imply when ``num_classes`` is not given (16.8 million:
above any class count in use, far below what a per-class table would not fit in memory)."""


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) ``>= minimum`` and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise expected(name, what, repr(value))
    if minimum is not None and value < minimum:
        raise expected(name, f"an integer >= {minimum}", repr(value))
    return int(value)


def as_labels(targets: Any, *, name: str = "targets", num_classes: int | None = None) -> np.ndarray:
    """Return class labels as a checked 1-D ``int64`` NumPy array.

    Args:
        targets: A list, NumPy array or tensor of integer labels, or any object (typically a
            ``torch.utils.data.Dataset``) with a ``.targets`` attribute holding them.
        name: The argument name used in error messages.
        num_classes: If given, every label must be ``< num_classes``.

    Raises:
        ValueError: If the labels are not a non-empty 1-D sequence of non-negative integers, a
            label is ``>= num_classes``, or, without ``num_classes``, a label is
            ``>= MAX_IMPLIED_CLASSES`` (ID-like labels, to be renumbered).
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
            raise expected(name, "a 1-D sequence of integer class labels", repr(targets)) from err
    if arr.ndim != 1 or arr.size == 0:
        raise expected(
            name, "a non-empty 1-D sequence of integer class labels", f"shape {arr.shape}"
        )
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise expected(name, "integer class labels", f"dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    low = int(arr.min())
    if low < 0:
        raise expected(name, "non-negative class labels", f"label {low}")
    high = int(arr.max())
    if num_classes is not None:
        if high >= num_classes:
            raise expected(
                name, f"labels in [0, {num_classes - 1}] (num_classes={num_classes})", high
            )
    elif high >= MAX_IMPLIED_CLASSES:
        # one class per integer up to the largest label: an ID-like label would allocate
        # gigabytes (or be killed by the kernel) before anything could say why
        raise expected(
            name,
            f"class labels 0..C-1 (without num_classes, a label L means L + 1 classes, and at "
            f"most {MAX_IMPLIED_CLASSES} are implied); renumber ID-like labels, e.g. "
            "np.unique(y, return_inverse=True)[1], or pass num_classes",
            f"label {high}",
        )
    return arr


def label_counts(labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Per-class counts (``int64``, length ``num_classes`` or ``max label + 1``)."""
    minlength = 0 if num_classes is None else num_classes
    return np.bincount(labels, minlength=minlength).astype(np.int64)
