"""Margin ranking loss against ``F.margin_ranking_loss`` (float64, every argument combination)."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import functional as LF
from losslab import nn as LN


def case(shape=(4, 5), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(shape, generator=g, dtype=dtype)
    x2 = torch.randn(shape, generator=g, dtype=dtype)
    y = torch.randint(0, 2, shape, generator=g) * 2 - 1
    return x1, x2, y


@pytest.mark.parametrize("shape", [(4, 5), (7,), ()])
def test_equals_torch_for_every_combination(shape):
    x1, x2, y = case(shape)
    for margin, reduction, target in itertools.product(
        (0.0, 0.5, -0.3, 2.0), ("mean", "sum", "none"), (y, y.double())
    ):
        got = LF.margin_ranking_loss(x1, x2, target, margin=margin, reduction=reduction)
        expected = F.margin_ranking_loss(x1, x2, target.double(), margin=margin, reduction=reduction)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-12)


def test_hand_computed():
    x1 = torch.tensor([1.0, 0.0, 2.0])
    x2 = torch.tensor([0.0, 1.0, 2.0])
    y = torch.tensor([1, 1, -1])
    # max(0, -y (x1 - x2) + 0.5): [max(0, -1 + 0.5), max(0, 1 + 0.5), max(0, 0 + 0.5)]
    torch.testing.assert_close(LF.margin_ranking_loss(x1, x2, y, margin=0.5, reduction="none"),
                               torch.tensor([0.0, 1.5, 0.5]))


def test_module_registry_and_defaults():
    x1, x2, y = case()
    module = losslab.get_loss("margin_ranking")
    assert isinstance(module, LN.MarginRankingLoss)
    torch.testing.assert_close(module(x1, x2, y), torch.nn.MarginRankingLoss()(x1, x2, y.double()))
    torch.testing.assert_close(LN.MarginRankingLoss(margin=1.0, reduction="sum")(x1, x2, y),
                               F.margin_ranking_loss(x1, x2, y.double(), margin=1.0, reduction="sum"))
    info = losslab.get_info("ranking")
    assert info.name == "margin_ranking" and info.family == "margin"
    assert info.reference_impl == "torch.nn.functional.margin_ranking_loss"


def test_gradcheck_float64():
    x1, x2, y = case((3, 4), seed=1)
    x1.requires_grad_(True)
    x2.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: LF.margin_ranking_loss(a, b, y, margin=0.2), (x1, x2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_and_saturated_inputs(dtype):
    x1 = torch.tensor([1e4, -1e4, 3.0], dtype=dtype, requires_grad=True)
    x2 = torch.tensor([-1e4, 1e4, 2.0], dtype=dtype, requires_grad=True)
    y = torch.tensor([1, 1, -1])
    loss = LF.margin_ranking_loss(x1, x2, y, margin=1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x1.grad).all() and torch.isfinite(x2.grad).all()
    expected = F.margin_ranking_loss(x1.detach().double(), x2.detach().double(), y.double(), margin=1.0)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-3, atol=1e-3)


X = torch.randn(4)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: LF.margin_ranking_loss(X, torch.randn(3), torch.ones(4)), ValueError, r"input2: expected the same shape as input1"),
        (lambda: LF.margin_ranking_loss(X, torch.randn(1), torch.ones(4)), ValueError, r"input2: expected the same shape"),
        (lambda: LF.margin_ranking_loss(X, X, torch.ones(2, 2)), ValueError, r"target: expected the same shape as input1"),
        (lambda: LF.margin_ranking_loss(X, X, torch.tensor([1, 0, -1, 1])), ValueError, r"target: expected labels in \{-1, \+1\}.*got 0"),
        (lambda: LF.margin_ranking_loss(X, X, torch.tensor([1.0, 0.5, -1.0, 1.0])), ValueError, r"target: expected labels in \{-1, \+1\}.*got 0\.5"),
        (lambda: LF.margin_ranking_loss(X, X, torch.ones(4, dtype=torch.bool)), TypeError, r"target: expected labels .*got dtype torch.bool"),
        (lambda: LF.margin_ranking_loss(X.long(), X, torch.ones(4)), TypeError, r"input1: expected a floating-point tensor"),
        (lambda: LF.margin_ranking_loss(X, X.long(), torch.ones(4)), TypeError, r"input2: expected a floating-point tensor"),
        (lambda: LF.margin_ranking_loss(X, X, [1, 1, 1, 1]), TypeError, r"target: expected a torch.Tensor"),
        (lambda: LF.margin_ranking_loss(X, X, torch.ones(4), reduction="avg"), ValueError, r"reduction: expected one of .*got 'avg'"),
        (lambda: LF.margin_ranking_loss(X, X, torch.ones(4), margin=float("inf")), ValueError, r"margin: expected a finite number"),
    ],
)
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
