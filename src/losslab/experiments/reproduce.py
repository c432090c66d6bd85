"""``losslab reproduce``: the paper's claims, re-run, in one report.

Each part of the paper is a section builder ``build(context) -> Section`` listed in
:data:`SECTION_BUILDERS`; a builder writes its own figures and tables under
``context.out_dir`` and returns the section. The report records the preset, the seed, the wall
time of each section, and the environment.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab._escape import md_text
from losslab._paths import ensure_folder, inside, safe_component, write_text
from losslab.experiments.environment import environment_info
from losslab.report import Report, Section

# quick: the demo (minutes); standard: the published reproduction (about an hour on 2 cores,
# every classification table settled to ±1 point); full: larger stand-ins (hours).
PRESETS: tuple[str, ...] = ("quick", "standard", "full")

# "module:function" of each section builder, in report order.
SECTION_BUILDERS: tuple[str, ...] = (
    "losslab.experiments.shapes:build_section",
    "losslab.experiments.regression:build_section",
    "losslab.experiments.classification:build_section",
)


@dataclass
class ReproduceContext:
    """What a section builder gets: the preset, where to write, the seed, a logger."""

    preset: str
    out_dir: Path
    seed: int = 0
    log: Callable[[str], None] = print
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.preset == "quick"

    def subdir(self, name: str) -> Path:
        """Folder ``name`` (``/``-separated plain components) inside the output folder."""
        parts = [safe_component(part) for part in name.split("/")]
        inside(self.out_dir, *parts)  # refuses a symlinked folder that leads elsewhere
        return ensure_folder(self.out_dir.joinpath(*parts), option="out")


def summary_section(sections: list[Section], wall_time: float) -> Section:
    """The report's opening: the forest plot of every classification table, each of the paper's
    claims with our verdict and its reason, then one ranked line per loss for every
    classification task (read from the other sections)."""
    claims = sorted((claim for section in sections for claim in section.data.get("claims", [])),
                    key=lambda claim: claim["table"])
    parts = [f"Wall time of this reproduction: {wall_time:.0f} s.", ""]
    if claims:
        parts += ["**The paper's claims**, each with our verdict (holds / does not hold / "
                  "undecided) and why:", "",
                  "| table | the paper's claim | verdict | why |", "|:---|:---|:---|:---|"]
        for claim in claims:
            reason = md_text(str(claim["reason"]).replace("|", "/"))
            verdict = f"**{md_text(claim['verdict'])}**"
            if claim.get("across_rates"):  # the answer depends on the learning rate: say so
                verdict += f" at the chosen rates; {md_text(claim['across_rates'])}"
            table = md_text(f"{claim['table']}" + (f" ({claim['part']})" if claim.get("part") else ""))
            parts.append(f"| {table} | {claim['claim']} | {verdict} | {reason} |")
        parts.append("")
    for section in sections:
        for protocol in section.data.get("stand_in", {}).get("protocols", []):
            lines = section.data.get(protocol, {}).get("decision_lines")
            if lines:
                parts += [f"**{md_text(section.title)}** (`{section.data['task']}`, {protocol} protocol):",
                          "", *lines, ""]
    # The forest plot of every table opens the summary (the classification section drew it).
    forest = [(figure, section.data.get("forest")) for section in sections
              if section.key == "classification" for figure in section.lead]
    return Section(key="summary", title="Summary: what this reproduction found",
                   markdown="\n".join(parts).strip(), order=1,
                   data={"claims": claims, "wall_time_seconds": round(wall_time, 1),
                         "forest": forest[0][1] if forest else None},
                   lead=[figure for figure, _ in forest])


def _load_builder(spec: str) -> Callable[[ReproduceContext], Section]:
    module_name, _, function_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def reproduce(
    preset: str = "quick",
    out_dir: str | Path = "reports/quick",
    *,
    seed: int = 0,
    only: tuple[str, ...] | None = None,
    log: Callable[[str], None] = print,
    options: dict[str, Any] | None = None,
) -> tuple[Report, Path]:
    """Run every section of the reproduction and write the report; return it and its HTML path.

    Args:
        preset: ``"quick"`` (minutes on a laptop CPU), ``"standard"`` (about an hour: every
            classification table settled to ±1 point under the tuned protocol) or ``"full"``
            (hours). Every part is resumable.
        out_dir: where ``report.md``, ``report.html``, figures and tables go.
        seed: base seed of every experiment.
        only: run only the sections whose builder module name ends with one of these
            (e.g. ``("shapes", "regression")``).
        log: progress messages.
        options: extra settings passed to the builders through the context.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    out = ensure_folder(out_dir, option="out")
    context = ReproduceContext(preset=preset, out_dir=out, seed=seed, log=log, options=dict(options or {}))
    builders = [spec for spec in SECTION_BUILDERS if only is None or spec.split(":")[0].rsplit(".", 1)[-1] in only]
    if only is not None and not builders:
        valid = sorted(spec.split(":")[0].rsplit(".", 1)[-1] for spec in SECTION_BUILDERS)
        raise ValueError(f"only: no section named {', '.join(only)}; valid: {', '.join(valid)}")
    report = Report(
        title=f"losslab reproduction of arXiv:2303.09935 (preset {preset})",
        intro=(
            "This report re-runs the claims of Noel et al., *Alternate Loss Functions for "
            "Classification and Robust Regression Can Improve the Accuracy of Artificial Neural "
            "Networks* (arXiv:2303.09935): the loss shapes and their derivatives, the robust "
            "regression table, and the classification tables, with several seeds and real "
            "statistics where the paper ran one training per loss. Every number below was "
            "computed by this run; the paper's numbers are quoted beside ours where they exist."
        ),
    )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for spec in builders:
        name = spec.split(":")[0].rsplit(".", 1)[-1]
        log(f"[reproduce] {name} ...")
        t0 = time.perf_counter()
        built = _load_builder(spec)(context)
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"[reproduce] {name} done in {timings[name]:.1f} s")
        for section in built if isinstance(built, list) else [built]:
            report.add(section)
    timings["total"] = round(time.perf_counter() - started, 2)
    report.add(summary_section(report.sections, timings["total"]))
    report.metadata = {
        "preset": preset,
        "seed": seed,
        "sections": [spec for spec in builders],
        "wall_time_seconds": timings,
        "options": context.options,
        "environment": environment_info(),
    }
    _, html_path = report.write(out)
    write_text(inside(out, "reproduce.json", file=True), json.dumps(
        {"metadata": report.metadata, "sections": {s.key: s.data for s in report.sections}},
        indent=2, default=str,
    ))
    log(f"[reproduce] report written to {html_path} in {timings['total']:.1f} s")
    return report, html_path
