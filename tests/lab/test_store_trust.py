"""The results file as input from a stranger: planted paths, traversal and markup in rows,
and files that are not losslab databases at all."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import warnings
from pathlib import Path

import pytest

from losslab.cli import main as cli_main
from losslab.experiments.classification import (
    ResultsStore,
    ResultsStoreError,
    planned_task,
    run_grid,
)
from losslab.experiments.classification.reporting.report import load_results
from losslab.experiments.classification.storage import StoreRowWarning
from losslab.experiments.classification.storage import sqlite as sqlite_store
from losslab.experiments.classification.storage.export import runs_frame

METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")


def _task(epochs: int = 3):
    return planned_task("digits-mlp", overrides={"epochs": epochs, "max_train": 200, "max_test": 80})


def _curves(db: Path) -> dict:
    """{(loss, seed): [(epoch, metrics...)]} of the test runs, read with plain sqlite3."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            f"SELECT r.loss, r.seed, e.epoch, {', '.join('e.' + m for m in METRICS)} FROM runs r "
            "JOIN epochs e USING (run_id) WHERE r.task = 'digits-mlp' ORDER BY r.loss, r.seed, e.epoch"
        ).fetchall()
    result: dict = {}
    for loss, seed, *rest in rows:
        result.setdefault((loss, seed), []).append(tuple(rest))
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interrupted(db: Path) -> None:
    """A grid whose run of loss m stopped after epoch 2 (its checkpoint kept)."""
    def crash(task_label, loss, seed, epoch, metrics):
        if loss == "m" and epoch == 2:
            raise RuntimeError("simulated crash")

    first = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                     log=lambda _: None, on_epoch=crash)
    assert len(first.failed) == 1


def _plant_hostile_rows(db: Path) -> None:
    """Runs a stranger added: traversal in loss, task and seed, markup in text fields."""
    config = json.dumps({"task": "digits-mlp", "data": {"dataset": "<script>alert(1)</script>"}})
    with sqlite3.connect(db) as connection:
        for task, loss, seed in [("digits-mlp", "/tmp/absolute-loss", 0),
                                 ("../../outside", "cross_entropy", 0),
                                 ("digits-mlp", "cross_entropy", "0/../../somewhere"),
                                 ("<img src=x onerror=alert(1)>", "m", 0)]:
            connection.execute(
                "INSERT INTO runs (task, loss, seed, stage, config_hash, config, epochs, status, "
                "created_utc) VALUES (?, ?, ?, 'test', 'feedfacefeedface', ?, 3, 'finished', 'now')",
                (task, loss, seed, config))


def test_a_planted_checkpoint_path_never_deletes_its_target_on_resume(tmp_path):
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    db = tmp_path / "hostile.sqlite"
    _interrupted(db)
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 1
        connection.execute("UPDATE checkpoints SET path = ?", (str(victim),))
    _plant_hostile_rows(db)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreRowWarning)
        second = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                          log=lambda _: None)
    assert second.trained == 1 and not second.failed
    assert victim.read_text() == "keep me"
    clean = tmp_path / "clean.sqlite"
    run_grid([_task()], ["cross_entropy", "m"], [0], db=clean, threads=1, progress=False, log=lambda _: None)
    assert _curves(db) == _curves(clean)  # resumed from its own checkpoint: bit-identical
    assert not Path("/tmp/absolute-loss").exists() and not (tmp_path.parent / "outside").exists()


def test_a_planted_path_to_a_file_checkpoint_is_ignored(tmp_path, monkeypatch):
    # States in files (big models): the file's name derives from the database and two integers.
    monkeypatch.setattr(sqlite_store, "BLOB_LIMIT_BYTES", 0)
    victim = tmp_path / "victim.pt"
    victim.write_bytes(b"not a checkpoint")
    db = tmp_path / "files.sqlite"
    _interrupted(db)
    folder = tmp_path / "files.sqlite.checkpoints"
    assert [f.name for f in folder.iterdir()] == ["run2-epoch2.pt"]
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE checkpoints SET path = ?", (str(victim),))
    second = run_grid([_task()], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
                      log=lambda _: None)
    assert second.trained == 1 and not second.failed
    assert victim.read_bytes() == b"not a checkpoint"  # neither read, nor written, nor deleted
    assert list(folder.iterdir()) == []  # the run's own derived files are cleaned up
    clean = tmp_path / "clean.sqlite"
    run_grid([_task()], ["cross_entropy", "m"], [0], db=clean, threads=1, progress=False, log=lambda _: None)
    assert _curves(db) == _curves(clean)  # restarted from scratch: the same results


def test_the_derived_checkpoint_name_of_an_earlier_release_is_still_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "BLOB_LIMIT_BYTES", 0)
    db = tmp_path / "old.sqlite"
    _interrupted(db)
    store = ResultsStore(db)
    derived = store.checkpoint_file(2, 2)
    with sqlite3.connect(db) as connection:  # how earlier releases recorded the same file
        connection.execute("UPDATE checkpoints SET path = ?", (str(derived),))
    point = store.resume_point(2)
    assert point is not None and point.epoch == 2 and point.state == derived.read_bytes()


def test_a_symlinked_checkpoint_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "BLOB_LIMIT_BYTES", 0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "s.sqlite.checkpoints").symlink_to(elsewhere)
    with pytest.raises(ResultsStoreError, match="s.sqlite.checkpoints is a symlink"):
        run_grid([_task(epochs=2)], ["m"], [0], db=tmp_path / "s.sqlite", threads=1,
                 progress=False, log=lambda _: None)
    assert list(elsewhere.iterdir()) == []


