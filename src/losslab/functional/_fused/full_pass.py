r"""Full M / full L with class-index targets in one pass over each chunk of rows (CPU).

For a row with softmax ``p`` and target ``y`` the loss is the true term at ``y`` plus the
false term ``F(p_j)`` at every other class, and its gradient in the logits is

.. math::
    \frac{\partial L}{\partial z_j} = k_j - p_j K, \qquad k_c = p_c\, \ell_c'(p_c),
    \qquad K = \sum_c k_c,

so once a row's ``K`` is known the gradient of every entry is a function of its own ``p_j``
and ``k_j``. Per chunk of rows the logits are read once, by the softmax written straight into
the gradient's rows, and the gradient is formed over that softmax in place: the false terms
and ``k`` of every entry go into reused scratch buffers with the reduction's scale folded into
``k`` (:func:`_dense_false_terms`), then ``scale (k - p K)`` is one fused multiply-add. About
ten elementwise passes over a chunk that stays in cache, no second exponential (the two-pass
form of the fused module recomputes the softmax from the logits to form the gradient) and no
pass to scale the gradient.

Two entries per row are left out of the dense pass (set to probability 0 there) and computed
in log space with the fused module's formulas (``true_term``, ``false_term``, ``clamp_logs``,
passed in as :class:`Formulas`): the class with ``p > 1/2`` if there is one, whose ``1 - p``
is the sum of the other probabilities (``1 - p`` itself loses its digits as ``p -> 1``), and
the target class (the true term). That per-row work on small tensors runs once for the batch,
between a first loop over the chunks (softmax, the special entries) and a second (the dense
terms and the gradient): at a few microseconds per operation, thirty of them per chunk would
cost as much as the elementwise passes.

The pass applies to ``(N, C)`` inputs on a CPU, eagerly, with ``C >= 16`` and an ``eps``
clamp that keeps every probability that matters far above the subnormal range (then ``p``
from the softmax has full relative precision wherever the clamp leaves it alone): see
:func:`one_pass_applies`. Other inputs (spatial dims, ``eps = 0``, tracing, accelerators) take
the two-pass form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from typing import Protocol

    class _Workspace(Protocol):
        def get(self, slot: int, like: Tensor) -> Tensor: ...

__all__ = ["CHUNK_ELEMENTS", "Formulas", "full_indices_one_pass", "one_pass_applies"]

# Elements per chunk: the chunk's softmax (the gradient's rows) and three scratch buffers are
# touched about ten times each, so they should stay in cache, while every chunk costs about
# twenty small operations and, on a busy machine, every elementwise operation a wait for the
# second thread of torch's pool. Measured (CPU time, one thread, 2 shared cores) at 4096 x 1000
# float32, full M / full L against F.cross_entropy: 1 << 16 1.36 / 1.62, 1 << 17 1.26 / 1.54,
# 1 << 18 1.26 / 1.59, 1 << 19 1.30 / 1.70, 1 << 20 1.29 / 1.64; at 512 x 32000 the same from
# 1 << 17 to 1 << 20 (0.63 / 0.75). With two threads at a load average of 7, 1 << 20 took
# 1.96 / 1.62 at 4096 x 1000 where 1 << 18 took 2.66 / 3.16, and 6.5 / 9.0 at 512 x 32000
# where 1 << 18 took 27 (the pool's waits, once per operation): fewer, larger chunks.
CHUNK_ELEMENTS = 1 << 20

# Narrower rows take the two-pass form: torch's softmax leaves its vectorised kernel below
# 16 classes (see losslab.functional._softmax), and the per-row work dominates there.
MIN_CLASSES = 16


@dataclass(frozen=True)
class Formulas:
    """The fused module's formulas this pass uses for the two special entries of each row,
    passed in so that this module imports none of it (each formula is written once, there).

    ``true_term(base, log_p, log_q)`` and ``false_term(base, log_p, log_q)``: ``(value, k)`` of
    a term from clamped logs. ``clamp_logs(log_p, log_q, eps)``: clamps both in place and
    returns the mask of the entries it left unchanged. ``workspace()``: a new set of reusable
    chunk-sized buffers (``get(slot, like)``).
    """

    true_term: Callable[[str, Tensor, Tensor], tuple[Tensor, Tensor]]
    false_term: Callable[[str, Tensor, Tensor], tuple[Tensor, Tensor]]
    clamp_logs: Callable[[Tensor, Tensor, float], Tensor | None]
    workspace: Callable[[], _Workspace]


# The scratch slot of k (the dense kernel's other buffers are slots 0 and 1).
_K_SLOT = 2


def one_pass_applies(z: Tensor, eps: float) -> bool:
    """Whether :func:`full_indices_one_pass` handles these logits (else the two-pass form).

    ``eps`` at least ``sqrt(finfo.tiny)`` (1e-19 in float32; the default 1e-7 qualifies): every
    probability above the clamp is then a normal number, as accurate relative to itself as the
    softmax makes it, and every one below it is clamped (its digits do not matter).
    """
    return (z.dim() == 2 and z.shape[1] >= MIN_CLASSES and z.shape[0] > 0 and z.device.type == "cpu"
            and z.is_contiguous() and not torch.compiler.is_compiling()
            and eps >= math.sqrt(torch.finfo(z.dtype).tiny))


def _false_term_at(base: str, p: float) -> float:
    """The false term at ``p`` (the constant the dense pass gives an entry clamped up to eps)."""
    if base == "m":
        return p / (1.0 - p)
    root = math.sqrt(1.0 - p * p)
    return p * p / (root * (1.0 + root))


def full_indices_one_pass(base: str, z: Tensor, index: Tensor, keep: Tensor, weight: Tensor | None,
                          eps: float, scale: Tensor | float, *, formulas: Formulas,
                          chunk_elements: int | None = None) -> tuple[Tensor, Tensor]:
    """Full M (``base="m"``) or full L (``base="l"``) of logits ``(N, C)`` and class indices.

    Three steps, so that the per-row work on small tensors runs once for the batch rather than
    once per chunk (at a few microseconds per operation it would otherwise cost as much as the
    elementwise passes):

    1. per chunk: the softmax into the gradient's rows; the class with ``p > 1/2`` if any; the
       probabilities of the two special entries and ``1 - p`` of the big one (the sum of the
       others); both entries set to 0;
    2. for the batch: the special entries' terms and ``k`` (:func:`_special_entries`);
    3. per chunk: the dense false terms and ``k`` (:func:`_dense_false_terms`), the rows' sums,
       ``scale (k - p K)`` over the softmax, the special entries' gradients.

    Args:
        base: ``"m"`` or ``"l"``.
        z: logits ``(N, C)`` in the compute dtype, with :func:`one_pass_applies`.
        index: class indices ``(N,)``, ignored samples already replaced by a valid class.
        keep: ``(N,)`` bool, False for ignored samples.
        weight: per-class weight ``(C,)`` or None.
        eps: the probability clamp (> 0).
        scale: the reduction's factor folded into the gradient (a 0-d tensor or 1.0).
        formulas: the fused module's formulas (see :class:`Formulas`).
        chunk_elements: elements per chunk; None is :data:`CHUNK_ELEMENTS`.

    Returns:
        ``(loss, grad)``: the per-sample loss ``(N,)`` (0 where ignored) and ``scale`` times
        ``dL/dz = k - p sum_c k_c`` ``(N, C)`` (zero rows where ignored).
    """
    rows_total, classes = z.shape
    grad = torch.empty_like(z)
    index = index.unsqueeze(1)
    keep = keep.unsqueeze(1)
    step = max(1, (CHUNK_ELEMENTS if chunk_elements is None else chunk_elements) // classes)
    chunks = [slice(start, min(start + step, rows_total)) for start in range(0, rows_total, step)]
    workspace = formulas.workspace()

    # 1. softmax and the special entries
    special = torch.empty_like(index)
    p = torch.empty((rows_total, 2), dtype=z.dtype, device=z.device)
    q_big = torch.empty((rows_total, 1), dtype=z.dtype, device=z.device)
    # a row's 0/1 mask of the classes with p > 1/2 (at most one) times this: that class's index
    class_index = torch.arange(classes, dtype=z.dtype, device=z.device)
    clamped = []                      # per chunk: whether some probability is below eps
    clamped_rows = torch.empty((rows_total, 1), dtype=torch.bool, device=z.device)
    for rows in chunks:
        g, y = grad[rows], index[rows]
        torch.softmax(z[rows], 1, out=g)
        # One reduction tells whether the chunk has a probability below the clamp (else the
        # dense pass skips the clamp's two passes) and one above 1/2 (else no search for it).
        low, high = (float(value) for value in torch.aminmax(g))
        clamped.append(low < eps)
        clamped_rows[rows] = clamped[-1]
        if high > 0.5:
            # The class with p > 1/2, the only one whose 1 - p loses digits (found with a
            # compare and a matrix-vector product, faster than max with indices); a row
            # without one gets index 0, which the check p > 1/2 rejects, and takes the target
            # as its special entry.
            big = torch.mv(torch.gt(g, 0.5, out=workspace.get(0, g)), class_index).long().unsqueeze_(1)
            torch.where(g.gather(1, big) > 0.5, big, y, out=special[rows])
        else:
            special[rows] = y
        torch.gather(g, 1, torch.cat((special[rows], y), 1), out=p[rows])
        g.scatter_(1, special[rows], 0.0)
        torch.sum(g, 1, keepdim=True, out=q_big[rows])
        g.scatter_(1, y, 0.0)

    # 2. the special entries' terms, for the batch
    row_scale = torch.where(keep, scale, 0.0).to(z.dtype)
    extra_value, extra_k, k_y, grad_y_terms, grad_special_terms = _special_entries(
        base, index, special, p, q_big, weight, eps, row_scale, clamped_rows, formulas)

    # 3. the dense terms and the gradient
    # the scale as a number, folded into k as it is computed (no pass to scale the gradient);
    # 0 (a mean over no kept sample) has only ignored rows, whose gradient is zeroed anyway
    s = float(scale) or 1.0
    thresholds = _clamp_thresholds(base, eps, s, z)
    weight_row = None if weight is None else weight.view(1, classes)
    dense_value = torch.empty((rows_total, 1), dtype=z.dtype, device=z.device)
    any_ignored = not bool(keep.all())
    for rows, chunk_clamped in zip(chunks, clamped, strict=True):
        g = grad[rows]
        k, dense_value[rows], dense_k = _dense_false_terms(base, g, s, thresholds if chunk_clamped else None,
                                                           weight_row, workspace)
        # K without the special class's k, summed apart: as p -> 1 its k can dwarf the others
        k_rest = dense_k.add_(k_y[rows])
        total_k = extra_k[rows] + k_rest
        torch.addcmul(k, g, total_k, value=-s, out=g)      # s (k - p K); k carries s already
        if any_ignored and not bool(keep[rows].all()):
            g.masked_fill_(~keep[rows], 0.0)
        y_terms, special_terms = grad_y_terms[rows], grad_special_terms[rows]
        g.scatter_(1, index[rows], torch.addcmul(y_terms[:, :1], y_terms[:, 1:], total_k, value=-1.0))
        # after the target: the special form wins where they are the same class
        g.scatter_(1, special[rows], torch.addcmul(special_terms[:, :1], special_terms[:, 1:], k_rest,
                                                   value=-1.0))
    loss = dense_value.add_(extra_value).masked_fill_(~keep, 0.0).squeeze(1)
    return loss, grad


def _dense_false_terms(base: str, p: Tensor, s: float, thresholds: tuple[float, float] | None,
                       weight_row: Tensor | None, workspace: _Workspace) -> tuple[Tensor, Tensor, Tensor]:
    """The false term of every entry of ``p`` (each at most 1/2; the two special entries of a
    row are 0) and ``s`` times its ``k = p dl/dp``; entries below the clamp get the term at
    ``eps`` and ``k = 0``.

    The same formulas as the two-pass form's dense kernel, arranged for this pass: ``p`` is
    kept (the gradient is formed over it), ``s`` is folded into the operation that makes
    ``k``, and the clamp is applied to the results: both are increasing in ``p``, so the term
    at ``max(p, eps)`` is ``max(F(p), F(eps))`` and the zero of ``k`` below the clamp is one
    threshold at ``k(eps)`` (two in-place passes, no compare or masked fill, no check first):

    * M: ``F = p / (1 - p)``, ``k = p / (1 - p)^2 = F + F^2``;
    * L: with ``r = 1 / sqrt(1 - p^2)`` and ``x = p^2 r^2``: ``F = 1/sqrt(1 - p^2) - 1 =
      x / (1 + r)`` (no cancellation as p -> 0) and ``k = p^2 / (1 - p^2)^(3/2) = x r``.

    ``thresholds``: ``(s F(eps), s k(eps))`` as these kernels round them
    (:func:`_clamp_thresholds`), or None when no entry is below the clamp (the two passes are
    skipped; the zeroed entries then have a term of 0). Returns the buffer holding ``s w k``, the rows' sums of
    ``w F`` and of ``w k`` ``(rows, 1)``, ``w`` the class weights (1 without).
    """
    value_at_eps, k_at_eps = thresholds if thresholds is not None else (None, None)
    k = workspace.get(_K_SLOT, p)
    if base == "m":
        q = torch.sub(_scalar(p, 1.0), p, out=workspace.get(1, p))
        value = torch.addcdiv(_scalar(p, 0.0), p, q, value=s, out=q)         # s F
        if value_at_eps is not None:
            value.clamp_min_(value_at_eps)
        torch.addcmul(value, value, value, value=1.0 / s, out=k)               # s (F + F^2)
        unscale = 1.0 / s
    else:
        r = torch.addcmul(_scalar(p, 1.0), p, p, value=-1.0, out=workspace.get(1, p)).rsqrt_()
        x = torch.mul(p, r, out=workspace.get(0, p)).square_()
        torch.addcmul(_scalar(p, 0.0), x, r, value=s, out=k)                   # s x r
        value = x.div_(r.add_(1.0))
        if value_at_eps is not None:
            value.clamp_min_(value_at_eps)
        unscale = 1.0
    if k_at_eps is not None:
        torch.nn.functional.threshold_(k, k_at_eps, 0.0)
    if weight_row is not None:
        value.mul_(weight_row)
        k.mul_(weight_row)
    dense_value = value.sum(1, keepdim=True)
    if unscale != 1.0:
        dense_value.mul_(unscale)
    return k, dense_value, k.sum(1, keepdim=True).mul_(1.0 / s)


def _scalar(like: Tensor, value: float) -> Tensor:
    """A 0-d tensor of ``value`` (an operand of addcmul / addcdiv), made once per dtype."""
    key = (value, like.dtype, like.device)
    scalar = _SCALARS.get(key)
    if scalar is None:
        scalar = _SCALARS[key] = torch.full((), value, dtype=like.dtype, device=like.device)
    return scalar


# Read-only operands: never written (every use passes them as an input, not as out=).
_SCALARS: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}


def _clamp_thresholds(base: str, eps: float, s: float, like: Tensor) -> tuple[float, float]:
    """``(s F(eps), s k(eps))`` as :func:`_dense_false_terms` rounds them (for M ``F`` carries
    ``s``; for L it does not): the largest over a row long enough to take both the vectorised
    body and the scalar tail of the kernels, whose roundings may differ by a unit."""
    p = torch.full((1, 67), eps, dtype=like.dtype, device=like.device)
    buffers: dict[int, Tensor] = {}

    class _Buffers:
        def get(self, slot: int, tensor: Tensor) -> Tensor:
            return buffers.setdefault(slot, torch.empty_like(tensor))

    k, _, _ = _dense_false_terms(base, p, s, None, None, _Buffers())
    value = buffers[1] if base == "m" else buffers[0]
    return float(value.max()), float(k.max())


def _special_entries(base, y, special, p, q_big, weight, eps, row_scale, clamped_rows,
                     formulas: Formulas) -> tuple[Tensor, ...]:
    """The two entries of each row the dense pass left out, in log space: ``special`` (the
    class with p > 1/2, or the target in a row without one) with its false term, and the
    target ``y`` with its true term. ``p``: their probabilities ``(N, 2)``; ``q_big``: the sum
    of the others' probabilities.

    Returns, each ``(N, 1)`` or ``(N, 2)``: their loss less the ``F(eps)`` the dense pass gave
    their zeroed entries; the ``k`` they add to ``K = sum_c k_c``; the target's ``k`` where it
    is not the special class (0 else); and the terms of their gradients given the dense sums:
    at the target ``a - b K`` and at the special class ``a - b (K - k_special)``, as ``(a, b)``
    with the row scale in them.
    """
    special_is_y = special == y
    has_big = p[:, :1] > 0.5
    log_p = torch.log(p)
    # log(1 - p) is accurate for p <= 1/2 (every class but the big one); the big one's 1 - p
    # is the sum of the others (also where it is the target)
    log_q = torch.where(torch.cat((has_big, has_big & special_is_y), 1), torch.log(q_big),
                        torch.neg(p).log1p_())
    inside = formulas.clamp_logs(log_p, log_q, eps)
    value_special, k_special = formulas.false_term(base, log_p[:, :1], log_q[:, :1])
    value_y, k_y = formulas.true_term(base, log_p[:, 1:], log_q[:, 1:])
    k_pair = torch.cat((k_special, k_y), 1).mul_(inside)
    value_pair = torch.cat((value_special, value_y), 1)
    w_pair = None if weight is None else weight[torch.cat((special, y), 1)]
    if w_pair is not None:
        value_pair.mul_(w_pair)
        k_pair.mul_(w_pair)
    # the special class's false term has no part when it is the target
    value_pair[:, :1].masked_fill_(special_is_y, 0.0)
    # in a chunk with the clamp on, the dense pass gave the zeroed entries (one or two) the
    # term at eps: take it back
    zeroed = (torch.where(special_is_y, 1.0, 2.0) if w_pair is None
              else torch.where(special_is_y, w_pair[:, :1], w_pair.sum(1, keepdim=True)))
    zeroed.masked_fill_(~clamped_rows, 0.0)
    extra_value = value_pair.sum(1, keepdim=True).sub_(zeroed * _false_term_at(base, eps))
    k_special, k_y = k_pair[:, :1], k_pair[:, 1:]
    k_at_special = torch.where(special_is_y, k_y, k_special)
    k_y_apart = k_y.masked_fill(special_is_y, 0.0)
    p_special, p_y = p[:, :1], p[:, 1:]
    # At the big class k - p K = k q - p (K - k): written so, since with p -> 1 the first form
    # cancels k's digits (q is the sum of the others)
    q_special = torch.where(has_big, q_big, 1.0 - p_special)
    grad_y_terms = torch.cat((k_y, p_y), 1).mul_(row_scale)
    grad_special_terms = torch.cat((k_at_special * q_special, p_special), 1).mul_(row_scale)
    return extra_value, k_at_special, k_y_apart, grad_y_terms, grad_special_terms
