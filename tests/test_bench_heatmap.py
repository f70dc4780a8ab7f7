"""The per-class error heat map of a Table 1 report: methods × classes, head → tail.

Records are made by hand; the expected matrix is computed here from their per-class errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from longtail.bench.plots import per_class_error_matrix, plot_per_class_heatmap
from longtail.bench.report import write_report

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ["ant", "bee", "cat", "dog", "eel"]
COUNTS = [40, 500, 8, 150, 60]  # head → tail: bee (500), dog, eel, ant, cat (8)
METHODS = ["erm", "ldam-drw", "mm-drw"]
LABELS = ["ERM", "LDAM-DRW", "MM-DRW"]  # as the tables name them


def per_class(method: int, seed: int) -> list[float | None]:
    errors = [10.0 * method + 3.0 * c + 7.0 * seed for c in range(len(NAMES))]
    if method == 2 and seed == 1:
        errors[0] = None  # one seed without an ant in its test set: the other seed's value
    return errors


def record(method: str, seed: int, *, dataset: str = "toy.npz") -> dict:
    i = METHODS.index(method)
    errors = per_class(i, seed)
    config = {"method": method, "loss_kwargs": {}, "seed": seed, "epochs": 8, "preset": "cpu"}
    return {
        "method": method,
        "dataset": dataset,
        "profile": "exp",
        "ratio": 100.0,
        "seed": seed,
        "epochs": 8,
        "seconds": 1.0,
        "bench": "table1",
        "config": {**config, "dataset": dataset, "profile": "exp", "ratio": 100.0},
        "identity": {**config, "dataset": dataset, "profile": "exp", "ratio": 100.0, "data": "f1"},
        "data": {"fingerprint": "f1"},
        "class_counts": COUNTS,
        "classes": NAMES,
        "metrics": {
            "top1_error": float(np.mean([e for e in errors if e is not None])),
            "balanced_accuracy": 50.0,
            "per_class_error": errors,
        },
    }


@pytest.fixture
def records() -> list[dict]:
    return [record(m, s) for m in METHODS for s in (0, 1)]


def expected_matrix() -> list[list[float]]:
    """Mean over the seeds of each method, columns by training count, largest first."""
    order = sorted(range(len(NAMES)), key=lambda c: COUNTS[c], reverse=True)
    rows = []
    for i in range(len(METHODS)):
        by_seed = [per_class(i, s) for s in (0, 1)]
        row = []
        for c in order:
            values = [e[c] for e in by_seed if e[c] is not None]
            row.append(sum(values) / len(values))
        rows.append(row)
    return rows


def test_the_matrix_is_the_seed_mean_of_each_class_head_first(records):
    m = per_class_error_matrix(records)
    assert m.names == ["bee", "dog", "eel", "ant", "cat"]
    assert m.counts == [500, 150, 60, 40, 8]
    assert m.regions == ["many", "many", "medium", "medium", "few"]
    assert m.rows == LABELS and m.seeds == [2, 2, 2]
    np.testing.assert_allclose(m.errors, expected_matrix())
    assert m.errors[2][3] == per_class(2, 0)[0]  # ant of mm-drw: its one seed with a value


def test_the_png_is_written_with_class_names_as_tick_labels(records, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = {}
    savefig = Figure.savefig

    def keep(fig, *args, **kwargs):  # look at the figure the function saves
        ax = fig.axes[0]
        drawn["x"] = [t.get_text() for t in ax.get_xticklabels()]
        drawn["y"] = [t.get_text() for t in ax.get_yticklabels()]
        drawn["cells"] = [t.get_text() for t in ax.texts]
        drawn["colorbar"] = any(a.get_ylabel() == "test error (%)" for a in fig.axes[1:])
        drawn["image"] = ax.get_images()[0].get_array()
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    path = plot_per_class_heatmap(records, tmp_path / "heat.png")
    assert path.read_bytes()[:8] == PNG
    assert drawn["x"] == ["bee", "dog", "eel", "ant", "cat"]
    assert drawn["y"] == LABELS
    want = expected_matrix()
    assert drawn["cells"] == [f"{v:.1f}" for row in want for v in row]
    np.testing.assert_allclose(np.asarray(drawn["image"]), want)
    assert drawn["colorbar"]


def test_a_class_without_test_examples_is_marked(records, tmp_path):
    for rec in records:
        rec["metrics"]["per_class_error"][4] = None  # no eel in any test set
    m = per_class_error_matrix(records)
    assert all(math.isnan(row[2]) for row in m.errors)
    assert plot_per_class_heatmap(records, tmp_path / "h.png").read_bytes()[:8] == PNG


def test_without_counts_the_classes_keep_index_order(records):
    for rec in records:
        del rec["class_counts"]
    m = per_class_error_matrix(records)
    assert m.names == NAMES and m.counts is None and m.regions is None


def test_registry_names_and_a_setting_by_name(tmp_path):
    recs = [record(m, s, dataset="fashion-mnist") for m in METHODS for s in (0, 1)]
    for rec in recs:  # fashion-mnist has 10 classes
        rec["metrics"]["per_class_error"] = [float(c) for c in range(10)]
        rec["class_counts"] = [10 * (10 - c) for c in range(10)]
    m = per_class_error_matrix(recs, "fashion-mnist_exp100")
    assert m.names[:2] == ["T-shirt/top", "Trouser"] and m.names[-1] == "Ankle boot"
    with pytest.raises(ValueError, match="setting"):
        per_class_error_matrix(recs, "cifar10_exp100")


def test_the_report_links_a_heat_map_per_setting(records, tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    step = [dict(r, profile="step") for r in records]
    for rec in step:
        rec["identity"] = {**rec["identity"], "profile": "step"}
    for i, rec in enumerate(records + step):
        (folder / f"r{i}.json").write_text(json.dumps(rec))
    written = write_report(folder, tmp_path / "out")
    names = {p.name for p in written}
    assert {"per_class_heatmap_toy_exp100.png", "per_class_heatmap_toy_step100.png"} <= names
    text = Path(tmp_path / "out" / "report.md").read_text()
    section = text.split("## Per-class error")[1].split("\n## ")[0]
    assert "![per_class_heatmap_toy_exp100.png](per_class_heatmap_toy_exp100.png)" in section
    assert "![per_class_heatmap_toy_step100.png](per_class_heatmap_toy_step100.png)" in section
