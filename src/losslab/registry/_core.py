"""The loss registry: one metadata record per loss, and a factory for its Module."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

FAMILIES: tuple[str, ...] = (
    "classification",
    "binary",
    "margin",
    "embedding",
    "segmentation",
    "regression",
    "output_layer",
)

# Families whose Modules do not take ``(input, target)``: listed only when asked for by name,
# so that code iterating over every loss (benchmarks, convention checks) sees the usual call.
SEPARATE_FAMILIES: tuple[str, ...] = ("output_layer",)


@dataclass(frozen=True)
class LossInfo:
    """What a user needs to know to pick a loss, and how to build it.

    Attributes:
        name: registry name (``get_loss(name)``).
        family: one of :data:`FAMILIES`.
        task: what it is for, in words.
        factory: builds the ``nn.Module``; keyword arguments are the hyperparameters.
        functional: the pure function in ``losslab.functional``.
        input: the input convention (shape and meaning).
        target: the target convention.
        formula: the per-element (or per-sample) loss, in plain text.
        reference: the paper or source that defines it.
        reference_impl: the implementation it matches exactly, if any.
        convex: convex in its natural argument (p, the logit, or the error); None if n/a.
        bounded: bounded above.
        hyperparameters: the hyperparameters and their defaults.
        notes: anything a user should know (stability, conventions).
        aliases: other accepted names.
        extra: an experimental loss, not a recommended default.
        pointwise: for the analysis figures: ``f(p, y)`` for a single probability output
            (classification) or ``f(e)`` for an error (regression), elementwise, no reduction.
        keras: the names of its Keras 3 forms in :mod:`losslab.keras` (``keras.losses.Loss``
            subclasses), empty if it has none. Plain strings, so that reading the registry
            never imports Keras.
    """

    name: str
    family: str
    task: str
    factory: Callable[..., nn.Module]
    functional: Callable[..., Tensor] | None
    input: str
    target: str
    formula: str
    reference: str
    reference_impl: str | None = None
    convex: bool | None = None
    bounded: bool | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    aliases: tuple[str, ...] = ()
    extra: bool = False
    pointwise: Callable[..., Tensor] | None = None
    keras: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The metadata as plain data (for JSON, tables and reports)."""
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "input": self.input,
            "target": self.target,
            "formula": self.formula,
            "reference": self.reference,
            "reference_impl": self.reference_impl,
            "convex": self.convex,
            "bounded": self.bounded,
            "hyperparameters": {k: _plain(v) for k, v in self.hyperparameters.items()},
            "notes": self.notes,
            "aliases": list(self.aliases),
            "extra": self.extra,
            "keras": [f"losslab.keras.{name}" for name in self.keras],
        }


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None), list, tuple)) else repr(value)


_REGISTRY: dict[str, LossInfo] = {}
_ALIASES: dict[str, str] = {}


def register(info: LossInfo) -> LossInfo:
    """Add a loss to the registry; names and aliases must be new."""
    if info.family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {info.family!r}")
    for key in (info.name, *info.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"name: {key!r} is already registered")
    _REGISTRY[info.name] = info
    for alias in info.aliases:
        _ALIASES[alias] = info.name
    return info


def _unknown(name: object) -> ValueError:
    names = sorted(_REGISTRY)
    close = difflib.get_close_matches(str(name), names + sorted(_ALIASES), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ValueError(f"name: unknown loss {name!r}{hint}; registered losses: {', '.join(names)}")


def get_info(name: str) -> LossInfo:
    """The metadata record of a registered loss (by name or alias)."""
    if not isinstance(name, str):
        raise TypeError(f"name: expected a loss name (str), got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise _unknown(name)
    return _REGISTRY[key]


def get_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build the ``nn.Module`` of a registered loss, e.g. ``get_loss("full_l", weight=w)``."""
    info = get_info(name)
    accepted = _keywords(info)
    unknown = [key for key in kwargs if accepted is not None and key not in accepted]
    if unknown:
        # Checked here, so the message names the loss rather than the class behind it
        # (``MLoss.__init__()`` for "l").
        allowed = ", ".join(accepted) or "none"
        close = difflib.get_close_matches(unknown[0], accepted, n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise TypeError(
            f"{info.name}: unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}{hint}; its keyword arguments: {allowed}"
        )
    try:
        return info.factory(**kwargs)
    except TypeError as error:
        allowed = ", ".join(accepted if accepted is not None else info.hyperparameters) or "none"
        raise TypeError(f"{info.name}: {error}; its keyword arguments: {allowed}") from error


def _keywords(info: LossInfo) -> list[str] | None:
    """The keyword arguments the factory accepts (None when it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(info.factory).parameters.values()
    except (TypeError, ValueError):
        return list(info.hyperparameters)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def list_losses(family: str | None = None, *, include_extras: bool = True) -> list[LossInfo]:
    """The registered losses (optionally of one family), in registration order.

    Without ``family``: every ``(input, target)`` loss; the ``"output_layer"`` family (Modules
    called as ``(hidden, weight, target)``, e.g. ``linear``) is listed only by its name.
    """
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    chosen = [
        info
        for info in _REGISTRY.values()
        if (info.family == family if family is not None else info.family not in SEPARATE_FAMILIES)
        and (include_extras or not info.extra)
    ]
    return sorted(chosen, key=lambda info: FAMILIES.index(info.family))


def loss_names(family: str | None = None) -> list[str]:
    return [info.name for info in list_losses(family)]
