"""The classification section of ``losslab reproduce``: the paper's Tables 2–5 beside ours.

The paper trained each model once per loss on CIFAR-10, Imagenette, CFPB complaints and IMDB.
Those data sets (and ImageNet weights, BERT) cannot be fetched here, so each table is re-run
on a stand-in that ships through the package registries, over several seeds, and compared
with paired statistics. The results database lives in the output folder, so an interrupted
run resumes where it stopped.

Presets (each table's :class:`StandIn` per preset):

- ``quick`` (the demo, minutes): every table on a small stand-in; the cheap ones (digits,
  MiniLM heads) add seeds until every paired 95% half-width is at most 1.5 points, so the
  demo answers conclusively where seeds are cheap, and spends little where they are not.
- ``standard`` (the published reproduction, about an hour with 2 workers): every table under
  the tuned protocol, seeds added until every half-width is at most 1.0 point.
- ``full`` (hours): larger stand-ins, tuned, the same precision target.

Protocols (see :mod:`.tuning`): ``fixed`` trains every loss at the task's learning rate;
``tuned`` first sweeps each loss's rate on a validation split carved from the training data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from losslab._escape import md_text
from losslab.report import Figure, Section

# The paper's loss names (its tables' rows) and ours.
PAPER_ROWS: tuple[tuple[str, str], ...] = (
    ("cross_entropy", "CE / BCE"), ("l", "L"), ("m", "M"), ("full_l", "full L"), ("full_m", "full M"),
)
PRESETS: tuple[str, ...] = ("quick", "standard", "full")
# A run within this many accuracy units of the majority-class rate has not learned.
AT_PRIOR_TOLERANCE = 0.005


@dataclass(frozen=True)
class StandIn:
    """How one preset re-runs a paper table.

    Attributes:
        task: the registered task (``losslab compare --list-tasks``).
        overrides: training and size settings (``epochs``, ``max_train``, ...).
        model_options: model settings changed from the task's.
        protocols: ``("fixed",)``, ``("tuned",)`` or both.
        seeds: seeds of the first round (every round, without ``target_width``).
        target_width: add seeds until every paired 95% half-width is at most this many
            accuracy points (None: a fixed number of seeds).
        max_seeds: the most seeds per loss when adding seeds.
        sweep_seeds: seeds of the tuned protocol's sweep (each rate on every one of them,
            from the run's base seed up).
    """

    task: str
    overrides: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    protocols: tuple[str, ...] = ("fixed",)
    seeds: int = 3
    target_width: float | None = None
    max_seeds: int = 20
    sweep_seeds: int = 3


@dataclass(frozen=True)
class TableSpec:
    """One paper table and the stand-ins that re-run it, per preset.

    A table may be re-run by more than one stand-in: each is its own ``TableSpec`` with the
    table's number and a ``part`` (a short plain label such as ``"from scratch"``) that names it
    in titles, file names and the JSON key (``"3"``, ``"3-from-scratch"``); a part need not run
    in every preset.
    """

    number: int
    paper_setting: str
    paper: dict[str, float]
    differences: str
    stand_ins: dict[str, StandIn]
    part: str = ""

    @property
    def key(self) -> str:
        """The table's key in the JSON, section keys and figure names: ``"3"`` or
        ``"3-from-scratch"``."""
        return str(self.number) + ("-" + self.part.replace(" ", "-") if self.part else "")

    @property
    def label(self) -> str:
        """How a reader sees the table's name: ``"3"`` or ``"3 (from scratch)"``."""
        return str(self.number) + (f" ({self.part})" if self.part else "")

    def runs_in(self, preset: str) -> bool:
        return preset in self.stand_ins

    def stand_in(self, preset: str) -> StandIn:
        if preset not in self.stand_ins:
            raise ValueError(f"preset: expected one of {', '.join(self.stand_ins)}, got {preset!r}")
        return self.stand_ins[preset]


_TEXT_HEAD = "a frozen all-MiniLM-L6-v2 sentence encoder with a trained MLP head"
_TABLE3_PAPER = {"cross_entropy": 0.74, "l": 0.77, "m": 0.78, "full_l": 0.78, "full_m": 0.76}

TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        2, "VGG-19 trained from scratch on CIFAR-10",
        {"cross_entropy": 0.5668, "l": 0.5684, "m": 0.5666, "full_l": 0.571, "full_m": 0.5668},
        differences=("Fashion-MNIST (28×28 grey, 10 classes) instead of CIFAR-10 (32×32 colour); "
                     "a small VGG-style CNN (two blocks of one 3×3 convolution with batch norm, 32 "
                     "and 64 channels, then a flattened dense head) instead of VGG-19. CIFAR-10 "
                     "itself runs with `losslab compare --task cifar10-vgg --path "
                     "cifar-10-batches-py`."),
        stand_ins={
            "quick": StandIn("fashion-mnist-cnn", {"max_train": 1500, "max_test": 2000, "epochs": 3,
                                                   "batch_size": 32}, seeds=3),
            "standard": StandIn("fashion-mnist-cnn", {"max_train": 4000, "max_test": 10000,
                                                      "epochs": 3, "batch_size": 32},
                                protocols=("tuned",), seeds=4, target_width=1.0, max_seeds=16),
            "full": StandIn("fashion-mnist-cnn", {}, protocols=("tuned",), seeds=5,
                            target_width=1.0, max_seeds=20),
        },
    ),
    TableSpec(
        3, "VGG-19 with ImageNet weights, fine-tuned on Imagenette",
        _TABLE3_PAPER,
        differences=("no ImageNet weights or Imagenette here, so the transfer is kept at CPU size: "
                     "a small VGG-style CNN (two blocks of one 3×3 convolution with batch norm, 16 "
                     "and 32 channels) is pretrained once with cross-entropy on Fashion-MNIST's 60k "
                     "training images (2 epochs, Adam 1e-3, seed 0, cached in the data folder by "
                     "checksum), then every loss fine-tunes that body with a fresh head on the 5k "
                     "MNIST subset at a small rate (Adam, 3e-4 before tuning), 3 epochs. The seed "
                     "changes the head's initial weights and the data order, never the "
                     "pretraining. Every preset fine-tunes on 1,000 of the 4,000 training images "
                     "(and tests on all 1,000 test images): with all 4,000 the model from random "
                     "initialisation catches up within 3 epochs (the pretrained body was worth "
                     "+0.67 points [-0.16, +1.49] there), so the body would no longer matter. "
                     "It also runs alone as `--task mnist-finetune`; Imagenette itself runs with "
                     "`losslab compare --task imagenette-vgg --path imagenette2` (from scratch)."),
        stand_ins={
            "quick": StandIn("mnist-finetune", {"max_train": 1000, "max_test": 1000, "epochs": 3},
                             protocols=("tuned",), seeds=5, target_width=1.5, max_seeds=10),
            # The demo's configuration: its runs are the published run's first seeds.
            "standard": StandIn("mnist-finetune", {"max_train": 1000, "max_test": 1000,
                                                   "epochs": 3},
                                protocols=("tuned",), seeds=6, target_width=1.0, max_seeds=40),
            "full": StandIn("mnist-finetune", {"max_train": 1000, "max_test": 1000, "epochs": 3},
                            protocols=("tuned",), seeds=6, target_width=1.0, max_seeds=40),
        },
    ),
    TableSpec(
        3, "VGG-19 with ImageNet weights, fine-tuned on Imagenette",
        _TABLE3_PAPER,
        differences=("the earlier stand-in, kept as a second, labelled task: an MLP trained from "
                     "scratch on scikit-learn's 8×8 digits (15 epochs). It says nothing about "
                     "fine-tuning a pretrained network (the transfer stand-in above does); it "
                     "shows how the same losses fare when the true class's probability starts "
                     "small, on a task where seeds are cheap. Standard preset only."),
        stand_ins={
            # 15 epochs: a shorter sweep budget favours larger rates (with 12 epochs
            # cross-entropy chose 0.0316 and tested lower, reversing the verdict). Not in the
            # demo, whose Table 3 is the transfer stand-in: the demo stays within minutes.
            "standard": StandIn("digits-mlp", {"epochs": 15}, protocols=("tuned",), seeds=6,
                                target_width=1.0, max_seeds=40),
        },
        part="from scratch",
    ),
    TableSpec(
        4, "embedding + LSTM(100) on the CFPB consumer complaints (10 products)",
        {"cross_entropy": 0.822, "l": 0.843, "m": 0.827, "full_l": 0.839, "full_m": 0.825},
        differences=("women's clothing reviews classified by the product department they are "
                     "about (Tops, Dresses, Bottoms, Intimate, Jackets, Trend: 6 imbalanced "
                     "classes) instead of CFPB complaints classified by product (10 classes). "
                     "Quick and standard: " + _TEXT_HEAD + " (an embedding + LSTM(100) trained "
                     "from scratch learns too slowly on a CPU: rating prediction stayed at 0.569 "
                     "against a 0.555 majority after 3 epochs on 4,000 reviews); full: the paper's "
                     "embedding + spatial dropout + LSTM(100) model on the 1–5 ratings. `--task "
                     "newsgroups-lstm` is a 20-topic alternative."),
        stand_ins={
            "quick": StandIn("clothing-products-minilm", {"max_train": 1000, "max_test": 1000,
                                                          "epochs": 8},
                             seeds=5, target_width=1.5, max_seeds=20),
            "standard": StandIn("clothing-products-minilm", {"max_train": 6000, "max_test": 4000,
                                                             "epochs": 10},
                                protocols=("tuned",), seeds=6, target_width=1.0, max_seeds=40),
            "full": StandIn("clothing-reviews-lstm", {"max_train": 16000, "max_test": 4000},
                            protocols=("tuned",), seeds=5, target_width=1.0, max_seeds=20),
        },
    ),
    TableSpec(
        5, "small BERT fine-tuned on IMDB reviews (binary)",
        {"cross_entropy": 0.8551, "l": 0.8557, "m": 0.8539, "full_l": 0.8577, "full_m": 0.8555},
        differences=("Rotten Tomatoes critic snippets (fresh/rotten) instead of IMDB reviews; "
                     + _TEXT_HEAD + " instead of fine-tuning BERT; a 2-way softmax instead of one "
                     "sigmoid output."),
        stand_ins={
            "quick": StandIn("rotten-tomatoes-minilm", {"max_train": 1500, "max_test": 1500,
                                                        "epochs": 8},
                             seeds=5, target_width=1.5, max_seeds=20),
            "standard": StandIn("rotten-tomatoes-minilm", {"max_train": 6000, "max_test": 4000,
                                                           "epochs": 10},
                                protocols=("tuned",), seeds=6, target_width=1.0, max_seeds=40),
            "full": StandIn("rotten-tomatoes-minilm", {}, protocols=("tuned",), seeds=5,
                            target_width=1.0, max_seeds=20),
        },
    ),
)


