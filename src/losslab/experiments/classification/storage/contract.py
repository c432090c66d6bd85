"""The storage contract: the abstract results store, its records and the run-status enum.

Every store (:class:`~.sqlite.ResultsStore` on disk, :class:`~.memory.MemoryStore` in memory)
implements :class:`RunStore`; the package docstring states the rules they all keep.
"""

from __future__ import annotations

import enum
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class MetaRecords(Protocol):
    """Typed access to a store's metadata records (implemented by :class:`.meta.StoreMeta`)."""

    def get_until_decided(self, task: str) -> dict[str, Any] | None: ...
    def put_until_decided(self, task: str, record: Mapping[str, Any]) -> None: ...
    def get_halving(self, task: str, digest: str, loss: str) -> dict[str, Any] | None: ...
    def put_halving(self, task: str, digest: str, loss: str, record: Mapping[str, Any]) -> None: ...


# How long a claim stays valid without a renewal. The process training a run renews it every
# DEFAULT_LEASE_SECONDS / 4 (see :class:`~.lease.LeaseKeeper`), so three missed renewals in a
# row (a stalled or dead driver) are needed before another invocation may take the run over.
DEFAULT_LEASE_SECONDS = 120.0

EPOCH_FIELDS: tuple[str, ...] = (
    "train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
    "grad_mean", "grad_sd", "wall_time",
)


class RunStatus(str, enum.Enum):
    """Where a run stands; the values are the strings stored in every database.

    A ``str`` enum: ``RunStatus.FINISHED == "finished"``, so callers may pass either.
    """

    PENDING = "pending"    # registered, never claimed
    RUNNING = "running"    # claimed: an owner holds its lease
    FINISHED = "finished"  # every planned epoch recorded
    DIVERGED = "diverged"  # a sweep run whose loss became non-finite: a result, never retried
    FAILED = "failed"      # stopped with an error; its epochs stay, a re-run resumes it
    PAUSED = "paused"      # stopped on purpose at a successive-halving rung; resumable

    def __str__(self) -> str:  # f-strings and messages show the stored value
        return self.value

    @property
    def done(self) -> bool:
        """Whether the run needs no more training (finished, or diverged in a sweep)."""
        return self in DONE_STATUSES


# Statuses of runs that are done: "diverged" is a learning-rate sweep run whose loss became
# non-finite (a deterministic outcome of too large a rate, not an error to retry).
DONE_STATUSES: tuple[RunStatus, ...] = (RunStatus.FINISHED, RunStatus.DIVERGED)


class ResultsStoreError(ValueError):
    """The database cannot be used (not a losslab database, locked, unwritable); the message
    says which file and why."""


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class RunKey:
    """What identifies a run: task label, loss name, seed, stage and the config hash."""

    task: str
    loss: str
    seed: int
    stage: str
    config_hash: str


@dataclass(frozen=True)
class Checkpoint:
    """The serialized training state after ``epoch`` (see :mod:`..training`)."""

    epoch: int
    state: bytes


@dataclass(frozen=True)
class Claim:
    """A granted lease on one run.

    Attributes:
        run_id: the run.
        owner: the owner token (``host:pid:random``) to pass to :meth:`RunStore.renew`.
        lease_seconds: how long the lease lasts after each renewal.
        expires_at: the lease's end (Unix time, seconds) as granted.
        taken_over_from: the previous owner's token when this claim took the run over from an
            owner whose lease had expired (or whose process is gone), else None.
    """

    run_id: int
    owner: str
    lease_seconds: float
    expires_at: float
    taken_over_from: str | None = None


@dataclass(frozen=True)
class Takeover:
    """One recorded take-over: ``owner`` claimed ``run_id`` from ``previous_owner``."""

    run_id: int
    previous_owner: str
    owner: str
    taken_utc: str
    reason: str


def coerce_status(status: RunStatus | str, *, argument: str = "status") -> RunStatus:
    """``status`` as a :class:`RunStatus` (a member or its string value)."""
    try:
        return RunStatus(status)
    except ValueError:
        names = ", ".join(member.value for member in RunStatus)
        raise ValueError(f"{argument}: expected one of {names}, got {status!r}") from None


