"""Tests for longtail.data: imbalance profiles and imbalanced subsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset

import longtail.data as ltdata
from longtail.data import (
    ImbalancedSubset,
    imbalance_counts,
    imbalanced_indices,
    imbalanced_subset,
)
from longtail.data.profiles import profile_counts


def reference_exp(n_max, num_classes, ratio):
    """The LDAM-DRW formula: img_max * imb_factor ** (i / (C - 1)), imb_factor = 1 / ratio."""
    out = []
    for i in range(num_classes):
        out.append(int(n_max * (1 / ratio) ** (i / (num_classes - 1.0))))
    return out


def balanced_targets(per_class, num_classes):
    """Labels 0, 1, ..., C-1, 0, 1, ... (interleaved, like a shuffled balanced dataset)."""
    return [i % num_classes for i in range(per_class * num_classes)]


# ---- imbalance_counts ------------------------------------------------------------------------
def test_cifar10_lt_exp_100():
    counts = imbalance_counts(5000, 10, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406


def test_cifar100_lt_exp_100_total():
    counts = imbalance_counts(500, 100, 100)
    assert sum(counts) == 10847
    assert counts[0] == 500 and counts[-1] == 5
    assert counts == reference_exp(500, 100, 100)


def test_fashion_mnist_lt_exp_100_total():
    counts = imbalance_counts(6000, 10, 100)
    assert sum(counts) == 14886
    assert counts == reference_exp(6000, 10, 100)


@pytest.mark.parametrize(("n_max", "c", "ratio"), [(5000, 10, 10), (500, 100, 50), (100, 7, 3.5)])
def test_exp_matches_reference_and_is_non_increasing(n_max, c, ratio):
    counts = imbalance_counts(n_max, c, ratio, "exp")
    assert counts == reference_exp(n_max, c, ratio)
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == n_max


def test_step_profile():
    assert imbalance_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert imbalance_counts(100, 5, 10, "step") == [100, 100, 10, 10, 10]  # floor(5 / 2) = 2 heads
    assert imbalance_counts(10, 2, 3, "step") == [10, 3]


def test_ratio_one_is_balanced_and_single_class():
    assert imbalance_counts(40, 6, 1) == [40] * 6
    assert imbalance_counts(40, 6, 1, "step") == [40] * 6
    assert imbalance_counts(40, 1, 100) == [40]
    assert imbalance_counts(40, 1, 100, "step") == [40]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((100, 10, 0.5), r"Expected `ratio` to be a finite number >= 1"),
        ((100, 10, float("inf")), r"Expected `ratio` to be a finite number >= 1"),
        ((100, 10, "10"), r"Expected `ratio`"),
        ((0, 10, 10), r"Expected `n_max` to be an integer >= 1"),
        ((10.5, 10, 10), r"Expected `n_max` to be an integer >= 1"),
        ((100, 0, 10), r"Expected `num_classes` to be an integer >= 1"),
        ((100, 10, 10, "linear"), r"Expected `profile` to be one of \('exp', 'step'\)"),
        (
            (10, 10, 100),
            r"every class keeps at least one example.*leaves classes \[5, 6, 7, 8, 9\]",
        ),
        ((10, 4, 11, "step"), r"every class keeps at least one example.*leaves classes \[2, 3\]"),
    ],
)
def test_imbalance_counts_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        imbalance_counts(*args)


# ---- imbalanced_indices ----------------------------------------------------------------------
def test_indices_follow_profile_and_are_sorted():
    targets = np.asarray(balanced_targets(100, 5))
    idx = imbalanced_indices(targets, ratio=10)
    assert idx.dtype == np.int64
    assert np.all(np.diff(idx) > 0)
    kept = np.bincount(targets[idx], minlength=5)
    assert kept.tolist() == imbalance_counts(100, 5, 10)


def test_indices_reference_selection():
    # independent re-computation: one default_rng(seed), classes in order, first k of permutation
    targets = np.asarray(balanced_targets(30, 4))
    counts = [30, 12, 5, 2]
    rng = np.random.default_rng(7)
    expected_idx = []
    for c, k in enumerate(counts):
        positions = [i for i, y in enumerate(targets) if y == c]
        expected_idx.extend(rng.permutation(positions)[:k].tolist())
    got = imbalanced_indices(targets, counts=counts, seed=7)
    assert got.tolist() == sorted(expected_idx)


def test_indices_seeds():
    targets = balanced_targets(50, 4)
    a = imbalanced_indices(targets, ratio=10, seed=1)
    b = imbalanced_indices(targets, ratio=10, seed=1)
    c = imbalanced_indices(targets, ratio=10, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(a) == len(c)


def test_indices_n_max_default_and_too_few_examples():
    targets = [0] * 40 + [1] * 60 + [2] * 30
    with pytest.raises(ValueError, match=r"Expected `counts\[0\]` to be at most 40.*60 requested"):
        imbalanced_indices(targets, ratio=2, profile="step")  # n_max defaults to 60
    idx = imbalanced_indices(targets, ratio=2, profile="step", n_max=30)
    assert np.bincount(np.asarray(targets)[idx]).tolist() == [30, 15, 15]


def test_id_like_labels_are_refused_with_the_way_out():
    with pytest.raises(ValueError, match=r"np.unique\(y, return_inverse=True\)"):
        ltdata.imbalanced_indices([0, 1, 10**9], ratio=2)


def test_indices_input_types_agree():
    targets = balanced_targets(20, 3)

    class WithTargets(Dataset):
        def __init__(self):
            self.targets = torch.tensor(targets)

        def __len__(self):
            return len(targets)

        def __getitem__(self, i):
            return i, targets[i]

    ref = imbalanced_indices(targets, ratio=4, seed=3)
    for form in (np.asarray(targets), torch.tensor(targets), tuple(targets), WithTargets()):
        np.testing.assert_array_equal(imbalanced_indices(form, ratio=4, seed=3), ref)


def test_indices_explicit_counts_allow_zero_and_num_classes():
    targets = balanced_targets(10, 3)
    idx = imbalanced_indices(targets, counts=[10, 0, 4])
    assert np.bincount(np.asarray(targets)[idx], minlength=3).tolist() == [10, 0, 4]
    with pytest.raises(ValueError, match=r"Expected `counts` to be of length 4"):
        imbalanced_indices(targets, counts=[10, 0, 4], num_classes=4)
    # num_classes larger than the labels present: the absent class cannot be given examples
    with pytest.raises(ValueError, match=r"Expected `counts\[3\]` to be at most 0"):
        imbalanced_indices(targets, ratio=2, num_classes=4)


@pytest.mark.parametrize(
    ("targets", "kwargs", "match"),
    [
        (
            [0, 1, 1],
            {},
            r"Expected `ratio` or `counts` to be given \(exactly one of them\).*neither",
        ),
        ([0, 1, 1], {"ratio": 2, "counts": [1, 1]}, r"Expected `ratio` or `counts`.*both"),
        ([0, 1, 1], {"counts": [2, 1]}, r"Expected `counts\[0\]` to be at most 1.*2 requested"),
        ([0, 1, 1], {"counts": [1, 1.5]}, r"Expected `counts` to be whole numbers"),
        ([0, 1, 1], {"counts": [1, -1]}, r"Expected `counts` to be non-negative"),
        ([0, 1, 1], {"counts": [1]}, r"Expected `counts` to be of length 2"),
        ([0, -1], {"ratio": 2}, r"Expected `targets` to be non-negative class labels"),
        ([0.5, 1.0], {"ratio": 2}, r"Expected `targets` to be integer class labels"),
        ([], {"ratio": 2}, r"Expected `targets` to be a non-empty 1-D"),
        ([0, 1, 1], {"ratio": 0.5}, r"Expected `ratio` to be a finite number >= 1"),
        ([0, 1, 1], {"ratio": 2, "profile": "zipf"}, r"Expected `profile` to be one of"),
        ([0, 1, 1], {"ratio": 2, "seed": "0"}, r"Expected `seed` to be an integer"),
        ([0, 1, 1], {"ratio": 2, "num_classes": 0}, r"Expected `num_classes` to be an integer"),
        ([0, 1, 5], {"ratio": 2, "num_classes": 3}, r"Expected `targets` to be labels in \[0, 2\]"),
    ],
)
def test_indices_bad_input(targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        imbalanced_indices(targets, **kwargs)


# ---- imbalanced_subset -----------------------------------------------------------------------
class ToyDataset(Dataset):
    """A balanced labelled dataset: item i is (tensor([i]), label)."""

    def __init__(self, per_class=100, num_classes=5, with_targets=True):
        labels = balanced_targets(per_class, num_classes)
        self._labels = labels
        if with_targets:
            self.targets = list(labels)

    def __len__(self):
        return len(self._labels)

    def __getitem__(self, i):
        return torch.tensor([float(i)]), self._labels[i]


def test_subset_cifar_like():
    ds = ToyDataset(per_class=500, num_classes=10)
    sub = imbalanced_subset(ds, ratio=100, n_max=500, seed=0)
    assert isinstance(sub, ImbalancedSubset) and isinstance(sub, Subset)
    assert sub.class_counts == imbalance_counts(500, 10, 100)
    assert len(sub) == sum(sub.class_counts)
    assert len(sub.targets) == len(sub)
    assert all(isinstance(t, int) for t in sub.targets)
    for j in (0, 1, len(sub) - 1):
        x, y = sub[j]
        assert y == sub.targets[j] == ds.targets[int(x.item())]
    np.testing.assert_array_equal(
        sub.indices, imbalanced_indices(ds.targets, ratio=100, n_max=500, seed=0)
    )


def test_subset_without_targets_attribute_reads_items():
    a = imbalanced_subset(ToyDataset(with_targets=False), ratio=10, seed=4)
    b = imbalanced_subset(ToyDataset(with_targets=True), ratio=10, seed=4)
    assert list(a.indices) == list(b.indices)
    assert a.targets == b.targets and a.class_counts == b.class_counts


def test_subset_reads_dict_items_and_names_a_missing_key():
    class Dicts(torch.utils.data.Dataset):  # one dict per example, the Hugging Face style
        def __init__(self, key):
            self.key, self.base = key, ToyDataset(with_targets=False)

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            x, y = self.base[i]
            return {"x": x, self.key: y}

    want = imbalanced_subset(ToyDataset(with_targets=True), ratio=10, seed=4)
    for key in ("label", "labels"):
        got = imbalanced_subset(Dicts(key), ratio=10, seed=4)
        assert list(got.indices) == list(want.indices) and got.targets == want.targets
    with pytest.raises(ValueError, match=r"dict items with a 'label'.*keys \['x', 'target'\]"):
        imbalanced_subset(Dicts("target"), ratio=10)


def test_subset_explicit_counts_and_step_profile():
    ds = ToyDataset(per_class=20, num_classes=4)
    sub = imbalanced_subset(ds, None, counts=[20, 5, 0, 1])
    assert sub.class_counts == [20, 5, 0, 1]
    step = imbalanced_subset(ds, 4, profile="step")
    assert step.class_counts == [20, 20, 5, 5]


def test_subset_is_a_dataset_for_samplers_and_loaders():
    from longtail.weighting import ClassBalancedSampler

    sub = imbalanced_subset(ToyDataset(per_class=50, num_classes=4), ratio=10)
    sampler = ClassBalancedSampler(sub, seed=0)  # reads sub.targets
    assert sampler.class_counts.tolist() == sub.class_counts
    loader = DataLoader(sub, batch_size=16, sampler=sampler)
    ys = torch.cat([y for _, y in loader])
    assert len(ys) == len(sub)
    # a nested subset works too
    nested = imbalanced_subset(sub, None, counts=[10, 5, 3, 5])
    assert nested.class_counts == [10, 5, 3, 5]
    assert "ImbalancedSubset" in repr(nested)


def test_subset_bad_dataset():
    with pytest.raises(ValueError, match=r"Expected `dataset` to be a dataset with a `.targets`"):
        imbalanced_subset(object(), ratio=2)
    with pytest.raises(ValueError, match=r"Expected `ratio` to be a finite number >= 1"):
        imbalanced_subset(ToyDataset(), ratio=0)


def test_package_exports():
    assert set(ltdata.__all__) >= {
        "PROFILES",
        "ImbalancedSubset",
        "imbalance_counts",
        "imbalanced_indices",
        "imbalanced_subset",
    }
    for name in ltdata.__all__:
        assert hasattr(ltdata, name)


def test_a_short_class_error_says_what_to_do():
    """With `ratio`, class 0 is the head: the error names the helper that puts the largest
    class first, as the command line does. Labels that are not 0..C-1 leave empty classes:
    the error lists the labels present and says to renumber them."""
    unequal = torch.tensor([0] * 30 + [1] * 100 + [2] * 60)
    with pytest.raises(ValueError, match=r"at most 30.*100 requested\. With `ratio`.*counts"):
        imbalanced_indices(unequal, ratio=5)
    counts, order, _ = profile_counts([30, 100, 60], 5, "exp")
    assert order[0] == 1 and len(imbalanced_indices(unequal, counts=counts)) == sum(counts)
    sparse = torch.tensor([3] * 30 + [7] * 100 + [42] * 60)
    with pytest.raises(ValueError, match=r"labels present are \[3, 7, 42\]: renumber"):
        imbalanced_indices(sparse, ratio=5)
