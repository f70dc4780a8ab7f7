"""Tests for longtail.data image datasets: IDX, CIFAR and .npz loaders, and batch augmentation.

Every loader is tested on tiny files written here into ``tmp_path``; nothing touches the network
(downloads are tested with ``urllib.request.urlopen`` served from memory).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import longtail.data as ltdata
from longtail.data import (
    DATASETS,
    ImageDataset,
    load_cifar,
    load_image_dataset,
    load_mnist,
    load_npz,
    normalize,
    random_crop_flip,
    read_idx,
)
from longtail.data import cifar as cifar_module
from longtail.data import idx as idx_module

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---- writers of tiny files -------------------------------------------------------------------
def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file: magic 0 0 code ndim, big-endian uint32 dims, then the bytes."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def mnist_arrays(seed: int = 0, n_train: int = 30, n_test: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "train": (
            rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            (np.arange(n_train) % 10).astype(np.uint8),
        ),
        "test": (
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            (np.arange(n_test) % 10).astype(np.uint8),
        ),
    }


def write_mnist(folder: Path, gz: bool, arrays: dict | None = None) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or mnist_arrays()
    for split, (images_name, labels_name) in MNIST_FILES.items():
        write_idx(folder / images_name, arrays[split][0], gz)
        write_idx(folder / labels_name, arrays[split][1], gz)
    return arrays


def cifar_arrays(num_classes: int, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, n)]
    return data, labels


def write_pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar(parent: Path, num_classes: int, per_file: int = 4) -> dict:
    """A CIFAR folder in the official layout with `per_file` images per pickle file."""
    if num_classes == 10:
        folder = parent / "cifar-10-batches-py"
        names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        label_key = b"labels"
    else:
        folder = parent / "cifar-100-python"
        names = {"train": ["train"], "test": ["test"]}
        label_key = b"fine_labels"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, files in names.items():
        datas, labels = [], []
        for i, name in enumerate(files):
            n = per_file * (5 if num_classes == 100 and split == "train" else 1)
            data, lab = cifar_arrays(num_classes, n, seed=10 * (split == "test") + i)
            batch = {b"data": data, label_key: lab, b"batch_label": name.encode()}
            if num_classes == 100:
                batch[b"coarse_labels"] = [v // 5 for v in lab]
            write_pickle(folder / name, batch)
            datas.append(data)
            labels.extend(lab)
        out[split] = (np.concatenate(datas), np.array(labels))
    return out


def make_tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


# ---- read_idx --------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "a-idx3-ubyte", a, gz)
    out = read_idx(path, ndim=3)
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, a)


def test_read_idx_truncated_names_file_and_byte_counts(tmp_path):
    a = np.zeros((4, 3, 3), dtype=np.uint8)
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(a)[:-5])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte.*truncated.*expected 36 bytes.*got 31"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((100, 8, 8), np.uint8)))[:-20])
    with pytest.raises(ValueError, match=r"x\.gz"):
        read_idx(path)


def test_read_idx_overlong(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match=r"over-long.*expected 3 bytes.*got 4"):
        read_idx(path)


def test_read_idx_bad_header(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02" + idx_bytes(np.zeros(3, np.uint8))[2:])
    with pytest.raises(ValueError, match="magic number"):
        read_idx(path)
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8), code=0x0D))
    with pytest.raises(ValueError, match="0x08"):
        read_idx(path)
    path.write_bytes(idx_bytes(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="3 dimensions"):
        read_idx(path, ndim=3)
    path.write_bytes(b"\x00\x00\x08\x02\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(path)


# ---- load_mnist ------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_root(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    ds = load_mnist(tmp_path, variant="mnist", download=False)
    assert ds.name == "mnist" and ds.num_classes == 10
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_train.dtype == torch.uint8
    assert ds.y_train.dtype == torch.int64 and ds.x_test.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.x_train[:, 0].numpy(), arrays["train"][0])
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test"][1])
    assert ds.class_counts.tolist() == [3] * 10


def test_load_mnist_variant_subfolder(tmp_path):
    write_mnist(tmp_path / "fashion-mnist", gz=True)
    assert load_mnist(tmp_path, download=False).name == "fashion-mnist"


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """No system-wide Fashion-MNIST, and an empty user cache."""
    monkeypatch.setattr(idx_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_load_mnist_missing_says_how_to_get_it(no_system_data):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message and "download=True" in message
    assert str(no_system_data / "system") in message
    assert str(no_system_data / "cache" / "longtail" / "fashion-mnist") in message
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_mnist(no_system_data / "empty", variant="mnist", download=False)


def test_load_mnist_search_order(no_system_data):
    write_mnist(no_system_data / "cache" / "longtail" / "mnist", gz=False)
    assert len(load_mnist(variant="mnist", download=False).x_train) == 30
    write_mnist(no_system_data / "system", gz=True, arrays=mnist_arrays(n_train=20))
    write_mnist(
        no_system_data / "cache" / "longtail" / "fashion-mnist", True, mnist_arrays(n_train=40)
    )
    assert len(load_mnist(download=False).x_train) == 20  # the system folder comes first


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    """Serve `files` (url -> bytes) through urllib.request.urlopen; return the urls asked for."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url not in files:
            raise urllib.error.URLError(f"no route to {url}")
        return FakeResponse(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_load_mnist_download(no_system_data, monkeypatch, capsys):
    arrays = mnist_arrays(seed=3)
    base = idx_module._MIRRORS["fashion-mnist"][0]
    assert base.startswith("https://")
    files = {}
    for split, names in MNIST_FILES.items():
        for name, array in zip(names, arrays[split], strict=True):
            files[f"{base}{name}.gz"] = data = gzip.compress(idx_bytes(array))
            # these stand-in files pass the check only under their own checksums
            digest = hashlib.sha256(data).hexdigest()
            monkeypatch.setitem(idx_module._SHA256["fashion-mnist"], f"{name}.gz", digest)
    asked = serve(monkeypatch, files)
    ds = load_mnist(download=True)
    cache = no_system_data / "cache" / "longtail" / "fashion-mnist"
    assert sorted(asked) == sorted(files)
    assert sorted(p.name for p in cache.iterdir()) == sorted(u.rsplit("/", 1)[1] for u in files)
    assert f"to {cache}" in capsys.readouterr().err
    np.testing.assert_array_equal(ds.x_test[:, 0].numpy(), arrays["test"][0])
    # a second call finds the files and downloads nothing
    asked.clear()
    load_mnist(download=True)
    assert asked == []


def test_load_mnist_download_failure_is_file_not_found(no_system_data, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_mnist(download=True)
    cache = no_system_data / "cache" / "longtail" / "fashion-mnist"
    assert not any(cache.iterdir())  # no partial file left behind


def test_load_mnist_inconsistent_files(tmp_path):
    arrays = mnist_arrays()
    arrays["train"] = (arrays["train"][0], arrays["train"][1][:-1])
    write_mnist(tmp_path / "a", gz=False, arrays=arrays)
    with pytest.raises(ValueError, match="30 labels"):
        load_mnist(tmp_path / "a", download=False)
    arrays = mnist_arrays()
    arrays["test"][1][3] = 10
    write_mnist(tmp_path / "b", gz=False, arrays=arrays)
    with pytest.raises(ValueError, match=r"labels in \[0, 9\]"):
        load_mnist(tmp_path / "b", download=False)


def test_load_mnist_bad_variant():
    with pytest.raises(ValueError, match="variant"):
        load_mnist(variant="kmnist", download=False)


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason=f"{REAL_FASHION} absent")
def test_real_fashion_mnist():
    ds = load_mnist(REAL_FASHION, download=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.class_counts.tolist() == [6000] * 10
    assert torch.bincount(ds.y_test).tolist() == [1000] * 10
    mean, std = ds.channel_stats()
    assert mean[0] == pytest.approx(0.2860, abs=1e-4) and std[0] == pytest.approx(0.3530, abs=1e-4)


# ---- load_cifar ------------------------------------------------------------------------------
def check_cifar(ds, arrays, num_classes):
    assert ds.name == f"cifar{num_classes}" and ds.num_classes == num_classes
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    assert ds.x_test.shape == (4, 3, 32, 32) and ds.y_test.dtype == torch.int64
    # row i of b"data" is the image's red plane, then green, then blue
    data, labels = arrays["train"]
    np.testing.assert_array_equal(ds.x_train[7, 1].numpy(), data[7, 1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(ds.y_train.numpy(), labels)
    np.testing.assert_array_equal(ds.y_test.numpy(), arrays["test"][1])


@pytest.mark.parametrize("num_classes", [10, 100])
def test_load_cifar_folder_or_parent(tmp_path, num_classes):
    arrays = write_cifar(tmp_path, num_classes)
    folder = tmp_path / cifar_module._FOLDERS[num_classes]
    check_cifar(load_cifar(tmp_path, num_classes, download=False), arrays, num_classes)
    check_cifar(load_cifar(folder, num_classes, download=False), arrays, num_classes)


@pytest.mark.parametrize("num_classes", [10, 100])
def test_load_cifar_archive(tmp_path, monkeypatch, num_classes):
    arrays = write_cifar(tmp_path / "src", num_classes)
    name = cifar_module._ARCHIVES[num_classes]
    archive = make_tar(tmp_path / "src" / cifar_module._FOLDERS[num_classes], tmp_path / name)
    # a local archive is extracted only with the official MD5: give this one's as official
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, num_classes, md5)
    (tmp_path / "a").mkdir()
    moved = archive.rename(tmp_path / "a" / name)
    check_cifar(load_cifar(moved, num_classes, download=False), arrays, num_classes)
    assert (tmp_path / "a" / cifar_module._FOLDERS[num_classes]).is_dir()
    # a folder holding only the archive has it extracted
    (tmp_path / "b").mkdir()
    moved.rename(tmp_path / "b" / name)
    check_cifar(load_cifar(tmp_path / "b", num_classes, download=False), arrays, num_classes)


def test_load_cifar_download(tmp_path, monkeypatch, capsys):
    arrays = write_cifar(tmp_path / "src", 10)
    archive = make_tar(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "src" / "a.tar.gz")
    payload = archive.read_bytes()
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    asked = serve(monkeypatch, {url: payload})
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, 10, hashlib.md5(payload).hexdigest())
    ds = load_cifar(tmp_path / "data", download=True)
    assert asked == [url] and "downloading" in capsys.readouterr().err
    check_cifar(ds, arrays, 10)
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").is_file()


def test_load_cifar_download_bad_checksum(tmp_path, monkeypatch):
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    serve(monkeypatch, {url: b"not the archive"})
    with pytest.raises(ValueError, match="MD5"):
        load_cifar(tmp_path, 100, download=True)
    assert not any(tmp_path.iterdir())


def test_load_cifar_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=True.*--data-dir"):
        load_cifar(tmp_path, 10, download=False)
    write_cifar(tmp_path, 100)  # CIFAR-100 data is not CIFAR-10 data
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar(tmp_path, 10, download=False)


def test_load_cifar_corrupt_files(tmp_path):
    write_cifar(tmp_path, 10)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").write_bytes(b"garbage, not a pickle")
    with pytest.raises(ValueError, match=r"data_batch_3.*not a readable CIFAR pickle"):
        load_cifar(tmp_path, download=False)
    write_pickle(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match=r'data_batch_3.*b"labels"'):
        load_cifar(tmp_path, download=False)
    write_pickle(
        folder / "data_batch_3", {b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}
    )
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        load_cifar(tmp_path, download=False)
    write_pickle(folder / "data_batch_3", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})
    with pytest.raises(ValueError, match="2 labels"):
        load_cifar(tmp_path, download=False)
    write_pickle(folder / "data_batch_3", [1, 2, 3])
    with pytest.raises(ValueError, match="a pickled dict"):
        load_cifar(tmp_path, download=False)


def test_load_cifar_label_out_of_range(tmp_path):
    write_cifar(tmp_path, 10)
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", bad)
    with pytest.raises(ValueError, match=r"test_batch.*labels in \[0, 9\].*label 10"):
        load_cifar(tmp_path, download=False)


def test_load_cifar_bad_archive(tmp_path, monkeypatch):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ValueError, match=r"MD5 .*not the official CIFAR-10"):
        load_cifar(tmp_path, download=False)
    # even a file that passed the checksum can fail to open
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, 10, hashlib.md5(b"not a tar").hexdigest())
    with pytest.raises(ValueError, match=r"not a readable \.tar\.gz"):
        load_cifar(tmp_path, download=False)
    with pytest.raises(ValueError, match="num_classes"):
        load_cifar(tmp_path, num_classes=20, download=False)


