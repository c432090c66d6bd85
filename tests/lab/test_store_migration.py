"""A database written by the store before application ids and leases (tests/fixtures/README.md)
still loads, reports and resumes; opening it for writing migrates it in place."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
import warnings
from pathlib import Path

import pytest

from losslab.cli import main as cli_main
from losslab.experiments.classification import ResultsStore, TuningSettings, planned_task
from losslab.experiments.classification.protocols.tuning import read_halving
from losslab.experiments.classification.reporting.report import load_results
from losslab.experiments.classification.storage import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    StoreRowWarning,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "legacy_main.sqlite"
SHARED = ["--task", "digits-mlp", "--losses", "cross_entropy,m", "--seeds", "2", "--epochs", "2",
          "--max-train", "300", "--max-test", "200", "--no-progress", "--threads", "1"]
TUNED = ["--protocol", "tuned", "--lr-points", "3", "--lr-decades", "1", "--sweep-epochs", "2",
         "--sweep-seeds", "1", "--sweep-scheduler", "asha", "--until-decided", "--max-seeds", "3"]


@pytest.fixture
def legacy(tmp_path) -> Path:
    db = tmp_path / "legacy.sqlite"
    shutil.copyfile(FIXTURE, db)
    return db


def _raw(db: Path) -> tuple[list, list]:
    """Every run's identity and config and every epoch, read with plain sqlite3."""
    with sqlite3.connect(db) as connection:
        runs = connection.execute("SELECT run_id, task, loss, seed, stage, config_hash, config, "
                                  "status FROM runs ORDER BY run_id").fetchall()
        epochs = connection.execute("SELECT * FROM epochs ORDER BY run_id, epoch").fetchall()
    return runs, epochs


def _header(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as connection:
        return (connection.execute("PRAGMA application_id").fetchone()[0],
                connection.execute("PRAGMA user_version").fetchone()[0])


def test_the_fixture_is_what_the_earlier_release_wrote():
    assert _header(FIXTURE) == (0, 0)
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro&immutable=1", uri=True) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    assert "lease_expires" not in columns


def test_read_only_it_is_read_as_it_is(legacy):
    digest = hashlib.sha256(legacy.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreRowWarning)  # every row of the fixture is valid
        store = ResultsStore(legacy, readonly=True)
        runs = store.runs(stage=None)
        assert len(runs) == 22 and store.version == 1
        assert sum(len(store.epochs(run["run_id"])) for run in runs) == 40
        assert store.takeovers() == []
        assert store.meta.get_until_decided("digits-mlp")["target"]["max_seeds"] == 3
        assert [r["status"] for r in runs].count("paused") == 4
        with pytest.raises(Exception, match="opened read-only"):
            store.pause(runs[0]["run_id"])
        store.close()
    assert hashlib.sha256(legacy.read_bytes()).hexdigest() == digest
    assert _header(legacy) == (0, 0)


def test_opening_it_for_writing_migrates_in_place_and_keeps_every_row(legacy):
    before = _raw(legacy)
    store = ResultsStore(legacy)
    assert store.version == SCHEMA_VERSION
    store.close()
    assert _header(legacy) == (APPLICATION_ID, SCHEMA_VERSION)
    assert _raw(legacy) == before
    with sqlite3.connect(legacy) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
        assert {"owner_scope", "lease_seconds", "lease_expires"} <= columns
    ResultsStore(legacy).close()  # a second open changes nothing more
    assert _raw(legacy) == before


def test_it_reports_with_its_protocol_records(legacy, tmp_path):
    groups = load_results(legacy)
    assert [(g.label, g.protocol, len(g.runs)) for g in groups] == [
        ("digits-mlp — fixed protocol", "fixed", 4), ("digits-mlp — tuned protocol", "tuned", 6)]
    tuned = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 300, "max_test": 200})
    tuning = TuningSettings(lr_points=3, lr_decades=1, sweep_epochs=2, sweep_seeds=1, scheduler="asha")
    store = ResultsStore(legacy, readonly=True)
    for loss in ("cross_entropy", "m"):
        halving = read_halving(store, tuned.config(), tuning.protocol(tuned), loss)
        assert halving is not None and halving["epochs_saved"] == 2
    out = tmp_path / "report"
    assert cli_main(["report", "--db", str(legacy), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "Seeds per round: 2 → 3" in text  # the until-decided record in meta


def test_rerunning_its_commands_trains_nothing(legacy, capsys):
    before = _raw(legacy)
    assert cli_main(["compare", *SHARED, "--db", str(legacy)]) == 0
    fixed = capsys.readouterr().out
    assert "4 test runs in the grid: 4 already finished, 0 to train" in fixed
    assert cli_main(["compare", *SHARED, *TUNED, "--db", str(legacy)]) == 0
    tuned = capsys.readouterr().out
    counts = re.findall(r"done in [0-9.]+ s: (\d+) trained", fixed + tuned)
    assert len(counts) >= 3 and set(counts) == {"0"}  # every grid: nothing trained
    # the same selections as when the fixture was made (from the same sweep rows)
    assert "learning rate chosen on the validation split: cross_entropy 0.03162, m 0.009999" in tuned
    after = _raw(legacy)
    assert after == before  # the same keys and config hashes: every run was found as it was
