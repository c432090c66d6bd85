"""Fused multiclass (softmax over dim 1) M, full M, L and full L from logits.

With ``k = p dl/dp`` per class (the derivative factors of :mod:`losslab.functional._formulas`),
``dL/dz_j = k_j - p_j sum_c k_c``. Class-index targets take one softmax buffer that becomes the
gradient in place (:func:`_indices_pass`), full M / full L with class indices a two-pass chunked
form (:func:`_indices_full_pass`), probability targets a dense chunked pass (:func:`_dense_chunk`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from losslab._validation import weighted_mean
from losslab.functional._formulas import TERMS, TorchOps, log_clamp_bounds, softmax_log_pair
from losslab.functional._fused.autograd import fused_loss
from losslab.functional._fused.chunks import _row_chunks, _Workspace, _zero
from losslab.functional._fused.full_pass import Formulas, full_indices_one_pass, one_pass_applies
from losslab.functional._softmax import log_softmax as _log_softmax
from losslab.functional._softmax import softmax as _softmax

__all__ = ["multiclass_fused"]


def _clamped_log_pair(log_p: Tensor, log_q: Tensor, eps: float) -> Tensor | None:
    """Clamp ``log p`` and ``log(1-p)`` into the eps range in place; return the mask of the
    entries left unchanged (None when eps=0: nothing is clamped)."""
    if eps <= 0:
        return None
    low, high = log_clamp_bounds(eps)
    inside = (log_p >= low) & (log_p <= high) & (log_q >= low) & (log_q <= high)
    log_p.clamp_(low, high)
    log_q.clamp_(low, high)
    return inside


def _true_kernel(kind: str, lp: Tensor, lq: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, k = p dl/dp) of the y=1 term from clamped log p, log(1 - p): the core's
    :data:`~losslab.functional._formulas.TERMS`."""
    return TERMS[kind.removeprefix("full_")][0](lp, lq)


def _false_kernel(kind: str, lp: Tensor, lq: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, k = p dl/dp) of the y=0 term."""
    return TERMS[kind.removeprefix("full_")][1](lp, lq)


class _SoftmaxOverDim1(TorchOps):
    """torch, with the log-softmax over dim 1 that stays fast for narrow class dims."""

    @staticmethod
    def log_softmax(x: Tensor, axis: int) -> Tensor:
        return _log_softmax(x)


_DIM1 = _SoftmaxOverDim1()


def _softmax_pair(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``log p``, ``p`` and an accurate ``log(1 - p)`` of a softmax over dim 1
    (:func:`losslab.functional._formulas.softmax_log_pair`)."""
    log_p, log_q = softmax_log_pair(z, 1, xp=_DIM1)
    return log_p, torch.exp(log_p), log_q


def _multiclass_forward(z, target, weight, kind, ignore_index, reduction, eps) -> tuple[Tensor, Tensor]:
    """The multiclass loss and its gradient in z (the reduction's factor folded in)."""
    compute = torch.float32 if z.dtype in (torch.float16, torch.bfloat16) else z.dtype
    zf = z.to(compute)
    full = kind.startswith("full_")
    base = kind.removeprefix("full_")
    class_shape = (1, -1) + (1,) * (z.dim() - 2)
    sample_shape = zf.shape[:1] + zf.shape[2:]
    if target.is_floating_point():
        index = sample_weight = keep = None
        denominator = torch.tensor(float(math.prod(sample_shape)), dtype=compute, device=zf.device)
    else:
        keep = target != ignore_index
        index = torch.where(keep, target, 0)
        sample_weight = keep.to(compute) if weight is None else torch.where(keep, weight[index], 0.0)
        denominator = sample_weight.sum()
    # The reduction's factor is known before the pass, so it is folded into the gradient.
    if reduction == "mean":
        scale = torch.where(denominator > 0, 1.0 / denominator.clamp_min(torch.finfo(compute).tiny), 0.0)
    else:
        scale = 1.0
    if index is not None and not full:
        # One softmax buffer becomes the gradient in place: no chunks needed (the per-sample
        # math is on (N,) tensors, where chunking would only add per-call overhead).
        loss, grad = _indices_pass(base, zf, index, sample_weight, eps, scale)
    elif index is not None and one_pass_applies(zf, eps):
        formulas = Formulas(_true_kernel, _false_kernel, _clamped_log_pair, _Workspace)
        loss, grad = full_indices_one_pass(base, zf, index, keep, weight, eps, scale, formulas=formulas)
    elif index is not None:
        loss, grad = _indices_full_pass(base, zf, index, keep, weight, eps, scale)
    else:
        grad = torch.empty(zf.shape, dtype=compute, device=zf.device)
        loss = torch.empty(sample_shape, dtype=compute, device=zf.device)
        for rows in _row_chunks(zf):
            loss[rows] = _dense_chunk(
                base, full, zf[rows], None if index is not None else target[rows],
                None if index is None else index[rows],
                None if index is None else keep[rows],
                weight, eps, scale, grad[rows], class_shape,
            )
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = weighted_mean(loss.sum(), denominator)
    return out, grad


