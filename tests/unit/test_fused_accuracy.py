"""The fused paths against float64 truth on random logits where float32 rounding bites.

Two failure modes these guard: (1) with many classes, 1 - p_y taken as the float32 sum of the
other C - 1 probabilities can round past 1 - eps and switch the clamp on for a target
probability just above eps (a zero gradient for a hard example); (2) with soft targets and a
confident top class, ``k - p sum k`` cancels at that class.
"""

from __future__ import annotations

import pytest
import torch

import losslab.functional as LF


def _relative_grad_error(fn, logits32, target32, target64, **kwargs) -> float:
    z64 = logits32.double().requires_grad_(True)
    truth = fn(z64, target64, impl="reference", reduction="none", **kwargs)
    (g64,) = torch.autograd.grad(truth.sum(), z64)
    z32 = logits32.clone().requires_grad_(True)
    value = fn(z32, target32, impl="fused", reduction="none", **kwargs)
    (g32,) = torch.autograd.grad(value.sum(), z32)
    torch.testing.assert_close(value.double(), truth, rtol=1e-5, atol=1e-6)
    scale = g64.abs().amax(1, keepdim=True) + 1e-6
    return float(((g32.double() - g64).abs() / scale).max())


@pytest.mark.parametrize("fn", [LF.m_loss, LF.l_loss])
@pytest.mark.parametrize("full", [False, True])
def test_many_classes_small_target_probability(fn, full):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 1000, generator=g) * 5
    target = torch.randint(0, 1000, (64,), generator=g)
    p_target = torch.softmax(logits.double(), 1)[torch.arange(64), target]
    # the regime of the bug: target probabilities between eps=1e-7 and ~1e-5
    assert bool(((p_target > 1e-7) & (p_target < 1e-5)).any())
    assert _relative_grad_error(fn, logits, target, target, full=full) < 1e-4


@pytest.mark.parametrize("fn", [LF.m_loss, LF.l_loss])
def test_soft_targets_confident_top_class(fn):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(256, 3, generator=g) * 30
    soft = torch.softmax(torch.randn(256, 3, generator=g, dtype=torch.float64) * 3, 1).float()
    assert _relative_grad_error(fn, logits, soft, soft.double(), full=True) < 1e-4


@pytest.mark.parametrize("full", [False, True])
def test_binary_l_without_clamp_stays_finite_where_the_reference_is(full):
    # eps=0 switches the clamp off; the log-space form is finite down to z ~ -88 in float32
    z = torch.tensor([-60.0, -80.0, 3.0], requires_grad=True)
    y = torch.tensor([0.7, 1.0, 0.0])
    value = LF.binary_l_loss(z, y, full=full, eps=0.0, reduction="sum")
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    z64 = z.detach().double().requires_grad_(True)
    truth = LF.binary_l_loss(z64, y.double(), full=full, eps=0.0, reduction="sum", impl="reference")
    (grad64,) = torch.autograd.grad(truth, z64)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-5, atol=0.0)
