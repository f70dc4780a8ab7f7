"""Image datasets from a folder: one sub-folder per class (PNG, JPEG, ...), or a Hugging Face
``datasets`` folder written by ``save_to_disk`` (the ``hf-datasets`` extra).

:func:`load_image_folder` reads a folder of class folders into an :class:`ImageDataset`, the
object every loader returns, so a folder goes through the engine like a registered dataset:
``longtail train --dataset path/to/folder`` (or ``TrainConfig(dataset="path/to/folder")``), with
any imbalance profile, ``"natural"`` included. Two layouts are read::

    pets/                      pets/
      train/                     cat/
        cat/  001.png ...          001.png ...
        dog/  ...                  ...
      test/                      dog/
        cat/  ...                  ...
        dog/  ...

* **split**: a ``train/`` folder (and usually ``test/``), each holding class folders. The classes
  are the class folders of both (sorted by name); a class of ``test/`` must have training
  images, a class of ``train/`` need not have test images. Without ``test/`` (or with one that
  holds no image in its class folders), the test set is split off ``train/`` as below. Other
  top-level entries (``val/``, a README) are ignored.
* **flat**: class folders only. A deterministic, stratified test set is split off:
  ``round(n_c · test_fraction)`` images of each class ``c`` (``TEST_FRACTION`` = 0.2 by
  default; at most ``n_c - 1``, so every class keeps a training image: a class of 1 or 2 images
  has no test image), namely those whose file path (relative to the class folder) has the
  smallest SHA-256. The split depends on the file names only -- not on the listing order of the
  file system, nor on a random seed -- and adding or removing images of a class moves few
  others between train and test.

Class folders are read recursively; the class names are the class folders' names, kept in
:attr:`ImageDataset.classes` (``("cat", "dog")``) and so in the results records, where
per-class tables and plots name the classes with them. Image files are recognised by their
suffix (:data:`IMAGE_SUFFIXES`, any case); other files (``.txt``, ``.csv``, ``Thumbs.db``) and
hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints``) are **ignored**. A class folder
that holds no image file (empty, or other files only) is no class -- it has no example -- and is
**left out with a warning** naming it (of ``train/`` and ``test/``: when it has no image in
either), unless no class folder holds an image (an error). A file with an image suffix that
Pillow cannot read is an **error** naming the file.

Images are decoded with Pillow (``pip install pillow``, the ``images`` extra):

* EXIF orientation is applied (``ImageOps.exif_transpose``), as a photo viewer shows them;
* every image gets the same channels: ``mode="RGB"`` (3 channels) or ``"L"`` (grey, 1 channel),
  by default those of the majority of the images (grey: Pillow modes ``1``, ``L``, ``LA``,
  ``I``, ``I;16``, ``F``; colour: the others, palette images included; a tie is RGB); an alpha
  channel is dropped;
* every image gets the same size ``size`` (an int for square images, or ``(height, width)``),
  resized with Pillow's bilinear filter (antialiased when shrinking), stretched to it (aspect
  ratio not kept, no crop). By default (``size=None``) images that all have one size keep it,
  and images of several sizes are resized to :data:`DEFAULT_SIZE` = 32 x 32 (with a warning).

The decoded ``uint8`` tensors are cached (``torch.save``, read back with ``weights_only=True``)
in ``cache_dir``, by default the user cache folder ``~/.cache/longtail/image-folders``
(``$XDG_CACHE_HOME`` when set), never next to the images: one file per folder (and settings),
named after the folder and a hash of its absolute path, holding a key made of the list of image
files, their sizes and modification times and the settings. A folder whose files changed (one
added, removed, renamed, rewritten) does not match the key and is read again, and the cache
file replaced. ``cache=False`` reads the folder every time and writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longtail._validation import check_in_range, expected
from longtail.data._fetch import cache_dir as _user_cache_dir
from longtail.data.dataset import ImageDataset

__all__ = [
    "DEFAULT_SIZE",
    "IMAGE_SUFFIXES",
    "TEST_FRACTION",
    "folder_stamp",
    "is_hf_dataset_folder",
    "load_folder",
    "load_hf_dataset",
    "load_image_folder",
]

#: The file suffixes read as images (compared in lower case).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: The share of each class set apart as test images when a folder has no ``test/`` split.
TEST_FRACTION = 0.2
#: The size ``(height, width)`` of images of several sizes, when ``size`` is not given.
DEFAULT_SIZE = (32, 32)

# Pillow modes read as grey-scale; every other mode is colour.
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_MODES = ("RGB", "L")
# Bumped when the cache file's content or the decoding changes: old caches are read again.
_CACHE_FORMAT = 1
# EXIF orientations that turn the image by 90 degrees (height and width swap).
_TURNED = frozenset({5, 6, 7, 8})


# ---- listing ---------------------------------------------------------------------------------
def _visible(name: str) -> bool:
    return not name.startswith(".")


def _subfolders(path: Path) -> list[Path]:
    return sorted(
        (Path(e.path) for e in os.scandir(path) if _visible(e.name) and e.is_dir()),
        key=lambda p: p.name,
    )


def _image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, recursively, in sorted order of their relative path;
    hidden files and folders, and files without an image suffix, are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if _visible(d)]
        for name in filenames:
            if _visible(name) and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _classes_of(split_dir: Path) -> dict[str, list[Path]]:
    return {d.name: _image_files(d) for d in _subfolders(split_dir)}


def _check_folder(path: str | os.PathLike) -> Path:
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder.")
    if not root.is_dir():
        raise expected("path", "a folder of class folders", f"{str(root)!r}, not a folder")
    return root


def _listing(root: Path) -> tuple[str, dict[str, dict[str, list[Path]]]]:
    """``(layout, {split: {class: files}})``: layout ``"split"`` (``train/``, ``test/``; an
    absent ``test/`` is ``{}``) or ``"flat"`` (the class folders as split ``"all"``)."""
    if (root / "train").is_dir():
        test = _classes_of(root / "test") if (root / "test").is_dir() else {}
        return "split", {"train": _classes_of(root / "train"), "test": test}
    if (root / "test").is_dir():
        raise expected(
            f"{root}", "a folder with train/ next to test/, or class folders only", "test/ alone"
        )
    return "flat", {"all": _classes_of(root)}


def _files_key(root: Path, files: Iterable[Path]) -> list[list[Any]]:
    out = []
    for f in files:
        st = f.stat()
        out.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def folder_stamp(path: str | os.PathLike) -> str:
    """A hex SHA-256 of the image files under ``path`` (relative paths, sizes, modification
    times) and its layout: it changes when the folder's images do, so a caller that keeps a
    loaded folder (the training engine) reads a changed folder again. For a Hugging Face
    ``datasets`` folder, of every file in it.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    root = _check_folder(path)
    if is_hf_dataset_folder(root):
        files = sorted(
            (p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root)
        )
        return _digest({"hf": _files_key(root, files)})
    layout, splits = _listing(root)
    listing = {
        split: {name: _files_key(root, files) for name, files in classes.items()}
        for split, classes in splits.items()
    }
    return _digest({"layout": layout, "files": listing})


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# ---- options ---------------------------------------------------------------------------------
def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, Sequence)
        or isinstance(size, str)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
        or min(size) < 1
    ):
        raise expected("size", "a positive int or (height, width) of positive ints", repr(size))
    return int(size[0]), int(size[1])


