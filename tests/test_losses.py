"""Loss-specific behaviour: what one paper or one implementation detail asks for.

What every loss owes (its reference, gradcheck, dtypes, bad input, state, compile, equivalences)
is checked over the whole registry in tests/test_loss_contract.py; memory layouts in
tests/test_loss_properties.py.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import _reference as ref
import longtail as lt
from longtail import functional as LF
from longtail.losses import _registry

COUNTS = [500, 200, 90, 40, 12, 5]
C = len(COUNTS)
NEEDS_POSITIVE_COUNTS = ("ldam", "mm-ldam", "logit-adjusted", "balanced-softmax", "vs")


def batch(n=16, dtype=torch.float64, seed=0, classes=C):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, classes, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return z, y


def test_adjusted_primitive_gradcheck():
    z, y = batch(5)
    z.requires_grad_(True)
    a = torch.rand(C, dtype=torch.float64) + 0.5
    b = torch.randn(C, dtype=torch.float64)
    m = torch.rand(5, dtype=torch.float64)
    for kw in ({"scale": 7.0, "class_scale": a, "class_bias": b, "margin": m}, {"class_scale": a}):
        assert torch.autograd.gradcheck(
            lambda x, kw=kw: LF.adjusted_cross_entropy(x, y, **kw), (z,)
        )


def test_backward_of_a_loss_used_twice():
    # the fused backward works on a copy, so a retained graph can be differentiated again
    z, y = batch(6)
    z.requires_grad_(True)
    loss = lt.create_loss("ldam", class_counts=COUNTS).double()(z, y)
    (g1,) = torch.autograd.grad(loss, z, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, z)
    torch.testing.assert_close(g1, g2)


def test_ldam_margins_follow_the_paper():
    m = LF.ldam_margins(COUNTS, 0.5)
    torch.testing.assert_close(m, torch.tensor(ref.ldam_margins(COUNTS, 0.5), dtype=torch.float64))
    assert m[-1].item() == pytest.approx(0.5) and m.argmax().item() == C - 1


def test_focal_uses_unweighted_softmax():
    """LDAM-DRW issue #6: p taken from the weighted CE changes the focusing term. Not here."""
    z, y = batch(20)
    w = torch.linspace(0.2, 3.0, C, dtype=torch.float64)
    got = LF.focal_loss(z, y, gamma=2.0, weight=w, reduction="none")
    p = z.softmax(1).gather(1, y[:, None]).squeeze(1)
    want = -w[y] * (1 - p) ** 2 * p.log()
    torch.testing.assert_close(got, want)
    buggy_ce = F.cross_entropy(z, y, weight=w, reduction="none")
    buggy = (1 - torch.exp(-buggy_ce)) ** 2 * buggy_ce
    assert not torch.allclose(got, buggy)


