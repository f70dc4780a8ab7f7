"""The preset selection's verdicts on records built here (no training)."""

from __future__ import annotations

import math

from longtail.bench.selection import select_preset, selection_markdown


def rec(
    cand,
    method,
    length,
    seed,
    err,
    *,
    seconds=200.0,
    split="validation",
    drw_errs=None,
    bench="preset-selection",
):
    epochs = 10 * length
    reweight = "drw" if method.endswith("-drw") else "none"
    curve = []
    for e in range(epochs):
        lr = 0.1 if e < 8 * length else (0.001 if e < 9 * length else 1e-5)
        point = {
            "epoch": e,
            "lr": lr,
            "loss": 1.0,
            "reweighted": reweight == "drw" and e >= 8 * length,
        }
        point["val_top1_error"] = 30.0
        curve.append(point)
    if drw_errs is not None:
        phase = [p for p in curve if p["reweighted"] and p["lr"] == 0.001]
        for p, v in zip(phase, drw_errs, strict=False):
            p["val_top1_error"] = v
    return {
        "method": method,
        "dataset": "fashion-mnist",
        "profile": "exp",
        "ratio": 100.0,
        "seed": seed,
        "epochs": epochs,
        "seconds": seconds,
        "bench": bench,
        "candidate": cand,
        "length": length,
        "eval_split": split,
        "config": {
            "method": method,
            "epochs": epochs,
            "seed": seed,
            "lr": 0.1,
            "batch_size": 128,
            "reweight": reweight,
            "model": cand,
            "width": 1,
        },
        "data": {"train_size": 128 * 200, "fingerprint": "f"},
        "metrics": {"top1_error": err},
        "curve": curve,
    }


def spec(*names, epochs=10):
    """Candidates as the selection takes them: model = the name, width 1, a length."""
    return {n: {"model": n, "width": 1, "epochs": epochs} for n in names}


def grid(cand, errs, **kw):
    """errs: {method: ([1x seed errors], [2x seed errors])}"""
    out = []
    for method, (one, two) in errs.items():
        for length, values in ((1, one), (2, two)):
            for seed, e in enumerate(values):
                out.append(rec(cand, method, length, seed, e, **kw))
    return out


def test_converged_when_doubling_moves_the_mean_within_two_standard_errors():
    # erm: 1x 20, 21 (sd .707), 2x 20.5, 21.5 (sd .707): diff .5, SE = sqrt(.25+.25) = .707
    recs = grid(
        "a",
        {"erm": ([20, 21], [20.5, 21.5]), "mm-drw": ([15, 15.2], [15.1, 15.3])},
        drw_errs=[16.0, 15.4],
    )
    r = select_preset(recs, spec("a"))
    (c,) = r["candidates"]
    erm = c["methods"]["erm"]
    assert math.isclose(erm["difference"], 0.5) and math.isclose(erm["se"], math.sqrt(0.5))
    assert erm["converged"] is True and c["a"] is True
    assert c["drw"] == {"epochs": 1, "steps": 200, "last_move": None}  # 1 epoch at 0.001
    assert c["b"] is False and r["chosen"] is None


def test_not_converged_when_twice_as_long_is_clearly_better():
    slow = grid("slow", {"erm": ([20, 20.2], [17, 17.2])}, drw_errs=[16.0, 15.9])
    fast = grid(
        "fast",
        {"erm": ([18, 18.3], [18.1, 18.2]), "ldam-drw": ([15, 15.2], [15.1, 15.1])},
        drw_errs=[16.0, 15.9],
    )
    r = select_preset(slow + fast, spec("slow", "fast"))
    s, f = r["candidates"]
    assert s["methods"]["erm"]["converged"] is False and s["a"] is False
    assert f["a"] is True


