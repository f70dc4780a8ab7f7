"""Benchmark grids on tiny data: one atomic record per run, resumable, and the report."""

from __future__ import annotations

import json
import warnings

import pytest

from longtail.bench.runner import ablation_jobs, run_grid, table1_jobs
from longtail.cli import main as cli_main
from test_engine import write_npz

TINY = dict(model="small-cnn", width=4, batch_size=16, padding=1, threads=1, epochs=2)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("bench") / "toy.npz"))


def test_table1_grid_names_and_order():
    jobs = table1_jobs("fashion-mnist", "quick", seeds=2)
    assert len(jobs) == 13 * 4 * 2
    assert jobs[0].name == "fashion-mnist_exp100_erm_s0"
    assert [j.config.profile + str(int(j.config.ratio)) for j in jobs[::13][:4]] == [
        "exp100",
        "step100",
        "exp10",
        "step10",
    ]
    assert all(j.extra == {"bench": "table1"} for j in jobs)
    assert jobs[-1].config.seed == 1
    abl = ablation_jobs("x.npz", "quick", betas=(1.0, 2.0), deltas=(0.5,))
    assert [j.name for j in abl] == ["x_exp100_mm-drw_b1_d0.5_s0", "x_exp100_mm-drw_b2_d0.5_s0"]
    assert abl[1].config.to_dict()["loss_kwargs"] == {"beta": 2.0, "delta_minus": 0.5}


def test_grid_writes_records_skips_finished_and_redoes_damaged(npz, tmp_path):
    jobs = table1_jobs(npz, "quick", methods=("erm", "ldam-drw"), settings=(("exp", 4.0),), **TINY)
    out = tmp_path / "grid"
    summary = run_grid(jobs, out, progress=False)
    assert summary == {"total": 2, "skipped": 0, "ran": 2, "failed": {}}
    records = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(records) == {"toy_exp4_erm_s0", "toy_exp4_ldam-drw_s0"}
    for rec in records.values():
        assert (
            rec["bench"] == "table1" and rec["ratio"] == 4.0 and "per_class_error" in rec["metrics"]
        )
    # rerun: nothing trains again
    assert run_grid(jobs, out, progress=False)["ran"] == 0
    # a half-written record (a kill between open and rename cannot make one, an editor can)
    damaged = out / "toy_exp4_erm_s0.json"
    damaged.write_text(damaged.read_text()[:40])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_grid(jobs, out, progress=False)
    assert summary["ran"] == 1 and not summary["failed"]
    assert any("damaged" in str(w.message) for w in caught)
    assert (out / "toy_exp4_erm_s0.json.damaged").exists()  # kept, not deleted
    assert json.loads(damaged.read_text())["metrics"] == records["toy_exp4_erm_s0"]["metrics"]


def test_grid_reports_a_failing_run_and_goes_on(npz, tmp_path):
    jobs = table1_jobs(npz, "quick", methods=("erm",), settings=(("exp", 4.0),), **TINY)
    jobs += table1_jobs(npz, "quick", methods=("focal",), settings=(("exp", 4.0),), **TINY)
    work = tmp_path / "g" / "work" / jobs[0].name
    work.mkdir(parents=True)
    (work / "checkpoint.pt").write_bytes(b"not a checkpoint")  # damaged: the run fails
    summary = run_grid(jobs, tmp_path / "g", progress=False)
    assert list(summary["failed"]) == [jobs[0].name]
    assert "checkpoint.pt" in summary["failed"][jobs[0].name]
    assert (tmp_path / "g" / f"{jobs[1].name}.json").exists()


def test_grid_replaces_a_work_folder_of_another_config(npz, tmp_path):
    jobs = table1_jobs(npz, "quick", methods=("erm",), settings=(("exp", 4.0),), **TINY)
    work = tmp_path / "g" / "work" / jobs[0].name
    work.mkdir(parents=True)
    (work / "config.json").write_text('{"method": "mm"}')  # left by a run of another config
    summary = run_grid(jobs, tmp_path / "g", progress=False)
    assert summary["ran"] == 1 and not summary["failed"]


