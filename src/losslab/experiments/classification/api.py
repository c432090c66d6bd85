"""``compare(...)``: the whole comparison from Python — a registered task, a CSV, or your data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from losslab.experiments.classification.execution.controller import (
    DEFAULT_LEASE_SECONDS,
    check_lease,
)
from losslab.experiments.classification.execution.runner import (
    GridResult,
    PlannedTask,
    TrainingSettings,
    run_grid,
)
from losslab.experiments.classification.planning.tasks import (
    ArraySource,
    DatasetSource,
    planned_task,
)
from losslab.registry import PAPER_LOSSES, get_info

# What a comparison trains by default: cross-entropy and the multiclass forms of the paper's
# losses (PAPER_LOSSES, re-exported here, also holds their binary forms and SMAE).
COMPARED_LOSSES: tuple[str, ...] = (
    "cross_entropy", *(name for name in PAPER_LOSSES if get_info(name).family == "classification"))
TEXT_MODELS: tuple[str, ...] = ("lstm", "minilm")
PROTOCOLS: tuple[str, ...] = ("fixed", "tuned")


@dataclass
class ComparisonResult:
    """What :func:`compare` returns: the grid's bookkeeping and the results read back."""

    grid: GridResult | None  # the test-stage grid (None if a tuned sweep chose no rate)
    db: Path
    tasks: list[Any]  # report.TaskResults of the labels in this grid
    protocol: str = "fixed"
    sweep: GridResult | None = None  # the tuned protocol's learning-rate sweep
    selections: dict[tuple[str, str], Any] | None = None  # (task, loss) -> tuning.Selection
    failed: list[str] | None = None
    # label -> sequential.SequentialOutcome, under until_decided
    precision: dict[str, Any] | None = None

    def chosen_learning_rates(self) -> dict[str, dict[str, float | None]]:
        """``{task: {loss: chosen rate}}`` under the tuned protocol (empty under fixed)."""
        result: dict[str, dict[str, float | None]] = {}
        for (task, loss), selection in (self.selections or {}).items():
            result.setdefault(task, {})[loss] = selection.lr
        return result

    metric: str = "accuracy"  # the score the verdicts read
    # runs this invocation took over from an owner whose lease had expired ("run (from owner)")
    taken_over: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        from losslab._escape import md_text
        from losslab.experiments.classification.reporting.report import task_markdown

        return "\n\n".join(f"### {md_text(task.label)}\n\n{task_markdown(task, self.metric)}"
                             for task in self.tasks)

    def to_pandas(self, kind: str = "runs") -> Any:
        """The results as a pandas DataFrame: ``"runs"`` (one row per run of this comparison:
        config as dotted columns and final metrics) or ``"curves"`` (one row per epoch)."""
        from losslab.experiments.classification.storage.export import curves_frame, runs_frame

        if kind not in ("runs", "curves"):
            raise ValueError(f"kind: expected 'runs' or 'curves', got {kind!r}")
        frame = (runs_frame if kind == "runs" else curves_frame)(self.db)
        ids = {run["run_id"] for task in self.tasks for run in task.runs}
        return frame[frame["run_id"].isin(ids)].reset_index(drop=True)

    def final_accuracy(self) -> dict[str, dict[str, dict[int, float]]]:
        """``{task: {loss: {seed: final test accuracy}}}``."""
        return {task.label: task.final_accuracy() for task in self.tasks}


