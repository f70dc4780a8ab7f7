"""ImageDataset.fingerprint: equal data, equal fingerprint; any one-byte change, another one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from longtail.data import ImageDataset, load_mnist

FIELDS = ("x_train", "y_train", "x_test", "y_test")


def make(seed: int = 0, name: str = "toy") -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(
        name=name,
        x_train=torch.randint(0, 256, (6, 2, 3, 4), dtype=torch.uint8, generator=g),
        y_train=torch.tensor([0, 1, 2, 0, 1, 2]),
        x_test=torch.randint(0, 256, (3, 2, 3, 4), dtype=torch.uint8, generator=g),
        y_test=torch.tensor([2, 1, 0]),
        num_classes=3,
    )


def test_equal_data_equal_fingerprint():
    a, b = make(), make(name="other name")
    assert a.fingerprint() == b.fingerprint() == a.fingerprint()
    assert len(a.fingerprint()) == 64 and int(a.fingerprint(), 16) >= 0
    assert make(seed=1).fingerprint() != a.fingerprint()


def test_fingerprint_is_stable():
    """The value is part of every run's record: a change of the scheme must be deliberate."""
    x = torch.arange(8, dtype=torch.uint8).reshape(2, 1, 2, 2)
    ds = ImageDataset("s", x, torch.tensor([0, 1]), x[:1], torch.tensor([1]), num_classes=2)
    # the definition, byte by byte: per tensor "name:dtype:shape;" then its little-endian bytes
    h = hashlib.sha256()
    h.update(b"x_train:|u1:(2, 1, 2, 2);" + bytes(range(8)))
    h.update(b"y_train:<i8:(2,);" + (0).to_bytes(8, "little") + (1).to_bytes(8, "little"))
    h.update(b"x_test:|u1:(1, 1, 2, 2);" + bytes(range(4)))
    h.update(b"y_test:<i8:(1,);" + (1).to_bytes(8, "little"))
    h.update(b"num_classes:2;")
    assert ds.fingerprint() == h.hexdigest()
    assert ds.fingerprint() == "d3fc4f7851c1d88f898b7fc614ac7963acd00b000de86ea23a2202e3fa52cd37"


@pytest.mark.parametrize("field", FIELDS)
def test_any_one_byte_change_changes_it(field):
    base = make()
    before = base.fingerprint()
    data = getattr(base, field)
    flat_bytes = data.numel() * data.element_size()
    seen = {before}
    for pos in range(flat_bytes):
        ds = make()
        t = getattr(ds, field)
        # flip one bit of one byte of the tensor's memory, whatever its dtype
        raw = t.view(-1).view(torch.uint8)
        raw[pos] ^= 1
        fp = ds.fingerprint()
        assert fp != before, f"byte {pos} of {field}"
        seen.add(fp)
    assert len(seen) == flat_bytes + 1


def test_shape_dtype_and_num_classes_count():
    base = make()
    before = base.fingerprint()
    # same bytes, other shape (H and W swapped)
    swapped = make()
    swapped.x_train = swapped.x_train.reshape(6, 2, 4, 3)
    swapped.x_test = swapped.x_test.reshape(3, 2, 4, 3)
    assert swapped.fingerprint() != before
    # one more class
    more = make()
    more.num_classes = 4
    assert more.fingerprint() != before
    # the same labels in another integer dtype
    other = make()
    other.y_test = other.y_test.to(torch.int32)
    assert other.fingerprint() != before
    # a train image moved to the test set: same bytes in total, other split
    moved = make()
    moved.x_test = torch.cat([moved.x_train[-1:], moved.x_test])
    moved.x_train = moved.x_train[:-1]
    moved.y_test = torch.cat([moved.y_train[-1:], moved.y_test])
    moved.y_train = moved.y_train[:-1]
    assert moved.fingerprint() != before


def test_memory_layout_does_not_count():
    base = make()
    strided = make()
    strided.x_train = base.x_train.to(memory_format=torch.channels_last)
    assert not strided.x_train.is_contiguous()
    assert strided.fingerprint() == base.fingerprint()


def test_empty_test_set():
    ds = make()
    ds.x_test, ds.y_test = ds.x_test[:0], ds.y_test[:0]
    assert ds.fingerprint() != make().fingerprint()


REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason=f"{REAL_FASHION} absent")
def test_real_fashion_mnist_fingerprint():
    ds = load_mnist(REAL_FASHION, download=False)
    fp = ds.fingerprint()
    assert fp == ds.fingerprint() and len(fp) == 64
