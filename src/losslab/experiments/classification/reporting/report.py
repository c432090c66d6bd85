"""Reading a results database back: per-task statistics tables and learning-curve figures.

``write_report(db, out_dir)`` is what ``losslab report --db FILE --out DIR`` runs: one section
per task and protocol (accuracy table with paired comparisons against cross-entropy, learning
curves, gradient statistics, the runs still unfinished; for the tuned protocol also the
learning rate chosen per loss and the validation-accuracy-against-rate sensitivity figure),
written as Markdown and self-contained HTML.

Every name and setting read from the database (loss names, task labels, statuses, data set
names and options, config values) is escaped where it enters the Markdown
(:func:`losslab._escape.md_text`, :func:`~losslab._escape.md_code`) and in figure labels
(:func:`losslab.plotting.plot_text`): the database may come from anyone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab._escape import md_code, md_text
from losslab._paths import check_folder, inside
from losslab.experiments.classification.execution.runner import ANNOTATION_KEYS
from losslab.experiments.classification.reporting.stats import LossComparison, compare_losses
from losslab.experiments.classification.storage import ResultsStore, RunStore, config_hash
from losslab.report import Figure, Report, Section

_RUN_IDENTITY = ("loss", "seed", "stage")
# Where each metric of .metrics is recorded in an epoch's record.
EPOCH_COLUMNS: dict[str, str] = {
    "accuracy": "eval_accuracy", "macro_f1": "eval_macro_f1",
    "balanced_accuracy": "eval_balanced_accuracy", "nll": "eval_cross_entropy",
    "ece": "eval_ece", "brier": "eval_brier", "perplexity": "eval_perplexity",
}
BASELINE = "cross_entropy"


def group_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the runs of one comparison share: the run config minus loss, seed, stage and the
    unhashed annotations; under the tuned protocol also minus the learning rate (each loss
    has its own, chosen by the same recorded protocol)."""
    shared = {k: v for k, v in config.items() if k not in _RUN_IDENTITY + ANNOTATION_KEYS}
    if "protocol" in shared:
        shared["training"] = {k: v for k, v in shared["training"].items() if k != "lr"}
    return shared


def group_key(task: Any) -> tuple[str, str]:
    """(label, hash) of the comparison a planned task's runs form (see :func:`group_config`)."""
    loss = next(iter(task.loss_settings), None)
    return task.label, config_hash(group_config(task.config(loss)))


@dataclass
class TaskResults:
    """The runs of one task configuration: every loss and seed trained with the same settings."""

    label: str
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def protocol(self) -> str:
        """``"tuned"`` (a learning rate per loss, chosen on a validation split) or ``"fixed"``."""
        return str(self.config.get("protocol", {}).get("name", "fixed"))

    def learning_rates(self) -> dict[str, float]:
        """``{loss: learning rate}`` of the runs (one shared rate under the fixed protocol)."""
        return {run["loss"]: run["config"]["training"]["lr"] for run in self.runs}

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [run for run in self.runs if run["status"] == "finished"]

    def incomplete(self) -> dict[str, tuple[int, int]]:
        """``{loss: (finished, total)}`` for each loss with runs not finished (still training
        in another process, interrupted, or failed)."""
        counts: dict[str, list[int]] = {}
        for run in self.runs:
            finished, total = counts.setdefault(run["loss"], [0, 0])
            counts[run["loss"]] = [finished + (run["status"] == "finished"), total + 1]
        return {loss: (f, t) for loss, (f, t) in counts.items() if f < t}

    @property
    def losses(self) -> list[str]:
        seen: list[str] = []
        for run in self.runs:
            if run["loss"] not in seen:
                seen.append(run["loss"])
        return seen

    def final_accuracy(self) -> dict[str, dict[int, float]]:
        """``{loss: {seed: test accuracy after the last epoch}}`` of the finished runs."""
        return self.final_scores("accuracy")

    def final_scores(self, metric: str = "accuracy") -> dict[str, dict[int, float]]:
        """``{loss: {seed: metric after the last epoch}}`` of the finished runs that recorded
        it (see :mod:`.metrics`; runs recorded before a metric existed are left out)."""
        from losslab.experiments.classification.trial.metrics import check_metric

        column = EPOCH_COLUMNS[check_metric(metric)]
        result: dict[str, dict[int, float]] = defaultdict(dict)
        for run in self.finished:
            value = run["epochs"][-1].get(column)
            if value is not None:
                result[run["loss"]][run["seed"]] = float(value)
        return {loss: result[loss] for loss in self.losses if loss in result}

    def comparisons(self, baseline: str = BASELINE, metric: str = "accuracy") -> list[LossComparison]:
        from losslab.experiments.classification.trial.metrics import METRIC_NAMES, METRICS

        scores = self.final_scores(metric)
        return compare_losses(scores, baseline=baseline, metric=METRIC_NAMES[metric],
                              higher_is_better=METRICS[metric]) if scores else []


