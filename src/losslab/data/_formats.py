"""Readers for standard on-disk layouts: idx (MNIST family), CIFAR-10 pickle batches,
image-folder trees (Imagenette), IMDB's ``aclImdb`` folders and CSV files.

Pickles are read with an unpickler that only rebuilds plain containers and numpy arrays, so
a tampered batch file cannot run code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import re
import tarfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losslab.data._core import (
    ClassificationData,
    DataWarning,
    check_labels,
    check_training_classes,
    stratified_split,
)

# ---------------------------------------------------------------------------------------------
# idx files (http://yann.lecun.com/exdb/mnist/ format description)

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(raw: bytes, *, what: str = "idx data") -> np.ndarray:
    """Parse idx bytes (gzip-compressed or not) into an array of the stored shape."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{what} is not an idx file (magic bytes {raw[:4]!r})")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(
            f"{what}: header says shape {shape} ({expected} bytes) but {len(body)} bytes follow"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def idx_images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


# ---------------------------------------------------------------------------------------------
# restricted unpickling

_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "set"),
    ("builtins", "tuple"),
}


class _PlainBunch(dict):
    """Stands in for scikit-learn's ``Bunch`` (a dict subclass) without importing sklearn."""

    def __setstate__(self, state: Any) -> None:  # Bunch pickles may carry a __dict__ state
        if isinstance(state, dict):
            self.update(state)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if name == "Bunch" and module.startswith("sklearn."):
            return _PlainBunch
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def safe_unpickle(raw: bytes, *, encoding: str = "ASCII") -> Any:
    return _SafeUnpickler(io.BytesIO(raw), encoding=encoding).load()


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches


def _find_dir(path: Path, marker: str, nested: Sequence[str]) -> Path:
    """``path`` if it holds ``marker``, else the first of ``path/<nested>`` that does."""
    if not path.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    for candidate in (path, *(path / n for n in nested)):
        if (candidate / marker).exists():
            return candidate
    raise FileNotFoundError(
        f"path {str(path)!r} does not hold {marker!r} "
        f"(looked in it and in {', '.join(nested)})"
    )


def _cifar_files(path: Path) -> tuple[dict[str, bytes], str]:
    """The batch files' bytes by name, from the extracted folder or the .tar.gz archive."""
    wanted = re.compile(r"^(data_batch_\d+|test_batch|batches\.meta)$")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise ValueError(
                f"path {str(path)!r} is a file but not a tar archive; pass the "
                "cifar-10-python.tar.gz archive or the extracted cifar-10-batches-py folder"
            )
        files = {}
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and wanted.match(name):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        files[name] = extracted.read()
        if "test_batch" not in files:
            raise FileNotFoundError(f"archive {str(path)!r} holds no test_batch")
        return files, str(path)
    folder = _find_dir(path, "test_batch", ["cifar-10-batches-py"])
    files = {f.name: f.read_bytes() for f in folder.iterdir() if f.is_file() and wanted.match(f.name)}
    return files, str(folder)


def read_cifar10(path: Path) -> ClassificationData:
    """CIFAR-10 from the ``cifar-10-batches-py`` folder (data_batch_1..5, test_batch) or the
    ``cifar-10-python.tar.gz`` archive it comes in."""
    files, source = _cifar_files(path)
    train_names = sorted((n for n in files if n.startswith("data_batch_")),
                         key=lambda n: int(n.rsplit("_", 1)[1]))
    if not train_names:
        raise FileNotFoundError(f"no data_batch_* files in {source}")

    def read_batch(name: str) -> tuple[np.ndarray, np.ndarray]:
        batch = safe_unpickle(files[name], encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
            raise ValueError(
                f"{source}/{name}: expected data of shape (N, 3072) and N labels, "
                f"got {data.shape} and {len(labels)}"
            )
        # Each row: 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane.
        return data.reshape(-1, 3, 32, 32), labels

    parts = [read_batch(name) for name in train_names]
    x_test, y_test = read_batch("test_batch")
    classes = [f"class_{i}" for i in range(10)]
    if "batches.meta" in files:
        names = safe_unpickle(files["batches.meta"], encoding="bytes").get(b"label_names")
        if names:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    x_train = np.concatenate([p[0] for p in parts])
    return ClassificationData(
        name="cifar10",
        kind="image",
        x_train=x_train.astype(np.float32) / 255.0,
        y_train=np.concatenate([p[1] for p in parts]),
        x_test=x_test.astype(np.float32) / 255.0,
        y_test=y_test,
        classes=classes,
        source=source,
        meta={"train_files": train_names},
    )


# ---------------------------------------------------------------------------------------------
# image folders (Imagenette / ImageFolder layout)

# Imagenette's ten ImageNet synsets, so classes read as words rather than WordNet ids.
IMAGENETTE_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}