def _planned(spec: TableSpec, preset: str, cache_dir: str,
             training: dict[str, Any] | None = None) -> Any:
    from losslab.experiments.classification.planning.tasks import planned_task

    stand_in = spec.stand_in(preset)
    return planned_task(stand_in.task, preset="quick" if preset == "quick" else "full",
                        overrides={**stand_in.overrides, **(training or {})},
                        model_options=stand_in.model_options or None, cache_dir=cache_dir)


def _ours(comparison: Any) -> str:
    s = comparison.summary
    sd = "–" if math.isnan(s.sd) else f"{s.sd:.4f}"
    return f"{s.mean:.4f} ± {sd} (n={s.n})"


def at_prior(finals: list[float], majority: float) -> bool:
    """Every final accuracy within half a point of the majority-class rate: nothing learned."""
    return bool(finals) and all(abs(value - majority) < AT_PRIOR_TOLERANCE for value in finals)


def _paper_markdown(spec: TableSpec, comparisons: list[Any]) -> tuple[str, dict[str, Any]]:
    """The paper's single runs beside ours: the paper's Δ vs CE next to our paired Δ, its
    Holm-matched interval and the verdict."""
    rows = {c.loss: c for c in comparisons}
    paper_base = spec.paper["cross_entropy"]
    lines = [
        "| loss | paper (1 run) | paper Δ vs CE (points) | ours: mean ± sd | ours: Δ vs CE (points) "
        "| ours: CI of the verdict | verdict |",
        "|:---|---:|---:|---:|---:|---:|:---|",
    ]
    data: dict[str, Any] = {"paper": spec.paper, "ours": {}}
    for loss, paper_name in PAPER_ROWS:
        paper_value = spec.paper[loss]
        paper_delta = "" if loss == "cross_entropy" else f"{100 * (paper_value - paper_base):+.2f}"
        row = rows.get(loss)
        if row is None:
            lines.append(f"| {paper_name} | {paper_value:.4f} | {paper_delta} | not run | | | |")
            continue
        data["ours"][loss] = row.to_dict()
        delta = interval = ""
        if row.paired is not None:
            delta = f"{100 * row.paired.mean:+.2f}" + (" (n=1)" if row.paired.n < 2 else "")
            if row.paired.n >= 2:
                interval = (f"{100 * row.adjusted_confidence:.3g}% [{100 * row.adjusted_low:+.2f}, "
                            f"{100 * row.adjusted_high:+.2f}]")
        lines.append(f"| {paper_name} | {paper_value:.4f} | {paper_delta} | {_ours(row)} | {delta} | "
                     f"{interval} | {md_text(row.verdict)} |")
    return "\n".join(lines), data


