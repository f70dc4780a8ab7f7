"""longtail: losses, rebalancing, data and benchmarks for learning from imbalanced data.

>>> import longtail as lt
>>> counts = lt.imbalance_counts(n_max=5000, num_classes=10, ratio=100, profile="exp")
>>> crit = lt.create_loss("ldam", class_counts=counts)
"""

from . import functional, losses, metrics_streaming
from .data import imbalance_counts, imbalanced_indices, imbalanced_subset
from .engine import METHODS, TrainConfig, make_config, train
from .losses import (
    LossInfo,
    create_loss,
    create_loss_for_counts,
    get_loss_info,
    list_losses,
    register_loss,
)
from .losses.logit_adjustment import adjust_logits
from .metrics import classification_metrics
from .metrics_streaming import ClassificationMetrics
from .models import NormedLinear, create_model
from .weighting import (
    ClassBalancedSampler,
    DeferredResampler,
    DeferredReweighting,
    MultiLabelClassAwareSampler,
    class_weights,
)

# Every registered loss module (FocalLoss, LDAMLoss, ...), from the registry: a new loss file is
# exported here without an edit.
globals().update(losses.module_exports())

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "ClassBalancedSampler",
    "ClassificationMetrics",
    "DeferredResampler",
    "DeferredReweighting",
    "LossInfo",
    "MultiLabelClassAwareSampler",
    "NormedLinear",
    "TrainConfig",
    "__version__",
    "adjust_logits",
    "class_weights",
    "classification_metrics",
    "create_loss",
    "create_loss_for_counts",
    "create_model",
    "functional",
    "get_loss_info",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
    "list_losses",
    "losses",
    "make_config",
    "metrics_streaming",
    "register_loss",
    "train",
]
__all__ += losses.module_exports()  # every registered loss module, from the registry
