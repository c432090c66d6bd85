"""Every registered execution backend behaves the same: the conformance suite.

Each case runs once per name in the backend registry (so a new backend is tested as soon
as it is registered): ``inprocess`` and ``local`` here, ``ray`` inside a private network
namespace (``unshare -n``, see tests/integration/test_backends.py). The reference results are computed
without the controller or any backend: :func:`train_epochs` called directly, epoch by epoch.

All grids are tiny (digits, 160 training samples, 2 losses × 2 seeds, one torch thread).
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from losslab.experiments.classification import planned_task, run_grid
from losslab.experiments.classification.execution import (
    Controller,
    RunSpec,
    backend_names,
    get_backend,
)
from losslab.experiments.classification.execution.runner import PlannedTask
from losslab.experiments.classification.protocols.tuning import TuningSettings, sweep_tasks
from losslab.experiments.classification.storage import (
    EPOCH_FIELDS,
    ResultsStore,
    RunKey,
    config_hash,
)
from losslab.experiments.classification.trial.training import EpochRecord, train_epochs

sys.path.insert(0, str(Path(__file__).parent))
from test_backends import _namespace_problem, _ray_installed, in_private_network

METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")
LOSSES = ["cross_entropy", "l"]
SEEDS = [0, 1]
EPOCHS = 3
QUIET = {"threads": 1, "progress": False, "log": lambda _: None}


def _task(**overrides) -> PlannedTask:
    return planned_task("digits-mlp", overrides={"epochs": EPOCHS, "max_train": 160, "max_test": 60,
                                                 **overrides})


def _options(backend: str) -> dict:
    """run_grid's backend options: two workers where the backend has them."""
    return {**QUIET, "backend": backend, "workers": 2 if backend == "local" else 1}


def _results(db: Path) -> dict[tuple[str, str, int], list[tuple]]:
    connection = sqlite3.connect(db)
    rows = connection.execute(
        f"SELECT r.task, r.loss, r.seed, e.epoch, {', '.join('e.' + m for m in METRICS)}, e.extra "
        "FROM runs r JOIN epochs e USING (run_id) ORDER BY r.task, r.loss, r.seed, e.epoch").fetchall()
    connection.close()
    result: dict = {}
    for task, loss, seed, epoch, *values in rows:
        result.setdefault((task, loss, seed), []).append((epoch, *values))
    return result


def _statuses(db: Path) -> dict[tuple[str, int, float], str]:
    import json

    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT loss, seed, config, status FROM runs").fetchall()
    connection.close()
    return {(loss, seed, json.loads(config)["training"]["lr"]): status for loss, seed, config, status in rows}


def _reference(task: PlannedTask) -> dict[tuple[str, int], list[tuple]]:
    """Each run's metrics straight from the training loop, no store and no backend."""
    data = task.source.prepare("test")
    return {(loss, seed): [tuple(record.metrics[m] for m in METRICS)
                           for record in train_epochs(data, loss, seed, task.settings_for(loss),
                                                      threads=1)]
            for loss in LOSSES for seed in SEEDS}


def _skip_unless_runnable(backend: str, request: pytest.FixtureRequest) -> bool:
    """True when this process should run the body (Ray: inside its network namespace)."""
    if backend != "ray":
        return True
    if not _ray_installed():
        pytest.skip("Ray is not installed: pip install 'losslab[ray]'")
    if _namespace_problem() is not None:
        pytest.skip(_namespace_problem())
    return in_private_network(request)


def test_the_registry_holds_the_backends_this_suite_covers():
    assert backend_names() == ("local", "ray", "inprocess")


@pytest.mark.parametrize("backend", backend_names())
def test_results_equal_the_bare_training_loop_bit_for_bit(backend, tmp_path, request):
    if not _skip_unless_runnable(backend, request):
        return
    task = _task()
    db = tmp_path / f"{backend}.sqlite"
    result = run_grid([task], LOSSES, SEEDS, db=db, **_options(backend))
    assert result.trained == 4 and not result.failed and result.busy == 0
    reference = _reference(task)
    recorded = _results(db)
    assert sorted(recorded) == sorted(("digits-mlp", loss, seed) for loss in LOSSES for seed in SEEDS)
    for (_, loss, seed), epochs in recorded.items():
        assert [epoch for epoch, *_ in epochs] == [1, 2, 3]
        assert [tuple(values[:len(METRICS)]) for _, *values in epochs] == reference[(loss, seed)]
    again = run_grid([task], LOSSES, SEEDS, db=db, **_options(backend))
    assert again.trained == 0 and again.skipped == 4 and _results(db) == recorded


