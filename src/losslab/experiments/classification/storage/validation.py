"""Validation of every row a store reads back: the database is input from a stranger.

Each ``check_*`` function takes one raw row (a mapping of column name to the value SQLite
returned) and gives back the parsed record, or the reason it is invalid. Python sees SQLite's
storage class directly (an ``INTEGER`` column holding ``'0/../x'`` comes back as ``str``), so
``type(value) is int`` is SQLite's ``typeof(value) = 'integer'``.

Bad rows are reported with :class:`RowReporter` as a :class:`StoreRowWarning`, once per row
and store: a warning (not a log record) because losslab configures no logging, the command
line shows warnings on stderr by default, tests can assert them with ``pytest.warns``, and a
user can silence them or turn them into errors with Python's warning filters.
"""

from __future__ import annotations

import json
import math
import re
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from losslab.experiments.classification.storage.contract import EPOCH_FIELDS, RunKey, RunStatus

# Names losslab writes: loss names (registered names, with "key=value,..." options), stages,
# split names, config hashes, owner tokens (host:pid:random).
TOKEN = re.compile(r"[A-Za-z0-9_.:=,+-]+")
# Task labels may also hold inner spaces: a CSV file's stem ("my reviews") is a label.
LABEL = re.compile(r"[A-Za-z0-9_.:=,+-](?:[A-Za-z0-9_.:=,+ -]*[A-Za-z0-9_.:=,+-])?")
SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_NAME = 200


class StoreRowWarning(UserWarning):
    """A row of a results database failed validation and is skipped."""


def identifier_problem(value: object, field: str, *, label: bool = False) -> str | None:
    """Why ``value`` is not a valid stored identifier, or None when it is."""
    if not isinstance(value, str):
        return f"{field} is not text"
    pattern = LABEL if label else TOKEN
    if len(value) > _MAX_NAME or not pattern.fullmatch(value) or set(value) == {"."}:
        allowed = "letters, digits, _ . : = , + - (and inner spaces)" if label else \
            "letters, digits and _ . : = , + -"
        return f"{field} is not a plain name ({allowed})"
    return None


def check_key(key: RunKey) -> None:
    """Refuse a run key whose fields the store could not read back (ValueError)."""
    for field, is_label in (("task", True), ("loss", False), ("stage", False),
                            ("config_hash", False)):
        problem = identifier_problem(getattr(key, field), field, label=is_label)
        if problem:
            raise ValueError(f"{field}: {problem.split(' is ', 1)[1]}; got {getattr(key, field)!r}")
    if type(key.seed) is not int:
        raise ValueError(f"seed: expected an integer, got {key.seed!r}")


def check_lease(lease_seconds: float) -> float:
    """``lease_seconds`` as a positive finite float (ValueError naming it otherwise)."""
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) \
            or not math.isfinite(lease_seconds) or lease_seconds <= 0:
        raise ValueError(f"lease_seconds: expected a positive number of seconds, got {lease_seconds!r}")
    return float(lease_seconds)


def plain_label(name: str) -> str:
    """``name`` made a valid task label: characters outside :data:`LABEL` become ``_``
    (a CSV file's stem such as ``reviews (2024)`` becomes ``reviews _2024_``). A valid name
    is returned unchanged, so the labels (and config hashes) of existing runs stay."""
    if identifier_problem(name, "task", label=True) is None:
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_.:=,+ -]", "_", str(name)).strip(" ")[:_MAX_NAME]
    return cleaned if cleaned and set(cleaned) != {"."} else "data"


def _is_int(value: object) -> bool:
    return type(value) is int


