"""Report parts that show the step-size effect of a loss comparison.

For a tuned comparison: the learning rate chosen per loss with the validation accuracy of
every rate of the sweep (re-derived from the sweep rows, and checked against the rate the
test runs recorded), and the sensitivity figure (validation accuracy against learning rate,
log x axis, one line per loss). For every comparison: the size of the gradient each loss
sends into the logits, ``|dLoss/dlogit|`` per sample (its mean and spread over the training
samples, per epoch, as the runner records them), as a figure and a short table.

Loss names and protocol settings come from the database: they are escaped where they enter
the Markdown (:func:`losslab._escape.md_text`) and the figures (:func:`losslab.plotting.plot_text`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from losslab._escape import md_text
from losslab.experiments.classification.storage import ResultsStore
from losslab.report import Figure


def _rate(lr: float) -> str:
    return f"{lr:g}"


def tuned_selections(store: ResultsStore, task: Any) -> dict[str, Any]:
    """``{loss: Selection}`` re-derived from the sweep rows of a tuned comparison."""
    from losslab.experiments.classification.protocols.tuning import derive_selection

    protocol = task.config["protocol"]
    return {loss: derive_selection(store, task.config, protocol, loss) for loss in task.losses}


def selection_markdown(task: Any, selections: dict[str, Any]) -> str:
    """The chosen rate per loss and the validation accuracy at every rate of the grid."""
    protocol = task.config["protocol"]
    # The protocol's grid plus every rate the edge rule added for some loss.
    grid = sorted({float(lr) for lr in protocol["lr_grid"]}
                  | {lr for selection in selections.values() for lr in selection.grid})
    recorded = task.learning_rates()
    lines = [
        "| loss | chosen lr | " + " | ".join(f"val. acc. @ {_rate(lr)}" for lr in grid) + " |",
        "|---|---|" + "---|" * len(grid),
    ]
    mismatched = []
    for loss, selection in selections.items():
        cells = []
        for lr in grid:
            if lr in selection.diverged:
                cell = "diverged"
            elif lr in selection.scores:
                cell = f"{selection.accuracy(lr):.4f}"
            else:
                cell = "–"
            cells.append(f"**{cell}**" if lr == selection.lr else cell)
        chosen = "not chosen yet" if selection.lr is None else _rate(selection.lr)
        lines.append(f"| {md_text(loss)} | {chosen} | " + " | ".join(cells) + " |")
        if selection.lr is not None and loss in recorded and recorded[loss] != selection.lr:
            mismatched.append(f"{md_text(loss)} (test runs used {recorded[loss]:g}, sweep rows give "
                              f"{selection.lr:g})")
    text = [
        f"Learning rate chosen per loss ({md_text(protocol['criterion'])}); validation accuracy (mean "
        f"over the sweep seeds {md_text(', '.join(str(seed) for seed in protocol['sweep_seeds']))}) "
        f"after {md_text(protocol['sweep_epochs'])} sweep epoch(s) on a "
        f"{md_text(format(float(protocol['validation']['fraction']), 'g'))} stratified validation "
        f"split (seed {md_text(protocol['validation']['seed'])}) of the training "
        "data. Bold: the chosen rate.",
        "",
        "\n".join(lines),
    ]
    grown = {loss: selection.added_rates for loss, selection in selections.items()
             if selection.added_rates}
    if grown:
        limit = protocol.get("lr_extension", {}).get("max_decades_per_side", 0)
        text += ["", "Grid extended where the best rate sat at an edge (a decade at a time, at most "
                 f"{md_text(limit)} per side): " + "; ".join(
                     f"{md_text(loss)} +{', '.join(_rate(lr) for lr in rates)}" for loss, rates in grown.items())
                 + "."]
    edge = [loss for loss, selection in selections.items()
            if selection.lr is not None and selection.at_edge is not None]
    if edge:
        text += ["", f"Still at the edge of the grid after extending it: {md_text(', '.join(edge))} — the "
                 "best rate may lie beyond it (move the grid with --lr-grid). A short sweep budget "
                 "also favours larger rates, which learn faster early."]
    if mismatched:
        text += ["", "Warning: the sweep rows now select a different rate than the test runs used "
                 "(sweep rows changed after the test ran): " + "; ".join(mismatched)]
    return "\n".join(text)


def seed_tables_markdown(selections: dict[str, Any]) -> str:
    """Per loss, a compact table of the sweep: every rate's mean, spread (sd), standard error
    and each seed's validation accuracy, and what the selection rule made of the rate."""
    parts = []
    for loss, selection in selections.items():
        choice = selection.choice
        if choice is None or not choice.rates:
            continue
        seeds = next(iter(choice.rates.values())).seeds
        lines = [f"| {md_text(loss)}: lr | mean | sd | SE | " + " | ".join(f"seed {seed}" for seed in seeds)
                 + " | rule |", "|---|---:|---:|---:|" + "---:|" * len(seeds) + ":---|"]

        def number(value: float) -> str:
            return "–" if math.isnan(value) else f"{value:.4f}"

        for lr, record in choice.rates.items():
            if lr == choice.lr:
                status = "**chosen**" + (f" ({choice.fallback})" if choice.fallback else "")
            elif record.excluded is not None:
                status = f"dropped: {record.excluded}"
            elif lr in choice.candidates:
                status = "within one SE of the best mean, larger spread or rate"
            else:
                status = "below the best mean by more than one SE"
            rate = f"**{_rate(lr)}**" if lr == choice.lr else _rate(lr)
            scores = ["diverged" if score is None else f"{score:.4f}" for score in record.scores]
            lines.append(f"| {rate} | {number(record.mean)} | {number(record.sd)} | "
                         f"{number(record.se)} | " + " | ".join(scores) + f" | {status} |")
        parts.append("\n".join(lines))
    if not parts:
        return ""
    return ("Every rate on every sweep seed (validation accuracy; mean, sd and standard error "
            "over the seeds; what the selection rule made of the rate):\n\n"
            + "\n\n".join(parts))


