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
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.registry import LossInfo, get_info, list_losses

__all__ = [
    "DEFAULT_SIZES",
    "PAPER_LOSSES",
    "SIZES",
    "TINY_SIZES",
    "BenchCase",
    "Inputs",
    "SizeSpec",
    "bandwidth_bound",
    "build_loss",
    "end_to_end",
    "example_inputs",
    "markdown_table",
    "peak_memory_bytes",
    "run_benchmarks",
    "saved_tensor_bytes",
]


# --- sizes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeSpec:
    """A benchmark size: ``kind`` is elementwise, multiclass, embedding or segmentation."""

    label: str
    kind: str
    shape: tuple[int, ...]


SIZES: dict[str, SizeSpec] = {
    spec.label: spec
    for spec in (
        SizeSpec("1M", "elementwise", (1_000_000,)),
        SizeSpec("10M", "elementwise", (10_000_000,)),
        SizeSpec("4096x10", "multiclass", (4096, 10)),
        SizeSpec("4096x1000", "multiclass", (4096, 1000)),
        SizeSpec("1024x256", "embedding", (1024, 256)),
        # pytorch-metric-learning's NT-Xent forms every (positive, negative) pair: 34 GB at
        # B=1024, so its ratio is measured at a batch where it runs
        SizeSpec("256x256", "embedding", (256, 256)),
        SizeSpec("16x4x64x64", "segmentation", (16, 4, 64, 64)),
        SizeSpec("tiny-elementwise", "elementwise", (64,)),
        SizeSpec("tiny-multiclass", "multiclass", (8, 5)),
        SizeSpec("tiny-embedding", "embedding", (16, 8)),
        SizeSpec("tiny-segmentation", "segmentation", (2, 3, 4, 4)),
    )
}
DEFAULT_SIZES: tuple[str, ...] = ("1M", "10M", "4096x10", "4096x1000", "1024x256", "256x256", "16x4x64x64")
TINY_SIZES: tuple[str, ...] = tuple(label for label in SIZES if label.startswith("tiny-"))

_FAMILY_KIND = {
    "binary": "elementwise",
    "regression": "elementwise",
    "margin": "elementwise",
    "classification": "multiclass",
    "embedding": "embedding",
    "segmentation": "segmentation",
}

# The paper's losses: the ones with fused kernels.
PAPER_LOSSES: tuple[str, ...] = (
    "binary_m", "binary_full_m", "binary_l", "binary_full_l", "smae", "log_cosh",
    "m", "full_m", "l", "full_l",
)


def kind_of(info: LossInfo) -> str:
    """The size kind a loss is benchmarked at (from its family)."""
    return _FAMILY_KIND[info.family]


# --- inputs ----------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Arguments for one call of a loss Module, and which of them are differentiated."""

    args: tuple[Tensor, ...]
    grad_tensors: tuple[Tensor, ...]


def _required_hyperparameters(info: LossInfo, spec: SizeSpec) -> dict[str, Any]:
    """Values for hyperparameters the registry lists as ``"required"`` (e.g. ArcFace's sizes)."""
    values: dict[str, Any] = {}
    for key, default in info.hyperparameters.items():
        if default != "required":
            continue
        if key == "num_classes":
            values[key] = _num_classes(spec)
        elif key in ("embedding_dim", "embedding_size", "dim"):
            values[key] = spec.shape[-1]
        else:
            raise ValueError(f"{info.name}: no benchmark value for the required hyperparameter {key!r}")
    return values


