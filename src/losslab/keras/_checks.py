"""Argument and value checks of the Keras adapter, and its shape conventions.

The argument checks are losslab's shared validators (one message style for the PyTorch and
the Keras forms). The value checks (class indices in range, probabilities and targets in
[0, 1]) run whenever the tensors hold values: eager execution on every backend, which includes
``model.fit`` on the torch backend and ``run_eagerly=True`` elsewhere; inside a compiled
function (``jax.jit``, ``tf.function``, ``torch.compile``) no error can be raised.
``losslab.set_validation(False)`` switches them off.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from losslab import _validation

Tensor = Any  # a backend tensor (jax.Array, tf.Tensor, torch.Tensor) or array-like

_HALF = {"float16": 2.0**-10, "bfloat16": 2.0**-7}  # machine epsilon of the half dtypes

# the shared validators: one message style for the PyTorch and the Keras forms
_check_bool = _validation.check_bool
_check_eps = _validation.check_eps
_check_int = _validation.check_int


def _canonical_axis(axis: object, ndim: int) -> int:
    axis = _check_int("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an axis of y_pred (rank {ndim}), in [{-ndim}, {ndim - 1}], got {axis}")
    return axis % ndim


def _shape(x: Tensor) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in x.shape)


def _compatible(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _has_values(x: Tensor) -> bool:
    """True when ``x`` holds concrete values (eager), False while a function is traced."""
    if not _validation._validate_values or isinstance(x, keras.KerasTensor):
        return False
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.executing_eagerly())
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling()
    return True


def _to_numpy(x: Tensor) -> np.ndarray:
    if keras.backend.backend() == "torch":
        import torch

        if isinstance(x, torch.Tensor):  # (keras' own conversion warns under numpy 2)
            x = x.detach().cpu()
            return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(ops.convert_to_numpy(x))


def _plain(value: Any) -> int | float:
    """A numpy scalar as Python, integral floats as int (labels reach Loss.call as floats)."""
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _check_range(name: str, x: Tensor, low: float, high: float, what: str) -> None:
    """Raise unless every value of ``x`` lies in [low, high] (NaN fails); eager only."""
    if not _has_values(x) or math.prod(_shape(x)) == 0:
        return
    smallest, largest = float(_to_numpy(ops.min(x))), float(_to_numpy(ops.max(x)))
    if smallest >= low and largest <= high:
        return
    values = _to_numpy(x).astype(np.float64)
    bad = ~((values >= low) & (values <= high))
    raise ValueError(
        f"{name}: expected {what} in [{low:g}, {high:g}], got {_plain(values[bad].flat[0])!r} "
        f"({int(bad.sum())} of {values.size} entries outside)"
    )


def _check_class_indices(y_true: Tensor, num_classes: int, ignore_class: int | None) -> None:
    if not _has_values(y_true) or math.prod(_shape(y_true)) == 0:
        return
    values = _to_numpy(y_true)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        first = values[values != np.round(values)].flat[0]
        raise ValueError(f"y_true: expected integer class indices, got {_plain(first)!r}")
    bad = (values < 0) | (values >= num_classes)
    if ignore_class is not None:
        bad &= values != ignore_class
    if bad.any():
        also = "" if ignore_class is None else f" (or ignore_class={ignore_class})"
        raise ValueError(
            f"y_true: expected class indices in [0, {num_classes - 1}]{also} for y_pred with "
            f"{num_classes} classes, got {_plain(values[bad].flat[0])!r}"
        )


def _prepare_pred(y_pred: Tensor, eps: float, source_dtype: str | None) -> tuple[Tensor, float]:
    """``y_pred`` as a float tensor in its compute dtype, and the effective ``eps``."""
    y_pred = ops.convert_to_tensor(y_pred)
    dtype = keras.backend.standardize_dtype(y_pred.dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise TypeError(
            f"y_pred: expected a floating-point tensor (float16/bfloat16/float32/float64), "
            f"got dtype {dtype}"
        )
    source = source_dtype or dtype
    if source in _HALF:
        eps = max(eps, _HALF[source])
    if dtype in _HALF:
        y_pred = ops.cast(y_pred, "float32")
    return y_pred, eps


def _match_binary_rank(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Keras' one convenience: labels ``(N,)`` for a ``(N, 1)`` output (and the reverse)."""
    true_shape, pred_shape = _shape(y_true), _shape(y_pred)
    if len(true_shape) + 1 == len(pred_shape) and pred_shape[-1] == 1:
        return ops.expand_dims(y_true, -1)
    if len(true_shape) == len(pred_shape) + 1 and true_shape[-1] == 1:
        return ops.squeeze(y_true, axis=-1)
    return y_true


def _sparse_labels(y_true: Tensor, pred_shape: tuple[int | None, ...], axis: int) -> Tensor:
    """Class indices of y_pred's shape without ``axis`` (a size-1 ``axis`` is squeezed)."""
    y_true = ops.convert_to_tensor(y_true)
    expected = pred_shape[:axis] + pred_shape[axis + 1 :]
    true_shape = _shape(y_true)
    if len(true_shape) == len(pred_shape) and true_shape[axis] == 1:
        y_true = ops.squeeze(y_true, axis=axis)
    if not _compatible(_shape(y_true), expected):
        raise ValueError(
            f"y_true: expected class indices of shape {expected} (or with a 1 at axis {axis}) "
            f"for y_pred of shape {pred_shape}, got {true_shape}"
        )
    return y_true
