"""The contract every registered loss owes, parametrised over ``lt.list_losses()``.

A loss registered with ``@register_loss`` is checked here without a new test; what it must bring:

* its loop-based transcription in ``tests/_reference.py`` (``REFERENCES[name]``): the tests
  *fail* for a loss without one, they do not skip it;
* where its paper gives one, an equivalence in :data:`EQUIVALENCES` below or in its family's
  ``tests/_reference_<family>.py`` (``FAMILY_EQUIVALENCES``): loss X at setting S equals loss Y,
  or a torch function;
* if a property cannot hold, a visible exemption with its reason: in the registry
  (``compiles=False`` + ``compile_note``; ``stop_gradient`` for a gradient that is not the true
  derivative, which gradcheck cannot check) or in :data:`FLAT_ONLY` / :data:`NO_HALF` below.

The checks: the registry entry (family, docstring, signature conventions, defaults shared by the
function, the module and ``create_loss``); the value against the reference (each setting, each
reduction, with and without ``weight``); module == function; gradcheck in float64; float16 /
bfloat16 inputs; logits at ±1e4; a batch of one; an empty batch (a zero still attached to the
graph); ``ignore_index`` (ignoring an entry == dropping it); ``(N, C, d1, ...)`` inputs ==
flattened; bad input → ``ValueError``; ``state_dict()`` round trip (state in buffers) and the
interface the training engine uses (``reduction = "none"``, ``set_weight``); ``torch.compile`` ==
eager on one small shape. Memory layouts (transposed, channels-last, strided) are checked for every
loss in tests/test_loss_properties.py, also over the registry.
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import _reference as ref
import longtail as lt
from longtail.losses import _registry

LOSSES = lt.list_losses()
COUNTS, C = ref.COUNTS, ref.C

# Losses that take only (N, C) logits, and losses that refuse half inputs: a family adds them to
# the sets in its tests/_reference_<family>.py, visibly, with the reason.
FLAT_ONLY: frozenset[str] = frozenset(ref.FLAT_ONLY)
NO_HALF: frozenset[str] = frozenset(ref.NO_HALF)
# Multi-label losses that refuse soft targets, and those with one value per sample (not per
# logit) under reduction="none": listed in the family's tests/_reference_<family>.py.
BINARY_ONLY: frozenset[str] = frozenset(ref.BINARY_ONLY)
ROW_LEVEL: frozenset[str] = frozenset(ref.ROW_LEVEL)

REDUCTIONS = ("mean", "sum", "none")


def reductions(name: str) -> tuple[str, ...]:
    """The reductions a loss takes: a batch-level loss (``per_sample=False`` in the registry: a
    soft F-score, an AUC of the batch) has no per-sample values, so no ``"none"``."""
    return REDUCTIONS if lt.get_loss_info(name).per_sample else ("mean", "sum")


def none_shape(name: str, logits: torch.Tensor, target: torch.Tensor) -> tuple[int, ...]:
    """The shape of ``reduction="none"``: the target's, or the batch shape ``(N, d1, ...)`` for a
    multi-label loss with one value per sample (:data:`ROW_LEVEL`)."""
    if name in ROW_LEVEL:
        return (logits.shape[0], *logits.shape[2:])
    return tuple(target.shape)


def unreduced(name: str) -> str:
    """``"none"`` where a loss has per-sample values, else ``"sum"`` (checked the same way)."""
    return "none" if lt.get_loss_info(name).per_sample else "sum"


# ------------------------------------------------------------------------------------ helpers
def info(name: str) -> lt.LossInfo:
    return lt.get_loss_info(name)


def reference(name: str) -> ref.Reference:
    if name not in ref.REFERENCES:
        pytest.fail(
            f"loss {name!r} has no loop-based reference: add REFERENCES[{name!r}] to "
            "tests/_reference.py, a transcription of the paper's formula"
        )
    return ref.REFERENCES[name]


def inputs(name: str, n: int = 8, dtype=torch.float64, seed: int = 0, spatial=()):
    """Logits in [-3, 3] and a target of the kind the loss takes."""
    g = torch.Generator().manual_seed(seed)
    z = ((torch.rand(n, C, *spatial, generator=g, dtype=torch.float64) * 2 - 1) * 3).to(dtype)
    if info(name).target == "multilabel":
        target = (torch.rand(z.shape, generator=g) > 0.5).to(dtype)
    elif info(name).target == "soft":
        target = torch.rand(z.shape, generator=g, dtype=torch.float64).softmax(1).to(dtype)
    elif info(name).target == "value":
        target = _values(g, (n, *spatial)).to(dtype)
    else:
        target = torch.randint(0, C, (n, *spatial), generator=g)
    return z, target


def _values(g: torch.Generator, shape) -> torch.Tensor:
    """Real-valued targets over the classes' default values 0..C-1 (a "value" loss), on a grid of
    1/32: exact in float16 and bfloat16, so half inputs see the same targets."""
    return (torch.rand(shape, generator=g, dtype=torch.float64) * (C - 1) * 32).round() / 32


WEIGHT = [0.5, 2.0, 1.0, 3.0, 0.25]


def build(name: str, **kw: Any) -> torch.nn.Module:
    """The module, with the training counts where the loss uses them; built under a fixed
    global seed (which a random loss draws its base seed from, when it is given none), so two
    builds are the same loss, and the tests' other draws are left as they were."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return lt.create_loss_for_counts(name, COUNTS, **kw)


