"""Tests for longtail.metrics, against hand computations and plain-loop references."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from longtail.metrics import (
    CLASSIFICATION_KEYS,
    balanced_accuracy,
    classification_metrics,
    classwise_calibration_error,
    expected_calibration_error,
    per_class_accuracy,
    per_class_error,
    shot_accuracy,
    top1_error,
)

# A hand-made confusion: class 0 gets 2 of 4 right, class 1 gets 1 of 2, class 2 gets 2 of 2,
# class 3 never occurs in the targets (but is predicted once): accuracies 1/2, 1/2, 1, NaN.
TARGET = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
PRED = torch.tensor([0, 0, 1, 3, 1, 0, 2, 2])


def logits_for(pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits whose argmax is ``pred`` (with a non-trivial spread)."""
    g = torch.Generator().manual_seed(0)
    z = torch.rand(pred.numel(), num_classes, generator=g)
    z[torch.arange(pred.numel()), pred] = 2.0
    return z


def loop_per_class(pred, target, num_classes):
    acc = []
    for c in range(num_classes):
        total = sum(1 for t in target.tolist() if t == c)
        hits = sum(1 for p, t in zip(pred.tolist(), target.tolist(), strict=True) if t == c == p)
        acc.append(hits / total if total else math.nan)
    return acc


def loop_ece(probs, target, n_bins):
    """ECE straight from its definition: one pass over the samples for every bin."""
    n = len(target)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = []
        for row, t in zip(probs.tolist(), target.tolist(), strict=True):
            conf = max(row)
            if lo < conf <= hi or (b == 0 and conf == 0.0):
                members.append((conf, float(row.index(conf) == t)))
        if members:
            acc = sum(m[1] for m in members) / len(members)
            conf = sum(m[0] for m in members) / len(members)
            total += len(members) / n * abs(acc - conf)
    return 100.0 * total


# ---- top-1, per-class, balanced ---------------------------------------------------------------
def test_hand_made_confusion():
    assert top1_error(PRED, TARGET) == pytest.approx(100 * 3 / 8)
    acc = per_class_accuracy(PRED, TARGET, 4)
    assert acc.dtype == torch.float64 and acc.shape == (4,)
    assert acc[:3].tolist() == [0.5, 0.5, 1.0] and math.isnan(acc[3])
    err = per_class_error(PRED, TARGET, 4)
    assert err[:3] == [50.0, 50.0, 0.0] and math.isnan(err[3])
    assert balanced_accuracy(PRED, TARGET, 4) == pytest.approx(100 * 2 / 3)
    assert balanced_accuracy(PRED, TARGET) == pytest.approx(100 * 2 / 3)


def test_logits_give_the_same_as_labels():
    z = logits_for(PRED, 4)
    assert top1_error(z, TARGET) == top1_error(PRED, TARGET)
    torch.testing.assert_close(
        per_class_accuracy(z, TARGET), per_class_accuracy(PRED, TARGET, 4), equal_nan=True
    )
    assert balanced_accuracy(z, TARGET) == balanced_accuracy(PRED, TARGET, 4)


@pytest.mark.parametrize("seed", range(3))
def test_per_class_matches_loop(seed):
    g = torch.Generator().manual_seed(seed)
    c = 7
    target = torch.randint(0, c, (300,), generator=g)
    target[target == 5] = 4  # an absent class
    z = torch.randn(300, c, generator=g)
    pred = z.argmax(1)
    ref = loop_per_class(pred, target, c)
    acc = per_class_accuracy(z, target).tolist()
    for a, r in zip(acc, ref, strict=True):
        assert (math.isnan(a) and math.isnan(r)) or a == pytest.approx(r)
    present = [r for r in ref if not math.isnan(r)]
    assert balanced_accuracy(z, target) == pytest.approx(100 * sum(present) / len(present))
    wrong = sum(int(p != t) for p, t in zip(pred.tolist(), target.tolist(), strict=True))
    assert top1_error(z, target) == pytest.approx(100 * wrong / 300)


def test_ties_go_to_the_lowest_index():
    z = torch.zeros(2, 3)
    assert top1_error(z, torch.tensor([0, 1])) == 50.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_float_dtypes(dtype):
    z = logits_for(PRED, 4).to(dtype)
    assert top1_error(z, TARGET) == pytest.approx(100 * 3 / 8)
    m = classification_metrics(z, TARGET, [500, 50, 5, 5])
    assert m["top1_error"] == pytest.approx(100 * 3 / 8)
    ref = classification_metrics(z.double(), TARGET, [500, 50, 5, 5])
    assert m["ece"] == pytest.approx(ref["ece"], abs=1e-4)


