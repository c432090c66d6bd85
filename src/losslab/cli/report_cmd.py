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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from losslab.experiments.classification.report import write_report

    md_path, html_path = write_report(args.db, args.out)
    print(f"report: {md_path} and {html_path}")
    return 0
