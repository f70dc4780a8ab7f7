"""The ``longtail`` command line: ``longtail losses`` (more commands arrive with the engine)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .losses import get_loss_info, list_losses


def _cmd_losses(args: argparse.Namespace) -> int:
    names = list_losses(args.filter)
    if args.json:
        rows = []
        for n in names:
            info = get_loss_info(n)
            rows.append(
                {
                    "name": n,
                    "description": info.description,
                    "paper": info.paper,
                    "needs_counts": info.needs_counts,
                    "target": info.target,
                    "defaults": info.defaults,
                }
            )
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(n) for n in names), default=4)
    print(f"{'name':<{width}}  counts  {'paper':<28}  description")
    for n in names:
        info = get_loss_info(n)
        counts = "yes" if info.needs_counts else "-"
        print(f"{n:<{width}}  {counts:<6}  {info.paper:<28}  {info.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longtail", description="Learning from imbalanced (long-tailed) data."
    )
    parser.add_argument("--version", action="version", version=f"longtail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("losses", help="list the registered losses with their papers")
    p.add_argument("filter", nargs="?", default="", help="glob on the name, e.g. 'mm*'")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.set_defaults(func=_cmd_losses)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
