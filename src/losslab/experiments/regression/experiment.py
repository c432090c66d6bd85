"""Run a robust-regression comparison: losses and baselines on one scenario, over seeds.

:func:`run_regression` fits every loss (all seeds in one batched program per loss) and every
baseline (one call per seed) on the same data, scores them, and returns a
:class:`RegressionResult`; :func:`write_outputs` writes the table (Markdown, CSV, JSON with the
configuration and environment) and Figure 4 (PNG + SVG).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from losslab.experiments.regression.baselines import (
    BASELINE_LABELS,
    BASELINES,
    baseline_settings,
    check_baseline,
    fit_baseline,
)
from losslab.experiments.regression.data import (
    SYNTHETIC_SCENARIOS,
    RegressionData,
    check_scenario,
    csv_data,
    load_scenario,
)
from losslab.experiments.regression.fitting import (
    FitSettings,
    check_regression_loss,
    fit_linear,
    regression_loss_names,
)
from losslab.registry import get_info

DEFAULT_LOSSES: tuple[str, ...] = ("mse", "mae", "huber", "log_cosh", "smae")
# A point is flagged as an outlier when its residual exceeds this many robust residual sds
# (1.4826 x the median absolute deviation of the fit's residuals): the usual 2.5 cut-off.
FLAG_THRESHOLD = 2.5


@dataclass
class RegressionResult:
    """Everything one comparison produced.

    Attributes:
        scenario: scenario name (or the CSV file's stem).
        methods: the losses, then the baselines, in table order.
        records: one dict per (method, seed): coefficients, errors, residual scale, flags,
            iterations, convergence.
        summary: one dict per method: the metrics' mean, sd and 95 % t-interval over seeds.
        example: the first seed's data (for the figure).
        example_fits: the first seed's ``(coef, intercept)`` per method.
        config: the settings that produced the result.
        wall_time: seconds, fitting and scoring.
        warnings: messages the baselines raised, per method.
        cross_validation: the held-out error of each method, ranked (:func:`cross_validate`).
        cross_validation_note: why no cross-validation was run, when one was asked for.
    """

    scenario: str
    methods: list[str]
    records: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    example: RegressionData
    example_fits: dict[str, tuple[np.ndarray, float]]
    config: dict[str, Any]
    wall_time: float = 0.0
    warnings: dict[str, list[str]] = field(default_factory=dict)
    # k-fold held-out error per method, best first (real data with cv_folds > 0; see
    # :func:`cross_validate`), and why it is missing when it was asked for but not computed
    cross_validation: list[dict[str, Any]] = field(default_factory=list)
    cross_validation_note: str = ""

    @property
    def synthetic(self) -> bool:
        return self.example.true_coef is not None

    def summary_for(self, method: str) -> dict[str, Any]:
        for row in self.summary:
            if row["method"] == method:
                return row
        raise KeyError(f"method: {method!r} not in this result; methods: {', '.join(self.methods)}")


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sample sd and the two-sided t-interval of the mean (sd and bounds NaN for n < 2)."""
    from scipy import stats

    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan, math.nan, math.nan
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, data.size - 1)) * sd / math.sqrt(data.size)
    return mean, sd, mean - half, mean + half


