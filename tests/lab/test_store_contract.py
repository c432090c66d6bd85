"""The storage contract, run against every store: SQLite on disk and the in-memory store.

Rows are planted raw (plain sqlite3 for the file, the row lists for memory) to check what each
store does with values it did not write.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import time
import warnings

import numpy as np
import pytest

from losslab.experiments.classification.storage import (
    DEFAULT_LEASE_SECONDS,
    EPOCH_FIELDS,
    LeaseKeeper,
    MemoryStore,
    ResultsStore,
    RunKey,
    RunStatus,
    StoreRowWarning,
)

METRICS = {name: 0.25 + i / 16 for i, name in enumerate(EPOCH_FIELDS)}
CONFIG = {"task": "digits-mlp", "loss": "m", "seed": 3, "stage": "test", "training": {"lr": 1e-3}}
KEY = RunKey("digits-mlp", "m", 3, "test", "0123456789abcdef")


class Planter:
    """Raw access to a store's rows, the way a stranger edits the file."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        self.db = tmp_path / "contract.sqlite"
        self.store = ResultsStore(self.db) if kind == "sqlite" else MemoryStore()

    def set_run(self, run_id: int, **values) -> None:
        if self.kind == "memory":
            next(r for r in self.store.tables["runs"] if r["run_id"] == run_id).update(values)
            return
        with sqlite3.connect(self.db) as connection:
            assignments = ", ".join(f"{name} = ?" for name in values)
            connection.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values.values(), run_id))

    def set_epoch(self, run_id: int, which: int, values: dict) -> None:
        if self.kind == "memory":
            next(r for r in self.store.tables["epochs"]
                 if r["run_id"] == run_id and r["epoch"] == which).update(values)
            return
        with sqlite3.connect(self.db) as connection:
            assignments = ", ".join(f"{name} = ?" for name in values)
            connection.execute(f"UPDATE epochs SET {assignments} WHERE run_id = ? AND epoch = ?",
                               (*values.values(), run_id, which))

    def put_meta(self, key: str, value: str) -> None:
        if self.kind == "memory":
            self.store.tables["meta"].append({"key": key, "value": value})
            return
        with sqlite3.connect(self.db) as connection:
            connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


@pytest.fixture(params=["sqlite", "memory"])
def planter(request, tmp_path):
    planter = Planter(request.param, tmp_path)
    yield planter
    planter.store.close()


def _register(store, key: RunKey = KEY, config=CONFIG, epochs: int = 3) -> int:
    return store.ensure_run(key, config, epochs=epochs)


def test_runs_are_identified_by_their_key(planter):
    store = planter.store
    run_id = _register(store)
    assert _register(store) == run_id  # idempotent
    other = _register(store, RunKey("digits-mlp", "m", 4, "test", "0123456789abcdef"),
                      {**CONFIG, "seed": 4})
    assert other != run_id
    assert store.find_run(KEY) == (run_id, RunStatus.PENDING)
    assert isinstance(store.find_run(KEY)[1], RunStatus)
    assert store.find_run(RunKey("digits-mlp", "m", 3, "sweep", "0123456789abcdef")) is None
    [run, _] = store.runs()
    assert run["config"] == CONFIG and run["status"] == "pending" and run["seed"] == 3
    assert store.runs(status="pending") == store.runs(status=RunStatus.PENDING) == store.runs()
    with pytest.raises(ValueError, match="status: expected one of pending, running"):
        store.runs(status="done")


@pytest.mark.parametrize("field, value, message", [
    ("task", "../x", "task: not a plain name"),
    ("loss", "m<script>", "loss: not a plain name"),
    ("stage", "", "stage: not a plain name"),
])
def test_keys_that_could_not_be_read_back_are_refused(planter, field, value, message):
    fields = {"task": KEY.task, "loss": KEY.loss, "seed": KEY.seed, "stage": KEY.stage,
              "config_hash": KEY.config_hash, field: value}
    with pytest.raises(ValueError, match=message):
        planter.store.ensure_run(RunKey(**fields), CONFIG, epochs=1)
    with pytest.raises(ValueError, match="seed: expected an integer, got '1'"):
        planter.store.ensure_run(RunKey("t", "m", "1", "test", "h"), CONFIG, epochs=1)


def test_a_csv_stem_with_spaces_is_a_valid_label(planter):
    key = RunKey("my reviews", "cross_entropy", 0, "test", "h")
    run_id = planter.store.ensure_run(key, {"task": "my reviews"}, epochs=1)
    assert [r["run_id"] for r in planter.store.runs()] == [run_id]


