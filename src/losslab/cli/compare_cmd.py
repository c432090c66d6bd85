"""``losslab compare``: train every loss on a task over several seeds and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from losslab.cli import CommandError
from losslab.cli._common import check_paths, comma_list, key_value, positive_int


def _float_list(text: str) -> list[float]:
    values = []
    for item in comma_list(text):
        try:
            values.append(float(item))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {item!r}") from None
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    from losslab.experiments.classification.execution.backends import backend_names
    from losslab.experiments.classification.execution.controller import DEFAULT_LEASE_SECONDS

    parser = subparsers.add_parser(
        "compare", help="train each loss over several seeds on a task; paired statistics",
        description=(
            "Train a task once per (loss, seed), record every epoch in a SQLite database, and "
            "print mean ± sd test accuracy per loss with the paired difference from "
            "cross-entropy. Re-running the same command skips finished runs and resumes "
            "interrupted ones. --protocol tuned first sweeps each loss's learning rate on a "
            "validation split carved from the training data (never the test split) and tests "
            "each loss at its best rate."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--task", help="a registered task (losslab compare --list-tasks)")
    source.add_argument("--data", metavar="FILE.csv", help="your own CSV file")
    source.add_argument("--list-tasks", action="store_true", help="list the tasks and exit")
    parser.add_argument("--path", help="data folder of the tasks that read your disk "
                        "(cifar10-vgg, imagenette-vgg, imdb-lstm)")
    parser.add_argument("--label-column", help="the CSV column holding the class (with --data)")
    parser.add_argument("--text-column", help="a CSV text column: trains a text model (with --data)")
    parser.add_argument("--feature-columns", type=comma_list,
                        help="numeric CSV columns to use (default: all other numeric columns)")
    parser.add_argument("--text-model", choices=("lstm", "minilm"), default="lstm",
                        help="model for --text-column (default: lstm)")
    parser.add_argument("--encoding", help="text encoding of the --data and --test-data files, "
                        "e.g. latin-1 or cp1252 (default: utf-8)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test-data", metavar="FILE.csv",
                       help="your test split, a CSV with the same columns (with --data)")
    split.add_argument("--test-fraction", type=float,
                       help="share of --data rows held out as the stratified test split "
                       "(default: 0.2, seeded by --split-seed)")
    parser.add_argument("--losses", type=comma_list, default=["cross_entropy", "m", "full_m", "l", "full_l"],
                        help="comma-separated loss names (default: cross_entropy,m,full_m,l,full_l)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds, 0..N-1 (default: 5)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the task's)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default: the task's)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the task's)")
    parser.add_argument("--weight-decay", type=float, help="weight decay (default: 0)")
    setup = parser.add_argument_group("optimizer and schedule")
    setup.add_argument("--optimizer", choices=("adam", "adamw", "sgd"),
                       help="optimizer (default: adam)")
    setup.add_argument("--momentum", type=float, help="SGD momentum (default: 0.9)")
    setup.add_argument("--nesterov", action="store_true", default=None, help="SGD with Nesterov momentum")
    setup.add_argument("--scheduler", choices=("none", "cosine", "step", "onecycle"),
                       help="learning-rate schedule, stepped per batch (default: none)")
    setup.add_argument("--warmup-epochs", type=int, help="epochs of linear warmup (default: 0)")
    setup.add_argument("--grad-clip", type=float, help="clip the gradient norm to this value")
    parser.add_argument("--max-train", type=int, help="stratified subset of the training split")
    parser.add_argument("--max-test", type=int, help="stratified subset of the test split")
    parser.add_argument("--preset", choices=("quick", "full"), default="full",
                        help="the task's data sizes and epochs (default: full)")
    parser.add_argument("--model-option", type=key_value, action="append", default=[],
                        metavar="KEY=VALUE", help="override a model argument, e.g. width_multiplier=1")
    tuned = parser.add_argument_group("learning-rate tuning (--protocol tuned)")
    tuned.add_argument("--protocol", choices=("fixed", "tuned"), default="fixed",
                       help="fixed: every loss at the same learning rate; tuned: each loss at the "
                       "rate that scores best on a validation split (default: fixed)")
    tuned.add_argument("--lr-grid", type=_float_list, metavar="LR,LR,...",
                       help="learning rates to sweep (default: --lr-points rates over --lr-decades "
                       "decades, log-spaced around the task's rate)")
    tuned.add_argument("--lr-decades", type=float, default=2.0, help="span of the default grid (default: 2)")
    tuned.add_argument("--lr-points", type=int, default=5, help="rates in the default grid (default: 5)")
    tuned.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of the training data held out for validation (default: 0.2)")
    tuned.add_argument("--split-seed", type=int, default=0, help="seed of the validation split (default: 0)")
    tuned.add_argument("--sweep-epochs", type=int,
                       help="epochs per sweep run (default: half the task's epochs, rounded up)")
    tuned.add_argument("--sweep-seeds", type=int, default=3,
                       help="seeds per swept rate; the rate is chosen by the mean over them, never "
                       "one where a seed diverged or collapsed, preferring the steadier of rates "
                       "within noise (default: 3; 1 still works)")
    tuned.add_argument("--lr-extend-decades", type=int, default=2,
                       help="when a loss's best rate sits at an edge of the grid, grow the grid a "
                       "decade on that side and sweep again, up to this many decades per side "
                       "(default: 2; 0 keeps the grid as given)")
    tuned.add_argument("--sweep-scheduler", choices=("none", "successive-halving", "asha"),
                       default="none",
                       help="successive-halving: stop poor rates early (each rung keeps the best "
                       "third of the rates; rungs at epochs ..., budget/9, budget/3, budget; every "
                       "rate of a rung finishes before it decides), on the same backend; decisions "
                       "and the epochs saved are recorded. asha is its earlier name (default: none)")
    parser.add_argument("--metric", default="accuracy",
                        choices=("accuracy", "macro_f1", "balanced_accuracy", "nll", "ece", "brier",
                                 "perplexity"),
                        help="the score the verdicts (and --until-decided) read (default: accuracy); "
                        "every metric is recorded and tabled")
    precise = parser.add_argument_group("seeds until the answer is precise (--until-decided)")
    precise.add_argument("--until-decided", action="store_true",
                         help="treat --seeds as the first round and add seeds in rounds until every "
                         "loss's paired 95%% interval half-width is at most --target-width, or "
                         "--max-seeds is reached (stops on precision, never on significance)")
    precise.add_argument("--target-width", type=float, default=1.0,
                         help="half-width to reach, in accuracy points (default: 1.0)")
    precise.add_argument("--max-seeds", type=int, default=20,
                         help="most seeds per loss with --until-decided (default: 20)")
    add_device_options(parser)
    scale = parser.add_argument_group("where runs train (--backend)")
    scale.add_argument("--backend", choices=backend_names(), default="local",
                       help="local: this machine's processes (--workers); ray: one Ray task per run, "
                       "on a Ray instance started here or on a cluster (--ray-address); needs "
                       "pip install 'losslab[ray]'; inprocess: this process, one run after "
                       "another (debugging) (default: local)")
    scale.add_argument("--lease", type=float, default=DEFAULT_LEASE_SECONDS, metavar="SECONDS",
                       help="each claimed run is held under a lease renewed every SECONDS/4 while "
                       "it trains; a run whose owner stopped renewing it for SECONDS (a killed "
                       "process, on any host) is taken over by the next compare "
                       f"(default: {DEFAULT_LEASE_SECONDS:g})")
    scale.add_argument("--ray-address", metavar="auto|HOST:PORT",
                       help="with --backend ray: join this cluster ('auto': the one this machine "
                       "belongs to); default: start Ray on this machine and stop it afterwards")
    scale.add_argument("--cpus-per-run", type=float, default=1.0,
                       help="CPUs Ray reserves per run, also its torch threads unless --threads "
                       "(default: 1)")
    scale.add_argument("--gpus-per-run", type=float, default=0.0,
                       help="GPUs Ray reserves per run (default: 0; --device cuda needs >= 1)")
    scale.add_argument("--ray-resource", type=key_value, action="append", default=[],
                       metavar="NAME=AMOUNT",
                       help="a custom Ray resource each run needs (repeatable), e.g. "
                       "big_memory=1 for nodes started with --resources '{\"big_memory\": 4}'")
    parser.add_argument("--db", default="results.sqlite", help="results database (default: results.sqlite)")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="parallel training processes (default: 1)")
    parser.add_argument("--threads", type=positive_int,
                        help="torch threads per worker, a positive integer (default: cores / workers)")
    parser.add_argument("--out", help="also write report.md and report.html of the whole database here")
    parser.add_argument("--tensorboard", metavar="DIR",
                        help="also write every test run's curves as TensorBoard event files here")
    parser.add_argument("--mlflow", metavar="URI",
                        help="also log every test run to this MLflow tracking URI (a local folder "
                        "works): one MLflow run per (task, loss, seed) under one per comparison")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for a database locked by another process (default: 60)")
    parser.set_defaults(handler=run)


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--amp`` (shared with ``losslab reproduce``)."""
    parser.add_argument("--device", default=None, metavar="auto|cpu|cuda|cuda:N|mps",
                        help="where each run trains; auto: CUDA when available, else the CPU "
                        "(default: cpu); recorded with every run")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None,
                        help="mixed precision: the model under autocast in this type (fp16 with a "
                        "gradient scaler), the loss in float32; recorded with every run "
                        "(default: float32)")