def test_focal_gamma_below_one_has_finite_gradient_at_certainty():
    z = torch.tensor([[60.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    LF.focal_loss(z, torch.tensor([0]), gamma=0.5).backward()
    assert torch.isfinite(z.grad).all()


def test_logit_adjustment_at_tau_1_is_balanced_softmax():
    """CE(z + log π) and CE(z + log n) differ by the constant log Σn inside the softmax, which
    it ignores: one loss, equal up to rounding (the two Table 1 records agree in every metric).
    Another τ is another loss."""
    z, y = batch(48)
    z = z.float().requires_grad_(True)
    la = lt.create_loss("logit-adjusted", class_counts=COUNTS)(z, y)
    (g_la,) = torch.autograd.grad(la, z)
    bs = lt.create_loss("balanced-softmax", class_counts=COUNTS)(z, y)
    (g_bs,) = torch.autograd.grad(bs, z)
    torch.testing.assert_close(la, bs, rtol=1e-6, atol=0)
    torch.testing.assert_close(g_la, g_bs, rtol=1e-6, atol=1e-9)
    other = lt.create_loss("logit-adjusted", class_counts=COUNTS, tau=0.5)(z, y)
    assert abs(other.item() - bs.item()) > 1e-3


def test_adjust_logits_post_hoc():
    z, _ = batch(10)
    adj = lt.adjust_logits(z, COUNTS, tau=1.0)
    total = sum(COUNTS)
    want = [[v - math.log(COUNTS[c] / total) for c, v in enumerate(row)] for row in z.tolist()]
    torch.testing.assert_close(adj, torch.tensor(want, dtype=torch.float64))
    crit = lt.create_loss("logit-adjusted", class_counts=COUNTS, tau=0.5)
    torch.testing.assert_close(crit.adjust(z.float()), lt.adjust_logits(z.float(), COUNTS, 0.5))
    # equal logits favour the rarest class after adjustment
    assert lt.adjust_logits(torch.zeros(1, C), COUNTS).argmax().item() == C - 1
    # one unbatched row (C,), as the losses take it, is the row of a batch of one
    torch.testing.assert_close(lt.adjust_logits(z[3], COUNTS), adj[3])
    with pytest.raises(ValueError, match="of length 3"):
        lt.adjust_logits(torch.zeros(3), COUNTS)
    with pytest.raises(ValueError, match=r"\(N, C, ...\) or \(C,\)"):
        lt.adjust_logits(torch.tensor(1.0), COUNTS)


# -------------------------------------------------------------- the MM reference-code bugs
def official_mm_margin(x, y, delta_minus, beta):
    """A transcription of the official HMMLoss.obj_margins, bugs included (for contrast only)."""
    onehot = F.one_hot(y, x.shape[1]).to(x.dtype)
    neg = x * (1 - onehot)  # bug 1: target column becomes 0, so max_neg >= 0
    pos = x[:, y[0].item()]  # bug 2: the first sample's label for every row
    max_neg = neg.max(1).values
    fg = torch.clamp(pos - max_neg, min=0)[:, None]
    bg = torch.clamp(max_neg - pos, min=0)[:, None]
    # bug 3: strict masks give Δ = 0 on a tie
    return (
        torch.exp(-fg - delta_minus * beta) * (fg > 0) + torch.exp(-bg - delta_minus) * (bg > 0)
    )[:, 0]


def paper_margin(z, y, dm, beta):
    rows = zip(z.tolist(), y.tolist(), strict=True)
    return torch.tensor([ref.mm_delta_row(r, t, dm, beta) for r, t in rows], dtype=torch.float64)


# -------------------------------------------------------------- the MM reference-code bugs
# The three bugs of the official code, checked on the path training takes (the module, through the
# fused primitive), by reading back the Δ that path used: with ℓ = −log softmax(s(z − Δe_y))_y,
# e^ℓ − 1 = e^{sΔ} Σ_{j≠y} e^{s(z_j − z_y)}.
def delta_used_in_training(z, y, delta_minus=0.6, beta=1.5, scale=30.0):
    crit = lt.create_loss(
        "mm", delta_minus=delta_minus, beta=beta, scale=scale, reduction="none"
    ).double()
    loss = crit(z.double(), y)
    other = (scale * (z.double() - z.double().gather(1, y[:, None]))).scatter(
        1, y[:, None], float("-inf")
    )
    return (torch.log(torch.expm1(loss)) - torch.logsumexp(other, 1)) / scale


def test_mm_max_excludes_the_target_column():
    z = torch.tensor([[-0.2, -0.5, -0.9]])
    y = torch.tensor([0])
    for got in (delta_used_in_training(z, y), LF.mm_margin(z, y, 0.6, 1.5)):
        assert got.item() == pytest.approx(math.exp(-0.3 - 0.9))  # g = 0.3, argmax = y
        assert not torch.allclose(official_mm_margin(z, y, 0.6, 1.5).to(got), got)


def test_mm_uses_each_samples_own_target_logit():
    z = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.8]])
    y = torch.tensor([0, 2])
    for got in (delta_used_in_training(z, y), LF.mm_margin(z, y, 0.6, 1.5)):
        torch.testing.assert_close(got, paper_margin(z, y, 0.6, 1.5).to(got))
        assert got[1].item() == pytest.approx(math.exp(-0.6 - 0.9))
        assert not torch.allclose(official_mm_margin(z, y, 0.6, 1.5).to(got), got)


