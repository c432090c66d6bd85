"""The transfer check of Table 3's pretrained stand-in: what the pretrained body is worth.

It runs comparisons (through :func:`..api.run_planned`), so it lives with the reports that
show it rather than with the task planning it reads (:mod:`..planning.transfer`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from losslab.experiments.classification.planning.transfer import (
    PretrainedCNN,
    _read_cached,
    random_init_twin,
)


def transfer_check(planned: Any, *, seeds: list[int], db: Any, workers: int = 1,
                   threads: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cross-entropy fine-tuned from the pretrained body against the same model from random
    initialisation, same seeds, data, rate and epochs (fixed protocol; finished runs in ``db``
    are reused). Returns both mean accuracies and the paired difference in points."""
    from losslab.experiments.classification.api import run_planned
    from losslab.experiments.classification.reporting.stats import paired_difference

    twin = random_init_twin(planned)
    result = run_planned([planned, twin], losses=["cross_entropy"], seeds=seeds, db=db,
                         workers=workers, threads=threads, progress=False, log=log,
                         protocol="fixed")
    scores = {group.runs[0]["task"]: group.final_accuracy().get("cross_entropy", {})
              for group in result.tasks}
    pretrained, scratch = scores.get(planned.label, {}), scores.get(twin.label, {})
    shared = sorted(set(pretrained) & set(scratch))
    factory = planned.source.prepare("test").model_factory
    cached = _read_cached(Path(factory.path), factory.key) if isinstance(factory, PretrainedCNN) else None
    record: dict[str, Any] = {"seeds": shared, "loss": "cross_entropy", "protocol": "fixed",
                              "pretraining": None if cached is None else cached[1],
                              "pretrained_accuracy": {s: pretrained[s] for s in shared},
                              "random_init_accuracy": {s: scratch[s] for s in shared}}
    if len(shared) >= 2:
        paired = paired_difference([pretrained[s] for s in shared], [scratch[s] for s in shared])
        record.update({"difference_points": 100 * paired.mean, "ci_low_points": 100 * paired.ci_low,
                       "ci_high_points": 100 * paired.ci_high, "confidence": paired.confidence})
    return record
