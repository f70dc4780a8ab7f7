"""Tests for longtail.bench.report: reading results records, tables, plots and the report."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

from longtail.bench.report import (
    ablation_markdown,
    aggregate,
    dir_markdown,
    load_records,
    plot_ablation,
    plot_per_class_error,
    table1_markdown,
    tail_markdown,
    write_report,
)
from longtail.bench.tables import _column

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# top-1 error per (method, setting) for seeds 0 and 1
ERRORS = {
    ("mm-drw", "exp"): (20.0, 22.0),
    ("erm", "exp"): (30.0, 31.0),
    ("ldam-drw", "exp"): (21.5, 21.5),
    ("my-method", "exp"): (25.0, 27.0),
    ("erm", "step"): (36.0, 38.0),
    ("mm-drw", "step"): (23.0, 24.0),
    ("balanced-softmax", "step"): (22.5, 22.5),
}
NUM_CLASSES = 10


def classification_record(method, profile, seed, error, bench="table1"):
    per_class = [error * (0.2 + 0.2 * c) for c in range(NUM_CLASSES)]
    per_class[3] = None  # a class absent from the test set
    return {
        "method": method,
        "dataset": "fashion-mnist",
        "profile": profile,
        "ratio": 100.0 if seed == 0 else 100,  # one ratio however it is written
        "seed": seed,
        "epochs": 30,
        "seconds": 12.5,
        "bench": bench,
        "config": {"method": method, "loss_kwargs": {}},
        "metrics": {
            "top1_error": error,
            "balanced_accuracy": 100.0 - error - 1.0,
            "per_class_error": per_class,
            "many_acc": 95.0 - seed,
            "medium_acc": 80.0,
            "few_acc": None if profile == "step" else 50.0 + error,
            "ece": 5.0 + seed,
        },
    }


def ablation_record(beta, delta, seed, error):
    rec = classification_record("mm-drw", "exp", seed, error, bench="mm-ablation")
    rec["config"]["loss_kwargs"] = {"beta": beta, "delta_minus": delta, "scale": 30.0}
    return rec


ABLATION = {  # (β, δ⁻): errors of seeds 0 and 1; (1.6, 1.2) is not run
    (1.4, 0.6): (22.0, 23.0),
    (1.5, 0.6): (19.0, 20.0),
    (1.6, 0.6): (24.0, 24.0),
    (1.4, 1.2): (21.0, 22.0),
    (1.5, 1.2): (20.5, 21.5),
}


def dir_record(method, seed, mae):
    return {
        "method": method,
        "dataset": "agedb",
        "profile": None,
        "ratio": None,
        "seed": seed,
        "epochs": 90,
        "seconds": 3.0,
        "bench": "dir",
        "config": {},
        "metrics": {
            "mae": mae,
            "mse": mae**2,
            "gm": mae / 2,
            "pearson": 0.9,
            "mae_many": mae - 1,
            "mae_medium": mae + 1,
            "mae_few": mae + 5,
            "gm_many": mae / 2 - 1,
            "gm_medium": mae / 2 + 1,
            "gm_few": mae / 2 + 3,
        },
    }


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for (method, profile), errors in ERRORS.items():
        for seed, error in enumerate(errors):
            run = tmp_path / "table1" / f"{method}_{profile}_s{seed}"
            write_json(run / "result.json", classification_record(method, profile, seed, error))
            write_json(run / "config.json", {"method": method, "seed": seed})  # not a record
            # run state and partial files are never records, even when they look like one
            write_json(run / "work" / "last.json", classification_record(method, profile, 9, 99))
            write_json(
                run / "checkpoints" / "epoch.json", classification_record(method, profile, 9, 99)
            )
            (run / "result.json.tmp").write_text('{"method": "x", "metrics": {}}')
    for (beta, delta), errors in ABLATION.items():
        for seed, error in enumerate(errors):
            write_json(
                tmp_path / "ablation" / f"b{beta}_d{delta}_s{seed}.json",
                ablation_record(beta, delta, seed, error),
            )
    for method, maes in {"vanilla": (7.5, 8.0), "group-dir": (6.5, 7.0)}.items():
        for seed, mae in enumerate(maes):
            write_json(tmp_path / "dir" / f"{method}_s{seed}.json", dir_record(method, seed, mae))
    (tmp_path / "table1" / "killed.json").write_text('{"method": "erm", "metrics": {"top1_')
    return tmp_path


@pytest.fixture
def records(results: Path) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_records(results)


def table_rows(markdown: str) -> dict[str, list[str]]:
    """``{first cell: other cells}`` of the markdown table rows (header and body)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|:"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


