"""Classification metrics that see the tail.

Overall top-1 error hides what a long-tailed model does to its rare classes, so the benchmark
records, for every run:

* :func:`top1_error` -- the plain top-1 error (%);
* :func:`per_class_accuracy` / :func:`per_class_error` -- accuracy of each class on its own;
* :func:`balanced_accuracy` -- the mean of the per-class accuracies (%), every class counting once;
* :func:`shot_accuracy` -- mean per-class accuracy over the many-shot (more than 100 training
  examples), medium-shot and few-shot (fewer than 20) classes, the split of Liu et al. (OLTR,
  CVPR 2019) and Kang et al. (ICLR 2020);
* :func:`expected_calibration_error` -- ECE (%) with equal-width confidence bins (Guo et al.,
  ICML 2017);
* :func:`classwise_calibration_error` -- class-wise ECE (%), every class's probability binned
  (Kull et al., NeurIPS 2019);
* :func:`classification_metrics` -- all of them at once, as the JSON-ready ``"metrics"`` dict of a
  results record.

Inputs follow the losses: logits ``(N, C)`` (any device, float16/bfloat16/float32/float64,
computed in at least float32) or predicted labels ``(N,)``, and integer targets ``(N,)``. Per-class
results come back as float64 CPU tensors or Python floats. A class with no test example has no
accuracy: it is NaN in the per-class results and is left out of every mean over classes.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from longtail._labels import check_int
from longtail._validation import as_counts, check_finite_number, expected

__all__ = [
    "balanced_accuracy",
    "classification_metrics",
    "classwise_calibration_error",
    "expected_calibration_error",
    "per_class_accuracy",
    "per_class_error",
    "regions_of_counts",
    "shot_accuracy",
    "top1_error",
]

#: The keys of :func:`classification_metrics`, in the order of the results record.
CLASSIFICATION_KEYS = (
    "top1_error",
    "balanced_accuracy",
    "per_class_error",
    "many_acc",
    "medium_acc",
    "few_acc",
    "ece",
)


# ---- input checks ----------------------------------------------------------------------------
def _as_tensor(value: Any, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise expected(name, "a tensor, array or sequence", repr(value)) from err


def _as_target(target: Any, num_classes: int | None) -> torch.Tensor:
    t = _as_tensor(target, "target")
    if t.dim() != 1 or t.numel() == 0:
        raise expected(
            "target", "a non-empty 1-D tensor of class labels", f"shape {tuple(t.shape)}"
        )
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise expected("target", "integer class labels", f"dtype {t.dtype}")
    low, high = int(t.min()), int(t.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        what = "non-negative class labels"
        if num_classes is not None:
            what = f"class labels in [0, {num_classes - 1}] (num_classes={num_classes})"
        hint = (
            f" If {low} marks padding to leave out, pass ignore_index={low} (the losses' "
            "default is -100; the metrics' is None)."
            if low < 0
            else ""
        )
        raise ValueError(f"{expected('target', what, f'labels in [{low}, {high}]')}{hint}")
    return t.long()


def _as_logits(logits: Any, name: str, n: int) -> torch.Tensor:
    x = _as_tensor(logits, name)
    if x.dim() != 2 or x.shape[0] != n or x.shape[1] == 0:
        raise expected(
            name,
            f"of shape (N, C) = ({n}, C >= 1), one row per target",
            f"shape {tuple(x.shape)}",
        )
    if not x.is_floating_point():
        raise expected(name, "floating-point scores", f"dtype {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if torch.isnan(x).any():
        raise expected(name, "free of NaN", "NaN values")
    return x


def _check_ignore_index(ignore_index: Any) -> int | None:
    """``ignore_index`` checked: ``None`` or an integer (``bool`` is refused)."""
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise expected("ignore_index", "None or an integer label", repr(ignore_index))
    return ignore_index


def _drop_ignored(scores: Any, target: Any, ignore_index: int | None) -> tuple[Any, torch.Tensor]:
    """``(scores, target)`` without the examples whose target is ``ignore_index``.

    They come back as they were when there is no ``ignore_index`` or when the shapes do not
    match (the checks that follow say what is wrong); the target always as a tensor. Every
    example may be dropped: the caller decides whether an empty batch is an error.
    """
    tgt = _as_tensor(target, "target")
    if ignore_index is None or tgt.dim() != 1 or not tgt.numel():
        return scores, tgt
    keep = tgt != ignore_index
    if bool(keep.all()):
        return scores, tgt
    x = _as_tensor(scores, "scores")
    if x.dim() == 0 or x.shape[0] != tgt.shape[0]:
        return scores, tgt
    return x[keep.to(x.device)], tgt[keep]


def _kept(scores: Any, target: Any, ignore_index: Any) -> tuple[Any, torch.Tensor]:
    """:func:`_drop_ignored` for a whole evaluation: some example must be left."""
    ignore_index = _check_ignore_index(ignore_index)
    tgt = _as_tensor(target, "target")
    x, kept = _drop_ignored(scores, tgt, ignore_index)
    if tgt.dim() == 1 and tgt.numel() and not kept.numel():
        raise expected(
            "target", f"some label other than ignore_index={ignore_index}", "every label ignored"
        )
    return x, kept


def _labels_and_classes(
    logits_or_pred: Any,
    target: Any,
    num_classes: int | None,
    name: str,
    ignore_index: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Checked ``(pred, target, C)``: predicted labels from logits ``(N, C)`` or labels ``(N,)``,
    without the examples whose target is ``ignore_index``."""
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, minimum=1)
    logits_or_pred, tgt = _kept(logits_or_pred, target, ignore_index)
    x = _as_tensor(logits_or_pred, name)
    n = tgt.shape[0] if tgt.dim() >= 1 else -1
    if x.dim() == 2:
        x = _as_logits(x, name, n)
        if num_classes is not None and x.shape[1] != num_classes:
            raise expected(
                name, f"of shape (N, {num_classes}) (num_classes={num_classes})", tuple(x.shape)
            )
        num_classes = x.shape[1]
        tgt = _as_target(tgt, num_classes)
        return x.argmax(dim=1), tgt.to(x.device), num_classes
    if x.dim() != 1 or x.shape[0] != n:
        raise expected(
            name,
            f"logits of shape (N, C) or predicted labels of shape (N,) with N = {max(n, 0)}",
            f"shape {tuple(x.shape)}",
        )
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise expected(name, "integer predicted labels when 1-D", f"dtype {x.dtype}")
    tgt = _as_target(tgt, num_classes)
    low, high = int(x.min()), int(x.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        what = "non-negative predicted labels"
        if num_classes is not None:
            what = f"predicted labels in [0, {num_classes - 1}] (num_classes={num_classes})"
        raise expected(name, what, f"labels in [{low}, {high}]")
    return x.long(), tgt.to(x.device), num_classes


# ---- metrics ---------------------------------------------------------------------------------
def _error(pred: torch.Tensor, target: torch.Tensor) -> float:
    wrong = int((pred != target).sum())
    return 100.0 * wrong / target.numel()


def _per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    total = torch.bincount(target, minlength=num_classes).cpu().double()
    correct = torch.bincount(target[pred == target], minlength=num_classes).cpu().double()
    acc = correct / total  # 0 / 0 = NaN for a class absent from the targets
    return acc


def _nanmean(values: torch.Tensor) -> float:
    present = values[~torch.isnan(values)]
    return float(present.mean()) if present.numel() else math.nan


def top1_error(logits_or_pred: Any, target: Any, *, ignore_index: int | None = None) -> float:
    """Top-1 error in percent: ``100 · #{i : argmax_c z_ic ≠ y_i} / N``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
        >>> round(top1_error(logits, torch.tensor([0, 1, 1])), 2)
        33.33
        >>> top1_error(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        25.0

    Args:
        logits_or_pred: Logits (or probabilities) ``(N, C)``, or predicted labels ``(N,)``.
        target: Integer class labels ``(N,)``.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        The error as a Python float in ``[0, 100]``. Ties in the logits go to the lowest class
        index (``argmax``).

    Raises:
        ValueError: On mismatched shapes, non-integer or out-of-range labels, NaN logits.
    """
    pred, tgt, _ = _labels_and_classes(logits_or_pred, target, None, "logits_or_pred", ignore_index)
    return _error(pred, tgt)


def per_class_accuracy(
    pred: Any, target: Any, num_classes: int | None = None, *, ignore_index: int | None = None
) -> torch.Tensor:
    """Accuracy of each class: ``#{i : y_i = c, ŷ_i = c} / #{i : y_i = c}`` (a fraction).

    Example:
        >>> per_class_accuracy(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 1, 1]), 3)
        tensor([1.0000, 0.3333,    nan], dtype=torch.float64)

    Args:
        pred: Predicted labels ``(N,)`` or logits ``(N, C)``.
        target: Integer class labels ``(N,)``.
        num_classes: Number of classes ``C``; may be left out when ``pred`` holds logits.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        A float64 CPU tensor ``(C,)`` of fractions in ``[0, 1]``; NaN for a class that has no
        example in ``target``.

    Raises:
        ValueError: On mismatched shapes, labels outside ``[0, C-1]``, or a missing
            ``num_classes`` for label predictions.
    """
    p, t, c = _labels_and_classes(pred, target, num_classes, "pred", ignore_index)
    if c is None:
        raise expected("num_classes", "given when `pred` holds labels rather than logits", None)
    return _per_class_accuracy(p, t, c)


def per_class_error(
    pred: Any, target: Any, num_classes: int | None = None, *, ignore_index: int | None = None
) -> list[float]:
    """Top-1 error of each class in percent, ``100 · (1 - per_class_accuracy)``.

    Example:
        >>> per_class_error(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 1, 1]), 3)
        [0.0, 66.66666666666667, nan]

    Args:
        pred: Predicted labels ``(N,)`` or logits ``(N, C)``.
        target: Integer class labels ``(N,)``.
        num_classes: Number of classes ``C``; may be left out when ``pred`` holds logits.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        A list of ``C`` Python floats; NaN for a class absent from ``target``
        (:func:`classification_metrics` writes those as ``None``).
    """
    acc = per_class_accuracy(pred, target, num_classes, ignore_index=ignore_index)
    return (100.0 * (1.0 - acc)).tolist()


def balanced_accuracy(
    logits_or_pred: Any,
    target: Any,
    num_classes: int | None = None,
    *,
    ignore_index: int | None = None,
) -> float:
    """Balanced accuracy in percent: the mean of the per-class accuracies.

    Only classes that occur in ``target`` count, each once whatever its size, so on a long-tailed
    test set it weighs the tail as much as the head (on a balanced test set it equals
    ``100 - top1_error``).

    Example:
        >>> round(balanced_accuracy(torch.tensor([0, 0, 1, 0]), torch.tensor([0, 1, 1, 1]), 3), 2)
        66.67

    Args:
        logits_or_pred: Logits ``(N, C)`` or predicted labels ``(N,)``.
        target: Integer class labels ``(N,)``.
        num_classes: Optional number of classes, to check the labels against.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        A Python float in ``[0, 100]``.
    """
    p, t, c = _labels_and_classes(
        logits_or_pred, target, num_classes, "logits_or_pred", ignore_index
    )
    if c is None:
        c = max(int(p.max()), int(t.max())) + 1
    return 100.0 * _nanmean(_per_class_accuracy(p, t, c))


def _check_thresholds(many_threshold: float, few_threshold: float) -> None:
    check_finite_number("many_threshold", many_threshold)
    check_finite_number("few_threshold", few_threshold)
    if few_threshold > many_threshold:
        raise expected(
            "few_threshold", f"<= many_threshold ({many_threshold!r})", repr(few_threshold)
        )


def regions_of_counts(
    counts: Any, many_threshold: float = 100, few_threshold: float = 20
) -> tuple[str, ...]:
    """The shot region of each class (or label bin) from its training count: the one rule.

    More than ``many_threshold`` training examples is ``"many"``, fewer than ``few_threshold``
    ``"few"``, anything else ``"medium"`` (so exactly 100 and exactly 20 are medium), as in Liu
    et al. (CVPR 2019) for classes and Yang et al. (ICML 2021) for label bins. Every many /
    medium / few split in longtail (shot accuracy, DIR regions, tables, plots) calls this.

    >>> regions_of_counts([150, 100, 20, 19, 0])
    ('many', 'medium', 'medium', 'few', 'few')
    """
    _check_thresholds(many_threshold, few_threshold)
    values = counts.tolist() if isinstance(counts, torch.Tensor) else list(counts)
    return tuple(
        "many" if c > many_threshold else "few" if c < few_threshold else "medium" for c in values
    )


def _shot_groups(
    acc: torch.Tensor, counts: torch.Tensor, many_threshold: float, few_threshold: float
) -> dict[str, float]:
    regions = regions_of_counts(counts, many_threshold, few_threshold)
    many, medium, few = (
        torch.tensor([r == name for r in regions], dtype=torch.bool, device=acc.device)
        for name in ("many", "medium", "few")
    )
    return {
        "many_acc": 100.0 * _nanmean(acc[many]),
        "medium_acc": 100.0 * _nanmean(acc[medium]),
        "few_acc": 100.0 * _nanmean(acc[few]),
    }


def shot_accuracy(
    per_class_acc: Any,
    train_counts: Any,
    many_threshold: float = 100,
    few_threshold: float = 20,
) -> dict[str, float]:
    """Mean per-class accuracy (%) over the many-, medium- and few-shot classes.

    A class is *many-shot* if it has more than ``many_threshold`` training examples
    (``n_c > 100``), *few-shot* if it has fewer than ``few_threshold`` (``n_c < 20``), and
    *medium-shot* otherwise (``20 <= n_c <= 100``): the split of Liu et al. (OLTR, CVPR 2019),
    used by Kang et al. (ICLR 2020) and, for label bins, by the DIR benchmark. Each group's value is
    the mean of its classes' accuracies, so every class counts once.

    A group with no class, or none of whose classes occurs in the test set, has no accuracy: its
    value is NaN here, and ``None`` (JSON ``null``) in :func:`classification_metrics`.

    Example:
        >>> acc = torch.tensor([1.0, 0.5, 0.75, 0.25])
        >>> shot_accuracy(acc, [500, 101, 100, 19])
        {'many_acc': 75.0, 'medium_acc': 75.0, 'few_acc': 25.0}
        >>> shot_accuracy(acc[:2], [500, 200])["few_acc"]
        nan

    Args:
        per_class_acc: Per-class accuracies ``(C,)`` as fractions in ``[0, 1]``
            (:func:`per_class_accuracy`'s output); NaN (or ``None``) for a class absent from the
            test set, which is then left out of its group's mean.
        train_counts: Training examples per class ``(C,)``.
        many_threshold: Many-shot means more than this many training examples.
        few_threshold: Few-shot means fewer than this many; must be ``<= many_threshold``.

    Returns:
        ``{"many_acc", "medium_acc", "few_acc"}`` as Python floats in percent (NaN when empty).

    Raises:
        ValueError: If the accuracies are not fractions, the counts have the wrong length or are
            negative, or ``few_threshold > many_threshold``.
    """
    _check_thresholds(many_threshold, few_threshold)
    if isinstance(per_class_acc, (list, tuple)):
        per_class_acc = [math.nan if a is None else a for a in per_class_acc]
    acc = _as_tensor(per_class_acc, "per_class_acc")
    if acc.dim() != 1 or acc.numel() == 0:
        raise expected(
            "per_class_acc", "a non-empty 1-D vector of per-class accuracies", tuple(acc.shape)
        )
    acc = acc.detach().cpu().double()
    known = acc[~torch.isnan(acc)]
    if ((known < 0) | (known > 1)).any():
        raise expected(
            "per_class_acc",
            "fractions in [0, 1] (per_class_accuracy's output, not percentages)",
            f"values in [{float(known.min())}, {float(known.max())}]",
        )
    counts = as_counts(train_counts, name="train_counts", num_classes=acc.numel())
    return _shot_groups(acc, counts, many_threshold, few_threshold)


def _check_probabilities(x: torch.Tensor, name: str) -> None:
    """Scores given as probabilities (``from_probs=True``) must be in ``[0, 1]`` with rows that
    sum to 1, up to the rounding of ``C`` terms in their dtype."""
    if not x.numel():
        return
    if ((x < 0) | (x > 1)).any():
        raise expected(name, "probabilities in [0, 1] with from_probs=True", "values outside")
    tol = max(1e-3, 10 * x.shape[1] * torch.finfo(x.dtype).eps)
    off = float((x.sum(dim=1, dtype=torch.float64) - 1).abs().max())
    if off > tol:
        raise expected(
            name,
            "rows of probabilities summing to 1 with from_probs=True (logits: leave it False)",
            f"a row summing to {1 + off:.4g} or {1 - off:.4g}",
        )


def _looks_like_probabilities(x: torch.Tensor) -> bool:
    """Rows in [0, 1] that sum to 1: what a softmax gives, which logits almost never are."""
    if x.dim() != 2 or x.shape[1] < 2 or not x.numel() or not x.is_floating_point():
        return False
    if bool(((x < 0) | (x > 1)).any()):
        return False
    tol = max(1e-3, 10 * x.shape[1] * torch.finfo(x.dtype).eps)
    return float((x.sum(dim=1, dtype=torch.float64) - 1).abs().max()) <= tol


def _probabilities(scores: torch.Tensor, from_probs: bool) -> torch.Tensor:
    if from_probs:
        return scores
    if _looks_like_probabilities(scores):
        # a softmax of probabilities is a flatter distribution: calibration would be measured
        # on numbers the model never gave
        warnings.warn(
            "the scores' rows are in [0, 1] and sum to 1: if they are probabilities, pass "
            "from_probs=True (they are taken as logits, and a second softmax flattens them)",
            stacklevel=3,
        )
    if scores.dtype != torch.float64:
        scores = scores.float()
    probs = torch.softmax(scores, dim=1)
    # A row whose largest logit is infinite (+inf, e.g. a float16 overflow, or every entry -inf)
    # has no finite softmax: it gets the limit, spread evenly over the entries equal to the max.
    top = scores.amax(dim=1, keepdim=True)
    limit_rows = torch.isinf(top)
    if scores.numel() and bool(limit_rows.any()):
        at_top = (scores == top).to(probs.dtype)
        probs = torch.where(limit_rows, at_top / at_top.sum(dim=1, keepdim=True), probs)
    return probs


def _bin_index(values: torch.Tensor, n_bins: int) -> torch.Tensor:
    """The bin of each value of ``values`` (float64, in ``[0, 1]``) among ``n_bins`` equal bins.

    Bin b holds the values in (b/n, (b+1)/n]: bucketize with right=False returns the index i of
    the first edge >= value, so edge[i-1] < value <= edge[i]. A value of exactly 0 joins the first
    bin.
    """
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64, device=values.device)
    return (torch.bucketize(values, edges, right=False) - 1).clamp_(0, n_bins - 1)


