"""The grid runner: tasks × losses × seeds, trained and recorded epoch by epoch.

One run (its settings, data and training loop) is :mod:`.training`; this module plans the
grid of (task, loss, seed, stage) runs, registers them in the store and hands them to the
controller of :mod:`.execution`, which trains them on a backend (this process, worker
processes, Ray) and records them.

After each epoch the controller writes, in one transaction, the epoch's metrics and the
state to resume from (see :mod:`.store`). Killing the process at any moment loses at most
the epoch in progress; running the same grid again skips finished runs and resumes the
others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from losslab.experiments.classification.execution.backends import as_backend, get_backend
from losslab.experiments.classification.execution.backends.base import WorkerDiedError
from losslab.experiments.classification.execution.backends.inprocess import InProcessBackend
from losslab.experiments.classification.execution.backends.local import (
    LocalBackend,
    default_threads,
)
from losslab.experiments.classification.execution.controller import (
    DEFAULT_LEASE_SECONDS,
    Controller,
    check_lease,
)
from losslab.experiments.classification.execution.trial import ClassificationTrial, RunSpec
from losslab.experiments.classification.storage import (
    DONE_STATUSES,
    ResultsStore,
    RunKey,
    RunStore,
    config_hash,
)
from losslab.experiments.classification.trial.training import (
    AMP_DTYPES,
    ANNOTATION_KEYS,
    DEVICE_CHOICES,
    EVAL_SPLITS,
    STAGES,
    DataSource,
    EpochRecord,
    PreparedData,
    TrainingSettings,
    check_device,
    check_device_available,
    describe_device,
    device_type,
    resolve_device,
    train_epochs,
    train_run,
)

# The names of one run (.training) stay importable from here, where they always were.
__all__ = [
    "AMP_DTYPES",
    "ANNOTATION_KEYS",
    "DEFAULT_LEASE_SECONDS",
    "DEVICE_CHOICES",
    "EVAL_SPLITS",
    "STAGES",
    "DataSource",
    "EpochRecord",
    "GridResult",
    "Job",
    "PlannedTask",
    "PreparedData",
    "TrainingSettings",
    "WorkerDiedError",
    "check_device",
    "check_device_available",
    "check_losses",
    "check_seeds",
    "default_threads",
    "describe_device",
    "device_type",
    "resolve_auto",
    "resolve_device",
    "run_grid",
    "train_epochs",
    "train_run",
]


@dataclass
class PlannedTask:
    """One row of the grid: a label (the ``task`` column), a data source, training settings.

    Attributes:
        label: the ``task`` column of its runs.
        source: a :class:`DataSource`.
        settings: how every loss is trained ...
        loss_settings: ... except for these per-loss changes (``{"m": {"lr": 3e-4}}``: the
            learning rate each loss was tuned to).
        protocol: a description of how the settings were chosen (part of the run identity;
            None for the fixed protocol, whose configs stay as they always were).
        notes: per-loss annotations stored with each run but not hashed (the sweep scores
            behind a tuned learning rate).
    """

    label: str
    source: Any  # a DataSource
    settings: TrainingSettings
    loss_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    protocol: dict[str, Any] | None = None
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settings_for(self, loss: str | None) -> TrainingSettings:
        """The training settings of ``loss`` (the shared ones when None or not overridden)."""
        changes = self.loss_settings.get(loss, {}) if loss is not None else {}
        return replace(self.settings, **changes) if changes else self.settings

    def config(self, loss: str | None = None) -> dict[str, Any]:
        """What determines a run's result, besides its loss and seed."""
        config = {"task": self.label, "data": self.source.config(),
                  "training": self.settings_for(loss).to_config()}
        if self.protocol is not None:
            config["protocol"] = self.protocol
        return config


@dataclass(frozen=True)
class Job:
    task_index: int
    loss: str
    seed: int
    stage: str = "test"
    stop_after: int | None = None  # train up to this epoch, then pause (successive halving)