def _indices_pass(base, z, index, sample_weight, eps, scale) -> tuple[Tensor, Tensor]:
    """Class-index targets, M or L (not full): only the target class's term is non-zero.

    With ``p_y`` the target probability, ``dL/dz_j = k (delta_jy - p_j)``, ``k = p_y dl/dp_y``;
    the softmax buffer becomes the gradient. Returns the per-sample loss and ``scale`` times
    the gradient.
    """
    index = index.unsqueeze(1)
    if eps > 0:
        # One softmax pass; log p_y from p_y is as accurate as log_softmax wherever the clamp
        # is inactive (p_y >= eps), and where p_y underflows the clamp decides the value.
        p = _softmax(z)
        log_p = p.gather(1, index).log_()
    else:
        p = _log_softmax(z)
        log_p = p.gather(1, index)
        p.exp_()
    p_y = p.gather(1, index)
    p.scatter_(1, index, 0.0)
    # 1 - p_y: near p_y = 1 the sum of the others keeps the digits that 1 - p_y loses; for
    # p_y <= 1/2 it is the other way round (the rounding of a sum of C - 1 terms can push it
    # past 1 - eps and switch the clamp on for a p_y just above eps).
    near_one = p_y > 0.5
    q_y = torch.where(near_one, p.sum(1, keepdim=True), 1.0 - p_y)
    log_q = torch.where(near_one, torch.log(q_y), torch.log1p(-p_y))
    inside = _clamped_log_pair(log_p, log_q, eps)
    value, k = _true_kernel(base, log_p, log_q)
    sample_weight = sample_weight.unsqueeze(1)
    value.mul_(sample_weight)
    k.mul_(sample_weight).mul_(scale)
    if inside is not None:
        k.masked_fill_(~inside, 0.0)
    grad = p.mul_(k.neg_())                                # -k p_j for j != y (p_y was zeroed)
    grad.scatter_(1, index, k.mul_(q_y).neg_())            # k (1 - p_y) at j = y
    return value.squeeze(1), grad

# Elements per chunk of the full M / full L pass with class indices: its three chunk-sized
# buffers (the gradient's rows and two scratch buffers; 3 MB in float32) stay in a 4 MB L2;
# measured at 4096 x 1000: 1 << 16 takes 1.5x the time of 1 << 18 (per-chunk overhead),
# 1 << 17 1.13x, 1 << 19 the same.
_MULTICLASS_CHUNK_ELEMENTS = 1 << 18


def _any_below(p: Tensor, eps: float) -> bool:
    """Whether some probability may lie below ``eps`` (True when unknown: tracing, or an
    accelerator where reading the answer would synchronise)."""
    if eps <= 0 or p.numel() == 0:
        return False
    if torch.compiler.is_compiling() or p.device.type != "cpu":
        return True
    return bool(p.amin() < eps)


