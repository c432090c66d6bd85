"""The rows of a comparison's forest plot, read from the same statistics as its table.

Each row is a :class:`.stats.LossComparison` against cross-entropy: its mean paired difference
and the Holm-level interval the verdict reads (``adjusted_low`` / ``adjusted_high``), scaled to
points exactly as the tables print them, so the figure and the table cannot disagree. The
drawing is :mod:`losslab.plotting.forest`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from losslab.experiments.classification.reporting.stats import POINT

if TYPE_CHECKING:
    from losslab.experiments.classification.reporting.stats import LossComparison
    from losslab.plotting.forest import ForestGroup, ForestRow
    from losslab.report import Figure

# Accuracy-like scores are printed in points: hundredths of the score.
POINTS = 100.0
FOREST_CAPTION = (
    "Forest plot: each loss's mean paired difference from cross-entropy (dot) with the interval "
    "its verdict reads (Holm-level t interval; green better, red worse, grey equivalent, orange "
    "undecided); the shaded band is the ±1-point equivalence margin, the line at 0 no difference; "
    "an interval wider than the axis is cut at its edge (arrowhead), the numbers on the right are "
    "exact."
)
CLAIM_CAPTION = " Open diamonds: the paper's claimed gain over cross-entropy from its single runs."


def comparison_rows(comparisons: Sequence[LossComparison], *,
                    claims: Mapping[str, float] | None = None,
                    labels: Mapping[str, str] | None = None) -> tuple[ForestRow, ...]:
    """One forest row per compared loss (the baseline and losses without a shared seed are left
    out), in the comparisons' order.

    Args:
        comparisons: the output of :func:`.stats.compare_losses`.
        claims: ``{loss: claimed difference in points}`` to mark (the paper's gains).
        labels: ``{loss: row label}`` (default: the loss name).

    Returns:
        The rows, differences and intervals in points.
    """
    from losslab.plotting.forest import ForestRow

    rows = []
    for comparison in comparisons:
        if comparison.decision == "baseline" or comparison.paired is None:
            continue
        tested = comparison.decision != "untested"
        rows.append(ForestRow(
            label=(labels or {}).get(comparison.loss, comparison.loss),
            difference=POINTS * comparison.paired.mean,
            low=POINTS * comparison.adjusted_low if tested else math.nan,
            high=POINTS * comparison.adjusted_high if tested else math.nan,
            confidence=comparison.adjusted_confidence if tested else math.nan,
            decision=comparison.decision,
            n=comparison.paired.n,
            claim=None if claims is None or comparison.loss not in claims else float(claims[comparison.loss]),
        ))
    return tuple(rows)


def forest_group(title: str, comparisons: Sequence[LossComparison], *,
                 claims: Mapping[str, float] | None = None,
                 labels: Mapping[str, str] | None = None) -> ForestGroup:
    """:func:`comparison_rows` under a title (one panel of a forest figure)."""
    from losslab.plotting.forest import ForestGroup

    return ForestGroup(title, comparison_rows(comparisons, claims=claims, labels=labels))


def draw_forest(groups: Sequence[ForestGroup], out_dir: str | Path, stem: str, caption: str, *,
                metric: str = "test accuracy") -> Figure | None:
    """The forest figure of ``groups`` (None when no group has a row: nothing compared yet)."""
    from losslab.plotting.forest import forest_figure

    if not any(group.rows for group in groups):
        return None
    return forest_figure(groups, out_dir, stem, caption, margin=POINTS * POINT,
                         xlabel=f"difference from cross-entropy, {metric} (points)")


def forest_record(figure: Figure | None) -> dict[str, object] | None:
    """The numbers a forest figure drew (read back from its JSON twin), for a section's data."""
    if figure is None or figure.data is None:
        return None
    from losslab.plotting.forest import read_forest_data

    return read_forest_data(figure.data)


class ComparedTask(Protocol):
    """What a task's forest plot reads (a :class:`.report.TaskResults` is one)."""

    label: str

    def comparisons(self, *, metric: str = ...) -> list[LossComparison]: ...


def task_forest(task: ComparedTask, out_dir: str | Path, stem: str, *,
                metric: str = "accuracy") -> Figure | None:
    """The forest plot that opens a task's section in ``losslab report`` / ``compare --out``:
    the same comparisons as the section's statistics table."""
    from losslab.experiments.classification.trial.metrics import METRIC_NAMES

    group = forest_group(task.label, task.comparisons(metric=metric))
    return draw_forest([group], out_dir, stem, f"{task.label}: {FOREST_CAPTION}",
                       metric=METRIC_NAMES[metric])


def table_forest(groups: Sequence[tuple[str, ForestGroup]], primary: str, out_dir: str | Path,
                 stem: str, title: str) -> Figure | None:
    """The forest plot that opens a paper table's section: one panel per protocol, the
    protocol the verdict reads (``primary``) on top, the paper's gains marked."""
    ordered = sorted(groups, key=lambda item: item[0] != primary)
    caption = (f"{title}: {FOREST_CAPTION}{CLAIM_CAPTION} The verdict reads the {primary} "
               "protocol" + (" (top panel)." if len(ordered) > 1 else "."))
    return draw_forest([group for _, group in ordered], out_dir, stem, caption)


def summary_forest(tables: Mapping[int, Mapping[str, object]], out_dir: str | Path,
                   stem: str = "summary-forest") -> Figure | None:
    """Every table's verdict panel in one figure (the reproduction's summary), read back from
    the tables' own forest records so both show the same numbers."""
    from losslab.plotting.forest import ForestGroup

    groups = []
    for number in sorted(tables):
        record = tables[number].get("forest")
        if isinstance(record, Mapping) and record.get("groups"):
            groups.append(ForestGroup.from_dict(record["groups"][0]))
    caption = ("Every table at a glance, the protocol each verdict reads: " + FOREST_CAPTION
               + CLAIM_CAPTION)
    return draw_forest(groups, out_dir, stem, caption)