def table_claim(spec: TableSpec, comparisons: list[Any] | None, *, learned: bool = True,
                reason_missing: str = "not run") -> dict[str, Any]:
    """The paper's claim for one table, "the alternate losses improve on cross-entropy", read
    from our Holm-matched intervals.

    - **holds**: some loss is better than cross-entropy (its interval lies above 0);
    - **does not hold**: no loss is better, and every loss the paper reported as better lies
      below the paper's gain (its interval's upper end under the paper's Δ);
    - **undecided**: otherwise (the intervals still admit the paper's gains), or the stand-in
      did not learn beyond the majority class.
    """
    base = spec.paper["cross_entropy"]
    gains = {loss: spec.paper[loss] - base for loss, _ in PAPER_ROWS if loss != "cross_entropy"}
    best = max(gains, key=lambda loss: gains[loss])
    claim = (f"the alternate losses improve on cross-entropy (paper: best {best} "
             f"{100 * gains[best]:+.2f} points, from one run per loss)")
    record: dict[str, Any] = {"table": spec.number, "part": spec.part, "claim": claim,
                              "paper_gains": {k: 100 * v for k, v in gains.items()}}
    if not comparisons:
        return {**record, "verdict": "undecided", "reason": reason_missing}
    if not learned:
        return {**record, "verdict": "undecided",
                "reason": "the stand-in did not learn beyond the majority class"}
    tested = [c for c in comparisons if c.decision not in ("baseline", "untested")]
    if not tested:
        return {**record, "verdict": "undecided", "reason": "too few seeds to test"}

    def shown(c: Any) -> str:
        return (f"{c.loss} {100 * c.paired.mean:+.2f} [{100 * c.adjusted_low:+.2f}, "
                f"{100 * c.adjusted_high:+.2f}]")

    better = [c for c in tested if c.decision == "better"]
    if better:
        return {**record, "verdict": "holds",
                "reason": "better than CE: " + "; ".join(shown(c) for c in better)}
    claimed = [c for c in tested if gains.get(c.loss, 0.0) > 0]
    if claimed and all(c.adjusted_high < gains[c.loss] for c in claimed):
        return {**record, "verdict": "does not hold",
                "reason": "no loss beats CE, and each loss the paper found better is below its "
                          "paper gain: " + "; ".join(f"{shown(c)} vs paper {100 * gains[c.loss]:+.2f}"
                                                    for c in claimed)}
    widest = max(tested, key=lambda c: c.adjusted_high - c.adjusted_low)
    return {**record, "verdict": "undecided",
            "reason": "no loss is better than CE, but the intervals still admit the paper's gains "
                      f"(widest: {shown(widest)})"}


@dataclass
class _TableRun:
    spec: TableSpec
    stand_in: StandIn
    task: Any  # PlannedTask
    load_time: float
    groups: dict[str, Any] = field(default_factory=dict)  # protocol -> TaskResults
    precision: dict[str, Any] = field(default_factory=dict)  # protocol -> SequentialOutcome
    wall: dict[str, float] = field(default_factory=dict)
    transfer: dict[str, Any] | None = None  # a pretrained stand-in: against random init


def _run_table(run: _TableRun, db: Any, *, workers: int, threads: int | None, seed: int,
               log: Any) -> list[str]:
    """Train (or resume) one table's stand-in under each of its protocols; returns failures."""
    from losslab.experiments.classification.api import COMPARED_LOSSES, run_planned
    from losslab.experiments.classification.protocols.sequential import PrecisionTarget
    from losslab.experiments.classification.protocols.tuning import TuningSettings

    stand_in = run.stand_in
    seeds = [seed + i for i in range(stand_in.seeds)]
    until = None
    if stand_in.target_width is not None:
        until = PrecisionTarget(target_width=stand_in.target_width / 100.0,
                                max_seeds=stand_in.max_seeds)
    failed: list[str] = []
    for protocol in stand_in.protocols:
        sweep_seeds = tuple(seed + i for i in range(stand_in.sweep_seeds))
        tuning = (TuningSettings(split_seed=seed, sweep_seeds=sweep_seeds)
                  if protocol == "tuned" else None)
        started = time.perf_counter()
        result = run_planned([run.task], losses=list(COMPARED_LOSSES), seeds=seeds, db=db,
                             workers=workers, threads=threads, progress=True, log=log,
                             protocol=protocol, tuning=tuning, until=until)
        run.wall[protocol] = time.perf_counter() - started
        failed += result.failed or []
        if result.tasks:
            run.groups[protocol] = result.tasks[0]
        if result.precision:
            run.precision[protocol] = result.precision[run.task.label]
    return failed


