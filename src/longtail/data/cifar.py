"""CIFAR-10 and CIFAR-100 from their standard "python version" archives.

Each archive (https://www.cs.toronto.edu/~kriz/cifar.html) unpacks to one folder of pickled
dicts: ``cifar-10-batches-py/`` with ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
(keys ``b"data"``, ``b"labels"``), ``cifar-100-python/`` with ``train`` and ``test`` (keys
``b"data"``, ``b"fine_labels"``). ``b"data"`` is ``uint8`` ``(N, 3072)``: per image the 1024
red, then green, then blue values, each row by row.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longtail._validation import check_choice, expected
from longtail.data._fetch import cache_dir, check_digests, download_verified
from longtail.data.dataset import ImageDataset

__all__ = ["load_cifar"]

_URL = "https://www.cs.toronto.edu/~kriz/"
_FOLDERS = {10: "cifar-10-batches-py", 100: "cifar-100-python"}
_ARCHIVES = {10: "cifar-10-python.tar.gz", 100: "cifar-100-python.tar.gz"}
# MD5 of the official archives, as https://www.cs.toronto.edu/~kriz/cifar.html publishes them
# (it publishes no other checksum); checked before any archive, downloaded or local, is
# extracted.
_ARCHIVE_MD5 = {10: "c58f30108f718f92721af3b95e74349a", 100: "eb9058c3a382ffc7106e4002c42a8d85"}
_SPLITS = {
    10: {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    100: {"train": ["train"], "test": ["test"]},
}
_LABEL_KEYS = {10: "labels", 100: "fine_labels"}
_IMAGE_BYTES = 3 * 32 * 32


def _has_files(folder: Path, num_classes: int) -> bool:
    names = [n for files in _SPLITS[num_classes].values() for n in files]
    return all((folder / n).is_file() for n in names)


def _extract(archive: Path, num_classes: int) -> Path:
    """Extract the archive's CIFAR folder next to it and return the folder.

    Only members inside the CIFAR folder are extracted, and only regular files and folders
    whose paths stay inside it (tarfile's ``"data"`` filter checks the same again where it
    exists). They are extracted into a temporary folder first and each file is then renamed
    into place, so an interrupted extraction never leaves a truncated batch file behind.
    """
    folder_name = _FOLDERS[num_classes]
    dest = archive.parent
    staging = Path(tempfile.mkdtemp(dir=dest, prefix=f".{folder_name}.", suffix=".part"))
    try:
        _extract_into(archive, num_classes, staging)
        (dest / folder_name).mkdir(exist_ok=True)
        for item in sorted((staging / folder_name).rglob("*")):
            target = dest / item.relative_to(staging)
            if item.is_dir():
                target.mkdir(exist_ok=True)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest / folder_name


def _extract_into(archive: Path, num_classes: int, dest: Path) -> None:
    folder_name = _FOLDERS[num_classes]
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = []
            for m in tar.getmembers():
                parts = Path(m.name).parts
                if not parts or parts[0] != folder_name:
                    continue
                if ".." in parts or Path(m.name).is_absolute() or not (m.isfile() or m.isdir()):
                    raise ValueError(f"{archive}: unsafe member {m.name!r} in the archive.")
                members.append(m)
            if not members:
                raise ValueError(
                    f"{archive}: the archive has no `{folder_name}/` folder; is it the CIFAR-"
                    f"{num_classes} python version ({_ARCHIVES[num_classes]})?"
                )
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python < 3.10.12: members are checked above
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ValueError(f"{archive}: not a readable .tar.gz archive ({err}).") from err


def _extract_checked(archive: Path, num_classes: int) -> Path:
    """The archive's folder next to it, extracted (once its MD5 is checked) unless complete."""
    folder = archive.parent / _FOLDERS[num_classes]
    if not _has_files(folder, num_classes):
        try:
            check_digests(archive, md5=_ARCHIVE_MD5[num_classes])
        except ValueError as err:
            # a local archive is the user's file: say what is wrong, but leave it in place
            raise ValueError(
                f"{err} It is not the official CIFAR-{num_classes} python archive "
                f"({_URL}{_ARCHIVES[num_classes]}), so it is not extracted. Delete it to "
                "download the official one, or unpack a copy you trust yourself and pass its "
                "folder."
            ) from None
        _extract(archive, num_classes)
    if not _has_files(folder, num_classes):
        names = ", ".join(n for files in _SPLITS[num_classes].values() for n in files)
        raise ValueError(f"{archive}: the archive lacks some of {folder.name}/{{{names}}}.")
    return folder


def _locate(root: Path, num_classes: int, download: bool) -> Path:
    folder_name, archive_name = _FOLDERS[num_classes], _ARCHIVES[num_classes]
    if root.is_file():
        return _extract_checked(root, num_classes)
    for folder in (root, root / folder_name):
        if _has_files(folder, num_classes):
            return folder
    archive = root / archive_name
    if archive.is_file():
        return _extract_checked(archive, num_classes)
    if root.name == folder_name:  # root is the (incomplete) folder itself: download beside it
        root, archive = root.parent, root.parent / archive_name
    names = ", ".join(n for files in _SPLITS[num_classes].values() for n in files)
    message = (
        f"CIFAR-{num_classes} not found: looked for {folder_name}/{{{names}}} in {root} and "
        f"for {root / archive_name}. To get the data: download=True (downloads "
        f"{_URL}{archive_name}), or download and unpack it yourself and pass the folder that "
        "holds it as `root` (`--data-dir` on the command line)."
    )
    if not download:
        raise FileNotFoundError(message)
    try:
        # checked against the published MD5 before it is renamed into place
        download_verified(_URL + archive_name, archive, md5=_ARCHIVE_MD5[num_classes])
    except OSError as err:  # urllib.error.URLError is an OSError
        raise FileNotFoundError(f"{message} Downloading into {root} failed: {err}") from err
    return _extract_checked(archive, num_classes)


