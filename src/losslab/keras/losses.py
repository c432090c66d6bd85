"""Keras 3 forms of M, full M, L, full L, SMAE and log-cosh, in ``keras.ops`` only.

The formulas are those of :mod:`losslab.functional` itself, written once in its numeric core
:mod:`losslab.functional._formulas` and evaluated here with ``keras.ops``, so that on every
backend the values and gradients equal the PyTorch functions' to float32 rounding:

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

# The module is split by role: losslab.keras._checks (argument and value checks),
# losslab.keras.functions (the public functions), losslab.keras.classes (the Loss subclasses).
from losslab.keras import classes as _classes
from losslab.keras import functions as _functions
from losslab.keras.classes import *  # noqa: F403
from losslab.keras.functions import *  # noqa: F403

__all__ = [*_classes.__all__, *_functions.__all__]
