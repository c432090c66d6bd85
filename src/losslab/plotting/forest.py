"""Forest plots: each loss's difference from the baseline with the interval its verdict reads.

One row per loss: the mean paired difference (in points) as a dot, the interval as a bar, the
±margin equivalence band shaded, 0 marked, and optionally a claimed gain (the paper's) as a
distinct open diamond. Several groups (the tables of a reproduction) stack as small multiples
sharing the x axis, so their differences read on one scale.

The figure's numbers are stored beside it as a JSON twin (``<stem>.json``): a reader (or a
test) compares them with the table's without reading pixels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from losslab.plotting import plot_text
from losslab.report import Figure

# What the markers mean, in the legend and in the JSON twin.
DIFFERENCE_LABEL = "difference from cross-entropy, with the interval the verdict reads"
CLAIM_LABEL = "paper's claimed gain (one run per loss)"
_DECISION_COLORS = {"better": "#2ca02c", "worse": "#d62728", "equivalent": "#555555",
                    "undecided": "#ff7f0e", "untested": "#999999"}


@dataclass(frozen=True)
class ForestRow:
    """One row of a forest plot, in points (hundredths of the score).

    Attributes:
        label: what the row is (a loss name).
        difference: the mean paired difference from the baseline.
        low, high: the interval the verdict reads (NaN when untested: a dot, no bar).
        confidence: the interval's confidence level (NaN when untested).
        decision: ``"better"``, ``"worse"``, ``"equivalent"``, ``"undecided"`` or ``"untested"``.
        n: paired seeds.
        claim: a claimed difference to mark on the row (the paper's gain), or None.
    """

    label: str
    difference: float
    low: float
    high: float
    confidence: float
    decision: str
    n: int
    claim: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ForestRow:
        """The row :meth:`to_dict` wrote (nulls back to NaN)."""
        def number(key: str) -> float:
            value = record.get(key)
            return math.nan if value is None else float(value)

        claim = record.get("claim")
        return cls(str(record["label"]), number("difference"), number("low"), number("high"),
                   number("confidence"), str(record["decision"]), int(record["n"]),
                   None if claim is None else float(claim))


@dataclass(frozen=True)
class ForestGroup:
    """The rows of one comparison (one table) under a title."""

    title: str
    rows: tuple[ForestRow, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ForestGroup:
        """The group :meth:`to_dict` wrote."""
        return cls(str(record["title"]), tuple(ForestRow.from_dict(row) for row in record["rows"]))


def forest_data(groups: Sequence[ForestGroup], *, margin: float, unit: str) -> dict[str, Any]:
    """The JSON twin of a forest plot: every number it draws, and what its marks mean."""
    return {"unit": unit, "equivalence_margin": margin, "difference": DIFFERENCE_LABEL,
            "claim": CLAIM_LABEL, "groups": [group.to_dict() for group in groups]}


def _row_text(row: ForestRow) -> str:
    if math.isnan(row.low):
        return f"{row.difference:+.2f} (n={row.n}, untested)"
    return f"{row.difference:+.2f} [{row.low:+.2f}, {row.high:+.2f}] {plot_text(row.decision)}"


def axis_reach(rows: Sequence[ForestRow], margin: float) -> float:
    """Half the x range of a forest plot: every difference, claim and interval end, with room,
    but at most ``max(8 × margin, 1.5 × the largest claim)``. One diverged run can give an
    interval of ±50 points; drawn in full it would squash every other row into the band, so
    intervals (and differences) beyond the cap are cut at the axis's edge with an arrowhead,
    and the numbers printed beside each row stay exact."""
    values = [v for r in rows for v in (r.difference, r.low, r.high, r.claim)
              if v is not None and not math.isnan(v)]
    claims = [abs(r.claim) for r in rows if r.claim is not None and not math.isnan(r.claim)]
    cap = max([8.0 * margin, *(1.5 * c for c in claims)])
    return min(max([margin * 1.6, *(abs(v) * 1.08 for v in values)]), cap)


def forest_figure(groups: Sequence[ForestGroup], out_dir: str | Path, stem: str, caption: str, *,
                  margin: float = 1.0, xlabel: str = "difference from cross-entropy (points)",
                  unit: str = "points") -> Figure:
    """Draw ``groups`` as stacked forest plots; save ``stem.png``, ``stem.svg``, ``stem.json``.

    Args:
        groups: one panel per group, top to bottom (empty groups are left out).
        out_dir: the folder the three files go to (created if missing).
        stem: the file name without extension (a name losslab built, not user text).
        caption: the figure's caption.
        margin: half-width of the shaded equivalence band, in the rows' unit.
        xlabel: the x axis's label.
        unit: the rows' unit, recorded in the JSON twin.

    Returns:
        The :class:`losslab.report.Figure` with ``data`` set to the JSON twin's path.
    """
    from losslab._paths import ensure_folder, inside, write_text
    from losslab.plotting import pyplot, save_figure

    shown = [group for group in groups if group.rows]
    if not shown:
        raise ValueError("groups: expected at least one group with rows, got none")
    if not (isinstance(margin, (int, float)) and margin > 0):
        raise ValueError(f"margin: expected a positive number, got {margin!r}")
    plt = pyplot()
    heights = [len(group.rows) + 1.2 for group in shown]
    fig, axes = plt.subplots(len(shown), 1, sharex=True, squeeze=False,
                             figsize=(10.5, 0.9 + 0.42 * sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    reach = axis_reach([row for group in shown for row in group.rows], margin)
    for axis, group in zip(axes[:, 0], shown):
        axis.axvspan(-margin, margin, color="#9ecae1", alpha=0.35, linewidth=0)
        axis.axvline(0.0, color="#333333", linewidth=1)
        for position, row in enumerate(group.rows):
            y = len(group.rows) - 1 - position  # first row on top
            color = _DECISION_COLORS.get(row.decision, "#1f77b4")
            if not math.isnan(row.low):
                # An interval beyond the axis is cut at its edge, with an arrowhead there.
                axis.plot([max(row.low, -reach), min(row.high, reach)], [y, y], color=color,
                          linewidth=2.4, solid_capstyle="butt")
                for end, edge, marker in ((row.low, -reach, "<"), (row.high, reach, ">")):
                    if abs(end) > reach and (end < 0) == (edge < 0):
                        axis.plot(edge, y, marker, color=color, markersize=9, clip_on=False)
            if abs(row.difference) <= reach:
                axis.plot(row.difference, y, "o", color=color, markersize=7)
            if row.claim is not None:
                axis.plot(row.claim, y, "D", markerfacecolor="none", markeredgecolor="#7b3294",
                          markeredgewidth=1.6, markersize=8)
            axis.annotate(_row_text(row), xy=(1.0, y), xycoords=("axes fraction", "data"),
                          xytext=(14, 0), textcoords="offset points", va="center", fontsize=9)
        axis.set_yticks(range(len(group.rows)))
        axis.set_yticklabels([plot_text(row.label) for row in reversed(group.rows)], fontsize=10)
        axis.set_ylim(-0.7, len(group.rows) - 0.3)
        axis.grid(axis="y", visible=False)
        axis.set_title(plot_text(group.title), fontsize=10, loc="left")
    axes[-1, 0].set_xlim(-reach, reach)
    axes[-1, 0].set_xlabel(xlabel)
    # One legend entry per kind of mark: the band, each decision drawn, the claims.
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    drawn = {row.decision for group in shown for row in group.rows}
    entries: dict[str, Any] = {f"±{margin:g}-point equivalence band":
                               Patch(color="#9ecae1", alpha=0.35, linewidth=0)}
    for decision, color in _DECISION_COLORS.items():
        if decision in drawn:
            entries[f"{decision} (mean, interval)"] = Line2D([], [], color=color, marker="o",
                                                             linewidth=2.4)
    if any(row.claim is not None for group in shown for row in group.rows):
        entries[CLAIM_LABEL] = Line2D([], [], linestyle="none", marker="D", markersize=8,
                                      markerfacecolor="none", markeredgecolor="#7b3294",
                                      markeredgewidth=1.6)
    fig.legend(list(entries.values()), list(entries), loc="lower center",
               ncol=min(len(entries), 3), fontsize=9, bbox_to_anchor=(0.45, 1.0))
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    folder = ensure_folder(out_dir, option="out_dir")
    figure = save_figure(fig, folder, stem, caption)
    twin = write_text(inside(folder, f"{stem}.json"),
                      json.dumps(forest_data(shown, margin=margin, unit=unit), indent=2))
    figure.data = twin
    return figure


def read_forest_data(path: str | Path) -> dict[str, Any]:
    """A forest plot's JSON twin, checked to hold groups of rows with numeric fields."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(record, dict) or not isinstance(record.get("groups"), list):
        raise ValueError(f"{path}: expected a forest-plot record with a list of groups")
    for group in record["groups"]:
        rows = group.get("rows") if isinstance(group, dict) else None
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected each group to hold a list of rows, got {group!r}")
        for row in rows:
            for key in ("difference", "low", "high", "claim"):
                value = row.get(key) if isinstance(row, dict) else "missing"
                if value is not None and not isinstance(value, (int, float)):
                    raise ValueError(f"{path}: row {key} must be a number or null, got {value!r}")
    return record
