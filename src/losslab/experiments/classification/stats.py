"""Statistics of a loss comparison: mean ± sd per loss, and paired differences against a baseline.

Every loss of a task is trained with the same seeds (same initial weights, same data order),
so the fair comparison is *paired*: the per-seed difference ``acc(loss) - acc(baseline)``.
For each loss this module gives the mean difference with a Student-t confidence interval, a
paired t-test, a Wilcoxon signed-rank test when there are enough seeds for it to reach
p < 0.05, Holm's adjustment over the losses of one task, and a one-line verdict.
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


@dataclass
class LossComparison:
    """One loss of a task against the baseline: summary, paired difference, verdict."""

    loss: str
    summary: Summary
    paired: PairedDifference | None
    p_holm: float | None
    verdict: str
    seeds: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "summary": self.summary.to_dict(),
            "paired": None if self.paired is None else self.paired.to_dict(),
            "p_holm": self.p_holm,
            "verdict": self.verdict,
            "seeds": self.seeds,
        }


def _points(value: float) -> str:
    return f"{100.0 * value:+.2f}"


def verdict(loss: str, baseline: str, paired: PairedDifference | None, p_adjusted: float | None,
            *, alpha: float = 0.05) -> str:
    """A one-line reading of the paired comparison (differences in accuracy points)."""
    if paired is None:
        return f"no seeds shared with {baseline}: no paired comparison"
    if paired.n < 2:
        return f"one shared seed ({_points(paired.mean)} points): too few runs to test"
    interval = (
        f"{_points(paired.mean)} points, {100 * paired.confidence:.0f}% CI "
        f"[{_points(paired.ci_low)}, {_points(paired.ci_high)}], n={paired.n}"
    )
    p = paired.p_value if p_adjusted is None else p_adjusted
    if p < alpha:
        direction = "higher" if paired.mean > 0 else "lower"
        return f"{loss} gives {direction} test accuracy than {baseline} ({interval}, p={p:.3g})"
    return f"no detectable difference from {baseline} ({interval}, p={p:.3g})"


def compare_losses(
    accuracy: Mapping[str, Mapping[int, float]],
    *,
    baseline: str = "cross_entropy",
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> list[LossComparison]:
    """Compare every loss of one task against ``baseline``, pairing runs by seed.

    Args:
        accuracy: ``{loss: {seed: final test accuracy}}``.
        baseline: the loss the others are compared with.
        confidence: level of the difference's interval.
        alpha: significance level of the verdicts (applied to Holm-adjusted p-values over
            the non-baseline losses of the task).

    Returns:
        One :class:`LossComparison` per loss, baseline first, the rest in the given order.
    """
    if not accuracy:
        raise ValueError("accuracy: expected results for at least one loss, got none")
    losses = list(accuracy)
    if baseline in losses:
        losses = [baseline] + [loss for loss in losses if loss != baseline]
    pairs: dict[str, tuple[PairedDifference | None, list[int]]] = {}
    for loss in losses:
        if loss == baseline or baseline not in accuracy:
            continue
        seeds = sorted(set(accuracy[loss]) & set(accuracy[baseline]))
        if not seeds:
            pairs[loss] = (None, [])
            continue
        paired = paired_difference(
            [accuracy[loss][s] for s in seeds], [accuracy[baseline][s] for s in seeds],
            confidence=confidence,
        )
        pairs[loss] = (paired, seeds)
    testable = [loss for loss, (paired, _) in pairs.items() if paired is not None and paired.n >= 2]
    adjusted = dict(zip(testable, holm_adjust([pairs[loss][0].p_value for loss in testable])))
    result = []
    for loss in losses:
        summary = summarize(list(accuracy[loss].values()))
        if loss == baseline:
            result.append(LossComparison(loss, summary, None, None, "baseline",
                                         sorted(accuracy[loss])))
            continue
        if baseline not in accuracy:
            result.append(LossComparison(loss, summary, None, None,
                                         f"no {baseline} runs: no paired comparison",
                                         sorted(accuracy[loss])))
            continue
        paired, seeds = pairs[loss]
        p_holm = adjusted.get(loss)
        result.append(LossComparison(loss, summary, paired, p_holm,
                                     verdict(loss, baseline, paired, p_holm, alpha=alpha), seeds))
    return result
