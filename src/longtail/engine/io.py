"""Atomic writes: a file is either its old self or complete, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from longtail._files import file_mode

__all__ = [
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "temporaries",
]


def temporaries(folder: str | os.PathLike[str], name: str = "*") -> list[Path]:
    """The temporary files that :func:`atomic_write` leaves in ``folder`` when it is killed
    before its rename (``.<name>.<random>.tmp``), for the file ``name`` (a glob; default any)."""
    return sorted(Path(folder).glob(f".{name}.*.tmp"))


def atomic_write(path: str | os.PathLike[str], write: Any) -> Path:
    """Call ``write(f)`` on a binary file in ``path``'s folder, fsync it, rename it to ``path``.

    Every file longtail writes (configs, checkpoints, records, reports, plots) goes through
    this: a reader sees the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), file_mode())  # as open() would have made it
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        interrupt = _interrupt_behind(err)
        if interrupt is not None:
            # torch.save's zip writer, interrupted mid-record, raises a RuntimeError from its
            # __exit__ that would hide the Ctrl-C: the caller's interrupt handling gets the
            # interrupt itself (the temporary file is gone, the target untouched)
            raise interrupt from None
        raise


def _interrupt_behind(err: BaseException) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` that ``err`` was raised while handling, if any (not ``err``
    itself)."""
    seen, ctx = {id(err)}, err.__context__
    while ctx is not None and id(ctx) not in seen:
        if isinstance(ctx, KeyboardInterrupt):
            return ctx
        seen.add(id(ctx))
        ctx = ctx.__context__
    return None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` through a temporary file and a rename."""
    atomic_write(path, lambda f: torch.save(obj, f))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON; a truncated or corrupt file raises ``ValueError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(
            f"Expected {str(path)!r} to hold complete JSON, but it is damaged ({e}); it was not "
            "written by longtail's atomic writer or was edited. Delete it to redo that run."
        ) from None
