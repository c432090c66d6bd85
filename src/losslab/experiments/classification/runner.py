"""The grid runner: tasks × losses × seeds, trained and recorded epoch by epoch.

One run (its settings, data and training loop) is :mod:`.training`; this module schedules
them: the grid of (task, loss, seed, stage) runs on worker processes or another backend.

After each epoch the runner writes, in one transaction, the epoch's metrics and the state to
resume from (see :mod:`.store`). Killing the process at any moment loses at most the epoch in
progress; running the same grid again skips finished runs and resumes the others.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from losslab.experiments.classification.store import (
    DONE_STATUSES,
    LeaseKeeper,
    ResultsStore,
    RunKey,
    RunStore,
    config_hash,
)
from losslab.experiments.classification.training import (
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


class WorkerDiedError(RuntimeError):
    """A worker process ended abruptly (killed, out of memory); recorded epochs are kept."""


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


# --- the grid -------------------------------------------------------------------------------

# Per-process state of a worker: its store, prepared data by task index, thread count, queue.
_WORKER: dict[str, Any] = {}


def _prepared(tasks: Sequence[PlannedTask], index: int, stage: str) -> PreparedData:
    cache = _WORKER.setdefault("prepared", {})
    if (index, stage) not in cache:
        cache[(index, stage)] = tasks[index].source.prepare(stage)
    return cache[(index, stage)]


def _init_worker(db_path: str, timeout: float, tasks: Sequence[PlannedTask], threads: int,
                 queue: Any) -> None:
    _WORKER.update(store=ResultsStore(db_path, timeout=timeout), tasks=tasks, threads=threads,
                   queue=queue, prepared={})
    torch.set_num_threads(threads)


def _execute(job: Job, run_id: int, environment: dict[str, Any]) -> str:
    """Run one job in this process; returns "trained", "skipped" or "busy"."""
    store: ResultsStore = _WORKER["store"]
    tasks: Sequence[PlannedTask] = _WORKER["tasks"]
    settings = tasks[job.task_index].settings_for(job.loss)
    environment = {**environment, "device": describe_device(settings.device)}
    claim = store.claim(run_id, environment)
    if claim is None:
        return "skipped" if store.status(run_id) in DONE_STATUSES else "busy"
    task = tasks[job.task_index]
    queue = _WORKER.get("queue")
    callback = _WORKER.get("callback")

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        event = (task.label, job.loss, job.seed, epoch, metrics)
        if queue is not None:
            queue.put(event)
        if callback is not None:
            callback(*event)

    try:
        data = _prepared(tasks, job.task_index, job.stage)
        with LeaseKeeper(store, claim):  # renewed while it trains; a dead owner's lapses
            train_run(store, run_id, data, job.loss, job.seed, settings,
                      threads=_WORKER.get("threads"), on_epoch=on_epoch, stop_after=job.stop_after)
        if job.stop_after is not None and store.status(run_id) not in DONE_STATUSES:
            store.pause(run_id)  # at its rung: resumable by this or a later invocation
    except FloatingPointError as error:
        if job.stage != "sweep":
            store.fail(run_id, f"{type(error).__name__}: {error}")
            raise
        # In a sweep a diverging loss is the answer for that rate: recorded, never retried.
        store.diverge(run_id, f"{type(error).__name__}: {error}")
        return "diverged"
    except BaseException as error:
        if not isinstance(error, KeyboardInterrupt):
            store.fail(run_id, f"{type(error).__name__}: {error}")
        raise
    return "trained"


def _execute_in_worker(job: Job, run_id: int, environment: dict[str, Any]) -> tuple[str, str | None]:
    try:
        return _execute(job, run_id, environment), None
    except Exception as error:  # reported by the parent; the other runs go on
        return "failed", f"{type(error).__name__}: {error}"


def default_threads(workers: int) -> int:
    """Torch threads per worker: the machine's cores split evenly among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


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
            (in-process and Ray runs; not with ``workers > 1``).
        backend: ``"local"`` (this process, or ``workers`` processes of this machine) or
            ``"ray"`` / a :class:`.ray_backend.RayBackend` (one Ray task per run, on a local
            Ray instance or a cluster; ``workers`` is then ignored). Either way this process
            is the only writer of ``db`` and results are identical for the same settings.
        until_epoch: train every run only up to this epoch and pause it there (a rung of
            successive halving); a later call without it finishes the run.
        only: a set of ``(task index, loss)`` pairs: the grid's other runs are left out.

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
    from losslab.experiments.classification.ray_backend import RayBackend, as_backend

    backend = as_backend(backend)
    on_ray = isinstance(backend, RayBackend)
    if on_ray:
        from losslab.experiments.classification.ray_backend import import_ray

        import_ray()  # not installed: say how, before anything is registered
        workers = 1
    tasks = [_with_resolved_device(task, backend) for task in tasks]
    if not on_ray:  # a Ray cluster's GPUs are checked against the cluster, not this machine
        for device in sorted({task.settings_for(loss).device for task in tasks for loss in losses}):
            check_device_available(device)
    identities = [(task.label, config_hash(task.config())) for task in tasks]
    if len(set(identities)) != len(identities):
        raise ValueError(f"tasks: expected distinct (label, config) rows, got labels "
                         f"{[task.label for task in tasks]} with repeated configs")
    if on_ray:  # one Ray session for the grid; the cluster checked before anything is registered
        from losslab.experiments.classification.ray_backend import check_cluster, ray_session

        ray = import_ray()
        if not ray.is_initialized():
            with ray_session(backend, log):
                return run_grid(tasks, losses, seeds, db=db, workers=workers, threads=threads,
                                stage=stage, progress=progress, log=log, timeout=timeout,
                                on_epoch=on_epoch, backend=backend, until_epoch=until_epoch,
                                only=only)
        check_cluster(ray, backend, sorted({task.settings_for(loss).device for task in tasks
                                            for loss in losses}))
    store = db if isinstance(db, RunStore) else ResultsStore(db, timeout=timeout)
    requested_threads = threads
    threads = default_threads(workers) if threads is None else int(threads)
    if on_ray:
        threads = int(threads) if requested_threads is not None else max(1, int(backend.cpus_per_run))
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
            from losslab.experiments.classification.splits import sample_record

            store.put_sample_set(data.train_ids)
            store.put_sample_set(data.eval_ids)
            samples[(index, job_stage)] = sample_record(data.train_ids, data.eval_ids, data.eval_split)
    if workers > 1 or on_ray:
        prepared.clear()  # each worker prepares its own copy (caches make that cheap)
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
    how = (f"on {backend.describe()} × {threads} thread(s)" if on_ray
           else f"with {workers} worker(s) × {threads} thread(s)")
    log(f"[compare] {len(jobs)} {stage} runs in the grid: {len(jobs) - len(pending)} already finished, "
        f"{len(pending)} to train ({sum(remaining.values())} epochs) {how}; results in {store.path}")
    environment = environment_info()
    bar = _progress_bar(sum(remaining.values()), progress)
    counts = {"trained": 0, "skipped": len(jobs) - len(pending), "busy": 0, "diverged": 0}
    failed: list[str] = []

    def advance(task_label: str, loss: str, seed: int, epoch: int, metrics: dict[str, float]) -> None:
        if bar is not None:
            bar.set_postfix_str(f"{task_label} {loss} seed {seed} ep {epoch} "
                                f"acc {metrics['eval_accuracy']:.3f}", refresh=False)
            bar.update(1)
        if on_epoch is not None:
            on_epoch(task_label, loss, seed, epoch, metrics)

    try:
        if on_ray:
            if pending:
                from losslab.experiments.classification.ray_backend import run_on_ray

                run_on_ray(store, tasks, pending, backend, threads, environment, counts, failed,
                           advance, log, lambda job: _describe(tasks, job))
        elif workers == 1 or len(pending) <= 1:
            _WORKER.clear()
            _WORKER.update(store=store, tasks=tasks, threads=threads, queue=None,
                           callback=advance, prepared=prepared)
            try:
                for job, run_id in pending:
                    try:
                        counts[_execute(job, run_id, environment)] += 1
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as error:
                        failed.append(f"{_describe(tasks, job)}: {type(error).__name__}: {error}")
                        log(f"[compare] failed: {failed[-1]}")
                        if _is_store_error(error):
                            raise
            finally:
                _WORKER.clear()
        else:
            _run_parallel(store, tasks, pending, workers, threads, timeout, environment,
                          counts, failed, advance, log)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    diverged = f", {counts['diverged']} diverged" if counts["diverged"] else ""
    log(f"[compare] done in {wall:.1f} s: {counts['trained']} trained, {counts['skipped']} "
        f"already finished, {counts['busy']} busy in another process{diverged}, {len(failed)} failed")
    return GridResult(run_ids, counts["trained"], counts["skipped"], counts["busy"], failed, wall, runs,
                      counts["diverged"])


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


