"""A small convolutional network without batch statistics (tests, DDP checks, quick looks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longtail._labels import check_int
from longtail.models.normed import NormedLinear

__all__ = ["ConvNet5", "SmallConvNet"]


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


class ConvNet5(nn.Module):
    """Five 3×3 conv layers with BatchNorm: ``width, width`` | pool | ``2·width, 2·width`` |
    pool | ``4·width``, then global average pooling and a linear or cosine classifier.

    The plain VGG-style network that long-tail work on small images uses when a CIFAR ResNet
    is too slow (with ``width = 32``: 32-32-64-64-128 channels, 128 pooled features, 0.14M
    parameters). Its features are four times wider than those of a ResNet-20 of width 8 at
    about the same cost per image, which the cosine classifiers of LDAM and MM need: on 32
    features the margin losses trade the rarest classes against the most confusable ones.

    Example:
        >>> import torch
        >>> net = ConvNet5(10, in_channels=1)
        >>> net(torch.zeros(2, 1, 28, 28)).shape, net.feature_dim
        (torch.Size([2, 10]), 128)
    """

    def __init__(
        self, num_classes: int, in_channels: int = 3, width: int = 32, normed: bool = False
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("in_channels", in_channels, minimum=1)
        check_int("width", width, minimum=1)
        chans = (width, width, 2 * width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        prev = in_channels
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(prev, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if i in (1, 3):
                layers.append(nn.MaxPool2d(2))
            prev = c
        self.body = nn.Sequential(*layers)
        self.feature_dim = prev
        self.fc: nn.Module = (
            NormedLinear(prev, num_classes) if normed else nn.Linear(prev, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of shape ``(N, 4·width)``."""
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
