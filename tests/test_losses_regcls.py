"""Regression as classification (HL-Gauss, two-hot, R2CCP, Z-Error, NTL-MSE, NTL-WAS), LDR-KL /
ALDR-KL, OVR / SOVR and the harmonic head: what the registry-wide contract does not check.

The inverse map and the target distributions, the papers' official code transcribed in torch
(each loss against its code's own computation), the limits that need a tolerance, ALDR-KL's
per-sample state, the batch statistics of Z-Error and SOVR, and the numerically special rows of
the LDR normalisations.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import longtail as lt
from longtail import functional as LF

PROPERTY = settings(
    deadline=None, max_examples=60, database=None, suppress_health_check=[HealthCheck.too_slow]
)
D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@st.composite
def supports(draw, min_classes: int = 2, max_classes: int = 9):
    """Strictly increasing class values (unequal gaps) and targets inside their range."""
    c = draw(st.integers(min_classes, max_classes))
    g = _gen(draw(st.integers(0, 2**31 - 1)))
    start = draw(st.floats(-50, 50))
    gaps = torch.rand(c - 1, generator=g, dtype=D) * draw(st.sampled_from([0.01, 1.0, 30.0]))
    values = torch.cat([torch.tensor([start], dtype=D), start + torch.cumsum(gaps + 1e-3, 0)])
    n = draw(st.integers(1, 6))
    y = values[0] + torch.rand(n, generator=g, dtype=D) * (values[-1] - values[0])
    if draw(st.booleans()):  # the ends and the class values themselves
        y = torch.cat([y, values[[0, -1]], values[torch.randint(0, c, (2,), generator=g)]])
    z = torch.randn(y.shape[0], c, generator=g, dtype=D) * draw(st.sampled_from([0.5, 3.0]))
    return values, y, z


# ------------------------------------------------------------------------- inverse map, targets
@PROPERTY
@given(problem=supports())
def test_two_hot_then_inverse_gives_back_y(problem):
    values, y, _ = problem
    q = LF.two_hot_target(y, values)
    assert q.shape == (*y.shape, values.numel())
    torch.testing.assert_close(q.sum(-1), torch.ones_like(y))
    assert ((q > 0).sum(-1) <= 2).all() and (q >= 0).all()
    torch.testing.assert_close(LF.value_from_logits(q.log(), values), y)  # log 0 = −inf: fine


@PROPERTY
@given(problem=supports())
def test_two_hot_loss_is_cross_entropy_to_its_target(problem):
    values, y, z = problem
    want = F.cross_entropy(z, LF.two_hot_target(y, values), reduction="none")
    got = LF.two_hot_loss(z, y, values=values, reduction="none")
    torch.testing.assert_close(got, want)


@PROPERTY
@given(problem=supports(), ratio=st.sampled_from([1e-4, 0.1, 0.75, 2.0, 40.0]))
def test_hl_gauss_loss_is_cross_entropy_to_the_full_target(problem, ratio):
    """The loss computes only the bins within 6√2 σ of y; the paper's dense computation gives
    exactly 0 to the others, so the loss is cross-entropy to the full target."""
    values, y, z = problem
    q = LF.hl_gauss_target(y, values, sigma_ratio=ratio)
    torch.testing.assert_close(q.sum(-1), torch.ones_like(y))
    want = F.cross_entropy(z, q, reduction="none")
    got = LF.hl_gauss_loss(z, y, values=values, sigma_ratio=ratio, reduction="none")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _paper_hl_gauss(min_value, max_value, num_bins, sigma):
    """The Stop Regressing paper's listing (its PyTorch version), transcribed."""
    support = torch.linspace(min_value, max_value, num_bins + 1, dtype=D)

    def to_probs(target):
        cdf = torch.special.erf((support - target.unsqueeze(-1)) / (math.sqrt(2.0) * sigma))
        z = cdf[..., -1] - cdf[..., 0]
        return (cdf[..., 1:] - cdf[..., :-1]) / z.unsqueeze(-1)

    def from_probs(probs):
        centers = (support[:-1] + support[1:]) / 2
        return torch.sum(probs * centers, dim=-1)

    return to_probs, from_probs, (support[:-1] + support[1:]) / 2


