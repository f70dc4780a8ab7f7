"""Benchmarks: results records, their aggregation, markdown tables and plots.

:mod:`longtail.bench.records` reads and groups records, :mod:`longtail.bench.tables` and
:mod:`longtail.bench.plots` lay them out, :mod:`longtail.bench.claims` checks the MM paper's
claims (paired per-seed differences with 95% intervals), :mod:`longtail.bench.report` writes a
folder's report.
Plotting needs the ``bench`` extra (matplotlib), imported only when a plot is drawn.
"""

from longtail.bench.claims import CLAIMS, Claim, ClaimResult, claims_markdown, paired_claims
from longtail.bench.plots import (
    plot_ablation,
    plot_dir_error,
    plot_dir_sensitivity,
    plot_per_class_error,
)
from longtail.bench.records import METHOD_ORDER, aggregate, group_tables, load_records
from longtail.bench.report import write_report
from longtail.bench.tables import (
    ablation_markdown,
    dir_markdown,
    dir_sensitivity_markdown,
    table1_markdown,
    tail_markdown,
)

__all__ = [
    "CLAIMS",
    "METHOD_ORDER",
    "Claim",
    "ClaimResult",
    "ablation_markdown",
    "aggregate",
    "claims_markdown",
    "dir_markdown",
    "dir_sensitivity_markdown",
    "group_tables",
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
