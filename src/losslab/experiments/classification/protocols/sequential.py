"""Seeds until the answer is precise: add seeds in rounds until every paired interval is narrow.

``until_decided`` runs a comparison with a first set of seeds, then adds seeds in rounds
until every loss's paired 95 % interval against the baseline has a half-width of at most
``target_width`` (default: 1 accuracy point), or ``max_seeds`` is reached.

The rule stops on **precision, never on significance**: it reads only the spread of the
paired differences (their standard deviation), never their mean or a p-value, so the
intervals and tests computed afterwards keep their nominal coverage (a rule that stopped
once a difference looked significant would inflate false positives). The size of the next
round is the number of seeds that the observed spread predicts for the target
(``t_{0.975, n-1} · sd / sqrt(n) <= target``), capped at twice the current count so that a
noisy early estimate of the spread is refreshed before many seeds are spent.

Every decision is a pure function of the finished runs of the seeds of its round, so a rerun
after a crash replays the same rounds from the database (finished runs are skipped,
interrupted ones resume from their last epoch) and never trains a seed twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DEFAULT_TARGET_WIDTH = 0.01
DEFAULT_MAX_SEEDS = 20
CONFIDENCE = 0.95
RULE = ("seeds added in rounds until every loss's paired 95% interval half-width against the "
        "baseline is at most the target, or the seed limit is reached; the rule reads only the "
        "spread of the paired differences, never their mean or a p-value")


@dataclass(frozen=True)
class PrecisionTarget:
    """When ``until_decided`` stops.

    Attributes:
        target_width: the largest acceptable half-width of each loss's paired 95 % interval,
            in accuracy units (0.01 = 1 point).
        max_seeds: the most seeds any loss is trained with.
        baseline: the loss the others are paired with.
        metric: the score whose paired intervals must be narrow (see :mod:`.metrics`).
    """

    target_width: float = DEFAULT_TARGET_WIDTH
    max_seeds: int = DEFAULT_MAX_SEEDS
    baseline: str = "cross_entropy"
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        width = self.target_width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not (
                math.isfinite(width) and width > 0):
            raise ValueError(f"target_width: expected a positive number (accuracy units, 0.01 = 1 "
                             f"point), got {width!r}")
        if isinstance(self.max_seeds, bool) or not isinstance(self.max_seeds, int) or self.max_seeds < 2:
            raise ValueError(f"max_seeds: expected an integer of at least 2, got {self.max_seeds!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": CONFIDENCE, "rule": RULE}


@dataclass(frozen=True)
class Round:
    """One round: the seeds it covered and each loss's half-width after it."""

    seeds: tuple[int, ...]
    half_widths: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"seeds": list(self.seeds), "half_widths": dict(self.half_widths)}


@dataclass
class SequentialOutcome:
    """How a comparison's seed count was settled.

    ``stopped`` is ``"target"`` (every half-width at most the target), ``"max_seeds"`` or
    ``"incomplete"`` (some runs of the last round did not finish: rerun to continue).
    """

    target: PrecisionTarget
    rounds: list[Round] = field(default_factory=list)
    stopped: str = "incomplete"

    @property
    def seeds(self) -> list[int]:
        return list(self.rounds[-1].seeds) if self.rounds else []

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target.to_dict(), "rounds": [r.to_dict() for r in self.rounds],
                "stopped": self.stopped, "seeds": self.seeds}

    def describe(self) -> str:
        """One sentence for logs and reports."""
        if not self.rounds:
            return "no round has run"
        last = self.rounds[-1]
        widest = max(last.half_widths.values(), default=math.nan)
        rounds = " → ".join(str(len(r.seeds)) for r in self.rounds)
        reason = {"target": f"every half-width ≤ {100 * self.target.target_width:g} point(s)",
                  "max_seeds": f"seed limit {self.target.max_seeds} reached",
                  "incomplete": "runs of the last round not finished (rerun to continue)"}[self.stopped]
        return (f"seeds per round {rounds}; stopped: {reason}; widest 95% half-width "
                f"{100 * widest:.2f} points")