# ---- load_records -----------------------------------------------------------------------------
def test_load_records_skips_junk_with_a_warning(results):
    with pytest.warns(UserWarning, match=r"killed\.json") as caught:
        recs = load_records(results)
    assert len(caught) == 1
    n_table1 = sum(len(e) for e in ERRORS.values())
    assert len(recs) == n_table1 + 2 * len(ABLATION) + 4
    assert all("metrics" in r and "method" in r for r in recs)
    assert not any(r["seed"] == 9 for r in recs)  # nothing from work/ or checkpoints/


def test_load_records_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder"):
        load_records(tmp_path / "nope")


def test_load_records_warns_on_bad_metrics(tmp_path):
    write_json(tmp_path / "r.json", {"method": "erm", "metrics": [1, 2]})
    with pytest.warns(UserWarning, match=r"r\.json"):
        assert load_records(tmp_path) == []


def test_load_records_warns_on_a_record_that_lost_its_metrics_or_disagrees_with_its_config(
    tmp_path,
):
    """A record without "metrics" went unseen (a config.json is skipped silently, rightly); a
    record whose method is not its config's was shown under two names (header and table)."""
    config = {"method": "vanilla", "dataset": "d"}
    good = {"method": "vanilla", "seed": 0, "seconds": 1.0, "config": config}
    write_json(tmp_path / "lost.json", {**good, "identity": {"method": "vanilla"}})
    write_json(tmp_path / "edited.json", {**good, "method": "martian", "metrics": {"mae": 1.0}})
    write_json(tmp_path / "config.json", config)  # a run folder's config: no warning
    write_json(tmp_path / "ok.json", {**good, "metrics": {"mae": 2.0}})
    with pytest.warns(UserWarning) as caught:
        recs = load_records(tmp_path)
    said = sorted(str(w.message) for w in caught)
    assert len(said) == 2
    assert "edited.json: its method 'martian' is not its config's 'vanilla'" in said[0]
    assert "lost.json: a results record without 'metrics'" in said[1]
    assert [r["metrics"]["mae"] for r in recs] == [2.0]


# ---- aggregate --------------------------------------------------------------------------------
def test_aggregate_by_hand(records):
    agg = aggregate([r for r in records if r["bench"] == "table1"])
    assert agg[("mm-drw", "fashion-mnist", "exp", 100)] == {
        "mean": 21.0,
        "std": pytest.approx(math.sqrt(2.0)),  # sqrt(((20-21)^2 + (22-21)^2) / (2-1))
        "n": 2,
    }
    assert agg[("erm", "fashion-mnist", "step", 100)]["mean"] == 37.0
    assert agg[("ldam-drw", "fashion-mnist", "exp", 100)]["std"] == 0.0
    assert len(agg) == len(ERRORS)
    # settings in order (exp before step), Table 1 method order, unknown methods last
    assert [k[0] for k in agg][:4] == ["erm", "ldam-drw", "mm-drw", "my-method"]


def test_aggregate_one_seed_and_missing_values():
    recs = [
        {"method": "erm", "dataset": "d", "profile": "exp", "ratio": 10, "seed": s, "metrics": m}
        for s, m in enumerate([{"ece": 3.0}, {"ece": None}, {}])
    ]
    assert aggregate(recs, "ece") == {("erm", "d", "exp", 10): {"mean": 3.0, "std": 0.0, "n": 1}}


# ---- markdown ---------------------------------------------------------------------------------
def test_table1_rows_in_canonical_order_with_bold_best(records):
    text = table1_markdown(records, tail_view=False)
    lines = text.splitlines()
    assert "Top-1 error (%)" in lines[0] and "last epoch" in lines[0] and "2 seeds" in lines[0]
    assert "30 epochs" in lines[0]
    rows = table_rows(text)
    assert rows["Method"] == ["Fashion-MNIST long-tailed 100", "Fashion-MNIST step 100"]
    body = [line.split("|")[1].strip() for line in lines if line.startswith("| ")][1:]
    assert body == ["ERM", "LDAM-DRW", "MM-DRW", "Balanced softmax", "my-method"]
    assert rows["ERM"] == ["30.50 ± 0.71", "37.00 ± 1.41"]
    assert rows["MM-DRW"] == ["**21.00 ± 1.41**", "23.50 ± 0.71"]
    assert rows["LDAM-DRW"] == ["21.50 ± 0.00", "—"]
    assert rows["Balanced softmax"] == ["—", "**22.50 ± 0.00**"]
    assert rows["my-method"] == ["26.00 ± 1.41", "—"]
    # the ablation runs (mm-drw, one of them at 19 %) stay out of Table 1, as do DIR runs
    assert "19." not in text and "agedb" not in text


