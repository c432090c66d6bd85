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

The kernels and the log-probability pairs are written once, in the numeric core
:mod:`losslab.functional._formulas`, which the fused kernels and :mod:`losslab.keras` use too.

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

import functools
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
from losslab.functional import _formulas, _fused
from losslab.functional._formulas import (
    circle_true,
    clamp_log_pair,
    cosine_true,
    l_false,
    l_true,
    m_false,
    m_true,
    parabolic_true,
    parametric_m_true,
    probability_log_pair,
)

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


# --- per-element kernels and log-probabilities: the numeric core ---------------------------
# (written once in losslab.functional._formulas, shared with the fused kernels and Keras)


def _parametric_m_true(alpha: float) -> Kernel:
    return functools.partial(parametric_m_true, alpha=alpha)


def softmax_log_pair(logits: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of a softmax over ``dim``, accurate for p near 0 and near 1
    (:func:`losslab.functional._formulas.softmax_log_pair` in torch).

    Shared with the focal and poly losses of :mod:`losslab.functional.classification`.
    """
    return _formulas.softmax_log_pair(logits, dim)


def _probability_log_pair(probs: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``log p`` and ``log(1 - p)`` of probabilities checked to lie in [0, 1], clamped in log
    space (:func:`losslab.functional._formulas.probability_log_pair`)."""
    check_values_in_range("input", probs, 0.0, 1.0, "probabilities (from_logits=False)")
    return probability_log_pair(probs, eps)


def _log_pair(
    input: Tensor, *, from_logits: bool, eps: float, softmax_dim: int | None
) -> tuple[Tensor, Tensor]:
    if not from_logits:
        return _probability_log_pair(input, eps)
    if softmax_dim is None:
        log_p, log_q = F.logsigmoid(input), F.logsigmoid(-input)
    else:
        log_p, log_q = softmax_log_pair(input, softmax_dim)
    return clamp_log_pair(log_p, log_q, eps)


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
        input, target, true_kernel=m_true, false_kernel=m_false if full else None,
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

    <sections of m_loss>
    """
    full = check_bool("full", full)
    return multiclass_loss(
        input, target, true_kernel=l_true, false_kernel=l_false if full else None,
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
        input, target, true_kernel=m_true, false_kernel=m_false if full else None,
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

    <sections of binary_m_loss>
    """
    full = check_bool("full", full)
    return binary_loss(
        input, target, true_kernel=l_true, false_kernel=l_false if full else None,
        from_logits=from_logits, pos_weight=pos_weight, weight=weight,
        reduction=reduction, eps=eps,
        impl=impl, fused_kind="full_l" if full else "l",
    )


def _extra_doc(title: str, latex: str, source: str) -> str:
    return (
        f"{title}\n\n    .. math::\n        {latex}\n\n"
        "    NOT convex in p: one of the four extra losses of the paper's first version\n"
        "    (arXiv:2303.09935v1), offered for experiments.\n\n"
        f"    <sections of {source}>\n"
    )


def _make_multiclass_extra(name: str, kernel: Kernel, title: str, latex: str) -> Callable[..., Tensor]:
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
    loss.__doc__ = _extra_doc(title, latex + r", \quad p = \operatorname{softmax}(z)", "m_loss")
    return loss


def _make_binary_extra(name: str, kernel: Kernel, title: str, latex: str) -> Callable[..., Tensor]:
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
    loss.__doc__ = _extra_doc(title, latex + r", \quad p = \sigma(z)", "binary_m_loss")
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
    r"""Parametric M loss, softmax over dim 1; ``alpha=1`` is M.

    .. math::
        \ell_n = \sum_c w_c\, y_c \left(\frac{1}{p_c^{\alpha}} - 1\right),
        \quad p = \operatorname{softmax}(z)

    Convex in p for alpha > 0 but offered with the paper's first-version extras; the larger
    alpha, the stricter.

    <sections of m_loss, alpha>
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
    r"""Binary / multilabel parametric M loss; ``alpha=1`` is binary M.

    .. math::
        \ell = w\, w_+ y \left(\frac{1}{p^{\alpha}} - 1\right), \quad p = \sigma(z)

    <sections of binary_m_loss, alpha>
    """
    alpha = check_parametric_alpha("alpha", alpha)
    return binary_loss(
        input, target, true_kernel=_parametric_m_true(alpha), false_kernel=None,
        from_logits=from_logits, pos_weight=pos_weight, weight=weight,
        reduction=reduction, eps=eps,
    )


parabolic_loss = _make_multiclass_extra(
    "parabolic_loss", parabolic_true, "Parabolic loss.", r"\ell_n = \sum_c w_c\, y_c (1 - p_c^2)")
circle_loss = _make_multiclass_extra(
    "circle_loss", circle_true, "Circle loss.", r"\ell_n = \sum_c w_c\, y_c \sqrt{1 - p_c^2}")
cosine_loss = _make_multiclass_extra(
    "cosine_loss", cosine_true, "Cosine loss.", r"\ell_n = \sum_c w_c\, y_c \cos(\pi p_c / 2)")
binary_parabolic_loss = _make_binary_extra(
    "binary_parabolic_loss", parabolic_true, "Binary / multilabel parabolic loss.",
    r"\ell = w\, w_+ y (1 - p^2)")
binary_circle_loss = _make_binary_extra(
    "binary_circle_loss", circle_true, "Binary / multilabel circle loss.",
    r"\ell = w\, w_+ y \sqrt{1 - p^2}")
binary_cosine_loss = _make_binary_extra(
    "binary_cosine_loss", cosine_true, "Binary / multilabel cosine loss.",
    r"\ell = w\, w_+ y \cos(\pi p / 2)")


# --- shared docstring sections ------------------------------------------------------------
# L and the variants take the options of M (or binary M), the variants less ``full`` and
# ``impl``. Their Args, Returns and References are written once, in m_loss and binary_m_loss,
# and copied into each docstring here, so that every docstring reads complete on its own in
# help() and in the API reference.

_ALPHA_ARG = "        alpha: the exponent, ``> 0`` (default 2); ``alpha=1`` gives M.\n"


def _shared_sections(source: Callable[..., Tensor], *, drop: tuple[str, ...] = (),
                     add: str = "") -> str:
    """``source``'s docstring from ``Args:`` on, without the arguments named in ``drop``."""
    doc = source.__doc__ or ""
    kept, skipping = [], False
    for line in doc[doc.index("    Args:"):].rstrip().splitlines(keepends=True):
        if line.startswith("        ") and not line.startswith("         "):
            skipping = line.strip().split(":", 1)[0] in drop
        elif not line.startswith("         "):
            skipping = False
        if not skipping:
            kept.append(line)
    text = "".join(kept).strip()
    return text.replace("Args:\n", "Args:\n" + add, 1) if add else text


def _fill_shared_sections() -> None:
    for function, source in ((l_loss, m_loss), (binary_l_loss, binary_m_loss)):
        sections = _shared_sections(source).replace("(full M)", "(full L)")
        function.__doc__ = function.__doc__.replace(f"<sections of {source.__name__}>", sections)
    for function in (parabolic_loss, circle_loss, cosine_loss, binary_parabolic_loss,
                     binary_circle_loss, binary_cosine_loss):
        source = binary_m_loss if function.__name__.startswith("binary_") else m_loss
        function.__doc__ = function.__doc__.replace(
            f"<sections of {source.__name__}>", _shared_sections(source, drop=("full", "impl")))
    for function, source in ((parametric_m_loss, m_loss), (binary_parametric_m_loss, binary_m_loss)):
        function.__doc__ = function.__doc__.replace(
            f"<sections of {source.__name__}, alpha>",
            _shared_sections(source, drop=("full", "impl"), add=_ALPHA_ARG))


_fill_shared_sections()
