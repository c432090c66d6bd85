"""Distances and similarities between embeddings, written once for every embedding loss.

As in pytorch-metric-learning, a loss names its metric (``"euclidean"``, ``"cosine"`` ...) and
takes its distances from here, so the zero-norm and zero-distance handling lives in one place.

=====================  ====================================  ======================
metric                 value for rows ``x``, ``y``           kind
=====================  ====================================  ======================
``euclidean``          ``||x - y||_2``                       distance
``squared_euclidean``  ``||x - y||_2^2``                     distance
``cosine``             ``1 - cos(x, y)``                     distance (in [0, 2])
``cosine_similarity``  ``cos(x, y) = x.y / (|x| |y|)``       similarity (in [-1, 1])
``dot``                ``x . y``                             similarity
=====================  ====================================  ======================

Numerics, all of which hold in value AND gradient:

* Euclidean distances are exact at zero distance (no ``sqrt(0)`` with an infinite derivative):
  the gradient of a zero distance is 0, the subgradient the norm has there. Matrices are
  computed by direct differences (``torch.cdist`` without the matrix-product shortcut), so a
  small distance keeps its relative precision instead of cancelling in
  ``|x|^2 + |y|^2 - 2 x.y``.
* Cosine normalises each row by ``max(||x||, eps)`` (``eps=1e-8`` as in
  ``F.cosine_similarity``): a zero-norm row has cosine similarity 0 to everything (cosine
  distance 1) and a finite gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab._validation import check_choice, check_floating

__all__ = [
    "DISTANCE_METRICS",
    "METRICS",
    "SIMILARITY_METRICS",
    "check_metric",
    "cosine_similarity_matrix",
    "distance_matrix",
    "is_similarity",
    "lp_distance",
    "normalize_rows",
    "paired_distance",
]

DISTANCE_METRICS: tuple[str, ...] = ("euclidean", "squared_euclidean", "cosine")
SIMILARITY_METRICS: tuple[str, ...] = ("cosine_similarity", "dot")
METRICS: tuple[str, ...] = DISTANCE_METRICS + SIMILARITY_METRICS

NORM_EPS = 1e-8


def check_metric(name: str, metric: object, allowed: tuple[str, ...] = METRICS) -> str:
    """Raise unless ``metric`` is one of ``allowed``; the message names the argument ``name``."""
    return check_choice(name, metric, allowed)


def is_similarity(metric: str) -> bool:
    """True for metrics where larger means closer (cosine similarity, dot product)."""
    return check_metric("metric", metric) in SIMILARITY_METRICS


def normalize_rows(x: Tensor, eps: float = NORM_EPS) -> Tensor:
    """``x / max(||x||, eps)`` along the last dimension: a zero row stays zero, finite gradient."""
    return F.normalize(x, p=2.0, dim=-1, eps=eps)


def cosine_similarity_matrix(x: Tensor, y: Tensor, eps: float = NORM_EPS) -> Tensor:
    """``cos(x_i, y_j)`` for every row pair: ``(N, D), (M, D) -> (N, M)``."""
    return normalize_rows(x, eps) @ normalize_rows(y, eps).transpose(-1, -2)


def _euclidean_matrix(x: Tensor, y: Tensor) -> Tensor:
    # cdist's direct mode has an exact zero (and a zero gradient) for coincident rows.
    return torch.cdist(x, y, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")


def _check_rows(name_x: str, x: Tensor, name_y: str, y: Tensor) -> None:
    check_floating(name_x, x)
    check_floating(name_y, y)
    if x.dim() != 2:
        raise ValueError(f"{name_x}: expected a 2-D tensor of embeddings (N, D), got shape {tuple(x.shape)}")
    if y.dim() != 2:
        raise ValueError(f"{name_y}: expected a 2-D tensor of embeddings (M, D), got shape {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{name_y}: expected embeddings of dimension D={x.shape[1]} like {name_x}, "
            f"got shape {tuple(y.shape)}"
        )


def distance_matrix(x: Tensor, y: Tensor | None = None, *, metric: str = "euclidean") -> Tensor:
    """The metric between every row of ``x`` and every row of ``y`` (``x`` itself if None).

    Args:
        x: ``(N, D)`` embeddings.
        y: ``(M, D)`` embeddings, or None for ``x`` against itself.
        metric: one of :data:`METRICS`.

    Returns:
        ``(N, M)``: ``out[i, j] = metric(x[i], y[j])``.
    """
    check_metric("metric", metric)
    y = x if y is None else y
    _check_rows("x", x, "y", y)
    if metric == "euclidean":
        return _euclidean_matrix(x, y)
    if metric == "squared_euclidean":
        return _euclidean_matrix(x, y).square()
    if metric == "dot":
        return x @ y.T
    similarity = cosine_similarity_matrix(x, y)
    return similarity if metric == "cosine_similarity" else 1.0 - similarity


def lp_distance(x1: Tensor, x2: Tensor, *, p: float = 2.0, eps: float = 0.0) -> Tensor:
    """``||x1 - x2 + eps||_p`` along the last dimension (``F.pairwise_distance`` semantics).

    ``eps`` is added to the difference, as torch does, so that a zero difference is not the
    non-differentiable point of the norm; with ``eps=0`` the gradient at a zero difference is 0.
    """
    return torch.linalg.vector_norm(x1 - x2 + eps, ord=p, dim=-1)


def paired_distance(x1: Tensor, x2: Tensor, *, metric: str = "euclidean") -> Tensor:
    """The metric between matching rows: ``(*, D), (*, D) -> (*)``, ``out[i] = metric(x1[i], x2[i])``."""
    check_metric("metric", metric)
    check_floating("x1", x1)
    check_floating("x2", x2)
    if x1.shape != x2.shape or x1.dim() == 0:
        raise ValueError(
            f"x2: expected the shape of x1 {tuple(x1.shape)} (at least 1-D), got {tuple(x2.shape)}"
        )
    if metric == "euclidean":
        return lp_distance(x1, x2)
    if metric == "squared_euclidean":
        return (x1 - x2).square().sum(-1)
    if metric == "dot":
        return (x1 * x2).sum(-1)
    similarity = (normalize_rows(x1) * normalize_rows(x2)).sum(-1)
    return similarity if metric == "cosine_similarity" else 1.0 - similarity
