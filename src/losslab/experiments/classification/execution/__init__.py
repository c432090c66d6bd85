"""Execution: one controller over pluggable backends.

- :mod:`.trial`: what a run trains (:class:`~.trial.Trial`; the classification loop is
  :class:`~.trial.ClassificationTrial`) and the plain-data :class:`~.trial.RunSpec`;
- :mod:`.backends`: where runs train (a registry: ``local`` worker processes, ``ray``,
  ``inprocess``), each yielding the events of :mod:`.backends.base`;
- :mod:`.controller`: claims runs under a lease, writes the results store and applies the
  outcome rules, once, for every backend.

The grid's planning (:func:`..runner.run_grid`) imports this package; nothing here imports
the planning, so there is no import cycle.
"""

from __future__ import annotations

from losslab.experiments.classification.execution.backends import (
    BACKENDS,
    backend_names,
    get_backend,
)
from losslab.experiments.classification.execution.backends.base import (
    Backend,
    EpochEvent,
    FailedEvent,
    FinishedEvent,
    LostEvent,
    Session,
    StartedEvent,
    TrialBatch,
    WorkerDiedError,
)
from losslab.experiments.classification.execution.controller import (
    DEFAULT_LEASE_SECONDS,
    Controller,
    Outcome,
    check_lease,
)
from losslab.experiments.classification.execution.trial import (
    ClassificationTrial,
    RunSpec,
    Trial,
    run_trial,
)

__all__ = [
    "BACKENDS", "DEFAULT_LEASE_SECONDS", "Backend", "ClassificationTrial", "Controller",
    "EpochEvent", "FailedEvent", "FinishedEvent", "LostEvent", "Outcome", "RunSpec", "Session",
    "StartedEvent", "Trial", "TrialBatch", "WorkerDiedError", "backend_names", "check_lease",
    "get_backend", "run_trial",
]
