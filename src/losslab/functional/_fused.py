"""Fused forward+backward kernels for the paper's losses (M, full M, L, full L, SMAE, log-cosh).

The public functions in :mod:`losslab.functional.alternate` and
:mod:`losslab.functional.regression` stay the reference: plain eager formulas that autograd
differentiates. This module gives the same values and gradients with far fewer passes over
memory, which is what bounds these losses on a CPU or GPU:

* each loss is a ``torch.autograd.Function`` whose forward computes the loss AND its analytic
  gradient with respect to the logits (or the error) in one sweep, mostly in place;
* the only input-sized tensor kept for backward is that gradient (the input and the other
  tensor arguments are saved too, which costs no memory since the caller holds them anyway);
* on a CPU the elementwise work runs in chunks of :data:`CHUNK_ELEMENTS` (rows of the
  input), so the temporaries stay in cache and no input-sized temporary is allocated: the
  loss costs about one pass over memory plus the arithmetic. Under ``torch.compile`` the
  whole input is one chunk and Inductor fuses the pass itself;
* backward scales that gradient in place and hands the buffer itself to autograd (no
  input-sized allocation in backward; see :func:`_keep_for_backward`). A second backward
  through a retained graph recomputes it with the same kernels, so it gets the same bits;
* if backward runs with ``create_graph=True`` (a Hessian, a gradient penalty), it rebuilds
  the gradient from the reference formula under autograd, so higher derivatives stay exact.

The functions here take arguments already validated by the public functions, which select
this path with ``impl="auto"`` (default: when ``from_logits`` and neither target nor weight
requires grad) or ``impl="fused"``, and the plain formula with ``impl="reference"``.

Gradient semantics of the ``eps`` clamp (as in the reference, where ``clamp`` stops the
gradient): an element whose probability lies outside ``[eps, 1 - eps]`` has zero gradient
and its loss is evaluated at the clamped probability. In logit space the clamp on
``p = sigmoid(z)`` is a clamp of ``z`` into ``[logit(eps), -logit(eps)]``.

Derivatives used (``p = sigmoid(z)`` or a softmax entry, ``q = 1 - p``), written as
``k = p dl/dp`` because for a softmax ``dL/dz_j = k_j - p_j sum_c k_c`` and for a sigmoid
``dl/dz = q k``:

==========  ==========================  ===========================================
term        per element                  ``k = p dl/dp``
==========  ==========================  ===========================================
M, y=1      ``q / p``                    ``-1 / p``
M, y=0      ``p / q``                    ``p / q^2``
L, y=1      ``1/s - 1``, s=sqrt(p(1+q))  ``-p q / s^3``
L, y=0      ``1/t - 1``, t=sqrt(q(1+p))  ``p^2 / t^3``
SMAE        ``e tanh(e/2)``              ``dl/de = tanh(e/2) + (e/2)(1 - tanh^2(e/2))``
log-cosh    ``log cosh(e)``              ``dl/de = tanh(e)``
==========  ==========================  ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._validation import check_choice, weighted_mean
from losslab.functional._full_pass import Formulas, full_indices_one_pass, one_pass_applies
from losslab.functional._softmax import log_softmax as _log_softmax
from losslab.functional._softmax import softmax as _softmax

__all__ = ["IMPLS", "binary_fused", "check_impl", "hinge_fused", "log_cosh_of_error", "multiclass_fused", "regression_fused", "sigmoid_focal_fused",
           "sign_of_label"]

IMPLS: tuple[str, ...] = ("auto", "fused", "reference")


def check_impl(impl: object) -> str:
    """``impl``: one of :data:`IMPLS`."""
    return check_choice("impl", impl, IMPLS)


def wants_fused(impl: str, *, supported: bool, reason: str, others: tuple[object, ...] = ()) -> bool:
    """Whether to take the fused path.

    ``supported``: the options are ones the fused kernels implement (e.g. ``from_logits``).
    ``others``: tensors besides the input (target, weights); the fused kernels give no gradient
    to them, so ``"auto"`` falls back to the reference when one of them requires grad.
    """
    check_impl(impl)
    if impl == "reference":
        return False
    needs_other_grad = any(isinstance(t, Tensor) and t.requires_grad for t in others)
    if impl == "fused":
        if not supported:
            raise ValueError(f"impl: 'fused' is not available {reason}; use impl='auto' or 'reference'")
        if needs_other_grad:
            raise ValueError(
                "impl: 'fused' differentiates the input only, but the target or a weight requires "
                "grad; use impl='reference'"
            )
        return True
    return supported and not needs_other_grad


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


def _keep_for_backward(ctx, grad: Tensor, forward: Callable[..., tuple[Tensor, Tensor]],
                       args: tuple[object, ...], num_tensors: int) -> None:
    """Keep the precomputed gradient and the forward's arguments for backward.

    The first ``num_tensors`` arguments are the tensors (or None): they are saved for backward,
    so autograd frees them after backward and checks that they were not modified in place;
    no tensor is captured anywhere else (a loss kept alive after backward, say in a list for
    logging, then holds no input-sized memory).

    In eager mode the gradient is held on ``ctx`` rather than saved, so that the first
    backward can scale it in place and hand the buffer itself to autograd (which makes it
    ``x.grad`` without a copy): no input-sized allocation and no extra pass in backward. A
    second backward through a retained graph finds it taken and runs ``forward`` again on the
    saved arguments (the same kernels: the same gradient bit for bit). Under
    ``torch.compile`` it is saved as usual (the traced graph manages its own buffers).
    """
    tensors = args[:num_tensors]
    ctx.static_args = args[num_tensors:]
    ctx.forward_function = forward
    if torch.compiler.is_compiling():
        ctx.gradient_on_ctx = False
        ctx.save_for_backward(grad, *tensors)
    else:
        ctx.gradient_on_ctx = True
        ctx.gradient = grad
        ctx.save_for_backward(*tensors)


def _saved_args(ctx) -> tuple[object, ...]:
    """The tensors saved by :func:`_keep_for_backward` (version-checked by autograd)."""
    saved = ctx.saved_tensors
    return saved[1:] if not ctx.gradient_on_ctx else saved


def _take_gradient(ctx) -> tuple[Tensor, bool]:
    """``(gradient, owned)``: ``owned`` when backward may scale the gradient in place and
    return it (the kept buffer, or a recomputed one when an earlier backward through a
    retained graph took it)."""
    if not ctx.gradient_on_ctx:
        return ctx.saved_tensors[0], False
    grad, ctx.gradient = ctx.gradient, None
    if grad is None:
        with torch.no_grad():
            _, grad = ctx.forward_function(*_saved_args(ctx), *ctx.static_args)
    return grad, True


def _scale_back(grad: Tensor, grad_output: Tensor, unreduced: bool, owned: bool) -> Tensor:
    """``grad * grad_output``: in place when the buffer is ``owned`` (see :func:`_keep_for_backward`),
    else a new tensor (a saved buffer handed out could be modified by a caller's gradient
    accumulation before a second ``backward(retain_graph=True)``)."""
    if unreduced and grad_output.dim() == grad.dim() - 1:
        grad_output = grad_output.unsqueeze(1)             # per sample, over the class dim
    if not owned:
        return grad * grad_output
    # loss.backward() seeds 1: skip the pass (reading a CPU scalar does not synchronise)
    if not (grad_output.numel() == 1 and grad_output.device.type == "cpu" and grad_output.item() == 1.0):
        grad.mul_(grad_output)
    return grad


# Elements per chunk: the temporaries of one chunk (a few tensors of this size) stay in the
# CPU's cache, so the whole loss costs about one pass over memory (read input and target,
# write the gradient) instead of one pass per elementwise operation, and it allocates no
# input-sized temporaries (only the gradient it keeps).
CHUNK_ELEMENTS = 1 << 17


def _row_chunks(reference: Tensor, chunk_elements: int | None = None) -> list[slice] | list[type(Ellipsis)]:
    """Slices along dim 0 covering ``reference`` in chunks of about ``CHUNK_ELEMENTS``
    elements; a single slice under ``torch.compile`` (Inductor fuses the whole pass itself)
    or on an accelerator (no cache to fit in; fewer kernel launches)."""
    if reference.dim() == 0:
        return [...]
    rows = reference.shape[0]
    if torch.compiler.is_compiling() or reference.device.type != "cpu":
        return [slice(0, rows)]
    row_numel = max(1, reference[:1].numel())
    step = max(1, (CHUNK_ELEMENTS if chunk_elements is None else chunk_elements) // row_numel)
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)] or [slice(0, 0)]


def _rows_of(tensor: Tensor | None, rows: slice, reference: Tensor) -> Tensor | None:
    """The chunk of a tensor that broadcasts to ``reference``: sliced if it spans dim 0."""
    if tensor is None or reference.dim() == 0:
        return tensor
    if tensor.dim() == reference.dim() and tensor.shape[0] == reference.shape[0] and tensor.shape[0] != 1:
        return tensor[rows]
    return tensor


# --- binary (sigmoid) losses ----------------------------------------------------------------


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


class _Workspace:
    """Chunk-sized scratch buffers reused across the chunks of one call: a fresh tensor per
    operation costs an allocation whose pages the CPU must fault in again (measured: an
    out-of-place op on a 128K-element chunk took 2-3x the time of the same op in place)."""

    def __init__(self) -> None:
        self._buffers: dict[int, Tensor] = {}

    def get(self, slot: int, like: Tensor) -> Tensor:
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < like.numel() or buffer.dtype != like.dtype:
            buffer = torch.empty(like.numel(), dtype=like.dtype, device=like.device)
            self._buffers[slot] = buffer
        return buffer[: like.numel()].view(like.shape)


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


def _zero(like: Tensor) -> Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


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


def _chunked_result(per_element: Tensor | None, partial_sums: list[Tensor], reduction: str,
                    scale: float, like: Tensor) -> Tensor:
    """The loss from a chunked elementwise pass: the per-element tensor, or the sum of the
    chunks' partial sums (times ``scale`` for "mean"; NaN for the mean of nothing, as torch)."""
    if per_element is not None:
        return per_element
    total = torch.stack(partial_sums).sum() if partial_sums else like.new_zeros(())
    if reduction != "mean":
        return total
    return total * scale if like.numel() else total * math.nan


