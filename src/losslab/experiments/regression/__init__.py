"""Robust regression (the paper's Table 1 and Figure 4), against the regressors users pick instead.

- :mod:`~losslab.experiments.regression.data`: scenarios ``table1``, ``notebook`` (synthetic),
  ``hbk``, ``starsCYG``, ``stackloss`` (real, offline) and CSV files.
- :mod:`~losslab.experiments.regression.fitting`: linear fits under any registered regression
  loss, all seeds in one batched Adam program, with a convergence check.
- :mod:`~losslab.experiments.regression.baselines`: OLS, statsmodels RLM (Huber, Tukey),
  scikit-learn Huber, RANSAC and Theil-Sen.
- :mod:`~losslab.experiments.regression.experiment`: scoring over seeds, tables and Figure 4.
- :mod:`~losslab.experiments.regression.nonlinear`: an MLP on corrupted diabetes targets.
- :mod:`~losslab.experiments.regression.section`: the ``losslab reproduce`` section.

Submodules import numpy/pandas/scikit-learn lazily; importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SCENARIOS": "data", "RegressionData": "data", "load_scenario": "data", "csv_data": "data",
    "Table1Config": "data", "NotebookConfig": "data",
    "FitSettings": "fitting", "LinearFits": "fitting", "fit_linear": "fitting",
    "BASELINES": "baselines", "fit_baseline": "baselines",
    "DEFAULT_LOSSES": "experiment", "RegressionResult": "experiment", "run_regression": "experiment",
    "write_outputs": "experiment", "figure4": "experiment",
    "DiabetesResult": "nonlinear", "run_diabetes_check": "nonlinear",
    "build_section": "section",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
