"""The tuned protocol: a learning-rate sweep on a validation split, selection, then the test.

Every test trains scikit-learn's digits (bundled, offline) or a few random points with tiny
models for one or two epochs on one torch thread.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from losslab.experiments.classification import ResultsStore, compare, planned_task
from losslab.experiments.classification.planning.splits import (
    ValidationSplit,
    carve_validation,
    ids_digest,
)
from losslab.experiments.classification.planning.tasks import ArraySource
from losslab.experiments.classification.protocols.tuning import (
    TuningSettings,
    derive_selection,
    log_grid,
    run_tuned,
    select_learning_rate,
)

QUIET = {"progress": False, "log": lambda _: None, "threads": 1}
METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")


def _rows(db) -> dict[tuple, list[tuple]]:
    """{(task, loss, seed, stage, lr): [(epoch, metrics...), ...]} read with plain sqlite3."""
    import json

    connection = sqlite3.connect(db)
    runs = connection.execute("SELECT run_id, task, loss, seed, stage, config FROM runs").fetchall()
    result: dict[tuple, list[tuple]] = {}
    for run_id, task, loss, seed, stage, config in runs:
        lr = json.loads(config)["training"]["lr"]
        key = (task, loss, seed, stage, lr)
        assert key not in result, f"{key} registered twice"
        result[key] = connection.execute(
            f"SELECT epoch, {', '.join(METRICS)} FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
        ).fetchall()
    connection.close()
    return result


def test_default_grid_is_five_rates_over_two_decades_centred_on_the_task_rate():
    # 1e-3 * 10 ** (-1, -0.5, 0, 0.5, 1), rounded to 4 significant digits.
    assert log_grid(1e-3) == (1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2)
    assert log_grid(2e-3, decades=1, points=3) == (6.325e-4, 2e-3, 6.325e-3)
    assert TuningSettings(lr_grid=(1e-2, 1e-4)).grid_for(5e-3) == (1e-4, 1e-2)  # explicit, sorted
    assert TuningSettings().epochs_for(15) == 8 and TuningSettings(sweep_epochs=2).epochs_for(15) == 2


def test_sweep_never_reads_the_test_split_by_recorded_ids(tmp_path):
    db = tmp_path / "ids.sqlite"
    result = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=2, db=db, epochs=2,
                     max_train=300, max_test=100, protocol="tuned", lr_grid=[1e-3, 1e-2], lr_extend_decades=0,
                     sweep_epochs=1, val_fraction=0.2, split_seed=3, sweep_seeds=1, **QUIET)
    assert result.protocol == "tuned" and not result.failed
    data = planned_task("digits-mlp", overrides={"max_train": 300, "max_test": 100}).source.load()
    n_train, n_test = len(data.y_train), len(data.y_test)
    assert (n_train, n_test) == (300, 100)
    test_ids = set(range(n_train, n_train + n_test))
    store = ResultsStore(db)
    sweep, tested = store.runs(stage="sweep"), store.runs(stage="test")
    assert len(sweep) == 2 * 2 and len(tested) == 2 * 2  # (losses × rates) and (losses × seeds)
    validation_sets = set()
    for run in sweep:
        ids = store.run_samples(run)
        fit, validation = set(ids["train"].tolist()), set(ids["eval"].tolist())
        assert run["eval_split"] == "validation"
        assert not (fit | validation) & test_ids  # the sweep never touched a test sample
        assert not fit & validation and fit | validation == set(range(n_train))
        assert len(validation) == 60  # 0.2 of 300
        # Stratified: every class in the validation part, in proportion (±1 sample).
        val_counts = np.bincount(data.y_train[ids["eval"]], minlength=10)
        train_counts = np.bincount(data.y_train, minlength=10)
        assert np.all(val_counts >= 1) and np.all(np.abs(val_counts - train_counts * 0.2) <= 1)
        # The config names the sets by digest and count; the stored arrays match them.
        record = run["config"]["samples"]
        assert record["eval"]["sha256"] == ids_digest(ids["eval"]) and record["train"]["count"] == 240
        validation_sets.add(record["eval"]["sha256"])
    assert len(validation_sets) == 1  # one seeded split shared by every loss and rate
    expected = carve_validation(data.y_train, ValidationSplit(0.2, 3))
    assert np.array_equal(store.sample_set(validation_sets.pop()), expected[1])
    for run in tested:
        ids = store.run_samples(run)
        assert run["eval_split"] == "test"
        assert np.array_equal(ids["train"], np.arange(n_train))
        assert set(ids["eval"].tolist()) == test_ids
        assert run["config"]["training"]["lr"] == result.chosen_learning_rates()["digits-mlp"][run["loss"]]
        assert run["config"]["protocol"]["lr_grid"] == [1e-3, 1e-2]
    # The sweep's prepared data really is the training split cut in two (and not the test split).
    sweep_source = planned_task("digits-mlp", overrides={"max_train": 300, "max_test": 100}).source
    sweep_source.validation = ValidationSplit(0.2, 3)
    prepared = sweep_source.prepare("sweep")
    assert torch.equal(prepared.y_eval, torch.as_tensor(data.y_train[expected[1]]))
    assert torch.equal(prepared.y_train, torch.as_tensor(data.y_train[expected[0]]))


class _SpyDataset(torch.utils.data.Dataset):
    """A test split that records every sample read from it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int):
        self.read.append(int(index))
        return self.x[index], self.y[index]


