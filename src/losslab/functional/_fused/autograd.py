"""The one ``torch.autograd.Function`` behind every fused loss, and the choice of path.

A fused loss is given by ``forward(*tensors, *static) -> (loss, gradient)``: the loss and its
gradient with respect to the input (the first tensor), the reduction's factor folded in.
:class:`FusedLoss` runs it and keeps that gradient for backward:

* the only input-sized tensor kept is the gradient (the input and the other tensor arguments
  are saved too, which costs no memory since the caller holds them anyway);
* backward scales it in place by ``grad_output`` and hands the buffer itself to autograd (no
  input-sized allocation in backward; see :func:`_keep_for_backward`). A second backward
  through a retained graph recomputes it with the same kernels, so it gets the same bits;
* if backward runs with ``create_graph=True`` (a Hessian, a gradient penalty), it rebuilds
  the gradient from the reference formula ``reference(*tensors)`` under autograd, so higher
  derivatives stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from losslab._validation import check_choice

__all__ = ["IMPLS", "FusedLoss", "check_impl", "fused_loss", "wants_fused"]

IMPLS: tuple[str, ...] = ("auto", "fused", "reference")

# The leading non-tensor arguments of FusedLoss.forward (they get no gradient).
_LEADING = 5


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


def _reference_grads(reference: Callable[..., Tensor], tensors: tuple[object, ...], grad_output: Tensor,
                     count: int) -> tuple[Tensor, ...]:
    """Backward with ``create_graph=True``: differentiate the reference formula
    ``reference(*tensors)`` in its first ``count`` tensors instead, so that second
    derivatives exist and are exact."""
    with torch.enable_grad():
        leaves = [t if t.requires_grad else t.detach().requires_grad_(True) for t in tensors[:count]]
        value = reference(*leaves, *tensors[count:])
        return torch.autograd.grad(value, leaves, grad_output, create_graph=True)


class FusedLoss(torch.autograd.Function):
    """A loss whose forward computes its value and its gradient in one pass.

    ``FusedLoss.apply(forward, reference, num_tensors, unreduced, target_gradient, *args)``
    (or :func:`fused_loss`): ``args`` are the ``num_tensors`` tensors (the input first, then
    the target and any weights, None allowed), then the static hyperparameters;
    ``forward(*args)`` returns ``(loss, gradient in the input)``; ``reference(*tensors)`` is
    the plain formula under autograd (used only for higher-order derivatives; it must capture
    no tensor). ``unreduced``: the loss is per element (``reduction="none"``), so
    ``grad_output`` has the loss's shape. ``target_gradient``: the loss depends on the
    input minus the target only (regression), so the target's gradient is minus the input's.
    """

    @staticmethod
    def forward(ctx, forward, reference, num_tensors, unreduced, target_gradient, *args):
        loss, grad = forward(*args)
        ctx.reference = reference
        ctx.unreduced = unreduced
        ctx.target_gradient = target_gradient
        ctx.num_args = len(args)
        ctx.input_dtype = args[0].dtype
        ctx.target_dtype = args[1].dtype if target_gradient else None
        _keep_for_backward(ctx, grad, forward, args, num_tensors)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        needs = ctx.needs_input_grad[_LEADING:]
        grads: list[Tensor | None] = [None] * ctx.num_args
        if torch.is_grad_enabled():
            count = 2 if ctx.target_gradient else 1
            exact = _reference_grads(ctx.reference, _saved_args(ctx), grad_output, count)
            for position, grad in enumerate(exact):
                grads[position] = grad if needs[position] else None
        else:
            grad, owned = _take_gradient(ctx)
            scaled = _scale_back(grad, grad_output, ctx.unreduced, owned)
            if ctx.target_gradient and needs[1]:
                grads[1] = scaled.neg().to(ctx.target_dtype)
            if needs[0]:
                grads[0] = scaled.to(ctx.input_dtype)
        return (None,) * _LEADING + tuple(grads)


def fused_loss(forward: Callable[..., tuple[Tensor, Tensor]], reference: Callable[..., Tensor],
               tensors: tuple[Tensor | None, ...], static: tuple[object, ...], *, reduction: str,
               target_gradient: bool = False) -> Tensor:
    """``forward(*tensors, *static)`` as a :class:`FusedLoss`; ``reduction`` is the loss's
    (``"none"``: per element)."""
    return FusedLoss.apply(forward, reference, len(tensors), reduction == "none", target_gradient,
                           *tensors, *static)