def _final_scores(group: Any, seeds: list[int] | None) -> dict[str, dict[int, float]]:
    scores = group.final_accuracy()
    if seeds is None:
        return scores
    return {loss: {s: v for s, v in by_seed.items() if s in seeds} for loss, by_seed in scores.items()}


def _table_section(run: _TableRun, store: Any, preset: str, out: Any, index: int,
                   skipped: str | None = None) -> tuple[Section, dict[str, Any], dict[str, Any]]:
    """(section, data, claim) of one table."""
    from losslab.experiments.classification.reporting.forest import (
        forest_group,
        forest_record,
        table_forest,
    )
    from losslab.experiments.classification.reporting.report import (
        decision_lines,
        learning_curves,
        metrics_markdown,
        other_views_markdown,
        precision_line,
        reliability_figure,
    )
    from losslab.experiments.classification.reporting.stats import compare_losses
    from losslab.experiments.classification.reporting.step_size import step_size_parts

    spec = run.spec if run is not None else None
    title = f"Table {spec.label}: {spec.paper_setting}"
    stand_in = run.stand_in
    parts: list[str] = []
    figures: list[Figure] = []
    data: dict[str, Any] = {"task": stand_in.task, "stand_in": {
        "overrides": stand_in.overrides, "protocols": list(stand_in.protocols),
        "first_round_seeds": stand_in.seeds, "target_width_points": stand_in.target_width,
        "max_seeds": stand_in.max_seeds}}
    task = run.task
    labels = task.source.prepare("test").y_eval
    majority = float(labels.bincount().max()) / max(1, labels.numel())
    data["majority_class_accuracy"] = majority
    data["config"] = task.config()
    primary = "tuned" if "tuned" in stand_in.protocols else "fixed"
    claim: dict[str, Any] | None = None
    body: list[str] = []
    decision_part: list[str] = []
    forest_groups: list[Any] = []  # (protocol, group) per protocol that learned
    for protocol in stand_in.protocols:
        group = run.groups.get(protocol)
        protocol_data: dict[str, Any] = {}
        data[protocol] = protocol_data
        name = ("Fixed protocol (every loss at the task's learning rate)" if protocol == "fixed"
                else "Tuned protocol (each loss at its own learning rate, chosen on a validation "
                     "split)")
        if group is None:
            body += [f"**{name}:** no finished runs.", ""]
            continue
        outcome = run.precision.get(protocol)
        seeds = outcome.seeds if outcome is not None else None
        scores = _final_scores(group, seeds)
        finals = [v for by_seed in scores.values() for v in by_seed.values()]
        learned = not at_prior(finals, majority)
        comparisons = compare_losses(scores) if scores else []
        protocol_data["learned"] = learned
        protocol_data["comparisons"] = [c.to_dict() for c in comparisons]
        if outcome is not None:
            protocol_data["until_decided"] = outcome.to_dict()
        protocol_data["wall_time_seconds"] = round(run.wall.get(protocol, 0.0), 1)
        if protocol == primary:
            claim = table_claim(spec, comparisons, learned=learned)
        if learned:
            rows_order = [loss for loss, _ in PAPER_ROWS]  # the paper table's order
            forest_groups.append((protocol, forest_group(
                f"Table {spec.label}, {protocol} protocol ({stand_in.task})",
                sorted(comparisons, key=lambda c: rows_order.index(c.loss)
                       if c.loss in rows_order else len(rows_order)),
                claims=table_claim(spec, None)["paper_gains"], labels=dict(PAPER_ROWS))))
        protocol_data["decision_lines"] = (
            decision_lines(comparisons) if learned else
            [f"- every loss stayed at the majority-class accuracy ({majority:.4f}): the stand-in "
             "did not learn, no comparison"])
        if not learned:
            body += [f"**{name}:** every loss stayed at the majority-class accuracy "
                     f"({majority:.4f}) on every seed: the stand-in did not learn in this budget, "
                     "so this protocol says nothing about the losses (no table, no plot).", ""]
            continue
        if protocol == primary or len(stand_in.protocols) == 1:
            decision_part = [f"**Decision ({protocol} protocol)**, ranked by the difference from "
                             "cross-entropy:", "", *decision_lines(comparisons), "",
                             precision_line(comparisons)]
            if outcome is not None:
                decision_part += ["", f"Seeds: {outcome.describe()} (target "
                                  f"{stand_in.target_width:g} point(s), at most {stand_in.max_seeds} "
                                  "seeds; the rule reads only the spread of the differences, never "
                                  "their mean or significance, so the intervals keep their "
                                  "coverage)."]
            widths = verdict_width(comparisons, stand_in.target_width, outcome)
            if widths is not None:
                protocol_data["verdict_width"] = widths
                decision_part += ["", widths["statement"]]
        markdown, paper_data = _paper_markdown(spec, comparisons)
        protocol_data.update(paper_data)
        body += [f"**{name}:**", "", markdown, ""]
        views = other_views_markdown(comparisons)
        if views:
            body += ["The same seeds, other views (none drives a verdict):", "", views, ""]
        stem = f"table{spec.number}-{stand_in.task}-{protocol}"
        extra, extra_figures, extra_data = step_size_parts(store, group, out, stem,
                                                           explain=index == 0)
        if extra:
            body += [extra, ""]
        everything = metrics_markdown(group)
        if everything:
            body += ["Every metric (mean over seeds; ▲ better, ▼ worse, = within ±1 point, ? "
                     "undecided against cross-entropy; a loss that rescales its gradients moves "
                     "calibration as much as accuracy):", "", everything, ""]
        curves = learning_curves(group, out, stem + "-curves")
        if curves is not None:
            curves.caption = f"Table {spec.label} stand-in, {protocol} protocol: " + curves.caption
            figures.append(curves)
        reliability = reliability_figure(group, out, stem + "-reliability")
        if reliability is not None:
            reliability.caption = (f"Table {spec.label} stand-in, {protocol} protocol: "
                                   + reliability.caption)
            figures.append(reliability)
        for figure in extra_figures:
            figure.caption = f"Table {spec.label} stand-in, {protocol} protocol: " + figure.caption
        figures += extra_figures
        protocol_data.update(extra_data)
        if protocol == primary and claim is not None and extra_data.get("across_rates_statement"):
            claim["across_rates"] = extra_data["across_rates_statement"]
        wall = sum(e["wall_time"] for r in group.runs for e in r["epochs"])
        body.append(f"Training time recorded for these test runs: {wall:.1f} s; wall time of this "
                    f"protocol (sweep, selection and test runs): {run.wall.get(protocol, 0.0):.1f} s.")
        body.append("")
    if claim is None:
        claim = table_claim(spec, None, reason_missing="no finished runs")
    settings = task.settings
    options = task.source.options
    parts += [*decision_part, "", f"**The paper's claim:** {claim['claim']} — "
                              f"**{md_text(claim['verdict'])}** ({md_text(claim['reason'])})"
                              + (f"; {md_text(claim['across_rates'])}" if claim.get("across_rates")
                                 else "")
                              + ".", "",
                              *_transfer_part(run, data),
                              f"**Stand-in:** `{stand_in.task}` — {spec.differences}", "",
                              f"Training: Adam, task learning rate {settings.lr} (the tuned "
                              "protocol's grid is centred on it), batch "
                              f"{settings.batch_size}, {settings.epochs} epochs; data "
                              f"{', '.join(md_text(f'{k}={v}') for k, v in options.items()) or 'full splits'}; "
                              f"majority-class accuracy of the test split {majority:.4f}.", ""]
    parts += body
    claim["task"] = stand_in.task  # a table re-run by two stand-ins has a verdict for each
    data["claim"] = claim
    lead = table_forest(forest_groups, primary, out, f"table{spec.key}-forest",
                        f"Table {spec.label} stand-in")
    data["forest"] = forest_record(lead)
    section = Section(key=f"classification-table{spec.key}", title=title,
                      markdown="\n".join(parts).strip(), figures=figures, order=51 + index, data=data,
                      lead=[lead] if lead else [])
    return section, data, claim