def _load_image(file: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as image:
        image = image.convert("RGB")
        # Scale the shorter side to ``size``, then centre-crop a square: no distortion.
        scale = size / min(image.size)
        width, height = (max(size, round(d * scale)) for d in image.size)
        image = image.resize((width, height), Image.BILINEAR)
        left, top = (width - size) // 2, (height - size) // 2
        image = image.crop((left, top, left + size, top + size))
        return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_image_folders(
    path: Path, *, image_size: int, cache_dir: Path | None, name: str = "imagenette"
) -> ClassificationData:
    """``path/train/<class>/*`` and ``path/val/<class>/*`` (or ``test``) image trees."""
    try:
        import PIL  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "reading image folders needs Pillow: pip install pillow"
        ) from error
    if not path.is_dir():
        raise FileNotFoundError(f"path {str(path)!r} is not a directory")
    test_name = next((n for n in ("val", "test") if (path / n).is_dir()), None)
    if not (path / "train").is_dir() or test_name is None:
        raise FileNotFoundError(
            f"path {str(path)!r} must hold train/ and val/ (or test/) folders of class folders"
        )
    folders = sorted(d.name for d in (path / "train").iterdir() if d.is_dir())
    if len(folders) < 2:
        raise ValueError(f"{path / 'train'} must hold at least two class folders, found {folders}")
    index = {folder: i for i, folder in enumerate(folders)}

    def listing(split: str) -> list[tuple[Path, int]]:
        files = []
        for class_dir in sorted((path / split).iterdir()):
            if not class_dir.is_dir():
                continue
            if class_dir.name not in index:
                raise ValueError(
                    f"{path / split} has class folder {class_dir.name!r} not in train/ "
                    f"({', '.join(folders)})"
                )
            files += [
                (file, index[class_dir.name])
                for file in sorted(class_dir.iterdir())
                if file.suffix.lower() in IMAGE_SUFFIXES
            ]
        if not files:
            raise FileNotFoundError(f"no image files under {path / split}")
        return files

    train_files, test_files = listing("train"), listing(test_name)
    # Decoding thousands of JPEGs takes minutes: cache the arrays, keyed by the exact file
    # list (names, sizes, modification times) and the image size.
    key = hashlib.sha256(repr(image_size).encode())
    for file, label in train_files + test_files:
        stat = file.stat()
        key.update(f"{file}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n".encode())
    cache_file = cache_dir / f"{name}-{image_size}px-{key.hexdigest()[:20]}.npz" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        cached = np.load(cache_file)
        x_train, x_test = cached["x_train"], cached["x_test"]
    else:
        x_train = np.stack([_load_image(f, image_size) for f, _ in train_files])
        x_test = np.stack([_load_image(f, image_size) for f, _ in test_files])
        if cache_file is not None:  # atomic, inside the cache folder, never through a symlink
            from losslab._paths import ensure_folder, inside, write_bytes

            buffer = io.BytesIO()
            np.savez(buffer, x_train=x_train, x_test=x_test)
            folder = ensure_folder(cache_file.parent, option="cache_dir")
            write_bytes(inside(folder, cache_file.name, file=True), buffer.getvalue())
    return ClassificationData(
        name=name,
        kind="image",
        x_train=x_train.astype(np.float32) / 255.0,
        y_train=np.array([label for _, label in train_files], dtype=np.int64),
        x_test=x_test.astype(np.float32) / 255.0,
        y_test=np.array([label for _, label in test_files], dtype=np.int64),
        classes=[IMAGENETTE_NAMES.get(folder, folder) for folder in folders],
        source=str(path),
        meta={"image_size": image_size, "test_folder": test_name, "folders": folders,
              "cache": str(cache_file) if cache_file else None},
    )


