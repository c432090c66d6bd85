"""Loss shapes and derivatives on a grid, and the paper's "strictness" comparison.

Noel et al. (arXiv:2303.09935) call loss A *stricter* than loss B on a set S of outputs p if
``|dA/dp| > |dB/dp|`` on S, and *more lenient* if B is stricter than A. Only the derivative
matters for gradient descent, so this is the comparison that says how a loss changes training.

Every registered loss with a ``pointwise`` evaluator can be analysed: classification losses as a
function of the probability ``p`` of one output for a target ``y`` (0 or 1), regression losses as
a function of the error ``e``. Derivatives come from autograd in float64.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from losslab.registry import LossInfo, get_info

__all__ = ["Curve", "Strictness", "crossings", "curve", "probability_grid", "strictness"]

_PROBABILITY_FAMILIES = ("classification", "binary")


@dataclass(frozen=True)
class Curve:
    """A loss and its derivative on a grid of probabilities (classification) or errors."""

    name: str
    variable: str  # "p" or "e"
    target: float | None
    x: Tensor
    value: Tensor
    derivative: Tensor


def probability_grid(points: int = 2001, *, margin: float = 1e-4) -> Tensor:
    """Evenly spaced probabilities in ``[margin, 1 - margin]`` (float64)."""
    if points < 3:
        raise ValueError(f"points: expected at least 3 grid points, got {points}")
    if not 0 < margin < 0.5:
        raise ValueError(f"margin: expected a number in (0, 0.5), got {margin!r}")
    return torch.linspace(margin, 1.0 - margin, points, dtype=torch.float64)


def _info_with_pointwise(name: str) -> LossInfo:
    info = get_info(name)
    if info.pointwise is None:
        raise ValueError(
            f"name: loss {info.name!r} has no pointwise form to analyse (family {info.family}); "
            "analysis covers classification losses of one probability and regression losses"
        )
    return info


def curve(name: str, x: Tensor | None = None, *, y: float = 1.0) -> Curve:
    """Evaluate a registered loss and its derivative on a grid.

    Args:
        name: a registered loss with a pointwise form (e.g. ``"m"``, ``"full_l"``, ``"smae"``).
        x: the grid; probabilities in (0, 1) for classification losses (default
            :func:`probability_grid`), errors for regression losses (default ``[-5, 5]``).
        y: the target of the output (classification only), in [0, 1].

    Returns:
        A :class:`Curve` with float64 values and derivatives ``d loss / dx``.
    """
    info = _info_with_pointwise(name)
    is_probability = info.family in _PROBABILITY_FAMILIES
    if x is None:
        x = probability_grid() if is_probability else torch.linspace(-5.0, 5.0, 2001, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64).detach().clone().requires_grad_(True)
    if is_probability:
        if not 0.0 <= y <= 1.0:
            raise ValueError(f"y: expected a target in [0, 1], got {y!r}")
        if bool(((x <= 0) | (x >= 1)).any()):
            raise ValueError("x: expected probabilities strictly inside (0, 1)")
        value = info.pointwise(x, torch.full_like(x, float(y)))
    else:
        value = info.pointwise(x)
    (derivative,) = torch.autograd.grad(value.sum(), x)
    return Curve(
        name=info.name,
        variable="p" if is_probability else "e",
        target=float(y) if is_probability else None,
        x=x.detach(),
        value=value.detach(),
        derivative=derivative.detach(),
    )


def _bisect(function, low: float, high: float, iterations: int = 80) -> float:
    f_low = function(low)
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        f_middle = function(middle)
        if (f_middle > 0) == (f_low > 0):
            low, f_low = middle, f_middle
        else:
            high = middle
    return 0.5 * (low + high)


def crossings(a: str, b: str, *, y: float = 1.0, points: int = 4001) -> list[float]:
    """The probabilities where ``|dA/dp| = |dB/dp|``, refined by bisection to ~1e-12."""

    def gap(p: float) -> float:
        grid = torch.tensor([p], dtype=torch.float64)
        return float(curve(a, grid, y=y).derivative.abs() - curve(b, grid, y=y).derivative.abs())

    grid = probability_grid(points, margin=1e-6)
    difference = curve(a, grid, y=y).derivative.abs() - curve(b, grid, y=y).derivative.abs()
    sign = torch.sign(difference)
    roots = []
    for i in torch.nonzero(sign[:-1] * sign[1:] < 0).flatten().tolist():
        roots.append(_bisect(gap, float(grid[i]), float(grid[i + 1])))
    return roots


@dataclass(frozen=True)
class Strictness:
    """Where loss ``a`` is stricter than loss ``b`` (``|dA/dp| > |dB/dp|``) for target ``y``."""

    a: str
    b: str
    y: float
    grid: Tensor
    stricter: Tensor  # bool mask over grid
    stricter_intervals: list[tuple[float, float]]
    lenient_intervals: list[tuple[float, float]]
    crossings: list[float]

    @property
    def fraction_stricter(self) -> float:
        return float(self.stricter.double().mean())

    @property
    def stricter_everywhere(self) -> bool:
        return bool(self.stricter.all())

    def summary(self) -> str:
        """One sentence in the paper's terms."""

        def fmt(intervals: list[tuple[float, float]]) -> str:
            return ", ".join(f"({lo:.4g}, {hi:.4g})" for lo, hi in intervals) or "nowhere"

        if self.stricter_everywhere:
            return f"{self.a} is stricter than {self.b} on all of (0, 1) (y={self.y:g})."
        if not bool(self.stricter.any()):
            return f"{self.a} is more lenient than {self.b} on all of (0, 1) (y={self.y:g})."
        return (
            f"{self.a} is stricter than {self.b} for p in {fmt(self.stricter_intervals)} and more "
            f"lenient for p in {fmt(self.lenient_intervals)} (y={self.y:g}; |dA/dp| = |dB/dp| at "
            f"p = {', '.join(f'{c:.4f}' for c in self.crossings)})."
        )


