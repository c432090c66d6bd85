"""The alternate classification losses of Noel et al., arXiv 2303.09935 (M, full M, L, full L).

For a target ``y`` in [0, 1] and a probability ``p`` in (0, 1), per element:

=========  ==========================================================
M          ``y (1/p - 1)``
full M     ``y (1/p - 1) + (1 - y) (1/(1 - p) - 1)``
L          ``y (1/sqrt(p (2 - p)) - 1)``
full L     ``y (1/sqrt(p (2 - p)) - 1) + (1 - y) (1/sqrt(1 - p^2) - 1)``
=========  ==========================================================

Every loss is computed from ``log p`` and ``log(1 - p)``, never from ``p`` and ``1 - p``
directly, so that values near p = 1 keep full relative precision: for a softmax the
complement of the largest class is taken from its margin over the log-sum-exp of the others,
for a sigmoid it is ``logsigmoid(-z)``. The identities that follow:

* multiclass M with a class-index target is ``expm1(cross_entropy)`` per sample;
* binary M from a logit is ``y exp(-z)``; binary full M is ``y exp(-z) + (1 - y) exp(z)``,
  the exponential (AdaBoost) loss on the margin.

Probabilities are clamped into ``[eps, 1 - eps]`` (``eps=1e-7``, Keras' epsilon;
``eps=0`` disables the clamp). The authors' notebooks never clip: they divide with
``tf.math.divide_no_nan``, which gives 0 where a probability is exactly 0 or 1; losslab clamps
instead, so that the loss and its gradient stay finite and monotone at saturated outputs. Like
Keras' clip, the clamp stops the gradient of an element once its probability leaves that
range. The clamp acts on ``log p`` and ``log(1 - p)``, so the bounds applied are the
documented ones even where ``1 - eps`` is not representable (float32 rounds ``1 - 1e-7`` to
``1 - 1.19e-7``). float16 and bfloat16 inputs are computed in float32, with ``eps`` raised to
``torch.finfo(dtype).eps`` (:func:`losslab._validation.effective_eps`: 9.77e-4 and 7.81e-3)
so the gradient cast back to the input dtype stays finite; the loss is returned in float32, as
autocast does for torch's losses.

Soft (probability) targets use the per-element formulas above: M is ``y (1/p - 1) = y/p - y``;
the authors' notebooks compute ``y^2/p - y``, which agrees for one-hot targets only (label
smoothing and distillation targets give different values).

The four extras of the paper's first version (parametric M, parabolic, circle, cosine) live
here too. They are NOT convex in ``p``; they are offered for experiments, not as defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._validation import (
    check_bool,
    check_broadcast_weight,
    check_class_weight,
    check_eps,
    check_floating,
    check_multiclass_target,
    check_number,
    check_reduction,
    check_same_shape,
    check_values_in_range,
    compute_dtype,
    effective_eps,
    reduce,
)
from losslab.functional import _fused

__all__ = [
    "binary_circle_loss",
    "binary_cosine_loss",
    "binary_l_loss",
    "binary_m_loss",
    "binary_parabolic_loss",
    "binary_parametric_m_loss",
    "circle_loss",
    "cosine_loss",
    "l_loss",
    "m_loss",
    "parabolic_loss",
    "parametric_m_loss",
]

# A kernel maps (log p, log(1 - p)) to the per-element loss of one side of the target.
Kernel = Callable[[Tensor, Tensor], Tensor]


# --- per-element kernels -----------------------------------------------------------------


def _m_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/p - 1 = (1 - p) / p
    return torch.exp(log_q - log_p)


def _m_false(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/(1 - p) - 1 = p / (1 - p)
    return torch.exp(log_p - log_q)


def _l_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/sqrt(1 - q^2) - 1 = q^2 / (s (1 + s)) with s = sqrt(1 - q^2) = sqrt(p (1 + q)):
    # no cancellation as q -> 0.
    q = torch.exp(log_q)
    log_s = 0.5 * (log_p + torch.log1p(q))
    return torch.exp(2.0 * log_q - log_s) / (1.0 + torch.exp(log_s))


def _l_false(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1/sqrt(1 - p^2) - 1: the same expression with the roles of p and 1 - p swapped.
    return _l_true(log_q, log_p)


def _parametric_m_true(alpha: float) -> Kernel:
    def kernel(log_p: Tensor, log_q: Tensor) -> Tensor:
        return torch.expm1(-alpha * log_p)

    return kernel


def _parabolic_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # 1 - p^2 = (1 - p)(1 + p)
    return torch.exp(log_q) * (1.0 + torch.exp(log_p))


def _circle_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # sqrt(1 - p^2) = sqrt((1 - p)(1 + p))
    return torch.exp(0.5 * (log_q + torch.log1p(torch.exp(log_p))))


def _cosine_true(log_p: Tensor, log_q: Tensor) -> Tensor:
    # cos(pi p / 2) = sin(pi (1 - p) / 2)
    return torch.sin(0.5 * math.pi * torch.exp(log_q))


# --- log-probabilities ---------------------------------------------------------------------


def _clamp_bounds(eps: float) -> tuple[float, float]:
    low = math.log(eps) if eps > 0 else -math.inf
    return low, math.log1p(-eps)


def softmax_log_pair(logits: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of a softmax, accurate for p near 0 and near 1.

    Shared with the focal and poly losses of :mod:`losslab.functional.classification`.
    """
    num_classes = logits.shape[dim]
    log_p = torch.log_softmax(logits, dim)
    if num_classes == 1:
        return log_p, torch.full_like(log_p, -math.inf)
    # Only the largest class can have p > 1/2; for the others log1p(-p) is well conditioned.
    top = logits.argmax(dim, keepdim=True)
    is_top = torch.zeros_like(logits, dtype=torch.bool).scatter(dim, top, True)
    log_q = torch.log1p(-torch.exp(torch.where(is_top, -1.0, log_p)))
    # For the largest class p = sigmoid(margin), margin = z_top - logsumexp(z_others).
    # Taken on logits shifted by the top logit (a detached constant: the softmax does not depend
    # on it): z - z_top is exact for logits within a factor 2 of each other, whereas a
    # log-sum-exp of logits of 1e4 rounds to float32's spacing there (1e-3), which exp(-margin)
    # would turn into a relative error of that size.
    shifted = logits - logits.detach().gather(dim, top)
    margin = shifted.gather(dim, top) - torch.logsumexp(shifted.masked_fill(is_top, -math.inf), dim, keepdim=True)
    log_p = torch.where(is_top, F.logsigmoid(margin), log_p)
    log_q = torch.where(is_top, F.logsigmoid(-margin), log_q)
    return log_p, log_q


