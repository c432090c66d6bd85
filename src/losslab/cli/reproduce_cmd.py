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
    parser.add_argument("--preset", choices=("quick", "standard", "full"), default="quick",
                        help="quick: minutes on a CPU (the demo); standard: about an hour on 2 "
                        "cores, every classification table settled to ±1 point under the tuned "
                        "protocol (the published reproduction); full: hours. All resumable "
                        "(default: quick)")
    parser.add_argument("--out", help="output folder (default: reports/PRESET)")
    parser.add_argument("--workers", type=int, default=2,
                        help="parallel training processes for the classification tables, one torch "
                        "thread each (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    from losslab.cli.compare_cmd import add_device_options

    add_device_options(parser)
    parser.add_argument("--only", type=comma_list, default=None,
                        help="comma-separated sections to run (e.g. shapes,regression)")
    parser.add_argument("--tables", type=comma_list, default=None, metavar="N,N,...",
                        help="classification tables to run (e.g. 3 or 3,4; default: 2,3,4,5)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    from losslab.cli import CommandError
    from losslab.experiments.reproduce import reproduce

    if args.workers < 1:
        raise CommandError(f"--workers: expected a positive number of processes, got {args.workers}")
    from losslab.cli._common import check_paths

    check_paths(folders=[("--out", args.out)])
    from losslab.cli.compare_cmd import as_option_error
    from losslab.experiments.classification.execution.runner import (
        check_device,
        check_device_available,
    )

    options: dict[str, object] = {"classification_workers": args.workers}
    if args.device is not None:
        try:
            check_device_available(args.device)  # before any section runs
        except ValueError as error:
            raise as_option_error(error) from error
        options["classification_device"] = check_device(args.device)
    if args.amp is not None:
        options["classification_amp"] = args.amp
    if args.tables is not None:
        try:
            options["classification_tables"] = [int(number) for number in args.tables]
        except ValueError:
            raise CommandError(f"--tables: expected comma-separated table numbers (2, 3, 4, 5), "
                               f"got {','.join(args.tables)!r}") from None
        from losslab.experiments.classification.reporting.section import TABLES

        unknown = [n for n in options["classification_tables"] if n not in {t.number for t in TABLES}]
        if unknown:
            raise CommandError(f"--tables: expected table numbers among "
                               f"{', '.join(str(n) for n in sorted({t.number for t in TABLES}))}, got "
                               f"{', '.join(map(str, unknown))}")
    started = time.perf_counter()
    out = args.out or f"reports/{args.preset}"
    reproduce(args.preset, out, seed=args.seed, only=tuple(args.only) if args.only else None,
              options=options)
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    return 0
