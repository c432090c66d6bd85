"""The classification section of ``losslab reproduce``: the paper's Tables 2–5 beside ours.

The paper trained each model once per loss on CIFAR-10, Imagenette, CFPB complaints and IMDB.
Those data sets (and ImageNet weights, BERT) cannot be fetched here, so each table is re-run
on a stand-in that ships through the package registries, over several seeds, and compared
with paired statistics. The results database lives in the output folder, so an interrupted
``--preset full`` resumes where it stopped.

Protocols (see :mod:`.tuning`): ``--preset full`` tunes each loss's learning rate on a
validation split before the multi-seed test (the ``tuned`` protocol), for every table. The
quick preset keeps the ``fixed`` protocol (every loss at the task's rate) and adds one small
sweep, on the digits stand-in of Table 3 only (about 20 s on 2 cores), so both protocols
appear side by side within the quick budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from losslab.report import Section

# The paper's loss names (its tables' rows) and ours.
PAPER_ROWS: tuple[tuple[str, str], ...] = (
    ("cross_entropy", "CE / BCE"), ("l", "L"), ("m", "M"), ("full_l", "full L"), ("full_m", "full M"),
)


@dataclass(frozen=True)
class TableSpec:
    """One paper table and the stand-in task that re-runs it, per preset."""

    number: int
    paper_setting: str
    paper: dict[str, float]
    quick_task: str
    full_task: str
    differences: str
    quick_overrides: dict[str, Any] = field(default_factory=dict)
    quick_model_options: dict[str, Any] = field(default_factory=dict)
    full_overrides: dict[str, Any] = field(default_factory=dict)
    quick_tuned: bool = False  # the quick preset also runs the tuned protocol on this table

    def protocols(self, quick: bool) -> tuple[str, ...]:
        """The protocols this table runs under a preset (full: tuned only)."""
        if not quick:
            return ("tuned",)
        return ("fixed", "tuned") if self.quick_tuned else ("fixed",)


TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        2, "VGG-19 trained from scratch on CIFAR-10",
        {"cross_entropy": 0.5668, "l": 0.5684, "m": 0.5666, "full_l": 0.571, "full_m": 0.5668},
        quick_task="fashion-mnist-cnn", full_task="fashion-mnist-cnn",
        differences=("Fashion-MNIST (28×28 grey, 10 classes) instead of CIFAR-10 (32×32 colour); "
                     "a small VGG-style CNN (2 blocks) instead of VGG-19. CIFAR-10 itself runs with "
                     "`losslab compare --task cifar10-vgg --path cifar-10-batches-py`."),
        # Small batches: BatchNorm's running statistics need enough steps to be usable.
        quick_overrides={"max_train": 2000, "max_test": 1000, "epochs": 3, "batch_size": 32},
    ),
    TableSpec(
        3, "VGG-19 with ImageNet weights, fine-tuned on Imagenette",
        {"cross_entropy": 0.74, "l": 0.77, "m": 0.78, "full_l": 0.78, "full_m": 0.76},
        quick_task="digits-mlp", full_task="mnist-cnn",
        differences=("no pretrained VGG-19 or ImageNet data here: small digit images (quick: "
                     "scikit-learn digits with an MLP; full: the 5k MNIST subset with a small CNN) "
                     "trained from scratch. Imagenette itself runs with `losslab compare --task "
                     "imagenette-vgg --path imagenette2` (from scratch, no pretrained weights)."),
        quick_overrides={"epochs": 12},
        quick_tuned=True,
    ),
    TableSpec(
        4, "embedding + LSTM(100) on the CFPB consumer complaints (10 products)",
        {"cross_entropy": 0.822, "l": 0.843, "m": 0.827, "full_l": 0.839, "full_m": 0.825},
        quick_task="clothing-reviews-lstm", full_task="clothing-reviews-lstm",
        differences=("women's clothing reviews rated 1–5 (5 imbalanced classes, short texts) "
                     "instead of CFPB complaints (10 products); the same embedding + spatial "
                     "dropout + LSTM(100) model. `--task newsgroups-lstm` is a 20-topic alternative."),
        quick_overrides={"max_train": 800, "max_test": 400, "epochs": 2},
        quick_model_options={"max_len": 48},
        full_overrides={"max_train": 6000, "max_test": 2000},
    ),
    TableSpec(
        5, "small BERT fine-tuned on IMDB reviews (binary)",
        {"cross_entropy": 0.8551, "l": 0.8557, "m": 0.8539, "full_l": 0.8577, "full_m": 0.8555},
        quick_task="rotten-tomatoes-minilm", full_task="rotten-tomatoes-minilm",
        differences=("Rotten Tomatoes critic snippets (fresh/rotten) instead of IMDB reviews; a "
                     "frozen all-MiniLM-L6-v2 sentence encoder with a trained MLP head instead of "
                     "fine-tuning BERT; a 2-way softmax instead of one sigmoid output."),
        quick_overrides={"max_train": 800, "max_test": 400, "epochs": 8},
    ),
)

QUICK_SEEDS = 3
FULL_SEEDS = 5
DEFAULT_POINTS = 5


def _planned(spec: TableSpec, quick: bool, cache_dir: str) -> Any:
    from losslab.experiments.classification.tasks import planned_task

    return planned_task(
        spec.quick_task if quick else spec.full_task, preset="quick" if quick else "full",
        overrides=spec.quick_overrides if quick else spec.full_overrides,
        model_options=spec.quick_model_options if quick else None,
        cache_dir=cache_dir,
    )


def _ours(comparison: Any) -> str:
    s = comparison.summary
    sd = "–" if math.isnan(s.sd) else f"{s.sd:.4f}"
    return f"{s.mean:.4f} ± {sd} (n={s.n})"


def _at_prior(group: Any, majority: float) -> bool:
    """Every finished run's final accuracy within half a point of the majority-class rate."""
    finals = [run["epochs"][-1]["eval_accuracy"] for run in group.finished]
    return bool(finals) and all(abs(value - majority) < 0.005 for value in finals)


