"""Measurement: interleaved timing, the peak of live tensor bytes, and the bytes saved for backward."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15-minute load averages (None where the OS has none): the
    interleaved ratios are only as steady as the machine was quiet."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward_backward(call: Callable[[], Tensor], grad_tensors: Sequence[Tensor],
                      parameters: Sequence[Tensor] = ()) -> Callable[[], None]:
    def run() -> None:
        for tensor in (*grad_tensors, *parameters):
            tensor.grad = None
        call().backward()

    return run


def time_round_robin(runs: dict[str, Callable[[], None]], *, repeats: int, warmup: int,
                     device: torch.device | str = "cpu", min_time: float = 0.0,
                     max_rounds: int = 2000) -> dict[str, list[float]]:
    """Seconds per call of each run, interleaved: warm-up calls, then rounds of one call each
    (the order rotates every round): at least ``repeats`` rounds, and more until one run (the
    slowest) has been timed for ``min_time`` seconds in total (at most ``max_rounds``), so that
    a case whose contenders all take under a millisecond gets hundreds of samples rather than
    a handful, while a case with a slow contender stays at ``repeats``."""
    device = torch.device(device)
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    totals = dict.fromkeys(names, 0.0)
    round_index = 0
    while round_index < repeats or (max(totals.values()) < min_time and round_index < max_rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            runs[name]()
            _sync(device)
            elapsed = time.perf_counter() - start
            times[name].append(elapsed)
            totals[name] += elapsed
        round_index += 1
    return times


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ side logs two lines per session there)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(run: Callable[[], None], device: torch.device | str = "cpu") -> int | None:
    """Peak bytes of tensors allocated by ``run`` above those live before it (see module doc)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import Action

        with _c_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                                           record_shapes=True, with_stack=True) as prof:
            run()
        current = peak = 0
        for _, action, _, size in prof._memory_profile().timeline:
            if action == Action.CREATE:
                current += size
            elif action == Action.DESTROY:
                current -= size
            peak = max(peak, current)
        return int(peak)
    except Exception:  # the profiler's memory timeline is a private API: report "unknown"
        return None


def saved_tensor_bytes(call: Callable[[], Tensor], inputs: Sequence[Tensor],
                       parameters: Sequence[Tensor] = ()) -> tuple[int, int]:
    """(bytes, count) of the tensors the graph of ``call()`` keeps for backward that are not
    the caller's inputs or parameters (distinct storages counted once): the ones saved for
    backward, and the ones a custom ``autograd.Function`` holds on its ``ctx`` (losslab's
    fused kernels keep their gradient there, to hand it to backward without a copy)."""
    owned = {t.untyped_storage().data_ptr() for t in (*inputs, *parameters)}
    seen: dict[int, int] = {}

    def note(tensor: Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in owned and storage.data_ptr() != 0:
            seen[storage.data_ptr()] = storage.nbytes()

    def pack(tensor: Tensor) -> Tensor:
        note(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = call()
    for tensor in _ctx_tensors(loss.grad_fn):
        note(tensor)
    del loss
    return sum(seen.values()), len(seen)


def _ctx_tensors(root: Any) -> Iterator[Tensor]:
    """Tensors held as attributes of the graph's nodes (custom Functions' ``ctx``)."""
    stack, visited = [root], set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in visited:
            continue
        visited.add(id(node))
        for value in getattr(node, "__dict__", {}).values():
            if isinstance(value, Tensor):
                yield value
        stack.extend(function for function, _ in node.next_functions)
