"""The registry's structured fields, checked against the code they describe, and the test inputs
of ``losslab.testing`` for every registered loss."""

from __future__ import annotations

import functools
import inspect

import pytest
import torch

import losslab
from losslab.registry import (
    ACTIVATIONS,
    OPTIONS,
    PAPER_LOSSES,
    TARGET_KINDS,
    LossInfo,
    get_info,
    get_loss,
    list_losses,
)
from losslab.testing import example_hyperparameters, example_inputs, example_loss

EVERY_LOSS = [info.name for info in list_losses()] + [info.name for info in list_losses("output_layer")]
CLASS_LOGITS = ("class_index_or_probabilities", "class_index", "segmentation")


def _accepts(function, keyword: str) -> bool:
    return keyword in inspect.signature(function).parameters


def _call(name: str, **options):
    """The loss of ``name`` (float64) on its example inputs, and those inputs."""
    args, kwargs = example_inputs(name, dtype=torch.float64, seed=3, **options)
    module = example_loss(name).double()
    return module(*args, **kwargs), args, kwargs


def test_every_loss_is_covered():
    assert len(EVERY_LOSS) >= 44 and "linear" in EVERY_LOSS


@pytest.mark.parametrize("name", EVERY_LOSS)
def test_structured_fields_are_present_and_in_their_sets(name):
    info = get_info(name)
    assert info.target_kind in TARGET_KINDS
    assert info.activation in ACTIVATIONS
    assert isinstance(info.fused, bool) and isinstance(info.paper, bool)
    assert set(info.options) <= set(OPTIONS)
    record = info.to_dict()
    # the keys `losslab list --json` had, and the new fields
    for key in ("name", "family", "task", "input", "target", "formula", "reference", "reference_impl",
                "convex", "bounded", "hyperparameters", "notes", "aliases", "extra", "keras",
                "target_kind", "activation", "fused", "paper", "options"):
        assert key in record, key
    assert record["target_kind"] == info.target_kind and record["options"] == list(info.options)


@pytest.mark.parametrize("name", EVERY_LOSS)
def test_hyperparameters_are_the_signature_defaults(name):
    info = get_info(name)
    # inspect.signature of a partial reports the fixed keywords as defaults: drop them
    fixed = info.factory.keywords if isinstance(info.factory, functools.partial) else {}
    expected = {
        key: "required" if p.default is p.empty else p.default
        for key, p in inspect.signature(info.factory).parameters.items()
        if key not in fixed and key not in ("device", "dtype") and p.kind is not p.VAR_KEYWORD
    }
    assert dict(info.hyperparameters) == expected
    # the Module built with its defaults holds those values as attributes, and the functional
    # form has the same defaults for the options they share
    module = example_loss(name)
    functional = inspect.signature(info.functional).parameters
    for key, default in info.hyperparameters.items():
        if default == "required":
            continue
        if key not in ("init_w", "init_b"):  # GE2E's initial values of learned parameters
            value = getattr(module, key)
            assert value is default or value == default, (key, value, default)
        if key in functional and functional[key].default is not inspect.Parameter.empty:
            assert functional[key].default == default, key


def test_explicit_hyperparameters_must_match_the_signature():
    info = get_info("huber")
    fields = {f: getattr(info, f) for f in ("name", "family", "task", "factory", "functional", "input",
                                             "target", "formula", "reference")}
    with pytest.raises(ValueError, match=r"hyperparameters: expected those of huber's factory signature"):
        LossInfo(**fields, hyperparameters={"delta": 2.0, "reduction": "mean"})
    agreeing = LossInfo(**fields, hyperparameters={"reduction": "mean", "delta": 1.0})
    assert agreeing.hyperparameters == info.hyperparameters
    with pytest.raises(ValueError, match=r"target_kind: expected one of .*got 'images'"):
        LossInfo(**fields, target_kind="images")
    with pytest.raises(ValueError, match=r"activation: expected one of softmax, sigmoid, none, got 'relu'"):
        LossInfo(**fields, activation="relu")
    # a family's usual target kind is the default; embedding losses must name theirs
    assert LossInfo(**fields).target_kind == "regression"
    with pytest.raises(ValueError, match=r"target_kind: expected one of .*got None"):
        LossInfo(**{**fields, "family": "embedding"})


