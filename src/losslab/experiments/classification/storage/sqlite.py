"""The results store on disk: one SQLite file (WAL mode) with every run, epoch and checkpoint.

Tables (see :mod:`.schema`):

- ``runs``: one row per (task, loss, seed, stage, config_hash) — the unique key that makes a
  re-run of the same grid skip finished work instead of duplicating it. ``config`` is the JSON
  of everything that determines the result; ``environment`` the library and torch versions.
  ``stage`` is ``"test"`` for a comparison run (scored on the test split) or ``"sweep"`` for a
  learning-rate sweep run (scored on a validation split). The owner columns hold its lease.
- ``epochs``: one row per finished epoch (primary key (run_id, epoch)).
- ``checkpoints``: the model + optimizer + RNG state after the last finished epoch, written in
  the *same transaction* as that epoch's row. A state above :data:`BLOB_LIMIT_BYTES` goes to
  ``<database file name>.checkpoints/run<run_id>-epoch<epoch>.pt`` beside the database, a
  name derived only from the database's own location and two integers; the row's ``path``
  column (written by earlier releases) is never opened, written or deleted.
- ``sample_sets``: the exact sample-id arrays runs trained and were scored on, keyed by their
  SHA-256 (zlib-compressed little-endian int64; see :mod:`..splits`).
- ``takeovers``: every run claimed from an owner whose lease had expired.
- ``meta``: protocol records (:mod:`.meta`) and the schema version.

Every write is one short ``BEGIN IMMEDIATE`` transaction; a killed process loses at most the
epoch it was computing.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from losslab.experiments.classification.storage import lease as _lease
from losslab.experiments.classification.storage import schema as _schema
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
    check_sample_set,
    identifier_problem,
)

# States above this size are written to a file beside the database instead of a BLOB
# (SQLite's default BLOB limit is 1 GB; big BLOBs also bloat the WAL).
BLOB_LIMIT_BYTES = 256 * 1024 * 1024


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ResultsStore(RunStore):
    """A crash-safe SQLite store of classification runs.

    Args:
        path: the database file (created with its folder if missing). An existing file must
            be a losslab results database; any other file is refused and left unchanged.
        timeout: seconds to wait for another process's write lock before giving up with a
            :class:`ResultsStoreError` (nothing already recorded is touched).
        readonly: open without writing anything (reports, exports): a database written by an
            earlier release is read as it is, not migrated.

    Raises:
        ResultsStoreError: the file is not a losslab database (not SQLite, or another
            program's), is newer than this losslab, is a folder, or is locked.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0, readonly: bool = False) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.readonly = bool(readonly)
        self._connection: sqlite3.Connection | None = None
        self._reporter = RowReporter(str(self.path))
        self.meta = StoreMeta(self._meta_get, self._meta_put, self._reporter)
        if self.path.is_dir():
            raise ResultsStoreError(f"db: {self.path} is a directory; expected a SQLite file path")
        found = _schema.probe(self.path, timeout=self.timeout)
        if found.kind == "foreign":
            raise ResultsStoreError(
                f"db: {self.path} is not a readable losslab results database ({found.reason}); "
                "losslab left it unchanged: pass a new file name or a losslab results database")
        self._check_version(found.version)
        if self.readonly:
            if found.kind == "new":
                raise ResultsStoreError(f"db: no results database at {self.path}")
            with self._guard("open"):
                # (version 1 files predate user_version: their probe found it in meta)
                stored = self._connect().execute("PRAGMA user_version").fetchone()[0]
                self._check_version(max(stored, found.version))
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultsStoreError(f"db: cannot create the folder of {self.path}: {error}") from error
        with self._guard("open"):
            connection = self._connect()
            if found.kind != "losslab" or found.version < _schema.SCHEMA_VERSION:
                # The application id is written in the same transaction as the tables, so a
                # concurrent opener sees an empty file or a marked one, never an unmarked one.
                with self.transaction() as cursor:
                    _schema.create_or_migrate(cursor)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            if found.kind == "legacy":  # a WAL file: put the new header on disk now
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._check_version(connection.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self, version: int) -> None:
        if version > _schema.SCHEMA_VERSION:
            self.close()
            raise ResultsStoreError(
                f"db: {self.path} has schema version {version}, newer than this losslab's "
                f"{_schema.SCHEMA_VERSION}; upgrade losslab to read it")
        self.version = version

    # -- connection ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            with self._guard("open"):
                # isolation_level=None: we issue BEGIN/COMMIT ourselves, one per epoch.
                self._connection = sqlite3.connect(str(self.path), timeout=self.timeout,
                                                   isolation_level=None)
                if self.readonly:
                    # Not mode=ro: a read-only and a read-write connection to one WAL file in
                    # the same process can fail with I/O errors on the shared-memory index.
                    self._connection.execute("PRAGMA query_only=ON")
                else:
                    self._connection.execute("PRAGMA foreign_keys=ON")
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ResultsStore:
        return self

    def __getstate__(self) -> dict[str, Any]:  # connections do not cross process boundaries
        return {"path": self.path, "timeout": self.timeout, "readonly": self.readonly}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The sending process opened (and checked or migrated) the file already.
        self.path, self.timeout = state["path"], state["timeout"]
        self.readonly = state.get("readonly", False)
        self.version, self._connection = _schema.SCHEMA_VERSION, None
        self._reporter = RowReporter(str(self.path))
        self.meta = StoreMeta(self._meta_get, self._meta_put, self._reporter)

    def renewer(self) -> ResultsStore:
        """A second handle on the same (already checked) file, with its own connection, for a
        lease-renewing thread."""
        handle = ResultsStore.__new__(ResultsStore)
        handle.__setstate__(self.__getstate__())
        return handle

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
        if self.readonly:
            raise ResultsStoreError(f"db: {self.path} was opened read-only; nothing can be written")
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

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Raw, unvalidated rows of a read-only query (diagnostics and tests; losslab itself
        reads through the typed methods, which validate every row)."""
        connection = self._connect()
        with self._guard("read"):
            connection.row_factory = sqlite3.Row
            try:
                return connection.execute(sql, params).fetchall()
            finally:
                connection.row_factory = None

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self.query(sql, params)]

    def _tables(self) -> set[str]:
        return {row["name"] for row in self._rows("SELECT name FROM sqlite_master WHERE type = 'table'")}

    # -- runs ------------------------------------------------------------------------------

    def _valid_run(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        record, problem = check_run(row)
        if problem:
            self._reporter.bad("runs", row.get("run_id"), problem)
        return record

    def _key_row(self, key: RunKey) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE task = ? AND loss = ? AND seed = ? AND stage = ? "
                          "AND config_hash = ?",
                          (key.task, key.loss, key.seed, key.stage, key.config_hash))
        return rows[0] if rows else None

    def ensure_run(self, key: RunKey, config: Mapping[str, Any], *, epochs: int,
                   eval_split: str = "test") -> int:
        check_key(key)
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO runs (task, loss, seed, stage, config_hash, config, epochs, "
                "eval_split, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.task, key.loss, key.seed, key.stage, key.config_hash,
                 json.dumps(config, sort_keys=True, default=str), epochs, eval_split, _now()),
            )
        row = self._key_row(key)
        if row is None or self._valid_run(row) is None:
            raise ResultsStoreError(
                f"db: {self.path}: the stored row of run {key.task}/{key.loss}/seed {key.seed} is "
                "invalid (see the warning above), so it cannot be resumed: use another --db file")
        return int(row["run_id"])

    def find_run(self, key: RunKey) -> tuple[int, RunStatus] | None:
        record = self._valid_run(self._key_row(key))
        return None if record is None else (record["run_id"], record["status"])

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id = ?", (int(run_id),))
        return self._valid_run(rows[0] if rows else None)

    def status(self, run_id: int) -> RunStatus:
        record = self.run(run_id)
        if record is None:
            raise KeyError(f"run {run_id} is not a valid run of {self.path}")
        return record["status"]

    def claim(self, run_id: int, environment: Mapping[str, Any], *,
              lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Claim | None:
        lease_seconds = check_lease(lease_seconds)
        with self.transaction() as cursor:
            cursor.execute("SELECT * FROM runs WHERE run_id = ?", (int(run_id),))
            found = cursor.fetchone()
            names = [column[0] for column in cursor.description]
            record = self._valid_run(None if found is None else dict(zip(names, found, strict=True)))
            if record is None or record["status"].done:
                return None
            now = _lease.now()
            decision = (_lease.decide(owner=record["owner"], scope=record.get("owner_scope"),
                                      expires_at=record.get("lease_expires"), now=now)
                        if record["status"] == RunStatus.RUNNING else _lease.Decision("claim"))
            if decision.action == "busy":
                return None
            token = _lease.owner_token()
            cursor.execute(
                "UPDATE runs SET status = 'running', owner = ?, owner_scope = ?, lease_seconds = ?, "
                "lease_expires = ?, environment = ?, started_utc = ?, error = NULL WHERE run_id = ?",
                (token, _lease.owner_scope(), lease_seconds, now + lease_seconds,
                 json.dumps(environment, default=str), _now(), int(run_id)),
            )
            previous = record["owner"] if decision.action == "take_over" else None
            if previous is not None and decision.recorded:
                cursor.execute(
                    "INSERT INTO takeovers (run_id, previous_owner, owner, taken_utc, reason) "
                    "VALUES (?, ?, ?, ?, ?)", (int(run_id), previous, token, _now(), decision.reason))
        return Claim(int(run_id), token, lease_seconds, now + lease_seconds,
                     previous if decision.recorded else None)

    def renew(self, run_id: int, owner: str) -> bool:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE runs SET lease_expires = ? + lease_seconds WHERE run_id = ? AND owner = ? "
                "AND status = 'running' AND lease_seconds IS NOT NULL",
                (_lease.now(), int(run_id), owner))
            return cursor.rowcount == 1

    def takeovers(self) -> list[Takeover]:
        if "takeovers" not in self._tables():  # an earlier release's file, read as it is
            return []
        result = []
        for row in self._rows("SELECT * FROM takeovers ORDER BY takeover_id"):
            fields = (row.get("previous_owner"), row.get("owner"))
            if type(row.get("run_id")) is not int or any(identifier_problem(f, "owner") for f in fields) \
                    or not isinstance(row.get("taken_utc"), str) or not isinstance(row.get("reason"), str):
                self._reporter.bad("takeovers", row.get("takeover_id"), "not a valid take-over record")
                continue
            result.append(Takeover(row["run_id"], row["previous_owner"], row["owner"],
                                   row["taken_utc"], row["reason"]))
        return result

    def set_environment(self, run_id: int, environment: Mapping[str, Any]) -> None:
        with self.transaction() as cursor:
            cursor.execute("UPDATE runs SET environment = ? WHERE run_id = ?",
                           (json.dumps(environment, default=str), int(run_id)))

    _RELEASE = "owner = NULL, owner_scope = NULL, lease_seconds = NULL, lease_expires = NULL"

    def diverge(self, run_id: int, error: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(f"UPDATE runs SET status = 'diverged', {self._RELEASE}, error = ?, "
                           "finished_utc = ? WHERE run_id = ?", (error[:2000], _now(), int(run_id)))

    def pause(self, run_id: int) -> None:
        with self.transaction() as cursor:
            cursor.execute(f"UPDATE runs SET status = 'paused', {self._RELEASE} WHERE run_id = ?",
                           (int(run_id),))

    def fail(self, run_id: int, error: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(f"UPDATE runs SET status = 'failed', {self._RELEASE}, error = ? "
                           "WHERE run_id = ?", (error[:2000], int(run_id)))

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint_folder(self) -> Path:
        """Where states above :data:`BLOB_LIMIT_BYTES` go: beside the database file."""
        return self.path.with_name(self.path.name + ".checkpoints")

    def checkpoint_file(self, run_id: int, epoch: int) -> Path:
        """The one file a run's state after ``epoch`` may live in (two integers name it)."""
        return self.checkpoint_folder() / f"run{int(run_id)}-epoch{int(epoch)}.pt"

    def _is_our_file(self, candidate: Path) -> bool:
        """A regular file (no symlink) in a real checkpoint folder: safe to read or remove."""
        return (not self.checkpoint_folder().is_symlink() and not candidate.is_symlink()
                and candidate.is_file())

    def _checkpoint_row(self, run_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT run_id, epoch, state, path FROM checkpoints WHERE run_id = ?",
                          (int(run_id),))
        if not rows:
            return None
        problem = check_checkpoint(rows[0])
        if problem:
            self._reporter.bad("checkpoints", run_id, problem)
            return None
        return rows[0]

    def resume_point(self, run_id: int) -> Checkpoint | None:
        epochs = [record["epoch"] for record in self.epochs(run_id)]
        if not epochs:
            return None
        last = epochs[-1]
        row = self._checkpoint_row(run_id)
        state: bytes | None = None
        if row is not None and row["epoch"] == last and epochs == list(range(1, last + 1)):
            if row["state"] is not None:
                state = bytes(row["state"])
            else:
                derived = self.checkpoint_file(run_id, last)
                # An earlier release stored the file's path; only that same derived name
                # counts, and the derived file is what is read, never the stored path.
                stored = row["path"]
                if (stored is None or stored == str(derived)) and self._is_our_file(derived):
                    state = derived.read_bytes()
        if state is None:
            with self.transaction() as cursor:
                cursor.execute("DELETE FROM epochs WHERE run_id = ?", (int(run_id),))
                cursor.execute("DELETE FROM checkpoints WHERE run_id = ?", (int(run_id),))
            return None
        return Checkpoint(epoch=int(last), state=state)

    def _write_checkpoint_file(self, run_id: int, epoch: int, state: bytes) -> None:
        from losslab import _paths

        folder = self.checkpoint_folder()
        if folder.is_symlink():
            raise ResultsStoreError(f"db: {folder} is a symlink; losslab writes checkpoints only "
                                    "into a real folder beside the database")
        _paths.ensure_folder(folder, option="db")
        _paths.write_bytes(_paths.inside(folder, self.checkpoint_file(run_id, epoch).name), state)

    def record_epoch(self, run_id: int, epoch: int, metrics: Mapping[str, float],
                     checkpoint: bytes | None, *, final: bool) -> None:
        missing = [name for name in EPOCH_FIELDS if name not in metrics]
        if missing:
            raise ValueError(f"metrics: missing {', '.join(missing)}")
        extra = {name: value for name, value in metrics.items() if name not in EPOCH_FIELDS}
        run_id, epoch = int(run_id), int(epoch)
        blob = checkpoint
        if checkpoint is not None and not final and len(checkpoint) > BLOB_LIMIT_BYTES:
            self._write_checkpoint_file(run_id, epoch, checkpoint)  # before the transaction
            blob = None
        previous = self._checkpoint_row(run_id)
        with self.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO epochs (run_id, epoch, {', '.join(EPOCH_FIELDS)}, recorded_utc, extra) "
                f"VALUES (?, ?, {', '.join('?' for _ in EPOCH_FIELDS)}, ?, ?)",
                (run_id, epoch, *(float(metrics[name]) for name in EPOCH_FIELDS), _now(),
                 json.dumps(extra, sort_keys=True) if extra else None),
            )
            if final:
                cursor.execute("DELETE FROM checkpoints WHERE run_id = ?", (run_id,))
                cursor.execute(f"UPDATE runs SET status = 'finished', {self._RELEASE}, "
                               "finished_utc = ? WHERE run_id = ?", (_now(), run_id))
            elif checkpoint is not None:
                cursor.execute(
                    "INSERT INTO checkpoints (run_id, epoch, state, path) VALUES (?, ?, ?, NULL) "
                    "ON CONFLICT (run_id) DO UPDATE SET epoch = excluded.epoch, "
                    "state = excluded.state, path = NULL",
                    (run_id, epoch, blob),
                )
        # Only after the commit (until then it was the resume point): the previous state's
        # derived file, if it had one. No other file is ever removed.
        if previous is not None and (final or checkpoint is not None) and previous["epoch"] != epoch:
            old = self.checkpoint_file(run_id, previous["epoch"])
            if self._is_our_file(old):
                old.unlink(missing_ok=True)

    # -- sample ids ------------------------------------------------------------------------

    def put_sample_set(self, ids: Any) -> str:
        import zlib

        import numpy as np

        from losslab.experiments.classification.planning.splits import ids_digest

        array = np.ascontiguousarray(np.asarray(ids, dtype="<i8"))
        digest = ids_digest(array)
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO sample_sets (sha256, count, ids) VALUES (?, ?, ?)",
                (digest, int(array.size), zlib.compress(array.tobytes())),
            )
        return digest

    def sample_set(self, digest: str) -> Any:
        import zlib

        import numpy as np

        from losslab.experiments.classification.planning.splits import ids_digest

        rows = self._rows("SELECT sha256, count, ids FROM sample_sets WHERE sha256 = ?", (str(digest),))
        problem = check_sample_set(rows[0]) if rows else None
        if problem:
            self._reporter.bad("sample_sets", str(digest)[:16], problem)
        if not rows or problem:
            raise KeyError(f"sample set {str(digest)[:16]}... is not in {self.path}")
        try:
            array = np.frombuffer(zlib.decompress(rows[0]["ids"]), dtype="<i8").astype(np.int64)
        except zlib.error as error:
            raise ResultsStoreError(f"db: sample set {digest[:16]}... in {self.path} is corrupt") from error
        if array.size != rows[0]["count"] or ids_digest(array) != digest:
            raise ResultsStoreError(f"db: sample set {digest[:16]}... in {self.path} is corrupt")
        return array

    # -- reading ---------------------------------------------------------------------------

    def runs(self, *, stage: str | None = "test",
             status: RunStatus | str | None = None) -> list[dict[str, Any]]:
        clauses, params = [], []
        if stage is not None:
            clauses.append("stage = ?")
            params.append(stage)
        if status is not None:
            clauses.append("status = ?")
            params.append(coerce_status(status).value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(f"SELECT * FROM runs {where} ORDER BY run_id", tuple(params))
        return [record for record in map(self._valid_run, rows) if record is not None]

    def epochs(self, run_id: int) -> list[dict[str, Any]]:
        records = []
        for row in self._rows("SELECT rowid AS row_number, * FROM epochs WHERE run_id = ? "
                              "ORDER BY epoch", (int(run_id),)):
            number = row.pop("row_number")
            record, problem = check_epoch(row)
            if problem:
                self._reporter.bad("epochs", number, problem)
                continue
            records.append(record)
        return records

    def epoch_count(self, run_id: int) -> int:
        return len(self.epochs(run_id))

    # -- meta ------------------------------------------------------------------------------

    def _meta_get(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def _meta_put(self, key: str, value: str) -> None:
        with self.transaction() as cursor:
            cursor.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
