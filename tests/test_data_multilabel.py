"""Long-tailed multi-label data: label counts, co-occurrence, the long-tailed subset and the
class-aware multi-label sampler (single process, split across replicas, and under two real gloo
processes)."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from longtail.data.multilabel import (
    MultiLabelClassAwareSampler,
    as_multihot,
    cooccurrence,
    cooccurrence_summary,
    longtail_multilabel,
    multilabel_counts,
)
from longtail.data.profiles import imbalance_counts

# 12 examples, 4 labels (counts 8, 4, 3, 1): label 0 frequent, 3 rare, two rows without a label
Y = np.array(
    [
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 1, 0],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
        [1, 0, 0, 1],
        [0, 0, 1, 0],
        [1, 0, 0, 0],
        [0, 0, 0, 0],
        [1, 1, 1, 0],
        [0, 0, 0, 0],
    ]
)


def _mixed(n=6000, c=8, seed=0, extra=0.03):
    """One label per example (label c with probability ∝ 1/(c+1)) plus a few co-occurring ones."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, c + 1)
    y = np.eye(c, dtype=bool)[rng.choice(c, n, p=p / p.sum())]
    return y | (rng.random((n, c)) < extra)


# ------------------------------------------------------------------------------- checks
def test_as_multihot_accepts_lists_arrays_tensors_and_datasets():
    want = Y.astype(bool)
    assert (as_multihot(Y.tolist()) == want).all()
    assert (as_multihot(torch.tensor(Y, dtype=torch.float32)) == want).all()
    assert (as_multihot(Y.astype(bool)) == want).all()

    class Data:
        targets = torch.tensor(Y)

    assert (as_multihot(Data()) == want).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        ([0, 1, 1], "non-empty multi-hot"),
        (np.zeros((0, 3)), "non-empty multi-hot"),
        ([[0, 2], [1, 0]], "0/1 labels"),
        ([[0, 0.5], [1, 0]], "0/1 labels"),
        ([["a", "b"]], "numeric or boolean"),
    ],
)
def test_as_multihot_refuses_what_is_not_a_multihot_matrix(bad, match):
    with pytest.raises(ValueError, match=rf"Expected `targets` to be .*{match}"):
        as_multihot(bad)


def test_counts_and_cooccurrence():
    assert multilabel_counts(Y).tolist() == [8, 4, 3, 1]
    co = cooccurrence(Y)
    assert co.shape == (4, 4) and (co == co.T).all()
    assert co.diagonal().tolist() == [8, 4, 3, 1]
    for j in range(4):
        for k in range(4):
            assert co[j, k] == sum(1 for row in Y if row[j] and row[k])


def test_cooccurrence_summary():
    s = cooccurrence_summary(Y)
    per = Y.sum(1)
    assert s["examples"] == 12 and s["labels"] == 4
    assert s["labels_per_example_mean"] == pytest.approx(per.mean())
    assert s["labels_per_example_max"] == 3
    assert s["single_label_fraction"] == pytest.approx((per == 1).mean())
    assert s["no_label_fraction"] == pytest.approx(2 / 12)
    # pairs together: (0,1), (0,2), (0,3), (1,2) of 6
    assert s["pair_density"] == pytest.approx(4 / 6)
    # head = label 0, tail = label 3 (one third of 4 labels, by frequency): the one example of
    # label 3 also has label 0
    assert s["tail_with_head"] == 1.0
    assert math.isnan(cooccurrence_summary(Y[:, :3], order=[0, 1, 2])["tail_with_head"]) is False
    no_tail = cooccurrence_summary([[1, 0], [1, 0]])
    assert math.isnan(no_tail["tail_with_head"])


# ------------------------------------------------------------------------- long-tailed subset
def test_longtail_subset_follows_the_profile_when_labels_rarely_cooccur():
    y = _mixed(extra=0.0)  # one label each: the profile is reachable exactly
    sub = longtail_multilabel(y, ratio=20, n_max=800)
    assert sub.target_counts[sub.order].tolist() == imbalance_counts(800, 8, 20)
    assert sub.counts.tolist() == sub.target_counts.tolist()
    assert (np.diff(sub.indices) > 0).all()
    assert (multilabel_counts(y[sub.indices]) == sub.counts).all()
    s = sub.summary(y)
    assert s["max_relative_error"] == 0 and s["ratio"] == pytest.approx(20.0)


def test_longtail_subset_with_cooccurrence_reports_the_overshoot():
    y = _mixed(extra=0.05)
    # a head of n_max = all the head label's examples: they bring 5 % of every other label along
    with pytest.warns(UserWarning, match="not the targets' 20"):
        sub = longtail_multilabel(y, ratio=20)
    s = sub.summary(y)
    assert (sub.counts >= sub.target_counts).all()  # a label never ends below its target here
    assert s["labels_over"] > 0 and s["max_relative_error"] > 0
    assert s["ratio"] < s["target_ratio"]  # co-occurrence flattens the profile
    assert (sub.cooccurrence == cooccurrence(y[sub.indices])).all()
    assert 0 < s["tail_with_head"] <= 1
    # with room to choose (a smaller head), the greedy reaches the profile despite co-occurrence
    roomy = longtail_multilabel(y, ratio=20, n_max=800)
    assert roomy.summary(y)["max_relative_error"] <= 0.05


