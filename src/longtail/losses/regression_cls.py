"""Regression as classification: the C classes stand for values, a real target is a distribution
over them, and the prediction is the classes' expected value.

Class ``k`` stands for the value ``values[k]`` (by default ``k``: ordinal labels such as ages, or
the digit tokens 0-9 of a language model). The losses of real-valued targets (registry kind
``"value"``: HL-Gauss, two-hot, R2CCP, Z-Error) take targets ``(N,)`` or ``(N, d1, ...)`` inside
the support those values span; ``weight`` is per class, and a target's class is the one whose
value is nearest (ties go to the larger value), which makes ``weight`` the per-bin re-weighting of
imbalanced regression. The Number Token Losses take class indices, as the paper's tokens.

:func:`value_from_logits` is the inverse map, from logits to a value; :func:`two_hot_target` and
:func:`hl_gauss_target` are the target distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import check_class_vector, check_positive, check_reduction, expected
from ._base import WeightedLoss, first_order, per_class_tensor
from ._reduce import FlatInputs, compute_dtype_for, flatten_inputs, reduce_loss
from ._registry import export_function, register_loss

_SQRT2 = math.sqrt(2.0)


# --------------------------------------------------------------------------- the classes' values
def _class_values(
    values: Any, num_classes: int, like: torch.Tensor, *, increasing: bool = True
) -> torch.Tensor:
    """The values the classes stand for, ``(C,)`` in ``like``'s dtype and device, checked."""
    if values is None:
        return torch.arange(num_classes, dtype=like.dtype, device=like.device)
    v = torch.as_tensor(values)
    if v.dim() != 1 or v.numel() != num_classes:
        raise expected(
            "values",
            f"a 1-D tensor of {num_classes} values, one per class (dim 1 of logits)",
            f"shape {tuple(v.shape)}",
        )
    if v.is_complex() or v.dtype == torch.bool:
        raise expected("values", "real numbers", v.dtype)
    v = v.to(device=like.device, dtype=like.dtype)
    if not torch.isfinite(v).all():
        raise expected("values", "finite", v.tolist())
    if increasing and num_classes > 1 and not bool((v[1:] > v[:-1]).all()):
        raise expected(
            "values", "strictly increasing (class k stands for the k-th value)", v.tolist()
        )
    return v


def _bin_edges(v: torch.Tensor) -> torch.Tensor:
    """``C + 1`` bin edges around the values: the midpoints between neighbours, and half the end
    gaps beyond the ends (for equally spaced values, ``linspace(v₀ − h/2, v_last + h/2, C + 1)``,
    the support of the Stop Regressing paper)."""
    mid = (v[:-1] + v[1:]) / 2
    first = v[:1] - (v[1:2] - v[:1]) / 2
    last = v[-1:] + (v[-1:] - v[-2:-1]) / 2
    return torch.cat([first, mid, last])