def test_arcface_sizes_are_required():
    assert get_info("arcface").hyperparameters["num_classes"] == "required"
    assert example_hyperparameters("arcface", classes=7, dim=3) == {"num_classes": 7, "embedding_dim": 3}
    assert example_hyperparameters("m") == {}


@pytest.mark.parametrize("name", EVERY_LOSS)
def test_fused_iff_the_functional_takes_impl_and_both_paths_agree(name):
    info = get_info(name)
    assert info.fused == _accepts(info.functional, "impl")
    if not info.fused:
        return
    args, _ = example_inputs(name, dtype=torch.float64, seed=5)
    torch.testing.assert_close(info.functional(*args, impl="auto"), info.functional(*args, impl="reference"),
                               rtol=1e-12, atol=1e-12)


def test_paper_losses_are_exactly_the_papers():
    expected = {"m", "full_m", "l", "full_l", "binary_m", "binary_full_m", "binary_l", "binary_full_l", "smae"}
    assert {name for name in EVERY_LOSS if get_info(name).paper} == expected
    assert set(PAPER_LOSSES) == expected and len(PAPER_LOSSES) == len(expected)
    for name in PAPER_LOSSES:
        assert "2303.09935" in get_info(name).reference, name


def test_one_paper_losses_constant_everywhere():
    from losslab import bench
    from losslab.experiments import shapes
    from losslab.experiments.classification import api

    assert bench.PAPER_LOSSES is PAPER_LOSSES and api.PAPER_LOSSES is PAPER_LOSSES
    # the lab compares cross-entropy with the multiclass forms, the figures draw those forms
    assert api.COMPARED_LOSSES == ("cross_entropy", "m", "full_m", "l", "full_l")
    assert inspect.signature(api.compare).parameters["losses"].default == api.COMPARED_LOSSES
    assert shapes.MULTICLASS_PAPER_LOSSES == ("m", "full_m", "l", "full_l")


@pytest.mark.parametrize("name", EVERY_LOSS)
def test_options_are_keywords_the_loss_accepts(name):
    info = get_info(name)
    for option in info.options:
        if option == "soft_targets":
            continue
        default = info.hyperparameters[option]
        assert isinstance(get_loss(name, **example_hyperparameters(name), **{option: default}), torch.nn.Module)
    for option in set(OPTIONS) - set(info.options) - {"soft_targets"}:
        assert option not in info.hyperparameters, option


SOFTMAX = [n for n in EVERY_LOSS if get_info(n).activation == "softmax"]
SIGMOID = [n for n in EVERY_LOSS if get_info(n).activation == "sigmoid"]


def test_the_activation_sets():
    assert {"cross_entropy", "m", "full_l", "softmax_focal", "poly1", "dice", "linear"} <= set(SOFTMAX)
    assert {"binary_cross_entropy", "binary_m", "binary_full_l", "sigmoid_focal"} <= set(SIGMOID)
    assert get_info("kl_div").activation == "none" and get_info("hinge").activation == "none"


@pytest.mark.parametrize("name", SOFTMAX)
def test_softmax_losses_ignore_a_constant_added_to_the_logits(name):
    # softmax(z + c) = softmax(z): the loss of a softmax loss cannot change
    value, args, kwargs = _call(name)
    if name == "linear":                             # the logits are h W^T + b: shift b
        shifted_kwargs = {**kwargs, "bias": kwargs["bias"].detach() + 3.0}
        shifted = example_loss(name).double()(*args, **shifted_kwargs)
    else:
        shifted = example_loss(name).double()(args[0].detach() + 3.0, *args[1:])
    torch.testing.assert_close(shifted, value.detach(), rtol=1e-10, atol=1e-12)
    info = get_info(name)
    if "from_logits" in info.hyperparameters and info.target_kind != "segmentation":
        on_probabilities = info.functional(torch.softmax(args[0].detach(), 1), *args[1:], from_logits=False)
        torch.testing.assert_close(on_probabilities, value.detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SIGMOID)