def verdict_width(comparisons: list[Any], target_points: float | None,
                  outcome: Any = None) -> dict[str, Any] | None:
    """The widest interval the verdicts read (Holm-level), against the precision target, with
    the reason when it is wider: the seed limit came first, or Holm's step levels widen an
    interval whose plain 95% half-width met the target (the seed rule reads the plain one, so
    that adding seeds never depends on the tests). None when no loss was tested."""
    tested = [c for c in comparisons if c.decision not in ("baseline", "untested")
              and c.paired is not None and c.paired.n >= 2 and math.isfinite(c.adjusted_high)]
    if not tested:
        return None
    widest = max(tested, key=lambda c: c.adjusted_high - c.adjusted_low)
    half = 100 * (widest.adjusted_high - widest.adjusted_low) / 2
    plain = 100 * widest.precision.half_width if widest.precision is not None else math.nan
    record: dict[str, Any] = {"loss": widest.loss, "half_width_points": half,
                              "confidence": widest.adjusted_confidence,
                              "plain_95_half_width_points": plain, "target_points": target_points}
    shown = (f"the widest interval a verdict reads is ±{half:.2f} points ({md_text(widest.loss)}, "
             f"{100 * widest.adjusted_confidence:.3g}% Holm-level, n={widest.paired.n})")
    if target_points is None:
        record["within_target"] = None
        record["statement"] = f"Width: {shown}; this preset adds no seeds for precision."
    elif round(half, 2) <= target_points:  # as printed: "±1.00" reads as within a ±1 target
        record["within_target"] = True
        record["statement"] = f"Width: {shown}, within the ±{target_points:g}-point target."
    else:
        record["within_target"] = False
        if outcome is not None and outcome.stopped == "max_seeds" and plain > target_points:
            why = (f"the seed limit ({outcome.target.max_seeds}) came before the target: the "
                   f"plain 95% half-width is still ±{plain:.2f}")
        elif outcome is not None and outcome.stopped == "incomplete":
            why = "runs of the last round are not finished (rerun to continue)"
        else:
            why = (f"the seeds were added until every plain 95% half-width was within the target "
                   f"(this one ±{plain:.2f}); Holm's step level widens it by the ratio of the t "
                   "quantiles, and the seed rule never reads the tests")
        record["statement"] = (f"Width: {shown}, wider than the ±{target_points:g}-point target: "
                               f"{why}.")
    return record


