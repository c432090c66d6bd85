"""Text models: a regex tokenizer, a vocabulary, and the paper's embedding + LSTM classifier."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

# Words (letters/digits, with inner apostrophes: "don't") and single punctuation marks that
# carry sentiment ("!", "?"). Lower-cased first, so the vocabulary is case-blind.
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (HTML line breaks removed), plus ``!`` and ``?``."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return _TOKEN.findall(text.replace("<br />", " ").lower())


class Vocabulary:
    """Maps tokens to ids: ``0`` is padding, ``1`` unknown, then tokens by falling frequency.

    Args:
        min_freq: keep tokens seen at least this many times.
        max_size: keep at most this many tokens (besides pad and unk); ``None`` for all.

    Build it on the training texts only, with :meth:`fit`.
    """

    PAD, UNK = 0, 1
    PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"

    def __init__(self, *, min_freq: int = 1, max_size: int | None = 20_000) -> None:
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be a positive integer, got {min_freq!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise ValueError(f"max_size must be a positive integer or None, got {max_size!r}")
        self.min_freq = min_freq
        self.max_size = max_size
        self.itos: list[str] = [self.PAD_TOKEN, self.UNK_TOKEN]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    def fit(self, texts: Iterable[str]) -> Vocabulary:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(tokenize(text))
        # Ties broken alphabetically so the vocabulary does not depend on text order.
        ranked = sorted(
            (t for t, c in counts.items() if c >= self.min_freq), key=lambda t: (-counts[t], t)
        )
        if self.max_size is not None:
            ranked = ranked[: self.max_size]
        self.itos = [self.PAD_TOKEN, self.UNK_TOKEN, *ranked]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        return self

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, texts: Sequence[str], *, max_length: int = 200) -> np.ndarray:
        """int64 ``(len(texts), max_length)``: token ids, cut after ``max_length`` tokens and
        right-padded with ``PAD``. Unknown tokens map to ``UNK``."""
        if isinstance(texts, str):
            raise TypeError("encode expects a sequence of texts, got a single str")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
        ids = np.full((len(texts), max_length), self.PAD, dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = tokenize(text)[:max_length]
            ids[row, : len(tokens)] = [self.stoi.get(t, self.UNK) for t in tokens]
        return ids


class LSTMClassifier(nn.Module):
    """Embedding -> spatial dropout -> LSTM -> dense: the paper's CFPB complaints model.

    Spatial dropout drops whole embedding channels (the same ones at every time step of a
    sequence), as Keras' ``SpatialDropout1D``. The LSTM reads the sequence up to its last
    real token (padding id 0 is skipped via packing), and its final hidden state feeds a
    linear layer.

    Args:
        vocab_size: number of token ids (``len(vocabulary)``), padding id 0 included.
        num_classes: number of output scores.
        embed_dim: embedding width (paper: 100).
        hidden: LSTM hidden size (paper: 100).
        spatial_dropout: probability of dropping an embedding channel (paper: 0.2).

    Shape:
        - Input: ``(N, L)`` int64 token ids, right-padded with 0.
        - Output: ``(N, num_classes)`` logits.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        embed_dim: int = 100,
        hidden: int = 100,
        spatial_dropout: float = 0.2,
    ) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes),
                            ("embed_dim", embed_dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= spatial_dropout < 1:
            raise ValueError(f"spatial_dropout must be in [0, 1), got {spatial_dropout!r}")
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=Vocabulary.PAD)
        # Dropout2d on (N, C, L, 1) zeroes whole channels: spatial dropout for sequences.
        self.spatial_dropout = nn.Dropout2d(spatial_dropout)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.output = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"LSTMClassifier expects int64 token ids of shape (N, L), got dtype "
                f"{ids.dtype} and shape {tuple(ids.shape)}"
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size - 1}], got "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        embedded = self.embedding(ids)  # (N, L, E)
        embedded = self.spatial_dropout(embedded.transpose(1, 2).unsqueeze(-1))
        embedded = embedded.squeeze(-1).transpose(1, 2)
        # Length = position of the last non-pad token + 1; empty texts keep one (pad) step.
        nonpad = ids != Vocabulary.PAD
        positions = torch.arange(1, ids.shape[1] + 1, device=ids.device)
        lengths = (nonpad * positions).amax(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            embedded, lengths, batch_first=True, enforce_sorted=False
        )
        _, (final_hidden, _) = self.lstm(packed)
        return self.output(final_hidden[-1])