@pytest.mark.parametrize("backend", backend_names())
def test_an_interrupted_grid_resumes_from_the_last_epoch_and_equals_the_uninterrupted(
        backend, tmp_path, request):
    if not _skip_unless_runnable(backend, request):
        return
    task = _task()
    db = tmp_path / "interrupted.sqlite"

    def interrupt(task_label, loss, seed, epoch, metrics):
        if loss == "l" and seed == 0 and epoch == 2:
            raise KeyboardInterrupt  # Ctrl-C in the driver, two epochs into a run

    with pytest.raises(KeyboardInterrupt):
        run_grid([task], LOSSES, SEEDS, db=db, on_epoch=interrupt, **_options(backend))
    partial = _results(db)
    assert [epoch for epoch, *_ in partial[("digits-mlp", "l", 0)]] == [1, 2]
    statuses = list(_statuses(db).values())
    assert "running" not in statuses  # the driver handed back what it held
    resumed = run_grid([task], LOSSES, SEEDS, db=db, **_options(backend))
    assert not resumed.failed and resumed.busy == 0
    assert resumed.trained == 4 - statuses.count("finished") and resumed.skipped == statuses.count("finished")
    clean = tmp_path / "clean.sqlite"
    run_grid([task], LOSSES, SEEDS, db=clean, **QUIET, backend="inprocess")
    assert _results(db) == _results(clean)
    for key, epochs in partial.items():  # what was recorded before the interrupt stays as is
        assert _results(db)[key][:len(epochs)] == epochs


@pytest.mark.parametrize("backend", backend_names())
def test_a_failing_run_is_recorded_failed_and_the_others_finish(backend, tmp_path, request):
    if not _skip_unless_runnable(backend, request):
        return
    task = _task()
    broken = PlannedTask(task.label, task.source, task.settings,
                         loss_settings={"l": {"loss_options": {"bogus": 1}}})
    db = tmp_path / "failed.sqlite"
    result = run_grid([broken], LOSSES, SEEDS, db=db, **_options(backend))
    assert result.trained == 2 and len(result.failed) == 2
    assert all("TypeError: l: unexpected keyword argument 'bogus'" in line for line in result.failed)
    assert sorted(line.split(":")[0] for line in result.failed) == ["digits-mlp/l/seed 0",
                                                                    "digits-mlp/l/seed 1"]
    statuses = _statuses(db)
    assert [statuses[("l", seed, 1e-3)] for seed in SEEDS] == ["failed", "failed"]
    assert [statuses[("cross_entropy", seed, 1e-3)] for seed in SEEDS] == ["finished", "finished"]
    connection = sqlite3.connect(db)
    errors = [row[0] for row in connection.execute("SELECT error FROM runs WHERE loss = 'l'")]
    connection.close()
    assert all(error.startswith("TypeError: l: unexpected keyword argument 'bogus'") for error in errors)


@pytest.mark.parametrize("backend", backend_names())
def test_a_diverging_rate_is_diverged_in_a_sweep_and_failed_in_a_test(backend, tmp_path, request):
    if not _skip_unless_runnable(backend, request):
        return
    task = _task(epochs=2)
    # Adam moves every weight by about lr per step: 3e37 overflows float32 logits at once.
    rows = sweep_tasks(task, TuningSettings(lr_grid=(1e-3, 3e37), sweep_epochs=2, val_fraction=0.25,
                                            lr_extend_decades=0))
    db = tmp_path / "diverged.sqlite"
    sweep = run_grid(rows, ["cross_entropy"], [0], db=db, stage="sweep", **_options(backend))
    assert sweep.diverged == 1 and sweep.trained == 1 and not sweep.failed
    assert _statuses(db) == {("cross_entropy", 0, 1e-3): "finished", ("cross_entropy", 0, 3e37): "diverged"}
    again = run_grid(rows, ["cross_entropy"], [0], db=db, stage="sweep", **_options(backend))
    assert again.trained == 0 and again.diverged == 0 and again.skipped == 2  # never retried
    huge = PlannedTask(task.label, task.source, task.settings, loss_settings={"l": {"lr": 3e37}})
    test_db = tmp_path / "test-stage.sqlite"
    test = run_grid([huge], LOSSES, [0], db=test_db, **_options(backend))
    assert test.diverged == 0 and test.trained == 1 and len(test.failed) == 1
    assert "FloatingPointError: loss 'l'" in test.failed[0] and "try a smaller --lr" in test.failed[0]
    assert _statuses(test_db)[("l", 0, 3e37)] == "failed"


