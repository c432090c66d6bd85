"""Fused elementwise losses of an input and a target of the same shape: SMAE and log-cosh
(regression, on the error ``e = input - target``), the sigmoid focal loss and the binary hinge.

==========  ==========================  ===============================================
loss        per element                  derivative
==========  ==========================  ===============================================
SMAE        ``e tanh(e/2)``              ``dl/de = tanh(e/2) + (e/2)(1 - tanh^2(e/2))``
log-cosh    ``log cosh(e)``              ``dl/de = tanh(e)``
==========  ==========================  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.functional._formulas import focal_modulation, log_cosh_of_error
from losslab.functional._fused.autograd import fused_loss
from losslab.functional._fused.chunks import _chunked_result, _elementwise_forward, _row_chunks

__all__ = ["hinge_fused", "log_cosh_of_error", "regression_fused", "sigmoid_focal_fused", "sign_of_label"]


# --- regression -------------------------------------------------------------------------------


def _regression_chunk(kind: str, input: Tensor, target: Tensor, scale: float, grad: Tensor,
                      per_element: Tensor | None) -> Tensor | None:
    """Writes ``scale dl/de`` into ``grad`` (and the loss into ``per_element`` if given);
    returns the chunk's loss sum when ``per_element`` is None."""
    error = torch.sub(input, target)
    # float16 / bfloat16 sums are accumulated in float32: the sum of a chunk may pass the
    # dtype's range (65504 in float16) while the mean fits
    accumulate = torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else None
    if kind == "smae":
        half = error.mul_(0.5)                             # h = e / 2
        tanh = torch.tanh(half)
        if per_element is None and accumulate is not None:
            total = torch.mul(half, tanh).sum(dtype=accumulate).mul_(2.0)
        elif per_element is None:
            total = torch.dot(half.reshape(-1), tanh.reshape(-1)).mul_(2.0)
        else:
            torch.mul(half, tanh, out=per_element).mul_(2.0)
            total = None
        # dl/de = tanh + h (1 - tanh^2) = tanh - h (tanh^2 - 1)
        correction = torch.square(tanh).sub_(1.0).mul_(half)
        torch.sub(tanh, correction, out=grad)
    else:
        torch.tanh(error, out=grad)                        # d/de log cosh(e) = tanh(e)
        value = log_cosh_of_error(error)
        if per_element is None:
            total = value.sum(dtype=accumulate)
        else:
            per_element.copy_(value)
            total = None
    if scale != 1.0:
        grad.mul_(scale)
    return total


def _regression_forward(input, target, kind, reduction) -> tuple[Tensor, Tensor]:
    """The regression loss and its gradient in the input (the reduction's factor folded in)."""
    numel = input.numel()
    scale = 1.0 / max(numel, 1) if reduction == "mean" else 1.0
    grad = torch.empty(input.shape, dtype=input.dtype, device=input.device)
    per_element = torch.empty_like(grad) if reduction == "none" else None
    partial_sums = []
    for rows in _row_chunks(input):
        total = _regression_chunk(kind, input[rows], target[rows], scale, grad[rows],
                                  None if per_element is None else per_element[rows])
        if total is not None:
            partial_sums.append(total)
    loss = _chunked_result(per_element, partial_sums, reduction, scale, grad)
    # the float32 accumulation of a half-precision input is returned in the input's dtype
    return loss.to(input.dtype), grad