def _num_classes(spec: SizeSpec) -> int:
    if spec.kind in ("multiclass", "segmentation"):
        return spec.shape[1]
    return max(2, spec.shape[0] // 8)       # embeddings: ~8 samples per class, so positives exist


def build_loss(info: LossInfo, spec: SizeSpec) -> nn.Module:
    """The registered Module with its factory defaults (required sizes taken from ``spec``)."""
    return info.factory(**_required_hyperparameters(info, spec))


def _forward_tensor_params(module: nn.Module) -> list[str]:
    parameters = inspect.signature(module.forward).parameters.values()
    return [p.name for p in parameters if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _is_label_param(name: str) -> bool:
    return name in ("target", "targets", "label", "labels", "y")


def example_inputs(
    info: LossInfo, spec: SizeSpec, module: nn.Module, *, seed: int = 0,
    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
) -> Inputs:
    """Inputs for ``module(*args)`` built from the loss's family, metadata and forward signature.

    Float arguments are differentiated; a ``target``/``labels`` argument gets values valid for
    the family (class indices, {0, 1} labels, +-1 labels, probabilities, pair labels).
    """
    if kind_of(info) != spec.kind:
        raise ValueError(f"size {spec.label!r} is for {spec.kind} losses, {info.name!r} is {kind_of(info)}")
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype)

    def randint(high: int, *shape: int) -> Tensor:
        return torch.randint(0, high, shape, generator=generator)

    input_text, target_text = info.input.lower(), info.target.lower()
    args: list[Tensor] = []
    grads: list[Tensor] = []
    for name in _forward_tensor_params(module):
        if _is_label_param(name):
            args.append(_target(info, spec, target_text, randn, randint, dtype))
            continue
        if spec.kind == "embedding" and "speakers" in input_text:
            batch, dim = spec.shape
            speakers = max(2, batch // 8)
            value = randn(speakers, max(2, batch // speakers), dim)
        elif spec.kind == "embedding":
            value = randn(*spec.shape)
        elif spec.kind in ("multiclass", "segmentation") and "log-probabilities" in input_text:
            value = torch.log_softmax(randn(*spec.shape), -1)
        else:
            value = randn(*spec.shape) * (2.0 if spec.kind == "elementwise" else 1.0)
        value.requires_grad_(True)
        args.append(value)
        grads.append(value)
    if torch.device(device).type != "cpu":
        args = [a.detach().to(device).requires_grad_(a.requires_grad) for a in args]
        grads = [a for a in args if a.requires_grad]
    return Inputs(args=tuple(args), grad_tensors=tuple(grads))


def _target(info, spec, text, randn, randint, dtype) -> Tensor:
    family = info.family
    if family == "regression":
        return randn(*spec.shape)
    if family == "binary":
        return randint(2, *spec.shape).to(dtype)
    if family == "margin":
        return randint(2, *spec.shape).to(dtype).mul_(2).sub_(1)
    if family == "classification":
        if text.startswith("probabilities") or text.startswith("class probabilities (n"):
            return torch.softmax(randn(*spec.shape), -1)
        return randint(spec.shape[1], spec.shape[0])
    if family == "segmentation":
        return randint(spec.shape[1], spec.shape[0], *spec.shape[2:])
    # embedding
    if "pair" in text:
        return randint(2, spec.shape[0])
    return randint(_num_classes(spec), spec.shape[0])


# --- baselines -------------------------------------------------------------------------------------

Baseline = Callable[[tuple[Tensor, ...]], Tensor]

# Losses that wrap a torch function: (the function with the registry defaults, its name).
_TORCH_WRAPPED: dict[str, tuple[Callable[..., Tensor], str]] = {
    "cross_entropy": (F.cross_entropy, "F.cross_entropy"),
    "binary_cross_entropy": (F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
    "kl_div": (lambda x, y: F.kl_div(x, y, reduction="batchmean"), "F.kl_div(reduction='batchmean')"),
    "multi_margin": (F.multi_margin_loss, "F.multi_margin_loss"),
    "mse": (F.mse_loss, "F.mse_loss"),
    "mae": (F.l1_loss, "F.l1_loss"),
    "huber": (F.huber_loss, "F.huber_loss"),
    "smooth_l1": (F.smooth_l1_loss, "F.smooth_l1_loss"),
    "margin_ranking": (F.margin_ranking_loss, "F.margin_ranking_loss"),
    "triplet_margin": (F.triplet_margin_loss, "F.triplet_margin_loss"),
}


def torch_baseline(info: LossInfo, args: tuple[Tensor, ...]) -> tuple[Baseline | None, str]:
    """(baseline on the same tensors, its description) or (None, the reason there is none)."""
    name = info.name
    if name in _TORCH_WRAPPED:
        function, text = _TORCH_WRAPPED[name]
        return (lambda a: function(*a)), f"{text} (the wrapped function)"
    if name in ("smae", "log_cosh"):
        # BCE needs a target in [0, 1]: the same target through a sigmoid, made once.
        probabilities = torch.sigmoid(args[1].detach())
        return (lambda a: F.binary_cross_entropy_with_logits(a[0], probabilities)), \
            "F.binary_cross_entropy_with_logits (target sigmoid-mapped into [0, 1])"
    if name in ("hinge", "squared_hinge"):
        labels = (args[1].detach() > 0).to(args[0].dtype)        # made once, outside the timing
        return (lambda a: F.binary_cross_entropy_with_logits(a[0], labels)), \
            "F.binary_cross_entropy_with_logits (the loss a hinge replaces; labels as 0/1)"
    if info.family == "binary" and "sigmoid" in info.formula:
        return (lambda a: F.binary_cross_entropy_with_logits(*a)), "F.binary_cross_entropy_with_logits"
    if info.family == "classification" and "softmax" in info.formula:
        return (lambda a: F.cross_entropy(*a)), "F.cross_entropy"
    if name == "poly1":
        return (lambda a: F.cross_entropy(*a)), "F.cross_entropy (the loss Poly-1 extends)"
    return None, "no torch built-in computes this loss"


def peer_baseline(info: LossInfo, spec: SizeSpec) -> tuple[Baseline | None, str]:
    """The peer library's implementation where one exists (built lazily; None + reason if not)."""
    try:
        return _PEERS[info.name](spec)
    except KeyError:
        return None, "no peer-library implementation known for this loss"
    except ImportError as error:
        return None, f"peer library not installed ({error.name})"


def _pml_triplet(miner: str) -> Callable[[SizeSpec], tuple[Baseline, str]]:
    def build(spec: SizeSpec) -> tuple[Baseline, str]:
        from pytorch_metric_learning import losses, miners

        loss = losses.TripletMarginLoss(margin=1.0)
        mine = miners.BatchHardMiner() if miner == "hard" else miners.TripletMarginMiner(
            margin=1.0, type_of_triplets="all")
        return (lambda args: loss(args[0], args[1], mine(args[0], args[1]))), \
            f"pytorch-metric-learning TripletMarginLoss + {type(mine).__name__}"

    return build


def _pml_ntxent(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    loss = losses.NTXentLoss(temperature=0.1)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        view1, view2 = args
        labels = torch.arange(view1.shape[0]).repeat(2)
        return loss(torch.cat([view1, view2]), labels)

    return call, "pytorch-metric-learning NTXentLoss"


def _pml_arcface(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    loss = losses.ArcFaceLoss(_num_classes(spec), spec.shape[-1], margin=math.degrees(0.5), scale=64)
    return (lambda args: loss(args[0], args[1])), "pytorch-metric-learning ArcFaceLoss"


def _st_mnr(spec: SizeSpec) -> tuple[Baseline, str]:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(nn.Identity(), scale=20.0)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        labels = torch.arange(args[0].shape[0])
        return loss.compute_loss_from_embeddings(list(args), labels)

    return call, "sentence-transformers MultipleNegativesRankingLoss"


def _pml_contrastive(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    # losslab's default is the squared form with margin 1 and label 0 = similar; PML's
    # ContrastiveLoss is the unsquared hinge on distances (timing comparison only).
    loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        first, second, label = args
        batch = first.shape[0]
        rows = torch.arange(batch)
        similar = label == 0
        pairs = (rows[similar], rows[similar] + batch, rows[~similar], rows[~similar] + batch)
        return loss(torch.cat([first, second]), torch.arange(2 * batch), indices_tuple=pairs)

    return call, "pytorch-metric-learning ContrastiveLoss (pairs as indices_tuple)"


def _monai_dice(spec: SizeSpec) -> tuple[Baseline, str]:
    from monai.losses import DiceLoss

    loss = DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)
    return (lambda args: loss(args[0], args[1].unsqueeze(1))), "MONAI DiceLoss(softmax, squared_pred)"


def _monai_focal(use_softmax: bool) -> Callable[[SizeSpec], tuple[Baseline, str]]:
    def build(spec: SizeSpec) -> tuple[Baseline, str]:
        from monai.losses import FocalLoss

        if use_softmax:
            loss = FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)
            return (lambda args: loss(args[0], args[1].unsqueeze(1))), "MONAI FocalLoss(use_softmax)"
        loss = FocalLoss(gamma=2.0, alpha=0.25)
        # MONAI wants (N, C, ...): the elementwise tensors as one channel of one sample.
        return (lambda args: loss(args[0].view(1, 1, -1), args[1].view(1, 1, -1))), \
            "MONAI FocalLoss(sigmoid)"

    return build


_PEERS: dict[str, Callable[[SizeSpec], tuple[Baseline, str]]] = {
    "batch_hard_triplet": _pml_triplet("hard"),
    "batch_all_triplet": _pml_triplet("all"),
    "nt_xent": _pml_ntxent,
    "arcface": _pml_arcface,
    "multiple_negatives_ranking": _st_mnr,
    "contrastive": _pml_contrastive,
    "dice": _monai_dice,
    "softmax_focal": _monai_focal(True),
    "sigmoid_focal": _monai_focal(False),
}


def bandwidth_bound(args: tuple[Tensor, ...]) -> Callable[[], None]:
    """One pass reading the first input (and a second input of its size, if any) and writing one
    tensor of that size: ``torch.add(x, y, out=buf)``."""
    first = args[0].detach()
    same = [a.detach() for a in args[1:] if a.shape == first.shape and a.is_floating_point()]
    second = same[0] if same else first
    buffer = torch.empty_like(first)

    def run() -> None:
        torch.add(first, second, out=buffer)

    return run


# --- measurement -------------------------------------------------------------------------------------


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


# --- cases ---------------------------------------------------------------------------------------------


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


def _has_reference(info: LossInfo) -> bool:
    function = info.functional
    target = getattr(function, "func", function)
    try:
        return "impl" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


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
    if _has_reference(info):
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
    if compiled and info.name in PAPER_LOSSES:
        # The same Module through Inductor (compiled once here, outside the timed loop).
        torch._dynamo.reset()
        compiled_module = torch.compile(module, backend="inductor", fullgraph=True)
        _forward_backward(lambda: compiled_module(*args), grads)()
        runs["compiled"] = _forward_backward(lambda: compiled_module(*args), grads)
        case.baselines["compiled"] = "torch.compile(module, backend='inductor', fullgraph=True)"
    else:
        case.skipped["compiled"] = ("not requested (compiled=True / --compiled)" if not compiled
                                    else "compiled timing is measured for the paper's losses only")
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
        "cases": cases,
    }
    if end_to_end_step:
        paper = [name for name in ("m", "full_m", "l", "full_l") if name in [i.name for i in infos]]
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


# --- end to end ----------------------------------------------------------------------------------


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


# --- output ----------------------------------------------------------------------------------------


def _fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.01 else f"{value:.1e}"   # keep a tiny ratio readable


def _fmt_mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def markdown_table(result: dict[str, Any]) -> str:
    """The results as Markdown: one row per (loss, size), then the end-to-end step."""
    lines = [
        "| loss | size | losslab ms | ×torch | ×reference | ×peer | ×bound | peak MiB | peak ×torch | saved MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if not result.get("config", {}).get("value_checks", True):
        lines.insert(0, "losslab timed with value checks off (`losslab.set_validation(False)`).\n")
    for case in result["cases"]:
        ratios = case["ratios"]
        if "losslab" not in case["time_ms"]:
            lines.append(f"| {case['loss']} | {case['size']} | {case['skipped'].get('losslab', '-')} "
                         "| | | | | | | |")
            continue
        lines.append(
            f"| {case['loss']} | {case['size']} | {case['time_ms']['losslab']:.2f} | "
            f"{_fmt_ratio(ratios['time_vs_torch'])} | {_fmt_ratio(ratios['time_vs_reference'])} | "
            f"{_fmt_ratio(ratios['time_vs_peer'])} | {_fmt_ratio(ratios['time_vs_bound'])} | "
            f"{_fmt_mb(case['peak_bytes'].get('losslab'))} | "
            f"{_fmt_ratio(ratios['peak_memory_vs_torch'])} | {_fmt_mb(case['saved_bytes'].get('losslab'))} |"
        )
    baselines = sorted({(c["loss"], c["baselines"].get("torch"), c["baselines"].get("peer"))
                        for c in result["cases"]}, key=lambda row: row[0])
    notes = [f"- {loss}: torch = {t or '-'}; peer = {p or '-'}" for loss, t, p in baselines if t or p]
    skipped = sorted({(c["loss"], c["skipped"]["peer"]) for c in result["cases"]
                      if "peer" in c["skipped"] and "losslab" not in c["skipped"]})
    compiled_rows = [c for c in result["cases"] if c["ratios"].get("compiled_vs_torch") is not None]
    if compiled_rows:
        lines += ["", "Compiled with Inductor (`torch.compile(module)`), ratio to torch's built-in:", "",
                  "| loss | size | compiled ms | ×torch |", "|---|---|---:|---:|"]
        lines += [f"| {c['loss']} | {c['size']} | {c['time_ms']['compiled']:.2f} | "
                  f"{c['ratios']['compiled_vs_torch']:.2f} |" for c in compiled_rows]
    text = "\n".join(lines)
    if notes:
        text += "\n\nBaselines:\n" + "\n".join(notes)
    by_reason: dict[str, list[str]] = {}
    for loss, reason in skipped:
        by_reason.setdefault(reason, []).append(loss)
    if by_reason:
        text += "\n\nNo peer baseline:\n" + "\n".join(
            f"- {reason}: {', '.join(losses)}" for reason, losses in by_reason.items())
    e2e = result.get("end_to_end")
    if e2e:
        text += (f"\n\nEnd to end ({e2e['model']}, batch {e2e['batch']}): one training step, "
                 f"cross-entropy {e2e['step_ms']['cross_entropy']:.1f} ms; ratio to it: "
                 + ", ".join(f"{k} {v:.3f}" for k, v in e2e["ratio_vs_cross_entropy"].items()))
    return text + "\n"