def robust_scale(residuals: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the residual sd under Gaussian noise."""
    return float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))


def _score(
    data: RegressionData, coef: np.ndarray, intercept: float, clean: tuple[np.ndarray, float] | None
) -> dict[str, Any]:
    residuals = data.y - data.x @ coef - intercept
    scale = robust_scale(residuals)
    flagged = np.abs(residuals) > FLAG_THRESHOLD * scale if scale > 0 else np.zeros(len(residuals), bool)
    row: dict[str, Any] = {"intercept": float(intercept)}
    for feature, value in zip(data.feature_names, coef):
        row[f"coef[{feature}]"] = float(value)
    row["residual_scale"] = scale
    row["n_flagged"] = int(flagged.sum())
    if data.true_coef is not None:
        row["slope_error_pct"] = float(100 * np.linalg.norm(coef - data.true_coef) / np.linalg.norm(data.true_coef))
        if data.true_intercept:
            row["intercept_error_pct"] = float(100 * abs(intercept - data.true_intercept) / abs(data.true_intercept))
        else:
            row["intercept_abs_error"] = float(abs(intercept - (data.true_intercept or 0.0)))
    else:
        row["flagged_rows"] = " ".join(label for label, f in zip(data.row_labels, flagged) if f)
    if data.known_outliers is not None:
        row["known_outliers_flagged"] = int((flagged & data.known_outliers).sum())
        row["inliers_flagged"] = int((flagged & ~data.known_outliers).sum())
    if clean is not None:
        clean_coef, clean_intercept = clean
        row["distance_to_clean_fit"] = float(
            np.linalg.norm(np.r_[intercept - clean_intercept, coef - clean_coef])
        )
    return row


def clean_fit(data: RegressionData) -> tuple[np.ndarray, float] | None:
    """OLS on the points not known to be outliers (None if no outliers are known)."""
    if data.known_outliers is None or not data.known_outliers.any():
        return None
    from losslab.experiments.regression.baselines import _ols

    keep = ~data.known_outliers
    return _ols(data.x[keep], data.y[keep], 0)


# Metrics summarised over seeds, in table order.
_SEED_METRICS = (
    "slope_error_pct", "intercept_error_pct", "intercept_abs_error", "distance_to_clean_fit",
    "residual_scale", "n_flagged", "known_outliers_flagged", "inliers_flagged",
)


def _summarise(method: str, kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"method": method, "kind": kind, "n_seeds": len(rows)}
    if len(rows) == 1:
        summary.update({k: v for k, v in rows[0].items() if k not in ("method", "kind", "seed")})
        return summary
    for metric in _SEED_METRICS:
        if metric in rows[0]:
            mean, sd, low, high = t_interval([r[metric] for r in rows])
            summary[metric] = mean
            summary[f"{metric}_sd"] = sd
            summary[f"{metric}_ci95"] = [low, high]
    for key in rows[0]:
        if key.startswith("coef[") or key == "intercept":
            summary[key] = float(np.mean([r[key] for r in rows]))
    if "iterations" in rows[0]:
        summary["iterations"] = float(np.mean([r["iterations"] for r in rows]))
        summary["iterations_max"] = int(max(r["iterations"] for r in rows))
        summary["converged_fraction"] = float(np.mean([r["converged"] for r in rows]))
    return summary


def check_loss_kwargs(loss_kwargs: dict[str, dict[str, Any]] | None,
                      losses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Hyperparameters per loss, keyed by canonical name: each loss among ``losses`` and each
    option a keyword of its functional form (losslab's own checks judge the values)."""
    checked: dict[str, dict[str, Any]] = {}
    for name, options in (loss_kwargs or {}).items():
        canonical = check_regression_loss(name)
        if canonical not in losses:
            raise ValueError(f"loss_kwargs: {name!r} is not among the losses fitted ({', '.join(losses)})")
        accepted = [p.name for p in inspect.signature(get_info(canonical).functional).parameters.values()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("reduction", "impl")]
        for option in options:
            if option not in accepted:
                raise ValueError(
                    f"loss_kwargs: {canonical} has no option {option!r}; valid choices: "
                    f"{', '.join(accepted) or 'none'}"
                )
        checked.setdefault(canonical, {}).update(options)
    return checked


def cross_validate(
    data: RegressionData,
    losses: Sequence[str],
    baselines: Sequence[str] = (),
    *,
    folds: int = 5,
    seed: int = 0,
    loss_kwargs: dict[str, dict[str, Any]] | None = None,
    settings: FitSettings | None = None,
) -> list[dict[str, Any]]:
    """The held-out error of each method by k-fold cross-validation, best (lowest MAE) first.

    The rows are shuffled (``seed``) into ``folds`` parts; each part is predicted by a fit on
    the other parts, so every row is predicted once by a fit that never saw it. Returns one
    dict per method: ``rank``, ``held_out_mae`` (mean |y - prediction| over all rows),
    ``held_out_mae_sd`` (sd of the per-fold MAEs) and ``held_out_median_ae`` (the median, which
    a few gross outliers in the held-out rows do not move). Raises ValueError when a training
    part would have no more rows than the fit's parameters.
    """
    n, n_params = data.n_rows, data.n_features + 1
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"folds: expected an integer >= 2, got {folds!r}")
    folds = min(folds, n)
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    smallest_train = n - max(len(p) for p in parts)
    if smallest_train <= n_params:
        raise ValueError(
            f"folds: {folds}-fold cross-validation leaves {smallest_train} training rows, and a "
            f"linear fit with intercept needs more than {n_params}; use more rows or fewer folds"
        )
    trains = [np.setdiff1d(np.arange(n), part) for part in parts]
    predictions = {name: np.empty(n) for name in [*losses, *baselines]}
    loss_kwargs = loss_kwargs or {}
    # folds whose training parts have the same size are fitted as one batch
    by_size: dict[int, list[int]] = {}
    for k, train in enumerate(trains):
        by_size.setdefault(len(train), []).append(k)
    for name in losses:
        for ks in by_size.values():
            fits = fit_linear(np.stack([data.x[trains[k]] for k in ks]), np.stack([data.y[trains[k]] for k in ks]),
                              name, loss_kwargs=loss_kwargs.get(name), settings=settings)
            for i, k in enumerate(ks):
                predictions[name][parts[k]] = data.x[parts[k]] @ fits.coef[i] + float(fits.intercept[i])
    for name in baselines:
        for part, train in zip(parts, trains):
            coef, intercept, _ = fit_baseline(name, data.x[train], data.y[train], seed=seed)
            predictions[name][part] = data.x[part] @ coef + intercept
    rows = []
    for name, predicted in predictions.items():
        errors = np.abs(data.y - predicted)
        per_fold = [float(errors[part].mean()) for part in parts]
        rows.append({"method": name, "kind": "loss" if name in losses else "baseline",
                     "held_out_mae": float(errors.mean()), "held_out_mae_sd": float(np.std(per_fold, ddof=1)),
                     "held_out_median_ae": float(np.median(errors)), "folds": folds})
    rows.sort(key=lambda row: row["held_out_mae"])
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def verdict(rows: Sequence[dict[str, Any]], tolerance: float = 0.05) -> str:
    """A plain-words verdict from :func:`cross_validate`'s rows: the best held-out MAE, the
    methods within ``tolerance`` (relative) of it, and the best held-out median |error|
    (which the held-out outliers, rows no line should predict, do not move)."""
    if not rows:
        return ""
    best = rows[0]
    text = (f"verdict: lowest held-out MAE: {method_label(best['method'])} ({_fmt(best['held_out_mae'], 4)}, "
            f"{best['folds']}-fold cross-validation)")
    close = [method_label(r["method"]) for r in rows[1:]
             if r["held_out_mae"] <= best["held_out_mae"] * (1 + tolerance)]
    if close:
        shown = ", ".join(close[:3]) + (f" and {len(close) - 3} more" if len(close) > 3 else "")
        text += f"; within {100 * tolerance:.0f} % of it (no clear difference): {shown}"
    by_median = min(rows, key=lambda r: r["held_out_median_ae"])
    if by_median is not best:
        text += (f". Lowest held-out median |error|, which outlying rows do not move: "
                 f"{method_label(by_median['method'])} ({_fmt(by_median['held_out_median_ae'], 4)})")
    return text + "."


