"""The shell every losslab Module shares: options as attributes, forward calls ``functional``.

Like ``torch.nn``'s losses, a Module exposes each constructor option as an attribute of the
same name (``loss.reduction``, ``loss.weight``, ``loss.ignore_index``, ``loss.eps``, ...),
shows them in its ``repr`` and reads them on every call, so that code written for
``nn.CrossEntropyLoss`` (which reads ``loss.weight`` or sets ``loss.reduction``) works
unchanged. Tensor options are buffers: they follow ``.to(device)`` and ``state_dict``.

Options are validated at construction with the validators the functional forms use (so a
Module never holds a value its function would reject later, in the middle of training).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from losslab._validation import (
    check_bool,
    check_eps,
    check_floating,
    check_int,
    check_number,
    check_reduction,
    check_weight_values,
)
from losslab.functional._fused import check_impl

__all__ = ["OPTION_CHECKS", "FunctionalLoss", "check_tensor_option"]

# How an option is checked: ``check(name, value)`` raises, or returns the value.
OptionChecks = Mapping[str, Callable[[str, Any], Any]]

# Options that hold a tensor or None: buffers (a None buffer is an attribute that
# ``state_dict`` leaves out, as ``nn.CrossEntropyLoss(weight=None)`` does).
TENSOR_OPTIONS: tuple[str, ...] = ("weight", "pos_weight")


def check_tensor_option(name: str, value: object) -> Tensor | None:
    """``None`` or a floating tensor of finite values >= 0 (a class or element weight)."""
    if value is None:
        return None
    tensor = check_floating(name, value)
    check_weight_values(name, tensor)
    return tensor


# The checks of the options every loss names alike (the same checks as the functional forms').
# A Module whose option means something else adds its own in ``option_checks``.
OPTION_CHECKS: OptionChecks = {
    "reduction": lambda name, value: check_reduction(value),
    "eps": lambda name, value: check_eps(value),
    "impl": lambda name, value: check_impl(value),
    "weight": check_tensor_option,
    "pos_weight": check_tensor_option,
    "ignore_index": check_int,
    "label_smoothing": lambda name, value: check_number(name, value, low=0.0, high=1.0),
    "gamma": lambda name, value: check_number(name, value, low=0.0),
    "margin": check_number,
    "delta": lambda name, value: check_number(name, value, low=0.0, low_open=True),
    "beta": lambda name, value: check_number(name, value, low=0.0),
    "temperature": lambda name, value: check_number(name, value, low=0.0, low_open=True),
    "scale": lambda name, value: check_number(name, value, low=0.0, low_open=True),
    "smooth_nr": lambda name, value: check_number(name, value, low=0.0),
    "smooth_dr": lambda name, value: check_number(name, value, low=0.0),
    **{flag: check_bool for flag in (
        "full", "from_logits", "squared", "log_target", "swap", "soft_margin", "symmetric",
        "gather_across_ranks", "include_background", "batch", "squared_denominator",
    )},
}


class FunctionalLoss(nn.Module):
    """A ``nn.Module`` that calls ``function(input, target, **options)``.

    Each option is an attribute of the Module (tensor options are buffers, see
    :data:`TENSOR_OPTIONS`); :meth:`options` reads them back, so assigning
    ``loss.reduction = "sum"`` changes the next call, as with torch's losses.
    ``option_checks`` (per class) adds or overrides checks of :data:`OPTION_CHECKS`.
    """

    function: ClassVar[Callable[..., Tensor]]
    option_checks: ClassVar[OptionChecks] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__()
        checks = {**OPTION_CHECKS, **type(self).option_checks}
        self._option_names: tuple[str, ...] = tuple(options)
        for key, value in options.items():
            if key in checks:
                checks[key](key, value)
            if isinstance(value, Tensor) or (value is None and key in TENSOR_OPTIONS):
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)

    def options(self) -> dict[str, Any]:
        """The keyword arguments passed to the functional form on every call (read from the
        attributes, so an assignment after construction takes effect)."""
        return {key: getattr(self, key) for key in self._option_names}

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return type(self).function(input, target, **self.options())

    def extra_repr(self) -> str:
        """Every option, as torch's losses show theirs (tensors by shape and dtype)."""
        return ", ".join(f"{key}={_shown(value)}" for key, value in self.options().items())


def _shown(value: object) -> str:
    if isinstance(value, Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"Tensor(shape={tuple(value.shape)}, dtype={dtype})"
    return repr(value)

