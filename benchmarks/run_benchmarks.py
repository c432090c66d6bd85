"""Run the losslab benchmark suite at the issue's sizes and write dated results.

    .venv/bin/python benchmarks/run_benchmarks.py [--losses paper] [--repeats 10] [--quick]
        [--compiled] [--no-value-checks]

Writes ``benchmarks/results/bench-YYYY-MM-DD.json`` (results + config + environment) and the
Markdown table next to it. Every ratio is measured within this one run (see losslab.bench).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from losslab import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="all", help="comma list, 'paper' or 'all' (default)")
    parser.add_argument("--sizes", default=",".join(bench.DEFAULT_SIZES), help="comma list of sizes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="time until the slowest contender has run this long (more samples for fast cases)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats (smoke test)")
    parser.add_argument("--compiled", action="store_true",
                        help="also time the paper's losses compiled with Inductor")
    parser.add_argument("--no-value-checks", action="store_true",
                        help="time losslab with its value checks off (losslab.set_validation(False)); "
                             "writes ...-unchecked files")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    sizes = ["tiny"] if args.quick else [s for s in args.sizes.split(",") if s]
    repeats = 2 if args.quick else args.repeats
    result = bench.run_benchmarks(
        [s for s in args.losses.split(",") if s], sizes, repeats=repeats, warmup=args.warmup,
        log=lambda message: print(f"bench: {message}", file=sys.stderr, flush=True),
        compiled=args.compiled, value_checks=not args.no_value_checks,
        min_time=0.0 if args.quick else args.min_time,
    )
    stem = (f"bench-{dt.date.today().isoformat()}" + ("-quick" if args.quick else "")
            + ("-unchecked" if args.no_value_checks else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    table = bench.markdown_table(result)
    (args.out / f"{stem}.md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
