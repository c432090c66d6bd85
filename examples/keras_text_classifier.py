"""The paper's text classifier in Keras 3 (embedding + LSTM(100)), trained with each loss.

Noel et al. (arXiv:2303.09935) compare cross-entropy with M, full M, L and full L on text
classification with an embedding + LSTM(100) network, in Keras. This script does the same with
:mod:`losslab.keras` on a registry data set, on any Keras backend, in a few seconds on a CPU:

    python examples/keras_text_classifier.py                       # torch backend
    KERAS_BACKEND=jax python examples/keras_text_classifier.py     # JAX backend
    python examples/keras_text_classifier.py --max-train 4000 --epochs 3 --length 64

On Keras' torch backend without a GPU the LSTM runs step by step in Python, hence the small
defaults (500 training texts, 32 tokens, one epoch: a few seconds per loss); the JAX backend
compiles the recurrence and is faster for longer runs.

Data: ``--dataset`` names a text set of :mod:`losslab.data` (``rotten-tomatoes``,
``newsgroups``, ``clothing-reviews``; fetch one once with ``losslab data fetch NAME``). Nothing
is downloaded here: when the set is not on disk the script says how to get it and uses
``synthetic``, a small three-class review set generated in place (no network, deterministic).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter

import numpy as np

LOSSES = ("cross_entropy", "m", "full_m", "l", "full_l")
CLASS_NAMES = {
    "m": "SparseCategoricalMLoss",
    "full_m": "SparseCategoricalFullMLoss",
    "l": "SparseCategoricalLLoss",
    "full_l": "SparseCategoricalFullLLoss",
}


def synthetic_reviews(n: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """``n`` short reviews in three classes (negative, neutral, positive), with label noise."""
    rng = np.random.default_rng(seed)
    cue = {
        0: "awful boring dull terrible waste weak bland clumsy tedious poor".split(),
        1: "fine average okay decent ordinary passable standard plain modest fair".split(),
        2: "great superb moving brilliant delightful sharp witty gripping lovely strong".split(),
    }
    filler = ("the film story cast plot director script ending scenes music actors it was "
              "and but with a of this that its an").split()
    texts, labels = [], rng.integers(0, 3, size=n)
    for label in labels:
        words = list(rng.choice(filler, size=rng.integers(8, 20)))
        for _ in range(rng.integers(1, 4)):  # a few cue words, sometimes from another class
            source = label if rng.random() > 0.15 else rng.integers(0, 3)
            words.insert(rng.integers(0, len(words) + 1), str(rng.choice(cue[int(source)])))
        texts.append(" ".join(words))
    return texts, labels.astype(np.int64), ["negative", "neutral", "positive"]


def load_text_data(name: str, max_train: int, max_test: int, seed: int):
    """(x_train, y_train, x_test, y_test, classes, description): never downloads."""
    if name != "synthetic":
        from losslab.data import DatasetUnavailableError, load_dataset

        try:
            data = load_dataset(name, download=False, max_train=max_train, max_test=max_test,
                                subsample_seed=seed)
        except DatasetUnavailableError as error:
            print(f"{error}\n-> using the synthetic set instead", file=sys.stderr)
        else:
            if data.kind != "text":
                raise SystemExit(f"--dataset: expected a text data set, {name!r} holds {data.kind}")
            return (list(data.x_train), data.y_train, list(data.x_test), data.y_test,
                    data.classes, f"{name} ({data.source})")
    texts, labels, classes = synthetic_reviews(max_train + max_test, seed)
    return (texts[:max_train], labels[:max_train], texts[max_train:], labels[max_train:],
            classes, "synthetic three-class reviews")


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def build_vocabulary(texts: list[str], size: int) -> dict[str, int]:
    """Word -> id for the ``size - 2`` most frequent training words (0 pads, 1 is unknown)."""
    counts = Counter(word for text in texts for word in tokenize(text))
    return {word: i + 2 for i, (word, _) in enumerate(counts.most_common(size - 2))}


def encode(texts: list[str], vocabulary: dict[str, int], length: int) -> np.ndarray:
    ids = np.zeros((len(texts), length), dtype=np.int32)
    for row, text in enumerate(texts):
        tokens = [vocabulary.get(word, 1) for word in tokenize(text)][:length]
        ids[row, : len(tokens)] = tokens
    return ids


def make_loss(name: str):
    import keras

    import losslab.keras

    if name == "cross_entropy":
        return keras.losses.SparseCategoricalCrossentropy()
    return getattr(losslab.keras, CLASS_NAMES[name])()


def build_model(vocabulary_size: int, num_classes: int, embedding_dim: int):
    """The paper's network: Embedding -> LSTM(100) -> Dense(softmax), probabilities out."""
    import keras

    return keras.Sequential([
        keras.layers.Embedding(vocabulary_size, embedding_dim),
        keras.layers.LSTM(100),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="rotten-tomatoes",
                        help="a losslab.data text set, or 'synthetic' (default: rotten-tomatoes, "
                             "else synthetic)")
    parser.add_argument("--losses", default=",".join(LOSSES),
                        help=f"comma-separated, from {', '.join(LOSSES)}")
    parser.add_argument("--max-train", type=int, default=500)
    parser.add_argument("--max-test", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--vocabulary", type=int, default=5000)
    parser.add_argument("--length", type=int, default=32, help="tokens kept per text")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    losses = [name.strip() for name in args.losses.split(",") if name.strip()]
    unknown = [name for name in losses if name not in LOSSES]
    if unknown:
        parser.error(f"--losses: unknown {', '.join(unknown)}; choose from {', '.join(LOSSES)}")

    os.environ.setdefault("KERAS_BACKEND", "torch")  # torch comes with losslab
    import keras

    x_train, y_train, x_test, y_test, classes, description = load_text_data(
        args.dataset, args.max_train, args.max_test, args.seed)
    vocabulary = build_vocabulary(x_train, args.vocabulary)
    train_ids = encode(x_train, vocabulary, args.length)
    test_ids = encode(x_test, vocabulary, args.length)
    print(f"data: {description}; {len(train_ids)} train / {len(test_ids)} test texts, "
          f"{len(classes)} classes; keras {keras.__version__} on {keras.backend.backend()}")

    results = []
    for name in losses:
        keras.utils.set_random_seed(args.seed)  # the same initial weights for every loss
        model = build_model(len(vocabulary) + 2, len(classes), args.embedding_dim)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=make_loss(name),
                      metrics=["accuracy"])
        start = time.perf_counter()
        history = model.fit(train_ids, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            verbose=0)
        seconds = time.perf_counter() - start
        _, accuracy = model.evaluate(test_ids, y_test, batch_size=256, verbose=0)
        results.append({"loss": name, "train_loss": float(history.history["loss"][-1]),
                        "test_accuracy": float(accuracy), "seconds": seconds})
        print(f"{name:>14}: final train loss {results[-1]['train_loss']:.4f}, "
              f"test accuracy {accuracy:.3f} ({seconds:.1f} s)")
    return results


if __name__ == "__main__":
    main()
