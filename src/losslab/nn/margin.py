"""Modules for the margin losses on pairs of scores."""

from __future__ import annotations

from torch import Tensor

from losslab.functional import margin as MF
from losslab.nn._base import FunctionalLoss

__all__ = ["MarginRankingLoss"]


class MarginRankingLoss(FunctionalLoss):
    """Margin ranking loss ``max(0, -y (x1 - x2) + margin)``: ``nn.MarginRankingLoss``.

    See :func:`losslab.functional.margin_ranking_loss` (no broadcasting, labels ±1 only).

    Shape:
        - Input1: ``(*)`` scores.
        - Input2: ``(*)``, input1's shape.
        - Target: ``(*)``, input1's shape, labels in {-1, +1}.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
    """

    function = staticmethod(MF.margin_ranking_loss)

    def __init__(self, *, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(margin=margin, reduction=reduction)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        return MF.margin_ranking_loss(input1, input2, target, **self.options())
