"""``losslab list``: the registered losses and their formulas."""

from __future__ import annotations

import argparse
import json

from losslab.cli._common import terminal_width, text_table


def register(subparsers: argparse._SubParsersAction) -> None:
    from losslab.registry import FAMILIES

    parser = subparsers.add_parser(
        "list", help="list the registered losses with their formulas",
        description="List the registered losses: name, family, formula, convexity, reference, "
        "and which have a Keras 3 form in losslab.keras.",
    )
    parser.add_argument("--family", choices=FAMILIES, help="only this family")
    parser.add_argument("--no-extras", action="store_true", help="hide experimental losses")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the metadata records as JSON")
    output.add_argument("--markdown", action="store_true",
                        help="print a Markdown table (task, shapes, defaults, reference implementation)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from losslab.registry import list_losses

    infos = list_losses(args.family, include_extras=not args.no_extras)
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    if args.markdown:
        print(markdown_table(infos))
        return 0
    rows = [
        (
            info.name + (" *" if info.extra else ""),
            info.family,
            info.formula,
            {True: "yes", False: "no", None: "-"}[info.convex],
            info.reference_impl or "-",
            "yes" if info.keras else "-",
        )
        for info in infos
    ]
    # the formula and "matches" columns wrap so that every line fits the terminal
    print(text_table(("name", "family", "formula", "convex", "matches", "keras"), rows,
                     max_width=terminal_width(), wrap=(2, 4)))
    if any(info.extra for info in infos):
        print("\n* experimental (the paper's v1 extras)")
    if any(info.keras for info in infos):
        print("keras: has a Keras 3 form in losslab.keras (pip install 'losslab[keras]'; "
              "--json names the classes)")
    return 0


def _defaults(info) -> str:
    shown = {k: v for k, v in info.hyperparameters.items() if k not in ("reduction",)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "-"


def markdown_table(infos) -> str:
    """The README's table of losses, generated from the registry."""
    lines = [
        "| name | family | task | input | target | defaults | equals | Keras (`losslab.keras`) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for info in infos:
        cells = (
            f"`{info.name}`" + (" (extra)" if info.extra else ""),
            info.family,
            info.task,
            info.input,
            info.target,
            _defaults(info),
            info.reference_impl or "float64 reference from the paper's equations",
            ", ".join(f"`{name}`" for name in info.keras) or "-",
        )
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
