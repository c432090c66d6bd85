"""Speed and memory benchmarks of the registered losses, as ratios to baselines of the same run.

For every (loss, size) case the contenders are timed round-robin in one loop (one call of each,
repeat), so that a slower or faster moment of a shared machine hits them all alike:

* ``losslab``: the registered Module with its defaults (the fused kernels where they exist);
* ``reference``: the loss's functional form with ``impl="reference"`` (the plain eager formula),
  for the losses that have a fused path;
* ``torch``: torch's built-in on the same tensors. For the paper's losses this is the loss they
  replace: ``F.binary_cross_entropy_with_logits`` for the binary (sigmoid) forms and for SMAE
  and log-cosh (the loss they are proposed to replace; the regression target is mapped into [0, 1] with a
  sigmoid for it), ``F.cross_entropy`` for the multiclass forms. For the thin wrappers
  (MSE, Huber, margin ranking ...) it is the torch function they wrap;
* ``peer``: the peer library's implementation (pytorch-metric-learning, sentence-transformers,
  MONAI) where one exists and is installed; otherwise a stated reason;
* ``bound``: the memory-bandwidth bound: one fused pass that reads the input (and a target of
  the same size) and writes one tensor of the input's size (``torch.add(x, y, out=buf)``) —
  the least a forward+backward that returns a gradient can do.

Time is forward+backward (``loss.backward()``, gradients cleared before each call), median of
at least ``repeats`` calls after ``warmup`` calls, and of more until the slowest contender has
been timed for ``min_time`` seconds in total (see :func:`time_round_robin`).

Memory, two measures (documented because CPU torch has no allocator statistics):

* ``peak``: the peak of live tensor bytes allocated during one forward+backward, above what was
  live before it, from the allocation timeline of the torch profiler (``profile_memory``; on
  CUDA ``torch.cuda.max_memory_allocated``). It includes the returned gradient.
* ``saved``: the bytes of the tensors autograd keeps for backward that are not the caller's
  inputs or parameters (``torch.autograd.graph.saved_tensors_hooks``): what a loss adds to the
  memory held between forward and backward.

The package, one idea per module: :mod:`~losslab.bench.sizes` (the sizes and the kind of loss
each is for), :mod:`~losslab.bench.inputs` (the Module and its arguments, from
:mod:`losslab.testing`), :mod:`~losslab.bench.peers` (torch, the peer libraries, the bound),
:mod:`~losslab.bench.measure` (timing and memory), :mod:`~losslab.bench.cases` (one loss at one
size), :mod:`~losslab.bench.runner` (the selection, the whole run, the end-to-end step) and
:mod:`~losslab.bench.tables` (Markdown).
"""

from losslab.bench.cases import BenchCase, bench_case, memory_guard
from losslab.bench.inputs import (
    Inputs,
    _required_hyperparameters,  # noqa: F401  (the name older tests import)
    build_loss,
    example_inputs,
    required_hyperparameters,
)
from losslab.bench.measure import peak_memory_bytes, saved_tensor_bytes, time_round_robin
from losslab.bench.peers import Baseline, bandwidth_bound, peer_baseline, torch_baseline
from losslab.bench.runner import end_to_end, run_benchmarks, select_losses, select_sizes
from losslab.bench.sizes import DEFAULT_SIZES, SIZES, TINY_SIZES, SizeSpec, classes_for, kind_of
from losslab.bench.tables import markdown_table
from losslab.registry import PAPER_LOSSES

__all__ = [
    "DEFAULT_SIZES",
    "PAPER_LOSSES",
    "SIZES",
    "TINY_SIZES",
    "Baseline",
    "BenchCase",
    "Inputs",
    "SizeSpec",
    "bandwidth_bound",
    "bench_case",
    "build_loss",
    "classes_for",
    "end_to_end",
    "example_inputs",
    "kind_of",
    "markdown_table",
    "memory_guard",
    "peak_memory_bytes",
    "peer_baseline",
    "required_hyperparameters",
    "run_benchmarks",
    "saved_tensor_bytes",
    "select_losses",
    "select_sizes",
    "time_round_robin",
    "torch_baseline",
]
