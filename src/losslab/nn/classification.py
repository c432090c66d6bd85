"""Modules for the classification catalogue (entries over torch, focal, hinge and poly losses)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from torch import Tensor

from losslab._validation import check_choice, check_reduction
from losslab.functional import classification as CF
from losslab.nn._base import FunctionalLoss, OptionChecks

__all__ = [
    "BCEWithLogitsLoss",
    "BinaryHingeLoss",
    "CrossEntropyLoss",
    "KLDivLoss",
    "MulticlassHingeLoss",
    "PolyLoss",
    "SigmoidFocalLoss",
    "SoftmaxFocalLoss",
]

_MULTICLASS_SHAPE = """
    Shape:
        - Input: ``(N, C)``, ``(C,)`` or ``(N, C, d1, ..., dk)`` logits.
        - Target: class indices ``(N)``, ``()`` or ``(N, d1, ..., dk)`` with values in
          ``[0, C)`` (or ``ignore_index``); or class probabilities of the input's shape.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)``, ``()`` or
          ``(N, d1, ..., dk)`` for ``"none"``.
"""


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


class KLDivLoss(FunctionalLoss):
    """KL divergence ``KL(target || exp(input))``; see :func:`losslab.functional.kl_div`.

    Default reduction ``"batchmean"`` (torch's default is ``"mean"``; see the function).

    Shape:
        - Input: ``(*)`` log-probabilities.
        - Target: ``(*)``, the input's shape: probabilities (log-probabilities with
          ``log_target=True``).
        - Output: a scalar for ``"batchmean"``, ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
    """

    function = staticmethod(CF.kl_div)
    option_checks: ClassVar[OptionChecks] = {"reduction": lambda name, value: check_reduction(value, allowed=CF.KL_REDUCTIONS)}

    def __init__(self, *, reduction: str = "batchmean", log_target: bool = False) -> None:
        super().__init__(reduction=reduction, log_target=log_target)


class BinaryHingeLoss(FunctionalLoss):
    """Binary hinge ``max(0, m - t z)`` (squared with ``squared=True``).

    See :func:`losslab.functional.binary_hinge_loss`; labels in {-1, +1} or {0, 1}.

    Shape:
        - Input: ``(*)`` scores (logits).
        - Target: ``(*)``, the input's shape, labels in {-1, +1} or {0, 1} (any dtype).
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
    """

    function = staticmethod(CF.binary_hinge_loss)

    def __init__(self, *, margin: float = 1.0, squared: bool = False, reduction: str = "mean") -> None:
        super().__init__(margin=margin, squared=squared, reduction=reduction)


class MulticlassHingeLoss(FunctionalLoss):
    """Multiclass SVM hinge: Weston–Watkins (``nn.MultiMarginLoss``) or Crammer–Singer.

    See :func:`losslab.functional.multiclass_hinge_loss`.

    Shape:
        - Input: ``(N, C)`` or ``(C,)`` scores.
        - Target: class indices ``(N)`` or ``()``, values in ``[0, C)`` (or ``ignore_index``).
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` or ``()`` for ``"none"``.
    """

    function = staticmethod(CF.multiclass_hinge_loss)
    option_checks: ClassVar[OptionChecks] = {"kind": lambda name, value: check_choice(name, value, CF.HINGE_KINDS),
                     "p": CF.check_hinge_power}

    def __init__(
        self,
        *,
        kind: str = "weston_watkins",
        p: int = 1,
        margin: float = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            kind=kind, p=p, margin=margin, weight=weight, ignore_index=ignore_index,
            reduction=reduction,
        )


class SigmoidFocalLoss(FunctionalLoss):
    """Sigmoid focal loss with torchvision's semantics (alpha=0.25, gamma=2), in log space.

    See :func:`losslab.functional.sigmoid_focal_loss`; a negative ``alpha`` disables it.

    Shape:
        - Input: ``(*)`` logits.
        - Target: ``(*)``, the input's shape, floating, values in [0, 1].
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(*)`` for ``"none"``.
    """

    function = staticmethod(CF.sigmoid_focal_loss)
    option_checks: ClassVar[OptionChecks] = {"alpha": CF.check_sigmoid_focal_alpha}

    def __init__(self, *, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "mean") -> None:
        super().__init__(alpha=alpha, gamma=gamma, reduction=reduction)


class SoftmaxFocalLoss(FunctionalLoss):
    __doc__ = (
        "Multiclass focal loss, a drop-in for ``nn.CrossEntropyLoss``; see\n"
        "    :func:`losslab.functional.softmax_focal_loss` (``alpha`` vs ``weight``).\n"
        + _MULTICLASS_SHAPE
    )
    function = staticmethod(CF.softmax_focal_loss)
    option_checks: ClassVar[OptionChecks] = {"alpha": CF.check_softmax_focal_alpha}

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | Tensor | None = None,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            gamma=gamma, alpha=alpha, weight=weight, ignore_index=ignore_index, reduction=reduction
        )


class PolyLoss(FunctionalLoss):
    __doc__ = (
        "PolyLoss: Poly-1 ``CE + eps (1 - p_t)`` (default eps 1.0) or Poly-N with a list; see\n"
        "    :func:`losslab.functional.poly_loss`. A drop-in for ``nn.CrossEntropyLoss``.\n"
        + _MULTICLASS_SHAPE
    )
    function = staticmethod(CF.poly_loss)
    option_checks: ClassVar[OptionChecks] = {"epsilon": CF.check_poly_epsilon}

    def __init__(
        self,
        *,
        epsilon: float | Sequence[float] = 1.0,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            epsilon=epsilon, weight=weight, ignore_index=ignore_index, reduction=reduction,
            label_smoothing=label_smoothing,
        )