def test_mm_tie_counts_as_argmax():
    z = torch.tensor([[0.5, 0.5, 0.1]])
    for y in (torch.tensor([0]), torch.tensor([1])):
        for got in (delta_used_in_training(z, y), LF.mm_margin(z, y, 0.6, 1.5)):
            assert got.item() == pytest.approx(math.exp(-0.9))  # Δ⁺ with g = 0
        assert official_mm_margin(z, y, 0.6, 1.5).item() == 0.0


def test_mm_training_path_and_helper_share_delta():
    """One function computes Δ for both: on random rows, with ties and with per-sample δ⁻."""
    z, y = batch(64, seed=5)
    z[:8, 1] = z[:8, 0]  # ties
    for dm, beta, s in ((0.6, 1.5, 30.0), (1.29, 1.528, 19.0), (0.0, 0.0, 1.0)):
        # read back from the loss value: good to ~1e-7 (the log of a difference), while the
        # official code's Δ differs by ~0.1 wherever a bug bites
        torch.testing.assert_close(
            delta_used_in_training(z, y, dm, beta, s),
            paper_margin(z, y, dm, beta),
            atol=1e-6,
            rtol=1e-5,
        )
        torch.testing.assert_close(LF.mm_margin(z, y, dm, beta), paper_margin(z, y, dm, beta))
    per_sample = torch.rand(64, dtype=torch.float64)
    want = torch.tensor(
        [
            ref.mm_delta_row(r, t, d, 1.2)
            for r, t, d in zip(z.tolist(), y.tolist(), per_sample, strict=True)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(LF.mm_margin(z, y, per_sample, 1.2), want)


def test_mm_margin_matches_paper_on_random_rows():
    z, y = batch(64, torch.float32, seed=5)
    torch.testing.assert_close(LF.mm_margin(z, y, 0.7, 1.2), paper_margin(z, y, 0.7, 1.2).float())


# ------------------------------------------------------------------------------- sigmoid focal
def test_sigmoid_focal_matches_reference_and_torchvision_semantics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, C, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(8, C, generator=g) > 0.7).double()
    for alpha in (0.25, None):
        want = ref.sigmoid_focal(x.tolist(), t.tolist(), 2.0, alpha)
        got = LF.sigmoid_focal_loss(x, t, gamma=2.0, alpha=alpha, reduction="none")
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    alpha = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    pw = [1.0, 2.0, 3.0, 0.5, 1.5, 4.0]
    want = torch.tensor(
        ref.sigmoid_focal(x.tolist(), t.tolist(), 1.5, alpha, pw), dtype=torch.float64
    )
    got = LF.sigmoid_focal_loss(
        x, t, gamma=1.5, alpha=torch.tensor(alpha), pos_weight=torch.tensor(pw)
    )
    torch.testing.assert_close(got, want.mean())


def test_sigmoid_focal_gamma_zero_is_bce():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, C, generator=g, dtype=torch.float64)
    t = (torch.rand(8, C, generator=g) > 0.5).double()
    pw = torch.linspace(0.5, 3.0, C, dtype=torch.float64)
    w = torch.linspace(1.0, 2.0, C, dtype=torch.float64)
    got = LF.sigmoid_focal_loss(x, t, gamma=0.0, alpha=None, pos_weight=pw, weight=w)
    torch.testing.assert_close(
        got, F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw)
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_sigmoid_focal_gradcheck(gamma):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.rand(4, 3, generator=g, dtype=torch.float64)  # soft targets too
    pw = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda v: LF.sigmoid_focal_loss(v, t, gamma=gamma, alpha=0.3, pos_weight=pw), (x,)
    )


