"""The one run harness under every training engine: a run folder, its identity, and the epoch loop.

A run lives in one output folder::

    config.json      the resolved config (written before the first epoch)
    log.jsonl        one JSON line per finished epoch, appended (and fsync'ed) as it ends
    log.csv, tb/     the same rows as a CSV table and TensorBoard scalars, when the config's
                     ``log`` asks for them (:mod:`longtail.engine.loggers`); a finished run
                     opened with loggers whose output is missing or stale has them rebuilt
                     from its rows (:meth:`RunFolder.rebuild_logs`), without training
    checkpoint.pt    the task's state (model, optimizer, ...), the epoch reached, the log so far
                     and the run's identity: replaced atomically after every epoch
    result.json      the results record, written atomically at the end

**Identity.** A run is identified by everything that determines what it computes: the config
(less bookkeeping such as thread counts or the data folder's path) *and a fingerprint of the
data actually loaded* (:func:`fingerprint`). A folder is resumed or its record returned only
when the whole identity matches; a folder of another run — another config, or the same config
on other data — is refused with a message saying what differs. Records carry the identity
(``record["identity"]``), so a grid and a report can tell runs apart the same way.

**Kills.** Each epoch first appends its log line, then replaces the checkpoint (which also
holds every log row so far). A kill anywhere leaves the last complete checkpoint; on resume the
log is rewritten atomically from the checkpoint's rows, so torn lines and lines of an epoch
that was logged but not checkpointed disappear, and the finished run's log is complete.

**Engines.** An engine is a small unit over this harness (composition, not inheritance): it
builds its model and data, then hands :func:`run_epochs` an object with ``state_dict()``,
``load_state_dict(state)`` and ``fit_epoch(epoch) -> row``; the harness owns the folder, the
checkpoint, the log, the divergence check and the progress lines.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from longtail.engine.io import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    read_json,
    temporaries,
)
from longtail.engine.loggers import (
    EpochLoggers,
    log_kinds,
    rebuild_stale,
    summary_writer_class,
)

__all__ = [
    "BOOKKEEPING",
    "CHECKPOINT",
    "CONFIG",
    "LOG",
    "NEUTRAL",
    "RESULT",
    "EpochTask",
    "FolderLock",
    "Progress",
    "RunFolder",
    "RunInterrupted",
    "TrainingDiverged",
    "batches",
    "clean_json",
    "code_text",
    "code_version",
    "config_identity",
    "environment",
    "epoch_generator",
    "fingerprint",
    "identity_diff",
    "loss_defaults",
    "read_stored_identity",
    "run_epochs",
    "same_run",
    "stored_identity",
    "with_processes",
    "without_default_loss_kwargs",
]

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
RESULT = "result.json"


class RunInterrupted(RuntimeError):
    """Raised by a callback to stop a run after a checkpoint (tests use it to simulate a kill)."""


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite; the run stops at that epoch."""


# ------------------------------------------------------------------------------------ identity
def fingerprint(*arrays: Any) -> str:
    """A SHA-256 over the dtype, shape and bytes of tensors / arrays, in order (hex string).

    Two data sets get the same fingerprint only if every array has the same dtype, shape and
    content; the engines fingerprint the exact tensors a run trains and is tested on.

    Example:
        >>> a = torch.arange(6).reshape(2, 3)
        >>> fingerprint(a) == fingerprint(a.clone()) != fingerprint(a.t())
        True
    """
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().contiguous().numpy() if isinstance(a, torch.Tensor) else a
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape};".encode())
        h.update(arr.reshape(-1).view(np.uint8).data if arr.size else b"")
    return h.hexdigest()


#: Config keys that say how a run executes, not what it computes: never part of an identity.
#: (``compile`` changes rounding only; ``preset`` names a set of defaults whose values are in
#: the config itself; ``log`` names the loggers beside ``log.jsonl``, like progress output.)
BOOKKEEPING = ("data_dir", "threads", "download", "eval_batch_size", "compile", "preset", "log")

