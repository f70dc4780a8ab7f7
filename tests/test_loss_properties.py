"""Every registered loss owes the same value and gradient whatever the logits' memory layout.

A tensor's layout (its strides) is an implementation detail of whoever produced it: a transposed
head, a channels-last network, a slice of a wider buffer, a batch of one image whose flattened
``(H·W, C)`` view is column-major. The loss must not see it. Each property here draws a problem
(batch size, classes, spatial dims, dtype, reduction, per-class weights, class counts) and a
layout, and checks the value and the gradient w.r.t. the logits against the same numbers held in a
contiguous tensor. The tests are parametrised over ``lt.list_losses()``, so a newly registered loss
is covered without a new test.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import longtail as lt
from longtail import functional as LF
from longtail.losses.max_margin import mm_margin_fn
from test_loss_contract import (  # the exemptions are listed once, there
    BINARY_ONLY,
    FLAT_ONLY,
    NO_HALF,
    ROW_LEVEL,
)

LOSSES = lt.list_losses()

DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
# Tolerance by the dtype of the tensor compared (half inputs give float32 losses, half gradients).
# Same numbers, different strides: only a sum taken in another order may differ, and a gradient
# rounded to half may land one ulp (2⁻¹⁰, 2⁻⁷ for bfloat16) away.
RTOL = {torch.float64: 1e-9, torch.float32: 5e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}

# Shared by every property: hypothesis' example database stays off (no .hypothesis/ folder in the
# working tree), no deadline (the machine may be loaded), few examples (the file stays fast).
PROPERTY = settings(
    deadline=None,
    max_examples=40,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ------------------------------------------------------------------------------------ layouts
def _reversed_dims(x: torch.Tensor) -> torch.Tensor:
    """Stored with every dimension reversed: ``(C, N).t()`` for 2-D."""
    order = tuple(reversed(range(x.dim())))
    return x.permute(order).contiguous().permute(order)


def _class_last(x: torch.Tensor) -> torch.Tensor:
    """Channels-last: the class dimension stored innermost (``torch.channels_last`` for 4-D)."""
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


def _strided(dim: int, offset: int = 0):
    """Every other entry along ``dim`` of a tensor twice as wide, the gaps NaN (or, in a label
    tensor, the invalid label −7): a loss that reads outside its view returns NaN or raises, not a
    plausible number."""

    def make(x: torch.Tensor) -> torch.Tensor:
        if x.dim() <= dim:  # a (N,) label vector has no dimension 1
            return x.clone()
        shape = list(x.shape)
        shape[dim] = 2 * shape[dim] + offset
        wide = torch.full(shape, float("nan") if x.is_floating_point() else -7, dtype=x.dtype)
        index = [slice(None)] * x.dim()
        index[dim] = slice(offset, None, 2)
        wide[tuple(index)] = x
        return wide[tuple(index)]

    return make


LAYOUTS = {
    "contiguous": lambda x: x.clone(),
    "transposed": _reversed_dims,
    "channels-last": _class_last,
    "classes-strided": _strided(1),  # x[:, ::2]
    "batch-strided": _strided(0),  # x[::2]
    "offset-strided": _strided(1, offset=1),  # x[:, 1::2], a storage offset as well
}


def _layouts_for(ndim: int) -> list[str]:
    # channels-last of a 2-D (N, C) tensor is the contiguous layout
    return [k for k in LAYOUTS if not (k == "channels-last" and ndim < 3)]


# ------------------------------------------------------------------------------------ problems
@st.composite
def problems(draw, name: str):
    """One drawn problem for loss ``name``: its module, contiguous logits, target, generator."""
    info = lt.get_loss_info(name)
    n = draw(st.integers(1, 5))
    c = draw(st.integers(2, 7))
    spatial = [] if name in FLAT_ONLY else draw(st.lists(st.integers(1, 3), max_size=2))
    dtypes = DTYPES[:2] if name in NO_HALF else DTYPES
    dtype = draw(st.sampled_from(dtypes))
    per_sample = lt.get_loss_info(name).per_sample
    reduction = draw(st.sampled_from(["mean", "sum", "none"] if per_sample else ["mean", "sum"]))
    spread = draw(st.sampled_from([1.0, 4.0, 100.0]))  # 100: saturated softmax / sigmoid
    weighted = draw(st.booleans())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))

    shape = (n, c, *spatial)
    z = ((torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * spread).to(dtype)
    counts = torch.randint(1, 1000, (c,), generator=g).tolist()
    weight = torch.rand(c, generator=g) + 0.1 if weighted else None
    if info.target == "multilabel":
        soft = name not in BINARY_ONLY and draw(st.booleans())
        t = torch.rand(shape, generator=g, dtype=torch.float64)
        if soft and name == "decoupled-softmax":
            # its negatives are the entries equal to 0 (soft targets without one are refused):
            # soft positives beside exact zeros, one zero at least
            t = t.masked_fill(t < 0.5, 0.0)
            t.view(-1)[0] = 0.0
        target = (t if soft else (t > 0.5).double()).to(dtype)
    else:
        target = torch.randint(0, c, (n, *spatial), generator=g)
        if draw(st.booleans()):  # some labels ignored
            target = target.masked_fill(torch.rand(target.shape, generator=g) < 0.3, -100)
    crit = lt.create_loss_for_counts(name, counts, weight=weight, reduction=reduction)
    return crit, z, target, g


def _assert_same(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, what
    tol = RTOL[want.dtype]
    scale = want.detach().abs().max().item() if want.numel() else 0.0
    # atol scaled by the largest entry: a gradient entry near 0 is the difference of two O(1)
    # numbers (p − 1), good to the tolerance of those, not of itself
    torch.testing.assert_close(
        got,
        want,
        rtol=tol,
        atol=tol * max(scale, 1e-6),
        equal_nan=False,
        msg=lambda m: f"{what}: {m}",
    )


def _value_and_grad(crit, z: torch.Tensor, target: torch.Tensor, cotangent=None):
    z = z.detach().requires_grad_(True)  # a leaf of z's own layout
    out = copy.deepcopy(crit)(z, target)  # each layout sees the same state (stateful losses)
    if cotangent is None:
        cotangent = torch.ones_like(out)
    (grad,) = torch.autograd.grad(out, z, grad_outputs=cotangent)
    return out.detach(), grad, cotangent


def _check_layouts(crit, z, target, g, layouts=None):
    """Value and gradient of ``crit`` on ``z`` in each layout equal those on contiguous ``z``."""
    want, want_grad, cot = _value_and_grad(crit, z, target, None)
    if want.dim():  # reduction="none": a random cotangent, not all ones
        cot = torch.rand(want.shape, generator=g, dtype=torch.float64).to(want.dtype) + 0.5
        want, want_grad, _ = _value_and_grad(crit, z, target, cot)
    for layout in layouts or _layouts_for(z.dim()):
        # the target comes in the same layout (a strided label map, transposed 0/1 targets)
        zl, tl = LAYOUTS[layout](z), LAYOUTS[layout](target)
        assert torch.equal(zl, z) and torch.equal(tl, target)
        got, got_grad, _ = _value_and_grad(crit, zl, tl, cot)
        what = f"{layout} {tuple(z.shape)} {z.dtype}"
        _assert_same(got, want, f"value, {what}")
        _assert_same(got_grad, want_grad, f"gradient, {what}")


# ------------------------------------------------------------------------------------ properties
@pytest.mark.parametrize("name", LOSSES)
def test_every_layout_gives_the_contiguous_value_and_gradient(name):
    # every layout for each drawn problem, not one drawn layout: a problem that a layout bug shows
    # on (a transposed batch of two, a batch-of-one image) is then always checked in that layout
    @PROPERTY
    @given(problem=problems(name))
    def check(problem):
        _check_layouts(*problem)

    check()


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("layout", ["transposed", "classes-strided", "batch-strided"])
def test_flat_layouts_every_dtype(name, layout):
    """Each flat layout with each dtype, deterministically (the property samples them)."""
    for dtype in DTYPES[:2] if name in NO_HALF else DTYPES:
        g = torch.Generator().manual_seed(3)
        z = (torch.randn(6, 5, generator=g, dtype=torch.float64) * 3).to(dtype)
        crit, target = _crit_and_target(name, z, g)
        _check_layouts(crit, z, target, g, [layout])


def _crit_and_target(name, z, g, reduction="mean"):
    counts = [50, 20, 5, 2, 1, 7, 3][: z.shape[1]]
    crit = lt.create_loss_for_counts(name, counts, reduction=reduction)
    if lt.get_loss_info(name).target == "multilabel":
        return crit, (torch.rand(z.shape, generator=g) > 0.5).to(z.dtype)
    return crit, torch.randint(0, z.shape[1], (z.shape[0], *z.shape[2:]), generator=g)


# ------------------------------------------------------------------------------------ regressions
def test_ldam_on_transposed_logits_regression():
    """The issue's example: LDAM gave 15.19 on ``randn(5, 7).t()`` and 26.61 on its contiguous
    copy; both must agree, in value and gradient."""
    torch.manual_seed(0)
    z = torch.randn(5, 7).t()
    y = torch.randint(0, 5, (7,))
    crit = lt.create_loss("ldam", class_counts=[50, 20, 5, 2, 1])
    zt = z.clone().requires_grad_(True)  # clone keeps the transposed strides
    zc = z.contiguous().requires_grad_(True)
    assert zt.stride() == (1, 7) and zc.stride() == (5, 1)
    lt_, lc = crit(zt, y), crit(zc, y)
    lt_.backward()
    lc.backward()
    torch.testing.assert_close(lt_, lc)
    torch.testing.assert_close(zt.grad, zc.grad)


@pytest.mark.parametrize("name", [n for n in LOSSES if n not in FLAT_ONLY])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_batch_of_one_dense_map(name, reduction):
    """``(1, C, H, W)``: the loss's flattened ``(H·W, C)`` view of it is column-major."""
    if reduction == "none" and not lt.get_loss_info(name).per_sample:
        reduction = "sum"  # a batch-level loss has no per-sample values
    g = torch.Generator().manual_seed(5)
    z = torch.randn(1, 5, 3, 4, generator=g, dtype=torch.float64) * 2
    crit, target = _crit_and_target(name, z, g, reduction)
    zl = z.clone().requires_grad_(True)
    out = crit(zl, target)
    # the reference: each pixel as a row of a contiguous (H·W, C) batch
    rows = z.movedim(1, -1).reshape(-1, 5).contiguous().requires_grad_(True)
    if target.is_floating_point():  # multi-label: the targets are flattened like the logits
        ref = crit(rows, target.movedim(1, -1).reshape(-1, 5))
        if reduction == "none":
            if name in ROW_LEVEL:  # one value per pixel
                ref = ref.reshape(1, 3, 4)
            else:
                ref = ref.reshape(1, 3, 4, 5).movedim(-1, 1)
    else:
        ref = crit(rows, target.reshape(-1))
        if reduction == "none":
            ref = ref.reshape(1, 3, 4)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(zl.grad, rows.grad.reshape(1, 3, 4, 5).movedim(-1, 1))