def test_longtail_subset_is_deterministic_and_validates():
    y = _mixed(extra=0.05)
    a = longtail_multilabel(y, ratio=10, n_max=500, seed=3)
    b = longtail_multilabel(y, ratio=10, n_max=500, seed=3)
    assert (a.indices == b.indices).all()
    # targets above what the source has are capped
    big = longtail_multilabel(y, ratio=2, n_max=10**6)
    assert (big.target_counts <= multilabel_counts(y)).all()
    direct = longtail_multilabel(y, ratio=1, counts=[300, 200, 100, 80, 60, 40, 30, 20])
    assert direct.target_counts.tolist() == [300, 200, 100, 80, 60, 40, 30, 20]
    with pytest.raises(ValueError, match="`ratio`"):
        longtail_multilabel(y, ratio=0.5)
    with pytest.raises(ValueError, match="`profile`"):
        longtail_multilabel(y, ratio=10, profile="linear")
    with pytest.raises(ValueError, match="`counts`"):
        longtail_multilabel(y, ratio=1, counts=[1, 2])
    with pytest.raises(ValueError, match="every label"):
        longtail_multilabel(np.array([[1, 0], [1, 0]]), ratio=2)


# ------------------------------------------------------------------------------- sampler
def test_sampler_draws_labels_uniformly_and_never_unlabelled_examples():
    s = MultiLabelClassAwareSampler(Y, num_samples=60000, seed=1)
    drawn = Counter(list(s))
    assert drawn[9] == 0 and drawn[11] == 0  # no label: never drawn
    probs = s.example_probabilities()
    assert probs.sum().item() == pytest.approx(1.0)
    # the inverse scheme: every label is drawn with probability 1/4, then an example carrying it
    want = torch.tensor(Y, dtype=torch.float64) @ (0.25 / torch.tensor([8.0, 4, 3, 1]).double())
    torch.testing.assert_close(probs, want)
    freq = torch.tensor([drawn[i] for i in range(len(Y))], dtype=torch.float64) / 60000
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)
    # the rare label 3's example is drawn far more often than under uniform shuffling
    assert freq[6] > 0.2


def test_sampler_schemes_and_errors():
    s = MultiLabelClassAwareSampler(Y, scheme="none")  # label c drawn ∝ n_c
    torch.testing.assert_close(
        s._class_probs, torch.tensor([8.0, 4, 3, 1], dtype=torch.float64) / 16
    )
    assert len(MultiLabelClassAwareSampler(Y)) == len(Y)
    with pytest.raises(ValueError, match="`scheme`"):
        MultiLabelClassAwareSampler(Y, scheme="balanced")
    with pytest.raises(ValueError, match="at least one positive"):
        MultiLabelClassAwareSampler(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"Expected `rank` to be in \[0, 1\]"):
        MultiLabelClassAwareSampler(Y, num_replicas=2, rank=2)


def test_sampler_epochs_are_seeded():
    s = MultiLabelClassAwareSampler(Y, seed=4)
    s.set_epoch(1)
    first = list(s)
    assert list(s) == first
    s.set_epoch(2)
    assert list(s) != first
    again = MultiLabelClassAwareSampler(Y, seed=4)
    again.set_epoch(1)
    assert list(again) == first


@pytest.mark.parametrize("num_samples", [12, 13, 15, 5])
def test_sampler_ddp_split_covers_single_process_sequence(num_samples):
    single = MultiLabelClassAwareSampler(Y, num_samples=num_samples, seed=2, num_replicas=1, rank=0)
    single.set_epoch(4)
    seq = list(single)
    padded = seq + seq[: (-len(seq)) % 2]
    ranks = []
    for rank in range(2):
        s = MultiLabelClassAwareSampler(
            Y, num_samples=num_samples, seed=2, num_replicas=2, rank=rank
        )
        s.set_epoch(4)
        ranks.append(list(s))
    assert len(ranks[0]) == len(ranks[1]) == math.ceil(num_samples / 2) == len(padded) // 2
    interleaved = [i for pair in zip(*ranks, strict=True) for i in pair]
    assert interleaved == padded


def test_sampler_takes_replicas_from_initialised_distributed(monkeypatch):
    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 3)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    s = MultiLabelClassAwareSampler(Y)
    assert (s.num_replicas, s.rank) == (3, 2) and len(s) == 4


WORLD = 2


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        s = MultiLabelClassAwareSampler(Y, num_samples=15, seed=7)  # replicas from dist
        s.set_epoch(3)
        with open(f"{out}.{rank}", "w") as f:
            json.dump({"indices": list(s), "len": len(s)}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_sampler_under_two_gloo_processes(tmp_path):
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.start_processes(_worker, args=(store, out), nprocs=WORLD, start_method="spawn")
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(WORLD)]
    single = MultiLabelClassAwareSampler(Y, num_samples=15, seed=7, num_replicas=1, rank=0)
    single.set_epoch(3)
    seq = single.global_indices().tolist()
    padded = seq + seq[: (-len(seq)) % WORLD]
    assert ranks[0]["len"] == ranks[1]["len"] == 8
    assert ranks[0]["indices"] == padded[0::WORLD] and ranks[1]["indices"] == padded[1::WORLD]


def test_a_subset_far_from_its_profile_is_warned_about():
    # every example carries about two labels: the head's positives come with the tail's
    # examples and the ratio collapses; only summary() said so before
    rng = np.random.default_rng(0)
    y = np.eye(6, dtype=bool)[rng.integers(0, 6, 3000)] | (rng.random((3000, 6)) < 0.3)
    with pytest.warns(UserWarning, match=r"imbalance ratio is [\d.]+, not the targets' 5\d"):
        sub = longtail_multilabel(y, ratio=50)
    assert sub.counts.max() / sub.counts.min() < 25
    one_each = np.eye(5, dtype=bool)[rng.integers(0, 5, 5000)]  # the profile is reachable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        longtail_multilabel(one_each, ratio=10, n_max=500)