def _linear_4_3() -> torch.nn.Module:
    return torch.nn.Linear(4, 3)


def _points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def test_a_spy_test_split_is_not_read_by_the_sweep_only_by_the_test_stage(tmp_path):
    x_train, y_train = _points(90, 0)
    x_test, y_test = _points(30, 1)
    spy = _SpyDataset(x_test, y_test)
    source = ArraySource(x_train, y_train, spy, y_test, _linear_4_3, 3, name="spy")
    from losslab.experiments.classification.execution.runner import PlannedTask, TrainingSettings

    planned = PlannedTask("spy", source, TrainingSettings(epochs=2, lr=1e-2, batch_size=16))
    tuning = TuningSettings(lr_grid=(1e-3, 1e-2, 1e-1), sweep_epochs=2, val_fraction=0.3, sweep_seeds=1,
                            lr_extend_decades=0)
    db = tmp_path / "spy.sqlite"
    sweep_only = run_tuned([planned], ["cross_entropy", "full_l"], [0, 1], db=db, tuning=tuning,
                           stages=("sweep",), **QUIET)
    assert sweep_only.sweep.trained == 6 and sweep_only.test is None
    assert spy.read == []  # six sweep runs trained and scored, no test sample read
    tuned = run_tuned([planned], ["cross_entropy", "full_l"], [0, 1], db=db, tuning=tuning, **QUIET)
    assert tuned.sweep.trained == 0 and tuned.sweep.skipped == 6  # the sweep was not repeated
    assert tuned.test.trained == 4
    assert sorted(set(spy.read)) == list(range(30))  # the test stage scored on every test sample


def test_selection_is_deterministic_given_the_seed(tmp_path):
    common = {"task": "digits-mlp", "losses": ["cross_entropy", "l"], "seeds": 1, "epochs": 1,
              "max_train": 250, "max_test": 50, "protocol": "tuned", "lr_grid": [3e-4, 3e-3, 3e-2],
              "sweep_epochs": 2, "split_seed": 1, "lr_extend_decades": 0, "sweep_seeds": 1,
              **QUIET}
    first = compare(db=tmp_path / "a.sqlite", **common)
    second = compare(db=tmp_path / "b.sqlite", **common)
    sweep_a = {k: v for k, v in _rows(tmp_path / "a.sqlite").items() if k[3] == "sweep"}
    sweep_b = {k: v for k, v in _rows(tmp_path / "b.sqlite").items() if k[3] == "sweep"}
    assert len(sweep_a) == 6 and sweep_a == sweep_b
    assert first.chosen_learning_rates() == second.chosen_learning_rates()
    scores = {key: selection.scores for key, selection in first.selections.items()}
    assert scores == {key: selection.scores for key, selection in second.selections.items()}
    # The choice is the argmax of the recorded validation counts, recomputed here by hand.
    for (_task, loss), selection in first.selections.items():
        accuracy = {k[4]: v[-1][4] for k, v in sweep_a.items() if k[1] == loss}
        best = max(accuracy.values())
        assert selection.lr == min(lr for lr, value in accuracy.items() if value == best)


