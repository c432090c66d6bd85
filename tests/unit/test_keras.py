"""losslab.keras: the Keras 3 losses equal losslab.functional on the torch and JAX backends.

This module runs on the backend of ``KERAS_BACKEND`` (torch when unset). In that run,
``test_other_required_backends`` starts the same module in a child pytest for each other
required backend (torch and JAX), so one ``pytest tests/unit/test_keras.py`` checks both; a Keras
backend is fixed per process, which is why a child process is needed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

if sys.version_info < (3, 11):  # keras 3.15 and jax 0.10 need Python >= 3.11
    pytest.importorskip("keras", reason="losslab[keras] needs Python >= 3.11")

os.environ.setdefault("KERAS_BACKEND", "torch")

import losslab
from losslab.functional import alternate as AF
from losslab.functional import regression as RF

# Keras and losslab.keras are imported when the first test of this module runs, not when it is
# collected (Keras and its backend take seconds to import): see the autouse fixture below.
keras = LK = None

# Keras' own torch-to-numpy conversion, under numpy 2 (not losslab's code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

BACKEND = os.environ["KERAS_BACKEND"]  # Keras takes its backend from this variable
REQUIRED_BACKENDS = ("torch", "jax")
CHILD = os.environ.get("LOSSLAB_KERAS_CHILD") == "1"
ROOT = Path(__file__).resolve().parents[2]
RTOL, ATOL = 1e-5, 1e-6

KINDS = ("m", "full_m", "l", "full_l")
STEM = {"m": "MLoss", "full_m": "FullMLoss", "l": "LLoss", "full_l": "FullLLoss"}
TORCH_MULTICLASS = {"m": AF.m_loss, "l": AF.l_loss}
TORCH_BINARY = {"m": AF.binary_m_loss, "l": AF.binary_l_loss}
ALL_CLASSES = [f"{form}{STEM[k]}" for form in ("Categorical", "SparseCategorical", "Binary") for k in KINDS]
ALL_CLASSES += ["SMAELoss", "LogCoshLoss"]


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keras_modules():
    """Import Keras and losslab.keras for the tests of this module (module globals, so that the
    helpers below reach them too)."""
    global keras, LK
    import keras as keras_module

    import losslab.keras as losslab_keras

    keras, LK = keras_module, losslab_keras
    assert keras.backend.backend() == BACKEND


def value_and_grad(fn, x: np.ndarray, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """``fn(x)`` and its gradient in x, through the current backend's autodiff."""
    if BACKEND == "torch":
        tensor = torch.tensor(x).to(getattr(torch, dtype)).requires_grad_(True)
        value = fn(tensor)
        (grad,) = torch.autograd.grad(value, tensor)
        return value.detach().float().numpy(), grad.float().numpy()
    if BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        value, grad = jax.value_and_grad(fn)(jnp.asarray(x, dtype=dtype))
        return np.asarray(value, dtype=np.float32), np.asarray(grad, dtype=np.float32)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensor = tf.Variable(tf.cast(x, dtype))
        with tf.GradientTape() as tape:
            value = fn(tensor)
        return np.asarray(value, np.float32), np.asarray(tape.gradient(value, tensor), np.float32)
    raise AssertionError(f"no autodiff helper for backend {BACKEND}")


def torch_value_and_grad(fn, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tensor = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    value = fn(tensor)
    (grad,) = torch.autograd.grad(value, tensor)
    return value.detach().numpy(), grad.numpy()


def keras_loss(class_name: str, **kwargs) -> keras.losses.Loss:
    return getattr(LK, class_name)(**kwargs)


def weighted_batch_mean(per_sample: torch.Tensor, sample_weight: np.ndarray | None) -> torch.Tensor:
    """Keras' "sum_over_batch_size": sum(w loss) / number of loss entries."""
    if sample_weight is None:
        return per_sample.mean()
    w = torch.tensor(sample_weight, dtype=per_sample.dtype)
    w = w.reshape(w.shape + (1,) * (per_sample.dim() - w.dim()))
    return (per_sample * w).sum() / per_sample.numel()


def assert_close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=RTOL, atol=ATOL, err_msg=what)


