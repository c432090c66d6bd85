"""Modules like torch's: every registered loss Module exposes its options as attributes.

For every registered loss (iterating the registry): the attribute names and values match the
constructor's options (read from its signature), ``repr`` shows them, an assignment changes
the next call, and tensor options are buffers that survive a ``state_dict`` round trip.
"""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

import losslab

# Constructor arguments that are not options of the loss: where the parameters are created
# (device, dtype) and the initial values of learnable parameters (GE2E's w and b, exposed as
# the parameters ``w`` and ``b`` themselves).
NOT_OPTIONS = {"device", "dtype", "init_w", "init_b"}
REQUIRED = {"num_classes": 3, "embedding_dim": 4}
NAMES = [info.name for info in losslab.list_losses()]


def _options(name: str) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(losslab.get_info(name).factory).parameters
    return {key: p for key, p in parameters.items() if key not in NOT_OPTIONS}


def _build(name: str, **kwargs):
    required = {key: REQUIRED[key] for key, p in _options(name).items() if p.default is inspect.Parameter.empty}
    return losslab.get_loss(name, **required, **kwargs)


def _expected(name: str) -> dict[str, object]:
    return {key: REQUIRED[key] if p.default is inspect.Parameter.empty else p.default
            for key, p in _options(name).items()}


@pytest.mark.parametrize("name", NAMES)
def test_attributes_match_constructor_options(name):
    module = _build(name)
    for option, value in _expected(name).items():
        assert hasattr(module, option), f"{name}: no attribute {option!r}"
        assert getattr(module, option) == value, (name, option)
        assert type(getattr(module, option)) is type(value), (name, option)
    text = repr(module)
    for option, value in _expected(name).items():
        assert f"{option}={value!r}" in text, (name, option, text)


def test_get_loss_reduction_reads_like_torch():
    assert losslab.get_loss("m").reduction == "mean"
    loss = losslab.get_loss("cross_entropy", reduction="sum", ignore_index=1, label_smoothing=0.1)
    reference = torch.nn.CrossEntropyLoss(reduction="sum", ignore_index=1, label_smoothing=0.1)
    for option in ("reduction", "ignore_index", "label_smoothing", "weight"):
        assert getattr(loss, option) == getattr(reference, option)


@pytest.mark.parametrize("name", ["m", "full_l", "cross_entropy", "softmax_focal", "poly"])
def test_assigned_option_changes_the_next_call(name):
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = _build(name)
    mean = loss(logits, target)
    loss.reduction = "none"
    per_sample = loss(logits, target)
    assert per_sample.shape == (6,)
    torch.testing.assert_close(per_sample.mean(), mean)
    assert "reduction='none'" in repr(loss)


def _tensor_options(name: str) -> list[str]:
    return [key for key in _options(name) if key in ("weight", "pos_weight")]


@pytest.mark.parametrize("name", [n for n in NAMES if _tensor_options(n)])
def test_tensor_options_are_buffers_and_round_trip(name):
    info = losslab.get_info(name)
    classes = 3
    tensors = {key: torch.tensor([0.5, 1.0, 2.0]) for key in _tensor_options(name)}
    module = _build(name, **tensors)
    state = module.state_dict()
    for key, tensor in tensors.items():
        assert getattr(module, key) is not None and key in dict(module.named_buffers())
        torch.testing.assert_close(state[key], tensor)
        assert f"{key}=Tensor(shape=({classes},), dtype=float32)" in repr(module)
    other = _build(name, **{key: torch.zeros(classes) for key in tensors})
    other.load_state_dict(state)
    for key, tensor in tensors.items():
        torch.testing.assert_close(getattr(other, key), tensor)
    # a tensor option of None is an attribute but no entry of the state dict (as in torch)
    plain = _build(name)
    for key in tensors:
        assert getattr(plain, key) is None and key not in plain.state_dict()
    assert info.name == name


def test_weight_buffer_follows_dtype_and_is_used():
    weight = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    loss = losslab.get_loss("cross_entropy", weight=weight).float()
    assert loss.weight.dtype == torch.float32
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target, weight=weight.float()))
