"""What the papers of the noise-robust and "standard extra" losses say of them, beyond the
registry-wide contract (tests/test_loss_contract.py, which checks each against its loop-based
transcription in tests/_reference_robust.py).

* Ma et al. (ICML 2020): a normalised loss sums to 1 over the labels, whatever the logits
  (Lemma 1, the source of its noise robustness); RCE and MAE are symmetric (their sum over the
  labels is a constant); NFL with γ = 0 is NCE.
* the closed-form gradients (NCE, NFL) equal autograd's on the plain formula, also at saturated
  probabilities where the plain formula's autograd is fragile;
* the official codes' variants are one argument away (RCE's clamp of the label at 1e-4);
* every loss trains: SGD on a small linear problem lowers it.
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
    """Σ_k NCE(z, k) = Σ_k NFL(z, k) = 1 for every z (Ma et al., Lemma 1)."""
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


def test_nfl_module_under_no_grad_and_double_backward():
    """No gradient wanted: the forward skips it (same value). A second derivative through the
    written-out backward is refused, not silently wrong."""
    z = torch.randn(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    crit = lt.create_loss("nfl").double()
    with torch.no_grad():
        cold = crit(z, y)
    x = z.clone().requires_grad_(True)
    hot = crit(x, y)
    torch.testing.assert_close(cold, hot.detach())
    for name in ("nce", "nfl"):
        x = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(lt.create_loss(name).double()(x, y), x, create_graph=True)
        with pytest.raises(RuntimeError):
            torch.autograd.grad(g.sum(), x)


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