def _ece_stats(
    probs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, n_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sufficient statistics of ECE, per bin: (examples int64, Σ confidence, Σ correct)."""
    conf = probs.max(dim=1).values.double()
    correct = (pred == target).double()
    bins = _bin_index(conf, n_bins)
    size = torch.bincount(bins, minlength=n_bins)
    conf_sum = torch.bincount(bins, weights=conf, minlength=n_bins)
    acc_sum = torch.bincount(bins, weights=correct, minlength=n_bins)
    return size, conf_sum, acc_sum


def _ece_value(size: torch.Tensor, conf_sum: torch.Tensor, acc_sum: torch.Tensor) -> float:
    # Σ_b |B_b|/N · |acc_b − conf_b| = Σ_b |Σ_{i∈B_b} (correct_i − conf_i)| / N
    return 100.0 * float((acc_sum - conf_sum).abs().sum() / size.double().sum())


def _ece(probs: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, n_bins: int) -> float:
    return _ece_value(*_ece_stats(probs, pred, target, n_bins))


def expected_calibration_error(
    probs_or_logits: Any,
    target: Any,
    n_bins: int = 15,
    *,
    from_probs: bool = False,
    ignore_index: int | None = None,
) -> float:
    """Expected calibration error (%) with equal-width confidence bins (Guo et al., ICML 2017).

    With confidence ``p_i = max_c softmax(z_i)_c``, prediction ``ŷ_i = argmax_c z_ic`` and bins
    ``B_b = {i : b/M < p_i <= (b+1)/M}``, ``b = 0 .. M-1``:

    .. math::

        \\mathrm{ECE} = 100 \\sum_b \\frac{|B_b|}{N}\\,
        \\Bigl| \\frac{1}{|B_b|} \\sum_{i \\in B_b} [\\hat y_i = y_i]
        - \\frac{1}{|B_b|} \\sum_{i \\in B_b} p_i \\Bigr|

    The input is **logits** by default (softmax is taken inside, in at least float32); pass
    ``from_probs=True`` for probabilities whose rows already sum to 1. A row whose largest logit
    is infinite (a float16 overflow gives ``+inf``) gets softmax's limit, the probability spread
    evenly over the entries equal to that maximum, rather than NaN.

    Example:
        >>> logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 0.0]])
        >>> round(expected_calibration_error(logits, torch.tensor([0, 1, 1, 0])), 4)
        36.151
        >>> expected_calibration_error(torch.eye(3), torch.arange(3), from_probs=True)
        0.0

    Args:
        probs_or_logits: Logits ``(N, C)`` (or probabilities with ``from_probs=True``).
        target: Integer class labels ``(N,)``.
        n_bins: Number ``M`` of equal-width bins over ``(0, 1]``; 15 as in Guo et al.
        from_probs: Whether the input already holds probabilities.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        ECE as a Python float in ``[0, 100]``.

    Raises:
        ValueError: On mismatched shapes, labels out of range, NaN scores, ``n_bins < 1``, or
            probabilities outside ``[0, 1]`` or rows of them not summing to 1.
    """
    n_bins = check_int("n_bins", n_bins, minimum=1)
    probs_or_logits, tgt = _kept(probs_or_logits, target, ignore_index)
    n = tgt.shape[0] if tgt.dim() >= 1 else -1
    x = _as_logits(probs_or_logits, "probs_or_logits", n)
    tgt = _as_target(tgt, x.shape[1]).to(x.device)
    if from_probs:
        _check_probabilities(x, "probs_or_logits")
    # The prediction comes from the input itself: rounding in the softmax can tie distinct logits.
    return _ece(_probabilities(x, from_probs), x.argmax(dim=1), tgt, n_bins)


def _classwise_stats(
    probs: torch.Tensor, target: torch.Tensor, n_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-wise ECE's statistics, ``(C, n_bins)`` each: examples (int64), Σ p_ic, Σ [y_i = c]
    over the examples whose probability of class c falls in the bin."""
    n, c = probs.shape
    p = probs.double()
    bins = _bin_index(p, n_bins)  # (N, C)
    flat = (bins + torch.arange(c, device=p.device) * n_bins).flatten()
    hits = torch.zeros_like(p)
    hits[torch.arange(n, device=p.device), target] = 1.0
    size = torch.bincount(flat, minlength=c * n_bins).reshape(c, n_bins)
    prob_sum = torch.bincount(flat, weights=p.flatten(), minlength=c * n_bins)
    hit_sum = torch.bincount(flat, weights=hits.flatten(), minlength=c * n_bins)
    return size, prob_sum.reshape(c, n_bins), hit_sum.reshape(c, n_bins)


