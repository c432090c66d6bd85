"""One validation module, one message style: ``name: expected ..., got ...``.

The validators themselves, the arguments that used to be accepted silently (functional form
and Module construction), and a sweep of every registered Module's options with values of
the wrong kind.
"""

from __future__ import annotations

import inspect
import math
import os
import re

import numpy as np
import pytest
import torch

import losslab
import losslab.functional as LF
import losslab.nn as LN
from losslab._validation import (
    check_bool,
    check_choice,
    check_eps,
    check_int,
    check_number,
    check_positive,
    check_reduction,
    reduce,
)

Z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
IDX = torch.tensor([0, 2, 1, 2])
ZB = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
YB = torch.rand(4, 3, generator=torch.Generator().manual_seed(2))


# --- the validators --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_positive("delta", None), TypeError, r"delta: expected a finite number > 0, got None"),
        (lambda: check_positive("delta", 0.0), ValueError, r"delta: expected a finite number > 0, got 0.0"),
        (lambda: check_positive("beta", -1, allow_zero=True), ValueError, r"beta: expected a finite number >= 0, got -1"),
        (lambda: check_number("gamma", True), TypeError, r"gamma: expected a finite number, got True"),
        (lambda: check_number("gamma", "2"), TypeError, r"gamma: expected a finite number, got '2'"),
        (lambda: check_number("gamma", torch.tensor(2.0)), TypeError, r"gamma: expected a finite number, got Tensor"),
        (lambda: check_number("alpha", math.nan, high=1.0), ValueError, r"alpha: expected a finite number <= 1, got nan"),
        (lambda: check_number("margin", math.inf), ValueError, r"margin: expected a finite number, got inf"),
        (lambda: check_number("s", 1.0, low=0.0, high=1.0, high_open=True), ValueError,
         r"s: expected a finite number in \[0, 1\), got 1.0"),
        (lambda: check_number("p", math.nan, low=0.0, low_open=True, finite=False), ValueError,
         r"p: expected a number > 0 \(or inf\), got nan"),
        (lambda: check_eps(-1), ValueError, r"eps: expected a finite number in \[0, 0.5\), got -1"),
        (lambda: check_bool("full", "yes"), TypeError, r"full: expected a bool \(True or False\), got 'yes'"),
        (lambda: check_bool("full", 1), TypeError, r"full: expected a bool \(True or False\), got 1"),
        (lambda: check_int("ignore_index", -100.0), TypeError, r"ignore_index: expected an integer, got -100.0"),
        (lambda: check_int("ignore_index", True), TypeError, r"ignore_index: expected an integer, got True"),
        (lambda: check_int("ignore_index", "1", optional=True), TypeError, r"ignore_index: expected an integer or None, got '1'"),
        (lambda: check_int("k", 0, low=1), ValueError, r"k: expected an integer >= 1, got 0"),
        (lambda: check_choice("kind", "x", ("a", "b")), ValueError, r"kind: expected one of 'a', 'b', got 'x'"),
        (lambda: check_reduction("avg"), ValueError, r"reduction: expected one of 'mean', 'sum', 'none', got 'avg'"),
        (lambda: check_reduction(None), ValueError, r"reduction: expected one of 'mean', 'sum', 'none', got None"),
    ],
)
def test_validator_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_validators_accept_and_normalise():
    assert check_number("x", np.float32(0.5), low=0.0, high=1.0) == 0.5
    assert check_number("p", math.inf, low=0.0, low_open=True, finite=False) == math.inf
    assert check_positive("delta", 2) == 2.0 and isinstance(check_positive("delta", 2), float)
    assert check_bool("flag", np.bool_(True)) is True
    assert check_int("i", np.int64(-100)) == -100 and check_int("i", None, optional=True) is None
    assert check_eps(0) == 0.0


def test_reduce_helper():
    loss = torch.full((4,), 3e4, dtype=torch.float16)
    assert reduce(loss, "mean").item() == 3e4 and reduce(loss, "mean").dtype == torch.float16
    assert torch.isinf(reduce(loss, "sum"))                  # 1.2e5 does not fit float16
    assert reduce(loss, "none") is loss
    values = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(reduce(values, "mean", weight_sum=torch.tensor(2.0)), torch.tensor(3.0))
    assert math.isnan(reduce(values * 0, "mean", weight_sum=torch.tensor(0.0)).item())