def load_results(db: str | Path | ResultsStore, *, stage: str = "test") -> list[TaskResults]:
    """Every task configuration in the database with its runs and their epochs.

    Runs of the same task label with different settings (epochs, lr, data sizes ...) form
    separate groups: only runs trained alike are compared.
    """
    store = db if isinstance(db, RunStore) else _open_existing(db)
    groups: dict[tuple[str, str], TaskResults] = {}
    for run in store.runs(stage=stage):
        shared = group_config(run["config"])
        key = (run["task"], config_hash(shared))
        if key not in groups:
            groups[key] = TaskResults(run["task"], shared)
        run["planned_epochs"] = run["epochs"]
        run["epochs"] = store.epochs(run["run_id"])
        groups[key].runs.append(run)
    protocols: dict[str, set[str]] = defaultdict(set)
    siblings: dict[tuple[str, str], list[TaskResults]] = defaultdict(list)
    for (label, _), group in groups.items():
        protocols[label].add(group.protocol)
        siblings[(label, group.protocol)].append(group)
    for (label, _), group in groups.items():
        name = label
        if len(protocols[label]) > 1:
            name += f" — {group.protocol} protocol"
        same = siblings[(label, group.protocol)]
        if len(same) > 1:
            index = same.index(group) + 1
            differing = differing_settings([g.config for g in same])
            shown = ", ".join(f"{key} {value}" for key, value in _flatten(group.config).items()
                              if key in differing)
            name += f" (config {index}: {shown})"
        group.label = name
    # A task's protocols side by side: fixed first, then tuned, in order of first appearance.
    order: dict[str, int] = {}
    for label, _ in groups:
        order.setdefault(label, len(order))
    return sorted(groups.values(),
                  key=lambda g: (order[g.runs[0]["task"]], g.protocol != "fixed"))


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"training.lr": 0.001, ...}`` of a nested config (lists kept whole)."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differing_settings(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every config (in first-seen order)."""
    flats = [_flatten(config) for config in configs]
    keys: list[str] = []
    for flat in flats:
        keys += [key for key in flat if key not in keys]
    missing = object()
    return [key for key in keys
            if len({repr(flat.get(key, missing)) for flat in flats}) > 1]


def _open_existing(db: str | Path) -> ResultsStore:
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"db: no results database at {path}")
    return ResultsStore(path, readonly=True)


