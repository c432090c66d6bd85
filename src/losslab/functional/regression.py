"""Regression losses on the error ``e = input - target``.

SMAE and log-cosh are losslab's own; MSE, MAE, Huber and smooth L1 are thin, documented entries
over ``torch.nn.functional`` that add losslab's argument checks (torch only warns when input and
target broadcast to a different shape; losslab raises).

float16 / bfloat16 inputs are computed in float32 (the error, the loss and the reduction) and
the result is returned in the inputs' dtype: the error of 65000 and -65000 in float16 (130000)
does not overflow, its gradient is exact after the cast, and a mean that fits the dtype is
finite even when a square or the sum passes 65504 (the mean square of four float16 errors of
200 is 40000). A value that does not fit the dtype is, necessarily, ``inf`` once cast.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._validation import (
    check_floating,
    check_positive,
    check_reduction,
    check_same_shape,
    compute_dtype,
    reduce,
)
from losslab.functional import _fused
from losslab.functional._formulas import log_cosh_of_error, smae_of_error
from losslab.functional._fused import check_impl

__all__ = [
    "huber_loss",
    "l1_loss",
    "log_cosh_loss",
    "mae_loss",
    "mse_loss",
    "smae_loss",
    "smooth_absolute_error",
    "smooth_l1_loss",
]

def _check_pair(input: object, target: object, reduction: str) -> tuple[Tensor, Tensor]:
    check_reduction(reduction)
    input = check_floating("input", input)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    return input, target


def _in_compute_dtype(loss: Callable[[Tensor, Tensor], Tensor], input: Tensor, target: Tensor) -> Tensor:
    """``loss(input, target)`` with half-precision inputs computed in float32 and the result
    cast back to the inputs' (promoted) dtype; float32 / float64 inputs are passed through.

    The casts are differentiable, so the gradient is computed in float32 and rounded once.
    """
    result_dtype = torch.promote_types(input.dtype, target.dtype)
    compute = compute_dtype(result_dtype)
    if compute == input.dtype == target.dtype:
        return loss(input, target)
    return loss(input.to(compute), target.to(compute)).to(result_dtype)


def _fused_regression(kind: str, impl: str, input: Tensor, target: Tensor, reduction: str,
                      reference) -> Tensor | None:
    """The fused kernel of :mod:`losslab.functional._fused` if ``impl`` selects it, else None."""
    if not _fused.wants_fused(impl, supported=input.dtype == target.dtype,
                              reason="when input and target dtypes differ"):
        return None
    return _fused.regression_fused(input, target, kind=kind, reduction=reduction,
                                   reference=lambda x, t: reference(x, t, reduction=reduction, impl="reference"))


def smae_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", impl: str = "auto") -> Tensor:
    r"""Smooth absolute error (SMAE) of Noel et al. 2023: ``e tanh(e / 2)``.

    .. math:: \ell(e) = e \tanh(e/2), \quad e = \text{input} - \text{target}

    About ``e^2 / 2`` for small errors and ``|e|`` with no offset for large ones (log-cosh keeps
    an offset of log 2, Huber one of delta / 2); no hyperparameter; infinitely
    differentiable. Not convex (the second derivative is negative for ``|e| > ~2.4``) but
    strictly quasi-convex. The name "smooth MAE" is also used elsewhere for the Huber loss;
    this is not that loss.

    Args:
        input: predictions, any shape, floating point.
        target: the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        impl: ``"auto"`` (default) and ``"fused"`` use the fused kernel of
            :mod:`losslab.functional._fused` (same values and gradients, one input-sized tensor
            kept for backward) when input and target share a dtype; ``"reference"`` evaluates
            the formula above under autograd.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Noel et al., arXiv:2303.09935, section 3; the second author's ``CustomSMAELoss``.
    """
    input, target = _check_pair(input, target, reduction)
    check_impl(impl)
    return _in_compute_dtype(lambda x, t: _smae(x, t, reduction, impl), input, target)


def _smae(input: Tensor, target: Tensor, reduction: str, impl: str) -> Tensor:
    fused = _fused_regression("smae", impl, input, target, reduction, smae_loss)
    if fused is not None:
        return fused
    return reduce(smae_of_error(input - target), reduction)


smooth_absolute_error = smae_loss


def log_cosh_loss(input: Tensor, target: Tensor, *, reduction: str = "mean", impl: str = "auto") -> Tensor:
    r"""Log-cosh loss ``log(cosh(e))``, computed without overflow.

    .. math:: \ell(e) = \log\cosh(e) = |e| + \operatorname{softplus}(-2|e|) - \log 2

    Keras' ``LogCosh`` semantics (mean over elements with ``reduction="mean"``). For
    ``|e| < 1`` it is evaluated as ``log1p(2 sinh^2(e / 2))`` (``cosh e - 1 = 2 sinh^2(e/2)``):
    no cancellation against ``log 2``, so the loss is exactly 0 at ``e = 0`` and never negative
    (the form above, rounded, can fall one unit below 0 near ``e = 0``).

    Args:
        input: predictions, any shape, floating point.
        target: the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        impl: ``"auto"`` (default) and ``"fused"`` use the fused kernel of
            :mod:`losslab.functional._fused` when input and target share a dtype;
            ``"reference"`` evaluates the formula under autograd.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Keras ``keras.losses.LogCosh``; Noel et al., arXiv:2303.09935 (log-cosh as a baseline).
    """
    input, target = _check_pair(input, target, reduction)
    check_impl(impl)
    return _in_compute_dtype(lambda x, t: _log_cosh(x, t, reduction, impl), input, target)


def _log_cosh(input: Tensor, target: Tensor, reduction: str, impl: str) -> Tensor:
    fused = _fused_regression("log_cosh", impl, input, target, reduction, log_cosh_loss)
    if fused is not None:
        return fused
    return reduce(log_cosh_of_error(input - target), reduction)


def mse_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Squared error: ``F.mse_loss`` with shape checks.

    .. math::
        \ell = e^2, \qquad e = \text{input} - \text{target}

    Args:
        input: predictions, any shape.
        target: targets of the same shape (no broadcasting).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``. float16 / bfloat16 inputs
        are computed in float32 and returned in the input's dtype.

    Shape:
        - Input: ``(*)``, any number of dimensions.
        - Target: ``(*)``, the input's shape.
        - Output: scalar, or ``(*)`` with ``reduction="none"``.

    References:
        Gauss, least squares; ``torch.nn.functional.mse_loss``.
    """
    input, target = _check_pair(input, target, reduction)
    return _in_compute_dtype(lambda x, t: F.mse_loss(x, t, reduction=reduction), input, target)