def test_sigmoid_focal_index_targets_half_and_extremes():
    x = torch.randn(8, C)
    y = torch.randint(0, C, (8,))
    torch.testing.assert_close(
        LF.sigmoid_focal_loss(x, y), LF.sigmoid_focal_loss(x, F.one_hot(y, C).float())
    )
    xh = x.half().requires_grad_(True)
    out = LF.sigmoid_focal_loss(xh, y)
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out.backward()
    assert torch.isfinite(xh.grad.float()).all()
    xe = (torch.sign(torch.randn(8, C)) * 1e4).requires_grad_(True)
    out = LF.sigmoid_focal_loss(xe, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(xe.grad).all()


def test_sigmoid_focal_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="target"):
        LF.sigmoid_focal_loss(x, torch.rand(4, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LF.sigmoid_focal_loss(x, torch.full((4, 3), 2.0))
    with pytest.raises(ValueError, match="class indices"):
        LF.sigmoid_focal_loss(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="alpha"):
        LF.sigmoid_focal_loss(x, torch.zeros(4, 3), alpha=torch.ones(5))
    with pytest.raises(ValueError, match="reduction"):
        LF.sigmoid_focal_loss(x, torch.zeros(4, 3), reduction="avg")


# -------------------------------------------------------------------------------- cross-entropy
def test_ce_matches_torch_in_every_mode():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(10, C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (10,), generator=g)
    y[::3] = -100
    w = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    probs = torch.softmax(torch.randn(10, C, generator=g, dtype=torch.float64), 1)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.1, "weight": w}, {"reduction": "none"}):
        torch.testing.assert_close(LF.cross_entropy(z, y, **kw), F.cross_entropy(z, y, **kw))
    torch.testing.assert_close(
        LF.cross_entropy(z, probs, weight=w, label_smoothing=0.2),
        F.cross_entropy(z, probs, weight=w, label_smoothing=0.2),
    )


@pytest.mark.parametrize("name", NEEDS_POSITIVE_COUNTS)
def test_zero_count_where_log_n_is_needed(name):
    with pytest.raises(ValueError, match=r"zero counts for 1 of \d+ classes: \[2\]"):
        lt.create_loss(name, class_counts=[5, 3, 0, 2, 2, 1])


def test_unknown_loss_names_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'ldam'"):
        lt.create_loss("ldma")
    with pytest.raises(ValueError, match="registered losses"):
        lt.create_loss("no-such-thing")


def test_mm_needs_two_classes_and_valid_hyperparameters():
    with pytest.raises(ValueError, match="at least 2 classes"):
        LF.max_margin_loss(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="beta"):
        lt.create_loss("mm", beta=-1.0)
    with pytest.raises(ValueError, match="scale"):
        lt.create_loss("ldam", class_counts=COUNTS, scale=0.0)
    with pytest.raises(ValueError, match="gamma"):
        lt.create_loss("focal", gamma=-1.0)


