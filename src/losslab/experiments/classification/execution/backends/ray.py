"""The Ray backend: every run is one Ray task, on a local Ray instance or a cluster.

A run's Ray task receives what determines the run (the batch's trials — data sources
prepare themselves on the worker — and the run's spec with its last checkpoint as bytes)
and streams back its events (:mod:`.base`), epoch by epoch; the controller on the driver
records each one as for every backend. Nothing needs a shared file system: only configs,
checkpoints and metrics travel, through Ray's object store.

A run whose worker or node dies is reported lost; the controller submits it again from its
last *recorded* epoch (up to ``max_retries`` times), then marks it failed with its epochs
kept, and the next invocation resumes it.

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
from typing import TYPE_CHECKING, Any, ClassVar

from losslab.experiments.classification.execution.backends.base import (
    TERMINAL_EVENTS,
    Backend,
    Event,
    FailedEvent,
    LostEvent,
    Session,
    TrialBatch,
)

if TYPE_CHECKING:
    from losslab.experiments.classification.execution.trial import RunSpec, Trial

RAY_VERSION = "2.60.0"  # the release the tests run against (losslab[ray] pins it)
INSTALL_HINT = "pip install 'losslab[ray]'"


@dataclass(frozen=True)
class RayBackend(Backend):
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

    name: ClassVar[str] = "ray"
    lost_text: ClassVar[str] = "its Ray worker or node died"
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

    def threads_per_run(self, requested: int | None) -> int:
        return max(1, int(self.cpus_per_run)) if requested is None else int(requested)

    def check_resources(self, devices: Sequence[str]) -> None:
        """The cluster (inside :meth:`session`) can take a run; a GPU is checked there,
        not on this machine (the driver may have none)."""
        check_cluster(import_ray(), self, devices)

    def session(self, log: Callable[[str], None] = print) -> Any:
        import_ray()  # not installed: say how, before anything starts
        return ray_session(self, log)

    def open(self, batch: TrialBatch) -> Session:
        return _RaySession(self, batch)


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
    from losslab.experiments.classification.trial.training import device_type

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

# Prepared data per grid, by (trial index, stage), in a Ray worker process (workers are reused).
_PREPARED: dict[str, dict[tuple[int, str], Any]] = {}


def _train_remote(trials: Sequence[Trial], grid_key: str, spec: RunSpec, threads: int) -> Iterator[Event]:
    """A Ray streaming task: the run's events (:func:`..trial.run_trial`), this worker's
    host, process and node added to its started event."""
    import ray

    from losslab.experiments.classification.execution.trial import run_trial

    for old in [key for key in _PREPARED if key != grid_key]:
        del _PREPARED[old]  # another grid's data: not needed again in this process
    context = ray.get_runtime_context()
    where = {"host": socket.gethostname(), "pid": os.getpid(), "ray_node_id": context.get_node_id(),
             "torch_threads": threads, "backend": "ray"}
    yield from run_trial(trials, spec, threads=threads, cache=_PREPARED.setdefault(grid_key, {}),
                         environment=where)


# --- the driver side ------------------------------------------------------------------------


class _RaySession(Session):
    """Every submitted run is a Ray task at once: Ray's scheduler queues what does not fit."""

    def __init__(self, backend: RayBackend, batch: TrialBatch) -> None:
        self._ray = import_ray()
        self._remote = self._ray.remote(_train_remote).options(
            num_cpus=backend.cpus_per_run, num_gpus=backend.gpus_per_run,
            resources=dict(backend.resources) or None, max_retries=0, num_returns="streaming")
        self._trials = self._ray.put(list(batch.trials))
        self._threads = batch.threads
        self._grid_key = uuid.uuid4().hex
        self._running: dict[Any, RunSpec] = {}

    def free_slots(self) -> int:
        return 1 << 30

    def submit(self, spec: RunSpec) -> None:
        generator = self._remote.remote(self._trials, self._grid_key, spec, self._threads)
        self._running[generator] = spec

    def events(self, timeout: float) -> list[Event]:
        ray = self._ray
        if not self._running:
            return []
        ready, _ = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        events: list[Event] = []
        for generator in ready:
            spec = self._running[generator]
            try:
                event = ray.get(next(generator))
            except StopIteration:  # its last event came before
                del self._running[generator]
                continue
            except ray.exceptions.RayTaskError as error:  # raised outside the trial itself
                del self._running[generator]
                cause = getattr(error, "cause", None) or error
                events.append(FailedEvent(spec.run_id, f"{type(cause).__name__}: {cause}",
                                          diverged=isinstance(cause, FloatingPointError)))
                continue
            except ray.exceptions.RayError as error:  # the worker or its node died
                del self._running[generator]
                text = str(error).strip().splitlines()[0] if str(error).strip() else ""
                events.append(LostEvent(spec.run_id, f"{type(error).__name__}: {text.split('. ')[0]}"))
                continue
            events.append(event)
            if isinstance(event, TERMINAL_EVENTS):
                del self._running[generator]
        return events

    def cancel(self, run: int) -> None:
        for generator, spec in list(self._running.items()):
            if spec.run_id == run:
                self._cancel(generator)

    def _cancel(self, generator: Any) -> None:
        del self._running[generator]
        try:
            self._ray.cancel(generator, force=True)
        except Exception:  # the cluster may be gone already
            pass

    def close(self) -> None:
        for generator in list(self._running):
            self._cancel(generator)
