"""Reports: sections of Markdown and figures, written as ``report.md`` and ``report.html``.

The HTML file is self-contained (figures embedded as data URIs) so it can be mailed or
archived alone. Sections are built independently (loss shapes, regression, classification,
...) and ordered by their ``order`` key, so each experiment adds its own without touching the
others.

This is the one rendering path of every report, and it trusts nothing it prints:

- a report's title, the section titles and the figure captions are plain text, escaped here
  for each format; a section's Markdown body must pass every value it did not write (names
  read from a database or a CSV, error messages, command-line values) through
  :func:`losslab._escape.md_text` where it interpolates it;
- the Markdown is converted with raw HTML disabled (python-markdown without its HTML block
  and inline-HTML patterns, so ``<script>`` is printed as text) and links or images that are
  neither relative, in-page, http(s) nor embedded PNGs lose their address;
- ``report.html`` carries a Content-Security-Policy that forbids scripts, frames and every
  remote resource (the page needs none);
- files are written only inside the folder asked for, replacing (never following) a symlink.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab._escape import md_text
from losslab._paths import ensure_folder, inside, write_text


@dataclass
class Figure:
    """A figure on disk (PNG, optionally an SVG twin and a JSON twin of its numbers) and its
    caption."""

    png: Path
    caption: str
    svg: Path | None = None
    data: Path | None = None


@dataclass
class Section:
    """One part of a report: ``lead`` figures first (what a reader scans), then the Markdown
    body, then the other figures."""

    key: str
    title: str
    markdown: str
    figures: list[Figure] = field(default_factory=list)
    order: int = 100
    data: dict[str, Any] = field(default_factory=dict)
    lead: list[Figure] = field(default_factory=list)


@dataclass
class Report:
    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def add(self, section: Section) -> None:
        if any(s.key == section.key for s in self.sections):
            raise ValueError(f"section: a section with key {section.key!r} is already in the report")
        self.sections.append(section)

    def ordered(self) -> list[Section]:
        return sorted(self.sections, key=lambda s: s.order)

    def to_markdown(self, base: Path) -> str:
        parts = [f"# {md_text(self.title)}", ""]
        if self.intro:
            parts += [self.intro.strip(), ""]
        if len(self.sections) > 1:
            parts += ["Contents:", ""]
            parts += [f"- [{md_text(s.title)}](#{_anchor(s.title)})" for s in self.ordered()]
            parts.append("")
        for section in self.ordered():
            parts += [f"## {md_text(section.title)}", ""]
            parts += _markdown_figures(section.lead, base)
            parts += [section.markdown.strip(), ""]
            parts += _markdown_figures(section.figures, base)
        if self.metadata:
            # JSON escapes line breaks, so no value can start a line that closes the fence
            parts += ["## Environment and configuration", "", "```json",
                      json.dumps(self.metadata, indent=2, default=str), "```", ""]
        return "\n".join(parts)

    def to_html(self, base: Path) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.intro:
            body.append(markdown_to_html(self.intro))
        if len(self.sections) > 1:
            items = "".join(
                f'<li><a href="#{_anchor(s.title)}">{html.escape(s.title)}</a></li>' for s in self.ordered()
            )
            body.append(f"<nav><p>Contents:</p><ul>{items}</ul></nav>")
        for section in self.ordered():
            body.append(f'<h2 id="{_anchor(section.title)}">{html.escape(section.title)}</h2>')
            body += [_html_figure(figure) for figure in section.lead]
            body.append(markdown_to_html(section.markdown))
            body += [_html_figure(figure) for figure in section.figures]
        if self.metadata:
            body.append("<h2>Environment and configuration</h2>")
            body.append(f"<pre>{html.escape(json.dumps(self.metadata, indent=2, default=str))}</pre>")
        return _HTML_PAGE.format(title=html.escape(self.title), csp=CONTENT_SECURITY_POLICY,
                                 body="\n".join(body))

    def write(self, out_dir: str | Path, *, option: str = "out") -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths.

        A symlink at either name is replaced, its target untouched; ``option`` names the
        argument in the error raised when ``out_dir`` (or a parent) is a file."""
        out = ensure_folder(out_dir, option=option)
        md_path, html_path = inside(out, "report.md", file=True), inside(out, "report.html", file=True)
        write_text(md_path, self.to_markdown(out))
        write_text(html_path, self.to_html(out))
        return md_path, html_path


