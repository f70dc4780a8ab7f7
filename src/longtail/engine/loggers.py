"""Epoch loggers beside ``log.jsonl``: TensorBoard event files and a CSV table.

Every run writes ``log.jsonl`` (one JSON row per finished epoch, see
:mod:`longtail.engine.run`). A run's ``log`` setting (``--log tensorboard,csv``) adds:

* ``tensorboard``: ``tb/`` in the run folder, one scalar per number of a row (the flattened key
  with ``/``: ``loss``, ``lr``, ``reweighted`` (the DRW flag as 0/1), ``test/top1_error``,
  ``test/balanced_accuracy``, ``test/many_acc``, ...) at step = the 0-based epoch, written with
  :class:`torch.utils.tensorboard.SummaryWriter` (``pip install "longtail[tensorboard]"``);
* ``csv``: ``log.csv``, one row per epoch, nested keys flattened with ``.`` (``test.top1_error``),
  values as ``log.jsonl`` has them (a missing or non-finite value is an empty cell).

Both follow the harness's rule for ``log.jsonl`` on resume: they are rebuilt from the rows the
checkpoint holds, then appended to, so rows of an epoch that was logged but never checkpointed
disappear and a resumed run has exactly one row (one step) per epoch. The CSV header is the
union of the rows' keys in the order first met: a row with a new key (the first evaluated
epoch) rewrites the file, atomically, under the wider header, so the header of a resumed run is
the header of one never killed.

Logging is bookkeeping: it changes nothing a run computes, so it is not part of a run's identity
(:data:`longtail.engine.run.BOOKKEEPING`). Hence a *finished* run opened again with loggers whose
output is missing or does not hold its rows (it was trained without ``--log``, or the files were
removed or cut short) gets them rebuilt from its log rows without training
(:func:`rebuild_stale`, called by :meth:`longtail.engine.run.RunFolder.open`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from longtail._validation import did_you_mean, expected
from longtail.engine.io import atomic_write_text

__all__ = [
    "CSV_LOG",
    "LOG_KINDS",
    "TB_DIR",
    "EpochLoggers",
    "csv_text",
    "flatten_row",
    "log_kinds",
    "rebuild_stale",
]

#: The loggers a run may add to ``log.jsonl`` (which is always written).
LOG_KINDS = ("tensorboard", "csv")
CSV_LOG = "log.csv"
TB_DIR = "tb"
_EXTRA = 'pip install "longtail[tensorboard]"'


def log_kinds(value: Any, name: str = "log") -> tuple[str, ...]:
    """The loggers of a ``log`` setting, checked, in the canonical order of :data:`LOG_KINDS`.

    Accepts ``None``, a comma-separated string (``"tensorboard,csv"``) or a sequence of names;
    ``"jsonl"`` is accepted and dropped (it is always written).

    Example:
        >>> log_kinds("csv, tensorboard"), log_kinds(["jsonl"]), log_kinds(None)
        (('tensorboard', 'csv'), (), ())

    Raises:
        ValueError: an unknown logger (with the close names) or a value of another type.
    """
    what = f"a comma-separated list of {', '.join(LOG_KINDS)} (jsonl is always written)"
    if value is None:
        return ()
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        items = [s.strip() for s in value]
    else:
        raise expected(name, what, f"{value!r} ({type(value).__name__})")
    for item in items:
        if item not in (*LOG_KINDS, "jsonl", ""):
            raise ValueError(f"{expected(name, what, repr(item))}{did_you_mean(item, LOG_KINDS)}")
    return tuple(k for k in LOG_KINDS if k in items)


def flatten_row(row: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    """A log row with nested dicts flattened: ``{"test": {"top1_error": 3}}`` gives
    ``{"test.top1_error": 3}``; lists become their JSON text, other values are kept.

    Example:
        >>> flatten_row({"epoch": 0, "test": {"top1_error": 2.5, "few_acc": None}})
        {'epoch': 0, 'test.top1_error': 2.5, 'test.few_acc': None}
    """
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for k, v in flatten_row(value, sep).items():
                out[f"{key}{sep}{k}"] = v
        elif isinstance(value, list | tuple):
            out[key] = json.dumps(value)
        else:
            out[key] = value
    return out


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _csv_lines(
    header: Sequence[str], flat_rows: Iterable[dict[str, Any]], with_header: bool
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if with_header:
        writer.writerow(header)
    for r in flat_rows:
        writer.writerow([_cell(r.get(k)) for k in header])
    return buf.getvalue()


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    """What ``log.csv`` holds for ``rows``: the header (keys in the order first met), a line a row.

    Example:
        >>> print(csv_text([{"epoch": 0, "loss": 2.5}, {"epoch": 1, "test": {"ece": 3}}]), end="")
        epoch,loss,test.ece
        0,2.5,
        1,,3
    """
    flat = [flatten_row(r) for r in rows]
    header = list(dict.fromkeys(k for r in flat for k in r))
    return _csv_lines(header, flat, with_header=True) if header else ""


class _CsvLog:
    """``log.csv``: rebuilt from ``rows`` on open, then a line appended (and fsync'ed) a row."""

    def __init__(self, path: Path, rows: Iterable[dict[str, Any]]) -> None:
        self.path = path
        self.rows = [flatten_row(r) for r in rows]
        self.header: list[str] = []
        for r in self.rows:
            self._widen(r)
        self._rewrite()

    def _widen(self, flat: dict[str, Any]) -> bool:
        new = [k for k in flat if k not in self.header]
        self.header.extend(new)
        return bool(new)

    def _lines(self, rows: Sequence[dict[str, Any]], header: bool) -> str:
        return _csv_lines(self.header, rows, header)

    def _rewrite(self) -> None:
        text = self._lines(self.rows, header=True) if self.header else ""
        atomic_write_text(self.path, text)

    def log(self, row: dict[str, Any]) -> None:
        flat = flatten_row(row)
        self.rows.append(flat)
        if self._widen(flat):
            self._rewrite()  # a wider header: every row again, under it
            return
        with open(self.path, "a", newline="") as f:
            f.write(self._lines([flat], header=False))
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        pass


def summary_writer_class() -> Any:
    """:class:`torch.utils.tensorboard.SummaryWriter`, imported here (lazily).

    Raises:
        ImportError: tensorboard is not installed, naming the extra that installs it.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            f"Logging to TensorBoard (--log tensorboard) needs the tensorboard package: {_EXTRA} "
            "(or pip install tensorboard)."
        ) from err
    return SummaryWriter


def _scalars(row: dict[str, Any]) -> Iterator[tuple[str, int, float]]:
    """``(tag, step, value)`` of each TensorBoard scalar of a log row."""
    step = int(row["epoch"])
    for key, value in flatten_row(row, sep="/").items():
        if key == "epoch" or not isinstance(value, int | float):
            continue
        value = float(value)  # bools (the DRW flag) as 0 / 1
        if math.isfinite(value):
            yield key, step, value


def _tensorboard_holds(path: Path, rows: Sequence[dict[str, Any]]) -> bool:
    """Whether the event files in ``path`` hold exactly the scalars of ``rows`` (as float32)."""
    import numpy as np
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    files = sorted(path.glob("events.out.tfevents.*")) if path.is_dir() else []
    if not files:
        return False
    got: list[tuple[str, int, float]] = []
    try:
        for file in files:
            for event in LegacyEventFileLoader(str(file)).Load():
                for v in event.summary.value:
                    if v.HasField("simple_value"):
                        got.append((v.tag, int(event.step), float(v.simple_value)))
    except Exception:  # a damaged event file: rebuild it
        return False
    want = [(k, s, float(np.float32(v))) for r in rows for k, s, v in _scalars(r)]
    return sorted(got) == sorted(want)


def rebuild_stale(
    kinds: Any, run_dir: str | os.PathLike[str], rows: Sequence[dict[str, Any]]
) -> tuple[str, ...]:
    """Rebuild the loggers of ``kinds`` whose output in ``run_dir`` does not hold ``rows``.

    For a finished run opened again with ``--log``: ``log.csv`` is rewritten (atomically) when
    it is missing or its text is not :func:`csv_text` of ``rows``; ``tb/`` when its event files
    are missing or do not hold exactly the scalars of ``rows``. Output that is up to date is
    left untouched.

    Returns:
        The loggers rebuilt, in the order of :data:`LOG_KINDS`.

    Raises:
        ValueError: an unknown logger. ImportError: ``tensorboard`` without the package.
    """
    run_dir = Path(run_dir)
    rebuilt = []
    for kind in log_kinds(kinds):
        if kind == "csv":
            path = run_dir / CSV_LOG
            text = csv_text(rows)
            if not path.is_file() or path.read_text() != text:
                atomic_write_text(path, text)
                rebuilt.append(kind)
        elif kind == "tensorboard":
            summary_writer_class()  # the package, or the one-line error naming the extra
            if not _tensorboard_holds(run_dir / TB_DIR, rows):
                _TensorBoardLog(run_dir / TB_DIR, rows).close()
                rebuilt.append(kind)
    return tuple(rebuilt)


class _TensorBoardLog:
    """``tb/``: its old event files removed on open, the checkpoint's rows written again."""

    def __init__(self, path: Path, rows: Iterable[dict[str, Any]]) -> None:
        writer_class = summary_writer_class()  # fails before anything is removed
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = writer_class(log_dir=str(path))
        for r in rows:
            self._write(r)
        self.writer.flush()

    def _write(self, row: dict[str, Any]) -> None:
        for key, step, value in _scalars(row):
            self.writer.add_scalar(key, value, global_step=step)

    def log(self, row: dict[str, Any]) -> None:
        self._write(row)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class EpochLoggers:
    """The loggers of one run besides ``log.jsonl``; :func:`~longtail.engine.run.run_epochs`
    opens them after the resume and logs each epoch's row after its checkpoint.

    Args:
        kinds: Names from :data:`LOG_KINDS` (anything :func:`log_kinds` accepts).
        run_dir: The run folder; ``None`` logs nothing (a run that keeps nothing on disk).
        rows: The rows logged so far (a resumed run's checkpoint rows), written again first.

    Raises:
        ValueError: an unknown logger. ImportError: ``tensorboard`` without the package.
    """

    def __init__(
        self,
        kinds: Any,
        run_dir: str | os.PathLike[str] | None,
        *,
        rows: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.kinds = log_kinds(kinds)
        self.loggers: list[Any] = []
        if run_dir is None:
            return
        run_dir = Path(run_dir)
        if "tensorboard" in self.kinds:
            self.loggers.append(_TensorBoardLog(run_dir / TB_DIR, rows))
        if "csv" in self.kinds:
            self.loggers.append(_CsvLog(run_dir / CSV_LOG, rows))

    def log(self, row: dict[str, Any]) -> None:
        """Log one finished epoch's row (as ``log.jsonl`` holds it)."""
        for logger in self.loggers:
            logger.log(row)

    def close(self) -> None:
        """Flush and close every logger (the harness calls it however the run ends)."""
        for logger in self.loggers:
            logger.close()

    def __enter__(self) -> EpochLoggers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
