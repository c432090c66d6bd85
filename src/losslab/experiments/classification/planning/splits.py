"""Validation splits carved from the training data, and the sample ids each stage uses.

Sample ids index the task's *loaded* data (after any ``max_train``/``max_test`` subsampling):
the training split's samples are ``0 .. n_train - 1`` and the test split's follow as
``n_train .. n_train + n_test - 1``. A run records the ids it trained on and the ids it was
scored on (a SHA-256 of the id array plus the count in its config, the arrays themselves in
the results database), so anyone can check which samples a stage read — in particular that a
learning-rate sweep never touched the test split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ID_SPACE = ("positions in the task's loaded data: training split 0..n_train-1, "
            "then test split n_train..n_train+n_test-1")


@dataclass(frozen=True)
class ValidationSplit:
    """Carve ``fraction`` of the training split out as a validation set (stratified, seeded).

    Attributes:
        fraction: share of the training split held out, strictly between 0 and 1.
        seed: seed of the stratified draw (the same seed always gives the same split).
    """

    fraction: float
    seed: int = 0

    def __post_init__(self) -> None:
        from losslab.data._core import check_fraction

        object.__setattr__(self, "fraction", check_fraction("val_fraction", self.fraction))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"split_seed: expected a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))

    def config(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed}


def carve_validation(
    y_train: Sequence[int] | np.ndarray,
    split: ValidationSplit,
    *,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, validation indices) into the training split: stratified and seeded.

    Both parts must hold every class of the training split: a class absent from the
    validation set could never count towards its accuracy, and one absent from the fit part
    could never be learned, so either would bias the sweep silently.

    Raises:
        ValueError: naming ``val_fraction`` when a class would be missing from either part.
    """
    from losslab.data import stratified_split

    y = np.asarray(y_train)
    fit, validation = stratified_split(y, split.fraction, split.seed)
    present = np.unique(y)

    def names(labels: np.ndarray) -> str:
        shown = [class_names[int(c)] if class_names is not None else str(int(c)) for c in labels[:8]]
        return ", ".join(shown) + (" ..." if len(labels) > 8 else "")

    missing_val = np.setdiff1d(present, y[validation])
    if missing_val.size:
        raise ValueError(
            f"val_fraction: {split.fraction:g} of {len(y)} training samples is a validation set of "
            f"{len(validation)} samples, which leaves class(es) {names(missing_val)} absent from it "
            f"({len(present)} classes need at least {len(present)} validation samples); use a "
            "larger val_fraction or more training data"
        )
    missing_fit = np.setdiff1d(present, y[fit])
    if missing_fit.size:
        raise ValueError(
            f"val_fraction: {split.fraction:g} of {len(y)} training samples leaves class(es) "
            f"{names(missing_fit)} with no sample to train the sweep on (each has a single "
            "training sample); use more training data"
        )
    return fit, validation


def ids_digest(ids: np.ndarray) -> str:
    """SHA-256 (hex) of an id array as little-endian int64: identifies an exact index set."""
    array = np.ascontiguousarray(np.asarray(ids, dtype="<i8"))
    return hashlib.sha256(array.tobytes()).hexdigest()


def sample_record(train_ids: np.ndarray, eval_ids: np.ndarray, eval_split: str) -> dict[str, Any]:
    """What a run's config says about its samples: counts and digests of both id sets."""
    return {
        "id_space": ID_SPACE,
        "train": {"count": len(train_ids), "sha256": ids_digest(train_ids)},
        "eval": {"split": eval_split, "count": len(eval_ids), "sha256": ids_digest(eval_ids)},
    }