def test_public_api_names():
    for name in (
        "list_losses",
        "create_loss",
        "class_weights",
        "DeferredReweighting",
        "imbalance_counts",
    ):
        assert name in lt.__all__ and hasattr(lt, name)
    for name in LF.__all__:
        assert callable(getattr(LF, name))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_sigmoid_focal_index_and_dense_targets_match_reference(gamma, reduction):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, C, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, C, (5,), generator=g)
    t = F.one_hot(y, C).double()
    alpha = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    pw = [1.0, 2.0, 3.0, 0.5, 1.5, 4.0]
    w = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    per = torch.tensor(
        ref.sigmoid_focal(x.tolist(), t.tolist(), gamma, alpha, pw), dtype=torch.float64
    )
    per = per * w
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    kw = {
        "gamma": gamma,
        "alpha": torch.tensor(alpha),
        "pos_weight": torch.tensor(pw),
        "weight": w,
        "reduction": reduction,
    }
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, **kw), want)
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, t, **kw), want)
    for target in (y, t):
        xg = x.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(
            lambda v, target=target: LF.sigmoid_focal_loss(v, target, **kw), (xg,)
        )
    # scalar alpha, no pos_weight: torchvision's own setting
    per = torch.tensor(ref.sigmoid_focal(x.tolist(), t.tolist(), gamma, 0.25), dtype=torch.float64)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, y, gamma=gamma, reduction=reduction), want)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (257, 1000), (2, 100_003)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_in_place_log_softmax_is_bit_exact(shape, dtype):
    """The fused primitive writes log-probabilities over its own buffer on CPU; this must equal
    the out-of-place kernel bit for bit, whatever the row length (vectorised tails included)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 30).to(dtype)
    buf = x.clone()
    out = torch._log_softmax(buf, 1, False, out=buf)
    assert out.data_ptr() == buf.data_ptr()
    assert torch.equal(out, torch.log_softmax(x, dim=1))


def test_mm_margin_keeps_float64_precision():
    z, y = batch(32, torch.float64, seed=7)
    got = LF.mm_margin(z, y, 0.6, 1.5)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, paper_margin(z, y, 0.6, 1.5).double(), rtol=1e-14, atol=0)


def test_sigmoid_focal_module_equals_function():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, C, generator=g)
    y = torch.randint(0, C, (6,), generator=g)
    alpha, pw = torch.linspace(0.1, 0.6, C), torch.linspace(1.0, 3.0, C)
    for reduction in ("mean", "none"):
        mod = lt.create_loss(
            "sigmoid-focal", gamma=1.5, alpha=alpha, pos_weight=pw, reduction=reduction
        )
        want = LF.sigmoid_focal_loss(
            x, y, gamma=1.5, alpha=alpha, pos_weight=pw, reduction=reduction
        )
        torch.testing.assert_close(mod(x, y), want)
    mod = lt.create_loss("sigmoid-focal", alpha=alpha)
    assert set(mod.state_dict()) == {"alpha"}


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_sigmoid_focal_extreme_logits_every_gamma(gamma, reduction):
    g = torch.Generator().manual_seed(5)
    x = (torch.randint(0, 2, (8, C), generator=g) * 2 - 1).float() * 1e4
    y = torch.randint(0, C, (8,), generator=g)
    for target in (y, F.one_hot(y, C).float()):
        xr = x.clone().requires_grad_(True)
        out = LF.sigmoid_focal_loss(xr, target, gamma=gamma, reduction=reduction)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(xr.grad).all()
    # a very wrong logit costs about |x| (softplus), not a clamped constant
    wrong = LF.sigmoid_focal_loss(
        torch.tensor([[1e4, 0.0]]), torch.tensor([1]), gamma=gamma, alpha=None
    )
    assert wrong.item() == pytest.approx((1e4 + math.log(2) * 0.5**gamma) / 2, rel=1e-4)


def test_focal_alpha_scales_without_entering_the_mean():
    z, y = batch(20)
    alpha = torch.linspace(0.1, 1.0, C, dtype=torch.float64)
    want = ref.reduce(ref.focal(z.tolist(), y.tolist(), 1.5, alpha.tolist()), y.tolist())
    assert LF.focal_loss(z, y, gamma=1.5, alpha=alpha).item() == pytest.approx(want, rel=1e-10)


def test_sigmoid_focal_ignores_missing_labels():
    """A dense target entry equal to ``ignore_index`` is a missing label: no loss, no gradient,
    not counted by the mean."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(6, C, generator=g, dtype=torch.float64)
    t = (torch.rand(6, C, generator=g) > 0.5).double()
    missing = torch.rand(6, C, generator=g) < 0.3
    ti = t.masked_fill(missing, -100)
    per = LF.sigmoid_focal_loss(x, t, reduction="none")
    got = LF.sigmoid_focal_loss(x, ti, reduction="none")
    assert (got[missing] == 0).all()
    torch.testing.assert_close(got[~missing], per[~missing])
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, ti), per[~missing].mean())
    torch.testing.assert_close(LF.sigmoid_focal_loss(x, ti, reduction="sum"), per[~missing].sum())
    xg = x.clone().requires_grad_(True)
    LF.sigmoid_focal_loss(xg, ti).backward()
    assert (xg.grad[missing] == 0).all() and (xg.grad[~missing] != 0).all()


