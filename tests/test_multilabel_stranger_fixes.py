"""What a stranger found training long-tailed multi-label models on their own data: each test
fails on the code before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import longtail.functional as LF
from longtail.engine.multilabel import get_multilabel_method
from longtail.engine.multilabel.config import check_method_on_data


def test_dexml_refuses_label_smoothed_targets_that_leave_no_negative():
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    hard = (torch.rand(6, 4) < 0.4).double()
    hard[:, 0] = 1
    smoothed = hard * 0.9 + 0.05  # no entry 0 anywhere
    with pytest.raises(ValueError, match=r"no entry 0 .*label smoothing"):
        LF.decoupled_softmax_loss(z, smoothed)
    soft = hard * 0.7  # soft positives beside exact-0 negatives: a weighted loss, as before
    loss = LF.decoupled_softmax_loss(z, soft)
    (g,) = torch.autograd.grad(loss, z)
    assert loss.item() > 0 and g.abs().sum() > 0


def test_dexml_with_one_label_is_refused_before_training():
    with pytest.raises(ValueError, match="data of one label"):
        check_method_on_data(get_multilabel_method("dexml"), [30], 100, ["cat"], {})
    check_method_on_data(get_multilabel_method("bce"), [30], 100, ["cat"], {})


def test_db_on_a_label_in_every_example_names_the_label_and_the_way_out():
    for method in ("db", "db-cas"):
        with pytest.raises(ValueError, match=r"ntr=false.*'cat' positive in every one"):
            check_method_on_data(get_multilabel_method(method), [300, 40], 300, ["cat", "owl"], {})
    spec = get_multilabel_method("db")
    check_method_on_data(spec, [300, 40], 300, ["cat", "owl"], {"ntr": False})
    check_method_on_data(spec, [299, 40], 300, ["cat", "owl"], {})


def test_train_refuses_db_on_such_data_before_writing(tmp_path, capsys):
    from longtail.cli import main

    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.uint8)
    y[:, 0] = 1  # label 0 in every training example
    x = rng.integers(0, 255, size=(60, 8, 8)).astype(np.uint8)
    path = tmp_path / "allpos.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    out = tmp_path / "run"
    argv = ["train", "--task", "multilabel", "--dataset", str(path), "--method", "db"]
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 2
    assert "ntr=false" in capsys.readouterr().err
    assert not (out / "config.json").exists()


def test_a_label_without_a_validation_positive_keeps_the_fixed_threshold():
    from longtail.metrics_multilabel import multilabel_metrics, tune_thresholds

    rng = np.random.default_rng(1)
    val_s, test_s = rng.random((20, 3)), rng.random((40, 3))
    val_y = (rng.random((20, 3)) < 0.4).astype(int)
    val_y[:, 2] = 0  # label 2: no validation positive
    test_y = (rng.random((40, 3)) < 0.4).astype(int)
    assert np.isinf(tune_thresholds(val_s, val_y)[2])  # the function's documented default
    m = multilabel_metrics(test_s, test_y, val_scores=val_s, val_targets=val_y, threshold=0.5)
    thr = tune_thresholds(val_s, val_y, untuned=0.5)
    want = f1_scores_at(test_s, test_y, thr)
    assert m["tuned_macro_f1"] == pytest.approx(100 * want)
    assert thr[2] == 0.5  # label 2 is predicted at the fixed threshold, not never


def f1_scores_at(s, y, thr):
    from sklearn.metrics import f1_score

    return f1_score(y, (s >= thr).astype(int), average="macro", zero_division=0)


def test_the_report_names_labels_whose_threshold_was_not_tuned():
    from longtail.bench.multilabel import multilabel_markdown

    rec = {
        "task": "multilabel", "bench": "multilabel", "method": "bce", "dataset": "d.npz",
        "seed": 0, "epochs": 2, "eval_split": "test",
        "config": {"method": "bce", "epochs": 2, "threshold": 0.5, "seed": 0},
        "label_names": ["cat", "owl"], "label_counts": [30, 5], "val_label_counts": [4, 0],
        "data": {"fingerprint": "f", "val_size": 10, "test_size": 20},
        "metrics": {"map": 50.0, "tail_map": 40.0},
    }  # fmt: skip
    text = multilabel_markdown([rec])
    assert "No validation positive for owl: nothing to tune its threshold on" in text
