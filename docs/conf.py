"""Sphinx configuration for the losslab documentation (``make docs``).

Sphinx, not MkDocs: losslab's docstrings are reStructuredText with Google-style sections
(``Args:``, ``Returns:``, ``Shape:``, ``References:``) and ``.. math::`` blocks, which autodoc
with napoleon renders as written; the guides are Markdown through MyST. Formulas render with a
MathJax copy shipped by ``sphinx-mathjax-offline``, so the site works without a network.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))

import os  # noqa: E402

# losslab.keras is documented from the torch backend (the one losslab always has).
os.environ.setdefault("KERAS_BACKEND", "torch")

import losslab  # noqa: E402

project = "losslab"
author = "losslab developers"
copyright = "2026, losslab developers"
version = release = getattr(losslab, "__version__", "0.1.0")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "myst_parser",
    "loss_pages",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": False, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_mock_imports = ["ray"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Shape", "params_style"), ("References", "notes_style")]

html_theme = "furo"
html_title = "losslab"
html_static_path: list[str] = []
html_show_sourcelink = False
# A published reproduction, served as it was written (its own self-contained HTML).
html_extra_path = ["_published"]
# The folder is filled when the build starts (loss_pages.copy_published); Sphinx checks that
# it exists before that, and a fresh clone does not have it (it is not tracked).
(HERE / "_published").mkdir(exist_ok=True)