#: Config keys added after records existed, at the value that reproduces the older runs: a key
#: at this value is left out of the identity, so a record made before the key existed keeps
#: its identity (``val_per_class = 0``: evaluated on the test set, as every run was before).
NEUTRAL = {"val_per_class": 0}


def config_identity(config: dict[str, Any]) -> dict[str, Any]:
    """A config's part of a run identity: the resolved config less :data:`BOOKKEEPING`, with the
    dataset named canonically (a registry alias as its name, a file by its file name: where the
    file lies is bookkeeping, what it holds is the data fingerprint's business)."""
    from longtail.data.registry import get_dataset

    d = {
        k: v
        for k, v in config.items()
        if k not in BOOKKEEPING and not (k in NEUTRAL and v == NEUTRAL[k])
    }
    name = d.get("dataset")
    if isinstance(name, str):
        try:
            d["dataset"] = get_dataset(name).name
        except ValueError:
            d["dataset"] = Path(name).name
    return d


_UNSET = object()


def without_default_loss_kwargs(ident: dict[str, Any]) -> dict[str, Any]:
    """``ident`` with the ``loss_kwargs`` that equal its loss's registered defaults left out.

    ``--loss-kw beta=1.5`` for MM (whose default β is 1.5) computes what no ``--loss-kw`` does;
    counted apart, it made a row of its own and split the seeds of a claim.
    """
    kwargs, defaults = ident.get("loss_kwargs"), loss_defaults(ident.get("loss"))
    if not (isinstance(kwargs, dict) and kwargs and defaults):
        return ident

    def default(key: str) -> Any:
        value = defaults.get(key, _UNSET)
        return list(value) if isinstance(value, tuple) else value

    kept = {k: v for k, v in kwargs.items() if v != default(k)}
    return ident if len(kept) == len(kwargs) else {**ident, "loss_kwargs": kept}


def loss_defaults(loss: Any) -> dict[str, Any]:
    """The registered default arguments of the loss named ``loss``; ``{}`` for no name or a
    loss this version does not know (its arguments are then compared as written)."""
    if not isinstance(loss, str):
        return {}
    from longtail.losses import get_loss_info

    try:
        return get_loss_info(loss).defaults
    except ValueError:
        return {}


def same_run(recorded: Any, identity: Any) -> bool:
    """Whether two identities are one run: equal, or equal once the loss arguments written at
    their registered defaults are left out (``--loss-kw beta=1.5`` for MM is the run without
    it). Stored identities keep what was written; only the comparison reads past it."""
    if recorded == identity:
        return True
    return (
        isinstance(recorded, dict)
        and isinstance(identity, dict)
        and without_default_loss_kwargs(recorded) == without_default_loss_kwargs(identity)
    )


def check_batch_for_processes(batch_size: int, world: int) -> None:
    """Refuse a global batch that cannot give each of ``world`` data-parallel processes an
    example: each process trains on ``batch[rank::world]``, so with ``batch_size < world`` every
    batch would be skipped and the run would finish untrained."""
    if world > 1 and batch_size < world:
        raise ValueError(
            f"batch_size (--batch-size) {batch_size} is smaller than the {world} processes of "
            f"this run: each process trains on its slice batch[rank::{world}] of every global "
            f"batch, so no batch would give every process an example; use a batch size of at "
            f"least {world} (the global batch, split across the processes)"
        )


def with_processes(identity: dict[str, Any], world: int) -> dict[str, Any]:
    """The identity of a run trained in ``world`` data-parallel processes.

    DDP is another run, not a faster copy of the one-process run: each process keeps its own
    BatchNorm statistics (on CPU, where SyncBatchNorm does not run) and draws its own shard of
    every epoch, so the numbers differ. A run of several processes adds ``"world_size"``; one
    process adds nothing, so every record made before stays the same run.
    """
    return {**identity, "world_size": world} if world > 1 else identity


