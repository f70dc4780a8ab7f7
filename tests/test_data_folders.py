"""Image folders as datasets (longtail.data.folders): layouts, splits, channels, sizes, bad files,
the cache, and a folder through the engine (issue "longtail where users already work", item 3)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from longtail.data import folders, imbalance_counts, load_image_dataset, load_image_folder
from longtail.data.registry import dataset_label
from longtail.engine import TrainConfig, train
from longtail.engine.train import prepare_data

Image = pytest.importorskip("PIL.Image", reason="image folders need Pillow (pip install pillow)")


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    """The default cache folder inside the test's own folder, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _colour(label: str, i: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{label}{i}".encode()).digest()
    return digest[0], digest[1], digest[2]


def write_image(path: Path, colour=(10, 20, 30), size=(6, 4), mode="RGB") -> Path:
    """A solid image of ``size`` (width, height) in Pillow ``mode``; format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    value = colour if mode in ("RGB", "RGBA") else colour[0]
    if mode == "RGBA":
        value = (*colour, 128)
    Image.new(mode, size, value).save(path)
    return path


def write_folder(root: Path, sizes: dict[str, int], suffix=".png", **kw) -> Path:
    for label, n in sizes.items():
        for i in range(n):
            write_image(root / label / f"{label}{i:03d}{suffix}", _colour(label, i), **kw)
    return root


def solid(ds_x: torch.Tensor) -> list[tuple[int, ...]]:
    """The colour of each solid image of a batch (its top-left pixel)."""
    return [tuple(v.tolist()) for v in ds_x[:, :, 0, 0]]


# ---- layouts and splits -----------------------------------------------------------------------
def test_flat_folder_stratified_split(tmp_path):
    root = write_folder(tmp_path / "pets", {"dog": 3, "cat": 7, "bird": 1, "eel": 2})
    ds = load_image_folder(root, cache=False)
    assert ds.name == "pets"
    assert ds.classes == ("bird", "cat", "dog", "eel")  # sorted folder names
    # round(n * 0.2), at most n - 1: bird 1 -> 0, cat 7 -> 1, dog 3 -> 1, eel 2 -> 0
    assert ds.class_counts.tolist() == [1, 6, 2, 2]
    assert torch.bincount(ds.y_test, minlength=4).tolist() == [0, 1, 1, 0]
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == (3, 4, 6)
    # every image once, with its label, pixels exact (PNG, no resize)
    x, y = torch.cat([ds.x_train, ds.x_test]), torch.cat([ds.y_train, ds.y_test])
    seen = sorted(zip(solid(x), y.tolist(), strict=True))
    want = sorted(
        (_colour(label, i), c)
        for c, (label, n) in enumerate([("bird", 1), ("cat", 7), ("dog", 3), ("eel", 2)])
        for i in range(n)
    )
    assert seen == want
    # the test images are those of smallest SHA-256 of their path in the class folder
    for c, label, n in [(1, "cat", 7), (2, "dog", 3)]:
        names = [f"{label}{i:03d}.png" for i in range(n)]
        first = min(names, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        i = names.index(first)
        assert solid(ds.x_test[ds.y_test == c]) == [_colour(label, i)]


def test_split_is_deterministic_and_moves_few_images(tmp_path):
    root = write_folder(tmp_path / "p", {"a": 20, "b": 10})
    one = load_image_folder(root, cache=False)
    two = load_image_folder(root, cache=False)
    assert one.fingerprint() == two.fingerprint()
    assert load_image_folder(root, cache=False, test_fraction=0.5).class_counts.tolist() == [10, 5]
    assert len(load_image_folder(root, cache=False, test_fraction=0).x_test) == 0
    before = set(solid(one.x_test))
    write_image(root / "a" / "a900.png", (1, 2, 3))
    after = set(solid(load_image_folder(root, cache=False).x_test))
    assert len(before ^ after) <= 2  # at most the new image in, one image out
    with pytest.raises(ValueError, match="test_fraction"):
        load_image_folder(root, test_fraction=1.0)


def test_train_and_test_folders(tmp_path):
    root = tmp_path / "split"
    write_folder(root / "train", {"cat": 5, "dog": 2, "owl": 1})
    write_folder(root / "test", {"cat": 2, "dog": 2})  # no owl test images: allowed
    write_folder(root / "val", {"cat": 9})  # other top-level folders are ignored
    (root / "README.txt").write_text("pets")
    ds = load_image_folder(root, cache=False)
    assert ds.classes == ("cat", "dog", "owl")
    assert ds.class_counts.tolist() == [5, 2, 1]
    assert torch.bincount(ds.y_test, minlength=3).tolist() == [2, 2, 0]
    write_folder(root / "test", {"yak": 1})
    with pytest.raises(ValueError, match=r"class 'yak' has test images but no training image"):
        load_image_folder(root, cache=False)


def test_train_folder_without_test_is_split(tmp_path):
    root = tmp_path / "only-train"
    write_folder(root / "train", {"x": 10, "y": 5})
    ds = load_image_folder(root, cache=False)
    assert ds.class_counts.tolist() == [8, 4] and len(ds.y_test) == 3
    (root / "test").mkdir()  # an empty test/ is no test set either
    assert load_image_folder(root, cache=False).fingerprint() == ds.fingerprint()
    os.rename(root / "train", root / "elsewhere")
    with pytest.raises(ValueError, match="test/ alone"):
        load_image_folder(root, cache=False)


# ---- channels and sizes -----------------------------------------------------------------------
def test_channels_follow_the_majority_or_the_option(tmp_path):
    root = tmp_path / "modes"
    for i in range(3):
        write_image(root / "a" / f"g{i}.png", (50 + i, 0, 0), mode="L")
    write_image(root / "b" / "c.png", (200, 100, 50), mode="RGB")
    write_image(root / "b" / "p.png", (9, 9, 9), mode="RGBA")
    write_image(root / "b" / "q.png", (70, 70, 70), mode="L")
    ds = load_image_folder(root, cache=False, test_fraction=0)
    assert ds.channels == 1  # 4 grey of 6
    rgb = load_image_folder(root, cache=False, test_fraction=0, mode="RGB")
    assert rgb.channels == 3
    assert (200, 100, 50) in solid(rgb.x_train) and (9, 9, 9) in solid(rgb.x_train)
    assert (50, 50, 50) in solid(rgb.x_train)  # grey to RGB: three equal channels
    grey = load_image_folder(root, cache=False, test_fraction=0, mode="grey")
    assert grey.channels == 1
    with pytest.raises(ValueError, match="mode"):
        load_image_folder(root, mode="CMYK")
    tie = tmp_path / "tie"
    write_image(tie / "a" / "1.png", mode="L")
    write_image(tie / "a" / "2.png", mode="RGB")
    assert load_image_folder(tie, cache=False, test_fraction=0).channels == 3


def test_sizes(tmp_path):
    same = write_folder(tmp_path / "same", {"a": 2, "b": 2}, size=(7, 5))
    assert load_image_folder(same, cache=False).image_size == (5, 7)  # their own size
    assert load_image_folder(same, cache=False, size=3).image_size == (3, 3)
    assert load_image_folder(same, cache=False, size=(4, 9)).image_size == (4, 9)
    mixed = tmp_path / "mixed"
    write_image(mixed / "a" / "1.png", size=(40, 30))
    write_image(mixed / "a" / "2.png", size=(8, 8))
    write_image(mixed / "b" / "3.png", (255, 0, 0), size=(50, 20))
    with pytest.warns(UserWarning, match=r"3 sizes .* resized to 32x32"):
        ds = load_image_folder(mixed, cache=False, test_fraction=0)
    assert ds.image_size == (32, 32)
    assert solid(ds.x_train[ds.y_train == 1]) == [(255, 0, 0)]  # solid stays solid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image_folder(mixed, cache=False, size=16).image_size == (16, 16)
    for bad in (0, (3,), (2, -1), "32", 2.5, True):
        with pytest.raises(ValueError, match="size"):
            load_image_folder(same, size=bad)


def test_jpeg_and_exif_orientation(tmp_path):
    root = write_folder(tmp_path / "jpg", {"a": 3, "b": 2}, suffix=".JPG", size=(8, 8))
    ds = load_image_folder(root, cache=False)
    assert ds.image_size == (8, 8) and ds.channels == 3
    got = dict(zip(solid(torch.cat([ds.x_train, ds.x_test])), range(5), strict=True))
    assert len(got) == 5
    for i in range(3):  # lossy, but a solid colour is close
        colour = np.array(_colour("a", i))
        assert min(np.abs(np.array(c) - colour).max() for c in got) <= 8
    # a 6 x 4 JPEG whose EXIF says "turned 90 degrees" is 4 x 6 as shown
    turned = tmp_path / "turned"
    img = Image.new("RGB", (6, 4), (0, 128, 0))
    exif = img.getexif()
    exif[0x0112] = 6
    (turned / "a").mkdir(parents=True)
    img.save(turned / "a" / "t.jpg", exif=exif)
    write_image(turned / "a" / "u.png", size=(4, 6))
    assert load_image_folder(turned, cache=False, test_fraction=0).image_size == (6, 4)


# ---- bad folders and files --------------------------------------------------------------------
def test_corrupt_images_are_named(tmp_path):
    root = write_folder(tmp_path / "bad", {"a": 2, "b": 2})
    (root / "a" / "oops.png").write_text("not an image")
    with pytest.raises(ValueError, match=r"oops\.png: not a readable image"):
        load_image_folder(root, cache=False)
    (root / "a" / "oops.png").unlink()
    good = (root / "b" / "b000.png").read_bytes()
    (root / "b" / "cut.png").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image_folder(root, cache=False)


def test_other_files_are_ignored(tmp_path):
    root = write_folder(tmp_path / "x", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("hello")
    (root / "a" / ".DS_Store").write_bytes(b"\0\1")
    (root / ".hidden").mkdir()
    write_image(root / ".hidden" / "h.png")  # a hidden folder is no class
    write_image(root / "a" / ".ipynb_checkpoints" / "c.png")
    write_image(root / "a" / "nested" / "deep.png", (1, 1, 1))  # read: class folders recurse
    (root / "top.csv").write_text("x")
    ds = load_image_folder(root, cache=False, test_fraction=0)
    assert ds.classes == ("a", "b") and ds.class_counts.tolist() == [3, 2]


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a folder"):
        load_image_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class folder"):
        load_image_folder(tmp_path / "empty")
    hollow = tmp_path / "hollow"
    (hollow / "b").mkdir(parents=True)
    (hollow / "b" / "readme.md").write_text("no images here")
    (hollow / "c").mkdir()
    with pytest.raises(ValueError, match=r"no class folder in the folder holds an image"):
        load_image_folder(hollow)


# ---- class folders without an image: left out, with a warning ----------------------------------
def test_empty_class_folders_are_left_out_with_a_warning(tmp_path):
    root = write_folder(tmp_path / "imgs", {"cat": 5, "dog": 3})
    (root / "fox").mkdir()  # empty
    (root / "yak").mkdir()
    (root / "yak" / "notes.txt").write_text("other files only")
    with pytest.warns(UserWarning, match=r"left out the class folders 'fox', 'yak'") as caught:
        ds = load_image_folder(root, cache_dir=tmp_path / "cache")
    assert all(w.filename == __file__ for w in caught)  # points at the caller
    assert ds.classes == ("cat", "dog") and ds.num_classes == 2
    assert ds.class_counts.tolist() == [4, 2]  # 5 and 3 less round(20 %)
    assert torch.bincount(ds.y_test, minlength=2).tolist() == [1, 1]
    # read back from the cache, it warns again
    with pytest.warns(UserWarning, match="'fox', 'yak'"):
        again = load_image_folder(root, cache_dir=tmp_path / "cache")
    assert again.fingerprint() == ds.fingerprint()
    # the same as a folder without them
    clean = write_folder(tmp_path / "clean" / "imgs", {"cat": 5, "dog": 3})
    assert load_image_folder(clean, cache=False).fingerprint() == ds.fingerprint()


def test_empty_class_folders_of_train_and_test(tmp_path):
    root = tmp_path / "split"
    write_folder(root / "train", {"cat": 4, "dog": 3})
    write_folder(root / "test", {"cat": 2, "dog": 1})
    (root / "train" / "fox").mkdir()
    (root / "test" / "fox").mkdir()  # empty in both: no class
    (root / "test" / "owl").mkdir()  # only in test/, empty: no class either
    with pytest.warns(UserWarning, match=r"left out the class folders 'fox', 'owl'"):
        ds = load_image_folder(root, cache=False)
    assert ds.classes == ("cat", "dog")
    assert ds.class_counts.tolist() == [4, 3]
    assert torch.bincount(ds.y_test).tolist() == [2, 1]
    # images in train/ but an empty test/ folder: a class without test images, as before
    write_image(root / "train" / "fox" / "f.png", (1, 2, 3))
    with pytest.warns(UserWarning, match=r"left out the class folder 'owl'"):
        ds = load_image_folder(root, cache=False)
    assert ds.classes == ("cat", "dog", "fox") and ds.class_counts.tolist() == [4, 3, 1]
    assert torch.bincount(ds.y_test, minlength=3).tolist() == [2, 1, 0]
    # images in test/ but none in train/: refused, as a class only in test/ is
    write_image(root / "test" / "owl" / "o.png", (4, 5, 6))
    with pytest.raises(ValueError, match=r"class 'owl' has test images but no training image"):
        load_image_folder(root, cache=False)


def test_a_test_folder_without_images_is_no_test_set(tmp_path):
    root = tmp_path / "split"
    write_folder(root / "train", {"x": 10, "y": 5})
    (root / "test" / "x").mkdir(parents=True)
    (root / "test" / "y").mkdir()
    ds = load_image_folder(root, cache=False)  # split off train/, as without test/
    assert ds.class_counts.tolist() == [8, 4] and len(ds.y_test) == 3


def test_a_folder_with_an_empty_class_trains_and_inspects(tmp_path, capsys):
    from longtail.cli import main as cli_main

    root = write_folder(tmp_path / "imgs", {"cat": 10, "dog": 5, "emu": 3}, size=(8, 8))
    (root / "fox").mkdir()
    with pytest.warns(UserWarning, match="'fox'"):
        d = prepare_data(_config(root, profile="natural", ratio=1.0))
    assert d["classes"] == ["cat", "dog", "emu"] and d["num_classes"] == 3
    capsys.readouterr()
    assert cli_main(["inspect", str(root), "--json", "--data-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    # the command says it as a note of one line (the library warns)
    assert "longtail inspect: note:" in err and "'fox'" in err and "UserWarning" not in err
    assert [c["label"] for c in report["classes"]] == ["cat", "dog", "emu"]


# ---- the cache --------------------------------------------------------------------------------
def test_cache_is_used_and_refreshed(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "c", {"a": 4, "b": 2})
    cache = tmp_path / "cache"
    ds = load_image_folder(root, cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("c-") and files[0].suffix == ".pt"
    assert not any(p.suffix == ".pt" for p in root.rglob("*"))  # nothing next to the images

    def no_reading(*args, **kwargs):
        raise AssertionError("the folder was read again")

    real = folders._read_image_folder
    monkeypatch.setattr(folders, "_read_image_folder", no_reading)
    again = load_image_folder(root, cache_dir=cache)
    assert again.fingerprint() == ds.fingerprint() and again.classes == ds.classes
    # another setting is another key: read again
    with pytest.raises(AssertionError, match="read again"):
        load_image_folder(root, cache_dir=cache, size=3)
    monkeypatch.setattr(folders, "_read_image_folder", real)
    # a changed folder is read again: an image added, an image rewritten
    write_image(root / "b" / "new.png", (5, 5, 5))
    grown = load_image_folder(root, cache_dir=cache)
    assert len(grown.y_train) + len(grown.y_test) == 4 + 2 + 1
    path = root / "a" / "a000.png"
    write_image(path, (250, 250, 250))
    os.utime(path, ns=(1, 1))
    x = load_image_folder(root, cache_dir=cache)
    assert (250, 250, 250) in solid(torch.cat([x.x_train, x.x_test]))
    assert len(list(cache.iterdir())) == 1  # one file per folder, replaced
    # a damaged cache file is read again and replaced
    files[0].write_bytes(b"garbage")
    assert load_image_folder(root, cache_dir=cache).fingerprint() == x.fingerprint()


def test_default_cache_is_the_user_cache_and_can_be_off(tmp_path):
    root = write_folder(tmp_path / "d", {"a": 2, "b": 2})
    load_image_folder(root)
    user = tmp_path / "xdg-cache" / "longtail" / "image-folders"
    assert len(list(user.iterdir())) == 1
    other = write_folder(tmp_path / "e", {"a": 2})
    load_image_folder(other, cache=False)
    assert len(list(user.iterdir())) == 1


# ---- through the library ----------------------------------------------------------------------
def test_load_image_dataset_reads_folders(tmp_path):
    root = write_folder(tmp_path / "data" / "pets", {"cat": 3, "dog": 5})
    ds = load_image_dataset(str(root))
    assert ds.classes == ("cat", "dog")
    assert load_image_dataset("pets", data_dir=tmp_path / "data").fingerprint() == ds.fingerprint()
    assert dataset_label(f"{root}/") == "pets" and dataset_label("data/faces.npz") == "faces"


def _config(folder: Path, **kw) -> TrainConfig:
    base = dict(
        dataset=str(folder),
        model="small-cnn",
        width=4,
        epochs=1,
        batch_size=16,
        padding=1,
        threads=1,
        eval_batch_size=64,
        warmup_epochs=0,
        lr_steps=(),
        drw_epoch=0,
    )
    return TrainConfig(**{**base, **kw})


@pytest.fixture
def pets(tmp_path) -> Path:
    return write_folder(tmp_path / "pets", {"cat": 30, "dog": 12, "bird": 6}, size=(8, 8))


@pytest.mark.parametrize("profile", ["natural", "exp", "step"])
def test_prepare_data_on_a_folder(pets, profile):
    d = prepare_data(_config(pets, profile=profile, ratio=1.0 if profile == "natural" else 4.0))
    assert d["classes"] == ["bird", "cat", "dog"]
    assert d["num_classes"] == 3 and d["channels"] == 3
    available = [5, 24, 10]  # 6, 30, 12 less round(20 %)
    if profile == "natural":
        assert d["counts"].tolist() == available
    else:
        assert d["head_order"] == [1, 2, 0]  # cat, dog, bird
        counts = d["counts"].tolist()
        want = imbalance_counts(d["n_max"], 3, 4.0, profile)
        assert [counts[c] for c in d["head_order"]] == list(want)
        assert all(c <= a for c, a in zip(d["counts"].tolist(), available, strict=True))
    assert d["x_train"].shape[1:] == (3, 8, 8)


def test_prepare_data_sees_a_changed_folder(pets):
    before = prepare_data(_config(pets, profile="natural", ratio=1.0))
    write_image(pets / "cat" / "extra.png", (1, 2, 3), size=(8, 8))
    after = prepare_data(_config(pets, profile="natural", ratio=1.0))
    assert before["fingerprint"] != after["fingerprint"]
    assert sum(after["counts"].tolist()) + len(after["y_test"]) == 49


def test_training_on_a_folder_records_the_class_names(pets, tmp_path):
    rec = train(_config(pets, profile="natural", ratio=1.0), tmp_path / "run", progress=False)
    assert rec["classes"] == ["bird", "cat", "dog"]
    assert len(rec["metrics"]["per_class_error"]) == 3
    json.dumps(rec)
    from longtail.bench.plots import _class_names

    assert _class_names(str(pets), [rec], 3) == ("bird", "cat", "dog")


# ---- Hugging Face datasets folders ------------------------------------------------------------
def _fake_hf_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    return root


def test_hf_folder_without_datasets_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    root = _fake_hf_folder(tmp_path / "hf")
    assert folders.is_hf_dataset_folder(root)
    with pytest.raises(ImportError, match=r'pip install "longtail\[hf-datasets\]"'):
        load_image_dataset(str(root))


def _hf_dataset(datasets, features, columns, fingerprint):
    """``Dataset.from_dict`` without its fingerprint hashing (dill fails on some pyarrow
    versions): the arrow table built from the encoded columns, the fingerprint given."""
    import pyarrow as pa
    from datasets.table import InMemoryTable

    table = pa.Table.from_pydict(features.encode_batch(columns), schema=features.arrow_schema)
    info = datasets.DatasetInfo(features=features)
    return datasets.Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint)


def test_hf_save_to_disk_folders(tmp_path):
    datasets = pytest.importorskip(
        "datasets", reason="the Hugging Face datasets package is not installed (optional)"
    )
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=["cat", "dog", "owl"])}
    )
    rows = [(0, 8), (1, 4), (2, 2)]
    images, labels = [], []
    for c, n in rows:
        for i in range(n):
            images.append(Image.new("RGB", (5, 5), _colour(str(c), i)))
            labels.append(c)
    train_ds = _hf_dataset(datasets, features, {"img": images, "label": labels}, "train")
    test_ds = _hf_dataset(datasets, features, {"img": images[:3], "label": labels[:3]}, "test")
    both = tmp_path / "hf-dict"
    datasets.DatasetDict({"train": train_ds, "test": test_ds}).save_to_disk(str(both))
    ds = load_image_dataset(str(both))
    assert ds.classes == ("cat", "dog", "owl")
    assert ds.class_counts.tolist() == [8, 4, 2] and ds.y_test.tolist() == [0, 0, 0]
    assert ds.image_size == (5, 5) and ds.channels == 3
    assert solid(ds.x_train[:1]) == [_colour("0", 0)]
    single = tmp_path / "hf-one"
    train_ds.save_to_disk(str(single))
    one = load_image_dataset(str(single))
    # round(n * 0.2) test rows per class: 8 -> 2, 4 -> 1, 2 -> 0
    assert one.class_counts.tolist() == [6, 3, 2] and len(one.y_test) == 3
    d = prepare_data(_config(single, profile="natural", ratio=1.0))
    assert d["classes"] == ["cat", "dog", "owl"]


def test_train_on_a_folder_from_the_command_line(pets, tmp_path, capsys):
    from longtail.cli import main as cli_main

    args = ["train", "--dataset", str(pets), "--profile", "natural", "--model", "small-cnn"]
    args += ["--width", "4", "--epochs", "1", "--threads", "1", "--no-progress"]
    assert cli_main([*args, "--out", str(tmp_path / "cli-run")]) == 0
    assert "natural" in capsys.readouterr().out


# ---- Hugging Face datasets folders, with the real package --------------------------------------
HF_NAMES = ["cat", "dog", "owl"]
# (width, height) and Pillow mode of the images, in turn: 3 sizes, colour and grey (RGB wins)
HF_SHAPES = [((6, 5), "RGB"), ((4, 4), "L"), ((7, 3), "RGB"), ((6, 5), "RGB"), ((4, 4), "RGB")]


def _hf_split(counts: list[int], seed: int) -> tuple[list[Any], list[int]]:
    """Noise images (so that resizing shows) of the classes' ``counts``, classes interleaved."""
    rng = np.random.default_rng(seed)
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    labels = [labels[i] for i in rng.permutation(len(labels))]
    images = []
    for i in range(len(labels)):
        (w, h), mode = HF_SHAPES[i % len(HF_SHAPES)]
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        images.append(Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode))
    return images, labels