def test_hl_gauss_matches_the_papers_code():
    lo, hi, bins = -10.0, 10.0, 51
    width = (hi - lo) / bins
    to_probs, from_probs, centers = _paper_hl_gauss(lo, hi, bins, 0.75 * width)
    y = torch.tensor([-10.0, -9.9, -3.3, 0.0, 0.05, 7.77, 10.0], dtype=D)
    q = LF.hl_gauss_target(y, centers)  # sigma_ratio 0.75: σ = 0.75 × bin width
    torch.testing.assert_close(q, to_probs(y), rtol=1e-13, atol=1e-15)
    z = torch.randn(7, bins, generator=_gen(1), dtype=D)
    torch.testing.assert_close(
        LF.hl_gauss_loss(z, y, values=centers), F.cross_entropy(z, to_probs(y))
    )
    p = torch.softmax(z, 1)
    torch.testing.assert_close(LF.value_from_logits(z, centers), from_probs(p))
    crit = lt.create_loss("hl-gauss", values=centers).double()
    torch.testing.assert_close(crit.predict(z), from_probs(p))


def test_hl_gauss_sigma_to_zero_is_the_nearest_class_not_two_hot():
    """σ → 0 makes HL-Gauss the one-hot of the bin holding y: cross-entropy on the nearest class.
    It equals two-hot at the class values (an equivalence of the contract), not between them."""
    z = torch.randn(5, 6, generator=_gen(2), dtype=D)
    y = torch.tensor([0.2, 1.49, 2.51, 3.0, 4.9], dtype=D)
    got = LF.hl_gauss_loss(z, y, sigma_ratio=1e-6, reduction="none")
    nearest = torch.tensor([0, 1, 3, 3, 5])
    torch.testing.assert_close(got, F.cross_entropy(z, nearest, reduction="none"))
    two_hot = LF.two_hot_loss(z, y, reduction="none")
    assert not torch.allclose(got[[0, 1, 2, 4]], two_hot[[0, 1, 2, 4]])
    torch.testing.assert_close(got[3], two_hot[3])


def test_hl_gauss_target_mean_is_y_inside_the_support():
    values = torch.linspace(0, 10, 41, dtype=D)
    y = torch.tensor([2.0, 3.1, 5.55, 7.0], dtype=D)
    q = LF.hl_gauss_target(y, values)
    torch.testing.assert_close((q * values).sum(-1), y, atol=1e-3 * 0.25, rtol=0)


def test_training_a_value_head_recovers_the_targets():
    """Logits fitted with each value loss predict the targets through the inverse map."""
    values = torch.linspace(-2.0, 3.0, 21, dtype=D)
    y = torch.tensor([-1.93, -0.4, 0.0, 1.234, 2.9], dtype=D)
    for name in ("two-hot", "hl-gauss", "r2ccp"):
        kw = {"sigma_ratio": 0.3} if name == "hl-gauss" else {}
        if name == "r2ccp":
            kw = {"power": 1.0, "entropy_weight": 0.0}
        crit = lt.create_loss(name, values=values, **kw).double()
        z = torch.zeros(5, 21, dtype=D, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.2)
        for _ in range(400):
            opt.zero_grad()
            crit(z, y).backward()
            opt.step()
        pred = crit.predict(z.detach())
        tol = 0.02 if name != "r2ccp" else 0.26  # R2CCP's p = 1 optimum: the median's bin
        torch.testing.assert_close(pred, y, atol=tol, rtol=0, msg=name)


