"""Modules for the segmentation losses."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from losslab._validation import check_choice, check_int
from losslab.functional import segmentation as SF
from losslab.nn._base import FunctionalLoss, OptionChecks

__all__ = ["DiceLoss"]


class DiceLoss(FunctionalLoss):
    """Soft Dice loss from logits; see :func:`losslab.functional.dice_loss` (MONAI mapping).

    Shape:
        - Input: ``(N, C, d1, ..., dk)`` logits (multiclass / multilabel), ``(N, *)`` (binary).
        - Target: multiclass: class indices ``(N, d1, ..., dk)`` or one-hot ``(N, C, d1, ..., dk)``;
          multilabel: ``(N, C, d1, ..., dk)`` in [0, 1]; binary: the input's shape in [0, 1].
        - Output: a scalar for ``"mean"`` and ``"sum"``; for ``"none"`` ``(N, C)``
          (multiclass / multilabel, without class 0 if ``include_background=False``), ``(N)``
          (binary); with ``batch=True`` ``(C)`` or ``()``.
        - Weight (optional): ``(C)``, one factor per class kept (a buffer: follows ``.to()``).
    """

    function = staticmethod(SF.dice_loss)
    option_checks: ClassVar[OptionChecks] = {"ignore_index": lambda name, value: check_int(name, value, optional=True),
                     "mode": lambda name, value: check_choice(name, value, SF.DICE_MODES)}

    def __init__(
        self,
        *,
        mode: str = "multiclass",
        squared_denominator: bool = True,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        include_background: bool = True,
        batch: bool = False,
        ignore_index: int | None = None,
        weight: Tensor | None = None,
        from_logits: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            mode=mode, squared_denominator=squared_denominator, smooth_nr=smooth_nr,
            smooth_dr=smooth_dr, include_background=include_background, batch=batch,
            ignore_index=ignore_index, weight=weight, from_logits=from_logits, reduction=reduction,
        )