def _elementwise_forward(chunk: Callable[[slice, float, Tensor], Tensor], z: Tensor, reduction: str,
                         chunk_elements: int | None = None) -> tuple[Tensor, Tensor]:
    """Run ``chunk(rows, scale, grad_rows)`` (the per element loss of those rows; it writes
    ``scale`` times the gradient into ``grad_rows``) over row chunks of ``z``: the loss and the
    gradient, with the reduction's factor folded in."""
    numel = z.numel()
    scale = 1.0 / max(numel, 1) if reduction == "mean" else 1.0
    grad = torch.empty(z.shape, dtype=z.dtype, device=z.device)
    per_element = torch.empty_like(grad) if reduction == "none" else None
    partial_sums = []
    for rows in _row_chunks(z, chunk_elements):
        value = chunk(rows, scale, grad[rows])
        if per_element is None:
            partial_sums.append(value.sum())
        else:
            per_element[rows] = value
    return _chunked_result(per_element, partial_sums, reduction, scale, z), grad


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


class _BinaryFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, target, pos_weight, weight, kind, reduction, eps, reference):
        args = (z, target, pos_weight, weight, kind, reduction, eps)
        out, grad = _binary_forward(*args)
        _save_for_backward(ctx, grad, reduction, reference, _binary_forward, args, num_tensors=4)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return (_fused_input_backward(ctx, grad_output), None, None, None, None, None, None, None)


