"""Tests specific to the long-tail losses of longtail/losses/{seesaw,equalization,longtail_extra}.py
(the registry-wide contract covers what every loss owes; these cover what it cannot: carried state,
schedules, inverse maps, the papers' own equivalences beyond it, and properties over many inputs).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _reference_longtail as R
import longtail as lt
from longtail import functional as LF

PROPERTY = settings(
    deadline=None, max_examples=40, database=None, suppress_health_check=[HealthCheck.too_slow]
)
COUNTS = [500, 120, 40, 9, 2]
C = len(COUNTS)


def _problem(n=12, c=C, seed=0, spread=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = ((torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * spread).to(dtype)
    y = torch.randint(0, c, (n,), generator=g)
    return z, y


def _tensor(values):
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------------------------ seesaw
def test_seesaw_carried_counts_match_the_reference():
    z, y = _problem(seed=1)
    carried = [40, 7, 19, 0, 3]
    for kw in ({}, {"p": 0.5, "q": 1.0}, {"q": 0.0}):
        full = {"p": 0.8, "q": 2.0, "eps": 0.01, **kw}
        want = sum(R.seesaw(z.tolist(), y.tolist(), cum_samples=carried, **full)) / len(y)
        got = LF.seesaw_loss(z, y, cum_samples=carried, **kw)
        torch.testing.assert_close(got, _tensor(want))
        module = lt.create_loss("seesaw", cum_samples=carried, **kw).double()
        torch.testing.assert_close(module(z, y), got)


def test_seesaw_module_accumulates_the_labels_it_sees():
    crit = lt.create_loss("seesaw", ignore_index=-1)
    assert crit.cum_samples is None
    y1 = torch.tensor([0, 0, 1, -1, 4])
    crit(torch.randn(5, C), y1)
    assert crit.cum_samples.tolist() == [2, 1, 0, 0, 1]  # the ignored entry is not counted
    crit(torch.randn(3, C), torch.tensor([3, 0, 1]))
    assert crit.cum_samples.tolist() == [3, 2, 0, 1, 1]
    assert crit.cum_samples.dtype == torch.int64
    # the next batch is computed with the counts so far plus its own labels
    z, y = _problem(n=6, seed=2)
    before = crit.cum_samples.clone()
    torch.testing.assert_close(
        crit.double()(z, y), LF.seesaw_loss(z, y, cum_samples=before, ignore_index=-1)
    )


def test_seesaw_matches_mmdetection_once_every_class_is_seen():
    """mmdetection clamps the counts at 1; with every class seen the clamp does nothing, and its
    formula (weights multiplied into exp, not added to the logits) gives the same loss."""
    z, y = _problem(n=16, seed=3)
    carried = torch.tensor([300, 60, 20, 5, 1])
    counts = (carried + torch.bincount(y, minlength=C)).double().clamp_min(1)
    ratio = counts[None, :] / counts[:, None]
    mitigation = torch.where(ratio < 1, ratio.pow(0.8), torch.ones_like(ratio))[y]
    scores = z.softmax(1)
    self_scores = scores.gather(1, y[:, None]).clamp_min(0.01)
    sm = scores / self_scores
    compensation = torch.where(sm > 1, sm.pow(2.0), torch.ones_like(sm))
    onehot = F.one_hot(y, C).double()
    mmdet = F.cross_entropy(z + (mitigation * compensation).log() * (1 - onehot), y)
    torch.testing.assert_close(LF.seesaw_loss(z, y, cum_samples=carried), mmdet)


def test_seesaw_depends_only_on_the_ratios_of_the_counts():
    z, y = _problem(seed=4)
    crit = lt.create_loss("seesaw").double()
    first = crit(z, y)
    for _ in range(3):  # the same batch again: the counts double, triple, ... the loss does not
        torch.testing.assert_close(crit(z, y), first)


def test_seesaw_unseen_class_gets_no_negative_gradient():
    z = torch.zeros(2, C, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1])
    LF.seesaw_loss(z, y, q=0.0).backward()
    assert (z.grad[:, 2:] == 0).all()  # classes 2.. never seen: M = 0
    assert (z.grad[0, 1] > 0) and (z.grad[1, 0] > 0)


def test_seesaw_bad_counts():
    with pytest.raises(ValueError, match="`cum_samples`"):
        LF.seesaw_loss(torch.zeros(2, C), torch.tensor([0, 1]), cum_samples=[1, 2])
    with pytest.raises(ValueError, match=r"`cum_samples`.*non-negative"):
        lt.create_loss("seesaw", cum_samples=[1, -2, 0, 0, 0])
    with pytest.raises(ValueError, match=r"`cum_samples`.*whole numbers"):
        lt.create_loss("seesaw", cum_samples=[1.5, 2, 0, 0, 0])
    with pytest.raises(ValueError, match="`eps`"):
        lt.create_loss("seesaw", eps=0.0)


@PROPERTY
@given(
    n=st.integers(1, 8),
    c=st.integers(2, 6),
    p=st.sampled_from([0.0, 0.8, 2.0]),
    q=st.sampled_from([0.0, 2.0, 0.5]),
    seed=st.integers(0, 2**31 - 1),
    spread=st.sampled_from([1.0, 5.0, 50.0]),
)
def test_seesaw_property_matches_reference(n, c, p, q, seed, spread):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * spread
    y = torch.randint(0, c, (n,), generator=g)
    carried = torch.randint(0, 30, (c,), generator=g)
    want = R.seesaw(z.tolist(), y.tolist(), p, q, 0.01, carried.tolist())
    got = LF.seesaw_loss(z, y, p=p, q=q, cum_samples=carried, reduction="none")
    torch.testing.assert_close(got, _tensor(want))


# ------------------------------------------------------------------------------- softmax EQL
TAIL_COUNTS = [600, 300, 40, 20, 10, 5, 3, 2]  # λ = 0.05: classes 2.. are tail classes (f < λ)


def test_softmax_eql_matches_the_reference_for_a_seed():
    z, y = _problem(n=20, c=len(TAIL_COUNTS), seed=5)
    y[:3] = torch.tensor([7, 6, 5])  # tail targets: their own class is never dropped
    for kw in ({"threshold": 0.05, "gamma": 0.9}, {"threshold": 0.01, "gamma": 0.5}):
        for reduction in ("none", "sum", "mean"):
            want = R.softmax_eql(z.tolist(), y.tolist(), TAIL_COUNTS, seed=7, **kw)
            got = LF.softmax_eql_loss(z, y, TAIL_COUNTS, seed=7, reduction=reduction, **kw)
            want = _tensor(want)
            torch.testing.assert_close(
                got,
                want
                if reduction == "none"
                else want.sum() / (len(y) if reduction == "mean" else 1),
            )


def test_softmax_eql_with_gamma_one_removes_every_tail_negative():
    z, y = _problem(n=10, c=len(TAIL_COUNTS), seed=6)
    tail = torch.tensor([n / sum(TAIL_COUNTS) < 0.05 for n in TAIL_COUNTS])
    masked = z.masked_fill(tail & (torch.arange(len(TAIL_COUNTS)) != y[:, None]), -math.inf)
    got = LF.softmax_eql_loss(z, y, TAIL_COUNTS, threshold=0.05, gamma=1.0)
    torch.testing.assert_close(got, F.cross_entropy(masked, y))


def test_softmax_eql_drop_rate_is_gamma():
    z = torch.zeros(4000, len(TAIL_COUNTS), dtype=torch.float64)
    y = torch.zeros(4000, dtype=torch.long)  # class 0: every tail class is a negative
    per = LF.softmax_eql_loss(
        z, y, TAIL_COUNTS, threshold=0.05, gamma=0.3, seed=1, reduction="none"
    )
    # ℓ = log(#classes kept): kept = 2 head classes + the tail classes not dropped (of 6)
    kept = per.exp().round() - 2
    assert abs((1 - kept.mean() / 6).item() - 0.3) < 0.01


def test_softmax_eql_module_draws_once_per_training_step():
    counts = TAIL_COUNTS
    z, y = _problem(n=64, c=len(counts), seed=8)
    crit = lt.create_loss("softmax-eql", class_counts=counts, threshold=0.05, seed=11).double()
    first = crit(z, y)
    torch.testing.assert_close(crit(z, y), first)  # no backward in between: the same draw
    torch.testing.assert_close(first, LF.softmax_eql_loss(z, y, counts, threshold=0.05, seed=11))
    x = z.clone().requires_grad_(True)
    crit(x, y).backward()  # a training step ends
    assert int(crit.noise_step) == 1
    second = crit(z, y)
    assert not torch.allclose(second, first)
    seed = lt.losses._stepped_random.step_seed(11, 1)
    torch.testing.assert_close(second, LF.softmax_eql_loss(z, y, counts, threshold=0.05, seed=seed))
    # resumed from a checkpoint, the sequence continues
    fresh = lt.create_loss("softmax-eql", class_counts=counts, threshold=0.05).double()
    fresh.load_state_dict(crit.state_dict())
    torch.testing.assert_close(fresh(z, y), second)
    with torch.no_grad():
        crit(z, y)  # evaluation: no step
    assert int(crit.noise_step) == 1


def test_softmax_eql_bad_arguments():
    with pytest.raises(ValueError, match="`gamma`"):
        lt.create_loss("softmax-eql", class_counts=COUNTS, gamma=1.5)
    with pytest.raises(ValueError, match="`seed`"):
        lt.create_loss("softmax-eql", class_counts=COUNTS, seed=-1)
    with pytest.raises(ValueError, match="`threshold`"):
        LF.softmax_eql_loss(torch.zeros(2, C), torch.tensor([0, 1]), COUNTS, threshold=-0.1)


# ------------------------------------------------------------------------------------ EQL v2
def _official_eqlv2_statistics(z, y, pos_w, neg_w):
    """What the official ``collect_grad`` adds: Σ_i |σ(z) − t|·w over positives / negatives."""
    t = F.one_hot(y, z.shape[1]).double()
    w = pos_w * t + neg_w * (1 - t)
    g = (torch.sigmoid(z) - t).abs() * w
    return (g * t).sum(0), (g * (1 - t)).sum(0)


def test_eqlv2_weights_match_the_reference():
    pos = [0.0, 3.0, 0.5, 10.0, 0.0]
    neg = [0.0, 4.0, 5.0, 1.0, 2.0]
    q, r = LF.eqlv2_weights(pos, neg)
    want_q, want_r = R.eqlv2_weights(pos, neg, 12.0, 0.8, 4.0)
    torch.testing.assert_close(q, _tensor(want_q))
    torch.testing.assert_close(r, _tensor(want_r))
    assert r[0] == 1 and q[0] == 1  # nothing accumulated: the initial ratio 100, weights 1
    assert r[4] < 1e-4 and q[4] > 4.99  # never positive: negatives suppressed


def test_eqlv2_with_statistics_matches_the_reference():
    z, y = _problem(n=10, seed=9)
    pos, neg = [0.2, 3.0, 0.5, 10.0, 0.0], [4.0, 4.0, 5.0, 1.0, 2.0]
    for kw in ({}, {"gamma": 6.0, "mu": 0.5, "alpha": 2.0}):
        full = {"gamma": 12.0, "mu": 0.8, "alpha": 4.0, **kw}
        want = _tensor(R.eqlv2(z.tolist(), y.tolist(), pos=pos, neg=neg, **full))
        got = LF.eqlv2_loss(z, y, pos_grad=pos, neg_grad=neg, reduction="none", **kw)
        torch.testing.assert_close(got, want)
        module = lt.create_loss("eqlv2", pos_grad=pos, neg_grad=neg, reduction="none", **kw)
        torch.testing.assert_close(module.double()(z, y), want)
    x = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v: LF.eqlv2_loss(v, y, pos_grad=pos, neg_grad=neg), (x,), fast_mode=True
    )


def test_eqlv2_module_collects_the_official_statistics():
    """Two training steps with reduction="sum" (so the gradient reaching the logits is the
    official code's unnormalised |σ − t|·w): the statistics and the second step's weights are
    the official code's."""
    crit = lt.create_loss("eqlv2", reduction="sum").double()
    ones = torch.ones(C, dtype=torch.float64)
    pos_total, neg_total = torch.zeros(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)
    pos_w, neg_w = ones, ones  # the official initial ratio 100: weights 1
    for step in range(3):
        z, y = _problem(n=16, seed=20 + step)
        x = z.clone().requires_grad_(True)
        loss = crit(x, y)
        t = F.one_hot(y, C).double()
        official = (
            F.binary_cross_entropy_with_logits(z, t, reduction="none")
            * (pos_w * t + neg_w * (1 - t))
        ).sum()
        torch.testing.assert_close(loss, official)
        loss.backward()
        p, n = _official_eqlv2_statistics(z, y, pos_w, neg_w)
        pos_total, neg_total = pos_total + p, neg_total + n
        torch.testing.assert_close(crit.pos_grad.double(), pos_total, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(crit.neg_grad.double(), neg_total, rtol=1e-6, atol=1e-6)
        pos_w, neg_w = LF.eqlv2_weights(crit.pos_grad, crit.neg_grad)
    with torch.no_grad():
        crit(z, y)  # an evaluation pass leaves the statistics alone
    torch.testing.assert_close(crit.pos_grad.double(), pos_total, rtol=1e-6, atol=1e-6)


def test_eqlv2_mean_statistics_are_the_sum_statistics_over_n():
    z, y = _problem(n=8, seed=30)
    stats = []
    for reduction in ("sum", "mean"):
        crit = lt.create_loss("eqlv2", reduction=reduction).double()
        crit(z.clone().requires_grad_(True), y).backward()
        stats.append((crit.pos_grad, crit.neg_grad))
    torch.testing.assert_close(stats[1][0] * 8, stats[0][0])
    torch.testing.assert_close(stats[1][1] * 8, stats[0][1])


def test_eqlv2_state_round_trip_and_bad_statistics():
    crit = lt.create_loss("eqlv2")
    z, y = _problem(n=8, seed=31, dtype=torch.float32)
    crit(z.requires_grad_(True), y).backward()
    fresh = lt.create_loss("eqlv2")
    fresh.load_state_dict(crit.state_dict())
    torch.testing.assert_close(fresh(z, y), crit(z, y))
    with pytest.raises(ValueError, match="`pos_grad`"):
        LF.eqlv2_loss(z, y, pos_grad=[1.0] * C)
    with pytest.raises(ValueError, match="`neg_grad`"):
        LF.eqlv2_loss(z, y, pos_grad=[1.0] * C, neg_grad=[-1.0] * C)
    with pytest.raises(ValueError, match="`pos_grad`"):
        LF.eqlv2_loss(z, y, pos_grad=[1.0] * 3, neg_grad=[1.0] * 3)


@PROPERTY
@given(
    n=st.integers(1, 8),
    c=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    spread=st.sampled_from([1.0, 5.0, 50.0]),
)
def test_eqlv2_property_matches_reference(n, c, seed, spread):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * spread
    y = torch.randint(0, c, (n,), generator=g)
    pos = (torch.rand(c, generator=g, dtype=torch.float64) * 3).tolist()
    neg = (torch.rand(c, generator=g, dtype=torch.float64) * 3).tolist()
    want = R.eqlv2(z.tolist(), y.tolist(), 12.0, 0.8, 4.0, pos, neg)
    got = LF.eqlv2_loss(z, y, pos_grad=pos, neg_grad=neg, reduction="none")
    torch.testing.assert_close(got, _tensor(want))
