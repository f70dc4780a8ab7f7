"""Multi-label metrics against scikit-learn (average_precision_score, f1_score) on random data,
labels with no positive included, and the metrics scikit-learn has no counterpart for against
loops."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from longtail.metrics import regions_of_counts
from longtail.metrics_multilabel import (
    f1_scores,
    mean_average_precision,
    multilabel_metrics,
    per_class_average_precision,
    precision_at_k,
    shot_map,
    tune_thresholds,
    tuned_f1,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def data(n=200, c=12, seed=0, ties=False):
    """Scores correlated with long-tailed targets; the last two labels have no positive."""
    rng = np.random.default_rng(seed)
    freq = np.geomspace(0.4, 0.02, c)
    y = rng.random((n, c)) < freq
    y[:, -2:] = False
    s = rng.random((n, c)) + 0.6 * y
    if ties:
        s = np.round(s, 1)  # many tied scores
    return s, y.astype(int)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed, ties):
    s, y = data(seed=seed, ties=ties)
    ap = per_class_average_precision(s, y)
    for c in range(y.shape[1]):
        if y[:, c].any():
            want = sklearn_metrics.average_precision_score(y[:, c], s[:, c])
            assert ap[c] == pytest.approx(want, abs=1e-12), c
        else:
            assert math.isnan(ap[c])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No positive class found in y_true"
        macro = sklearn_metrics.average_precision_score(y, s, average="macro")
    # scikit-learn's convention: AP 0 for a label without positive, kept in the mean
    assert mean_average_precision(s, y, empty="zero") == pytest.approx(macro, abs=1e-12)
    assert mean_average_precision(s, y) == pytest.approx(np.nanmean(ap), abs=1e-12)
    assert mean_average_precision(s, y) > macro  # two labels fewer, not two zeros


def test_average_precision_of_tensors_and_logits():
    s, y = data()
    logits = torch.logit(torch.tensor(s / 2 + 0.1))  # a monotone map: the same ranking
    torch.testing.assert_close(
        torch.tensor(per_class_average_precision(logits, torch.tensor(y))),
        torch.tensor(per_class_average_precision(s, y)),
        equal_nan=True,
    )


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("threshold", [0.5, 0.9, "per-class"])
def test_f1_matches_sklearn(seed, threshold):
    s, y = data(seed=seed)
    if threshold == "per-class":
        threshold = np.linspace(0.3, 1.2, y.shape[1])
    pred = (s >= threshold).astype(int)
    got = f1_scores(s, y, threshold)
    for average in ("micro", "macro"):
        want = sklearn_metrics.f1_score(y, pred, average=average, zero_division=0)
        assert got[average] == pytest.approx(want, abs=1e-12), average
    want = sklearn_metrics.f1_score(y, pred, average=None, zero_division=0)
    np.testing.assert_allclose(got["per_class"], want, atol=1e-12)


def test_f1_zero_division_conventions_match_sklearn():
    s, y = data()
    s[:, -1] = 0.0  # the last label: no positive and no positive prediction (0/0)
    pred = (s >= 0.5).astype(int)
    assert pred[:, -1].sum() == 0 and pred[:, -2].sum() > 0  # label −2: predictions, no positive
    for zero_division in (0.0, 1.0, np.nan):
        got = f1_scores(s, y, 0.5, zero_division=zero_division)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per = sklearn_metrics.f1_score(y, pred, average=None, zero_division=zero_division)
            macro = sklearn_metrics.f1_score(y, pred, average="macro", zero_division=zero_division)
        np.testing.assert_allclose(got["per_class"], per, atol=1e-12)
        assert got["macro"] == pytest.approx(macro, abs=1e-12)
        assert got["per_class"][-2] == 0.0  # predictions without a positive: F1 0 whatever
    with pytest.raises(ValueError, match="`zero_division`"):
        f1_scores(s, y, zero_division=0.5)


def test_tuned_thresholds_maximise_validation_f1():
    s, y = data(seed=3)
    thr = tune_thresholds(s, y)
    for c in range(y.shape[1]):
        if not y[:, c].any():
            assert thr[c] == np.inf
            continue
        candidates = np.unique(s[:, c])
        best = max(
            sklearn_metrics.f1_score(y[:, c], (s[:, c] >= t).astype(int)) for t in candidates
        )
        chosen = sklearn_metrics.f1_score(y[:, c], (s[:, c] >= thr[c]).astype(int))
        assert chosen == pytest.approx(best, abs=1e-12)
        # the highest of the best thresholds
        ties = [
            t
            for t in candidates
            if sklearn_metrics.f1_score(y[:, c], (s[:, c] >= t).astype(int)) >= best - 1e-12
        ]
        assert thr[c] == max(ties)


def test_tuned_f1_applies_validation_thresholds_to_test():
    val_s, val_y = data(seed=4)
    test_s, test_y = data(seed=5)
    got = tuned_f1(val_s, val_y, test_s, test_y)
    thr = tune_thresholds(val_s, val_y)
    np.testing.assert_array_equal(got["thresholds"], thr)
    pred = (test_s >= thr).astype(int)
    for average in ("micro", "macro"):
        want = sklearn_metrics.f1_score(test_y, pred, average=average, zero_division=0)
        assert got[average] == pytest.approx(want, abs=1e-12)
    # tuned on validation, it beats one threshold for every label on the validation set itself
    assert tuned_f1(val_s, val_y, val_s, val_y)["macro"] >= f1_scores(val_s, val_y)["macro"]


def test_precision_at_k_against_a_loop():
    s, y = data(seed=6)
    for k in (1, 3, 5):
        want = np.mean(
            [y[i, np.argsort(-s[i], kind="stable")[:k]].sum() / k for i in range(len(y))]
        )
        assert precision_at_k(s, y, k) == pytest.approx(want)
    assert precision_at_k([[0.5, 0.5, 0.1]], [[0, 1, 0]], 1) == 0.0  # ties: lower index first
    with pytest.raises(ValueError, match="`k`"):
        precision_at_k(s, y, y.shape[1] + 1)


def test_shot_map_groups_labels_by_training_frequency():
    s, y = data(seed=7)
    train = [500, 300, 150, 101, 100, 60, 20, 19, 10, 3, 2, 1]
    ap = per_class_average_precision(s, y)
    regions = np.array(regions_of_counts(train))
    got = shot_map(s, y, train)
    assert got["head_map"] == pytest.approx(np.nanmean(ap[regions == "many"]))
    assert got["medium_map"] == pytest.approx(np.nanmean(ap[regions == "medium"]))
    assert got["tail_map"] == pytest.approx(np.nanmean(ap[regions == "few"]))  # 2 empty skipped
    assert math.isnan(shot_map(s, y, [1000] * 12)["tail_map"])  # no tail label
    with pytest.raises(ValueError, match="`train_counts`"):
        shot_map(s, y, train[:5])


def test_multilabel_metrics_are_json_ready_percentages():
    s, y = data(seed=8)
    val_s, val_y = data(seed=9)
    m = multilabel_metrics(s, y, [1000] * 12, val_scores=val_s, val_targets=val_y, ks=(1, 5, 50))
    assert json.loads(json.dumps(m)) == m
    assert m["map"] == pytest.approx(100 * mean_average_precision(s, y))
    assert m["p@5"] == pytest.approx(100 * precision_at_k(s, y, 5)) and "p@50" not in m
    assert m["tail_map"] is None and m["head_map"] == pytest.approx(m["map"])
    assert {"tuned_micro_f1", "tuned_macro_f1", "micro_f1", "macro_f1", "map_zero"} <= set(m)
    with pytest.raises(ValueError, match="`val_targets`"):
        multilabel_metrics(s, y, val_scores=val_s)


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), "`targets`"),
        (np.zeros(3), np.zeros(3), "`scores`"),
        (np.full((2, 2), np.nan), np.zeros((2, 2)), "`scores` to be free of NaN"),
        (np.zeros((2, 2)), [[0, 2], [1, 0]], "`targets`"),
    ],
)
def test_bad_input_is_a_clear_value_error(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        mean_average_precision(scores, targets)
    with pytest.raises(ValueError, match="`empty`"):
        mean_average_precision(np.zeros((2, 2)), np.zeros((2, 2)), empty="nan")


def test_per_label_thresholds_with_a_validation_set_and_bad_thresholds_said():
    """One threshold per label failed with a raw TypeError once a validation set was given (the
    labels it cannot tune keep their own threshold); a NaN threshold was called a bad shape."""
    s, y = data(seed=10)
    val_s, val_y = data(seed=11)  # the last two labels have no validation positive
    per = np.linspace(0.4, 0.9, 12)
    m = multilabel_metrics(s, y, threshold=per, val_scores=val_s, val_targets=val_y)
    tuned = tuned_f1(val_s, val_y, s, y, untuned=per)
    assert m["tuned_macro_f1"] == pytest.approx(100 * tuned["macro"])
    assert tuned["thresholds"][-2:].tolist() == per[-2:].tolist()  # untunable: their own
    assert m["macro_f1"] == pytest.approx(100 * f1_scores(s, y, per)["macro"])
    for bad, said in [
        (math.nan, "but got NaN"),
        ([0.5] * 5 + [math.nan] + [0.5] * 6, r"but got NaN at \[5\]"),
        ("0.5", "but got '0.5'"),
        (True, "but got True"),
        ([0.5, 0.5], r"but got shape \(2,\)"),
    ]:
        with pytest.raises(
            ValueError, match=rf"`threshold` to be a number or one per label.*{said}"
        ):
            f1_scores(s, y, bad)
    with pytest.raises(ValueError, match="`untuned`"):
        tune_thresholds(val_s, val_y, untuned=[1.0, 2.0])
