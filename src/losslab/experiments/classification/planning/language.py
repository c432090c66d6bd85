"""Language-model tasks: next-token prediction on a review corpus, scored by perplexity.

Next-token prediction is a classification over the vocabulary at every position, so the
paper's losses apply unchanged; what changes is the scale (a 1,024-way softmax here, 32k–256k
in practice) and the probability of the true class (about ``1/V`` at the start of training,
well above it once a model is pretrained). A task of this module plugs into ``compare`` as
any other: a data source (:class:`LanguageModelSource`), a model factory, and an
:class:`CausalLMObjective` that trains through
:func:`losslab.integrations.transformers.causal_lm_loss` (never holding the logits) and
scores the held-out split.

The pipeline, each step deterministic and cached by checksum under the data folder:

1. The training split's documents, in a fixed shuffled order (seed 0): the first
   ``pretrain_documents`` are the *pretraining* part, the next ``max_train`` the runs'
   training documents. The test split's first ``max_test`` (same fixed order) are held out.
2. A byte-level BPE tokenizer (the ``tokenizers`` package: Hugging Face's Rust
   implementation, the one GPT-2 style models use) with ``vocab_size`` tokens, trained on the
   pretraining part only, so no text that a run trains or is scored on shaped the vocabulary.
   Cached as ``cache/lm/bpe-<vocab>-<checksum of the documents>.json``.
3. Each part becomes one token stream (documents separated by ``<|endoftext|>``) cut into
   rows of ``block`` tokens (the remainder dropped); a row predicts its tokens 2..block.
4. The model: Transformers' ``LlamaForCausalLM`` with a tiny configuration (a standard
   decoder, already supported by the Transformers integration, so no new model code), tied
   input and output embeddings. ``init="pretrained"`` (the fine-tuning setting) starts every
   run from one cross-entropy model trained on the pretraining part (cached by the checksum
   of its tokens, configuration and recipe); ``init="scratch"`` from the run's seed.

Every run records, on the held-out split: ``eval_cross_entropy`` (mean next-token
cross-entropy, whatever loss trained the model), ``eval_perplexity`` (its exp; lower is
better), ``eval_accuracy`` (next-token top-1 accuracy), ECE and Brier of the next-token
distribution. A *sample* is one predicted token: the sample ids of a run are its target
tokens, so a tuned protocol's "most correct validation predictions" counts tokens exactly.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from losslab.experiments.classification.trial.training import PreparedData, TrainingSettings

if TYPE_CHECKING:
    import tokenizers

MODEL_FAMILY = "causal-lm"
END_OF_TEXT = "<|endoftext|>"
# Bumped when the tokenizer or pretraining recipe changes: old cache files are then unused.
_RECIPE = 1
# Bumped when the pretraining's numerics change (2: linear_loss forms cross-entropy's gradient
# in the logits' buffer, equal to float rounding, not bit for bit), so a cached checkpoint is
# always the one this code trains.
_PRETRAIN_RECIPE = 2
# The architecture options and their defaults (documented on LanguageModelSource).
ARCHITECTURE: dict[str, Any] = {"vocab_size": 1024, "block": 64, "hidden_size": 64, "layers": 2,
                                "heads": 4, "intermediate_size": 256}
PRETRAINING: dict[str, Any] = {"pretrain_documents": 3000, "pretrain_epochs": 2, "pretrain_lr": 3e-3,
                               "pretrain_batch_size": 32}
_INITS = ("scratch", "pretrained")


def require_hf() -> None:
    """Fail with the install command when the ``hf`` extra (Transformers, tokenizers) is missing."""
    import importlib.util

    missing = [name for name in ("transformers", "tokenizers")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"language-model tasks need {', '.join(missing)}: pip install 'losslab[hf]'")


def _digest(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


def bpe_tokenizer(texts: list[str], *, vocab_size: int, cache_dir: str | Path) -> tokenizers.Tokenizer:
    """A byte-level BPE tokenizer of ``vocab_size`` tokens trained on ``texts`` (cached).

    The file is ``cache_dir/bpe-<vocab_size>-<checksum>.json``, the checksum covering the
    texts, the vocabulary size and the recipe: the same texts load the same tokenizer again
    without training; other texts never reuse it. ``<|endoftext|>`` is token 0.
    """
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from losslab._paths import ensure_folder, inside, write_text

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size: expected an integer >= 300 (256 bytes plus merges), got {vocab_size!r}")
    folder = ensure_folder(cache_dir, option="cache_dir")
    key = _digest("bpe", _RECIPE, vocab_size, tokenizers.__version__, *texts)
    path = inside(folder, f"bpe-{vocab_size}-{key}.json")
    if path.is_file():
        try:
            cached = tokenizers.Tokenizer.from_file(str(path))
            if cached.token_to_id(END_OF_TEXT) == 0 and cached.get_vocab_size() <= vocab_size:
                return cached
        except Exception:  # a damaged cache file is retrained, never trusted
            pass
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    write_text(path, tokenizer.to_str())
    return tokenizer


def pack_blocks(tokenizer: tokenizers.Tokenizer, texts: list[str], block: int) -> Tensor:
    """The texts as one token stream (each followed by ``<|endoftext|>``) cut into rows of
    ``block`` tokens, the incomplete last row dropped: a ``(rows, block)`` long tensor."""
    end = tokenizer.token_to_id(END_OF_TEXT)
    stream: list[int] = []
    for encoding in tokenizer.encode_batch(texts):
        stream.extend(encoding.ids)
        stream.append(end)
    rows = len(stream) // block
    if rows == 0:
        raise ValueError(f"texts: {len(texts)} document(s) give {len(stream)} tokens, fewer than one "
                         f"row of block={block}; use more documents (max_train/max_test) or a smaller block")
    return torch.tensor(stream[:rows * block], dtype=torch.long).reshape(rows, block)


def unigram_perplexity(train: Tensor, held_out: Tensor, vocab_size: int) -> float:
    """Perplexity on ``held_out``'s predicted tokens (positions 2..block of each row) of the
    add-one-smoothed unigram distribution of ``train``'s predicted tokens: the score of a
    model that ignores the context, which a language model must beat."""
    counts = torch.bincount(train[:, 1:].reshape(-1), minlength=vocab_size).double() + 1.0
    log_p = counts.log() - counts.sum().log()
    return math.exp(-float(log_p[held_out[:, 1:].reshape(-1)].mean()))


def build_causal_lm(*, vocab_size: int, block: int, hidden_size: int, layers: int, heads: int,
                    intermediate_size: int, checkpoint: str | None = None) -> nn.Module:
    """A tiny ``LlamaForCausalLM`` (tied embeddings, no dropout), from ``checkpoint`` (a
    state-dict file) when given, else initialised from torch's current seed."""
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=block, tie_word_embeddings=True, attn_implementation="sdpa",
        bos_token_id=None, eos_token_id=0, pad_token_id=None)
    model = transformers.LlamaForCausalLM(config)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