def test_ties_go_to_the_smaller_rate_and_more_correct_wins(tmp_path):
    assert select_learning_rate({1e-2: 40, 1e-3: 40, 1e-4: 39}) == 1e-3
    assert select_learning_rate({1e-2: (41, 60), 1e-3: (40, 60)}) == 1e-2
    with pytest.raises(ValueError, match="scores"):
        select_learning_rate({})
    # A tie built in the stored sweep rows: overwrite the last-epoch validation accuracy.
    task = planned_task("digits-mlp", overrides={"epochs": 1, "max_train": 200, "max_test": 40})
    tuning = TuningSettings(lr_grid=(1e-3, 1e-2, 1e-1), sweep_epochs=1, val_fraction=0.3, sweep_seeds=1,
                            lr_extend_decades=0)
    db = tmp_path / "tie.sqlite"
    run_tuned([task], ["cross_entropy"], [0], db=db, tuning=tuning, stages=("sweep",), **QUIET)
    store = ResultsStore(db)
    runs = {run["config"]["training"]["lr"]: run for run in store.runs(stage="sweep")}
    total = runs[1e-3]["config"]["samples"]["eval"]["count"]
    assert total == 60

    def set_correct(lr: float, correct: int) -> None:
        with store.transaction() as cursor:
            cursor.execute("UPDATE epochs SET eval_accuracy = ? WHERE run_id = ?",
                           (correct / total, runs[lr]["run_id"]))

    protocol = tuning.protocol(task)
    set_correct(1e-3, 30), set_correct(1e-2, 45), set_correct(1e-1, 45)
    assert derive_selection(store, task.config(), protocol, "cross_entropy").lr == 1e-2
    set_correct(1e-3, 46)
    assert derive_selection(store, task.config(), protocol, "cross_entropy").lr == 1e-3
    set_correct(1e-1, 47)
    selection = derive_selection(store, task.config(), protocol, "cross_entropy")
    assert selection.lr == 1e-1 and selection.scores == {1e-3: (46, 60), 1e-2: (45, 60), 1e-1: (47, 60)}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losslab.cli", "compare", *args]


