"""IDX files and the MNIST / Fashion-MNIST datasets stored in them.

An IDX file (LeCun et al.'s MNIST format) is a 4-byte magic number ``0x00 0x00 <dtype> <ndim>``,
``ndim`` big-endian ``uint32`` dimension sizes, then the values in C order. MNIST and
Fashion-MNIST use dtype code ``0x08`` (unsigned byte) for both images ``(N, 28, 28)`` and
labels ``(N,)``.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from longtail._validation import check_choice, expected
from longtail.data.images import ImageDataset, _download

__all__ = ["MNIST_VARIANTS", "load_mnist", "read_idx"]

#: Names accepted by the ``variant`` argument of :func:`load_mnist`.
MNIST_VARIANTS = ("fashion-mnist", "mnist")

#: Where ``apt-get install dataset-fashion-mnist`` puts the four Fashion-MNIST files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_BASE_URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or raw) into a NumPy array.

    A gzip file is recognised by its content (magic bytes ``1f 8b``), not by its name. The
    header is checked: the magic number must start with two zero bytes, the dtype code must be
    ``0x08`` (``uint8``, the only one MNIST uses), the number of dimensions must be at least 1
    (and equal ``ndim`` when given), and the payload must hold exactly the product of the
    dimensions in bytes.

    Args:
        path: The file.
        ndim: The expected number of dimensions (3 for images, 1 for labels); default any.

    Returns:
        A ``uint8`` array of the header's shape (writable, owning its memory).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not a valid IDX file of unsigned bytes (bad magic number,
            other dtype, wrong number of dimensions, truncated or over-long payload, corrupt
            gzip stream); the message names the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: not a valid gzip file ({err}).") from err
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise expected(
            f"{path}",
            "an IDX file (magic number 0x00 0x00 <dtype> <ndim>)",
            f"first bytes {data[:4].hex(' ')!r}",
        )
    code, dims = data[2], data[3]
    if code != _UBYTE:
        raise expected(f"{path}", "an IDX file of unsigned bytes (dtype code 0x08)", f"{code:#04x}")
    if dims < 1 or (ndim is not None and dims != ndim):
        what = f"{ndim} dimensions" if ndim is not None else "at least 1 dimension"
        raise expected(f"{path}", f"an IDX file with {what}", f"{dims}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header} bytes, got {len(data)} bytes."
        )
    shape = struct.unpack(f">{dims}I", data[4:header])
    payload = math.prod(shape)
    if len(data) - header != payload:
        kind = "truncated" if len(data) - header < payload else "over-long"
        raise ValueError(
            f"{path}: {kind} IDX file of shape {shape}: expected {payload} bytes of data after "
            f"the {header}-byte header, got {len(data) - header} bytes."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (the raw file first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _complete(folder: Path) -> bool:
    return all(_find(folder, name) is not None for pair in _FILES.values() for name in pair)


def _cache_dir(variant: str) -> Path:
    """``$XDG_CACHE_HOME/longtail/<variant>``, by default ``~/.cache/longtail/<variant>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "longtail" / variant


def _not_found(variant: str, looked: list[Path], download: bool) -> str:
    names = ", ".join(f"{name}(.gz)" for pair in _FILES.values() for name in pair)
    where = ", ".join(str(p) for p in looked)
    ways = []
    if variant == "fashion-mnist":
        ways.append(
            f"`apt-get install dataset-fashion-mnist` (installs to {FASHION_MNIST_SYSTEM_DIR})"
        )
    if not download:
        ways.append("download=True (downloads from " + _BASE_URLS[variant] + ")")
    ways.append(
        "put the files in a folder and pass it as `root` (`--data-dir` on the command line)"
    )
    return (
        f"{variant} not found: looked for {names} in {where}. To get the data: "
        + "; or ".join(ways)
        + "."
    )


def load_mnist(
    root: str | os.PathLike | None = None,
    variant: str = "fashion-mnist",
    download: bool = True,
) -> ImageDataset:
    """Load MNIST or Fashion-MNIST (60000 training and 10000 test images, 1 x 28 x 28, 10 classes).

    The four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``) are looked
    for in:

    1. ``root`` and ``root/<variant>``, if ``root`` is given; otherwise
    2. for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist/`` (where
       ``apt-get install dataset-fashion-mnist`` puts them), then
    3. the user cache ``~/.cache/longtail/<variant>`` (``$XDG_CACHE_HOME`` if set).

    If no folder holds all four and ``download`` is true, the missing ``.gz`` files are
    downloaded (``urllib``; each written to a temporary file and renamed, and announced on
    stderr) into ``root/<variant>`` (a sub-folder, since both variants use the same file names)
    or into the cache folder.

    Args:
        root: Folder holding the files (or a ``<variant>`` sub-folder with them); default the
            system and cache folders above.
        variant: ``"fashion-mnist"`` (default) or ``"mnist"``.
        download: Download the files if they are not found. Default ``True``.

    Returns:
        An :class:`ImageDataset` named ``variant``, images ``uint8`` ``(N, 1, 28, 28)``.

    Raises:
        FileNotFoundError: If the files are not found and not downloaded (the message lists the
            folders searched and how to get the data).
        ValueError: If a file is not a valid IDX file, the image and label counts differ, or a
            label is outside ``0 .. 9``.
    """
    check_choice("variant", variant, MNIST_VARIANTS)
    if root is not None:
        root = Path(root)
        looked = [root, root / variant]
        target = root / variant
    else:
        looked = [FASHION_MNIST_SYSTEM_DIR] if variant == "fashion-mnist" else []
        looked.append(_cache_dir(variant))
        target = looked[-1]
    folder = next((f for f in looked if _complete(f)), None)
    if folder is None:
        if not download:
            raise FileNotFoundError(_not_found(variant, looked, download))
        try:
            for pair in _FILES.values():
                for name in pair:
                    if _find(target, name) is None:
                        _download(_BASE_URLS[variant] + f"{name}.gz", target / f"{name}.gz")
        except OSError as err:  # urllib.error.URLError is an OSError
            raise FileNotFoundError(
                f"{_not_found(variant, looked, download)} Downloading into {target} failed: {err}"
            ) from err
        folder = target

    splits = {}
    for split, (images_name, labels_name) in _FILES.items():
        images = read_idx(_find(folder, images_name), ndim=3)
        labels = read_idx(_find(folder, labels_name), ndim=1)
        if len(images) != len(labels):
            raise expected(
                f"{_find(folder, labels_name)}",
                f"{len(images)} labels (one per image of {_find(folder, images_name)})",
                f"{len(labels)}",
            )
        if labels.size and int(labels.max()) > 9:
            raise expected(
                f"{_find(folder, labels_name)}", "labels in [0, 9]", f"label {int(labels.max())}"
            )
        splits[split] = (
            torch.from_numpy(images).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)),
        )
    return ImageDataset(
        name=variant,
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        num_classes=10,
    )