def half_widths(accuracy: Mapping[str, Mapping[int, float]], seeds: Sequence[int],
                baseline: str) -> dict[str, float]:
    """Each loss's paired 95 % t half-width against ``baseline`` over ``seeds`` (those of the
    seeds both finished); NaN with fewer than 2 pairs."""
    from scipy import stats as scipy_stats

    wanted = set(seeds)
    result = {}
    base = accuracy.get(baseline, {})
    for loss, scores in accuracy.items():
        if loss == baseline:
            continue
        shared = sorted(wanted & set(scores) & set(base))
        if len(shared) < 2:
            result[loss] = math.nan
            continue
        d = np.asarray([scores[s] - base[s] for s in shared], dtype=np.float64)
        quantile = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2.0, df=d.size - 1))
        result[loss] = quantile * float(np.std(d, ddof=1)) / math.sqrt(d.size)
    return result


def seeds_for_width(sd: float, target_width: float, *, limit: int) -> int:
    """The fewest seeds n (2..limit) with ``t_{0.975, n-1} · sd / sqrt(n) <= target_width``;
    ``limit`` when even that many are not enough."""
    from scipy import stats as scipy_stats

    if not math.isfinite(sd):
        return limit
    for n in range(2, limit + 1):
        if float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2.0, df=n - 1)) * sd / math.sqrt(n) <= target_width:
            return n
    return limit


def next_seed_count(accuracy: Mapping[str, Mapping[int, float]], seeds: Sequence[int],
                    target: PrecisionTarget) -> int:
    """How many seeds the next round covers: the count the widest loss's observed spread
    predicts for the target, at least one more than now, at most twice as many, at most
    ``max_seeds``."""
    n = len(seeds)
    widths = half_widths(accuracy, seeds, target.baseline)
    from scipy import stats as scipy_stats

    needed = n + 1
    for width in widths.values():
        if math.isnan(width):
            continue
        sd = width * math.sqrt(n) / float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2.0, df=n - 1))
        needed = max(needed, seeds_for_width(sd, target.target_width, limit=target.max_seeds))
    return min(target.max_seeds, max(n + 1, min(needed, 2 * n)))


def extend_seeds(seeds: Sequence[int], count: int) -> list[int]:
    """``seeds`` followed by the next unused integers after the largest, up to ``count``."""
    result = list(seeds)
    candidate = max(result, default=-1) + 1
    while len(result) < count:
        if candidate not in result:
            result.append(candidate)
        candidate += 1
    return result


def run_until_decided(
    run_seeds: Callable[[list[int]], Mapping[str, Mapping[int, float]]],
    initial_seeds: Sequence[int],
    target: PrecisionTarget,
    *,
    log: Callable[[str], None] = print,
    label: str = "",
) -> SequentialOutcome:
    """Run rounds of seeds until every half-width is at most the target or the limit is hit.

    Args:
        run_seeds: trains every (loss, seed) of the given seeds that is not finished yet and
            returns ``{loss: {seed: final score}}`` of the finished runs.
        initial_seeds: the first round (at least 2 seeds, unless ``max_seeds`` is smaller).
        target: when to stop.
        log: one line per round.
        label: the task's name in the log lines.

    Returns:
        The rounds and why they stopped.
    """
    seeds = list(initial_seeds)
    if len(seeds) < 2:
        seeds = extend_seeds(seeds, 2)
    if len(seeds) > target.max_seeds:
        raise ValueError(f"seeds: the first round has {len(seeds)} seeds, more than max_seeds="
                         f"{target.max_seeds}")
    outcome = SequentialOutcome(target)
    prefix = f"[until-decided] {label}: " if label else "[until-decided] "
    while True:
        accuracy = run_seeds(list(seeds))
        widths = half_widths(accuracy, seeds, target.baseline)
        outcome.rounds.append(Round(tuple(seeds), widths))
        complete = all(set(seeds) <= set(scores) for scores in accuracy.values()) and bool(widths)
        shown = ", ".join(f"{loss} {100 * w:.2f}" for loss, w in widths.items())
        log(f"{prefix}{len(seeds)} seeds: 95% half-widths (points) {shown}")
        if not complete or any(math.isnan(w) for w in widths.values()):
            outcome.stopped = "incomplete"
            return outcome
        if all(w <= target.target_width for w in widths.values()):
            outcome.stopped = "target"
            return outcome
        if len(seeds) >= target.max_seeds:
            outcome.stopped = "max_seeds"
            return outcome
        seeds = extend_seeds(seeds, next_seed_count(accuracy, seeds, target))
