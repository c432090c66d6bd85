"""Every run's curves in the trackers practitioners use: TensorBoard and MLflow.

The results database stays the source of truth; these exporters replay it, so they work after
any backend, resume after a crash, and are idempotent:

- :func:`export_tensorboard` writes one event folder per run (``TASK/LOSS/seed-N[-sweep-lr-X]``)
  through ``torch.utils.tensorboard.SummaryWriter``, one scalar per metric and epoch. A run
  exported again is rewritten, never duplicated. The folder names are built only from
  sanitised names (:func:`losslab._paths.safe_component`) and integers, and checked to lie
  inside the log folder: a database from someone else cannot point the exporter elsewhere.
- :func:`export_mlflow` logs one MLflow run per (task, loss, seed, stage), nested under one
  parent run per comparison (task and configuration), with the run's settings as params and
  every epoch's metrics with their step. Runs already exported with all their epochs are
  skipped (found by the ``losslab.run`` tag).

Both need optional packages: ``pip install 'losslab[tracking]'`` (tensorboard, mlflow-skinny).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from losslab._paths import UnsafePathError, ensure_folder, inside, safe_component
from losslab.experiments.classification.storage import ResultsStore, RunStore, config_hash

# Scalars exported per epoch (the reliability bins are not scalars).
_SKIPPED = ("epoch", "run_id", "recorded_utc", "reliability")


def _runs(store: ResultsStore, run_ids: set[int] | None) -> list[dict[str, Any]]:
    return [run for run in store.runs(stage=None) if run_ids is None or run["run_id"] in run_ids]


def _run_name(run: dict[str, Any]) -> str:
    name = f"seed-{run['seed']}"
    if run["stage"] != "test":
        name += f"-{run['stage']}-lr-{run['config']['training']['lr']:g}"
    return name


def _run_folder(root: Path, run: dict[str, Any]) -> Path:
    """``root/TASK/LOSS/seed-N[...]`` of a run, from sanitised names and an integer seed.

    Raises:
        UnsafePathError: the seed is not an integer, or the folder would resolve outside
            ``root`` (a symlink planted inside it).
    """
    seed = run["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UnsafePathError(f"run {run.get('run_id')}: seed {seed!r} is not an integer")
    folder = inside(root, safe_component(run["task"]), safe_component(run["loss"]),
                    safe_component(_run_name(run)))
    if folder.resolve() == root.resolve():
        raise UnsafePathError(f"run {run.get('run_id')}: its folder would be the log folder itself")
    return folder


def _scalars(epoch: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in epoch.items()
            if k not in _SKIPPED and isinstance(v, (int, float))}


def export_tensorboard(db: str | Path | ResultsStore, log_dir: str | Path, *,
                       run_ids: set[int] | None = None) -> int:
    """Write every run's (or those of ``run_ids``) curves as TensorBoard event files under
    ``log_dir``; returns the number of runs written."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # torch's writer needs the tensorboard package
        raise ImportError("--tensorboard needs the tensorboard package: pip install "
                          "'losslab[tracking]'") from error
    root = ensure_folder(log_dir, option="tensorboard")
    store = db if isinstance(db, RunStore) else ResultsStore(db, readonly=True)
    written = 0
    for run in _runs(store, run_ids):
        epochs = store.epochs(run["run_id"])
        if not epochs:
            continue
        try:
            folder = _run_folder(root, run)
            if folder.is_symlink() or folder.is_file():
                folder.unlink()  # the link itself (inside the log folder), never its target
            elif folder.exists():
                shutil.rmtree(folder)  # a rerun rewrites the run: no duplicated points
            ensure_folder(folder, option="tensorboard")
        except UnsafePathError as error:
            from losslab.data._core import DataWarning  # the CLI prints it as one plain line

            warnings.warn(f"tensorboard: {error}; run skipped", DataWarning, stacklevel=2)
            continue
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for epoch in epochs:
                for name, value in _scalars(epoch).items():
                    writer.add_scalar(name, value, epoch["epoch"])
        finally:
            writer.close()
        written += 1
    return written


def check_mlflow_uri(tracking_uri: object) -> str:
    """``tracking_uri`` if it can name an MLflow store: a non-empty string with no quote,
    backslash or control character (MLflow's search filters cannot quote them).

    Raises:
        ValueError: naming ``mlflow`` and the value given.
    """
    if not isinstance(tracking_uri, str) or not tracking_uri.strip():
        raise ValueError(f"mlflow: expected a tracking URI or a local folder, got {tracking_uri!r}")
    if any(char in tracking_uri for char in "'\"\\") or any(ord(char) < 32 for char in tracking_uri):
        raise ValueError("mlflow: expected a tracking URI or a folder without quotes, backslashes "
                         f"or control characters, got {tracking_uri!r}")
    return tracking_uri


