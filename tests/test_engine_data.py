"""The training set a run builds: head order, default head size, the natural profile, and the
validation split held out before the profile (issue: defaults that work on any labelled data)."""

from __future__ import annotations

import warnings
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
    """The default head size by trying every size: of the sizes whose profile fits, the largest
    whose counts' n_max / n_min is within 1 % of ``ratio``, else the largest (0: none fits)."""
    from longtail.data.profiles import imbalance_counts

    order = sorted(range(len(available)), key=lambda c: (-available[c], c))
    fits, exact = 0, 0
    for n in range(1, max(available) + 1):
        try:
            want = imbalance_counts(n, len(available), ratio, profile)
        except ValueError:
            continue
        if all(w <= available[c] for w, c in zip(want, order, strict=True)):
            fits = n
            if abs(max(want) / min(want) - ratio) <= 0.01 * ratio:
                exact = n
    return exact or fits


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
            with pytest.raises(ValueError, match="needs a head of at least"):
                largest_n_max(available, ratio, profile)
        else:
            assert largest_n_max(available, ratio, profile) == want


def test_the_issue_example_unequal_classes_train_with_the_default_n_max(tmp_path):
    # classes of 128..133 examples failed with "counts[0] to be at most 128 ... 133 requested"
    sizes = [128, 133, 130, 129]
    npz = write_unequal(tmp_path / "unequal.npz", sizes)
    d = prepare_data(cfg(npz, ratio=10.0))
    assert d["head_order"] == [1, 2, 3, 0]
    # 133 and 132 would give a tail of int(13.3) = 13: ratios 10.2 and 10.15; 131 / 13 = 10.08
    assert d["n_max"] == 131
    counts = d["counts"].tolist()
    assert counts[1] == 131  # the largest class is the head
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
    # 90 fits but gives a tail of int(90 / 4) = 22 (ratio 4.09); 88 gives 22 exactly 4
    assert rec["data"]["n_max"] == 88
    assert rec["classes"] == [3, 7, 11]
    assert rec["class_counts"] == [22, 88, 44]
    assert rec["data"]["imbalance_ratio"] == 4.0
    assert rec["config"]["ratio"] == 4.0
    assert rec["eval_split"] == "test"


def test_an_n_max_too_large_names_the_class_and_the_largest_that_fits(tmp_path):
    npz = write_unequal(tmp_path / "u.npz", [40, 90, 60])
    with pytest.raises(ValueError, match="gives ratio 4 is 88, the default; up to 90 fit"):
        prepare_data(cfg(npz, ratio=4.0, n_max=95))
    with pytest.raises(ValueError, match=r"asks 50 of class 0"):
        profile_counts([40, 90, 60], 1.0, "exp", n_max=50)
    # sizes 11..18 fit [30, 5, 2] but round its tail to another ratio: the message points to
    # the size that gives ratio 10 (what the default picks), not merely the largest that fits
    with pytest.raises(ValueError, match=r"gives ratio 10 is 10, the default; up to 18 fit"):
        profile_counts([30, 5, 2], 10.0, "exp", n_max=25)
    assert profile_counts([30, 5, 2], 10.0, "exp")[2] == 10
    with pytest.raises(ValueError, match=r"the largest n_max that fits is 20, the default\)"):
        profile_counts([20, 6, 2], 10.0, "exp", n_max=25)


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


def test_a_head_size_the_data_cannot_give_names_the_source_labels(tmp_path):
    """The profile's message counts classes 0..C-1; with labels {3, 7, 42} it says which label
    each class is (a stranger read "class 0" as label 0)."""
    npz = write_unequal(tmp_path / "l.npz", [60, 40, 5], labels=[3, 7, 42])
    with pytest.raises(ValueError, match=r"\(class 0 is 3, 1 is 7, 2 is 42 of the source data\)"):
        prepare_data(cfg(npz, ratio=10.0, n_max=500))
    plain = write_unequal(tmp_path / "p.npz", [60, 40, 5])
    with pytest.raises(ValueError) as err:
        prepare_data(cfg(plain, ratio=10.0, n_max=500))
    assert "source data" not in str(err.value)