def _fused_input_backward(ctx, grad_output: Tensor) -> Tensor:
    """The input's gradient for the binary and multiclass Functions."""
    if torch.is_grad_enabled():
        return _reference_grad(ctx.reference, _saved_args(ctx), grad_output)
    grad, owned = _take_gradient(ctx)
    return _scale_back(grad, grad_output, ctx.unreduced, owned).to(ctx.input_dtype)


def _save_for_backward(ctx, grad: Tensor, reduction: str, reference: Callable[..., Tensor],
                       forward: Callable[..., tuple[Tensor, Tensor]], args: tuple[object, ...],
                       num_tensors: int) -> None:
    """What the binary and multiclass Functions keep: the precomputed gradient, the input and
    the other tensor arguments (for the reference-formula backward under ``create_graph``,
    ``reference(input, *other_tensors)``)."""
    z = args[0]
    ctx.unreduced = reduction == "none"
    ctx.input_dtype = z.dtype
    ctx.reference = reference
    _keep_for_backward(ctx, grad, forward, args, num_tensors)


def _reference_grad(reference: Callable[..., Tensor], tensors: tuple[object, ...],
                    grad_output: Tensor) -> Tensor:
    """Backward with ``create_graph=True``: differentiate the reference formula
    ``reference(z, *others)`` instead, so that second derivatives exist and are exact."""
    z, *others = tensors
    with torch.enable_grad():
        leaf = z if z.requires_grad else z.detach().requires_grad_(True)
        value = reference(leaf, *others)
        (grad,) = torch.autograd.grad(value, leaf, grad_output, create_graph=True)
    return grad


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
    return _BinaryFused.apply(input, target, pos_weight, weight, kind, reduction, eps, reference)


