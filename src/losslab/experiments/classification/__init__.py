"""Classification comparisons: tasks × losses × seeds, a crash-safe results store, statistics.

    >>> from losslab.experiments.classification import compare
    >>> result = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=3,
    ...                  db="results.sqlite")                       # doctest: +SKIP
    >>> print(result.markdown())                                    # doctest: +SKIP

    >>> tuned = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=3,
    ...                 db="results.sqlite", protocol="tuned")      # doctest: +SKIP
    >>> tuned.chosen_learning_rates()                               # doctest: +SKIP

Modules: :mod:`.tasks` (the named tasks), :mod:`.runner` (training, resume, workers),
:mod:`.storage` (the results store: SQLite on disk, in memory for tests; :mod:`.store`
re-exports it), :mod:`.stats` (paired statistics), :mod:`.report` (tables and
learning curves), :mod:`.tuning` (the tuned protocol: a learning-rate sweep on a validation
split, then the test), :mod:`.splits` (validation splits, recorded sample ids),
:mod:`.step_size` (chosen rates, sensitivity and gradient-size report parts), :mod:`.section`
(the ``losslab reproduce`` section: the paper's Tables 2–5).
"""

from typing import Any

from losslab.experiments.classification.api import (
    PAPER_LOSSES,
    ComparisonResult,
    compare,
    csv_task,
    run_planned,
)
from losslab.experiments.classification.runner import PlannedTask, TrainingSettings, run_grid
from losslab.experiments.classification.store import ResultsStore, ResultsStoreError
from losslab.experiments.classification.tasks import get_task, list_tasks, planned_task, task_names
from losslab.experiments.classification.tuning import Selection, TuningSettings, run_tuned


def build_section(context: Any) -> Any:
    """The ``losslab reproduce`` section (Tables 2–5 beside our stand-in runs)."""
    from losslab.experiments.classification.section import build_section as build

    return build(context)


__all__ = [
    "PAPER_LOSSES",
    "ComparisonResult",
    "PlannedTask",
    "ResultsStore",
    "ResultsStoreError",
    "Selection",
    "TrainingSettings",
    "TuningSettings",
    "build_section",
    "compare",
    "csv_task",
    "get_task",
    "list_tasks",
    "planned_task",
    "run_grid",
    "run_planned",
    "run_tuned",
    "task_names",
]
