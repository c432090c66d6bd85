"""The SQLite schema of a losslab results database, how a file is recognised, and migrations.

A losslab database carries ``PRAGMA application_id = APPLICATION_ID`` and ``PRAGMA
user_version = SCHEMA_VERSION`` in its header (and ``schema_version`` in its ``meta`` table,
which losslab releases before application ids read: they refuse a newer version). Databases
written before application ids (schema version 1, application id 0) are recognised by their
tables and ``meta`` row, and migrated in place when opened for writing.

:func:`probe` decides what a file is from its header and, only for a candidate legacy file,
an immutable read-only look at its tables: nothing is written, no journal or WAL file made.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

# "LLAB" in ASCII: losslab's results databases.
APPLICATION_ID = 0x4C4C4142
SCHEMA_VERSION = 2

SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100  # user_version at offset 60, application_id at 68 (big-endian int32)

# Version 1: the tables of databases written before leases and application ids.
_TABLES_V1 = """
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

# Version 2: run ownership is a lease (owner token, scope, length, expiry) and take-overs
# are recorded. The checkpoints table keeps its ``path`` column for old files, never read.
_TAKEOVERS = """
CREATE TABLE IF NOT EXISTS takeovers (
    takeover_id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs (run_id),
    previous_owner TEXT NOT NULL,
    owner TEXT NOT NULL,
    taken_utc TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""
_LEASE_COLUMNS = (("owner_scope", "TEXT"), ("lease_seconds", "REAL"), ("lease_expires", "REAL"))

LEGACY_TABLES = frozenset({"meta", "runs", "epochs", "checkpoints"})


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def create_or_migrate(cursor: sqlite3.Cursor) -> None:
    """Bring the database behind ``cursor`` (inside a write transaction) to SCHEMA_VERSION:
    create the tables of a new file, or add what version 1 lacks. Idempotent."""
    for statement in _statements(_TABLES_V1) + _statements(_TAKEOVERS):
        cursor.execute(statement)
    # Metrics beyond the fixed columns (macro-F1, ECE, Brier, the reliability bins ...) live
    # as JSON in one column, added to version-1 databases written before it.
    epoch_columns = {row[1] for row in cursor.execute("PRAGMA table_info(epochs)")}
    if "extra" not in epoch_columns:
        cursor.execute("ALTER TABLE epochs ADD COLUMN extra TEXT")
    run_columns = {row[1] for row in cursor.execute("PRAGMA table_info(runs)")}
    for name, kind in _LEASE_COLUMNS:
        if name not in run_columns:
            cursor.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    cursor.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                   (str(SCHEMA_VERSION),))
    cursor.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    cursor.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@dataclass(frozen=True)
class Probe:
    """What a file is: ``kind`` is ``"new"`` (absent or empty), ``"losslab"`` (our
    application id), ``"legacy"`` (a version-1 losslab database) or ``"foreign"``;
    ``version`` the schema version; ``reason`` why a foreign file is foreign."""

    kind: str
    version: int = 0
    reason: str = ""


def _read_only_uri(path: Path, *, immutable: bool) -> str:
    quoted = urllib.parse.quote(str(path.resolve()))
    return f"file:{quoted}?mode=ro" + ("&immutable=1" if immutable else "")


def read_only_connection(path: Path, *, immutable: bool, timeout: float) -> sqlite3.Connection:
    """A connection that cannot write ``path`` (``immutable``: not even a lock or -shm file);
    for probing files that may not be losslab's."""
    return sqlite3.connect(_read_only_uri(path, immutable=immutable), uri=True, timeout=timeout,
                           isolation_level=None)


def _look_inside(path: Path, *, immutable: bool, timeout: float) -> tuple[int, int, set[str], str | None]:
    """(application id, user version, table names, meta schema_version) read without writing."""
    connection = read_only_connection(path, immutable=immutable, timeout=timeout)
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        user_version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = None
        if LEGACY_TABLES <= tables:
            row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = None if row is None else str(row[0])
    finally:
        connection.close()
    return application_id, user_version, tables, version


def probe(path: Path, *, timeout: float = 60.0) -> Probe:
    """Recognise ``path`` without changing it (see the module docstring)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(_HEADER_SIZE)
    except FileNotFoundError:
        return Probe("new")
    if not header:
        return Probe("new")
    if len(header) < _HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
        return Probe("foreign", reason="it is not a SQLite file")
    # A WAL file beside it means a writer is or was active: the header on disk may be older
    # than the database, so read through SQLite (read-only; the WAL is already there). Else
    # the header is the truth, and an immutable connection reads without locks or files.
    # losslab writes its application id when it creates a file, before the switch to WAL, so
    # the id on disk is always current for its own files (the version is checked again
    # through SQLite once the store is open).
    wal_present = Path(f"{path}-wal").exists()
    application_id = int.from_bytes(header[68:72], "big", signed=True)
    user_version = int.from_bytes(header[60:64], "big", signed=True)
    if application_id == APPLICATION_ID:
        return Probe("losslab", version=user_version)
    if application_id != 0:
        return Probe("foreign", reason=f"its application id is {application_id:#x}, "
                                       f"not losslab's {APPLICATION_ID:#x}")
    for attempt in range(3):
        try:
            application_id, user_version, tables, version = _look_inside(
                path, immutable=not wal_present, timeout=timeout)
            break
        except sqlite3.OperationalError as error:  # a writer mid-checkpoint: look again
            if attempt == 2:
                return Probe("foreign", reason=f"SQLite cannot read it ({error})")
            time.sleep(0.1)
        except sqlite3.DatabaseError as error:
            return Probe("foreign", reason=f"SQLite cannot read it ({error})")
    if application_id == APPLICATION_ID:
        return Probe("losslab", version=user_version)
    if application_id != 0:
        return Probe("foreign", reason=f"its application id is {application_id:#x}, "
                                       f"not losslab's {APPLICATION_ID:#x}")
    if not tables:
        return Probe("foreign", reason="it is an empty SQLite database that losslab did not create")
    if version == "1":
        return Probe("legacy", version=1)
    shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
    return Probe("foreign", reason=f"its tables ({shown}) are not a losslab results database's")
