"""What a stranger found attacking the run harness with kills, races and damaged files: each
test fails on the code before its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longtail.bench.records import distinct_runs
from longtail.bench.runner import run_grid, table1_jobs
from longtail.engine import train
from longtail.engine.run import RunFolder
from test_engine import tiny, write_npz


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("faults") / "toy.npz"))


def _rec(seed, value, *, bench="table1", metric="top1_error", ident=None):
    rec = {
        "method": "erm",
        "seed": seed,
        "identity": ident or {"method": "erm", "seed": seed, "data": "f"},
        "metrics": {metric: value},
    }
    if bench is not None:
        rec["bench"] = bench
    return rec


def test_a_train_record_beside_the_bench_copy_of_its_run_counts_once():
    # `longtail train` of seed 0 beside a grid of seeds 0 and 1: two seeds, not three
    recs = [_rec(0, 26.25, bench=None), _rec(0, 26.25), _rec(1, 56.25)]
    assert sorted(r["seed"] for r in distinct_runs(recs)) == [0, 1]
    # the same for regression and multi-label runs beside their benches
    for bench, metric in (("dir", "mae"), ("multilabel", "map")):
        recs = [
            _rec(0, 3.0, bench=None, metric=metric),
            _rec(0, 3.0, bench=bench, metric=metric),
            _rec(1, 4.0, bench=bench, metric=metric),
        ]
        assert len(distinct_runs(recs)) == 2, bench
    # a run that two benches both ran is still one run in each of their tables
    assert len(distinct_runs([_rec(0, 20.0), _rec(0, 20.0, bench="mm-ablation")])) == 2


def test_bench_leaves_a_damaged_work_checkpoint_for_the_engine_to_name(npz, tmp_path, capsys):
    out = tmp_path / "grid"
    jobs = table1_jobs(npz, methods=("erm",), settings=(("exp", 4.0),), seeds=1, epochs=2)
    jobs = [type(j)(j.name, tiny(npz, epochs=2), j.extra) for j in jobs]
    (work := out / "work" / jobs[0].name).mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(jobs[0].config.to_dict()))
    (work / "checkpoint.pt").write_bytes(b"garbage" * 10)
    try:
        run_grid(jobs, str(out), workers=1, progress=False)
    except Exception as e:  # the grid reports its failed runs
        failure = str(e)
    else:
        failure = ""
    err = capsys.readouterr().err
    assert "it is damaged" in err + failure and "removed the work folder" not in err
    assert (work / "checkpoint.pt").read_bytes() == b"garbage" * 10  # not deleted


def test_a_record_set_aside_is_said_even_without_progress(npz, tmp_path, capsys):
    out = tmp_path / "grid"
    make = [
        table1_jobs(npz, methods=("erm",), settings=(("exp", 4.0),), seeds=1, epochs=e)[0]
        for e in (2, 3)
    ]
    jobs = [
        [type(j)(j.name, tiny(npz, epochs=e), j.extra)] for j, e in zip(make, (2, 3), strict=True)
    ]
    run_grid(jobs[0], str(out), workers=1, progress=False)
    capsys.readouterr()
    run_grid(jobs[1], str(out), workers=1, progress=False)  # another config under one name
    err = capsys.readouterr().err
    assert "its record is of another run" in err and "superseded" in err


def test_a_run_begun_in_the_folder_meanwhile_is_not_written_over(npz, tmp_path):
    out = tmp_path / "run"
    late = tiny(npz, lr=0.04)
    # the late process looks at the folder before it exists (no lock yet) ...
    folder = RunFolder(out, late.to_dict(), late.identity())
    folder.check_config(lambda saved: type(late).from_dict(saved).identity())
    assert folder.open({**late.identity(), "data": "its data"}) is None
    # ... meanwhile another process trains another config there to the end
    first = tiny(npz, lr=0.05)
    train(first, out, progress=False)
    written = (out / "config.json").read_text()
    # ... and the late one goes on: it is refused, and the folder is left as it was
    with pytest.raises(ValueError, match="different config"):
        folder.start()
    folder.close()
    assert (out / "config.json").read_text() == written
    assert train(first, out, progress=False)["config"]["lr"] == 0.05  # its own run, finished
    assert Path(out / "result.json").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    import os
    import stat

    from longtail.engine.io import atomic_torch_save, atomic_write_json

    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "record.json", {"a": 1})
        atomic_torch_save({"w": 1}, tmp_path / "checkpoint.pt")
    finally:
        os.umask(old)
    for name in ("record.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


@pytest.mark.parametrize("value", ['"56.25"', "null", "NaN"])
def test_a_record_whose_metric_is_not_a_number_is_named_not_dropped(tmp_path, value):
    from longtail.bench.report import write_report

    good = {"method": "erm", "dataset": "d", "profile": "exp", "ratio": 4, "epochs": 2}
    for seed, err in ((0, 20.0), (1, 22.0)):
        rec = {**good, "seed": seed, "metrics": {"top1_error": err}}
        (tmp_path / f"erm_s{seed}.json").write_text(json.dumps(rec))
    text = json.dumps({**good, "seed": 2, "metrics": {"top1_error": 0}})
    (tmp_path / "erm_s2.json").write_text(text.replace('"top1_error": 0', f'"top1_error": {value}'))
    with pytest.warns(UserWarning, match="erm_s2.json"):
        write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "2 runs from" in report and "**Not in these tables:** 1 file" in report
    assert "`erm_s2.json` (its 'top1_error' is not a finite number" in report


def test_a_report_that_cannot_be_written_says_so(tmp_path, capsys, monkeypatch):
    import longtail.bench.report as report_mod
    from longtail.cli import main

    rec = {"method": "erm", "seed": 0, "metrics": {"top1_error": 20.0}}
    (tmp_path / "r.json").write_text(json.dumps(rec))

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "report.md"))

    monkeypatch.setattr(report_mod, "atomic_write_text", read_only)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "could not: Read-only file system" in err and "--out" in err
    assert "Traceback" not in err


def test_records_say_which_longtail_made_them_and_a_rerun_tells(npz, tmp_path, capsys):
    import longtail
    from longtail.cli import main

    out = tmp_path / "run"
    argv = [
        *("train", "--dataset", npz, "--profile", "exp", "--ratio", "4", "--model", "small-cnn"),
        *("--width", "4", "--epochs", "1", "--no-progress", "--out", str(out)),
    ]
    assert main(argv) == 0
    rec = json.loads((out / "result.json").read_text())
    assert rec["environment"]["longtail"] == longtail.__version__
    capsys.readouterr()
    assert main(argv) == 0  # the same code: only "nothing was trained"
    assert "made by" not in capsys.readouterr().err
    # a record of another release: kept, and said
    rec["environment"] = {**rec["environment"], "longtail": "0.0.1", "commit": "abc"}
    (out / "result.json").write_text(json.dumps(rec))
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "made by longtail 0.0.1 (commit abc)" in err and "Delete the folder" in err


def test_a_grid_keeps_records_of_another_release_and_says_so(npz, tmp_path, capsys):
    out = tmp_path / "grid"
    (job,) = table1_jobs(npz, methods=("erm",), settings=(("exp", 4.0),), seeds=1, epochs=1)
    jobs = [type(job)(job.name, tiny(npz, epochs=1), job.extra)]
    run_grid(jobs, str(out), workers=1, progress=False)
    path = out / f"{job.name}.json"
    rec = json.loads(path.read_text())
    rec["environment"] = {k: v for k, v in rec["environment"].items() if k != "longtail"}
    path.write_text(json.dumps(rec))
    capsys.readouterr()
    run_grid(jobs, str(out), workers=1, progress=False)
    err = capsys.readouterr().err
    assert "1 finished record was made by a longtail that did not record its version" in err
    assert json.loads(path.read_text()) == rec  # kept as it was


def test_temporaries_of_killed_writes_are_cleaned_by_the_next_grid_and_report(npz, tmp_path):
    import os
    import time

    from longtail.bench.report import write_report

    out = tmp_path / "grid"
    (job,) = table1_jobs(npz, methods=("erm",), settings=(("exp", 4.0),), seeds=1, epochs=1)
    jobs = [type(job)(job.name, tiny(npz, epochs=1), job.extra)]
    out.mkdir()
    record_tmp = out / f".{job.name}.json.abc123.tmp"
    record_tmp.write_text('{"half": ')
    run_grid(jobs, str(out), workers=1, progress=False)
    assert not record_tmp.exists()
    old, young = out / ".report.md.old111.tmp", out / ".report.md.new222.tmp"
    for stray in (old, young):
        stray.write_text("# half a rep")
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    write_report(out)
    assert not old.exists() and young.exists()  # a young one may be another report's


def test_train_with_a_loss_argument_at_its_default_is_the_same_run(npz, tmp_path, capsys):
    """docs/runs.md: a loss argument given at its registered default is the run without it.
    The bench and the report said so; `train` into the run's folder refused it as another
    config."""
    from longtail.cli import main

    out = tmp_path / "run"
    argv = [
        *("train", "--dataset", npz, "--profile", "exp", "--ratio", "4", "--model", "small-cnn"),
        *("--width", "4", "--epochs", "1", "--method", "mm", "--no-progress", "--out", str(out)),
    ]
    assert main(argv) == 0
    first = json.loads((out / "result.json").read_text())
    capsys.readouterr()
    assert main([*argv, "--loss-kw", "beta=1.5"]) == 0  # MM's default beta
    assert "already holds this run" in capsys.readouterr().err
    assert json.loads((out / "result.json").read_text()) == first
    assert main([*argv, "--loss-kw", "beta=2.0"]) == 2  # another value: another run


class _ZipWriterLike:
    """What torch.save's zip writer does when a Ctrl-C lands inside a record: its __exit__
    raises a RuntimeError ("unexpected pos ...") while the interrupt unwinds."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 440960 vs 440848")


def test_a_ctrl_c_inside_a_checkpoint_write_stays_an_interrupt(tmp_path):
    """The CLI turns a KeyboardInterrupt into 'interrupted; the same command resumes' and exit
    130: the RuntimeError torch raises while unwinding must not hide it (a stranger saw a
    traceback and exit 1), and the write leaves neither the target nor a temporary file."""
    from longtail.engine.io import atomic_write, temporaries

    def write(f):
        with _ZipWriterLike():
            f.write(b"half a record")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "checkpoint.pt", write)
    assert not (tmp_path / "checkpoint.pt").exists() and temporaries(tmp_path) == []

    def fails(f):  # a RuntimeError of its own stays what it is
        with _ZipWriterLike():
            f.write(b"x")

    with pytest.raises(RuntimeError, match="unexpected pos"):
        atomic_write(tmp_path / "checkpoint.pt", fails)
