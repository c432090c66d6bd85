"""Choosing a learning rate from a sweep over several seeds, so that noise does not decide.

Every rate of the grid is trained on the same sweep seeds and scored on the same validation
split. One seed's score moves by a few validation samples from one seed to the next, and a
rate close to the edge of stability can win on one seed and collapse on another. The rule
(:func:`choose_learning_rate`, a pure function of the scores):

1. **Unstable rates are dropped.** A rate is never chosen when any sweep seed diverged (its
   loss became non-finite) or when any seed's validation accuracy lies far below the median
   of that rate's seeds: by more than :data:`FAR_BELOW_MEDIAN` (5 accuracy points) or, on a
   small validation split, by more than :data:`BINOMIAL_MULTIPLE` (3) binomial standard
   errors of one score at the median accuracy, ``3 · sqrt(m (1 − m) / n)``, whichever is
   larger. The median is robust to the collapsed seed itself; 5 points is beyond the
   seed-to-seed spread of a stable rate (about 1 point) and the counting noise of a few
   hundred validation samples (1.5 points at 90% on 300), yet far below the collapses seen
   near the edge of stability (10–25 points); the binomial term keeps a 60-sample split
   (5 points of counting noise per score) from dropping rates for noise alone. With one
   sweep seed only divergence can be detected.
2. **Within noise, prefer stability.** Among the remaining rates, those whose mean validation
   accuracy is within one standard error of the best mean (the best rate's ``sd / sqrt(n)``,
   the "one-standard-error rule") are equally good; of those, the one with the smallest
   spread (sd over seeds) is chosen, ties to the smaller rate. Spreads within a factor of
   :data:`SPREAD_TIE_RATIO` (2) of the smallest count as tied: over three seeds an sd is
   itself uncertain by about that factor (two equally spread rates give an sd ratio above 2
   one time in five, F(2, 2) > 4), and a larger rate that looks as steady on a few sweep
   seeds sits closer to the edge of stability, where other seeds can still collapse (L at
   0.0316 on the digits: steady on three sweep seeds, 0.74–0.88 on some test seeds). With
   one sweep seed this is the rate with the best score, ties to the smaller rate (the rule
   before several seeds).
3. If every rate is dropped, the rate with the best median among those that never diverged
   is chosen (ties to the smaller rate), and the choice says so.

Why no search library: the grid is small (5–9 rates), fully enumerated on every seed, and the
rule needs every rate's full-budget score on every seed (its spread is part of the rule).
Optuna's ``GridSampler`` would enumerate the same grid again with a second store beside the
results database, and its pruners (median, successive halving) stop rates on partial curves
from single trials, which is what the rule must not do; Ray Tune's schedulers are the same
idea on a cluster. Pruning stays available as the sweep's ``"successive-halving"`` scheduler (see
:mod:`.tuning`), and a closed-form rule over the recorded scores keeps the choice exactly
reproducible from the database.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# A seed this far (accuracy units) below its rate's median marks the rate as unstable.
FAR_BELOW_MEDIAN = 0.05
# ... or this many binomial standard errors of one score, when that is larger (small splits).
BINOMIAL_MULTIPLE = 3.0
# A spread counts as smaller only when it is under 1 / SPREAD_TIE_RATIO of the other's.
SPREAD_TIE_RATIO = 2.0
# Spreads are compared after rounding: sums of the same scores in another order differ in the
# last bits, which must not break a tie.
_SPREAD_DIGITS = 10
RULE_NAME = "stable within one standard error"
RULE = ("the mean validation accuracy over the sweep seeds; a rate where a seed diverged or fell "
        f"more than {100 * FAR_BELOW_MEDIAN:g} points (or {BINOMIAL_MULTIPLE:g} binomial standard "
        "errors of one score, if larger) below the rate's median is never chosen; "
        "among the rates within one standard error of the best mean, the smallest spread "
        f"(sd over seeds; spreads within a factor {SPREAD_TIE_RATIO:g} of the smallest tie) wins, "
        "ties to the smaller rate")


def rule_record() -> dict[str, Any]:
    """The rule's record, part of the tuned protocol (so choices by other rules never mix)."""
    return {"name": RULE_NAME, "rule": RULE, "far_below_median": FAR_BELOW_MEDIAN,
            "binomial_multiple": BINOMIAL_MULTIPLE,
            "spread_tie_ratio": SPREAD_TIE_RATIO}


