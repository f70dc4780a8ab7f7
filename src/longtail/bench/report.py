"""Reports from results records: the MM paper's tables in markdown, and per-class error plots.

The work is split in these modules, re-exported here:

* :mod:`longtail.bench.records` reads records (:func:`load_records`), tells runs apart by their
  identity (config and data fingerprint), counts copies of a run once and groups the rest by
  recipe (:func:`aggregate` for mean ± std over seeds);
* :mod:`longtail.bench.tables` lays them out: :func:`table1_markdown`, :func:`tail_markdown`,
  :func:`ablation_markdown`, :func:`dir_markdown` and :func:`dir_sensitivity_markdown`;
* :mod:`longtail.bench.plots` draws them: :func:`plot_per_class_error`, :func:`plot_ablation`,
  :func:`plot_dir_error` and :func:`plot_dir_sensitivity`;
* :mod:`longtail.bench.claims` checks the MM paper's claims on Table 1 runs: paired per-seed
  differences with 95% intervals (:func:`paired_claims`, :func:`claims_markdown`);
* :mod:`longtail.bench.multilabel` lays out and draws the multi-label benchmark
  (:func:`~longtail.bench.multilabel.multilabel_markdown`,
  :func:`~longtail.bench.multilabel.plot_multilabel_ap`).

:func:`write_report` does all of it for one folder. Plots need matplotlib (the ``bench`` extra:
``pip install "longtail[bench]"``); without it the tables are still written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from longtail._validation import expected
from longtail.bench.claims import CLAIMS, claims_json, claims_markdown, paired_claims
from longtail.bench.labels import method_label, plural, setting_title, slug
from longtail.bench.multilabel import (
    multilabel_claims_json,
    multilabel_sections,
    plot_multilabel_selection,
    validation_runs_markdown,
)
from longtail.bench.paper import paper_comparison_markdown
from longtail.bench.plots import (
    curve_settings,
    per_bin_settings,
    per_class_settings,
    plot_ablation,
    plot_dir_error,
    plot_dir_sensitivity,
    plot_per_class_error,
    plot_per_class_heatmap,
    plot_training_curves,
)
from longtail.bench.records import (
    METHOD_ORDER,
    Disagreement,
    Setting,
    aggregate,
    bench_of,
    classification,
    classification_validation,
    dir_records,
    disagreements,
    distinct_runs,
    identity,
    is_multilabel,
    load_records,
    method_order,
    multilabel_rank,
    multilabel_records,
    number,
    read_records,
    sensitivity_records,
    setting_order,
)
from longtail.bench.selection import multilabel_selection_markdown, selection_markdown
from longtail.bench.tables import (
    ablation_grids,
    ablation_markdown,
    dir_markdown,
    dir_sensitivity_markdown,
    sensitivity_sweeps,
    table1_markdown,
    tail_markdown,
    validation_markdown,
)
from longtail.engine.io import atomic_write_json, atomic_write_text, temporaries

__all__ = [
    "CLAIMS",
    "METHOD_ORDER",
    "ablation_markdown",
    "aggregate",
    "claims_markdown",
    "dir_markdown",
    "dir_sensitivity_markdown",
    "load_records",
    "paired_claims",
    "plot_ablation",
    "plot_dir_error",
    "plot_dir_sensitivity",
    "plot_per_class_error",
    "table1_markdown",
    "tail_markdown",
    "write_report",
]


# ---- the report -------------------------------------------------------------------------------
def write_report(
    directory: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Write ``report.md`` (every table, with image links) and its PNG plots for a results folder.

    Files written into ``out`` (default ``directory``), each atomically (a temporary file, then
    ``os.replace``):

    * ``per_class_error_<dataset>_<profile><ratio>.png`` for each setting with per-class errors,
      and ``per_class_heatmap_<...>.png`` (:func:`plot_per_class_heatmap`): methods × classes;
    * ``mm_ablation_<dataset>_<profile><ratio>.png`` for each setting with MM ablation records;
    * ``dir_error_<dataset>_dir<ratio>.png`` (:func:`plot_dir_error`) for each DIR setting with
      per-bin errors, ``dir_sensitivity_<...>.png`` (:func:`plot_dir_sensitivity`) for each
      Group-DIR sensitivity sweep;
    * ``multilabel_ap_<dataset>.png`` (:func:`~longtail.bench.multilabel.plot_multilabel_ap`)
      for each multi-label data set: per-label AP against training frequency;
    * ``claims.json`` (:func:`~longtail.bench.claims.paired_claims`), when a Table 1 grid has
      runs of both methods of at least one claim (:data:`~longtail.bench.claims.CLAIMS`): each
      claim's per-seed differences in top-1 error, their mean, 95% interval and verdict;
    * ``multilabel_claims.json`` (:func:`~longtail.bench.multilabel.multilabel_claims`), the
      same for the multi-label claims (:data:`~longtail.bench.multilabel.MULTILABEL_CLAIMS`)
      on test mAP and tail mAP, when a multi-label benchmark has runs of both methods of one;
    * ``report.md``: Table 1 (top-1 error), the tail view, the claims, the per-class plots, the
      ablation grids and plots, the DIR tables and plots when there are regression records, and
      the multi-label tables and plots when there are multi-label records.

    Two settings whose file names would be the same (datasets ``/a/faces.npz`` and
    ``/b/faces.npz``) get a short hash of their dataset in the name (:func:`plot_name`), and
    each section links its own plot.

    Without matplotlib the tables are still written, with a warning and no plots.

    Args:
        directory: A folder of results records (searched recursively, see :func:`load_records`).
        out: Where to write; created if needed.

    Returns:
        The paths written, the PNGs first, then ``claims.json`` (if written), ``report.md`` last.

    Raises:
        FileNotFoundError: If ``directory`` is not a folder.
        ValueError: If it holds no results record.
    """
    directory = Path(directory)
    skipped: list[tuple[Path, str]] = []
    found = read_records(directory, skipped)
    if not found:
        raise expected(
            "directory",
            'a folder holding results records (JSON objects with "method" and "metrics")',
            f"none in {directory}",
        )
    # copies of a run (a record copied into a sub-folder) count once, reported by path; copies
    # whose metrics differ are listed in report.md, under the tables they are in
    found_records = [r for _, r in found]
    sources = [p.relative_to(directory).as_posix() for p, _ in found]
    records = distinct_runs(found_records, sources, warn=False)
    disagree = disagreements(found_records, sources)
    if disagree:
        warnings.warn(
            f"{plural(len(disagree), 'run')} {'was' if len(disagree) == 1 else 'were'} recorded "
            "more than once with different metrics (on "
            "another CPU or thread count?); report.md lists the copies under their tables, and "
            "which copy each table uses.",
            stacklevel=2,
        )
    out_dir = Path(out) if out is not None else directory
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = importlib.util.find_spec("matplotlib") is not None
    if not plots:
        warnings.warn(
            'The report has no plots: they need matplotlib (pip install "longtail[bench]").',
            stacklevel=2,
        )
    written: list[Path] = []

    def plot(
        fn: Callable[..., Path], prefix: str, setting: Setting, settings: Sequence[Setting]
    ) -> str:
        name = plot_name(prefix, setting, settings)
        written.append(fn(records, out_dir / name, setting))
        return f"![{name}]({name})"

    sections = ["# Results report", _summary(directory, len(found), records, skipped)]
    sections += _classification_sections(records, plot if plots else None, disagree)
    sections += _regression_sections(records, plot if plots else None, disagree)
    sections += _multilabel_sections(records, out_dir if plots else None, written, disagree)
    written += _write_claims(records, out_dir)
    report = out_dir / "report.md"
    atomic_write_text(report, "\n\n".join(sections) + "\n")
    written.append(report)
    _remove_stray_temporaries(written)
    return written


