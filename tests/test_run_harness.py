"""The run harness under faults: kills inside and between every write, replaced data, changed
configs in a grid, diverging losses, dead workers and a dead grid process."""

from __future__ import annotations

import ast
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

import longtail.engine.run as run_mod
from longtail.bench.runner import run_grid, table1_jobs
from longtail.engine import TrainingDiverged, train
from longtail.engine.run import fingerprint
from test_engine import tiny, write_npz

TINY = dict(model="small-cnn", width=4, batch_size=16, padding=1, threads=1, epochs=2)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("harness") / "toy.npz"))


def _log_epochs(folder: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (folder / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- fault injection
class Killed(BaseException):
    """A simulated kill: BaseException, so no `except Exception` in the engine swallows it."""


class WriteKiller:
    """Counts every write the harness makes and 'kills' the process at write number ``at``.

    ``inside=True`` kills in the middle of the write (half the bytes of a log line written, a
    half-written temporary file left behind without its rename), ``inside=False`` right after
    the write completed.
    """

    def __init__(self, at: int, inside: bool) -> None:
        self.at, self.inside, self.count = at, inside, 0
        self.real_save, self.real_json = run_mod.atomic_torch_save, run_mod.atomic_write_json
        self.real_text = run_mod.atomic_write_text

    def _tick(self, path: Path, partial: bytes) -> bool:
        """True when this write is the one that dies before completing."""
        self.count += 1
        if self.count != self.at:
            return False
        if self.inside:
            tmp = Path(path).parent / f".{Path(path).name}.killed.tmp"
            tmp.write_bytes(partial)
            raise Killed(f"killed inside write {self.at} ({Path(path).name})")
        return False

    def _after(self) -> None:
        if self.count == self.at and not self.inside:
            raise Killed(f"killed after write {self.at}")

    def save(self, obj, path):
        self._tick(path, b"PK\x03\x04garbage")
        self.real_save(obj, path)
        self._after()

    def write_json(self, path, obj):
        self._tick(path, b'{"method": ')
        self.real_json(path, obj)
        self._after()

    def write_text(self, path, text):
        self._tick(path, text.encode()[: len(text) // 2])
        self.real_text(path, text)
        self._after()

    def open(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "a" not in mode:
            return f
        killer = self

        class Appender:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, text):
                killer.count += 1
                if killer.count == killer.at and killer.inside:
                    f.write(text[: len(text) // 2])  # a torn line
                    f.flush()
                    raise Killed("killed inside the log append")
                f.write(text)
                if killer.count == killer.at:
                    f.flush()
                    raise Killed("killed after the log append")

            def flush(self):
                f.flush()

            def fileno(self):
                return f.fileno()

        return Appender()


def _install(monkeypatch, killer: WriteKiller) -> None:
    monkeypatch.setattr(run_mod, "atomic_torch_save", killer.save)
    monkeypatch.setattr(run_mod, "atomic_write_json", killer.write_json)
    monkeypatch.setattr(run_mod, "atomic_write_text", killer.write_text)
    monkeypatch.setattr(run_mod, "open", killer.open, raising=False)


def test_a_kill_inside_or_after_every_write_resumes_to_the_same_run(npz, tmp_path, monkeypatch):
    config = tiny(npz, method="ldam-drw", epochs=3)
    whole = train(config, tmp_path / "whole", progress=False)
    # count the writes of one uninterrupted run
    counter = WriteKiller(at=-1, inside=False)
    with monkeypatch.context() as m:
        _install(m, counter)
        train(config, tmp_path / "count", progress=False)
    writes = counter.count
    assert writes >= 2 + 2 * config.epochs  # config, log rewrite, (log, checkpoint) per epoch
    for at in range(1, writes + 1):
        for inside in (True, False):
            out = tmp_path / f"k{at}{'i' if inside else 'a'}"
            with monkeypatch.context() as m:
                _install(m, WriteKiller(at, inside))
                try:
                    train(config, out, progress=False)
                except Killed:
                    pass
            resumed = train(config, out, progress=False)
            assert resumed["metrics"] == whole["metrics"], (at, inside)
            assert _log_epochs(out) == list(range(config.epochs)), (at, inside)
            assert not list(out.glob(".*.tmp")), (at, inside)  # a cut write's temporary file
            assert json.loads((out / "result.json").read_text())["identity"] == whole["identity"]


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from longtail.engine import TrainConfig, train
    cfg = TrainConfig.from_dict(__import__("json").loads(sys.argv[1]))
    train(cfg, sys.argv[2], progress=False)
    """
)


def test_sigkill_at_random_moments_resumes_to_the_uninterrupted_run(npz, tmp_path):
    config = tiny(npz, method="mm-drw", epochs=12, drw_epoch=8, eval_every=0, batch_size=4)
    whole = train(config, tmp_path / "whole", progress=False)
    out = tmp_path / "killed"
    rng = random.Random(0)
    cmd = [sys.executable, "-c", _KILL_SCRIPT, json.dumps(config.to_dict()), str(out)]
    # each start is killed once the log reaches a random epoch, a random moment later: progress
    # is read from the log, not from the clock, so a loaded machine kills at the same places
    targets = sorted(rng.sample(range(1, config.epochs - 1), 4))
    for target in targets:
        proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            log = out / "log.jsonl"
            if log.exists() and len(log.read_text().splitlines()) >= target:
                time.sleep(rng.uniform(0.0, 0.02))
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "result.json").exists()
    resumed = train(config, out, progress=False)
    assert resumed["metrics"] == whole["metrics"]
    assert _log_epochs(out) == list(range(config.epochs))


# ------------------------------------------------------------------------------ data identity
def test_resume_on_replaced_data_is_refused(tmp_path):
    data = write_npz(tmp_path / "d.npz", seed=0)
    config = tiny(str(data), epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "r", progress=False, callback=_interrupt_at(0))
    write_npz(tmp_path / "d.npz", seed=1)  # same path, same shapes, other pixels
    with pytest.raises(ValueError, match="other data"):
        train(config, tmp_path / "r", progress=False)
    # a finished run is not returned for other data either
    write_npz(tmp_path / "e.npz", seed=0)
    cfg_e = tiny(str(tmp_path / "e.npz"), epochs=1)
    train(cfg_e, tmp_path / "done", progress=False)
    write_npz(tmp_path / "e.npz", seed=2)
    with pytest.raises(ValueError, match="other data"):
        train(cfg_e, tmp_path / "done", progress=False)


def test_a_refusal_of_other_data_says_what_changed(tmp_path):
    """Beside the two fingerprints, the refusal says what the record's sizes tell: an image
    added, or the same sizes with other content (a stranger saw only two 64-character hashes)."""
    path = write_npz(tmp_path / "d.npz", per_class=24, seed=0)
    config = tiny(str(path), epochs=1)
    first = train(config, tmp_path / "r", progress=False)
    write_npz(tmp_path / "d.npz", per_class=30, seed=0)
    with pytest.raises(ValueError, match="other data") as err:
        train(config, tmp_path / "r", progress=False)
    assert f"training set {first['data']['train_size']} examples there, " in str(err.value)
    write_npz(tmp_path / "d.npz", per_class=24, seed=1)  # same sizes, other pixels
    with pytest.raises(ValueError, match="the same numbers of examples: other images"):
        train(config, tmp_path / "r", progress=False)


def test_resume_from_another_data_dir_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_npz(a / "toy.npz", seed=0)
    write_npz(b / "toy.npz", seed=3)
    config = tiny("toy.npz", data_dir=str(a), epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "r", progress=False, callback=_interrupt_at(0))
    other = tiny("toy.npz", data_dir=str(b), epochs=3)
    with pytest.raises(ValueError, match="other data"):
        train(other, tmp_path / "r", progress=False)


def _interrupt_at(epoch: int):
    def cb(e, row):
        if e == epoch:
            raise KeyboardInterrupt

    return cb


def test_records_carry_identity_and_data_fingerprint(npz):
    rec = train(tiny(npz, epochs=1), progress=False)
    assert rec["identity"]["data"] == rec["data"]["fingerprint"]
    assert rec["identity"]["epochs"] == 1 and "threads" not in rec["identity"]
    assert len(rec["data"]["fingerprint"]) == 64
    x = torch.arange(12, dtype=torch.uint8).reshape(3, 4)
    assert fingerprint(x) == fingerprint(x.clone())
    assert fingerprint(x) != fingerprint(x.reshape(4, 3))
    y = x.clone()
    y[2, 3] += 1
    assert fingerprint(x) != fingerprint(y)


# ------------------------------------------------------------------------------- divergence
def test_a_nan_loss_stops_the_run_at_that_epoch(npz, tmp_path):
    config = tiny(npz, epochs=5, lr=1e30, warmup_epochs=0, lr_steps=())
    rows = []
    with pytest.raises(TrainingDiverged, match=r"epoch \d+.*--lr"):
        train(config, tmp_path / "nan", progress=False, callback=lambda e, r: rows.append(e))
    assert len(rows) < config.epochs  # it stopped; it did not train to the end
    assert not (tmp_path / "nan" / "result.json").exists()


# ------------------------------------------------------------------------------------ grids
def test_a_changed_config_retrains_and_is_never_reused(npz, tmp_path, capsys):
    kw = dict(methods=("erm", "ldam-drw"), settings=(("exp", 4.0),))
    out = tmp_path / "grid"
    first = table1_jobs(npz, "quick", **kw, **{**TINY, "epochs": 2})
    assert run_grid(first, out, progress=False)["ran"] == 2
    old = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    again = table1_jobs(npz, "quick", **kw, **{**TINY, "epochs": 3})
    summary = run_grid(again, out)
    assert summary["ran"] == 2 and summary["skipped"] == 0 and not summary["failed"]
    assert "replace records of another config" in capsys.readouterr().err
    for p in out.glob("*.json"):
        rec = json.loads(p.read_text())
        assert rec["epochs"] == 3 and rec["config"]["epochs"] == 3
        assert rec["metrics"] != old[p.stem]["metrics"]
    superseded = sorted((out / "work" / "superseded").glob("*.json"))
    assert len(superseded) == 2  # the old records are kept aside, not reported, not deleted
    # the same grid once more: nothing to do
    assert run_grid(again, out, progress=False)["ran"] == 0


def test_a_record_without_data_fingerprint_is_not_trusted(npz, tmp_path):
    out = tmp_path / "grid"
    jobs = table1_jobs(npz, "quick", methods=("erm",), settings=(("exp", 4.0),), **TINY)
    run_grid(jobs, out, progress=False)
    path = out / f"{jobs[0].name}.json"
    rec = json.loads(path.read_text())
    del rec["identity"]  # as written by longtail before runs were identified with their data
    path.write_text(json.dumps(rec))
    assert run_grid(jobs, out, progress=False)["ran"] == 1


_GRID_SCRIPT = textwrap.dedent(
    """
    import sys
    from longtail.bench.runner import run_grid, table1_jobs
    jobs = table1_jobs(sys.argv[1], "quick", methods=("erm", "focal", "cb-rw"),
                       settings=(("exp", 4.0),), model="small-cnn", width=4, batch_size=4,
                       padding=1, threads=1, epochs=int(sys.argv[3]), eval_every=0)
    summary = run_grid(jobs, sys.argv[2], workers=2, progress=False)
    print(sorted(summary["failed"]))
    """
)


def _marked(mark: str, workers_only: bool = False) -> list[int]:
    """PIDs of live processes whose environment carries ``mark`` (only the grid's spawned
    workers with ``workers_only``; multiprocessing also starts a resource tracker)."""
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if workers_only and b"spawn_main" not in (p / "cmdline").read_bytes():
                continue
            if mark.encode() in (p / "environ").read_bytes():
                stat = (p / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(p.name))
        except OSError:
            continue
    return pids


def _start_grid(npz: str, out: Path, epochs: int) -> tuple[subprocess.Popen, str]:
    mark = f"LONGTAIL_TEST_{uuid.uuid4().hex}"
    env = {**os.environ, mark: "1"}
    cmd = [sys.executable, "-c", _GRID_SCRIPT, npz, str(out), str(epochs)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while len(_marked(mark, workers_only=True)) < 2:  # both workers have started
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    return proc, mark


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_workers_exit_when_the_grid_process_dies(npz, tmp_path):
    proc, mark = _start_grid(npz, tmp_path / "g", epochs=200)
    proc.kill()
    proc.wait()
    deadline = time.time() + 30
    while _marked(mark):
        assert time.time() < deadline, f"workers outlived the grid: {_marked(mark)}"
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_dead_worker_fails_only_its_own_run(npz, tmp_path):
    out = tmp_path / "g"
    proc, mark = _start_grid(npz, out, epochs=12)
    os.kill(
        min(_marked(mark, workers_only=True)), signal.SIGKILL
    )  # one worker dies (say, out of memory)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()
    failed = ast.literal_eval(stdout.decode().strip().splitlines()[-1])  # what the script printed
    assert len(failed) == 1, stderr.decode()
    assert "worker process died (signal 9)" in stderr.decode()
    assert len(list(out.glob("*.json"))) == 2  # the other two runs finished


def test_fingerprint_is_sha256_of_dtype_shape_and_bytes():
    import hashlib

    a = np.arange(1000, dtype=np.int64)
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(a.tobytes())
    assert fingerprint(a) == h.hexdigest()


# ------------------------------------------------------------------------------------ locks
_HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from longtail.engine.run import FolderLock
    with FolderLock(Path(sys.argv[1]), sys.argv[2]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def _hold(folder: Path, what: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(folder), what], stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def test_a_run_folder_in_use_by_another_process_is_refused(npz, tmp_path):
    # two trainings in one folder interleaved checkpoints and logs of different runs
    out = tmp_path / "r"
    out.mkdir()
    holder = _hold(out, "run")
    try:
        with pytest.raises(ValueError, match="another run is running there"):
            train(tiny(npz, epochs=1), out, progress=False)
    finally:
        holder.kill()
        holder.wait()
    train(tiny(npz, epochs=1), out, progress=False)  # the lock went with the process
    train(tiny(npz, epochs=1), out, progress=False)  # and a finished run releases it


def test_a_grid_folder_in_use_by_another_grid_is_refused(npz, tmp_path):
    # a second grid superseded the first one's records and removed its live work folders
    out = tmp_path / "g"
    holder = _hold(out, "bench grid")
    jobs = table1_jobs(npz, "quick", methods=("erm",), settings=(("exp", 4.0),), **TINY)
    try:
        with pytest.raises(ValueError, match="another bench grid is running there"):
            run_grid(jobs, out, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not list(out.glob("*.json"))
    assert run_grid(jobs, out, progress=False)["ran"] == 1


def test_the_divergence_message_says_whether_a_checkpoint_exists():
    from longtail.engine.run import check_finite

    with pytest.raises(TrainingDiverged, match="no epoch finished, so it has no checkpoint"):
        check_finite(float("nan"), 0, 3, "erm")
    with pytest.raises(
        TrainingDiverged,
        match=r"the last finished epoch is 4 \(a run with a folder, --out, has its checkpoint",
    ):
        check_finite(float("inf"), 5, 0, "erm")
    check_finite(1.0, 0, 0, "erm")  # a finite loss passes


@pytest.mark.parametrize(
    "content, cause",
    [
        (b"garbage" * 10, "UnpicklingError: Unsupported operand"),
        (b"PK\x03\x04garbage", "RuntimeError: PytorchStreamReader failed reading zip archive"),
        (b"", "EOFError"),
    ],
)
def test_a_damaged_checkpoint_is_named_as_damaged(tmp_path, content, cause):
    """torch.load's advice on weights_only reads as a torch-version problem; the message says
    the file is damaged and gives torch's cause alone."""
    from longtail.engine.run import RunFolder

    (tmp_path / "checkpoint.pt").write_bytes(content)
    folder = RunFolder(tmp_path, {}, {})
    with pytest.raises(ValueError, match="it is damaged") as err:
        folder.load_checkpoint()
    message = str(err.value)
    assert cause in message and "weights_only" not in message and "Delete that file" in message
    folder.close()


def test_a_resume_on_another_thread_count_is_said_and_recorded(npz, tmp_path, capsys):
    """Threads are not part of a run's identity (a run on another machine is the same run), but
    they change how sums round: a run resumed on another count warns and records both."""
    import dataclasses

    from longtail.engine import RunInterrupted

    before = torch.get_num_threads()
    config = tiny(npz, epochs=3, threads=1)
    out = tmp_path / "run"

    def stop(epoch, row):
        raise RunInterrupted("stop")

    try:
        with pytest.raises(RunInterrupted):
            train(config, out, progress=False, callback=stop)
        capsys.readouterr()
        rec = train(dataclasses.replace(config, threads=2), out, progress=False)
        err = capsys.readouterr().err
        assert "WARNING: epochs 0-0 ran on 1 thread and the rest runs on 2" in err
        assert rec["environment"]["threads"] == 2
        assert rec["environment"]["threads_by_epoch"] == [
            {"epochs": "0-0", "threads": 1},
            {"epochs": "1-2", "threads": 2},
        ]
        saved = json.loads((out / "result.json").read_text())
        assert saved["environment"]["threads_by_epoch"] == rec["environment"]["threads_by_epoch"]
        # resumed on the same count: nothing said, nothing added
        again = tmp_path / "again"
        with pytest.raises(RunInterrupted):
            train(config, again, progress=False, callback=stop)
        rec = train(config, again, progress=False)
        assert "WARNING" not in capsys.readouterr().err
        assert "threads_by_epoch" not in rec["environment"]
    finally:
        torch.set_num_threads(before)