def regression_fused(
    input: Tensor, target: Tensor, *, kind: str, reduction: str,
    reference: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Fused SMAE (``kind="smae"``) or log-cosh (``kind="log_cosh"``); arguments validated,
    same shape and dtype."""
    return fused_loss(_regression_forward, reference, (input, target), (kind, reduction), reduction=reduction,
                      target_gradient=True)


# --- sigmoid focal loss -------------------------------------------------------------------------


# Elements per chunk of the focal pass (measured at 10M: 1 << 15 1.6x slower, 1 << 16 1.05x,
# 1 << 18 and 1 << 19 the same as 1 << 17).
_FOCAL_CHUNK_ELEMENTS = 1 << 17


def _focal_chunk(z: Tensor, y: Tensor, alpha: float, gamma: float, scale: float, grad: Tensor) -> Tensor:
    r"""Per element sigmoid focal loss of a chunk (returned); writes ``scale`` times its
    derivative into ``grad``:

    .. math::
        \frac{\partial \ell}{\partial z} = \alpha_t (1 - p_t)^{\gamma} \Big[(\sigma(z) - y)
            + \gamma\, B\, (1 - 2y)\, \frac{\sigma(z)\sigma(-z)}{1 - p_t}\Big],
        \qquad B = -\log p_t,

    with the last factor evaluated as ``exp(2 log sigma(z) - z - log(1 - p_t))`` (all in log
    space, so saturated logits give a finite gradient for every ``gamma >= 0``).
    """
    log_sig = F.logsigmoid(z)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    log_miss = None
    if gamma != 0.0:
        # log(1 - p_t) = log sigma(z) + log((1 - y) + y e^{-z}); for a hard label one term is
        # log(0) = -inf and logaddexp returns the other. log y without torch.log(0) (a slow
        # scalar path on zeros, and hard labels are half zeros): a zero label gets -finfo.max
        # (an arithmetic add; masked_fill / where cost 2x more), which contributes exactly
        # exp(-huge) = 0 for every |z| < finfo.max / 2. Subnormal targets read as the smallest
        # normal number.
        finfo = torch.finfo(y.dtype)
        log_target = torch.log(y.clamp_min(finfo.tiny))
        log_target.add_((y == 0).to(y.dtype), alpha=-finfo.max)
        log_miss = torch.logaddexp(log_target.sub_(z), torch.log1p(-y)).add_(log_sig)
    weight = focal_modulation(log_miss, y, alpha=alpha, gamma=gamma)
    torch.exp(log_sig, out=grad).sub_(y)
    if log_miss is not None:
        # sigma(z) sigma(-z) / (1 - p_t) in log space (log_sig is not needed after this)
        focus = log_sig.mul_(2.0).sub_(z).sub_(log_miss).exp_()
        focus.mul_(bce).mul_(y.mul(-2.0 * gamma).add_(gamma))     # gamma (1 - 2y)
        grad.add_(focus)
    if weight is not None:
        grad.mul_(weight)
        bce.mul_(weight)
    if scale != 1.0:
        grad.mul_(scale)
    return bce


def _focal_forward(z: Tensor, target: Tensor, alpha: float, gamma: float,
                   reduction: str) -> tuple[Tensor, Tensor]:
    """The sigmoid focal loss and its gradient in z (the reduction's factor folded in)."""
    return _elementwise_forward(
        lambda rows, scale, grad: _focal_chunk(z[rows], target[rows], alpha, gamma, scale, grad),
        z, reduction, _FOCAL_CHUNK_ELEMENTS,
    )


def sigmoid_focal_fused(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float,
    gamma: float,
    reduction: str,
    reference: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Fused sigmoid focal loss from logits (arguments validated; target in the input's dtype,
    not requiring grad). ``reference(input, target)``: the formula under autograd, capturing
    no tensor (used only for higher-order derivatives)."""
    return fused_loss(_focal_forward, reference, (input, target), (alpha, gamma, reduction),
                      reduction=reduction)


# --- binary hinge --------------------------------------------------------------------------------


def sign_of_label(target: Tensor, dtype: torch.dtype) -> Tensor:
    """Binary labels as ``t`` in {-1, +1}: 1 -> +1; 0, -1 or False -> -1."""
    return torch.where(target > 0, 1.0, -1.0).to(dtype)


def _hinge_chunk(z: Tensor, target: Tensor, margin: float, squared: bool, scale: float, grad: Tensor) -> Tensor:
    """Per element ``max(0, m - t z)^k`` of a chunk (returned); writes ``scale`` times its
    derivative into ``grad``: ``-t`` (``k = 1``) or ``-2 t h`` (``k = 2``) where
    ``m - t z >= 0`` (at the kink the subgradient torch's ``clamp_min`` gives), 0 elsewhere.
    The ±1 labels are made per chunk, so no input-sized label tensor is built."""
    sign = sign_of_label(target, z.dtype)
    hinge = torch.mul(sign, z).neg_().add_(margin)            # m - t z
    active = hinge >= 0
    hinge.clamp_min_(0.0)
    if squared:
        torch.mul(hinge, sign, out=grad).mul_(-2.0 * scale)
        return hinge.square_()
    torch.mul(sign, -scale, out=grad).mul_(active)
    return hinge


def _hinge_forward(z: Tensor, target: Tensor, margin: float, squared: bool, reduction: str) -> tuple[Tensor, Tensor]:
    """The binary hinge loss and its gradient in z (the reduction's factor folded in)."""
    return _elementwise_forward(
        lambda rows, scale, grad: _hinge_chunk(z[rows], target[rows], margin, squared, scale, grad),
        z, reduction,
    )


def hinge_fused(
    input: Tensor,
    target: Tensor,
    *,
    margin: float,
    squared: bool,
    reduction: str,
    reference: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Fused binary (squared) hinge from scores and validated binary labels (any dtype, see
    :func:`sign_of_label`). ``reference(input, target)``: the formula under autograd,
    capturing no tensor."""
    return fused_loss(_hinge_forward, reference, (input, target), (margin, squared, reduction), reduction=reduction)
