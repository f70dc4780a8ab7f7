"""Multi-label image data sets: the in-memory container, a long-tailed mosaic builder, ``.npz``.

No package registry here ships a small multi-label *image* set, so longtail builds one from real
images (:func:`mosaic_multilabel`): each example is a ``g × g`` grid of cells (2 × 2 by
default) holding between ``items[0]`` and ``items[1]`` images of a single-label set, the other
cells blank (0); its labels are the set of classes present. How:

1. **Long-tailed training labels, exactly.** Label ``c`` is positive in exactly
   ``n_c = imbalance_counts(n_max, C, ratio, profile)[c]`` training examples (class 0 the head,
   class ``C - 1`` the tail). The training split has ``N = round(Σ n_c / labels_per_example)``
   examples; their label-set sizes (1 to ``min(items[1], C)`` labels) are ``1`` plus
   ``Σ n_c − N`` extra labels spread uniformly at random over the examples, and the labels are
   dealt to the examples by a configuration model: the ``n_c`` "stubs" of every label shuffled
   onto the examples' slots, then degree-preserving swaps (two examples exchange a label) until
   no example holds a label twice. Every label count is exact; which labels come together is
   random. A label set of ``s`` labels must have ``N >= n_max``: with at least two labels per
   example an exp profile of ratio 100 over 10 labels would put the head label in 80% or more
   of the examples, hence label sets of one label too (see ``items`` below).
2. **Balanced validation and test labels.** ``val_size`` and ``test_size`` label sets have sizes
   of the training split's distribution and uniformly drawn labels: every label is about
   equally frequent there, as in the balanced test sets of single-label long-tailed
   benchmarks. Per-label thresholds tuned on the validation split meet test data of the same
   distribution.
3. **Mosaics.** A mosaic of a label set of ``s`` labels holds ``k`` images, ``k`` uniform in
   ``max(items[0], s) .. items[1]``: one image of each label, then images of labels of the set
   again (two T-shirts and a bag: labels {T-shirt, Bag}). Images are drawn per class without
   replacement, training and validation images from the source's *training* images (no image is
   used twice: the validation split shares no image with the training split), test images from
   the source's *test* images, and put in random cells.

Everything is drawn from one ``numpy.random.Generator`` seeded with ``seed``, in a fixed order,
so the same arguments build the same bytes. :data:`FASHION_MNIST_MOSAIC_LT` holds the arguments
of the registered ``"fashion-mnist-mosaic-lt"``, built from Fashion-MNIST.

A user's own multi-label images load from an ``.npz`` file (:func:`load_multilabel_npz`):
``x_train``, ``y_train`` (``(N, C)`` multi-hot), ``x_test``, ``y_test``, optionally ``x_val``,
``y_val``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import expected
from longtail.data.dataset import ImageDataset
from longtail.data.multilabel import as_multihot, cooccurrence_summary
from longtail.data.npz import images_nchw, read_npz_arrays
from longtail.data.profiles import PROFILES, check_ratio, imbalance_counts
from longtail.data.registry import get_dataset, list_datasets

__all__ = [
    "FASHION_MNIST_MOSAIC_LT",
    "MULTILABEL_DATASETS",
    "MultiLabelImages",
    "load_multilabel_dataset",
    "load_multilabel_npz",
    "mosaic_multilabel",
]

_SPLITS = ("train", "val", "test")


@dataclass(repr=False)
class MultiLabelImages:
    """A multi-label image data set held in memory.

    Attributes:
        name: The data set's name (a registered name, or the stem of an ``.npz`` file).
        x_train, x_val, x_test: ``uint8`` images ``(N, ch, H, W)``; ``x_val`` may be ``None``
            (the file had no validation split: the engine sets one apart from training).
        y_train, y_val, y_test: ``uint8`` multi-hot labels ``(N, C)`` (0/1).
        label_names: A name per label (``C`` strings).
        construction: How the set was made (JSON-ready), e.g. the mosaic builder's arguments,
            its target and obtained label counts and their co-occurrence summary.

    Raises:
        ValueError: wrong dtypes or shapes, images of different shapes across splits, labels
            other than 0/1, or ``label_names`` of the wrong length.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    label_names: tuple[str, ...] = ()
    construction: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise expected("x_val and y_val", "given together (both or neither)", "one of them")
        num_labels = None
        for split in _SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is None:
                continue
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
                got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x)
                raise expected(f"x_{split}", "a uint8 tensor (N, ch, H, W)", got)
            if not isinstance(y, torch.Tensor) or y.dim() != 2 or y.dtype != torch.uint8:
                got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y)
                raise expected(f"y_{split}", "a uint8 multi-hot tensor (N, C)", got)
            if len(y) != len(x):
                raise expected(f"y_{split}", f"{len(x)} rows (one per image)", f"{len(y)}")
            if y.numel() and int(y.max()) > 1:
                raise expected(f"y_{split}", "0/1 labels (multi-hot)", f"value {int(y.max())}")
            if num_labels is None:
                num_labels = y.shape[1]
            elif y.shape[1] != num_labels:
                raise expected(f"y_{split}", f"{num_labels} labels, as y_train", y.shape[1])
            if x.shape[1:] != self.x_train.shape[1:]:
                raise expected(
                    f"x_{split}",
                    f"images of x_train's shape {tuple(self.x_train.shape[1:])}",
                    tuple(x.shape[1:]),
                )
        if not self.label_names:
            self.label_names = tuple(str(c) for c in range(self.num_labels))
        self.label_names = tuple(str(n) for n in self.label_names)
        if len(self.label_names) != self.num_labels:
            raise expected("label_names", f"{self.num_labels} names", len(self.label_names))

    @property
    def num_labels(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        val = f", val={len(self.x_val)}" if self.x_val is not None else ""
        return (
            f"{type(self).__name__}(name={self.name!r}, train={len(self.x_train)} x "
            f"{tuple(self.x_train.shape[1:])}{val}, test={len(self.x_test)}, "
            f"num_labels={self.num_labels})"
        )


# ------------------------------------------------------------------------------- the mosaics
def _sizes(rng: np.random.Generator, n: int, total: int | None, p: float, most: int) -> np.ndarray:
    """Label-set sizes ``1 + extra``, each row having ``most - 1`` possible extras: exactly
    ``total - n`` extras over all rows (``total`` given), else each taken with probability ``p``."""
    slots = most - 1
    if total is None:
        return 1 + (rng.random((n, slots)) < p).sum(1)
    chosen = rng.permutation(n * slots)[: total - n]
    return 1 + np.bincount(chosen // slots, minlength=n) if slots else np.ones(n, np.int64)


def _exact_label_sets(
    rng: np.random.Generator, sizes: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Label sets with row ``i`` holding ``sizes[i]`` distinct labels and label ``c`` in exactly
    ``counts[c]`` rows: a configuration model (row and label "stubs" matched at random), then
    degree-preserving swaps until no row holds a label twice."""
    n, c = len(sizes), len(counts)
    rows = np.repeat(np.arange(n), sizes)
    labels = rng.permutation(np.repeat(np.arange(c), counts))
    held = np.zeros((n, c), dtype=np.int64)
    np.add.at(held, (rows, labels), 1)
    tries = 0
    while True:
        twice = np.flatnonzero(held[rows, labels] > 1)
        if not twice.size:
            break
        for e in twice:
            i, a = rows[e], labels[e]
            if held[i, a] < 2:
                continue
            for _ in range(64):
                tries += 1
                f = int(rng.integers(len(rows)))
                j, b = rows[f], labels[f]
                if j != i and b != a and held[i, b] == 0 and held[j, a] == 0:
                    held[i, a] -= 1
                    held[j, b] -= 1
                    held[i, b] += 1
                    held[j, a] += 1
                    labels[e], labels[f] = b, a
                    break
            if tries > 200 * len(rows) + 10_000:
                raise expected(
                    "the label counts",
                    "realisable by label sets of these sizes (the head label needs fewer rows "
                    "than there are examples: lower n_max or labels_per_example)",
                    f"counts {counts.tolist()} over {n} examples",
                )
    return held.astype(bool)


def _cells(
    rng: np.random.Generator, y: np.ndarray, items: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(row, class) of every image of the mosaics of label sets ``y``: each label once, then
    images of labels of the set drawn again until the mosaic holds ``k`` images, ``k`` uniform
    in ``max(items[0], |set|) .. items[1]``."""
    n = len(y)
    sizes = y.sum(1)
    k = np.maximum(items[0], sizes) + (
        rng.random(n) * (items[1] - np.maximum(items[0], sizes) + 1)
    ).astype(np.int64)
    rows, labels = np.nonzero(y)  # row-major: each row's labels together, in increasing order
    starts = np.cumsum(sizes) - sizes
    extra_rows = np.repeat(np.arange(n), k - sizes)
    pick = (rng.random(len(extra_rows)) * sizes[extra_rows]).astype(np.int64)
    extra_labels = labels[starts[extra_rows] + pick]
    all_rows = np.concatenate([rows, extra_rows])
    all_labels = np.concatenate([labels, extra_labels])
    order = np.argsort(all_rows, kind="stable")
    return all_rows[order], all_labels[order]


class _Queues:
    """The source images of each class in a seeded order, handed out without replacement."""

    def __init__(self, labels: np.ndarray, c: int, rng: np.random.Generator, what: str) -> None:
        self.queues = [rng.permutation(np.flatnonzero(labels == k)) for k in range(c)]
        self.next = [0] * c
        self.what = what

    def take(self, label: int, n: int, asked: str) -> np.ndarray:
        start, q = self.next[label], self.queues[label]
        if start + n > len(q):
            raise expected(
                asked,
                f"a set that needs at most the {len(q)} {self.what} images of class {label}",
                f"one that needs {start + n} of them (fewer examples, or a smaller n_max)",
            )
        self.next[label] = start + n
        return q[start : start + n]


def _compose(
    y: np.ndarray,
    items: tuple[int, int],
    queues: _Queues,
    images: np.ndarray,
    grid: int,
    rng: np.random.Generator,
    asked: str,
) -> np.ndarray:
    """The mosaics of label sets ``y``: their images (:func:`_cells`) in random cells."""
    n, c = y.shape
    _, ch, h, w = images.shape
    rows, labels = _cells(rng, y, items)
    order = np.argsort(rng.random((n, grid * grid)), axis=1)  # a random order of the cells
    starts = np.searchsorted(rows, np.arange(n))
    cell = order[rows, np.arange(len(rows)) - starts[rows]]
    source = np.empty(len(rows), dtype=np.int64)
    for label in range(c):
        mine = np.flatnonzero(labels == label)
        source[mine] = queues.take(label, len(mine), asked)
    canvas = np.zeros((n, ch, grid, h, grid, w), dtype=np.uint8)
    canvas[rows, :, cell // grid, :, cell % grid, :] = images[source]
    return canvas.reshape(n, ch, grid * h, grid * w)


def _uniform_label_sets(
    rng: np.random.Generator, n: int, c: int, p: float, most: int
) -> np.ndarray:
    """``n`` label sets of :func:`_sizes` (independent extras), their labels uniform."""
    sizes = _sizes(rng, n, None, p, most)
    ranks = np.argsort(rng.random((n, c)), axis=1)  # a random order of the labels per row
    rows = np.repeat(np.arange(n), sizes)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    y = np.zeros((n, c), dtype=bool)
    y[rows, ranks[rows, within]] = True
    return y


def _mosaic_plan(
    c: int, grid: int, items: Any, counts: np.ndarray, labels_per_example: Any
) -> tuple[int, int, int, int]:
    """Check :func:`mosaic_multilabel`'s ``items`` and ``labels_per_example`` against the
    ``grid`` and the training label ``counts``; return ``(fewest images, most images, most
    labels of an example, training examples)``."""
    if not (isinstance(items, tuple | list) and len(items) == 2):
        raise expected("items", "a pair (fewest, most) of images per mosaic", repr(items))
    lo, hi = (check_int("items", v, minimum=1) for v in items)
    if not lo <= hi <= grid * grid:
        raise expected("items", f"1 <= fewest <= most <= {grid * grid} (the cells)", items)
    most = min(hi, c)
    total, n_max = int(counts.sum()), int(counts.max())
    if isinstance(labels_per_example, bool) or not isinstance(labels_per_example, int | float):
        raise expected("labels_per_example", "a number", repr(labels_per_example))
    n = round(total / labels_per_example) if labels_per_example > 0 else 0
    if not (n_max <= n <= total and n * most >= total):
        raise expected(
            "labels_per_example",
            f"between 1 and {min(total / n_max, most):.3g} for these label counts "
            f"({counts.tolist()}: the head label is in at most every example, an example has "
            f"at most {most} labels)",
            repr(labels_per_example),
        )
    return lo, hi, most, n


def _checked_mosaic_args(grid, ratio, profile, n_max, val_size, test_size, seed) -> tuple:
    """The checked numeric arguments of :func:`mosaic_multilabel` (``profile`` is only checked),
    in the order the builder always checked them."""
    grid = check_int("grid", grid, minimum=1)
    ratio = check_ratio(ratio)
    if profile not in PROFILES:
        raise expected("profile", f"one of {PROFILES}", repr(profile))
    return (
        grid,
        ratio,
        check_int("n_max", n_max, minimum=1),
        check_int("val_size", val_size, minimum=1),
        check_int("test_size", test_size, minimum=1),
        check_int("seed", seed, minimum=0),
    )


def mosaic_multilabel(
    source: ImageDataset,
    *,
    ratio: float = 100.0,
    profile: str = "exp",
    n_max: int = 1500,
    labels_per_example: float = 1.5,
    items: tuple[int, int] = (2, 4),
    val_size: int = 1000,
    test_size: int = 2000,
    grid: int = 2,
    seed: int = 0,
    name: str = "mosaic",
    label_names: tuple[str, ...] = (),
) -> MultiLabelImages:
    """A long-tailed multi-label image set of mosaics of a single-label set's images.

    See the module docstring for the construction. Training and validation images come from
    ``source``'s training images, test images from its test images; no source image is used
    twice.

    Args:
        source: The single-label images (e.g. ``load_image_dataset("fashion-mnist")``).
        ratio, profile, n_max: Label ``c`` is positive in exactly
            ``imbalance_counts(n_max, C, ratio, profile)[c]`` training examples.
        labels_per_example: The mean number of labels of a training example: the training
            split has ``round(Σ n_c / labels_per_example)`` examples (at least ``n_max``: the
            head label is in ``n_max`` of them). Validation and test label sets have sizes of
            the same distribution.
        items: The fewest and most images of a mosaic (``1 <= items[0] <= items[1] <=
            grid²``); a label set has at most ``min(items[1], C)`` labels.
        val_size, test_size: Examples of the (balanced) validation and test splits.
        grid: Cells per side; images are ``grid·H × grid·W``.
        seed: The seed of every draw.
        name, label_names: The set's name and its labels' names (default the source's labels).

    Returns:
        A :class:`MultiLabelImages` whose ``construction`` holds these arguments, the training
        label counts and the co-occurrence summaries
        (:func:`~longtail.data.multilabel.cooccurrence_summary`) of each split.

    Raises:
        ValueError: bad arguments, label counts that label sets of these sizes cannot hold, or
            a class whose source images run out.
    """
    c = source.num_classes
    grid, ratio, n_max, val_size, test_size, seed = _checked_mosaic_args(
        grid, ratio, profile, n_max, val_size, test_size, seed
    )
    counts = np.asarray(imbalance_counts(n_max, c, ratio, profile), dtype=np.int64)
    total = int(counts.sum())
    lo, hi, most, n = _mosaic_plan(c, grid, items, counts, labels_per_example)

    rng = np.random.default_rng(seed)
    train_queues = _Queues(source.y_train.numpy(), c, rng, "training")
    test_queues = _Queues(source.y_test.numpy(), c, rng, "test")
    y_train = _exact_label_sets(rng, _sizes(rng, n, total, 0.0, most), counts)
    p = (total - n) / (n * (most - 1)) if most > 1 else 0.0
    y_val = _uniform_label_sets(rng, val_size, c, p, most)
    y_test = _uniform_label_sets(rng, test_size, c, p, most)
    x_src_train, x_src_test = source.x_train.numpy(), source.x_test.numpy()
    x_train = _compose(y_train, (lo, hi), train_queues, x_src_train, grid, rng, "n_max")
    x_val = _compose(y_val, (lo, hi), train_queues, x_src_train, grid, rng, "val_size")
    x_test = _compose(y_test, (lo, hi), test_queues, x_src_test, grid, rng, "test_size")
    construction = {
        "builder": "mosaic_multilabel",
        "source": source.name,
        "ratio": ratio,
        "profile": profile,
        "n_max": n_max,
        "labels_per_example": labels_per_example,
        "items": [lo, hi],
        "val_size": val_size,
        "test_size": test_size,
        "grid": grid,
        "seed": seed,
        "train_counts": counts.tolist(),
        "source_images_used": {
            "train_and_val": sum(train_queues.next),
            "test": sum(test_queues.next),
        },
        **{
            f"{split}_summary": cooccurrence_summary(y, np.arange(c))
            for split, y in (("train", y_train), ("val", y_val), ("test", y_test))
        },
    }
    names = label_names or tuple(str(k) for k in source.classes)
    return MultiLabelImages(
        name=name,
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train.astype(np.uint8)),
        x_val=torch.from_numpy(x_val),
        y_val=torch.from_numpy(y_val.astype(np.uint8)),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test.astype(np.uint8)),
        label_names=tuple(names),
        construction=construction,
    )


#: The arguments of the registered ``"fashion-mnist-mosaic-lt"``: 2-4 Fashion-MNIST images in a
#: 2 × 2 grid (56 × 56); training label counts on the exp profile from 2000 (T-shirt/top) down
#: to 10 (Ankle boot), ratio 200 (so that the 100 / 20 head / tail thresholds leave six head,
#: two medium and two tail labels), 1.5 labels per example (2986 examples; the head label in
#: two thirds of them); balanced validation (1000) and test (2000) splits; seed 0.
FASHION_MNIST_MOSAIC_LT: dict[str, Any] = {
    "ratio": 200.0,
    "profile": "exp",
    "n_max": 2000,
    "labels_per_example": 1.5,
    "items": (2, 4),
    "val_size": 1000,
    "test_size": 2000,
    "grid": 2,
    "seed": 0,
}


def _fashion_mosaic(data_dir: str | os.PathLike | None, download: bool) -> MultiLabelImages:
    from longtail.data.images import load_image_dataset

    source = load_image_dataset("fashion-mnist", data_dir=data_dir, download=download)
    info = get_dataset("fashion-mnist-mosaic-lt")
    return mosaic_multilabel(
        source,
        **FASHION_MNIST_MOSAIC_LT,
        name=info.name,
        label_names=get_dataset("fashion-mnist").class_names,
    )


# The builder of each registered multi-label data set: (data_dir, download) -> the set.
_BUILDERS: dict[str, Callable[[str | os.PathLike | None, bool], MultiLabelImages]] = {
    "fashion-mnist-mosaic-lt": _fashion_mosaic,
}

#: The registered multi-label image data sets (:mod:`longtail.data.registry`).
MULTILABEL_DATASETS = tuple(list_datasets("multilabel"))


# ----------------------------------------------------------------------------------- files
def _multihot(name: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 2 or len(y) != n:
        raise expected(name, f"a multi-hot (N, C) matrix with {n} rows", f"shape {y.shape}")
    return as_multihot(y, name=name).astype(np.uint8)


def load_multilabel_npz(path: str | os.PathLike) -> MultiLabelImages:
    """A multi-label image set from an ``.npz`` file.

    Arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``x_val``, ``y_val``
    (both or neither), and ``label_names`` (strings, one per label). Images are ``uint8``
    ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` (as :func:`~longtail.data.load_npz`
    reads them); labels are ``(N, C)`` multi-hot matrices of 0/1 (any numeric or bool dtype),
    the same ``C`` in every split.

    Raises:
        FileNotFoundError: a missing file.
        ValueError: not an ``.npz`` archive, a missing array, images that are not ``uint8``,
            labels that are not a 0/1 matrix of one row per image.
    """
    path = Path(path)
    arrays = read_npz_arrays(path, optional=("x_val", "y_val", "label_names"))
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise expected(f"{path}", "an .npz with both x_val and y_val, or neither", "one of them")
    out: dict[str, Any] = {}
    for split in _SPLITS:
        if f"x_{split}" not in arrays:
            continue
        x = images_nchw(f"x_{split}", arrays[f"x_{split}"])
        y = _multihot(f"y_{split}", arrays[f"y_{split}"], len(x))
        out[f"x_{split}"], out[f"y_{split}"] = torch.from_numpy(x), torch.from_numpy(y)
    names = arrays.get("label_names")
    return MultiLabelImages(
        name=path.stem,
        label_names=tuple(str(n) for n in names.tolist()) if names is not None else (),
        construction={"file": path.name},
        **out,
    )


def load_multilabel_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> MultiLabelImages:
    """A registered multi-label image set by name (:data:`MULTILABEL_DATASETS`, aliases in any
    case), or an ``.npz`` file (:func:`load_multilabel_npz`; a relative path that does not
    exist is also looked for in ``data_dir``).

    Raises:
        ValueError: a name that is neither a registered multi-label set nor an ``.npz`` path.
        FileNotFoundError: the file, or a registered set's source images, not found.
    """
    text = os.fspath(name_or_path)
    try:
        info = get_dataset(text)
    except ValueError:
        info = None
    if info is not None and info.task == "multilabel" and info.name in _BUILDERS:
        return _BUILDERS[info.name](data_dir, download)
    path = Path(text)
    if info is None and (text.lower().endswith(".npz") or path.is_file()):
        if not path.exists() and data_dir is not None and not path.is_absolute():
            if (Path(data_dir) / path).exists():
                path = Path(data_dir) / path
        return load_multilabel_npz(path)
    spellings = [k for n in MULTILABEL_DATASETS for k in (n, *get_dataset(n).aliases)]
    close = difflib.get_close_matches(text.lower(), spellings, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    kind = f", a {info.task} dataset" if info is not None else ""
    raise ValueError(
        f"Expected `dataset` to be a multi-label image set, one of {MULTILABEL_DATASETS}, or "
        f"the path of an .npz file with multi-hot labels, but got {text!r}{kind}.{hint}"
    )
