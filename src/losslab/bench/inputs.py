"""The Module and its arguments for one benchmark case (inputs from :mod:`losslab.testing`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from losslab.bench.sizes import SizeSpec, classes_for, kind_of
from losslab.registry import LossInfo
from losslab.testing import example_hyperparameters
from losslab.testing import example_inputs as _testing_inputs


@dataclass
class Inputs:
    """Arguments for one call of a loss Module, and which of them are differentiated."""

    args: tuple[Tensor, ...]
    grad_tensors: tuple[Tensor, ...]
    kwargs: dict[str, Tensor] = field(default_factory=dict)


def required_hyperparameters(info: LossInfo, spec: SizeSpec) -> dict[str, Any]:
    """Values for the hyperparameters without a default (e.g. ArcFace's sizes), from ``spec``."""
    return example_hyperparameters(info.name, classes=classes_for(spec), dim=spec.shape[-1])


# The name the tests used before the inputs moved to losslab.testing.
_required_hyperparameters = required_hyperparameters


def build_loss(info: LossInfo, spec: SizeSpec) -> nn.Module:
    """The registered Module with its factory defaults (required sizes taken from ``spec``)."""
    return info.factory(**required_hyperparameters(info, spec))


def example_inputs(
    info: LossInfo, spec: SizeSpec, module: nn.Module | None = None, *, seed: int = 0,
    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
) -> Inputs:
    """Inputs for ``module(*args)`` at a benchmark size: :func:`losslab.testing.example_inputs`
    with the main input of shape ``spec.shape`` (``module`` is accepted for older callers; the
    inputs follow the registry's ``target_kind``).

    Float arguments are differentiated; targets are valid for the loss (class indices,
    {0, 1} or +-1 labels, probabilities, pair labels).
    """
    if kind_of(info) != spec.kind:
        raise ValueError(f"size {spec.label!r} is for {spec.kind} losses, {info.name!r} is {kind_of(info)}")
    args, kwargs = _testing_inputs(info.name, shape=spec.shape, classes=classes_for(spec), seed=seed,
                                   dtype=dtype, device=device)
    grads = tuple(t for t in (*args, *kwargs.values()) if t.requires_grad)
    return Inputs(args=args, grad_tensors=grads, kwargs=kwargs)