RNG = np.random.default_rng(14)
N, C = 8, 5
LOGITS = (RNG.normal(size=(N, C)) * 2.0).astype(np.float32)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
INDICES = RNG.integers(0, C, size=N)
SOFT = RNG.dirichlet(np.ones(C), size=N).astype(np.float32)
SOFT[: N // 2] = np.eye(C, dtype=np.float32)[INDICES[: N // 2]]  # half one-hot, half soft
SAMPLE_WEIGHT = RNG.uniform(0.2, 2.0, size=N).astype(np.float32)
SEQ_LOGITS = (RNG.normal(size=(3, 4, C)) * 2.0).astype(np.float32)  # (N, T, C), classes last
SEQ_INDICES = RNG.integers(0, C, size=(3, 4))
BIN_LOGITS = (RNG.normal(size=(N, 3)) * 3.0).astype(np.float32)
BIN_PROBS = (1.0 / (1.0 + np.exp(-BIN_LOGITS))).astype(np.float32)
BIN_PROBS[0, 0], BIN_PROBS[1, 1] = 1.0, 0.0  # clipped on both sides: gradient 0 in both
BIN_TARGET = RNG.integers(0, 2, size=(N, 3)).astype(np.float32)
BIN_TARGET[2] = [0.3, 0.9, 0.5]  # soft labels
PRED = RNG.normal(size=(N, 3)).astype(np.float32) * 3.0
TARGET = RNG.normal(size=(N, 3)).astype(np.float32)


# --- values and gradients equal losslab.functional --------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample_weight"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("form", ["Categorical", "SparseCategorical"])
@pytest.mark.parametrize("kind", KINDS)
def test_multiclass_matches_torch(kind, form, from_logits, weighted):
    full, base = kind.startswith("full"), kind.removeprefix("full_")
    x = LOGITS if from_logits else PROBS
    y = SOFT if form == "Categorical" else INDICES
    sw = SAMPLE_WEIGHT if weighted else None
    loss = keras_loss(f"{form}{STEM[kind]}", from_logits=from_logits)
    value, grad = value_and_grad(lambda p: loss(y, p, sample_weight=sw), x)

    target = torch.tensor(y) if form == "Categorical" else torch.tensor(y, dtype=torch.long)
    ref_fn = TORCH_MULTICLASS[base]
    ref, ref_grad = torch_value_and_grad(
        lambda p: weighted_batch_mean(
            ref_fn(p, target, full=full, from_logits=from_logits, reduction="none"), sw), x)
    assert_close(value, ref, f"{form}{STEM[kind]} value")
    assert_close(grad, ref_grad, f"{form}{STEM[kind]} gradient")
    assert np.abs(ref_grad).max() > 1e-3  # the gradient compared is not trivially zero


@pytest.mark.parametrize("kind", KINDS)
def test_sequence_outputs_classes_last_and_functions(kind):
    """(N, T, C) outputs: class axis -1 in Keras is dim 1 in torch; the plain functions too."""
    full, base = kind.startswith("full"), kind.removeprefix("full_")
    sparse = getattr(LK, f"sparse_categorical_{base}_loss")
    value, grad = value_and_grad(
        lambda z: keras.ops.mean(sparse(SEQ_INDICES, z, full=full, from_logits=True)), SEQ_LOGITS)
    target = torch.tensor(SEQ_INDICES, dtype=torch.long)
    ref, ref_grad = torch_value_and_grad(
        lambda z: TORCH_MULTICLASS[base](z.movedim(-1, 1), target, full=full), SEQ_LOGITS)
    assert_close(value, ref, "sequence value")
    assert_close(grad, ref_grad, "sequence gradient")
    # the per-sample function has y_pred's shape without the class axis
    one_hot = np.eye(C, dtype=np.float32)[SEQ_INDICES]
    per = getattr(LK, f"categorical_{base}_loss")(one_hot, SEQ_LOGITS, full=full, from_logits=True)
    assert tuple(per.shape) == (3, 4)
    ref_per = TORCH_MULTICLASS[base](torch.tensor(SEQ_LOGITS).movedim(-1, 1), target, full=full,
                                     reduction="none")
    assert_close(keras.ops.convert_to_numpy(per), ref_per.numpy(), "per-sample values")
    # the class axis can be any axis
    moved = np.moveaxis(SEQ_LOGITS, -1, 1)
    per_axis1 = getattr(LK, f"categorical_{base}_loss")(
        np.moveaxis(one_hot, -1, 1), moved, full=full, from_logits=True, axis=1)
    assert_close(keras.ops.convert_to_numpy(per_axis1), ref_per.numpy(), "axis=1 values")


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample_weight"])
@pytest.mark.parametrize("kind", KINDS)
def test_sparse_ignore_class(kind, weighted):
    full, base = kind.startswith("full"), kind.removeprefix("full_")
    labels = SEQ_INDICES.copy()
    labels[0, 1] = labels[2, 3] = labels[1, 0] = -1
    sw = np.array([0.5, 2.0, 1.5], np.float32) if weighted else None
    loss = keras_loss(f"SparseCategorical{STEM[kind]}", from_logits=True, ignore_class=-1)
    value, grad = value_and_grad(lambda z: loss(labels, z, sample_weight=sw), SEQ_LOGITS)

    target = torch.tensor(labels, dtype=torch.long)
    keep = (target != -1).to(torch.float32)

    def reference(z):
        per = TORCH_MULTICLASS[base](z.movedim(-1, 1), target, full=full, ignore_index=-1,
                                     reduction="none")
        w = keep if sw is None else keep * torch.tensor(sw)[:, None]
        return (per * w).sum() / keep.sum()  # Keras: the mean over the entries not ignored

    ref, ref_grad = torch_value_and_grad(reference, SEQ_LOGITS)
    assert_close(value, ref, "ignore_class value")
    assert_close(grad, ref_grad, "ignore_class gradient")
    assert np.all(grad[0, 1] == 0) and np.all(grad[2, 3] == 0)
    if not weighted:  # without weights it is losslab's ignore_index mean
        functional = TORCH_MULTICLASS[base](torch.tensor(SEQ_LOGITS).movedim(-1, 1), target,
                                            full=full, ignore_index=-1)
        assert_close(value, functional.numpy(), "ignore_index mean")


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample_weight"])
@pytest.mark.parametrize("from_logits", [True, False], ids=["logits", "probs"])
@pytest.mark.parametrize("kind", KINDS)
def test_binary_matches_torch(kind, from_logits, weighted):
    full, base = kind.startswith("full"), kind.removeprefix("full_")
    x = BIN_LOGITS if from_logits else BIN_PROBS
    sw = SAMPLE_WEIGHT if weighted else None
    loss = keras_loss(f"Binary{STEM[kind]}", from_logits=from_logits)
    value, grad = value_and_grad(lambda p: loss(BIN_TARGET, p, sample_weight=sw), x)
    target = torch.tensor(BIN_TARGET)
    ref, ref_grad = torch_value_and_grad(
        lambda p: weighted_batch_mean(TORCH_BINARY[base](
            p, target, full=full, from_logits=from_logits, reduction="none").mean(-1), sw), x)
    assert_close(value, ref, "binary value")
    assert_close(grad, ref_grad, "binary gradient")
    if not weighted:  # the default reduction is losslab's mean over all elements
        assert_close(value, TORCH_BINARY[base](torch.tensor(x), target, full=full,
                                               from_logits=from_logits).numpy(), "binary mean")
    if not from_logits:
        assert grad[0, 0] == 0 and grad[1, 1] == 0  # p = 1 and p = 0 are clipped


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "sample_weight"])
@pytest.mark.parametrize("name", ["smae", "log_cosh"])
def test_regression_matches_torch(name, weighted):
    sw = SAMPLE_WEIGHT if weighted else None
    loss = keras_loss({"smae": "SMAELoss", "log_cosh": "LogCoshLoss"}[name])
    value, grad = value_and_grad(lambda p: loss(TARGET, p, sample_weight=sw), PRED)
    ref_fn = {"smae": RF.smae_loss, "log_cosh": RF.log_cosh_loss}[name]
    target = torch.tensor(TARGET)
    ref, ref_grad = torch_value_and_grad(
        lambda p: weighted_batch_mean(ref_fn(p, target, reduction="none").mean(-1), sw), PRED)
    assert_close(value, ref, f"{name} value")
    assert_close(grad, ref_grad, f"{name} gradient")
    if name == "log_cosh":  # equals Keras' own LogCosh
        expected = keras.losses.LogCosh()(TARGET, PRED, sample_weight=sw)
        assert_close(keras.ops.convert_to_numpy(expected), value, "keras LogCosh")


