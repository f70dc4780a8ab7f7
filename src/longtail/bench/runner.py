"""Benchmark grids: Table 1, the MM ablation, the DIR and the multi-label benchmarks as lists of
independent runs.

A grid writes one results record per finished run, ``OUT/<run>.json``, atomically; each run
trains in ``OUT/work/<run>/`` (config, per-epoch checkpoint, log). Running the same grid again
skips finished runs and resumes unfinished ones from their last checkpoint, so a killed grid
loses at most the epoch in progress. Runs are independent jobs: locally a process pool
(``jobs``); on a cluster, the same :func:`run_job` through submitit (SLURM) or Ray
(:mod:`longtail.bench.launchers`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

import torch

from longtail._validation import MAX_SEED, is_seed
from longtail.engine.config import METHODS, TrainConfig, make_config
from longtail.engine.io import atomic_write_json, read_json, temporaries
from longtail.engine.regression import REGRESSION_METHODS
from longtail.engine.run import (
    FolderLock,
    code_text,
    code_version,
    config_identity,
    identity_diff,
    read_stored_identity,
    same_run,
)

if TYPE_CHECKING:
    from longtail.engine.multilabel import MultiLabelConfig
    from longtail.engine.regression import RegressionConfig

__all__ = [
    "DIR_METHODS",
    "TABLE1_METHODS",
    "TABLE1_SETTINGS",
    "Job",
    "ablation_jobs",
    "dir_jobs",
    "dir_sensitivity_jobs",
    "job_identity",
    "multilabel_jobs",
    "multilabel_selection_jobs",
    "plan_grid",
    "preset_selection_jobs",
    "run_grid",
    "run_job",
    "table1_jobs",
]

# Rows of the MM paper's Table 1 that longtail implements, then two prior-aware losses.
TABLE1_METHODS = tuple(METHODS)
# Column order of Table 1; the ratio-100 settings first, where the methods differ most.
TABLE1_SETTINGS = (("exp", 100.0), ("step", 100.0), ("exp", 10.0), ("step", 10.0))
# Tables 2-3 vary β = δ⁺/δ⁻ and δ⁻ around the chosen values of MM-DRW.
ABLATION_BETAS = (1.2, 1.5, 1.8)
ABLATION_DELTAS = (0.6, 1.2, 1.8)
# Group-DIR's sensitivity grid, one factor at a time around the defaults G = 20, λ1 = λ2 = 1.
DIR_METHODS = tuple(REGRESSION_METHODS)  # the DIR table, in its registry order
SENSITIVITY_GROUPS = (10, 20, 40)
SENSITIVITY_LAMBDA1 = (0.5, 1.0, 2.0)
SENSITIVITY_LAMBDA2 = (0.5, 1.0, 2.0)

# The CPU preset's candidates (results/preset-selection), cheapest run first: the first one
# that is converged is chosen. Each is a model, its width and a length; the schedule is the
# paper's shape rescaled to the length (rescaled_schedule). The first list held cnn5 of width
# 16 for 40 epochs, then widths 24 and 32 for 30 epochs; the 40-epoch runs were not converged
# (twice as long was 2.1-2.5 points better on validation, beyond 2 SE for all three methods),
# so the shorter wider ones were dropped unrun and longer runs of the same model put in.
# cnn5-w16-e60 met all three criteria and is the cpu preset (engine/config.py PRESETS).
# Each carries its SGD learning rate (the paper's 0.1), so that a run at another learning rate
# in the same folder never counts as the candidate's.
PRESET_CANDIDATES: dict[str, dict[str, Any]] = {
    "cnn5-w16-e40": {"model": "cnn5", "width": 16, "epochs": 40, "lr": 0.1},
    "cnn5-w16-e60": {"model": "cnn5", "width": 16, "epochs": 60, "lr": 0.1},
    "cnn5-w16-e80": {"model": "cnn5", "width": 16, "epochs": 80, "lr": 0.1},
}
# The methods whose convergence a preset must show, and the balanced validation split
SELECTION_METHODS = ("erm", "ldam-drw", "mm-drw")
SELECTION_VAL_PER_CLASS = 500
# The multi-label cpu preset's candidates (results/multilabel-preset-selection), cheapest
# first, judged the same way on the mosaic set's own validation split: a model, width, Adam
# learning rate and length; the schedule (lr x 0.1 at 2/3 and 8/9) scales with the length.
# The first list held width 16 at lr 0.001, 20 and 40 epochs. Neither is converged: twice as
# long gained 4-9 points of validation mAP at 20 epochs and 3.6-5.1 at 40, and the training loss
# was still falling at 80 epochs (under-fitting). 80 epochs was put in (its own-length runs are
# the 40-epoch candidate's long runs). Single validation runs of BCE then showed where the time
# goes: at 20 epochs, lr 0.003 reached 66.0 and lr 0.01 67.5 (lr 0.001: 61.1; 70.7 at 80
# epochs), and width 32 at lr 0.003 72.0, above width 16 at 80 epochs, for about 3 times the
# cost of an epoch (131 against 400 images/s on one thread). So width 32 at lr 0.003 came in,
# at 20 and 40 epochs, placed by cost: 20 epochs of width 32 cost about what 60 of width 16 do.
MULTILABEL_CANDIDATES: dict[str, dict[str, Any]] = {
    "cnn5-w16-e20": {"model": "cnn5", "width": 16, "epochs": 20, "lr": 1e-3},
    "cnn5-w16-e40": {"model": "cnn5", "width": 16, "epochs": 40, "lr": 1e-3},
    "cnn5-w32-e20-lr0.003": {"model": "cnn5", "width": 32, "epochs": 20, "lr": 3e-3},
    "cnn5-w16-e80": {"model": "cnn5", "width": 16, "epochs": 80, "lr": 1e-3},
    "cnn5-w32-e40-lr0.003": {"model": "cnn5", "width": 32, "epochs": 40, "lr": 3e-3},
}
# The learning rate of the first candidates, whose run names carry none
_MULTILABEL_BASE_LR = 1e-3
MULTILABEL_SELECTION_METHODS = ("bce", "asl", "db")


@dataclass(frozen=True)
class Job:
    """One run of a grid: its file-name-safe name, its config, and the record's extra keys.

    ``config`` is a :class:`~longtail.engine.TrainConfig` (trained by
    :func:`longtail.engine.train`), a :class:`~longtail.engine.regression.RegressionConfig`
    (trained by :func:`longtail.engine.regression.train_regression`) or a
    :class:`~longtail.engine.multilabel.MultiLabelConfig` (trained by
    :func:`longtail.engine.multilabel.train_multilabel`).
    """

    name: str
    config: TrainConfig | RegressionConfig | MultiLabelConfig
    extra: dict[str, Any]


def _setting_name(profile: str, ratio: float) -> str:
    return "natural" if profile == "natural" else f"{profile}{ratio:g}"


def _dataset_slug(dataset: str) -> str:
    return Path(dataset).stem if dataset.endswith((".npz", ".csv")) else dataset


def _classification_job(
    bench: str,
    dataset: str,
    preset: str,
    profile: str,
    ratio: float,
    method: str,
    seed: int,
    tag: str,
    overrides: dict[str, Any],
) -> Job:
    """A classification run named ``<dataset>_<setting>_<method><tag>_s<seed>``."""
    cfg = make_config(
        preset,
        dataset=dataset,
        profile=profile,
        ratio=ratio,
        method=method,
        seed=seed,
        **overrides,
    )
    # "loss:NAME" methods: no colon in file names (Windows, URLs, Make refuse it)
    slug = method.replace(":", "-")
    name = f"{_dataset_slug(dataset)}_{_setting_name(profile, ratio)}_{slug}{tag}_s{seed}"
    return Job(name, cfg, {"bench": bench})


def seed_values(seeds: int | Iterable[int]) -> list[int]:
    """The seeds a grid runs: ``N`` is seeds ``0..N-1``; an iterable of integers (a ``range``,
    a list) is those seeds, in that order. Refused: no seed, a negative or repeated seed, a bool.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Iterable)):
        raise TypeError(f"Expected `seeds` to be a count or integers, but got {seeds!r}")
    if isinstance(seeds, int):
        if not 1 <= seeds <= MAX_SEED + 1:
            raise ValueError(f"Expected `seeds` to be a positive count, but got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    bad = [v for v in values if not is_seed(v)]
    if not values or bad:
        raise ValueError(
            f"Expected `seeds` to hold at least one integer in 0..{MAX_SEED}, but got "
            + (repr(bad[0]) if bad else "none")
        )
    if len(set(values)) < len(values):
        raise ValueError(f"Expected `seeds` without repeats, but got {values}")
    return values


def table1_jobs(
    dataset: str = "fashion-mnist",
    preset: str = "cpu",
    seeds: int | Iterable[int] = 1,
    methods: tuple[str, ...] | None = None,
    settings: tuple[tuple[str, float], ...] | None = None,
    **overrides: Any,
) -> list[Job]:
    """The runs of Table 1: methods × settings × seeds (seed-major, then setting, then method)."""
    methods = tuple(methods or TABLE1_METHODS)
    settings = tuple(settings or TABLE1_SETTINGS)
    jobs = []
    for seed in seed_values(seeds):
        for profile, ratio in settings:
            for method in methods:
                jobs.append(
                    _classification_job(
                        "table1", dataset, preset, profile, ratio, method, seed, "", overrides
                    )
                )
    return jobs


def ablation_jobs(
    dataset: str = "fashion-mnist",
    preset: str = "cpu",
    seeds: int | Iterable[int] = 1,
    betas: tuple[float, ...] = ABLATION_BETAS,
    deltas: tuple[float, ...] = ABLATION_DELTAS,
    settings: tuple[tuple[str, float], ...] = (("exp", 100.0),),
    method: str = "mm-drw",
    **overrides: Any,
) -> list[Job]:
    """The β × δ⁻ grid of Tables 2-3 for ``method`` (MM-DRW) on each setting."""
    jobs = []
    for seed in seed_values(seeds):
        for profile, ratio in settings:
            for beta in betas:
                for delta in deltas:
                    kw = {"beta": float(beta), "delta_minus": float(delta)}
                    tag = f"_b{beta:g}_d{delta:g}"
                    over = {**overrides, "loss_kwargs": kw}
                    jobs.append(
                        _classification_job(
                            "mm-ablation", dataset, preset, profile, ratio, method, seed, tag, over
                        )
                    )
    return jobs


def _candidate_runs(
    table: dict[str, dict[str, Any]],
    candidates: tuple[str, ...] | None,
    lengths: tuple[int, ...],
    seeds: int | Iterable[int],
    methods: tuple[str, ...],
) -> Iterator[tuple[str, dict[str, Any], int, int, str]]:
    """``(candidate, its spec, length factor, seed, method)`` for every run of a selection grid
    over ``table``'s candidates (default: all of them, in its order)."""
    for cand in tuple(candidates or table):
        if cand not in table:
            raise ValueError(f"Expected a candidate of {', '.join(table)}, but got {cand!r}")
        for k in lengths:
            for seed in seed_values(seeds):
                for method in methods:
                    yield cand, table[cand], k, seed, method


def _first_of_each_name(jobs: Iterable[Job]) -> list[Job]:
    """``jobs`` without a later job of a name already listed (one run serving two candidates:
    one candidate's long run is the own-length run of the candidate twice as long)."""
    seen: set[str] = set()
    return [j for j in jobs if not (j.name in seen or seen.add(j.name))]


def preset_selection_jobs(
    candidates: tuple[str, ...] | None = None,
    seeds: int | Iterable[int] = 2,
    dataset: str = "fashion-mnist",
    methods: tuple[str, ...] = SELECTION_METHODS,
    lengths: tuple[int, ...] = (1, 2),
    val_per_class: int = SELECTION_VAL_PER_CLASS,
    timing: bool = False,
) -> list[Job]:
    """Runs that judge each candidate recipe by convergence on a validation split.

    For every candidate of :data:`PRESET_CANDIDATES`: each method of ``methods`` on the exp-100
    profile, at the candidate's length and at ``lengths`` times it (the schedule rescaled),
    ``seeds`` seeds, evaluated after every epoch on ``val_per_class`` training images per class
    held out before the profile (the test set is never loaded into a metric). A run is named
    by what it is, ``<model>-w<width>-e<epochs>_<method>_s<seed>``, so the runs at twice one
    candidate's length are the own-length runs of a candidate twice as long, trained once;
    records carry ``{"bench": "preset-selection"}``.

    With ``timing``, one run per candidate instead (the last of ``methods`` at the candidate's
    length, seed 0), named ``<candidate>_timing``, ``{"bench": "preset-timing"}``: to be run
    alone on an idle machine (``--jobs 1``), its ``seconds`` are criterion (c).
    """
    if timing:
        methods, lengths, seeds = (methods[-1],), (1,), 1
    jobs: list[Job] = []
    for cand, base, k, seed, method in _candidate_runs(
        PRESET_CANDIDATES, candidates, lengths, seeds, methods
    ):
        cfg = make_config(
            "cpu",
            dataset=dataset,
            profile="exp",
            ratio=100.0,
            method=method,
            seed=seed,
            model=base["model"],
            width=base["width"],
            epochs=base["epochs"] * k,
            lr=base["lr"],
            val_per_class=val_per_class,
            # a timing run is shaped like a Table 1 run: no per-epoch evaluation (the
            # preset's eval_every=0), one on the validation split at the end
            eval_every=0 if timing else 1,
        )
        if timing:
            extra = {"bench": "preset-timing", "candidate": cand, "length": k}
            jobs.append(Job(f"{cand}_timing", cfg, extra))
        else:
            run = f"{base['model']}-w{base['width']}-e{cfg.epochs}"
            jobs.append(Job(f"{run}_{method}_s{seed}", cfg, {"bench": "preset-selection"}))
    return _first_of_each_name(jobs)


def multilabel_selection_jobs(
    candidates: tuple[str, ...] | None = None,
    seeds: int | Iterable[int] = 2,
    dataset: str = "fashion-mnist-mosaic-lt",
    methods: tuple[str, ...] = MULTILABEL_SELECTION_METHODS,
    lengths: tuple[int, ...] = (1, 2),
    timing: bool = False,
) -> list[Job]:
    """Runs that judge each multi-label candidate recipe by convergence on validation.

    For every candidate of :data:`MULTILABEL_CANDIDATES`: each method of ``methods`` at the
    candidate's length and at ``lengths`` times it, ``seeds`` seeds, over the multi-label cpu
    preset, with ``eval_split="validation"`` (the record's metrics are the validation split's;
    the test split is never scored). Runs are named by what they are,
    ``<model>-w<width>-e<epochs>_<method>_s<seed>`` (a run at twice one candidate's length is
    the own-length run of a candidate twice as long), with ``{"bench":
    "multilabel-preset-selection"}``.

    With ``timing``, one run per candidate instead (the last of ``methods`` at the candidate's
    length, seed 0), named ``<candidate>_timing``, ``{"bench": "multilabel-preset-timing"}``:
    to be run alone on an idle machine (``--jobs 1``); its ``seconds`` are criterion (c).
    """
    from longtail.engine.multilabel import make_multilabel_config

    if timing:
        methods, lengths, seeds = (methods[-1],), (1,), 1
    jobs: list[Job] = []
    for cand, base, k, seed, method in _candidate_runs(
        MULTILABEL_CANDIDATES, candidates, lengths, seeds, methods
    ):
        cfg = make_multilabel_config(
            "cpu",
            dataset=dataset,
            method=method,
            seed=seed,
            model=base["model"],
            width=base["width"],
            epochs=base["epochs"] * k,
            lr=base.get("lr"),
            eval_split="validation",
        )
        if timing:
            extra = {"bench": "multilabel-preset-timing", "candidate": cand}
            jobs.append(Job(f"{cand}_timing", cfg, extra))
        else:
            run = f"{base['model']}-w{base['width']}-e{cfg.epochs}"
            if cfg.lr != _MULTILABEL_BASE_LR:
                run += f"-lr{cfg.lr:g}"
            extra = {"bench": "multilabel-preset-selection"}
            jobs.append(Job(f"{run}_{method}_s{seed}", cfg, extra))
    return _first_of_each_name(jobs)


def dir_jobs(
    dataset: str = "diamonds",
    preset: str = "quick",
    seeds: int | Iterable[int] = 1,
    methods: tuple[str, ...] | None = None,
    **overrides: Any,
) -> list[Job]:
    """The DIR benchmark: methods × seeds (seed-major), ``{"bench": "dir"}`` records.

    ``overrides`` are :class:`~longtail.engine.regression.RegressionConfig` fields (``target``,
    ``epochs``, ``bins``, ...) applied to every run over the preset.
    """
    from longtail.engine.regression import make_regression_config

    methods = tuple(methods or DIR_METHODS)
    unused = [
        k
        for k, v in overrides.items()
        if v is not None and not any(_dir_method_uses(m, k) for m in methods)
    ]
    if unused:
        warnings.warn(
            f"{', '.join(unused)} set{'s' if len(unused) == 1 else ''} nothing in this grid: "
            f"no method of {', '.join(methods)} uses {'it' if len(unused) == 1 else 'them'}.",
            stacklevel=2,
        )
    jobs = []
    for seed in seed_values(seeds):
        for method in methods:
            # a method's own options only: Group-DIR's G given to vanilla would make another
            # run of the same computation (a new identity, a retrain, a row labelled with G)
            mine = {k: v for k, v in overrides.items() if _dir_method_uses(method, k)}
            cfg = make_regression_config(preset, dataset=dataset, method=method, seed=seed, **mine)
            jobs.append(Job(f"{_dataset_slug(dataset)}_{method}_s{seed}", cfg, {"bench": "dir"}))
    return jobs


#: RegressionConfig options that only some DIR methods read, by the method property using them.
_GROUP_DIR_OPTIONS = frozenset(
    ("num_groups", "lambda1", "lambda2", "group_beta", "temperature", "routing", "group_edges")
)


def _dir_method_uses(method: str, key: str) -> bool:
    """Whether a DIR ``method`` reads the config option ``key`` (all but the method-specific
    options of Group-DIR, LDS, FDS and BMC are read by every method)."""
    from longtail.engine.regression import get_regression_method

    spec = get_regression_method(method)
    if key in _GROUP_DIR_OPTIONS:
        return spec.loss == "group-dir"
    if key.startswith("lds_"):
        return spec.lds
    if key.startswith("fds_"):
        return spec.fds
    if key.startswith("bmc_"):
        return spec.loss == "bmc"
    return True


def dir_sensitivity_jobs(
    dataset: str = "diamonds",
    preset: str = "quick",
    seeds: int | Iterable[int] = 1,
    groups: tuple[int, ...] = SENSITIVITY_GROUPS,
    lambda1s: tuple[float, ...] = SENSITIVITY_LAMBDA1,
    lambda2s: tuple[float, ...] = SENSITIVITY_LAMBDA2,
    method: str = "group-dir",
    **overrides: Any,
) -> list[Job]:
    """Group-DIR's sensitivity to G, λ1 and λ2, one factor at a time around the centre.

    The centre is the config's (G, λ1, λ2) — 20, 1, 1 unless ``overrides`` say otherwise; each
    factor takes its listed values with the other two at the centre, so the grid has
    ``1 + (len(groups) - 1) + (len(lambda1s) - 1) + (len(lambda2s) - 1)`` distinct runs per
    seed (7 with the defaults). Records carry ``{"bench": "dir-sensitivity", "centre":
    {"num_groups": G, "lambda1": λ1, "lambda2": λ2}}``, the centre of the sweep.
    """
    from longtail.engine.regression import make_regression_config

    centre = make_regression_config(preset, dataset=dataset, method=method, **overrides)
    c = (centre.num_groups, centre.lambda1, centre.lambda2)
    points = [c]
    points += [(g, c[1], c[2]) for g in groups]
    points += [(c[0], float(a), c[2]) for a in lambda1s]
    points += [(c[0], c[1], float(b)) for b in lambda2s]
    points = list(dict.fromkeys((int(g), float(a), float(b)) for g, a, b in points))
    jobs = []
    for seed in seed_values(seeds):
        for g, a, b in points:
            params = {**overrides, "num_groups": g, "lambda1": a, "lambda2": b}
            cfg = make_regression_config(
                preset, dataset=dataset, method=method, seed=seed, **params
            )
            name = f"{_dataset_slug(dataset)}_{method}_G{g}_l1-{a:g}_l2-{b:g}_s{seed}"
            # the centre is recorded: the report cannot always tell it from the points (with
            # one factor swept, every value of it is run equally often)
            centre_of = {"num_groups": c[0], "lambda1": float(c[1]), "lambda2": float(c[2])}
            jobs.append(Job(name, cfg, {"bench": "dir-sensitivity", "centre": centre_of}))
    return jobs


def multilabel_jobs(
    dataset: str = "fashion-mnist-mosaic-lt",
    preset: str = "cpu",
    seeds: int | Iterable[int] = 1,
    methods: tuple[str, ...] | None = None,
    **overrides: Any,
) -> list[Job]:
    """The multi-label benchmark: methods × seeds (seed-major), ``{"bench": "multilabel"}``
    records, runs named ``<dataset>_<method>_s<seed>``; ``<dataset>_<method>_e<epochs>_s<seed>``
    at a length other than the preset's, so that the same benchmark at twice the length (the
    check that its claims do not depend on the length: docs/multilabel.md) goes in the same
    folder beside the first, never in place of it.

    ``methods`` default to every method of
    :data:`~longtail.engine.multilabel.MULTILABEL_METHODS`; ``overrides`` are
    :class:`~longtail.engine.multilabel.MultiLabelConfig` fields applied to every run over the
    preset.
    """
    from longtail.engine.multilabel import MULTILABEL_METHODS, make_multilabel_config

    jobs = []
    length = make_multilabel_config(preset).epochs
    for seed in seed_values(seeds):
        for method in tuple(methods or MULTILABEL_METHODS):
            cfg = make_multilabel_config(
                preset, dataset=dataset, method=method, seed=seed, **overrides
            )
            tag = f"_e{cfg.epochs}" if cfg.epochs != length else ""
            name = f"{_dataset_slug(dataset)}_{method}{tag}_s{seed}"
            jobs.append(Job(name, cfg, {"bench": "multilabel"}))
    return jobs


def job_identity(job: Job) -> dict[str, Any]:
    """The full identity of ``job``'s run (config and data fingerprint), without training it."""
    from longtail.engine.multilabel import MultiLabelConfig
    from longtail.engine.multilabel import run_identity as multilabel_identity
    from longtail.engine.regression import RegressionConfig
    from longtail.engine.regression import run_identity as regression_identity
    from longtail.engine.train import run_identity

    if isinstance(job.config, RegressionConfig):
        return regression_identity(job.config)
    if isinstance(job.config, MultiLabelConfig):
        return multilabel_identity(job.config)
    return run_identity(job.config)


def _superseded_path(out: Path, name: str) -> Path:
    folder = out / "work" / "superseded"
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    while (folder / f"{name}.{k}.json").exists():
        k += 1
    return folder / f"{name}.{k}.json"


def _record_status(
    path: Path, identity: dict[str, Any], *, move_damaged: bool = True
) -> tuple[str, str, dict[str, Any] | None]:
    """``("finished" | "missing" | "stale", why, record)`` of the record at ``path`` for
    ``identity`` (``record``: the finished one, as read; else ``None``).

    A damaged record is moved aside (``.json.damaged``), not deleted, unless ``move_damaged``
    is false (a dry run). A record of another identity (the grid's config changed, the data
    changed, or it predates data fingerprints) is *stale*: it is never reused. ``why`` says
    what is wrong with a record that is there but not finished.
    """
    if not path.exists():
        return "missing", "", None
    try:
        rec = read_json(path)
    except ValueError as e:
        if not move_damaged:
            return "missing", "its record is damaged", None
        aside = path.with_suffix(".json.damaged")
        os.replace(path, aside)
        warnings.warn(f"{e} Moved it to {aside.name}; the run will be redone.", stacklevel=3)
        return "missing", "", None
    if not (isinstance(rec, dict) and "metrics" in rec):
        return "missing", "its record holds no metrics", None
    if same_run(rec.get("identity"), identity):
        return "finished", "", rec
    if "identity" not in rec:
        return "stale", "recorded without a data fingerprint", None
    return "stale", identity_diff(rec.get("identity"), identity, limit=3), None


def plan_grid(jobs: list[Job], out: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """What running ``jobs`` into ``out`` would do with each, touching nothing: ``(name,
    "finished")`` for a run whose record is of its identity (skipped), ``(name, "to run")``,
    or ``(name, "to run, replacing a record of another run (why)")`` for a record that the
    run would move to ``work/superseded/`` (see :func:`run_grid`)."""
    plan = []
    for j in jobs:
        path = Path(out) / f"{j.name}.json"
        if not path.exists():  # no identity to compute (it loads the data)
            plan.append((j.name, "to run"))
            continue
        status, why, _ = _record_status(path, job_identity(j), move_damaged=False)
        if status == "stale":
            plan.append((j.name, f"to run, replacing a record of another run ({why})"))
        else:
            plan.append((j.name, f"to run ({why})" if status == "missing" else status))
    return plan


def _clear_stale_work(work: Path, identity: dict[str, Any]) -> bool:
    """Remove the grid's work folder of a run when it holds another identity.

    The folder is the grid's scratch space (the record beside it is the result), so a folder
    of a changed config is not a reason to refuse the new run. An unreadable folder is left for
    the engine to report.
    """
    saved, damaged = read_stored_identity(work)
    if damaged:  # the engine names the damaged file and how to start over
        return False
    if saved is None:
        cfg = work / "config.json"
        if not cfg.exists():
            return False
        try:
            config = read_json(cfg)
        except ValueError:
            return False
        # as the identity names things (the dataset by its file name, not its path)
        config = config_identity(config) if isinstance(config, dict) else None
        gone = config is None or any(
            k in config and config[k] != v for k, v in identity.items() if k != "data"
        )
    else:
        gone = not same_run(saved, identity)
    if gone:
        shutil.rmtree(work)
    return gone


def run_job(job: Job, out: str, threads: int | None, progress: bool) -> tuple[str, float]:
    """Train ``job``'s run in ``OUT/work/<run>/`` and write its record ``OUT/<run>.json``.

    What every worker of a grid executes, the local pool's and a launcher's alike (it is
    importable and its arguments pickle); it resumes the run from its checkpoint when there is
    one. ``threads``: torch's threads (``None``: leave them). Returns ``(name, seconds)``.
    """
    from longtail.engine.multilabel import MultiLabelConfig, train_multilabel
    from longtail.engine.regression import RegressionConfig, train_regression
    from longtail.engine.train import train

    if threads:
        torch.set_num_threads(threads)
    run: Callable[..., dict[str, Any]] = train
    if isinstance(job.config, RegressionConfig):
        run = train_regression
    elif isinstance(job.config, MultiLabelConfig):
        run = train_multilabel
    t0 = time.perf_counter()
    record = run(job.config, Path(out) / "work" / job.name, progress=progress, extra=job.extra)
    atomic_write_json(Path(out) / f"{job.name}.json", record)
    return job.name, time.perf_counter() - t0


def _watch_parent(parent: int) -> None:
    """Exit this worker as soon as the grid's main process is gone (killed, crashed)."""

    def loop() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)  # checkpoints are atomic: the run resumes with the grid

    threading.Thread(target=loop, daemon=True, name="longtail-parent-watch").start()


def _worker(job: Job, out: str, threads: int, queue: Any, parent: int) -> None:
    _watch_parent(parent)
    try:
        name, secs = run_job(job, out, threads, False)
    except BaseException:
        queue.put((job.name, "error", traceback.format_exc()))
        raise SystemExit(1) from None
    queue.put((name, "ok", secs))


def _drain(queue: Any, wait: float) -> list[tuple[str, str, Any]]:
    got = []
    try:
        got.append(queue.get(timeout=wait))
        while True:
            got.append(queue.get_nowait())
    except Empty:
        pass
    return got


def _run_parallel(
    todo: list[Job],
    out: Path,
    workers: int,
    on_done: Callable[[str, float], None],
    on_fail: Callable[[str, str], None],
    on_poll: Callable[[list[str], list[str]], None] | None = None,
) -> None:
    """Each run in its own process, ``workers`` at a time.

    One process per run (not a pool): a worker that dies (out of memory, a signal) fails only
    its own run, and every worker exits when this process dies.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    pending, running = list(todo), {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                proc = ctx.Process(
                    target=_worker, args=(job, str(out), threads, queue, os.getpid()), daemon=True
                )
                proc.start()
                running[job.name] = proc
            for name, status, value in _drain(queue, 0.5):
                running.pop(name).join()
                (on_done if status == "ok" else on_fail)(name, value)
            for name, proc in list(running.items()):
                if proc.is_alive():
                    continue
                late = [m for m in _drain(queue, 1.0)]
                for n, status, value in late:
                    running.pop(n).join()
                    (on_done if status == "ok" else on_fail)(n, value)
                if name in running:
                    running.pop(name)
                    code = proc.exitcode
                    why = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
                    on_fail(name, f"its worker process died ({why}) before finishing the run\n")
            if on_poll is not None:
                on_poll(list(running), [])
    finally:
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.join()


def run_grid(
    jobs: list[Job],
    out: str | os.PathLike[str],
    workers: int | None = None,
    progress: bool | None = None,
    launcher: str = "local",
    launcher_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` (skipping finished ones), ``workers`` at a time; return a summary.

    A run is finished only when its record's whole identity (config and data fingerprint)
    equals the job's; a record of another identity is moved to ``OUT/work/superseded/`` and the
    run trains again. With ``workers > 1`` each run gets ``cores // workers`` threads in its own
    process. A run that fails is reported (with its traceback) and the others go on.

    ``launcher`` ``"submitit"`` or ``"ray"`` hands the runs left to do to that engine instead of
    the local pool (:func:`longtail.bench.launchers.run_jobs`, which takes
    ``launcher_options``); ``workers`` then caps the runs submitted at once (``None``: all). The
    skipping, the records and the resuming are the same. With ``progress`` (default) a live
    line says what is running whenever runs go in parallel.
    """
    from longtail.bench.launchers import check_launcher

    check_launcher(launcher, launcher_options)
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"Expected `workers` to be a number of runs >= 1, but got {workers!r}.")
    if workers is None and launcher == "local":
        workers = 1
    out = Path(out)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"Expected grid jobs with distinct names, but got duplicates: {dup}.")
    # one grid at a time per output folder: a second one would supersede the first one's
    # records and remove its live work folders
    with FolderLock(out, "bench grid"):
        return _run_grid_locked(jobs, out, workers, progress, launcher, launcher_options)