def state_of(name: str, module: torch.nn.Module) -> dict:
    """What a stateful loss's function needs to compute what its module does now (a random
    loss's step seed); read it before the module's step moves on."""
    return ref.STATE[name](module) if name in ref.STATE else {}


def call_function(name: str, z, target, **kw):
    fn = info(name).function
    return fn(z, target, COUNTS, **kw) if info(name).needs_counts else fn(z, target, **kw)


def expected_value(name: str, z, target, setting: dict, weight=None, reduction="mean"):
    kw = {**info(name).defaults, **setting}
    out = reference(name).loss(
        z.double().tolist(),
        target.double().tolist() if target.is_floating_point() else target.tolist(),
        COUNTS,
        weight,
        reduction,
        kw,
    )
    return torch.tensor(out, dtype=torch.float64)


def tensor_setting(setting: dict) -> dict:
    """Per-class lists of a setting as tensors (create_loss and the function take both)."""
    return {k: torch.tensor(v) if isinstance(v, list) else v for k, v in setting.items()}


# ------------------------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_has_a_reference(name):
    ref_ = reference(name)
    assert ref_.settings and {} in ref_.settings, "settings must include {} (the defaults)"
    for setting in ref_.settings:
        unknown = set(setting) - set(info(name).keywords)
        assert not unknown, f"setting {setting} names no argument of {name!r}: {unknown}"


def test_every_reference_is_a_registered_loss():
    assert set(ref.REFERENCES) <= set(LOSSES), set(ref.REFERENCES) - set(LOSSES)


@pytest.mark.parametrize("name", LOSSES)
def test_registry_entry(name):
    i = info(name)
    assert i.family in lt.losses.FAMILIES and i.target in lt.losses.TARGETS
    assert i.description and len(i.description) <= 100, "one short line for `longtail losses`"
    assert i.paper
    doc = inspect.getdoc(i.function) or ""
    assert doc, f"{i.function.__name__} has no docstring"
    # the docstring says where each default comes from, and which are uncertain
    for hp in i.defaults:
        assert hp in doc, f"{i.function.__name__}'s docstring does not document {hp!r}"
    if i.uncertain:
        assert "ncertain" in doc, f"{name}: uncertain defaults {i.uncertain} not said so"
    if i.paper != "-":
        author = i.paper.split()[0].rstrip(",")
        assert author in doc, f"{i.function.__name__}'s docstring does not cite {i.paper}"
    # exported under its own names, from the registry
    assert getattr(lt.functional, i.function.__name__) is i.function
    assert i.function.__name__ in lt.functional.__all__
    assert getattr(lt.losses, i.cls.__name__) is i.cls and i.cls.__name__ in lt.losses.__all__
    assert getattr(lt, i.cls.__name__) is i.cls and i.cls.__name__ in lt.__all__
    # the loss's name as an identifier finds its function when the two differ
    guess = name.replace("-", "_") + "_loss"
    if guess != i.function.__name__:
        with pytest.raises(AttributeError, match=rf"Did you mean .*'{i.function.__name__}'"):
            getattr(lt.functional, guess)


def _conventions(params: list[inspect.Parameter]) -> list[str]:
    return [p.name for p in params if p.name in _registry.CONVENTIONS]


@pytest.mark.parametrize("name", LOSSES)
def test_signature_conventions(name):
    """(logits, target[, class_counts], *, hyper-parameters..., weight, ignore_index, reduction
    [, label_smoothing]) for the function; the same keywords, with the same defaults, for the
    module; and ``create_loss``'s defaults are the function's."""
    i = info(name)
    fn = list(inspect.signature(i.function).parameters.values())
    head = ["logits", "target", *(["class_counts"] if i.needs_counts else [])]
    assert [p.name for p in fn[: len(head)]] == head
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in fn[: len(head)])
    rest = fn[len(head) :]
    assert all(p.kind is p.KEYWORD_ONLY for p in rest), "hyper-parameters are keyword-only"
    missing = [p.name for p in rest if p.default is p.empty]
    assert not missing, f"every hyper-parameter has a default (the paper's): {missing}"
    conv = _conventions(rest)
    assert conv[:3] == ["weight", "ignore_index", "reduction"], conv
    assert [p.name for p in rest[-len(conv) :]] == conv, "the shared arguments come last"
    assert conv == [c for c in _registry.CONVENTIONS if c in conv], "in the registry's order"
    shared = {"weight": None, "ignore_index": -100, "reduction": "mean"}
    assert {p.name: p.default for p in rest if p.name in shared} == shared

    mod = list(inspect.signature(i.cls).parameters.values())
    mod_head = ["class_counts"] if i.needs_counts else []
    assert [p.name for p in mod[: len(mod_head)]] == mod_head
    assert all(p.kind is p.KEYWORD_ONLY for p in mod[len(mod_head) :])
    fn_kw = {p.name: p.default for p in rest}
    mod_kw = {p.name: p.default for p in mod[len(mod_head) :]}
    assert list(mod_kw) == list(fn_kw) and mod_kw == fn_kw, "module keywords == function's"
    assert dict(i.defaults) == {k: v for k, v in fn_kw.items() if k not in _registry.CONVENTIONS}
    assert i.keywords == tuple(fn_kw)