def identity_diff(saved: Any, wanted: dict[str, Any], limit: int = 4) -> str:
    """A short text naming the keys where ``saved`` and ``wanted`` differ (for error messages)."""
    if not isinstance(saved, dict):
        return "it holds no readable identity"
    keys = sorted(set(saved) | set(wanted))
    diffs = [
        f"{k}: {saved.get(k, '(absent)')!r} there, {wanted.get(k, '(absent)')!r} here"
        for k in keys
        if saved.get(k, "(absent)") != wanted.get(k, "(absent)")
    ]
    more = f"; and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


def _data_change(record: dict[str, Any], identity: dict[str, Any], sizes: Any) -> str:
    """What changed in the data, from the sizes a record keeps (``""`` when the data is the
    same or nothing says more than the fingerprints)."""
    saved = record.get("identity")
    if not (isinstance(saved, dict) and saved.get("data") != identity.get("data") and sizes):
        return ""
    there = record.get("data") if isinstance(record.get("data"), dict) else {}
    changes = [
        f"{what} set {there[key]} examples there, {sizes[key]} here"
        for key, what in (("train_size", "training"), ("test_size", "test"))
        if key in there and key in sizes and there[key] != sizes[key]
    ]
    if changes:
        return " (" + "; ".join(changes) + ")"
    return " (the same numbers of examples: other images, labels or class names)"


def clean_json(obj: Any) -> Any:
    """NaN/inf floats become None, tuples lists (records are strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    return obj


def environment(device: Any = None) -> dict[str, Any]:
    """Where a run ran: library versions, the CPU (or GPU), the thread count.

    Not part of the identity (a run on another machine is the same run), but recorded: the same
    run on another CPU model or thread count rounds its sums differently, and training amplifies
    that (the metrics can differ as much as two seeds do), so a reader comparing numbers needs
    to know, and longtail says which code made the record (its version, and its commit when it
    runs from a git checkout).
    """
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    env = {
        **code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": cpu,
        "threads": torch.get_num_threads(),
    }
    if device is not None and torch.device(device).type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def code_version() -> dict[str, str]:
    """The code this process runs, as :func:`environment` records it: ``{"longtail":
    version}``, and ``"commit"`` from a git checkout (what :func:`code_text` reads)."""
    from longtail import __version__

    return {"longtail": __version__, **_source_commit()}


@functools.lru_cache(maxsize=1)
def _source_commit() -> dict[str, str]:
    """``{"commit": "<short hash>[-dirty]"}`` when longtail runs from a git checkout (an
    editable install), else ``{}``: the version alone does not tell two states of the code
    apart. ``-dirty``: the package's files differ from that commit. Asked once a process (the
    code a process runs does not change under it)."""
    import subprocess

    package = Path(__file__).resolve().parent.parent
    here = str(package.parent)
    try:
        # only a checkout that tracks these very files (not a repository the environment sits in)
        subprocess.run(
            ["git", "-C", here, "ls-files", "--error-unmatch", str(package / "__init__.py")],
            capture_output=True, timeout=5, check=True,
        )  # fmt: skip
        head = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", here, "diff", "--quiet", "HEAD", "--", str(package)],
            capture_output=True, timeout=5,
        ).returncode  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": head + ("-dirty" if dirty == 1 else "")} if head else {}


def code_text(env: Any) -> str:
    """The code that made a record, from its ``environment``: ``"longtail 0.1.0 (commit
    1a2b3c4d5e6f)"``; a record that does not say is of "a longtail that did not record its
    version"."""
    env = env if isinstance(env, dict) else {}
    if not env.get("longtail"):
        return "a longtail that did not record its version"
    commit = f" (commit {env['commit']})" if env.get("commit") else ""
    return f"longtail {env['longtail']}{commit}"


class FolderLock:
    """An exclusive lock on a folder (``.lock`` inside it, ``flock``), held until :meth:`release`.

    Two processes writing one run folder or one grid's output folder would interleave
    checkpoints, logs and records of different runs; the second is refused instead. The lock
    is the kernel's: it goes with the process, so a killed run leaves no stale lock.
    """

    def __init__(self, folder: Path, what: str) -> None:
        self.folder, self.what, self.fd = folder, what, None

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unguarded
            return self
        if self.fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(
                f"Expected no other process to be using {str(self.folder)!r}, but another "
                f"{self.what} is running there. Wait for it to finish, or use another --out."
            ) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# -------------------------------------------------------------------------------------- folder
