"""An output layer and its loss in one step, without ever holding the ``(N, V)`` logits.

A language model's loss is ``loss(hidden @ weight.T + bias, target)`` with ``N`` tokens and a
vocabulary of ``V`` classes (32k-256k): the logits alone are ``4 N V`` bytes in float32 (4 GiB
at 8k tokens and a 128k vocabulary), and their gradient as much again. :func:`linear_loss`
gives the same value and the same gradients for ``hidden``, ``weight`` and ``bias`` while
holding one chunk of rows of the logits at a time:

* the forward pass runs over chunks of rows; for each it computes the chunk's logits, their
  loss with the loss's own ``(N, C)`` function of :mod:`losslab.functional` (the formula is
  written once, there) and the gradient of that loss with respect to the chunk's logits (with
  ``torch.autograd.grad`` on the chunk; the paper's losses compute it in their forward pass);
  from it, the chunk's rows of ``grad_hidden = g @ weight`` and the chunk's share of
  ``grad_weight = g.T @ hidden`` and ``grad_bias = g.sum(0)``, summed over chunks;
* every chunk's logits are written into one reused buffer; for the losses with a term at the
  target class only (cross-entropy without label smoothing, M and L, no class weight, float32
  or float64) the gradient is formed in that buffer instead, as ``c exp(z - max) + b onehot``
  per row (:func:`_true_term_chunk`; the M / L term and its clamp with the fused kernels'
  formula), and the row factor ``c`` goes into the ``(rows, H)`` products: four passes over
  the chunk's logits and no other buffer of their size;
* only those gradients are kept for backward, which scales them by the incoming gradient
  (and by ``1 / denominator`` for ``"mean"``): backward is three multiplications;
* with ``reduction="none"`` the incoming gradient weighs each row, so ``grad_weight`` cannot
  be summed ahead: backward runs the chunks a second time (the forward pass computes only
  the loss then);
* with no input that requires grad, or under ``torch.no_grad()`` (evaluation), only the loss
  is computed;
* the gradients are exact first derivatives; backward is not itself differentiable
  (``create_graph=True`` raises), as in Liger-Kernel's and Cut Cross-Entropy's kernels.

Working memory is one chunk of logits and the loss's temporaries on it, plus the gradients
autograd needs anyway (``grad_weight`` is ``V x H``, in float32 for float16 / bfloat16
weights, cast at the end). The automatic chunk size keeps one chunk's float32 logits near
:data:`CHUNK_LOGIT_BYTES`: ``rows = CHUNK_LOGIT_BYTES // (4 V)`` rounded down to a multiple of
8 (at least 8, at most ``N``), twice that for the losses whose gradient is formed in the
logits' buffer (:data:`FACTORED_LOSSES`), which hold no other buffer of that size.

float16 / bfloat16 inputs: the matrix products run in the input dtype (torch accumulates
them in float32), the chunk's logits go to the loss in the input dtype exactly as the naive
path's would (the losses compute in float32 and their gradient comes back in the input
dtype), ``grad_weight`` and ``grad_bias`` are summed over chunks in float32, the loss is
returned in float32 and the gradients in the input dtype.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from losslab._validation import (
    as_class_indices,
    check_class_indices,
    check_class_weight,
    check_eps,
    check_floating,
    check_reduction,
    check_tensor,
    compute_dtype,
    effective_eps,
    validation_enabled,
)
from losslab.functional._fused.multiclass import _clamped_log_pair, _true_kernel
from losslab.functional.alternate import l_loss, m_loss
from losslab.functional.classification import cross_entropy, poly_loss, softmax_focal_loss

__all__ = ["linear_loss", "linear_loss_chunk_size"]

# One chunk's float32 logits: 64 MiB (512 rows at V = 32768, 128 at V = 131072). The loss's
# temporaries on the chunk take 2-4 times that. On 2 shared CPU cores, cross-entropy at
# N = 1024, H = 512, V = 32768 took 1.23x, 1.08x and 1.03x the unchunked time with 256-, 512-
# and 1024-row chunks (one measurement; smaller matrix products are less efficient), while
# the working memory grows with the chunk: 512 rows keep it under a quarter of the naive
# path's from N = 4096 rows on (benchmarks/README.md).
CHUNK_LOGIT_BYTES = 64 << 20

# The losses whose chunk gradient is formed in the logits' buffer (no label smoothing or class
# weight, float32 / float64) hold that one buffer, so their chunks take twice the bytes: on 2
# loaded cores cross-entropy at 4096 x 128 x 32768 took 0.77x, 0.64x and 0.58x the naive time
# with 512-, 1024- and 2048-row chunks; 1024 rows keep M's working memory near 13 % of naive.
FACTORED_LOSSES: tuple[str, ...] = ("cross_entropy", "m", "l")


@dataclass(frozen=True)
class _Loss:
    """A loss ``linear_loss`` accepts: its ``(N, C)`` function and the options fixed for it."""

    function: Callable[..., Tensor]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> tuple[str, ...]:
        """The keyword options a caller may pass (the function's, less those linear_loss sets)."""
        reserved = {"input", "target", "weight", "ignore_index", "reduction", "from_logits", *self.fixed}
        parameters = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in reserved)