# ------------------------------------------------------------------------------- registry
MULTILABEL_FAMILY = [
    "asl",
    "cb-bce",
    "cb-focal",
    "decoupled-softmax",
    "distribution-balanced",
    "ensloss",
    "la-bce",
    "pu-mlc",
    "sigmoid-focal",
    "zlpr",
]


def test_registry_lists_and_filters():
    names = lt.list_losses()
    assert {"ce", "focal", "sigmoid-focal", "ldam", "mm", "mm-ldam", "logit-adjusted"} <= set(names)
    assert {"balanced-softmax", "vs"} <= set(names)
    assert lt.list_losses("mm*") == ["mm", "mm-ldam"]
    assert lt.list_losses(family="multilabel") == MULTILABEL_FAMILY
    assert lt.list_losses("*focal", family="imbalance") == ["focal"]
    assert set(lt.list_losses(family="imbalance")) < set(names)
    with pytest.raises(ValueError, match="`family`"):
        lt.list_losses(family="imbalanced")


@pytest.fixture
def scratch_registry(monkeypatch):
    """The registry as a copy, so a test can register losses without leaving them behind."""
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    monkeypatch.setattr(_registry, "_HELPERS", dict(_registry._HELPERS))


def _toy_loss(logits, target, *, shift=0.0, weight=None, ignore_index=-100, reduction="mean"):
    """A toy loss, CE(z + shift) (a paper: Nobody et al., 2099); shift defaults to 0."""
    return LF.cross_entropy(
        logits + shift, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )


def test_register_loss_decorator_registers_and_exports(scratch_registry):
    @lt.register_loss(
        name="toy",
        function=_toy_loss,
        family="standard",
        description="a toy",
        paper="Nobody et al., 2099",
    )
    class ToyLoss(lt.CrossEntropyLoss.__mro__[1]):  # WeightedLoss
        def __init__(self, *, shift=0.0, weight=None, ignore_index=-100, reduction="mean"):
            super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
            self.shift = shift

        def forward(self, logits, target):
            return _toy_loss(
                logits,
                target,
                shift=self.shift,
                weight=self.weight,
                ignore_index=self.ignore_index,
                reduction=self.reduction,
            )

    info = lt.get_loss_info("toy")
    assert info.cls is ToyLoss and dict(info.defaults) == {"shift": 0.0}
    assert info.keywords == ("shift", "weight", "ignore_index", "reduction")
    assert "toy" in lt.list_losses(family="standard")
    assert _registry.functional_exports()["_toy_loss"] is _toy_loss
    assert _registry.module_exports()["ToyLoss"] is ToyLoss
    assert lt.functional._toy_loss is _toy_loss  # registered late: still found
    assert lt.losses.ToyLoss is ToyLoss
    assert repr(lt.create_loss("toy", shift=1.0)).startswith("ToyLoss(shift=1.0, weight=None")
    with pytest.raises(ValueError, match="already registered"):
        lt.register_loss(
            name="toy", function=_toy_loss, family="standard", description="again", paper="-"
        )(ToyLoss)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"family": "imbalanced"}, "`family`"),
        ({"target": "dense"}, "`target`"),
        ({"name": "Toy_Loss"}, "`name`"),
        ({"description": "two\nlines"}, "`description`"),
        ({"compiles": False}, "`compile_note`"),
        ({"uncertain": ("gamma",)}, "`uncertain`"),
    ],
)
def test_register_loss_refuses_bad_entries(scratch_registry, change, match):
    kw = dict(name="toy", function=_toy_loss, family="standard", description="a toy", paper="-")
    with pytest.raises(ValueError, match=match):
        lt.register_loss(**{**kw, **change})(lt.CrossEntropyLoss)
    assert "toy" not in lt.list_losses()


