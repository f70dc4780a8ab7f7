"""longtail: losses, rebalancing, data and benchmarks for learning from imbalanced data.

>>> import longtail as lt
>>> counts = lt.imbalance_counts(n_max=5000, num_classes=10, ratio=100, profile="exp")
>>> crit = lt.create_loss("ldam", class_counts=counts)
"""

from . import functional
from .data import imbalance_counts, imbalanced_indices, imbalanced_subset
from .engine import METHODS, TrainConfig, make_config, train
from .losses import (
    BalancedSoftmaxLoss,
    CrossEntropyLoss,
    FocalLoss,
    LDAMLoss,
    LogitAdjustedLoss,
    LossInfo,
    MaxMarginLoss,
    MMLDAMLoss,
    SigmoidFocalLoss,
    VSLoss,
    create_loss,
    get_loss_info,
    list_losses,
    register_loss,
)
from .losses.logit_adjustment import adjust_logits
from .metrics import classification_metrics
from .models import NormedLinear, create_model
from .weighting import ClassBalancedSampler, DeferredResampler, DeferredReweighting, class_weights

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "BalancedSoftmaxLoss",
    "ClassBalancedSampler",
    "CrossEntropyLoss",
    "DeferredResampler",
    "DeferredReweighting",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "LossInfo",
    "MMLDAMLoss",
    "MaxMarginLoss",
    "NormedLinear",
    "SigmoidFocalLoss",
    "TrainConfig",
    "VSLoss",
    "__version__",
    "adjust_logits",
    "class_weights",
    "classification_metrics",
    "create_loss",
    "create_model",
    "functional",
    "get_loss_info",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
    "list_losses",
    "make_config",
    "register_loss",
    "train",
]
