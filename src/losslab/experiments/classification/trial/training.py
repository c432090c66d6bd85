"""One training run: its settings, its data, and the loop that trains and scores it.

A run is deterministic given its seed: ``torch.manual_seed(seed)`` before the model is built,
the data order of epoch ``e`` drawn from a generator seeded with ``(seed, e)``, deterministic
algorithms, and the torch RNG state (dropout) saved in every checkpoint. A run resumed from
its last recorded epoch therefore continues exactly as the uninterrupted run would have.

:func:`train_epochs` is the store-free loop (any backend streams its epoch records);
:func:`train_run` records each epoch with its checkpoint in the results store. The grid that
schedules runs lives in :mod:`.runner`.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from losslab.experiments.classification.storage import (
    ResultsStore,
)
from losslab.experiments.classification.trial.optim import build_optimizer, build_scheduler

# "test": train on the training split, score on the test split. "sweep": a learning-rate
# sweep, trained on part of the training split and scored on a validation split carved from
# it (see .tuning); the test split is never read.
STAGES: tuple[str, ...] = ("test", "sweep")
EVAL_SPLITS: dict[str, str] = {"test": "test", "sweep": "validation"}
# Keys of a run's stored config that describe it without determining its result: they are
# left out of the config hash (and of report grouping), so adding them never re-runs work.
ANNOTATION_KEYS: tuple[str, ...] = ("samples", "selection")


@dataclass(frozen=True)
class TrainingSettings:
    """How every run of a task is trained (default: Adam, constant learning rate).

    Attributes:
        epochs: passes over the training data.
        lr: the (peak) learning rate.
        batch_size: training mini-batch size.
        weight_decay: the optimizer's weight decay (L2 for Adam and SGD, decoupled for AdamW).
        eval_batch_size: batch size when scoring (no effect on results).
        loss_options: keyword arguments for every loss (e.g. ``{"eps": 1e-7}``).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"`` or ``"mps"``. Its kind (cpu/cuda/mps) is part of a run's identity
            (numbers differ between kinds); the exact device is recorded in the run's
            environment.
        deterministic: ``torch.use_deterministic_algorithms(True)`` during training.
        amp: None (float32), ``"bf16"`` or ``"fp16"``: the model's forward pass under
            ``torch.autocast`` in that type (fp16 with a gradient scaler); the loss is always
            computed in float32. Recorded in the run's config only when set.
        optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (see :mod:`.optim`).
        momentum, nesterov: SGD's momentum and Nesterov flag.
        scheduler: ``"none"``, ``"cosine"``, ``"step"`` or ``"onecycle"`` (per batch).
        warmup_epochs: epochs of linear warmup before the schedule.
        grad_clip: clip the gradient's global norm to this value (None: no clipping).
        optimizer_factory, scheduler_factory: Python-only replacements for the named
            optimizer / schedule (see :mod:`.optim`); recorded by qualified name.
        train_step: Python-only ``train_step(model, loss_fn, inputs, targets, optimizer)
            -> (loss, logits)`` that runs forward, backward and the optimizer step itself
            (for models that need their own step); the gradient statistics are then not
            measured (recorded as 0).

    Only the fields that differ from their defaults enter a run's config (besides the
    original ones), so runs recorded before a field existed keep their identity.
    """

    epochs: int = 5
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    eval_batch_size: int = 512
    loss_options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    deterministic: bool = True
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    scheduler: str = "none"
    warmup_epochs: int = 0
    grad_clip: float | None = None
    optimizer_factory: Callable[..., Any] | None = None
    scheduler_factory: Callable[..., Any] | None = None
    train_step: Callable[..., Any] | None = None
    amp: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a number >= 0, got {self.weight_decay!r}")
        check_device(self.device)
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"amp: expected one of {', '.join(AMP_DTYPES)} or None, got {self.amp!r}")
        from losslab.experiments.classification.trial.optim import check_training_options

        check_training_options(self)

    def to_config(self) -> dict[str, Any]:
        """What determines the results. The eval batch size does not; of the device only its
        kind does (``"cpu"``, ``"cuda"``, ``"mps"``: a run on another GPU of the same kind is
        the same run)."""
        from losslab.experiments.classification.trial.optim import callable_name

        defaults = TrainingSettings()
        config: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "eval_batch_size":
                continue
            if key in _OPTIONAL_FIELDS and value == getattr(defaults, key):
                continue  # unchanged: left out, so older runs keep their identity
            config[key] = callable_name(value) if key in _CALLABLE_FIELDS else value
        config["device"] = device_type(self.device)
        return config


# Fields added after the first results were recorded: in a config only when not the default.
_OPTIONAL_FIELDS = ("momentum", "nesterov", "scheduler", "warmup_epochs", "grad_clip",
                    "optimizer_factory", "scheduler_factory", "train_step", "amp")
_CALLABLE_FIELDS = ("optimizer_factory", "scheduler_factory", "train_step")


AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device(device: str) -> str:
    """``device`` if it is a device name losslab trains on; a clear error otherwise."""
    if isinstance(device, str):
        kind, _, index = device.partition(":")
        if device in ("auto", "cpu", "cuda", "mps") or (kind == "cuda" and index.isdigit()):
            return device
    raise ValueError(f"device: expected one of {', '.join(DEVICE_CHOICES)}, got {device!r}")


def device_type(device: str) -> str:
    """The kind of a device name (``"auto"`` resolved on this machine)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device.partition(":")[0]


