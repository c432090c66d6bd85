"""The shared confinement and escaping helpers."""

import os

import markdown
import pytest

from losslab._escape import html_text, md_text
from losslab._paths import UnsafePathError, ensure_folder, inside, safe_component, write_text


@pytest.mark.parametrize("name", ["../../etc", "/abs/path", ".", "..", "", "a/b", "x\x00y", "é"])
def test_safe_component_is_one_harmless_component(name, tmp_path):
    component = safe_component(name)
    assert component not in ("", ".", "..")
    assert "/" not in component and "\x00" not in component
    assert inside(tmp_path, component).parent == tmp_path.resolve()


def test_safe_component_keeps_plain_names_and_separates_others():
    assert safe_component("full_l") == "full_l"
    assert safe_component("a/b") != safe_component("a_b")


def test_inside_refuses_escape(tmp_path):
    with pytest.raises(UnsafePathError, match="outside"):
        inside(tmp_path, "..", "x")
    with pytest.raises(UnsafePathError, match="absolute"):
        inside(tmp_path, "/etc")
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsafePathError, match="outside"):
        inside(tmp_path, "link", "etc")


def test_write_text_replaces_a_symlink_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out = ensure_folder(tmp_path / "out", option="--out")
    (out / "report.md").symlink_to(victim)
    write_text(out / "report.md", "new")
    assert victim.read_text() == "keep"
    assert (out / "report.md").read_text() == "new" and not os.path.islink(out / "report.md")


def test_ensure_folder_names_the_option_when_a_file_is_in_the_way(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UnsafePathError, match=r"--out: expected a folder"):
        ensure_folder(tmp_path / "f" / "sub", option="--out")


def test_markdown_escaping_renders_literal_text():
    hostile = '<img src=x onerror=alert(1)> | *b* [l](javascript:x) `c` # h\n<script>'
    rendered = markdown.markdown(f"| a |\n|---|\n| {md_text(hostile)} |", extensions=["tables"])
    assert "<img" not in rendered and "<script" not in rendered
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered
    assert rendered.count("<td>") == 1 and "<em>" not in rendered and "<a " not in rendered
    assert html_text('"<x>"') == "&quot;&lt;x&gt;&quot;"