# Python argument names in error messages -> the options as typed on the command line.
OPTION_NAMES: dict[str, str] = {
    "device": "--device", "amp": "--amp", "ray_address": "--ray-address",
    "cpus_per_run": "--cpus-per-run", "gpus_per_run": "--gpus-per-run", "backend": "--backend",
    "ray_address, gpus_per_run, resources": "--ray-address, --gpus-per-run, --ray-resource",
    "resources": "--ray-resource", "lease": "--lease",
}


def as_option_error(error: Exception) -> CommandError:
    """The error with its leading Python argument name replaced by the CLI option."""
    text = str(error)
    for name in sorted(OPTION_NAMES, key=len, reverse=True):
        if text.startswith(name + ":"):
            text = OPTION_NAMES[name] + text[len(name):]
            break
    text = text.replace("backend='ray'", "--backend ray")
    return CommandError(text)
# Python argument names at the start of a data or settings error -> the options as typed.
_DATA_OPTIONS: dict[str, str] = {"test_path": "--test-data", "data": "--data"}


def _training_errors(build):  # type: ignore[no-untyped-def]
    """Build the planned task, naming the command-line option in a settings error."""
    try:
        return build()
    except ValueError as error:
        text = str(error)
        names = {name: "--" + name.replace("_", "-") for name in (
            "optimizer", "scheduler", "momentum", "nesterov", "warmup_epochs", "grad_clip",
            "test_fraction", "epochs", "lr", "batch_size", "weight_decay", "max_train",
            "max_test", "encoding")}
        for name, option in {**names, **_DATA_OPTIONS}.items():
            if text.startswith((name + ":", name + " must ")):
                raise CommandError(option + text[len(name):]) from error
        raise


