"""Registry entries for the segmentation losses."""

from __future__ import annotations

from losslab.functional import segmentation as SF
from losslab.nn import segmentation as SN
from losslab.registry._core import LossInfo, register

register(
    LossInfo(
        name="dice", family="segmentation",
        task="segmentation (overlap of predicted and true masks), robust to class imbalance",
        factory=SN.DiceLoss, functional=SF.dice_loss,
        input="logits (N, C, d1..dk); binary mode: (N, *)",
        target="class indices (N, d1..dk) or one-hot (N, C, d1..dk); multilabel/binary: masks in [0, 1]",
        formula="1 - (2 sum p g + s_nr) / (sum p^2 + sum g^2 + s_dr)  (plain form: sum p + sum g)",
        reference="Milletari, Navab & Ahmadi, 'V-Net', 3DV 2016, arXiv:1606.04797",
        reference_impl="monai.losses.DiceLoss (squared_pred = squared_denominator)",
        convex=False, bounded=True,
        target_kind="segmentation", activation="softmax",
        notes="per (sample, class) Dice averaged; batch=True pools the batch; weight scales each "
              "class's term (MONAI's weight); in [0, 1]",
        aliases=("dice_loss", "soft_dice"),
    )
)