def _write_claims(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``claims.json`` and ``multilabel_claims.json``, each where its grid has a claim with
    runs of both methods; the paths written."""
    written = []
    claims = paired_claims(records)
    if claims:
        atomic_write_json(out_dir / "claims.json", claims_json(claims))
        written.append(out_dir / "claims.json")
    ml_claims = multilabel_claims_json(records)
    if ml_claims is not None:
        atomic_write_json(out_dir / "multilabel_claims.json", ml_claims)
        written.append(out_dir / "multilabel_claims.json")
    return written


def _remove_stray_temporaries(written: Sequence[Path], age: float = 600.0) -> None:
    """Remove what a report killed while writing these files left: their temporary files
    (``.<name>.<random>.tmp``) older than ``age`` seconds (a younger one may be another
    report's, writing at this moment)."""
    import time

    now = time.time()
    for path in written:
        for stray in temporaries(path.parent, path.name):
            try:
                if now - stray.stat().st_mtime > age:
                    stray.unlink()
            except OSError:  # gone already, or not ours to remove
                pass


Plot = Callable[[Callable[..., Path], str, Setting, Sequence[Setting]], str]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def plot_name(prefix: str, setting: Setting, settings: Sequence[Setting]) -> str:
    """The PNG file name of the plot of ``setting`` among the ``settings`` of one kind of plot.

    ``<prefix>_<slug>.png``; where two settings have one slug (two datasets whose files share a
    stem, ``/a/faces.npz`` and ``/b/faces.npz``, or a registered name and a file of that name),
    each of them gets a short hash of its dataset too, so that neither plot overwrites the other.
    """
    name = slug(setting)
    if sum(slug(s) == name for s in settings) > 1:
        name += f"_{_short_hash(str(setting[0]))}"
    return f"{prefix}_{name}.png"


def plot_titles(settings: Sequence[Setting]) -> dict[Setting, str]:
    """Titles of ``settings``; two that read the same also name their datasets as given."""
    plain = {s: setting_title(s) for s in settings}
    shown = list(plain.values())
    return {s: f"{t} (`{s[0]}`)" if shown.count(t) > 1 else t for s, t in plain.items()}


def _summary(
    directory: Path,
    n_found: int,
    records: list[dict[str, Any]],
    skipped: Sequence[tuple[Path, str]] = (),
) -> str:
    methods = method_order(str(r["method"]) for r in records)
    if records and all(is_multilabel(r) for r in records):  # "focal" is of both registries
        methods = sorted(methods, key=multilabel_rank)
    copies = n_found - len(records)
    counted = ""
    if copies:
        what = "record was a copy" if copies == 1 else "records were copies"
        counted = f" ({copies} more {what} of these, counted once)"
    text = (
        f"{plural(len(records), 'run')} from `{directory}`{counted}; methods: {', '.join(methods)}."
    )
    if skipped:
        # a record that could not be read is a run missing from the tables: say which
        files = "; ".join(f"`{p.relative_to(directory).as_posix()}` ({why})" for p, why in skipped)
        text += (
            f"\n\n**Not in these tables:** {plural(len(skipped), 'file')} that looked like "
            f"{'a record' if len(skipped) == 1 else 'records'} could not be read: {files}."
        )
    return text


def _environment_text(env: Any, world: Any = None) -> str:
    """Where a run ran, from its record's ``environment``: torch, CPU (or GPU), threads, and
    the number of DDP processes where there were several."""
    if not isinstance(env, dict):
        return "no environment recorded"
    parts = [f"torch {env['torch']}"] if env.get("torch") else []
    parts += [str(env[k]) for k in ("cpu", "gpu") if env.get(k)]
    threads = env.get("threads")
    if threads is not None:
        parts.append(f"{threads} thread{'' if threads == 1 else 's'}")
    if isinstance(world, int) and world > 1:
        parts.append(f"{world} DDP processes")
    return ", ".join(parts) or "no environment recorded"


def _differing_metrics(copies: Sequence[tuple[Any, dict[str, Any]]]) -> list[str]:
    """The metrics whose values differ between copies of a run, in sorted order."""
    metrics = [copy.get("metrics") or {} for _, copy in copies]
    keys = sorted({k for m in metrics for k in m})
    return [k for k in keys if len({json.dumps(m.get(k), sort_keys=True) for m in metrics}) > 1]


def disagreement_note(items: Sequence[Disagreement], metric: str, name: str) -> str:
    """Markdown list of the copies of each run in ``items``: their ``metric`` and environment.

    ``""`` for none. The copy a table uses is the first (:func:`~longtail.bench.records.
    content_key`); values are shown to 10 significant digits, where copies of one run differ.
    """
    if not items:
        return ""
    lines = [
        "**Copies that disagree.** These runs were recorded more than once with different "
        "metrics: the same run on another CPU model or thread count follows another "
        "floating-point path, and training amplifies the rounding, so copies can differ as "
        "much as two seeds do. The table above uses the copy whose record, as JSON with sorted "
        "keys, comes first (marked *used*), whatever folder it is in:",
        "",
    ]
    for item in items:
        rec = item.kept
        ident = identity(rec)
        setting = (ident.get("dataset"), ident.get("profile"), ident.get("ratio"))
        copies = []
        for i, (source, copy) in enumerate(item.copies):
            value = number((copy.get("metrics") or {}).get(metric))
            shown = "—" if value is None else f"{value:.10g}"
            used = "*used*; " if i == 0 else ""
            env = _environment_text(copy.get("environment"), copy.get("world_size"))
            copies.append(f"`{source}` {name} {shown} ({used}{env})")
        run = f"{method_label(rec.get('method'))}, {setting_title(setting)}, seed {rec.get('seed')}"
        differ = _differing_metrics(item.copies)
        shown_differs = metric in differ
        where = "" if shown_differs else f" (they differ in {', '.join(differ[:4])})"
        lines.append(f"- {run}: " + "; ".join(copies) + where)
    return "\n".join(lines)


def _notes(items: Sequence[Disagreement], metric: str, name: str) -> list[str]:
    text = disagreement_note(items, metric, name)
    return [text] if text else []


def _classification_sections(
    records: list[dict[str, Any]], plot: Plot | None, disagree: Sequence[Disagreement] = ()
) -> list[str]:
    """Table 1 with its tail view and per-class plots, and the MM ablation with its heat maps."""
    sections = []
    table1 = table1_markdown(records, "top1_error", tail_view=False)
    if table1:
        sections += ["## Table 1: top-1 error", table1]
        mine = [d for d in disagree if classification([d.kept])]
        sections += _notes(mine, "top1_error", "top-1 error")
        tail = tail_markdown(records)
        if tail:
            sections.append(tail)
    paper = paper_comparison_markdown(records)
    if paper:
        sections += ["## Beside the paper", paper]
    claims = claims_markdown(records)
    if claims:
        sections += [
            "## Claims: paired differences over seeds",
            "Each seed's errors are in `claims.json` too.",
            claims,
        ]
    validation = validation_markdown(records)
    if validation:
        sections += ["## Runs scored on validation", validation]
        val_curves = curve_settings(classification_validation(records)) if plot is not None else []
        for setting in val_curves:
            sections.append(
                plot(
                    lambda recs, path, s: plot_training_curves(
                        classification_validation(recs), path, s
                    ),
                    "validation_curves",
                    setting,
                    val_curves,
                )
            )
    selection = selection_markdown(records)
    if selection:
        sections += ["## Preset selection: convergence on a validation split", selection]
        chosen = [r for r in records if r.get("bench") == "preset-selection"]
        settings = curve_settings(chosen) if plot is not None else []
        for setting in settings:
            sections.append(
                plot(
                    lambda recs, path, s: plot_training_curves(chosen, path, s),
                    "selection_curves",
                    setting,
                    settings,
                )
            )
    per_class = per_class_settings(records)
    if per_class and plot is not None:
        sections.append("## Per-class error")
        titles = plot_titles(per_class)
        for setting in per_class:
            link = plot(plot_per_class_error, "per_class_error", setting, per_class)
            heat = plot(plot_per_class_heatmap, "per_class_heatmap", setting, per_class)
            sections.append(f"**{titles[setting]}**\n\n{link}\n\n{heat}")
    curves = curve_settings(classification(records)) if plot is not None else []
    if curves:
        sections.append("## Training curves")
        titles = plot_titles(curves)
        for setting in curves:
            link = plot(
                lambda recs, path, s: plot_training_curves(classification(recs), path, s),
                "training_curves",
                setting,
                curves,
            )
            sections.append(f"**{titles[setting]}**\n\n{link}")
    ablation = ablation_markdown(records)
    if ablation:
        sections += ["## MM ablation: β × δ⁻", ablation]
        mine = [d for d in disagree if bench_of(d.kept) == "mm-ablation"]
        sections += _notes(mine, "top1_error", "top-1 error")
        settings = sorted(
            dict.fromkeys(g.setting for g in ablation_grids(records)), key=setting_order
        )
        for setting in settings if plot is not None else []:
            sections.append(plot(plot_ablation, "mm_ablation", setting, settings))
    return sections


def _multilabel_sections(
    records: list[dict[str, Any]],
    out_dir: Path | None,
    written: list[Path],
    disagree: Sequence[Disagreement] = (),
) -> list[str]:
    """The multi-label tables and their per-label AP plots (``out_dir`` None: no plots)."""
    sections = multilabel_sections(records, out_dir, written)
    if sections:
        mine = [d for d in disagree if multilabel_records([d.kept])]
        sections[2:2] = _notes(mine, "map", "mAP")
    validation = validation_runs_markdown(records)
    if validation:
        sections += ["## Multi-label runs scored on validation", validation]
    selection = multilabel_selection_markdown(records)
    if selection:
        sections += ["## Multi-label preset selection: convergence on validation", selection]
        curves = any(
            r.get("bench") == "multilabel-preset-selection" and r.get("curve") for r in records
        )
        if out_dir is not None and curves:  # not for a folder of timing runs alone
            name = "multilabel_selection_curves.png"
            written.append(plot_multilabel_selection(records, out_dir / name))
            sections.append(f"![{name}]({name})")
    return sections


def _regression_sections(
    records: list[dict[str, Any]], plot: Plot | None, disagree: Sequence[Disagreement] = ()
) -> list[str]:
    """The DIR tables with their error plots, and Group-DIR's sensitivity with its plots."""
    sections = []
    regression = dir_markdown(records)
    if regression:
        sections += ["## Deep imbalanced regression", regression]
        mine = [d for d in disagree if dir_records([d.kept])]
        sections += _notes(mine, "mae", "MAE")
        settings = per_bin_settings(records)
        for setting in settings if plot is not None else []:
            sections.append(plot(plot_dir_error, "dir_error", setting, settings))
    sensitivity = dir_sensitivity_markdown(records)
    if sensitivity:
        sections += ["## Group-DIR sensitivity: G, λ1, λ2", sensitivity]
        mine = [d for d in disagree if sensitivity_records([d.kept])]
        sections += _notes(mine, "mae", "MAE")
        sweeps = sensitivity_sweeps(records)
        settings = sorted(dict.fromkeys(s.column.setting for s in sweeps), key=setting_order)
        for setting in settings if plot is not None else []:
            sections.append(plot(plot_dir_sensitivity, "dir_sensitivity", setting, settings))
    return sections
