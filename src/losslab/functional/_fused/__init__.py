"""Fused forward+backward kernels for the paper's losses (M, full M, L, full L, SMAE, log-cosh).

The public functions in :mod:`losslab.functional.alternate` and
:mod:`losslab.functional.regression` stay the reference: plain eager formulas that autograd
differentiates. This module gives the same values and gradients with far fewer passes over
memory, which is what bounds these losses on a CPU or GPU:

* each loss is one :class:`~losslab.functional._fused.autograd.FusedLoss` (a
  ``torch.autograd.Function``) whose forward computes the loss AND its analytic gradient with
  respect to the logits (or the error) in one sweep, mostly in place;
* the only input-sized tensor kept for backward is that gradient (the input and the other
  tensor arguments are saved too, which costs no memory since the caller holds them anyway);
* on a CPU the elementwise work runs in chunks of
  :data:`~losslab.functional._fused.chunks.CHUNK_ELEMENTS` (rows of the input), so the
  temporaries stay in cache and no input-sized temporary is allocated: the loss costs about
  one pass over memory plus the arithmetic. Under ``torch.compile`` the
  whole input is one chunk and Inductor fuses the pass itself;
* backward scales that gradient in place and hands the buffer itself to autograd (no
  input-sized allocation in backward; see :mod:`~losslab.functional._fused.autograd`). A
  second backward through a retained graph recomputes it with the same kernels, so it gets
  the same bits;
* if backward runs with ``create_graph=True`` (a Hessian, a gradient penalty), it rebuilds
  the gradient from the reference formula under autograd, so higher derivatives stay exact.

The functions here take arguments already validated by the public functions, which select
this path with ``impl="auto"`` (default: when ``from_logits`` and neither target nor weight
requires grad) or ``impl="fused"``, and the plain formula with ``impl="reference"``.

Gradient semantics of the ``eps`` clamp (as in the reference, where ``clamp`` stops the
gradient): an element whose probability lies outside ``[eps, 1 - eps]`` has zero gradient
and its loss is evaluated at the clamped probability. In logit space the clamp on
``p = sigmoid(z)`` is a clamp of ``z`` into ``[logit(eps), -logit(eps)]``.

The package, by role: :mod:`~losslab.functional._fused.autograd` (the generic Function,
gradient keeping, ``check_impl``, ``wants_fused``), :mod:`~losslab.functional._fused.chunks`
(row chunking), :mod:`~losslab.functional._fused.binary`,
:mod:`~losslab.functional._fused.multiclass` and :mod:`~losslab.functional._fused.elementwise`
(regression, focal, hinge). The per-element formulas and their derivative factors
``k = p dl/dp`` come from :mod:`losslab.functional._formulas`.
"""

from __future__ import annotations

from losslab.functional._fused.autograd import IMPLS, FusedLoss, check_impl, fused_loss, wants_fused
from losslab.functional._fused.binary import binary_fused
from losslab.functional._fused.elementwise import (
    hinge_fused,
    log_cosh_of_error,
    regression_fused,
    sigmoid_focal_fused,
    sign_of_label,
)
from losslab.functional._fused.multiclass import multiclass_fused

__all__ = [
    "IMPLS",
    "FusedLoss",
    "binary_fused",
    "check_impl",
    "fused_loss",
    "hinge_fused",
    "log_cosh_of_error",
    "multiclass_fused",
    "regression_fused",
    "sigmoid_focal_fused",
    "sign_of_label",
    "wants_fused",
]
