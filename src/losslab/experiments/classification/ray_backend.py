"""The Ray backend: every (task, loss, seed, stage) run is one Ray task on a cluster.

The driver (the process that called :func:`.runner.run_grid`) stays the only writer of the
SQLite store. A run's Ray task receives what determines the run (the planned tasks — data
sources prepare themselves on the worker — the job and the run's last checkpoint as bytes)
and streams back, epoch by epoch, the epoch's metrics and the checkpoint after it; the driver
records each one as the local backend does. Nothing needs a shared file system: only
configs, checkpoints and metrics travel, through Ray's object store.

A run whose worker or node dies is submitted again from its last *recorded* epoch (up to
``max_retries`` times); a run that still cannot finish is marked failed with its epochs kept,
and the next invocation resumes it. An epoch is recorded only when it is the one after the
last recorded epoch, so nothing is ever recorded twice.

Ray is imported only when this backend is used (``pip install 'losslab[ray]'``).
"""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

RAY_VERSION = "2.60.0"  # the release the tests run against (losslab[ray] pins it)
INSTALL_HINT = "pip install 'losslab[ray]'"
BACKENDS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class RayBackend:
    """Where and with what each run trains on Ray.

    Attributes:
        address: ``None`` starts a Ray instance on this machine for the grid (stopped
            afterwards); ``"auto"`` joins the cluster this machine belongs to (``ray start``
            or ``RAY_ADDRESS``); ``"HOST:PORT"`` joins the head node at that GCS address.
        cpus_per_run: CPUs Ray reserves for each run (also its torch threads unless the
            grid sets ``threads``).
        gpus_per_run: GPUs reserved for each run (needed for ``device="cuda"``: Ray hides
            the GPUs from tasks that reserve none).
        resources: custom Ray resources each run needs (e.g. ``{"big_memory": 1}``).
        connect_timeout: seconds to wait for a cluster at ``address`` to answer.
        max_retries: times a run whose worker or node died is submitted again (from its
            last recorded epoch) before it is marked failed.
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)
    connect_timeout: float = 10.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ValueError(f"ray_address: expected 'auto' or HOST:PORT, got {self.address!r}")
        if self.address not in (None, "auto"):
            host, _, port = str(self.address).rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"ray_address: expected 'auto' or HOST:PORT, got {self.address!r}")
        for name in ("cpus_per_run", "gpus_per_run"):
            value = getattr(self, name)
            low = 0 if name == "gpus_per_run" else 1e-9
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < low:
                what = "a number >= 0" if name == "gpus_per_run" else "a positive number"
                raise ValueError(f"{name}: expected {what}, got {value!r}")
        for name, amount in dict(self.resources).items():
            if not isinstance(name, str) or isinstance(amount, bool) \
                    or not isinstance(amount, (int, float)) or not amount > 0:
                raise ValueError(f"resources: expected NAME=AMOUNT with an amount > 0, got {name}={amount!r}")
        if not (isinstance(self.connect_timeout, (int, float)) and self.connect_timeout > 0):
            raise ValueError(f"connect_timeout: expected seconds > 0, got {self.connect_timeout!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries: expected an integer >= 0, got {self.max_retries!r}")

    def describe(self) -> str:
        where = "a local Ray instance" if self.address is None else f"the Ray cluster at {self.address}"
        gpus = f", {self.gpus_per_run:g} GPU(s)" if self.gpus_per_run else ""
        extra = "".join(f", {value:g} {name}" for name, value in sorted(self.resources.items()))
        return f"{where} ({self.cpus_per_run:g} CPU(s){gpus}{extra} per run)"


def as_backend(backend: str | RayBackend | None) -> str | RayBackend:
    """``"local"`` or a :class:`RayBackend` (``"ray"`` gives the default one)."""
    if backend is None or backend == "local":
        return "local"
    if backend == "ray":
        return RayBackend()
    if isinstance(backend, RayBackend):
        return backend
    raise ValueError(f"backend: expected one of {', '.join(BACKENDS)} (or a RayBackend), got {backend!r}")


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"backend 'ray': Ray is not installed in this environment; "
                          f"{INSTALL_HINT} (tested with ray {RAY_VERSION})") from error
    return ray


def _check_reachable(address: str, timeout: float) -> None:
    """A clear error naming ``address`` when nothing answers there within ``timeout`` s."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, (socket.timeout, TimeoutError)) else str(error)
        raise ConnectionError(
            f"ray_address: no Ray cluster answered at {address} within {timeout:g} s ({reason}); "
            "start one there (ray start --head --port PORT) or check the address"
        ) from error


