"""Classification losses over logits: documented entries over torch, and the primer's catalogue.

``cross_entropy`` and ``binary_cross_entropy_with_logits`` call torch after losslab's argument
checks, so that every comparison can name them through the registry.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from losslab._validation import (
    check_floating,
    check_multiclass_target,
    check_reduction,
    check_same_shape,
    check_values_in_range,
)

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy"]


def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy over logits: ``F.cross_entropy`` with losslab's argument checks.

    .. math:: \ell_n = -\sum_c w_c y_c \log \operatorname{softmax}(z_n)_c

    Args:
        input: logits ``(N, C, d1..dk)`` or ``(C,)``.
        target: class indices ``(N, d1..dk)`` or probabilities of the input's shape.
        weight: per-class rescaling ``(C,)``; with class indices ``"mean"`` divides by the
            summed weight of the targets.
        ignore_index: class index to skip.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1].

    Returns:
        A scalar, or ``(N, d1..dk)`` with ``reduction="none"``.
    """
    check_reduction(reduction)
    input = check_floating("input", input)
    check_multiclass_target(input, target, ignore_index)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1], got {label_smoothing!r}")
    return F.cross_entropy(
        input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing,
    )


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary / multilabel cross-entropy over logits: ``F.binary_cross_entropy_with_logits``.

    .. math:: \ell = -w \left[ w_+ y \log \sigma(z) + (1 - y) \log(1 - \sigma(z)) \right]

    Args:
        input: logits, any shape.
        target: the same shape, values in [0, 1].
        weight: elementwise rescaling, broadcast to the input.
        pos_weight: weight of the positive term, broadcast to the input (one per label).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    check_reduction(reduction)
    input = check_floating("input", input)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    check_values_in_range("target", target, 0.0, 1.0, "binary targets")
    return F.binary_cross_entropy_with_logits(
        input, target, weight=weight, pos_weight=pos_weight, reduction=reduction
    )