@dataclass
class GridResult:
    """What a grid run did: run ids, and counts.

    ``run_ids`` maps (task, loss, seed) to the run id when that triple names one run of the
    grid (a sweep holds several per triple, one per learning rate: see ``runs``); ``runs``
    maps every run's full :class:`RunKey` to its id.
    """

    run_ids: dict[tuple[str, str, int], int]
    trained: int
    skipped: int
    busy: int
    failed: list[str]
    wall_time: float
    runs: dict[RunKey, int] = field(default_factory=dict)
    diverged: int = 0  # sweep runs whose loss became non-finite (recorded as "diverged")
    taken_over: list[str] = field(default_factory=list)  # runs whose expired lease we took


# --- the grid -------------------------------------------------------------------------------

def run_grid(
    tasks: Sequence[PlannedTask],
    losses: Sequence[str],
    seeds: Sequence[int],
    *,
    db: str | Path | ResultsStore,
    workers: int = 1,
    threads: int | None = None,
    stage: str = "test",
    progress: bool = True,
    log: Callable[[str], None] = print,
    timeout: float = 60.0,
    on_epoch: Callable[..., None] | None = None,
    backend: Any = "local",
    until_epoch: int | None = None,
    only: Any = None,
    lease: float = DEFAULT_LEASE_SECONDS,
) -> GridResult:
    """Train every (task, loss, seed) not already finished in ``db``; resume interrupted ones.

    Args:
        tasks: the grid's tasks (label, data source, training settings).
        losses: registered classification loss names.
        seeds: seeds; every loss of a task uses the same seeds (paired comparisons).
        db: the SQLite results file (or an open :class:`ResultsStore`).
        workers: processes training in parallel (each with ``threads`` torch threads).
        threads: torch threads per worker (default: the cores split among the workers).
        stage: ``"test"`` (train on the training split, score on the test split) or
            ``"sweep"`` (train on the sources' sweep part, score on their validation split).
            Tasks may share a label when their configs differ (the learning rates of a sweep).
        progress: show a tqdm progress bar with ETA over all remaining epochs.
        log: where one-line messages go.
        timeout: seconds to wait for a locked database before failing.
        on_epoch: ``on_epoch(task, loss, seed, epoch, metrics)`` after every recorded epoch
            (called in this process, whatever the backend).
        backend: a registered backend name (see :mod:`.execution.backends`): ``"local"``
            (this process, or ``workers`` processes of this machine), ``"inprocess"`` (this
            process, whatever ``workers``) or ``"ray"`` / a :class:`.ray_backend.RayBackend`
            (one Ray task per run, on a local Ray instance or a cluster; ``workers`` is then
            ignored); or a :class:`.execution.backends.base.Backend` instance. Whichever,
            this process is the only writer of ``db`` and results are identical for the
            same settings.
        until_epoch: train every run only up to this epoch and pause it there (a rung of
            successive halving); a later call without it finishes the run.
        only: a set of ``(task index, loss)`` pairs: the grid's other runs are left out.
        lease: seconds a run stays ours without a heartbeat; a run held by an owner that
            has not renewed it for that long (a killed process, on any host) is taken over.

    Returns:
        A :class:`GridResult`. Runs that raised are recorded as failed (their finished epochs
        are kept) and listed; other runs still go on.
    """
    from losslab.experiments.environment import environment_info

    losses, seeds = check_losses(losses), check_seeds(seeds)
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    lease = check_lease(lease)
    named = as_backend(backend)
    execution = get_backend(named, workers=workers)
    with execution.session(log):  # Ray: one connected session for the grid
        tasks = [_with_resolved_device(task, named) for task in tasks]
        identities = [(task.label, config_hash(task.config())) for task in tasks]
        if len(set(identities)) != len(identities):
            raise ValueError(f"tasks: expected distinct (label, config) rows, got labels "
                             f"{[task.label for task in tasks]} with repeated configs")
        # Before anything is registered: no device or cluster that could never train a run.
        execution.check_resources(sorted({task.settings_for(loss).device for task in tasks
                                          for loss in losses}))
        return _run_planned_grid(tasks, losses, seeds, db=db, workers=workers, threads=threads,
                                 stage=stage, progress=progress, log=log, timeout=timeout,
                                 on_epoch=on_epoch, execution=execution, until_epoch=until_epoch,
                                 only=only, lease=lease, environment=environment_info())


