"""The controller: the one place that claims runs, writes the store and decides outcomes.

Given planned runs (:class:`~.trial.RunSpec`, registered in the store), a backend and the
trials they train, :class:`Controller` claims each run just before it starts (so two
invocations on one database share the work), reads its last checkpoint, submits it, and
records what the backend reports:

- an epoch: its metrics and the checkpoint after it, in one transaction (an epoch that is
  not the one after the last recorded epoch is never recorded twice);
- finished: the run is finished, or paused at the epoch it was asked to stop after;
- failed: a non-finite loss in a sweep is that learning rate's answer (``diverged``, never
  retried); every other error fails the run, its recorded epochs kept;
- lost (its worker or node died): submitted again from its last recorded epoch up to the
  backend's ``max_retries``, then failed.

While runs train, the store's heartbeat thread (:class:`..storage.LeaseKeeper`) renews
each in-flight run's lease every quarter of the lease, on its own database handle, so a
long epoch in this process does not stop it. A run whose lease was taken over by another invocation is dropped here. When the
controller stops early (an interrupt, a dead worker) it releases the runs it holds so the
next invocation resumes them at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from losslab.experiments.classification.execution.backends.base import (
    Backend,
    EpochEvent,
    Event,
    FailedEvent,
    FinishedEvent,
    LostEvent,
    StartedEvent,
    TrialBatch,
)
from losslab.experiments.classification.storage import (
    DEFAULT_LEASE_SECONDS,
    DONE_STATUSES,
    LeaseKeeper,
)

if TYPE_CHECKING:
    from losslab.experiments.classification.execution.trial import RunSpec, Trial
    from losslab.experiments.classification.storage import Claim, RunStore

POLL_SECONDS = 0.2


def check_lease(lease: Any) -> float:
    """``lease`` as seconds if it is a positive finite number; a clear error otherwise (the
    store's own check, named for the ``lease`` option)."""
    from losslab.experiments.classification.storage.validation import check_lease as check_seconds

    try:
        return check_seconds(lease)
    except ValueError as error:
        raise ValueError("lease" + str(error).removeprefix("lease_seconds")) from None


@dataclass
class Outcome:
    """What the controller did with its runs."""

    trained: int = 0
    skipped: int = 0
    busy: int = 0
    diverged: int = 0
    failed: list[str] = field(default_factory=list)
    taken_over: list[str] = field(default_factory=list)


@dataclass
class _Flight:
    spec: RunSpec
    claim: Claim
    tries: int = 1


class Controller:
    """Trains runs on a backend and records them (see the module docstring).

    Args:
        store: the results store (the only writer of it is this object).
        backend: where runs train.
        trials: the trials runs refer to by ``spec.trial``.
        environment: the driver's environment record (library versions ...), stored with
            every run and completed by where the run trains.
        threads: torch threads per run.
        lease_seconds: the lease each claimed run is held under.
        log: where one-line messages go.
        on_epoch: ``on_epoch(task, loss, seed, epoch, metrics)`` after each recorded epoch;
            an exception there fails that run (the others go on).
        progress_total: epochs left in the grid, for a tqdm progress bar (None: no bar).
        prepared: data already prepared in this process (used by the in-process backend).
    """

    def __init__(self, store: RunStore, backend: Backend, trials: Sequence[Trial], *,
                 environment: Mapping[str, Any], threads: int,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 log: Callable[[str], None] = print,
                 on_epoch: Callable[..., None] | None = None,
                 progress_total: int | None = None,
                 prepared: dict[tuple[int, str], Any] | None = None) -> None:
        self.store = store
        self.backend = backend
        self.trials = list(trials)
        self.environment = dict(environment)
        self.threads = threads
        self.lease_seconds = check_lease(lease_seconds)
        self.log = log
        self.on_epoch = on_epoch
        self.progress_total = progress_total
        self.prepared = prepared if prepared is not None else {}

    def run(self, specs: Sequence[RunSpec]) -> Outcome:
        """Train every spec not done or held elsewhere; returns what happened."""
        outcome = Outcome()
        if not specs:
            return outcome
        queue = deque(specs)
        flights: dict[int, _Flight] = {}
        bar = _progress_bar(self.progress_total)
        batch = TrialBatch(self.trials, self.threads, len(specs), self.prepared)
        try:
            with self.backend.open(batch) as session, \
                    LeaseKeeper(self.store) as heartbeat:
                self._session, self._heartbeat, self._flights = session, heartbeat, flights
                try:
                    while queue or flights:
                        while queue and session.free_slots() > 0:
                            spec = queue.popleft()
                            claim = self.store.claim(spec.run_id, self.environment,
                                                     lease_seconds=self.lease_seconds)
                            if claim is None:
                                done = self.store.status(spec.run_id) in DONE_STATUSES
                                outcome.skipped += done
                                outcome.busy += not done
                                continue
                            if claim.taken_over_from:
                                outcome.taken_over.append(f"{spec.description} (from {claim.taken_over_from})")
                                self.log(f"[compare] taken over: {outcome.taken_over[-1]}")
                            self._submit(_Flight(spec, claim))
                        for run_id in sorted(heartbeat.lost & set(flights)):
                            flight = flights.pop(run_id)
                            session.cancel(run_id)
                            outcome.busy += 1
                            self.log(f"[compare] {flight.spec.description}: its lease was taken "
                                     "over by another invocation; left to it")
                        for event in session.events(POLL_SECONDS):
                            self._handle(event, outcome, bar)
                except BaseException:
                    self._release(flights)
                    raise
        finally:
            if bar is not None:
                bar.close()
        return outcome

    # -- internals -------------------------------------------------------------------------

    def _submit(self, flight: _Flight) -> None:
        self._flights[flight.spec.run_id] = flight  # first: released if submitting fails
        self._heartbeat.add(flight.claim)
        resume = self.store.resume_point(flight.spec.run_id)
        self._session.submit(replace(flight.spec, checkpoint=None if resume is None else resume.state))

    def _drop(self, run_id: int) -> _Flight:
        self._heartbeat.discard(run_id)
        return self._flights.pop(run_id)

    def _handle(self, event: Event, outcome: Outcome, bar: Any) -> None:
        flight = self._flights.get(event.run)
        if flight is None or event.run in self._heartbeat.lost:
            return  # cancelled, or taken over: its events are no longer ours to record
        spec, store = flight.spec, self.store
        if isinstance(event, StartedEvent):
            store.set_environment(spec.run_id, {**self.environment, **event.environment})
        elif isinstance(event, EpochEvent):
            if event.epoch != store.epoch_count(spec.run_id) + 1:
                return  # already recorded (never expected: a retry starts after it)
            store.record_epoch(spec.run_id, event.epoch, dict(event.metrics), event.checkpoint_bytes,
                               final=event.final)
            trial = self.trials[spec.trial]
            if bar is not None:
                bar.set_postfix_str(f"{trial.label} {spec.loss} seed {spec.seed} ep {event.epoch} "
                                    f"{trial.progress(event.metrics)}", refresh=False)
                bar.update(1)
            if self.on_epoch is not None:
                try:
                    self.on_epoch(trial.label, spec.loss, spec.seed, event.epoch, dict(event.metrics))
                except Exception as error:  # the caller's callback stops this run only
                    self._drop(spec.run_id)
                    self._session.cancel(spec.run_id)
                    self._fail(spec, f"{type(error).__name__}: {error}", outcome)
        elif isinstance(event, FinishedEvent):
            self._drop(spec.run_id)
            if store.status(spec.run_id) not in DONE_STATUSES:
                store.pause(spec.run_id)  # at its rung: resumable by this or a later invocation
            outcome.trained += 1
        elif isinstance(event, FailedEvent):
            self._drop(spec.run_id)
            if event.diverged and spec.stage == "sweep":
                # In a sweep a diverging loss is the answer for that rate: recorded, never retried.
                store.diverge(spec.run_id, event.error)
                outcome.diverged += 1
            else:
                self._fail(spec, event.error, outcome)
        elif isinstance(event, LostEvent):
            self._drop(spec.run_id)
            done = store.epoch_count(spec.run_id)
            what = self.backend.lost_text
            if flight.tries <= self.backend.max_retries:
                self.log(f"[compare] {spec.description}: {what} ({event.reason}); retrying from "
                         f"epoch {done} (attempt {flight.tries + 1} of {self.backend.max_retries + 1})")
                self._submit(_Flight(spec, flight.claim, flight.tries + 1))
            else:
                self._fail(spec, f"{what} {flight.tries} time(s) ({event.reason}); {done} epoch(s) "
                           "are kept: run the same command again to resume", outcome)

    def _fail(self, spec: RunSpec, error: str, outcome: Outcome) -> None:
        self.store.fail(spec.run_id, error)
        outcome.failed.append(f"{spec.description}: {error}")
        self.log(f"[compare] failed: {outcome.failed[-1]}")

    def _release(self, flights: dict[int, _Flight]) -> None:
        """Hand back the runs still held (stopping early): paused, so any invocation resumes
        them at once instead of waiting for their leases to expire."""
        for run_id in list(flights):
            flights.pop(run_id)
            try:
                self.store.pause(run_id)
            except Exception:  # the store itself failing is what stops us: leave the lease
                pass


def _progress_bar(total: int | None) -> Any:
    if not total:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the experiments extra; run without a bar otherwise
        return None
    return tqdm(total=total, unit="epoch", desc="compare", dynamic_ncols=True)

