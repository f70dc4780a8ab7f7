"""The training set a run builds: head order, default head size, the natural profile, and the
validation split held out before the profile (issue: defaults that work on any labelled data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from longtail.cli import main as cli_main
from longtail.data.profiles import head_order, largest_n_max, profile_counts
from longtail.engine import TrainConfig, make_config, train
from longtail.engine.run import config_identity
from longtail.engine.train import prepare_data


def write_unequal(path: Path, sizes: list[int], labels: list[int] | None = None) -> str:
    """Images whose classes have ``sizes`` training examples (labels ``labels``), 3 test each."""
    labels = labels or list(range(len(sizes)))
    rng = np.random.default_rng(0)
    y = np.repeat(np.asarray(labels), sizes).astype(np.int64)
    y_test = np.repeat(np.asarray(labels), 3).astype(np.int64)
    np.savez(
        path,
        x_train=rng.integers(0, 255, (len(y), 1, 6, 6)).astype(np.uint8),
        y_train=y,
        x_test=rng.integers(0, 255, (len(y_test), 1, 6, 6)).astype(np.uint8),
        y_test=y_test,
    )
    return str(path)


def cfg(npz: str, **kw) -> TrainConfig:
    base = dict(
        dataset=npz,
        model="small-cnn",
        width=2,
        epochs=1,
        batch_size=32,
        padding=1,
        threads=1,
        eval_batch_size=64,
        warmup_epochs=0,
        lr_steps=(),
        drw_epoch=0,
    )
    return TrainConfig(**{**base, **kw})


def brute_n_max(available, ratio, profile):
    """The largest head size whose profile fits, by trying every size."""
    order = sorted(range(len(available)), key=lambda c: (-available[c], c))
    best = 0
    for n in range(1, max(available) + 1):
        from longtail.data.profiles import imbalance_counts

        try:
            want = imbalance_counts(n, len(available), ratio, profile)
        except ValueError:
            continue
        if all(w <= available[c] for w, c in zip(want, order, strict=True)):
            best = n
    return best


def test_head_order_is_largest_first_ties_by_label():
    assert head_order([5, 9, 9, 2]) == [1, 2, 0, 3]
    assert head_order([7, 7, 7]) == [0, 1, 2]


@pytest.mark.parametrize("profile", ["exp", "step"])
@pytest.mark.parametrize("ratio", [1.0, 2.0, 10.0, 100.0])
def test_largest_n_max_matches_brute_force(profile, ratio):
    rng = np.random.default_rng(int(ratio) + len(profile))
    for _ in range(20):
        available = rng.integers(1, 200, size=int(rng.integers(2, 7))).tolist()
        want = brute_n_max(available, ratio, profile)
        if want == 0:
            with pytest.raises(ValueError, match="none fits"):
                largest_n_max(available, ratio, profile)
        else:
            assert largest_n_max(available, ratio, profile) == want


def test_the_issue_example_unequal_classes_train_with_the_default_n_max(tmp_path):
    # classes of 128..133 examples failed with "counts[0] to be at most 128 ... 133 requested"
    sizes = [128, 133, 130, 129]
    npz = write_unequal(tmp_path / "unequal.npz", sizes)
    d = prepare_data(cfg(npz, ratio=10.0))
    assert d["head_order"] == [1, 2, 3, 0]
    assert d["n_max"] == 133
    counts = d["counts"].tolist()
    assert counts[1] == 133  # the largest class is the head
    assert all(c <= s for c, s in zip(counts, sizes, strict=True))
    assert sorted(counts, reverse=True) == [counts[c] for c in d["head_order"]]
    assert torch.bincount(d["y_train"], minlength=4).tolist() == counts
    # a balanced profile: the smallest class decides the head size
    flat = prepare_data(cfg(npz, ratio=1.0))
    assert flat["counts"].tolist() == [128] * 4


def test_record_stores_head_order_n_max_and_ratio(tmp_path):
    npz = write_unequal(tmp_path / "u.npz", [40, 90, 60], labels=[3, 7, 11])
    rec = train(cfg(npz, ratio=4.0), None, progress=False)
    assert rec["data"]["head_order"] == [1, 2, 0]
    assert rec["data"]["n_max"] == 90
    assert rec["classes"] == [3, 7, 11]
    assert rec["class_counts"][1] == 90 and rec["class_counts"][0] == 22  # int(90 / 4)
    assert rec["data"]["imbalance_ratio"] == pytest.approx(90 / 22)
    assert rec["eval_split"] == "test"


def test_an_n_max_too_large_names_the_class_and_the_largest_that_fits(tmp_path):
    npz = write_unequal(tmp_path / "u.npz", [40, 90, 60])
    with pytest.raises(ValueError, match="largest n_max that fits is 90"):
        prepare_data(cfg(npz, ratio=4.0, n_max=95))
    with pytest.raises(ValueError, match=r"asks 50 of class 0"):
        profile_counts([40, 90, 60], 1.0, "exp", n_max=50)


def test_natural_profile_keeps_every_example_and_reports_its_ratio(tmp_path):
    npz = write_unequal(tmp_path / "nat.npz", [40, 90, 10])
    d = prepare_data(make_config("quick", dataset=npz, profile="natural"))
    assert d["counts"].tolist() == [40, 90, 10]
    assert d["imbalance_ratio"] == 9.0
    assert d["head_order"] == [1, 0, 2]
    rec = train(cfg(npz, profile="natural", ratio=1.0), None, progress=False)
    assert rec["class_counts"] == [40, 90, 10] and rec["data"]["imbalance_ratio"] == 9.0
    with pytest.raises(ValueError, match="natural profile"):
        make_config("quick", dataset=npz, profile="natural", ratio=10.0)
    with pytest.raises(ValueError, match="natural profile"):
        make_config("quick", dataset=npz, profile="natural", n_max=20)


def test_natural_profile_on_the_command_line(tmp_path, capsys):
    npz = write_unequal(tmp_path / "nat.npz", [40, 90, 10])
    args = [
        "train",
        "--dataset",
        npz,
        "--profile",
        "natural",
        "--model",
        "small-cnn",
        "--width",
        "2",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert cli_main(args) == 0
    assert "natural" in capsys.readouterr().out


def test_validation_split_is_balanced_held_out_and_never_the_test_set(tmp_path):
    npz = write_unequal(tmp_path / "v.npz", [50, 50, 50])
    d = prepare_data(cfg(npz, ratio=5.0, val_per_class=10))
    assert d["eval_split"] == "validation"
    assert torch.bincount(d["y_test"]).tolist() == [10, 10, 10]  # balanced validation
    assert d["n_max"] == 40  # the head of the profile is cut from what is left
    assert d["counts"].tolist() == [40, 17, 8]
    # no validation image is a training image (images are random, so equal bytes = same image)
    train_rows = {bytes(r) for r in d["x_train"].reshape(len(d["x_train"]), -1).numpy()}
    val_rows = {bytes(r) for r in d["x_test"].reshape(len(d["x_test"]), -1).numpy()}
    assert not train_rows & val_rows
    # and the test set is not what it evaluates on
    test = prepare_data(cfg(npz, ratio=5.0))
    assert not torch.equal(test["x_test"], d["x_test"][: len(test["x_test"])])
    assert d["fingerprint"] != test["fingerprint"]
    rec = train(cfg(npz, ratio=5.0, val_per_class=10, eval_every=1), tmp_path / "r", progress=False)
    assert rec["eval_split"] == "validation" and rec["data"]["test_size"] == 30
    log = (tmp_path / "r" / "log.jsonl").read_text()
    assert '"val"' in log and '"test"' not in log
    with pytest.raises(ValueError, match="val_per_class"):
        prepare_data(cfg(npz, ratio=5.0, val_per_class=50))


def test_val_per_class_zero_keeps_the_identity_of_older_records():
    c = make_config("quick").to_dict()
    assert "val_per_class" not in config_identity(c)
    assert config_identity(make_config("quick", val_per_class=5).to_dict())["val_per_class"] == 5
