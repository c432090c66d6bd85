"""The ``keras.losses.Loss`` subclasses: ``model.compile(loss=...)`` forms of the functions.

Each class is written out (its docstring, its ``__init__`` signature; ``call`` and
``get_config`` from its form's base in :mod:`losslab.keras._forms`) so that a type checker and
an IDE see it; each is registered for ``keras.saving`` as ``losslab>ClassName``. The ``Full``
classes are always full and take no ``full`` argument.
"""

from __future__ import annotations

from typing import Any

import keras

from losslab.keras._forms import (
    _BinaryForm,
    _CategoricalForm,
    _RegressionForm,
    _SparseCategoricalForm,
)

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
]

_PACKAGE = "losslab"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalMLoss(_CategoricalForm):
    """M loss for one-hot or soft labels: ``sum_c y_c (1/p_c - 1)``.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.categorical_m_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>CategoricalMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalFullMLoss(_CategoricalForm):
    """Full M loss for one-hot or soft labels.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.categorical_m_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>CategoricalFullMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalLLoss(_CategoricalForm):
    """L loss for one-hot or soft labels: ``sum_c y_c (1/sqrt(p_c (2 - p_c)) - 1)``.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.categorical_l_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>CategoricalLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalFullLLoss(_CategoricalForm):
    """Full L loss for one-hot or soft labels.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.categorical_l_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples), ``"sum"``, ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>CategoricalFullLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalMLoss(_SparseCategoricalForm):
    """M loss for integer class indices: ``1/p_y - 1``.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.sparse_categorical_m_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        ignore_class: a label to skip (e.g. -1 or 255): loss 0 and left out of the mean.
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples that are not ``ignore_class``), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>SparseCategoricalMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, ignore_class: int | None = None,
        axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, ignore_class=ignore_class, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalFullMLoss(_SparseCategoricalForm):
    """Full M loss for integer class indices.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.sparse_categorical_m_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        ignore_class: a label to skip (e.g. -1 or 255): loss 0 and left out of the mean.
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples that are not ``ignore_class``), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>SparseCategoricalFullMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1,
        eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, ignore_class=ignore_class, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalLLoss(_SparseCategoricalForm):
    """L loss for integer class indices.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.sparse_categorical_l_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        ignore_class: a label to skip (e.g. -1 or 255): loss 0 and left out of the mean.
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples that are not ``ignore_class``), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>SparseCategoricalLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, ignore_class: int | None = None,
        axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, ignore_class=ignore_class, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparseCategoricalFullLLoss(_SparseCategoricalForm):
    """Full L loss for integer class indices.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.sparse_categorical_l_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        ignore_class: a label to skip (e.g. -1 or 255): loss 0 and left out of the mean.
        axis: the class axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples that are not ``ignore_class``), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>SparseCategoricalFullLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1,
        eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, ignore_class=ignore_class, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryMLoss(_BinaryForm):
    """Binary / multilabel M loss: ``y (1/p - 1)``, ``p = sigmoid(z)``.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.binary_m_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the label axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples, each the mean over ``axis``: the mean over all elements), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>BinaryMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryFullMLoss(_BinaryForm):
    """Binary / multilabel full M loss (from logits: the exponential loss).

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.binary_m_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the label axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples, each the mean over ``axis``: the mean over all elements), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>BinaryFullMLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "m"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryLLoss(_BinaryForm):
    """Binary / multilabel L loss: ``y (1/sqrt(p (2 - p)) - 1)``.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.binary_l_loss`;
    ``model.compile(loss=...)``.

    Args:
        full: the full form (default False).
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the label axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples, each the mean over ``axis``: the mean over all elements), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>BinaryLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"

    def __init__(
        self, *, full: bool = False, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=full, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryFullLLoss(_BinaryForm):
    """Binary / multilabel full L loss.

    ``keras.losses.Loss`` form of :func:`~losslab.keras.functions.binary_l_loss`
    with ``full=True``; ``model.compile(loss=...)``.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities (default False).
        axis: the label axis (default -1).
        eps: probabilities are clipped into ``[eps, 1 - eps]`` (default 1e-7).
        reduction: as in ``keras.losses``: ``"sum_over_batch_size"`` (default: the mean over
            samples, each the mean over ``axis``: the mean over all elements), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``None``.
        name: the loss's name.
        dtype: the dtype of the reduction (default: ``keras.backend.floatx()``).

    ``sample_weight`` (in ``__call__`` and ``fit``) weighs each sample's loss, as in Keras.
    The config (``get_config`` / ``from_config``) holds every argument, so a model saved with
    this loss reloads with it (``keras.saving.load_model``; registered as
    ``losslab>BinaryFullLLoss``).

    References:
        Noel et al., arXiv:2303.09935.
    """

    _kind = "l"
    _full_is_option = False

    def __init__(
        self, *, from_logits: bool = False, axis: int = -1, eps: float = 1e-7,
        reduction: str | None = "sum_over_batch_size", name: str | None = None, dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._configure(full=True, from_logits=from_logits, axis=axis, eps=eps)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SMAELoss(_RegressionForm):
    """Smooth absolute error ``e tanh(e / 2)``: the ``keras.losses.Loss`` form of
    :func:`~losslab.keras.functions.smae_loss`.

    Args:
        reduction, name, dtype: as in ``keras.losses`` (default reduction
            ``"sum_over_batch_size"``: with the per-sample mean over the last axis, the mean
            over all elements, as ``losslab.functional.smae_loss``).

    References:
        Noel et al., arXiv:2303.09935, section 3.
    """

    _kind = "smae"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogCoshLoss(_RegressionForm):
    """Log-cosh ``log cosh(e)`` without overflow: the Loss form of
    :func:`~losslab.keras.functions.log_cosh_loss`.

    The values of ``keras.losses.LogCosh`` to float rounding, finite for any error, and exactly
    0 at ``e = 0`` (``log1p(2 sinh^2(e / 2))`` for ``|e| < 1``, as the PyTorch form).

    Args:
        reduction, name, dtype: as :class:`SMAELoss`.
    """

    _kind = "log_cosh"
