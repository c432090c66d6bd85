"""Keras 3 forms of M, full M, L, full L, SMAE and log-cosh, in ``keras.ops`` only.

The numerics follow :mod:`losslab.functional.alternate` step by step, so that on every backend
the values and gradients equal the PyTorch functions' to float32 rounding:

* everything is computed from ``log p`` and ``log(1 - p)``: ``log_softmax`` of the logits, the
  complement of the largest class from its margin over the log-sum-exp of the others
  (``log(1 - p_top) = log_sigmoid(-margin)``), ``log_sigmoid(±z)`` for a sigmoid;
* probabilities (``from_logits=False``, the default, as in Keras and the authors' notebooks)
  are clamped into ``[eps, 1 - eps]`` (``eps=1e-7``, Keras' epsilon), applied to ``log p`` and
  ``log(1 - p)`` so that the bound is the documented one although float32 cannot hold
  ``1 - 1e-7``; log-probabilities from logits are clipped into ``[log eps, log1p(-eps)]``; the
  clamp stops the gradient of an element outside that range, as Keras' own clip does (the
  authors' notebooks do not clip: they divide with ``tf.math.divide_no_nan``);
* float16 / bfloat16 predictions (mixed precision) are computed in float32 with ``eps``
  raised to the dtype's resolution, so the gradient cast back to the half dtype stays finite.

Differences from the Keras cross-entropies, on purpose: probabilities are not renormalised to
sum to 1 along ``axis`` (the authors' notebooks and the PyTorch side do not), and shapes never
broadcast silently (the one Keras convenience kept: a label vector ``(N,)`` for a ``(N, 1)``
binary or regression output, and ``(N, 1)`` class indices for sparse forms).

Bad values (class indices out of range, probabilities or targets outside [0, 1]) raise a
``ValueError`` naming the argument whenever the tensors hold values: eager execution on every
backend, which includes ``model.fit`` on the torch backend and ``run_eagerly=True`` elsewhere.
Inside a compiled function (``jax.jit``, ``tf.function``, ``torch.compile``) no error can be
raised; there an out-of-range class index gives a NaN loss, which training surfaces (e.g.
``keras.callbacks.TerminateOnNaN``), never a silent zero. ``losslab.set_validation(False)``
switches the value checks off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from losslab import _validation

__all__ = [
    "BinaryFullLLoss",
    "BinaryFullMLoss",
    "BinaryLLoss",
    "BinaryMLoss",
    "CategoricalFullLLoss",
    "CategoricalFullMLoss",
    "CategoricalLLoss",
    "CategoricalMLoss",
    "LogCoshLoss",
    "SMAELoss",
    "SparseCategoricalFullLLoss",
    "SparseCategoricalFullMLoss",
    "SparseCategoricalLLoss",
    "SparseCategoricalMLoss",
    "binary_l_loss",
    "binary_m_loss",
    "categorical_l_loss",
    "categorical_m_loss",
    "log_cosh_loss",
    "smae_loss",
    "sparse_categorical_l_loss",
    "sparse_categorical_m_loss",
]

Tensor = Any  # a backend tensor (jax.Array, tf.Tensor, torch.Tensor) or array-like
Kernel = Callable[[Tensor, Tensor], Tensor]

_HALF = {"float16": 2.0**-10, "bfloat16": 2.0**-7}  # machine epsilon of the half dtypes
_LOG2 = math.log(2.0)
_PACKAGE = "losslab"


# --- per-element kernels: (log p, log(1 - p)) -> loss, as losslab.functional.alternate -----


def _m_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/p - 1 = (1 - p) / p
    return ops.exp(log_q - log_p)


def _m_false(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/(1 - p) - 1 = p / (1 - p)
    return ops.exp(log_p - log_q)


def _l_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/sqrt(1 - q^2) - 1 = q^2 / (s (1 + s)), s = sqrt(p (1 + q)): no cancellation as q -> 0.
    q = ops.exp(log_q)
    log_s = 0.5 * (log_p + ops.log1p(q))
    return ops.exp(2.0 * log_q - log_s) / (1.0 + ops.exp(log_s))


def _l_false(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/sqrt(1 - p^2) - 1: the same expression with p and 1 - p swapped.
    return _l_true(log_q, log_p)


_KERNELS: dict[str, tuple[Kernel, Kernel]] = {"m": (_m_true, _m_false), "l": (_l_true, _l_false)}


# --- argument and value checks --------------------------------------------------------------


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


# --- dtypes and log-probabilities -----------------------------------------------------------


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


def _clip_logs(log_p: Tensor, log_q: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    low = math.log(eps) if eps > 0 else -math.inf
    high = math.log1p(-eps)
    return ops.clip(log_p, low, high), ops.clip(log_q, low, high)


def _softmax_log_pair(logits: Tensor, axis: int) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of a softmax along ``axis``, accurate near 0 and near 1."""
    num_classes = logits.shape[axis]
    log_p = ops.log_softmax(logits, axis=axis)
    if num_classes == 1:
        return log_p, ops.full_like(log_p, -math.inf)
    # Only the largest class can have p > 1/2; for the others log1p(-p) is well conditioned.
    top = ops.argmax(logits, axis=axis)
    is_top = ops.cast(ops.one_hot(top, num_classes, axis=axis), "bool")
    log_q = ops.log1p(-ops.exp(ops.where(is_top, -1.0, log_p)))
    # For the largest class p = sigmoid(margin), margin = z_top - logsumexp(z_others), taken
    # on logits shifted by the (constant) top logit: z - z_top is exact for close logits,
    # where a log-sum-exp of logits of 1e4 would round to float32's spacing there (1e-3).
    shifted = logits - ops.stop_gradient(ops.max(logits, axis=axis, keepdims=True))
    top_logit = ops.sum(ops.where(is_top, shifted, 0.0), axis=axis, keepdims=True)
    others = ops.logsumexp(ops.where(is_top, -math.inf, shifted), axis=axis, keepdims=True)
    margin = top_logit - others
    log_p = ops.where(is_top, ops.log_sigmoid(margin), log_p)
    log_q = ops.where(is_top, ops.log_sigmoid(-margin), log_q)
    return log_p, log_q