def _tag_value(text: str) -> str:
    """``text`` as a tag value that an MLflow search filter can quote: unchanged unless it
    holds a quote or a backslash (a database path can), else a digest of it."""
    if not any(char in text for char in "'\"\\"):
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in config.items():
        if key in ("samples", "selection"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            params.update(_params(value, name + "."))
        else:
            params[name] = str(value)[:500]  # MLflow caps a param's length
    return params


def export_mlflow(db: str | Path | ResultsStore, tracking_uri: str, *,
                  experiment: str = "losslab", run_ids: set[int] | None = None) -> int:
    """Log every run (or those of ``run_ids``) to MLflow at ``tracking_uri``: one child run
    per (task, loss, seed, stage) under a parent run per comparison; returns the number of
    runs logged (runs already there with all their epochs are skipped)."""
    try:
        import mlflow
        from mlflow import MlflowClient
    except ImportError as error:
        raise ImportError("--mlflow needs MLflow: pip install 'losslab[tracking]'") from error
    check_mlflow_uri(tracking_uri)
    local = "://" not in tracking_uri or tracking_uri.startswith("file:")
    if local:
        # MLflow keeps the plain-folder store in maintenance mode behind this switch; a local
        # folder is what a user without a tracking server has.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if "://" not in tracking_uri:
            tracking_uri = Path(tracking_uri).resolve().as_uri()
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    store = db if isinstance(db, RunStore) else ResultsStore(db, readonly=True)
    database = str(store.path.resolve())
    logged = 0
    parents: dict[str, str] = {}
    for run in _runs(store, run_ids):
        epochs = store.epochs(run["run_id"])
        if not epochs:
            continue
        key = _tag_value(f"{database}#{run['run_id']}")
        existing = client.search_runs([experiment_id], f"tags.`losslab.run` = '{key}'")
        if existing and existing[0].data.tags.get("losslab.epochs") == str(len(epochs)):
            continue
        for stale in existing:  # exported before it finished: replaced by the complete run
            client.delete_run(stale.info.run_id)
        shared = {k: v for k, v in run["config"].items()
                  if k not in ("loss", "seed", "stage", "samples", "selection")}
        if run["stage"] == "test" and "protocol" in shared:
            shared["training"] = {k: v for k, v in shared["training"].items() if k != "lr"}
        group = _tag_value(f"{database}#{run['task']}#{run['stage']}#{config_hash(shared)}")
        if group not in parents:
            previous = client.search_runs([experiment_id], f"tags.`losslab.comparison` = '{group}'")
            if previous:
                parents[group] = previous[0].info.run_id
            else:
                parent = client.create_run(experiment_id, run_name=f"{run['task']} ({run['stage']})",
                                           tags={"losslab.comparison": group,
                                                 "losslab.database": database})
                client.log_batch(parent.info.run_id, params=[
                    mlflow.entities.Param(k, v) for k, v in _params(shared).items()])
                client.set_terminated(parent.info.run_id)
                parents[group] = parent.info.run_id
        child = client.create_run(
            experiment_id, run_name=f"{run['loss']} {_run_name(run)}",
            tags={"mlflow.parentRunId": parents[group], "losslab.run": key,
                  "losslab.epochs": str(len(epochs)), "losslab.status": run["status"]})
        params = {"loss": run["loss"], "seed": str(run["seed"]), "stage": run["stage"],
                  **_params({k: v for k, v in run["config"].items()
                             if k not in ("loss", "seed", "stage")})}
        stamp = int(time.time() * 1000)
        metrics = [mlflow.entities.Metric(name, value, stamp, epoch["epoch"])
                   for epoch in epochs for name, value in _scalars(epoch).items()]
        client.log_batch(child.info.run_id, metrics=metrics,
                         params=[mlflow.entities.Param(k, v) for k, v in params.items()])
        client.set_terminated(child.info.run_id, "FINISHED" if run["status"] == "finished" else "KILLED")
        logged += 1
    return logged


def export_comparison(result: Any, *, tensorboard: str | Path | None = None,
                      mlflow: str | None = None, log: Any = print) -> None:
    """Export the test runs of a :class:`.api.ComparisonResult` to the trackers asked for."""
    if tensorboard is None and mlflow is None:
        return
    run_ids = {run["run_id"] for task in result.tasks for run in task.runs}
    if tensorboard is not None:
        count = export_tensorboard(result.db, tensorboard, run_ids=run_ids)
        log(f"[compare] TensorBoard: {count} run(s) written under {tensorboard} "
            f"(tensorboard --logdir {tensorboard})")
    if mlflow is not None:
        try:
            count = export_mlflow(result.db, mlflow, run_ids=run_ids)
        except ImportError:
            raise
        except Exception as error:  # MLflow's own errors (a bad URI, an unreachable server)
            if type(error).__module__.split(".")[0] != "mlflow":
                raise
            raise ValueError(f"mlflow: {mlflow!r}: {error}") from error
        log(f"[compare] MLflow: {count} run(s) logged to {mlflow}")
