"""The fused kernels (losslab.functional._fused) against the reference formulas.

Both paths are reachable through the public functions: ``impl="fused"`` and
``impl="reference"``. Values and gradients must agree to 1e-6 in float64 and to float32
tolerance in float32, over reductions, weights, pos_weight, ignore_index, probability targets
and saturated logits; the fused path keeps at most one input-sized tensor for backward.
"""

from __future__ import annotations

import math

import pytest
import torch

from losslab.bench import saved_tensor_bytes
from losslab.functional.alternate import binary_l_loss, binary_m_loss, l_loss, m_loss
from losslab.functional.classification import binary_hinge_loss, sigmoid_focal_loss
from losslab.functional.regression import log_cosh_loss, smae_loss

BINARY = [(binary_m_loss, False), (binary_m_loss, True), (binary_l_loss, False), (binary_l_loss, True)]
MULTICLASS = [(m_loss, False), (m_loss, True), (l_loss, False), (l_loss, True)]
REDUCTIONS = ["mean", "sum", "none"]


def _ids(cases):
    return [f"{'full_' if full else ''}{fn.__name__}" for fn, full in cases]


def _value_and_grads(function, inputs, *args, impl, upstream=None, **kwargs):
    """Loss value and the gradient of every differentiable tensor in ``inputs``."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    value = function(*leaves, *args, impl=impl, **kwargs)
    weights = upstream if upstream is not None else torch.ones_like(value)
    grads = torch.autograd.grad(value, [t for t in leaves if t.requires_grad], weights)
    return value.detach(), grads


def _assert_paths_agree(function, inputs, *args, rtol, atol, **kwargs):
    generator = torch.Generator().manual_seed(3)
    probe = function(*[t.detach() for t in inputs], *args, impl="reference", **kwargs)
    upstream = torch.rand(probe.shape, generator=generator, dtype=probe.dtype)
    fused = _value_and_grads(function, inputs, *args, impl="fused", upstream=upstream, **kwargs)
    reference = _value_and_grads(function, inputs, *args, impl="reference", upstream=upstream, **kwargs)
    torch.testing.assert_close(fused[0], reference[0], rtol=rtol, atol=atol)
    for got, expected in zip(fused[1], reference[1], strict=True):
        torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)


def _logits(*shape, dtype=torch.float64, scale=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * scale).to(dtype).requires_grad_()


# --- binary -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("function", "full"), BINARY, ids=_ids(BINARY))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_fused_matches_reference_float64(function, full, reduction):
    generator = torch.Generator().manual_seed(1)
    z = _logits(6, 7)
    soft = torch.rand(6, 7, generator=generator, dtype=torch.float64)
    hard = torch.randint(0, 2, (6, 7), generator=generator).double()
    pos_weight = torch.rand(7, generator=generator, dtype=torch.float64) * 3
    weight = torch.rand(6, 7, generator=generator, dtype=torch.float64)
    for target in (soft, hard):
        for options in ({}, {"pos_weight": pos_weight}, {"weight": weight},
                        {"pos_weight": pos_weight, "weight": weight}, {"eps": 0.0}, {"eps": 1e-3}):
            _assert_paths_agree(function, [z], target, full=full, reduction=reduction,
                                rtol=1e-6, atol=1e-12, **options)


@pytest.mark.parametrize(("function", "full"), BINARY, ids=_ids(BINARY))
def test_binary_fused_matches_reference_float32_and_float64_truth(function, full):
    z64 = _logits(2000, scale=6.0)
    target = torch.rand(2000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _assert_paths_agree(function, [z64.float()], target.float(), full=full, rtol=2e-5, atol=1e-9)
    # and the float32 fused value is within float32 tolerance of the float64 truth, also for
    # hard targets near certainty, where one term is tiny and the other huge (no cancellation)
    hard = (target > 0.5).double()
    for y in (target, hard, 1.0 - hard):
        fused32 = function(z64.detach().float(), y.float(), full=full, impl="fused", reduction="none")
        # the truth on the float32-rounded inputs: the kernel's error, not the inputs' rounding
        truth = function(z64.detach().float().double(), y.float().double(), full=full,
                         impl="reference", reduction="none")
        torch.testing.assert_close(fused32.double(), truth, rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize(("function", "full"), BINARY, ids=_ids(BINARY))
def test_binary_saturated_logits_finite_and_clamp_stops_gradient(function, full):
    z = torch.tensor([-1e4, -40.0, -17.0, -3.0, 0.0, 3.0, 17.0, 40.0, 1e4], requires_grad=True)
    for target in (torch.ones(9), torch.zeros(9), torch.full((9,), 0.5)):
        value = function(z, target, full=full, impl="fused", reduction="none")
        (grad,) = torch.autograd.grad(value.sum(), z)
        assert torch.isfinite(value).all() and torch.isfinite(grad).all()
        # |z| >= 17 > logit(1 - 1e-7) = 16.1: the clamp is active there, the gradient is zero
        assert (grad[[0, 1, 2, 6, 7, 8]] == 0).all()
        _assert_paths_agree(function, [z], target, full=full, reduction="none", rtol=1e-6, atol=1e-6)


def test_binary_m_from_logits_is_y_exp_minus_z():
    # hand check: binary M from a logit is y exp(-z); full M adds (1 - y) exp(z)
    z = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.25], dtype=torch.float64)
    value = binary_m_loss(z, y, full=True, impl="fused", reduction="sum")
    expected = (y * torch.exp(-z) + (1 - y) * torch.exp(z)).sum()
    torch.testing.assert_close(value, expected)
    (grad,) = torch.autograd.grad(value, z)
    torch.testing.assert_close(grad, -y * torch.exp(-z) + (1 - y) * torch.exp(z))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("function", "full"), BINARY, ids=_ids(BINARY))
def test_binary_half_precision_paths_agree(function, full, dtype):
    z = _logits(300, dtype=dtype, scale=4.0)
    target = torch.rand(300, generator=torch.Generator().manual_seed(4)).to(dtype)
    fused = _value_and_grads(function, [z], target, full=full, impl="fused")
    reference = _value_and_grads(function, [z], target, full=full, impl="reference")
    assert fused[0].dtype == torch.float32 and fused[1][0].dtype == dtype
    torch.testing.assert_close(fused[0], reference[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused[1][0], reference[1][0])


# --- multiclass ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("function", "full"), MULTICLASS, ids=_ids(MULTICLASS))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multiclass_fused_matches_reference_float64(function, full, reduction):
    generator = torch.Generator().manual_seed(5)
    z = _logits(9, 6)
    indices = torch.randint(0, 6, (9,), generator=generator)
    ignored = indices.clone()
    ignored[[1, 4]] = -100
    probabilities = torch.softmax(torch.randn(9, 6, generator=generator, dtype=torch.float64), 1)
    weight = torch.rand(6, generator=generator, dtype=torch.float64) + 0.1
    zero_weight = weight.clone()
    zero_weight[indices[0]] = 0.0       # a target class with weight 0: its other terms still count
    for target in (indices, ignored, probabilities):
        for options in ({}, {"weight": weight}, {"weight": zero_weight}, {"eps": 0.0}, {"eps": 1e-3}):
            _assert_paths_agree(function, [z], target, full=full, reduction=reduction,
                                rtol=1e-6, atol=1e-12, **options)


@pytest.mark.parametrize(("function", "full"), MULTICLASS, ids=_ids(MULTICLASS))
def test_multiclass_spatial_unbatched_and_custom_ignore_index(function, full):
    generator = torch.Generator().manual_seed(6)
    z = _logits(3, 4, 5, 2)
    target = torch.randint(0, 4, (3, 5, 2), generator=generator)
    target[0, 0, 0] = 7
    for reduction in REDUCTIONS:
        _assert_paths_agree(function, [z], target, full=full, reduction=reduction, ignore_index=7,
                            rtol=1e-6, atol=1e-12)
        _assert_paths_agree(function, [_logits(5)], torch.tensor(2), full=full, reduction=reduction,
                            rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("function", "full"), MULTICLASS, ids=_ids(MULTICLASS))
def test_multiclass_all_ignored_gives_nan_with_a_zero_gradient(function, full):
    # torch's cross_entropy rule: "mean" over no kept target is NaN (0 / 0), the gradient 0
    z = _logits(4, 3)
    target = torch.full((4,), -100)
    value = function(z, target, full=full, impl="fused")
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isnan(value) and (grad == 0).all()


@pytest.mark.parametrize(("function", "full"), MULTICLASS, ids=_ids(MULTICLASS))
def test_multiclass_float32_and_saturated(function, full):
    generator = torch.Generator().manual_seed(7)
    z = _logits(64, 10, dtype=torch.float32, scale=4.0)
    target = torch.randint(0, 10, (64,), generator=generator)
    _assert_paths_agree(function, [z], target, full=full, rtol=2e-5, atol=1e-7)
    # saturated: the top class near p = 1 (clamped) and a target class with p ~ 0 (clamped)
    big = torch.tensor([[1e4, 0.0, -1e4], [0.0, 30.0, 0.0], [2.0, 1.0, 0.5]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    value = function(big, labels, full=full, impl="fused", reduction="none")
    (grad,) = torch.autograd.grad(value.sum(), big)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    _assert_paths_agree(function, [big], labels, full=full, reduction="none", rtol=1e-5, atol=1e-6)


def test_multiclass_m_with_indices_is_expm1_of_cross_entropy():
    z = _logits(5, 4)
    target = torch.tensor([0, 3, 1, 1, 2])
    value = m_loss(z, target, impl="fused", reduction="none")
    ce = torch.nn.functional.cross_entropy(z, target, reduction="none")
    torch.testing.assert_close(value, torch.expm1(ce))
    (grad,) = torch.autograd.grad(value.sum(), z)
    (expected,) = torch.autograd.grad(torch.expm1(ce).sum(), z)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize(("function", "full"), MULTICLASS, ids=_ids(MULTICLASS))
def test_multiclass_half_precision(function, full):
    z = _logits(16, 5, dtype=torch.bfloat16)
    target = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(8))
    fused = _value_and_grads(function, [z], target, full=full, impl="fused")
    reference = _value_and_grads(function, [z], target, full=full, impl="reference")
    assert fused[1][0].dtype == torch.bfloat16
    torch.testing.assert_close(fused[0], reference[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused[1][0], reference[1][0])


# --- regression ---------------------------------------------------------------------------------


@pytest.mark.parametrize("function", [smae_loss, log_cosh_loss])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_fused_matches_reference_with_target_gradient(function, reduction):
    x = _logits(40, scale=5.0)
    t = _logits(40, scale=5.0, seed=9)
    _assert_paths_agree(function, [x, t], reduction=reduction, rtol=1e-6, atol=1e-12)
    _assert_paths_agree(function, [x.float(), t.float()], reduction=reduction, rtol=2e-5, atol=1e-6)


def test_regression_hand_values():
    x = torch.tensor([0.0, 1.0, -3.0, 50.0], dtype=torch.float64, requires_grad=True)
    t = torch.zeros(4, dtype=torch.float64)
    smae = smae_loss(x, t, reduction="none", impl="fused")
    torch.testing.assert_close(smae, x.detach() * torch.tanh(x.detach() / 2))
    (grad,) = torch.autograd.grad(smae.sum(), x)
    h = x.detach() / 2
    torch.testing.assert_close(grad, torch.tanh(h) + h / torch.cosh(h) ** 2)
    log_cosh = log_cosh_loss(x, t, reduction="none", impl="fused")
    torch.testing.assert_close(log_cosh[:3], torch.log(torch.cosh(x.detach()[:3])))
    torch.testing.assert_close(log_cosh[3], torch.tensor(50.0 - math.log(2.0), dtype=torch.float64))


# --- autograd properties ------------------------------------------------------------------------


CALLS = {
    "binary_m": lambda z: binary_m_loss(z, torch.linspace(0, 1, z.numel(), dtype=z.dtype), impl="fused"),
    "binary_full_l": lambda z: binary_l_loss(z, torch.linspace(0, 1, z.numel(), dtype=z.dtype),
                                             full=True, impl="fused", reduction="sum"),
    "m": lambda z: m_loss(z.view(2, 3), torch.tensor([0, 2]), impl="fused"),
    "full_m_probs": lambda z: m_loss(z.view(2, 3), torch.softmax(torch.arange(6.0, dtype=z.dtype).view(2, 3), 1),
                                     full=True, impl="fused"),
    "l": lambda z: l_loss(z.view(2, 3), torch.tensor([1, 2]), impl="fused", reduction="none"),
    "full_l": lambda z: l_loss(z.view(2, 3), torch.tensor([1, 0]), full=True, impl="fused"),
    "smae": lambda z: smae_loss(z, torch.zeros_like(z), impl="fused"),
    "sigmoid_focal": lambda z: sigmoid_focal_loss(z, torch.linspace(0, 1, z.numel(), dtype=z.dtype), gamma=1.5),
    "squared_hinge": lambda z: binary_hinge_loss(z, torch.tensor([1, 0, 1, 1, 0, 0]), squared=True, margin=0.5),
    "log_cosh": lambda z: log_cosh_loss(z, torch.ones_like(z), impl="fused", reduction="none"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_fused_gradcheck_and_gradgradcheck(name):
    z = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(CALLS[name], (z,))
    # second derivatives come from the reference formula (create_graph=True)
    assert torch.autograd.gradgradcheck(CALLS[name], (z,))


@pytest.mark.parametrize(
    ("name", "call", "numel"),
    [
        ("binary_full_m", lambda z, y: binary_m_loss(z, y, full=True), 1000),
        ("binary_full_l", lambda z, y: binary_l_loss(z, y, full=True), 1000),
        ("m", lambda z, y: m_loss(z.view(100, 10), y), 1000),
        ("full_l", lambda z, y: l_loss(z.view(100, 10), y, full=True), 1000),
        ("smae", smae_loss, 1000),
        ("log_cosh", log_cosh_loss, 1000),
    ],
)
def test_fused_keeps_at_most_one_input_sized_tensor_for_backward(name, call, numel):
    z = torch.randn(numel, requires_grad=True)
    if name in ("m", "full_l"):
        y = torch.randint(0, 10, (100,))
    else:
        y = torch.rand(numel)
    saved, count = saved_tensor_bytes(lambda: call(z, y), [z, y])
    assert saved <= z.numel() * z.element_size(), (saved, count)
    reference, _ = saved_tensor_bytes(lambda: _reference(name, z, y), [z, y])
    assert reference > saved       # the eager formula keeps several intermediates


def _reference(name, z, y):
    return {
        "binary_full_m": lambda: binary_m_loss(z, y, full=True, impl="reference"),
        "binary_full_l": lambda: binary_l_loss(z, y, full=True, impl="reference"),
        "m": lambda: m_loss(z.view(100, 10), y, impl="reference"),
        "full_l": lambda: l_loss(z.view(100, 10), y, full=True, impl="reference"),
        "smae": lambda: smae_loss(z, y, impl="reference"),
        "log_cosh": lambda: log_cosh_loss(z, y, impl="reference"),
    }[name]()


@pytest.mark.parametrize("name", list(CALLS))
def test_retain_graph_repeated_backward_accumulates_exactly(name):
    # the input reaches the loss through a view, so gradient accumulation into the leaf would
    # write into any buffer the fused backward handed out
    leaf = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], dtype=torch.float64, requires_grad=True)
    value = CALLS[name](leaf.view(2, 3).view(6))
    value.sum().backward(retain_graph=True)
    once = leaf.grad.clone()
    value.sum().backward(retain_graph=True)
    value.sum().backward()
    torch.testing.assert_close(leaf.grad, 3 * once)


# --- dispatch -----------------------------------------------------------------------------------


def test_impl_argument_is_checked():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="impl: expected one of 'auto', 'fused', 'reference', got 'fast'"):
        m_loss(z, torch.tensor([0, 1, 2, 0]), impl="fast")
    with pytest.raises(ValueError, match="impl: 'fused' is not available with from_logits=False"):
        binary_m_loss(torch.rand(4), torch.rand(4), from_logits=False, impl="fused")
    with pytest.raises(ValueError, match="impl: 'fused' differentiates the input only"):
        binary_l_loss(torch.randn(4), torch.rand(4, requires_grad=True), impl="fused")


def test_auto_falls_back_when_the_target_needs_a_gradient():
    z = torch.randn(8, dtype=torch.float64, requires_grad=True)
    y = torch.rand(8, dtype=torch.float64, requires_grad=True)
    (auto_grad,) = torch.autograd.grad(binary_m_loss(z, y, full=True), y)
    (ref_grad,) = torch.autograd.grad(binary_m_loss(z, y, full=True, impl="reference"), y)
    torch.testing.assert_close(auto_grad, ref_grad)
    assert auto_grad.abs().sum() > 0


def test_auto_uses_the_fused_path():
    from losslab.functional._fused import binary, elementwise

    z = torch.randn(8, requires_grad=True)
    value = binary_m_loss(z, torch.rand(8))
    assert type(value.grad_fn).__name__ == "FusedLossBackward"
    assert value.grad_fn.forward_function is binary._binary_forward
    value = smae_loss(z, torch.rand(8))
    assert type(value.grad_fn).__name__ == "FusedLossBackward"
    assert value.grad_fn.forward_function is elementwise._regression_forward
    assert type(binary_m_loss(z, torch.rand(8), impl="reference").grad_fn).__name__ != "FusedLossBackward"


@pytest.mark.parametrize("function", [m_loss, l_loss], ids=["full_m", "full_l"])
def test_multiclass_full_indices_many_classes_near_certainty(function):
    # Many classes and large logits: some rows have a top class at p ~ 1 - 1e-9 (its 1 - p must
    # come from the other classes), many entries fall below the eps clamp (zero gradient
    # there), targets hit the top class, a small class and ignored samples; spans several
    # chunks. float32 fused against the float64 reference.
    generator = torch.Generator().manual_seed(11)
    z64 = torch.randn(300, 257, generator=generator, dtype=torch.float64) * 6.0
    z64[::7, 3] += 40.0
    z64 = z64.float().double()                 # the truth for exactly the float32 logits
    target = torch.randint(0, 257, (300,), generator=generator)
    target[::7] = 3
    target[::11] = -100
    weight = torch.rand(257, generator=generator, dtype=torch.float64) + 0.5
    for options in ({}, {"weight": weight}, {"eps": 0.0}):
        upstream = torch.rand(300, generator=generator, dtype=torch.float64)
        expected = _value_and_grads(function, [z64.requires_grad_()], target, full=True, impl="reference",
                                    reduction="none", upstream=upstream, **options)
        w32 = {k: v.float() for k, v in options.items() if k == "weight"}
        got = _value_and_grads(function, [z64.float().requires_grad_()], target, full=True, impl="fused",
                               reduction="none", upstream=upstream.float(), **{**options, **w32})
        torch.testing.assert_close(got[0].double(), expected[0], rtol=3e-5, atol=1e-6)
        torch.testing.assert_close(got[1][0].double(), expected[1][0], rtol=3e-5, atol=1e-6)
    clamped = torch.softmax(z64.detach(), 1) < 1e-7
    assert clamped.any()
    (grad,) = torch.autograd.grad(function(z64, target, full=True, impl="fused", reduction="sum"), z64)
    (grad_reference,) = torch.autograd.grad(function(z64, target, full=True, impl="reference", reduction="sum"), z64)
    torch.testing.assert_close(grad, grad_reference, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("full", [False, True])
def test_binary_l_chunks_mixing_hard_and_soft_targets(monkeypatch, full):
    # Chunks of two rows: the full-L fast path for hard 0/1 targets is chosen per chunk, so
    # hard chunks, soft chunks and a chunk with one soft value must all match the reference,
    # with the clamp active in some chunks (|z| > 16.1) and weights broadcast over rows.
    from losslab.functional._fused import binary

    monkeypatch.setattr(binary, "_L_CHUNK_ELEMENTS", 64)
    generator = torch.Generator().manual_seed(5)
    z = _logits(8, 32, scale=8.0, seed=4)
    target = torch.randint(0, 2, (8, 32), generator=generator).double()
    target[4:6] = torch.rand(2, 32, generator=generator, dtype=torch.float64)
    target[7, 3] = 0.25
    pos_weight = torch.rand(32, generator=generator, dtype=torch.float64) + 0.5
    weight = torch.rand(8, 32, generator=generator, dtype=torch.float64)
    assert (z.detach().abs() > 16.2).any()
    for reduction in ("none", "mean"):
        for options in ({}, {"pos_weight": pos_weight, "weight": weight}):
            _assert_paths_agree(binary_l_loss, [z], target, full=full, reduction=reduction,
                                rtol=1e-6, atol=1e-12, **options)
            _assert_paths_agree(binary_l_loss, [z.detach().float().requires_grad_()], target.float(),
                                full=full, reduction=reduction, rtol=2e-5, atol=1e-7,
                                **{k: v.float() for k, v in options.items()})
    value = binary_l_loss(z, target, full=full, impl="fused", reduction="none")
    (grad,) = torch.autograd.grad(value.sum(), z)
    assert (grad[z.detach().abs() > 16.2] == 0).all()


@pytest.mark.parametrize("function", [m_loss, l_loss], ids=["full_m", "full_l"])
def test_multiclass_full_indices_across_chunks(monkeypatch, function):
    # Chunks of three rows: the per-sample corrections (top class, target class) are computed
    # once for the whole batch after the first pass over the chunks, so every chunk's rows must
    # line up with them; the clamp acts in some chunks only (rows 0-2 and 9-11 hold
    # near-certain and underflowing classes), targets hit the top class, ignored samples are
    # spread over chunks, and spatial dims ride along.
    from losslab.functional._fused import multiclass

    monkeypatch.setattr(multiclass, "_MULTICLASS_CHUNK_ELEMENTS", 3 * 7 * 2)
    generator = torch.Generator().manual_seed(12)
    z = torch.randn(14, 7, 2, generator=generator, dtype=torch.float64)
    z[0:3, 2] += 30.0
    z[9:12, 5] -= 25.0
    z.requires_grad_()
    target = torch.randint(0, 7, (14, 2), generator=generator)
    target[0:3, 0] = 2
    target[[4, 10], 1] = -100
    weight = torch.rand(7, generator=generator, dtype=torch.float64) + 0.2
    assert (torch.softmax(z.detach(), 1) < 1e-7).any()
    for reduction in REDUCTIONS:
        for options in ({}, {"weight": weight}, {"eps": 0.0}, {"eps": 1e-3}):
            _assert_paths_agree(function, [z], target, full=True, reduction=reduction,
                                rtol=1e-6, atol=1e-12, **options)


@pytest.mark.parametrize("name", list(CALLS))
def test_backward_hands_out_the_kept_gradient_and_recomputes_it_exactly(name):
    # The first backward returns the forward's gradient buffer itself (scaled in place; no
    # input-sized allocation), so the leaf's .grad is that buffer; a second backward through
    # the retained graph recomputes it with the same kernels: the same bits.
    leaf = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], dtype=torch.float64, requires_grad=True)
    value = CALLS[name](leaf)
    kept = value.grad_fn.gradient.data_ptr()      # no reference held: autograd may take it
    value.sum().backward(retain_graph=True)
    assert leaf.grad.data_ptr() == kept
    first = leaf.grad.clone()
    leaf.grad = None
    value.sum().backward()
    assert torch.equal(leaf.grad, first)
    assert value.grad_fn.gradient is None


def _tensors_reachable_from_ctx(node):
    """Tensors in the node's attributes, in tuples among them and in closures' cells."""
    found = []
    pending = list(vars(node).values())
    while pending:
        item = pending.pop()
        if isinstance(item, torch.Tensor):
            found.append(item)
        elif isinstance(item, (tuple, list)):
            pending.extend(item)
        elif callable(item) and getattr(item, "__closure__", None):
            pending.extend(cell.cell_contents for cell in item.__closure__)
    return found


@pytest.mark.parametrize("name", list(CALLS))
def test_a_loss_kept_after_backward_holds_no_tensor(name):
    # e.g. losses appended to a list for logging: after backward, the graph node must not keep
    # the input, the target or the gradient alive (saved tensors are freed by autograd; nothing
    # is captured elsewhere)
    leaf = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], dtype=torch.float64, requires_grad=True)
    value = CALLS[name](leaf * 1.0)
    assert _tensors_reachable_from_ctx(value.grad_fn) != []       # the gradient, before backward
    value.sum().backward()
    assert _tensors_reachable_from_ctx(value.grad_fn) == []
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        _ = value.grad_fn.saved_tensors


def _focal_by_autograd(z, y, alpha, gamma, reduction):
    """Lin et al.'s focal loss written plainly (float64, moderate logits), for autograd."""
    p = torch.sigmoid(z)
    ce = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
    loss = ce * (1 - (p * y + (1 - p) * (1 - y))) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_sigmoid_focal_fused_gradient_across_chunks(monkeypatch, gamma, alpha):
    # chunks of 24 elements over an (8, 30) input: rows of hard and soft targets mixed
    from losslab.functional._fused import elementwise

    monkeypatch.setattr(elementwise, "_FOCAL_CHUNK_ELEMENTS", 24)
    generator = torch.Generator().manual_seed(21)
    z = (torch.randn(8, 30, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    y = torch.randint(0, 2, (8, 30), generator=generator).double()
    y[2:4] = torch.rand(2, 30, generator=generator, dtype=torch.float64)
    for reduction in REDUCTIONS:
        upstream = torch.rand(8, 30, dtype=torch.float64) if reduction == "none" else torch.tensor(0.7, dtype=torch.float64)
        got = sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction=reduction)
        expected = _focal_by_autograd(z, y, alpha, gamma, reduction)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
        (grad,) = torch.autograd.grad(got, z, upstream)
        (expected_grad,) = torch.autograd.grad(expected, z, upstream)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)
    # float32 against the float64 truth, and the one tensor kept for backward
    z32 = z.detach().float().requires_grad_()
    (grad32,) = torch.autograd.grad(sigmoid_focal_loss(z32, y.float(), alpha=alpha, gamma=gamma, reduction="sum"), z32)
    leaf = z32.detach().double().requires_grad_()
    (truth,) = torch.autograd.grad(_focal_by_autograd(leaf, y, alpha, gamma, "sum"), leaf)
    torch.testing.assert_close(grad32.double(), truth, rtol=2e-5, atol=1e-6)
    saved, _ = saved_tensor_bytes(lambda: sigmoid_focal_loss(z32, y.float(), alpha=alpha, gamma=gamma), [z32])
    assert saved <= z32.numel() * 4 + y.numel() * 4      # the gradient (and the float32 target)


