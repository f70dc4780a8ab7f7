"""Tests for longtail.bench.claims: paired per-seed differences, 95% intervals and verdicts."""

from __future__ import annotations

import copy
import json
import math
import random
import warnings

import pytest

from longtail.bench import claims as claims_module
from longtail.bench.claims import (
    CLAIMS,
    Claim,
    claims_markdown,
    paired_claims,
    student_t_cdf,
    t_quantile,
    verdict,
)
from longtail.bench.labels import method_label
from longtail.bench.report import write_report
from longtail.engine.config import METHODS


def record(
    method,
    seed,
    error,
    *,
    epochs=8,
    profile="exp",
    ratio=100.0,
    loss_kwargs=None,
    fingerprint=None,
    bench="table1",
):
    """A Table 1 record as the engine writes it: a resolved config, and with ``fingerprint`` an
    identity naming the data (without, a record from before identities were recorded)."""
    config = {
        "dataset": "fashion-mnist",
        "profile": profile,
        "ratio": ratio,
        "n_max": None,
        "method": method,
        "loss_kwargs": {**METHODS[method].loss_kwargs, **(loss_kwargs or {})},
        "seed": seed,
        "epochs": epochs,
        "lr": 0.1,
        "model": "resnet20",
        "width": 8,
        "preset": "quick",
        "threads": 2,  # bookkeeping: not part of the identity
    }
    rec = {
        "method": method,
        "dataset": "fashion-mnist",
        "profile": profile,
        "ratio": ratio,
        "seed": seed,
        "epochs": epochs,
        "config": config,
        "metrics": {"top1_error": error, "balanced_accuracy": 100.0 - error},
        "bench": bench,
    }
    if fingerprint is not None:
        ident = {k: v for k, v in config.items() if k != "threads"}
        rec["identity"] = {**ident, "data": fingerprint}
        rec["data"] = {"fingerprint": fingerprint}
    return rec


# ---- the Student t quantile ---------------------------------------------------------------------


def test_t_quantile_matches_scipy_for_df_1_to_200():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 201):
        for p in (0.975, 0.995, 0.9, 0.6, 0.025):
            expected = float(stats.t.ppf(p, df))
            assert t_quantile(p, df) == pytest.approx(expected, rel=1e-9, abs=1e-12), (p, df)


def test_t_quantile_known_values_and_closed_forms():
    assert t_quantile(0.975, 2) == pytest.approx(4.302652729749464, rel=1e-10)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), rel=1e-10)
    assert t_quantile(0.975, 1000) == pytest.approx(1.962339, abs=1e-6)
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.1, 5) == pytest.approx(-t_quantile(0.9, 5))
    for t in (-30.0, -2.0, -0.3, 0.0, 0.5, 4.0, 200.0):
        # the Cauchy distribution (df 1) and df 2 have closed forms
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)
    assert student_t_cdf(math.inf, 3) == 1.0 and student_t_cdf(-math.inf, 3) == 0.0


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (1.5, 3), (0.9, 0), (0.9, -1)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)


# ---- pairing and statistics ---------------------------------------------------------------------
def runs(method, errors, **kwargs):
    """Records of ``method``: ``errors`` is ``{seed: top-1 error}``."""
    return [record(method, seed, error, **kwargs) for seed, error in errors.items()]


def only(results, method="mm-drw", baseline="erm"):
    found = [r for r in results if (r.claim.method, r.claim.baseline) == (method, baseline)]
    assert len(found) == 1, found
    return found[0]