def _probability_log_pair(probs: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of probabilities, clamped into ``[log eps, log1p(-eps)]``.

    The clamp acts in log space: ``probs.clamp(eps, 1 - eps)`` would apply ``1 - 1.19e-7`` in
    float32 for ``eps = 1e-7`` (the nearest float to ``1 - 1e-7``), not the documented value.
    Clamped entries take the bound as a constant (no gradient, as Keras' clip), and the log of
    the unclamped entries never sees 0 or 1 (its derivative would be infinite there).
    """
    check_values_in_range("input", probs, 0.0, 1.0, "probabilities (from_logits=False)")
    if eps <= 0:
        return torch.log(probs), torch.log1p(-probs)
    low, high = _clamp_bounds(eps)
    below = probs < eps
    above = (1.0 - probs) < eps                  # 1 - p is exact for p >= 1/2
    safe = torch.where(below | above, 0.5, probs)
    log_p = torch.where(below, low, torch.where(above, high, torch.log(safe)))
    log_q = torch.where(above, low, torch.where(below, high, torch.log1p(-safe)))
    return log_p, log_q


def _log_pair(
    input: Tensor, *, from_logits: bool, eps: float, softmax_dim: int | None
) -> tuple[Tensor, Tensor]:
    if not from_logits:
        return _probability_log_pair(input, eps)
    if softmax_dim is None:
        log_p, log_q = F.logsigmoid(input), F.logsigmoid(-input)
    else:
        log_p, log_q = softmax_log_pair(input, softmax_dim)
    low, high = _clamp_bounds(eps)
    return log_p.clamp(low, high), log_q.clamp(low, high)


# --- assembly ------------------------------------------------------------------------------


def _prepare_input(input: object, eps: float) -> tuple[Tensor, float]:
    input = check_floating("input", input)
    eps = effective_eps(check_eps(eps), input.dtype)
    return input.to(compute_dtype(input)), eps


def multiclass_loss(
    input: Tensor,
    target: Tensor,
    *,
    true_kernel: Kernel,
    false_kernel: Kernel | None,
    from_logits: bool,
    weight: Tensor | None,
    ignore_index: int,
    reduction: str,
    eps: float,
    impl: str = "reference",
    fused_kind: str | None = None,
) -> Tensor:
    """Sum over classes of ``y_c true(p_c) + (1 - y_c) false(p_c)``, softmax over dim 1.

    Target and weight semantics follow ``F.cross_entropy``: integer class indices
    ``(N, d1..dk)`` or probabilities ``(N, C, d1..dk)``; a per-class ``weight`` scales class
    c's term; with class indices ``"mean"`` divides by the summed weight of the targets and
    skips ``ignore_index``, with probabilities it divides by ``N d1..dk``. As in
    ``F.cross_entropy``, a "mean" with nothing to divide by (an empty batch, or every target
    ignored) is NaN with a zero gradient; "sum" is then 0.

    ``fused_kind`` (``"m"``, ``"full_m"``, ``"l"``, ``"full_l"``) names the kernels of
    :mod:`losslab.functional._fused` that compute the same loss; ``impl`` picks them or not.
    """
    check_reduction(reduction)
    from_logits = check_bool("from_logits", from_logits)
    input, eps = _prepare_input(input, eps)
    target = check_multiclass_target(input, target, ignore_index)
    unbatched = input.dim() == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    num_classes = input.shape[1]
    weight = check_class_weight(weight, num_classes, input)
    probability_target = target.is_floating_point()
    if fused_kind is not None and _fused.wants_fused(
        impl, supported=from_logits, reason="with from_logits=False", others=(target, weight)
    ):
        options = dict(true_kernel=true_kernel, false_kernel=false_kernel, from_logits=True,
                       ignore_index=ignore_index, reduction=reduction, eps=eps)
        batched_target = target.to(input.dtype) if probability_target else target
        out = _fused.multiclass_fused(
            input, batched_target, kind=fused_kind, weight=weight, ignore_index=ignore_index,
            reduction=reduction, eps=eps,
            reference=lambda z, y, w: multiclass_loss(z, y, weight=w, **options),
        )
        return out.squeeze(0) if unbatched and reduction == "none" else out
    log_p, log_q = _log_pair(input, from_logits=from_logits, eps=eps, softmax_dim=1)

    if probability_target:
        target = target.to(input.dtype)
        per_class = target * true_kernel(log_p, log_q)
        if false_kernel is not None:
            per_class = per_class + (1.0 - target) * false_kernel(log_p, log_q)
        if weight is not None:
            per_class = per_class * weight.view((1, -1) + (1,) * (input.dim() - 2))
        loss = per_class.sum(1)
        out = reduce(loss, reduction)
        return out.squeeze(0) if unbatched and reduction == "none" else out

    keep = target != ignore_index
    index = torch.where(keep, target, 0).unsqueeze(1)
    loss = true_kernel(log_p.gather(1, index), log_q.gather(1, index)).squeeze(1)
    if weight is not None:
        loss = loss * weight[index.squeeze(1)]
    if false_kernel is not None:
        is_target = torch.zeros_like(log_p, dtype=torch.bool).scatter(1, index, True)
        others = false_kernel(log_p, log_q)
        if weight is not None:
            others = others * weight.view((1, -1) + (1,) * (input.dim() - 2))
        loss = loss + torch.where(is_target, 0.0, others).sum(1)
    loss = torch.where(keep, loss, 0.0)
    denominator = None
    if reduction == "mean":
        denominator = keep.sum().to(loss.dtype) if weight is None else torch.where(keep, weight[index.squeeze(1)], 0.0).sum()
    out = reduce(loss, reduction, weight_sum=denominator)
    return out.squeeze(0) if unbatched and reduction == "none" else out


def binary_loss(
    input: Tensor,
    target: Tensor,
    *,
    true_kernel: Kernel,
    false_kernel: Kernel | None,
    from_logits: bool,
    pos_weight: Tensor | None,
    weight: Tensor | None,
    reduction: str,
    eps: float,
    impl: str = "reference",
    fused_kind: str | None = None,
) -> Tensor:
    """Elementwise ``pos_weight y true(p) + (1 - y) false(p)`` with ``p = sigmoid(input)``.

    Semantics of ``pos_weight`` and ``weight`` follow
    ``F.binary_cross_entropy_with_logits``: both broadcast to the input's shape.
    ``impl`` and ``fused_kind``: as in :func:`multiclass_loss`.
    """
    check_reduction(reduction)
    from_logits = check_bool("from_logits", from_logits)
    input, eps = _prepare_input(input, eps)
    target = check_floating("target", target)
    check_same_shape("input", input, "target", target)
    check_values_in_range("target", target, 0.0, 1.0, "binary targets")
    pos_weight = check_broadcast_weight("pos_weight", pos_weight, input)
    weight = check_broadcast_weight("weight", weight, input)
    target = target.to(input.dtype)
    # Without the clamp (eps=0) the fused L kernel overflows for logits below about -60 in
    # float32, where the log-space reference stays finite: "auto" keeps the reference there.
    unclamped_l = eps == 0 and fused_kind in ("l", "full_l") and impl == "auto"
    if fused_kind is not None and not unclamped_l and _fused.wants_fused(
        impl, supported=from_logits, reason="with from_logits=False",
        others=(target, pos_weight, weight),
    ):
        options = dict(true_kernel=true_kernel, false_kernel=false_kernel, from_logits=True,
                       reduction=reduction, eps=eps)
        return _fused.binary_fused(
            input, target, kind=fused_kind, pos_weight=pos_weight, weight=weight,
            reduction=reduction, eps=eps,
            reference=lambda z, y, pw, w: binary_loss(z, y, pos_weight=pw, weight=w, **options),
        )

    log_p, log_q = _log_pair(input, from_logits=from_logits, eps=eps, softmax_dim=None)
    positive = target * true_kernel(log_p, log_q)
    if pos_weight is not None:
        positive = positive * pos_weight
    loss = positive if false_kernel is None else positive + (1.0 - target) * false_kernel(log_p, log_q)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)


# --- public functions ----------------------------------------------------------------------


def m_loss(
    input: Tensor,
    target: Tensor,
    *,
    full: bool = False,
    from_logits: bool = True,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    eps: float = 1e-7,
    impl: str = "auto",
) -> Tensor:
    r"""Multiclass M loss (Noel et al. 2023), a drop-in for ``F.cross_entropy``.

    .. math::
        \ell_n = \sum_c w_c \left[ y_c \left(\frac{1}{p_c} - 1\right)
                 + [\text{full}]\,(1 - y_c)\left(\frac{1}{1 - p_c} - 1\right) \right],
        \quad p = \operatorname{softmax}(z)

    Its derivative in ``p`` is larger in magnitude than cross-entropy's on all of (0, 1)
    ("stricter"). With class-index targets and ``full=False`` it equals ``expm1(CE)``.

    With soft (probability) targets the true-class term is ``y (1/p - 1) = y/p - y``; the
    authors' notebooks compute ``y^2/p - y`` there. The two agree for one-hot targets (and
    so for class indices) and differ for label smoothing or distillation targets. The
    authors' notebooks do not clip ``p`` (they divide with ``tf.math.divide_no_nan``);
    losslab clamps it into ``[eps, 1 - eps]`` (see :func:`losslab._validation.effective_eps`
    for the value applied per dtype).

    Args:
        input: logits (or probabilities with ``from_logits=False``), shape ``(N, C, d1..dk)``
            or ``(C,)``.
        target: class indices ``(N, d1..dk)`` (integer) or class probabilities of the
            input's shape (floating, values in [0, 1]).
        full: also penalise the probability given to the wrong classes (full M).
        from_logits: ``input`` holds logits (softmax over dim 1) rather than probabilities.
        weight: per-class rescaling, shape ``(C,)``, as in ``F.cross_entropy``.
        ignore_index: a class-index target to skip (class-index targets only).
        reduction: ``"mean"`` (over samples; with class indices divided by the summed target
            weights: NaN, as ``F.cross_entropy``, when every target is ignored or the batch is
            empty), ``"sum"`` or ``"none"``.
        eps: probabilities are clamped into ``[eps, 1 - eps]`` (applied in log space;
            raised to ``torch.finfo(dtype).eps`` for float16 / bfloat16 inputs).
        impl: ``"auto"`` (default) uses the fused kernels of :mod:`losslab.functional._fused`
            (same values and gradients, one input-sized tensor kept for backward) when
            ``from_logits`` and neither target nor weight requires grad; ``"fused"`` insists
            on them; ``"reference"`` evaluates the plain formula above under autograd.

    Returns:
        The loss: a scalar, or shape ``(N, d1..dk)`` with ``reduction="none"``.

    References:
        Noel, Banerjee, Amali, Muthiah-Nakarajan, "Alternate Loss Functions for
        Classification and Robust Regression Can Improve the Accuracy of Artificial Neural
        Networks", arXiv:2303.09935.
    """
    full = check_bool("full", full)
    return multiclass_loss(
        input, target, true_kernel=_m_true, false_kernel=_m_false if full else None,
        from_logits=from_logits, weight=weight, ignore_index=ignore_index,
        reduction=reduction, eps=eps,
        impl=impl, fused_kind="full_m" if full else "m",
    )


def l_loss(
    input: Tensor,
    target: Tensor,
    *,
    full: bool = False,
    from_logits: bool = True,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    eps: float = 1e-7,
    impl: str = "auto",
) -> Tensor:
    r"""Multiclass L loss (Noel et al. 2023), a drop-in for ``F.cross_entropy``.

    .. math::
        \ell_n = \sum_c w_c \left[ y_c \left(\frac{1}{\sqrt{p_c (2 - p_c)}} - 1\right)
                 + [\text{full}]\,(1 - y_c)\left(\frac{1}{\sqrt{1 - p_c^2}} - 1\right) \right]

    More lenient than cross-entropy (smaller ``|d loss / dp|``) for p above about 0.117.
    The authors' notebooks omit the ``- 1``; it changes no gradient and makes L(p=1, y=1) = 0.

    Args, Returns and References: as :func:`m_loss`.
    """
    full = check_bool("full", full)
    return multiclass_loss(
        input, target, true_kernel=_l_true, false_kernel=_l_false if full else None,
        from_logits=from_logits, weight=weight, ignore_index=ignore_index,
        reduction=reduction, eps=eps,
        impl=impl, fused_kind="full_l" if full else "l",
    )


def binary_m_loss(
    input: Tensor,
    target: Tensor,
    *,
    full: bool = False,
    from_logits: bool = True,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-7,
    impl: str = "auto",
) -> Tensor:
    r"""Binary / multilabel M loss, a drop-in for ``F.binary_cross_entropy_with_logits``.

    .. math::
        \ell = w \left[ w_+ y \left(\frac{1}{p} - 1\right)
               + [\text{full}]\,(1 - y)\left(\frac{1}{1 - p} - 1\right) \right],
        \quad p = \sigma(z)

    From logits this is ``y exp(-z)`` (and ``+ (1 - y) exp(z)`` for full M, the exponential
    loss), clamped through ``eps``. With soft targets the positive term is ``y/p - y``; the
    authors' notebooks compute ``y^2/p - y`` (equal for hard labels) and do not clip ``p``
    (``tf.math.divide_no_nan``).

    Args:
        input: logits (or probabilities with ``from_logits=False``), any shape.
        target: the same shape, values in [0, 1] (soft labels allowed).
        full: also penalise ``p`` when ``y = 0`` (full M).
        from_logits: ``input`` holds logits rather than probabilities.
        pos_weight: weight of the positive term, broadcast to the input (one per label).
        weight: elementwise rescaling, broadcast to the input.
        reduction: ``"mean"`` over all elements, ``"sum"`` or ``"none"``.
        eps: probabilities are clamped into ``[eps, 1 - eps]``.
        impl: ``"auto"``, ``"fused"`` or ``"reference"``, as in :func:`m_loss`.

    Returns:
        A scalar, or the input's shape with ``reduction="none"``.

    References:
        Noel et al., arXiv:2303.09935.
    """
    full = check_bool("full", full)
    return binary_loss(
        input, target, true_kernel=_m_true, false_kernel=_m_false if full else None,
        from_logits=from_logits, pos_weight=pos_weight, weight=weight,
        reduction=reduction, eps=eps,
        impl=impl, fused_kind="full_m" if full else "m",
    )


def binary_l_loss(
    input: Tensor,
    target: Tensor,
    *,
    full: bool = False,
    from_logits: bool = True,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-7,
    impl: str = "auto",
) -> Tensor:
    r"""Binary / multilabel L loss, a drop-in for ``F.binary_cross_entropy_with_logits``.

    .. math::
        \ell = w \left[ w_+ y \left(\frac{1}{\sqrt{p (2 - p)}} - 1\right)
               + [\text{full}]\,(1 - y)\left(\frac{1}{\sqrt{1 - p^2}} - 1\right) \right]

    Args, Returns and References: as :func:`binary_m_loss`.
    """
    full = check_bool("full", full)
    return binary_loss(
        input, target, true_kernel=_l_true, false_kernel=_l_false if full else None,
        from_logits=from_logits, pos_weight=pos_weight, weight=weight,
        reduction=reduction, eps=eps,
        impl=impl, fused_kind="full_l" if full else "l",
    )


def _extra_doc(formula: str) -> str:
    return (
        f"{formula}\n\n    NOT convex in p: one of the four extra losses of the paper's first\n"
        "    version (arXiv:2303.09935v1), offered for experiments. Multiclass form: arguments as\n"
        "    :func:`m_loss` (without ``full``).\n"
    )


def _make_multiclass_extra(name: str, kernel: Kernel, formula: str) -> Callable[..., Tensor]:
    def loss(
        input: Tensor,
        target: Tensor,
        *,
        from_logits: bool = True,
        weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> Tensor:
        return multiclass_loss(
            input, target, true_kernel=kernel, false_kernel=None, from_logits=from_logits,
            weight=weight, ignore_index=ignore_index, reduction=reduction, eps=eps,
        )

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = _extra_doc(formula)
    return loss


def _make_binary_extra(name: str, kernel: Kernel, formula: str) -> Callable[..., Tensor]:
    def loss(
        input: Tensor,
        target: Tensor,
        *,
        from_logits: bool = True,
        pos_weight: Tensor | None = None,
        weight: Tensor | None = None,
        reduction: str = "mean",
        eps: float = 1e-7,
    ) -> Tensor:
        return binary_loss(
            input, target, true_kernel=kernel, false_kernel=None, from_logits=from_logits,
            pos_weight=pos_weight, weight=weight, reduction=reduction, eps=eps,
        )

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = _extra_doc(formula).replace(":func:`m_loss` (without ``full``)", ":func:`binary_m_loss` (without ``full``)").replace("Multiclass form", "Binary / multilabel form")
    return loss


def check_parametric_alpha(name: str, alpha: object) -> float:
    """The parametric M loss's exponent ``alpha``: a finite number > 0."""
    return check_number(name, alpha, low=0.0, low_open=True)


def parametric_m_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float = 2.0,
    from_logits: bool = True,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    eps: float = 1e-7,
) -> Tensor:
    r"""Parametric M loss ``y (1/p^alpha - 1)``, softmax over dim 1; ``alpha=1`` is M.

    Convex in p for alpha > 0 but offered with the paper's first-version extras; the larger
    alpha, the stricter. Other arguments as :func:`m_loss` (without ``full``).
    """
    alpha = check_parametric_alpha("alpha", alpha)
    return multiclass_loss(
        input, target, true_kernel=_parametric_m_true(alpha), false_kernel=None,
        from_logits=from_logits, weight=weight, ignore_index=ignore_index,
        reduction=reduction, eps=eps,
    )


