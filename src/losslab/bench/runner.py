"""Every selected loss at every size of its kind, and one end-to-end training step: JSON-ready."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from losslab.bench.cases import bench_case
from losslab.bench.measure import load_average, time_round_robin
from losslab.bench.sizes import DEFAULT_SIZES, SIZES, TINY_SIZES, SizeSpec, kind_of
from losslab.registry import PAPER_LOSSES, LossInfo, get_info, list_losses


def select_losses(names: Sequence[str] | None) -> list[LossInfo]:
    """Registry entries by name; ``"paper"`` expands to the paper's losses, ``"all"`` (or None)
    to every non-experimental registered loss."""
    if not names or list(names) == ["all"]:
        return list_losses(include_extras=False)
    chosen: list[LossInfo] = []
    for name in names:
        for item in (PAPER_LOSSES if name == "paper" else (name,)):
            info = get_info(item)
            if info not in chosen:
                chosen.append(info)
    return chosen


def select_sizes(labels: Sequence[str] | None) -> list[SizeSpec]:
    """Size specs by label; ``"tiny"`` expands to the tiny sizes (CI), None to the defaults."""
    if not labels:
        labels = DEFAULT_SIZES
    out: list[SizeSpec] = []
    for label in labels:
        for item in (TINY_SIZES if label == "tiny" else (label,)):
            if item not in SIZES:
                raise ValueError(f"sizes: unknown size {item!r}; known: {', '.join(SIZES)}, tiny")
            if SIZES[item] not in out:
                out.append(SIZES[item])
    return out


def run_benchmarks(
    losses: Sequence[str] | None = None, sizes: Sequence[str] | None = None, *,
    repeats: int = 10, warmup: int = 2, seed: int = 0, device: str = "cpu", memory: bool = True,
    log: Callable[[str], None] | None = None, end_to_end_step: bool = True, compiled: bool = False,
    end_to_end_batch: int = 128, value_checks: bool = True, min_time: float = 0.0,
) -> dict[str, Any]:
    """Benchmark every selected loss at every selected size of its kind; JSON-ready results.

    ``value_checks=False`` times losslab with the checks that read tensor values switched off
    (:func:`losslab.set_validation`): what the wrappers cost over torch without the extra
    reads of target ranges and class indices.
    """
    from losslab.experiments.environment import environment_info

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats: expected >= 1 (warmup >= 0), got repeats={repeats}, warmup={warmup}")
    infos, specs = select_losses(losses), select_sizes(sizes)
    cases: list[dict[str, Any]] = []
    load_before = load_average()
    with _value_checks(value_checks):
        for info in infos:
            for spec in specs:
                if spec.kind != kind_of(info):
                    continue
                if log:
                    log(f"{info.name} @ {spec.label}")
                cases.append(bench_case(info, spec, repeats=repeats, warmup=warmup, seed=seed,
                                        device=device, memory=memory, compiled=compiled,
                                        min_time=min_time).to_dict())
    result: dict[str, Any] = {
        "config": {"losses": [i.name for i in infos], "sizes": [s.label for s in specs],
                   "repeats": repeats, "warmup": warmup, "seed": seed, "device": device,
                   "memory": memory, "compiled": compiled, "value_checks": value_checks,
                   "min_time_s": min_time},
        "environment": environment_info(("pytorch-metric-learning", "sentence-transformers", "monai")),
        "load_average": {"before": load_before, "after": load_average()},
        "cases": cases,
    }
    if end_to_end_step:
        # the multiclass paper losses: the ones a classifier's training step can use
        paper = [i.name for i in infos if i.paper and i.family == "classification"]
        if paper:
            if log:
                log("end-to-end training step")
            result["end_to_end"] = end_to_end(paper, repeats=repeats, warmup=warmup, seed=seed,
                                              batch=end_to_end_batch, device=device)
    return result


@contextlib.contextmanager
def _value_checks(enabled: bool) -> Iterator[None]:
    from losslab import _validation

    previous = _validation._validate_values
    _validation.set_validation(enabled)
    try:
        yield
    finally:
        _validation.set_validation(previous)


def _small_cnn() -> nn.Module:
    from losslab.models.vision import VGGStyleCNN

    return VGGStyleCNN(1, 10, image_size=28)


def end_to_end(losses: Sequence[str], *, repeats: int = 10, warmup: int = 2, seed: int = 0,
               batch: int = 128, device: str = "cpu") -> dict[str, Any]:
    """One SGD training step of a small Fashion-MNIST-sized CNN (28x28x1, 10 classes) with each
    loss and with cross-entropy (interleaved), on random images; ratio of the step times."""
    from losslab.registry import get_loss

    torch.manual_seed(seed)
    model = _small_cnn().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 1, 28, 28, generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
    criteria = {"cross_entropy": nn.CrossEntropyLoss()} | {name: get_loss(name) for name in losses}

    def step(criterion: nn.Module) -> Callable[[], None]:
        def run() -> None:
            optimizer.zero_grad(set_to_none=True)
            criterion(model(images), labels).backward()
            optimizer.step()

        return run

    times = time_round_robin({name: step(c) for name, c in criteria.items()},
                             repeats=repeats, warmup=warmup, device=device)
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    return {
        "model": "losslab.models.VGGStyleCNN(1, 10, image_size=28), SGD",
        "batch": batch,
        "step_ms": medians,
        "ratio_vs_cross_entropy": {name: medians[name] / medians["cross_entropy"] for name in losses},
    }