def test_train_says_what_it_trains_on(tmp_path, capsys):
    """A long-tailed set cut again by the default exp profile loses examples: train says how
    many it keeps of how many, per class, and how to keep them all; a natural run says it keeps
    all (a stranger lost half a class to the default profile without a word on the terminal)."""
    npz = write_unequal(tmp_path / "u.npz", [40, 90, 10])
    train(cfg(npz, ratio=4.0, epochs=1), None, progress=True)
    err = capsys.readouterr().err
    d = prepare_data(cfg(npz, ratio=4.0))
    kept = d["counts"].tolist()
    assert sum(kept) < 140
    shown = ", ".join(map(str, kept))
    assert f"training on {sum(kept)} of 140 examples (per class {shown}: exp profile" in err
    assert "--profile natural keeps them all" in err
    train(cfg(npz, profile="natural", ratio=1.0, epochs=1), None, progress=True)
    err = capsys.readouterr().err
    assert "training on all 140 examples (per class 40, 90, 10: the data's own profile)" in err
    train(cfg(npz, profile="natural", ratio=1.0, epochs=1), None, progress=False)
    assert "training on" not in capsys.readouterr().err  # a progress line


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


# ---- the ratio trained on is the ratio asked for (issue: small data, stranger's report) -------
@pytest.mark.parametrize("per_class", [6000, 5500])  # Fashion-MNIST, and less 500 validation
@pytest.mark.parametrize("profile", ["exp", "step"])
@pytest.mark.parametrize("ratio", [100.0, 10.0])
def test_fashion_mnist_head_sizes_are_unchanged(per_class, profile, ratio):
    # the identities of the existing runs: the whole class is the head, as before
    assert largest_n_max([per_class] * 10, ratio, profile) == per_class
    counts, _, n_max = profile_counts([per_class] * 10, ratio, profile)
    assert n_max == per_class
    assert counts[0] == per_class and min(counts) == int(per_class / ratio)
    assert counts[0] / min(counts) == ratio


def test_the_default_head_realizes_the_requested_ratio():
    # classes of 27, 13, 6: head 27 gave counts 27 / 13 / 6 (ratio 4.5); 24 gives 24 / 12 / 6
    assert largest_n_max([27, 13, 6], 4.0) == 24
    counts, _, n_max = profile_counts([27, 13, 6], 4.0)
    assert (counts, n_max) == ([24, 12, 6], 24)
    # classes of 24, 10, 4 and ratio 10: head 24 gave 24 / 7 / 2 (ratio 12); 20 gives 20 / 6 / 2
    assert profile_counts([24, 10, 4], 10.0)[0] == [20, 6, 2]
    # with unequal classes, the head still goes to the largest
    assert profile_counts([6, 13, 27], 4.0)[0] == [6, 12, 24]


def test_a_ratio_no_head_realizes_warns_and_the_record_keeps_the_realized_one(tmp_path):
    # classes of 3, 2, 1 and ratio 1.5: the heads that fit are 2 (counts 2 / 1 / 1) and none
    # other, so the ratio trained on is 2
    with pytest.warns(UserWarning, match=r"realized imbalance ratio is 2, not 1.5"):
        counts, _, n_max = profile_counts([3, 2, 1], 1.5)
    assert (counts, n_max) == ([2, 1, 1], 2)
    npz = write_unequal(tmp_path / "tiny.npz", [3, 2, 1])
    with pytest.warns(UserWarning, match="no head size that the data can give realizes it"):
        rec = train(cfg(npz, ratio=1.5), None, progress=False)
    assert rec["class_counts"] == [2, 1, 1]
    assert rec["data"]["imbalance_ratio"] == 2.0  # realized
    assert rec["config"]["ratio"] == 1.5  # requested
    # a head size that realizes the ratio gives no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile_counts([27, 13, 6], 4.0)