def test_hostile_rows_are_reported_and_skipped_by_every_reader(tmp_path, capsys):
    db = tmp_path / "hostile.sqlite"
    run_grid([_task(epochs=1)], ["cross_entropy", "m"], [0], db=db, threads=1, progress=False,
             log=lambda _: None)
    _plant_hostile_rows(db)
    with pytest.warns(StoreRowWarning) as caught:
        groups = load_results(db)
        frame = runs_frame(db)
    messages = {str(w.message).split(": ", 1)[1] for w in caught}
    assert {"row 3 of table runs: loss is not a plain name (letters, digits and _ . : = , + -); "
            "the row is skipped",
            "row 5 of table runs: seed is not an integer; the row is skipped"} <= messages
    assert any(m.startswith("row 4 of table runs: task is not a plain name") for m in messages)
    assert any(m.startswith("row 6 of table runs: task is not a plain name") for m in messages)
    assert [(run["loss"], run["seed"]) for g in groups for run in g.runs] == [("cross_entropy", 0), ("m", 0)]
    assert sorted(frame["loss"]) == ["cross_entropy", "m"]
    out = tmp_path / "report"
    code = cli_main(["report", "--db", str(db), "--out", str(out)])
    shown = [line for line in capsys.readouterr().err.splitlines() if "of table runs" in line]
    assert len(shown) == 4  # one plain line per bad row, however often the report reads it
    assert f"losslab report: warning: {db}: row 5 of table runs: seed is not an integer; the row is skipped" in shown
    assert code == 0
    text = (out / "report.md").read_text()
    for planted in ("absolute-loss", "somewhere", "outside", "onerror"):
        assert planted not in text


# -- foreign files --------------------------------------------------------------------------


def _foreign_files(folder: Path) -> dict[str, Path]:
    files = {}
    customers = folder / "customers.sqlite"
    with sqlite3.connect(customers) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO customers (name) VALUES ('Ada')")
    files["rollback-journal SQLite"] = customers
    wal = folder / "wal.sqlite"
    connection = sqlite3.connect(wal)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE runs (x)")  # one of losslab's table names, not the schema
    connection.commit()
    connection.close()
    files["WAL SQLite with a runs table"] = wal
    other_app = folder / "other-app.db"
    with sqlite3.connect(other_app) as connection:
        connection.execute("PRAGMA application_id = 1234")
        for table in ("meta", "runs", "epochs", "checkpoints"):
            connection.execute(f"CREATE TABLE {table} (x)")
    files["another application id"] = other_app
    empty = folder / "empty.sqlite"
    with sqlite3.connect(empty) as connection:
        connection.execute("PRAGMA user_version = 7")
    files["SQLite without tables"] = empty
    text = folder / "notes.sqlite"
    text.write_text("name,score\nada,3\n" * 50)
    files["a text file"] = text
    return files


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_foreign_files_are_refused_and_left_byte_for_byte_unchanged(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    files = _foreign_files(folder)
    before = _snapshot(folder)
    for what, path in files.items():
        for readonly in (False, True):
            with pytest.raises(ResultsStoreError, match="is not a readable losslab results database") as error:
                ResultsStore(path, readonly=readonly)
            assert "left it unchanged" in str(error.value), what
    assert _snapshot(folder) == before  # same files (no -wal, -shm or -journal), same bytes
    with pytest.raises(ResultsStoreError, match="its application id is 0x4d2, not losslab's 0x4c4c4142"):
        ResultsStore(files["another application id"])


def test_report_and_compare_refuse_a_foreign_file(tmp_path, capsys):
    folder = tmp_path / "theirs"
    folder.mkdir()
    files = _foreign_files(folder)
    before = _snapshot(folder)
    for path in (files["rollback-journal SQLite"], files["WAL SQLite with a runs table"], files["a text file"]):
        assert cli_main(["report", "--db", str(path), "--out", str(tmp_path / "r")]) == 2
        assert "is not a readable losslab results database" in capsys.readouterr().err
        code = cli_main(["compare", "--task", "digits-mlp", "--losses", "cross_entropy,m", "--seeds", "1",
                         "--epochs", "1", "--max-train", "100", "--max-test", "50", "--threads", "1",
                         "--no-progress", "--db", str(path)])
        captured = capsys.readouterr()
        assert code == 2 and "is not a readable losslab results database" in captured.err
        assert "trained" not in captured.out
    assert _snapshot(folder) == before
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_a_newer_schema_is_refused(tmp_path):
    db = tmp_path / "new.sqlite"
    ResultsStore(db).close()
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(ResultsStoreError, match="schema version 99, newer than this losslab's 2"):
        ResultsStore(db)


def test_a_new_database_carries_the_application_id_and_version(tmp_path):
    db = tmp_path / "fresh.sqlite"
    ResultsStore(db).close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == 0x4C4C4142
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    empty = tmp_path / "touched.sqlite"
    empty.touch()  # an empty file is a new database, not a foreign one
    ResultsStore(empty).close()
    assert empty.stat().st_size > 0
    with pytest.raises(ResultsStoreError, match="no results database at"):
        ResultsStore(tmp_path / "absent.sqlite", readonly=True)
    assert not (tmp_path / "absent.sqlite").exists()