def _log_pair(
    y_pred: Tensor, *, from_logits: bool, eps: float, softmax_axis: int | None
) -> tuple[Tensor, Tensor]:
    if not from_logits:
        _check_range("y_pred", y_pred, 0.0, 1.0, "probabilities (from_logits=False)")
        if eps <= 0:
            return ops.log(y_pred), ops.log1p(-y_pred)
        # The clamp acts in log space, as in losslab.functional.alternate: float32 cannot
        # hold 1 - 1e-7, so clipping p itself would apply 1 - 1.19e-7 instead.
        low, high = math.log(eps), math.log1p(-eps)
        below = y_pred < eps
        above = (1.0 - y_pred) < eps
        safe = ops.where(ops.logical_or(below, above), 0.5, y_pred)
        log_p = ops.where(below, low, ops.where(above, high, ops.log(safe)))
        log_q = ops.where(above, low, ops.where(below, high, ops.log1p(-safe)))
        return log_p, log_q
    if softmax_axis is None:
        log_p, log_q = ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
    else:
        log_p, log_q = _softmax_log_pair(y_pred, softmax_axis)
    return _clip_logs(log_p, log_q, eps)


def _elementwise(y: Tensor, log_p: Tensor, log_q: Tensor, kind: str, full: bool) -> Tensor:
    true_kernel, false_kernel = _KERNELS[kind]
    loss = y * true_kernel(log_p, log_q)
    if full:
        loss = loss + (1.0 - y) * false_kernel(log_p, log_q)
    return loss


# --- the computations behind the functions and classes -------------------------------------


