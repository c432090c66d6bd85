"""A results store in memory, for protocol unit tests that need neither SQLite nor processes.

It keeps the same tables as the SQLite store, as lists of raw rows (``tables["runs"]`` ...),
and reads them back through the same validation, so a test can plant a hostile row in memory
exactly as in a file. Nothing outlives the object; it cannot be shared with other processes.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from losslab.experiments.classification.storage import lease as _lease
from losslab.experiments.classification.storage.contract import (
    DEFAULT_LEASE_SECONDS,
    EPOCH_FIELDS,
    Checkpoint,
    Claim,
    ResultsStoreError,
    RunKey,
    RunStatus,
    RunStore,
    Takeover,
    coerce_status,
)
from losslab.experiments.classification.storage.meta import StoreMeta
from losslab.experiments.classification.storage.validation import (
    RowReporter,
    check_checkpoint,
    check_epoch,
    check_key,
    check_lease,
    check_run,
)

_RELEASED = {"owner": None, "owner_scope": None, "lease_seconds": None, "lease_expires": None}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class MemoryStore(RunStore):
    """The :class:`~.contract.RunStore` contract over Python lists (one process, any thread).

    Args:
        name: what messages call the store (its ``path``).
    """

    def __init__(self, name: str = ":memory:") -> None:
        self.path = Path(name)
        self.tables: dict[str, list[dict[str, Any]]] = {
            "runs": [], "epochs": [], "checkpoints": [], "sample_sets": [], "takeovers": [],
            "meta": []}
        self._lock = threading.RLock()
        self._reporter = RowReporter(name)
        self.meta = StoreMeta(self._meta_get, self._meta_put, self._reporter)

    def renewer(self) -> MemoryStore:
        return self  # every operation takes the lock

    # -- rows ------------------------------------------------------------------------------

    def _run_row(self, run_id: int) -> dict[str, Any] | None:
        return next((row for row in self.tables["runs"] if row.get("run_id") == run_id), None)

    def _valid(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        record, problem = check_run(row)
        if problem:
            self._reporter.bad("runs", row.get("run_id"), problem)
        return record

    def _key_row(self, key: RunKey) -> dict[str, Any] | None:
        wanted = (key.task, key.loss, key.seed, key.stage, key.config_hash)
        return next((row for row in self.tables["runs"]
                     if tuple(row.get(f) for f in ("task", "loss", "seed", "stage", "config_hash"))
                     == wanted), None)

    # -- runs ------------------------------------------------------------------------------

    def ensure_run(self, key: RunKey, config: Mapping[str, Any], *, epochs: int,
                   eval_split: str = "test") -> int:
        check_key(key)
        with self._lock:
            row = self._key_row(key)
            if row is None:
                row = {"run_id": 1 + max((r.get("run_id", 0) for r in self.tables["runs"]
                                          if type(r.get("run_id")) is int), default=0),
                       "task": key.task, "loss": key.loss, "seed": key.seed, "stage": key.stage,
                       "config_hash": key.config_hash,
                       "config": json.dumps(config, sort_keys=True, default=str),
                       "epochs": int(epochs), "eval_split": eval_split, "status": "pending",
                       "environment": None, "created_utc": _now(), "started_utc": None,
                       "finished_utc": None, "error": None, **_RELEASED}
                self.tables["runs"].append(row)
            if self._valid(row) is None:
                raise ResultsStoreError(
                    f"db: {self.path}: the stored row of run {key.task}/{key.loss}/seed {key.seed} "
                    "is invalid (see the warning above), so it cannot be resumed")
            return int(row["run_id"])

    def find_run(self, key: RunKey) -> tuple[int, RunStatus] | None:
        with self._lock:
            record = self._valid(self._key_row(key))
        return None if record is None else (record["run_id"], record["status"])

    def run(self, run_id: int) -> dict[str, Any] | None:
        with self._lock:
            return self._valid(self._run_row(int(run_id)))

    def status(self, run_id: int) -> RunStatus:
        record = self.run(run_id)
        if record is None:
            raise KeyError(f"run {run_id} is not a valid run of {self.path}")
        return record["status"]

    def claim(self, run_id: int, environment: Mapping[str, Any], *,
              lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Claim | None:
        lease_seconds = check_lease(lease_seconds)
        with self._lock:
            row = self._run_row(int(run_id))
            record = self._valid(row)
            if row is None or record is None or record["status"].done:
                return None
            now = _lease.now()
            decision = (_lease.decide(owner=record["owner"], scope=record.get("owner_scope"),
                                      expires_at=record.get("lease_expires"), now=now)
                        if record["status"] == RunStatus.RUNNING else _lease.Decision("claim"))
            if decision.action == "busy":
                return None
            token = _lease.owner_token()
            previous = record["owner"] if decision.action == "take_over" else None
            row.update(status="running", owner=token, owner_scope=_lease.owner_scope(),
                       lease_seconds=lease_seconds, lease_expires=now + lease_seconds,
                       environment=json.dumps(environment, default=str), started_utc=_now(),
                       error=None)
            if previous is not None and decision.recorded:
                self.tables["takeovers"].append({
                    "run_id": int(run_id), "previous_owner": previous, "owner": token,
                    "taken_utc": _now(), "reason": decision.reason})
        return Claim(int(run_id), token, lease_seconds, now + lease_seconds,
                     previous if decision.recorded else None)

    def renew(self, run_id: int, owner: str) -> bool:
        with self._lock:
            row = self._run_row(int(run_id))
            if row is None or row.get("owner") != owner or row.get("status") != "running" \
                    or row.get("lease_seconds") is None:
                return False
            row["lease_expires"] = _lease.now() + row["lease_seconds"]
            return True

    def takeovers(self) -> list[Takeover]:
        with self._lock:
            return [Takeover(**row) for row in self.tables["takeovers"]]

    def _update(self, run_id: int, **values: Any) -> None:
        with self._lock:
            row = self._run_row(int(run_id))
            if row is not None:
                row.update(values)

    def set_environment(self, run_id: int, environment: Mapping[str, Any]) -> None:
        self._update(run_id, environment=json.dumps(environment, default=str))

    def diverge(self, run_id: int, error: str) -> None:
        self._update(run_id, status="diverged", error=error[:2000], finished_utc=_now(), **_RELEASED)

    def pause(self, run_id: int) -> None:
        self._update(run_id, status="paused", **_RELEASED)

    def fail(self, run_id: int, error: str) -> None:
        self._update(run_id, status="failed", error=error[:2000], **_RELEASED)

    # -- epochs and checkpoints ------------------------------------------------------------

    def resume_point(self, run_id: int) -> Checkpoint | None:
        run_id = int(run_id)
        with self._lock:
            epochs = [record["epoch"] for record in self.epochs(run_id)]
            if not epochs:
                return None
            last = epochs[-1]
            row = next((r for r in self.tables["checkpoints"] if r.get("run_id") == run_id), None)
            if row is not None and check_checkpoint(row):
                self._reporter.bad("checkpoints", run_id, check_checkpoint(row) or "")
                row = None
            if (row is not None and row["epoch"] == last and row.get("state") is not None
                    and epochs == list(range(1, last + 1))):
                return Checkpoint(epoch=last, state=bytes(row["state"]))
            self.tables["epochs"] = [r for r in self.tables["epochs"] if r.get("run_id") != run_id]
            self.tables["checkpoints"] = [r for r in self.tables["checkpoints"]
                                          if r.get("run_id") != run_id]
            return None

    def record_epoch(self, run_id: int, epoch: int, metrics: Mapping[str, float],
                     checkpoint: bytes | None, *, final: bool) -> None:
        missing = [name for name in EPOCH_FIELDS if name not in metrics]
        if missing:
            raise ValueError(f"metrics: missing {', '.join(missing)}")
        run_id, epoch = int(run_id), int(epoch)
        extra = {name: value for name, value in metrics.items() if name not in EPOCH_FIELDS}
        with self._lock:
            if any(r.get("run_id") == run_id and r.get("epoch") == epoch for r in self.tables["epochs"]):
                raise ResultsStoreError(f"db: {self.path}: epoch {epoch} of run {run_id} is "
                                        "already recorded")
            self.tables["epochs"].append({
                "run_id": run_id, "epoch": epoch,
                **{name: float(metrics[name]) for name in EPOCH_FIELDS},
                "recorded_utc": _now(), "extra": json.dumps(extra, sort_keys=True) if extra else None})
            others = [r for r in self.tables["checkpoints"] if r.get("run_id") != run_id]
            if final:
                self.tables["checkpoints"] = others
                self._update(run_id, status="finished", finished_utc=_now(), **_RELEASED)
            elif checkpoint is not None:
                self.tables["checkpoints"] = [*others, {"run_id": run_id, "epoch": epoch,
                                                        "state": bytes(checkpoint), "path": None}]

    # -- sample ids ------------------------------------------------------------------------

    def put_sample_set(self, ids: Any) -> str:
        import numpy as np

        from losslab.experiments.classification.planning.splits import ids_digest

        array = np.ascontiguousarray(np.asarray(ids, dtype="<i8"))
        digest = ids_digest(array)
        with self._lock:
            if not any(r.get("sha256") == digest for r in self.tables["sample_sets"]):
                self.tables["sample_sets"].append(
                    {"sha256": digest, "count": int(array.size), "ids": array.copy()})
        return digest

    def sample_set(self, digest: str) -> Any:
        import numpy as np

        from losslab.experiments.classification.planning.splits import ids_digest

        with self._lock:
            row = next((r for r in self.tables["sample_sets"] if r.get("sha256") == digest), None)
        if row is None:
            raise KeyError(f"sample set {str(digest)[:16]}... is not in {self.path}")
        array = np.asarray(row["ids"], dtype=np.int64)
        if array.size != row["count"] or ids_digest(array) != digest:
            raise ResultsStoreError(f"db: sample set {digest[:16]}... in {self.path} is corrupt")
        return array.copy()

    # -- reading ---------------------------------------------------------------------------

    def runs(self, *, stage: str | None = "test",
             status: RunStatus | str | None = None) -> list[dict[str, Any]]:
        wanted = None if status is None else coerce_status(status).value
        with self._lock:
            rows = [row for row in self.tables["runs"]
                    if (stage is None or row.get("stage") == stage)
                    and (wanted is None or row.get("status") == wanted)]
            records = [self._valid(row) for row in rows]
        return sorted((r for r in records if r is not None), key=lambda r: r["run_id"])

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = [(number, row) for number, row in enumerate(self.tables["epochs"], start=1)
                    if row.get("run_id") == int(run_id)]
        records = []
        for number, row in rows:
            record, problem = check_epoch(row)
            if problem:
                self._reporter.bad("epochs", number, problem)
                continue
            records.append(record)
        return sorted(records, key=lambda r: r["epoch"])

    # -- meta ------------------------------------------------------------------------------

    def _meta_get(self, key: str) -> str | None:
        with self._lock:
            return next((r["value"] for r in self.tables["meta"] if r.get("key") == key), None)

    def _meta_put(self, key: str, value: str) -> None:
        with self._lock:
            self.tables["meta"] = [r for r in self.tables["meta"] if r.get("key") != key]
            self.tables["meta"].append({"key": key, "value": value})

