"""Gathering embeddings across ``torch.distributed`` ranks with gradients.

Losses that compare the items of a batch with each other (InfoNCE, NT-Xent, multiple negatives
ranking, GE2E, batch-mined triplet) see more negatives when every rank's embeddings join the
batch. With ``gather_across_ranks=True`` such a loss

1. all-gathers the embeddings of every rank (:func:`gather_across_ranks`); the gather is
   autograd-aware: in backward, the gradients that every rank's loss sends to rank r's slice
   are summed and delivered to rank r;
2. computes the loss terms of its LOCAL rows only, against the gathered batch (the class or
   position labels of the local rows are offset by this rank's start in the gathered batch);
3. divides a ``"mean"`` by the GLOBAL count of terms and multiplies by the world size
   (:func:`global_mean`), so that the average of the per-rank losses is exactly the mean over
   the concatenated batch, whatever the per-rank batch sizes.

Consequence, which the distributed test checks: under ``DistributedDataParallel`` (which
averages parameter gradients over ranks), k processes produce the same loss (averaged over
ranks) and the same parameter gradients as one process on the concatenated batch. The
gradient that reaches a rank's embedding tensor itself is k times the single-process one
(DDP's averaging divides it back by k).

Without an initialised process group every function here is a no-op (world size 1, offset 0),
so the same code runs in a single process.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = [
    "all_gather_with_grad",
    "gather_across_ranks",
    "global_mean",
    "is_distributed",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def world_size(group: Any = None) -> int:
    """Number of ranks (1 without a process group)."""
    return torch.distributed.get_world_size(group) if is_distributed() else 1


def rank(group: Any = None) -> int:
    """This process's rank (0 without a process group)."""
    return torch.distributed.get_rank(group) if is_distributed() else 0


def _gather_sizes(size: int, device: torch.device, group: Any) -> list[int]:
    local = torch.tensor([size], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world_size(group))]
    torch.distributed.all_gather(sizes, local, group=group)
    return [int(s.item()) for s in sizes]


class _AllGather(torch.autograd.Function):
    """Concatenate every rank's tensor along dim 0; backward sums the gradients into each slice."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, group: Any, sizes: list[int]) -> Tensor:
        me = torch.distributed.get_rank(group)
        largest = max(sizes)
        # all_gather needs equal shapes: pad each rank's rows up to the largest, then trim.
        padded = tensor.new_zeros((largest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        pieces = [torch.empty_like(padded) for _ in sizes]
        torch.distributed.all_gather(pieces, padded.contiguous(), group=group)
        ctx.group = group
        ctx.offset = sum(sizes[:me])
        ctx.size = tensor.shape[0]
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)], dim=0)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        # Every rank's loss depends on every slice: sum the gradients of all ranks, keep ours.
        grad = grad_output.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.offset : ctx.offset + ctx.size], None, None


def all_gather_with_grad(tensor: Tensor, group: Any = None) -> Tensor:
    """All ranks' ``tensor`` concatenated along dim 0, differentiable w.r.t. the local slice.

    Ranks may hold different numbers of rows; the other dimensions must agree. Every rank
    must call this (and, if gradients are needed, ``backward``) in the same order. Integer
    tensors (labels) are gathered the same way, without gradients. Without a process group
    the tensor is returned unchanged.
    """
    if not is_distributed() or world_size(group) == 1:
        return tensor
    return gather_across_ranks(tensor, group)[0]


def gather_across_ranks(tensor: Tensor, group: Any = None) -> tuple[Tensor, int]:
    """``(gathered, offset)``: every rank's rows concatenated in rank order, with gradients,
    and the index of this rank's first row in ``gathered``.

    Without a process group: ``(tensor, 0)``.
    """
    if not is_distributed() or world_size(group) == 1:
        return tensor, 0
    if tensor.dim() == 0:
        raise ValueError("tensor: expected at least 1 dimension to gather along, got a 0-d tensor")
    sizes = _gather_sizes(tensor.shape[0], tensor.device, group)
    offset = sum(sizes[: torch.distributed.get_rank(group)])
    return _AllGather.apply(tensor, group, sizes), offset


def global_mean(local_sum: Tensor, local_count: int | Tensor, group: Any = None) -> Tensor:
    """A rank's share of the mean over all ranks: ``local_sum * world / total_count``.

    Averaged over ranks (as DDP averages gradients) this gives ``sum of all terms / number of
    all terms``; a total count of 0 gives 0 (not NaN), with the graph kept. Without a process
    group it is the plain mean ``local_sum / local_count``.
    """
    count = torch.as_tensor(local_count, dtype=local_sum.dtype, device=local_sum.device).detach()
    scale = 1.0
    if is_distributed() and world_size(group) > 1:
        count = count.clone()
        torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.SUM, group=group)
        scale = float(world_size(group))
    return torch.where(count > 0, local_sum * scale / count.clamp_min(1), local_sum * 0.0)
