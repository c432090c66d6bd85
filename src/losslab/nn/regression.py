"""Modules for the regression losses."""

from __future__ import annotations

from losslab.functional import regression as RF
from losslab.nn._base import FunctionalLoss

__all__ = ["HuberLoss", "L1Loss", "LogCoshLoss", "MAELoss", "MSELoss", "SMAELoss", "SmoothL1Loss"]

_SHAPE = """
    Shape:
        - Input: ``(*)``, any shape.
        - Target: ``(*)``, the input's shape (never broadcast).
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
"""


class _RegressionLoss(FunctionalLoss):
    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class SMAELoss(_RegressionLoss):
    __doc__ = "Smooth absolute error ``e tanh(e/2)``; see :func:`losslab.functional.smae_loss`.\n" + _SHAPE
    function = staticmethod(RF.smae_loss)


class LogCoshLoss(_RegressionLoss):
    __doc__ = "Log-cosh loss; see :func:`losslab.functional.log_cosh_loss`.\n" + _SHAPE
    function = staticmethod(RF.log_cosh_loss)


class MSELoss(_RegressionLoss):
    __doc__ = "Squared error over ``F.mse_loss``, with shape checks.\n" + _SHAPE
    function = staticmethod(RF.mse_loss)


class L1Loss(_RegressionLoss):
    __doc__ = "Absolute error (MAE) over ``F.l1_loss``, with shape checks.\n" + _SHAPE
    function = staticmethod(RF.l1_loss)


MAELoss = L1Loss


class HuberLoss(FunctionalLoss):
    __doc__ = "Huber loss over ``F.huber_loss``, with shape checks.\n" + _SHAPE
    function = staticmethod(RF.huber_loss)

    def __init__(self, *, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(delta=delta, reduction=reduction)


class SmoothL1Loss(FunctionalLoss):
    __doc__ = "Smooth L1 loss over ``F.smooth_l1_loss``, with shape checks.\n" + _SHAPE
    function = staticmethod(RF.smooth_l1_loss)

    def __init__(self, *, beta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(beta=beta, reduction=reduction)
