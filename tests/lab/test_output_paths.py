"""Everything is written inside the folder the user named: outputs of the wrong kind are
refused before any training, symlinks are replaced rather than followed, and the TensorBoard
exporter never leaves (nor deletes) its log folder."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from losslab._paths import UnsafePathError


def _write_csv(path: Path, rows: int = 40) -> Path:
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["f1", "f2", "y"])
        for i in range(rows):
            writer.writerow([rng.normal() + i % 2, rng.normal(), i % 2])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small finished comparison: (csv, database)."""
    from losslab.cli import main

    folder = tmp_path_factory.mktemp("trained")
    data = _write_csv(folder / "d.csv")
    db = folder / "results.sqlite"
    code = main(["compare", "--data", str(data), "--label-column", "y", "--losses", "cross_entropy,m",
                 "--seeds", "2", "--epochs", "1", "--db", str(db), "--threads", "1", "--no-progress"])
    assert code == 0
    return data, db


def _compare(data: Path, db: Path, *extra: str) -> tuple[str, ...]:
    return ("compare", "--data", str(data), "--label-column", "y", "--losses", "cross_entropy",
            "--seeds", "1", "--epochs", "1", "--db", str(db), "--threads", "1", *extra)


@pytest.mark.parametrize("option", ["--out", "--tensorboard", "--mlflow"])
def test_a_file_where_compare_needs_a_folder_is_refused_before_training(tmp_path, cli_run, option):
    data = _write_csv(tmp_path / "d.csv")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path in (blocker, blocker / "below"):
        db = tmp_path / "never.sqlite"
        result = cli_run(*_compare(data, db, option, str(path)))
        assert result.returncode == 2
        assert f"{option}: expected a folder, but {str(blocker)!r} is a file" in result.stderr
        assert "Traceback" not in result.stderr
        assert not db.exists()  # refused before the database was opened, let alone trained
        assert blocker.read_text() == ""


def test_a_folder_where_a_database_file_is_needed_is_refused(tmp_path, cli_run):
    data = _write_csv(tmp_path / "d.csv")
    result = cli_run(*_compare(data, tmp_path))
    assert result.returncode == 2
    assert f"--db: expected a file, but {str(tmp_path)!r} is a folder" in result.stderr


@pytest.mark.parametrize("option", ["--out", "--csv"])
def test_report_refuses_a_file_for_its_folders_before_writing_either(tmp_path, cli_run, trained, option):
    _, db = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    paths = {"--out": str(tmp_path / "out"), "--csv": str(tmp_path / "tables"), option: str(blocker)}
    result = cli_run("report", "--db", str(db), "--out", paths["--out"], "--csv", paths["--csv"])
    assert result.returncode == 2
    assert f"{option}: expected a folder, but {str(blocker)!r} is a file" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "tables").exists()


def test_symlinks_at_report_and_table_names_are_replaced_not_followed(tmp_path, cli_run, trained):
    _, db = trained
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    out, tables = tmp_path / "out", tmp_path / "tables"
    out.mkdir()
    tables.mkdir()
    for link in (out / "report.md", out / "report.html", tables / "runs.csv", tables / "curves.csv"):
        link.symlink_to(victim)
    result = cli_run("report", "--db", str(db), "--out", str(out), "--csv", str(tables))
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "keep"
    for name in (out / "report.md", out / "report.html", tables / "runs.csv", tables / "curves.csv"):
        assert not name.is_symlink() and name.stat().st_size > 0
    assert "# Loss comparison: results.sqlite" in (out / "report.md").read_text()
    assert (tables / "runs.csv").read_text().startswith("run_id,")


def test_a_figures_symlink_leading_out_of_the_folder_is_refused(tmp_path, cli_run, trained):
    _, db = trained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").symlink_to(elsewhere)
    result = cli_run("report", "--db", str(db), "--out", str(out))
    assert result.returncode == 2
    assert "resolves outside" in result.stderr and "Traceback" not in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_python_compare_checks_its_outputs_before_training(tmp_path):
    from losslab.experiments.classification import compare

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = np.arange(20) % 2
    db = tmp_path / "never.sqlite"
    with pytest.raises(UnsafePathError, match=r"tensorboard: expected a folder"):
        compare((x, y), (x, y), model_factory=lambda: None, db=db, tensorboard=blocker)
    with pytest.raises(ValueError, match=r"mlflow: expected a tracking URI or a folder without quotes"):
        compare((x, y), (x, y), model_factory=lambda: None, db=db, mlflow="/tmp/it's")
    with pytest.raises(ValueError, match=r"threads: expected a positive integer, got 0"):
        compare((x, y), (x, y), model_factory=lambda: __import__("torch").nn.Linear(3, 2), db=db,
                threads=0, epochs=1, seeds=1, losses=["cross_entropy"], progress=False)
    assert not db.exists()


