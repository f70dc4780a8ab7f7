"""The multi-label benchmark's report: a table of mAP, head/medium/tail mAP, F1 and P@k per
method, and a plot of per-label AP against the label's training frequency.

As in the other tables, copies of a run count once and records are split by recipe
(:func:`~longtail.bench.records.group_tables`): runs that differ in anything but the method and
the seed (epochs, model, preset, data) are laid out in separate tables, never averaged.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from longtail.bench.labels import (
    PARAM_SYMBOLS,
    column_titles,
    dataset_stem,
    format_value,
    plural,
    recipe_text,
    seed_span,
    seeds_text,
    varying_keys,
    varying_tags,
)
from longtail.bench.records import (
    Column,
    Row,
    Table,
    cell_stats,
    distinct_runs,
    group_tables,
    is_multilabel,
    multilabel_rank,
    multilabel_records,
    number,
    thaw,
)
from longtail.bench.tables import _column, _table, table_names
from longtail.data.registry import dataset_label
from longtail.engine.multilabel import MULTILABEL_METHODS

__all__ = [
    "CLAIM_METRICS",
    "MULTILABEL_CLAIMS",
    "MULTILABEL_COLUMNS",
    "labels_without_validation_positive",
    "length_agreement",
    "length_agreement_markdown",
    "multilabel_claims",
    "multilabel_claims_json",
    "multilabel_claims_markdown",
    "multilabel_datasets",
    "multilabel_markdown",
    "plot_multilabel_ap",
    "plot_multilabel_selection",
    "validation_runs_markdown",
]

#: Columns of the multi-label table: (metric, header); every one is a percentage, higher better.
#: Precision@k follows for every k the runs have (``p@1``, ``p@3``, ...).
MULTILABEL_COLUMNS = (
    ("map", "mAP"),
    ("head_map", "head"),
    ("medium_map", "medium"),
    ("tail_map", "tail"),
    ("micro_f1", "micro-F1"),
    ("macro_f1", "macro-F1"),
    ("tuned_micro_f1", "micro-F1 tuned"),
    ("tuned_macro_f1", "macro-F1 tuned"),
)

_MISSING = object()


# ---- rows -------------------------------------------------------------------------------------
def _params(row: Row) -> dict[str, Any]:
    """The loss settings of ``row`` that differ from the registry's method."""
    variant = thaw(row.variant)
    kwargs = variant.get("loss_kwargs")
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    spec = MULTILABEL_METHODS.get(row.method)
    ref = spec.loss_kwargs if spec is not None else {}
    return {k: v for k, v in kwargs.items() if ref.get(k, _MISSING) != v}


def _method_label(method: Any) -> str:
    """The multi-label registry's display name of ``method``, else the name itself."""
    spec = MULTILABEL_METHODS.get(method)
    return spec.label if spec is not None and spec.label else str(method)


def multilabel_row_labels(rows: Sequence[Row]) -> dict[Row, str]:
    """The multi-label registry's label of each row's method, with its loss settings that
    differ from the registry's (``"ASL (gamma_neg=2)"``)."""
    out = {}
    for row in rows:
        label = _method_label(row.method)
        shown = _params(row)
        text = ", ".join(f"{PARAM_SYMBOLS.get(k, k)}={format_value(v)}" for k, v in shown.items())
        out[row] = label + (f" ({text})" if text else "")
    return out


def _rows(table: Table) -> list[Row]:
    rows = dict.fromkeys(r for r, _, _ in table.cells)
    return sorted(rows, key=lambda r: multilabel_rank(r.method))


def _title(setting: tuple[Any, ...]) -> str:
    return dataset_label(str(setting[0]))


# ---- the table --------------------------------------------------------------------------------
def _shots(table: Table) -> str:
    many = table.recipe.get("many_threshold", 100)
    few = table.recipe.get("few_threshold", 20)
    return f"head: > {many} training positives, tail: < {few}"