# Names as in the registry (``losslab.get_info``), with its aliases.
LINEAR_LOSSES: dict[str, _Loss] = {
    "cross_entropy": _Loss(cross_entropy),
    "m": _Loss(m_loss, {"full": False}),
    "full_m": _Loss(m_loss, {"full": True}),
    "l": _Loss(l_loss, {"full": False}),
    "full_l": _Loss(l_loss, {"full": True}),
    "softmax_focal": _Loss(softmax_focal_loss),
    "poly1": _Loss(poly_loss),
}
_ALIASES = {"ce": "cross_entropy", "multiclass_focal": "softmax_focal", "poly": "poly1", "poly_loss": "poly1"}


def _resolve_loss(loss: object) -> tuple[str, _Loss]:
    if not isinstance(loss, str):
        raise TypeError(f"loss: expected a loss name (str), got {type(loss).__name__}")
    key = loss.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in LINEAR_LOSSES:
        raise ValueError(
            f"loss: expected one of {', '.join(repr(n) for n in LINEAR_LOSSES)} "
            f"(aliases {', '.join(repr(a) for a in _ALIASES)}), got {loss!r}"
        )
    return key, LINEAR_LOSSES[key]


def linear_loss_chunk_size(num_rows: int, num_classes: int, *, factored: bool = False) -> int:
    """The automatic chunk size: rows whose float32 logits take about :data:`CHUNK_LOGIT_BYTES`
    (twice that when ``factored``: a loss of :data:`FACTORED_LOSSES` whose gradient is formed
    in the logits' buffer), a multiple of 8 (at least 8), never more than ``num_rows`` (at
    least 1)."""
    rows = (2 if factored else 1) * CHUNK_LOGIT_BYTES // (4 * max(num_classes, 1))
    rows = max(8, rows - rows % 8)
    return max(1, min(rows, num_rows))


# --- checks ------------------------------------------------------------------------------------


def _check_inputs(hidden: object, weight: object, target: object, bias: object,
                  chunk_size: object) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    hidden = check_floating("hidden", hidden)
    weight = check_floating("weight", weight)
    target = check_tensor("target", target)
    if hidden.dim() < 1:
        raise ValueError("hidden: expected hidden states of shape (..., H), got a 0-d tensor")
    if weight.dim() != 2:
        raise ValueError(
            f"weight: expected the output layer's weight of shape (V, H), got shape {tuple(weight.shape)}"
        )
    if hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"weight: expected shape (V, {hidden.shape[-1]}) to match hidden's last dimension "
            f"(hidden has shape {tuple(hidden.shape)}), got {tuple(weight.shape)}"
        )
    if hidden.dtype != weight.dtype:
        raise TypeError(
            f"weight: expected hidden's dtype {hidden.dtype} (no silent casts of the output "
            f"layer), got {weight.dtype}"
        )
    if hidden.device != weight.device:
        raise ValueError(f"weight: expected hidden's device {hidden.device}, got {weight.device}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(
            f"target: expected an integer tensor of class indices of shape "
            f"{tuple(hidden.shape[:-1])}, got dtype {target.dtype}"
        )
    if target.shape != hidden.shape[:-1]:
        raise ValueError(
            f"target: expected class indices of shape {tuple(hidden.shape[:-1])} (hidden's leading "
            f"dimensions; hidden has shape {tuple(hidden.shape)}), got {tuple(target.shape)}"
        )
    if bias is not None:
        bias = check_floating("bias", bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(
                f"bias: expected shape ({weight.shape[0]},) (one entry per row of weight, shape "
                f"{tuple(weight.shape)}), got {tuple(bias.shape)}"
            )
        if bias.dtype != weight.dtype:
            raise TypeError(f"bias: expected weight's dtype {weight.dtype}, got {bias.dtype}")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size <= 0
    ):
        raise ValueError(f"chunk_size: expected None (automatic) or an integer > 0, got {chunk_size!r}")
    return hidden, weight, as_class_indices("target", target).to(hidden.device), bias