def _check_mode(mode: Any) -> str | None:
    if mode is None:
        return None
    key = str(mode).upper()
    if key in ("GREY", "GRAY", "GRAYSCALE"):
        key = "L"
    if key not in _MODES:
        raise expected("mode", "'RGB', 'L' (grey) or None (the majority's)", repr(mode))
    return key


def _check_fraction(test_fraction: Any) -> float:
    check_in_range("test_fraction", test_fraction, 0.0, 1.0)
    if test_fraction >= 1:
        raise expected("test_fraction", "a number in [0, 1)", repr(test_fraction))
    return float(test_fraction)


def _n_test(n: int, fraction: float) -> int:
    """Test images of a class of ``n`` images: ``round(n · fraction)`` (halves up), at most
    ``n - 1``."""
    return max(0, min(n - 1, math.floor(n * fraction + 0.5)))


def _stratified(
    items: dict[str, list[Any]], fraction: float, ident: Any
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Split each class's items into (train, test): the ``_n_test`` items of smallest
    SHA-256 of ``ident(class name, item)`` go to test; both keep the items' order."""
    train, test = {}, {}
    for name, members in items.items():
        k = _n_test(len(members), fraction)
        ranked = sorted(
            range(len(members)),
            key=lambda i: hashlib.sha256(ident(name, members[i])).hexdigest(),
        )
        chosen = set(ranked[:k])
        train[name] = [m for i, m in enumerate(members) if i not in chosen]
        test[name] = [m for i, m in enumerate(members) if i in chosen]
    return train, test


# ---- decoding --------------------------------------------------------------------------------
def _pil() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError as err:
        raise ImportError(
            "Reading image folders needs Pillow: pip install pillow (or longtail[images])."
        ) from err
    return Image, ImageOps


def _header(image: Any) -> tuple[str, tuple[int, int]]:
    """(mode, (height, width) as shown, EXIF orientation applied) without decoding pixels."""
    w, h = image.size
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a damaged EXIF block: the pixels may still be fine
        orientation = None
    if orientation in _TURNED:
        w, h = h, w
    return image.mode, (h, w)


def _decode(image: Any, mode: str, size: tuple[int, int]) -> np.ndarray:
    """``(C, H, W)`` uint8 pixels of a Pillow image: orientation, channels, size."""
    pil, ops = _pil()
    try:
        turned = image.getexif().get(0x0112, 1) != 1
    except Exception:  # a damaged EXIF block: the pixels as stored
        turned = False
    if turned:
        image = ops.exif_transpose(image) or image
    if image.mode != mode:
        if mode == "RGB" and image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
            image = image.convert("L")  # deep grey-scale has no direct RGB conversion
        image = image.convert(mode)
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), pil.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _choose(
    headers: Sequence[tuple[str, tuple[int, int]]],
    mode: str | None,
    size: tuple[int, int] | None,
    where: str,
) -> tuple[str, tuple[int, int]]:
    if mode is None:
        grey = sum(m in _GREY_MODES for m, _ in headers)
        mode = "L" if grey > len(headers) - grey else "RGB"
    if size is None:
        sizes = Counter(s for _, s in headers)
        if len(sizes) == 1:
            size = next(iter(sizes))
        else:
            size = DEFAULT_SIZE
            (h0, w0), (h1, w1) = min(sizes), max(sizes)
            warnings.warn(
                f"{where}: the images have {len(sizes)} sizes (height x width from "
                f"{h0}x{w0} to {h1}x{w1}); they are resized to {size[0]}x{size[1]}. To "
                "choose another size, load it in Python with "
                "longtail.data.load_image_folder(path, size=(H, W)) and np.savez its x_train, "
                "y_train, x_test, y_test for --dataset.",
                stacklevel=4,
            )
    return mode, size