def _intervals(grid: Tensor, mask: Tensor, cuts: list[float]) -> list[tuple[float, float]]:
    """Maximal runs of ``mask`` over (0, 1), their ends moved to the exact crossings."""
    edges = [0.0, *sorted(cuts), 1.0]
    out = []
    for low, high in itertools.pairwise(edges):
        inside = (grid > low) & (grid < high)
        if bool(inside.any()) and bool(mask[inside].float().mean() > 0.5):
            if out and math.isclose(out[-1][1], low):
                out[-1] = (out[-1][0], high)
            else:
                out.append((low, high))
    return out


def strictness(a: str, b: str = "cross_entropy", *, y: float = 1.0, points: int = 4001) -> Strictness:
    """Where ``a`` is stricter than ``b`` in the paper's sense, for an output with target ``y``.

    Args:
        a, b: registered classification losses (``b`` defaults to cross-entropy, whose
            pointwise form for one output is BCE).
        y: the target (1 compares the penalty on the true class, 0 on a wrong class).
        points: grid resolution; crossing points are then refined by bisection.

    Returns:
        A :class:`Strictness` with the mask over the grid, the intervals where ``a`` is
        stricter / more lenient, and the exact crossing points.

    Example:
        >>> strictness("m").stricter_everywhere
        True
        >>> round(strictness("l").crossings[0], 3)
        0.117
    """
    for name in (a, b):
        if _info_with_pointwise(name).family not in _PROBABILITY_FAMILIES:
            raise ValueError(f"{name!r}: strictness compares classification losses (derivatives in p)")
    grid = probability_grid(points, margin=1e-6)
    da = curve(a, grid, y=y).derivative.abs()
    db = curve(b, grid, y=y).derivative.abs()
    stricter = da > db
    cuts = crossings(a, b, y=y, points=points)
    return Strictness(
        a=get_info(a).name,
        b=get_info(b).name,
        y=float(y),
        grid=grid,
        stricter=stricter,
        stricter_intervals=_intervals(grid, stricter, cuts),
        lenient_intervals=_intervals(grid, ~stricter, cuts),
        crossings=cuts,
    )
