"""The regressors a user would pick instead of a robust loss, with their usual settings.

Each baseline maps ``(x, y, seed)`` to ``(coef, intercept)``. Settings are the libraries'
defaults, except more iterations where a default limit stops before convergence; the exact
settings are recorded by :func:`baseline_settings`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

BASELINES: tuple[str, ...] = ("ols", "rlm_huber", "rlm_tukey", "sk_huber", "ransac", "theil_sen")

BASELINE_LABELS: dict[str, str] = {
    "ols": "OLS (numpy lstsq)",
    "rlm_huber": "statsmodels RLM, HuberT",
    "rlm_tukey": "statsmodels RLM, TukeyBiweight",
    "sk_huber": "sklearn HuberRegressor",
    "ransac": "sklearn RANSACRegressor",
    "theil_sen": "sklearn TheilSenRegressor",
}


def _ols(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    design = np.column_stack([np.ones(len(y)), x])
    params, *_ = np.linalg.lstsq(design, y, rcond=None)
    return params[1:], float(params[0])


def _rlm(norm_name: str) -> Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, float]]:
    def fit(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        import statsmodels.api as sm

        norm = getattr(sm.robust.norms, norm_name)()
        result = sm.RLM(y, sm.add_constant(x, has_constant="add"), M=norm).fit(maxiter=200)
        return np.asarray(result.params[1:]), float(result.params[0])

    return fit


def _sk_huber(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import HuberRegressor

    model = HuberRegressor(max_iter=1000).fit(x, y)
    return np.asarray(model.coef_), float(model.intercept_)


def _ransac(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import RANSACRegressor

    model = RANSACRegressor(random_state=seed).fit(x, y)
    return np.asarray(model.estimator_.coef_), float(model.estimator_.intercept_)


def _theil_sen(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import TheilSenRegressor

    model = TheilSenRegressor(random_state=seed).fit(x, y)
    return np.asarray(model.coef_), float(model.intercept_)


_FITTERS: dict[str, Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, float]]] = {
    "ols": _ols,
    "rlm_huber": _rlm("HuberT"),
    "rlm_tukey": _rlm("TukeyBiweight"),
    "sk_huber": _sk_huber,
    "ransac": _ransac,
    "theil_sen": _theil_sen,
}


def baseline_settings() -> dict[str, str]:
    """The exact call behind each baseline (for the results' configuration record)."""
    return {
        "ols": "numpy.linalg.lstsq on [1, x]",
        "rlm_huber": "statsmodels RLM(M=HuberT()) .fit(maxiter=200), MAD scale",
        "rlm_tukey": "statsmodels RLM(M=TukeyBiweight()) .fit(maxiter=200), MAD scale, OLS start",
        "sk_huber": "sklearn HuberRegressor(max_iter=1000) (epsilon=1.35, alpha=1e-4)",
        "ransac": "sklearn RANSACRegressor(random_state=seed) (LinearRegression, MAD threshold)",
        "theil_sen": "sklearn TheilSenRegressor(random_state=seed)",
    }


def check_baseline(name: str) -> str:
    if name not in _FITTERS:
        raise ValueError(f"baselines: unknown baseline {name!r}; valid choices: {', '.join(BASELINES)}")
    return name


def fit_baseline(name: str, x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, float, list[str]]:
    """Fit baseline ``name``; return slopes ``(p,)``, intercept, and any warnings it raised."""
    check_baseline(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        coef, intercept = _FITTERS[name](np.asarray(x, float), np.asarray(y, float), seed)
    messages = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}" for w in caught})
    return coef, intercept, messages
