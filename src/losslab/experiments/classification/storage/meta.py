"""Typed access to a store's ``meta`` table (protocol records kept beside the runs).

The keys and JSON are those every losslab release wrote, so old databases read the same:

- ``until_decided:<task label>``: the rounds of seeds ``until_decided`` ran for a task
  (:meth:`~losslab.experiments.classification.protocols.sequential.SequentialOutcome.to_dict`);
- ``sweep_scheduler:<task label>:<protocol digest>:<loss>``: the successive-halving decisions
  of one (task, loss) learning-rate sweep (:func:`~..tuning.successive_halving`);
- ``schema_version``: written by the store itself (:mod:`.schema`).

A value that is not a JSON object reads as absent, with a
:class:`~.validation.StoreRowWarning`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from losslab.experiments.classification.storage.validation import (
    RowReporter,
    check_meta_value,
    identifier_problem,
)


def _checked(value: str, field: str, *, label: bool = False) -> str:
    problem = identifier_problem(value, field, label=label)
    if problem:
        raise ValueError(f"{field}: {problem.split(' is ', 1)[1]}; got {value!r}")
    return value


def until_decided_key(task: str) -> str:
    """The ``meta`` key of a task's until-decided record."""
    return f"until_decided:{_checked(task, 'task', label=True)}"


def halving_key(task: str, digest: str, loss: str) -> str:
    """The ``meta`` key of one (task, loss) successive-halving record; ``digest`` is the
    config hash of the task's test config and the tuning protocol."""
    return (f"sweep_scheduler:{_checked(task, 'task', label=True)}:{_checked(digest, 'digest')}:"
            f"{_checked(loss, 'loss')}")


class StoreMeta:
    """The ``meta`` records of one store.

    Args:
        get: the raw value under a key (None when absent).
        put: store a raw value under a key (replacing any).
        reporter: where an invalid value is reported.
    """

    def __init__(self, get: Callable[[str], str | None], put: Callable[[str, str], None],
                 reporter: RowReporter) -> None:
        self._get, self._put, self._reporter = get, put, reporter

    def _read(self, key: str) -> dict[str, Any] | None:
        raw = self._get(key)
        if raw is None:
            return None
        value = check_meta_value(raw)
        if value is None:
            self._reporter.bad("meta", key, "value is not a JSON object")
        return value

    def _write(self, key: str, record: Mapping[str, Any]) -> None:
        if not isinstance(record, Mapping):
            raise TypeError(f"record: expected a mapping, got {type(record).__name__}")
        self._put(key, json.dumps(dict(record)))

    def get_until_decided(self, task: str) -> dict[str, Any] | None:
        """The until-decided record of ``task``, or None."""
        return self._read(until_decided_key(task))

    def put_until_decided(self, task: str, record: Mapping[str, Any]) -> None:
        """Replace the until-decided record of ``task``."""
        self._write(until_decided_key(task), record)

    def get_halving(self, task: str, digest: str, loss: str) -> dict[str, Any] | None:
        """The successive-halving record of one (task, protocol digest, loss), or None."""
        return self._read(halving_key(task, digest, loss))

    def put_halving(self, task: str, digest: str, loss: str, record: Mapping[str, Any]) -> None:
        """Replace the successive-halving record of one (task, protocol digest, loss)."""
        self._write(halving_key(task, digest, loss), record)