def test_hand_computed_values():
    def scalar(x):
        return float(keras.ops.convert_to_numpy(x))

    p = np.array([[0.25, 0.75]], np.float32)
    # M: 1/0.25 - 1 = 3; full M adds 1/(1 - 0.75) - 1 = 3
    assert scalar(LK.SparseCategoricalMLoss()(np.array([0]), p)) == pytest.approx(3.0, rel=1e-6)
    assert scalar(LK.CategoricalFullMLoss()(np.array([[1.0, 0.0]]), p)) == pytest.approx(6.0, rel=1e-6)
    assert scalar(LK.CategoricalMLoss(full=True)(np.array([[1.0, 0.0]]), p)) == pytest.approx(6.0, rel=1e-6)
    # L at p = 0.5: 1/sqrt(0.75) - 1; full L with p_other = 0.5 adds the same
    half = np.array([[0.5, 0.5]], np.float32)
    l_half = 1 / np.sqrt(0.75) - 1
    assert scalar(LK.SparseCategoricalLLoss()(np.array([1]), half)) == pytest.approx(l_half, rel=1e-6)
    assert scalar(LK.SparseCategoricalFullLLoss()(np.array([1]), half)) == pytest.approx(2 * l_half, rel=1e-6)
    # binary M from the logit 0 with y = 1: exp(0) = 1; full M with y = 0 at z = 2: exp(2)
    assert scalar(LK.BinaryMLoss(from_logits=True)(np.array([[1.0]]), np.array([[0.0]]))) == pytest.approx(1.0)
    assert scalar(LK.BinaryFullMLoss(from_logits=True)(np.array([[0.0]]), np.array([[2.0]]))) == pytest.approx(np.exp(2.0), rel=1e-6)
    # SMAE: e tanh(e / 2) at e = 2; log-cosh at e = 1
    assert scalar(LK.SMAELoss()(np.array([[0.0]]), np.array([[2.0]]))) == pytest.approx(2 * np.tanh(1.0), rel=1e-6)
    assert scalar(LK.LogCoshLoss()(np.array([[0.0]]), np.array([[1.0]]))) == pytest.approx(np.log(np.cosh(1.0)), rel=1e-6)
    # reductions: "sum" and None
    y = np.array([0, 1])
    pp = np.array([[0.25, 0.75], [0.5, 0.5]], np.float32)
    assert scalar(LK.SparseCategoricalMLoss(reduction="sum")(y, pp)) == pytest.approx(4.0, rel=1e-6)
    per = keras.ops.convert_to_numpy(LK.SparseCategoricalMLoss(reduction=None)(y, pp))
    np.testing.assert_allclose(per, [3.0, 1.0], rtol=1e-6)
    # labels of shape (N, 1), as Keras datasets give them; binary labels (N,) for a (N, 1) output
    assert scalar(LK.SparseCategoricalMLoss()(y[:, None], pp)) == pytest.approx(2.0, rel=1e-6)
    assert scalar(LK.BinaryMLoss()(np.array([1.0, 1.0]), np.array([[0.5], [0.25]], np.float32))) == pytest.approx(2.0, rel=1e-6)


