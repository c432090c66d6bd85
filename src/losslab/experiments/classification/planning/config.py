"""Task configurations as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with mappings as key-sorted dicts of string keys and sequences as lists: the
    canonical form a run's config is recorded (and hashed) in."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
