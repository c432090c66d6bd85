"""The in-process backend: runs train one after another in the calling process.

For tests and debugging (a breakpoint or a monkeypatch reaches the training loop), and for
``workers=1``, where a worker process would only add start-up time. Each call of
:meth:`Session.events` trains one epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from losslab.experiments.classification.execution.backends.base import (
    TERMINAL_EVENTS,
    Backend,
    Event,
    Session,
    TrialBatch,
)

if TYPE_CHECKING:
    from losslab.experiments.classification.execution.trial import RunSpec


@dataclass(frozen=True)
class InProcessBackend(Backend):
    """Sequential training in this process."""

    name: ClassVar[str] = "inprocess"

    def describe(self) -> str:
        return "this process"

    def summary(self, threads: int) -> str:
        return f"with 1 worker(s) × {threads} thread(s)"

    def open(self, batch: TrialBatch) -> Session:
        return _InProcessSession(batch)


class _InProcessSession(Session):
    def __init__(self, batch: TrialBatch) -> None:
        self._batch = batch
        self._current: Iterator[Event] | None = None
        self._run: int | None = None

    def free_slots(self) -> int:
        return 0 if self._current is not None else 1

    def submit(self, spec: RunSpec) -> None:
        from losslab.experiments.classification.execution.trial import run_trial

        if self._current is not None:
            raise RuntimeError("the in-process backend trains one run at a time")
        self._current = run_trial(self._batch.trials, spec, threads=self._batch.threads,
                                  cache=self._batch.prepared)
        self._run = spec.run_id

    def events(self, timeout: float) -> list[Event]:
        del timeout  # training the next epoch is the wait
        if self._current is None:
            return []
        try:
            event = next(self._current)
        except StopIteration:
            self._current = self._run = None
            return []
        if isinstance(event, TERMINAL_EVENTS):
            self._current = self._run = None
        return [event]

    def cancel(self, run: int) -> None:
        if self._current is not None and self._run == run:
            self._current.close()  # leaves the training loop (and its torch settings) cleanly
            self._current = self._run = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = self._run = None
