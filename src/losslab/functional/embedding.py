"""Embedding and metric-learning losses: pairs, triplets, in-batch contrast, class centres, speakers.

Every loss takes its distances and similarities from :mod:`losslab.distances` (so the
zero-norm and zero-distance handling is written once) and follows torch's argument and
reduction conventions. float16 / bfloat16 embeddings are computed in float32. Embedding inputs
of different float dtypes (e.g. a float32 query with float64 keys) are promoted to a common
dtype, as torch's binary operations promote (``torch.promote_types``).

The losses that compare the items of a batch with each other (:func:`info_nce_loss`,
:func:`nt_xent_loss`, :func:`multiple_negatives_ranking_loss`, :func:`ge2e_loss`,
:func:`batch_triplet_loss`) take ``gather_across_ranks=False``. When True, and a
``torch.distributed`` process group is initialised, they all-gather every rank's embeddings
WITH gradients and compute the terms of this rank's rows against the whole gathered batch
(see :mod:`losslab.distributed`). The per-rank ``"mean"`` and ``"sum"`` are scaled so that their
average over ranks is exactly the single-process loss on the concatenated batch; ``"none"``
returns this rank's terms. Without a process group the flag changes nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab import distributed
from losslab._validation import (
    as_class_indices,
    check_bool,
    check_floating,
    check_number,
    check_positive,
    check_reduction,
    check_same_shape,
    check_tensor,
    compute_dtype,
    reduce,
    validation_enabled,
)
from losslab.distances import (
    check_metric,
    cosine_similarity_matrix,
    distance_matrix,
    normalize_rows,
    paired_distance,
)

__all__ = [
    "arcface_loss",
    "batch_triplet_loss",
    "contrastive_loss",
    "ge2e_loss",
    "info_nce_loss",
    "multiple_negatives_ranking_loss",
    "nt_xent_loss",
    "triplet_margin_loss",
]

_SIMILARITIES = {"cosine": "cosine_similarity", "dot": "dot"}
_REDUCTION_ENUM = {"none": 0, "mean": 1, "sum": 2}  # ATen's loss reduction codes


# --- shared checks and reductions ----------------------------------------------------------


def _embeddings(name: str, value: object, ndim: int, layout: str) -> Tensor:
    """A floating tensor of exactly ``ndim`` dimensions, in its compute dtype."""
    tensor = check_floating(name, value)
    if tensor.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor {layout}, got shape {tuple(tensor.shape)}")
    return tensor.to(compute_dtype(tensor))


def _promote(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """Embedding inputs of different float dtypes are promoted to a common one (as torch's
    binary operations do; e.g. float32 with float64 computes in float64), never an error."""
    present = [t for t in tensors if t is not None]
    dtype = present[0].dtype
    for tensor in present[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return tuple(None if t is None else t.to(dtype) for t in tensors)


def _same_rows(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    check_same_shape(name_a, a, name_b, b)


def _labels(name: str, value: object, batch: int) -> Tensor:
    """Integer class labels ``(batch,)`` of any integer dtype, as int64."""
    labels = as_class_indices(name, check_tensor(name, value))
    if labels.shape != (batch,):
        raise ValueError(
            f"{name}: expected one label per embedding, shape ({batch},), got {tuple(labels.shape)}"
        )
    return labels


def _number(name: str, value: object, *, low: float = -math.inf, high: float = math.inf,
            low_open: bool = False, finite: bool = True) -> float:
    return check_number(name, value, low=low, high=high, low_open=low_open, finite=finite)


_flag = check_bool


def _similarity_metric(similarity: object) -> str:
    return _SIMILARITIES[check_metric("similarity", similarity, tuple(_SIMILARITIES))]


def _gather(tensor: Tensor, enabled: bool) -> tuple[Tensor, int]:
    return distributed.gather_across_ranks(tensor) if enabled else (tensor, 0)


def _gathered(enabled: bool) -> bool:
    return enabled and distributed.world_size() > 1


def _reduce_terms(terms: Tensor, reduction: str, gathered: bool, count: Tensor | int | None = None) -> Tensor:
    """``"mean"`` divides by ``count`` (default: number of terms).

    An empty batch (no terms) gives NaN for "mean", as torch's losses do; a non-empty batch
    with ``count`` 0 (no valid triplet) gives 0.

    When the batch was gathered across ranks the mean divides by the global count and both
    ``"mean"`` and ``"sum"`` are multiplied by the world size, so that averaging the per-rank
    losses (as DDP averages gradients) gives the single-process loss.
    """
    if reduction == "none":
        return terms
    total = terms.sum()
    count = terms.numel() if count is None else count
    if gathered:
        if reduction == "sum":
            return total * distributed.world_size()
        return distributed.global_mean(total, count)
    if reduction == "sum":
        return total
    if terms.numel() == 0:
        # an empty batch: the mean of nothing is NaN, as in torch's losses (zero gradient)
        return total + math.nan
    count = torch.as_tensor(count, dtype=total.dtype, device=total.device)
    # a batch without a valid triplet (count 0) gives 0, the documented metric-learning rule
    return torch.where(count > 0, total / count.clamp_min(1), total * 0.0)


def _squared_norm_expansion(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i|^2 + |y_j|^2 - 2 x_i.y_j`` clamped at 0: fast, for ranking only (it cancels)."""
    squared = x.square().sum(1)[:, None] + y.square().sum(1)[None, :]
    return torch.addmm(squared, x, y.T, alpha=-2.0).clamp_min_(0.0)