def _categorical(
    y_true: Tensor, y_pred: Tensor, *, kind: str, full: bool, from_logits: bool, axis: int,
    eps: float, source_dtype: str | None = None,
) -> Tensor:
    full = _check_bool("full", full)
    from_logits = _check_bool("from_logits", from_logits)
    y_pred, eps = _prepare_pred(y_pred, _check_eps(eps), source_dtype)
    axis = _canonical_axis(axis, len(y_pred.shape))
    y_true = ops.convert_to_tensor(y_true)
    if not _compatible(_shape(y_true), _shape(y_pred)):
        raise ValueError(
            f"y_true: expected one-hot or soft labels of y_pred's shape {_shape(y_pred)}, got "
            f"{_shape(y_true)} (for class indices use the SparseCategorical form)"
        )
    _check_range("y_true", y_true, 0.0, 1.0, "class probabilities")
    y_true = ops.cast(y_true, y_pred.dtype)
    log_p, log_q = _log_pair(y_pred, from_logits=from_logits, eps=eps, softmax_axis=axis)
    return ops.sum(_elementwise(y_true, log_p, log_q, kind, full), axis=axis)


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


def _sparse_categorical(
    y_true: Tensor, y_pred: Tensor, *, kind: str, full: bool, from_logits: bool,
    ignore_class: int | None, axis: int, eps: float, source_dtype: str | None = None,
) -> Tensor:
    full = _check_bool("full", full)
    from_logits = _check_bool("from_logits", from_logits)
    ignore_class = _check_int("ignore_class", ignore_class, optional=True)
    y_pred, eps = _prepare_pred(y_pred, _check_eps(eps), source_dtype)
    pred_shape = _shape(y_pred)
    axis = _canonical_axis(axis, len(pred_shape))
    num_classes = pred_shape[axis]
    if num_classes is None:
        raise ValueError(f"y_pred: expected a known number of classes along axis {axis}, got shape {pred_shape}")
    y_true = _sparse_labels(y_true, pred_shape, axis)
    dtype = keras.backend.standardize_dtype(y_true.dtype)
    if not dtype.startswith(("int", "uint", "float", "bfloat")):
        raise TypeError(f"y_true: expected integer class indices, got dtype {dtype}")
    _check_class_indices(y_true, num_classes, ignore_class)
    index = ops.cast(y_true, "int32")
    in_range = ops.logical_and(index >= 0, index < num_classes)
    valid = None if ignore_class is None else ops.not_equal(index, ignore_class)
    one_hot = ops.one_hot(ops.where(in_range, index, 0), num_classes, axis=axis, dtype=y_pred.dtype)
    log_p, log_q = _log_pair(y_pred, from_logits=from_logits, eps=eps, softmax_axis=axis)
    loss = ops.sum(_elementwise(one_hot, log_p, log_q, kind, full), axis=axis)
    # Out-of-range indices: an error above when eager; traced, a NaN rather than a silent 0.
    ok = in_range if valid is None else ops.logical_or(in_range, ops.logical_not(valid))
    loss = ops.where(ok, loss, math.nan)
    if valid is not None:
        # The Loss classes then average over the entries that are not ignored.
        loss = ops.where(valid, loss, 0.0)
    return loss


def _match_binary_rank(y_true: Tensor, y_pred: Tensor) -> Tensor:
    """Keras' one convenience: labels ``(N,)`` for a ``(N, 1)`` output (and the reverse)."""
    true_shape, pred_shape = _shape(y_true), _shape(y_pred)
    if len(true_shape) + 1 == len(pred_shape) and pred_shape[-1] == 1:
        return ops.expand_dims(y_true, -1)
    if len(true_shape) == len(pred_shape) + 1 and true_shape[-1] == 1:
        return ops.squeeze(y_true, axis=-1)
    return y_true