def test_drw_phase_needs_epochs_steps_and_a_plateau():
    def cand(name, drw_errs, length_epochs=20):
        recs = grid(name, {"mm-drw": ([15, 15.4], [15.2, 15.3])}, drw_errs=drw_errs)
        for r in recs:  # 2 epochs at lr 0.001 for the 1x runs: epochs 16, 17 of 20
            n = r["epochs"] = r["config"]["epochs"] = length_epochs * r["length"]
            r["curve"] = [
                {
                    "epoch": e,
                    "lr": 0.1 if e < 0.8 * n else (0.001 if e < 0.9 * n else 1e-5),
                    "loss": 1.0,
                    "reweighted": e >= 0.8 * n,
                    "val_top1_error": 30.0,
                }
                for e in range(n)
            ]
            phase = [p for p in r["curve"] if p["lr"] == 0.001]
            for p, v in zip(phase, drw_errs, strict=False):
                p["val_top1_error"] = v
        return recs

    flat = select_preset(cand("flat", [16.0, 15.7]), spec("flat", epochs=20))["candidates"][0]
    assert flat["drw"]["epochs"] == 2 and flat["drw"]["steps"] == 400
    assert math.isclose(flat["drw"]["last_move"], 0.3) and flat["b"] is True
    assert flat["c"] is True and flat["chosen"] is True
    moving = select_preset(cand("moving", [18.0, 16.0]), spec("moving", epochs=20))["candidates"][0]
    assert moving["b"] is False and moving["chosen"] is False


def test_time_limit_and_separate_timing():
    recs = grid("t", {"erm": ([20, 20.2], [20.1, 20.2])}, seconds=400.0)
    # the median of runs that shared the machine is an upper bound: over the limit, (c) is
    # undetermined until a run alone is timed
    r = select_preset(recs, spec("t"))
    c = r["candidates"][0]
    assert c["c"] is None and c["seconds"] == 400.0 and r["chosen"] is None
    assert "undetermined" in selection_markdown(recs, spec("t"))
    c = select_preset(recs, spec("t"), timing={"t": 301.0})["candidates"][0]
    assert c["c"] is False
    c = select_preset(recs, spec("t"), timing={"t": 250.0})["candidates"][0]
    assert c["c"] is True and c["timing_source"] == "one run alone on the machine"
    alone = rec("t", "mm-drw", 1, 0, 20.0, seconds=280.0, bench="preset-timing")
    c = select_preset([*recs, alone], spec("t"))["candidates"][0]
    assert c["c"] is True and c["seconds"] == 280.0


def test_one_seed_is_undetermined_and_test_split_records_are_ignored():
    recs = grid("u", {"erm": ([20], [20.1])})
    c = select_preset(recs, spec("u"))["candidates"][0]
    assert c["methods"]["erm"]["converged"] is None and c["a"] is None
    assert "undetermined" in selection_markdown(recs, spec("u"))
    tested = grid("u", {"erm": ([20, 21], [20, 21])}, split="test")
    assert select_preset(tested, spec("u"))["candidates"] == []
    assert selection_markdown(tested, spec("u")) == ""
    other = grid("u", {"erm": ([20, 21], [20, 21])}, bench="table1")
    assert select_preset(other, spec("u"))["candidates"] == []


def test_copies_of_a_run_count_once():
    recs = grid("c", {"erm": ([20, 21], [20.5, 21.5])})
    c1 = select_preset(recs, spec("c"))["candidates"][0]["methods"]["erm"]
    c2 = select_preset(recs + [dict(r) for r in recs], spec("c"))["candidates"][0]["methods"]["erm"]
    assert c1["1x"]["n"] == c2["1x"]["n"] == 2


def test_a_run_serves_every_candidate_it_is_a_length_of():
    # the 20-epoch runs are "twice as long" for the 10-epoch candidate and "own length" for 20
    recs = grid("m", {"erm": ([20, 20.4], [18, 18.2])}) + [
        rec("m", "erm", 4, s, e)
        for s, e in enumerate([17.9, 18.1])  # 40 epochs
    ]
    cands = {
        "m-10": {"model": "m", "width": 1, "epochs": 10},
        "m-20": {"model": "m", "width": 1, "epochs": 20},
    }
    short, long = select_preset(recs, cands)["candidates"]
    assert short["methods"]["erm"]["2x"]["values"] == [18, 18.2]
    assert long["methods"]["erm"]["1x"]["values"] == [18, 18.2]
    assert long["methods"]["erm"]["2x"]["values"] == [17.9, 18.1]
    assert short["a"] is False and long["a"] is True


