"""One-dimensional profiles of every registered loss: its value and slope along one variable.

A loss with a ``pointwise`` form (classification losses of one probability, regression losses
of one error) is profiled by :func:`losslab.analysis.curve`. Every other loss is evaluated by
its own ``functional`` on a small constructed input in which one number moves, so the
profile shows how the loss responds to the thing it is meant to control:

* multiclass losses on logits without a pointwise form: ``p``, the softmax probability of
  the true class of two, logits ``(log p, log(1 - p))``;
* ``margin_ranking``: the score gap ``x1 - x2`` with ``y = +1``;
* ``contrastive``: the distance ``D`` of a pair, similar and dissimilar;
* ``triplet_margin``: ``d(a, n)`` with ``d(a, p) = 1``;
* the batch triplet losses: the gap between two classes of two points each on a line;
* the angular losses (InfoNCE, NT-Xent, multiple negatives ranking, ArcFace, GE2E): the
  angle between each positive pair of unit vectors in the plane, negatives orthogonal;
* ``dice``: the predicted foreground probability of a foreground pixel;
* ``linear`` (the fused output layer): the true token's probability in a two-token
  vocabulary.

Values are float64 with the loss's default hyperparameters; slopes come from autograd.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from losslab.analysis import curve, probability_grid
from losslab.registry import get_info, list_losses

__all__ = ["Profile", "profile", "profiles"]


@dataclass(frozen=True)
class Profile:
    """The value and slope of one loss along one variable, for one setting (``label``).

    Attributes:
        name: the registered loss.
        variable: what moves, in words (the x-axis label).
        label: which curve of the loss this is (``"y = 1"``, ``"similar pair"``, ...).
        x: the grid (float64).
        value: the loss at each grid point.
        slope: ``d loss / d x`` at each grid point.
    """

    name: str
    variable: str
    label: str
    x: Tensor
    value: Tensor
    slope: Tensor


def _plain(function: Callable[..., Tensor]) -> Callable[..., Tensor]:
    while isinstance(function, functools.partial):
        function = function.func
    return function


def _along(name: str, variable: str, label: str, grid: Tensor,
           evaluate: Callable[[Tensor], Tensor]) -> Profile:
    """Evaluate ``evaluate(t)`` (a scalar loss) at every grid point, with its slope."""
    values, slopes = [], []
    for point in grid:
        t = point.clone().requires_grad_(True)
        value = evaluate(t)
        (slope,) = torch.autograd.grad(value, t, allow_unused=True)
        values.append(value.detach())
        slopes.append(torch.zeros((), dtype=torch.float64) if slope is None else slope.detach())
    return Profile(name, variable, label, grid, torch.stack(values), torch.stack(slopes))


def _unit(angle: Tensor) -> Tensor:
    return torch.stack([torch.cos(angle), torch.sin(angle)])


def _rotated_pairs(theta: Tensor) -> tuple[Tensor, Tensor]:
    """Two orthogonal anchors and their positives, each turned by ``theta``."""
    zero = torch.zeros((), dtype=torch.float64)
    anchors = torch.stack([_unit(zero), _unit(zero + math.pi / 2)])
    positives = torch.stack([_unit(theta), _unit(theta + math.pi / 2)])
    return anchors, positives


def _logit_pair(p: Tensor) -> Tensor:
    return torch.stack([torch.log(p), torch.log1p(-p)]).unsqueeze(0)


def _special(name: str, f: Callable[..., Tensor]) -> list[Profile]:
    """Profiles of the losses without a pointwise form (see the module docstring)."""
    f64 = torch.float64
    angles = torch.linspace(0.0, math.pi, 181, dtype=f64)
    angle_axis = "angle between positive pairs (radians)"
    index0 = torch.zeros(1, dtype=torch.long)
    if name == "kl_div":
        target = torch.tensor([[1.0, 0.0]], dtype=f64)
        return [_along(name, "p (true class of two)", "target (1, 0)", probability_grid(401),
                       lambda p: f(torch.log_softmax(_logit_pair(p), dim=1), target))]
    if name in ("multi_margin", "crammer_singer", "softmax_focal"):
        return [_along(name, "p (true class of two)", "class-index target",
                       probability_grid(401), lambda p: f(_logit_pair(p), index0))]
    if name == "margin_ranking":
        one = torch.ones(1, dtype=f64)
        return [_along(name, "score gap x1 - x2", "y = +1", torch.linspace(-3, 3, 301, dtype=f64),
                       lambda t: f(t.reshape(1), torch.zeros(1, dtype=f64), one))]
    if name == "contrastive":
        grid = torch.linspace(0.0, 2.0, 201, dtype=f64)
        origin = torch.zeros(1, 1, dtype=f64)
        return [
            _along(name, "pair distance D", f"{kind} pair", grid,
                   lambda d, label=label: f(origin, d.reshape(1, 1), torch.tensor([label])))
            for kind, label in (("similar", 0), ("dissimilar", 1))
        ]
    if name == "triplet_margin":
        anchor, positive = torch.zeros(1, 1, dtype=f64), torch.ones(1, 1, dtype=f64)
        return [_along(name, "d(anchor, negative), d(anchor, positive) = 1", "one triplet",
                       torch.linspace(0.05, 3.0, 300, dtype=f64),
                       lambda d: f(anchor, positive, d.reshape(1, 1)))]
    if name in ("batch_hard_triplet", "batch_all_triplet"):
        labels = torch.tensor([0, 0, 1, 1])
        return [_along(name, "gap between two classes on a line", "two points per class",
                       torch.linspace(0.05, 3.0, 300, dtype=f64),
                       lambda g: f(torch.stack([0.0 * g, 0.5 + 0.0 * g, 0.5 + g, 1.0 + g]).unsqueeze(1),
                                   labels))]
    if name == "info_nce":
        def info_nce(theta: Tensor) -> Tensor:
            anchors, positives = _rotated_pairs(theta)
            return f(anchors[:1], positives[:1], anchors[1:])
        return [_along(name, angle_axis, "one negative, orthogonal", angles, info_nce)]
    if name in ("nt_xent", "multiple_negatives_ranking"):
        return [_along(name, angle_axis, "two pairs, orthogonal",
                       angles, lambda theta: f(*_rotated_pairs(theta)))]
    if name == "arcface":
        centers = torch.eye(2, dtype=f64)
        return [_along(name, "angle to its class centre (radians)", "two classes", angles,
                       lambda theta: f(_unit(theta).unsqueeze(0), index0, centers))]
    if name == "ge2e":
        def ge2e(theta: Tensor) -> Tensor:
            half = theta / 2
            base = (0.0, math.pi / 2)
            speakers = [torch.stack([_unit(half + b), _unit(-half + b)]) for b in base]
            return f(torch.stack(speakers))
        return [_along(name, "angle between a speaker's utterances (radians)",
                       "two speakers, orthogonal", torch.linspace(0.0, math.pi / 2, 91, dtype=f64), ge2e)]
    if name == "linear":
        # a two-token vocabulary: weight rows (log p, log(1 - p)) on hidden state 1 give the
        # true token probability p, so the fused output layer traces the loss it computes
        hidden = torch.ones(1, 1, dtype=f64)
        return [_along(name, "p (probability of the true token of two)", "cross-entropy (default)",
                       probability_grid(401),
                       lambda p: f(hidden, torch.stack([torch.log(p), torch.log1p(-p)]).reshape(2, 1),
                                   index0))]
    if name == "dice":
        one = torch.ones(1, 1, 1, dtype=f64)
        return [_along(name, "predicted foreground probability", "foreground pixel",
                       probability_grid(401),
                       lambda p: f(p.reshape(1, 1, 1), one, mode="binary", from_logits=False))]
    raise ValueError(f"name: no profile is defined for loss {name!r}; add one to losslab.profiles")


def profile(name: str) -> list[Profile]:
    """The profiles of one registered loss (by name or alias).

    Args:
        name: a registered loss.

    Returns:
        One :class:`Profile` per setting: for binary losses the targets ``y = 1`` and ``y = 0``
        (the latter only where the loss is not identically zero there), for multiclass losses
        the true class (and, for the full forms, a wrong class), for
        regression losses the error, otherwise the curves listed in the module docstring.
    """
    info = get_info(name)
    if info.pointwise is not None:
        if info.family in ("classification", "binary"):
            # A multiclass loss on a wrong class (y = 0) contributes only in the "full" forms,
            # which penalise the probability given to wrong classes; a binary output's y = 0
            # side is the other label and is drawn whenever the loss is not zero there.
            targets = (1.0, 0.0) if info.family == "binary" or info.name.startswith("full_") else (1.0,)
            result = []
            for y in targets:
                c = curve(info.name, probability_grid(401), y=y)
                if y == 0.0 and bool((c.value.abs() < 1e-12).all()):
                    continue
                label = f"y = {y:g}" if info.family == "binary" else ("true class" if y else "a wrong class")
                result.append(Profile(info.name, "p (probability of the output)", label,
                                      c.x, c.value, c.derivative))
            return result
        c = curve(info.name, torch.linspace(-4.0, 4.0, 401, dtype=torch.float64))
        return [Profile(info.name, "error e = input - target", "", c.x, c.value, c.derivative)]
    if info.functional is None:
        raise ValueError(f"name: loss {info.name!r} has no functional form to profile")
    return _special(info.name, info.functional)


def profiles() -> dict[str, list[Profile]]:
    """:func:`profile` of every registered loss, by name."""
    return {info.name: profile(info.name) for info in list_losses()}