def test_hand_worked_example():
    # seed:           0     1     2
    # MM-DRW error:  20.0  21.0  19.0
    # ERM error:     23.0  23.0  23.0
    # d = A − B:     -3.0  -2.0  -4.0
    # mean d = -9 / 3 = -3.0; deviations 0, +1, -1; sd = sqrt((0 + 1 + 1) / 2) = 1.0
    # t(0.975, df = 2) = 4.303; half width = 4.303 * 1.0 / sqrt(3) = 2.484
    # 95% CI = [-3 - 2.484, -3 + 2.484] = [-5.484, -0.516]: below 0, supported
    recs = runs("mm-drw", {0: 20.0, 1: 21.0, 2: 19.0}) + runs("erm", {0: 23.0, 1: 23.0, 2: 23.0})
    random.Random(0).shuffle(recs)  # the order records are read in does not matter
    r = only(paired_claims(recs))
    assert r.n == 3 and r.seeds == (0, 1, 2)
    assert r.differences == pytest.approx((-3.0, -2.0, -4.0))
    assert r.method_errors == (20.0, 21.0, 19.0) and r.baseline_errors == (23.0, 23.0, 23.0)
    assert r.mean == pytest.approx(-3.0) and r.std == pytest.approx(1.0)
    assert r.t == pytest.approx(4.303, abs=5e-4)
    assert r.ci == pytest.approx((-5.484, -0.516), abs=1e-3)
    assert r.verdict == "supported"
    assert r.label == "MM-DRW vs ERM" and r.setting == ("fashion-mnist", "exp", 100)
    assert r.table == "Table 1" and r.recipe["epochs"] == 8


def test_verdict_edges():
    assert verdict(None) == "inconclusive (1 seed)"
    assert verdict((-2.0, -0.1)) == "supported"
    assert verdict((0.1, 2.0)) == "contradicted"
    assert verdict((-1.0, 1.0)) == "inconclusive"
    assert verdict((-1.0, 0.0)) == "inconclusive"  # the bound must be strictly below 0
    assert verdict((0.0, 1.0)) == "inconclusive"


def test_two_seeds_make_no_claim_even_with_a_zero_width_interval():
    # errors move in steps of one test image: two seeds with the same difference are common,
    # and their interval has zero width; fewer than 3 seeds decide nothing
    recs = runs("mm-drw", {0: 20.0, 1: 21.0}) + runs("erm", {0: 20.5, 1: 21.5})
    r = only(paired_claims(recs))
    assert r.ci == pytest.approx((-0.5, -0.5)) and r.verdict == "inconclusive (2 seeds)"
    assert verdict((-0.5, -0.5)) == "supported"  # the interval alone would have said so
    assert verdict((-0.5, -0.5), seeds=2) == "inconclusive (2 seeds)"
    assert verdict((-0.5, -0.4), seeds=3) == "supported"
    assert verdict(None, seeds=1) == verdict((-1.0, -0.5), seeds=1) == "inconclusive (1 seed)"


def test_one_seed_has_no_interval():
    r = only(paired_claims(runs("mm-drw", {3: 20.0}) + runs("erm", {3: 30.0})))
    assert (r.n, r.mean, r.std, r.t, r.ci) == (1, -10.0, None, None, None)
    assert r.verdict == "inconclusive (1 seed)"


def test_interval_crossing_zero_and_both_signs():
    # d = -1, +1: mean 0, sd sqrt(2); the interval holds 0
    crossing = runs("mm-drw", {0: 20.0, 1: 22.0}) + runs("erm", {0: 21.0, 1: 21.0})
    r = only(paired_claims(crossing))
    assert r.mean == pytest.approx(0.0) and r.ci[0] < 0 < r.ci[1]
    assert r.verdict == "inconclusive (2 seeds)" and verdict(r.ci) == "inconclusive"
    # d = +4, +5, +6 (MM-DRW worse each seed): mean 5, sd 1, CI 5 ± 2.484 above 0
    worse = runs("mm-drw", {0: 24.0, 1: 25.0, 2: 26.0}) + runs("erm", {0: 20.0, 1: 20.0, 2: 20.0})
    r = only(paired_claims(worse))
    assert r.ci == pytest.approx((2.516, 7.484), abs=1e-3)
    assert r.verdict == "contradicted"
    # the same runs, the other way round (a user's claim): supported, the signs flipped
    r = only(paired_claims(worse, [Claim("erm", "mm-drw")]), "erm", "mm-drw")
    assert r.differences == pytest.approx((-4.0, -5.0, -6.0)) and r.verdict == "supported"


