"""The dataset registry: every dataset longtail knows by name, defined once.

The loaders, the training engines, the bench runner, the report and the command line read this
table for a dataset's display label, its task, its class names and its default head size; a new
dataset is one :func:`register_dataset` call. Files given by path (an ``.npz`` image archive, a
``.csv`` table) are not registered: they carry their own names.

Example:
    >>> from longtail.data.registry import get_dataset, list_datasets
    >>> get_dataset("fashion-mnist").label, get_dataset("fashion-mnist").n_max
    ('Fashion-MNIST', 6000)
    >>> list_datasets(task="regression")
    ['diamonds', 'agedb', 'imdb-wiki']
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = [
    "DatasetInfo",
    "dataset_label",
    "get_dataset",
    "list_datasets",
    "path_stem",
    "register_dataset",
]


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset.

    Attributes:
        name: Registry name (lower case, as on the command line), e.g. ``"cifar10"``.
        label: Display name in tables and plots, e.g. ``"CIFAR-10"``.
        task: ``"classification"``, ``"regression"`` or ``"multilabel"``.
        n_max: Training examples of the largest class in the full training set (the default
            head size of a long-tailed subset: CIFAR-10 5000, CIFAR-100 500, Fashion-MNIST and
            MNIST 6000); ``None`` for regression data.
        num_classes: Number of classes (classification), else ``None``.
        class_names: Class names in label order (classification), or ``()`` when unnamed.
        target: The regression target column (regression), else ``None``.
        bin_width: Width of the fine label bins in target units (regression), else ``None``.
        aliases: Other spellings accepted for ``name`` (``"cifar-10"``).
        description: One line for listings.
    """

    name: str
    label: str
    task: str
    n_max: int | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    target: str | None = None
    bin_width: float | None = None
    aliases: tuple[str, ...] = ()
    description: str = ""


_REGISTRY: dict[str, DatasetInfo] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add ``info`` to the registry (a name or alias may be registered once)."""
    for key in (info.name, *info.aliases):
        if key in _ALIASES:
            raise ValueError(f"Expected a new dataset name, but {key!r} is already registered.")
    _REGISTRY[info.name] = info
    for key in (info.name, *info.aliases):
        _ALIASES[key] = info.name
    return info


def list_datasets(task: str | None = None) -> list[str]:
    """Registered names in registration order, optionally only those of one ``task``."""
    return [n for n, d in _REGISTRY.items() if task is None or d.task == task]


def get_dataset(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name`` (or an alias, case-insensitive).

    Raises:
        ValueError: for an unknown name, naming the close matches.
    """
    key = str(name).lower()
    if key in _ALIASES:
        return _REGISTRY[_ALIASES[key]]
    close = difflib.get_close_matches(key, list(_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"Expected `dataset` to be one of {', '.join(_REGISTRY)} or a file path, but got "
        f"{name!r}.{hint}"
    )


def dataset_label(name: str) -> str:
    """Display label of a registered dataset; a file path or unknown name shows its stem, a
    folder path (``data/pets/``) its last folder's name."""
    try:
        return get_dataset(name).label
    except ValueError:
        return path_stem(name)


def path_stem(name: str) -> str:
    """A dataset given by path as a short name: a file's stem (``/data/faces.npz``: faces), a
    folder's name (``data/pets/``: pets); a bare name as it is."""
    import os
    from pathlib import Path

    text = str(name)
    if text.lower().endswith((".npz", ".csv")):
        return Path(text).stem
    if "/" in text or os.sep in text:
        return Path(text.rstrip("/" + os.sep)).name or text
    return text


_FASHION = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CIFAR10 = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

register_dataset(
    DatasetInfo(
        "fashion-mnist",
        "Fashion-MNIST",
        "classification",
        n_max=6000,
        num_classes=10,
        class_names=_FASHION,
        aliases=("fashion_mnist", "fmnist"),
        description="Zalando's 28x28 grey-scale clothing images, 10 classes (Xiao et al. 2017)",
    )
)
register_dataset(
    DatasetInfo(
        "mnist",
        "MNIST",
        "classification",
        n_max=6000,
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        description="28x28 hand-written digits, 10 classes (LeCun et al. 1998)",
    )
)
register_dataset(
    DatasetInfo(
        "cifar10",
        "CIFAR-10",
        "classification",
        n_max=5000,
        num_classes=10,
        class_names=_CIFAR10,
        aliases=("cifar-10",),
        description="32x32 colour images, 10 classes (Krizhevsky 2009)",
    )
)
register_dataset(
    DatasetInfo(
        "cifar100",
        "CIFAR-100",
        "classification",
        n_max=500,
        num_classes=100,
        aliases=("cifar-100",),
        description="32x32 colour images, 100 classes (Krizhevsky 2009)",
    )
)
register_dataset(
    DatasetInfo(
        "diamonds",
        "diamonds",
        "regression",
        target="price",
        bin_width=100.0,
        description="ggplot2 diamonds (53,940 rows), price in US$, strongly right-skewed",
    )
)
register_dataset(
    DatasetInfo(
        "agedb",
        "AgeDB-DIR",
        "regression",
        target="age",
        bin_width=1.0,
        description="AgeDB-DIR (Yang et al. 2021): face images, age in years",
    )
)
register_dataset(
    DatasetInfo(
        "imdb-wiki",
        "IMDB-WIKI-DIR",
        "regression",
        target="age",
        bin_width=1.0,
        description="IMDB-WIKI-DIR (Yang et al. 2021): face images, age in years",
    )
)
register_dataset(
    DatasetInfo(
        "fashion-mnist-mosaic-lt",
        "Fashion-MNIST mosaics (multi-label, LT)",
        "multilabel",
        n_max=2000,
        num_classes=10,
        class_names=_FASHION,
        aliases=("fmnist-mosaic-lt",),
        description="2-4 Fashion-MNIST images in a 2x2 grid (56x56), labels the classes present; "
        "training label counts exactly on an exp profile (2000 to 10), balanced val and test",
    )
)
