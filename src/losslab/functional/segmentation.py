"""Segmentation losses: soft Dice from logits (binary, multiclass and multilabel)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from losslab._validation import (
    check_bool,
    check_choice,
    check_class_indices,
    check_floating,
    check_int,
    check_min_dim,
    check_not_float_indices,
    check_number,
    check_reduction,
    check_same_shape,
    check_tensor,
    check_values_in_range,
    check_weight_values,
    compute_dtype,
    reduce,
    validation_enabled,
)

__all__ = ["dice_loss"]

DICE_MODES: tuple[str, ...] = ("binary", "multiclass", "multilabel")


def _check_smooth(name: str, value: object) -> float:
    return check_number(name, value, low=0.0)


def _check_probability_target(target: Tensor, keep: Tensor | None, what: str) -> None:
    """Binary / soft targets in [0, 1] wherever they are not ignored."""
    if target.is_complex():
        raise TypeError(f"target: expected a real tensor, got dtype {target.dtype}")
    if not validation_enabled() or target.numel() == 0:
        return
    values = target if keep is None else target[keep]
    check_values_in_range("target", values, 0.0, 1.0, what)


def _binary_or_multilabel(
    input: Tensor, target: Tensor, ignore_index: int | None, from_logits: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    target = check_tensor("target", target)
    check_same_shape("input", input, "target", target)
    keep = None if ignore_index is None else target != ignore_index
    _check_probability_target(target, keep, "binary targets (or soft labels)")
    prob = torch.sigmoid(input) if from_logits else input
    truth = target.to(input.dtype)
    if keep is not None:
        truth = torch.where(keep, truth, 0.0)
    return prob, truth, keep


def _multiclass(
    input: Tensor, target: Tensor, ignore_index: int | None, from_logits: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    target = check_tensor("target", target)
    num_classes = input.shape[1]
    prob = torch.softmax(input, 1) if from_logits else input
    expected = input.shape[:1] + input.shape[2:]
    check_not_float_indices(input, target, expected)
    if target.is_floating_point():
        if ignore_index is not None:
            raise ValueError(
                "ignore_index: needs class-index targets (integer, shape (N, d1..dk)); got "
                f"one-hot / probability targets of shape {tuple(target.shape)}"
            )
        check_same_shape("input", input, "target", target)
        check_values_in_range("target", target, 0.0, 1.0, "one-hot or class probabilities")
        return prob, target.to(input.dtype), None
    if target.shape != expected:
        raise ValueError(
            f"target: expected class indices of shape {tuple(expected)} for input of shape "
            f"{tuple(input.shape)} (or one-hot targets of the input's shape), got {tuple(target.shape)}"
        )
    target = check_class_indices("target", target, num_classes, ignore_index)
    keep = None if ignore_index is None else target != ignore_index
    index = target if keep is None else torch.where(keep, target, 0)
    truth = torch.zeros_like(prob).scatter(1, index.unsqueeze(1), 1.0)
    if keep is not None:
        # an ignored pixel counts for no class: neither its prediction nor its label
        keep = keep.unsqueeze(1).expand_as(prob)
        truth = torch.where(keep, truth, 0.0)
    return prob, truth, keep


def dice_loss(
    input: Tensor,
    target: Tensor,
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
) -> Tensor:
    r"""Soft Dice loss from logits (Milletari et al. 2016), per sample and class.

    .. math::
        \ell_{n,c} = 1 - \frac{2 \sum_i p_i g_i + s_{nr}}{\sum_i p_i^2 + \sum_i g_i^2 + s_{dr}}
        \quad\text{(squared_denominator=True, the squared form of Milletari et al.)}, \qquad
        \ell_{n,c} = 1 - \frac{2 \sum_i p_i g_i + s_{nr}}{\sum_i p_i + \sum_i g_i + s_{dr}}

    The sums run over the spatial positions ``i`` of sample ``n`` and class ``c`` (and over
    the batch too when ``batch=True``). A perfect prediction gives 0 (when
    ``smooth_nr == smooth_dr``); for hard labels the two forms coincide with the Dice
    coefficient. Modes:

    * ``"binary"``: ``input (N, *)`` logits, ``p = sigmoid``; ``target`` of the same shape in
      [0, 1]; one Dice per sample (all non-batch positions pooled).
    * ``"multilabel"``: ``input (N, C, *)``, ``p = sigmoid`` per element; ``target (N, C, *)``
      in [0, 1]; one Dice per sample and class.
    * ``"multiclass"``: ``input (N, C, *)``, ``p = softmax`` over dim 1; ``target`` class
      indices ``(N, *)`` or one-hot / probabilities ``(N, C, *)``.

    MONAI mapping (``monai.losses.DiceLoss``; equal to float precision): ``squared_denominator``
    = ``squared_pred``; ``smooth_nr``, ``smooth_dr``, ``include_background``, ``batch`` the
    same (defaults 1e-5, 1e-5, True, False); multilabel = ``sigmoid=True``; multiclass =
    ``softmax=True`` (class indices: ``to_onehot_y=True`` with a ``(N, 1, *)`` target);
    binary = ``sigmoid=True`` with one channel; ``reduction="none"`` returns ``(N, C)``
    (MONAI: ``(N, C, 1, ..., 1)``). losslab's default is the squared form (V-Net's);
    MONAI's is the plain sum (``squared_pred=False``). ``ignore_index`` masks positions out
    of the prediction and the label of every class, as MONAI does for label-encoded targets.
    ``weight`` is MONAI's ``weight``: each class's Dice term is multiplied by its weight
    before the reduction, and ``"mean"`` stays the plain mean over the (sample, class) terms
    (not a weighted mean), so weights of 1 change nothing and a weight of 0 drops a class.

    Args:
        input: logits (probabilities with ``from_logits=False``), see the modes above.
        target: see the modes above.
        mode: ``"binary"``, ``"multiclass"`` (default) or ``"multilabel"``.
        squared_denominator: ``sum p^2 + sum g^2`` (True, default) or ``sum p + sum g``.
        smooth_nr: added to the numerator ``2 sum p g``.
        smooth_dr: added to the denominator.
        include_background: keep class 0 (multiclass / multilabel only).
        batch: pool the sums over the batch (one Dice per class) instead of per sample.
        ignore_index: a target value marking positions to leave out (class indices in
            multiclass mode; a label value in binary / multilabel mode). ``None``: none.
        weight: per-class factors ``(C,)``, >= 0, one per class kept (without class 0 when
            ``include_background=False``), multiclass / multilabel only. ``None``: all 1.
        from_logits: ``input`` holds logits; False: probabilities in [0, 1].
        reduction: ``"mean"`` over all (sample, class) Dice terms, ``"sum"`` or ``"none"``.

    Returns:
        A scalar; with ``reduction="none"`` shape ``(N, C)`` (multiclass / multilabel),
        ``(N,)`` (binary), or ``(C,)`` / ``()`` with ``batch=True``.

    References:
        Milletari, Navab, Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric
        Medical Image Segmentation", 3DV 2016, arXiv:1606.04797.
    """
    check_reduction(reduction)
    check_choice("mode", mode, DICE_MODES)
    smooth_nr = _check_smooth("smooth_nr", smooth_nr)
    smooth_dr = _check_smooth("smooth_dr", smooth_dr)
    for name, flag in (("squared_denominator", squared_denominator), ("include_background", include_background),
                       ("batch", batch), ("from_logits", from_logits)):
        check_bool(name, flag)
    check_int("ignore_index", ignore_index, optional=True)
    input = check_floating("input", input)
    input = input.to(compute_dtype(input))
    if not from_logits:
        check_values_in_range("input", input, 0.0, 1.0, "probabilities (from_logits=False)")

    if mode == "binary":
        check_min_dim("input", input, 1, "(N, *)")
        if not include_background:
            raise ValueError("include_background: has no meaning in binary mode (no class 0 channel); got False")
        prob, truth, keep = _binary_or_multilabel(input, target, ignore_index, from_logits)
        # one "class": (N, 1, positions)
        # (N, 1, positions), written out so that an empty batch (N = 0) reshapes too
        flat = (prob.shape[0], 1, math.prod(prob.shape[1:]))
        prob, truth = prob.reshape(flat), truth.reshape(flat)
        keep = None if keep is None else keep.reshape(flat)
    else:
        check_min_dim("input", input, 2, "(N, C, d1..dk)")
        if mode == "multilabel":
            prob, truth, keep = _binary_or_multilabel(input, target, ignore_index, from_logits)
        else:
            prob, truth, keep = _multiclass(input, target, ignore_index, from_logits)
        if not include_background:
            if input.shape[1] < 2:
                raise ValueError(
                    f"include_background: False needs at least 2 classes, got input of shape {tuple(input.shape)}"
                )
            prob, truth = prob[:, 1:], truth[:, 1:]
            keep = None if keep is None else keep[:, 1:]
        flat = (prob.shape[0], prob.shape[1], math.prod(prob.shape[2:]))
        prob, truth = prob.reshape(flat), truth.reshape(flat)
        keep = None if keep is None else keep.reshape(flat)
    if keep is not None:
        prob = torch.where(keep, prob, 0.0)
    weight = _check_dice_weight(weight, mode, prob)

    dims = (0, 2) if batch else (2,)
    intersection = (prob * truth).sum(dims)
    if squared_denominator:
        denominator = prob.square().sum(dims) + truth.square().sum(dims)
    else:
        denominator = prob.sum(dims) + truth.sum(dims)
    loss = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)
    if weight is not None:
        loss = loss * weight
    if mode == "binary":
        loss = loss.squeeze(-1)
    return reduce(loss, reduction)


def _check_dice_weight(weight: Tensor | None, mode: str, prob: Tensor) -> Tensor | None:
    """Per-class Dice weights ``(C,)`` for ``prob`` of shape ``(N, C, positions)``."""
    if weight is None:
        return None
    weight = check_floating("weight", weight)
    if mode == "binary":
        raise ValueError("weight: per-class weights need a class dim; binary mode has one Dice per "
                         "sample (use multilabel mode with C channels)")
    classes = prob.shape[1]
    if weight.shape != (classes,):
        raise ValueError(
            f"weight: expected one weight per class kept, shape ({classes},) (without class 0 when "
            f"include_background=False), got {tuple(weight.shape)}"
        )
    check_weight_values("weight", weight, "class weights")
    return weight.to(device=prob.device, dtype=prob.dtype)
