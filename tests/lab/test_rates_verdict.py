"""The verdict across learning rates, on constructed paired differences (accuracy units)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from losslab.experiments.classification.reporting.rates import (
    across_rates,
    across_rates_markdown,
    rate_ranges,
    summary_statement,
    sweep_differences,
    table_across_rates,
)

GRID = (0.001, 0.00316, 0.01, 0.0316, 0.1)
BETTER = [0.020, 0.025, 0.030]  # +2.5 points, t-interval [+1.26, +3.74]
WORSE = [-0.050, -0.060, -0.055]
NOISE = [0.010, -0.020, 0.005]


def test_the_interval_at_each_rate_is_the_paired_t_interval():
    verdict = across_rates({0.01: BETTER})
    row = verdict.rates[0]
    values = np.array(BETTER)
    half = stats.t.ppf(0.975, df=2) * values.std(ddof=1) / math.sqrt(3)
    assert row.mean == pytest.approx(0.025, abs=1e-15)
    assert (row.low, row.high) == pytest.approx((0.025 - half, 0.025 + half), abs=1e-12)
    assert row.decision == "better"


def test_holds_everywhere():
    verdict = across_rates({lr: BETTER for lr in GRID})
    assert verdict.kind == "all" and verdict.holds == GRID
    assert verdict.statement == "holds at every rate (0.001–0.1)"


def test_holds_nowhere():
    verdict = across_rates({lr: NOISE for lr in GRID})
    assert verdict.kind == "none" and verdict.holds == () and verdict.statement == "holds at no rate"
    worse = across_rates({0.001: NOISE, 0.01: WORSE, 0.1: WORSE})
    assert worse.kind == "none" and worse.statement == "holds at no rate (worse at 0.01–0.1)"


def test_holds_at_some_rates():
    verdict = across_rates({0.001: NOISE, 0.00316: BETTER, 0.01: BETTER, 0.0316: NOISE, 0.1: BETTER})
    assert verdict.kind == "some" and verdict.holds == (0.00316, 0.01, 0.1)
    assert verdict.statement == "holds at some rates (0.00316–0.01, 0.1)"


def test_a_claim_that_reverses_with_the_rate_says_where():
    verdict = across_rates({0.001: BETTER, 0.00316: BETTER, 0.01: BETTER, 0.0316: WORSE, 0.1: NOISE})
    assert verdict.kind == "reverses"
    assert verdict.statement == "holds at 0.001–0.01, reverses at 0.0316"
    line = summary_statement({"l": verdict, "m": across_rates({0.01: NOISE})})
    assert line == "across the sweep's rates (validation): l holds at 0.001–0.01, reverses at 0.0316"
    assert summary_statement({"m": across_rates({0.01: NOISE})}) == (
        "across the sweep's rates (validation): no loss beats cross-entropy at any rate of the grid")
    assert summary_statement({"m": across_rates({0.01: NOISE}),
                              "l": across_rates({0.01: [0.3], 0.1: [-0.3]})}) is None  # one untested
    assert summary_statement({"m": across_rates({0.01: BETTER, 0.1: BETTER})}) == (
        "across the sweep's rates (validation): m holds at every rate (0.01–0.1)")


def test_one_sweep_seed_gives_no_interval_and_decides_nothing():
    verdict = across_rates({0.01: [0.3], 0.1: [-0.3]})
    assert verdict.kind == "untested" and all(row.decision == "undecided" for row in verdict.rates)
    assert verdict.statement == "no interval at any rate (fewer than 2 paired sweep seeds)"
    assert all(math.isnan(row.low) for row in verdict.rates)


def test_rate_ranges_group_neighbours_of_the_grid():
    assert rate_ranges([0.1, 0.001, 0.00316], GRID) == "0.001–0.00316, 0.1"
    assert rate_ranges([0.01], GRID) == "0.01"
    with pytest.raises(ValueError, match="rates: expected rates of the grid"):
        rate_ranges([0.5], GRID)


@pytest.mark.parametrize(("differences", "pattern"), [
    ({}, r"differences: expected the paired differences at one rate or more, got none"),
    ({0.01: []}, r"differences: expected at least one paired seed at lr 0\.01, got none"),
    ({0.01: [0.1, math.nan]}, r"differences: expected accuracy differences in \[-1, 1\] at lr 0\.01, got \[nan\]"),
    ({0.01: [2.0]}, r"got \[2\.0\]"),
])
def test_bad_input_names_the_argument(differences, pattern):
    with pytest.raises(ValueError, match=pattern):
        across_rates(differences)


class _Selection:
    """The one attribute the pairing reads: per rate, (seed, correct, total, diverged)."""

    def __init__(self, per_seed):
        self.per_seed = per_seed


def test_differences_pair_by_sweep_seed_and_the_table_reads_them():
    baseline = _Selection({0.01: [(0, 90, 100, False), (1, 91, 100, False), (2, 92, 100, False)],
                           0.1: [(0, 80, 100, False), (1, 80, 100, False), (2, 81, 100, False)]})
    loss = _Selection({0.01: [(2, 95, 100, False), (0, 93, 100, False), (1, 94, 100, False)],
                       0.1: [(0, 0, 100, True), (1, 10, 100, False), (2, 12, 100, False)],
                       1.0: [(0, 50, 100, False)]})  # not swept for the baseline: left out
    differences = sweep_differences(loss, baseline)
    assert differences == {0.01: pytest.approx([0.03, 0.03, 0.03]),
                           0.1: pytest.approx([-0.80, -0.70, -0.69])}
    verdicts = table_across_rates({"cross_entropy": baseline, "m": loss})
    assert list(verdicts) == ["m"] and verdicts["m"].statement == "holds at 0.01, reverses at 0.1"
    text = across_rates_markdown(verdicts)
    assert "| m | +3.00 [+3.00, +3.00] ▲ | -73.00 [" in text and "| holds at 0.01, reverses at 0.1 |" in text