# ---------------------------------------------------------------------------------------------
# 20 Newsgroups clean-up

NEWSGROUPS_PARTS = ("headers", "footers", "quotes")
_QUOTE_LINE = re.compile(r"^\s*[>|]|(writes|wrote|says|said):\s*$")


def strip_newsgroup_post(text: str, remove: Sequence[str]) -> str:
    """Remove a post's ``headers`` (up to the first blank line), ``footers`` (a signature
    after the last ``--`` line) and/or ``quotes`` (lines starting with ``>`` or ``|``, and
    "... writes:" attributions): what lets a classifier read the newsgroup's name off
    metadata instead of the content."""
    if "headers" in remove:
        _, blank, body = text.partition("\n\n")
        text = body if blank else text
    if "footers" in remove:
        lines = text.split("\n")
        marks = [i for i, line in enumerate(lines) if line.strip() == "--" or set(line.strip()) == {"-"}]
        if marks:
            text = "\n".join(lines[: marks[-1]])
    if "quotes" in remove:
        text = "\n".join(line for line in text.split("\n") if not _QUOTE_LINE.search(line))
    return text


# ---------------------------------------------------------------------------------------------
# IMDB aclImdb


def read_aclimdb(path: Path) -> ClassificationData:
    """IMDB reviews from ``aclImdb/{train,test}/{neg,pos}/*.txt``; classes neg=0, pos=1."""
    folder = _find_dir(path, "train/pos", ["aclImdb"])
    classes = ["neg", "pos"]
    splits: dict[str, tuple[list[str], np.ndarray]] = {}
    for split in ("train", "test"):
        texts: list[str] = []
        labels: list[int] = []
        for label, polarity in enumerate(classes):
            directory = folder / split / polarity
            if not directory.is_dir():
                raise FileNotFoundError(f"{directory} is missing (expected aclImdb layout)")
            for file in sorted(directory.glob("*.txt")):
                texts.append(file.read_text(encoding="utf-8", errors="replace"))
                labels.append(label)
        splits[split] = (texts, check_labels(np.array(labels), classes, f"{folder / split}"))
    return ClassificationData(
        name="imdb",
        kind="text",
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
        classes=classes,
        source=str(folder),
        meta={},
    )


# ---------------------------------------------------------------------------------------------
# CSV


