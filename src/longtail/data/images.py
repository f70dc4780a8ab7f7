"""Image datasets as tensors, and the batch augmentation that the training engine applies.

An :class:`ImageDataset` holds a whole image classification benchmark in memory as ``uint8``
tensors (Fashion-MNIST is 47 MB, CIFAR-10 180 MB), so the engine can index batches directly,
augment them with :func:`random_crop_flip` and turn them into network input with
:func:`normalize`, all vectorised over the batch. :func:`load_image_dataset` loads one by name
(``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``, ``"cifar100"``) or from an ``.npz`` file.
"""

from __future__ import annotations

import difflib
import math
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from longtail._labels import check_int
from longtail._validation import expected

__all__ = [
    "DATASETS",
    "ImageDataset",
    "load_image_dataset",
    "normalize",
    "random_crop_flip",
]

#: Names accepted by :func:`load_image_dataset` (besides paths to ``.npz`` files).
DATASETS = ("fashion-mnist", "mnist", "cifar10", "cifar100")

# Images per chunk in ImageDataset.channel_stats: 4096 CIFAR images are 100 MB in float64.
_STATS_CHUNK = 4096


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

    Raises:
        ValueError: If a field has the wrong type, dtype or shape, the train and test images
            differ in ``C, H, W``, or a label is out of range.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        self.num_classes = check_int("num_classes", self.num_classes, minimum=1)
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


