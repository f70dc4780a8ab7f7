"""``--log tensorboard,csv``: the CSV and the TensorBoard scalars hold what ``log.jsonl`` holds,
one row (one step) per epoch after a kill and a resume, and logging changes no run's identity.

Each run is a tiny one on the toy image set of ``test_engine.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from longtail.cli import main as cli_main
from longtail.engine import RunInterrupted, TrainConfig, train
from longtail.engine.loggers import EpochLoggers, log_kinds, summary_writer_class
from test_engine import write_npz

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("data") / "toy.npz", per_class=12))


def tiny(npz: str, **kw) -> TrainConfig:
    """3 epochs of LDAM-DRW, DRW from epoch 1, evaluated after epochs 2 and 3 (0-based 1, 2):
    epoch 0's row has no test metrics, so the CSV header widens during the run."""
    base = dict(
        dataset=npz,
        profile="exp",
        ratio=4,
        method="ldam-drw",
        model="small-cnn",
        width=4,
        batch_size=16,
        epochs=3,
        lr=0.05,
        warmup_epochs=0,
        drw_epoch=1,
        lr_steps=((2, 0.1),),
        padding=1,
        eval_every=2,
        eval_batch_size=10,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path / "log.csv", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def flat(row: dict, prefix: str = "") -> dict:
    """The test's own flattening of a log row: ``{"test": {"ece": 1}}`` -> ``{"test.ece": 1}``."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def assert_csv_equals_jsonl(path: Path) -> list[str]:
    header, csv_rows = read_csv(path)
    rows = [flat(r) for r in jsonl(path)]
    assert [int(r["epoch"]) for r in csv_rows] == [r["epoch"] for r in rows]
    assert set(header) == {k for r in rows for k in r}
    for got, want in zip(csv_rows, rows, strict=True):
        for key in header:
            value = want.get(key)
            if value is None:
                assert got[key] == "", key
            elif isinstance(value, bool):
                assert got[key] == str(value), key
            else:
                assert float(got[key]) == value, key  # the same digits, not just close
    return header


def scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(path / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_tensorboard_equals_jsonl(path: Path) -> None:
    tb = scalars(path)
    rows = jsonl(path)
    epochs = [r["epoch"] for r in rows]
    for tag in ("loss", "lr", "reweighted", "seconds"):
        assert [s for s, _ in tb[tag]] == epochs, tag
        for (_, got), row in zip(tb[tag], rows, strict=True):
            assert got == pytest.approx(float(row[tag]), rel=1e-6), tag  # float32 in the file
    evaluated = [r for r in rows if "test" in r]
    assert len(evaluated) == 2
    for metric in ("top1_error", "balanced_accuracy", "many_acc", "medium_acc", "few_acc"):
        want = [(r["epoch"], r["test"][metric]) for r in evaluated]
        want = [(e, v) for e, v in want if v is not None]  # an empty shot region: no scalar
        got = tb.get(f"test/{metric}", [])
        assert [s for s, _ in got] == [e for e, _ in want], metric
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6), metric


# ------------------------------------------------------------------------------ the loggers
def test_cli_run_logs_csv_and_tensorboard_equal_to_jsonl(npz, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", npz, "--ratio", "4", "--method", "ldam-drw", "--epochs", "3"]
    args += ["--model", "small-cnn", "--width", "4", "--threads", "1", "--eval-every", "2"]
    args += ["--log", "tensorboard,csv", "--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    assert len(jsonl(out)) == 3
    header = assert_csv_equals_jsonl(out)
    assert header[:3] == ["epoch", "lr", "loss"] and "test.top1_error" in header
    assert_tensorboard_equals_jsonl(out)
    # the DRW flag: the rescaled 3-epoch schedule defers re-weighting to epoch 1
    assert [v for _, v in scalars(out)["reweighted"]] == [0.0, 1.0, 1.0]
    saved = json.loads((out / "config.json").read_text())
    assert saved["log"] == ["tensorboard", "csv"]


def test_killed_and_resumed_run_has_one_row_per_epoch(npz, tmp_path):
    whole = tmp_path / "whole"
    train(tiny(npz, log=("csv",)), whole, progress=False)

    def kill_after_epoch_1(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise RunInterrupted("simulated kill")

    out = tmp_path / "killed"
    config = tiny(npz, log=("tensorboard", "csv"))
    with pytest.raises(RunInterrupted):
        train(config, out, progress=False, callback=kill_after_epoch_1)
    assert [int(r["epoch"]) for r in read_csv(out)[1]] == [0, 1]
    # a kill between the loggers and the checkpoint: rows of an epoch the checkpoint lacks
    with open(out / "log.csv", "a") as f:
        f.write("1" + ",999" * (len(read_csv(out)[0]) - 1) + "\n")
    stray = summary_writer_class()(log_dir=str(out / "tb"))
    stray.add_scalar("loss", 999.0, global_step=1)
    stray.add_scalar("loss", 999.0, global_step=2)
    stray.close()

    calls = []
    train(config, out, progress=False, callback=lambda e, r: calls.append(e))
    assert calls == [2]  # resumed, not restarted
    header = assert_csv_equals_jsonl(out)
    assert header == read_csv(whole)[0]  # the header of a run never killed
    assert_tensorboard_equals_jsonl(out)
    assert 999.0 not in [v for _, v in scalars(out)["loss"]]


def test_logging_is_not_part_of_the_identity(npz, tmp_path):
    plain, logged = tiny(npz), tiny(npz, log="csv,tensorboard")
    assert plain.identity() == logged.identity()
    assert "log" not in plain.identity()
    out = tmp_path / "run"
    record = train(plain, out, progress=False)
    assert not (out / "log.csv").exists() and not (out / "tb").exists()
    calls = []
    again = train(logged, out, progress=False, callback=lambda e, r: calls.append(e))
    assert calls == [] and again["identity"] == record["identity"]  # the finished run's record


def test_a_finished_run_opened_with_log_gets_its_logs_from_its_rows(npz, tmp_path, capsys):
    """docs/runs.md: logging is bookkeeping. A run finished without --log and run again with it
    returns its record without training, and its log.csv / tb/ are written from its rows."""
    out = tmp_path / "run"
    args = ["train", "--dataset", npz, "--ratio", "4", "--method", "ldam-drw", "--epochs", "3"]
    args += ["--model", "small-cnn", "--width", "4", "--threads", "1", "--eval-every", "2"]
    args += ["--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    assert not (out / "log.csv").exists() and not (out / "tb").exists()
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    assert cli_main([*args, "--log", "csv,tensorboard"]) == 0
    assert (out / "checkpoint.pt").stat().st_mtime_ns == stamp  # not trained again
    assert len(jsonl(out)) == 3
    header = assert_csv_equals_jsonl(out)
    assert header[:3] == ["epoch", "lr", "loss"] and "test.top1_error" in header
    assert_tensorboard_equals_jsonl(out)
    capsys.readouterr()

    # up to date: left as it is
    csv_stamp = (out / "log.csv").stat().st_mtime_ns
    events = sorted(p.name for p in (out / "tb").iterdir())
    assert cli_main([*args, "--log", "csv,tensorboard"]) == 0
    assert (out / "log.csv").stat().st_mtime_ns == csv_stamp
    assert sorted(p.name for p in (out / "tb").iterdir()) == events

    # stale: a CSV cut short and a stray event file are rebuilt from the rows
    lines = (out / "log.csv").read_text().splitlines(keepends=True)
    (out / "log.csv").write_text("".join(lines[:2]))
    stray = summary_writer_class()(log_dir=str(out / "tb"))
    stray.add_scalar("loss", 999.0, global_step=1)
    stray.close()
    assert cli_main([*args, "--log", "csv,tensorboard"]) == 0
    assert_csv_equals_jsonl(out)
    assert_tensorboard_equals_jsonl(out)
    assert 999.0 not in [v for _, v in scalars(out)["loss"]]

    # the log gone too: the checkpoint's rows
    (out / "log.csv").unlink()
    rows = jsonl(out)
    (out / "log.jsonl").unlink()
    assert cli_main([*args, "--log", "csv"]) == 0
    (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert_csv_equals_jsonl(out)
    assert (out / "checkpoint.pt").stat().st_mtime_ns == stamp


def test_a_run_resumed_with_log_rebuilds_the_csv_from_the_checkpoint(npz, tmp_path):
    def kill(epoch: int, row: dict) -> None:
        raise RunInterrupted("simulated kill")

    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        train(tiny(npz), out, progress=False, callback=kill)  # no --log: one epoch, no CSV
    train(tiny(npz, log=["csv"]), out, progress=False)  # same run: resumed, now with a CSV
    assert [int(r["epoch"]) for r in read_csv(out)[1]] == [0, 1, 2]
    assert_csv_equals_jsonl(out)


# ------------------------------------------------------------------------------- bad input
def test_unknown_logger_is_refused_clearly(npz, tmp_path, capsys):
    args = ["train", "--dataset", npz, "--log", "tensorboard,foo", "--out", str(tmp_path / "o")]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "'foo'" in err and "tensorboard, csv" in err and "jsonl is always written" in err
    assert not (tmp_path / "o").exists()
    assert cli_main([*args[:3], "--log", "tensorbord", *args[5:]]) == 2
    assert "Did you mean 'tensorboard'?" in capsys.readouterr().err
    with pytest.raises(ValueError, match="log"):
        TrainConfig(dataset=npz, log=3)
    assert log_kinds(" csv ,jsonl") == ("csv",)


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(ImportError, match=r"longtail\[tensorboard\]"):
        EpochLoggers(["tensorboard"], tmp_path)
    assert not (tmp_path / "tb").exists()


def test_bench_takes_log_into_every_run(npz, tmp_path, capsys):
    from longtail.bench.runner import table1_jobs

    jobs = table1_jobs(npz, "smoke", 1, ("erm",), (("exp", 4.0),), log=("csv",))
    assert jobs[0].config.log == ("csv",)
    args = ["bench", "table1", "--dataset", npz, "--methods", "erm", "--settings", "exp4"]
    assert cli_main([*args, "--log", "csv", "--out", str(tmp_path / "b"), "--dry-run"]) == 0
    config = tmp_path / "c.toml"
    config.write_text('log = ["csv", "tensorboard"]\n')
    argv = [*args, "--config", str(config), "--out", str(tmp_path / "b"), "--dry-run"]
    assert cli_main(argv) == 0


def test_csv_values_are_exact(tmp_path):
    """Floats keep every digit (what json.dumps writes), NaN/None are empty cells."""
    rows = [
        {"epoch": 0, "loss": 0.1 + 0.2, "reweighted": False},
        {"epoch": 1, "loss": math.pi, "reweighted": True, "test": {"few_acc": None, "e": 1e-300}},
    ]
    with EpochLoggers("csv", tmp_path) as loggers:
        for r in rows:
            loggers.log(r)
    header, got = read_csv(tmp_path)
    assert header == ["epoch", "loss", "reweighted", "test.few_acc", "test.e"]
    assert [float(r["loss"]) for r in got] == [0.1 + 0.2, math.pi]
    assert got[0]["test.e"] == "" and got[1]["test.few_acc"] == "" and got[1]["test.e"] == "1e-300"


def test_multilabel_engine_logs_through_the_same_harness(tmp_path):
    from longtail.engine.multilabel import train_multilabel
    from test_multilabel_engine import tiny as tiny_multilabel
    from test_multilabel_engine import write_npz as write_multilabel_npz

    data = str(write_multilabel_npz(tmp_path / "ml.npz"))
    out = tmp_path / "run"
    config = tiny_multilabel(data, log=("tensorboard", "csv"), eval_every=1)
    train_multilabel(config, out, progress=False)
    assert_csv_equals_jsonl(out)
    tb, rows = scalars(out), jsonl(out)
    assert [s for s, _ in tb["val_map"]] == [r["epoch"] for r in rows] == [0, 1]
    assert [v for _, v in tb["val_map"]] == pytest.approx([r["val_map"] for r in rows], rel=1e-6)
    # finished, its logs removed, opened again: rebuilt from its rows, not trained again
    (out / "log.csv").unlink()
    for event in (out / "tb").iterdir():
        event.unlink()
    calls = []
    train_multilabel(config, out, progress=False, callback=lambda e, r: calls.append(e))
    assert calls == []
    assert_csv_equals_jsonl(out)
    assert [s for s, _ in scalars(out)["val_map"]] == [0, 1]


def test_cli_missing_extra_is_one_line(npz, monkeypatch, tmp_path, capsys):
    """A missing optional package is a user's error: one line naming the extra, exit 2."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    argv = ["train", "--dataset", npz, "--preset", "smoke", "--epochs", "1", "--ratio", "4"]
    argv += ["--log"]
    assert cli_main([*argv, "tensorboard", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "longtail[tensorboard]" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything is written or said


def test_a_grid_rerun_with_log_writes_the_logs_of_its_finished_runs(npz, tmp_path, capsys):
    """bench skips a finished run before the engine sees it; with --log its logs are still
    written from the work folder's rows (no training), as train does."""
    out = tmp_path / "b"
    args = ["bench", "table1", "--dataset", npz, "--methods", "erm", "--settings", "exp4"]
    args += ["--preset", "smoke", "--epochs", "2", "--model", "small-cnn", "--width", "4"]
    args += ["--threads", "1", "--out", str(out), "--no-progress", "--no-report"]
    assert cli_main(args) == 0
    (run,) = [p for p in (out / "work").iterdir() if p.is_dir()]
    assert not (run / "log.csv").exists()
    stamp = (run / "checkpoint.pt").stat().st_mtime_ns
    assert cli_main([*args, "--log", "csv"]) == 0
    assert (run / "checkpoint.pt").stat().st_mtime_ns == stamp  # not trained again
    assert_csv_equals_jsonl(run)
    # a record whose work folder is elsewhere: said, nothing written
    shutil.rmtree(run)
    capsys.readouterr()
    said = [a for a in args if a != "--no-progress"]  # what a grid says goes with its progress
    assert cli_main([*said, "--log", "csv"]) == 0
    assert "its work folder is not here" in capsys.readouterr().err
