"""Dataset names come from the registry: DATASETS, aliases and refusals in load_image_dataset."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

import longtail.data as ltdata
from longtail.data import images, load_image_dataset
from longtail.data.registry import get_dataset, list_datasets


def write_mnist(folder, n: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, shape in [
        ("train-images-idx3-ubyte", (n, 28, 28)),
        ("train-labels-idx1-ubyte", (n,)),
        ("t10k-images-idx3-ubyte", (2, 28, 28)),
        ("t10k-labels-idx1-ubyte", (2,)),
    ]:
        a = np.arange(np.prod(shape)).reshape(shape).astype(np.uint8) % 10
        header = bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
        (folder / f"{stem}.gz").write_bytes(gzip.compress(header + a.tobytes()))


def write_cifar10(parent) -> None:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_datasets_come_from_the_registry():
    assert images.DATASETS == tuple(list_datasets("classification"))
    assert ltdata.DATASETS is images.DATASETS
    for name in images.DATASETS:
        assert get_dataset(name).task == "classification"


def test_aliases_resolve(tmp_path):
    write_mnist(tmp_path / "fashion-mnist")
    write_cifar10(tmp_path)
    for alias in ("fmnist", "Fashion_MNIST", "FASHION-MNIST"):
        assert load_image_dataset(alias, tmp_path, download=False).name == "fashion-mnist"
    assert load_image_dataset("CIFAR-10", tmp_path, download=False).name == "cifar10"


def test_num_classes_comes_from_the_registry(tmp_path):
    write_mnist(tmp_path / "mnist")
    ds = load_image_dataset("mnist", tmp_path, download=False)
    assert ds.num_classes == get_dataset("mnist").num_classes == 10


def test_regression_dataset_is_refused_by_name():
    with pytest.raises(ValueError, match=r"`name_or_path`.*classification.*'diamonds'.*regression"):
        load_image_dataset("diamonds", download=False)


def test_unknown_name_suggests_registered_spellings():
    with pytest.raises(ValueError, match=r"Did you mean .*'fmnist'"):
        load_image_dataset("fmnst", download=False)
    with pytest.raises(ValueError, match=r"one of the datasets \('fashion-mnist'"):
        load_image_dataset("imagenet", download=False)
