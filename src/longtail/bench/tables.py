"""Markdown tables from results records: the MM paper's Table 1 and its β × δ⁻ ablation, a tail
view, and the deep imbalanced regression tables.

Every function first counts copies of a run once and splits the records by recipe
(:func:`~longtail.bench.records.group_tables`): runs that differ in epochs, n_max, preset, model,
... are laid out in separate tables, each captioned with its recipe, never averaged together.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from longtail.bench.labels import (
    METRIC_NAMES,
    column_titles,
    plural,
    recipe_text,
    row_labels,
    seeds_text,
    shots_text,
    varying_keys,
)
from longtail.bench.records import (
    Column,
    Row,
    Setting,
    Table,
    ablation,
    cell_stats,
    classification,
    classification_validation,
    dir_records,
    distinct_runs,
    group_tables,
    number,
    sensitivity_records,
)
from longtail.data.registry import dataset_label

__all__ = [
    "DIR_COLUMNS",
    "LAST_COLUMNS",
    "SENSITIVITY_FACTORS",
    "TAIL_COLUMNS",
    "AblationGrid",
    "Sweep",
    "ablation_grids",
    "ablation_markdown",
    "dir_markdown",
    "dir_sensitivity_markdown",
    "sensitivity_sweeps",
    "table1_markdown",
    "tail_markdown",
    "validation_markdown",
]

Stats = dict[str, Any]

#: Columns of the tail view: (metric, header).
TAIL_COLUMNS = (
    ("balanced_accuracy", "Balanced acc."),
    ("many_acc", "Many"),
    ("medium_acc", "Medium"),
    ("few_acc", "Few"),
    ("ece", "ECE"),
)

# Deep imbalanced regression records ("bench": "dir", or a lone `longtail train --task regression`
# run) carry mae, mse, gm, pearson and each again per shot region (mae_many, ...), the last
# epoch's last_mae, last_mae_many, ..., and for the plots per-bin test errors.
DIR_COLUMNS = tuple(
    (f"{m}{suffix}", f"{m.upper()} {region}")
    for m in ("mae", "gm")
    for suffix, region in (("", "all"), ("_many", "many"), ("_medium", "medium"), ("_few", "few"))
)
LAST_COLUMNS = tuple(
    (f"last_mae{suffix}", f"MAE {region}")
    for suffix, region in (("", "all"), ("_many", "many"), ("_medium", "medium"), ("_few", "few"))
)

#: Group-DIR's swept settings: (config key, symbol).
SENSITIVITY_FACTORS = (("num_groups", "G"), ("lambda1", "λ1"), ("lambda2", "λ2"))


# ---- markdown pieces --------------------------------------------------------------------------
def _higher_is_better(metric: str) -> bool:
    return metric.endswith(("_acc", "accuracy")) or metric.startswith("pearson")


def _cell(stats: Stats | None, decimals: int = 2) -> str:
    if stats is None:
        return "—"
    if stats["n"] == 1:
        return f"{stats['mean']:.{decimals}f}"
    return f"{stats['mean']:.{decimals}f} ± {stats['std']:.{decimals}f}"


def _column(
    cells: Sequence[Stats | None], higher: bool, decimals: int = 2, most: int | None = None
) -> list[str]:
    """Cells of one column, the best (as displayed, so ties are all bold) in bold, where there
    are at least two cells to compare; a cell of fewer seeds than ``most`` (the table's largest
    count) says how many, as ``(n)``, and is not a candidate for bold: one seed's luck does not
    make a row best beside rows of three."""

    def full(c: dict[str, Any] | None) -> bool:  # a candidate for bold: the most seeds
        return c is not None and (most is None or c["n"] >= most)

    shown = [round(c["mean"], decimals) for c in cells if full(c)]
    best = (max(shown) if higher else min(shown)) if len(shown) > 1 else None
    out = []
    for c in cells:
        text = _cell(c, decimals)
        if full(c) and round(c["mean"], decimals) == best:
            text = f"**{text}**"
        if c is not None and most is not None and c["n"] < most:
            text += f" ({c['n']})"
        out.append(text)
    return out


def _table(header: Sequence[str], columns: Sequence[Sequence[str]], first: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for i, name in enumerate(first):
        lines.append("| " + " | ".join([name, *(col[i] for col in columns)]) + " |")
    return "\n".join(lines)


def table_names(prefix: str, n: int) -> list[str]:
    """``["Table 1"]`` for one table, ``["Table 1a", "Table 1b", ...]`` for several."""
    if n == 1:
        return [prefix]
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [f"{prefix}{letters[i]}" if i < 26 else f"{prefix}.{i + 1}" for i in range(n)]


def _stats_grid(
    table: Table, rows: Sequence[Row], columns: Sequence[Column], metric: str
) -> dict[tuple[Row, Column], Stats | None]:
    return {(r, c): cell_stats(table.runs(r, c), metric) for r in rows for c in columns}


def _sections(
    records: Iterable[dict[str, Any]], prefix: str, defining: Sequence[str] = ()
) -> list[tuple[Table, str, list[str]]]:
    """The tables of ``records`` with their names and the recipe keys their captions state."""
    tables = group_tables(records, defining)
    varying = varying_keys(tables)
    return list(zip(tables, table_names(prefix, len(tables)), [varying] * len(tables), strict=True))


# ---- Table 1 and the tail view ----------------------------------------------------------------
def _table1_part(
    table: Table, metric: str, name: str, varying: list[str], split: str = "test"
) -> str:
    grid = _stats_grid(table, table.rows, table.columns, metric)
    rows = [r for r in table.rows if any(grid[(r, c)] for c in table.columns)]
    cols = [c for c in table.columns if any(grid[(r, c)] for r in rows)]
    if not rows:
        return ""
    higher = _higher_is_better(metric)
    counts = [s["n"] for s in grid.values() if s is not None]
    columns = [_column([grid[(r, c)] for r in rows], higher, most=max(counts)) for c in cols]
    labels = row_labels(table.rows)
    what = METRIC_NAMES.get(metric, metric)
    if split != "test":
        what = f"{split.capitalize()} {what[0].lower()}{what[1:]}"
    caption = (
        f"**{name}.** {what} at the last epoch (not the best epoch "
        f"over training), {seeds_text(counts)}; {'highest' if higher else 'lowest'} per column "
        f"in bold. {recipe_text(table, varying)}"
    ).strip()
    header = ["Method", *column_titles(cols)]
    return caption + "\n\n" + _table(header, columns, [labels[r] for r in rows])


def table1_markdown(
    records: Iterable[dict[str, Any]], metric: str = "top1_error", *, tail_view: bool = True
) -> str:
    """Table 1 of the MM paper (Kang et al., ICIP 2021) from results records, in markdown.

    One row per method in the registry's order (:data:`~longtail.bench.records.METHOD_ORDER`;
    unknown methods after it, sorted), a method run with other loss settings (``loss_kwargs``)
    in a row of its own labelled with them; one column per setting that has data, grouped by
    dataset, then long-tailed (``exp``) before step, ratio 100 before 10. A cell is
    ``mean ± std`` over distinct seeds (sample std), or the mean alone for one seed, with 2
    decimals; ``—`` where a method has no run. The best value of each column (lowest error,
    highest accuracy) is bold. Numbers are those of the last epoch, not the best epoch over
    training that the paper's repositories report. Records of different recipes (epochs,
    n_max, preset, model, ...) make separate tables (Table 1a, 1b, ...), each captioned with
    its recipe; copies of a run count once.

    MM ablation and regression records are left out (see :func:`ablation_markdown`,
    :func:`dir_markdown`).

    Example:
        >>> recs = [
        ...     {"method": m, "dataset": "cifar10", "profile": "exp", "ratio": 100, "seed": 0,
        ...      "metrics": {"top1_error": e}}
        ...     for m, e in [("mm-drw", 21.98), ("erm", 29.64)]
        ... ]
        >>> print(table1_markdown(recs, tail_view=False).splitlines()[-2:])
        ['| ERM | 29.64 |', '| MM-DRW | **21.98** |']

    Args:
        records: Results records (:func:`~longtail.bench.records.load_records`).
        metric: The metric in the cells (``"top1_error"`` as in the paper).
        tail_view: Also add :func:`tail_markdown` (balanced, many, medium, few accuracy and ECE
            per setting) below the tables.

    Returns:
        Markdown text (a caption line and the table, per recipe), or ``""`` when no record has
        the metric.
    """
    records = distinct_runs(classification(records))
    parts = [_table1_part(t, metric, n, v) for t, n, v in _sections(records, "Table 1")]
    text = "\n\n".join(p for p in parts if p)
    if text and tail_view:
        tail = tail_markdown(records)
        if tail:
            text += "\n\n" + tail
    return text


def validation_markdown(records: Iterable[dict[str, Any]], metric: str = "top1_error") -> str:
    """Classification runs scored on a validation split only (``--val-per-class``), as tables
    laid out as Table 1's (one per recipe), each introduced as not test results; ``""`` when
    there are none. They never enter Table 1, its plots or the claims."""
    records = distinct_runs(classification_validation(records))
    parts = [
        _table1_part(t, metric, n, v, split="validation")
        for t, n, v in _sections(records, "Validation table")
    ]
    text = "\n\n".join(p for p in parts if p)
    if not text:
        return ""
    return (
        "Scored on the validation split only (`--val-per-class`): the test split was never "
        "scored, so these are not test results, and they enter neither Table 1 nor the claims."
        "\n\n" + text
    )


def _tail_part(table: Table, column: Column, title: str) -> str:
    metrics = [m for m, _ in TAIL_COLUMNS]
    grids = {m: _stats_grid(table, table.rows, [column], m) for m in metrics}
    rows = [r for r in table.rows if any(grids[m][(r, column)] for m in metrics)]
    if not rows:
        return ""
    counts = [s["n"] for g in grids.values() for s in g.values() if s is not None]
    columns = [
        _column([grids[m][(r, column)] for r in rows], _higher_is_better(m), most=max(counts))
        for m in metrics
    ]
    labels = row_labels(table.rows)
    return (
        f"**Tail view, {title}.** Accuracy (%) by class group "
        f"({shots_text(table.recipe, '')}) and ECE (%), {seeds_text(counts)}; best per column in "
        "bold.\n\n"
        + _table(["Method", *(h for _, h in TAIL_COLUMNS)], columns, [labels[r] for r in rows])
    )


def tail_markdown(records: Iterable[dict[str, Any]]) -> str:
    """The tail view: balanced accuracy, many/medium/few-shot accuracy and ECE per setting.

    One small table per setting (dataset, profile, ratio) and recipe: rows are methods
    (registry order), columns balanced accuracy, many-shot (more than 100 training examples),
    medium-shot and few-shot (fewer than 20) accuracy, and ECE, all in percent, ``mean ± std``
    over distinct seeds; best per column in bold. A shot group with no class in the setting
    shows ``—``. With several recipes, each title names its table (Table 1a, ...).

    Args:
        records: Results records; MM ablation and regression records are left out.

    Returns:
        Markdown text, or ``""`` when no record has any of these metrics.
    """
    sections = _sections(distinct_runs(classification(records)), "Table 1")
    parts = []
    for table, name, _ in sections:
        titles = column_titles(table.columns)
        for column, title in zip(table.columns, titles, strict=True):
            full = f"{title}, {name}" if len(sections) > 1 else title
            parts.append(_tail_part(table, column, full))
    return "\n\n".join(p for p in parts if p)


# ---- the MM ablation --------------------------------------------------------------------------
@dataclass
class AblationGrid:
    """The β × δ⁻ grid of one method (and its other loss settings) in one setting and recipe."""

    table: Table
    name: str
    row: Row
    column: Column
    cells: dict[tuple[float, float], list[dict[str, Any]]]

    @property
    def setting(self) -> Setting:
        return self.column.setting


def ablation_grids(records: Iterable[dict[str, Any]]) -> list[AblationGrid]:
    """The MM ablation's grids, warning about records without β or δ⁻ in their loss settings."""
    out = []
    skipped = 0
    for table, name, _ in _sections(ablation(records), "", ("beta", "delta_minus")):
        found: dict[tuple[Row, Column], dict[tuple[float, float], list[dict[str, Any]]]] = {}
        for (row, column, (beta, delta)), runs in table.cells.items():
            if number(beta) is None or number(delta) is None:
                skipped += len(runs)
                continue
            found.setdefault((row, column), {})[(float(beta), float(delta))] = runs
        out += [
            AblationGrid(table, name, row, column, found[(row, column)])
            for column in table.columns
            for row in table.rows
            if (row, column) in found
        ]
    if skipped:
        warnings.warn(
            f"Left out {plural(skipped, 'mm-ablation record')} whose config['loss_kwargs'] "
            f"{'lacks' if skipped == 1 else 'lack'} 'beta' or 'delta_minus'.",
            stacklevel=3,
        )
    return out