def describe_setup(planned, protocol: str, val_fraction: float) -> str:  # type: ignore[no-untyped-def]
    """One paragraph for the start of a run: model, split sizes, epochs, optimizer, device."""
    data = planned.source.prepare("test")  # memoised: the grid reuses it
    settings = planned.settings
    n_train, n_test = len(data.y_train), len(data.y_eval)
    model = getattr(planned.source, "model", "your model")
    options = getattr(planned.source, "model_options", {}) or {}
    shown = ", ".join(f"{k}={v}" for k, v in options.items())
    sweep = ""
    if protocol == "tuned":
        held = round(n_train * val_fraction)
        sweep = f" (the sweep trains on {n_train - held} and validates on about {held})"
    schedule = settings.scheduler + (f" after {settings.warmup_epochs} warmup epoch(s)"
                                     if settings.warmup_epochs else "")
    return (f"{planned.label}: model {model}" + (f" ({shown})" if shown else "")
            + f"; {data.num_classes} classes; train {n_train}{sweep}, test {n_test}; "
            f"{settings.epochs} epochs, batch {settings.batch_size}, {settings.optimizer} lr "
            f"{settings.lr:g}" + (" (tuned per loss)" if protocol == "tuned" else "")
            + f", weight decay {settings.weight_decay:g}, schedule {schedule}"
            + (f", gradient clip {settings.grad_clip:g}" if settings.grad_clip else "")
            + f"; device {settings.device}")