def test_selection_jobs_name_runs_by_what_they_are():
    from longtail.bench.runner import preset_selection_jobs

    names = [j.name for j in preset_selection_jobs(("cnn5-w16-e40", "cnn5-w16-e80"), seeds=1)]
    # e40 at twice its length is e80 at its own: one run, listed once
    assert names.count("cnn5-w16-e80_erm_s0") == 1
    assert "cnn5-w16-e160_mm-drw_s0" in names and len(names) == len(set(names)) == 9


def test_timing_run_is_shaped_like_a_table1_run():
    from longtail.bench.runner import preset_selection_jobs

    sel = preset_selection_jobs(("cnn5-w16-e60",), seeds=1)
    (timing,) = preset_selection_jobs(("cnn5-w16-e60",), seeds=1, timing=True)
    # selection runs draw a validation curve; the timing run evaluates once, at the end, like
    # Table 1, and still never looks at the test set (validation held out)
    assert all(j.config.eval_every == 1 for j in sel)
    assert timing.config.eval_every == 0 and timing.config.val_per_class > 0
    assert timing.config.epochs == 60 and timing.extra["bench"] == "preset-timing"


def test_timing_records_stay_out_of_table1():
    """A timing run is evaluated on validation: never a row of a test-error table."""
    from longtail.bench.records import classification

    timing = rec("t", "mm-drw", 1, 0, 12.0, bench="preset-timing")
    table = rec("t", "mm-drw", 1, 0, 12.0, split="test", bench="table1")
    assert classification([timing, table]) == [table]


def test_one_method_not_converged_decides_a_before_the_others_are_run():
    # erm clearly moves on doubling; mm-drw has only one seed at twice the length
    recs = grid("f", {"erm": ([20, 20.2], [25, 25.2]), "mm-drw": ([18, 18.2], [18.1])})
    c = select_preset(recs, spec("f"))["candidates"][0]
    assert c["methods"]["mm-drw"]["converged"] is None and c["a"] is False
    # without the failing method, an undetermined one leaves (a) undetermined
    rest = [r for r in recs if r["method"] != "erm"]
    assert select_preset(rest, spec("f"))["candidates"][0]["a"] is None


def test_a_run_at_another_learning_rate_is_not_the_candidates():
    """A candidate is a recipe with its learning rate: runs of the same model, width and
    length at another lr in the same folder are not its runs."""
    from longtail.bench.runner import PRESET_CANDIDATES, preset_selection_jobs

    recs = grid("m", {"erm": ([20, 20.1], [19.9, 20.0])})
    stray = grid("m", {"erm": ([40, 40.1], [10, 10.1])})
    for r in stray:
        r["config"]["lr"] = 0.05
    cands = {"m": {"model": "m", "width": 1, "epochs": 10, "lr": 0.1}}
    (c,) = select_preset(recs + stray, cands)["candidates"]
    assert c["methods"]["erm"]["1x"]["values"] == [20, 20.1] and c["a"] is True
    # the runner's candidates carry the lr their runs are trained at
    assert all(s["lr"] == 0.1 for s in PRESET_CANDIDATES.values())
    assert {j.config.lr for j in preset_selection_jobs(("cnn5-w16-e40",), seeds=1)} == {0.1}


def test_the_selections_default_to_the_two_seeds_their_convergence_test_needs(capsys):
    """(a) compares seed spreads: a bare `bench preset-selection` trains two seeds, a timing
    run one, and every other bench kind one."""
    from longtail.cli import main

    def names(*argv):
        assert main(["bench", *argv, "--out", "x", "--dry-run"]) == 0
        return capsys.readouterr().out.split()

    for kind in ("preset-selection", "multilabel-preset-selection"):
        runs = names(kind)
        assert {n.rsplit("_s", 1)[1] for n in runs} == {"0", "1"}
        assert all(n.endswith("_timing") for n in names(kind, "--timing"))
    assert {n.rsplit("_s", 1)[1] for n in names("table1")} == {"0"}
