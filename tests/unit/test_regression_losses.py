"""Regression losses: SMAE and log-cosh against float64 formulas; torch entries against torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import functional as LF


def test_smae_formula_and_limits():
    e = torch.linspace(-30, 30, 601, dtype=torch.float64)
    zero = torch.zeros_like(e)
    torch.testing.assert_close(LF.smae_loss(e, zero, reduction="none"), e * torch.tanh(e / 2))
    small = torch.tensor([1e-3], dtype=torch.float64)
    assert LF.smae_loss(small, torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(0.5e-6, rel=1e-5)
    big = torch.tensor([25.0], dtype=torch.float64)
    assert LF.smae_loss(big, torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(25.0, abs=1e-9)
    # the error is input - target
    assert LF.smae_loss(torch.tensor([3.0]), torch.tensor([1.0])).item() == pytest.approx(2 * math.tanh(1.0))
    assert losslab.functional.smooth_absolute_error is LF.smae_loss


def test_log_cosh_formula_and_no_overflow():
    e = torch.linspace(-20, 20, 401, dtype=torch.float64)
    expected = torch.log(torch.cosh(e))
    torch.testing.assert_close(LF.log_cosh_loss(e, torch.zeros_like(e), reduction="none"), expected)
    huge = torch.tensor([1e4, -1e4], requires_grad=True)
    out = LF.log_cosh_loss(huge, torch.zeros(2), reduction="none")
    out.sum().backward()
    torch.testing.assert_close(out, torch.tensor([1e4 - math.log(2), 1e4 - math.log(2)]))
    torch.testing.assert_close(huge.grad, torch.tensor([1.0, -1.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_entries_match_torch(reduction):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    y = torch.randn(5, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(LF.mse_loss(x, y, reduction=reduction), F.mse_loss(x, y, reduction=reduction))
    torch.testing.assert_close(LF.l1_loss(x, y, reduction=reduction), F.l1_loss(x, y, reduction=reduction))
    for delta in (0.5, 1.0, 2.5):
        torch.testing.assert_close(
            LF.huber_loss(x, y, delta=delta, reduction=reduction), F.huber_loss(x, y, delta=delta, reduction=reduction)
        )
    for beta in (0.0, 0.5, 1.0):
        torch.testing.assert_close(
            LF.smooth_l1_loss(x, y, beta=beta, reduction=reduction),
            F.smooth_l1_loss(x, y, beta=beta, reduction=reduction),
        )
    assert losslab.get_loss("mae", reduction=reduction)(x, y).shape == F.l1_loss(x, y, reduction=reduction).shape


@pytest.mark.parametrize("name", ["smae", "log_cosh", "mse", "mae", "huber", "smooth_l1"])
def test_gradcheck_and_module(name):
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, dtype=torch.float64)
    module = losslab.get_loss(name)
    assert torch.autograd.gradcheck(lambda a: module(a, y), (x,))
    info = losslab.get_info(name)
    torch.testing.assert_close(module(x, y), info.functional(x, y))


def test_bad_input():
    with pytest.raises(ValueError, match=r"target: expected the same shape as input \(3,\), got \(3, 1\)"):
        LF.smae_loss(torch.randn(3), torch.randn(3, 1))
    with pytest.raises(ValueError, match="target: expected the same shape"):
        LF.mse_loss(torch.randn(3), torch.randn(1))  # torch would broadcast with a warning
    with pytest.raises(TypeError, match="input: expected a floating-point tensor"):
        LF.log_cosh_loss(torch.arange(3), torch.zeros(3))
    with pytest.raises(ValueError, match="reduction: expected one of"):
        LF.smae_loss(torch.randn(3), torch.randn(3), reduction="batchmean")
    with pytest.raises(ValueError, match="delta: expected a finite number > 0, got 0"):
        LF.huber_loss(torch.randn(3), torch.randn(3), delta=0)