# ---- load_npz --------------------------------------------------------------------------------
def npz_arrays(layout: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    shape = {"NHW": (5, 6, 7), "NCHW": (5, 3, 6, 7), "NHWC": (5, 6, 7, 3), "NHW1": (5, 6, 7, 1)}
    x_train = rng.integers(0, 256, shape[layout], dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, *shape[layout][1:]), dtype=np.uint8)
    return {
        "x_train": x_train,
        "y_train": np.array([0, 1, 2, 4, 1]),
        "x_test": x_test,
        "y_test": np.array([4, 0], dtype=np.int32),
    }


@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC", "NHW1"])
def test_load_npz_layouts(tmp_path, layout):
    arrays = npz_arrays(layout)
    path = tmp_path / f"set_{layout}.npz"
    np.savez_compressed(path, **arrays)
    ds = load_npz(path)
    to_nchw = {
        "NHW": lambda a: a[:, None],
        "NCHW": lambda a: a,
        "NHWC": lambda a: a.transpose(0, 3, 1, 2),
        "NHW1": lambda a: a.transpose(0, 3, 1, 2),
    }[layout]
    # labels 0, 1, 2, 4: renumbered to 0..3, class 3 standing for label 4
    assert ds.name == f"set_{layout}" and ds.num_classes == 4 and ds.classes == (0, 1, 2, 4)
    assert ds.x_train.is_contiguous() and ds.x_train.dtype == torch.uint8
    np.testing.assert_array_equal(ds.x_train.numpy(), to_nchw(arrays["x_train"]))
    np.testing.assert_array_equal(ds.x_test.numpy(), to_nchw(arrays["x_test"]))
    assert ds.y_test.dtype == torch.int64 and ds.y_test.tolist() == [3, 0]