def _load_error(e: Exception) -> str:
    """What ``torch.load`` says is wrong with a file, without its advice on ``weights_only``
    (which reads as a torch-version problem when the file is only damaged), cut at a word."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        # the cause is the line after "WeightsUnpickler error:"; the rest is torch's advice
        cause = [ln for ln in lines[1:] if not ln.startswith(("Please file", "Check the doc"))]
        lines = cause[:1]
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    if len(text) > 160:
        text = text[:160].rsplit(" ", 1)[0] + " ..."
    return text


class RunFolder:
    """The output folder of one run (or none: ``path=None`` keeps nothing on disk).

    Args:
        path: The folder, or ``None``.
        config: The resolved config (JSON-ready), written to ``config.json``.
        config_identity: The config's part of the identity (no data fingerprint): checked
            against ``config.json`` before any data is loaded, so a wrong folder fails fast.
        main: Whether this process writes (rank 0 under DDP); the others only read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        config: dict[str, Any],
        config_identity: dict[str, Any],
        *,
        main: bool = True,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.config = config
        self.config_identity = config_identity
        self.identity: dict[str, Any] | None = None
        self.main = main
        self.log_kinds = log_kinds(config.get("log"))  # loggers beside log.jsonl
        if "tensorboard" in self.log_kinds and self.path is not None and main:
            summary_writer_class()  # a missing extra is refused before anything is written
        self.lock = FolderLock(self.path, "run") if self.path is not None and main else None
        # held from check_config to start: the folder is checked again once the lock is held
        self._saved_identity: Callable[[Any], dict[str, Any]] | None = None
        # [first epoch, torch threads] of each stretch of training (run_epochs keeps it)
        self.threads_history: list[list[int]] = []

    def _lock(self) -> None:
        """Hold the folder's lock from the first look inside it to :meth:`close`."""
        if self.lock is not None and self.path is not None and self.path.exists():
            self.lock.acquire()

    def close(self) -> None:
        """Release the folder (the engines call it when a run ends, however it ends)."""
        if self.lock is not None:
            self.lock.release()

    def _refuse(self, what: str, diff: str) -> ValueError:
        return ValueError(
            f"Expected output folder {str(self.path)!r} to be empty or to hold this same run, "
            f"but it holds {what} ({diff}). Use another --out, or delete the folder to start over."
        )

    def check_config(self, saved_identity: Callable[[Any], dict[str, Any]]) -> None:
        """Refuse a folder whose ``config.json`` is another run (before loading any data).

        ``saved_identity(saved)`` turns the saved config into its config identity; a config that
        cannot even be read as one (``TypeError`` / ``ValueError``) is another run.
        """
        self._lock()
        self._saved_identity = saved_identity
        if self.path is None or not (self.path / CONFIG).exists():
            return
        saved = read_json(self.path / CONFIG)
        try:
            other: Any = saved_identity(saved)
        except (TypeError, ValueError) as e:
            other = f"it cannot be read as this task's config: {e}"
        if not same_run(other, self.config_identity):
            diff = identity_diff(other, self.config_identity) if isinstance(other, dict) else other
            raise self._refuse(f"a run with a different config ({self.path / CONFIG})", diff)

    def open(
        self, identity: dict[str, Any], sizes: dict[str, int] | None = None
    ) -> dict[str, Any] | None:
        """Fix the full identity; return the record of a finished run of it, else ``None``.

        A result or checkpoint of another identity (another config or other data) is refused;
        ``sizes`` (``{"train_size": ..., "test_size": ...}`` of the data at hand) lets the refusal
        of other data say what changed beside the two fingerprints.
        """
        self.identity = identity
        if self.path is None:
            return None
        if (self.path / RESULT).exists():
            record = read_json(self.path / RESULT)
            if not isinstance(record, dict) or "metrics" not in record:
                raise ValueError(
                    f"Expected {str(self.path / RESULT)!r} to hold a results record, but it does "
                    "not. Delete it to finish the run again."
                )
            if not same_run(record.get("identity"), identity):
                raise self._refuse(
                    "the finished record of another run or of other data",
                    identity_diff(record.get("identity"), identity)
                    + _data_change(record, identity, sizes),
                )
            self.rebuild_logs()
            return record
        return None

    def finished_rows(self) -> list[dict[str, Any]] | None:
        """The log rows of a finished run: ``log.jsonl``'s, or the checkpoint's where the log is
        missing or cannot be read; ``None`` when neither is there.

        A finished run's ``log.jsonl`` holds the checkpoint's rows (the log is rewritten from
        them on resume, and the record is written after the last epoch's row and checkpoint).
        """
        if self.path is None:
            return None
        try:
            text = (self.path / LOG).read_text()
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except (OSError, ValueError):
            pass
        try:
            state = self.load_checkpoint("cpu")
        except ValueError:
            return None
        return None if state is None else list(state["log"])

    def rebuild_logs(self) -> tuple[str, ...]:
        """Rebuild the config's loggers (``--log``) of a finished run from its log rows, where
        their output is missing or stale (:func:`~longtail.engine.loggers.rebuild_stale`).

        Logging is bookkeeping: a run trained without ``--log`` and opened again with it gets its
        ``log.csv`` / ``tb/`` without training again. Returns the loggers rebuilt.
        """
        if self.path is None or not self.main or not self.log_kinds:
            return ()
        rows = self.finished_rows()
        if rows is None:
            print(
                f"{self.path}: cannot write {', '.join(self.log_kinds)} logs of this finished run: "
                f"it keeps no log rows ({LOG} and {CHECKPOINT} are gone)",
                file=sys.stderr,
            )
            return ()
        return rebuild_stale(self.log_kinds, self.path, rows)

    def start(self) -> None:
        """Create the folder and write ``config.json`` (main process only); remove the
        temporary files of atomic writes that a kill cut short (``.<name>.<random>.tmp``:
        nothing else writes them, and the folder's lock is held)."""
        if self.path is not None and self.main:
            checked_unlocked = self.lock is not None and self.lock.fd is None
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
            if checked_unlocked:
                # the folder did not exist when it was checked, so no lock was held: another
                # process may have begun (or finished) a run here since. Check again, now that
                # the lock is ours, before config.json is written over theirs.
                if self._saved_identity is not None:
                    self.check_config(self._saved_identity)
                if self.identity is not None:
                    self.open(self.identity)
            for stray in temporaries(self.path):
                stray.unlink(missing_ok=True)
            atomic_write_json(self.path / CONFIG, self.config)

    def load_checkpoint(self, map_location: Any = None) -> dict[str, Any] | None:
        """The last checkpoint of this run, ``None`` if there is none.

        Raises:
            ValueError: a damaged checkpoint, or one of another identity (e.g. the data at the
                same path was replaced), naming the file and how to start over.
        """
        if self.path is None or not (self.path / CHECKPOINT).exists():
            return None
        path = self.path / CHECKPOINT
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # torch raises RuntimeError, pickle/EOF/zip errors on damage
            raise ValueError(
                f"Expected {str(path)!r} to be a checkpoint written by longtail, but it cannot be "
                f"read: it is damaged ({_load_error(e)}). Delete that file to restart the run "
                "from epoch 0 (or delete the folder to start over)."
            ) from None
        if not isinstance(state, dict) or "epoch" not in state or "task" not in state:
            raise ValueError(
                f"Expected {str(path)!r} to hold a longtail checkpoint, but it holds another "
                "kind of file (a checkpoint of an older longtail?). Delete it to restart the run."
            )
        if not same_run(state.get("identity"), self.identity):
            raise self._refuse(
                "a checkpoint of another run or of other data",
                identity_diff(state.get("identity"), self.identity or {}),
            )
        return state

    def rewrite_log(self, rows: list[dict[str, Any]]) -> None:
        """Replace ``log.jsonl`` by ``rows`` (atomically): used on resume."""
        if self.path is not None and self.main:
            atomic_write_text(self.path / LOG, "".join(json.dumps(r) + "\n" for r in rows))

    def epoch_loggers(self, rows: list[dict[str, Any]]) -> EpochLoggers:
        """The config's loggers beside ``log.jsonl`` (main process only), rebuilt from ``rows``
        (the checkpoint's) as :meth:`rewrite_log` rebuilds the log."""
        write = self.path is not None and self.main
        return EpochLoggers(self.log_kinds if write else (), self.path, rows=rows)

    def save_epoch(self, row: dict[str, Any], state: dict[str, Any]) -> None:
        """Append ``row`` to the log, then replace the checkpoint by ``state``."""
        if self.path is None or not self.main:
            return
        with open(self.path / LOG, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        atomic_torch_save({**state, "identity": self.identity}, self.path / CHECKPOINT)

    def write_record(self, record: dict[str, Any]) -> None:
        """Write ``record`` (main process only). A run resumed on another thread count gets
        ``environment["threads_by_epoch"]`` (in ``record`` too): its floating-point results are
        those of neither count alone, and the record says how it was computed."""
        history, epochs = self.threads_history, record.get("epochs")
        if (
            len(history) > 1
            and isinstance(epochs, int)
            and isinstance(record.get("environment"), dict)
        ):
            ends = [first for first, _ in history[1:]] + [epochs]
            stretches = [
                {"epochs": f"{first}-{end - 1}", "threads": n}
                for (first, n), end in zip(history, ends, strict=True)
                if end > first
            ]
            if len({s["threads"] for s in stretches}) > 1:
                record["environment"]["threads_by_epoch"] = stretches
        if self.path is not None and self.main:
            atomic_write_json(self.path / RESULT, record)


def stored_identity(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The identity a run folder's result or checkpoint records; ``None`` when there is none
    or it cannot be read (the engine reports damaged files when it opens the folder)."""
    return read_stored_identity(path)[0]


def read_stored_identity(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, bool]:
    """:func:`stored_identity`, and whether the result or checkpoint it reads is there but
    cannot be read (damaged: not ours to judge here, the engine names it when it opens the
    folder)."""
    path = Path(path)
    try:
        if (path / RESULT).exists():
            rec = read_json(path / RESULT)
            return (rec.get("identity") if isinstance(rec, dict) else None), False
        if (path / CHECKPOINT).exists():
            state = torch.load(path / CHECKPOINT, map_location="cpu", weights_only=True)
            return (state.get("identity") if isinstance(state, dict) else None), False
    except Exception:
        return None, True
    return None, False


# ------------------------------------------------------------------------------------ batching
def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of every random draw of ``epoch`` (order, augmentation): a pure function of
    ``(seed, epoch)``, so a resumed run draws what an uninterrupted one draws."""
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


def batches(order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive slices of ``order`` of ``batch_size`` (the last one may be shorter)."""
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


class Progress:
    """A line per epoch on stderr, and a tqdm bar over its batches when stderr is a terminal."""

    def __init__(
        self, enabled: bool | None, total_epochs: int, label: str, *, main: bool = True
    ) -> None:
        self.tty = sys.stderr.isatty()
        self.main = main  # the process that speaks (rank 0 under DDP)
        self.enabled = main and (True if enabled is None else enabled)
        self.total = total_epochs
        self.label = label
        self.bar: Any = None

    def say(self, line: str) -> None:
        """A progress line (none with ``enabled=False``)."""
        if self.enabled:
            print(line, file=sys.stderr, flush=True)

    def notice(self, line: str) -> None:
        """A line said even without progress (a warning, a resume): only the main process."""
        if self.main:
            print(line, file=sys.stderr, flush=True)

    def schedule(self, label: str, config: Any) -> list[str]:
        """Say ``config``'s schedule (a progress line) and its ``schedule_warnings()`` (said
        even without progress); return the warnings, for the record."""
        self.say(f"{label}: {config.describe_schedule()}")
        warnings_ = config.schedule_warnings()
        for w in warnings_:
            self.notice(f"{label}: WARNING: {w}")
        return warnings_

    def start(self, epoch: int, steps: int) -> None:
        if not (self.enabled and self.tty):
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is an optional extra; fall back to lines
            return
        self.bar = tqdm(
            total=steps, desc=f"{self.label} {epoch + 1}/{self.total}", leave=False, unit="batch"
        )

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    def end(self, line: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.say(line)


def check_finite(loss: float, epoch: int, step: int, label: str) -> None:
    """Stop a diverged run at once, saying where and what to try."""
    if not math.isfinite(loss):
        kept = (
            f"the last finished epoch is {epoch - 1} (a run with a folder, --out, has its "
            "checkpoint there)"
            if epoch
            else "no epoch finished, so it has no checkpoint"
        )
        raise TrainingDiverged(
            f"Expected the training loss of {label} to stay finite, but it is {loss} at epoch "
            f"{epoch} (0-based), batch {step}. The run stops here; {kept}. Try a lower "
            "learning rate (--lr), a longer warm-up, or check the data and the loss arguments."
        )


# ------------------------------------------------------------------------------------ the loop
class EpochTask(Protocol):
    """What an engine hands :func:`run_epochs`."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def fit_epoch(self, epoch: int, progress: Progress) -> dict[str, Any]: ...


def _thread_text(history: list[list[int]]) -> str:
    counts = sorted({n for _, n in history})
    return " and ".join(map(str, counts)) + f" thread{'s' if counts != [1] else ''}"


def run_epochs(
    task: EpochTask,
    folder: RunFolder,
    epochs: int,
    progress: Progress,
    *,
    map_location: Any = None,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    barrier: Callable[[], None] | None = None,
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> tuple[list[dict[str, Any]], float, int]:
    """Resume ``task`` from its checkpoint and train it to ``epochs``.

    After each epoch the row that ``task.fit_epoch`` returns (it must hold a finite ``"loss"``
    when it has one; ``"seconds"`` is added) is appended to the log and the checkpoint replaced.

    Returns:
        ``(log rows, training seconds, first epoch of this call)``.
    """
    state = folder.load_checkpoint(map_location)
    start, seconds, rows = 0, 0.0, []
    threads = torch.get_num_threads()
    history = [[0, threads]]
    if state is not None:
        task.load_state_dict(state["task"])
        start, seconds, rows = int(state["epoch"]), float(state["seconds"]), list(state["log"])
        progress.notice(f"resuming {folder.path} from epoch {start}")
        history = [list(h) for h in state.get("threads", [])]  # none in older checkpoints
        if history and history[-1][1] != threads and start < epochs:
            progress.notice(
                f"{folder.path}: WARNING: epochs 0-{start - 1} ran on "
                f"{_thread_text(history)} and the rest runs on {threads}: the sums round "
                "differently from here on, and training amplifies it, so the results can differ "
                "from a run on either count alone as much as two seeds do (the record says so)"
            )
        if not history or history[-1][1] != threads:
            history.append([start, threads])
    folder.threads_history = history
    folder.rewrite_log(rows)
    with folder.epoch_loggers(rows) as loggers:
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            row = task.fit_epoch(epoch, progress)
            dt = time.perf_counter() - t0
            seconds += dt
            for unit in ("images", "samples"):  # throughput of whatever the task counts
                if unit in row and dt > 0:
                    row[f"{unit}_per_s"] = row[unit] / dt
            row = clean_json({"epoch": epoch, **row, "seconds": dt})
            rows.append(row)
            folder.save_epoch(
                row,
                {
                    "task": task.state_dict(),
                    "epoch": epoch + 1,
                    "seconds": seconds,
                    "log": rows,
                    "threads": history,
                },
            )
            loggers.log(row)
            progress.end(describe(row) if describe is not None else f"epoch {epoch + 1}/{epochs}")
            if barrier is not None:
                barrier()  # nobody races ahead of the main process's checkpoint
            if callback is not None:
                callback(epoch, row)
    return rows, seconds, start
