"""Classification comparisons: tasks × losses × seeds, a crash-safe results store, statistics.

    >>> from losslab.experiments.classification import compare
    >>> result = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=3,
    ...                  db="results.sqlite")                       # doctest: +SKIP
    >>> print(result.markdown())                                    # doctest: +SKIP

    >>> tuned = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=3,
    ...                 db="results.sqlite", protocol="tuned")      # doctest: +SKIP
    >>> tuned.chosen_learning_rates()                               # doctest: +SKIP

The package is laid out by role:

- :mod:`.planning`: what to train (the named tasks, their data and validation splits, the
  pretrained body of the transfer stand-in, the language-model tasks);
- :mod:`.trial`: one run (the training loop, optimizers and schedules, metrics);
- :mod:`.execution`: the controller that owns the results store while runs train, and the
  backends it drives (local worker processes, Ray, in-process);
- :mod:`.protocols`: how runs are chosen (the tuned protocol's sweeps and selection rule,
  successive halving, seeds until the answer is precise);
- :mod:`.storage`: the results store (SQLite and in-memory), its exports and tracking;
- :mod:`.reporting`: paired statistics and verdicts, tables, figures and the ``losslab
  reproduce`` section for the paper's Tables 2–5.

Modules keep the import paths of the earlier flat layout (``...classification.store``,
``...classification.runner``, ...), which resolve to the moved modules.
"""

import importlib.abc
import importlib.util
import sys
from typing import Any

from losslab.experiments.classification.api import (
    COMPARED_LOSSES,
    PAPER_LOSSES,
    ComparisonResult,
    compare,
    csv_task,
    run_planned,
)
from losslab.experiments.classification.execution.runner import (
    PlannedTask,
    TrainingSettings,
    run_grid,
)
from losslab.experiments.classification.planning.tasks import (
    get_task,
    list_tasks,
    planned_task,
    task_names,
)
from losslab.experiments.classification.protocols.tuning import Selection, TuningSettings, run_tuned
from losslab.experiments.classification.storage import ResultsStore, ResultsStoreError


def build_section(context: Any) -> Any:
    """The ``losslab reproduce`` section (Tables 2–5 beside our stand-in runs)."""
    from losslab.experiments.classification.reporting.section import build_section as build

    return build(context)


__all__ = [
    "COMPARED_LOSSES",
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


# --- modules that moved into role folders keep their old import paths ----------------------
# ``losslab.experiments.classification.store`` is ``...storage`` now, ``...runner`` is
# ``...execution.runner``, and so on: importing the old name hands out the moved module
# itself (one module object, two names), so code written against the flat layout still runs.
_MOVED_MODULES: dict[str, str] = {
    "agreement": "reporting.agreement",
    "export": "storage.export",
    "forest": "reporting.forest",
    "language": "planning.language",
    "metrics": "trial.metrics",
    "optim": "trial.optim",
    "rates": "reporting.rates",
    "ray_backend": "execution.ray_backend",
    "report": "reporting.report",
    "runner": "execution.runner",
    "section": "reporting.section",
    "selection": "protocols.selection",
    "sequential": "protocols.sequential",
    "splits": "planning.splits",
    "stats": "reporting.stats",
    "step_size": "reporting.step_size",
    "store": "storage",
    "tasks": "planning.tasks",
    "tracking": "storage.tracking",
    "training": "trial.training",
    "transfer": "planning.transfer",
    "tuning": "protocols.tuning",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``<this package>.<old name>`` to the module at its new place."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> Any:
        prefix = f"{__name__}."
        if not fullname.startswith(prefix) or fullname[len(prefix):] not in _MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(f"{__name__}.{_MOVED_MODULES[spec.name[len(__name__) + 1:]]}")
        self._own_spec = (module.__spec__, module.__loader__)
        return module

    def exec_module(self, module: Any) -> None:
        # the import system stamped the alias's spec on the real module: give it back its own
        module.__spec__, module.__loader__ = self._own_spec


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
