"""Tests specific to the calibration and metric-surrogate losses and to PESG.

* The batch-level losses (``_reference_calibration.BATCH_LEVEL``: AnyLoss, Dice, the macro-AUC
  surrogates) against the registry-wide contract minus ``reduction="none"``, which they refuse:
  the contract in tests/test_loss_contract.py calls every loss with it.
* The papers' equivalences beyond the contract's (AnyLoss F1 is Dice on amplified scores, the
  reweighted univariate logistic loss is class-balanced BCE, dual focal is focal where nothing
  is below the target, CA is the official training loop's loss, LibAUC's AUC-M formula).
* AUC-M's state (a, b, α) and PESG: one step against a hand computation, the stage's reference
  point, the projection of α, a short training run.
* Hypothesis properties where the input space is large (ties, soft targets, ignored entries).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _reference as ref
import _reference_calibration as cref
import longtail as lt
from longtail.optim import PESG
from test_loss_properties import LAYOUTS, _check_layouts

COUNTS, C = ref.COUNTS, ref.C
WEIGHT = [0.5, 2.0, 1.0, 3.0, 0.25]
BATCH_LEVEL = sorted(cref.BATCH_LEVEL)
BATCH_REDUCTIONS = ("mean", "sum")

PROPERTY = settings(
    deadline=None, max_examples=30, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def inputs(n=8, dtype=torch.float64, seed=0, spatial=(), c=C):
    g = torch.Generator().manual_seed(seed)
    z = ((torch.rand(n, c, *spatial, generator=g, dtype=torch.float64) * 2 - 1) * 3).to(dtype)
    t = (torch.rand(z.shape, generator=g) > 0.5).to(dtype)
    return z, t


def expected(name, z, t, setting, weight=None, reduction="mean"):
    kw = {**lt.get_loss_info(name).defaults, **setting}
    target = t.double().tolist() if t.is_floating_point() else t.tolist()
    out = cref.REFERENCES[name].loss(z.double().tolist(), target, COUNTS, weight, reduction, kw)
    return torch.tensor(out, dtype=torch.float64)


def tensors(setting):
    return {k: torch.tensor(v) if isinstance(v, list) else v for k, v in setting.items()}


# --------------------------------------------------------- batch-level losses: the contract
def test_batch_level_losses_are_listed_with_their_reason():
    assert set(BATCH_LEVEL) <= set(lt.list_losses())
    for name in BATCH_LEVEL:
        assert cref.BATCH_LEVEL[name]
        assert lt.get_loss_info(name).target == "multilabel"
        assert lt.get_loss_info(name).family == "metric-surrogate"


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_refuses_reduction_none(name):
    z, t = inputs(n=4)
    with pytest.raises(ValueError, match=r"`reduction` to be 'mean' or 'sum'.*batch-level"):
        lt.create_loss(name, reduction="none")
    with pytest.raises(ValueError, match="batch-level"):
        lt.get_loss_info(name).function(z, t, reduction="none")
    crit = lt.create_loss(name)
    crit.reduction = "none"  # what a training engine does to a built loss
    with pytest.raises(ValueError, match="batch-level"):
        crit(z, t)


@pytest.mark.parametrize("name", BATCH_LEVEL)
@pytest.mark.parametrize("reduction", BATCH_REDUCTIONS)
def test_batch_level_matches_reference(name, reduction):
    z, t = inputs(n=10)
    for setting in cref.REFERENCES[name].settings:
        for weight in (None, WEIGHT):
            w = None if weight is None else torch.tensor(weight)
            crit = lt.create_loss(name, **tensors(setting), weight=w, reduction=reduction)
            want = expected(name, z, t, setting, weight, reduction)
            torch.testing.assert_close(
                crit.double()(z, t), want, msg=lambda m, s=setting: f"{s}: {m}"
            )
            fn = lt.get_loss_info(name).function(
                z, t, **tensors(setting), weight=w, reduction=reduction
            )
            torch.testing.assert_close(crit.double()(z, t), fn, rtol=0, atol=0)


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_soft_targets_and_class_indices(name):
    g = torch.Generator().manual_seed(1)
    z, _ = inputs(n=9, seed=1)
    soft = torch.rand(z.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(lt.create_loss(name)(z, soft), expected(name, z, soft, {}))
    y = torch.randint(0, C, (9,), generator=g)  # one-vs-rest: one-hot rows
    onehot = F.one_hot(y, C).double()
    torch.testing.assert_close(lt.create_loss(name)(z, y), expected(name, z, onehot, {}))


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_batch_of_one_absent_classes_empty_batch(name):
    z, t = inputs(n=1, seed=2)
    for reduction in BATCH_REDUCTIONS:
        got = lt.create_loss(name, reduction=reduction).double()(z, t)
        assert got.shape == ()
        torch.testing.assert_close(got, expected(name, z, t, {}, None, reduction))
    z, t = inputs(n=10, seed=2)
    t[:, 2:] = 0  # classes 2.. never positive: left out (AUCs, F-β) or near-zero terms (Dice)
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    torch.testing.assert_close(
        lt.create_loss(name, weight=w).double()(z, t), expected(name, z, t, {}, WEIGHT)
    )
    z, t = inputs(n=0, dtype=torch.float32)
    z.requires_grad_(True)
    for reduction in BATCH_REDUCTIONS:
        out = lt.create_loss(name, reduction=reduction)(z, t)
        assert out.shape == () and out.item() == 0.0
        (grad,) = torch.autograd.grad(out, z)  # attached to the graph
        assert grad.shape == z.shape


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_gradcheck(name):
    z, t = inputs(n=5, seed=3)
    z.requires_grad_(True)
    for setting in cref.REFERENCES[name].settings:
        for reduction, w in (("mean", torch.tensor(WEIGHT)), ("sum", None)):
            crit = lt.create_loss(name, **tensors(setting), weight=w, reduction=reduction).double()
            assert torch.autograd.gradcheck(lambda x, c=crit: c(x, t), (z,), fast_mode=True)


@pytest.mark.parametrize("name", BATCH_LEVEL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_batch_level_extreme_and_half_inputs(name, dtype):
    g = torch.Generator().manual_seed(5)
    z = (torch.randint(0, 2, (12, C), generator=g) * 2 - 1).to(dtype) * 1e4
    z[0] = 1e4
    t = (torch.rand(12, C, generator=g) > 0.5).to(dtype)
    for reduction in BATCH_REDUCTIONS:
        x = z.clone().requires_grad_(True)
        out = lt.create_loss(name, reduction=reduction)(x, t)
        out.backward()
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all() and torch.isfinite(x.grad.float()).all()
    zh, th = inputs(n=16, dtype=torch.float32, seed=4)
    zh = zh.to(dtype).requires_grad_(True)
    crit = lt.create_loss(name)
    out = crit(zh, th.to(dtype))
    torch.testing.assert_close(out, crit(zh.detach().float(), th), rtol=1e-5, atol=1e-5)
    out.backward()
    assert zh.grad.dtype == dtype and torch.isfinite(zh.grad.float()).all()


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_ignoring_an_entry_is_dropping_it(name):
    z, _ = inputs(n=12, seed=6)
    y = torch.randint(0, C, (12,), generator=torch.Generator().manual_seed(6))
    keep = torch.tensor([True, False, True] * 4)
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    for ignore_index in (-100, 3):
        yi = y.masked_fill(~keep, ignore_index)
        if ignore_index == 3:
            yi[keep & (y == 3)] = 0
        for reduction in BATCH_REDUCTIONS:
            crit = lt.create_loss(name, weight=w, ignore_index=ignore_index, reduction=reduction)
            x = z.clone().requires_grad_(True)
            out = crit.double()(x, yi)
            torch.testing.assert_close(out, crit(z[keep], yi[keep]))
            out.backward()
            assert (x.grad[~keep] == 0).all()
        everything = lt.create_loss(name, ignore_index=ignore_index).double()
        assert everything(z, torch.full_like(y, ignore_index)).item() == 0.0
    # a dense target entry equal to ignore_index is left out (a missing label)
    z, t = inputs(n=8, seed=7)
    missing = t.clone()
    missing[2, 1] = -100
    dropped = t[torch.arange(8) != 2]
    crit = lt.create_loss(name).double()
    x = z.clone().requires_grad_(True)
    out = crit(x, missing)
    out.backward()
    assert x.grad[2, 1] == 0
    cols = [k for k in range(C) if k != 1]
    # column 1 without row 2, the other columns whole: compare class by class with sum
    per_class = lt.create_loss(name, reduction="sum").double()
    by_class = sum(per_class(z[:, k : k + 1], t[:, k : k + 1]) for k in cols) + per_class(
        z[torch.arange(8) != 2, 1:2], dropped[:, 1:2]
    )
    torch.testing.assert_close(lt.create_loss(name, reduction="sum").double()(z, missing), by_class)


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_spatial_and_binary_inputs(name):
    z, t = inputs(n=2, seed=8, spatial=(3, 2))
    flat_z = z.movedim(1, -1).reshape(-1, C)
    flat_t = t.movedim(1, -1).reshape(-1, C)
    crit = lt.create_loss(name).double()
    torch.testing.assert_close(crit(z, t), crit(flat_z, flat_t))
    # (N,) logits and 0/1 targets: one binary problem, the papers' own setting
    torch.testing.assert_close(
        crit(z[:, 0, 0, 0], t[:, 0, 0, 0]), crit(z[:, :1, 0, 0], t[:, :1, 0, 0])
    )
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z[:, 0, 0, 0], t[:, :2, 0, 0])


@pytest.mark.parametrize("name", BATCH_LEVEL)
@pytest.mark.parametrize(
    "layout", ["transposed", "classes-strided", "batch-strided", "offset-strided"]
)
def test_batch_level_layouts(name, layout):
    for dtype in (torch.float64, torch.float32, torch.float16):
        g = torch.Generator().manual_seed(3)
        z = (torch.randn(6, 5, generator=g, dtype=torch.float64) * 3).to(dtype)
        t = (torch.rand(z.shape, generator=g) > 0.5).to(dtype)
        for reduction in BATCH_REDUCTIONS:
            crit = lt.create_loss_for_counts(name, [50, 20, 5, 2, 1], reduction=reduction)
            _check_layouts(crit, z, t, g, [layout])
    assert layout in LAYOUTS


@st.composite
def batch_problems(draw, name):
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 5))
    spatial = draw(st.lists(st.integers(1, 3), max_size=1))
    dtype = draw(st.sampled_from([torch.float64, torch.float32, torch.float16]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    z = ((torch.rand(n, c, *spatial, generator=g, dtype=torch.float64) * 2 - 1) * 4).to(dtype)
    t = torch.rand(z.shape, generator=g, dtype=torch.float64)
    if not draw(st.booleans()):
        t = (t > 0.5).double()
    weight = torch.rand(c, generator=g) + 0.1 if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(BATCH_REDUCTIONS))
    crit = lt.create_loss(name, weight=weight, reduction=reduction)
    return crit, z, t.to(dtype), g


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_every_layout_property(name):
    @PROPERTY
    @given(problem=batch_problems(name))
    def check(problem):
        _check_layouts(*problem)

    check()


@pytest.mark.parametrize("name", BATCH_LEVEL)
def test_batch_level_matches_reference_property(name):
    """Soft and 0/1 targets, any number of classes, ignored entries: the loop reference."""

    @PROPERTY
    @given(
        n=st.integers(1, 5),
        c=st.integers(1, 4),
        soft=st.booleans(),
        seed=st.integers(0, 2**31 - 1),
        setting=st.sampled_from(cref.REFERENCES[name].settings),
    )
    def check(n, c, soft, seed, setting):
        g = torch.Generator().manual_seed(seed)
        z = (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * 4
        t = torch.rand(n, c, generator=g, dtype=torch.float64)
        t = t if soft else (t > 0.5).double()
        for reduction in BATCH_REDUCTIONS:
            got = lt.create_loss(name, **setting, reduction=reduction)(z, t)
            torch.testing.assert_close(got, expected(name, z, t, setting, None, reduction))

    check()


# --------------------------------------------------------------------- paper equivalences
def test_anyloss_f1_is_dice_on_amplified_scores():
    """AnyLoss's F1 is Dice (soft F1, no smoothing) on the amplified probability: with
    ŷ = σ(L(σ(z) − ½)), Dice of logits L(σ(z) − ½) has the same sigmoid."""
    z, t = inputs(n=12, seed=9)
    for amplifier in (73.0, 5.0):
        got = lt.functional.any_loss(z, t, amplifier=amplifier)
        want = lt.functional.dice_loss(amplifier * (torch.sigmoid(z) - 0.5), t, smooth=0.0)
        torch.testing.assert_close(got, want)


def test_anyloss_binary_is_the_official_formulas():
    """(N,) logits: the README's TF formulas (without its 1e-5), written out with torch."""
    g = torch.Generator().manual_seed(10)
    z = torch.randn(20, generator=g, dtype=torch.float64) * 2
    y = (torch.rand(20, generator=g) > 0.7).double()
    yp = 1 / (1 + torch.exp(-73 * (torch.sigmoid(z) - 0.5)))
    y1 = y.sum()
    y0 = len(y) - y1
    tp = (y * yp).sum()
    tn = len(y) - y.sum() - yp.sum() + (y * yp).sum()
    want = {
        "f-beta": 1 - 2 * tp / (y1 + yp.sum()),
        "g-mean": 1 - tp * tn / (y1 * y0),
        "balanced-accuracy": 1 - (y0 * tp + y1 * tn) / (2 * y1 * y0),
    }
    for metric, value in want.items():
        torch.testing.assert_close(lt.functional.any_loss(z, y, metric=metric), value)