def _binary(
    y_true: Tensor, y_pred: Tensor, *, kind: str, full: bool, from_logits: bool, axis: int,
    eps: float, source_dtype: str | None = None,
) -> Tensor:
    full = _check_bool("full", full)
    from_logits = _check_bool("from_logits", from_logits)
    y_pred, eps = _prepare_pred(y_pred, _check_eps(eps), source_dtype)
    axis = _canonical_axis(axis, len(y_pred.shape))
    y_true = _match_binary_rank(ops.convert_to_tensor(y_true), y_pred)
    if not _compatible(_shape(y_true), _shape(y_pred)):
        raise ValueError(f"y_true: expected y_pred's shape {_shape(y_pred)}, got {_shape(y_true)}")
    _check_range("y_true", y_true, 0.0, 1.0, "binary targets")
    y_true = ops.cast(y_true, y_pred.dtype)
    log_p, log_q = _log_pair(y_pred, from_logits=from_logits, eps=eps, softmax_axis=None)
    return ops.mean(_elementwise(y_true, log_p, log_q, kind, full), axis=axis)


def _regression(y_true: Tensor, y_pred: Tensor, kind: str) -> Tensor:
    y_pred, _ = _prepare_pred(y_pred, 0.0, None)
    y_true = _match_binary_rank(ops.convert_to_tensor(y_true), y_pred)
    if not _compatible(_shape(y_true), _shape(y_pred)):
        raise ValueError(f"y_true: expected y_pred's shape {_shape(y_pred)}, got {_shape(y_true)}")
    error = y_pred - ops.cast(y_true, y_pred.dtype)
    if kind == "smae":
        loss = error * ops.tanh(0.5 * error)
    else:
        abs_error = ops.abs(error)
        loss = abs_error + ops.softplus(-2.0 * abs_error) - _LOG2
    return ops.mean(loss, axis=-1)


# --- public functions -----------------------------------------------------------------------


def categorical_m_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Per-sample M (or full M) loss for one-hot or soft labels (Noel et al. 2023).

    .. math::
        \ell = \sum_c y_c \left(\frac{1}{p_c} - 1\right)
               + [\text{full}]\,(1 - y_c)\left(\frac{1}{1 - p_c} - 1\right)

    Stricter than cross-entropy (larger ``|d loss / dp|`` on all of (0, 1)); with one-hot
    labels and ``full=False`` it equals ``expm1(cross-entropy)``. Same values as
    ``losslab.functional.m_loss(y_pred, y_true, reduction="none")`` with the class axis
    moved to dim 1.

    Args:
        y_true: one-hot or soft labels, y_pred's shape, values in [0, 1].
        y_pred: probabilities (default) or logits (``from_logits=True``), classes on ``axis``.
        full: also penalise the probability of the wrong classes (full M).
        from_logits: ``y_pred`` holds logits (softmax along ``axis``).
        axis: the class axis.
        eps: probabilities are clipped into ``[eps, 1 - eps]``.

    Returns:
        The loss per sample: y_pred's shape without ``axis``, float32 (float64 for float64).

    References:
        Noel, Banerjee, Amali, Muthiah-Nakarajan, "Alternate Loss Functions for
        Classification and Robust Regression Can Improve the Accuracy of Artificial Neural
        Networks", arXiv:2303.09935; the authors' Keras ``CustomMLoss``, ``CustomMFullLoss``.
    """
    return _categorical(y_true, y_pred, kind="m", full=full, from_logits=from_logits, axis=axis, eps=eps)


def categorical_l_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Per-sample L (or full L) loss for one-hot or soft labels (Noel et al. 2023).

    .. math::
        \ell = \sum_c y_c \left(\frac{1}{\sqrt{p_c (2 - p_c)}} - 1\right)
               + [\text{full}]\,(1 - y_c)\left(\frac{1}{\sqrt{1 - p_c^2}} - 1\right)

    More lenient than cross-entropy for p above about 0.117. The authors' notebooks omit the
    ``- 1``; it changes no gradient and makes L(p=1, y=1) = 0.

    Args, Returns: as :func:`categorical_m_loss`.

    References:
        Noel et al., arXiv:2303.09935; the authors' Keras ``CustomLLoss``, ``CustomLFullLoss``.
    """
    return _categorical(y_true, y_pred, kind="l", full=full, from_logits=from_logits, axis=axis, eps=eps)