def _rebuild_logs(job: Job, folder: Path, say: bool) -> None:
    """A finished run of a grid asked for ``--log``: write its missing or stale logs from its
    work folder's rows, as ``train`` does for a finished run it opens (no training)."""
    from longtail.engine.run import RunFolder

    kinds = tuple(getattr(job.config, "log", ()) or ())
    if not kinds:
        return
    if not folder.is_dir():
        if say:
            print(
                f"{job.name}: finished, but its work folder is not here: no {', '.join(kinds)} "
                "logs to write",
                file=sys.stderr,
            )
        return
    RunFolder(folder, {"log": list(kinds)}, {}).rebuild_logs()


def _jobs_to_run(jobs: list[Job], out: Path, say: bool) -> tuple[list[Job], int]:
    """The jobs of ``jobs`` without a finished record of their identity in ``out``, and how
    many of them replace a record of another identity (moved to ``work/superseded/``). A
    finished run asked for ``--log`` gets its logs rebuilt; a work folder of another config is
    cleared."""
    todo, stale = [], 0
    now = code_text(code_version())
    other_code: dict[str, int] = {}
    for j in jobs:
        identity = job_identity(j)
        status, why, rec = _record_status(out / f"{j.name}.json", identity)
        if status == "finished":
            _rebuild_logs(j, out / "work" / j.name, say)
            then = code_text((rec or {}).get("environment"))
            if then != now:
                other_code[then] = other_code.get(then, 0) + 1
            continue
        if status == "stale":
            stale += 1
            aside = _superseded_path(out, j.name)
            os.replace(out / f"{j.name}.json", aside)
            # said even under --no-progress: a finished result set aside is no progress line
            print(
                f"{j.name}: its record is of another run ({why}); moved it to "
                f"{aside.relative_to(out)} and training again",
                file=sys.stderr,
            )
        if _clear_stale_work(out / "work" / j.name, identity):
            print(
                f"{j.name}: removed the work folder of another run (another config or data)",
                file=sys.stderr,
            )
        todo.append(j)
    for then, n in other_code.items():
        # kept (a new release must not retrain every grid), but said: their numbers are that code's
        print(
            f"note: {n} finished record{'s were' if n > 1 else ' was'} made by {then}, not this "
            f"{now}: kept as finished; move {'them' if n > 1 else 'it'} aside to train with this "
            "code",
            file=sys.stderr,
        )
    return todo, stale