@dataclass(frozen=True)
class RateRecord:
    """One rate of the sweep: every seed's validation accuracy and what the rule read.

    ``scores[i]`` belongs to ``seeds[i]``; None marks a seed whose run diverged.
    """

    lr: float
    seeds: tuple[int, ...]
    scores: tuple[float | None, ...]
    mean: float
    sd: float
    se: float
    median: float
    excluded: str | None = None

    @property
    def n(self) -> int:
        return len(self.scores)

    def to_dict(self) -> dict[str, Any]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {"lr": self.lr, "mean": number(self.mean), "sd": number(self.sd),
                "se": number(self.se), "median": number(self.median),
                "scores": {str(seed): score for seed, score in zip(self.seeds, self.scores)},
                "excluded": self.excluded}


@dataclass(frozen=True)
class RateChoice:
    """What :func:`choose_learning_rate` chose and why."""

    lr: float
    rates: dict[float, RateRecord]
    best_mean: float
    within: float  # the standard error that bounds "within noise" of the best mean
    candidates: tuple[float, ...]  # rates within one standard error of the best mean
    fallback: str | None = None
    far_below: float = FAR_BELOW_MEDIAN
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "rule": RULE,
                "best_mean": None if math.isnan(self.best_mean) else self.best_mean,
                "within_one_se": self.within, "candidates": list(self.candidates),
                "fallback": self.fallback,
                "rates": {repr(lr): record.to_dict() for lr, record in self.rates.items()}}


def rate_record(lr: float, scores: Sequence[float | None], seeds: Sequence[int] | None = None,
                *, far_below: float = FAR_BELOW_MEDIAN, validation_size: int | None = None
                ) -> RateRecord:
    """Mean, spread (sd, ``n - 1``), standard error and median of one rate's seed scores
    (diverged seeds left out of them), and why the rate is dropped (None: it is not).

    ``validation_size`` (samples per score) widens ``far_below`` to
    :data:`BINOMIAL_MULTIPLE` binomial standard errors at the median where that is larger.
    """
    values = list(scores)
    seeds = list(range(len(values))) if seeds is None else [int(seed) for seed in seeds]
    if len(seeds) != len(values):
        raise ValueError(f"seeds: expected one seed per score ({len(values)}), got {len(seeds)}")
    if not values:
        raise ValueError(f"scores: expected at least one seed's score at lr {lr:g}, got none")
    clean: list[float | None] = []
    for seed, value in zip(seeds, values):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0.0 <= value <= 1.0):
            raise ValueError(f"scores: expected accuracies in [0, 1] or None (diverged), got "
                             f"{value!r} at lr {lr:g}, seed {seed}")
        clean.append(None if value is None else float(value))
    finite = sorted(value for value in clean if value is not None)
    mean = math.fsum(finite) / len(finite) if finite else math.nan
    sd = statistics.stdev(finite) if len(finite) >= 2 else math.nan
    se = sd / math.sqrt(len(finite)) if len(finite) >= 2 else math.nan
    median = statistics.median(finite) if finite else math.nan
    excluded = None
    diverged = [seed for seed, value in zip(seeds, clean) if value is None]
    if diverged:
        excluded = "diverged on seed " + ", ".join(str(seed) for seed in diverged)
    else:
        margin = far_below
        if validation_size:
            margin = max(margin, BINOMIAL_MULTIPLE * math.sqrt(median * (1 - median) / validation_size))
        low = [(seed, value) for seed, value in zip(seeds, clean)
               if value is not None and value < median - margin]
        if low:
            excluded = "; ".join(f"seed {seed} at {value:.4f}, {100 * (median - value):.1f} points "
                                 f"below the median {median:.4f}" for seed, value in low)
    return RateRecord(float(lr), tuple(seeds), tuple(clean), mean, sd, se, median, excluded)


