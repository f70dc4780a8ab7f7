"""Reports from results records: the MM paper's tables in markdown, and per-class error plots.

A *results record* is the JSON file that every finished run writes (ARCHITECTURE.md, "Results
record")::

    {"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds",
     "config": {...}, "metrics": {...},
     "bench": "table1" | "mm-ablation" | "dir" | "dir-sensitivity" (optional)}

:func:`load_records` collects them from a folder; :func:`aggregate` turns them into mean ± std over
seeds; :func:`table1_markdown`, :func:`tail_markdown`, :func:`ablation_markdown` and
:func:`dir_markdown` (and :func:`dir_sensitivity_markdown`) lay them out;
:func:`plot_per_class_error`, :func:`plot_ablation`, :func:`plot_dir_error` and
:func:`plot_dir_sensitivity` draw them; :func:`write_report` does all of it for one folder.

Plots need matplotlib (the ``bench`` extra: ``pip install "longtail[bench]"``), imported only
when a plot is drawn, and drawn without pyplot, so no display or backend switch is needed.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from longtail._validation import expected

__all__ = [
    "METHOD_ORDER",
    "ablation_markdown",
    "aggregate",
    "dir_markdown",
    "dir_sensitivity_markdown",
    "load_records",
    "plot_ablation",
    "plot_dir_error",
    "plot_dir_sensitivity",
    "plot_per_class_error",
    "table1_markdown",
    "tail_markdown",
    "write_report",
]

#: Table 1 rows, in the paper's order (HG-DRS and SSP are not implemented), then two prior-aware
#: losses. Methods not listed here follow in sorted order.
METHOD_ORDER = (
    "erm",
    "focal",
    "ldam",
    "mm",
    "cb-rs",
    "cb-rw",
    "cb-focal",
    "erm-drw",
    "ldam-drw",
    "mm-drw",
    "mm-ldam-drw",
    "logit-adjusted",
    "balanced-softmax",
)

METHOD_NAMES = {
    "erm": "ERM",
    "focal": "Focal",
    "ldam": "LDAM",
    "mm": "MM",
    "cb-rs": "CB-RS",
    "cb-rw": "CB-RW",
    "cb-focal": "CB-Focal",
    "erm-drw": "ERM-DRW (M-DRW)",
    "ldam-drw": "LDAM-DRW",
    "mm-drw": "MM-DRW",
    "mm-ldam-drw": "MM-LDAM-DRW",
    "logit-adjusted": "Logit adjustment",
    "balanced-softmax": "Balanced softmax",
}

DATASET_NAMES = {
    "fashion-mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "cifar-10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "cifar-100": "CIFAR-100",
}

PROFILE_NAMES = {"exp": "long-tailed", "step": "step"}
_PROFILE_RANK = {"exp": 0, "step": 1}

METRIC_NAMES = {
    "top1_error": "Top-1 error (%)",
    "balanced_accuracy": "Balanced accuracy (%)",
    "many_acc": "Many-shot accuracy (%)",
    "medium_acc": "Medium-shot accuracy (%)",
    "few_acc": "Few-shot accuracy (%)",
    "ece": "ECE (%)",
}

# Training examples of the head class when a record does not say (METHODS.md §1).
_DEFAULT_N_MAX = {
    "fashion-mnist": 6000,
    "cifar10": 5000,
    "cifar-10": 5000,
    "cifar100": 500,
    "cifar-100": 500,
}

# Sub-folders of a results folder that hold run state, not finished results.
_SKIP_DIRS = frozenset({"work", "checkpoints"})

Setting = tuple[Any, Any, Any]  # (dataset, profile, ratio)
Key = tuple[Any, Any, Any, Any]  # (method, dataset, profile, ratio)


# ---- reading ----------------------------------------------------------------------------------
def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "method" in obj and "metrics" in obj


def load_records(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every results record under ``directory`` (searched recursively), in path order.

    A record is a JSON object with (at least) the keys ``"method"`` and ``"metrics"``. Other JSON
    files -- a saved ``config.json``, anything under a ``work/`` or ``checkpoints/`` sub-folder or
    a hidden one, hidden files (``.name.json``, the usual atomic-write temporaries) -- are ignored
    silently; ``*.tmp`` files are never read. A ``*.json`` file that cannot be read or parsed (a
    run killed mid-write) is skipped with a warning naming it, as is an object whose
    ``"metrics"`` is not an object.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (Path(d) / "run.json").write_text('{"method": "erm", "metrics": {}}')
        ...     _ = (Path(d) / "config.json").write_text('{"method": "erm"}')
        ...     [r["method"] for r in load_records(d)]
        ['erm']

    Args:
        directory: A folder of results (a bench's ``--out``).

    Returns:
        A list of record dicts (as parsed; not modified).

    Raises:
        FileNotFoundError: If ``directory`` is not a folder.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"Expected `directory` to be a folder of results, got {root}.")
    records = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]):
            continue
        if rel.name.startswith(".") or not path.is_file():
            continue
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            warnings.warn(f"Skipping {path}: not a readable JSON file ({err}).", stacklevel=2)
            continue
        if not _is_record(obj):
            continue
        if not isinstance(obj["metrics"], dict):
            warnings.warn(f"Skipping {path}: its 'metrics' is not a JSON object.", stacklevel=2)
            continue
        records.append(obj)
    return records


# ---- grouping and statistics ------------------------------------------------------------------
def _ratio(value: Any) -> Any:
    """100, 100.0 and "100" are one ratio (shown as 100); non-numbers are kept as they are."""
    try:
        r = float(value)
    except (TypeError, ValueError):
        return value
    return int(r) if r.is_integer() else r


def _setting(rec: dict[str, Any]) -> Setting:
    return (rec.get("dataset"), rec.get("profile"), _ratio(rec.get("ratio")))


def _key(rec: dict[str, Any]) -> Key:
    return (rec.get("method"), *_setting(rec))


def _setting_order(setting: Setting) -> tuple[Any, ...]:
    dataset, profile, ratio = setting
    r = ratio if isinstance(ratio, (int, float)) else math.inf
    return (str(dataset), _PROFILE_RANK.get(profile, 2), str(profile), -r, str(ratio))


def _method_order(methods: Iterable[Any]) -> list[Any]:
    known = [m for m in METHOD_ORDER if m in set(methods)]
    return known + sorted({m for m in methods if m not in METHOD_ORDER}, key=str)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _stats(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def _grouped(
    records: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], Any], metric: str
) -> dict[Any, dict[str, Any]]:
    values: dict[Any, list[float]] = defaultdict(list)
    for rec in records:
        v = _number(rec.get("metrics", {}).get(metric))
        if v is not None:
            values[key(rec)].append(v)
    return {k: _stats(v) for k, v in values.items()}


def aggregate(records: Iterable[dict[str, Any]], metric: str = "top1_error") -> dict[Key, Any]:
    """Mean, sample standard deviation and count of one metric per method and setting.

    Records are grouped by ``(method, dataset, profile, ratio)`` (one group per Table 1 cell; its
    members are normally the seeds). The standard deviation is the sample one (``ddof = 1``), 0 for
    a single value. Records without the metric, or with ``null``/NaN for it, are left out. Ratios
    100 and 100.0 are the same group (the key holds ``100``).

    Example:
        >>> recs = [
        ...     {"method": "erm", "dataset": "d", "profile": "exp", "ratio": 100.0, "seed": s,
        ...      "metrics": {"top1_error": e}}
        ...     for s, e in enumerate([10.0, 12.0])
        ... ]
        >>> aggregate(recs)
        {('erm', 'd', 'exp', 100): {'mean': 11.0, 'std': 1.4142135623730951, 'n': 2}}

    Args:
        records: Results records (:func:`load_records`).
        metric: A key of the records' ``"metrics"``.

    Returns:
        ``{(method, dataset, profile, ratio): {"mean": float, "std": float, "n": int}}``, ordered
        by setting and then by the Table 1 method order.
    """
    groups = _grouped(records, _key, metric)
    order = {m: i for i, m in enumerate(_method_order([k[0] for k in groups]))}
    return dict(sorted(groups.items(), key=lambda kv: (_setting_order(kv[0][1:]), order[kv[0][0]])))


# ---- kinds of records -------------------------------------------------------------------------
def _bench(rec: dict[str, Any]) -> Any:
    return rec.get("bench")


def _is_regression(rec: dict[str, Any]) -> bool:
    m = rec.get("metrics", {})
    return _bench(rec) in ("dir", "dir-sensitivity") or ("mae" in m and "top1_error" not in m)


def _is_dir_record(rec: dict[str, Any]) -> bool:
    """A record of the DIR table (the sensitivity sweep's Group-DIR runs have their own)."""
    return _is_regression(rec) and _bench(rec) != "dir-sensitivity"


def _is_sensitivity_record(rec: dict[str, Any]) -> bool:
    return _bench(rec) == "dir-sensitivity"


def _classification(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of Table 1 kind: everything but the MM ablation and regression."""
    return [r for r in records if _bench(r) != "mm-ablation" and not _is_regression(r)]


def _ablation(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if _bench(r) == "mm-ablation"]


# ---- markdown ---------------------------------------------------------------------------------
def _higher_is_better(metric: str) -> bool:
    return metric.endswith(("_acc", "accuracy")) or metric.startswith("pearson")


def _dataset_short(dataset: Any) -> str:
    """A dataset given as a file (``/data/faces.npz``) is shown by its stem (``faces``)."""
    text = str(dataset)
    return Path(text).stem if text.lower().endswith((".npz", ".csv")) else text


def _dataset_name(dataset: Any) -> str:
    return DATASET_NAMES.get(str(dataset).lower(), _dataset_short(dataset))


def _setting_title(setting: Setting) -> str:
    dataset, profile, ratio = setting
    return f"{_dataset_name(dataset)} {PROFILE_NAMES.get(profile, profile)} {ratio}"


def _slug(setting: Setting) -> str:
    dataset, profile, ratio = setting
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{_dataset_short(dataset)}_{profile}{ratio}")


def _cell(stats: dict[str, Any] | None, decimals: int = 2) -> str:
    if stats is None:
        return "—"
    if stats["n"] == 1:
        return f"{stats['mean']:.{decimals}f}"
    return f"{stats['mean']:.{decimals}f} ± {stats['std']:.{decimals}f}"


def _column(cells: Sequence[dict[str, Any] | None], higher: bool, decimals: int = 2) -> list[str]:
    """Cells of one column, the best (as displayed, so ties are all bold) in bold."""
    shown = [round(c["mean"], decimals) for c in cells if c is not None]
    best = (max(shown) if higher else min(shown)) if shown else None
    out = []
    for c in cells:
        text = _cell(c, decimals)
        out.append(f"**{text}**" if c is not None and round(c["mean"], decimals) == best else text)
    return out


def _table(header: Sequence[str], columns: Sequence[Sequence[str]], first: Sequence[str]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for i, name in enumerate(first):
        lines.append("| " + " | ".join([name, *(col[i] for col in columns)]) + " |")
    return "\n".join(lines)


def _seed_span(counts: Iterable[int]) -> str:
    """``"3 seeds"``, ``"1 seed"`` or ``"2–3 seeds"`` for the numbers of runs behind the cells."""
    ns = sorted(set(counts))
    if not ns:
        return "no seeds"
    if len(ns) == 1:
        return f"{ns[0]} seed" + ("" if ns[0] == 1 else "s")
    return f"{ns[0]}–{ns[-1]} seeds"


def _seeds_text(counts: Iterable[int]) -> str:
    counts = list(counts)
    if set(counts) == {1}:
        return "1 seed (no ± shown)"
    return f"mean ± sample std over {_seed_span(counts)}"


def _epochs_text(records: Iterable[dict[str, Any]]) -> str:
    epochs = sorted({r.get("epochs") for r in records if isinstance(r.get("epochs"), int)})
    if len(epochs) == 1:
        return f"at the last epoch (of {epochs[0]})"
    return "at the last epoch"


def _shots_text(records: Iterable[dict[str, Any]], unit: str) -> str:
    """The shot-group thresholds the records were evaluated with (config), default 100 / 20."""
    many, few = set(), set()
    for r in records:
        config = r.get("config") or {}
        many.add(config.get("many_threshold", 100))
        few.add(config.get("few_threshold", 20))
    m = many.pop() if len(many) == 1 else "many_threshold"
    f = few.pop() if len(few) == 1 else "few_threshold"
    return f"many: > {m} training examples{unit}, few: < {f}"


def _method_cell(method: Any) -> str:
    return METHOD_NAMES.get(method, str(method))


def table1_markdown(
    records: Iterable[dict[str, Any]], metric: str = "top1_error", *, tail_view: bool = True
) -> str:
    """Table 1 of the MM paper (Kang et al., ICIP 2021) from results records, in markdown.

    One row per method in the paper's order (:data:`METHOD_ORDER`; other methods after it,
    sorted); one column per setting that has data, grouped by dataset, then long-tailed (``exp``)
    before step, ratio 100 before 10. A cell is ``mean ± std`` over seeds (sample std), or the
    mean alone for one seed, with 2 decimals; ``—`` where a method has no run. The best value of
    each column (lowest error, highest accuracy) is bold. Numbers are those of the last epoch, not
    the best epoch over training that the paper's repositories report.

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
        records: Results records (:func:`load_records`).
        metric: The metric in the cells (``"top1_error"`` as in the paper).
        tail_view: Also add :func:`tail_markdown` (balanced, many, medium, few accuracy and ECE
            per setting) below the table.

    Returns:
        Markdown text (a caption line and the table), or ``""`` when no record has the metric.
    """
    records = _classification(records)
    agg = aggregate(records, metric)
    if not agg:
        return ""
    settings = sorted({k[1:] for k in agg}, key=_setting_order)
    methods = _method_order({k[0] for k in agg})
    higher = _higher_is_better(metric)
    columns = [_column([agg.get((m, *s)) for m in methods], higher) for s in settings]
    header = ["Method", *(_setting_title(s) for s in settings)]
    label = METRIC_NAMES.get(metric, metric)
    best = "highest" if higher else "lowest"
    caption = (
        f"**Table 1.** {label} {_epochs_text(records)} (not the best epoch over training), "
        f"{_seeds_text(s['n'] for s in agg.values())}; {best} per column in bold."
    )
    text = caption + "\n\n" + _table(header, columns, [_method_cell(m) for m in methods])
    if tail_view:
        tail = tail_markdown(records)
        if tail:
            text += "\n\n" + tail
    return text


#: Columns of the tail view: (metric, header).
TAIL_COLUMNS = (
    ("balanced_accuracy", "Balanced acc."),
    ("many_acc", "Many"),
    ("medium_acc", "Medium"),
    ("few_acc", "Few"),
    ("ece", "ECE"),
)


def tail_markdown(records: Iterable[dict[str, Any]]) -> str:
    """The tail view: balanced accuracy, many/medium/few-shot accuracy and ECE per setting.

    One small table per setting (dataset, profile, ratio): rows are methods (Table 1 order),
    columns balanced accuracy, many-shot (more than 100 training examples), medium-shot and
    few-shot (fewer than 20) accuracy, and ECE, all in percent, ``mean ± std`` over seeds; best per
    column in bold. A shot group with no class in the setting shows ``—``.

    Args:
        records: Results records; MM ablation and regression records are left out.

    Returns:
        Markdown text, or ``""`` when no record has any of these metrics.
    """
    records = _classification(records)
    aggs = {metric: aggregate(records, metric) for metric, _ in TAIL_COLUMNS}
    keys = {k for agg in aggs.values() for k in agg}
    if not keys:
        return ""
    parts = []
    for setting in sorted({k[1:] for k in keys}, key=_setting_order):
        methods = _method_order({k[0] for k in keys if k[1:] == setting})
        columns = [
            _column([aggs[metric].get((m, *setting)) for m in methods], _higher_is_better(metric))
            for metric, _ in TAIL_COLUMNS
        ]
        counts = [s["n"] for agg in aggs.values() for k, s in agg.items() if k[1:] == setting]
        shots = _shots_text([r for r in records if _setting(r) == setting], "")
        parts.append(
            f"**Tail view, {_setting_title(setting)}.** Accuracy (%) by class group "
            f"({shots}) and ECE (%), "
            f"{_seeds_text(counts)}; best per column in bold.\n\n"
            + _table(
                ["Method", *(h for _, h in TAIL_COLUMNS)],
                columns,
                [_method_cell(m) for m in methods],
            )
        )
    return "\n\n".join(parts)


def _ablation_params(rec: dict[str, Any]) -> tuple[float, float] | None:
    config = rec.get("config") or {}
    kwargs = config.get("loss_kwargs") or {}
    beta = _number(kwargs.get("beta", config.get("beta")))
    delta = _number(kwargs.get("delta_minus", config.get("delta_minus")))
    return None if beta is None or delta is None else (beta, delta)


AblationGrids = dict[tuple[Setting, Any], dict[tuple[float, float], dict[str, Any]]]


def _ablation_grids(records: Iterable[dict[str, Any]]) -> tuple[AblationGrids, int]:
    """``{(setting, method): {(β, δ⁻): stats of top1_error}}`` and the number of records left
    out for lacking β or δ⁻."""
    grids: dict[tuple[Setting, Any], list[dict[str, Any]]] = defaultdict(list)
    skipped = 0
    for rec in _ablation(records):
        if _ablation_params(rec) is None:
            skipped += 1
            continue
        grids[(_setting(rec), rec.get("method"))].append(rec)
    out = {}
    for key in sorted(grids, key=lambda k: (_setting_order(k[0]), str(k[1]))):
        cells = _grouped(grids[key], _ablation_params, "top1_error")
        if cells:
            out[key] = cells
    return out, skipped


def _ablation_title(setting: Setting, method: Any) -> str:
    return f"{_method_cell(method)}, {_setting_title(setting)}"


def ablation_markdown(records: Iterable[dict[str, Any]]) -> str:
    """The β × δ⁻ ablation of the MM loss (the paper's Tables 2 and 3) as markdown grids.

    Uses the records with ``"bench": "mm-ablation"``, whose ``config["loss_kwargs"]`` holds
    ``"beta"`` and ``"delta_minus"`` (``δ⁺ = β · δ⁻``). One grid per setting (and method): rows β,
    columns δ⁻, cells the mean top-1 error (%) over seeds, the lowest in bold, ``—`` where a pair
    was not run.

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
    grids, skipped = _ablation_grids(records)
    if skipped:
        warnings.warn(
            f"Left out {skipped} mm-ablation record(s) whose config['loss_kwargs'] lacks 'beta' "
            "or 'delta_minus'.",
            stacklevel=2,
        )
    parts = []
    for (setting, method), cells in grids.items():
        betas = sorted({b for b, _ in cells})
        deltas = sorted({d for _, d in cells})
        best = min(round(s["mean"], 2) for s in cells.values())
        columns = []
        for d in deltas:
            col = []
            for b in betas:
                s = cells.get((b, d))
                text = "—" if s is None else f"{s['mean']:.2f}"
                col.append(f"**{text}**" if s is not None and round(s["mean"], 2) == best else text)
            columns.append(col)
        parts.append(
            f"**MM ablation, {_ablation_title(setting, method)}.** Top-1 error (%), mean over "
            f"{_seed_span(s['n'] for s in cells.values())}; rows β, columns δ⁻ (δ⁺ = β·δ⁻); "
            "lowest in bold.\n\n"
            + _table(["β \\ δ⁻", *(f"{d:g}" for d in deltas)], columns, [f"{b:g}" for b in betas])
        )
    return "\n\n".join(parts)


# ---- DIR (regression) --------------------------------------------------------------------------
# Deep imbalanced regression records ("bench": "dir", or a lone `longtail train --task regression`
# run) carry mae, mse, gm, pearson and each again per shot region (mae_many, mae_medium, mae_few,
# ...), the last epoch's last_mae, last_mae_many, ..., and for the plots per-bin test errors
# (metrics["per_bin_mae"], with "bin_edges", "train_hist", "test_hist" at the top level).
# Records of the Group-DIR sensitivity sweep ("bench": "dir-sensitivity") have their own table
# and plot.
DIR_COLUMNS = tuple(
    (f"{m}{suffix}", f"{m.upper()} {region}")
    for m in ("mae", "gm")
    for suffix, region in (("", "all"), ("_many", "many"), ("_medium", "medium"), ("_few", "few"))
)
LAST_COLUMNS = tuple(
    (f"last_mae{suffix}", f"MAE {region}")
    for suffix, region in (("", "all"), ("_many", "many"), ("_medium", "medium"), ("_few", "few"))
)

#: DIR rows in the benchmark's order; other methods follow, sorted.
DIR_METHOD_ORDER = ("vanilla", "l1", "lds", "lds-fds", "bmc", "group-dir", "group-dir-lds")
DIR_METHOD_NAMES = {
    "vanilla": "Vanilla (MSE)",
    "l1": "L1",
    "lds": "LDS",
    "lds-fds": "LDS + FDS",
    "bmc": "Balanced MSE (BMC)",
    "group-dir": "Group-DIR",
    "group-dir-lds": "Group-DIR + LDS",
}


def _dir_method_order(methods: Iterable[Any]) -> list[Any]:
    methods = set(methods)
    known = [m for m in DIR_METHOD_ORDER if m in methods]
    return known + sorted(methods - set(DIR_METHOD_ORDER), key=str)


def _dir_method_cell(method: Any) -> str:
    return DIR_METHOD_NAMES.get(method, str(method))


def _dir_decimals(cells: Iterable[dict[str, Any] | None]) -> int:
    """Decimals for errors of this size: 2 below 10 (ages in years), 1 below 100, else 0 (US$)."""
    means = sorted(abs(c["mean"]) for c in cells if c is not None)
    if not means:
        return 2
    typical = means[len(means) // 2]
    return 2 if typical < 10 else 1 if typical < 100 else 0


def _dir_title(setting: Setting, records: Sequence[dict[str, Any]]) -> str:
    dataset, profile, ratio = setting
    if profile != "dir":
        return " ".join(str(x) for x in setting if x is not None)
    targets = sorted({str(r["target"]) for r in records if r.get("target")})
    name = f"{dataset} ({', '.join(targets)})" if targets else str(dataset)
    widths = sorted({r.get("bin_width") for r in records if r.get("bin_width")})
    bins = f" over {widths[0]:g}-wide bins" if len(widths) == 1 else ""
    return name + (f", training imbalance {ratio:g}:1{bins}" if ratio is not None else "")


def _selection_text(records: Sequence[dict[str, Any]]) -> str:
    if records and all(r.get("selection") == "best validation MAE" for r in records):
        epochs = _epochs_text(records).replace("at the last epoch", "").strip(" ()")
        span = f" ({epochs})" if epochs else ""
        return f"test metrics of the epoch with the best validation MAE{span}"
    return "test metrics"


def dir_markdown(records: Iterable[dict[str, Any]]) -> str:
    """Deep imbalanced regression results: MAE and GM overall and per shot region.

    Uses the records with ``"bench": "dir"`` (or, without a ``"bench"`` key, those whose metrics
    have ``mae`` and no ``top1_error``). One table per setting (dataset, and for the DIR engine's
    records the training imbalance): rows are methods (:data:`DIR_METHOD_ORDER`), columns MAE and
    GM (geometric mean of the absolute errors) for all, many-, medium- and few-shot label bins,
    ``mean ± std`` over seeds, lowest per column in bold. When the records also have the last
    epoch's errors (``last_mae``, ...), a second table shows those MAEs.

    Example:
        >>> rec = {"method": "vanilla", "bench": "dir", "dataset": "agedb", "seed": 0,
        ...        "metrics": {"mae": 7.77, "mae_few": 13.67, "gm": 5.05}}
        >>> print(dir_markdown([rec]).splitlines()[-1])
        | Vanilla (MSE) | **7.77** | — | — | **13.67** | **5.05** | — | — | — |

    Args:
        records: Results records; only the regression ones are used.

    Returns:
        Markdown text, or ``""`` when there is no regression record.
    """
    records = [r for r in records if _is_dir_record(r)]
    aggs = {metric: aggregate(records, metric) for metric, _ in (*DIR_COLUMNS, *LAST_COLUMNS)}
    keys = {k for metric, _ in DIR_COLUMNS for k in aggs[metric]}
    parts = []
    for setting in sorted({k[1:] for k in keys}, key=_setting_order):
        recs = [r for r in records if _setting(r) == setting]
        methods = _dir_method_order({k[0] for k in keys if k[1:] == setting})
        rows = [_dir_method_cell(m) for m in methods]
        dec = _dir_decimals(aggs["mae"].get((m, *setting)) for m in methods)
        columns = [
            _column([aggs[metric].get((m, *setting)) for m in methods], higher=False, decimals=dec)
            for metric, _ in DIR_COLUMNS
        ]
        counts = [
            s["n"] for metric, _ in DIR_COLUMNS for k, s in aggs[metric].items() if k[1:] == setting
        ]
        shots = _shots_text(recs, " per bin")
        parts.append(
            f"**Deep imbalanced regression, {_dir_title(setting, recs)}.** MAE and GM by label "
            f"region ({shots}), {_selection_text(recs)}, {_seeds_text(counts)}; lowest in bold."
            "\n\n" + _table(["Method", *(h for _, h in DIR_COLUMNS)], columns, rows)
        )
        if any(aggs[metric].get((m, *setting)) for metric, _ in LAST_COLUMNS for m in methods):
            last = [
                _column([aggs[metric].get((m, *setting)) for m in methods], False, dec)
                for metric, _ in LAST_COLUMNS
            ]
            parts.append(
                "The same runs, test MAE of the last epoch's weights:\n\n"
                + _table(["Method", *(h for _, h in LAST_COLUMNS)], last, rows)
            )
    return "\n\n".join(parts)


def _sensitivity_params(rec: dict[str, Any]) -> tuple[int, float, float] | None:
    config = rec.get("config") or {}
    try:
        return (
            int(config["num_groups"]),
            float(config["lambda1"]),
            float(config["lambda2"]),
        )
    except (KeyError, TypeError, ValueError):
        warnings.warn(
            f"Skipping a dir-sensitivity record of {rec.get('method')!r} (seed "
            f"{rec.get('seed')}): its config has no num_groups / lambda1 / lambda2.",
            stacklevel=3,
        )
        return None


def _mode(values: Sequence[Any]) -> Any:
    counts: dict[Any, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    return max(counts, key=counts.__getitem__)  # ties: the value seen first


SENSITIVITY_FACTORS = (("num_groups", "G"), ("lambda1", "λ1"), ("lambda2", "λ2"))


def _sensitivity_sweeps(
    records: Iterable[dict[str, Any]],
) -> dict[Setting, tuple[tuple[int, float, float], dict[str, dict[Any, list[dict[str, Any]]]]]]:
    """Per setting: the centre (G, λ1, λ2) and, per factor, its values → records (others at
    the centre). The centre is the most common value of each factor (one-factor-at-a-time)."""
    by_setting: dict[Setting, list[tuple[tuple[int, float, float], dict[str, Any]]]] = defaultdict(
        list
    )
    for rec in records:
        if _is_sensitivity_record(rec):
            params = _sensitivity_params(rec)
            if params is not None:
                by_setting[_setting(rec)].append((params, rec))
    out = {}
    for setting in sorted(by_setting, key=_setting_order):
        pairs = by_setting[setting]
        centre = tuple(_mode([p[i] for p, _ in pairs]) for i in range(3))
        sweeps: dict[str, dict[Any, list[dict[str, Any]]]] = {}
        for i, (factor, _) in enumerate(SENSITIVITY_FACTORS):
            values: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for p, rec in pairs:
                if all(p[j] == centre[j] for j in range(3) if j != i):
                    values[p[i]].append(rec)
            sweeps[factor] = dict(sorted(values.items()))
        out[setting] = (centre, sweeps)
    return out


def dir_sensitivity_markdown(records: Iterable[dict[str, Any]]) -> str:
    """Group-DIR's sensitivity to G, λ1 and λ2 (``"bench": "dir-sensitivity"`` records).

    One table per setting: a row per point of the one-factor-at-a-time sweep (the centre first),
    columns test MAE all / many / medium / few, ``mean ± std`` over seeds, lowest in bold.

    Returns:
        Markdown text, or ``""`` without sensitivity records.
    """
    parts = []
    for setting, (centre, sweeps) in _sensitivity_sweeps(records).items():
        points: dict[tuple[int, float, float], list[dict[str, Any]]] = {}
        for i, (factor, _) in enumerate(SENSITIVITY_FACTORS):
            for value, recs in sweeps[factor].items():
                point = tuple(value if j == i else centre[j] for j in range(3))
                points.setdefault(point, recs)
        order = [centre, *(p for p in points if p != centre)]
        order = [p for p in order if p in points]
        metrics = [m for m, _ in DIR_COLUMNS[:4]]
        columns = []
        for metric in metrics:
            cells = []
            for p in order:
                vals = [_number(r["metrics"].get(metric)) for r in points[p]]
                vals = [v for v in vals if v is not None]
                cells.append(_stats(vals) if vals else None)
            columns.append(cells)
        dec = _dir_decimals(c for col in columns for c in col)
        columns = [_column(col, higher=False, decimals=dec) for col in columns]
        names = [
            f"G={g}, λ1={a:g}, λ2={b:g}" + (" (centre)" if (g, a, b) == centre else "")
            for g, a, b in order
        ]
        recs = [r for p in order for r in points[p]]
        counts = [len(points[p]) for p in order]
        method = ", ".join(sorted({_dir_method_cell(r["method"]) for r in recs}))
        parts.append(
            f"**{method} sensitivity, {_dir_title(setting, recs)}.** One factor at a time around "
            f"the centre; test MAE by label region, {_selection_text(recs)}, "
            f"{_seeds_text(counts)}; lowest in bold.\n\n"
            + _table(["Setting", *(h for _, h in DIR_COLUMNS[:4])], columns, names)
        )
    return "\n\n".join(parts)


# ---- plots ------------------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            'Plots need matplotlib: pip install "longtail[bench]" (or matplotlib).'
        ) from err
    return Figure(figsize=(width, height), layout="constrained")


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through ``write(tmp)`` into a temporary file beside ``path``, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    return _replace_atomically(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _pick_setting(available: Sequence[Setting], setting: Any, what: str) -> Setting:
    if not available:
        raise ValueError(f"Expected records with {what}, but got none.")
    if setting is None:
        return available[0]
    if isinstance(setting, (tuple, list)) and len(setting) == 3:
        setting = (setting[0], setting[1], _ratio(setting[2]))
    for s in available:
        if setting in (s, _slug(s)):
            return s
    raise expected(
        "setting",
        f"one of {[_slug(s) for s in available]} (or a (dataset, profile, ratio) tuple)",
        repr(setting),
    )


def _train_counts(records: Sequence[dict[str, Any]], num_classes: int) -> list[float] | None:
    """Training examples per class of a setting: from the records, else from its profile."""
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
    config = rec.get("config") or {}
    n_max = config.get("n_max") or _DEFAULT_N_MAX.get(str(rec.get("dataset")).lower())
    if not n_max or rec.get("profile") not in ("exp", "step"):
        return None
    try:
        from longtail.data.profiles import imbalance_counts

        return [
            float(c) for c in imbalance_counts(n_max, num_classes, rec["ratio"], rec["profile"])
        ]
    except (ValueError, TypeError):
        return None


def _per_class_settings(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    groups: dict[Setting, list[dict[str, Any]]] = defaultdict(list)
    for rec in _classification(records):
        if isinstance(rec["metrics"].get("per_class_error"), list):
            groups[_setting(rec)].append(rec)
    return {s: groups[s] for s in sorted(groups, key=_setting_order)}


def _mean_per_class(records: Sequence[dict[str, Any]], num_classes: int) -> list[float]:
    out = []
    for c in range(num_classes):
        vals = [_number(r["metrics"]["per_class_error"][c]) for r in records]
        vals = [v for v in vals if v is not None]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return out


def plot_per_class_error(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Per-class test error of every method, classes sorted by training count (the paper's Fig. 3).

    The upper panel has one line with markers per method (mean over seeds), classes on the x axis
    from the most to the least frequent in training; the lower panel draws the training counts as
    bars (log scale). The counts come from the records (``"class_counts"``, as the engine writes
    them, or ``"train_counts"`` at the top level or in
    ``"config"``), else from the profile (``config["n_max"]``, or the dataset's usual head-class
    size: Fashion-MNIST 6000, CIFAR-10 5000, CIFAR-100 500); without either, classes stay in index
    order (the head first, as the profiles build them) and the lower panel is left out.

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
    groups = _per_class_settings(records)
    chosen = _pick_setting(list(groups), setting, "metrics['per_class_error']")
    recs = groups[chosen]
    num_classes = max(len(r["metrics"]["per_class_error"]) for r in recs)
    recs = [r for r in recs if len(r["metrics"]["per_class_error"]) == num_classes]
    counts = _train_counts(recs, num_classes)
    order = list(range(num_classes))
    if counts is not None:
        order.sort(key=lambda c: -counts[c])

    fig = _figure(max(7.0, min(16.0, 0.25 * num_classes + 5)), 5.5 if counts else 4.2)
    if counts is not None:
        ax, ax_counts = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        ax, ax_counts = fig.subplots(1, 1), None
    x = list(range(num_classes))
    by_method: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by_method[r["method"]].append(r)
    markers = "osD^vP*Xhp<>8"
    seeds = sorted({len(v) for v in by_method.values()})
    for i, method in enumerate(_method_order(by_method)):
        err = _mean_per_class(by_method[method], num_classes)
        ax.plot(
            x,
            [err[c] for c in order],
            marker=markers[i % len(markers)],
            markersize=4,
            linewidth=1.2,
            label=_method_cell(method),
            color=f"C{i % 10}",
            linestyle="-" if i < 10 else "--",
        )
    ax.set_title(f"Per-class top-1 error, {_setting_title(chosen)} (mean over {_seed_span(seeds)})")
    ax.set_ylabel("test error (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(by_method) > 6 else 1, loc="best")
    step = max(1, num_classes // 25)
    ticks = x[::step]
    labels = [str(order[t]) for t in ticks]
    xlabel = (
        "class (sorted by training count, most frequent first)"
        if counts is not None
        else "class index (training counts unknown; head classes first)"
    )
    if ax_counts is not None:
        ax_counts.bar(x, [counts[c] for c in order], color="0.6")
        ax_counts.set_yscale("log")
        ax_counts.set_ylabel("train count")
        ax_counts.grid(True, axis="y", alpha=0.3)
        ax_counts.set_xticks(ticks, labels)
        ax_counts.set_xlabel(xlabel)
    else:
        ax.set_xticks(ticks, labels)
        ax.set_xlabel(xlabel)
    return _save(fig, path)


def plot_ablation(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Heat map of the MM ablation's β × δ⁻ grid of mean top-1 error, values in the cells.

    One panel per method that has ablation records in the setting (normally just one).

    Args:
        records: Results records; those with ``"bench": "mm-ablation"`` are used
            (see :func:`ablation_markdown`).
        path: The PNG file to write (atomically).
        setting: ``(dataset, profile, ratio)`` or ``"cifar10_exp100"``; default the first
            setting with ablation records.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If there is no ablation record (in ``setting``).
        ImportError: If matplotlib is missing.
    """
    grids, _ = _ablation_grids(records)
    settings = sorted({s for s, _ in grids}, key=_setting_order)
    chosen = _pick_setting(settings, setting, "'bench': 'mm-ablation'")
    panels = [(m, cells) for (s, m), cells in grids.items() if s == chosen]
    sizes = [(len({b for b, _ in c}), len({d for _, d in c})) for _, c in panels]
    width = sum(max(3.5, 0.9 * nd + 2.0) for _, nd in sizes)
    height = max(3.0, 0.6 * max(nb for nb, _ in sizes) + 1.8)
    fig = _figure(width, height)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (method, cells) in zip(axes, panels, strict=True):
        betas = sorted({b for b, _ in cells})
        deltas = sorted({d for _, d in cells})
        grid = [
            [cells[(b, d)]["mean"] if (b, d) in cells else math.nan for d in deltas] for b in betas
        ]
        finite = [v for row in grid for v in row if not math.isnan(v)]
        low, high = min(finite), max(finite)
        image = ax.imshow(grid, cmap="viridis_r", aspect="auto", vmin=low, vmax=high)
        for i, row in enumerate(grid):
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
        ax.set_title(f"{_method_cell(method)}: top-1 error (%)", fontsize="medium")
        fig.colorbar(image, ax=ax, label="top-1 error (%)")
    fig.suptitle(f"MM ablation, {_setting_title(chosen)}")
    return _save(fig, path)


def _per_bin_settings(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    groups: dict[Setting, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if not _is_dir_record(rec):
            continue
        per_bin, edges = rec["metrics"].get("per_bin_mae"), rec.get("bin_edges")
        if isinstance(per_bin, list) and isinstance(edges, list) and len(edges) == len(per_bin) + 1:
            groups[_setting(rec)].append(rec)
    return {s: groups[s] for s in sorted(groups, key=_setting_order)}


def _coarse_errors(rec: dict[str, Any], k: int) -> list[float]:
    """Per-bin MAE merged over runs of ``k`` bins, weighted by the test samples of each bin."""
    per_bin = rec["metrics"]["per_bin_mae"]
    counts = rec.get("test_hist") or [1 if v is not None else 0 for v in per_bin]
    out = []
    for j in range(0, len(per_bin), k):
        pairs = [
            (v, c)
            for v, c in zip(per_bin[j : j + k], counts[j : j + k], strict=True)
            if _number(v) is not None and c
        ]
        n = sum(c for _, c in pairs)
        out.append(sum(v * c for v, c in pairs) / n if n else math.nan)
    return out


def plot_dir_error(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
    max_points: int = 40,
) -> Path:
    """Test MAE against the target value for each DIR method, the training histogram beneath.

    The upper panel has one line per method: the test MAE of each label bin (the record's
    ``metrics["per_bin_mae"]`` over ``"bin_edges"``), mean over seeds; neighbouring bins are
    merged (weighted by their test samples, ``"test_hist"``) so that at most ``max_points``
    points are drawn. The lower panel, on the same x axis, draws the training label histogram
    (``"train_hist"``, log scale), each bin coloured by its shot region.

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
    groups = _per_bin_settings(records)
    chosen = _pick_setting(list(groups), setting, "metrics['per_bin_mae'] and bin_edges")
    recs = groups[chosen]
    edges = recs[0]["bin_edges"]
    recs = [r for r in recs if r["bin_edges"] == edges]
    nb = len(edges) - 1
    k = max(1, math.ceil(nb / max_points))
    starts = list(range(0, nb, k))
    centres = [(edges[j] + edges[min(j + k, nb)]) / 2 for j in starts]
    by_method: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by_method[r["method"]].append(r)

    fig = _figure(9.0, 6.0)
    ax, ax_hist = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
    markers = "osD^vP*Xhp<>8"
    seeds = sorted({len(v) for v in by_method.values()})
    for i, method in enumerate(_dir_method_order(by_method)):
        curves = [_coarse_errors(r, k) for r in by_method[method]]
        mean = []
        for j in range(len(starts)):
            vals = [c[j] for c in curves if not math.isnan(c[j])]
            mean.append(sum(vals) / len(vals) if vals else math.nan)
        ax.plot(
            centres,
            mean,
            marker=markers[i % len(markers)],
            markersize=3.5,
            linewidth=1.3,
            label=_dir_method_cell(method),
            color=f"C{i % 10}",
            linestyle="-" if i < 10 else "--",
        )
    target = recs[0].get("target") or "target"
    ax.set_title(
        f"Test MAE per {target} bin, {_dir_title(chosen, recs)}\n"
        f"(mean over {_seed_span(seeds)}; {k} bin{'s' if k > 1 else ''} of "
        f"{edges[1] - edges[0]:g} per point)",
        fontsize="medium",
    )
    ax.set_ylabel(f"test MAE ({target} units)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2, loc="upper left")
    hist = recs[0].get("train_hist")
    if isinstance(hist, list) and len(hist) == nb:
        config = recs[0].get("config") or {}
        many, few = config.get("many_threshold", 100), config.get("few_threshold", 20)
        colours = {"many": "0.35", "medium": "C0", "few": "C3"}
        region = ["many" if c > many else "few" if c < few else "medium" for c in hist]
        lefts, widths = edges[:-1], [b - a for a, b in itertools.pairwise(edges)]
        for name in ("many", "medium", "few"):
            idx = [j for j in range(nb) if region[j] == name]
            if idx:
                ax_hist.bar(
                    [lefts[j] for j in idx],
                    [max(hist[j], 0.8) for j in idx],
                    width=[widths[j] for j in idx],
                    align="edge",
                    color=colours[name],
                    label=f"{name} (> {many})"
                    if name == "many"
                    else f"{name} (< {few})"
                    if name == "few"
                    else name,
                )
        ax_hist.set_yscale("log")
        ax_hist.set_ylabel("train count")
        ax_hist.legend(fontsize="x-small", loc="upper right", ncol=3)
        ax_hist.grid(True, axis="y", alpha=0.3)
    ax_hist.set_xlabel(f"{target} (label bins of the training set)")
    return _save(fig, path)


def plot_dir_sensitivity(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    setting: Setting | str | None = None,
) -> Path:
    """Group-DIR's sensitivity to G, λ1 and λ2: three panels of test MAE (all and few-shot).

    Each panel varies one factor with the other two at the sweep's centre (see
    :func:`dir_sensitivity_markdown`); points are means over seeds with ± std bars, and the
    centre is marked by a dotted line.

    Raises:
        ValueError: If there is no ``"bench": "dir-sensitivity"`` record (in ``setting``).
        ImportError: If matplotlib is missing.
    """
    sweeps = _sensitivity_sweeps(records)
    chosen = _pick_setting(list(sweeps), setting, "'bench': 'dir-sensitivity'")
    centre, factors = sweeps[chosen]
    fig = _figure(10.5, 3.6)
    axes = fig.subplots(1, 3, sharey=True)
    lines = (("mae", "all", "C0", "o"), ("mae_few", "few-shot", "C3", "s"))
    for i, (ax, (factor, label)) in enumerate(zip(axes, SENSITIVITY_FACTORS, strict=True)):
        values = list(factors[factor])
        x = list(range(len(values)))
        for metric, name, colour, marker in lines:
            means, stds = [], []
            for v in values:
                vals = [_number(r["metrics"].get(metric)) for r in factors[factor][v]]
                vals = [u for u in vals if u is not None]
                st = _stats(vals) if vals else None
                means.append(st["mean"] if st else math.nan)
                stds.append(st["std"] if st else 0.0)
            ax.errorbar(
                x, means, yerr=stds, marker=marker, color=colour, capsize=3, label=f"MAE {name}"
            )
        if centre[i] in values:
            ax.axvline(values.index(centre[i]), color="0.5", linestyle=":", linewidth=1)
        ax.set_xticks(x, [f"{v:g}" for v in values])
        ax.set_xlabel(label)
        others = ", ".join(
            f"{lab}={centre[j]:g}" for j, (_, lab) in enumerate(SENSITIVITY_FACTORS) if j != i
        )
        ax.set_title(f"{label} ({others})", fontsize="medium")
        ax.grid(True, alpha=0.3)
    recs = [r for f in factors.values() for v in f.values() for r in v]
    target = recs[0].get("target") if recs else None
    axes[0].set_ylabel(f"test MAE ({target} units)" if target else "test MAE")
    axes[0].legend(fontsize="small")
    fig.suptitle(f"Group-DIR sensitivity, {_dir_title(chosen, recs)}", fontsize="medium")
    return _save(fig, path)


# ---- the report -------------------------------------------------------------------------------
def write_report(
    directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write ``report.md`` (every table, with image links) and its PNG plots for a results folder.

    Files written into ``out`` (default ``directory``), each atomically (a temporary file, then
    ``os.replace``):

    * ``per_class_error_<dataset>_<profile><ratio>.png`` for each setting with per-class errors;
    * ``mm_ablation_<dataset>_<profile><ratio>.png`` for each setting with MM ablation records;
    * ``dir_error_<dataset>_dir<ratio>.png`` (:func:`plot_dir_error`) for each DIR setting with
      per-bin errors, ``dir_sensitivity_<...>.png`` (:func:`plot_dir_sensitivity`) for each
      Group-DIR sensitivity sweep;
    * ``report.md``: Table 1 (top-1 error), the tail view, the per-class plots, the ablation
      grids and plots, and the DIR tables and plots when there are regression records.

    Without matplotlib the tables are still written, with a warning and no plots.

    Args:
        directory: A folder of results records (searched recursively, see :func:`load_records`).
        out: Where to write; created if needed.

    Returns:
        The paths written, the PNGs first and ``report.md`` last.

    Raises:
        FileNotFoundError: If ``directory`` is not a folder.
        ValueError: If it holds no results record.
    """
    directory = Path(directory)
    records = load_records(directory)
    if not records:
        raise expected(
            "directory",
            'a folder holding results records (JSON objects with "method" and "metrics")',
            f"none in {directory}",
        )
    out_dir = Path(out) if out is not None else directory
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plots = importlib.util.find_spec("matplotlib") is not None
    if not plots:
        warnings.warn(
            'The report has no plots: they need matplotlib (pip install "longtail[bench]").',
            stacklevel=2,
        )

    def plot(fn: Callable[..., Path], name: str, setting: Setting) -> str:
        written.append(fn(records, out_dir / name, setting))
        return f"![{name}]({name})"

    methods = sorted({str(r["method"]) for r in records})
    sections = [
        "# Results report",
        f"{len(records)} runs from `{directory}`; methods: {', '.join(methods)}.",
    ]
    table1 = table1_markdown(records, "top1_error")
    if table1:
        sections += ["## Table 1: top-1 error", table1]
    per_class = _per_class_settings(records)
    if per_class and plots:
        sections.append("## Per-class error")
        for setting in per_class:
            link = plot(plot_per_class_error, f"per_class_error_{_slug(setting)}.png", setting)
            sections.append(f"**{_setting_title(setting)}**\n\n{link}")
    ablation = ablation_markdown(records)
    if ablation:
        sections += ["## MM ablation: β × δ⁻", ablation]
        grids, _ = _ablation_grids(records)
        for setting in sorted({s for s, _ in grids}, key=_setting_order) if plots else []:
            sections.append(plot(plot_ablation, f"mm_ablation_{_slug(setting)}.png", setting))
    regression = dir_markdown(records)
    if regression:
        sections += ["## Deep imbalanced regression", regression]
        for setting in _per_bin_settings(records) if plots else []:
            sections.append(plot(plot_dir_error, f"dir_error_{_slug(setting)}.png", setting))
    sensitivity = dir_sensitivity_markdown(records)
    if sensitivity:
        sections += ["## Group-DIR sensitivity: G, λ1, λ2", sensitivity]
        for setting in _sensitivity_sweeps(records) if plots else []:
            name = f"dir_sensitivity_{_slug(setting)}.png"
            sections.append(plot(plot_dir_sensitivity, name, setting))
    text = "\n\n".join(sections) + "\n"
    report = out_dir / "report.md"
    written.append(_replace_atomically(report, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    return written