def _nearest_class(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The class whose value is nearest ``y`` (ties to the larger value): the bin holding ``y``."""
    mid = ((v[:-1] + v[1:]) / 2).contiguous()
    return torch.searchsorted(mid, y.contiguous(), right=True)


@dataclass
class _ValueInputs:
    flat: FlatInputs  # logits (M, C); target = each entry's class (for weight); valid
    y: torch.Tensor  # (M,) targets in the compute dtype (ignored entries set to values[0])
    v: torch.Tensor  # (C,) the classes' values, compute dtype


def _flatten_values(
    logits: torch.Tensor,
    target: torch.Tensor,
    values: Any,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    bins: bool = False,
) -> _ValueInputs:
    """Check ``logits`` (N, C, d1, ...) and real ``target`` (N, d1, ...); flatten them.

    ``target`` may be integer (a whole-number value) or floating; entries equal to
    ``ignore_index`` are ignored; the others must lie in the support: ``[values[0], values[-1]]``,
    or with ``bins`` the bins around the values (half a gap more on each side).
    """
    check_reduction(reduction)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise expected("logits", "a floating-point tensor", got)
    if not isinstance(target, torch.Tensor) or target.is_complex() or target.dtype == torch.bool:
        got = target.dtype if isinstance(target, torch.Tensor) else type(target).__name__
        raise expected("target", "a tensor of real values", got)
    if logits.dim() < 2:
        raise expected(
            "logits", "of shape (N, C) or (N, C, d1, ...)", f"shape {tuple(logits.shape)}"
        )
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise expected("logits", "of at least 2 classes (values to regress between)", num_classes)
    batch_shape = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != batch_shape:
        raise expected(
            "target",
            f"of shape {batch_shape} (one value per entry) to match logits of shape "
            f"{tuple(logits.shape)}",
            f"shape {tuple(target.shape)}",
        )
    check_class_vector("weight", weight, num_classes)
    ctype = compute_dtype_for(logits.dtype)
    if logits.dim() > 2:
        logits = logits.movedim(1, -1).reshape(-1, num_classes)
    v = _class_values(values, num_classes, torch.empty((), dtype=ctype, device=logits.device))
    y = target.reshape(-1).to(device=logits.device, dtype=ctype)

    valid = None
    if y.numel():
        ignored = y == ignore_index
        if ignored.any():
            valid = ~ignored
            y = y.masked_fill(ignored, v[0].item())
        if bins:
            edges = _bin_edges(v)
            lo, hi = edges[0], edges[-1]
            where = "the bins around the classes' values"
        else:
            lo, hi = v[0], v[-1]
            where = "the range of the classes' values"
        outside = ~((y >= lo) & (y <= hi))  # NaN is outside
        if outside.any():
            raise expected(
                "target",
                f"values in [{lo.item():g}, {hi.item():g}] ({where}; or ignore_index="
                f"{ignore_index})",
                f"values {y[outside][:5].tolist()}",
            )
    cls = _nearest_class(y, v) if weight is not None else y.new_zeros(y.shape, dtype=torch.long)
    return _ValueInputs(FlatInputs(logits, cls, valid, batch_shape, ctype), y, v)


@export_function
def value_from_logits(logits: torch.Tensor, values: Any = None) -> torch.Tensor:
    """The regression value the logits predict: ``Σ_k softmax(z)_k · values[k]``.

    The inverse map of the regression-as-classification losses (two-hot, HL-Gauss, R2CCP, the
    Number Token Losses): the expected value of the classes' values under the predicted
    distribution (Farebrother et al., ICML 2024, §3; Zausinger et al., ICML 2025, ŷ).

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        values: the ``(C,)`` values the classes stand for; default ``0, 1, ..., C − 1``.

    Returns:
        ``(N,)`` or ``(N, d1, ...)`` values, in float32 for half logits.

    Example:
        >>> import torch
        >>> value_from_logits(torch.log(torch.tensor([[0.25, 0.75, 0.0]])), [0.0, 2.0, 4.0])
        tensor([1.5000])
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 2:
        raise expected("logits", "a floating-point tensor (N, C) or (N, C, d1, ...)", logits)
    ctype = compute_dtype_for(logits.dtype)
    z = logits.to(ctype)
    v = _class_values(values, z.shape[1], z, increasing=False)
    p = torch.softmax(z, dim=1)
    return (p * v.reshape(1, -1, *([1] * (z.dim() - 2)))).sum(1)


@export_function
def two_hot_target(target: torch.Tensor, values: Any) -> torch.Tensor:
    """The two-hot distribution of real targets over the classes' values (Farebrother et al.).

    A target ``y`` with ``values[k] ≤ y ≤ values[k+1]`` puts mass ``(values[k+1] − y) / Δ`` on
    class ``k`` and ``(y − values[k]) / Δ`` on class ``k + 1`` (``Δ = values[k+1] − values[k]``),
    so its expected value is exactly ``y``: ``value_from_logits(log(two_hot_target(y)))`` gives
    ``y`` back.

    Args:
        target: real values of any shape, inside ``[values[0], values[-1]]``.
        values: the ``(C,)`` strictly increasing values the classes stand for (``C ≥ 2``).

    Returns:
        ``(*target.shape, C)`` probabilities (float32 at least).
    """
    y, v = _target_and_values(target, values)
    if not bool(((y >= v[0]) & (y <= v[-1])).all()):
        raise expected("target", f"values in [{v[0].item():g}, {v[-1].item():g}]", "values outside")
    flat = y.reshape(-1)
    k, a = _two_hot_split(flat, v)
    out = flat.new_zeros(flat.shape[0], v.numel())
    out.scatter_(1, k.unsqueeze(1), (1 - a).unsqueeze(1))
    out.scatter_add_(1, (k + 1).unsqueeze(1), a.unsqueeze(1))
    return out.reshape(*y.shape, v.numel())


def _target_and_values(target: Any, values: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and the classes' values of a target transform, in one floating dtype (float32 at
    least), the values checked."""
    v = torch.as_tensor(values)
    if v.dim() != 1 or v.numel() < 2:
        raise expected("values", "a 1-D tensor of at least 2 values", f"shape {tuple(v.shape)}")
    y = torch.as_tensor(target)
    ctype = compute_dtype_for(y.dtype if y.is_floating_point() else torch.float32)
    if v.is_floating_point():
        ctype = torch.promote_types(ctype, v.dtype)
    y = y.to(device=v.device, dtype=ctype)
    return y, _class_values(v, v.numel(), y)


def _two_hot_split(y: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The lower class ``k`` (``values[k] ≤ y ≤ values[k+1]``) and the mass ``a`` on ``k + 1``."""
    k = (torch.searchsorted(v.contiguous(), y.contiguous(), right=True) - 1).clamp_(
        0, v.numel() - 2
    )
    lo, hi = v[k], v[k + 1]
    return k, (y - lo) / (hi - lo)


def _hl_gauss_probs(y: torch.Tensor, v: torch.Tensor, sigma_ratio: float) -> torch.Tensor:
    """``(M, C)`` HL-Gauss probabilities of ``y`` (M,) over the bins around ``v``, as the paper's
    code computes them: differences of ``erf`` at the bin edges, renormalised over the support."""
    edges = _bin_edges(v)
    sigma = sigma_ratio * (v[-1] - v[0]) / (v.numel() - 1)
    cdf = torch.special.erf((edges.unsqueeze(0) - y.unsqueeze(1)) / (sigma * _SQRT2))
    mass = cdf[:, -1:] - cdf[:, :1]
    return (cdf[:, 1:] - cdf[:, :-1]) / mass


@export_function
def hl_gauss_target(
    target: torch.Tensor, values: Any, *, sigma_ratio: float = 0.75
) -> torch.Tensor:
    """The HL-Gauss distribution of real targets over the classes' bins (Imani & White 2018;
    Farebrother et al., ICML 2024): the mass a normal ``N(y, σ²)`` puts on each bin, renormalised
    over the support, ``σ = sigma_ratio × bin width``. See :func:`hl_gauss_loss`.

    Returns:
        ``(*target.shape, C)`` probabilities (float32 at least).
    """
    check_positive("sigma_ratio", sigma_ratio)
    y, v = _target_and_values(target, values)
    edges = _bin_edges(v)
    if not bool(((y >= edges[0]) & (y <= edges[-1])).all()):
        raise expected(
            "target", f"values in [{edges[0].item():g}, {edges[-1].item():g}]", "values outside"
        )
    return _hl_gauss_probs(y.reshape(-1), v, sigma_ratio).reshape(*y.shape, v.numel())


def _check_sorted_values(values: Any, name: str = "values") -> torch.Tensor | None:
    """A module's ``values`` as a buffer (checked against C when the logits come)."""
    t = per_class_tensor(values, name)
    if t is not None:
        if not torch.isfinite(t).all():
            raise expected(name, "finite", t.tolist())
    return t


class _ValuesLoss(WeightedLoss):
    """A loss whose classes stand for ``values`` (a buffer, so ``.to()`` and ``state_dict()``
    carry it); ``predict`` is the inverse map :func:`value_from_logits`."""

    def _init_values(self, values: Any) -> None:
        self.register_buffer("values", _check_sorted_values(values))

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """The regression value the logits predict (:func:`value_from_logits`)."""
        return value_from_logits(logits, self.values)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint of a loss built with values= loaded into one built without: make room
        v = state_dict.get(prefix + "values")
        if v is not None and (self.values is None or self.values.shape != v.shape):
            self.values = torch.empty(v.shape, dtype=v.dtype, device=v.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ---------------------------------------------------------------------- fused forward/backward
# Each loss below is one autograd Function: one log_softmax (or softmax) pass forward, and the
# closed-form gradient from one softmax pass backward (composed from tensor ops, autograd would
# make several (M, C) passes more each way). The gradients are checked by gradcheck in the tests.
class _SparseSoftCE(torch.autograd.Function):
    """``ℓ_i = −Σ_j w_ij log softmax(z_i)[idx_ij]`` for a few target classes per row (two-hot,
    the nonzero window of HL-Gauss); backward ``(Σ_j w_ij) softmax(z_i) − Σ_j w_ij e_{idx_ij}``."""

    @staticmethod
    def forward(ctx, logits, idx, w):  # type: ignore[override]
        logp = torch.log_softmax(logits.to(w.dtype), dim=1)
        loss = (logp.gather(1, idx) * w).sum(1).neg_()
        ctx.save_for_backward(logp, idx, w)
        ctx.in_dtype = logits.dtype
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        logp, idx, w = ctx.saved_tensors
        g = grad_loss.to(w.dtype).unsqueeze(1)
        grad = torch.softmax(logp, dim=1).mul_(w.sum(1, keepdim=True) * g)
        grad.scatter_add_(1, idx, w * -g)
        return grad.to(ctx.in_dtype), None, None


class _R2CCP(torch.autograd.Function):
    """``ℓ = Σ_k q_k u_k``, ``u = λ |y − b|^p + τ log q``, ``q = softmax(z)``; backward
    ``q ⊙ (u − ℓ)`` (the ``+τ`` of ``∂(q log q)`` cancels against ``Σ q = 1``), computed in the
    forward over ``u``'s buffer: the backward only scales it."""

    @staticmethod
    def forward(ctx, logits, y, v, power, loss_weight, entropy_weight):  # type: ignore[override]
        logq = torch.log_softmax(logits.to(y.dtype), dim=1)
        q = torch.softmax(logq, dim=1)
        u = (y.unsqueeze(1) - v.unsqueeze(0)).abs_()
        if power == 0.5:
            u.sqrt_()
        elif power == 2:
            u.square_()
        elif power != 1:
            u.pow_(power)
        if loss_weight != 1:
            u.mul_(loss_weight)
        if entropy_weight:
            u.add_(logq, alpha=entropy_weight)  # q log q is 0 where q is 0: logq stays finite
        del logq
        qu = u.mul_(q)
        loss = qu.sum(1)
        ctx.save_for_backward(qu.addcmul_(q, loss.unsqueeze(1), value=-1))  # q ⊙ (u − ℓ)
        ctx.in_dtype = logits.dtype
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        (dz,) = ctx.saved_tensors
        grad = dz * grad_loss.to(dz.dtype).unsqueeze(1)
        return grad.to(ctx.in_dtype), None, None, None, None, None


class _ValueSquaredError(torch.autograd.Function):
    """``(y − Σ_k softmax(z)_k v_k)²``; backward ``−2 (y − ŷ) p ⊙ (v − ŷ)``."""

    @staticmethod
    def forward(ctx, logits, y, v):  # type: ignore[override]
        p = torch.softmax(logits.to(y.dtype), dim=1)
        yhat = p @ v
        r = y - yhat
        ctx.save_for_backward(p, v, yhat, r)
        ctx.in_dtype = logits.dtype
        return r.square()

    @staticmethod
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        p, v, yhat, r = ctx.saved_tensors
        grad = (v.unsqueeze(0) - yhat.unsqueeze(1)).mul_(p)
        grad.mul_((-2 * r * grad_loss.to(r.dtype)).unsqueeze(1))
        return grad.to(ctx.in_dtype), None, None


class _NumberTokenLoss(torch.autograd.Function):
    """``−log p_y + λ NTL``: NTL-MSE ``(v_y − p·v)²`` (gradient ``p ⊙ (1 − 2λ r (v − ŷ)) − e_y``,
    ``r = v_y − ŷ``) or NTL-WAS ``Σ_k p_k |v_k − v_y|`` (gradient ``p ⊙ (1 + λ(d − D)) − e_y``,
    ``d = |v − v_y|``, ``D = Σ p d``). The gradient's ``(M, C)`` part is formed in the forward
    (over a buffer it needs anyway): the backward only scales it."""

    @staticmethod
    def forward(ctx, logits, target, v, ntl_weight, wasserstein):  # type: ignore[override]
        logp = torch.log_softmax(logits.to(v.dtype), dim=1)
        idx = target.unsqueeze(1)
        loss = logp.gather(1, idx).squeeze(1).neg_()
        p = torch.softmax(logp, dim=1)
        del logp
        w = ntl_weight
        if not w:
            dz = p
        elif wasserstein:
            vy = v[target]
            pd = (v.unsqueeze(0) - vy.unsqueeze(1)).abs_().mul_(p)  # p ⊙ d
            dist = pd.sum(1)  # D, the expected distance
            loss = loss + w * dist
            dz = pd.mul_(w).addcmul_(p, (1 - w * dist).unsqueeze(1))  # p + λ p ⊙ (d − D)
        else:
            yhat = p @ v
            r = v[target] - yhat
            loss = loss + w * r.square()
            dz = (v.unsqueeze(0) - yhat.unsqueeze(1)).mul_((-2 * w * r).unsqueeze(1))
            dz.add_(1).mul_(p)
        ctx.save_for_backward(dz, target)
        ctx.in_dtype = logits.dtype
        return loss

    @staticmethod
    @first_order
    def backward(ctx, grad_loss):  # type: ignore[override]
        dz, target = ctx.saved_tensors
        g = grad_loss.to(dz.dtype).unsqueeze(1)
        grad = dz * g
        grad.scatter_add_(1, target.unsqueeze(1), -g)
        return grad.to(ctx.in_dtype), None, None, None, None


#: Beyond this many σ√2 from the target, ``erf`` is ±1 to float64 precision: the bins whose two
#: edges both lie farther get exactly 0 mass, so HL-Gauss computes only the window of bins within.
_ERF_SATURATES = 6.0


def _hl_gauss_window(
    y: torch.Tensor, v: torch.Tensor, sigma_ratio: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bins of ``y``'s HL-Gauss target that can hold mass, ``(M, J)`` class indices and their
    probabilities: the same numbers as :func:`_hl_gauss_probs` at those classes, 0 elsewhere."""
    c = v.numel()
    edges = _bin_edges(v)
    sigma = sigma_ratio * (v[-1] - v[0]) / (c - 1)
    width = (_ERF_SATURATES * _SQRT2) * sigma
    start = (torch.searchsorted(edges, (y - width).contiguous()) - 1).clamp_(0, c)
    stop = torch.searchsorted(edges, (y + width).contiguous(), right=True).clamp_(max=c)
    bins = int((stop - start).max()) if y.numel() else 1
    if bins >= c:
        idx = torch.arange(c, device=y.device).expand(y.shape[0], c)
        return idx, _hl_gauss_probs(y, v, sigma_ratio)
    edge_idx = (start.unsqueeze(1) + torch.arange(bins + 1, device=y.device)).clamp_(max=c)
    cdf = torch.special.erf((edges[edge_idx] - y.unsqueeze(1)) / (sigma * _SQRT2))
    ends = torch.special.erf((edges[[0, c]].unsqueeze(0) - y.unsqueeze(1)) / (sigma * _SQRT2))
    mass = ends[:, 1:] - ends[:, :1]
    q = (cdf[:, 1:] - cdf[:, :-1]) / mass  # past the last edge: repeated edges, mass 0
    return edge_idx[:, :-1].clamp(max=c - 1), q


# --------------------------------------------------------------------------------- HL-Gauss
def hl_gauss_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    sigma_ratio: float = 0.75,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """HL-Gauss, the histogram loss with a Gaussian target (Imani & White, "Improving Regression
    Performance with Distributional Losses", ICML 2018; Farebrother et al., "Stop Regressing:
    Training Value Functions via Classification for Scalable Deep RL", ICML 2024).

    .. math::

        q_k = \\frac{\\Phi\\big(\\frac{e_{k+1} - y}{\\sigma}\\big)
                    - \\Phi\\big(\\frac{e_k - y}{\\sigma}\\big)}
                   {\\Phi\\big(\\frac{e_C - y}{\\sigma}\\big)
                    - \\Phi\\big(\\frac{e_0 - y}{\\sigma}\\big)},
        \\qquad \\ell = -\\sum_k q_k \\log \\mathrm{softmax}(z)_k

    Class ``k`` is the bin ``[e_k, e_{k+1})`` around ``values[k]``: the edges are the midpoints
    between neighbouring values and half a gap beyond the end values, so for equally spaced values
    ``v_k = v₀ + k h`` the support is ``[v₀ − h/2, v_last + h/2]`` in ``C`` bins of width ``h``:
    the paper's ``hl_gauss(min_value, max_value, num_bins)`` is
    ``values = linspace(min_value + h/2, max_value − h/2, num_bins)``. ``σ = sigma_ratio · h``
    (``h`` the mean gap for unequal values). Computed as the paper's code does (differences of
    ``erf`` at the edges, renormalised), on the bins within ``6√2 σ`` of ``y`` only: beyond,
    ``erf`` is ±1 to float64 precision and the paper's code gets exactly 0 too. Predict with
    :func:`value_from_logits` (the bins' centres weighted by the softmax, as the paper's
    ``transform_from_probs``).

    As ``σ → 0`` the target becomes the one-hot of the bin holding ``y``: cross-entropy on the
    nearest class, which at a class value is also its two-hot (the tests check both).

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` real values (integer or floating) in the bins'
          support ``[e_0, e_C]``.
        - output: a scalar, or the target's shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: the regression targets.
        values: the ``(C,)`` strictly increasing values the classes (bins) stand for; default
            ``0, 1, ..., C − 1``. **Uncertain**: the paper sets the support per task (its
            experiments use 51 to 201 bins); there is no task-free default.
        sigma_ratio: ``σ`` over the bin width; default 0.75, the ratio σ/ς the paper
            recommends across its tasks.
        weight: per-class (per-bin) weights; an entry weighs the weight of the bin holding its
            target (the nearest value); weighted mean as in torch.
        ignore_index: entries whose target equals it are ignored.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_positive("sigma_ratio", sigma_ratio)
    inp = _flatten_values(
        logits,
        target,
        values,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        bins=True,
    )
    flat = inp.flat
    idx, q = _hl_gauss_window(inp.y, inp.v, sigma_ratio)
    loss = _SparseSoftCE.apply(flat.logits, idx, q)
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="hl-gauss",
    function=hl_gauss_loss,
    family="regression-as-classification",
    description="HL-Gauss: cross-entropy to a Gaussian N(y, σ²) histogram over the value bins",
    paper="Farebrother et al., ICML 2024 (Imani & White, ICML 2018)",
    target="value",
    uncertain=("values",),
)
class HLGaussLoss(_ValuesLoss):
    """Module form of :func:`hl_gauss_loss`; ``values`` is a buffer, ``predict`` the inverse map."""

    def __init__(
        self,
        *,
        values: Any = None,
        sigma_ratio: float = 0.75,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("sigma_ratio", sigma_ratio)
        self._init_values(values)
        self.sigma_ratio = sigma_ratio

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return hl_gauss_loss(
            logits,
            target,
            values=self.values,
            sigma_ratio=self.sigma_ratio,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ---------------------------------------------------------------------------------- two-hot
def two_hot_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Two-hot cross-entropy (Farebrother et al., "Stop Regressing: Training Value Functions via
    Classification for Scalable Deep RL", ICML 2024, §3; as in MuZero and DreamerV3).

    .. math::

        \\ell = -(1 - a)\\log p_k - a \\log p_{k+1},
        \\qquad v_k \\le y \\le v_{k+1},\\quad a = \\frac{y - v_k}{v_{k+1} - v_k},
        \\quad p = \\mathrm{softmax}(z)

    The target's mass is split between the two classes whose values enclose it, so that its
    expected value is ``y`` exactly (:func:`two_hot_target`; :func:`value_from_logits` maps logits
    back to a value). Computed as ``logsumexp(z) − (1 − a) z_k − a z_{k+1}``: no ``(N, C)`` target
    is built.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` real values in ``[values[0], values[-1]]``.
        - output: a scalar, or the target's shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: the regression targets; out-of-range targets are an error (clamp them to the
            support first if that is what is wanted: MuZero and DreamerV3 clip).
        values: the ``(C,)`` strictly increasing values the classes stand for; default
            ``0, 1, ..., C − 1``. **Uncertain**: the paper sets the support per task.
        weight: per-class weights; an entry weighs the weight of the class whose value is nearest
            its target; weighted mean as in torch.
        ignore_index: entries whose target equals it are ignored.
        reduction: ``"mean" | "sum" | "none"``.
    """
    inp = _flatten_values(
        logits, target, values, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    flat = inp.flat
    k, a = _two_hot_split(inp.y, inp.v)
    loss = _SparseSoftCE.apply(
        flat.logits, torch.stack([k, k + 1], dim=1), torch.stack([1 - a, a], dim=1)
    )
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="two-hot",
    function=two_hot_loss,
    family="regression-as-classification",
    description="two-hot: cross-entropy to the two classes whose values enclose y, mean exactly y",
    paper="Farebrother et al., ICML 2024",
    target="value",
    uncertain=("values",),
)
class TwoHotLoss(_ValuesLoss):
    """Module form of :func:`two_hot_loss`; ``values`` is a buffer, ``predict`` the inverse map."""

    def __init__(
        self,
        *,
        values: Any = None,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        self._init_values(values)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return two_hot_loss(
            logits,
            target,
            values=self.values,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------------------ R2CCP
def r2ccp_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    power: float = 0.5,
    loss_weight: float = 5.0,
    entropy_weight: float = 1.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """The R2CCP loss (Guha, Natarajan, Möllenhoff, Khan, Ndiaye, "Conformal Prediction via
    Regression-as-Classification", ICLR 2024): the expected distance to the target under the
    predicted distribution, minus an entropy bonus.

    .. math::

        \\ell = \\lambda \\sum_k q_k\\, |y - b_k|^{p} - \\tau\\, H(q),
        \\qquad q = \\mathrm{softmax}(z),\\quad H(q) = -\\sum_k q_k \\log q_k

    with ``b_k = values[k]``. longtail follows the official code (``EtashGuha/R2CCP``,
    ``GenModule.compute_loss``), which weighs the distance term by ``loss_weight`` (λ) and the
    entropy by ``entropy_weight`` (τ); ``Σ q |y − b|^p − τ H(q)`` is ``loss_weight=1``. The code
    sums over the batch; ``reduction="sum"`` is that, ``"mean"`` divides by the batch. The code
    can anneal ``τ`` to 0 over training (``--annealing``, off by default): set
    ``entropy_weight`` on the module to do so.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` real values in ``[values[0], values[-1]]`` (the
          code scales targets into its bins' range).
        - output: a scalar, or the target's shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: the regression targets.
        values: the ``(C,)`` strictly increasing bin values ``b_k``; default ``0, ..., C − 1``.
            **Uncertain**: the code uses 50 bins equally spaced over the (scaled) target range
            (``--range_size 50``); the support is the task's.
        power: the exponent ``p``; default 0.5, the code's ``--lq_norm_val``.
        loss_weight: ``λ``, the distance term's weight; default 5, the code's ``--loss_weight``.
        entropy_weight: ``τ``; default 1, the code's ``--entropy_weight``.
        weight: per-class weights; an entry weighs the weight of the class whose value is nearest
            its target; weighted mean as in torch.
        ignore_index: entries whose target equals it are ignored.
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_positive("power", power)
    check_positive("loss_weight", loss_weight, allow_zero=True)
    check_positive("entropy_weight", entropy_weight, allow_zero=True)
    inp = _flatten_values(
        logits, target, values, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    flat = inp.flat
    loss = _R2CCP.apply(
        flat.logits, inp.y, inp.v, float(power), float(loss_weight), float(entropy_weight)
    )
    return reduce_loss(loss, flat, weight, reduction)


@register_loss(
    name="r2ccp",
    function=r2ccp_loss,
    family="regression-as-classification",
    description="R2CCP: λ Σ q_k |y − b_k|^p − τ H(q), expected distance minus an entropy bonus",
    paper="Guha et al., ICLR 2024",
    target="value",
    uncertain=("values",),
)
class R2CCPLoss(_ValuesLoss):
    """Module form of :func:`r2ccp_loss`; ``values`` is a buffer, ``predict`` the inverse map."""

    def __init__(
        self,
        *,
        values: Any = None,
        power: float = 0.5,
        loss_weight: float = 5.0,
        entropy_weight: float = 1.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("power", power)
        check_positive("loss_weight", loss_weight, allow_zero=True)
        check_positive("entropy_weight", entropy_weight, allow_zero=True)
        self._init_values(values)
        self.power = power
        self.loss_weight = loss_weight
        self.entropy_weight = entropy_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return r2ccp_loss(
            logits,
            target,
            values=self.values,
            power=self.power,
            loss_weight=self.loss_weight,
            entropy_weight=self.entropy_weight,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ---------------------------------------------------------------------------------- Z-Error
#: Added to the batch standard deviation of the z-score (the paper's ε, "a small value").
Z_ERROR_EPS = 1e-8


def z_error_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    threshold: float = 2.0,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Z-Error loss (Godin, "Z-Error Loss for Training Neural Networks", arXiv 2506.02154, 2025):
    the squared error with the batch's outliers masked out, on the value the logits predict.

    .. math::

        L_i = (y_i - \\hat y_i)^2,\\quad \\hat y_i = \\sum_k \\mathrm{softmax}(z_i)_k\\, v_k,
        \\qquad Z_i = \\frac{L_i - \\mu_B}{\\sigma_B + \\varepsilon},
        \\qquad \\ell = \\frac{\\sum_i m_i L_i}{\\sum_i m_i},\\quad m_i = [\\,|Z_i| \\le \\tau\\,]

    ``μ_B`` and ``σ_B`` (unbiased) are the mean and standard deviation of the per-entry errors
    over the batch's entries that are not ignored; ``ε = 1e-8`` (:data:`Z_ERROR_EPS`; the paper's
    "small value"). This is the paper's ``ZMSELoss``, the z-score taken on the per-sample loss
    values (its text; its code's alternative z-scores the signed error ``y − ŷ``), applied to
    the regression value of a classification head (:func:`value_from_logits`), which is what
    makes it a regression-as-classification loss. The mask is a batch statistic without
    gradient; a batch of fewer than two entries masks nothing (no spread to score against).
    ``"mean"`` is the weighted mean over the kept entries, ``"none"`` gives 0 for masked ones.

    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype, ``C ≥ 2``.
        - target: ``(N,)`` or ``(N, d1, ...)`` real values in ``[values[0], values[-1]]``.
        - output: a scalar, or the target's shape with ``reduction="none"``; float32 for half
          inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: the regression targets.
        values: the ``(C,)`` strictly increasing values the classes stand for; default
            ``0, ..., C − 1``. **Uncertain**: the support is the task's.
        threshold: ``τ``, the largest ``|Z|`` kept; default 2 (2σ), the paper's example.
            **Uncertain**: the paper also anneals the threshold during training and gives no
            single value for all tasks.
        weight: per-class weights; an entry weighs the weight of the class whose value is nearest
            its target; weighted mean over the kept entries.
        ignore_index: entries whose target equals it are ignored (and not in the statistics).
        reduction: ``"mean" | "sum" | "none"``.
    """
    check_positive("threshold", threshold)
    inp = _flatten_values(
        logits, target, values, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    flat = inp.flat
    err = _ValueSquaredError.apply(flat.logits, inp.y, inp.v)
    with torch.no_grad():
        e = err if flat.valid is None else err[flat.valid]
        if e.numel() >= 2:
            mu, sd = e.mean(), e.std()
            keep = ((err - mu) / (sd + Z_ERROR_EPS)).abs() <= threshold
            valid = keep if flat.valid is None else keep & flat.valid
            flat = FlatInputs(flat.logits, flat.target, valid, flat.batch_shape, flat.compute_dtype)
    return reduce_loss(err, flat, weight, reduction)


@register_loss(
    name="z-error",
    function=z_error_loss,
    family="regression-as-classification",
    description="Z-Error: squared error of the predicted value, batch z-score outliers masked out",
    paper="Godin, arXiv 2025",
    target="value",
    uncertain=("values", "threshold"),
)
class ZErrorLoss(_ValuesLoss):
    """Module form of :func:`z_error_loss`; ``values`` is a buffer, ``predict`` the inverse map."""

    def __init__(
        self,
        *,
        values: Any = None,
        threshold: float = 2.0,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("threshold", threshold)
        self._init_values(values)
        self.threshold = threshold

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return z_error_loss(
            logits,
            target,
            values=self.values,
            threshold=self.threshold,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


# ------------------------------------------------------------------------ Number Token Losses
def _ntl(
    logits, target, values, ntl_weight, weight, ignore_index, reduction, wasserstein: bool
) -> torch.Tensor:
    check_positive("ntl_weight", ntl_weight, allow_zero=True)
    flat = flatten_inputs(
        logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction
    )
    like = torch.empty((), dtype=flat.compute_dtype, device=flat.logits.device)
    v = _class_values(values, flat.num_classes, like, increasing=False)
    loss = _NumberTokenLoss.apply(flat.logits, flat.target, v, float(ntl_weight), wasserstein)
    return reduce_loss(loss, flat, weight, reduction)


_NTL_ARGS = """
    Shape:
        - logits: ``(N, C)`` or ``(N, C, d1, ...)``, any floating dtype: the logits of the
          number tokens (here, all C classes stand for numbers).
        - target: ``(N,)`` or ``(N, d1, ...)`` integer class (token) indices.
        - output: a scalar, or ``(N,)`` / ``(N, d1, ...)`` with ``reduction="none"``; float32 for
          half inputs, else the input's dtype.

    Args:
        logits: ``(N, C)`` or ``(N, C, d1, ...)``.
        target: class indices.
        values: the ``(C,)`` numbers the classes stand for (any order); default
            ``0, 1, ..., C − 1``, the digit tokens 0-9 the paper's experiments use
            (``digit_nt_only``).
        ntl_weight: ``λ``; default 0.5, the paper's development code
            (``number_token_loss_weight``). **Uncertain**: the paper's experiments tune it; no
            single value is the paper's.
        weight: per-class weights of the whole per-sample loss (CE + λ NTL); weighted mean as in
            torch.
        ignore_index, reduction: as in ``torch.nn.functional.cross_entropy``.
"""


def ntl_mse_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    ntl_weight: float = 0.5,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy plus the Number Token Loss NTL-MSE (Zausinger et al., "Regress, Don't Guess:
    A Regression-like Loss on Number Tokens for Language Models", ICML 2025).

    .. math::

        \\ell = -\\log p_y + \\lambda\\,\\big(v_y - \\textstyle\\sum_k p_k v_k\\big)^2,
        \\qquad p = \\mathrm{softmax}(z)

    The paper trains with ``L_CE + λ L_NTL``; the NTL term is the squared error between the
    target token's value and the value the softmax over the number tokens predicts (the
    ``NTLossDotProduct`` of its ``ntloss`` package with ``mse_loss``). ``ntl_weight=0`` is
    cross-entropy.
    """
    return _ntl(logits, target, values, ntl_weight, weight, ignore_index, reduction, False)


ntl_mse_loss.__doc__ = (ntl_mse_loss.__doc__ or "") + _NTL_ARGS


def ntl_was_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    values: Any = None,
    ntl_weight: float = 0.5,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy plus the Number Token Loss NTL-WAS (Zausinger et al., "Regress, Don't Guess:
    A Regression-like Loss on Number Tokens for Language Models", ICML 2025).

    .. math::

        \\ell = -\\log p_y + \\lambda \\sum_k p_k\\, |v_k - v_y|,
        \\qquad p = \\mathrm{softmax}(z)

    The NTL term is the Wasserstein-1 distance between the predicted distribution over the
    number tokens and the target's point mass, which is the expected distance
    ``Σ_k p_k |v_k − v_y|`` (the ``NTLoss`` of the paper's ``ntloss`` package, "the default as
    per our paper"). Its development code computes ``Σ_i |CDF_p(i) − CDF_y(i)|`` over the
    value-sorted tokens, the same number for the unit-spaced digits 0-9 (the tests check it).
    ``ntl_weight=0`` is cross-entropy.
    """
    return _ntl(logits, target, values, ntl_weight, weight, ignore_index, reduction, True)


ntl_was_loss.__doc__ = (ntl_was_loss.__doc__ or "") + _NTL_ARGS


class _NTLModule(_ValuesLoss):
    _fn: Any = None

    def __init__(
        self,
        *,
        values: Any = None,
        ntl_weight: float = 0.5,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__(weight=weight, ignore_index=ignore_index, reduction=reduction)
        check_positive("ntl_weight", ntl_weight, allow_zero=True)
        self._init_values(values)
        self.ntl_weight = ntl_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self)._fn(
            logits,
            target,
            values=self.values,
            ntl_weight=self.ntl_weight,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


@register_loss(
    name="ntl-mse",
    function=ntl_mse_loss,
    family="regression-as-classification",
    description="CE + λ (v_y − Σ p_k v_k)²: the Number Token Loss, MSE flavour",
    paper="Zausinger et al., ICML 2025",
    uncertain=("ntl_weight",),
)
class NTLMSELoss(_NTLModule):
    """Module form of :func:`ntl_mse_loss`; ``values`` is a buffer."""

    _fn = staticmethod(ntl_mse_loss)


@register_loss(
    name="ntl-was",
    function=ntl_was_loss,
    family="regression-as-classification",
    description="CE + λ Σ p_k |v_k − v_y|: the Number Token Loss, Wasserstein-1 flavour",
    paper="Zausinger et al., ICML 2025",
    uncertain=("ntl_weight",),
)
class NTLWASLoss(_NTLModule):
    """Module form of :func:`ntl_was_loss`; ``values`` is a buffer."""

    _fn = staticmethod(ntl_was_loss)
