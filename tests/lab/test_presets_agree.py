"""The demo (quick preset) never contradicts the published run (standard preset).

The quick run may be weaker ("undecided" where the standard run decides), never the opposite;
checked on constructed verdicts and on the two published JSON files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from losslab.experiments.classification.reporting.agreement import (
    claims_by_table,
    verdict_conflicts,
    verdicts_compatible,
)

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _claims(**verdicts: str) -> list[dict]:
    return [{"table": int(table[1:]), "verdict": verdict} for table, verdict in verdicts.items()]


def test_undecided_is_weaker_never_a_contradiction():
    standard = _claims(t2="does not hold", t3="holds", t5="undecided")
    assert verdicts_compatible(_claims(t2="undecided", t3="undecided", t5="undecided"), standard)
    assert verdicts_compatible(_claims(t2="does not hold", t3="holds"), standard)
    assert verdicts_compatible(_claims(t4="holds"), standard)  # a table only one ran: not compared


def test_opposite_or_stronger_verdicts_contradict():
    standard = _claims(t2="does not hold", t3="does not hold", t5="undecided")
    quick = _claims(t2="does not hold", t3="holds", t5="does not hold")
    assert verdict_conflicts(quick, standard) == [
        "Table 3: the quick run says 'holds', the standard run 'does not hold'",
        "Table 5: the quick run says 'does not hold', the standard run 'undecided'",
    ]
    assert not verdicts_compatible(quick, standard)


def test_rows_read_back_are_validated():
    with pytest.raises(ValueError, match=r"quick: table 3: expected a verdict among holds, does not hold, "
                                         r"undecided, got 'maybe'"):
        verdict_conflicts(_claims(t3="maybe"), _claims(t3="holds"))
    with pytest.raises(ValueError, match=r"standard: expected an integer 'table' in each claim, got '3'"):
        verdict_conflicts(_claims(t3="holds"), [{"table": "3", "verdict": "holds"}])
    with pytest.raises(ValueError, match=r"report: table 3 has two verdicts, 'holds' and 'undecided'"):
        claims_by_table(_claims(t3="holds") + _claims(t3="undecided"))
    with pytest.raises(ValueError, match=r"report: expected a reproduce JSON with a 'sections' mapping"):
        claims_by_table({"metadata": {}})


def test_the_published_quick_run_does_not_contradict_the_published_standard_runs():
    """Every verdict of the demo against the published standard run's, table by table and
    stand-in by stand-in."""
    quick = json.loads((RESULTS / "quick" / "reproduce.json").read_text())
    assert quick["metadata"]["preset"] == "quick"
    light = claims_by_table(quick, name="quick")
    assert sorted(light, key=lambda k: (k[0], k[1] or "")) == [  # every table
        (1, None), (2, "fashion-mnist-cnn"), (3, "mnist-finetune"),
        (4, "clothing-products-minilm"), (5, "rotten-tomatoes-minilm")]
    standard = json.loads((RESULTS / "standard" / "reproduce.json").read_text())
    assert standard["metadata"]["preset"] == "standard"
    heavy = claims_by_table(standard, name="standard")
    # every verdict of the demo is compared; the standard run adds Table 3 from scratch
    assert set(heavy) == set(light) | {(3, "digits-mlp")}
    assert verdict_conflicts(quick, standard) == []


def test_reproduce_tables_rejects_unknown_tables_before_running(cli_run, tmp_path):
    out = tmp_path / "out"
    unknown = cli_run("reproduce", "--tables", "3,7", "--out", str(out))
    assert unknown.returncode == 2
    assert "--tables: expected table numbers among 2, 3, 4, 5, got 7" in unknown.stderr
    words = cli_run("reproduce", "--tables", "three", "--out", str(out))
    assert words.returncode == 2 and "--tables: expected comma-separated table numbers" in words.stderr
    assert not out.exists()  # nothing ran, nothing was written


def test_build_section_runs_only_the_tables_asked_for(tmp_path):
    from losslab.experiments.classification.reporting.section import build_section
    from losslab.experiments.reproduce import ReproduceContext

    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=0, log=lambda _: None,
                               options={"classification_tables": [9]})
    with pytest.raises(ValueError, match=r"classification_tables: expected table numbers among "
                                         r"2, 3, 4, 5, got 9"):
        build_section(context)


def test_a_table_with_two_stand_ins_is_compared_stand_in_by_stand_in():
    standard = [{"table": 3, "task": "mnist-finetune", "verdict": "does not hold"},
                {"table": 3, "task": "digits-mlp", "verdict": "undecided"}]
    assert verdicts_compatible([{"table": 3, "task": "mnist-finetune", "verdict": "does not hold"},
                                {"table": 3, "task": "digits-mlp", "verdict": "undecided"}], standard)
    quick = [{"table": 3, "task": "mnist-finetune", "verdict": "undecided"},
             {"table": 3, "task": "digits-mlp", "verdict": "holds"}]
    assert verdict_conflicts(quick, standard) == [
        "Table 3 (digits-mlp): the quick run says 'holds', the standard run 'undecided'"]
    # the same table on another stand-in is not compared with it
    assert verdicts_compatible([{"table": 3, "task": "cifar10-vgg", "verdict": "holds"}], standard)
    with pytest.raises(ValueError, match=r"quick: table 3: expected a task name of letters, digits, "
                                         r"'-' and '_', got '<b>x</b>'"):
        claims_by_table([{"table": 3, "task": "<b>x</b>", "verdict": "holds"}], name="quick")
