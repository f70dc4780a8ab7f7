"""`longtail inspect` and :mod:`longtail.data.inspect`: the statistics by hand, every kind of
data set, the JSON and the plot, and bad input (one line, exit status 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from longtail.cli import main
from longtail.data.inspect import effective_number, format_inspection, gini, inspect_dataset
from longtail.engine import prepare_data
from longtail.engine.config import make_config
from longtail.metrics import regions_of_counts

FASHION = Path("/usr/share/datasets/fashion-mnist")
PNG = b"\x89PNG\r\n\x1a\n"

# source labels 3, 7, 42, 50 (not 0..C-1) with 300 / 60 / 10 / 1 training images:
# many (> 100), medium, few (< 20), few
LABELS = (3, 7, 42, 50)
COUNTS = (300, 60, 10, 1)


def write_npz(path: Path, labels=LABELS, counts=COUNTS) -> str:
    y = np.repeat(labels, counts)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(len(y), 6, 6), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y, x_test=x[: len(labels)], y_test=np.array(labels))
    return str(path)


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return write_npz(tmp_path_factory.mktemp("inspect") / "skewed.npz")


@pytest.fixture(scope="module")
def balanced(tmp_path_factory) -> str:
    return write_npz(tmp_path_factory.mktemp("inspect") / "even.npz", (0, 1, 2), (40, 40, 40))


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def fails_cleanly(argv: list[str], capsys, *fragments: str) -> str:
    rc, _, err = run(argv, capsys)
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("longtail inspect: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


# ------------------------------------------------------------------------- the statistics
def test_gini_by_hand():
    # [1, 2, 3, 4]: Σ_i Σ_j |n_i - n_j| = 2 (1+2+3+1+2+1) = 20; 2 K² mean = 2 · 16 · 2.5 = 80
    assert gini([4, 1, 3, 2]) == pytest.approx(0.25)
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 30]) == pytest.approx(2 / 3)  # one class of K holds all: 1 - 1/K
    # 300/60/10/1: sorted 1, 10, 60, 300, Σ i n_(i) = 1 + 20 + 180 + 1200 = 1401
    assert gini(COUNTS) == pytest.approx(2 * 1401 / (4 * 371) - 5 / 4)
    # the mean absolute difference definition, computed the long way
    n = np.array(COUNTS, dtype=float)
    pairs = np.abs(n[:, None] - n[None, :]).sum()
    assert gini(COUNTS) == pytest.approx(pairs / (2 * len(n) ** 2 * n.mean()))


def test_effective_number_by_hand():
    # β = 0.9: E_n = (1 - 0.9^n) / 0.1: 0, 1, 1.9, 2.71
    assert effective_number([0, 1, 2, 3], beta=0.9) == pytest.approx([0, 1, 1.9, 2.71])
    # β = 0.9999, n = 10000: (1 - 0.9999^10000) / 0.0001
    (e,) = effective_number([10_000])
    assert e == pytest.approx((1 - 0.9999**10_000) / 0.0001)
    assert effective_number([0, 7], beta=0.0) == [0.0, 1.0]
    # β = 1 is the limit E_n = n, as class_weights("effective", beta=1) gives inverse weights
    assert effective_number([0, 1, 7], beta=1.0) == [0.0, 1.0, 7.0]
    assert effective_number([3], beta=1 - 1e-12) == pytest.approx([3.0])
    for bad in (1.0 + 1e-9, -0.1, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            effective_number([1], beta=bad)


# -------------------------------------------------------------------------- classification
def test_npz_with_unequal_classes_and_source_labels(npz, capsys):
    report = inspect_dataset(npz)
    rows = report["classes"]
    assert [r["label"] for r in rows] == list(LABELS)
    assert [r["count"] for r in rows] == list(COUNTS)
    assert [r["region"] for r in rows] == ["many", "medium", "few", "few"]
    assert [r["test_count"] for r in rows] == [1, 1, 1, 1]
    assert report["imbalance_ratio"] == 300.0
    assert report["gini"] == pytest.approx(gini(COUNTS))
    assert report["regions"] == {"many": 1, "medium": 1, "few": 2}
    assert report["region_examples"] == {"many": 300, "medium": 60, "few": 11}
    assert report["head_order"] == [0, 1, 2, 3]
    eff = [r["effective_number"] for r in rows]
    assert eff == pytest.approx(effective_number(COUNTS))
    # class-balanced weights: 1 / E_n, summing to the number of classes
    weights = [r["balanced_weight"] for r in rows]
    assert sum(weights) == pytest.approx(4)
    assert weights[3] / weights[0] == pytest.approx(eff[0] / eff[3])
    # naturally imbalanced data: its own imbalance is the benchmark setting
    assert any("bench table1" in c and "--settings natural" in c for c in report["next"])
    text = format_inspection(report)
    assert "source label" in text and "imbalance ratio 300" in text
    assert "1 / 1 / 2 classes" in text


def test_balanced_data_suggests_the_long_tailed_profiles(balanced):
    report = inspect_dataset(balanced)
    assert report["imbalance_ratio"] == 1.0 and report["gini"] == 0.0
    assert report["regions"] == {"many": 0, "medium": 3, "few": 0}
    bench = [c for c in report["next"] if "bench table1" in c]
    # 40 examples a class: a ratio of 100 needs a head of 100 (exp100 and step100 were
    # suggested, and then refused by train)
    assert bench and "--settings exp10,step10 " in bench[0]


@pytest.mark.parametrize(
    "counts, settings",
    [
        ((200, 200, 200), ["exp100", "step100", "exp10", "step10"]),
        ((40, 40, 40), ["exp10", "step10"]),
        ((8, 8), ["exp8"]),  # no setting of Table 1 fits: the largest long-tailed ratio
        ((1, 1), []),  # nothing can be cut: the data as it is
    ],
)
def test_every_suggested_setting_is_one_the_data_can_give(tmp_path, counts, settings):
    path = write_npz(tmp_path / "even.npz", tuple(range(len(counts))), counts)
    commands = inspect_dataset(path)["next"]
    bench = [c for c in commands if "bench table1" in c]
    got = bench[0].split("--settings ")[1].split()[0].split(",") if bench else []
    assert got == settings, commands
    for setting in got:  # each one prepares: train would take it
        profile = "step" if setting.startswith("step") else "exp"
        ratio = float(setting.removeprefix(profile))
        prepare_data(make_config("cpu", dataset=path, profile=profile, ratio=ratio))
    if not settings:
        assert commands and all("--profile natural" in c for c in commands)


def test_profile_is_exactly_what_a_run_trains_on(npz, capsys):
    rc, out, err = run(["inspect", npz, "--profile", "exp", "--ratio", "10", "--json"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    data = prepare_data(make_config("cpu", dataset=npz, profile="exp", ratio=10.0))
    assert [r["count"] for r in report["classes"]] == data["counts"].tolist()
    assert report["head_order"] == list(data["head_order"])
    assert report["n_max"] == data["n_max"]
    assert report["imbalance_ratio"] == pytest.approx(data["imbalance_ratio"])
    assert report["setting"] == "exp10" and report["profile"] == "exp"
    assert any("--settings exp10" in c for c in report["next"])
    assert any("--profile exp --ratio 10" in c for c in report["next"])


def test_the_text_names_the_options_that_train_on_what_it_shows(npz, capsys):
    # the plain view is the data's own counts, which plain `train` does not use: say so
    rc, out, err = run(["inspect", npz], capsys)
    assert rc == 0, err
    assert "what `--profile natural` trains on; `longtail train` without --profile" in out
    n_max = prepare_data(make_config("cpu", dataset=npz, profile="exp", ratio=10.0))["n_max"]
    for given in ([], ["--n-max", str(n_max)]):  # the same head size, given: said so
        rc, out, err = run(["inspect", npz, "--profile", "exp", "--ratio", "10", *given], capsys)
        assert rc == 0, err
        assert (
            f"(what `--profile exp --ratio 10{' ' if given else ''}{' '.join(given)}` trains on)"
            in out
        )


def test_json_is_the_library_report(npz, capsys):
    rc, out, _ = run(["inspect", npz, "--json", "--beta", "0.99"], capsys)
    assert rc == 0
    assert json.loads(out) == json.loads(json.dumps(inspect_dataset(npz, beta=0.99)))


def test_plot_file_written(npz, tmp_path, capsys):
    path = tmp_path / "sub" / "counts.png"
    rc, out, err = run(["inspect", npz, "--plot", str(path)], capsys)
    assert rc == 0, err
    assert path.read_bytes().startswith(PNG)
    assert f"wrote {path}" in out
    assert "rank" in out and "region" in out


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST not installed")
def test_registered_fashion_mnist(capsys):
    rc, out, err = run(["inspect", "fashion-mnist", "--no-download"], capsys)
    assert rc == 0, err
    assert "Trouser" in out and "Ankle boot" in out
    assert "--settings exp100,step100,exp10,step10" in out
    rc, out, err = run(
        ["inspect", "fashion-mnist", "--no-download", "--profile", "exp", "--ratio", "100"],
        capsys,
    )
    assert rc == 0, err
    report = inspect_dataset("fashion-mnist", download=False, profile="exp", ratio=100)
    counts = [r["count"] for r in report["classes"]]
    assert counts[0] == 6000 and counts[-1] == 60 and report["imbalance_ratio"] == 100
    assert [r["name"] for r in report["classes"]][:2] == ["T-shirt/top", "Trouser"]
    assert [r["region"] for r in report["classes"]] == list(regions_of_counts(counts))


# ------------------------------------------------------------------------------ regression
@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> str:
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 1500
    a = rng.normal(size=n)
    y = np.exp(1 + 0.8 * a + 0.3 * rng.normal(size=n))  # right-skewed: a long tail of targets
    path = tmp_path_factory.mktemp("inspect") / "skewed.csv"
    lines = ["a,b,y", *(f"{u:.6f},{v:.6f},{t:.6f}" for u, v, t in zip(a, -a, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_regression_csv_histogram_with_the_dir_bins(csv, tmp_path, capsys):
    from longtail.engine.regression import make_regression_config, prepare_regression_data

    plot = tmp_path / "targets.png"
    argv = ["inspect", csv, "--target", "y", "--bins", "2", "--json", "--plot", str(plot)]
    rc, out, err = run(argv, capsys)
    assert rc == 0, err
    report = json.loads(out)
    data = prepare_regression_data(make_regression_config("quick", dataset=csv, target="y", bins=2))
    bins = report["bins"]
    assert report["task"] == "regression" and report["bin_width"] == 2
    assert [b["count"] for b in bins] == data.train_hist
    assert sum(b["count"] for b in bins) == report["train_size"] == len(data.y_train)
    assert [b["region"] for b in bins] == list(data.regions.regions)
    assert [b["low"] for b in bins] == data.edges.tolist()[:-1]
    assert report["imbalance_ratio"] == pytest.approx(data.ratio)
    assert report["gini"] == pytest.approx(gini([b["count"] for b in bins]))
    assert any(c.startswith("longtail bench dir") and "--target y" in c for c in report["next"])
    assert plot.read_bytes().startswith(PNG)
    rc, out, _ = run(["inspect", csv, "--target", "y"], capsys)
    assert rc == 0 and "label bins" in out and "bench dir" in out


def test_a_profile_is_refused_for_regression(csv, capsys):
    fails_cleanly(["inspect", csv, "--target", "y", "--profile", "exp"], capsys, "--profile")


# ----------------------------------------------------------------------------- multi-label
def test_multilabel_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = (rng.random((400, 4)) < np.array([0.6, 0.3, 0.05, 0.02])).astype(np.uint8)
    y[:3] = 1
    x = np.zeros((len(y), 6, 6), dtype=np.uint8)
    names = np.array(["cat", "dog", "owl", "yak"])
    path = tmp_path / "tags.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:40], y_test=y[:40], label_names=names)
    rc, out, err = run(["inspect", str(path), "--json"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["task"] == "multilabel"
    # the engine sets 10% of the training examples apart for validation: the counts are the rest
    assert report["train_size"] + report["val_size"] == 400
    counts = [r["count"] for r in report["classes"]]
    assert sum(counts) == pytest.approx(report["labels_per_example"] * report["train_size"])
    assert [r["name"] for r in report["classes"]] == list(names)
    assert [r["region"] for r in report["classes"]] == list(regions_of_counts(counts))
    assert any("bench multilabel" in c for c in report["next"])


# ------------------------------------------------------------------------------- bad input
def test_missing_file(tmp_path, capsys):
    fails_cleanly(["inspect", str(tmp_path / "nope.npz")], capsys, "nope.npz", "not a file")
    fails_cleanly(["inspect", str(tmp_path / "nope.csv"), "--target", "y"], capsys, "nope.csv")


def test_unknown_dataset_names_the_close_ones(capsys):
    fails_cleanly(["inspect", "fashion-mnst"], capsys, "'fashion-mnst'", "Did you mean")
    fails_cleanly(["inspect", "cifar-1O"], capsys, "Did you mean 'cifar-10'")


def test_options_of_another_kind_of_data(npz, capsys):
    fails_cleanly(["inspect", npz, "--target", "y"], capsys, "`target`", "classification")
    fails_cleanly(["inspect", npz, "--ratio", "10"], capsys, "`ratio`", "profile")
    fails_cleanly(["inspect", npz, "--beta", "1.5"], capsys, "`beta`")
    fails_cleanly(["inspect", npz, "--profile", "natural", "--ratio", "10"], capsys, "natural")


def test_unwritable_plot(npz, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    fails_cleanly(["inspect", npz, "--plot", str(tmp_path / "file" / "x.png")], capsys, "--plot")


def test_the_plot_format_follows_the_suffix_and_another_suffix_is_refused(npz, tmp_path, capsys):
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml")):
        path = tmp_path / f"counts{suffix}"
        rc, _, err = run(["inspect", npz, "--plot", str(path)], capsys)
        assert rc == 0, err
        assert path.read_bytes().startswith(magic)
    fails_cleanly(["inspect", npz, "--plot", str(tmp_path / "counts.txt")], capsys, ".png, .pdf")
    assert not (tmp_path / "counts.txt").exists()


def test_effective_total_is_the_sum(npz):
    report = inspect_dataset(npz, beta=0.9)
    total = sum((1 - 0.9**n) / 0.1 for n in COUNTS)
    assert math.isclose(report["effective_total"], total)


def test_inspect_realizes_the_ratio_asked_for_and_says_when_it_cannot(tmp_path, capsys):
    # classes of 27, 13, 6: the head 27 would give 27 / 13 / 6 (ratio 4.5); 24 gives 24 / 12 / 6
    small = write_npz(tmp_path / "small.npz", (0, 1, 2), (27, 13, 6))
    rc, out, err = run(["inspect", small, "--profile", "exp", "--ratio", "4", "--json"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["n_max"] == 24 and report["imbalance_ratio"] == 4.0 and report["ratio"] == 4
    assert [r["count"] for r in report["classes"]] == [24, 12, 6]
    assert "realized ratio" not in format_inspection(report)
    # classes of 3, 2, 1 and ratio 1.5: only the head 2 fits (2 / 1 / 1), ratio 2
    tiny = write_npz(tmp_path / "tiny.npz", (0, 1, 2), (3, 2, 1))
    with pytest.warns(UserWarning, match="realized imbalance ratio is 2, not 1.5"):
        report = inspect_dataset(tiny, profile="exp", ratio=1.5)
    assert report["imbalance_ratio"] == 2.0 and report["ratio"] == 1.5
    assert "its realized ratio n_max / n_min is 2, not 1.5" in format_inspection(report)