def test_pairs_by_seed_not_by_position_and_only_seeds_both_ran():
    # MM-DRW ran seeds 0, 1, 2; ERM seeds 1, 2, 3: the pairs are seeds 1 and 2 alone
    recs = runs("mm-drw", {0: 10.0, 1: 21.0, 2: 22.0}) + runs("erm", {1: 20.0, 2: 20.0, 3: 50.0})
    r = only(paired_claims(recs))
    assert r.seeds == (1, 2) and r.n == 2
    assert r.differences == pytest.approx((1.0, 2.0))  # by position: -10, +1, -28
    # seeds sorted numerically, whatever the order the records come in
    recs = runs("mm-drw", {10: 20.0, 2: 21.0, 1: 22.0}) + runs("erm", {1: 20.0, 10: 20.0, 2: 20.0})
    r = only(paired_claims(recs))
    assert r.seeds == (1, 2, 10) and r.differences == pytest.approx((2.0, 1.0, 0.0))


def test_copies_of_a_run_count_once():
    recs = runs("mm-drw", {0: 20.0, 1: 21.0}) + runs("erm", {0: 23.0, 1: 22.0})
    copies = [copy.deepcopy(recs[0]), copy.deepcopy(recs[0]), copy.deepcopy(recs[2])]
    r = only(paired_claims(recs + copies))
    assert r.n == 2 and r.seeds == (0, 1)
    assert r.differences == pytest.approx((-3.0, -1.0))
    assert r.mean == pytest.approx(-2.0)


def test_never_pairs_runs_of_different_recipes():
    # ERM ran 8 epochs, MM-DRW 4: nothing to pair
    recs = runs("erm", {0: 30.0, 1: 31.0}, epochs=8) + runs("mm-drw", {0: 20.0, 1: 21.0}, epochs=4)
    assert paired_claims(recs) == [] and claims_markdown(recs) == ""
    # both ran both recipes: one result per recipe, each from its own runs
    recs += runs("erm", {0: 10.0, 1: 10.0}, epochs=4) + runs("mm-drw", {0: 29.0, 1: 28.0}, epochs=8)
    results = [r for r in paired_claims(recs) if r.claim == Claim("mm-drw", "erm")]
    by_epochs = {r.recipe["epochs"]: r for r in results}
    assert sorted(by_epochs) == [4, 8]
    assert by_epochs[4].differences == pytest.approx((10.0, 11.0))
    assert by_epochs[8].differences == pytest.approx((-1.0, -3.0))
    assert {r.table for r in results} == {"Table 1a", "Table 1b"}
    # the markdown names each recipe
    text = claims_markdown(recs)
    assert "4 epochs" in text and "8 epochs" in text and text.count("| MM-DRW vs ERM |") == 2


def test_never_pairs_runs_of_different_settings_or_data():
    # other profile, other ratio, other dataset: no pair
    step = runs("erm", {0: 30.0, 1: 31.0}, profile="step")
    ratio10 = runs("erm", {0: 30.0, 1: 31.0}, ratio=10)
    cifar = runs("erm", {0: 30.0, 1: 31.0})
    for rec in cifar:
        rec["dataset"] = rec["config"]["dataset"] = "cifar10"
    mm = runs("mm-drw", {0: 20.0, 1: 21.0})
    for other in (step, ratio10, cifar):
        assert paired_claims(mm + other) == []
    # one setting, but trained on other data (another fingerprint): no pair either
    a = runs("mm-drw", {0: 20.0, 1: 21.0}, fingerprint="aaaa1111")
    b = runs("erm", {0: 30.0, 1: 31.0}, fingerprint="bbbb2222")
    assert paired_claims(a + b) == []
    # the same data: paired
    b = runs("erm", {0: 30.0, 1: 31.0}, fingerprint="aaaa1111")
    r = only(paired_claims(a + b))
    assert r.data == "aaaa1111" and r.n == 2
    # several settings at once: each its own pairs
    both = mm + runs("erm", {0: 25.0, 1: 25.0}) + step + runs("mm-drw", {0: 40.0}, profile="step")
    results = {r.setting[1]: r for r in paired_claims(both)}
    assert results["exp"].differences == pytest.approx((-5.0, -4.0))
    assert results["step"].differences == pytest.approx((10.0,))


