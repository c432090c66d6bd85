"""Reports: sections of Markdown and figures, written as ``report.md`` and ``report.html``.

The HTML file is self-contained (figures embedded as data URIs) so it can be mailed or
archived alone. Sections are built independently (loss shapes, regression, classification,
...) and ordered by their ``order`` key, so each experiment adds its own without touching the
others.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
        parts = [f"# {self.title}", ""]
        if self.intro:
            parts += [self.intro.strip(), ""]
        if len(self.sections) > 1:
            parts += ["Contents:", ""]
            parts += [f"- [{s.title}](#{_anchor(s.title)})" for s in self.ordered()]
            parts.append("")
        for section in self.ordered():
            parts += [f"## {section.title}", ""]
            parts += _markdown_figures(section.lead, base)
            parts += [section.markdown.strip(), ""]
            parts += _markdown_figures(section.figures, base)
        if self.metadata:
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
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(body))

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html`` into ``out_dir``; return their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md_path, html_path = out / "report.md", out / "report.html"
        md_path.write_text(self.to_markdown(out), encoding="utf-8")
        html_path.write_text(self.to_html(out), encoding="utf-8")
        return md_path, html_path


def _markdown_figures(figures: list[Figure], base: Path) -> list[str]:
    parts: list[str] = []
    for figure in figures:
        parts += [f"![{figure.caption}]({_relative(figure.png, base)})", "", f"*{figure.caption}*", ""]
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


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def markdown_to_html(text: str) -> str:
    """Markdown to HTML with tables (the ``markdown`` package), or escaped text without it."""
    try:
        import markdown
    except ImportError:  # the experiments extra brings it; keep reports readable without
        return f"<pre>{html.escape(text)}</pre>"
    return markdown.markdown(text, extensions=["tables", "fenced_code"])


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
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
