"""The data of a multi-label run: loading, the validation split, label counts, and the data's
part of the run identity."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from longtail._validation import expected
from longtail.data.multilabel import cooccurrence_summary
from longtail.data.multilabel_images import MultiLabelImages, load_multilabel_dataset
from longtail.engine.multilabel.config import MultiLabelConfig
from longtail.engine.run import fingerprint

__all__ = ["MultiLabelData", "prepare_multilabel_data", "run_identity"]


@dataclass
class MultiLabelData:
    """A multi-label image set ready for training.

    ``x_*`` are ``uint8`` images ``(N, ch, H, W)``, ``y_*`` ``uint8`` multi-hot labels
    ``(N, C)``; ``counts`` the training positives of each label (int64), ``mean``/``std`` the
    channel statistics of the training images; ``val_source`` says where the validation split
    came from (``"data"``: the set's own, ``"train"``: set apart from the training examples);
    ``fingerprint`` identifies the six tensors, as the run's identity records them.
    """

    name: str
    label_names: tuple[str, ...]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    counts: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    val_source: str
    fingerprint: str
    construction: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    def summary(self) -> dict[str, Any]:
        """Sizes, label counts per split and each split's co-occurrence summary (head and tail:
        the first and last thirds of the labels by training positives)."""
        order = torch.argsort(-self.counts, stable=True).tolist()
        out: dict[str, Any] = {"fingerprint": self.fingerprint, "val_source": self.val_source}
        for split in ("train", "val", "test"):
            y = getattr(self, f"y_{split}")
            out[f"{split}_size"] = len(y)
            out[f"{split}_label_counts"] = y.sum(0, dtype=torch.int64).tolist()
            out[f"{split}_cooccurrence"] = cooccurrence_summary(y.numpy(), order)
        present = self.counts[self.counts > 0]
        out["num_labels"] = self.num_labels
        out["imbalance_ratio"] = float(present.max() / present.min())
        out["construction"] = self.construction
        return out


def _stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for chunk in x.split(2048):
        c = chunk.to(torch.float64) / 255.0
        s += c.sum(dim=(0, 2, 3))
        s2 += (c * c).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / max(n, 1)
    std = (s2 / max(n, 1) - mean**2).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _split(data: MultiLabelImages, fraction: float) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val): the file's own validation split, else a seeded
    ``fraction`` of its training examples (generator seeded 1, the same for every run)."""
    if data.x_val is not None and data.y_val is not None:
        return data.x_train, data.y_train, data.x_val, data.y_val
    n = len(data.y_train)
    k = round(fraction * n)
    if not 1 <= k < n:
        raise expected(
            "val_fraction",
            f"a fraction that leaves both splits non-empty out of {n} training examples",
            fraction,
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    val, train = torch.sort(perm[:k]).values, torch.sort(perm[k:]).values
    return data.x_train[train], data.y_train[train], data.x_train[val], data.y_train[val]


def _file_stamp(dataset: str, data_dir: str | None) -> Any:
    for p in (Path(dataset), Path(data_dir or ".") / dataset):
        if p.is_file():
            st = os.stat(p)
            return (str(p.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
    return None


@functools.lru_cache(maxsize=4)
def _prepare(
    dataset: str, data_dir: str | None, download: bool, fraction: float, stamp: Any
) -> MultiLabelData:
    data = load_multilabel_dataset(dataset, data_dir=data_dir, download=download)
    x_train, y_train, x_val, y_val = _split(data, fraction)
    counts = y_train.sum(0, dtype=torch.int64)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        names = ", ".join(repr(data.label_names[i]) for i in empty[:5])
        raise expected(
            "y_train",
            "at least one positive example of every label (the long-tailed losses divide by "
            "the label counts)",
            f"none of label{'s' if len(empty) > 1 else ''} {names} in {dataset}"
            + (
                f" once val_fraction={fraction:g} of its training examples were set apart as "
                "the validation split (it has no x_val): lower --val-fraction, or give x_val"
                if len(x_val)
                and data.x_val is None
                and bool((data.y_train.sum(0)[empty] > 0).all())
                else ""
            ),
        )
    mean, std = _stats(x_train)
    return MultiLabelData(
        name=data.name,
        label_names=data.label_names,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=data.x_test,
        y_test=data.y_test,
        counts=counts,
        mean=mean,
        std=std,
        val_source="data" if data.x_val is not None else "train",
        fingerprint=fingerprint(x_train, y_train, x_val, y_val, data.x_test, data.y_test),
        construction=data.construction,
    )


def prepare_multilabel_data(config: MultiLabelConfig) -> MultiLabelData:
    """Load (or build) the data set of ``config`` and set its validation split apart (cached:
    the runs of a grid share one load; a file replaced at the same path is read again).

    Raises:
        ValueError: an unknown name, a malformed ``.npz``, a label without training positives.
        FileNotFoundError: a missing file, or a registered set's source images not found.
    """
    return _prepare(
        config.dataset,
        config.data_dir,
        config.download,
        config.val_fraction,
        _file_stamp(config.dataset, config.data_dir),
    )


def run_identity(config: MultiLabelConfig, data: MultiLabelData | None = None) -> dict[str, Any]:
    """Everything that determines the run of ``config``: its config identity and its data."""
    data = prepare_multilabel_data(config) if data is None else data
    return {**config.identity(), "data": data.fingerprint}
