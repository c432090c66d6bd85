"""Transfer learning: a CNN body pretrained once with cross-entropy, fine-tuned per loss.

The paper's Table 3 fine-tunes ImageNet-pretrained VGG-19 on Imagenette at a small learning
rate. Neither ships here, so the stand-in keeps the shape of the experiment at CPU size: a
small VGG-style CNN is pretrained with cross-entropy on one image data set (Fashion-MNIST's
60k training images), and every loss then fine-tunes that body, with a fresh head, on a
different small image data set (the 5k MNIST subset) at a small rate. The body is the
convolutional blocks; the dense head is new.

The pretraining is shared by every loss and seed; the run's seed changes only the fine-tuning
(the head's initial weights and the data order). The body is cached in the data folder under a
key covering the pretraining data's checksum, the architecture, the seed and the settings;
the file carries the SHA-256 of its weights, and a file that does not load with
``torch.load(weights_only=True)``, whose key or checksum does not match, is rebuilt, never
trusted. Pretraining runs on one thread: CPU kernels may sum in a different order with
another thread count, so pinning it gives every process (and every worker) the same weights,
and on a shared 2-core machine one thread is also the fastest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from torch import nn

# Bumped when the pretraining procedure changes, so old cache files are not reused.
PRETRAINING_VERSION = 3
_DATA_CHECKSUMS: dict[tuple[Any, ...], str] = {}  # per process: (data set, sizes, root) -> sha256
# The parts of a VGGStyleCNN that must match between pretraining and fine-tuning.
ARCHITECTURE_KEYS = ("widths", "convs_per_block", "batch_norm", "head_width", "dropout",
                     "head_pool", "layout", "width_multiplier")


@dataclass(frozen=True)
class PretrainSettings:
    """How the shared body is pretrained (cross-entropy, Adam).

    Attributes:
        dataset: the :func:`losslab.data.load_dataset` image set pretrained on.
        max_train: at most this many of its training images (class-stratified; None = all).
        max_test: at most this many of its test images, to report the pretraining's accuracy.
        epochs: passes over them.
        lr: Adam's learning rate.
        batch_size: images per step.
        seed: initial weights and data order of the pretraining.
    """

    dataset: str = "fashion-mnist"
    max_train: int | None = None
    max_test: int | None = None
    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PretrainSettings:
        """Settings from a task's ``pretrained`` model option (unknown keys are named)."""
        if not isinstance(options, Mapping):
            raise ValueError(f"pretrained: expected a mapping of pretraining settings, got {options!r}")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(f"pretrained: unknown setting(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(valid)}")
        settings = cls(**dict(options))
        for name in ("epochs", "batch_size"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"pretrained: {name} must be a positive integer, got {value!r}")
        if not (isinstance(settings.lr, (int, float)) and settings.lr > 0):
            raise ValueError(f"pretrained: lr must be a positive number, got {settings.lr!r}")
        return settings


@dataclass(frozen=True)
class PretrainedBody:
    """A cached pretrained body: where it is and what it is.

    Attributes:
        path: the cache file.
        key: the cache key (data checksum, architecture, seed, settings).
        weights_sha256: SHA-256 of the body's tensors.
        record: what the pretraining recorded (settings, data, wall time, test accuracy).
        built: True when this call pretrained it, False when the cache file was reused.
    """

    path: Path
    key: str
    weights_sha256: str
    record: dict[str, Any] = field(default_factory=dict)
    built: bool = False