def test_half_precision_inputs_match_torch():
    """float16 y_pred: computed in float32 with eps raised to float16's resolution, as torch."""
    x = np.array([[0.9999, 1e-5, 0.3], [0.5, 0.25, 0.25]], np.float16)
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    value, grad = value_and_grad(lambda p: LK.CategoricalFullMLoss()(y, p), x.astype(np.float32), dtype="float16")
    tensor = torch.tensor(x, requires_grad=True)
    ref = AF.m_loss(tensor, torch.tensor(y), full=True, from_logits=False)
    (ref_grad,) = torch.autograd.grad(ref, tensor)
    assert_close(value, ref.detach().numpy(), "float16 value")
    np.testing.assert_allclose(grad, ref_grad.float().numpy(), rtol=1e-3)
    assert np.isfinite(grad).all()


# --- one numeric core ---------------------------------------------------------------------------


def test_the_adapter_takes_every_formula_from_the_core():
    from losslab.functional import _formulas as FM
    from losslab.keras import functions

    assert functions._KERNELS == {"m": (FM.m_true, FM.m_false), "l": (FM.l_true, FM.l_false)}
    for name in ("softmax_log_pair", "probability_log_pair", "clamp_log_pair", "smae_of_error",
                 "log_cosh_of_error"):
        assert getattr(functions, name) is getattr(FM, name), name
    # the formulas through keras.ops give the values they give through torch
    logits = np.concatenate([LOGITS, [[30.0, 0.0, -1.0, 2.0, 0.5]]]).astype(np.float32)
    through_keras = FM.softmax_log_pair(keras.ops.convert_to_tensor(logits), 1, xp=functions.KERAS)
    through_torch = FM.softmax_log_pair(torch.tensor(logits), 1)
    for got, expected in zip(through_keras, through_torch, strict=True):
        assert_close(keras.ops.convert_to_numpy(got), expected.numpy(), "softmax log pair")
    log_p, log_q = through_torch
    for kernel in (FM.m_true, FM.m_false, FM.l_true, FM.l_false):
        got = kernel(keras.ops.convert_to_tensor(log_p.numpy()), keras.ops.convert_to_tensor(log_q.numpy()),
                     xp=functions.KERAS)
        assert_close(keras.ops.convert_to_numpy(got), kernel(log_p, log_q).numpy(), kernel.__name__)
    error = keras.ops.convert_to_tensor(PRED - TARGET)
    assert_close(keras.ops.convert_to_numpy(FM.log_cosh_of_error(error, xp=functions.KERAS)),
                 FM.log_cosh_of_error(torch.tensor(PRED - TARGET)).numpy(), "log cosh")


