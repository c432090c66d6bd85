"""The paper's losses for Keras 3, written once in ``keras.ops``: JAX, TensorFlow and PyTorch.

``pip install 'losslab[keras]'``. ``import losslab`` never imports Keras; this module does.
Pick the backend as usual (``KERAS_BACKEND=jax|tensorflow|torch``) before the first Keras import.

    >>> import keras
    >>> from losslab.keras import SparseCategoricalMLoss
    >>> model.compile(optimizer="adam", loss=SparseCategoricalMLoss())  # doctest: +SKIP

Keras conventions throughout: ``(y_true, y_pred)``, ``from_logits=False`` (probabilities, as
the authors' notebooks), ``reduction`` and ``sample_weight`` as in ``keras.losses``, ``axis``,
``ignore_class`` for the sparse forms, ``get_config()`` / ``from_config()`` so that saved models
reload. The numerics are those of :mod:`losslab.functional` (computed from ``log p`` and
``log(1 - p)``); the values equal it to float32 rounding on every backend.

* M with one-hot or soft labels: :class:`CategoricalMLoss` (per-sample function
  :func:`categorical_m_loss`);
* M with class indices: :class:`SparseCategoricalMLoss` (:func:`sparse_categorical_m_loss`);
* full M, L and full L: ``CategoricalFullMLoss``, ``CategoricalLLoss``, ``CategoricalFullLLoss``
  and their ``SparseCategorical...Loss`` forms (:func:`categorical_l_loss`, ...);
* binary and multi-label: :class:`BinaryMLoss`, ``BinaryFullMLoss``, ``BinaryLLoss``,
  ``BinaryFullLLoss`` (:func:`binary_m_loss`, :func:`binary_l_loss`);
* SMAE: :class:`SMAELoss` (:func:`smae_loss`); log-cosh: :class:`LogCoshLoss`
  (:func:`log_cosh_loss`).
"""

from __future__ import annotations

try:
    import keras as _keras
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "losslab.keras needs Keras 3: pip install 'losslab[keras]' (and a backend: "
        "torch is already installed; jax[cpu] or tensorflow also work)"
    ) from error

if not _keras.__version__.startswith("3."):  # pragma: no cover
    raise ImportError(f"losslab.keras needs Keras 3, found keras {_keras.__version__}")

from losslab.keras import losses as _losses
from losslab.keras.losses import *  # noqa: F403

__all__ = list(_losses.__all__)
