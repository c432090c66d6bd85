"""Named comparison tasks: a data set, a model family, and default training hyperparameters.

A :class:`Task` says *what* to train; :class:`DatasetSource` turns it (plus the user's
overrides) into tensors and a model factory in whichever process trains it. All runs of a task
see the same data subset (``subsample_seed`` is fixed, not the run's seed): the seeds vary the
initial weights, the data order and dropout, which is what the paired comparison is about.

Every model is a ``num_classes``-way classifier trained on softmax losses, binary tasks
included: for two classes, softmax cross-entropy equals BCE on the logit difference, and the
paper's M and L losses equal their binary forms (the "full" variants count the same term
twice, i.e. twice the binary full loss; Adam is nearly invariant to that factor).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from losslab.experiments.classification.execution.runner import PreparedData, TrainingSettings
from losslab.experiments.classification.planning.config import jsonable

# "causal-lm": next-token prediction with a small Transformers decoder (see .language).
MODEL_FAMILIES: tuple[str, ...] = ("mlp", "vgg", "lstm", "minilm", "causal-lm")


@dataclass(frozen=True)
class Task:
    """A named comparison task.

    Attributes:
        name: registry name (``losslab compare --task NAME``).
        dataset: :func:`losslab.data.load_dataset` name.
        model: one of :data:`MODEL_FAMILIES`.
        description: one line for listings and reports.
        model_options: keyword arguments of the model (and, for text, ``max_len`` and
            ``max_vocab`` of the tokenizer).
        training: defaults of :class:`TrainingSettings` (``epochs``, ``lr``, ``batch_size``).
        quick: smaller sizes for a quick run (``max_train``, ``max_test``, ``epochs``).
        full: sizes of the full run (``None`` = the whole split).
        needs_path: the data set lives at a path the user gives.
        stands_in_for: the paper experiment this task replaces, if any.
        data_options: further ``load_dataset`` options (e.g. which column is the label).
    """

    name: str
    dataset: str
    model: str
    description: str
    model_options: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    quick: Mapping[str, Any] = field(default_factory=dict)
    full: Mapping[str, Any] = field(default_factory=dict)
    needs_path: bool = False
    stands_in_for: str | None = None
    data_options: Mapping[str, Any] = field(default_factory=dict)


_TEXT_LSTM = {"embed_dim": 100, "hidden": 100, "spatial_dropout": 0.2, "max_len": 128, "max_vocab": 20_000}

_TASKS: dict[str, Task] = {}
# The transfer stand-in: a CNN small enough to pretrain on 60k images in minutes on one CPU
# thread, and the pretraining every loss and seed then fine-tunes (see .transfer).
_TRANSFER_CNN = {"widths": (16, 32), "convs_per_block": 1, "head_width": 64, "dropout": 0.25,
                 "head_pool": "flatten"}
_TRANSFER_PRETRAINING = {"dataset": "fashion-mnist", "max_train": None, "max_test": None,
                         "epochs": 2, "lr": 1e-3, "batch_size": 128, "seed": 0}


def _add(task: Task) -> None:
    if task.model not in MODEL_FAMILIES:
        raise ValueError(f"model: expected one of {', '.join(MODEL_FAMILIES)}, got {task.model!r}")
    _TASKS[task.name] = task


_add(Task(
    "fashion-mnist-cnn", "fashion-mnist", "vgg",
    "Fashion-MNIST, small VGG-style CNN (CIFAR-10 / VGG-19 stand-in, paper Table 2)",
    model_options={"widths": (32, 64), "convs_per_block": 1, "head_width": 128, "dropout": 0.25,
                   "head_pool": "flatten"},
    training={"epochs": 10, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 1500, "max_test": 1000, "epochs": 3},
    full={"max_train": None, "max_test": None},
    stands_in_for="Table 2: VGG-19 on CIFAR-10",
))
_add(Task(
    "mnist-cnn", "mnist-5k", "vgg",
    "MNIST 5k subset, small VGG-style CNN trained from scratch",
    model_options={"widths": (32, 64), "convs_per_block": 1, "head_width": 128, "dropout": 0.25,
                   "head_pool": "flatten"},
    training={"epochs": 10, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 1500, "max_test": 500, "epochs": 3},
))
_add(Task(
    "mnist-finetune", "mnist-5k", "vgg",
    "MNIST 5k subset, small VGG-style CNN pretrained with cross-entropy on Fashion-MNIST's 60k "
    "training images, then fine-tuned per loss at a small rate (transfer stand-in, paper Table 3)",
    model_options={**_TRANSFER_CNN, "pretrained": _TRANSFER_PRETRAINING},
    training={"epochs": 3, "lr": 3e-4, "batch_size": 32},
    quick={"max_train": 1000, "max_test": 1000, "epochs": 3},
    stands_in_for="Table 3: VGG-19 (ImageNet weights) fine-tuned on Imagenette",
))
_add(Task(
    "digits-mlp", "digits", "mlp",
    "scikit-learn digits (8x8), MLP from scratch (the earlier paper Table 3 stand-in, before mnist-finetune)",
    model_options={"hidden": (64,), "dropout": 0.1},
    training={"epochs": 30, "lr": 1e-3, "batch_size": 32},
    quick={"epochs": 15},
))
_add(Task(
    "rotten-tomatoes-lstm", "rotten-tomatoes", "lstm",
    "Rotten Tomatoes reviews (fresh/rotten), embedding + LSTM(100)",
    model_options={**_TEXT_LSTM, "max_len": 64},
    training={"epochs": 5, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 2000, "max_test": 1000, "epochs": 3},
))
_add(Task(
    "rotten-tomatoes-minilm", "rotten-tomatoes", "minilm",
    "Rotten Tomatoes reviews, frozen all-MiniLM-L6-v2 + trainable head (IMDB / BERT stand-in, paper Table 5)",
    model_options={"hidden": (128,), "dropout": 0.1},
    training={"epochs": 10, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 800, "max_test": 400, "epochs": 8},
    stands_in_for="Table 5: small BERT on IMDB",
))
_add(Task(
    "newsgroups-lstm", "newsgroups", "lstm",
    "20 Newsgroups (20 topics), embedding + LSTM(100) (a topic-classification alternative to CFPB)",
    model_options={**_TEXT_LSTM, "max_len": 200},
    training={"epochs": 10, "lr": 2e-3, "batch_size": 64},
    quick={"max_train": 2000, "max_test": 1000, "epochs": 4},
))
_add(Task(
    "clothing-reviews-lstm", "clothing-reviews", "lstm",
    "Women's clothing reviews (rating 1-5), embedding + LSTM(100) (CFPB complaints stand-in, paper Table 4)",
    model_options={**_TEXT_LSTM, "max_len": 100},
    training={"epochs": 5, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 2000, "max_test": 1000, "epochs": 3},
    stands_in_for="Table 4: embedding + LSTM on CFPB complaints",
))
_add(Task(
    "clothing-products-minilm", "clothing-reviews", "minilm",
    "Women's clothing reviews classified by product department (6 classes, like CFPB's "
    "products), frozen all-MiniLM-L6-v2 + trainable head (paper Table 4, quick and standard)",
    model_options={"hidden": (128,), "dropout": 0.1},
    training={"epochs": 10, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 1500, "max_test": 1500, "epochs": 8},
    stands_in_for="Table 4: embedding + LSTM on CFPB complaints (quick and standard presets)",
    data_options={"label": "Department Name"},
))
_add(Task(
    "cifar10-vgg", "cifar10", "vgg",
    "CIFAR-10 (your cifar-10-batches-py folder), VGG-19 layout (width_multiplier=1 for the paper's size)",
    model_options={"layout": "vgg19", "width_multiplier": 0.25, "head_width": 256, "dropout": 0.5},
    training={"epochs": 30, "lr": 1e-4, "batch_size": 128},
    quick={"max_train": 2000, "max_test": 1000, "epochs": 2},
    needs_path=True, stands_in_for=None,
))
_add(Task(
    "imagenette-vgg", "imagenette", "vgg",
    "Imagenette (your train/ val/ folders), VGG-19 layout from scratch (no pretrained weights here)",
    model_options={"layout": "vgg19", "width_multiplier": 0.25, "head_width": 256, "dropout": 0.5},
    training={"epochs": 30, "lr": 1e-4, "batch_size": 32},
    quick={"max_train": 1000, "max_test": 500, "epochs": 2},
    needs_path=True,
))
_add(Task(
    "imdb-lstm", "imdb", "lstm",
    "IMDB reviews (your aclImdb folder), embedding + LSTM(100)",
    model_options={**_TEXT_LSTM, "max_len": 256},
    training={"epochs": 5, "lr": 1e-3, "batch_size": 64},
    quick={"max_train": 2000, "max_test": 1000, "epochs": 2},
    needs_path=True,
))

# Language models (see .language): the same corpus and tokenizer, from scratch and continued
# from a shared cross-entropy model pretrained on 3,000 other training reviews.
_LM_QUICK = {"max_train": 1000, "max_test": 300, "epochs": 2}
_add(Task(
    "clothing-reviews-lm", "clothing-reviews", "causal-lm",
    "Women's clothing reviews, next-token prediction: a tiny Llama (2 layers, width 64, "
    "BPE vocabulary 1,024) from scratch, scored by held-out perplexity",
    model_options={"init": "scratch"},
    training={"epochs": 4, "lr": 3e-3, "batch_size": 32},
    quick=_LM_QUICK,
    full={"max_train": None, "max_test": None},
))
_add(Task(
    "clothing-reviews-lm-finetune", "clothing-reviews", "causal-lm",
    "Women's clothing reviews, next-token prediction continued from a shared cross-entropy "
    "checkpoint (the fine-tuning case), scored by held-out perplexity",
    model_options={"init": "pretrained"},
    training={"epochs": 4, "lr": 1e-3, "batch_size": 32},
    quick=_LM_QUICK,
    full={"max_train": None, "max_test": None},
))


def task_names() -> list[str]:
    return list(_TASKS)


def list_tasks() -> list[Task]:
    return list(_TASKS.values())


def get_task(name: str) -> Task:
    """The registered task ``name``; unknown names list the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"task: expected a task name (str), got {type(name).__name__}")
    if name not in _TASKS:
        close = difflib.get_close_matches(name, list(_TASKS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"task: unknown task {name!r}{hint}; valid tasks: {', '.join(_TASKS)} "
            "(or --data FILE.csv --label-column C for your own data)"
        )
    return _TASKS[name]


# --- turning data into tensors --------------------------------------------------------------


def _array_fingerprint(*arrays: Any) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        if isinstance(array, list):
            for item in array:
                digest.update(str(item).encode("utf-8"))
                digest.update(b"\0")
        else:
            contiguous = np.ascontiguousarray(np.asarray(array))
            digest.update(str(contiguous.dtype).encode() + str(contiguous.shape).encode())
            digest.update(contiguous.tobytes())
    return digest.hexdigest()[:16]


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Standardise features with the training split's mean and sd (never the test split's)."""
    mean = x_train.mean(axis=0, keepdims=True)
    sd = x_train.std(axis=0, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)  # constant columns: centred, not divided by zero
    return ((x_train - mean) / sd).astype(np.float32), ((x_test - mean) / sd).astype(np.float32), {
        "standardized": True
    }


def _text_tensors(texts_train: list[str], texts_test: list[str], options: dict[str, Any]
                  ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Token-id tensors (N, max_len) with a vocabulary built from the training texts only."""
    from losslab.models import Vocabulary

    vocabulary = Vocabulary(max_size=options.get("max_vocab", 20_000)).fit(texts_train)
    max_len = int(options.get("max_len", 128))
    x_train = torch.as_tensor(vocabulary.encode(texts_train, max_length=max_len), dtype=torch.long)
    x_test = torch.as_tensor(vocabulary.encode(texts_test, max_length=max_len), dtype=torch.long)
    return x_train, x_test, len(vocabulary)


