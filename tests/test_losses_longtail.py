"""Tests specific to the long-tail losses of longtail/losses/{seesaw,equalization,longtail_extra}.py
(the registry-wide contract covers what every loss owes; these cover what it cannot: carried state,
schedules, inverse maps, the papers' own equivalences beyond it, and properties over many inputs).
"""

from __future__ import annotations

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
