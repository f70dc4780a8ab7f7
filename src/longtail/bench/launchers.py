"""Run a grid's runs elsewhere: SLURM through submitit, or a Ray cluster; and the progress line.

:func:`longtail.bench.runner.run_grid` decides which runs of a grid are left to do (a record of
the same identity is finished; see ``docs/runs.md``) and hands them here when a launcher other
than ``"local"`` (its own process pool) is asked for. A launcher only executes the very function
the local pool executes, :func:`longtail.bench.runner.run_job`, once per run: the run trains in
``OUT/work/<run>/`` and writes ``OUT/<run>.json`` itself, so records, skipping and resuming are
the same whichever engine ran them. ``OUT`` must therefore be a folder every node can read and
write (a shared file system).

* ``submitit``: each run is one job of :class:`submitit.AutoExecutor` (SLURM, which needs
  ``sbatch`` and ``srun``, or ``cluster=local`` for local subprocesses); the runs submitted
  together form one job array. A run that reaches its time limit or is pre-empted is requeued
  by submitit, and resumes from its last epoch checkpoint.
* ``ray``: each run is a ``ray.remote`` task with ``num_cpus`` CPUs (default 1) on the cluster
  at ``address`` (``--ray-address``, else ``RAY_ADDRESS``, else a local Ray).

Both are optional: ``pip install longtail[launchers]``. Nothing here schedules: the cluster
does. ``workers`` (``--jobs``) only caps how many runs are submitted at once; ``None`` submits
them all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from longtail._validation import did_you_mean, expected

if TYPE_CHECKING:
    from longtail.bench.runner import Job

__all__ = [
    "LAUNCHERS",
    "ProgressLine",
    "check_launcher",
    "estimate_left",
    "format_duration",
    "format_progress",
    "parse_options",
    "run_jobs",
]

LAUNCHERS = ("local", "submitit", "ray")
_EXTRA = "pip install longtail[launchers]"
# short names of the options that most runs set, per launcher; every other key is passed on as
# the engine spells it (submitit's update_parameters, Ray's task options)
_ALIASES = {
    "submitit": {"cpus": "cpus_per_task", "partition": "slurm_partition", "time": "timeout_min"},
    "ray": {"cpus": "num_cpus", "gpus": "num_gpus"},
}
# submitit's own defaults are made for seconds-long functions: 5 minutes on SLURM, 2 locally
_SUBMITIT_TIMEOUT_MIN = 24 * 60
_POLL_S = 0.5

OnDone = Callable[[str, float], None]
OnFail = Callable[[str, str], None]
OnPoll = Callable[[Sequence[str], Sequence[str]], None]


# ------------------------------------------------------------------------------------ options
def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` (``--launcher-opt``) as a dict; values are JSON when they parse.

    ``cpus_per_task=4`` gives ``4``, ``slurm_partition=gpu`` the string ``"gpu"``,
    ``visible_gpus=[0,1]`` a list.

    Example:
        >>> parse_options(["partition=cpu", "cpus=4", "mem_gb=7.5"])
        {'partition': 'cpu', 'cpus': 4, 'mem_gb': 7.5}
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key:
            raise expected("--launcher-opt", "KEY=VALUE (e.g. partition=gpu)", repr(pair))
        if key in options:
            raise expected("--launcher-opt", f"each key once ({key!r} is given twice)", repr(pair))
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def check_launcher(launcher: str, options: dict[str, Any] | None = None) -> None:
    """Refuse an unknown launcher, options it does not take, or a launcher that cannot run.

    Everything is checked before a grid submits (or lists, with ``--dry-run``) anything:

    * ``submitit``: every key is one of its own (``cluster``, ``folder``), a short name
      (``cpus``, ``partition``, ``time``) or a parameter ``submitit.AutoExecutor`` accepts
      (``mem_gb``, ``slurm_account``, ...; a typo gets the close names); ``cluster`` names one
      of submitit's executors (``slurm``, ``local``, ``debug``). Without ``cluster=local`` (or
      ``debug``), SLURM must be here (``sbatch`` and ``srun``), and the runs go to SLURM:
      submitit's own choice would otherwise fall back to its local executor and run every
      run on this machine at once. ``time`` (``timeout_min``) is a whole number of minutes
      ``>= 1`` (SLURM reads 0 as no limit).
    * ``ray``: the task options are checked by Ray itself (no cluster is started).

    Raises:
        ValueError: an unknown name (the known ones listed), options given to ``"local"``,
            an unknown option, or submitit without SLURM and without ``cluster=local``.
        ImportError: submitit or ray missing, naming the extra that installs them.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(
            str(expected("launcher", f"one of {', '.join(LAUNCHERS)}", repr(launcher)))
            + did_you_mean(launcher, LAUNCHERS)
        )
    options = dict(options or {})
    if launcher == "local":
        if options:
            raise expected(
                "launcher options",
                "absent for the local process pool (they are for submitit and ray)",
                ", ".join(sorted(options)),
            )
        return
    module = _import(launcher)
    if launcher == "submitit":
        _check_submitit(module, options)
    else:
        _ray_remote(module, options)


