"""Forest plots: the numbers drawn (read back from the figure's JSON twin) are the table's, the
paper's gains are marked, the figure opens its section, and a real browser renders the page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from losslab.experiments.classification import planned_task, run_grid
from losslab.experiments.classification.reporting.forest import (
    comparison_rows,
    forest_group,
    summary_forest,
    table_forest,
)
from losslab.experiments.classification.reporting.stats import compare_losses
from losslab.plotting.forest import (
    ForestGroup,
    ForestRow,
    axis_reach,
    forest_figure,
    read_forest_data,
)

_NUMBER = re.compile(r"[+-]\d+\.\d+")


def _synthetic_scores() -> dict[str, dict[int, float]]:
    """Five seeds: m clearly better, l clearly worse, full_l near CE, full_m on one seed only."""
    rng = np.random.default_rng(7)
    base = 0.8 + 0.01 * rng.standard_normal(5)
    shifts = {"m": 0.03, "l": -0.04, "full_l": 0.0005}
    scores = {"cross_entropy": dict(enumerate(base.tolist()))}
    for loss, shift in shifts.items():
        scores[loss] = dict(enumerate((base + shift + 0.002 * rng.standard_normal(5)).tolist()))
    scores["full_m"] = {0: float(base[0] + 0.01)}
    return scores


def test_synthetic_rows_are_the_verdict_intervals_in_points(tmp_path):
    comparisons = compare_losses(_synthetic_scores())
    claims = {"m": 4.0, "l": 3.0, "full_l": 4.0, "full_m": 2.0}
    group = forest_group("synthetic", comparisons, claims=claims, labels={"m": "M"})
    figure = forest_figure([group], tmp_path / "figs", "forest", "caption")
    assert figure.png.stat().st_size > 0 and figure.svg.exists()
    record = read_forest_data(figure.data)
    rows = {row["label"]: row for row in record["groups"][0]["rows"]}
    assert list(rows) == ["M", "l", "full_l", "full_m"]  # the table's order, baseline left out
    by_loss = {c.loss: c for c in comparisons}
    for label, loss in (("M", "m"), ("l", "l"), ("full_l", "full_l")):
        c = by_loss[loss]
        assert rows[label]["difference"] == 100 * c.paired.mean
        assert rows[label]["low"] == 100 * c.adjusted_low
        assert rows[label]["high"] == 100 * c.adjusted_high
        assert rows[label]["confidence"] == c.adjusted_confidence
        assert rows[label]["decision"] == c.decision and rows[label]["n"] == 5
        assert rows[label]["claim"] == claims[loss]
    # Holm over three tests: steps at 1 - 0.05/3, 1 - 0.05/2 and 1 - 0.05 (m and l rejected).
    levels = sorted(r["confidence"] for r in rows.values() if r["confidence"] is not None)
    assert levels == pytest.approx([0.95, 1 - 0.05 / 2, 1 - 0.05 / 3])
    assert rows["M"]["decision"] == "better" and rows["l"]["decision"] == "worse"
    assert rows["full_m"]["low"] is None and rows["full_m"]["decision"] == "untested"
    assert record["equivalence_margin"] == 1.0 and record["unit"] == "points"
    # The JSON round-trips into the same rows.
    assert ForestGroup.from_dict(record["groups"][0]).rows[:3] == group.rows[:3]


def test_a_diverged_interval_is_cut_at_the_axis_and_its_numbers_stay_exact(tmp_path):
    wide = ForestRow("full M", -7.28, -50.40, 35.83, 0.95, "undecided", 3, claim=0.0)
    narrow = ForestRow("L", -0.97, -1.83, -0.11, 0.975, "worse", 10, claim=3.0)
    # the cap: 8 × the margin, or 1.5 × the largest claim when that is larger
    assert axis_reach([wide, narrow], 1.0) == 8.0
    assert axis_reach([wide, ForestRow("M", 1.0, 0.0, 2.0, 0.95, "undecided", 3, claim=6.0)], 1.0) == 9.0
    # nothing to cut: every number with room, at least 1.6 × the margin
    assert axis_reach([narrow], 1.0) == pytest.approx(3.0 * 1.08)
    assert axis_reach([ForestRow("M", 0.1, -0.2, 0.3, 0.95, "equivalent", 5)], 1.0) == 1.6
    figure = forest_figure([ForestGroup("diverged", (wide, narrow))], tmp_path, "cut", "caption")
    rows = read_forest_data(figure.data)["groups"][0]["rows"]
    assert (rows[0]["low"], rows[0]["high"], rows[0]["difference"]) == (-50.40, 35.83, -7.28)
    assert "-7.28 [-50.40, +35.83] undecided" in figure.svg.read_text()  # the printed numbers


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="groups: expected at least one group with rows"):
        forest_figure([ForestGroup("empty")], "unused", "x", "c")
    rows = comparison_rows(compare_losses(_synthetic_scores()))
    with pytest.raises(ValueError, match="margin: expected a positive number, got -1"):
        forest_figure([ForestGroup("g", rows)], "unused", "x", "c", margin=-1)
    path = tmp_path / "forest.json"
    path.write_text(json.dumps({"groups": [{"title": "t", "rows": [{"low": "x"}]}]}))
    with pytest.raises(ValueError, match="row low must be a number or null, got 'x'"):
        read_forest_data(path)


def _table_cells(markdown: str, loss: str) -> tuple[float, float, float]:
    """(Δ, low, high) of ``loss``'s row in a task's statistics table."""
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 6 and cells[1] == loss and cells[2].isdigit():
            low, high = _NUMBER.findall(cells[5])
            return float(cells[4]), float(low), float(high)
    raise AssertionError(f"no table row for {loss}")


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    """A real comparison (digits, 3 losses, 3 seeds, 2 epochs) and its written report."""
    from losslab.experiments.classification.reporting.report import write_report

    folder = tmp_path_factory.mktemp("report")
    db = folder / "r.sqlite"
    task = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 200, "max_test": 100})
    run_grid([task], ["cross_entropy", "m", "l"], [0, 1, 2], db=db, threads=1, progress=False,
             log=lambda _: None)
    md_path, html_path = write_report(db, folder / "out")
    return folder / "out", md_path, html_path


def test_a_real_comparison_opens_with_its_forest_plot(small_report):
    out, md_path, _ = small_report
    markdown = md_path.read_text()
    twins = sorted((out / "figures").glob("forest-*.json"))
    assert len(twins) == 1
    record = read_forest_data(twins[0])
    rows = {row["label"]: row for row in record["groups"][0]["rows"]}
    assert set(rows) == {"m", "l"}
    for loss, row in rows.items():
        delta, low, high = _table_cells(markdown, loss)
        assert (delta, low, high) == (round(row["difference"], 2), round(row["low"], 2),
                                      round(row["high"], 2))
        assert row["claim"] is None  # a plain comparison has no paper to mark
    # The figure is the first thing of its section: before the decision and the table.
    section = markdown[markdown.index("## Task digits-mlp"):]
    assert section.index("figures/forest-") < section.index("**Decision**") < section.index("| m |")


def test_reproduce_tables_and_summary_carry_the_paper_marks(tmp_path):
    from losslab.experiments.classification.reporting.section import (
        TABLES,
        StandIn,
        TableSpec,
        build_section,
    )
    from losslab.experiments.reproduce import ReproduceContext, summary_section

    tiny = TableSpec(3, TABLES[1].paper_setting, TABLES[1].paper, differences="tiny digits",
                     stand_ins={"quick": StandIn("digits-mlp", {"epochs": 2, "max_train": 200,
                                                                "max_test": 80})})
    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=0, log=lambda _: None,
                               options={"classification_workers": 1})
    overview, table = build_section(context, tables=(tiny,))
    record = table.data["forest"]
    assert table.lead and read_forest_data(table.lead[0].data) == record
    rows = {row["label"]: row for row in record["groups"][0]["rows"]}
    paper = TABLES[1].paper
    ours = table.data["fixed"]["ours"]
    for loss, label in (("l", "L"), ("m", "M"), ("full_l", "full L"), ("full_m", "full M")):
        assert rows[label]["claim"] == pytest.approx(100 * (paper[loss] - paper["cross_entropy"]))
        interval = ours[loss]["adjusted_interval"]
        assert rows[label]["low"] == 100 * interval["low"]
        assert rows[label]["high"] == 100 * interval["high"]
        assert rows[label]["difference"] == 100 * ours[loss]["paired"]["mean"]
        # ... and the paper table prints the same numbers.
        line = next(x for x in table.markdown.splitlines() if x.startswith(f"| {label} |"))
        assert f"[{rows[label]['low']:+.2f}, {rows[label]['high']:+.2f}]" in line
    assert rows["M"]["claim"] == pytest.approx(4.0)
    # The summary figure holds every table's verdict panel, with the same numbers.
    assert overview.data["forest"]["groups"] == [record["groups"][0]]
    summary = summary_section([overview, table], 1.0)
    assert summary.lead == overview.lead and summary.data["forest"] == overview.data["forest"]


def test_summary_forest_without_compared_tables_draws_nothing(tmp_path):
    assert summary_forest({}, tmp_path) is None
    assert table_forest([], "tuned", tmp_path, "x", "t") is None


def _nonblank(png: Path) -> tuple[float, int]:
    """(share of non-white pixels, distinct colours) of a screenshot."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    ink = np.any(pixels < 235, axis=-1).mean()
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    return float(ink), colours


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_headless_chromium_renders_the_report_page(small_report, tmp_path):
    _, _, html_path = small_report
    shot = tmp_path / "page.png"
    completed = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={shot}", "--window-size=1280,2000", html_path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.exists(), completed.stderr[-2000:]
    from PIL import Image

    assert Image.open(shot).size == (1280, 2000)
    ink, colours = _nonblank(shot)
    assert ink > 0.02 and colours > 50, (ink, colours)