def test_sigmoid_losses_are_their_probability_form_through_a_sigmoid(name):
    value, (logits, target), _ = _call(name)
    info = get_info(name)
    probabilities = torch.sigmoid(logits.detach())
    if "from_logits" in info.hyperparameters:
        expected = info.functional(probabilities, target, from_logits=False)
    else:
        expected = info.pointwise(probabilities, target).mean()
    torch.testing.assert_close(value.detach(), expected, rtol=1e-9, atol=1e-12)
    # and, unlike a softmax loss, they see a shift of every logit
    shifted = example_loss(name).double()(logits.detach() + 3.0, target)
    assert not torch.allclose(shifted, value.detach())


@pytest.mark.parametrize("name", EVERY_LOSS)
def test_example_inputs_give_a_finite_loss_and_gradient(name):
    value, args, kwargs = _call(name)
    assert value.dtype == torch.float64 and value.ndim == 0 and torch.isfinite(value)
    value.backward()
    leaves = [t for t in (*args, *kwargs.values()) if t.requires_grad]
    assert leaves, "at least one differentiated input"
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("name", [n for n in EVERY_LOSS if "soft_targets" in get_info(n).options])
def test_soft_targets_of_one_hot_rows_equal_the_class_indices(name):
    args, _ = example_inputs(name, dtype=torch.float64, seed=1)
    soft, _ = example_inputs(name, dtype=torch.float64, seed=1, soft_targets=True)
    assert torch.allclose(soft[1].sum(1), torch.ones((), dtype=torch.float64), atol=1e-12) and (soft[1] > 0).all()
    module = example_loss(name).double()
    assert torch.isfinite(module(*soft))
    one_hot = torch.nn.functional.one_hot(args[1], args[0].shape[1]).double()
    torch.testing.assert_close(module(args[0], one_hot), module(*args), rtol=1e-10, atol=1e-12)


def test_example_inputs_are_seeded_and_shaped():
    first, _ = example_inputs("full_l", batch=6, classes=4, seed=9)
    again, _ = example_inputs("full_l", batch=6, classes=4, seed=9)
    other, _ = example_inputs("full_l", batch=6, classes=4, seed=10)
    assert first[0].shape == (6, 4) and first[1].shape == (6,) and first[1].dtype == torch.int64
    assert int(first[1].max()) < 4 and int(first[1].min()) >= 0
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    (logits, labels), _ = example_inputs("dice", shape=(2, 3, 5, 5))
    assert logits.shape == (2, 3, 5, 5) and labels.shape == (2, 5, 5)
    (view,), _ = example_inputs("ge2e", batch=16, dim=4)
    assert view.shape == (2, 8, 4)
    (embeddings, labels), _ = example_inputs("batch_hard_triplet", batch=8, classes=3, dim=2)
    assert embeddings.shape == (8, 2)
    assert torch.bincount(labels).min() >= 2         # every label has a positive
    (_, _, signs), _ = example_inputs("margin_ranking", batch=64, classes=1)
    assert set(signs.unique().tolist()) == {-1.0, 1.0}
    args, kwargs = example_inputs("linear", batch=4, classes=11, dim=6)
    assert [a.shape for a in args] == [(4, 6), (11, 6), (4,)] and kwargs["bias"].shape == (11,)
    frozen, _ = example_inputs("mse", requires_grad=False)
    assert not any(t.requires_grad for t in frozen)


def test_example_inputs_reject_bad_arguments_by_name():
    with pytest.raises(ValueError, match=r"soft_targets: multi_margin takes scores \(N, C\); class indices"):
        example_inputs("multi_margin", soft_targets=True)
    with pytest.raises(ValueError, match=r"batch: expected an int >= 0, got -1"):
        example_inputs("m", batch=-1)
    with pytest.raises(ValueError, match=r"classes: expected an int >= 1, got 0"):
        example_inputs("m", classes=0)
    with pytest.raises(ValueError, match=r"dtype: expected a floating-point torch.dtype, got torch.int64"):
        example_inputs("m", dtype=torch.int64)
    with pytest.raises(ValueError, match=r"name: unknown loss 'nope'"):
        example_inputs("nope")


def test_every_target_kind_has_an_input_builder_and_a_loss():
    from losslab import testing

    assert set(testing._BUILDERS) == set(TARGET_KINDS)
    assert {get_info(n).target_kind for n in EVERY_LOSS} == set(TARGET_KINDS)


def test_testing_is_not_imported_by_losslab():
    import subprocess
    import sys

    code = "import sys, losslab; print('losslab.testing' in sys.modules, 'losslab.bench' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    assert losslab.get_info is get_info