def test_loss_info_defaults_must_be_the_functions():
    with pytest.raises(ValueError, match="`defaults`"):
        lt.LossInfo(
            name="toy",
            cls=lt.CrossEntropyLoss,
            function=_toy_loss,
            family="standard",
            description="a toy",
            paper="-",
            defaults={"shift": 1.0},
        )


def test_exported_names_cannot_collide(scratch_registry):
    with pytest.raises(ValueError, match="already exported"):
        lt.register_loss(
            name="ce-again",
            function=LF.cross_entropy,
            family="standard",
            description="a copy",
            paper="-",
        )(lt.CrossEntropyLoss)


def test_misspelled_keyword_names_the_accepted_ones():
    with pytest.raises(ValueError) as err:
        lt.create_loss("focal", gama=1.0)
    msg = str(err.value)
    assert (
        "Expected a keyword argument of loss" in msg
        and "gamma, alpha, weight, ignore_index, reduction" in msg
    )
    assert "Did you mean 'gamma'" in msg
    with pytest.raises(ValueError, match="Did you mean 'delta_minus'"):
        lt.create_loss("mm", delta_mins=0.5)


def test_functions_and_create_loss_share_defaults():
    """The issue's example: max_margin_loss had no default for δ⁻ and β, create_loss("mm") had."""
    z, y = batch(10)
    torch.testing.assert_close(LF.max_margin_loss(z, y), lt.create_loss("mm").double()(z, y))
    torch.testing.assert_close(
        LF.mm_ldam_loss(z, y, COUNTS), lt.create_loss("mm-ldam", class_counts=COUNTS).double()(z, y)
    )


def test_create_loss_for_counts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(lt.create_loss_for_counts("focal", COUNTS, gamma=1.0), lt.FocalLoss)
        vs = lt.create_loss_for_counts("vs", COUNTS)
    torch.testing.assert_close(vs.class_counts, torch.tensor(COUNTS, dtype=torch.float32))


# --------------------------------------------------------------- a loss as a training method
def test_loss_methods_are_built_from_the_registry():
    from longtail.engine.config import TrainConfig, get_method

    spec = get_method("loss:focal")
    assert (spec.name, spec.loss, spec.normed, spec.reweight, spec.resample) == (
        "loss:focal",
        "focal",
        False,
        "none",
        "none",
    )
    assert spec.label == "loss:focal" and spec.loss_kwargs == {}
    needs_more = {"ib": "feature_norm", "aldr-kl": "index"}  # inputs the engine does not feed
    for name in lt.list_losses():
        if lt.get_loss_info(name).single_label and name not in needs_more:
            assert get_method(f"loss:{name}").loss == name
    for name, needs in needs_more.items():
        # loss:ib trained plain cross-entropy (its first stage) and failed mid-run in its second
        with pytest.raises(ValueError, match=rf"loss:{name}, whose method needs `{needs}`"):
            get_method(f"loss:{name}")
    with pytest.raises(ValueError, match="single-label"):
        get_method("loss:sigmoid-focal")
    with pytest.raises(ValueError, match="Did you mean 'focal'"):
        get_method("loss:focla")
    with pytest.raises(ValueError, match=r"loss:NAME"):
        get_method("no-such-method")
    cfg = TrainConfig(method="loss:vs", loss_kwargs={"gamma": 0.2}, epochs=3, drw_epoch=1)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.identity() == cfg.identity()
    assert cfg.to_dict()["loss"] == "vs" and cfg.to_dict()["loss_kwargs"] == {"gamma": 0.2}
    with pytest.raises(ValueError, match="Did you mean 'gamma'"):
        TrainConfig(method="loss:vs", loss_kwargs={"gama": 0.2})


