"""A grid run through submitit or Ray writes the records the local pool writes, skips what is
finished, and says what runs on a live progress line (longtail/bench/launchers.py)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from longtail.bench import launchers
from longtail.bench.launchers import (
    ProgressLine,
    check_launcher,
    estimate_left,
    format_duration,
    format_progress,
    run_jobs,
)
from longtail.bench.runner import run_grid, table1_jobs
from longtail.cli import main as cli_main
from test_engine import write_npz

# the smallest grid that still trains: two methods, one epoch, a 4-channel CNN, 1 thread
TINY = dict(model="small-cnn", width=4, batch_size=16, padding=1, threads=1, epochs=1)
# what differs between two runs of one config: the wall-clock time and the machine's report
VOLATILE = ("seconds", "environment")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("launchers") / "toy.npz"))


def grid(npz: str, methods: tuple[str, ...] = ("erm", "ldam")) -> list:
    return table1_jobs(npz, "quick", methods=methods, settings=(("exp", 4.0),), **TINY)


def records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def same_numbers(rec: dict) -> dict:
    """A record less its wall-clock time and machine report; the curve less its timings."""
    kept = {k: v for k, v in rec.items() if k not in VOLATILE}
    kept["curve"] = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rec["curve"]]
    return kept


@pytest.fixture(scope="module")
def pool(npz, tmp_path_factory) -> tuple[dict[str, dict], str]:
    """The reference: the grid through the local pool, 2 processes, and what it printed."""
    out = tmp_path_factory.mktemp("pool")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        summary = run_grid(grid(npz), out, workers=2)
    assert summary == {"total": 2, "skipped": 0, "ran": 2, "failed": {}}
    return records(out), err.getvalue()


def check_same_records(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert sorted(got) == sorted(want) == ["toy_exp4_erm_s0", "toy_exp4_ldam_s0"]
    for name in want:
        assert got[name]["identity"] == want[name]["identity"]
        # CPU runs of one config with the same thread count are deterministic: bit-identical
        assert got[name]["metrics"] == want[name]["metrics"], name
        assert same_numbers(got[name]) == same_numbers(want[name]), name


# ---------------------------------------------------------------------------------- progress
def test_format_progress_on_fixed_inputs():
    line = format_progress(2, 10, ["a", "b"], 65.0, [], 2)
    assert line == "runs 2/10, running: a, b, elapsed 1:05, ETA —"
    # median(60, 100, 80) = 80 s; 5 runs left, c just started, 2 at a time: c and one more end
    # at 80 s, two more at 160 s, the last at 240 s (not 80 * 5 / 2 = 200 s)
    line = format_progress(5, 10, ["c"], 3725.0, [60.0, 100.0, 80.0], 2)
    assert line == "runs 5/10, running: c, elapsed 1:02:05, ETA 4:00"
    # 1 failed: 4 left, never more than 4 at once though 8 could run: all end at 80 s
    line = format_progress(5, 10, ["c"], 0.0, [60.0, 100.0, 80.0], 8, failed=1, queued=3)
    assert line == "runs 5/10 (1 failed), running: c, queued: 3, elapsed 0:00, ETA 1:20"
    assert format_progress(4, 4, [], 59.6, [10.0], 2) == (
        "runs 4/4, running: —, elapsed 0:59, ETA 0:00"
    )
    # runs in flight for 50 s and 10 s of 60: they end in 10 s and 50 s; the 2 runs left
    # start then and end at 70 s and 110 s
    line = format_progress(2, 6, ["a", "b"], 100.0, [60.0], 2, ages=[50.0, 10.0])
    assert line.endswith("ETA 1:50")


@pytest.mark.parametrize(
    ("per_run", "left", "ages", "at_once", "want"),
    [
        (60.0, 3, [], 2, 120.0),  # two rounds, not 1.5
        (60.0, 4, [], 2, 120.0),
        (60.0, 1, [], 4, 60.0),
        (60.0, 3, [30.0, 30.0], 2, 90.0),  # both end at 30 s, the third runs 30 to 90 s
        (60.0, 2, [90.0, 0.0], 2, 60.0),  # a run past the median is taken to end now
        (60.0, 0, [], 2, 0.0),
        (10.0, 5, [], 1, 50.0),  # one at a time: the sum
    ],
)
def test_estimate_left_is_a_schedule_of_equal_runs(per_run, left, ages, at_once, want):
    assert estimate_left(per_run, left, ages, at_once) == want


def test_durations_read_as_a_stopwatch():
    """Short runs read in seconds, as the line's elapsed field: not "0.0 min"."""
    assert format_duration(0.4) == "0:00"
    assert format_duration(6.9) == "0:06"
    assert format_duration(59.99) == "0:59"
    assert format_duration(61) == "1:01"
    assert format_duration(3600) == "1:00:00"
    assert format_duration(-3) == "0:00"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_line_off_a_terminal_writes_a_line_per_change():
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine(3, done=1, parallelism=2, stream=stream, tty=False, clock=clock)
    line.update(["a"])
    clock.t += 10
    line.update(["a", "b"])
    line.update(["a", "b"])  # nothing changed
    clock.t += 20
    line.update(["a", "b"])  # only the clock changed: no new line in a log
    # its worker says 20 s, the line saw it run 30 s (starting a worker takes time): 30 s
    line.finished("a", 20.0)
    line.say("[2/3] a finished in 0:20")
    clock.t += 5
    line.update(["b"])
    line.close()
    assert stream.getvalue().splitlines() == [
        "runs 1/3, running: a, elapsed 0:00, ETA —",
        "runs 1/3, running: a, b, elapsed 0:10, ETA —",
        # 1 left (b), running for 20 s of 30: 10 s
        "runs 2/3, running: b, elapsed 0:30, ETA 0:10",
        "[2/3] a finished in 0:20",
    ]
    assert "\r" not in stream.getvalue()


