"""Argument checks and reductions shared by every loss.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the argument,
what was expected and what was given. Checks that need the tensor's values (class indices in
range, binary targets in [0, 1]) synchronise with the device, so they can be switched off
globally with :func:`set_validation` and are skipped while ``torch.compile`` traces.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

_validate_values = True


def set_validation(enabled: bool) -> None:
    """Turn the value checks (index ranges, target ranges, NaN targets) on or off globally.

    Shape, dtype and argument checks always run; only the checks that read tensor values
    (and so synchronise with an accelerator) are affected.
    """
    global _validate_values
    _validate_values = bool(enabled)


def validation_enabled() -> bool:
    """Whether value checks run now (never while ``torch.compile`` traces)."""
    if not _validate_values:
        return False
    return not torch.compiler.is_compiling()


def check_reduction(reduction: str, *, allowed: Sequence[str] = REDUCTIONS) -> str:
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(
            f"reduction: expected one of {', '.join(repr(r) for r in allowed)}, got {reduction!r}"
        )
    return reduction


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_floating(name: str, value: object) -> Tensor:
    tensor = check_tensor(name, value)
    if not tensor.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating-point tensor (float16/bfloat16/float32/float64), "
            f"got dtype {tensor.dtype}"
        )
    return tensor


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b}: expected the same shape as {name_a} {tuple(a.shape)}, "
            f"got {tuple(b.shape)} (losslab never broadcasts silently)"
        )


def check_min_dim(name: str, tensor: Tensor, ndim: int, layout: str) -> None:
    if tensor.dim() < ndim:
        raise ValueError(
            f"{name}: expected at least {ndim} dimensions {layout}, got shape {tuple(tensor.shape)}"
        )


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a number {bound}, got {value!r}")
    return float(value)


def check_eps(eps: float) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < 0.5:
        raise ValueError(f"eps: expected a number in [0, 0.5), got {eps!r}")
    return float(eps)


def check_values_in_range(
    name: str, tensor: Tensor, low: float, high: float, what: str = "values"
) -> None:
    """Raise unless every value lies in [low, high] (NaN fails). Skipped when disabled."""
    if not validation_enabled() or tensor.numel() == 0:
        return
    if tensor.dtype != torch.bool and not tensor.is_complex():
        # Fast path: one read pass, no boolean temporaries (NaN makes both tests fail).
        smallest, largest = torch.aminmax(tensor)
        if bool(smallest >= low) and bool(largest <= high):
            return
    bad = ~((tensor >= low) & (tensor <= high))
    if bool(bad.any()):
        first = tensor[bad].flatten()[0].item()
        raise ValueError(
            f"{name}: expected {what} in [{low:g}, {high:g}], got {first!r} "
            f"({int(bad.sum())} of {tensor.numel()} entries outside)"
        )


def as_class_indices(name: str, target: Tensor) -> Tensor:
    """Integer class indices as int64, the index dtype torch's ``gather``, ``scatter`` and losses
    need (uint8, int8, int16 and int32 are accepted and cast). Floating, bool and complex
    tensors are rejected with a TypeError naming ``name``."""
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise TypeError(
            f"{name}: expected an integer tensor of class indices (int64, int32, int16, int8 or "
            f"uint8), got dtype {target.dtype}"
        )
    return target if target.dtype == torch.int64 else target.to(torch.int64)


def check_class_indices(name: str, target: Tensor, num_classes: int, ignore_index: int | None) -> Tensor:
    """Class indices in ``[0, num_classes)`` (or equal to ``ignore_index``), returned as int64.

    ``ignore_index=None``: the loss has no ignored value (the message then offers none).
    """
    target = as_class_indices(name, target)
    if not validation_enabled() or target.numel() == 0:
        return target
    # Fast path: one read, no boolean temporaries (an ignore_index inside [0, C) is in range too)
    smallest, largest = torch.aminmax(target)
    if int(smallest) >= 0 and int(largest) < num_classes:
        return target
    outside = (target < 0) | (target >= num_classes)
    bad = outside if ignore_index is None else outside & (target != ignore_index)
    if bool(bad.any()):
        first = int(target[bad].flatten()[0])
        ignored = "" if ignore_index is None else f" (or ignore_index={ignore_index})"
        raise ValueError(
            f"{name}: expected class indices in [0, {num_classes - 1}]{ignored}, got {first}"
        )
    return target


def check_class_weight(weight: Tensor | None, num_classes: int, ref: Tensor) -> Tensor | None:
    if weight is None:
        return None
    weight = check_floating("weight", weight)
    if weight.shape != (num_classes,):
        raise ValueError(
            f"weight: expected a 1-D tensor with one entry per class, shape ({num_classes},), "
            f"got {tuple(weight.shape)}"
        )
    return weight.to(device=ref.device, dtype=ref.dtype)


def check_not_float_indices(input: Tensor, target: Tensor, index_shape: torch.Size) -> None:
    """A floating target of the class-index shape: say that indices must be integer (rather
    than that the shapes differ) and that probabilities need the input's shape."""
    if target.is_floating_point() and target.shape == index_shape and target.shape != input.shape:
        raise TypeError(
            f"target: got a floating tensor (dtype {target.dtype}) of shape {tuple(target.shape)}: "
            f"class indices must be an integer tensor (e.g. target.long()), and class "
            f"probabilities need the input's shape {tuple(input.shape)}"
        )