def choose_learning_rate(scores: Mapping[float, Sequence[float | None]], *,
                         seeds: Sequence[int] | None = None,
                         far_below: float = FAR_BELOW_MEDIAN,
                         spread_tie_ratio: float = SPREAD_TIE_RATIO,
                         validation_size: int | None = None) -> RateChoice:
    """The learning rate to test at, by the rule of this module's docstring.

    Args:
        scores: per rate, every sweep seed's validation accuracy in [0, 1], in the order of
            ``seeds``; None for a seed whose run diverged. Every rate must be scored on the
            same seeds and the same validation samples.
        seeds: the sweep seeds (default: 0, 1, ...), recorded with the scores.
        far_below: a seed this many accuracy units below its rate's median drops the rate.
        spread_tie_ratio: spreads within this factor of the smallest candidate's count as tied.
        validation_size: validation samples behind each score (None: unknown); on a small
            split it widens ``far_below`` (see :func:`rate_record`).

    Returns:
        A :class:`RateChoice` with the chosen rate and every rate's :class:`RateRecord`.
    """
    if not scores:
        raise ValueError("scores: expected at least one scored learning rate, got none")
    if not (isinstance(far_below, (int, float)) and not isinstance(far_below, bool)
            and math.isfinite(far_below) and far_below > 0):
        raise ValueError(f"far_below: expected a positive accuracy difference, got {far_below!r}")
    if not (isinstance(spread_tie_ratio, (int, float)) and not isinstance(spread_tie_ratio, bool)
            and math.isfinite(spread_tie_ratio) and spread_tie_ratio >= 1):
        raise ValueError(f"spread_tie_ratio: expected a number >= 1, got {spread_tie_ratio!r}")
    if validation_size is not None and (isinstance(validation_size, bool)
                                        or not isinstance(validation_size, int) or validation_size < 1):
        raise ValueError(f"validation_size: expected a positive number of samples, got {validation_size!r}")
    lengths = {len(values) for values in scores.values()}
    if len(lengths) != 1:
        raise ValueError(f"scores: expected the same number of seeds at every rate, got "
                         f"{ {lr: len(v) for lr, v in scores.items()} }")
    records = {float(lr): rate_record(lr, values, seeds, far_below=far_below,
                                      validation_size=validation_size)
               for lr, values in sorted(scores.items())}
    eligible = [record for record in records.values() if record.excluded is None]
    if not eligible:
        finite = [record for record in records.values() if not any(v is None for v in record.scores)]
        if finite:
            lr = min(finite, key=lambda record: (-record.median, record.lr)).lr
            reason = ("every rate had an unstable seed: the best median among the rates that "
                      "never diverged")
        else:
            lr = min(records)
            reason = "every rate diverged on some seed: the smallest rate"
        return RateChoice(lr, records, math.nan, math.nan, (), reason, far_below)
    best = min(eligible, key=lambda record: (-record.mean, record.lr))
    within = 0.0 if math.isnan(best.se) else best.se
    candidates = [record for record in eligible if record.mean >= best.mean - within]

    def spread(record: RateRecord) -> float:
        return 0.0 if math.isnan(record.sd) else round(record.sd, _SPREAD_DIGITS)

    steadiest = min(spread(record) for record in candidates)
    tied = [record for record in candidates if spread(record) <= spread_tie_ratio * steadiest]
    chosen = min(tied, key=lambda record: record.lr)
    return RateChoice(chosen.lr, records, best.mean, within,
                      tuple(record.lr for record in candidates), None, far_below)


def select_learning_rate(scores: Mapping[float, tuple[int, int] | int]) -> float:
    """The rate with the most correct predictions; ties go to the smaller rate.

    ``scores`` maps a rate to ``correct`` or ``(correct, total)`` (every rate must be scored
    on the same validation samples, so counts compare exactly).
    """
    if not scores:
        raise ValueError("scores: expected at least one scored learning rate, got none")
    counts = {float(lr): int(v[0] if isinstance(v, tuple) else v) for lr, v in scores.items()}
    # Sorting by (-correct, lr) puts the most correct first and, among equals, the smallest rate.
    return min(counts, key=lambda lr: (-counts[lr], lr))


def choose_from_sweep(per_seed: Mapping[float, Sequence[tuple[int, int, int, bool]]],
                      protocol: Mapping[str, Any]) -> RateChoice:
    """The protocol's rule over per-seed ``(seed, correct, total, diverged)`` sweep scores.

    A protocol recorded before several sweep seeds were the rule (no ``"selection"`` entry)
    keeps its own rule: the most correct predictions summed over the seeds, ties to the
    smaller rate, a diverged run counting zero.
    """
    rule = protocol.get("selection")
    if rule is None:
        summed = {lr: sum(c for _, c, _, _ in seeds) for lr, seeds in per_seed.items()}
        lr = select_learning_rate(summed)
        return RateChoice(lr, {}, math.nan, math.nan, (lr,), None)
    seeds = [seed for seed, *_ in next(iter(per_seed.values()))]
    accuracies = {lr: [None if diverged else correct / total
                       for _, correct, total, diverged in values]
                  for lr, values in per_seed.items()}
    sizes = {total for values in per_seed.values() for _, _, total, _ in values}
    return choose_learning_rate(accuracies, seeds=seeds, far_below=float(rule["far_below_median"]),
                                spread_tie_ratio=float(rule["spread_tie_ratio"]),
                                validation_size=min(sizes))