@pytest.mark.parametrize("stem, label", [
    ("digits", "digits"), ("my reviews", "my reviews"), ("reviews (2024)", "reviews _2024_"),
    ("a/b\\c", "a_b_c"), ("<img src=x>", "_img src=x_"), ("..", "data"), ("  ", "data"),
])
def test_plain_label(stem, label):
    from losslab.experiments.classification.storage.validation import (
        identifier_problem,
        plain_label,
    )

    assert plain_label(stem) == label
    assert identifier_problem(plain_label(stem), "task", label=True) is None


def test_epochs_checkpoints_and_resume(planter):
    store = planter.store
    run_id = _register(store)
    assert store.claim(run_id, {"host": "here"})
    assert store.resume_point(run_id) is None
    store.record_epoch(run_id, 1, METRICS, b"state-1", final=False)
    store.record_epoch(run_id, 2, {**METRICS, "eval_macro_f1": 0.5, "reliability": {"count": [1.0, 2.0]}},
                       b"state-2", final=False)
    point = store.resume_point(run_id)
    assert (point.epoch, point.state) == (2, b"state-2")
    epochs = store.epochs(run_id)
    assert [e["epoch"] for e in epochs] == [1, 2] and store.epoch_count(run_id) == 2
    assert epochs[1]["eval_macro_f1"] == 0.5 and epochs[1]["reliability"] == {"count": [1.0, 2.0]}
    assert all(epochs[0][name] == METRICS[name] for name in EPOCH_FIELDS)
    store.record_epoch(run_id, 3, METRICS, None, final=True)
    assert store.status(run_id) == RunStatus.FINISHED and store.status(run_id).done
    assert store.claim(run_id, {}) is None  # finished: nothing to claim


def test_missing_checkpoint_restarts_the_run_cleanly(planter):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    store.record_epoch(run_id, 1, METRICS, None, final=False)  # no state kept for epoch 1
    assert store.resume_point(run_id) is None
    assert store.epochs(run_id) == []  # the epoch without its state is dropped


def test_statuses_and_release(planter):
    store = planter.store
    run_id = _register(store)
    claim = store.claim(run_id, {})
    assert store.status(run_id) == "running"
    store.pause(run_id)
    assert store.status(run_id) is RunStatus.PAUSED
    assert not store.renew(run_id, claim.owner)  # pausing released the lease
    claim = store.claim(run_id, {})
    store.fail(run_id, "RuntimeError: boom")
    assert store.status(run_id) is RunStatus.FAILED and store.run(run_id)["error"] == "RuntimeError: boom"
    assert not store.renew(run_id, claim.owner)
    store.claim(run_id, {})
    store.diverge(run_id, "FloatingPointError: nan")
    assert store.status(run_id) is RunStatus.DIVERGED and store.claim(run_id, {}) is None


def test_sample_sets_round_trip(planter):
    ids = np.array([5, 3, 9, 0], dtype=np.int64)
    digest = planter.store.put_sample_set(ids)
    assert planter.store.put_sample_set(ids.copy()) == digest
    np.testing.assert_array_equal(planter.store.sample_set(digest), ids)
    with pytest.raises(KeyError, match="is not in"):
        planter.store.sample_set("0" * 64)


def test_meta_records_keep_the_keys_earlier_releases_wrote(planter):
    store = planter.store
    record = {"rounds": [{"seeds": [0, 1]}], "stopped": "decided"}
    store.meta.put_until_decided("digits-mlp", record)
    assert store.meta.get_until_decided("digits-mlp") == record
    assert store.meta.get_until_decided("other") is None
    store.meta.put_halving("digits-mlp", "1a4bd84f25c8f4bb", "m", {"eta": 3})
    assert store.meta.get_halving("digits-mlp", "1a4bd84f25c8f4bb", "m") == {"eta": 3}
    if planter.kind == "sqlite":
        keys = {row["key"]: row["value"] for row in store.query("SELECT key, value FROM meta")}
        assert keys["until_decided:digits-mlp"] == json.dumps(record)
        assert keys["sweep_scheduler:digits-mlp:1a4bd84f25c8f4bb:m"] == '{"eta": 3}'
    planter.put_meta("until_decided:broken", "{not json")
    with pytest.warns(StoreRowWarning, match="row until_decided:broken of table meta: value is not a JSON object"):
        assert store.meta.get_until_decided("broken") is None
    with pytest.raises(ValueError, match="task: not a plain name"):
        store.meta.put_until_decided("../x", record)


