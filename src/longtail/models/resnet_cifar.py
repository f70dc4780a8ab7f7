"""ResNet for CIFAR-sized images (He et al., 2016, §4.2), as used by the long-tail literature.

ResNet-32 is ``[5, 5, 5]`` basic blocks of 16, 32 and 64 channels with option-A (parameter-free)
shortcuts and Kaiming-normal initialisation, the network of the LDAM-DRW and MM repositories.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longtail._labels import check_int
from longtail.models.normed import NormedLinear

__all__ = ["ResNetCifar", "resnet32"]


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 in space, zero-pad the new channels (no parameters)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = _ShortcutA((planes - in_planes) // 2)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR ResNet with ``6n + 2`` layers: three stages of ``n`` basic blocks.

    Args:
        num_classes: Number of output classes.
        blocks: Blocks per stage (``5`` gives ResNet-32, ``3`` ResNet-20).
        in_channels: Image channels (1 for Fashion-MNIST, 3 for CIFAR).
        width: Channels of the first stage (16 in the paper; the stages have ``width``,
            ``2·width`` and ``4·width``). Must be even (option-A shortcuts pad channels).
        normed: Use a cosine classifier (:class:`~longtail.models.NormedLinear`) instead of a
            linear one, as LDAM and MM do.

    Works on any image size of at least 8 pixels (global average pooling at the end).
    ``features(x)`` returns the pooled ``4·width`` features; ``forward`` the logits.

    Example:
        >>> import torch
        >>> net = resnet32(num_classes=10, in_channels=1)
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> sum(p.numel() for p in resnet32(num_classes=10).parameters())  # 0.46M, as published
        464154
    """

    def __init__(
        self,
        num_classes: int,
        blocks: int = 5,
        in_channels: int = 3,
        width: int = 16,
        normed: bool = False,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("blocks", blocks, minimum=1)
        check_int("in_channels", in_channels, minimum=1)
        check_int("width", width, minimum=2)
        if width % 2:
            raise ValueError(f"Expected argument `width` to be even, but got {width}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(_BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.feature_dim = in_planes
        self.fc: nn.Module = (
            NormedLinear(in_planes, num_classes) if normed else nn.Linear(in_planes, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of shape ``(N, 4·width)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def resnet32(
    num_classes: int, in_channels: int = 3, width: int = 16, normed: bool = False
) -> ResNetCifar:
    """ResNet-32 (``[5, 5, 5]`` blocks) of the LDAM-DRW / MM papers."""
    return ResNetCifar(num_classes, 5, in_channels, width, normed)
