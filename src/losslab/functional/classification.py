"""Classification losses over logits: documented entries over torch, hinge, focal and poly losses.

``cross_entropy``, ``binary_cross_entropy_with_logits`` and ``kl_div`` call torch after
losslab's argument checks, so that every comparison can name them through the registry. The
standard classification losses follow: binary hinge and squared hinge, the multiclass SVM
hinge (Weston–Watkins as ``F.multi_margin_loss``, and Crammer–Singer), sigmoid and softmax
focal losses, and PolyLoss.

The losses written here (not the torch entries) compute float16/bfloat16 inputs in float32
and return float32, as autocast does for torch's losses. Focal and poly terms are computed
from ``log p`` and ``log(1 - p)``, so that saturated logits give finite values and gradients
for every ``gamma >= 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._validation import (
    as_class_indices,
    check_bool,
    check_broadcast_weight,
    check_choice,
    check_class_indices,
    check_class_weight,
    check_floating,
    check_int,
    check_multiclass_target,
    check_number,
    check_reduction,
    check_same_shape,
    check_tensor,
    check_values_in_range,
    check_weight_values,
    compute_dtype,
    empty_reduction,
    reduce,
    validation_enabled,
)
from losslab.functional import _fused
from losslab.functional._formulas import focal_modulation
from losslab.functional._softmax import log_softmax, softmax
from losslab.functional.alternate import softmax_log_pair

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_hinge_loss",
    "cross_entropy",
    "kl_div",
    "multiclass_hinge_loss",
    "poly_loss",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]

KL_REDUCTIONS: tuple[str, ...] = ("mean", "batchmean", "sum", "none")
HINGE_KINDS: tuple[str, ...] = ("weston_watkins", "crammer_singer")


def cross_entropy(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy over logits: ``F.cross_entropy`` with losslab's argument checks.

    .. math:: \ell_n = -\sum_c w_c y_c \log \operatorname{softmax}(z_n)_c

    Args:
        input: logits ``(N, C, d1..dk)`` or ``(C,)``.
        target: class indices ``(N, d1..dk)`` or probabilities of the input's shape.
        weight: per-class rescaling ``(C,)``, cast to the input's dtype; with class indices
            ``"mean"`` divides by the summed weight of the targets.
        ignore_index: class index to skip ("mean" is NaN when every target is skipped).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: in [0, 1].

    Returns:
        A scalar, or ``(N, d1..dk)`` with ``reduction="none"``.
    """
    check_reduction(reduction)
    input = check_floating("input", input)
    target = check_multiclass_target(input, target, ignore_index)
    label_smoothing = check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    # a weight of another float dtype (or device) is cast to the input's, as every losslab
    # loss with a weight does (torch itself raises on a float64 weight for float32 logits)
    weight = check_class_weight(weight, input.shape[0 if input.dim() == 1 else 1], input)
    return F.cross_entropy(
        input, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing,
    )


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    *,
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary / multilabel cross-entropy over logits: ``F.binary_cross_entropy_with_logits``.

    .. math:: \ell = -w \left[ w_+ y \log \sigma(z) + (1 - y) \log(1 - \sigma(z)) \right]

    Args:
        input: logits, any shape.
        target: the same shape, values in [0, 1].
        weight: elementwise rescaling, broadcast to the input.
        pos_weight: weight of the positive term, broadcast to the input (one per label).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """
    check_reduction(reduction)
    input = check_floating("input", input)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    check_values_in_range("target", target, 0.0, 1.0, "binary targets")
    weight = check_broadcast_weight("weight", weight, input)
    pos_weight = check_broadcast_weight("pos_weight", pos_weight, input)
    return F.binary_cross_entropy_with_logits(
        input, target, weight=weight, pos_weight=pos_weight, reduction=reduction
    )


# --- shared checks -------------------------------------------------------------------------


def _as_compute(input: object) -> Tensor:
    input = check_floating("input", input)
    return input.to(compute_dtype(input))


def _check_sign_target(target: object, input: Tensor) -> Tensor:
    """Binary labels in {-1, +1} or {0, 1} (any real dtype, or bool): 1 is the positive class,
    0 / -1 / False the negative one (see :func:`_fused.sign_of_label`)."""
    target = check_tensor("target", target)
    check_same_shape("input", input, "target", target)
    if target.is_complex():
        raise TypeError(f"target: expected real binary labels, got dtype {target.dtype}")
    if target.dtype == torch.bool:
        return target
    if validation_enabled() and target.numel() > 0 and not _binary_labels_fast(target):
        is_minus, is_zero, is_one = target == -1, target == 0, target == 1
        bad = ~(is_minus | is_zero | is_one)
        if bool(bad.any()):
            first = target[bad].flatten()[0].item()
            raise ValueError(
                f"target: expected binary labels in {{-1, +1}} or {{0, 1}}, got {first!r} "
                f"({int(bad.sum())} of {target.numel()} entries outside)"
            )
        if bool(is_minus.any()) and bool(is_zero.any()):
            raise ValueError(
                "target: expected binary labels in {-1, +1} or in {0, 1}, got a mix of -1 and 0 "
                "(which one is the negative class?)"
            )
    return target


def _binary_labels_fast(target: Tensor) -> bool:
    """Whether ``target`` holds only {0, 1} or only {-1, +1} labels, settled by one ``aminmax``
    read (integer labels) or that and one pass (floats); False means "run the full check",
    which also words the error."""
    smallest, largest = (value.item() for value in torch.aminmax(target))
    if smallest >= 0 and largest <= 1:
        middle, half_width = 0.5, 0.5                    # {0, 1}
    elif smallest == -1 and largest == 1:
        middle, half_width = 0.0, 1.0                    # {-1, +1}
    else:
        return False
    if not target.is_floating_point():
        return middle == 0.5 or not bool((target == 0).any())
    return bool(torch.sub(target, middle).abs_().eq_(half_width).all())


def _check_class_index_target(input: Tensor, target: object, ignore_index: int) -> tuple[Tensor, bool]:
    """Integer class indices of shape ``(N,)`` for input ``(N, C)``, or ``()`` for ``(C,)``.

    Also returns whether every index is known to be a class in ``[0, C)`` (so none equals an
    ``ignore_index`` outside that range): one ``aminmax`` read settles the common case.
    """
    target = check_tensor("target", target)
    check_int("ignore_index", ignore_index)
    if input.dim() not in (1, 2):
        raise ValueError(f"input: expected scores of shape (N, C) or (C,), got shape {tuple(input.shape)}")
    expected = input.shape[:-1]
    num_classes = input.shape[-1]
    all_classes = False
    target = as_class_indices("target", target)
    if validation_enabled() and target.numel() > 0:
        smallest, largest = torch.aminmax(target)
        all_classes = smallest.item() >= 0 and largest.item() < num_classes
    if not all_classes:
        # the general check: ignore_index entries, and the error message
        check_class_indices("target", target, num_classes, ignore_index)
    if target.shape != expected:
        raise ValueError(
            f"target: expected class indices of shape {tuple(expected)} for input of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    return target, all_classes


def _class_view(vector: Tensor, ndim: int) -> Tensor:
    """A per-class vector ``(C,)`` shaped to broadcast against ``(N, C, d1..dk)``."""
    return vector.view((1, -1) + (1,) * (ndim - 2))


def _kept_weight(keep: Tensor, sample_weight: Tensor | None, dtype: torch.dtype) -> Tensor:
    """The ``"mean"`` denominator for class-index targets: the summed weight of the kept
    targets (their count without weights), as ``F.cross_entropy`` divides."""
    if sample_weight is None:
        return keep.sum().to(dtype)
    return torch.where(keep, sample_weight, 0.0).sum()


def _fast_within(tensor: Tensor, low: float, high: float) -> bool:
    """Whether every value lies in [low, high] (NaN: no), in one read pass without temporaries.

    A one-sided bound reads with ``amax``/``amin`` alone; the result is compared as a Python
    float, which saves the small tensor comparisons of the general check.
    """
    if tensor.numel() == 0:
        return True
    if low == -math.inf:
        return tensor.amax().item() <= high
    if high == math.inf:
        return tensor.amin().item() >= low
    smallest, largest = torch.aminmax(tensor)
    return smallest.item() >= low and largest.item() <= high


# --- KL divergence -------------------------------------------------------------------------


def kl_div(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "batchmean",
    log_target: bool = False,
) -> Tensor:
    r"""Kullback–Leibler divergence ``KL(target || exp(input))``: ``F.kl_div`` with checks.

    .. math:: \ell = y \, (\log y - x), \qquad x = \log q \text{ (the model's log-probabilities)}

    ``input`` holds log-probabilities (e.g. ``log_softmax(logits, dim)``), as in torch; the
    argument order is torch's, so ``kl_div(log_q, p)`` is :math:`KL(p \| q)`.

    Args:
        input: log-probabilities, any shape (values <= 0).
        target: probabilities of the input's shape (values in [0, 1]), or log-probabilities
            with ``log_target=True`` (values <= 0).
        reduction: ``"batchmean"`` (default: the sum divided by the batch size ``input.shape[0]``,
            the divergence per sample, which is the mathematical definition), ``"mean"``
            (divides by every element, torch's default, which torch warns about), ``"sum"`` or
            ``"none"``. losslab defaults to ``"batchmean"``; pass ``reduction="mean"`` for
            torch's default value (computed without torch's warning).
        log_target: ``target`` holds log-probabilities.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Kullback and Leibler, "On Information and Sufficiency", Ann. Math. Statist. 1951.
    """
    check_reduction(reduction, allowed=KL_REDUCTIONS)
    input = check_floating("input", input)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    log_target = check_bool("log_target", log_target)
    if validation_enabled():
        # One read of each tensor (torch's kl_div itself makes a few): a one-sided bound needs
        # only amax, and the comparisons run on Python floats (NaN fails them). The full check
        # runs only to word the error.
        if not _fast_within(input, -math.inf, 0.0):
            check_values_in_range("input", input, -math.inf, 0.0, "log-probabilities")
        if log_target:
            if not _fast_within(target, -math.inf, 0.0):
                check_values_in_range("target", target, -math.inf, 0.0, "log-probabilities (log_target=True)")
        elif not _fast_within(target, 0.0, 1.0):
            check_values_in_range("target", target, 0.0, 1.0, "probabilities")
    if reduction == "mean":
        # torch's "mean" (sum over every element): computed here so torch's deprecation
        # warning about "mean" is not raised on every call of a documented choice.
        total = F.kl_div(input, target, reduction="sum", log_target=log_target)
        return total / max(input.numel(), 1)
    return F.kl_div(input, target, reduction=reduction, log_target=log_target)


# --- hinge losses --------------------------------------------------------------------------


def binary_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    margin: float = 1.0,
    squared: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Binary hinge loss (SVM) on a real-valued score, and its squared variant.

    .. math:: \ell = \max(0, m - t z)^{k}, \qquad t \in \{-1, +1\},\ k = 2 \text{ if squared else } 1

    Labels in {0, 1} are mapped to {-1, +1} (0 -> -1), as Keras' ``Hinge`` does; bool labels
    are accepted (False -> -1). A tensor mixing -1 and 0 is rejected as ambiguous.

    Args:
        input: scores ``z`` (logits), any shape.
        target: labels of the input's shape, values in {-1, +1} or {0, 1}.
        margin: ``m`` (1.0 is the standard hinge).
        squared: square the hinge (the L2-SVM loss; differentiable everywhere).
        reduction: ``"mean"`` over all elements, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Cortes and Vapnik, "Support-Vector Networks", Machine Learning 1995.
    """
    check_reduction(reduction)
    margin = check_number("margin", margin)
    squared = check_bool("squared", squared)
    input = _as_compute(input)
    target = _check_sign_target(target, input)
    return _fused.hinge_fused(
        input, target, margin=margin, squared=squared, reduction=reduction,
        reference=lambda z, t: _hinge_formula(z, t, margin, squared, reduction),
    )


def _hinge_formula(input: Tensor, target: Tensor, margin: float, squared: bool, reduction: str) -> Tensor:
    """The binary hinge as a plain formula (autograd differentiates it)."""
    sign = _fused.sign_of_label(target, input.dtype)
    loss = (margin - sign * input).clamp_min(0.0)
    if squared:
        loss = loss.square()
    return reduce(loss, reduction)


def multiclass_hinge_loss(
    input: Tensor,
    target: Tensor,
    *,
    kind: str = "weston_watkins",
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Multiclass SVM hinge loss: Weston–Watkins (``F.multi_margin_loss``) or Crammer–Singer.

    .. math::
        \text{weston\_watkins:}\quad \ell_n = \frac{w_{y}}{C} \sum_{i \ne y}
            \max(0,\, m - z_{y} + z_i)^{p}
        \qquad
        \text{crammer\_singer:}\quad \ell_n = w_{y} \max(0,\, m - z_{y} + \max_{i \ne y} z_i)^{p}

    With ``kind="weston_watkins"`` the value equals ``F.multi_margin_loss`` for every argument
    it accepts. The weight multiplies the powered hinge (``w_y h^p``), which is what torch
    computes (its documentation writes ``(w_y h)^p``). ``p=2`` gives the squared hinge.
    ``ignore_index`` is an extension (torch has none): ignored samples contribute 0 and are
    left out of the ``"mean"`` denominator.

    Args:
        input: scores ``(N, C)`` or ``(C,)``.
        target: class indices ``(N,)`` or ``()``, integer, in ``[0, C)``.
        kind: ``"weston_watkins"`` (sum over the wrong classes, divided by C) or
            ``"crammer_singer"`` (the largest wrong-class violation only, not divided).
        p: 1 (hinge) or 2 (squared hinge).
        margin: ``m``.
        weight: per-class rescaling ``(C,)``, applied through the target class.
        ignore_index: a target value to skip.
        reduction: ``"mean"`` over the non-ignored samples (not weight-normalised, as in
            torch; NaN when every sample is ignored or the batch is empty, as torch's other
            losses give), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(N,)`` / ``()`` with ``reduction="none"``.

    References:
        Weston and Watkins, "Support Vector Machines for Multi-Class Pattern Recognition",
        ESANN 1999. Crammer and Singer, "On the Algorithmic Implementation of Multiclass
        Kernel-based Vector Machines", JMLR 2001.
    """
    check_reduction(reduction)
    kind = check_choice("kind", kind, HINGE_KINDS)
    p = check_hinge_power("p", p)
    margin = check_number("margin", margin)
    input = _as_compute(input)
    target, all_classes = _check_class_index_target(input, target, ignore_index)
    num_classes = input.shape[-1]
    weight = check_class_weight(weight, num_classes, input)
    if target.numel() == 0 and input.dim() == 2:
        # an empty batch: torch's multi_margin_loss returns an uninitialised value for "mean"
        return empty_reduction(input, reduction, target.shape)
    if kind == "weston_watkins":
        nothing_ignored = all_classes and not 0 <= ignore_index < num_classes
        return _weston_watkins(input, target, p=p, margin=margin, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, nothing_ignored=nothing_ignored)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)

    keep = target != ignore_index
    index = torch.where(keep, target, 0).unsqueeze(1)
    true_score = input.gather(1, index)
    is_target = torch.zeros_like(input, dtype=torch.bool).scatter(1, index, True)
    best_other = input.masked_fill(is_target, -math.inf).amax(1, keepdim=True)
    violation = (margin - true_score + best_other).clamp_min(0.0)
    if p == 2:
        violation = violation.square()
    # C = 1 has no wrong class: the violation is max(0, -inf) = 0.
    loss = violation.squeeze(1)
    if weight is not None:
        loss = loss * weight[index.squeeze(1)]
    loss = torch.where(keep, loss, 0.0)
    out = reduce(loss, reduction, weight_sum=_kept_weight(keep, None, loss.dtype) if reduction == "mean" else None)
    return out.squeeze(0) if unbatched and reduction == "none" else out


def _weston_watkins(
    input: Tensor, target: Tensor, *, p: int, margin: float, weight: Tensor | None,
    ignore_index: int, reduction: str, nothing_ignored: bool,
) -> Tensor:
    """Weston–Watkins hinge through ``F.multi_margin_loss`` (this loss by definition, one fused
    kernel forward and backward); losslab adds only the ``ignore_index`` extension around it.

    ``nothing_ignored``: the caller's range check already showed that no target is ignored.
    """
    if nothing_ignored:
        return F.multi_margin_loss(input, target, p=p, margin=margin, weight=weight, reduction=reduction)
    ignored = target == ignore_index
    # Eager: one sync on the (N,) target picks torch's own reduction when nothing is ignored.
    if not torch.compiler.is_compiling() and not bool(ignored.any()):
        return F.multi_margin_loss(input, target, p=p, margin=margin, weight=weight, reduction=reduction)
    loss = F.multi_margin_loss(
        input, target.masked_fill(ignored, 0), p=p, margin=margin, weight=weight, reduction="none"
    )
    loss = loss.masked_fill(ignored, 0.0)
    kept = _kept_weight(ignored.logical_not(), None, loss.dtype) if reduction == "mean" else None
    return reduce(loss, reduction, weight_sum=kept)


# --- focal losses --------------------------------------------------------------------------


def check_hinge_power(name: str, p: object) -> int:
    """The hinge's power ``p``: the int 1 or 2 (the ones torch supports)."""
    if isinstance(p, bool) or not isinstance(p, int) or p not in (1, 2):
        raise ValueError(f"{name}: expected 1 or 2 (only these are supported, as in torch), got {p!r}")
    return p


def _check_gamma(gamma: float) -> float:
    return check_number("gamma", gamma, low=0.0)


def check_sigmoid_focal_alpha(name: str, alpha: object) -> float:
    """The sigmoid focal loss's ``alpha``: a finite number <= 1 (a negative one disables the
    weighting, torchvision's convention)."""
    return check_number(name, alpha, high=1.0)


def check_softmax_focal_alpha(name: str, alpha: object) -> float | Tensor | None:
    """The softmax focal loss's ``alpha``: None, a finite number >= 0, or a floating tensor of
    finite class factors >= 0 (its shape is checked against the classes at the call)."""
    if alpha is None:
        return None
    if isinstance(alpha, Tensor):
        alpha = check_floating(name, alpha)
        check_weight_values(name, alpha, "class factors")
        return alpha
    return check_number(name, alpha, low=0.0)


def sigmoid_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Sigmoid focal loss (Lin et al. 2017) with torchvision's semantics, in log space.

    .. math::
        \ell = -\alpha_t (1 - p_t)^{\gamma} \log p_t, \qquad
        p_t = y p + (1 - y)(1 - p), \quad \alpha_t = y \alpha + (1 - y)(1 - \alpha),
        \quad p = \sigma(z)

    ``-log p_t`` is the binary cross-entropy with logits (for soft targets, the BCE of ``y``),
    exactly as in ``torchvision.ops.sigmoid_focal_loss``. The modulating factor is computed as
    ``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` taken from ``logsigmoid``, so a
    saturated logit (``|z| = 1e4`` in float32) gives a finite loss and gradient even for
    ``gamma < 1``, where ``(1 - p_t) ** gamma`` has an infinite derivative at 0.

    Args:
        input: logits, any shape.
        target: the input's shape, floating, values in [0, 1] (1 positive, 0 negative).
        alpha: weight of the positive class in [0, 1]; any negative value disables the
            weighting (torchvision's convention), default 0.25.
        gamma: focusing parameter >= 0, default 2. ``gamma=0`` with a negative ``alpha`` is
            binary cross-entropy.
        reduction: ``"mean"`` over all elements, ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Lin, Goyal, Girshick, He, Dollár, "Focal Loss for Dense Object Detection", ICCV 2017,
        arXiv:1708.02002.
    """
    check_reduction(reduction)
    alpha = check_sigmoid_focal_alpha("alpha", alpha)
    gamma = _check_gamma(gamma)
    input = _as_compute(input)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    check_values_in_range("target", target, 0.0, 1.0, "binary targets")
    target = target.to(input.dtype)
    if not target.requires_grad:
        return _fused.sigmoid_focal_fused(
            input, target, alpha=alpha, gamma=gamma, reduction=reduction,
            reference=lambda z, y: _sigmoid_focal_formula(z, y, alpha, gamma, reduction),
        )
    # A target that needs a gradient (rare): the formula, differentiated by autograd.
    return _sigmoid_focal_formula(input, target, alpha, gamma, reduction)


def _sigmoid_focal_formula(input: Tensor, target: Tensor, alpha: float, gamma: float, reduction: str) -> Tensor:
    """The sigmoid focal loss as a plain formula (autograd differentiates it, to any order and in
    the target too): the reference of the fused kernel
    (:func:`losslab.functional._fused.elementwise._focal_chunk`, which computes the same
    cross-entropy and :func:`~losslab.functional._formulas.focal_modulation`, and its
    derivative beside them)."""
    loss = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    if gamma != 0.0:
        # log(1 - p_t) = log(y sigmoid(-z) + (1 - y) sigmoid(z)), by logaddexp.
        if target.requires_grad:
            # For a hard label one branch is log(0) = -inf and logaddexp returns the other,
            # with the right first derivatives in z and y.
            log_miss = torch.logaddexp(
                torch.log(target) + F.logsigmoid(-input), torch.log1p(-target) + F.logsigmoid(input)
            )
        else:
            # Second derivatives in z (create_graph): a hard label takes logsigmoid((1 - 2y) z)
            # directly, since logaddexp with a -inf branch gives inf * 0 = NaN there; the soft
            # branch is evaluated at y = 1/2 for those entries, so it stays finite unselected
            # (both branches of a where are differentiated: a NaN in the discarded one leaks).
            hard = (target == 0) | (target == 1)
            soft = torch.where(hard, 0.5, target)
            log_miss = torch.where(
                hard,
                F.logsigmoid((1.0 - 2.0 * target) * input),
                _logaddexp(torch.log(soft) + F.logsigmoid(-input), torch.log1p(-soft) + F.logsigmoid(input)),
            )
    else:
        log_miss = None
    weight = focal_modulation(log_miss, target, alpha=alpha, gamma=gamma)
    return reduce(loss if weight is None else weight * loss, reduction)


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """``log(exp(a) + exp(b))`` for finite ``a`` and ``b``, with finite derivatives of every order.

    ``torch.logaddexp``'s second derivative is NaN once ``|a - b|`` passes the exponent range
    (about 89 in float32, 710 in float64), and ``max(a, b) + log1p(exp(-|a - b|))`` has
    kinks at ``a = b`` that autograd differentiates wrongly. Here the shift ``m = max(a, b)``
    is a constant (the value does not depend on it), so only ``exp`` of numbers <= 0 is taken
    and the expression is smooth: ``m + log1p(expm1(a - m) + exp(b - m))`` (roles swapped
    when ``b`` is the larger).
    """
    m = torch.maximum(a, b).detach()
    u, v = a - m, b - m
    s = torch.where(a >= b, torch.expm1(u) + torch.exp(v), torch.exp(u) + torch.expm1(v))
    return m + torch.log1p(s)


def _check_alpha_vector(alpha: float | Tensor | None, num_classes: int, ref: Tensor) -> Tensor | None:
    if alpha is None:
        return None
    alpha = check_softmax_focal_alpha("alpha", alpha)
    if isinstance(alpha, Tensor):
        if alpha.shape != (num_classes,):
            raise ValueError(
                f"alpha: expected a float or a 1-D tensor with one entry per class, shape "
                f"({num_classes},), got {tuple(alpha.shape)}"
            )
        return alpha.to(device=ref.device, dtype=ref.dtype)
    return torch.full((num_classes,), alpha, device=ref.device, dtype=ref.dtype)


def softmax_focal_loss(
    input: Tensor,
    target: Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Multiclass (softmax) focal loss, a drop-in for ``F.cross_entropy``, in log space.

    .. math::
        \ell_n = -\sum_c w_c\, \alpha_c\, y_c\, (1 - p_c)^{\gamma} \log p_c,
        \qquad p = \operatorname{softmax}(z)

    With class-index targets this is ``-w_y alpha_y (1 - p_y)^gamma log p_y``. ``log p`` and
    ``log(1 - p)`` are computed without cancellation (the complement of the largest class
    from its logit margin), so saturated logits give finite values and gradients for every
    ``gamma >= 0``. ``gamma=0`` without alpha is ``F.cross_entropy`` (weights included).

    ``alpha`` and ``weight`` both rescale class c's term; they differ in the ``"mean"``
    denominator. ``weight`` follows ``F.cross_entropy``: with class indices "mean" divides by
    the summed weight of the targets. ``alpha`` is the focal paper's balancing factor and
    leaves the denominator alone (the count of non-ignored targets), as in the paper's
    normalisation by the number of anchors and as in MONAI's ``FocalLoss``. A float ``alpha``
    applies to every class; MONAI's scalar convention (``1 - alpha`` for class 0, ``alpha``
    for the others) is ``alpha=torch.tensor([1 - a, a, ..., a])``.

    Args:
        input: logits ``(N, C, d1..dk)`` or ``(C,)``.
        target: class indices ``(N, d1..dk)`` (integer) or class probabilities of the input's
            shape (floating, values in [0, 1]).
        gamma: focusing parameter >= 0, default 2.
        alpha: ``None`` (default, no balancing), a float >= 0 for every class, or a tensor
            ``(C,)`` of per-class factors.
        weight: per-class rescaling ``(C,)`` with ``F.cross_entropy``'s semantics.
        ignore_index: a class-index target to skip.
        reduction: ``"mean"`` over samples (class indices: divided by the summed target
            weights, NaN as in ``F.cross_entropy`` when every target is ignored; probabilities:
            by ``N d1..dk``), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(N, d1..dk)`` with ``reduction="none"``.

    References:
        Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, arXiv:1708.02002.
    """
    check_reduction(reduction)
    gamma = _check_gamma(gamma)
    input = _as_compute(input)
    target = check_multiclass_target(input, target, ignore_index)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    num_classes = input.shape[1]
    weight = check_class_weight(weight, num_classes, input)
    alpha_vector = _check_alpha_vector(alpha, num_classes, input)

    if not target.is_floating_point():
        return _softmax_focal_index(input, target, gamma=gamma, alpha=alpha_vector, weight=weight,
                                    ignore_index=ignore_index, reduction=reduction, unbatched=unbatched)
    log_p, log_q = softmax_log_pair(input, 1)
    per_class = -log_p
    if gamma != 0.0:
        per_class = torch.exp(gamma * log_q) * per_class
    if alpha_vector is not None:
        per_class = per_class * _class_view(alpha_vector, input.dim())

    target = target.to(input.dtype)
    per_class = target * per_class
    if weight is not None:
        per_class = per_class * _class_view(weight, input.dim())
    out = reduce(per_class.sum(1), reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out


_LOG_HALF = math.log(0.5)


def _softmax_focal_index(
    input: Tensor, target: Tensor, *, gamma: float, alpha: Tensor | None, weight: Tensor | None,
    ignore_index: int, reduction: str, unbatched: bool,
) -> Tensor:
    """Softmax focal loss for class indices: only the target class's ``log p`` and
    ``log(1 - p)`` are needed: one log-softmax, and for ``gamma != 0`` the other classes'
    probability mass."""
    keep = target != ignore_index
    index = torch.where(keep, target, 0).unsqueeze(1)
    log_probs = log_softmax(input)
    log_p = log_probs.gather(1, index).squeeze(1)
    loss = -log_p
    if gamma != 0.0:
        # log(1 - p_y): log1p(-p_y) is well conditioned for p_y <= 1/2; above it, 1 - p_y is
        # the summed probability of the other classes, free of cancellation. The clamps keep
        # the unused branch (and its gradient) finite.
        others = log_probs.exp().scatter(1, index, 0.0).sum(1)
        log_q = torch.where(
            log_p > _LOG_HALF, torch.log(others.clamp_min(torch.finfo(others.dtype).tiny)),
            torch.log1p(-torch.exp(log_p.clamp_max(_LOG_HALF))),
        )
        loss = torch.exp(gamma * log_q) * loss
    if alpha is not None:
        loss = loss * alpha[index.squeeze(1)]
    sample_weight = None if weight is None else weight[index.squeeze(1)]
    if sample_weight is not None:
        loss = loss * sample_weight
    loss = torch.where(keep, loss, 0.0)
    out = reduce(loss, reduction, weight_sum=_kept_weight(keep, sample_weight, loss.dtype) if reduction == "mean" else None)
    return out.squeeze(0) if unbatched and reduction == "none" else out


# --- PolyLoss ------------------------------------------------------------------------------


def check_poly_epsilon(name: str, epsilon: object) -> tuple[float, ...]:
    """PolyLoss's ``epsilon``: a finite number (Poly-1) or a non-empty list of them (Poly-N)."""
    if isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool):
        return (check_number(name, epsilon),)
    if isinstance(epsilon, Sequence) and not isinstance(epsilon, str) and len(epsilon) > 0:
        return tuple(check_number(f"{name}[{j}]", value) for j, value in enumerate(epsilon))
    raise ValueError(
        f"{name}: expected a number (Poly-1) or a non-empty list of numbers (Poly-N), got {epsilon!r}"
    )


def poly_loss(
    input: Tensor,
    target: Tensor,
    *,
    epsilon: float | Sequence[float] = 1.0,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""PolyLoss (Leng et al. 2022): cross-entropy plus polynomial terms in ``1 - p_t``.

    .. math::
        \ell_n = \mathrm{CE}_n + w_n \sum_{j=1}^{N} \epsilon_j (1 - p_t)^j,
        \qquad p_t = \sum_c y_c\, p_c

    A float ``epsilon`` is Poly-1 (``CE + eps (1 - p_t)``, default ``eps = 1.0``, the paper's
    recommended starting point); a list ``[eps_1, ..., eps_N]`` is Poly-N. ``epsilon=0`` is
    exactly ``F.cross_entropy``. ``y`` is the target distribution after label smoothing
    (``(1 - s) onehot + s / C``, as torch smooths), so ``p_t`` is the paper's "prediction
    probability of the target class" under the smoothed labels. Some tutorials write the
    series as ``eps_j (1 - p_t)^j / j``; that is the same family with ``eps_j`` rescaled by
    ``1/j``; losslab follows the paper's Poly-N form (no ``1/j``).

    ``CE_n`` is ``F.cross_entropy(..., reduction="none")`` with the same ``weight``,
    ``ignore_index`` and ``label_smoothing``. The poly term is scaled by the sample's weight
    ``w_n``: ``weight[y_n]`` for class indices (the weight torch's "mean" divides by), and
    ``sum_c weight_c y_c`` over the unsmoothed probability target (so a one-hot target gives
    the class-index value). "mean" divides as ``F.cross_entropy`` does. ``1 - p_t`` is taken
    from ``log(1 - p)`` computed without cancellation, so it keeps its relative precision
    as ``p_t -> 1``.

    Args:
        input: logits ``(N, C, d1..dk)`` or ``(C,)``.
        target: class indices ``(N, d1..dk)`` (integer) or class probabilities of the input's
            shape (floating, values in [0, 1]).
        epsilon: a number (Poly-1) or a non-empty list of numbers (Poly-N coefficients of
            ``(1 - p_t)^1 .. (1 - p_t)^N``).
        weight: per-class rescaling ``(C,)``, as in ``F.cross_entropy``.
        ignore_index: a class-index target to skip.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``F.cross_entropy``'s meaning, NaN
            for "mean" when every target is ignored).
        label_smoothing: in [0, 1].

    Returns:
        A scalar, or ``(N, d1..dk)`` with ``reduction="none"``.

    References:
        Leng, Xu, Xiao, et al., "PolyLoss: A Polynomial Expansion Perspective of
        Classification Loss Functions", ICLR 2022, arXiv:2204.12511.
    """
    check_reduction(reduction)
    epsilons = check_poly_epsilon("epsilon", epsilon)
    label_smoothing = check_number("label_smoothing", label_smoothing, low=0.0, high=1.0)
    input = _as_compute(input)
    target = check_multiclass_target(input, target, ignore_index)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    num_classes = input.shape[1]
    weight = check_class_weight(weight, num_classes, input)

    ce = F.cross_entropy(
        input, target.to(input.dtype) if target.is_floating_point() else target, weight=weight,
        ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing,
    )
    if target.is_floating_point():
        # log(1 - p_c) without cancellation (the largest class from its logit margin), so that
        # 1 - p_t keeps its relative precision when p_t is close to 1.
        _, log_q = softmax_log_pair(input, 1)
        soft = target.to(input.dtype)
        # the sample weight uses the unsmoothed target: weight[y] for a one-hot target
        sample_weight = None if weight is None else (soft * _class_view(weight, input.dim())).sum(1)
        if label_smoothing > 0:
            soft = soft * (1.0 - label_smoothing) + label_smoothing / num_classes
        # 1 - sum_c y_c p_c = sum_c y_c (1 - p_c) + (1 - sum_c y_c)
        miss = (soft * log_q.exp()).sum(1) + (1.0 - soft.sum(1))
        keep = None
    else:
        keep = target != ignore_index
        index = torch.where(keep, target, 0).unsqueeze(1)
        # 1 - p_y as the sum of the other classes' probabilities: a sum of positive terms, so
        # it keeps its relative precision as p_y -> 1 (no cancellation), at the cost of one
        # softmax rather than a log(1 - p) for every class
        miss = softmax(input).scatter(1, index, 0.0).sum(1)
        if label_smoothing > 0:
            # sum_c (s / C) (1 - p_c) = s (1 - 1/C), since the probabilities sum to 1.
            miss = (1.0 - label_smoothing) * miss + label_smoothing * (1.0 - 1.0 / num_classes)
        sample_weight = None if weight is None else weight[index.squeeze(1)]

    poly = sum(eps * miss.pow(j) for j, eps in enumerate(epsilons, start=1))
    if sample_weight is not None:
        poly = poly * sample_weight
    loss = ce + poly
    if keep is not None:
        loss = torch.where(keep, loss, 0.0)
    kept = None if keep is None or reduction != "mean" else _kept_weight(keep, sample_weight, loss.dtype)
    out = reduce(loss, reduction, weight_sum=kept)
    return out.squeeze(0) if unbatched and reduction == "none" else out
