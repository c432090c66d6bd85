"""The verdict across learning rates: does a loss beat cross-entropy at every rate, or only some?

The verdict of a tuned comparison reads each loss at its chosen rate. The sweep also scored
every loss at every rate of the grid on the same seeds and the same validation split, so it
can say whether the answer depends on the rate. At each rate the difference from
cross-entropy is paired by sweep seed (same seed: same initial weights and data order); its
mean and 95% Student-t interval (:func:`.stats.t_interval`, not adjusted across rates: a
description of the sweep, not a test the verdict reads) give the decision at that rate
(:func:`.stats.decide`: better, worse, equivalent within ±1 point, or undecided). A diverged
sweep run counts as zero correct, as in the selection.

The statement (:func:`across_rates`, a pure function of plain numbers): the claim "the loss
improves on cross-entropy" **holds at every rate**, **at no rate**, **at some rates** (which),
or **reverses** with the rate (better at some rates, worse at others: "holds at 0.001–0.01,
reverses at 0.0316").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from losslab._escape import md_text
from losslab.experiments.classification.reporting.stats import decide, t_interval

if TYPE_CHECKING:
    from losslab.experiments.classification.protocols.tuning import Selection

CONFIDENCE = 0.95


@dataclass(frozen=True)
class RateDifference:
    """``loss − baseline`` validation accuracy at one rate, over the paired sweep seeds."""

    lr: float
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    decision: str

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {"lr": self.lr, "n": len(self.differences), "mean": number(self.mean),
                "low": number(self.low), "high": number(self.high), "decision": self.decision,
                "differences": list(self.differences)}


@dataclass(frozen=True)
class AcrossRates:
    """One loss against the baseline at every rate, and the statement they support."""

    rates: tuple[RateDifference, ...]
    kind: str  # "all", "none", "some", "reverses" or "untested"
    holds: tuple[float, ...]
    reverses: tuple[float, ...]
    statement: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "statement": self.statement, "holds_at": list(self.holds),
                "reverses_at": list(self.reverses), "confidence": CONFIDENCE,
                "rates": [rate.to_dict() for rate in self.rates]}


def rate_ranges(rates: Sequence[float], grid: Sequence[float]) -> str:
    """``rates`` written as runs of neighbours in ``grid``: ``"0.001–0.01, 0.1"``."""
    ordered = sorted(float(lr) for lr in grid)
    index = {lr: i for i, lr in enumerate(ordered)}
    missing = [lr for lr in rates if float(lr) not in index]
    if missing:
        raise ValueError(f"rates: expected rates of the grid {ordered!r}, got {missing!r}")
    positions = sorted(index[float(lr)] for lr in rates)
    runs: list[list[int]] = []
    for position in positions:
        if runs and position == runs[-1][-1] + 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    return ", ".join(f"{ordered[run[0]]:g}" if len(run) == 1
                     else f"{ordered[run[0]]:g}–{ordered[run[-1]]:g}" for run in runs)


def across_rates(differences: Mapping[float, Sequence[float]], *,
                 confidence: float = CONFIDENCE) -> AcrossRates:
    """The decision at every rate and the statement across them.

    Args:
        differences: per rate, the paired ``loss − baseline`` validation accuracies, one per
            sweep seed (accuracy units: 0.01 is one point).
        confidence: the level of each rate's t-interval (fewer than 2 seeds: no interval,
            the rate is undecided).

    Returns:
        An :class:`AcrossRates`; ``kind`` is ``"all"`` (better at every rate), ``"none"``
        (better at no rate), ``"some"`` (better at some, worse at none), ``"reverses"``
        (better at some rates, worse at others) or ``"untested"`` (no rate has 2 seeds).
    """
    if not differences:
        raise ValueError("differences: expected the paired differences at one rate or more, got none")
    rows = []
    for lr, values in sorted((float(lr), list(v)) for lr, v in differences.items()):
        if not values:
            raise ValueError(f"differences: expected at least one paired seed at lr {lr:g}, got none")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
               or not math.isfinite(v) or abs(v) > 1]
        if bad:
            raise ValueError(f"differences: expected accuracy differences in [-1, 1] at lr {lr:g}, "
                             f"got {bad!r}")
        mean = math.fsum(values) / len(values)
        low, high = t_interval(values, confidence)
        rows.append(RateDifference(lr, tuple(float(v) for v in values), mean, low, high,
                                   decide(low, high)))
    grid = [row.lr for row in rows]
    holds = tuple(row.lr for row in rows if row.decision == "better")
    reverses = tuple(row.lr for row in rows if row.decision == "worse")
    if all(math.isnan(row.low) for row in rows):
        kind, statement = "untested", "no interval at any rate (fewer than 2 paired sweep seeds)"
    elif holds and len(holds) == len(rows):
        kind, statement = "all", f"holds at every rate ({rate_ranges(holds, grid)})"
    elif holds and reverses:
        kind = "reverses"
        statement = f"holds at {rate_ranges(holds, grid)}, reverses at {rate_ranges(reverses, grid)}"
    elif holds:
        kind, statement = "some", f"holds at some rates ({rate_ranges(holds, grid)})"
    else:
        kind = "none"
        statement = "holds at no rate" + (f" (worse at {rate_ranges(reverses, grid)})"
                                          if reverses else "")
    return AcrossRates(tuple(rows), kind, holds, reverses, statement)


def sweep_differences(selection: Selection, baseline: Selection) -> dict[float, list[float]]:
    """Per rate swept for both losses, ``loss − baseline`` validation accuracy per shared
    sweep seed (from the selections' per-seed counts; a diverged run counts zero correct)."""
    result: dict[float, list[float]] = {}
    for lr, seeds in sorted(selection.per_seed.items()):
        if lr not in baseline.per_seed:
            continue
        base = {seed: correct / total for seed, correct, total, _ in baseline.per_seed[lr]}
        paired = [correct / total - base[seed] for seed, correct, total, _ in seeds if seed in base]
        if paired:
            result[lr] = paired
    return result


def table_across_rates(selections: Mapping[str, Selection], baseline: str = "cross_entropy"
                       ) -> dict[str, AcrossRates]:
    """``{loss: AcrossRates}`` for every loss of a tuned comparison but the baseline."""
    if baseline not in selections:
        return {}
    result = {}
    for loss, selection in selections.items():
        if loss == baseline:
            continue
        differences = sweep_differences(selection, selections[baseline])
        if differences:
            result[loss] = across_rates(differences)
    return result


def summary_statement(verdicts: Mapping[str, AcrossRates]) -> str | None:
    """One line for the summary: the losses whose answer depends on the rate (holds at some
    rates only, or reverses) or holds at every rate; when every loss was tested and none is
    better at any rate, that; else (nothing tested) None."""
    prefix = "across the sweep's rates (validation): "
    parts = [f"{loss} {verdict.statement}" for loss, verdict in verdicts.items()
             if verdict.kind in ("reverses", "some", "all")]
    if parts:
        return prefix + "; ".join(parts)
    if verdicts and all(verdict.kind == "none" for verdict in verdicts.values()):
        return prefix + "no loss beats cross-entropy at any rate of the grid"
    return None


def across_rates_markdown(verdicts: Mapping[str, AcrossRates]) -> str:
    """The difference from the baseline at every rate, one row per loss, and each statement."""
    if not verdicts:
        return ""
    grid = sorted({row.lr for verdict in verdicts.values() for row in verdict.rates})
    lines = ["| loss | " + " | ".join(f"Δ @ {lr:g}" for lr in grid) + " | across rates |",
             "|:---|" + "---:|" * len(grid) + ":---|"]
    marks = {"better": "▲", "worse": "▼", "equivalent": "=", "undecided": "?"}
    for loss, verdict in verdicts.items():
        by_rate = {row.lr: row for row in verdict.rates}
        cells = []
        for lr in grid:
            row = by_rate.get(lr)
            if row is None:
                cells.append("–")
            elif math.isnan(row.low):
                cells.append(f"{100 * row.mean:+.2f} {marks[row.decision]}")
            else:
                cells.append(f"{100 * row.mean:+.2f} [{100 * row.low:+.2f}, {100 * row.high:+.2f}] "
                             f"{marks[row.decision]}")
        lines.append(f"| {md_text(loss)} | " + " | ".join(cells) + f" | {verdict.statement} |")
    return ("The verdict across rates: each loss's validation accuracy minus cross-entropy's at "
            "every rate of the sweep, in points (mean over the paired sweep seeds, "
            f"{100 * CONFIDENCE:g}% t-interval, not adjusted across rates; ▲ better, ▼ worse, "
            "= within ±1 point, ? undecided):\n\n" + "\n".join(lines))