def sensitivity_figure(task: Any, selections: dict[str, Any], out_dir: str | Path, stem: str
                       ) -> Figure | None:
    """Validation accuracy against learning rate (log x), one line per loss, chosen rate marked."""
    from losslab.plotting import color_for, plot_text, pyplot, save_figure

    if not any(selection.scores for selection in selections.values()):
        return None
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    for index, (loss, selection) in enumerate(selections.items()):
        rates = [lr for lr in selection.grid if lr in selection.scores]
        if not rates:
            continue
        color = color_for(loss, index)
        axis.plot(rates, [selection.accuracy(lr) for lr in rates], color=color, marker="o",
                  markersize=4, label=plot_text(loss))
        if selection.lr is not None:
            axis.plot([selection.lr], [selection.accuracy(selection.lr)], color=color, marker="*",
                      markersize=13, markeredgecolor="black", linestyle="none")
        diverged = [lr for lr in selection.diverged if lr in selection.scores]
        if diverged:
            axis.plot(diverged, [0.0] * len(diverged), color=color, marker="x", linestyle="none")
    axis.set_xscale("log")
    axis.set_xlabel("learning rate (Adam)")
    axis.set_ylabel("validation accuracy")
    axis.set_title(plot_text(f"{task.label}: learning-rate sensitivity"))
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    caption = (f"{task.label}: validation accuracy after the sweep against the learning rate (log "
               "scale), one line per loss; the star marks the rate each loss was tested at "
               "(x: the loss diverged at that rate).")
    return save_figure(fig, out_dir, stem, caption)


def gradient_summary(task: Any) -> dict[str, dict[str, Any]]:
    """Per loss: mean over seeds of |dLoss/dlogit|'s per-epoch mean and spread."""
    by_loss: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for run in task.runs:
        if run["epochs"]:
            by_loss[run["loss"]].append(run["epochs"])
    rates = task.learning_rates()
    summary = {}
    for loss in task.losses:
        if loss not in by_loss:
            continue
        length = max(len(epochs) for epochs in by_loss[loss])
        mean, spread = [], []
        for e in range(length):
            values = [epochs[e] for epochs in by_loss[loss] if len(epochs) > e]
            mean.append(sum(v["grad_mean"] for v in values) / len(values))
            spread.append(sum(v["grad_sd"] for v in values) / len(values))
        summary[loss] = {"lr": rates.get(loss), "runs": len(by_loss[loss]), "grad_mean": mean,
                         "grad_sd": spread}
    return summary


