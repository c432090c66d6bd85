"""Row chunking of the fused passes: on a CPU the elementwise work runs in chunks of
:data:`CHUNK_ELEMENTS` (rows of the input), so the temporaries stay in cache and no
input-sized temporary is allocated: a loss costs about one pass over memory plus the
arithmetic. Under ``torch.compile`` or on an accelerator the whole input is one chunk (Inductor
fuses the pass itself; an accelerator has no cache to fit in and prefers fewer launches).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["CHUNK_ELEMENTS"]


# Elements per chunk: the temporaries of one chunk (a few tensors of this size) stay in the
# CPU's cache, so the whole loss costs about one pass over memory (read input and target,
# write the gradient) instead of one pass per elementwise operation, and it allocates no
# input-sized temporaries (only the gradient it keeps).
CHUNK_ELEMENTS = 1 << 17


def _row_chunks(reference: Tensor, chunk_elements: int | None = None) -> list[slice] | list[type(Ellipsis)]:
    """Slices along dim 0 covering ``reference`` in chunks of about ``CHUNK_ELEMENTS``
    elements; a single slice under ``torch.compile`` (Inductor fuses the whole pass itself)
    or on an accelerator (no cache to fit in; fewer kernel launches)."""
    if reference.dim() == 0:
        return [...]
    rows = reference.shape[0]
    if torch.compiler.is_compiling() or reference.device.type != "cpu":
        return [slice(0, rows)]
    row_numel = max(1, reference[:1].numel())
    step = max(1, (CHUNK_ELEMENTS if chunk_elements is None else chunk_elements) // row_numel)
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)] or [slice(0, 0)]


def _rows_of(tensor: Tensor | None, rows: slice, reference: Tensor) -> Tensor | None:
    """The chunk of a tensor that broadcasts to ``reference``: sliced if it spans dim 0."""
    if tensor is None or reference.dim() == 0:
        return tensor
    if tensor.dim() == reference.dim() and tensor.shape[0] == reference.shape[0] and tensor.shape[0] != 1:
        return tensor[rows]
    return tensor


class _Workspace:
    """Chunk-sized scratch buffers reused across the chunks of one call: a fresh tensor per
    operation costs an allocation whose pages the CPU must fault in again (measured: an
    out-of-place op on a 128K-element chunk took 2-3x the time of the same op in place)."""

    def __init__(self) -> None:
        self._buffers: dict[int, Tensor] = {}

    def get(self, slot: int, like: Tensor) -> Tensor:
        buffer = self._buffers.get(slot)
        if buffer is None or buffer.numel() < like.numel() or buffer.dtype != like.dtype:
            buffer = torch.empty(like.numel(), dtype=like.dtype, device=like.device)
            self._buffers[slot] = buffer
        return buffer[: like.numel()].view(like.shape)


def _zero(like: Tensor) -> Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


def _chunked_result(per_element: Tensor | None, partial_sums: list[Tensor], reduction: str,
                    scale: float, like: Tensor) -> Tensor:
    """The loss from a chunked elementwise pass: the per-element tensor, or the sum of the
    chunks' partial sums (times ``scale`` for "mean"; NaN for the mean of nothing, as torch)."""
    if per_element is not None:
        return per_element
    total = torch.stack(partial_sums).sum() if partial_sums else like.new_zeros(())
    if reduction != "mean":
        return total
    return total * scale if like.numel() else total * math.nan


def _elementwise_forward(chunk: Callable[[slice, float, Tensor], Tensor], z: Tensor, reduction: str,
                         chunk_elements: int | None = None) -> tuple[Tensor, Tensor]:
    """Run ``chunk(rows, scale, grad_rows)`` (the per element loss of those rows; it writes
    ``scale`` times the gradient into ``grad_rows``) over row chunks of ``z``: the loss and the
    gradient, with the reduction's factor folded in."""
    numel = z.numel()
    scale = 1.0 / max(numel, 1) if reduction == "mean" else 1.0
    grad = torch.empty(z.shape, dtype=z.dtype, device=z.device)
    per_element = torch.empty_like(grad) if reduction == "none" else None
    partial_sums = []
    for rows in _row_chunks(z, chunk_elements):
        value = chunk(rows, scale, grad[rows])
        if per_element is None:
            partial_sums.append(value.sum())
        else:
            per_element[rows] = value
    return _chunked_result(per_element, partial_sums, reduction, scale, z), grad