def _non_numeric_cells(column: Any) -> tuple[int, object, str] | None:
    """(count, first value, where) of the cells of a column that do not read as numbers, or
    None when no cell does (a text column, not a numeric one with a few bad cells)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        return None
    present = column.notna()
    bad = present & pd.to_numeric(column, errors="coerce").isna()
    if not bool(bad.any()) or int((present & ~bad).sum()) == 0:
        return None
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return int(bad.sum()), column[bad].iloc[0], f"data row {position + 1}, 1-based, header not counted"


def _warn_mostly_numeric(frames: dict[str, Any], columns: Sequence[Any], source: str) -> None:
    """Warn about each column left out of the default features although most of its cells are
    numbers: a few bad cells (``"n/a"``, ``"1,5"``) made pandas read it as text."""
    for column in columns:
        for split, part in frames.items():
            bad = _non_numeric_cells(part[column])
            present = int(part[column].notna().sum())
            if bad is None or bad[0] * 2 > present:
                continue
            where = "" if len(frames) == 1 else f" ({split} file)"
            warnings.warn(
                f"{source}{where}: column {column!r} has {bad[0]} non-numeric cell"
                f"{'s' if bad[0] > 1 else ''} (first {bad[1]!r}, {bad[2]}) among {present} "
                f"values, so it is NOT used as a feature; fix those cells, or list it in "
                f"feature_columns to make this an error",
                DataWarning, stacklevel=5,
            )
            break


def read_csv(file: Path, *, option: str = "data", **read_csv_options: Any) -> Any:
    """``pandas.read_csv`` of a user's file, with the errors pandas hides or words badly.

    The header is read first with the csv module: pandas silently renames a repeated column
    (``y``, ``y`` -> ``y``, ``y.1``), which would turn a copy of the label into a feature.
    A file that does not decode names itself and the ``encoding`` option.

    Raises:
        ValueError: repeated column names, or bytes that are not valid in the encoding (the
            message names ``option``, the file and ``encoding``).
    """
    import csv

    import pandas as pd

    encoding = read_csv_options.get("encoding") or "utf-8"
    separator = read_csv_options.get("sep", read_csv_options.get("delimiter")) or ","
    try:
        with open(file, encoding=encoding, newline="") as handle:
            if len(separator) == 1:  # a regex separator: pandas' own parser reads the header
                header = next(csv.reader(handle, delimiter=separator), [])
            else:
                header = [str(c) for c in pd.read_csv(handle, nrows=0, **read_csv_options).columns]
        frame = pd.read_csv(file, **read_csv_options)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{option}: {str(file)!r} is not valid {encoding} text (byte 0x{error.object[error.start]:02x} "
            f"at offset {error.start}); give its encoding with --encoding (encoding= in Python), "
            "e.g. --encoding latin-1 or --encoding cp1252") from None
    except LookupError:
        raise ValueError(f"encoding: unknown text encoding {encoding!r} (e.g. utf-8, latin-1, "
                         "cp1252)") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
        raise ValueError(f"{option}: {str(file)!r} cannot be read as CSV: {error}") from None
    seen: dict[str, list[int]] = {}
    for position, name in enumerate(header, start=1):
        seen.setdefault(name.strip(), []).append(position)
    repeated = {name: places for name, places in seen.items() if len(places) > 1}
    if repeated:
        shown = "; ".join(f"{name!r} (columns {', '.join(map(str, places))})"
                          for name, places in repeated.items())
        raise ValueError(f"{option}: {str(file)!r} repeats column name(s) {shown}; every column "
                         "needs its own name (rename or drop the copies)")
    return frame


def _data_row(part: Any, mask: np.ndarray) -> str:
    """The 1-based data row of the first ``True`` of ``mask`` (the frame's index as read)."""
    label = part.index[int(np.flatnonzero(mask)[0])]
    return str(label + 1) if isinstance(label, (int, np.integer)) else repr(label)


def _check_finite(part: Any, column: str, split: str) -> None:
    """Refuse infinite feature values and values too large for float32 (they become inf)."""
    values = part[column].to_numpy(dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        raise ValueError(
            f"feature column {column!r} has {int(infinite.sum())} infinite value(s) in the {split} "
            f"rows (the first in data row {_data_row(part, infinite)}, header not counted); "
            "replace or drop them first")
    huge = np.abs(values) > np.finfo(np.float32).max
    if huge.any():
        raise ValueError(
            f"feature column {column!r} has {int(huge.sum())} value(s) beyond float32's range "
            f"(±{np.finfo(np.float32).max:.3g}) in the {split} rows (the first in data row "
            f"{_data_row(part, huge)}), which would train as infinite; rescale the column first")


def frame_to_data(
    frame: Any,
    *,
    name: str,
    source: str,
    label_column: str,
    text_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    test_frame: Any = None,
    meta: dict[str, Any] | None = None,
) -> ClassificationData:
    """A pandas DataFrame (plus an optional test frame) as classification data.

    ``text_column`` makes a text data set; otherwise ``feature_columns`` (default: every
    numeric column but the label) make a tabular one. Rows with a missing label, or a missing
    text, are dropped (and counted in ``meta``); a missing numeric feature is an error.
    """
    import pandas as pd

    columns = [str(c) for c in frame.columns]

    def check_column(option: str, column: str) -> None:
        if column not in columns:
            raise ValueError(
                f"{option} {column!r} is not a column of {source}; columns: {', '.join(columns)}"
            )

    check_column("label_column", label_column)
    if text_column is not None:
        check_column("text_column", text_column)
        if feature_columns is not None:
            raise ValueError("give text_column or feature_columns, not both")
    elif feature_columns is not None:
        for column in feature_columns:
            check_column("feature_columns entry", column)
        if label_column in feature_columns:
            raise ValueError(f"label_column {label_column!r} is also listed in feature_columns")

    frames = {"train": frame} if test_frame is None else {"train": frame, "test": test_frame}
    dropped: dict[str, int] = {}
    for split, part in frames.items():
        keep = part[label_column].notna()
        if text_column is not None:
            keep &= part[text_column].notna()
        dropped[split] = int((~keep).sum())
        frames[split] = part[keep]
    labels_all = pd.concat([f[label_column] for f in frames.values()])
    if labels_all.empty:
        raise ValueError(f"{source} has no rows with a label in column {label_column!r}")
    # Sort numerically when every label is a number (ratings 1..5), else as text.
    unique = pd.unique(labels_all)
    try:
        ordered = sorted(unique, key=float)
    except (TypeError, ValueError):
        ordered = sorted(unique, key=str)
    # A label column with gaps reads as float (1.0, 5.0): name whole numbers as integers.
    classes = [str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in ordered]
    if len(classes) < 2:
        raise ValueError(
            f"label_column {label_column!r} of {source} has a single class ({classes[0]!r}); "
            "classification needs at least two"
        )
    class_id = {value: i for i, value in enumerate(ordered)}

    if text_column is not None:
        kind = "text"
        used = [text_column]
    else:
        kind = "tabular"
        if feature_columns is None:
            used = [
                c for c in frame.columns
                if c != label_column and pd.api.types.is_numeric_dtype(frame[c])
                and not pd.api.types.is_bool_dtype(frame[c])
            ]
            _warn_mostly_numeric(frames, [c for c in frame.columns if c != label_column and c not in used],
                                 source)
            if not used:
                raise ValueError(
                    f"{source} has no numeric feature column besides label {label_column!r}; "
                    f"pass text_column for text, or numeric feature_columns; columns: {', '.join(columns)}"
                )
        else:
            used = list(feature_columns)
            if not used:
                raise ValueError("feature_columns is empty; list at least one numeric column")
        for column in used:
            for split, part in frames.items():
                if not pd.api.types.is_numeric_dtype(part[column]):
                    bad = _non_numeric_cells(part[column])
                    detail = "" if bad is None else f": {bad[0]} non-numeric cell(s), first {bad[1]!r} ({bad[2]})"
                    raise ValueError(
                        f"feature column {column!r} is not numeric (dtype {part[column].dtype}){detail}; "
                        "fix those cells, pass it as text_column or leave it out of feature_columns"
                    )
                if part[column].isna().any():
                    raise ValueError(
                        f"feature column {column!r} has {int(part[column].isna().sum())} missing "
                        f"(NaN) values in the {split} rows; fill or drop them first"
                    )
                _check_finite(part, column, split)

    def convert(part: Any) -> tuple[Any, np.ndarray]:
        y = part[label_column].map(class_id).to_numpy(dtype=np.int64)
        if kind == "text":
            return part[text_column].astype(str).tolist(), y
        return part[used].to_numpy(dtype=np.float32), y

    x_all, y_all = convert(frames["train"])
    if "test" in frames:
        x_train, y_train = x_all, y_all
        x_test, y_test = convert(frames["test"])
        split_note: dict[str, Any] = {"split": "given test file"}
    else:
        check_labels(y_all, classes, f"label_column {label_column!r}")
        train_idx, test_idx = stratified_split(y_all, test_fraction, split_seed)
        pick = (lambda x, i: [x[j] for j in i]) if kind == "text" else (lambda x, i: x[i])
        x_train, y_train = pick(x_all, train_idx), y_all[train_idx]
        x_test, y_test = pick(x_all, test_idx), y_all[test_idx]
        split_note = {"split": "stratified", "test_fraction": test_fraction,
                      "split_seed": split_seed}
    check_training_classes(y_train, y_test, classes, given_test="test" in frames, source=source)
    return ClassificationData(
        name=name,
        kind=kind,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=classes,
        source=source,
        meta={
            **(meta or {}),
            **split_note,
            "label_column": label_column,
            "columns": used,
            "dropped_rows": dropped,
        },
    )