# ------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_reference(name, reduction):
    if reduction not in reductions(name):
        with pytest.raises(ValueError, match="reduction"):
            build(name, reduction=reduction)(*inputs(name, n=10))
        return
    z, target = inputs(name, n=10)
    for setting in reference(name).settings:
        for weight in (None, WEIGHT):
            crit = build(
                name,
                **tensor_setting(setting),
                weight=None if weight is None else torch.tensor(weight),
                reduction=reduction,
            ).double()
            state = ref.STATE[name](crit) if name in ref.STATE else {}  # a random loss's seed
            want = expected_value(name, z, target, {**setting, **state}, weight, reduction)
            torch.testing.assert_close(
                crit(z, target), want, msg=lambda m, s=setting, w=weight: f"{s} w={w}: {m}"
            )


@pytest.mark.parametrize("name", LOSSES)
def test_module_equals_function(name):
    z, target = inputs(name, n=9, dtype=torch.float32, seed=1)
    w = torch.tensor(WEIGHT)
    for setting in reference(name).settings:
        kw = tensor_setting(setting)
        for reduction in reductions(name):
            module = build(name, **kw, weight=w, reduction=reduction)
            state = ref.STATE[name](module) if name in ref.STATE else {}  # before it moves
            mod = module(z, target)
            fn = call_function(name, z, target, **kw, **state, weight=w, reduction=reduction)
            torch.testing.assert_close(mod, fn, rtol=0, atol=0)


#: Inputs of a call, not settings: the module takes them in ``forward`` and refuses them when
#: built (IB's per-sample feature norms).
PER_CALL = {"feature_norm"}


def _outcome(call, *args, **kw):
    """What ``call(*args, **kw)`` returns, or the type of the error it raises."""
    try:
        return call(*args, **kw)
    except (TypeError, ValueError) as e:
        return type(e)


@pytest.mark.parametrize("name", LOSSES)
def test_a_number_the_function_takes_the_module_takes(name):
    """An argument that takes one value per class and also a number for all classes (focal's
    α, sigmoid focal's pos_weight, AUC-M's imratio) is taken as a number by the module and by
    create_loss exactly as by the function (the focal module once refused α = 0.25), and a 0-d
    tensor is that number."""
    z, target = inputs(name, n=9, dtype=torch.float32, seed=1)
    per_class = []
    for key in info(name).defaults:
        if key in PER_CALL:
            continue
        if isinstance(_outcome(call_function, name, z, target, **{key: [0.5] * C}), type):
            continue  # not an argument of one value per class
        per_class.append(key)
        for value in (0.5, torch.tensor(0.5)):

            def module_value(key=key, value=value):
                module = build(name, **{key: value})
                state = ref.STATE[name](module) if name in ref.STATE else {}  # before it moves
                return module(z, target), state

            got = _outcome(module_value)
            want = _outcome(call_function, name, z, target, **{key: 0.5})
            if isinstance(want, type) or isinstance(got, type):
                assert got == want, f"{key}={value!r}: module {got}, function {want}"
                continue
            mod, state = got
            fn = call_function(name, z, target, **{key: value, **state})
            torch.testing.assert_close(mod, fn, rtol=0, atol=0, msg=f"{key}={value!r}")
            torch.testing.assert_close(fn, want, rtol=0, atol=0, msg=f"{key}={value!r}")
    if name in ("focal", "sigmoid-focal"):
        assert "alpha" in per_class  # the probe sees the arguments it is about


@pytest.mark.parametrize("name", LOSSES)
def test_module_keeps_the_weight_it_is_given(name):
    """A float64 weight stays float64 in the module (it was rounded to float32), so a module
    without constants derived from class counts computes what its function does with it, to the
    last bit on float64 inputs. Count-derived constants (margins, priors) are float32 buffers,
    as torch's own buffers (and MPS has no float64): such a module is exact in float32 only."""
    z, target = inputs(name, n=9, seed=3)
    w = torch.tensor(WEIGHT, dtype=torch.float64) + 1 / 3
    module = build(name, weight=w)
    assert module.weight.dtype == torch.float64 and torch.equal(module.weight, w)
    assert build(name, weight=WEIGHT).weight.dtype == torch.float32  # a list: torch's default
    if not any(b.is_floating_point() and b.dtype == torch.float32 for b in module.buffers()):
        state = ref.STATE[name](module) if name in ref.STATE else {}  # before it moves
        fn = call_function(name, z, target, **state, weight=w)
        torch.testing.assert_close(module(z, target), fn, rtol=0, atol=0)


