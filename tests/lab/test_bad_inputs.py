"""The last bad inputs: each gets a clear error (exit code 2, no traceback) or a stated
warning that names the argument, the file or the column."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from losslab.data import DataWarning, load_dataset


def _csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _two_classes(rows: int = 20, extra: str = "") -> str:
    lines = ["f1,f2,y"] + [f"{i % 2 + 0.1 * i},{i},{i % 2}" for i in range(rows)]
    return "\n".join(lines) + "\n" + extra


def _compare(path: Path, db: Path, *extra: str) -> tuple[str, ...]:
    return ("compare", "--data", str(path), "--label-column", "y", "--losses", "cross_entropy",
            "--seeds", "1", "--epochs", "1", "--db", str(db), "--threads", "1", *extra)


def _assert_clean_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_repeated_column_names_are_an_error_naming_file_and_columns(tmp_path, cli_run):
    # pandas alone would rename the copy to y.1 and train on a copy of the label
    path = _csv(tmp_path / "dup.csv", "f1,y,y\n" + "".join(f"{i},{i % 2},{i % 2}\n" for i in range(20)))
    with pytest.raises(ValueError, match=r"repeats column name\(s\) 'y' \(columns 2, 3\)"):
        load_dataset("csv", path=path, label_column="y")
    result = cli_run(*_compare(path, tmp_path / "r.sqlite"))
    _assert_clean_error(result, f"--data: {str(path)!r} repeats column name(s) 'y' (columns 2, 3)")
    genuine = _csv(tmp_path / "genuine.csv", "y.1,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    assert load_dataset("csv", path=genuine, label_column="y").meta["columns"] == ["y.1"]


def test_a_repeated_column_in_the_test_file_names_the_test_option(tmp_path, cli_run):
    train = _csv(tmp_path / "train.csv", _two_classes())
    test = _csv(tmp_path / "test.csv", "f1,f2,f2,y\n1,2,3,0\n2,3,4,1\n")
    result = cli_run(*_compare(train, tmp_path / "r.sqlite", "--test-data", str(test)))
    _assert_clean_error(result, f"--test-data: {str(test)!r} repeats column name(s) 'f2' (columns 2, 3)")


def test_a_split_leaving_a_class_out_of_training_is_an_error(tmp_path, cli_run):
    # class 2 has one row: a stratified 30 % test split keeps one row of every class for test
    path = _csv(tmp_path / "rare.csv", _two_classes(9, "5,5,2\n"))
    with pytest.raises(ValueError, match=r"test_fraction: the stratified split .* leaves class\(es\) "
                                         r"'2' \(1 test row\(s\)\) out of the training rows"):
        load_dataset("csv", path=path, label_column="y", test_fraction=0.3)
    result = cli_run(*_compare(path, tmp_path / "r.sqlite", "--test-fraction", "0.3"))
    _assert_clean_error(result, "--test-fraction: the stratified split", "'2' (1 test row(s))")
    result = cli_run(*_compare(path, tmp_path / "r.sqlite", "--max-train", "2"))
    _assert_clean_error(result, "--max-train: 2 training rows cannot hold all 3 classes")


def test_a_test_class_never_seen_in_training_is_a_warning_with_the_count(tmp_path, cli_run):
    train = _csv(tmp_path / "train.csv", _two_classes())
    test = _csv(tmp_path / "test.csv", "f1,f2,y\n1,2,0\n2,3,1\n3,4,7\n4,5,7\n5,6,7\n")
    with pytest.warns(DataWarning, match=r"3 row\(s\) of the test data belong to class\(es\) never "
                                         r"seen in training \('7' \(3 test row\(s\)\)\)"):
        data = load_dataset("csv", path=train, label_column="y", test_path=str(test))
    assert data.classes == ["0", "1", "7"] and int((data.y_test == 2).sum()) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every class seen: no warning
        load_dataset("csv", path=train, label_column="y", test_path=str(train))
    result = cli_run(*_compare(train, tmp_path / "r.sqlite", "--test-data", str(test)))
    assert result.returncode == 0, result.stderr
    assert ("losslab compare: warning: 3 row(s) of the test data belong to class(es) never seen "
            "in training ('7' (3 test row(s)))") in result.stderr


@pytest.mark.parametrize(("cell", "message"), [
    ("inf", "feature column 'f2' has 1 infinite value(s) in the train rows (the first in data row 4,"),
    ("-inf", "feature column 'f2' has 1 infinite value(s) in the train rows (the first in data row 4,"),
    ("1e39", "feature column 'f2' has 1 value(s) beyond float32's range (±3.4e+38) in the train rows "
             "(the first in data row 4)"),
    ("nan", "feature column 'f2' has 1 missing (NaN) values in the train rows"),
])
def test_non_finite_features_are_named_as_such(tmp_path, cli_run, cell, message):
    rows = [f"{i % 2},{i},{i % 2}" for i in range(20)]
    rows[3] = f"1,{cell},1"
    path = _csv(tmp_path / "bad.csv", "f1,f2,y\n" + "\n".join(rows) + "\n")
    result = cli_run(*_compare(path, tmp_path / "r.sqlite"))
    _assert_clean_error(result, message)
    assert "learning rate" not in result.stderr
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_threads_and_workers_must_be_positive_integers(tmp_path, capsys, value):
    from losslab.cli import main

    for option in ("--threads", "--workers"):
        args = ["compare", "--task", "digits-mlp", "--db", str(tmp_path / "r.sqlite"), option, value]
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
        assert f"argument {option}: expected a positive integer, got" in capsys.readouterr().err


def test_a_file_that_is_not_utf8_names_itself_and_the_encoding_option(tmp_path, cli_run):
    text = "f1,name,y\n" + "".join(f"{i % 2 + 0.1 * i},café{i},{i % 2}\n" for i in range(20))
    path = _csv(tmp_path / "latin.csv", text, encoding="latin-1")
    result = cli_run(*_compare(path, tmp_path / "r.sqlite", "--feature-columns", "f1"))
    _assert_clean_error(result, f"--data: {str(path)!r} is not valid utf-8 text (byte 0xe9 at offset",
                        "--encoding")
    decoded = cli_run(*_compare(path, tmp_path / "r.sqlite", "--feature-columns", "f1",
                                "--encoding", "latin-1"))
    assert decoded.returncode == 0, decoded.stderr
    data = load_dataset("csv", path=path, label_column="y", text_column="name", encoding="latin-1")
    assert "café0" in data.x_train + data.x_test
    unknown = cli_run(*_compare(path, tmp_path / "r.sqlite", "--encoding", "klingon"))
    _assert_clean_error(unknown, "--encoding: unknown text encoding 'klingon'")


def test_utf8_given_explicitly_keeps_the_runs_config(tmp_path):
    from losslab.experiments.classification import csv_task

    path = _csv(tmp_path / "d.csv", _two_classes())
    plain = csv_task(path, label_column="y")
    explicit = csv_task(path, label_column="y", encoding="UTF8")
    other = csv_task(path, label_column="y", encoding="latin-1")
    assert plain.config("m") == explicit.config("m")
    assert other.config("m")["data"]["options"]["encoding"] == "latin-1"


@pytest.mark.parametrize("seeds", [str(10**30), "0", "-1", "100001"])
def test_a_huge_or_empty_number_of_seeds_is_a_clear_error(tmp_path, cli_run, seeds):
    result = cli_run("compare", "--task", "digits-mlp", "--seeds", seeds, "--db", str(tmp_path / "r.sqlite"))
    _assert_clean_error(result, f"--seeds: expected a number of seeds from 1 to 100,000, got {int(seeds)}")
    assert not (tmp_path / "r.sqlite").exists()
    regress = cli_run("regress", "--seeds", seeds, "--out", str(tmp_path / "rg"))
    _assert_clean_error(regress, "--seeds: expected an integer from 1 to 100,000")


def test_python_seed_checks_refuse_huge_values():
    from losslab.experiments.classification.execution.runner import check_seeds

    with pytest.raises(ValueError, match=r"seeds: expected a number of seeds from 1 to 100,000"):
        check_seeds(10**30)
    with pytest.raises(ValueError, match=r"seeds: expected non-negative integers below 2\*\*63"):
        check_seeds([0, 2**63])
    assert check_seeds([0, 2**63 - 1]) == [0, 2**63 - 1]


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "cannot be read as CSV: No columns to parse from file"),
    ('f1,y\n1,0\n"unterminated,1\n', "cannot be read as CSV: Error tokenizing data"),
])
def test_unreadable_csv_files_name_the_file(tmp_path, cli_run, text, fragment):
    path = _csv(tmp_path / "broken.csv", text)
    result = cli_run(*_compare(path, tmp_path / "r.sqlite"))
    _assert_clean_error(result, f"--data: {str(path)!r} {fragment}")


def test_regress_names_undecodable_and_repeated_columns(tmp_path, cli_run):
    path = _csv(tmp_path / "latin.csv", "x,y,note\n" + "".join(
        f"{i},{2 * i + np.sin(i):.3f},é\n" for i in range(12)), encoding="latin-1")
    result = cli_run("regress", "--data", str(path), "--x", "x", "--y", "y", "--out", str(tmp_path / "o"))
    _assert_clean_error(result, f"--data: {str(path)!r} is not valid utf-8 text", "--encoding")
    fitted = cli_run("regress", "--data", str(path), "--x", "x", "--y", "y", "--no-baselines",
                     "--cv-folds", "0", "--out", str(tmp_path / "o"), "--encoding", "latin-1")
    assert fitted.returncode == 0, fitted.stderr
    duplicated = _csv(tmp_path / "dup.csv", "x,x,y\n" + "".join(f"{i},{i},{i}\n" for i in range(12)))
    result = cli_run("regress", "--data", str(duplicated), "--x", "x", "--y", "y", "--out", str(tmp_path / "o"))
    _assert_clean_error(result, "repeats column name(s) 'x' (columns 1, 2)")


def test_timeout_must_not_be_negative(tmp_path, cli_run):
    result = cli_run("compare", "--task", "digits-mlp", "--timeout", "-1", "--db", str(tmp_path / "r.sqlite"))
    _assert_clean_error(result, "--timeout: expected a number of seconds >= 0, got -1.0")
