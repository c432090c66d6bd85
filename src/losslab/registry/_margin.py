"""Registry entries for the margin losses on pairs of scores."""

from __future__ import annotations

from losslab.functional import margin as MF
from losslab.nn import margin as MN
from losslab.registry._core import LossInfo, register

register(
    LossInfo(
        name="margin_ranking", family="margin", task="pairwise ranking (which of two scores is higher)",
        factory=MN.MarginRankingLoss, functional=MF.margin_ranking_loss,
        input="input1 (*), input2 (*) scores of the same shape",
        target="(*) same shape, labels in {-1, +1} (1: input1 ranks higher)",
        formula="max(0, -y (x1 - x2) + margin)",
        reference="Herbrich, Graepel & Obermayer 2000 (large margin rank boundaries)",
        reference_impl="torch.nn.functional.margin_ranking_loss", convex=True, bounded=False,
        target_kind="ranking",
        notes="three tensor arguments (input1, input2, target); no broadcasting, labels +-1 only",
        aliases=("ranking", "margin_ranking_loss"),
    )
)