# Elements of one chunk's (anchors, positives, N) triplet tensor: 2^22 floats = 16 MiB in float32.
_TRIPLET_CHUNK_ELEMENTS = 1 << 22


class _BatchAllTriplets(torch.autograd.Function):
    """Per-anchor sums of ``hinge(margin + D[a, p] - D[a, n])`` over the valid triplets.

    Each anchor's positives are listed first (``positive_index``, ``(n, K)`` padded to the
    largest number of positives K, ``positive_valid`` marking the real ones), so the triplet
    tensor is ``(anchors, K, N)``, not ``(anchors, N, N)``: with classes of size ~k that is
    ``N/k`` times less work. Anchors go in chunks, so memory stays ``O(K N)`` per chunk. The
    backward needs only ``dL/dD`` (``(n, N)``, accumulated in the forward pass): ``D[a, p]``
    gets the summed hinge derivatives of its triplets, ``D[a, n]`` minus them.
    Returns ``(terms (n,), number of valid triplets with a positive loss)``.
    """

    @staticmethod
    def forward(ctx, dist: Tensor, positive_index: Tensor, positive_valid: Tensor,  # type: ignore[override]
                negative: Tensor, margin: float, soft_margin: bool) -> tuple[Tensor, Tensor]:
        anchors, candidates = dist.shape
        most_positives = positive_index.shape[1]
        chunk = max(1, _TRIPLET_CHUNK_ELEMENTS // max(1, most_positives * candidates))
        terms = dist.new_zeros(anchors)
        grad_dist = torch.zeros_like(dist)
        nonzero = torch.zeros((), dtype=torch.long, device=dist.device)
        for start in range(0, anchors, chunk):
            stop = min(start + chunk, anchors)
            d = dist[start:stop]
            index = positive_index[start:stop]
            d_ap = d.gather(1, index)  # (anchor, K)
            valid = positive_valid[start:stop, :, None] & negative[start:stop, None, :]
            violation = (d_ap[:, :, None] + margin) - d[:, None, :]  # (anchor, positive, negative)
            if soft_margin:
                per_triplet = F.softplus(violation).mul_(valid)
                slope = torch.sigmoid(violation).mul_(valid)
            else:
                slope = (violation > 0).logical_and_(valid)
                per_triplet = violation.clamp_min_(0.0).mul_(slope)
                slope = slope.to(dist.dtype)
            terms[start:stop] = per_triplet.sum((1, 2))
            nonzero += (per_triplet > 0).sum()
            # Padding slots have slope 0, so scattering them onto any column adds nothing.
            grad_dist[start:stop] = slope.sum(1).neg_().scatter_add_(1, index, slope.sum(2))
        ctx.save_for_backward(grad_dist)
        ctx.mark_non_differentiable(nonzero)
        return terms, nonzero

    @staticmethod
    def backward(ctx, grad_terms: Tensor, _grad_nonzero: Tensor | None):  # type: ignore[override]
        (grad_dist,) = ctx.saved_tensors
        return grad_terms[:, None] * grad_dist, None, None, None, None, None


class _ScaledGram(torch.autograd.Function):
    """``scale * z @ z.T``; its backward ``scale * (G + G.T) @ z`` is one matrix product, not two."""

    @staticmethod
    def forward(ctx, z: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(z)
        ctx.scale = scale
        return torch.mm(z * scale, z.T)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (z,) = ctx.saved_tensors
        return torch.mm(grad + grad.T, z * ctx.scale), None


# --- pairs and triplets --------------------------------------------------------------------


def check_similar_label(name: str, value: object) -> int:
    """The label of a similar pair in the contrastive loss: the int 0 (Hadsell et al.'s
    convention) or 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
        raise ValueError(f"{name}: expected 0 (Hadsell et al.'s convention) or 1, got {value!r}")
    return value


def contrastive_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    *,
    margin: float = 1.0,
    distance: str = "euclidean",
    similar_label: int = 0,
    squared: bool = True,
    reduction: str = "mean",
) -> Tensor:
    r"""Contrastive loss of Hadsell, Chopra and LeCun (2006) on pairs of embeddings.

    With ``D`` the distance between the two embeddings of a pair, ``Y`` its label and ``m``
    the margin:

    .. math::
        L = (1 - Y)\,\tfrac{1}{2} D^2 + Y\,\tfrac{1}{2} \max(0, m - D)^2
        \quad (\text{squared=True, default}), \qquad
        L = (1 - Y)\, D + Y \max(0, m - D) \quad (\text{squared=False})

    in Hadsell et al.'s convention ``Y = 0`` for a SIMILAR pair. Many libraries
    (sentence-transformers, most tutorials) label similar pairs 1 instead: pass
    ``similar_label=1`` for that convention; the formula is the same with ``Y`` read as
    "dissimilar". ``squared=False`` is the unsquared hinge form of pytorch-metric-learning's
    ``ContrastiveLoss`` (``pos_margin=0``, ``neg_margin=margin``).

    Args:
        input1: ``(N, D)`` or ``(D,)`` embeddings of the first items.
        input2: embeddings of the second items, same shape.
        target: ``(N,)`` or ``()`` pair labels with values 0 and 1 (bool, integer or float).
        margin: ``m > 0``; dissimilar pairs farther apart than ``m`` cost nothing.
        distance: ``"euclidean"`` (``||x1 - x2||``) or ``"cosine"`` (``1 - cos``).
        similar_label: the label value that marks a similar pair, 0 (default) or 1.
        squared: the paper's halved squares (True) or the plain hinge (False).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        The reduced loss, or per-pair losses of shape ``target.shape`` for ``"none"``.

    References:
        Hadsell, Chopra, LeCun, "Dimensionality Reduction by Learning an Invariant Mapping",
        CVPR 2006.
    """
    check_reduction(reduction)
    margin = _number("margin", margin, low=0.0, low_open=True)
    metric = check_metric("distance", distance, ("euclidean", "cosine"))
    similar_label = check_similar_label("similar_label", similar_label)
    squared = _flag("squared", squared)
    input1 = check_floating("input1", input1)
    input2 = check_floating("input2", input2)
    if input1.dim() not in (1, 2):
        raise ValueError(f"input1: expected embeddings of shape (N, D) or (D,), got {tuple(input1.shape)}")
    _same_rows("input1", input1, "input2", input2)
    target = check_tensor("target", target)
    if target.shape != input1.shape[:-1]:
        raise ValueError(
            f"target: expected one label per pair, shape {tuple(input1.shape[:-1])}, got {tuple(target.shape)}"
        )
    if validation_enabled() and target.numel() and not bool(((target == 0) | (target == 1)).all()):
        bad = target[(target != 0) & (target != 1)].flatten()[0].item()
        raise ValueError(f"target: expected pair labels 0 or 1, got {bad!r}")
    dtype = torch.promote_types(compute_dtype(input1), compute_dtype(input2))
    dist = paired_distance(input1.to(dtype), input2.to(dtype), metric=metric)
    similar = target == similar_label
    if squared:
        loss = torch.where(similar, 0.5 * dist.square(), 0.5 * F.relu(margin - dist).square())
    else:
        loss = torch.where(similar, dist, F.relu(margin - dist))
    return reduce(loss, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    r"""Triplet margin loss with ``F.triplet_margin_loss`` semantics (defaults included).

    .. math::
        L = \max\bigl(0,\; m + d(a, p) - d(a, n)\bigr), \qquad
        d(x, y) = \lVert x - y + \epsilon \rVert_p

    ``eps`` is added to the difference before the norm, exactly as torch does. With
    ``swap=True`` (Balntas et al. 2016) ``d(a, n)`` is replaced by ``min(d(a, n), d(p, n))``.

    Args:
        anchor: ``(N, D)`` or ``(D,)``.
        positive: same shape (no broadcasting).
        negative: same shape.
        margin: ``>= 0``, default 1.0.
        p: the norm's order, ``> 0`` (``math.inf`` allowed), default 2.
        eps: added to every difference, default 1e-6.
        swap: use the distance swap.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.

    Returns:
        The reduced loss, or ``(N,)`` (``()`` unbatched) for ``"none"``.

    References:
        Schroff, Kalenichenko, Philbin, "FaceNet", CVPR 2015; Balntas et al., "Learning local
        feature descriptors with triplets and shallow convolutional neural networks", BMVC 2016.
    """
    check_reduction(reduction)
    margin = _number("margin", margin, low=0.0)
    p = _number("p", p, low=0.0, low_open=True, finite=False)     # p = inf: the max norm
    eps = _number("eps", eps, low=0.0)
    swap = _flag("swap", swap)
    anchor = check_floating("anchor", anchor)
    if anchor.dim() not in (1, 2):
        raise ValueError(f"anchor: expected embeddings of shape (N, D) or (D,), got {tuple(anchor.shape)}")
    _same_rows("anchor", anchor, "positive", check_floating("positive", positive))
    _same_rows("anchor", anchor, "negative", check_floating("negative", negative))
    dtype = compute_dtype(anchor)
    if anchor.dtype != dtype:
        anchor, positive, negative = anchor.to(dtype), positive.to(dtype), negative.to(dtype)
    # The checks above are torch's semantics exactly, so the computation is torch's own kernel
    # (the ATen op directly: F.triplet_margin_loss would repeat the checks and rejects margin=0).
    return torch.triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap,
                                     _REDUCTION_ENUM[reduction])


def batch_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    *,
    mining: str = "hard",
    margin: float = 1.0,
    distance: str = "euclidean",
    soft_margin: bool = False,
    average: str = "nonzero",
    reduction: str = "mean",
    gather_across_ranks: bool = False,
) -> Tensor:
    r"""Triplet loss with online mining from class labels (Hermans, Beyer, Leibe 2017).

    A valid triplet ``(a, p, n)`` has ``labels[p] == labels[a]``, ``p != a`` and
    ``labels[n] != labels[a]``; its loss is

    .. math::
        L(a, p, n) = \max\bigl(0,\; m + D(a, p) - D(a, n)\bigr)

    (``softplus(margin + D(a, p) - D(a, n))`` with ``soft_margin=True``; Hermans et al.'s
    soft margin is ``margin=0``).

    * ``mining="hard"`` (batch-hard): one triplet per anchor, the farthest positive and the
      closest negative. ``"mean"`` averages over the anchors that have a valid triplet. The
      pairs are mined on the fast matrix-product distances (no gradient), then the two mined
      distances of each anchor are computed exactly (zero gradient at zero distance); only
      candidates whose distances differ by less than the rounding of ``|a|^2 + |b|^2 - 2 a.b``
      can be mined differently from an exact matrix.
    * ``mining="all"`` (batch-all): every valid triplet. ``"mean"`` averages over the triplets
      with a positive loss (``average="nonzero"``, Hermans et al.'s BA≠0, the default of
      pytorch-metric-learning and sentence-transformers) or over all valid triplets
      (``average="all"``).

    Batch-all goes through the triplet terms in chunks of anchors, each anchor against its own
    positives only (``O(N K)`` memory per chunk for at most ``K`` positives per anchor; the
    reference implementations materialise all ``N^3``).

    A batch with no valid triplet (one class only, or singletons only) gives 0, not NaN,
    with a zero gradient; an empty batch (no anchor) gives NaN for ``"mean"``, as torch's
    losses do. ``"none"`` returns one value per anchor: its batch-hard loss, or the
    sum of its batch-all triplet losses (0 for an anchor without valid triplet).

    Args:
        embeddings: ``(N, D)``.
        labels: ``(N,)`` integer class labels.
        mining: ``"hard"`` or ``"all"``.
        margin: ``>= 0``, default 1.0 (as :func:`triplet_margin_loss`).
        distance: ``"euclidean"``, ``"squared_euclidean"`` or ``"cosine"``.
        soft_margin: softplus instead of the hinge.
        average: ``"nonzero"`` or ``"all"``: the batch-all mean's denominator.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"``.
        gather_across_ranks: mine among the embeddings of every rank (see module docstring).

    Returns:
        The reduced loss, or ``(N,)`` for ``"none"``.

    References:
        Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
        arXiv:1703.07737, 2017.
    """
    check_reduction(reduction)
    mining = check_metric("mining", mining, ("hard", "all"))
    margin = _number("margin", margin, low=0.0)
    metric = check_metric("distance", distance, ("euclidean", "squared_euclidean", "cosine"))
    soft_margin = _flag("soft_margin", soft_margin)
    average = check_metric("average", average, ("nonzero", "all"))
    gather = _flag("gather_across_ranks", gather_across_ranks)
    embeddings = _embeddings("embeddings", embeddings, 2, "of embeddings (N, D)")
    labels = _labels("labels", labels, embeddings.shape[0])

    everyone, offset = _gather(embeddings, gather)
    all_labels, _ = _gather(labels, gather)
    rows = torch.arange(embeddings.shape[0], device=embeddings.device)
    same = labels[:, None] == all_labels[None, :]
    is_self = torch.zeros_like(same)
    is_self[rows, rows + offset] = True
    positive, negative = same & ~is_self, ~same

    if embeddings.shape[0] == 0:
        # no anchors (an empty batch): no terms; the reduction says what that gives
        terms, count = embeddings.sum(1) * 0.0, 0
    elif mining == "hard":
        # Mine on a fast matrix without gradient (for the Euclidean metrics the squared
        # distances by the matrix product, same order), then compute the exact distance of
        # the two mined pairs per anchor: exact values and a zero gradient at zero distance,
        # and no (n, N) distance matrix in the backward pass.
        with torch.no_grad():
            if metric == "cosine":
                score = -cosine_similarity_matrix(embeddings, everyone)
            else:
                score = _squared_norm_expansion(embeddings, everyone)
            hardest_positive = score.masked_fill(~positive, -math.inf).argmax(dim=1)
            hardest_negative = score.masked_fill(~negative, math.inf).argmin(dim=1)
        valid = positive.any(1) & negative.any(1)
        d_ap = paired_distance(embeddings, everyone[hardest_positive], metric=metric)
        d_an = paired_distance(embeddings, everyone[hardest_negative], metric=metric)
        violation = torch.where(valid, margin + d_ap - d_an, 0.0)
        hinged = F.softplus(violation) if soft_margin else F.relu(violation)
        terms = torch.where(valid, hinged, 0.0)
        count = valid.sum()
    else:
        dist = distance_matrix(embeddings, everyone, metric=metric)  # (n, N)
        positive_count = positive.sum(1)
        most_positives = int(positive_count.max()) if positive_count.numel() else 0
        # Each row's positive columns first (a stable sort of the mask), padded to the largest count.
        positive_index = positive.to(torch.uint8).argsort(dim=1, descending=True, stable=True)
        positive_index = positive_index[:, :most_positives]
        positive_valid = torch.arange(most_positives, device=dist.device) < positive_count[:, None]
        terms, nonzero = _BatchAllTriplets.apply(dist, positive_index, positive_valid, negative,
                                                 margin, soft_margin)
        count = nonzero if average == "nonzero" else (positive.sum(1) * negative.sum(1)).sum()
    return _reduce_terms(terms, reduction, _gathered(gather), count)


# --- in-batch contrast -----------------------------------------------------------------------


def info_nce_loss(
    query: Tensor,
    positive_key: Tensor,
    negative_keys: Tensor | None = None,
    *,
    temperature: float = 0.1,
    negative_mode: str = "unpaired",
    similarity: str = "cosine",
    symmetric: bool = False,
    reduction: str = "mean",
    gather_across_ranks: bool = False,
) -> Tensor:
    r"""InfoNCE (van den Oord et al. 2018): cross-entropy of picking the positive among negatives.

    With ``s(q, k)`` the similarity divided by the temperature, per query ``i``:

    .. math::
        L_i = -s(q_i, k_i^+) + \log\Bigl(e^{s(q_i, k_i^+)} + \sum_{k^- \in N_i} e^{s(q_i, k^-)}\Bigr)

    * ``negative_keys=None``: in-batch negatives, ``N_i`` = the other queries' positive keys
      (``logits = q @ k.T``, target ``arange(N)``). ``symmetric=True`` averages this with the
      transposed direction (each key picks its query among all queries), as in CLIP.
    * ``negative_keys`` of shape ``(M, D)`` with ``negative_mode="unpaired"``: every query
      uses all M negatives; of shape ``(N, M, D)`` with ``"paired"``: query i uses its own M.
      The other queries' positives are NOT negatives then (the convention of the
      ``info-nce-pytorch`` package).

    Args:
        query: ``(N, D)``.
        positive_key: ``(N, D)``, row i is query i's positive.
        negative_keys: None, ``(M, D)`` (unpaired) or ``(N, M, D)`` (paired).
        temperature: ``> 0``, default 0.1.
        negative_mode: ``"unpaired"`` or ``"paired"``.
        similarity: ``"cosine"`` (default) or ``"dot"``.
        symmetric: add the key-to-query direction (in-batch negatives only).
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(N,)``, per query; the average of
            the two directions when symmetric).
        gather_across_ranks: use every rank's keys (and queries, when symmetric; unpaired
            negatives too) as candidates.

    References:
        van den Oord, Li, Vinyals, "Representation Learning with Contrastive Predictive
        Coding", arXiv:1807.03748, 2018.
    """
    check_reduction(reduction)
    temperature = _number("temperature", temperature, low=0.0, low_open=True)
    negative_mode = check_metric("negative_mode", negative_mode, ("unpaired", "paired"))
    metric = _similarity_metric(similarity)
    symmetric = _flag("symmetric", symmetric)
    gather = _flag("gather_across_ranks", gather_across_ranks)
    query = _embeddings("query", query, 2, "of query embeddings (N, D)")
    positive_key = _embeddings("positive_key", positive_key, 2, "of positive keys (N, D)")
    _same_rows("query", query, "positive_key", positive_key)
    if negative_keys is not None:
        negative_keys = check_floating("negative_keys", negative_keys)
        negative_keys = negative_keys.to(compute_dtype(negative_keys))
    query, positive_key, negative_keys = _promote(query, positive_key, negative_keys)
    batch, dim = query.shape

    if negative_keys is None:
        keys, offset = _gather(positive_key, gather)
        logits = distance_matrix(query, keys, metric=metric) / temperature
        target = torch.arange(batch, device=query.device) + offset
        terms = F.cross_entropy(logits, target, reduction="none")
        if symmetric:
            queries, _ = _gather(query, gather)
            logits_back = distance_matrix(positive_key, queries, metric=metric) / temperature
            terms = 0.5 * (terms + F.cross_entropy(logits_back, target, reduction="none"))
        return _reduce_terms(terms, reduction, _gathered(gather))

    if symmetric:
        raise ValueError(
            "symmetric: expected False when negative_keys are given (the symmetric form needs "
            "in-batch negatives, negative_keys=None), got True"
        )
    if negative_mode == "unpaired":
        if negative_keys.dim() != 2 or negative_keys.shape[1] != dim:
            raise ValueError(
                f"negative_keys: expected shape (M, {dim}) for negative_mode='unpaired', "
                f"got {tuple(negative_keys.shape)}"
            )
        negatives, _ = _gather(negative_keys, gather)
        negative_logits = distance_matrix(query, negatives, metric=metric)
    else:
        if negative_keys.dim() != 3 or negative_keys.shape[0] != batch or negative_keys.shape[2] != dim:
            raise ValueError(
                f"negative_keys: expected shape ({batch}, M, {dim}) for negative_mode='paired', "
                f"got {tuple(negative_keys.shape)}"
            )
        if metric == "cosine_similarity":
            negative_logits = (normalize_rows(query)[:, None, :] * normalize_rows(negative_keys)).sum(-1)
        else:
            negative_logits = (query[:, None, :] * negative_keys).sum(-1)
    positive_logits = paired_distance(query, positive_key, metric=metric)
    logits = torch.cat([positive_logits[:, None], negative_logits], dim=1) / temperature
    terms = torch.logsumexp(logits, dim=1) - logits[:, 0]
    return _reduce_terms(terms, reduction, _gathered(gather))


def nt_xent_loss(
    view1: Tensor,
    view2: Tensor,
    *,
    temperature: float = 0.1,
    similarity: str = "cosine",
    reduction: str = "mean",
    gather_across_ranks: bool = False,
) -> Tensor:
    r"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR (Chen et al. 2020).

    The ``2N`` embeddings ``z = cat(view1, view2)`` each pick their other view among the
    ``2N - 1`` others (itself excluded), with ``s`` the cosine divided by the temperature:

    .. math::
        L_i = -s(z_i, z_{j(i)}) + \log \sum_{k \ne i} e^{s(z_i, z_k)}

    and the loss averages the ``2N`` terms. Equal to pytorch-metric-learning's
    ``NTXentLoss(temperature)`` on ``cat(view1, view2)`` with labels ``cat(arange(N),
    arange(N))``.

    Args:
        view1: ``(N, D)``, the first augmented view of each item.
        view2: ``(N, D)``, the second view, row-aligned with ``view1``.
        temperature: ``> 0``, default 0.1 (SimCLR's ImageNet setting).
        similarity: ``"cosine"`` (default) or ``"dot"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(2N,)``: view1 rows, then view2 rows).
        gather_across_ranks: every rank's views are candidates (see module docstring).

    References:
        Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
        Visual Representations", ICML 2020.
    """
    check_reduction(reduction)
    temperature = _number("temperature", temperature, low=0.0, low_open=True)
    metric = _similarity_metric(similarity)
    gather = _flag("gather_across_ranks", gather_across_ranks)
    view1 = _embeddings("view1", view1, 2, "of embeddings (N, D)")
    view2 = _embeddings("view2", view2, 2, "of embeddings (N, D)")
    _same_rows("view1", view1, "view2", view2)
    view1, view2 = _promote(view1, view2)
    batch = view1.shape[0]
    all1, offset = _gather(view1, gather)
    all2, _ = _gather(view2, gather)
    total = all1.shape[0]
    local = torch.cat([view1, view2])
    queries = normalize_rows(local) if metric == "cosine_similarity" else local
    if all1 is view1:  # not gathered: the keys are the queries, the logits a Gram matrix
        logits = _ScaledGram.apply(queries, 1.0 / temperature)
    else:
        keys = torch.cat([all1, all2])
        keys = normalize_rows(keys) if metric == "cosine_similarity" else keys
        # 1 / temperature scales the (2n, D) queries, not the (2n, 2N) logits.
        logits = (queries / temperature) @ keys.T
    rows = torch.arange(batch, device=view1.device) + offset
    own = torch.cat([rows, rows + total])  # each local row's own column
    partner = torch.cat([rows + total, rows])
    # In place: the matrix product's backward does not need its output.
    logits[torch.arange(2 * batch, device=view1.device), own] = -math.inf
    terms = F.cross_entropy(logits, partner, reduction="none")
    return _reduce_terms(terms, reduction, _gathered(gather))