INDEX_LOSSES = [n for n in LOSSES if info(n).target == "index"]


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_class_indices_of_any_integer_dtype(name):
    z, target = inputs(name, n=9, seed=4)
    want = build(name)(z, target)
    for dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        torch.testing.assert_close(build(name)(z, target.to(dtype)), want, rtol=0, atol=0)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_one_unbatched_sample_is_a_batch_of_one(name):
    """As torch's cross_entropy: logits (C,) with a 0-d target are one sample; every reduction
    gives the batch of one's value, ``"none"`` a 0-d tensor, and the gradient has the logits'
    shape."""
    z, target = inputs(name, n=3, seed=8)
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    for reduction in reductions(name):
        x = z[1].clone().requires_grad_(True)
        one = build(name, weight=w, reduction=reduction)(x, target[1])
        batch = build(name, weight=w, reduction=reduction)(z[1:2], target[1:2])
        assert one.shape == ()
        torch.testing.assert_close(one, batch.reshape(()), rtol=1e-12, atol=0)
        one.backward()
        assert x.grad.shape == (C,) and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match=r"\(C,\) with a 0-d target"):
        build(name)(z[1], target[1:2])  # (C,) logits need a 0-d target


@pytest.mark.parametrize("name", [n for n in INDEX_LOSSES if info(n).per_sample])
def test_weights_summing_to_zero_give_attached_zero(name):
    """All the batch's labels weighted 0 is an empty batch for the weighted mean: 0, not nan."""
    z, target = inputs(name, n=9, seed=5)
    z.requires_grad_(True)
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    w[target.unique()] = 0
    out = build(name, weight=w)(z, target)
    assert out.shape == () and out.item() == 0.0
    (grad,) = torch.autograd.grad(out, z)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("name", LOSSES)
def test_batch_of_one_and_absent_classes(name):
    z, target = inputs(name, n=1, seed=2)
    for reduction in reductions(name):
        crit = build(name, reduction=reduction).double()
        state = state_of(name, crit)
        got = crit(z, target)
        torch.testing.assert_close(got, expected_value(name, z, target, state, None, reduction))
        assert got.shape == (() if reduction != "none" else none_shape(name, z, target))
    z, target = inputs(name, n=10, seed=2)
    if info(name).target == "value":
        target = target * 0.25  # values in [0, 1]: the classes nearest them are 0 and 1
    elif target.is_floating_point():
        target[:, 2:] = 0  # classes 2.. never positive
    else:
        target = target % 2  # classes 2.. absent from the batch
    w = torch.tensor(WEIGHT, dtype=torch.float64)
    crit = build(name, weight=w).double()
    state = state_of(name, crit)
    got = crit(z, target)
    torch.testing.assert_close(got, expected_value(name, z, target, state, WEIGHT, "mean"))


@pytest.mark.parametrize("name", [n for n in LOSSES if info(n).target == "multilabel"])
def test_one_logit_column_reads_batch_shaped_targets_as_binary_labels(name):
    """Logits (N, 1) with targets (N,): the 0/1 labels of a binary task, the same loss as with
    targets (N, 1). Read as class indices they could only be 0, and a batch without a positive
    would have been scored as all positive."""
    z = torch.linspace(-3, 3, 8, dtype=torch.float64).unsqueeze(1)
    kw = {"num_samples": 40} if "num_samples" in info(name).defaults else {}
    try:
        m = (
            lt.create_loss_for_counts(name, [10.0], **kw) if info(name).needs_counts else
            lt.create_loss(name)
        ).double()  # fmt: skip
    except ValueError as err:  # a loss defined over two or more classes says so when built
        assert "at least 2 classes" in str(err)
        return
    try:
        m(z, torch.zeros(8, 1, dtype=torch.float64))
    except ValueError as err:
        # a loss over the columns of a row (DEXML's softmax over the negatives) is 0 on one
        # column whatever the targets: it refuses the logits, in both target forms
        assert "C >= 2" in str(err)
        for target in (torch.zeros(8), torch.tensor([0, 2, 1, 0, 0, 0, 1, 0])):
            with pytest.raises(ValueError, match="C >= 2"):
                m(z, target)
        return
    for labels in ([0] * 8, [0, 1, 1, 0, 0, 0, 1, 0]):
        y = torch.tensor(labels)
        try:
            want = m(z, y.double().unsqueeze(1))
        except ValueError:  # a loss that needs two labels refuses both forms
            with pytest.raises(ValueError):
                m(z, y)
            continue
        for target in (y, y.bool(), y.double()):
            torch.testing.assert_close(m(z, target), want, equal_nan=True)
    with pytest.raises(ValueError, match="0/1 labels"):
        m(z, torch.tensor([0, 2, 1, 0, 0, 0, 1, 0]))


@pytest.mark.parametrize("name", LOSSES)
def test_empty_batch_gives_attached_zero(name):
    z, target = inputs(name, n=0, dtype=torch.float32)
    z.requires_grad_(True)
    for reduction in ("mean", "sum"):
        out = build(name, reduction=reduction)(z, target)
        assert out.shape == () and out.item() == 0.0
        (grad,) = torch.autograd.grad(out, z)  # attached to the graph
        assert grad.shape == z.shape
    if lt.get_loss_info(name).per_sample:
        none = build(name, reduction="none")(z, target)
        assert none.shape == none_shape(name, z, target) and none.numel() == 0