def test_macro_auc_univariate_logistic_is_class_balanced_bce():
    z, t = inputs(n=16, seed=11)
    n_pos, n_neg = t.sum(0), (1 - t).sum(0)
    w = t / n_pos + (1 - t) / n_neg
    bce = F.binary_cross_entropy_with_logits(z, t, weight=w, reduction="sum") / C
    torch.testing.assert_close(lt.functional.macro_auc_univariate_loss(z, t), bce)


def test_macro_auc_pairwise_hinge_is_zero_when_ranked_with_margin():
    g = torch.Generator().manual_seed(12)
    t = (torch.rand(10, C, generator=g) > 0.5).double()
    t[0], t[1] = 1, 0  # every class has a positive and a negative
    z = torch.where(t > 0, 1.0, -0.01) + torch.rand(10, C, generator=g, dtype=torch.float64) * 0.001
    assert lt.functional.macro_auc_pairwise_loss(z, t, surrogate="hinge").item() == 0.0
    # and its logistic surrogate is below log 2 (every pair ranked) but positive
    assert 0 < lt.functional.macro_auc_pairwise_loss(z, t).item() < math.log(2)


def test_macro_auc_pairwise_soft_path_on_hard_targets():
    """The soft-target path (every ordered pair, weighted) equals the 0/1 path."""
    z, t = inputs(n=9, seed=13)
    for surrogate in ("logistic", "hinge"):
        hard = lt.functional.macro_auc_pairwise_loss(z, t, surrogate=surrogate)
        soft = lt.functional.macro_auc_pairwise_loss(
            z, t * (1 - 1e-12) + 1e-13, surrogate=surrogate
        )
        torch.testing.assert_close(hard, soft, rtol=1e-9, atol=1e-9)