def _classwise_value(size: torch.Tensor, prob_sum: torch.Tensor, hit_sum: torch.Tensor) -> float:
    # (1/C) Σ_c Σ_b |B_cb|/N · |freq_cb − p_cb| = Σ_cb |Σ_{i∈B_cb} ([y_i = c] − p_ic)| / (N C)
    c = size.shape[0]
    n = size.double().sum() / c  # every example is in one bin of every class
    return 100.0 * float((hit_sum - prob_sum).abs().sum() / (n * c))


def classwise_calibration_error(
    probs_or_logits: Any,
    target: Any,
    n_bins: int = 15,
    *,
    from_probs: bool = False,
    ignore_index: int | None = None,
) -> float:
    """Class-wise ECE (%), the calibration of every class's probability (Kull et al., NeurIPS
    2019), with :func:`expected_calibration_error`'s equal-width bins.

    Where ECE bins the top-1 confidence only, class-wise ECE bins, for every class ``c``, the
    probability ``p_ic = softmax(z_i)_c`` of every example, in ``B_cb = {i : b/M < p_ic <=
    (b+1)/M}`` (a probability of exactly 0 joins the first bin), compares it with the frequency
    of class ``c`` in the bin, and averages over the ``C`` classes:

    .. math::

        \\mathrm{cwECE} = \\frac{100}{C} \\sum_c \\sum_b \\frac{|B_{cb}|}{N}\\,
        \\Bigl| \\frac{1}{|B_{cb}|} \\sum_{i \\in B_{cb}} [y_i = c]
        - \\frac{1}{|B_{cb}|} \\sum_{i \\in B_{cb}} p_{ic} \\Bigr|

    Every class counts, a class absent from ``target`` too (its frequency is 0 in every bin), so
    a model that gives a rare class probability where it does not occur pays for it.

    Example:
        >>> classwise_calibration_error(torch.eye(3), torch.arange(3), from_probs=True)
        0.0
        >>> logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 0.0]])
        >>> round(classwise_calibration_error(logits, torch.tensor([0, 1, 1, 0])), 4)
        37.0503

    Args:
        probs_or_logits: Logits ``(N, C)`` (or probabilities with ``from_probs=True``).
        target: Integer class labels ``(N,)``.
        n_bins: Number ``M`` of equal-width bins over ``(0, 1]``. Default 15.
        from_probs: Whether the input already holds probabilities.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        Class-wise ECE as a Python float in ``[0, 100]``.

    Raises:
        ValueError: As :func:`expected_calibration_error`.
    """
    n_bins = check_int("n_bins", n_bins, minimum=1)
    probs_or_logits, tgt = _kept(probs_or_logits, target, ignore_index)
    n = tgt.shape[0] if tgt.dim() >= 1 else -1
    x = _as_logits(probs_or_logits, "probs_or_logits", n)
    tgt = _as_target(tgt, x.shape[1]).to(x.device)
    if from_probs:
        _check_probabilities(x, "probs_or_logits")
    return _classwise_value(*_classwise_stats(_probabilities(x, from_probs), tgt, n_bins))


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def classification_metrics(
    logits: Any,
    target: Any,
    train_counts: Any,
    many_threshold: float = 100,
    few_threshold: float = 20,
    n_bins: int = 15,
    *,
    ignore_index: int | None = None,
) -> dict[str, Any]:
    """Every classification metric of a results record, as plain JSON-ready Python values.

    Example:
        >>> import json
        >>> logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [3.0, 0.0, 0.0]])
        >>> m = classification_metrics(logits, torch.tensor([0, 1, 1]), train_counts=[500, 50, 5])
        >>> round(m["top1_error"], 2), m["per_class_error"], m["many_acc"], m["few_acc"]
        (33.33, [0.0, 50.0, None], 100.0, None)
        >>> json.loads(json.dumps(m)) == m
        True

    Args:
        logits: Logits ``(N, C)``, any device, float16/bfloat16/float32/float64.
        target: Integer class labels ``(N,)`` in ``[0, C-1]``.
        train_counts: Training examples per class ``(C,)``, for the shot groups.
        many_threshold: See :func:`shot_accuracy` (many-shot: ``n_c > many_threshold``).
        few_threshold: See :func:`shot_accuracy` (few-shot: ``n_c < few_threshold``).
        n_bins: Bins of :func:`expected_calibration_error`.
        ignore_index: Examples whose target is this value (padding labelled -100, say) are left
            out, as the losses and torchmetrics do. Default ``None``.

    Returns:
        ``{"top1_error", "balanced_accuracy", "per_class_error", "many_acc", "medium_acc",
        "few_acc", "ece"}``, all in percent: floats, ``per_class_error`` a list of ``C`` floats.
        A value that does not exist -- the error of a class absent from ``target``, the accuracy
        of an empty shot group -- is ``None`` (JSON ``null``), never NaN.

    Raises:
        ValueError: On bad shapes, labels, counts (wrong length, negative) or thresholds.
    """
    _check_thresholds(many_threshold, few_threshold)
    n_bins = check_int("n_bins", n_bins, minimum=1)
    logits, tgt = _kept(logits, target, ignore_index)
    n = tgt.shape[0] if tgt.dim() >= 1 else -1
    x = _as_logits(logits, "logits", n)
    c = x.shape[1]
    tgt = _as_target(tgt, c).to(x.device)
    counts = as_counts(train_counts, name="train_counts", num_classes=c)

    pred = x.argmax(dim=1)
    acc = _per_class_accuracy(pred, tgt, c)
    shots = _shot_groups(acc, counts, many_threshold, few_threshold)
    return {
        "top1_error": _error(pred, tgt),
        "balanced_accuracy": _json_float(100.0 * _nanmean(acc)),
        "per_class_error": [_json_float(e) for e in (100.0 * (1.0 - acc)).tolist()],
        "many_acc": _json_float(shots["many_acc"]),
        "medium_acc": _json_float(shots["medium_acc"]),
        "few_acc": _json_float(shots["few_acc"]),
        "ece": _ece(_probabilities(x, from_probs=False), pred, tgt, n_bins),
    }