# ------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name", [n for n in LOSSES if not lt.get_loss_info(n).stop_gradient])
def test_gradcheck_float64(name):
    z, target = inputs(name, n=4, seed=3)
    z.requires_grad_(True)
    for setting in reference(name).settings:
        kw = tensor_setting(setting)
        for reduction, weight in (("mean", torch.tensor(WEIGHT)), (unreduced(name), None)):
            crit = build(name, **kw, weight=weight, reduction=reduction).double()
            assert torch.autograd.gradcheck(lambda x, c=crit: c(x, target), (z,), fast_mode=True)


@pytest.mark.parametrize("name", [n for n in LOSSES if lt.get_loss_info(n).stop_gradient])
def test_stop_gradient_matches_the_papers_code(name):
    """gradcheck cannot check a loss that holds part of itself constant (the numeric derivative
    sees it move): its reference gives the gradient the paper's code computes instead."""
    grad_ref = reference(name).gradient
    assert grad_ref is not None, (
        f"{name!r} declares stop_gradient ({info(name).stop_gradient}): give its Reference a "
        "`gradient` in tests/_reference.py"
    )
    z, target = inputs(name, n=6, seed=3)
    for setting in reference(name).settings:
        x = z.clone().requires_grad_(True)
        crit = build(name, **tensor_setting(setting)).double()
        state = state_of(name, crit)
        crit(x, target).backward()
        kw = {**info(name).defaults, **setting, **state}
        want = grad_ref(z.tolist(), target.tolist(), COUNTS, kw)
        torch.testing.assert_close(x.grad, torch.tensor(want, dtype=torch.float64))


@pytest.mark.parametrize("name", [n for n in LOSSES if n not in NO_HALF])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(name, dtype):
    z, target = inputs(name, n=16, dtype=torch.float32, seed=4)
    zh = z.to(dtype).requires_grad_(True)
    th = target.to(dtype) if target.is_floating_point() else target
    crit = build(name)
    out = crit(zh, th)
    assert out.dtype == torch.float32, "half inputs are computed and returned in float32"
    # the same as float32 on the same (rounded) numbers
    torch.testing.assert_close(out, crit(zh.detach().float(), target), rtol=1e-5, atol=1e-5)
    out.backward()
    assert zh.grad.dtype == dtype and torch.isfinite(zh.grad.float()).all()


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_extreme_logits_stay_finite(name, dtype):
    g = torch.Generator().manual_seed(5)
    z = (torch.randint(0, 2, (12, C), generator=g) * 2 - 1).to(dtype) * 1e4
    z[0] = 1e4  # a row of ties at the top
    _, target = inputs(name, n=12, seed=5)
    target = target.to(dtype) if target.is_floating_point() else target
    for reduction in ("mean", unreduced(name)):
        x = z.clone().requires_grad_(True)
        out = build(name, reduction=reduction)(x, target)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(x.grad.float()).all()