def _as_tensor_split(name: str, split: Any) -> tuple[Any, torch.Tensor]:
    """(inputs, int64 labels) from ``(x, y)`` arrays/tensors or a torch Dataset of pairs."""
    if isinstance(split, (tuple, list)) and len(split) == 2:
        x, y = split
        if not isinstance(x, torch.Tensor):
            x = np.asarray(x)
            if x.dtype.kind not in "fiub":
                raise TypeError(f"{name}: expected numeric inputs, got an array of {x.dtype}")
            x = torch.as_tensor(x, dtype=torch.float32 if x.dtype.kind == "f" else None)
        y_array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if y_array.ndim != 1 or y_array.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected 1-D integer class labels, got {y_array.dtype} of shape {y_array.shape}")
        if len(y_array) != x.shape[0]:
            raise ValueError(f"{name}: {x.shape[0]} inputs but {len(y_array)} labels")
        return x, torch.as_tensor(y_array, dtype=torch.long)
    if isinstance(split, torch.utils.data.Dataset):
        labels = []
        for index in range(len(split)):  # type: ignore[arg-type]
            item = split[index]
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"{name}: a Dataset must return (input, label) pairs")
            labels.append(int(item[1]))
        return split, torch.as_tensor(labels, dtype=torch.long)
    raise TypeError(f"{name}: expected (x, y) arrays/tensors or a torch Dataset, got {type(split).__name__}")