def test_tensorboard_folders_come_from_sanitised_names_and_stay_inside(tmp_path, trained):
    pytest.importorskip("tensorboard", reason="the TensorBoard exporter needs the tracking extra")
    from losslab.experiments.classification.storage.tracking import _run_folder, export_tensorboard

    root = tmp_path / "tb"
    root.mkdir()
    run = {"run_id": 7, "task": "../..", "loss": "/etc", "seed": 3, "stage": "test", "config": {}}
    folder = _run_folder(root, run)
    assert root.resolve() in folder.parents and folder.name == "seed-3"
    with pytest.raises(UnsafePathError, match=r"run 7: seed '0/../..' is not an integer"):
        _run_folder(root, {**run, "seed": "0/../.."})
    # a link planted inside the log folder, leading out of it: that run is skipped, with a warning
    _, db = trained
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "m").mkdir(parents=True)
    (elsewhere / "m" / "keep.txt").write_text("keep")
    (root / "d").symlink_to(elsewhere)
    with pytest.warns(UserWarning, match=r"resolves outside"):
        written = export_tensorboard(db, root)
    assert written == 0
    assert [p.name for p in elsewhere.rglob("*")] == ["m", "keep.txt"]
    os.unlink(root / "d")
    (root / "d").write_text("a file where a task folder goes")
    with pytest.warns(UserWarning, match=r"expected a folder, but .* is a file"):
        assert export_tensorboard(db, root) == 0
    os.unlink(root / "d")
    assert export_tensorboard(db, root) == 4
    again = export_tensorboard(db, root)  # rewritten, never duplicated, the root kept
    assert again == 4 and root.is_dir()
    assert sorted(p.name for p in (root / "d").iterdir()) == ["cross_entropy", "m"]
    assert all(len(list(run_dir.iterdir())) == 1 for run_dir in (root / "d").glob("*/seed-*"))


def test_mlflow_quotes_in_a_uri_are_refused_and_in_a_database_path_work(tmp_path, cli_run):
    pytest.importorskip("mlflow", reason="the MLflow exporter needs the tracking extra")
    data = _write_csv(tmp_path / "d.csv")
    refused = cli_run(*_compare(data, tmp_path / "r.sqlite", "--mlflow", str(tmp_path / "it's")))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--mlflow: expected a tracking URI or a folder without quotes" in refused.stderr
    quoted_db = tmp_path / "colleague's results.sqlite"
    tracking = tmp_path / "mlruns"
    first = cli_run(*_compare(data, quoted_db, "--mlflow", str(tracking)))
    assert first.returncode == 0, first.stderr
    assert "MLflow: 1 run(s) logged" in first.stdout
    second = cli_run(*_compare(data, quoted_db, "--mlflow", str(tracking)))
    assert "MLflow: 0 run(s) logged" in second.stdout  # found again by its tag: not duplicated


def test_replaced_files_get_the_permissions_of_a_plain_write(tmp_path):
    from losslab._paths import write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    replaced = write_text(tmp_path / "replaced.txt", "x")
    assert (replaced.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)


def test_the_image_cache_is_written_inside_its_folder_through_no_symlink(tmp_path):
    pytest.importorskip("PIL", reason="reading image folders needs Pillow")
    from PIL import Image

    from losslab.data._formats import read_image_folders

    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = tmp_path / "images" / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (8, 8), (10 if label == "a" else 200, 0, 0)).save(folder / "0.png")
    cache = tmp_path / "cache"
    first = read_image_folders(tmp_path / "images", image_size=4, cache_dir=cache)
    cached = Path(first.meta["cache"])
    assert cached.parent == cache and cached.is_file()
    cached.unlink()
    cached.symlink_to(tmp_path / "elsewhere.npz")  # a dangling link planted at the cache's name
    again = read_image_folders(tmp_path / "images", image_size=4, cache_dir=cache)
    assert not cached.is_symlink() and cached.is_file()
    assert not (tmp_path / "elsewhere.npz").exists()  # the link was replaced, not written through
    np.testing.assert_array_equal(first.x_train, again.x_train)