def test_lists_and_int32_labels():
    assert top1_error(PRED.tolist(), TARGET.int()) == pytest.approx(37.5)
    assert per_class_error(PRED.int(), TARGET.tolist(), 4)[0] == 50.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_gpu():
    z = logits_for(PRED, 4)
    cpu = classification_metrics(z, TARGET, [500, 50, 5, 5])
    gpu = classification_metrics(z.cuda().half(), TARGET.cuda(), torch.tensor([500, 50, 5, 5]))
    assert gpu["per_class_error"] == cpu["per_class_error"]
    assert gpu["ece"] == pytest.approx(cpu["ece"], abs=1e-2)


# ---- shot groups -------------------------------------------------------------------------------
def test_shot_boundaries_are_strict():
    # many: n > 100; few: n < 20; medium: 20 <= n <= 100 (both ends included).
    counts = [101, 100, 20, 19, 5000, 0]
    acc = torch.tensor([1.0, 0.5, 0.25, 0.75, 0.0, 0.25], dtype=torch.float64)
    shots = shot_accuracy(acc, counts)
    assert shots == {
        "many_acc": pytest.approx(100 * (1.0 + 0.0) / 2),
        "medium_acc": pytest.approx(100 * (0.5 + 0.25) / 2),
        "few_acc": pytest.approx(100 * (0.75 + 0.25) / 2),
    }


def test_shot_custom_thresholds():
    acc = torch.tensor([1.0, 0.5, 0.0])
    shots = shot_accuracy(acc, [10, 5, 1], many_threshold=5, few_threshold=5)
    assert shots == {"many_acc": 100.0, "medium_acc": 50.0, "few_acc": 0.0}


def test_shot_empty_group_is_nan_and_absent_classes_are_skipped():
    shots = shot_accuracy([0.5, None, 1.0], [500, 300, 50])
    assert shots["many_acc"] == 50.0 and shots["medium_acc"] == 100.0
    assert math.isnan(shots["few_acc"])
    # a group whose only classes are absent from the test set is empty too
    shots = shot_accuracy(torch.tensor([0.5, math.nan]), [500, 5])
    assert math.isnan(shots["few_acc"])


def test_classification_metrics_empty_groups_are_null():
    z = logits_for(PRED, 4)
    m = classification_metrics(z, TARGET, [500, 400, 300, 200])
    assert m["medium_acc"] is None and m["few_acc"] is None
    assert m["many_acc"] == pytest.approx(100 * 2 / 3)
    assert m["per_class_error"][3] is None
    json.dumps(m, allow_nan=False)  # strict JSON: no NaN anywhere


def test_classification_metrics_agree_with_the_parts():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(200, 5, generator=g) * 3
    target = torch.randint(0, 5, (200,), generator=g)
    counts = [1000, 150, 100, 20, 3]
    m = classification_metrics(z, target, counts)
    assert tuple(m) == CLASSIFICATION_KEYS
    assert m["top1_error"] == top1_error(z, target)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy(z, target))
    assert m["per_class_error"] == pytest.approx(per_class_error(z, target))
    shots = shot_accuracy(per_class_accuracy(z, target), counts)
    assert [m["many_acc"], m["medium_acc"], m["few_acc"]] == pytest.approx(list(shots.values()))
    assert m["ece"] == pytest.approx(expected_calibration_error(z, target))
    for key in CLASSIFICATION_KEYS:
        assert isinstance(m[key], list if key == "per_class_error" else float)
    assert json.loads(json.dumps(m)) == m


# ---- ECE --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_bins", [1, 5, 15, 40])
@pytest.mark.parametrize("seed", range(3))
def test_ece_matches_loop(seed, n_bins):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(500, 6, generator=g, dtype=torch.float64) * 2
    target = torch.randint(0, 6, (500,), generator=g)
    probs = torch.softmax(z, 1)
    ref = loop_ece(probs, target, n_bins)
    assert expected_calibration_error(z, target, n_bins) == pytest.approx(ref, abs=1e-9)
    got = expected_calibration_error(probs, target, n_bins, from_probs=True)
    assert got == pytest.approx(ref, abs=1e-9)


def test_ece_of_one_hot_correct_predictions_is_zero():
    probs = torch.eye(4)[[0, 1, 2, 3, 1]]
    assert expected_calibration_error(probs, torch.tensor([0, 1, 2, 3, 1]), from_probs=True) == 0.0


def test_ece_of_a_calibrated_model_is_zero():
    # every sample is 80% confident and 4 of 5 are right
    z = torch.tensor([[math.log(4.0), 0.0]] * 5, dtype=torch.float64)
    target = torch.tensor([0, 0, 0, 0, 1])
    assert expected_calibration_error(z, target) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_confident_wrong_model():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(probs, torch.tensor([1, 0]), from_probs=True) == 100.0