def _expected_pixels(images: list[Any], mode: str, size: tuple[int, int]) -> torch.Tensor:
    """The documented decoding, done here with Pillow: convert, bilinear resize to (h, w)."""
    out = []
    for image in images:
        arr = np.asarray(image.convert(mode).resize(size[::-1], Image.Resampling.BILINEAR))
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out))


@pytest.fixture
def hf_data():
    datasets = pytest.importorskip(
        "datasets", reason="the Hugging Face datasets package is not installed (hf-datasets extra)"
    )
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=HF_NAMES)}
    )
    raw = {"train": _hf_split([9, 4, 2], 0), "test": _hf_split([3, 2, 1], 1)}
    splits = {
        split: datasets.Dataset.from_dict({"image": x, "label": y}, features=features)
        for split, (x, y) in raw.items()
    }
    return datasets, features, raw, splits


@pytest.fixture
def hf_pets(hf_data, tmp_path) -> tuple[Path, dict[str, Any]]:
    datasets, _, raw, splits = hf_data
    root = tmp_path / "hf-pets"
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root, raw


def test_hf_dataset_dict_pixels_labels_and_classes(hf_pets, monkeypatch):
    root, raw = hf_pets
    assert folders.is_hf_dataset_folder(root)
    with pytest.warns(UserWarning, match="3 sizes .* resized to 32x32"):
        ds = load_image_dataset(str(root))
    assert ds.classes == tuple(HF_NAMES) and ds.name == "hf-pets"
    assert ds.class_counts.tolist() == [9, 4, 2] and ds.channels == 3
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        images, labels = raw[split]
        assert y.tolist() == labels
        assert torch.equal(x, _expected_pixels(images, "RGB", (32, 32)))
    grey = folders.load_hf_dataset(root, size=(5, 6), mode="L", cache=False)
    assert grey.image_size == (5, 6) and grey.channels == 1
    assert torch.equal(grey.x_test, _expected_pixels(raw["test"][0], "L", (5, 6)))
    # the second load comes from the cache, without opening the dataset
    import datasets

    def no_read(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(datasets, "load_from_disk", no_read)
    again = load_image_dataset(str(root))
    assert again.fingerprint() == ds.fingerprint()


def _hf_test_rows(labels: list[int], fraction: float = 0.2) -> list[int]:
    """The documented split of a split-less dataset: per class, the round(n · fraction) rows of
    smallest SHA-256 of their row index (as text)."""
    chosen = []
    for c in sorted(set(labels)):
        rows = [i for i, y in enumerate(labels) if y == c]
        k = min(len(rows) - 1, int(len(rows) * fraction + 0.5))
        chosen += sorted(rows, key=lambda i: hashlib.sha256(str(i).encode()).hexdigest())[:k]
    return sorted(chosen)


def test_hf_without_test_split_splits_off_train(hf_data, tmp_path, monkeypatch):
    datasets, _, raw, splits = hf_data
    monkeypatch.setattr(folders, "_HF_BATCH", 4)  # rows read 4 at a time: several batches
    images, labels = raw["train"]
    test_rows = _hf_test_rows(labels)
    train_rows = [i for i in range(len(labels)) if i not in test_rows]
    assert len(test_rows) == 3  # 9 -> 2, 4 -> 1, 2 -> 0
    single = tmp_path / "hf-single"
    splits["train"].save_to_disk(str(single))
    no_test = tmp_path / "hf-no-test"  # a validation split is not a test set
    datasets.DatasetDict({"train": splits["train"], "validation": splits["test"]}).save_to_disk(
        str(no_test)
    )
    for root in (single, no_test):
        ds = folders.load_hf_dataset(root, size=4, cache=False)
        assert ds.classes == tuple(HF_NAMES)
        assert ds.class_counts.tolist() == [7, 3, 2]
        assert ds.y_test.tolist() == [labels[i] for i in test_rows]
        assert ds.y_train.tolist() == [labels[i] for i in train_rows]
        want = _expected_pixels([images[i] for i in test_rows], "RGB", (4, 4))
        assert torch.equal(ds.x_test, want)


def test_hf_saved_format_and_undecoded_images_are_read(hf_data, hf_pets, tmp_path):
    # failed before: a saved torch format gave tensors, Image(decode=False) dicts, not images
    datasets, _, _, splits = hf_data
    root, _ = hf_pets
    want = folders.load_hf_dataset(root, size=4, cache=False)
    torch_format = tmp_path / "hf-torch"
    datasets.DatasetDict({k: v.with_format("torch") for k, v in splits.items()}).save_to_disk(
        str(torch_format)
    )
    undecoded = tmp_path / "hf-undecoded"
    datasets.DatasetDict(
        {k: v.cast_column("image", datasets.Image(decode=False)) for k, v in splits.items()}
    ).save_to_disk(str(undecoded))
    for path in (torch_format, undecoded):
        got = folders.load_hf_dataset(path, size=4, cache=False)
        assert torch.equal(got.x_train, want.x_train) and torch.equal(got.y_test, want.y_test)
        assert got.classes == tuple(HF_NAMES)


def test_hf_label_columns_of_integers_or_strings(hf_data, tmp_path):
    # failed before: string labels (int("cat")), None (int(None)) raised bare TypeErrors
    datasets, _, raw, _ = hf_data
    images, labels = raw["train"]
    for dtype, values in (("int64", [10, 3, 7]), ("string", ["owl", "cat", "dog"])):
        column = [values[y] for y in labels]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.Value(dtype)})
        root = tmp_path / f"hf-{dtype}"
        datasets.Dataset.from_dict(
            {"image": images, "label": column}, features=features
        ).save_to_disk(str(root))
        ds = folders.load_hf_dataset(root, size=4, test_fraction=0.0, cache=False)
        assert list(ds.classes) == [str(v) for v in sorted(values)]
        assert [ds.classes[y] for y in ds.y_train.tolist()] == [str(v) for v in column]
        column[5] = None
        datasets.Dataset.from_dict(
            {"image": images, "label": column}, features=features
        ).save_to_disk(str(root / "missing"))
        with pytest.raises(ValueError, match=r"label None in split 'train', row 5 \(1 such"):
            folders.load_hf_dataset(root / "missing", cache=False)