# -- leases ------------------------------------------------------------------------------


def test_a_claim_is_a_lease_with_an_owner_token(planter):
    store = planter.store
    run_id = _register(store)
    before = time.time()
    claim = store.claim(run_id, {"host": "here"}, lease_seconds=30)
    host, pid, random = claim.owner.split(":")
    assert host == socket.gethostname() and int(pid) > 0 and len(random) == 8
    assert claim.taken_over_from is None and claim.lease_seconds == 30.0
    assert before + 30 <= claim.expires_at <= time.time() + 30
    assert store.run(run_id)["owner"] == claim.owner
    assert DEFAULT_LEASE_SECONDS == 120.0
    with pytest.raises(ValueError, match="lease_seconds: expected a positive number"):
        store.claim(run_id, {}, lease_seconds=0)


def test_renew_extends_the_lease_and_fails_once_it_is_lost(planter):
    store = planter.store
    run_id = _register(store)
    claim = store.claim(run_id, {}, lease_seconds=50)
    planter.set_run(run_id, lease_expires=time.time() + 1)
    assert store.renew(run_id, claim.owner)
    assert store.run(run_id)["lease_expires"] >= time.time() + 49  # a full lease again
    assert not store.renew(run_id, "otherhost:1:deadbeef")
    planter.set_run(run_id, owner="otherhost:1:deadbeef")  # someone else holds it now
    assert not store.renew(run_id, claim.owner)


def test_an_expired_lease_of_another_host_is_taken_over_and_recorded(planter):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    planter.set_run(run_id, owner="node7:4242:0badcafe", owner_scope="node7|pid:[1]",
                    lease_expires=time.time() - 5)
    claim = store.claim(run_id, {})
    assert claim is not None and claim.taken_over_from == "node7:4242:0badcafe"
    [takeover] = store.takeovers()
    assert (takeover.run_id, takeover.previous_owner, takeover.owner) == (run_id, "node7:4242:0badcafe", claim.owner)
    assert "lease expired" in takeover.reason


def test_a_live_lease_of_another_host_is_never_taken_over(planter):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    planter.set_run(run_id, owner="node7:4242:0badcafe", owner_scope="node7|pid:[1]",
                    lease_expires=time.time() + 60)
    assert store.claim(run_id, {}) is None
    assert store.status(run_id) == "running" and store.run(run_id)["owner"] == "node7:4242:0badcafe"
    assert store.takeovers() == []


def test_a_dead_process_on_this_host_is_taken_over_at_once(planter):
    import subprocess
    import sys

    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # its id now names no process (reaped)
    row = store.run(run_id)
    planter.set_run(run_id, owner=f"{socket.gethostname()}:{child.pid}:0badcafe",
                    owner_scope=row["owner_scope"], lease_expires=time.time() + 60)
    claim = store.claim(run_id, {})
    assert claim is not None and claim.taken_over_from.endswith(":0badcafe")
    assert f"process {child.pid}" in store.takeovers()[0].reason


def test_a_live_process_on_this_host_keeps_its_lease(planter):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    row = store.run(run_id)
    planter.set_run(run_id, owner=f"{socket.gethostname()}:1:0badcafe",  # pid 1 is alive
                    owner_scope=row["owner_scope"], lease_expires=time.time() + 60)
    assert store.claim(run_id, {}) is None
    planter.set_run(run_id, lease_expires=time.time() - 1)  # ... until its lease expires
    assert store.claim(run_id, {}).taken_over_from == f"{socket.gethostname()}:1:0badcafe"


def test_rows_from_before_leases(planter):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    # "host:pid" ownership, no lease: another host's claim is taken over (it never renews) ...
    planter.set_run(run_id, owner="laptop:77", owner_scope=None, lease_expires=None, lease_seconds=None)
    assert store.claim(run_id, {}).taken_over_from == "laptop:77"
    # ... a live process of this host keeps it
    planter.set_run(run_id, owner=f"{socket.gethostname()}:1", owner_scope=None, lease_expires=None)
    assert store.claim(run_id, {}) is None