# --------------------------------------------------------------------------------- value inputs
@pytest.mark.parametrize("name", ["hl-gauss", "two-hot", "r2ccp", "z-error"])
def test_value_targets(name):
    crit = lt.create_loss(name).double()
    z = torch.randn(6, 5, generator=_gen(3), dtype=D)
    ints = torch.tensor([0, 1, 2, 3, 4, 2])
    torch.testing.assert_close(crit(z, ints), crit(z, ints.to(D)))
    for bad in (float("nan"), -0.75, 4.75):
        with pytest.raises(ValueError, match="Expected `target` to be values in"):
            crit(z, torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0, bad], dtype=D))
    with pytest.raises(ValueError, match="Expected `target` to be a tensor of real values"):
        crit(z, torch.ones(6, dtype=torch.bool))
    with pytest.raises(ValueError, match="strictly increasing"):
        lt.create_loss(name, values=[0.0, 2.0, 1.0, 3.0, 4.0])(z.float(), ints)
    with pytest.raises(ValueError, match="one per class"):
        lt.create_loss(name, values=[0.0, 1.0, 2.0])(z.float(), ints)
    with pytest.raises(ValueError, match="at least 2 classes"):
        crit(z[:, :1], torch.zeros(6, dtype=D))
    # the class of a target, for `weight`, is the nearest value; half-way goes up
    w = torch.tensor([1.0, 10.0, 100.0, 1000.0, 10000.0], dtype=D)
    y = torch.tensor([0.49, 0.5, 2.5, 3.9], dtype=D)
    each = lt.create_loss(name, reduction="none").double()(z[:4], y)
    weighted = lt.create_loss(name, weight=w, reduction="none").double()(z[:4], y)
    torch.testing.assert_close(weighted, each * w[[0, 1, 3, 4]])


def test_hl_gauss_support_is_the_bins():
    crit = lt.create_loss("hl-gauss").double()
    z = torch.randn(2, 5, generator=_gen(4), dtype=D)
    crit(z, torch.tensor([-0.5, 4.5], dtype=D))  # the outer edges of the end bins
    with pytest.raises(ValueError, match=r"values in \[-0.5, 4.5\]"):
        crit(z, torch.tensor([-0.51, 0.0], dtype=D))


def test_values_follow_the_module():
    crit = lt.create_loss("two-hot", values=[0.0, 0.5, 1.0, 2.0])
    assert crit.values.dtype == torch.float32
    sd = crit.state_dict()
    fresh = lt.create_loss("two-hot")
    fresh.load_state_dict(sd)
    z, y = torch.randn(3, 4), torch.tensor([0.1, 1.5, 2.0])
    torch.testing.assert_close(fresh(z, y), crit(z, y))
    assert "values=(4,)" in repr(crit)


# ------------------------------------------------------------------------------------- R2CCP
def test_r2ccp_matches_the_official_code():
    """``GenModule.compute_loss`` of EtashGuha/R2CCP, transcribed (it sums over the batch)."""
    range_vals = torch.linspace(0, 1, 50, dtype=D)
    g = _gen(5)
    pre_probs = torch.randn(8, 50, generator=g, dtype=D) * 4
    y = torch.rand(8, generator=g, dtype=D)
    for q_norm, loss_weight, entropy_weight in ((0.5, 5.0, 1.0), (1.0, 1.0, 0.2), (2.0, 3.0, 0.0)):
        probs = torch.softmax(pre_probs, dim=1)
        log_vals = torch.log(probs)
        log_vals[probs == 0] = 0
        neg_entropy = torch.sum(torch.sum(probs * log_vals, dim=1))
        dist = torch.abs(range_vals.view(1, -1).expand(len(y), -1) - y.view(-1, 1))
        want = neg_entropy * entropy_weight + loss_weight * torch.sum(probs * dist.pow(q_norm))
        got = LF.r2ccp_loss(
            pre_probs,
            y,
            values=range_vals,
            power=q_norm,
            loss_weight=loss_weight,
            entropy_weight=entropy_weight,
            reduction="sum",
        )
        torch.testing.assert_close(got, want)


def test_r2ccp_is_finite_where_probabilities_vanish():
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], requires_grad=True)
    out = LF.r2ccp_loss(z, torch.tensor([0.5, 2.0]), reduction="sum")
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()


