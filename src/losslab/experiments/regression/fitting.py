"""Fit linear models with any registered regression loss, many data sets at once.

The fit minimises ``mean_i loss(a . x_i + b, y_i)`` by full-batch Adam, written out here so the
learning rate, the stopping rule and the convergence flag are per data set: a batch of ``S``
data sets (one per seed) of equal size is one ``(S, n, p)`` tensor program, not a loop.

Why the details:

- ``x`` is whitened per data set (centred, and decorrelated to identity covariance by the
  inverse Cholesky factor) for conditioning; this reparametrises the same family of lines,
  so the minimiser is unchanged, and the coefficients are mapped back to the original units. ``y`` is *not* rescaled: the robust losses are not
  scale-invariant, and the experiment is about the losses as the paper applied them.
- Every loss starts from the same point (all coefficients and the intercept zero in the
  whitened coordinates) and uses the same step size, ``lr`` times the sd of ``y``.
- Adam with a constant step cannot settle on the kink of MAE, so the step is divided by
  ``1 / decay`` whenever the loss has not improved for ``patience`` iterations; a data set is
  *converged* once its step has fallen below ``min_lr_ratio`` of the initial one. The
  returned coefficients are the best iterate seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from losslab.registry import get_info, loss_names


@dataclass(frozen=True)
class FitSettings:
    """Optimiser settings shared by every loss (so every loss gets the same treatment)."""

    lr: float = 0.05
    max_iter: int = 6000
    patience: int = 40
    decay: float = 0.3
    min_lr_ratio: float = 1e-5
    rel_improvement: float = 1e-13
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-12

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LinearFits:
    """Fitted lines of one loss on ``S`` data sets.

    Attributes:
        loss: registry name of the loss.
        coef: slopes, shape ``(S, p)``, original units.
        intercept: shape ``(S,)``.
        objective: the mean loss at the returned coefficients, ``(S,)``.
        iterations: Adam iterations used per data set, ``(S,)``.
        converged: whether the stopping rule was met before ``max_iter``, ``(S,)``.
    """

    loss: str
    coef: np.ndarray
    intercept: np.ndarray
    objective: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray


def regression_loss_names() -> list[str]:
    """The registered losses of the ``regression`` family."""
    return loss_names("regression")


def check_regression_loss(name: str) -> str:
    """The canonical registry name of a regression loss, or a ValueError listing the valid ones."""
    valid = regression_loss_names()
    try:
        info = get_info(name)
    except (ValueError, TypeError):
        raise ValueError(f"losses: unknown loss {name!r}; valid choices: {', '.join(valid)}") from None
    if info.family != "regression":
        raise ValueError(
            f"losses: {name!r} is a {info.family} loss, not a regression loss; valid choices: {', '.join(valid)}"
        )
    return info.name


def fit_linear(
    x: np.ndarray,
    y: np.ndarray,
    loss: str,
    *,
    loss_kwargs: dict[str, Any] | None = None,
    settings: FitSettings | None = None,
) -> LinearFits:
    """Fit ``y = x @ coef + intercept`` under ``loss`` on one or many data sets at once.

    Args:
        x: ``(n, p)`` or a batch ``(S, n, p)``.
        y: ``(n,)`` or ``(S, n)``.
        loss: a registered regression loss (name or alias).
        loss_kwargs: hyperparameters of the loss (e.g. ``{"delta": 2.0}`` for Huber).
        settings: optimiser settings; the defaults are used for every loss in the experiments.

    Returns:
        :class:`LinearFits` with a leading batch dimension ``S`` (1 for unbatched input).
    """
    name = check_regression_loss(loss)
    function = get_info(name).functional
    settings = settings or FitSettings()
    loss_kwargs = dict(loss_kwargs or {})
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    y_t = torch.as_tensor(np.asarray(y, dtype=np.float64))
    if x_t.ndim == 2:
        x_t, y_t = x_t.unsqueeze(0), y_t.unsqueeze(0)
    if x_t.ndim != 3 or y_t.ndim != 2 or x_t.shape[:2] != y_t.shape:
        raise ValueError(
            f"x, y: expected shapes (n, p) and (n,) or (S, n, p) and (S, n), got {tuple(np.shape(x))} "
            f"and {tuple(np.shape(y))}"
        )
    batch, _, n_features = x_t.shape

    # Whiten x per data set: z = (x - mean) W with W = L^-T, L the Cholesky factor of the
    # covariance of x, so z has identity covariance and least squares is perfectly
    # conditioned (correlated columns, as in hbk, otherwise leave a flat valley Adam crawls along).
    x_mean = x_t.mean(dim=1, keepdim=True)
    centred = x_t - x_mean
    covariance = centred.transpose(1, 2) @ centred / x_t.shape[1]
    cholesky, info = torch.linalg.cholesky_ex(covariance)
    # diag(L)^2 / diag(C): the share of each column's variance the earlier columns do not
    # explain; ~1e-16 means collinear up to rounding, which Cholesky alone may not report.
    variance = covariance.diagonal(dim1=1, dim2=2)
    unexplained = cholesky.diagonal(dim1=1, dim2=2).square() / variance.clamp_min(1e-300)
    if bool((info != 0).any()) or bool((variance <= 0).any()) or bool((unexplained < 1e-10).any()):
        raise ValueError(
            "x: the feature columns are constant or collinear in at least one data set; "
            "drop the redundant columns"
        )
    eye = torch.eye(n_features, dtype=torch.float64).expand(batch, n_features, n_features)
    whitening = torch.linalg.solve_triangular(cholesky, eye, upper=False).transpose(1, 2)
    z = centred @ whitening
    y_scale = y_t.std(dim=1).clamp_min(1e-12)

    theta = torch.zeros(batch, n_features + 1, dtype=torch.float64, requires_grad=True)
    first_m = torch.zeros(batch, n_features + 1, dtype=torch.float64)
    second_m = torch.zeros_like(first_m)
    lr = settings.lr * y_scale
    lr_floor = lr * settings.min_lr_ratio
    best_objective = torch.full((batch,), float("inf"), dtype=torch.float64)
    best_theta = torch.zeros_like(first_m)
    stall = torch.zeros(batch, dtype=torch.long)
    active = torch.ones(batch, dtype=torch.bool)
    iterations = torch.zeros(batch, dtype=torch.long)
    beta1, beta2 = settings.betas

    for step in range(1, settings.max_iter + 1):
        prediction = torch.baddbmm(theta[:, -1:, None].transpose(1, 2), z, theta[:, :-1, None]).squeeze(-1)
        per_point = function(prediction, y_t, reduction="none", **loss_kwargs)
        objective = per_point.mean(dim=1)
        (gradient,) = torch.autograd.grad(objective.sum(), theta)
        with torch.no_grad():
            value = objective.detach()
            improved = value < best_objective - settings.rel_improvement * best_objective.abs()
            better = value < best_objective
            best_theta = torch.where((better & active)[:, None], theta.detach(), best_theta)
            best_objective = torch.where(better & active, value, best_objective)
            stall = torch.where(improved, torch.zeros_like(stall), stall + 1)
            shrink = active & (stall >= settings.patience)
            lr = torch.where(shrink, lr * settings.decay, lr)
            stall = torch.where(shrink, torch.zeros_like(stall), stall)
            finished = active & (lr < lr_floor)
            iterations = torch.where(active, torch.full_like(iterations, step), iterations)
            active = active & ~finished
            if not bool(active.any()):
                break
            first_m.mul_(beta1).add_((1 - beta1) * gradient)
            second_m.mul_(beta2).add_((1 - beta2) * gradient * gradient)
            m_hat = first_m / (1 - beta1**step)
            v_hat = second_m / (1 - beta2**step)
            update = lr[:, None] * m_hat / (v_hat.sqrt() + settings.eps)
            theta -= torch.where(active[:, None], update, torch.zeros_like(update))

    converged = ~active
    coef = (whitening @ best_theta[:, :-1, None]).squeeze(-1)
    intercept = best_theta[:, -1] - (coef * x_mean.squeeze(1)).sum(dim=1)
    return LinearFits(
        loss=name, coef=coef.numpy(), intercept=intercept.numpy(), objective=best_objective.numpy(),
        iterations=iterations.numpy(), converged=converged.numpy(),
    )
