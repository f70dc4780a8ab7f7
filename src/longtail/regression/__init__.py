"""Deep imbalanced regression: label bins and shot regions, LDS / FDS, Balanced MSE, Group-DIR,
DIR metrics and data.

>>> import torch
>>> from longtail import regression as ltr
>>> y = torch.tensor([20.0, 21.0, 21.0, 35.0, 60.0])
>>> g = ltr.group_labels(y, num_groups=4)            # equal-width groups over the range
>>> w = ltr.lds_weights(y, bins=1.0)                 # LDS weights, mean 1
>>> head, crit = ltr.GroupDIRHead(16, 4), ltr.GroupDIRLoss(4)
>>> h = torch.randn(5, 16)
>>> logits, pred, _ = head(h, g)
>>> out = crit(h, logits, pred, y, g, weight=w)
>>> sorted(out.as_dict())
['contrastive', 'loss', 'mse', 'soft']
"""

from .binning import (
    GROUP_EDGES,
    MAX_BINS,
    REGIONS,
    ShotRegions,
    assign_regions,
    auto_bin_width,
    bin_count,
    bin_index,
    check_bin_count,
    equal_width_bins,
    fixed_width_bins,
    group_edges,
    group_labels,
    max_groups,
    regions_of_counts,
    shot_regions,
)
from .data import (
    DIAMONDS_LEVELS,
    IMAGE_SPLIT_FILES,
    AgeDIRDataset,
    DIRSplit,
    STSBSplit,
    TabularDIR,
    dir_split,
    load_agedb_dir,
    load_csv_table,
    load_diamonds,
    load_image_dir,
    load_imdb_wiki_dir,
    load_stsb_dir,
    read_image,
    tabular_dir,
)
from .group_dir import (
    GroupContrastiveLoss,
    GroupDIRHead,
    GroupDIRLoss,
    GroupDIRLossOutput,
    descending_soft_labels,
    group_contrastive_loss,
    routing_diagnostics,
)
from .losses import (
    BMCLoss,
    BNILoss,
    GAILoss,
    WeightedL1Loss,
    WeightedMSELoss,
    bmc_loss,
    bni_buckets,
    bni_loss,
    gai_loss,
    weighted_l1_loss,
    weighted_mse_loss,
)
from .metrics import geometric_mean_error, per_bin_mae, regression_metrics
from .smoothing import FDS, KERNELS, kernel_window, lds_weights

__all__ = [
    "DIAMONDS_LEVELS",
    "FDS",
    "GROUP_EDGES",
    "IMAGE_SPLIT_FILES",
    "KERNELS",
    "MAX_BINS",
    "REGIONS",
    "AgeDIRDataset",
    "BMCLoss",
    "BNILoss",
    "DIRSplit",
    "GAILoss",
    "GroupContrastiveLoss",
    "GroupDIRHead",
    "GroupDIRLoss",
    "GroupDIRLossOutput",
    "STSBSplit",
    "ShotRegions",
    "TabularDIR",
    "WeightedL1Loss",
    "WeightedMSELoss",
    "assign_regions",
    "auto_bin_width",
    "bin_count",
    "bin_index",
    "bmc_loss",
    "bni_buckets",
    "bni_loss",
    "check_bin_count",
    "descending_soft_labels",
    "dir_split",
    "equal_width_bins",
    "fixed_width_bins",
    "gai_loss",
    "geometric_mean_error",
    "group_contrastive_loss",
    "group_edges",
    "group_labels",
    "kernel_window",
    "lds_weights",
    "load_agedb_dir",
    "load_csv_table",
    "load_diamonds",
    "load_image_dir",
    "load_imdb_wiki_dir",
    "load_stsb_dir",
    "max_groups",
    "per_bin_mae",
    "read_image",
    "regions_of_counts",
    "regression_metrics",
    "routing_diagnostics",
    "shot_regions",
    "tabular_dir",
    "weighted_l1_loss",
    "weighted_mse_loss",
]