def test_runs_without_a_value_or_of_other_benches_are_left_out():
    recs = runs("mm-drw", {0: 20.0, 1: 21.0, 2: 19.0}) + runs("erm", {0: 23.0, 1: 23.0, 2: 23.0})
    recs[1]["metrics"]["top1_error"] = None  # MM-DRW seed 1 has no error
    recs[2]["metrics"]["top1_error"] = float("nan")  # nor seed 2
    ablation = runs("erm", {5: 99.0}, bench="mm-ablation") + runs("mm-drw", {5: 1.0})
    r = only(paired_claims(recs + ablation))
    assert r.seeds == (0,)


def test_all_default_claims_in_order():
    methods = ["erm", "erm-drw", "ldam", "ldam-drw", "mm", "mm-drw", "mm-ldam-drw", "focal"]
    recs = [rec for i, m in enumerate(methods) for rec in runs(m, {0: 30.0 - i, 1: 31.0 - i})]
    results = paired_claims(recs)
    pairs = [
        ("erm-drw", "erm"),
        ("ldam-drw", "ldam"),
        ("mm-drw", "mm"),
        ("ldam-drw", "erm"),
        ("mm-drw", "ldam-drw"),
        ("mm-drw", "erm"),
        ("mm-ldam-drw", "mm-drw"),
        ("ldam-drw", "erm-drw"),
        ("mm-drw", "erm-drw"),
    ]
    assert CLAIMS == [Claim(*p) for p in pairs]
    assert [tuple(r.claim) for r in results] == pairs
    assert [r.label for r in results] == [
        f"{method_label(a)} vs {method_label(b)}" for a, b in pairs
    ]
    assert results[6].label == "MM-LDAM-DRW vs MM-DRW"
    assert results[-1].label == "MM-DRW vs ERM-DRW (M-DRW)"


def test_claims_can_be_extended(monkeypatch):
    recs = runs("focal", {0: 20.0, 1: 21.0}) + runs("erm", {0: 23.0, 1: 23.0})
    assert paired_claims(recs) == []
    assert only(paired_claims(recs, [("focal", "erm")]), "focal", "erm").n == 2
    monkeypatch.setattr(claims_module, "CLAIMS", [*CLAIMS, Claim("focal", "erm")])
    assert only(paired_claims(recs), "focal", "erm").label == "Focal vs ERM"
    assert "| Focal vs ERM | 2 |" in claims_markdown(recs)


def test_a_method_with_two_loss_settings_is_paired_row_by_row():
    recs = runs("erm", {0: 30.0, 1: 30.0})
    recs += runs("mm-drw", {0: 20.0, 1: 21.0}, loss_kwargs={"beta": 1.2})
    recs += runs("mm-drw", {0: 25.0, 1: 26.0}, loss_kwargs={"beta": 1.5})
    results = {r.label: r for r in paired_claims(recs)}
    assert results["MM-DRW (β=1.2) vs ERM"].differences == pytest.approx((-10.0, -9.0))
    assert results["MM-DRW (β=1.5) vs ERM"].differences == pytest.approx((-5.0, -4.0))


