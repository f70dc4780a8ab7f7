"""load_npz on files that are not what they should be, and on labels that are not 0..K-1.

Every file is written here into ``tmp_path``: damaged, empty and foreign files must give a
ValueError that names the file and says what is wrong (never a zipfile / zlib / EOF traceback),
and labels such as {3, 7, 42}, negative ones or whole-number floats are renumbered 0..K-1 with
the original labels kept in ``ImageDataset.classes``.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile

import numpy as np
import pytest
import torch

from longtail.data import ImageDataset, load_image_dataset, load_npz
from longtail.data.npz import images_nchw


def arrays(y_train, y_test, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (len(y_train), 4, 5), dtype=np.uint8),
        "y_train": np.asarray(y_train),
        "x_test": rng.integers(0, 256, (len(y_test), 4, 5), dtype=np.uint8),
        "y_test": np.asarray(y_test),
    }


def save(path, compressed: bool = False, **data):
    (np.savez_compressed if compressed else np.savez)(path, **data)
    return path


def error_of(path) -> str:
    with pytest.raises(ValueError) as info:
        load_npz(path)
    assert str(path) in str(info.value), f"the message does not name the file: {info.value}"
    return str(info.value)


# ---- files that are not (intact) .npz archives -----------------------------------------------
def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert "empty (0 bytes)" in error_of(path)


def test_not_a_zip_at_all(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("x_train,y_train\n1,2\n")
    message = error_of(path)
    assert "not an .npz archive" in message and "zip" in message and "x_train" in message


def test_an_npy_file(tmp_path):
    path = tmp_path / "single.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    assert "a single .npy array" in error_of(path)


def test_a_pickled_file_is_not_unpickled(tmp_path):
    import pickle

    path = tmp_path / "pickled.npz"
    path.write_bytes(pickle.dumps(arrays([0, 1], [1])))
    assert "not an .npz archive" in error_of(path)


def test_object_array_needs_pickle(tmp_path):
    path = save(tmp_path / "obj.npz", **{**arrays([0, 1], [1]), "y_train": np.array([0, None])})
    assert "object array" in error_of(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_archives(tmp_path, compressed):
    data = save(tmp_path / "good.npz", compressed, **arrays([0, 1, 2], [2, 0])).read_bytes()
    path = tmp_path / "cut.npz"
    for cut in range(1, len(data), 5):
        path.write_bytes(data[:cut])
        message = error_of(path)
        assert re.search("damaged|not an .npz|empty", message), message


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupted_bytes(tmp_path, compressed):
    """Any one flipped byte gives either the data (it hit a byte nobody checks) or a clear error."""
    data = save(tmp_path / "good.npz", compressed, **arrays([0, 1, 2], [2, 0])).read_bytes()
    path = tmp_path / "flipped.npz"
    errors = 0
    for i in range(0, len(data), 3):
        damaged = bytearray(data)
        damaged[i] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            load_npz(path)
        except ValueError as err:
            assert str(path) in str(err)
            errors += 1
    assert errors > 0


def test_crc_error_names_the_array(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, **arrays([0, 1], [1]))
    data = bytearray(buf.getvalue())
    # flip the last byte of y_test's data, which zipfile's CRC check catches
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("y_test.npy")
    end = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size
    data[end - 1] ^= 0xFF
    path = tmp_path / "crc.npz"
    path.write_bytes(bytes(data))
    message = error_of(path)
    assert "'y_test'" in message and "damaged" in message


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")


# ---- labels ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("y_train", "y_test", "classes", "train", "test"),
    [
        ([3, 7, 42, 7], [42, 3], (3, 7, 42), [0, 1, 2, 1], [2, 0]),
        ([-1, 5, -1], [5], (-1, 5), [0, 1, 0], [1]),
        ([2.0, 0.0, 2.0], [0.0], (0, 2), [1, 0, 1], [0]),
        (np.array([200, 100], np.uint8), np.array([100], np.uint8), (100, 200), [1, 0], [0]),
        ([1, 0, 1], [0], (0, 1), [1, 0, 1], [0]),  # already 0..K-1: kept as they are
    ],
)
def test_labels_are_renumbered_in_sorted_order(tmp_path, y_train, y_test, classes, train, test):
    path = save(tmp_path / "lab.npz", **arrays(y_train, y_test))
    ds = load_npz(path)
    assert ds.num_classes == len(classes) and ds.classes == classes
    assert ds.y_train.tolist() == train and ds.y_test.tolist() == test
    assert ds.y_train.dtype == torch.int64
    # the mapping gives back every original label
    original = np.asarray(y_train)
    assert [ds.classes[i] for i in ds.y_train.tolist()] == original.astype(np.int64).tolist()


@pytest.mark.parametrize(
    ("y_train", "match"),
    [
        ([0, 2.5, 1], r"`y_train` to be integer class labels, but got the non-integer label 2\.5"),
        ([0, np.nan, 1], "non-integer label nan"),
        ([0, np.inf, 1], "non-integer label inf"),
        ([0, 1e300, 1], "non-integer label 1e"),
        (np.array(["a", "b", "a"]), r"integer class labels.*dtype <U1"),
    ],
)
def test_non_integer_labels_say_what_is_wrong(tmp_path, y_train, match):
    path = save(tmp_path / "bad.npz", **arrays(y_train, [0]))
    with pytest.raises(ValueError, match=match):
        load_npz(path)


def test_a_label_column_is_its_labels_and_one_hot_rows_say_how(tmp_path):
    """``y.reshape(-1, 1)`` (a one-column table) is read as the labels it holds, by the loader
    and by ``inspect`` alike (inspect once called it a one-label multi-label set while train
    refused it); one-hot or multi-hot rows are refused with the fix."""
    from longtail.data.inspect import format_inspection, inspect_dataset

    y = [3, 7, 3, 42, 7, 3]
    flat = load_npz(save(tmp_path / "flat.npz", **arrays(y, [3, 7, 42])))
    col = arrays(np.array(y)[:, None], np.array([3, 7, 42])[:, None])
    column = load_npz(save(tmp_path / "col.npz", **col))
    assert torch.equal(column.y_train, flat.y_train) and column.classes == flat.classes
    report = inspect_dataset(str(tmp_path / "col.npz"))
    assert report["task"] == "classification" and report["num_classes"] == 3
    hot = np.eye(3, dtype=np.int64)[[0, 1, 0, 2, 1, 0]]
    save(tmp_path / "hot.npz", **arrays(hot, [0, 1, 2]))
    with pytest.raises(ValueError, match=r"shape \(6, 3\) \(one-hot rows: .*y\.argmax\(1\)\)"):
        load_npz(tmp_path / "hot.npz")
    big = np.eye(3, dtype=np.int64)[np.arange(60) % 3]  # enough for the multi-label split
    save(tmp_path / "hot60.npz", **arrays(big, np.eye(3, dtype=np.int64)[[0, 1, 2]]))
    report = inspect_dataset(str(tmp_path / "hot60.npz"))
    assert report["task"] == "multilabel" and report["one_label_each"]
    assert "exactly one label: if these are one-hot" in format_inspection(report)
    multi = hot.copy()
    multi[0, 1] = 1
    save(tmp_path / "multi.npz", **arrays(multi, [0, 1, 2]))
    with pytest.raises(ValueError, match="multi-hot matrix: train it with --task multilabel"):
        load_npz(tmp_path / "multi.npz")


def test_class_only_in_the_test_set_is_named(tmp_path):
    path = save(tmp_path / "unseen.npz", **arrays([3, 7, 3], [7, 42, 3]))
    message = error_of(path)
    assert "class 42 (original label)" in message and "not in y_train" in message
    path = save(tmp_path / "unseen2.npz", **arrays([0, 0], [1, 2, 0]))
    assert "classes 1, 2" in error_of(path)


def test_explicit_num_classes_keeps_labels_and_still_refuses_unseen_test_classes(tmp_path):
    path = save(tmp_path / "k.npz", **arrays([0, 2, 2], [2, 0]), num_classes=np.array(5))
    ds = load_npz(path)
    assert ds.num_classes == 5 and ds.classes == (0, 1, 2, 3, 4)
    assert ds.class_counts.tolist() == [1, 0, 2, 0, 0]  # declared classes may be empty
    path = save(tmp_path / "k2.npz", **arrays([0, 2, 2], [4]), num_classes=np.array(5))
    assert "class 4" in error_of(path)
    path = save(tmp_path / "k3.npz", **arrays([3, 7], [3]), num_classes=np.array(5))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\].*label 7"):
        load_npz(path)


def test_classes_survive_a_subset(tmp_path):
    """The engine builds its long-tailed training set from the loaded data: the mapping stays."""
    ds = load_npz(save(tmp_path / "m.npz", **arrays([3, 7, 42, 7], [42])))
    idx = torch.tensor([1, 3])
    lt = dataclasses.replace(ds, x_train=ds.x_train[idx], y_train=ds.y_train[idx])
    assert lt.classes == (3, 7, 42) and lt.num_classes == 3
    assert lt.class_counts.tolist() == [0, 2, 0]
    assert load_image_dataset(str(tmp_path / "m.npz")).classes == (3, 7, 42)


def test_image_dataset_classes_checks():
    x = torch.zeros(2, 1, 2, 2, dtype=torch.uint8)
    y = torch.tensor([0, 1])
    assert ImageDataset("t", x, y, x, y, 2).classes == (0, 1)
    assert ImageDataset("t", x, y, x, y, 2, classes=np.array([5, -3])).classes == (5, -3)
    for classes, match in [
        ((1, 2, 3), "2 original labels"),
        ((1, 1), "distinct"),
        ((1, 2.5), "integer labels"),
        ((True, False), "integer labels"),
        ("ab", "a sequence"),
    ]:
        with pytest.raises(ValueError, match=match):
            ImageDataset("t", x, y, x, y, 2, classes=classes)


@pytest.mark.parametrize(
    "shape, want",
    [
        ((2, 28, 28), (2, 1, 28, 28)),
        ((2, 28, 28, 1), (2, 1, 28, 28)),
        ((2, 1, 28, 28), (2, 1, 28, 28)),
        ((2, 32, 32, 3), (2, 3, 32, 32)),
        ((2, 3, 32, 32), (2, 3, 32, 32)),
        ((2, 32, 32, 4), (2, 4, 32, 32)),  # RGBA: was read as 32 channels of 32 × 4
        ((2, 32, 32, 2), (2, 2, 32, 32)),  # grey + alpha
        ((2, 32, 32, 5), (2, 5, 32, 32)),  # more channels, square images
        ((2, 5, 32, 32), (2, 5, 32, 32)),
        ((2, 4, 4, 3), (2, 3, 4, 4)),  # tiny RGB
        ((2, 3, 4, 4), (2, 3, 4, 4)),
    ],
)
def test_the_channel_axis_of_images(shape, want):
    x = np.arange(np.prod(shape), dtype=np.int64).astype(np.uint8).reshape(shape)
    got = images_nchw("x_train", x)
    assert got.shape == want
    if len(shape) == 4 and shape[1:] != want[1:]:  # channels last: the same pixels, moved
        assert np.array_equal(got, x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize(
    ("dtype", "fix"),
    [(np.float32, "(x * 255).round().astype(numpy.uint8)"), (np.int64, "x.astype(numpy.uint8)")],
)
def test_images_of_another_dtype_say_how_to_convert(tmp_path, dtype, fix):
    data = arrays([0, 1, 0], [0, 1])
    data["x_train"] = data["x_train"].astype(dtype) / (255 if dtype == np.float32 else 1)
    data["x_train"] = data["x_train"].astype(dtype)
    save(tmp_path / "f.npz", **data)
    with pytest.raises(ValueError, match="uint8 images") as err:
        load_npz(tmp_path / "f.npz")
    assert fix in str(err.value)