def _false_terms_dense(base: str, p: Tensor, eps: float, clamped: bool, out: Tensor,
                       workspace: _Workspace) -> tuple[Tensor, bool]:
    """The y=0 term of every entry of ``p`` (all entries at most 1/2, so only the lower clamp
    can act): returns the loss terms (a workspace buffer) and writes ``k = p dl/dp`` into
    ``out``, or ``-k`` for M (the bool says which: one operation fewer); zero where clamped."""
    mask = torch.lt(p, eps) if clamped else None
    pc = torch.clamp_min(p, eps, out=workspace.get(0, p)) if clamped else p
    if base == "m":
        # u = p / (p - 1) = -(p / q): the term is -u and -k = u - u^2.
        u = torch.sub(pc, 1.0, out=workspace.get(1, p))
        u = torch.div(pc, u, out=u)
        torch.addcmul(u, u, u, value=-1.0, out=out)
        value = u.neg_()
        negated = True
    else:
        # t = sqrt(1 - p^2), r = 1/t: the term is 1/t - 1 = x / (1 + r) with x = p^2 r^2, and
        # k = p^2 / t^3 = x r.
        r = torch.addcmul(_zero(p).add_(1.0), pc, pc, value=-1.0, out=workspace.get(1, p)).rsqrt_()
        x = torch.mul(pc, r, out=workspace.get(0, p) if not clamped else workspace.get(3, p)).square_()
        torch.mul(x, r, out=out)
        value = x.div_(r.add_(1.0))
        negated = False
    if mask is not None:
        out.masked_fill_(mask, 0.0)
    return value, negated


def _false_term_at(base: str, p: float) -> float:
    """The y=0 term of M (``p / (1 - p)``) or L (``1 / sqrt(1 - p^2) - 1``) at ``p``."""
    if base == "m":
        return p / (1.0 - p)
    root = math.sqrt(1.0 - p * p)
    return p * p / (root * (1.0 + root))


