"""The Ray backend's public names, where they have always been importable.

The backend itself lives in :mod:`.execution.backends.ray` (one of the registered backends
of :mod:`.execution`); this module re-exports it and keeps :func:`run_on_ray`, the old
driver entry point, as a thin wrapper over the controller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from losslab.experiments.classification.execution.backends import as_backend, backend_names
from losslab.experiments.classification.execution.backends.ray import (
    INSTALL_HINT,
    RAY_VERSION,
    RayBackend,
    check_cluster,
    import_ray,
    ray_session,
)

BACKENDS: tuple[str, ...] = backend_names()

__all__ = ["BACKENDS", "INSTALL_HINT", "RAY_VERSION", "RayBackend", "as_backend", "check_cluster",
           "import_ray", "ray_session", "run_on_ray"]


def run_on_ray(store: Any, tasks: Sequence[Any], pending: Sequence[tuple[Any, int]],
               backend: RayBackend, threads: int | None, environment: dict[str, Any],
               counts: dict[str, int], failed: list[str], advance: Callable[..., None],
               log: Callable[[str], None], describe: Callable[[Any], str]) -> None:
    """Train ``pending`` (job, run_id) pairs as Ray tasks and record every epoch here,
    adding to ``counts`` and ``failed`` (see :class:`.execution.controller.Controller`)."""
    from losslab.experiments.classification.execution.controller import Controller
    from losslab.experiments.classification.execution.trial import ClassificationTrial, RunSpec

    with ray_session(backend, log):
        controller = Controller(store, backend, [ClassificationTrial(task) for task in tasks],
                                environment=environment, threads=backend.threads_per_run(threads),
                                log=log, on_epoch=advance)
        outcome = controller.run([RunSpec(run_id, job.task_index, job.loss, job.seed, job.stage,
                                          job.stop_after, description=describe(job))
                                  for job, run_id in pending])
    for name in ("trained", "skipped", "busy", "diverged"):
        counts[name] = counts.get(name, 0) + getattr(outcome, name)
    failed.extend(outcome.failed)
