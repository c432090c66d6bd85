"""Helpers shared by the subcommands: comma lists, tables."""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap
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


def terminal_width() -> int:
    """The terminal's width in columns (``COLUMNS`` or 80 when not a terminal, e.g. piped)."""
    return shutil.get_terminal_size().columns


def text_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    max_width: int | None = None,
    wrap: Sequence[int] = (),
) -> str:
    """A plain aligned table for the terminal.

    With ``max_width``, the columns listed in ``wrap`` (indices) are narrowed, widest first,
    and their cells wrapped onto continuation lines so that no line is longer than
    ``max_width`` (as far as the unwrapped columns and a minimum of 12 characters allow).
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if max_width is not None and wrap:
        widths = _fit_widths(widths, max_width, wrap, floor=12)
    lines = []
    for number, row in enumerate(cells):
        pieces = [
            textwrap.wrap(c, w, break_on_hyphens=False) or [""] if i in wrap and len(c) > w else [c]
            for i, (c, w) in enumerate(zip(row, widths))
        ]
        for k in range(max(len(p) for p in pieces)):
            parts = [(p[k] if k < len(p) else "").ljust(w) for p, w in zip(pieces, widths)]
            lines.append("  ".join(parts).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fit_widths(widths: list[int], max_width: int, wrap: Sequence[int], floor: int) -> list[int]:
    """Narrow the ``wrap`` columns (the widest one first) until the row fits ``max_width``."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > max_width:
        candidates = [i for i in wrap if widths[i] > floor]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def check_paths(*, folders: Sequence[tuple[str, object]] = (),
                files: Sequence[tuple[str, object]] = ()) -> None:
    """Refuse, before any work, an output option whose path has the wrong kind: a file where
    a folder is needed (``folders``: ``(option, path)`` pairs, None skipped) or a folder where
    a file is needed (``files``)."""
    from losslab._paths import UnsafePathError, check_file, check_folder

    try:
        for option, path in folders:
            if path is not None:
                check_folder(str(path), option=option)
        for option, path in files:
            if path is not None:
                check_file(str(path), option=option)
    except UnsafePathError as error:
        raise CommandError(str(error)) from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count of threads, workers or seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
