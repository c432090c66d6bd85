"""Registry entries for the classification catalogue (cross-entropy, BCE, and the primer's)."""

from __future__ import annotations

import torch.nn.functional as F

from losslab.functional import classification as CF
from losslab.nn import classification as CN
from losslab.registry._core import LossInfo, register


def _bce_pointwise(p, y):
    return F.binary_cross_entropy(p, y, reduction="none")


register(
    LossInfo(
        name="cross_entropy", family="classification",
        task="multiclass classification", factory=CN.CrossEntropyLoss,
        functional=CF.cross_entropy,
        input="logits (N, C, d1..dk)", target="class indices (N, d1..dk) or probabilities (N, C, d1..dk)",
        formula="-sum_c y_c log p_c, p = softmax(z)", reference="maximum likelihood (multinomial)",
        reference_impl="torch.nn.functional.cross_entropy", convex=True, bounded=False,
        hyperparameters={"weight": None, "ignore_index": -100, "reduction": "mean", "label_smoothing": 0.0},
        notes="weighted 'mean' divides by the summed weight of the targets",
        aliases=("ce",), pointwise=_bce_pointwise,
    )
)
register(
    LossInfo(
        name="binary_cross_entropy", family="binary",
        task="binary / multilabel classification", factory=CN.BCEWithLogitsLoss,
        functional=CF.binary_cross_entropy_with_logits,
        input="logits (*)", target="(*) same shape, values in [0, 1]",
        formula="-(y log p + (1 - y) log(1 - p)), p = sigmoid(z)",
        reference="maximum likelihood (Bernoulli)",
        reference_impl="torch.nn.functional.binary_cross_entropy_with_logits", convex=True,
        bounded=False, hyperparameters={"weight": None, "pos_weight": None, "reduction": "mean"},
        notes="computed from logits (log-sum-exp trick)", aliases=("bce", "bce_with_logits"),
        pointwise=_bce_pointwise,
    )
)