def test_progress_line_on_a_terminal_is_redrawn_in_place():
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine(2, parallelism=2, stream=stream, tty=True, clock=clock)
    line.update(["alpha", "beta"])
    first = "runs 0/2, running: alpha, beta, elapsed 0:00, ETA —"
    assert stream.getvalue() == "\r" + first
    clock.t += 0.5
    line.update(["alpha", "beta"])  # under a second and nothing new: not redrawn
    assert stream.getvalue() == "\r" + first
    clock.t += 1.0
    line.update(["alpha", "beta"])  # the clock ticks on a terminal
    second = "runs 0/2, running: alpha, beta, elapsed 0:01, ETA —"
    assert stream.getvalue().endswith("\r" + second)
    line.finished("alpha", 4.0)
    # 4 s a run; beta has run 1.5 s of them: 2.5 s left, shown as whole seconds
    third = "runs 1/2, running: beta, elapsed 0:01, ETA 0:02"
    # the shorter line pads over what the longer one left
    assert stream.getvalue().endswith("\r" + third + " " * (len(second) - len(third)))
    stream.truncate(0)
    stream.seek(0)
    line.say("a message")
    # the line is blanked, the message written on its own line, the line drawn again below it
    assert stream.getvalue() == "\r" + " " * len(third) + "\r" + "a message\n" + "\r" + third
    line.close()
    assert stream.getvalue().endswith("\n") and "\n" not in third


def test_the_local_pool_shows_the_progress_line(pool):
    _, err = pool
    assert "2 at a time" in err
    lines = err.splitlines()
    # the line says what runs before any run has finished: it did not wait for one
    first = lines.index(next(s for s in lines if s.startswith("runs 0/2, running: ")))
    assert "ETA —" in lines[first]
    assert any(s.startswith("[1/2] ") for s in lines[first:])
    assert any(s.startswith("runs 2/2, running: —") for s in lines)
    # a finished run's time as a stopwatch reads it (1-epoch runs took seconds, not "0.0 min")
    done = [s for s in lines if s.startswith("[")]
    assert len(done) == 2 and all(re.search(r" finished in \d+:\d\d$", s) for s in done), done