def test_cli_bench_and_report(npz, tmp_path, capsys):
    out = tmp_path / "t1"
    common = ["--dataset", npz, "--model", "small-cnn", "--width", "4", "--epochs", "2"]
    common += ["--threads", "1", "--out", str(out), "--no-progress"]
    args = ["bench", "table1", *common, "--methods", "erm,mm-drw", "--settings", "exp4,step4"]
    assert cli_main([*args, "--dry-run"]) == 0
    names = ["toy_exp4_erm_s0", "toy_exp4_mm-drw_s0", "toy_step4_erm_s0", "toy_step4_mm-drw_s0"]
    said = capsys.readouterr()
    assert said.out.split() == names  # stdout: the names alone, one a line (for scripts)
    assert "4 runs: 0 already finished, 4 to run (0 of them would replace" in said.err
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "Table 1" in text and "MM-DRW" in text
    assert cli_main(args) == 0  # a rerun reuses every run and says so, even with --no-progress
    assert "4 runs: 4 already finished, 0 to run" in capsys.readouterr().err
    # the dry run says what a rerun would do: nothing, or retrain what changed (touching nothing)
    assert cli_main([*args, "--dry-run"]) == 0
    said = capsys.readouterr()
    assert said.out.split() == names and all(f"{n}: finished" in said.err for n in names)
    assert "4 runs: 4 already finished, 0 to run" in said.err
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    changed = [*args, "--epochs", "3", "--dry-run"]  # the last --epochs counts
    assert cli_main(changed) == 0
    said = capsys.readouterr()
    replacing = [line for line in said.err.splitlines() if "replacing a record" in line]
    assert len(replacing) == 4 and all("epochs: 2 there, 3 here" in x for x in replacing), said.err
    assert "4 of them would replace records" in said.err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == before
    assert not (out / "work" / "superseded").exists()
    assert (out / "report.md").exists()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [
        "per_class_error_toy_exp4.png",
        "per_class_error_toy_step4.png",
        "per_class_heatmap_toy_exp4.png",
        "per_class_heatmap_toy_step4.png",
        "training_curves_toy_exp4.png",
        "training_curves_toy_step4.png",
    ]
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    abl = tmp_path / "abl"
    args = ["bench", "mm-ablation", *common[:-3], "--no-progress", "--out", str(abl)]
    args += ["--settings", "exp4", "--betas", "1.0,1.5", "--deltas", "0.6"]
    assert cli_main(args) == 0
    assert len(list(abl.glob("*.json"))) == 2
    assert list(abl.glob("mm_ablation_*.png"))
    assert cli_main(["report", str(abl), "--out", str(tmp_path / "rep")]) == 0
    assert (
        "δ⁻" in (tmp_path / "rep" / "report.md").read_text()
        or "delta" in (tmp_path / "rep" / "report.md").read_text().lower()
    )


def test_cli_bench_bad_input(npz, tmp_path, capsys):
    base = ["bench", "table1", "--dataset", npz, "--out", str(tmp_path / "o")]
    assert cli_main([*base, "--methods", "erm,ldam-drs"]) == 2
    assert "ldam-drs" in capsys.readouterr().err
    assert cli_main([*base, "--settings", "linear100"]) == 2
    assert cli_main(["bench", "table1", "--dataset", str(tmp_path / "no.npz"), "--out", "x"]) == 2
    assert cli_main(["report", str(tmp_path / "empty")]) == 2


def test_a_loss_argument_at_its_default_reuses_the_finished_run(npz, tmp_path):
    """--loss-kw beta=1.5 is MM's default: the finished run was moved aside and trained again."""

    def mm_drw(**kw):
        return table1_jobs(npz, "quick", methods=("mm-drw",), settings=(("exp", 4.0),), **kw)

    assert run_grid(mm_drw(**TINY), tmp_path / "g", progress=False)["ran"] == 1
    spelled = mm_drw(loss_kwargs={"beta": 1.5}, **TINY)
    assert spelled[0].config.loss_kwargs == {"beta": 1.5}
    assert run_grid(spelled, tmp_path / "g", progress=False)["ran"] == 0
    other = mm_drw(loss_kwargs={"beta": 1.2}, **TINY)
    assert run_grid(other, tmp_path / "g", progress=False)["ran"] == 1  # another value: a run