def _latin1_encode(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into protocol-2 pickles, and nothing more."""
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed only as encode(str, 'latin1'), got {encoding!r}"
        )
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The globals a pickled numpy array names, mapped to this numpy's own objects.

    Arrays pickle as ``_reconstruct(ndarray, shape, dtype)`` plus a state (protocols 0 to 4) or
    ``_frombuffer(buffer, dtype, shape, order)`` (protocol 5), dtypes as ``dtype(...)`` plus a
    state. Pickles written under numpy 1 name the module ``numpy.core``, under numpy 2
    ``numpy._core``; both are mapped to the functions this numpy itself pickles with, which are
    taken from a pickled array (so no deprecated module is imported). None of them can call
    anything but numpy's array and dtype constructors.
    """
    reconstruct = np.zeros(1).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    allowed: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        if getattr(frombuffer, "__name__", "") == "_frombuffer":
            allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


_ALLOWED_GLOBALS = _numpy_globals()


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR batches: dicts, lists, bytes, str, numbers and numpy arrays only.

    Unpickling runs whatever callable a pickle names (a crafted file can name ``os.system``);
    every callable is resolved through :meth:`find_class` (also for the copyreg extension
    codes), and this one resolves only the few numpy constructors an array needs. Anything else
    stops the load before it is called.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names the global {module}.{name}; a CIFAR batch holds only dicts, lists, "
                "bytes and numpy arrays, so nothing else is loaded"
            ) from None


def _unpickle(path: Path) -> Any:
    """Load one batch file with :class:`_BatchUnpickler` (``encoding="bytes"``, as the
    dataset's page prescribes for these Python 2 pickles)."""
    with open(path, "rb") as f:
        return _BatchUnpickler(f, encoding="bytes").load()


def _get(batch: dict, key: str) -> Any:
    """``batch[b"key"]``, or ``batch["key"]`` for files pickled with str keys."""
    if key.encode() in batch:
        return batch[key.encode()]
    return batch.get(key)


def _read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    label_key = _LABEL_KEYS[num_classes]
    try:
        batch = _unpickle(path)
    except FileNotFoundError:
        raise
    except Exception as err:  # a corrupt pickle can raise almost anything
        raise ValueError(
            f"{path}: not a readable CIFAR pickle ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(batch, dict):
        raise expected(f"{path}", "a pickled dict", type(batch).__name__)
    data, labels = _get(batch, "data"), _get(batch, label_key)
    if data is None or labels is None:
        raise expected(
            f"{path}", f'a dict with keys b"data" and b"{label_key}"', f"keys {sorted(batch)}"
        )
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        raise expected(
            f'{path} b"data"',
            f"a uint8 array (N, {_IMAGE_BYTES})",
            f"{data.dtype} array of shape {data.shape}",
        )
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise expected(f'{path} b"{label_key}"', "integer labels", repr(labels)[:80]) from err
    if labels.ndim != 1 or len(labels) != len(data):
        raise expected(
            f'{path} b"{label_key}"', f"{len(data)} labels (one per image)", f"shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise expected(
            f'{path} b"{label_key}"', f"labels in [0, {num_classes - 1}]", f"label {bad}"
        )
    return data, labels


def load_cifar(
    root: str | os.PathLike | None = None,
    num_classes: int = 10,
    download: bool = True,
) -> ImageDataset:
    """Load CIFAR-10 or CIFAR-100 (50000 training and 10000 test images, 3 x 32 x 32).

    ``root`` may be the data folder itself (``.../cifar-10-batches-py``), the folder holding it,
    or the ``.tar.gz`` archive (extracted next to itself). A folder without the data but with
    the archive in it has the archive extracted. Otherwise, with ``download``, the archive is
    downloaded into ``root`` (announced on stderr), checked against its published MD5 before it
    is renamed into place, and extracted.

    Security: the files are Python pickles, and unpickling can run arbitrary code. They are read
    with a restricted unpickler that accepts only dicts, lists, bytes, numbers and numpy arrays
    and refuses any other global (a crafted file fails with a ``ValueError`` before its payload
    can run). An archive, downloaded or found locally, is extracted only if it has the official
    archive's published MD5, and extraction refuses members that would land outside its folder
    (absolute paths, ``..``, links, devices).

    Args:
        root: See above; default the user cache ``~/.cache/longtail`` (``$XDG_CACHE_HOME``).
        num_classes: 10 (CIFAR-10, default) or 100 (CIFAR-100, fine labels).
        download: Download the archive if the data is not found. Default ``True``.

    Returns:
        An :class:`ImageDataset` named ``"cifar10"`` or ``"cifar100"``, images ``uint8``
        ``(N, 3, 32, 32)`` (RGB).

    Raises:
        FileNotFoundError: If the data is not found and not downloaded (the message says how
            to get it).
        ValueError: If a file cannot be unpickled (or names anything but numpy arrays), lacks
            the expected keys, has data of the wrong dtype or size, or labels outside
            ``0 .. num_classes - 1``; or if an archive, downloaded or local, fails its MD5 check
            or holds an unsafe member.
    """
    check_choice("num_classes", num_classes, tuple(_FOLDERS))
    root = cache_dir() if root is None else Path(root)
    folder = _locate(root, num_classes, download)
    splits = {}
    for split, names in _SPLITS[num_classes].items():
        parts = [_read_batch(folder / name, num_classes) for name in names]
        data = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        splits[split] = (
            torch.from_numpy(data.reshape(-1, 3, 32, 32)),
            torch.from_numpy(labels),
        )
    return ImageDataset(
        name=f"cifar{num_classes}",
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        num_classes=num_classes,
    )
