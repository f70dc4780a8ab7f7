"""Bad input to `longtail train` / `bench`: one line on stderr, exit status 2, no --out folder.

Every case here ended in a traceback before, and most left a folder behind that then refused
the corrected command; none of them trains anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from longtail.cli import main


def write_toy_npz(path: Path) -> Path:
    """200 random 8x8 images of 4 classes (50 each): enough to load, nothing to learn."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    x = rng.integers(0, 256, size=(len(y), 8, 8), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    return path


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    return str(write_toy_npz(tmp_path_factory.mktemp("data") / "toy.npz"))


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def fails_cleanly(argv: list[str], capsys, *fragments: str, command: str | None = None) -> str:
    """Run the CLI; it must exit 2 with one line on stderr holding every fragment, and print
    nothing on stdout (no half a table, no listing before the error)."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert out == "", out
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"longtail {command or argv[0]}: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def tiny_train(npz: str) -> list[str]:
    return ["train", "--dataset", npz, "--model", "small-cnn", "--width", "4", "--ratio", "4"]


# -------------------------------------------------------------------------------------- train
TRAIN_CASES = [
    # a typo in a config file key, TOML or JSON, with its close match
    ({"run.toml": "epoch = 2\n"}, [], ["'epoch'", "run.toml", "Did you mean 'epochs'"]),
    ({"run.json": '{"momentun": 0.5}'}, [], ["'momentun'", "Did you mean 'momentum'"]),
    ({"run.toml": 'preset = "quik"\n'}, [], ["`preset`", "'quik'", "Did you mean 'quick'"]),
    ({"run.toml": 'model = "resnet23"\n'}, [], ["`model`", "'resnet23'", "'resnet32'"]),
    ({"run.toml": 'epochs = "two"\n'}, [], ["`epochs`", "'two'"]),
    ({"run.toml": 'no_download = "yes"\n'}, [], ["`no_download`", "true or false"]),
    ({"run.toml": 'task = "regresion"\n'}, [], ["`task`", "'regresion'", "'regression'"]),
    ({"run.toml": 'out = "elsewhere"\n'}, [], ["'out'", "--out"]),
    # the command line's name of the loss arguments, and options put under a section
    ({"run.toml": "[loss_kw]\nmax_margin = 0.3\n"}, [], ["'loss_kw'", "the key is loss_kwargs"]),
    ({"run.toml": "[train]\nepochs = 2\n"}, [], ["'train'", "top level", "move 'epochs'"]),
    ({"run.toml": "val_per_bin = 5\n"}, [], ["'val_per_bin'", "classification"]),
    ({"run.toml": "epochs = [\n"}, [], ["--config", "TOML"]),
    ({"run.json": "[1, 2]"}, [], ["--config", "list"]),
    # loss keyword arguments are checked against the loss's signature
    ({}, ["--method", "ldam-drw", "--loss-kw", "max_margn=0.3"], ["'max_margn'", "'max_margin'"]),
    ({}, ["--method", "ldam", "--loss-kw", "class-counts=[1,2]"], ["'class_counts'", "engine"]),
    ({}, ["--method", "ldam", "--loss-kw", "max_margin=-1"], ["`max_margin`"]),
    ({}, ["--method", "mm", "--loss-kw", "beta"], ["--loss-kw", "KEY=VALUE"]),
    (
        {"run.toml": "[loss_kwargs]\ndelta_minu = 1.2\n"},
        ["--method", "mm-drw"],
        ["'delta_minu'", "'delta_minus'"],
    ),
    # numbers that are not numbers
    ({}, ["--ratio", "inf"], ["`ratio`", "inf"]),
    ({}, ["--ratio", "nan"], ["`ratio`", "nan"]),
    ({}, ["--lr", "nan"], ["`lr`", "nan"]),
    ({}, ["--lr", "inf"], ["`lr`", "inf"]),
    ({"run.json": '{"momentum": NaN}'}, [], ["`momentum`", "nan"]),
    ({"run.json": '{"weight_decay": Infinity}'}, [], ["`weight_decay`", "inf"]),
    ({"run.json": '{"cb_beta": NaN}'}, [], ["`cb_beta`", "nan"]),
    # a DRW method whose DRW can never start would silently be its plain sibling
    ({}, ["--method", "ldam-drw", "--epochs", "1"], ["`drw_epoch`", "'ldam-drw'", "'ldam'"]),
    # options of the other task
    ({}, ["--bins", "5"], ["--bins", "regression"]),
]


@pytest.mark.parametrize(("files", "extra", "fragments"), TRAIN_CASES)
def test_train_bad_input(files, extra, fragments, npz, tmp_path, capsys):
    argv = [*tiny_train(npz), *extra, "--out", str(tmp_path / "out")]
    for name, text in files.items():
        argv += ["--config", write(tmp_path / name, text)]
    fails_cleanly(argv, capsys, *fragments)
    assert not (tmp_path / "out").exists()


def test_missing_config_file(npz, tmp_path, capsys):
    argv = [*tiny_train(npz), "--config", str(tmp_path / "nope.toml")]
    fails_cleanly([*argv, "--out", str(tmp_path / "out")], capsys, "--config", "nope.toml")
    assert not (tmp_path / "out").exists()


def test_out_inside_a_file(npz, tmp_path, capsys):
    a_file = write(tmp_path / "a_file", "")
    fails_cleanly([*tiny_train(npz), "--out", f"{a_file}/run"], capsys, "--out", "a_file")
    fails_cleanly([*tiny_train(npz), "--out", a_file], capsys, "--out", "file")


@contextlib.contextmanager
def unprivileged():
    """Run as `nobody` for a while: root may write into any folder, so only another user sees
    one as read-only. The saved user id stays root's, which lets the test become root again."""
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(65534, 65534, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


@pytest.mark.parametrize("command", ["train", "bench"])
def test_read_only_out(command, tmp_path, capsys):
    # a folder that `nobody` can enter (pytest's tmp_path is root's alone)
    base = Path(tempfile.mkdtemp(prefix="longtail-test-"))
    try:
        base.chmod(0o755)
        ro = base / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        for out in (ro / "run", ro):
            argv = ["train", "--epochs", "1"] if command == "train" else ["bench", "table1"]
            with unprivileged():
                fails_cleanly([*argv, "--out", str(out)], capsys, "--out", "read-only")
        assert os.listdir(ro) == []
    finally:
        (base / "ro").chmod(0o755)
        shutil.rmtree(base)


# -------------------------------------------------------------------------------------- bench
BENCH_CASES = [
    # the bench sets these itself: the file may not, and the message names the option to use
    ("table1", {"run.toml": 'method = "erm"\n'}, [], ["'method'", "--methods"]),
    ("table1", {"run.toml": "seed = 1\n"}, [], ["'seed'", "--seeds"]),
    ("table1", {"run.toml": "ratio = 10\n"}, [], ["'ratio'", "--settings"]),
    ("mm-ablation", {"run.toml": "[loss_kwargs]\nbeta = 2\n"}, [], ["'loss_kwargs'", "--betas"]),
    ("mm-ablation", {"run.toml": 'method = "mm"\n'}, [], ["'method'", "mm-drw"]),
    ("table1", {"run.toml": "epoch = 2\n"}, [], ["'epoch'", "Did you mean 'epochs'"]),
    ("table1", {"run.toml": 'settings = "exp4,exp4"\n'}, [], ["--settings", "twice"]),
    # grids that are empty or name a run twice
    ("table1", {}, ["--seeds", "0"], ["`--seeds`", "0"]),
    ("mm-ablation", {}, ["--seeds", "0"], ["`--seeds`", "0"]),
    ("table1", {}, ["--methods", "erm,erm"], ["`--methods`", "'erm' twice"]),
    ("table1", {}, ["--settings", "exp4,exp4.0"], ["`--settings`", "twice"]),
    ("table1", {}, ["--settings", "linear100"], ["`--settings`", "linear100"]),
    ("table1", {}, ["--settings", "expinf"], ["`ratio`", "inf"]),
    ("table1", {}, ["--jobs", "0"], ["`--jobs`"]),
    ("mm-ablation", {}, ["--betas", "1.5,1.5"], ["`--betas`", "twice"]),
    ("mm-ablation", {}, ["--deltas", "nan"], ["`--deltas`", "finite"]),
    ("mm-ablation", {}, ["--loss-kw", "scale=10"], ["--loss-kw", "--betas"]),
    # loss arguments of every method of the grid are checked
    (
        "table1",
        {},
        ["--methods", "ldam,ldam-drw", "--loss-kw", "max_margn=0.3"],
        ["'max_margn'", "'max_margin'"],
    ),
    ("table1", {}, ["--lr", "nan"], ["`lr`"]),
]


@pytest.mark.parametrize(("table", "files", "extra", "fragments"), BENCH_CASES)
def test_bench_bad_input(table, files, extra, fragments, npz, tmp_path, capsys):
    argv = ["bench", table, "--dataset", npz, *extra, "--out", str(tmp_path / "out")]
    for name, text in files.items():
        argv += ["--config", write(tmp_path / name, text)]
    fails_cleanly(argv, capsys, *fragments)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- regression
# Checked before any data is read, so these need no regression data set.
REGRESSION_CASES = [
    (["train", "--task", "regression"], {"run.toml": "epoch = 2\n"}, [], ["Did you mean"]),
    (
        ["train"],
        {"run.toml": 'task = "regression"\nmomentum = 0.5\n'},
        [],
        ["'momentum'", "regression runs"],
    ),
    (["train"], {"run.toml": 'task = "regression"\n'}, ["--ratio", "4"], ["--ratio"]),
    (["train", "--task", "regression"], {}, ["--compile"], ["--compile"]),
    (["bench", "dir"], {"run.toml": 'method = "l1"\n'}, [], ["'method'", "--methods"]),
    (["bench", "dir"], {"run.toml": 'task = "classification"\n'}, [], ["`task`", "'regression'"]),
    (["bench", "dir-sensitivity"], {"run.json": '{"seed": 2}'}, [], ["'seed'", "--seeds"]),
    (["bench", "dir"], {}, ["--seeds", "0"], ["`--seeds`"]),
    (["bench", "dir"], {}, ["--methods", "l1,vanilla,l1"], ["`--methods`", "'l1' twice"]),
    (["bench", "dir-sensitivity"], {}, ["--sweep-lambda1", "1,x"], ["`--sweep-lambda1`"]),
]


@pytest.mark.parametrize(("command", "files", "extra", "fragments"), REGRESSION_CASES)
def test_regression_bad_input(command, files, extra, fragments, tmp_path, capsys):
    argv = [*command, "--dataset", "toy.csv", "--target", "y", *extra]
    argv += ["--out", str(tmp_path / "out")]
    for name, text in files.items():
        argv += ["--config", write(tmp_path / name, text)]
    fails_cleanly(argv, capsys, *fragments)
    assert not (tmp_path / "out").exists()


def test_config_file_json_and_toml_say_the_same(npz, tmp_path, capsys):
    toml = write(tmp_path / "a.toml", "epoch = 2\n")
    js = write(tmp_path / "a.json", json.dumps({"epoch": 2}))
    a = fails_cleanly([*tiny_train(npz), "--config", toml], capsys)
    b = fails_cleanly([*tiny_train(npz), "--config", js], capsys)
    assert a.replace("a.toml", "a.json") == b


def test_bench_kind_refuses_an_option_it_would_ignore(capsys, tmp_path):
    from longtail.cli import main

    out = str(tmp_path / "o")
    assert main(["bench", "dir", "--val-per-class", "5", "--dry-run", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "`bench dir` does not take --val-per-class" in err and "table1, mm-ablation" in err
    assert main(["bench", "multilabel", "--betas", "1.2", "--dry-run", "--out", out]) == 2
    assert "--betas" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "command", "unknown", "hint"),
    [
        (["train", "--epoch", "2"], "longtail train", "--epoch 2", "Did you mean '--epochs'?"),
        (
            ["bench", "table1", "--seed", "3", "--out", "o"],
            "longtail bench",
            "--seed 3",
            "'--seeds'",
        ),
        (["report", "r", "--outt", "x"], "longtail report", "--outt x", "'--out'"),
        (
            ["bench", "table1", "--ratio", "10", "--out", "o"],
            "longtail bench",
            "--ratio 10",
            "profile and ratio together, as --settings: exp10",
        ),
        (["--bogus"], "longtail", "--bogus", ""),
        (
            ["train", "--learning-rate", "0.1"],
            "longtail train",
            "--learning-rate 0.1",
            "Did you mean '--lr' (what other tools call --learning-rate)?",
        ),
    ],
)
def test_an_unknown_option_is_refused_by_its_command_with_a_close_match(
    argv, command, unknown, hint, capsys
):
    """A typo on the command line gets its command's usage and the option it resembles, as a
    typo in a config file does (it got the top-level usage and no hint)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{command}: error: unrecognized arguments: {unknown}." in err
    assert hint in err
    assert err.startswith(f"usage: {command}")


def test_a_config_key_in_another_tools_spelling_points_to_longtails(tmp_path, capsys):
    """``lerning_rate`` in a config file: no key of longtail's is close, but learning_rate is
    what other trainers call ``lr``, and the message says so."""
    config = tmp_path / "c.toml"
    config.write_text("lerning_rate = 0.05\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert (
        "'lerning_rate'" in err
        and "Did you mean 'lr' (what other tools call learning_rate)?" in err
    )
