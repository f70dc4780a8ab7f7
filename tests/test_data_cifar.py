"""Security of the CIFAR loader: what a crafted pickle or archive in `--data-dir` can do.

A CIFAR batch is a pickle, and a pickle can name any callable (``os.system``) to run while it
loads. These tests write crafted files into ``tmp_path`` and check that the loader refuses them
with a ValueError naming the file, *before* the payload runs (the payload would create a marker
file), that genuine batches of every pickle protocol still load, and that an archive is
extracted only with the official MD5 and never outside its folder.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from longtail.data import cifar as cifar_module
from longtail.data import load_cifar

FOLDER = "cifar-10-batches-py"
NAMES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


def batch(seed: int, n: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"batch_label": b"batch %d" % seed,
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar10(parent: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> dict:
    folder = parent / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    batches = {name: batch(seed) for seed, name in enumerate(NAMES)}
    for name, b in batches.items():
        (folder / name).write_bytes(pickle.dumps(b, protocol=protocol))
    return batches


class Payload:
    """Unpickles to ``func(*args)``: the classic pickle exploit."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def marker_payloads(marker: Path) -> dict:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "eval": Payload(eval, f"open({str(marker)!r}, 'w').close()"),
        "exec": Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "Path.touch": Payload(Path.touch, marker),
    }


@pytest.mark.parametrize("kind", ["os.system", "eval", "exec", "Path.touch"])
@pytest.mark.parametrize("where", ["top", "inside the dict", "as the labels"])
def test_crafted_pickle_is_refused_before_its_payload_runs(tmp_path, kind, where):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    payload = marker_payloads(marker)[kind]
    good = batch(0)
    obj = {
        "top": payload,
        "inside the dict": {**good, b"extra": payload},
        "as the labels": {**good, b"labels": payload},
    }[where]
    target = tmp_path / FOLDER / "data_batch_2"
    target.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2.*names the global") as info:
        load_cifar(tmp_path, download=False)
    assert not marker.exists(), "the pickle's payload ran"
    assert str(target) in str(info.value)


def test_crafted_pickle_with_an_extension_code_is_refused(tmp_path, monkeypatch):
    """EXT opcodes name a global through copyreg's registry: they go through find_class too."""
    import copyreg

    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    key = (os.system.__module__, "system", 0x1234)
    copyreg.add_extension(*key)
    try:
        data = pickle.dumps(Payload(os.system, f"touch {marker}"), protocol=2)
        assert b"\x83\x34\x12" in data  # EXT2 0x1234: a registry code, not a GLOBAL
        (tmp_path / FOLDER / "test_batch").write_bytes(data)
        with pytest.raises(ValueError, match=r"test_batch.*names the global"):
            load_cifar(tmp_path, download=False)
    finally:
        copyreg.remove_extension(*key)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_genuine_batches_of_every_protocol_load(tmp_path, protocol):
    batches = write_cifar10(tmp_path, protocol=protocol)
    ds = load_cifar(tmp_path, download=False)
    train = np.concatenate([batches[n][b"data"] for n in NAMES[:5]])
    np.testing.assert_array_equal(ds.x_train.reshape(len(train), -1).numpy(), train)
    assert ds.y_test.tolist() == batches["test_batch"][b"labels"]


def test_numpy1_module_names_load(tmp_path):
    """The official files were written by numpy 1, which names numpy.core.multiarray."""
    write_cifar10(tmp_path)
    path = tmp_path / FOLDER / "data_batch_1"
    data = pickle.dumps(batch(7), protocol=2)
    assert b"numpy._core.multiarray" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    ds = load_cifar(tmp_path, download=False)
    np.testing.assert_array_equal(ds.x_train[:3].reshape(3, -1).numpy(), batch(7)[b"data"])


def test_codecs_encode_is_allowed_only_for_latin1(tmp_path):
    """Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1')."""
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    import codecs

    path = tmp_path / FOLDER / "data_batch_1"
    path.write_bytes(pickle.dumps(Payload(codecs.encode, "x", "rot13"), protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1.*latin1"):
        load_cifar(tmp_path, download=False)
    assert not marker.exists()


# ---- archives --------------------------------------------------------------------------------
def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def genuine_members() -> dict[str, bytes]:
    return {f"{FOLDER}/{n}": pickle.dumps(batch(i)) for i, n in enumerate(NAMES)}


def test_local_archive_with_wrong_md5_is_not_extracted(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(tar_bytes(genuine_members()))
    with pytest.raises(ValueError) as info:
        load_cifar(tmp_path, download=False)
    message = str(info.value)
    assert str(archive) in message and "MD5" in message
    assert cifar_module._ARCHIVE_MD5[10] in message  # says what was expected
    assert not (tmp_path / FOLDER).exists()  # nothing was extracted, nothing unpickled
    assert archive.is_file()  # the user's file is left alone
    # the same archive given as the root itself
    with pytest.raises(ValueError, match="MD5"):
        load_cifar(archive, download=False)


def test_local_archive_with_official_md5_is_extracted(tmp_path, monkeypatch):
    data = tar_bytes(genuine_members())
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, 10, hashlib.md5(data).hexdigest())
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(data)
    ds = load_cifar(tmp_path, download=False)
    assert len(ds.x_train) == 15 and (tmp_path / FOLDER / "test_batch").is_file()
    # no staging folder is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [FOLDER, "cifar-10-python.tar.gz"]


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({f"{FOLDER}/../../escaped": b"x"}, None),
        ({f"{FOLDER}/sub/../../../escaped": b"x"}, None),
        ({}, {f"{FOLDER}/link": "../../escaped"}),
    ],
)
def test_archive_members_never_land_outside_the_folder(tmp_path, monkeypatch, members, links):
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    data = tar_bytes({**genuine_members(), **members}, links)
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, 10, hashlib.md5(data).hexdigest())
    (root / "cifar-10-python.tar.gz").write_bytes(data)
    with pytest.raises(ValueError, match="unsafe member"):
        load_cifar(root, download=False)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a" / "escaped").exists()
    assert not any(p.name.endswith(".part") for p in root.iterdir())


def test_members_outside_the_cifar_folder_are_ignored(tmp_path, monkeypatch):
    root = tmp_path / "a"
    root.mkdir()
    data = tar_bytes({**genuine_members(), "/abs-escaped": b"x", "../escaped": b"x"})
    monkeypatch.setitem(cifar_module._ARCHIVE_MD5, 10, hashlib.md5(data).hexdigest())
    (root / "cifar-10-python.tar.gz").write_bytes(data)
    assert len(load_cifar(root, download=False).x_test) == 3
    assert not (tmp_path / "escaped").exists() and not Path("/abs-escaped").exists()
