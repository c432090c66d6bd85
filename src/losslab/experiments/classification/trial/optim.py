"""Optimizers and learning-rate schedules of a comparison run.

``TrainingSettings`` names them (``optimizer="adam"|"adamw"|"sgd"``, ``scheduler="none"|
"cosine"|"step"|"onecycle"``, ``warmup_epochs``, ``grad_clip``); Python users may instead
pass factories (``optimizer_factory(params, settings)``, ``scheduler_factory(optimizer,
settings, steps_per_epoch)``). Every schedule steps once per batch, so a run resumed from an
epoch's checkpoint (which holds the scheduler's state) continues exactly.

Schedules (``T`` = epochs × batches per epoch, ``W`` = warmup_epochs × batches per epoch):

- ``none``: the rate stays ``lr`` (after the warmup, if any);
- ``cosine``: linear warmup over ``W`` steps, then ``lr · (1 + cos(π t / (T − W))) / 2``;
- ``step``: linear warmup, then ×0.1 every third of the remaining epochs (rounded down, at
  least one epoch);
- ``onecycle``: torch's ``OneCycleLR`` with ``max_lr=lr`` over ``T`` steps (its own warmup:
  ``pct_start = max(W / T, 0.3)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULERS: tuple[str, ...] = ("none", "cosine", "step", "onecycle")


def callable_name(function: Callable[..., Any] | None) -> str | None:
    """``module.qualname`` of a factory or hook (recorded in the run's config)."""
    if function is None:
        return None
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def build_optimizer(model: nn.Module, settings: Any) -> torch.optim.Optimizer:
    """The optimizer ``settings`` names (or its ``optimizer_factory``'s)."""
    if settings.optimizer_factory is not None:
        optimizer = settings.optimizer_factory(model.parameters(), settings)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer_factory: expected a torch.optim.Optimizer, got "
                            f"{type(optimizer).__name__}")
        return optimizer
    if settings.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                           nesterov=settings.nesterov, weight_decay=settings.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, settings: Any, steps_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch schedule ``settings`` names (None for a constant rate without warmup)."""
    if settings.scheduler_factory is not None:
        return settings.scheduler_factory(optimizer, settings, steps_per_epoch)
    total = max(1, settings.epochs * steps_per_epoch)
    warmup = min(total, settings.warmup_epochs * steps_per_epoch)
    name = settings.scheduler
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, total_steps=total,
            pct_start=max(warmup / total, 0.3), cycle_momentum=settings.optimizer == "sgd")
    if name == "none" and warmup == 0:
        return None
    step_epochs = max(1, (settings.epochs - settings.warmup_epochs) // 3)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        after = step - warmup
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(after, total - warmup) / max(1, total - warmup)))
        if name == "step":
            return 0.1 ** (after // (step_epochs * steps_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def check_training_options(settings: Any) -> None:
    """Clear errors for the optimizer and schedule fields of ``TrainingSettings``."""
    if settings.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {settings.optimizer!r}")
    if settings.scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler: expected one of {', '.join(SCHEDULERS)}, got {settings.scheduler!r}")
    momentum = settings.momentum
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
    if settings.nesterov and (settings.optimizer != "sgd" or momentum == 0):
        raise ValueError("nesterov: needs optimizer 'sgd' with a momentum > 0")
    warmup = settings.warmup_epochs
    if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < settings.epochs:
        raise ValueError(f"warmup_epochs: expected an integer from 0 to epochs - 1 "
                         f"({settings.epochs - 1}), got {warmup!r}")
    clip = settings.grad_clip
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))
                             or not math.isfinite(clip) or clip <= 0):
        raise ValueError(f"grad_clip: expected a positive max gradient norm, got {clip!r}")
    for name in ("optimizer_factory", "scheduler_factory", "train_step"):
        value = getattr(settings, name)
        if value is not None and not callable(value):
            raise TypeError(f"{name}: expected a callable, got {type(value).__name__}")
