"""Verdicts agree with their intervals; precision, bootstrap and improvement figures are right."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from losslab.experiments.classification.reporting.stats import (
    bootstrap_interval,
    compare_losses,
    decide,
    detectable_difference,
    holm_adjust,
    holm_levels,
    probability_of_improvement,
    seeds_needed,
    t_interval,
)


def _accuracy(differences: dict[str, list[float]], base: list[float]) -> dict[str, dict[int, float]]:
    result = {"cross_entropy": dict(enumerate(base))}
    for loss, diffs in differences.items():
        result[loss] = {seed: base[seed] + d for seed, d in enumerate(diffs)}
    return result


def test_holm_matched_interval_contains_zero_when_unadjusted_interval_does_not():
    base = [0.80, 0.81, 0.79, 0.82, 0.80, 0.81]
    # "m": unadjusted p just below 0.05, two other losses with larger p: Holm cannot reject.
    accuracy = _accuracy({
        "m": [0.010, 0.002, 0.016, 0.004, 0.012, 0.001],
        "l": [0.01, -0.01, 0.02, -0.015, 0.005, 0.0],
        "full_l": [0.02, -0.02, 0.01, -0.01, 0.0, 0.003],
    }, base)
    rows = {row.loss: row for row in compare_losses(accuracy)}
    m = rows["m"]
    assert m.paired.ci_low > 0.0  # the unadjusted 95% interval excludes 0 ...
    assert m.paired.p_value < 0.05
    assert m.p_holm >= 0.05  # ... but Holm's test does not reject
    assert m.adjusted_low <= 0.0 <= m.adjusted_high
    assert m.decision in ("undecided", "equivalent")
    assert m.verdict.startswith("no detectable difference")
    assert "Holm-adjusted" in m.verdict


def test_verdict_and_interval_agree_on_many_constructed_tables():
    rng = np.random.default_rng(3)
    for trial in range(120):
        n = int(rng.integers(2, 12))
        base = list(rng.uniform(0.6, 0.9, n))
        shifts = rng.normal(0, 0.01, 3)
        accuracy = _accuracy({f"loss{i}": list(rng.normal(shifts[i], rng.uniform(0.001, 0.02), n))
                              for i in range(3)}, base)
        for row in compare_losses(accuracy)[1:]:
            rejects = row.p_holm < 0.05
            excludes = row.adjusted_low > 0 or row.adjusted_high < 0
            assert rejects == excludes, (trial, row)
            claims = not row.verdict.startswith("no detectable difference")
            assert claims == excludes, (trial, row.verdict)


def test_holm_levels_match_holm_adjust():
    p = [0.001, 0.02, 0.03, 0.2]
    levels = holm_levels(p)
    adjusted = holm_adjust(p)
    # rank 1 passes at alpha/4; rank 2 fails (0.02 >= alpha/3), so ranks 2-4 stay at alpha/3
    assert levels == pytest.approx([1 - 0.05 / 4, 1 - 0.05 / 3, 1 - 0.05 / 3, 1 - 0.05 / 3])
    # and with every step passing, rank r is tested at alpha / (m - r + 1)
    assert holm_levels([0.001, 0.01, 0.02, 0.04]) == pytest.approx(
        [1 - 0.05 / 4, 1 - 0.05 / 3, 1 - 0.05 / 2, 1 - 0.05 / 1])
    for pi, level, adj in zip(p, levels, adjusted):
        assert (pi < 1 - level) == (adj < 0.05)


def test_t_interval_matches_scipy():
    d = np.array([0.01, -0.004, 0.02, 0.007, 0.0])
    low, high = t_interval(d, 0.9)
    ref = scipy_stats.t.interval(0.9, df=4, loc=d.mean(), scale=scipy_stats.sem(d))
    assert (low, high) == pytest.approx(ref, rel=1e-12)


def _paired_power(effect: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample t-test, directly from the noncentral t."""
    critical = scipy_stats.t.ppf(1 - alpha / 2, n - 1)
    nc = effect * math.sqrt(n)
    return scipy_stats.nct.sf(critical, n - 1, nc) + scipy_stats.nct.cdf(-critical, n - 1, nc)


@pytest.mark.parametrize("n", [2, 3, 5, 10, 20])
def test_detectable_difference_has_80_percent_power(n):
    sd = 0.012
    mdd = detectable_difference(sd, n)
    assert _paired_power(mdd / sd, n) == pytest.approx(0.8, abs=1e-6)
    if n >= 3:  # statsmodels' own solver (it does not converge at 2 pairs)
        from statsmodels.stats.power import TTestPower

        effect = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05, power=0.8)
        assert mdd == pytest.approx(float(np.asarray(effect).item()) * sd, rel=1e-5)


@pytest.mark.parametrize("sd", [0.003, 0.008, 0.02])
def test_seeds_needed_is_the_smallest_n_with_80_percent_power(sd):
    from statsmodels.stats.power import TTestPower

    n = seeds_needed(sd, 0.01)
    assert _paired_power(0.01 / sd, n) >= 0.8
    exact = TTestPower().solve_power(effect_size=0.01 / sd, nobs=None, alpha=0.05, power=0.8)
    assert n == max(2, math.ceil(float(np.asarray(exact).item())))
    if n > 2:
        assert _paired_power(0.01 / sd, n - 1) < 0.8


def test_precision_edge_cases():
    assert math.isnan(detectable_difference(0.01, 1))
    assert detectable_difference(0.0, 5) == 0.0
    assert seeds_needed(0.0) == 2
    assert seeds_needed(math.nan) is None
    assert seeds_needed(10.0, 0.01) == 10_001  # "more than 10 000"


