"""Every registered loss works under ``torch.compile``, with the same value and gradients.

The losses are read from the registry when the tests are collected, so entries added by any
family module are covered; inputs come from ``losslab.bench.example_inputs`` (built from the
registry's target kind, factory defaults for the rest).

Backends: most tests use ``backend="aot_eager"``, which runs Dynamo's graph capture and
AOTAutograd's forward/backward tracing (where graph breaks and autograd.Function problems
show up) but skips Inductor's C++ code generation, which costs seconds per graph on a CPU.
One test compiles a paper loss with the real ``"inductor"`` backend to check the generated
kernel end to end.
"""

from __future__ import annotations

import pytest
import torch

from losslab.bench import SIZES, build_loss, example_inputs, kind_of
from losslab.registry import get_info, list_losses

ALL_LOSSES = [info.name for info in list_losses()]


def _spec(info):
    return SIZES[f"tiny-{kind_of(info)}"]


def _run(module, inputs):
    """Loss value and the gradients of the inputs and the module's parameters."""
    args = [a.detach().clone().requires_grad_(a.requires_grad) for a in inputs.args]
    leaves = [a for a in args if a.requires_grad] + [p for p in module.parameters() if p.requires_grad]
    value = module(*args)
    grads = torch.autograd.grad(value, leaves, allow_unused=True) if leaves else ()
    return value.detach(), [None if g is None else g.detach() for g in grads]


def _assert_same(compiled, eager, name):
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-6, msg=f"{name}: value")
    for index, (got, expected) in enumerate(zip(compiled[1], eager[1], strict=True)):
        if expected is None:
            assert got is None or (got == 0).all()
            continue
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=f"{name}: gradient {index}")


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_registered_loss_compiles(name):
    info = get_info(name)
    spec = _spec(info)
    torch.manual_seed(0)
    module = build_loss(info, spec)
    inputs = example_inputs(info, spec, module, seed=1)
    eager = _run(module, inputs)
    assert torch.isfinite(eager[0]).all(), f"{name}: eager loss not finite on the example inputs"
    torch._dynamo.reset()
    # The losses with fused kernels must compile as one graph; the others at least compile and
    # agree (a graph break there falls back to eager for the broken part, which is still correct).
    fullgraph = info.fused
    compiled = torch.compile(module, backend="aot_eager", fullgraph=fullgraph)
    _assert_same(_run(compiled, inputs), eager, name)


def test_paper_loss_compiles_with_inductor():
    # One real Inductor compile (C++ kernel generated and built): binary full M, whose fused
    # autograd.Function must trace into a single graph for forward and backward.
    info = get_info("binary_full_m")
    spec = _spec(info)
    module = build_loss(info, spec)
    inputs = example_inputs(info, spec, module, seed=2)
    eager = _run(module, inputs)
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="inductor", fullgraph=True)
    _assert_same(_run(compiled, inputs), eager, "binary_full_m (inductor)")


@pytest.mark.parametrize("name", ["m", "full_l", "smae"])
def test_fused_path_traces_with_the_reference_values(name):
    # Under compile the fused kernels mask the clamp unconditionally (no data-dependent branch);
    # check against the reference formula on saturated inputs, where the mask matters.
    info = get_info(name)
    z = torch.tensor([[40.0, -3.0, 0.5], [-40.0, 2.0, 1.0]], dtype=torch.float64, requires_grad=True)
    if name == "smae":
        target = torch.zeros_like(z)
        call = lambda x, impl: info.functional(x, target, impl=impl)  # noqa: E731
    else:
        target = torch.tensor([0, 0])
        call = lambda x, impl: info.functional(x, target, impl=impl)  # noqa: E731
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: call(x, "fused"), backend="aot_eager", fullgraph=True)
    value = compiled(z)
    (grad,) = torch.autograd.grad(value, z)
    expected = call(z, "reference")
    (expected_grad,) = torch.autograd.grad(expected, z)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)
