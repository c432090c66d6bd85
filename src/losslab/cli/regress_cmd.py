"""``losslab regress``: robust line fits under each loss, against the usual robust regressors."""

from __future__ import annotations

import argparse
import time

from losslab.cli import CommandError
from losslab.cli._common import comma_list, key_value

# The batched fits hold every seed's data at once: more seeds than this cannot fit in memory.
_MAX_SEEDS = 100_000
_SCENARIO_CHOICES = ("table1", "notebook", "hbk", "starsCYG", "stackloss", "diabetes")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "regress", help="robust regression: Table 1 / Figure 4 of the paper, real data, or your CSV",
        description=(
            "Fit a linear model under each regression loss (batched Adam, all seeds at once) and "
            "the usual robust regressors (OLS, statsmodels RLM Huber/Tukey, sklearn Huber, "
            "RANSAC, Theil-Sen) on the same data; write a table (Markdown, CSV, JSON) and "
            "Figure 4 (PNG + SVG). Scenario 'diabetes' runs the MLP check on corrupted targets."
        ),
    )
    parser.add_argument("--scenario", default="table1",
                        help=f"one of {', '.join(_SCENARIO_CHOICES)} (default: table1); ignored with --data")
    parser.add_argument("--data", default=None, metavar="FILE", help="a CSV file to fit instead of a scenario")
    parser.add_argument("--x", nargs="+", default=None, metavar="COL", help="feature column(s) of --data")
    parser.add_argument("--y", default=None, metavar="COL", help="target column of --data")
    parser.add_argument("--encoding", help="text encoding of --data, e.g. latin-1 (default: utf-8)")
    parser.add_argument("--seeds", type=int, default=20,
                        help="seeds for synthetic scenarios (each draws its own data; default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--losses", type=comma_list, default=None,
                        help="comma-separated regression losses (default: mse,mae,huber,log_cosh,smae)")
    parser.add_argument("--loss-option", type=key_value, action="append", default=[],
                        metavar="LOSS.KEY=VALUE",
                        help="a hyperparameter of one loss, e.g. huber.delta=0.5 (repeatable)")
    parser.add_argument("--no-baselines", action="store_true", help="fit the losses only")
    parser.add_argument("--cv-folds", type=int, default=5, metavar="K",
                        help="real data and --data: rank the methods by their K-fold cross-validated "
                             "held-out error (default: 5; 0 turns it off)")
    parser.add_argument("--out", default="results/regress", help="output folder (default: results/regress)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default: 1; the batched fits are small, and more threads "
                             "only contend on a shared CPU)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from losslab.cli._common import text_table
    from losslab.experiments.regression.experiment import DEFAULT_LOSSES

    started = time.perf_counter()
    from losslab.cli._common import check_paths

    check_paths(folders=[("--out", args.out)])
    if args.threads < 1:
        raise CommandError(f"--threads: expected a positive integer, got {args.threads}")
    torch.set_num_threads(args.threads)
    if not 1 <= args.seeds <= _MAX_SEEDS:
        raise CommandError(f"--seeds: expected an integer from 1 to {_MAX_SEEDS:,}, got {args.seeds}")
    if args.cv_folds < 0 or args.cv_folds == 1:
        raise CommandError(f"--cv-folds: expected 0 (off) or an integer >= 2, got {args.cv_folds}")
    if args.data is None and (args.x or args.y):
        raise CommandError("--x/--y: only used with --data FILE")
    if args.data is None and args.scenario not in _SCENARIO_CHOICES:
        raise CommandError(
            f"--scenario: unknown scenario {args.scenario!r}; valid choices: {', '.join(_SCENARIO_CHOICES)} "
            "(or --data FILE --x COL --y COL)"
        )
    losses = args.losses or list(DEFAULT_LOSSES)
    loss_kwargs: dict[str, dict[str, object]] = {}
    for key, value in args.loss_option:
        loss, dot, option = key.partition(".")
        if not dot or not loss or not option:
            raise CommandError(f"--loss-option: expected LOSS.KEY=VALUE (e.g. huber.delta=0.5), got {key}={value}")
        loss_kwargs.setdefault(loss, {})[option] = value
    if args.data is None and args.scenario == "diabetes":
        if loss_kwargs:
            raise CommandError("--loss-option: the diabetes check trains every loss with its defaults")
        return _run_diabetes(args, losses, started)

    from losslab.experiments.regression.baselines import BASELINES
    from losslab.experiments.regression.experiment import (
        FLAG_THRESHOLD,
        cross_validation_table,
        run_regression,
        summary_table,
        verdict,
        write_outputs,
    )

    if args.data is not None and (not args.x or not args.y):
        raise CommandError("--data: also give the columns, --x COL [COL ...] and --y COL")
    result = run_regression(
        args.scenario, seeds=args.seeds, seed=args.seed, losses=losses,
        baselines=() if args.no_baselines else BASELINES,
        data_path=args.data, x_cols=args.x, y_col=args.y, loss_kwargs=loss_kwargs,
        cv_folds=args.cv_folds, encoding=args.encoding,
    )
    stem = "regression"
    paths = write_outputs(result, args.out, stem=stem)
    headers, rows = summary_table(result)
    print(text_table(headers, rows))
    if result.cross_validation:
        # the verdict: which fit predicts rows it has not seen best
        folds = result.cross_validation[0]["folds"]
        print(f"\nheld-out error, {folds}-fold cross-validation (each row predicted by a fit that "
              "did not see it; lower is better):")
        print(text_table(*cross_validation_table(result.cross_validation)))
        print(verdict(result.cross_validation))
    elif result.cross_validation_note:
        print(f"\n{result.cross_validation_note}")
    if not result.synthetic:
        print("flagged rows: |residual| > "
              f"{FLAG_THRESHOLD} robust residual sds; row numbers are 1-based data rows (header not counted)")
    for path in paths.values():
        print(f"wrote {path}")
    print(f"fits and scoring: {result.wall_time:.1f} s; wall time: {time.perf_counter() - started:.1f} s")
    return 0


def _run_diabetes(args: argparse.Namespace, losses: list[str], started: float) -> int:
    import json

    from losslab._paths import ensure_folder, inside, write_text
    from losslab.cli._common import text_table
    from losslab.experiments.environment import environment_info
    from losslab.experiments.regression.experiment import markdown_table
    from losslab.experiments.regression.nonlinear import diabetes_table, run_diabetes_check

    result = run_diabetes_check(losses, seeds=args.seeds, seed=args.seed)
    out = ensure_folder(args.out, option="--out")
    headers, rows = diabetes_table(result)
    write_text(inside(out, "diabetes.md", file=True),
               f"# MLP on corrupted diabetes targets\n\n{markdown_table(headers, rows)}\n")
    import pandas as pd

    write_text(inside(out, "diabetes_per_seed.csv", file=True), pd.DataFrame(result.records).to_csv(index=False))
    write_text(inside(out, "diabetes.json", file=True), json.dumps(
        {"config": result.config, "summary": result.summary, "per_seed": result.records,
         "environment": environment_info()}, indent=2, default=str))
    print(text_table(headers, rows))
    print(f"wrote {out / 'diabetes.md'}, diabetes_per_seed.csv, diabetes.json")
    print(f"wall time: {time.perf_counter() - started:.1f} s")
    return 0