def _check_images(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise expected(name, "a 4-D image batch tensor (N, C, H, W)", got)


def random_crop_flip(
    x: torch.Tensor,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random-crop each image of a batch from its zero-padded version, and flip half of them.

    The standard CIFAR augmentation (``RandomCrop(32, padding=4)`` and
    ``RandomHorizontalFlip()``), applied to a whole batch in a few tensor operations: the batch
    is zero-padded by ``padding`` pixels on each side once, and image ``i`` is the ``H x W``
    window at row ``dy_i``, column ``dx_i`` of its padded version, read through one
    advanced-indexing gather; with ``flip``, its columns are read in reverse order with
    probability 1/2.

    Random numbers are drawn from ``generator`` (default: torch's global generator) in a fixed
    order, so a generator state fixes the result: first the offsets
    ``torch.randint(0, 2 * padding + 1, (2, N))`` (row 0: ``dy``, row 1: ``dx``), then, if
    ``flip``, ``torch.randint(0, 2, (N,))`` (1 = flip). They are drawn on the generator's device
    and moved to ``x``'s device.

    Example:
        >>> x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)
        >>> random_crop_flip(x, padding=0, flip=False).equal(x)
        True
        >>> g = torch.Generator().manual_seed(0)
        >>> random_crop_flip(x, padding=2, generator=g).shape
        torch.Size([1, 1, 4, 4])

    Args:
        x: Image batch ``(N, C, H, W)``, typically ``uint8``; any dtype and device.
        padding: Zero padding on each side, ``>= 0``; offsets are uniform in
            ``0 .. 2 * padding``. Default 4.
        flip: Flip each image horizontally with probability 1/2. Default ``True``.
        generator: The random number generator; default torch's global one.

    Returns:
        A new tensor of ``x``'s shape, dtype and device.

    Raises:
        ValueError: If ``x`` is not 4-D or ``padding`` is not an integer ``>= 0``.
    """
    _check_images("x", x)
    padding = check_int("padding", padding, minimum=0)
    n, c, h, w = x.shape
    rng_device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=rng_device)
    offsets = offsets.to(x.device)
    flips = (
        torch.randint(0, 2, (n,), generator=generator, device=rng_device).to(x.device).bool()
        if flip
        else None
    )
    if padding:
        padded = x.new_zeros((n, c, h + 2 * padding, w + 2 * padding))
        padded[:, :, padding : padding + h, padding : padding + w] = x
    else:
        padded = x
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def normalize(
    x: torch.Tensor,
    mean: Sequence[float] | float,
    std: Sequence[float] | float,
    channels_last: bool = False,
) -> torch.Tensor:
    """Turn ``uint8`` images into network input: ``(x / 255 - mean) / std`` per channel.

    The result is ``float32`` on ``x``'s device. ``mean`` and ``std`` are in ``[0, 1]`` units,
    as :meth:`ImageDataset.channel_stats` returns them.

    Example:
        >>> x = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 1, 1, 3)
        >>> normalize(x, mean=(0.2,), std=(0.4,))
        tensor([[[[-0.5000,  0.0000,  2.0000]]]])

    Args:
        x: ``uint8`` images ``(N, C, H, W)`` or a single image ``(C, H, W)``.
        mean: Per-channel means (``C`` floats), or one float for every channel.
        std: Per-channel standard deviations (``C`` positive floats), or one float.
        channels_last: Return a 4-D batch in ``torch.channels_last`` memory format (same shape
            ``(N, C, H, W)``; faster convolutions on many back-ends). Default ``False``
            (contiguous).

    Returns:
        A ``float32`` tensor of ``x``'s shape.

    Raises:
        ValueError: On a non-``uint8`` or wrongly shaped ``x``, statistics of the wrong length,
            or a ``std`` that is not positive and finite.
    """
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() not in (3, 4):
        got = (
            f"{x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, torch.Tensor)
            else type(x).__name__
        )
        raise expected("x", "a uint8 tensor (N, C, H, W) or (C, H, W)", got)
    if channels_last and x.dim() != 4:
        raise expected("x", "4-D (N, C, H, W) with channels_last=True", f"{x.dim()}-D")
    c = x.shape[-3]
    stats = []
    for name, value in (("mean", mean), ("std", std)):
        t = torch.as_tensor(value, dtype=torch.float32).flatten()
        if t.numel() == 1:
            t = t.expand(c)
        if t.numel() != c:
            raise expected(name, f"{c} values (one per channel) or one float", t.numel())
        if not torch.isfinite(t).all() or (name == "std" and (t <= 0).any()):
            raise expected(name, "finite" + (" and positive" if name == "std" else ""), t.tolist())
        stats.append(t.to(x.device).reshape(c, 1, 1))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = x.to(dtype=torch.float32, memory_format=fmt)
    return out.div_(255).sub_(stats[0]).div_(stats[1])


def _download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` atomically (a temporary file in its folder, then a rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"longtail: downloading {url} to {dest}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_image_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load an image dataset by name, or from an ``.npz`` file.

    * ``"fashion-mnist"``, ``"mnist"``: :func:`~longtail.data.load_mnist`.
    * ``"cifar10"``, ``"cifar100"``: :func:`~longtail.data.load_cifar`.
    * a path ending in ``.npz``, or naming any existing file (read as an ``.npz`` archive):
      :func:`~longtail.data.load_npz`; a relative path that does not exist is also looked for
      in ``data_dir``.

    Args:
        name_or_path: One of :data:`DATASETS` (case-insensitive) or a path to an ``.npz`` file.
        data_dir: The folder holding the data (the loaders' ``root``); default each loader's
            own search path.
        download: Download a named dataset that is not found. Default ``True``.

    Returns:
        The :class:`ImageDataset`.

    Raises:
        ValueError: On a name that is neither a known dataset nor an ``.npz`` path.
        FileNotFoundError: If the data is not found (and not downloaded).
    """
    from longtail.data.cifar import load_cifar
    from longtail.data.idx import load_mnist
    from longtail.data.npz import load_npz

    text = os.fspath(name_or_path)
    key = text.lower()
    if key in ("fashion-mnist", "mnist"):
        return load_mnist(root=data_dir, variant=key, download=download)
    if key in ("cifar10", "cifar100"):
        return load_cifar(data_dir, num_classes=int(key[5:]), download=download)
    path = Path(text)
    if key.endswith(".npz") or path.is_file():
        if not path.exists() and data_dir is not None and not path.is_absolute():
            in_dir = Path(data_dir) / path
            if in_dir.exists():
                path = in_dir
        return load_npz(path)
    close = difflib.get_close_matches(key, DATASETS, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Expected `name_or_path` to be one of the datasets {DATASETS} or a path to an .npz "
        f"file, but got {text!r}.{hint}"
    )
