"""Benchmark grids: Table 1, the MM ablation and the DIR benchmark as lists of independent runs.

A grid writes one results record per finished run, ``OUT/<run>.json``, atomically; each run
trains in ``OUT/work/<run>/`` (config, per-epoch checkpoint, log). Running the same grid again
skips finished runs and resumes unfinished ones from their last checkpoint, so a killed grid
loses at most the epoch in progress. Runs are independent jobs: locally a process pool
(``jobs``); on a cluster, hand the same commands to the scheduler.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from longtail.engine.config import METHODS, TrainConfig, make_config
from longtail.engine.io import atomic_write_json, read_json

if TYPE_CHECKING:
    from longtail.engine.regression import RegressionConfig

__all__ = [
    "DIR_METHODS",
    "TABLE1_METHODS",
    "TABLE1_SETTINGS",
    "Job",
    "ablation_jobs",
    "dir_jobs",
    "dir_sensitivity_jobs",
    "run_grid",
    "table1_jobs",
]

# Rows of the MM paper's Table 1 that longtail implements, then two prior-aware losses.
TABLE1_METHODS = tuple(METHODS)
# Column order of Table 1; the ratio-100 settings first, where the methods differ most.
TABLE1_SETTINGS = (("exp", 100.0), ("step", 100.0), ("exp", 10.0), ("step", 10.0))
# Tables 2-3 vary β = δ⁺/δ⁻ and δ⁻ around the chosen values of MM-DRW.
ABLATION_BETAS = (1.2, 1.5, 1.8)
ABLATION_DELTAS = (0.6, 1.2, 1.8)
# The DIR benchmark's rows (issue 4), and Group-DIR's sensitivity grid, one factor at a time
# around the defaults G = 20, λ1 = λ2 = 1.
DIR_METHODS = ("vanilla", "l1", "lds", "lds-fds", "bmc", "group-dir", "group-dir-lds")
SENSITIVITY_GROUPS = (10, 20, 40)
SENSITIVITY_LAMBDA1 = (0.5, 1.0, 2.0)
SENSITIVITY_LAMBDA2 = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Job:
    """One run of a grid: its file-name-safe name, its config, and the record's extra keys.

    ``config`` is a :class:`~longtail.engine.TrainConfig` (trained by
    :func:`longtail.engine.train`) or a :class:`~longtail.engine.regression.RegressionConfig`
    (trained by :func:`longtail.engine.regression.train_regression`).
    """

    name: str
    config: TrainConfig | RegressionConfig
    extra: dict[str, Any]


def _setting_name(profile: str, ratio: float) -> str:
    return f"{profile}{ratio:g}"


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
    name = f"{_dataset_slug(dataset)}_{_setting_name(profile, ratio)}_{method}{tag}_s{seed}"
    return Job(name, cfg, {"bench": bench})


def table1_jobs(
    dataset: str = "fashion-mnist",
    preset: str = "quick",
    seeds: int = 1,
    methods: tuple[str, ...] | None = None,
    settings: tuple[tuple[str, float], ...] | None = None,
    **overrides: Any,
) -> list[Job]:
    """The runs of Table 1: methods × settings × seeds (seed-major, then setting, then method)."""
    methods = tuple(methods or TABLE1_METHODS)
    settings = tuple(settings or TABLE1_SETTINGS)
    jobs = []
    for seed in range(seeds):
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
    preset: str = "quick",
    seeds: int = 1,
    betas: tuple[float, ...] = ABLATION_BETAS,
    deltas: tuple[float, ...] = ABLATION_DELTAS,
    settings: tuple[tuple[str, float], ...] = (("exp", 100.0),),
    method: str = "mm-drw",
    **overrides: Any,
) -> list[Job]:
    """The β × δ⁻ grid of Tables 2-3 for ``method`` (MM-DRW) on each setting."""
    jobs = []
    for seed in range(seeds):
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


def dir_jobs(
    dataset: str = "diamonds",
    preset: str = "quick",
    seeds: int = 1,
    methods: tuple[str, ...] | None = None,
    **overrides: Any,
) -> list[Job]:
    """The DIR benchmark: methods × seeds (seed-major), ``{"bench": "dir"}`` records.

    ``overrides`` are :class:`~longtail.engine.regression.RegressionConfig` fields (``target``,
    ``epochs``, ``bins``, ...) applied to every run over the preset.
    """
    from longtail.engine.regression import make_regression_config

    jobs = []
    for seed in range(seeds):
        for method in tuple(methods or DIR_METHODS):
            cfg = make_regression_config(
                preset, dataset=dataset, method=method, seed=seed, **overrides
            )
            jobs.append(Job(f"{_dataset_slug(dataset)}_{method}_s{seed}", cfg, {"bench": "dir"}))
    return jobs


def dir_sensitivity_jobs(
    dataset: str = "diamonds",
    preset: str = "quick",
    seeds: int = 1,
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
    seed (7 with the defaults). Records carry ``{"bench": "dir-sensitivity"}``.
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
    for seed in range(seeds):
        for g, a, b in points:
            params = {**overrides, "num_groups": g, "lambda1": a, "lambda2": b}
            cfg = make_regression_config(
                preset, dataset=dataset, method=method, seed=seed, **params
            )
            name = f"{_dataset_slug(dataset)}_{method}_G{g}_l1-{a:g}_l2-{b:g}_s{seed}"
            jobs.append(Job(name, cfg, {"bench": "dir-sensitivity"}))
    return jobs


def _finished(path: Path) -> bool:
    """Whether ``path`` holds a complete record; a damaged one is moved aside, not deleted."""
    if not path.exists():
        return False
    try:
        rec = read_json(path)
    except ValueError as e:
        aside = path.with_suffix(".json.damaged")
        os.replace(path, aside)
        warnings.warn(f"{e} Moved it to {aside.name}; the run will be redone.", stacklevel=2)
        return False
    return isinstance(rec, dict) and "metrics" in rec


def _run_job(job: Job, out: str, threads: int | None, progress: bool) -> tuple[str, float]:
    from longtail.engine.regression import RegressionConfig, train_regression
    from longtail.engine.train import train

    if threads:
        torch.set_num_threads(threads)
    run = train_regression if isinstance(job.config, RegressionConfig) else train
    t0 = time.perf_counter()
    record = run(job.config, Path(out) / "work" / job.name, progress=progress, extra=job.extra)
    atomic_write_json(Path(out) / f"{job.name}.json", record)
    return job.name, time.perf_counter() - t0


def run_grid(
    jobs: list[Job],
    out: str | os.PathLike[str],
    workers: int = 1,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` (skipping finished ones), ``workers`` at a time; return a summary.

    With ``workers > 1`` each run gets ``cores // workers`` threads in its own process. A run
    that fails is reported (with its traceback) and the others go on.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError("Expected grid jobs with distinct names, but got duplicates.")
    todo = [j for j in jobs if not _finished(out / f"{j.name}.json")]
    done = len(jobs) - len(todo)
    say = progress is not False
    if say:
        print(
            f"{len(jobs)} runs: {done} already finished, {len(todo)} to run "
            f"({workers} at a time) -> {out}",
            file=sys.stderr,
            flush=True,
        )
    failed: dict[str, str] = {}
    t0 = time.perf_counter()

    def report(name: str, secs: float, k: int) -> None:
        if say:
            elapsed = time.perf_counter() - t0
            eta = elapsed / k * (len(todo) - k)
            print(
                f"[{done + k}/{len(jobs)}] {name} finished in {secs / 60:.1f} min "
                f"(elapsed {elapsed / 60:.1f} min, ~{eta / 60:.0f} min left)",
                file=sys.stderr,
                flush=True,
            )

    if workers <= 1:
        for k, job in enumerate(todo, 1):
            try:
                name, secs = _run_job(
                    job, str(out), None, progress if progress is not None else True
                )
                report(name, secs, k)
            except KeyboardInterrupt:
                raise
            except Exception:
                failed[job.name] = traceback.format_exc()
                print(f"{job.name} FAILED:\n{failed[job.name]}", file=sys.stderr)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {pool.submit(_run_job, j, str(out), threads, False): j for j in todo}
            for k, fut in enumerate(cf.as_completed(futures), 1):
                job = futures[fut]
                try:
                    name, secs = fut.result()
                    report(name, secs, k)
                except Exception:
                    failed[job.name] = traceback.format_exc()
                    print(f"{job.name} FAILED:\n{failed[job.name]}", file=sys.stderr)
    return {"total": len(jobs), "skipped": done, "ran": len(todo), "failed": failed}
