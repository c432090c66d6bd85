"""Leases end to end: a grid resumes a run whose owner on another host stopped renewing, once,
and leaves a run alone while its owner's lease is live."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from losslab.experiments.classification import ResultsStore, planned_task, run_grid

METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")


def _task():
    return planned_task("digits-mlp", overrides={"epochs": 3, "max_train": 200, "max_test": 80})


def _curves(db: Path) -> dict:
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            f"SELECT r.loss, e.epoch, {', '.join('e.' + m for m in METRICS)} FROM runs r "
            "JOIN epochs e USING (run_id) ORDER BY r.loss, e.epoch").fetchall()
    result: dict = {}
    for loss, *rest in rows:
        result.setdefault(loss, []).append(tuple(rest))
    return result


def _owned_elsewhere(tmp_path: Path, lease_expires: float) -> Path:
    """A database whose run of loss m stopped after epoch 2 while 'node7' owned it."""
    db = tmp_path / "moved.sqlite"

    def crash(task_label, loss, seed, epoch, metrics):
        if loss == "m" and epoch == 2:
            raise RuntimeError("node7 lost power")

    run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
             log=lambda _: None, on_epoch=crash)
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE runs SET status = 'running', owner = 'node7:4242:0badcafe', "
            "owner_scope = 'node7|pid:[4026531836]', lease_seconds = 120, lease_expires = ? "
            "WHERE loss = 'm'", (lease_expires,))
    return db


def test_an_expired_lease_from_another_host_is_taken_over_and_finishes_once(tmp_path):
    db = _owned_elsewhere(tmp_path, lease_expires=time.time() - 1)
    lines: list[str] = []
    result = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                      log=lines.append)
    assert (result.trained, result.skipped, result.busy) == (1, 1, 0) and not result.failed
    [takeover] = ResultsStore(db).takeovers()
    assert takeover.previous_owner == "node7:4242:0badcafe" and "lease expired" in takeover.reason
    curves = _curves(db)
    assert [row[0] for row in curves["m"]] == [1, 2, 3]  # resumed after epoch 2, each epoch once
    clean = tmp_path / "clean.sqlite"
    run_grid([_task()], ["cross_entropy", "m"], [0], db=clean, threads=1, progress=False, log=lambda _: None)
    assert curves == _curves(clean)
    again = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                     log=lambda _: None)
    assert again.trained == 0 and len(ResultsStore(db).takeovers()) == 1
    run = next(r for r in ResultsStore(db).runs() if r["loss"] == "m")
    assert run["status"] == "finished" and run["owner"] is None and run["lease_expires"] is None


def test_a_live_lease_from_another_host_is_left_alone(tmp_path):
    db = _owned_elsewhere(tmp_path, lease_expires=time.time() + 600)
    result = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                      log=lambda _: None)
    assert (result.trained, result.busy) == (0, 1)
    assert ResultsStore(db).takeovers() == []
    assert [row[0] for row in _curves(db)["m"]] == [1, 2]  # untouched: its owner may still write
