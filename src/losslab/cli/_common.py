"""Helpers shared by the subcommands: comma lists, tables."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from losslab.cli import CommandError


def comma_list(text: str) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def check_choices(option: str, values: Sequence[str], valid: Sequence[str]) -> None:
    unknown = [value for value in values if value not in valid]
    if unknown:
        raise CommandError(
            f"{option}: unknown {', '.join(repr(v) for v in unknown)}; valid choices: {', '.join(valid)}"
        )


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table for the terminal."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` for argparse: the value parsed as JSON when it is (numbers, true/false,
    lists as tuples), else kept as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: object = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(parsed, list):
        parsed = tuple(parsed)
    return key.strip(), parsed