def resolve_device(device: str) -> torch.device:
    """The torch device for a name (``"auto"``: CUDA when available, else the CPU)."""
    return torch.device(device_type(device) if device == "auto" else device)


def describe_device(device: str) -> str:
    """The exact device a run trains on, for its environment record (``cuda:0 (NVIDIA ...)``)."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(resolved)


def check_device_available(device: str, option: str = "device") -> None:
    """Fail before any run starts when this machine cannot train on ``device``."""
    check_device(device)
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option}: {device!r} needs CUDA, but torch {torch.__version__} "
                             "sees no CUDA device here; use --device cpu (or auto)")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"{option}: {device!r} does not exist; this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..)")
    elif kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{option}: 'mps' needs Apple's Metal backend, which torch does not see here")


@dataclass
class PreparedData:
    """A task ready to train: tensors (or a torch Dataset) and a model factory.

    ``x_train``/``x_eval`` are tensors indexed along dim 0 or ``torch.utils.data.Dataset``
    objects returning ``(input, label)``; ``model_factory()`` builds a fresh model mapping a
    batch of inputs to logits ``(B, num_classes)``. ``eval_split`` names what the eval
    arrays are (``"test"``, or ``"validation"`` for a learning-rate sweep). ``train_ids`` and
    ``eval_ids`` are the sample ids of both parts (see :mod:`.splits`; None if unknown).
    ``objective`` replaces the (N, C) classifier's step and scoring for models that are not
    one (a language model: see :class:`Objective`); None for classifiers.
    """

    x_train: Any
    y_train: Tensor
    x_eval: Any
    y_eval: Tensor
    num_classes: int
    model_factory: Callable[[], nn.Module]
    eval_split: str = "test"
    info: dict[str, Any] = field(default_factory=dict)
    train_ids: Any = None
    eval_ids: Any = None
    objective: Objective | None = None


class Objective(Protocol):
    """How a model that is not an (N, C) classifier is trained and scored (picklable).

    The loop keeps everything else (seeding, data order, optimizer, schedule, clipping,
    checkpoints); the objective says what a batch's loss is and what the eval split's metrics
    are. A run's batch of ``inputs``/``targets`` is rows of ``x_train``/``y_train``.
    """

    def batch_loss(self, model: nn.Module, loss: str, loss_options: dict[str, Any],
                   inputs: Any, targets: Tensor) -> tuple[Tensor, float]:
        """(the batch's mean loss, to back-propagate; its accuracy, in [0, 1])."""

    def evaluate(self, model: nn.Module, loss: str, loss_options: dict[str, Any],
                 data: PreparedData, settings: TrainingSettings,
                 device: torch.device) -> dict[str, Any]:
        """The eval split's metrics: ``eval_loss``, ``eval_accuracy``,
        ``eval_cross_entropy`` and any further ``eval_*`` ones."""


class DataSource(Protocol):
    """Something that can produce :class:`PreparedData` in any process (must pickle)."""

    def config(self) -> dict[str, Any]:
        """JSON-able description of the data and model (part of the run's identity)."""

    def prepare(self, stage: str) -> PreparedData:
        """Load and prepare the data for ``stage`` ("test": train on train, score on test;
        "sweep": train on part of the training split, score on the validation rest)."""


# --- one run --------------------------------------------------------------------------------


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # A distinct, reproducible stream per (seed, epoch): resuming needs no generator state.
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63 - 1))


