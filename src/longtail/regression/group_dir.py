"""Group-DIR: group classification with descending soft labels for deep imbalanced regression.

Pu, Xu, Fang, Bao, Ling and Wang, "Leveraging Group Classification with Descending Soft Labeling
for Deep Imbalanced Regression", AAAI 2025. longtail is its reference implementation.

The label range is cut into ``G`` contiguous groups (:func:`~longtail.regression.group_labels`).
A shared encoder gives features ``h``; on them

* an ordinal group-aware contrastive loss ``L_grc`` (:func:`group_contrastive_loss`) orders the
  features by group distance;
* a group classifier is trained with symmetric descending soft labels
  (:func:`descending_soft_labels`), ``L_soft``;
* ``G`` expert regressors (:class:`GroupDIRHead`): in training each sample uses its true group's
  expert, ``L_mse``; at test time the expert of the predicted group.

``L = L_grc + λ1·L_mse + λ2·L_soft`` (:class:`GroupDIRLoss`).

Where the paper is silent, longtail chooses, and says so in each docstring: equal-width groups
over the training label range; λ1 = λ2 = 1 by default; the contrastive loss is computed over the
batch as given (no second augmented view is required); hard (argmax) routing at test time, with a
softmax-weighted mixture of experts as an option; linear classifier and experts on the raw
(un-normalised) features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_positive, expected
from ..losses._reduce import compute_dtype_for
from .binning import REGIONS, as_targets
from .losses import _check_pair, _reduce, _sample_weight

ROUTINGS = ("hard", "soft")


def _check_num_groups(num_groups: int) -> None:
    if not isinstance(num_groups, int) or isinstance(num_groups, bool) or num_groups < 2:
        raise expected("num_groups", "an integer >= 2 (one group is plain regression)", num_groups)


def _check_groups(groups: Any, num_groups: int, n: int | None = None) -> torch.Tensor:
    if not isinstance(groups, torch.Tensor) or groups.is_floating_point() or groups.is_complex():
        got = groups.dtype if isinstance(groups, torch.Tensor) else type(groups).__name__
        raise expected("groups", "an integer tensor of group labels", got)
    g = groups.reshape(-1).long()
    if n is not None and g.numel() != n:
        raise expected("groups", f"one group per sample ({n})", f"{g.numel()} groups")
    if g.numel():
        lo, hi = torch.stack(torch.aminmax(g)).tolist()
        if lo < 0 or hi >= num_groups:
            bad = g[(g < 0) | (g >= num_groups)][:5].tolist()
            raise expected("groups", f"group labels in [0, {num_groups})", f"labels {bad}")
    return g


def descending_soft_labels(
    groups: torch.Tensor, num_groups: int, beta: float = 1.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Symmetric descending soft labels of Group-DIR (Pu et al., AAAI 2025).

    .. math::

        q_k = \\mathrm{softmax}(l)_k, \\qquad l_k = G - \\beta\\,|k - g|

    so ``q`` sums to 1, peaks at the true group ``g`` and falls off symmetrically, by a factor
    ``e^{-β}`` per group of distance (the constant ``G`` cancels in the softmax; it is kept to
    follow the paper). ``β = 0`` gives uniform labels; large ``β`` tends to one-hot labels.

    Args:
        groups: integer group labels ``(N,)`` in ``[0, G)``.
        num_groups: ``G`` (>= 2).
        beta: the descent rate β >= 0 (the paper's default 1).
        dtype: floating dtype of the result.

    Returns:
        ``(N, G)`` soft labels on ``groups``' device.

    >>> descending_soft_labels(torch.tensor([1]), 3, beta=1.0)
    tensor([[0.2119, 0.5761, 0.2119]])
    """
    _check_num_groups(num_groups)
    check_positive("beta", beta, allow_zero=True)
    g = _check_groups(groups, num_groups)
    k = torch.arange(num_groups, device=g.device, dtype=torch.float64)
    logits = num_groups - beta * (k.unsqueeze(0) - g.unsqueeze(1).to(torch.float64)).abs()
    return torch.softmax(logits, dim=1).to(dtype)