def _markdown_figures(figures: list[Figure], base: Path) -> list[str]:
    parts: list[str] = []
    for figure in figures:
        rel = _link_target(_relative(figure.png, base))
        caption = md_text(figure.caption)
        parts += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    return parts


def _html_figure(figure: Figure) -> str:
    data = base64.b64encode(Path(figure.png).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(figure.caption)}" '
            f'src="data:image/png;base64,{data}"/><figcaption>{html.escape(figure.caption)}'
            "</figcaption></figure>")


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _link_target(path: str) -> str:
    """A figure's path as a Markdown link target: percent-encoded, so that no character of it
    (a space, a parenthesis, a bracket) can end the link early."""
    from urllib.parse import quote

    return quote(path, safe="/._-~")


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# Scripts, frames, plugins, forms and every remote resource are forbidden; the page needs only
# its inline style sheet and the figures embedded as data: URIs.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
# Addresses a link or an image may keep: in-page anchors, relative paths, http(s), and (images
# only) embedded PNGs. Anything else (javascript:, vbscript:, data:text/html, file:, ...) is
# removed from the element.
_SAFE_LINK = re.compile(r"^(#|https?://|(?!//)[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)
_SAFE_IMAGE = re.compile(r"^data:image/png;base64,", re.IGNORECASE)


def markdown_to_html(text: str) -> str:
    """Markdown to HTML with tables and fenced code (the ``markdown`` package), raw HTML
    disabled: markup in ``text`` comes out as text, never as an element. Without the package
    (the experiments extra brings it), the escaped text in a ``<pre>`` block."""
    try:
        import markdown
    except ImportError:  # keep reports readable without it
        return f"<pre>{html.escape(text)}</pre>"
    converter = markdown.Markdown(extensions=["tables", "fenced_code"])
    # python-markdown passes raw HTML through by default; without these two, '<' in the text
    # is serialised as '&lt;' while character references ('&lt;' from md_text) stay as they are.
    converter.preprocessors.deregister("html_block")
    converter.inlinePatterns.deregister("html")
    converter.treeprocessors.register(_address_filter(converter), "losslab_safe_addresses", 0)
    return converter.convert(text)


def drop_unsafe_addresses(root: Any) -> None:
    """Remove, in an element tree, link and image addresses that could run code or reach
    outside the page (see ``_SAFE_LINK``); the element and its text stay."""
    for element in root.iter():
        if element.tag == "a" and not _SAFE_LINK.match(element.get("href", "#").strip()):
            del element.attrib["href"]
        elif element.tag == "img":
            source = element.get("src", "").strip()
            if not (_SAFE_LINK.match(source) or _SAFE_IMAGE.match(source)):
                element.attrib.pop("src", None)


def _address_filter(converter: Any) -> Any:
    """:func:`drop_unsafe_addresses` as a python-markdown tree processor of ``converter``."""
    from markdown.treeprocessors import Treeprocessor

    class AddressFilter(Treeprocessor):
        def run(self, root: Any) -> None:
            drop_unsafe_addresses(root)

    return AddressFilter(converter)


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
thead {{ background: #f3f3f3; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }}
figcaption {{ color: #555; font-size: 0.9em; }}
pre, code {{ background: #f6f6f6; }} pre {{ padding: 0.8em; overflow-x: auto; }}
</style></head>
<body>
{body}
</body></html>
"""
