"""The local backend: worker processes of this machine, each training one run at a time.

Workers are started with ``spawn`` (``fork`` after torch has started threads can deadlock)
and talk to the driver over one pipe each: the driver sends a :class:`~..trial.RunSpec`,
the worker sends back its events. Workers never open the results store.

Workers never outlive the driver. On Linux each worker asks the kernel for ``SIGKILL`` when
its parent dies (``prctl(PR_SET_PDEATHSIG)`` through ctypes), which stops it mid-epoch at
once. Everywhere (and as a second line on Linux) a watchdog thread in the worker checks
every half second that its parent is still the driver (``os.getppid``) and exits when it
is not; a worker waiting for work also sees the driver's end of the pipe close.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from losslab.experiments.classification.execution.backends.base import (
    TERMINAL_EVENTS,
    Backend,
    Event,
    Session,
    TrialBatch,
    WorkerDiedError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from losslab.experiments.classification.execution.trial import RunSpec, Trial

# Seconds between the watchdog's checks that the driver is alive.
PARENT_CHECK_SECONDS = 0.5


def default_threads(workers: int) -> int:
    """Torch threads per worker: the machine's cores split evenly among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


@dataclass(frozen=True)
class LocalBackend(Backend):
    """``workers`` processes of this machine.

    Attributes:
        workers: processes training in parallel.
    """

    name: ClassVar[str] = "local"
    workers: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers: expected a positive integer, got {self.workers!r}")

    def describe(self) -> str:
        return f"{self.workers} local worker process(es)"

    def summary(self, threads: int) -> str:
        return f"with {self.workers} worker(s) × {threads} thread(s)"

    def threads_per_run(self, requested: int | None) -> int:
        return default_threads(self.workers) if requested is None else int(requested)

    def open(self, batch: TrialBatch) -> Session:
        return _LocalSession(batch, min(self.workers, max(1, batch.runs)))


# --- the worker side ------------------------------------------------------------------------


def die_with_parent(parent_pid: int) -> str:
    """Make this process end when ``parent_pid`` (its parent) dies; says how."""
    how = "parent-pid watchdog"
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1  # <linux/prctl.h>
            if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "PR_SET_PDEATHSIG and parent-pid watchdog"
        except (OSError, AttributeError):  # no libc symbol here: the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)  # no cleanup: the driver, the only writer, is gone

    threading.Thread(target=watch, name="losslab-parent-watchdog", daemon=True).start()
    return how


def _worker_main(connection: Connection, parent_pid: int, trials: Sequence[Trial], threads: int) -> None:
    import torch

    from losslab.experiments.classification.execution.trial import run_trial

    die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    cache: dict[tuple[int, str], Any] = {}
    while True:
        try:
            spec = connection.recv()
        except (EOFError, OSError):  # the driver closed the pipe: nothing more to do
            return
        if spec is None:
            return
        for event in run_trial(trials, spec, threads=threads, cache=cache):
            connection.send(event)


# --- the driver side ------------------------------------------------------------------------


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    spec: RunSpec | None = None


class _LocalSession(Session):
    def __init__(self, batch: TrialBatch, workers: int) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._batch = batch
        self._workers: list[_Worker] = []
        self._died: RunSpec | None = None
        try:
            for _ in range(workers):
                self._workers.append(self._start_worker())
        except BaseException:
            self.close()
            raise

    def _start_worker(self) -> _Worker:
        driver_end, worker_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main, name="losslab-worker", daemon=True,
            args=(worker_end, os.getpid(), list(self._batch.trials), self._batch.threads))
        process.start()
        worker_end.close()  # the worker holds its own copy: EOF here when it dies
        return _Worker(process, driver_end)

    def free_slots(self) -> int:
        return sum(worker.spec is None for worker in self._workers)

    def submit(self, spec: RunSpec) -> None:
        worker = next(worker for worker in self._workers if worker.spec is None)
        try:
            worker.connection.send(spec)
        except OSError as error:  # the pipe broke: the idle worker was killed
            raise WorkerDiedError(
                "a worker process died (killed or out of memory) before training "
                f"{spec.description}; every recorded epoch is kept: run the same command again "
                "to resume") from error
        worker.spec = spec

    def events(self, timeout: float) -> list[Event]:
        from multiprocessing.connection import wait

        if self._died is not None:
            raise WorkerDiedError(
                "a worker process died (killed or out of memory) while training "
                f"{self._died.description}; every recorded epoch is kept: run the same command "
                "again to resume")
        busy = [worker for worker in self._workers if worker.spec is not None]
        if not busy:
            return []
        wait([worker.connection for worker in busy], timeout=timeout)
        events: list[Event] = []
        for worker in busy:
            try:
                while worker.spec is not None and worker.connection.poll():
                    event = worker.connection.recv()
                    events.append(event)
                    if isinstance(event, TERMINAL_EVENTS):
                        worker.spec = None
            except (EOFError, OSError):  # its end of the pipe closed: the process is gone
                self._died = worker.spec
                worker.spec = None
        return events

    def cancel(self, run: int) -> None:
        for index, worker in enumerate(self._workers):
            if worker.spec is not None and worker.spec.run_id == run:
                # A worker cannot be interrupted mid-epoch: replace it.
                self._stop(worker, graceful=False)
                self._workers[index] = self._start_worker()

    def _stop(self, worker: _Worker, *, graceful: bool) -> None:
        if graceful and worker.spec is None:
            try:
                worker.connection.send(None)
            except (OSError, ValueError):
                pass
            worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.connection.close()

    def close(self) -> None:
        for worker in self._workers:
            self._stop(worker, graceful=True)
        self._workers.clear()