# ----------------------------------------------------------------------------------- Z-Error
def test_z_error_masks_the_batch_outliers():
    values = torch.arange(5, dtype=D)
    g = _gen(6)
    z = torch.randn(12, 5, generator=g, dtype=D)
    y = LF.value_from_logits(z, values).clamp(0, 4) + 0.05 * torch.randn(12, generator=g)
    y = y.clamp(0, 4)
    y[7] = 4.0 if LF.value_from_logits(z[7:8], values) < 2 else 0.0  # an outlier
    err = (y - LF.value_from_logits(z, values)).square()
    score = (err - err.mean()) / (err.std() + 1e-8)
    keep = score.abs() <= 2.0
    assert not keep[7] and keep.sum() == 11
    torch.testing.assert_close(LF.z_error_loss(z, y), err[keep].mean())
    none = LF.z_error_loss(z, y, reduction="none")
    torch.testing.assert_close(none, torch.where(keep, err, 0.0))
    torch.testing.assert_close(LF.z_error_loss(z, y, reduction="sum"), err[keep].sum())
    # an ignored entry is not in the statistics: those of the other 11 decide
    y_ign = y.clone()
    y_ign[7] = -100
    rest = torch.cat([err[:7], err[8:]])
    kept = rest[((rest - rest.mean()) / (rest.std() + 1e-8)).abs() <= 2.0]
    torch.testing.assert_close(LF.z_error_loss(z, y_ign), kept.mean())
    # a batch of one has no spread: nothing masked
    torch.testing.assert_close(LF.z_error_loss(z[:1], y[:1]), err[0])
    # the mask carries no gradient; the kept entries' squared errors do
    x = z.clone().requires_grad_(True)
    LF.z_error_loss(x, y).backward()
    assert (x.grad[7] == 0).all() and (x.grad[keep].abs().sum(1) > 0).all()


# ----------------------------------------------------------------------- Number Token Losses
def test_ntl_was_is_the_development_codes_cdf_distance():
    """tum-ai/number-token-loss (development code): Σ_i |CDF_p(i) − CDF_y(i)| over the
    value-sorted digit tokens, the same as Σ p |v − v_y| for the unit-spaced digits 0-9."""
    g = _gen(7)
    z = torch.randn(10, 10, generator=g, dtype=D)
    t = torch.randint(0, 10, (10,), generator=g)
    p = torch.softmax(z, -1)
    cdf_dist = (torch.cumsum(p, -1) - torch.cumsum(F.one_hot(t, 10).to(D), -1)).abs().sum(-1)
    ce = F.cross_entropy(z, t, reduction="none")
    got = LF.ntl_was_loss(z, t, ntl_weight=0.3, reduction="none")
    torch.testing.assert_close(got, ce + 0.3 * cdf_dist)
    # the ntloss package's NTLossDotProduct with mse_loss: (ŷ − y)² with ŷ = Σ p v
    yhat = (p * torch.arange(10, dtype=D)).sum(-1)
    mse = F.mse_loss(yhat, t.to(D), reduction="none")
    torch.testing.assert_close(
        LF.ntl_mse_loss(z, t, ntl_weight=0.3, reduction="none"), ce + 0.3 * mse
    )


def test_ntl_values_need_no_order_but_must_fit():
    z = torch.randn(4, 3, generator=_gen(8), dtype=D)
    t = torch.tensor([0, 1, 2, 1])
    v = torch.tensor([5.0, -1.0, 2.0], dtype=D)
    p = torch.softmax(z, 1)
    want = F.cross_entropy(z, t, reduction="none") + (p * (v - v[t].unsqueeze(1)).abs()).sum(1)
    torch.testing.assert_close(
        LF.ntl_was_loss(z, t, values=v, ntl_weight=1.0, reduction="none"), want
    )
    with pytest.raises(ValueError, match="`values`"):
        LF.ntl_mse_loss(z, t, values=[1.0, 2.0])
    with pytest.raises(ValueError, match="`ntl_weight`"):
        lt.create_loss("ntl-was", ntl_weight=-1.0)


# ------------------------------------------------------------------------------------ LDR-KL
def _ldr_official(y_pred, y_true, threshold, lam):
    """LDRLoss_V1 of Optimization-AI/ICML2023_LDR (loss.py), transcribed."""
    y_pred = F.softplus(y_pred)
    y_pred = y_pred / torch.mean(y_pred, dim=1, keepdim=True)
    diff = threshold * (1 - y_true) + y_pred - torch.sum(y_pred * y_true, dim=1, keepdim=True)
    diff = diff / lam
    max_diff = torch.max(diff, dim=1, keepdim=True).values.detach()
    loss = lam * (torch.log(torch.mean(torch.exp(diff - max_diff), dim=1, keepdim=True)) + max_diff)
    return loss.mean()


