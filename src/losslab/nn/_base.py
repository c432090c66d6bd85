"""The shell every losslab Module shares: options stored once, forward calls ``functional``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn


class FunctionalLoss(nn.Module):
    """A ``nn.Module`` that calls ``function(input, target, **options)``.

    Tensor-valued options (class weights, ``pos_weight``) are registered as buffers so that
    they follow ``.to(device)`` and ``state_dict``, as in ``torch.nn``'s weighted losses.
    """

    function: ClassVar[Callable[..., Tensor]]

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self._tensor_options: list[str] = []
        self._options: dict[str, Any] = {}
        for key, value in options.items():
            if isinstance(value, Tensor):
                self.register_buffer(key, value)
                self._tensor_options.append(key)
            else:
                self._options[key] = value

    def options(self) -> dict[str, Any]:
        """The keyword arguments passed to the functional form on every call."""
        out = dict(self._options)
        for key in self._tensor_options:
            out[key] = getattr(self, key)
        return out

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return type(self).function(input, target, **self.options())

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self._options.items() if v is not None}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())
