"""Results storage: where runs, epochs, checkpoints and protocol records live.

The contract every store keeps (:class:`~.contract.RunStore`; :class:`~.sqlite.ResultsStore`
on disk, :class:`~.memory.MemoryStore` in memory):

- **A run is identified by its key** (:class:`~.contract.RunKey`: task label, loss, seed,
  stage, config hash). :meth:`ensure_run` is idempotent: the same key always gives the same
  run id, so re-running a grid skips finished work and resumes the rest.
- **Statuses** are :class:`~.contract.RunStatus` members (a ``str`` enum whose values are the
  strings in every database: pending, running, finished, diverged, failed, paused); methods
  accept members or the plain strings. ``finished`` and ``diverged`` are final.
- **Ownership is a lease.** :meth:`claim` grants a :class:`~.contract.Claim` (an owner token
  ``host:pid:random``) for ``lease_seconds`` (default
  :data:`~.contract.DEFAULT_LEASE_SECONDS`), or None when the run is done or another owner's
  lease is live; :meth:`renew` extends it while the run trains (:class:`~.lease.LeaseKeeper`
  renews every quarter lease) and answers False once it was lost. Finishing, failing,
  diverging and pausing release it. An expired lease (or a provably dead owner process on the
  same host) is taken over by any claimer on any host, and recorded: :meth:`takeovers`.
- **An epoch and the state after it are written atomically**; a run's epochs are 1..k with no
  gaps, and :meth:`resume_point` returns the state after epoch k or None (then the run's
  epochs are dropped and it restarts from scratch: never two attempts mixed).
- **The store is a trust boundary.** Every row read back is validated (:mod:`.validation`):
  identifiers are plain names, seeds and epochs integers, metrics finite, configs and
  environments JSON objects. A bad row is reported once as a
  :class:`~.validation.StoreRowWarning` ("row N of table runs: seed is not an integer") and
  skipped by every read. No path read from a store is ever opened, written or deleted:
  a checkpoint file's name derives only from the database's location, run id and epoch.
- **Foreign files are refused unchanged.** The SQLite store opens only files that carry
  losslab's application id, or the tables of a database written before it (migrated in place
  when opened for writing, read as they are with ``readonly=True``); anything else raises
  :class:`~.contract.ResultsStoreError` before a byte is written (:mod:`.schema`).
- **Protocol records** (until-decided rounds, successive-halving decisions) are read and
  written through :attr:`meta` (:class:`~.meta.StoreMeta`), never by key strings elsewhere.
- **No SQL outside this package.**
"""

from losslab.experiments.classification.storage.contract import (
    DEFAULT_LEASE_SECONDS,
    DONE_STATUSES,
    EPOCH_FIELDS,
    Checkpoint,
    Claim,
    ResultsStoreError,
    RunKey,
    RunStatus,
    RunStore,
    Takeover,
    config_hash,
)
from losslab.experiments.classification.storage.lease import LeaseKeeper
from losslab.experiments.classification.storage.memory import MemoryStore
from losslab.experiments.classification.storage.schema import APPLICATION_ID, SCHEMA_VERSION
from losslab.experiments.classification.storage.sqlite import BLOB_LIMIT_BYTES, ResultsStore
from losslab.experiments.classification.storage.validation import StoreRowWarning

__all__ = [
    "APPLICATION_ID",
    "BLOB_LIMIT_BYTES",
    "DEFAULT_LEASE_SECONDS",
    "DONE_STATUSES",
    "EPOCH_FIELDS",
    "SCHEMA_VERSION",
    "Checkpoint",
    "Claim",
    "LeaseKeeper",
    "MemoryStore",
    "ResultsStore",
    "ResultsStoreError",
    "RunKey",
    "RunStatus",
    "RunStore",
    "StoreRowWarning",
    "Takeover",
    "config_hash",
]
