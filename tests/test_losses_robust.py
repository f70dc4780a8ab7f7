"""What the papers of the noise-robust and "standard extra" losses say of them, beyond the
registry-wide contract (tests/test_loss_contract.py, which checks each against its loop-based
transcription in tests/_reference_robust.py).

* Ma et al. (ICML 2020): a normalised loss sums to 1 over the labels, whatever the logits
  (the source of its noise robustness); RCE and MAE are symmetric (their sum over the
  labels is a constant); NFL with γ = 0 is NCE.
* the closed-form gradients (NCE, NFL) equal autograd's on the plain formula, also at saturated
  probabilities where the plain formula's autograd is fragile;
* the official codes' variants are one argument away (RCE's clamp of the label at 1e-4);
* every loss trains: SGD on a small linear problem lowers it.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import longtail as lt
from longtail import functional as LF

PROPERTY = settings(
    deadline=None, max_examples=30, database=None, suppress_health_check=[HealthCheck.too_slow]
)

ROBUST = ("nce", "nfl", "rce", "mae", "nce-rce", "nfl-rce", "sce", "gce")


@st.composite
def logits(draw, min_classes: int = 2, max_classes: int = 8):
    """A (N, C) float64 batch of logits of a drawn spread (100: saturated softmax)."""
    n = draw(st.integers(1, 6))
    c = draw(st.integers(min_classes, max_classes))
    spread = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0, 100.0]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return (torch.rand(n, c, generator=g, dtype=torch.float64) * 2 - 1) * spread


def every_label(fn, z: torch.Tensor, **kw) -> torch.Tensor:
    """(N, C): the loss of each row of z for each label k."""
    n, c = z.shape
    cols = [fn(z, torch.full((n,), k), reduction="none", **kw) for k in range(c)]
    return torch.stack(cols, dim=1)


# ------------------------------------------------------------------- Ma et al., ICML 2020
@PROPERTY
@given(z=logits(), gamma=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]))
def test_normalised_losses_sum_to_one_over_the_labels(z, gamma):
    """Σ_k NCE(z, k) = Σ_k NFL(z, k) = 1 for every z (Ma et al.)."""
    ones = torch.ones(z.shape[0], dtype=z.dtype)
    torch.testing.assert_close(every_label(LF.normalized_cross_entropy, z).sum(1), ones)
    torch.testing.assert_close(every_label(LF.normalized_focal_loss, z, gamma=gamma).sum(1), ones)


@PROPERTY
@given(z=logits(), log_zero=st.sampled_from([-4.0, -1.0, math.log(1e-4)]))
def test_passive_losses_are_symmetric(z, log_zero):
    """Σ_k RCE(z, k) = −A (C − 1) and Σ_k MAE(z, k) = 2 (C − 1): constants, the symmetry
    condition under which a loss is robust to symmetric noise (Ghosh et al.; Ma et al.)."""
    c = z.shape[1]
    rce = every_label(LF.reverse_cross_entropy, z, log_zero=log_zero).sum(1)
    mae = every_label(LF.mae_loss, z).sum(1)
    torch.testing.assert_close(rce, torch.full_like(rce, -log_zero * (c - 1)))
    torch.testing.assert_close(mae, torch.full_like(mae, 2.0 * (c - 1)))


def _nfl_plain(z, y, gamma):
    """NFL through autograd on the textbook formula (float64; fine away from saturation)."""
    p = torch.softmax(z, 1)
    f = -((1 - p) ** gamma) * torch.log(p)
    return f.gather(1, y[:, None]).squeeze(1) / f.sum(1)


def _nce_plain(z, y):
    logp = torch.log_softmax(z, 1)
    return logp.gather(1, y[:, None]).squeeze(1) / logp.sum(1)


def _rce_plain(z, y, log_zero=-4.0):
    return -log_zero * (1 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1))


@PROPERTY
@given(
    z=logits(max_classes=6),
    gamma=st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0]),
    alpha=st.sampled_from([1.0, 0.0, 10.0]),
    beta=st.sampled_from([0.0, 0.1, 1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_closed_form_gradients_equal_autograd_on_the_formula(z, gamma, alpha, beta, seed):
    """The written-out backward of NCE(+RCE) and NFL(+RCE) is the derivative of the formula."""
    z = z.clamp(-8, 8)  # where autograd through the textbook formula is exact
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, z.shape[1], (len(z),), generator=g)
    cot = torch.rand(len(z), generator=g, dtype=torch.float64) + 0.5

    def nce_rce(x):
        return LF.nce_rce_loss(x, y, alpha=alpha, beta=beta, reduction="none")

    def nce_rce_plain(x):
        return alpha * _nce_plain(x, y) + beta * _rce_plain(x, y)

    def nfl_rce(x):
        return LF.nfl_rce_loss(x, y, alpha=alpha, beta=beta, gamma=gamma, reduction="none")

    def nfl_rce_plain(x):
        return alpha * _nfl_plain(x, y, gamma) + beta * _rce_plain(x, y)

    for fast, plain in ((nce_rce, nce_rce_plain), (nfl_rce, nfl_rce_plain)):
        a = z.clone().requires_grad_(True)
        b = z.clone().requires_grad_(True)
        va, vb = fast(a), plain(b)
        torch.testing.assert_close(va, vb)
        (ga,) = torch.autograd.grad(va, a, cot)
        (gb,) = torch.autograd.grad(vb, b, cot)
        torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9])
def test_nfl_gradient_is_finite_at_certainty(gamma):
    """γ < 1 and p_y → 1: (1 − p)^(γ−1) alone is infinite, the gradient is not."""
    z = torch.tensor([[0.0, -40.0, -40.0], [30.0, 0.0, 0.0], [1e4, -1e4, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 0])
    for name in ("nfl", "nfl-rce"):
        loss = lt.create_loss(name, gamma=gamma)(z, y)
        (g,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), name


def test_nfl_module_under_no_grad():
    """No gradient wanted: NFL's forward skips computing it, and gives the same value."""
    z = torch.randn(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    crit = lt.create_loss("nfl").double()
    with torch.no_grad():
        cold = crit(z, y)
    torch.testing.assert_close(cold, crit(z.clone().requires_grad_(True), y).detach())


WRITTEN_OUT = ["nce", "nfl", "nce-rce", "nfl-rce", "squentropy", "z-loss", "sparsemax"]


@pytest.mark.parametrize("name", [*WRITTEN_OUT, "sparse-softmax"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_second_derivatives_are_refused_not_wrong(name, reduction):
    """A written-out gradient is a first derivative: create_graph=True raises a clear error
    (torch's once_differentiable would let autograd silently drop the loss's own part of the
    second derivative wherever the incoming gradient is a constant, as after a mean)."""
    z = torch.randn(4, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    crit = lt.create_loss(
        name, reduction=reduction, **({"k": 2} if name == "sparse-softmax" else {})
    )
    x = z.clone().requires_grad_(True)
    out = crit.double()(x, y)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(out.sum(), x, create_graph=True)
    (g,) = torch.autograd.grad(crit.double()(x, y).sum(), x)  # first order still works
    assert torch.isfinite(g).all()


# ------------------------------------------------------------------ the official codes
def test_rce_with_the_official_codes_clamp():
    """The official SCE / APL code: −Σ_k clamp(p, 1e-7, 1) log clamp(q, 1e-4, 1); longtail with
    log_zero = log 1e-4 differs only by the p clamp (< 1e-6 here)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (64,), generator=g)
    p = torch.softmax(z, 1).clamp(1e-7, 1.0)
    q = F.one_hot(y, 10).to(z).clamp(1e-4, 1.0)
    official = -(p * torch.log(q)).sum(1)
    ours = LF.reverse_cross_entropy(z, y, log_zero=math.log(1e-4), reduction="none")
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)
    # and the paper's A = −4 is a different (smaller) scale: 4/9.21 of it
    paper = LF.reverse_cross_entropy(z, y, reduction="none")
    torch.testing.assert_close(paper / ours, torch.full_like(ours, 4 / -math.log(1e-4)))


def test_official_mae_is_half_the_papers():
    """The Active-Passive-Losses code's MAE is 1 − p_y = GCE at q = 1; the papers' is twice that."""
    z, y = torch.randn(16, 7, dtype=torch.float64), torch.randint(0, 7, (16,))
    code = 1 - torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(LF.mae_loss(z, y, reduction="none"), 2 * code)
    torch.testing.assert_close(LF.generalized_cross_entropy(z, y, q=1.0, reduction="none"), code)


@pytest.mark.parametrize("q", [1e-3, 1e-5, 1e-7])
def test_gce_tends_to_cross_entropy(q):
    """(1 − p^q)/q = −log p − q (log p)²/2 + O(q²): the gap shrinks linearly in q."""
    z, y = torch.randn(32, 6, dtype=torch.float64) * 2, torch.randint(0, 6, (32,))
    ce = F.cross_entropy(z, y, reduction="none")
    gce = LF.generalized_cross_entropy(z, y, q=q, reduction="none")
    torch.testing.assert_close(gce, ce - q * ce**2 / 2, rtol=0, atol=q * q * ce.max() ** 3)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("nfl", {"gamma": -1.0}, "`gamma`"),
        ("rce", {"log_zero": 0.0}, "`log_zero`"),
        ("rce", {"log_zero": float("-inf")}, "`log_zero`"),
        ("nce-rce", {"alpha": -1.0}, "`alpha`"),
        ("nfl-rce", {"beta": float("nan")}, "`beta`"),
        ("sce", {"beta": -0.1}, "`beta`"),
        ("gce", {"q": 0.0}, "`q`"),
        ("gce", {"q": 1.5}, "`q`"),
    ],
)
def test_bad_hyper_parameters(name, kwargs, match):
    with pytest.raises(ValueError, match=rf"^Expected {match} to be .*, but got .*\.$"):
        lt.create_loss(name, **kwargs)
    z, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=match):
        lt.get_loss_info(name).function(z, y, **kwargs)


@pytest.mark.parametrize("name", ROBUST)
def test_one_class_is_refused(name):
    """C = 1: no normaliser (NCE's Σ −log p_k is 0), no wrong class to be robust to."""
    with pytest.raises(ValueError, match="of at least 2 classes"):
        lt.create_loss(name)(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", ROBUST)
def test_sgd_lowers_the_loss(name):
    """A few SGD steps of a linear classifier on separable data lower each loss."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, :4].argmax(1)).long()
    model = torch.nn.Linear(8, 4)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.zeros_(model.bias)
    crit = lt.create_loss(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    first = crit(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
    assert crit(model(x), y).item() < first


# ============================================================ the "standard extra" losses
EXTRA = ("comp-sum", "squentropy", "z-loss", "encouraging", "sparse-softmax", "sparsemax")


# ------------------------------------------------------------ Mao et al., ICML 2023
@PROPERTY
@given(z=logits(), tau=st.floats(1.001, 2.0), seed=st.integers(0, 2**31 - 1))
def test_comp_sum_between_1_and_2_is_gce(z, tau, seed):
    """Φ^τ(u) = (1 − p_y^{τ−1})/(τ − 1): GCE with q = τ − 1 (Mao et al.), for every τ ∈ (1, 2]."""
    y = torch.randint(0, z.shape[1], (len(z),), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        LF.comp_sum_loss(z, y, tau=tau, reduction="none"),
        LF.generalized_cross_entropy(z, y, q=tau - 1, reduction="none"),
    )


@PROPERTY
@given(z=logits(max_classes=6), seed=st.integers(0, 2**31 - 1))
def test_comp_sum_decreases_with_tau_and_is_continuous_at_1(z, seed):
    """Φ^τ(u) is non-increasing in τ (u ≥ 0), and τ → 1 gives cross-entropy continuously."""
    z = z.clamp(-20, 20)  # τ = 0 is e^{margin}: keep it finite
    y = torch.randint(0, z.shape[1], (len(z),), generator=torch.Generator().manual_seed(seed))
    taus = [0.0, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0]
    vals = [LF.comp_sum_loss(z, y, tau=t, reduction="none") for t in taus]
    for lo, hi in itertools.pairwise(vals):
        assert (hi <= lo * (1 + 1e-12) + 1e-12).all()
    ce = F.cross_entropy(z, y, reduction="none")
    for eps in (1e-6, -1e-6):
        near = LF.comp_sum_loss(z, y, tau=1.0 + eps, reduction="none")
        torch.testing.assert_close(near, ce, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------- Hui, Belkin & Wright, ICML 2023
def test_squentropy_is_ce_plus_the_mean_square_of_the_wrong_logits():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(32, 9, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, 9, (32,), generator=g)
    wrong = z.masked_fill(F.one_hot(y, 9).bool(), 0.0)
    want = F.cross_entropy(z, y, reduction="none") + (wrong**2).sum(1) / 8
    torch.testing.assert_close(LF.squentropy_loss(z, y, reduction="none"), want)


def test_squentropy_keeps_its_precision_when_the_target_logit_dominates():
    """‖z‖² − z_y² would cancel when z_y dominates; float32 stays at float32 precision."""
    z = torch.tensor([[1e4, 0.5, -0.25, 1.0], [3.0, 1e-3, 2e-3, -1e-3], [0.1, 0.2, 0.3, 0.4]])
    y = torch.tensor([0, 0, 3])
    got = LF.squentropy_loss(z, y, reduction="none")
    want = LF.squentropy_loss(z.double(), y, reduction="none")
    # row 0 in float32 as ‖z‖² − z_y²: 1e8 + 1.31 − 1e8 is 0 or 8 (the ulp of 1e8), not 1.31
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=0)
    torch.testing.assert_close(want[0], torch.tensor(1.3125 / 3, dtype=torch.float64))


# ------------------------------------------------------- de Brébisson & Vincent, 2016
@PROPERTY
@given(
    z=logits(min_classes=3),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-1e3, 1e3),
    seed=st.integers(0, 2**31 - 1),
)
def test_z_loss_is_shift_and_scale_invariant(z, scale, shift, seed):
    """ℓ(s·z + c) = ℓ(z) for s > 0 (the paper's defining property) and it depends on z only
    through Σ z, Σ z² and z_y (a spherical loss): permuting the other logits changes nothing."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, z.shape[1], (len(z),), generator=g)
    base = LF.z_loss(z, y, a=1.0, b=1.0, reduction="none")
    moved = LF.z_loss(z * scale + shift, y, a=1.0, b=1.0, reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-6, atol=1e-8)
    perm = torch.randperm(z.shape[1], generator=g)
    zp = z.clone()
    for i in range(len(z)):  # permute the non-target logits of each row
        others = [j for j in perm.tolist() if j != y[i]]
        zp[i, sorted(others)] = z[i, others]
    torch.testing.assert_close(LF.z_loss(zp, y, a=1.0, b=1.0, reduction="none"), base)


def test_z_loss_tends_to_the_hinge_and_handles_equal_logits():
    """a → ∞: (1/a) softplus(a (b − ẑ)) → max(0, b − ẑ). A row of equal logits has ẑ = 0."""
    z = torch.randn(16, 6, dtype=torch.float64)
    y = torch.randint(0, 6, (16,))
    zhat = ((z - z.mean(1, keepdim=True)) / z.std(1, correction=0, keepdim=True)).gather(
        1, y[:, None]
    )
    hinge = (1.5 - zhat.squeeze(1)).clamp_min(0)
    got = LF.z_loss(z, y, a=1e4, b=1.5, reduction="none")
    torch.testing.assert_close(got, hinge, rtol=0, atol=1e-4)
    flat = torch.full((2, 4), 3.0, requires_grad=True)
    out = LF.z_loss(flat, torch.tensor([0, 2]), a=1.0, b=2.0, reduction="none")
    torch.testing.assert_close(out.detach(), F.softplus(torch.full((2,), 2.0)))
    out.sum().backward()
    assert torch.isfinite(flat.grad).all()


# ----------------------------------------------------------------- Zhao et al., AAAI 2022
def _official_encouraging(z, y, log_end):
    """The official EncouragingLoss.forward, transcribed (reduction none)."""
    lprobs = F.log_softmax(z, dim=-1)
    probs = torch.exp(lprobs)
    bonus = torch.log(torch.clamp(1 - probs, min=1e-5))
    if log_end != 1.0:
        y_log_end = math.log(1 - log_end)
        after = 1 / (log_end - 1) * (probs - log_end) + y_log_end
        bonus = torch.where(probs > log_end, after, bonus)
    return F.nll_loss(lprobs - bonus, y, reduction="none")


@pytest.mark.parametrize("log_end", [0.75, 0.5, 1.0])
def test_encouraging_matches_the_official_code(log_end):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(64, 10, generator=g, dtype=torch.float64) * 4
    y = torch.randint(0, 10, (64,), generator=g)
    z[:8, :] = 0.0
    z[torch.arange(8), y[:8]] = 15.0  # confident rows: p_y > LE, and 1 − p_y < 1e-5
    got = LF.encouraging_loss(z, y, log_end=log_end, reduction="none")
    torch.testing.assert_close(got, _official_encouraging(z, y, log_end))


@pytest.mark.parametrize("log_end", [0.2, 0.5, 0.75, 0.9])
def test_conservative_bonus_is_the_tangent(log_end):
    """Past p = LE the bonus is the tangent of log(1 − p): continuous in value and slope."""
    p = torch.tensor([log_end - 1e-7, log_end + 1e-7, (1 + log_end) / 2], dtype=torch.float64)
    p.requires_grad_(True)
    z = torch.stack([torch.log(p), torch.log1p(-p)], 1)  # two classes, p_y = p
    loss = LF.encouraging_loss(
        z, torch.zeros(3, dtype=torch.long), log_end=log_end, reduction="none"
    )
    bonus = loss + torch.log(p)
    (slope,) = torch.autograd.grad(bonus.sum(), p)
    # p moved by 2e-7 across LE: the bonus moves by about its slope times that, no jump
    torch.testing.assert_close(bonus[0], bonus[1], rtol=0, atol=3e-7 / (1 - log_end))
    torch.testing.assert_close(slope, torch.full_like(slope, 1 / (log_end - 1)), rtol=1e-5, atol=0)


# ------------------------------------------------------------------ Sun et al., arXiv 2021
def test_sparse_softmax_ties_share_the_gradient_and_leave_the_value():
    """Three logits tie at the k-th value with k = 2 slots left for them: each gets 2/3 of one
    slot's weight, whatever topk picked; the value is that of any choice."""
    z = torch.tensor([[3.0, 1.0, 1.0, 1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([4])
    loss = LF.sparse_softmax_loss(z, y, k=3)
    (grad,) = torch.autograd.grad(loss, z)
    lse = math.log(math.exp(3) + 2 * math.exp(1) + math.exp(-2))  # Ω_3 ∪ {y}
    torch.testing.assert_close(loss, torch.tensor(lse + 2.0, dtype=torch.float64))
    q = [math.exp(3 - lse)] + [2 / 3 * math.exp(1 - lse)] * 3 + [math.exp(-2 - lse) - 1]
    torch.testing.assert_close(grad, torch.tensor([q], dtype=torch.float64))
    for layout in (z.detach().t().contiguous().t(), z.detach()[:, [0, 3, 2, 1, 4]]):
        x = layout.clone().requires_grad_(True)
        (g2,) = torch.autograd.grad(LF.sparse_softmax_loss(x, y, k=3), x)
        assert sorted(g2[0, 1:4].tolist()) == pytest.approx([q[1]] * 3)


@PROPERTY
@given(z=logits(min_classes=3, max_classes=9), k=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_sparse_softmax_is_cross_entropy_on_its_support(z, k, seed):
    """ℓ = CE of the logits with every class outside Ω_k ∪ {y} removed (set to −∞), and its
    gradient sums to 0 over the classes (a distribution minus e_y)."""
    y = torch.randint(0, z.shape[1], (len(z),), generator=torch.Generator().manual_seed(seed))
    x = z.clone().requires_grad_(True)
    got = LF.sparse_softmax_loss(x, y, k=k, reduction="none")
    kk = min(k, z.shape[1])
    keep = torch.zeros_like(z, dtype=torch.bool).scatter_(1, z.topk(kk, 1).indices, True)
    keep[torch.arange(len(z)), y] = True
    want = F.cross_entropy(z.masked_fill(~keep, -math.inf), y, reduction="none")
    torch.testing.assert_close(got, want)
    (grad,) = torch.autograd.grad(got.sum(), x)
    torch.testing.assert_close(grad.sum(1), torch.zeros(len(z), dtype=z.dtype), atol=1e-12, rtol=0)


# ------------------------------------------------------- Martins & Astudillo, ICML 2016
def _sparsemax_sort(z):
    """The paper's algorithm: sort, cumulative sums, support size, τ."""
    zs = torch.sort(z, dim=1, descending=True).values
    ks = torch.arange(1, z.shape[1] + 1, dtype=z.dtype)
    cs = zs.cumsum(1)
    k = (1 + ks * zs > cs).sum(1, keepdim=True)
    return (z - (cs.gather(1, k - 1) - 1) / k).clamp_min(0)


@st.composite
def wide_logits(draw):
    """Like logits(), with many classes and ties (rounded values) too."""
    z = draw(logits(max_classes=300))
    if draw(st.booleans()):
        z = (z * 4).round() / 4
    return z


@PROPERTY
@given(z=wide_logits(), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_sparsemax_newton_equals_the_papers_sort(z, dtype):
    z = z.to(dtype)
    p = LF.sparsemax(z)
    torch.testing.assert_close(p, _sparsemax_sort(z))
    torch.testing.assert_close(p.sum(1), torch.ones(len(z), dtype=dtype))
    assert (p >= 0).all()


def test_sparsemax_falls_back_to_the_sort(monkeypatch):
    from longtail.losses import standard_extra

    monkeypatch.setattr(standard_extra, "SPARSEMAX_STEPS", 1)
    z = torch.randn(8, 50, dtype=torch.float64) * 3
    torch.testing.assert_close(LF.sparsemax(z), _sparsemax_sort(z))
    y = torch.randint(0, 50, (8,))
    monkeypatch.setattr(standard_extra, "SPARSEMAX_STEPS", 100)
    fast = LF.sparsemax_loss(z, y, reduction="none")
    monkeypatch.setattr(standard_extra, "SPARSEMAX_STEPS", 1)
    torch.testing.assert_close(LF.sparsemax_loss(z, y, reduction="none"), fast)


def test_sparsemax_loss_gradient_and_margin():
    """∇ℓ = sparsemax(z) − e_y (Martins & Astudillo); ℓ = 0 once z_y ≥ z_j + 1 for all j ≠ y."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 7, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 7, (16,), generator=g)
    x = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(LF.sparsemax_loss(x, y, reduction="sum"), x)
    torch.testing.assert_close(grad, LF.sparsemax(z) - F.one_hot(y, 7).to(z))
    wide = z.clone()
    wide[torch.arange(16), y] = z.max(1).values + 1.0
    assert (LF.sparsemax_loss(wide, y, reduction="none") == 0).all()


@PROPERTY
@given(t=st.floats(-5, 5), shift=st.floats(-100, 100))
def test_binary_sparsemax_loss_is_the_modified_huber_loss(t, shift):
    """C = 2, margin t = z_y − z_other: ℓ = −t (t ≤ −1), (t − 1)²/4 (|t| < 1), 0 (t ≥ 1)."""
    z = torch.tensor([[shift + t, shift]], dtype=torch.float64)
    got = LF.sparsemax_loss(z, torch.tensor([0])).item()
    want = -t if t <= -1 else ((t - 1) ** 2 / 4 if t < 1 else 0.0)
    assert got == pytest.approx(want, abs=1e-9)


def test_sparsemax_helper():
    """Any dim, half inputs in float32, its Jacobian (gradcheck), a clear error for non-floats."""
    z = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    p = LF.sparsemax(z, dim=1)
    torch.testing.assert_close(p.sum(1), torch.ones(2, 3, dtype=torch.float64))
    torch.testing.assert_close(p.movedim(1, -1), LF.sparsemax(z.movedim(1, -1), dim=-1))
    assert torch.autograd.gradcheck(lambda x: LF.sparsemax(x, dim=1), (z,))
    assert LF.sparsemax(torch.randn(3, 4).half()).dtype == torch.float32
    with pytest.raises(ValueError, match="Expected `logits`"):
        LF.sparsemax(torch.ones(3, 4, dtype=torch.long))


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("comp-sum", {"tau": -0.5}, "`tau`"),
        ("z-loss", {"a": 0.0}, "`a`"),
        ("z-loss", {"b": float("nan")}, "`b`"),
        ("encouraging", {"log_end": 1.5}, "`log_end`"),
        ("encouraging", {"bonus_weight": -1.0}, "`bonus_weight`"),
        ("sparse-softmax", {"k": 0}, "`k`"),
        ("sparse-softmax", {"k": 2.0}, "`k`"),
        ("sparse-softmax", {"k": True}, "`k`"),
    ],
)
def test_bad_hyper_parameters_extra(name, kwargs, match):
    test_bad_hyper_parameters(name, kwargs, match)


@pytest.mark.parametrize("name", EXTRA)
def test_sgd_lowers_the_extra_losses(name):
    test_sgd_lowers_the_loss(name)


@pytest.mark.parametrize("name", EXTRA)
def test_one_class_is_refused_extra(name):
    test_one_class_is_refused(name)


def test_nfl_value_is_the_official_codes_and_its_gradient_the_formulas():
    """The official NormalizedFocalLoss, transcribed: same value; its gradient holds the
    (1 − p)^γ factors constant (``.data``), longtail's is the formula's (see the docstring)."""
    g = torch.Generator().manual_seed(4)
    z = torch.randn(16, 6, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 6, (16,), generator=g)

    def official(x, gamma=0.5):
        logpt = F.log_softmax(x, dim=1)
        normalizor = torch.sum(-1 * (1 - logpt.detach().exp()) ** gamma * logpt, dim=1)
        logpt = logpt.gather(1, y[:, None]).view(-1)
        pt = logpt.detach().exp()
        return (-1 * (1 - pt) ** gamma * logpt / normalizor).mean()

    a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    ours, theirs = LF.normalized_focal_loss(a, y), official(b)
    torch.testing.assert_close(ours, theirs)
    (ga,) = torch.autograd.grad(ours, a)
    (gb,) = torch.autograd.grad(theirs, b)
    (gt,) = torch.autograd.grad(_nfl_plain(z.requires_grad_(True), y, 0.5).mean(), z)
    torch.testing.assert_close(ga, gt)
    assert not torch.allclose(ga, gb)


SHIFT_INVARIANT = [n for n in ROBUST + EXTRA if n != "squentropy"]


@pytest.mark.parametrize("name", SHIFT_INVARIANT)
@pytest.mark.parametrize("offset", [30.0, 1e3, 1e4])
def test_float32_precision_under_a_common_offset(name, offset):
    """Every loss here but squentropy is invariant to adding a constant to all logits. In float32
    a large common offset must not cost more than a few ulps of the loss (value and gradient):
    NCE and NFL normalise log-softmax values (not C·lse − Σ z, which cancels), the Z-loss
    corrects its mean, the sparse losses work relative to z_y or the row maximum."""
    g = torch.Generator().manual_seed(6)
    z = torch.randn(64, 100, generator=g) * 3
    y = torch.randint(0, 100, (64,), generator=g)
    kw = {"k": 5} if name == "sparse-softmax" else {}
    crit = lt.create_loss(name, reduction="none", **kw)
    x32 = (z + offset).requires_grad_(True)
    x64 = x32.detach().double().requires_grad_(True)  # the same numbers, in float64
    v32, v64 = crit(x32, y), crit.double()(x64, y)
    scale = v64.abs().max().item()
    torch.testing.assert_close(v32.double(), v64, rtol=2e-6, atol=2e-6 * scale)
    v32.sum().backward()
    v64.sum().backward()
    gscale = x64.grad.abs().max().item()
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-4, atol=1e-5 * gscale)
