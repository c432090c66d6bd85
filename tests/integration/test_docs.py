"""The documentation site: builds strictly, has a page section per registered loss with its
formula and shape figure, and renders in a real browser."""

from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import pytest

from losslab.registry import FAMILIES, list_losses

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
pytest.importorskip("sphinx", reason="the docs extra (sphinx) is not installed")


class _Sections(html.parser.HTMLParser):
    """Per ``<section id=...>``: does it hold a MathJax block and a figure image?"""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.found: dict[str, dict[str, bool]] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "section":
            self.stack.append(attributes.get("id"))
            if attributes.get("id"):
                self.found.setdefault(attributes["id"], {"math": False, "figure": False})
            return
        current = next((s for s in reversed(self.stack) if s), None)
        if current is None:
            return
        if "math" in (attributes.get("class") or "").split():
            self.found[current]["math"] = True
        if tag == "img" and "figures" not in (attributes.get("src") or "") and "_images/" in (attributes.get("src") or ""):
            self.found[current]["figure"] = True

    def handle_endtag(self, tag):
        if tag == "section" and self.stack:
            self.stack.pop()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("docs")
    # The same arguments as `make docs`: -W turns every warning (a broken reference, a bad
    # docstring) into a failure.
    status = build_main(["-W", "--keep-going", "-E", "-q", "-b", "html", str(ROOT / "docs"), str(out)])
    assert status == 0, "the strict documentation build failed (see the warnings above)"
    return out


def test_every_registered_loss_has_a_section_with_formula_and_figure(site):
    expected = {info.name: info.family for info in list_losses()}
    seen: dict[str, dict[str, bool]] = {}
    for family in FAMILIES:
        page = site / "losses" / f"{family}.html"
        if not any(f == family for f in expected.values()):
            continue
        parser = _Sections()
        parser.feed(page.read_text(encoding="utf-8"))
        for name, family_of in expected.items():
            if family_of == family:
                anchor = f"loss-{name}".replace("_", "-")
                section = parser.found.get(anchor) or parser.found.get(name.replace("_", "-"))
                assert section is not None, f"{name}: no section on {page.name}"
                seen[name] = section
    assert set(seen) == set(expected)
    assert [n for n, s in seen.items() if not s["figure"]] == []
    assert [n for n, s in seen.items() if not s["math"]] == []


def test_api_reference_documents_the_public_functions_and_modules(site):
    import losslab.functional as LF
    import losslab.nn as LN

    functional = (site / "api" / "generated" / "functional.html").read_text(encoding="utf-8")
    modules = (site / "api" / "generated" / "nn.html").read_text(encoding="utf-8")
    missing = [n for n in LF.__all__ if f'id="losslab.functional.{n}"' not in functional]
    missing += [n for n in LN.__all__ if n != "FunctionalLoss" and f'id="losslab.nn.{n}"' not in modules]
    assert missing == []


def test_loss_page_renders_in_headless_chromium(site, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (CI installs it: apt-get install chromium)")
    shot = tmp_path / "classification.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,1600",
         (site / "losses" / "classification.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 1600)
    low, high = image.getextrema()
    assert high - low > 100, "the screenshot is blank"
