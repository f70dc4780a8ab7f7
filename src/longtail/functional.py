"""Every longtail loss as a function, in the manner of ``torch.nn.functional``."""

from .losses._adjusted import adjusted_cross_entropy
from .losses.cross_entropy import cross_entropy
from .losses.focal import focal_loss, sigmoid_focal_loss
from .losses.ldam import ldam_loss, ldam_margins
from .losses.logit_adjustment import (
    adjust_logits,
    balanced_softmax_loss,
    log_prior,
    logit_adjusted_loss,
    vs_factors,
    vs_loss,
)
from .losses.max_margin import max_margin_loss, mm_ldam_loss, mm_margin

__all__ = [
    "adjust_logits",
    "adjusted_cross_entropy",
    "balanced_softmax_loss",
    "cross_entropy",
    "focal_loss",
    "ldam_loss",
    "ldam_margins",
    "log_prior",
    "logit_adjusted_loss",
    "max_margin_loss",
    "mm_ldam_loss",
    "mm_margin",
    "sigmoid_focal_loss",
    "vs_factors",
    "vs_loss",
]