def cross_validation_table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """:func:`cross_validate`'s rows as table headers and formatted cells, best first."""
    headers = ["rank", "method", "held-out MAE (± sd over folds)", "held-out median |error|"]
    cells = [[str(r["rank"]), method_label(r["method"]),
              f"{_fmt(r['held_out_mae'], 4)} ± {_fmt(r['held_out_mae_sd'], 3)}", _fmt(r["held_out_median_ae"], 4)]
             for r in rows]
    return headers, cells


def run_regression(
    scenario: str = "table1",
    *,
    seeds: int = 20,
    seed: int = 0,
    losses: Sequence[str] | None = None,
    baselines: Sequence[str] | None = BASELINES,
    data: RegressionData | None = None,
    data_path: str | Path | None = None,
    x_cols: Sequence[str] | None = None,
    y_col: str | None = None,
    scenario_options: dict[str, Any] | None = None,
    loss_kwargs: dict[str, dict[str, Any]] | None = None,
    fit_settings: FitSettings | None = None,
    log: Any = None,
    cv_folds: int = 0,
    encoding: str | None = None,
) -> RegressionResult:
    """Fit each loss and baseline on a scenario and score them.

    Args:
        scenario: one of :data:`~losslab.experiments.regression.data.SCENARIOS`; ignored when
            ``data`` or ``data_path`` is given.
        seeds: number of seeds for synthetic scenarios (seeds ``seed .. seed + seeds - 1``,
            each draws its own data set); real data are fitted once.
        seed: first seed; also seeds RANSAC and Theil-Sen.
        losses: registered regression losses (default :data:`DEFAULT_LOSSES`).
        baselines: names from :data:`BASELINES`, or None / empty for none.
        data: a ready :class:`RegressionData` (fitted once).
        data_path, x_cols, y_col: a CSV file and its columns.
        encoding: the CSV file's text encoding (default: utf-8).
        scenario_options: overrides of the synthetic scenario's configuration.
        loss_kwargs: hyperparameters per loss, e.g. ``{"huber": {"delta": 2.0}}``.
        fit_settings: optimiser settings shared by all losses.
        log: optional callable for progress lines.
        cv_folds: for real data (one data set, no true line), also rank the methods by their
            ``cv_folds``-fold cross-validated held-out error (:func:`cross_validate`); 0: no.
    """
    losses = [check_regression_loss(name) for name in (losses or DEFAULT_LOSSES)]
    if len(set(losses)) != len(losses):
        raise ValueError(f"losses: each loss once, got {', '.join(losses)}")
    baselines = [check_baseline(name) for name in (baselines or ())]
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds: expected a positive integer, got {seeds!r}")
    settings = fit_settings or FitSettings()
    loss_kwargs = check_loss_kwargs(loss_kwargs, losses)
    started = time.perf_counter()

    if data_path is not None:
        if not x_cols or not y_col:
            raise ValueError("data: a CSV file needs --x COL [COL ...] and --y COL")
        data = csv_data(data_path, x_cols, y_col, encoding=encoding)
    if data is not None:
        datasets, seed_list = [data], [seed]
        scenario = data.name
    else:
        check_scenario(scenario)
        if scenario in SYNTHETIC_SCENARIOS:
            seed_list = list(range(seed, seed + seeds))
            datasets = [load_scenario(scenario, s, scenario_options) for s in seed_list]
        else:
            datasets, seed_list = [load_scenario(scenario, seed, scenario_options)], [seed]
    if any(d.x.shape != datasets[0].x.shape for d in datasets):
        raise ValueError("data: every seed must give a data set of the same shape to be fitted as one batch")
    x_batch = np.stack([d.x for d in datasets])
    y_batch = np.stack([d.y for d in datasets])
    cleans = [clean_fit(d) for d in datasets]

    records: list[dict[str, Any]] = []
    example_fits: dict[str, tuple[np.ndarray, float]] = {}
    warnings_by_method: dict[str, list[str]] = {}
    for name in losses:
        t0 = time.perf_counter()
        fits = fit_linear(x_batch, y_batch, name, loss_kwargs=loss_kwargs.get(name), settings=settings)
        for i, (d, s) in enumerate(zip(datasets, seed_list)):
            row = {"method": name, "kind": "loss", "seed": s}
            row.update(_score(d, fits.coef[i], float(fits.intercept[i]), cleans[i]))
            row.update({"iterations": int(fits.iterations[i]), "converged": bool(fits.converged[i]),
                        "objective": float(fits.objective[i])})
            records.append(row)
        example_fits[name] = (fits.coef[0], float(fits.intercept[0]))
        if log:
            log(f"[regress] {name}: {len(seed_list)} fits in {time.perf_counter() - t0:.2f} s, "
                f"{int(fits.converged.sum())}/{len(seed_list)} converged")
    for name in baselines:
        t0 = time.perf_counter()
        messages: set[str] = set()
        for i, (d, s) in enumerate(zip(datasets, seed_list)):
            coef, intercept, caught = fit_baseline(name, d.x, d.y, seed=s)
            messages.update(caught)
            row = {"method": name, "kind": "baseline", "seed": s}
            row.update(_score(d, coef, intercept, cleans[i]))
            records.append(row)
            if i == 0:
                example_fits[name] = (coef, intercept)
        if messages:
            warnings_by_method[name] = sorted(messages)
        if log:
            log(f"[regress] {name}: {len(seed_list)} fits in {time.perf_counter() - t0:.2f} s")

    cross_validation: list[dict[str, Any]] = []
    cross_validation_note = ""
    if cv_folds and len(datasets) == 1 and datasets[0].true_coef is None:
        t0 = time.perf_counter()
        try:
            cross_validation = cross_validate(datasets[0], losses, baselines, folds=cv_folds, seed=seed,
                                              loss_kwargs=loss_kwargs, settings=settings)
        except ValueError as error:
            cross_validation_note = f"no cross-validation: {error}"
        if log:
            log(f"[regress] {cv_folds}-fold cross-validation in {time.perf_counter() - t0:.2f} s")

    methods = [*losses, *baselines]
    summary = [
        _summarise(m, "loss" if m in losses else "baseline", [r for r in records if r["method"] == m])
        for m in methods
    ]
    example = datasets[0]
    config = {
        "scenario": scenario,
        "description": example.description,
        "n_rows": example.n_rows,
        "features": list(example.feature_names),
        "target": example.target_name,
        "seeds": seed_list,
        "losses": losses,
        "loss_kwargs": loss_kwargs,
        "baselines": {b: baseline_settings()[b] for b in baselines},
        "fit_settings": settings.to_dict(),
        "scenario_options": dict(scenario_options or {}),
        "flag_threshold": f"|residual| > {FLAG_THRESHOLD} x 1.4826 MAD(residuals)",
        "data_path": str(data_path) if data_path is not None else None,
        "cross_validation": ({"folds": cross_validation[0]["folds"], "shuffle_seed": seed,
                              "metric": "mean |y - prediction| on the rows left out of each fit"}
                             if cross_validation else None),
    }
    if example.true_coef is not None:
        config["true_coef"] = example.true_coef.tolist() if len(datasets) == 1 else "per seed"
        config["true_intercept"] = example.true_intercept
    if cleans[0] is not None:
        config["clean_fit"] = "OLS on the rows not known to be outliers"
        if len(datasets) == 1:
            config["clean_fit_coef"] = cleans[0][0].tolist()
            config["clean_fit_intercept"] = cleans[0][1]
            config["known_outlier_rows"] = [
                label for label, o in zip(example.row_labels, example.known_outliers) if o
            ]
    return RegressionResult(
        scenario=scenario, methods=methods, records=records, summary=summary, example=example,
        example_fits=example_fits, config=config, wall_time=time.perf_counter() - started,
        warnings=warnings_by_method, cross_validation=cross_validation,
        cross_validation_note=cross_validation_note,
    )


