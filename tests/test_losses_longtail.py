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


def test_seesaw_in_eval_mode_reads_the_counts_without_adding_to_them():
    crit = lt.create_loss("seesaw", cum_samples=[5, 3, 2, 1, 1]).double()
    z, y = _problem(n=6, seed=3)
    crit.eval()
    got = crit(z, y)
    assert crit.cum_samples.tolist() == [5, 3, 2, 1, 1]  # a validation loss changes nothing
    torch.testing.assert_close(got, LF.seesaw_loss(z, y, cum_samples=[5, 3, 2, 1, 1]))
    crit.train()
    torch.testing.assert_close(crit(z, y), got)  # the same loss, and now the batch counts
    assert crit.cum_samples.sum().item() == 12 + len(y)


def test_seesaw_under_no_grad_reads_the_counts_without_adding_to_them():
    """The usual validation loop: model.eval() and torch.no_grad(), the loss left in training
    mode; its labels must not enter the counts training uses next."""
    crit = lt.create_loss("seesaw", cum_samples=[16, 1, 1, 1, 1]).double()
    z, y = _problem(n=6, seed=4)
    with torch.no_grad():
        got = crit(z, y)
    assert crit.training and crit.cum_samples.tolist() == [16, 1, 1, 1, 1]
    torch.testing.assert_close(got, LF.seesaw_loss(z, y, cum_samples=[16, 1, 1, 1, 1]))


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


def test_eqlv2_statistics_ignore_a_factor_on_the_whole_loss():
    """ "mean" (1/N) and a mixed-precision loss scale (GradScaler's, which doubles and halves
    between steps) gather the official code's statistics, collected without either."""
    z, y = _problem(n=8, seed=30)
    stats = []
    for reduction, scale in (("sum", 1.0), ("mean", 1.0), ("mean", 65536.0), ("sum", 0.5)):
        crit = lt.create_loss("eqlv2", reduction=reduction).double()
        (crit(z.clone().requires_grad_(True), y) * scale).backward()
        stats.append(torch.stack([crit.pos_grad, crit.neg_grad]))
    for other in stats[1:]:
        torch.testing.assert_close(other, stats[0])
    # per-sample weights still count relative to each other
    w = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    crit = lt.create_loss("eqlv2", weight=w).double()
    crit(z.clone().requires_grad_(True), y).backward()
    assert not torch.allclose(torch.stack([crit.pos_grad, crit.neg_grad]), stats[0])


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


# --------------------------------------------------------------------------------------- CDT
def test_cdt_temperatures_and_their_inverse():
    a = LF.cdt_temperatures(COUNTS, gamma=0.3)
    torch.testing.assert_close(a, _tensor([(500 / n) ** 0.3 for n in COUNTS]))
    assert a[0] == 1 and (a[1:] > a[:-1]).all()  # the head has temperature 1, the tail the most
    # the inverse map: the counts (up to n_max) from the temperatures
    torch.testing.assert_close(500 * a.pow(-1 / 0.3), _tensor(COUNTS))
    with pytest.raises(ValueError, match="`gamma`"):
        LF.cdt_temperatures(COUNTS, gamma=-0.1)
    with pytest.raises(ValueError, match="`class_counts`"):
        LF.cdt_temperatures([5, 0, 1])


# --------------------------------------------------------------------------------------- GCL
def test_gcl_matches_the_reference_for_a_seed_and_ignores_by_dropping():
    z, y = _problem(n=12, seed=40)
    for kw in ({}, {"noise_mul": 1.0, "margin": 0.5}):
        full = {"noise_mul": 0.5, "margin": 0.0, "scale": 30.0, **kw}
        want = _tensor(R.gcl(z.tolist(), y.tolist(), COUNTS, seed=3, **full))
        got = LF.gcl_loss(z, y, COUNTS, seed=3, reduction="none", **kw)
        torch.testing.assert_close(got, want)
    # the draws go to the entries not ignored, in order: ignoring rows is dropping them
    keep = torch.tensor([True, False, True] * 4)
    yi = y.masked_fill(~keep, -100)
    torch.testing.assert_close(
        LF.gcl_loss(z, yi, COUNTS, seed=3, reduction="none")[keep],
        LF.gcl_loss(z[keep], y[keep], COUNTS, seed=3, reduction="none"),
    )


