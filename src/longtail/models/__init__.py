"""Model components for long-tailed learning."""

from longtail.models.normed import NormedLinear

__all__ = ["NormedLinear"]