# ------------------------------------------------------------------------- ignore_index, dims
def _index_target(name: str, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if info(name).target == "value":  # real values, ignore_index compared as a value
        return _values(g, (n,))
    return torch.randint(0, C, (n,), generator=g)


@pytest.mark.parametrize("name", LOSSES)
def test_ignoring_an_entry_is_dropping_it(name):
    """Entries labelled ``ignore_index`` count for nothing: not in the sum, not in the mean's
    count, no gradient. (Multi-label losses take class-index rows too.)"""
    z, _ = inputs(name, n=12, seed=6)
    y = _index_target(name, 12, 6)
    keep = torch.tensor([True, False, True] * 4)
    for ignore_index in (-100, 3):
        yi = y.masked_fill(~keep, ignore_index)
        if ignore_index == 3:
            yi[keep & (y == 3)] = 0  # only the masked rows carry the ignored label
        yk = yi[keep]
        w = torch.tensor(WEIGHT, dtype=torch.float64)
        for reduction in reductions(name):
            crit = build(name, weight=w, ignore_index=ignore_index, reduction=reduction).double()
            x = z.clone().requires_grad_(True)
            out = crit(x, yi)
            if reduction == "none":
                assert (out[~keep] == 0).all()
                torch.testing.assert_close(out[keep], crit(z[keep], yk))
            else:
                torch.testing.assert_close(out, crit(z[keep], yk))
            out.sum().backward()
            assert (x.grad[~keep] == 0).all()
        everything = build(name, ignore_index=ignore_index).double()
        for logits in (z, -z.abs() - 1):  # a sum of negative logits times 0 is -0.0
            value = everything(logits, torch.full_like(y, ignore_index)).item()
            assert value == 0.0 and math.copysign(1.0, value) == 1.0  # +0, not -0


@pytest.mark.parametrize("name", [n for n in LOSSES if n not in FLAT_ONLY])
def test_spatial_inputs_match_flattened(name):
    z, target = inputs(name, n=2, seed=7, spatial=(3, 2))
    flat_z = z.movedim(1, -1).reshape(-1, C)
    per_class = target.is_floating_point() and info(name).target != "value"  # (N, C, d1, ...)
    if per_class:
        flat_t = target.movedim(1, -1).reshape(-1, C)
    else:
        flat_t = target.reshape(-1)
    if lt.get_loss_info(name).per_sample:
        none = build(name, reduction="none").double()(z, target)
        assert none.shape == none_shape(name, z, target)
        flat_none = build(name, reduction="none").double()(flat_z, flat_t)
        if per_class and name not in ROW_LEVEL:
            flat_none = flat_none.reshape(2, 3, 2, C).movedim(-1, 1)
        torch.testing.assert_close(none, flat_none.reshape(none.shape))
    mean = build(name).double()
    torch.testing.assert_close(mean(z, target), mean(flat_z, flat_t))


# ------------------------------------------------------------------------------- bad input
def _misspelled(word: str) -> str:
    return word[:-1] if len(word) > 3 else word + "x"


@pytest.mark.parametrize("name", LOSSES)
def test_bad_input_is_a_clear_value_error(name):
    i = info(name)
    z, target = inputs(name, n=6, dtype=torch.float32, seed=8)
    crit = build(name)
    bad_shape = torch.rand(6, C - 1) if i.target != "index" else target[:5]
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, bad_shape)
    # a "value" loss: C and -1 lie outside the values 0..C-1 the classes stand for
    outside = r"Expected `target` to be values in" if i.target == "value" else None
    with pytest.raises(ValueError, match=outside or rf"class indices in \[0, {C}\)"):
        crit(z, torch.tensor([0, 1, 2, 3, 4, C]))
    with pytest.raises(ValueError, match=outside or rf"class indices in \[0, {C}\)"):
        crit(z, torch.tensor([0, 1, 2, 3, 4, -1]))
    with pytest.raises(ValueError, match="Expected `logits`"):
        crit(torch.zeros(6, C, dtype=torch.long), target)
    # a bool vector is no class index (torch's cross_entropy refuses it too)
    with pytest.raises(ValueError, match="Expected `target`"):
        crit(z, torch.tensor([True, False] * 3))
    if target.is_floating_point():  # NaN targets are refused, never a NaN loss
        with pytest.raises(ValueError, match="Expected `target`"):
            crit(z, torch.full_like(target, float("nan")))
    with pytest.raises(ValueError, match="`reduction`"):
        build(name, reduction="average")
    with pytest.raises(ValueError, match="`weight`"):
        build(name, weight=torch.ones(C + 1))(z, target)
    # a weight that is no tensor: the function refuses it clearly, as torch.nn.functional does
    # (the sigmoid losses take a list, as their alpha), or computes what the tensor gives
    state = ref.STATE[name](build(name)) if name in ref.STATE else {}
    want = call_function(name, z, target, **state, weight=torch.tensor(WEIGHT))
    for not_a_tensor in (WEIGHT, np.asarray(WEIGHT)):
        try:
            got = call_function(name, z, target, **state, weight=not_a_tensor)
        except ValueError as err:
            assert "`weight` to be a 1-D tensor" in str(err)
        else:
            torch.testing.assert_close(got, want)
    # a misspelled keyword: the message names what the loss takes, and the close match
    word = next(iter(i.defaults), "reduction")
    with pytest.raises(ValueError, match=rf"loss '{name}' \(.*{word}.*\).*Did you mean '{word}'"):
        lt.create_loss(
            name, class_counts=COUNTS if i.needs_counts else None, **{_misspelled(word): 1.0}
        )


@pytest.mark.parametrize("name", [n for n in LOSSES if lt.get_loss_info(n).needs_counts])
def test_bad_class_counts(name):
    z, target = inputs(name, n=6, dtype=torch.float32, seed=9)
    for bad, match in (
        ([5, float("nan"), 3, 3, 3], "finite"),
        ([5, float("inf"), 3, 3, 3], "finite"),
        ([5, -1, 3, 3, 3], "non-negative"),
    ):
        with pytest.raises(ValueError, match=rf"`class_counts`.*{match}"):
            lt.create_loss(name, class_counts=bad)
        with pytest.raises(ValueError, match=rf"`class_counts`.*{match}"):
            info(name).function(z, target, bad)
    with pytest.raises(ValueError, match=rf"`class_counts` to be of length {C}"):
        lt.create_loss(name, class_counts=COUNTS[:3])(z, target)
    with pytest.raises(ValueError, match=rf"`class_counts` to be of length {C}"):
        info(name).function(z, target, COUNTS[:3])
    with pytest.raises(ValueError, match="`class_counts`"):
        lt.create_loss(name)  # missing


