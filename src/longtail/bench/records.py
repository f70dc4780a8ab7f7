"""Results records: reading them, telling runs apart, and grouping them into tables.

A *results record* is the JSON object that every finished run writes::

    {"method", "dataset", "profile", "ratio", "seed", "epochs", "seconds",
     "config": {...}, "metrics": {...}, "identity": {...}, "data": {"fingerprint": ...},
     "bench": "table1" | "mm-ablation" | "dir" | "dir-sensitivity" | "multilabel" (optional)}

Its *identity* is everything that determines the run: the resolved config less bookkeeping (how
the run executed, not what it computed: :data:`BOOKKEEPING_KEYS`) plus ``"data"``, the
fingerprint of the data trained and tested on. Records written before the engines recorded an
identity have none; theirs is derived from ``"config"`` less the same bookkeeping keys, without a
data fingerprint, and such *legacy* records are never grouped with fingerprinted ones.

Two records are the same run when their identities are equal, seed included (counted once:
:func:`distinct_runs`), and seeds of one configuration when they are equal but for the seed.
:func:`group_tables` splits the records of one kind of table by *recipe* (the identity less
setting, method and seed: epochs, n_max, preset, model, ...), so that runs of different recipes
are never averaged together; within a recipe, rows are methods (with their loss settings) and
columns settings.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longtail._validation import expected
from longtail.engine.config import METHODS
from longtail.engine.multilabel import MULTILABEL_METHODS
from longtail.engine.regression import REGRESSION_METHODS
from longtail.engine.run import (
    BOOKKEEPING,
    config_identity,
    loss_defaults,
    without_default_loss_kwargs,
)

__all__ = [
    "BOOKKEEPING_KEYS",
    "METHOD_ORDER",
    "Column",
    "Disagreement",
    "Row",
    "Table",
    "aggregate",
    "content_key",
    "disagreements",
    "distinct_runs",
    "group_tables",
    "has_fingerprint",
    "identity",
    "load_records",
    "read_records",
    "without_default_loss_kwargs",
]

#: Table 1 rows in the method registry's order (:data:`longtail.engine.config.METHODS`).
METHOD_ORDER = tuple(METHODS)

#: Config keys that say how a run executed, not what it computed (paths, threads, batch size of
#: evaluation, torch.compile, which changes rounding only). The engines leave them out of a
#: record's identity; a legacy record's identity is its config without them.
# the engines' own rule for what is bookkeeping, so that a legacy record's derived identity is
# the one the engine would give its config today
BOOKKEEPING_KEYS = BOOKKEEPING

# Identity keys that place a run in a column of a table (its data), and those that make a row
# (the method and everything that configures its loss); everything else is the recipe.
SETTING_KEYS = ("dataset", "profile", "ratio", "data")
METHOD_KEYS = frozenset(
    {"method", "loss", "loss_kwargs", "normed", "reweight", "resample", "lds", "fds", "sampler"}
    | {"num_groups", "lambda1", "lambda2", "group_beta", "temperature", "routing", "group_edges"}
)
METHOD_PREFIXES = ("lds_", "fds_", "bmc_")

# Record fields that fill an identity that lacks them (hand-made records have no config).
_TOP_LEVEL = ("method", "dataset", "profile", "ratio", "seed", "epochs")

# Sub-folders of a results folder that hold run state, not finished results.
_SKIP_DIRS = frozenset({"work", "checkpoints"})

Setting = tuple[Any, Any, Any]  # (dataset, profile, ratio)
Key = tuple[Any, Any, Any, Any]  # (method, dataset, profile, ratio)


# ---- reading ----------------------------------------------------------------------------------
def _is_record(obj: Any) -> bool:
    return isinstance(obj, dict) and "method" in obj and "metrics" in obj


def _record_paths(root: Path) -> Iterable[Path]:
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if any(p in _SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]):
            continue
        if not rel.name.startswith(".") and path.is_file():
            yield path


def read_records(
    directory: str | os.PathLike[str], skipped: list[tuple[Path, str]] | None = None
) -> list[tuple[Path, dict[str, Any]]]:
    """Every results record under ``directory`` with its path, in path order.

    See :func:`load_records`, which returns the records alone. The ``*.json`` files skipped
    with a warning are appended to ``skipped``, if given, as ``(path, why)``.

    Raises:
        FileNotFoundError: If ``directory`` is not a folder.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"Expected `directory` to be a folder of results, got {root}.")
    found = []
    for path in _record_paths(root):
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            why = f"not a readable JSON file ({err})"
        else:
            if not _is_record(obj):
                if not _record_without_metrics(obj):
                    continue  # a config.json, a report's claims file: not a record
                why = "a results record without 'metrics'"
            elif not isinstance(obj["metrics"], dict):
                why = "its 'metrics' is not a JSON object"
            else:
                why = _headline_problem(obj["metrics"]) or _method_problem(obj)
                if why is None:
                    found.append((path, obj))
                    continue
        warnings.warn(f"Skipping {path}: {why}.", stacklevel=3)
        if skipped is not None:
            skipped.append((path, why))
    return found


