"""One benchmark case: a loss at a size, timed and measured against its baselines."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from losslab.bench.inputs import build_loss, example_inputs
from losslab.bench.measure import (
    _forward_backward,
    peak_memory_bytes,
    saved_tensor_bytes,
    time_round_robin,
)
from losslab.bench.peers import bandwidth_bound, peer_baseline, torch_baseline
from losslab.bench.sizes import SizeSpec
from losslab.registry import LossInfo


@dataclass
class BenchCase:
    """The measurements of one loss at one size."""

    loss: str
    family: str
    size: str
    shape: tuple[int, ...]
    time_ms: dict[str, float] = field(default_factory=dict)
    peak_bytes: dict[str, int | None] = field(default_factory=dict)
    saved_bytes: dict[str, int] = field(default_factory=dict)
    baselines: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    samples: int = 0                       # timed calls per contender

    RATIOS = ("torch", "reference", "peer", "bound")

    def ratios(self) -> dict[str, float | None]:
        """losslab's time over each baseline's (None when the baseline was skipped), and its
        peak memory over torch's."""
        mine = self.time_ms.get("losslab")
        out: dict[str, float | None] = {}
        for name in self.RATIOS:
            other = self.time_ms.get(name)
            out[f"time_vs_{name}"] = mine / other if mine and other else None
        compiled, torch_time = self.time_ms.get("compiled"), self.time_ms.get("torch")
        out["compiled_vs_torch"] = compiled / torch_time if compiled and torch_time else None
        peak, torch_peak = self.peak_bytes.get("losslab"), self.peak_bytes.get("torch")
        out["peak_memory_vs_torch"] = (peak / torch_peak if peak is not None and torch_peak
                                       else (1.0 if peak == 0 and torch_peak == 0 else None))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss, "family": self.family, "size": self.size, "shape": list(self.shape),
            "time_ms": self.time_ms, "samples": self.samples, "peak_bytes": self.peak_bytes,
            "saved_bytes": self.saved_bytes, "ratios": self.ratios(), "baselines": self.baselines, "skipped": self.skipped,
        }


# Cases where a contender materialises every (anchor, positive, negative) triple of the batch:
# bytes per triple, to skip sizes the machine cannot hold instead of being OOM-killed.
# losslab's batch-all goes through the triples in chunks (O(B^2) memory); the peer, PML's
# TripletMarginMiner("all"), builds a B^3 bool mask (1 byte) and its index arithmetic (~1 more).
_CUBIC_BYTES_PER_TRIPLE = {"batch_all_triplet": 2}


def memory_guard(info: LossInfo, spec: SizeSpec) -> str | None:
    """A reason to skip the case when its estimated memory exceeds a quarter of the RAM."""
    per_triple = _CUBIC_BYTES_PER_TRIPLE.get(info.name)
    if per_triple is None:
        return None
    needed = per_triple * spec.shape[0] ** 3
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    if needed <= total / 4:
        return None
    return (f"skipped: the peer library materialises all B^3 = {spec.shape[0] ** 3:,} triples, about "
            f"{needed / 2**30:.0f} GiB, more than a quarter of this machine's {total / 2**30:.0f} GiB")


def bench_case(info: LossInfo, spec: SizeSpec, *, repeats: int, warmup: int, seed: int = 0,
               device: str = "cpu", memory: bool = True, compiled: bool = False,
               min_time: float = 0.0) -> BenchCase:
    """Time and memory of one loss at one size, against its baselines, in one interleaved loop."""
    too_big = memory_guard(info, spec)
    if too_big is not None:
        case = BenchCase(info.name, info.family, spec.label, spec.shape)
        case.skipped = {name: too_big for name in ("losslab", "compiled", *BenchCase.RATIOS)}
        return case
    module = build_loss(info, spec).to(device)
    inputs = example_inputs(info, spec, module, seed=seed, device=device)
    args, grads = inputs.args, inputs.grad_tensors
    parameters = [p for p in module.parameters() if p.requires_grad]
    case = BenchCase(info.name, info.family, spec.label, spec.shape)
    calls: dict[str, Callable[[], Tensor]] = {"losslab": lambda: module(*args)}
    case.baselines["losslab"] = f"losslab.get_loss({info.name!r})"
    if info.fused:
        functional = info.functional
        calls["reference"] = lambda: functional(*args, impl="reference")
        case.baselines["reference"] = "functional form, impl='reference'"
    else:
        case.skipped["reference"] = "no separate fused path: the Module is the reference"
    baseline, text = torch_baseline(info, args)
    if baseline is None:
        case.skipped["torch"] = text
    else:
        calls["torch"] = lambda: baseline(args)
        case.baselines["torch"] = text
    peer, text = peer_baseline(info, spec)
    if peer is None:
        case.skipped["peer"] = text
    else:
        peer_call = peer
        calls["peer"] = lambda: peer_call(args)
        case.baselines["peer"] = text
    for name in ("torch", "peer"):
        if name in calls:
            try:
                calls[name]().backward()
            except Exception as error:  # a baseline that cannot run is reported, not fatal
                del calls[name]
                case.skipped[name] = f"{case.baselines.pop(name)} failed: {type(error).__name__}: {error}"
    runs = {name: _forward_backward(call, grads, parameters if name == "losslab" else ())
            for name, call in calls.items()}
    if compiled and info.fused:
        # The same Module through Inductor (compiled once here, outside the timed loop).
        torch._dynamo.reset()
        compiled_module = torch.compile(module, backend="inductor", fullgraph=True)
        _forward_backward(lambda: compiled_module(*args), grads)()
        runs["compiled"] = _forward_backward(lambda: compiled_module(*args), grads)
        case.baselines["compiled"] = "torch.compile(module, backend='inductor', fullgraph=True)"
    else:
        case.skipped["compiled"] = ("not requested (compiled=True / --compiled)" if not compiled
                                    else "compiled timing is measured for the losses with fused kernels only")
    runs["bound"] = bandwidth_bound(args)
    case.baselines["bound"] = "torch.add(input, target, out=buffer): one read-read-write pass"
    times = time_round_robin(runs, repeats=repeats, warmup=warmup, device=device, min_time=min_time)
    case.samples = len(times["losslab"])
    case.time_ms = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    if memory:
        for name, call in calls.items():
            for tensor in (*grads, *parameters):
                tensor.grad = None
            case.peak_bytes[name] = peak_memory_bytes(runs[name], device)
            case.saved_bytes[name] = saved_tensor_bytes(call, args, parameters)[0]
    return case