def test_ldr_kl_matches_the_official_code():
    g = _gen(9)
    z = torch.randn(16, 7, generator=g, dtype=D) * 3
    t = torch.randint(0, 7, (16,), generator=g)
    for margin, lam in ((0.1, 10.0), (2.0, 1.0), (0.5, 0.1)):
        x1, x2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        want = _ldr_official(x1, F.one_hot(t, 7).to(D), margin, lam)
        got = LF.ldr_kl_loss(x2, t, margin=margin, lam=lam)  # normalize="softplus"
        torch.testing.assert_close(got, want)
        want.backward()
        got.backward()
        torch.testing.assert_close(x2.grad, x1.grad)


def test_ldr_kl_large_lambda_is_the_mean_margin():
    """λ → ∞: (1/C) Σ_k (c [k≠y] + z_k − z_y), up to var/(2λ)."""
    g = _gen(10)
    z = torch.randn(8, 5, generator=g, dtype=D)
    t = torch.randint(0, 5, (8,), generator=g)
    c = 0.3
    mean_margin = c * 4 / 5 + z.mean(1) - z.gather(1, t.unsqueeze(1)).squeeze(1)
    got = LF.ldr_kl_loss(z, t, margin=c, lam=1e6, normalize=None, reduction="none")
    torch.testing.assert_close(got, mean_margin, atol=1e-5, rtol=0)


def _naive_normalized(z: torch.Tensor, how: str) -> torch.Tensor:
    if how == "softplus":
        sp = F.softplus(z)
        return sp / sp.mean(1, keepdim=True)
    return z / z.abs().mean(1, keepdim=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ldr_kl_softplus_rows_past_underflow(dtype):
    """Rows whose every logit is very negative: softplus underflows (below about −69 the mean
    is under 1e-30), and the ratio is taken in log space. Value and gradient match the float64
    formula (float64 softplus is fine down to about −700)."""
    z = torch.tensor(
        [[-80.0, -81.0, -79.5, -90.0], [-300.0, -301.0, -299.0, -330.0], [1.0, -2.0, 0.5, 3.0]],
        dtype=D,
    )
    t = torch.tensor([0, 2, 1])
    x = z.detach().clone().to(dtype).requires_grad_(True)
    got = LF.ldr_kl_loss(x, t, margin=0.4, lam=0.7, reduction="sum")
    got.backward()
    ref = z.detach().clone().requires_grad_(True)
    zt = torch.exp(torch.log(F.softplus(ref)) - torch.log(F.softplus(ref).mean(1, keepdim=True)))
    a = (zt + 0.4 * (1 - F.one_hot(t, 4).to(D)) - zt.gather(1, t.unsqueeze(1))) / 0.7
    want = (0.7 * (torch.logsumexp(a, 1) - math.log(4))).sum()
    want.backward()
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(got.double(), want, **tol)
    torch.testing.assert_close(x.grad.double(), ref.grad, **tol)


def test_ldr_l1_row_of_zeros():
    """A zero-initialised head gives rows of zeros: z / mean |z| is 0/0; the floor keeps the
    scores 0 (the uniform distribution) and the gradient finite."""
    z = torch.zeros(3, 4, requires_grad=True)
    t = torch.tensor([0, 1, 3])
    out = LF.aldr_kl_loss(z, t, margin=0.1, lam=10.0, reduction="none")
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()
    # the uniform scores: λ (CE(−c e_y / λ) − log C)
    want = 10.0 * (
        F.cross_entropy(torch.full((3, 4), 0.01) - 0.01 * F.one_hot(t, 4), t, reduction="none")
        - math.log(4)
    )
    torch.testing.assert_close(out, want)


# ----------------------------------------------------------------------------------- ALDR-KL
def _aldr_official(y_pred, y_true, lambdas, lam_ref, threshold, alpha, softplus):
    """ALDRLoss_V1.forward of Optimization-AI/ICML2023_LDR, transcribed without .cuda(): returns
    the loss and the λ it stores."""
    num_class = y_pred.shape[1]
    if softplus:
        y_pred = F.softplus(y_pred)
    y_denorm = torch.norm(y_pred, dim=1, p=1.0, keepdim=True) / num_class
    y_pred = y_pred / y_denorm
    pred_prob = torch.softmax(y_pred / lambdas, dim=1) + 1e-5
    pred_prob = F.normalize(pred_prob, p=1.0)
    kl_reg = torch.sum(pred_prob * torch.log(num_class * pred_prob), dim=1, keepdim=True)
    log_k = math.log(num_class)
    new = (lam_ref - lam_ref * kl_reg / (alpha * log_k)).detach()
    extra = -1 / 2 * alpha * log_k / lam_ref * (new - lam_ref) ** 2
    diff = threshold * (1 - y_true) + y_pred - torch.sum(y_pred * y_true, dim=1, keepdim=True)
    diff = diff / new
    max_diff = torch.max(diff, dim=1, keepdim=True).values.detach()
    loss = new * (torch.log(torch.mean(torch.exp(diff - max_diff), dim=1, keepdim=True)) + max_diff)
    return (loss + extra).mean(), new.squeeze(1)


@pytest.mark.parametrize("softplus", [False, True])
def test_aldr_kl_matches_the_official_code(softplus):
    """The official code adds 1e-5 to p before the KL; longtail takes the KL exactly: the λ step
    differs by about that much, the loss and gradient a little less."""
    g = _gen(11)
    z = torch.randn(16, 6, generator=g, dtype=D) * 2
    t = torch.randint(0, 6, (16,), generator=g)
    lambdas = 10.0 * (0.5 + torch.rand(16, 1, generator=g, dtype=D) / 2)
    how = "softplus" if softplus else "l1"
    x1, x2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    want, want_lam = _aldr_official(x1, F.one_hot(t, 6).to(D), lambdas, 10.0, 0.1, 2.0, softplus)
    got = LF.aldr_kl_loss(x2, t, normalize=how, lambdas=lambdas.squeeze(1))
    lam = LF.aldr_kl_lambdas(z, t, normalize=how, lambdas=lambdas.squeeze(1))
    torch.testing.assert_close(lam, want_lam, rtol=0, atol=1e-4)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    want.backward()
    got.backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=0, atol=1e-5)


