"""The events a run sends back while it trains (see :mod:`.backends.base` for their order)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StartedEvent:
    """The run started on a worker; ``environment`` describes where (device, host, pid)."""

    run: int
    environment: Mapping[str, Any]


@dataclass(frozen=True)
class EpochEvent:
    """One finished epoch: its metrics and the checkpoint after it (None after the last)."""

    run: int
    epoch: int
    metrics: Mapping[str, Any]
    checkpoint_bytes: bytes | None
    final: bool


@dataclass(frozen=True)
class FinishedEvent:
    """The run trained every epoch it was asked to (all of them, or up to ``stop_after``)."""

    run: int


@dataclass(frozen=True)
class FailedEvent:
    """The trial raised ``error`` (``"Type: message"``); ``diverged`` when the loss or a
    metric became non-finite (the controller decides what that means for the run's stage)."""

    run: int
    error: str
    diverged: bool = False


@dataclass(frozen=True)
class LostEvent:
    """The process or node training the run died; every epoch it reported is recorded."""

    run: int
    reason: str


Event = StartedEvent | EpochEvent | FinishedEvent | FailedEvent | LostEvent
TERMINAL_EVENTS: tuple[type, ...] = (FinishedEvent, FailedEvent, LostEvent)
