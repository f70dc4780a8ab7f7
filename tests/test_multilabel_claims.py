"""The multi-label benchmark's claims: paired per-seed differences of test mAP with 95%
intervals, checked against numbers worked by hand; runs of other recipes are never paired."""

from __future__ import annotations

import math

import pytest

from longtail.bench.claims import paired_difference, verdict
from longtail.bench.multilabel import (
    MULTILABEL_CLAIMS,
    length_agreement,
    length_agreement_markdown,
    multilabel_claims,
    multilabel_claims_markdown,
    multilabel_sections,
)
from longtail.engine.multilabel import MULTILABEL_METHODS


def rec(method, seed, mAP, tail=None, *, epochs=20, split="test", fingerprint="f"):
    return {
        "task": "multilabel",
        "bench": "multilabel",
        "method": method,
        "dataset": "d",
        "seed": seed,
        "epochs": epochs,
        "eval_split": split,
        "config": {"model": "m", "width": 1, "epochs": epochs, "method": method, "seed": seed},
        "data": {"fingerprint": fingerprint},
        "metrics": {"map": mAP, "tail_map": mAP - 20 if tail is None else tail},
    }


def grid(values, **kw):
    """values: {method: [mAP per seed]}"""
    return [rec(m, s, v, **kw) for m, vs in values.items() for s, v in enumerate(vs)]


def test_a_claim_by_hand():
    # DB − BCE per seed: +2, +3, +4: mean 3, sd 1, t(0.975, 2) = 4.302653, half 2.4841
    recs = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})
    (r,) = multilabel_claims(recs, [("db", "bce")])
    assert r["differences"] == [2.0, 3.0, 4.0] and r["seeds"] == [0, 1, 2]
    assert r["mean"] == pytest.approx(3.0) and r["std"] == pytest.approx(1.0)
    half = 4.302652729749464 / math.sqrt(3)
    assert r["ci"] == pytest.approx([3 - half, 3 + half])
    assert r["verdict"] == "supported" and r["claim"] == "DB vs BCE"
    # the other way round it is contradicted: BCE is lower
    (back,) = multilabel_claims(recs, [("bce", "db")])
    assert back["verdict"] == "contradicted"


def test_direction_of_the_verdict():
    assert verdict((0.5, 2.0), higher=True) == "supported"
    assert verdict((-2.0, -0.5), higher=True) == "contradicted"
    assert verdict((-2.0, 0.5), higher=True) == "inconclusive"
    assert verdict((0.5, 2.0)) == "contradicted"  # an error: lower is better
    assert verdict(None, higher=True) == "inconclusive (1 seed)"


def test_only_seeds_both_ran_are_paired_and_one_seed_has_no_interval():
    recs = grid({"bce": [60.0, 61.0], "asl": [63.0]})
    (r,) = multilabel_claims(recs, [("asl", "bce")])
    assert r["seeds"] == [0] and r["ci"] is None and r["verdict"] == "inconclusive (1 seed)"
    assert paired_difference({0: 1.0}, {1: 2.0}) is None


def test_other_recipes_data_and_validation_runs_are_never_paired():
    recs = grid({"bce": [60.0, 61.0]}) + grid({"db": [70.0, 71.0]}, epochs=40)
    assert multilabel_claims(recs, [("db", "bce")]) == []
    recs = grid({"bce": [60.0, 61.0]}) + grid({"db": [70.0, 71.0]}, fingerprint="g")
    assert multilabel_claims(recs, [("db", "bce")]) == []
    recs = grid({"bce": [60.0, 61.0]}) + grid({"db": [70.0, 71.0]}, split="validation")
    assert multilabel_claims(recs, [("db", "bce")]) == []


def test_tail_map_is_a_claim_of_its_own():
    recs = [
        *grid({"bce": [60.0, 61.0, 62.0]}),
        rec("db", 0, 59.0, tail=50.0),
        rec("db", 1, 60.0, tail=52.0),
        rec("db", 2, 61.5, tail=51.0),
    ]
    (m,) = multilabel_claims(recs, [("db", "bce")], "map")
    (t,) = multilabel_claims(recs, [("db", "bce")], "tail_map")
    assert m["verdict"] == "contradicted" and t["verdict"] == "supported"


