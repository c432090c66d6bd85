"""The numeric core of the paper's losses: each formula written once, for any array namespace.

:mod:`losslab.functional.alternate` (the reference formulas under autograd), the fused kernels
of :mod:`losslab.functional._fused` and the Keras adapter :mod:`losslab.keras` all take their
per-element kernels, their ``log p`` / ``log(1 - p)`` pairs and their clamp bounds from here.
The functions call array operations only through ``xp``, an array namespace:
:data:`TORCH` (the default; torch's functions) or the Keras adapter's ``keras.ops`` namespace,
so one formula gives bit-identical values wherever the namespaces' primitives agree.

A per-element kernel maps ``(log p, log(1 - p))`` to the loss of one side of the target:

===========  =========================  ==========================  ==========================
kernel       loss                        in log space                ``k = p dl/dp``
===========  =========================  ==========================  ==========================
M, y=1       ``1/p - 1``                 ``exp(log q - log p)``      ``-1 / p``
M, y=0       ``1/(1 - p) - 1``           ``exp(log p - log q)``      ``p / q^2``
L, y=1       ``1/s - 1``, s=sqrt(p(1+q))  ``q^2 / (s (1 + s))``       ``-p q / s^3``
L, y=0       ``1/t - 1``, t=sqrt(q(1+p))  L, y=1 with p, q swapped    ``p^2 / t^3``
===========  =========================  ==========================  ==========================

The derivative factor ``k`` is what the fused kernels need beside the value: for a softmax
``dL/dz_j = k_j - p_j sum_c k_c``, for a sigmoid ``dl/dz = q k``. The ``*_terms`` functions
return ``(value, k)`` and share the intermediate (``log s``) between the two; their values are
the kernels' bit for bit. Also here: the first version's extras (parametric M, parabolic,
circle, cosine), SMAE and log-cosh of the error, and the sigmoid focal loss's factor.

Formulas in other variables stay beside the kernels that need them for speed: the binary fused
pass works in logit space (``exp(-z)`` for M, one exp and one sqrt for L), and the multiclass
pass with class indices takes the wrong classes' terms directly from the probabilities.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import Tensor

__all__ = [
    "TERMS",
    "TORCH",
    "TorchOps",
    "circle_true",
    "clamp_log_pair",
    "cosine_true",
    "focal_modulation",
    "l_false",
    "l_false_terms",
    "l_log_root",
    "l_true",
    "l_true_terms",
    "log_clamp_bounds",
    "log_cosh_of_error",
    "m_false",
    "m_false_terms",
    "m_true",
    "m_true_terms",
    "parabolic_true",
    "parametric_m_true",
    "probability_log_pair",
    "smae_of_error",
    "softmax_log_pair",
]

_LOG2 = math.log(2.0)


class TorchOps:
    """torch's functions under the names the formulas call (``keras.ops``' names and argument
    conventions: ``axis``, reductions keep the reduced axis)."""

    abs = staticmethod(torch.abs)
    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    sin = staticmethod(torch.sin)
    sinh = staticmethod(torch.sinh)
    square = staticmethod(torch.square)
    tanh = staticmethod(torch.tanh)
    softplus = staticmethod(F.softplus)
    where = staticmethod(torch.where)
    full_like = staticmethod(torch.full_like)
    log_sigmoid = staticmethod(F.logsigmoid)

    @staticmethod
    def logical_or(a: Tensor, b: Tensor) -> Tensor:
        return a | b

    @staticmethod
    def clip(x: Tensor, low: float, high: float) -> Tensor:
        return x.clamp(low, high)

    @staticmethod
    def minimum(x: Tensor, value: float) -> Tensor:
        return x.clamp_max(value)

    @staticmethod
    def log_softmax(x: Tensor, axis: int) -> Tensor:
        return torch.log_softmax(x, axis)

    @staticmethod
    def logsumexp(x: Tensor, axis: int) -> Tensor:
        return torch.logsumexp(x, axis, keepdim=True)

    # The largest entry along an axis, as the formulas see it: an opaque "top" that the
    # namespace alone reads (torch: its index, so that taking and replacing it are a gather and
    # a scatter, one pass each; keras.ops: a one-hot mask).

    @staticmethod
    def top(x: Tensor, axis: int) -> tuple[Tensor, Tensor, int]:
        """Where the largest entry along ``axis`` is (the first of ties), and its value as a
        constant (no gradient)."""
        value, index = torch.max(x.detach(), axis, keepdim=True)
        return index, value, axis

    @staticmethod
    def top_value(top: tuple[Tensor, Tensor, int]) -> Tensor:
        return top[1]

    @staticmethod
    def take(top: tuple[Tensor, Tensor, int], x: Tensor) -> Tensor:
        """``x`` at the top entry (the reduced axis kept)."""
        index, _, axis = top
        return x.gather(axis, index)

    @staticmethod
    def put(top: tuple[Tensor, Tensor, int], x: Tensor, value: Tensor | float) -> Tensor:
        """``x`` with its top entry replaced by ``value`` (a number, or one per slice)."""
        index, _, axis = top
        return x.scatter(axis, index, value)


#: The torch namespace: the default of every formula here.
TORCH = TorchOps()


# --- per-element kernels: (log p, log(1 - p)) -> loss --------------------------------------


def m_true(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """M's y=1 term ``1/p - 1 = (1 - p) / p``."""
    return xp.exp(log_q - log_p)