def architecture(model_options: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture part of a VGG model's options (the tokenizer-free, JSON-able part)."""
    chosen = {key: model_options[key] for key in ARCHITECTURE_KEYS if key in model_options}
    if "widths" in chosen:
        chosen["widths"] = [int(w) for w in chosen["widths"]]
    return chosen


def weights_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _data_checksum(x: Any, y: Any) -> str:
    import numpy as np

    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(x), np.ascontiguousarray(y)):
        digest.update(f"{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def cache_key(settings: PretrainSettings, arch: Mapping[str, Any], data_checksum: str) -> str:
    """The cache key: SHA-256 of the canonical JSON of everything the weights depend on."""
    payload = {"version": PRETRAINING_VERSION, "settings": asdict(settings),
               "architecture": dict(arch), "data_sha256": data_checksum}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (two processes never pretrain the same body at once)."""
    import fcntl  # POSIX; imported here so the module itself imports anywhere

    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_model(arch: Mapping[str, Any], in_channels: int, num_classes: int,
                 image_size: int) -> nn.Module:
    from losslab.models import VGGStyleCNN

    return VGGStyleCNN(in_channels, num_classes, image_size=image_size, **dict(arch))


def body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What is transferred: the convolutional blocks of a VGG-style CNN (weights and batch-norm
    statistics). The dense head is drawn afresh: Fashion-MNIST's dense features hurt on digits
    (transferring the hidden dense layer too cost about 12 points of MNIST accuracy at the
    stand-in's fine-tuning budget, against a gain with the convolutions alone)."""
    return {f"features.{name}": tensor.detach().clone()
            for name, tensor in model.features.state_dict().items()}


def _pretrain(settings: PretrainSettings, arch: Mapping[str, Any], data: Any) -> tuple[dict, dict]:
    """Train the whole model with cross-entropy; return (body state, record)."""
    from losslab.registry import get_loss

    x_train = torch.from_numpy(data.x_train)
    y_train = torch.as_tensor(data.y_train, dtype=torch.long)
    started = time.perf_counter()
    with _one_thread():
        torch.manual_seed(settings.seed)
        model = _build_model(arch, x_train.shape[1], data.num_classes, x_train.shape[-1])
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        loss_fn = get_loss("cross_entropy")
        for epoch in range(settings.epochs):
            model.train()
            generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
            order = torch.randperm(len(y_train), generator=generator)
            for start in range(0, len(order), settings.batch_size):
                batch = order[start:start + settings.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x_train[batch]), y_train[batch]).backward()
                optimizer.step()
        accuracy = _accuracy(model, data.x_test, data.y_test)
    seconds = time.perf_counter() - started
    body = body_state(model)
    record = {"dataset": settings.dataset, "train_images": len(y_train),
              "test_images": len(data.y_test), "test_accuracy": accuracy,
              "wall_time_seconds": round(seconds, 1), "threads": 1}
    return body, record