def _transfer_part(run: _TableRun, data: dict[str, Any]) -> list[str]:
    """The line that shows what the pretrained body is worth, with the check recorded in the
    table's ``data`` ([] and nothing recorded for other stand-ins)."""
    if run.transfer is None:
        return []
    from losslab.experiments.classification.planning.transfer import transfer_line

    data["transfer_check"] = run.transfer
    return [transfer_line(run.transfer, run.transfer.get("pretraining")), ""]


def build_section(context: Any, tables: tuple[TableSpec, ...] = TABLES) -> list[Section]:
    """Run (or resume) the stand-in grid for Tables 2–5 and write one section per table.

    ``context.options["classification_workers"]`` sets the number of training processes
    (default 2 single-threaded workers: both cores of a small machine, no thread contention);
    ``"classification_device"`` and ``"classification_amp"`` where and in what precision the
    runs train.
    """
    from losslab.data import data_dir
    from losslab.experiments.classification.planning import transfer
    from losslab.experiments.classification.reporting.forest import forest_record, summary_forest
    from losslab.experiments.classification.reporting.report import STATISTICS_NOTE
    from losslab.experiments.classification.reporting.transfer_check import transfer_check
    from losslab.experiments.classification.storage import ResultsStore

    preset = context.preset if context.preset in PRESETS else "full"
    wanted = context.options.get("classification_tables")
    if wanted is not None:  # a re-run of some tables only (losslab reproduce --tables)
        known = sorted({spec.number for spec in tables})
        unknown = [number for number in wanted if number not in known]
        if unknown:
            raise ValueError(f"classification_tables: expected table numbers among "
                             f"{', '.join(map(str, known))}, got {', '.join(map(str, unknown))}")
        tables = tuple(spec for spec in tables if spec.number in wanted)
    tables = tuple(spec for spec in tables if spec.runs_in(preset))  # a part may skip a preset
    out = context.subdir("classification")
    figures_dir = context.subdir("classification/figures")
    db = out / "results.sqlite"
    cache_dir = str(data_dir() / "cache" / "minilm")
    workers = int(context.options.get("classification_workers", 2))
    # --device / --amp of losslab reproduce (None: the tasks' own, the CPU in float32).
    training = {"device": context.options.get("classification_device"),
                "amp": context.options.get("classification_amp")}
    threads = int(context.options.get("classification_threads", 1)) if workers > 1 else None
    runs: list[_TableRun] = []
    skipped: dict[int, str] = {}
    failed: list[str] = []
    started = time.perf_counter()
    # Loading (sentence embeddings above all) runs here, before any worker: use every core.
    import os

    import torch

    threads_before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    for spec in tables:
        t0 = time.perf_counter()
        try:
            task = _planned(spec, preset, cache_dir, training)
            task.source.prepare("test")  # load now (memoised): a missing data set is skipped
        except (FileNotFoundError, ImportError, OSError, ValueError) as error:
            skipped[spec.key] = f"{type(error).__name__}: {error}"
            context.log(f"[classification] Table {spec.label}: skipped ({error})")
            continue
        runs.append(_TableRun(spec, spec.stand_in(preset), task, time.perf_counter() - t0))
        context.log(f"[classification] Table {spec.label}: data ready in "
                    f"{time.perf_counter() - t0:.1f} s")
    torch.set_num_threads(threads_before)
    for run in runs:
        context.log(f"[classification] Table {run.spec.label}: {run.stand_in.task}")
        failed += _run_table(run, db, workers=workers, threads=threads, seed=context.seed,
                             log=context.log)
        if transfer.is_pretrained(run.task):
            run.transfer = transfer_check(
                run.task, seeds=[context.seed + i for i in range(run.stand_in.seeds)], db=db,
                workers=workers, threads=threads, log=context.log)
    grid_time = time.perf_counter() - started
    store = ResultsStore(db)
    sections: list[Section] = []
    data: dict[str, Any] = {"preset": preset, "tables": {}, "skipped": skipped, "claims": []}
    for index, spec in enumerate(tables):
        run = next((r for r in runs if r.spec is spec), None)
        if run is None:
            claim = {**table_claim(spec, None, reason_missing=f"stand-in not loaded: {skipped[spec.key]}"),
                     "task": spec.stand_in(preset).task}
            sections.append(Section(
                key=f"classification-table{spec.key}",
                title=f"Table {spec.label}: {spec.paper_setting}",
                markdown=(f"Stand-in `{spec.stand_in(preset).task}` could not be loaded, so this "
                          f"table was not re-run: {md_text(skipped[spec.key])}"),
                order=51 + index, data={"claim": claim}))
            data["claims"].append(claim)
            continue
        section, table_data, claim = _table_section(run, store, preset, figures_dir, index)
        sections.append(section)
        data["tables"][spec.key] = table_data
        data["claims"].append(claim)
    store.close()
    intro = [
        "The paper trains each model **once** per loss and reports the test accuracy; a difference "
        "of a fraction of a point between single runs cannot be told from seed noise. Here every "
        "loss is trained with the same seeds (same initial weights and data order per seed) on a "
        "stand-in data set that ships through the package registries, and compared with "
        "cross-entropy by the paired difference over seeds. The paper's binary tasks used BCE on "
        "one sigmoid output; ours use a 2-way softmax (the same loss for CE, M and L; the full "
        "variants count the same term twice).",
        "",
        STATISTICS_NOTE,
        "",
        "A loss that scales its gradients also changes the effective step size, so one shared "
        "learning rate can favour one loss for reasons unrelated to its objective. Under the "
        "**tuned** protocol each loss is first swept over 5 learning rates spanning 2 decades "
        "around the task's rate, each trained for half the task's epochs on 80% of the training "
        "data and scored on the other 20% (a stratified split seeded with the run's seed; the test "
        "split is never read), on 3 sweep seeds; the rate is chosen by the mean validation "
        "accuracy, never one where a sweep seed diverged or fell more than 5 points below the "
        "rate's median, and among the rates within one standard error of the best mean the one "
        "with the smallest spread (ties to the smaller rate); a best rate at an edge of the grid "
        "grows the grid a decade on that side (at most 2 per side). Each loss is then tested over "
        "the seeds at its chosen rate.",
        "",
        f"Preset **{preset}**; results database `{db.name}` in this folder (re-running resumes "
        f"it). Wall time of the classification grid: {grid_time:.1f} s.",
    ]
    if failed:
        intro += ["", "Failed runs (finished epochs kept; re-run to resume):", ""]
        intro += [f"- {md_text(line)}" for line in failed]
    data["wall_time_seconds"] = round(grid_time, 1)
    context.log(f"[classification] {grid_time:.1f} s")
    summary = summary_forest(data["tables"], figures_dir)
    data["forest"] = forest_record(summary)
    overview = Section(key="classification", title="Classification: the paper's Tables 2–5 on "
                       "stand-in data", markdown="\n".join(intro), order=50, data=data,
                       lead=[summary] if summary else [])
    return [overview, *sections]
