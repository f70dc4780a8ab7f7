"""Image datasets as tensors, and the batch augmentation that the training engine applies.

An :class:`ImageDataset` holds a whole image classification benchmark in memory as ``uint8``
tensors (Fashion-MNIST is 47 MB, CIFAR-10 180 MB), so the engine can index batches directly,
augment them with :func:`random_crop_flip` and turn them into network input with
:func:`normalize`, all vectorised over the batch. :func:`load_image_dataset` loads one by name
(``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``, ``"cifar100"``), from an ``.npz`` file or from
a folder of class folders (:mod:`longtail.data.folders`).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from longtail._labels import check_int
from longtail._validation import expected
from longtail.data.cifar import load_cifar
from longtail.data.dataset import ImageDataset
from longtail.data.folders import load_folder
from longtail.data.idx import load_mnist
from longtail.data.npz import load_npz
from longtail.data.registry import DatasetInfo, get_dataset, list_datasets

__all__ = [
    "DATASETS",
    "ImageDataset",
    "load_image_dataset",
    "normalize",
    "random_crop_flip",
]

#: The registered image classification datasets (:mod:`longtail.data.registry`), the names
#: accepted by :func:`load_image_dataset` besides their aliases and paths to ``.npz`` files.
DATASETS = tuple(list_datasets("classification"))

# The loader of each registered image dataset: (data_dir, download) -> ImageDataset. The
# registry holds what a dataset is; where its files come from stays next to each loader.
_LOADERS: dict[str, Callable[[str | os.PathLike | None, bool], ImageDataset]] = {
    "fashion-mnist": lambda root, download: load_mnist(root, "fashion-mnist", download),
    "mnist": lambda root, download: load_mnist(root, "mnist", download),
    "cifar10": lambda root, download: load_cifar(root, 10, download),
    "cifar100": lambda root, download: load_cifar(root, 100, download),
}


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


def _registered(key: str) -> DatasetInfo | None:
    """The registry entry of ``key`` (a name or alias, any case), or ``None``."""
    try:
        return get_dataset(key)
    except ValueError:
        return None


def load_image_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load an image dataset by name, from an ``.npz`` file, or from a folder.

    A name is looked up in the dataset registry (:func:`~longtail.data.registry.get_dataset`,
    so aliases such as ``"fmnist"`` or ``"cifar-10"`` work, in any case):

    * ``"fashion-mnist"``, ``"mnist"``: :func:`~longtail.data.load_mnist`.
    * ``"cifar10"``, ``"cifar100"``: :func:`~longtail.data.load_cifar`.

    A path to a folder (a relative one is also looked for in ``data_dir``) is loaded with
    :func:`~longtail.data.folders.load_folder`: a folder of class folders of images
    (:func:`~longtail.data.load_image_folder`, with its defaults: the images' own size when they
    all have one, else 32 x 32; the majority's channels; a 20 % stratified test split when there
    is no ``test/`` folder; the decoded images cached in the user cache folder), or a Hugging
    Face ``datasets`` folder written by ``save_to_disk``
    (:func:`~longtail.data.folders.load_hf_dataset`, which needs ``datasets``: the
    ``hf-datasets`` extra). Anything else
    that ends in ``.npz``, or names an existing file (read as an ``.npz`` archive), is loaded
    with :func:`~longtail.data.load_npz`; a relative path that does not exist is also looked for
    in ``data_dir``.

    Args:
        name_or_path: One of :data:`DATASETS` or an alias (case-insensitive), a path to an
            ``.npz`` file, or a path to a folder.
        data_dir: The folder holding the data (the loaders' ``root``); default each loader's
            own search path.
        download: Download a named dataset that is not found. Default ``True``.

    Returns:
        The :class:`ImageDataset`.

    Raises:
        ValueError: On a name that is neither a registered image dataset nor an ``.npz`` or
            folder path (a registered regression dataset is refused by name); on a folder that
            cannot be read (:func:`~longtail.data.load_image_folder`).
        FileNotFoundError: If the data is not found (and not downloaded).
    """
    text = os.fspath(name_or_path)
    info = _registered(text)
    if info is not None:
        name = info.name
        if info.task != "classification":
            raise expected(
                "name_or_path",
                f"an image classification dataset (one of {DATASETS}) or an .npz file",
                f"{text!r}, a {info.task} dataset",
            )
        if name not in _LOADERS:  # registered, but nobody wrote its loader yet
            raise expected(
                "name_or_path", f"a dataset with a loader, one of {tuple(_LOADERS)}", repr(text)
            )
        return _LOADERS[name](data_dir, download)
    path = Path(text)
    folder = path.expanduser()
    if not folder.is_dir() and data_dir is not None and not folder.is_absolute():
        folder = Path(data_dir) / folder
    if folder.is_dir():
        return load_folder(folder)
    if text.lower().endswith(".npz") or path.is_file():
        if not path.exists() and data_dir is not None and not path.is_absolute():
            in_dir = Path(data_dir) / path
            if in_dir.exists():
                path = in_dir
        return load_npz(path)
    spellings = [key for n in DATASETS for key in (n, *get_dataset(n).aliases)]
    close = difflib.get_close_matches(text.lower(), spellings, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Expected `name_or_path` to be one of the datasets {DATASETS}, a path to an .npz "
        f"file or a folder of class folders, but got {text!r}.{hint}"
    )