def test_aldr_kl_lambdas_stay_in_their_interval():
    g = _gen(12)
    for scale in (0.01, 1.0, 100.0):
        z = torch.randn(64, 10, generator=g, dtype=D) * scale
        t = torch.randint(0, 10, (64,), generator=g)
        for how in ("l1", "softplus", None):
            lam = LF.aldr_kl_lambdas(z, t, lam=4.0, alpha=2.0, normalize=how)
            assert (lam <= 4.0 + 1e-12).all() and (lam >= 4.0 * (1 - 1 / 2) - 1e-12).all()


def test_aldr_kl_module_keeps_the_per_sample_state():
    g = _gen(13)
    n_train = 20
    crit = lt.create_loss("aldr-kl", lambdas=torch.full((n_train,), 10.0)).double()
    z = torch.randn(6, 5, generator=g, dtype=D) * 3
    t = torch.randint(0, 5, (6,), generator=g)
    index = torch.tensor([3, 0, 17, 5, 9, 12])
    before = crit.lambdas.clone()
    out = crit(z, t, index)
    torch.testing.assert_close(out, LF.aldr_kl_loss(z, t, lambdas=before[index]))
    new = LF.aldr_kl_lambdas(z, t, lambdas=before[index])
    torch.testing.assert_close(crit.lambdas[index], new)
    untouched = torch.ones(n_train, dtype=torch.bool)
    untouched[index] = False
    torch.testing.assert_close(crit.lambdas[untouched], before[untouched])
    # the second visit starts from the stored λ
    z2 = torch.randn(6, 5, generator=g, dtype=D)
    torch.testing.assert_close(crit(z2, t, index), LF.aldr_kl_loss(z2, t, lambdas=new))
    # ignored entries keep their λ
    t_ign = t.clone()
    t_ign[1] = -100
    stored = crit.lambdas.clone()
    crit(z, t_ign, index)
    assert crit.lambdas[0] == stored[0] and crit.lambdas[3] != stored[3]
    # the table is a buffer: state_dict into a loss built without one
    fresh = lt.create_loss("aldr-kl").double()
    fresh.load_state_dict(crit.state_dict())
    torch.testing.assert_close(fresh.lambdas, crit.lambdas)
    # without index: every entry from λ₀
    torch.testing.assert_close(crit(z, t), LF.aldr_kl_loss(z, t))
    with pytest.raises(ValueError, match="`lambdas`"):
        lt.create_loss("aldr-kl")(z.float(), t, index)
    with pytest.raises(ValueError, match="`index`"):
        crit(z, t, index[:3])
    with pytest.raises(ValueError, match="`alpha`"):
        lt.create_loss("aldr-kl", alpha=1.0)
    with pytest.raises(ValueError, match="`lambdas`"):
        LF.aldr_kl_loss(z, t, lambdas=torch.zeros(6))


