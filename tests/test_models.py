"""Tests for longtail.models.NormedLinear (cosine classifier)."""

from __future__ import annotations

import math

import pytest
import torch

from longtail.models import NormedLinear


def cosine_loop(x, w):
    """Cosine similarity of every row of x with every row of w, by explicit loops."""
    out = torch.zeros(x.shape[0], w.shape[0], dtype=torch.float64)
    for n in range(x.shape[0]):
        for c in range(w.shape[0]):
            dot = sum(float(a) * float(b) for a, b in zip(x[n], w[c], strict=True))
            nx = math.sqrt(sum(float(a) ** 2 for a in x[n]))
            nw = math.sqrt(sum(float(b) ** 2 for b in w[c]))
            out[n, c] = dot / (max(nx, 1e-12) * max(nw, 1e-12))
    return out


def test_shapes_and_init():
    torch.manual_seed(0)
    m = NormedLinear(16, 5)
    assert m.weight.shape == (5, 16)  # (out_features, in_features), as nn.Linear
    norms = m.weight.detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(5))  # unit-norm class vectors
    # direction is uniform-in-[-1, 1] before rescaling: not all of one sign, not all equal
    assert (m.weight < 0).any() and (m.weight > 0).any()
    assert m(torch.randn(3, 16)).shape == (3, 5)
    assert m(torch.randn(2, 4, 16)).shape == (2, 4, 5)  # (*, in_features)
    assert not hasattr(m, "bias") or m.bias is None


def test_equals_cosine_similarity_loop():
    torch.manual_seed(1)
    m = NormedLinear(6, 4)
    with torch.no_grad():
        m.weight.mul_(torch.tensor([[0.5], [3.0], [1.0], [10.0]]))  # norms do not matter
    x = torch.randn(5, 6) * 7
    out = m(x)
    torch.testing.assert_close(
        out.double(), cosine_loop(x, m.weight.detach()), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        out, torch.nn.functional.cosine_similarity(x[:, None, :], m.weight[None], dim=-1)
    )


def test_output_in_unit_interval():
    torch.manual_seed(2)
    m = NormedLinear(32, 10)
    x = torch.randn(256, 32) * 100
    out = m(x)
    eps = 1e-6
    assert out.min() >= -1 - eps and out.max() <= 1 + eps
    # a feature equal to a class vector (scaled) has cosine 1 with it
    aligned = m(m.weight.detach()[:3] * 42.0)
    torch.testing.assert_close(aligned.diagonal(), torch.ones(3))


def test_zero_vectors_give_zero_not_nan():
    m = NormedLinear(4, 3)
    out = m(torch.zeros(2, 4))
    assert torch.isfinite(out).all() and (out == 0).all()
    with torch.no_grad():
        m.weight[1].zero_()
    out = m(torch.randn(3, 4))
    assert torch.isfinite(out).all() and (out[:, 1] == 0).all()
    x = torch.zeros(1, 4, requires_grad=True)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradients_flow():
    torch.manual_seed(3)
    m = NormedLinear(8, 3)
    x = torch.randn(4, 8, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(16 * m(x), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    # scale invariance: gradient w.r.t. x is orthogonal to x
    torch.testing.assert_close((x.grad * x).sum(dim=1), torch.zeros(4), atol=1e-6, rtol=0)


def test_gradcheck_float64():
    torch.manual_seed(4)
    m = NormedLinear(5, 3).to(torch.float64)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda inp, w: torch.nn.functional.linear(
            torch.nn.functional.normalize(inp, dim=-1), torch.nn.functional.normalize(w, dim=1)
        ),
        (x, m.weight),
    )
    assert torch.autograd.gradcheck(m, (x,))


def test_to_float64():
    m = NormedLinear(4, 2).to(torch.float64)
    assert m.weight.dtype == torch.float64
    out = m(torch.randn(3, 4, dtype=torch.float64))
    assert out.dtype == torch.float64
    m2 = NormedLinear(4, 2, dtype=torch.float64)
    assert m2.weight.dtype == torch.float64


def test_state_dict_round_trip():
    torch.manual_seed(5)
    a = NormedLinear(7, 3)
    b = NormedLinear(7, 3)
    assert not torch.equal(a.weight, b.weight)
    b.load_state_dict(a.state_dict())
    assert list(a.state_dict()) == ["weight"]
    x = torch.randn(4, 7)
    torch.testing.assert_close(a(x), b(x))


def test_repr_and_reset():
    m = NormedLinear(12, 4)
    assert repr(m) == "NormedLinear(in_features=12, out_features=4)"
    before = m.weight.detach().clone()
    m.reset_parameters()
    assert not torch.equal(before, m.weight)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 3), r"Expected `in_features` to be an integer >= 1"),
        ((4, 0), r"Expected `out_features` to be an integer >= 1"),
        ((4.0, 3), r"Expected `in_features` to be an integer >= 1"),
    ],
)
def test_bad_construction(args, match):
    with pytest.raises(ValueError, match=match):
        NormedLinear(*args)