@pytest.mark.parametrize("name", [n for n in LOSSES if not lt.get_loss_info(n).needs_counts])
def test_counts_refused_where_unused(name, monkeypatch):
    """A loss that does not use the class counts refuses them (they used to be silently
    ignored), and ``create_loss_for_counts`` does not pass them."""
    monkeypatch.setattr(_registry, "UNUSED_COUNTS", "error")
    with pytest.raises(ValueError, match=rf"`class_counts` to be None for loss '{name}'"):
        lt.create_loss(name, class_counts=COUNTS)
    lt.create_loss(name, class_counts=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lt.create_loss_for_counts(name, COUNTS)
    monkeypatch.setattr(_registry, "UNUSED_COUNTS", "warn")  # the transition: said, not fatal
    with pytest.warns(FutureWarning, match=rf"`class_counts` to be None for loss '{name}'"):
        lt.create_loss(name, class_counts=COUNTS)


# ------------------------------------------------------------------ module state, engine use
@pytest.mark.parametrize("name", LOSSES)
def test_state_dict_round_trip(name):
    """State lives in buffers: a loss rebuilt from defaults and loaded from ``state_dict()`` after
    some training steps (stateful losses move their statistics) computes what the original does."""
    w = torch.tensor(WEIGHT)
    crit = build(name, weight=w)
    assert not [k for k, v in vars(crit).items() if isinstance(v, torch.Tensor)], (
        "a tensor held as a plain attribute does not follow .to() or state_dict()"
    )
    for seed in range(3):  # training steps
        z, target = inputs(name, n=8, dtype=torch.float32, seed=10 + seed)
        crit(z.requires_grad_(True), target).backward()
    sd = crit.state_dict()
    assert "weight" in sd and (not info(name).needs_counts or "class_counts" in sd)
    fresh = build(name)
    fresh.load_state_dict(sd)
    assert sd.keys() == fresh.state_dict().keys()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0, msg=k)
    z, target = inputs(name, n=8, dtype=torch.float32, seed=20)
    torch.testing.assert_close(fresh(z, target), crit(z, target), rtol=0, atol=0)


@pytest.mark.parametrize("name", [n for n in LOSSES if lt.get_loss_info(n).single_label])
def test_the_training_engine_interface(name):
    """What the engine does to a built loss: ``reduction = "none"`` (per-sample values), then
    ``set_weight`` every epoch (DRW), on whatever device the loss was moved to."""
    z, target = inputs(name, n=7, dtype=torch.float32, seed=11)
    crit = build(name)
    crit.reduction = "none"
    assert crit(z, target).shape == (7,)
    w = torch.tensor(WEIGHT)
    crit.set_weight(w)
    torch.testing.assert_close(crit(z, target), build(name, weight=w, reduction="none")(z, target))
    crit.set_weight(None)
    torch.testing.assert_close(crit(z, target), build(name, reduction="none")(z, target))


# ------------------------------------------------------------------------------ torch.compile
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=[]
            if lt.get_loss_info(n).compiles
            else pytest.mark.skip(reason=f"registry: {lt.get_loss_info(n).compile_note}"),
        )
        for n in LOSSES
    ],
)
def test_compile_matches_eager(name):
    torch._dynamo.reset()
    z, target = inputs(name, n=6, dtype=torch.float32, seed=12)
    crit = build(name, weight=torch.tensor(WEIGHT))
    same = copy.deepcopy(crit)  # the same state for both (stateful losses move theirs)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    eager = crit(z1, target)
    eager.backward()
    compiled = torch.compile(same)(z2, target)
    compiled.backward()
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(z2.grad, z1.grad)


# ------------------------------------------------------------------------------ equivalences
@dataclass(frozen=True)
class Equivalence:
    """Loss ``loss`` with ``kwargs`` equals ``other``: a registered loss with ``other_kwargs``,
    or a function ``(logits, index_target, reduction) -> value`` (torch's own, say).

    Attributes:
        why: where the equivalence comes from (the paper's remark, the formula).
        counts: the class counts both are built with (default :data:`COUNTS`).
    """

    loss: str
    kwargs: dict[str, Any]
    other: str | Callable[..., torch.Tensor]
    other_kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    counts: tuple[float, ...] = tuple(COUNTS)

    def __str__(self) -> str:
        other = self.other if isinstance(self.other, str) else self.other.__name__
        return f"{self.loss}{self.kwargs} == {other}{self.other_kwargs}"


def _scaled_ce(scale: float) -> Callable[..., torch.Tensor]:
    def scaled_ce(z, y, reduction):
        return F.cross_entropy(scale * z, y, reduction=reduction)

    return scaled_ce


def bce_on_one_hot(z, y, reduction):
    return F.binary_cross_entropy_with_logits(
        z, F.one_hot(y, z.shape[1]).to(z), reduction=reduction
    )


def torch_ce_smoothed(z, y, reduction):
    return F.cross_entropy(z, y, label_smoothing=0.1, reduction=reduction)


UNIFORM = (7.0,) * C
EQUAL_LDAM = (50.0,) * C  # equal counts: every LDAM margin is max_margin

