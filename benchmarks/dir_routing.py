"""Why Group-DIR wins or loses few-shot MAE: its routing diagnostics, summed over seeds.

Every Group-DIR run of the DIR engine records ``metrics.routing``
(:func:`longtail.regression.routing_diagnostics` of the best-validation weights on the test
set). This script reads the records under one or more results folders and prints, per data set
and Group-DIR variant (method, ``routing``, ``group_edges``), mean ± std over seeds of:

* the median number of training samples in the test samples' own groups (from the record's
  bins: a few-shot bin can sit in a well-filled group);
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
import bisect
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
    ("mae", "MAE hard routing", 1.0),
    ("mae_routed_right", "MAE routed right", 1.0),
    ("mae_routed_wrong", "MAE routed wrong", 1.0),
    ("mae_wrong_if_right", "misrouted, own expert", 1.0),
    ("mae_true_expert", "MAE perfect routing", 1.0),
    ("mae_soft", "MAE soft mixture", 1.0),
    ("wrong_error_share", "error share misrouted", 100.0),
)


# the variants drawn by default: the paper's Group-DIR and the equal-frequency option
PLOTTED = ("group-dir", "group-dir groups=equal-frequency")


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


def cell(values: list[float | None], scale: float, digits: int | None = None) -> str:
    v = [x * scale for x in values if x is not None]
    if not v:
        return "—"
    if digits is None:
        digits = 0 if scale != 1.0 else 2
    mean = f"{statistics.fmean(v):.{digits}f}"
    return mean if len(v) == 1 else f"{mean} ± {statistics.stdev(v):.{digits}f}"


def mae_digits(recs: list[dict[str, Any]]) -> int:
    """Decimals for the MAEs of a data set: 0 from 100 up, 1 from 10 up, else 2."""
    mae = statistics.fmean(r["metrics"]["routing"]["all"]["mae"] for r in recs)
    return 0 if mae >= 100 else 1 if mae >= 10 else 2


def own_group_train(rec: dict[str, Any]) -> dict[str, float | None]:
    """Per region, the median over test samples of their own group's training samples.

    From the record alone: each fine label bin's test samples are put in the group of the bin's
    centre (fine bins are narrower than groups), with that group's training count.
    """
    r = rec["metrics"]["routing"]
    edges, hist, regions = rec["bin_edges"], rec["test_hist"], rec["train_regions"]
    groups, counts = r["group_edges"], r["train_per_group"]
    values: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for k, n in enumerate(hist):
        if not n:
            continue
        centre = (edges[k] + edges[k + 1]) / 2
        g = min(max(bisect.bisect_right(groups, centre) - 1, 0), len(counts) - 1)
        for region in ("all", regions[k]):
            values[region].append((counts[g], n))
    out: dict[str, float | None] = {}
    for region, pairs in values.items():
        pairs.sort()
        half, seen = sum(n for _, n in pairs) / 2, 0
        for count, n in pairs:
            seen += n
            if seen >= half:
                out[region] = float(count)
                break
    return out


def markdown(data: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for dataset in sorted(data):
        for name, recs in sorted(data[dataset].items()):
            seeds = sorted(r["seed"] for r in recs)
            lines += [
                f"**{dataset}, {name}** ({len(recs)} seeds: {seeds}; accuracy and shares in %)",
                "",
                "| Region | n | own group's training samples | "
                + " | ".join(h for _, h, _ in COLUMNS)
                + " |",
                "|:---|" + "---:|" * (len(COLUMNS) + 2),
            ]
            digits = mae_digits(recs)
            own = own_group_train(recs[0])
            for region in REGIONS:
                blocks = [r["metrics"]["routing"].get(region) for r in recs]
                blocks = [b for b in blocks if b and b.get("n")]
                if not blocks:
                    continue
                n = blocks[0]["n"]
                row = [
                    cell([b.get(k) for b in blocks], s, digits if k.startswith("mae") else None)
                    for k, _, s in COLUMNS
                ]
                count = own.get(region)
                count_text = "—" if count is None else f"{count:.0f}"
                lines.append(f"| {region} | {n} | {count_text} | " + " | ".join(row) + " |")
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


def plot(
    data: dict[str, dict[str, list[dict[str, Any]]]], folder: str, variants: tuple[str, ...]
) -> list[Path]:
    """One figure per data set: groups on the label axis, so both group schemes line up."""
    from matplotlib.figure import Figure

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in sorted(data):
        fig = Figure(figsize=(13, 3.8))
        axes = fig.subplots(1, 3, sharex=True)
        chosen = [(n, data[dataset][n]) for n in variants if n in data[dataset]]
        if not chosen:
            continue
        first = chosen[0][1][0]
        test = first.get("bin_edges") or []
        hist = first.get("test_hist") or []
        present = [test[k] for k, c in enumerate(hist) if c] + [
            test[k + 1] for k, c in enumerate(hist) if c
        ]
        for ax in axes:
            for lo, hi in _few_spans(first):
                ax.axvspan(lo, hi, color="tab:red", alpha=0.07, linewidth=0)
        for name, recs in chosen:
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


def plot_accuracy_by_count(
    data: dict[str, dict[str, list[dict[str, Any]]]], path: str, variants: tuple[str, ...]
) -> Path:
    """Routing accuracy of each group against its training samples, every data set in one plot.

    One point per (data set, variant, group with test samples): mean over seeds of the share of
    the group's test samples routed to it, against the group's training count (first seed).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    markers = dict(zip(variants, "os^D", strict=False))
    for i, dataset in enumerate(sorted(data)):
        colour = f"C{i}"
        for name in variants:
            recs = data[dataset].get(name)
            if not recs:
                continue
            routing = [r["metrics"]["routing"] for r in recs]
            counts = routing[0]["train_per_group"]
            xs, ys = [], []
            for k, count in enumerate(counts):
                acc = [r["per_group"]["accuracy"][k] for r in routing]
                acc = [a for a in acc if a is not None]
                if acc and count:
                    xs.append(count)
                    ys.append(100 * statistics.fmean(acc))
            label = dataset if len(variants) == 1 else f"{dataset}, {name}"
            ax.scatter(xs, ys, color=colour, marker=markers.get(name, "o"), s=18, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training samples in the group")
    ax.set_ylabel("test samples routed to the group (%)")
    ax.set_title("Group-DIR: routing accuracy per group against its training samples", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="results folders (searched recursively)")
    p.add_argument("--plot", metavar="FOLDER", help="also draw routing_<dataset>.png here")
    p.add_argument(
        "--by-count",
        metavar="PNG",
        help="also draw every data set's routing accuracy per group against its training count",
    )
    p.add_argument(
        "--variants",
        default=",".join(PLOTTED),
        help=f"comma-separated variants to plot (default {','.join(PLOTTED)})",
    )
    args = p.parse_args(argv)
    data = collect(args.folders)
    if not data:
        print("no Group-DIR record with routing diagnostics under", ", ".join(args.folders))
        return 1
    print(markdown(data))
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if args.plot:
        for path in plot(data, args.plot, variants):
            print(f"wrote {path}")
    if args.by_count:
        print(f"wrote {plot_accuracy_by_count(data, args.by_count, variants)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