def group_contrastive_loss(
    features: torch.Tensor, groups: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Ordinal group-aware contrastive loss of Group-DIR (Pu et al., AAAI 2025).

    .. math::

        L_{grc} = -\\frac{1}{B(B-1)} \\sum_i \\sum_{j \\ne i}
        \\log \\frac{s_{ij}}{\\sum_{k \\ne i,\\ |g_i - g_k| \\ge |g_i - g_j|} s_{ik}},
        \\qquad s_{ij} = \\exp(\\cos(h_i, h_j) / t)

    Rank-N-Contrast (Zha et al., NeurIPS 2023) on group labels with cosine similarity: for an
    anchor ``i`` and a positive ``j``, the negatives are every sample at least as far from ``i``
    in group distance as ``j`` (ties included), so features get ordered by group.

    Computed in O(B²) memory, not the O(B³) of the pairwise-then-mask formulation. With
    integer groups and ``t >= 1/30`` (Group-DIR's case), in O(B²) time: since ``cos <= 1``,
    every ``exp((cos − 1)/t)`` lies in ``[e^{-2/t}, 1]`` (no overflow, and no underflow for
    ``2/t <= 60``); one ``scatter_add`` sums each anchor's terms per group distance, a reverse
    cumulative sum over the (at most ``G``) distances gives every ``Σ_{k : d_ik >= d}``, and the
    log is taken once per anchor and distance, weighted by how many ``j`` share it. Otherwise
    (real-valued labels, tinier temperatures), in O(B² log B) time and in log space, stable for
    any temperature: each row's similarities are sorted by distance, a reverse cumulative
    log-sum-exp gives the log of each ``Σ_{k : d_ik >= d}``, and ``searchsorted`` finds where
    each ``d_ij``'s tie block starts. ``groups`` may be real-valued labels (then this is RnC
    with L1 label distance and cosine similarity).

    The paper uses the features of one batch; with two augmented views, concatenate them (and
    repeat the groups), as RnC does.

    Args:
        features: ``(B, D)`` features ``h`` (any floating dtype; computed in at least float32).
        groups: ``(B,)`` group labels (integers, or real values).
        temperature: ``t`` > 0 (2 by default, as in RnC).

    Returns:
        A scalar (float32 for half inputs). ``B < 2`` gives 0, attached to the graph.

    >>> h = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> round(group_contrastive_loss(h, torch.tensor([0, 0, 1])).item(), 4)
    0.3931
    """
    check_positive("temperature", temperature)
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        got = features.dtype if isinstance(features, torch.Tensor) else type(features).__name__
        raise expected("features", "a floating-point tensor", got)
    if features.dim() != 2:
        raise expected("features", "of shape (B, D)", f"shape {tuple(features.shape)}")
    if not isinstance(groups, torch.Tensor):
        raise expected("groups", "a tensor of group labels", type(groups).__name__)
    b = features.shape[0]
    if groups.reshape(-1).numel() != b:
        raise expected("groups", f"one label per feature row ({b})", f"{groups.numel()} labels")
    cd = compute_dtype_for(features.dtype)
    if b < 2:
        return features.to(cd).sum() * 0.0
    g = groups.reshape(-1).to(features.device)
    if g.is_floating_point() and not bool(torch.isfinite(g).all()):
        raise expected("groups", "finite labels", "NaN or inf")
    g = g.to(cd) if g.is_floating_point() else g.long()
    h = F.normalize(features.to(cd), dim=1)
    logits = _Gram.apply(h) / temperature  # (B, B)
    dist = (g.unsqueeze(1) - g.unsqueeze(0)).abs()
    if not g.is_floating_point() and 2.0 / temperature <= 60.0:
        return _grc_by_distance(logits, dist, temperature)
    dist.fill_diagonal_(-1)  # the anchor itself sorts first and is in no "≥ d" set
    dist, order = dist.sort(dim=1)
    a = logits.gather(1, order)
    suffix = a.flip(1).logcumsumexp(dim=1).flip(1)  # suffix[i, p] = log Σ_{q >= p} exp a[i, q]
    start = torch.searchsorted(dist, dist)  # first position of each distance's tie block
    log_prob = a - suffix.gather(1, start)
    return -log_prob[:, 1:].sum() / (b * (b - 1))


class _Gram(torch.autograd.Function):
    """``h @ h.T`` with the symmetric backward ``(G + Gᵀ) h``: one matrix product, not two."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h)
        return h @ h.T

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (h,) = ctx.saved_tensors
        return (grad + grad.T) @ h


def _grc_by_distance(logits: torch.Tensor, dist: torch.Tensor, temperature: float) -> torch.Tensor:
    """:func:`group_contrastive_loss` for integer distances, without sorting (see there)."""
    b = logits.shape[0]
    nd = int(dist.max()) + 1
    dist.fill_diagonal_(nd)  # the anchor itself goes to a last column, which is dropped
    e = torch.exp(logits - 1.0 / temperature)  # exponents in [-2/t, 0]
    per_d = e.new_zeros(b, nd + 1).scatter_add_(1, dist, e)[:, :nd]
    tail = per_d.flip(1).cumsum(1).flip(1)  # tail[i, d] = Σ_{k ≠ i, d_ik >= d} e_ik
    count = e.new_zeros(b, nd + 1).scatter_add_(1, dist, torch.ones_like(e))[:, :nd]
    log_den = count * torch.log(torch.where(count > 0, tail, torch.ones_like(tail)))
    pos = logits.sum() - logits.diagonal().sum() - b * (b - 1) / temperature
    return -(pos - log_den.sum()) / (b * (b - 1))


class GroupContrastiveLoss(nn.Module):
    """Module form of :func:`group_contrastive_loss`."""

    def __init__(self, temperature: float = 2.0):
        super().__init__()
        check_positive("temperature", temperature)
        self.temperature = temperature

    def forward(self, features: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        return group_contrastive_loss(features, groups, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class GroupDIRHead(nn.Module):
    """Group classifier and ``G`` expert regressors on shared features (Pu et al., AAAI 2025).

    The experts are one batched linear map (weight ``(G, D)``, bias ``(G,)``), so every expert's
    output costs one matrix product. Routing:

    * ``forward(h, groups)`` (training): each sample's prediction is its *true* group's expert;
    * ``forward(h)`` (inference): the *predicted* group's expert (argmax of the classifier), as
      in the paper; with ``routing="soft"``, the mixture ``Σ_g p(g|x) φ_g(h)`` instead (a
      longtail option the paper does not use).

    The classifier and experts are linear on the raw features (the paper does not specify their
    form); experts are initialised as ``nn.Linear`` initialises one output.

    Shape:
        - features: ``(N, D)``.
        - groups: optional ``(N,)`` group labels.
        - output: ``(group_logits (N, G), prediction (N,), expert_outputs (N, G))``.

    >>> head = GroupDIRHead(8, num_groups=4)
    >>> logits, pred, experts = head(torch.randn(5, 8))
    >>> logits.shape, pred.shape, experts.shape
    (torch.Size([5, 4]), torch.Size([5]), torch.Size([5, 4]))
    """

    def __init__(self, feature_dim: int, num_groups: int, routing: str = "hard"):
        super().__init__()
        if not isinstance(feature_dim, int) or isinstance(feature_dim, bool) or feature_dim < 1:
            raise expected("feature_dim", "an integer >= 1", repr(feature_dim))
        _check_num_groups(num_groups)
        check_choice("routing", routing, ROUTINGS)
        self.feature_dim = feature_dim
        self.num_groups = num_groups
        self.routing = routing
        self.classifier = nn.Linear(feature_dim, num_groups)
        self.expert_weight = nn.Parameter(torch.empty(num_groups, feature_dim))
        self.expert_bias = nn.Parameter(torch.empty(num_groups))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: kaiming_uniform(a=√5) gives U(±1/√fan_in), bias U(±1/√fan_in)
        bound = self.feature_dim**-0.5
        nn.init.uniform_(self.expert_weight, -bound, bound)
        nn.init.uniform_(self.expert_bias, -bound, bound)
        self.classifier.reset_parameters()

    def forward(
        self, features: torch.Tensor, groups: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if features.dim() != 2 or features.shape[1] != self.feature_dim:
            raise expected(
                "features", f"of shape (N, {self.feature_dim})", f"shape {tuple(features.shape)}"
            )
        logits = self.classifier(features)
        experts = F.linear(features, self.expert_weight, self.expert_bias)  # (N, G)
        if groups is not None:
            g = _check_groups(groups, self.num_groups, features.shape[0]).to(features.device)
            pred = experts.gather(1, g.unsqueeze(1)).squeeze(1)
        elif self.routing == "hard":
            pred = experts.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)
        else:
            pred = (torch.softmax(logits, dim=1) * experts).sum(dim=1)
        return logits, pred, experts

    def extra_repr(self) -> str:
        return (
            f"feature_dim={self.feature_dim}, num_groups={self.num_groups}, "
            f"routing={self.routing!r}"
        )


@dataclass
class GroupDIRLossOutput:
    """The Group-DIR objective and its parts (0-dim tensors, the parts unweighted)."""

    loss: torch.Tensor
    contrastive: torch.Tensor
    mse: torch.Tensor
    soft: torch.Tensor

    def as_dict(self) -> dict[str, float]:
        """Plain floats for logging: ``{"loss", "contrastive", "mse", "soft"}``."""
        return {k: float(getattr(self, k).detach()) for k in ("loss", "contrastive", "mse", "soft")}


class GroupDIRLoss(nn.Module):
    """The Group-DIR objective ``L = L_grc + λ1·L_mse + λ2·L_soft`` (Pu et al., AAAI 2025).

    * ``L_grc``: :func:`group_contrastive_loss` on the features (temperature ``t``);
    * ``L_mse = mean_i w_i (y_i − φ_{g_i}(h_i))²``: the true group's expert (pass the
      :class:`GroupDIRHead` prediction made with ``groups``); optional per-sample weights ``w``
      (e.g. :func:`~longtail.regression.lds_weights` for Group-DIR + LDS), averaged as the DIR
      code does, ``mean(w·ℓ)``;
    * ``L_soft = mean_i −Σ_k q_ik log p_ik``: cross-entropy of the group classifier against
      :func:`descending_soft_labels` (β).

    λ1 and λ2 are not given in the paper's main text; both default to 1. ``features=None`` skips
    ``L_grc`` (its part is then 0), for a two-stage schedule.

    Returns a :class:`GroupDIRLossOutput`; ``out.loss.backward()``, ``out.as_dict()`` to log.
    """

    def __init__(
        self,
        num_groups: int,
        lambda1: float = 1.0,
        lambda2: float = 1.0,
        beta: float = 1.0,
        temperature: float = 2.0,
    ):
        super().__init__()
        _check_num_groups(num_groups)
        for name, v in (("lambda1", lambda1), ("lambda2", lambda2), ("beta", beta)):
            check_positive(name, v, allow_zero=True)
        check_positive("temperature", temperature)
        self.num_groups = num_groups
        self.lambda1, self.lambda2 = lambda1, lambda2
        self.beta, self.temperature = beta, temperature
        table = descending_soft_labels(torch.arange(num_groups), num_groups, beta)
        self.register_buffer("soft_label_table", table)  # row g: the soft label of group g

    def forward(
        self,
        features: torch.Tensor | None,
        group_logits: torch.Tensor,
        prediction: torch.Tensor,
        target: torch.Tensor,
        groups: torch.Tensor,
        weight: Any = None,
    ) -> GroupDIRLossOutput:
        n = prediction.shape[0] if prediction.dim() else 1
        if group_logits.dim() != 2 or group_logits.shape != (n, self.num_groups):
            raise expected(
                "group_logits",
                f"of shape ({n}, {self.num_groups})",
                f"shape {tuple(group_logits.shape)}",
            )
        g = _check_groups(groups, self.num_groups, n).to(group_logits.device)
        cd = _check_pair(prediction, target)
        mse = _reduce(
            (prediction.to(cd) - target.to(cd)) ** 2,
            _sample_weight(weight, prediction.to(cd)),
            "mean",
        )
        q = self.soft_label_table.to(group_logits.device)[g]
        logp = torch.log_softmax(group_logits.to(compute_dtype_for(group_logits.dtype)), dim=1)
        soft = _reduce(-(q.to(logp.dtype) * logp).sum(dim=1), None, "mean")
        if features is None:
            grc = mse.new_zeros(())
        else:
            grc = group_contrastive_loss(features, g, self.temperature)
        loss = grc + self.lambda1 * mse + self.lambda2 * soft
        return GroupDIRLossOutput(loss, grc, mse, soft)

    def extra_repr(self) -> str:
        return (
            f"num_groups={self.num_groups}, lambda1={self.lambda1}, lambda2={self.lambda2}, "
            f"beta={self.beta}, temperature={self.temperature}"
        )


# ------------------------------------------------------------------------------- diagnostics
def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _routing_block(
    pred_group: np.ndarray,
    true_group: np.ndarray,
    experts: np.ndarray,
    probs: np.ndarray,
    y: np.ndarray,
) -> dict[str, Any]:
    n = int(y.size)
    if n == 0:
        keys = (
            "accuracy",
            "within_one",
            "mean_distance",
            "mean_distance_wrong",
            "mean_shift",
            "mae",
            "mae_routed_right",
            "mae_routed_wrong",
            "mae_wrong_if_right",
            "wrong_error_share",
            "mae_true_expert",
            "mae_soft",
        )
        return {"n": 0, **dict.fromkeys(keys)}
    rows = np.arange(n)
    err_hard = np.abs(experts[rows, pred_group] - y)
    err_true = np.abs(experts[rows, true_group] - y)
    err_soft = np.abs((probs * experts).sum(axis=1) - y)
    shift = pred_group - true_group
    right = shift == 0
    total = float(err_hard.sum())
    return {
        "n": n,
        "accuracy": float(right.mean()),
        "within_one": float((np.abs(shift) <= 1).mean()),
        "mean_distance": float(np.abs(shift).mean()),
        "mean_distance_wrong": _mean(np.abs(shift[~right]).astype(np.float64)),
        "mean_shift": float(shift.mean()),
        "mae": float(err_hard.mean()),
        "mae_routed_right": _mean(err_hard[right]),
        "mae_routed_wrong": _mean(err_hard[~right]),
        "mae_wrong_if_right": _mean(err_true[~right]),
        "wrong_error_share": float(err_hard[~right].sum() / total) if total > 0 else 0.0,
        "mae_true_expert": float(err_true.mean()),
        "mae_soft": float(err_soft.mean()),
    }


def routing_diagnostics(
    group_logits: torch.Tensor,
    expert_outputs: torch.Tensor,
    targets: Any,
    groups: Any,
    regions: Sequence[str] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Why Group-DIR's predictions are right or wrong: routing versus the experts.

    At test time Group-DIR predicts with the expert of the group its classifier picks
    (:class:`GroupDIRHead`). A sample's error then has two sources: the classifier sending it to
    another group's expert (a *routing error*), and the expert of its own group being wrong. This
    separates them, over all samples and per label region (e.g. the DIR many / medium / few-shot
    regions of :meth:`~longtail.regression.ShotRegions.assign`).

    Each block (``"all"`` and one per region in ``regions``) holds:

    * ``n``: samples;
    * ``accuracy``: the share routed to their true group; ``within_one``: to a group at most one
      away; ``mean_distance``: mean ``|ĝ − g|`` in groups, ``mean_distance_wrong`` the same over
      the misrouted samples only; ``mean_shift``: mean ``ĝ − g`` (negative: routed towards lower
      groups, e.g. towards the head of a right-skewed target);
    * ``mae``: MAE of the hard-routed prediction (the paper's; the run's MAE when it routes
      hard, while a run with ``routing="soft"`` predicts ``mae_soft``);
      ``mae_routed_right`` / ``mae_routed_wrong``: the same over the samples routed to their
      own group / to another group; ``mae_wrong_if_right``: over the misrouted samples, the MAE
      their own group's expert would have had; ``wrong_error_share``: the misrouted samples'
      part of the total absolute error;
    * ``mae_true_expert``: MAE with every sample sent to its own group's expert (perfect
      routing: what is left is the experts' error); ``mae_soft``: MAE of the mixture
      ``Σ_g p(g|x) φ_g(h)`` (``routing="soft"``).

    ``"per_group"`` holds, for each true group ``g``: ``n``, ``accuracy``, ``mean_predicted``
    (mean predicted group) and ``mae`` (hard routing), ``None`` where a group has no sample.
    Metrics of a block without samples are ``None``.

    Args:
        group_logits: ``(N, G)`` group classifier logits.
        expert_outputs: ``(N, G)`` every expert's prediction, in the units of ``targets``.
        targets: ``(N,)`` targets.
        groups: ``(N,)`` true groups of the targets (the training group edges applied to them,
            e.g. :func:`~longtail.regression.bin_index` with
            :func:`~longtail.regression.group_edges`).
        regions: optional ``(N,)`` region name of each sample.

    Returns:
        ``{"all": {...}, "many": {...}, "medium": {...}, "few": {...}, "per_group": {...}}``
        (region blocks: the names in ``regions``, DIR regions first), plain floats and ints.

    >>> logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    >>> experts = torch.tensor([[1.0, 5.0], [1.0, 5.0], [1.0, 5.0]])
    >>> d = routing_diagnostics(logits, experts, [1.0, 4.0, 5.0], [0, 1, 1])
    >>> d["all"]["accuracy"], d["all"]["mae_routed_wrong"], d["all"]["mae_wrong_if_right"]
    (0.6666666666666666, 3.0, 1.0)
    """
    for name, t in (("group_logits", group_logits), ("expert_outputs", expert_outputs)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise expected(name, "a (N, G) tensor", got)
    if group_logits.shape != expert_outputs.shape:
        raise expected(
            "expert_outputs",
            f"the shape of group_logits {tuple(group_logits.shape)}",
            tuple(expert_outputs.shape),
        )
    n, num_groups = group_logits.shape
    y = as_targets(targets).numpy()
    if y.size != n:
        raise expected("targets", f"one per row of group_logits ({n})", f"{y.size} targets")
    if not isinstance(groups, torch.Tensor):
        groups = torch.as_tensor(np.asarray(groups, dtype=np.int64))
    g = _check_groups(groups, num_groups, n).cpu().numpy()
    logits = group_logits.detach().to("cpu", torch.float64)
    probs = torch.softmax(logits, dim=1).numpy()
    ghat = logits.argmax(dim=1).numpy()
    experts = expert_outputs.detach().to("cpu", torch.float64).numpy()
    out: dict[str, Any] = {"all": _routing_block(ghat, g, experts, probs, y)}
    if regions is not None:
        r = np.asarray(regions).reshape(-1)
        if r.size != n:
            raise expected("regions", f"one per sample ({n})", f"{r.size} regions")
        names = [x for x in REGIONS if x in set(r.tolist())]
        names += sorted({str(x) for x in r.tolist()} - set(names))
        for name in names:
            m = r == name
            out[name] = _routing_block(ghat[m], g[m], experts[m], probs[m], y[m])
    rows = np.arange(n)
    err = np.abs(experts[rows, ghat] - y)
    per: dict[str, list[Any]] = {"n": [], "accuracy": [], "mean_predicted": [], "mae": []}
    for k in range(num_groups):
        m = g == k
        per["n"].append(int(m.sum()))
        per["accuracy"].append(_mean((ghat[m] == k).astype(np.float64)))
        per["mean_predicted"].append(_mean(ghat[m].astype(np.float64)))
        per["mae"].append(_mean(err[m]))
    out["per_group"] = per
    return out
