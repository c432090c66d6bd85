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

# Characters that Markdown (python-markdown with the tables extension) gives a meaning to.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


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
    text = re.sub(r"[\r\n\t\f\v]+", " ", text)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def html_text(value: object) -> str:
    """``str(value)`` escaped for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)