def _data_text(runs: Sequence[dict[str, Any]]) -> str:
    """The training labels of a column in words: counts, imbalance, co-occurrence."""
    rec = runs[0]
    counts = rec.get("label_counts")
    if not isinstance(counts, list) or not counts:
        return ""
    names = rec.get("label_names") or [str(i) for i in range(len(counts))]
    regions = rec.get("label_regions") or [""] * len(counts)
    groups = {
        r: sum(1 for g in regions if g == r) for r in ("many", "medium", "few") if r in regions
    }
    parts = ", ".join(f"{n}: {c}" for n, c in zip(names, counts, strict=False))
    present = [c for c in counts if c]
    text = (
        f"Training positives per label: {parts} (imbalance {max(present) / min(present):.3g}:1"
        + (
            f"; {groups.get('many', 0)} head, {groups.get('medium', 0)} medium, "
            f"{groups.get('few', 0)} tail labels)"
            if groups
            else ")"
        )
    )
    co = (rec.get("cooccurrence") or {}).get("train")
    if isinstance(co, dict):
        tail = number(co.get("tail_with_head"))
        text += (
            f". {co.get('examples')} training examples, "
            f"{number(co.get('labels_per_example_mean')) or 0:.2f} labels per example, "
            f"{100 * (number(co.get('single_label_fraction')) or 0):.0f}% with one label"
            + (
                f", {100 * tail:.0f}% of the examples with a tail-third label also carry a "
                "head-third label"
                if tail is not None
                else ""
            )
        )
    sizes = rec.get("data") or {}
    if isinstance(sizes.get("test_size"), int):
        text += f"; {sizes.get('val_size')} validation and {sizes['test_size']} test examples"
    val = rec.get("val_label_counts")
    if isinstance(val, list) and val and rec.get("eval_split") != "validation":
        absent = [str(names[i]) for i, n in enumerate(val) if not n]
        if absent:
            threshold = (rec.get("config") or {}).get("threshold", 0.5)
            text += (
                f". No validation positive for {', '.join(absent)}: nothing to tune "
                f"{'their thresholds' if len(absent) > 1 else 'its threshold'} on, so the "
                f"tuned F1 keeps {threshold:g} for {'them' if len(absent) > 1 else 'it'}"
            )
    return text + "."