def _check_z_loss(z_loss: object) -> float:
    if isinstance(z_loss, bool) or not isinstance(z_loss, (int, float)) or not math.isfinite(z_loss) or z_loss < 0:
        raise ValueError(f"z_loss: expected a finite number >= 0, got {z_loss!r}")
    return float(z_loss)


def _check_options(name: str, spec: _Loss, options: Mapping[str, Any]) -> None:
    allowed = spec.options()
    for key, value in options.items():
        if key == "from_logits":
            raise TypeError(f"from_logits: linear_loss always computes logits, got from_logits={value!r}")
        if key == "weight":
            raise TypeError("weight: the output layer's weight is the second argument; pass the "
                            "per-class loss weight as class_weight=")
        if key not in allowed:
            raise TypeError(
                f"{key}: not an option of loss {name!r}; its options: "
                f"{', '.join(allowed) or 'none'} (and class_weight, ignore_index, reduction, z_loss)"
            )


# --- the chunk loop ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Everything about a call that is not a tensor input."""

    spec: _Loss
    options: Mapping[str, Any]
    ignore_index: int
    reduction: str
    chunk_size: int
    z_loss: float
    # whether autograd records the call (False under torch.no_grad(): only the loss is computed)
    differentiate: bool = True


def _chunk_loss(plan: _Plan, logits: Tensor, target: Tensor, class_weight: Tensor | None,
                reduction: str) -> Tensor:
    """The loss of one chunk's logits (``reduction`` "sum" or "none"), with the z-loss term."""
    value = plan.spec.function(
        logits, target, weight=class_weight, ignore_index=plan.ignore_index, reduction=reduction,
        **plan.spec.fixed, **plan.options,
    )
    if plan.z_loss > 0:
        compute = compute_dtype(logits)
        value = value.to(compute)
        log_normaliser = torch.logsumexp(logits.to(compute), 1)
        row_weight = _row_weight(plan, target, class_weight, compute)
        z_term = plan.z_loss * row_weight * log_normaliser.square()
        value = value + (z_term.sum() if reduction == "sum" else z_term)
    return value