def sparse_categorical_m_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    ignore_class: int | None = None, axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Per-sample M (or full M) loss for integer class indices.

    .. math::
        \ell = \frac{1}{p_y} - 1 + [\text{full}] \sum_{c \ne y} \left(\frac{1}{1 - p_c} - 1\right)

    Args:
        y_true: class indices, y_pred's shape without ``axis`` (or with a 1 there); integer
            or integral float (``keras.losses.Loss`` hands labels over as floats).
        y_pred: probabilities (default) or logits, classes on ``axis``.
        full: also penalise the probability of the wrong classes (full M).
        from_logits: ``y_pred`` holds logits (softmax along ``axis``).
        ignore_class: a label to skip (e.g. -1 or 255 in segmentation maps): its loss is 0
            here, and the Loss classes leave it out of their mean, as Keras does.
        axis: the class axis.
        eps: probabilities are clipped into ``[eps, 1 - eps]``.

    Returns:
        The loss per sample: y_pred's shape without ``axis``.

    References:
        Noel et al., arXiv:2303.09935.
    """
    return _sparse_categorical(
        y_true, y_pred, kind="m", full=full, from_logits=from_logits, ignore_class=ignore_class,
        axis=axis, eps=eps,
    )


def sparse_categorical_l_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    ignore_class: int | None = None, axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Per-sample L (or full L) loss for integer class indices.

    .. math::
        \ell = \frac{1}{\sqrt{p_y (2 - p_y)}} - 1
               + [\text{full}] \sum_{c \ne y} \left(\frac{1}{\sqrt{1 - p_c^2}} - 1\right)

    Args, Returns: as :func:`sparse_categorical_m_loss`.

    References:
        Noel et al., arXiv:2303.09935.
    """
    return _sparse_categorical(
        y_true, y_pred, kind="l", full=full, from_logits=from_logits, ignore_class=ignore_class,
        axis=axis, eps=eps,
    )