def multiple_negatives_ranking_loss(
    anchors: Tensor,
    positives: Tensor,
    negatives: Tensor | None = None,
    *,
    scale: float = 20.0,
    similarity: str = "cosine",
    symmetric: bool = False,
    reduction: str = "mean",
    gather_across_ranks: bool = False,
) -> Tensor:
    r"""Multiple negatives ranking loss (Henderson et al. 2017), sentence-transformers semantics.

    Scores ``scale * cos(a_i, c)`` of every anchor against every candidate ``c``: all the
    positives of the batch, then all the hard negatives; cross-entropy with target ``i`` (the
    anchor's own positive, labels ``arange(B)``), with ``s`` the scale:

    .. math::
        L_i = -s \cos(a_i, p_i) + \log \sum_c e^{s \cos(a_i, c)}

    ``symmetric=True`` also lets each positive pick its anchor among all anchors and averages
    the two cross-entropies (sentence-transformers' ``MultipleNegativesSymmetricRankingLoss``,
    i.e. ``directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"``).

    Args:
        anchors: ``(B, D)``.
        positives: ``(B, D)``.
        negatives: None, ``(B, D)`` (one hard negative per anchor) or ``(B, K, D)``; every
            negative is a candidate for every anchor.
        scale: ``> 0``, the inverse temperature, default 20.
        similarity: ``"cosine"`` (default) or ``"dot"`` (then use ``scale=1``).
        symmetric: add the positive-to-anchor direction.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(B,)``).
        gather_across_ranks: every rank's anchors, positives and negatives are candidates
            (sentence-transformers' ``gather_across_devices``).

    References:
        Henderson et al., "Efficient Natural Language Response Suggestion for Smart Reply",
        arXiv:1705.00652, 2017; Reimers and Gurevych, sentence-transformers.
    """
    check_reduction(reduction)
    scale = _number("scale", scale, low=0.0, low_open=True)
    metric = _similarity_metric(similarity)
    symmetric = _flag("symmetric", symmetric)
    gather = _flag("gather_across_ranks", gather_across_ranks)
    anchors = _embeddings("anchors", anchors, 2, "of anchor embeddings (B, D)")
    positives = _embeddings("positives", positives, 2, "of positive embeddings (B, D)")
    _same_rows("anchors", anchors, "positives", positives)
    if negatives is not None:
        negatives = check_floating("negatives", negatives)
        negatives = negatives.to(compute_dtype(negatives))
    anchors, positives, negatives = _promote(anchors, positives, negatives)
    batch, dim = anchors.shape
    candidates, offset = _gather(positives, gather)
    if negatives is not None:
        if negatives.dim() == 2:
            negatives = negatives[:, None, :]
        if negatives.dim() != 3 or negatives.shape[0] != batch or negatives.shape[2] != dim:
            raise ValueError(
                f"negatives: expected shape ({batch}, {dim}) or ({batch}, K, {dim}), "
                f"got {tuple(negatives.shape)}"
            )
        all_negatives, _ = _gather(negatives, gather)
        candidates = torch.cat([candidates, all_negatives.transpose(0, 1).reshape(-1, dim)])
    target = torch.arange(batch, device=anchors.device) + offset
    scores = scale * distance_matrix(anchors, candidates, metric=metric)
    terms = F.cross_entropy(scores, target, reduction="none")
    if symmetric:
        all_anchors, _ = _gather(anchors, gather)
        scores_back = scale * distance_matrix(positives, all_anchors, metric=metric)
        terms = 0.5 * (terms + F.cross_entropy(scores_back, target, reduction="none"))
    return _reduce_terms(terms, reduction, _gathered(gather))


