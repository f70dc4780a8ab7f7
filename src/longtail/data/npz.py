"""Image datasets stored as NumPy ``.npz`` archives (any data set, in a few arrays)."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from longtail._labels import check_int
from longtail._validation import expected
from longtail.data.dataset import ImageDataset

__all__ = ["images_nchw", "load_npz", "read_npz_arrays"]

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
# A zip archive starts with a local file header, or with the end record when it is empty.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
# What a damaged archive can raise from zipfile, zlib and numpy's .npy reader: a bad header or
# CRC, a truncated stream, an unsupported compression, a header that does not parse, or a shape
# too large to allocate.
_CORRUPT = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    struct.error,
    SyntaxError,
    NotImplementedError,
    RuntimeError,
    MemoryError,
)
# Float labels are accepted when they are whole numbers that float64 holds exactly.
_FLOAT_EXACT = 2**53


def images_nchw(name: str, x: np.ndarray) -> np.ndarray:
    """``uint8`` images ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)`` as ``(N, C, H, W)``
    (see :func:`load_npz`); ``name`` is the array's name in error messages.

    The channel axis of a 4-D array is the one of 1-4 entries (grey, grey + alpha, RGB, RGBA)
    when only one end has so few; else the end that is not one of two equal sides (square
    images with more channels); else axis 1.
    """
    if x.dtype != np.uint8:
        fix = ""
        if np.issubdtype(x.dtype, np.floating):
            fix = " (from values in [0, 1]: (x * 255).round().astype(numpy.uint8))"
        elif np.issubdtype(x.dtype, np.integer):
            fix = " (from values in 0..255: x.astype(numpy.uint8))"
        raise expected(name, "uint8 images (pixel values 0..255)", f"dtype {x.dtype}{fix}")
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        _, a, h, b = x.shape  # a: axis 1, b: the last axis
        few = (1, 2, 3, 4)
        if (a in few) != (b in few):  # one end has the few entries of a channel axis
            channels_last = b in few
        else:  # neither or both: the end that is not a side of the square
            channels_last = a == h and b != h
        if channels_last:
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x
    raise expected(
        name, "images (N, H, W), (N, C, H, W) or (N, H, W, C)", f"shape {tuple(x.shape)}"
    )


_images_nchw = images_nchw  # the older private name


def _labels(name: str, y: np.ndarray, n: int) -> np.ndarray:
    """The labels as ``int64``, as they are in the file (not yet renumbered). A column
    ``(N, 1)`` (``y.reshape(-1, 1)``, a one-column table) is read as the ``N`` labels it holds."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != n:
        hint = ""
        if y.ndim == 2 and y.shape[0] == n and y.size and np.isin(y, (0, 1)).all():
            if (y.sum(1) == 1).all():
                hint = " (one-hot rows: their class indices are y.argmax(1))"
            else:
                hint = " (a multi-hot matrix: train it with --task multilabel)"
        got = f"shape {tuple(y.shape)}{hint}"
        raise expected(name, f"{n} labels (one per image, 1-D)", got)
    if np.issubdtype(y.dtype, np.floating):
        # labels saved as floats (3.0, 7.0) are common; a fraction or NaN is not a class
        bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) >= _FLOAT_EXACT)
        if bad.any():
            value = y[np.argmax(bad)].item()
            raise expected(name, "integer class labels", f"the non-integer label {value!r}")
        return y.astype(np.int64)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise expected(name, "integer class labels", f"dtype {y.dtype}")
    if y.dtype == np.uint64 and y.size and int(y.max()) > np.iinfo(np.int64).max:
        raise expected(name, "labels below 2**63", f"label {int(y.max())}")
    return y.astype(np.int64)