def _sweep_epochs_recorded(db) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return connection.execute(
                "SELECT COUNT(*) FROM epochs JOIN runs USING (run_id) WHERE runs.stage = 'sweep'"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_sigkill_during_the_sweep_then_rerun_loses_and_repeats_nothing(tmp_path):
    db = tmp_path / "killed.sqlite"
    arguments = ["--task", "digits-mlp", "--protocol", "tuned", "--losses", "cross_entropy,m",
                 "--seeds", "2", "--epochs", "2", "--lr-grid", "1e-3,3e-3,1e-2", "--sweep-epochs", "4", "--lr-extend-decades", "0",
                 "--sweep-seeds", "1",
                 "--threads", "1", "--no-progress"]
    process = subprocess.Popen(_cli(*arguments, "--db", str(db)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists() and _sweep_epochs_recorded(db) >= 1:
            break
        time.sleep(0.005)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()!r}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    after_kill = _rows(db)
    recorded = sum(len(epochs) for key, epochs in after_kill.items() if key[3] == "sweep")
    assert 0 < recorded < 2 * 3 * 4, "the sweep had finished: nothing was interrupted"
    assert not any(key[3] == "test" for key in after_kill)  # killed before any test run

    rerun = subprocess.run(_cli(*arguments, "--db", str(db)), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = _rows(db)  # _rows asserts each (task, loss, seed, stage, lr) is registered once
    expected_keys = {("digits-mlp", loss, 0, "sweep", lr) for loss in ("cross_entropy", "m")
                     for lr in (1e-3, 3e-3, 1e-2)}
    assert expected_keys <= set(resumed)
    assert len([k for k in resumed if k[3] == "test"]) == 4
    for key, epochs in resumed.items():
        assert [e[0] for e in epochs] == list(range(1, (4 if key[3] == "sweep" else 2) + 1)), key
    for key, epochs in after_kill.items():  # what was recorded before the kill was kept as is
        assert resumed[key][: len(epochs)] == epochs
    with sqlite3.connect(db) as connection:
        statuses = {row[0] for row in connection.execute("SELECT status FROM runs")}
    assert statuses == {"finished"}

    clean_db = tmp_path / "clean.sqlite"
    clean = subprocess.run(_cli(*arguments, "--db", str(clean_db)), capture_output=True, text=True,
                           timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert _rows(clean_db) == resumed  # bit-for-bit the same as never having been killed
    assert "learning rate chosen on the validation split" in clean.stdout


def test_a_diverging_rate_is_recorded_and_not_retrained(tmp_path):
    x_train, y_train = _points(60, 2)
    x_test, y_test = _points(20, 3)
    from losslab.experiments.classification.execution.runner import PlannedTask, TrainingSettings

    source = ArraySource(x_train, y_train, x_test, y_test, _linear_4_3, 3, name="points")
    task = PlannedTask("points", source, TrainingSettings(epochs=1, lr=1e-2, batch_size=60))
    # Adam moves every weight by about lr per step: 3e37 (a step of 3e38 in the first epoch) overflows float32 logits.
    tuning = TuningSettings(lr_grid=(1e-2, 3e37), sweep_epochs=2, val_fraction=0.25, sweep_seeds=1,
                            lr_extend_decades=0)
    db = tmp_path / "diverge.sqlite"
    first = run_tuned([task], ["cross_entropy"], [0], db=db, tuning=tuning, **QUIET)
    assert first.sweep.diverged == 1 and not first.failed
    selection = first.selections[("points", "cross_entropy")]
    assert selection.diverged == [3e37] and selection.scores[3e37] == (0, 15) and selection.lr == 1e-2
    again = run_tuned([task], ["cross_entropy"], [0], db=db, tuning=tuning, **QUIET)
    assert again.sweep.trained == 0 and again.sweep.skipped == 2 and again.test.trained == 0


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def _cli_run(cli_run):
    """``losslab compare ARGS``."""
    return lambda *args: cli_run("compare", *args)


@pytest.mark.parametrize(("options", "pattern"), [
    ({"lr_grid": []}, r"lr_grid: expected at least one learning rate, got an empty grid"),
    ({"lr_grid": [1e-3, 0.0]}, r"lr_grid: expected positive finite learning rates.*bad: \[0\.0\]"),
    ({"lr_grid": [-1e-3]}, r"lr_grid: expected positive finite.*-0\.001"),
    ({"lr_grid": [1e-3, 1e-3]}, r"lr_grid: expected distinct"),
    ({"lr_points": 0}, r"lr_points: expected a positive integer, got 0"),
    ({"val_fraction": 0.0}, r"val_fraction must be a number strictly between 0 and 1, got 0\.0"),
    ({"val_fraction": 1.0}, r"val_fraction must be a number strictly between 0 and 1, got 1\.0"),
    ({"val_fraction": -0.2}, r"val_fraction .* got -0\.2"),
    ({"sweep_epochs": 0}, r"sweep_epochs: expected a positive integer, got 0"),
    ({"sweep_seeds": 0}, r"sweep_seeds: expected a number of seeds from 1 to 100,000, got 0"),
])
def test_bad_tuning_arguments_are_named(tmp_path, options, pattern):
    db = tmp_path / "bad.sqlite"
    with pytest.raises(ValueError, match=pattern):
        compare(task="digits-mlp", losses=["cross_entropy"], seeds=1, db=db, protocol="tuned",
                **options, **QUIET)
    assert not db.exists()  # rejected before any database was made


def test_a_validation_split_missing_a_class_is_refused_before_any_run(tmp_path, _cli_run):
    db = tmp_path / "small.sqlite"
    # 40 training digits, 10 classes: 0.1 of them is 4 validation samples, so 6 classes are absent.
    with pytest.raises(ValueError, match=r"val_fraction: 0\.1 of 40 training samples .* 4 samples.*absent"):
        compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=1, db=db, max_train=40,
                max_test=20, protocol="tuned", val_fraction=0.1, **QUIET)
    assert ResultsStore(db).runs(stage=None) == []  # nothing registered, nothing trained
    with pytest.raises(ValueError, match="val_fraction"):
        carve_validation(np.array([0, 0, 0, 1, 1, 1, 2]), ValidationSplit(0.3, 0))  # class 2: one sample
    cli = _cli_run("--task", "digits-mlp", "--protocol", "tuned", "--max-train", "40",
                   "--val-fraction", "0.1", "--db", str(tmp_path / "cli.sqlite"))
    assert cli.returncode == 2 and "--val-fraction: 0.1 of 40 training samples" in cli.stderr


def test_cli_names_bad_tuning_options(tmp_path, _cli_run):
    db = str(tmp_path / "c.sqlite")
    empty = _cli_run("--task", "digits-mlp", "--protocol", "tuned", "--lr-grid", ",", "--db", db)
    assert empty.returncode == 2 and "--lr-grid: expected at least one learning rate" in empty.stderr
    negative = _cli_run("--task", "digits-mlp", "--protocol", "tuned", "--lr-grid", "1e-3,-1", "--db", db)
    assert negative.returncode == 2 and "--lr-grid: expected positive finite" in negative.stderr
    fraction = _cli_run("--task", "digits-mlp", "--protocol", "tuned", "--val-fraction", "1.5", "--db", db)
    assert fraction.returncode == 2 and "--val-fraction must be a number strictly between 0 and 1" in fraction.stderr


def test_report_shows_both_protocols_chosen_rates_sensitivity_and_gradients(tmp_path):
    from losslab.experiments.classification.reporting.report import write_report

    db = tmp_path / "both.sqlite"
    common = {"task": "digits-mlp", "losses": ["cross_entropy", "m"], "seeds": 2, "db": db,
              "epochs": 2, "max_train": 200, "max_test": 60, **QUIET}
    compare(protocol="fixed", **common)
    tuned = compare(protocol="tuned", lr_grid=[1e-3, 1e-2], lr_extend_decades=0, sweep_epochs=1, val_fraction=0.25, **common)
    md_path, html_path = write_report(db, tmp_path / "report")
    text = md_path.read_text()
    assert "## Task digits-mlp — fixed protocol" in text and "## Task digits-mlp — tuned protocol" in text
    assert text.index("— fixed protocol") < text.index("— tuned protocol")
    rates = tuned.chosen_learning_rates()["digits-mlp"]
    for loss, selection in ((loss, tuned.selections[("digits-mlp", loss)]) for loss in rates):
        cells = [f"**{selection.accuracy(lr):.4f}**" if lr == rates[loss] else f"{selection.accuracy(lr):.4f}"
                 for lr in (1e-3, 1e-2)]
        assert f"| {loss} | {rates[loss]:g} | {' | '.join(cells)} |" in text
    figures = {path.name.split("-digits")[0] for path in (tmp_path / "report" / "figures").glob("*.png")}
    assert figures == {"forest", "curves", "reliability", "sensitivity", "gradients"}
    assert len(list((tmp_path / "report" / "figures").glob("sensitivity-*.png"))) == 1  # tuned only
    # The gradient table's first-epoch mean is the seed-mean of what the runner recorded.
    store = ResultsStore(db)
    tuned_m = [run for run in store.runs() if run["loss"] == "m" and "protocol" in run["config"]]
    first_epoch = np.mean([store.epochs(run["run_id"])[0]["grad_mean"] for run in tuned_m])
    assert f"| m | {rates['m']:g} | {first_epoch:.4g} |" in text
    assert "data:image/png;base64," in html_path.read_text()


def test_reproduce_section_runs_both_protocols_where_asked(tmp_path):
    from losslab.experiments.classification.reporting.section import (
        TABLES,
        StandIn,
        TableSpec,
        build_section,
    )
    from losslab.experiments.reproduce import ReproduceContext

    assert TABLES[0].stand_in("quick").protocols == ("fixed",)  # Table 2's demo: one shared rate
    assert all(spec.stand_in(preset).protocols == ("tuned",)
               for spec in TABLES for preset in ("standard", "full") if spec.runs_in(preset))
    # Table 3 in the demo: the transfer stand-in, tuned; the digits MLP runs in standard only
    assert TABLES[1].stand_in("quick").protocols == ("tuned",)
    assert TABLES[2].key == "3-from-scratch" and not TABLES[2].runs_in("quick")
    tiny = TableSpec(
        3, TABLES[1].paper_setting, TABLES[1].paper, differences="tiny digits for the test",
        stand_ins={"quick": StandIn("digits-mlp", {"epochs": 2, "max_train": 200, "max_test": 80},
                                    protocols=("fixed", "tuned"))},
    )
    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=4, log=lambda _: None,
                               options={"classification_workers": 1})
    overview, section = build_section(context, tables=(tiny,))
    text = section.markdown
    assert text.index("**Fixed protocol") < text.index("**Tuned protocol")
    assert "**Decision (tuned protocol)**" in text  # the tuned protocol is the one decided on
    table = overview.data["tables"]["3"]
    assert set(table["fixed"]["ours"]) == set(table["tuned"]["ours"]) == {
        "cross_entropy", "l", "m", "full_l", "full_m"}
    assert set(table["tuned"]["selections"]) == set(table["tuned"]["ours"])
    store = ResultsStore(tmp_path / "classification" / "results.sqlite")
    sweep = store.runs(stage="sweep")
    # every rate on three sweep seeds from the context's seed up
    assert len(sweep) >= 5 * 5 * 3 and {run["seed"] for run in sweep} == {4, 5, 6}
    assert {run["config"]["data"]["validation"]["seed"] for run in sweep} == {4}
    for loss, selection in table["tuned"]["selections"].items():
        tested = {run["config"]["training"]["lr"] for run in store.runs()
                  if run["loss"] == loss and "protocol" in run["config"]}
        assert tested == {selection["lr"]}
    names = {figure.png.name for figure in section.figures}
    assert "table3-digits-mlp-tuned-curves.png" in names and any(n.startswith("sensitivity-") for n in names)

def test_decade_beyond_keeps_the_grid_spacing():
    from losslab.experiments.classification.protocols.tuning import decade_beyond

    grid = (1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2)
    assert decade_beyond(grid, 1e-2, "high") == [0.03162, 0.1]
    assert decade_beyond(grid, 1e-4, "low") == [3.162e-5, 1e-5]
    assert decade_beyond((1e-3,), 1e-3, "high") == [0.01]
    assert decade_beyond((1e-3, 2e-3), 1e-3, "low") == [0.0004642, 0.0002154, 0.0001]
    with pytest.raises(ValueError, match="side"):
        decade_beyond(grid, 1e-2, "up")


def test_a_best_rate_at_the_edge_grows_the_grid_up_to_its_limit(tmp_path):
    """Rates too small for a 3-epoch sweep: the best sits at the top edge, the grid grows a
    decade upwards (validation correct 27, 49 -> 52, 55 of 60), and stops there (limit 1) with a
    warning."""
    from losslab.experiments.classification import compare

    lines: list[str] = []
    result = compare(task="digits-mlp", losses=["cross_entropy"], seeds=[0], db=tmp_path / "edge.sqlite",
                     epochs=1, max_train=300, max_test=100, protocol="tuned", lr_grid=[1e-3, 3e-3], sweep_seeds=1,
                     sweep_epochs=3, lr_extend_decades=1, progress=False, log=lines.append)
    selection = result.selections[("digits-mlp", "cross_entropy")]
    assert selection.base_grid == (1e-3, 3e-3)
    assert selection.added_rates == [9.487e-3, 0.03]
    assert selection.extended == {"low": 0, "high": 1}
    assert selection.lr == 0.03 and selection.at_edge == "high"
    assert [selection.scores[lr][0] for lr in selection.grid] == [27, 49, 52, 55]
    assert any("still sits at the high edge" in line for line in lines)
    store = ResultsStore(tmp_path / "edge.sqlite")
    swept = sorted(run["config"]["training"]["lr"] for run in store.runs(stage="sweep"))
    assert swept == [1e-3, 3e-3, 9.487e-3, 0.03]
    tested = store.runs(stage="test")
    assert [run["config"]["training"]["lr"] for run in tested] == [0.03]
    assert tested[0]["config"]["selection"]["added_rates"] == [9.487e-3, 0.03]
    # rerunning finds everything done: no run is trained again
    again = compare(task="digits-mlp", losses=["cross_entropy"], seeds=[0], db=tmp_path / "edge.sqlite",
                    epochs=1, max_train=300, max_test=100, protocol="tuned", lr_grid=[1e-3, 3e-3], sweep_seeds=1,
                    sweep_epochs=3, lr_extend_decades=1, progress=False, log=lambda _: None)
    assert again.sweep.trained == 0 and again.grid.trained == 0


def test_successive_halving_is_named_for_what_it_is_and_asha_stays_an_alias():
    from losslab.experiments.classification.planning.tasks import planned_task
    from losslab.experiments.classification.protocols.tuning import TuningSettings

    task = planned_task("digits-mlp", preset="quick", overrides={"epochs": 4})
    new = TuningSettings(scheduler="successive-halving", lr_points=3, sweep_seeds=1)
    old = TuningSettings(scheduler="asha", lr_points=3, sweep_seeds=1)
    assert new.scheduler == old.scheduler == "successive-halving"
    # the record keeps the name databases were written with, so their runs keep their hash
    assert new.protocol(task) == old.protocol(task)
    assert new.protocol(task)["scheduler"]["name"] == "asha"
    with pytest.raises(ValueError, match="sweep_scheduler: expected one of none, successive-halving"):
        TuningSettings(scheduler="hyperband")