def method_label(method: str) -> str:
    return BASELINE_LABELS.get(method, method)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-style Markdown table (first column left-aligned, the others right-aligned)."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _mean_sd_ci(row: dict[str, Any], metric: str, digits: int = 2) -> str:
    if metric not in row:
        return ""
    if f"{metric}_sd" not in row:
        return _fmt(row[metric], digits + 1)
    low, high = row[f"{metric}_ci95"]
    if math.isnan(low):
        return f"{row[metric]:.{digits}f}"
    return f"{row[metric]:.{digits}f} ± {row[f'{metric}_sd']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def compact_rows(labels: str, shown: int = 5) -> str:
    """``"1 2 3 9 12 15 40"`` -> ``"7: 1 2 3 9 12 …"``: the count, then the first ``shown`` row
    numbers (1-based data rows); ``"none"`` for none. The full list stays in the CSV and JSON."""
    rows = labels.split()
    if not rows:
        return "none"
    return f"{len(rows)}: " + " ".join(rows[:shown]) + (" …" if len(rows) > shown else "")


def summary_table(result: RegressionResult) -> tuple[list[str], list[list[str]]]:
    """The result's main table as headers and formatted rows (synthetic or real layout)."""
    rows: list[list[str]] = []
    if result.synthetic:
        intercept_metric = "intercept_error_pct" if "intercept_error_pct" in result.summary[0] else "intercept_abs_error"
        headers = ["method", "slope error % (mean ± sd [95% CI])",
                   "intercept error % (mean ± sd [95% CI])" if intercept_metric.endswith("pct")
                   else "intercept |error| (mean ± sd [95% CI])",
                   "outliers flagged / inliers flagged", "converged", "iterations (mean / max)"]
        for row in result.summary:
            converged = _fmt(row.get("converged_fraction", row.get("converged")))
            if isinstance(row.get("converged_fraction"), float):
                converged = f"{100 * row['converged_fraction']:.0f} %"
            iterations = (f"{row['iterations']:.0f} / {row['iterations_max']}" if "iterations_max" in row
                          else _fmt(row.get("iterations")))
            rows.append([
                method_label(row["method"]), _mean_sd_ci(row, "slope_error_pct"),
                _mean_sd_ci(row, intercept_metric),
                f"{_fmt(row.get('known_outliers_flagged'), 1)} / {_fmt(row.get('inliers_flagged'), 1)}",
                converged, iterations,
            ])
        return headers, rows
    features = list(result.example.feature_names)
    headers = ["method", "intercept", *features, "residual scale"]
    has_clean = "distance_to_clean_fit" in result.summary[0]
    if has_clean:
        headers.append("distance to clean fit")
    headers += ["flagged rows (count: first, 1-based)", "converged (iterations)"]
    for row in result.summary:
        cells = [method_label(row["method"]), _fmt(row["intercept"], 4),
                 *[_fmt(row[f"coef[{f}]"], 4) for f in features], _fmt(row["residual_scale"], 3)]
        if has_clean:
            cells.append(_fmt(row["distance_to_clean_fit"], 3))
        cells.append(compact_rows(row.get("flagged_rows", "")))
        cells.append(f"{_fmt(row['converged'])} ({row['iterations']})" if "converged" in row else "")
        rows.append(cells)
    return headers, rows


