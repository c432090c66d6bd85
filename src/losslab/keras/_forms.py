"""The shared bases of the Keras Loss classes: argument checks, ``call`` and ``get_config``
per form (Categorical, SparseCategorical, Binary, regression), and the mixed-precision dtype
record that every class needs."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from losslab.keras._checks import (
    Tensor,
    _canonical_axis,
    _check_bool,
    _check_eps,
    _check_int,
    _shape,
    _sparse_labels,
)
from losslab.keras.functions import _binary, _categorical, _regression, _sparse_categorical


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


class _CategoricalForm(_LosslabLoss):
    """The shared ``call`` and config of the Categorical classes (one-hot or soft labels)."""

    _kind = "m"
    # False in the Full classes: always full, and no "full" in their config
    _full_is_option = True

    def _configure(self, *, full: bool, from_logits: bool, axis: int, eps: float) -> None:
        self.full = _check_bool("full", full)
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
        if self._full_is_option:
            config["full"] = self.full
        return config


class _SparseCategoricalForm(_LosslabLoss):
    """The shared ``call``, ``ignore_class`` weighting and config of the SparseCategorical classes."""

    _kind = "m"
    _full_is_option = True

    def _configure(self, *, full: bool, from_logits: bool, ignore_class: int | None, axis: int,
                   eps: float) -> None:
        self.full = _check_bool("full", full)
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
        if self._full_is_option:
            config["full"] = self.full
        return config


class _BinaryForm(_CategoricalForm):
    """The shared ``call`` of the Binary classes (sigmoid per element, mean over ``axis``)."""

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _binary(
            y_true, y_pred, kind=self._kind, full=self.full, from_logits=self.from_logits,
            axis=self.axis, eps=self.eps, source_dtype=self._source_dtype,
        )


class _RegressionForm(_LosslabLoss):
    """The shared ``__init__`` and ``call`` of the regression classes."""

    _kind = "smae"

    def __init__(
        self, *, reduction: str | None = "sum_over_batch_size", name: str | None = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        return _regression(y_true, y_pred, self._kind)
