"""Regression losses for imbalanced targets: weighted L1/MSE and Balanced MSE (BMC, GAI, BNI).

Conventions: ``pred`` and ``target`` have the same shape (``(N,)`` or ``(N, 1)``; BMC also takes
``(N, d)``) — a mismatch raises ``ValueError`` rather than broadcasting ``(N, 1)`` against
``(N,)`` to ``(N, N)``. Half-precision inputs are computed in float32 and the loss is returned in
float32; a ``"mean"`` over an empty batch is 0, still attached to the graph.

``losses/_reduce.py`` is built for class-index losses (per-class weights gathered by label,
``ignore_index``); regression needs per-*sample* weights, so the one reduction step lives here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_positive, check_reduction, expected
from ..losses._reduce import compute_dtype_for
from .binning import Bins, as_targets, bin_of, resolve_bins


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> torch.dtype:
    if not isinstance(pred, torch.Tensor) or not pred.is_floating_point():
        got = pred.dtype if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise expected("pred", "a floating-point tensor", got)
    if not isinstance(target, torch.Tensor):
        raise expected("target", "a tensor", type(target).__name__)
    if pred.shape != target.shape:
        raise expected(
            "target",
            f"of the shape of pred {tuple(pred.shape)} (no broadcasting)",
            f"shape {tuple(target.shape)}",
        )
    return compute_dtype_for(
        torch.promote_types(pred.dtype, target.dtype) if target.is_floating_point() else pred.dtype
    )


def _sample_weight(weight: Any, like: torch.Tensor) -> torch.Tensor | None:
    """Per-sample weights ``(N,)`` (or ``like``'s shape), shaped to broadcast against ``like``."""
    if weight is None:
        return None
    w = torch.as_tensor(weight, device=like.device).to(like.dtype)
    if w.dim() == 1 and like.dim() > 1 and w.numel() == like.shape[0]:
        w = w.reshape(-1, *([1] * (like.dim() - 1)))
    if w.shape != like.shape and (
        w.dim() != like.dim()
        or any(a not in (1, b) for a, b in zip(w.shape, like.shape, strict=True))
    ):
        raise expected(
            "weight",
            f"one weight per sample ({like.shape[0] if like.dim() else 1},) or the shape "
            f"{tuple(like.shape)}",
            f"shape {tuple(w.shape)}",
        )
    return w


def _reduce(loss: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Apply per-sample ``weight`` then ``reduction``; ``"mean"`` is ``mean(w·ℓ)``.

    Not ``Σwℓ / Σw``: the DIR code (``weighted_mse_loss``) multiplies and averages, with LDS
    weights already normalised to mean 1 over the training set.
    """
    if weight is not None:
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()  # an empty "mean" is 0, attached to the graph
    return loss.mean()


def weighted_mse_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: Any = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Per-sample weighted squared error, ``mean_i w_i (ŷ_i − y_i)²`` (the DIR code's form).

    Shape:
        - pred, target: the same shape, ``(N,)`` or ``(N, ...)``.
        - weight: ``(N,)`` per-sample weights (e.g. :func:`lds_weights`), or pred's shape.
        - output: a scalar, or pred's shape with ``reduction="none"``.

    >>> pred, target = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])
    >>> weighted_mse_loss(pred, target, weight=torch.tensor([1.0, 0.5]))
    tensor(1.5000)
    """
    check_reduction(reduction)
    cd = _check_pair(pred, target)
    p, t = pred.to(cd), target.to(cd)
    return _reduce((p - t) ** 2, _sample_weight(weight, p), reduction)


def weighted_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: Any = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Per-sample weighted absolute error, ``mean_i w_i |ŷ_i − y_i|`` (the DIR code's form).

    Shapes as :func:`weighted_mse_loss`.

    >>> weighted_l1_loss(torch.tensor([1.0, -2.0]), torch.tensor([0.0, 0.0]))
    tensor(1.5000)
    """
    check_reduction(reduction)
    cd = _check_pair(pred, target)
    p, t = pred.to(cd), target.to(cd)
    return _reduce((p - t).abs(), _sample_weight(weight, p), reduction)


def _noise_var(noise_var: Any, like: torch.Tensor) -> torch.Tensor:
    if isinstance(noise_var, torch.Tensor):
        if noise_var.numel() != 1:
            raise expected("noise_var", "a scalar", f"shape {tuple(noise_var.shape)}")
        return noise_var.reshape(()).to(device=like.device, dtype=like.dtype)
    check_positive("noise_var", noise_var)
    return like.new_tensor(float(noise_var))


def _scalar_targets(pred: torch.Tensor, target: torch.Tensor, name: str) -> torch.dtype:
    cd = _check_pair(pred, target)
    if not (pred.dim() == 1 or (pred.dim() == 2 and pred.shape[1] == 1)):
        raise expected("pred", f"of shape (N,) or (N, 1) for {name}", f"shape {tuple(pred.shape)}")
    return cd


def bmc_loss(
    pred: torch.Tensor, target: torch.Tensor, noise_var: Any, reduction: str = "mean"
) -> torch.Tensor:
    """Balanced MSE, batch-based Monte-Carlo form (Ren et al., "Balanced MSE for Imbalanced
    Visual Regression", CVPR 2022).

    .. math::

        \\ell_i = -\\log \\frac{\\exp(-\\lVert\\hat y_i - y_i\\rVert^2 / 2\\sigma^2)}
        {\\sum_j \\exp(-\\lVert\\hat y_i - y_j\\rVert^2 / 2\\sigma^2)} \\cdot
        \\operatorname{sg}(2\\sigma^2)

    a cross-entropy over the batch's targets, scaled by the detached ``2σ²`` as in
    ``jiawei-ren/BalancedMSE`` (so the gradient scale matches MSE's).

    Shape:
        - pred, target: ``(N,)``, ``(N, 1)`` or ``(N, d)`` (``‖·‖²`` over the ``d`` dims).
        - noise_var: σ², a number > 0 or a scalar tensor (learnable in :class:`BMCLoss`).
        - output: a scalar, or ``(N,)`` with ``reduction="none"``.

    >>> bmc_loss(torch.tensor([0.0]), torch.tensor([5.0]), 1.0)
    tensor(0.)
    """
    check_reduction(reduction)
    cd = _check_pair(pred, target)
    if pred.dim() == 0:
        raise expected("pred", "of shape (N,), (N, 1) or (N, d)", "a 0-dim tensor")
    p = pred.to(cd).unsqueeze(1) if pred.dim() == 1 else pred.to(cd).flatten(1)
    t = target.to(cd).reshape(p.shape)
    var = _noise_var(noise_var, p)
    logits = -0.5 * (p.unsqueeze(1) - t.unsqueeze(0)).pow(2).sum(-1) / var  # (N, N)
    idx = torch.arange(p.shape[0], device=p.device)
    loss = F.cross_entropy(logits, idx, reduction="none") * (2 * var).detach()
    return _reduce(loss, None, reduction)


def gai_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    means: torch.Tensor,
    variances: torch.Tensor,
    weights: torch.Tensor,
    noise_var: Any,
    reduction: str = "mean",
) -> torch.Tensor:
    """Balanced MSE with GMM-based analytical integration (GAI; Ren et al., CVPR 2022).

    The training label distribution is a Gaussian mixture ``Σ_k π_k N(μ_k, v_k)``:

    .. math::

        \\ell_i = \\Big[\\frac{(\\hat y_i - y_i)^2}{2\\sigma^2} + \\tfrac12\\log\\sigma^2
        + \\log\\sum_k \\pi_k\\,(v_k + \\sigma^2)^{-1/2}
        \\exp\\!\\Big(-\\frac{(\\hat y_i - \\mu_k)^2}{2(v_k + \\sigma^2)}\\Big)\\Big]
        \\cdot\\operatorname{sg}(2\\sigma^2)

    exactly as ``gai_loss`` of ``jiawei-ren/BalancedMSE`` (fit the GMM to the training labels
    beforehand, e.g. with scikit-learn's ``GaussianMixture``, as its ``preprocess_gmm.py`` does).

    Shape:
        - pred, target: ``(N,)`` or ``(N, 1)``.
        - means, variances, weights: ``(K,)`` (weights sum to 1, variances > 0).
        - output: a scalar, or pred's shape with ``reduction="none"``.
    """
    check_reduction(reduction)
    cd = _scalar_targets(pred, target, "gai_loss")
    p, t = pred.to(cd), target.to(cd)
    var = _noise_var(noise_var, p)
    mu, v, pi = (
        torch.as_tensor(x, device=p.device).to(cd).reshape(1, -1)
        for x in (means, variances, weights)
    )
    if not mu.shape == v.shape == pi.shape:
        raise expected(
            "variances and weights",
            f"of the shape of means {tuple(mu.shape)}",
            f"{tuple(v.shape)} and {tuple(pi.shape)}",
        )
    col = p.reshape(-1, 1)
    mse_term = (col - t.reshape(-1, 1)) ** 2 / (2 * var) + 0.5 * var.log()
    sum_var = v + var
    balancing = -0.5 * sum_var.log() - 0.5 * (col - mu) ** 2 / sum_var + pi.log()
    loss = (mse_term + torch.logsumexp(balancing, dim=1, keepdim=True)) * (2 * var).detach()
    return _reduce(loss.reshape(p.shape), None, reduction)


def bni_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    noise_var: Any,
    bucket_centers: torch.Tensor,
    bucket_weights: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """Balanced MSE with bin-based numerical integration (BNI; Ren et al., CVPR 2022).

    .. math::

        \\ell_i = \\Big[\\frac{(\\hat y_i - y_i)^2}{2\\sigma^2}
        + \\log\\sum_b w_b \\exp\\!\\Big(-\\frac{(\\hat y_i - c_b)^2}{2\\sigma^2}\\Big)\\Big]
        \\cdot\\operatorname{sg}(2\\sigma^2)

    with bucket centres ``c_b`` and the training label distribution ``w_b`` over the buckets
    (:func:`bni_buckets`), exactly as ``bni_loss`` of ``jiawei-ren/BalancedMSE``.

    Shape:
        - pred, target: ``(N,)`` or ``(N, 1)``.
        - bucket_centers, bucket_weights: ``(B,)``.
        - output: a scalar, or pred's shape with ``reduction="none"``.
    """
    check_reduction(reduction)
    cd = _scalar_targets(pred, target, "bni_loss")
    p, t = pred.to(cd), target.to(cd)
    var = _noise_var(noise_var, p)
    c = torch.as_tensor(bucket_centers, device=p.device).to(cd).reshape(1, -1)
    w = torch.as_tensor(bucket_weights, device=p.device).to(cd).reshape(1, -1)
    if c.shape != w.shape:
        raise expected(
            "bucket_weights",
            f"of the shape of bucket_centers {tuple(c.shape)}",
            f"shape {tuple(w.shape)}",
        )
    col = p.reshape(-1, 1)
    mse_term = (col - t.reshape(-1, 1)) ** 2 / (2 * var)
    balancing = torch.logsumexp(-0.5 * (col - c) ** 2 / var + w.log(), dim=1, keepdim=True)
    loss = (mse_term + balancing) * (2 * var).detach()
    return _reduce(loss.reshape(p.shape), None, reduction)


def bni_buckets(train_targets: Any, bins: Bins = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bucket centres and weights for :func:`bni_loss` from the training labels.

    The centre of each label bin and its share of the training samples (the normalised
    histogram, as ``get_bucket_info`` of the reference code); empty bins are dropped (their
    ``log 0`` terms would contribute nothing).

    >>> bni_buckets([0.5, 0.5, 2.5], bins=1.0)
    (tensor([0.5000, 2.5000], dtype=torch.float64), tensor([0.6667, 0.3333], dtype=torch.float64))
    """
    t = as_targets(train_targets, "train_targets")
    if t.numel() == 0:
        raise expected("train_targets", "non-empty", "no targets")
    edges, width = resolve_bins(bins, t)
    nb = edges.numel() - 1
    idx = torch.from_numpy(bin_of(t, edges, width)).clamp_(0, nb - 1)
    counts = torch.bincount(idx, minlength=nb).to(torch.float64)
    keep = counts > 0
    centers = (edges[:-1] + edges[1:]) / 2
    return centers[keep], counts[keep] / counts.sum()


class _NoiseSigmaLoss(nn.Module):
    """A Balanced MSE loss with a learnable noise scale σ (``noise_sigma``).

    Add ``noise_sigma`` to the optimiser (the reference code uses its own learning rate for it,
    ``--sigma_lr 1e-2``), or set ``noise_sigma.requires_grad_(False)`` to fix σ.
    """

    def __init__(self, init_noise_sigma: float = 1.0, reduction: str = "mean"):
        super().__init__()
        check_positive("init_noise_sigma", init_noise_sigma)
        check_reduction(reduction)
        self.reduction = reduction
        self.noise_sigma = nn.Parameter(torch.tensor(float(init_noise_sigma)))

    @property
    def noise_var(self) -> torch.Tensor:
        return self.noise_sigma**2

    def extra_repr(self) -> str:
        return f"noise_sigma={float(self.noise_sigma):.4g}, reduction={self.reduction!r}"


class BMCLoss(_NoiseSigmaLoss):
    """Module form of :func:`bmc_loss` with a learnable σ (``noise_var = noise_sigma²``)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bmc_loss(pred, target, self.noise_var, self.reduction)


class GAILoss(_NoiseSigmaLoss):
    """Module form of :func:`gai_loss`; the GMM (means, variances, weights) is held in buffers."""

    def __init__(
        self,
        means: Any,
        variances: Any,
        weights: Any,
        init_noise_sigma: float = 1.0,
        reduction: str = "mean",
    ):
        super().__init__(init_noise_sigma, reduction)
        for name, value in (("means", means), ("variances", variances), ("weights", weights)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).reshape(-1))
        if not self.means.shape == self.variances.shape == self.weights.shape:
            raise expected(
                "means, variances and weights",
                "of one length",
                [len(self.means), len(self.variances), len(self.weights)],
            )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gai_loss(
            pred, target, self.means, self.variances, self.weights, self.noise_var, self.reduction
        )


class BNILoss(_NoiseSigmaLoss):
    """Module form of :func:`bni_loss`; bucket centres and weights are buffers."""

    def __init__(
        self,
        bucket_centers: Any,
        bucket_weights: Any,
        init_noise_sigma: float = 1.0,
        reduction: str = "mean",
    ):
        super().__init__(init_noise_sigma, reduction)
        self.register_buffer(
            "bucket_centers", torch.as_tensor(bucket_centers, dtype=torch.float32).reshape(-1)
        )
        self.register_buffer(
            "bucket_weights", torch.as_tensor(bucket_weights, dtype=torch.float32).reshape(-1)
        )
        if self.bucket_centers.shape != self.bucket_weights.shape:
            raise expected(
                "bucket_weights", f"of length {len(self.bucket_centers)}", len(self.bucket_weights)
            )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bni_loss(
            pred, target, self.noise_var, self.bucket_centers, self.bucket_weights, self.reduction
        )


class WeightedMSELoss(nn.Module):
    """Module form of :func:`weighted_mse_loss`; weights are passed per call."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Any = None) -> torch.Tensor:
        return weighted_mse_loss(pred, target, weight, self.reduction)


class WeightedL1Loss(WeightedMSELoss):
    """Module form of :func:`weighted_l1_loss`; weights are passed per call."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Any = None) -> torch.Tensor:
        return weighted_l1_loss(pred, target, weight, self.reduction)
