"""The Module of :func:`losslab.functional.linear_loss`: an output layer's loss without logits."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from losslab.functional.linear import linear_loss

__all__ = ["LinearLoss"]


class LinearLoss(nn.Module):
    """``loss(hidden @ weight.T + bias, target)`` without the ``(N, V)`` logits; see
    :func:`losslab.functional.linear_loss`.

    Like torch's loss Modules it holds the options (as attributes: ``loss``, ``ignore_index``,
    ``reduction``, ``chunk_size``, ``z_loss``, ``loss_options``; a ``class_weight`` tensor as a
    buffer, so it follows ``.to(device)`` and ``state_dict``), not the output layer: pass the
    layer's weight (and bias) on each call, e.g. ``criterion(h, model.lm_head.weight, y)``.

    Shape:
        - hidden: ``(..., H)``; weight: ``(V, H)``; bias: ``(V,)``.
        - target: ``(...)``, class indices in ``[0, V)`` or ``ignore_index``.
        - Output: a scalar for ``"mean"`` and ``"sum"``; ``(...)`` for ``"none"``.
    """

    class_weight: Tensor | None

    def __init__(
        self,
        loss: str = "cross_entropy",
        *,
        class_weight: Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        chunk_size: int | None = None,
        z_loss: float = 0.0,
        **loss_options: Any,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.chunk_size = chunk_size
        self.z_loss = z_loss
        self.loss_options = dict(loss_options)
        self.register_buffer("class_weight", class_weight)

    def forward(self, hidden: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None = None) -> Tensor:
        return linear_loss(
            hidden, weight, target, loss=self.loss, bias=bias, ignore_index=self.ignore_index,
            reduction=self.reduction, chunk_size=self.chunk_size, class_weight=self.class_weight,
            z_loss=self.z_loss, **self.loss_options,
        )

    def extra_repr(self) -> str:
        shown = {"loss": self.loss, "reduction": self.reduction, "ignore_index": self.ignore_index,
                 "chunk_size": self.chunk_size, "z_loss": self.z_loss, **self.loss_options}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())
