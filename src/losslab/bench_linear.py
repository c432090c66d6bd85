"""Speed and memory of :func:`losslab.functional.linear_loss` against the naive output layer.

For every (loss, shape) case the contenders run forward + backward on the same tensors
(hidden ``(N, H)`` and the output layer's weight ``(V, H)`` both differentiated, class-index
targets), timed round-robin in one loop with :func:`losslab.bench.time_round_robin`, so a busy
moment of the shared machine hits them alike; the medians and their ratio come from one run:

* ``naive``: ``F.linear(hidden, weight)`` and then the loss's ``(N, C)`` function (the registry's
  functional form), which holds the ``(N, V)`` logits, their gradient and the loss's temporaries;
* ``linear_loss``: the chunked fused path with its automatic chunk size;
* ``cut_cross_entropy`` (cross-entropy only): Apple's ``cut_cross_entropy.linear_cross_entropy``
  with ``impl="torch_compile"``, where the package (and the ``triton`` it imports) is installed;
* ``liger`` (cross-entropy on CUDA only): Liger-Kernel's ``LigerFusedLinearCrossEntropyLoss``,
  where it is installed.

Memory: ``peak`` is :func:`losslab.bench.peak_memory_bytes` of one forward + backward (the
torch profiler's allocation timeline on a CPU, ``torch.cuda.max_memory_allocated`` on CUDA):
live tensor bytes above those live before the call. ``working`` is that peak less the bytes of
the gradients every path returns (``hidden.grad`` and ``weight.grad``): the memory the loss
needs on top of what training needs anyway, which is what the 25 % target is about.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from losslab.bench import peak_memory_bytes, time_round_robin
from losslab.bench.measure import load_average
from losslab.functional.linear import (
    FACTORED_LOSSES,
    LINEAR_LOSSES,
    linear_loss,
    linear_loss_chunk_size,
)
from losslab.registry import get_info

__all__ = [
    "DEFAULT_LINEAR_SHAPES",
    "LINEAR_SHAPES",
    "LINEAR_TARGETS",
    "LinearShape",
    "linear_markdown_table",
    "run_linear_benchmarks",
]


@dataclass(frozen=True)
class LinearShape:
    """Tokens ``N``, hidden size ``H`` and vocabulary ``V`` of one benchmark case."""

    tokens: int
    hidden: int
    vocabulary: int

    @property
    def label(self) -> str:
        return f"{self.tokens}x{self.hidden}x{self.vocabulary}"


LINEAR_SHAPES: dict[str, LinearShape] = {
    shape.label: shape
    for shape in (
        # Language-model vocabularies and token counts (512 MiB of float32 logits each) at a
        # hidden size that keeps a run on 2 shared CPU cores within minutes. H scales only the
        # three matrix products, which both paths compute alike, so a small H is the harder
        # case for the time ratio: the loss's own work is a larger share of the time.
        LinearShape(4096, 128, 32768),
        LinearShape(1024, 128, 131072),
        # the hidden size (about 8x the time of the two above)
        LinearShape(4096, 1024, 32768),
        LinearShape(1024, 1024, 131072),
        # for a GPU: 8k tokens, a 128k vocabulary, a 4k hidden size (Llama-3-8B's output layer)
        LinearShape(8192, 4096, 131072),
        LinearShape(64, 16, 300),            # "tiny": a smoke test
    )
}
DEFAULT_LINEAR_SHAPES: tuple[str, ...] = ("4096x128x32768", "1024x128x131072")
TINY_LINEAR_SHAPE = "64x16x300"

# The targets: time at most this ratio to the naive path, working memory at most 25 % of it.
LINEAR_TARGETS: dict[str, float] = {"cross_entropy": 1.10, "m": 1.10, "l": 1.10}
OTHER_TIME_TARGET = 1.25
MEMORY_TARGET = 0.25

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def select_linear_shapes(labels: Sequence[str] | None) -> list[LinearShape]:
    """Shapes by label (``NxHxV``, any three positive integers, or ``tiny``); None: the defaults."""
    chosen = []
    for label in labels or DEFAULT_LINEAR_SHAPES:
        label = TINY_LINEAR_SHAPE if label == "tiny" else label
        parts = label.split("x")
        if len(parts) != 3 or not all(part.isdigit() and int(part) > 0 for part in parts):
            raise ValueError(
                f"--linear-shapes: expected NxHxV with three positive integers (e.g. 4096x128x32768) "
                f"or 'tiny', got {label!r}"
            )
        chosen.append(LINEAR_SHAPES.get(label, LinearShape(*(int(part) for part in parts))))
    return chosen


def select_linear_losses(names: Sequence[str] | None) -> list[str]:
    """Loss names linear_loss supports (registry names or aliases); None or 'all': every one."""
    if not names or list(names) == ["all"]:
        return list(LINEAR_LOSSES)
    chosen = []
    for name in names:
        canonical = get_info(name).name
        if canonical not in LINEAR_LOSSES:
            raise ValueError(
                f"--losses: linear_loss supports {', '.join(LINEAR_LOSSES)}, got {name!r}"
            )
        chosen.append(canonical)
    return chosen


def check_device(device: str) -> torch.device:
    """The device, or a ValueError that says why it cannot be used here."""
    try:
        parsed = torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"--device: expected cpu or cuda[:N], got {device!r}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device: {device!r} needs CUDA, but torch.cuda.is_available() is False here (torch "
            f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); use --device cpu "
            "or run scripts/gpu-check on a machine with a GPU"
        )
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"--device: expected cpu or cuda[:N], got {device!r}")
    return parsed


# --- contenders --------------------------------------------------------------------------------


def _naive(name: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    function = get_info(name).functional

    def call(hidden: Tensor, weight: Tensor, target: Tensor) -> Tensor:
        return function(F.linear(hidden, weight), target)

    return call


def _fused(name: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def call(hidden: Tensor, weight: Tensor, target: Tensor) -> Tensor:
        return linear_loss(hidden, weight, target, loss=name)

    return call


def _peers(name: str, device: torch.device) -> tuple[dict[str, Callable[..., Tensor]], dict[str, str]]:
    """Peer implementations of this loss that are importable here, and why the others are not."""
    peers: dict[str, Callable[..., Tensor]] = {}
    missing: dict[str, str] = {}
    if name != "cross_entropy":
        return peers, missing
    try:
        from cut_cross_entropy import linear_cross_entropy

        def cut(hidden: Tensor, weight: Tensor, target: Tensor) -> Tensor:
            return linear_cross_entropy(hidden, weight, target, impl="torch_compile")

        peers["cut_cross_entropy"] = cut
    except Exception as error:  # not installed, or its triton import fails
        missing["cut_cross_entropy"] = _why_missing(error)
    if device.type == "cuda":
        try:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            liger_loss = LigerFusedLinearCrossEntropyLoss()

            def liger(hidden: Tensor, weight: Tensor, target: Tensor) -> Tensor:
                return liger_loss(weight, hidden, target)

            peers["liger"] = liger
        except Exception as error:
            missing["liger"] = _why_missing(error)
    else:
        missing["liger"] = "Triton kernels: CUDA only"
    return peers, missing


def _why_missing(error: Exception) -> str:
    if isinstance(error, ModuleNotFoundError):
        return f"not installed (no module {error.name})"
    return f"not importable ({type(error).__name__}: {error})"[:160]


def _inputs(shape: LinearShape, *, seed: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(shape.tokens, shape.hidden, generator=generator)
    # logits of unit scale, as a trained model's are
    weight = torch.randn(shape.vocabulary, shape.hidden, generator=generator) / shape.hidden**0.5
    target = torch.randint(0, shape.vocabulary, (shape.tokens,), generator=generator)
    return (hidden.to(device, dtype).requires_grad_(True), weight.to(device, dtype).requires_grad_(True),
            target.to(device))


def linear_case(name: str, shape: LinearShape, *, repeats: int, warmup: int, seed: int = 0,
                dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                memory: bool = True, peers: bool = True) -> dict[str, Any]:
    """One (loss, shape) case: medians, ratios to the naive path, memory, and the loss values."""
    device = torch.device(device)
    hidden, weight, target = _inputs(shape, seed=seed, dtype=dtype, device=device)
    calls: dict[str, Callable[..., Tensor]] = {"naive": _naive(name), "linear_loss": _fused(name)}
    peer_calls, missing = _peers(name, device) if peers else ({}, {})
    calls.update(peer_calls)
    values: dict[str, float] = {}

    def runner(label: str) -> Callable[[], None]:
        call = calls[label]

        def run() -> None:
            hidden.grad = weight.grad = None
            value = call(hidden, weight, target)
            value.backward()
            values[label] = float(value.detach())

        return run

    runs = {label: runner(label) for label in calls}
    failed: dict[str, str] = {}
    for label in list(runs):
        if label in ("naive", "linear_loss"):
            continue
        try:                          # a peer that cannot run here is reported, not fatal
            runs[label]()
        except Exception as error:
            failed[label] = f"failed ({type(error).__name__}: {error})"[:200]
            del runs[label]
    times = time_round_robin(runs, repeats=repeats, warmup=warmup, device=device)
    medians = {label: statistics.median(samples) for label, samples in times.items()}
    gradient_bytes = sum(t.numel() * t.element_size() for t in (hidden, weight))
    peak: dict[str, int | None] = {}
    if memory:
        for label, run in runs.items():
            peak[label] = peak_memory_bytes(run, device)
    hidden.grad = weight.grad = None
    working = {label: None if value is None else max(value - gradient_bytes, 0) for label, value in peak.items()}
    time_ratio = medians["linear_loss"] / medians["naive"]
    memory_ratio = (working["linear_loss"] / working["naive"]
                    if working.get("linear_loss") is not None and working.get("naive") else None)
    time_target = LINEAR_TARGETS.get(name, OTHER_TIME_TARGET)
    return {
        "loss": name,
        "shape": shape.label,
        "tokens": shape.tokens, "hidden": shape.hidden, "vocabulary": shape.vocabulary,
        "dtype": str(dtype).removeprefix("torch."),
        "chunk_size": linear_loss_chunk_size(shape.tokens, shape.vocabulary, factored=(
            name in FACTORED_LOSSES and dtype in (torch.float32, torch.float64))),
        "logits_bytes": shape.tokens * shape.vocabulary * torch.empty((), dtype=dtype).element_size(),
        "median_s": medians,
        "samples": {label: len(samples) for label, samples in times.items()},
        "time_ratio": {label: medians[label] / medians["naive"] for label in medians},
        "peak_bytes": peak,
        "working_bytes": working,
        "memory_ratio": memory_ratio,
        "time_target": time_target,
        "memory_target": MEMORY_TARGET,
        "meets_time": time_ratio <= time_target,
        "meets_memory": None if memory_ratio is None else memory_ratio <= MEMORY_TARGET,
        "values": values,
        "peers_missing": {**missing, **failed},
    }


def run_linear_benchmarks(
    losses: Sequence[str] | None = None, shapes: Sequence[str] | None = None, *, repeats: int = 3,
    warmup: int = 1, seed: int = 0, device: str = "cpu", dtype: str = "float32", memory: bool = True,
    peers: bool = True, log: Callable[[str], None] | None = None,
    on_case: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every selected loss at every selected shape; JSON-ready results with the machine's load
    (1/5/15-minute load averages) before and after, since the ratios are only as steady as it.

    ``on_case(result)`` is called with the results so far after each case (a long run on a
    shared machine keeps what it measured if it is stopped)."""
    from losslab.experiments.environment import environment_info

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats: expected >= 1 (warmup >= 0), got repeats={repeats}, warmup={warmup}")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
    parsed = check_device(device)
    names, chosen = select_linear_losses(losses), select_linear_shapes(shapes)
    cases: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "config": {"losses": names, "shapes": [s.label for s in chosen], "repeats": repeats,
                   "warmup": warmup, "seed": seed, "device": str(parsed), "dtype": dtype,
                   "memory": memory},
        "environment": environment_info(("cut-cross-entropy", "triton", "liger-kernel")),
        "load_average": {"before": load_average(), "after": None},
        "cases": cases,
    }
    for shape in chosen:
        for name in names:
            if log:
                log(f"linear {name} @ {shape.label}")
            cases.append(linear_case(name, shape, repeats=repeats, warmup=warmup, seed=seed,
                                     dtype=DTYPES[dtype], device=parsed, memory=memory, peers=peers))
            result["load_average"]["after"] = load_average()
            if on_case is not None:
                on_case(result)
    return result


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def linear_markdown_table(result: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per case; peers in a column of their ratios)."""
    lines = [
        "| loss | N x H x V | chunk | naive s | linear_loss s | time ratio (target) | naive working MiB "
        "| linear_loss working MiB | memory ratio | peers (time ratio) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in result["cases"]:
        medians, ratios = case["median_s"], case["time_ratio"]
        peers = [f"{label} {ratios[label]:.2f}" for label in ratios if label not in ("naive", "linear_loss")]
        peers += [f"{label}: {why}" for label, why in case["peers_missing"].items()]
        time_mark = "" if case["meets_time"] else " **over**"
        memory_mark = "" if case["meets_memory"] in (True, None) else " **over**"
        lines.append(
            f"| {case['loss']} | {case['shape']} | {case['chunk_size']} | {medians['naive']:.3f} "
            f"| {medians['linear_loss']:.3f} | {ratios['linear_loss']:.3f} (<= {case['time_target']:.2f}){time_mark} "
            f"| {_mib(case['working_bytes'].get('naive'))} | {_mib(case['working_bytes'].get('linear_loss'))} "
            f"| {_ratio(case['memory_ratio'])}{memory_mark} | {'; '.join(peers) or '-'} |"
        )
    load = result.get("load_average", {})
    config = result["config"]
    lines.append("")
    lines.append(
        f"{config['device']}, {config['dtype']}, median of {config['repeats']} interleaved rounds after "
        f"{config['warmup']} warm-up; load average (1, 5, 15 min) before {load.get('before')}, "
        f"after {load.get('after')}; {result['environment'].get('torch_threads')} torch threads."
    )
    return "\n".join(lines) + "\n"