def _finite(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _finite_tree(value: object) -> bool:
    """A finite number, or a list / string-keyed object of them (the extra metrics)."""
    if isinstance(value, list):
        return all(_finite_tree(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _finite_tree(v) for k, v in value.items())
    return _finite(value)


def _json_object(text: object) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:  # bad JSON, or NaN/Infinity spelled out
        return None
    return value if isinstance(value, dict) else None


def _config_problem(config: Mapping[str, Any]) -> str | None:
    """Why a run config does not have the shape losslab writes, or None."""
    for part in ("data", "training"):
        if part in config and not isinstance(config[part], dict):
            return f"config's {part} is not an object"
    samples = config.get("samples")
    if samples is not None:
        if not isinstance(samples, dict):
            return "config's samples is not an object"
        for part in ("train", "eval"):
            record = samples.get(part)
            if not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
                    and SHA256.fullmatch(record["sha256"]) and _is_int(record.get("count"))
                    and record["count"] >= 0):
                return f"config's samples.{part} is not a sample record (sha256, count)"
    return None


def check_run(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A ``runs`` row as a record (config and environment parsed, status a
    :class:`RunStatus`), or ``(None, problem)``."""
    for field in ("run_id", "seed", "epochs"):
        if not _is_int(row.get(field)):
            return None, f"{field} is not an integer"
    for field, is_label in (("task", True), ("loss", False), ("stage", False),
                            ("eval_split", False), ("config_hash", False)):
        problem = identifier_problem(row.get(field), field, label=is_label)
        if problem:
            return None, problem
    try:
        status = RunStatus(row.get("status"))
    except ValueError:
        return None, "status is not a run status"
    owner = row.get("owner")
    if owner is not None and identifier_problem(owner, "owner"):
        return None, "owner is not a plain owner token"
    config = _json_object(row.get("config"))
    if config is None:
        return None, "config is not a JSON object"
    for field in ("task", "loss", "seed", "stage"):
        if field in config and config[field] != row[field]:
            return None, f"config's {field} does not match the {field} column"
    problem = _config_problem(config)
    if problem:
        return None, problem
    environment = row.get("environment")
    if environment is not None:
        environment = _json_object(environment)
        if environment is None:
            return None, "environment is not a JSON object"
    for field in ("lease_expires", "lease_seconds"):
        if row.get(field) is not None and not _finite(row[field]):
            return None, f"{field} is not a finite number"
    for field in ("created_utc", "started_utc", "finished_utc", "error", "owner_scope"):
        if row.get(field) is not None and not isinstance(row[field], str):
            return None, f"{field} is not text"
    record = dict(row)
    record.update(status=status, config=config, environment=environment)
    return record, None


def check_epoch(row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """An ``epochs`` row as a record (extra metrics merged in), or ``(None, problem)``."""
    for field in ("run_id", "epoch"):
        if not _is_int(row.get(field)):
            return None, f"{field} is not an integer"
    if row["epoch"] < 1:
        return None, "epoch is not positive"
    record = {"run_id": row["run_id"], "epoch": row["epoch"]}
    for field in EPOCH_FIELDS:
        if not _finite(row.get(field)):
            return None, f"{field} is not a finite number"
        record[field] = float(row[field])
    if not isinstance(row.get("recorded_utc"), str):
        return None, "recorded_utc is not text"
    record["recorded_utc"] = row["recorded_utc"]
    extra = row.get("extra")
    if extra is not None:
        parsed = _json_object(extra)
        if parsed is None or not _finite_tree(parsed):
            return None, "extra is not a JSON object of finite numbers"
        clash = [name for name in parsed if name in record]
        if clash:
            return None, f"extra repeats the column {clash[0]}"
        record.update(parsed)
    return record, None


def check_checkpoint(row: Mapping[str, Any]) -> str | None:
    """Why a ``checkpoints`` row is invalid, or None (its ``path`` is never read)."""
    for field in ("run_id", "epoch"):
        if not _is_int(row.get(field)):
            return f"{field} is not an integer"
    if row.get("state") is not None and not isinstance(row["state"], bytes):
        return "state is not a BLOB"
    return None


def check_sample_set(row: Mapping[str, Any]) -> str | None:
    """Why a ``sample_sets`` row is invalid, or None."""
    if not isinstance(row.get("sha256"), str) or not SHA256.fullmatch(row["sha256"]):
        return "sha256 is not a SHA-256 hex digest"
    if not _is_int(row.get("count")) or row["count"] < 0:
        return "count is not a non-negative integer"
    if not isinstance(row.get("ids"), bytes):
        return "ids is not a BLOB"
    return None


def check_meta_value(value: object) -> dict[str, Any] | None:
    """A ``meta`` value parsed as a JSON object, or None when it is not one."""
    return _json_object(value)


class RowReporter:
    """Warn once per (table, row, problem) of one store."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._seen: set[tuple[str, object, str]] = set()
        self._lock = threading.Lock()

    def bad(self, table: str, row: object, problem: str) -> None:
        """Report that ``row`` (its rowid or key) of ``table`` is invalid and skipped."""
        key = (table, row, problem)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        warnings.warn(f"{self.source}: row {row} of table {table}: {problem}; the row is skipped",
                      StoreRowWarning, stacklevel=3)
