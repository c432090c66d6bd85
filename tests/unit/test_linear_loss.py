"""linear_loss (an output layer and its loss without the (N, V) logits) against the naive path.

The naive path is ``loss(F.linear(hidden, weight, bias), target)`` with the loss's own
``(N, C)`` function: values and the gradients of hidden, weight and bias must agree to float64
rounding, for every supported loss and option, at chunk sizes that do and do not divide N.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab.functional import (
    cross_entropy,
    l_loss,
    linear_loss,
    linear_loss_chunk_size,
    m_loss,
    poly_loss,
    softmax_focal_loss,
)
from losslab.functional.linear import CHUNK_LOGIT_BYTES, LINEAR_LOSSES

NAIVE = {
    "cross_entropy": cross_entropy,
    "m": m_loss,
    "full_m": functools.partial(m_loss, full=True),
    "l": l_loss,
    "full_l": functools.partial(l_loss, full=True),
    "softmax_focal": softmax_focal_loss,
    "poly1": poly_loss,
}
# The options each loss is tested with besides its defaults (the (N, C) loss's keywords).
OPTIONS = {
    "cross_entropy": [{}, {"label_smoothing": 0.1}],
    "m": [{}, {"eps": 0.0}],
    "full_m": [{}],
    "l": [{}],
    "full_l": [{}, {"impl": "reference"}],
    "softmax_focal": [{}, {"gamma": 0.5, "alpha": 0.25}],
    "poly1": [{}, {"epsilon": [1.0, -0.5], "label_smoothing": 0.2}],
}
REDUCTIONS = ["mean", "sum", "none"]
N, H, V = 23, 6, 13


def _tensors(*, dtype=torch.float64, bias=True, ignored=True, seed=0, shape=(N,)):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(*shape, H, generator=generator, dtype=dtype)
    weight = torch.randn(V, H, generator=generator, dtype=dtype)
    b = torch.randn(V, generator=generator, dtype=dtype) if bias else None
    target = torch.randint(0, V, shape, generator=generator)
    if ignored:
        target.view(-1)[::4] = -100
    return hidden, weight, b, target


def _value_and_grads(call, hidden, weight, bias, upstream_seed=5):
    leaves = [t.detach().clone().requires_grad_(True) for t in (hidden, weight) + ((bias,) if bias is not None else ())]
    value = call(*leaves)
    upstream = torch.randn(value.shape, generator=torch.Generator().manual_seed(upstream_seed),
                           dtype=value.dtype)
    grads = torch.autograd.grad(value, leaves, upstream)
    return value.detach(), grads


def _naive(name, options, target, class_weight, reduction):
    def call(hidden, weight, bias=None):
        logits = F.linear(hidden, weight, bias)
        return NAIVE[name](logits.reshape(-1, V), target.reshape(-1), weight=class_weight,
                           reduction=reduction, **options).reshape(
            target.shape if reduction == "none" else ())
    return call


def _fused(name, options, target, class_weight, reduction, chunk_size):
    def call(hidden, weight, bias=None):
        return linear_loss(hidden, weight, target, loss=name, bias=bias, reduction=reduction,
                           chunk_size=chunk_size, class_weight=class_weight, **options)
    return call


def _assert_same(got, expected, *, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(got[0], expected[0], rtol=rtol, atol=atol)
    assert len(got[1]) == len(expected[1])
    for index, (a, b) in enumerate(zip(got[1], expected[1], strict=True)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m, i=index: f"gradient {i}: {m}")


CASES = [(name, options) for name in NAIVE for options in OPTIONS[name]]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{i}" for n in NAIVE for i in range(len(OPTIONS[n]))])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "class_weight"])
def test_value_and_gradients_equal_the_naive_path(name, options, reduction, weighted):
    hidden, weight, bias, target = _tensors()
    class_weight = (torch.rand(V, generator=torch.Generator().manual_seed(9), dtype=torch.float64) + 0.5
                    if weighted else None)
    expected = _value_and_grads(_naive(name, options, target, class_weight, reduction), hidden, weight, bias)
    # chunks of 1 row, of a size that does not divide N, of N, larger than N, and automatic
    for chunk_size in (1, 5, N, 64, None):
        got = _value_and_grads(_fused(name, options, target, class_weight, reduction, chunk_size),
                               hidden, weight, bias)
        _assert_same(got, expected)


@pytest.mark.parametrize("name", list(NAIVE))
def test_without_bias_and_without_ignored_rows(name):
    hidden, weight, _, target = _tensors(bias=False, ignored=False, seed=2)
    expected = _value_and_grads(_naive(name, {}, target, None, "mean"), hidden, weight, None)
    for chunk_size in (3, 7):
        got = _value_and_grads(_fused(name, {}, target, None, "mean", chunk_size), hidden, weight, None)
        _assert_same(got, expected)


def test_leading_dimensions_are_flattened():
    hidden, weight, bias, target = _tensors(shape=(3, 5), seed=4)
    for reduction in REDUCTIONS:
        expected = _value_and_grads(_naive("full_l", {}, target, None, reduction), hidden, weight, bias)
        got = _value_and_grads(_fused("full_l", {}, target, None, reduction, 4), hidden, weight, bias)
        assert got[0].shape == (target.shape if reduction == "none" else ())
        _assert_same(got, expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_z_loss_adds_the_weighted_squared_log_normaliser(reduction):
    hidden, weight, bias, target = _tensors(seed=6)
    class_weight = torch.linspace(0.5, 2.0, V, dtype=torch.float64)
    coefficient = 1e-2

    def naive(h, w, b):
        logits = F.linear(h, w, b)
        keep = target != -100
        row_weight = torch.where(keep, class_weight[torch.where(keep, target, 0)], 0.0)
        per_row = F.cross_entropy(logits, target, weight=class_weight, reduction="none", label_smoothing=0.1)
        per_row = per_row + coefficient * row_weight * torch.logsumexp(logits, 1).square()
        if reduction == "none":
            return per_row
        return per_row.sum() if reduction == "sum" else per_row.sum() / row_weight.sum()

    expected = _value_and_grads(naive, hidden, weight, bias)
    got = _value_and_grads(
        lambda h, w, b: linear_loss(h, w, target, bias=b, reduction=reduction, chunk_size=4,
                                    class_weight=class_weight, z_loss=coefficient, label_smoothing=0.1),
        hidden, weight, bias)
    _assert_same(got, expected)
    # z_loss=0 is cross-entropy exactly
    plain = linear_loss(hidden, weight, target, bias=bias, z_loss=0.0)
    torch.testing.assert_close(plain, F.cross_entropy(F.linear(hidden, weight, bias), target), rtol=1e-12, atol=0)


def test_every_row_ignored_gives_nan_mean_with_zero_gradients():
    hidden, weight, bias, _ = _tensors()
    target = torch.full((N,), -100)
    leaves = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
    value = linear_loss(*leaves[:2], target, bias=leaves[2], loss="full_m", chunk_size=4)
    assert math.isnan(value.item())
    assert math.isnan(F.cross_entropy(F.linear(hidden, weight, bias), target).item())
    value.backward()
    for leaf in leaves:
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))
    assert linear_loss(hidden, weight, target, reduction="sum").item() == 0.0


def test_only_the_inputs_that_require_grad_get_gradients_and_evaluation_needs_none():
    hidden, weight, bias, target = _tensors(seed=8)
    frozen = weight.clone()                     # a frozen output layer (e.g. tied embeddings)
    h = hidden.clone().requires_grad_(True)
    value = linear_loss(h, frozen, target, loss="l", bias=bias, chunk_size=5)
    value.backward()
    h_ref = hidden.clone().requires_grad_(True)
    l_loss(F.linear(h_ref, frozen, bias), target).backward()
    torch.testing.assert_close(h.grad, h_ref.grad, rtol=1e-10, atol=1e-12)
    with torch.no_grad():            # evaluation of a model whose parameters require grad
        evaluated = linear_loss(hidden, weight.clone().requires_grad_(True), target, loss="poly1",
                                bias=bias, chunk_size=5)
    torch.testing.assert_close(evaluated, poly_loss(F.linear(hidden, weight, bias), target), rtol=1e-12, atol=0)
    assert not evaluated.requires_grad


def test_a_second_backward_through_a_retained_graph_gives_the_same_gradients():
    hidden, weight, bias, target = _tensors(seed=10)
    w = weight.clone().requires_grad_(True)
    value = linear_loss(hidden, w, target, loss="softmax_focal", bias=bias, chunk_size=6)
    (first,) = torch.autograd.grad(value, w, retain_graph=True)
    (second,) = torch.autograd.grad(value, w, torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(second, 2 * first, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["cross_entropy", "full_l"])
def test_gradcheck_in_float64(name, reduction):
    hidden, weight, bias, target = _tensors(seed=11, shape=(7,))
    leaves = tuple(t.clone().requires_grad_(True) for t in (hidden, weight, bias))
    assert torch.autograd.gradcheck(
        lambda h, w, b: linear_loss(h, w, target, loss=name, bias=b, reduction=reduction, chunk_size=3),
        leaves,
    )


# float32 reference on the same bf16 values: bf16 products and a bf16 gradient of the logits
# (as the naive bf16 path has) leave a relative error of a few 2^-8; the tolerance is 3e-2 of
# each tensor's largest magnitude. The paper's losses clamp p at the dtype's resolution for
# bf16 (eps = 2^-7), so the float32 reference is given that eps too.
BF16_TOLERANCE = 3e-2
BF16_OPTIONS = {name: {"eps": 2.0**-7} for name in ("m", "full_m", "l", "full_l")}


@pytest.mark.parametrize("name", list(NAIVE))
def test_bfloat16_inputs_are_close_to_the_float32_naive_path(name):
    generator = torch.Generator().manual_seed(12)
    hidden = torch.randn(64, 32, generator=generator).bfloat16()
    weight = (torch.randn(50, 32, generator=generator) * 0.3).bfloat16()
    bias = torch.randn(50, generator=generator).bfloat16()
    target = torch.randint(0, 50, (64,), generator=generator)
    target[::7] = -100
    options = BF16_OPTIONS.get(name, {})
    got = _value_and_grads(
        lambda h, w, b: linear_loss(h, w, target, loss=name, bias=b, chunk_size=24, **options),
        hidden, weight, bias)
    assert got[0].dtype == torch.float32
    assert [g.dtype for g in got[1]] == [torch.bfloat16] * 3
    expected = _value_and_grads(lambda h, w, b: NAIVE[name](F.linear(h, w, b), target, **options),
                                hidden.float(), weight.float(), bias.float())
    torch.testing.assert_close(got[0], expected[0], rtol=BF16_TOLERANCE, atol=0)
    for a, b in zip(got[1], expected[1], strict=True):
        scale = b.abs().max().item()
        torch.testing.assert_close(a.float(), b, rtol=0, atol=BF16_TOLERANCE * scale)


def test_compiled_matches_eager():
    hidden, weight, bias, target = _tensors(dtype=torch.float32, seed=13)

    def step(h, w, b):
        return linear_loss(h, w, target, loss="full_m", bias=b, chunk_size=5)

    torch._dynamo.reset()
    compiled = torch.compile(step, backend="aot_eager", fullgraph=False)
    got = _value_and_grads(compiled, hidden, weight, bias)
    expected = _value_and_grads(step, hidden, weight, bias)
    _assert_same(got, expected, rtol=1e-6, atol=1e-7)


def test_automatic_chunk_size_rule():
    assert linear_loss_chunk_size(4096, 32768) == CHUNK_LOGIT_BYTES // (4 * 32768)
    assert linear_loss_chunk_size(4096, 131072) == 128
    assert linear_loss_chunk_size(10, 32768) == 10                 # never more than N
    # the losses that form the gradient in the logits' buffer take chunks of twice the bytes
    assert linear_loss_chunk_size(4096, 32768, factored=True) == 2 * CHUNK_LOGIT_BYTES // (4 * 32768)
    assert linear_loss_chunk_size(4096, 131072, factored=True) == 256
    assert linear_loss_chunk_size(4096, 50_000_000) == 8            # at least 8 rows
    assert linear_loss_chunk_size(0, 100) == 1
    assert linear_loss_chunk_size(4096, 1000) % 8 == 0


def test_empty_batch():
    hidden = torch.zeros(0, H, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(V, H, dtype=torch.float64, requires_grad=True)
    target = torch.zeros(0, dtype=torch.long)
    assert math.isnan(linear_loss(hidden, weight, target).item())
    assert linear_loss(hidden, weight, target, reduction="sum").item() == 0.0
    assert linear_loss(hidden, weight, target, reduction="none").shape == (0,)


# --- bad input ------------------------------------------------------------------------------------


def _bad(**changes):
    hidden, weight, bias, target = _tensors(dtype=torch.float32)
    arguments = {"hidden": hidden, "weight": weight, "target": target, "bias": bias, **changes}
    return linear_loss(arguments.pop("hidden"), arguments.pop("weight"), arguments.pop("target"), **arguments)


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"weight": torch.randn(V, H + 1)}, ValueError,
     rf"weight: expected shape \(V, {H}\) to match hidden's last dimension \(hidden has shape \({N}, {H}\)\), "
     rf"got \({V}, {H + 1}\)"),
    ({"weight": torch.randn(V, H, 1)}, ValueError, r"weight: expected the output layer's weight of shape \(V, H\)"),
    ({"target": torch.zeros(N + 1, dtype=torch.long)}, ValueError,
     rf"target: expected class indices of shape \({N},\) \(hidden's leading dimensions; hidden has shape "
     rf"\({N}, {H}\)\), got \({N + 1},\)"),
    ({"target": torch.full((N,), V)}, ValueError, rf"target: expected class indices in \[0, {V - 1}\] \(or ignore_index=-100\), got {V}"),
    ({"target": torch.full((N,), -3)}, ValueError, r"target: expected class indices in .* got -3"),
    ({"target": torch.zeros(N)}, TypeError, r"target: expected an integer tensor of class indices of shape \(23,\), got dtype torch.float32"),
    ({"weight": torch.randn(V, H, dtype=torch.float64)}, TypeError,
     r"weight: expected hidden's dtype torch.float32 .* got torch.float64"),
    ({"bias": torch.randn(V + 2)}, ValueError, rf"bias: expected shape \({V},\) .* got \({V + 2},\)"),
    ({"bias": torch.randn(V, dtype=torch.float64)}, TypeError, r"bias: expected weight's dtype torch.float32, got torch.float64"),
    ({"chunk_size": 0}, ValueError, r"chunk_size: expected None \(automatic\) or an integer > 0, got 0"),
    ({"chunk_size": -4}, ValueError, r"chunk_size: .* got -4"),
    ({"chunk_size": 2.5}, ValueError, r"chunk_size: .* got 2.5"),
    ({"loss": "hinge"}, ValueError,
     r"loss: expected one of 'cross_entropy', 'm', 'full_m', 'l', 'full_l', 'softmax_focal', 'poly1' .* got 'hinge'"),
    ({"loss": "m", "gamma": 2.0}, TypeError, r"gamma: not an option of loss 'm'; its options: eps, impl"),
    ({"from_logits": False}, TypeError, r"from_logits: linear_loss always computes logits"),
    ({"reduction": "batchmean"}, ValueError, r"reduction: expected one of 'mean', 'sum', 'none', got 'batchmean'"),
    ({"class_weight": torch.ones(V - 1)}, ValueError, rf"weight: expected a 1-D tensor with one entry per class, shape \({V},\), got \({V - 1},\)"),
    ({"z_loss": -1.0}, ValueError, r"z_loss: expected a finite number >= 0, got -1.0"),
    ({"loss": "cross_entropy", "label_smoothing": 2.0}, ValueError, r"label_smoothing: expected a finite number in \[0, 1\], got 2.0"),
])
def test_bad_input_is_named(changes, error, message):
    with pytest.raises(error, match=message):
        _bad(**changes)


def test_supported_losses_are_the_registry_names():
    for name in LINEAR_LOSSES:
        assert losslab.get_info(name).name == name


def test_module_holds_the_options_and_matches_the_function():
    hidden, weight, bias, target = _tensors(seed=14)
    class_weight = torch.linspace(0.5, 1.5, V, dtype=torch.float64)
    criterion = losslab.nn.LinearLoss("poly1", class_weight=class_weight, chunk_size=4, epsilon=2.0,
                                      reduction="sum")
    assert (criterion.loss, criterion.reduction, criterion.chunk_size, criterion.loss_options) == (
        "poly1", "sum", 4, {"epsilon": 2.0})
    assert "class_weight" in criterion.state_dict()
    assert "epsilon=2.0" in repr(criterion)
    expected = poly_loss(F.linear(hidden, weight, bias), target, weight=class_weight, epsilon=2.0, reduction="sum")
    torch.testing.assert_close(criterion(hidden, weight, target, bias), expected, rtol=1e-12, atol=0)
    criterion.reduction = "mean"                 # options are plain attributes, as in torch
    expected = poly_loss(F.linear(hidden, weight, bias), target, weight=class_weight, epsilon=2.0)
    torch.testing.assert_close(criterion(hidden, weight, target, bias), expected, rtol=1e-12, atol=0)


def test_registry_entry_builds_the_module_and_stays_out_of_the_input_target_listing():
    info = losslab.get_info("linear_loss")
    assert info.name == "linear" and info.family == "output_layer"
    criterion = losslab.get_loss("linear", loss="full_l", chunk_size=3)
    assert isinstance(criterion, losslab.nn.LinearLoss)
    hidden, weight, bias, target = _tensors(seed=15)
    expected = l_loss(F.linear(hidden, weight, bias), target, full=True)
    torch.testing.assert_close(criterion(hidden, weight, target, bias), expected, rtol=1e-12, atol=0)
    assert "linear" not in {i.name for i in losslab.list_losses()}
    assert [i.name for i in losslab.list_losses("output_layer")] == ["linear"]


# --- the benchmark (structure only: no timing is asserted) --------------------------------------


def test_linear_benchmark_reports_every_contender_on_a_tiny_shape(tmp_path, cli_run):
    from losslab import bench_linear

    result = bench_linear.run_linear_benchmarks(["ce", "full_l"], ["tiny"], repeats=1, warmup=0)
    assert result["config"]["losses"] == ["cross_entropy", "full_l"]
    assert [case["shape"] for case in result["cases"]] == ["64x16x300"] * 2
    for case in result["cases"]:
        assert {"naive", "linear_loss"} <= set(case["median_s"])
        assert case["chunk_size"] == 64 and case["logits_bytes"] == 64 * 300 * 4
        assert set(case["working_bytes"]) >= {"naive", "linear_loss"}
        # both paths computed the same loss on the same tensors
        assert math.isclose(case["values"]["linear_loss"], case["values"]["naive"], rel_tol=1e-5)
    assert "liger" in result["cases"][0]["peers_missing"]
    table = bench_linear.linear_markdown_table(result)
    assert table.count("| 64x16x300 |") == 2 and "load average" in table
    out = cli_run("bench", "--linear", "--linear-shapes", "tiny", "--losses", "m", "--repeats", "1",
                  "--no-memory", "--quiet", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0 and "| m | 64x16x300 |" in out.stdout
    assert json.loads((tmp_path / "r.json").read_text())["cases"][0]["peak_bytes"] == {}


def test_linear_benchmark_rejects_bad_arguments(cli_run):
    bad = cli_run("bench", "--linear", "--linear-shapes", "4096x0x7", "--quiet")
    assert bad.returncode == 2 and "--linear-shapes: expected NxHxV with three positive integers" in bad.stderr
    bad = cli_run("bench", "--linear", "--losses", "mse", "--linear-shapes", "tiny", "--quiet")
    assert bad.returncode == 2 and "--losses: linear_loss supports cross_entropy, m, full_m" in bad.stderr
    bad = cli_run("bench", "--linear", "--dtype", "int8", "--linear-shapes", "tiny", "--quiet")
    assert bad.returncode == 2 and "--dtype: expected one of float32, bfloat16, float16, got 'int8'" in bad.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA error cannot occur")
def test_linear_benchmark_on_cuda_without_cuda_says_so(cli_run):
    out = cli_run("bench", "--linear", "--device", "cuda", "--linear-shapes", "tiny", "--quiet")
    assert out.returncode == 2
    assert "--device: 'cuda' needs CUDA, but torch.cuda.is_available() is False here" in out.stderr


# --- CUDA ---------------------------------------------------------------------------------------

CUDA_REASON = "needs a CUDA device (torch.cuda.is_available() is False on this machine)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
@pytest.mark.parametrize("name", list(NAIVE))
def test_linear_loss_on_cuda_equals_the_cpu_in_float64_and_runs_in_bfloat16(name):
    hidden, weight, bias, target = _tensors(seed=16)
    on_cpu = _value_and_grads(_fused(name, {}, target, None, "mean", 5), hidden, weight, bias)
    cuda_target = target.cuda()
    on_cuda = _value_and_grads(_fused(name, {}, cuda_target, None, "mean", 5),
                               hidden.cuda(), weight.cuda(), bias.cuda())
    _assert_same((on_cuda[0].cpu(), [g.cpu() for g in on_cuda[1]]), on_cpu, rtol=1e-9, atol=1e-11)
    options = BF16_OPTIONS.get(name, {})
    half = _value_and_grads(
        lambda h, w, b: linear_loss(h, w, cuda_target, loss=name, bias=b, chunk_size=8, **options),
        hidden.cuda().bfloat16(), weight.cuda().bfloat16(), bias.cuda().bfloat16())
    reference = _value_and_grads(_naive(name, options, cuda_target, None, "mean"),
                                 hidden.cuda().float(), weight.cuda().float(), bias.cuda().float())
    torch.testing.assert_close(half[0], reference[0], rtol=BF16_TOLERANCE, atol=0)
    for a, b in zip(half[1], reference[1], strict=True):
        torch.testing.assert_close(a.float(), b, rtol=0, atol=BF16_TOLERANCE * b.abs().max().item())


# --- scripts/gpu-check (its CPU-side parts) ------------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu-check"


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_gpu_check_dry_run_lists_its_steps(tmp_path):
    assert os.access(SCRIPT, os.X_OK)
    run = _script("--dry-run", "--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any("[setup]" in line and "install" in line and "torch==2.13.0" in line for line in lines)
    assert any("[CUDA tests" in line and "-k cuda" in line and "tests/unit/test_linear_loss.py" in line
               and "tests/integration/test_backends.py" in line for line in lines)
    assert any("bench --linear --device cuda" in line and "8192x4096x131072" in line for line in lines)
    assert any("bench --device cuda" in line for line in lines)
    assert f"{tmp_path}/gpu-check-" in run.stdout
    assert list(tmp_path.iterdir()) == []              # a dry run writes nothing
    custom = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TORCH_SPEC": "torch==2.13.0+cu128",
                                                         "TORCH_INDEX_URL": "https://example.invalid/cu128"})
    assert "--index-url https://example.invalid/cu128 torch==2.13.0+cu128" in custom.stdout


def test_gpu_check_rejects_bad_arguments():
    for args, message in ((["--bogus"], "unknown argument '--bogus'"),
                          (["--budget", "5"], "--budget: expected whole seconds >= 60, got '5'"),
                          (["--python"], "--python: expected a path to python")):
        run = _script(*args)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA exit cannot occur")
def test_gpu_check_without_cuda_stops_before_any_step(tmp_path):
    run = _script("--python", sys.executable, "--out", str(tmp_path))
    assert run.returncode == 3
    assert "no CUDA device: torch.cuda.is_available() is False" in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["cross_entropy", "m", "l"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_in_place_target_term_path_equals_the_naive_path(monkeypatch, name, reduction):
    # Cross-entropy, M and L without class weights form the chunk's gradient in its logits'
    # buffer (factored as c e' + b onehot); with the z-loss, rows near certainty (1 - p_y from
    # the other classes), a target far below M's and L's clamp, ignored rows and a bias.
    from losslab.functional import linear

    taken = []
    original = linear._true_term_chunk
    monkeypatch.setattr(linear, "_true_term_chunk", lambda *a, **k: taken.append(1) or original(*a, **k))
    hidden, weight, bias, target = _tensors(seed=8)
    hidden = hidden.clone()
    hidden[0] *= 40.0                       # a confident row
    target[1] = int(F.linear(hidden[1], weight, bias).argmin())   # a target at the smallest logit
    hidden[1] *= 30.0
    coefficient = 1e-2 if name == "cross_entropy" else 0.0

    def naive(h, w, b):
        logits = F.linear(h, w, b)
        per_row = NAIVE[name](logits, target, reduction="none")
        keep = (target != -100).to(logits.dtype)
        per_row = per_row + coefficient * keep * torch.logsumexp(logits, 1).square()
        if reduction == "none":
            return per_row
        return per_row.sum() if reduction == "sum" else per_row.sum() / keep.sum()

    expected = _value_and_grads(naive, hidden, weight, bias)
    for chunk_size in (1, 7, None):
        got = _value_and_grads(
            lambda h, w, b, c=chunk_size: linear_loss(h, w, target, loss=name, bias=b, reduction=reduction,
                                                      chunk_size=c, z_loss=coefficient),
            hidden, weight, bias)
        _assert_same(got, expected)
    assert taken
    # the reference formula, class weights and label smoothing take the autograd path
    taken.clear()
    options = {"impl": "reference"} if name != "cross_entropy" else {"label_smoothing": 0.1}
    linear_loss(hidden.requires_grad_(), weight, target, loss=name, **options).backward()
    assert not taken