def _accuracy(model: nn.Module, x: Any, y: Any, batch_size: int = 1000) -> float:
    model.eval()
    x, y = torch.from_numpy(x), torch.as_tensor(y, dtype=torch.long)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            correct += int((model(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum())
    return correct / max(1, len(y))


def _read_cached(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(body, record) of a cache file that loads safely and matches ``key`` and its checksum;
    None for a missing, unreadable or mismatched file."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except Exception:  # a corrupt or foreign file: rebuilt, whatever the reason it fails
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("body"), dict):
        return None
    record, body = stored.get("record"), stored["body"]
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    if not all(isinstance(t, torch.Tensor) for t in body.values()):
        return None
    if record.get("weights_sha256") != weights_checksum(body):
        return None
    return body, record


def pretrained_body(settings: PretrainSettings, arch: Mapping[str, Any], *,
                    cache_dir: str | Path | None = None, data_root: str | Path | None = None,
                    log: Callable[[str], None] | None = None) -> PretrainedBody:
    """The pretrained body for ``settings`` and ``arch``: from the cache, or trained now.

    Args:
        settings: the pretraining.
        arch: the VGG-style architecture (see :func:`architecture`).
        cache_dir: the folder of cached bodies (default ``<data_dir>/cache/pretrained``).
        data_root: the data folder the pretraining set is loaded from (default ``data_dir()``).
        log: progress messages (pretraining takes minutes).

    Returns:
        The :class:`PretrainedBody` (``built`` says whether it was trained by this call).
    """
    from losslab._paths import ensure_folder, inside, write_bytes
    from losslab.data import data_dir, load_dataset

    def load() -> Any:
        data = load_dataset(settings.dataset, root=data_root, max_train=settings.max_train,
                            max_test=settings.max_test)
        if data.kind != "image":
            raise ValueError(f"pretrained: dataset must be an image data set, got "
                             f"{settings.dataset!r} ({data.kind})")
        return data

    # The data's checksum is computed once per process (each worker prepares its own model
    # factory; the data is loaded again only when the body must be trained).
    identity = (settings.dataset, settings.max_train, settings.max_test,
                str(data_dir(data_root).resolve()))
    data = None
    if identity not in _DATA_CHECKSUMS:
        data = load()
        _DATA_CHECKSUMS[identity] = _data_checksum(data.x_train, data.y_train)
    key = cache_key(settings, arch, _DATA_CHECKSUMS[identity])
    folder = ensure_folder(cache_dir if cache_dir is not None else data_dir() / "cache" / "pretrained",
                           option="cache_dir")
    path = inside(folder, f"{key[:32]}.pt")
    with _locked(inside(folder, f"{key[:32]}.lock")):
        cached = _read_cached(path, key)
        if cached is not None:
            body, record = cached
            return PretrainedBody(path, key, record["weights_sha256"], record, built=False)
        data = data if data is not None else load()
        if log is not None:
            log(f"[transfer] pretraining on {settings.dataset} ({len(data.y_train)} images, "
                f"{settings.epochs} epoch(s), one thread) ...")
        body, record = _pretrain(settings, arch, data)
        record.update({"key": key, "weights_sha256": weights_checksum(body),
                       "settings": asdict(settings), "architecture": dict(arch),
                       "version": PRETRAINING_VERSION})
        buffer = io.BytesIO()
        torch.save({"body": body, "record": record}, buffer)
        write_bytes(path, buffer.getvalue())
        if log is not None:
            log(f"[transfer] pretrained in {record['wall_time_seconds']:.1f} s (test accuracy "
                f"{record['test_accuracy']:.4f} on {settings.dataset}); cached in {path}")
    return PretrainedBody(path, key, record["weights_sha256"], record, built=True)


_BODIES: dict[tuple[str, str], dict[str, torch.Tensor]] = {}  # per process: read once


@dataclass(frozen=True)
class PretrainedCNN:
    """A picklable model factory: a VGG-style CNN whose body (its convolutional blocks, see
    :func:`body_state`) holds the cached pretrained weights and whose dense head is freshly
    initialised (from the caller's seed).

    Attributes:
        path: the cache file of the body.
        key: its cache key.
        weights_sha256: the checksum the loaded body must have (a changed file is refused).
        arch: the architecture (must be the pretraining's).
        in_channels, num_classes, image_size: the fine-tuning images and classes.
    """

    path: str
    key: str
    weights_sha256: str
    arch: dict[str, Any]
    in_channels: int
    num_classes: int
    image_size: int

    def __call__(self) -> nn.Module:
        model = _build_model(self.arch, self.in_channels, self.num_classes, self.image_size)
        body = _BODIES.get((self.path, self.weights_sha256))
        if body is None:
            cached = _read_cached(Path(self.path), self.key)
            if cached is None or cached[1]["weights_sha256"] != self.weights_sha256:
                raise RuntimeError(f"pretrained body {self.path} changed or vanished since it was "
                                   "checked; run again to rebuild it")
            body = _BODIES[(self.path, self.weights_sha256)] = cached[0]
        state = model.state_dict()
        if set(body) - set(state):
            raise RuntimeError(f"pretrained body {self.path} does not fit this architecture")
        model.load_state_dict({**state, **body})  # the new head keeps its seeded initial weights
        return model


def pretrained_factory(options: Mapping[str, Any], model_options: Mapping[str, Any], *,
                       num_classes: int, input_shape: tuple[int, ...]) -> PretrainedCNN:
    """The model factory of a task with a ``pretrained`` model option (pretrains if needed)."""
    settings = PretrainSettings.from_options(options)
    arch = architecture(model_options)
    body = pretrained_body(settings, arch, log=print)
    return PretrainedCNN(str(body.path), body.key, body.weights_sha256, arch,
                         int(input_shape[0]), int(num_classes), int(input_shape[-1]))


def is_pretrained(planned: Any) -> bool:
    """Whether a planned task fine-tunes a pretrained body."""
    return "pretrained" in getattr(planned.source, "model_options", {})


def random_init_twin(planned: Any) -> Any:
    """The same planned task without the pretrained body: the same model, data and
    fine-tuning budget, from random initialisation."""
    from dataclasses import replace

    options = {k: v for k, v in planned.source.model_options.items() if k != "pretrained"}
    return replace(planned, label=f"{planned.label} random-init",
                   source=replace(planned.source, model_options=options))


def transfer_line(record: Mapping[str, Any], pretraining: Mapping[str, Any] | None = None) -> str:
    """One Markdown line: what the pretrained body is worth at this fine-tuning budget."""
    seeds = record.get("seeds") or []
    if len(seeds) < 2 or "difference_points" not in record:
        return "**Transfer check:** too few shared seeds to compare with random initialisation."
    mean = {name: sum(record[name].values()) / len(seeds)
            for name in ("pretrained_accuracy", "random_init_accuracy")}
    low, high = record["ci_low_points"], record["ci_high_points"]
    outcome = ("the pretrained body is better" if low > 0 else
               "the pretrained body is worse" if high < 0 else "no detectable difference")
    text = (f"**Transfer check** (cross-entropy, fixed protocol, the same fine-tuning budget, "
            f"{len(seeds)} seeds): pretrained body {mean['pretrained_accuracy']:.4f}, random "
            f"initialisation {mean['random_init_accuracy']:.4f}; paired difference "
            f"{record['difference_points']:+.2f} points, {100 * record['confidence']:.3g}% CI "
            f"[{low:+.2f}, {high:+.2f}]: {outcome}.")
    if pretraining:
        text += (f" Pretraining: {pretraining['train_images']} {pretraining['dataset']} images, "
                 f"{pretraining['settings']['epochs']} epoch(s), "
                 f"{pretraining['wall_time_seconds']:.1f} s on one thread, test accuracy "
                 f"{pretraining['test_accuracy']:.4f} there; the body is shared by every loss and "
                 "seed (the seed changes the head's initial weights and the data order).")
    return text
