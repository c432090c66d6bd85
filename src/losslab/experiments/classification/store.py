"""The results store: one SQLite file (WAL mode) holding every run, epoch and checkpoint.

Tables:

- ``runs``: one row per (task, loss, seed, stage, config_hash) — the unique key that makes a
  re-run of the same grid skip finished work instead of duplicating it. ``config`` is the JSON
  of everything that determines the result; ``environment`` the library and torch versions.
  ``stage`` is ``"test"`` for a comparison run (scored on the test split); a later protocol
  can store other stages (e.g. a learning-rate ``"sweep"`` scored on a validation split) in
  the same table without clashing.
- ``epochs``: one row per finished epoch (primary key (run_id, epoch), so an epoch can never
  be recorded twice).
- ``checkpoints``: the model + optimizer + RNG state after the last finished epoch, written in
  the *same transaction* as that epoch's row, so the store never holds an epoch without its
  checkpoint or the reverse. Large states go to a file beside the database (written and
  renamed atomically before the transaction); the row then holds the file's path.

- ``sample_sets``: the exact sample-id arrays runs trained and were scored on, keyed by
  their SHA-256 (zlib-compressed little-endian int64; see :mod:`.splits`). A run's config
  names its two sets under ``samples``; identical sets are stored once.

Every write is one short ``BEGIN IMMEDIATE`` transaction; a killed process loses at most the
epoch it was computing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# States above this size are written to a file beside the database instead of a BLOB
# (SQLite's default BLOB limit is 1 GB; big BLOBs also bloat the WAL).
BLOB_LIMIT_BYTES = 256 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    task TEXT NOT NULL,
    loss TEXT NOT NULL,
    seed INTEGER NOT NULL,
    stage TEXT NOT NULL DEFAULT 'test',
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    epochs INTEGER NOT NULL,
    eval_split TEXT NOT NULL DEFAULT 'test',
    status TEXT NOT NULL DEFAULT 'pending',
    owner TEXT,
    environment TEXT,
    created_utc TEXT NOT NULL,
    started_utc TEXT,
    finished_utc TEXT,
    error TEXT,
    UNIQUE (task, loss, seed, stage, config_hash)
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    epoch INTEGER NOT NULL,
    train_loss REAL NOT NULL,
    train_accuracy REAL NOT NULL,
    eval_loss REAL NOT NULL,
    eval_accuracy REAL NOT NULL,
    eval_cross_entropy REAL NOT NULL,
    grad_mean REAL NOT NULL,
    grad_sd REAL NOT NULL,
    wall_time REAL NOT NULL,
    recorded_utc TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs (run_id),
    epoch INTEGER NOT NULL,
    state BLOB,
    path TEXT
);
CREATE TABLE IF NOT EXISTS sample_sets (
    sha256 TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    ids BLOB NOT NULL
);
"""

EPOCH_FIELDS: tuple[str, ...] = (
    "train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
    "grad_mean", "grad_sd", "wall_time",
)


# Statuses of runs that are done: "diverged" is a learning-rate sweep run whose loss became
# non-finite (a deterministic outcome of too large a rate, not an error to retry).
DONE_STATUSES: tuple[str, ...] = ("finished", "diverged")


class ResultsStoreError(ValueError):
    """The database cannot be used (not SQLite, locked, unwritable); the message says why."""


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None) -> bool:
    """Whether the process that claimed a run may still be running it."""
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # cannot check another machine: assume it is still working
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return False  # our own earlier, abandoned attempt in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    epoch: int
    state: bytes


