"""Sphinx extension: the pages generated at build time (loss families, API lists, results).

Each registered loss gets a section with its formula (the ``.. math::`` block of its
functional's docstring, so the formula is written once, in the code), its shape figure
(drawn now by :func:`losslab.plotting.profiles.draw_profile`), its conventions and options.
The pages and figures are written under ``docs/losses/`` (ignored by git) before Sphinx reads
its sources.
"""

from __future__ import annotations

import functools
import inspect
import re
import shutil
from pathlib import Path

FAMILY_TITLES = {
    "classification": "Multiclass classification",
    "binary": "Binary and multi-label classification",
    "margin": "Margin and ranking",
    "embedding": "Embeddings and metric learning",
    "segmentation": "Segmentation",
    "regression": "Regression",
    "output_layer": "Output layers at language-model scale",
}

_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def rst_text(value: object) -> str:
    """Registry prose as literal reStructuredText inline text."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))


def _plain(function):
    while isinstance(function, functools.partial):
        function = function.func
    return function


def math_block(function) -> str | None:
    """The first ``.. math::`` block of ``function``'s docstring, as LaTeX."""
    doc = inspect.getdoc(_plain(function)) or ""
    lines = doc.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith(".. math::"):
            continue
        inline = stripped[len(".. math::"):].strip()
        if inline:
            return inline
        indent = len(line) - len(line.lstrip())
        body = []
        for following in lines[index + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following.strip())
        return "\n".join(part for part in body if part).strip() or None
    return None


def _qualified(function) -> str | None:
    if function is None:
        return None
    plain = _plain(function)
    module = plain.__module__
    if module.startswith("losslab.functional"):
        return f"losslab.functional.{plain.__name__}"
    return f"{module}.{plain.__qualname__}"


def _module_target(factory) -> str | None:
    plain = _plain(factory)
    if inspect.isclass(plain) and plain.__module__.startswith("losslab.nn"):
        return f"losslab.nn.{plain.__name__}"
    return None


def loss_section(info, figure: str) -> str:
    """The reStructuredText of one loss's section."""
    title = info.name
    lines = [f".. _loss-{info.name}:", "", title, "-" * len(title), "", rst_text(info.task), ""]
    formula = math_block(info.functional) if info.functional is not None else None
    if formula:
        lines += [".. math::", ""] + [f"   {row}" for row in formula.splitlines()] + [""]
    lines += [f"Plain text: ``{info.formula}``", ""]
    lines += [f".. figure:: {figure}", f"   :alt: {info.name}: value and slope", "   :width: 100%", "",
              f"   {rst_text(info.name)}: the loss and its slope along one variable "
              "(:mod:`losslab.profiles` says which).", ""]
    fields = [("Input", rst_text(info.input)), ("Target", rst_text(info.target))]
    function = _qualified(info.functional)
    if function:
        fields.append(("Function", f":func:`{function}`"))
    module = _module_target(info.factory)
    if module:
        fields.append(("Module", f":class:`{module}`"))
    fields.append(("Registry", f"``losslab.get_loss({info.name!r})``"))
    if info.hyperparameters:
        options = ", ".join(f"``{key}={value!r}``" for key, value in info.hyperparameters.items())
        fields.append(("Options", options))
    if info.keras:
        fields.append(("Keras", ", ".join(f"``losslab.keras.{name}``" for name in info.keras)))
    if info.aliases:
        fields.append(("Aliases", ", ".join(f"``{alias}``" for alias in info.aliases)))
    fields.append(("Convex", {True: "yes", False: "no", None: "n/a"}[info.convex]))
    fields.append(("Reference", rst_text(info.reference)))
    if info.reference_impl:
        fields.append(("Matches", rst_text(info.reference_impl)))
    if info.notes:
        fields.append(("Notes", rst_text(info.notes)))
    if info.extra:
        fields.append(("Status", "experimental: offered for experiments, not as a default"))
    lines += [f":{name}: {value}" for name, value in fields] + [""]
    return "\n".join(lines)


def generate(srcdir: Path) -> list[Path]:
    """Write ``losses/index.rst``, one page per family and every shape figure."""
    from losslab.plotting.profiles import draw_profile
    from losslab.registry import FAMILIES, list_losses

    out = srcdir / "losses"
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    written = []
    for family in FAMILIES:
        infos = list_losses(family)
        if not infos:
            continue
        title = FAMILY_TITLES.get(family, family)
        parts = [f".. _family-{family}:", "", title, "=" * len(title), ""]
        for info in infos:
            draw_profile(info.name, out / "figures")
            parts.append(loss_section(info, f"figures/{info.name}.png"))
        page = out / f"{family}.rst"
        page.write_text("\n".join(parts), encoding="utf-8")
        written.append(page)
    toc = ["Losses", "======", "",
           "Every registered loss, by family: its formula, its shape and its options. The same",
           "records drive ``losslab list`` and :func:`losslab.registry.get_info`.", "",
           ".. toctree::", "   :maxdepth: 2", ""]
    toc += [f"   {page.stem}" for page in written]
    (out / "index.rst").write_text("\n".join(toc) + "\n", encoding="utf-8")
    return written




# --- API reference pages ------------------------------------------------------------------

# (page, title, public namespace, submodules whose __all__ lists the names, directive)
API_GROUPS = (
    ("functional", "losslab.functional: pure functions", "losslab.functional",
     ("alternate", "classification", "regression", "margin", "embedding", "segmentation", "linear"),
     "autofunction"),
    ("nn", "losslab.nn: Modules", "losslab.nn",
     ("alternate", "classification", "regression", "margin", "embedding", "segmentation", "linear"),
     "autoclass"),
)


def generate_api(srcdir: Path) -> None:
    """``api/functional.rst`` and ``api/nn.rst``: every public name under its public path."""
    import importlib

    out = srcdir / "api" / "generated"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for page, title, namespace, submodules, directive in API_GROUPS:
        lines = [title, "=" * len(title), "", f".. currentmodule:: {namespace}", ""]
        for sub in submodules:
            module = importlib.import_module(f"{namespace}.{sub}")
            heading = (module.__doc__ or sub).strip().splitlines()[0].rstrip(".")
            lines += [heading, "-" * len(heading), ""]
            for name in module.__all__:
                lines.append(f".. {directive}:: {name}")
                if directive == "autoclass":
                    lines.append("   :members: forward")
                lines.append("")
        (out / f"{page}.rst").write_text("\n".join(lines), encoding="utf-8")


# --- the published reports ----------------------------------------------------------------

PUBLISHED = ("standard",)


def copy_published(srcdir: Path) -> None:
    """Copy each published report's self-contained HTML into the site (``_published/``)."""
    results = srcdir.parent / "results"
    target = srcdir / "_published"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    for name in PUBLISHED:
        report = results / name / "report.html"
        if report.is_file():
            (target / name).mkdir()
            shutil.copyfile(report, target / name / "report.html")



def _generate_all(app) -> None:
    srcdir = Path(app.srcdir)
    generate(srcdir)
    generate_api(srcdir)
    copy_published(srcdir)


def setup(app):
    app.connect("builder-inited", _generate_all)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