def binary_parametric_m_loss(
    input: Tensor,
    target: Tensor,
    *,
    alpha: float = 2.0,
    from_logits: bool = True,
    pos_weight: Tensor | None = None,
    weight: Tensor | None = None,
    reduction: str = "mean",
    eps: float = 1e-7,
) -> Tensor:
    r"""Binary / multilabel parametric M loss ``y (1/p^alpha - 1)``, ``p = sigmoid(z)``.

    Other arguments as :func:`binary_m_loss` (without ``full``).
    """
    alpha = check_parametric_alpha("alpha", alpha)
    return binary_loss(
        input, target, true_kernel=_parametric_m_true(alpha), false_kernel=None,
        from_logits=from_logits, pos_weight=pos_weight, weight=weight,
        reduction=reduction, eps=eps,
    )


parabolic_loss = _make_multiclass_extra("parabolic_loss", _parabolic_true, "Parabolic loss ``y (1 - p^2)``.")
circle_loss = _make_multiclass_extra("circle_loss", _circle_true, "Circle loss ``y sqrt(1 - p^2)``.")
cosine_loss = _make_multiclass_extra("cosine_loss", _cosine_true, "Cosine loss ``y cos(pi p / 2)``.")
binary_parabolic_loss = _make_binary_extra("binary_parabolic_loss", _parabolic_true, "Parabolic loss ``y (1 - p^2)``.")
binary_circle_loss = _make_binary_extra("binary_circle_loss", _circle_true, "Circle loss ``y sqrt(1 - p^2)``.")
binary_cosine_loss = _make_binary_extra("binary_cosine_loss", _cosine_true, "Cosine loss ``y cos(pi p / 2)``.")
