"""Group-DIR's training step against the vanilla (MSE) regression step, in the same process.

Both steps are :func:`longtail.engine.regression.train_step`, the DIR engine's own step (forward,
loss, backward, Adam), on the same MLP backbone, the same batch and the same thread count: the
vanilla step has a linear regressor and MSE; the Group-DIR step has the group classifier, G
expert regressors and the full objective ``L_grc + λ1·L_mse + λ2·L_soft`` (the ordinal
contrastive loss over the batch's features included).

Each round times ``--steps`` vanilla steps and ``--steps`` Group-DIR steps back to back (order
alternating between rounds) and the reported figure is the median of the per-round ratios, so
slow phases of a shared machine hit both sides. Target (issue 4): ratio <= 1.5.

    python benchmarks/bench_dir.py                       # batch 256, MLP 9-256-256, G = 20
    python benchmarks/bench_dir.py --hidden 128,128      # the quick preset's MLP
    python benchmarks/bench_dir.py --quick --json        # a few seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from longtail.engine.regression import DIRNet, mlp, train_step
from longtail.regression import GroupDIRHead, GroupDIRLoss, group_labels


def build(kind: str, in_features: int, hidden: tuple[int, ...], groups: int, seed: int = 0):
    """Model, criterion and Adam of the engine for ``kind`` = "vanilla" or "group-dir"."""
    torch.manual_seed(seed)
    encoder = mlp(in_features, hidden)
    dim = hidden[-1]
    if kind == "group-dir":
        model = DIRNet(encoder, dim, GroupDIRHead(dim, groups))
        criterion = GroupDIRLoss(groups)
    else:
        model = DIRNet(encoder, dim, torch.nn.Linear(dim, 1))
        criterion = None
    return model, criterion, torch.optim.Adam(model.parameters(), lr=1e-3)


def time_steps(kind: str, setup, x, z, groups, steps: int) -> float:
    """Seconds per step over ``steps`` steps."""
    model, criterion, opt = setup
    loss = "group-dir" if kind == "group-dir" else "mse"
    g = groups if kind == "group-dir" else None
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, criterion, opt, loss, x, z, groups=g)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--features", type=int, default=9, help="input columns (diamonds: 9)")
    ap.add_argument("--hidden", default="256,256", help="MLP hidden sizes (the paper preset)")
    ap.add_argument("--groups", type=int, default=20, help="G")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=60, help="steps per side per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="5 rounds of 20 steps")
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.steps = 5, 20
    torch.set_num_threads(args.threads)
    hidden = tuple(int(h) for h in args.hidden.split(","))

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.features, generator=gen)
    y = torch.randn(args.batch, generator=gen).exp()  # a right-skewed target
    z = (y - y.mean()) / y.std()
    groups = group_labels(y, args.groups)
    sides = {k: build(k, args.features, hidden, args.groups) for k in ("vanilla", "group-dir")}
    for kind, setup in sides.items():  # warm-up: allocator, Adam state, thread pool
        time_steps(kind, setup, x, z, groups, max(5, args.steps // 4))

    ratios, times = [], {"vanilla": [], "group-dir": []}
    for r in range(args.rounds):
        order = ("vanilla", "group-dir") if r % 2 == 0 else ("group-dir", "vanilla")
        t = {k: time_steps(k, sides[k], x, z, groups, args.steps) for k in order}
        for k in t:
            times[k].append(t[k])
        ratios.append(t["group-dir"] / t["vanilla"])
    summary = {
        "benchmark": "group-dir step / vanilla step",
        "batch": args.batch,
        "features": args.features,
        "hidden": list(hidden),
        "groups": args.groups,
        "threads": args.threads,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "vanilla_ms": 1e3 * statistics.median(times["vanilla"]),
        "group_dir_ms": 1e3 * statistics.median(times["group-dir"]),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "target": 1.5,
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    print(
        f"batch {args.batch}, MLP {args.features}-{'-'.join(map(str, hidden))}, G={args.groups}, "
        f"{args.threads} thread(s): vanilla {summary['vanilla_ms']:.2f} ms/step, Group-DIR "
        f"{summary['group_dir_ms']:.2f} ms/step; ratio {summary['ratio_median']:.2f}x "
        f"(median of {args.rounds} rounds, range {min(ratios):.2f}-{max(ratios):.2f}; "
        "target <= 1.5x)"
    )
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