def _model_factory(family: str, options: Mapping[str, Any], *, num_classes: int,
                   input_shape: tuple[int, ...], vocab_size: int | None = None) -> Callable[[], nn.Module]:
    import functools

    from losslab import models

    options = dict(options)
    if family == "mlp" or family == "minilm":
        return functools.partial(models.MLP, int(np.prod(input_shape)), num_classes, **options)
    if family == "vgg" and "pretrained" in options:  # a body pretrained once, fine-tuned
        from losslab.experiments.classification.planning.transfer import pretrained_factory

        pretrained = options.pop("pretrained")
        return pretrained_factory(pretrained, options, num_classes=num_classes, input_shape=input_shape)
    if family == "vgg":
        return functools.partial(models.VGGStyleCNN, input_shape[0], num_classes,
                                 image_size=input_shape[-1], **options)
    if family == "lstm":
        for tokenizer_option in ("max_len", "max_vocab"):
            options.pop(tokenizer_option, None)
        return functools.partial(models.LSTMClassifier, vocab_size, num_classes, **options)
    raise ValueError(f"model: expected one of {', '.join(MODEL_FAMILIES)}, got {family!r}")


def prepare_classification_data(data: Any, model: str, model_options: Mapping[str, Any], *,
                                cache_dir: str | Path | None = None,
                                embeddings: tuple[np.ndarray, np.ndarray] | None = None
                                ) -> PreparedData:
    """Tensors and a model factory for a :class:`losslab.data.ClassificationData`.

    Images go in as they are (float in [0, 1]); tabular features are standardised with the
    training split's statistics; text becomes token ids (``lstm``) or frozen MiniLM sentence
    embeddings (``minilm``, cached under ``cache_dir``; ``embeddings`` gives the
    (train, test) rows already computed).
    """
    options = dict(model_options)
    y_train = torch.tensor(np.asarray(data.y_train), dtype=torch.long)  # a copy: frames may be read-only
    y_test = torch.tensor(np.asarray(data.y_test), dtype=torch.long)
    info: dict[str, Any] = {"dataset": data.name, "source": data.source, "classes": list(data.classes),
                            "train_size": len(y_train), "test_size": len(y_test)}
    vocab_size = None
    if data.kind == "text":
        if model == "lstm":
            x_train, x_test, vocab_size = _text_tensors(list(data.x_train), list(data.x_test), options)
            info["vocab_size"] = vocab_size
        elif model == "minilm":
            from losslab.data import data_dir
            from losslab.models import encode_sentences

            # Embeddings are computed once per text set and reused by every run and process.
            cache_dir = cache_dir if cache_dir is not None else data_dir() / "cache" / "minilm"
            if embeddings is None:
                embeddings = (encode_sentences(list(data.x_train), cache_dir=cache_dir),
                              encode_sentences(list(data.x_test), cache_dir=cache_dir))
            x_train, x_test = torch.as_tensor(embeddings[0]), torch.as_tensor(embeddings[1])
        else:
            raise ValueError(f"model: text data needs model 'lstm' or 'minilm', got {model!r}")
        input_shape = tuple(x_train.shape[1:])
    else:
        if model not in ("mlp", "vgg"):
            raise ValueError(f"model: {data.kind} data needs model 'mlp' or 'vgg', got {model!r}")
        x_train_np = np.asarray(data.x_train, dtype=np.float32)
        x_test_np = np.asarray(data.x_test, dtype=np.float32)
        if data.kind == "tabular":
            x_train_np, x_test_np, extra = _standardize(x_train_np, x_test_np)
            info.update(extra)
        if model == "vgg" and x_train_np.ndim != 4:
            raise ValueError(f"model: 'vgg' needs images (N, C, H, W), got inputs of shape {x_train_np.shape}")
        x_train, x_test = torch.from_numpy(x_train_np), torch.from_numpy(x_test_np)
        input_shape = tuple(x_train.shape[1:])
    factory = _model_factory(model, options, num_classes=len(data.classes),
                             input_shape=input_shape, vocab_size=vocab_size)
    n_train, n_test = len(y_train), len(y_test)
    return PreparedData(x_train, y_train, x_test, y_test, len(data.classes), factory,
                        eval_split="test", info=info, train_ids=np.arange(n_train),
                        eval_ids=n_train + np.arange(n_test))