# --- class centres and speakers ----------------------------------------------------------------


def arcface_loss(
    embeddings: Tensor,
    labels: Tensor,
    centers: Tensor,
    *,
    scale: float = 64.0,
    margin: float = 0.5,
    reduction: str = "mean",
) -> Tensor:
    r"""ArcFace, additive angular margin loss (Deng et al. 2018).

    With ``cos(theta_j)`` the cosine between an embedding and class centre ``j``, the target
    class's logit gets the angular margin, then softmax cross-entropy on ``scale`` (``s``)
    times the logits (the second case keeps the logit decreasing in theta):

    .. math::
        \text{logit}_y = \begin{cases} \cos(\theta_y + m) & \theta_y \le \pi - m \\
                         \cos\theta_y - m \sin m & \text{otherwise} \end{cases}, \qquad
        \text{logit}_j = \cos\theta_j \;(j \ne y), \qquad
        L = \mathrm{CE}(s \cdot \text{logits}, y)

    ``cos(theta + m)`` is computed as ``cos(theta) cos(m) - sin(theta) sin(m)`` with
    ``sin(theta) = sqrt(max(1 - cos^2, eps))`` (``eps`` the dtype's resolution): no ``acos``,
    so the loss and its gradient stay finite at ``cos = ±1`` (where the exact derivative of
    ``theta`` is infinite). Under autocast, and for float16 / bfloat16 inputs, everything is
    computed in float32: ``scale=64`` logits overflow half precision.

    Args:
        embeddings: ``(N, D)``.
        labels: ``(N,)`` class indices in ``[0, C)``.
        centers: ``(C, D)`` class-centre matrix (need not be normalised).
        scale: ``s > 0``, default 64.
        margin: ``m`` in radians, ``[0, pi)``, default 0.5.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(N,)``).

    References:
        Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
        Recognition", CVPR 2019 (arXiv:1801.07698).
    """
    check_reduction(reduction)
    scale = _number("scale", scale, low=0.0, low_open=True)
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < math.pi:
        raise ValueError(f"margin: expected an angle in radians in [0, pi), got {margin!r}")
    margin = float(margin)
    embeddings = _embeddings("embeddings", embeddings, 2, "of embeddings (N, D)")
    centers = check_floating("centers", centers)
    if centers.dim() != 2 or centers.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"centers: expected a class-centre matrix of shape (C, {embeddings.shape[1]}), "
            f"got {tuple(centers.shape)}"
        )
    labels = _labels("labels", labels, embeddings.shape[0])
    num_classes = centers.shape[0]
    if validation_enabled() and labels.numel():
        bad = (labels < 0) | (labels >= num_classes)
        if bool(bad.any()):
            raise ValueError(
                f"labels: expected class indices in [0, {num_classes - 1}], got {int(labels[bad][0])}"
            )
    dtype = torch.promote_types(embeddings.dtype, compute_dtype(centers))
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        cosine = cosine_similarity_matrix(embeddings.to(dtype), centers.to(dtype))
        target_cos = cosine.gather(1, labels[:, None]).clamp(-1.0, 1.0)
        sine = torch.sqrt((1.0 - target_cos.square()).clamp_min(torch.finfo(dtype).eps))
        with_margin = target_cos * math.cos(margin) - sine * math.sin(margin)
        # theta > pi - m  <=>  cos(theta) < cos(pi - m) = -cos(m)
        fallback = target_cos - margin * math.sin(margin)
        target_logit = torch.where(target_cos >= -math.cos(margin), with_margin, fallback)
        logits = cosine.scatter(1, labels[:, None], target_logit) * scale
        return F.cross_entropy(logits, labels, reduction=reduction)


