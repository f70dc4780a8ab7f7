"""The command line explains itself: every option has help that says its default, `longtail
--help` lists every command and bench kind, and the setting names longtail prints are the ones
`--settings` takes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import numpy as np
import pytest

from longtail.cli import _settings, build_parser, main


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ("longtail",)
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, the top one and each (nested) sub-command's."""
    yield " ".join(path), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


def arguments(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield action


ALL = [(name, p) for name, p in parsers(build_parser())]


def test_the_walk_finds_every_command():
    names = {name for name, _ in ALL}
    for command in ("inspect", "train", "bench", "report", "losses"):
        assert f"longtail {command}" in names


@pytest.mark.parametrize(("name", "parser"), ALL, ids=[n for n, _ in ALL])
def test_every_argument_has_help_that_says_its_default(name, parser):
    missing, no_default = [], []
    for action in arguments(parser):
        label = "/".join(action.option_strings) or action.dest
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
            missing.append(label)
            continue
        # what --help prints for it, the default included (the parser's own formatter)
        text = parser._get_formatter()._expand_help(action)
        flag = action.nargs == 0  # --json, --dry-run: off unless given
        if action.option_strings and not flag and not action.required and "default" not in text:
            no_default.append(f"{label}: {text!r}")
    assert not missing, f"{name}: arguments without help: {missing}"
    assert not no_default, f"{name}: options whose help does not say the default: {no_default}"


@pytest.mark.parametrize(("name", "parser"), ALL, ids=[n for n, _ in ALL])
def test_help_prints_no_none_default(name, parser):
    text = parser.format_help()  # also: every help string formats (no stray %)
    assert "default: None" not in text, name


def test_top_level_help_lists_every_command_and_bench_kind(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    top = build_parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    for command in commands.choices:
        assert re.search(rf"^\s+{re.escape(command)}\s", out, re.M), command
    (kind,) = [a for a in arguments(commands.choices["bench"]) if a.dest == "table"]
    assert kind.choices
    for table in kind.choices:
        assert re.search(rf"^\s+{re.escape(table)}\s", out, re.M), table


# ------------------------------------------------------------------- one vocabulary of settings
@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("exp100", (("exp", 100.0),)),
        ("exp-100", (("exp", 100.0),)),
        ("exp_100", (("exp", 100.0),)),
        ("step-10,exp-2.5", (("step", 10.0), ("exp", 2.5))),
        ("natural", (("natural", 1.0),)),
        ("natural-1", (("natural", 1.0),)),
        ("Exp-100, step10", (("exp", 100.0), ("step", 10.0))),
    ],
)
def test_settings_spellings(text, parsed):
    assert _settings(text) == parsed


@pytest.mark.parametrize("text", ["exp", "exp-", "linear100", "natural-10", "step-x"])
def test_settings_refused(text):
    with pytest.raises(ValueError, match="--settings"):
        _settings(text)


def test_settings_twice_in_two_spellings():
    with pytest.raises(ValueError, match="twice"):
        _settings("exp100,exp-100")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    x = rng.integers(0, 256, size=(len(y), 8, 8), dtype=np.uint8)
    path = tmp_path_factory.mktemp("data") / "toy.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:40], y_test=y[:40])
    return str(path)


