"""``losslab report``: tables and learning curves of a results database, as Markdown and HTML."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="write report.md / report.html from a compare results database",
        description=(
            "Read a results database written by 'losslab compare' and write report.md and a "
            "self-contained report.html: per task, mean ± sd test accuracy per loss, the paired "
            "difference from cross-entropy with a 95% interval and tests, and learning curves."
        ),
    )
    parser.add_argument("--db", required=True, help="the results database (SQLite)")
    parser.add_argument("--out", default="reports/compare", help="output folder (default: reports/compare)")
    parser.add_argument("--metric", default="accuracy",
                        choices=("accuracy", "macro_f1", "balanced_accuracy", "nll", "ece", "brier",
                                 "perplexity"),
                        help="the score the verdicts read (default: accuracy); every metric is "
                        "tabled beside it")
    parser.add_argument("--csv", metavar="DIR",
                        help="also write runs.csv (one row per run: config and final metrics) and "
                        "curves.csv (one row per epoch) here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from losslab.cli._common import check_paths
    from losslab.experiments.classification.reporting.report import write_report

    # both outputs checked before either is written
    check_paths(folders=[("--out", args.out), ("--csv", args.csv)], files=[("--db", args.db)])
    md_path, html_path = write_report(args.db, args.out, metric=args.metric)
    print(f"report: {md_path} and {html_path}")
    if args.csv:
        from losslab.experiments.classification.storage.export import write_csv

        runs_path, curves_path = write_csv(args.db, args.csv)
        print(f"tables: {runs_path} and {curves_path}")
    return 0