def read_npz_arrays(
    path: Path, optional: tuple[str, ...] = ("num_classes",)
) -> dict[str, np.ndarray]:
    """The arrays ``x_train, y_train, x_test, y_test`` of an ``.npz`` file, and those of
    ``optional`` it has, with a clear error for anything that is not such a file (empty, not a
    zip archive, damaged, a missing array, an object array that needs pickle)."""
    with open(path, "rb") as f:  # FileNotFoundError (and IsADirectoryError) pass through
        head = f.read(16)
    if not head:
        raise ValueError(f"{path}: the file is empty (0 bytes), not an .npz archive.")
    if head.startswith(_NPY_MAGIC):
        raise expected(f"{path}", "an .npz archive of named arrays", "a single .npy array")
    if not head.startswith(_ZIP_MAGIC):
        raise ValueError(
            f"{path}: not an .npz archive: an .npz file is a zip archive (it starts with the "
            f"bytes 'PK'), but this file starts with {head!r}."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except _CORRUPT as err:
        raise ValueError(
            f"{path}: a damaged .npz archive (its zip directory cannot be read: "
            f"{type(err).__name__}: {err})."
        ) from err
    with archive:
        missing = [k for k in _ARRAYS if k not in archive.files]
        if missing:
            raise expected(
                f"{path}",
                f"an .npz file with arrays {_ARRAYS}",
                f"no {missing} (has {archive.files})",
            )
        arrays = {}
        for key in (*_ARRAYS, *optional):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" in str(err):  # object arrays need pickle, which is refused
                    raise ValueError(
                        f"{path}: array {key!r} is an object array, which cannot be read "
                        f"without pickle ({err})."
                    ) from err
                raise ValueError(f"{path}: array {key!r} is damaged (ValueError: {err}).") from err
            except _CORRUPT as err:
                raise ValueError(
                    f"{path}: array {key!r} is damaged ({type(err).__name__}: {err})."
                ) from err
    return arrays


_read = read_npz_arrays  # the older private name


def load_npz(path: str | os.PathLike) -> ImageDataset:
    """Load an image dataset from an ``.npz`` file with arrays ``x_train, y_train, x_test, y_test``.

    Images must be ``uint8``. Their layout is read from their shape:

    * ``(N, H, W)``: grey-scale; a channel dimension is added, giving ``(N, 1, H, W)``;
    * ``(N, C, H, W)``: used as it is;
    * ``(N, H, W, C)``: recognised when the last dimension has 1-4 entries (grey, grey +
      alpha, RGB, RGBA) and the second does not, or, when both or neither do, when the second
      equals the third and the last does not (square images of more channels); transposed to
      ``(N, C, H, W)``. Any other 4-D array is read as ``(N, C, H, W)``.

    Labels are integers (integer dtype, or floats that are whole numbers such as ``3.0``).
    With the optional scalar array ``num_classes`` = ``K`` in the file, they are used as they
    are and must lie in ``0 .. K - 1`` (classes without any example are allowed). Without it,
    the classes are the distinct labels of train and test together: labels that are not already
    ``0 .. K - 1`` (say ``{3, 7, 42}``, or negative ones) are renumbered ``0 .. K - 1`` in
    sorted order, and :attr:`ImageDataset.classes` keeps the original label of each class
    (``(3, 7, 42)``). Every class of the test set must have a training example. The dataset is
    named after the file's stem.

    Example:
        >>> import tempfile, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = f"{tmp}/toy.npz"
        ...     np.savez(
        ...         path,
        ...         x_train=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        ...         y_train=np.array([3, 7, 42, 3, 7, 42]),
        ...         x_test=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
        ...         y_test=np.array([42, 3]),
        ...     )
        ...     ds = load_npz(path)
        >>> ds
        ImageDataset(name='toy', train=6 x (3, 8, 8), test=2, num_classes=3)
        >>> ds.classes, ds.y_test.tolist()
        ((3, 7, 42), [2, 0])

    Args:
        path: The ``.npz`` file (read with ``allow_pickle=False``).

    Returns:
        An :class:`ImageDataset`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is empty, not an ``.npz`` (zip) archive or a damaged one (the
            message names the file and says which), an array is missing or needs pickle, the
            images are not ``uint8`` or not of an accepted shape, train and test images differ
            in shape, the label and image counts differ, a label is not an integer (``2.5``), a
            label is outside ``0 .. num_classes - 1`` when the file gives ``num_classes``, or a
            class of the test set has no training example (named by its original label).
    """
    path = Path(path)
    arrays = read_npz_arrays(path)
    x_train = images_nchw("x_train", arrays["x_train"])
    x_test = images_nchw("x_test", arrays["x_test"])
    y_train = _labels("y_train", arrays["y_train"], len(x_train))
    y_test = _labels("y_test", arrays["y_test"], len(x_test))
    classes = None
    if "num_classes" in arrays:
        k = arrays["num_classes"]
        if k.size != 1 or not np.issubdtype(k.dtype, np.integer):
            raise expected("num_classes", "a scalar integer array", f"{k.dtype} {k.shape}")
        num_classes = check_int("num_classes", int(k.reshape(())), minimum=1)
    else:
        labels = np.unique(np.concatenate([y_train, y_test]))
        num_classes = max(len(labels), 1)
        if not np.array_equal(labels, np.arange(len(labels))):
            # renumber in sorted order; np.searchsorted finds each label's rank in `labels`
            y_train = np.searchsorted(labels, y_train).astype(np.int64)
            y_test = np.searchsorted(labels, y_test).astype(np.int64)
            classes = tuple(labels.tolist())
    ds = ImageDataset(
        name=path.stem,
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=num_classes,
        classes=classes,
    )
    _check_test_classes(path, ds)
    return ds


def _check_test_classes(path: Path, ds: ImageDataset) -> None:
    """Refuse a test class without training examples: no model can learn it, and the
    per-class quantities of long-tailed losses (``log n_c``, ``n_c ** -q``) are infinite."""
    if not ds.y_test.numel():
        return
    in_test = torch.bincount(ds.y_test, minlength=ds.num_classes) > 0
    unseen = torch.nonzero(in_test & (ds.class_counts == 0)).flatten().tolist()
    if unseen:
        names = ", ".join(str(ds.classes[i]) for i in unseen[:10])
        more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
        raise expected(
            f"{path} y_test",
            "labels of classes that have training examples",
            f"class{'es' if len(unseen) > 1 else ''} {names}{more} (original label"
            f"{'s' if len(unseen) > 1 else ''}) in the test set but not in y_train",
        )