@pytest.mark.parametrize("squared", [False, True])
def test_binary_hinge_fused_across_chunks_and_label_kinds(monkeypatch, squared):
    # chunks of 20 elements; labels as {0, 1} floats, {-1, +1} ints and bools give the same
    # loss; scores placed exactly on the kink (m - t z = 0) take clamp_min's subgradient
    from losslab.functional._fused import chunks

    monkeypatch.setattr(chunks, "CHUNK_ELEMENTS", 20)
    generator = torch.Generator().manual_seed(23)
    z = torch.randn(6, 15, generator=generator, dtype=torch.float64) * 2
    labels = torch.randint(0, 2, (6, 15), generator=generator)
    z[0, :4] = torch.where(labels[0, :4] > 0, 1.0, -1.0)      # on the kink for margin 1
    z.requires_grad_()
    sign = torch.where(labels > 0, 1.0, -1.0).double()
    for target in (labels.double(), sign.long(), labels.bool()):
        for reduction in REDUCTIONS:
            got = binary_hinge_loss(z, target, squared=squared, reduction=reduction)
            plain = (1.0 - sign * z).clamp_min(0.0)
            plain = plain.square() if squared else plain
            expected = {"none": plain, "sum": plain.sum(), "mean": plain.mean()}[reduction]
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
            upstream = torch.rand(got.shape, dtype=torch.float64)
            (grad,) = torch.autograd.grad(got, z, upstream)
            (expected_grad,) = torch.autograd.grad(expected, z, upstream)
            torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)