class ResultsStore:
    """A crash-safe SQLite store of classification runs.

    Args:
        path: the database file (created with its folder if missing).
        timeout: seconds to wait for another process's write lock before giving up with a
            :class:`ResultsStoreError` (nothing already recorded is touched).
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        if self.path.exists() and self.path.is_dir():
            raise ResultsStoreError(f"db: {self.path} is a directory; expected a SQLite file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultsStoreError(f"db: cannot create the folder of {self.path}: {error}") from error
        self._connection: sqlite3.Connection | None = None
        with self._guard("open"):
            connection = self._connect()
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            with self.transaction() as cursor:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        cursor.execute(statement)
                cursor.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                # Metrics beyond the fixed columns (macro-F1, ECE, Brier, the reliability bins
                # ...) live as JSON in one column, added to databases written before it.
                columns = {row[1] for row in cursor.execute("PRAGMA table_info(epochs)")}
                if "extra" not in columns:
                    cursor.execute("ALTER TABLE epochs ADD COLUMN extra TEXT")
            version = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
            if int(version) > SCHEMA_VERSION:
                raise ResultsStoreError(
                    f"db: {self.path} has schema version {version}, newer than this losslab's "
                    f"{SCHEMA_VERSION}; upgrade losslab to read it"
                )

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per epoch.
            self._connection = sqlite3.connect(
                str(self.path), timeout=self.timeout, isolation_level=None
            )
            self._connection.execute("PRAGMA foreign_keys=ON")
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # connections do not cross process boundaries
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.timeout, self._connection = state["path"], state["timeout"], None

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into messages that say which file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as error:
            text = str(error)
            if "locked" in text or "busy" in text:
                raise ResultsStoreError(
                    f"db: {self.path} is locked by another process (waited {self.timeout:g} s "
                    f"to {action}); nothing recorded so far is lost — wait for the other "
                    "process, or use another --db file, then re-run to resume"
                ) from error
            raise ResultsStoreError(f"db: cannot {action} {self.path}: {text}") from error
        except sqlite3.DatabaseError as error:
            raise ResultsStoreError(
                f"db: {self.path} is not a readable losslab results database (SQLite): {error}"
            ) from error

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error)."""
        connection = self._connect()
        with self._guard("write to"):
            connection.execute("BEGIN IMMEDIATE")
        cursor = connection.cursor()
        try:
            yield cursor
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        with self._guard("commit to"):
            connection.execute("COMMIT")

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._guard("read"):
            row = self._connect().execute(sql, params).fetchone()
        return None if row is None else row[0]

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run a read-only query; rows are :class:`sqlite3.Row` (index by column name)."""
        connection = self._connect()
        with self._guard("read"):
            connection.row_factory = sqlite3.Row
            try:
                return connection.execute(sql, params).fetchall()
            finally:
                connection.row_factory = None

    # -- runs ------------------------------------------------------------------------------

    def ensure_run(
        self, key: RunKey, config: Mapping[str, Any], *, epochs: int, eval_split: str = "test"
    ) -> int:
        """The id of the run with this key, inserting a pending row if it is new."""
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO runs (task, loss, seed, stage, config_hash, config, epochs, "
                "eval_split, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.task, key.loss, key.seed, key.stage, key.config_hash,
                 json.dumps(config, sort_keys=True, default=str), epochs, eval_split, _now()),
            )
            cursor.execute(
                "SELECT run_id FROM runs WHERE task = ? AND loss = ? AND seed = ? AND stage = ? "
                "AND config_hash = ?",
                (key.task, key.loss, key.seed, key.stage, key.config_hash),
            )
            return int(cursor.fetchone()[0])

    def find_run(self, key: RunKey) -> tuple[int, str] | None:
        """(run_id, status) of the run with this key, or None if it was never registered."""
        rows = self.query(
            "SELECT run_id, status FROM runs WHERE task = ? AND loss = ? AND seed = ? AND stage = ? "
            "AND config_hash = ?",
            (key.task, key.loss, key.seed, key.stage, key.config_hash),
        )
        return (int(rows[0]["run_id"]), str(rows[0]["status"])) if rows else None

    def status(self, run_id: int) -> str:
        return str(self._scalar("SELECT status FROM runs WHERE run_id = ?", (run_id,)))

    def claim(self, run_id: int, environment: Mapping[str, Any]) -> bool:
        """Mark the run as ours; False if it is finished or another live process owns it."""
        with self.transaction() as cursor:
            cursor.execute("SELECT status, owner FROM runs WHERE run_id = ?", (run_id,))
            status, owner = cursor.fetchone()
            if status in DONE_STATUSES:
                return False
            if status == "running" and owner != _owner_token() and _owner_alive(owner):
                return False
            cursor.execute(
                "UPDATE runs SET status = 'running', owner = ?, environment = ?, started_utc = ?, "
                "error = NULL WHERE run_id = ?",
                (_owner_token(), json.dumps(environment, default=str), _now(), run_id),
            )
            return True

    def set_environment(self, run_id: int, environment: Mapping[str, Any]) -> None:
        """Replace the run's environment record (where a remote worker trains it)."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE runs SET environment = ? WHERE run_id = ?",
                           (json.dumps(environment, default=str), run_id))

    def diverge(self, run_id: int, error: str) -> None:
        """Record that a sweep run's loss became non-finite: a result (the rate is too large),
        final like ``finished``, so a re-run does not train it again."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE runs SET status = 'diverged', owner = NULL, error = ?, finished_utc = ? "
                "WHERE run_id = ?",
                (error[:2000], _now(), run_id),
            )

    def pause(self, run_id: int) -> None:
        """Release a run stopped at an epoch before its last on purpose (a rung of successive
        halving): not done, and not owned, so any later invocation may continue it."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE runs SET status = 'paused', owner = NULL WHERE run_id = ?",
                           (run_id,))

    def fail(self, run_id: int, error: str) -> None:
        """Record that the run stopped with an error (its finished epochs stay)."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE runs SET status = 'failed', owner = NULL, error = ? WHERE run_id = ?",
                (error[:2000], run_id),
            )

    def resume_point(self, run_id: int) -> Checkpoint | None:
        """The checkpoint after the last recorded epoch, or None to start from scratch.

        If epochs are recorded but their checkpoint cannot be read (a file removed by hand),
        those epochs are deleted so the run restarts cleanly rather than mixing two attempts.
        """
        last_epoch = self._scalar("SELECT MAX(epoch) FROM epochs WHERE run_id = ?", (run_id,))
        if last_epoch is None:
            return None
        rows = self.query("SELECT epoch, state, path FROM checkpoints WHERE run_id = ?", (run_id,))
        state: bytes | None = None
        if rows and rows[0]["epoch"] == last_epoch:
            if rows[0]["state"] is not None:
                state = bytes(rows[0]["state"])
            elif rows[0]["path"] and Path(rows[0]["path"]).is_file():
                state = Path(rows[0]["path"]).read_bytes()
        if state is None:
            with self.transaction() as cursor:
                cursor.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
                cursor.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
            return None
        return Checkpoint(epoch=int(last_epoch), state=state)

    def _checkpoint_file(self, run_id: int, epoch: int) -> Path:
        folder = self.path.with_name(self.path.name + ".checkpoints")
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"run{run_id}-epoch{epoch}.pt"

    def record_epoch(
        self,
        run_id: int,
        epoch: int,
        metrics: Mapping[str, float],
        checkpoint: bytes | None,
        *,
        final: bool,
    ) -> None:
        """Record one finished epoch (and the state after it) in one transaction.

        ``final`` marks the run finished and drops its checkpoint (the curves are kept).
        """
        missing = [name for name in EPOCH_FIELDS if name not in metrics]
        if missing:
            raise ValueError(f"metrics: missing {', '.join(missing)}")
        extra = {name: value for name, value in metrics.items() if name not in EPOCH_FIELDS}
        blob, file_path, old_files = checkpoint, None, []
        if checkpoint is not None and not final and len(checkpoint) > BLOB_LIMIT_BYTES:
            file_path = self._checkpoint_file(run_id, epoch)
            temporary = file_path.with_suffix(".tmp")
            temporary.write_bytes(checkpoint)
            os.replace(temporary, file_path)  # atomic: a reader sees the old or the new file
            blob = None
        with self.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO epochs (run_id, epoch, {', '.join(EPOCH_FIELDS)}, recorded_utc, extra) "
                f"VALUES (?, ?, {', '.join('?' for _ in EPOCH_FIELDS)}, ?, ?)",
                (run_id, epoch, *(float(metrics[name]) for name in EPOCH_FIELDS), _now(),
                 json.dumps(extra, sort_keys=True) if extra else None),
            )
            cursor.execute("SELECT path FROM checkpoints WHERE run_id = ?", (run_id,))
            old_files = [row[0] for row in cursor.fetchall() if row[0]]
            if final:
                cursor.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
                cursor.execute(
                    "UPDATE runs SET status = 'finished', owner = NULL, finished_utc = ? "
                    "WHERE run_id = ?",
                    (_now(), run_id),
                )
            elif checkpoint is not None:
                cursor.execute(
                    "INSERT INTO checkpoints (run_id, epoch, state, path) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id) DO UPDATE SET epoch = excluded.epoch, "
                    "state = excluded.state, path = excluded.path",
                    (run_id, epoch, blob, None if file_path is None else str(file_path)),
                )
        for old in old_files:  # only after the commit: until then they were the resume point
            if file_path is None or Path(old) != file_path:
                Path(old).unlink(missing_ok=True)

    # -- sample ids ------------------------------------------------------------------------

    def put_sample_set(self, ids: Any) -> str:
        """Store an id array (once per distinct content); returns its SHA-256."""
        import zlib

        import numpy as np

        from losslab.experiments.classification.splits import ids_digest

        array = np.ascontiguousarray(np.asarray(ids, dtype="<i8"))
        digest = ids_digest(array)
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO sample_sets (sha256, count, ids) VALUES (?, ?, ?)",
                (digest, int(array.size), zlib.compress(array.tobytes())),
            )
        return digest

    def sample_set(self, digest: str) -> Any:
        """The id array stored under ``digest`` (checked against it), as int64 numpy."""
        import zlib

        import numpy as np

        from losslab.experiments.classification.splits import ids_digest

        rows = self.query("SELECT count, ids FROM sample_sets WHERE sha256 = ?", (digest,))
        if not rows:
            raise KeyError(f"sample set {digest[:16]}... is not in {self.path}")
        array = np.frombuffer(zlib.decompress(rows[0]["ids"]), dtype="<i8").astype(np.int64)
        if array.size != rows[0]["count"] or ids_digest(array) != digest:
            raise ResultsStoreError(f"db: sample set {digest[:16]}... in {self.path} is corrupt")
        return array

    def run_samples(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """``{"train": ids, "eval": ids}`` of a run (as returned by :meth:`runs`)."""
        record = run["config"].get("samples")
        if not record:
            raise KeyError(f"run {run['run_id']} has no sample record (made by an older losslab)")
        return {part: self.sample_set(record[part]["sha256"]) for part in ("train", "eval")}

    # -- reading ---------------------------------------------------------------------------

    def runs(self, *, stage: str | None = "test", status: str | None = None) -> list[dict[str, Any]]:
        """The runs as dicts (config and environment parsed), oldest first."""
        clauses, params = [], []
        if stage is not None:
            clauses.append("stage = ?")
            params.append(stage)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.query(f"SELECT * FROM runs {where} ORDER BY run_id", tuple(params))
        result = []
        for row in rows:
            record = dict(row)
            record["config"] = json.loads(record["config"])
            record["environment"] = json.loads(record["environment"]) if record["environment"] else None
            result.append(record)
        return result

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        """The recorded epochs of a run, in order (extra metrics merged into each record)."""
        records = []
        for row in self.query("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)):
            record = dict(row)
            extra = record.pop("extra", None)
            if extra:
                record.update(json.loads(extra))
            records.append(record)
        return records

    def epoch_count(self, run_id: int) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM epochs WHERE run_id = ?", (run_id,)))
