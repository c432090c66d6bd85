"""The width of the intervals the verdicts read, stated against the precision target."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from losslab.experiments.classification.protocols.sequential import (
    PrecisionTarget,
    SequentialOutcome,
)
from losslab.experiments.classification.reporting.section import verdict_width
from losslab.experiments.classification.reporting.stats import compare_losses


def _scores(spreads: dict[str, float], n: int) -> dict[str, dict[int, float]]:
    rng = np.random.default_rng(0)
    base = 0.9 + 0.01 * rng.standard_normal(n)
    scores = {"cross_entropy": {s: float(v) for s, v in enumerate(base)}}
    for loss, spread in spreads.items():
        noise = spread * rng.standard_normal(n)
        scores[loss] = {s: float(base[s] + noise[s]) for s in range(n)}
    return scores


def _holm_half(comparison) -> float:
    return 100 * (comparison.adjusted_high - comparison.adjusted_low) / 2


def test_the_widest_verdict_interval_is_the_holm_level_one_and_matches_scipy():
    scores = _scores({"m": 0.002, "l": 0.004}, n=12)
    comparisons = compare_losses(scores)
    record = verdict_width(comparisons, 1.0)
    widest = max((c for c in comparisons if c.loss != "cross_entropy"), key=_holm_half)
    assert record["loss"] == widest.loss
    level = widest.adjusted_confidence
    assert record["confidence"] == level and 0.95 <= level < 1
    # an independent check: the paired t half-width at the Holm level, from scipy
    differences = np.array([scores[widest.loss][s] - scores["cross_entropy"][s] for s in range(12)])
    expected = 100 * stats.sem(differences) * stats.t.ppf(0.5 + level / 2, len(differences) - 1)
    assert record["half_width_points"] == pytest.approx(expected, rel=1e-9)
    assert record["within_target"] is True
    assert "within the ±1-point target" in record["statement"]


def test_wider_than_the_target_says_why():
    comparisons = compare_losses(_scores({"m": 0.03, "l": 0.001}, n=6))
    target = PrecisionTarget(target_width=0.01, max_seeds=6)
    capped = SequentialOutcome(target=target, stopped="max_seeds")
    record = verdict_width(comparisons, 1.0, capped)
    assert record["within_target"] is False and record["loss"] == "m"
    assert record["plain_95_half_width_points"] > 1.0
    assert "the seed limit (6) came before the target" in record["statement"]
    # a plain 95% half-width within the target, widened by Holm's level: the other reason
    met = SequentialOutcome(target=target, stopped="target")
    assert "Holm's step level widens it" in verdict_width(comparisons, 1.0, met)["statement"]
    assert verdict_width(comparisons, None)["within_target"] is None
    assert verdict_width(compare_losses({"cross_entropy": {0: 0.9}}), 1.0) is None


def test_the_target_is_read_as_printed():
    from types import SimpleNamespace

    def row(half_points: float) -> SimpleNamespace:
        return SimpleNamespace(loss="m", decision="worse", paired=SimpleNamespace(n=8),
                               adjusted_low=-0.03 - half_points / 100, adjusted_high=-0.03 + half_points / 100,
                               adjusted_confidence=0.9875,
                               precision=SimpleNamespace(half_width=0.0071))
    assert verdict_width([row(1.004)], 1.0)["within_target"] is True  # printed "±1.00"
    assert "±1.00 points" in verdict_width([row(1.004)], 1.0)["statement"]
    assert verdict_width([row(1.006)], 1.0)["within_target"] is False  # printed "±1.01"