def _run_grid_locked(
    jobs: list[Job],
    out: Path,
    workers: int | None,
    progress: bool | None,
    launcher: str,
    launcher_options: dict[str, Any] | None,
) -> dict[str, Any]:
    from longtail.bench.launchers import ProgressLine, format_duration, run_jobs

    say = progress is not False
    # the temporary files of record writes that a kill cut short (``.<run>.json.<random>.tmp``:
    # the grid's lock is held, and no run of this grid has started yet)
    for stray in temporaries(out, "*.json"):
        stray.unlink(missing_ok=True)
    todo, stale = _jobs_to_run(jobs, out, say)
    done = len(jobs) - len(todo)
    at_once = "all at once" if workers is None else f"{workers} at a time"
    if launcher != "local":
        at_once += f", through {launcher}"
    # the summary is said even without progress: a rerun that reuses every run says so
    print(
        f"{len(jobs)} run{'' if len(jobs) == 1 else 's'}: {done} already finished, "
        f"{len(todo)} to run "
        f"({stale} of them replace records of another config or data; "
        f"{at_once}) -> {out}",
        file=sys.stderr,
        flush=True,
    )
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    finished = 0
    # runs in parallel say nothing themselves: a live line says what runs and what is left
    line = (
        ProgressLine(len(jobs), done, workers)
        if say and todo and (launcher != "local" or (workers or 1) > 1)
        else None
    )

    def on_done(name: str, secs: float) -> None:
        nonlocal finished
        finished += 1
        if line is not None:
            line.say(f"[{done + finished}/{len(jobs)}] {name} finished in {format_duration(secs)}")
            line.finished(name, secs)
        elif say:
            # one run at a time: each run ended so far (failed ones too) took elapsed / ended
            elapsed = time.perf_counter() - t0
            left = len(todo) - finished - len(failed)
            eta = elapsed / (finished + len(failed)) * left
            print(
                f"[{done + finished}/{len(jobs)}] {name} finished in {format_duration(secs)} "
                f"(elapsed {format_duration(elapsed)}, ~{format_duration(eta)} left)",
                file=sys.stderr,
                flush=True,
            )

    def on_fail(name: str, tb: str) -> None:
        failed[name] = tb
        if line is not None:
            line.say(f"{name} FAILED:\n{tb.rstrip()}")
            line.fail(name)
        else:
            print(f"{name} FAILED:\n{tb}", file=sys.stderr)

    on_poll = line.update if line is not None else None
    try:
        if launcher != "local":
            if todo:
                run_jobs(todo, out, launcher, workers, launcher_options, on_done, on_fail, on_poll)
        elif (workers or 1) <= 1:
            for job in todo:
                try:
                    on_done(
                        *run_job(job, str(out), None, progress if progress is not None else True)
                    )
                except KeyboardInterrupt:
                    raise
                except Exception:
                    on_fail(job.name, traceback.format_exc())
        else:
            _run_parallel(todo, out, workers or 1, on_done, on_fail, on_poll)
    finally:
        if line is not None:
            line.close()
    return {"total": len(jobs), "skipped": done, "ran": len(todo), "failed": failed}
