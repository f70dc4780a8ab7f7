"""One rule merges a config file with the command line: the file's values are the defaults.

The same rule serves `train`, `bench` and the regression commands. Nothing is trained here: the
engine's entry points are replaced by stand-ins that record the config they are given.
"""

from __future__ import annotations

import json

import pytest

import longtail.engine
import longtail.engine.regression
from longtail.cli import main
from longtail.engine import TrainConfig
from test_cli_errors import write, write_toy_npz

FAKE_METRICS = {
    "top1_error": 0.0,
    "balanced_accuracy": 100.0,
    "many_acc": None,
    "medium_acc": None,
    "few_acc": None,
    "ece": 0.0,
}


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_toy_npz(tmp_path_factory.mktemp("data") / "toy.npz"))


@pytest.fixture
def trained(monkeypatch) -> list[TrainConfig]:
    """The configs `longtail train` hands to the engine (which trains nothing here)."""
    seen: list[TrainConfig] = []

    def fake_train(config, out=None, progress=None, **kw):
        seen.append(config)
        return {
            "method": config.method,
            "dataset": config.dataset,
            "profile": config.profile,
            "ratio": config.ratio,
            "metrics": FAKE_METRICS,
            "seconds": 0.0,
        }

    monkeypatch.setattr(longtail.engine, "train", fake_train)
    return seen


FILE = {
    "method": "ldam-drw",
    "epochs": 5,
    "lr": 0.05,
    "batch-size": 32,  # either spelling
    "momentum": 0.5,  # a TrainConfig setting without an option of its own
    "model": "small-cnn",
    "width": 4,
    "ratio": 4,
    "loss_kwargs": {"max_margin": 0.3},
}


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_file_values_are_defaults_and_the_command_line_wins(suffix, npz, tmp_path, trained):
    if suffix == ".json":
        text = json.dumps(FILE)
    else:
        text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in FILE.items() if k != "loss_kwargs")
        text += "[loss_kwargs]\nmax_margin = 0.3\n"
    path = write(tmp_path / f"run{suffix}", text)
    argv = ["train", "--config", path, "--dataset", npz, "--epochs", "4", "--loss-kw", "scale=10"]
    assert main(argv) == 0
    (config,) = trained
    assert (config.method, config.lr, config.batch_size, config.momentum) == (
        "ldam-drw",
        0.05,
        32,
        0.5,
    )
    assert config.epochs == 4 and config.drw_epoch < 4  # the command line's, rescaled
    assert config.loss_kwargs == {"max_margin": 0.3, "scale": 10}


def test_file_values_are_converted_as_the_options_are(npz, tmp_path, trained):
    path = write(tmp_path / "run.toml", 'epochs = "3"\nlr = 1\nno_download = true\n')
    argv = ["train", "--config", path, "--dataset", npz, "--model", "small-cnn", "--ratio", "4"]
    assert main(argv) == 0
    (config,) = trained
    assert config.epochs == 3 and config.lr == 1.0 and isinstance(config.lr, float)
    assert config.download is False


def test_bench_takes_its_own_options_from_the_file(npz, tmp_path, capsys):
    """Before, only the options shared with `train` were read from a bench's file."""
    text = 'methods = "erm,ldam"\nsettings = "exp4,step4"\nseeds = 2\nepochs = 2\n'
    path = write(tmp_path / "grid.toml", text)
    out = tmp_path / "out"
    argv = ["bench", "table1", "--config", path, "--dataset", npz, "--dry-run", "--out", str(out)]
    assert main(argv) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == 2 * 2 * 2 and names[0] == "toy_exp4_erm_s0" and names[-1].endswith("_s1")
    assert main([*argv, "--seeds", "1", "--methods", "erm"]) == 0  # the command line wins
    assert capsys.readouterr().out.split() == ["toy_exp4_erm_s0", "toy_step4_erm_s0"]
    assert not out.exists()  # a dry run writes nothing


def test_regression_commands_use_the_same_rule(tmp_path, monkeypatch, capsys):
    seen = []

    def fake_train_regression(config, out=None, progress=None, **kw):
        seen.append(config)
        nothing = dict.fromkeys(
            ("mae", "mae_many", "mae_medium", "mae_few", "gm", "val_mae", "last_mae")
        )
        return {
            "method": config.method,
            "dataset": config.dataset,
            "target": config.target,
            "epochs": config.epochs,
            "seconds": 0.0,
            "metrics": {**nothing, "best_epoch": 0},
        }

    regression = longtail.engine.regression
    monkeypatch.setattr(regression, "train_regression", fake_train_regression)
    monkeypatch.setattr(regression, "check_regression_data", lambda config: None)
    text = 'task = "regression"\nmethod = "l1"\nepochs = 3\nval_per_bin = 7\nbins = 5\n'
    path = write(tmp_path / "dir.toml", text)
    assert main(["train", "--config", path, "--dataset", "toy.csv", "--target", "y"]) == 0
    (config,) = seen
    assert (config.method, config.epochs, config.val_per_bin, config.bins) == ("l1", 3, 7, 5.0)
    capsys.readouterr()

    # the bench reads the same file: `task` agrees with the table, and the file's options count
    grid = write(tmp_path / "grid.toml", 'task = "regression"\nmethods = "l1,bmc"\nepochs = 2\n')
    argv = ["bench", "dir", "--config", grid, "--dataset", "toy.csv", "--target", "y"]
    assert main([*argv, "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.split() == ["toy_l1_s0", "toy_bmc_s0"]
