"""Margin losses on pairs of scores (the margin ranking loss).

The embedding losses (contrastive, triplet, InfoNCE, ArcFace, GE2E, multiple negatives
ranking) live in :mod:`losslab.functional.embedding`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from losslab._validation import (
    check_floating,
    check_number,
    check_reduction,
    check_same_shape,
    check_tensor,
    compute_dtype,
    reduce,
    validation_enabled,
)

__all__ = ["margin_ranking_loss"]


def _check_ranking_target(target: object, ref: Tensor) -> Tensor:
    """Labels in {-1, +1} (integer or floating) as a tensor of ``ref``'s dtype."""
    target = check_tensor("target", target)
    check_same_shape("input1", ref, "target", target)
    if target.dtype == torch.bool or target.is_complex():
        raise TypeError(
            f"target: expected labels in {{-1, +1}} (integer or floating), got dtype {target.dtype}"
        )
    if validation_enabled() and target.numel() > 0:
        # Every |t| is 1 iff min |t| = max |t| = 1 (NaN fails): one elementwise pass and one
        # read-only reduction; the boolean mask is built only to word the error.
        smallest, largest = torch.aminmax(target.abs())
        if smallest.item() != 1 or largest.item() != 1:
            bad = target.abs() != 1
            first = target[bad].flatten()[0].item()
            raise ValueError(
                f"target: expected labels in {{-1, +1}} (1: input1 should rank higher), got "
                f"{first!r} ({int(bad.sum())} of {target.numel()} entries outside)"
            )
    return target.to(ref.dtype)


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    *,
    margin: float = 0.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Margin ranking loss: ``F.margin_ranking_loss`` semantics, without broadcasting.

    .. math:: \ell = \max(0,\; -y\,(x_1 - x_2) + m), \qquad y \in \{-1, +1\}

    ``y = 1`` says ``input1`` should rank higher than ``input2`` by at least ``margin``;
    ``y = -1`` the reverse. Unlike torch, ``input2`` and ``target`` must have ``input1``'s
    shape (torch broadcasts them) and labels other than ±1 are rejected (torch computes with
    any value). float16/bfloat16 inputs are computed in float32.

    Args:
        input1: scores, any shape.
        input2: scores of the same shape.
        target: labels of the same shape, values in {-1, +1}.
        margin: ``m``, default 0 (torch's).
        reduction: ``"mean"`` over all elements, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the inputs' shape with ``reduction="none"``.

    References:
        Herbrich, Graepel, Obermayer, "Large Margin Rank Boundaries for Ordinal Regression",
        Advances in Large Margin Classifiers, 2000; torch.nn.MarginRankingLoss.
    """
    check_reduction(reduction)
    margin = check_number("margin", margin)
    input1 = check_floating("input1", input1)
    input2 = check_floating("input2", input2)
    check_same_shape("input1", input1, "input2", input2)
    dtype = torch.promote_types(compute_dtype(input1), compute_dtype(input2))
    input1, input2 = input1.to(dtype), input2.to(dtype)
    sign = _check_ranking_target(target, input1)
    # y (x2 - x1) + m, updated in place: a scalar add has no backward pass of its own
    loss = (sign * (input2 - input1)).add_(margin).clamp_min_(0.0)
    return reduce(loss, reduction)
