"""Data utilities: long-tailed class profiles and imbalanced subsets of labelled data."""

from longtail.data.profiles import (
    PROFILES,
    ImbalancedSubset,
    imbalance_counts,
    imbalanced_indices,
    imbalanced_subset,
)

__all__ = [
    "PROFILES",
    "ImbalancedSubset",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
]
