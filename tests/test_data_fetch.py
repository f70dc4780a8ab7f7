"""The one download path of longtail.data: cache folder, verified atomic download, checksums.

Nothing touches the network: ``urllib.request.urlopen`` is replaced by a function serving bytes
from memory, and every file is written into ``tmp_path``.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import re
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import longtail.data
from longtail.data import _fetch, load_cifar, load_mnist
from longtail.data import cifar as cifar_module
from longtail.data import idx as idx_module

DATA_SRC = Path(longtail.data.__file__).parent
MNIST_GZ = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- cache_dir -------------------------------------------------------------------------------
def test_cache_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _fetch.cache_dir() == tmp_path / "longtail"
    assert _fetch.cache_dir("mnist") == tmp_path / "longtail" / "mnist"
    for value in ("", "relative/cache"):  # unset or invalid: the XDG default
        monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert _fetch.cache_dir() == Path.home() / ".cache" / "longtail"


def test_both_loaders_use_the_one_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(idx_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError) as mnist:
        load_mnist(variant="mnist", download=False)
    with pytest.raises(FileNotFoundError) as cifar:
        load_cifar(download=False)
    assert str(_fetch.cache_dir("mnist")) in str(mnist.value)
    assert str(_fetch.cache_dir()) in str(cifar.value)


def test_no_module_imports_another_modules_private_names():
    """The import circle came from idx and cifar importing images' private _download."""
    for path in sorted(DATA_SRC.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("longtail"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_data_modules_do_not_import_images():
    """Only images.py dispatches to the loaders; no loader imports it back."""
    for name in ("idx.py", "cifar.py", "npz.py", "dataset.py", "_fetch.py", "registry.py"):
        tree = ast.parse((DATA_SRC / name).read_text())
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert "longtail.data.images" not in modules, name


# ---- download_verified -----------------------------------------------------------------------
def test_download_verified_keeps_a_matching_file(tmp_path, monkeypatch, capsys):
    payload = b"the genuine file" * 1000
    serve(monkeypatch, {"https://a/f.gz": payload})
    dest = tmp_path / "sub" / "f.gz"
    assert _fetch.download_verified("https://a/f.gz", dest, sha256=sha256(payload)) == dest
    assert dest.read_bytes() == payload
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left
    assert "downloading https://a/f.gz" in capsys.readouterr().err
    md5 = hashlib.md5(payload).hexdigest()
    dest.unlink()
    _fetch.download_verified("https://a/f.gz", dest, sha256=sha256(payload), md5=md5.upper())
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_download_verified_deletes_a_mismatching_file(tmp_path, monkeypatch, algorithm):
    serve(monkeypatch, {"https://a/f.gz": b"tampered"})
    dest = tmp_path / "f.gz"
    want = "0" * (64 if algorithm == "sha256" else 32)
    with pytest.raises(ValueError) as info:
        _fetch.download_verified("https://a/f.gz", dest, **{algorithm: want})
    message = str(info.value)
    assert str(dest) in message and "https://a/f.gz" in message
    assert f"expected {want}" in message and "deleted" in message
    assert {"sha256": "SHA-256", "md5": "MD5"}[algorithm] in message
    assert not any(tmp_path.iterdir())


def test_download_verified_does_not_replace_a_file_with_a_bad_download(tmp_path, monkeypatch):
    dest = tmp_path / "f.gz"
    dest.write_bytes(b"old")
    serve(monkeypatch, {"https://a/f.gz": b"tampered"})
    with pytest.raises(ValueError):
        _fetch.download_verified("https://a/f.gz", dest, sha256="0" * 64)
    assert dest.read_bytes() == b"old" and list(tmp_path.iterdir()) == [dest]


def test_download_verified_tries_mirrors_in_order(tmp_path, monkeypatch):
    payload = b"genuine"
    asked = serve(monkeypatch, {"https://b/f": b"wrong", "http://c/f": payload})
    dest = tmp_path / "f"
    urls = ["https://a/f", "https://b/f", "http://c/f"]
    _fetch.download_verified(urls, dest, sha256=sha256(payload))
    assert asked == urls and dest.read_bytes() == payload


def test_download_verified_network_failure_is_oserror(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(OSError, match=r"https://a/f.*https://b/f"):
        _fetch.download_verified(["https://a/f", "https://b/f"], tmp_path / "f", md5="0" * 32)
    assert not any(tmp_path.iterdir())


def test_download_verified_needs_a_checksum(tmp_path):
    with pytest.raises(ValueError, match="checksum"):
        _fetch.download_verified("https://a/f", tmp_path / "f")


def test_check_digests(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    _fetch.check_digests(path, sha256=sha256(b"abc"), md5=hashlib.md5(b"abc").hexdigest())
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*MD5 .*expected 0+"):
        _fetch.check_digests(path, md5="0" * 32)
    assert path.read_bytes() == b"abc"


# ---- MNIST / Fashion-MNIST checksums ---------------------------------------------------------
def test_published_checksums_table():
    for variant in ("fashion-mnist", "mnist"):
        table = idx_module._SHA256[variant]
        assert sorted(table) == sorted(MNIST_GZ)
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in table.values())
        assert len(set(table.values())) == 4
    # https first where the data set offers it
    assert all(m[0].startswith("https://") for m in idx_module._MIRRORS.values())


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes())


@pytest.mark.parametrize("variant", ["mnist", "fashion-mnist"])
def test_mnist_download_with_wrong_checksum_is_refused(tmp_path, monkeypatch, variant):
    """Stand-in files are not the published ones: the download fails and nothing is kept."""
    monkeypatch.setattr(idx_module, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "none")
    files = {}
    for name in MNIST_GZ:
        shape = (2, 28, 28) if "images" in name else (2,)
        for base in idx_module._MIRRORS[variant]:
            files[base + name] = idx_gz(np.zeros(shape, np.uint8))
    serve(monkeypatch, files)
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path, variant=variant, download=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert idx_module._SHA256[variant]["train-images-idx3-ubyte.gz"] in message
    assert not (tmp_path / variant).exists() or not any((tmp_path / variant).iterdir())


def test_mnist_download_falls_back_to_the_second_mirror(tmp_path, monkeypatch):
    files = {}
    for name in MNIST_GZ:
        shape = (3, 28, 28) if "images" in name else (3,)
        data = idx_gz(np.ones(shape, np.uint8))
        files[idx_module._MIRRORS["mnist"][1] + name] = data
        monkeypatch.setitem(idx_module._SHA256["mnist"], name, sha256(data))
    asked = serve(monkeypatch, files)
    ds = load_mnist(tmp_path, variant="mnist", download=True)
    assert len(ds.x_train) == 3 and len(asked) == 8
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(MNIST_GZ)


def test_cifar_download_checks_md5_before_keeping_the_file(tmp_path, monkeypatch):
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    serve(monkeypatch, {url: b"not the archive"})
    with pytest.raises(ValueError) as info:
        load_cifar(tmp_path, 10, download=True)
    assert "MD5" in str(info.value) and cifar_module._ARCHIVE_MD5[10] in str(info.value)
    assert not any(tmp_path.iterdir())
