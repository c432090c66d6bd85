"""Valid inputs for any registered loss, for tests, benchmarks and examples.

The inputs follow the loss's calling convention, read from its registry entry
(:attr:`losslab.registry.LossInfo.target_kind`), so a loss added to the registry with a known
target kind gets inputs without new code here::

    from losslab import get_loss
    from losslab.testing import example_hyperparameters, example_inputs

    args, kwargs = example_inputs("full_l", batch=8, classes=5, seed=0)
    loss = get_loss("full_l", **example_hyperparameters("full_l", classes=5))(*args, **kwargs)
    loss.backward()

Every floating-point input is a leaf that requires a gradient (``requires_grad=False`` to
opt out); targets are valid for the convention (class indices in range, labels in {0, 1} or
{-1, +1}, probabilities that sum to one, every class label drawn at least twice when the batch
allows, so that metric-learning losses find positives). Values are drawn on the CPU from a
``torch.Generator`` seeded with ``seed`` and then moved to ``device``: the same arguments give
the same tensors on every device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from losslab.registry import TARGET_KINDS, get_info, get_loss

if TYPE_CHECKING:
    from torch import nn

__all__ = ["example_hyperparameters", "example_inputs", "example_loss"]

_SIZE_HYPERPARAMETERS = {"num_classes": "classes", "embedding_dim": "dim", "embedding_size": "dim", "dim": "dim"}


def example_hyperparameters(name: str, *, classes: int = 5, dim: int = 16) -> dict[str, int]:
    """Values for the hyperparameters a loss requires (no default), e.g. ArcFace's sizes.

    Args:
        name: a registered loss name or alias.
        classes: the number of classes (``num_classes``).
        dim: the embedding size (``embedding_dim``).

    Returns:
        The keyword arguments :func:`losslab.get_loss` needs beyond the defaults (empty for
        most losses).

    Raises:
        ValueError: a required hyperparameter this helper has no value for.
    """
    info = get_info(name)
    sizes = {"classes": _positive_int("classes", classes), "dim": _positive_int("dim", dim)}
    values: dict[str, int] = {}
    for key, default in info.hyperparameters.items():
        if default != "required":
            continue
        if key not in _SIZE_HYPERPARAMETERS:
            raise ValueError(f"{info.name}: no example value for the required hyperparameter {key!r}")
        values[key] = sizes[_SIZE_HYPERPARAMETERS[key]]
    return values


def example_loss(name: str, *, classes: int = 5, dim: int = 16, **kwargs: Any) -> nn.Module:
    """The registered Module of ``name`` with its defaults, required sizes filled in.

    Args:
        name: a registered loss name or alias.
        classes: the number of classes for a required ``num_classes``.
        dim: the embedding size for a required ``embedding_dim``.
        **kwargs: hyperparameters passed on to :func:`losslab.get_loss`.

    Returns:
        The ``nn.Module``.
    """
    return get_loss(name, **{**example_hyperparameters(name, classes=classes, dim=dim), **kwargs})


def example_inputs(
    name: str,
    *,
    batch: int = 8,
    classes: int = 5,
    dim: int = 16,
    shape: tuple[int, ...] | None = None,
    soft_targets: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    requires_grad: bool = True,
) -> tuple[tuple[Tensor, ...], dict[str, Tensor]]:
    """``(args, kwargs)`` for one call ``module(*args, **kwargs)`` of a registered loss's Module.

    Args:
        name: a registered loss name or alias.
        batch: the number of samples (N).
        classes: the number of classes (C): the logits' class dimension, the label range of
            metric-learning labels, the vocabulary of an output layer. It must match
            ``num_classes`` for losses that own class centres (use
            :func:`example_hyperparameters` with the same value).
        dim: the embedding or hidden size (D).
        shape: the main input's shape instead of ``(batch, classes)``, ``(batch, dim)`` or
            ``(batch, classes, 4, 4)``: ``(N, C, d1..dk)`` for class logits, any shape for
            elementwise losses, ``(N, D)`` for embeddings (speakers: ``N`` utterances in all).
            A zero-size batch is allowed.
        soft_targets: class probabilities instead of class indices, for the losses whose
            target kind accepts both (``"soft_targets"`` in their options).
        dtype: the floating-point dtype of the inputs (targets that are indices are int64).
        device: where the tensors are placed.
        seed: the seed of the values.
        requires_grad: make every floating-point input (not the targets) require a gradient.

    Returns:
        The positional arguments and the keyword arguments (an output layer's ``bias``).

    Raises:
        ValueError: ``soft_targets`` for a loss that takes class indices only, or an
            argument out of range.
    """
    info = get_info(name)
    for argument, value in (("batch", batch), ("classes", classes), ("dim", dim)):
        _positive_int(argument, value, allow_zero=argument == "batch")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating-point torch.dtype, got {dtype!r}")
    if soft_targets and "soft_targets" not in info.options:
        raise ValueError(f"soft_targets: {info.name} takes {TARGET_KINDS[info.target_kind]}, "
                         "not class probabilities")
    generator = torch.Generator().manual_seed(seed)
    draw = _Draw(generator, dtype)
    args, kwargs = _BUILDERS[info.target_kind](draw, batch, classes, dim, shape, soft_targets)
    device = torch.device(device)

    def finish(tensor: Tensor, differentiated: bool) -> Tensor:
        tensor = tensor.to(device)
        return tensor.requires_grad_(requires_grad) if differentiated else tensor

    out_args = tuple(finish(t, d) for t, d in args)
    out_kwargs = {key: finish(t, d) for key, (t, d) in kwargs.items()}
    return out_args, out_kwargs


def _positive_int(argument: str, value: object, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        expected = "an int >= 0" if allow_zero else "an int >= 1"
        raise ValueError(f"{argument}: expected {expected}, got {value!r}")
    return value


class _Draw:
    """The random tensors of one call, from one generator (so one seed fixes them all)."""

    def __init__(self, generator: torch.Generator, dtype: torch.dtype) -> None:
        self.generator, self.dtype = generator, dtype

    def normal(self, *shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(shape, generator=self.generator, dtype=self.dtype) * scale

    def indices(self, high: int, *shape: int) -> Tensor:
        return torch.randint(0, high, shape, generator=self.generator)

    def labels_with_positives(self, classes: int, count: int) -> Tensor:
        """``count`` labels in ``[0, classes)``, each class as often as the count allows."""
        order = torch.randperm(count, generator=self.generator)
        return (torch.arange(count) % max(1, min(classes, count // 2 or 1)))[order]


# A builder returns ([(tensor, differentiated)], {keyword: (tensor, differentiated)}).
_Built = tuple[list[tuple[Tensor, bool]], dict[str, tuple[Tensor, bool]]]
_Builder = Callable[[_Draw, int, int, int, "tuple[int, ...] | None", bool], _Built]


def _class_logits(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    shape = tuple(shape) if shape is not None else (batch, classes)
    logits = draw.normal(*shape)
    if soft:
        target = torch.softmax(draw.normal(*shape), dim=1)
    else:
        target = draw.indices(shape[1], shape[0], *shape[2:])
    return [(logits, True), (target, False)], {}


def _distribution(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    shape = tuple(shape) if shape is not None else (batch, classes)
    log_probabilities = torch.log_softmax(draw.normal(*shape), dim=-1)
    return [(log_probabilities, True), (torch.softmax(draw.normal(*shape), dim=-1), False)], {}


def _binary(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    shape = tuple(shape) if shape is not None else (batch, classes)
    return [(draw.normal(*shape, scale=2.0), True), (draw.indices(2, *shape).to(draw.dtype), False)], {}


def _ranking(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    shape = tuple(shape) if shape is not None else (batch, classes)
    first, second = draw.normal(*shape, scale=2.0), draw.normal(*shape, scale=2.0)
    signs = draw.indices(2, *shape).to(draw.dtype).mul_(2).sub_(1)
    return [(first, True), (second, True), (signs, False)], {}


def _regression(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    shape = tuple(shape) if shape is not None else (batch, classes)
    return [(draw.normal(*shape, scale=2.0), True), (draw.normal(*shape), False)], {}


def _segmentation(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    return _class_logits(draw, batch, classes, dim, shape if shape is not None else (batch, classes, 4, 4), soft)


def _embedding_shape(batch: int, dim: int, shape) -> tuple[int, int]:
    rows, width = tuple(shape) if shape is not None else (batch, dim)
    return rows, width


def _pairs(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    first, second = draw.normal(rows, width), draw.normal(rows, width)
    return [(first, True), (second, True), (draw.indices(2, rows), False)], {}


def _triplets(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    return [(draw.normal(rows, width), True) for _ in range(3)], {}


def _embeddings_and_labels(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    embeddings = draw.normal(rows, width)
    return [(embeddings, True), (draw.labels_with_positives(classes, rows), False)], {}


def _positive_pairs(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    return [(draw.normal(rows, width), True), (draw.normal(rows, width), True)], {}


def _speakers(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    # about eight utterances per speaker, at least two speakers of two utterances each
    speakers = max(2, rows // 8)
    return [(draw.normal(speakers, max(2, rows // speakers), width), True)], {}


def _output_layer(draw: _Draw, batch: int, classes: int, dim: int, shape, soft: bool) -> _Built:
    rows, width = _embedding_shape(batch, dim, shape)
    hidden, weight = draw.normal(rows, width), draw.normal(classes, width, scale=width ** -0.5)
    target, bias = draw.indices(classes, rows), draw.normal(classes, scale=0.1)
    return [(hidden, True), (weight, True), (target, False)], {"bias": (bias, True)}


_BUILDERS: dict[str, _Builder] = {
    "class_index_or_probabilities": _class_logits,
    "class_index": _class_logits,
    "distribution": _distribution,
    "binary": _binary,
    "ranking": _ranking,
    "regression": _regression,
    "segmentation": _segmentation,
    "pairs": _pairs,
    "triplets": _triplets,
    "embeddings+labels": _embeddings_and_labels,
    "positive_pairs": _positive_pairs,
    "speakers": _speakers,
    "hidden+weight+labels": _output_layer,
}

