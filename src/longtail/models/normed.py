"""Cosine (normalised) classifier head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longtail._labels import check_int
from longtail._validation import expected

__all__ = ["NormedLinear"]


class NormedLinear(nn.Module):
    """Cosine-similarity classifier: ``out = normalize(x) @ normalize(W).T``.

    Each logit is the cosine of the angle between the feature vector and a class vector::

        out[n, c] = <x_n, W_c> / (max(||x_n||, eps) * max(||W_c||, eps)),   eps = 1e-12

    so outputs lie in ``[-1, 1]`` (up to floating-point rounding of a few ulps; clamp before
    ``acos``). A zero feature or class vector gives a zero logit, never NaN. This is the last
    layer used with the LDAM loss (Cao et al., NeurIPS 2019), whose margins and scale ``s``
    assume cosine logits, and with other normalised-logit losses. There is no bias.

    ``W`` has shape ``(out_features, in_features)`` (the ``nn.Linear`` convention) and is
    initialised as in the LDAM-DRW code: uniform in ``[-1, 1]``, then every class vector rescaled
    to unit norm. Inputs of shape ``(*, in_features)`` are normalised along the last dimension.

    Args:
        in_features: Size of each input feature vector.
        out_features: Number of classes.
        device: Device of the weight (factory keyword, as for ``nn.Linear``).
        dtype: Dtype of the weight (factory keyword, as for ``nn.Linear``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=1)
        self.out_features = check_int("out_features", out_features, minimum=1)
        self.weight = nn.Parameter(
            torch.empty(self.out_features, self.in_features, device=device, dtype=dtype)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform ``[-1, 1]`` initialisation, then unit-norm class vectors."""
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            self.weight.copy_(F.normalize(self.weight, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine logits of shape ``(*, out_features)`` for ``x`` of shape ``(*, in_features)``."""
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise expected(
                "x", f"of shape (*, {self.in_features}) (in_features)", f"shape {tuple(x.shape)}"
            )
        return F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
