"""The published Table 1 of the MM paper, to print beside a grid's own numbers.

Kang, Vu and Yoo, "Maximum Margin Loss for Imbalanced Learning" (ICIP 2021), Table 1: top-1
error (%) of ResNet-32 on imbalanced CIFAR-10 and CIFAR-100, 200 epochs, the best epoch over
training (the repositories' habit; longtail reports the last epoch). Rows that longtail does
not implement (HG-DRS, LDAM-HG-DRS, LDAM-DRW + SSP) are left out. A comparison across data sets
is a comparison of shapes (which method wins, by how much), never of values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from longtail.bench.labels import method_label
from longtail.bench.records import aggregate, classification, method_rank
from longtail.data.registry import dataset_label

__all__ = ["PAPER_TABLE1", "paper_comparison_markdown"]

_COLUMNS = (("exp", 100.0), ("exp", 10.0), ("step", 100.0), ("step", 10.0))
_ROWS = {
    #                 CIFAR-10: LT-100, LT-10, step-100, step-10 | CIFAR-100: the same four
    "erm": (29.64, 13.61, 36.70, 17.50, 61.68, 44.30, 61.45, 45.37),
    "focal": (29.62, 13.34, 36.09, 16.36, 61.59, 44.22, 61.43, 46.54),
    "ldam": (26.65, 13.04, 33.42, 15.00, 60.40, 43.09, 60.42, 43.73),
    "mm": (26.56, 12.34, 33.19, 13.99, 60.29, 42.63, 60.25, 43.55),
    "cb-rs": (29.45, 13.21, 38.14, 15.41, 66.56, 44.94, 66.23, 46.92),
    "cb-rw": (27.63, 13.46, 38.06, 16.20, 66.01, 42.88, 78.69, 47.52),
    "cb-focal": (25.43, 12.90, 39.73, 16.54, 63.98, 42.01, 80.24, 49.98),
    "erm-drw": (24.94, 13.57, 27.67, 13.17, 59.49, 43.78, 58.91, 44.72),
    "ldam-drw": (22.97, 11.84, 23.08, 12.19, 57.96, 41.29, 54.64, 40.54),
    "mm-drw": (21.98, 11.44, 22.83, 11.48, 57.14, 40.63, 54.57, 40.28),
    "mm-ldam-drw": (21.37, 11.26, 21.82, 11.33, 56.53, 40.54, 53.70, 40.07),
}

#: ``{dataset: {(profile, ratio): {method: top-1 error}}}`` of the paper's Table 1.
PAPER_TABLE1: dict[str, dict[tuple[str, float], dict[str, float]]] = {
    dataset: {
        col: {m: vals[offset + i] for m, vals in _ROWS.items()} for i, col in enumerate(_COLUMNS)
    }
    for dataset, offset in (("cifar10", 0), ("cifar100", 4))
}


def paper_comparison_markdown(
    records: Iterable[dict[str, Any]], paper_dataset: str = "cifar10"
) -> str:
    """A grid's top-1 error per method and setting beside the paper's on ``paper_dataset``.

    One row per method that both have, one pair of columns per setting (profile, ratio) of the
    grid that the paper has: "here" (mean ± std over seeds, with the seed count) and "paper".
    Returns ``""`` when nothing overlaps.
    """
    try:
        stats = aggregate(classification(records), "top1_error")
    except ValueError:  # several recipes: each needs its own comparison
        return ""
    paper = PAPER_TABLE1[paper_dataset]
    cells: dict[tuple[str, float], dict[str, Any]] = {}
    datasets = set()
    for (method, dataset, profile, ratio), s in stats.items():
        if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):
            continue  # a record that names no imbalance ratio has no column of the paper's
        col = (str(profile), float(ratio))
        if col in paper and method in paper[col]:
            cells.setdefault(col, {})[method] = s
            datasets.add(str(dataset))
    if not cells:
        return ""
    cols = [c for c in _COLUMNS if c in cells]
    methods = sorted({m for c in cols for m in cells[c]}, key=method_rank)
    name = {"exp": "LT", "step": "step"}
    header = ["Method"]
    for p, r in cols:
        header += [f"{name[p]}-{r:g} here", f"{name[p]}-{r:g} paper"]
    lines = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (2 * len(cols))]
    for m in methods:
        row = [method_label(m)]
        for c in cols:
            s = cells[c].get(m)
            if s is None:
                row.append("—")
            else:
                sd = s.get("std")
                spread = f" ± {sd:.2f}" if s["n"] > 1 and not math.isnan(sd) else ""
                row.append(f"{s['mean']:.2f}{spread} ({s['n']})")
            row.append(f"{paper[c][m]:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    here = ", ".join(sorted(dataset_label(d) for d in datasets))
    caption = (
        f"Top-1 error (%), here ({here}: mean ± std over seeds, their number in brackets; "
        "last epoch) "
        f"beside the MM paper's Table 1 on {dataset_label(paper_dataset)} (ResNet-32, 200 "
        "epochs, best epoch). "
        "Different data and budgets: compare which method wins and by how much, not the values."
    )
    return caption + "\n\n" + "\n".join(lines)
