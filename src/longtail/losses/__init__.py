"""Losses for imbalanced classification, each a function plus a thin ``nn.Module``, by name."""

from . import cross_entropy, focal, ldam, logit_adjustment, max_margin  # noqa: F401 - registers
from ._registry import LossInfo, create_loss, get_loss_info, list_losses, register_loss
from .cross_entropy import CrossEntropyLoss
from .focal import FocalLoss, SigmoidFocalLoss
from .ldam import LDAMLoss
from .logit_adjustment import BalancedSoftmaxLoss, LogitAdjustedLoss, VSLoss
from .max_margin import MaxMarginLoss, MMLDAMLoss

__all__ = [
    "BalancedSoftmaxLoss",
    "CrossEntropyLoss",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "LossInfo",
    "MMLDAMLoss",
    "MaxMarginLoss",
    "SigmoidFocalLoss",
    "VSLoss",
    "create_loss",
    "get_loss_info",
    "list_losses",
    "register_loss",
]
