"""The public Keras functions: per-sample M, full M, L, full L, SMAE and log-cosh in ``keras.ops``.

Every formula comes from :mod:`losslab.functional._formulas`, the numeric core that
:mod:`losslab.functional` uses too, evaluated with :data:`KERAS` (``keras.ops``) as its array
namespace: the same expressions as the PyTorch functions, so on every backend the values and
gradients equal theirs to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops

from losslab.functional._formulas import (
    clamp_log_pair,
    l_false,
    l_true,
    log_cosh_of_error,
    m_false,
    m_true,
    probability_log_pair,
    smae_of_error,
    softmax_log_pair,
)
from losslab.keras._checks import (
    Tensor,
    _canonical_axis,
    _check_bool,
    _check_class_indices,
    _check_eps,
    _check_int,
    _check_range,
    _compatible,
    _match_binary_rank,
    _prepare_pred,
    _shape,
    _sparse_labels,
)

__all__ = [
    "binary_l_loss",
    "binary_m_loss",
    "categorical_l_loss",
    "categorical_m_loss",
    "log_cosh_loss",
    "smae_loss",
    "sparse_categorical_l_loss",
    "sparse_categorical_m_loss",
]

Kernel = Callable[..., Tensor]


class KerasOps:
    """``keras.ops`` under the names the formulas of :mod:`losslab.functional._formulas` call."""

    abs = staticmethod(ops.abs)
    exp = staticmethod(ops.exp)
    expm1 = staticmethod(ops.expm1)
    log = staticmethod(ops.log)
    log1p = staticmethod(ops.log1p)
    sin = staticmethod(ops.sin)
    sinh = staticmethod(ops.sinh)
    square = staticmethod(ops.square)
    tanh = staticmethod(ops.tanh)
    softplus = staticmethod(ops.softplus)
    where = staticmethod(ops.where)
    full_like = staticmethod(ops.full_like)
    log_sigmoid = staticmethod(ops.log_sigmoid)
    logical_or = staticmethod(ops.logical_or)
    clip = staticmethod(ops.clip)
    minimum = staticmethod(ops.minimum)

    @staticmethod
    def log_softmax(x: Tensor, axis: int) -> Tensor:
        return ops.log_softmax(x, axis=axis)

    @staticmethod
    def logsumexp(x: Tensor, axis: int) -> Tensor:
        return ops.logsumexp(x, axis=axis, keepdims=True)

    # the top entry as a one-hot mask along the axis, and its value as a constant

    @staticmethod
    def top(x: Tensor, axis: int) -> tuple[Tensor, Tensor, int]:
        mask = ops.cast(ops.one_hot(ops.argmax(x, axis=axis), x.shape[axis], axis=axis), "bool")
        return mask, ops.stop_gradient(ops.max(x, axis=axis, keepdims=True)), axis

    @staticmethod
    def top_value(top: tuple[Tensor, Tensor, int]) -> Tensor:
        return top[1]

    @staticmethod
    def take(top: tuple[Tensor, Tensor, int], x: Tensor) -> Tensor:
        mask, _, axis = top
        return ops.sum(ops.where(mask, x, 0.0), axis=axis, keepdims=True)

    @staticmethod
    def put(top: tuple[Tensor, Tensor, int], x: Tensor, value: Tensor | float) -> Tensor:
        return ops.where(top[0], value, x)


#: The Keras namespace handed to every formula.
KERAS = KerasOps()

_KERNELS: dict[str, tuple[Kernel, Kernel]] = {"m": (m_true, m_false), "l": (l_true, l_false)}


# --- log-probabilities and per-element losses ------------------------------------------------


def _log_pair(
    y_pred: Tensor, *, from_logits: bool, eps: float, softmax_axis: int | None
) -> tuple[Tensor, Tensor]:
    if not from_logits:
        _check_range("y_pred", y_pred, 0.0, 1.0, "probabilities (from_logits=False)")
        return probability_log_pair(y_pred, eps, xp=KERAS)
    if softmax_axis is None:
        log_p, log_q = ops.log_sigmoid(y_pred), ops.log_sigmoid(-y_pred)
    else:
        log_p, log_q = softmax_log_pair(y_pred, softmax_axis, xp=KERAS)
    return clamp_log_pair(log_p, log_q, eps, xp=KERAS)


def _elementwise(y: Tensor, log_p: Tensor, log_q: Tensor, kind: str, full: bool) -> Tensor:
    true_kernel, false_kernel = _KERNELS[kind]
    loss = y * true_kernel(log_p, log_q, xp=KERAS)
    if full:
        loss = loss + (1.0 - y) * false_kernel(log_p, log_q, xp=KERAS)
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
    loss = smae_of_error(error, xp=KERAS) if kind == "smae" else log_cosh_of_error(error, xp=KERAS)
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

    For ``|e| < 1`` evaluated as ``log1p(2 sinh^2(e / 2))`` (as
    ``losslab.functional.log_cosh_loss``): exactly 0 at ``e = 0``, never negative.

    Args, Returns: as :func:`smae_loss`.

    References:
        Wang et al. 2020, "A comprehensive survey of loss functions in machine learning".
    """
    return _regression(y_true, y_pred, "log_cosh")