def test_a_grid_runs_the_seeds_it_is_given():
    """``seeds`` is a count (0..N-1) or the seeds themselves, in every grid builder."""
    from longtail.bench.runner import dir_jobs, multilabel_jobs

    def seeds(jobs):
        return sorted({j.config.seed for j in jobs})

    assert seeds(table1_jobs("x.npz", "quick", seeds=range(2, 4), methods=("erm",))) == [2, 3]
    assert [
        j.name for j in ablation_jobs("x.npz", "quick", seeds=[5], betas=(1.0,), deltas=(0.5,))
    ] == ["x_exp100_mm-drw_b1_d0.5_s5"]
    assert seeds(dir_jobs("diamonds", "quick", seeds=[1, 3], methods=("vanilla",))) == [1, 3]
    assert seeds(multilabel_jobs("m.npz", "cpu", seeds=[7], methods=("bce",))) == [7]
    for bad, message in [
        (0, "positive count"),
        (True, "a count or integers"),
        ([], "at least one"),
        ([1, -1], "at least one integer in 0"),
        ([1.0], "at least one integer in 0"),
        ([2, 2], "without repeats"),
    ]:
        with pytest.raises((TypeError, ValueError), match=message):
            table1_jobs("x.npz", "quick", seeds=bad)


def test_cli_first_seed_runs_a_chosen_seed(npz, tmp_path, capsys):
    base = ["bench", "table1", "--dataset", npz, "--methods", "erm", "--settings", "exp4"]
    base += ["--out", str(tmp_path / "t"), "--dry-run"]
    assert cli_main([*base, "--seeds", "1", "--first-seed", "2"]) == 0
    assert capsys.readouterr().out.split() == ["toy_exp4_erm_s2"]
    assert cli_main([*base, "--seeds", "2", "--first-seed", "1"]) == 0
    assert capsys.readouterr().out.split() == ["toy_exp4_erm_s1", "toy_exp4_erm_s2"]
    assert cli_main([*base, "--first-seed", "-1"]) == 2
    assert "`--first-seed` to be a non-negative integer" in capsys.readouterr().err


def test_a_grid_split_by_seed_gives_the_records_of_the_whole_grid(npz, tmp_path):
    """Two machines each run some seeds (--first-seed) into their own folder; the records copied
    into one folder are those of the grid run whole, and the report sees every seed."""
    import shutil

    from longtail.bench.report import write_report

    grid = dict(methods=("erm",), settings=(("exp", 4.0),), **TINY)
    run_grid(table1_jobs(npz, "quick", seeds=2, **grid), tmp_path / "whole", progress=False)
    run_grid(table1_jobs(npz, "quick", seeds=[0], **grid), tmp_path / "a", progress=False)
    run_grid(table1_jobs(npz, "quick", seeds=range(1, 2), **grid), tmp_path / "b", progress=False)
    merged = tmp_path / "merged"
    merged.mkdir()
    for part in ("a", "b"):
        for record in (tmp_path / part).glob("*.json"):
            shutil.copy(record, merged)
    whole = {
        p.name: json.loads(p.read_text())["metrics"] for p in (tmp_path / "whole").glob("*.json")
    }
    parts = {p.name: json.loads(p.read_text())["metrics"] for p in merged.glob("*.json")}
    assert sorted(parts) == ["toy_exp4_erm_s0.json", "toy_exp4_erm_s1.json"]
    assert parts == whole
    write_report(merged, out=tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| ERM |"))
    assert text.startswith("# Results report\n\n2 runs") and " ± " in row and "(1)" not in row