def _ablation_part(grid: AblationGrid, title: str, varying: list[str]) -> str:
    stats = {p: cell_stats(runs, "top1_error") for p, runs in grid.cells.items()}
    stats = {p: s for p, s in stats.items() if s is not None}
    if not stats:
        return ""
    betas = sorted({b for b, _ in stats})
    deltas = sorted({d for _, d in stats})
    most = max(s["n"] for s in stats.values())
    full = [round(s["mean"], 2) for s in stats.values() if s["n"] == most]
    best = min(full) if len(full) > 1 else None  # a cell alone at the most seeds has no peer
    columns = []
    for d in deltas:
        col = []
        for b in betas:
            s = stats.get((b, d))
            text = _cell(s)
            if s is not None and s["n"] == most and round(s["mean"], 2) == best:
                text = f"**{text}**"
            if s is not None and s["n"] < most:
                text += f" ({s['n']})"
            col.append(text)
        columns.append(col)
    return (
        f"**MM ablation, {title}.** Top-1 error (%), "
        f"{seeds_text(s['n'] for s in stats.values())}; rows β, columns δ⁻ (δ⁺ = β·δ⁻); "
        f"lowest in bold. {recipe_text(grid.table, varying)}".strip()
        + "\n\n"
        + _table(["β \\ δ⁻", *(f"{d:g}" for d in deltas)], columns, [f"{b:g}" for b in betas])
    )