def _indices_full_pass(base, z, index, keep, weight, eps, scale) -> tuple[Tensor, Tensor]:
    """Full M / full L with class indices: the true term at the target class ``y``, false
    terms at every other class. Returns the per-sample loss (zero where ignored) and ``scale``
    times ``dL/dz = k - p sum_c k_c`` (``k = p dl/dp`` per class; zero rows where ignored).

    Only the top class (largest logit) can have ``p > 1/2``; for every other class ``1 - p``
    is accurate, so their false terms are computed densely from the softmax. Two entries per
    sample need more care: the top class (its ``1 - p`` is the sum of the other
    probabilities) and the target class (the true term, with ``log p`` from the logits so an
    underflowing ``p`` keeps its digits). The dense pass sees both as probability 0 (their
    terms are then 0, or the constant ``F(eps)`` where the clamp acts, and their k is 0), and
    they are computed in log space on per-sample tensors, once for the whole batch:

    1. per chunk of rows: softmax into the gradient buffer, the top class, its ``1 - p``,
       ``p_y``; the dense false terms' row sums; ``-k`` or ``k`` kept in the gradient buffer;
    2. per sample: the accurate top and target terms, the corrected sums ``V`` (loss) and
       ``K = sum_c k_c``;
    3. per chunk: ``grad = scale (k - p K)`` with ``p`` recomputed as ``exp(z - logsumexp)``;
       then the top and target entries are written from their per-sample values.
    """
    compute = z.dtype
    class_shape = (1, -1) + (1,) * (z.dim() - 2)
    row_shape = (z.shape[0], 1, *z.shape[2:])
    index = index.unsqueeze(1)
    grad = torch.empty(z.shape, dtype=compute, device=z.device)
    top = torch.empty(row_shape, dtype=torch.long, device=z.device)
    p_top = torch.empty(row_shape, dtype=compute, device=z.device)
    q_top = torch.empty_like(p_top)
    p_y = torch.empty_like(p_top)
    dense_value = torch.empty_like(p_top)
    dense_k = torch.empty_like(p_top)
    zeroed_term = torch.zeros_like(p_top)         # F(eps) in chunks where the clamp acts
    weight_view = None if weight is None else weight.view(class_shape)
    workspace = _Workspace()
    chunks = _row_chunks(z, _MULTICLASS_CHUNK_ELEMENTS)
    negated = False
    for rows in chunks:
        g = grad[rows]
        _softmax(z[rows], out=g)
        torch.max(g, 1, keepdim=True, out=(p_top[rows], top[rows]))
        torch.gather(g, 1, index[rows], out=p_y[rows])
        clamped = _any_below(g, eps)
        g.scatter_(1, top[rows], 0.0)
        torch.sum(g, 1, keepdim=True, out=q_top[rows])
        g.scatter_(1, index[rows], 0.0)
        value, negated = _false_terms_dense(base, g, eps, clamped, g, workspace)
        if weight_view is not None:
            value.mul_(weight_view)
            g.mul_(weight_view)
        torch.sum(value, 1, keepdim=True, out=dense_value[rows])
        torch.sum(g, 1, keepdim=True, out=dense_k[rows])
        if clamped:
            zeroed_term[rows] = _false_term_at(base, eps)
    if negated:
        dense_k.neg_()
    # the first pass's scratch buffers are freed before the per-sample work (at C = 10 they are
    # as large as the input)
    value = None
    workspace = _Workspace()

    # Per sample: the top class's false term and the target class's true term, in log space.
    log_p_top, log_q_top = torch.log(p_top), torch.log(q_top)
    z_top = z.gather(1, top)
    log_p_y = (z.gather(1, index) - z_top).add_(log_p_top)
    target_is_top = index == top
    log_q_y = torch.where(target_is_top, log_q_top, torch.neg(p_y).log1p_())
    log_p = torch.cat((log_p_top, log_p_y), 1)
    log_q = torch.cat((log_q_top, log_q_y), 1)
    inside = _clamped_log_pair(log_p, log_q, eps)
    value_top, k_top = _false_kernel(base, log_p[:, :1], log_q[:, :1])
    value_y, k_y = _true_kernel(base, log_p[:, 1:], log_q[:, 1:])
    if inside is not None:
        k_top = k_top.masked_fill(~inside[:, :1], 0.0)
        k_y = k_y.masked_fill(~inside[:, 1:], 0.0)
    if weight is not None:
        w_top, w_y = weight[top], weight[index]
        value_top, k_top = value_top * w_top, k_top * w_top
        value_y, k_y = value_y * w_y, k_y * w_y
        zeroed_weight = torch.where(target_is_top, w_top, w_top + w_y)
    else:
        zeroed_weight = torch.where(target_is_top, 1.0, 2.0).to(compute)
    # (where, not a product with a 0/1 mask: the top's false term is infinite at p_top = 1
    # when eps = 0, and it has no part in the loss when the top is the target)
    loss = dense_value.sub_(zeroed_term.mul_(zeroed_weight)).add_(value_y)
    loss.add_(torch.where(target_is_top, 0.0, value_top))
    k_at_top = torch.where(target_is_top, k_y, k_top)
    # K without the top's k, summed apart: as p_top -> 1 the top's k can dwarf the others
    k_rest = dense_k.add_(torch.where(target_is_top, 0.0, k_y))
    total_k = k_rest + k_at_top
    keep = keep.unsqueeze(1)
    row_scale = torch.where(keep, scale, 0.0).to(compute)
    negative_row_scale = row_scale.neg()
    # The softmax recomputed as exp((z - z_top) + log p_top): z - z_top is exact for logits
    # close to the top one, where the log-sum-exp z_top - log p_top would round to the spacing
    # of the logits (4e-3 at 65000 in float32) and exp would turn that into a relative error.
    for rows in chunks:
        g = grad[rows]
        p = torch.sub(z[rows], z_top[rows], out=workspace.get(0, g)).add_(log_p_top[rows]).exp_()
        if negated:                                      # g holds -k
            g.addcmul_(p, total_k[rows]).mul_(negative_row_scale[rows])
        else:
            g.addcmul_(p, total_k[rows], value=-1.0).mul_(row_scale[rows])
    grad_y = (k_y - p_y * total_k).mul_(row_scale)
    # At the top class k_top - p_top K = k_top q_top - p_top (K - k_top): written so, since with
    # p_top -> 1 the first form cancels k_top's digits.
    grad_top = (k_at_top * q_top).sub_(p_top * k_rest).mul_(row_scale)
    grad.scatter_(1, index, grad_y)
    grad.scatter_(1, top, grad_top)                   # after the target: the top form wins
    if eps <= 0 and not bool(keep.all()):
        # Unclamped terms can be infinite: an ignored sample's gradient must still be zero.
        grad.masked_fill_(~keep, 0.0)
    return torch.where(keep, loss, 0.0).squeeze(1), grad


