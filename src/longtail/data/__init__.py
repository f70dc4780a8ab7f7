"""Data utilities: long-tailed profiles, imbalanced subsets, image datasets and augmentation."""

from longtail.data.cifar import load_cifar
from longtail.data.folders import load_image_folder
from longtail.data.idx import MNIST_VARIANTS, load_mnist, read_idx
from longtail.data.images import (
    DATASETS,
    ImageDataset,
    load_image_dataset,
    normalize,
    random_crop_flip,
)
from longtail.data.npz import load_npz
from longtail.data.profiles import (
    PROFILES,
    ImbalancedSubset,
    imbalance_counts,
    imbalanced_indices,
    imbalanced_subset,
)

__all__ = [
    "DATASETS",
    "MNIST_VARIANTS",
    "PROFILES",
    "ImageDataset",
    "ImbalancedSubset",
    "imbalance_counts",
    "imbalanced_indices",
    "imbalanced_subset",
    "load_cifar",
    "load_image_dataset",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "normalize",
    "random_crop_flip",
    "read_idx",
]