def _table_markdown(spec: TableSpec, task_result: Any) -> tuple[str, dict[str, Any]]:
    comparisons = {c.loss: c for c in task_result.comparisons()} if task_result else {}
    paper_base = spec.paper["cross_entropy"]
    lines = [
        "| loss | paper (1 run) | paper Δ vs CE (points) | ours: mean ± sd | ours: Δ vs CE (points, 95% CI) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    data: dict[str, Any] = {"paper": spec.paper, "ours": {}}
    for loss, paper_name in PAPER_ROWS:
        paper_value = spec.paper[loss]
        paper_delta = "" if loss == "cross_entropy" else f"{100 * (paper_value - paper_base):+.2f}"
        row = comparisons.get(loss)
        if row is None:
            lines.append(f"| {paper_name} | {paper_value:.4f} | {paper_delta} | not run | | |")
            continue
        data["ours"][loss] = row.to_dict()
        if row.paired is None:
            delta = ""
        elif row.paired.n < 2:
            delta = f"{100 * row.paired.mean:+.2f} (n=1)"
        else:
            delta = (f"{100 * row.paired.mean:+.2f} [{100 * row.paired.ci_low:+.2f}, "
                     f"{100 * row.paired.ci_high:+.2f}]")
        lines.append(f"| {paper_name} | {paper_value:.4f} | {paper_delta} | {_ours(row)} | {delta} | "
                     f"{row.verdict} |")
    return "\n".join(lines), data


def build_section(context: Any, tables: tuple[TableSpec, ...] = TABLES) -> Section:
    """Run (or resume) the stand-in grid for Tables 2–5 and write their comparison.

    ``context.options["classification_workers"]`` sets the number of training processes
    (quick: 2 single-threaded workers; full: 1 worker with all cores).
    """
    from losslab.data import data_dir
    from losslab.experiments.classification.api import PAPER_LOSSES
    from losslab.experiments.classification.report import group_key, learning_curves, load_results
    from losslab.experiments.classification.runner import run_grid
    from losslab.experiments.classification.step_size import step_size_parts
    from losslab.experiments.classification.store import ResultsStore, config_hash
    from losslab.experiments.classification.tuning import TuningSettings, run_tuned

    quick = context.quick
    out = context.subdir("classification")
    db = out / "results.sqlite"
    seeds = [context.seed + i for i in range(QUICK_SEEDS if quick else FULL_SEEDS)]
    cache_dir = str(data_dir() / "cache" / "minilm")
    planned, skipped, load_times = [], [], {}
    for spec in tables:
        started = time.perf_counter()
        try:
            task = _planned(spec, quick, cache_dir)
            task.source.prepare("test")  # load now (memoised): a missing data set is skipped
        except (FileNotFoundError, ImportError, OSError, ValueError) as error:
            skipped.append((spec, f"{type(error).__name__}: {error}"))
            context.log(f"[classification] Table {spec.number}: skipped ({error})")
            continue
        load_times[spec.number] = time.perf_counter() - started
        planned.append((spec, task))
    # Two single-threaded workers use both cores of a small machine with no thread contention.
    workers = int(context.options.get("classification_workers", 2 if quick else 1))
    threads = 1 if quick else None
    started = time.perf_counter()
    grid = None
    fixed = [(spec, task) for spec, task in planned if "fixed" in spec.protocols(quick)]
    if fixed:
        grid = run_grid([task for _, task in fixed], list(PAPER_LOSSES), seeds, db=db,
                        workers=workers, threads=threads, progress=True, log=context.log)
    grid_time = time.perf_counter() - started
    # The tuned protocol: one seeded validation split and one sweep seed, both the context's.
    tuning = TuningSettings(split_seed=context.seed, sweep_seeds=(context.seed,))
    tuned_rows: dict[int, Any] = {}
    sweep_time, sweep_grid, tuned_failed = 0.0, None, []
    tuned_specs = [(spec, task) for spec, task in planned if "tuned" in spec.protocols(quick)]
    if tuned_specs:
        started = time.perf_counter()
        tuned = run_tuned([task for _, task in tuned_specs], list(PAPER_LOSSES), seeds, db=db,
                          tuning=tuning, workers=workers, threads=threads, progress=True,
                          log=context.log)
        sweep_time = time.perf_counter() - started
        sweep_grid, tuned_failed = tuned.sweep, tuned.failed
        for spec, task in tuned_specs:
            tuned_rows[spec.number] = next((row for row in tuned.tasks if row.label == task.label), None)

    store = ResultsStore(db)
    groups = {(group.runs[0]["task"], config_hash(group.config)): group for group in load_results(store)}
    parts = [
        "The paper trains each model **once** per loss and reports the test accuracy; a "
        "difference of a fraction of a point between single runs cannot be told from seed "
        "noise. Here every loss is trained with the same "
        f"{len(seeds)} seeds (same initial weights and data order per seed) on a stand-in data "
        "set that ships through the package registries, and each loss is compared with "
        "cross-entropy by the paired difference over seeds (95% Student-t interval; verdicts use "
        "the paired t-test with Holm's adjustment over the four losses). The paper's binary "
        "tasks used BCE on one sigmoid output; ours use a 2-way softmax (the same loss for CE, M "
        "and L; the full variants count the same term twice).",
        "",
        f"Preset **{context.preset}**: seeds {seeds}; results database `{db.name}` in this "
        "folder (re-running resumes it).",
        "",
        "A loss that scales its gradients also changes the effective step size, so one shared "
        "learning rate can favour one loss for reasons unrelated to its objective. Under the "
        "**tuned** protocol each loss is first swept over "
        f"{DEFAULT_POINTS} learning rates spanning 2 decades around the task's rate "
        f"({', '.join(f'{lr:g}' for lr in tuning.grid_for(1e-3))} for a task at 1e-3), each "
        f"trained for half the task's epochs on {1 - tuning.val_fraction:.0%} of the training "
        f"data and scored on the other {tuning.val_fraction:.0%} (a stratified split with seed "
        f"{context.seed}; the test split is never read), and then tested over the seeds at the "
        "rate with the most correct validation predictions (ties to the smaller rate). "
        + ("The quick preset keeps the **fixed** protocol (the task's rate for every loss) and "
           "adds the tuned protocol on Table 3's small digits stand-in only (about 20 s), to stay "
           "within its time budget; `--preset full` tunes every table."
           if quick else "This full preset tunes every table."),
        "",
    ]
    figures, data = [], {"seeds": seeds, "tables": {}, "skipped": {}}
    for spec in tables:
        task_name = spec.quick_task if quick else spec.full_task
        parts.append(f"### Table {spec.number}: {spec.paper_setting}")
        parts.append("")
        skip = next((reason for s, reason in skipped if s is spec), None)
        if skip is not None:
            parts += [f"Stand-in `{task_name}` could not be loaded, so this table was not re-run: "
                      f"{skip}", ""]
            data["skipped"][spec.number] = skip
            continue
        task = next(t for s, t in planned if s is spec)
        settings = task.settings
        options = task.source.options
        parts += [
            f"**Stand-in:** `{task_name}` — {spec.differences}",
            "",
            f"Training: Adam lr {settings.lr}"
            + (" (the tuned protocol's grid is centred on it)" if "tuned" in spec.protocols(quick) else "")
            + f", batch {settings.batch_size}, {settings.epochs} epochs; "
            f"data {', '.join(f'{k}={v}' for k, v in options.items()) or 'full splits'}.",
            "",
        ]
        table_data: dict[str, Any] = {}
        shown = []
        for protocol in spec.protocols(quick):
            row = task if protocol == "fixed" else tuned_rows.get(spec.number)
            protocol_group = None if row is None else groups.get(group_key(row))
            markdown, protocol_data = _table_markdown(spec, protocol_group)
            title = ("Fixed protocol (every loss at the task's learning rate)" if protocol == "fixed"
                     else "Tuned protocol (each loss at its own learning rate, chosen on a "
                          "validation split)")
            parts += [f"**{title}:**", "", markdown, ""]
            if protocol_group is not None:
                extra, extra_figures, extra_data = step_size_parts(
                    store, protocol_group, context.subdir("classification/figures"),
                    f"table{spec.number}-{task_name}-{protocol}", explain=not shown)
                if extra:
                    parts += [extra, ""]
                for figure in extra_figures:
                    figure.caption = f"Table {spec.number} stand-in ({task_name}), {protocol}: " + figure.caption
                figures.extend(extra_figures)
                protocol_data.update(extra_data)
                shown.append(protocol_group)
            if len(spec.protocols(quick)) == 1:
                table_data.update(protocol_data)
            table_data[protocol] = protocol_data
        group = shown[0] if shown else None
        # The floor any model must beat: predicting the most frequent class of the test split.
        labels = task.source.prepare("test").y_eval
        majority = float(labels.bincount().max()) / max(1, labels.numel())
        table_data["majority_class_accuracy"] = majority
        parts += [f"Majority-class accuracy on this test split: {majority:.4f}"
                  + (" — the models have not learned beyond the class prior in this budget, so "
                     "this table says nothing about the losses (run `--preset full`)."
                     if group is not None and _at_prior(group, majority) else "."), ""]
        if group is not None:
            wall = sum(e["wall_time"] for shown_group in shown for run in shown_group.runs
                       for e in run["epochs"])
            parts += [f"Training time recorded for this table's test runs: {wall:.1f} s (data "
                      f"loading {load_times.get(spec.number, 0.0):.1f} s).", ""]
            for shown_group in shown:
                protocol = shown_group.protocol
                figure = learning_curves(shown_group, context.subdir("classification/figures"),
                                         f"table{spec.number}-{task_name}"
                                         + ("" if protocol == "fixed" else f"-{protocol}"))
                if figure is not None:
                    figure.caption = (f"Table {spec.number} stand-in ({task_name}), {protocol} "
                                      "protocol: " + figure.caption)
                    figures.append(figure)
        data["tables"][spec.number] = {"task": task_name, "config": task.config(),
                                       "protocols": list(spec.protocols(quick)), **table_data}
    store.close()
    failed = (list(grid.failed) if grid else []) + tuned_failed
    summary = f"Grid wall time: {grid_time:.1f} s" + (
        f" ({grid.trained} runs trained, {grid.skipped} already in the database"
        f"{', ' + str(len(grid.failed)) + ' failed' if grid.failed else ''})." if grid else ".")
    if sweep_grid is not None:
        summary += (f" Tuned protocol (sweep, selection and test runs): {sweep_time:.1f} s "
                    f"({sweep_grid.trained} sweep runs trained, {sweep_grid.skipped} already in the "
                    "database).")
    parts.append(summary)
    if failed:
        parts += ["", "Failed runs (finished epochs kept; re-run to resume):", ""]
        parts += [f"- {line}" for line in failed]
    context.log(f"[classification] grid {grid_time:.1f} s, tuned protocol {sweep_time:.1f} s")
    return Section(
        key="classification",
        title="Classification: the paper's Tables 2–5 on stand-in data",
        markdown="\n".join(parts),
        figures=figures,
        order=50,
        data=data,
    )