def test_bad_input_shape():
    m = NormedLinear(4, 3)
    with pytest.raises(ValueError, match=r"Expected `x` to be of shape \(\*, 4\)"):
        m(torch.randn(2, 5))


# ---------------------------------------------------------------------------- CIFAR ResNets
def test_resnet32_structure():
    from longtail.models import ResNetCifar, create_model, resnet32

    net = resnet32(num_classes=10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 31  # 1 + 3 stages x 5 blocks x 2, plus the classifier: 32 layers
    assert sum(p.numel() for p in net.parameters()) == 464154  # 0.46M (He et al. 2016)
    assert [c.out_channels for c in convs[::10]] == [16, 16, 32, 64]
    # option-A shortcuts have no parameters: the only convs are 3x3
    assert all(c.kernel_size == (3, 3) for c in convs)
    x = torch.randn(2, 3, 32, 32)
    assert net.features(x).shape == (2, 64)
    normed = create_model("resnet32", 100, in_channels=1, width=8, normed=True)
    assert isinstance(normed, ResNetCifar) and isinstance(normed.fc, NormedLinear)
    out = normed(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, 100) and out.abs().max() <= 1 + 1e-6  # cosine logits
    assert create_model("resnet20", 10).layers.__len__() == 9


@pytest.mark.parametrize("size", [8, 28, 32, 40])
def test_resnet_any_size_and_channels(size):
    from longtail.models import create_model

    for name in ("resnet20", "small-cnn"):
        net = create_model(name, 7, in_channels=2, width=4)
        assert net(torch.randn(2, 2, size, size)).shape == (2, 7)


def test_create_model_bad_input():
    from longtail.models import create_model, resnet32

    with pytest.raises(ValueError, match="Did you mean 'resnet32'"):
        create_model("resnet33", 10)
    with pytest.raises(ValueError, match="width"):
        resnet32(10, width=5)


def test_harmonic_head_is_harmax_and_predicts_the_nearest_centre():
    from longtail.models import HarmonicHead

    torch.manual_seed(0)
    head = HarmonicHead(6, 4, exponent=3.0).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1])
    loss = torch.nn.functional.cross_entropy(head(x), y)
    # the paper's HarMax, by hand: p_c = d_c^-n / Σ_j d_j^-n
    d = ((x[:, None, :] - head.centers.detach()[None]) ** 2).sum(-1).sqrt()
    p = d**-3.0 / (d**-3.0).sum(1, keepdim=True)
    torch.testing.assert_close(loss.detach(), -p[torch.arange(5), y].log().mean())
    assert torch.equal(head(x).argmax(1), d.argmin(1))
    loss.backward()
    assert head.centers.grad is not None and torch.isfinite(head.centers.grad).all()
    on_centre = head(head.centers.detach()[:1])  # a feature on a centre: finite, and that class
    assert torch.isfinite(on_centre).all() and on_centre.argmax().item() == 0
    with pytest.raises(ValueError, match="exponent"):
        HarmonicHead(6, 4, exponent=0.0)