def _is_store_error(error: BaseException) -> bool:
    from losslab.experiments.classification.store import ResultsStoreError

    return isinstance(error, ResultsStoreError)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the experiments extra; run without a bar otherwise
        return None
    return tqdm(total=total, unit="epoch", desc="compare", dynamic_ncols=True)


def _run_parallel(store: ResultsStore, tasks: Sequence[PlannedTask], pending: list[tuple[Job, int]],
                  workers: int, threads: int, timeout: float, environment: dict[str, Any],
                  counts: dict[str, int], failed: list[str], advance: Callable[..., None],
                  log: Callable[[str], None]) -> None:
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # fork + torch threads can deadlock
    events = context.Queue()

    def drain() -> None:
        while True:
            try:
                advance(*events.get_nowait())
            except queue_module.Empty:
                return

    with ProcessPoolExecutor(
        max_workers=min(workers, len(pending)), mp_context=context, initializer=_init_worker,
        initargs=(str(store.path), timeout, list(tasks), threads, events),
    ) as pool:
        futures = {pool.submit(_execute_in_worker, job, run_id, environment): job
                   for job, run_id in pending}
        remaining = set(futures)
        while remaining:
            done = [f for f in remaining if f.done()]
            for future in done:
                remaining.discard(future)
                job = futures[future]
                try:
                    outcome, error = future.result()
                except BrokenProcessPool as broken:
                    raise WorkerDiedError(
                        "a worker process died (killed or out of memory) while training "
                        f"{_describe(tasks, job)}; every recorded "
                        "epoch is kept: run the same command again to resume"
                    ) from broken
                if outcome == "failed":
                    failed.append(f"{_describe(tasks, job)}: {error}")
                    log(f"[compare] failed: {failed[-1]}")
                else:
                    counts[outcome] += 1
            drain()
            if remaining:  # wake on a finished run, or every 0.2 s to move the bar
                wait(remaining, timeout=0.2, return_when=FIRST_COMPLETED)
        drain()


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