def test_the_default_claims_cover_every_method_against_bce():
    against_bce = {m for m, b in MULTILABEL_CLAIMS if b == "bce"}
    assert against_bce == set(MULTILABEL_METHODS) - {"bce"}
    assert all(m in MULTILABEL_METHODS and b in MULTILABEL_METHODS for m, b in MULTILABEL_CLAIMS)


def test_the_report_section_shows_the_claims():
    recs = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0], "asl": [61.0, 60.0, 62.5]})
    text = multilabel_claims_markdown(recs)
    assert "| DB vs BCE | 3 | +3.00 | [+0.52, +5.48] | **supported** | s0: +2.00" in text
    assert "| ASL vs BCE | 3 | +0.17 |" in text and "inconclusive" in text
    assert "**Claims on test mAP" in text and "**Claims on tail mAP" in text
    sections = multilabel_sections(recs, None, [])
    assert "### Claims, paired by seed" in sections
    assert multilabel_claims_markdown(grid({"bce": [60.0]})) == ""


def test_the_report_writes_the_claims_as_json(tmp_path):
    import json

    from longtail.bench.report import write_report

    folder = tmp_path / "runs"
    folder.mkdir()
    for i, r in enumerate(grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})):
        (folder / f"r{i}.json").write_text(json.dumps(r))
    written = write_report(folder)
    saved = json.loads((folder / "multilabel_claims.json").read_text())
    assert folder / "multilabel_claims.json" in written
    assert [(c["claim"], c["metric"], c["verdict"]) for c in saved["claims"]] == [
        ("DB vs BCE", "map", "supported"),
        ("DB vs BCE", "tail_map", "supported"),
    ]
    assert "### Claims, paired by seed" in (folder / "report.md").read_text()


def test_claims_at_a_length_and_at_twice_it_are_set_side_by_side():
    short = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0], "asl": [63.0, 64.0, 65.5]})
    long = grid(
        {"bce": [66.0, 67.0, 68.0], "db": [69.0, 71.0, 73.0], "asl": [64.0, 65.0, 66.0]},
        epochs=40,
    )
    text = length_agreement_markdown(short + long)
    assert "the claims at 20 epochs and at 40 epochs** (seeds 0, 1, 2 at both lengths)" in text
    db = next(line for line in text.splitlines() if line.startswith("| DB vs BCE | test mAP"))
    assert "+3.00 [+0.52, +5.48] (n=3)" in db and "**holds at both**" in db
    asl = next(line for line in text.splitlines() if line.startswith("| ASL vs BCE | test mAP"))
    assert "**reverses**" in asl  # +3 at 20 epochs, -2 at 40
    # lengths that are not one twice the other, or other recipes, are not paired
    assert length_agreement_markdown(short + grid({"bce": [1.0], "db": [2.0]}, epochs=30)) == ""
    assert length_agreement_markdown(short) == ""
    assert "### Do the claims hold at twice the length?" in multilabel_sections(
        short + long, None, []
    )


def test_the_seeds_of_each_length_are_named_and_unequal_ones_said():
    short = grid({"bce": [60.0, 61.0], "db": [62.0, 64.0]})
    long = [
        rec(m, s + 2, v, epochs=40)
        for m, vs in {"bce": [66.0, 67.0], "db": [69.0, 71.0]}.items()
        for s, v in enumerate(vs)
    ]
    text = length_agreement_markdown(short + long)
    assert "seeds 0, 1 at 20 epochs and 2, 3 at 40 epochs: **not the same seeds**" in text
    (row, _) = length_agreement(short + long, [("db", "bce")])
    assert row["seeds"] == [[0, 1], [2, 3]] and row["both"] == "no claim"  # 2 seeds: wide CIs