def test_gcl_noise_has_the_papers_law():
    """Two classes, the second the rarest (cloud size 1), zero logits, s = 1, target 0:
    ℓ = log(1 + e^{−β|δ|}), so |δ| can be read back from each loss: |N(0, 1/3)| clamped at 1."""
    n = 20000
    z = torch.zeros(n, 2, dtype=torch.float64)
    y = torch.zeros(n, dtype=torch.long)
    per = LF.gcl_loss(z, y, [100, 1], noise_mul=2.0, scale=1.0, seed=5, reduction="none")
    delta = -torch.log(torch.expm1(per)) / 2.0
    assert delta.min() >= 0 and delta.max() <= 1 + 1e-9
    mean_abs = (1 / 3) * math.sqrt(2 / math.pi)  # E|N(0, σ²)| = σ √(2/π); the clamp is 0.3% mass
    assert abs(delta.mean().item() - mean_abs) < 0.005
    assert 0.0005 < (delta > 1 - 1e-9).double().mean().item() < 0.006  # P(|N(0,1)| > 3) = 0.27%


def test_gcl_module_draws_once_per_training_step():
    z, y = _problem(n=16, seed=41)
    crit = lt.create_loss("gcl", class_counts=COUNTS, seed=9).double()
    first = crit(z, y)
    torch.testing.assert_close(crit(z, y), first)
    torch.testing.assert_close(first, LF.gcl_loss(z, y, COUNTS, seed=9))
    crit(z.clone().requires_grad_(True), y).backward()
    seed = lt.losses._stepped_random.step_seed(9, 1)
    torch.testing.assert_close(crit(z, y), LF.gcl_loss(z, y, COUNTS, seed=seed))
    assert not torch.allclose(crit(z, y), first)
    # equal counts: no cloud, no randomness
    flat = lt.create_loss("gcl", class_counts=[7] * C).double()
    torch.testing.assert_close(flat(z, y), F.cross_entropy(30 * z, y))


def test_gcl_cloud_sizes():
    cloud = LF.gcl_cloud_sizes(COUNTS)
    assert cloud[0] == 0 and cloud[-1] == 1 and (cloud[1:] > cloud[:-1]).all()
    torch.testing.assert_close(LF.gcl_cloud_sizes([3, 3, 3]), torch.zeros(3, dtype=torch.float64))


# ---------------------------------------------------------------------------------------- IB
def _feature_norm(n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, generator=g, dtype=torch.float64) * 20 + 0.5).to(dtype)


def test_ib_stage_two_matches_the_reference():
    z, y = _problem(n=10, seed=50)
    h = _feature_norm(10, 50)
    weight = [0.5, 2.0, 1.0, 3.0, 0.25]
    for kw in ({}, {"alpha": 100.0, "epsilon": 0.01}):
        full = {"alpha": 1000.0, "epsilon": 0.001, **kw}
        per = R.ib(z.tolist(), y.tolist(), h.tolist(), **full)
        for w in (None, weight):
            for reduction in ("none", "sum", "mean"):
                want = _tensor(R.reduce(per, y.tolist(), w, reduction))
                wt = None if w is None else _tensor(w)
                got = LF.ib_loss(
                    z, y, stage=2, feature_norm=h, weight=wt, reduction=reduction, **kw
                )
                torch.testing.assert_close(got, want)
                crit = lt.create_loss("ib", stage=2, weight=wt, reduction=reduction, **kw)
                torch.testing.assert_close(crit.double()(z, y, h), want)


def test_ib_stage_two_gradients_reach_logits_and_feature_norm():
    z, y = _problem(n=6, seed=51)
    h = _feature_norm(6, 51)
    x, hh = z.clone().requires_grad_(True), h.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: LF.ib_loss(a, y, stage=2, feature_norm=b), (x, hh), fast_mode=True
    )
    # the official code's ‖p − y‖₁ (abs of the softmax minus one-hot), written with autograd
    x.grad = None
    p = torch.softmax(x, 1)
    official = F.cross_entropy(x, y, reduction="none") * (
        1000.0 / ((p - F.one_hot(y, C)).abs().sum(1) * hh + 0.001)
    )
    gx, gh = torch.autograd.grad(official.mean(), (x, hh))
    ours = LF.ib_loss(x, y, stage=2, feature_norm=hh)
    ox, oh = torch.autograd.grad(ours, (x, hh))
    torch.testing.assert_close(ours, official.mean())
    torch.testing.assert_close(ox, gx)
    torch.testing.assert_close(oh, gh)


