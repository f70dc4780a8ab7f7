"""The losses against loop-based transcriptions of their papers, plus the behaviour every loss owes.

Most tests are parametrised over the registry, so a new class-index loss registered with a
reference in ``CASES`` is checked by all of them.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

import _reference as ref
import longtail as lt
from longtail import functional as LF

COUNTS = [500, 200, 90, 40, 12, 5]
C = len(COUNTS)

# name -> (keyword arguments, loop reference: (z, y, counts, kw) -> per-sample losses)
CASES = {
    "ce": ({}, lambda z, y, n, kw: ref.ce(z, y)),
    "focal": ({"gamma": 2.0}, lambda z, y, n, kw: ref.focal(z, y, kw["gamma"])),
    "ldam": (
        {"max_margin": 0.5, "scale": 30.0},
        lambda z, y, n, kw: ref.ldam(z, y, n, kw["max_margin"], kw["scale"]),
    ),
    "mm": (
        {"delta_minus": 0.6, "beta": 1.5, "scale": 30.0},
        lambda z, y, n, kw: ref.mm(z, y, kw["delta_minus"], kw["beta"], kw["scale"]),
    ),
    "mm-ldam": (
        {"delta_minus": 1.29, "beta": 1.528, "scale": 19.0, "max_margin": 0.5},
        lambda z, y, n, kw: ref.mm(z, y, kw["delta_minus"], kw["beta"], kw["scale"], n, 0.5),
    ),
    "logit-adjusted": ({"tau": 1.0}, lambda z, y, n, kw: ref.logit_adjusted(z, y, n, kw["tau"])),
    "balanced-softmax": ({}, lambda z, y, n, kw: ref.balanced_softmax(z, y, n)),
    "vs": (
        {"gamma": 0.3, "tau": 1.0},
        lambda z, y, n, kw: ref.vs(z, y, n, kw["gamma"], kw["tau"]),
    ),
}
INDEX_LOSSES = [n for n in lt.list_losses() if lt.get_loss_info(n).target == "index"]
MM_FAMILY = ("mm", "mm-ldam")  # Δ is a stop-gradient constant: gradcheck does not apply
NEEDS_POSITIVE_COUNTS = ("ldam", "mm-ldam", "logit-adjusted", "balanced-softmax", "vs")


def test_every_index_loss_has_a_reference():
    assert sorted(CASES) == sorted(INDEX_LOSSES)


def make(name: str, **extra):
    kw = {**CASES[name][0], **extra}
    return lt.create_loss(name, class_counts=COUNTS, **kw)


def batch(n=16, dtype=torch.float64, seed=0, classes=C):
    g = torch.Generator().manual_seed(seed)
    z = (torch.rand(n, classes, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return z, y


def expected(name, z, y, weight=None, reduction="mean"):
    kw, fn = CASES[name]
    per = fn(z.double().tolist(), y.tolist(), COUNTS, kw)
    out = ref.reduce(per, y.tolist(), None if weight is None else weight.tolist(), reduction)
    return torch.tensor(out, dtype=torch.float64)


def call_function(name, z, y, **kw):
    """Call the loss's function form with the registry's keywords."""
    info = lt.get_loss_info(name)
    kw = {**CASES[name][0], **kw}
    if info.needs_counts:
        return info.function(z, y, COUNTS, **kw)
    return info.function(z, y, **kw)


# --------------------------------------------------------------------- against the paper formulas
@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_loop_reference(name, reduction):
    z, y = batch(24)
    w = torch.tensor([0.2, 0.5, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)
    got = make(name, reduction=reduction).double()(z, y)
    torch.testing.assert_close(got, expected(name, z, y, reduction=reduction))
    got_w = make(name, reduction=reduction, weight=w).double()(z, y)
    torch.testing.assert_close(got_w, expected(name, z, y, weight=w, reduction=reduction))


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_module_equals_function(name):
    z, y = batch(12, torch.float32)
    w = torch.linspace(0.5, 2.0, C)
    for reduction in ("mean", "none"):
        mod = make(name, weight=w, reduction=reduction)
        fn = call_function(name, z, y, weight=w, reduction=reduction)
        torch.testing.assert_close(mod(z, y), fn)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_batch_of_one_and_absent_classes(name):
    z, _ = batch(1)
    y = torch.tensor([4])
    torch.testing.assert_close(make(name).double()(z, y), expected(name, z, y))
    z, _ = batch(10, seed=3)
    y = torch.tensor([0, 1] * 5)  # classes 2..5 absent from the batch
    torch.testing.assert_close(make(name).double()(z, y), expected(name, z, y))


# ---------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", [n for n in INDEX_LOSSES if n not in MM_FAMILY])
def test_gradcheck_float64(name):
    z, y = batch(6)
    z.requires_grad_(True)
    w = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    crit = make(name, weight=w).double()
    assert torch.autograd.gradcheck(lambda x: crit(x, y), (z,))
    crit_none = make(name, reduction="none").double()
    assert torch.autograd.gradcheck(lambda x: crit_none(x, y), (z,))


@pytest.mark.parametrize("name", MM_FAMILY)
def test_mm_gradient_treats_delta_as_constant(name):
    """The official code computes Δ under no_grad: ∂ℓ/∂z = s(softmax(s(z − Δe_y)) − e_y)/N."""
    kw = CASES[name][0]
    z, y = batch(8)
    z.requires_grad_(True)
    make(name).double()(z, y).backward()
    counts = COUNTS if name == "mm-ldam" else None
    m = ref.ldam_margins(COUNTS) if counts else [0.0] * C
    deltas = [
        ref.mm_delta_row(row, t, kw["delta_minus"] - m[t], kw["beta"])
        for row, t in zip(z.detach().tolist(), y.tolist(), strict=True)
    ]
    s = kw["scale"]
    adj = s * (z.detach() - torch.tensor(deltas, dtype=torch.float64)[:, None] * F.one_hot(y, C))
    want = s * (adj.softmax(1) - F.one_hot(y, C)) / len(y)
    torch.testing.assert_close(z.grad, want)


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
    loss = make("ldam").double()(z, y)
    (g1,) = torch.autograd.grad(loss, z, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, z)
    torch.testing.assert_close(g1, g2)


# ------------------------------------------------------------------------ dtypes and extremes
@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(name, dtype):
    z, y = batch(32, torch.float32)
    zh = z.to(dtype).requires_grad_(True)
    crit = make(name)
    out = crit(zh, y)
    assert out.dtype == torch.float32  # computed and returned in float32, as under autocast
    assert torch.isfinite(out)
    torch.testing.assert_close(out, crit(zh.detach().float(), y), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, crit(z, y), rtol=2e-2, atol=2e-2)
    out.backward()
    assert zh.grad.dtype == dtype and torch.isfinite(zh.grad.float()).all()


@pytest.mark.parametrize("name", INDEX_LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_extreme_logits_stay_finite(name, dtype):
    g = torch.Generator().manual_seed(1)
    z = (torch.randint(0, 2, (16, C), generator=g) * 2 - 1).to(dtype) * 1e4
    z[0] = 1e4  # a row of ties at the top
    y = torch.randint(0, C, (16,), generator=g)
    z.requires_grad_(True)
    out = make(name)(z, y)
    out.backward()
    assert torch.isfinite(out)
    assert torch.isfinite(z.grad.float()).all()


@pytest.mark.parametrize("name", lt.list_losses())
def test_empty_batch_gives_attached_zero(name):
    z = torch.zeros(0, C, requires_grad=True)
    y = torch.zeros(0, dtype=torch.long)
    crit = lt.create_loss(name, class_counts=COUNTS)
    out = crit(z, y)
    assert out.shape == () and out.item() == 0.0
    out.backward()
    assert z.grad is not None and z.grad.shape == (0, C)
    none = lt.create_loss(name, class_counts=COUNTS, reduction="none")(z, y)
    assert none.shape[0] == 0


# ------------------------------------------------------------------- ignore_index and K-dim
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_ignore_index(name):
    z, y = batch(12)
    keep = torch.tensor([True, False] * 6)
    y_ign = y.masked_fill(~keep, -100)
    w = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    crit = make(name, weight=w).double()
    torch.testing.assert_close(crit(z, y_ign), crit(z[keep], y[keep]))
    none = make(name, reduction="none").double()(z, y_ign)
    assert (none[~keep] == 0).all()
    torch.testing.assert_close(none[keep], make(name, reduction="none").double()(z[keep], y[keep]))
    all_ignored = torch.full_like(y, -100)
    assert crit(z, all_ignored).item() == 0.0
    z2 = z.clone().requires_grad_(True)
    crit(z2, y_ign).backward()
    assert (z2.grad[~keep] == 0).all()


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_spatial_inputs_match_flattened(name):
    g = torch.Generator().manual_seed(2)
    z = torch.rand(2, C, 3, 4, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, C, (2, 3, 4), generator=g)
    flat_z = z.movedim(1, -1).reshape(-1, C)
    none = make(name, reduction="none").double()(z, y)
    assert none.shape == (2, 3, 4)
    torch.testing.assert_close(
        none.reshape(-1), make(name, reduction="none").double()(flat_z, y.reshape(-1))
    )
    torch.testing.assert_close(
        make(name).double()(z, y), make(name).double()(flat_z, y.reshape(-1))
    )


# ---------------------------------------------------------------------------- module state
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_state_lives_in_buffers(name):
    crit = make(name, weight=torch.ones(C))
    assert not [k for k, v in vars(crit).items() if isinstance(v, torch.Tensor)], (
        "plain tensor attr"
    )
    sd = crit.state_dict()
    assert "weight" in sd
    if lt.get_loss_info(name).needs_counts:
        assert "class_counts" in sd
    clone = make(name)
    clone.load_state_dict(sd)
    z, y = batch(5, torch.float32)
    torch.testing.assert_close(clone(z, y), crit(z, y))
    crit.set_weight(torch.arange(1.0, C + 1))
    torch.testing.assert_close(crit.weight, torch.arange(1.0, C + 1))
    crit.set_weight(None)
    assert crit.weight is None


# ------------------------------------------------------------------------------ torch.compile
@pytest.mark.parametrize("name", ["ce", "focal", "ldam", "mm", "logit-adjusted"])
def test_compile_matches_eager(name):
    torch._dynamo.reset()
    z, y = batch(16, torch.float32)
    crit = make(name, weight=torch.linspace(0.5, 2.0, C))
    z1 = z.clone().requires_grad_(True)
    z2 = z.clone().requires_grad_(True)
    eager = crit(z1, y)
    eager.backward()
    compiled = torch.compile(crit)(z2, y)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(z2.grad, z1.grad)


# ------------------------------------------------------------------------------ equivalences
def test_ldam_without_margin_is_scaled_ce():
    z, y = batch(20)
    torch.testing.assert_close(
        LF.ldam_loss(z, y, COUNTS, max_margin=0.0, scale=30.0), F.cross_entropy(30 * z, y)
    )


def test_ldam_margins_follow_the_paper():
    m = LF.ldam_margins(COUNTS, 0.5)
    torch.testing.assert_close(m, torch.tensor(ref.ldam_margins(COUNTS, 0.5), dtype=torch.float64))
    assert m[-1].item() == pytest.approx(0.5) and m.argmax().item() == C - 1


@pytest.mark.parametrize("name", ["balanced-softmax", "logit-adjusted", "vs"])
def test_prior_losses_with_uniform_counts_are_ce(name):
    z, y = batch(20)
    uniform = [7] * C
    crit = lt.create_loss(name, class_counts=uniform).double()
    torch.testing.assert_close(crit(z, y), F.cross_entropy(z, y))


def test_vs_with_gamma_zero_is_logit_adjustment():
    z, y = batch(20)
    torch.testing.assert_close(
        LF.vs_loss(z, y, COUNTS, gamma=0.0, tau=1.3), LF.logit_adjusted_loss(z, y, COUNTS, tau=1.3)
    )


def test_balanced_softmax_is_logit_adjustment_with_tau_one():
    z, y = batch(20)
    torch.testing.assert_close(
        LF.balanced_softmax_loss(z, y, COUNTS), LF.logit_adjusted_loss(z, y, COUNTS, tau=1.0)
    )


def test_focal_with_gamma_zero_is_ce_and_alpha_scales():
    z, y = batch(20)
    torch.testing.assert_close(LF.focal_loss(z, y, gamma=0.0), F.cross_entropy(z, y))
    alpha = torch.linspace(0.1, 1.0, C, dtype=torch.float64)
    want = ref.reduce(ref.focal(z.tolist(), y.tolist(), 1.5, alpha.tolist()), y.tolist())
    assert LF.focal_loss(z, y, gamma=1.5, alpha=alpha).item() == pytest.approx(want, rel=1e-10)


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


def test_mm_ldam_with_equal_counts_is_mm_with_shifted_delta():
    z, y = batch(20)
    equal = [50] * C
    got = LF.mm_ldam_loss(z, y, equal, delta_minus=1.0, beta=1.4, scale=20.0)
    want = LF.max_margin_loss(z, y, delta_minus=0.5, beta=1.4, scale=20.0)
    torch.testing.assert_close(got, want)


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


def test_mm_max_excludes_the_target_column():
    z = torch.tensor([[-0.2, -0.5, -0.9]])
    y = torch.tensor([0])
    got = LF.mm_margin(z, y, 0.6, 1.5)
    assert got.item() == pytest.approx(math.exp(-0.3 - 0.9))  # g = 0.3, correct: argmax = y
    assert not torch.allclose(official_mm_margin(z, y, 0.6, 1.5), got)


def test_mm_uses_each_samples_own_target_logit():
    z = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.8]])
    y = torch.tensor([0, 2])
    got = LF.mm_margin(z, y, 0.6, 1.5)
    torch.testing.assert_close(got, paper_margin(z, y, 0.6, 1.5).float())
    assert got[1].item() == pytest.approx(math.exp(-0.6 - 0.9))
    assert not torch.allclose(official_mm_margin(z, y, 0.6, 1.5), got)


def test_mm_tie_counts_as_argmax():
    z = torch.tensor([[0.5, 0.5, 0.1]])
    for y in (torch.tensor([0]), torch.tensor([1])):
        got = LF.mm_margin(z, y, 0.6, 1.5)
        assert got.item() == pytest.approx(math.exp(-0.9))  # Δ⁺ with g = 0
        assert official_mm_margin(z, y, 0.6, 1.5).item() == 0.0


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


# ---------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_bad_input_is_a_clear_value_error(name):
    crit = make(name)
    z, y = batch(6, torch.float32)
    with pytest.raises(ValueError, match=r"Expected `target` to be of shape \(6,\)"):
        crit(z, y[:5])
    with pytest.raises(ValueError, match=r"class indices in \[0, 6\)"):
        crit(z, torch.tensor([0, 1, 2, 3, 4, 6]))
    with pytest.raises(ValueError, match=r"class indices in \[0, 6\)"):
        crit(z, torch.tensor([0, 1, 2, 3, 4, -1]))
    with pytest.raises(ValueError, match="logits"):
        crit(torch.zeros(6, dtype=torch.long), y)
    with pytest.raises(ValueError, match="reduction"):
        make(name, reduction="average")
    with pytest.raises(ValueError, match="weight"):
        make(name, weight=torch.ones(C + 1))(z, y)
    if name != "ce":  # ce accepts probability targets
        with pytest.raises(ValueError, match="target"):
            crit(z, y.float())


@pytest.mark.parametrize("name", [n for n in INDEX_LOSSES if lt.get_loss_info(n).needs_counts])
def test_bad_class_counts(name):
    kw = CASES[name][0]
    z, y = batch(6, torch.float32)
    with pytest.raises(ValueError, match=r"`class_counts` to be of length 6"):
        lt.create_loss(name, class_counts=COUNTS[:4], **kw)(z, y)
    with pytest.raises(ValueError, match=r"`class_counts`.*non-negative"):
        lt.create_loss(name, class_counts=[5, -1, 3, 3, 3, 3], **kw)
    with pytest.raises(ValueError, match=r"`class_counts`.*finite"):
        lt.create_loss(name, class_counts=[5, float("nan"), 3, 3, 3, 3], **kw)
    with pytest.raises(ValueError, match=r"`class_counts`"):
        lt.create_loss(name, **kw)  # missing
    with pytest.raises(ValueError, match=r"`class_counts` to be of length 6"):
        lt.get_loss_info(name).function(z, y, COUNTS[:3], **kw)


@pytest.mark.parametrize("name", NEEDS_POSITIVE_COUNTS)
def test_zero_count_where_log_n_is_needed(name):
    with pytest.raises(ValueError, match=r"zero counts for classes \[2\]"):
        lt.create_loss(name, class_counts=[5, 3, 0, 2, 2, 1], **CASES[name][0])


def test_unknown_loss_names_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'ldam'"):
        lt.create_loss("ldma")
    with pytest.raises(ValueError, match="registered losses"):
        lt.create_loss("no-such-thing")


def test_mm_needs_two_classes_and_valid_hyperparameters():
    with pytest.raises(ValueError, match="at least 2 classes"):
        LF.max_margin_loss(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), 0.6, 1.5)
    with pytest.raises(ValueError, match="beta"):
        lt.create_loss("mm", beta=-1.0)
    with pytest.raises(ValueError, match="scale"):
        lt.create_loss("ldam", class_counts=COUNTS, scale=0.0)
    with pytest.raises(ValueError, match="gamma"):
        lt.create_loss("focal", gamma=-1.0)


# ------------------------------------------------------------------------------- registry
def test_registry_lists_and_describes():
    names = lt.list_losses()
    assert {"ce", "focal", "sigmoid-focal", "ldam", "mm", "mm-ldam", "logit-adjusted"} <= set(names)
    assert {"balanced-softmax", "vs"} <= set(names)
    assert lt.list_losses("mm*") == ["mm", "mm-ldam"]
    for n in names:
        info = lt.get_loss_info(n)
        assert info.description and info.paper
        assert callable(info.function) and info.function.__doc__
        # the module's keyword names are the function's keyword names
        fn_params = set(inspect.signature(info.function).parameters)
        mod_params = set(inspect.signature(info.cls).parameters)
        assert mod_params <= fn_params, (n, mod_params - fn_params)


def test_counts_accepted_and_ignored_by_count_free_losses():
    z, y = batch(6, torch.float32)
    a = lt.create_loss("mm", class_counts=COUNTS, delta_minus=0.6, beta=1.5)
    b = lt.create_loss("mm", delta_minus=0.6, beta=1.5)
    torch.testing.assert_close(a(z, y), b(z, y))


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