@contextmanager
def ray_session(backend: RayBackend, log: Callable[[str], None] = print) -> Iterator[Any]:
    """Ray connected for the duration (nested sessions share the outer one).

    Without an address a Ray instance starts on this machine and stops at the end; with one,
    the driver connects to that cluster and disconnects at the end (the cluster stays).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "configure_logging": False}
    if backend.address is None:
        options["num_cpus"] = os.cpu_count() or 1
    elif backend.address == "auto":
        options["address"] = "auto"
    else:
        _check_reachable(backend.address, backend.connect_timeout)
        options["address"] = backend.address
    try:
        ray.init(**options)
    except ConnectionError as error:
        raise ConnectionError(f"ray_address: cannot connect to the Ray cluster at "
                              f"{backend.address}: {error}") from error
    try:
        yield ray
    finally:
        ray.shutdown()


def check_cluster(ray: Any, backend: RayBackend, devices: Sequence[str]) -> None:
    """Fail before any run starts when no node of the cluster can take a run."""
    from losslab.experiments.classification.runner import device_type

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    where = "this machine's Ray instance" if backend.address is None else f"the Ray cluster at {backend.address}"
    largest_cpus = max((node["Resources"].get("CPU", 0.0) for node in nodes), default=0.0)
    largest_gpus = max((node["Resources"].get("GPU", 0.0) for node in nodes), default=0.0)
    if backend.cpus_per_run > largest_cpus:
        raise ValueError(f"cpus_per_run: {backend.cpus_per_run:g} CPUs per run, but the largest node of "
                         f"{where} has {largest_cpus:g}; no run could ever start")
    if backend.gpus_per_run > largest_gpus:
        raise ValueError(f"gpus_per_run: {backend.gpus_per_run:g} GPU(s) per run, but "
                         + (f"no node of {where} has a GPU" if largest_gpus == 0 else
                            f"the node of {where} with the most GPUs has {largest_gpus:g}")
                         + "; no run could ever start")
    wants_cuda = sorted({device for device in devices if device_type(device) == "cuda"})
    if wants_cuda and backend.gpus_per_run <= 0:
        raise ValueError(f"device: {wants_cuda[0]!r} on the Ray backend needs gpus_per_run >= 1 "
                         "(--gpus-per-run): Ray hides the GPUs from runs that reserve none")
    for name, amount in backend.resources.items():
        if not any(node["Resources"].get(name, 0.0) >= amount for node in nodes):
            raise ValueError(f"resources: {amount:g} {name!r} per run, but no node of {where} has "
                             "that much; no run could ever start")


# --- the worker side ------------------------------------------------------------------------

# Prepared data per (grid key, task index, stage) in a Ray worker process (workers are reused).
_PREPARED: dict[tuple[str, int, str], Any] = {}


def _train_remote(tasks: Sequence[Any], grid_key: str, task_index: int, loss: str, seed: int,
                  stage: str, checkpoint: bytes | None, threads: int,
                  stop_after: int | None = None) -> Iterator[Any]:
    """A Ray streaming task: first the worker's environment, then one EpochRecord per epoch."""
    import ray

    from losslab.experiments.classification.runner import describe_device, train_epochs

    settings = tasks[task_index].settings_for(loss)
    context = ray.get_runtime_context()
    yield {"host": socket.gethostname(), "pid": os.getpid(), "ray_node_id": context.get_node_id(),
           "device": describe_device(settings.device), "torch_threads": threads}
    key = (grid_key, task_index, stage)
    if key not in _PREPARED:
        for old in [k for k in _PREPARED if k[0] != grid_key]:
            del _PREPARED[old]  # another grid's data: not needed again in this process
        _PREPARED[key] = tasks[task_index].source.prepare(stage)
    yield from train_epochs(_PREPARED[key], loss, seed, settings, checkpoint=checkpoint,
                            threads=threads, stop_after=stop_after)


# --- the driver side ------------------------------------------------------------------------


@dataclass
class _Attempt:
    job: Any
    run_id: int
    tries: int = 1