def _list_tasks() -> int:
    from losslab.cli._common import text_table
    from losslab.experiments.classification.planning.tasks import list_tasks

    rows = [(t.name, t.dataset + (" (--path)" if t.needs_path else ""), t.model, t.description)
            for t in list_tasks()]
    print(text_table(("task", "data", "model", "description"), rows))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_tasks:
        return _list_tasks()
    from losslab.experiments.classification import csv_task, planned_task, run_planned
    from losslab.experiments.classification.execution.runner import check_losses
    from losslab.experiments.classification.reporting.report import (
        statistics_markdown,
        write_report,
    )

    check_losses(args.losses)  # before loading any data
    from losslab.experiments.classification.execution.runner import MAX_SEEDS

    if not 1 <= args.seeds <= MAX_SEEDS:
        raise CommandError(f"--seeds: expected a number of seeds from 1 to {MAX_SEEDS:,}, got {args.seeds}")
    # Output paths of the wrong kind are refused now, before any data is loaded or run trained.
    check_paths(folders=[("--out", args.out), ("--tensorboard", args.tensorboard)],
                files=[("--db", args.db)])
    if args.mlflow is not None:
        from losslab.experiments.classification.storage.tracking import check_mlflow_uri

        try:
            check_mlflow_uri(args.mlflow)
        except ValueError as error:
            raise CommandError("--" + str(error)) from None
        if "://" not in args.mlflow and not args.mlflow.startswith("file:"):
            check_paths(folders=[("--mlflow", args.mlflow)])
    if not args.timeout >= 0:  # also refuses nan
        raise CommandError(f"--timeout: expected a number of seconds >= 0, got {args.timeout}")
    if args.encoding is not None and args.data is None:
        raise CommandError("--encoding goes with --data FILE.csv, not --task")
    from losslab.experiments.classification.api import _tuning_settings

    try:
        tuning = _tuning_settings(
            args.protocol, lr_grid=args.lr_grid, lr_decades=args.lr_decades, lr_points=args.lr_points,
            val_fraction=args.val_fraction, split_seed=args.split_seed,
            sweep_epochs=args.sweep_epochs, sweep_seeds=args.sweep_seeds,
            lr_extend_decades=args.lr_extend_decades, scheduler=args.sweep_scheduler)
    except ValueError as error:  # name the options as typed on the command line
        text = str(error)
        for name in ("lr_grid", "lr_decades", "lr_points", "val_fraction", "split_seed",
                     "sweep_epochs", "sweep_seeds", "lr_extend_decades", "sweep_scheduler"):
            if text.startswith(name):
                text = "--" + name.replace("_", "-") + text[len(name):]
        raise CommandError(text) from error
    from losslab.experiments.classification.api import precision_target

    try:
        until = precision_target(args.until_decided, target_width=args.target_width,
                                 max_seeds=args.max_seeds, metric=args.metric)
    except ValueError as error:
        text = str(error)
        for name in ("target_width", "max_seeds"):
            if text.startswith(name):
                text = "--" + name.replace("_", "-") + text[len(name):]
        if text.startswith("--target-width"):
            text = f"--target-width: expected a positive number of points, got {args.target_width!r}"
        raise CommandError(text) from error
    if args.until_decided and args.seeds > args.max_seeds:
        raise CommandError(f"--seeds {args.seeds} is more than --max-seeds {args.max_seeds}")
    from losslab.experiments.classification.api import make_backend
    from losslab.experiments.classification.execution.runner import check_device

    try:
        if args.device is not None:
            check_device(args.device)
        backend = make_backend(args.backend, ray_address=args.ray_address,
                               cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                               resources=dict(args.ray_resource))
    except ValueError as error:
        raise as_option_error(error) from error
    training = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                "weight_decay": args.weight_decay, "optimizer": args.optimizer,
                "momentum": args.momentum, "nesterov": args.nesterov, "scheduler": args.scheduler,
                "warmup_epochs": args.warmup_epochs, "grad_clip": args.grad_clip,
                "device": args.device, "amp": args.amp}
    if args.data is not None:
        if not args.label_column:
            raise CommandError("--data needs --label-column (the CSV column holding the classes)")
        planned = _training_errors(lambda: csv_task(
            args.data, label_column=args.label_column, text_column=args.text_column,
            feature_columns=args.feature_columns, text_model=args.text_model,
            training=training, max_train=args.max_train, max_test=args.max_test,
            test_data=args.test_data, test_fraction=args.test_fraction,
            split_seed=args.split_seed if args.test_fraction is not None else None,
            encoding=args.encoding,
        ))
        if args.model_option:
            planned.source.model_options.update(dict(args.model_option))
    else:
        for option in ("label_column", "text_column", "feature_columns", "test_data", "test_fraction"):
            if getattr(args, option):
                raise CommandError(f"--{option.replace('_', '-')} goes with --data FILE.csv, not --task")
        planned = _training_errors(lambda: planned_task(
            args.task, preset=args.preset, path=args.path,
            overrides={**training, "max_train": args.max_train, "max_test": args.max_test},
            model_options=dict(args.model_option),
        ))
    print(describe_setup(planned, args.protocol, args.val_fraction))
    from losslab.experiments.classification.execution.runner import WorkerDiedError

    try:
        result = run_planned([planned], losses=args.losses, seeds=args.seeds, db=args.db,
                             workers=args.workers, threads=args.threads,
                             progress=not args.no_progress, timeout=args.timeout,
                             protocol=args.protocol, tuning=tuning, until=until, backend=backend,
                             lease=args.lease)
    except WorkerDiedError as error:
        raise CommandError(str(error)) from error
    except (ImportError, ConnectionError) as error:  # Ray missing, or no cluster at the address
        raise as_option_error(error) from error
    except ValueError as error:
        if str(error).startswith("val_fraction"):  # a split leaving a class out: name the option
            raise CommandError("--val-fraction" + str(error)[len("val_fraction"):]) from error
        raise as_option_error(error) from error
    for task_label, rates in result.chosen_learning_rates().items():
        chosen = ", ".join(f"{loss} {'–' if lr is None else format(lr, 'g')}" for loss, lr in rates.items())
        print(f"\n{task_label}: learning rate chosen on the validation split: {chosen}")
    for label, outcome in (result.precision or {}).items():
        print(f"\n{label}: {outcome.describe()}")
    for task in result.tasks:
        print(f"\n{task.label}")
        comparisons = task.comparisons(metric=args.metric)
        print(statistics_markdown(comparisons, task.incomplete(), escape=str)
              if comparisons else "no finished runs")
    if result.taken_over:
        print(f"\n{len(result.taken_over)} run(s) taken over from an owner whose lease had expired:")
        for line in result.taken_over:
            print(f"  {line}")
    if result.failed:
        print(f"\n{len(result.failed)} run(s) failed (finished epochs are kept):")
        for line in result.failed:
            print(f"  {line}")
    from losslab.experiments.classification.storage.tracking import export_comparison

    export_comparison(result, tensorboard=args.tensorboard, mlflow=args.mlflow)
    if args.out:
        md_path, html_path = write_report(args.db, args.out, metric=args.metric)
        print(f"\nreport: {md_path} and {html_path}")
    print(f"results: {Path(args.db).resolve()}")
    return 1 if result.failed else 0
