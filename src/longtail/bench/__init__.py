"""Benchmarks: results records, their aggregation, markdown tables and plots.

Plotting needs the ``bench`` extra (matplotlib), imported only when a plot is drawn.
"""

from longtail.bench.report import (
    METHOD_ORDER,
    ablation_markdown,
    aggregate,
    dir_markdown,
    dir_sensitivity_markdown,
    load_records,
    plot_ablation,
    plot_dir_error,
    plot_dir_sensitivity,
    plot_per_class_error,
    table1_markdown,
    tail_markdown,
    write_report,
)

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
