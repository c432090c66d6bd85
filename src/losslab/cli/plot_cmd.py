"""``losslab plot``: the paper's loss-shape figures and the derivative / strictness figure."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot", help="draw the loss-shape and derivative figures (PNG + SVG)",
        description=(
            "Draw Figures 1-3 of the paper (BCE; BCE, M, full M, L, full L; regression losses) and "
            "a derivative / strictness figure, as PNG and SVG."
        ),
    )
    parser.add_argument("--out", default="reports/figures", help="output folder (default: reports/figures)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from losslab.experiments.shapes import make_figures

    for figure in make_figures(args.out):
        print(f"{figure.png}  {figure.svg}")
    return 0
