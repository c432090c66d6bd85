"""``losslab bench``: forward+backward time and memory of the losses against torch, the peer
libraries and the memory-bandwidth bound (see :mod:`losslab.bench` for the method)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from losslab.cli._common import comma_list


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark the losses' speed and memory against torch and peer libraries",
        description=(
            "Time forward+backward (median of --repeats after warm-up) and measure memory of each "
            "loss at realistic sizes, as ratios to baselines measured in the same run: torch's "
            "built-in, the peer libraries (pytorch-metric-learning, sentence-transformers, MONAI) "
            "and the memory-bandwidth bound. Prints a Markdown table."
        ),
    )
    parser.add_argument("--losses", type=comma_list, default=None,
                        help="comma list of loss names, 'paper' (the paper's losses) or 'all' "
                             "(default: every non-experimental registered loss)")
    parser.add_argument("--sizes", type=comma_list, default=None,
                        help="comma list of sizes (1M, 10M, 4096x10, 4096x1000, 512x32000, 1024x256, 256x256, "
                             "16x4x64x64, or 'tiny' for a quick check; default: all but tiny)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per contender (default 10; 3 with --linear)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2; 1 with --linear)")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="keep timing (past --repeats, up to 2000 calls) until the slowest "
                             "contender has run this many seconds in total (default 0.2): many "
                             "samples when every contender takes under a millisecond")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--no-value-checks", action="store_true",
                        help="time losslab with the checks that read tensor values (target ranges, "
                             "class indices) switched off, as losslab.set_validation(False) does")
    parser.add_argument("--compiled", action="store_true",
                        help="also time the paper's losses compiled with Inductor (compiles each "
                             "loss and size once first: seconds each)")
    parser.add_argument("--no-end-to-end", action="store_true",
                        help="skip the CNN training-step comparison")
    parser.add_argument("--end-to-end-batch", type=int, default=128,
                        help="batch size of the CNN training step (default 128)")
    parser.add_argument("--linear", action="store_true",
                        help="benchmark linear_loss (output layer + loss without the logits) against "
                             "F.linear followed by the loss, at language-model shapes (see "
                             "losslab.bench_linear); --losses picks among the losses it supports")
    parser.add_argument("--linear-shapes", type=comma_list, default=None,
                        help="with --linear: comma list of NxHxV (tokens x hidden x vocabulary) or "
                             "'tiny' (default 4096x128x32768,1024x128x131072)")
    parser.add_argument("--dtype", default="float32", help="with --linear: float32 (default), bfloat16 or float16")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from losslab import bench

    if args.repeats is None:
        args.repeats = 3 if args.linear else 10
    if args.warmup is None:
        args.warmup = 1 if args.linear else 2
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected an integer >= 1, got {args.repeats}")
    if not args.min_time >= 0:
        raise ValueError(f"--min-time: expected seconds >= 0, got {args.min_time}")
    if args.warmup < 0:
        raise ValueError(f"--warmup: expected an integer >= 0, got {args.warmup}")
    if args.end_to_end_batch < 1:
        raise ValueError(f"--end-to-end-batch: expected an integer >= 1, got {args.end_to_end_batch}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.linear:
        return _run_linear(args)
    if args.device != "cpu" and not (args.device.startswith("cuda") and torch.cuda.is_available()):
        raise ValueError(f"--device: expected 'cpu' or an available cuda device, got {args.device!r}")

    def log(message: str) -> None:
        if not args.quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    result = bench.run_benchmarks(
        args.losses, args.sizes, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
        device=args.device, memory=not args.no_memory, log=log,
        end_to_end_step=not args.no_end_to_end, end_to_end_batch=args.end_to_end_batch,
        compiled=args.compiled, value_checks=not args.no_value_checks, min_time=args.min_time,
    )
    table = bench.markdown_table(result)
    print(table, end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    return 0


def _run_linear(args: argparse.Namespace) -> int:
    from losslab import bench_linear

    def log(message: str) -> None:
        if not args.quiet:
            print(f"bench: {message}", file=sys.stderr, flush=True)

    def save(result: dict) -> None:
        # after every case, so a long run that is stopped keeps what it measured
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        if args.markdown is not None:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(bench_linear.linear_markdown_table(result))

    result = bench_linear.run_linear_benchmarks(
        args.losses, args.linear_shapes, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
        device=args.device, dtype=args.dtype, memory=not args.no_memory, log=log, on_case=save,
    )
    save(result)
    print(bench_linear.linear_markdown_table(result), end="")
    return 0