def test_hf_missing_labels_and_images_are_named(hf_data, tmp_path):
    datasets, features, raw, splits = hf_data
    images, labels = raw["test"]
    unlabelled = datasets.Dataset.from_dict(
        {"image": images, "label": [-1] * len(labels)}, features=features
    )
    root = tmp_path / "hf-unlabelled-test"
    datasets.DatasetDict({"train": splits["train"], "test": unlabelled}).save_to_disk(str(root))
    with pytest.raises(ValueError, match=r"label -1 in split 'test', row 0 \(6 such rows; -1"):
        load_image_dataset(str(root))
    no_image = datasets.Dataset.from_dict(
        {"image": [*images[:2], None], "label": labels[:3]}, features=features
    )
    root = tmp_path / "hf-no-image"
    datasets.DatasetDict({"train": splits["train"], "test": no_image}).save_to_disk(str(root))
    with pytest.raises(ValueError, match=r"split 'test', row 2, column 'image': no image"):
        folders.load_hf_dataset(root, size=4, cache=False)
    with pytest.raises(ValueError, match="a column with the Image feature"):
        folders.load_hf_dataset(root, image_column="label", cache=False)
    undecoded = datasets.Features(
        {"image": datasets.Image(decode=False), "label": features["label"]}
    )
    garbage = [{"bytes": b"not an image", "path": None}] * 2
    root = tmp_path / "hf-garbage"
    datasets.Dataset.from_dict(
        {"image": garbage, "label": [0, 1]}, features=undecoded
    ).save_to_disk(str(root))
    with pytest.raises(ValueError, match=r"split 'train', row 0, column 'image': not a readable"):
        folders.load_hf_dataset(root, cache=False)


def test_hf_folder_train_and_inspect_from_the_command_line(hf_pets, tmp_path, capsys):
    from longtail.cli import main as cli_main

    root, _ = hf_pets
    out = tmp_path / "hf-run"
    args = ["train", "--dataset", str(root), "--preset", "smoke", "--epochs", "1"]
    args += ["--ratio", "2", "--threads", "1", "--no-progress", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the 3 image sizes, resized
        assert cli_main(args) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["classes"] == HF_NAMES
    assert len(record["metrics"]["per_class_error"]) == 3
    capsys.readouterr()
    assert cli_main(["inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in report["classes"]] == HF_NAMES
    assert [c["count"] for c in report["classes"]] == [9, 4, 2]
    assert [c["test_count"] for c in report["classes"]] == [3, 2, 1]
    assert any("--out runs/hf-pets-natural" in line for line in report["next"])


def test_inspect_an_image_folder(pets, capsys):
    from longtail.cli import main as cli_main

    assert cli_main(["inspect", "pets", "--data-dir", str(pets.parent)]) == 0
    shown = capsys.readouterr().out
    # 20 % of each class (30, 12, 6) is the test set
    assert "39 examples in 3 classes" in shown and "--out runs/pets-natural" in shown