def test_no_head_fits_says_why_and_what_the_data_allows():
    with pytest.raises(ValueError) as err:
        largest_n_max([24, 10, 4], 100.0)
    msg = str(err.value)
    assert "not even a head of one example" not in msg
    # int(n * (1 / 100)) >= 1 from n = 100 on
    assert "the largest class has 24 examples" in msg
    assert "needs a head of at least 100 examples so that the tail class keeps one" in msg
    assert "natural profile (ratio 6.0 here; train --profile natural" in msg  # 24 / 4
    assert "bench --settings natural" in msg
    assert "train --ratio 24, bench --settings exp24" in msg and "--n-max" in msg
    # the ratio named is one the data allows, and the next is not
    assert profile_counts([24, 10, 4], 24.0)[0] == [24, 4, 1]
    with pytest.raises(ValueError, match="needs a head of at least 25"):
        largest_n_max([24, 10, 4], 25.0)
    # the head is large enough, but a class between head and tail is too small: 100 asks
    # int(100 * 0.1) = 10 of the second class, which has 3; ratio 15 (counts 15 / 3 / 1) fits
    with pytest.raises(ValueError) as err:
        largest_n_max([200, 3, 3], 100.0)
    msg = str(err.value)
    assert "asks 10 examples of class 1 (position 1 of the profile), which has 3" in msg
    assert "at most 15 for" in msg and "ratio 66.7 here" in msg
    assert profile_counts([200, 3, 3], 15.0)[0] == [15, 3, 1]
    with pytest.raises(ValueError, match="needs a head of at least"):
        largest_n_max([200, 3, 3], 16.0)
    # a class without an example can be in no profile
    with pytest.raises(ValueError, match="class 1 has no example"):
        largest_n_max([200, 0, 150], 4.0)


def test_no_head_fits_on_the_command_line(tmp_path, capsys):
    npz = write_unequal(tmp_path / "small.npz", [24, 10, 4])
    args = ["train", "--dataset", npz, "--preset", "smoke", "--epochs", "1", "--no-progress"]
    assert cli_main([*args, "--out", str(tmp_path / "run1")]) == 2
    err = capsys.readouterr().err
    assert "the largest class has 24 examples" in err and "--profile natural" in err


def test_a_single_class_is_refused_before_anything_is_written(tmp_path):
    npz = write_unequal(tmp_path / "one.npz", [40], labels=[5])
    with pytest.raises(ValueError, match=r"at least 2 classes.*1 class \(5 of the source data\)"):
        train(cfg(npz, profile="natural", ratio=1.0), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_labels_that_mean_other_classes_are_other_data(tmp_path):
    """The same images and label pattern, with labels 0..2 in one file and 10, 20, 30 in
    another: the tensors a run trains on are the same after renumbering, but the classes are
    not, so the fingerprints differ (and a run of one is never taken for a run of the other).
    Labels 0..K-1 add nothing: their fingerprint is that of the tensors alone."""
    from longtail.engine.run import fingerprint

    plain = write_unequal(tmp_path / "a.npz", [30, 20, 10])
    other = write_unequal(tmp_path / "b.npz", [30, 20, 10], labels=[10, 20, 30])
    a, b = prepare_data(cfg(plain, ratio=3.0)), prepare_data(cfg(other, ratio=3.0))
    assert torch.equal(a["y_train"], b["y_train"]) and b["classes"] == [10, 20, 30]
    assert a["fingerprint"] != b["fingerprint"]
    tensors = (a["x_train"], a["y_train"], a["x_test"], a["y_test"])
    assert a["fingerprint"] == fingerprint(*tensors)


def test_val_per_class_names_the_smallest_class_and_warns_when_it_takes_most_of_one(tmp_path):
    npz = write_unequal(tmp_path / "u.npz", [60, 50, 45, 40, 20])
    with pytest.raises(ValueError, match=r"smallest class, 4 .*20 training examples.*at most 19"):
        prepare_data(cfg(npz, profile="natural", ratio=1.0, val_per_class=30))
    with pytest.warns(UserWarning, match=r"more than half of class 4 .*1 left to train on"):
        data = prepare_data(cfg(npz, profile="natural", ratio=1.0, val_per_class=19))
    assert data["counts"].tolist() == [41, 31, 26, 21, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a modest split is quiet
        prepare_data(cfg(npz, profile="natural", ratio=1.0, val_per_class=5))