# The fused primitive itself (public as longtail.functional.adjusted_cross_entropy), with every
# combination of its adjustments, on a transposed input and on the column-major view a
# batch-of-one dense map flattens to.
ADJUSTMENTS = {
    "none": {},
    "scale": {"scale": 30.0},
    "bias": {"class_bias": torch.tensor([0.5, -1.0, 0.0, 2.0, -0.3])},
    "scale+bias": {"scale": 2.0, "class_bias": torch.tensor([0.5, -1.0, 0.0, 2.0, -0.3])},
    "class-scale": {"class_scale": torch.tensor([1.0, 0.5, 0.8, 0.2, 0.9])},
    "margin": {"scale": 30.0, "margin": "per-sample"},
    "margin, scale 1": {"margin": "per-sample"},
    "mm": {"scale": 30.0, "margin_fn": functools.partial(mm_margin_fn, delta_minus=0.6, beta=1.5)},
    "mm, scale 1": {"margin_fn": functools.partial(mm_margin_fn, delta_minus=0.6, beta=1.5)},
}


@pytest.mark.parametrize("adjust", list(ADJUSTMENTS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_adjusted_primitive_any_layout(adjust, dtype):
    g = torch.Generator().manual_seed(11)
    kw = dict(ADJUSTMENTS[adjust])
    y = torch.randint(0, 5, (12,), generator=g)
    if kw.get("margin") == "per-sample":
        kw["margin"] = torch.rand(12, generator=g, dtype=torch.float64)
    base = torch.randn(12, 5, generator=g, dtype=torch.float64).to(dtype)
    column_major = base.t().contiguous().t()
    pixels = base.t().contiguous().reshape(1, 5, 3, 4).movedim(1, -1).reshape(-1, 5)
    assert pixels.stride() == (1, 12) and torch.equal(pixels, base)
    cot = torch.rand(12, generator=g, dtype=torch.float64) + 0.5
    ref_in = base.clone().requires_grad_(True)
    want = LF.adjusted_cross_entropy(ref_in, y, **kw)
    (want_grad,) = torch.autograd.grad(want, ref_in, cot.to(want.dtype))
    for z in (column_major, pixels):
        z = z.detach().requires_grad_(True)
        got = LF.adjusted_cross_entropy(z, y, **kw)
        (got_grad,) = torch.autograd.grad(got, z, cot.to(got.dtype))
        _assert_same(got.detach(), want.detach(), f"{adjust} value")
        _assert_same(got_grad, want_grad, f"{adjust} gradient")