# --- arguments that used to be accepted silently ----------------------------------------------

BAD_ARGUMENTS = [
    # alpha = NaN
    (lambda: LF.sigmoid_focal_loss(ZB, YB, alpha=math.nan), ValueError, r"alpha: expected a finite number <= 1, got nan"),
    (lambda: LF.softmax_focal_loss(Z, IDX, alpha=math.nan), ValueError, r"alpha: expected a finite number >= 0, got nan"),
    (lambda: LF.parametric_m_loss(Z, IDX, alpha=math.nan), ValueError, r"alpha: expected a finite number > 0, got nan"),
    (lambda: LF.binary_parametric_m_loss(ZB, YB, alpha=math.nan), ValueError, r"alpha: expected a finite number > 0, got nan"),
    (lambda: LF.softmax_focal_loss(Z, IDX, alpha=torch.tensor([1.0, math.nan, 1.0])), ValueError,
     r"alpha: expected finite class factors >= 0, got nan"),
    # a negative pos_weight (a negative loss) and bad element weights
    (lambda: LF.binary_m_loss(ZB, YB, pos_weight=torch.tensor([1.0, -2.0, 1.0])), ValueError,
     r"pos_weight: expected finite weights >= 0, got -2.0"),
    (lambda: LF.binary_l_loss(ZB, YB, pos_weight=torch.tensor([math.nan, 1.0, 1.0])), ValueError,
     r"pos_weight: expected finite weights >= 0, got nan"),
    (lambda: LF.binary_cross_entropy_with_logits(ZB, YB, pos_weight=torch.tensor([-1.0, 1.0, 1.0])), ValueError,
     r"pos_weight: expected finite weights >= 0, got -1.0"),
    (lambda: LF.binary_cross_entropy_with_logits(ZB, YB, weight=torch.ones(2)), ValueError,
     r"weight: expected a tensor that broadcasts to the input's shape \(4, 3\)"),
    # a float ignore_index
    (lambda: LF.m_loss(Z, IDX, ignore_index=-100.0), TypeError, r"ignore_index: expected an integer, got -100.0"),
    (lambda: LF.l_loss(Z, IDX, ignore_index=1.5), TypeError, r"ignore_index: expected an integer, got 1.5"),
    (lambda: LF.cross_entropy(Z, IDX, ignore_index=2.0), TypeError, r"ignore_index: expected an integer, got 2.0"),
    (lambda: LF.softmax_focal_loss(Z, IDX, ignore_index=0.5), TypeError, r"ignore_index: expected an integer, got 0.5"),
    (lambda: LF.poly_loss(Z, IDX, ignore_index=0.5), TypeError, r"ignore_index: expected an integer, got 0.5"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, ignore_index=0.5), TypeError, r"ignore_index: expected an integer, got 0.5"),
    (lambda: LF.dice_loss(Z[:, :, None], IDX[:, None], ignore_index=0.5), TypeError,
     r"ignore_index: expected an integer or None, got 0.5"),
    # negative or NaN class weights
    (lambda: LF.m_loss(Z, IDX, weight=torch.tensor([1.0, -1.0, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got -1.0 \(1 of 3 entries outside\)"),
    (lambda: LF.l_loss(Z, IDX, full=True, weight=torch.tensor([1.0, math.nan, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got nan"),
    (lambda: LF.cross_entropy(Z, IDX, weight=torch.tensor([1.0, -1.0, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got -1.0"),
    (lambda: LF.softmax_focal_loss(Z, IDX, weight=torch.tensor([math.inf, 1.0, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got inf"),
    (lambda: LF.poly_loss(Z, IDX, weight=torch.tensor([1.0, -1.0, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got -1.0"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, weight=torch.tensor([1.0, -1.0, 1.0])), ValueError,
     r"weight: expected finite class weights >= 0, got -1.0"),
    # flags that are not bools
    (lambda: LF.m_loss(Z, IDX, full="yes"), TypeError, r"full: expected a bool \(True or False\), got 'yes'"),
    (lambda: LF.l_loss(Z, IDX, full=1), TypeError, r"full: expected a bool \(True or False\), got 1"),
    (lambda: LF.binary_m_loss(ZB, YB, full="no"), TypeError, r"full: expected a bool \(True or False\), got 'no'"),
    (lambda: LF.binary_l_loss(ZB, YB, from_logits="yes"), TypeError, r"from_logits: expected a bool \(True or False\), got 'yes'"),
    (lambda: LF.m_loss(Z, IDX, from_logits=0), TypeError, r"from_logits: expected a bool \(True or False\), got 0"),
    (lambda: LF.binary_hinge_loss(ZB, (YB > 0.5).float(), squared="yes"), TypeError,
     r"squared: expected a bool \(True or False\), got 'yes'"),
    (lambda: LF.kl_div(torch.log_softmax(Z, 1), torch.softmax(Z, 1), log_target="no"), TypeError,
     r"log_target: expected a bool \(True or False\), got 'no'"),
    # numbers that are not numbers, or not finite
    (lambda: LF.m_loss(Z, IDX, eps=-1), ValueError, r"eps: expected a finite number in \[0, 0.5\), got -1"),
    (lambda: LF.m_loss(Z, IDX, eps=None), TypeError, r"eps: expected a finite number in \[0, 0.5\), got None"),
    (lambda: LF.huber_loss(ZB, YB, delta=None), TypeError, r"delta: expected a finite number > 0, got None"),
    (lambda: LF.huber_loss(ZB, YB, delta=math.nan), ValueError, r"delta: expected a finite number > 0, got nan"),
    (lambda: LF.smooth_l1_loss(ZB, YB, beta=math.inf), ValueError, r"beta: expected a finite number >= 0, got inf"),
    (lambda: LF.cross_entropy(Z, IDX, label_smoothing=math.nan), ValueError,
     r"label_smoothing: expected a finite number in \[0, 1\], got nan"),
    (lambda: LF.sigmoid_focal_loss(ZB, YB, gamma=math.inf), ValueError, r"gamma: expected a finite number >= 0, got inf"),
    (lambda: LF.margin_ranking_loss(ZB, YB, torch.ones(4, 3), margin=math.nan), ValueError,
     r"margin: expected a finite number, got nan"),
    (lambda: LF.dice_loss(Z[:, :, None], IDX[:, None], smooth_nr=math.nan), ValueError,
     r"smooth_nr: expected a finite number >= 0, got nan"),
    (lambda: LF.info_nce_loss(ZB, YB, temperature=math.inf), ValueError, r"temperature: expected a finite number > 0, got inf"),
    (lambda: LF.smae_loss(ZB, YB, impl="fast"), ValueError, r"impl: expected one of 'auto', 'fused', 'reference', got 'fast'"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_ARGUMENTS)
def test_silently_accepted_arguments_now_raise(call, error, message):
    with pytest.raises(error, match=message):
        call()


MODULE_BAD_ARGUMENTS = [
    (lambda: LN.SigmoidFocalLoss(alpha=math.nan), ValueError, r"alpha: expected a finite number <= 1, got nan"),
    (lambda: LN.SoftmaxFocalLoss(alpha=-1.0), ValueError, r"alpha: expected a finite number >= 0, got -1.0"),
    (lambda: LN.ParametricMLoss(alpha=math.nan), ValueError, r"alpha: expected a finite number > 0, got nan"),
    (lambda: LN.BinaryMLoss(pos_weight=torch.tensor([-1.0])), ValueError, r"pos_weight: expected finite weights >= 0, got -1.0"),
    (lambda: LN.BCEWithLogitsLoss(pos_weight=torch.tensor([-1.0])), ValueError, r"pos_weight: expected finite weights >= 0"),
    (lambda: LN.MLoss(ignore_index=1.5), TypeError, r"ignore_index: expected an integer, got 1.5"),
    (lambda: LN.CrossEntropyLoss(ignore_index=-100.0), TypeError, r"ignore_index: expected an integer, got -100.0"),
    (lambda: LN.DiceLoss(ignore_index=0.5), TypeError, r"ignore_index: expected an integer or None, got 0.5"),
    (lambda: LN.MLoss(weight=torch.tensor([1.0, -1.0])), ValueError, r"weight: expected finite weights >= 0, got -1.0"),
    (lambda: LN.LLoss(weight=torch.tensor([math.nan, 1.0])), ValueError, r"weight: expected finite weights >= 0, got nan"),
    (lambda: LN.MLoss(weight=torch.tensor([0, 1])), TypeError, r"weight: expected a floating-point tensor"),
    (lambda: LN.MLoss(full="yes"), TypeError, r"full: expected a bool \(True or False\), got 'yes'"),
    (lambda: LN.BinaryLLoss(from_logits="yes"), TypeError, r"from_logits: expected a bool \(True or False\), got 'yes'"),
    (lambda: LN.MLoss(eps=-1), ValueError, r"eps: expected a finite number in \[0, 0.5\), got -1"),
    (lambda: LN.MLoss(reduction="avg"), ValueError, r"reduction: expected one of 'mean', 'sum', 'none', got 'avg'"),
    (lambda: LN.MLoss(impl="fast"), ValueError, r"impl: expected one of 'auto', 'fused', 'reference', got 'fast'"),
    (lambda: LN.KLDivLoss(reduction="avg"), ValueError, r"reduction: expected one of 'mean', 'batchmean', 'sum', 'none'"),
    (lambda: LN.MulticlassHingeLoss(p=3), ValueError, r"p: expected 1 or 2"),
    (lambda: LN.MulticlassHingeLoss(kind="ovr"), ValueError, r"kind: expected one of 'weston_watkins', 'crammer_singer'"),
    (lambda: LN.PolyLoss(epsilon=[]), ValueError, r"epsilon: expected a number \(Poly-1\) or a non-empty list"),
    (lambda: LN.HuberLoss(delta=None), TypeError, r"delta: expected a finite number > 0, got None"),
    (lambda: LN.TripletMarginLoss(p=math.nan), ValueError, r"p: expected a number > 0 \(or inf\), got nan"),
]


@pytest.mark.parametrize(("call", "error", "message"), MODULE_BAD_ARGUMENTS)
def test_module_constructors_validate(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_keras_adapter_uses_the_same_validators():
    os.environ.setdefault("KERAS_BACKEND", "torch")    # as tests/unit/test_keras.py: no TensorFlow here
    pytest.importorskip("keras", reason="the Keras adapter needs Keras 3 (Python >= 3.11)")
    from losslab.keras import _checks as LK

    assert LK._check_bool is check_bool and LK._check_eps is check_eps and LK._check_int is check_int


# --- a sweep: every registered Module rejects wrong kinds of values at construction ------------


def _wrong_values(default: object) -> list[object]:
    if isinstance(default, bool):
        return ["yes", 1, None]
    if isinstance(default, int):
        return [1.5, "1", True]
    if isinstance(default, float):
        return [math.nan, "1", True, None]
    return []


# the sizes a Module with learnable parameters needs (ArcFace's class centres)
REQUIRED = {"num_classes": 3, "embedding_dim": 4}


def _module_options():
    for info in losslab.list_losses():
        parameters = inspect.signature(info.factory).parameters
        for name, parameter in parameters.items():
            if parameter.kind is not parameter.KEYWORD_ONLY or parameter.default is inspect.Parameter.empty:
                continue
            for value in _wrong_values(parameter.default):
                yield pytest.param(info.name, name, value, id=f"{info.name}-{name}-{value!r}")


def _required(loss: str) -> dict[str, object]:
    parameters = inspect.signature(losslab.get_info(loss).factory).parameters
    return {name: REQUIRED[name] for name, p in parameters.items() if p.default is inspect.Parameter.empty}


@pytest.mark.parametrize(("loss", "option", "value"), list(_module_options()))
def test_every_module_rejects_wrong_kinds_at_construction(loss, option, value):
    with pytest.raises((TypeError, ValueError), match=rf"^(?:{re.escape(loss)}: )?{re.escape(option)}: expected"):
        losslab.get_loss(loss, **_required(loss), **{option: value})