def test_ib_stage_two_conventions():
    z, y = _problem(n=12, seed=52)
    h = _feature_norm(12, 52)
    crit = lt.create_loss("ib", stage=2, ignore_index=3).double()
    keep = y != 3
    torch.testing.assert_close(crit(z, y, h), crit(z[keep], y[keep], h[keep]))
    # dense maps: (N, C, d1) logits with (N, d1) norms == flattened
    zs, ys, hs = z.reshape(3, 4, C).movedim(2, 1), y.reshape(3, 4), h.reshape(3, 4)
    crit = lt.create_loss("ib", stage=2, reduction="none").double()
    torch.testing.assert_close(crit(zs, ys, hs).reshape(-1), crit(z, y, h))
    # half inputs computed in float32; logits at ±1e4 stay finite
    zh = z.to(torch.bfloat16).requires_grad_(True)
    out = lt.create_loss("ib", stage=2)(zh, y, h.float())
    assert out.dtype == torch.float32
    out.backward()
    assert torch.isfinite(zh.grad.float()).all()
    big = (torch.sign(z) * 1e4).float().requires_grad_(True)
    out = lt.create_loss("ib", stage=2)(big, y, h.float())
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(big.grad).all()
    # an empty batch: a zero attached to the graph
    empty = torch.zeros(0, C, requires_grad=True)
    out = lt.create_loss("ib", stage=2)(empty, torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert out.item() == 0 and torch.autograd.grad(out, empty)[0].shape == (0, C)


def test_ib_stage_buffer_and_schedule():
    crit = lt.create_loss("ib")
    z, y = _problem(n=8, seed=53, dtype=torch.float32)
    h = _feature_norm(8, 53, torch.float32)
    torch.testing.assert_close(crit(z, y), F.cross_entropy(z, y))  # stage 1: CE, norm unused
    torch.testing.assert_close(crit(z, y, h), F.cross_entropy(z, y))
    crit.set_stage(2)
    assert crit.stage == 2 and "stage=2" in repr(crit)
    torch.testing.assert_close(crit(z, y, h), LF.ib_loss(z, y, stage=2, feature_norm=h))
    fresh = lt.create_loss("ib")
    fresh.load_state_dict(crit.state_dict())  # a resumed run stays in stage 2
    assert fresh.stage == 2
    torch.testing.assert_close(fresh(z, y, h), crit(z, y, h))


def test_ib_bad_input():
    z, y = _problem(n=4, seed=54, dtype=torch.float32)
    crit = lt.create_loss("ib", stage=2)
    with pytest.raises(ValueError, match=r"`feature_norm`.*stage 2"):
        crit(z, y)
    with pytest.raises(ValueError, match=r"`feature_norm` to be of shape \(4,\)"):
        crit(z, y, torch.ones(3))
    with pytest.raises(ValueError, match=r"`feature_norm`.*non-negative"):
        crit(z, y, -torch.ones(4))
    with pytest.raises(ValueError, match="`feature_norm` to be None when building"):
        lt.create_loss("ib", feature_norm=torch.ones(4))
    with pytest.raises(ValueError, match="`stage`"):
        lt.create_loss("ib", stage=3)
    with pytest.raises(ValueError, match="`stage`"):
        crit.set_stage(0)


# --------------------------------------------------------------------- label-aware smoothing
def test_label_aware_epsilons_schedules():
    counts = [1000, 600, 300, 100, 40, 10]
    shapes = {
        s: LF.label_aware_epsilons(counts, 0.4, 0.1, s) for s in ("concave", "linear", "convex")
    }
    for eps in shapes.values():
        torch.testing.assert_close(eps[[0, -1]], _tensor([0.4, 0.1]))  # ε_1 at n_1, ε_K at n_K
        assert (eps[:-1] >= eps[1:]).all()  # more samples, more smoothing
    assert (shapes["concave"] >= shapes["linear"] - 1e-12).all()
    assert (shapes["linear"] >= shapes["convex"] - 1e-12).all()
    for shape, eps in shapes.items():
        torch.testing.assert_close(eps, _tensor(R.label_aware_epsilons(counts, 0.4, 0.1, shape)))
    torch.testing.assert_close(LF.label_aware_epsilons([5, 5], 0.3, 0.0), _tensor([0.3, 0.3]))
    with pytest.raises(ValueError, match="`shape`"):
        LF.label_aware_epsilons(counts, shape="exp")
    with pytest.raises(ValueError, match="`smooth_head`"):
        LF.label_aware_epsilons(counts, smooth_head=1.5)


def test_label_aware_smoothing_is_the_official_formula():
    """The official LabelAwareSmoothing.forward, written with torch ops."""
    z, y = _problem(n=16, seed=60)
    eps = LF.label_aware_epsilons(COUNTS, 0.4, 0.1)[y]
    logp = F.log_softmax(z, -1)
    official = ((1 - eps) * -logp.gather(1, y[:, None]).squeeze(1) + eps * -logp.mean(-1)).mean()
    got = LF.label_aware_smoothing_loss(z, y, COUNTS, smooth_head=0.4, smooth_tail=0.1)
    torch.testing.assert_close(got, official)


# -------------------------------------------------------------------------------------- LADE
def test_lade_mean_is_the_official_total():
    z, y = _problem(n=24, seed=70)
    y[y == 4] = 0  # class 4 absent from the batch: it still enters LADER (official code)
    for alpha, lam in ((0.1, 0.1), (0.05, 0.5), (1.0, 0.0)):
        pc = sum(R.lade_pc_ce(z.tolist(), y.tolist(), COUNTS)) / len(y)
        want = pc + alpha * R.lade_lader(z.tolist(), y.tolist(), COUNTS, lam)
        got = LF.lade_loss(z, y, COUNTS, alpha=alpha, remine_lambda=lam)
        torch.testing.assert_close(got, _tensor(want))
        total = LF.lade_loss(z, y, COUNTS, alpha=alpha, remine_lambda=lam, reduction="sum")
        torch.testing.assert_close(total, got * len(y))


def test_lade_official_code_transcribed_with_torch():
    """LADELoss.forward + PriorCELoss.forward of the official code (without its +1e-9)."""
    z, y = _problem(n=32, seed=71)
    prior = _tensor(COUNTS) / sum(COUNTS)
    pc = F.cross_entropy(z + prior.log(), y)
    onehot = (y == torch.arange(C).view(-1, 1)).double()  # C x N
    per_cls = z.T * onehot
    spread = (z - prior.log() + math.log(1 / C)).T
    first = per_cls.sum(-1) / onehot.sum(-1).clamp_min(1)
    second = torch.logsumexp(spread, -1) - math.log(z.shape[0])
    lader = -((first - second - 0.1 * second**2) * prior).sum()
    torch.testing.assert_close(LF.lade_loss(z, y, COUNTS), pc + 0.1 * lader)


# ----------------------------------------------------------------------------------- Bal-BCE
def test_bal_bce_is_the_official_formula_on_mixup_targets():
    z, y = _problem(n=8, seed=80)
    g = torch.Generator().manual_seed(80)
    lam = 0.7
    perm = torch.randperm(8, generator=g)
    t = lam * F.one_hot(y, C).double() + (1 - lam) * F.one_hot(y[perm], C).double()  # mixup
    prior = _tensor(COUNTS) / sum(COUNTS)
    official = C * F.binary_cross_entropy_with_logits(z + prior.log() - (1 - prior).log(), t)
    torch.testing.assert_close(LF.balanced_bce_loss(z, t, COUNTS), official)
    torch.testing.assert_close(
        LF.balanced_bce_loss(z, t, COUNTS, reduction="none"),
        _tensor(R.balanced_bce(z.tolist(), t.tolist(), COUNTS, reduction="none")),
    )


def test_bal_bce_smoothing_of_index_targets_is_timms():
    z, y = _problem(n=8, seed=81)
    eps = 0.1
    off, on = eps / C, 1 - eps + eps / C  # timm's one-hot smoothing, as LiVT's _one_hot
    t = torch.full((8, C), off, dtype=torch.float64).scatter_(1, y[:, None], on)
    torch.testing.assert_close(
        LF.balanced_bce_loss(z, y, COUNTS, label_smoothing=eps),
        LF.balanced_bce_loss(z, t, COUNTS),
    )


def test_bal_bce_two_equal_classes_is_plain_bce():
    z, y = _problem(n=8, c=2, seed=82)
    t = F.one_hot(y, 2).double()
    torch.testing.assert_close(
        LF.balanced_bce_loss(z, t, [5, 5]), 2 * F.binary_cross_entropy_with_logits(z, t)
    )


def test_bal_bce_bad_input():
    z, y = _problem(n=4, seed=83)
    with pytest.raises(ValueError, match=r"`target`.*probabilities"):
        LF.balanced_bce_loss(z, torch.full((4, C), 1.5, dtype=torch.float64), COUNTS)
    with pytest.raises(ValueError, match=r"`class_counts`.*at least 2"):
        LF.balanced_sigmoid_bias([7])
    with pytest.raises(ValueError, match="`class_counts` to be of length"):
        LF.balanced_bce_loss(z, y, COUNTS[:3])


# ------------------------------------------------------------------------ properties, all six
def _random_counts(g, c):
    return (torch.randint(1, 2000, (c,), generator=g)).tolist()


CASES = {
    "cdt": lambda z, y, n, g: (
        {"gamma": 0.25},
        R.cdt(z.tolist(), y.tolist(), n, 0.25),
    ),
    "label-aware-smoothing": lambda z, y, n, g: (
        {"shape": "convex", "smooth_tail": 0.05},
        R.label_aware_smoothing(z.tolist(), y.tolist(), n, 0.3, 0.05, "convex"),
    ),
    "lade": lambda z, y, n, g: ({}, R.lade_per_sample(z.tolist(), y.tolist(), n, 0.1, 0.1)),
    "gcl": lambda z, y, n, g: (
        {"seed": 17},
        R.gcl(z.tolist(), y.tolist(), n, 0.5, 0.0, 30.0, seed=17),
    ),
    "softmax-eql": lambda z, y, n, g: (
        {"seed": 4, "threshold": 0.2},
        R.softmax_eql(z.tolist(), y.tolist(), n, 0.2, 0.9, seed=4),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_property_matches_reference(name):
    @PROPERTY
    @given(
        n=st.integers(1, 9),
        c=st.integers(2, 7),
        seed=st.integers(0, 2**31 - 1),
        spread=st.sampled_from([1.0, 4.0, 30.0]),
    )
    def check(n, c, seed, spread):
        g = torch.Generator().manual_seed(seed)
        z = (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * spread
        y = torch.randint(0, c, (n,), generator=g)
        counts = _random_counts(g, c)
        kw, want = CASES[name](z, y, counts, g)
        fn = lt.get_loss_info(name).function
        got = fn(z, y, counts, reduction="none", **kw)
        torch.testing.assert_close(got, _tensor(want))

    check()


@PROPERTY
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 7),
    seed=st.integers(0, 2**31 - 1),
    soft=st.booleans(),
    eps=st.sampled_from([0.0, 0.1]),
)
def test_bal_bce_property_matches_reference(n, c, seed, soft, eps):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * 5
    t = torch.rand(n, c, generator=g, dtype=torch.float64)
    t = t if soft else (t > 0.5).double()
    counts = _random_counts(g, c)
    for reduction in ("none", "mean"):
        want = R.balanced_bce(z.tolist(), t.tolist(), counts, None, reduction, eps)
        got = LF.balanced_bce_loss(z, t, counts, reduction=reduction, label_smoothing=eps)
        torch.testing.assert_close(got, _tensor(want))


def test_ib_stage_two_compiles():
    """The contract compiles the default (stage 1); stage 2 with its feature-norm input too."""
    torch._dynamo.reset()
    z, y = _problem(n=6, seed=55, dtype=torch.float32)
    h = _feature_norm(6, 55, torch.float32)
    crit = lt.create_loss("ib", stage=2, weight=torch.tensor([0.5, 2.0, 1.0, 3.0, 0.25]))
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    eager = crit(z1, y, h)
    eager.backward()
    compiled = torch.compile(crit)(z2, y, h)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(z2.grad, z1.grad)


@pytest.mark.parametrize("name", ["gcl", "softmax-eql", "ensloss"])
def test_a_random_loss_without_a_seed_follows_torch_manual_seed(name):
    """A multi-seed study that sets torch.manual_seed(s) and builds its loss gets noise of its
    own for each s (the modules used a fixed base seed 0 for every run), and the same s the
    same noise; the base seed drawn is a buffer, so a resumed module continues it."""
    counts = [40, 20, 10, 5, 2]

    def build(s):
        torch.manual_seed(s)
        if name == "ensloss":
            return lt.create_loss(name)
        return lt.create_loss_for_counts(name, counts)

    bases = [int(build(s).noise_seed) for s in (0, 0, 1)]
    assert bases[0] == bases[1] != bases[2]
    crit = build(3)
    fresh = lt.create_loss(name) if name == "ensloss" else lt.create_loss_for_counts(name, counts)
    fresh.load_state_dict(crit.state_dict())
    assert int(fresh.noise_seed) == int(crit.noise_seed)
    # an explicit seed is what it says, whatever the global generator
    torch.manual_seed(5)
    kw = {"seed": 11}
    made = (
        lt.create_loss(name, **kw)
        if name == "ensloss"
        else lt.create_loss_for_counts(name, counts, **kw)
    )
    assert int(made.noise_seed) == 11