def _submitit_names(submitit: Any) -> tuple[set[str], tuple[str, ...]] | None:
    """The parameter names ``AutoExecutor.update_parameters`` accepts, and the executors'
    names; ``None`` where this submitit does not expose them (then submitit checks them)."""
    try:
        from submitit.core import plugins

        executors = plugins.get_executors()
        generic = set(submitit.AutoExecutor._typed_parameters())
        names = set(generic)
        for name, executor in executors.items():
            own = set(executor._valid_parameters())
            names |= {f"{name}_{arg}" for arg in own | generic}
            names |= own  # unprefixed: still accepted (submitit prefixes them, with a warning)
    except (ImportError, AttributeError, TypeError):
        return None
    return names, tuple(executors)


def _check_submitit(submitit: Any, options: dict[str, Any]) -> None:
    known = _submitit_names(submitit)
    if known is not None:
        names, executors = known
        ours = {"cluster", "folder", *_ALIASES["submitit"]}
        for key in options:
            if key not in ours and key not in names:
                listed = sorted(ours | set(submitit.AutoExecutor._typed_parameters()))
                raise ValueError(
                    str(
                        expected(
                            "launcher option",
                            f"one of {', '.join(listed)}, or a parameter of "
                            "submitit.AutoExecutor.update_parameters (slurm_account, ...)",
                            repr(key),
                        )
                    )
                    + did_you_mean(key, sorted(ours | names))
                )
        cluster = options.get("cluster")
        if cluster is not None and cluster not in executors:
            raise ValueError(
                str(expected("launcher option cluster", f"one of {', '.join(executors)}", cluster))
                + did_you_mean(str(cluster), executors)
            )
    resolved = _resolve("submitit", options)
    _threads(resolved.get("cpus_per_task", 1), "cpus_per_task")
    if "timeout_min" in resolved:
        _minutes(resolved["timeout_min"], "timeout_min")
    # submitit submits with sbatch, and its jobs start with srun (which it looks for itself)
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if options.get("cluster") in (None, "slurm") and missing:
        raise ValueError(
            "--launcher submitit submits SLURM jobs, but there is no SLURM here "
            f"({' and '.join(missing)} not found); --launcher-opt cluster=local runs the jobs "
            "through submitit's local executor"
        )


def _ray_remote(ray: Any, options: dict[str, Any]) -> Any:
    """:func:`~longtail.bench.runner.run_job` as a Ray remote function with the task options
    (checked by Ray; no cluster is started or joined)."""
    from longtail.bench.runner import run_job

    task = _resolve("ray", {k: v for k, v in options.items() if k != "address"})
    _threads(task.get("num_cpus", 1), "num_cpus")
    try:
        return ray.remote(run_job).options(**task)
    except (ValueError, TypeError) as err:
        raise ValueError(f"Ray refused the launcher options: {err}") from None