def test_dual_focal_is_focal_where_nothing_is_below_the_target():
    """p_j = 0 when the target has the smallest logit: dual focal is focal there."""
    g = torch.Generator().manual_seed(14)
    z = torch.randn(8, C, generator=g, dtype=torch.float64)
    y = z.argmin(1)
    for gamma in (0.5, 2.0, 5.0):
        torch.testing.assert_close(
            lt.functional.dual_focal_loss(z, y, gamma=gamma),
            lt.functional.focal_loss(z, y, gamma=gamma),
        )


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), gamma=st.sampled_from([0.5, 1.0, 5.0]))
def test_dual_focal_with_ties_matches_reference(seed, gamma):
    """Integer logits: ties with the target (never p_j), ties below it, a target at the top."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(-2, 3, (6, C), generator=g).double()
    y = torch.randint(0, C, (6,), generator=g)
    want = ref.reduce(
        [cref.dual_focal_row(r, t, gamma) for r, t in zip(z.tolist(), y.tolist(), strict=True)],
        y.tolist(),
    )
    torch.testing.assert_close(
        lt.functional.dual_focal_loss(z, y, gamma=gamma), torch.tensor(want, dtype=torch.float64)
    )


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), margin=st.sampled_from([0.0, 0.5, 1.0, 10.0]))
def test_acls_with_ties_matches_reference(seed, margin):
    """Integer logits: tied maxima are all positives of the regulariser (the official code)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(-2, 3, (6, C), generator=g).double()
    y = torch.randint(0, C, (6,), generator=g)
    kw = {"pos_lambda": 0.7, "neg_lambda": 0.3, "alpha": 1.0, "margin": margin}
    want = ref.reduce(
        [cref.acls_row(r, t, **kw) for r, t in zip(z.tolist(), y.tolist(), strict=True)], y.tolist()
    )
    torch.testing.assert_close(
        lt.functional.acls_loss(z, y, **kw), torch.tensor(want, dtype=torch.float64)
    )


