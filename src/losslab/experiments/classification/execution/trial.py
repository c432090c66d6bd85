"""The trial seam: what one run trains, independent of where it trains.

A :class:`Trial` knows how to prepare its data for a stage and how to train one run of it
epoch by epoch, from a checkpoint, yielding :class:`~..training.EpochRecord`-like records
(``epoch``, ``metrics``, ``checkpoint``, ``final``). Backends call :func:`run_trial`, which
turns those records into events; the controller stores them. Neither branches on the kind
of trial, so a new kind (say a language model with perplexity among its metrics) is one new
class with these five members, passed to the controller in place of
:class:`ClassificationTrial`:

- ``label``: the run's task label (the ``task`` column);
- ``prepare(stage)``: the data for ``"test"`` or ``"sweep"`` (called once per process and
  stage, then cached);
- ``train(data, spec, threads=...)``: the epoch records of run ``spec`` from
  ``spec.checkpoint`` (a pure function of its arguments: it opens no store);
- ``environment(spec)``: JSON-able facts about where the run trains (its device);
- ``progress(metrics)``: a few words for the progress bar.

A trial must pickle (local workers and Ray receive it by value). Metrics are stored as
given: the store's fixed epoch columns must be present, every other metric goes into the
epoch's extra JSON.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from losslab.experiments.classification.execution.events import (
    EpochEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    StartedEvent,
)

if TYPE_CHECKING:
    from losslab.experiments.classification.trial.training import EpochRecord, TrainingSettings


@dataclass(frozen=True)
class RunSpec:
    """One run as a backend sees it: plain data that pickles.

    Attributes:
        run_id: the run's id in the store (events name it).
        trial: the index of the run's trial in the batch.
        loss: the loss name.
        seed: the run's seed.
        stage: ``"test"`` or ``"sweep"``.
        stop_after: pause after this epoch (a rung of successive halving), None for all.
        checkpoint: the state after the last recorded epoch (None: from scratch).
        description: ``task/loss/seed N`` for messages.
    """

    run_id: int
    trial: int
    loss: str
    seed: int
    stage: str = "test"
    stop_after: int | None = None
    checkpoint: bytes | None = None
    description: str = ""


class Trial(Protocol):
    """What a run trains (see the module docstring)."""

    @property
    def label(self) -> str:
        """The task label of the trial's runs."""

    def prepare(self, stage: str) -> Any:
        """The data for ``stage``."""

    def train(self, data: Any, spec: RunSpec, *, threads: int | None) -> Iterator[EpochRecord]:
        """The epoch records of run ``spec``, from ``spec.checkpoint``."""

    def environment(self, spec: RunSpec) -> dict[str, Any]:
        """Where run ``spec`` trains (at least its device)."""

    def progress(self, metrics: Mapping[str, Any]) -> str:
        """A few words on an epoch's metrics for the progress bar."""


@dataclass(frozen=True)
class ClassificationTrial:
    """A classification task of the grid (a :class:`.runner.PlannedTask`): train
    :func:`.training.train_epochs` on its data source with each loss's settings."""

    task: Any  # a PlannedTask (typed loosely: planning imports execution, not the reverse)

    @property
    def label(self) -> str:
        return str(self.task.label)

    def settings(self, spec: RunSpec) -> TrainingSettings:
        return self.task.settings_for(spec.loss)

    def prepare(self, stage: str) -> Any:
        return self.task.source.prepare(stage)

    def train(self, data: Any, spec: RunSpec, *, threads: int | None) -> Iterator[EpochRecord]:
        from losslab.experiments.classification.trial.training import train_epochs

        return train_epochs(data, spec.loss, spec.seed, self.settings(spec), checkpoint=spec.checkpoint,
                            threads=threads, stop_after=spec.stop_after)

    def environment(self, spec: RunSpec) -> dict[str, Any]:
        from losslab.experiments.classification.trial.training import describe_device

        return {"device": describe_device(self.settings(spec).device)}

    def progress(self, metrics: Mapping[str, Any]) -> str:
        return f"acc {metrics['eval_accuracy']:.3f}"


def run_trial(trials: Sequence[Trial], spec: RunSpec, *, threads: int | None,
              cache: MutableMapping[tuple[int, str], Any],
              environment: Mapping[str, Any] | None = None) -> Iterator[Event]:
    """Train ``spec`` here and describe it as events: started, one per epoch, then finished
    or failed (a trial's exception becomes a :class:`FailedEvent`; an interrupt propagates).

    ``cache`` keeps each (trial, stage)'s prepared data for the next run of this process;
    ``environment`` adds facts about this worker to the started event.
    """
    trial = trials[spec.trial]
    try:
        yield StartedEvent(spec.run_id, {**trial.environment(spec), **(environment or {})})
        key = (spec.trial, spec.stage)
        if key not in cache:
            cache[key] = trial.prepare(spec.stage)
        for record in trial.train(cache[key], spec, threads=threads):
            yield EpochEvent(spec.run_id, record.epoch, record.metrics, record.checkpoint, record.final)
    except Exception as error:  # the run's own error: reported, the other runs go on
        # A non-finite loss or score is reported as such: in a sweep it is the answer for
        # that learning rate, elsewhere a failure (the controller applies the rule).
        yield FailedEvent(spec.run_id, f"{type(error).__name__}: {error}",
                          diverged=isinstance(error, FloatingPointError))
        return
    yield FinishedEvent(spec.run_id)
