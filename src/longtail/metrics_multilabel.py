"""Multi-label metrics that see the tail: mAP (per class, macro, and over the head / medium / tail
labels), F1 at a threshold and at per-class thresholds tuned on a validation set, precision@k.

Inputs are scores ``(N, C)`` (probabilities or logits: every metric here depends on the order of
the scores, or on a threshold given in their units) and multi-hot targets ``(N, C)`` of 0/1 (lists,
arrays or tensors). Everything is computed in float64 NumPy; results are NumPy arrays and Python
floats, fractions in ``[0, 1]`` (:func:`multilabel_metrics` gives percentages, JSON-ready).

Conventions for labels with no positive example in the evaluated set (written once here, and
checked against scikit-learn in the tests):

* **average precision** of such a label is undefined: :func:`per_class_average_precision` gives
  NaN, and :func:`mean_average_precision` leaves it out of the mean (``empty="skip"``, the
  default, as multi-label papers' mAP does). ``empty="zero"`` instead counts it as 0 and keeps it
  in the mean, which is scikit-learn's ``average_precision_score(average="macro")`` (it warns
  "No positive class found in y_true" and returns 0 for such a column);
* **F1** of a label with no positive and no positive prediction is ``0/0``: it is
  ``zero_division`` (default 0, scikit-learn's default) and counts in the macro mean (with
  ``zero_division=nan`` it is left out, as scikit-learn does). A label with no positive but some
  positive predictions has F1 = 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import as_counts, check_choice, expected
from longtail.data.multilabel import as_multihot
from longtail.metrics import _check_thresholds, regions_of_counts

__all__ = [
    "f1_scores",
    "mean_average_precision",
    "multilabel_metrics",
    "per_class_average_precision",
    "precision_at_k",
    "shot_map",
    "tune_thresholds",
    "tuned_f1",
]


# ------------------------------------------------------------------------------- inputs
def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        arr = scores.detach().cpu().double().numpy()
    else:
        try:
            arr = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise expected(name, "an (N, C) array of scores", repr(scores)) from err
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise expected(name, "a non-empty (N, C) array of scores", f"shape {arr.shape}")
    if np.isnan(arr).any():
        raise expected(name, "free of NaN", "NaN values")
    return arr


def _inputs(scores: Any, targets: Any, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores, f"{prefix}scores")
    y = as_multihot(targets, name=f"{prefix}targets")
    if y.shape != s.shape:
        raise expected(f"{prefix}targets", f"of the scores' shape {s.shape}", f"shape {y.shape}")
    return s, y


# --------------------------------------------------------------------------- average precision
def _average_precision(s: np.ndarray, y: np.ndarray) -> float:
    """AP of one label: ``Σ_k (R_k − R_{k−1}) P_k`` over the distinct scores, highest first
    (tied scores form one threshold); NaN without a positive."""
    positives = int(y.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    last = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # the last of each group of ties
    tp = tp[last]
    precision = tp / (last + 1)
    gained = np.diff(np.r_[0, tp]) / positives  # recall added at each threshold
    return float(np.sum(gained * precision))


def per_class_average_precision(scores: Any, targets: Any) -> np.ndarray:
    """Average precision of each label, float64 ``(C,)``; NaN for a label with no positive.

    AP is the step-wise area under the precision-recall curve,
    ``Σ_k (R_k − R_{k−1}) P_k`` over the thresholds at the distinct scores (highest first, tied
    scores taken together, no interpolation): scikit-learn's ``average_precision_score``.

    Example:
        >>> per_class_average_precision([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]],
        ...                             [[1, 0], [0, 0], [1, 0]]).tolist()
        [1.0, nan]
    """
    s, y = _inputs(scores, targets)
    return np.array([_average_precision(s[:, c], y[:, c]) for c in range(s.shape[1])])


def mean_average_precision(scores: Any, targets: Any, *, empty: str = "skip") -> float:
    """mAP: the mean over labels of :func:`per_class_average_precision`, a fraction.

    Args:
        scores, targets: ``(N, C)`` scores and 0/1 targets.
        empty: what a label with no positive does: ``"skip"`` (default) leaves it out (NaN if
            no label has a positive); ``"zero"`` counts it as AP 0, scikit-learn's macro
            average.

    Example:
        >>> s, y = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]], [[1, 0], [0, 0], [1, 0]]
        >>> mean_average_precision(s, y), mean_average_precision(s, y, empty="zero")
        (1.0, 0.5)
    """
    check_choice("empty", empty, ("skip", "zero"))
    ap = per_class_average_precision(scores, targets)
    if empty == "zero":
        return float(np.nan_to_num(ap, nan=0.0).mean())
    return _nanmean(ap)


def _nanmean(values: np.ndarray) -> float:
    known = values[~np.isnan(values)]
    return float(known.mean()) if known.size else math.nan


def shot_map(
    scores: Any,
    targets: Any,
    train_counts: Any,
    many_threshold: float = 100,
    few_threshold: float = 20,
) -> dict[str, float]:
    """mAP over the head, medium and tail labels, by their training frequency.

    A label is *head* with more than ``many_threshold`` positive training examples, *tail* with
    fewer than ``few_threshold``, *medium* otherwise: the many/medium/few split of
    :func:`longtail.metrics.regions_of_counts` (100 and 20), which is also the head/medium/tail
    split of the long-tailed multi-label benchmarks of Wu et al. (ECCV 2020). Each group's value
    is the mean AP of its labels that have a positive in ``targets`` (NaN when none has).

    Args:
        scores, targets: ``(N, C)`` scores and 0/1 targets (the evaluated set).
        train_counts: positive training examples per label ``(C,)``
            (:func:`longtail.data.multilabel.multilabel_counts` of the training targets).
        many_threshold, few_threshold: the split (``few <= many``).

    Returns:
        ``{"head_map", "medium_map", "tail_map"}``, fractions (NaN for an empty group).
    """
    _check_thresholds(many_threshold, few_threshold)
    ap = per_class_average_precision(scores, targets)
    counts = as_counts(train_counts, name="train_counts", num_classes=len(ap))
    regions = np.array(regions_of_counts(counts, many_threshold, few_threshold))
    return {
        f"{group}_map": _nanmean(ap[regions == region])
        for group, region in (("head", "many"), ("medium", "medium"), ("tail", "few"))
    }


# ---------------------------------------------------------------------------------------- F1
def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, zero_division: float) -> np.ndarray:
    den = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), zero_division)


def _f1_of_predictions(pred: np.ndarray, y: np.ndarray, zero_division: float) -> dict[str, Any]:
    tp = (pred & y).sum(0).astype(np.float64)
    fp = (pred & ~y).sum(0).astype(np.float64)
    fn = (~pred & y).sum(0).astype(np.float64)
    per_class = _f1(tp, fp, fn, zero_division)
    micro = _f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True), zero_division)
    return {
        "micro": float(micro[0]),
        "macro": _nanmean(per_class) if math.isnan(zero_division) else float(per_class.mean()),
        "per_class": per_class,
    }


def _check_zero_division(zero_division: Any) -> float:
    if not isinstance(zero_division, (int, float)) or not (
        math.isnan(zero_division) or zero_division in (0, 1)
    ):
        raise expected("zero_division", "0, 1 or nan", repr(zero_division))
    return float(zero_division)


def f1_scores(
    scores: Any, targets: Any, threshold: Any = 0.5, *, zero_division: float = 0.0
) -> dict[str, Any]:
    """Micro, macro and per-label F1 of the predictions ``score >= threshold``.

    Args:
        scores, targets: ``(N, C)`` scores and 0/1 targets.
        threshold: one number, or one per label ``(C,)``, in the scores' units (0.5 for
            probabilities, 0 for logits). ``inf`` predicts no positive.
        zero_division: the F1 of a label with no positive and no positive prediction (0, 1 or
            NaN; see the module docstring).

    Returns:
        ``{"micro": float, "macro": float, "per_class": ndarray (C,)}``, fractions.
        Micro-F1 pools the counts of every label, ``2ΣTP / (2ΣTP + ΣFP + ΣFN)``; macro-F1 is the
        mean of the labels' F1.

    Example:
        >>> f = f1_scores([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]], [[1, 0], [0, 1], [0, 0]])
        >>> round(f["micro"], 4), round(f["macro"], 4), f["per_class"].tolist()
        (0.8, 0.8333, [0.6666666666666666, 1.0])
    """
    zero_division = _check_zero_division(zero_division)
    s, y = _inputs(scores, targets)
    return _f1_of_predictions(
        s >= _thresholds("threshold", threshold, s.shape[1]), y, zero_division
    )


def _thresholds(name: str, value: Any, num_labels: int) -> np.ndarray:
    """``value`` as float64 thresholds ``(C,)``: one number (any but NaN; ``inf`` predicts no
    positive) or one per label."""
    what = f"a number or one per label ({num_labels}), not NaN"
    raw = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    try:
        thr = np.asarray(raw)
    except (TypeError, ValueError):
        raise expected(name, what, repr(value)) from None
    if thr.dtype.kind not in "iuf":  # a string, a bool, a ragged list: not thresholds
        raise expected(name, what, repr(value))
    thr = thr.astype(np.float64)
    if thr.ndim > 1 or (thr.ndim == 1 and thr.shape[0] != num_labels):
        raise expected(name, what, f"shape {thr.shape}")
    if np.isnan(thr).any():
        raise expected(
            name,
            what,
            "NaN" if thr.ndim == 0 else f"NaN at {np.flatnonzero(np.isnan(thr)).tolist()}",
        )
    return np.broadcast_to(thr, (num_labels,)).copy()


def tune_thresholds(val_scores: Any, val_targets: Any, *, untuned: Any = np.inf) -> np.ndarray:
    """Per-label thresholds that maximise each label's F1 on a validation set, float64 ``(C,)``.

    For label ``c`` the candidates are its distinct validation scores (predict positive when
    ``score >= threshold``); the one with the highest F1 is kept, the highest such score on a tie
    (fewest positive predictions). A label with no validation positive has nothing to tune on
    (every threshold has F1 0 there): it gets ``untuned`` (a number, or one per label), by
    default ``inf`` (predict no positive); :func:`multilabel_metrics` gives it the fixed
    threshold instead.

    Example:
        >>> tune_thresholds([[0.9, 0.4], [0.7, 0.2], [0.3, 0.1]], [[1, 0], [1, 0], [0, 0]]).tolist()
        [0.7, inf]
    """
    s, y = _inputs(val_scores, val_targets, prefix="val_")
    out = _thresholds("untuned", untuned, s.shape[1])
    for c in range(s.shape[1]):
        positives = int(y[:, c].sum())
        if positives == 0:
            continue
        order = np.argsort(-s[:, c], kind="stable")
        sc, yc = s[order, c], y[order, c]
        last = np.flatnonzero(np.r_[sc[1:] != sc[:-1], True])
        tp = np.cumsum(yc)[last]
        f1 = 2 * tp / (last + 1 + positives)  # 2TP / (2TP + FP + FN), predicted = last + 1
        out[c] = sc[last[int(np.argmax(f1))]]  # argmax: the first, i.e. highest, of the best
    return out


def tuned_f1(
    val_scores: Any,
    val_targets: Any,
    test_scores: Any,
    test_targets: Any,
    *,
    zero_division: float = 0.0,
    untuned: Any = np.inf,
) -> dict[str, Any]:
    """F1 on a test set at the per-label thresholds :func:`tune_thresholds` chooses on a
    validation set (never on the test set itself); a label without a validation positive gets
    ``untuned`` (default ``inf``: never predicted).

    Returns:
        :func:`f1_scores`'s dict on the test set, plus ``"thresholds"`` (the ``(C,)`` thresholds
        from the validation set).
    """
    thr = tune_thresholds(val_scores, val_targets, untuned=untuned)
    s, y = _inputs(test_scores, test_targets, prefix="test_")
    if s.shape[1] != thr.shape[0]:
        raise expected(
            "test_scores", f"{thr.shape[0]} labels, as the validation set", f"{s.shape[1]}"
        )
    out = _f1_of_predictions(s >= thr, y, _check_zero_division(zero_division))
    out["thresholds"] = thr
    return out


# ------------------------------------------------------------------------------ precision@k
def precision_at_k(scores: Any, targets: Any, k: int) -> float:
    """Precision@k: the fraction of each sample's ``k`` highest-scored labels that are positive,
    averaged over the samples (the extreme multi-label benchmarks' P@k; a sample with fewer than
    ``k`` positives cannot reach 1, and one with none scores 0). Ties in the scores go to the
    lower label index.

    Example:
        >>> precision_at_k([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7]], [[1, 0, 0], [0, 1, 1]], k=2)
        0.75
    """
    s, y = _inputs(scores, targets)
    k = check_int("k", k, minimum=1)
    if k > s.shape[1]:
        raise expected("k", f"at most the number of labels ({s.shape[1]})", k)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(y, top, axis=1).sum(1).mean() / k)


# ----------------------------------------------------------------------------- all at once
def _percent(value: float) -> float | None:
    return None if math.isnan(value) else 100.0 * value


def multilabel_metrics(
    scores: Any,
    targets: Any,
    train_counts: Any = None,
    *,
    threshold: Any = 0.5,
    ks: tuple[int, ...] = (1, 3, 5),
    val_scores: Any = None,
    val_targets: Any = None,
    many_threshold: float = 100,
    few_threshold: float = 20,
) -> dict[str, Any]:
    """Every multi-label metric of this module at once, JSON-ready, in percent.

    Returns:
        ``"map"`` (labels with a positive; see the module docstring), ``"map_zero"``
        (scikit-learn's), ``"micro_f1"``, ``"macro_f1"`` (at ``threshold``), ``"p@k"`` for each
        ``k`` in ``ks`` (those ``<= C``), and, given ``train_counts``, ``"head_map"``,
        ``"medium_map"``, ``"tail_map"``; given a validation set, ``"tuned_micro_f1"`` and
        ``"tuned_macro_f1"`` (per-label thresholds chosen on it; a label with no validation
        positive, which has nothing to tune on, keeps ``threshold``). A value that does not
        exist (an empty group) is ``None``.

    Example:
        >>> m = multilabel_metrics([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]],
        ...                        [[0, 0], [0, 1], [1, 0]], [500, 10], ks=(1,))
        >>> m["map"], m["p@1"], m["head_map"], m["tail_map"], m["medium_map"]
        (75.0, 66.66666666666666, 50.0, 100.0, None)
    """
    s, y = _inputs(scores, targets)
    f1 = f1_scores(s, y, threshold)
    out: dict[str, Any] = {
        "map": _percent(mean_average_precision(s, y)),
        "map_zero": _percent(mean_average_precision(s, y, empty="zero")),
        "micro_f1": _percent(f1["micro"]),
        "macro_f1": _percent(f1["macro"]),
    }
    for k in ks:
        if check_int("k", k, minimum=1) <= s.shape[1]:
            out[f"p@{k}"] = _percent(precision_at_k(s, y, k))
    if train_counts is not None:
        shots = shot_map(s, y, train_counts, many_threshold, few_threshold)
        out.update({key: _percent(v) for key, v in shots.items()})
    if (val_scores is None) != (val_targets is None):
        raise expected("val_targets", "given with val_scores (both or neither)", "one of them")
    if val_scores is not None:
        tuned = tuned_f1(val_scores, val_targets, s, y, untuned=threshold)
        out["tuned_micro_f1"] = _percent(tuned["micro"])
        out["tuned_macro_f1"] = _percent(tuned["macro"])
    return out
