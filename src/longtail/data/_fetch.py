"""Where downloaded data is kept, and the one way it is downloaded: verified, then renamed.

Every loader that fetches files (:mod:`longtail.data.idx`, :mod:`longtail.data.cifar`) uses
:func:`cache_dir` for its default folder and :func:`download_verified` for the transfer, so
that there is one cache rule and one download path to get right. A download is streamed into a
temporary file next to its destination and hashed on the way; only a file whose checksums all
match the published ones is renamed into place (``os.replace``, atomic on one file system), so
an interrupted, truncated or tampered download never leaves a file that a later call would
trust.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from longtail._files import file_mode

__all__ = ["cache_dir", "check_digests", "download_verified", "file_digest"]

# Display names of the supported algorithms, as the data sets' pages print them.
_ALGORITHMS = {"sha256": "SHA-256", "md5": "MD5"}
_CHUNK = 1 << 20


def cache_dir(*parts: str) -> Path:
    """The user cache folder ``$XDG_CACHE_HOME/longtail/<parts...>``.

    ``$XDG_CACHE_HOME`` is used only when it is an absolute path (the XDG base directory rule:
    a relative one is invalid and ignored); the default is ``~/.cache``.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root.joinpath("longtail", *parts)


def _hasher(algorithm: str) -> Any:
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"Expected a checksum algorithm in {tuple(_ALGORITHMS)}: {algorithm!r}.")
    # MD5 is only compared with a published value here, never used to sign anything; the flag
    # keeps it usable on FIPS-mode systems
    return hashlib.new(algorithm, usedforsecurity=False)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``"sha256"`` or ``"md5"``), read in 1 MiB chunks."""
    digest = _hasher(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _wanted(sha256: str | None, md5: str | None) -> dict[str, str]:
    wanted = {a: v.lower() for a, v in (("sha256", sha256), ("md5", md5)) if v is not None}
    if not wanted:
        # a programming error, not user input: every file longtail fetches has a published sum
        raise ValueError("Expected a published checksum (sha256= or md5=) to verify against.")
    return wanted


def _mismatches(got: dict[str, str], wanted: dict[str, str]) -> list[str]:
    return [
        f"{_ALGORITHMS[a]} {got[a]}, expected {wanted[a]}" for a in wanted if got[a] != wanted[a]
    ]


def check_digests(
    path: str | os.PathLike, *, sha256: str | None = None, md5: str | None = None
) -> None:
    """Check a local file against its published checksums (every one given must match).

    Raises:
        ValueError: If a checksum differs; the message names the file, the checksum found and
            the one expected. The file is left alone (it may be the user's only copy).
    """
    wanted = _wanted(sha256, md5)
    got = {a: file_digest(path, a) for a in wanted}
    bad = _mismatches(got, wanted)
    if bad:
        raise ValueError(f"{path}: checksum mismatch: {'; '.join(bad)}.")


def download_verified(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
) -> Path:
    """Download a file, verify it against its published checksums, and only then keep it.

    The URLs are tried in order (mirrors of the same file); the first whose content matches
    every checksum given is renamed to ``dest``. Each attempt is announced on stderr. The
    content is written to a temporary file in ``dest``'s folder and hashed while it streams in;
    a failed or mismatching attempt deletes its temporary file, so ``dest`` either does not
    change or holds verified bytes.

    Args:
        urls: One URL or several mirrors of the same file.
        dest: The file to create (its folder is created if needed).
        sha256: The published SHA-256 of the file (hex).
        md5: The published MD5 of the file (hex), where that is all the source publishes.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If some mirror served a file whose checksum differs from the published one
            and no mirror served the right file; the message names the file, the URL, the
            checksum found and the one expected, and says the download was deleted.
        OSError: If every mirror failed to answer (``urllib.error.URLError`` is an
            ``OSError``); the message lists each URL's error.
    """
    dest = Path(dest)
    wanted = _wanted(sha256, md5)
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatch = False
    for url in urls:
        print(f"longtail: downloading {url} to {dest}", file=sys.stderr)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            hashers = {a: _hasher(a) for a in wanted}
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
            bad = _mismatches({a: h.hexdigest() for a, h in hashers.items()}, wanted)
            if not bad:
                os.chmod(tmp, file_mode())  # mkstemp's 0o600: the data are for everyone here
                os.replace(tmp, dest)
                return dest
            mismatch = True
            failures.append(f"{url} served a file with {'; '.join(bad)}")
        except OSError as err:
            failures.append(f"{url}: {err}")
        finally:
            # after a successful os.replace the temporary name no longer exists
            Path(tmp).unlink(missing_ok=True)
        if len(urls) > 1:
            print(f"longtail: {failures[-1]}", file=sys.stderr)
    if mismatch:
        raise ValueError(
            f"{dest}: no download matched the published checksum ({'; '.join(failures)}); "
            "the downloaded data was deleted."
        )
    raise OSError(f"{dest}: downloading failed ({'; '.join(failures)}).")