def test_grid_run_names_round_trip(npz, tmp_path, capsys):
    """`--settings exp-4` and `exp4` make the same runs, whose names `--settings` takes back."""
    base = ["bench", "table1", "--dataset", npz, "--methods", "erm", "--dry-run"]
    assert main([*base, "--settings", "exp-4,step-2,natural", "--out", str(tmp_path)]) == 0
    dashed = capsys.readouterr().out.split()
    assert main([*base, "--settings", "exp4,step2,natural", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == dashed
    tokens = [name.split("_")[1] for name in dashed]  # <dataset>_<setting>_<method>_s<seed>
    assert _settings(",".join(tokens)) == (("exp", 4.0), ("step", 2.0), ("natural", 1.0))


@pytest.mark.parametrize(
    ("options", "setting"),
    [(["--profile", "step", "--ratio", "4"], ("step", 4.0)), (["--profile", "natural"], None)],
)
def test_progress_lines_round_trip(npz, capsys, options, setting):
    """The setting that a run's progress lines print is one `--settings` takes, and the same."""
    argv = ["train", "--dataset", npz, *options, "--model", "small-cnn", "--width", "4"]
    argv += ["--epochs", "1", "--preset", "smoke", "--batch-size", "50", "--threads", "1"]
    assert main(argv) == 0
    out = capsys.readouterr()
    # (the data line's advice "--profile natural keeps them all" names an option, not the run)
    said = out.err + out.out
    printed = set(re.findall(r"(?<!--profile )\b((?:exp|step)-[0-9.]+|natural)\b", said))
    assert printed, out.err
    for token in printed:
        assert _settings(token) == ((setting or ("natural", 1.0)),), token


# ------------------------------------------------------------------------------- bench's help
def help_of(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def options_shown(text: str) -> set[str]:
    return set(re.findall(r"^\s{2}(--[a-z0-9-]+)", text, re.M))


def bench_parser() -> argparse.ArgumentParser:
    top = build_parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices["bench"]


# the options of each bench kind, written out here (not read from the CLI's own table)
EVERY_KIND = {
    "--config",
    "--dataset",
    "--data-dir",
    "--threads",
    "--log",
    "--seeds",
    "--first-seed",
}
EVERY_KIND |= {"--jobs"}
EVERY_KIND |= {"--launcher", "--launcher-opt", "--ray-address", "--out", "--dry-run"}
EVERY_KIND |= {"--no-report", "--no-progress"}
RECIPE = {"--preset", "--epochs", "--batch-size", "--lr", "--model", "--width"}
RECIPE |= {"--many-threshold", "--few-threshold"}
CLASSIFICATION = {"--n-max", "--val-per-class", "--compile", "--eval-every", "--no-download"}
REGRESSION = {"--target", "--bins", "--backbone", "--hidden", "--target-transform", "--drop"}
REGRESSION |= {"--image-size", "--num-groups", "--lambda1", "--lambda2", "--group-beta"}
REGRESSION |= {"--temperature", "--routing", "--group-edges", "--bmc-init-sigma"}
SWEEP = {"--sweep-groups", "--sweep-lambda1", "--sweep-lambda2"}
KIND_OPTIONS = {
    "table1": EVERY_KIND | RECIPE | CLASSIFICATION | {"--loss-kw", "--methods", "--settings"},
    "mm-ablation": EVERY_KIND | RECIPE | CLASSIFICATION | {"--settings", "--betas", "--deltas"},
    "preset-selection": EVERY_KIND | {"--no-download", "--candidates", "--timing"},
    "dir": EVERY_KIND | RECIPE | REGRESSION | {"--methods"},
    "dir-sensitivity": EVERY_KIND | RECIPE | REGRESSION | SWEEP,
    "multilabel": EVERY_KIND
    | RECIPE
    | {"--no-download", "--eval-every", "--loss-kw"}
    | {"--val-fraction", "--threshold", "--methods"},
}


@pytest.mark.parametrize("kind", sorted(KIND_OPTIONS))
def test_bench_kind_help_shows_the_options_of_that_kind_alone(kind, capsys):
    text = help_of(["bench", kind], capsys)
    assert text.startswith(f"usage: longtail bench {kind} ")
    assert options_shown(text) == KIND_OPTIONS[kind]
    # no notes about options bench does not take
    assert "--task" not in text and "--method " not in text and "--method is" not in text
    assert "default: None" not in text
    # every option there still says its default, as in the whole help
    for action in bench_parser()._actions:
        if action.option_strings and action.option_strings[-1] in KIND_OPTIONS[kind]:
            assert action.help


def test_the_table_of_bench_kinds_covers_every_bench_option():
    bench = bench_parser()
    dests = {a.option_strings[0] for a in bench._actions if a.option_strings} - {"-h"}
    assert dests == set().union(*KIND_OPTIONS.values())


def test_bench_help_groups_options_by_kind_without_train_notes(capsys):
    text = help_of(["bench"], capsys)
    assert "--method is one of" not in text and "--task" not in text
    assert options_shown(text) == set().union(*KIND_OPTIONS.values())
    groups = re.findall(r"^(\S[^\n]*):$", text, re.M)
    assert "settings of the runs (dir, dir-sensitivity)" in groups
    assert "settings of the runs (multilabel)" in groups
    # the KIND help is a plain list of the kinds, not a run-on of half sentences
    kind_help = text[text.index("  KIND") : text.index("options:")]
    assert "multilabel. table1" not in " ".join(kind_help.split())
    for kind in KIND_OPTIONS:
        assert re.search(rf"^  {re.escape(kind)}\s{{2,}}\S", text, re.M), kind


def test_dataset_and_preset_help(capsys):
    text = " ".join(help_of(["train"], capsys).split())
    assert "a folder of images with a sub-folder per class" in text
    assert "Hugging Face datasets' save_to_disk" in text
    text = text[text.index("options:") :]  # past the usage line
    preset = text[text.index("--preset {") : text.index("--epochs EPOCHS")]
    assert "the recipe chosen by convergence on a validation split for a 2-core CPU" in preset
    assert "docs/preset-selection.md" in preset
    assert "converged" not in preset and "minutes" not in preset


def test_the_epochs_batch_and_lr_help_says_what_each_preset_runs(capsys):
    """The defaults in the help are the configs' own: a preset whose length changes (the cpu
    preset went from 40 to 60 epochs) changes its help with it."""
    from longtail.engine.config import make_config
    from longtail.engine.multilabel import make_multilabel_config
    from longtail.engine.regression import make_regression_config

    text = " ".join(help_of(["train"], capsys).split())
    text = text[text.index("options:") :]  # past the usage line
    epochs = text[text.index("--epochs EPOCHS") : text.index("--batch-size BATCH_SIZE")]
    for task, make, presets in (
        ("", make_config, ("paper", "smoke", "cpu")),
        ("regression ", make_regression_config, ("paper", "quick")),
        ("multi-label ", make_multilabel_config, ("default", "cpu", "smoke")),
    ):
        listed = ", ".join(f"{p} {make(p).epochs}" for p in presets)
        assert task + listed in epochs
    assert "cpu 60" in epochs
    batch = text[text.index("--batch-size BATCH_SIZE") : text.index("--lr LR")]
    assert f"(default: {make_config('paper').batch_size};" in batch
    assert f"multi-label {make_multilabel_config().batch_size})" in batch
    lr = text[text.index("--lr LR") : text.index("--model {")]
    assert f"regression {make_regression_config('paper').lr:g}," in lr


def test_the_lr_and_width_help_give_the_multilabel_cpu_presets_values(capsys):
    from longtail.engine.multilabel import make_multilabel_config

    cpu = make_multilabel_config("cpu")
    text = " ".join(help_of(["train"], capsys).split())
    text = text[text.index("options:") :]
    assert f"multi-label cpu preset {cpu.lr:g})" in text
    assert f"{cpu.width} for the multi-label cpu preset)" in text
