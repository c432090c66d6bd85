"""Reports escape everything they did not write: a hostile results database, hostile CSV
column names and Markdown built by losslab itself all come out of report.html as text."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from losslab._escape import md_code, md_text
from losslab.report import CONTENT_SECURITY_POLICY, Report, Section, markdown_to_html

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
FRAME = "<iframe src=javascript:alert(1)></iframe>"


class LiveElements(HTMLParser):
    """Every element of a page, and what in it could run code or load something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.problems: list[str] = []
        self.csp: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag in ("script", "iframe", "object", "embed", "frame", "frameset", "applet", "base",
                   "form", "link"):
            self.problems.append(f"<{tag}> element")
        for name, value in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=...> handler")
            if value and name.lower() in ("href", "src", "action", "formaction", "data", "xlink:href"):
                if value.strip().lower().startswith(("javascript:", "vbscript:", "data:text")):
                    self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp.append(values.get("content") or "")
        if tag == "img":
            self.images.append(values.get("src") or "")

    handle_startendtag = handle_starttag


def assert_no_live_element(page: str) -> LiveElements:
    parser = LiveElements()
    parser.feed(page)
    parser.close()
    assert parser.problems == []
    assert parser.csp == [CONTENT_SECURITY_POLICY]
    assert "script-src" not in CONTENT_SECURITY_POLICY and "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert all(src.startswith("data:image/png;base64,") for src in parser.images)
    return parser


def assert_markdown_is_inert(text: str) -> None:
    """report.md is safe even where a renderer passes raw HTML through (python-markdown's
    default, like many viewers): rendered that way, it still has no live element."""
    import markdown

    parser = LiveElements()
    parser.feed(markdown.markdown(text, extensions=["tables", "fenced_code"]))
    assert parser.problems == []
    assert not {"script", "b", "div", "object", "embed", "iframe"} & set(parser.tags)
    assert all(src.endswith(".png") for src in parser.images)  # only the report's own figures


def test_markdown_conversion_prints_raw_html_as_text_and_keeps_character_references():
    rendered = markdown_to_html(f"a {SCRIPT} b\n\n<div onclick=x>block</div>\n\n{md_text(IMG)} &copy;")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "&lt;div onclick=x&gt;block&lt;/div&gt;" in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered  # md_text's &lt; stays one reference
    assert "&amp;lt;" not in rendered and "&copy;" in rendered
    assert_no_live_element(f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
                           + rendered)


@pytest.mark.parametrize("address", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:x",
                                     "vbscript:x", "data:text/html,<script>x</script>", "//evil.example"])
def test_links_that_could_run_code_lose_their_address(address):
    rendered = markdown_to_html(f"[click]({address}) and ![i]({address})")
    assert "href" not in rendered and "src" not in rendered
    assert "click" in rendered


def test_safe_links_keep_their_address():
    rendered = markdown_to_html("[a](#task-x) [b](figures/a.png) [c](https://example.org/x)")
    assert 'href="#task-x"' in rendered and 'href="figures/a.png"' in rendered
    assert 'href="https://example.org/x"' in rendered


def test_md_code_shows_the_literal_text_whatever_its_backticks():
    for value in ["`<embed src=x>`", "a``b", "plain", f"{SCRIPT}`"]:
        rendered = markdown_to_html(f"x {md_code(value)} y")
        assert rendered.count("<code>") == 1
        inner = rendered.split("<code>")[1].split("</code>")[0]
        import html

        assert html.unescape(inner) == value


def test_underscores_inside_names_stay_readable_and_others_are_escaped():
    assert md_text("cross_entropy") == "cross_entropy"
    assert md_text("_x_") == r"\_x\_"
    assert markdown_to_html(md_text("_a_ b__c__")) == "<p>_a_ b__c__</p>"


