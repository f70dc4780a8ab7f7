"""The multi-label cpu preset's selection: validation-only runs, their verdicts, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from longtail.bench.records import multilabel_records
from longtail.bench.runner import MULTILABEL_CANDIDATES, multilabel_selection_jobs
from longtail.bench.selection import (
    MULTILABEL_TIME_LIMIT_S,
    multilabel_selection_markdown,
    select_multilabel_preset,
)
from longtail.engine.multilabel import loop as ml_loop
from longtail.engine.multilabel import prepare_multilabel_data, train_multilabel
from test_multilabel_engine import tiny, write_npz


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_npz(tmp_path_factory.mktemp("mlsel") / "toy.npz"))


# ------------------------------------------------------------------ runs on validation only
def test_validation_run_never_scores_the_test_split(npz, monkeypatch):
    data = prepare_multilabel_data(tiny(npz))
    seen = []
    real = ml_loop.scores

    def spy(model, x, d, cfg):
        seen.append("test" if x is d.x_test else "val" if x is d.x_val else "other")
        return real(model, x, d, cfg)

    monkeypatch.setattr(ml_loop, "scores", spy)
    rec = train_multilabel(tiny(npz, eval_split="validation", eval_every=1), progress=False)
    assert seen and set(seen) == {"val"}
    assert rec["eval_split"] == "validation"
    m = rec["metrics"]
    # the record's metrics are the validation split's: mAP there is val_map itself
    assert m["map"] == pytest.approx(m["val_map"])
    assert "thresholds" not in m and "tuned_micro_f1" not in m
    assert len(m["per_label_ap"]) == len(data.label_names)
    seen.clear()
    test_rec = train_multilabel(tiny(npz), progress=False)
    assert "test" in seen and test_rec["eval_split"] == "test"
    assert "thresholds" in test_rec["metrics"]


def test_eval_split_is_checked_and_part_of_the_identity(npz):
    with pytest.raises(ValueError, match="eval_split"):
        tiny(npz, eval_split="train")
    assert tiny(npz).identity() != tiny(npz, eval_split="validation").identity()


def test_validation_runs_stay_out_of_the_test_table():
    val = {"task": "multilabel", "eval_split": "validation", "method": "bce"}
    test = {"task": "multilabel", "eval_split": "test", "method": "bce"}
    old = {"task": "multilabel", "method": "bce"}  # a record from before the field
    assert multilabel_records([val, test, old]) == [test, old]


# ------------------------------------------------------------------------------ the grid
def test_selection_jobs_are_validation_runs_named_by_what_they_are():
    jobs = multilabel_selection_jobs(("cnn5-w16-e20", "cnn5-w16-e40"), seeds=2)
    names = [j.name for j in jobs]
    # e20 at twice its length is e40 at its own: trained once
    assert len(names) == len(set(names)) == 3 * 2 * 3
    assert "cnn5-w16-e80_db_s1" in names and names.count("cnn5-w16-e40_bce_s0") == 1
    for j in jobs:
        assert j.config.eval_split == "validation"
        assert j.extra == {"bench": "multilabel-preset-selection"}
        assert f"e{j.config.epochs}_" in j.name and j.config.model == "cnn5"
        # the schedule is the preset's shape at the run's length
        assert j.config.milestones() == (
            round(2 * j.config.epochs / 3),
            round(8 * j.config.epochs / 9),
        )
    with pytest.raises(ValueError, match="candidate"):
        multilabel_selection_jobs(("cnn5-w16-e30",))
    assert next(iter(MULTILABEL_CANDIDATES)) == "cnn5-w16-e20"
    # cost order: an epoch's cost grows with the square of the width (convolutions)
    costs = [c["epochs"] * c["width"] ** 2 for c in MULTILABEL_CANDIDATES.values()]
    assert costs == sorted(costs)


def test_a_candidate_is_its_learning_rate_too():
    jobs = multilabel_selection_jobs(("cnn5-w32-e20-lr0.003",), seeds=1)
    assert {j.name for j in jobs} == {
        f"cnn5-w32-e{e}-lr0.003_{m}_s0" for e in (20, 40) for m in ("bce", "asl", "db")
    }
    assert {(j.config.width, j.config.lr) for j in jobs} == {(32, 0.003)}
    # the first candidates' runs keep names without a learning rate
    (first,) = multilabel_selection_jobs(("cnn5-w16-e20",), seeds=1, methods=("bce",), lengths=(1,))
    assert first.name == "cnn5-w16-e20_bce_s0" and first.config.lr == 0.001
    # a run at another learning rate is not the candidate's
    recs = [rec(10, "bce", s, 50.0 + s) for s in (0, 1)] + [rec(20, "bce", s, 50.0) for s in (0, 1)]
    for r in recs:
        r["config"]["lr"] = 0.01
    spec = {"m10": {**SPEC["m10"], "lr": 0.001}}
    assert select_multilabel_preset(recs, spec)["candidates"] == []
    assert select_multilabel_preset(recs, {"m10": {**SPEC["m10"], "lr": 0.01}})["candidates"]


# -------------------------------------------------------------------------- the verdicts
def rec(epochs, method, seed, val_map, *, seconds=300.0, split="validation", bench=None):
    return {
        "task": "multilabel",
        "method": method,
        "dataset": "d",
        "seed": seed,
        "epochs": epochs,
        "seconds": seconds,
        "bench": bench or "multilabel-preset-selection",
        "eval_split": split,
        "config": {
            "model": "m",
            "width": 1,
            "epochs": epochs,
            "method": method,
            "seed": seed,
            "eval_split": split,
        },
        "data": {"fingerprint": "f"},
        "metrics": {"val_map": val_map, "map": -1.0},
    }


SPEC = {
    "m10": {"model": "m", "width": 1, "epochs": 10},
    "m20": {"model": "m", "width": 1, "epochs": 20},
}


def test_converged_by_hand():
    # bce: 1x 40, 42 (sd 1.414), 2x 41, 43: difference +1, SE = sqrt(2/2 + 2/2) = 1.414
    # asl: 1x 30, 30.2, 2x 35, 35.2: +5 against 2 SE = 0.4 -> not converged
    recs = [
        rec(10, "bce", 0, 40.0),
        rec(10, "bce", 1, 42.0),
        rec(20, "bce", 0, 41.0),
        rec(20, "bce", 1, 43.0),
    ]
    r = select_multilabel_preset(recs, SPEC)
    # the 20-epoch runs are m10's "twice as long" and m20's own length (m20 has no 2x: unknown)
    c, c20 = r["candidates"]
    assert c20["name"] == "m20" and c20["a"] is None and not c20["chosen"]
    bce = c["methods"]["bce"]
    assert math.isclose(bce["difference"], 1.0) and math.isclose(bce["se"], math.sqrt(2.0))
    assert bce["converged"] is True and c["a"] is True and c["c"] is True
    assert r["chosen"] == "m10"
    slow = recs + [rec(10, "asl", s, 30.0 + 0.2 * s) for s in (0, 1)]
    slow += [rec(20, "asl", s, 35.0 + 0.2 * s) for s in (0, 1)]
    r = select_multilabel_preset(slow, SPEC)
    c = r["candidates"][0]
    assert c["methods"]["asl"]["converged"] is False and c["a"] is False
    assert r["chosen"] is None  # m20 has no 40-epoch runs: undetermined


def test_time_limit_one_seed_and_other_records():
    slow = [rec(10, "bce", s, 40.0 + s, seconds=MULTILABEL_TIME_LIMIT_S + 1) for s in (0, 1)]
    slow += [rec(20, "bce", s, 40.0 + s) for s in (0, 1)]
    r = select_multilabel_preset(slow, {"m10": SPEC["m10"]})
    assert r["candidates"][0]["a"] is True and r["candidates"][0]["c"] is None  # upper bound
    assert r["chosen"] is None
    one = [rec(10, "bce", 0, 40.0), rec(20, "bce", 0, 41.0)]
    r = select_multilabel_preset(one, {"m10": SPEC["m10"]})
    assert r["candidates"][0]["a"] is None and r["chosen"] is None
    # test-split records and other benches are never read; a copy of a run counts once
    noise = [rec(10, "bce", 0, 99.0, split="test"), rec(20, "bce", 0, 1.0, bench="multilabel")]
    base = [rec(10, "bce", s, 40.0 + s) for s in (0, 1)] + [
        rec(20, "bce", s, 40.0 + s) for s in (0, 1)
    ]
    a = select_multilabel_preset(base, {"m10": SPEC["m10"]})
    b = select_multilabel_preset(base + noise + [dict(base[0])], {"m10": SPEC["m10"]})
    assert a == b
    assert select_multilabel_preset([], SPEC) == {
        "candidates": [],
        "chosen": None,
        "closest": None,
        "not_run": ["m10", "m20"],
    }


def test_markdown_reads_validation_only():
    # sd 0.71 at each length: SE = sqrt(0.5/2 + 0.5/2) = 0.71, 2·SE = 1.41
    recs = [rec(10, "bce", s, 40.0 + s) for s in (0, 1)]
    recs += [rec(20, "bce", s, 40.5 + s) for s in (0, 1)]
    text = multilabel_selection_markdown(recs, {"m10": SPEC["m10"]})
    assert "Validation mAP" in text and "**m10** (**chosen**)" in text
    assert "| bce | 40.50 ± 0.71 (n=2) | 41.00 ± 0.71 (n=2) | +0.50 | 1.41 | yes |" in text
    assert multilabel_selection_markdown([], SPEC) == ""


# ---------------------------------------------------------------------------------- CLI
def test_cli_dry_run_and_refusals(capsys):
    from longtail.cli import main

    assert (
        main(
            [
                "bench",
                "multilabel-preset-selection",
                "--candidates",
                "cnn5-w16-e20",
                "--seeds",
                "2",
                "--out",
                "x",
                "--dry-run",
            ]
        )
        == 0
    )
    names = capsys.readouterr().out.split()
    assert names[0] == "cnn5-w16-e20_bce_s0" and len(names) == 12
    for bad, msg in (
        (["--epochs", "3"], "does not take --epochs"),
        (["--candidates", "cnn5-w16-e2"], "Did you mean"),
        (["--methods", "bce"], "--methods"),
    ):
        assert main(["bench", "multilabel-preset-selection", "--out", "x", "--dry-run", *bad]) != 0
        assert msg in capsys.readouterr().err
    # a name typed without its lr suffix suggests the name it begins first
    assert main(["bench", "multilabel-preset-selection", "--out", "x", "--dry-run",
                 "--candidates", "cnn5-w32-e20"]) != 0  # fmt: skip
    assert "Did you mean 'cnn5-w32-e20-lr0.003' or" in capsys.readouterr().err


def test_a_whole_tiny_selection_grid_reports(npz, tmp_path, monkeypatch):
    import dataclasses

    from longtail.bench import runner
    from longtail.bench.report import write_report

    monkeypatch.setattr(
        runner,
        "MULTILABEL_CANDIDATES",
        {"tiny": {"model": "small-cnn", "width": 4, "epochs": 1, "lr": 1e-3}},
    )
    jobs = multilabel_selection_jobs(seeds=2, dataset=npz, methods=("bce",))
    small = {"batch_size": 16, "threads": 1, "padding": 1, "eval_batch_size": 10, "ks": (1, 2)}
    jobs = [dataclasses.replace(j, config=dataclasses.replace(j.config, **small)) for j in jobs]
    assert [j.name for j in jobs] == [f"small-cnn-w4-e{e}_bce_s{s}" for e in (1, 2) for s in (0, 1)]
    runner.run_grid(jobs, tmp_path, workers=1, progress=False)
    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Multi-label preset selection" in text and "**tiny**" in text
    assert "Long-tailed multi-label classification" not in text  # no test-split table
    png = tmp_path / "multilabel_selection_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in text


def test_selection_plot_refuses_records_without_curves(tmp_path):
    from longtail.bench.multilabel import plot_multilabel_selection

    with pytest.raises(ValueError, match="preset-selection records"):
        plot_multilabel_selection([rec(10, "bce", 0, 40.0)], tmp_path / "x.png")


def test_timing_run_alone_decides_c():
    (t20,) = multilabel_selection_jobs(("cnn5-w16-e20",), seeds=2, timing=True)
    assert t20.name == "cnn5-w16-e20_timing" and t20.config.epochs == 20
    assert t20.config.method == "db" and t20.config.eval_split == "validation"
    assert t20.extra == {"bench": "multilabel-preset-timing", "candidate": "cnn5-w16-e20"}
    # shared-machine runs over the limit, a run alone under it: the run alone decides
    over = MULTILABEL_TIME_LIMIT_S + 60
    recs = [rec(10, "bce", s, 40.0 + s, seconds=over) for s in (0, 1)]
    recs += [rec(20, "bce", s, 40.0 + s, seconds=2 * over) for s in (0, 1)]
    shared = select_multilabel_preset(recs, {"m10": SPEC["m10"]})["candidates"][0]
    assert shared["c"] is None and shared["seconds"] == over  # an upper bound: undetermined
    assert shared["timing_source"].startswith("median")
    alone = rec(10, "db", 0, 50.0, seconds=250.0, bench="multilabel-preset-timing")
    timed = select_multilabel_preset([*recs, alone], {"m10": SPEC["m10"]})["candidates"][0]
    assert timed["c"] is True and timed["seconds"] == 250.0
    assert timed["timing_source"] == "one run alone on the machine"
    assert "db" not in timed["methods"]  # a timing run is not a convergence sample
    slow = rec(10, "db", 0, 50.0, seconds=over, bench="multilabel-preset-timing")
    timed = select_multilabel_preset([*recs, slow], {"m10": SPEC["m10"]})["candidates"][0]
    assert timed["c"] is False  # alone and over the limit: fails
    # nor a row of the test table
    assert multilabel_records([alone]) == []


def test_timing_of_other_data_is_not_used():
    recs = [rec(10, "bce", s, 40.0 + s) for s in (0, 1)]
    recs += [rec(20, "bce", s, 40.0 + s) for s in (0, 1)]
    other = rec(10, "db", 0, 50.0, seconds=30.0, bench="multilabel-preset-timing")
    other["data"] = {"fingerprint": "another data set"}
    c = select_multilabel_preset([*recs, other], {"m10": SPEC["m10"]})["candidates"][0]
    assert c["seconds"] == 300.0 and c["timing_source"].startswith("median")
    same = dict(other, data={"fingerprint": "f"})
    c = select_multilabel_preset([*recs, same], {"m10": SPEC["m10"]})["candidates"][0]
    assert c["seconds"] == 30.0
    # and the report says "30 s", not "0.5 min" or "0.0 min"
    assert "(c) 30 s a run" in multilabel_selection_markdown([*recs, same], {"m10": SPEC["m10"]})


def test_markdown_names_the_data_and_labels_without_validation_positives():
    recs = [rec(10, "bce", s, 40.0 + s) for s in (0, 1)]
    for r in recs:
        r["data"]["val_size"] = 5
        r["val_label_counts"] = [3, 2, 0]
        r["label_names"] = ["a", "b", "rare"]
    text = multilabel_selection_markdown(recs, {"m10": SPEC["m10"]})
    assert "Data: d: 5 validation examples, 0 to 3 positives a label" in text
    assert "rare without a validation positive" in text


def test_timing_refuses_parallel_runs_and_seeds(capsys):
    from longtail.cli import main

    for kind in ("multilabel-preset-selection", "preset-selection"):
        base = ["bench", kind, "--timing", "--out", "x", "--dry-run"]
        assert main([*base, "--jobs", "2"]) == 2
        assert "1 with --timing" in capsys.readouterr().err
        assert main([*base, "--seeds", "3"]) == 2
        assert "1 with --timing" in capsys.readouterr().err
        assert main([*base, "--first-seed", "1"]) == 2
        assert "0 with --timing" in capsys.readouterr().err
        assert main(base) == 0  # --jobs defaults to 1 with --timing
        assert capsys.readouterr().out.split()[0].endswith("_timing")


def test_train_eval_split_flag(npz, tmp_path, capsys):
    from longtail.cli import main

    argv = ["train", "--task", "multilabel", "--dataset", npz, "--preset", "smoke"]
    argv += ["--epochs", "1", "--threads", "1", "--no-progress", "--out", str(tmp_path / "r")]
    assert main([*argv, "--eval-split", "validation"]) == 0
    out = capsys.readouterr().out
    assert "validation examples; the test split not scored" in out and "tuned" not in out
    # the label whose AP the validation split cannot measure is named (this toy set has one)
    record = json.loads((tmp_path / "r" / "result.json").read_text())
    pairs = zip(record["label_names"], record["val_label_counts"], strict=True)
    absent = [name for name, k in pairs if not k]
    assert absent and f"no validation positive for label {absent[0]} (no AP exists" in out
    assert main(["train", "--eval-split", "validation", "--out", str(tmp_path / "c")]) == 2
    assert "only multi-label runs take" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's own refusal of a choice
        main([*argv[:-1], str(tmp_path / "bad"), "--eval-split", "train"])
    assert "invalid choice: 'train'" in capsys.readouterr().err


def test_a_label_lost_to_the_validation_split_is_named_as_such(tmp_path):
    import numpy as np

    from longtail.engine.multilabel import make_multilabel_config

    y = np.zeros((40, 3), np.uint8)
    y[:, 0], y[:2, 2], y[5, 1] = 1, 1, 1  # labels 1 and 2: one or two positives
    x = np.zeros((40, 1, 8, 8), np.uint8)
    path = tmp_path / "rare.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    kw = {"dataset": str(path), "threads": 1}
    with pytest.raises(ValueError, match=r"once val_fraction=0.9 .* set apart"):
        prepare_multilabel_data(make_multilabel_config("smoke", val_fraction=0.9, **kw))
    y[:, 1] = 0  # a label that the file itself lacks: no word about the split
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    with pytest.raises(ValueError, match=r"label '1' in \S*rare\.npz\.$"):
        prepare_multilabel_data(make_multilabel_config("smoke", val_fraction=0.1, **kw))


def test_a_folder_of_timing_runs_alone_still_reports_c(tmp_path):
    from longtail.bench.report import write_report

    alone = rec(10, "db", 0, 50.0, seconds=90.0, bench="multilabel-preset-timing")
    r = select_multilabel_preset([alone], {"m10": SPEC["m10"]})
    (c,) = r["candidates"]
    assert c["a"] is None and c["c"] is True and c["methods"] == {} and r["chosen"] is None
    text = multilabel_selection_markdown([alone], {"m10": SPEC["m10"]})
    assert "(c) 1.5 min a run (one run alone on the machine" in text
    assert "(no selection runs yet)" in text
    # the report of such a folder: the section, no curve plot (there are no curves)
    import json

    (tmp_path / "t.json").write_text(json.dumps(dict(alone, task="multilabel")))
    write_report(tmp_path)
    assert not (tmp_path / "multilabel_selection_curves.png").exists()


def test_validation_runs_outside_a_selection_get_their_own_table(tmp_path):
    from longtail.bench.multilabel import validation_runs_markdown
    from longtail.bench.report import write_report

    probes = [rec(20, "bce", s, 60.0 + 2 * s, bench="none") for s in (0, 1)]
    for r in probes:
        del r["bench"]  # a plain `longtail train --eval-split validation` run
        r["config"]["lr"] = 0.003
        r["metrics"]["map"] = r["metrics"]["val_map"]  # a validation run's metrics are its own
        r["data"]["val_size"] = 30
        r["val_label_counts"], r["label_names"] = [3, 2, 0], ["a", "b", "e"]
    selection = [rec(20, "asl", 0, 50.0)]
    text = validation_runs_markdown([*probes, selection[0], rec(20, "db", 0, 1.0, split="test")])
    (row,) = [line for line in text.splitlines() if line.startswith("| d")]
    assert "| BCE | m | 1 | 0.003 | 20 | 2 | 30 | 61.00 ± 1.41 |" in row  # sd of 60, 62
    # the validation size, and the label mAP cannot judge, are named (docs/multilabel.md)
    assert (
        "Without a validation positive in d (30): label e (no AP exists for it: mAP judges "
        "the other 2 of 3 labels)."
    ) in text
    assert "ASL" not in text and "DB" not in text  # selection runs and test runs are elsewhere
    assert "never scored" in text and validation_runs_markdown(selection) == ""
    for i, r in enumerate(probes):
        (tmp_path / f"p{i}.json").write_text(json.dumps(r), encoding="utf-8")
    report = write_report(tmp_path, tmp_path / "out")[-1].read_text(encoding="utf-8")
    assert "## Multi-label runs scored on validation" in report and "61.00 ± 1.41" in report


def test_one_label_method_not_converged_fails_a_while_others_wait():
    recs = [rec(10, "bce", s, 60.0 + s) for s in (0, 1)] + [
        rec(20, "bce", s, 70.0 + s) for s in (0, 1)
    ]
    recs += [rec(10, "asl", s, 60.0 + s) for s in (0, 1)] + [rec(20, "asl", 0, 60.5)]
    c = select_multilabel_preset(recs, {"m10": SPEC["m10"]})["candidates"][0]
    assert c["methods"]["asl"]["converged"] is None and c["a"] is False


def test_with_none_converged_the_closest_within_the_time_limit_is_named():
    """(a) fails everywhere: the candidate that fits (c) and whose least converged method
    moves least, in units of 2·SE, when trained twice as long, is named as the closest."""
    spec = {
        "far": {"model": "m", "width": 1, "epochs": 10},
        "near": {"model": "m", "width": 2, "epochs": 10},
        "slow": {"model": "m", "width": 3, "epochs": 10},
    }

    def runs(width, one, two, seconds=300.0):
        out = []
        for epochs, values in ((10, one), (20, two)):
            for s, v in enumerate(values):
                r = rec(epochs, "bce", s, v, seconds=seconds)
                r["config"]["width"] = width
                out.append(r)
        return out

    # far: +5 against 2·SE = 2·sqrt(0.5/2 + 0.5/2) = 1.414 -> 3.54; near: +2 -> 1.41
    # slow: +0.1 (converged) but over the time limit, so not chosen and not the closest
    recs = (
        runs(1, [40, 41], [45, 46])
        + runs(2, [50, 51], [52, 53])
        + runs(3, [60, 61], [60.1, 61.1], seconds=MULTILABEL_TIME_LIMIT_S * 3)
    )
    # the slow candidate's run alone on the machine, over the limit
    timing = rec(
        10, "bce", 0, 0.0, seconds=MULTILABEL_TIME_LIMIT_S + 60, bench="multilabel-preset-timing"
    )
    timing["config"]["width"] = 3
    result = select_multilabel_preset([*recs, timing], spec)
    worst = {c["name"]: c["worst"] for c in result["candidates"]}
    assert worst["far"] == pytest.approx(5 / math.sqrt(2)) and worst["near"] == pytest.approx(
        2 / math.sqrt(2)
    )
    assert result["chosen"] is None and result["closest"] == "near"
    text = multilabel_selection_markdown([*recs, timing], spec)
    assert "Closest to converged among the candidates that meet (c): **near**" in text
    assert "1.4 × 2·SE" in text and "(the others, 3.5 × or more)" in text
    # a converged candidate that fits is chosen, and then there is no "closest"
    fit = runs(4, [60, 61], [60.1, 61.1])
    spec["fit"] = {"model": "m", "width": 4, "epochs": 10}
    assert select_multilabel_preset([*recs, *fit], spec)["closest"] is None
