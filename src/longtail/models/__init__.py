"""Model components for long-tailed learning: CIFAR ResNets, a cosine classifier, small CNNs."""

from __future__ import annotations

import difflib

from torch import nn

from longtail.models.harmonic import HarmonicHead
from longtail.models.normed import NormedLinear
from longtail.models.resnet_cifar import ResNetCifar, resnet32
from longtail.models.small import ConvNet5, SmallConvNet

__all__ = [
    "MODELS",
    "ConvNet5",
    "HarmonicHead",
    "NormedLinear",
    "ResNetCifar",
    "SmallConvNet",
    "create_model",
    "resnet32",
]

MODELS = ("resnet32", "resnet20", "cnn5", "small-cnn")


def create_model(
    name: str, num_classes: int, in_channels: int = 3, width: int = 16, normed: bool = False
) -> nn.Module:
    """Build a model by name: ``"resnet32"``, ``"resnet20"``, ``"cnn5"`` or ``"small-cnn"``.

    Example:
        >>> create_model("resnet20", 10, in_channels=1, width=8).feature_dim
        32
    """
    if name == "resnet32":
        return ResNetCifar(num_classes, 5, in_channels, width, normed)
    if name == "resnet20":
        return ResNetCifar(num_classes, 3, in_channels, width, normed)
    if name == "cnn5":
        return ConvNet5(num_classes, in_channels, width, normed)
    if name == "small-cnn":
        return SmallConvNet(num_classes, in_channels, width, normed)
    close = difflib.get_close_matches(str(name), MODELS, n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Expected argument `model` to be one of {', '.join(MODELS)}, but got {name!r}.{hint}"
    )