def ablation_title(grid: AblationGrid, grids: Sequence[AblationGrid]) -> str:
    """``"MM-DRW, Fashion-MNIST long-tailed 100"`` (and the table's name when several)."""
    label = row_labels(grid.table.rows)[grid.row]
    title = column_titles(grid.table.columns)[grid.table.columns.index(grid.column)]
    several = len({id(g.table) for g in grids}) > 1
    return f"{label}, {title}" + (f" (recipe {grid.name})" if several else "")


def ablation_markdown(records: Iterable[dict[str, Any]]) -> str:
    """The β × δ⁻ ablation of the MM loss (the paper's Tables 2 and 3) as markdown grids.

    Uses the records with ``"bench": "mm-ablation"``, whose ``config["loss_kwargs"]`` holds
    ``"beta"`` and ``"delta_minus"`` (``δ⁺ = β · δ⁻``). One grid per setting, method (with its
    other loss settings) and recipe: rows β, columns δ⁻, cells the mean top-1 error (%) over
    distinct seeds, the lowest in bold, ``—`` where a pair was not run; the caption states the
    recipe.

    Example:
        >>> recs = [
        ...     {"method": "mm-drw", "bench": "mm-ablation", "dataset": "cifar10",
        ...      "profile": "exp", "ratio": 100, "seed": 0, "metrics": {"top1_error": e},
        ...      "config": {"loss_kwargs": {"beta": b, "delta_minus": 0.6}}}
        ...     for b, e in [(1.4, 22.24), (1.5, 21.98)]
        ... ]
        >>> print(ablation_markdown(recs).splitlines()[-2:])
        ['| 1.4 | 22.24 |', '| 1.5 | **21.98** |']

    Args:
        records: Results records; only the MM ablation ones are used.

    Returns:
        Markdown text, or ``""`` when there is no MM ablation record.
    """
    grids = ablation_grids(records)
    varying = varying_keys(list({id(g.table): g.table for g in grids}.values()))
    parts = [_ablation_part(g, ablation_title(g, grids), varying) for g in grids]
    return "\n\n".join(p for p in parts if p)