# --- extreme logits, mixed precision ---------------------------------------------------------

EXTREME_LOGITS = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4], [-1e4, -1e4, 1e4]], np.float32)
EXTREME_PROBS = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)


def extreme_inputs(name: str, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    x = EXTREME_LOGITS if from_logits else EXTREME_PROBS
    if name.startswith("Sparse"):
        return np.array([1, 0, 2, 1]), x
    if name.startswith("Categorical"):
        return np.eye(3, dtype=np.float32)[[1, 0, 2, 1]], x
    if name.startswith("Binary"):
        return (RNG.uniform(size=x.shape) > 0.5).astype(np.float32), x
    return np.zeros_like(x), EXTREME_LOGITS  # regression: errors of ±1e4


EXTREME_CASES = [(name, True) for name in ALL_CLASSES]  # regression: errors of ±1e4
EXTREME_CASES += [(name, False) for name in ALL_CLASSES if name not in ("SMAELoss", "LogCoshLoss")]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(("name", "from_logits"), EXTREME_CASES,
                         ids=[f"{n}-{'logits' if f else 'probs'}" for n, f in EXTREME_CASES])
def test_extreme_inputs_give_finite_loss_and_gradient(name, from_logits, dtype):
    kwargs = {} if name in ("SMAELoss", "LogCoshLoss") else {"from_logits": from_logits}
    y, x = extreme_inputs(name, from_logits)
    loss = keras_loss(name, **kwargs)
    value, grad = value_and_grad(lambda p: loss(y, p), x, dtype=dtype)
    assert np.isfinite(value) and np.isfinite(grad).all(), (value, grad)
    assert value > 0


MIXED = {  # policy -> (loss, from_logits): one model fit per policy
    "mixed_float16": ("SparseCategoricalFullMLoss", True),
    "mixed_bfloat16": ("SparseCategoricalFullLLoss", False),
}


@pytest.mark.parametrize("policy", list(MIXED))
def test_mixed_precision_training_is_finite(policy):
    """A model under a mixed policy (half-precision outputs) trains to finite weights with
    outputs driven to saturation, and the gradient reaching its half-precision output is
    finite (the extreme-input test covers every loss in float16 and bfloat16)."""
    name, from_logits = MIXED[policy]
    half = policy.removeprefix("mixed_")
    x = (RNG.normal(size=(32, 4)) * 50).astype(np.float32)
    y = RNG.integers(0, 3, size=32)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        head = [] if from_logits else [keras.layers.Softmax()]
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, kernel_initializer="ones"), *head])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras_loss(name, from_logits=from_logits))
        history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        out = model(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(out.dtype) == half
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    saturated = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
    assert (np.abs(saturated).max() > 100) if from_logits else (saturated.max() > 0.999)
    value, grad = value_and_grad(lambda p: model.loss(y, p), saturated, dtype=half)
    assert np.isfinite(value) and np.isfinite(grad).all()


# --- training, saving, config -------------------------------------------------------------------


def training_head(name: str) -> tuple[np.ndarray, int, str | None]:
    """Targets for 48 samples, the head's width and its activation, for the loss ``name``."""
    if name.startswith("Sparse"):
        return RNG.integers(0, 3, size=48), 3, "softmax"
    if name.startswith("Categorical"):
        return np.eye(3, dtype=np.float32)[RNG.integers(0, 3, size=48)], 3, "softmax"
    if name.startswith("Binary"):
        return RNG.integers(0, 2, size=(48, 2)).astype(np.float32), 2, "sigmoid"
    return RNG.normal(size=(48, 1)).astype(np.float32), 1, None


def test_model_with_every_loss_trains_one_epoch_and_reloads(tmp_path):
    """One model, one output head per loss (one compilation on JAX, not fourteen): it trains
    for an epoch with all fourteen losses and reloads with them from a .keras file."""
    keras.utils.set_random_seed(1)
    x = RNG.normal(size=(48, 6)).astype(np.float32)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs, targets, losses = {}, {}, {}
    for name in ALL_CLASSES:
        y, units, activation = training_head(name)
        kwargs = {} if activation is None else {"eps": 1e-6}  # a non-default value must survive
        if name.startswith("Sparse"):
            kwargs["ignore_class"] = 7
        outputs[name] = keras.layers.Dense(units, activation=activation, name=name)(hidden)
        targets[name], losses[name] = y, keras_loss(name, **kwargs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=losses)
    before = {name: keras.ops.convert_to_numpy(model.get_layer(name).kernel).copy() for name in ALL_CLASSES}
    history = model.fit(x, targets, epochs=1, batch_size=16, verbose=0)
    for name in ALL_CLASSES:  # every head learnt from its loss
        assert np.isfinite(history.history[f"{name}_loss"]).all(), name
        assert not np.allclose(before[name], keras.ops.convert_to_numpy(model.get_layer(name).kernel)), name

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects: the losses are registered
    predictions, again = model(x), reloaded(x)
    for name in ALL_CLASSES:
        loss = reloaded.loss[name]
        assert type(loss) is getattr(LK, name) and loss.get_config() == losses[name].get_config()
        original = keras.ops.convert_to_numpy(losses[name](targets[name], predictions[name]))
        value = keras.ops.convert_to_numpy(loss(targets[name], again[name]))
        np.testing.assert_allclose(value, original, rtol=1e-6, err_msg=name)
        assert original > 0


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_config_round_trip(name):
    kwargs = {"reduction": "sum", "name": "custom"}
    if name not in ("SMAELoss", "LogCoshLoss"):
        kwargs.update(from_logits=True, eps=1e-5, axis=-1)
    if name.startswith("Sparse"):
        kwargs["ignore_class"] = 255
    loss = keras_loss(name, **kwargs)
    config = loss.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss) and clone.get_config() == config
    assert keras.saving.get_registered_name(type(loss)) == f"losslab>{name}"


