"""Registry entries for the paper's classification losses and the v1 extras."""

from __future__ import annotations

import functools
import re

from losslab.functional import alternate as AF
from losslab.nn import alternate as AN
from losslab.registry._core import LossInfo, register

_PAPER = (
    "Noel, Banerjee, Amali, Muthiah-Nakarajan, 'Alternate Loss Functions for Classification "
    "and Robust Regression Can Improve the Accuracy of Artificial Neural Networks', "
    "arXiv:2303.09935"
)
_MULTICLASS_INPUT = "logits (N, C, d1..dk); softmax over dim 1 (from_logits=False: probabilities)"
_MULTICLASS_TARGET = "class indices (N, d1..dk) or class probabilities (N, C, d1..dk)"
_BINARY_INPUT = "logits (*), sigmoid per element (from_logits=False: probabilities)"
_BINARY_TARGET = "(*) same shape, values in [0, 1]"


def _pointwise(function, **fixed):
    """f(p, y) for one probability output: the binary form on probabilities, no clamp."""

    def evaluate(p, y):
        return function(p, y, from_logits=False, eps=0.0, reduction="none", **fixed)

    return evaluate


_CORE = [
    # name, module class, functional, full, formula, strictness note
    ("m", AN.MLoss, AF.m_loss, AF.binary_m_loss, False, "sum_c y_c (1/p_c - 1)",
     "stricter than cross-entropy on all of (0, 1); = expm1(CE) per sample for class indices"),
    ("full_m", AN.MLoss, AF.m_loss, AF.binary_m_loss, True,
     "sum_c [y_c (1/p_c - 1) + (1 - y_c) (1/(1 - p_c) - 1)]",
     "stricter than cross-entropy; binary form from logits is the exponential loss"),
    ("l", AN.LLoss, AF.l_loss, AF.binary_l_loss, False, "sum_c y_c (1/sqrt(p_c (2 - p_c)) - 1)",
     "more lenient than cross-entropy for p above ~0.117"),
    ("full_l", AN.LLoss, AF.l_loss, AF.binary_l_loss, True,
     "sum_c [y_c (1/sqrt(p_c (2 - p_c)) - 1) + (1 - y_c) (1/sqrt(1 - p_c^2) - 1)]",
     "more lenient than cross-entropy for p above ~0.117"),
]

# The class names of the Keras forms in losslab.keras (strings: no Keras import here).
_KERAS_STEM = {"m": "MLoss", "full_m": "FullMLoss", "l": "LLoss", "full_l": "FullLLoss"}

for name, module, function, binary_function, full, formula, note in _CORE:
    stem = _KERAS_STEM[name]
    register(
        LossInfo(
            name=name,
            family="classification",
            task="multiclass classification (drop-in for cross-entropy)",
            factory=functools.partial(module, full=full),
            functional=functools.partial(function, full=full),
            input=_MULTICLASS_INPUT,
            target=_MULTICLASS_TARGET,
            formula=formula + ", p = softmax(z)",
            reference=_PAPER,
            reference_impl="authors' Keras notebooks (Custom" + {"m": "MLoss", "full_m": "MFullLoss", "l": "LLoss", "full_l": "LFullLoss"}[name] + ")",
            convex=True,
            bounded=False,
            activation="softmax", fused=True, paper=True,
            notes=note + "; probabilities clamped into [eps, 1 - eps]",
            pointwise=_pointwise(binary_function, full=full),
            keras=(f"Categorical{stem}", f"SparseCategorical{stem}"),
        )
    )
    register(
        LossInfo(
            name=f"binary_{name}",
            family="binary",
            task="binary / multilabel classification (drop-in for BCE with logits)",
            factory=functools.partial(
                AN.BinaryLLoss if module is AN.LLoss else AN.BinaryMLoss, full=full
            ),
            functional=functools.partial(binary_function, full=full),
            input=_BINARY_INPUT,
            target=_BINARY_TARGET,
            formula=formula.replace("sum_c ", "").replace("_c", "") + ", p = sigmoid(z)",
            reference=_PAPER,
            reference_impl=None,
            convex=True,
            bounded=False,
            target_kind="binary", activation="sigmoid", fused=True, paper=True,
            notes=note + ("; from a logit: y exp(-z) + (1 - y) exp(z)" if name == "full_m" else ""),
            pointwise=_pointwise(binary_function, full=full),
            keras=(f"Binary{stem}",),
        )
    )

def _per_class(formula: str) -> str:
    """``y (1/p^alpha - 1)`` -> ``y_c (1/p_c^alpha - 1)``: only the standalone symbols ``p`` and
    ``y`` get the class subscript (a plain text replace would also hit "alpha" and "pi")."""
    return re.sub(r"\b([py])\b", r"\1_c", formula)


_EXTRAS = [
    ("parametric_m", AN.ParametricMLoss, AN.BinaryParametricMLoss, AF.parametric_m_loss,
     AF.binary_parametric_m_loss, "y (1/p^alpha - 1)", True,
     "alpha=1 is M; convex in p for alpha > 0, listed with the paper's v1 extras"),
    ("parabolic", AN.ParabolicLoss, AN.BinaryParabolicLoss, AF.parabolic_loss,
     AF.binary_parabolic_loss, "y (1 - p^2)", False, "NOT convex (concave in p); bounded"),
    ("circle", AN.CircleLoss, AN.BinaryCircleLoss, AF.circle_loss, AF.binary_circle_loss,
     "y sqrt(1 - p^2)", False, "NOT convex (concave in p); bounded"),
    ("cosine", AN.CosineLoss, AN.BinaryCosineLoss, AF.cosine_loss, AF.binary_cosine_loss,
     "y cos(pi p / 2)", False, "NOT convex (concave in p); bounded"),
]

for name, module, binary_module, function, binary_function, formula, convex, note in _EXTRAS:
    fixed = {"alpha": 2.0} if name == "parametric_m" else {}
    register(
        LossInfo(
            name=name, family="classification",
            task="multiclass classification (experimental, paper v1)",
            factory=module, functional=function, input=_MULTICLASS_INPUT,
            target=_MULTICLASS_TARGET, formula=f"sum_c {_per_class(formula)}",
            reference=_PAPER + " (v1)", convex=convex, bounded=not convex,
            activation="softmax", notes=note, extra=True,
            pointwise=_pointwise(binary_function, **fixed),
        )
    )
    register(
        LossInfo(
            name=f"binary_{name}", family="binary",
            task="binary / multilabel classification (experimental, paper v1)",
            factory=binary_module, functional=binary_function, input=_BINARY_INPUT,
            target=_BINARY_TARGET, formula=formula + ", p = sigmoid(z)",
            reference=_PAPER + " (v1)", convex=convex, bounded=not convex,
            target_kind="binary", activation="sigmoid", notes=note, extra=True,
            pointwise=_pointwise(binary_function, **fixed),
        )
    )