def figure4(result: RegressionResult, out_dir: str | Path, stem: str = "figure4") -> Any:
    """Figure 4: the data with each method's fit, and each method's error over seeds (or residuals)."""
    from losslab.plotting import color_for, plot_text, pyplot, save_figure

    plt = pyplot()
    data = result.example
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    losses = [m for m in result.methods if m in result.config["losses"]]
    baselines = [m for m in result.methods if m not in losses]
    line_style = {m: ("-", color_for(m, i)) for i, m in enumerate(losses)}
    baseline_colors = ("#8c564b", "#e377c2", "#17becf", "#bcbd22", "#1f77b4", "#ff7f0e")
    line_style.update({m: (":", baseline_colors[i % len(baseline_colors)]) for i, m in enumerate(baselines)})

    if data.n_features == 1:
        x = data.x[:, 0]
        outliers = data.known_outliers if data.known_outliers is not None else np.zeros(len(x), bool)
        step = max(1, len(x) // 3000)  # keep the vector figure light
        left.scatter(x[~outliers][::step], data.y[~outliers][::step], s=6, color="#999999", alpha=0.5, label="data")
        if outliers.any():
            left.scatter(x[outliers][::step], data.y[outliers][::step], s=6, color="#f4a582", alpha=0.6,
                         label="known outliers")
        grid = np.linspace(x.min(), x.max(), 100)
        if data.true_coef is not None:
            left.plot(grid, data.true_coef[0] * grid + data.true_intercept, "k--", lw=1.5, label="true line")
        for method in result.methods:
            coef, intercept = result.example_fits[method]
            style, color = line_style[method]
            left.plot(grid, coef[0] * grid + intercept, style, color=color, lw=2 if style == "-" else 1.4,
                      label=method_label(method))
        left.set_xlabel(plot_text(data.feature_names[0]))
        left.set_ylabel(plot_text(data.target_name))
        left.set_title(plot_text(f"{result.scenario}: fitted lines")
                       + (f" (seed {result.config['seeds'][0]})" if result.synthetic else ""))
    else:
        features = list(data.feature_names)
        positions = np.arange(len(result.methods))
        for j, feature in enumerate(["intercept", *features]):
            values = [result.example_fits[m][1] if feature == "intercept" else result.example_fits[m][0][j - 1]
                      for m in result.methods]
            left.scatter(values, positions + (j - len(features) / 2) * 0.12, s=22,
                         label=plot_text(feature))
        clean = clean_fit(data)
        if clean is not None:
            for j, value in enumerate([clean[1], *clean[0]]):
                left.axvline(value, color=f"C{j}", lw=0.8, ls="--")
        left.set_yticks(positions, [method_label(m) for m in result.methods])
        left.invert_yaxis()
        left.set_xlabel("coefficient" + (" (dashed: OLS on the clean rows)" if clean is not None else ""))
        left.set_title(plot_text(f"{result.scenario}: fitted coefficients"))
    # one legend for both panels, outside the axes, so it hides no data
    handles, labels = left.get_legend_handles_labels()
    if data.n_features > 1:
        # the coefficient panel's legend names the coefficients; the methods are on its axis
        left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=min(4, len(labels)))
    else:
        fig.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))

    if result.synthetic and len(result.config["seeds"]) > 1:
        values = [[r["slope_error_pct"] for r in result.records if r["method"] == m] for m in result.methods]
        import matplotlib

        # matplotlib 3.10 replaced vert=False by orientation="horizontal"
        new_api = tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) >= (3, 10)
        right.boxplot(values, showfliers=False,
                      **({"orientation": "horizontal"} if new_api else {"vert": False}))
        for i, (method, v) in enumerate(zip(result.methods, values)):
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(v))
            right.scatter(v, np.full(len(v), i + 1) + jitter, s=9, color=line_style[method][1], zorder=3)
        right.set_yticks(np.arange(1, len(result.methods) + 1), [method_label(m) for m in result.methods])
        right.invert_yaxis()
        right.set_xlabel(f"slope error % over {len(result.config['seeds'])} seeds")
        right.set_title("error distribution over seeds")
    else:
        rows = np.arange(1, data.n_rows + 1)
        for method in result.methods:
            coef, intercept = result.example_fits[method]
            residuals = data.y - data.x @ coef - intercept
            scale = robust_scale(residuals) or 1.0
            style, color = line_style[method]
            right.plot(rows, residuals / scale, marker="o" if style == "-" else ".", ms=3, lw=0.6,
                       ls=style, color=color, label=method_label(method))
        known = data.known_outliers is not None and bool(data.known_outliers.any())
        if known:
            for r in rows[data.known_outliers]:
                right.axvspan(r - 0.5, r + 0.5, color="#f4a582", alpha=0.25, lw=0)
        for sign in (-1, 1):
            right.axhline(sign * FLAG_THRESHOLD, color="k", lw=0.8, ls="--")
        if right.get_ylim()[1] - right.get_ylim()[0] > 20 * FLAG_THRESHOLD:
            # gross outliers would squash the inliers and the cut-off lines into one band
            right.set_yscale("symlog", linthresh=2 * FLAG_THRESHOLD)
        right.set_xlabel("data row (1-based)" + ("; shaded: known outliers" if known else ""))
        right.set_ylabel("residual / robust scale")
        right.set_title(f"scaled residuals; |r| > {FLAG_THRESHOLD} is flagged")
        if data.n_features > 1:
            # the methods' line styles, outside the axes (the left panel's legend names coefficients)
            right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    caption = (f"Figure 4 ({result.scenario}): left, the data and each method's fit; right, "
               + ("the slope error of each method over seeds." if result.synthetic and len(result.config["seeds"]) > 1
                  else "each method's residuals in units of its robust residual scale."))
    return save_figure(fig, out_dir, stem, caption)


