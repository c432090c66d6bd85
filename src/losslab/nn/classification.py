"""Modules for the classification catalogue (entries over torch and the primer's losses)."""

from __future__ import annotations

from torch import Tensor

from losslab.functional import classification as CF
from losslab.nn._base import FunctionalLoss

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss"]


class CrossEntropyLoss(FunctionalLoss):
    """Cross-entropy over logits: ``nn.CrossEntropyLoss`` with losslab's argument checks.

    Shape:
        - Input: ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dk)`` logits.
        - Target: class indices ``(N)``, ``()`` or ``(N, d1, ..., dk)``; or probabilities of
          the input's shape.
        - Output: a scalar for ``"mean"`` and ``"sum"``; the target's index shape for ``"none"``.
    """

    function = staticmethod(CF.cross_entropy)

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            weight=weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=label_smoothing,
        )


class BCEWithLogitsLoss(FunctionalLoss):
    """Binary / multilabel cross-entropy over logits: ``nn.BCEWithLogitsLoss`` with checks.

    Shape:
        - Input: ``(*)`` logits.
        - Target: ``(*)``, the input's shape, values in [0, 1].
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
    """

    function = staticmethod(CF.binary_cross_entropy_with_logits)

    def __init__(
        self,
        *,
        weight: Tensor | None = None,
        pos_weight: Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight=weight, pos_weight=pos_weight, reduction=reduction)
