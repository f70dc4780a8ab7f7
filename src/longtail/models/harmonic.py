"""The harmonic head (Baek et al., "Harmonic Loss Trains Interpretable AI Models", 2025)."""

from __future__ import annotations

import torch
from torch import nn

from longtail._validation import check_positive, expected
from longtail.functional import harmonic_logits

__all__ = ["HarmonicHead"]


class HarmonicHead(nn.Module):
    """Class centres ``w_c`` and the logits ``−n log ‖x − w_c‖``: cross-entropy on them is the
    harmonic loss (softmax of ``−n log d`` is the paper's HarMax ``d_c^{−n} / Σ_j d_j^{−n}``), and
    the prediction is the nearest centre.

    Use it where a linear classifier would go, and train with any cross-entropy (``"ce"``, or
    another single-label loss on these logits).

    Example:
        >>> head = HarmonicHead(8, 3, exponent=2.0)
        >>> head(torch.randn(4, 8)).shape
        torch.Size([4, 3])

    Args:
        in_features: feature dimension ``D``.
        num_classes: number of classes ``C`` (one centre each).
        exponent: the harmonic exponent ``n`` > 0; default ``√D``, the paper's Fashion-MNIST
            choice (n = 28 for D = 784). The paper ties ``n`` to the dimension and the task, and
            other code uses ``√D`` to ``2D``: an uncertain default.
        eps: added to the squared distance so a feature on a centre has a finite logit
            (default 1e-12; the paper gives none).
    """

    def __init__(
        self, in_features: int, num_classes: int, exponent: float | None = None, eps: float = 1e-12
    ) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("num_classes", num_classes)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise expected(name, "a positive integer", repr(v))
        self.exponent = float(in_features) ** 0.5 if exponent is None else exponent
        check_positive("exponent", self.exponent)
        check_positive("eps", eps)
        self.eps = eps
        # centres start like a linear layer's weights (the paper initialises them randomly)
        self.centers = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.kaiming_uniform_(self.centers, a=5**0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return harmonic_logits(features, self.centers, exponent=self.exponent, eps=self.eps)

    def extra_repr(self) -> str:
        c, d = self.centers.shape
        return f"in_features={d}, num_classes={c}, exponent={self.exponent:g}"