def test_load_npz_num_classes_array(tmp_path):
    path = tmp_path / "k.npz"
    np.savez(path, **npz_arrays("NHW"), num_classes=np.array(8))
    ds = load_npz(path)
    # with num_classes in the file, labels are used as they are (no renumbering)
    assert ds.num_classes == 8 and ds.class_counts.tolist() == [1, 2, 1, 0, 1, 0, 0, 0]
    assert ds.classes == tuple(range(8)) and ds.y_test.tolist() == [4, 0]
    np.savez(path, **npz_arrays("NHW"), num_classes=np.array(4))
    with pytest.raises(ValueError, match=r"y_train.*labels in \[0, 3\].*label 4"):
        load_npz(path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"x_test": None}, r"x_test"),
        ({"x_train": np.zeros((5, 6, 7), np.float32)}, "uint8"),
        ({"x_train": np.zeros((5, 6), np.uint8)}, r"\(N, H, W\)"),
        ({"y_train": np.array([0, 1, 2])}, "5 labels"),
        ({"y_train": np.array([0, 1, 2.5, 0, 1])}, "integer class labels.*non-integer label 2.5"),
        ({"y_train": np.array([True, False, True, True, False])}, "integer class labels"),
        ({"y_test": np.array([4, 3])}, r"class 3 .*in the test set but not in y_train"),
        ({"x_test": np.zeros((2, 6, 8), np.uint8)}, "training images' shape"),
    ],
)
def test_load_npz_errors(tmp_path, change, match):
    arrays = {**npz_arrays("NHW"), **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match):
        load_npz(path)