def _read_files(
    files: Sequence[Path], mode: str | None, size: tuple[int, int] | None, where: str
) -> tuple[np.ndarray, str, tuple[int, int]]:
    """Decode ``files`` into ``(N, C, H, W)`` uint8, choosing mode and size when not given."""
    pil, _ = _pil()
    headers = []
    for f in files:
        try:
            with pil.open(f) as image:
                headers.append(_header(image))
        except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
            raise ValueError(
                f"{f}: not a readable image ({type(err).__name__}: {err}). Remove the file, or "
                f"rename it without an image suffix ({', '.join(IMAGE_SUFFIXES)}) to ignore it."
            ) from err
    mode, size = _choose(headers, mode, size, where) if files else (mode or "RGB", size or (1, 1))
    out = np.empty((len(files), 1 if mode == "L" else 3, *size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with pil.open(f) as image:
                out[i] = _decode(image, mode, size)
        except (OSError, ValueError, SyntaxError) as err:  # a truncated or damaged image
            raise ValueError(
                f"{f}: a damaged image, Pillow cannot decode it ({type(err).__name__}: {err})."
            ) from err
    return out, mode, size


# ---- caching ---------------------------------------------------------------------------------
def _cache_file(root: Path, cache_dir: str | os.PathLike | None, kind: str) -> Path:
    base = Path(cache_dir).expanduser() if cache_dir is not None else _user_cache_dir(kind)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name) or "folder"
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / f"{safe}-{tag}.pt"


def _cache_read(path: Path, key: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged or foreign file: read the folder again and replace it
        return None
    if not isinstance(cached, dict) or cached.get("key") != key:
        return None
    return cached


def _cache_write(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(content, tmp)
        os.replace(tmp, path)  # atomic: a reader sees the old file or the new one
    except OSError as err:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"Could not cache the decoded images in {path}: {err}", stacklevel=3)


def _dataset(name: str, content: dict[str, Any]) -> ImageDataset:
    classes = tuple(content["classes"])
    return ImageDataset(
        name=name,
        x_train=content["x_train"],
        y_train=content["y_train"],
        x_test=content["x_test"],
        y_test=content["y_test"],
        num_classes=len(classes),
        classes=classes,
    )


def _cached(
    root: Path,
    settings: dict[str, Any],
    cache: bool,
    cache_dir: str | os.PathLike | None,
    kind: str,
    build: Any,
) -> ImageDataset:
    """The dataset of ``root`` from the cache when its key matches, else ``build()``, cached."""
    key = _digest({"format": _CACHE_FORMAT, "stamp": folder_stamp(root), **settings})
    path = _cache_file(root, cache_dir, kind) if cache else None
    content = _cache_read(path, key) if path is not None else None
    if content is None:
        content = build()
        if path is not None:
            _cache_write(path, {**content, "key": key})
    _warn_skipped(root, content.get("skipped", []))  # on every load, the cached ones too
    return _dataset(root.resolve().name, content)


def _tensors(
    x_train: np.ndarray,
    y_train: Sequence[int],
    x_test: np.ndarray,
    y_test: Sequence[int],
    classes: Sequence[str],
) -> dict[str, Any]:
    return {
        "x_train": torch.from_numpy(x_train),
        "y_train": torch.as_tensor(list(y_train), dtype=torch.int64),
        "x_test": torch.from_numpy(x_test),
        "y_test": torch.as_tensor(list(y_test), dtype=torch.int64),
        "classes": list(classes),
    }


# ---- image folders ---------------------------------------------------------------------------
def load_image_folder(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    mode: str | None = None,
    test_fraction: float = TEST_FRACTION,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
) -> ImageDataset:
    """Load a folder of class folders (PNG, JPEG, ...) as an :class:`ImageDataset`.

    See the module's documentation for the layouts (``train/`` and ``test/`` of class folders,
    or class folders only with a stratified test split), the files read and ignored, the
    channels, size and cache.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     for name, n in (("cat", 6), ("dog", 3)):
        ...         os.makedirs(f"{tmp}/pets/{name}")
        ...         for i in range(n):
        ...             Image.new("RGB", (5, 4), (40 * i, 0, 9)).save(f"{tmp}/pets/{name}/{i}.png")
        ...     ds = load_image_folder(f"{tmp}/pets", cache=False)
        >>> ds
        ImageDataset(name='pets', train=7 x (3, 4, 5), test=2, num_classes=2)
        >>> ds.classes, ds.class_counts.tolist(), ds.y_test.tolist()
        (('cat', 'dog'), [5, 2], [0, 1])

    Args:
        path: The folder.
        size: Image size: an int (square) or ``(height, width)``; default (``None``) the
            images' own size when they all have one, else :data:`DEFAULT_SIZE` (32 x 32).
        mode: ``"RGB"`` or ``"L"`` (grey); default the majority's.
        test_fraction: The share of each class set apart as test images when there is no
            ``test/`` folder, in ``[0, 1)``. Default :data:`TEST_FRACTION` (0.2).
        cache_dir: Where the decoded tensors are cached; default the user cache folder
            ``~/.cache/longtail/image-folders``.
        cache: Read and write the cache. Default ``True``.

    Returns:
        The :class:`ImageDataset`, named after the folder, ``classes`` the class folders' names.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not a folder, has no class folder (or none with an image: one
            without is left out, with a warning), a test class has no training image, an
            image file cannot be read (named), or an option is out of range.
        ImportError: Without Pillow.
    """
    root = _check_folder(path)
    size_ = _check_size(size)
    mode_ = _check_mode(mode)
    fraction = _check_fraction(test_fraction)
    settings = {"size": size_, "mode": mode_, "test_fraction": fraction, "kind": "folder"}

    def build() -> dict[str, Any]:
        return _read_image_folder(root, size_, mode_, fraction)

    return _cached(root, settings, cache, cache_dir, "image-folders", build)


def _split_classes(
    classes: dict[str, list[Path]], parent: Path, fraction: float
) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """The stratified split of class folders under ``parent``, by the SHA-256 of each file's
    path relative to its class folder."""

    def ident(name: str, f: Path) -> bytes:
        return f.relative_to(parent / name).as_posix().encode()

    return _stratified(classes, fraction, ident)


def _read_image_folder(
    root: Path, size: tuple[int, int] | None, mode: str | None, fraction: float
) -> dict[str, Any]:
    layout, splits = _listing(root)
    where = "train/" if layout == "split" else "the folder"
    if layout == "flat":
        train, test = _split_classes(splits["all"], root, fraction)
    else:
        train, test = splits["train"], splits["test"]
        if not any(test.values()):  # no test/, or no image in it: split off train/
            train, test = _split_classes(train, root / "train", fraction)
    folders = sorted(set(train) | set(test))
    if not folders:
        raise ValueError(
            f"{root}: no class folder in {where} (expected one sub-folder of images per class)."
        )
    # a class folder without an image file (empty, or other files only) is no class: it has no
    # example; it is left out, with a warning naming it (see load_image_folder)
    skipped = [name for name in folders if not train.get(name) and not test.get(name)]
    classes = [name for name in folders if name not in skipped]
    if not classes:
        raise ValueError(
            f"{root}: no class folder in {where} holds an image file "
            f"({', '.join(IMAGE_SUFFIXES)}); the class folders {skipped} have none."
        )
    for name in classes:
        if not train.get(name):
            raise ValueError(
                f"{root}: class {name!r} has test images but no training image in train/{name}."
            )
    files = {
        split: [(f, c) for c, name in enumerate(classes) for f in part.get(name, [])]
        for split, part in (("train", train), ("test", test))
    }
    x_train, mode, size = _read_files([f for f, _ in files["train"]], mode, size, str(root))
    x_test, _, _ = _read_files([f for f, _ in files["test"]], mode, size, str(root))
    return {
        **_tensors(
            x_train,
            [c for _, c in files["train"]],
            x_test,
            [c for _, c in files["test"]],
            classes,
        ),
        "skipped": skipped,
    }


def _warn_skipped(root: Path, skipped: Sequence[str]) -> None:
    if skipped:
        names = ", ".join(repr(n) for n in skipped)
        warnings.warn(
            f"{root}: left out the class folder{'s' if len(skipped) > 1 else ''} {names}: "
            f"no image file ({', '.join(IMAGE_SUFFIXES)}) in it, so no example of "
            f"{'those classes' if len(skipped) > 1 else 'that class'}; the classes are the "
            "other folders.",
            UserWarning,
            stacklevel=4,  # the caller of load_image_folder
        )


# ---- Hugging Face datasets -------------------------------------------------------------------
def is_hf_dataset_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by ``datasets``' ``save_to_disk``: a
    ``DatasetDict`` (``dataset_dict.json``) or a ``Dataset`` (``state.json`` and
    ``dataset_info.json``)."""
    p = Path(path)
    return (p / "dataset_dict.json").is_file() or (
        (p / "state.json").is_file() and (p / "dataset_info.json").is_file()
    )


def _hf_columns(features: Any, image_column: str | None, label_column: str | None) -> tuple:
    import datasets

    names = list(features)
    if image_column is None:
        found = [n for n in names if isinstance(features[n], datasets.Image)]
        if not found:
            raise expected("image_column", "given: no column has the Image feature", names)
        image_column = found[0]
    if label_column is None:
        found = [n for n in names if isinstance(features[n], datasets.ClassLabel)]
        found = found or [n for n in names if n in ("label", "labels")]
        if not found:
            raise expected("label_column", "given: no ClassLabel column nor 'label'", names)
        label_column = found[0]
    for arg, col in (("image_column", image_column), ("label_column", label_column)):
        if col not in names:
            raise expected(arg, f"a column of the dataset, one of {names}", repr(col))
    if not isinstance(features[image_column], datasets.Image):
        raise expected(
            "image_column",
            "a column with the Image feature",
            f"{image_column!r}, a column of {features[image_column]}",
        )
    return image_column, label_column


def load_hf_dataset(
    path: str | os.PathLike,
    size: int | tuple[int, int] | None = None,
    mode: str | None = None,
    test_fraction: float = TEST_FRACTION,
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
) -> ImageDataset:
    """Load a Hugging Face ``datasets`` folder written by ``save_to_disk`` (needs the
    ``datasets`` package, 2.14 or later: ``pip install "longtail[hf-datasets]"``) as an
    :class:`ImageDataset`.

    A ``DatasetDict`` gives its ``"train"`` split and its ``"test"`` split (other splits, such
    as ``"validation"``, are ignored); without ``"test"`` (a ``Dataset`` too), the test set is
    split off the training rows as for an image folder without ``test/`` (``test_fraction`` per
    class, the rows of smallest SHA-256 of their row index). The image column is the first
    ``Image`` feature, the label column the first ``ClassLabel`` feature, whose names become
    the class names (else a column ``"label"`` or ``"labels"`` of integers or strings, its
    distinct values in sorted order the classes, named by their values); both can be named. A
    missing label (``-1`` in a ``ClassLabel`` column, as ``datasets`` writes it, or ``None``)
    is an error naming the split and row: drop those rows, or leave out an unlabelled test
    split. A format saved with the data (``set_format("torch")``) is ignored. The images are
    read one at a time (the encoded bytes of at most 256 rows in memory), in the ``Image``
    feature's ``mode`` when it has one; channels, size and cache as :func:`load_image_folder`.

    Raises:
        ImportError: If ``datasets`` is not installed (the message says to install it).
        ValueError: As :func:`load_image_folder`; a missing ``"train"`` split or column, a
            missing label or image (named by split and row), a label column of another type.
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            f"{path} is a Hugging Face datasets folder (save_to_disk): reading it needs the "
            'datasets package: pip install "longtail[hf-datasets]" (or pip install datasets)'
        ) from err
    root = _check_folder(path)
    size_ = _check_size(size)
    mode_ = _check_mode(mode)
    fraction = _check_fraction(test_fraction)
    settings = {
        "size": size_,
        "mode": mode_,
        "test_fraction": fraction,
        "image_column": image_column,
        "label_column": label_column,
        "kind": "hf",
    }

    def build() -> dict[str, Any]:
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise expected(f"{root}", "a DatasetDict with a 'train' split", list(loaded))
            train_ds, test_ds = loaded["train"], loaded.get("test")
        else:
            train_ds, test_ds = loaded, None
        return _read_hf(root, train_ds, test_ds, size_, mode_, fraction, image_column, label_column)

    return _cached(root, settings, cache, cache_dir, "image-folders", build)


# the Value dtypes read as labels when the label column is not a ClassLabel
_HF_LABEL_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_HF_STRING_DTYPES = ("string", "large_string")
# rows of a split read at a time: their encoded images only, never the whole split, in memory
_HF_BATCH = 256


def _hf_labels(
    root: Path, splits: dict[str, Any], label_column: str
) -> tuple[list[str], dict[str, list[int]]]:
    """The class names and each split's labels as class indices; a missing label (``-1`` of a
    ``ClassLabel``, ``None``) is an error naming the split and row."""
    import datasets

    feature = splits["train"].features[label_column]
    for split, ds in splits.items():
        if ds.features[label_column] != feature:
            raise expected(
                f"{root} {label_column}",
                f"the same feature in every split (train: {feature})",
                f"{ds.features[label_column]} in {split!r}",
            )
    if isinstance(feature, datasets.ClassLabel):
        classes = [str(n) for n in feature.names]
        index: dict[Any, int] = {i: i for i in range(len(classes))}
        want = f"labels in [0, {len(classes) - 1}] (the ClassLabel's {len(classes)} names)"
    elif isinstance(feature, datasets.Value) and feature.dtype in (
        *_HF_LABEL_DTYPES,
        *_HF_STRING_DTYPES,
    ):
        values = {v for ds in splits.values() for v in ds[label_column] if v is not None}
        classes = [str(v) for v in sorted(values)]
        index = {v: i for i, v in enumerate(sorted(values))}
        want = "a label in every row"
    else:
        raise expected(
            f"{root} {label_column}",
            "a ClassLabel column, or a column of integers or strings",
            f"a column of {feature}",
        )
    labels: dict[str, list[int]] = {}
    for split, ds in splits.items():
        column = list(ds[label_column])
        bad = [(row, v) for row, v in enumerate(column) if v not in index]
        if bad:  # datasets writes -1 for a missing ClassLabel label
            row, value = bad[0]
            raise expected(
                f"{root} {label_column}",
                want,
                f"label {value!r} in split {split!r}, row {row} ({len(bad)} such rows; -1 and "
                "None mark a missing label in datasets). Drop those rows (Dataset.filter) or, "
                "for an unlabelled test split, save the DatasetDict without it: the test set is "
                "then split off the training rows",
            )
        labels[split] = [index[v] for v in column]
    return classes, labels


def _hf_images(root: Path, split: str, ds: Any, column: str, rows: Sequence[int]) -> Iterable:
    """``(row, image)`` for ``rows`` of ``ds``, each image a lazily opened Pillow image (only
    its header read), ``_HF_BATCH`` encoded images in memory at a time."""
    import datasets

    pil, _ = _pil()
    raw = ds.cast_column(column, datasets.Image(decode=False))
    if list(rows) != list(range(len(ds))):
        raw = raw.select(rows)
    decoder = datasets.Image()
    for start in range(0, len(rows), _HF_BATCH):
        batch = raw[start : start + _HF_BATCH][column]
        for row, value in zip(rows[start : start + _HF_BATCH], batch, strict=True):
            where = f"{root}: split {split!r}, row {row}, column {column!r}"
            if value is None or (value.get("bytes") is None and value.get("path") is None):
                raise ValueError(f"{where}: no image (None).")
            try:
                if value.get("bytes") is not None:
                    image = pil.open(io.BytesIO(value["bytes"]))
                else:  # a file path (local or remote): datasets' own reader
                    image = decoder.decode_example(value)
            except (OSError, ValueError, SyntaxError) as err:
                raise ValueError(
                    f"{where}: not a readable image ({type(err).__name__}: {err})."
                ) from err
            yield row, image


def _read_hf(
    root: Path,
    train_ds: Any,
    test_ds: Any,
    size: tuple[int, int] | None,
    mode: str | None,
    fraction: float,
    image_column: str | None,
    label_column: str | None,
) -> dict[str, Any]:
    _, ops = _pil()
    train_ds = train_ds.with_format(None)  # python values, whatever format was saved
    image_column, label_column = _hf_columns(train_ds.features, image_column, label_column)
    splits = {"train": train_ds}
    if test_ds is not None:
        test_ds = test_ds.with_format(None)
        _hf_columns(test_ds.features, image_column, label_column)
        splits["test"] = test_ds
    classes, labels = _hf_labels(root, splits, label_column)
    rows = {split: list(enumerate(labels[split])) for split in splits}
    if test_ds is None:
        by_class: dict[str, list[Any]] = {}
        for i, c in rows["train"]:
            by_class.setdefault(str(c), []).append((i, c))
        train_part, test_part = _stratified(by_class, fraction, lambda _, r: str(r[0]).encode())
        rows = {
            "train": sorted(r for part in train_part.values() for r in part),
            "test": sorted(r for part in test_part.values() for r in part),
        }
        splits["test"] = train_ds
    counts = Counter(c for _, c in rows["train"])
    unseen = sorted({c for _, c in rows["test"]} - set(counts))
    if unseen:
        raise ValueError(f"{root}: class {classes[unseen[0]]!r} has test rows but no training row.")
    # the Image feature's own mode (datasets >= 2.19 converts to it when decoding)
    feature_mode = getattr(train_ds.features[image_column], "mode", None)

    def images(split: str) -> Iterable:
        ds, chosen = splits[split], [i for i, _ in rows[split]]
        return _hf_images(root, split, ds, image_column, chosen)

    # two passes, as for image files: the headers (mode, size), then the pixels, one at a time
    headers = []
    for _, image in images("train"):
        with image:
            shown, hw = _header(image)
            headers.append((feature_mode or shown, hw))
    if headers:
        mode, size = _choose(headers, mode, size, str(root))
    mode, size = mode or "RGB", size or (1, 1)
    arrays = {}
    for split in ("train", "test"):
        out = np.empty((len(rows[split]), 1 if mode == "L" else 3, *size), dtype=np.uint8)
        for j, (row, image) in enumerate(images(split)):
            with image:
                try:
                    if feature_mode and image.mode != feature_mode:
                        image = (ops.exif_transpose(image) or image).convert(feature_mode)
                    out[j] = _decode(image, mode, size)
                except (OSError, ValueError, SyntaxError) as err:  # truncated or damaged
                    raise ValueError(
                        f"{root}: split {split!r}, row {row}, column {image_column!r}: a damaged "
                        f"image, Pillow cannot decode it ({type(err).__name__}: {err})."
                    ) from err
        arrays[split] = out
    return _tensors(
        arrays["train"],
        [c for _, c in rows["train"]],
        arrays["test"],
        [c for _, c in rows["test"]],
        classes,
    )


def load_folder(path: str | os.PathLike, **options: Any) -> ImageDataset:
    """A folder as an :class:`ImageDataset`: :func:`load_hf_dataset` for a Hugging Face
    ``save_to_disk`` folder (:func:`is_hf_dataset_folder`), else :func:`load_image_folder`."""
    if is_hf_dataset_folder(path):
        return load_hf_dataset(path, **options)
    return load_image_folder(path, **options)