def _run_planned_grid(tasks: Sequence[PlannedTask], losses: list[str], seeds: list[int], *,
                      db: str | Path | ResultsStore, workers: int, threads: int | None, stage: str,
                      progress: bool, log: Callable[[str], None], timeout: float,
                      on_epoch: Callable[..., None] | None, execution: Any,
                      until_epoch: int | None, only: Any, lease: float,
                      environment: dict[str, Any]) -> GridResult:
    """Register the grid's runs, then train those left through the controller."""
    store = db if isinstance(db, RunStore) else ResultsStore(db, timeout=timeout)
    threads = execution.threads_per_run(threads)
    started = time.perf_counter()

    # The grid, seed-major: complete pairs (all losses of a seed) arrive first.
    planned: list[tuple[Job, RunKey, dict[str, Any]]] = []
    for seed in seeds:
        for index, task in enumerate(tasks):
            for loss in losses:
                if only is not None and (index, loss) not in only:
                    continue
                config = task.config(loss)
                run_config = {**config, "loss": loss, "seed": seed, "stage": stage,
                              **task.notes.get(loss, {})}
                key = RunKey(task.label, loss, seed, stage,
                             config_hash({**config, "loss": loss, "seed": seed}))
                planned.append((Job(index, loss, seed, stage, until_epoch), key, run_config))
    # Load every task that has work left first: a missing data set or a bad column is one
    # clear error before anything is registered or trained, not one failed run per seed.
    prepared: dict[tuple[int, str], PreparedData] = {}
    for job, key, _ in planned:
        found = store.find_run(key)
        if (found is None or found[1] not in DONE_STATUSES) and (job.task_index, job.stage) not in prepared:
            prepared[(job.task_index, job.stage)] = tasks[job.task_index].source.prepare(job.stage)
    # The exact samples each new run trains and is scored on: stored once per distinct set,
    # named by digest in the run's config.
    samples: dict[tuple[int, str], dict[str, Any]] = {}
    for (index, job_stage), data in prepared.items():
        if data.train_ids is not None and data.eval_ids is not None:
            from losslab.experiments.classification.planning.splits import sample_record

            store.put_sample_set(data.train_ids)
            store.put_sample_set(data.eval_ids)
            samples[(index, job_stage)] = sample_record(data.train_ids, data.eval_ids, data.eval_split)
    # Register every run: the unique key makes this idempotent across re-runs.
    jobs: list[tuple[Job, int]] = []
    run_ids: dict[tuple[str, str, int], int] = {}
    ambiguous: set[tuple[str, str, int]] = set()
    runs: dict[RunKey, int] = {}
    for job, key, run_config in planned:
        record = samples.get((job.task_index, job.stage))
        if record is not None:
            run_config = {**run_config, "samples": record}
        run_id = store.ensure_run(key, run_config,
                                  epochs=tasks[job.task_index].settings_for(job.loss).epochs,
                                  eval_split=EVAL_SPLITS[stage])
        triple = (key.task, key.loss, key.seed)
        if triple in run_ids and run_ids[triple] != run_id:
            ambiguous.add(triple)
        run_ids[triple] = run_id
        runs[key] = run_id
        jobs.append((job, run_id))
    for triple in ambiguous:
        del run_ids[triple]

    def target(job: Job) -> int:
        epochs = tasks[job.task_index].settings_for(job.loss).epochs
        return epochs if until_epoch is None else min(epochs, until_epoch)

    remaining = {run_id: target(job) - store.epoch_count(run_id)
                 for job, run_id in jobs if store.status(run_id) not in DONE_STATUSES}
    remaining = {run_id: left for run_id, left in remaining.items() if left > 0}
    pending = [(job, run_id) for job, run_id in jobs if run_id in remaining]
    log(f"[compare] {len(jobs)} {stage} runs in the grid: {len(jobs) - len(pending)} already finished, "
        f"{len(pending)} to train ({sum(remaining.values())} epochs) {execution.summary(threads)}; "
        f"results in {store.path}")
    if isinstance(execution, LocalBackend) and len(pending) <= 1:
        execution = InProcessBackend()  # one run: a worker process would only add start-up time
    if not isinstance(execution, InProcessBackend):
        prepared.clear()  # each worker prepares its own copy (caches make that cheap)
    controller = Controller(store, execution, [ClassificationTrial(task) for task in tasks],
                            environment=environment, threads=threads, lease_seconds=lease,
                            log=log, on_epoch=on_epoch, prepared=dict(prepared),
                            progress_total=sum(remaining.values()) if progress else None)
    outcome = controller.run([RunSpec(run_id, job.task_index, job.loss, job.seed, job.stage,
                                      job.stop_after, description=_describe(tasks, job))
                              for job, run_id in pending])
    wall = time.perf_counter() - started
    diverged = f", {outcome.diverged} diverged" if outcome.diverged else ""
    taken = f", {len(outcome.taken_over)} taken over" if outcome.taken_over else ""
    log(f"[compare] done in {wall:.1f} s: {outcome.trained} trained, "
        f"{len(jobs) - len(pending) + outcome.skipped} already finished, {outcome.busy} busy in "
        f"another process{diverged}{taken}, {len(outcome.failed)} failed")
    return GridResult(run_ids, outcome.trained, len(jobs) - len(pending) + outcome.skipped,
                      outcome.busy, outcome.failed, wall, runs, outcome.diverged,
                      outcome.taken_over)