def l1_loss(input: Tensor, target: Tensor, *, reduction: str = "mean") -> Tensor:
    r"""Absolute error (MAE): ``F.l1_loss`` with shape checks.

    .. math::
        \ell = |e|, \qquad e = \text{input} - \text{target}

    Args:
        input: predictions, any shape.
        target: targets of the same shape (no broadcasting).
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``. float16 / bfloat16 inputs
        are computed in float32 and returned in the input's dtype.

    Shape:
        - Input: ``(*)``, any number of dimensions.
        - Target: ``(*)``, the input's shape.
        - Output: scalar, or ``(*)`` with ``reduction="none"``.

    References:
        Laplace, least absolute deviations; ``torch.nn.functional.l1_loss``.
    """
    input, target = _check_pair(input, target, reduction)
    return _in_compute_dtype(lambda x, t: F.l1_loss(x, t, reduction=reduction), input, target)


mae_loss = l1_loss


def huber_loss(
    input: Tensor, target: Tensor, *, delta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Huber loss: ``F.huber_loss`` with shape checks.

    .. math::
        \ell = \begin{cases} \tfrac{1}{2} e^2 & |e| \le \delta \\
                \delta\,(|e| - \tfrac{1}{2}\delta) & \text{otherwise} \end{cases}, \qquad
        e = \text{input} - \text{target}

    Args:
        input: predictions, any shape.
        target: targets of the same shape (no broadcasting).
        delta: the threshold ``> 0`` between the quadratic and the linear part.
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``. float16 / bfloat16 inputs
        are computed in float32 and returned in the input's dtype.

    Shape:
        - Input: ``(*)``, any number of dimensions.
        - Target: ``(*)``, the input's shape.
        - Output: scalar, or ``(*)`` with ``reduction="none"``.

    References:
        Huber, "Robust Estimation of a Location Parameter", Annals of Mathematical
        Statistics, 1964.
    """
    input, target = _check_pair(input, target, reduction)
    check_positive("delta", delta)
    return _in_compute_dtype(lambda x, t: F.huber_loss(x, t, reduction=reduction, delta=delta), input, target)


def smooth_l1_loss(
    input: Tensor, target: Tensor, *, beta: float = 1.0, reduction: str = "mean"
) -> Tensor:
    r"""Smooth L1 loss, Huber divided by beta: ``F.smooth_l1_loss`` with shape checks.

    .. math::
        \ell = \begin{cases} \tfrac{1}{2} e^2 / \beta & |e| < \beta \\
                |e| - \tfrac{1}{2}\beta & \text{otherwise} \end{cases}, \qquad
        e = \text{input} - \text{target}

    Args:
        input: predictions, any shape.
        target: targets of the same shape (no broadcasting).
        beta: the threshold ``>= 0``; ``beta=0`` is the L1 loss.
        reduction: ``"mean"`` (over all elements), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``. float16 / bfloat16 inputs
        are computed in float32 and returned in the input's dtype.

    Shape:
        - Input: ``(*)``, any number of dimensions.
        - Target: ``(*)``, the input's shape.
        - Output: scalar, or ``(*)`` with ``reduction="none"``.

    References:
        Girshick, "Fast R-CNN", ICCV 2015.
    """
    input, target = _check_pair(input, target, reduction)
    check_positive("beta", beta, allow_zero=True)
    return _in_compute_dtype(lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta), input, target)