def binary_m_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Binary / multilabel M (or full M) loss, averaged over ``axis`` like Keras' BCE.

    .. math::
        \ell = \operatorname{mean}_{\text{axis}} \left[ y \left(\frac{1}{p} - 1\right)
               + [\text{full}]\,(1 - y)\left(\frac{1}{1 - p} - 1\right) \right],
        \quad p = \sigma(z)

    From logits this is ``y exp(-z)`` (``+ (1 - y) exp(z)`` for full M, the exponential loss),
    clipped through ``eps``. The Loss classes' default reduction then gives the mean over all
    elements, as ``losslab.functional.binary_m_loss``.

    Args:
        y_true: targets of y_pred's shape, values in [0, 1] (soft labels allowed); ``(N,)``
            is accepted for a ``(N, 1)`` y_pred.
        y_pred: probabilities (default) or logits (``from_logits=True``).
        full: also penalise ``p`` when ``y = 0`` (full M).
        from_logits: ``y_pred`` holds logits (sigmoid per element).
        axis: the axis averaged over (the labels).
        eps: probabilities are clipped into ``[eps, 1 - eps]``.

    Returns:
        y_pred's shape without ``axis``.

    References:
        Noel et al., arXiv:2303.09935.
    """
    return _binary(y_true, y_pred, kind="m", full=full, from_logits=from_logits, axis=axis, eps=eps)


def binary_l_loss(
    y_true: Tensor, y_pred: Tensor, *, full: bool = False, from_logits: bool = False,
    axis: int = -1, eps: float = 1e-7,
) -> Tensor:
    r"""Binary / multilabel L (or full L) loss, averaged over ``axis`` like Keras' BCE.

    .. math::
        \ell = \operatorname{mean}_{\text{axis}} \left[ y \left(\frac{1}{\sqrt{p (2 - p)}} - 1\right)
               + [\text{full}]\,(1 - y)\left(\frac{1}{\sqrt{1 - p^2}} - 1\right) \right]

    Args, Returns and References: as :func:`binary_m_loss`.
    """
    return _binary(y_true, y_pred, kind="l", full=full, from_logits=from_logits, axis=axis, eps=eps)


def smae_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    r"""Smooth absolute error (SMAE) of Noel et al. 2023, averaged over the last axis.

    .. math:: \ell = \operatorname{mean}_{-1}\, e \tanh(e / 2), \quad e = y_\text{pred} - y_\text{true}

    About ``e^2 / 2`` for small errors and ``|e|`` with no offset for large ones; no
    hyperparameter. Not the Huber loss that some call "smooth MAE".

    Args:
        y_true: targets, y_pred's shape (``(N,)`` accepted for ``(N, 1)``).
        y_pred: predictions, floating point.

    Returns:
        y_pred's shape without the last axis.

    References:
        Noel et al., arXiv:2303.09935, section 3; the second author's ``CustomSMAELoss``.
    """
    return _regression(y_true, y_pred, "smae")


def log_cosh_loss(y_true: Tensor, y_pred: Tensor) -> Tensor:
    r"""Log-cosh loss averaged over the last axis, without overflow (Keras' ``log_cosh``).

    .. math:: \ell = \operatorname{mean}_{-1}\, |e| + \operatorname{softplus}(-2|e|) - \log 2

    Args, Returns: as :func:`smae_loss`.

    References:
        Wang et al. 2020, "A comprehensive survey of loss functions in machine learning".
    """
    return _regression(y_true, y_pred, "log_cosh")


# --- keras.losses.Loss subclasses ---------------------------------------------------------


class _LosslabLoss(keras.losses.Loss):
    """Records y_pred's dtype before ``Loss.__call__`` casts it to the loss dtype (float32).

    Under a mixed-precision policy the model's output is float16 or bfloat16; the clip must
    then use that dtype's resolution, so that the gradient cast back to it stays finite.
    """

    _source_dtype: str | None = None

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        dtype = getattr(y_pred, "dtype", None)
        self._source_dtype = None if dtype is None else keras.backend.standardize_dtype(dtype)
        try:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        finally:
            self._source_dtype = None


class _CategoricalBase(_LosslabLoss):
    _kind = "m"
    _fixed_full: bool | None = None

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, axis: int = -1,
        eps: float = 1e-7, reduction: str | None = "sum_over_batch_size",
        name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.full = _check_bool("full", full) if self._fixed_full is None else self._fixed_full
        self.from_logits = _check_bool("from_logits", from_logits)
        self.axis = _check_int("axis", axis)
        self.eps = _check_eps(eps)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _categorical(
            y_true, y_pred, kind=self._kind, full=self.full, from_logits=self.from_logits,
            axis=self.axis, eps=self.eps, source_dtype=self._source_dtype,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(from_logits=self.from_logits, axis=self.axis, eps=self.eps)
        if self._fixed_full is None:
            config["full"] = self.full
        return config


class _SparseCategoricalBase(_LosslabLoss):
    _kind = "m"
    _fixed_full: bool | None = None

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, ignore_class: int | None = None,
        axis: int = -1, eps: float = 1e-7, reduction: str | None = "sum_over_batch_size",
        name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.full = _check_bool("full", full) if self._fixed_full is None else self._fixed_full
        self.from_logits = _check_bool("from_logits", from_logits)
        self.ignore_class = _check_int("ignore_class", ignore_class, optional=True)
        self.axis = _check_int("axis", axis)
        self.eps = _check_eps(eps)

    def __call__(self, y_true: Tensor, y_pred: Tensor, sample_weight: Tensor | None = None) -> Tensor:
        if self.ignore_class is None:
            return super().__call__(y_true, y_pred, sample_weight=sample_weight)
        # As keras.losses.SparseCategoricalCrossentropy: ignored entries weigh 0, and the
        # mean reductions divide by the number of the others (sum(w loss) / count).
        y_pred = ops.convert_to_tensor(y_pred)
        pred_shape = _shape(y_pred)
        labels = _sparse_labels(y_true, pred_shape, _canonical_axis(self.axis, len(pred_shape)))
        weight = ops.cast(ops.not_equal(ops.cast(labels, "int32"), self.ignore_class), "float32")
        if self.reduction in ("sum_over_batch_size", "mean"):
            weight = weight * ops.divide_no_nan(1.0, ops.mean(weight))
        if sample_weight is not None:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
            extra = len(weight.shape) - len(sample_weight.shape)
            if extra < 0:
                raise ValueError(
                    f"sample_weight: expected at most the rank of y_true {_shape(labels)}, "
                    f"got shape {_shape(sample_weight)}"
                )
            sample_weight = ops.reshape(sample_weight, _shape(sample_weight) + (1,) * extra)
            weight = weight * sample_weight
        return super().__call__(y_true, y_pred, sample_weight=weight)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _sparse_categorical(
            y_true, y_pred, kind=self._kind, full=self.full, from_logits=self.from_logits,
            ignore_class=self.ignore_class, axis=self.axis, eps=self.eps,
            source_dtype=self._source_dtype,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(from_logits=self.from_logits, ignore_class=self.ignore_class,
                      axis=self.axis, eps=self.eps)
        if self._fixed_full is None:
            config["full"] = self.full
        return config


class _BinaryBase(_CategoricalBase):
    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _binary(
            y_true, y_pred, kind=self._kind, full=self.full, from_logits=self.from_logits,
            axis=self.axis, eps=self.eps, source_dtype=self._source_dtype,
        )


def _fixed_full_init(base: type) -> Callable[..., None]:
    def __init__(self, **kwargs: Any) -> None:
        if "full" in kwargs:
            raise TypeError(f"full: {type(self).__name__} is always full; got full={kwargs['full']!r}")
        base.__init__(self, **kwargs)

    return __init__


_CLASS_DOC = """{title}

    ``keras.losses.Loss`` form of :func:`{function}`{full_note}; ``model.compile(loss=...)``.

    Args:
{full_arg}        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
{extra_args}        axis: the {axis_what} axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples{mean_note}), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as ``losslab>{name}``).

    References:
        Noel et al., arXiv:2303.09935.