def _with_resolved_device(task: PlannedTask, backend: Any) -> PlannedTask:
    """``device="auto"`` made concrete: on the local backend CUDA when this machine has it;
    on Ray CUDA when each run reserves a GPU, else the CPU."""
    changes: dict[str, dict[str, Any]] = {}
    settings = replace(task.settings, device=resolve_auto(task.settings.device, backend))
    for loss, override in task.loss_settings.items():
        if override.get("device") == "auto":
            changes[loss] = {**override, "device": resolve_auto("auto", backend)}
    if settings == task.settings and not changes:
        return task
    return replace(task, settings=settings, loss_settings={**task.loss_settings, **changes})


def resolve_auto(device: str, backend: Any = "local") -> str:
    """``device`` with ``"auto"`` made concrete for ``backend`` (other names unchanged)."""
    if device != "auto":
        return device
    gpus = getattr(backend, "gpus_per_run", None)
    if gpus is not None:  # Ray: the driver may have no GPU while the workers do
        return "cuda" if gpus > 0 else "cpu"
    return device_type("auto")


def _describe(tasks: Sequence[PlannedTask], job: Job) -> str:
    """``task/loss/seed N`` (plus the learning rate in a sweep, where it tells runs apart)."""
    task = tasks[job.task_index]
    text = f"{task.label}/{job.loss}/seed {job.seed}"
    return text + (f"/lr {task.settings_for(job.loss).lr:g}" if job.stage == "sweep" else "")


def check_losses(losses: Sequence[str]) -> list[str]:
    """Registered classification loss names (aliases resolved); unknown names list the valid."""
    from losslab.registry import get_info, loss_names

    if isinstance(losses, str):
        losses = [losses]
    valid = loss_names("classification")
    if not losses:
        raise ValueError(f"losses: expected at least one loss; valid: {', '.join(valid)}")
    names = []
    for loss in losses:
        try:
            info = get_info(loss)
        except ValueError:
            raise ValueError(
                f"losses: unknown loss {loss!r}; valid classification losses: {', '.join(valid)}"
            ) from None
        if info.family != "classification":
            raise ValueError(
                f"losses: {loss!r} is a {info.family} loss; the comparison trains multiclass "
                f"models, valid classification losses: {', '.join(valid)}"
            )
        if info.name not in names:
            names.append(info.name)
    return names


# The most seeds one call plans, and the largest seed (SQLite stores 64-bit integers).
MAX_SEEDS = 100_000
_MAX_SEED_VALUE = 2**63 - 1


def check_seeds(seeds: Sequence[int] | int) -> list[int]:
    """A list of distinct non-negative seeds (an int n means seeds 0..n-1)."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"seeds: expected a number of seeds from 1 to {MAX_SEEDS:,}, got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= _MAX_SEED_VALUE
                         for s in values):
        raise ValueError(f"seeds: expected non-negative integers below 2**63, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds: expected distinct seeds, got {values!r}")
    return values