def _length(x: Any) -> int:
    return int(x.shape[0]) if isinstance(x, Tensor) else len(x)


def _batches(x: Any, y: Tensor, order: Tensor, batch_size: int, *,
             pin: bool = False) -> Iterator[tuple[Any, Tensor]]:
    """Mini-batches of rows ``order``. Tensors (in-memory data, possibly already on the
    device) are indexed where they are; a Dataset's items are collated on the CPU, into
    pinned memory when ``pin`` (a CUDA device) so the copy to the device can overlap."""
    from torch.utils.data import default_collate

    for start in range(0, order.numel(), batch_size):
        index = order[start:start + batch_size]
        if isinstance(x, Tensor):
            yield x[index.to(x.device)], y[index.to(y.device)]
        else:  # a Dataset: gather its items; its own labels are replaced by y (the same ones)
            items = [x[int(i)] for i in index]
            inputs = default_collate([item[0] if isinstance(item, tuple) else item for item in items])
            if pin:
                inputs = _pinned(inputs)
            yield inputs, y[index.to(y.device)]


def _pinned(batch: Any) -> Any:
    if isinstance(batch, Tensor):
        return batch.pin_memory()
    if isinstance(batch, (list, tuple)):
        return type(batch)(_pinned(item) for item in batch)
    return batch


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=batch.is_pinned())
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(item, device) for item in batch)
    return batch