def test_full_flag_and_full_classes_agree():
    inputs = {"Categorical": (SOFT, LOGITS), "SparseCategorical": (INDICES, LOGITS),
              "Binary": (BIN_TARGET, BIN_LOGITS)}
    for form, (y, x) in inputs.items():
        for base in ("M", "L"):
            flagged = getattr(LK, f"{form}{base}Loss")(full=True, from_logits=True)
            fixed = getattr(LK, f"{form}Full{base}Loss")(from_logits=True)
            plain = getattr(LK, f"{form}{base}Loss")(from_logits=True)
            full_value = float(keras.ops.convert_to_numpy(fixed(y, x)))
            assert float(keras.ops.convert_to_numpy(flagged(y, x))) == pytest.approx(full_value, rel=1e-7)
            assert float(keras.ops.convert_to_numpy(plain(y, x))) < full_value
            assert "full" not in fixed.get_config() and flagged.get_config()["full"] is True
            with pytest.raises(TypeError, match="unexpected keyword argument .full."):
                getattr(LK, f"{form}Full{base}Loss")(full=False)


# --- bad input ---------------------------------------------------------------------------------


def test_shape_mismatches_name_the_argument():
    p = PROBS
    with pytest.raises(ValueError, match=r"y_true: expected one-hot or soft labels of y_pred's shape \(8, 5\), got \(8, 4\)"):
        LK.CategoricalMLoss()(SOFT[:, :4], p)
    with pytest.raises(ValueError, match=r"y_true: expected class indices of shape \(8,\) .* got \(7,\)"):
        LK.SparseCategoricalMLoss()(INDICES[:7], p)
    with pytest.raises(ValueError, match=r"y_true: expected class indices of shape \(8,\) .* got \(8, 5\)"):
        LK.sparse_categorical_l_loss(SOFT, p)
    with pytest.raises(ValueError, match=r"y_true: expected y_pred's shape \(8, 3\), got \(8, 2\)"):
        LK.BinaryLLoss()(BIN_TARGET[:, :2], BIN_PROBS)
    with pytest.raises(ValueError, match=r"y_true: expected y_pred's shape \(8, 3\), got \(3, 8\)"):
        LK.SMAELoss()(TARGET.T, PRED)
    with pytest.raises(ValueError, match=r"axis: expected an axis of y_pred \(rank 2\), in \[-2, 1\], got 2"):
        LK.categorical_m_loss(SOFT, p, axis=2)