def _format(value: float | None, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def _points(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:+.2f}"


def _interval(low: float, high: float) -> str:
    return "–" if math.isnan(low) or math.isnan(high) else f"[{_points(low)}, {_points(high)}]"


def _level(confidence: float) -> str:
    return "–" if math.isnan(confidence) else f"{100 * confidence:.3g}%"


def _seeds(count: int | None) -> str:
    if count is None:
        return "–"
    return f"> {count - 1}" if count > 10_000 else str(count)


_DECISION_WORDS = {
    "better": "better than cross-entropy",
    "worse": "worse than cross-entropy",
    "equivalent": "no difference beyond ±1 point",
    "undecided": "undecided (the interval contains 0 and differences of more than 1 point)",
    "untested": "too few paired seeds to test",
}


def decision_lines(comparisons: list[LossComparison], *, metric: str = "accuracy") -> list[str]:
    """One ranked line per loss: its difference from the baseline in points, the interval the
    verdict reads (Holm-adjusted), and the decision. The baseline's line gives its score."""
    baseline = next((c for c in comparisons if c.decision == "baseline"), None)
    others = [c for c in comparisons if c.decision != "baseline"]
    ranked = sorted(others, key=lambda c: -(c.paired.mean if c.paired is not None else -math.inf))
    lines = []
    for rank, row in enumerate(ranked, start=1):
        if row.paired is None or row.paired.n < 2:
            lines.append(f"{rank}. **{md_text(row.loss)}**: {_DECISION_WORDS['untested']}")
            continue
        lines.append(
            f"{rank}. **{md_text(row.loss)}**: {_points(row.paired.mean)} points "
            f"({_level(row.adjusted_confidence)} CI {_interval(row.adjusted_low, row.adjusted_high)}"
            f", n={row.paired.n}) — {_DECISION_WORDS[row.decision]}")
    if baseline is not None:
        s = baseline.summary
        lines.append(f"- baseline **{md_text(baseline.loss)}**: {md_text(metric)} {s.mean:.4f} ± "
                     f"{_format(s.sd, '.4f')} (n={s.n})")
    return lines


def precision_line(comparisons: list[LossComparison]) -> str:
    """How precise the table is: the widest 95% half-width, the smallest difference it could
    detect (80% power) and the seeds needed to detect 1 point, for the least precise loss."""
    rows = [c for c in comparisons if c.precision is not None]
    if not rows:
        return "Precision: too few paired seeds to estimate it."
    worst = max(rows, key=lambda c: c.precision.half_width)
    detectable = max(c.precision.detectable for c in rows)
    needed = max((c.precision.seeds_for_one_point or 0) for c in rows)
    return (f"Precision: widest paired 95% half-width {100 * worst.precision.half_width:.2f} points "
            f"({md_text(worst.loss)}, n={worst.paired.n}); smallest difference this table detects with 80% "
            f"power (paired t, α=0.05, observed spread): {100 * detectable:.2f} points; seeds needed "
            f"to detect a 1-point difference: {_seeds(needed)}.")


def statistics_markdown(comparisons: list[LossComparison],
                        incomplete: dict[str, tuple[int, int]] | None = None, *,
                        escape: Callable[[object], str] = md_text) -> str:
    """The accuracy table of one task: mean ± sd per loss, the paired difference from the
    baseline with the interval the verdict reads, the verdict, and the table's precision.
    ``incomplete`` (``{loss: (finished, total)}``) marks rows whose runs are not all done.
    ``escape`` renders the loss names and verdicts (Markdown escaping; ``str`` for a
    terminal, which interprets nothing)."""
    incomplete = incomplete or {}
    lines = [
        "| loss | n | test accuracy (mean ± sd) | Δ vs CE (points) | CI of the verdict (points) | "
        "verdict | detectable Δ at 80% power (points) | seeds for 1 point |",
        "|:---|---:|---:|---:|---:|:---|---:|---:|",
    ]
    for row in comparisons:
        s = row.summary
        accuracy = f"{s.mean:.4f} ± {_format(s.sd, '.4f')}"
        p = row.paired
        name = escape(row.loss)
        if row.loss in incomplete:
            done, total = incomplete[row.loss]
            name += f" (incomplete: {done} of {total} runs finished)"
        if p is None or row.precision is None:
            delta = "" if p is None else _points(p.mean)
            lines.append(f"| {name} | {s.n} | {accuracy} | {delta} | | {escape(row.verdict)} | | |")
            continue
        lines.append(
            f"| {name} | {s.n} | {accuracy} | {_points(p.mean)} | "
            f"{_level(row.adjusted_confidence)} {_interval(row.adjusted_low, row.adjusted_high)} | "
            f"{escape(row.verdict)} | {100 * row.precision.detectable:.2f} | "
            f"{_seeds(row.precision.seeds_for_one_point)} |")
    return "\n".join(lines)


def other_views_markdown(comparisons: list[LossComparison]) -> str:
    """The same seeds seen other ways (none of these drives a verdict): the unadjusted paired
    95% t interval, a paired percentile bootstrap interval (scipy.stats.bootstrap), the
    probability of improvement with its Wilson interval, and the p-values."""
    rows = [c for c in comparisons if c.precision is not None]
    if not rows:
        return ""
    lines = [
        "| loss | 95% CI, paired t (points) | 95% CI, paired bootstrap (points) | "
        "P(beats CE) [95% CI] | p (t) | p (Holm) | p (Wilcoxon) |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        p, improvement = row.paired, row.improvement
        poi = ("–" if improvement is None else
               f"{improvement.probability:.2f} [{improvement.low:.2f}, {improvement.high:.2f}]")
        lines.append(
            f"| {md_text(row.loss)} | {_interval(p.ci_low, p.ci_high)} | "
            f"{_interval(row.bootstrap_low, row.bootstrap_high)} | {poi} | "
            f"{_format(p.p_value, '.3g')} | {_format(row.p_holm, '.3g')} | "
            f"{_format(p.wilcoxon_p, '.3g')} |")
    return "\n".join(lines)


_MARKS = {"better": "▲", "worse": "▼", "equivalent": "=", "undecided": "?"}


def metrics_markdown(task: TaskResults, baseline: str = BASELINE) -> str:
    """Every loss on every recorded metric: mean over seeds, and how it compares with the
    baseline (▲ better, ▼ worse, = within ±1 point, ? undecided; Holm-adjusted per metric)."""
    from losslab.experiments.classification.trial.metrics import METRIC_NAMES, METRICS

    columns = []
    for metric in METRICS:
        rows = {row.loss: row for row in task.comparisons(baseline, metric)}
        if rows:
            columns.append((metric, rows))
    if len(columns) < 2:
        return ""
    header = "| loss | " + " | ".join(
        f"{METRIC_NAMES[m]} ({'higher' if METRICS[m] else 'lower'} is better)" for m, _ in columns) + " |"
    lines = [header, "|:---|" + "---:|" * len(columns)]
    for loss in task.losses:
        cells = []
        for _, rows in columns:
            row = rows.get(loss)
            if row is None:
                cells.append("–")
                continue
            mark = "" if row.decision in ("baseline", "untested") else " " + _MARKS[row.decision]
            cells.append(f"{row.summary.mean:.4f}{mark}")
        lines.append(f"| {md_text(loss)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reliability_figure(task: TaskResults, out_dir: str | Path, stem: str) -> Figure | None:
    """Reliability diagram per loss: accuracy against confidence in 15 equal-width bins of the
    final epoch, pooled over seeds (the diagonal is perfect calibration)."""
    import numpy as np

    from losslab.plotting import color_for, plot_text, pyplot, save_figure

    pooled: dict[str, list[np.ndarray]] = {}
    for run in task.finished:
        bins = run["epochs"][-1].get("reliability")
        if not bins:
            continue
        count = np.asarray(bins["count"], dtype=float)
        entry = pooled.setdefault(run["loss"], [np.zeros_like(count)] * 3)
        pooled[run["loss"]] = [entry[0] + count, entry[1] + count * np.asarray(bins["accuracy"]),
                               entry[2] + count * np.asarray(bins["confidence"])]
    if not pooled:
        return None
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(5.5, 5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for index, loss in enumerate(task.losses):
        if loss not in pooled:
            continue
        count, correct, confidence = pooled[loss]
        filled = count > 0
        axis.plot(confidence[filled] / count[filled], correct[filled] / count[filled], marker="o",
                  markersize=3, color=color_for(loss, index), label=plot_text(loss))
    axis.set_xlabel("confidence (top-class probability)")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8, loc="upper left")
    axis.set_title(plot_text(task.label), fontsize=9)
    caption = (f"{task.label}: reliability diagram per loss (final epoch, 15 equal-width "
               "confidence bins pooled over seeds; below the diagonal = over-confident).")
    return save_figure(fig, out_dir, stem, caption)


STATISTICS_NOTE = (
    "Verdicts use the paired t-test with Holm's adjustment over the losses of the table; the "
    "interval beside each verdict is at the confidence level of the Holm step that tests it, so "
    "it excludes 0 exactly when the verdict claims a difference (an interval inside ±1 point "
    "reads \"no difference beyond ±1 point\"). The detectable difference and the seeds for 1 "
    "point come from the observed spread of the paired differences (power of the paired t-test, "
    "the formula of statsmodels' TTestPower). The second table shows the same seeds other ways, "
    "none of which drives a verdict: the unadjusted 95% t interval, a paired percentile "
    "bootstrap (scipy.stats.bootstrap, 9,999 resamples of the seeds), and the probability of "
    "improvement — the share of seeds on which the loss beats cross-entropy, ties counting "
    "half — with a Wilson interval (statsmodels' proportion_confint).")


_CURVES = (
    ("train_accuracy", "train accuracy"),
    ("eval_accuracy", "test accuracy"),
    ("eval_cross_entropy", "test cross-entropy"),
    ("grad_mean", "mean |dLoss/dlogit| (train)"),
)


def learning_curves(task: TaskResults, out_dir: str | Path, stem: str) -> Figure | None:
    """Train/test accuracy, test cross-entropy and gradient size per epoch (mean ± sd over
    seeds, per loss): the analogue of the paper's Figures 5–8."""
    import numpy as np

    from losslab.plotting import color_for, plot_text, pyplot, save_figure

    by_loss: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for run in task.runs:
        if run["epochs"]:
            by_loss[run["loss"]].append(run["epochs"])
    if not by_loss:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for index, loss in enumerate(task.losses):
        if loss not in by_loss:
            continue
        color = color_for(loss, index)
        for axis, (column, title) in zip(axes.flat, _CURVES):
            length = max(len(epochs) for epochs in by_loss[loss])
            mean, sd, x = [], [], []
            for e in range(length):
                values = [epochs[e][column] for epochs in by_loss[loss] if len(epochs) > e]
                x.append(e + 1)
                mean.append(float(np.mean(values)))
                sd.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
            mean_a, sd_a = np.asarray(mean), np.asarray(sd)
            axis.plot(x, mean_a, color=color, marker="o", markersize=3,
                      label=plot_text(f"{loss} (n={len(by_loss[loss])})"))
            axis.fill_between(x, mean_a - sd_a, mean_a + sd_a, color=color, alpha=0.15, linewidth=0)
            axis.set_title(title)
    from matplotlib.ticker import MaxNLocator

    for axis in axes[1]:
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][0].legend(fontsize=8)
    fig.suptitle(plot_text(task.label))
    caption = (f"{task.label}: learning curves per loss, mean over seeds with ± 1 sd band "
               "(test cross-entropy makes the losses comparable; the gradient panel is the mean "
               "absolute derivative of each sample's loss with respect to its logits).")
    return save_figure(fig, out_dir, stem, caption)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _scheduler_text(task: TaskResults, protocol: dict[str, Any]) -> str:
    """The successive-halving part of a tuned protocol's description ('' without one)."""
    scheduler = protocol.get("scheduler")
    if not scheduler:
        return ""
    text = (f"; poor rates stopped early by {md_text(scheduler['method'])}, "
            f"η={md_text(scheduler['eta'])}, rungs at "
            f"epoch(s) {md_text(', '.join(str(r) for r in scheduler['rungs']))}")
    saved = []
    for run in task.runs:
        record = (run["config"].get("selection") or {}).get("scheduler")
        stopped = (run["config"].get("selection") or {}).get("stopped_early") or {}
        if record and run["loss"] not in [entry[0] for entry in saved]:
            where = ", ".join(f"{float(lr):g} at epoch {md_text(epoch)}" for lr, epoch in stopped.items())
            saved.append((run["loss"], f"{md_text(run['loss'])}: stopped {where or 'none'}, "
                          f"{md_text(record['epochs_saved'])} of {md_text(record['epochs_without'])} "
                          "sweep epochs saved"))
    return text + (" (" + "; ".join(line for _, line in saved) + ")" if saved else "")


def task_markdown(task: TaskResults, metric: str = "accuracy") -> str:
    """Description, settings, statistics table and unfinished runs of one task; the verdicts
    read ``metric`` (see :mod:`.metrics`)."""
    training = task.config.get("training", {})
    data = task.config.get("data", {})
    if task.protocol == "tuned":
        protocol = task.config["protocol"]
        rate = (f"learning rate tuned per loss (**tuned protocol**: chosen from "
                f"{', '.join(_number(lr) for lr in protocol['lr_grid'])} on a "
                f"{_number(protocol['validation']['fraction'])} validation split of the training "
                f"data, {md_text(protocol['sweep_epochs'])} sweep epoch(s), sweep seed(s) "
                f"{md_text(protocol['sweep_seeds'])}{_scheduler_text(task, protocol)})")
    else:
        rate = f"lr {md_text(training.get('lr'))} for every loss (**fixed protocol**)"
    optimizer = md_text(training.get("optimizer", "adam"))
    if training.get("optimizer") == "sgd":
        optimizer += f" (momentum {md_text(training.get('momentum', 0.9))}"
        optimizer += ", Nesterov)" if training.get("nesterov") else ")"
    if training.get("optimizer_factory"):
        optimizer = md_code(training["optimizer_factory"])
    schedule = md_text(training.get("scheduler", "none"))
    if training.get("warmup_epochs"):
        schedule += f" after {md_text(training['warmup_epochs'])} warmup epoch(s)"
    extras = [f"schedule {schedule}"]
    if training.get("weight_decay"):
        extras.append(f"weight decay {_number(training['weight_decay'])}")
    if training.get("grad_clip"):
        extras.append(f"gradient norm clipped at {_number(training['grad_clip'])}")
    if training.get("train_step"):
        extras.append(f"train step {md_code(training['train_step'])}")
    sizes = _split_sizes(task)
    parts = [
        f"Data: {md_code(data.get('dataset'))} ({_format_options(data.get('options'))})"
        + (f", {sizes}" if sizes else "") + f"; model: {md_code(data.get('model'))}; {optimizer}, "
        f"{rate}, batch {md_text(training.get('batch_size'))}, {md_text(training.get('epochs'))} epochs, "
        f"{', '.join(extras)}. Scores are taken after the last epoch on the test split; "
        "differences are paired by seed (same initial weights and data order).",
        "",
    ]
    comparisons = task.comparisons(metric=metric)
    if comparisons:
        views = other_views_markdown(comparisons)
        everything = metrics_markdown(task)
        parts = ["**Decision** (ranked by the difference from cross-entropy):", "",
                 *decision_lines(comparisons), "", precision_line(comparisons), "", *parts,
                 statistics_markdown(comparisons, task.incomplete()), ""] + (
                     [views, ""] if views else []) + (
                     ["Every metric (mean over seeds; ▲ better, ▼ worse, = within ±1 point, "
                      "? undecided against cross-entropy, Holm-adjusted per metric):", "",
                      everything, ""] if everything else [])
    else:
        parts += ["No run of this task has finished yet.", ""]
    unfinished = [run for run in task.runs if run["status"] != "finished"]
    if unfinished:
        parts.append(
            f"{len(unfinished)} run(s) not finished (re-run the same command to resume): "
            + ", ".join(f"{md_text(r['loss'])}/seed {md_text(r['seed'])} ({md_text(r['status'])}, "
                        f"{len(r['epochs'])}/{md_text(r['planned_epochs'])} epochs)"
                        for r in unfinished[:12])
            + (" ..." if len(unfinished) > 12 else "")
        )
    total_time = sum(e["wall_time"] for run in task.runs for e in run["epochs"])
    parts.append(f"Training time recorded: {total_time:.1f} s over {len(task.runs)} run(s).")
    return "\n".join(parts)


def _split_sizes(task: TaskResults) -> str:
    """"train N, test M" from the sample record of the task's runs (empty if none)."""
    for run in task.runs:
        samples = run["config"].get("samples")
        if samples:
            return (f"train {md_text(samples['train']['count'])}, "
                    f"test {md_text(samples['eval']['count'])}")
    return ""


def _format_options(options: Any) -> str:
    """The data options (column names, sizes, a test file), escaped for Markdown."""
    if not options:
        return "all samples"
    if not isinstance(options, dict):
        return md_text(options)
    return ", ".join(md_text(f"{k}={v}") for k, v in options.items())


def _number(value: Any) -> str:
    """A number from a config in ``:g`` format; anything else escaped as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, "g")
    return md_text(value)


def _until_decided_note(store: ResultsStore, task: TaskResults) -> str:
    """The rounds of seeds that ``--until-decided`` ran for this task, if it did."""

    from losslab.experiments.classification.protocols.sequential import RULE

    record = store.meta.get_until_decided(task.runs[0]["task"])
    if record is None:
        return ""
    rounds = " → ".join(str(len(r["seeds"])) for r in record["rounds"])
    target = 100 * float(record["target"]["target_width"])
    return (f"Seeds per round: {rounds}; stopped: {md_text(record['stopped'])} (target "
            f"half-width {target:g} point(s), at most {md_text(record['target']['max_seeds'])} "
            f"seeds; {RULE}).\n\n")


def build_sections(db: str | Path | ResultsStore, out_dir: str | Path, *, order: int = 50,
                   metric: str = "accuracy") -> list[Section]:
    """One report section per task configuration in the database."""
    from losslab.experiments.classification.reporting.forest import forest_record, task_forest
    from losslab.experiments.classification.reporting.step_size import step_size_parts

    out = Path(out_dir)
    figures_dir = inside(out, "figures")  # refuses a 'figures' symlink that leads elsewhere
    store = db if isinstance(db, RunStore) else _open_existing(db)
    sections = []
    for index, task in enumerate(load_results(store)):
        stem = f"{_slug(task.label)}-{index}"
        forest = task_forest(task, figures_dir, f"forest-{stem}", metric=metric)
        figure = learning_curves(task, figures_dir, f"curves-{stem}")
        reliability = reliability_figure(task, figures_dir, f"reliability-{stem}")
        markdown, figures, data = step_size_parts(store, task, figures_dir, stem)
        rounds = _until_decided_note(store, task)
        sections.append(Section(
            key=f"classification-{index}-{_slug(task.label)}",
            title=f"Task {task.label}",
            markdown=(rounds + task_markdown(task, metric) + ("\n\n" + markdown if markdown else "")),
            figures=([figure] if figure else []) + ([reliability] if reliability else []) + figures,
            order=order + index, lead=[forest] if forest else [],
            data={"config": task.config, "protocol": task.protocol,
                  "metric": metric, "forest": forest_record(forest),
                  "comparisons": [c.to_dict() for c in task.comparisons(metric=metric)], **data},
        ))
    return sections


def write_report(db: str | Path, out_dir: str | Path, *, metric: str = "accuracy"
                 ) -> tuple[Path, Path]:
    """``losslab report``: Markdown + HTML report of every task in ``db``; returns both paths.
    ``metric`` is the score the verdicts read (the other metrics are tabled beside it)."""
    from losslab.experiments.classification.trial.metrics import check_metric
    from losslab.experiments.environment import environment_info

    check_metric(metric)
    check_folder(out_dir, option="out_dir")  # before any figure is drawn
    store = _open_existing(db)
    sections = build_sections(store, out_dir, metric=metric)
    report = Report(
        title=f"Loss comparison: {Path(db).name}",
        intro=(
            "Each task was trained once per (loss, seed). Each task opens with a forest plot of "
            "the differences from cross-entropy, then its decision: one ranked line per loss "
            "with its paired difference from cross-entropy over the same seeds and the "
            "interval the verdict reads. " + STATISTICS_NOTE + " Under the "
            "fixed protocol every loss uses the task's learning rate; under the tuned protocol "
            "each loss uses the rate that scored best on a validation split carved from the "
            "training data (the test split is never used to choose it)."
        ),
    )
    if not sections:
        report.add(Section("empty", "No runs", "The database holds no runs yet."))
    for section in sections:
        report.add(section)
    report.metadata = {"database": str(Path(db).resolve()), "report_environment": environment_info()}
    return report.write(out_dir, option="out_dir")
