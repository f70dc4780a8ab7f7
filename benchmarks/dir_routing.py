"""Why Group-DIR wins or loses few-shot MAE: its routing diagnostics, summed over seeds.

Every Group-DIR run of the DIR engine records ``metrics.routing``
(:func:`longtail.regression.routing_diagnostics` of the best-validation weights on the test
set). This script reads the records under one or more results folders and prints, per data set
and Group-DIR variant (method, ``routing``, ``group_edges``), mean ± std over seeds of:

* the group classifier's accuracy per label region (routed to the true group), the share routed
  within one group, the mean signed shift ``ĝ − g`` (negative: towards lower groups) and the mean
  distance of the misrouted samples;
* MAE of the hard-routed prediction (the paper's), over the samples routed right and wrong, what
  the misrouted samples' own expert would have had, with perfect routing (every sample to its own
  group's expert), and with the soft mixture; the misrouted samples' share of the error.

With ``--plot FOLDER`` it also draws, per data set, ``routing_<dataset>.png``: training samples
per group (log scale), the routing accuracy per true group and the mean predicted group against
the true group (first seed's groups; all seeds averaged).

    python benchmarks/dir_routing.py results/dir-cps1988 results/dir-hotel-rates \\
        results/dir-computers --plot docs/figures
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from longtail.bench.records import load_records

REGIONS = ("all", "many", "medium", "few")
COLUMNS = (
    ("accuracy", "routed right", 100.0),
    ("within_one", "within 1", 100.0),
    ("mean_shift", "shift ĝ−g", 1.0),
    ("mae", "MAE", 1.0),
    ("mae_routed_right", "MAE routed right", 1.0),
    ("mae_routed_wrong", "MAE routed wrong", 1.0),
    ("mae_wrong_if_right", "misrouted, own expert", 1.0),
    ("mae_true_expert", "MAE perfect routing", 1.0),
    ("mae_soft", "MAE soft mixture", 1.0),
    ("wrong_error_share", "error share misrouted", 100.0),
)


def variant(rec: dict[str, Any]) -> str:
    cfg = rec.get("config", {})
    parts = [rec["method"]]
    if cfg.get("routing", "hard") != "hard":
        parts.append(f"routing={cfg['routing']}")
    if cfg.get("group_edges", "equal-width") != "equal-width":
        parts.append(f"groups={cfg['group_edges']}")
    return " ".join(parts)


def collect(folders: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{dataset: {variant: [records]}}`` of the Group-DIR records with routing diagnostics."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        for rec in load_records(folder):
            if isinstance(rec.get("metrics", {}).get("routing"), dict):
                out[rec["dataset"]][variant(rec)].append(rec)
    return out


def cell(values: list[float | None], scale: float) -> str:
    v = [x * scale for x in values if x is not None]
    if not v:
        return "—"
    digits = 2 if scale == 1.0 and max(abs(x) for x in v) < 10 else 0
    mean = f"{statistics.fmean(v):.{digits}f}"
    return mean if len(v) == 1 else f"{mean} ± {statistics.stdev(v):.{digits}f}"


def markdown(data: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for dataset in sorted(data):
        for name, recs in sorted(data[dataset].items()):
            seeds = sorted(r["seed"] for r in recs)
            lines += [
                f"**{dataset}, {name}** ({len(recs)} seeds: {seeds}; accuracy and shares in %)",
                "",
                "| Region | n | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
                "|:---|" + "---:|" * (len(COLUMNS) + 1),
            ]
            for region in REGIONS:
                blocks = [r["metrics"]["routing"].get(region) for r in recs]
                blocks = [b for b in blocks if b and b.get("n")]
                if not blocks:
                    continue
                n = blocks[0]["n"]
                row = [cell([b.get(k) for b in blocks], s) for k, _, s in COLUMNS]
                lines.append(f"| {region} | {n} | " + " | ".join(row) + " |")
            lines.append("")
    return "\n".join(lines)


def _few_spans(rec: dict[str, Any]) -> list[tuple[float, float]]:
    """The few-shot stretches of the label axis (runs of few-shot training bins)."""
    edges, regions = rec.get("bin_edges"), rec.get("train_regions")
    if not edges or not regions:
        return []
    spans: list[tuple[float, float]] = []
    for k, region in enumerate(regions):
        if region != "few":
            continue
        if spans and spans[-1][1] == edges[k]:
            spans[-1] = (spans[-1][0], edges[k + 1])
        else:
            spans.append((edges[k], edges[k + 1]))
    return spans


def plot(data: dict[str, dict[str, list[dict[str, Any]]]], folder: str) -> list[Path]:
    """One figure per data set: groups on the label axis, so both group schemes line up."""
    from matplotlib.figure import Figure

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in sorted(data):
        fig = Figure(figsize=(13, 3.8))
        axes = fig.subplots(1, 3, sharex=True)
        first = next(iter(data[dataset].values()))[0]
        test = first.get("bin_edges") or []
        hist = first.get("test_hist") or []
        present = [test[k] for k, c in enumerate(hist) if c] + [
            test[k + 1] for k, c in enumerate(hist) if c
        ]
        for ax in axes:
            for lo, hi in _few_spans(first):
                ax.axvspan(lo, hi, color="tab:red", alpha=0.07, linewidth=0)
        for name, recs in sorted(data[dataset].items()):
            routing = [r["metrics"]["routing"] for r in recs]
            edges = routing[0]["group_edges"]
            mids = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            line = axes[0].stairs(routing[0]["train_per_group"], edges, label=name, linewidth=1.5)
            colour = line.get_edgecolor()

            def mean_at(key: str, k: int, routing: list[dict[str, Any]] = routing) -> Any:
                v = [r["per_group"][key][k] for r in routing if r["per_group"][key][k] is not None]
                return statistics.fmean(v) if v else None

            keep = [k for k in range(len(mids)) if mean_at("accuracy", k) is not None]
            xs = [mids[k] for k in keep]
            acc = [100 * mean_at("accuracy", k) for k in keep]
            shift = [mean_at("mean_predicted", k) - k for k in keep]
            axes[1].plot(xs, acc, marker="o", ms=3, color=colour, label=name)
            axes[2].plot(xs, shift, marker="o", ms=3, color=colour, label=name)
        axes[0].set_yscale("symlog", linthresh=1)
        axes[0].set_title("training samples per group")
        axes[1].set_title("test samples routed to their own group (%)")
        axes[2].axhline(0, color="grey", linestyle=":", linewidth=1)
        axes[2].set_title("mean (predicted − true) group")
        if present:
            axes[0].set_xlim(min(present), max(present))
        target = first.get("target", "target")
        for ax in axes:
            ax.set_xlabel(f"{target} (shaded: few-shot bins)")
        axes[1].legend(fontsize=7)
        fig.suptitle(f"Group-DIR routing on {dataset} (test set, mean over seeds)")
        fig.tight_layout()
        path = out / f"routing_{dataset}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="results folders (searched recursively)")
    p.add_argument("--plot", metavar="FOLDER", help="also draw routing_<dataset>.png here")
    args = p.parse_args(argv)
    data = collect(args.folders)
    if not data:
        print("no Group-DIR record with routing diagnostics under", ", ".join(args.folders))
        return 1
    print(markdown(data))
    if args.plot:
        for path in plot(data, args.plot):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
