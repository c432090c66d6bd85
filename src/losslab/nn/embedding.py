"""Modules for the embedding / metric-learning losses of :mod:`losslab.functional.embedding`."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab._validation import check_bool, check_number, check_reduction, compute_dtype
from losslab.distances import check_metric
from losslab.functional import embedding as EF
from losslab.nn._base import FunctionalLoss, OptionChecks


def _non_negative(name: str, value: object) -> float:
    return check_number(name, value, low=0.0)

__all__ = [
    "ArcFaceLoss",
    "BatchAllTripletLoss",
    "BatchHardTripletLoss",
    "BatchTripletLoss",
    "ContrastiveLoss",
    "GE2ELoss",
    "InfoNCELoss",
    "MultipleNegativesRankingLoss",
    "NTXentLoss",
    "TripletMarginLoss",
]


class ContrastiveLoss(FunctionalLoss):
    """Contrastive loss of Hadsell et al. (2006); see :func:`losslab.functional.contrastive_loss`.

    Hadsell et al.'s convention by default: label 0 marks a SIMILAR pair; ``similar_label=1`` for
    the label=1-similar convention (sentence-transformers').

    Shape:
        - Input1: ``(N, D)`` or ``(D,)`` embeddings.
        - Input2: ``(N, D)`` or ``(D,)``, the same shape.
        - Target: ``(N)`` or ``()``: pair labels 0 / 1.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` or ``()`` for ``"none"``.
    """

    function = staticmethod(EF.contrastive_loss)
    option_checks: ClassVar[OptionChecks] = {
        "margin": lambda name, value: check_number(name, value, low=0.0, low_open=True),
        "similar_label": EF.check_similar_label,
    }

    def __init__(
        self,
        *,
        margin: float = 1.0,
        distance: str = "euclidean",
        similar_label: int = 0,
        squared: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            margin=margin, distance=distance, similar_label=similar_label, squared=squared,
            reduction=reduction,
        )

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        return EF.contrastive_loss(input1, input2, target, **self.options())


class TripletMarginLoss(FunctionalLoss):
    """Triplet margin loss, ``nn.TripletMarginLoss`` semantics; see
    :func:`losslab.functional.triplet_margin_loss`.

    Shape:
        - Anchor: ``(N, D)`` or ``(D,)``.
        - Positive: the anchor's shape.
        - Negative: the anchor's shape.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` or ``()`` for ``"none"``.
    """

    function = staticmethod(EF.triplet_margin_loss)
    option_checks: ClassVar[OptionChecks] = {"margin": _non_negative, "eps": _non_negative,
                     "p": lambda name, value: check_number(name, value, low=0.0, low_open=True, finite=False)}

    def __init__(
        self,
        *,
        margin: float = 1.0,
        p: float = 2.0,
        eps: float = 1e-6,
        swap: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:  # type: ignore[override]
        return EF.triplet_margin_loss(anchor, positive, negative, **self.options())


class BatchTripletLoss(FunctionalLoss):
    """Triplet loss with online batch-hard or batch-all mining from labels; see
    :func:`losslab.functional.batch_triplet_loss`.

    Shape:
        - Embeddings: ``(N, D)``.
        - Labels: ``(N)`` integer class labels.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` (per anchor) for ``"none"``.
    """

    function = staticmethod(EF.batch_triplet_loss)
    option_checks: ClassVar[OptionChecks] = {"margin": _non_negative}

    def __init__(
        self,
        *,
        mining: str = "hard",
        margin: float = 1.0,
        distance: str = "euclidean",
        soft_margin: bool = False,
        average: str = "nonzero",
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            mining=mining, margin=margin, distance=distance, soft_margin=soft_margin,
            average=average, reduction=reduction, gather_across_ranks=gather_across_ranks,
        )

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:  # type: ignore[override]
        return EF.batch_triplet_loss(embeddings, labels, **self.options())


class BatchHardTripletLoss(BatchTripletLoss):
    """Batch-hard triplet loss (Hermans et al. 2017): :class:`BatchTripletLoss` with ``mining="hard"``.

    Shape:
        - Embeddings: ``(N, D)``.
        - Labels: ``(N)`` integer class labels.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` (per anchor) for ``"none"``.
    """

    def __init__(
        self,
        *,
        margin: float = 1.0,
        distance: str = "euclidean",
        soft_margin: bool = False,
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            mining="hard", margin=margin, distance=distance, soft_margin=soft_margin,
            reduction=reduction, gather_across_ranks=gather_across_ranks,
        )


class BatchAllTripletLoss(BatchTripletLoss):
    """Batch-all triplet loss (Hermans et al. 2017): :class:`BatchTripletLoss` with ``mining="all"``.

    Shape:
        - Embeddings: ``(N, D)``.
        - Labels: ``(N)`` integer class labels.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` (per anchor) for ``"none"``.
    """

    def __init__(
        self,
        *,
        margin: float = 1.0,
        distance: str = "euclidean",
        soft_margin: bool = False,
        average: str = "nonzero",
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            mining="all", margin=margin, distance=distance, soft_margin=soft_margin,
            average=average, reduction=reduction, gather_across_ranks=gather_across_ranks,
        )


class InfoNCELoss(FunctionalLoss):
    """InfoNCE with in-batch or explicit negatives; see :func:`losslab.functional.info_nce_loss`.

    Shape:
        - Query: ``(N, D)``.
        - Positive_key: ``(N, D)``.
        - Negative_keys: None, ``(M, D)`` (``negative_mode="unpaired"``) or ``(N, M, D)``
          (``"paired"``).
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` for ``"none"``.
    """

    function = staticmethod(EF.info_nce_loss)

    def __init__(
        self,
        *,
        temperature: float = 0.1,
        negative_mode: str = "unpaired",
        similarity: str = "cosine",
        symmetric: bool = False,
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            temperature=temperature, negative_mode=negative_mode, similarity=similarity,
            symmetric=symmetric, reduction=reduction, gather_across_ranks=gather_across_ranks,
        )

    def forward(  # type: ignore[override]
        self, query: Tensor, positive_key: Tensor, negative_keys: Tensor | None = None
    ) -> Tensor:
        return EF.info_nce_loss(query, positive_key, negative_keys, **self.options())


class NTXentLoss(FunctionalLoss):
    """NT-Xent (SimCLR) on two views; see :func:`losslab.functional.nt_xent_loss`.

    Shape:
        - View1: ``(N, D)``.
        - View2: ``(N, D)``.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(2N)`` for ``"none"``.
    """

    function = staticmethod(EF.nt_xent_loss)

    def __init__(
        self,
        *,
        temperature: float = 0.1,
        similarity: str = "cosine",
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            temperature=temperature, similarity=similarity, reduction=reduction,
            gather_across_ranks=gather_across_ranks,
        )

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:  # type: ignore[override]
        return EF.nt_xent_loss(view1, view2, **self.options())


class MultipleNegativesRankingLoss(FunctionalLoss):
    """Multiple negatives ranking loss, sentence-transformers semantics; see
    :func:`losslab.functional.multiple_negatives_ranking_loss`.

    Shape:
        - Anchors: ``(B, D)``.
        - Positives: ``(B, D)``.
        - Negatives: None, ``(B, D)`` or ``(B, K, D)`` hard negatives.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(B)`` for ``"none"``.
    """

    function = staticmethod(EF.multiple_negatives_ranking_loss)

    def __init__(
        self,
        *,
        scale: float = 20.0,
        similarity: str = "cosine",
        symmetric: bool = False,
        reduction: str = "mean",
        gather_across_ranks: bool = False,
    ) -> None:
        super().__init__(
            scale=scale, similarity=similarity, symmetric=symmetric, reduction=reduction,
            gather_across_ranks=gather_across_ranks,
        )

    def forward(  # type: ignore[override]
        self, anchors: Tensor, positives: Tensor, negatives: Tensor | None = None
    ) -> Tensor:
        return EF.multiple_negatives_ranking_loss(anchors, positives, negatives, **self.options())


class ArcFaceLoss(nn.Module):
    """ArcFace (additive angular margin) loss; owns the ``(num_classes, embedding_dim)`` class
    centres as a Parameter. See :func:`losslab.functional.arcface_loss`.

    Computed in float32 under autocast and for half-precision embeddings.

    Args:
        num_classes: C.
        embedding_dim: D.
        scale: s, default 64.
        margin: m in radians, default 0.5.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Attributes:
        centers: ``(C, D)`` Parameter, Xavier-uniform initialised (only directions matter).

    Shape:
        - Embeddings: ``(N, D)``.
        - Labels: ``(N)`` class indices in ``[0, C)``.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N)`` for ``"none"``.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_dim: int,
        *,
        scale: float = 64.0,
        margin: float = 0.5,
        reduction: str = "mean",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        # Check the hyperparameters now, not at the first forward.
        EF.arcface_loss(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.ones(1, 1),
                        scale=scale, margin=margin, reduction=reduction)
        self.num_classes, self.embedding_dim = num_classes, embedding_dim
        self.scale, self.margin, self.reduction = scale, margin, reduction
        self.centers = nn.Parameter(torch.empty(num_classes, embedding_dim, device=device, dtype=dtype))
        nn.init.xavier_uniform_(self.centers)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return EF.arcface_loss(
            embeddings, labels, self.centers, scale=self.scale, margin=self.margin,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, embedding_dim={self.embedding_dim}, "
                f"scale={self.scale}, margin={self.margin}, reduction={self.reduction!r}")


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))  # log(exp(value) - 1), stable for large values