class RunStore(ABC):
    """The interface every results store implements (the contract is the package docstring).

    Reads return only rows that passed validation (:mod:`.validation`); a bad row is reported
    once as a :class:`~.validation.StoreRowWarning` and then behaves as if absent.
    """

    path: Path
    meta: MetaRecords

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - a store without resources has nothing to release
        """Release the store's resources (a closed store reopens on the next call)."""

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def renewer(self) -> RunStore:
        """A handle a lease-renewing thread may use while this one trains (see
        :class:`~.lease.LeaseKeeper`); a thread-safe store returns itself."""
        return self

    # -- runs ------------------------------------------------------------------------------

    @abstractmethod
    def ensure_run(self, key: RunKey, config: Mapping[str, Any], *, epochs: int,
                   eval_split: str = "test") -> int:
        """The id of the run with this key, inserting a pending row if it is new."""

    @abstractmethod
    def find_run(self, key: RunKey) -> tuple[int, RunStatus] | None:
        """(run_id, status) of the run with this key, or None if it was never registered."""

    @abstractmethod
    def status(self, run_id: int) -> RunStatus:
        """The run's status (KeyError for an unknown or invalid run)."""

    @abstractmethod
    def run(self, run_id: int) -> dict[str, Any] | None:
        """One run as :meth:`runs` returns it, or None when absent or invalid."""

    @abstractmethod
    def claim(self, run_id: int, environment: Mapping[str, Any], *,
              lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Claim | None:
        """Lease the run to this process.

        Returns None when the run is done or another owner's lease is live; otherwise the
        :class:`Claim` (``taken_over_from`` set when an expired owner was displaced, which is
        also recorded for :meth:`takeovers`).
        """

    @abstractmethod
    def renew(self, run_id: int, owner: str) -> bool:
        """Extend ``owner``'s lease by its length; False when ``owner`` no longer holds it."""

    @abstractmethod
    def takeovers(self) -> list[Takeover]:
        """Every recorded take-over, oldest first."""

    @abstractmethod
    def set_environment(self, run_id: int, environment: Mapping[str, Any]) -> None:
        """Replace the run's environment record (where a remote worker trains it)."""

    @abstractmethod
    def diverge(self, run_id: int, error: str) -> None:
        """Record that a sweep run's loss became non-finite (final; the lease is released)."""

    @abstractmethod
    def pause(self, run_id: int) -> None:
        """Release a run stopped at a successive-halving rung: resumable by anyone."""

    @abstractmethod
    def fail(self, run_id: int, error: str) -> None:
        """Record that the run stopped with an error (its epochs stay; the lease is released)."""

    @abstractmethod
    def resume_point(self, run_id: int) -> Checkpoint | None:
        """The checkpoint after the last recorded epoch, or None to start from scratch.

        When epochs are recorded but their checkpoint cannot be read, those epochs are
        deleted so the run restarts cleanly rather than mixing two attempts.
        """

    @abstractmethod
    def record_epoch(self, run_id: int, epoch: int, metrics: Mapping[str, float],
                     checkpoint: bytes | None, *, final: bool) -> None:
        """Record one finished epoch and the state after it, atomically.

        ``final`` marks the run finished, drops its checkpoint and releases the lease.
        """

    # -- sample ids ------------------------------------------------------------------------

    @abstractmethod
    def put_sample_set(self, ids: Any) -> str:
        """Store an id array (once per distinct content); returns its SHA-256."""

    @abstractmethod
    def sample_set(self, digest: str) -> Any:
        """The id array stored under ``digest`` (checked against it), as int64 numpy."""

    def run_samples(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """``{"train": ids, "eval": ids}`` of a run (as returned by :meth:`runs`)."""
        record = run["config"].get("samples")
        if not record:
            raise KeyError(f"run {run['run_id']} has no sample record (made by an older losslab)")
        return {part: self.sample_set(record[part]["sha256"]) for part in ("train", "eval")}

    # -- reading ---------------------------------------------------------------------------

    @abstractmethod
    def runs(self, *, stage: str | None = "test",
             status: RunStatus | str | None = None) -> list[dict[str, Any]]:
        """The valid runs as dicts (config and environment parsed), oldest first."""

    @abstractmethod
    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        """The valid recorded epochs of a run, in order (extra metrics merged in)."""

    def epoch_count(self, run_id: int) -> int:
        """How many valid epochs the run has recorded."""
        return len(self.epochs(run_id))