def test_ece_bins_are_closed_on_the_right():
    # confidence exactly 0.5 with 2 bins belongs to (0, 0.5]; 0.75 to (0.5, 1]
    probs = torch.tensor([[0.5, 0.5], [0.75, 0.25]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    # bin 1: acc 1, conf .5 -> .5/2; bin 2: acc 0, conf .75 -> .75/2
    got = expected_calibration_error(probs, target, n_bins=2, from_probs=True)
    assert got == pytest.approx(100 * (0.25 + 0.375))


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: top1_error(torch.randn(8), TARGET), "integer predicted labels"),
        (lambda: top1_error(torch.randn(7, 4), TARGET), r"shape \(N, C\) = \(8"),
        (lambda: top1_error(torch.randn(8, 4, 2), TARGET), "logits of shape"),
        (lambda: top1_error(PRED, TARGET.float()), "integer class labels"),
        (lambda: top1_error(PRED, TARGET[:5]), "N = 5"),
        (lambda: top1_error(torch.randn(8, 2), TARGET), r"class labels in \[0, 1\]"),
        (lambda: top1_error(PRED, -TARGET), "non-negative class labels"),
        (lambda: top1_error(PRED[:0], TARGET[:0]), "non-empty"),
        (lambda: top1_error(torch.full((8, 4), math.nan), TARGET), "NaN"),
        (lambda: top1_error(torch.ones(8, 4, dtype=torch.long), TARGET), "floating-point"),
        (lambda: per_class_accuracy(PRED, TARGET), "num_classes"),
        (lambda: per_class_accuracy(PRED, TARGET, 3), "predicted labels in"),
        (lambda: per_class_accuracy(torch.randn(8, 4), TARGET, 5), r"\(N, 5\)"),
        (lambda: per_class_accuracy(PRED, TARGET, 0), "num_classes"),
        (lambda: shot_accuracy([0.5, 0.5], [10]), "train_counts"),
        (lambda: shot_accuracy([0.5, 0.5], [10, -1]), "non-negative"),
        (lambda: shot_accuracy([50.0, 40.0], [10, 1]), "fractions"),
        (lambda: shot_accuracy([0.5], [10], 20, 100), "few_threshold"),
        (lambda: shot_accuracy([0.5], [10], math.inf), "many_threshold"),
        (lambda: shot_accuracy(torch.ones(2, 2), [1, 1]), "per_class_acc"),
        (lambda: expected_calibration_error(torch.randn(8, 4), TARGET, 0), "n_bins"),
        (
            lambda: expected_calibration_error(torch.randn(8, 4) + 2, TARGET, from_probs=True),
            "probabilities",
        ),
        (lambda: classification_metrics(torch.randn(8, 4), TARGET, [1, 2, 3]), "length 4"),
        (lambda: classification_metrics(torch.randn(8, 4), TARGET, [1] * 4, 10, 20), "few_"),
        (lambda: classification_metrics(torch.randn(8, 2), TARGET, [1] * 2), r"\[0, 1\]"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_infinite_logits_give_softmax_limit_not_nan():
    # +inf (a float16 overflow), two +inf in a row, and a row of -inf: each row scores as the
    # same row with the infinities replaced by a large finite logit, where softmax is exact.
    inf = math.inf
    z = torch.tensor([[inf, 0.0, 0.0], [inf, inf, 0.0], [-inf, -inf, -inf], [2.0, 0.0, -inf]])
    finite = torch.tensor([[1e4, 0.0, 0.0], [1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, -1e4]])
    y = torch.tensor([0, 1, 2, 0])
    for zz, ff in ((z, finite), (z.double(), finite.double())):
        assert expected_calibration_error(zz, y) == pytest.approx(
            expected_calibration_error(ff, y), abs=1e-9
        )
    m = classification_metrics(z, y, [500, 50, 5])
    assert m["ece"] == pytest.approx(classification_metrics(finite, y, [500, 50, 5])["ece"])
    json.dumps(m, allow_nan=False)
    overflow = torch.tensor([[70000.0, 0.0, 0.0]]).half()  # inf in float16
    assert expected_calibration_error(overflow, torch.tensor([0])) == 0.0


def test_from_probs_rows_must_sum_to_one():
    """Probabilities that are not (rows summing to 2, or sigmoid scores) are refused, not
    binned as confidences; softmax rows of any dtype pass."""
    from longtail.metrics import classwise_calibration_error
    from longtail.metrics_streaming import ExpectedCalibrationError

    t = torch.tensor([0, 1, 2])
    bad = torch.tensor([[0.9, 0.9, 0.2], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    for fn in (expected_calibration_error, classwise_calibration_error):
        with pytest.raises(ValueError, match="summing to 1"):
            fn(bad, t, from_probs=True)
        fn(bad, t)  # as logits: fine
    with pytest.raises(ValueError, match="summing to 1"):
        ExpectedCalibrationError(3, from_probs=True).update(bad, t)
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        probs = torch.randn(64, 100, generator=g).softmax(1).to(dtype)
        expected_calibration_error(probs, torch.arange(64), from_probs=True)


# ---- ignore_index: the convention of the losses, torchmetrics and the streaming metrics ---------
def _with_padding(logits: torch.Tensor, target: torch.Tensor, pad: int):
    """The inputs with three padding rows (target ``pad``, logits of their own) spliced in."""
    g = torch.Generator().manual_seed(1)
    extra = torch.randn(3, logits.shape[1], generator=g) * 5
    at = [0, 4, len(target)]  # start, middle, end
    rows, labels = list(logits), target.tolist()
    for k, i in enumerate(sorted(at, reverse=True)):
        rows.insert(i, extra[k])
        labels.insert(i, pad)
    return torch.stack(rows), torch.tensor(labels)


def _every_metric(scores, target, **kw):
    c = scores.shape[1]
    counts = [200, 50, 5, 1][:c]
    return {
        "top1": top1_error(scores, target, **kw),
        "per_class_acc": per_class_accuracy(scores, target, **kw).tolist(),
        "per_class_err": per_class_error(scores.argmax(1), target, c, **kw),
        "balanced": balanced_accuracy(scores, target, **kw),
        "ece": expected_calibration_error(scores, target, **kw),
        "cw_ece": classwise_calibration_error(scores, target, **kw),
        "all": classification_metrics(scores, target, counts, **kw),
    }


@pytest.mark.parametrize("pad", [-100, 255, 3])
def test_ignore_index_equals_the_metric_of_the_kept_examples(pad):
    logits = logits_for(PRED, 4)
    keep = TARGET != pad
    padded, target = _with_padding(logits, TARGET, pad)
    got = _every_metric(padded, target, ignore_index=pad)
    want = _every_metric(logits[keep], TARGET[keep])
    assert json.dumps(got, default=str) == json.dumps(want, default=str)
    if pad in (-100, 255):  # out of range: without ignore_index the labels are refused
        with pytest.raises(ValueError, match="target"):
            top1_error(padded, target)


def test_ignore_index_that_is_a_class_leaves_that_class_out():
    logits = logits_for(PRED, 4)
    acc = per_class_accuracy(logits, TARGET, ignore_index=2)
    assert math.isnan(acc[2]) and acc[0] == 0.5 and acc[1] == 0.5
    assert top1_error(PRED, TARGET, ignore_index=2) == pytest.approx(100 * 3 / 6)


def test_ignore_index_with_no_example_left_or_a_bad_value_is_refused():
    logits = logits_for(PRED, 4)
    with pytest.raises(ValueError, match="every label ignored"):
        top1_error(logits[:2], torch.tensor([-100, -100]), ignore_index=-100)
    with pytest.raises(ValueError, match="every label ignored"):
        classification_metrics(logits[:1], torch.tensor([-1]), [1, 1, 1, 1], ignore_index=-1)
    for bad in (True, 1.0, "-100"):
        with pytest.raises(ValueError, match="ignore_index"):
            balanced_accuracy(logits, TARGET, ignore_index=bad)
    # Without ignore_index, a negative label is refused with the option that leaves it out.
    with pytest.raises(ValueError, match=r"pass ignore_index=-100 \(the losses' default"):
        top1_error(logits[:2], torch.tensor([0, -100]))
    # A shape mismatch is still reported as one, not hidden by the dropping.
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error(logits[:3], TARGET, ignore_index=-100)


def test_probabilities_passed_as_logits_are_warned_about():
    # a softmax of probabilities flattens them: ECE silently measured on other numbers
    torch.manual_seed(0)
    logits, target = torch.randn(40, 4), torch.randint(0, 4, (40,))
    probs = logits.softmax(1)
    with pytest.warns(UserWarning, match="pass from_probs=True"):
        flattened = expected_calibration_error(probs, target)
    assert flattened != pytest.approx(expected_calibration_error(probs, target, from_probs=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected_calibration_error(logits, target)  # logits: no warning
        expected_calibration_error(probs, target, from_probs=True)
        expected_calibration_error(logits.sigmoid(), target)  # in [0, 1], rows not summing to 1