# ---- deep imbalanced regression ---------------------------------------------------------------
def dir_decimals(cells: Iterable[Stats | None]) -> int:
    """Decimals for errors of this size: 2 below 10 (ages in years), 1 below 100, else 0 (US$);
    below 1, enough for three significant digits of the typical (median) cell, so that errors on
    a small scale (rates, fractions: an MAE of 0.000494) are not all printed as 0.00."""
    means = sorted(abs(c["mean"]) for c in cells if c is not None)
    if not means:
        return 2
    typical = means[len(means) // 2]
    if 0 < typical < 1:
        return min(12, 2 - math.floor(math.log10(typical)))
    return 2 if typical < 10 else 1 if typical < 100 else 0


def dir_title(setting: Setting, records: Sequence[dict[str, Any]]) -> str:
    """``"diamonds (price), training imbalance 942:1 over 100-wide bins"``."""
    dataset, profile, ratio = setting
    if profile != "dir":
        return " ".join(str(x) for x in setting if x is not None)
    targets = sorted({str(r["target"]) for r in records if r.get("target")})
    label = dataset_label(str(dataset))
    name = f"{label} ({', '.join(targets)})" if targets else label
    widths = sorted({r.get("bin_width") for r in records if r.get("bin_width")})
    bins = f" over {widths[0]:g}-wide bins" if len(widths) == 1 else ""
    return name + (f", training imbalance {ratio:g}:1{bins}" if ratio is not None else "")


def dir_column_titles(table: Table) -> list[str]:
    """DIR titles of the table's columns (the data's fingerprint where two share a setting)."""

    def title(setting: Setting) -> str:
        runs = [r for (_, c, _), rs in table.cells.items() if c.setting == setting for r in rs]
        return dir_title(setting, runs)

    return column_titles(table.columns, title=title)


def selection_text(records: Sequence[dict[str, Any]]) -> str:
    if records and all(r.get("selection") == "best validation MAE" for r in records):
        return "test metrics of the epoch with the best validation MAE"
    return "test metrics"


def _dir_part(table: Table, column: Column, title: str, varying: list[str]) -> str:
    metrics = [m for m, _ in (*DIR_COLUMNS, *LAST_COLUMNS)]
    grids = {m: _stats_grid(table, table.rows, [column], m) for m in metrics}
    rows = [r for r in table.rows if any(grids[m][(r, column)] for m, _ in DIR_COLUMNS)]
    if not rows:
        return ""
    labels = row_labels(table.rows)
    names = [labels[r] for r in rows]
    dec = dir_decimals(grids["mae"][(r, column)] for r in rows)
    counts = [s["n"] for m, _ in DIR_COLUMNS for s in grids[m].values() if s is not None]
    columns = [
        _column([grids[m][(r, column)] for r in rows], higher=False, decimals=dec, most=max(counts))
        for m, _ in DIR_COLUMNS
    ]
    recs = [run for r in rows for run in table.runs(r, column)]
    text = (
        f"**Deep imbalanced regression, {title}.** MAE and GM by label region "
        f"({shots_text(table.recipe, ' per bin')}), {selection_text(recs)}, "
        f"{seeds_text(counts)}; lowest in bold. {recipe_text(table, varying)}".strip()
        + "\n\n"
        + _table(["Method", *(h for _, h in DIR_COLUMNS)], columns, names)
    )
    if any(grids[m][(r, column)] for m, _ in LAST_COLUMNS for r in rows):
        last = [
            _column([grids[m][(r, column)] for r in rows], False, dec, most=max(counts))
            for m, _ in LAST_COLUMNS
        ]
        text += "\n\nThe same runs, test MAE of the last epoch's weights:\n\n" + _table(
            ["Method", *(h for _, h in LAST_COLUMNS)], last, names
        )
    return text


def dir_markdown(records: Iterable[dict[str, Any]]) -> str:
    """Deep imbalanced regression results: MAE and GM overall and per shot region.

    Uses the records with ``"bench": "dir"`` (or, without a ``"bench"`` key, those whose metrics
    have ``mae`` and no ``top1_error``). One table per setting (dataset, and for the DIR engine's
    records the training imbalance) and recipe: rows are methods (the regression registry's
    order, :data:`~longtail.engine.regression.REGRESSION_METHODS`), columns MAE and GM
    (geometric mean of the absolute errors) for all, many-, medium- and few-shot label bins,
    ``mean ± std`` over distinct seeds, lowest per column in bold. When the records also have
    the last epoch's errors (``last_mae``, ...), a second table shows those MAEs.

    Example:
        >>> rec = {"method": "vanilla", "bench": "dir", "dataset": "agedb", "seed": 0,
        ...        "metrics": {"mae": 7.77, "mae_few": 13.67, "gm": 5.05}}
        >>> print(dir_markdown([rec]).splitlines()[-1])
        | Vanilla (MSE) | 7.77 | — | — | 13.67 | 5.05 | — | — | — |

    Args:
        records: Results records; only the regression ones are used.

    Returns:
        Markdown text, or ``""`` when there is no regression record.
    """
    sections = _sections(distinct_runs(dir_records(records)), "")
    parts = []
    for table, name, varying in sections:
        for column, title in zip(table.columns, dir_column_titles(table), strict=True):
            full = f"{title} (recipe {name})" if len(sections) > 1 else title
            parts.append(_dir_part(table, column, full, varying))
    return "\n\n".join(p for p in parts if p)


# ---- Group-DIR sensitivity --------------------------------------------------------------------
Point = tuple[int, float, float]


@dataclass
class Sweep:
    """One-factor-at-a-time sweep of G, λ1, λ2 of one method, setting and recipe.

    ``centre`` is the most common value of each factor; ``factors[name]`` maps each value of a
    factor to the runs with the other two at the centre.
    """

    table: Table
    name: str
    row: Row
    column: Column
    centre: Point
    points: dict[Point, list[dict[str, Any]]]

    @property
    def factors(self) -> dict[str, dict[Any, list[dict[str, Any]]]]:
        out = {}
        for i, (factor, _) in enumerate(SENSITIVITY_FACTORS):
            values = {
                p[i]: runs
                for p, runs in self.points.items()
                if all(p[j] == self.centre[j] for j in range(3) if j != i)
            }
            out[factor] = dict(sorted(values.items()))
        return out

    @property
    def order(self) -> list[Point]:
        """The centre, then the other points of the sweep, factor by factor."""
        out = [self.centre] if self.centre in self.points else []
        for i, (factor, _) in enumerate(SENSITIVITY_FACTORS):
            for value in self.factors[factor]:
                point = tuple(value if j == i else self.centre[j] for j in range(3))
                if point not in out:
                    out.append(point)
        return out


def _sensitivity_point(point: tuple[Any, ...], runs: list[dict[str, Any]]) -> Point | None:
    try:
        return (int(point[0]), float(point[1]), float(point[2]))
    except (TypeError, ValueError):
        for rec in runs:
            warnings.warn(
                f"Skipping a dir-sensitivity record of {rec.get('method')!r} (seed "
                f"{rec.get('seed')}): its config has no num_groups / lambda1 / lambda2.",
                stacklevel=4,
            )
        return None


def sensitivity_sweeps(records: Iterable[dict[str, Any]]) -> list[Sweep]:
    """The Group-DIR sweeps (``"bench": "dir-sensitivity"`` records), in table order."""
    factors = [f for f, _ in SENSITIVITY_FACTORS]
    out = []
    for table, name, _ in _sections(distinct_runs(sensitivity_records(records)), "", factors):
        found: dict[tuple[Row, Column], dict[Point, list[dict[str, Any]]]] = {}
        for (row, column, point), runs in table.cells.items():
            p = _sensitivity_point(point, runs)
            if p is not None:
                found.setdefault((row, column), {})[p] = runs
        for column in table.columns:
            for row in table.rows:
                points = found.get((row, column))
                if points:
                    out.append(Sweep(table, name, row, column, _centre(points), points))
    return out


def _centre(points: dict[Point, list[dict[str, Any]]]) -> Point:
    """The sweep's centre: the one its runs record (``"centre"``, written by the bench since
    it was found ambiguous), else, for older records, the most common value of each factor
    over the runs (ties: the value seen first)."""
    recorded = Counter(
        (int(c["num_groups"]), float(c["lambda1"]), float(c["lambda2"]))
        for rs in points.values()
        for r in rs
        if isinstance(c := r.get("centre"), dict) and {"num_groups", "lambda1", "lambda2"} <= set(c)
    )
    if recorded and recorded.most_common(1)[0][0] in points:
        return recorded.most_common(1)[0][0]
    runs = [p for p, rs in points.items() for _ in rs]
    return tuple(Counter(p[j] for p in runs).most_common(1)[0][0] for j in range(3))  # type: ignore[return-value]


def _sensitivity_part(sweep: Sweep, varying: list[str], several: bool) -> str:
    order = sweep.order
    metrics = [m for m, _ in DIR_COLUMNS[:4]]
    cells = [[cell_stats(sweep.points[p], m) for p in order] for m in metrics]
    dec = dir_decimals(c for col in cells for c in col)
    most = max((c["n"] for col in cells for c in col if c is not None), default=None)
    columns = [_column(col, higher=False, decimals=dec, most=most) for col in cells]
    names = [
        f"G={g}, λ1={a:g}, λ2={b:g}" + (" (centre)" if (g, a, b) == sweep.centre else "")
        for g, a, b in order
    ]
    recs = [r for p in order for r in sweep.points[p]]
    label = row_labels(sweep.table.rows)[sweep.row]
    title = dir_title(sweep.column.setting, recs) + (f" (recipe {sweep.name})" if several else "")
    return (
        f"**{label} sensitivity, {title}.** One factor at a time around the centre; test MAE by "
        f"label region, {selection_text(recs)}, {seeds_text(len(sweep.points[p]) for p in order)}"
        f"; lowest in bold. {recipe_text(sweep.table, varying)}".strip()
        + "\n\n"
        + _table(["Setting", *(h for _, h in DIR_COLUMNS[:4])], columns, names)
    )


def dir_sensitivity_markdown(records: Iterable[dict[str, Any]]) -> str:
    """Group-DIR's sensitivity to G, λ1 and λ2 (``"bench": "dir-sensitivity"`` records).

    One table per setting and recipe: a row per point of the one-factor-at-a-time sweep (the
    centre first), columns test MAE all / many / medium / few, ``mean ± std`` over distinct
    seeds, lowest in bold.

    Returns:
        Markdown text, or ``""`` without sensitivity records.
    """
    sweeps = sensitivity_sweeps(records)
    tables = list({id(s.table): s.table for s in sweeps}.values())
    varying = varying_keys(tables)
    return "\n\n".join(_sensitivity_part(s, varying, len(tables) > 1) for s in sweeps)