def write_outputs(result: RegressionResult, out_dir: str | Path, *, figure: bool = True,
                  stem: str = "regression") -> dict[str, Path]:
    """Write ``{stem}.md``, ``{stem}.csv`` (summary), ``{stem}_per_seed.csv``, ``{stem}.json`` and Figure 4."""
    import pandas as pd

    from losslab._escape import md_text
    from losslab._paths import ensure_folder, inside, safe_component, write_text
    from losslab.experiments.environment import environment_info

    out = ensure_folder(out_dir, option="out")
    headers, rows = summary_table(result)
    lines = [
        f"# Robust regression: {md_text(result.scenario)}", "",
        # the description names the user's file and columns: escaped
        f"Data: {md_text(result.config['description'])} ({result.example.n_rows} rows).", "",
        f"Seeds: {len(result.config['seeds'])} (first {result.config['seeds'][0]}). "
        f"Wall time: {result.wall_time:.1f} s.", "",
        markdown_table(headers, rows), "",
    ]
    if result.cross_validation:
        lines += [f"## Held-out error ({result.cross_validation[0]['folds']}-fold cross-validation)", "",
                  "Each fold's rows are predicted by a fit on the other rows; lower is better.", "",
                  markdown_table(*cross_validation_table(result.cross_validation)), "",
                  verdict(result.cross_validation), ""]
    elif result.cross_validation_note:
        lines += [result.cross_validation_note, ""]
    for method, options in result.config.get("loss_kwargs", {}).items():
        settings = ", ".join(f"{key}={value!r}" for key, value in options.items())
        lines.append(f"- {method_label(method)} fitted with {settings} (the other losses at their defaults).")
    for method, messages in result.warnings.items():
        lines.append(f"- {method_label(method)} warned: {'; '.join(messages)}")
    name = safe_component(stem)
    paths = {"markdown": inside(out, f"{name}.md", file=True), "csv": inside(out, f"{name}.csv", file=True),
             "per_seed_csv": inside(out, f"{name}_per_seed.csv", file=True), "json": inside(out, f"{name}.json", file=True)}
    write_text(paths["markdown"], "\n".join(lines) + "\n")
    flat = [{k: (" ".join(f"{v:.6g}" for v in value) if isinstance(value, list) else value)
             for k, value in row.items()} for row in result.summary]
    write_text(paths["csv"], pd.DataFrame(flat).to_csv(index=False))
    write_text(paths["per_seed_csv"], pd.DataFrame(result.records).to_csv(index=False))
    payload = {"config": result.config, "wall_time_seconds": round(result.wall_time, 3),
               "summary": result.summary, "per_seed": result.records, "warnings": result.warnings,
               "cross_validation": result.cross_validation,
               "environment": environment_info()}
    write_text(paths["json"], json.dumps(payload, indent=2, default=_json_default))
    if figure:
        fig = figure4(result, out, stem=f"{stem}_figure4")
        paths["figure_png"], paths["figure_svg"] = fig.png, fig.svg
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


__all__ = [
    "DEFAULT_LOSSES", "FLAG_THRESHOLD", "RegressionResult", "compact_rows", "cross_validate",
    "cross_validation_table", "figure4", "markdown_table", "regression_loss_names", "robust_scale",
    "run_regression", "summary_table", "t_interval", "verdict", "write_outputs",
]