EQUIVALENCES: list[Equivalence] = [
    Equivalence("ce", {"label_smoothing": 0.1}, torch_ce_smoothed, why="torch semantics"),
    Equivalence("focal", {"gamma": 0.0}, "ce", why="γ = 0 is cross-entropy (Lin et al.)"),
    Equivalence(
        "sigmoid-focal",
        {"gamma": 0.0, "alpha": None},
        bce_on_one_hot,
        why="γ = 0 without α is binary cross-entropy (Lin et al.)",
    ),
    Equivalence(
        "ldam", {"max_margin": 0.0, "scale": 30.0}, _scaled_ce(30.0), why="no margin: CE(s z)"
    ),
    Equivalence(
        "mm",
        {"delta_minus": 60.0, "beta": 1.0, "scale": 30.0},
        _scaled_ce(30.0),
        why="δ → ∞ takes Δ = exp(−|g| − δ) to 0: CE(s z)",
    ),
    Equivalence(
        "mm-ldam",
        {"delta_minus": 1.0, "beta": 1.4, "scale": 20.0, "max_margin": 0.5},
        "mm",
        {"delta_minus": 0.5, "beta": 1.4, "scale": 20.0},
        why="equal counts shift every δ⁻ by the same LDAM margin (max_margin)",
        counts=EQUAL_LDAM,
    ),
    Equivalence(
        "vs",
        {"gamma": 0.0, "tau": 1.3},
        "logit-adjusted",
        {"tau": 1.3},
        why="γ = 0 is logit adjustment (Kini et al.)",
    ),
    Equivalence(
        "balanced-softmax",
        {},
        "logit-adjusted",
        {"tau": 1.0},
        why="log n and log π differ by a constant (Menon et al., Ren et al.)",
    ),
    Equivalence("balanced-softmax", {}, "ce", why="uniform prior", counts=UNIFORM),
    Equivalence("logit-adjusted", {"tau": 2.0}, "ce", why="uniform prior", counts=UNIFORM),
    Equivalence(
        "vs", {"gamma": 0.7}, "ce", why="uniform counts: Δ = 1, ι constant", counts=UNIFORM
    ),
]


EQUIVALENCES += [Equivalence(**d) for d in ref.FAMILY_EQUIVALENCES]


def _equivalence_side(name: str, kwargs: dict, counts, reduction: str) -> torch.nn.Module:
    return lt.create_loss_for_counts(name, list(counts), **kwargs, reduction=reduction).double()


@pytest.mark.parametrize("eq", EQUIVALENCES, ids=str)
def test_equivalence(eq: Equivalence):
    g = torch.Generator().manual_seed(13)
    z = (torch.rand(16, C, generator=g, dtype=torch.float64) * 2 - 1) * 2
    y = torch.randint(0, C, (16,), generator=g)
    batch_level = not all(
        lt.get_loss_info(n).per_sample for n in (eq.loss, eq.other) if isinstance(n, str)
    )
    for reduction in ("mean", "sum" if batch_level else "none"):
        got = _equivalence_side(eq.loss, eq.kwargs, eq.counts, reduction)(z, y)
        if isinstance(eq.other, str):
            want = _equivalence_side(eq.other, eq.other_kwargs, eq.counts, reduction)(z, y)
        else:
            want = eq.other(z, y, reduction)
        torch.testing.assert_close(got, want, msg=lambda m, r=reduction: f"{eq} ({r}): {m}")


def test_equivalences_name_registered_losses():
    for eq in EQUIVALENCES:
        assert eq.loss in LOSSES and (not isinstance(eq.other, str) or eq.other in LOSSES), eq
        assert eq.why, f"{eq}: say where the equivalence comes from"
        assert set(eq.kwargs) <= set(info(eq.loss).keywords), eq


def test_uniform_counts_are_meaningful():
    # the equivalences above with uniform counts must not hold for the long-tailed counts
    z, y = torch.randn(16, C, dtype=torch.float64), torch.randint(0, C, (16,))
    la = lt.create_loss("logit-adjusted", class_counts=COUNTS).double()(z, y)
    assert not math.isclose(la.item(), F.cross_entropy(z, y).item(), rel_tol=1e-6)


@pytest.mark.parametrize("name", [n for n in LOSSES if not lt.get_loss_info(n).per_sample])
def test_batch_level_losses_refuse_per_sample_values(name):
    """A batch-level loss has no value per sample: ``reduction="none"`` is refused, and the
    training engine (which weights per-sample values) refuses it as a method."""
    z, target = inputs(name, n=6)
    with pytest.raises(ValueError, match="reduction"):
        build(name, reduction="none")(z, target)
    crit = build(name)
    crit.reduction = "none"
    with pytest.raises(ValueError, match="reduction"):
        crit(z, target)
    with pytest.raises(ValueError, match="per-sample"):
        lt.engine.get_method(f"loss:{name}")


@pytest.mark.parametrize("name", [n for n in LOSSES if not lt.get_loss_info(n).stop_gradient])
def test_second_derivative_is_right_or_refused(name):
    """A closed-form backward computed from tensors saved without a graph would give a second
    derivative that silently misses terms: it must either be right (gradgradcheck) or raise."""
    z, target = inputs(name, n=3, seed=21)
    z.requires_grad_(True)
    crit = build(name).double()
    try:
        ok = torch.autograd.gradgradcheck(lambda x: crit(x, target), (z,), eps=1e-6, atol=1e-4)
    except RuntimeError as e:
        if "second derivatives" in str(e):
            return  # refused, clearly
        raise
    assert ok


def test_functional_shows_only_its_functions():
    """``dir(longtail.functional)`` lists the loss functions and helpers, as
    ``torch.nn.functional`` does, not the module's own imports."""
    public = {n for n in dir(lt.functional) if not n.startswith("_")}
    assert public == set(lt.functional.__all__)