def run_on_ray(store: Any, tasks: Sequence[Any], pending: Sequence[tuple[Any, int]],
               backend: RayBackend, threads: int | None, environment: dict[str, Any],
               counts: dict[str, int], failed: list[str], advance: Callable[..., None],
               log: Callable[[str], None], describe: Callable[[Any], str]) -> None:
    """Train ``pending`` (job, run_id) pairs as Ray tasks; record every epoch here."""
    from losslab.experiments.classification.runner import EpochRecord
    from losslab.experiments.classification.store import DONE_STATUSES, LeaseKeeper

    with ray_session(backend, log) as ray:  # the grid's session (checked by run_grid)
        per_run_threads = threads if threads is not None else max(1, int(backend.cpus_per_run))
        remote = ray.remote(_train_remote).options(
            num_cpus=backend.cpus_per_run, num_gpus=backend.gpus_per_run,
            resources=dict(backend.resources) or None, max_retries=0, num_returns="streaming")
        tasks_ref = ray.put(list(tasks))
        grid_key = uuid.uuid4().hex
        running: dict[Any, _Attempt] = {}

        def submit(attempt: _Attempt) -> None:
            job = attempt.job
            resume = store.resume_point(attempt.run_id)
            generator = remote.remote(tasks_ref, grid_key, job.task_index, job.loss, job.seed,
                                      job.stage, None if resume is None else resume.state,
                                      per_run_threads, job.stop_after)
            running[generator] = attempt

        leases = LeaseKeeper(store).__enter__()  # the driver renews every claimed run's lease
        for job, run_id in pending:
            claim = store.claim(run_id, environment)
            if claim is None:
                counts["skipped" if store.status(run_id) in DONE_STATUSES else "busy"] += 1
                continue
            leases.add(claim)
            submit(_Attempt(job, run_id))
        try:
            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for generator in ready:
                    attempt = running[generator]
                    job = attempt.job
                    try:
                        item = ray.get(next(generator))
                    except StopIteration:  # finished, or paused at its rung (stop_after)
                        del running[generator]
                        if store.status(attempt.run_id) not in DONE_STATUSES:
                            store.pause(attempt.run_id)
                        counts["trained"] += 1
                        continue
                    except ray.exceptions.RayTaskError as error:  # the run's own error
                        del running[generator]
                        cause = getattr(error, "cause", None) or error
                        message = f"{type(cause).__name__}: {cause}"
                        if isinstance(cause, FloatingPointError) and job.stage == "sweep":
                            store.diverge(attempt.run_id, message)  # a sweep's answer, final
                            counts["diverged"] += 1
                        else:
                            store.fail(attempt.run_id, message)
                            failed.append(f"{describe(job)}: {message}")
                            log(f"[compare] failed: {failed[-1]}")
                        continue
                    except ray.exceptions.RayError as error:  # the worker or its node died
                        del running[generator]
                        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
                        reason = f"{type(error).__name__}: {text.split('. ')[0]}"
                        done = store.epoch_count(attempt.run_id)
                        if attempt.tries <= backend.max_retries:
                            log(f"[compare] {describe(job)}: its Ray worker or node died ({reason}); "
                                f"retrying from epoch {done} (attempt {attempt.tries + 1} of "
                                f"{backend.max_retries + 1})")
                            submit(_Attempt(job, attempt.run_id, attempt.tries + 1))
                        else:
                            message = (f"its Ray worker or node died {attempt.tries} time(s) ({reason}); "
                                       f"{done} epoch(s) are kept: run the same command again to resume")
                            store.fail(attempt.run_id, message)
                            failed.append(f"{describe(job)}: {message}")
                            log(f"[compare] failed: {failed[-1]}")
                        continue
                    if isinstance(item, dict):  # the worker's environment
                        store.set_environment(attempt.run_id, {**environment, **item, "backend": "ray"})
                        continue
                    record: EpochRecord = item
                    if record.epoch != store.epoch_count(attempt.run_id) + 1:
                        continue  # already recorded (never expected: a retry starts after it)
                    store.record_epoch(attempt.run_id, record.epoch, record.metrics,
                                       record.checkpoint, final=record.final)
                    advance(tasks[job.task_index].label, job.loss, job.seed, record.epoch, record.metrics)
        finally:
            for generator in list(running):
                try:
                    ray.cancel(generator, force=True)
                except Exception:  # the cluster may be gone already
                    pass
            running.clear()
            leases.__exit__(None, None, None)
