"""The ``longtail`` command line: ``train``, ``bench``, ``report`` and ``losses``.

argparse stays here: the library takes a :class:`~longtail.engine.TrainConfig` (or, with
``--task regression``, a :class:`~longtail.engine.regression.RegressionConfig`), and this module
only turns options (and an optional TOML/JSON config file) into one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .engine.config import METHODS, PRESETS, TrainConfig, make_config
from .losses import get_loss_info, list_losses
from .models import MODELS


def _cmd_losses(args: argparse.Namespace) -> int:
    names = list_losses(args.filter)
    if args.json:
        rows = []
        for n in names:
            info = get_loss_info(n)
            rows.append(
                {
                    "name": n,
                    "description": info.description,
                    "paper": info.paper,
                    "needs_counts": info.needs_counts,
                    "target": info.target,
                    "defaults": info.defaults,
                }
            )
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(n) for n in names), default=4)
    print(f"{'name':<{width}}  counts  {'paper':<28}  description")
    for n in names:
        info = get_loss_info(n)
        counts = "yes" if info.needs_counts else "-"
        print(f"{n:<{width}}  {counts:<6}  {info.paper:<28}  {info.description}")
    return 0


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _loss_kwargs(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"longtail: --loss-kw expects KEY=VALUE, but got {pair!r}")
        out[key.replace("-", "_")] = _parse_value(value)
    return out


def _read_config_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"longtail: config file {path!r} does not exist")
    if p.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise SystemExit("longtail: TOML config files need Python >= 3.11; use JSON") from None
        data = tomllib.loads(p.read_text())
    else:
        data = json.loads(p.read_text())
    return {k.replace("-", "_"): v for k, v in data.items()}


# options of `train` / `bench` that both tasks take, and those of classification alone
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
_TRAIN_OPTIONS = (*_SHARED_OPTIONS, *_CLASSIFICATION_ONLY, "compile")


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    options = _read_config_file(args.config)
    preset = args.preset or options.pop("preset", "paper")
    options.pop("preset", None)
    for name in _TRAIN_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    kw = _loss_kwargs(args.loss_kw)
    if kw:
        options["loss_kwargs"] = {**options.get("loss_kwargs", {}), **kw}
    if args.no_download:
        options["download"] = False
    return make_config(preset, **options)


def _add_train_options(p: argparse.ArgumentParser, with_run: bool = True) -> None:
    p.add_argument("--config", help="TOML or JSON file of options (command-line options win)")
    p.add_argument(
        "--dataset",
        help="fashion-mnist (default), mnist, cifar10, cifar100, or a path to an .npz file",
    )
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--no-download", action="store_true", help="never download a dataset")
    p.add_argument("--preset", choices=tuple(PRESETS), help="paper (default for train) or quick")
    p.add_argument("--epochs", type=int, help="epochs (the schedule is rescaled to match)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--model", choices=MODELS)
    p.add_argument("--width", type=int, help="channels of the first ResNet stage")
    p.add_argument("--n-max", type=int, help="training examples of the head class")
    p.add_argument("--threads", type=int, help="torch threads per run")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="torch.compile the training step (default: on for --preset paper, off for quick)",
    )
    p.add_argument("--eval-every", type=int, help="evaluate every k epochs (0: at the end)")
    p.add_argument("--many-threshold", type=int, help="many-shot: > this many (default 100)")
    p.add_argument("--few-threshold", type=int, help="few-shot: < this many (default 20)")
    p.add_argument(
        "--loss-kw",
        action="append",
        metavar="KEY=VALUE",
        help="loss keyword argument, e.g. --loss-kw delta_minus=1.2 (repeatable)",
    )
    if with_run:
        p.add_argument("--profile", choices=("exp", "step"))
        p.add_argument("--ratio", type=float, help="imbalance ratio n_max / n_min (>= 1)")
        p.add_argument("--method", help=f"one of: {', '.join(METHODS)}")
        p.add_argument("--seed", type=int)


def _cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "task", "classification") == "regression":
        return _cmd_train_regression(args)
    from longtail.engine import train

    try:
        config = _config_from_args(args)
        record = train(config, args.out, progress=False if args.no_progress else None)
    except (ValueError, FileNotFoundError) as e:
        print(f"longtail train: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 speaks for the run
    m = record["metrics"]
    print(
        f"{record['method']} on {record['dataset']} {record['profile']}-{record['ratio']:g}: "
        f"top-1 error {m['top1_error']:.2f}%, balanced accuracy {m['balanced_accuracy']:.2f}%, "
        f"many/medium/few {_pct(m['many_acc'])}/{_pct(m['medium_acc'])}/{_pct(m['few_acc'])}, "
        f"ECE {m['ece']:.2f}% ({record['seconds'] / 60:.1f} min)"
    )
    if args.out:
        print(f"results: {Path(args.out) / 'result.json'}")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _settings(text: str | None) -> tuple[tuple[str, float], ...] | None:
    if not text:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        profile = "step" if part.startswith("step") else "exp" if part.startswith("exp") else None
        if profile is None:
            raise SystemExit(f"longtail: a setting is like exp100 or step10, but got {part!r}")
        try:
            out.append((profile, float(part[len(profile) :])))
        except ValueError:
            raise SystemExit(
                f"longtail: a setting is like exp100 or step10, got {part!r}"
            ) from None
    return tuple(out)


def _floats(text: str | None) -> tuple[float, ...] | None:
    return tuple(float(v) for v in text.split(",")) if text else None


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.table in ("dir", "dir-sensitivity"):
        return _cmd_bench_dir(args)
    from longtail.bench.runner import ablation_jobs, table1_jobs

    options = _read_config_file(args.config)
    for name in _TRAIN_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if args.no_download:
        options["download"] = False
    kw = _loss_kwargs(args.loss_kw)
    dataset = options.pop("dataset", "fashion-mnist")
    preset = args.preset or options.pop("preset", "quick")
    options.pop("preset", None)
    try:
        if args.table == "table1":
            if kw:
                options["loss_kwargs"] = kw
            methods = tuple(args.methods.split(",")) if args.methods else None
            jobs = table1_jobs(
                dataset, preset, args.seeds, methods, _settings(args.settings), **options
            )
        else:
            grid = {}
            if args.betas:
                grid["betas"] = _floats(args.betas)
            if args.deltas:
                grid["deltas"] = _floats(args.deltas)
            settings = _settings(args.settings) or (("exp", 100.0),)
            jobs = ablation_jobs(dataset, preset, args.seeds, settings=settings, **grid, **options)
        # load the data once up front: a missing dataset fails here, before any run starts
        from longtail.engine.train import prepare_data

        prepare_data(jobs[0].config)
    except (ValueError, FileNotFoundError) as e:
        print(f"longtail bench: error: {e}", file=sys.stderr)
        return 2
    return _run_jobs(jobs, args)


def _run_jobs(jobs: list[Any], args: argparse.Namespace) -> int:
    """List (``--dry-run``) or run a grid, then write its report; 1 if a run failed."""
    from longtail.bench.runner import run_grid

    if args.dry_run:
        for j in jobs:
            print(j.name)
        return 0
    summary = run_grid(jobs, args.out, workers=args.jobs, progress=not args.no_progress)
    if not args.no_report:
        _write_report(args.out, None)
    if summary["failed"]:
        print(f"{len(summary['failed'])} runs failed: {', '.join(summary['failed'])}")
        return 1
    return 0


def _write_report(directory: str, out: str | None) -> int:
    from longtail.bench.report import write_report

    try:
        paths = write_report(directory, out)
    except (ValueError, FileNotFoundError) as e:
        print(f"longtail report: error: {e}", file=sys.stderr)
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
# Regression options and the RegressionConfig field each sets; the shared options (--dataset,
# --method, --epochs, --seed, --batch-size, --lr, --model, --width, --threads, --data-dir,
# --many-threshold, --few-threshold) set the field of the same name.
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
    "bmc_init_sigma",
)


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _add_regression_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "regression (--task regression, bench dir)",
        "--dataset is diamonds (default), agedb or imdb-wiki (images under --data-dir) or a "
        "FILE.csv; --method is one of: " + ", ".join(_regression_methods()),
    )
    g.add_argument("--target", help="target column (diamonds: price; required for a CSV file)")
    g.add_argument(
        "--bins",
        type=float,
        help="width of the label bins in target units (diamonds: 100, ages: 1; CSV: ~100 bins)",
    )
    g.add_argument("--backbone", choices=("mlp", "cnn"), help="mlp for tables, cnn for images")
    g.add_argument("--hidden", type=_ints, help="MLP hidden sizes, e.g. 256,256")
    g.add_argument(
        "--target-transform",
        choices=("standardize", "log", "none"),
        help="what the network regresses (metrics stay in target units); default standardize",
    )
    g.add_argument("--drop", type=_names, help="comma-separated columns not to use as features")
    g.add_argument("--image-size", type=int, help="images are resized to this size (default 32)")
    g.add_argument("--num-groups", type=int, help="Group-DIR: G (default 20)")
    g.add_argument("--lambda1", type=float, help="Group-DIR: weight of L_mse (default 1)")
    g.add_argument("--lambda2", type=float, help="Group-DIR: weight of L_soft (default 1)")
    g.add_argument("--group-beta", type=float, help="Group-DIR: soft-label descent β (1)")
    g.add_argument("--temperature", type=float, help="Group-DIR: contrastive t (default 2)")
    g.add_argument("--routing", choices=("hard", "soft"), help="Group-DIR test-time routing")
    g.add_argument("--bmc-init-sigma", type=float, help="BMC: initial noise σ (default 1)")


def _regression_methods() -> tuple[str, ...]:
    from longtail.engine.regression import REGRESSION_METHODS

    return tuple(REGRESSION_METHODS)


def _regression_options(args: argparse.Namespace, command: str) -> tuple[str, dict[str, Any]]:
    """(preset, RegressionConfig fields) from a config file and the options given."""
    not_here = (*_CLASSIFICATION_ONLY, "loss_kw")
    given = [f"--{n.replace('_', '-')}" for n in not_here if getattr(args, n, None)]
    if given:
        raise ValueError(
            f"Expected regression options, but got {', '.join(given)}, which only classification "
            "runs take (a regression data set keeps its own imbalance)."
        )
    options = _read_config_file(args.config)
    options.pop("task", None)
    preset = args.preset or options.pop("preset", "paper" if command == "train" else "quick")
    options.pop("preset", None)
    for name in (*_SHARED_OPTIONS, *_REGRESSION_OPTIONS):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if options.get("dataset") is None:
        options["dataset"] = "diamonds"
    return preset, options


def _cmd_train_regression(args: argparse.Namespace) -> int:
    from longtail.engine.regression import (
        check_regression_data,
        make_regression_config,
        train_regression,
    )

    try:
        preset, options = _regression_options(args, "train")
        config = make_regression_config(preset, **options)
        check_regression_data(config)
        record = train_regression(config, args.out, progress=False if args.no_progress else None)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"longtail train: error: {e}", file=sys.stderr)
        return 2
    m = record["metrics"]

    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}"

    print(
        f"{record['method']} on {record['dataset']} ({record['target']}): test MAE "
        f"{num(m['mae'])}, many/medium/few {num(m['mae_many'])}/{num(m['mae_medium'])}/"
        f"{num(m['mae_few'])}, GM {num(m['gm'])} (weights of epoch {m['best_epoch'] + 1} of "
        f"{record['epochs']}, best validation MAE {num(m['val_mae'])}; last epoch: test MAE "
        f"{num(m['last_mae'])}) ({record['seconds'] / 60:.1f} min)"
    )
    if args.out:
        print(f"results: {Path(args.out) / 'result.json'}")
    return 0


def _cmd_bench_dir(args: argparse.Namespace) -> int:
    from longtail.bench.runner import dir_jobs, dir_sensitivity_jobs
    from longtail.engine.regression import check_regression_data

    try:
        preset, options = _regression_options(args, "bench")
        options.pop("method", None)
        options.pop("seed", None)
        dataset = options.pop("dataset")
        if args.table == "dir":
            methods = _names(args.methods) if args.methods else None
            jobs = dir_jobs(dataset, preset, args.seeds, methods, **options)
        else:
            grid = {
                k: v
                for k, v in (
                    ("groups", args.sweep_groups),
                    ("lambda1s", _floats(args.sweep_lambda1)),
                    ("lambda2s", _floats(args.sweep_lambda2)),
                )
                if v
            }
            jobs = dir_sensitivity_jobs(dataset, preset, args.seeds, **grid, **options)
        # load the data and check every config once, before any run starts
        for job in jobs:
            check_regression_data(job.config)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"longtail bench: error: {e}", file=sys.stderr)
        return 2
    return _run_jobs(jobs, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longtail", description="Learning from imbalanced (long-tailed) data."
    )
    parser.add_argument("--version", action="version", version=f"longtail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("losses", help="list the registered losses with their papers")
    p.add_argument("filter", nargs="?", default="", help="glob on the name, e.g. 'mm*'")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_losses)

    p = sub.add_parser(
        "train",
        help="train one run (resumes when --out holds a checkpoint of the same run)",
        description="Train one run; running the same command again resumes from --out.",
    )
    _add_train_options(p)
    p.add_argument(
        "--task",
        choices=("classification", "regression"),
        default="classification",
        help="classification (default) or deep imbalanced regression",
    )
    _add_regression_options(p)
    p.add_argument("--out", help="output folder (config, checkpoint, log.jsonl, result.json)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "bench",
        help="run a published table: table1 or mm-ablation",
        description="Run a grid of runs, one result JSON each; rerunning skips finished runs.",
    )
    p.add_argument(
        "table",
        choices=("table1", "mm-ablation", "dir", "dir-sensitivity"),
        help="table1, mm-ablation; dir: the DIR benchmark (vanilla, l1, lds, lds-fds, bmc, "
        "group-dir, group-dir-lds on --dataset/--target, preset quick); dir-sensitivity: "
        "Group-DIR with G in 10,20,40, λ1 in 0.5,1,2 and λ2 in 0.5,1,2, one at a time around "
        "G=20, λ1=λ2=1",
    )
    _add_train_options(p, with_run=False)
    _add_regression_options(p)
    p.add_argument("--sweep-groups", type=_ints, help="dir-sensitivity: G values (10,20,40)")
    p.add_argument("--sweep-lambda1", help="dir-sensitivity: λ1 values (0.5,1,2)")
    p.add_argument("--sweep-lambda2", help="dir-sensitivity: λ2 values (0.5,1,2)")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    p.add_argument("--methods", help="comma-separated methods (default: all of Table 1)")
    p.add_argument("--settings", help="comma-separated, e.g. exp100,step100,exp10,step10")
    p.add_argument("--betas", help="mm-ablation: comma-separated β values")
    p.add_argument("--deltas", help="mm-ablation: comma-separated δ⁻ values")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (processes)")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--dry-run", action="store_true", help="list the runs and stop")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("report", help="tables (markdown) and plots (PNG) of a results folder")
    p.add_argument("directory")
    p.add_argument("--out", help="where to write (default: the results folder)")
    p.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader of our output went away (``longtail report DIR | head``): the work is
        # done and written; stop quietly, as other command-line tools do, instead of a
        # traceback. Point stdout at devnull so the interpreter's final flush cannot fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