# -------------------------------------------------------------------------------- OVR, SOVR
def test_sovr_switches_the_smallest_margins():
    g = _gen(14)
    z = torch.randn(10, 4, generator=g, dtype=D) * 2
    t = torch.randint(0, 4, (10,), generator=g)
    zy = z.gather(1, t.unsqueeze(1)).squeeze(1)
    margin = zy - z.scatter(1, t.unsqueeze(1), float("-inf")).amax(1)
    ovr = LF.ovr_loss(z, t, reduction="none")
    ce = F.cross_entropy(z, t, reduction="none")
    for ratio, k in ((0.4, 4), (0.25, 2), (0.99, 9)):
        switched = torch.zeros(10, dtype=torch.bool)
        switched[margin.argsort()[:k]] = True
        got = LF.sovr_loss(z, t, ratio=ratio, reduction="none")
        torch.testing.assert_close(got, torch.where(switched, ovr, ce))
    # ignored entries are not ranked: 8 entries left, ⌊0.5 · 8⌋ = 4 switched among them
    t_ign = t.clone()
    t_ign[margin.argsort()[:2]] = -100
    got = LF.sovr_loss(z, t_ign, ratio=0.5, reduction="none")
    switched = torch.zeros(10, dtype=torch.bool)
    switched[margin.argsort()[2:6]] = True
    want = torch.where(switched, ovr, ce)
    want[margin.argsort()[:2]] = 0
    torch.testing.assert_close(got, want)


def test_ovr_gradient_is_sigmoid_minus_one_hot():
    z = torch.randn(5, 6, generator=_gen(15), dtype=D, requires_grad=True)
    t = torch.tensor([0, 5, 2, 2, 1])
    LF.ovr_loss(z, t, reduction="sum").backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach()) - F.one_hot(t, 6).to(D))
    confident = torch.tensor([[40.0, -40.0, -40.0]], dtype=D)
    assert LF.ovr_loss(confident, torch.tensor([0])).item() == pytest.approx(3 * math.exp(-40))


# ----------------------------------------------------------------------------- harmonic head
def test_harmonic_logits_give_the_harmonic_loss():
    g = _gen(16)
    x = torch.randn(6, 3, generator=g, dtype=D, requires_grad=True)
    w = torch.randn(4, 3, generator=g, dtype=D, requires_grad=True)
    t = torch.randint(0, 4, (6,), generator=g)
    n = 3.0
    loss = F.cross_entropy(LF.harmonic_logits(x, w, exponent=n, eps=0.0 + 1e-300), t)
    # HarMax, loop by loop: p_c = d_c^{-n} / Σ_j d_j^{-n}
    want = 0.0
    for i in range(6):
        d = [math.dist(x[i].tolist(), w[c].tolist()) for c in range(4)]
        want += -math.log(d[t[i]] ** -n / sum(dc**-n for dc in d)) / 6
    assert loss.item() == pytest.approx(want, rel=1e-10)
    loss.backward()
    assert torch.isfinite(x.grad).all() and w.grad.abs().sum() > 0
    # a feature on its centre: a finite, dominant logit
    on = LF.harmonic_logits(w[:1].detach(), w.detach(), exponent=n)
    assert torch.isfinite(on).all() and on.argmax().item() == 0
    with pytest.raises(ValueError, match="`centers`"):
        LF.harmonic_logits(x, w[:, :2], exponent=n)
    with pytest.raises(ValueError, match="`exponent`"):
        LF.harmonic_logits(x, w, exponent=0.0)
