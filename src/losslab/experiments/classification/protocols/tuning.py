"""The ``tuned`` protocol: each loss gets its own learning rate, chosen on a validation split.

A loss that scales its gradients (M multiplies them by about ``1/p``, L damps them) also
changes the effective step size, so comparing losses at one shared learning rate mixes "a
better objective" with "a better step size". The tuned protocol separates the two:

1. **Sweep** (stage ``"sweep"``): for every (task, loss), train at each rate of a log grid
   (default: 5 rates over 2 decades centred on the task's rate) for a short budget, on the
   training split minus a stratified, seeded validation part, and score on that validation
   part. The test split is never loaded for it (see :mod:`.splits` for the recorded ids).
2. **Selection**: every rate is swept on several seeds (default 3) and chosen by the mean
   validation accuracy with a rule that prefers stability when rates are within noise and
   never picks a rate where a seed diverged or collapsed (see :mod:`.selection`, which also
   says why no search library is used). Counts are exact integers
   (``round(accuracy × validation size)`` of the recorded accuracy). The choice is a pure
   function of the sweep rows in the database.
3. **Test** (stage ``"test"``): every loss at its chosen rate, over the comparison's seeds,
   trained on the full training split and scored on the test split. The run config records
   the protocol (grid, validation split, sweep budget) and, unhashed, the scores behind the
   choice.

Both stages are ordinary grid runs: crash-safe, resumable, and skipped when finished.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from losslab.experiments.classification.execution.runner import (
    GridResult,
    PlannedTask,
    check_losses,
    check_seeds,
    run_grid,
)
from losslab.experiments.classification.planning.splits import ValidationSplit
from losslab.experiments.classification.protocols.selection import (  # noqa: F401 - select_learning_rate re-exported
    RULE,
    RateChoice,
    choose_from_sweep,
    rule_record,
    select_learning_rate,
)
from losslab.experiments.classification.storage import ResultsStore, RunKey, RunStore, config_hash

DEFAULT_LR_DECADES = 2.0
DEFAULT_LR_POINTS = 5
DEFAULT_VAL_FRACTION = 0.2
# A rate chosen at an edge of the grid may be beaten by one beyond it: the grid grows by a
# decade on that side, at most this many decades per side, before the choice is final.
DEFAULT_LR_EXTEND_DECADES = 2
SCHEDULERS: tuple[str, ...] = ("none", "successive-halving")
# "asha" is the name this scheduler had first: still accepted, and still the name written into
# the protocol record, so tuned runs recorded before the rename keep their config hash.
SCHEDULER_ALIASES: dict[str, str] = {"asha": "successive-halving"}
_RECORDED_NAME = {"successive-halving": "asha"}
DEFAULT_HALVING_ETA = 3
DEFAULT_SWEEP_SEEDS = 3
CRITERION = "after the sweep's last epoch, " + RULE
# With one sweep seed the stable-mean rule is the earlier rule (the single best count, ties to
# the smaller rate), so such a protocol is recorded as before: databases tuned on one sweep seed
# keep their config hashes and resume without training.
SINGLE_SEED_CRITERION = ("most correct validation predictions after the sweep's last epoch, "
                         "summed over the sweep seeds (exact integer counts); ties go to the "
                         "smaller learning rate; a diverged run counts as zero correct")


def log_grid(centre: float, *, decades: float = DEFAULT_LR_DECADES,
             points: int = DEFAULT_LR_POINTS) -> tuple[float, ...]:
    """``points`` rates evenly spaced in log10 over ``decades`` decades, centred on ``centre``.

    Values are rounded to 4 significant digits so they print and hash the same everywhere;
    e.g. ``log_grid(1e-3)`` is ``(1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2)``.
    """
    if not (isinstance(centre, (int, float)) and not isinstance(centre, bool)
            and math.isfinite(centre) and centre > 0):
        raise ValueError(f"lr: expected a positive learning rate to centre the grid on, got {centre!r}")
    if not (isinstance(decades, (int, float)) and not isinstance(decades, bool)
            and math.isfinite(decades) and decades > 0):
        raise ValueError(f"lr_decades: expected a positive number of decades, got {decades!r}")
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise ValueError(f"lr_points: expected a positive integer, got {points!r}")
    if points == 1:
        return (float(f"{centre:.4g}"),)
    exponents = [-decades / 2 + decades * i / (points - 1) for i in range(points)]
    return check_lr_grid([float(f"{centre * 10 ** e:.4g}") for e in exponents])


def check_lr_grid(grid: Sequence[float]) -> tuple[float, ...]:
    """A non-empty grid of distinct positive finite rates, sorted ascending."""
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise TypeError(f"lr_grid: expected a sequence of learning rates, got {type(grid).__name__}")
    values = list(grid)
    if not values:
        raise ValueError("lr_grid: expected at least one learning rate, got an empty grid")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
           or not math.isfinite(v) or v <= 0]
    if bad:
        raise ValueError(f"lr_grid: expected positive finite learning rates, got {values!r} "
                         f"(bad: {bad!r})")
    rates = sorted(float(v) for v in values)
    if len(set(rates)) != len(rates):
        raise ValueError(f"lr_grid: expected distinct learning rates, got {values!r}")
    return tuple(rates)


@dataclass(frozen=True)
class TuningSettings:
    """How the tuned protocol sweeps and selects.

    Attributes:
        lr_grid: explicit learning rates; None for :func:`log_grid` around each task's rate.
        lr_decades, lr_points: the default grid's span and size.
        val_fraction: share of the training split held out for validation, in (0, 1).
        split_seed: seed of the stratified validation split.
        sweep_epochs: epochs of a sweep run; None for half the task's epochs (rounded up).
            A short budget favours rates that learn fast early; pass the task's epochs to
            remove that bias at a higher cost.
        sweep_seeds: a number n (seeds 0..n-1) or explicit seeds of the sweep runs; every
            rate is swept on each of them (default 3; 1 still works, without the stability
            part of the rule, see :mod:`.selection`).
        lr_extend_decades: when the chosen rate sits at an edge of the grid, the grid grows a
            decade on that side (same log spacing) and the new rates are swept, up to this many
            decades per side; 0 keeps the grid as given.
        scheduler: ``"none"`` (every rate trains the whole sweep budget) or
            ``"successive-halving"`` (``"asha"``, its earlier name, is accepted): poor
            rates stop early by successive halving (the synchronous form of ASHA) on the
            grid's backend: every rate trains to the first rung, the best 1/``halving_eta``
            (by the selection criterion at that epoch) go on to the next, and so on up to
            the sweep budget (see :func:`halving_rungs`). Decisions are a pure function of
            the recorded scores, stored in the database and described in the report.
        halving_eta: the reduction factor of successive halving (an integer >= 2).
    """

    lr_grid: tuple[float, ...] | None = None
    lr_decades: float = DEFAULT_LR_DECADES
    lr_points: int = DEFAULT_LR_POINTS
    val_fraction: float = DEFAULT_VAL_FRACTION
    split_seed: int = 0
    sweep_epochs: int | None = None
    sweep_seeds: int | tuple[int, ...] = DEFAULT_SWEEP_SEEDS
    lr_extend_decades: int = DEFAULT_LR_EXTEND_DECADES
    scheduler: str = "none"
    halving_eta: int = DEFAULT_HALVING_ETA
    _seeds: tuple[int, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if self.lr_grid is not None:
            object.__setattr__(self, "lr_grid", check_lr_grid(self.lr_grid))
        else:
            log_grid(1.0, decades=self.lr_decades, points=self.lr_points)  # checks both
        ValidationSplit(self.val_fraction, self.split_seed)  # checks val_fraction, split_seed
        if self.sweep_epochs is not None and (
                isinstance(self.sweep_epochs, bool) or not isinstance(self.sweep_epochs, int)
                or self.sweep_epochs < 1):
            raise ValueError(f"sweep_epochs: expected a positive integer, got {self.sweep_epochs!r}")
        try:
            seeds = check_seeds(self.sweep_seeds)
        except ValueError as error:
            raise ValueError(f"sweep_{error}") from None
        object.__setattr__(self, "_seeds", tuple(seeds))
        extend = self.lr_extend_decades
        if isinstance(extend, bool) or not isinstance(extend, int) or not 0 <= extend <= 6:
            raise ValueError(f"lr_extend_decades: expected an integer from 0 to 6, got {extend!r}")
        if isinstance(self.scheduler, str):
            object.__setattr__(self, "scheduler", SCHEDULER_ALIASES.get(self.scheduler, self.scheduler))
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"sweep_scheduler: expected one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}")
        eta = self.halving_eta
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            raise ValueError(f"halving_eta: expected an integer >= 2, got {eta!r}")

    @property
    def seeds(self) -> list[int]:
        return list(self._seeds)

    @property
    def validation(self) -> ValidationSplit:
        return ValidationSplit(self.val_fraction, self.split_seed)

    def grid_for(self, default_lr: float) -> tuple[float, ...]:
        if self.lr_grid is not None:
            return self.lr_grid
        return log_grid(default_lr, decades=self.lr_decades, points=self.lr_points)

    def epochs_for(self, task_epochs: int) -> int:
        return self.sweep_epochs if self.sweep_epochs is not None else max(1, math.ceil(task_epochs / 2))

    def protocol(self, task: PlannedTask) -> dict[str, Any]:
        """The record of the protocol stored (and hashed) with every tuned test run."""
        return {
            "name": "tuned",
            "lr_grid": list(self.grid_for(task.settings.lr)),
            "validation": self.validation.config(),
            "sweep_epochs": self.epochs_for(task.settings.epochs),
            "sweep_seeds": self.seeds,
            **({"criterion": SINGLE_SEED_CRITERION} if len(self.seeds) == 1
               else {"criterion": CRITERION, "selection": rule_record()}),
            "lr_extension": {"max_decades_per_side": self.lr_extend_decades},
            **({"scheduler": self.scheduler_record(task)} if self.scheduler != "none" else {}),
        }

    def scheduler_record(self, task: PlannedTask) -> dict[str, Any]:
        """How successive halving prunes the sweep (part of the tuned runs' protocol)."""
        epochs = self.epochs_for(task.settings.epochs)
        return {"name": _RECORDED_NAME[self.scheduler], "method": "successive halving (synchronous ASHA)",
                "eta": self.halving_eta, "rungs": halving_rungs(epochs, self.halving_eta),
                "rule": "at each rung keep the best ceil(n / eta) rates by the selection criterion "
                        "at that epoch (ties to the smaller rate); the others stop there"}


def halving_rungs(epochs: int, eta: int = DEFAULT_HALVING_ETA) -> list[int]:
    """The epochs at which successive halving decides: ``epochs``, ``epochs // eta``, ...
    down to 1, ascending (``halving_rungs(3) == [1, 3]``, ``halving_rungs(10) == [1, 3, 10]``)."""
    rungs = [epochs]
    while rungs[0] > 1:
        rungs.insert(0, max(1, rungs[0] // eta))
    return rungs


# --- the sweep rows, derived from a test configuration ---------------------------------------


def sweep_config(test_config: Mapping[str, Any], protocol: Mapping[str, Any], lr: float) -> dict[str, Any]:
    """The config of the sweep run at rate ``lr`` that belongs to a (fixed-shape) test config.

    Pure dict arithmetic, used both when planning the sweep and when reading it back: the
    data gains the validation split, the training its rate and the sweep's epochs.
    """
    return {
        "task": test_config["task"],
        "data": {**test_config["data"], "validation": dict(protocol["validation"])},
        "training": {**test_config["training"], "lr": float(lr), "epochs": int(protocol["sweep_epochs"])},
    }


def sweep_key(test_config: Mapping[str, Any], protocol: Mapping[str, Any], lr: float, loss: str,
              seed: int) -> RunKey:
    """The results-store key of one sweep run (the runner hashes config + loss + seed)."""
    config = sweep_config(test_config, protocol, lr)
    return RunKey(config["task"], loss, seed, "sweep", config_hash({**config, "loss": loss, "seed": seed}))


@dataclass
class Selection:
    """The learning rate chosen for one (task, loss), and the sweep scores behind it.

    ``scores`` maps each rate to ``(correct, total)`` validation predictions summed over the
    sweep seeds; ``per_seed`` to every seed's ``(seed, correct, total, diverged)``;
    ``diverged`` lists rates where a sweep run's loss became non-finite; ``choice`` is the
    rule's record (mean, spread, standard error and every seed's score per rate, see
    :mod:`.selection`); ``lr`` is None while some sweep run of the grid is not done.
    """

    task: str
    loss: str
    lr: float | None
    grid: tuple[float, ...]
    scores: dict[float, tuple[int, int]]
    diverged: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    missing_rates: list[float] = field(default_factory=list)
    base_grid: tuple[float, ...] = ()
    extended: dict[str, int] = field(default_factory=dict)  # decades added per side
    at_edge: str | None = None  # "low" / "high": the choice still sits at that edge
    stopped: dict[float, int] = field(default_factory=dict)  # rate -> epoch successive halving stopped it
    scheduler: dict[str, Any] | None = None  # the halving record (rungs, decisions, epochs saved)
    per_seed: dict[float, list[tuple[int, int, int, bool]]] = field(default_factory=dict)
    choice: RateChoice | None = None

    @property
    def added_rates(self) -> list[float]:
        """The rates the edge rule added to the protocol's grid."""
        return [lr for lr in self.grid if lr not in self.base_grid]

    def accuracy(self, lr: float) -> float:
        correct, total = self.scores[lr]
        return correct / total if total else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (rates as strings of their repr, so they survive a round trip)."""
        return {
            "lr": self.lr, "grid": list(self.grid), "criterion": CRITERION,
            "scores": {repr(lr): {"correct": c, "total": t, "accuracy": c / t if t else None}
                       for lr, (c, t) in self.scores.items()},
            "diverged": list(self.diverged),
            "added_rates": self.added_rates,
            "extended_decades": dict(self.extended),
            "at_edge": self.at_edge,
            **({"rates": {repr(lr): record.to_dict() for lr, record in self.choice.rates.items()},
                "within_one_se": self.choice.within, "candidates": list(self.choice.candidates),
                "fallback": self.choice.fallback} if self.choice is not None else {}),
            **({"stopped_early": {repr(lr): epoch for lr, epoch in self.stopped.items()},
                "scheduler": self.scheduler} if self.scheduler is not None else {}),
        }


def _correct_count(store: ResultsStore, run: Mapping[str, Any]) -> tuple[int, int]:
    """(correct, total) validation predictions of a done sweep run at its last epoch."""
    samples = run["config"].get("samples")
    if not samples:
        raise ValueError(f"run {run['run_id']}: a sweep run without its sample record cannot be scored")
    total = int(samples["eval"]["count"])
    if run["status"] == "diverged":
        return 0, total
    last = store.epochs(run["run_id"])[-1]
    # eval_accuracy was recorded as correct / total: rounding recovers the integer exactly.
    return round(last["eval_accuracy"] * total), total


def decade_beyond(base_grid: Sequence[float], edge: float, side: str) -> list[float]:
    """Rates covering one more decade beyond ``edge`` on ``side`` ("low" or "high"), with the
    base grid's finest log spacing (at least one rate a decade; 4 significant digits)."""
    if side not in ("low", "high"):
        raise ValueError(f"side: expected 'low' or 'high', got {side!r}")
    rates = sorted(float(lr) for lr in base_grid)
    steps = [math.log10(b / a) for a, b in itertools.pairwise(rates)]
    per_decade = max(1, round(1.0 / min(steps))) if steps else 1
    sign = -1.0 if side == "low" else 1.0
    return [float(f"{edge * 10 ** (sign * i / per_decade):.4g}") for i in range(1, per_decade + 1)]


def derive_selection(store: ResultsStore, test_config: Mapping[str, Any], protocol: Mapping[str, Any],
                     loss: str) -> Selection:
    """The selection for one loss, computed from the sweep rows in ``store`` (nothing else).

    When the best rate sits at an edge of the grid and the protocol allows it
    (``lr_extension.max_decades_per_side``), the grid grows a decade on that side and the
    choice is made again over the larger grid; rates of the grown grid that have no finished
    sweep run yet are listed in ``missing_rates`` (and ``lr`` is None until they are swept).
    """
    base = tuple(sorted(float(lr) for lr in protocol["lr_grid"]))
    limit = int(protocol.get("lr_extension", {}).get("max_decades_per_side", 0))
    halving = read_halving(store, test_config, protocol, loss) if "scheduler" in protocol else None
    stopped = {float(lr): int(epoch) for lr, epoch in (halving or {}).get("stopped", {}).items()}
    grid = base
    extended = {"low": 0, "high": 0}
    by_key: dict[RunKey, int | None] = {}
    while True:
        scores, diverged, missing, missing_rates, per_seed = _sweep_scores(
            store, test_config, protocol, loss, grid, by_key, stopped)
        if "scheduler" in protocol and halving is None:
            missing = missing or ["the successive-halving decisions"]
        if missing:
            return Selection(str(test_config["task"]), loss, None, grid, scores, diverged, missing,
                             missing_rates, base, extended, stopped=stopped, scheduler=halving,
                             per_seed=per_seed)
        choice = choose_from_sweep(per_seed, protocol)
        chosen = choice.lr
        edges = [side for side, edge in (("low", grid[0]), ("high", grid[-1])) if chosen == edge]
        growable = [side for side in edges if extended[side] < limit]
        if not growable:
            return Selection(str(test_config["task"]), loss, chosen, grid, scores, diverged, [],
                             [], base, extended, edges[0] if edges else None, stopped=stopped,
                             scheduler=halving, per_seed=per_seed, choice=choice)
        added: list[float] = []
        for side in growable:
            added += decade_beyond(base, grid[0] if side == "low" else grid[-1], side)
            extended[side] += 1
        grid = tuple(sorted(set(grid) | set(added)))


def _sweep_scores(store: ResultsStore, test_config: Mapping[str, Any], protocol: Mapping[str, Any],
                  loss: str, grid: Sequence[float], by_key: dict[RunKey, int | None],
                  stopped: Mapping[float, int] | None = None,
                  ) -> tuple[dict[float, tuple[int, int]], list[float], list[str], list[float],
                             dict[float, list[tuple[int, int, int, bool]]]]:
    """(scores, diverged rates, missing runs, rates with a missing run, per-seed scores) over
    ``grid``; rates that successive halving ``stopped`` early take no part."""
    scores: dict[float, tuple[int, int]] = {}
    per_seed: dict[float, list[tuple[int, int, int, bool]]] = {}
    diverged: list[float] = []
    missing: list[str] = []
    missing_rates: list[float] = []
    for lr in grid:
        if stopped and lr in stopped:
            continue
        correct_sum = total_sum = 0
        complete = True
        seed_scores: list[tuple[int, int, int, bool]] = []
        for seed in protocol["sweep_seeds"]:
            key = sweep_key(test_config, protocol, lr, loss, int(seed))
            if key not in by_key:
                found = store.find_run(key)
                by_key[key] = None if found is None else found[0]
            run_id = by_key[key]
            run = None if run_id is None else _run(store, run_id)
            if run is None or run["status"] not in ("finished", "diverged"):
                missing.append(f"lr {lr:g} seed {seed}")
                if lr not in missing_rates:
                    missing_rates.append(lr)
                complete = False
                continue
            if run["status"] == "diverged" and lr not in diverged:
                diverged.append(lr)
            correct, total = _correct_count(store, run)
            correct_sum += correct
            total_sum += total
            seed_scores.append((int(seed), correct, total, run["status"] == "diverged"))
        if complete:
            scores[lr] = (correct_sum, total_sum)
            per_seed[lr] = seed_scores
    return scores, diverged, missing, missing_rates, per_seed


def _run(store: ResultsStore, run_id: int) -> dict[str, Any] | None:
    return store.run(run_id)


# --- running the protocol ------------------------------------------------------------------


def sweep_tasks(task: PlannedTask, tuning: TuningSettings,
                rates: Sequence[float] | None = None) -> list[PlannedTask]:
    """The sweep's grid rows of one task: one per learning rate (default: the task's grid),
    sharing one data source."""
    if task.protocol is not None or task.loss_settings:
        raise ValueError(f"tasks: {task.label!r} is already tuned; pass the fixed-protocol task")
    source = replace(task.source, validation=tuning.validation)
    epochs = tuning.epochs_for(task.settings.epochs)
    return [PlannedTask(task.label, source, replace(task.settings, lr=lr, epochs=epochs))
            for lr in (tuning.grid_for(task.settings.lr) if rates is None else rates)]


@dataclass
class TunedRun:
    """What :func:`run_tuned` did: both grids, the selections, and the test-stage rows."""

    sweep: GridResult
    test: GridResult | None
    selections: dict[tuple[str, str], Selection]
    tasks: list[PlannedTask]  # the test-stage rows (each loss at its chosen rate)
    failed: list[str] = field(default_factory=list)


def run_tuned(
    tasks: Sequence[PlannedTask],
    losses: Sequence[str],
    seeds: int | Sequence[int],
    *,
    db: str | Path | ResultsStore,
    tuning: TuningSettings | None = None,
    workers: int = 1,
    threads: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    timeout: float = 60.0,
    on_epoch: Callable[..., None] | None = None,
    stages: Sequence[str] = ("sweep", "test"),
    backend: Any = "local",
    lease: float | None = None,
) -> TunedRun:
    """Sweep each (task, loss)'s learning rate on a validation split, then test at the best.

    Args:
        tasks: fixed-protocol grid rows (their ``settings.lr`` centres the default grid).
        losses, seeds: as for :func:`.runner.run_grid` (the seeds of the test stage).
        db: the results database holding both stages.
        tuning: the sweep and selection settings (defaults: :class:`TuningSettings`).
        stages: ``("sweep",)`` to run the sweep and select without testing.
        backend: where the runs of both stages train (see :func:`.runner.run_grid`).
        lease: each run's lease in seconds (see :func:`.runner.run_grid`; None: its default).

    Returns:
        A :class:`TunedRun`. A loss whose sweep has failed runs gets no test runs; it is
        listed in ``failed`` (re-run to retry).
    """
    tuning = tuning or TuningSettings()
    losses = check_losses(losses)
    seeds = check_seeds(seeds)
    unknown = [stage for stage in stages if stage not in ("sweep", "test")]
    if unknown or "sweep" not in stages:
        raise ValueError(f"stages: expected ('sweep',) or ('sweep', 'test'), got {tuple(stages)!r}")
    store = db if isinstance(db, RunStore) else ResultsStore(db, timeout=timeout)
    rows = [row for task in tasks for row in sweep_tasks(task, tuning)]
    log(f"[tune] sweep: {len(tasks)} task(s) × {len(losses)} loss(es) × "
        f"{len(rows) // max(1, len(tasks))} rate(s) × {len(tuning.seeds)} seed(s) on a "
        f"{tuning.val_fraction:g} validation split")
    options: dict[str, Any] = {"workers": workers, "threads": threads, "progress": progress,
                               "log": log, "timeout": timeout, "on_epoch": on_epoch,
                               "backend": backend}
    if lease is not None:
        options["lease"] = lease
    if tuning.scheduler == "successive-halving":
        sweep = _merge([successive_halving(store, task, losses, tuning, **options) for task in tasks])
    else:
        sweep = run_grid(rows, losses, tuning.seeds, db=store, stage="sweep", **options)
    sweep = _grow_grids(store, tasks, losses, tuning, sweep, **options)
    selections: dict[tuple[str, str], Selection] = {}
    tested: list[PlannedTask] = []
    failed = list(sweep.failed)
    for task in tasks:
        protocol = tuning.protocol(task)
        base_config = task.config()
        chosen: dict[str, dict[str, Any]] = {}
        notes: dict[str, dict[str, Any]] = {}
        for loss in losses:
            selection = derive_selection(store, base_config, protocol, loss)
            selections[(task.label, loss)] = selection
            if selection.lr is None:
                failed.append(f"{task.label}/{loss}: no learning rate chosen, sweep runs not done: "
                              f"{', '.join(selection.missing)}")
                continue
            chosen[loss] = {"lr": selection.lr}
            notes[loss] = {"selection": selection.to_dict()}
            log(f"[tune] {task.label}/{loss}: lr {selection.lr:g} (validation accuracy "
                + ", ".join(f"{lr:g}: {selection.accuracy(lr):.3f}" for lr in selection.grid
                            if lr in selection.scores) + ")"
                + (f"; grid extended by {', '.join(f'{lr:g}' for lr in selection.added_rates)}"
                   if selection.added_rates else ""))
            if selection.at_edge is not None:
                log(f"[tune] warning: {task.label}/{loss}: the chosen rate {selection.lr:g} still "
                    f"sits at the {selection.at_edge} edge of the grid "
                    f"({selection.grid[0]:g}..{selection.grid[-1]:g}) after extending it by "
                    f"{tuning.lr_extend_decades} decade(s) on that side: the best rate may lie "
                    "beyond it (pass --lr-grid to move the grid)")
        if chosen:
            tested.append(PlannedTask(task.label, task.source, task.settings, loss_settings=chosen,
                                      protocol=protocol, notes=notes))
    test = None
    if "test" in stages and tested:
        # One grid per task: each task's tested losses may differ when a sweep failed.
        results = []
        for row in tested:
            results.append(run_grid([row], list(row.loss_settings), seeds, db=store, stage="test",
                                    **options))
        test = _merge(results)
        failed += test.failed
    return TunedRun(sweep, test, selections, tested, failed)


def _halving_digest(test_config: Mapping[str, Any], protocol: Mapping[str, Any]) -> str:
    return config_hash({"config": test_config, "protocol": protocol})


def read_halving(store: ResultsStore, test_config: Mapping[str, Any], protocol: Mapping[str, Any],
                 loss: str) -> dict[str, Any] | None:
    """The recorded successive-halving decisions of one (task, loss) sweep, or None."""
    return store.meta.get_halving(str(test_config["task"]), _halving_digest(test_config, protocol), loss)


def _rung_score(store: ResultsStore, run_id: int | None, epoch: int) -> tuple[int, int] | None:
    """(correct, total) validation predictions of a sweep run after ``epoch`` (a diverged run
    before it: zero correct), or None when the run has not reached it."""
    if run_id is None:
        return None
    run = _run(store, run_id)
    if run is None:
        return None
    total = int(run["config"]["samples"]["eval"]["count"])
    epochs = store.epochs(run_id)
    if len(epochs) >= epoch:
        return round(epochs[epoch - 1]["eval_accuracy"] * total), total
    return (0, total) if run["status"] == "diverged" else None


def successive_halving(store: ResultsStore, task: PlannedTask, losses: Sequence[str],
                       tuning: TuningSettings, **options: Any) -> GridResult:
    """Sweep one task's grid with successive halving (``tuning.scheduler == "successive-halving"``).

    Every rate trains to the first rung; per loss, the best ``ceil(n / eta)`` rates by the
    selection criterion at that epoch go on to the next rung, the others stop there; the last
    rung is the sweep budget. Each rung is one grid on the chosen backend (runs of all losses
    in parallel); stopped runs stay paused at their rung. The decisions, the scores behind
    them and the epochs saved are recorded in the database's ``meta`` table (re-running
    recomputes the same decisions from the same scores and trains nothing twice).
    """

    log = options.get("log", print)
    rows = sweep_tasks(task, tuning)
    rates = [row.settings.lr for row in rows]
    protocol = tuning.protocol(task)
    test_config = task.config()
    rungs = protocol["scheduler"]["rungs"]
    budget = rungs[-1]
    seeds = tuning.seeds
    alive = {loss: list(range(len(rows))) for loss in losses}
    decisions: dict[str, list[dict[str, Any]]] = {loss: [] for loss in losses}
    stopped: dict[str, dict[float, int]] = {loss: {} for loss in losses}
    undecided: set[str] = set()
    results: list[GridResult] = []
    for rung in rungs:
        only = {(index, loss) for loss in losses if loss not in undecided for index in alive[loss]}
        if not only:
            break
        log(f"[tune] successive halving: {task.label}: rung at epoch {rung}: "
            + "; ".join(f"{loss} {len(alive[loss])} rate(s)" for loss in losses if loss not in undecided))
        results.append(run_grid(rows, losses, seeds, db=store, stage="sweep", only=only,
                                until_epoch=None if rung == budget else rung, **options))
        if rung == budget:
            break
        for loss in losses:
            if loss in undecided:
                continue
            scores: dict[int, tuple[int, int]] = {}
            for index in alive[loss]:
                correct = total = 0
                for seed in seeds:
                    key = sweep_key(test_config, protocol, rates[index], loss, seed)
                    found = store.find_run(key)
                    score = _rung_score(store, None if found is None else found[0], rung)
                    if score is None:
                        break
                    correct, total = correct + score[0], total + score[1]
                else:
                    scores[index] = (correct, total)
                    continue
                break
            if len(scores) < len(alive[loss]):  # a failed run: decide when it is done (re-run)
                undecided.add(loss)
                log(f"[tune] successive halving: {task.label}/{loss}: a sweep run did not reach "
                    f"epoch {rung}; no decision until it does (re-run to retry)")
                continue
            keep = max(1, math.ceil(len(alive[loss]) / tuning.halving_eta))
            ranked = sorted(alive[loss], key=lambda index: (-scores[index][0], rates[index]))
            promoted = sorted(ranked[:keep])
            for index in ranked[keep:]:
                stopped[loss][rates[index]] = rung
            decisions[loss].append({
                "epoch": rung,
                "scores": {repr(rates[i]): {"correct": c, "total": t} for i, (c, t) in scores.items()},
                "promoted": [rates[i] for i in promoted],
                "stopped": [rates[i] for i in ranked[keep:]],
            })
            alive[loss] = promoted
    for loss in losses:
        if loss in undecided:
            continue
        full = len(rates) * budget * len(seeds)
        trained = sum(stopped[loss].get(lr, budget) for lr in rates) * len(seeds)
        record = {
            **protocol["scheduler"], "decisions": decisions[loss],
            "stopped": {repr(lr): epoch for lr, epoch in stopped[loss].items()},
            "survivors": [rates[i] for i in alive[loss]],
            "epochs_trained": trained, "epochs_without": full, "epochs_saved": full - trained,
        }
        store.meta.put_halving(str(test_config["task"]), _halving_digest(test_config, protocol), loss,
                               record)
        log(f"[tune] successive halving: {task.label}/{loss}: stopped "
            + (", ".join(f"lr {lr:g} at epoch {epoch}" for lr, epoch in stopped[loss].items()) or "none")
            + f"; saved {full - trained} of {full} sweep epochs ({(full - trained) / full:.0%})")
    return _merge(results)


def _grow_grids(store: ResultsStore, tasks: Sequence[PlannedTask], losses: Sequence[str],
                tuning: TuningSettings, sweep: GridResult, **options: Any) -> GridResult:
    """Sweep the rates that the edge rule adds (see :func:`derive_selection`) until every
    selection is made, or a round adds nothing new (failed runs: rerun to retry)."""
    results = [sweep]
    attempted: set[tuple[str, str, float]] = set()
    log = options.get("log", print)
    while True:
        work: list[tuple[PlannedTask, str, list[float]]] = []
        for task in tasks:
            protocol = tuning.protocol(task)
            base_config = task.config()
            for loss in losses:
                selection = derive_selection(store, base_config, protocol, loss)
                rates = [lr for lr in selection.missing_rates if lr not in selection.base_grid
                         and (task.label, loss, lr) not in attempted]
                if rates:
                    work.append((task, loss, rates))
        if not work:
            return _merge(results)
        # One grid per (task, added rates): the losses that need the same rates train together.
        batches: dict[tuple[int, tuple[float, ...]], list[str]] = {}
        for task, loss, rates in work:
            log(f"[tune] {task.label}/{loss}: best rate at an edge of the grid; sweeping "
                + ", ".join(f"{lr:g}" for lr in rates))
            attempted.update((task.label, loss, lr) for lr in rates)
            batches.setdefault((tasks.index(task), tuple(rates)), []).append(loss)
        for (index, rates), batch_losses in batches.items():
            results.append(run_grid(sweep_tasks(tasks[index], tuning, rates), batch_losses,
                                    tuning.seeds, db=store, stage="sweep", **options))


def _merge(results: Sequence[GridResult]) -> GridResult:
    merged = GridResult({}, 0, 0, 0, [], 0.0, {}, 0)
    for result in results:
        merged.run_ids.update(result.run_ids)
        merged.runs.update(result.runs)
        merged.trained += result.trained
        merged.skipped += result.skipped
        merged.busy += result.busy
        merged.failed += result.failed
        merged.wall_time += result.wall_time
        merged.diverged += result.diverged
        merged.taken_over += result.taken_over
    return merged