def test_bad_values_name_the_argument():
    with pytest.raises(ValueError, match=r"y_true: expected class indices in \[0, 4\] for y_pred with 5 classes, got 5"):
        LK.SparseCategoricalMLoss()(np.array([0, 1, 2, 3, 4, 5, 0, 1]), PROBS)
    with pytest.raises(ValueError, match=r"y_true: expected class indices in \[0, 4\] \(or ignore_class=-1\) .* got -2"):
        LK.SparseCategoricalLLoss(ignore_class=-1)(np.array([0, -1, -2, 3, 4, 1, 0, 1]), PROBS)
    with pytest.raises(ValueError, match=r"y_true: expected integer class indices, got 1.5"):
        LK.sparse_categorical_m_loss(np.array([0, 1.5, 2, 3, 4, 1, 0, 1]), PROBS)
    with pytest.raises(ValueError, match=r"y_pred: expected probabilities \(from_logits=False\) in \[0, 1\], got 2"):
        LK.CategoricalMLoss()(SOFT, LOGITS * 0 + 2.0)
    with pytest.raises(ValueError, match=r"y_true: expected binary targets in \[0, 1\], got -1"):
        LK.BinaryMLoss(from_logits=True)(BIN_TARGET - 1.0, BIN_LOGITS)
    with pytest.raises(ValueError, match=r"y_true: expected class probabilities in \[0, 1\]"):
        LK.CategoricalLLoss()(SOFT * 3.0, PROBS)
    with pytest.raises(TypeError, match=r"y_pred: expected a floating-point tensor .* got dtype int"):
        LK.binary_m_loss(BIN_TARGET, BIN_TARGET.astype(np.int32))


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match=r"eps: expected a finite number in \[0, 0.5\), got 0.7"):
        LK.CategoricalMLoss(eps=0.7)
    with pytest.raises(TypeError, match=r"from_logits: expected a bool \(True or False\), got 'yes'"):
        LK.BinaryLLoss(from_logits="yes")
    with pytest.raises(TypeError, match=r"ignore_class: expected an integer or None, got 1.5"):
        LK.SparseCategoricalMLoss(ignore_class=1.5)
    with pytest.raises(TypeError, match=r"axis: expected an integer, got 'last'"):
        LK.CategoricalLLoss(axis="last")
    with pytest.raises(ValueError, match="reduction"):
        LK.SMAELoss(reduction="average")