@dataclass(frozen=True)
class CausalLMObjective:
    """Trains a causal LM with any multiclass loss through
    :func:`~losslab.integrations.transformers.causal_lm_loss` and scores next-token
    prediction (see :class:`.training.Objective`).

    Attributes:
        eval_tokens: positions scored per chunk (the held-out logits exist one chunk at a time).
    """

    eval_tokens: int = 4096

    def batch_loss(self, model: nn.Module, loss: str, loss_options: dict[str, Any],
                   inputs: Tensor, targets: Tensor) -> tuple[Tensor, float]:
        from losslab.functional import linear_loss
        from losslab.integrations.transformers import causal_lm_inputs

        hidden, weight, bias, target = causal_lm_inputs(model, inputs, targets)
        value = linear_loss(hidden, weight, target, loss=loss, bias=bias, **loss_options)
        with torch.no_grad():  # top-1 accuracy, a chunk of logits at a time
            correct = sum(int((nn.functional.linear(h, weight, bias).argmax(1) == t).sum())
                          for h, t in zip(hidden.detach().split(self.eval_tokens), target.split(self.eval_tokens)))
        return value, correct / target.numel()

    def evaluate(self, model: nn.Module, loss: str, loss_options: dict[str, Any],
                 data: PreparedData, settings: TrainingSettings, device: torch.device) -> dict[str, Any]:
        from losslab.experiments.classification.trial.metrics import MetricAccumulator
        from losslab.functional import linear_loss
        from losslab.integrations.transformers import causal_lm_inputs

        model.eval()
        accumulator = MetricAccumulator(data.num_classes)
        loss_sum = 0.0
        rows = max(1, self.eval_tokens // max(1, data.x_eval.shape[1] - 1))
        with torch.no_grad():
            for start in range(0, data.x_eval.shape[0], rows):
                tokens = data.x_eval[start:start + rows].to(device)
                hidden, weight, bias, target = causal_lm_inputs(model, tokens, tokens)
                loss_sum += float(linear_loss(hidden, weight, target, loss=loss, bias=bias,
                                              reduction="sum", **loss_options))
                accumulator.update(nn.functional.linear(hidden, weight, bias).float(), target)
        scores = accumulator.result()
        return {
            "eval_loss": loss_sum / accumulator.count, "eval_accuracy": scores["accuracy"],
            "eval_cross_entropy": scores["nll"], "eval_perplexity": scores["perplexity"],
            "eval_macro_f1": scores["macro_f1"], "eval_balanced_accuracy": scores["balanced_accuracy"],
            "eval_ece": scores["ece"], "eval_brier": scores["brier"],
            "reliability": accumulator.reliability(),
        }


def _token_ids(rows: np.ndarray, block: int, offset: int = 0) -> np.ndarray:
    """The sample ids of the predicted tokens of ``rows`` (``block - 1`` per row)."""
    per_row = block - 1
    return offset + (np.asarray(rows, dtype=np.int64)[:, None] * per_row + np.arange(per_row)).reshape(-1)


def _fixed_order(n: int) -> np.ndarray:
    # One order of a split for every run, stage and setting (not the run's seed).
    return np.random.default_rng(0).permutation(n)


def pretrained_checkpoint(blocks: Tensor, architecture: dict[str, Any], *, epochs: int, lr: float,
                          batch_size: int, cache_dir: str | Path, seed: int = 0) -> Path:
    """The state-dict file of a cross-entropy model trained on ``blocks`` (cached by checksum).

    Adam at a constant ``lr``, the batch order of epoch ``e`` drawn from ``(seed, e)``,
    deterministic algorithms: the same tokens, architecture and recipe give the same file,
    which every fine-tuning run (and worker) then loads.
    """
    from losslab._paths import ensure_folder, inside, write_bytes
    from losslab.integrations.transformers import causal_lm_loss

    folder = ensure_folder(cache_dir, option="cache_dir")
    key = _digest("pretrain", _RECIPE, _PRETRAIN_RECIPE, sorted(architecture.items()), epochs, lr, batch_size, seed,
                  torch.__version__, blocks.numpy().tobytes())
    path = inside(folder, f"pretrained-{key}.pt")
    if path.is_file():
        return path
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = build_causal_lm(**architecture).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(blocks.shape[0], generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
            for start in range(0, order.numel(), batch_size):
                batch = blocks[order[start:start + batch_size]]
                value = causal_lm_loss(model, batch, batch)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
    finally:
        torch.use_deterministic_algorithms(previous)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_bytes(path, buffer.getvalue())
    return path


@dataclass
class LanguageModelSource:
    """A text data set of :func:`losslab.data.load_dataset` as a language-model task (picklable).

    ``model_options``: the architecture (``vocab_size`` 1024, ``block`` 64 tokens per row,
    ``hidden_size`` 64, ``layers`` 2, ``heads`` 4, ``intermediate_size`` 256), ``init``
    (``"scratch"`` or ``"pretrained"``) and the shared pretraining (``pretrain_documents``
    3000, ``pretrain_epochs`` 2, ``pretrain_lr`` 3e-3, ``pretrain_batch_size`` 32).
    ``options``: ``max_train`` (training documents of the runs, after the pretraining part;
    None: all the rest) and ``max_test`` (held-out documents; None: the whole test split).
    """

    dataset: str
    model_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    root: str | None = None
    cache_dir: str | None = None
    validation: Any = None  # a splits.ValidationSplit: what stage "sweep" trains and scores on

    def __post_init__(self) -> None:
        known = {*ARCHITECTURE, *PRETRAINING, "init"}
        unknown = sorted(set(self.model_options) - known)
        if unknown:
            raise ValueError(f"model_options: unknown option(s) {', '.join(unknown)} of a language-model "
                             f"task; valid: {', '.join(sorted(known))}")
        if self.model_options.get("init", "scratch") not in _INITS:
            raise ValueError(f"init: expected one of {', '.join(_INITS)}, got {self.model_options['init']!r}")
        unknown = sorted(set(self.options) - {"max_train", "max_test"})
        if unknown:
            raise ValueError(f"options: unknown option(s) {', '.join(unknown)}; valid: max_train, max_test")

    @property
    def model(self) -> str:
        """The model family (for listings): a causal language model."""
        return MODEL_FAMILY

    def settings(self) -> dict[str, Any]:
        """Every model option with its default filled in."""
        return {**ARCHITECTURE, **PRETRAINING, "init": "scratch", **self.model_options}

    def config(self) -> dict[str, Any]:
        from losslab.experiments.classification.planning.config import jsonable

        config: dict[str, Any] = {"dataset": self.dataset, "model": MODEL_FAMILY,
                                  "model_options": jsonable(self.settings()),
                                  "options": jsonable(self.options)}
        if self.validation is not None:
            config["validation"] = self.validation.config()
        return config

    def _cache(self) -> Path:
        from losslab.data import data_dir

        return Path(self.cache_dir) if self.cache_dir is not None else data_dir(self.root) / "cache" / "lm"

    def prepare(self, stage: str) -> PreparedData:
        """Token rows and a model factory for ``stage``; memoised in this process.

        ``"test"``: the runs' training documents, scored on the held-out documents.
        ``"sweep"``: the runs' training rows cut (seeded, by ``validation``) into a part to
        train on and a validation part; the test split is never read.
        """
        if stage not in ("test", "sweep"):
            raise ValueError(f"stage: expected 'test' or 'sweep', got {stage!r}")
        if stage == "sweep" and self.validation is None:
            raise ValueError("stage: 'sweep' needs a validation split (LanguageModelSource.validation)")
        memo = self.__dict__.setdefault("_prepared", {})
        if stage not in memo:
            memo[stage] = self._prepare(stage)
        return memo[stage]

    def _prepare(self, stage: str) -> PreparedData:
        from losslab.data import load_dataset

        require_hf()
        settings = self.settings()
        data = load_dataset(self.dataset, root=self.root, path=self.path)
        if data.kind != "text":
            raise ValueError(f"dataset: a language-model task needs a text data set, got {data.kind} "
                             f"data {self.dataset!r}")
        documents = [str(text) for text in data.x_train]
        order = _fixed_order(len(documents))
        n_pretrain = int(settings["pretrain_documents"])
        max_train = self.options.get("max_train")
        if n_pretrain >= len(documents):
            raise ValueError(f"pretrain_documents: {n_pretrain} leaves none of the {len(documents)} "
                             "training documents for the runs")
        pretrain_texts = [documents[i] for i in order[:n_pretrain]]
        run_order = order[n_pretrain:] if max_train is None else order[n_pretrain:n_pretrain + int(max_train)]
        run_texts = [documents[i] for i in run_order]
        cache = self._cache()
        vocab_size, block = int(settings["vocab_size"]), int(settings["block"])
        tokenizer = bpe_tokenizer(pretrain_texts, vocab_size=vocab_size, cache_dir=cache)
        vocab = tokenizer.get_vocab_size()
        train_rows = pack_blocks(tokenizer, run_texts, block)
        if stage == "test":
            test = [str(text) for text in data.x_test]
            test_order = _fixed_order(len(test))
            if self.options.get("max_test") is not None:
                test_order = test_order[:int(self.options["max_test"])]
            eval_rows = pack_blocks(tokenizer, [test[i] for i in test_order], block)
            train_ids = _token_ids(np.arange(len(train_rows)), block)
            eval_ids = _token_ids(np.arange(len(eval_rows)), block, offset=len(train_ids))
            eval_split = "test"
        else:
            picked = np.random.default_rng(self.validation.seed).permutation(len(train_rows))
            n_val = max(1, round(self.validation.fraction * len(train_rows)))
            fit, validation = np.sort(picked[n_val:]), np.sort(picked[:n_val])
            train_rows, eval_rows = train_rows[torch.as_tensor(fit)], train_rows[torch.as_tensor(validation)]
            train_ids, eval_ids = _token_ids(fit, block), _token_ids(validation, block)
            eval_split = "validation"
        architecture = {"vocab_size": vocab, "block": block,
                        **{k: int(settings[k]) for k in ("hidden_size", "layers", "heads", "intermediate_size")}}
        checkpoint = None
        if settings["init"] == "pretrained":
            pretrain_rows = pack_blocks(tokenizer, pretrain_texts, block)
            checkpoint = str(pretrained_checkpoint(
                pretrain_rows, architecture, epochs=int(settings["pretrain_epochs"]),
                lr=float(settings["pretrain_lr"]), batch_size=int(settings["pretrain_batch_size"]),
                cache_dir=cache))
        info = {"dataset": data.name, "source": data.source, "vocab_size": vocab, "block": block,
                "train_size": len(train_ids), "test_size": len(eval_ids),
                "train_documents": len(run_texts), "pretrain_documents": n_pretrain,
                "unigram_perplexity": unigram_perplexity(train_rows, eval_rows, vocab)}
        factory = functools.partial(build_causal_lm, **architecture, checkpoint=checkpoint)
        return PreparedData(train_rows, train_rows, eval_rows, eval_rows, vocab, factory,
                            eval_split=eval_split, info=info, train_ids=train_ids, eval_ids=eval_ids,
                            objective=CausalLMObjective())

    def __getstate__(self) -> dict[str, Any]:  # workers prepare their own tensors
        return {k: v for k, v in self.__dict__.items() if k != "_prepared"}