def m_false(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """M's y=0 term ``1/(1 - p) - 1 = p / (1 - p)``."""
    return xp.exp(log_p - log_q)


def l_log_root(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """``log s`` with ``s = sqrt(1 - q^2) = sqrt(p (1 + q))``: the root shared by L's value
    and its derivative factor."""
    return 0.5 * (log_p + xp.log1p(xp.exp(log_q)))


def _l_from_root(log_q: Tensor, log_s: Tensor, xp: TorchOps) -> Tensor:
    # 1/s - 1 = q^2 / (s (1 + s)): no cancellation as q -> 0
    return xp.exp(2.0 * log_q - log_s) / (1.0 + xp.exp(log_s))


def l_true(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """L's y=1 term ``1/sqrt(p (2 - p)) - 1 = 1/sqrt(1 - q^2) - 1``."""
    return _l_from_root(log_q, l_log_root(log_p, log_q, xp=xp), xp)


def l_false(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """L's y=0 term ``1/sqrt(1 - p^2) - 1``: the y=1 term with the roles of p and 1 - p swapped."""
    return l_true(log_q, log_p, xp=xp)


def parametric_m_true(log_p: Tensor, log_q: Tensor, *, alpha: float, xp: TorchOps = TORCH) -> Tensor:
    """Parametric M's y=1 term ``1/p^alpha - 1`` (``alpha=1`` is M)."""
    return xp.expm1(-alpha * log_p)


def parabolic_true(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """The parabolic loss's term ``1 - p^2 = (1 - p)(1 + p)``."""
    return xp.exp(log_q) * (1.0 + xp.exp(log_p))


def circle_true(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """The circle loss's term ``sqrt(1 - p^2) = sqrt((1 - p)(1 + p))``."""
    return xp.exp(0.5 * (log_q + xp.log1p(xp.exp(log_p))))


def cosine_true(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """The cosine loss's term ``cos(pi p / 2) = sin(pi (1 - p) / 2)``."""
    return xp.sin(0.5 * math.pi * xp.exp(log_q))


# --- value and derivative factor k = p dl/dp, for the fused kernels -------------------------


def m_true_terms(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``(1/p - 1, k)`` with ``k = p d/dp (1/p - 1) = -1/p``."""
    return m_true(log_p, log_q, xp=xp), -xp.exp(-log_p)


def m_false_terms(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``(p/q, k)`` with ``k = p d/dp (p/q) = p/q^2``."""
    return m_false(log_p, log_q, xp=xp), xp.exp(log_p - 2.0 * log_q)


def l_true_terms(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``(1/s - 1, k)`` with ``k = -p q / s^3``, both from one ``log s``."""
    log_s = l_log_root(log_p, log_q, xp=xp)
    return _l_from_root(log_q, log_s, xp), -xp.exp(log_p + log_q - 3.0 * log_s)


def l_false_terms(log_p: Tensor, log_q: Tensor, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``(1/t - 1, k)`` with ``t = sqrt(q (1 + p))`` and ``k = p^2 / t^3``, from one ``log t``."""
    log_t = l_log_root(log_q, log_p, xp=xp)
    return _l_from_root(log_p, log_t, xp), xp.exp(2.0 * log_p - 3.0 * log_t)


#: ``base -> (y=1 terms, y=0 terms)``, each ``(log p, log q) -> (value, k)``.
TERMS: dict[str, tuple[Callable[..., tuple[Tensor, Tensor]], Callable[..., tuple[Tensor, Tensor]]]] = {
    "m": (m_true_terms, m_false_terms),
    "l": (l_true_terms, l_false_terms),
}


# --- log-probabilities --------------------------------------------------------------------------


def log_clamp_bounds(eps: float) -> tuple[float, float]:
    """``[log eps, log1p(-eps)]``: the clamp of p into ``[eps, 1 - eps]`` in log space
    (``-inf`` below for ``eps = 0``)."""
    low = math.log(eps) if eps > 0 else -math.inf
    return low, math.log1p(-eps)


def clamp_log_pair(log_p: Tensor, log_q: Tensor, eps: float, *,
                   xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` clipped into :func:`log_clamp_bounds` (no gradient outside)."""
    low, high = log_clamp_bounds(eps)
    return xp.clip(log_p, low, high), xp.clip(log_q, low, high)


def probability_log_pair(probs: Tensor, eps: float, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of probabilities (already checked to lie in [0, 1]),
    clamped into ``[log eps, log1p(-eps)]``.

    The clamp acts in log space: clamping p itself into ``[eps, 1 - eps]`` would apply
    ``1 - 1.19e-7`` in float32 for ``eps = 1e-7`` (the nearest float to ``1 - 1e-7``), not
    the documented value. Clamped entries take the bound as a constant (no gradient, as Keras'
    clip), and the log of the unclamped entries never sees 0 or 1 (its derivative would be
    infinite there).
    """
    if eps <= 0:
        return xp.log(probs), xp.log1p(-probs)
    low, high = log_clamp_bounds(eps)
    below = probs < eps
    above = (1.0 - probs) < eps                  # 1 - p is exact for p >= 1/2
    safe = xp.where(xp.logical_or(below, above), 0.5, probs)
    log_p = xp.where(below, low, xp.where(above, high, xp.log(safe)))
    log_q = xp.where(above, low, xp.where(below, high, xp.log1p(-safe)))
    return log_p, log_q


def softmax_log_pair(logits: Tensor, axis: int, *, xp: TorchOps = TORCH) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of a softmax along ``axis``, accurate for p near 0 and near 1.

    Only the largest class can have ``p > 1/2``; for the others ``log1p(-p)`` is well
    conditioned. For the largest class ``p = sigmoid(margin)`` with ``margin = z_top -
    logsumexp(z_others)``, taken on logits shifted by the top logit (a constant: the softmax
    does not depend on it): ``z - z_top`` is exact for logits within a factor 2 of each other,
    whereas a log-sum-exp of logits of 1e4 rounds to float32's spacing there (1e-3), which
    ``exp(-margin)`` would turn into a relative error of that size.
    """
    num_classes = logits.shape[axis]
    log_p = xp.log_softmax(logits, axis)
    if num_classes == 1:
        return log_p, xp.full_like(log_p, -math.inf)
    top = xp.top(logits, axis)
    # -1 at the top only keeps log1p finite there (its value is replaced below)
    log_q = xp.log1p(-xp.exp(xp.put(top, log_p, -1.0)))
    shifted = logits - xp.top_value(top)
    margin = xp.take(top, shifted) - xp.logsumexp(xp.put(top, shifted, -math.inf), axis)
    log_p = xp.put(top, log_p, xp.log_sigmoid(margin))
    log_q = xp.put(top, log_q, xp.log_sigmoid(-margin))
    return log_p, log_q


# --- regression, on the error e = input - target ------------------------------------------------


def smae_of_error(error: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    """The smooth absolute error ``e tanh(e / 2)`` elementwise."""
    return error * xp.tanh(0.5 * error)


def log_cosh_of_error(error: Tensor, *, xp: TorchOps = TORCH) -> Tensor:
    r"""``log cosh(e)`` elementwise, for the reference, the fused and the Keras log-cosh alike.

    .. math::
        \log\cosh e = \begin{cases} \operatorname{log1p}(2 \sinh^2(e/2)) & |e| < 1 \\
                    |e| + \operatorname{softplus}(-2|e|) - \log 2 & \text{otherwise} \end{cases}

    The first form (``cosh e - 1 = 2 sinh^2(e/2)``) has no cancellation against ``log 2``: the
    loss is exactly 0 at ``e = 0`` and never negative (the second form, rounded, falls one unit
    below 0 near ``e = 0``); the second never overflows.
    """
    absolute = xp.abs(error)
    # the small-error branch sees |e| clamped to 1, so that sinh never overflows in the
    # discarded entries (both branches of a where are differentiated)
    small = xp.log1p(xp.square(xp.sinh(xp.minimum(absolute, 1.0) * 0.5)) * 2.0)
    large = xp.softplus(absolute * -2.0) + absolute - _LOG2
    return xp.where(absolute < 1.0, small, large)


# --- the sigmoid focal loss ----------------------------------------------------------------------


def focal_modulation(log_miss: Tensor | None, target: Tensor, *, alpha: float, gamma: float,
                     xp: TorchOps = TORCH) -> Tensor | None:
    """The sigmoid focal loss's factor on the cross-entropy, ``alpha_t (1 - p_t)^gamma``, from
    ``log_miss = log(1 - p_t)`` (not read, and may be None, for ``gamma = 0``); None where the
    factor is 1 (``gamma = 0`` and a negative ``alpha``).

    ``(1 - p_t)^gamma`` is taken as ``exp(gamma log(1 - p_t))`` (finite derivatives for every
    ``gamma >= 0``), and ``alpha_t = y alpha + (1 - y)(1 - alpha) = y (2 alpha - 1) + (1 - alpha)``.
    """
    weight = xp.exp(gamma * log_miss) if gamma != 0.0 else None
    if alpha >= 0:
        alpha_t = target * (2.0 * alpha - 1.0) + (1.0 - alpha)
        weight = alpha_t if weight is None else weight * alpha_t
    return weight