def check_multiclass_target(input: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """Class indices ``(N, d1..dk)`` or probabilities of the input's shape ``(N, C, d1..dk)``.

    Returns the target: integer class indices of any integer dtype as int64, probabilities as
    given. A floating target of the class-index shape is named as such: indices must be an
    integer tensor, probabilities need the input's shape.
    """
    target = check_tensor("target", target)
    if input.dim() == 0:
        raise ValueError("input: expected logits of shape (C,) or (N, C, d1..dk), got a 0-d tensor")
    class_dim = 0 if input.dim() == 1 else 1
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.is_floating_point():
        check_not_float_indices(input, target, expected)
        check_same_shape("input", input, "target", target)
        check_values_in_range("target", target, 0.0, 1.0, "class probabilities")
        return target
    if target.shape != expected:
        raise ValueError(
            f"target: expected class indices of shape {tuple(expected)} for input of shape "
            f"{tuple(input.shape)} (or probabilities of the input's shape), got {tuple(target.shape)}"
        )
    return check_class_indices("target", target, input.shape[class_dim], ignore_index)


def reduce(loss: Tensor, reduction: str) -> Tensor:
    """Apply a torch-style reduction to an unreduced loss.

    float16 / bfloat16 losses are accumulated in float32 and the result is returned in the
    loss's dtype (as torch's own losses do), so a mean that fits the dtype is finite even when
    the sum does not (four errors of 3e4 in float16: the sum passes 65504, the mean does not).
    """
    if reduction == "none":
        return loss
    accumulate = compute_dtype(loss)
    if reduction == "mean":
        return loss.mean(dtype=accumulate).to(loss.dtype)
    return loss.sum(dtype=accumulate).to(loss.dtype)


def weighted_mean(loss_sum: Tensor, weight_sum: Tensor) -> Tensor:
    """``loss_sum / weight_sum``, torch's ``"mean"`` for class-index targets.

    A zero ``weight_sum`` (an empty batch, every target ignored, or only zero-weight targets)
    gives NaN, as ``F.cross_entropy`` does (0 / 0), with a zero gradient (not NaN), so a
    ``nan_to_num`` or a skipped step is all a training loop needs.
    """
    tiny = torch.finfo(loss_sum.dtype).tiny
    mean = loss_sum / weight_sum.clamp_min(tiny)
    return torch.where(weight_sum > 0, mean, torch.full_like(mean, math.nan))


def empty_reduction(like: Tensor, reduction: str, shape: Sequence[int]) -> Tensor:
    """The reduction of a loss over zero samples, as torch's losses give it: ``"mean"`` NaN,
    ``"sum"`` 0, ``"none"`` an empty tensor of ``shape``; connected to ``like``'s graph (zero
    gradient)."""
    zero = like.sum() * 0.0
    if reduction == "none":
        return zero.expand(tuple(shape))
    return zero if reduction == "sum" else zero + math.nan


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float16/bfloat16 are computed in float32 (as autocast does for torch's losses)."""
    return torch.float32 if tensor.dtype in (torch.float16, torch.bfloat16) else tensor.dtype


def effective_eps(eps: float, dtype: torch.dtype) -> float:
    """The clamp used for a tensor of ``dtype``: never finer than the dtype can resolve near 1."""
    if dtype in (torch.float16, torch.bfloat16):
        return max(eps, float(torch.finfo(dtype).eps))
    return eps