def _record_without_metrics(obj: Any) -> bool:
    """A record (the fields only a finished run's record has) that lost its ``"metrics"``."""
    return isinstance(obj, dict) and "method" in obj and ("identity" in obj or "seconds" in obj)


def _method_problem(obj: dict[str, Any]) -> str | None:
    """A record whose ``"method"`` is not its config's: one of them was edited, and the
    header would name one method while the table shows the other."""
    config = obj.get("config")
    if isinstance(config, dict) and "method" in config and config["method"] != obj["method"]:
        return f"its method {obj['method']!r} is not its config's {config['method']!r}"
    return None


#: The metric every record of a task has: Table 1's, DIR's and the multi-label benchmark's.
HEADLINE_METRICS = ("top1_error", "mae", "map")


def _headline_problem(metrics: dict[str, Any]) -> str | None:
    """Why a record's metrics cannot enter a table (``None`` when they can): its task's
    headline metric (:data:`HEADLINE_METRICS`) is missing, or is not a finite number (a
    string, ``null``, NaN). Without it the record would drop out of every table unseen."""
    given = [k for k in HEADLINE_METRICS if k in metrics]
    if not given:
        return f"its metrics have none of {', '.join(HEADLINE_METRICS)}"
    for k in given:
        v = metrics[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"its {k!r} is not a finite number ({json.dumps(v)})"
    return None


def load_records(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every results record under ``directory`` (searched recursively), in path order.

    A record is a JSON object with (at least) the keys ``"method"`` and ``"metrics"``. Other JSON
    files -- a saved ``config.json``, anything under a ``work/`` or ``checkpoints/`` sub-folder or
    a hidden one, hidden files (``.name.json``, the usual atomic-write temporaries) -- are ignored
    silently; ``*.tmp`` files are never read. A ``*.json`` file that cannot be read or parsed (a
    run killed mid-write) is skipped with a warning naming it, as is an object whose
    ``"metrics"`` is not an object or lacks its task's headline metric (``top1_error``, ``mae``
    or ``map``) as a finite number. Copies of one run are all returned; the tables count them
    once (:func:`distinct_runs`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rec = '{"method": "erm", "metrics": {"top1_error": 20}}'
        ...     _ = (Path(d) / "run.json").write_text(rec)
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
    return [rec for _, rec in read_records(directory)]


# ---- identity ---------------------------------------------------------------------------------
def _ratio(value: Any) -> Any:
    """100, 100.0 and "100" are one ratio (shown as 100); non-numbers are kept as they are."""
    try:
        r = float(value)
    except (TypeError, ValueError):
        return value
    return int(r) if r.is_integer() else r


def _fingerprint(rec: dict[str, Any]) -> Any:
    data = rec.get("data")
    return data.get("fingerprint") if isinstance(data, dict) else None


def identity(rec: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines the run of ``rec``, seed included (a new dict).

    The record's ``"identity"`` when it has one; else its ``"config"`` less
    :data:`BOOKKEEPING_KEYS` (with the data fingerprint of ``rec["data"]``, if any). Keys the
    config lacks are filled from the record's own fields (method, dataset, profile, ratio, seed,
    epochs), and the ratio is normalised (100 and 100.0 are one ratio).

    Example:
        >>> rec = {"method": "erm", "seed": 1, "config": {"epochs": 8, "threads": 2}}
        >>> identity(rec)
        {'epochs': 8, 'method': 'erm', 'seed': 1}
    """
    given = rec.get("identity")
    if isinstance(given, dict):
        ident = dict(given)
    else:
        config = rec.get("config")
        config = config if isinstance(config, dict) else {}
        ident = config_identity(config)
        if _fingerprint(rec) is not None:
            ident["data"] = _fingerprint(rec)
    for key in _TOP_LEVEL:
        if key not in ident and key in rec:
            ident[key] = rec[key]
    if "ratio" in ident:
        ident["ratio"] = _ratio(ident["ratio"])
    return without_default_loss_kwargs(ident)


def has_fingerprint(rec: dict[str, Any]) -> bool:
    """Whether ``rec``'s identity names the data it was trained on (records before that don't)."""
    return identity(rec).get("data") is not None


def freeze(value: Any) -> Any:
    """A hashable, order-independent form of a JSON value (equal values freeze equal)."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("[]", *(freeze(v) for v in value))
    if isinstance(value, float) and math.isnan(value):
        return "NaN"  # NaN != NaN would make every copy of a NaN metric look different
    return value


def thaw(value: Any) -> Any:
    """The JSON value that :func:`freeze` made ``value`` from."""
    if not isinstance(value, tuple):
        return value
    if value[:1] == ("[]",):
        return [thaw(v) for v in value[1:]]
    return {k: thaw(v) for k, v in value}


def _run_key(rec: dict[str, Any]) -> Any:
    # a run used by two benches (the Table 1 MM-DRW and the ablation's default point) is one run
    # in each of their tables, so the bench is part of what makes a copy a copy; a lone `train`
    # record (no bench) is a copy of the bench run of its identity whose table it joins
    return (_table_bench(rec), freeze(identity(rec)))


def _table_bench(rec: dict[str, Any]) -> Any:
    """The bench whose tables a record joins: its own, or, for a `longtail train` record (no
    ``"bench"``), the one whose runs it sits beside: DIR, multi-label or Table 1."""
    bench = rec.get("bench")
    if bench is not None:
        return bench
    return "dir" if is_regression(rec) else "multilabel" if is_multilabel(rec) else "table1"


def content_key(rec: dict[str, Any]) -> str:
    """The record as JSON with sorted keys: the order in which copies of one run are chosen.

    It depends on what the record says alone, not on the folder it was read from, so the same
    records give the same tables wherever they are copied to and whatever their folders are
    called.
    """
    return json.dumps(rec, sort_keys=True, default=str)


@dataclass(frozen=True)
class Disagreement:
    """Copies of one run (equal identities and bench) whose metrics differ.

    The same run on another CPU model or thread count follows another floating-point path, and
    training amplifies the rounding (copies can differ as much as two seeds do); which copy a
    table uses is then a choice the report must state. ``copies`` holds ``(source, record)``
    pairs, the copy that the tables use (:func:`content_key` first) first.
    """

    copies: tuple[tuple[Any, dict[str, Any]], ...]

    @property
    def kept(self) -> dict[str, Any]:
        return self.copies[0][1]


def _copies(
    records: Sequence[dict[str, Any]], sources: Sequence[Any]
) -> dict[Any, list[tuple[Any, dict[str, Any]]]]:
    """``{run key: [(source, record), ...]}``, runs in the order first met, copies sorted by
    :func:`content_key`."""
    groups: dict[Any, list[tuple[Any, dict[str, Any]]]] = {}
    for source, rec in zip(sources, records, strict=True):
        groups.setdefault(_run_key(rec), []).append((source, rec))
    for copies in groups.values():
        if len(copies) > 1:
            copies.sort(key=lambda pair: content_key(pair[1]))
    return groups


def _sources(records: Sequence[dict[str, Any]], sources: Sequence[Any] | None) -> list[Any]:
    return list(sources) if sources is not None else [f"record #{i}" for i in range(len(records))]


def disagreements(
    records: Iterable[dict[str, Any]], sources: Sequence[Any] | None = None
) -> list[Disagreement]:
    """The runs of ``records`` recorded more than once with different metrics, in order met.

    Args:
        records: Results records.
        sources: Where each record came from (its path); default its position.
    """
    records = list(records)
    out = []
    for copies in _copies(records, _sources(records, sources)).values():
        metrics = {freeze(rec.get("metrics")) for _, rec in copies}
        if len(metrics) > 1:
            out.append(Disagreement(tuple(copies)))
    return out


def distinct_runs(
    records: Iterable[dict[str, Any]], sources: Sequence[Any] | None = None, *, warn: bool = True
) -> list[dict[str, Any]]:
    """``records`` with copies of one run kept once, in the order first met.

    Records are copies of one run when their identities (:func:`identity`, seed included) and
    their ``"bench"`` are equal: a record copied into a sub-folder, say. The copy kept is the
    one whose :func:`content_key` comes first, whatever the order or folders the records were
    read in. Copies whose metrics differ (:func:`disagreements`) are reported in a warning
    naming the one kept, unless ``warn`` is false.

    Example:
        >>> rec = {"method": "erm", "seed": 0, "metrics": {"top1_error": 20.0}}
        >>> len(distinct_runs([rec, dict(rec), dict(rec, seed=1)]))
        2

    Args:
        records: Results records.
        sources: Where each record came from (its path), for the warning; default its position.
        warn: Warn about copies whose metrics differ.

    Returns:
        The distinct runs (the records themselves, not copies).
    """
    records = list(records)
    groups = _copies(records, _sources(records, sources))
    if warn:
        for copies in groups.values():
            (kept, first), others = copies[0], copies[1:]
            differ = [
                s for s, rec in others if freeze(rec.get("metrics")) != freeze(first.get("metrics"))
            ]
            if differ:
                warnings.warn(
                    f"{', '.join(map(str, differ))} and {kept} are the same run "
                    f"({first.get('method')}, {_setting(first)}, seed {first.get('seed')}) with "
                    f"different metrics; keeping {kept}, whose record (JSON, keys sorted) comes "
                    "first.",
                    stacklevel=2,
                )
    return [copies[0][1] for copies in groups.values()]


# ---- registry order ---------------------------------------------------------------------------
def method_rank(method: Any) -> tuple[int, int, str]:
    """Sort key of a method: classification registry order, then regression, then multi-label
    (a name of both the classification and the multi-label registry, ``focal``, ranks as the
    former: :func:`multilabel_rank` orders the multi-label table), then by name."""
    if method in METHODS:
        return (0, list(METHODS).index(method), "")
    if method in REGRESSION_METHODS:
        return (1, list(REGRESSION_METHODS).index(method), "")
    if method in MULTILABEL_METHODS:
        return (2, list(MULTILABEL_METHODS).index(method), "")
    return (3, 0, str(method))


def multilabel_rank(method: Any) -> tuple[int, int, str]:
    """Sort key of a multi-label method: the multi-label registry's order, then by name."""
    if method in MULTILABEL_METHODS:
        return (0, list(MULTILABEL_METHODS).index(method), "")
    return (1, 0, str(method))


def method_order(methods: Iterable[Any]) -> list[Any]:
    """``methods`` (deduplicated) in registry order; unknown methods after them, sorted."""
    return sorted(set(methods), key=method_rank)


_PROFILE_RANK = {"exp": 0, "step": 1}


def _setting(rec: dict[str, Any]) -> Setting:
    ident = identity(rec)
    return (ident.get("dataset"), ident.get("profile"), ident.get("ratio"))


def setting_order(setting: Setting) -> tuple[Any, ...]:
    """Datasets by name, long-tailed before step, larger ratios first."""
    dataset, profile, ratio = setting
    r = ratio if isinstance(ratio, (int, float)) else math.inf
    return (str(dataset), _PROFILE_RANK.get(profile, 2), str(profile), -r, str(ratio))


# ---- tables -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of a table: a setting and the fingerprint of its data (``None``: not recorded)."""

    setting: Setting
    data: Any = None


@dataclass(frozen=True)
class Row:
    """A row of a table: a method and the settings of its loss (frozen, see :func:`freeze`)."""

    method: Any
    variant: tuple[tuple[str, Any], ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        """The loss settings as flat ``{name: value}`` (``loss_kwargs`` entries inlined)."""
        out: dict[str, Any] = {}
        for key, value in thaw(self.variant).items():
            if key == "loss_kwargs" and isinstance(value, dict):
                out.update({k: v for k, v in value.items() if k not in out})
            else:
                out[key] = value
        return out


@dataclass
class Table:
    """Records of one recipe, as cells of runs.

    Attributes:
        recipe: The identity less setting, method and seed, shared by every record here.
        fingerprinted: Whether the identities name the data (``False`` for legacy records).
        cells: ``{(row, column, point): runs}``; ``point`` holds the values of the keys a table
            is defined by (β and δ⁻ of the MM ablation), ``()`` for none; the runs of a cell are
            the seeds of one configuration.
    """

    recipe: dict[str, Any]
    fingerprinted: bool
    cells: dict[tuple[Row, Column, tuple[Any, ...]], list[dict[str, Any]]] = field(
        default_factory=dict
    )

    @property
    def rows(self) -> list[Row]:
        # registry order; rows of one method in the order first met (stable sort)
        return sorted(
            dict.fromkeys(r for r, _, _ in self.cells), key=lambda r: method_rank(r.method)
        )

    @property
    def columns(self) -> list[Column]:
        cols = dict.fromkeys(c for _, c, _ in self.cells)
        return sorted(cols, key=lambda c: setting_order(c.setting))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for runs in self.cells.values() for r in runs]

    def runs(self, row: Row, column: Column, point: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """The runs (seeds) of one cell, ``[]`` if none."""
        return self.cells.get((row, column, point), [])


def is_method_key(key: str) -> bool:
    return key in METHOD_KEYS or key.startswith(METHOD_PREFIXES)


def _split(rec: dict[str, Any], defining: Sequence[str]) -> tuple[dict[str, Any], Row, Column, Any]:
    """(recipe, row, column, point) of ``rec``; together they are its identity less the seed."""
    ident = identity(rec)
    ident.pop("seed", None)
    column = Column(
        (ident.pop("dataset", None), ident.pop("profile", None), ident.pop("ratio", None)),
        ident.pop("data", None),
    )
    method = ident.pop("method", None)
    variant = {k: ident.pop(k) for k in list(ident) if is_method_key(k)}
    kwargs = variant.get("loss_kwargs")
    defaults = loss_defaults(variant.get("loss")) if defining else {}
    point = []
    for key in defining:
        if isinstance(kwargs, dict) and key in kwargs:
            point.append(freeze(kwargs[key]))
            kwargs = {k: v for k, v in kwargs.items() if k != key}
        elif isinstance(kwargs, dict) and key not in variant and key in defaults:
            point.append(freeze(defaults[key]))  # left out of the identity at its default
        else:
            point.append(freeze(variant.pop(key, None)))
    if isinstance(kwargs, dict):
        variant["loss_kwargs"] = kwargs
    return ident, Row(method, freeze(variant)), column, tuple(point)


def group_tables(records: Iterable[dict[str, Any]], defining: Sequence[str] = ()) -> list[Table]:
    """Split ``records`` into tables of one recipe each, their runs into cells of one config.

    Copies of a run are counted once (:func:`distinct_runs`). Records whose recipes differ in
    anything (epochs, n_max, preset, model, learning rate, ...) or that differ in having a data
    fingerprint land in different tables; records of one method that differ in their loss
    settings are different rows.

    Args:
        records: Results records of one kind of table.
        defining: Loss settings (a key of ``config["loss_kwargs"]`` or a method key such as
            ``"num_groups"``) that index the cells of a table instead of making rows.

    Returns:
        The tables, fingerprinted ones first.
    """
    tables: dict[Any, Table] = {}
    for rec in distinct_runs(records):
        recipe, row, column, point = _split(rec, defining)
        key = (column.data is None, freeze(recipe))
        if key not in tables:
            tables[key] = Table(recipe, column.data is not None)
        tables[key].cells.setdefault((row, column, point), []).append(rec)
    # fingerprinted before legacy, then by preset and epochs, else in the order first met
    return [tables[k] for k in sorted(tables, key=_table_order)]


def _table_order(key: tuple[bool, Any]) -> tuple[Any, ...]:
    legacy, recipe = key
    values = dict(recipe)
    epochs = number(values.get("epochs"))
    return (legacy, str(values.get("preset")), math.inf if epochs is None else epochs)


# ---- statistics -------------------------------------------------------------------------------
def number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` for a non-number, a boolean or NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation (``ddof = 1``; 0 for one value) and count."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "n": n}


def cell_stats(runs: Iterable[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """:func:`summarize` of ``metric`` over ``runs``, ``None`` when no run has a value."""
    values = [number(r.get("metrics", {}).get(metric)) for r in runs]
    values = [v for v in values if v is not None]
    return summarize(values) if values else None


def aggregate(records: Iterable[dict[str, Any]], metric: str = "top1_error") -> dict[Key, Any]:
    """Mean, sample standard deviation and count of one metric per method and setting.

    Copies of a run count once (:func:`distinct_runs`), so ``n`` is the number of distinct
    seeds. The standard deviation is the sample one (``ddof = 1``), 0 for a single value.
    Records without the metric, or with ``null``/NaN for it, are left out. Ratios 100 and 100.0
    are the same group (the key holds ``100``).

    Example:
        >>> recs = [
        ...     {"method": "erm", "dataset": "d", "profile": "exp", "ratio": 100.0, "seed": s,
        ...      "metrics": {"top1_error": e}}
        ...     for s, e in enumerate([10.0, 12.0])
        ... ]
        >>> aggregate(recs)
        {('erm', 'd', 'exp', 100): {'mean': 11.0, 'std': 1.4142135623730951, 'n': 2}}

    Args:
        records: Results records of one configuration per method and setting.
        metric: A key of the records' ``"metrics"``.

    Returns:
        ``{(method, dataset, profile, ratio): {"mean": float, "std": float, "n": int}}``, ordered
        by setting and then by the registry's method order.

    Raises:
        ValueError: If records of one method and setting differ in anything but the seed (in
            epochs, say): they are not seeds of one run; :func:`group_tables` keeps them apart.
    """
    out: dict[Key, Any] = {}
    for table in group_tables(records):
        for (row, column, _), runs in table.cells.items():
            key = (row.method, *column.setting)
            if key in out:
                raise expected(
                    "records",
                    "seeds of one configuration per method and setting",
                    f"several configurations of {key} (group them with group_tables)",
                )
            out[key] = cell_stats(runs, metric)
    items = [(k, v) for k, v in out.items() if v is not None]
    items.sort(key=lambda kv: (setting_order(kv[0][1:]), method_rank(kv[0][0])))
    return dict(items)


# ---- kinds of records -------------------------------------------------------------------------
def bench_of(rec: dict[str, Any]) -> Any:
    return rec.get("bench")


def is_regression(rec: dict[str, Any]) -> bool:
    m = rec.get("metrics", {})
    return bench_of(rec) in ("dir", "dir-sensitivity") or ("mae" in m and "top1_error" not in m)


def is_multilabel(rec: dict[str, Any]) -> bool:
    """A multi-label run's record: ``"bench": "multilabel"``, ``"task": "multilabel"`` (a lone
    ``longtail train --task multilabel``), or mAP without a top-1 error."""
    m = rec.get("metrics", {})
    return (
        bench_of(rec) == "multilabel"
        or rec.get("task") == "multilabel"
        or ("map" in m and "top1_error" not in m)
    )


def multilabel_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multi-label records evaluated on the test split (a preset selection's validation runs
    have their own section)."""
    return [r for r in records if is_multilabel(r) and r.get("eval_split") != "validation"]


def dir_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of the DIR table (the sensitivity sweep's Group-DIR runs have their own)."""
    return [r for r in records if is_regression(r) and bench_of(r) != "dir-sensitivity"]


def sensitivity_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if bench_of(r) == "dir-sensitivity"]


def classification(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of Table 1 kind, scored on the test split: everything but the MM ablation, the
    preset selection's validation and timing runs, runs scored on a validation split
    (``--val-per-class``: see :func:`classification_validation`), regression and multi-label
    runs."""
    return [r for r in records if _single_label(r) and r.get("eval_split") != "validation"]


def classification_validation(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Classification runs scored on a validation split only (``longtail train
    --val-per-class``) outside a preset selection: never test results, so never in Table 1,
    its plots or the claims."""
    return [r for r in records if _single_label(r) and r.get("eval_split") == "validation"]


def _single_label(rec: dict[str, Any]) -> bool:
    """A single-label classification run outside the MM ablation and the preset selection."""
    return (
        bench_of(rec) not in ("mm-ablation", "preset-selection", "preset-timing")
        and not is_regression(rec)
        and not is_multilabel(rec)
    )


def ablation(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if bench_of(r) == "mm-ablation"]


def by_setting(records: Iterable[dict[str, Any]]) -> dict[Setting, list[dict[str, Any]]]:
    """``records`` grouped by ``(dataset, profile, ratio)``, settings in table order."""
    groups: dict[Setting, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[_setting(rec)].append(rec)
    return {s: groups[s] for s in sorted(groups, key=setting_order)}