# ---- markdown and the report --------------------------------------------------------------------
def table_rows(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Claim"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0]] = cells[1:]
    return out


GRID = {  # method: {seed: error}
    "erm": {0: 23.0, 1: 23.0, 2: 23.0},
    "mm-drw": {0: 20.0, 1: 21.0, 2: 19.0},  # vs ERM: the hand-worked example
    "ldam-drw": {0: 21.0, 2: 18.0},  # vs ERM: -2, -5; MM-DRW vs LDAM-DRW: -1, +1
}


def grid_records():
    return [rec for m, errors in GRID.items() for rec in runs(m, errors)]


def test_markdown_table():
    text = claims_markdown(grid_records())
    rows = table_rows(text)
    assert rows["MM-DRW vs ERM"] == [
        "3",
        "-3.00",
        "[-5.48, -0.52]",
        "**supported**",
        "s0: -3.00, s1: -2.00, s2: -4.00",
    ]
    assert rows["MM-DRW vs LDAM-DRW"][:2] == ["2", "+0.00"]
    assert rows["MM-DRW vs LDAM-DRW"][3:] == ["inconclusive (2 seeds)", "s0: -1.00, s2: +1.00"]
    assert "lower is better" in text and "paired by seed" in text and "Top-1 error" in text
    assert "Recipe: preset quick, 8 epochs" in text
    worse = runs("mm-drw", {0: 24.0, 1: 25.0, 2: 26.0}) + runs("erm", {0: 20.0, 1: 20.0, 2: 20.0})
    assert "**contradicted** (ERM lower)" in claims_markdown(worse)


def test_report_writes_the_section_and_claims_json(tmp_path):
    folder = tmp_path / "results"
    for i, rec in enumerate(grid_records()):
        path = folder / f"run{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    # a copy of a run in a sub-folder counts once
    (folder / "backup").mkdir()
    (folder / "backup" / "run0.json").write_text((folder / "run0.json").read_text())
    out = tmp_path / "report"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no matplotlib, say
        paths = write_report(folder, out)
    assert paths[-1] == out / "report.md" and paths[-2] == out / "claims.json"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
    text = paths[-1].read_text(encoding="utf-8")
    assert "## Claims" in text and "claims.json" in text
    assert text.index("## Table 1") < text.index("## Claims")
    assert claims_markdown(grid_records()) in text
    saved = json.loads((out / "claims.json").read_text(encoding="utf-8"))
    assert saved["metric"] == "top1_error" and saved["lower_is_better"] is True
    found = {c["claim"]: c for c in saved["claims"]}
    assert sorted(found) == ["LDAM-DRW vs ERM", "MM-DRW vs ERM", "MM-DRW vs LDAM-DRW"]
    mm = found["MM-DRW vs ERM"]
    assert (mm["method"], mm["baseline"], mm["n"], mm["verdict"]) == (
        "mm-drw",
        "erm",
        3,
        "supported",
    )
    assert mm["ci"] == pytest.approx([-5.484, -0.516], abs=1e-3)
    assert mm["pairs"][1] == {
        "seed": 1,
        "method_error": 21.0,
        "baseline_error": 23.0,
        "difference": -2.0,
    }
    assert (mm["dataset"], mm["profile"], mm["ratio"]) == ("fashion-mnist", "exp", 100)
    assert found["LDAM-DRW vs ERM"]["n"] == 2


def test_a_grid_without_these_methods_has_no_claims(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for i, rec in enumerate(runs("focal", {0: 20.0, 1: 21.0}) + runs("cb-rs", {0: 23.0, 1: 22.0})):
        (folder / f"run{i}.json").write_text(json.dumps(rec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = write_report(folder, tmp_path / "report")
    assert [p.name for p in paths if not p.name.endswith(".png")] == ["report.md"]
    assert not (tmp_path / "report" / "claims.json").exists()
    assert "Claims" not in paths[-1].read_text(encoding="utf-8")


def test_claims_json_is_not_read_as_a_record(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    for i, rec in enumerate(grid_records()):
        (folder / f"run{i}.json").write_text(json.dumps(rec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(folder)  # claims.json lands in the results folder
        first = (folder / "claims.json").read_text(encoding="utf-8")
        text = write_report(folder)[-1].read_text(encoding="utf-8")
    assert f"{len(grid_records())} runs from" in text
    assert (folder / "claims.json").read_text(encoding="utf-8") == first


def test_two_copies_of_a_seed_give_the_same_value_whichever_comes_first():
    from longtail.bench.claims import values_by_seed

    base = {"method": "mm-drw", "dataset": "d", "profile": "exp", "ratio": 100, "seed": 0}
    a = dict(base, bench="table1", metrics={"top1_error": 20.0})
    b = dict(base, bench="mm-ablation", metrics={"top1_error": 30.0})
    assert values_by_seed([a, b]) == values_by_seed([b, a])
    assert len(values_by_seed([a, b])) == 1


def test_fractional_ratios_are_settings_of_their_own():
    from longtail.bench.records import aggregate

    recs = [
        {
            "method": "erm",
            "dataset": "d",
            "profile": "exp",
            "ratio": r,
            "seed": 0,
            "metrics": {"top1_error": e},
        }
        for r, e in ((12.5, 10.0), (12, 20.0))
    ]
    out = aggregate(recs)
    assert set(out) == {("erm", "d", "exp", 12.5), ("erm", "d", "exp", 12)}
    assert out[("erm", "d", "exp", 12.5)]["mean"] == 10.0