"""


def _make(
    name: str, base: type, kind: str, full: bool | None, function: str, title: str,
    *, extra_args: str = "", axis_what: str = "class", mean_note: str = "",
) -> type:
    namespace: dict[str, Any] = {"_kind": kind, "__module__": __name__, "__qualname__": name}
    if full is not None:
        namespace["_fixed_full"] = full
        namespace["__init__"] = _fixed_full_init(base)
    full_arg = "" if full is not None else "        full: the full form (default False).\n"
    full_note = " with ``full=True``" if full else ""
    namespace["__doc__"] = _CLASS_DOC.format(
        title=title, function=function, full_note=full_note, full_arg=full_arg,
        extra_args=extra_args, axis_what=axis_what, mean_note=mean_note, name=name,
    )
    cls = type(name, (base,), namespace)
    return keras.saving.register_keras_serializable(package=_PACKAGE, name=name)(cls)


_IGNORE = (
    "        ignore_class: a label to skip (e.g. -1 or 255): loss 0 and left out of the mean.\n"
)
_BINARY_MEAN = ", each the mean over ``axis``: the mean over all elements"
_SPARSE_MEAN = " that are not ``ignore_class``"

CategoricalMLoss = _make("CategoricalMLoss", _CategoricalBase, "m", None, "categorical_m_loss",
                         "M loss for one-hot or soft labels: ``sum_c y_c (1/p_c - 1)``.")
CategoricalFullMLoss = _make("CategoricalFullMLoss", _CategoricalBase, "m", True, "categorical_m_loss",
                             "Full M loss for one-hot or soft labels.")
CategoricalLLoss = _make("CategoricalLLoss", _CategoricalBase, "l", None, "categorical_l_loss",
                         "L loss for one-hot or soft labels: ``sum_c y_c (1/sqrt(p_c (2 - p_c)) - 1)``.")
CategoricalFullLLoss = _make("CategoricalFullLLoss", _CategoricalBase, "l", True, "categorical_l_loss",
                             "Full L loss for one-hot or soft labels.")
SparseCategoricalMLoss = _make(
    "SparseCategoricalMLoss", _SparseCategoricalBase, "m", None, "sparse_categorical_m_loss",
    "M loss for integer class indices: ``1/p_y - 1``.", extra_args=_IGNORE, mean_note=_SPARSE_MEAN)
SparseCategoricalFullMLoss = _make(
    "SparseCategoricalFullMLoss", _SparseCategoricalBase, "m", True, "sparse_categorical_m_loss",
    "Full M loss for integer class indices.", extra_args=_IGNORE, mean_note=_SPARSE_MEAN)
SparseCategoricalLLoss = _make(
    "SparseCategoricalLLoss", _SparseCategoricalBase, "l", None, "sparse_categorical_l_loss",
    "L loss for integer class indices.", extra_args=_IGNORE, mean_note=_SPARSE_MEAN)
SparseCategoricalFullLLoss = _make(
    "SparseCategoricalFullLLoss", _SparseCategoricalBase, "l", True, "sparse_categorical_l_loss",
    "Full L loss for integer class indices.", extra_args=_IGNORE, mean_note=_SPARSE_MEAN)
BinaryMLoss = _make("BinaryMLoss", _BinaryBase, "m", None, "binary_m_loss",
                    "Binary / multilabel M loss: ``y (1/p - 1)``, ``p = sigmoid(z)``.",
                    axis_what="label", mean_note=_BINARY_MEAN)
BinaryFullMLoss = _make("BinaryFullMLoss", _BinaryBase, "m", True, "binary_m_loss",
                        "Binary / multilabel full M loss (from logits: the exponential loss).",
                        axis_what="label", mean_note=_BINARY_MEAN)
BinaryLLoss = _make("BinaryLLoss", _BinaryBase, "l", None, "binary_l_loss",
                    "Binary / multilabel L loss: ``y (1/sqrt(p (2 - p)) - 1)``.",
                    axis_what="label", mean_note=_BINARY_MEAN)
BinaryFullLLoss = _make("BinaryFullLLoss", _BinaryBase, "l", True, "binary_l_loss",
                        "Binary / multilabel full L loss.", axis_what="label", mean_note=_BINARY_MEAN)


class _RegressionBase(_LosslabLoss):
    _kind = "smae"

    def __init__(
        self, *, reduction: str | None = "sum_over_batch_size", name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _regression(y_true, y_pred, self._kind)


@keras.saving.register_keras_serializable(package=_PACKAGE, name="SMAELoss")
class SMAELoss(_RegressionBase):
    """Smooth absolute error ``e tanh(e / 2)``: the ``keras.losses.Loss`` form of :func:`smae_loss`.

    Args:
        reduction, name, dtype: as in ``keras.losses`` (default reduction
            ``"sum_over_batch_size"``: with the per-sample mean over the last axis, the mean
            over all elements, as ``losslab.functional.smae_loss``).

    References:
        Noel et al., arXiv:2303.09935, section 3.
    """

    _kind = "smae"


@keras.saving.register_keras_serializable(package=_PACKAGE, name="LogCoshLoss")
class LogCoshLoss(_RegressionBase):
    """Log-cosh ``log cosh(e)`` without overflow: the Loss form of :func:`log_cosh_loss`.

    Same values as ``keras.losses.LogCosh``, finite for any error (Keras' own
    ``e + softplus(-2e) - log 2`` is too; this one shares losslab's dtype handling).

    Args:
        reduction, name, dtype: as :class:`SMAELoss`.
    """

    _kind = "log_cosh"