def csv_task(
    path: str | Path,
    *,
    label_column: str,
    text_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    text_model: str = "lstm",
    label: str | None = None,
    cache_dir: str | None = None,
    training: dict[str, Any] | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    test_data: str | Path | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    encoding: str | None = None,
) -> PlannedTask:
    """A grid row for a user's CSV: numeric columns -> MLP on standardised features (scaler
    fitted on the training split only); a text column -> LSTM or frozen-MiniLM head.

    The test split is ``test_data`` (a second CSV with the same columns) or a stratified
    ``test_fraction`` of the rows (default 0.2, seeded by ``split_seed``, default 0).
    ``encoding`` is the text encoding of both files (default: utf-8; another one is recorded
    in the runs' data options)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"data: no CSV file at {file}")
    if text_model not in TEXT_MODELS:
        raise ValueError(f"text_model: expected one of {', '.join(TEXT_MODELS)}, got {text_model!r}")
    options: dict[str, Any] = {"label_column": label_column}
    if text_column is not None:
        options["text_column"] = text_column
        model = text_model
        model_options: dict[str, Any] = (
            {"embed_dim": 100, "hidden": 100, "spatial_dropout": 0.2, "max_len": 128, "max_vocab": 20_000}
            if model == "lstm" else {"hidden": (128,), "dropout": 0.1}
        )
    else:
        model, model_options = "mlp", {"hidden": (64,), "dropout": 0.1}
    if feature_columns is not None:
        options["feature_columns"] = list(feature_columns)
    if max_train is not None:
        options["max_train"] = max_train
    if max_test is not None:
        options["max_test"] = max_test
    if test_data is not None:
        if test_fraction is not None:
            raise ValueError("test_data, test_fraction: give a test file or a fraction, not both")
        if not Path(test_data).is_file():
            raise FileNotFoundError(f"test_data: no CSV file at {test_data}")
        options["test_path"] = str(test_data)
    if test_fraction is not None:
        options["test_fraction"] = test_fraction
    if split_seed is not None:
        options["split_seed"] = split_seed
    if encoding is not None:
        import codecs

        try:
            canonical = codecs.lookup(encoding).name
        except LookupError:
            raise ValueError(f"encoding: unknown text encoding {encoding!r} (e.g. utf-8, latin-1, "
                             "cp1252)") from None
        if canonical != "utf-8":  # utf-8 is the default: the runs' config (and hash) stay as they were
            options["encoding"] = encoding
    defaults = {"epochs": 20 if model != "lstm" else 5, "lr": 1e-3, "batch_size": 32}
    settings = TrainingSettings(**{**defaults, **{k: v for k, v in (training or {}).items() if v is not None}})
    source = DatasetSource("csv", model, model_options, options=options, path=str(file),
                           cache_dir=cache_dir)
    # Fail now, in this process, on unknown columns or a single class (clear message).
    source.load()
    from losslab.experiments.classification.storage.validation import plain_label

    return PlannedTask(label or plain_label(file.stem), source, settings)


def compare(
    train: Any = None,
    test: Any = None,
    *,
    task: str | None = None,
    model_factory: Callable[[], nn.Module] | None = None,
    num_classes: int | None = None,
    losses: Sequence[str] = COMPARED_LOSSES,
    seeds: int | Sequence[int] = 5,
    db: str | Path = "results.sqlite",
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    weight_decay: float | None = None,
    optimizer: str | None = None,
    momentum: float | None = None,
    nesterov: bool | None = None,
    scheduler: str | None = None,
    warmup_epochs: int | None = None,
    grad_clip: float | None = None,
    optimizer_factory: Callable[..., Any] | None = None,
    scheduler_factory: Callable[..., Any] | None = None,
    train_step: Callable[..., Any] | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    preset: str = "full",
    path: str | Path | None = None,
    label: str | None = None,
    workers: int = 1,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    timeout: float = 60.0,
    protocol: str = "fixed",
    lr_grid: Sequence[float] | None = None,
    lr_decades: float = 2.0,
    lr_points: int = 5,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    sweep_epochs: int | None = None,
    sweep_seeds: int | Sequence[int] = 3,
    lr_extend_decades: int = 2,
    sweep_scheduler: str = "none",
    until_decided: bool = False,
    target_width: float = 1.0,
    max_seeds: int = 20,
    device: str | None = None,
    amp: str | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    tensorboard: str | Path | None = None,
    mlflow: str | None = None,
    metric: str = "accuracy",
    lease: float = DEFAULT_LEASE_SECONDS,
) -> ComparisonResult:
    """Train every loss on a task over several seeds, record it all in ``db``, and read it back.

    Either name a registered ``task`` (``"digits-mlp"``; ``path=`` for the on-disk ones), or
    give your own data: ``train`` and ``test`` as ``(x, y)`` arrays/tensors or torch Datasets of
    ``(input, label)`` pairs, with ``model_factory()`` building a fresh model that maps a batch
    to logits. Re-running the same call skips finished runs and resumes interrupted ones.

    Args:
        train, test: your data (when ``task`` is None).
        task: a registered task name (see ``losslab.experiments.classification.planning.tasks``).
        model_factory: builds the model for your data (called after ``torch.manual_seed``).
        num_classes: classes of your data (default: largest label + 1).
        losses: registered classification loss names.
        seeds: a number n (seeds 0..n-1) or explicit seeds.
        db: the SQLite results file.
        epochs, lr, batch_size, weight_decay: training settings (task defaults otherwise;
            Adam with lr 1e-3, batch 64, 10 epochs for your own data).
        optimizer, momentum, nesterov: ``"adam"`` (default), ``"adamw"`` or ``"sgd"``, and
            SGD's momentum (0.9) and Nesterov flag.
        scheduler, warmup_epochs: ``"none"`` (default), ``"cosine"``, ``"step"`` or
            ``"onecycle"``, stepped per batch, after a linear warmup of that many epochs.
        grad_clip: clip the gradient's global norm (None: no clipping).
        optimizer_factory, scheduler_factory, train_step: your own optimizer
            (``f(params, settings)``), schedule (``f(optimizer, settings, steps_per_epoch)``)
            or training step (``f(model, loss_fn, inputs, targets, optimizer) -> (loss,
            logits)``, doing forward, backward and the step); picklable (module-level)
            functions when ``workers > 1``. See :mod:`.optim`.
        max_train, max_test: stratified subsets of a registered task's data.
        preset: a registered task's sizes, ``"quick"`` or ``"full"``.
        path: where a registered task's data lives (CIFAR-10, Imagenette, IMDB).
        label: the name runs are stored under (default: the task name or ``"arrays"``).
        workers, threads: parallel processes and torch threads per process.
        progress: show a progress bar with ETA.
        log: one-line messages.
        timeout: seconds to wait for a locked database.
        protocol: ``"fixed"`` (every loss at the same learning rate) or ``"tuned"`` (each
            loss at the rate that scores best on a validation split carved from the training
            data; see :mod:`.tuning`). The remaining arguments configure ``"tuned"``:
        lr_grid: explicit learning rates to sweep (default: ``lr_points`` rates over
            ``lr_decades`` decades, log-spaced and centred on the task's rate).
        val_fraction: share of the training data held out for validation, in (0, 1).
        split_seed: seed of the stratified validation split.
        sweep_epochs: epochs per sweep run (default: half the task's epochs, rounded up).
        sweep_seeds: a number n (seeds 0..n-1, default 3) or explicit seeds of the sweep runs.
        lr_extend_decades: when a loss's best rate sits at an edge of the grid, the grid grows
            a decade on that side and is swept again, up to this many decades per side.
        sweep_scheduler: ``"successive-halving"`` (or its earlier name ``"asha"``) stops poor
            rates of the sweep early by successive halving (see
            :class:`.tuning.TuningSettings`); ``"none"`` trains every rate fully.
        until_decided: treat ``seeds`` as the first round and add seeds in rounds until every
            loss's paired 95% interval half-width against cross-entropy is at most
            ``target_width`` points, or ``max_seeds`` is reached (see :mod:`.sequential`:
            the rule reads the spread of the differences only, never their significance).
        target_width: the half-width to reach, in accuracy points (1.0 = one point).
        max_seeds: the most seeds ``until_decided`` trains per loss.
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"`` (default: the task's, the CPU). Its kind is part of each
            run's config; the exact device is recorded in the run's environment.
        amp: ``"bf16"`` or ``"fp16"`` mixed precision (autocast; a gradient scaler for fp16),
            recorded in each run's config; None trains in float32.
        backend: ``"local"`` (this machine's processes, see ``workers``), ``"ray"`` (one
            Ray task per run; see :mod:`.ray_backend`) or ``"inprocess"`` (this process, one
            run after another; for debugging). See :mod:`.execution.backends`.
        ray_address: with ``backend="ray"``: None starts Ray on this machine for the call;
            ``"auto"`` or ``"HOST:PORT"`` joins a running cluster.
        cpus_per_run, gpus_per_run: the resources Ray reserves for each run.
        tensorboard: also write every test run's curves as TensorBoard event files here.
        mlflow: also log every test run to this MLflow tracking URI (a local folder works),
            one MLflow run per (task, loss, seed) under one per comparison.
        metric: the score the verdicts (and ``until_decided``'s precision) read: one of
            :data:`.metrics.METRICS` (accuracy, macro_f1, balanced_accuracy, nll, ece, brier).
        lease: seconds each claimed run is held without a heartbeat (renewed every quarter
            of it while the run trains); a run whose owner stopped renewing it (a killed
            process, on any host) is taken over by the next call after that long.
    """
    _check_outputs(tensorboard=tensorboard, mlflow=mlflow, db=db)
    tuning = _tuning_settings(protocol, lr_grid=lr_grid, lr_decades=lr_decades, lr_points=lr_points,
                              val_fraction=val_fraction, split_seed=split_seed,
                              sweep_epochs=sweep_epochs, sweep_seeds=sweep_seeds,
                              lr_extend_decades=lr_extend_decades, scheduler=sweep_scheduler)
    until = precision_target(until_decided, target_width=target_width, max_seeds=max_seeds,
                             metric=metric)
    execution = make_backend(backend, ray_address=ray_address, cpus_per_run=cpus_per_run,
                             gpus_per_run=gpus_per_run)
    overrides = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
                 "optimizer": optimizer, "momentum": momentum, "nesterov": nesterov,
                 "scheduler": scheduler, "warmup_epochs": warmup_epochs, "grad_clip": grad_clip,
                 "optimizer_factory": optimizer_factory, "scheduler_factory": scheduler_factory,
                 "train_step": train_step, "device": device, "amp": amp}
    if task is not None:
        if train is not None or test is not None or model_factory is not None:
            raise ValueError("task: give either a registered task or your own train/test/model_factory, not both")
        planned = planned_task(task, preset=preset, path=None if path is None else str(path),
                               overrides={**overrides, "max_train": max_train, "max_test": max_test},
                               label=label)
    else:
        if train is None or test is None or model_factory is None:
            raise ValueError("train, test, model_factory: all three are needed without a registered task")
        if not callable(model_factory):
            raise TypeError(f"model_factory: expected a callable returning an nn.Module, got {type(model_factory).__name__}")
        x_train, y_train = _as_tensor_split("train", train)
        x_test, y_test = _as_tensor_split("test", test)
        classes = int(max(int(y_train.max()), int(y_test.max())) + 1) if num_classes is None else int(num_classes)
        if len(torch.unique(y_train)) < 2:
            raise ValueError(f"train: labels hold a single class ({int(y_train[0])}); classification needs at least two")
        if int(y_train.min()) < 0 or int(y_test.min()) < 0 or max(int(y_train.max()), int(y_test.max())) >= classes:
            raise ValueError(f"train/test: labels must lie in [0, {classes - 1}] (num_classes={classes})")
        defaults = {"epochs": 10, "lr": 1e-3, "batch_size": 64}
        settings = TrainingSettings(**{**defaults, **{k: v for k, v in overrides.items() if v is not None}})
        source = ArraySource(x_train, y_train, x_test, y_test, model_factory, classes, name=label or "arrays")
        planned = PlannedTask(label or "arrays", source, settings)
    result = run_planned([planned], losses=losses, seeds=seeds, db=db, workers=workers,
                         threads=threads, progress=progress, log=log, timeout=timeout,
                         protocol=protocol, tuning=tuning, until=until, backend=execution,
                         lease=lease)
    from losslab.experiments.classification.storage.tracking import export_comparison

    export_comparison(result, tensorboard=tensorboard, mlflow=mlflow, log=log)
    result.metric = metric
    return result


def _check_outputs(*, tensorboard: str | Path | None, mlflow: str | None, db: str | Path) -> None:
    """Refuse, before any training, outputs that cannot be written: ``tensorboard`` must be a
    folder (or not exist yet), ``db`` a file, ``mlflow`` a URI MLflow can search."""
    from losslab._paths import check_file, check_folder

    check_file(db, option="db")
    if tensorboard is not None:
        check_folder(tensorboard, option="tensorboard")
    if mlflow is not None:
        from losslab.experiments.classification.storage.tracking import check_mlflow_uri

        check_mlflow_uri(mlflow)
        if "://" not in mlflow and not mlflow.startswith("file:"):
            check_folder(mlflow, option="mlflow")


def _check_count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def make_backend(backend: str, *, ray_address: str | None = None, cpus_per_run: float = 1.0,
                 gpus_per_run: float = 0.0, resources: dict[str, float] | None = None) -> Any:
    """A registered backend's name (``"local"``, ``"inprocess"``) or a
    :class:`.ray_backend.RayBackend` from user-facing options (Ray's options are checked even
    when unused: a typo is an error; an address or GPUs given with another backend are an
    error too)."""
    from losslab.experiments.classification.execution.backends import backend_names
    from losslab.experiments.classification.execution.backends.base import Backend
    from losslab.experiments.classification.execution.ray_backend import RayBackend

    if isinstance(backend, Backend):
        return backend
    if backend not in backend_names():
        raise ValueError(f"backend: expected one of {', '.join(backend_names())}, got {backend!r}")
    options = RayBackend(address=ray_address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                         resources=dict(resources or {}))
    if backend != "ray":
        if ray_address is not None or gpus_per_run or resources:
            raise ValueError("ray_address, gpus_per_run, resources: only go with backend='ray'")
        return backend
    return options


def precision_target(until_decided: bool, *, target_width: float, max_seeds: int,
                     metric: str = "accuracy") -> Any:
    """The ``until_decided`` stopping rule from user-facing units (points), checked even when
    off (a typo is an error); None when ``until_decided`` is False."""
    from losslab.experiments.classification.protocols.sequential import PrecisionTarget

    if isinstance(target_width, bool) or not isinstance(target_width, (int, float)):
        raise ValueError(f"target_width: expected a positive number of points, got {target_width!r}")
    from losslab.experiments.classification.trial.metrics import check_metric

    target = PrecisionTarget(target_width=float(target_width) / 100.0, max_seeds=max_seeds,
                             metric=check_metric(metric))
    return target if until_decided else None


def _tuning_settings(protocol: str, **options: Any) -> Any:
    """The tuned protocol's settings, checked (None for the fixed protocol)."""
    from losslab.experiments.classification.protocols.tuning import TuningSettings

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if options.get("lr_grid") is not None:
        options["lr_grid"] = tuple(options["lr_grid"]) if not isinstance(options["lr_grid"], (str, bytes)) \
            else options["lr_grid"]
    if not isinstance(options.get("sweep_seeds"), int):
        options["sweep_seeds"] = tuple(options["sweep_seeds"])
    settings = TuningSettings(**options)  # checked even under "fixed": a typo is an error
    return settings if protocol == "tuned" else None


def run_planned(tasks: Sequence[PlannedTask], *, losses: Sequence[str], seeds: int | Sequence[int],
                db: str | Path, workers: int = 1, threads: int | None = None, progress: bool = True,
                log: Callable[[str], None] = print, timeout: float = 60.0, protocol: str = "fixed",
                tuning: Any = None, until: Any = None, backend: Any = "local",
                lease: float = DEFAULT_LEASE_SECONDS) -> ComparisonResult:
    """Run a grid of planned tasks under ``protocol`` and read their results back from ``db``.

    ``tuning`` (a :class:`.tuning.TuningSettings`) configures ``protocol="tuned"``; ``until``
    (a :class:`.sequential.PrecisionTarget`) makes ``seeds`` the first of rounds that go on
    until the comparison is precise (each task separately). ``backend``: see
    :func:`.runner.run_grid`; a Ray instance started for the call serves every grid of it
    and stops at the end. ``lease``: see :func:`.runner.run_grid`.
    """
    from losslab.experiments.classification.execution.backends import as_backend, get_backend
    from losslab.experiments.classification.execution.runner import _with_resolved_device

    _check_count("workers", workers)
    _check_count("threads", threads)  # torch refuses 0 threads only inside each run
    lease = check_lease(lease)
    backend = as_backend(backend)
    execution = get_backend(backend, workers=workers)
    tasks = [_with_resolved_device(task, backend) for task in tasks]
    options: dict[str, Any] = {"losses": losses, "seeds": seeds, "db": db, "workers": workers,
                               "threads": threads, "progress": progress, "log": log,
                               "timeout": timeout, "protocol": protocol, "tuning": tuning,
                               "until": until, "backend": backend, "lease": lease}
    with execution.session(log):  # Ray: one session serves every grid of the call
        # Before the database is even opened: a device or cluster that could train no run.
        execution.check_resources(sorted({task.settings_for(loss).device for task in tasks
                                          for loss in [None, *task.loss_settings]}))
        return _run_planned(tasks, **options)


def _run_planned(tasks: Sequence[PlannedTask], *, losses: Sequence[str], seeds: int | Sequence[int],
                 db: str | Path, workers: int, threads: int | None, progress: bool,
                 log: Callable[[str], None], timeout: float, protocol: str, tuning: Any,
                 until: Any, backend: Any, lease: float) -> ComparisonResult:
    if until is not None:
        return _run_until_decided(tasks, losses=losses, seeds=seeds, db=db, workers=workers,
                                  threads=threads, progress=progress, log=log, timeout=timeout,
                                  protocol=protocol, tuning=tuning, until=until, backend=backend,
                                  lease=lease)
    from losslab.experiments.classification.protocols.tuning import TuningSettings, run_tuned
    from losslab.experiments.classification.reporting.report import group_key, load_results
    from losslab.experiments.classification.storage import ResultsStore, config_hash

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    store = ResultsStore(db, timeout=timeout)
    try:
        sweep = selections = None
        failed: list[str] = []
        if protocol == "tuned":
            tuned = run_tuned(tasks, losses, seeds, db=store, tuning=tuning or TuningSettings(),
                              workers=workers, threads=threads, progress=progress, log=log,
                              timeout=timeout, backend=backend, lease=lease)
            grid, sweep, selections, failed = tuned.test, tuned.sweep, tuned.selections, tuned.failed
            wanted = {group_key(task) for task in tuned.tasks}
        else:
            grid = run_grid(tasks, losses, seeds, db=store, workers=workers, threads=threads,
                            progress=progress, log=log, timeout=timeout, backend=backend,
                            lease=lease)
            failed = list(grid.failed)
            wanted = {group_key(task) for task in tasks}
        results = [group for group in load_results(store)
                   if (group.runs[0]["task"], config_hash(group.config)) in wanted]
    finally:
        store.close()
    taken_over = [line for part in (sweep, grid) if part is not None for line in part.taken_over]
    return ComparisonResult(grid=grid, db=Path(db), tasks=results, protocol=protocol, sweep=sweep,
                            selections=selections, failed=failed, taken_over=taken_over)


def _run_until_decided(tasks: Sequence[PlannedTask], *, losses: Sequence[str],
                       seeds: int | Sequence[int], db: str | Path, until: Any,
                       **options: Any) -> ComparisonResult:
    """``run_planned`` in rounds of seeds per task (see :mod:`.sequential`)."""

    from losslab.experiments.classification.execution.runner import check_losses, check_seeds
    from losslab.experiments.classification.protocols.sequential import run_until_decided
    from losslab.experiments.classification.storage import ResultsStore

    losses = check_losses(losses)
    if until.baseline not in losses:
        raise ValueError(f"losses: until_decided pairs every loss with {until.baseline}; add it "
                         f"to the losses (got {', '.join(losses)})")
    first = check_seeds(seeds)
    outcomes: dict[str, Any] = {}
    last: dict[str, ComparisonResult] = {}
    taken_over: list[str] = []
    for task in tasks:
        def run_seeds(round_seeds: list[int], task: PlannedTask = task) -> dict[str, dict[int, float]]:
            result = run_planned([task], losses=losses, seeds=round_seeds, db=db, **options)
            last[task.label] = result
            taken_over.extend(result.taken_over)
            scores: dict[str, dict[int, float]] = {loss: {} for loss in losses}
            for group in result.tasks:
                for loss, by_seed in group.final_scores(until.metric).items():
                    scores.setdefault(loss, {}).update(
                        {seed: value for seed, value in by_seed.items() if seed in round_seeds})
            return scores

        outcome = run_until_decided(run_seeds, first, until, log=options.get("log", print),
                                    label=task.label)
        outcomes[task.label] = outcome
        with ResultsStore(db, timeout=options.get("timeout", 60.0)) as store:
            store.meta.put_until_decided(task.label, outcome.to_dict())
    results = list(last.values())
    merged = ComparisonResult(
        grid=results[-1].grid if results else None, db=Path(db),
        tasks=[group for result in results for group in result.tasks],
        protocol=options.get("protocol", "fixed"),
        sweep=results[-1].sweep if results else None,
        selections={k: v for result in results for k, v in (result.selections or {}).items()} or None,
        failed=[line for result in results for line in (result.failed or [])],
        precision=outcomes,
        taken_over=taken_over,
    )
    return merged
