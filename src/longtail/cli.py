"""The ``longtail`` command line: ``inspect``, ``train``, ``bench``, ``report`` and ``losses``.

argparse stays here: the library takes a :class:`~longtail.engine.TrainConfig` (or, with
``--task regression``, a :class:`~longtail.engine.regression.RegressionConfig`, with ``--task
multilabel`` a :class:`~longtail.engine.multilabel.MultiLabelConfig`), and this module only turns
options (and an optional TOML/JSON config file) into one.

Every option has help text that says its default (:class:`_HelpFormatter` prints a fixed one;
the help of an option whose default depends on the preset or the task says so in words), and
``tests/test_cli_help.py`` walks the parser so that a new option cannot go without.

Everything a command is given is checked before anything is written: a mistake (an unknown
config key, a loss argument the loss does not take, a read-only ``--out``, ...) ends the command
with one line on stderr, ``longtail COMMAND: error: ...``, and exit status 2, leaving no output
folder behind.

A config file and the command line are merged by one rule, :func:`_apply_config_file`: every key
of the file must be an option of the command or a setting of its config dataclass; the file's
values become the parser's defaults, and the command line is parsed again, so an option given on
the command line wins.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import difflib
import json
import math
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from ._validation import MAX_SEED, did_you_mean, expected
from .data.registry import dataset_label, get_dataset, list_datasets
from .engine.config import METHODS, PRESET_ALIASES, PRESETS, TrainConfig, make_config
from .losses import FAMILIES as LOSS_FAMILIES
from .losses import get_loss_info, list_losses
from .models import MODELS

# Errors that are the user's input, not a bug: one line on stderr and exit status 2.
_USER_ERRORS = (ValueError, FileNotFoundError)


def _message(err: Exception) -> str:
    """The one line for a user's error; an OS error without its ``[Errno N]`` prefix."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{err.strerror}: {str(err.filename)!r}"
    return str(err)


def _cmd_losses(args: argparse.Namespace) -> int:
    """``longtail losses [GLOB] [--family F] [--json | --markdown]``: the loss registry.

    ``--markdown`` prints the README's loss table (tests/test_readme.py checks that the README
    holds exactly this output, so the table cannot drift from the registry).
    """
    names = list_losses(args.filter, family=args.family)
    if not names:
        # an empty table with exit status 0 reads as "there is no such loss" only by squinting
        _no_loss_matches(args.filter, args.family)
    infos = [get_loss_info(n) for n in names]

    def defaults(info: Any) -> list[str]:
        return [f"{k}={v!r}" for k, v in info.defaults.items()]

    if args.json:
        rows = [
            {
                "name": info.name,
                "family": info.family,
                "description": info.description,
                "paper": info.paper,
                "needs_counts": info.needs_counts,
                "target": info.target,
                # False: a batch-level value ("mean"/"sum" only, no training method)
                "per_sample": info.per_sample,
                "defaults": dict(info.defaults),
                "uncertain": list(info.uncertain),
                "stop_gradient": info.stop_gradient,
                "compiles": info.compiles,
            }
            for info in infos
        ]
        print(json.dumps(rows, indent=2, default=repr))
        return 0
    if args.markdown:

        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        print("| name | family | counts | defaults | loss | paper |")
        print("|---|---|---|---|---|---|")
        for info in infos:
            shown = ", ".join(f"`{d}`" for d in defaults(info)) or "—"
            counts = "yes" if info.needs_counts else ""
            paper = "—" if info.paper == "-" else info.paper
            print(
                f"| `{info.name}` | {info.family} | {counts} | {cell(shown)} "
                f"| {cell(info.description)} | {cell(paper)} |"
            )
        return 0
    header = ("name", "family", "counts", "defaults", "paper", "description")
    rows = [
        (
            info.name,
            info.family,
            "yes" if info.needs_counts else "-",
            ", ".join(defaults(info)) or "-",
            info.paper,
            info.description,
        )
        for info in infos
    ]
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _no_loss_matches(pattern: str, family: str | None) -> None:
    """Raise the error for a ``longtail losses`` filter that matches no loss."""
    if family is not None and not list_losses(family=family):
        with_losses = sorted({get_loss_info(n).family for n in list_losses()})
        raise expected(
            "--family",
            f"a family with losses, one of {', '.join(with_losses)}",
            f"{family!r}: there is no loss in family {family!r} yet",
        )
    everything = list_losses(family=family)
    where = f" in family {family!r}" if family is not None else ""
    hint = did_you_mean(pattern, everything)
    if not hint and family is not None and list_losses(pattern):
        hint = f" It matches {', '.join(list_losses(pattern))}, of other families."
    message = expected("filter", f"a name or glob matching a registered loss{where}", repr(pattern))
    raise ValueError(f"{message}{hint}")


# ------------------------------------------------------------------------- parsing option values
def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _loss_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise expected("--loss-kw", "KEY=VALUE, e.g. delta_minus=1.2", repr(pair))
        key, value = key.replace("-", "_"), _parse_value(value)
        # the last one silently winning would train another loss than the one the user reads
        if key in out and out[key] != value:
            raise expected(
                "--loss-kw",
                "KEY=VALUE pairs naming each key once",
                f"{key!r} given twice ({out[key]!r}, {value!r})",
            )
        out[key] = value
    return out


