"""Conventions shared by every loss and the CLI's rough edges (issue 13): error messages,
integer target dtypes, empty batches, all-ignored targets, half precision, weight dtypes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from losslab.registry import get_info, get_loss, list_losses

# --- registry and `losslab list` -----------------------------------------------------------


def test_get_loss_names_the_loss_not_its_class():
    with pytest.raises(TypeError) as caught:
        get_loss("l", gamma=2)
    message = str(caught.value)
    assert message.startswith("l: unexpected keyword argument 'gamma'")
    assert "MLoss" not in message and "__init__" not in message
    assert "its keyword arguments: " in message and "ignore_index" in message and "eps" in message
    with pytest.raises(TypeError, match=r"m: unexpected keyword argument 'ignore_indx' \(did you mean ignore_index\?\)"):
        get_loss("m", ignore_indx=3)


def test_extra_formulas_are_not_mangled():
    assert get_info("parametric_m").formula == "sum_c y_c (1/p_c^alpha - 1)"
    assert get_info("cosine").formula == "sum_c y_c cos(pi p_c / 2)"
    assert get_info("parabolic").formula == "sum_c y_c (1 - p_c^2)"
    for info in list_losses():
        assert "alp_c" not in info.formula and "p_ci" not in info.formula, info.name


def test_list_fits_the_terminal_and_json_keeps_the_formulas(cli_run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = cli_run("list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    text = " ".join(lines)
    assert "alp_cha" not in text and "p_ci" not in text
    import json

    records = {r["name"]: r for r in json.loads(cli_run("list", "--json").stdout)}
    assert records["parametric_m"]["formula"] == "sum_c y_c (1/p_c^alpha - 1)"


def test_text_table_wraps_only_the_named_columns():
    from losslab.cli._common import text_table

    table = text_table(("a", "b"), [("x", "word " * 20)], max_width=40, wrap=(1,))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert " ".join(" ".join(line[3:].split()) for line in lines[2:]) == ("word " * 20).strip()


def test_closed_pipe_exits_quietly():
    # `losslab list | head`: the reader closes the pipe before losslab writes
    process = subprocess.Popen(
        [sys.executable, "-m", "losslab.cli", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode == 1
