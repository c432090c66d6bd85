"""Statistics of a loss comparison: mean ± sd per loss, and paired differences against a baseline.

Every loss of a task is trained with the same seeds (same initial weights, same data order),
so the fair comparison is *paired*: the per-seed difference ``acc(loss) - acc(baseline)``.
For each loss this module gives the mean difference with a Student-t confidence interval, a
paired t-test, a Wilcoxon signed-rank test when there are enough seeds for it to reach
p < 0.05, Holm's adjustment over the losses of one task, and a one-line verdict.

The verdict and the interval printed beside it always agree: the interval is computed at the
confidence level of the Holm step that tests its hypothesis (:func:`holm_levels`), so it
excludes 0 exactly when the Holm-adjusted test rejects. Beside it: the smallest difference the
seeds could detect (80 % power, statsmodels' ``TTestPower``), the seeds needed to detect one
point, a paired bootstrap interval (``scipy.stats.bootstrap``) and the probability of
improvement (share of seeds on which the loss beats the baseline, ties counting half, with a
Wilson interval from statsmodels' ``proportion_confint``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# The exact two-sided Wilcoxon p-value cannot go below 2 / 2**n, which is 0.0625 at n = 5:
# with fewer pairs the test could never reject, so it is not reported.
WILCOXON_MIN_PAIRS = 6
# Precision figures: power of the paired t-test, the difference one "point" is, and the cap
# on the seeds-needed search (beyond it the answer is "more than this").
POWER = 0.8
POINT = 0.01
MAX_SEEDS_REPORTED = 10_000
BOOTSTRAP_RESAMPLES = 9999


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1; NaN for one value) of ``n`` values."""

    n: int
    mean: float
    sd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a - b)`` over paired values, its interval and tests.

    Attributes:
        n: number of pairs.
        mean: mean difference.
        sd: sample standard deviation of the differences (NaN for n < 2).
        ci_low, ci_high: the ``confidence`` Student-t interval of the mean (NaN for n < 2).
        t: t statistic (±inf when every difference is the same non-zero number).
        p_value: two-sided paired t-test p-value (NaN for n < 2).
        wilcoxon_p: two-sided Wilcoxon signed-rank p-value, or None when n < 6 or every
            difference is zero.
        confidence: the interval's confidence level.
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float
    wilcoxon_p: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite numbers, got {array.tolist()}")
    return array


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Mean and sample standard deviation (ddof=1) of the values."""
    array = _as_vector("values", values)
    if array.size == 0:
        raise ValueError("values: expected at least one number, got none")
    sd = float(np.std(array, ddof=1)) if array.size > 1 else math.nan
    return Summary(n=int(array.size), mean=float(np.mean(array)), sd=sd)


def paired_difference(
    values: Sequence[float] | np.ndarray,
    baseline: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
) -> PairedDifference:
    """Paired comparison of ``values`` against ``baseline`` (same order = same seed).

    The interval is ``mean ± t_{(1+confidence)/2, n-1} · sd / sqrt(n)``; the test statistic
    ``t = mean / (sd / sqrt(n))`` with ``n - 1`` degrees of freedom (the paired t-test).
    """
    from scipy import stats as scipy_stats

    a, b = _as_vector("values", values), _as_vector("baseline", baseline)
    if a.shape != b.shape:
        raise ValueError(
            f"values and baseline: expected the same number of paired values, got {a.size} and {b.size}"
        )
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    if a.size == 0:
        raise ValueError("values: expected at least one pair, got none")
    differences = a - b
    n = int(differences.size)
    mean = float(np.mean(differences))
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan, None, confidence)
    sd = float(np.std(differences, ddof=1))
    standard_error = sd / math.sqrt(n)
    quantile = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
    if standard_error == 0.0:
        # Every pair differs by the same amount: the interval collapses to that amount, and
        # the test is decisive unless the amount is zero.
        t_stat = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p_value = 1.0 if mean == 0.0 else 0.0
    else:
        t_stat = mean / standard_error
        p_value = float(2.0 * scipy_stats.t.sf(abs(t_stat), df=n - 1))
    wilcoxon_p: float | None = None
    if n >= WILCOXON_MIN_PAIRS and np.any(differences != 0.0):
        wilcoxon_p = float(scipy_stats.wilcoxon(differences, alternative="two-sided").pvalue)
    return PairedDifference(
        n=n, mean=mean, sd=sd,
        ci_low=mean - quantile * standard_error, ci_high=mean + quantile * standard_error,
        t=float(t_stat), p_value=p_value, wilcoxon_p=wilcoxon_p, confidence=confidence,
    )


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error) of p-values; NaN stays NaN."""
    values = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(values.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(values))
    order = valid[np.argsort(values[valid], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def holm_levels(p_values: Sequence[float], *, alpha: float = 0.05) -> list[float]:
    """Confidence level of the interval that agrees with Holm's step-down test, per hypothesis.

    Holm tests the hypothesis of rank ``r`` (1 = smallest p) at ``alpha / (m - r + 1)`` and
    stops at the first one it cannot reject; every later one is kept at that stopping step's
    level. With ``gamma_i = alpha / (m - min(r_i, k) + 1)``, ``k`` the stopping rank, a
    two-sided interval at level ``1 - gamma_i`` excludes 0 exactly when ``p_i < gamma_i``,
    which holds exactly when Holm rejects (``holm_adjust(p)_i < alpha``). NaN stays NaN.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    values = np.asarray(p_values, dtype=np.float64)
    levels = np.full(values.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(values))
    order = valid[np.argsort(values[valid], kind="stable")]
    m = order.size
    stopped_rank: int | None = None
    for rank, index in enumerate(order, start=1):
        if stopped_rank is None and not values[index] < alpha / (m - rank + 1):
            stopped_rank = rank
        step = rank if stopped_rank is None else stopped_rank
        levels[index] = 1.0 - alpha / (m - step + 1)
    return levels.tolist()


def t_interval(differences: Sequence[float] | np.ndarray, confidence: float) -> tuple[float, float]:
    """The Student-t interval of the mean of paired differences (NaN for fewer than 2)."""
    from scipy import stats as scipy_stats

    d = _as_vector("differences", differences)
    if d.size < 2:
        return math.nan, math.nan
    mean = float(np.mean(d))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df=d.size - 1)) * float(
        np.std(d, ddof=1)) / math.sqrt(d.size)
    return mean - half, mean + half


def _power(effect: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test at standardized effect ``effect`` with ``n`` pairs:
    the noncentral-t formula of statsmodels' ``TTestPower`` (the tests check agreement), with
    the far tail taken as 0 where scipy's ``nct.cdf`` underflows to NaN (statsmodels then
    returns NaN, e.g. at 2 pairs and large effects)."""
    from scipy import stats as scipy_stats

    df = n - 1
    critical = float(scipy_stats.t.ppf(1.0 - alpha / 2.0, df))
    noncentrality = effect * math.sqrt(n)
    upper = float(scipy_stats.nct.sf(critical, df, noncentrality))
    lower = float(scipy_stats.nct.cdf(-critical, df, noncentrality))
    return upper + (0.0 if math.isnan(lower) else lower)


def detectable_difference(sd: float, n: int, *, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided paired t-test on ``n`` pairs detects with
    ``power``, given the differences' standard deviation ``sd``.

    The effect size solving ``power(effect) = power`` (statsmodels' ``TTestPower`` formula) is
    found with scipy's ``brentq`` (statsmodels' own solver does not converge at 2 pairs). NaN for fewer than 2 pairs or an unknown sd; 0 when every pair
    differed by the same amount.
    """
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0.0:
        return 0.0
    from scipy.optimize import brentq

    effect = brentq(lambda d: _power(d, n, alpha) - power, 1e-9, 1e4, xtol=1e-12, rtol=1e-12)
    return float(effect) * sd


def seeds_needed(sd: float, difference: float = POINT, *, alpha: float = 0.05,
                 power: float = POWER) -> int | None:
    """The fewest seeds (pairs) with which a two-sided paired t-test detects ``difference``
    with ``power``, given the differences' standard deviation (``TTestPower``'s formula).

    None when ``sd`` is unknown; at least 2; :data:`MAX_SEEDS_REPORTED` + 1 means "more than
    that".
    """
    if not math.isfinite(sd) or difference <= 0:
        return None
    if sd == 0.0:
        return 2
    effect = difference / sd
    if _power(effect, MAX_SEEDS_REPORTED, alpha) < power:
        return MAX_SEEDS_REPORTED + 1
    low, high = 2, MAX_SEEDS_REPORTED  # power grows with n: bisect for the first n reaching it
    while low < high:
        middle = (low + high) // 2
        if _power(effect, middle, alpha) >= power:
            high = middle
        else:
            low = middle + 1
    return low


def bootstrap_interval(differences: Sequence[float] | np.ndarray, *, confidence: float = 0.95,
                       seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean paired difference (``scipy.stats.bootstrap``,
    resampling seeds with replacement; pairs stay together because their differences are
    resampled). NaN for fewer than 2 pairs; the common value when all differences are equal."""
    from scipy import stats as scipy_stats

    d = _as_vector("differences", differences)
    if d.size < 2:
        return math.nan, math.nan
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    result = scipy_stats.bootstrap((d,), np.mean, confidence_level=confidence,
                                   n_resamples=resamples, method="percentile",
                                   rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class Improvement:
    """Probability of improvement: the share of seeds on which a loss beats the baseline
    (ties count half), with a Wilson score interval (statsmodels ``proportion_confint``)."""

    probability: float
    low: float
    high: float
    wins: int
    ties: int
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probability_of_improvement(values: Sequence[float] | np.ndarray,
                               baseline: Sequence[float] | np.ndarray, *,
                               confidence: float = 0.95) -> Improvement:
    """P(loss > baseline) over paired seeds, ties counting half, with a Wilson interval."""
    from statsmodels.stats.proportion import proportion_confint

    a, b = _as_vector("values", values), _as_vector("baseline", baseline)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"values and baseline: expected the same positive number of paired "
                         f"values, got {a.size} and {b.size}")
    wins, ties = int(np.sum(a > b)), int(np.sum(a == b))
    score = wins + 0.5 * ties
    low, high = proportion_confint(score, a.size, alpha=1.0 - confidence, method="wilson")
    return Improvement(score / a.size, float(low), float(high), wins, ties, int(a.size))


@dataclass(frozen=True)
class Precision:
    """How precise a paired comparison is.

    Attributes:
        half_width: half-width of the paired 95 % t interval (the ``until_decided`` target).
        detectable: smallest difference detected with 80 % power at alpha 0.05 (two-sided).
        seeds_for_one_point: seeds needed to detect a 1-point difference at that power.
    """

    half_width: float
    detectable: float
    seeds_for_one_point: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LossComparison:
    """One loss of a task against the baseline: summary, paired difference, verdict.

    ``adjusted_low`` / ``adjusted_high`` is the interval the verdict reads, at level
    ``adjusted_confidence`` (:func:`holm_levels`): it excludes 0 exactly when the verdict
    claims a difference. ``bootstrap_low`` / ``bootstrap_high`` and ``improvement`` are other
    views of the same seeds (unadjusted, ``confidence`` level).
    """

    loss: str
    summary: Summary
    paired: PairedDifference | None
    p_holm: float | None
    verdict: str
    seeds: list[int] = field(default_factory=list)
    adjusted_low: float = math.nan
    adjusted_high: float = math.nan
    adjusted_confidence: float = math.nan
    precision: Precision | None = None
    bootstrap_low: float = math.nan
    bootstrap_high: float = math.nan
    improvement: Improvement | None = None
    decision: str = ""  # "better", "worse", "equivalent", "undecided", "baseline", "untested"

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "summary": self.summary.to_dict(),
            "paired": None if self.paired is None else self.paired.to_dict(),
            "p_holm": self.p_holm,
            "verdict": self.verdict,
            "decision": self.decision,
            "seeds": self.seeds,
            "adjusted_interval": {"low": self.adjusted_low, "high": self.adjusted_high,
                                  "confidence": self.adjusted_confidence},
            "precision": None if self.precision is None else self.precision.to_dict(),
            "bootstrap_interval": {"low": self.bootstrap_low, "high": self.bootstrap_high,
                                   "method": "percentile", "library": "scipy.stats.bootstrap"},
            "improvement": None if self.improvement is None else self.improvement.to_dict(),
        }


def _points(value: float) -> str:
    return f"{100.0 * value:+.2f}"


def decide(low: float, high: float, *, margin: float = POINT,
           higher_is_better: bool = True) -> str:
    """The decision an interval of ``loss − baseline`` supports: ``"better"`` (above 0, or
    below 0 for a metric where lower is better), ``"worse"``, ``"equivalent"`` (contains 0 and
    lies inside ±``margin``) or ``"undecided"``."""
    if math.isnan(low) or math.isnan(high):
        return "undecided"
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    if -margin < low and high < margin:
        return "equivalent"
    return "undecided"


def verdict(loss: str, baseline: str, paired: PairedDifference | None, p_adjusted: float | None,
            *, alpha: float = 0.05, low: float | None = None, high: float | None = None,
            confidence: float | None = None, margin: float = POINT,
            metric: str = "test accuracy") -> str:
    """A one-line reading of the paired comparison (differences in accuracy points).

    ``low``, ``high`` and ``confidence`` give the interval the verdict is read from (the
    Holm-matched one of :func:`compare_losses`); without them, the test's own interval.
    """
    if paired is None:
        return f"no seeds shared with {baseline}: no paired comparison"
    if paired.n < 2:
        return f"one shared seed ({_points(paired.mean)} points): too few runs to test"
    if low is None or high is None or confidence is None:
        low, high, confidence = paired.ci_low, paired.ci_high, paired.confidence
    adjusted = "Holm-adjusted " if p_adjusted is not None else ""
    interval = (f"{_points(paired.mean)} points, {adjusted}{100 * confidence:.3g}% CI "
                f"[{_points(low)}, {_points(high)}], n={paired.n}")
    p = paired.p_value if p_adjusted is None else p_adjusted
    decision = decide(low, high, margin=margin)
    if decision in ("better", "worse"):
        direction = "higher" if low > 0 else "lower"
        return f"{loss} gives {direction} {metric} than {baseline} ({interval}, p={p:.3g})"
    if decision == "equivalent":
        return (f"no detectable difference from {baseline}; the interval rules out differences "
                f"beyond ±{100 * margin:g} point(s) ({interval}, p={p:.3g})")
    return f"no detectable difference from {baseline} ({interval}, p={p:.3g})"


def compare_losses(
    accuracy: Mapping[str, Mapping[int, float]],
    *,
    baseline: str = "cross_entropy",
    confidence: float = 0.95,
    alpha: float = 0.05,
    margin: float = POINT,
    metric: str = "test accuracy",
    higher_is_better: bool = True,
) -> list[LossComparison]:
    """Compare every loss of one task against ``baseline``, pairing runs by seed.

    Args:
        accuracy: ``{loss: {seed: final score}}`` (test accuracy, or the metric compared).
        baseline: the loss the others are compared with.
        confidence: level of the unadjusted difference interval (and of the precision
            target's half-width, the bootstrap and the probability-of-improvement intervals).
        alpha: significance level of the verdicts (Holm-adjusted over the non-baseline
            losses of the task; the verdict's interval is at the matching level).
        margin: a difference smaller than this is practically nil: an interval inside
            ±margin reads "equivalent".
        metric: the name of the score in the verdicts.
        higher_is_better: False for a score where lower is better (NLL, ECE, Brier): an
            interval below 0 then reads "better".

    Returns:
        One :class:`LossComparison` per loss, baseline first, the rest in the given order.
    """
    if not accuracy:
        raise ValueError("accuracy: expected results for at least one loss, got none")
    losses = list(accuracy)
    if baseline in losses:
        losses = [baseline] + [loss for loss in losses if loss != baseline]
    pairs: dict[str, tuple[PairedDifference | None, list[int], np.ndarray]] = {}
    for loss in losses:
        if loss == baseline or baseline not in accuracy:
            continue
        seeds = sorted(set(accuracy[loss]) & set(accuracy[baseline]))
        if not seeds:
            pairs[loss] = (None, [], np.zeros(0))
            continue
        a = np.asarray([accuracy[loss][s] for s in seeds], dtype=np.float64)
        b = np.asarray([accuracy[baseline][s] for s in seeds], dtype=np.float64)
        paired = paired_difference(a, b, confidence=confidence)
        pairs[loss] = (paired, seeds, np.stack([a, b]))
    testable = [loss for loss, (paired, _, _) in pairs.items() if paired is not None and paired.n >= 2]
    p_values = [pairs[loss][0].p_value for loss in testable]
    adjusted = dict(zip(testable, holm_adjust(p_values)))
    levels = dict(zip(testable, holm_levels(p_values, alpha=alpha)))
    result = []
    for loss in losses:
        summary = summarize(list(accuracy[loss].values()))
        if loss == baseline:
            result.append(LossComparison(loss, summary, None, None, "baseline",
                                         sorted(accuracy[loss]), decision="baseline"))
            continue
        if baseline not in accuracy:
            result.append(LossComparison(loss, summary, None, None,
                                         f"no {baseline} runs: no paired comparison",
                                         sorted(accuracy[loss]), decision="untested"))
            continue
        paired, seeds, values = pairs[loss]
        p_holm = adjusted.get(loss)
        if paired is None or paired.n < 2:
            result.append(LossComparison(loss, summary, paired, p_holm,
                                         verdict(loss, baseline, paired, p_holm, alpha=alpha),
                                         seeds, decision="untested"))
            continue
        level = levels[loss]
        differences = values[0] - values[1]
        low, high = t_interval(differences, level)
        if paired.sd == 0.0:  # a collapsed interval: the common difference itself
            low = high = paired.mean
        boot_low, boot_high = bootstrap_interval(differences, confidence=confidence)
        precision = Precision(
            half_width=(paired.ci_high - paired.ci_low) / 2.0,
            detectable=detectable_difference(paired.sd, paired.n, alpha=alpha),
            seeds_for_one_point=seeds_needed(paired.sd, POINT, alpha=alpha),
        )
        result.append(LossComparison(
            loss, summary, paired, p_holm,
            verdict(loss, baseline, paired, p_holm, alpha=alpha, low=low, high=high,
                    confidence=level, margin=margin, metric=metric),
            seeds, adjusted_low=low, adjusted_high=high, adjusted_confidence=level,
            precision=precision, bootstrap_low=boot_low, bootstrap_high=boot_high,
            improvement=probability_of_improvement(values[0], values[1], confidence=confidence),
            decision=decide(low, high, margin=margin, higher_is_better=higher_is_better),
        ))
    return result