def test_unchecked_out_of_range_indices_give_nan_not_zero():
    """Where no error can be raised (value checks off, or traced), a bad index gives NaN."""
    labels = np.array([0, 9, 2, 3, 4, 1, 0, 1])
    losslab.set_validation(False)
    try:
        per = keras.ops.convert_to_numpy(LK.sparse_categorical_m_loss(labels, PROBS))
    finally:
        losslab.set_validation(True)
    assert np.isnan(per[1]) and np.isfinite(np.delete(per, 1)).all()
    if BACKEND == "jax":  # under jax.jit the values are unknown: no error, a NaN
        import jax

        traced = jax.jit(lambda y, p: LK.sparse_categorical_m_loss(y, p))(labels, PROBS)
        assert np.isnan(np.asarray(traced)[1])


# --- registry, packaging, the other backends (parent process only) ------------------------------

if not CHILD:

    def test_registry_marks_the_keras_forms():
        marked = {info.name: info.keras for info in losslab.list_losses() if info.keras}
        assert set(marked) == {*KINDS, *(f"binary_{k}" for k in KINDS), "smae", "log_cosh"}
        named = sorted(name for names in marked.values() for name in names)
        assert named == sorted(ALL_CLASSES)
        for names in marked.values():
            for name in names:
                assert issubclass(getattr(LK, name), keras.losses.Loss)
        record = losslab.get_info("full_l").to_dict()
        assert record["keras"] == ["losslab.keras.CategoricalFullLLoss", "losslab.keras.SparseCategoricalFullLLoss"]
        assert losslab.get_info("mse").to_dict()["keras"] == []

    def test_list_shows_the_keras_column(capsys):
        from losslab.cli import main

        assert main(["list", "--family", "regression"]) == 0
        out = capsys.readouterr().out
        rows = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line[:1].isalpha()}
        assert rows["smae"] == "yes" and rows["log_cosh"] == "yes" and rows["mse"] == "-"
        assert main(["list", "--family", "binary", "--json"]) == 0
        records = {r["name"]: r["keras"] for r in json.loads(capsys.readouterr().out)}
        assert records["binary_full_m"] == ["losslab.keras.BinaryFullMLoss"]
        assert records["binary_cross_entropy"] == []
        assert main(["list", "--markdown"]) == 0
        assert "| `CategoricalMLoss`, `SparseCategoricalMLoss` |" in capsys.readouterr().out

    def test_import_losslab_does_not_import_keras():
        code = (
            "import sys, losslab, losslab.functional, losslab.nn, losslab.registry; "
            "from losslab.cli import list_cmd; "
            "print(','.join(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == ""

    def test_text_classifier_example_trains_with_every_loss():
        """examples/keras_text_classifier.py, tiny: the paper's LSTM with each loss."""
        import importlib.util

        spec = importlib.util.spec_from_file_location("keras_text_classifier",
                                                      ROOT / "examples" / "keras_text_classifier.py")
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
        results = example.main(["--dataset", "synthetic", "--max-train", "64", "--max-test", "32",
                                "--length", "12", "--batch-size", "32", "--vocabulary", "200"])
        assert [r["loss"] for r in results] == ["cross_entropy", "m", "full_m", "l", "full_l"]
        for r in results:
            assert np.isfinite(r["train_loss"]) and r["train_loss"] > 0 and 0 <= r["test_accuracy"] <= 1
        # M's value is expm1 of cross-entropy's, at the same start: larger
        assert results[1]["train_loss"] > results[0]["train_loss"]

    @pytest.mark.parametrize("backend", [b for b in REQUIRED_BACKENDS if b != BACKEND])
    def test_other_required_backends(backend):
        """Every test above, again in a child process on the other required backend."""
        env = {**os.environ, "KERAS_BACKEND": backend, "LOSSLAB_KERAS_CHILD": "1"}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
             "-p", "no:randomly", "-o", "addopts="],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        passed = re.search(r"(\d+) passed", summary)
        assert passed and int(passed.group(1)) >= 160, summary
        assert not re.search(r"skipped|failed|error", summary), summary