def test_every_module_of_the_execution_package_imports_alone_in_a_fresh_interpreter():
    import pkgutil

    import losslab.experiments.classification.execution as package

    names = [package.__name__] + [info.name for info in pkgutil.walk_packages(package.__path__,
                                                                              package.__name__ + ".")]
    names += ["losslab.experiments.classification.execution.runner",
              "losslab.experiments.classification.execution.ray_backend"]
    assert len(names) >= 9
    src = str(Path(__file__).resolve().parents[2] / "src")
    for name in names:
        # Each module first, alone: a cycle shows as an ImportError on a partly initialised module.
        done = subprocess.run([sys.executable, "-c", f"import sys; import {name}; print('ray' in sys.modules)"],
                              env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (name, done.stderr[-2000:])
        assert done.stdout.strip() == "False", f"{name} imported Ray at import time"


def test_a_callback_error_on_worker_processes_fails_that_run_only(tmp_path):
    # The callback runs in the driver (the controller calls it), whatever the backend.
    task = _task(epochs=2)
    db = tmp_path / "callback.sqlite"
    seen = []

    def record(task_label, loss, seed, epoch, metrics):
        seen.append((loss, seed, epoch))
        if loss == "l" and seed == 1 and epoch == 1:
            raise RuntimeError("the callback broke")

    result = run_grid([task], LOSSES, SEEDS, db=db, on_epoch=record, **_options("local"))
    assert result.failed == ["digits-mlp/l/seed 1: RuntimeError: the callback broke"]
    assert result.trained == 3
    assert sorted(seen) == sorted([(loss, seed, epoch) for loss in LOSSES for seed in SEEDS
                                   for epoch in (1, 2) if (loss, seed) != ("l", 1)] + [("l", 1, 1)])
    assert [epoch for epoch, *_ in _results(db)[("digits-mlp", "l", 1)]] == [1]


# --- the trial seam: a run that is not a classification run ---------------------------------


@dataclass(frozen=True)
class PerplexityTrial:
    """A stand-in for a language-model trial: its own metric (perplexity), its own state
    (the checkpoint is the epoch number), no torch model. Picklable: local workers get it."""

    label: str = "toy-lm"
    epochs: int = 4

    def prepare(self, stage: str) -> float:
        return 2.0 if stage == "test" else 3.0

    def train(self, data: float, spec, *, threads):
        start = 0 if spec.checkpoint is None else int(spec.checkpoint.decode())
        last = self.epochs if spec.stop_after is None else min(self.epochs, spec.stop_after)
        for epoch in range(start + 1, last + 1):
            loss = data / (epoch + spec.seed)
            metrics = {name: 0.0 for name in EPOCH_FIELDS} | {"train_loss": loss,
                                                              "perplexity": math.exp(loss)}
            final = epoch == self.epochs
            yield EpochRecord(epoch, metrics, None if final else str(epoch).encode(), final)

    def environment(self, spec) -> dict:
        return {"device": "none"}

    def progress(self, metrics) -> str:
        return f"ppl {metrics['perplexity']:.2f}"


@pytest.mark.parametrize("backend", ["inprocess", "local"])
def test_another_kind_of_trial_plugs_in_without_touching_controller_or_backend(backend, tmp_path):
    store = ResultsStore(tmp_path / "lm.sqlite")
    specs = []
    for seed in (0, 1):
        key = RunKey("toy-lm", "cross_entropy", seed, "test", config_hash({"toy": seed}))
        run_id = store.ensure_run(key, {"toy": seed}, epochs=4)
        specs.append(RunSpec(run_id, 0, "cross_entropy", seed, "test", stop_after=2,
                             description=f"toy-lm/seed {seed}"))
    seen = []
    controller = Controller(store, get_backend(backend, workers=2), [PerplexityTrial()],
                            environment={"host": "test"}, threads=1, log=lambda _: None,
                            on_epoch=lambda *event: seen.append(event[2:4]))
    first = controller.run(specs)  # up to epoch 2, then paused with the trial's own state
    assert (first.trained, first.failed) == (2, [])
    assert [store.status(spec.run_id) for spec in specs] == ["paused", "paused"]
    second = controller.run([replace(spec, stop_after=None) for spec in specs])  # resumes at 3
    assert (second.trained, second.failed) == (2, [])
    assert sorted(seen) == [(seed, epoch) for seed in (0, 1) for epoch in (1, 2, 3, 4)]
    for spec in specs:
        epochs = store.epochs(spec.run_id)
        assert [row["epoch"] for row in epochs] == [1, 2, 3, 4]
        assert [row["perplexity"] for row in epochs] == [math.exp(2.0 / (e + spec.seed)) for e in (1, 2, 3, 4)]
        assert store.status(spec.run_id) == "finished"
        assert store.run(spec.run_id)["environment"] == {"host": "test", "device": "none"}
    store.close()