def test_the_report_saves_the_verdict_across_lengths(tmp_path):
    import json

    from longtail.bench.report import write_report

    folder = tmp_path / "runs"
    folder.mkdir()
    short = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})
    long = grid({"bce": [66.0, 67.0, 68.0], "db": [64.0, 65.0, 66.0]}, epochs=40)
    for i, r in enumerate(short + long):
        (folder / f"r{i}.json").write_text(json.dumps(r))
    write_report(folder)
    saved = json.loads((folder / "multilabel_claims.json").read_text())
    both = [(r["claim"], r["metric"], r["epochs"], r["both"]) for r in saved["length_agreement"]]
    assert both == [
        ("DB vs BCE", "map", [20, 40], "reverses"),
        ("DB vs BCE", "tail_map", [20, 40], "reverses"),
    ]


def test_a_label_without_a_test_positive_is_named_under_the_table():
    from longtail.bench.multilabel import multilabel_markdown

    recs = grid({"bce": [60.0, 61.0]})
    assert "Test mAP (%) over all labels" in multilabel_markdown(recs)
    for r in recs:
        r["label_names"] = ["cat", "dog", "owl"]
        r["test_label_counts"] = [30, 0, 12]
    text = multilabel_markdown(recs)
    assert "over the labels with a test positive (dog has none" in text


def test_the_report_lists_multilabel_methods_in_their_registry_order(tmp_path):
    import json

    from longtail.bench.report import write_report

    folder = tmp_path / "runs"
    folder.mkdir()
    for i, r in enumerate(grid({"focal": [61.0], "bce": [60.0]})):
        (folder / f"r{i}.json").write_text(json.dumps(r))
    write_report(folder)
    assert "methods: bce, focal." in (folder / "report.md").read_text()


def test_claims_without_a_tail_say_why_there_is_no_tail_table():
    recs = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})
    for r in recs:
        del r["metrics"]["tail_map"]  # what a run without tail labels records
    text = multilabel_claims_markdown(recs)
    assert "**Claims on test mAP" in text and "**Claims on tail mAP" not in text
    assert "No claims on tail mAP, d: no label has fewer than 20 training positives" in text


def test_a_claim_run_at_one_length_only_shows_as_not_run_there():
    short = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0], "asl": [63.0, 64.0, 65.0]})
    long = grid({"bce": [66.0, 67.0, 68.0], "db": [69.0, 71.0, 73.0]}, epochs=40)
    rows = length_agreement(short + long, [("db", "bce"), ("asl", "bce")])
    asl = next(r for r in rows if r["claim"] == "ASL vs BCE" and r["metric"] == "map")
    assert asl["long"] is None and asl["both"] == "no claim" and asl["seeds"][1] == []
    text = length_agreement_markdown(short + long)
    line = next(x for x in text.splitlines() if x.startswith("| ASL vs BCE | test mAP"))
    assert "| not run | no claim |" in line


def test_claims_of_one_length_only_are_marked_provisional():
    short = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})
    text = multilabel_claims_markdown(short)
    assert text.count("**Provisional: one training length only** (20 epochs;") == 1
    assert "`longtail bench multilabel` command again with `--epochs 40` added" in text
    # with the recipe at twice the length beside it, neither length is provisional
    long = grid({"bce": [66.0, 67.0, 68.0], "db": [69.0, 71.0, 73.0]}, epochs=40)
    assert "Provisional" not in multilabel_claims_markdown(short + long)
    # a length that is not twice or half another pairs with nothing: both are provisional
    other = grid({"bce": [66.0, 67.0, 68.0], "db": [69.0, 71.0, 73.0]}, epochs=30)
    assert multilabel_claims_markdown(short + other).count("Provisional") == 2


def test_a_length_without_claims_yet_leaves_the_other_provisional():
    short = grid({"bce": [60.0, 61.0, 62.0], "db": [62.0, 64.0, 66.0]})
    started = grid({"bce": [66.0]}, epochs=40)  # the longer pass has begun: one run, no claim
    assert "Provisional: one training length only" in multilabel_claims_markdown(short + started)
    text = length_agreement_markdown(short + started)
    assert (
        "(seeds 0, 1, 2 at 20 epochs; no seed yet with both methods of a claim at 40 epochs)"
        in text
    )
    assert "not the same seeds" not in text