def _validation_view(data: Any, split: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """The data set with its training split cut into (sweep training part, validation part).

    Returns the new :class:`losslab.data.ClassificationData` (whose "test" split is the
    validation part: the real test split is dropped here, before any tensor is made) and the
    sample ids of both parts.
    """
    from losslab.data import ClassificationData
    from losslab.experiments.classification.planning.splits import carve_validation

    y = np.asarray(data.y_train)
    fit, validation = carve_validation(y, split, class_names=list(data.classes))

    def take(x: Any, indices: np.ndarray) -> Any:
        return [x[int(i)] for i in indices] if isinstance(x, list) else np.asarray(x)[indices]

    view = ClassificationData(
        name=data.name, kind=data.kind, x_train=take(data.x_train, fit), y_train=y[fit],
        x_test=take(data.x_train, validation), y_test=y[validation], classes=list(data.classes),
        source=data.source, meta={**data.meta, "validation": split.config()},
    )
    return view, fit, validation


@dataclass
class DatasetSource:
    """A :func:`losslab.data.load_dataset` data set plus a model family (picklable).

    ``options`` go to ``load_dataset`` (``max_train``, ``max_test``, ``label_column`` ...).
    """

    dataset: str
    model: str
    model_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    root: str | None = None
    cache_dir: str | None = None
    validation: Any = None  # a splits.ValidationSplit: what stage "sweep" trains and scores on

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"dataset": self.dataset, "model": self.model,
                                  "model_options": jsonable(self.model_options),
                                  "options": jsonable(self.options)}
        if self.validation is not None:
            config["validation"] = self.validation.config()
        if "pretrained" in self.model_options:
            # A changed pretraining procedure gives another body: runs on the old one are not
            # reused (the option's settings are already in model_options).
            from losslab.experiments.classification.planning.transfer import PRETRAINING_VERSION

            config["pretraining_version"] = PRETRAINING_VERSION
        if self.path is not None:
            # The path is where the data is, not what it is: identify a file by its content.
            file = Path(self.path)
            config["path"] = str(file.resolve())
            if file.is_file():
                config["file_sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
        return config

    def load(self) -> Any:
        """The data set; a missing one raises an error that says how to get it."""
        from losslab.data import DatasetUnavailableError, list_datasets, load_dataset

        try:
            return load_dataset(self.dataset, root=self.root, path=self.path, **self.options)
        except FileNotFoundError as error:  # DatasetUnavailableError, or a missing --path
            how = {info.name: info.how_to_get for info in list_datasets(root=self.root)}.get(self.dataset)
            if how and how not in str(error):
                raise DatasetUnavailableError(f"{error}; how to get it: {how}") from error
            raise

    def prepare(self, stage: str) -> PreparedData:
        """Tensors and model factory for ``stage``; memoised in this process (not pickled).

        ``"test"``: the training split, scored on the test split. ``"sweep"``: the training
        split cut by ``validation`` into a part to train on and a validation part to score
        on; the split happens before any tensor is made, so feature scaling and the text
        vocabulary are fitted on the sweep's training part only, and the test split is never
        read.
        """
        if stage not in ("test", "sweep"):
            raise ValueError(f"stage: expected 'test' or 'sweep', got {stage!r}")
        if stage == "sweep" and self.validation is None:
            raise ValueError("stage: 'sweep' needs a validation split (DatasetSource.validation)")
        memo = self.__dict__.setdefault("_prepared", {})
        if stage not in memo:
            data = self.load()
            if stage == "sweep":
                view, fit, validation = _validation_view(data, self.validation)
                embeddings = None
                if self.model == "minilm" and data.kind == "text":
                    # Rows of the whole training split's embeddings (the test stage's cache
                    # entry): the sweep's parts are never encoded again, and each text's
                    # embedding is bit-identical in both stages.
                    from losslab.data import data_dir
                    from losslab.models import encode_sentences

                    cache = self.cache_dir if self.cache_dir is not None else data_dir() / "cache" / "minilm"
                    full = encode_sentences(list(data.x_train), cache_dir=cache)
                    embeddings = (full[fit], full[validation])
                prepared = prepare_classification_data(view, self.model, self.model_options,
                                                       cache_dir=self.cache_dir, embeddings=embeddings)
                prepared.eval_split, prepared.train_ids, prepared.eval_ids = "validation", fit, validation
            else:
                prepared = prepare_classification_data(data, self.model, self.model_options,
                                                       cache_dir=self.cache_dir)
            memo[stage] = prepared
        return memo[stage]

    def __getstate__(self) -> dict[str, Any]:  # workers prepare their own tensors
        return {k: v for k, v in self.__dict__.items() if k != "_prepared"}


@dataclass
class ArraySource:
    """In-memory data (arrays, tensors or torch Datasets) and a user's model factory.

    The factory must be picklable (a module-level function or class) when ``workers > 1``.
    """

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any
    model_factory: Callable[[], nn.Module]
    num_classes: int
    name: str = "arrays"
    validation: Any = None  # a splits.ValidationSplit: what stage "sweep" trains and scores on

    def config(self) -> dict[str, Any]:
        factory = self.model_factory
        factory_name = getattr(factory, "__qualname__", None) or type(factory).__qualname__
        module = getattr(factory, "__module__", "")
        config = {
            "dataset": self.name,
            "model": f"{module}.{factory_name}",
            "num_classes": self.num_classes,
            "fingerprint": _fingerprint_any(self.x_train, self.y_train, self.x_test, self.y_test),
        }
        if self.validation is not None:
            config["validation"] = self.validation.config()
        return config

    def prepare(self, stage: str) -> PreparedData:
        """``"test"``: train on the training arrays, score on the test arrays. ``"sweep"``:
        train on part of the training arrays, score on the validation rest (``x_test`` is
        not touched)."""
        n_train, n_test = len(self.y_train), len(self.y_test)
        info = {"dataset": self.name, "train_size": n_train, "test_size": n_test}
        if stage == "test":
            return PreparedData(self.x_train, self.y_train, self.x_test, self.y_test, self.num_classes,
                                self.model_factory, eval_split="test", info=info,
                                train_ids=np.arange(n_train), eval_ids=n_train + np.arange(n_test))
        if stage != "sweep":
            raise ValueError(f"stage: expected 'test' or 'sweep', got {stage!r}")
        if self.validation is None:
            raise ValueError("stage: 'sweep' needs a validation split (ArraySource.validation)")
        from losslab.experiments.classification.planning.splits import carve_validation

        y = torch.as_tensor(self.y_train)
        fit, validation = carve_validation(y.numpy(), self.validation)
        return PreparedData(_subset(self.x_train, fit), y[fit], _subset(self.x_train, validation),
                            y[validation], self.num_classes, self.model_factory,
                            eval_split="validation", info=info, train_ids=fit, eval_ids=validation)


def _subset(x: Any, indices: np.ndarray) -> Any:
    """Rows ``indices`` of a tensor, or a view of a torch Dataset."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(indices)]
    return torch.utils.data.Subset(x, [int(i) for i in indices])


def _fingerprint_any(*parts: Any) -> str:
    arrays = []
    for part in parts:
        if isinstance(part, torch.Tensor):
            arrays.append(part.detach().cpu().numpy())
        elif isinstance(part, (np.ndarray, list)):
            arrays.append(part)
        else:  # a Dataset: its length and type (hashing every item could be slow)
            arrays.append([type(part).__qualname__, len(part)])
    return _array_fingerprint(*arrays)


def planned_task(
    task: Task | str,
    *,
    preset: str = "full",
    path: str | None = None,
    root: str | None = None,
    cache_dir: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> Any:
    """A grid row for a registered task with the preset's sizes and the user's overrides.

    ``overrides`` may set ``max_train``, ``max_test`` and any field of
    :class:`.runner.TrainingSettings` (``epochs``, ``lr``, ``batch_size``, ``weight_decay``,
    ``optimizer``, ``scheduler``, ``device``, ``amp`` ...; ``None`` values are ignored).
    """
    from losslab.experiments.classification.execution.runner import PlannedTask

    task = get_task(task) if isinstance(task, str) else task
    if preset not in ("quick", "full"):
        raise ValueError(f"preset: expected 'quick' or 'full', got {preset!r}")
    if task.needs_path and path is None:
        raise ValueError(
            f"task {task.name!r} reads {task.dataset} from your disk: pass --path (path=) to it"
        )
    sizes = dict(task.full if preset == "full" else task.quick)
    chosen = {**task.training, **{k: v for k, v in sizes.items() if k == "epochs"}}
    data_options = {**task.data_options,
                    **{k: v for k, v in sizes.items() if k in ("max_train", "max_test") and v is not None}}
    from dataclasses import fields

    valid = (*(f.name for f in fields(TrainingSettings) if f.name not in ("deterministic",
                                                                            "eval_batch_size")),
             "max_train", "max_test")
    for key, value in (overrides or {}).items():
        if key not in valid:
            raise ValueError(f"overrides: unknown setting {key!r}; valid: {', '.join(valid)}")
        if value is None:
            continue
        if key in ("max_train", "max_test"):
            data_options[key] = value
        else:
            chosen[key] = value
    settings = TrainingSettings(**chosen)
    if task.model == "causal-lm":
        from losslab.experiments.classification.planning.language import LanguageModelSource

        source: Any = LanguageModelSource(task.dataset, {**task.model_options, **(model_options or {})},
                                          options=data_options, path=None if path is None else str(path),
                                          root=root, cache_dir=cache_dir)
    else:
        source = DatasetSource(task.dataset, task.model, {**task.model_options, **(model_options or {})},
                               options=data_options, path=None if path is None else str(path),
                               root=root, cache_dir=cache_dir)
    return PlannedTask(label or task.name, source, settings)


def with_settings(planned: Any, **changes: Any) -> Any:
    """A copy of a planned task with some training settings changed."""
    return replace(planned, settings=replace(planned.settings, **changes))
