"""Tests for longtail.weighting: class weights, DRW, class-balanced and deferred samplers."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from longtail.weighting import (
    WEIGHT_SCHEMES,
    ClassBalancedSampler,
    DeferredResampler,
    DeferredReweighting,
    class_weights,
)

COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # CIFAR-10-LT, ratio 100


def reference_weights(counts, scheme, beta=0.9999):
    """The formulas again, as a plain Python loop (float64)."""
    raw = []
    for n in counts:
        if scheme == "inverse":
            raw.append(1.0 / n)
        elif scheme == "sqrt-inverse":
            raw.append(1.0 / math.sqrt(n))
        elif scheme == "effective":
            raw.append((1.0 - beta) / (1.0 - beta**n))
        else:
            raw.append(1.0)
    total = sum(raw)
    return [w * len(counts) / total for w in raw]


def long_tailed_targets(counts):
    return [c for c, n in enumerate(counts) for _ in range(n)]


# ---- class_weights ---------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["inverse", "sqrt-inverse", "effective", "none", "uniform"])
def test_class_weights_match_reference(scheme):
    w = class_weights(COUNTS, scheme=scheme)
    assert w.dtype == torch.float32 and w.shape == (10,) and w.device.type == "cpu"
    ref = torch.tensor(reference_weights(COUNTS, scheme), dtype=torch.float32)
    torch.testing.assert_close(w, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scheme", WEIGHT_SCHEMES)
@pytest.mark.parametrize("beta", [0.0, 0.9, 0.999, 0.9999, 1.0])
def test_all_schemes_sum_to_num_classes(scheme, beta):
    w = class_weights(COUNTS, scheme=scheme, beta=beta)
    assert float(w.sum()) == pytest.approx(len(COUNTS), rel=1e-6)
    assert (w > 0).all()


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
def test_effective_matches_reference_for_several_betas(beta):
    ref = torch.tensor(reference_weights(COUNTS, "effective", beta), dtype=torch.float32)
    torch.testing.assert_close(class_weights(COUNTS, "effective", beta), ref)


def test_effective_beta_zero_is_uniform():
    torch.testing.assert_close(class_weights(COUNTS, "effective", 0.0), torch.ones(10))
    torch.testing.assert_close(
        class_weights(COUNTS, "effective", 0.0), class_weights(COUNTS, "none")
    )


@pytest.mark.parametrize("scheme", ["none", "uniform"])
def test_uniform_schemes_take_an_absent_class(scheme):
    torch.testing.assert_close(class_weights([60, 30, 9, 0], scheme), torch.ones(4))
    drw = DeferredReweighting([60, 30, 9, 0], start_epoch=1, scheme=scheme)
    torch.testing.assert_close(drw.weights(1), torch.ones(4))
    for other in ("inverse", "sqrt-inverse", "effective"):  # these divide by a function of n
        with pytest.raises(ValueError, match=r"zero count makes this quantity infinite"):
            class_weights([60, 30, 9, 0], other, beta=0.0 if other == "effective" else 0.9999)


def test_effective_beta_to_one_tends_to_inverse():
    inverse = class_weights(COUNTS, "inverse")
    torch.testing.assert_close(class_weights(COUNTS, "effective", 1.0), inverse)
    close = class_weights(COUNTS, "effective", 1.0 - 1e-9)
    torch.testing.assert_close(close, inverse, rtol=1e-4, atol=1e-6)
    # and it moves monotonically towards inverse as β grows
    gaps = [
        float((class_weights(COUNTS, "effective", b) - inverse).abs().max())
        for b in (0.9, 0.99, 0.999, 0.9999)
    ]
    assert gaps == sorted(gaps, reverse=True)


def test_effective_needs_float64():
    # β^n with β = 0.9999 and n = 5000 vs 50: float32 would lose the small-class weight's digits
    counts = [1_000_000, 10]
    w = class_weights(counts, "effective", 0.9999)
    ref = reference_weights(counts, "effective", 0.9999)
    assert w.tolist() == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("scheme", WEIGHT_SCHEMES)
def test_equal_counts_give_ones(scheme):
    torch.testing.assert_close(class_weights([7, 7, 7, 7], scheme), torch.ones(4))


def test_inverse_ratios():
    w = class_weights([100, 10, 1], "inverse")
    assert float(w[2] / w[0]) == pytest.approx(100.0)
    w = class_weights([100, 25], "sqrt-inverse")
    assert float(w[1] / w[0]) == pytest.approx(2.0)


def test_accepts_tensor_and_numpy_counts():
    ref = class_weights(COUNTS)
    torch.testing.assert_close(class_weights(torch.tensor(COUNTS)), ref)
    torch.testing.assert_close(class_weights(np.array(COUNTS, dtype=np.int64)), ref)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"counts": [10, 0, 3]},
            r"Expected `counts` to be positive .*zero counts for 1 of \d+ classes: \[1\]",
        ),
        ({"counts": [10, -1]}, r"Expected `counts` to be non-negative"),
        ({"counts": []}, r"Expected `counts` to be a non-empty 1-D"),
        ({"counts": [[1, 2]]}, r"Expected `counts` to be a non-empty 1-D"),
        ({"counts": [1, 2], "scheme": "focal"}, r"Expected `scheme` to be one of .*'focal'"),
        ({"counts": [1, 2], "beta": 1.5}, r"Expected `beta` to be a number in \[0.0, 1.0\]"),
        ({"counts": [1, 2], "beta": -0.1}, r"Expected `beta` to be a number in \[0.0, 1.0\]"),
        ({"counts": [1, 2], "beta": float("nan")}, r"Expected `beta`"),
    ],
)
def test_class_weights_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_weights(**kwargs)


def test_counts_of_id_like_labels_give_a_short_message_with_the_fix():
    """np.bincount of labels {3, 7, 4000} is 4,001 counts, 3,998 of them zero: the message names
    a few and how to renumber (it once listed all 3,998, 23,011 characters); any long value in a
    message is cut."""
    with pytest.raises(ValueError) as err:
        class_weights(np.bincount([3, 7, 4000]))
    text = str(err.value)
    assert len(text) < 600, text
    assert "3998 of 4001 classes" in text and "[3, 7, 4000]" in text
    assert "numpy.unique(labels, return_inverse=True)" in text
    with pytest.raises(ValueError) as err:
        class_weights([float("nan")] * 3000)
    assert len(str(err.value)) < 1200 and "characters in all" in str(err.value)
    with pytest.raises(ValueError) as err:  # few zeros among many classes: no renumbering hint
        class_weights([5, 0, 3, 4])
    assert "renumber" not in str(err.value)


# ---- DeferredReweighting ---------------------------------------------------------------------
def test_drw_switches_exactly_at_start_epoch():
    drw = DeferredReweighting(COUNTS, start_epoch=160)
    balanced = class_weights(COUNTS, "effective", 0.9999)
    for epoch in (0, 1, 159):
        assert not drw.is_active(epoch)
        torch.testing.assert_close(drw.weights(epoch), torch.ones(10))
    for epoch in (160, 161, 199):
        assert drw.is_active(epoch)
        torch.testing.assert_close(drw.weights(epoch), balanced)


def test_drw_scheme_beta_and_repr():
    drw = DeferredReweighting(COUNTS, start_epoch=0, beta=0.99, scheme="inverse")
    torch.testing.assert_close(drw.weights(0), class_weights(COUNTS, "inverse"))
    assert drw.num_classes == 10
    text = repr(drw)
    assert "DeferredReweighting" in text and "start_epoch=0" in text and "'inverse'" in text


def test_drw_is_pure_and_returns_copies():
    drw = DeferredReweighting([10, 5, 1], start_epoch=1)
    w = drw.weights(3)
    w.mul_(0)  # editing the returned tensor must not change the schedule
    torch.testing.assert_close(drw.weights(3), class_weights([10, 5, 1], "effective"))
    torch.testing.assert_close(drw.weights(0), torch.ones(3))
    torch.testing.assert_close(drw.weights(3), drw(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_epoch": -1}, r"Expected `start_epoch` to be an integer >= 0"),
        ({"start_epoch": 1.5}, r"Expected `start_epoch` to be an integer >= 0"),
        ({"scheme": "bogus"}, r"Expected `scheme` to be one of"),
        ({"beta": 2.0}, r"Expected `beta`"),
    ],
)
def test_drw_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeferredReweighting([10, 5], **kwargs)


def test_drw_bad_epoch():
    drw = DeferredReweighting([10, 5], start_epoch=2)
    with pytest.raises(ValueError, match=r"Expected `epoch` to be an integer >= 0"):
        drw.weights(-1)
    with pytest.raises(ValueError, match=r"Expected `epoch`"):
        drw.is_active("3")


# ---- ClassBalancedSampler --------------------------------------------------------------------
SMALL_COUNTS = [400, 120, 40, 10]
TARGETS = long_tailed_targets(SMALL_COUNTS)


def class_frequencies(targets, indices, num_classes):
    labels = np.asarray(targets)[np.asarray(list(indices))]
    return np.bincount(labels, minlength=num_classes) / len(labels)


def test_cb_inverse_is_class_balanced():
    sampler = ClassBalancedSampler(TARGETS, num_samples=40_000, seed=3)
    freq = class_frequencies(TARGETS, sampler, 4)
    np.testing.assert_allclose(freq, 0.25, atol=0.01)


def test_cb_sqrt_and_effective_follow_their_class_probabilities():
    n = np.asarray(SMALL_COUNTS, dtype=np.float64)
    for scheme in ("sqrt-inverse", "effective", "none"):
        sampler = ClassBalancedSampler(
            TARGETS, scheme=scheme, beta=0.99, num_samples=40_000, seed=1
        )
        w = np.asarray(reference_weights(SMALL_COUNTS, scheme, 0.99))
        expected_freq = w * n / (w * n).sum()
        np.testing.assert_allclose(class_frequencies(TARGETS, sampler, 4), expected_freq, atol=0.01)


def test_cb_examples_within_a_class_are_uniform():
    sampler = ClassBalancedSampler(TARGETS, num_samples=40_000, seed=0)
    draws = Counter(i for i in sampler if TARGETS[i] == 3)  # the 10 examples of the tail class
    tail = range(560, 570)
    assert all(TARGETS[i] == 3 for i in tail)
    assert set(draws) == set(tail)
    freq = np.array([draws[i] for i in tail]) / sum(draws.values())
    np.testing.assert_allclose(freq, 0.1, atol=0.02)


def test_cb_without_replacement():
    sampler = ClassBalancedSampler(TARGETS, replacement=False, num_samples=200, seed=0)
    drawn = list(sampler)
    assert len(drawn) == 200 and len(set(drawn)) == 200
    full = ClassBalancedSampler(TARGETS, replacement=False)
    assert sorted(full) == list(range(len(TARGETS)))
    # the tail class comes early when sampling without replacement
    first = class_frequencies(TARGETS, drawn[:40], 4)
    assert first[3] > SMALL_COUNTS[3] / len(TARGETS)


def test_cb_determinism_and_epochs():
    a = ClassBalancedSampler(TARGETS, seed=5)
    b = ClassBalancedSampler(TARGETS, seed=5)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again without set_epoch repeats the epoch
    a.set_epoch(1)
    epoch1 = list(a)
    assert epoch1 != list(b)
    b.set_epoch(1)
    assert epoch1 == list(b)
    # seed + epoch: (seed 4, epoch 2) and (seed 6, epoch 0) are the same draw
    c = ClassBalancedSampler(TARGETS, seed=4)
    c.set_epoch(2)
    d = ClassBalancedSampler(TARGETS, seed=6)
    assert list(c) == list(d)
    assert list(ClassBalancedSampler(TARGETS, seed=0)) != list(
        ClassBalancedSampler(TARGETS, seed=1)
    )


def test_cb_len_and_num_samples():
    assert len(ClassBalancedSampler(TARGETS)) == len(TARGETS)
    s = ClassBalancedSampler(TARGETS, num_samples=37)
    assert len(s) == 37 and len(list(s)) == 37


@pytest.mark.parametrize("num_samples", [570, 571, 573, 7])
def test_cb_ddp_split_covers_single_process_sequence(num_samples):
    single = ClassBalancedSampler(TARGETS, num_samples=num_samples, seed=2, num_replicas=1, rank=0)
    single.set_epoch(4)
    seq = list(single)
    padded = seq + seq[: (-len(seq)) % 2]
    ranks = []
    for rank in range(2):
        s = ClassBalancedSampler(
            TARGETS, num_samples=num_samples, seed=2, num_replicas=2, rank=rank
        )
        s.set_epoch(4)
        ranks.append(list(s))
    assert len(ranks[0]) == len(ranks[1]) == math.ceil(num_samples / 2) == len(padded) // 2
    interleaved = [i for pair in zip(*ranks, strict=True) for i in pair]
    assert interleaved == padded
    assert Counter(ranks[0] + ranks[1]) == Counter(padded)


def test_cb_ddp_padding_repeats_from_start_when_tiny():
    # 3 draws over 4 replicas: padded global sequence is seq + seq[:1]
    seq = list(ClassBalancedSampler([0, 1], num_samples=3, seed=0))
    parts = [
        list(ClassBalancedSampler([0, 1], num_samples=3, seed=0, num_replicas=4, rank=r))
        for r in range(4)
    ]
    assert [p[0] for p in parts] == seq + seq[:1]
    assert all(len(p) == 1 for p in parts)


def test_cb_defaults_to_single_process_without_distributed():
    s = ClassBalancedSampler(TARGETS)
    assert (s.num_replicas, s.rank) == (1, 0)


def test_cb_zero_count_classes_are_never_drawn():
    targets = [0] * 50 + [2] * 5  # class 1 absent, class 3 absent via num_classes
    sampler = ClassBalancedSampler(targets, num_samples=2000, num_classes=4, seed=0)
    assert sampler.num_classes == 4
    assert sampler.class_counts.tolist() == [50, 0, 5, 0]
    assert sampler.class_weights[1] == 0 and sampler.class_weights[3] == 0
    freq = class_frequencies(targets, sampler, 4)
    assert freq[1] == 0 and freq[3] == 0
    np.testing.assert_allclose(freq[[0, 2]], 0.5, atol=0.05)
    no_repl = ClassBalancedSampler(targets, replacement=False, num_classes=4)
    assert sorted(no_repl) == list(range(55))


def test_cb_accepts_array_tensor_and_dataset_targets():
    ref = list(ClassBalancedSampler(TARGETS, seed=9))
    assert list(ClassBalancedSampler(np.asarray(TARGETS), seed=9)) == ref
    assert list(ClassBalancedSampler(torch.tensor(TARGETS), seed=9)) == ref

    class WithTargets(torch.utils.data.Dataset):
        targets = TARGETS

        def __len__(self):
            return len(TARGETS)

        def __getitem__(self, i):
            return i, TARGETS[i]

    assert list(ClassBalancedSampler(WithTargets(), seed=9)) == ref


def test_cb_dataloader_integration():
    x = torch.arange(len(TARGETS), dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(TARGETS)
    sampler = ClassBalancedSampler(y, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, sampler=sampler)
    assert len(loader) == math.ceil(len(TARGETS) / 64)
    seen_x, seen_y = [], []
    for xb, yb in loader:
        seen_x.append(xb.squeeze(1).long())
        seen_y.append(yb)
    seen_x, seen_y = torch.cat(seen_x), torch.cat(seen_y)
    assert seen_x.tolist() == list(sampler)
    assert torch.equal(y[seen_x], seen_y)
    freq = torch.bincount(seen_y, minlength=4).double() / len(seen_y)
    assert float(freq.min()) > 0.15  # balanced-ish, vs 10/570 = 0.018 for the tail class


@pytest.mark.parametrize(
    ("targets", "kwargs", "match"),
    [
        ([0, -1, 2], {}, r"Expected `targets` to be non-negative class labels"),
        ([0.0, 1.5], {}, r"Expected `targets` to be integer class labels"),
        ([True, False], {}, r"Expected `targets` to be integer class labels"),
        ([], {}, r"Expected `targets` to be a non-empty 1-D"),
        ([[0, 1], [1, 0]], {}, r"Expected `targets` to be a non-empty 1-D"),
        (["a", "b"], {}, r"Expected `targets` to be integer class labels"),
        ([0, 3], {"num_classes": 3}, r"Expected `targets` to be labels in \[0, 2\]"),
        ([0, 1], {"num_classes": 0}, r"Expected `num_classes` to be an integer >= 1"),
        ([0, 1], {"scheme": "nope"}, r"Expected `scheme` to be one of"),
        ([0, 1], {"beta": 1.01}, r"Expected `beta`"),
        ([0, 1], {"num_samples": 0}, r"Expected `num_samples` to be an integer >= 1"),
        ([0, 1], {"replacement": False, "num_samples": 3}, r"Expected `num_samples` to be <= 2"),
        ([0, 1], {"replacement": "yes"}, r"Expected `replacement` to be a bool"),
        ([0, 1], {"seed": 1.5}, r"Expected `seed` to be an integer"),
        ([0, 1], {"num_replicas": 0}, r"Expected `num_replicas` to be an integer >= 1"),
        ([0, 1], {"num_replicas": 2, "rank": 2}, r"Expected `rank` to be in \[0, 1\]"),
        ([0, 1], {"rank": -1}, r"Expected `rank` to be an integer >= 0"),
        # an ID-like label implies a class per integer below it: refused, not gigabytes
        ([0, 7, 10**9], {}, r"renumber ID-like labels.*but got label 1000000000"),
        ([0, 2**24], {}, r"at most 16777216 are implied"),
    ],
)
def test_cb_bad_input(targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassBalancedSampler(targets, **kwargs)


def test_sampler_bad_epoch():
    s = ClassBalancedSampler([0, 1])
    with pytest.raises(ValueError, match=r"Expected `epoch` to be an integer >= 0"):
        s.set_epoch(-2)


# ---- DeferredResampler -----------------------------------------------------------------------
def test_drs_permutation_before_start_then_balanced():
    sampler = DeferredResampler(TARGETS, start_epoch=2, scheme="inverse", seed=0)
    assert len(sampler) == len(TARGETS)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        assert not sampler.is_active()
        drawn = list(sampler)
        assert sorted(drawn) == list(range(len(TARGETS)))  # a permutation: no replacement
        assert drawn != list(range(len(TARGETS)))  # and shuffled
    sampler.set_epoch(2)
    assert sampler.is_active() and sampler.is_active(5) and not sampler.is_active(1)
    drawn = list(sampler)
    assert len(drawn) == len(TARGETS)
    assert len(set(drawn)) < len(TARGETS)  # with replacement
    freq = class_frequencies(TARGETS, drawn, 4)
    np.testing.assert_allclose(freq, 0.25, atol=0.06)


def test_drs_balanced_phase_equals_class_balanced_sampler():
    drs = DeferredResampler(TARGETS, start_epoch=3, scheme="effective", beta=0.99, seed=11)
    cb = ClassBalancedSampler(TARGETS, scheme="effective", beta=0.99, seed=11)
    for epoch in (3, 7):
        drs.set_epoch(epoch)
        cb.set_epoch(epoch)
        assert list(drs) == list(cb)


def test_drs_determinism_and_ddp_split():
    a = DeferredResampler(TARGETS, start_epoch=1, seed=2)
    b = DeferredResampler(TARGETS, start_epoch=1, seed=2)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    for epoch in (0, 1):
        single = DeferredResampler(TARGETS, start_epoch=1, seed=2, num_replicas=1, rank=0)
        single.set_epoch(epoch)
        seq = list(single)
        parts = []
        for rank in range(2):
            s = DeferredResampler(TARGETS, start_epoch=1, seed=2, num_replicas=2, rank=rank)
            s.set_epoch(epoch)
            parts.append(list(s))
        assert len(parts[0]) == len(parts[1]) == len(TARGETS) // 2
        assert [i for pair in zip(*parts, strict=True) for i in pair] == seq


def test_drs_repr_and_bad_input():
    assert "DeferredResampler" in repr(DeferredResampler([0, 1], start_epoch=4))
    with pytest.raises(ValueError, match=r"Expected `start_epoch` to be an integer >= 0"):
        DeferredResampler([0, 1], start_epoch=-1)
    with pytest.raises(ValueError, match=r"Expected `targets` to be non-negative"):
        DeferredResampler([0, -3])
    with pytest.raises(ValueError, match=r"Expected `scheme`"):
        DeferredResampler([0, 1], scheme="x")


def test_replicas_taken_from_initialised_distributed(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    s = ClassBalancedSampler(TARGETS)
    assert (s.num_replicas, s.rank) == (3, 2)
    assert len(s) == len(TARGETS) // 3
    d = DeferredResampler(TARGETS, num_replicas=4, rank=0)  # explicit values win
    assert (d.num_replicas, d.rank) == (4, 0)
    with pytest.raises(ValueError, match=r"Expected `rank` to be in \[0, 1\]"):
        ClassBalancedSampler(TARGETS, num_replicas=2)  # rank 2 from the process group
