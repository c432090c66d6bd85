"""The one-pass full M / full L kernel (losslab.functional._fused.full_pass) against the reference.

The pass handles (N, C) logits with class indices, C >= 16 and eps > 0 on a CPU; these tests
check that it is the path taken there, and that its values and gradients equal the float64
reference formula (``impl="reference"``, differentiated by autograd) across chunk boundaries,
with rows near certainty (1 - p from the other classes), classes below the clamp (zero
gradient), targets at the top class, ignored samples and class weights.
"""

from __future__ import annotations

import pytest
import torch

from losslab.functional._fused import full_pass as _full_pass
from losslab.functional._fused import multiclass as _multiclass
from losslab.functional.alternate import l_loss, m_loss

FUNCTIONS = [m_loss, l_loss]
IDS = ["full_m", "full_l"]


def _hard_logits(rows: int, classes: int, *, seed: int, dtype=torch.float64):
    """Logits with every regime of the pass, and class-index targets (some ignored)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(rows, classes, generator=generator, dtype=torch.float64) * 4.0
    z[::5, 2] += 30.0                        # p_top ~ 1 - 1e-12: 1 - p from the others
    z[1::5, 7] += 3.0                        # a top class near p = 1/2
    z[2::5] *= 0.01                          # nearly uniform rows: no class above 1/2
    z[3::5, 11] -= 40.0                      # a class far below the clamp
    target = torch.randint(0, classes, (rows,), generator=generator)
    target[::10] = 2                         # the target is the near-certain class
    target[3::10] = 11                       # the target is below the clamp
    target[::7] = -100
    return z.to(dtype), target


def _value_and_grad(function, z, target, upstream, **options):
    leaf = z.detach().clone().requires_grad_(True)
    value = function(leaf, target, full=True, reduction="none", **options)
    (grad,) = torch.autograd.grad(value, leaf, upstream)
    return value.detach(), grad


@pytest.fixture
def calls(monkeypatch):
    """Counts the calls of the one-pass kernel (so a test knows it ran)."""
    seen = []
    original = _full_pass.full_indices_one_pass

    def counted(*args, **kwargs):
        seen.append(args[1].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(_multiclass, "full_indices_one_pass", counted)
    return seen


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("chunk_rows", [1, 3, 64])
def test_matches_float64_reference_across_chunks(monkeypatch, calls, function, chunk_rows):
    classes = 40
    monkeypatch.setattr(_full_pass, "CHUNK_ELEMENTS", chunk_rows * classes)
    z, target = _hard_logits(50, classes, seed=1)
    probabilities = torch.softmax(z, 1)
    assert (probabilities < 1e-7).any() and (probabilities > 1 - 1e-9).any()
    generator = torch.Generator().manual_seed(2)
    weight = torch.rand(classes, generator=generator, dtype=torch.float64) + 0.5
    upstream = torch.rand(50, generator=generator, dtype=torch.float64)
    for options in ({}, {"weight": weight}, {"eps": 1e-4}):
        got = _value_and_grad(function, z, target, upstream, impl="fused", **options)
        expected = _value_and_grad(function, z, target, upstream, impl="reference", **options)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got[1], expected[1], rtol=1e-9, atol=1e-12)
    assert len(calls) == 3


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reductions_match_reference(calls, function, reduction):
    z, target = _hard_logits(30, 64, seed=3)
    got_leaf = z.clone().requires_grad_(True)
    got = function(got_leaf, target, full=True, reduction=reduction, impl="fused")
    got.backward()
    expected_leaf = z.clone().requires_grad_(True)
    expected = function(expected_leaf, target, full=True, reduction=reduction, impl="reference")
    expected.backward()
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got_leaf.grad, expected_leaf.grad, rtol=1e-9, atol=1e-12)
    assert calls == [(30, 64)]


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_float32_within_tolerance_of_float64(monkeypatch, calls, function):
    monkeypatch.setattr(_full_pass, "CHUNK_ELEMENTS", 7 * 300)
    z64, target = _hard_logits(45, 300, seed=4)
    z64 = z64.float().double()                # the truth for exactly the float32 logits
    upstream = torch.rand(45, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    value, grad = _value_and_grad(function, z64.float(), target, upstream.float(), impl="fused")
    truth, truth_grad = _value_and_grad(function, z64, target, upstream, impl="reference")
    torch.testing.assert_close(value.double(), truth, rtol=3e-5, atol=1e-6)
    torch.testing.assert_close(grad.double(), truth_grad, rtol=3e-5, atol=1e-6)
    assert calls == [(45, 300)]


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_clamped_classes_keep_only_the_softmax_coupling(calls, function):
    # below the clamp a class's own term has no gradient; what is left is -p_j K, tiny but
    # not zero, and it must match the reference to the last digits
    z, target = _hard_logits(20, 32, seed=6)
    leaf = z.clone().requires_grad_(True)
    function(leaf, target, full=True, reduction="sum", impl="fused").backward()
    below = torch.softmax(z, 1) < 1e-7
    assert below.any()
    expected = z.clone().requires_grad_(True)
    function(expected, target, full=True, reduction="sum", impl="reference").backward()
    torch.testing.assert_close(leaf.grad[below], expected.grad[below], rtol=1e-9, atol=0.0)
    assert calls == [(20, 32)]


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_gradcheck_float64(function):
    generator = torch.Generator().manual_seed(7)
    z = (torch.randn(6, 17, generator=generator, dtype=torch.float64) * 2).requires_grad_(True)
    target = torch.tensor([0, 3, 16, -100, 5, 5])
    assert _full_pass.one_pass_applies(z.detach(), 1e-7)
    assert torch.autograd.gradcheck(lambda x: function(x, target, full=True, impl="fused"), (z,))


def test_applies_only_where_it_is_exact():
    z = torch.zeros(4, 16)
    assert _full_pass.one_pass_applies(z, 1e-7)
    assert not _full_pass.one_pass_applies(z, 0.0)                   # eps = 0: two-pass form
    assert not _full_pass.one_pass_applies(torch.zeros(4, 15), 1e-7)  # narrow rows
    assert not _full_pass.one_pass_applies(torch.zeros(4, 16, 2), 1e-7)  # spatial dims
    assert not _full_pass.one_pass_applies(torch.zeros(16, 4).t(), 1e-7)  # not contiguous
    assert not _full_pass.one_pass_applies(torch.zeros(0, 16), 1e-7)


def test_all_samples_ignored_gives_zero_gradient(calls):
    z = torch.randn(5, 20, dtype=torch.float64, requires_grad=True)
    target = torch.full((5,), -100)
    value = m_loss(z, target, full=True, impl="fused", reduction="sum")
    value.backward()
    assert float(value.detach()) == 0.0
    assert bool((z.grad == 0).all())
    assert calls == [(5, 20)]
