"""Image datasets stored as NumPy ``.npz`` archives (any data set, in a few arrays)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import expected
from longtail.data.dataset import ImageDataset

__all__ = ["load_npz"]

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def _images_nchw(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype != np.uint8:
        raise expected(name, "uint8 images (pixel values 0..255)", f"dtype {x.dtype}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x
    raise expected(
        name, "images (N, H, W), (N, C, H, W) or (N, H, W, C)", f"shape {tuple(x.shape)}"
    )


def _labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise expected(name, "integer class labels", f"dtype {y.dtype}")
    if y.ndim != 1 or len(y) != n:
        raise expected(name, f"{n} labels (one per image, 1-D)", f"shape {tuple(y.shape)}")
    y = y.astype(np.int64)
    if y.size and int(y.min()) < 0:
        raise expected(name, "non-negative class labels", f"label {int(y.min())}")
    return y


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """Load an image dataset from an ``.npz`` file with arrays ``x_train, y_train, x_test, y_test``.

    Images must be ``uint8``. Their layout is read from their shape:

    * ``(N, H, W)``: grey-scale; a channel dimension is added, giving ``(N, 1, H, W)``;
    * ``(N, C, H, W)``: used as it is;
    * ``(N, H, W, C)``: recognised when the last dimension is 1 or 3 and the second is not
      (so a 4-D array whose second dimension is 1 or 3 is always read as ``(N, C, H, W)``),
      and transposed to ``(N, C, H, W)``.

    Labels are integers in ``0 .. K - 1``. ``K`` is the optional scalar array ``num_classes``
    in the file or, without it, the largest label (train or test) plus one. The dataset is
    named after the file's stem.

    Example:
        >>> import tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = f"{tmp}/toy.npz"
        ...     np.savez(
        ...         path,
        ...         x_train=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        ...         y_train=np.array([0, 1, 2, 0, 1, 2]),
        ...         x_test=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
        ...         y_test=np.array([2, 0]),
        ...     )
        ...     ds = load_npz(path)
        >>> ds
        ImageDataset(name='toy', train=6 x (3, 8, 8), test=2, num_classes=3)

    Args:
        path: The ``.npz`` file (read with ``allow_pickle=False``).

    Returns:
        An :class:`ImageDataset`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not an ``.npz`` archive, an array is missing, the images are
            not ``uint8`` or not of an accepted shape, train and test images differ in shape,
            the label and image counts differ, or a label is negative or ``>= num_classes``.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err}).") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise expected(f"{path}", "an .npz archive of named arrays", "a single .npy array")
    with archive:
        missing = [k for k in _ARRAYS if k not in archive.files]
        if missing:
            raise expected(
                f"{path}",
                f"an .npz file with arrays {_ARRAYS}",
                f"no {missing} (has {archive.files})",
            )
        try:
            arrays = {k: archive[k] for k in (*_ARRAYS, "num_classes") if k in archive.files}
        except ValueError as err:  # object arrays need pickle, which is refused
            raise ValueError(f"{path}: an array cannot be read without pickle ({err}).") from err

    x_train = _images_nchw("x_train", arrays["x_train"])
    x_test = _images_nchw("x_test", arrays["x_test"])
    y_train = _labels("y_train", arrays["y_train"], len(x_train))
    y_test = _labels("y_test", arrays["y_test"], len(x_test))
    if "num_classes" in arrays:
        k = arrays["num_classes"]
        if k.size != 1 or not np.issubdtype(k.dtype, np.integer):
            raise expected("num_classes", "a scalar integer array", f"{k.dtype} {k.shape}")
        num_classes = check_int("num_classes", int(k.reshape(())), minimum=1)
    else:
        high = max([int(y.max()) for y in (y_train, y_test) if y.size], default=0)
        num_classes = high + 1
    return ImageDataset(
        name=path.stem,
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=num_classes,
    )
