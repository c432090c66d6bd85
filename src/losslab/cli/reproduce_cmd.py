"""``losslab reproduce``: the paper's figures and tables, re-run, in one report."""

from __future__ import annotations

import argparse

from losslab.cli._common import comma_list


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce", help="re-run the paper's claims and write report.md / report.html",
        description=(
            "Re-run the paper's loss-shape figures, robust-regression table and classification "
            "tables, and write report.md and a self-contained report.html."
        ),
    )
    parser.add_argument("--preset", choices=("quick", "full"), default="quick",
                        help="quick: minutes on a CPU; full: hours, resumable (default: quick)")
    parser.add_argument("--out", default="reports/quick", help="output folder (default: reports/quick)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--only", type=comma_list, default=None,
                        help="comma-separated sections to run (e.g. shapes,regression)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from losslab.experiments.reproduce import reproduce

    reproduce(args.preset, args.out, seed=args.seed, only=tuple(args.only) if args.only else None)
    return 0