# ---------------------------------------------------------------------------------- bad input
def test_an_unknown_launcher_is_refused_before_anything_is_written(npz, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(ValueError, match=r"local, submitit, ray.*Did you mean 'submitit'"):
        run_grid(grid(npz), out, launcher="submitt")
    assert not out.exists()
    with pytest.raises(ValueError, match="absent for the local process pool"):
        check_launcher("local", {"cpus": 2})
    base = ["bench", "table1", "--dataset", npz, "--out", str(out), "--no-progress"]
    with pytest.raises(SystemExit) as exit_:
        cli_main([*base, "--launcher", "slurm"])
    assert exit_.value.code == 2
    assert "invalid choice: 'slurm'" in capsys.readouterr().err
    assert cli_main([*base, "--launcher", "submitit", "--launcher-opt", "cpus"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert cli_main([*base, "--launcher-opt", "cpus=2"]) == 2
    assert "local process pool" in capsys.readouterr().err
    assert cli_main([*base, "--ray-address", "auto"]) == 2
    assert "--launcher ray" in capsys.readouterr().err
    assert not out.exists()


def test_a_launcher_not_installed_names_the_extra(npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # `import submitit` now fails
    with pytest.raises(ImportError, match=r"pip install longtail\[launchers\]"):
        check_launcher("submitit")
    base = ["bench", "table1", "--dataset", npz, "--out", str(tmp_path / "o")]
    assert cli_main([*base, "--launcher", "submitit"]) == 2
    assert "longtail[launchers]" in capsys.readouterr().err


def test_options_an_engine_does_not_know_are_refused(npz, tmp_path):
    pytest.importorskip("submitit")
    pytest.importorskip("ray")
    jobs = grid(npz, ("erm",))
    fail = []
    with pytest.raises(ValueError, match=r"'slurm_partitionn'.*Did you mean 'slurm_partition'"):
        run_jobs(jobs, tmp_path, "submitit", None, {"slurm_partitionn": "x"}, print, fail.append)
    with pytest.raises(ValueError, match=r"Ray refused.*cpus_per_task"):
        run_jobs(jobs, tmp_path, "ray", None, {"cpus_per_task": 2}, print, fail.append)
    assert not fail and not list(tmp_path.glob("*.json"))


def sbatch_on_path(monkeypatch, tmp_path, present: bool, commands=("sbatch", "srun")) -> None:
    """PATH with (or without) SLURM's `commands`: this machine has no SLURM either way."""
    bin_dir = tmp_path / ("bin" if present else "empty")
    bin_dir.mkdir()
    for command in commands if present else ():
        (bin_dir / command).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / command).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_submitit_without_slurm_is_refused_unless_cluster_local(npz, tmp_path, monkeypatch, capsys):
    """submitit's AutoExecutor would fall back to running every run here, all at once."""
    pytest.importorskip("submitit")
    sbatch_on_path(monkeypatch, tmp_path, present=False)
    out = tmp_path / "o"
    base = ["bench", "table1", "--dataset", npz, "--methods", "erm", "--settings", "exp4"]
    base += ["--out", str(out), "--launcher", "submitit"]
    for extra in ([], ["--dry-run"], ["--launcher-opt", "cluster=slurm", "--dry-run"]):
        assert cli_main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no SLURM here (sbatch and srun not found)" in err, err
        assert "--launcher-opt cluster=local runs the jobs through submitit's local executor" in err
    with pytest.raises(ValueError, match="no SLURM here"):
        run_grid(grid(npz, ("erm",)), out, launcher="submitit")
    assert not out.exists()
    for cluster in ("local", "debug"):
        assert cli_main([*base, "--launcher-opt", f"cluster={cluster}", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == ["toy_exp4_erm_s0"] * 2


def test_submitit_with_sbatch_on_path_passes_the_check(tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    sbatch_on_path(monkeypatch, tmp_path, present=True)
    check_launcher("submitit", {"partition": "cpu", "time": 60, "slurm_account": "a"})


def test_submitit_with_sbatch_but_no_srun_is_refused_not_run_here(npz, tmp_path, monkeypatch):
    # submitit's own choice of executor looks for `srun`: with `sbatch` alone it picked its
    # local executor and trained every run on this machine at once, past an sbatch-only check
    pytest.importorskip("submitit")
    sbatch_on_path(monkeypatch, tmp_path, present=True, commands=("sbatch",))
    with pytest.raises(ValueError, match=r"no SLURM here \(srun not found\)"):
        run_grid(grid(npz, ("erm",)), tmp_path / "o", launcher="submitit")
    assert not (tmp_path / "o").exists()
    # and where SLURM is, the runs go to it, whatever submitit's own detection would pick
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    assert launchers._Submitit(tmp_path / "o", {}).executor.cluster == "slurm"
    local = launchers._Submitit(tmp_path / "o", {"cluster": "local"})
    assert local.executor.cluster == "local"


def test_sigterm_cancels_the_submitted_runs_as_ctrl_c_does(npz, tmp_path, monkeypatch):
    # SLURM stops a grid run as a job of its own with SIGTERM: its runs must not go on alone
    pytest.importorskip("submitit")
    cancelled, polls = [], []

    class Engine:
        def __init__(self, out, options):
            pass

        def submit(self, jobs, out):
            return [f"handle of {j.name}" for j in jobs]

        def finished(self, handles):
            polls.append(1)
            if len(polls) == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return [] if len(polls) < 3 else list(range(len(handles)))

        def result(self, handle):
            return True, (handle, 0.0)

        def waiting(self, handle):
            return False

        def cancel(self, handles):
            cancelled.extend(handles)

        def close(self):
            pass

    monkeypatch.setattr(launchers, "_Submitit", Engine)
    # without the grid's own handler a SIGTERM would be recorded here, not end the test run
    before = signal.signal(signal.SIGTERM, lambda *a: polls.append("term"))
    try:
        with pytest.raises(KeyboardInterrupt):
            jobs = grid(npz, ("erm",))
            run_jobs(jobs, tmp_path, "submitit", None, {"cluster": "local"}, print, print)
        assert cancelled == [f"handle of {jobs[0].name}"] and "term" not in polls
        assert signal.getsignal(signal.SIGTERM) is not launchers.signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM).__name__ == "<lambda>"  # ours is back
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize(
    ("option", "fragments"),
    [
        ("clustr=local", ["'clustr'", "Did you mean 'cluster'"]),
        ("slurm_partitionn=cpu", ["'slurm_partitionn'", "Did you mean 'slurm_partition'"]),
        ("mem_gbb=8", ["'mem_gbb'", "Did you mean 'mem_gb'"]),
        ("cluster=lokal", ["cluster", "slurm, local, debug", "Did you mean 'local'"]),
        ("cpus=0", ["cpus_per_task", ">= 1"]),
        ("time=0", ["timeout_min", "whole number of minutes >= 1", "0"]),
        ("time=-5", ["timeout_min", "whole number of minutes >= 1", "-5"]),
        ("time=1.5", ["timeout_min", "whole number of minutes >= 1", "1.5"]),
    ],
)
def test_launcher_options_are_checked_before_a_dry_run(npz, tmp_path, capsys, option, fragments):
    pytest.importorskip("submitit")
    argv = ["bench", "table1", "--dataset", npz, "--out", str(tmp_path / "o"), "--dry-run"]
    argv += ["--launcher", "submitit", "--launcher-opt", option]
    if not option.startswith("cluster"):
        argv += ["--launcher-opt", "cluster=local"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(f in err for f in fragments), err


def test_submitit_parameters_as_submitit_spells_them_are_taken(tmp_path):
    pytest.importorskip("submitit")
    options = {"cluster": "local", "mem_gb": 8, "slurm_account": "a", "slurm_qos": "low"}
    check_launcher("submitit", {**options, "timeout_min": 5, "cpus": 2, "folder": "x"})


def test_ray_options_are_checked_before_a_dry_run(npz, tmp_path, capsys):
    pytest.importorskip("ray")
    argv = ["bench", "table1", "--dataset", npz, "--out", str(tmp_path / "o"), "--dry-run"]
    argv += ["--launcher", "ray", "--launcher-opt", "num_cpu=2"]
    assert cli_main(argv) == 2
    assert "Ray refused the launcher options" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------- submitit
def test_submitit_writes_the_pools_records_and_skips_them_after(npz, pool, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "submitit"
    options = {"cluster": "local", "timeout_min": 10}
    summary = run_grid(grid(npz), out, launcher="submitit", launcher_options=options)
    assert summary == {"total": 2, "skipped": 0, "ran": 2, "failed": {}}
    check_same_records(records(out), pool[0])
    err = capsys.readouterr().err
    assert "all at once, through submitit" in err
    assert any(s.startswith("runs 2/2, running: —") for s in err.splitlines())
    # each run was a job of its own, with its own log
    submitted = sorted(p.name for p in (out / "work" / "submitit").iterdir())
    assert len([p for p in submitted if p.endswith("_log.out")]) == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    summary = run_grid(grid(npz), out, launcher="submitit", launcher_options=options)
    assert summary == {"total": 2, "skipped": 2, "ran": 0, "failed": {}}
    assert sorted(p.name for p in (out / "work" / "submitit").iterdir()) == submitted
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps


def test_cli_submitit_reports_a_failing_run(npz, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "cli"
    work = out / "work" / "toy_exp4_erm_s0"
    work.mkdir(parents=True)
    (work / "checkpoint.pt").write_bytes(b"not a checkpoint")  # damaged: the run fails
    args = ["bench", "table1", "--dataset", npz, "--out", str(out), "--methods", "erm"]
    args += ["--settings", "exp4", "--model", "small-cnn", "--width", "4", "--epochs", "1"]
    args += ["--threads", "1", "--no-report", "--launcher", "submitit"]
    args += ["--launcher-opt", "cluster=local", "--launcher-opt", "time=10"]
    assert cli_main(args) == 1
    captured = capsys.readouterr()
    assert "toy_exp4_erm_s0 FAILED" in captured.err and "checkpoint.pt" in captured.err
    assert "1 run failed: toy_exp4_erm_s0" in captured.out
    assert not (out / "toy_exp4_erm_s0.json").exists()


# --------------------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_writes_the_pools_records_and_skips_them_after(
    npz, pool, ray_cluster, tmp_path, capsys
):
    out = tmp_path / "ray"
    summary = run_grid(grid(npz), out, progress=False, launcher="ray")
    assert summary == {"total": 2, "skipped": 0, "ran": 2, "failed": {}}
    check_same_records(records(out), pool[0])
    assert "running:" not in capsys.readouterr().err  # progress=False (--no-progress): no line
    assert ray_cluster.is_initialized()  # a cluster the caller started is left to the caller
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    summary = run_grid(grid(npz), out, progress=False, launcher="ray")
    assert summary == {"total": 2, "skipped": 2, "ran": 0, "failed": {}}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == stamps


def test_ray_reports_a_failing_run_and_goes_on(npz, ray_cluster, tmp_path):
    jobs = grid(npz, ("erm",)) + table1_jobs(
        npz, "quick", methods=("focal",), settings=(("exp", 4.0),), **TINY
    )
    work = tmp_path / "g" / "work" / jobs[0].name
    work.mkdir(parents=True)
    (work / "checkpoint.pt").write_bytes(b"not a checkpoint")
    summary = run_grid(jobs, tmp_path / "g", progress=False, launcher="ray", workers=1)
    assert list(summary["failed"]) == [jobs[0].name]
    assert "checkpoint.pt" in summary["failed"][jobs[0].name]
    assert (tmp_path / "g" / f"{jobs[1].name}.json").exists()