def _import(launcher: str) -> Any:
    try:
        if launcher == "ray":
            import ray

            return ray
        import submitit

        return submitit
    except ImportError as err:
        raise ImportError(
            f"--launcher {launcher} needs the optional package {launcher}: {_EXTRA}"
        ) from err


def _resolve(launcher: str, options: dict[str, Any]) -> dict[str, Any]:
    aliases = _ALIASES.get(launcher, {})
    resolved: dict[str, Any] = {}
    for key, value in options.items():
        name = aliases.get(key, key)
        if name in resolved:
            raise expected("launcher options", f"{key!r} or {name!r}, not both", repr(value))
        resolved[name] = value
    return resolved


def _minutes(value: Any, name: str) -> int:
    # SLURM reads a time limit of 0 as "no limit" and refuses a negative one
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise expected(f"launcher option {name}", "a whole number of minutes >= 1", repr(value))
    return value


def _threads(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        raise expected(f"launcher option {name}", "a number of CPUs >= 1", repr(value))
    return max(1, int(value))


# ----------------------------------------------------------------------------------- progress
def format_duration(seconds: float) -> str:
    """A stopwatch's reading: ``m:ss`` under an hour, ``h:mm:ss`` from one hour on; whole
    seconds, truncated (a run of 6.7 s reads ``0:06``, as the progress line's elapsed field).

    Example:
        >>> format_duration(6.7), format_duration(65), format_duration(3725)
        ('0:06', '1:05', '1:02:05')
    """
    s = max(0, int(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def estimate_left(per_run: float, left: int, ages: Sequence[float], at_once: int) -> float:
    """Seconds until the last of ``left`` runs ends, each taking ``per_run`` seconds.

    ``ages``: how long each run in flight (one of the ``left``) has been running; the others
    start, ``at_once`` at most at a time, as a slot frees. For runs of equal length this is
    exact: 3 runs left 2 at a time take two rounds, ``2 * per_run``, not ``1.5 * per_run``.

    Example:
        >>> estimate_left(60, 3, [], 2), estimate_left(60, 4, [50, 10], 2)
        (120.0, 110.0)
    """
    import heapq

    flight = list(ages)[:left]
    slots = [max(0.0, per_run - float(a)) for a in flight]
    slots += [0.0] * max(0, max(1, at_once) - len(slots))
    heapq.heapify(slots)
    for _ in range(left - len(flight)):
        heapq.heappush(slots, heapq.heappop(slots) + per_run)
    return max(slots) if left else 0.0


def format_progress(
    done: int,
    total: int,
    running: Sequence[str],
    elapsed: float,
    durations: Sequence[float],
    parallelism: int,
    failed: int = 0,
    queued: int = 0,
    ages: Sequence[float] | None = None,
) -> str:
    """One progress line: ``runs 3/8, running: a, b, elapsed 1:05, ETA 4:00``.

    Args:
        done: Runs of the grid with a record (skipped ones included).
        total: Runs of the grid.
        running: Names of the runs in flight.
        elapsed: Seconds since the grid started.
        durations: Seconds each run finished in this invocation took.
        parallelism: Runs at once (``--jobs``, or the most the cluster has run at once).
        failed: Runs that failed in this invocation (neither done nor left).
        queued: Runs submitted but not started (a cluster's queue).
        ages: Seconds each run of ``running`` has been running (default: all just started).

    The ETA (:func:`estimate_left`) takes every run to last the median of the finished ones:
    the runs in flight end when that much time has passed since they started, and the runs
    left start as slots free, ``parallelism`` at a time (never more at once than are left);
    ``ETA —`` until a run has finished.
    """
    left = max(0, total - done - failed)
    head = f"runs {done}/{total}" + (f" ({failed} failed)" if failed else "")
    now = f"running: {', '.join(running) if running else '—'}"
    if queued:
        now += f", queued: {queued}"
    if durations:
        at_once = max(1, min(parallelism, left), len(running))
        ages = list(ages) if ages is not None else [0.0] * len(running)
        seconds = estimate_left(statistics.median(durations), left, ages, at_once)
        eta = f"ETA {format_duration(seconds)}"
    else:
        eta = "ETA —"
    return f"{head}, {now}, elapsed {format_duration(elapsed)}, {eta}"


class ProgressLine:
    """The grid's live progress line on ``stream`` (stderr).

    On a terminal the line is redrawn in place (``\\r``) at most once a second; otherwise a new
    line is written whenever what it says changes, save the clock (a log stays short). Messages
    (:meth:`say`) go above it.

    Args:
        total: Runs of the grid.
        done: Runs already finished (skipped) before this invocation.
        parallelism: Runs at once; ``None``: the most seen running at once.
        stream: Where to write (default ``sys.stderr``).
        tty: Whether ``stream`` is a terminal (default: ask it).
        clock: Seconds, monotonic (a test passes its own).
    """

    def __init__(
        self,
        total: int,
        done: int = 0,
        parallelism: int | None = None,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.done, self.failed = total, done, 0
        self.parallelism, self.peak = parallelism, 1
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", bool)())
        self.clock, self.t0 = clock, clock()
        self.durations: list[float] = []
        self.running: tuple[str, ...] = ()
        self.queued: tuple[str, ...] = ()
        self.started: dict[str, float] = {}  # when each run was first seen running
        self._shown = ""  # the state the last line said (without the clock)
        self._drawn = 0  # characters of the line on the terminal now
        self._last = -1e9

    def text(self) -> str:
        """The line as it reads now."""
        return format_progress(
            self.done,
            self.total,
            self.running,
            self.clock() - self.t0,
            self.durations,
            self.parallelism or self.peak,
            self.failed,
            len(self.queued),
            [self.clock() - self.started.get(n, self.clock()) for n in self.running],
        )

    def update(self, running: Sequence[str], queued: Sequence[str] = ()) -> None:
        """The runs in flight now (and those waiting in a cluster's queue)."""
        self.running, self.queued = tuple(running), tuple(queued)
        now = self.clock()
        for name in self.running:
            self.started.setdefault(name, now)
        self.peak = max(self.peak, len(self.running))
        self._show()

    def finished(self, name: str, seconds: float) -> None:
        """A run finished in ``seconds`` (its worker's count; the line's own, from when it was
        first seen running, where longer: it includes starting the worker process)."""
        self.done += 1
        seen = self.started.pop(name, None)
        took = float(seconds) if seen is None else max(float(seconds), self.clock() - seen)
        self.durations.append(took)
        self.running = tuple(n for n in self.running if n != name)
        self._show()

    def fail(self, name: str) -> None:
        """A run failed."""
        self.failed += 1
        self.running = tuple(n for n in self.running if n != name)
        self._show()

    def say(self, message: str) -> None:
        """Write ``message`` on its own line(s), above the progress line."""
        self._erase()
        print(message, file=self.stream, flush=True)
        self._show(force=True)

    def close(self) -> None:
        """End the line (a terminal keeps its last state)."""
        if self.tty and self._drawn:
            self._show(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0

    def _state(self) -> str:
        return f"{self.done}|{self.failed}|{self.running}|{self.queued}|{bool(self.durations)}"

    def _erase(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _show(self, force: bool = False) -> None:
        state, now = self._state(), self.clock()
        if self.tty:
            if not force and state == self._shown and now - self._last < 1.0:
                return
            line = self.text()
            width = shutil.get_terminal_size((120, 20)).columns - 1
            if len(line) > width:
                line = line[: max(0, width - 1)] + "…"
            pad = " " * max(0, self._drawn - len(line))
            self.stream.write("\r" + line + pad)
            self._drawn = len(line)
        else:
            if state == self._shown:
                return
            self.stream.write(self.text() + "\n")
        self.stream.flush()
        self._shown, self._last = state, now


# ---------------------------------------------------------------------------------- launchers
class _SubmititRun:
    """:func:`~longtail.bench.runner.run_job` as a submitit job that may be requeued.

    submitit calls ``checkpoint`` when SLURM is about to stop the job (time limit, pre-emption)
    and submits what it returns again: here the same run, which resumes from its last epoch
    checkpoint (``OUT/work/<run>/checkpoint.pt``).
    """

    def __call__(self, job: Job, out: str, threads: int | None) -> tuple[str, float]:
        from longtail.bench.runner import run_job

        return run_job(job, out, threads, False)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


class _Engine:
    """What the loop of :func:`run_jobs` needs of an engine: submit, poll, collect, cancel."""

    threads: int | None = None

    def submit(self, jobs: Sequence[Job], out: str) -> list[Any]:
        raise NotImplementedError

    def finished(self, handles: Sequence[Any]) -> list[int]:
        """The positions in ``handles`` of the runs that ended (waiting a moment for one)."""
        raise NotImplementedError

    def result(self, handle: Any) -> tuple[bool, Any]:
        raise NotImplementedError

    def waiting(self, handle: Any) -> bool:
        return False

    def cancel(self, handles: Sequence[Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Submitit(_Engine):
    def __init__(self, out: Path, options: dict[str, Any]) -> None:
        submitit = _import("submitit")
        options = dict(options)
        folder = options.pop("folder", out / "work" / "submitit")
        # SLURM unless told otherwise (check_launcher found sbatch and srun): submitit's own
        # choice would pick its local executor wherever it misses srun
        cluster = options.pop("cluster", None) or "slurm"
        self.threads = _threads(options.get("cpus_per_task", 1), "cpus_per_task")
        options.setdefault("timeout_min", _SUBMITIT_TIMEOUT_MIN)
        options.setdefault("name", f"longtail-{out.name}")
        try:
            self.executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
            self.executor.update_parameters(**options)
        except (AssertionError, NameError, TypeError, RuntimeError) as err:
            raise ValueError(f"submitit refused the launcher options: {err}") from None

    def submit(self, jobs: Sequence[Job], out: str) -> list[Any]:
        fn = _SubmititRun()
        if len(jobs) == 1:
            return [self.executor.submit(fn, jobs[0], out, self.threads)]
        with self.executor.batch():  # one job array on SLURM
            handles = [self.executor.submit(fn, job, out, self.threads) for job in jobs]
        return handles

    def finished(self, handles: Sequence[Any]) -> list[int]:
        time.sleep(_POLL_S)
        return [i for i, h in enumerate(handles) if h.done()]

    def result(self, handle: Any) -> tuple[bool, Any]:
        err = handle.exception()
        return (True, handle.result()) if err is None else (False, f"{err}\n")

    def waiting(self, handle: Any) -> bool:
        return str(handle.state).upper() in {"PENDING", "REQUEUED", "CONFIGURING", "UNKNOWN"}

    def cancel(self, handles: Sequence[Any]) -> None:
        for h in handles:
            h.cancel(check=False)


class _Ray(_Engine):
    def __init__(self, out: Path, options: dict[str, Any]) -> None:
        self.ray = ray = _import("ray")
        options = dict(options)
        address = options.pop("address", None) or os.environ.get("RAY_ADDRESS") or None
        self.threads = _threads(options.setdefault("num_cpus", 1), "num_cpus")
        self.started = False
        # the options are checked before a cluster is started or joined
        self.remote = _ray_remote(ray, options)
        if not ray.is_initialized():
            ray.init(address=address)
            self.started = True

    def submit(self, jobs: Sequence[Job], out: str) -> list[Any]:
        return [self.remote.remote(job, out, self.threads, False) for job in jobs]

    def finished(self, handles: Sequence[Any]) -> list[int]:
        ready, _ = self.ray.wait(list(handles), num_returns=len(handles), timeout=_POLL_S)
        ended = set(ready)  # object refs compare and hash by their id
        return [i for i, h in enumerate(handles) if h in ended]

    def result(self, handle: Any) -> tuple[bool, Any]:
        try:
            return True, self.ray.get(handle)
        except Exception as err:  # RayTaskError carries the run's traceback in its text
            return False, f"{err}\n"

    def cancel(self, handles: Sequence[Any]) -> None:
        for h in handles:
            self.ray.cancel(h, force=True)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False


def run_jobs(
    jobs: Sequence[Job],
    out: str | os.PathLike[str],
    launcher: str,
    workers: int | None,
    options: dict[str, Any] | None,
    on_done: OnDone,
    on_fail: OnFail,
    on_poll: OnPoll | None = None,
) -> None:
    """Execute ``jobs`` (the runs left to do) through ``launcher`` and report each one.

    Every run is :func:`longtail.bench.runner.run_job` on a worker of the engine, which writes
    the run's record itself; this process only waits.

    Args:
        jobs: The runs to execute (finished ones already left out by the caller).
        out: The grid's output folder, on a file system the workers share.
        launcher: ``"submitit"`` or ``"ray"``.
        workers: At most this many runs submitted at once; ``None`` submits every run now and
            lets the cluster schedule them.
        options: The engine's options (:func:`parse_options`): for submitit, ``cluster``,
            ``folder`` (logs and pickles; default ``OUT/work/submitit``) and any argument of
            ``AutoExecutor.update_parameters`` (``timeout_min``, ``cpus_per_task``,
            ``slurm_partition``, ...; ``time``, ``cpus``, ``partition`` for short); for Ray,
            ``address`` and any task option (``num_cpus``, default 1, or ``cpus``; ``num_gpus``,
            ``memory``, ...). The CPUs of a run are also its torch threads.
        on_done: Called with ``(name, seconds)`` for each finished run.
        on_fail: Called with ``(name, traceback text)`` for each failed run; the others go on.
        on_poll: Called about twice a second with the names running and those still queued.

    If this process is interrupted or fails, the runs it submitted are cancelled; a run that
    had started resumes from its checkpoint when the grid is run again.
    """
    check_launcher(launcher, options)
    if launcher == "local":
        raise expected("launcher", "submitit or ray here (run_grid runs the local pool)", "local")
    if workers is not None and workers < 1:
        raise expected("workers", "a number of runs >= 1, or None", repr(workers))
    out = Path(out)
    options = _resolve(launcher, dict(options or {}))
    engine: _Engine = _Submitit(out, options) if launcher == "submitit" else _Ray(out, options)
    pending: list[Job] = list(jobs)
    flight: list[tuple[Any, str]] = []  # (engine's handle, run name), in submission order
    restore = _term_as_interrupt()
    try:
        while pending or flight:
            room = len(pending) if workers is None else workers - len(flight)
            if room > 0 and pending:
                batch, pending = pending[:room], pending[room:]
                flight += zip(engine.submit(batch, str(out)), (j.name for j in batch), strict=True)
            ended = set(engine.finished([h for h, _ in flight]))
            for handle, name in [f for i, f in enumerate(flight) if i in ended]:
                ok, value = engine.result(handle)
                if ok:
                    on_done(*value)
                else:
                    on_fail(name, value)
            flight = [f for i, f in enumerate(flight) if i not in ended]
            if on_poll is not None:
                queued = {n for h, n in flight if engine.waiting(h)}
                on_poll([n for _, n in flight if n not in queued], sorted(queued))
    except BaseException:
        engine.cancel([h for h, _ in flight])
        raise
    finally:
        restore()
        engine.close()


def _term_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM (how SLURM stops a job: ``scancel``, a time limit, pre-emption) interrupt
    this process as Ctrl-C does, so that the runs it submitted are cancelled too; returns what
    puts the old handler back. Only the main thread can set a handler; elsewhere nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, old)