def test_bootstrap_interval_agrees_with_a_direct_percentile_bootstrap():
    d = np.array([0.012, -0.003, 0.02, 0.004, 0.009, -0.001, 0.015, 0.006])
    low, high = bootstrap_interval(d, confidence=0.95, seed=1)
    rng = np.random.default_rng(123)
    means = d[rng.integers(0, d.size, (200_000, d.size))].mean(axis=1)
    ref_low, ref_high = np.percentile(means, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=6e-4)
    assert high == pytest.approx(ref_high, abs=6e-4)
    assert bootstrap_interval([0.01, 0.01, 0.01]) == (0.01, 0.01)


def test_probability_of_improvement_and_its_wilson_interval():
    a = [0.81, 0.80, 0.83, 0.79, 0.80]
    b = [0.80, 0.80, 0.82, 0.80, 0.78]
    result = probability_of_improvement(a, b)
    assert (result.wins, result.ties, result.n) == (3, 1, 5)
    assert result.probability == pytest.approx(3.5 / 5)
    # Wilson score interval, written out
    p, n, z = 3.5 / 5, 5, scipy_stats.norm.ppf(0.975)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (result.low, result.high) == pytest.approx((centre - half, centre + half), rel=1e-9)


def test_equivalence_reading():
    assert decide(-0.004, 0.006) == "equivalent"
    assert decide(-0.02, 0.006) == "undecided"
    assert decide(0.001, 0.02) == "better"
    assert decide(-0.03, -0.001) == "worse"
    base = [0.8, 0.81, 0.82, 0.8, 0.79, 0.8]
    rows = compare_losses(_accuracy({"m": [0.001, -0.001, 0.0005, 0.0, -0.0005, 0.001]}, base))
    assert rows[1].decision == "equivalent"
    assert "rules out differences beyond ±1 point" in rows[1].verdict
    assert rows[1].precision.half_width < 0.01


def test_the_report_opens_with_the_claims_and_the_ranked_lines():
    from losslab.experiments.classification.reporting.report import (
        decision_lines,
        statistics_markdown,
    )
    from losslab.experiments.reproduce import summary_section
    from losslab.report import Section

    base = [0.80, 0.81, 0.79, 0.82, 0.80, 0.81]
    rows = compare_losses(_accuracy({"m": [0.02, 0.025, 0.018, 0.022, 0.02, 0.021],
                                     "l": [0.001, -0.002, 0.0, 0.002, -0.001, 0.0]}, base))
    lines = decision_lines(rows)
    assert lines[0].startswith("1. **m**: +2.10 points") and "better than cross-entropy" in lines[0]
    assert lines[1].startswith("2. **l**: +0.00 points") and "no difference beyond ±1 point" in lines[1]
    assert lines[2].startswith("- baseline **cross_entropy**")
    table = statistics_markdown(rows)
    assert table.splitlines()[1].startswith("|:---|")  # text columns left-aligned
    sections = [
        Section("regression", "Regression", "", data={"claims": [
            {"table": 1, "claim": "SMAE < log-cosh < MSE", "verdict": "holds", "reason": "a | b"}]}),
        Section("classification", "Classification", "", data={"claims": [
            {"table": 3, "claim": "alternate losses improve", "verdict": "undecided", "reason": "r3"},
            {"table": 2, "claim": "alternate losses improve", "verdict": "does not hold", "reason": "r2"}]}),
        Section("classification-table3", "Table 3: x", "", data={
            "task": "digits-mlp", "stand_in": {"protocols": ["tuned"]},
            "tuned": {"decision_lines": lines}}),
    ]
    summary = summary_section(sections, 123.4)
    assert summary.order < min(s.order for s in sections)
    text = summary.markdown
    assert "Wall time of this reproduction: 123 s." in text
    assert text.index("| 1 |") < text.index("| 2 |") < text.index("| 3 |")
    assert "| 2 | alternate losses improve | **does not hold** | r2 |" in text
    assert "a / b" in text  # a pipe in a reason cannot break the table
    assert "**Table 3: x** (`digits-mlp`, tuned protocol):" in text and lines[0] in text


def test_groups_are_named_by_the_settings_that_differ():
    from losslab.experiments.classification.reporting.report import differing_settings

    a = {"task": "t", "data": {"model": "mlp", "options": {"max_train": 100}},
         "training": {"epochs": 5, "lr": 0.001, "batch_size": 32}}
    b = {"task": "t", "data": {"model": "vgg", "options": {"max_train": 100}},
         "training": {"epochs": 5, "lr": 0.001, "batch_size": 32}}
    c = {**b, "training": {"epochs": 5, "lr": 0.001, "batch_size": 64}}
    assert differing_settings([a, b]) == ["data.model"]
    assert differing_settings([a, b, c]) == ["data.model", "training.batch_size"]
    assert differing_settings([a, a]) == []


def test_rows_still_training_elsewhere_are_marked_incomplete():
    from losslab.experiments.classification.reporting.report import TaskResults, statistics_markdown

    def run(loss, seed, status, accuracy):
        return {"loss": loss, "seed": seed, "status": status,
                "epochs": [{"eval_accuracy": accuracy}] if status == "finished" else []}

    group = TaskResults("t", {}, [run("cross_entropy", s, "finished", 0.8 + s / 100) for s in range(3)]
                        + [run("m", 0, "finished", 0.81), run("m", 1, "finished", 0.83),
                           run("m", 2, "running", 0.0)])
    assert group.incomplete() == {"m": (2, 3)}
    table = statistics_markdown(group.comparisons(), group.incomplete())
    assert "| m (incomplete: 2 of 3 runs finished) | 2 |" in table
    assert "| cross_entropy | 3 |" in table
