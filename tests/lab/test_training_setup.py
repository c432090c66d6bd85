"""Optimizers, schedules, clipping and custom hooks: each changes what it should, is recorded,
and resumes exactly."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from losslab.experiments.classification import planned_task, run_grid
from losslab.experiments.classification.execution.runner import TrainingSettings
from losslab.experiments.classification.storage import ResultsStore
from losslab.experiments.classification.trial.optim import build_optimizer, build_scheduler


def _digits(**training):
    task = planned_task("digits-mlp", overrides={"epochs": 4, "max_train": 240, "max_test": 90})
    return replace(task, settings=replace(task.settings, **training))


def _finals(db):
    store = ResultsStore(db)
    return {(run["loss"], run["seed"]): [tuple(sorted((k, v) for k, v in e.items()
                                                      if k not in ("recorded_utc", "wall_time", "run_id")))
                                         for e in store.epochs(run["run_id"])]
            for run in store.runs()}


def test_defaults_keep_the_old_config_and_changes_are_recorded():
    default = TrainingSettings().to_config()
    assert set(default) == {"epochs", "lr", "batch_size", "weight_decay", "loss_options", "device",
                            "deterministic", "optimizer"}
    assert default["optimizer"] == "adam"
    changed = TrainingSettings(optimizer="sgd", momentum=0.8, nesterov=True, scheduler="cosine",
                               warmup_epochs=1, grad_clip=1.0).to_config()
    assert {k: changed[k] for k in ("optimizer", "momentum", "nesterov", "scheduler",
                                    "warmup_epochs", "grad_clip")} == {
        "optimizer": "sgd", "momentum": 0.8, "nesterov": True, "scheduler": "cosine",
        "warmup_epochs": 1, "grad_clip": 1.0}


def test_named_optimizers_are_built_with_their_settings():
    model = torch.nn.Linear(3, 2)
    sgd = build_optimizer(model, TrainingSettings(optimizer="sgd", lr=0.1, momentum=0.7, nesterov=True,
                                                  weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.1, 0.7, True, 1e-4)
    assert isinstance(build_optimizer(model, TrainingSettings(optimizer="adamw")), torch.optim.AdamW)
    assert type(build_optimizer(model, TrainingSettings())) is torch.optim.Adam


def _rates(settings, steps_per_epoch):
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, settings)
    scheduler = build_scheduler(optimizer, settings, steps_per_epoch)
    rates = []
    for _ in range(settings.epochs * steps_per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_schedules_follow_their_formulas():
    settings = TrainingSettings(epochs=5, lr=0.2, scheduler="cosine", warmup_epochs=1)
    rates = _rates(settings, 4)
    assert rates[:4] == pytest.approx([0.05, 0.1, 0.15, 0.2])  # linear warmup over 4 steps
    for step in range(4, 20):
        assert rates[step] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * (step - 4) / 16)))
    step = _rates(TrainingSettings(epochs=6, lr=1.0, scheduler="step"), 2)
    assert step == pytest.approx([1.0] * 4 + [0.1] * 4 + [0.01] * 4)
    assert build_scheduler(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1),
                           TrainingSettings(), 3) is None
    onecycle = _rates(TrainingSettings(epochs=4, lr=0.5, scheduler="onecycle"), 5)
    assert max(onecycle) == pytest.approx(0.5, rel=1e-6) and onecycle[0] < 0.05


def test_bad_training_options_are_named():
    with pytest.raises(ValueError, match="optimizer: expected one of adam, adamw, sgd, got 'rmsprop'"):
        TrainingSettings(optimizer="rmsprop")
    with pytest.raises(ValueError, match="scheduler: expected one of"):
        TrainingSettings(scheduler="linear")
    with pytest.raises(ValueError, match="nesterov: needs optimizer 'sgd'"):
        TrainingSettings(nesterov=True)
    with pytest.raises(ValueError, match="warmup_epochs: expected an integer from 0 to epochs - 1"):
        TrainingSettings(epochs=3, warmup_epochs=3)
    with pytest.raises(ValueError, match="grad_clip: expected a positive"):
        TrainingSettings(grad_clip=0)
    with pytest.raises(TypeError, match="train_step: expected a callable"):
        TrainingSettings(train_step=3)


def test_schedule_and_clipping_change_training_and_resume_exactly(tmp_path):
    plain = tmp_path / "plain.sqlite"
    run_grid([_digits()], ["cross_entropy"], [0], db=plain, threads=1, progress=False, log=lambda _: None)
    scheduled = _digits(optimizer="sgd", momentum=0.9, scheduler="cosine", warmup_epochs=1, grad_clip=0.5)
    db = tmp_path / "interrupted.sqlite"

    def crash(task_label, loss, seed, epoch, metrics):
        if epoch == 2:
            raise RuntimeError("simulated crash")

    first = run_grid([scheduled], ["cross_entropy"], [0], db=db, threads=1, progress=False,
                     log=lambda _: None, on_epoch=crash)
    assert len(first.failed) == 1
    run_grid([scheduled], ["cross_entropy"], [0], db=db, threads=1, progress=False, log=lambda _: None)
    clean = tmp_path / "clean.sqlite"
    run_grid([scheduled], ["cross_entropy"], [0], db=clean, threads=1, progress=False, log=lambda _: None)
    assert _finals(db) == _finals(clean)  # the schedule's state travelled with the checkpoint
    assert _finals(db) != _finals(plain)
    run = ResultsStore(db).runs()[0]
    assert run["config"]["training"]["scheduler"] == "cosine"
    assert run["config"]["training"]["grad_clip"] == 0.5


def _halving_step(model, loss_fn, inputs, targets, optimizer):
    """A custom step: two half-batches, one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    half = targets.shape[0] // 2 or 1
    logits = model(inputs)
    loss = loss_fn(logits[:half], targets[:half]) / 2 + loss_fn(logits[half:], targets[half:]) / 2
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def _sgd_factory(params, settings):
    return torch.optim.SGD(params, lr=settings.lr)