def test_load_npz_not_npz(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.npz"):
        load_npz(tmp_path / "junk.npz")


# ---- load_image_dataset ----------------------------------------------------------------------
def test_load_image_dataset_dispatch(tmp_path):
    write_mnist(tmp_path / "fashion-mnist", gz=True)
    write_mnist(tmp_path / "mnist", gz=False, arrays=mnist_arrays(n_train=20))
    write_cifar(tmp_path, 10)
    write_cifar(tmp_path, 100)
    np.savez(tmp_path / "mine.npz", **npz_arrays("NHWC"))
    shapes = {}
    for name in DATASETS:
        ds = load_image_dataset(name, data_dir=tmp_path, download=False)
        assert ds.name == name
        shapes[name] = (len(ds.x_train), ds.channels, ds.image_size, ds.num_classes)
    assert shapes == {
        "fashion-mnist": (30, 1, (28, 28), 10),
        "mnist": (20, 1, (28, 28), 10),
        "cifar10": (20, 3, (32, 32), 10),
        "cifar100": (20, 3, (32, 32), 100),
    }
    assert load_image_dataset("CIFAR10", tmp_path, download=False).name == "cifar10"
    assert load_image_dataset(str(tmp_path / "mine.npz")).name == "mine"
    assert load_image_dataset("mine.npz", data_dir=tmp_path).name == "mine"
    (tmp_path / "other").write_bytes((tmp_path / "mine.npz").read_bytes())
    assert load_image_dataset(tmp_path / "other").image_size == (6, 7)


def test_load_image_dataset_unknown_name():
    with pytest.raises(ValueError, match=r"fashion-mnist.*Did you mean 'cifar10'"):
        load_image_dataset("cifar1O")
    with pytest.raises(ValueError, match="npz"):
        load_image_dataset("imagenet")


def test_exports():
    for name in ltdata.__all__:
        assert hasattr(ltdata, name)
    assert {"ImageDataset", "load_image_dataset", "random_crop_flip", "normalize"} <= set(
        ltdata.__all__
    )


# ---- ImageDataset ----------------------------------------------------------------------------
def toy_dataset(x_train: torch.Tensor, num_classes: int = 2) -> ImageDataset:
    n = len(x_train)
    return ImageDataset(
        name="toy",
        x_train=x_train,
        y_train=torch.arange(n) % num_classes,
        x_test=x_train[:1].clone(),
        y_test=torch.zeros(1, dtype=torch.int64),
        num_classes=num_classes,
    )


def test_channel_stats_hand_made():
    # channel 0: pixels 0 and 255 in equal numbers -> mean 0.5, std 0.5;
    # channel 1: all 51 -> mean 0.2, std 0
    x = torch.zeros(4, 2, 2, 2, dtype=torch.uint8)
    x[:2, 0] = 255
    x[:, 1] = 51
    mean, std = toy_dataset(x).channel_stats()
    assert mean == pytest.approx((0.5, 0.2), abs=1e-12)
    assert std == pytest.approx((0.5, 0.0), abs=1e-12)


def test_channel_stats_matches_numpy_over_chunks(monkeypatch):
    from longtail.data import dataset

    monkeypatch.setattr(dataset, "_STATS_CHUNK", 3)
    x = torch.randint(
        0, 256, (10, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = toy_dataset(x).channel_stats()
    a = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, a.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, a.std(axis=(0, 2, 3)), rtol=1e-10)


def test_image_dataset_checks():
    x = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="x_train"):
        toy_dataset(x.float())
    with pytest.raises(ValueError, match="y_train"):
        ImageDataset("t", x, torch.tensor([0, 1, 5]), x, torch.tensor([0, 0, 0]), num_classes=2)
    with pytest.raises(ValueError, match="y_test"):
        ImageDataset("t", x, torch.tensor([0, 1, 1]), x, torch.tensor([0, 0]), num_classes=2)
    with pytest.raises(ValueError, match="x_test"):
        ImageDataset("t", x, torch.zeros(3).long(), x[:, :, :1], torch.zeros(3).long(), 2)


# ---- random_crop_flip ------------------------------------------------------------------------
def crop_flip_loop(x, padding, flip, generator):
    """Per-image reference: same random draws, then pad, crop and flip one image at a time."""
    n, _, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator) if flip else torch.zeros(n)
    out = torch.empty_like(x)
    for i in range(n):
        img = torch.nn.functional.pad(x[i], (padding, padding, padding, padding))
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        img = img[:, dy : dy + h, dx : dx + w]
        if flips[i]:
            img = img.flip(-1)
        out[i] = img
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize(("padding", "flip"), [(4, True), (2, False), (0, True), (7, True)])
def test_random_crop_flip_equals_loop(seed, padding, flip):
    x = torch.randint(
        0, 256, (17, 3, 9, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )
    out = random_crop_flip(x, padding, flip, generator=torch.Generator().manual_seed(seed))
    ref = crop_flip_loop(x, padding, flip, torch.Generator().manual_seed(seed))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, ref)


