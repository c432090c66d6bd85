"""Argument checks and reductions shared by every loss.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the argument,
what was expected and what was given. Checks that need the tensor's values (class indices in
range, binary targets in [0, 1]) synchronise with the device, so they can be switched off
globally with :func:`set_validation` and are skipped while ``torch.compile`` traces.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
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


# --- arguments: numbers, flags, integers, choices ---------------------------------------------


def _given(value: object) -> str:
    """How a message shows a wrong value: its repr, with the type for what is not a number."""
    if value is None or isinstance(value, (bool, np.bool_, int, float, np.number, str)):
        return repr(value)
    return f"{type(value).__name__} {value!r}"


def _interval(low: float, high: float, low_open: bool, high_open: bool, finite: bool) -> str:
    number = "a finite number" if finite else "a number"
    if high == math.inf and low == -math.inf:
        return number
    if high == math.inf:
        bound = f"{'>' if low_open else '>='} {low:g}"
        return f"{number} {bound}" + ("" if finite else " (or inf)")
    if low == -math.inf:
        return f"{number} {'<' if high_open else '<='} {high:g}"
    return f"{number} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_number(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """A real number in the interval from ``low`` to ``high``, returned as a float.

    ``low_open`` / ``high_open`` exclude the bound itself (``low=0, low_open=True``: positive).
    ``finite=False`` also accepts an infinity inside the interval (a norm's order ``p=inf``).
    ``None``, bools (flags, not numbers), strings and tensors raise ``TypeError``; NaN, an
    infinity and a value outside the interval raise ``ValueError``. Both messages name the
    argument, say what was expected and show what was given.
    """
    expected = _interval(low, high, low_open, high_open, finite)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {expected}, got {_given(value)}")
    number = float(value)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if math.isnan(number) or (finite and math.isinf(number)) or below or above:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return number


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (``>= 0`` with ``allow_zero``): :func:`check_number`'s rules."""
    return check_number(name, value, low=0.0, low_open=not allow_zero)


def check_bool(name: str, value: object) -> bool:
    """``True`` or ``False`` (numpy's bool too); anything else, ``"yes"`` or 1, is a
    ``TypeError``: a flag given as a string or a number is a mistake, not a truth value."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool (True or False), got {_given(value)}")
    return bool(value)


def check_int(name: str, value: object, *, optional: bool = False, low: int | None = None) -> int | None:
    """An integer (Python or numpy; not a bool, not a float such as ``-100.0``), at least
    ``low`` if given; ``None`` is accepted when ``optional``."""
    if value is None and optional:
        return None
    expected = "an integer" + ("" if low is None else f" >= {low}") + (" or None" if optional else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected {expected}, got {_given(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return int(value)


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """One of the strings in ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_reduction(reduction: object, *, allowed: Sequence[str] = REDUCTIONS) -> str:
    """A reduction name: ``"mean"``, ``"sum"`` or ``"none"`` (or the loss's own ``allowed``)."""
    return check_choice("reduction", reduction, allowed)


def check_eps(eps: object) -> float:
    """The probability clamp ``eps``: a number in [0, 0.5)."""
    return check_number("eps", eps, low=0.0, high=0.5, high_open=True)


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
    check_int("ignore_index", ignore_index, optional=True)
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


def check_weight_values(name: str, weight: Tensor, what: str = "weights") -> None:
    """Raise unless every entry of ``weight`` is finite and >= 0 (a negative weight turns a
    loss into a gain, NaN poisons every step). Skipped when value checks are disabled."""
    if not validation_enabled() or weight.numel() == 0:
        return
    smallest, largest = torch.aminmax(weight.detach())
    if bool(smallest >= 0) and bool(largest < math.inf):
        return
    values = weight.detach()
    bad = ~((values >= 0) & torch.isfinite(values))
    first = values[bad].flatten()[0].item()
    raise ValueError(
        f"{name}: expected finite {what} >= 0, got {first!r} "
        f"({int(bad.sum())} of {values.numel()} entries outside)"
    )


def check_class_weight(weight: Tensor | None, num_classes: int, ref: Tensor, name: str = "weight") -> Tensor | None:
    """Per-class weights ``(C,)``: floating, finite, >= 0; cast to ``ref``'s device and dtype."""
    if weight is None:
        return None
    weight = check_floating(name, weight)
    if weight.shape != (num_classes,):
        raise ValueError(
            f"{name}: expected a 1-D tensor with one entry per class, shape ({num_classes},), "
            f"got {tuple(weight.shape)}"
        )
    check_weight_values(name, weight, "class weights")
    return weight.to(device=ref.device, dtype=ref.dtype)


def check_broadcast_weight(name: str, weight: Tensor | None, input: Tensor) -> Tensor | None:
    """An elementwise weight (``weight``, ``pos_weight``) that broadcasts to the input's shape,
    with finite values >= 0; cast to the input's device and dtype."""
    if weight is None:
        return None
    weight = check_floating(name, weight)
    try:
        shape = torch.broadcast_shapes(weight.shape, input.shape)
    except RuntimeError:
        shape = None
    if shape != input.shape:
        raise ValueError(
            f"{name}: expected a tensor that broadcasts to the input's shape {tuple(input.shape)} "
            f"(e.g. one entry per label, shape ({input.shape[-1] if input.dim() else 1},)), "
            f"got {tuple(weight.shape)}"
        )
    check_weight_values(name, weight)
    return weight.to(device=input.device, dtype=input.dtype)


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
    check_int("ignore_index", ignore_index)
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


def reduce(loss: Tensor, reduction: str, *, weight_sum: Tensor | None = None) -> Tensor:
    """Apply a torch-style reduction to an unreduced loss: the one reduction of every loss.

    ``"mean"`` divides the sum by ``weight_sum`` when given (torch's mean for class-index
    targets: the summed weight of the kept targets, NaN when it is 0, see
    :func:`weighted_mean`), else by the number of elements. float16 / bfloat16 losses are
    accumulated in float32 and the result is returned in the loss's dtype (as torch's own
    losses do), so a mean that fits the dtype is finite even when the sum does not (four
    errors of 3e4 in float16: the sum passes 65504, the mean does not).
    """
    if reduction == "none":
        return loss
    accumulate = compute_dtype(loss)
    if reduction == "sum":
        return loss.sum(dtype=accumulate).to(loss.dtype)
    if weight_sum is not None:
        return weighted_mean(loss.sum(dtype=accumulate), weight_sum.to(accumulate)).to(loss.dtype)
    return loss.mean(dtype=accumulate).to(loss.dtype)


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


def compute_dtype(tensor: Tensor | torch.dtype) -> torch.dtype:
    """The dtype a loss computes in for a tensor (or dtype): float16/bfloat16 are computed in
    float32 (as autocast does for torch's losses), other dtypes in themselves."""
    dtype = tensor if isinstance(tensor, torch.dtype) else tensor.dtype
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def effective_eps(eps: float, dtype: torch.dtype) -> float:
    """The probability clamp applied to an input of ``dtype``: ``eps`` itself for float32 and
    float64, ``max(eps, torch.finfo(dtype).eps)`` for float16 and bfloat16 (9.77e-4 and
    7.81e-3), whose gradient, cast back to the input's dtype, would otherwise overflow.

    The clamp is applied in log space (``log p`` into ``[log eps, log1p(-eps)]``), so that
    ``1 - eps`` need not be representable: float32 cannot hold ``1 - 1e-7`` (it rounds to
    ``1 - 1.19e-7``), yet the clamp applied is ``[1e-7, 1 - 1e-7]``.
    """
    if dtype in (torch.float16, torch.bfloat16):
        return max(eps, float(torch.finfo(dtype).eps))
    return eps
