"""LMSE, the logarithmic squared error for data scaled to [0, 1] (a reconstruction loss).

Park, "Concise Logarithmic Loss Function for Robust Training of Anomaly Detection Model"
(arXiv 2201.05748; v1 "Logarithmic Loss Transformation to Improve Anomaly Detection Model
Training Stability", 2022). The paper's pages that could be read here hold no formula and no
official code is published with it; the form implemented is the one in the author's own
MIT-licensed TensorFlow library (``white-box-layer``, ``loss_log_mse``, committed a month after
the paper): per element, with the residual ``d = ŷ − y``,

    ℓ = −log(1 − d² + ε),  ε = 1e-30,

averaged over elements. For small residuals ``ℓ ≈ d²`` (the squared error); as ``|d| → 1`` it
grows without bound, which is the paper's point: a large reconstruction error costs far more
than under MSE. The form is marked uncertain: it is the author's code, not a formula printed
in the paper. (A one-log form, ``−log(1 − MSE + ε)`` over the batch MSE, has also been read
into the paper's title; it is not what the author's code computes.)

The loss is meant for predictions and targets in [0, 1], so ``|d| ≤ 1``. A residual beyond 1
would take the log of a negative number; there ``1 − d²`` is floored at 0, so the value is
capped at ``−log ε ≈ 69.1`` and the gradient is 0 (say so to whoever feeds it unscaled data).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._validation import check_positive, check_reduction
from .losses import _check_pair, _reduce, _sample_weight

__all__ = ["LogMSELoss", "log_mse_loss"]

EPS = 1e-30


def log_mse_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: Any = None,
    reduction: str = "mean",
    eps: float = EPS,
) -> torch.Tensor:
    """LMSE: ``mean −log(1 − (ŷ − y)² + ε)`` over elements (see the module docstring).

    Shape:
        - pred, target: the same shape (no broadcasting), values meant in [0, 1].
        - weight: ``(N,)`` per-sample weights, or pred's shape.
        - output: a scalar, or pred's shape with ``reduction="none"``.

    Half-precision inputs are computed in float32 (``ε = 1e-30`` is below float16's range).

    >>> log_mse_loss(torch.tensor([0.1, 0.5]), torch.tensor([0.0, 0.0]), reduction="none")
    tensor([0.0101, 0.2877])
    """
    check_reduction(reduction)
    check_positive("eps", eps)
    cd = _check_pair(pred, target)
    d = pred.to(cd) - target.to(cd)
    sq = d * d
    inside = sq < 1
    # log1p keeps the small residuals exact (1 − d² rounds d² away in float32 below ~1e-4);
    # the capped branch sees a safe 0 so that its derivative never meets 0 · inf
    loss = torch.where(
        inside, -torch.log1p(eps - sq.where(inside, 0)), torch.full_like(sq, -math.log(eps))
    )
    return _reduce(loss, _sample_weight(weight, d), reduction)


class LogMSELoss(nn.Module):
    """Module form of :func:`log_mse_loss`; weights are passed per call."""

    def __init__(self, reduction: str = "mean", eps: float = EPS):
        super().__init__()
        check_reduction(reduction)
        check_positive("eps", eps)
        self.reduction, self.eps = reduction, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: Any = None) -> torch.Tensor:
        return log_mse_loss(pred, target, weight, self.reduction, self.eps)