# --- multiclass (softmax over dim 1) losses ---------------------------------------------------


def _clamped_log_pair(log_p: Tensor, log_q: Tensor, eps: float) -> Tensor | None:
    """Clamp ``log p`` and ``log(1-p)`` into the eps range in place; return the mask of the
    entries left unchanged (None when eps=0: nothing is clamped)."""
    if eps <= 0:
        return None
    low, high = math.log(eps), math.log1p(-eps)
    inside = (log_p >= low) & (log_p <= high) & (log_q >= low) & (log_q <= high)
    log_p.clamp_(low, high)
    log_q.clamp_(low, high)
    return inside


def _true_kernel(kind: str, lp: Tensor, lq: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, k = p dl/dp) of the y=1 term from clamped log p, log(1 - p)."""
    if kind in ("m", "full_m"):
        return torch.sub(lq, lp).exp_(), torch.neg(lp).exp_().neg_()
    # L: log s = (log p + log(1 + q)) / 2; loss = exp(2 log q - log s) / (1 + s); k = -exp(lp + lq - 3 log s)
    log_s = torch.exp(lq).log1p_().add_(lp).mul_(0.5)
    value = torch.mul(lq, 2.0).sub_(log_s).exp_().div_(torch.exp(log_s).add_(1.0))
    k = torch.add(lp, lq).sub_(log_s.mul_(3.0)).exp_().neg_()
    return value, k


def _false_kernel(kind: str, lp: Tensor, lq: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, k = p dl/dp) of the y=0 term."""
    if kind in ("m", "full_m"):
        return torch.sub(lp, lq).exp_(), torch.mul(lq, -2.0).add_(lp).exp_()
    value, _ = _true_kernel("l", lq, lp)                   # same shape with p and q swapped
    log_t = torch.exp(lp).log1p_().add_(lq).mul_(0.5)      # t = sqrt(q (1 + p))
    k = torch.mul(lp, 2.0).sub_(log_t.mul_(3.0)).exp_()    # p^2 / t^3
    return value, k


