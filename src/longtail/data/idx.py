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
from longtail.data._fetch import cache_dir, download_verified
from longtail.data.dataset import ImageDataset
from longtail.data.registry import get_dataset

__all__ = ["MNIST_VARIANTS", "load_mnist", "read_idx"]

#: Names accepted by the ``variant`` argument of :func:`load_mnist`.
MNIST_VARIANTS = ("fashion-mnist", "mnist")

#: Where ``apt-get install dataset-fashion-mnist`` puts the four Fashion-MNIST files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

# Mirrors of each variant's four .gz files, tried in order; every one serves the same bytes,
# which are checked against _SHA256 below before they are kept.
_MIRRORS = {
    # Fashion-MNIST's S3 site (the README's download links) answers over plain http only; the
    # README's other distribution, the GitHub repository (data/fashion/), is served over https.
    # The commit is pinned so that the checksums below stay those of the files served.
    "fashion-mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
        "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    # yann.lecun.com no longer serves the files reliably; these two mirrors are those that
    # torchvision and TensorFlow use
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
}
# SHA-256 of the original .gz files, checked on every download.
# Fashion-MNIST: the README (https://github.com/zalandoresearch/fashion-mnist#get-the-data)
# publishes MD5 sums only (train images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train labels
# 25c81989df183df01b3e8a0aad5dffbe, test images bef4ecab320f06d8554ea6380940ec79, test labels
# bb300cfdad3c16e7a12a480ee83cd310). These SHA-256 sums were computed from files with exactly
# those MD5s (which are also the blobs of the pinned commit above), and TensorFlow Datasets pins
# the same ones for the S3 site (tensorflow_datasets/url_checksums/fashion_mnist.txt).
# MNIST: LeCun et al.'s files (http://yann.lecun.com/exdb/mnist/), whose SHA-256 sums
# TensorFlow Datasets pins (tensorflow_datasets/url_checksums/mnist.txt, for the cvdf mirror);
# torchvision checks the MD5s of the same files on the ossci mirror
# (f68b3c2dcbeaaa9fbdd348bbdeb94873, d53e105ee54ea40749a09fcbcd1e9432,
# 9fb629c4189551a2d022fa330f9573f3, ec29112dd5afa0611ce80d1b7f02629c, in the order below).
_SHA256 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
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


def _not_found(variant: str, looked: list[Path], download: bool) -> str:
    names = ", ".join(f"{name}(.gz)" for pair in _FILES.values() for name in pair)
    where = ", ".join(str(p) for p in looked)
    ways = []
    if variant == "fashion-mnist":
        ways.append(
            f"`apt-get install dataset-fashion-mnist` (installs to {FASHION_MNIST_SYSTEM_DIR})"
        )
    if not download:
        ways.append(f"download=True (downloads from {_MIRRORS[variant][0]})")
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
    downloaded (``urllib``, over https first, announced on stderr) into ``root/<variant>`` (a
    sub-folder, since both variants use the same file names) or into the cache folder. Each
    download is checked against the original file's published SHA-256 before it is renamed into
    place; a file that fails the check is deleted. Files found locally are not checksummed (the
    Debian package, for one, re-compresses them); :func:`read_idx` checks their structure.

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
        ValueError: If a file is not a valid IDX file, the image and label counts differ, a
            label is outside ``0 .. 9``, or a downloaded file fails its checksum (the message
            names the file and the checksum expected).
    """
    check_choice("variant", variant, MNIST_VARIANTS)
    if root is not None:
        root = Path(root)
        looked = [root, root / variant]
        target = root / variant
    else:
        looked = [FASHION_MNIST_SYSTEM_DIR] if variant == "fashion-mnist" else []
        looked.append(cache_dir(variant))
        target = looked[-1]
    folder = next((f for f in looked if _complete(f)), None)
    if folder is None:
        if not download:
            raise FileNotFoundError(_not_found(variant, looked, download))
        try:
            for pair in _FILES.values():
                for name in pair:
                    if _find(target, name) is None:
                        gz = f"{name}.gz"
                        urls = [base + gz for base in _MIRRORS[variant]]
                        download_verified(urls, target / gz, sha256=_SHA256[variant][gz])
        except OSError as err:  # urllib.error.URLError is an OSError
            raise FileNotFoundError(
                f"{_not_found(variant, looked, download)} Downloading into {target} failed: {err}"
            ) from err
        folder = target

    num_classes = get_dataset(variant).num_classes
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
        if labels.size and int(labels.max()) >= num_classes:
            raise expected(
                f"{_find(folder, labels_name)}",
                f"labels in [0, {num_classes - 1}]",
                f"label {int(labels.max())}",
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
        num_classes=num_classes,
    )
