"""Leases in execution: renewed while a run trains, taken over once expired, on any host.

A real ``compare`` process trains under ``--lease 2``; while it trains its run's lease keeps
moving forward (the controller's heartbeat). It is then SIGKILLed and its row rewritten as
if another host had owned the run (owner token and process namespace of "elsewhere"): the
run stays busy while that owner's lease is live, and the next ``compare`` takes it over
once the lease has expired, says so, and finishes it exactly once, bit-identical to a run
that was never interrupted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from losslab.experiments.classification import planned_task, run_grid

SRC = str(Path(__file__).resolve().parents[2] / "src")
EPOCHS = 30
# Small batches: epochs slow enough (about 0.2 s) to watch the lease while the run trains.
ARGUMENTS = ["--task", "digits-mlp", "--losses", "cross_entropy", "--seeds", "1", "--epochs", str(EPOCHS),
             "--max-train", "1000", "--max-test", "100", "--batch-size", "8", "--threads", "1",
             "--no-progress"]
FOREIGN_OWNER = "elsewhere-host:4242:deadbeef"
METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losslab.cli", "compare", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def _query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def _write(db: Path, sql: str, params: tuple = ()) -> None:
    connection = sqlite3.connect(db, timeout=10)
    try:
        with connection:
            connection.execute(sql, params)
    finally:
        connection.close()


def _epochs(db: Path) -> list[tuple]:
    return _query(db, f"SELECT epoch, {', '.join(METRICS)} FROM epochs ORDER BY epoch")


def test_a_run_killed_under_another_host_is_taken_over_after_its_lease_and_finishes_once(tmp_path):
    db = tmp_path / "leased.sqlite"
    first = subprocess.Popen(_cli(*ARGUMENTS, "--lease", "2", "--db", str(db)), env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if db.exists() and _query(db, "SELECT COUNT(*) FROM epochs")[0][0] >= 1:
                    break
            except sqlite3.OperationalError:  # tables not created yet
                pass
            time.sleep(0.05)
        assert first.poll() is None, f"the run ended before it could be killed: {first.stderr.read()!r}"
        # The heartbeat renews every lease / 4 = 0.5 s: the expiry moves forward while it trains.
        (status, lease_seconds, expires_before), = _query(
            db, "SELECT status, lease_seconds, lease_expires FROM runs")
        assert (status, lease_seconds) == ("running", 2.0)
        time.sleep(1.5)
        (status, expires_after), = _query(db, "SELECT status, lease_expires FROM runs")
        if status == "running":  # (on a very fast machine the run may have finished)
            assert expires_after > expires_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    killed = _epochs(db)
    assert 1 <= len(killed) < EPOCHS, "nothing was interrupted"

    # As if another host had owned the run and renewed its lease a moment ago.
    _write(db, "UPDATE runs SET owner = ?, owner_scope = ?, lease_expires = ?",
           (FOREIGN_OWNER, "elsewhere-host|pid:[4026531836]", time.time() + 600))
    task = planned_task("digits-mlp", overrides={"epochs": EPOCHS, "max_train": 1000, "max_test": 100,
                                                 "batch_size": 8})
    busy = run_grid([task], ["cross_entropy"], [0], db=db, threads=1, progress=False,
                    log=lambda _: None, lease=2)
    assert busy.busy == 1 and busy.trained == 0 and not busy.taken_over
    assert _query(db, "SELECT status, owner FROM runs") == [("running", FOREIGN_OWNER)]
    assert _epochs(db) == killed

    # That owner stopped renewing: its lease ran out a second ago.
    _write(db, "UPDATE runs SET lease_expires = ?", (time.time() - 1,))
    second = subprocess.run(_cli(*ARGUMENTS, "--lease", "2", "--db", str(db)), env=_env(),
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 run(s) taken over from an owner whose lease had expired:" in second.stdout
    assert f"digits-mlp/cross_entropy/seed 0 (from {FOREIGN_OWNER})" in second.stdout
    assert "1 trained" in second.stdout + second.stderr
    # One run row, finished; every epoch exactly once; the take-over recorded once.
    assert _query(db, "SELECT status, owner FROM runs") == [("finished", None)]
    resumed = _epochs(db)
    assert [row[0] for row in resumed] == list(range(1, EPOCHS + 1))
    assert resumed[:len(killed)] == killed
    takeovers = _query(db, "SELECT run_id, previous_owner, reason FROM takeovers")
    assert len(takeovers) == 1 and takeovers[0][:2] == (1, FOREIGN_OWNER)
    assert "lease expired" in takeovers[0][2]

    clean = tmp_path / "clean.sqlite"
    run_grid([task], ["cross_entropy"], [0], db=clean, threads=1, progress=False, log=lambda _: None)
    assert _epochs(clean) == resumed  # bit-for-bit the run that was never interrupted


def test_lease_must_be_a_positive_number_of_seconds(tmp_path, cli_run):
    task = planned_task("digits-mlp", overrides={"epochs": 1, "max_train": 100, "max_test": 50})
    for bad in (0, -1.0, float("nan"), float("inf"), "10", True):
        with pytest.raises(ValueError, match=r"^lease: expected a positive number of seconds, got "):
            run_grid([task], ["cross_entropy"], [0], db=tmp_path / "x.sqlite", lease=bad,
                     progress=False, log=lambda _: None)
    outcome = cli_run("compare", *ARGUMENTS[:-1], "--lease", "0", "--db", str(tmp_path / "cli.sqlite"))
    assert outcome.returncode == 2
    assert "--lease: expected a positive number of seconds, got 0.0" in outcome.stderr
    assert not (tmp_path / "x.sqlite").exists() and not (tmp_path / "cli.sqlite").exists()
