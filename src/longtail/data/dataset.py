"""The in-memory image classification dataset that every loader returns.

:class:`ImageDataset` lives in its own module so that the loaders (:mod:`longtail.data.idx`,
:mod:`longtail.data.cifar`, :mod:`longtail.data.npz`) and the dispatcher
(:func:`longtail.data.images.load_image_dataset`) all import it from here, and none of them has
to import another.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import expected

__all__ = ["ImageDataset"]

# Images per chunk in ImageDataset.channel_stats: 4096 CIFAR images are 100 MB in float64.
_STATS_CHUNK = 4096


def _check_classes(classes: object, num_classes: int) -> tuple[int, ...] | tuple[str, ...]:
    """``classes`` as a tuple of ``num_classes`` distinct ints, or of distinct non-empty strings
    (``None``: ``0 .. K - 1``)."""
    if classes is None:
        return tuple(range(num_classes))
    if isinstance(classes, str | bytes) or not hasattr(classes, "__len__"):
        raise expected("classes", "a sequence of original labels", type(classes).__name__)
    items = tuple(classes.tolist() if hasattr(classes, "tolist") else classes)
    if len(items) != num_classes:
        raise expected("classes", f"{num_classes} original labels (one per class)", f"{len(items)}")
    if items and all(isinstance(c, str) for c in items):  # class names (folder names)
        if not all(items):
            raise expected("classes", "non-empty class names", "an empty name")
    else:
        bad = [c for c in items if isinstance(c, bool) or not isinstance(c, int | np.integer)]
        if bad:
            raise expected("classes", "integer labels or class names (all strings)", f"{bad[0]!r}")
        items = tuple(int(c) for c in items)
    if len(set(items)) != len(items):
        dup = next(c for c in items if items.count(c) > 1)
        raise expected("classes", "distinct labels", f"{dup!r} twice")
    return items


@dataclass(repr=False)
class ImageDataset:
    """An image classification dataset held in memory: train and test images and labels.

    Images are ``uint8`` tensors ``(N, C, H, W)`` (pixel values 0..255), labels ``int64``
    tensors ``(N,)`` in ``0 .. num_classes - 1``. Train and test images share ``C, H, W``. The
    fields are checked on construction.

    Example:
        >>> ds = ImageDataset(
        ...     name="toy",
        ...     x_train=torch.zeros(3, 1, 2, 2, dtype=torch.uint8),
        ...     y_train=torch.tensor([0, 2, 2]),
        ...     x_test=torch.full((1, 1, 2, 2), 255, dtype=torch.uint8),
        ...     y_test=torch.tensor([1]),
        ...     num_classes=3,
        ... )
        >>> ds
        ImageDataset(name='toy', train=3 x (1, 2, 2), test=1, num_classes=3)
        >>> ds.class_counts.tolist(), ds.channels, ds.image_size
        ([1, 0, 2], 1, (2, 2))

    Attributes:
        name: The dataset's name (``"cifar10"``, or the stem of an ``.npz`` file).
        x_train: Training images, ``uint8`` ``(N_train, C, H, W)``.
        y_train: Training labels, ``int64`` ``(N_train,)``.
        x_test: Test images, ``uint8`` ``(N_test, C, H, W)``.
        y_test: Test labels, ``int64`` ``(N_test,)``.
        num_classes: Number of classes ``K``; every label is in ``0 .. K - 1``.
        classes: The original label of each class index, ``K`` distinct integers, or its name,
            ``K`` distinct strings: label ``i`` of ``y_train`` / ``y_test`` stands for class
            ``classes[i]`` of the source data. Default ``(0, 1, ..., K - 1)``;
            :func:`~longtail.data.load_npz` sets it when it renumbers labels such as
            ``{3, 7, 42}`` to ``0 .. K - 1``, :func:`~longtail.data.load_image_folder` to the
            class folders' names (``("cat", "dog")``). Records carry it, and per-class tables
            and plots name the classes with it.

    Raises:
        ValueError: If a field has the wrong type, dtype or shape, the train and test images
            differ in ``C, H, W``, a label is out of range, or ``classes`` is not ``K`` distinct
            integers or ``K`` distinct non-empty strings.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    classes: tuple[int, ...] | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.num_classes = check_int("num_classes", self.num_classes, minimum=1)
        self.classes = _check_classes(self.classes, self.num_classes)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
                got = (
                    f"{x.dtype} tensor of shape {tuple(x.shape)}"
                    if isinstance(x, torch.Tensor)
                    else type(x).__name__
                )
                raise expected(f"x_{split}", "a uint8 tensor (N, C, H, W)", got)
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
                got = (
                    f"{y.dtype} tensor of shape {tuple(y.shape)}"
                    if isinstance(y, torch.Tensor)
                    else type(y).__name__
                )
                raise expected(f"y_{split}", "an int64 tensor (N,)", got)
            if len(y) != len(x):
                raise expected(
                    f"y_{split}", f"of length {len(x)} (one label per image)", f"length {len(y)}"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
                raise expected(
                    f"y_{split}",
                    f"labels in [0, {self.num_classes - 1}] (num_classes={self.num_classes})",
                    f"label {bad}",
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise expected(
                "x_test",
                f"images of the training images' shape (C, H, W) = {tuple(self.x_train.shape[1:])}",
                f"{tuple(self.x_test.shape[1:])}",
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, "
            f"train={len(self.x_train)} x {tuple(self.x_train.shape[1:])}, "
            f"test={len(self.x_test)}, num_classes={self.num_classes})"
        )

    def fingerprint(self) -> str:
        """A stable hex SHA-256 of the data: what a trained model has seen and is tested on.

        The hash covers, in this order, the dtype, shape and bytes of ``x_train``, ``y_train``,
        ``x_test`` and ``y_test`` (little-endian, C order), then ``num_classes``. Equal data
        gives an equal fingerprint whatever the tensors' device, strides or the dataset's
        ``name``; a change of any byte, shape, dtype or of ``num_classes`` gives another, so a
        run can record the fingerprint and refuse to resume on other data. ``classes`` is not
        included: renumbered labels train the same model whatever they were called.

        The contiguous bytes are hashed in place (one copy at most, for a non-contiguous or
        non-CPU tensor), at hashlib's speed: Fashion-MNIST's 55 MB take a fraction of a second.

        Example:
            >>> x = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
            >>> a = ImageDataset("a", x, torch.tensor([0, 1]), x, torch.tensor([1, 0]), 2)
            >>> b = ImageDataset("b", x.clone(), torch.tensor([0, 1]), x, torch.tensor([1, 0]), 2)
            >>> a.fingerprint() == b.fingerprint(), len(a.fingerprint())
            (True, 64)

        Returns:
            64 lower-case hex digits.
        """
        digest = hashlib.sha256()
        for field in ("x_train", "y_train", "x_test", "y_test"):
            arr = getattr(self, field).detach().cpu().contiguous().numpy()
            # the byte order is part of the fingerprint's definition, not of the machine's
            arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
            digest.update(f"{field}:{arr.dtype.str}:{arr.shape};".encode())
            digest.update(arr.reshape(-1).view(np.uint8))  # zero-size arrays too
        digest.update(f"num_classes:{self.num_classes};".encode())
        return digest.hexdigest()

    @property
    def channels(self) -> int:
        """Number of image channels ``C`` (1 for grey-scale, 3 for RGB)."""
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """Image height and width ``(H, W)``."""
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def class_counts(self) -> torch.Tensor:
        """Training examples per class, ``int64`` of length ``num_classes``."""
        return torch.bincount(self.y_train, minlength=self.num_classes)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation of the training images, in ``[0, 1]`` units.

        The statistics are over every pixel of every training image (the standard deviation is
        the population one, ``ddof = 0``), the values :func:`normalize` expects. Sums are taken
        in ``float64`` over chunks of images, which is exact for ``uint8`` data of this size and
        keeps the extra memory to one chunk.

        Returns:
            ``(mean, std)``, two tuples of ``C`` floats.
        """
        x = self.x_train
        c = x.shape[1]
        total = torch.zeros(c, dtype=torch.float64, device=x.device)
        total_sq = torch.zeros(c, dtype=torch.float64, device=x.device)
        for chunk in x.split(_STATS_CHUNK):
            v = chunk.to(torch.float64)
            total += v.sum(dim=(0, 2, 3))
            total_sq += v.square().sum(dim=(0, 2, 3))
        n = x.shape[0] * x.shape[2] * x.shape[3]
        if n == 0:
            raise expected("x_train", "at least one pixel to compute statistics", "no images")
        mean = total / n
        var = (total_sq / n - mean.square()).clamp_min(0)
        return (
            tuple(float(m) / 255 for m in mean.tolist()),
            tuple(math.sqrt(s) / 255 for s in var.tolist()),
        )