def test_a_column_with_one_number_has_nothing_to_be_best_against():
    one = {"mean": 3.0, "std": 0.5, "n": 2}
    assert _column([one, None], higher=True) == ["3.00 ± 0.50", "—"]
    assert _column([one], higher=False) == ["3.00 ± 0.50"]
    two = [one, {"mean": 4.0, "std": 0.5, "n": 2}]
    assert _column(two, higher=True) == ["3.00 ± 0.50", "**4.00 ± 0.50**"]


def test_table1_one_seed_shows_the_mean_alone(records):
    seed0 = [r for r in records if r["seed"] == 0]
    text = table1_markdown(seed0, tail_view=False)
    assert table_rows(text)["ERM"] == ["30.00", "36.00"]
    assert "1 seed" in text.splitlines()[0]


def test_table1_bolds_ties_and_highest_accuracy():
    recs = [
        {"method": m, "dataset": "d", "profile": "exp", "ratio": 10, "metrics": {"few_acc": v}}
        for m, v in [("erm", 50.0), ("mm", 60.0), ("ldam", 60.001)]
    ]
    rows = table_rows(table1_markdown(recs, "few_acc", tail_view=False))
    assert (
        rows["ERM"] == ["50.00"] and rows["LDAM"] == ["**60.00**"] and rows["MM"] == ["**60.00**"]
    )


def test_tail_view(records):
    text = tail_markdown(records)
    assert text == table1_markdown(records).split("\n\n", 2)[2]
    assert "Tail view, Fashion-MNIST long-tailed 100" in text
    exp, step = text.split("**Tail view, ")[1:]
    rows = table_rows(exp)
    assert rows["Method"] == ["Balanced acc.", "Many", "Medium", "Few", "ECE"]
    # balanced = 99 - error; many = 95 - seed; few = 50 + error; ece = 5 + seed
    # ties are all bold: every method has the same many, medium and ECE values
    assert rows["ERM"] == ["68.50 ± 0.71", "**94.50 ± 0.71**", "**80.00 ± 0.00**",
                           "**80.50 ± 0.71**", "**5.50 ± 0.71**"]  # fmt: skip
    assert rows["MM-DRW"][0] == "**78.00 ± 1.41**"
    assert rows["ERM"][3] == "**80.50 ± 0.71**"
    assert table_rows(step)["ERM"][3] == "—"  # no few-shot class there: null in every record


def test_ablation_grid(records):
    text = ablation_markdown(records)
    # the fixture passes scale=30 explicitly: not the registry's MM-DRW, so the label says so
    assert "MM-DRW (scale=30), Fashion-MNIST long-tailed 100" in text and "2 seeds" in text
    assert "mean ± sample std over 2 seeds" in text
    rows = table_rows(text)
    assert rows["β \\ δ⁻"] == ["0.6", "1.2"]
    assert rows["1.4"] == ["22.50 ± 0.71", "21.50 ± 0.71"]
    assert rows["1.5"] == ["**19.50 ± 0.71**", "21.00 ± 0.71"]
    assert rows["1.6"] == ["24.00 ± 0.00", "—"]
    assert ablation_markdown([r for r in records if r["bench"] != "mm-ablation"]) == ""
    # a cell short of seeds (a grid still running) says how many, as Table 1 does
    partial = [
        r for r in records
        if not (r["bench"] == "mm-ablation" and r["seed"] == 1
                and r["config"]["loss_kwargs"]["beta"] == 1.4
                and r["config"]["loss_kwargs"]["delta_minus"] == 0.6)
    ]  # fmt: skip
    text = ablation_markdown(partial)
    assert "1–2 seeds; a cell of fewer seeds says how many, as (n)" in text
    assert table_rows(text)["1.4"] == ["22.00 (1)", "21.50 ± 0.71"]
    assert table_rows(text)["1.5"] == ["**19.50 ± 0.71**", "21.00 ± 0.71"]
    # a grid where one cell alone has the most seeds: that cell has no peer to be lowest among,
    # though the one-seed cells beside it are lower (no bold at all)
    lone = [r for r in records if r["bench"] == "mm-ablation" and (r["seed"] == 0 or (
        r["config"]["loss_kwargs"]["beta"] == 1.6))]  # fmt: skip
    text = ablation_markdown(lone)
    assert "**" not in text.split("\n\n", 1)[1] and "24.00 ± 0.00" in text and "(1)" in text