def test_the_lease_keeper_renews_while_a_run_trains(planter):
    store = planter.store
    run_id = _register(store)
    claim = store.claim(run_id, {}, lease_seconds=0.4)
    with LeaseKeeper(store, claim) as keeper:
        time.sleep(1.0)  # 2.5 leases: without renewals it would have expired
        assert store.run(run_id)["lease_expires"] > time.time()
        planter.set_run(run_id, owner_scope="node7|pid:[1]")
        assert store.claim(run_id, {}) is None  # live: renewed
    assert keeper.lost == set()
    planter.set_run(run_id, lease_expires=time.time() - 1)
    assert store.claim(run_id, {}).taken_over_from == claim.owner


def test_a_claim_abandoned_in_this_process_is_reclaimed_without_waiting(planter):
    store = planter.store
    run_id = _register(store)
    first = store.claim(run_id, {}, lease_seconds=600)  # never released (an interrupt)
    second = store.claim(run_id, {})
    assert second is not None and second.owner != first.owner
    assert second.taken_over_from is None and store.takeovers() == []  # not another owner


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("values, message", [
    ({"seed": "0/../../x"}, "seed is not an integer"),
    ({"seed": 1.5}, "seed is not an integer"),
    ({"loss": "/abs/path"}, "loss is not a plain name"),
    ({"task": "../../etc"}, "task is not a plain name"),
    ({"task": "<script>alert(1)</script>"}, "task is not a plain name"),
    ({"stage": "te st"}, "stage is not a plain name"),
    ({"status": "<b>done</b>"}, "status is not a run status"),
    ({"config": "[1, 2]"}, "config is not a JSON object"),
    ({"config": "{bad"}, "config is not a JSON object"),
    ({"config": json.dumps({**CONFIG, "loss": "l"})}, "config's loss does not match the loss column"),
    ({"environment": "null"}, "environment is not a JSON object"),
    ({"config": json.dumps({**CONFIG, "training": [1]})}, "config's training is not an object"),
    ({"config": json.dumps({**CONFIG, "samples": {"train": {"sha256": "x", "count": 1}}})},
     "config's samples.train is not a sample record"),
    ({"owner": "a/b:1:x"}, "owner is not a plain owner token"),
    ({"lease_expires": "soon"}, "lease_expires is not a finite number"),
])
def test_a_bad_run_row_is_reported_once_and_skipped(planter, values, message):
    store = planter.store
    good = _register(store, RunKey("digits-mlp", "m", 4, "test", "h"), {**CONFIG, "seed": 4})
    bad = _register(store)
    store.claim(bad, {})
    planter.set_run(bad, **values)
    with pytest.warns(StoreRowWarning) as caught:
        assert [run["run_id"] for run in store.runs(stage=None)] == [good]
        assert store.run(bad) is None
        assert [run["run_id"] for run in store.runs(stage=None)] == [good]
    texts = [str(w.message) for w in caught if issubclass(w.category, StoreRowWarning)]
    assert len(texts) == 1  # once, however often it is read
    assert texts[0].startswith(f"{store.path}: row {bad} of table runs: {message}")
    assert texts[0].endswith("; the row is skipped")
    with pytest.raises(KeyError, match=f"run {bad} is not a valid run"):
        store.status(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreRowWarning)
        assert store.claim(bad, {}) is None


@pytest.mark.parametrize("values, message", [
    ({"epoch": "2/../x"}, "epoch is not an integer"),
    ({"train_loss": "NaN"}, "train_loss is not a finite number"),
    ({"eval_accuracy": math.inf}, "eval_accuracy is not a finite number"),
    ({"extra": '{"ece": "<img>"}'}, "extra is not a JSON object of finite numbers"),
    ({"extra": '{"ece": NaN}'}, "extra is not a JSON object of finite numbers"),
    ({"extra": '{"epoch": 9}'}, "extra repeats the column epoch"),
])
def test_a_bad_epoch_row_is_reported_and_skipped(planter, values, message):
    store = planter.store
    run_id = _register(store)
    store.claim(run_id, {})
    store.record_epoch(run_id, 1, METRICS, b"s1", final=False)
    store.record_epoch(run_id, 2, METRICS, b"s2", final=False)
    planter.set_epoch(run_id, 2, values)
    with pytest.warns(StoreRowWarning, match=f"of table epochs: {message}; the row is skipped"):
        assert [e["epoch"] for e in store.epochs(run_id)] == [1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreRowWarning)
        # the checkpoint is after epoch 2, whose row is not valid: restart, never mix
        assert store.resume_point(run_id) is None
        assert store.epochs(run_id) == []
