"""Modules for the alternate classification losses (M, full M, L, full L) and the v1 extras."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from losslab.functional import alternate as AF
from losslab.nn._base import FunctionalLoss, OptionChecks

__all__ = [
    "BinaryCircleLoss",
    "BinaryCosineLoss",
    "BinaryLLoss",
    "BinaryMLoss",
    "BinaryParabolicLoss",
    "BinaryParametricMLoss",
    "CircleLoss",
    "CosineLoss",
    "LLoss",
    "MLoss",
    "ParabolicLoss",
    "ParametricMLoss",
]

_MULTICLASS_SHAPE = """
    Shape:
        - Input: ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dk)``: logits (or probabilities
          with ``from_logits=False``).
        - Target: class indices ``(N)``, ``()`` or ``(N, d1, ..., dk)`` with values in
          ``[0, C)``; or class probabilities of the input's shape.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)``, ``()`` or
          ``(N, d1, ..., dk)`` for ``"none"``.
"""

_BINARY_SHAPE = """
    Shape:
        - Input: ``(*)``, any shape: logits (or probabilities with ``from_logits=False``).
        - Target: ``(*)``, the input's shape, values in [0, 1].
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
"""


class MLoss(FunctionalLoss):
    __doc__ = (
        "M loss (``full=False``) or full M loss; see :func:`losslab.functional.m_loss`.\n\n"
        "    A drop-in for ``nn.CrossEntropyLoss``: the same input and target conventions,\n"
        "    ``weight``, ``ignore_index`` and reductions.\n" + _MULTICLASS_SHAPE
    )
    function = staticmethod(AF.m_loss)

    def __init__(
        self,
        *,
        full: bool = False,
        from_logits: bool = True,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        eps: float = 1e-7,
        impl: str = "auto",
    ) -> None:
        super().__init__(
            full=full, from_logits=from_logits, weight=weight, ignore_index=ignore_index,
            reduction=reduction, eps=eps, impl=impl,
        )


class LLoss(MLoss):
    __doc__ = (
        "L loss (``full=False``) or full L loss; see :func:`losslab.functional.l_loss`.\n\n"
        "    A drop-in for ``nn.CrossEntropyLoss``.\n" + _MULTICLASS_SHAPE
    )
    function = staticmethod(AF.l_loss)


class BinaryMLoss(FunctionalLoss):
    __doc__ = (
        "Binary / multilabel M or full M loss; see :func:`losslab.functional.binary_m_loss`.\n\n"
        "    A drop-in for ``nn.BCEWithLogitsLoss``.\n" + _BINARY_SHAPE
    )
    function = staticmethod(AF.binary_m_loss)

    def __init__(
        self,
        *,
        full: bool = False,
        from_logits: bool = True,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
        eps: float = 1e-7,
        impl: str = "auto",
    ) -> None:
        super().__init__(
            full=full, from_logits=from_logits, pos_weight=pos_weight, weight=weight,
            reduction=reduction, eps=eps, impl=impl,
        )


class BinaryLLoss(BinaryMLoss):
    __doc__ = (
        "Binary / multilabel L or full L loss; see :func:`losslab.functional.binary_l_loss`.\n\n"
        "    A drop-in for ``nn.BCEWithLogitsLoss``.\n" + _BINARY_SHAPE
    )
    function = staticmethod(AF.binary_l_loss)


class ParametricMLoss(FunctionalLoss):
    __doc__ = (
        "Parametric M loss ``y (1/p^alpha - 1)``; see\n"
        "    :func:`losslab.functional.parametric_m_loss`.\n" + _MULTICLASS_SHAPE
    )
    function = staticmethod(AF.parametric_m_loss)
    option_checks: ClassVar[OptionChecks] = {"alpha": AF.check_parametric_alpha}

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        from_logits: bool = True,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__(
            alpha=alpha, from_logits=from_logits, weight=weight, ignore_index=ignore_index,
            reduction=reduction, eps=eps,
        )


class BinaryParametricMLoss(FunctionalLoss):
    __doc__ = (
        "Binary parametric M loss; see :func:`losslab.functional.binary_parametric_m_loss`.\n"
        + _BINARY_SHAPE
    )
    function = staticmethod(AF.binary_parametric_m_loss)
    option_checks: ClassVar[OptionChecks] = {"alpha": AF.check_parametric_alpha}

    def __init__(
        self,
        *,
        alpha: float = 2.0,
        from_logits: bool = True,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__(
            alpha=alpha, from_logits=from_logits, pos_weight=pos_weight, weight=weight,
            reduction=reduction, eps=eps,
        )


class _MulticlassExtra(FunctionalLoss):
    def __init__(
        self,
        *,
        from_logits: bool = True,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__(
            from_logits=from_logits, weight=weight, ignore_index=ignore_index,
            reduction=reduction, eps=eps,
        )


class _BinaryExtra(FunctionalLoss):
    def __init__(
        self,
        *,
        from_logits: bool = True,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> None:
        super().__init__(
            from_logits=from_logits, pos_weight=pos_weight, weight=weight,
            reduction=reduction, eps=eps,
        )


class ParabolicLoss(_MulticlassExtra):
    __doc__ = "Parabolic loss ``y (1 - p^2)`` (not convex).\n" + _MULTICLASS_SHAPE
    function = staticmethod(AF.parabolic_loss)


class CircleLoss(_MulticlassExtra):
    __doc__ = "Circle loss ``y sqrt(1 - p^2)`` (not convex).\n" + _MULTICLASS_SHAPE
    function = staticmethod(AF.circle_loss)


class CosineLoss(_MulticlassExtra):
    __doc__ = "Cosine loss ``y cos(pi p / 2)`` (not convex).\n" + _MULTICLASS_SHAPE
    function = staticmethod(AF.cosine_loss)


class BinaryParabolicLoss(_BinaryExtra):
    __doc__ = "Binary parabolic loss ``y (1 - p^2)`` (not convex).\n" + _BINARY_SHAPE
    function = staticmethod(AF.binary_parabolic_loss)


class BinaryCircleLoss(_BinaryExtra):
    __doc__ = "Binary circle loss ``y sqrt(1 - p^2)`` (not convex).\n" + _BINARY_SHAPE
    function = staticmethod(AF.binary_circle_loss)


class BinaryCosineLoss(_BinaryExtra):
    __doc__ = "Binary cosine loss ``y cos(pi p / 2)`` (not convex).\n" + _BINARY_SHAPE
    function = staticmethod(AF.binary_cosine_loss)
