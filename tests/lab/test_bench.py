"""The benchmark suite: runs on tiny sizes, emits valid JSON with every ratio, measures memory
the way it documents. Timings themselves are never asserted."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from losslab import bench
from losslab.cli import main
from losslab.registry import get_info, list_losses

RATIO_KEYS = {"time_vs_torch", "time_vs_reference", "time_vs_peer", "time_vs_bound", "compiled_vs_torch",
              "peak_memory_vs_torch"}


def test_bench_command_emits_json_with_every_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    table = tmp_path / "bench.md"
    code = main(["bench", "--losses", "paper,cross_entropy,mse,nt_xent,dice", "--sizes", "tiny",
                 "--repeats", "2", "--warmup", "1", "--min-time", "0", "--quiet", "--json", str(out),
                 "--end-to-end-batch", "4",
                 "--markdown", str(table)])
    assert code == 0
    result = json.loads(out.read_text())
    cases = {(c["loss"], c["size"]): c for c in result["cases"]}
    expected = {name: f"tiny-{bench.kind_of(get_info(name))}" for name in
                (*bench.PAPER_LOSSES, "cross_entropy", "mse", "nt_xent", "dice")}
    assert set(cases) == set(expected.items())
    for (loss, _), case in cases.items():
        ratios = case["ratios"]
        assert set(ratios) == RATIO_KEYS
        # a ratio is a positive number, or None with the reason recorded under "skipped"
        assert ratios["compiled_vs_torch"] is None and "not requested" in case["skipped"]["compiled"]
        for key in ("torch", "reference", "peer", "bound"):
            value = ratios[f"time_vs_{key}"]
            if value is None:
                assert key in case["skipped"] and case["skipped"][key], (loss, key)
            else:
                assert value > 0 and math.isfinite(value)
                assert case["time_ms"][key] > 0
        if loss in bench.PAPER_LOSSES:
            # the paper's losses have every baseline but a peer library
            assert ratios["time_vs_torch"] and ratios["time_vs_reference"] and ratios["time_vs_bound"]
            assert ratios["peak_memory_vs_torch"] is not None
    assert cases[("nt_xent", "tiny-embedding")]["ratios"]["time_vs_peer"] is not None
    assert cases[("dice", "tiny-segmentation")]["ratios"]["time_vs_peer"] is not None
    e2e = result["end_to_end"]
    assert set(e2e["ratio_vs_cross_entropy"]) == {"m", "full_m", "l", "full_l"}
    assert e2e["batch"] == 4 and all(v > 0 for v in e2e["step_ms"].values())
    assert result["environment"]["time_utc"] and result["config"]["repeats"] == 2
    printed = capsys.readouterr().out
    assert printed == table.read_text()
    assert printed.startswith("| loss | size |") and "| m | tiny-multiclass |" in printed


def test_bench_command_rejects_bad_arguments(capsys):
    assert main(["bench", "--sizes", "huge", "--quiet"]) == 2
    assert "sizes: unknown size 'huge'" in capsys.readouterr().err
    assert main(["bench", "--losses", "nope", "--sizes", "tiny", "--quiet"]) == 2
    assert "unknown loss 'nope'" in capsys.readouterr().err
    assert main(["bench", "--repeats", "0", "--quiet"]) == 2
    assert "--repeats: expected an integer >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("info", list_losses(), ids=lambda info: info.name)
def test_example_inputs_fit_every_registered_loss(info):
    spec = bench.SIZES[f"tiny-{bench.kind_of(info)}"]
    module = bench.build_loss(info, spec)
    inputs = bench.example_inputs(info, spec, module)
    value = module(*inputs.args)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert all(t.grad is not None for t in inputs.grad_tensors)
    if info.target_kind != "speakers":                # (speakers, utterances, D) from (N, D)
        assert inputs.args[0].shape == spec.shape


def test_torch_baselines_follow_the_registry_fields():
    def text(name):
        info = get_info(name)
        spec = bench.SIZES[f"tiny-{bench.kind_of(info)}"]
        return bench.torch_baseline(info, bench.example_inputs(info, spec).args)[1]

    # a sigmoid loss on binary targets is timed against BCE, a softmax loss against CE
    assert text("binary_full_l") == text("sigmoid_focal") == "F.binary_cross_entropy_with_logits"
    assert text("full_l") == text("softmax_focal") == "F.cross_entropy"
    assert text("poly1") == "F.cross_entropy (the loss Poly-1 extends)"
    assert text("kl_div") == "F.kl_div(reduction='batchmean') (the wrapped function)"
    assert text("hinge").startswith("F.binary_cross_entropy_with_logits (the loss a hinge replaces")
    # no activation to compare through, and no torch built-in
    assert text("crammer_singer") == text("dice") == "no torch built-in computes this loss"


def test_saved_tensor_bytes_counts_only_new_tensors():
    x = torch.randn(1000, requires_grad=True)
    y = torch.rand(1000)
    # BCE with logits keeps only its inputs for backward: nothing extra
    assert bench.saved_tensor_bytes(lambda: F.binary_cross_entropy_with_logits(x, y), [x, y]) == (0, 0)
    # exp keeps its output (a new input-sized tensor); the product keeps y and that output
    saved, count = bench.saved_tensor_bytes(lambda: (torch.exp(x) * y).sum(), [x, y])
    assert (saved, count) == (4000, 1)


def test_peak_memory_of_a_known_allocation_pattern():
    x = torch.randn(250_000)

    def run():
        a = x * 2          # 1 MB live
        b = a + 1          # 2 MB live
        del a
        c = b * 3          # 2 MB live again
        del b, c

    peak = bench.peak_memory_bytes(run)
    # two 1 MB tensors at the peak (plus a few bytes of scalar temporaries)
    assert 2_000_000 <= peak <= 2_000_000 + 256


def test_time_round_robin_interleaves_and_counts():
    calls = []
    runs = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = bench.time_round_robin(runs, repeats=3, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]


def test_time_round_robin_keeps_going_until_min_time():
    import time as clock

    fast, slow = (lambda: None), (lambda: clock.sleep(0.002))
    # the slowest run decides: rounds go on until its total reaches 20 ms
    times = bench.time_round_robin({"fast": fast, "slow": slow}, repeats=2, warmup=0, min_time=0.02)
    assert len(times["fast"]) == len(times["slow"]) > 2
    assert sum(times["slow"][:-1]) < 0.02 <= sum(times["slow"])
    # the cap on rounds, and repeats as a floor for runs slower than min_time
    capped = bench.time_round_robin({"fast": fast}, repeats=2, warmup=0, min_time=10.0, max_rounds=25)
    assert len(capped["fast"]) == 25
    assert len(bench.time_round_robin({"slow": slow}, repeats=3, warmup=0, min_time=0.0)["slow"]) == 3


def test_markdown_table_lists_every_case():
    result = bench.run_benchmarks(["binary_m", "smae"], ["tiny-elementwise"], repeats=1, warmup=0,
                                  memory=False, end_to_end_step=False)
    text = bench.markdown_table(result)
    assert "| binary_m | tiny-elementwise |" in text and "| smae | tiny-elementwise |" in text
    # the machine's load around the run, which the ratios depend on
    before, after = result["load_average"]["before"], result["load_average"]["after"]
    assert len(before) == 3 and len(after) == 3 and all(value >= 0 for value in before + after)
    assert f"Load average (1, 5, 15 min) before {before}, after {after}" in text
    assert all(case["peak_bytes"] == {} for case in result["cases"])


def test_memory_guard_skips_cubic_cases_the_machine_cannot_hold():
    info = get_info("batch_all_triplet")
    assert bench.memory_guard(info, bench.SIZES["tiny-embedding"]) is None
    huge = bench.SizeSpec("100000x8", "embedding", (100_000, 8))   # 1e15 triples
    reason = bench.memory_guard(info, huge)
    assert reason is not None and "1,000,000,000,000,000 triples" in reason
    assert bench.memory_guard(get_info("nt_xent"), huge) is None     # quadratic: not guarded
    case = bench.bench_case(info, huge, repeats=1, warmup=0).to_dict()
    assert case["time_ms"] == {} and all(v is None for v in case["ratios"].values())
    assert case["skipped"]["losslab"] == reason


def test_bench_without_value_checks_restores_them_and_says_so(tmp_path, capsys):
    from losslab import _validation

    out = tmp_path / "bench.json"
    code = main(["bench", "--losses", "cross_entropy", "--sizes", "tiny", "--repeats", "1", "--warmup", "0",
                 "--min-time", "0", "--quiet", "--no-memory", "--no-value-checks", "--json", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["config"]["value_checks"] is False
    assert capsys.readouterr().out.startswith("losslab timed with value checks off")
    assert _validation.validation_enabled()        # switched back on after the run


def test_saved_tensor_bytes_counts_what_a_custom_function_holds_on_ctx():
    # losslab's fused kernels keep their gradient on ctx (handed to backward without a copy):
    # it is memory held between forward and backward, so it is counted
    from losslab.functional import binary_l_loss

    x = torch.randn(1000, requires_grad=True)
    y = torch.rand(1000)
    assert bench.saved_tensor_bytes(lambda: binary_l_loss(x, y, full=True, impl="fused"), [x, y]) == (4000, 1)