def test_random_crop_flip_identity_and_randomness():
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(x, padding=0, flip=False)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    g = torch.Generator().manual_seed(5)
    flipped = random_crop_flip(x, padding=0, flip=True, generator=g)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    # with padding, some pixels come from the zero border
    padded = random_crop_flip(x + 1, padding=4, flip=False, generator=g)
    assert bool((padded == 0).any())
    # the global generator is used by default
    torch.manual_seed(11)
    a = random_crop_flip(x)
    torch.manual_seed(11)
    assert torch.equal(a, random_crop_flip(x))


def test_random_crop_flip_checks():
    with pytest.raises(ValueError, match="4-D"):
        random_crop_flip(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), padding=-1)
    assert random_crop_flip(torch.zeros(0, 3, 8, 8, dtype=torch.uint8)).shape == (0, 3, 8, 8)


# ---- normalize -------------------------------------------------------------------------------
def test_normalize_values():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    out = normalize(x, mean, std)
    ref = (x.double() / 255 - torch.tensor(mean).double()[:, None, None]) / torch.tensor(
        std
    ).double()[:, None, None]
    assert out.dtype == torch.float32 and out.is_contiguous()
    torch.testing.assert_close(out, ref.float(), rtol=1e-6, atol=1e-6)
    cl = normalize(x, mean, std, channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, out)
    single = normalize(x[0], 0.5, 0.25)
    torch.testing.assert_close(single, (x[0].float() / 255 - 0.5) / 0.25)


def test_normalize_checks():
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        normalize(x.float(), 0.5, 0.5)
    with pytest.raises(ValueError, match="one per channel"):
        normalize(x, (0.5, 0.5), 0.5)
    with pytest.raises(ValueError, match="positive"):
        normalize(x, 0.5, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="channels_last"):
        normalize(x[0], 0.5, 0.5, channels_last=True)