def _columns(runs: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """:data:`MULTILABEL_COLUMNS`, then the runs' precision@k in order of k."""
    ks = sorted(
        {int(m[2:]) for r in runs for m in r.get("metrics", {}) if re.fullmatch(r"p@\d+", m)}
    )
    return [*MULTILABEL_COLUMNS, *((f"p@{k}", f"P@{k}") for k in ks)]


def _without_test_positive(runs: Sequence[dict[str, Any]]) -> str:
    """The labels that no test example carries (``""`` for none), named as the records do."""
    for rec in runs:
        counts = rec.get("test_label_counts")
        if isinstance(counts, list) and counts:
            names = rec.get("label_names") or [str(i) for i in range(len(counts))]
            return ", ".join(str(n) for n, c in zip(names, counts, strict=False) if not c)
    return ""


def _part(table: Table, column: Column, title: str, varying: list[str]) -> str:
    rows = [r for r in _rows(table) if table.runs(r, column)]
    every = _columns([run for r in rows for run in table.runs(r, column)])
    grid = {(r, m): cell_stats(table.runs(r, column), m) for r in rows for m, _ in every}
    shown = [(m, h) for m, h in every if any(grid[(r, m)] for r in rows)]
    rows = [r for r in rows if any(grid[(r, m)] for m, _ in shown)]
    if not rows:
        return ""
    labels = multilabel_row_labels(rows)
    counts = [s["n"] for s in grid.values() if s is not None]
    columns = [_column([grid[(r, m)] for r in rows], True, most=max(counts)) for m, _ in shown]
    runs = [run for r in rows for run in table.runs(r, column)]
    absent = _without_test_positive(runs)
    over = (
        f"over the labels with a test positive ({absent} has none: its AP does not exist, so "
        "the mAP leaves it out, while macro-F1 counts it as 0)"
        if absent
        else "over all labels"
    )
    caption = (
        f"**Multi-label, {title}.** Test mAP (%) {over} and over the head, medium and "
        f"tail labels ({_shots(table)}), micro/macro F1 (%) at a threshold of "
        f"{format_value(table.recipe.get('threshold', 0.5))} and at per-label thresholds tuned on "
        f"the validation split, precision@k (%); {seeds_text(counts)}; highest per column in "
        f"bold. {recipe_text(table, varying)}"
    ).strip()
    data = _data_text(runs)
    body = _table(["Method", *(h for _, h in shown)], columns, [labels[r] for r in rows])
    return caption + (f"\n\n{data}" if data else "") + "\n\n" + body


def multilabel_markdown(records: Iterable[dict[str, Any]]) -> str:
    """The multi-label benchmark's tables (``"bench": "multilabel"`` records, or a lone
    ``longtail train --task multilabel`` run's).

    One table per data set and recipe: rows are methods in the multi-label registry's order
    (:data:`~longtail.engine.multilabel.MULTILABEL_METHODS`), columns the test metrics of
    :data:`MULTILABEL_COLUMNS`, ``mean ± std`` over distinct seeds (the mean alone for one
    seed), highest per column in bold, ``—`` where a run has no value (a group without
    labels). A line under each caption gives the training label counts and co-occurrence.

    Returns:
        Markdown text, or ``""`` without multi-label records.
    """
    tables = group_tables(distinct_runs(multilabel_records(records)))
    varying = varying_keys(tables)
    names = table_names("", len(tables))
    parts = []
    for table, name in zip(tables, names, strict=True):
        titles = column_titles(table.columns, title=_title)
        for column, title in zip(table.columns, titles, strict=True):
            full = f"{title} (recipe {name})" if len(tables) > 1 else title
            parts.append(_part(table, column, full, varying))
    return "\n\n".join(p for p in parts if p)


# ---- the claims -------------------------------------------------------------------------------
#: The claims a multi-label benchmark checks, ``(method, baseline)``: "A vs B" says that A has
#: the higher test mAP (and, in the second table, tail mAP) than B. Every method against plain
#: BCE first (what a user of long-tailed multi-label data asks first), then the papers' own
#: comparisons: ASL against the focal loss it generalises (Ridnik et al., ICCV 2021), DB against
#: class-balanced BCE (Wu et al., ECCV 2020, compare DB with CB re-weighting), and the DB loss
#: against BCE under the same class-aware re-sampling (the DB paper's ablation: re-sampling
#: alone, then its re-balanced weighting and NTR on top). A list: append a pair to check another.
MULTILABEL_CLAIMS: list[tuple[str, str]] = [
    *((m, "bce") for m in MULTILABEL_METHODS if m != "bce"),
    ("asl", "focal"),
    ("db", "cb-bce"),
    ("db-cas", "bce-cas"),
]

#: The metrics the claims are checked on, with their names: both percentages, higher better.
CLAIM_METRICS = (("map", "test mAP"), ("tail_map", "tail mAP"))

#: What the report says above the claims' tables.
CLAIMS_INTRO = (
    "A claim “A vs B” says that method A has a higher test mAP (%, or tail mAP: the labels "
    "with the fewest training positives) than method B. Within one recipe and data set, the "
    "runs of A and B are paired by seed (only seeds both ran; copies of a run count once), "
    "each pair gives d = A − B, so a positive d favours A; 95% CI: mean(d) ± t(0.975, n − 1) "
    "· sd(d) / √n over the n pairs. **Supported**: the interval lies above 0; "
    "**contradicted** (B is higher): below 0; inconclusive: it holds 0, and always with fewer "
    "than 3 seeds (one gives no interval; two with the same difference give one of zero width)."
)


def multilabel_claims(
    records: Iterable[dict[str, Any]],
    claims: Iterable[tuple[str, str]] | None = None,
    metric: str = "map",
) -> list[dict[str, Any]]:
    """Check ``claims`` (default :data:`MULTILABEL_CLAIMS`) on the multi-label test records:
    for every recipe and data set (as the tables split them) and every claim whose two methods
    both have runs there, the paired per-seed differences of ``metric`` and their 95% interval.
    A method run with several loss settings in one recipe is paired row by row.

    Returns:
        ``[{"claim", "method", "baseline", "metric", "table", "setting", "data", "seeds",
        "method_values", "baseline_values", "differences", "mean", "std", "ci", "verdict"}]``
        in table, column and claim order.
    """
    tables, names = _claim_tables(records)
    return _table_claims(
        tables, names, list(MULTILABEL_CLAIMS if claims is None else claims), metric
    )


def _claim_tables(records: Iterable[dict[str, Any]]) -> tuple[list[Table], list[str]]:
    """The multi-label test records' tables (one recipe each) and their names, as the
    benchmark's table names them."""
    tables = group_tables(distinct_runs(multilabel_records(records), warn=False))
    return tables, table_names("", len(tables))


def _claims_by_metric(
    tables: Sequence[Table], names: Sequence[str], claims: Iterable[tuple[str, str]] | None
) -> dict[str, list[dict[str, Any]]]:
    """:func:`multilabel_claims` of every metric of :data:`CLAIM_METRICS`, on tables grouped
    once."""
    wanted = list(MULTILABEL_CLAIMS if claims is None else claims)
    return {m: _table_claims(tables, names, wanted, m) for m, _ in CLAIM_METRICS}


def _table_claims(
    tables: Sequence[Table],
    names: Sequence[str],
    wanted: Sequence[tuple[str, str]],
    metric: str,
) -> list[dict[str, Any]]:
    from longtail.bench.claims import paired_difference, values_by_seed, verdict

    out = []
    for table, name in zip(tables, names, strict=True):
        labels = multilabel_row_labels(_rows(table))
        for column in table.columns:
            for method, baseline in wanted:
                for ra in (r for r in _rows(table) if r.method == method):
                    for rb in (r for r in _rows(table) if r.method == baseline):
                        pair = paired_difference(
                            values_by_seed(table.runs(ra, column), metric),
                            values_by_seed(table.runs(rb, column), metric),
                        )
                        if pair is None:
                            continue
                        out.append(
                            {
                                "claim": f"{labels[ra]} vs {labels[rb]}",
                                "method": method,
                                "baseline": baseline,
                                "metric": metric,
                                "table": name,
                                "recipe": table.recipe,
                                "setting": list(column.setting),
                                "data": column.data,
                                "seeds": list(pair.seeds),
                                "method_values": list(pair.a),
                                "baseline_values": list(pair.b),
                                "differences": list(pair.differences),
                                "mean": pair.mean,
                                "std": pair.std,
                                "ci": list(pair.ci) if pair.ci is not None else None,
                                "verdict": verdict(pair.ci, higher=True, seeds=len(pair.seeds)),
                            }
                        )
    return out


def multilabel_claims_markdown(
    records: Iterable[dict[str, Any]], claims: Iterable[tuple[str, str]] | None = None
) -> str:
    """The claims as markdown: :data:`CLAIMS_INTRO`, then for every recipe and data set one
    table per metric of :data:`CLAIM_METRICS` (the claim, seeds paired, mean difference in
    points, 95% interval, verdict, each seed's difference); ``""`` when no claim has a pair."""
    from longtail.bench.claims import CLAIM_TABLE_HEAD, claim_row, verdict_text

    tables, names = _claim_tables(records)
    varying = varying_keys(tables)
    by_metric = _claims_by_metric(tables, names, claims)
    # a recipe is checked at another length once that length has a claim of its own
    claimed = {r["table"] for r in by_metric["map"]}
    paired = {
        k
        for i, j in _length_pairs(tables)
        if names[i] in claimed and names[j] in claimed
        for k in (i, j)
    }
    parts = []
    for k, (table, name) in enumerate(zip(tables, names, strict=True)):
        titles = column_titles(table.columns, title=_title)
        alone = "" if k in paired else _one_length_text(table)
        for column, title in zip(table.columns, titles, strict=True):
            where = f"{title} (recipe {name})" if len(tables) > 1 else title
            for metric, metric_name in CLAIM_METRICS:
                mine = list(_claims_of(by_metric[metric], name, column).values())
                if not mine:
                    if metric == "tail_map" and _claims_of(by_metric["map"], name, column):
                        few = table.recipe.get("few_threshold", 20)
                        parts.append(
                            f"No claims on tail mAP, {where}: no label has fewer than {few} "
                            "training positives, so there is no tail."
                        )
                    continue
                lines = list(CLAIM_TABLE_HEAD)
                for r in mine:
                    shown = verdict_text(r["verdict"], _method_label(r["baseline"]), "higher")
                    lines.append(
                        claim_row(
                            r["claim"], r["seeds"], r["differences"], r["mean"], r["ci"], shown
                        )
                    )
                caption = (
                    f"**Claims on {metric_name}, {where}.** Higher is better; A − B per seed, "
                    "runs paired by seed within this recipe and data; 95% Student-t interval "
                    f"of the mean difference. {recipe_text(table, varying)}"
                ).strip()
                parts.append(caption + alone + "\n\n" + "\n".join(lines))
                alone = ""  # said once per recipe
    return "\n\n".join([CLAIMS_INTRO, *parts]) if parts else ""


def _one_length_text(table: Table) -> str:
    """The caption's warning for a recipe with no run at twice (or half) its length: its
    verdicts are provisional, since a recipe that is not converged can rank methods by how fast
    they learn."""
    epochs = int(number(table.recipe.get("epochs")) or 0)
    if not epochs:
        return ""
    return (
        f" **Provisional: one training length only** ({plural(epochs, 'epoch')}; no run of "
        "this recipe at twice or half the length). A recipe that has not converged can rank "
        "methods by how fast they learn, so a verdict here is not yet a claim: run the same "
        f"`longtail bench multilabel` command again with `--epochs {2 * epochs}` added, into "
        "this folder, and the report sets the two lengths side by side."
    )


def multilabel_claims_json(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """What ``multilabel_claims.json`` holds: how the claims were checked, every claim on each
    metric of :data:`CLAIM_METRICS`, and each claim at two lengths (:func:`length_agreement`);
    ``None`` when no claim has a pair."""
    tables, names = _claim_tables(records)
    by_metric = _claims_by_metric(tables, names, None)
    results = [r for m, _ in CLAIM_METRICS for r in by_metric[m]]
    if not results:
        return None
    return {
        "metrics": [m for m, _ in CLAIM_METRICS],
        "higher_is_better": True,
        "difference": "method minus baseline, per seed (positive favours method)",
        "pairing": "runs of one recipe and data with the same seed",
        "interval": "mean ± t(0.975, n − 1) · sd / √n (Student t, sample sd)",
        "claims": results,
        # each claim at a recipe's length and at twice it: what both say together
        "length_agreement": _length_agreement(tables, names, by_metric),
    }


def _agreement(short: str, long: str) -> str:
    """What two verdicts of one claim, at a length and at twice it, say together."""
    if short == long == "supported":
        return "holds at both"
    if short == long == "contradicted":
        return "contradicted at both"
    if {short, long} == {"supported", "contradicted"}:
        return "reverses"
    return "no claim"


def _length_pairs(tables: Sequence[Table]) -> list[tuple[int, int]]:
    """Indices ``(i, j)`` of tables whose recipes are the same but for the length, table ``j``
    trained twice as long as table ``i``."""

    def rest(t: Table) -> dict[str, Any]:
        return {k: v for k, v in t.recipe.items() if k != "epochs"}

    out = []
    for i, a in enumerate(tables):
        for j, b in enumerate(tables):
            ea, eb = number(a.recipe.get("epochs")), number(b.recipe.get("epochs"))
            if ea and eb and eb == 2 * ea and rest(a) == rest(b):
                out.append((i, j))
    return out


def _claims_of(
    results: Sequence[dict[str, Any]], table: str, column: Column
) -> dict[str, dict[str, Any]]:
    """``{claim: result}`` of the results of one table and column (setting and data)."""
    return {
        r["claim"]: r
        for r in results
        if r["table"] == table
        and tuple(r["setting"]) == tuple(column.setting)
        and r["data"] == column.data
    }


def length_agreement(
    records: Iterable[dict[str, Any]], claims: Iterable[tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Every claim of a recipe beside the same claim at twice its length (the benchmark run
    twice, ``longtail bench multilabel`` and again with ``--epochs`` doubled, the rest of the
    recipe and the data the same): where no recipe is converged, a claim counts only where
    both lengths agree (:func:`_agreement`).

    Returns:
        ``[{"claim", "metric", "setting", "data", "epochs": [e, 2e], "seeds": [[...], [...]],
        "short": result, "long": result, "both": "holds at both" | "contradicted at both" |
        "reverses" | "no claim"}]``, results as :func:`multilabel_claims` gives them (``None``
        at a length where the claim's two methods were not both run: then "no claim").
    """
    tables, names = _claim_tables(records)
    return _length_agreement(tables, names, _claims_by_metric(tables, names, claims))


def _length_agreement(
    tables: Sequence[Table], names: Sequence[str], by_metric: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    out = []
    for i, j in _length_pairs(tables):
        e1, e2 = (int(number(tables[k].recipe["epochs"]) or 0) for k in (i, j))
        for column in tables[i].columns:
            for metric, _ in CLAIM_METRICS:
                a = _claims_of(by_metric[metric], names[i], column)
                b = _claims_of(by_metric[metric], names[j], column)
                for claim in dict.fromkeys([*a, *b]):  # a claim run at one length only too
                    short, long = a.get(claim), b.get(claim)
                    out.append(
                        {
                            "claim": claim,
                            "metric": metric,
                            "setting": list(column.setting),
                            "data": column.data,
                            "epochs": [e1, e2],
                            "seeds": [r["seeds"] if r else [] for r in (short, long)],
                            "short": short,
                            "long": long,
                            "both": (
                                _agreement(short["verdict"], long["verdict"])
                                if short and long
                                else "no claim"
                            ),
                        }
                    )
    return out


def _seeds_text(seeds: Iterable[Any]) -> str:
    return ", ".join(str(s) for s in sorted(set(seeds), key=str)) or "none"


def length_agreement_markdown(
    records: Iterable[dict[str, Any]], claims: Iterable[tuple[str, str]] | None = None
) -> str:
    """:func:`length_agreement` as markdown: one table per pair of lengths and data set (the
    claim, the metric, A − B with its interval at each length, what both say), its caption
    naming the seeds of each length; ``""`` without such a pair."""
    rows = length_agreement(records, claims)
    names = dict(CLAIM_METRICS)
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((tuple(r["epochs"]), tuple(r["setting"]), r["data"]), []).append(r)

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "not run"
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
        return f"{r['mean']:+.2f}{ci} (n={len(r['seeds'])})"

    def verdict(both: str) -> str:
        return both if both == "no claim" else f"**{both}**"

    parts = []
    for (epochs, setting, _), mine in groups.items():
        e1, e2 = epochs
        short = _seeds_text(s for r in mine for s in r["seeds"][0])
        long = _seeds_text(s for r in mine for s in r["seeds"][1])
        if short == long:
            seeds = f"seeds {short} at both lengths"
        elif "none" in (short, long):
            unpaired = "no seed yet with both methods of a claim"
            seeds = (
                f"seeds {short} at {plural(e1, 'epoch')}; {unpaired} at {plural(e2, 'epoch')}"
                if long == "none"
                else f"{unpaired} at {plural(e1, 'epoch')}; seeds {long} at {plural(e2, 'epoch')}"
            )
        else:
            seeds = (
                f"seeds {short} at {plural(e1, 'epoch')} and {long} at {plural(e2, 'epoch')}: "
                "**not the same seeds**, so a difference between the lengths mixes the length "
                "with the seeds"
            )
        lines = [
            f"| Claim | Metric | {plural(e1, 'epoch')}: A − B [95% CI] | "
            f"{plural(e2, 'epoch')} | Both lengths |",
            "|:---|:---|---:|---:|:---|",
            *(
                f"| {r['claim']} | {names[r['metric']]} | {cell(r['short'])} | "
                f"{cell(r['long'])} | {verdict(r['both'])} |"
                for r in mine
            ),
        ]
        parts.append(
            f"**{_title(setting)}: the claims at {plural(e1, 'epoch')} and at "
            f"{plural(e2, 'epoch')}** ({seeds}). The same recipe trained twice as long: a "
            "recipe that is not converged can rank methods by how fast they learn, so a claim "
            "stands where it **holds at both** lengths (or is **contradicted at both**); one "
            "that **reverses**, or is inconclusive at either length, is no claim.\n\n"
            + "\n".join(lines)
        )
    return "\n\n".join(parts)


# ---- the plot ---------------------------------------------------------------------------------
def multilabel_datasets(records: Iterable[dict[str, Any]]) -> list[Any]:
    """The data sets whose records have per-label AP and label counts (in name order)."""
    found = {
        r.get("dataset")
        for r in distinct_runs(multilabel_records(records))
        if isinstance(r.get("metrics", {}).get("per_label_ap"), list)
        and isinstance(r.get("label_counts"), list)
    }
    return sorted(found, key=str)


def plot_file_name(dataset: Any, datasets: Sequence[Any]) -> str:
    """``multilabel_ap_<dataset>.png``; two data sets of one file stem get a short hash too."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset_stem(dataset))
    if sum(dataset_stem(d) == dataset_stem(dataset) for d in datasets) > 1:
        stem += "_" + hashlib.sha256(str(dataset).encode()).hexdigest()[:8]
    return f"multilabel_ap_{stem}.png"


def plot_multilabel_ap(
    records: Iterable[dict[str, Any]],
    path: str | os.PathLike[str],
    dataset: Any = None,
) -> Path:
    """Per-label test AP against the label's training positives, a line per method.

    x: the training positives of each label (log scale; the labels' names on the top axis),
    y: its test AP (%), mean over distinct seeds; runs of another recipe or loss setting are
    lines of their own. Dotted lines mark the head and tail thresholds.

    Args:
        records: Results records; multi-label records with ``metrics["per_label_ap"]`` and
            ``label_counts`` are used.
        path: The PNG file to write (atomically).
        dataset: Which data set (default the first by name).

    Raises:
        ValueError: no such record (of ``dataset``).
        ImportError: matplotlib is missing.
    """
    from longtail.bench.plots import MARKERS, _figure, _legend_below, _save

    available = multilabel_datasets(records)
    if not available:
        raise ValueError("Expected multi-label records with per-label AP, but got none.")
    dataset = available[0] if dataset is None else dataset
    if dataset not in available:
        raise ValueError(f"Expected one of {available} as the data set, but got {dataset!r}.")
    recs = [
        r
        for r in distinct_runs(multilabel_records(records))
        if r.get("dataset") == dataset and isinstance(r["metrics"].get("per_label_ap"), list)
    ]
    counts = recs[0]["label_counts"]
    recs = [r for r in recs if r.get("label_counts") == counts]
    names = recs[0].get("label_names") or [str(i) for i in range(len(counts))]
    order = sorted(range(len(counts)), key=lambda c: -counts[c])
    fig = _figure(9.0, 5.5)
    ax = fig.subplots(1, 1)
    tables = group_tables(recs)
    varying = varying_keys(tables)
    lines = []
    for table in tables:
        labels = multilabel_row_labels(_rows(table))
        what = varying_tags(table, varying)
        tag = f" [{', '.join(what) or 'another recipe'}]" if len(tables) > 1 else ""
        for row in _rows(table):
            for column in table.columns:
                runs = table.runs(row, column)
                if runs:
                    lines.append((labels[row] + tag, runs))
    x = [max(counts[c], 0.8) for c in order]
    for i, (label, runs) in enumerate(lines):
        ap = []
        for c in order:
            vals = [number(r["metrics"]["per_label_ap"][c]) for r in runs]
            vals = [v for v in vals if v is not None]
            ap.append(sum(vals) / len(vals) if vals else math.nan)
        ax.plot(
            x,
            ap,
            marker=MARKERS[i % len(MARKERS)],
            markersize=4,
            linewidth=1.1,
            label=label,
            color=f"C{i % 10}",
            linestyle="-" if i < 10 else "--",
        )
    config = recs[0].get("config") or {}
    many, few = config.get("many_threshold", 100), config.get("few_threshold", 20)
    for value, text, side in ((many, f" head > {many}", "left"), (few, f"tail < {few} ", "right")):
        ax.axvline(value, color="0.5", linestyle=":", linewidth=1)
        ax.text(
            value,
            0.99,
            text,
            transform=ax.get_xaxis_transform(),
            fontsize="x-small",
            color="0.4",
            va="top",
            ha=side,
        )
    ax.set_xscale("log")
    ax.set_xlabel("training positives of the label (log scale)")
    ax.set_ylabel("test AP (%)")
    top = ax.secondary_xaxis("top")
    top.set_xticks(x, [names[c] for c in order], rotation=35, ha="left", fontsize="x-small")
    top.minorticks_off()
    ax.grid(True, alpha=0.3)
    _legend_below(fig, *ax.get_legend_handles_labels())  # inside, it hid points
    seeds = seed_span(len(runs) for _, runs in lines)
    ax.set_title(
        f"Per-label test AP against training frequency, {dataset_label(str(dataset))} "
        f"(mean over {seeds})",
        fontsize="medium",
    )
    return _save(fig, path)


_SELECTION_BENCHES = ("multilabel-preset-selection", "multilabel-preset-timing")


def validation_runs_markdown(records: Iterable[dict[str, Any]]) -> str:
    """Multi-label runs scored on the validation split only (``--eval-split validation``)
    outside a preset selection, as markdown: a row per data set, recipe (model, width, learning
    rate, length) and method, validation mAP and head/medium/tail mAP as mean ± sample std over
    seeds. ``""`` without such runs. They are never test results, and never enter the
    multi-label test table."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in distinct_runs(list(records), warn=False):
        if (
            is_multilabel(r)
            and r.get("eval_split") == "validation"
            and r.get("bench") not in _SELECTION_BENCHES
        ):
            key = (str(r.get("dataset")), *_selection_recipe(r), str(r.get("method")))
            groups.setdefault(key, []).append(r)
    if not groups:
        return ""
    metrics = ("map", "head_map", "medium_map", "tail_map")
    lines = [
        "| Data | Method | Model | Width | lr | Epochs | Seeds | Val. examples | mAP | head | "
        "medium | tail |",
        "|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    missing: dict[str, str] = {}
    for key in sorted(groups, key=lambda k: (*k[:5], multilabel_rank(k[5]))):
        dataset, model, width, lr, epochs, method = key
        runs = groups[key]
        cells = [_mean_sd(cell_stats(runs, m)) for m in metrics]
        sizes = sorted({str((r.get("data") or {}).get("val_size", "?")) for r in runs})
        lines.append(
            f"| {dataset_label(dataset)} | {_method_label(method)} | {model} | {width} | "
            f"{lr:g} | {epochs} | {len({r.get('seed') for r in runs})} | {'/'.join(sizes)} | "
            + " | ".join(cells)
            + " |"
        )
        for r in runs:
            text = labels_without_validation_positive(r)
            if text:
                missing.setdefault(f"{dataset_label(dataset)} ({'/'.join(sizes)})", text)
    notes = "".join(
        f"\n\nWithout a validation positive in {data}: {text}." for data, text in missing.items()
    )
    return (
        "Scored on the validation split only (`--eval-split validation`): the test split was "
        "never scored, so these are not test results. Validation mAP (%), mean ± sample std "
        "over seeds.\n\n" + "\n".join(lines) + notes
    )


def labels_without_validation_positive(rec: dict[str, Any]) -> str:
    """The labels of a run with no positive in its validation split, named, with what that does
    to mAP; ``""`` when every label has one (or the counts are not recorded)."""
    counts = rec.get("val_label_counts")
    if not isinstance(counts, list) or not counts:
        return ""
    names = rec.get("label_names") or [str(i) for i in range(len(counts))]
    absent = [str(names[i]) for i, n in enumerate(counts) if not n]
    if not absent:
        return ""
    return (
        f"label{'s' if len(absent) > 1 else ''} {', '.join(absent)} (no AP exists for "
        f"{'them' if len(absent) > 1 else 'it'}: mAP judges the other "
        f"{len(counts) - len(absent)} of {len(counts)} labels)"
    )


def _mean_sd(stats: dict[str, Any] | None) -> str:
    """``mean ± std`` of :func:`~longtail.bench.records.cell_stats`, the mean alone for one
    value, ``—`` for none."""
    if stats is None:
        return "—"
    sd = f" ± {stats['std']:.2f}" if stats["n"] > 1 else ""
    return f"{stats['mean']:.2f}{sd}"


def _selection_recipe(rec: dict[str, Any]) -> tuple[str, int, float, int]:
    """A multi-label run's recipe: model, width, learning rate and length."""
    cfg = rec.get("config") or {}
    return (
        str(cfg.get("model")),
        int(cfg.get("width") or 0),
        float(cfg.get("lr") or 0.0),
        int(rec["epochs"]),
    )


def plot_multilabel_selection(
    records: Iterable[dict[str, Any]], path: str | os.PathLike[str]
) -> Path:
    """The multi-label preset selection's validation mAP against the epoch, a panel per method.

    One line per recipe, a model, width, learning rate and length (the mean over its seeds,
    each seed faint behind it; the line names the first three when they differ), from
    the ``curve`` of the ``"bench": "multilabel-preset-selection"`` records: where a length's
    line still climbs at its end, and how far above it the next length ends, is criterion (a)
    in a picture.

    Raises:
        ValueError: no such record with a curve.
        ImportError: matplotlib is missing.
    """
    from longtail.bench.plots import _figure, _save

    runs = [
        r
        for r in distinct_runs(list(records), warn=False)
        if r.get("bench") == "multilabel-preset-selection"
        and any(p.get("val_map") is not None for p in r.get("curve") or [])
    ]
    if not runs:
        raise ValueError("Expected multi-label preset-selection records with a curve, got none.")
    methods = sorted({str(r.get("method")) for r in runs}, key=multilabel_rank)
    recipes = sorted({_selection_recipe(r) for r in runs})
    several = len({k[:3] for k in recipes}) > 1  # name the model, width and lr of each line
    fig = _figure(4.2 * len(methods), 4.0)
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    for ax, method in zip(axes, methods, strict=True):
        for i, key in enumerate(recipes):
            mine = [r for r in runs if r.get("method") == method and _selection_recipe(r) == key]
            curves = [
                {
                    int(p["epoch"]) + 1: float(p["val_map"])
                    for p in r["curve"]
                    if p.get("val_map") is not None
                }
                for r in mine
            ]
            for c in curves:
                ax.plot(list(c), list(c.values()), color=f"C{i}", alpha=0.25, linewidth=0.8)
            shared = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
            if shared:
                mean = [sum(c[e] for c in curves) / len(curves) for e in shared]
                model, width, lr, epochs = key
                what = f"{model} w{width} lr {lr:g}, " if several else ""
                label = f"{what}{epochs} epochs ({plural(len(curves), 'seed')})"
                ax.plot(shared, mean, color=f"C{i}", marker="o", markersize=3, label=label)
        ax.set_title(_method_label(method), fontsize="medium")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower right")
    axes[0].set_ylabel("validation mAP (%)")
    fig.suptitle(
        "Multi-label preset selection: validation mAP by training length", fontsize="medium"
    )
    return _save(fig, path)


def multilabel_sections(
    records: list[dict[str, Any]], out_dir: Path | None, written: list[Path]
) -> list[str]:
    """The report's multi-label section: the tables, a plot per data set (when ``out_dir`` is
    given: matplotlib is there; each PNG appended to ``written``), the claims, and the claims
    at two lengths when the records hold a recipe at twice another's length."""
    text = multilabel_markdown(records)
    if not text:
        return []
    sections = ["## Long-tailed multi-label classification", text]
    if out_dir is not None:
        datasets = multilabel_datasets(records)
        for dataset in datasets:
            name = plot_file_name(dataset, datasets)
            written.append(plot_multilabel_ap(records, out_dir / name, dataset))
            sections.append(f"![{name}]({name})")
    claims = multilabel_claims_markdown(records)
    if claims:
        sections += ["### Claims, paired by seed", claims]
    lengths = length_agreement_markdown(records)
    if lengths:
        sections += ["### Do the claims hold at twice the length?", lengths]
    return sections