def _softmax_pair(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``log p``, ``p`` and an accurate ``log(1 - p)`` of a softmax over dim 1."""
    log_p = _log_softmax(z)
    p = torch.exp(log_p)
    log_q = torch.neg(p).log1p_()
    if z.shape[1] > 1:
        # 1 - p loses its digits for the largest class when p -> 1: take the sum of the others.
        top = z.argmax(1, keepdim=True)
        p_top = p.gather(1, top)
        others = p.scatter(1, top, 0.0).sum(1, keepdim=True)
        log_q.scatter_(1, top, torch.log(others))
        del p_top
    return log_p, p, log_q


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


class _MulticlassFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, target, weight, kind, ignore_index, reduction, eps, reference):
        args = (z, target, weight, kind, ignore_index, reduction, eps)
        out, grad = _multiclass_forward(*args)
        _save_for_backward(ctx, grad, reduction, reference, _multiclass_forward, args, num_tensors=3)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return (_fused_input_backward(ctx, grad_output), None, None, None, None, None, None, None)


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
    return _MulticlassFused.apply(input, target, weight, kind, ignore_index, reduction, eps, reference)


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


def log_cosh_of_error(error: Tensor) -> Tensor:
    r"""``log cosh(e)`` elementwise, for the reference and the fused log-cosh loss alike.

    .. math::
        \log\cosh e = \begin{cases} \operatorname{log1p}(2 \sinh^2(e/2)) & |e| < 1 \\
                    |e| + \operatorname{softplus}(-2|e|) - \log 2 & \text{otherwise} \end{cases}

    The first form (``cosh e - 1 = 2 sinh^2(e/2)``) has no cancellation against ``log 2``: the
    loss is exactly 0 at ``e = 0`` and never negative (the second form, rounded, falls one unit
    below 0 near ``e = 0``); the second never overflows.
    """
    absolute = error.abs()
    # the small-error branch sees |e| clamped to 1, so that sinh never overflows in the
    # discarded entries (both branches of a where are differentiated)
    small = torch.log1p(torch.sinh(absolute.clamp_max(1.0).mul(0.5)).square_().mul_(2.0))
    large = F.softplus(absolute.mul(-2.0)).add_(absolute).sub_(_LOG2)
    return torch.where(absolute < 1.0, small, large)


_LOG2 = math.log(2.0)


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


class _RegressionFused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, kind, reduction, reference):
        args = (input, target, kind, reduction)
        loss, grad = _regression_forward(*args)
        ctx.unreduced = reduction == "none"
        ctx.reference = reference
        ctx.dtypes = (input.dtype, target.dtype)
        _keep_for_backward(ctx, grad, _regression_forward, args, num_tensors=2)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        need_input, need_target = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():
            # create_graph: differentiate the reference formula (exact second derivatives)
            input, target = _saved_args(ctx)
            with torch.enable_grad():
                x = input if input.requires_grad else input.detach().requires_grad_(True)
                t = target if target.requires_grad else target.detach().requires_grad_(True)
                value = ctx.reference(x, t)
                gx, gt = torch.autograd.grad(value, (x, t), grad_output, create_graph=True)
            return (gx if need_input else None, gt if need_target else None, None, None, None)
        grad, owned = _take_gradient(ctx)
        scaled = _scale_back(grad, grad_output, ctx.unreduced, owned)
        gt = scaled.neg().to(ctx.dtypes[1]) if need_target else None
        gx = scaled.to(ctx.dtypes[0]) if need_input else None
        return gx, gt, None, None, None


def regression_fused(
    input: Tensor, target: Tensor, *, kind: str, reduction: str,
    reference: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """Fused SMAE (``kind="smae"``) or log-cosh (``kind="log_cosh"``); arguments validated,
    same shape and dtype."""
    return _RegressionFused.apply(input, target, kind, reduction, reference)


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
    log_miss = weight = None
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
        weight = log_miss.mul(gamma).exp_()
    if alpha >= 0:
        alpha_t = y.mul(2.0 * alpha - 1.0).add_(1.0 - alpha)
        weight = alpha_t if weight is None else weight.mul_(alpha_t)
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


class _ElementwiseFused(torch.autograd.Function):
    """A loss of an input and a target of the same shape given by ``forward(z, target,
    *hyperparameters, reduction) -> (loss, gradient)`` (the sigmoid focal loss, the hinges)."""

    @staticmethod
    def forward(ctx, forward, reference, z, target, *static):
        args = (z, target, *static)
        out, grad = forward(*args)
        ctx.num_static = len(static)
        _save_for_backward(ctx, grad, static[-1], reference, forward, args, num_tensors=2)
        return out

    @staticmethod
    def backward(ctx, grad_output):
        return (None, None, _fused_input_backward(ctx, grad_output), None, *([None] * ctx.num_static))


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
    return _ElementwiseFused.apply(_focal_forward, reference, input, target, alpha, gamma, reduction)


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
    return _ElementwiseFused.apply(_hinge_forward, reference, input, target, margin, squared, reduction)