def _write_npz(path, classes=4, per_class=12, size=8, seed=0):
    """A learnable toy image set: class c has a bright square at one of four corners."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.repeat(np.arange(classes), n)
        x = rng.integers(0, 60, size=(len(y), 1, size, size)).astype(np.uint8)
        h = size // 2
        for i, c in enumerate(y):
            r, q = divmod(int(c), 2)
            x[i, 0, r * h : (r + 1) * h, q * h : (q + 1) * h] += 150
        return x, y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = make(per_class), make(4)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return str(path)


def test_train_a_loss_as_a_method(tmp_path, capsys):
    from longtail.cli import main

    npz = _write_npz(tmp_path / "toy.npz")
    out = tmp_path / "run"
    args = ["train", "--dataset", npz, "--ratio", "3", "--method", "loss:focal", "--epochs", "2"]
    args += ["--model", "small-cnn", "--width", "4", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    assert "top-1 error" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "loss:focal" and saved["loss"] == "focal" and not saved["normed"]
    assert main(args) == 0  # finished: the same run, found by its identity


def test_table1_grid_takes_loss_methods(tmp_path):
    from longtail.bench.runner import table1_jobs

    npz = _write_npz(tmp_path / "toy.npz")
    jobs = table1_jobs(npz, "quick", methods=("erm", "loss:vs"), settings=(("exp", 3.0),))
    assert [j.config.method for j in jobs] == ["erm", "loss:vs"]
    assert jobs[1].config.spec.loss == "vs" and jobs[1].config.to_dict()["loss"] == "vs"
    assert len({j.name for j in jobs}) == 2
    assert jobs[1].name == "toy_exp3_loss-vs_s0"  # no colon in a file name


# -------------------------------------------------------------------------- `longtail losses`
def test_losses_listing_shows_family_and_defaults(capsys):
    from longtail.cli import main

    assert main(["losses"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "family", "counts", "defaults", "paper", "description"]
    focal = next(line for line in lines if line.startswith("focal "))
    assert "imbalance" in focal and "gamma=2.0" in focal and "Lin et al." in focal
    assert main(["losses", "--family", "multilabel"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == MULTILABEL_FAMILY
    assert main(["losses", "mm*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mm", "mm-ldam"]
    assert rows[0]["family"] == "imbalance" and rows[0]["defaults"]["beta"] == 1.5
    assert rows[0]["uncertain"] == ["scale"] and rows[0]["stop_gradient"]
    assert main(["losses", "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + len(lt.list_losses())
    mm = next(row for row in table if row.startswith("| `mm` |"))
    assert "\\|g\\|" in mm  # a | inside a cell is escaped, or it splits the cell


def test_a_random_loss_as_a_method_draws_from_the_runs_seed():
    """Each seed of a grid gets its own noise from GCL / softmax EQL (the loss was built with
    base seed 0 for every seed), and seed 0 keeps the base seed such runs always had."""
    from longtail.engine.config import TrainConfig
    from longtail.engine.train import _Classification

    counts = torch.tensor([40, 20, 10, 5])
    data = {"num_classes": 4, "channels": 1, "counts": counts, "y_train": torch.arange(4)}
    for name in ("gcl", "softmax-eql"):
        seeds = []
        for seed in (0, 1, 2):
            cfg = TrainConfig(method=f"loss:{name}", seed=seed, model="small-cnn", width=4)
            seeds.append(int(_Classification(cfg, data, 1, 0, "t").criterion.noise_seed))
        assert seeds == [0, 1, 2], name
        cfg = TrainConfig(method=f"loss:{name}", seed=2, model="small-cnn", width=4,
                          loss_kwargs={"seed": 7})  # fmt: skip
        assert int(_Classification(cfg, data, 1, 0, "t").criterion.noise_seed) == 7
