"""The backend interface: where runs train, and the events they send back.

A backend never opens the results store. The controller (:mod:`..controller`) claims a run,
reads its last checkpoint and hands the backend a :class:`~..trial.RunSpec` (plain data:
it pickles to another process or machine); the backend trains it with the batch's
:class:`~..trial.Trial` and reports what happened as events, in order, per run:

- :class:`StartedEvent`: where the run trains (host, device, ...), merged into its record;
- :class:`EpochEvent`: one finished epoch, its metrics and the state to resume from;
- then exactly one of :class:`FinishedEvent` (the run reached its last epoch, or the epoch
  it was asked to stop after), :class:`FailedEvent` (the trial raised; ``diverged`` when it
  was a non-finite loss) or :class:`LostEvent` (the worker or node running it died; the
  controller may submit it again from its last recorded epoch).

A backend is a small configuration object (:class:`Backend`) whose :meth:`Backend.open`
starts a :class:`Session` for one batch: the controller submits runs while the session has
free slots and polls it for events.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

# The events live in their own module so that the trial (which sends them) and the backends
# (which carry them) both import it without importing each other.
from losslab.experiments.classification.execution.events import (
    TERMINAL_EVENTS,
    EpochEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LostEvent,
    StartedEvent,
)

if TYPE_CHECKING:
    from losslab.experiments.classification.execution.trial import RunSpec, Trial

__all__ = ["TERMINAL_EVENTS", "Backend", "EpochEvent", "Event", "FailedEvent", "FinishedEvent",
           "LostEvent", "Session", "StartedEvent", "TrialBatch", "WorkerDiedError"]




class WorkerDiedError(RuntimeError):
    """A worker process ended abruptly (killed, out of memory); recorded epochs are kept."""


@dataclass
class TrialBatch:
    """What a session trains: the trials runs refer to by index, and how.

    Attributes:
        trials: the batch's trials (a run's ``spec.trial`` indexes them).
        threads: torch threads per run.
        runs: how many runs will be submitted (a pool starts no more workers than that).
        prepared: data already prepared in this process, by (trial index, stage); only a
            backend that trains in this process uses it.
    """

    trials: Sequence[Trial]
    threads: int
    runs: int
    prepared: dict[tuple[int, str], Any] = field(default_factory=dict)


class Session(ABC):
    """One batch being trained: runs go in with :meth:`submit`, events come out of
    :meth:`events`. Closed by the controller in every case (a context manager)."""

    @abstractmethod
    def free_slots(self) -> int:
        """How many more runs can start now."""

    @abstractmethod
    def submit(self, spec: RunSpec) -> None:
        """Start training ``spec`` (only while :meth:`free_slots` is positive)."""

    @abstractmethod
    def events(self, timeout: float) -> list[Event]:
        """The events that arrived, waiting up to ``timeout`` seconds for the first one."""

    @abstractmethod
    def cancel(self, run: int) -> None:
        """Stop training ``run``; its further events are dropped."""

    @abstractmethod
    def close(self) -> None:
        """Stop every worker this session started."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(ABC):
    """Where runs train. Subclasses are registered by name in :mod:`.backends`.

    Attributes:
        name: the registry name (``--backend NAME``).
        max_retries: times the controller submits a lost run again before failing it.
        lost_text: how a lost run is described in messages.
    """

    name: ClassVar[str]
    max_retries: int = 0
    # How a lost run is described ("<run>: its worker died (reason); retrying ...").
    lost_text: ClassVar[str] = "its worker died"

    @abstractmethod
    def describe(self) -> str:
        """Where the runs train, for the grid's one-line summary."""

    def summary(self, threads: int) -> str:
        """The grid's summary line's ending (``on ... × N thread(s)``)."""
        return f"on {self.describe()} × {threads} thread(s)"

    def threads_per_run(self, requested: int | None) -> int:
        """Torch threads per run: ``requested``, else this backend's default."""
        return 1 if requested is None else int(requested)

    def check_resources(self, devices: Sequence[str]) -> None:
        """Fail before any run is registered when no run could train on ``devices``."""
        from losslab.experiments.classification.trial.training import check_device_available

        for device in devices:
            check_device_available(device)

    def session(self, log: Callable[[str], None] = print) -> contextlib.AbstractContextManager[Any]:
        """The context runs need for the whole grid (Ray: a connected session)."""
        del log
        return contextlib.nullcontext()

    @abstractmethod
    def open(self, batch: TrialBatch) -> Session:
        """Start a session that trains runs of ``batch``."""