def test_python_hooks_are_used_and_recorded(tmp_path):
    db = tmp_path / "hooks.sqlite"
    task = _digits(train_step=_halving_step, optimizer_factory=_sgd_factory, epochs=2)
    run_grid([task], ["m"], [1], db=db, threads=1, progress=False, log=lambda _: None)
    run = ResultsStore(db).runs()[0]
    training = run["config"]["training"]
    assert training["train_step"].endswith("test_training_setup._halving_step")
    assert training["optimizer_factory"].endswith("test_training_setup._sgd_factory")
    epochs = ResultsStore(db).epochs(run["run_id"])
    assert len(epochs) == 2 and all(e["grad_mean"] == 0.0 for e in epochs)  # not measured
    other = tmp_path / "plain.sqlite"
    run_grid([_digits(epochs=2)], ["m"], [1], db=other, threads=1, progress=False, log=lambda _: None)
    assert _finals(db) != _finals(other)


def _csv(path, rows=120, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    label = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    lines = ["a,b,c,label"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{y}" for r, y in zip(x, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_training_options_and_splits_are_printed_and_recorded(tmp_path, cli_run):
    data = _csv(tmp_path / "train.csv")
    db = tmp_path / "a.sqlite"
    out = cli_run("compare", "--data", str(data), "--label-column", "label", "--losses",
                  "cross_entropy,m", "--seeds", "1", "--epochs", "2", "--optimizer", "sgd",
                  "--momentum", "0.5", "--scheduler", "cosine", "--warmup-epochs", "1",
                  "--grad-clip", "2", "--test-fraction", "0.25", "--db", str(db))
    assert out.returncode == 0, out.stderr
    assert "train 90, test 30" in out.stdout and "sgd lr 0.001" in out.stdout
    assert "schedule cosine after 1 warmup epoch(s)" in out.stdout and "device cpu" in out.stdout
    training = ResultsStore(db).runs()[0]["config"]["training"]
    assert (training["optimizer"], training["momentum"], training["scheduler"],
            training["warmup_epochs"], training["grad_clip"]) == ("sgd", 0.5, "cosine", 1, 2.0)
    test_file = _csv(tmp_path / "test.csv", rows=50, seed=1)
    out = cli_run("compare", "--data", str(data), "--label-column", "label", "--losses",
                  "cross_entropy", "--seeds", "1", "--epochs", "1", "--test-data", str(test_file),
                  "--db", str(tmp_path / "b.sqlite"))
    assert out.returncode == 0, out.stderr
    assert "train 120, test 50" in out.stdout


def test_cli_bad_training_options_name_the_option(tmp_path, cli_run):
    data = _csv(tmp_path / "train.csv")
    out = cli_run("compare", "--data", str(data), "--label-column", "label", "--warmup-epochs", "9",
                  "--epochs", "3", "--db", str(tmp_path / "c.sqlite"))
    assert out.returncode != 0 and "--warmup-epochs: expected an integer from 0 to epochs - 1" in out.stderr
    out = cli_run("compare", "--data", str(data), "--label-column", "label", "--nesterov",
                  "--db", str(tmp_path / "c.sqlite"))
    assert out.returncode != 0 and "--nesterov: needs optimizer 'sgd'" in out.stderr
    out = cli_run("compare", "--task", "digits-mlp", "--test-fraction", "0.3",
                  "--db", str(tmp_path / "c.sqlite"))
    assert out.returncode != 0 and "--test-fraction goes with --data FILE.csv" in out.stderr