@contextmanager
def _training_mode(settings: TrainingSettings, threads: int | None) -> Iterator[None]:
    """Deterministic algorithms and a thread count, restored afterwards."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_threads = torch.get_num_threads()
    if settings.deterministic:
        # On CUDA some kernels have no deterministic version: warn there instead of failing.
        torch.use_deterministic_algorithms(True, warn_only=device_type(settings.device) != "cpu")
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.set_num_threads(previous_threads)


def _serialize(model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
               device: torch.device, scheduler: Any = None, scaler: Any = None) -> bytes:
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "torch_rng": torch.get_rng_state()}
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if device.type == "cuda":  # dropout on a GPU draws from the device's generator
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    if scaler is not None:  # fp16: the loss scale goes on where it was
        state["scaler"] = scaler.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _evaluate(model: nn.Module, loss_fn: nn.Module, data: PreparedData,
              settings: TrainingSettings, device: torch.device,
              amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The eval split's mean loss, accuracy, cross-entropy, and the metrics of
    :mod:`.metrics` (macro-F1, balanced accuracy, ECE, Brier) with the reliability bins."""
    from losslab.experiments.classification.trial.metrics import MetricAccumulator

    model.eval()
    total_loss = total_ce = 0.0
    correct = 0
    n = _length(data.x_eval)
    order = torch.arange(n)
    accumulator = MetricAccumulator(data.num_classes)
    with torch.no_grad():
        for inputs, targets in _batches(data.x_eval, data.y_eval, order, settings.eval_batch_size,
                                        pin=device.type == "cuda"):
            inputs, targets = _to_device(inputs, device), targets.to(device)
            if amp_dtype is None:
                logits = model(inputs)
            else:
                with torch.autocast(device.type, dtype=amp_dtype):
                    logits = model(inputs)
                logits = logits.float()
            total_loss += float(loss_fn(logits, targets)) * targets.shape[0]
            total_ce += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
            correct += int((logits.argmax(dim=1) == targets).sum())
            accumulator.update(logits, targets)
    extra = accumulator.result()
    return {
        "eval_loss": total_loss / n, "eval_accuracy": correct / n, "eval_cross_entropy": total_ce / n,
        "eval_macro_f1": extra["macro_f1"], "eval_balanced_accuracy": extra["balanced_accuracy"],
        "eval_ece": extra["ece"], "eval_brier": extra["brier"],
        "reliability": accumulator.reliability(),
    }


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` in ``amp_dtype``, or nothing when None (float32)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def _check_finite(batch_loss: Tensor, loss: str, epoch: int, settings: TrainingSettings) -> None:
    if not torch.isfinite(batch_loss):
        raise FloatingPointError(
            f"loss {loss!r} became {float(batch_loss)} at epoch {epoch} (lr={settings.lr}); "
            "try a smaller --lr"
        )


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch of a run: its metrics and the state to resume from.

    ``checkpoint`` is None after the last epoch (a finished run keeps no state).
    """

    epoch: int
    metrics: dict[str, Any]
    checkpoint: bytes | None
    final: bool


def _on_device(data: PreparedData, device: torch.device) -> tuple[Any, Tensor, Any, Tensor]:
    """The data's tensors on ``device``, moved once per process (memoised on ``data``).

    Datasets (disk data) stay where they are: their batches are collated, pinned and copied.
    """
    if device.type == "cpu":
        return data.x_train, data.y_train, data.x_eval, data.y_eval
    copies = data.__dict__.setdefault("_device_copies", {})
    if str(device) not in copies:
        def move(value: Any) -> Any:
            return value.to(device) if isinstance(value, Tensor) else value

        copies[str(device)] = (move(data.x_train), move(data.y_train), move(data.x_eval),
                               move(data.y_eval))
    return copies[str(device)]


def train_epochs(
    data: PreparedData,
    loss: str,
    seed: int,
    settings: TrainingSettings,
    *,
    checkpoint: bytes | None = None,
    threads: int | None = None,
    stop_after: int | None = None,
) -> Iterator[EpochRecord]:
    """Train one (task, loss, seed) run epoch by epoch, from ``checkpoint`` if given.

    A pure function of its arguments: it reads and writes no store, so it runs the same in
    this process, a worker process or a Ray task on another machine (whoever consumes the
    records decides where they are stored). Yields one :class:`EpochRecord` per epoch, up
    to epoch ``stop_after`` when given (the run can go on later from that checkpoint).
    ``settings.amp`` applies to the built-in step (a custom ``train_step`` runs as given).
    """
    from losslab.registry import get_loss

    device = resolve_device(settings.device)
    amp_dtype = AMP_DTYPES[settings.amp] if settings.amp is not None else None
    with _training_mode(settings, threads):
        torch.manual_seed(seed)
        model = data.model_factory().to(device)
        loss_fn = get_loss(loss, **settings.loss_options)
        optimizer = build_optimizer(model, settings)
        n_train = _length(data.x_train)
        scheduler = build_scheduler(optimizer, settings, math.ceil(n_train / settings.batch_size))
        scaler = torch.amp.GradScaler(device.type) if settings.amp == "fp16" else None
        start_epoch = 0
        if checkpoint is not None:
            state = torch.load(io.BytesIO(checkpoint), map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and "scheduler" in state:
                scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"].cpu())
            if "cuda_rng" in state and device.type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            start_epoch = int(state["epoch"])
        x_train, y_train, x_eval, y_eval = _on_device(data, device)
        on_device = replace(data, x_train=x_train, y_train=y_train, x_eval=x_eval, y_eval=y_eval)
        pin = device.type == "cuda"
        last_epoch = settings.epochs if stop_after is None else min(settings.epochs, stop_after)
        for epoch in range(start_epoch + 1, last_epoch + 1):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(n_train, generator=_epoch_generator(seed, epoch))
            loss_sum = 0.0
            correct = 0
            grad_sum = grad_square_sum = 0.0
            for inputs, targets in _batches(x_train, y_train, order, settings.batch_size, pin=pin):
                inputs, targets = _to_device(inputs, device), targets.to(device)
                logit_grad = logits = None
                if settings.train_step is not None:
                    batch_loss, logits = settings.train_step(model, loss_fn, inputs, targets, optimizer)
                    _check_finite(batch_loss, loss, epoch, settings)
                else:
                    if data.objective is not None:  # e.g. a language model: no (N, C) logits
                        with _autocast(device, amp_dtype):
                            batch_loss, batch_accuracy = data.objective.batch_loss(
                                model, loss, settings.loss_options, inputs, targets)
                    elif amp_dtype is None:
                        logits = model(inputs)
                    else:
                        with torch.autocast(device.type, dtype=amp_dtype):
                            logits = model(inputs)
                        # The loss itself in float32: the losses' own numerics stay exact.
                        logits = logits.float()
                    if logits is not None:
                        logits.retain_grad()
                        batch_loss = loss_fn(logits, targets)
                    _check_finite(batch_loss, loss, epoch, settings)
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is None:
                        batch_loss.backward()
                        if settings.grad_clip is not None:
                            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                        optimizer.step()
                        logit_grad = None if logits is None else logits.grad
                    else:
                        scaler.scale(batch_loss).backward()
                        logit_grad = None if logits is None else logits.grad / scaler.get_scale()
                        if settings.grad_clip is not None:
                            scaler.unscale_(optimizer)
                            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                if scheduler is not None:
                    scheduler.step()
                size = targets.shape[0]
                loss_sum += batch_loss.item() * size
                if logits is None:  # an objective's accuracy (a share of its own items)
                    correct += batch_accuracy * size
                else:
                    correct += int((logits.detach().argmax(dim=1) == targets).sum())
                # The batch loss is a mean, so size * grad is each sample's own dLoss/dlogit;
                # its mean absolute value over classes is the sample's gradient magnitude.
                if logit_grad is not None:  # not measured under a custom train_step
                    per_sample = (logit_grad * size).abs().mean(dim=1).double()
                    grad_sum += float(per_sample.sum())
                    grad_square_sum += float((per_sample**2).sum())
            if data.objective is not None:
                with _autocast(device, amp_dtype):
                    evaluation = data.objective.evaluate(model, loss, settings.loss_options,
                                                         on_device, settings, device)
            else:
                evaluation = _evaluate(model, loss_fn, on_device, settings, device, amp_dtype)
            grad_mean = grad_sum / n_train
            grad_variance = max(grad_square_sum / n_train - grad_mean**2, 0.0)
            metrics = {
                "train_loss": loss_sum / n_train,
                "train_accuracy": correct / n_train,
                **evaluation,
                "grad_mean": grad_mean,
                "grad_sd": math.sqrt(grad_variance),
                "wall_time": time.perf_counter() - started,
            }
            bad = [name for name, value in metrics.items()
                   if isinstance(value, float) and not math.isfinite(value)]
            if bad:  # SQLite would store NaN as NULL; a non-finite score means the run diverged
                raise FloatingPointError(
                    f"loss {loss!r}: {', '.join(bad)} became non-finite at epoch {epoch} "
                    f"(lr={settings.lr}); try a smaller --lr"
                )
            final = epoch == settings.epochs
            yield EpochRecord(epoch, metrics,
                              None if final else _serialize(model, optimizer, epoch, device,
                                                            scheduler, scaler),
                              final)


def train_run(
    store: ResultsStore,
    run_id: int,
    data: PreparedData,
    loss: str,
    seed: int,
    settings: TrainingSettings,
    *,
    threads: int | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    stop_after: int | None = None,
) -> None:
    """Train one (task, loss, seed) run, resuming from its last recorded epoch.

    Each finished epoch is recorded with its checkpoint; the last one marks the run finished.
    ``on_epoch(epoch, metrics)`` is called after each record (progress bars).
    """
    resume = store.resume_point(run_id)
    for record in train_epochs(data, loss, seed, settings, threads=threads, stop_after=stop_after,
                               checkpoint=None if resume is None else resume.state):
        store.record_epoch(run_id, record.epoch, record.metrics, record.checkpoint,
                           final=record.final)
        if on_epoch is not None:
            on_epoch(record.epoch, record.metrics)