def test_acls_margin_must_be_non_negative():
    with pytest.raises(ValueError, match="`margin`"):
        lt.create_loss("acls", margin=-1.0)


def test_correctness_aware_balanced_is_the_official_training_loss():
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(12, C, generator=g, dtype=torch.float64) * 2
        y = torch.randint(0, C, (12,), generator=g)
        want = cref.correctness_aware_official(z.tolist(), y.tolist())
        torch.testing.assert_close(
            lt.functional.correctness_aware_loss(z, y), torch.tensor(want, dtype=torch.float64)
        )


def test_correctness_aware_trains_a_temperature():
    """A calibrator: a temperature fitted with CA on over-confident logits lowers confidence."""
    g = torch.Generator().manual_seed(15)
    y = torch.randint(0, C, (400,), generator=g)
    z = torch.randn(400, C, generator=g) * 2
    z[torch.arange(400), y] += 1.0  # ~ 70% accuracy
    z = z * 5  # over-confident
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([log_t], lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        lt.functional.correctness_aware_loss(z / log_t.exp(), y).backward()
        opt.step()
    assert log_t.exp().item() > 2


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), tau=st.sampled_from([2.0, 3.0]))
def test_psl_is_between_the_indicator_and_the_softmax_loss(seed, tau):
    """The paper's requirement I(d ≥ 0) ≤ exp(σ(d)) ≤ exp(d) on d ∈ [−1, 1] (cosine scores,
    τ ≥ 2) gives log #{j: d_j ≥ 0} ≤ PSL ≤ CE(z/τ), for each activation."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(7, C, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, C, (7,), generator=g)
    upper = F.cross_entropy(z / tau, y, reduction="none")
    lower = torch.log((z >= z.gather(1, y[:, None])).sum(1).double())
    for activation in ("tanh", "atan", "relu"):
        psl = lt.functional.pairwise_softmax_loss(
            z, y, tau=tau, activation=activation, reduction="none"
        )
        assert (psl <= upper + 1e-12).all() and (psl >= lower - 1e-12).all(), activation


def test_psl_tanh_gradient_for_any_tau_star():
    z = torch.randn(5, C, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, C, (5,))
    for tau, tau_star in ((1.0, 1.0), (2.0, 0.3), (0.5, 3.0)):
        assert torch.autograd.gradcheck(
            lambda x, a=tau, b=tau_star: lt.functional.pairwise_softmax_loss(
                x, y, tau=a, tau_star=b
            ),
            (z,),
        )


# ----------------------------------------------------------------------------- AUC-M state
AUCM_STATES = (
    {"margin": 0.6, "a": 0.4, "b": 0.2, "alpha": 0.5},
    {"imratio": 0.3, "alpha": 0.8, "b": -0.1},
    {
        "imratio": cref.PER_CLASS,
        "a": cref.PER_CLASS,
        "alpha": [0.5, 0.0, 1.0, 2.0, 0.3],
        "margin": 0.9,
    },
)


@pytest.mark.parametrize("setting", AUCM_STATES)
@pytest.mark.parametrize("reduction", ("mean", "sum", "none"))
def test_auc_m_with_state_matches_reference(setting, reduction):
    """Non-zero a, b, α (the contract can only pass the module's initial zeros)."""
    z, t = inputs(n=10, seed=16)
    for weight in (None, WEIGHT):
        w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
        kw = {**lt.get_loss_info("auc-m").defaults, **setting}
        rows = cref.auc_m(
            z.tolist(), t.tolist(), kw["margin"], kw["imratio"], kw["a"], kw["b"], kw["alpha"]
        )
        want = torch.tensor(ref.reduce_elements(rows, weight, reduction), dtype=torch.float64)
        got = lt.functional.auc_m_loss(z, t, **tensors(setting), weight=w, reduction=reduction)
        torch.testing.assert_close(got, want)
        module = lt.create_loss("auc-m", **tensors(setting), weight=w, reduction=reduction).double()
        torch.testing.assert_close(module(z, t), want)


def test_auc_m_mean_is_libauc_multilabel_formula():
    """LibAUC's MultiLabelAUCMLoss (v1, batch p, with the margin the paper has), written out."""
    z, t = inputs(n=12, seed=17)
    a, b, alpha = (
        torch.rand(C, dtype=torch.float64),
        torch.rand(C, dtype=torch.float64),
        torch.rand(C, dtype=torch.float64),
    )
    m = 0.7
    h = torch.sigmoid(z)
    total = 0
    for k in range(C):
        hk, yk = h[:, k], t[:, k]
        p = (yk == 1).sum() / len(yk)
        total = total + (
            (1 - p) * torch.mean((hk - a[k]) ** 2 * (yk == 1))
            + p * torch.mean((hk - b[k]) ** 2 * (yk == 0))
            + 2
            * alpha[k]
            * (p * (1 - p) * m + torch.mean(p * hk * (yk == 0) - (1 - p) * hk * (yk == 1)))
            - p * (1 - p) * alpha[k] ** 2
        )
    got = lt.functional.auc_m_loss(z, t, margin=m, a=a, b=b, alpha=alpha)
    torch.testing.assert_close(got, total / C)


def test_auc_m_state_gradients_match_the_elementwise_form():
    """The fused "mean"/"sum" path and the element-wise ("none") path: same gradients for the
    logits and for a, b, α (0-dim and per-class)."""
    z, t = inputs(n=9, seed=18)
    t[0, 0] = -100  # an ignored entry
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    for shape in ((), (C,)):
        state = {
            k: (torch.rand(shape, dtype=torch.float64) + 0.1).requires_grad_(True)
            for k in ("a", "b", "alpha")
        }
        x = z.clone().requires_grad_(True)
        fused = lt.functional.auc_m_loss(x, t, margin=0.8, **state, weight=w, reduction="sum")
        g1 = torch.autograd.grad(fused, [x, *state.values()])
        x2 = z.clone().requires_grad_(True)
        elem = lt.functional.auc_m_loss(x2, t, margin=0.8, **state, weight=w, reduction="none")
        g2 = torch.autograd.grad(elem.sum(), [x2, *state.values()])
        torch.testing.assert_close(fused, elem.sum())
        for a_, b_ in zip(g1, g2, strict=True):
            torch.testing.assert_close(a_, b_)
        assert torch.autograd.gradcheck(
            lambda x, a, b, al: lt.functional.auc_m_loss(
                x, t, margin=0.8, a=a, b=b, alpha=al, weight=w
            ),
            (x, *state.values()),
        )


def test_auc_m_module_state():
    crit = lt.create_loss("auc-m", a=0.3)
    assert "a=0.3" in repr(crit)
    assert crit.state_arguments() == {"a": 0.3, "b": 0.0, "alpha": 0.0}
    z, t = inputs(n=6, dtype=torch.float32, seed=19, c=3)
    crit(z, t)  # the first call sizes the state from the logits' classes
    assert [p.shape for p in (crit.a, crit.b, crit.alpha)] == [(3,)] * 3
    assert torch.equal(crit.a, torch.full((3,), 0.3))
    assert "a=(3,)" in repr(crit)
    assert {n for n, _ in crit.named_parameters()} == {"a", "b", "alpha"}
    binary = lt.create_loss("auc-m").double()
    binary(z[:, 0].double(), t[:, 0].double())
    assert binary.a.shape == (1,) and binary.a.dtype == torch.float64
    per_class = lt.create_loss("auc-m", alpha=torch.tensor([0.1, 0.2, 0.3]))
    assert per_class.alpha.shape == (3,)
    with pytest.raises(ValueError, match="`alpha`"):
        per_class(
            inputs(n=4, dtype=torch.float32, c=4)[0], inputs(n=4, dtype=torch.float32, c=4)[1]
        )
    for bad in (1.5, [0.1, 2.0], float("nan")):
        with pytest.raises(ValueError, match="`imratio`"):
            lt.create_loss("auc-m", imratio=bad)
    assert lt.create_loss("auc-m", a=torch.tensor(0.25)).state_arguments()["a"] == 0.25
    with pytest.raises(ValueError, match="`margin`"):
        lt.create_loss("auc-m", margin=-1.0)


# ------------------------------------------------------------------------------------- PESG
def test_pesg_one_step_is_the_hand_computation():
    """One PESG step on a linear scorer: every gradient of the AUC-M mean written out by hand
    (h = σ(xw), p the batch's positive ratio), then v ← v − η(∇ + λ v), α ← [α + η ∇_α]_+."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 1], dtype=torch.float64)
    w0 = torch.randn(3, dtype=torch.float64)
    a0, b0, al0, m, lr, wd = 0.2, -0.1, 0.3, 1.0, 0.1, 1e-3
    w = w0.clone().requires_grad_(True)
    crit = lt.create_loss("auc-m", a=a0, b=b0, alpha=al0, margin=m).double()
    crit(x @ w, y)  # size the state (one class)
    opt = PESG([w, crit.a, crit.b], dual=[crit.alpha], lr=lr, epoch_decay=2e-3, weight_decay=wd)
    crit(x @ w, y).backward()
    opt.step()

    n = len(y)
    p = y.mean().item()
    h = torch.sigmoid(x @ w0)
    dh = (
        2 * (1 - p) * (h - a0) * y
        + 2 * p * (h - b0) * (1 - y)
        + 2 * al0 * (p * (1 - y) - (1 - p) * y)
    ) / n
    grad_w = ((dh * h * (1 - h)).unsqueeze(1) * x).sum(0)
    grad_a = (-2 * (1 - p) * (h - a0) * y).sum() / n
    grad_b = (-2 * p * (h - b0) * (1 - y)).sum() / n
    grad_alpha = (2 * (p * (1 - p) * m + p * h * (1 - y) - (1 - p) * h * y)).sum() / n - 2 * p * (
        1 - p
    ) * al0
    # first step: v_ref = v_0, so the proximal term is 0
    torch.testing.assert_close(w.detach(), w0 - lr * (grad_w + wd * w0))
    torch.testing.assert_close(
        crit.a.detach(), torch.tensor([a0 - lr * (grad_a + wd * a0)], dtype=torch.float64)
    )
    torch.testing.assert_close(
        crit.b.detach(), torch.tensor([b0 - lr * (grad_b + wd * b0)], dtype=torch.float64)
    )
    torch.testing.assert_close(
        crit.alpha.detach(),
        torch.tensor([max(0.0, al0 + lr * grad_alpha.item())], dtype=torch.float64),
    )


def test_pesg_reference_point_projection_and_stages():
    p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([0.05, 1.0], dtype=torch.float64, requires_grad=True)
    opt = PESG([p], dual=[alpha], lr=0.5, epoch_decay=0.1, weight_decay=0.0)
    v0 = p.detach().clone()
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    alpha.grad = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    opt.step()
    v1 = v0 - 0.5 * torch.tensor([1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(p.detach(), v1)
    torch.testing.assert_close(
        alpha.detach(), torch.tensor([0.0, 1.5], dtype=torch.float64)
    )  # projected
    opt.step()  # the pull toward v_ref = v_0
    v2 = v1 - 0.5 * (torch.tensor([1.0, 1.0], dtype=torch.float64) + 0.1 * (v1 - v0))
    torch.testing.assert_close(p.detach(), v2)
    opt.update_regularizer(decay_factor=10)  # v_ref ← the stage's average iterate, lr / 10
    assert opt.param_groups[0]["lr"] == opt.param_groups[1]["lr"] == 0.05
    opt.step()
    v3 = v2 - 0.05 * (torch.tensor([1.0, 1.0], dtype=torch.float64) + 0.1 * (v2 - (v1 + v2) / 2))
    torch.testing.assert_close(p.detach(), v3)
    again = PESG([p], dual=[alpha], lr=0.05, epoch_decay=0.1, weight_decay=0.0)
    again.load_state_dict(opt.state_dict())
    torch.testing.assert_close(again.state[p]["reference"], (v1 + v2) / 2)
    for bad in ({"lr": -1.0}, {"epoch_decay": float("nan")}, {"weight_decay": -1e-5}):
        with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
            PESG([p], **bad)


def test_pesg_trains_auc_m_on_an_imbalanced_problem():
    """A linear scorer trained with AUC-M + PESG ranks the rare class first (from ties: every
    score equal, AUC 0 with strict ranking); a and b end at the mean positive and negative
    scores' side of each other."""
    g = torch.Generator().manual_seed(20)
    n = 600
    y = (torch.rand(n, generator=g) < 0.1).float()
    x = torch.randn(n, 5, generator=g) + y.unsqueeze(1) * torch.tensor([1.5, -1.0, 0.0, 0.5, 0.0])
    model = torch.nn.Linear(5, 1)
    torch.nn.init.zeros_(model.bias)
    torch.nn.init.zeros_(model.weight)

    def auc():
        s = model(x).squeeze(1).detach()
        pos, neg = s[y == 1], s[y == 0]
        return (pos.unsqueeze(1) > neg.unsqueeze(0)).double().mean().item()

    assert auc() == 0.0
    crit = lt.create_loss("auc-m")
    crit(model(x[:2]), y[:2, None])
    opt = PESG([*model.parameters(), crit.a, crit.b], dual=[crit.alpha], lr=1.0)
    for stage in range(3):
        for i in range(0, n, 50):
            opt.zero_grad()
            crit(model(x[i : i + 50]), y[i : i + 50, None]).backward()
            opt.step()
        opt.update_regularizer(decay_factor=2 if stage else None)
    assert auc() > 0.85
    assert (crit.alpha >= 0).all() and (crit.a > crit.b).all()
