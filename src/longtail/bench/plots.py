"""Plots from results records: per-class error (lines and a methods × classes heat map), the MM
ablation's heat map, DIR error per label bin and Group-DIR's sensitivity.

Plots need matplotlib (the ``bench`` extra: ``pip install "longtail[bench]"``), imported only
when a plot is drawn, and drawn without pyplot, so no display or backend switch is needed. As in
the tables, only the seeds of one configuration are averaged: runs of other recipes or loss
settings in the same setting are drawn as lines (or panels) of their own.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longtail._validation import expected
from longtail.bench.labels import (
    row_labels,
    seed_span,
    setting_title,
    slug,
    varying_keys,
    varying_tags,
)
from longtail.bench.records import (
    Column,
    Setting,
    Table,
    _ratio,
    by_setting,
    cell_stats,
    classification,
    dir_records,
    distinct_runs,
    group_tables,
    number,
    setting_order,
)
from longtail.bench.tables import (
    SENSITIVITY_FACTORS,
    AblationGrid,
    Sweep,
    ablation_grids,
    dir_title,
    sensitivity_sweeps,
)
from longtail.engine.io import atomic_write
from longtail.metrics import regions_of_counts

__all__ = [
    "PerClassMatrix",
    "per_class_error_matrix",
    "plot_ablation",
    "plot_dir_error",
    "plot_dir_sensitivity",
    "plot_per_class_error",
    "plot_per_class_heatmap",
    "plot_training_curves",
]

MARKERS = "osD^vP*Xhp<>8"
Line = tuple[str, list[dict[str, Any]]]  # (label, the runs of one configuration)


# ---- drawing and saving -----------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'Plots need matplotlib: pip install "longtail[bench]" (or matplotlib).'
        ) from err
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    # "tight": a legend or label wider than the figure widens the image instead of being cut
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


def _legend_below(fig: Any, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """The legend under the axes, where it covers no data: two columns of short labels, one
    of long ones (a recipe in brackets)."""
    if not handles:
        return
    ncol = 1 if len(labels) < 3 or max(len(label) for label in labels) > 48 else 2
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small")


def pick_setting(available: Sequence[Setting], setting: Any, what: str) -> Setting:
    """The setting chosen by ``setting`` (a tuple or its :func:`slug`), default the first."""
    if not available:
        raise ValueError(f"Expected records with {what}, but got none.")
    if setting is None:
        return available[0]
    if isinstance(setting, (tuple, list)) and len(setting) == 3:
        setting = (setting[0], setting[1], _ratio(setting[2]))
    for s in available:
        if setting in (s, slug(s)):
            return s
    raise expected(
        "setting",
        f"one of {[slug(s) for s in available]} (or a (dataset, profile, ratio) tuple)",
        repr(setting),
    )


def _lines(tables: Sequence[Table], setting: Setting) -> list[Line]:
    """One line per configuration in ``setting``: rows of each table, labelled by row, and by
    what sets their recipe (and data) apart where the plot holds several."""
    cells = [
        (t, row, col)
        for t in tables
        for col in t.columns
        if col.setting == setting
        for row in t.rows
        if t.runs(row, col)
    ]
    groups = list(dict.fromkeys((id(t), col) for t, _, col in cells))
    mine = [t for t in tables if any(t is u for u, _, _ in cells)]
    varying = varying_keys(mine)
    out = []
    for table, row, col in cells:
        label = row_labels(table.rows)[row]
        if len(groups) > 1:
            label += f" [{_tag(table, col, varying, mine, groups)}]"
        out.append((label, table.runs(row, col)))
    return out


def _tag(
    table: Table,
    column: Column,
    varying: list[str],
    tables: Sequence[Table],
    groups: Sequence[tuple[int, Column]],
) -> str:
    """What sets the runs of ``table`` in ``column`` apart from the other lines' runs."""
    parts = varying_tags(table, varying)
    if not table.fingerprinted and any(t.fingerprinted for t in tables):
        parts.append("no data fingerprint")
    elif table.fingerprinted and not all(t.fingerprinted for t in tables):
        parts.append("data fingerprinted")
    if sum(1 for i, _ in groups if i == id(table)) > 1:
        parts.append(f"data {str(column.data)[:8]}")
    return ", ".join(parts) or "another recipe"