def gradient_markdown(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| loss | lr | mean \\|dL/dz\\| epoch 1 | sd epoch 1 | mean last epoch | sd last epoch | "
             "last / first |", "|---|---|---|---|---|---|---|"]
    for loss, row in summary.items():
        first, last = row["grad_mean"][0], row["grad_mean"][-1]
        ratio = last / first if first > 0 else math.nan
        lines.append(f"| {md_text(loss)} | {_rate(row['lr']) if row['lr'] is not None else '–'} | {first:.4g} | "
                     f"{row['grad_sd'][0]:.4g} | {last:.4g} | {row['grad_sd'][-1]:.4g} | {ratio:.3g} |")
    return "\n".join(lines)


def gradient_figure(task: Any, summary: dict[str, dict[str, Any]], out_dir: str | Path, stem: str
                    ) -> Figure | None:
    from matplotlib.ticker import MaxNLocator

    from losslab.plotting import color_for, plot_text, pyplot, save_figure

    if not summary:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for index, (loss, row) in enumerate(summary.items()):
        color = color_for(loss, index)
        epochs = list(range(1, len(row["grad_mean"]) + 1))
        label = plot_text(f"{loss} (lr {_rate(row['lr'])})" if row["lr"] is not None else loss)
        axes[0].plot(epochs, row["grad_mean"], color=color, marker="o", markersize=3, label=label)
        axes[1].plot(epochs, row["grad_sd"], color=color, marker="o", markersize=3, label=label)
    for axis, title in zip(axes, ("mean of |dLoss/dlogit| over training samples",
                                  "spread (sd) of |dLoss/dlogit| over training samples")):
        axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_title(title, fontsize=10)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(plot_text(f"{task.label}: gradient size per loss"))
    caption = (f"{task.label}: per-sample |dLoss/dlogit| (mean over classes) during each training "
               "epoch, its mean (left) and spread (right) over the training samples, averaged over "
               "seeds (log scale).")
    return save_figure(fig, out_dir, stem, caption)


GRADIENT_NOTE = (
    "Gradient size per loss (what the runner records each epoch: every training sample's "
    "|dLoss/dlogit|, averaged over classes; mean and sd over the samples, then averaged over "
    "seeds). A loss with larger or more spread-out gradients on the same model takes "
    "different steps at the same learning rate: under plain SGD the step is the rate times "
    "the gradient; Adam divides out the overall scale, so the losses then differ mainly in "
    "how the gradient is shared between easy and hard samples and how fast it shrinks as "
    "training goes on (the last / first column)."
)


def step_size_parts(store: ResultsStore, task: Any, out_dir: str | Path, stem: str, *,
                    explain: bool = True) -> tuple[str, list[Figure], dict[str, Any]]:
    """(markdown, figures, data) of the step-size parts of one comparison's report section.

    ``explain=False`` leaves out the paragraph explaining the gradient table (when an earlier
    part of the same page already has it).
    """
    parts, figures, data = [], [], {}
    if task.protocol == "tuned":
        selections = tuned_selections(store, task)
        parts += [selection_markdown(task, selections), ""]
        seed_tables = seed_tables_markdown(selections)
        if seed_tables:
            parts += [seed_tables, ""]
        from losslab.experiments.classification.reporting.rates import (
            across_rates_markdown,
            summary_statement,
            table_across_rates,
        )

        verdicts = table_across_rates(selections)
        if verdicts:
            parts += [across_rates_markdown(verdicts), ""]
            data["across_rates"] = {loss: verdict.to_dict() for loss, verdict in verdicts.items()}
            data["across_rates_statement"] = summary_statement(verdicts)
        figure = sensitivity_figure(task, selections, out_dir, f"sensitivity-{stem}")
        if figure is not None:
            figures.append(figure)
        data["selections"] = {loss: selection.to_dict() for loss, selection in selections.items()}
    summary = gradient_summary(task)
    if summary:
        parts += ([GRADIENT_NOTE, ""] if explain else ["Gradient size per loss:", ""])
        parts += [gradient_markdown(summary)]
        figure = gradient_figure(task, summary, out_dir, f"gradients-{stem}")
        if figure is not None:
            figures.append(figure)
        data["gradients"] = summary
    return "\n".join(parts).strip(), figures, data
