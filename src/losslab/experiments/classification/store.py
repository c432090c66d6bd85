"""The results store (moved to :mod:`losslab.experiments.classification.storage`).

This module re-exports its names so existing imports keep working.
"""

from losslab.experiments.classification.storage import (
    APPLICATION_ID,
    BLOB_LIMIT_BYTES,
    DEFAULT_LEASE_SECONDS,
    DONE_STATUSES,
    EPOCH_FIELDS,
    SCHEMA_VERSION,
    Checkpoint,
    Claim,
    LeaseKeeper,
    MemoryStore,
    ResultsStore,
    ResultsStoreError,
    RunKey,
    RunStatus,
    RunStore,
    StoreRowWarning,
    Takeover,
    config_hash,
)

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