def _check_ge2e_scalar(name: str, value: object, positive: bool) -> Tensor | float:
    if isinstance(value, Tensor):
        if not value.is_floating_point() or value.numel() != 1:
            raise ValueError(
                f"{name}: expected a number or a one-element floating tensor, got dtype "
                f"{value.dtype} and shape {tuple(value.shape)}"
            )
        if positive and validation_enabled() and not bool(value.detach().reshape(()) > 0):
            raise ValueError(f"{name}: expected a value > 0, got {value.detach().reshape(()).item()!r}")
        return value.reshape(())
    if positive:
        return check_positive(name, value)  # type: ignore[arg-type]
    return _number(name, value)


def ge2e_loss(
    embeddings: Tensor,
    *,
    w: Tensor | float = 10.0,
    b: Tensor | float = -5.0,
    variant: str = "softmax",
    reduction: str = "mean",
    gather_across_ranks: bool = False,
) -> Tensor:
    r"""Generalized end-to-end loss for speaker verification (Wan et al. 2018).

    For utterance ``i`` of speaker ``j`` (embedding ``e_ji``) and speaker centroids ``c_k``:

    .. math::
        S_{ji,k} = w \cos(e_{ji}, c_k) + b \;(k \ne j), \qquad
        S_{ji,j} = w \cos(e_{ji}, c_j^{(-i)}) + b, \qquad
        c_j^{(-i)} = \operatorname{mean}_{m \ne i} e_{jm}

        L_{\text{softmax}}(e_{ji}) = -S_{ji,j} + \log \sum_k e^{S_{ji,k}}, \qquad
        L_{\text{contrast}}(e_{ji}) = 1 - \sigma(S_{ji,j}) + \max_{k \ne j} \sigma(S_{ji,k})

    The own-speaker centroid excludes the utterance itself, as in the paper. The paper sums
    over all utterances (``reduction="sum"``); ``"mean"`` averages them. The paper feeds
    L2-normalised embeddings; the centroids are means of the embeddings as given.

    Args:
        embeddings: ``(N, M, D)``: N >= 2 speakers, M >= 2 utterances each.
        w: similarity scale, ``> 0`` (a float, or a one-element tensor to learn it; see
            :class:`losslab.nn.GE2ELoss`, which keeps it positive), default 10.
        b: similarity bias, default -5.
        variant: ``"softmax"`` or ``"contrast"``.
        reduction: ``"mean"`` | ``"sum"`` | ``"none"`` (``(N, M)``).
        gather_across_ranks: every rank's speakers are candidates; ranks hold different
            speakers with the same M.

    References:
        Wan, Wang, Papir, Lopez Moreno, "Generalized End-to-End Loss for Speaker
        Verification", ICASSP 2018 (arXiv:1710.10467).
    """
    check_reduction(reduction)
    variant = check_metric("variant", variant, ("softmax", "contrast"))
    gather = _flag("gather_across_ranks", gather_across_ranks)
    w = _check_ge2e_scalar("w", w, positive=True)
    b = _check_ge2e_scalar("b", b, positive=False)
    embeddings = _embeddings("embeddings", embeddings, 3, "(speakers, utterances, dim)")
    speakers, utterances, dim = embeddings.shape
    if utterances < 2:
        raise ValueError(
            f"embeddings: expected at least 2 utterances per speaker (the own centroid excludes "
            f"the utterance), got shape {tuple(embeddings.shape)}"
        )
    everyone, offset = _gather(embeddings, gather)
    if everyone.shape[0] < 2:
        raise ValueError(f"embeddings: expected at least 2 speakers in total, got shape {tuple(everyone.shape)}")
    centroids = everyone.mean(1)  # (N_all, D)
    flat = embeddings.reshape(-1, dim)
    cosine = cosine_similarity_matrix(flat, centroids).reshape(speakers, utterances, -1)
    own_exclusive = (embeddings.sum(1, keepdim=True) - embeddings) / (utterances - 1)
    own_cosine = (normalize_rows(embeddings) * normalize_rows(own_exclusive)).sum(-1)  # (n, M)
    own = (torch.arange(speakers, device=embeddings.device) + offset)[:, None].expand(speakers, utterances)
    is_own = F.one_hot(own, everyone.shape[0]).bool()
    cosine = torch.where(is_own, own_cosine[..., None], cosine)
    scores = w * cosine + b
    own_score = scores.gather(2, own[..., None]).squeeze(2)
    if variant == "softmax":
        terms = torch.logsumexp(scores, dim=2) - own_score
    else:
        others = torch.sigmoid(scores).masked_fill(is_own, -math.inf).amax(dim=2)
        terms = 1.0 - torch.sigmoid(own_score) + others
    return _reduce_terms(terms, reduction, _gathered(gather))
