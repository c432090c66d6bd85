"""The comparison harness end to end: grid runs, a real SIGKILL and resume, workers, errors.

Every test trains scikit-learn's digits (bundled, offline) with a small MLP for a few epochs,
on one torch thread, so runs are fast and bit-for-bit reproducible.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from losslab.experiments.classification import (
    ResultsStore,
    ResultsStoreError,
    compare,
    planned_task,
    run_grid,
)
from losslab.experiments.classification.storage import sqlite as store_module

METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")


def _digits_task(epochs: int = 3, max_train: int = 300, max_test: int = 120):
    return planned_task("digits-mlp", overrides={"epochs": epochs, "max_train": max_train,
                                                 "max_test": max_test})


def _results(db: Path) -> dict[tuple[str, str, int], list[tuple[int, tuple[float, ...]]]]:
    """{(task, loss, seed): [(epoch, metrics), ...]} read with plain sqlite3."""
    connection = sqlite3.connect(db)
    rows = connection.execute(
        f"SELECT r.task, r.loss, r.seed, e.epoch, {', '.join('e.' + m for m in METRICS)} "
        "FROM runs r JOIN epochs e USING (run_id) ORDER BY r.task, r.loss, r.seed, e.epoch"
    ).fetchall()
    connection.close()
    result: dict = {}
    for task, loss, seed, epoch, *metrics in rows:
        result.setdefault((task, loss, seed), []).append((epoch, tuple(metrics)))
    return result


def _run_counts(db: Path) -> list[tuple[str, str, int, int, str]]:
    connection = sqlite3.connect(db)
    rows = connection.execute(
        "SELECT task, loss, seed, COUNT(*) OVER (PARTITION BY task, loss, seed), status FROM runs"
    ).fetchall()
    connection.close()
    return rows


def test_grid_run_records_every_epoch_once_and_rerun_skips(tmp_path):
    db = tmp_path / "results.sqlite"
    task = _digits_task(epochs=3)
    first = run_grid([task], ["cross_entropy", "m"], [0, 1], db=db, threads=1, progress=False,
                     log=lambda _: None)
    assert first.trained == 4 and first.skipped == 0 and not first.failed
    results = _results(db)
    assert sorted(results) == [("digits-mlp", loss, seed) for loss in ("cross_entropy", "m") for seed in (0, 1)]
    for epochs in results.values():
        assert [epoch for epoch, _ in epochs] == [1, 2, 3]
        for _, metrics in epochs:
            train_accuracy, eval_accuracy = metrics[1], metrics[3]
            assert 0.0 <= train_accuracy <= 1.0 and 0.0 <= eval_accuracy <= 1.0
            assert metrics[5] > 0.0  # the logits received a gradient
    # Training moved the model: better than chance (0.1) on the test split after 3 epochs.
    assert all(epochs[-1][1][3] > 0.3 for epochs in results.values())
    # Different seeds give different runs; the same seed gives the same initial model for
    # both losses, so the first-epoch train loss differs only through the loss itself.
    assert results[("digits-mlp", "cross_entropy", 0)] != results[("digits-mlp", "cross_entropy", 1)]
    second = run_grid([task], ["cross_entropy", "m"], [0, 1], db=db, threads=1, progress=False,
                      log=lambda _: None)
    assert second.trained == 0 and second.skipped == 4
    assert _results(db) == results
    assert all(count == 1 and status == "finished" for *_, count, status in _run_counts(db))
    store = ResultsStore(db)
    runs = store.runs()
    assert {run["environment"]["packages"]["torch"] for run in runs} == {importlib.metadata.version("torch")}
    assert {run["environment"]["packages"]["losslab"] for run in runs} == {importlib.metadata.version("losslab")}
    assert all(run["config"]["training"]["lr"] == 1e-3 and run["config"]["seed"] == run["seed"] for run in runs)
    assert store.query("SELECT COUNT(*) AS n FROM checkpoints")[0]["n"] == 0  # dropped when finished


def test_grad_magnitude_matches_a_hand_computation(tmp_path):
    # One linear layer, full batch, one epoch: the recorded mean |dLoss_i/dlogit| must equal
    # |softmax(z_i) - onehot(y_i)| averaged over classes and samples at the initial weights.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=40)

    result = compare((x, y), (x, y), model_factory=_linear_5_3, losses=["cross_entropy"], seeds=[4],
                     db=tmp_path / "r.sqlite", epochs=1, batch_size=40, progress=False,
                     log=lambda _: None, threads=1)
    torch.manual_seed(4)
    model = _linear_5_3()
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x)), dim=1).double()
    grad = (p - torch.nn.functional.one_hot(torch.from_numpy(y), 3).double()).abs().mean(dim=1)
    store = ResultsStore(tmp_path / "r.sqlite")
    epoch = store.epochs(result.grid.run_ids[("arrays", "cross_entropy", 4)])[0]
    assert epoch["grad_mean"] == pytest.approx(float(grad.mean()), rel=1e-5)
    assert epoch["grad_sd"] == pytest.approx(float(grad.std(unbiased=False)), rel=1e-4)


def _linear_5_3() -> torch.nn.Module:
    return torch.nn.Linear(5, 3)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losslab.cli", "compare", *args]


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path):
    db = tmp_path / "killed.sqlite"
    arguments = ["--task", "digits-mlp", "--losses", "cross_entropy,m,full_l", "--seeds", "2",
                 "--epochs", "6", "--max-train", "400", "--max-test", "150", "--threads", "1",
                 "--no-progress"]
    process = subprocess.Popen(_cli(*arguments, "--db", str(db)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    recorded = 0
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as connection:
                    recorded = connection.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
            except sqlite3.OperationalError:  # tables not created yet
                recorded = 0
            if recorded >= 1:
                break
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()!r}"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    after_kill = _results(db)
    assert after_kill, "no epoch was recorded before the kill"
    total_epochs = sum(len(epochs) for epochs in after_kill.values())
    assert total_epochs < 6 * 6, "the grid had finished: nothing was interrupted"
    statuses = {status for *_, status in _run_counts(db)}
    assert "running" in statuses  # the killed run was left half-done

    rerun = subprocess.run(_cli(*arguments, "--db", str(db)), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = _results(db)
    # Every (task, loss, seed) exactly once, every epoch exactly once, all finished.
    assert all(count == 1 and status == "finished" for *_, count, status in _run_counts(db))
    assert sorted(resumed) == sorted(("digits-mlp", loss, seed) for loss in ("cross_entropy", "m", "full_l")
                                     for seed in (0, 1))
    for epochs in resumed.values():
        assert [epoch for epoch, _ in epochs] == list(range(1, 7))
    for key, epochs in after_kill.items():  # what was recorded before the kill was kept as is
        assert resumed[key][: len(epochs)] == epochs

    clean_db = tmp_path / "clean.sqlite"
    clean = subprocess.run(_cli(*arguments, "--db", str(clean_db)), capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    assert _results(clean_db) == resumed  # bit-for-bit the same as never having been killed


def test_in_process_failure_resumes_from_checkpoint_exactly(tmp_path, monkeypatch):
    # Force file checkpoints (the path used for big models) to exercise that branch too.
    monkeypatch.setattr(store_module, "BLOB_LIMIT_BYTES", 0)
    task = _digits_task(epochs=4)
    db = tmp_path / "interrupted.sqlite"

    def crash_at_epoch_2(task_label, loss, seed, epoch, metrics):
        if loss == "m" and epoch == 2:
            raise RuntimeError("simulated crash")

    first = run_grid([task], ["cross_entropy", "m"], [3], db=db, threads=1, progress=False,
                     log=lambda _: None, on_epoch=crash_at_epoch_2)
    assert len(first.failed) == 1 and "simulated crash" in first.failed[0]
    partial = _results(db)
    assert [epoch for epoch, _ in partial[("digits-mlp", "m", 3)]] == [1, 2]
    checkpoint_files = list((tmp_path / "interrupted.sqlite.checkpoints").iterdir())
    assert [f.name for f in checkpoint_files] == [f"run{2}-epoch2.pt"]
    second = run_grid([task], ["cross_entropy", "m"], [3], db=db, threads=1, progress=False,
                      log=lambda _: None)
    assert second.trained == 1 and second.skipped == 1
    assert not list((tmp_path / "interrupted.sqlite.checkpoints").iterdir())  # removed when finished
    clean = tmp_path / "clean.sqlite"
    run_grid([task], ["cross_entropy", "m"], [3], db=clean, threads=1, progress=False, log=lambda _: None)
    assert _results(db) == _results(clean)


def test_two_workers_give_the_same_results_as_one(tmp_path):
    task = _digits_task(epochs=2, max_train=200, max_test=80)
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    run_grid([task], ["cross_entropy", "l"], [0, 1], db=one, threads=1, progress=False, log=lambda _: None)
    result = run_grid([task], ["cross_entropy", "l"], [0, 1], db=two, workers=2, threads=1,
                      progress=False, log=lambda _: None)
    assert result.trained == 4 and not result.failed
    assert _results(two) == _results(one)


def test_compare_accepts_arrays_and_datasets_alike(tmp_path):
    from torch.utils.data import TensorDataset

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    common = {"model_factory": _linear_5_3, "losses": ["cross_entropy", "full_m"], "seeds": 2,
              "epochs": 3, "batch_size": 16, "progress": False, "log": lambda _: None, "threads": 1}
    arrays = compare((x[:40], y[:40]), (x[40:], y[40:]), db=tmp_path / "a.sqlite", **common)
    datasets = compare(
        TensorDataset(torch.from_numpy(x[:40]), torch.from_numpy(y[:40])),
        TensorDataset(torch.from_numpy(x[40:]), torch.from_numpy(y[40:])),
        db=tmp_path / "b.sqlite", **common,
    )
    assert _results(tmp_path / "a.sqlite") == _results(tmp_path / "b.sqlite")
    accuracy = arrays.final_accuracy()["arrays"]
    assert set(accuracy) == {"cross_entropy", "full_m"} and set(accuracy["full_m"]) == {0, 1}
    assert datasets.tasks[0].comparisons()[1].paired.n == 2
    assert "full_m" in arrays.markdown()


# --- bad input ------------------------------------------------------------------------------


@pytest.fixture
def _cli_run(cli_run):
    return cli_run


def test_unknown_task_and_loss_list_the_valid_ones(tmp_path, _cli_run):
    with pytest.raises(ValueError, match=r"unknown task 'digit-mlp'.*digits-mlp.*fashion-mnist-cnn"):
        planned_task("digit-mlp")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge_x'.*cross_entropy.*full_m"):
        run_grid([_digits_task()], ["cross_entropy", "hinge_x"], [0], db=tmp_path / "x.sqlite",
                 progress=False, log=lambda _: None)
    with pytest.raises(ValueError, match="'mse' is a regression loss"):
        run_grid([_digits_task()], ["mse"], [0], db=tmp_path / "x.sqlite", progress=False,
                 log=lambda _: None)
    assert not (tmp_path / "x.sqlite").exists()  # rejected before any database was made
    cli = _cli_run("compare", "--task", "digits-mlp", "--losses", "ce,bogus", "--db",
                   str(tmp_path / "y.sqlite"))
    assert cli.returncode == 2 and "unknown loss 'bogus'" in cli.stderr and "full_l" in cli.stderr


def test_csv_bad_columns_and_single_class(tmp_path, _cli_run):
    csv = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{rng.normal():.4f},{rng.normal():.4f},{'yes' if i % 2 else 'no'}"
                            for i in range(40)]
    csv.write_text("\n".join(rows) + "\n")
    missing = _cli_run("compare", "--data", str(csv), "--label-column", "target", "--db",
                       str(tmp_path / "c.sqlite"))
    assert missing.returncode == 2
    assert "target" in missing.stderr and "label" in missing.stderr  # names the valid columns
    single = tmp_path / "single.csv"
    single.write_text("a,b,label\n" + "".join(f"{i},{i * 2},same\n" for i in range(20)))
    one_class = _cli_run("compare", "--data", str(single), "--label-column", "label", "--db",
                         str(tmp_path / "c.sqlite"))
    assert one_class.returncode == 2 and "single class" in one_class.stderr


def test_csv_numeric_task_trains_on_train_standardised_features(tmp_path, _cli_run):
    from losslab.experiments.classification import csv_task

    rng = np.random.default_rng(2)
    features = rng.normal(loc=50.0, scale=10.0, size=(80, 3))
    labels = (features[:, 0] > 50).astype(int)
    csv = tmp_path / "numbers.csv"
    csv.write_text("f1,f2,f3,cls\n" + "".join(
        f"{a:.5f},{b:.5f},{c:.5f},{'ab'[k]}\n" for (a, b, c), k in zip(features, labels)))
    planned = csv_task(csv, label_column="cls", training={"epochs": 2})
    data = planned.source.load()
    prepared = planned.source.prepare("test")
    train = np.asarray(data.x_train, dtype=np.float64)
    expected = (np.asarray(data.x_test, dtype=np.float64) - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(prepared.x_eval.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prepared.x_train.numpy().mean(axis=0), 0.0, atol=1e-5)
    out = _cli_run("compare", "--data", str(csv), "--label-column", "cls", "--losses", "ce,l",
                   "--seeds", "2", "--epochs", "2", "--db", str(tmp_path / "n.sqlite"),
                   "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "| l | 2 |" in out.stdout


def test_unreadable_database_is_a_clear_error(tmp_path, _cli_run):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("this is not a database\n" * 100)
    with pytest.raises(ResultsStoreError, match="not a readable losslab results database"):
        ResultsStore(bogus)
    assert bogus.read_text().startswith("this is not a database")  # untouched
    with pytest.raises(ResultsStoreError, match="is a directory"):
        ResultsStore(tmp_path)
    cli = _cli_run("compare", "--task", "digits-mlp", "--losses", "ce", "--seeds", "1",
                   "--db", str(bogus))
    assert cli.returncode == 2 and "not a readable losslab results database" in cli.stderr
    report = _cli_run("report", "--db", str(tmp_path / "absent.sqlite"), "--out", str(tmp_path / "r"))
    assert report.returncode == 2 and "no results database" in report.stderr


def test_locked_database_fails_clearly_and_loses_nothing(tmp_path):
    db = tmp_path / "locked.sqlite"
    task = _digits_task(epochs=2, max_train=150, max_test=60)
    run_grid([task], ["cross_entropy"], [0], db=db, threads=1, progress=False, log=lambda _: None)
    before = _results(db)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(ResultsStoreError, match="locked by another process"):
            run_grid([task], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                     log=lambda _: None, timeout=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _results(db) == before
    done = run_grid([task], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                    log=lambda _: None)
    assert done.trained == 1 and done.skipped == 1
    assert _results(db)[("digits-mlp", "cross_entropy", 0)] == before[("digits-mlp", "cross_entropy", 0)]


def test_data_that_cannot_be_found_says_how_to_get_it(tmp_path, _cli_run):
    with pytest.raises(ValueError, match="pass --path"):
        planned_task("cifar10-vgg")
    missing = tmp_path / "no-cifar"
    cli = _cli_run("compare", "--task", "cifar10-vgg", "--path", str(missing), "--db",
                   str(tmp_path / "d.sqlite"), "--seeds", "1")
    assert cli.returncode == 2
    assert str(missing) in cli.stderr and "how to get it: download CIFAR-10" in cli.stderr
    if (tmp_path / "d.sqlite").exists():  # nothing was registered for a task without data
        assert ResultsStore(tmp_path / "d.sqlite").runs() == []


def test_report_command_writes_tables_and_curves(tmp_path, _cli_run):
    db = tmp_path / "r.sqlite"
    run_grid([_digits_task(epochs=2, max_train=150, max_test=60)], ["cross_entropy", "m"], [0, 1],
             db=db, threads=1, progress=False, log=lambda _: None)
    out = _cli_run("report", "--db", str(db), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| m | 2 |" in markdown and "Δ vs CE" in markdown
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html
    assert list((tmp_path / "report" / "figures").glob("curves-*.png"))


def test_reproduce_section_puts_paper_tables_beside_ours_and_skips_missing_data(tmp_path):
    from losslab.experiments.classification.reporting.section import (
        TABLES,
        StandIn,
        TableSpec,
        build_section,
    )
    from losslab.experiments.reproduce import ReproduceContext

    tiny = TableSpec(
        3, TABLES[1].paper_setting, TABLES[1].paper, differences="tiny digits for the test",
        stand_ins={"quick": StandIn("digits-mlp", {"epochs": 2, "max_train": 200, "max_test": 80})},
    )
    unavailable = TableSpec(2, TABLES[0].paper_setting, TABLES[0].paper, differences="needs a path",
                            stand_ins={"quick": StandIn("cifar10-vgg")})
    messages: list[str] = []
    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=0, log=messages.append,
                               options={"classification_workers": 1})
    overview, missing, table = build_section(context, tables=(unavailable, tiny))
    assert overview.order == 50 and missing.order == 51 and table.order == 52
    assert "Stand-in `cifar10-vgg` could not be loaded" in missing.markdown
    assert "pass --path" in missing.markdown
    assert missing.data["claim"]["verdict"] == "undecided"
    text = table.markdown
    assert "**Stand-in:** `digits-mlp`" in text
    # The decision comes first: ranked lines before the stand-in and the tables.
    assert text.index("**Decision (fixed protocol)**") < text.index("**Stand-in:**") < text.index("| M |")
    assert "**The paper's claim:**" in text
    # The paper's Table 3 numbers and their differences from CE sit beside ours.
    assert "| M | 0.7800 | +4.00 |" in text and "| CE / BCE | 0.7400 |  |" in text
    ours = overview.data["tables"]["3"]["fixed"]["ours"]
    assert set(ours) == {"cross_entropy", "l", "m", "full_l", "full_m"}
    assert all(row["summary"]["n"] == 3 for row in ours.values())
    store = ResultsStore(tmp_path / "classification" / "results.sqlite")
    accuracy = {run["loss"]: [] for run in store.runs()}
    for run in store.runs():
        accuracy[run["loss"]].append(store.epochs(run["run_id"])[-1]["eval_accuracy"])
    assert ours["m"]["summary"]["mean"] == pytest.approx(float(np.mean(accuracy["m"])), rel=1e-12)
    assert table.figures and table.figures[0].png.exists()
    assert [claim["table"] for claim in overview.data["claims"]] == [2, 3]
    # A second build resumes from the database: nothing is trained again.
    messages.clear()
    build_section(context, tables=(unavailable, tiny))
    assert any("15 already finished, 0 to train" in line for line in messages)


def test_a_table_at_the_majority_class_collapses_to_one_line(tmp_path, monkeypatch):
    from losslab.experiments.classification import section as section_module
    from losslab.experiments.reproduce import ReproduceContext

    assert section_module.at_prior([0.555, 0.5551, 0.5549], 0.555)
    assert not section_module.at_prior([0.555, 0.57], 0.555)
    assert not section_module.at_prior([], 0.555)
    tiny = section_module.TableSpec(
        4, section_module.TABLES[2].paper_setting, section_module.TABLES[2].paper,
        differences="tiny", stand_ins={"quick": section_module.StandIn(
            "digits-mlp", {"epochs": 1, "max_train": 150, "max_test": 60}, seeds=2)})
    # Pretend every run sat at the class prior (the check itself is tested above).
    monkeypatch.setattr(section_module, "at_prior", lambda finals, majority: True)
    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=0, log=lambda _: None,
                               options={"classification_workers": 1})
    overview, table = section_module.build_section(context, tables=(tiny,))
    assert "did not learn in this budget" in table.markdown
    assert "| M |" not in table.markdown and not table.figures  # no table, no plot
    assert overview.data["claims"][0]["verdict"] == "undecided"
    assert "majority class" in overview.data["claims"][0]["reason"]


def test_csv_text_column_trains_the_lstm_and_unknown_text_column_is_named(tmp_path, _cli_run):
    words = {"good": ["great", "lovely", "fine", "happy"], "bad": ["awful", "poor", "sad", "broken"]}
    rng = np.random.default_rng(5)
    lines = ["review,mood"]
    for i in range(60):
        mood = "good" if i % 2 else "bad"
        lines.append(" ".join(rng.choice(words[mood], size=5)) + f",{mood}")
    csv = tmp_path / "reviews.csv"
    csv.write_text("\n".join(lines) + "\n")
    bad = _cli_run("compare", "--data", str(csv), "--label-column", "mood", "--text-column", "text",
                   "--db", str(tmp_path / "t.sqlite"))
    assert bad.returncode == 2 and "'text'" in bad.stderr and "review" in bad.stderr
    good = _cli_run("compare", "--data", str(csv), "--label-column", "mood", "--text-column", "review",
                    "--losses", "ce,full_m", "--seeds", "1", "--epochs", "2", "--threads", "1",
                    "--db", str(tmp_path / "t.sqlite"))
    assert good.returncode == 0, good.stderr
    run = ResultsStore(tmp_path / "t.sqlite").runs()[0]
    assert run["config"]["data"]["model"] == "lstm" and run["status"] == "finished"
    assert run["config"]["data"]["options"] == {"label_column": "mood", "text_column": "review"}


def _spawned_workers(parent: int) -> list[int]:
    """Pids of the multiprocessing workers (not the resource tracker) under ``parent``."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    workers = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(pid)
    return workers


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finding worker pids needs Linux /proc")
def test_sigkill_of_one_worker_process_is_reported_and_the_rerun_completes(tmp_path):
    db = tmp_path / "workers.sqlite"
    arguments = ["--task", "digits-mlp", "--losses", "cross_entropy,m", "--seeds", "3", "--epochs", "8",
                 "--max-train", "400", "--max-test", "150", "--threads", "1", "--workers", "2",
                 "--no-progress"]
    process = subprocess.Popen(_cli(*arguments, "--db", str(db)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    victim = None
    while time.monotonic() < deadline and process.poll() is None and victim is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as connection:
                    recorded = connection.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
            except sqlite3.OperationalError:
                recorded = 0
            workers = _spawned_workers(process.pid)
            if recorded >= 1 and workers:
                victim = workers[0]
        time.sleep(0.01)
    assert victim is not None, "no worker was seen training before the grid ended"
    os.kill(victim, signal.SIGKILL)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert "a worker process died" in stderr and "run the same command again to resume" in stderr
    before = _results(db)
    rerun = subprocess.run(_cli(*arguments, "--db", str(db)), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    after = _results(db)
    assert all(count == 1 and status == "finished" for *_, count, status in _run_counts(db))
    assert len(after) == 6 and all([e for e, _ in epochs] == list(range(1, 9)) for epochs in after.values())
    for key, epochs in before.items():
        assert after[key][: len(epochs)] == epochs
