"""LMSE (Park 2022, the author's code's form) against a loop transcription."""

from __future__ import annotations

import math

import pytest
import torch

from longtail.regression.log_mse import LogMSELoss, log_mse_loss


def reference(pred, target, weight=None):
    vals = []
    for i, (p, t) in enumerate(zip(pred.tolist(), target.tolist(), strict=True)):
        d = p - t
        v = -math.log(max(1 - d * d, 0.0) + 1e-30)
        vals.append(v * (weight[i] if weight is not None else 1.0))
    return vals


def test_matches_the_loop_transcription_with_weights():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(50, generator=g), torch.rand(50, generator=g)
    w = torch.rand(50, generator=g)
    ref = reference(pred.double(), target.double(), w.double().tolist())
    got = log_mse_loss(pred.double(), target.double(), w.double(), reduction="none")
    assert torch.allclose(got, torch.tensor(ref, dtype=torch.float64))
    assert math.isclose(
        float(log_mse_loss(pred.double(), target.double(), w.double())),
        sum(ref) / 50,
        rel_tol=1e-12,
    )
    assert math.isclose(
        float(LogMSELoss("sum")(pred.double(), target.double())),
        sum(reference(pred.double(), target.double())),
        rel_tol=1e-12,
    )


def test_small_residuals_give_the_squared_error_and_large_ones_grow_faster():
    d = torch.tensor([1e-3, 0.5, 0.9])
    lm = log_mse_loss(d, torch.zeros(3), reduction="none")
    assert math.isclose(float(lm[0]), 1e-6, rel_tol=1e-3)
    assert bool((lm > d * d).all())
    # beyond |d| = 1 (unscaled data) the value is capped, the gradient zero, never NaN
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    out = log_mse_loss(x, torch.zeros(2), reduction="none")
    out.sum().backward()
    assert torch.allclose(out, torch.full((2,), -math.log(1e-30)))
    assert torch.equal(x.grad, torch.zeros(2))


def test_gradcheck_half_precision_empty_and_bad_input():
    g = torch.Generator().manual_seed(1)
    p = (torch.rand(6, 2, generator=g, dtype=torch.float64) * 0.8).requires_grad_()
    t = torch.rand(6, 2, generator=g, dtype=torch.float64) * 0.8
    assert torch.autograd.gradcheck(lambda a: log_mse_loss(a, t), (p,))
    half = log_mse_loss(p.detach().half(), t.half())
    assert half.dtype == torch.float32 and torch.isfinite(half)
    empty = log_mse_loss(torch.zeros(0, requires_grad=True), torch.zeros(0))
    assert float(empty.detach()) == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="shape"):
        log_mse_loss(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(ValueError):
        log_mse_loss(torch.zeros(3), torch.zeros(3), reduction="avg")
    with pytest.raises(ValueError):
        LogMSELoss(eps=0.0)
    # a transposed (non-contiguous) input gives the same values as its contiguous copy
    m = torch.rand(4, 3, generator=g)
    assert torch.equal(
        log_mse_loss(m.t(), m.t().flip(0), reduction="none"),
        log_mse_loss(m.t().contiguous(), m.t().flip(0).contiguous(), reduction="none"),
    )