# --- one generic autograd Function ---------------------------------------------------------------

# the forward of each fused loss in CALLS, by the module that holds it
FORWARDS = {
    "binary_m": "binary._binary_forward", "binary_full_l": "binary._binary_forward",
    "m": "multiclass._multiclass_forward", "full_m_probs": "multiclass._multiclass_forward",
    "l": "multiclass._multiclass_forward", "full_l": "multiclass._multiclass_forward",
    "smae": "elementwise._regression_forward", "log_cosh": "elementwise._regression_forward",
    "sigmoid_focal": "elementwise._focal_forward", "squared_hinge": "elementwise._hinge_forward",
}


@pytest.mark.parametrize("name", list(CALLS))
def test_every_fused_loss_runs_through_the_one_generic_function(name):
    import importlib

    module_name, function_name = FORWARDS[name].split(".")
    module = importlib.import_module(f"losslab.functional._fused.{module_name}")
    leaf = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4, 1.5], dtype=torch.float64, requires_grad=True)
    value = CALLS[name](leaf)
    assert type(value.grad_fn).__name__ == "FusedLossBackward"
    assert value.grad_fn.forward_function is getattr(module, function_name)


def test_the_fused_package_defines_one_autograd_function():
    import importlib
    import inspect

    from losslab.functional._fused import FusedLoss

    found = set()
    for module_name in ("autograd", "binary", "chunks", "elementwise", "multiclass"):
        module = importlib.import_module(f"losslab.functional._fused.{module_name}")
        found |= {value for value in vars(module).values()
                  if inspect.isclass(value) and issubclass(value, torch.autograd.Function)}
    assert found == {FusedLoss}


def test_generic_function_gives_the_target_its_gradient_for_regression_only():
    # regression: d/dt of l(x - t) is minus d/dx; the others give no gradient to the target
    x = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64, requires_grad=True)
    gx, gt = torch.autograd.grad(smae_loss(x, t, impl="fused", reduction="sum"), (x, t))
    e = (x - t).detach()
    expected = torch.tanh(e / 2) + (e / 2) * (1 - torch.tanh(e / 2) ** 2)     # d/de e tanh(e/2)
    torch.testing.assert_close(gx, expected, rtol=1e-14, atol=0)
    torch.testing.assert_close(gt, -expected, rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="impl: 'fused' differentiates the input only"):
        binary_m_loss(x, torch.rand(3, dtype=torch.float64, requires_grad=True), impl="fused")
