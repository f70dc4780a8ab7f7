"""The DIR engine on tiny data the tests write: methods, resume, atomic results, CLI, report."""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from longtail.bench.report import (
    dir_markdown,
    dir_sensitivity_markdown,
    load_records,
    plot_dir_error,
    plot_dir_sensitivity,
)
from longtail.bench.runner import DIR_METHODS, dir_jobs, dir_sensitivity_jobs
from longtail.cli import main as cli_main
from longtail.engine import RunInterrupted, TrainConfig, TrainingDiverged, fingerprint
from longtail.engine.regression import (
    REGRESSION_METHODS,
    RegressionConfig,
    TargetTransform,
    better,
    make_regression_config,
    prepare_regression_data,
    run_identity,
    train_regression,
)
from longtail.engine.regression.data import check_regression_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_csv(path: Path, n: int = 700, seed: int = 0, nan_at: int | None = None) -> Path:
    """A learnable table with a right-skewed target: most rows are cheap, a few expensive."""
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=(3, n))
    y = 10 * np.exp(0.9 * x1 + 0.3 * x2) + rng.normal(scale=0.5, size=n)
    y = np.clip(y, 0.5, 120)
    lines = ["x1,x2,x3,colour,y"]
    for i in range(n):
        yi = "nan" if i == nan_at else f"{y[i]:.4f}"
        lines.append(f"{x1[i]:.5f},{x2[i]:.5f},{x3[i]:.5f},{'red' if i % 2 else 'blue'},{yi}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> str:
    return str(write_csv(tmp_path_factory.mktemp("dir") / "skewed.csv"))


TINY = dict(
    target="y",
    drop=("colour",),
    bins=5.0,
    val_per_bin=4,
    test_per_bin=4,
    epochs=3,
    batch_size=64,
    hidden=(16, 16),
    lr=1e-2,
    num_groups=5,
    many_threshold=40,
    few_threshold=10,
    threads=1,
)


def tiny(csv: str, **kw) -> RegressionConfig:
    return RegressionConfig(**{"dataset": csv, **TINY, **kw})


def cli_options(csv: str) -> list[str]:
    return [
        *("--dataset", csv, "--target", "y", "--drop", "colour", "--bins", "5"),
        *("--hidden", "16,16", "--batch-size", "64", "--lr", "0.01", "--num-groups", "5"),
        *("--many-threshold", "40", "--few-threshold", "10", "--threads", "1"),
    ]


KEYS = {"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds", "config", "metrics"}
REGION_KEYS = {
    f"{m}_{r}" for m in ("mae", "mse", "gm", "pearson") for r in ("many", "medium", "few")
}


def read_log(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------------------- data
def test_data_split_is_skewed_for_training_and_balanced_for_test(csv):
    data = prepare_regression_data(tiny(csv))
    assert data.kind == "table" and data.feature_names == ("x1", "x2", "x3")
    n = len(data.y_train) + len(data.y_val) + len(data.y_test)
    assert n == 700
    hist = np.asarray(data.train_hist)
    assert hist.max() > 40 and hist[hist > 0].min() < 10  # many- and few-shot bins
    test_counts = np.bincount(np.floor(data.y_test.numpy() / 5).astype(int))
    assert test_counts.max() <= 4  # balanced: at most test_per_bin per bin
    assert set(data.regions.regions) == {"many", "medium", "few"}


@pytest.mark.parametrize("kind", ["standardize", "log", "none"])
def test_target_transform_round_trip(kind):
    y = torch.tensor([1.0, 3.0, 10.0, 120.0], dtype=torch.float64)
    tt = TargetTransform(kind, y)
    z = tt.forward(y)
    assert z.dtype == torch.float32
    torch.testing.assert_close(tt.inverse(z), y, rtol=1e-6, atol=1e-5)
    if kind != "none":
        base = y.log() if kind == "log" else y
        assert abs(float(z.double().mean())) < 1e-6 and float(base.std()) > 0


# ------------------------------------------------------------------------------------- training
@pytest.mark.parametrize("method", list(REGRESSION_METHODS))
def test_every_method_trains(method, csv, tmp_path):
    record = train_regression(tiny(csv, method=method), tmp_path / "run", progress=False)
    assert KEYS <= set(record)
    assert record["profile"] == "dir" and record["dataset"] == "skewed"
    assert record["method"] == method == record["config"]["method"]
    m = record["metrics"]
    assert {"mae", "mse", "gm", "pearson", "last_mae", "best_epoch", "val_mae"} <= set(m)
    assert REGION_KEYS | {"last_mae_few", "last_gm_many"} <= set(m)
    assert np.isfinite(m["mae"]) and 0 < m["mae"] < 120  # target units (the target is 0.5..120)
    assert m["gm"] <= m["mae"]  # geometric mean <= arithmetic mean
    assert len(m["per_bin_mae"]) == len(record["bin_edges"]) - 1 == len(record["train_hist"])
    assert sum(record["test_hist"]) == len(prepare_regression_data(tiny(csv)).y_test)
    hist = [c for c in record["train_hist"] if c > 0]
    assert record["ratio"] == pytest.approx(max(hist) / min(hist))
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    log = read_log(tmp_path / "run")
    assert [r["epoch"] for r in log] == [0, 1, 2]
    assert all(np.isfinite(r["loss"]) for r in log)
    # model selection: the best validation MAE's epoch, its weights tested
    vals = [r["val_mae"] for r in log]
    assert m["best_epoch"] == int(np.argmin(vals)) and m["val_mae"] == pytest.approx(min(vals))
    if method.startswith("group-dir"):
        assert {"contrastive", "mse", "soft"} <= set(log[0])
    if method == "bmc":
        assert log[-1]["noise_sigma"] != pytest.approx(1.0)  # σ is learned


def test_training_learns(csv):
    first = train_regression(tiny(csv, epochs=1, lr=1e-4), progress=False)["metrics"]["mae"]
    trained = train_regression(tiny(csv, epochs=12), progress=False)["metrics"]["mae"]
    assert trained < 0.6 * first


def test_same_seed_same_result_and_seeds_differ(csv):
    a = train_regression(tiny(csv, method="group-dir"), progress=False)
    b = train_regression(tiny(csv, method="group-dir"), progress=False)
    c = train_regression(tiny(csv, method="group-dir", seed=1), progress=False)
    assert a["metrics"] == b["metrics"]
    assert a["metrics"]["mae"] != c["metrics"]["mae"]


@pytest.mark.parametrize("method", ["lds-fds", "bmc", "group-dir-lds"])
def test_killed_and_resumed_equals_uninterrupted(method, csv, tmp_path):
    config = tiny(csv, method=method, epochs=4, lr_milestones=(3,))
    whole = train_regression(config, tmp_path / "whole", progress=False)

    def kill_after_epoch_1(epoch, row):
        if epoch == 1:
            raise RunInterrupted("simulated kill")

    with pytest.raises(RunInterrupted):
        train_regression(config, tmp_path / "killed", progress=False, callback=kill_after_epoch_1)
    assert not (tmp_path / "killed" / "result.json").exists()
    state = torch.load(tmp_path / "killed" / "checkpoint.pt")
    task = state["task"]
    assert state["epoch"] == 2 and task["best"]["model"] is not None
    if method == "lds-fds":  # the FDS statistics travel in the model's state
        assert float(task["model"]["fds.num_samples_tracked"].sum()) > 0
    if method == "bmc":
        assert "noise_sigma" in task["criterion"]
    resumed = train_regression(config, tmp_path / "killed", progress=False)
    assert resumed["metrics"] == whole["metrics"]
    w = torch.load(tmp_path / "whole" / "checkpoint.pt")["task"]
    r = torch.load(tmp_path / "killed" / "checkpoint.pt")["task"]
    for part in ("model", "criterion"):
        assert all(torch.equal(w[part][k], r[part][k]) for k in w[part])
    assert [x["epoch"] for x in read_log(tmp_path / "killed")] == [0, 1, 2, 3]


def test_model_selection_skips_diverged_epochs():
    nan = float("nan")
    assert better(1.0, 2.0) and not better(2.0, 1.0) and not better(1.0, 1.0)
    assert better(5.0, nan) and not better(nan, 5.0) and not better(nan, nan)


def test_finished_run_is_not_retrained(csv, tmp_path):
    config = tiny(csv, epochs=1)
    first = train_regression(config, tmp_path / "r", progress=False)
    calls = []
    again = train_regression(
        config, tmp_path / "r", progress=False, callback=lambda e, r: calls.append(e)
    )
    assert again == json.loads(json.dumps(first)) and calls == []


def test_under_torchrun_it_says_it_has_no_ddp_before_touching_the_folder(
    csv, tmp_path, monkeypatch
):
    """Each torchrun process trained the whole run alone; the second then blamed the first's
    lock ("another run is running there") and left the folder behind."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"one process .*without torchrun.*WORLD_SIZE=2"):
        train_regression(tiny(csv, epochs=1), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert train_regression(tiny(csv, epochs=1), None, progress=False)["epochs"] == 1


def test_folder_of_another_run_is_refused(csv, tmp_path):
    train_regression(tiny(csv, epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="holds a run with a different config"):
        train_regression(tiny(csv, epochs=1, method="l1"), tmp_path / "r", progress=False)
    other = tmp_path / "classification"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    with pytest.raises(ValueError, match="holds a run with a different config"):
        train_regression(tiny(csv, epochs=1), other, progress=False)


def test_half_written_result_is_a_clear_error(csv, tmp_path):
    out = tmp_path / "r"
    train_regression(tiny(csv, epochs=1), out, progress=False)
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporaries
    text = (out / "result.json").read_text()
    (out / "result.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match="damaged"):
        train_regression(tiny(csv, epochs=1), out, progress=False)
    assert (out / "checkpoint.pt").exists()


def test_resuming_after_the_csv_was_replaced_is_refused(tmp_path):
    path = write_csv(tmp_path / "prices.csv", seed=0)
    config = tiny(str(path), epochs=3)

    def kill_after_epoch_0(epoch, row):
        if epoch == 0:
            raise RunInterrupted("simulated kill")

    with pytest.raises(RunInterrupted):
        train_regression(config, tmp_path / "run", progress=False, callback=kill_after_epoch_0)
    write_csv(path, seed=1)  # other rows, same path, same config
    with pytest.raises(ValueError, match=r"checkpoint of another run or of other data.*data:"):
        train_regression(config, tmp_path / "run", progress=False)
    # a finished run is not handed out for other data either
    done = train_regression(config, tmp_path / "done", progress=False)
    write_csv(path, seed=2)
    with pytest.raises(ValueError, match="finished record of another run or of other data"):
        train_regression(config, tmp_path / "done", progress=False)
    write_csv(path, seed=1)  # the same rows again: the same run, its record is returned
    assert train_regression(config, tmp_path / "done", progress=False) == done


def test_record_identity_is_the_config_and_the_data_used(csv, tmp_path):
    config = tiny(csv, epochs=1)
    record = train_regression(config, tmp_path / "r", progress=False)
    data = prepare_regression_data(config)
    tensors = (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
    assert (
        record["identity"]
        == run_identity(config)
        == {
            **config.identity(),
            "data": fingerprint(*tensors),
        }
    )
    assert record["data"] == {
        "fingerprint": fingerprint(*tensors),
        "train_size": len(data.y_train),
        "val_size": len(data.y_val),
        "test_size": len(data.y_test),
    }
    assert record["train_regions"] == list(data.regions.regions)


def test_a_run_killed_at_several_points_resumes_to_the_same_metrics_and_a_complete_log(
    csv, tmp_path
):
    config = tiny(csv, method="lds-fds", epochs=5, lr_milestones=(3,))
    whole = train_regression(config, tmp_path / "whole", progress=False)
    out = tmp_path / "killed"
    for kill_at in (0, 2, 3):

        def kill(epoch, row, kill_at=kill_at):
            if epoch == kill_at:
                raise RunInterrupted("simulated kill")

        with pytest.raises(RunInterrupted):
            train_regression(config, out, progress=False, callback=kill)
        assert len(read_log(out)) == kill_at + 1 and not (out / "result.json").exists()
        # a kill after the log line of the next epoch, and one that cut a line in half
        with open(out / "log.jsonl", "a") as f:
            f.write(json.dumps({"epoch": kill_at + 1, "loss": 0.0}) + "\n" + '{"epoch": 9, "lo')
    resumed = train_regression(config, out, progress=False)
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["identity"] == whole["identity"]

    def comparable(rows):
        return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in rows]

    assert [r["epoch"] for r in read_log(out)] == [0, 1, 2, 3, 4]
    assert comparable(read_log(out)) == comparable(read_log(tmp_path / "whole"))


def test_a_diverging_run_stops_with_a_hint(csv, tmp_path):
    with pytest.raises(TrainingDiverged, match="--lr"):
        train_regression(tiny(csv, lr=1e30, epochs=3), tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "result.json").exists()


def write_large_target_csv(path: Path) -> Path:
    """Targets 1e9 + k (k = 0..90, k < 30 three times over): float32 has two values for them."""
    k = np.concatenate([np.arange(91), np.arange(30), np.arange(30)])
    rows = [f"{0.01 * i:.2f},{1_000_000_000 + i}" for i in k]
    path.write_text("x,y\n" + "\n".join(rows) + "\n")
    return path


def test_large_targets_keep_their_values_through_the_engine(tmp_path):
    path = write_large_target_csv(tmp_path / "big.csv")
    config = RegressionConfig(
        dataset=str(path), target="y", bins=10.0, val_per_bin=3, test_per_bin=3, epochs=1,
        hidden=(4,), batch_size=64, many_threshold=20, few_threshold=5, threads=1,
    )  # fmt: skip
    data = prepare_regression_data(config)
    y = torch.cat([data.y_train, data.y_val, data.y_test])
    assert y.dtype == torch.float64 and torch.unique(y).numel() == 91
    assert data.edges[0].item() == 1e9 and data.edges[-1].item() == 1e9 + 100
    # bins 0-2 hold 30 rows each (24 for training), bins 3-8 ten (4), bin 9 one (1)
    assert data.train_hist == [24, 24, 24, 4, 4, 4, 4, 4, 4, 1]
    assert data.regions.regions == ("many",) * 3 + ("few",) * 7
    record = train_regression(config, progress=False)
    assert record["bin_edges"][0] == 1e9 and record["test_hist"] == [3] * 9 + [0]
    assert len(record["metrics"]["per_bin_mae"]) == 10


def test_a_bin_width_making_too_many_bins_is_refused_before_training(csv, tmp_path):
    with pytest.raises(ValueError, match=r"`bins`.*would make 1,19\d,\d{3} bins.*a width of 2 "):
        prepare_regression_data(tiny(csv, bins=1e-4))
    assert cli_main(["train", "--task", "regression", *cli_options(csv), "--bins", "1e-9"]) == 2


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty file"), (b"x1,y\n", "only a header"), (b"x1,y\n\x00\x01\x02", "binary")],
)
def test_empty_header_only_and_binary_csv_are_refused_naming_the_file(
    content, message, tmp_path, capsys
):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        train_regression(tiny(str(path)), progress=False)
    assert str(path) in str(err.value)
    args = ["train", "--task", "regression", "--dataset", str(path), "--target", "y"]
    assert cli_main([*args, "--out", str(tmp_path / "run")]) == 2
    text = capsys.readouterr().err
    assert str(path) in text and message in text
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ bad input
def test_bad_input_gets_a_clear_message(csv, tmp_path):
    with pytest.raises(ValueError, match="'price'"):
        train_regression(tiny(csv, target="price"), progress=False)
    nan_csv = str(write_csv(tmp_path / "nan.csv", nan_at=17))
    with pytest.raises(ValueError, match=r"finite numbers.*rows \[17\]"):
        train_regression(tiny(nan_csv), progress=False)
    with pytest.raises(ValueError, match=r"num_groups.*at most 24"):  # 120-wide range, 5-wide bins
        train_regression(tiny(csv, method="group-dir", num_groups=500), progress=False)
    with pytest.raises(ValueError, match=r"num_groups.*>= 2"):
        tiny(csv, method="group-dir", num_groups=1)
    with pytest.raises(ValueError, match="Did you mean 'group-dir'"):
        tiny(csv, method="group_dir")
    with pytest.raises(ValueError, match=r"colour.*drop"):
        train_regression(tiny(csv, drop=()), progress=False)
    with pytest.raises(ValueError, match="target"):
        RegressionConfig(dataset=csv)  # a CSV needs its target column
    with pytest.raises(ValueError, match="dataset"):
        RegressionConfig(dataset="diamond")
    with pytest.raises(ValueError, match="backbone"):
        tiny(csv, backbone="cnn")
    with pytest.raises(FileNotFoundError):
        train_regression(tiny(str(tmp_path / "missing.csv")), progress=False)


def test_data_that_cannot_measure_dir_is_refused_or_warned(csv, tmp_path):
    const = tmp_path / "const.csv"
    const.write_text("x,y\n" + "".join(f"{i},5\n" for i in range(60)))
    with pytest.raises(ValueError, match=r"training targets.*not all equal.*all 5"):
        train_regression(tiny(str(const), drop=()), progress=False)
    with pytest.raises(ValueError, match=r"`bins`.* at least 2 label bins.*got 1000, one bin"):
        train_regression(tiny(csv, bins=1000.0), progress=False)
    assert not list(tmp_path.glob("*/config.json"))  # refused before anything is written
    with pytest.warns(UserWarning, match=r"only \d+ of the \d+ label bins .* Wider --bins"):
        check_regression_data(tiny(csv, bins=0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_regression_data(tiny(csv))  # the tests' own bins cover the data
    # bins that each give a row, but a table too small for errors that mean anything
    small = write_csv(tmp_path / "small.csv", n=40)
    with pytest.warns(UserWarning, match=r"left \d+ test rows and \d+ validation rows .* so few"):
        check_regression_data(tiny(str(small), bins=40.0))


def test_presets_and_schedule():
    q = make_regression_config("quick")
    assert (q.dataset, q.target, q.bins, q.backbone) == ("diamonds", "price", 100.0, "mlp")
    assert q.milestones() == (round(2 * q.epochs / 3), round(8 * q.epochs / 9))
    p = make_regression_config("paper")
    assert (p.epochs, p.batch_size, p.lr, p.milestones()) == (90, 256, 1e-3, (60, 80))
    assert [p.lr_at(e) for e in (0, 59, 60, 79, 80)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5]
    )
    assert RegressionConfig.from_dict(q.to_dict()).identity() == q.identity()


# --------------------------------------------------------------------------------- CNN backbone
def write_agedb(root: Path, seed: int = 0) -> Path:
    """An AgeDB-DIR-format folder: agedb.csv (age, path, split) and 10×10 .npy face stand-ins."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    rows = ["age,path,split"]
    ages = np.concatenate([rng.integers(20, 30, 70), rng.integers(30, 60, 20)])
    for i, age in enumerate(ages):
        split = "train" if i % 6 else ("val" if i % 12 else "test")
        img = (rng.random((10, 10, 3)) * 60 + (age - 20) * 4).astype(np.uint8)  # brighter: older
        np.save(root / "img" / f"{i}.npy", img)
        rows.append(f"{age},img/{i}.npy,{split}")
    (root / "agedb.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("method", ["vanilla", "group-dir"])
def test_cnn_backbone_on_image_dir_data(method, tmp_path):
    root = write_agedb(tmp_path / "agedb")
    config = RegressionConfig(
        dataset="agedb",
        data_dir=str(root),
        method=method,
        model="small-cnn",
        width=4,
        image_size=8,
        padding=1,
        epochs=2,
        batch_size=16,
        num_groups=4,
        threads=1,
    )
    assert config.backbone == "cnn" and config.target == "age" and config.bins == 1.0
    record = train_regression(config, tmp_path / "run", progress=False)
    assert np.isfinite(record["metrics"]["mae"]) and record["bin_width"] == 1.0
    assert record["dataset"] == "agedb" and record["target"] == "age"
    with pytest.raises(ValueError, match="data_dir"):
        train_regression(RegressionConfig(dataset="agedb"), progress=False)


# ---------------------------------------------------------------------------------------- CLI
def test_cli_train_regression_resume_and_errors(csv, tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["train", "--task", "regression", *cli_options(csv), "--method", "group-dir-lds"]
    args += ["--epochs", "2", "--seed", "3", "--out", str(out)]
    assert cli_main(args) == 0
    text = capsys.readouterr().out
    assert "test MAE" in text and "many/medium/few" in text and "last epoch" in text
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "group-dir-lds" and saved["lds"] and saved["seed"] == 3
    assert saved["task"] == "regression" and saved["hidden"] == [16, 16]
    assert cli_main(args) == 0  # finished: the record, no training, and it says so
    said = capsys.readouterr()
    assert "(trained before, in" in said.out and "nothing was trained now" in said.err
    base = ["train", "--task", "regression", *cli_options(csv), "--epochs", "1"]
    for extra, message in [
        (["--method", "nope"], "but got 'nope'"),
        (["--target", "price"], "'price'"),
        (["--method", "group-dir", "--num-groups", "500"], "num_groups"),
        (["--ratio", "10"], "--ratio"),
        (["--loss-kw", "a=1"], "--loss-kw"),
        (["--drop", "x3"], "colour"),
    ]:
        assert cli_main([*base, *extra, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("longtail train: error:")
    nan_csv = str(write_csv(tmp_path / "nan.csv", nan_at=3))
    assert cli_main(["train", "--task", "regression", "--dataset", nan_csv, "--target", "y"]) == 2
    assert "finite" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()  # bad input leaves no half-made run folder


def test_cli_bench_dir_and_sensitivity_with_report(csv, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "dir", *cli_options(csv), "--seeds", "2", "--epochs", "2"]
    args += ["--out", str(out), "--no-progress"]
    assert cli_main(args) == 0
    records = sorted(out.glob("*.json"))
    assert len(records) == 2 * len(DIR_METHODS)
    recs = [json.loads(p.read_text()) for p in records]
    assert {r["bench"] for r in recs} == {"dir"} and {r["seed"] for r in recs} == {0, 1}
    assert {r["method"] for r in recs} == set(DIR_METHODS)
    report = (out / "report.md").read_text()
    assert "## Deep imbalanced regression" in report and "Group-DIR + LDS" in report
    assert "best validation MAE" in report and "last epoch" in report
    png = out / "dir_error_skewed_dir{}.png".format(f"{recs[0]['ratio']:g}")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    stamps = {p: p.stat().st_mtime_ns for p in records}
    assert cli_main(args) == 0  # finished runs are skipped: their records are not rewritten
    assert {p: p.stat().st_mtime_ns for p in records} == stamps
    capsys.readouterr()

    sens = tmp_path / "sens"
    args = ["bench", "dir-sensitivity", *cli_options(csv), "--seeds", "1", "--epochs", "1"]
    args += ["--sweep-groups", "3,5,8", "--out", str(sens), "--no-progress"]
    assert cli_main(args) == 0
    recs = [json.loads(p.read_text()) for p in sens.glob("*.json")]
    assert len(recs) == 7 and {r["bench"] for r in recs} == {"dir-sensitivity"}
    report = (sens / "report.md").read_text()
    assert "## Group-DIR sensitivity" in report and "G=5, λ1=1, λ2=1 (centre)" in report
    assert "## Deep imbalanced regression" not in report  # the sweep is not a DIR table row
    (png,) = sens.glob("dir_sensitivity_*.png")
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert cli_main(["bench", "dir", "--dataset", csv, "--out", str(tmp_path / "x")]) == 2
    assert "target" in capsys.readouterr().err


# ------------------------------------------------------------------------------- bench, report
def test_grids():
    jobs = dir_jobs("data/prices.csv", seeds=2, target="price")
    assert [j.name for j in jobs[:2]] == ["prices_vanilla_s0", "prices_l1_s0"]
    assert len(jobs) == 14 and all(j.extra == {"bench": "dir"} for j in jobs)
    # the grid's methods are the method table's, in its order (one list of DIR methods)
    assert [j.config.method for j in jobs if j.config.seed == 0] == list(REGRESSION_METHODS)
    assert tuple(DIR_METHODS) == tuple(REGRESSION_METHODS)
    assert all(spec.label for spec in REGRESSION_METHODS.values())
    assert jobs[0].config.preset == "quick"
    sens = dir_sensitivity_jobs(seeds=1)
    points = [(j.config.num_groups, j.config.lambda1, j.config.lambda2) for j in sens]
    assert points[0] == (20, 1.0, 1.0) and len(set(points)) == len(points) == 7
    assert {p[0] for p in points} == {10, 20, 40}
    assert {p[1] for p in points} == {p[2] for p in points} == {0.5, 1.0, 2.0}


def dir_record(method, seed, mae, bench="dir", **config):
    edges = [0.0, 10.0, 20.0, 30.0, 40.0]
    return {
        "method": method,
        "dataset": "toy",
        "profile": "dir",
        "ratio": 20.0,
        "seed": seed,
        "epochs": 5,
        "seconds": 1.0,
        "bench": bench,
        "target": "price",
        "bin_width": 10.0,
        "selection": "best validation MAE",
        "config": {"num_groups": 20, "lambda1": 1.0, "lambda2": 1.0, **config},
        "bin_edges": edges,
        "train_hist": [200, 50, 10, 0],
        "test_hist": [5, 5, 5, 0],
        "metrics": {
            "mae": mae,
            "mae_many": mae - 1,
            "mae_medium": mae,
            "mae_few": mae + 3,
            "gm": mae / 2,
            "last_mae": mae + 0.5,
            "per_bin_mae": [mae - 1, mae, mae + 3, None],
        },
    }


def test_report_parts_on_handmade_records(tmp_path):
    pytest.importorskip("matplotlib")
    recs = [
        dir_record(m, s, 5.0 + s + (m == "vanilla")) for m in ("vanilla", "bmc") for s in (0, 1)
    ]
    sens = [
        dir_record("group-dir", 0, 4.0 + g / 10, "dir-sensitivity", num_groups=g)
        for g in (10, 20, 40)
    ]
    sens += [dir_record("group-dir", 0, 4.5, "dir-sensitivity", lambda1=a) for a in (0.5, 2.0)]
    text = dir_markdown(recs + sens)
    assert "toy (price), training imbalance 20:1 over 10-wide bins" in text
    assert text.index("Vanilla (MSE)") < text.index("Balanced MSE (BMC)")
    assert "| Balanced MSE (BMC) | **5.50 ± 0.71** |" in text  # mean ± std over 2 seeds
    table = dir_sensitivity_markdown(recs + sens)
    assert "G=20, λ1=1, λ2=1 (centre) | 6.00 |" in table and "G=10" in table
    assert dir_sensitivity_markdown(recs) == ""
    a = plot_dir_error(recs, tmp_path / "err.png")
    b = plot_dir_sensitivity(sens, tmp_path / "sens.png")
    assert a.read_bytes()[:8] == b.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(ValueError, match="dir-sensitivity"):
        plot_dir_sensitivity(recs, tmp_path / "none.png")
    folder = tmp_path / "records"
    folder.mkdir()
    for i, r in enumerate(recs):
        (folder / f"{i}.json").write_text(json.dumps(r))
    assert len(load_records(folder)) == 4


def test_the_sensitivity_centre_is_the_one_the_bench_ran_not_a_tie_of_counts():
    """Only G swept (10, 20, 40 once each): the report called the first G read the centre."""
    centre = {"num_groups": 20, "lambda1": 1.0, "lambda2": 1.0}
    sens = [
        {
            **dir_record("group-dir", 0, 4.0 + g / 10, "dir-sensitivity", num_groups=g),
            "centre": centre,
        }
        for g in (10, 40, 20)  # the centre read last
    ]
    table = dir_sensitivity_markdown(sens)
    assert "G=20, λ1=1, λ2=1 (centre)" in table and "G=10, λ1=1, λ2=1 (centre)" not in table
    jobs = dir_sensitivity_jobs(seeds=1, groups=(10, 40), lambda1s=(1.0,), lambda2s=(1.0,))
    assert all(j.extra["centre"] == centre for j in jobs)


def test_the_histogram_draws_no_bar_for_an_empty_bin():
    plt = pytest.importorskip("matplotlib.pyplot")
    from longtail.bench.plots import _histogram

    rec = {**dir_record("vanilla", 0, 5.0), "train_hist": [200, 50, 1, 0]}
    fig, ax = plt.subplots()
    try:
        _histogram(ax, rec, rec["bin_edges"])
        bars = sorted((p.get_x(), p.get_height()) for p in ax.patches)
        assert bars == [(0.0, 200), (10.0, 50), (20.0, 1)]  # none at 30-40
        assert ax.get_ylim()[0] < 1  # the one-example bin is visible on the log axis
    finally:
        plt.close(fig)


def test_a_default_that_differs_between_recipes_is_named_not_printed_as_none():
    auto = [dir_record("vanilla", s, 5.0, bins=None) for s in (0, 1)]
    given = [{**dir_record("vanilla", s, 6.0, bins=5.0), "bin_width": 5.0} for s in (0, 1)]
    text = dir_markdown(auto + given)
    assert "Recipe: 5 epochs, bins: automatic (10 wide)." in text
    assert "Recipe: 5 epochs, bins 5." in text and "None" not in text


def test_the_schedule_and_a_step_that_never_happens_are_printed_and_recorded(csv, capsys):
    rec = train_regression(tiny(csv, epochs=1), progress=True)
    err = capsys.readouterr().err
    warning = "the lr step × 0.1 at epoch 1 never happens: the last epoch is 0"
    assert "schedule (0-based epochs): 1 epoch, Adam" in err
    assert f"WARNING: {warning}" in err and err.count("WARNING") == 1
    assert rec["schedule_warnings"] == [warning] and rec["schedule"].startswith("schedule")


def test_a_method_specific_option_reaches_only_the_methods_that_read_it():
    """--num-groups 5 gave vanilla and LDS a new identity: retrained, bit-identical, and
    reported as rows "Vanilla (MSE) (G=5)" beside "(G=20)"."""
    plain = {j.name: j.config.identity() for j in dir_jobs(seeds=1)}
    tuned = dir_jobs(seeds=1, num_groups=5, lds_sigma=1.0, bmc_init_sigma=2.0)
    for job in tuned:
        method = job.config.method
        changed = plain[job.name] != job.config.identity()
        assert changed == (method in ("lds", "lds-fds", "bmc", "group-dir", "group-dir-lds")), (
            method
        )
        assert job.config.num_groups == (5 if method.startswith("group-dir") else 20)
    with pytest.warns(UserWarning, match="num_groups sets nothing in this grid"):
        dir_jobs(seeds=1, methods=("vanilla", "lds"), num_groups=5)


# ---------------------------------------------------- a method's ingredients reach training
LOOP = "longtail.engine.regression.loop"


def _task_spy(monkeypatch):
    """The engine's _Regression tasks as they are built, and each batch's (idx, parts)."""
    cls = sys.modules[LOOP]._Regression
    real_init, real_batch = cls.__init__, cls._batch
    tasks, batches = [], []

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        self.initial_model = copy.deepcopy(self.model.state_dict())
        tasks.append(self)

    def batch(self, idx, g):
        parts = real_batch(self, idx, g)
        batches.append((idx.clone(), parts))
        return parts

    monkeypatch.setattr(cls, "__init__", init)
    monkeypatch.setattr(cls, "_batch", batch)
    return tasks, batches


@pytest.mark.parametrize("method", ["vanilla", "lds", "lds-fds", "group-dir", "group-dir-lds"])
def test_lds_weights_bins_and_groups_reach_the_step(method, csv, monkeypatch):
    """Each batch carries the LDS weights of its targets (none without LDS), their label bins
    and, for Group-DIR, their true groups: what the log's method name promises."""
    from longtail.regression import bin_index, group_edges, lds_weights

    _, batches = _task_spy(monkeypatch)
    config = tiny(csv, method=method)
    train_regression(config, progress=False)
    data = prepare_regression_data(config)
    y, spec = data.y_train, config.spec
    full = None
    if spec.lds:
        full = lds_weights(
            y, data.bin_width, config.lds_kernel, config.lds_ks, config.lds_sigma, "sqrt_inv"
        )
        assert full.std() > 0.1  # skewed targets: the weights are far from uniform
    groups = None
    if spec.loss == "group-dir":
        groups = bin_index(y, group_edges(y, config.num_groups, "equal-width"))
    assert batches
    for idx, (_, _, weight, bins, group) in batches:
        if full is None:
            assert weight is None
        else:
            torch.testing.assert_close(weight, full[idx])
        assert torch.equal(bins, bin_index(y[idx], data.edges))
        if groups is None:
            assert group is None
        else:
            assert torch.equal(group, groups[idx])


def test_fds_calibrates_the_training_features_from_its_start_epoch(csv, monkeypatch):
    from longtail.regression import FDS

    real = FDS.smooth
    calls = []

    def smooth(self, features, bin_idx, epoch):
        out = real(self, features, bin_idx, epoch)
        calls.append((epoch, self.training, float((out - features).detach().abs().max())))
        return out

    monkeypatch.setattr(FDS, "smooth", smooth)
    config = tiny(csv, method="lds-fds")
    train_regression(config, progress=False)
    training = [(e, moved) for e, is_training, moved in calls if is_training]
    assert {e for e, _ in training} == set(range(config.epochs))
    assert all(moved == 0 for e, moved in training if e < config.fds_start_smooth)
    assert all(moved > 1e-4 for e, moved in training if e >= config.fds_start_smooth)


def test_group_dir_trains_all_three_terms_with_true_group_routing(csv, monkeypatch):
    """L = L_grc + λ1 L_mse + λ2 L_soft with every term non-zero, the experts routed by the
    true groups in training, and the group classifier trained."""
    from longtail.regression import GroupDIRHead

    loop = sys.modules[LOOP]
    tasks, _ = _task_spy(monkeypatch)
    real_step, real_head = loop.train_step, GroupDIRHead.forward
    steps, routed = [], []

    def step(*a, **kw):
        parts = real_step(*a, **kw)
        steps.append(parts)
        return parts

    def head(self, features, groups=None):
        if self.training:
            routed.append(groups is not None)
        return real_head(self, features, groups)

    monkeypatch.setattr(loop, "train_step", step)
    monkeypatch.setattr(GroupDIRHead, "forward", head)
    config = tiny(csv, method="group-dir", lambda1=0.7, lambda2=1.3)
    train_regression(config, progress=False)
    assert steps and routed and all(routed)
    for p in steps:
        assert min(p["contrastive"], p["mse"], p["soft"]) > 0, p
        want = p["contrastive"] + 0.7 * p["mse"] + 1.3 * p["soft"]
        assert p["loss"] == pytest.approx(want, rel=1e-5), p
    (task,) = tasks
    before = task.initial_model["head.classifier.weight"]
    assert not torch.equal(task.model.head.classifier.weight.detach(), before)


def test_bmc_step_is_the_balanced_mse_of_the_batch(csv, monkeypatch):
    """The network's loss is BMC (Ren et al. 2022), written out here: per example
    −log softmax_j(−(ŷ_i − z_j)² / 2σ²)_i · sg(2σ²), the batch mean."""
    loop = sys.modules[LOOP]
    real_step = loop.train_step
    pairs = []

    def step(model, criterion, optimizer, loss, x, z, weight=None, bins=None, groups=None, **kw):
        with torch.no_grad():
            pred = model(x, bins=bins, groups=groups, epoch=kw.get("epoch", 0))[0].double()
            var = float(criterion.noise_sigma) ** 2
            logits = -((pred[:, None] - z.double()[None, :]) ** 2) / (2 * var)
            want = float((-torch.log_softmax(logits, 1).diagonal() * 2 * var).mean())
        parts = real_step(model, criterion, optimizer, loss, x, z, weight, bins, groups, **kw)
        pairs.append((want, parts["loss"]))
        return parts

    monkeypatch.setattr(loop, "train_step", step)
    train_regression(tiny(csv, method="bmc"), progress=False)
    assert pairs
    for want, got in pairs:
        assert got == pytest.approx(want, rel=1e-4)