def _dense_chunk(base, full, z, probabilities, index, keep, weight, eps, scale, grad, class_shape) -> Tensor:
    """Probability targets, or full M / full L: every class has a term. Returns the per-sample
    loss; writes ``scale`` times ``dL/dz = k - p sum_c k_c`` into ``grad``."""
    log_p, p, log_q = _softmax_pair(z)
    inside = _clamped_log_pair(log_p, log_q, eps)
    top = z.argmax(1, keepdim=True) if z.shape[1] > 1 else None
    q_top = None if top is None else log_q.gather(1, top).exp_()
    if probabilities is not None:
        y = probabilities
    else:
        y = torch.zeros_like(z).scatter_(1, index.unsqueeze(1), 1.0)
    value, k = _true_kernel(base, log_p, log_q)
    value.mul_(y)
    k.mul_(y)
    if full:
        value0, k0 = _false_kernel(base, log_p, log_q)
        value.add_(value0.addcmul_(value0, y, value=-1.0))
        k.add_(k0.addcmul_(k0, y, value=-1.0))
        del value0, k0
    del log_p, log_q
    if weight is not None:
        value.mul_(weight.view(class_shape))
        k.mul_(weight.view(class_shape))
    if keep is not None:
        keep = keep.unsqueeze(1)
        value.mul_(keep)
        k.mul_(keep)
    if inside is not None:
        k.masked_fill_(~inside, 0.0)
    if not isinstance(scale, float):
        k.mul_(scale)
    if top is None:
        torch.sub(k, p.mul_(k.sum(1, keepdim=True)), out=grad)
        return value.sum(1)
    # At the largest class k - p sum_c k_c cancels when p -> 1 and its own k dominates (a
    # wrong-class term of a soft target): write it as k_top (1 - p_top) - p_top sum_{c != top} k_c.
    p_top, k_top = p.gather(1, top), k.gather(1, top)
    k_others = k.scatter(1, top, 0.0).sum(1, keepdim=True)
    torch.sub(k, p.mul_(k_others.add(k_top)), out=grad)
    grad.scatter_(1, top, k_top.mul_(q_top).sub_(p_top.mul_(k_others)))
    return value.sum(1)


def multiclass_fused(
    input: Tensor,
    target: Tensor,
    *,
    kind: str,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    eps: float,
    reference: Callable[[Tensor, Tensor, Tensor | None], Tensor],
) -> Tensor:
    """Fused multiclass M / full M / L / full L from logits, input ``(N, C, d1..dk)``
    (arguments already validated; probability targets and weights in the compute dtype).
    ``reference(input, target, weight)``: the reference formula, capturing no tensor."""
    return fused_loss(_multiclass_forward, reference, (input, target, weight), (kind, ignore_index, reduction, eps),
                      reduction=reduction)
