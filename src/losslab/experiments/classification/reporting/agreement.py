"""Whether a lighter run's verdicts agree with a heavier one's (the demo with the published run).

A run with fewer seeds and smaller stand-ins has wider intervals, so it may fail to decide
where the heavier run decides: "undecided" against "holds" or "does not hold" is weaker, not
a contradiction. Any other difference is one: "holds" against "does not hold", and also a
decided verdict where the heavier run stays undecided (the lighter run would claim more than
its evidence allows). :func:`verdict_conflicts` lists them from two ``reproduce`` JSON files.

A table re-run by two stand-ins (Table 3: the transfer stand-in and the MLP from scratch) has a
verdict for each, so verdicts are keyed by the table and the stand-in task; a claim without a
task (the regression table, or a JSON written before claims named their task) is keyed by the
table alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

VERDICTS: tuple[str, ...] = ("holds", "does not hold", "undecided")
# (table number, stand-in task or None)
ClaimKey = tuple[int, str | None]


def describe(key: ClaimKey) -> str:
    """``"Table 3"`` or ``"Table 3 (mnist-finetune)"``."""
    table, task = key
    return f"Table {table}" + (f" ({task})" if task else "")


def claims_by_table(report: Mapping[str, Any] | Sequence[Mapping[str, Any]], *, name: str = "report"
                    ) -> dict[ClaimKey, str]:
    """``{(table, task): verdict}`` of a ``reproduce`` JSON (every section's ``claims``) or of a
    list of claim records, each checked (a table number, a plain task name or none, a known
    verdict, no table and task twice)."""
    if isinstance(report, Mapping):
        sections = report.get("sections")
        if not isinstance(sections, Mapping):
            raise ValueError(f"{name}: expected a reproduce JSON with a 'sections' mapping, got "
                             f"keys {sorted(report)!r}")
        claims = [claim for section in sections.values() if isinstance(section, Mapping)
                  for claim in section.get("claims", [])]
    elif isinstance(report, Sequence) and not isinstance(report, (str, bytes)):
        claims = list(report)
    else:
        raise TypeError(f"{name}: expected a reproduce JSON mapping or a list of claims, got "
                        f"{type(report).__name__}")
    verdicts: dict[ClaimKey, str] = {}
    for claim in claims:
        if not isinstance(claim, Mapping):
            raise ValueError(f"{name}: expected each claim to be a mapping, got {claim!r}")
        table, verdict, task = claim.get("table"), claim.get("verdict"), claim.get("task")
        if isinstance(table, bool) or not isinstance(table, int):
            raise ValueError(f"{name}: expected an integer 'table' in each claim, got {table!r}")
        if task is not None and (not isinstance(task, str) or not task.replace("-", "").replace("_", "").isalnum()):
            raise ValueError(f"{name}: table {table}: expected a task name of letters, digits, '-' "
                             f"and '_', got {task!r}")
        key = (table, task)
        if verdict not in VERDICTS:
            raise ValueError(f"{name}: {describe(key).lower()}: expected a verdict among "
                             f"{', '.join(VERDICTS)}, got {verdict!r}")
        if verdicts.get(key, verdict) != verdict:
            raise ValueError(f"{name}: {describe(key).lower()} has two verdicts, {verdicts[key]!r} and "
                             f"{verdict!r}")
        verdicts[key] = verdict
    return verdicts


def verdict_conflicts(quick: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                      standard: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per table (and stand-in) where the lighter run (``quick``) contradicts the
    heavier one (``standard``): the same verdict or "undecided" in ``quick`` is compatible,
    anything else is not. Tables or stand-ins only one of them ran are not compared."""
    light = claims_by_table(quick, name="quick")
    heavy = claims_by_table(standard, name="standard")
    conflicts = []
    for key in sorted(set(light) & set(heavy), key=lambda k: (k[0], k[1] or "")):
        if light[key] not in (heavy[key], "undecided"):
            conflicts.append(f"{describe(key)}: the quick run says {light[key]!r}, the standard "
                             f"run {heavy[key]!r}")
    return conflicts


def verdicts_compatible(quick: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                        standard: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> bool:
    """True when no verdict of ``quick`` contradicts ``standard`` (see :func:`verdict_conflicts`)."""
    return not verdict_conflicts(quick, standard)
