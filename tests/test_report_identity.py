"""The report averages only seeds of one run: copies count once, other recipes are other tables.

Records here look like the engine's: a resolved config, and for new records an identity (the
config less bookkeeping, plus the data's fingerprint).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest

from longtail.bench.records import classification
from longtail.bench.report import (
    METHOD_ORDER,
    ablation_markdown,
    aggregate,
    dir_markdown,
    load_records,
    table1_markdown,
    write_report,
)
from longtail.data import registry
from longtail.engine.config import METHODS
from longtail.engine.regression import REGRESSION_METHODS

BOOKKEEPING = ("data_dir", "threads", "download", "eval_batch_size", "compile")


def record(
    method="erm",
    seed=0,
    error=20.0,
    *,
    epochs=8,
    n_max=None,
    loss_kwargs=None,
    fingerprint=None,
    profile="exp",
    ratio=100.0,
    bench="table1",
):
    """A Table 1 record; with ``fingerprint``, a new one (identity and data), else a legacy one."""
    spec = METHODS.get(method)
    config = {
        "dataset": "fashion-mnist",
        "data_dir": None,
        "profile": profile,
        "ratio": ratio,
        "n_max": n_max,
        "method": method,
        "loss_kwargs": {**(spec.loss_kwargs if spec else {}), **(loss_kwargs or {})},
        "seed": seed,
        "epochs": epochs,
        "batch_size": 128,
        "lr": 0.1,
        "model": "resnet20",
        "width": 8,
        "eval_batch_size": 1000,
        "many_threshold": 100,
        "few_threshold": 20,
        "compile": False,
        "threads": None,
        "download": True,
        "preset": "quick",
    }
    rec = {
        "method": method,
        "dataset": "fashion-mnist",
        "profile": profile,
        "ratio": ratio,
        "seed": seed,
        "epochs": epochs,
        "seconds": 1.0,
        "config": config,
        "metrics": {"top1_error": error, "balanced_accuracy": 100.0 - error},
        "bench": bench,
    }
    if fingerprint is not None:
        identity = {k: v for k, v in config.items() if k not in BOOKKEEPING}
        rec["identity"] = {**identity, "data": fingerprint}
        rec["data"] = {"fingerprint": fingerprint, "train_size": 100, "test_size": 10}
    return rec


def write(path: Path, rec: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def rows(markdown: str) -> dict[str, list[str]]:
    """``{first cell: other cells}`` of the markdown table rows."""
    out = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("|:"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0]] = cells[1:]
    return out


def captions(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("**Table 1")]


def report_text(folder: Path, tmp_path: Path) -> str:
    paths = write_report(folder, tmp_path / "report")
    return paths[-1].read_text(encoding="utf-8")


# ---- copies of a run --------------------------------------------------------------------------
@pytest.mark.parametrize("fingerprint", [None, "ab12cd34ef56"])
def test_a_record_copied_into_a_subfolder_counts_once(tmp_path, fingerprint):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "results"
    write(folder / "erm_s0.json", record(seed=0, error=20.0, fingerprint=fingerprint))
    write(folder / "erm_s1.json", record(seed=1, error=22.0, fingerprint=fingerprint))
    write(folder / "backup" / "erm_s0.json", record(seed=0, error=20.0, fingerprint=fingerprint))
    text = report_text(folder, tmp_path)
    table = text[text.index("**Table 1") : text.index("**Tail view")]
    assert rows(table)["ERM"][0] == "21.00 ± 1.41"  # not 20.67 over "3 seeds"
    assert "2 seeds" in captions(table)[0] and "3 seeds" not in text
    assert text.count("2 runs from") == 1 and "1 more record was a copy" in text


def test_seed_counts_are_distinct_seeds():
    recs = [record(seed=s, error=e) for s, e in [(0, 20.0), (1, 22.0), (0, 20.0), (1, 22.0)]]
    assert aggregate(recs)[("erm", "fashion-mnist", "exp", 100)]["n"] == 2
    text = table1_markdown(recs, tail_view=False)
    assert "2 seeds" in text and "4 seeds" not in text


def _disagreeing_copies(folder: Path, first: str, second: str) -> None:
    """One run written twice, into sub-folders ``first`` and ``second``: the copy in ``first``
    ran on 1 thread, the other on 2, and their metrics differ."""
    one = record(seed=0, error=20.0)
    one["environment"] = {"torch": "2.13.0", "cpu": "Some CPU", "threads": 1}
    two = record(seed=0, error=21.25)
    two["environment"] = {"torch": "2.13.0", "cpu": "Some CPU", "threads": 2}
    write(folder / first / "erm_s0.json", one)
    write(folder / second / "erm_s0.json", two)


def test_copies_with_different_metrics_are_listed_and_chosen_by_content(tmp_path):
    """The copy kept depended on folder names, and only a warning said so."""
    texts = []
    for first, second in (("a", "b"), ("b", "a")):  # the folder names swapped
        folder = tmp_path / f"results_{first}"
        _disagreeing_copies(folder, first, second)
        with pytest.warns(UserWarning, match=r"1 run was recorded more than once"):
            paths = write_report(folder, tmp_path / f"out_{first}")
        texts.append(paths[-1].read_text(encoding="utf-8"))
    for first, text in zip("ab", texts, strict=True):
        table = text[text.index("**Table 1") : text.index("**Copies that disagree")]
        assert rows(table)["ERM"] == ["20.00"]  # whatever the folders are called
        note = text[text.index("**Copies that disagree") : text.index("**Tail view")]
        other = "b" if first == "a" else "a"
        assert (
            f"- ERM, Fashion-MNIST long-tailed 100, seed 0: `{first}/erm_s0.json` top-1 error 20 "
            f"(*used*; torch 2.13.0, Some CPU, 1 thread); `{other}/erm_s0.json` top-1 error 21.25 "
            "(torch 2.13.0, Some CPU, 2 threads)"
        ) in note


def test_copies_with_different_metrics_are_one_clean_note_on_stderr(tmp_path, capsys):
    from longtail.cli import main

    _disagreeing_copies(tmp_path / "results", "a", "b")
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("longtail report: note: 1 run was recorded more than once")
    assert len(err.strip().splitlines()) == 1 and "Warning" not in err and ".py" not in err


def test_distinct_runs_keeps_the_same_copy_in_any_order():
    from longtail.bench.records import distinct_runs

    a, b = record(seed=0, error=20.0), record(seed=0, error=21.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (kept,) = distinct_runs([a, b])
        assert distinct_runs([b, a]) == [kept]


def test_counts_of_one_are_singular(tmp_path):
    """A 1-epoch run of one seed reads "1 epoch", "1 seed", "1 run" (not "1 epochs", ...)."""
    pytest.importorskip("matplotlib")
    (caption,) = captions(table1_markdown([record(epochs=1)], tail_view=False))
    assert "1 epoch," in caption and "1 seed " in caption and "1 epochs" not in caption
    (caption,) = captions(table1_markdown([record(epochs=2)], tail_view=False))
    assert "2 epochs," in caption
    folder = tmp_path / "results"
    write(folder / "erm_s0.json", record(epochs=1, fingerprint="ab12"))
    text = report_text(folder, tmp_path)
    assert "1 run from" in text and "1 runs" not in text and "1 epochs" not in text


# ---- different configurations are never averaged ---------------------------------------------
def test_records_differing_in_epochs_are_separate_tables():
    recs = [record(seed=s, error=e, epochs=8) for s, e in [(0, 20.0), (1, 22.0)]]
    recs += [record(seed=0, error=10.0, epochs=16)]
    text = table1_markdown(recs, tail_view=False)
    first, second = captions(text)
    assert first.startswith("**Table 1a.**") and second.startswith("**Table 1b.**")
    assert "8 epochs" in first and "2 seeds" in first and "16 epochs" in second
    for caption in (first, second):  # the recipe of each table, in its caption
        assert "preset quick" in caption and "n_max 6000" in caption and "resnet20" in caption
    a, b = text.split("**Table 1b.**")
    assert rows(a)["ERM"] == ["21.00 ± 1.41"] and rows(b)["ERM"] == ["10.00"]
    assert "17.33" not in text  # the mean of all three
    with pytest.raises(ValueError, match="configuration"):
        aggregate(recs)


def test_records_differing_in_n_max_are_separate_tables():
    recs = [record(seed=0, error=20.0), record(seed=0, error=30.0, n_max=1000)]
    first, second = captions(table1_markdown(recs, tail_view=False))
    assert "n_max 6000 (the dataset's default)" in first and "n_max 1000" in second
    assert "25.00" not in table1_markdown(recs)


def test_records_differing_in_an_unstated_recipe_key_say_how():
    recs = [record(seed=0, error=20.0), record(seed=0, error=30.0)]
    recs[1]["config"]["lr"] = 0.05
    first, second = captions(table1_markdown(recs, tail_view=False))
    assert "lr 0.1" in first and "lr 0.05" in second


def test_records_differing_in_loss_kwargs_are_separate_rows():
    recs = [record("mm-drw", s, e) for s, e in [(0, 20.0), (1, 22.0)]]
    recs += [record("mm-drw", 0, 30.0, loss_kwargs={"beta": 1.2, "delta_minus": 0.6})]
    recs += [record("focal", 0, 25.0)]  # its registry kwargs (γ = 1): no parameters shown
    text = table1_markdown(recs, tail_view=False)
    assert len(captions(text)) == 1  # one recipe: one table, the kwargs make rows
    table = rows(text)
    # the only 2-seed cell has no peer of as many seeds to be best among: no bold
    assert table["MM-DRW"] == ["21.00 ± 1.41"]
    assert table["MM-DRW (β=1.2, δ⁻=0.6)"] == ["30.00 (1)"]  # 1 seed of the 2 beside it
    assert "Focal" in table and "24.00" not in text  # no mean over both MM-DRW rows
    assert list(table)[1:] == ["Focal", "MM-DRW", "MM-DRW (β=1.2, δ⁻=0.6)"]


def test_a_loss_argument_given_at_its_default_is_the_same_run():
    """--loss-kw beta=1.5 (MM's default) made a row "MM-DRW (β=1.5)" beside "MM-DRW", and split
    a 3-seed claim into a 1-seed and a 2-seed one."""
    from longtail.bench.claims import claims_markdown

    recs = [record("mm-drw", 0, 20.0, loss_kwargs={"beta": 1.5}, fingerprint="f")]
    recs += [record("mm-drw", s, e, fingerprint="f") for s, e in [(1, 22.0), (2, 21.0)]]
    recs += [record("erm", s, e, fingerprint="f") for s, e in [(0, 25.0), (1, 26.0), (2, 27.0)]]
    for r in recs:
        r["config"]["loss"] = r["identity"]["loss"] = "mm" if r["method"] == "mm-drw" else "ce"
    table = rows(table1_markdown(recs, tail_view=False))
    assert table["MM-DRW"] == ["**21.00 ± 1.00**"] and "MM-DRW (β=1.5)" not in table
    claims = claims_markdown(recs)
    assert "MM-DRW vs ERM" in claims and "inconclusive (1 seed)" not in claims
    assert "| 3 |" in claims.split("MM-DRW vs ERM")[1].splitlines()[0]
    # a value other than the default is another run, as before
    other = record("mm-drw", 0, 30.0, loss_kwargs={"beta": 1.2}, fingerprint="f")
    other["config"]["loss"] = other["identity"]["loss"] = "mm"
    assert "MM-DRW (β=1.2)" in rows(table1_markdown([*recs, other], tail_view=False))


def test_the_mm_ablation_stays_a_grid_of_its_kwargs_and_splits_by_recipe():
    def abl(beta, delta, error, epochs=8):
        kwargs = {"beta": beta, "delta_minus": delta}
        return record("mm-drw", 0, error, loss_kwargs=kwargs, epochs=epochs, bench="mm-ablation")

    recs = [abl(1.2, 0.6, 20.0), abl(1.5, 0.6, 21.0), abl(1.2, 0.6, 10.0, epochs=16)]
    text = ablation_markdown(recs)
    first, second = text.split("\n\n**MM ablation")
    assert "MM-DRW, Fashion-MNIST long-tailed 100" in first and "8 epochs" in first
    assert rows(first)["β \\ δ⁻"] == ["0.6"] and rows(first)["1.2"] == ["**20.00**"]
    assert "16 epochs" in second and rows(second)["1.2"] == ["10.00"]  # one cell: no bold
    assert "15.00" not in text


def test_dir_records_differing_in_epochs_are_separate_tables():
    def dir_rec(seed, mae, epochs):
        return {
            "method": "vanilla",
            "dataset": "diamonds",
            "profile": "dir",
            "ratio": 942.0,
            "seed": seed,
            "epochs": epochs,
            "bench": "dir",
            "config": {
                "dataset": "diamonds",
                "method": "vanilla",
                "epochs": epochs,
                "seed": seed,
                "preset": "quick",
                "backbone": "mlp",
                "hidden": [128, 128],
                "threads": seed + 1,
            },
            "metrics": {"mae": mae},
        }

    recs = [dir_rec(0, 700.0, 45), dir_rec(1, 710.0, 45), dir_rec(0, 600.0, 90)]
    text = dir_markdown(recs)
    parts = text.split("**Deep imbalanced regression")[1:]
    assert len(parts) == 2  # thread counts are bookkeeping: seeds 0 and 1 are one config
    assert "45 epochs" in parts[0] and "MLP 128-128" in parts[0] and "2 seeds" in parts[0]
    assert "90 epochs" in parts[1] and "| 600 |" in parts[1]
    assert "670" not in text


# ---- legacy records ---------------------------------------------------------------------------
def test_legacy_records_are_labelled_and_not_merged_with_fingerprinted_ones():
    legacy = [record(seed=s, error=e) for s, e in [(0, 20.0), (1, 22.0)]]
    new = [record(seed=s, error=e, fingerprint="ab12") for s, e in [(0, 10.0), (1, 12.0)]]
    first, second = captions(table1_markdown(new + legacy, tail_view=False))
    assert "without a data fingerprint" not in first and "11.00" in table1_markdown(new)
    assert "without a data fingerprint" in second
    text = table1_markdown(new + legacy, tail_view=False)
    assert rows(text.split("**Table 1b.**")[1])["ERM"] == ["21.00 ± 1.41"]
    assert "16.00" not in text  # the mean over both kinds
    assert "without a data fingerprint" not in table1_markdown(new)


def test_records_on_other_data_are_not_seeds_of_one_run():
    recs = [
        record(seed=0, error=20.0, fingerprint="aaaa1111"),
        record(seed=1, error=30.0, fingerprint="bbbb2222"),
    ]
    text = table1_markdown(recs, tail_view=False)
    header = rows(text)["Method"]
    assert header == ["Fashion-MNIST long-tailed 100 (data aaaa1111)",
                      "Fashion-MNIST long-tailed 100 (data bbbb2222)"]  # fmt: skip
    assert "25.00" not in text


# ---- the registries ---------------------------------------------------------------------------
def test_report_order_follows_the_method_registry():
    assert METHOD_ORDER == tuple(METHODS)
    methods = [*METHODS, "loss:zeta", "loss:alpha"]
    recs = [record(m, 0, 20.0 + i) for i, m in enumerate(methods)]
    body = list(rows(table1_markdown(recs, tail_view=False)))[1:]
    assert body == [spec.label for spec in METHODS.values()] + ["loss:alpha", "loss:zeta"]
    saved = dict(METHODS)
    try:  # a registry in another order: the report follows it
        METHODS.clear()
        METHODS.update(reversed(saved.items()))
        body = list(rows(table1_markdown(recs, tail_view=False)))[1:]
    finally:
        METHODS.clear()
        METHODS.update(saved)
    assert body == [spec.label for spec in reversed(saved.values())] + ["loss:alpha", "loss:zeta"]


def test_labels_come_from_the_registries(monkeypatch):
    renamed = dataclasses.replace(METHODS["erm"], label="Plain cross-entropy")
    monkeypatch.setitem(METHODS, "erm", renamed)
    info = dataclasses.replace(registry.get_dataset("fashion-mnist"), label="Zalando FM")
    monkeypatch.setitem(registry._REGISTRY, "fashion-mnist", info)
    text = table1_markdown([record("erm", 0, 20.0)], tail_view=False)
    assert rows(text)["Method"] == ["Zalando FM long-tailed 100"]
    assert "Plain cross-entropy" in rows(text)
    vanilla = dataclasses.replace(REGRESSION_METHODS["vanilla"], label="Least squares")
    monkeypatch.setitem(REGRESSION_METHODS, "vanilla", vanilla)
    dir_rec = {"method": "vanilla", "bench": "dir", "dataset": "agedb", "metrics": {"mae": 7.0}}
    assert "| Least squares | 7.00 |" in dir_markdown([dir_rec])


def test_the_committed_results_still_report(tmp_path):
    pytest.importorskip("matplotlib")
    root = Path(__file__).resolve().parents[1] / "results"
    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if not folders:
        pytest.skip("no committed results")
    for folder in folders:
        if not load_records(folder):
            continue  # a grid still running on this machine (committed folders hold records)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no copies, no junk: no warning at all
            paths = write_report(folder, tmp_path / folder.name)
        text = paths[-1].read_text(encoding="utf-8")
        assert "|:---|" in text  # at least one table
        if classification(load_records(folder)):
            assert "Recipe: preset " in text
        # records written before identities were recorded are labelled; newer ones need not be
        legacy = any("identity" not in rec for rec in load_records(folder))
        assert ("without a data fingerprint" in text) == legacy
        assert all(p.stat().st_size > 0 for p in paths)


# ---- plots ------------------------------------------------------------------------------------
def test_plots_draw_other_recipes_as_their_own_lines(tmp_path):
    pytest.importorskip("matplotlib")
    from longtail.bench.plots import _lines, plot_ablation, plot_per_class_error
    from longtail.bench.records import group_tables

    recs = [record(seed=s, error=20.0, epochs=8) for s in (0, 1)] + [record(epochs=16)]
    for rec in recs:
        rec["metrics"]["per_class_error"] = [10.0 * c for c in range(10)]
    lines = _lines(group_tables(recs), ("fashion-mnist", "exp", 100))
    assert [(label, len(runs)) for label, runs in lines] == [
        ("ERM [epochs 8]", 2),  # the two seeds of 8 epochs
        ("ERM [epochs 16]", 1),
    ]
    png = plot_per_class_error(recs, tmp_path / "pc.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    abl = [dict(r, bench="mm-ablation", method="mm-drw") for r in recs]
    for rec in abl:
        rec["config"] = dict(rec["config"], loss_kwargs={"beta": 1.2, "delta_minus": 0.6})
    assert plot_ablation(abl, tmp_path / "abl.png").read_bytes()[:4] == b"\x89PNG"


# ---- plots of settings whose names collide -----------------------------------------------------
def test_two_datasets_with_one_file_stem_get_a_plot_each(tmp_path):
    """/a/faces.npz and /b/faces.npz: one PNG name before, the second plot overwrote the first."""
    pytest.importorskip("matplotlib")
    folder = tmp_path / "results"
    datasets = {"a": "/data/a/faces.npz", "b": "/data/b/faces.npz", "c": "fashion-mnist"}
    for name, dataset in datasets.items():
        rec = record(seed=0, error=20.0, fingerprint=f"{name * 4}1234")
        for part in (rec, rec["config"], rec["identity"]):
            part["dataset"] = dataset
        rec["metrics"]["per_class_error"] = [10.0 * c for c in range(10)]
        write(folder / f"{name}.json", rec)
    paths = write_report(folder, tmp_path / "report")
    heat_maps = [p.name for p in paths if p.name.startswith("per_class_heatmap_")]
    assert len(heat_maps) == len(set(heat_maps)) == 3  # the heat maps beside them too
    pngs = [p.name for p in paths if p.suffix == ".png" and p.name not in heat_maps]
    assert len(pngs) == len(set(pngs)) == 3
    faces = [n for n in pngs if "faces" in n]
    assert len(faces) == 2 and all(n.startswith("per_class_error_faces_exp100_") for n in faces)
    assert "per_class_error_fashion-mnist_exp100.png" in pngs  # no other with its name
    text = paths[-1].read_text(encoding="utf-8")
    sections = text.split("## Per-class error")[1].split("\n\n**")[1:]
    for dataset in ("/data/a/faces.npz", "/data/b/faces.npz"):
        (section,) = [s for s in sections if f"(`{dataset}`)" in s.splitlines()[0]]
        link = section.split("](")[1].split(")")[0]
        assert link in faces
        faces.remove(link)  # each section links its own plot
    assert faces == []


# ---- class names on the per-class plot ----------------------------------------------------------
def _tick_labels(monkeypatch, recs, tmp_path) -> list[str]:
    from longtail.bench import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or Path(path))
    plots.plot_per_class_error(recs, tmp_path / "pc.png")
    (fig,) = figures
    return [t.get_text() for t in fig.axes[-1].get_xticklabels()]


def test_the_per_class_plot_names_classes_by_their_labels_in_the_data(tmp_path, monkeypatch):
    """Classes 0, 1, 2 of data labelled {3, 7, 42} were shown as 0, 1, 2."""
    pytest.importorskip("matplotlib")
    recs = []
    for seed in (0, 1):
        rec = record(seed=seed, error=20.0, fingerprint="ab12")
        for part in (rec, rec["config"], rec["identity"]):
            part["dataset"] = "/data/three.npz"
        rec["metrics"]["per_class_error"] = [5.0, 10.0, 40.0]
        rec["class_counts"] = [100, 30, 3]
        rec["classes"] = [3, 7, 42]
        recs.append(rec)
    assert _tick_labels(monkeypatch, recs, tmp_path) == ["3", "7", "42"]
    # a registered dataset keeps the registry's names
    fashion = record(seed=0, error=20.0)
    fashion["metrics"]["per_class_error"] = [1.0] * 10
    fashion["classes"] = list(range(10))
    labels = _tick_labels(monkeypatch, [fashion], tmp_path)
    assert labels[:2] == ["T-shirt/top", "Trouser"]


def test_caption_gives_the_head_size_the_runs_used():
    """The default head depends on the data at hand (5500 with 500 per class held out): the
    caption states what the records say was used, not the registry's 6000."""
    recs = [record(seed=s, error=20.0 + s, fingerprint="ab12") for s in (0, 1)]
    for r in recs:
        r["data"] = {**r.get("data", {}), "n_max": 5500}
    (caption,) = captions(table1_markdown(recs, tail_view=False))
    assert "n_max 5500 (the default for this data)" in caption and "6000" not in caption


def test_caption_with_a_natural_column_beside_a_cut_one():
    """A natural-profile run keeps every example (its n_max is None): beside an exp column cut
    to 121, the caption gives 121 and says so, not "the whole head class"."""
    cut = record(seed=0, error=20.0, fingerprint="ab12", profile="exp", ratio=4.0)
    cut["data"] = {**cut.get("data", {}), "n_max": 121}
    natural = record(seed=0, error=19.0, fingerprint="ab12", profile="natural", ratio=1.0)
    natural["data"] = {**natural.get("data", {}), "n_max": None}
    (caption,) = captions(table1_markdown([cut, natural], tail_view=False))
    assert "n_max 121 (the default for this data; the natural profile keeps every" in caption
    assert "whole head class" not in caption
    (caption,) = captions(table1_markdown([natural], tail_view=False))
    assert "n_max: none (the natural profile keeps every example)" in caption


def test_each_claims_caption_states_its_own_settings_n_max():
    """The claims of a natural-profile column beside a cut one: each claims table's caption
    gives the n_max of its own runs (a stranger's natural-profile claims were captioned with the
    cut column's "n_max 121", which their records do not have)."""
    from longtail.bench.claims import claims_markdown

    recs = []
    for method, error in (("erm", 20.0), ("ldam-drw", 18.0)):
        cut = record(method, 0, error, fingerprint="ab12", profile="exp", ratio=4.0)
        cut["data"] = {**cut["data"], "n_max": 121}
        natural = record(method, 0, error - 1, fingerprint="ab12", profile="natural", ratio=1.0)
        natural["data"] = {**natural["data"], "n_max": None}
        recs += [cut, natural]
    caps = [line for line in claims_markdown(recs).splitlines() if line.startswith("**Claims,")]
    assert len(caps) == 2
    (nat,) = [c for c in caps if "natural" in c.split(".**")[0]]
    (cut,) = [c for c in caps if "natural" not in c.split(".**")[0]]
    assert "n_max: none (the natural profile keeps every example)" in nat and "121" not in nat
    assert "n_max 121 (the default for this data)" in cut


def test_copies_equal_in_the_shown_metric_say_what_differs(tmp_path):
    """Copies of equal top-1 error read as identical; the note names what differs (here the
    ECE), and a copy made by several DDP processes says so."""
    one = record(seed=0, error=20.0)
    two = record(seed=0, error=20.0)
    two["metrics"] = {**two["metrics"], "ece": two["metrics"].get("ece", 0.0) + 3.25}
    two["world_size"] = 2
    for rec in (one, two):
        rec["environment"] = {"torch": "2.13.0", "cpu": "Some CPU", "threads": 1}
    write(tmp_path / "results" / "a" / "erm_s0.json", one)
    write(tmp_path / "results" / "b" / "erm_s0.json", two)
    with pytest.warns(UserWarning, match="recorded more than once"):
        text = report_text(tmp_path / "results", tmp_path)
    note = text[text.index("**Copies that disagree") : text.index("**Tail view")]
    assert "(they differ in ece)" in note and "2 DDP processes" in note


def test_a_one_process_table_beside_a_ddp_one_says_world_size_1(tmp_path):
    """A one-process run's identity has no world_size: beside a DDP run's table its caption
    and its plot lines say "world_size 1", not nothing (caption) or "another recipe" (plots)."""
    from longtail.bench.plots import _lines
    from longtail.bench.records import group_tables

    one = record(seed=0, error=20.0, fingerprint="ab12")
    ddp = record(seed=0, error=21.0, fingerprint="ab12")
    ddp["identity"] = {**ddp["identity"], "world_size": 2}
    ddp["world_size"] = 2
    texts = captions(table1_markdown([one, ddp], tail_view=False))
    assert len(texts) == 2 and sorted("world_size 1" in t for t in texts) == [False, True]
    assert sorted("world_size 2" in t for t in texts) == [False, True]
    tables = group_tables(classification([one, ddp]))
    setting = tables[0].columns[0].setting
    labels = sorted(label for label, _ in _lines(tables, setting))
    assert labels == ["ERM [world_size 1]", "ERM [world_size 2]"], labels