# ---- per-class error --------------------------------------------------------------------------
def _train_counts(records: Sequence[dict[str, Any]], num_classes: int) -> list[float] | None:
    """Training examples per class of a setting: from the records, else from its profile."""
    from longtail.data.registry import get_dataset

    for rec in records:
        config = rec.get("config") or {}
        for counts in (
            rec.get("class_counts"),
            rec.get("train_counts"),
            config.get("train_counts"),
        ):
            if isinstance(counts, list) and len(counts) == num_classes:
                return [float(c) for c in counts]
    rec = records[0]
    n_max = (rec.get("config") or {}).get("n_max")
    if not n_max:
        try:
            n_max = get_dataset(str(rec.get("dataset"))).n_max
        except ValueError:
            return None
    if not n_max or rec.get("profile") not in ("exp", "step"):
        return None
    try:
        from longtail.data.profiles import imbalance_counts

        return [
            float(c) for c in imbalance_counts(n_max, num_classes, rec["ratio"], rec["profile"])
        ]
    except (ValueError, TypeError):
        return None


def _per_class_records(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    recs = [
        r
        for r in distinct_runs(classification(records))
        if isinstance(r["metrics"].get("per_class_error"), list)
    ]
    return by_setting(recs)


def _per_class_setting(
    records: Iterable[dict[str, Any]], setting: Any
) -> tuple[Setting, list[dict[str, Any]], int, list[float] | None, list[int]]:
    """The setting chosen, its records with per-class errors (those of the most classes), the
    number of classes, their training counts if recorded, and the classes from head to tail."""
    groups = _per_class_records(records)
    chosen = pick_setting(list(groups), setting, "metrics['per_class_error']")
    recs = groups[chosen]
    num_classes = max(len(r["metrics"]["per_class_error"]) for r in recs)
    recs = [r for r in recs if len(r["metrics"]["per_class_error"]) == num_classes]
    counts = _train_counts(recs, num_classes)
    order = list(range(num_classes))
    if counts is not None:
        order.sort(key=lambda c: -counts[c])
    return chosen, recs, num_classes, counts, order


def per_class_settings(records: Iterable[dict[str, Any]]) -> list[Setting]:
    """Settings that :func:`plot_per_class_error` can draw, in table order."""
    return list(_per_class_records(records))


def _mean_per_class(records: Sequence[dict[str, Any]], num_classes: int) -> list[float]:
    out = []
    for c in range(num_classes):
        vals = [number(r["metrics"]["per_class_error"][c]) for r in records]
        vals = [v for v in vals if v is not None]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return out


def _class_names(
    dataset: Any, records: Sequence[dict[str, Any]], num_classes: int
) -> tuple[str, ...] | None:
    """Names for the classes of a plot: the registry's class names of ``dataset`` when it names
    that many classes; else the source labels the records carry (``"classes"``, the label in
    the data of each class index: an .npz labelled {3, 7, 42} trains classes 0, 1, 2), when
    they agree; else ``None`` (class indices)."""
    from longtail.data.registry import get_dataset

    try:
        names = get_dataset(str(dataset)).class_names
    except ValueError:
        names = ()
    if len(names) == num_classes:
        return tuple(names)
    labels = [r.get("classes") for r in records]
    labels = [c for c in labels if isinstance(c, list) and len(c) == num_classes]
    if labels and all(c == labels[0] for c in labels):
        return tuple(str(c) for c in labels[0])
    return None


def _class_axis(
    ax: Any, ax_counts: Any, counts: list[float] | None, order: list[int], names: Any
) -> None:
    x = list(range(len(order)))
    ticks = x[:: max(1, len(order) // 25)]
    labels = [names[order[t]] if names else str(order[t]) for t in ticks]
    rotation = 30 if names and max(len(n) for n in names) > 3 else 0
    xlabel = (
        "class (sorted by training count, most frequent first)"
        if counts is not None
        else f"class{'' if names else ' index'} (training counts unknown; head classes first)"
    )
    if ax_counts is None:
        ax.set_xticks(ticks, labels, rotation=rotation, ha="right" if rotation else "center")
        ax.set_xlabel(xlabel)
        return
    ax_counts.bar(x, [counts[c] for c in order], color="0.6")
    ax_counts.set_yscale("log")
    ax_counts.set_ylabel("train count")
    ax_counts.grid(True, axis="y", alpha=0.3)
    ax_counts.set_xticks(ticks, labels, rotation=rotation, ha="right" if rotation else "center")
    ax_counts.set_xlabel(xlabel)


def plot_per_class_error(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Per-class test error of every method, classes sorted by training count (the paper's Fig. 3).

    The upper panel has one line with markers per method (mean over distinct seeds; runs of
    another recipe or loss setting are lines of their own), classes on the x axis from the most
    to the least frequent in training; the lower panel draws the training counts as bars (log
    scale). The counts come from the records (``"class_counts"``, as the engine writes them, or
    ``"train_counts"`` at the top level or in ``"config"``), else from the profile
    (``config["n_max"]``, or the dataset registry's head-class size); without either, classes
    stay in index order (the head first, as the profiles build them) and the lower panel is left
    out. Classes are named by the dataset registry's class names, else by the labels they have
    in the data (the records' ``"classes"``), else by index.

    Args:
        records: Results records; those with ``metrics["per_class_error"]`` are used.
        path: The PNG file to write (atomically).
        setting: ``(dataset, profile, ratio)`` or its file-name form ``"cifar10_exp100"``; default
            the first setting with data (datasets sorted, long-tailed before step, 100 before 10).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If no record has per-class errors, or ``setting`` has none.
        ImportError: If matplotlib is missing.
    """
    chosen, recs, num_classes, counts, order = _per_class_setting(records, setting)
    fig = _figure(max(7.0, min(16.0, 0.25 * num_classes + 5)), 5.5 if counts else 4.2)
    if counts is not None:
        ax, ax_counts = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, ax_counts = fig.subplots(1, 1), None
    lines = _lines(group_tables(recs), chosen)
    for i, (label, runs) in enumerate(lines):
        err = _mean_per_class(runs, num_classes)
        ax.plot(
            range(num_classes),
            [err[c] for c in order],
            marker=MARKERS[i % len(MARKERS)],
            markersize=4,
            linewidth=1.2,
            label=label,
            color=f"C{i % 10}",
            linestyle="-" if i < 10 else "--",
        )
    seeds = seed_span(len(runs) for _, runs in lines)
    ax.set_title(f"Per-class top-1 error, {setting_title(chosen)} (mean over {seeds})")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    _class_axis(ax, ax_counts, counts, order, _class_names(chosen[0], recs, num_classes))
    return _save(fig, path)


# ---- the MM ablation --------------------------------------------------------------------------
def _heat_map(fig: Any, ax: Any, grid: AblationGrid, title: str) -> None:
    cells = {p: cell_stats(runs, "top1_error") for p, runs in grid.cells.items()}
    betas = sorted({b for b, _ in cells})
    deltas = sorted({d for _, d in cells})
    values = [
        [cells[(b, d)]["mean"] if cells.get((b, d)) else math.nan for d in deltas] for b in betas
    ]
    finite = [v for row in values for v in row if not math.isnan(v)]
    low, high = min(finite), max(finite)
    image = ax.imshow(values, cmap="viridis_r", aspect="auto", vmin=low, vmax=high)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if math.isnan(v):
                ax.text(j, i, "not run", ha="center", va="center", color="0.5")
                continue
            light = high == low or (v - low) / (high - low) < 0.5
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize="small",
                color="black" if light else "white",
                fontweight="bold" if round(v, 2) == round(low, 2) else "normal",
            )
    ax.set_xticks(range(len(deltas)), [f"{d:g}" for d in deltas])
    ax.set_yticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_xlabel("δ⁻")
    ax.set_ylabel("β  (δ⁺ = β·δ⁻)")
    ax.set_title(f"{title}: top-1 error (%)", fontsize="medium")
    fig.colorbar(image, ax=ax, label="top-1 error (%)")


def plot_ablation(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Heat map of the MM ablation's β × δ⁻ grid of mean top-1 error, values in the cells.

    One panel per grid in the setting (:func:`~longtail.bench.tables.ablation_markdown`: one
    per method, loss settings and recipe; normally just one).

    Args:
        records: Results records; those with ``"bench": "mm-ablation"`` are used.
        path: The PNG file to write (atomically).
        setting: ``(dataset, profile, ratio)`` or ``"cifar10_exp100"``; default the first
            setting with ablation records.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If there is no ablation record (in ``setting``).
        ImportError: If matplotlib is missing.
    """
    grids = ablation_grids(records)
    grids = [g for g in grids if any(cell_stats(r, "top1_error") for r in g.cells.values())]
    settings = sorted({g.setting for g in grids}, key=setting_order)
    chosen = pick_setting(settings, setting, "'bench': 'mm-ablation'")
    panels = [g for g in grids if g.setting == chosen]
    sizes = [(len({b for b, _ in g.cells}), len({d for _, d in g.cells})) for g in panels]
    width = sum(max(3.5, 0.9 * nd + 2.0) for _, nd in sizes)
    height = max(3.0, 0.6 * max(nb for nb, _ in sizes) + 1.8)
    fig = _figure(width, height)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    several = len({id(g.table) for g in grids}) > 1
    for ax, grid in zip(axes, panels, strict=True):
        title = row_labels(grid.table.rows)[grid.row]
        _heat_map(fig, ax, grid, title + (f" (recipe {grid.name})" if several else ""))
    fig.suptitle(f"MM ablation, {setting_title(chosen)}")
    return _save(fig, path)


# ---- DIR error per label bin ------------------------------------------------------------------
def _per_bin_records(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    recs = []
    for rec in distinct_runs(dir_records(records)):
        per_bin, edges = rec["metrics"].get("per_bin_mae"), rec.get("bin_edges")
        if isinstance(per_bin, list) and isinstance(edges, list) and len(edges) == len(per_bin) + 1:
            recs.append(rec)
    return by_setting(recs)


def per_bin_settings(records: Iterable[dict[str, Any]]) -> list[Setting]:
    """Settings that :func:`plot_dir_error` can draw, in table order."""
    return list(_per_bin_records(records))


def _coarse_errors(rec: dict[str, Any], k: int) -> list[float]:
    """Per-bin MAE merged over runs of ``k`` bins, weighted by the test samples of each bin."""
    per_bin = rec["metrics"]["per_bin_mae"]
    counts = rec.get("test_hist") or [1 if v is not None else 0 for v in per_bin]
    out = []
    for j in range(0, len(per_bin), k):
        pairs = [
            (v, c)
            for v, c in zip(per_bin[j : j + k], counts[j : j + k], strict=True)
            if number(v) is not None and c
        ]
        n = sum(c for _, c in pairs)
        out.append(sum(v * c for v, c in pairs) / n if n else math.nan)
    return out


def _histogram(ax: Any, rec: dict[str, Any], edges: list[float]) -> None:
    """The training label histogram of ``rec`` on ``ax``, each bin coloured by its region; an
    empty bin has no bar (on the log axis a stand-in height would pass for one example)."""
    hist = rec.get("train_hist")
    nb = len(edges) - 1
    if not (isinstance(hist, list) and len(hist) == nb):
        return
    config = rec.get("config") or {}
    many, few = config.get("many_threshold", 100), config.get("few_threshold", 20)
    colours = {"many": "0.35", "medium": "C0", "few": "C3"}
    names = {"many": f"many (> {many})", "medium": "medium", "few": f"few (< {few})"}
    region = regions_of_counts(hist, many, few)
    lefts, widths = edges[:-1], [b - a for a, b in itertools.pairwise(edges)]
    for name in ("many", "medium", "few"):
        idx = [j for j in range(nb) if region[j] == name and hist[j] > 0]
        if idx:
            ax.bar(
                [lefts[j] for j in idx],
                [hist[j] for j in idx],
                width=[widths[j] for j in idx],
                align="edge",
                color=colours[name],
                label=names[name],
            )
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5)  # a bin of one example still shows
    ax.set_ylabel("train count")
    ax.legend(fontsize="x-small", loc="upper right", ncol=3)
    ax.grid(True, axis="y", alpha=0.3)


def plot_dir_error(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
    max_points: int = 40,
) -> Path:
    """Test MAE against the target value for each DIR method, the training histogram beneath.

    The upper panel has one line per method (and per recipe or loss setting, if several): the
    test MAE of each label bin (the record's ``metrics["per_bin_mae"]`` over ``"bin_edges"``),
    mean over distinct seeds; neighbouring bins are merged (weighted by their test samples,
    ``"test_hist"``) so that at most ``max_points`` points are drawn. The lower panel, on the
    same x axis, draws the training label histogram (``"train_hist"``, log scale), each bin
    coloured by its shot region.

    Args:
        records: Results records; DIR records with per-bin errors are used.
        path: The PNG file to write (atomically).
        setting: ``(dataset, "dir", ratio)`` or its file-name form; default the first one.
        max_points: Most points per line.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If no DIR record has per-bin errors (in ``setting``).
        ImportError: If matplotlib is missing.
    """
    groups = _per_bin_records(records)
    chosen = pick_setting(list(groups), setting, "metrics['per_bin_mae'] and bin_edges")
    edges = groups[chosen][0]["bin_edges"]
    recs = [r for r in groups[chosen] if r["bin_edges"] == edges]
    nb = len(edges) - 1
    k = max(1, math.ceil(nb / max_points))
    starts = list(range(0, nb, k))
    centres = [(edges[j] + edges[min(j + k, nb)]) / 2 for j in starts]
    fig = _figure(9.0, 6.0)
    ax, ax_hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
    lines = _lines(group_tables(recs), chosen)
    for i, (label, runs) in enumerate(lines):
        curves = [_coarse_errors(r, k) for r in runs]
        mean = []
        for j in range(len(starts)):
            vals = [c[j] for c in curves if not math.isnan(c[j])]
            mean.append(sum(vals) / len(vals) if vals else math.nan)
        ax.plot(
            centres,
            mean,
            marker=MARKERS[i % len(MARKERS)],
            markersize=3.5,
            linewidth=1.3,
            label=label,
            color=f"C{i % 10}",
            linestyle="-" if i < 10 else "--",
        )
    target = recs[0].get("target") or "target"
    ax.set_title(
        f"Test MAE per {target} bin, {dir_title(chosen, recs)}\n"
        f"(mean over {seed_span(len(runs) for _, runs in lines)}; {k} bin{'s' if k > 1 else ''} "
        f"of {edges[1] - edges[0]:g} per point)",
        fontsize="medium",
    )
    ax.set_ylabel(f"test MAE ({target} units)")
    ax.grid(True, alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())
    _histogram(ax_hist, recs[0], edges)
    ax_hist.set_xlabel(f"{target} (label bins of the training set)")
    return _save(fig, path)


# ---- Group-DIR sensitivity --------------------------------------------------------------------
def _sweep_panels(axes: Sequence[Any], sweep: Sweep, title: str) -> None:
    lines = (("mae", "all", "C0", "o"), ("mae_few", "few-shot", "C3", "s"))
    factors = sweep.factors
    for i, (ax, (factor, label)) in enumerate(zip(axes, SENSITIVITY_FACTORS, strict=True)):
        values = list(factors[factor])
        x = list(range(len(values)))
        for metric, name, colour, marker in lines:
            stats = [cell_stats(factors[factor][v], metric) for v in values]
            ax.errorbar(
                x,
                [s["mean"] if s else math.nan for s in stats],
                yerr=[s["std"] if s else 0.0 for s in stats],
                marker=marker,
                color=colour,
                capsize=3,
                label=f"MAE {name}",
            )
        if sweep.centre[i] in values:
            ax.axvline(values.index(sweep.centre[i]), color="0.5", linestyle=":", linewidth=1)
        ax.set_xticks(x, [f"{v:g}" for v in values])
        ax.set_xlabel(label)
        others = ", ".join(
            f"{lab}={sweep.centre[j]:g}" for j, (_, lab) in enumerate(SENSITIVITY_FACTORS) if j != i
        )
        ax.set_title(f"{title}{label} ({others})", fontsize="medium")
        ax.grid(True, alpha=0.3)


def plot_dir_sensitivity(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Group-DIR's sensitivity to G, λ1 and λ2: three panels of test MAE (all and few-shot).

    Each panel varies one factor with the other two at the sweep's centre (see
    :func:`~longtail.bench.tables.dir_sensitivity_markdown`); points are means over distinct
    seeds with ± std bars, and the centre is marked by a dotted line. Several sweeps in the
    setting (other recipes or settings of the method) are rows of panels of their own.

    Raises:
        ValueError: If there is no ``"bench": "dir-sensitivity"`` record (in ``setting``).
        ImportError: If matplotlib is missing.
    """
    sweeps = sensitivity_sweeps(records)
    settings = sorted({s.column.setting for s in sweeps}, key=setting_order)
    chosen = pick_setting(settings, setting, "'bench': 'dir-sensitivity'")
    mine = [s for s in sweeps if s.column.setting == chosen]
    fig = _figure(10.5, 3.6 * len(mine))
    axes = fig.subplots(len(mine), 3, sharey=True, squeeze=False)
    for row_axes, sweep in zip(axes, mine, strict=True):
        label = row_labels(sweep.table.rows)[sweep.row]
        _sweep_panels(row_axes, sweep, f"{label}: " if len(mine) > 1 else "")
    recs = [r for s in mine for runs in s.points.values() for r in runs]
    target = recs[0].get("target") if recs else None
    for row_axes in axes:
        row_axes[0].set_ylabel(f"test MAE ({target} units)" if target else "test MAE")
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"Group-DIR sensitivity, {dir_title(chosen, recs)}", fontsize="medium")
    return _save(fig, path)


# ---- training curves ----------------------------------------------------------------------------
def _curve_records(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    return by_setting(r for r in distinct_runs(records, warn=False) if r.get("curve"))


def curve_settings(records: Iterable[dict[str, Any]]) -> list[Setting]:
    """Settings with at least one record that kept its training curve."""
    return list(_curve_records(records))


def _mean_curve(runs: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Epochs where every run has ``key``, and its mean over the runs there."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for p in r["curve"]:
            v = number(p.get(key))
            if v is not None:
                by_epoch.setdefault(int(p["epoch"]), []).append(v)
    epochs = sorted(e for e, vs in by_epoch.items() if len(vs) == len(runs))
    return [e + 1 for e in epochs], [sum(by_epoch[e]) / len(runs) for e in epochs]


def error_axis(records: Iterable[dict[str, Any]]) -> tuple[str, bool]:
    """The label of a curve plot's error axis, and whether validation lines must be marked:
    the split the runs were scored on, or (test and validation runs together) both, the
    validation lines marked in the legend."""
    splits = {r.get("eval_split") == "validation" for r in records}
    if len(splits) > 1:
        return "top-1 error (%): test, or validation where marked", True
    return f"{'validation' if True in splits else 'test'} top-1 error (%)", False


def plot_training_curves(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Training loss and evaluated top-1 error per epoch of every method, DRW start marked.

    One line per configuration (mean over its distinct seeds, as in the tables), from the
    ``"curve"`` the engine keeps in each record: the left panel the mean training loss of each
    epoch (log scale), the right panel the top-1 error on the split the run evaluates (test, or
    the validation split of ``val_per_class`` runs) at the epochs it was evaluated; a dashed
    vertical line in the line's colour marks the first epoch with deferred weights (DRW), and
    dotted grey lines the learning-rate steps of the first configuration.

    Raises:
        ValueError: If no record has a curve, or ``setting`` has none.
        ImportError: If matplotlib is missing.
    """
    groups = _curve_records(records)
    chosen = pick_setting(list(groups), setting, "a training curve")
    recs = groups[chosen]
    lines = _lines(group_tables(recs), chosen)
    fig = _figure(12.0, 4.6 + 0.2 * math.ceil(len(lines) / 2))
    ax_loss, ax_err = fig.subplots(1, 2, sharex=True)
    split, marked = error_axis(recs)
    for i, (label, runs) in enumerate(lines):
        if marked and any(r.get("eval_split") == "validation" for r in runs):
            label = f"{label} (validation)"
        style = {"color": f"C{i % 10}", "linestyle": "-" if i < 10 else "--", "linewidth": 1.2}
        x, loss = _mean_curve(runs, "loss")
        if x:
            ax_loss.plot(x, loss, label=label, **style)
        for key in ("val_top1_error", "test_top1_error"):
            x, err = _mean_curve(runs, key)
            if x:
                marker = MARKERS[i % len(MARKERS)] if len(x) < 30 else None
                ax_err.plot(x, err, label=label, marker=marker, markersize=3, **style)
        drw = [p["epoch"] for p in runs[0]["curve"] if p.get("reweighted")]
        if drw:
            for ax in (ax_loss, ax_err):
                ax.axvline(min(drw) + 0.5, color=style["color"], linestyle="--", alpha=0.5)
    if lines:
        lrs = [number(p.get("lr")) for p in lines[0][1][0]["curve"]]
        for e in range(1, len(lrs)):
            if lrs[e] is not None and lrs[e - 1] is not None and lrs[e] < lrs[e - 1]:
                for ax in (ax_loss, ax_err):
                    ax.axvline(e + 0.5, color="grey", linestyle=":", alpha=0.6)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("mean training loss")
    ax_loss.set_title("training loss (dashed: DRW starts; dotted: lr steps)")
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel(split)
    seeds = seed_span(len(runs) for _, runs in lines)
    ax_err.set_title(f"{setting_title(chosen)}, mean over {seeds}")
    for ax in (ax_loss, ax_err):
        ax.grid(True, alpha=0.3)
    _legend_below(fig, *ax_err.get_legend_handles_labels())
    return _save(fig, path)


# ---- per-class error heat map -------------------------------------------------------------------
@dataclass(frozen=True)
class PerClassMatrix:
    """What :func:`plot_per_class_heatmap` draws: mean per-class test error, methods × classes.

    Attributes:
        setting: The ``(dataset, profile, ratio)`` drawn.
        rows: One label per configuration (a method; runs of another recipe or loss setting are
            rows of their own, as lines are in :func:`plot_per_class_error`), in table order.
        seeds: The distinct runs (seeds) averaged in each row.
        classes: The class indices of the columns, the most training examples first (ties by
            index); index order when the training counts are unknown.
        names: The columns' class names (registry names, else the records' ``"classes"``, else
            indices).
        counts: The columns' training counts, ``None`` when unknown.
        regions: The columns' shot regions (``"many"``, ``"medium"``, ``"few"``), ``None`` when
            the counts are unknown.
        errors: ``errors[i][j]``: the mean over row ``i``'s runs of the test error (%) of class
            ``classes[j]``; NaN where no run has one (no test example of the class).
        thresholds: The runs' ``(many_threshold, few_threshold)`` that made the regions.
    """

    setting: Setting
    rows: list[str]
    seeds: list[int]
    classes: list[int]
    names: list[str]
    counts: list[float] | None
    regions: list[str] | None
    errors: list[list[float]]
    thresholds: tuple[float, float] = (100, 20)


def per_class_error_matrix(
    records: Iterable[dict[str, Any]], setting: Setting | str | None = None
) -> PerClassMatrix:
    """The matrix of :func:`plot_per_class_heatmap`: per-class test error of every method of
    ``setting`` (mean over distinct seeds), classes from head to tail by training count.

    Raises:
        ValueError: If no record has per-class errors, or ``setting`` has none.
    """
    chosen, recs, num_classes, counts, order = _per_class_setting(records, setting)
    names = _class_names(chosen[0], recs, num_classes)
    config = recs[0].get("config") or {}
    regions = None
    many, few = config.get("many_threshold", 100), config.get("few_threshold", 20)
    if counts is not None:
        regions = list(regions_of_counts([counts[c] for c in order], many, few))
    lines = _lines(group_tables(recs), chosen)
    errors = []
    for _, runs in lines:
        mean = _mean_per_class(runs, num_classes)
        errors.append([mean[c] for c in order])
    return PerClassMatrix(
        setting=chosen,
        rows=[label for label, _ in lines],
        seeds=[len(runs) for _, runs in lines],
        classes=order,
        names=[names[c] if names else str(c) for c in order],
        counts=[counts[c] for c in order] if counts is not None else None,
        regions=regions,
        errors=errors,
        thresholds=(many, few),
    )


def plot_per_class_heatmap(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Heat map of per-class test error: a row per method, a column per class (head → tail).

    The matrix is :func:`per_class_error_matrix`'s: cells are the mean per-class test error over
    each method's distinct seeds, written in the cell (up to 40 classes; beyond, every few
    columns are labelled), coloured on a fixed 0-100% scale (a colour bar beside), so that heat
    maps of different settings compare; columns are named classes sorted by training count
    (counts on the top axis; dashed lines between the many-, medium- and few-shot regions: more
    than 100 / fewer than 20 training examples, Liu et al., CVPR 2019). It reads where
    :func:`plot_per_class_error`'s lines of 13 methods cross: which method pays for its tail
    accuracy with which head class.

    Args:
        records: Results records; those with ``metrics["per_class_error"]`` are used.
        path: The PNG file to write (atomically).
        setting: ``(dataset, profile, ratio)`` or ``"cifar10_exp100"``; default the first setting
            with per-class errors.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If no record has per-class errors, or ``setting`` has none.
        ImportError: If matplotlib is missing.
    """
    m = per_class_error_matrix(records, setting)
    n_rows, n_cols = len(m.rows), len(m.classes)
    annotate = n_cols <= 40
    label_width = max(len(r) for r in m.rows)
    fig = _figure(
        min(40.0, max(6.0, (0.72 if annotate else 0.2) * n_cols + 0.085 * label_width + 2.2)),
        min(30.0, max(3.6, 0.36 * n_rows + 2.6)),
    )
    ax = fig.subplots(1, 1)
    import matplotlib
    import numpy as np

    cmap = matplotlib.colormaps["magma_r"].with_extremes(bad="0.85")
    values = np.ma.masked_invalid(np.array(m.errors, dtype=float).reshape(n_rows, n_cols))
    image = ax.imshow(values, cmap=cmap, vmin=0.0, vmax=100.0, aspect="auto")
    if annotate:
        size = 8 if n_cols <= 16 else 6
        for i, row in enumerate(m.errors):
            for j, v in enumerate(row):
                text, color = ("n/a", "0.3") if math.isnan(v) else (f"{v:.1f}", "black")
                if not math.isnan(v) and v > 55:
                    color = "white"  # the dark end of magma_r
                ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    ticks = list(range(0, n_cols, 1 if annotate else math.ceil(n_cols / 40)))
    long_names = max(len(n) for n in m.names) > 3
    ax.set_xticks(
        ticks,
        [m.names[j] for j in ticks],
        rotation=35 if long_names else 0,
        ha="right" if long_names else "center",
        rotation_mode="anchor",
    )
    ax.set_yticks(range(n_rows), m.rows)
    ax.tick_params(length=0)
    if m.counts is not None:
        top = ax.secondary_xaxis("top")
        top.set_xticks(ticks, [f"{m.counts[j]:g}" for j in ticks], fontsize="small")
        top.tick_params(length=0)
        regions = m.regions or []
        cuts = [j for j in range(1, n_cols) if regions[j] != regions[j - 1]]
        for j in cuts:
            ax.axvline(j - 0.5, color="0.5", linestyle="--", linewidth=1.2)
        shots = f"; dashed: many > {m.thresholds[0]:g} ≥ medium ≥ {m.thresholds[1]:g} > few"
        top.set_xlabel(f"training examples per class{shots if cuts else ''}", fontsize="small")
        ax.set_xlabel("class, most training examples first (head → tail)")
    else:
        ax.set_xlabel("class (training counts unknown; index order)")
    seeds = seed_span(m.seeds)
    ax.set_title(f"Per-class top-1 error (%), {setting_title(m.setting)}, mean over {seeds}")
    fig.colorbar(image, ax=ax, label="test error (%)", fraction=0.04, pad=0.02)
    return _save(fig, path)
