"""The in-memory store runs the protocols in-process exactly as the SQLite store does."""

from __future__ import annotations

from losslab.experiments.classification import (
    ResultsStore,
    TuningSettings,
    planned_task,
    run_grid,
    run_tuned,
)
from losslab.experiments.classification.protocols.tuning import read_halving
from losslab.experiments.classification.storage import EPOCH_FIELDS, MemoryStore

FIELDS = tuple(name for name in EPOCH_FIELDS if name != "wall_time")


def _task(epochs: int = 2):
    return planned_task("digits-mlp", overrides={"epochs": epochs, "max_train": 160, "max_test": 60})


def _curves(store) -> dict:
    return {(run["stage"], run["loss"], run["seed"], run["config_hash"]):
            [tuple(epoch[name] for name in FIELDS) for epoch in store.epochs(run["run_id"])]
            for run in store.runs(stage=None)}


def test_a_grid_on_the_memory_store_matches_sqlite_bit_for_bit(tmp_path):
    memory = MemoryStore()
    first = run_grid([_task()], ["cross_entropy", "m"], [0, 1], db=memory, threads=1,
                     progress=False, log=lambda _: None)
    assert first.trained == 4
    again = run_grid([_task()], ["cross_entropy", "m"], [0, 1], db=memory, threads=1,
                     progress=False, log=lambda _: None)
    assert (again.trained, again.skipped) == (0, 4)
    disk = ResultsStore(tmp_path / "disk.sqlite")
    run_grid([_task()], ["cross_entropy", "m"], [0, 1], db=disk, threads=1, progress=False,
             log=lambda _: None)
    assert _curves(memory) == _curves(disk) and len(_curves(memory)) == 4


def test_the_tuned_protocol_on_the_memory_store_chooses_as_on_sqlite(tmp_path):
    tuning = TuningSettings(lr_grid=(1e-3, 1e-2), sweep_epochs=2, lr_extend_decades=0,
                            scheduler="asha", halving_eta=2)
    results = {}
    for name, store in (("memory", MemoryStore()), ("sqlite", ResultsStore(tmp_path / "t.sqlite"))):
        tuned = run_tuned([_task()], ["cross_entropy", "m"], [0], db=store, tuning=tuning,
                          threads=1, progress=False, log=lambda _: None)
        assert not tuned.failed
        halving = read_halving(store, _task().config(), tuning.protocol(_task()), "m")
        results[name] = ({key: (s.lr, s.scores) for key, s in tuned.selections.items()},
                         halving["decisions"], _curves(store))
    assert results["memory"] == results["sqlite"]

