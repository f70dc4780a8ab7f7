"""A grid run through submitit or Ray writes the records the local pool writes, skips what is
finished, and says what runs on a live progress line (longtail/bench/launchers.py)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

from longtail.bench.launchers import ProgressLine, check_launcher, format_progress, run_jobs
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
    # median(60, 100, 80) = 80 s; 5 runs left, 2 at a time: 80 * 5 / 2 = 200 s
    line = format_progress(5, 10, ["c"], 3725.0, [60.0, 100.0, 80.0], 2)
    assert line == "runs 5/10, running: c, elapsed 1:02:05, ETA 3:20"
    # 1 failed: 4 left, never more than 4 at once though 8 could run: 80 * 4 / 4 = 80 s
    line = format_progress(5, 10, ["c"], 0.0, [60.0, 100.0, 80.0], 8, failed=1, queued=3)
    assert line == "runs 5/10 (1 failed), running: c, queued: 3, elapsed 0:00, ETA 1:20"
    assert format_progress(4, 4, [], 59.6, [10.0], 2) == (
        "runs 4/4, running: —, elapsed 0:59, ETA 0:00"
    )


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_line_off_a_terminal_writes_a_line_per_change():
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine(3, done=1, parallelism=2, stream=stream, tty=False, clock=clock)
    line.update(["a", "b"])
    line.update(["a", "b"])  # nothing changed
    clock.t += 30
    line.update(["a", "b"])  # only the clock changed: no new line in a log
    line.finished("a", 20.0)
    line.say("[2/3] a finished in 0.3 min")
    clock.t += 5
    line.update(["b"])
    line.close()
    assert stream.getvalue().splitlines() == [
        "runs 1/3, running: a, b, elapsed 0:00, ETA —",
        # 1 left (b), at most 1 at once: 20 s
        "runs 2/3, running: b, elapsed 0:30, ETA 0:20",
        "[2/3] a finished in 0.3 min",
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
    third = "runs 1/2, running: beta, elapsed 0:01, ETA 0:04"
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
    with pytest.raises(ValueError, match=r"submitit refused.*slurm_partitionn"):
        run_jobs(jobs, tmp_path, "submitit", None, {"slurm_partitionn": "x"}, print, fail.append)
    with pytest.raises(ValueError, match=r"Ray refused.*cpus_per_task"):
        run_jobs(jobs, tmp_path, "ray", None, {"cpus_per_task": 2}, print, fail.append)
    assert not fail and not list(tmp_path.glob("*.json"))


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
    assert "1 runs failed: toy_exp4_erm_s0" in captured.out
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