def _row_weight(plan: _Plan, target: Tensor, class_weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    """Each row's weight in the mean: 0 where ignored, else 1 or its target's class weight."""
    keep = target != plan.ignore_index
    if class_weight is None:
        return keep.to(dtype)
    return torch.where(keep, class_weight.to(dtype)[torch.where(keep, target, 0)], 0.0)


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    return compute_dtype(torch.empty((), dtype=dtype))


def _in_place_term(plan: _Plan, class_weight: Tensor | None, dtype: torch.dtype) -> _TrueTerm | None:
    """The loss's target-class term when a chunk's gradient can be formed in its logits' own
    buffer (see :func:`_true_term_chunk`), else None: cross-entropy without label smoothing,
    M and L (not full) with the fused kernels' formula, no class weight, in a dtype the loss
    computes in (not float16 / bfloat16), eagerly."""
    if class_weight is not None or compute_dtype(torch.empty((), dtype=dtype)) != dtype:
        return None
    if torch.compiler.is_compiling():
        return None
    options = plan.options
    if plan.spec.function is cross_entropy and not options.get("label_smoothing", 0.0):
        return _TrueTerm("cross_entropy", 0.0)
    if (plan.spec.function in (m_loss, l_loss) and not plan.spec.fixed.get("full", False)
            and options.get("impl", "auto") != "reference"):
        eps = check_eps(options.get("eps", 1e-7))
        return _TrueTerm("m" if plan.spec.function is m_loss else "l", effective_eps(eps, dtype))
    return None


@dataclass(frozen=True)
class _TrueTerm:
    """A loss with a term at the target class only: ``"cross_entropy"`` (``-log p``), or the
    base kind of M / L (``"m"``, ``"l"``) with its clamp ``eps``."""

    kind: str
    eps: float

    def value_and_k(self, log_p: Tensor, log_q: Tensor) -> tuple[Tensor, Tensor]:
        """``(loss, k = p dl/dp)`` from ``log p`` and ``log(1 - p)`` of the target class (k is
        0 where the clamp acts)."""
        if self.kind == "cross_entropy":
            return log_p.neg(), torch.full_like(log_p, -1.0)
        inside = _clamped_log_pair(log_p, log_q, self.eps)
        value, k = _true_kernel(self.kind, log_p, log_q)
        if inside is not None:
            k.masked_fill_(~inside, 0.0)
        return value, k


def _true_term_chunk(term: _TrueTerm, logits: Tensor, target: Tensor, ignore_index: int, z_loss: float,
                     row_scale: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""A target-class loss (plus the z-loss) of one chunk, its gradient left in factored form.

    With ``m`` the row maximum and ``e = exp(z - m)`` written over ``logits``, the target entry
    set to 0 (``e'``), ``S'`` the row sum of ``e'`` and ``S = S' + e_y``: ``log p_y = z_y - m -
    log S`` and ``1 - p_y = S' / S`` (exact as ``p_y -> 1``, where ``1 - p_y`` loses its
    digits). For a loss ``l(p_y)`` with ``k = p_y l'(p_y)`` the gradient in the logits is
    ``k (onehot(y) - p)``, and the z-loss ``z lse^2`` adds ``2 z lse p``; so per kept row

    .. math::
        g = c\, e' + b\, \mathrm{onehot}(y), \qquad c = \frac{2 z\, \mathrm{lse} - k}{S},
        \quad b = k (1 - p_y) + 2 z\, \mathrm{lse}\, p_y .

    The ``(rows, V)`` buffer is never scaled: ``c`` goes into the ``(rows, H)`` products
    (:func:`_add_factored_gradients`). Four passes over it (max, subtract, exp, sum) where the
    loss and its backward take about seven and two more buffers of that size.

    Returns the per-row loss (0 where ignored), ``e'`` (the buffer), ``c`` and ``b``
    ``(rows, 1)`` (0 where ignored; times ``row_scale`` when given).
    """
    keep = (target != ignore_index).unsqueeze(1)
    index = torch.where(keep.squeeze(1), target, 0).unsqueeze(1)
    picked = logits.gather(1, index)
    shift = logits.amax(1, keepdim=True)
    e = logits.sub_(shift).exp_()
    e_y = e.gather(1, index)
    e.scatter_(1, index, 0.0)
    others = e.sum(1, keepdim=True)
    total = others + e_y
    log_total = total.log()
    log_normaliser = log_total + shift
    log_p = picked - log_normaliser
    p_y = log_p.exp()
    # 1 - p_y: the sum of the others near p_y = 1, where 1 - p_y cancels; 1 - p_y below 1/2,
    # where the rounding of a sum of V - 1 terms could push it past 1 - eps (switching the
    # clamp on for a p_y just above eps)
    near_one = p_y > 0.5
    q_y = torch.where(near_one, others.log() - log_total, torch.neg(p_y).log1p_())
    value, k = term.value_and_k(log_p, q_y)
    q_y = q_y.exp_()
    factor = k.neg()
    coefficient = k * q_y
    if z_loss > 0:
        value = value + z_loss * log_normaliser.square()
        factor.add_(log_normaliser, alpha=2.0 * z_loss)
        coefficient.addcmul_(log_normaliser, p_y, value=2.0 * z_loss)
    factor.div_(total)
    keep_scale = keep.to(logits.dtype) if row_scale is None else keep.to(logits.dtype) * row_scale.unsqueeze(1)
    factor.mul_(keep_scale)
    coefficient.mul_(keep_scale)
    return value.masked_fill_(~keep, 0.0).squeeze(1), e, factor, coefficient


def _run_chunks(plan: _Plan, hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor,
                class_weight: Tensor | None, *, want: tuple[bool, bool, bool],
                row_scale: Tensor | None = None) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """One pass over the chunks: the loss (summed, or per row when ``row_scale`` is None and the
    reduction is "none") and the gradients asked for by ``want`` (hidden, weight, bias).

    ``row_scale`` (backward of "none"): the incoming gradient of each row; the gradients are
    then those of ``sum(row_scale * loss)``.

    Every chunk's logits are written into one reused buffer (a fresh ``(rows, V)`` tensor per
    chunk costs the page faults of a new allocation each time).
    """
    num_rows, num_classes = hidden.shape[0], weight.shape[0]
    per_row = plan.reduction == "none" and row_scale is None
    accumulate = compute_dtype(hidden)
    need_grad = any(want)
    reduction = "none" if per_row or row_scale is not None else "sum"
    loss_dtype = _loss_dtype(hidden.dtype)
    out = torch.empty(num_rows, dtype=loss_dtype, device=hidden.device) if per_row else None
    total = torch.zeros((), dtype=loss_dtype, device=hidden.device)
    grad_hidden = torch.empty_like(hidden) if want[0] else None
    # grad_weight: the first chunk writes it (no zero fill of V x H), the others add to it
    grad_weight = torch.empty(weight.shape, dtype=accumulate, device=weight.device) if want[1] else None
    grad_bias = torch.zeros(num_classes, dtype=accumulate, device=weight.device) if want[2] else None
    if grad_weight is not None and num_rows == 0:
        grad_weight.zero_()
    term = _in_place_term(plan, class_weight, hidden.dtype) if need_grad else None
    buffer = torch.empty((min(plan.chunk_size, max(num_rows, 1)), num_classes), dtype=hidden.dtype,
                         device=hidden.device)
    weight_t = weight.t()
    for start in range(0, max(num_rows, 1), plan.chunk_size):
        rows = slice(start, min(start + plan.chunk_size, num_rows))
        h = hidden[rows]
        t = target[rows]
        logits = buffer[: h.shape[0]]
        if bias is None:
            torch.mm(h, weight_t, out=logits)
        else:
            torch.addmm(bias, h, weight_t, out=logits)
        if term is not None:
            value, e, factor, coefficient = _true_term_chunk(
                term, logits, t, plan.ignore_index, plan.z_loss, None if row_scale is None else row_scale[rows])
            if per_row:
                out[rows] = value
            elif row_scale is None:
                total += value.sum().to(loss_dtype)
            else:
                total += (value * row_scale[rows]).sum().to(loss_dtype)
            _add_factored_gradients(e, factor, coefficient, torch.where(t != plan.ignore_index, t, 0), h, weight,
                                    start == 0, None if grad_hidden is None else grad_hidden[rows],
                                    grad_weight, grad_bias)
            continue
        if not need_grad:
            value = _chunk_loss(plan, logits, t, class_weight, reduction)
            if per_row:
                out[rows] = value
            else:
                total += value.to(loss_dtype)
            continue
        with torch.enable_grad():
            logits = logits.detach().requires_grad_(True)
            value = _chunk_loss(plan, logits, t, class_weight, reduction)
            objective = value if row_scale is None else (value * row_scale[rows]).sum()
            (g,) = torch.autograd.grad(objective, logits)
        del logits
        if per_row:
            out[rows] = value.detach()
        else:
            total += objective.detach().to(loss_dtype)
        if grad_hidden is not None:
            torch.mm(g, weight, out=grad_hidden[rows])
        if grad_weight is not None:
            if grad_weight.dtype == g.dtype:
                if start == 0:
                    torch.mm(g.t(), h, out=grad_weight)
                else:
                    grad_weight.addmm_(g.t(), h)
            elif start == 0:
                grad_weight.copy_(torch.mm(g.t(), h))
            else:
                # float16 / bfloat16: each chunk's product in the input dtype, summed in float32
                grad_weight += torch.mm(g.t(), h)
        if grad_bias is not None:
            grad_bias += g.sum(0, dtype=accumulate)
        del g
    return (out if per_row else total), grad_hidden, grad_weight, grad_bias


def _add_factored_gradients(e: Tensor, factor: Tensor, coefficient: Tensor, index: Tensor, h: Tensor,
                            weight: Tensor, first: bool, grad_hidden_rows: Tensor | None,
                            grad_weight: Tensor | None, grad_bias: Tensor | None) -> None:
    """The chunk's share of the gradients from ``g = factor * e + coefficient * onehot(index)``
    (see :func:`_true_term_chunk`), without forming ``g``: ``g @ weight`` is
    ``factor * (e @ weight) + coefficient * weight[index]`` and ``g.T @ h`` is
    ``e.T @ (factor * h)`` plus ``coefficient * h`` added at the target rows (``index``: the
    targets, ignored ones replaced by 0, where both factors are 0)."""
    if grad_hidden_rows is not None:
        torch.mm(e, weight, out=grad_hidden_rows)
        grad_hidden_rows.mul_(factor).addcmul_(weight[index], coefficient)
    if grad_weight is not None:
        if first:
            torch.mm(e.t(), h * factor, out=grad_weight)
        else:
            grad_weight.addmm_(e.t(), h * factor)
        grad_weight.index_add_(0, index, h * coefficient)
    if grad_bias is not None:
        grad_bias.add_(torch.mv(e.t(), factor.squeeze(1)))
        grad_bias.index_add_(0, index, coefficient.squeeze(1))


def _denominator(plan: _Plan, target: Tensor, class_weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    """What "mean" divides by: the number of kept rows, or their summed class weight."""
    return _row_weight(plan, target, class_weight, dtype).sum()


class _LinearLossFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, class_weight, plan):
        needs = ctx.needs_input_grad if plan.differentiate else (False,) * 3
        want = (needs[0], needs[1], bias is not None and needs[2])
        ctx.plan = plan
        ctx.want = want
        if plan.reduction == "none":
            out, *_ = _run_chunks(plan, hidden, weight, bias, target, class_weight, want=(False,) * 3)
            ctx.save_for_backward(hidden, weight, bias, target, class_weight)
            return out
        total, *grads = _run_chunks(plan, hidden, weight, bias, target, class_weight, want=want)
        if plan.reduction == "mean":
            denominator = _denominator(plan, target, class_weight, total.dtype)
            # torch's "mean" of nothing is 0 / 0 = NaN, with a zero gradient
            scale = torch.where(denominator > 0, 1.0 / denominator.clamp_min(torch.finfo(total.dtype).tiny), 0.0)
            total = torch.where(denominator > 0, total * scale, math.nan)
        else:
            scale = None
        ctx.scale = scale
        ctx.gradients = grads
        ctx.save_for_backward(hidden, weight, bias, target, class_weight)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        hidden, weight, bias, target, class_weight = ctx.saved_tensors
        plan = ctx.plan
        if plan.reduction == "none":
            _, *grads = _run_chunks(plan, hidden, weight, bias, target, class_weight, want=ctx.want,
                                    row_scale=grad_output.to(_loss_dtype(hidden.dtype)))
            factor = None
        else:
            grads = ctx.gradients
            if grads is None:      # a second backward through a retained graph: recompute
                _, *grads = _run_chunks(plan, hidden, weight, bias, target, class_weight, want=ctx.want)
            ctx.gradients = None
            factor = grad_output if ctx.scale is None else grad_output * ctx.scale
        results = []
        for grad, like in zip(grads, (hidden, weight, bias), strict=True):
            if grad is None:
                results.append(None)
                continue
            if factor is not None:
                # in place: these buffers belong to this backward alone (a second backward
                # through a retained graph recomputes them)
                grad.mul_(factor.to(grad.dtype))
            results.append(grad.to(like.dtype))
        return (*results, None, None, None)


# Under torch.compile the chunk loop runs eagerly (a graph break around it): its matrix
# products are already whole kernels, and tracing the losses' data-dependent fast paths inside
# an autograd.Function would gain nothing.
@torch.compiler.disable
def _apply(hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor,
           class_weight: Tensor | None, plan: _Plan) -> Tensor:
    return _LinearLossFunction.apply(hidden, weight, bias, target, class_weight, plan)


def linear_loss(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    *,
    loss: str = "cross_entropy",
    bias: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_size: int | None = None,
    class_weight: Tensor | None = None,
    z_loss: float = 0.0,
    **loss_options: Any,
) -> Tensor:
    r"""A classification loss of a linear output layer, computed without the ``(N, V)`` logits.

    .. math::
        L = \operatorname{loss}(z, y), \qquad z = h W^\top + b

    with ``loss`` one of losslab's multiclass losses (class-index targets), plus an optional
    z-loss ``z_loss * w_y * logsumexp(z_n)^2`` per row (PaLM's auxiliary term, which keeps the
    softmax normaliser near 1; ``w_y`` is the row's class weight, 1 without one, so "mean"
    stays the weighted mean). Value and gradients equal those of
    ``loss(F.linear(hidden, weight, bias), target)``; see the module's docstring for how.

    Args:
        hidden: hidden states ``(..., H)`` (leading dimensions are flattened into rows).
        weight: the output layer's weight ``(V, H)``, hidden's dtype and device.
        target: class indices of shape ``hidden.shape[:-1]`` in ``[0, V)`` or ``ignore_index``.
        loss: ``"cross_entropy"``, ``"m"``, ``"full_m"``, ``"l"``, ``"full_l"``,
            ``"softmax_focal"`` or ``"poly1"`` (registry names; aliases ``"ce"``,
            ``"multiclass_focal"``, ``"poly"``, ``"poly_loss"``).
        bias: the output layer's bias ``(V,)``, or None.
        ignore_index: a target to skip: its row contributes nothing.
        reduction: ``"mean"`` (over kept rows, divided by their summed class weight when
            ``class_weight`` is given, like ``F.cross_entropy``; NaN with zero gradients when
            every row is ignored), ``"sum"`` or ``"none"``.
        chunk_size: rows per chunk; None chooses :func:`linear_loss_chunk_size`.
        class_weight: per-class loss weight ``(V,)`` (the ``weight`` of the ``(N, C)`` loss).
        z_loss: coefficient of the z-loss term, >= 0 (0: none).
        **loss_options: the options of the ``(N, C)`` loss, with its defaults:
            ``label_smoothing`` (cross_entropy, poly1), ``eps`` and ``impl`` (m, full_m, l,
            full_l), ``gamma`` and ``alpha`` (softmax_focal), ``epsilon`` (poly1).

    Returns:
        A scalar, or the per-row loss of shape ``hidden.shape[:-1]`` with ``reduction="none"``;
        float32 for float16 / bfloat16 inputs.

    Shape:
        - Hidden: ``(..., H)``.
        - Weight: ``(V, H)``; bias: ``(V,)``.
        - Target: ``(...)``, the hidden states' leading dimensions.
        - Output: ``()``, or ``(...)`` for ``"none"``.

    References:
        Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models", arXiv:2411.09009
        (the memory problem); Hsu et al., "Liger Kernel", arXiv:2410.10989 (chunked fused linear
        cross-entropy); Chowdhery et al., "PaLM", arXiv:2204.02311 (z-loss).
    """
    check_reduction(reduction)
    name, spec = _resolve_loss(loss)
    _check_options(name, spec, loss_options)
    z_loss = _check_z_loss(z_loss)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int, got {type(ignore_index).__name__}")
    hidden, weight, target, bias = _check_inputs(hidden, weight, target, bias, chunk_size)
    num_classes = weight.shape[0]
    if class_weight is not None:
        # checked here for its shape; each chunk's loss casts it as the (N, C) loss does
        check_class_weight(class_weight, num_classes, hidden)
        class_weight = class_weight.to(hidden.device)
    leading = hidden.shape[:-1]
    rows = hidden.reshape(-1, hidden.shape[-1])
    flat_target = target.reshape(-1)
    if validation_enabled():
        check_class_indices("target", flat_target, num_classes, ignore_index)
    plan = _Plan(spec=spec, options=dict(loss_options), ignore_index=ignore_index, reduction=reduction,
                 chunk_size=chunk_size or 1, z_loss=z_loss, differentiate=torch.is_grad_enabled())
    if chunk_size is None:
        differentiated = any(t is not None and t.requires_grad for t in (hidden, weight, bias))
        factored = (plan.differentiate and differentiated
                    and _in_place_term(plan, class_weight, hidden.dtype) is not None)
        plan = replace(plan, chunk_size=linear_loss_chunk_size(rows.shape[0], num_classes, factored=factored))
    out = _apply(rows, weight, bias, flat_target, class_weight, plan)
    return out.reshape(leading) if reduction == "none" else out
