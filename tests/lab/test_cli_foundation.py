"""The command line: list, plot, reproduce (shapes section) and error handling."""

from __future__ import annotations

import json

from losslab.cli import main


def test_list_shows_formulas(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("cross_entropy", "full_m", "binary_full_l", "smae", "log_cosh"):
        assert name in out
    assert "y (1/p - 1)" in out or "1/p_c - 1" in out


def test_list_json_family(capsys):
    assert main(["list", "--family", "regression", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["family"] for r in records} == {"regression"}


def test_plot_writes_png_and_svg(tmp_path):
    assert main(["plot", "--out", str(tmp_path)]) == 0
    for stem in ("fig1_bce", "fig2_classification_losses", "fig2b_derivatives", "fig3_regression_losses"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 5000
        assert (tmp_path / f"{stem}.svg").read_text().startswith("<?xml")


def test_reproduce_shapes_report(tmp_path):
    assert main(["reproduce", "--only", "shapes", "--out", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text()
    md = (tmp_path / "report.md").read_text()
    assert html.count("data:image/png;base64,") == 4  # self-contained
    assert "stricter than" in md and "0.1168" in md
    meta = json.loads((tmp_path / "reproduce.json").read_text())
    assert meta["metadata"]["environment"]["packages"]["torch"]
    assert meta["sections"]["shapes"]["strictness"]["m|y=1"]["fraction_stricter"] == 1.0


def test_unknown_section_is_a_clear_error(tmp_path, capsys):
    assert main(["reproduce", "--only", "nonsense", "--out", str(tmp_path)]) == 2
    assert "only: no section named nonsense; valid:" in capsys.readouterr().err