class GE2ELoss(nn.Module):
    """GE2E loss with learnable similarity scale and bias; see :func:`losslab.functional.ge2e_loss`.

    ``w`` is kept positive for real by a reparametrisation: the Parameter is ``w_raw`` and
    ``w = softplus(w_raw) + min_w`` (so gradient steps can never make it 0 or negative, and
    its gradient is never cut off as a clamp would). ``b`` is a plain Parameter. They start at
    ``w = 10``, ``b = -5`` as in the paper.

    Args:
        init_w: initial w, > min_w, default 10.
        init_b: initial b, default -5.
        variant: ``"softmax"`` or ``"contrast"``.
        reduction: ``"mean"`` | ``"sum"`` (the paper's) | ``"none"``.
        gather_across_ranks: use every rank's speakers (see :mod:`losslab.distributed`).
        min_w: the floor of w, default 1e-6.

    Shape:
        - Embeddings: ``(N, M, D)``: N >= 2 speakers, M >= 2 utterances each.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(N, M)`` for ``"none"``.
    """

    def __init__(
        self,
        *,
        init_w: float = 10.0,
        init_b: float = -5.0,
        variant: str = "softmax",
        reduction: str = "mean",
        gather_across_ranks: bool = False,
        min_w: float = 1e-6,
    ) -> None:
        super().__init__()
        if not isinstance(min_w, (int, float)) or isinstance(min_w, bool) or not min_w >= 0:
            raise ValueError(f"min_w: expected a number >= 0, got {min_w!r}")
        if not isinstance(init_w, (int, float)) or isinstance(init_w, bool) or not init_w > min_w:
            raise ValueError(f"init_w: expected a number > min_w={min_w:g}, got {init_w!r}")
        if not isinstance(init_b, (int, float)) or isinstance(init_b, bool) or not math.isfinite(init_b):
            raise ValueError(f"init_b: expected a finite number, got {init_b!r}")
        self.variant = check_metric("variant", variant, ("softmax", "contrast"))
        self.reduction = check_reduction(reduction)
        if not isinstance(gather_across_ranks, bool):
            raise TypeError(f"gather_across_ranks: expected True or False, got {gather_across_ranks!r}")
        self.gather_across_ranks = check_bool("gather_across_ranks", gather_across_ranks)
        self.min_w = float(min_w)
        self.w_raw = nn.Parameter(torch.tensor(_inverse_softplus(init_w - self.min_w)))
        self.b = nn.Parameter(torch.tensor(float(init_b)))

    @property
    def w(self) -> Tensor:
        """The similarity scale, ``softplus(w_raw) + min_w`` (always > 0)."""
        return F.softplus(self.w_raw) + self.min_w

    def forward(self, embeddings: Tensor) -> Tensor:
        dtype = compute_dtype(embeddings) if isinstance(embeddings, Tensor) and embeddings.is_floating_point() else self.b.dtype
        return EF.ge2e_loss(
            embeddings, w=self.w.to(dtype), b=self.b.to(dtype),
            variant=self.variant, reduction=self.reduction,
            gather_across_ranks=self.gather_across_ranks,
        )

    def extra_repr(self) -> str:
        return (f"variant={self.variant!r}, reduction={self.reduction!r}, "
                f"gather_across_ranks={self.gather_across_ranks!r}, min_w={self.min_w!r}, "
                f"w={float(self.w.detach()):.4g}, b={float(self.b.detach()):.4g}")