def test_report_escapes_titles_and_captions_and_writes_the_policy(tmp_path):
    from losslab.plotting import plot_text, pyplot, save_figure

    plt = pyplot()
    fig, axis = plt.subplots()
    axis.plot([0, 1], [0, 1], label=plot_text("$\\unknowncommand{$"))  # invalid mathtext, shown as text
    axis.set_title(plot_text("a $ lone dollar and $x$"))
    axis.legend()
    figure = save_figure(fig, tmp_path / "figures", "../../escape attempt", IMG)
    assert figure.png.parent == (tmp_path / "figures").resolve() and figure.png.is_file()
    report = Report(title=SCRIPT, sections=[
        Section("a", f"Task {IMG}", md_text(FRAME), figures=[figure]),
        Section("b", "second", "text")])
    md_path, html_path = report.write(tmp_path / "out")
    page = html_path.read_text()
    assert_no_live_element(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert_markdown_is_inert(md_path.read_text())


def _snapshot(root: Path, *, skip: tuple[Path, ...]) -> dict[str, str]:
    """{relative path: kind and content digest} of everything under root but ``skip``."""
    state = {}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_file():
            state[key] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


def _write_csv(path: Path, header: list[str], rows: int = 40) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(rows):
            label = i % 2
            writer.writerow([*(rng.normal() + label * (j == 0) for j in range(len(header) - 1)), label])


def plant_hostile_rows(db: Path, victim: str) -> None:
    """Copies of the first two runs (with their epochs) whose text fields carry markup and
    whose loss, task and seed carry path traversal, written with sqlite3 directly."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    runs = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY run_id")]
    next_id = max(r["run_id"] for r in runs) + 1
    variants = [
        {"loss": SCRIPT, "status": "finished", "error": IMG},
        {"loss": IMG + " $x$", "status": "<b onmouseover=alert(1)>b</b>", "error": SCRIPT},
        {"loss": "../../../" + victim, "seed": "0/../../../../" + victim},
        {"loss": "/" + victim, "task": "../" + victim},
        {"task": IMG, "loss": SCRIPT, "config": True},
    ]
    for base in runs[:2]:
        epochs = [dict(e) for e in con.execute("SELECT * FROM epochs WHERE run_id = ?", (base["run_id"],))]
        for variant in variants:
            row = {**base, **variant, "run_id": next_id}
            if variant.get("config"):
                config = json.loads(base["config"])
                config["task"] = IMG
                config["training"]["optimizer"] = FRAME
                config["data"]["dataset"] = "<object data=x></object>"
                config["data"]["model"] = "`<embed src=x>`"
                config["data"]["options"]["label_column"] = IMG
                row["config"] = json.dumps(config)
            con.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        tuple(row.values()))
            for epoch in epochs:
                epoch = {**epoch, "run_id": next_id}
                con.execute(f"INSERT INTO epochs ({', '.join(epoch)}) VALUES "
                            f"({', '.join('?' * len(epoch))})", tuple(epoch.values()))
            next_id += 1
    con.commit()
    con.close()


def test_hostile_database_through_report_and_a_resumed_compare(tmp_path, cli_run):
    pytest.importorskip("tensorboard", reason="the TensorBoard exporter needs the tracking extra")
    data = tmp_path / "d.csv"
    _write_csv(data, ["f1", "f2", "y"])
    db = tmp_path / "results.sqlite"
    common = ("compare", "--data", str(data), "--label-column", "y", "--losses", "cross_entropy,m",
              "--seeds", "2", "--epochs", "1", "--db", str(db), "--workers", "1", "--threads", "1")
    assert cli_run(*common).returncode == 0
    plant_hostile_rows(db, "victim")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    box = tmp_path / "box"
    box.mkdir()
    tensorboard, out, out2 = box / "tb", tmp_path / "out", tmp_path / "out2"
    asked = (tensorboard, out, out2, db, Path(f"{db}-wal"), Path(f"{db}-shm"))
    before = _snapshot(tmp_path, skip=asked)

    reported = cli_run("report", "--db", str(db), "--out", str(out))
    assert reported.returncode == 0, reported.stderr
    resumed = cli_run(*common, "--tensorboard", str(tensorboard), "--out", str(out2))
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in reported.stderr + resumed.stderr

    assert _snapshot(tmp_path, skip=asked) == before  # nothing outside the asked folders changed
    assert (victim / "keep.txt").read_text() == "keep"
    for folder in (out, out2):
        page = (folder / "report.html").read_text()
        parser = assert_no_live_element(page)
        assert "table" in parser.tags
        assert_markdown_is_inert((folder / "report.md").read_text())
        for written in folder.rglob("*"):
            assert folder.resolve() in written.resolve().parents
    page = (out / "report.html").read_text()
    # the planted rows are either reported (escaped) or skipped by the store's validation
    if "alert" in page:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    event_files = [p for p in tensorboard.rglob("*") if p.is_file()]
    assert event_files and all(tensorboard.resolve() in p.resolve().parents for p in event_files)
    assert {p.relative_to(tensorboard).parts[0] for p in event_files} <= {
        "d", "_img_src_x_onerror_alert_1_-" + hashlib.sha256(IMG.encode()).hexdigest()[:8],
        "_victim-" + hashlib.sha256(b"../victim").hexdigest()[:8]}


def test_hostile_csv_column_names_through_compare_out(tmp_path, cli_run):
    names = [IMG, "$x$", "a|b", "y"]
    data = tmp_path / "hostile.csv"
    _write_csv(data, names)
    out = tmp_path / "out"
    result = cli_run("compare", "--data", str(data), "--label-column", "y", "--feature-columns",
                     ",".join(names[:3]), "--losses", "cross_entropy,m", "--seeds", "2", "--epochs",
                     "1", "--db", str(tmp_path / "r.sqlite"), "--out", str(out), "--threads", "1")
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text()
    assert_no_live_element(page)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "$x$" in page and "a|b" in page
    assert_markdown_is_inert((out / "report.md").read_text())
