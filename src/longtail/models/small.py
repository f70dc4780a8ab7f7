"""A small convolutional network without batch statistics (tests, DDP checks, quick looks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longtail._labels import check_int
from longtail.models.normed import NormedLinear

__all__ = ["SmallConvNet"]


class SmallConvNet(nn.Module):
    """Three 3×3 conv layers (``width``, ``2·width``, ``4·width``), ReLU, two 2×2 max-pools,
    global average pooling and a linear or cosine classifier. No normalisation layers, so a
    sample's output does not depend on the rest of its batch.

    Example:
        >>> import torch
        >>> SmallConvNet(10, in_channels=1)(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, width: int = 16, normed: bool = False
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("width", width, minimum=1)
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, padding=1)
        self.feature_dim = 4 * width
        self.fc: nn.Module = (
            NormedLinear(4 * width, num_classes) if normed else nn.Linear(4 * width, num_classes)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