def test_ablation_record_without_beta_warns(records):
    bad = dict(records[-1], bench="mm-ablation", config={"loss_kwargs": {}})
    with pytest.warns(UserWarning, match="delta_minus"):
        ablation_markdown([bad])


def test_dir_table(records):
    text = dir_markdown(records)
    rows = table_rows(text)
    assert rows["Method"] == [
        "MAE all", "MAE many", "MAE medium", "MAE few", "GM all", "GM many", "GM medium", "GM few",
    ]  # fmt: skip
    assert list(rows)[1:] == ["Vanilla (MSE)", "Group-DIR"]  # the DIR benchmark's order
    assert rows["Group-DIR"][0] == "**6.75 ± 0.35**"
    assert rows["Vanilla (MSE)"][0] == "7.75 ± 0.35"
    assert rows["Vanilla (MSE)"][3] == "12.75 ± 0.35"
    assert rows["Group-DIR"][4] == "**3.38 ± 0.18**"
    assert dir_markdown([r for r in records if r["bench"] != "dir"]) == ""
    assert "agedb" not in table1_markdown(records)


# ---- plots ------------------------------------------------------------------------------------
def test_plot_per_class_error(records, tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_per_class_error(records, tmp_path / "pc.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    step = plot_per_class_error(records, tmp_path / "pc_step.png", "fashion-mnist_step100")
    assert step.read_bytes()[:8] == PNG_SIGNATURE
    same = plot_per_class_error(records, tmp_path / "t.png", ("fashion-mnist", "step", 100.0))
    assert same.stat().st_size > 0
    with pytest.raises(ValueError, match="setting"):
        plot_per_class_error(records, tmp_path / "x.png", "cifar10_exp100")
    assert not (tmp_path / "x.png").exists()


def test_plot_per_class_error_with_record_counts_and_without(records, tmp_path):
    pytest.importorskip("matplotlib")
    recs = [dict(r, dataset="mine") for r in records if r["bench"] == "table1"]
    plot_per_class_error(recs, tmp_path / "no_counts.png")  # no counts known: index order
    counts = list(range(10, 110, 10))
    recs = [dict(r, train_counts=counts) for r in recs]
    assert plot_per_class_error(recs, tmp_path / "counts.png").read_bytes()[:8] == PNG_SIGNATURE


def test_plot_ablation(records, tmp_path):
    pytest.importorskip("matplotlib")
    path = plot_ablation(records, tmp_path / "abl.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="mm-ablation"):
        plot_ablation([r for r in records if r["bench"] != "mm-ablation"], tmp_path / "y.png")


# ---- write_report -----------------------------------------------------------------------------
def test_write_report(results, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    with pytest.warns(UserWarning, match=r"killed\.json"):
        paths = write_report(results, out)
    names = sorted(p.name for p in paths)
    assert names == [
        "claims.json",  # MM-DRW, LDAM-DRW and ERM ran the same seeds
        "mm_ablation_fashion-mnist_exp100.png",
        "per_class_error_fashion-mnist_exp100.png",
        "per_class_error_fashion-mnist_step100.png",
        "per_class_heatmap_fashion-mnist_exp100.png",
        "per_class_heatmap_fashion-mnist_step100.png",
        "report.md",
    ]
    assert paths[-1] == out / "report.md"
    for p in paths:
        assert p.parent == out and p.exists()
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary files left
    text = (out / "report.md").read_text(encoding="utf-8")
    for name in names[1:-1]:
        assert f"]({name})" in text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert table1_markdown(load_records(results)) in text
    assert "## MM ablation" in text and "## Deep imbalanced regression" in text
    assert "| MM-DRW | 21.00 ± 1.41 |" not in text  # bold there: the best of its column
    assert "| MM-DRW | **21.00 ± 1.41** | 23.50 ± 0.71 |" in text
    # the record that could not be read is named in the report, not only in a warning
    assert "**Not in these tables:** 1 file that looked like a record could not be read:" in text
    assert "killed.json` (not a readable JSON file" in text
    (results / "table1" / "killed.json").unlink()
    write_report(results, out)
    assert "Not in these tables" not in (out / "report.md").read_text(encoding="utf-8")


def test_write_report_defaults_to_the_folder_and_rewrites(results):
    pytest.importorskip("matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = write_report(results / "table1")
        second = write_report(results / "table1")
    assert first == second and all(p.parent == results / "table1" for p in first)
    text = (results / "table1" / "report.md").read_text(encoding="utf-8")
    assert "MM ablation" not in text and "regression" not in text


def test_write_report_without_records(tmp_path):
    write_json(tmp_path / "config.json", {"method": "erm"})
    with pytest.raises(ValueError, match="results records"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


def test_write_report_without_matplotlib_writes_the_tables(results, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = write_report(results, tmp_path / "out")
    assert [p.name for p in paths] == ["claims.json", "report.md"]
    assert any("matplotlib" in str(w.message) for w in caught)
    text = paths[-1].read_text(encoding="utf-8")
    assert "Table 1." in text and ".png" not in text


def test_training_curves_are_drawn_from_the_records_curves(tmp_path):
    pytest.importorskip("matplotlib")
    from longtail.bench.plots import curve_settings, plot_training_curves

    def rec(method, seed, drw):
        curve = [
            {
                "epoch": e,
                "lr": 0.1 if e < 6 else 0.001,
                "loss": 2.0 / (e + 1),
                "reweighted": drw and e >= 6,
                "test_top1_error": 50.0 - e,
            }
            for e in range(8)
        ]
        return {
            "method": method,
            "dataset": "d",
            "profile": "exp",
            "ratio": 10.0,
            "seed": seed,
            "epochs": 8,
            "config": {"epochs": 8},
            "metrics": {"top1_error": 42.0},
            "curve": curve,
        }

    recs = [rec("erm", 0, False), rec("erm", 1, False), rec("erm-drw", 0, True)]
    assert curve_settings(recs) == [("d", "exp", 10)]
    assert curve_settings([{**recs[0], "curve": []}]) == []
    path = plot_training_curves(recs, tmp_path / "c.png")
    assert path.stat().st_size > 0
    for r in recs:
        (tmp_path / f"{r['method']}_{r['seed']}.json").write_text(json.dumps(r))
    paths = write_report(tmp_path)
    assert any(p.name.startswith("training_curves_") for p in paths)
    assert "## Training curves" in paths[-1].read_text()


def test_validation_runs_are_kept_out_of_table1_its_plots_and_the_claims(tmp_path):
    """`train --val-per-class` scores the validation split only: its numbers are no test
    result (they were put in Table 1 and the claims, with nothing saying so)."""
    from longtail.bench.claims import claims_markdown
    from longtail.bench.plots import error_axis, per_class_settings
    from longtail.bench.tables import validation_markdown

    def val(method, seed, error):
        rec = classification_record(method, "exp", seed, error)
        rec["config"] = {**rec["config"], "val_per_class": 2}
        curve = [
            {"epoch": e, "lr": 0.1, "loss": 1.0 / (e + 1), "val_top1_error": 90.0 - e}
            for e in range(3)
        ]
        return {**rec, "eval_split": "validation", "bench": None, "curve": curve}

    test = [
        classification_record(m, "exp", s, e)
        for m in ("erm", "ldam-drw")
        for s, e in enumerate((30.0 + s for s in range(3)) if m == "erm" else (20.0, 21.0, 23.0))
    ]
    valid = [val(m, s, 77.0 + s) for m in ("erm", "ldam-drw") for s in range(3)]
    table = table1_markdown(test + valid)
    assert "77.00" not in table and "78.00" not in table and "30" in table
    assert claims_markdown(test + valid) == claims_markdown(test)
    assert per_class_settings(valid) == []
    text = validation_markdown(test + valid)
    assert "not test results" in text and "Validation top-1 error (%)" in text
    assert "| ERM | **78.00 ± 1.00** |" in text
    assert validation_markdown(test) == ""
    assert error_axis(test) == ("test top-1 error (%)", False)
    assert error_axis(valid) == ("validation top-1 error (%)", False)
    assert error_axis(test + valid)[1] is True
    # a folder of validation runs alone: no Table 1, the validation section
    for i, r in enumerate(valid):
        write_json(tmp_path / f"v{i}.json", r)
    paths = write_report(tmp_path)
    report = paths[-1].read_text()
    assert "## Runs scored on validation" in report and "## Table 1" not in report
    assert "## Claims" not in report and "## Training curves" not in report
    assert [p.name for p in paths if p.suffix == ".png"] == [
        "validation_curves_fashion-mnist_exp100.png"
    ]
