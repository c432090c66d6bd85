"""Results as tables: one row per run (its config and final metrics) or per (run, epoch).

``runs_frame`` and ``curves_frame`` read a results database into pandas DataFrames;
``write_csv`` writes both as CSV files (``losslab report --csv DIR``). Nested config values
become dotted columns (``training.lr``, ``data.options.max_train``); the reliability bins stay
out of the tables (they live in the database and the report's figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from losslab.experiments.classification.storage import ResultsStore, RunStore

_SKIPPED_EPOCH_KEYS = ("reliability", "run_id")
_SKIPPED_CONFIG_KEYS = ("samples", "selection")


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(config, dict):
        return {prefix: config if not isinstance(config, (list, tuple)) else repr(list(config))}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if not prefix and key in _SKIPPED_CONFIG_KEYS:
            continue
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _store(db: str | Path | ResultsStore) -> ResultsStore:
    if isinstance(db, RunStore):
        return db
    if not Path(db).is_file():
        raise FileNotFoundError(f"db: no results database at {db}")
    return ResultsStore(db, readonly=True)


def runs_frame(db: str | Path | ResultsStore, *, stage: str | None = "test") -> Any:
    """One row per run: identity, status, config (dotted columns) and the last epoch's metrics
    (``final_*``; empty for a run with no epoch yet)."""
    import pandas as pd

    store = _store(db)
    rows = []
    for run in store.runs(stage=stage):
        epochs = store.epochs(run["run_id"])
        row: dict[str, Any] = {"run_id": run["run_id"], "task": run["task"], "loss": run["loss"],
                               "seed": run["seed"], "stage": run["stage"], "status": run["status"],
                               "epochs_planned": run["epochs"], "epochs_done": len(epochs)}
        row.update({f"config.{k}": v for k, v in _flat(run["config"]).items()
                    if k not in ("task", "loss", "seed", "stage")})
        if epochs:
            row.update({f"final_{k}": v for k, v in epochs[-1].items()
                        if k not in _SKIPPED_EPOCH_KEYS and k not in ("epoch", "recorded_utc")})
        rows.append(row)
    return pd.DataFrame(rows)


def curves_frame(db: str | Path | ResultsStore, *, stage: str | None = "test") -> Any:
    """One row per recorded epoch of every run: identity and that epoch's metrics."""
    import pandas as pd

    store = _store(db)
    rows = []
    for run in store.runs(stage=stage):
        for epoch in store.epochs(run["run_id"]):
            rows.append({"run_id": run["run_id"], "task": run["task"], "loss": run["loss"],
                         "seed": run["seed"], "stage": run["stage"],
                         "lr": run["config"]["training"]["lr"],
                         **{k: v for k, v in epoch.items() if k not in _SKIPPED_EPOCH_KEYS}})
    return pd.DataFrame(rows)


def write_csv(db: str | Path | ResultsStore, out_dir: str | Path) -> tuple[Path, Path]:
    """``runs.csv`` and ``curves.csv`` of every stage's runs in ``out_dir``; returns both paths
    (written inside ``out_dir``, a symlink at either name replaced, never followed)."""
    from losslab._paths import ensure_folder, inside, write_text

    out = ensure_folder(out_dir, option="csv")
    runs_path, curves_path = inside(out, "runs.csv", file=True), inside(out, "curves.csv", file=True)
    write_text(runs_path, runs_frame(db, stage=None).to_csv(index=False))
    write_text(curves_path, curves_frame(db, stage=None).to_csv(index=False))
    return runs_path, curves_path
