"""Fused binary (sigmoid) M, full M, L and full L from logits.

Gradient semantics of the ``eps`` clamp (as in the reference, where ``clamp`` stops the
gradient): an element whose probability lies outside ``[eps, 1 - eps]`` has zero gradient and
its loss is evaluated at the clamped probability. In logit space the clamp on
``p = sigmoid(z)`` is a clamp of ``z`` into ``[logit(eps), -logit(eps)]``.

The derivatives (``dl/dz = q k`` with ``k = p dl/dp``, see :mod:`losslab.functional._formulas`)
are taken in logit space here: M from ``exp(-+z)``, L from one exp, one sqrt and one division
per element (:func:`_l_exp_term`), or from two sigmoids (:func:`_l_parts`) where the exp form
could overflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from losslab.functional._fused.autograd import fused_loss
from losslab.functional._fused.chunks import (
    CHUNK_ELEMENTS,
    _elementwise_forward,
    _rows_of,
    _Workspace,
    _zero,
)

__all__ = ["binary_fused"]


def _logit_bounds(eps: float) -> tuple[float, float]:
    """``[logit(eps), logit(1 - eps)]``: the logits whose sigmoid the clamp leaves unchanged."""
    if eps <= 0:
        return -math.inf, math.inf
    low = math.log(eps) - math.log1p(-eps)
    return low, -low


def _clamp_active(z: Tensor, low: float, high: float) -> bool | None:
    """Whether any logit lies outside the clamp range; ``None`` when it is unknown (tracing,
    or a device where reading the answer would synchronise), so masking is done anyway."""
    if math.isinf(low) or z.numel() == 0:
        return False
    if torch.compiler.is_compiling() or z.device.type != "cpu":
        return None
    lo, hi = torch.aminmax(z)
    return bool(lo < low) or bool(hi > high)


def _l_parts(p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """``(1/s - 1, p q^2 / s^3)`` with ``s = sqrt(p (1 + q))``; p and q are left unchanged.

    With ``r = 1/s`` and ``t = q^2 r^2``: ``1/s - 1 = t / (1 + r)`` (no cancellation as
    q -> 0) and ``p q^2 / s^3 = t r p``, which is minus the derivative in z of the first.
    """
    r = torch.addcmul(p, p, q).rsqrt_()                   # p + p q = p (1 + q)
    t = torch.mul(r, q).square_()
    slope = torch.mul(t, r).mul_(p)
    value = t.div_(r.add_(1.0))
    return value, slope


def _l_exp_term(e: Tensor, coefficient: Tensor, a: Tensor, w: Tensor, r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """From ``e = exp(z)`` the y=1 term of L times ``coefficient``, as ``(value, slope, r)``
    with ``value = coefficient (1/s - 1)`` and ``slope * r = -coefficient d/dz (1/s - 1)`` (a
    product left to the caller, which folds its scale into it). ``e``, ``a``, ``w``, ``r``
    are chunk buffers, all overwritten (value is ``a``, slope is ``e``).

    With ``p = e / (1 + e)``, ``q = 1 / (1 + e)`` and ``w = sqrt(e (2 + e))``:
    ``s = sqrt(p (1 + q)) = w / (1 + e)``, so ``1/s - 1 = (1 + e - w) / w = 1 / (w (1 + e + w))``
    (as ``(1 + e)^2 - w^2 = 1``; a sum of positive terms, no cancellation at either end) and
    ``d/dz (1/s - 1) = -p q^2 / s^3 = -1 / (w (2 + e))``. Both come from one reciprocal
    ``r = coefficient / (w (2 + e) (1 + e + w))``: one exp, one sqrt and one division per element
    instead of two sigmoids, an rsqrt and two divisions; the rest are cheap products and sums.
    """
    torch.add(e, 2.0, out=a)
    torch.mul(a, e, out=w).sqrt_()
    c = e.add_(1.0).add_(w)                                # 1 + e + w
    torch.mul(a, c, out=r).mul_(w).reciprocal_().mul_(coefficient)
    return a.mul_(r), c, r


def _l_exp_safe(low: float, high: float, dtype: torch.dtype) -> bool:
    """Whether logits within ``[low, high]`` keep ``exp(+-z)`` and ``w (2 + e) (1 + e + w)``
    (about ``2 e^3``) finite and normal in ``dtype``, so the exp form of L is exact to rounding
    (the clamp bounds the logits whenever ``eps > 0``: about +-16 at float32's eps; ``eps = 0``
    or a tiny eps in float64 takes the sigmoid form)."""
    return max(-low, high) <= 0.3 * math.log(torch.finfo(dtype).max)


def _l_exp_chunk(full, z, active, low, high, target, pos_weight, weight, grad, scale,
                 workspace: _Workspace) -> Tensor:
    """L / full L from bounded logits (see :func:`_l_exp_term`), all temporaries in
    ``workspace``: returns the per element loss (a workspace buffer, valid until the next
    chunk), writes ``scale`` times its derivative in z into ``grad`` (not yet masked)."""
    e = workspace.get(0, z)
    positive = target if pos_weight is None else torch.mul(target, pos_weight, out=workspace.get(1, z))
    a, w, r = workspace.get(2, z), workspace.get(3, z), workspace.get(4, z)
    if full:
        negative = workspace.get(6, z)
        torch.sub(_zero(target).add_(1.0), target, out=negative)   # 1 - y in one pass
        if _all_hard(target, negative):
            return _full_l_hard_chunk(z, active, low, high, target, positive, negative, pos_weight, weight,
                                      grad, scale, workspace)
    if active is False:
        torch.exp(z, out=e)
    else:
        torch.clamp(z, low, high, out=e).exp_()
    if full:
        # The y=0 term is the y=1 term at -z (exp(-z) = 1/e), with the derivative's sign flipped.
        f, value0 = workspace.get(5, z), workspace.get(7, z)
        value0, slope0, r0 = _l_exp_term(torch.reciprocal(e, out=f), negative, value0, w, r)
        # scale * slope0 * r0 in one pass (addcmul onto a zero scalar folds the constant)
        torch.addcmul(_zero(grad), slope0, r0, value=scale, out=grad)
        value, slope, r = _l_exp_term(e, positive, a, w, r)
        value.add_(value0)
        grad.addcmul_(slope, r, value=-scale)
    else:
        value, slope, r = _l_exp_term(e, positive, a, w, r)
        torch.addcmul(_zero(grad), slope, r, value=-scale, out=grad)
    if weight is not None:
        value.mul_(weight)
        grad.mul_(weight)
    return value

# L's exp form keeps its temporaries in a reused workspace (about six chunk buffers), so a
# larger chunk still fits in the 4 MB L2 per core when split over two threads, and halves the
# per-chunk Python overhead (measured 5-10% faster at 10M than 1 << 17). Inputs under 16
# such chunks use CHUNK_ELEMENTS: the workspace then stays well below the input's size (the
# peak memory of a 1M-element call would otherwise exceed BCE-with-logits').
_L_CHUNK_ELEMENTS = 1 << 18


def _l_chunk_elements(numel: int) -> int:
    return _L_CHUNK_ELEMENTS if numel >= 16 * _L_CHUNK_ELEMENTS else min(CHUNK_ELEMENTS, _L_CHUNK_ELEMENTS)


def _all_hard(target: Tensor, negative: Tensor) -> bool:
    """Whether every target of the chunk is exactly 0 or 1, from ``sum y (1 - y) == 0`` (each
    product is >= 0 for validated targets in [0, 1], and cannot underflow to 0 unless y is 0
    or 1 since one factor is >= 1/2). False when unknown (tracing, accelerators)."""
    if torch.compiler.is_compiling() or target.device.type != "cpu" or target.numel() == 0:
        return False
    return bool(torch.dot(target.reshape(-1), negative.reshape(-1)) == 0)


def _full_l_hard_chunk(z, active, low, high, target, positive, negative, pos_weight, weight, grad, scale,
                       workspace: _Workspace) -> Tensor:
    """Full L with every target 0 or 1: the y=0 term at z is the y=1 term at -z with the
    derivative's sign flipped, so one term at ``z' = (2y - 1) z`` gives both (clamping z' is
    clamping z, the bounds being symmetric): half the work of the soft-target form."""
    # pw y + (1 - y) is the coefficient; then 1 - y's buffer takes 2y - 1 = y - (1 - y) = +-1
    coefficient = _zero(z).add_(1.0) if pos_weight is None else positive.add_(negative)
    sign = torch.sub(target, negative, out=negative)
    e = workspace.get(0, z)
    torch.mul(z, sign, out=e)
    if active is not False:
        e.clamp_(low, high)
    e.exp_()
    value, slope, r = _l_exp_term(e, coefficient, workspace.get(2, z), workspace.get(3, z),
                                  workspace.get(4, z))
    torch.addcmul(_zero(grad), slope.mul_(sign), r, value=-scale, out=grad)
    if weight is not None:
        value.mul_(weight)
        grad.mul_(weight)
    return value


def _binary_chunk(kind, z, target, pos_weight, weight, low, high, grad, scale, active,
                  workspace: _Workspace) -> Tensor:
    """Per element loss ``w (pw y pos + (1 - y) neg)`` at the clamped logit (returned), and
    ``scale`` times its derivative in z written into ``grad`` (zero where the clamp is active).
    ``active``: whether the clamp may be active anywhere (False skips clamp and mask)."""
    if kind in ("l", "full_l") and _l_exp_safe(low, high, z.dtype):
        value = _l_exp_chunk(kind == "full_l", z, active, low, high, target, pos_weight, weight,
                             grad, scale, workspace)
        if active is not False:
            grad.masked_fill_((z < low) | (z > high), 0.0)
        return value
    zc = z if active is False else z.clamp(low, high)
    if kind in ("m", "full_m"):
        # M from a logit: y exp(-z), derivative -y exp(-z); full M adds (1 - y) exp(z) (its own
        # derivative).
        value = torch.neg(zc).exp_()
        negative = torch.reciprocal(value) if kind == "full_m" else None
        value.mul_(target)
        if pos_weight is not None:
            value.mul_(pos_weight)
        if negative is not None:
            negative.addcmul_(negative, target, value=-1.0)   # (1 - y) x as x - x y
        if weight is not None:
            value.mul_(weight)
            if negative is not None:
                negative.mul_(weight)
        if negative is None:
            torch.mul(value, -scale, out=grad)
        else:
            torch.sub(negative, value, out=grad)
            if scale != 1.0:
                grad.mul_(scale)
            value.add_(negative)
    else:
        # L: q = 1 - p from its own sigmoid (full precision as p -> 1); full L's y=0 term swaps
        # p and q, and the sign of the derivative.
        p = torch.sigmoid(zc)
        q = torch.sigmoid(torch.neg(zc))
        value, slope = _l_parts(p, q)                      # y=1 term; its derivative is -slope
        if pos_weight is not None:
            value.mul_(pos_weight)
            slope.mul_(pos_weight)
        factor = scale                                     # the gradient's final scale
        if kind == "l":
            value.mul_(target)
            torch.mul(slope, target, out=grad)
            factor = -scale
        else:
            value0, slope0 = _l_parts(q, p)                # y=0 term; its derivative is +slope0
            # y v1 + (1 - y) v0 with (1 - y) x as x - x y: exact at y = 0 and 1, where the
            # other term can be many orders of magnitude larger (no v0 + y (v1 - v0) shortcut).
            value.mul_(target).add_(value0.addcmul_(value0, target, value=-1.0))
            torch.addcmul(slope0.addcmul_(slope0, target, value=-1.0), slope, target, value=-1.0, out=grad)
            del value0, slope0
        del slope
        if weight is not None:
            value.mul_(weight)
            grad.mul_(weight)
        if factor != 1.0:
            grad.mul_(factor)
    if active is not False:
        grad.masked_fill_((z < low) | (z > high), 0.0)
    return value


def _binary_forward(z, target, pos_weight, weight, kind, reduction, eps) -> tuple[Tensor, Tensor]:
    """The binary loss and its gradient in z (the reduction's factor folded in)."""
    low, high = _logit_bounds(eps)
    zf = z if z.dtype == target.dtype else z.to(target.dtype)
    active = _clamp_active(zf, low, high)    # one check for all chunks (a reduction is costly)
    workspace = _Workspace()
    return _elementwise_forward(
        lambda rows, scale, grad: _binary_chunk(
            kind, zf[rows], target[rows], _rows_of(pos_weight, rows, zf), _rows_of(weight, rows, zf),
            low, high, grad, scale, active, workspace,
        ),
        zf, reduction, _l_chunk_elements(zf.numel()) if kind in ("l", "full_l") else None,
    )


def binary_fused(
    input: Tensor,
    target: Tensor,
    *,
    kind: str,
    pos_weight: Tensor | None,
    weight: Tensor | None,
    reduction: str,
    eps: float,
    reference: Callable[[Tensor, Tensor, Tensor | None, Tensor | None], Tensor],
) -> Tensor:
    """Fused binary M / full M / L / full L from logits (arguments already validated).

    ``input`` is the caller's tensor (any floating dtype); ``target``, ``pos_weight`` and
    ``weight`` are already in the compute dtype. ``reference(input, target, pos_weight,
    weight)`` recomputes the loss with the reference formula (used only for higher-order
    derivatives); it must capture no tensor (they are kept as saved tensors, freed after
    backward).
    """
    return fused_loss(_binary_forward, reference, (input, target, pos_weight, weight), (kind, reduction, eps),
                      reduction=reduction)
