"""Statistics of the loss comparison against scipy / statsmodels and hand-computed values."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from losslab.experiments.classification.reporting.stats import (
    compare_losses,
    holm_adjust,
    paired_difference,
    summarize,
)

# Five seeds of made-up accuracies: a loss that is better on 4 of 5 seeds.
LOSS = [0.912, 0.905, 0.921, 0.899, 0.917]
BASE = [0.903, 0.907, 0.910, 0.891, 0.905]


def test_summarize_matches_statistics_module():
    result = summarize(LOSS)
    assert result.n == 5
    assert result.mean == pytest.approx(statistics.fmean(LOSS), abs=1e-15)
    assert result.sd == pytest.approx(statistics.stdev(LOSS), abs=1e-15)
    assert math.isnan(summarize([0.5]).sd)


def test_paired_difference_equals_scipy_ttest_rel_and_its_interval():
    result = paired_difference(LOSS, BASE)
    reference = scipy_stats.ttest_rel(LOSS, BASE)
    interval = reference.confidence_interval(0.95)
    assert result.t == pytest.approx(float(reference.statistic), rel=1e-12)
    assert result.p_value == pytest.approx(float(reference.pvalue), rel=1e-12)
    assert result.ci_low == pytest.approx(float(interval.low), rel=1e-12)
    assert result.ci_high == pytest.approx(float(interval.high), rel=1e-12)
    differences = np.subtract(LOSS, BASE)
    assert result.mean == pytest.approx(differences.mean(), abs=1e-15)
    assert result.sd == pytest.approx(differences.std(ddof=1), abs=1e-15)
    assert result.wilcoxon_p is None  # 5 pairs: the exact test cannot reach 0.05


def test_paired_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1. With 2 degrees of freedom the t quantile has the
    # closed form t_u = (2u - 1) / sqrt(2 u (1 - u)).
    result = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    u = 0.975
    half_width = (2 * u - 1) / math.sqrt(2 * u * (1 - u)) * 1.0 / math.sqrt(3.0)
    assert result.ci_low == pytest.approx(2.0 - half_width, rel=1e-12)
    assert result.ci_high == pytest.approx(2.0 + half_width, rel=1e-12)
    assert result.t == pytest.approx(2.0 / (1.0 / math.sqrt(3.0)), rel=1e-12)


def test_other_confidence_levels_match_scipy():
    result = paired_difference(LOSS, BASE, confidence=0.9)
    interval = scipy_stats.ttest_rel(LOSS, BASE).confidence_interval(0.9)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-12)


def test_wilcoxon_exact_value_for_six_positive_pairs_and_scipy_agreement():
    # All 6 differences positive: the exact two-sided p-value is 2 / 2**6.
    a = [0.9, 0.8, 0.85, 0.7, 0.95, 0.6]
    b = [x - d for x, d in zip(a, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06])]
    assert paired_difference(a, b).wilcoxon_p == pytest.approx(2 / 64, rel=1e-12)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=9), rng.normal(size=9)
    assert paired_difference(x, y).wilcoxon_p == pytest.approx(
        float(scipy_stats.wilcoxon(x - y).pvalue), rel=1e-12
    )


def test_degenerate_pairs():
    single = paired_difference([0.9], [0.8])
    assert single.n == 1 and single.mean == pytest.approx(0.1) and math.isnan(single.p_value)
    same = paired_difference([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.mean == 0.0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0.0
    shifted = paired_difference([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])  # exact halves
    assert shifted.p_value == 0.0 and shifted.ci_low == shifted.ci_high == 0.5


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    expected = multipletests(p, method="holm")[1]
    assert holm_adjust(p) == pytest.approx(list(expected), rel=1e-12)
    with_nan = holm_adjust([0.02, float("nan"), 0.04])
    assert with_nan[0] == pytest.approx(0.04) and math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.04)


def test_compare_losses_pairs_by_seed_and_writes_verdicts():
    accuracy = {
        "m": {0: 0.80, 1: 0.82, 2: 0.81, 7: 0.99},  # seed 7 has no baseline partner
        "cross_entropy": {0: 0.70, 1: 0.72, 2: 0.715},
        "l": {0: 0.70, 1: 0.725, 2: 0.71},
    }
    rows = compare_losses(accuracy)
    assert [row.loss for row in rows] == ["cross_entropy", "m", "l"]
    m, l_row = rows[1], rows[2]
    assert m.seeds == [0, 1, 2] and m.paired.n == 3
    reference = scipy_stats.ttest_rel([0.80, 0.82, 0.81], [0.70, 0.72, 0.715])
    assert m.paired.p_value == pytest.approx(float(reference.pvalue), rel=1e-12)
    # Holm over the two non-baseline losses
    raw = [m.paired.p_value, l_row.paired.p_value]
    assert m.p_holm == pytest.approx(holm_adjust(raw)[0]) and l_row.p_holm == pytest.approx(holm_adjust(raw)[1])
    assert m.verdict.startswith("m gives higher test accuracy than cross_entropy")
    assert l_row.verdict.startswith("no detectable difference")
    assert m.summary.n == 4  # the summary uses every finished seed of the loss
    assert rows[0].verdict == "baseline"


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="same number of paired values"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="finite"):
        summarize([0.5, float("nan")])
    with pytest.raises(ValueError, match="accuracy"):
        compare_losses({})
