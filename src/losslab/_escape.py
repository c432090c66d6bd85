"""Escaping for text that losslab did not write (database rows, CSV column names, CLI values).

Every value that reaches a report from outside goes through :func:`md_text` (Markdown prose and
table cells) or :func:`html_text` (HTML built directly). Markdown escaping turns ``<``, ``>``
and ``&`` into character references, so the Markdown-to-HTML step can never see raw markup
in such a value, and backslash-escapes the characters that would start emphasis, links,
headings, code spans or table columns.
"""

from __future__ import annotations

import html
import re

# Characters that Markdown (python-markdown with the tables extension, and GitHub's) gives a
# meaning to anywhere in a line: escapes, code, emphasis, links and images (both need '['),
# table cells. An underscore between two letters or digits is left alone: it never opens or
# closes emphasis (python-markdown and CommonMark agree), so names like cross_entropy stay
# readable. Parentheses, '!', '.', '-', '+' and '#' mean nothing without these, except at the
# start of a line (see _LINE_START); '~' means nothing to python-markdown, which would print
# an escaped one with its backslash.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*{}\[\]|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# What would start a heading, a list or a quote if the value began a line.
_LINE_START = re.compile(r"^(\s*)([#+\-]|\d+[.)])")
_LINE_BREAKS = re.compile(r"[\r\n\t\f\v]+")


def md_text(value: object) -> str:
    """``value`` as Markdown that renders as the literal text, on one line.

    Args:
        value: anything; ``str(value)`` is escaped.

    Returns:
        The text with ``&``, ``<`` and ``>`` as character references, Markdown's special
        characters backslash-escaped and line breaks folded to spaces (a value never starts a
        new block or leaves a table row).
    """
    text = str(value)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", text))
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    marker = match.group(2)
    # '1.' / '1)' open an ordered list: escape the character after the number
    return match.group(1) + (marker[:-1] + "\\" + marker[-1] if marker[0].isdigit() else "\\" + marker)


def md_code(value: object) -> str:
    """``value`` as a Markdown code span that shows the literal text, on one line.

    The span's fence is one backtick longer than the longest run of backticks in the text, so
    the text cannot close it; inside a code span Markdown escapes ``<`` and ``&`` itself.

    Args:
        value: anything; ``str(value)`` is shown.

    Returns:
        The code span, e.g. ``md_code("a`b")`` is ``"``a`b``"``.
    """
    text = _LINE_BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def html_text(value: object) -> str:
    """``str(value)`` escaped for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)