def _distinct(option: str, values: Sequence[Any]) -> None:
    """Refuse a list naming a value twice: two runs of one grid would share a name and a folder."""
    seen = set()
    for v in values:
        if v in seen:
            raise expected(option, "a list of distinct values", f"{v!r} twice")
        seen.add(v)


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _distinct_names(option: str, text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    names = _names(text)
    _distinct(option, names)
    return names


def _setting(part: str) -> tuple[str, float] | None:
    """One setting as ``(profile, ratio)``, ``None`` if it is not one.

    Every spelling longtail prints is taken back: ``exp100`` (grid run names, report files),
    ``exp-100`` (progress lines and the summary of ``train``), ``exp_100``, and ``natural``
    (``natural-1`` in progress lines: the data's own imbalance, nothing cut).
    """
    text = part.strip().lower()
    for profile in ("exp", "step", "natural"):
        if not text.startswith(profile):
            continue
        rest = text[len(profile) :]
        if rest[:1] in ("-", "_"):
            rest = rest[1:]
            if not rest:
                return None  # "exp-": the ratio is missing
        if profile == "natural":
            return ("natural", 1.0) if rest in ("", "1") else None
        try:
            return (profile, float(rest))
        except ValueError:
            return None
    return None


def _settings(text: str | None) -> tuple[tuple[str, float], ...] | None:
    """``exp100,step-10`` as ``(("exp", 100.0), ("step", 10.0))``; ``natural`` (the data's own
    imbalance) as ``("natural", 1.0)``; see :func:`_setting` for the spellings."""
    if not text:
        return None
    out = []
    for part in _names(text):
        setting = _setting(part)
        if setting is None:
            raise expected(
                "--settings",
                "comma-separated settings like exp100,step-10,natural (exp or step and a ratio, "
                "or natural)",
                repr(part),
            )
        out.append(setting)
    _distinct("--settings", out)
    return tuple(out)


def _floats(option: str, text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        values = tuple(float(v) for v in _names(text))
    except ValueError:
        raise expected(option, "comma-separated numbers", repr(text)) from None
    if not all(math.isfinite(v) for v in values):
        raise expected(option, "finite numbers", repr(text))
    _distinct(option, values)
    return values


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _check_count(option: str, value: int) -> None:
    if value < 1:
        raise expected(option, "a positive integer", value)


def _check_out(out: str | None) -> None:
    """Refuse an output folder that cannot be made or written, before anything is written.

    The folder need not exist: its nearest existing parent must then be a folder this user may
    write to.
    """
    if out is None:
        return
    # os.path's checks answer False where the path cannot be looked at (no permission)
    path = Path(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise expected("--out", "a folder (or a path where one can be made)", f"the file {out!r}")
    existing = path
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        raise expected(
            "--out",
            "a folder (or a path where one can be made)",
            f"{out!r}, inside the file {str(existing)!r}",
        )
    # access() also answers "read-only file system" (EROFS), for root too
    if not os.access(existing, os.W_OK | os.X_OK):
        got = (
            f"the read-only folder {out!r}"
            if existing == path
            else f"{out!r}, whose parent {str(existing)!r} is read-only"
        )
        raise expected("--out", "a folder this user can write to (or create)", got)


# ------------------------------------------------------------ config file + command line merge
# What a config file may not hold: the file itself, and the output folder (one file of
# settings serves many --out folders).
_INVOCATION_ONLY = {
    "config": "a config file cannot name another config file",
    "out": "give the output folder on the command line (--out)",
    "loss_kw": "in a file the key is loss_kwargs, a table: loss_kwargs = {max_margin = 0.3}; "
    "loss_kw is the command line's --loss-kw",
    "launcher_opt": "give launcher options on the command line (--launcher-opt KEY=VALUE)",
}

# What a bench sets for each run of its grid, and the option that chooses it instead.
_BENCH_SETS: dict[str, dict[str, str]] = {
    "table1": {
        "method": "use --methods",
        "seed": "use --seeds and --first-seed",
        "profile": "use --settings",
        "ratio": "use --settings",
    },
    "mm-ablation": {
        "method": "the ablation trains mm-drw",
        "seed": "use --seeds and --first-seed",
        "profile": "use --settings",
        "ratio": "use --settings",
        "loss_kwargs": "the ablation sets beta and delta_minus; use --betas and --deltas",
    },
    "dir": {"method": "use --methods", "seed": "use --seeds and --first-seed"},
    "dir-sensitivity": {
        "method": "the sensitivity grid trains group-dir",
        "seed": "use --seeds and --first-seed",
    },
    "multilabel": {"method": "use --methods", "seed": "use --seeds and --first-seed"},
}
# preset-selection runs the candidates' own recipes: it takes no config settings at all
_SELECTION_TAKES = ("dataset", "data_dir", "download", "threads", "log")
_REGRESSION_TABLES = ("dir", "dir-sensitivity")


def _config_fields(task: str) -> tuple[str, ...]:
    """Settings of the config dataclass of ``task``: what a config file may set besides options."""
    if task == "regression":
        from longtail.engine.regression import RegressionConfig

        return tuple(f.name for f in dataclasses.fields(RegressionConfig))
    if task == "multilabel":
        from longtail.engine.multilabel import MultiLabelConfig

        return tuple(f.name for f in dataclasses.fields(MultiLabelConfig))
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


# Options that take comma-separated lists on the command line; a config file may give a list.
_LIST_OPTIONS = frozenset(
    {"methods", "settings", "betas", "deltas", "hidden", "drop", "log"}
    | {"sweep_groups", "sweep_lambda1", "sweep_lambda2"}
)


def _option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``{dest: action}`` for the optional arguments of ``parser`` (``--help`` aside)."""
    # argparse has no public listing of a parser's actions
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def _file_value(action: argparse.Action, key: str, value: Any, path: str) -> Any:
    """A config file's value for an option, converted and checked as argparse would do it.

    argparse converts a string default with the option's type but leaves other defaults as
    they are and never checks them against the choices; a file's value gets both here.
    """
    option = action.option_strings[-1]
    where = f"{value!r} in {path!r}"
    if action.nargs == 0:  # a flag: --no-download, --compile / --no-compile
        if not isinstance(value, bool):
            raise expected(key, f"true or false (the flag {option})", where)
        return value
    if key in _LIST_OPTIONS:
        # a file's natural list, ["erm", "ldam"], is the command line's "erm,ldam"
        items = value if isinstance(value, list) else [value]
        if not items or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in items
        ):
            raise expected(
                key, f'a list such as ["a", "b"] or a comma-separated string for {option}', where
            )
        if action.type is _names:
            return tuple(str(v) for v in items)  # a column named "a,b" stays one column
        value = ",".join(str(v) for v in items)
    elif isinstance(value, bool):
        raise expected(key, f"a value of {option}, not true/false", where)
    elif isinstance(value, list | dict):
        raise expected(key, f"a single value of {option}, not a {type(value).__name__}", where)
    elif action.type is None and isinstance(value, int | float):
        value = str(value)  # what the command line would give: `target = 2` names column "2"
    if action.type is not None and value is not None:
        try:
            value = action.type(str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            name = getattr(action.type, "__name__", "value")
            raise expected(key, f"a valid {name} for {option}", where) from None
    if action.choices is not None and value not in action.choices:
        message = expected(key, f"one of {', '.join(map(str, action.choices))}", where)
        raise ValueError(f"{message}{did_you_mean(value, action.choices)}")
    return value


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise LookupError(command)


def _read_config_file(path: str) -> dict[str, Any]:
    """The settings of a TOML (``.toml``) or JSON file, keys with ``-`` spelt ``_``."""
    p = Path(path)
    if not p.is_file():
        raise expected("--config", "an existing TOML or JSON file", repr(path))
    try:
        if p.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise expected(
                    "--config", "a JSON file (TOML needs Python >= 3.11)", repr(path)
                ) from None
            data = tomllib.loads(p.read_text())
        else:
            data = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as err:  # TOMLDecodeError, JSONDecodeError
        if isinstance(err, ValueError) and str(err).startswith("Expected `--config`"):
            raise
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        raise expected("--config", f"a valid {kind} file", f"{path!r}: {err}") from None
    if not isinstance(data, dict):
        raise expected("--config", "a table of settings", f"{type(data).__name__} in {path!r}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _is_registered(dataset: str) -> bool:
    try:
        get_dataset(dataset)
    except ValueError:
        return False
    return True


def _resolve_file_paths(values: dict[str, Any], path: str) -> None:
    """Take a config file's relative ``data_dir`` and ``dataset`` paths from the file's folder.

    A file of settings is written next to its data, and read from wherever the command is run;
    relative to the current directory, its paths would name other files from another folder. A
    registered dataset name is not a path; a relative ``dataset`` that is not in the file's
    folder but may be in a ``data_dir`` is left for the loader to look for there.
    """
    base = Path(path).parent
    data_dir = values.get("data_dir")
    if isinstance(data_dir, str) and data_dir and not Path(data_dir).expanduser().is_absolute():
        values["data_dir"] = os.path.normpath(base / data_dir)
    dataset = values.get("dataset")
    if not isinstance(dataset, str) or not dataset or _is_registered(dataset):
        return
    if Path(dataset).expanduser().is_absolute():
        return
    beside = os.path.normpath(base / dataset)
    if Path(beside).exists() or not values.get("data_dir"):
        values["dataset"] = beside


def _check_dataset_file(dataset: str, data_dir: str | None) -> None:
    """An image dataset given as a file must exist: one line naming it, not ``[Errno 2]``.

    (A regression CSV is checked by its loader, which says the same.)
    """
    if _is_registered(dataset):
        return
    path = Path(dataset).expanduser()
    if path.is_file() or path.is_dir():  # a folder: class sub-folders of images
        return
    # a relative path that does not exist is also looked for in data_dir
    if data_dir and not path.is_absolute() and (Path(data_dir) / path).exists():
        return
    if not dataset.lower().endswith(".npz") and not path.exists() and os.sep not in dataset:
        return  # an unknown name: the loader refuses it with the close matches
    nor = f", nor in --data-dir {data_dir!r}" if data_dir else ""
    got = f"{dataset!r}, which is not a file (looked for {str(path.absolute())!r}{nor})"
    raise expected(
        "dataset", "a registered dataset name, an existing .npz file or an image folder", got
    )


def _task(args: argparse.Namespace) -> str:
    if args.command == "bench":
        if args.table == "multilabel":
            return "multilabel"
        return "regression" if args.table in _REGRESSION_TABLES else "classification"
    task = getattr(args, "task", "classification")
    if task not in _TASKS:
        raise expected("task", "'classification', 'regression' or 'multilabel'", repr(task))
    return task


def _apply_config_file(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, args: argparse.Namespace
) -> argparse.Namespace:
    """Merge ``args.config`` into the command line: the file's values become defaults.

    Every key must be an option of the command or a setting of the run's config dataclass
    (``TrainConfig`` or ``RegressionConfig``, e.g. ``momentum``, ``loss_kwargs``), spelt with
    ``_`` or ``-``; an unknown key is refused with the close matches. A bench refuses the
    settings it sets itself (``method``, ``seed``, ...), naming the option that chooses them.

    Returns:
        The command line parsed again over the file's defaults.
    """
    path = args.config
    values = _read_config_file(path)
    sub = _subparser(parser, args.command)
    actions = _option_actions(sub)
    bench_sets = _BENCH_SETS.get(args.table, {}) if args.command == "bench" else {}
    if args.command == "bench" and "task" in values:
        # one file may serve `train --task regression` and `bench dir`; the table decides
        want = _task(args)
        if values.pop("task") != want:
            raise expected("task", f"{want!r} for `bench {args.table}`", f"another in {path!r}")
    _resolve_file_paths(values, path)
    fields = {f for task in _TASKS for f in _config_fields(task)}
    known = sorted((set(actions) | fields) - set(_INVOCATION_ONLY))
    for key in values:
        if key in _INVOCATION_ONLY:
            raise expected(
                "config key", f"a setting ({_INVOCATION_ONLY[key]})", f"{key!r} in {path!r}"
            )
        if key in bench_sets:
            raise expected(
                "config key",
                f"a setting that `bench {args.table}` does not set itself",
                f"{key!r} in {path!r} ({bench_sets[key]})",
            )
        if key not in known:
            message = expected(
                "config key", f"an option of `longtail {args.command}`", f"{key!r} in {path!r}"
            )
            if isinstance(values[key], dict):  # a [train] section, say: options go on top
                inside = ", ".join(map(repr, list(values[key])[:4]))
                raise ValueError(
                    f"{message} A config file gives the options at its top level, not in a "
                    f"[{key}] table: move {inside or 'its keys'} above every table."
                )
            raise ValueError(f"{message}{_option_hint(key, known)}")
        if key in actions:
            values[key] = _file_value(actions[key], key, values[key], path)
    sub.set_defaults(**values)
    args = parser.parse_args(argv)
    # the task is known once the file's `task` is applied: keys of the other task are refused
    task = _task(args)
    mine = set(actions) | set(_config_fields(task))
    for key in values:
        if key not in mine and key != "task":
            raise expected(
                "config key", f"a setting of {task} runs", f"{key!r} in {path!r}, which is not"
            )
    return args


def _fields_from_args(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """The config-dataclass settings that the command line or the config file gave."""
    return {
        name: getattr(args, name)
        for name in _config_fields(task)
        if getattr(args, name, None) is not None
    }


# options of `train` / `bench` that both tasks take, and those of one task alone
_SHARED_OPTIONS = (
    "dataset",
    "data_dir",
    "method",
    "epochs",
    "seed",
    "batch_size",
    "lr",
    "model",
    "width",
    "threads",
    "many_threshold",
    "few_threshold",
)
_CLASSIFICATION_ONLY = ("profile", "ratio", "n_max", "eval_every")
_TASKS = ("classification", "regression", "multilabel")
# Multi-label options: each sets the MultiLabelConfig field of its name.
_MULTILABEL_OPTIONS = ("val_fraction", "threshold")
# ... and those of `train --task multilabel` alone (a bench's table is of test scores)
_MULTILABEL_TRAIN_OPTIONS = ("eval_split",)
_MULTILABEL_ONLY = (*_MULTILABEL_OPTIONS, *_MULTILABEL_TRAIN_OPTIONS)
# Regression options and the RegressionConfig field each sets; the shared options set the
# field of the same name.
_REGRESSION_OPTIONS = (
    "target",
    "bins",
    "backbone",
    "hidden",
    "target_transform",
    "drop",
    "image_size",
    "num_groups",
    "lambda1",
    "lambda2",
    "group_beta",
    "temperature",
    "routing",
    "group_edges",
    "bmc_init_sigma",
)


def _refuse_options(args: argparse.Namespace, names: Sequence[str], task: str, why: str) -> None:
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]
    if given:
        raise ValueError(f"Expected {task} options, but got {', '.join(given)}, which only {why}.")


def _classification_options(args: argparse.Namespace, default_preset: str) -> dict[str, Any]:
    """(TrainConfig settings with ``preset``) from a config file and the options given."""
    _refuse_options(args, _REGRESSION_OPTIONS, "classification", "regression runs take")
    _refuse_options(args, _MULTILABEL_ONLY, "classification", "multi-label runs take")
    options = _fields_from_args(args, "classification")
    options["preset"] = options.get("preset") or default_preset
    own = options.get("loss_kwargs", {})
    if not isinstance(own, dict):
        raise expected("loss_kwargs", "a table of loss keyword arguments", repr(own))
    kw = _loss_kwargs(args.loss_kw)
    if kw:
        options["loss_kwargs"] = {**own, **kw}
    if args.no_download:
        options["download"] = False
    return options


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    options = _classification_options(args, "paper")
    return make_config(options.pop("preset"), **options)


def _add_input_options(p: argparse.ArgumentParser) -> None:
    """The options file and the data set: --config, --dataset, --data-dir, --no-download."""
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML or JSON file of options and config settings (command-line options win); "
        "relative dataset and data_dir paths in it are taken from the file's folder "
        "(default: none)",
    )
    p.add_argument(
        "--dataset",
        help=", ".join(list_datasets("classification"))
        + ", a path to an .npz file, a folder of images with a sub-folder per class, or a "
        "folder saved by Hugging Face datasets' save_to_disk (default: fashion-mnist; with "
        "--task regression or bench dir: diamonds; multi-label: fashion-mnist-mosaic-lt)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the dataset files (default: the system's and the user cache's "
        "dataset folders, where a missing dataset is downloaded)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download a dataset (default: download)"
    )


def _engine_configs() -> tuple[type, type, type]:
    """The run configs of the three tasks: classification, regression, multi-label."""
    from longtail.engine.multilabel import MultiLabelConfig
    from longtail.engine.regression import RegressionConfig

    return TrainConfig, RegressionConfig, MultiLabelConfig


def _engine_defaults(name: str) -> list[Any]:
    """The default of the config field ``name`` in each task's config (help texts read the
    configs, so that they cannot drift from them)."""
    return [
        next(f.default for f in dataclasses.fields(c) if f.name == name) for c in _engine_configs()
    ]


def _multilabel_preset_values(name: str) -> list[tuple[str, Any]]:
    """``[(preset, value)]`` of the multi-label presets that set ``name`` themselves."""
    from longtail.engine.multilabel import MULTILABEL_PRESETS

    return [(p, spec[name]) for p, spec in MULTILABEL_PRESETS.items() if name in spec]


def _preset_epochs() -> str:
    """``"paper 200, cpu 60, smoke 8; regression paper 90, quick 45; multi-label ..."``: the
    epochs of every preset of every task, read from the preset tables."""
    from longtail.engine.multilabel import MULTILABEL_PRESETS
    from longtail.engine.regression import REGRESSION_PRESETS

    parts = []
    for task, table, default in zip(
        ("", "regression ", "multi-label "),
        (PRESETS, REGRESSION_PRESETS, MULTILABEL_PRESETS),
        _engine_defaults("epochs"),
        strict=True,
    ):
        epochs = (f"{name} {spec.get('epochs', default)}" for name, spec in table.items())
        parts.append(task + ", ".join(epochs))
    return "; ".join(parts)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The training recipe: --preset and what it sets (epochs, batch size, lr, the network)."""
    p.add_argument(
        "--preset",
        choices=tuple(dict.fromkeys((*PRESETS, *PRESET_ALIASES, *_multilabel_presets()))),
        help="paper (default for train: the papers' 200 epochs, a GPU job), cpu (default for "
        "bench: the recipe chosen by convergence on a validation split for a 2-core CPU, see "
        "docs/preset-selection.md) or smoke (8 epochs, for smoke tests; quick is its older "
        "name); regression runs: paper (train) or quick (bench); multi-label runs: default "
        "(train), cpu (bench) or smoke",
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="epochs; the schedule is rescaled to match (default: the preset's: "
        f"{_preset_epochs()})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help="training mini-batch size (default: {}; regression {}, multi-label {})".format(
            *_engine_defaults("batch_size")
        ),
    )
    p.add_argument(
        "--lr",
        type=float,
        help="base learning rate (default: {:g}; regression {:g}, multi-label {:g}".format(
            *_engine_defaults("lr")
        )
        + "".join(f", multi-label {p} preset {v:g}" for p, v in _multilabel_preset_values("lr"))
        + ")",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        help="the network (default: the preset's: resnet32 for paper, cnn5 for cpu, resnet20 "
        "for smoke; multi-label resnet20, cnn5 for cpu, small-cnn for smoke; regression on "
        "images resnet20)",
    )
    p.add_argument(
        "--width",
        type=int,
        help="channels of the first stage of the network (default: 16; 8 for the smoke presets"
        + "".join(
            f", {v} for the multi-label {p} preset"
            for p, v in _multilabel_preset_values("width")
            if v != 16 and p != "smoke"  # the smoke presets are said already
        )
        + ")",
    )


def _add_split_and_execution_options(p: argparse.ArgumentParser) -> None:
    """The head size and validation split, then how a run executes: threads, loggers, compile."""
    p.add_argument(
        "--n-max",
        type=int,
        help="training examples of the head class (default: the most the profile can take)",
    )
    p.add_argument(
        "--val-per-class",
        type=int,
        help="hold out this many training images per class as a balanced validation split and "
        "evaluate on it instead of the test set (for choosing a recipe; default 0: test set)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default: torch's own choice; with bench "
        "--jobs N > 1, the cores / N)",
    )
    p.add_argument(
        "--log",
        metavar="KINDS",
        help="loggers besides log.jsonl, comma-separated: tensorboard (DIR/tb/, needs "
        "longtail[tensorboard]), csv (DIR/log.csv); not part of a run's identity; with bench, "
        "in each run's work folder (default: none: log.jsonl only)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the training step (default: on for --preset paper, off otherwise)",
    )


def _add_evaluation_and_loss_options(p: argparse.ArgumentParser) -> None:
    """When to evaluate, the many/medium/few thresholds, and the loss's keyword arguments."""
    p.add_argument(
        "--eval-every",
        type=int,
        help="evaluate every k epochs, 0: only at the end (default: the preset's: 1 for paper, "
        "0 for cpu and smoke; multi-label 0, 5 for cpu)",
    )
    p.add_argument("--many-threshold", type=int, help="many-shot: > this many (default 100)")
    p.add_argument("--few-threshold", type=int, help="few-shot: < this many (default 20)")
    p.add_argument(
        "--loss-kw",
        action="append",
        metavar="KEY=VALUE",
        help="loss keyword argument, e.g. --loss-kw delta_minus=1.2; repeatable (default: the "
        "method's own loss arguments, see `longtail losses`)",
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What makes one run (`train` only; bench takes grids of them): setting, method, seed."""
    p.add_argument(
        "--profile",
        choices=("exp", "step", "natural"),
        help="exp or step (with --ratio), or natural: keep the data's own imbalance "
        "(default: exp); bench takes the same as --settings exp-100, step-10, natural",
    )
    p.add_argument(
        "--ratio",
        type=float,
        help="imbalance ratio n_max / n_min, >= 1 (default: 100; 1 with --profile natural)",
    )
    p.add_argument(
        "--method",
        help=f"one of: {', '.join(METHODS)}; or loss:NAME, any registered single-label "
        "loss trained alone (see `longtail losses`) (default: erm; --task regression: "
        "vanilla; --task multilabel: bce)",
    )
    p.add_argument("--seed", type=int, help="the run's random seed (default: 0)")


def _add_train_options(p: argparse.ArgumentParser, with_run: bool = True) -> None:
    """The options `train` and `bench` share, in their help's order; with_run: those of one run."""
    _add_input_options(p)
    _add_recipe_options(p)
    _add_split_and_execution_options(p)
    _add_evaluation_and_loss_options(p)
    if with_run:
        _add_run_options(p)


def _cmd_train(args: argparse.Namespace) -> int:
    if _task(args) == "regression":
        return _cmd_train_regression(args)
    if _task(args) == "multilabel":
        return _cmd_train_multilabel(args)
    from longtail.engine import prepare_data, train

    config = _config_from_args(args)
    _check_out(args.out)
    _check_dataset_file(config.dataset, config.data_dir)
    prepare_data(config)  # a missing or malformed dataset fails here, before --out is made
    _note_no_out(args)
    before = _finished(args.out)
    record = train(config, args.out, progress=False if args.no_progress else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 speaks for the run
    if before:
        _note_finished(args.out, record)
    m = record["metrics"]
    setting = f"{record['profile']}-{record['ratio']:g}"
    if record["profile"] == "natural":
        setting = f"natural (imbalance {record['data']['imbalance_ratio']:.3g}:1)"
    split = " (validation split)" if record.get("eval_split") == "validation" else ""
    print(
        f"{record['method']} on {record['dataset']} {setting}{split}: "
        f"top-1 error {m['top1_error']:.2f}%, balanced accuracy {m['balanced_accuracy']:.2f}%, "
        f"many/medium/few {_pct(m['many_acc'])}/{_pct(m['medium_acc'])}/{_pct(m['few_acc'])}, "
        f"ECE {m['ece']:.2f}% ({_took(record['seconds'], before)})"
    )
    if args.out:
        print(f"results: {Path(args.out) / 'result.json'}")
    return 0


def _note_no_out(args: argparse.Namespace) -> None:
    """Say, before a run without ``--out`` starts, that it keeps nothing.

    The paper preset trains for hours: finding out at the end that nothing was written, and
    that an interrupted run cannot resume, loses all of it.
    """
    if args.out is None and int(os.environ.get("RANK", "0")) == 0:
        print(
            "longtail train: note: no --out given: nothing will be saved (no checkpoint, no "
            "result) and the run cannot be resumed; give --out DIR to keep it.",
            file=sys.stderr,
        )


def _took(seconds: float, before: bool = False) -> str:
    """A run's training time as the bench progress line writes times: ``trained in 0:06``
    (``trained before, in 0:06`` for a finished run handed back, not trained now)."""
    from longtail.bench.launchers import format_duration

    return f"trained {'before, ' if before else ''}in {format_duration(seconds)}"


def _finished(out: str | None) -> bool:
    """Whether ``out`` holds a finished run's record (before the engine opens it)."""
    return bool(out) and (Path(out) / "result.json").is_file()


def _note_finished(out: str, record: dict[str, Any]) -> None:
    """Say that the run handed back was finished before: nothing trained, options not used,
    and, where it was, that another version of longtail trained it."""
    from longtail.engine.run import code_text, code_version

    print(
        f"longtail train: note: {out} already holds this run, finished (same config and data): "
        "its record is shown, and nothing was trained now. Options outside a run's identity "
        "(--threads, --compile, ...) were not applied (--log writes only the logs the folder "
        "lacks); use another --out, or delete the folder, to train it again.",
        file=sys.stderr,
    )
    then, now = code_text(record.get("environment")), code_text(code_version())
    if then != now:
        print(
            f"longtail train: note: that record was made by {then}, and this is {now}: its "
            "numbers are that code's. Delete the folder to train the run with this code.",
            file=sys.stderr,
        )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _check_grid(jobs: list[Any], args: argparse.Namespace) -> None:
    """What every grid needs before its first run: runs, distinct names, a writable --out."""
    if not jobs:
        raise expected("grid", "at least one run", "none")
    _distinct("run names of the grid", [j.name for j in jobs])
    if args.jobs is not None:
        _check_count("--jobs", args.jobs)
    _check_out(args.out)
    _check_launcher(args)


def _launcher_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--launcher-opt`` (and ``--ray-address``) as the launcher's options."""
    from longtail.bench.launchers import parse_options

    options = parse_options(args.launcher_opt or ())
    if args.ray_address:
        if args.launcher != "ray":
            raise expected("--ray-address", "given only with --launcher ray", args.ray_address)
        options["address"] = args.ray_address
    return options


def _check_launcher(args: argparse.Namespace) -> None:
    """An unknown launcher, its options, or a launcher not installed: before any data loads."""
    from longtail.bench.launchers import check_launcher

    try:
        check_launcher(args.launcher, _launcher_options(args))
    except ImportError as e:  # the extra to install, in one line
        raise ValueError(str(e)) from e


# The grid options of `bench` and the tables that take each; another table would ignore it.
_GRID_OPTIONS = {
    "candidates": ("preset-selection", "multilabel-preset-selection"),
    "methods": ("table1", "dir", "multilabel"),
    "settings": ("table1", "mm-ablation"),
    "betas": ("mm-ablation",),
    "deltas": ("mm-ablation",),
    "sweep_groups": ("dir-sensitivity",),
    "sweep_lambda1": ("dir-sensitivity",),
    "sweep_lambda2": ("dir-sensitivity",),
}


def _check_grid_options(args: argparse.Namespace) -> None:
    """Refuse a grid option that ``args.table`` does not use (it was silently ignored)."""
    for name, tables in _GRID_OPTIONS.items():
        if args.table not in tables and getattr(args, name, None) is not None:
            option = f"--{name.replace('_', '-')}"
            raise expected(
                option,
                f"absent for `bench {args.table}` (only {' and '.join(tables)} take it)",
                repr(getattr(args, name)),
            )


_KIND_HINTS = {
    ("mm-ablation", "loss_kw"): "the ablation sets beta and delta_minus: use --betas and --deltas",
}


def _check_kind_takes(args: argparse.Namespace) -> None:
    """Refuse an option given to a bench kind that does not use it (it would be ignored)."""
    defaults = vars(build_parser().parse_args(["bench", args.table, "--out", "-"]))
    ignored = [
        dest
        for dest, kinds in _BENCH_TAKES.items()
        if args.table not in kinds and getattr(args, dest, None) != defaults.get(dest)
    ]
    if ignored:
        names = ", ".join("--" + d.replace("_", "-") for d in ignored)
        where = "; ".join(
            f"--{d.replace('_', '-')}: {_kinds_text(_BENCH_TAKES[d])}" for d in ignored
        )
        hints = [_KIND_HINTS[args.table, d] for d in ignored if (args.table, d) in _KIND_HINTS]
        raise ValueError(
            f"`bench {args.table}` does not take {names}, which it would ignore (taken by {where})"
            + "".join(f"; {h}" for h in hints)
        )


def _seeds(args: argparse.Namespace) -> range:
    """The seeds of a grid: --seeds of them from --first-seed on."""
    return range(args.first_seed, args.first_seed + args.seeds)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.seeds is None:  # a selection's (a) needs a seed spread; a timing run is one run
        selection = args.table in ("preset-selection", "multilabel-preset-selection")
        args.seeds = 2 if selection and not getattr(args, "timing", False) else 1
    _check_count("--seeds", args.seeds)
    last = args.first_seed + args.seeds - 1
    if not 0 <= args.first_seed or last > MAX_SEED:
        raise expected(
            "--first-seed",
            f"a non-negative integer with --first-seed + --seeds - 1 at most {MAX_SEED}",
            args.first_seed,
        )
    _check_grid_options(args)
    _check_kind_takes(args)  # after the grid options' own, more specific, messages
    if args.table in _REGRESSION_TABLES:
        return _cmd_bench_dir(args)
    if args.table == "multilabel":
        return _cmd_bench_multilabel(args)
    if args.table == "multilabel-preset-selection":
        return _cmd_multilabel_selection(args)
    from longtail.bench.runner import ablation_jobs, table1_jobs
    from longtail.engine import prepare_data

    if args.table == "preset-selection":
        return _cmd_preset_selection(args)
    options = _classification_options(args, "cpu")
    preset = options.pop("preset")
    dataset = options.pop("dataset", "fashion-mnist")
    settings = _settings(args.settings)
    if args.table == "table1":
        methods = _distinct_names("--methods", args.methods)
        jobs = table1_jobs(dataset, preset, _seeds(args), methods, settings, **options)
    else:
        if "loss_kwargs" in options:
            raise expected(
                "--loss-kw",
                "absent for mm-ablation (it sets beta and delta_minus; use --betas, --deltas)",
                repr(options["loss_kwargs"]),
            )
        grid = {
            k: v
            for k, v in (
                ("betas", _floats("--betas", args.betas)),
                ("deltas", _floats("--deltas", args.deltas)),
            )
            if v
        }
        settings = settings or (("exp", 100.0),)
        jobs = ablation_jobs(dataset, preset, _seeds(args), settings=settings, **grid, **options)
    _check_grid(jobs, args)
    _check_dataset_file(jobs[0].config.dataset, jobs[0].config.data_dir)
    # load the data once up front: a missing dataset fails here, before any run starts
    prepare_data(jobs[0].config)
    return _run_jobs(jobs, args)


def _selection_grid(
    args: argparse.Namespace, options: dict[str, Any], table: dict[str, Any], make: Any
) -> list[Any]:
    """A preset selection's jobs: ``make(names, seeds, dataset, timing=...)`` over the
    candidates of ``table`` that ``--candidates`` names, each with the settings ``options``
    gives besides the data set. Each candidate is its own recipe, so ``options`` may hold only
    the data, threads and loggers (:data:`_SELECTION_TAKES`)."""
    extra = sorted(k for k in options if k not in _SELECTION_TAKES)
    if extra:
        raise expected(
            "options",
            f"none of the recipe's settings for `bench {args.table}` (each candidate is "
            f"its own recipe; choose them with --candidates: {', '.join(table)})",
            ", ".join(extra),
        )
    names = _distinct_names("--candidates", args.candidates)
    for n in names or ():
        if n not in table:
            raise ValueError(
                str(expected("--candidates", f"names of {', '.join(table)}", n))
                + did_you_mean(n, list(table))
            )
    settings = {k: v for k, v in options.items() if k != "dataset"}
    jobs = make(names, _seeds(args), options["dataset"], timing=args.timing)
    if settings:
        jobs = [
            dataclasses.replace(j, config=dataclasses.replace(j.config, **settings)) for j in jobs
        ]
    _check_grid(jobs, args)
    return jobs


def _cmd_preset_selection(args: argparse.Namespace) -> int:
    """The CPU preset's selection grid: candidates × lengths × methods × seeds on validation."""
    _check_timing(args)
    from longtail.bench.runner import PRESET_CANDIDATES, preset_selection_jobs
    from longtail.engine import prepare_data

    options = _classification_options(args, "cpu")
    options.pop("preset")
    options.setdefault("dataset", "fashion-mnist")
    jobs = _selection_grid(args, options, PRESET_CANDIDATES, preset_selection_jobs)
    prepare_data(jobs[0].config)
    return _run_jobs(jobs, args)


def _run_jobs(jobs: list[Any], args: argparse.Namespace) -> int:
    """List (``--dry-run``) or run a grid, then write its report; 1 if a run failed."""
    from longtail.bench.runner import plan_grid, run_grid

    if args.dry_run:
        # the run names on stdout, one a line (for scripts); on stderr, what a real run would
        # do with each that is not simply to run, and the count (nothing is touched)
        plan = plan_grid(jobs, args.out) if args.out else [(j.name, "to run") for j in jobs]
        for name, _ in plan:
            print(name)
        for name, what in plan:
            if what != "to run":
                print(f"{name}: {what}", file=sys.stderr)
        if args.out:
            done = sum(what == "finished" for _, what in plan)
            replace = sum("replacing" in what for _, what in plan)
            print(
                f"{len(plan)} run{'' if len(plan) == 1 else 's'}: {done} already finished, "
                f"{len(plan) - done} to run ({replace} of them would replace records of another "
                f"config or data) -> {args.out}",
                file=sys.stderr,
            )
        return 0
    try:
        summary = run_grid(
            jobs,
            args.out,
            workers=args.jobs,
            progress=not args.no_progress,
            launcher=args.launcher,
            launcher_options=_launcher_options(args),
        )
    except ImportError as e:
        raise ValueError(str(e)) from e
    if not args.no_report:
        _write_report(args.out, None)
    if summary["failed"]:
        n = len(summary["failed"])
        print(f"{n} run{'' if n == 1 else 's'} failed: {', '.join(summary['failed'])}")
        return 1
    return 0


def _write_report(directory: str, out: str | None) -> int:
    from longtail.bench.report import write_report

    # the report's warnings (copies of a run that disagree, skipped files, no matplotlib) are
    # for the user: one line each, not Python's "file:line: UserWarning" and a source line
    error: Exception | None = None
    paths: list[Path] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            paths = write_report(directory, out)
        except _USER_ERRORS as e:
            error = e
        except OSError as e:  # a read-only or full place to write: say so, not a traceback
            where = e.filename or out or directory
            error = ValueError(
                f"Expected to write the report to {str(where)!r}, but could not: "
                f"{e.strerror or e}. Give --out a folder this user can write to."
            )
    notes = [w for w in caught if issubclass(w.category, UserWarning)]
    for note in dict.fromkeys(str(w.message) for w in notes):
        print(f"longtail report: note: {note}", file=sys.stderr)
    for w in caught:  # a library's deprecation warning and the like: as Python shows them
        if w not in notes:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if error is not None:
        print(f"longtail report: error: {_message(error)}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    md = [p for p in paths if str(p).endswith(".md")]
    if md:
        print()
        print(Path(md[0]).read_text())
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    return _write_report(args.directory, args.out)


# ---- deep imbalanced regression (train --task regression, bench dir / dir-sensitivity) ----------
def _add_regression_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "regression (--task regression, bench dir)",
        "--dataset is one of "
        + ", ".join(list_datasets("regression"))
        + " (default diamonds; image sets under --data-dir) or a FILE.csv; --method is one of: "
        + ", ".join(_regression_methods()),
    )
    g.add_argument(
        "--target",
        help="target column (default: the dataset's: diamonds price, agedb and imdb-wiki age; "
        "required for a CSV file)",
    )
    g.add_argument(
        "--bins",
        type=float,
        help="width of the label bins in target units (default: the dataset's: diamonds 100, "
        "ages 1; a CSV: its target range / 100 rounded up to 1, 2 or 5 x 10^k, about 40 to 100 "
        "bins, and at least 1 wide for integer targets)",
    )
    g.add_argument(
        "--backbone",
        choices=("mlp", "cnn"),
        help="the network body (default: mlp for tables, cnn for images)",
    )
    g.add_argument(
        "--hidden",
        type=_ints,
        help="MLP hidden sizes, e.g. 256,256 (default: 256,256; 128,128 for the quick preset)",
    )
    g.add_argument(
        "--target-transform",
        choices=("standardize", "log", "none"),
        help="what the network regresses (metrics stay in target units); default standardize",
    )
    g.add_argument(
        "--drop",
        type=_names,
        help="comma-separated columns not to use as features (default: none; every column but "
        "the target is a feature)",
    )
    g.add_argument("--image-size", type=int, help="images are resized to this size (default 32)")
    g.add_argument("--num-groups", type=int, help="Group-DIR: G (default 20)")
    g.add_argument("--lambda1", type=float, help="Group-DIR: weight of L_mse (default 1)")
    g.add_argument("--lambda2", type=float, help="Group-DIR: weight of L_soft (default 1)")
    g.add_argument("--group-beta", type=float, help="Group-DIR: soft-label descent β (default 1)")
    g.add_argument("--temperature", type=float, help="Group-DIR: contrastive t (default 2)")
    g.add_argument(
        "--routing",
        choices=("hard", "soft"),
        help="Group-DIR test-time routing: the most likely group's head, or all heads weighted "
        "by their probabilities (default hard)",
    )
    g.add_argument(
        "--group-edges",
        choices=("equal-width", "equal-frequency"),
        help="Group-DIR: groups of equal width over the targets (the paper's, default) or of "
        "equal training counts (see docs/dir.md)",
    )
    g.add_argument("--bmc-init-sigma", type=float, help="BMC: initial noise σ (default 1)")


def _regression_methods() -> tuple[str, ...]:
    from longtail.engine.regression import REGRESSION_METHODS

    return tuple(REGRESSION_METHODS)


def _regression_options(args: argparse.Namespace, command: str) -> tuple[str, dict[str, Any]]:
    """(preset, RegressionConfig fields) from a config file and the options given."""
    _refuse_options(
        args,
        (*_CLASSIFICATION_ONLY, "loss_kw", "compile"),
        "regression",
        "classification runs take (a regression data set keeps its own imbalance)",
    )
    _refuse_options(
        args,
        ("val_per_class",),
        "regression",
        "classification runs take (a regression run chooses its epoch on its own validation "
        "split, `val_per_bin` rows of each target bin)",
    )
    _refuse_options(args, _MULTILABEL_ONLY, "regression", "multi-label runs take")
    options = _fields_from_args(args, "regression")
    preset = options.pop("preset", None) or ("paper" if command == "train" else "quick")
    options.setdefault("dataset", "diamonds")
    return preset, options


def _regression_errors(err: ImportError) -> ValueError:
    """A missing optional dependency is the user's to install: one line, not a traceback."""
    return ValueError(str(err))


def _cmd_train_regression(args: argparse.Namespace) -> int:
    from longtail.engine.regression import (
        check_regression_data,
        make_regression_config,
        train_regression,
    )

    preset, options = _regression_options(args, "train")
    config = make_regression_config(preset, **options)
    _check_out(args.out)
    try:
        check_regression_data(config)
        _note_no_out(args)
        before = _finished(args.out)
        record = train_regression(config, args.out, progress=False if args.no_progress else None)
    except ImportError as e:
        raise _regression_errors(e) from e
    if before:
        _note_finished(args.out, record)
    m = record["metrics"]

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}"

    # an MAE means little without the number of rows behind it (DIR test sets are small)
    sizes = record.get("data") or {}
    rows = ", ".join(
        f"{sizes[k]} {name} rows"
        for k, name in (("test_size", "test"), ("val_size", "validation"))
        if isinstance(sizes.get(k), int)
    )
    print(
        f"{record['method']} on {record['dataset']} ({record['target']}"
        f"{'; ' + rows if rows else ''}): test MAE "
        f"{num(m['mae'])}, many/medium/few {num(m['mae_many'])}/{num(m['mae_medium'])}/"
        f"{num(m['mae_few'])}, GM {num(m['gm'])} (weights of epoch {m['best_epoch'] + 1} of "
        f"{record['epochs']}, best validation MAE {num(m['val_mae'])}; last epoch: test MAE "
        f"{num(m['last_mae'])}) ({_took(record['seconds'], before)})"
    )
    if args.out:
        print(f"results: {Path(args.out) / 'result.json'}")
    return 0


def _cmd_bench_dir(args: argparse.Namespace) -> int:
    from longtail.bench.runner import dir_jobs, dir_sensitivity_jobs
    from longtail.engine.regression import check_regression_data

    preset, options = _regression_options(args, "bench")
    dataset = options.pop("dataset")
    if args.table == "dir":
        methods = _distinct_names("--methods", args.methods)
        jobs = dir_jobs(dataset, preset, _seeds(args), methods, **options)
    else:
        grid = {
            k: v
            for k, v in (
                ("groups", args.sweep_groups),
                ("lambda1s", _floats("--sweep-lambda1", args.sweep_lambda1)),
                ("lambda2s", _floats("--sweep-lambda2", args.sweep_lambda2)),
            )
            if v
        }
        jobs = dir_sensitivity_jobs(dataset, preset, _seeds(args), **grid, **options)
    _check_grid(jobs, args)
    try:
        # load the data and check every config once, before any run starts
        for job in jobs:
            check_regression_data(job.config)
    except ImportError as e:
        raise _regression_errors(e) from e
    except ValueError as e:
        if args.table == "dir" or "`num_groups`" not in str(e):
            raise
        from longtail.bench.runner import SENSITIVITY_GROUPS

        swept = args.sweep_groups or SENSITIVITY_GROUPS
        given = "" if args.sweep_groups else " (the default)"
        raise ValueError(
            f"{e} The sweep's G values are {','.join(map(str, swept))}{given}: give "
            "--sweep-groups with values that fit this data."
        ) from e
    return _run_jobs(jobs, args)


# ---- long-tailed multi-label classification (train --task multilabel, bench multilabel) ---------
def _multilabel_presets() -> tuple[str, ...]:
    from longtail.engine.multilabel import MULTILABEL_PRESETS

    return tuple(MULTILABEL_PRESETS)


def _multilabel_methods() -> tuple[str, ...]:
    from longtail.engine.multilabel import MULTILABEL_METHODS

    return tuple(MULTILABEL_METHODS)


def _add_multilabel_options(p: argparse.ArgumentParser, train: bool = False) -> None:
    g = p.add_argument_group(
        "multi-label (--task multilabel, bench multilabel)",
        "--dataset is one of "
        + ", ".join(list_datasets("multilabel"))
        + " (default; built from Fashion-MNIST) or an .npz file with x_train, y_train (N, C "
        "multi-hot), x_test, y_test [, x_val, y_val]; --method is one of: "
        + ", ".join(_multilabel_methods()),
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        help="for an .npz without x_val: the fraction of its training examples set apart as the "
        "validation split that tunes the per-label thresholds (default 0.1)",
    )
    g.add_argument(
        "--threshold", type=float, help="the F1 threshold on sigmoid scores (default 0.5)"
    )
    if train:
        g.add_argument(
            "--eval-split",
            choices=("test", "validation"),
            help="the split the record's metrics are computed on: test (default; thresholds "
            "tuned on validation), or validation alone, the test split never scored (to choose "
            "a recipe, as bench multilabel-preset-selection does)",
        )


def _multilabel_options(args: argparse.Namespace, command: str) -> tuple[str, dict[str, Any]]:
    """(preset, MultiLabelConfig fields) from a config file and the options given."""
    _refuse_options(
        args,
        (*_CLASSIFICATION_ONLY[:3], "val_per_class", "compile"),
        "multi-label",
        "classification runs take (a multi-label data set keeps its own label frequencies)",
    )
    _refuse_options(args, _REGRESSION_OPTIONS, "multi-label", "regression runs take")
    options = _fields_from_args(args, "multilabel")
    preset = options.pop("preset", None) or ("default" if command == "train" else "cpu")
    own = options.get("loss_kwargs", {})
    if not isinstance(own, dict):
        raise expected("loss_kwargs", "a table of loss keyword arguments", repr(own))
    kw = _loss_kwargs(args.loss_kw)
    if kw:
        options["loss_kwargs"] = {**own, **kw}
    if args.no_download:
        options["download"] = False
    options.setdefault("dataset", "fashion-mnist-mosaic-lt")
    return preset, options


def _cmd_train_multilabel(args: argparse.Namespace) -> int:
    from longtail.engine.multilabel import (
        make_multilabel_config,
        prepare_multilabel_data,
        train_multilabel,
    )

    preset, options = _multilabel_options(args, "train")
    config = make_multilabel_config(preset, **options)
    _check_out(args.out)
    prepare_multilabel_data(config)  # a missing or malformed data set fails before --out is made
    _note_no_out(args)
    before = _finished(args.out)
    record = train_multilabel(config, args.out, progress=False if args.no_progress else None)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 speaks for the run
    if before:
        _note_finished(args.out, record)
    m = record["metrics"]
    # P@k exists for k <= C only (the metrics leave the others out, as the report does)
    ks = "".join(f", P@{k} {_pct(m[f'p@{k}'])}" for k in record["config"]["ks"] if f"p@{k}" in m)
    on_val = record.get("eval_split") == "validation"
    from longtail.bench.multilabel import labels_without_validation_positive

    absent = labels_without_validation_positive(record)
    split = (
        f"{record['data']['val_size']} validation examples; the test split not scored"
        + (f"; no validation positive for {absent}" if absent else "")
        if on_val
        else f"{record['data']['test_size']} test examples"
    )
    untuned = (
        f" (no validation positive, so {record['config']['threshold']:g} kept: "
        f"{absent.split(' (')[0]})"
        if absent
        else ""
    )
    tuned = (
        ""
        if on_val
        else f", at thresholds tuned on validation {_pct(m.get('tuned_micro_f1'))}/"
        f"{_pct(m.get('tuned_macro_f1'))}{untuned}"
    )
    print(
        f"{record['method']} on {dataset_label(record['dataset'])} ({split}): "
        f"mAP {_pct(m['map'])}, head/medium/tail {_pct(m.get('head_map'))}/"
        f"{_pct(m.get('medium_map'))}/{_pct(m.get('tail_map'))}; micro/macro F1 at "
        f"{record['config']['threshold']:g} {_pct(m['micro_f1'])}/{_pct(m['macro_f1'])}"
        f"{tuned}{ks} ({_took(record['seconds'], before)})"
    )
    if args.out:
        print(f"results: {Path(args.out) / 'result.json'}")
    return 0


def _cmd_bench_multilabel(args: argparse.Namespace) -> int:
    from longtail.bench.runner import multilabel_jobs
    from longtail.engine.multilabel import prepare_multilabel_data
    from longtail.engine.multilabel.config import check_method_on_data

    preset, options = _multilabel_options(args, "bench")
    dataset = options.pop("dataset")
    methods = _distinct_names("--methods", args.methods)
    jobs = multilabel_jobs(dataset, preset, _seeds(args), methods, **options)
    _check_grid(jobs, args)
    data = prepare_multilabel_data(jobs[0].config)  # load the data once, before any run starts
    for job in jobs:  # and refuse a method that cannot learn from it, before any run starts
        check_method_on_data(
            job.config.spec,
            data.counts.tolist(),
            len(data.y_train),
            data.label_names,
            job.config.loss_kwargs,
        )
    return _run_jobs(jobs, args)


def _check_timing(args: argparse.Namespace) -> None:
    """``--timing`` is one run alone on the machine: not with --jobs > 1 or --seeds > 1
    (without --jobs, one at a time)."""
    if args.timing and args.jobs is None:
        args.jobs = 1
    if args.timing and args.jobs != 1:
        raise expected("--jobs", "1 with --timing (its time is that of one run alone)", args.jobs)
    if args.timing and args.seeds != 1:
        raise expected("--seeds", "1 with --timing (one run per candidate, seed 0)", args.seeds)
    if args.timing and args.first_seed != 0:
        raise expected("--first-seed", "0 with --timing (its run is seed 0)", args.first_seed)


def _cmd_multilabel_selection(args: argparse.Namespace) -> int:
    """The multi-label cpu preset's selection grid, scored on the validation split only."""
    _check_timing(args)
    from longtail.bench.runner import MULTILABEL_CANDIDATES, multilabel_selection_jobs
    from longtail.engine.multilabel import prepare_multilabel_data

    _, options = _multilabel_options(args, "bench")
    jobs = _selection_grid(args, options, MULTILABEL_CANDIDATES, multilabel_selection_jobs)
    prepare_multilabel_data(jobs[0].config)
    return _run_jobs(jobs, args)


def _cmd_inspect(args: argparse.Namespace) -> int:
    """``longtail inspect DATASET``: :func:`longtail.data.inspect.inspect_dataset`, as text,
    JSON (``--json``) and a PNG (``--plot``)."""
    from longtail.data.inspect import (
        format_inspection,
        inspect_dataset,
        plot_format,
        plot_inspection,
    )

    if args.plot:  # before the data is read: a bad name is refused at once
        plot_format(args.plot, "--plot")
    report = inspect_dataset(
        args.dataset,
        data_dir=args.data_dir,
        download=not args.no_download,
        profile=args.profile,
        ratio=args.ratio,
        n_max=args.n_max,
        target=args.target,
        bins=args.bins,
        drop=args.drop or (),
        beta=args.beta,
        many_threshold=args.many_threshold,
        few_threshold=args.few_threshold,
    )
    if args.plot:
        try:
            report["plot"] = str(plot_inspection(report, args.plot))
        except ImportError as err:
            raise ValueError(str(err)) from err
        except OSError as err:  # a read-only folder, a folder named like the file
            got = f"{args.plot!r} ({err.strerror or err})"
            raise expected("--plot", "an image file path that can be written", got) from err
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
        return 0
    print(format_inspection(report))
    if args.plot:
        print(f"wrote {report['plot']}")
    return 0


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help with every option's default after its help text.

    A fixed default is shown as ``(default: X)``, as ``argparse.ArgumentDefaultsHelpFormatter``
    shows it. Left as written: help that already says its default (one that depends on the
    preset or the task, said in words: ``(default: the preset's: ...)``), and options without a
    value to show (``None``, a flag's ``False``) rather than printing ``None``.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
        ):
            return text
        return f"{text} (default: %(default)s)"


class _TopHelpFormatter(_HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The top-level help: its epilog is a table and a list of commands, kept as written."""


# The kinds of `longtail bench`, with a line each for `longtail --help`.
_BENCH_KINDS = {
    "table1": "methods × settings on a classification set (Table 1 of the MM paper)",
    "mm-ablation": "MM-DRW's β × δ⁻ grid (its Tables 2-3)",
    "preset-selection": "the CPU preset's candidates, judged by convergence on validation",
    "multilabel-preset-selection": "the multi-label cpu preset's candidates, the same way",
    "dir": "deep imbalanced regression: the DIR methods on a table or on images",
    "dir-sensitivity": "Group-DIR with G, λ1, λ2 varied one at a time",
    "multilabel": "the long-tailed multi-label methods",
}

_EXAMPLES = """examples:
  longtail inspect fashion-mnist --profile exp --ratio 100 --plot counts.png
  longtail train --dataset fashion-mnist --profile exp --ratio 100 --method mm-drw \\
      --preset cpu --out runs/mm-drw
  longtail bench table1 --dataset fashion-mnist --settings exp-100,step-10 --out results/t1
  longtail report results/t1
  longtail losses 'mm*'"""


def _top_epilog() -> str:
    width = max(map(len, _BENCH_KINDS))
    kinds = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in _BENCH_KINDS.items())
    return (
        f"bench kinds (longtail bench KIND --help):\n{kinds}\n\n"
        "settings, one vocabulary: exp100 or exp-100 (the exp profile of ratio 100, as grid "
        "runs\nand progress lines name it), step-10, natural (the data's own imbalance); "
        "`bench\n--settings exp-100` trains what `train --profile exp --ratio 100` trains.\n\n"
        f"{_EXAMPLES}\n\nRun `longtail COMMAND --help` for the options of a command."
    )


# ---- the help of `bench`: its options grouped by the kinds that take them ----------------------
_ALL_KINDS = tuple(_BENCH_KINDS)
_SELECTION_KINDS = ("preset-selection", "multilabel-preset-selection")
_RECIPE_KINDS = tuple(k for k in _ALL_KINDS if k not in _SELECTION_KINDS)
# The options (by dest) of each part of a grid, in the help of `bench KIND`; the rest are the
# settings of every run of the grid.
_BENCH_GRID = (
    "seeds",
    "first_seed",
    "methods",
    "settings",
    "betas",
    "deltas",
    "candidates",
    "timing",
)
_BENCH_GRID += ("sweep_groups", "sweep_lambda1", "sweep_lambda2")
_BENCH_RUNNING = ("jobs", "launcher", "launcher_opt", "ray_address", "out", "dry_run")
_BENCH_RUNNING += ("no_report", "no_progress")
_RECIPE_OPTIONS = ("preset", "epochs", "batch_size", "lr", "model", "width", "many_threshold")
_RECIPE_OPTIONS += ("few_threshold",)
# The kinds of `bench` that take each option; an option that is not here fails build_parser
# (tests/test_cli_help.py), so a new option says which kinds it is for.
_BENCH_TAKES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("config", "dataset", "data_dir", "threads", "log"), _ALL_KINDS),
    **dict.fromkeys(_BENCH_RUNNING, _ALL_KINDS),
    "no_download": (
        "table1",
        "mm-ablation",
        "preset-selection",
        "multilabel",
        "multilabel-preset-selection",
    ),
    **dict.fromkeys(_RECIPE_OPTIONS, _RECIPE_KINDS),
    **dict.fromkeys(("n_max", "val_per_class", "compile"), ("table1", "mm-ablation")),
    "eval_every": ("table1", "mm-ablation", "multilabel"),
    "loss_kw": ("table1", "multilabel"),
    **dict.fromkeys(_REGRESSION_OPTIONS, ("dir", "dir-sensitivity")),
    **dict.fromkeys(_MULTILABEL_OPTIONS, ("multilabel",)),
    "seeds": _ALL_KINDS,
    "first_seed": _ALL_KINDS,
    "methods": ("table1", "dir", "multilabel"),
    "settings": ("table1", "mm-ablation"),
    "betas": ("mm-ablation",),
    "deltas": ("mm-ablation",),
    "candidates": _SELECTION_KINDS,
    "timing": _SELECTION_KINDS,
    **dict.fromkeys(("sweep_groups", "sweep_lambda1", "sweep_lambda2"), ("dir-sensitivity",)),
}


def _kinds_text(kinds: Sequence[str]) -> str:
    if tuple(kinds) == _ALL_KINDS:
        return "every kind"
    if tuple(kinds) == _RECIPE_KINDS:
        return "every kind but the preset selections"
    return ", ".join(kinds)


def _bench_description() -> str:
    width = max(map(len, _BENCH_KINDS))
    kinds = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in _BENCH_KINDS.items())
    return (
        "Run a grid of runs, one result JSON each; rerunning skips finished runs.\n\n"
        f"kinds (`longtail bench KIND --help` lists the options of one):\n{kinds}"
    )


def _bench_kind_details(kind: str) -> tuple[str, str]:
    """What a `bench KIND` grid trains, and the data its --dataset takes, for KIND's help."""
    from longtail.bench import runner

    def listed(values: Sequence[float]) -> str:
        return ",".join(f"{v:g}" for v in values)

    table1 = ",".join(f"{p_}{r:g}" for p_, r in runner.TABLE1_SETTINGS)
    classification = (
        ", ".join(list_datasets("classification"))
        + ", a path to an .npz file, a folder of images with a sub-folder per class, or a "
        "folder saved by Hugging Face datasets' save_to_disk (default: fashion-mnist)"
    )
    regression = (
        ", ".join(list_datasets("regression"))
        + " (the image sets under --data-dir), or a FILE.csv with --target (default: diamonds)"
    )
    multilabel = (
        ", ".join(list_datasets("multilabel"))
        + " (built from Fashion-MNIST; the default) or an .npz file with x_train, y_train (N, C "
        "multi-hot), x_test, y_test [, x_val, y_val]"
    )
    sensitivity = (
        f"G in {listed(runner.SENSITIVITY_GROUPS)}, λ1 in {listed(runner.SENSITIVITY_LAMBDA1)} "
        f"and λ2 in {listed(runner.SENSITIVITY_LAMBDA2)}"
    )
    details = {
        "table1": (
            "Table 1 of the MM paper: every method of --methods (default: Table 1's) on every "
            f"setting of --settings (default {table1}), seeds 0..N-1 each (--seeds; from K on "
            "with --first-seed K); every run trains the recipe of --preset (default cpu).",
            classification,
        ),
        "mm-ablation": (
            "MM-DRW's β × δ⁻ grid (Tables 2-3 of the MM paper): MM-DRW with every β of --betas "
            f"(default {listed(runner.ABLATION_BETAS)}) and δ⁻ of --deltas (default "
            f"{listed(runner.ABLATION_DELTAS)}) on each setting of --settings (default exp100); "
            "the recipe of --preset (default cpu).",
            classification,
        ),
        "preset-selection": (
            "The CPU preset's selection: each candidate recipe of --candidates (default: all) "
            "trained with its own settings on a balanced validation split and judged by "
            "convergence (docs/preset-selection.md); only the data, threads and loggers can be "
            "set.",
            classification,
        ),
        "multilabel-preset-selection": (
            "The multi-label cpu preset's selection: each candidate recipe of --candidates "
            "(default: all) trained with BCE, ASL and DB at its own length and twice it, "
            "scored on the data set's validation split only, and judged by convergence "
            "(docs/multilabel.md); only the data, threads and loggers can be set.",
            multilabel,
        ),
        "dir": (
            "Deep imbalanced regression: the DIR methods of --methods (default: "
            + ", ".join(_regression_methods())
            + "), preset quick.",
            regression,
        ),
        "dir-sensitivity": (
            f"Group-DIR with {sensitivity} varied one at a time around G=20, λ1=λ2=1 "
            "(preset quick).",
            regression,
        ),
        "multilabel": (
            "Long-tailed multi-label classification: the multi-label methods of --methods "
            "(default: " + ", ".join(_multilabel_methods()) + "), preset cpu.",
            multilabel,
        ),
    }
    return details[kind]


def _group_bench_options(p: argparse.ArgumentParser) -> None:
    """Regroup the options of `bench` in its help by the kinds that take them.

    The options are added by the functions that `train` shares; their groups there (with notes
    on `--task` and `--method`, which `bench` does not take) are replaced by: the grid (each
    option's help names its kinds), the settings of every run, one group per set of kinds, and
    running the grid.
    """
    # argparse has no public API to move an action between groups: its lists are edited here
    actions = [a for a in p._actions if a.option_strings and a.dest != "help"]
    unknown = sorted(a.dest for a in actions if a.dest not in _BENCH_TAKES)
    if unknown:
        raise LookupError(f"_BENCH_TAKES does not say which bench kinds take {unknown}")
    each = {"table1, mm-ablation, preset-selection": "table1", "dir, dir-sensitivity": "dir"}
    each["multilabel, multilabel-preset-selection"] = "multilabel"
    for action in actions:  # the help shared with `train` speaks of --task: bench's own
        if action.dest == "dataset":
            action.help = "; ".join(f"{k}: {_bench_kind_details(v)[1]}" for k, v in each.items())
    for group in p._action_groups:
        group._group_actions[:] = [a for a in group._group_actions if a not in actions]
    p._action_groups[:] = [g for g in p._action_groups if g._group_actions]
    grid = p.add_argument_group("the grid (each option names the kinds that take it)")
    recipe: dict[tuple[str, ...], Any] = {}
    grid._group_actions += sorted(
        (a for a in actions if a.dest in _BENCH_GRID), key=lambda a: _BENCH_GRID.index(a.dest)
    )
    for action in actions:
        kinds = _BENCH_TAKES[action.dest]
        if action.dest not in _BENCH_GRID and action.dest not in _BENCH_RUNNING:
            if kinds not in recipe:
                title = f"settings of the runs ({_kinds_text(kinds)})"
                recipe[kinds] = p.add_argument_group(title)
            recipe[kinds]._group_actions.append(action)
    running = p.add_argument_group("running the grid (every kind)")
    running._group_actions += [a for a in actions if a.dest in _BENCH_RUNNING]


def _bench_kind_parser(bench: argparse.ArgumentParser, kind: str) -> argparse.ArgumentParser:
    """A parser that only formats the help of `bench KIND`: the options KIND takes."""
    import textwrap

    width = min(shutil.get_terminal_size((80, 20)).columns, 100) - 2
    text, datasets = _bench_kind_details(kind)
    k = argparse.ArgumentParser(
        prog=f"{bench.prog} {kind}",
        description=textwrap.fill(text, width, break_on_hyphens=False)
        + "\n\nRerunning the command skips finished runs.",
        formatter_class=_TopHelpFormatter,
        allow_abbrev=False,
    )
    actions = [a for a in bench._actions if a.option_strings and a.dest != "help"]
    sections = (
        ("the grid", lambda d: d in _BENCH_GRID),
        ("settings of the runs", lambda d: d not in _BENCH_GRID and d not in _BENCH_RUNNING),
        ("running the grid", lambda d: d in _BENCH_RUNNING),
    )
    for title, belongs in sections:
        group = k.add_argument_group(title)
        for action in actions:
            if belongs(action.dest) and kind in _BENCH_TAKES[action.dest]:
                # "dir-sensitivity: the G values": the kind is the help's title already
                shown = copy.copy(action)
                head, sep, rest = (action.help or "").partition(": ")
                if sep and set(head.split(", ")) <= set(_BENCH_KINDS):
                    shown.help = rest
                if action.dest == "dataset":
                    shown.help = datasets
                group._add_action(shown)
    return k


class _BenchHelp(argparse._HelpAction):
    """`bench --help`: every option, grouped by kind; `bench KIND --help`: KIND's alone."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        kind = getattr(namespace, "table", None)
        shown = _bench_kind_parser(parser, kind) if kind in _BENCH_KINDS else parser
        shown.print_help()
        parser.exit()


def _add_parser(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    # allow_abbrev=False on every parser: argparse would take `--method ldam` on `bench` for
    # `--methods ldam`, and `--methods erm --method ldam` would then run ldam alone
    kwargs.setdefault("formatter_class", _HelpFormatter)
    return sub.add_parser(name, allow_abbrev=False, **kwargs)


def _add_inspect(sub: Any) -> None:
    p = _add_parser(
        sub,
        "inspect",
        help="describe a data set's imbalance: class counts, imbalance ratio, Gini, effective "
        "numbers, many/medium/few, a plot, and what to run next",
        description="Describe the training data of DATASET as a run sees it: counts per class "
        "(per label; per DIR label bin for regression), the imbalance ratio, the Gini "
        "coefficient of the counts, the effective number of samples per class (Cui et al. "
        "2019), the many/medium/few split (more than 100 / fewer than 20 training examples), "
        "class names where the data has them, and the commands to run next.",
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help="a registered dataset ("
        + ", ".join(list_datasets())
        + "), an .npz file (y_train 1-D: classification; (N, C) multi-hot: multi-label), a "
        "folder of class folders of images or a Hugging Face save_to_disk folder "
        "(classification), or a regression .csv file (with --target)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="folder holding the dataset files (default: the system's and the user cache's "
        "dataset folders)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download a dataset (default: download)"
    )
    p.add_argument(
        "--profile",
        choices=("exp", "step", "natural"),
        help="classification: the long-tailed subset that a run with this profile trains on, "
        "built by the engine's own data preparation (default: the data as it is, = natural)",
    )
    p.add_argument(
        "--ratio",
        type=float,
        help="with --profile exp or step: the imbalance ratio n_max / n_min (default: 100, as "
        "train)",
    )
    p.add_argument(
        "--n-max",
        type=int,
        help="with --profile exp or step: training examples of the head class (default: the "
        "most the profile can take)",
    )
    p.add_argument(
        "--target",
        help="regression: the target column (default: the dataset's; required for a CSV file)",
    )
    p.add_argument(
        "--bins",
        type=float,
        help="regression: width of the DIR label bins (default: the dataset's; a CSV: about "
        "100 bins)",
    )
    p.add_argument(
        "--drop",
        type=_names,
        help="regression: comma-separated columns not used as features, e.g. text columns "
        "(default: none)",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=0.9999,
        help="β of the effective number of samples (1 - β^n) / (1 - β), in [0, 1] (1: n itself)",
    )
    p.add_argument("--many-threshold", type=int, default=100, help="many-shot: more than this many")
    p.add_argument("--few-threshold", type=int, default=20, help="few-shot: fewer than this many")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="write an image (.png, .pdf or .svg): the class counts sorted from the head, log "
        "scale, coloured by region (regression: the target histogram) (default: no plot)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=_cmd_inspect)


def _add_train(sub: Any) -> None:
    p = _add_parser(
        sub,
        "train",
        help="train one run (resumes when --out holds a checkpoint of the same run)",
        description="Train one run; running the same command again resumes from --out.",
    )
    _add_train_options(p)
    p.add_argument(
        "--task",
        choices=_TASKS,
        default="classification",
        help="classification (default), deep imbalanced regression, or long-tailed multi-label "
        "classification",
    )
    _add_regression_options(p)
    _add_multilabel_options(p, train=True)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output folder: config, checkpoint, log.jsonl, result.json (default: none: "
        "nothing is saved and the run cannot resume)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress lines on stderr (schedule warnings and a resume are still said)",
    )
    p.set_defaults(func=_cmd_train)


def _add_bench_grid_options(p: argparse.ArgumentParser) -> None:
    """The options of `bench` that span its grid: sweeps, seeds, methods, candidates, settings."""
    from longtail.bench import runner

    def listed(values: Sequence[float]) -> str:
        return ",".join(f"{v:g}" for v in values)

    p.add_argument(
        "--sweep-groups",
        type=_ints,
        help=f"dir-sensitivity: the G values (default {listed(runner.SENSITIVITY_GROUPS)})",
    )
    p.add_argument(
        "--sweep-lambda1",
        help=f"dir-sensitivity: the λ1 values (default {listed(runner.SENSITIVITY_LAMBDA1)})",
    )
    p.add_argument(
        "--sweep-lambda2",
        help=f"dir-sensitivity: the λ2 values (default {listed(runner.SENSITIVITY_LAMBDA2)})",
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="how many seeds: K..K+N-1 for --first-seed K, 0..N-1 by default (default 1; 2 for "
        "the preset selections, whose convergence test needs a spread over seeds, and 1 with "
        "--timing)",
    )
    p.add_argument(
        "--first-seed",
        type=int,
        default=0,
        metavar="K",
        help="the grid's first seed (default 0): --seeds 1 --first-seed 2 runs seed 2 alone, to "
        "add a seed to a grid or share one grid's seeds among machines",
    )
    p.add_argument(
        "--methods",
        help="table1, dir, multilabel: comma-separated methods (default: all of the kind's: "
        "Table 1's, the DIR methods or the multi-label methods)",
    )
    p.add_argument(
        "--candidates",
        help="preset-selection, multilabel-preset-selection: comma-separated candidates "
        "(default: all)",
    )
    p.add_argument(
        "--timing",
        action="store_true",
        help="preset-selection, multilabel-preset-selection: one run per candidate, to run "
        "alone on an idle machine (--jobs 1): its time is criterion (c)",
    )
    settings = ",".join(f"{p_}{r:g}" for p_, r in runner.TABLE1_SETTINGS)
    p.add_argument(
        "--settings",
        help="table1, mm-ablation: comma-separated settings, each exp or step and a ratio "
        "(exp100 or exp-100: what `train --profile exp --ratio 100` trains), or natural (the "
        f"data's own imbalance) (default: table1 {settings}; mm-ablation exp100)",
    )
    p.add_argument(
        "--betas",
        help=f"mm-ablation: comma-separated β values (default {listed(runner.ABLATION_BETAS)})",
    )
    p.add_argument(
        "--deltas",
        help=f"mm-ablation: comma-separated δ⁻ values (default {listed(runner.ABLATION_DELTAS)})",
    )


def _add_bench_running_options(p: argparse.ArgumentParser) -> None:
    """The options of `bench` on running its grid: jobs, the launcher, --out, reporting."""
    from longtail.bench.launchers import LAUNCHERS

    p.add_argument(
        "--jobs",
        type=int,
        help="runs at once (default: 1 process with --launcher local; with submitit or ray, "
        "all runs are submitted and the cluster schedules them, --jobs N caps them at N)",
    )
    p.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="what runs the grid's runs: local (a process per run on this machine), submitit "
        "(SLURM jobs, or cluster=local), ray (tasks on a Ray cluster); same records, skipping "
        "and resuming (needs longtail[launchers] for submitit and ray)",
    )
    p.add_argument(
        "--launcher-opt",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the launcher, repeatable: submitit: partition, time (minutes), "
        "cpus, cluster (slurm; local or debug where there is no SLURM), folder, or any "
        "submitit parameter (slurm_account, mem_gb, ...); ray: cpus, gpus, or any task option "
        "(memory, ...) (default: none: 1 CPU per run, 24 h on SLURM)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --launcher ray: the cluster (default: $RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="results folder (required): a folder per run, the report at the end",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress lines on stderr (the grid's one-line summary of what is finished and "
        "what runs, schedule warnings and a resume are still said)",
    )


def _add_bench(sub: Any) -> None:
    p = _add_parser(
        sub,
        "bench",
        help="run a grid: " + ", ".join(_BENCH_KINDS),
        description=_bench_description(),
        formatter_class=_TopHelpFormatter,
        add_help=False,
    )
    p.add_argument(
        "-h",
        "--help",
        action=_BenchHelp,
        help="show this help (`bench KIND --help`: the options of KIND alone) and exit",
    )
    p.add_argument(
        "table",
        metavar="KIND",
        choices=tuple(_BENCH_KINDS),
        help="the grid to run, one of the kinds listed above: " + ", ".join(_BENCH_KINDS),
    )
    _add_train_options(p, with_run=False)
    _add_regression_options(p)
    _add_multilabel_options(p)
    _add_bench_grid_options(p)
    _add_bench_running_options(p)
    p.set_defaults(func=_cmd_bench)
    _group_bench_options(p)


def _add_report(sub: Any) -> None:
    p = _add_parser(sub, "report", help="tables (markdown) and plots (PNG) of a results folder")
    p.add_argument(
        "directory",
        metavar="DIR",
        help="a results folder: the --out of `longtail bench` (or of runs of `train`)",
    )
    p.add_argument("--out", metavar="DIR", help="where to write (default: the results folder)")
    p.set_defaults(func=_cmd_report)


def _add_losses(sub: Any) -> None:
    p = _add_parser(
        sub, "losses", help="list the registered losses: family, defaults, paper, description"
    )
    p.add_argument("filter", nargs="?", default="", help="glob on the name, e.g. 'mm*'")
    p.add_argument(
        "--family",
        choices=tuple(LOSS_FAMILIES),
        help="only the losses of this family (default: every family)",
    )
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the registry as JSON")
    shown.add_argument(
        "--markdown", action="store_true", help="print the README's loss table (markdown)"
    )
    p.set_defaults(func=_cmd_losses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longtail",
        description="Learning from imbalanced (long-tailed) data: inspect a data set, train "
        "a run,\nrun a benchmark grid, report it.",
        epilog=_top_epilog(),
        formatter_class=_TopHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"longtail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    _add_inspect(sub)
    _add_train(sub)
    _add_bench(sub)
    _add_report(sub)
    _add_losses(sub)
    return parser


@contextlib.contextmanager
def _notes(command: str) -> Iterator[None]:
    """Show longtail's own warnings (``UserWarning`` raised in the package: "the bins are too
    narrow", "this option sets nothing here") as one line each, ``longtail train: note: ...``,
    and each text once: a check that two layers make (the command, then the engine) is said
    once, and not as Python's "file:line: UserWarning" with a source line. Other warnings are
    shown as Python shows them."""
    package = str(Path(__file__).resolve().parent)
    shown: set[str] = set()
    python_shows = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(package):
            text = str(message)
            if text not in shown:
                shown.add(text)
                print(f"longtail {command}: note: {text}", file=sys.stderr)
            return
        python_shows(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = python_shows


#: What other trainers call some of longtail's options (Lightning, Keras, timm, transformers):
#: a config key or flag spelt so, or close to it, is pointed to longtail's own name.
_OTHER_NAMES = {
    "learning_rate": "lr",
    "base_lr": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "num_train_epochs": "epochs",
    "batchsize": "batch_size",
    "train_batch_size": "batch_size",
    "imbalance_ratio": "ratio",
    "imb_factor": "ratio",
    "loss": "method",
    "output_dir": "out",
    "data": "dataset",
}


#: Other tools' names for the imbalance ratio (a bench's --settings gives it).
_FOLDED_RATIO = ("imb_factor", "imbalance_ratio")


def _option_hint(word: str, known: Sequence[str]) -> str:
    """:func:`did_you_mean` over ``known`` (config keys, or flags such as ``--lr``), then over
    other tools' names for them (``learning_rate`` or ``lerning_rate``: ``lr``); a bench's
    ``--ratio`` or ``--profile`` is pointed to ``--settings``, which gives both."""
    bare = word.lstrip("-").replace("-", "_").lower()
    flags = {k.lstrip("-").replace("-", "_") for k in known}
    if bare in ("ratio", "profile", *_FOLDED_RATIO) and "settings" in flags and bare not in flags:
        dashes = "--" if word.startswith("--") else ""
        return (
            f" A bench takes profile and ratio together, as {dashes}settings: exp10, step100, "
            "natural, or several (exp100,step100,exp10,step10)."
        )
    hint = did_you_mean(word, known)
    if hint:
        return hint
    dashes = "--" if word.startswith("--") else ""
    spelt = {k.lstrip("-").replace("-", "_"): k for k in known}
    ours = {other: spelt[mine] for other, mine in _OTHER_NAMES.items() if mine in spelt}
    close = difflib.get_close_matches(bare, list(ours), n=1, cutoff=0.75)
    if not close:
        return ""
    name = ours[close[0]]
    shown = close[0].replace("_", "-") if dashes else close[0]
    return f" Did you mean {name!r} (what other tools call {dashes}{shown})?"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that an unknown option is refused by its command's parser
    (its usage, not the top level's) with the options it resembles (``--seed``: ``--seeds``)."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = _subparser(parser, args.command) if getattr(args, "command", None) else parser
        options = [o for a in command._actions for o in a.option_strings]
        flags = [e.split("=", 1)[0] for e in extras if e.startswith("-")]
        hint = _option_hint(flags[0], options) if flags else ""
        command.error(f"unrecognized arguments: {' '.join(extras)}.{hint}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "config", None):
            args = _apply_config_file(parser, argv, args)
        with _notes(args.command):
            return args.func(args)
    except _USER_ERRORS as e:
        print(f"longtail {args.command}: error: {_message(e)}", file=sys.stderr)
        return 2
    except ImportError as e:
        # an optional package the chosen option needs: our messages name the extra to install
        # ("pip install longtail[tensorboard]"); any other import failure is a bug: traceback
        if "pip install" not in str(e):
            raise
        print(f"longtail {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: what was finished is on disk (each epoch's checkpoint, each grid's records);
        # say how to go on instead of a traceback from inside torch
        out = getattr(args, "out", None)
        again = (
            f"; the same command resumes from what {out} holds"
            if out
            else " (without --out nothing was kept)"
        )
        print(f"longtail {args.command}: interrupted{again}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``longtail report DIR | head``): the work is
        # done and written; stop quietly, as other command-line tools do, instead of a
        # traceback. Point stdout at devnull so the interpreter's final flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
