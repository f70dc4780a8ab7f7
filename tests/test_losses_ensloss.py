"""EnsLoss beyond the registry-wide contract: the drawn derivatives are convex and calibrated,
the binary case is the official forward, and the draw is reproducible, per step and on resume."""

from __future__ import annotations

import pytest
import torch

import longtail as lt
from longtail import functional as LF


def _slopes(z: torch.Tensor, **kw) -> torch.Tensor:
    """∂ sum ℓ / ∂z for positive labels, i.e. the derivatives g at the margins s = z."""
    x = z.clone().requires_grad_(True)
    LF.ens_loss(x, torch.ones_like(z), reduction="sum", **kw).backward()
    return x.grad


@pytest.mark.parametrize("lam", [0.0, 0.5, -0.5, 2.0])
def test_derivatives_are_convex_and_calibrated(lam):
    """Non-decreasing in the margin (a convex loss), negative everywhere, so at 0 (calibrated,
    Bartlett et al. 2006), floored at −1 (the official code's floor, less its 1e-6 shift)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(400, generator=g, dtype=torch.float64) * 3
    z[:40] = z[40:80]  # ties
    z[80] = 0.0
    slope = _slopes(z, lam=lam, seed=11)
    order = z.argsort()
    assert (slope[order].diff() >= 0).all()
    assert (slope < 0).all() and (slope >= -1 - 1e-6).all()
    torch.testing.assert_close(slope[:40], slope[40:80], rtol=0, atol=0)  # equal margins


def test_binary_logits_follow_the_official_forward():
    """(N,) logits and 0/1 targets: the official ``ensLoss.forward`` arithmetic, written with
    torch ops on the same normal draws (no ties, so its arbitrary tie order does not matter)."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, generator=g, dtype=torch.float64) * 2
    t = (torch.rand(32, generator=g) > 0.5).double()
    eps = torch.randn(32, generator=torch.Generator().manual_seed(5)).double()

    s = z * (2 * t - 1)
    rd_grad, _ = torch.sort(-torch.exp(eps))
    rd_grad = torch.maximum(rd_grad, torch.tensor(-1.0, dtype=torch.float64))
    _, ind = torch.sort(s)
    g_batch = torch.zeros(32, dtype=torch.float64)
    g_batch[ind] = rd_grad
    g_batch[s > 1] *= 1 / s[s > 1]
    g_batch = g_batch - 1e-6
    want_value = (g_batch * s).mean()
    want_grad = g_batch * (2 * t - 1) / 32

    x = z.clone().requires_grad_(True)
    got = LF.ens_loss(x, t, seed=5)
    got.backward()
    torch.testing.assert_close(got, want_value)
    torch.testing.assert_close(x.grad, want_grad)
    # the same problem as (N, 1) logits with (N, 1) targets, and with integer 0/1 targets
    torch.testing.assert_close(LF.ens_loss(z[:, None], t[:, None], seed=5), want_value)
    torch.testing.assert_close(LF.ens_loss(z, t.long(), seed=5), want_value)


def test_batch_order_does_not_matter():
    """Permuting the batch permutes the per-entry values, ties included."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(10, 4, generator=g).round(decimals=1)  # many tied margins
    y = torch.randint(0, 4, (10,), generator=g)
    perm = torch.randperm(10, generator=g)
    a = LF.ens_loss(z, y, seed=3, reduction="none")
    b = LF.ens_loss(z[perm], y[perm], seed=3, reduction="none")
    torch.testing.assert_close(b, a[perm], rtol=1e-6, atol=1e-7)


def _step(crit, z, y):
    out = crit(z.clone().requires_grad_(True), y)
    out.backward()
    return out.detach()


def test_one_draw_per_step_reproducible_and_resumable():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(16, 3, generator=g)
    y = (torch.rand(16, 3, generator=g) > 0.5).float()
    a, b = lt.create_loss("ensloss", seed=9), lt.create_loss("ensloss", seed=9)
    first = [_step(a, z, y) for _ in range(3)]
    assert [_step(b, z, y) for _ in range(3)] == first  # same seed, same losses
    assert len({v.item() for v in first}) == 3  # a fresh loss each step
    torch.testing.assert_close(a(z, y), a(z, y), rtol=0, atol=0)  # no backward: the same draw
    resumed = lt.create_loss("ensloss")
    resumed.load_state_dict(a.state_dict())
    torch.testing.assert_close(_step(resumed, z, y), _step(a, z, y), rtol=0, atol=0)
    assert _step(lt.create_loss("ensloss", seed=10), z, y) != first[0]


def test_bad_arguments_are_value_errors():
    z = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"`target`.*\[0, 1\]"):
        LF.ens_loss(z, torch.full((4, 2), 1.5))
    with pytest.raises(ValueError, match="`lam`"):
        lt.create_loss("ensloss", lam=float("inf"))
    with pytest.raises(ValueError, match="`seed`"):
        LF.ens_loss(z, torch.zeros(4, 2), seed=-1)
