"""losslab.integrations.transformers: the causal-LM loss without logits, and LosslabTrainer.

Every model is a tiny random-initialised Llama or GPT-2 built from a configuration (no
download). Equalities with the model's own loss are checked in float64 to 1e-10 relative
(the sums differ only in order); the training checks run a few float32 Trainer steps.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")

from losslab.integrations.transformers import LosslabTrainer, causal_lm_loss  # noqa: E402

VOCAB = 128
PAPER_LOSSES = ("cross_entropy", "m", "full_m", "l", "full_l", "softmax_focal", "poly1")


def tiny_model(kind: str, *, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            attn_implementation="eager", pad_token_id=0, tie_word_embeddings=False)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4,
                                         n_positions=64, attn_implementation="eager",
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = transformers.GPT2LMHeadModel(config)
    return model.to(dtype).eval()


def tokens(batch: int, length: int, *, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(left: dict, right: dict, *, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    assert left.keys() == right.keys() and left
    for name in left:
        torch.testing.assert_close(left[name], right[name], rtol=rtol, atol=atol, msg=name)


def naive_loss(model, input_ids, labels, attention_mask=None, *, num_items_in_batch=None):
    """The float64 reference: the full logits, shifted, then torch's cross-entropy."""
    logits = model(input_ids, attention_mask=attention_mask).logits[:, :-1].reshape(-1, VOCAB)
    target = labels[:, 1:].reshape(-1)
    if num_items_in_batch is None:
        return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
    return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100,
                                             reduction="sum") / num_items_in_batch


def compare_with_references(model, input_ids, labels, attention_mask=None, **options):
    """causal_lm_loss against the float64 naive path (to 1e-12) and against the model's own
    ``.loss``, which Transformers computes from logits cast to float32 (so to 1e-6)."""
    reference = naive_loss(model, input_ids, labels, attention_mask)
    reference.backward()
    expected = gradients(model)
    model.zero_grad()
    own = model(input_ids, attention_mask=attention_mask, labels=labels).loss
    own.backward()
    own_gradients = gradients(model)
    model.zero_grad()
    ours = causal_lm_loss(model, input_ids, labels, attention_mask=attention_mask, **options)
    ours.backward()
    ours_gradients = gradients(model)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=0.0)
    assert_same_gradients(ours_gradients, expected)
    torch.testing.assert_close(ours.float(), own, rtol=1e-6, atol=0.0)
    assert_same_gradients(ours_gradients, own_gradients, rtol=1e-5, atol=1e-7)
    return ours


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_cross_entropy_equals_the_models_own_loss_and_gradients(kind):
    model = tiny_model(kind)
    input_ids = tokens(3, 12)
    ours = compare_with_references(model, input_ids, input_ids, chunk_size=7)
    with torch.no_grad():  # the loss by hand from the model's logits: log-softmax, gather, mean
        logits = model(input_ids).logits[:, :-1].reshape(-1, VOCAB)
        by_hand = -torch.log_softmax(logits, 1).gather(1, input_ids[:, 1:].reshape(-1, 1)).mean()
    torch.testing.assert_close(ours.detach(), by_hand, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_padding_attention_mask_and_ignored_labels(kind):
    model = tiny_model(kind)
    input_ids = tokens(3, 10, seed=2)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 7:] = 0  # right padding of different lengths
    attention_mask[2, 4:] = 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    labels[1, :5] = -100  # a prompt that is not predicted
    ours = compare_with_references(model, input_ids, labels, attention_mask)
    with torch.no_grad():  # the ignored positions count nowhere: the mean over the kept ones
        logits = model(input_ids, attention_mask=attention_mask).logits[:, :-1].reshape(-1, VOCAB)
        target = labels[:, 1:].reshape(-1)
        kept = target != -100
        by_hand = -torch.log_softmax(logits[kept], 1).gather(1, target[kept, None]).mean()
    assert int(kept.sum()) == 6 + 5 + 3  # targets kept: tokens 1-6, 5-9 and 1-3 of the rows
    torch.testing.assert_close(ours.detach(), by_hand, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("loss", ["cross_entropy", "full_l"])
def test_accumulated_micro_batches_equal_the_large_batch(kind, loss):
    model = tiny_model(kind)
    input_ids = tokens(4, 9, seed=3)
    labels = input_ids.clone()
    labels[0, 2:] = -100  # micro-batches with very different numbers of kept targets
    labels[1, :3] = -100
    large = causal_lm_loss(model, input_ids, labels, loss=loss)
    large.backward()
    expected = gradients(model)
    model.zero_grad()
    count = labels[:, 1:].ne(-100).sum()
    total = 0.0
    for rows in (slice(0, 2), slice(2, 4)):
        part = causal_lm_loss(model, input_ids[rows], labels[rows], loss=loss, num_items_in_batch=count)
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(total, large.detach(), rtol=1e-12, atol=0.0)
    assert_same_gradients(gradients(model), expected)
    if loss == "cross_entropy":  # Transformers' own contract (float32 logits) gives the same sum
        own = sum(model(input_ids[r], labels=labels[r], num_items_in_batch=count).loss.detach()
                  for r in (slice(0, 2), slice(2, 4)))
        torch.testing.assert_close(own, large.detach().float(), rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("loss", PAPER_LOSSES)
def test_every_loss_equals_the_naive_path_through_the_logits(loss):
    from losslab.registry import get_loss

    model = tiny_model("llama")
    input_ids = tokens(2, 9, seed=7)
    labels = input_ids.clone()
    labels[1, :4] = -100
    logits = model(input_ids).logits[:, :-1].reshape(-1, VOCAB)
    reference = get_loss(loss)(logits, labels[:, 1:].reshape(-1))
    reference.backward()
    expected = gradients(model)
    model.zero_grad()
    ours = causal_lm_loss(model, input_ids, labels, loss=loss, chunk_size=5)
    ours.backward()
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=0.0)
    assert_same_gradients(gradients(model), expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_under_bf16_autocast_it_matches_the_models_own_loss(kind):
    model = tiny_model(kind, dtype=torch.float32)
    input_ids = tokens(2, 12, seed=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        own = model(input_ids, labels=input_ids).loss
        ours = causal_lm_loss(model, input_ids, input_ids)
    assert ours.dtype == torch.float32
    # both round the hidden states and the output layer to bf16 (8 bits of mantissa)
    torch.testing.assert_close(ours, own, rtol=2e-2, atol=0.0)
    with torch.no_grad():
        exact = causal_lm_loss(model, input_ids, input_ids)
    torch.testing.assert_close(ours.detach(), exact, rtol=3e-2, atol=0.0)


def test_options_reach_the_loss():
    from losslab.functional import linear_loss

    model = tiny_model("llama")
    input_ids = tokens(2, 8, seed=4)
    hidden = model.model(input_ids).last_hidden_state[:, :-1].reshape(-1, 32)
    expected = linear_loss(hidden, model.lm_head.weight, input_ids[:, 1:].reshape(-1),
                           loss="softmax_focal", gamma=3.0)
    ours = causal_lm_loss(model, input_ids, input_ids, loss="softmax_focal", gamma=3.0)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0.0)
    plain = causal_lm_loss(model, input_ids, input_ids, loss="softmax_focal")
    assert abs(float(plain.detach()) - float(ours.detach())) > 1e-6  # gamma 2 (the default) differs from 3


def test_bad_input_is_named():
    model = tiny_model("gpt2")
    input_ids = tokens(2, 8)
    with pytest.raises(ValueError, match=r"labels: expected shape \(2, 8\).*got \(2, 7\)"):
        causal_lm_loss(model, input_ids, input_ids[:, :7])
    with pytest.raises(TypeError, match="input_ids: expected an integer tensor, got dtype torch.float32"):
        causal_lm_loss(model, input_ids.float(), input_ids)
    with pytest.raises(ValueError, match=r"input_ids: expected shape \(batch, sequence\)"):
        causal_lm_loss(model, input_ids[:, :1], input_ids[:, :1])
    with pytest.raises(ValueError, match="num_items_in_batch: expected a positive count, got 0"):
        causal_lm_loss(model, input_ids, input_ids, num_items_in_batch=0)
    with pytest.raises(ValueError, match="model: expected a \\*ForCausalLM model"):
        causal_lm_loss(model.transformer, input_ids, input_ids)
    with pytest.raises(TypeError, match="reduction: causal_lm_loss always averages"):
        causal_lm_loss(model, input_ids, input_ids, reduction="sum")
    capped = tiny_model("gpt2")
    capped.config.final_logit_softcapping = 30.0
    with pytest.raises(ValueError, match=r"config.final_logit_softcapping=30.0"):
        causal_lm_loss(capped, input_ids, input_ids)


# --- LosslabTrainer ---------------------------------------------------------------------------


class _Rows(torch.utils.data.Dataset):
    def __init__(self, input_ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.input_ids, self.labels = input_ids, labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "labels": self.labels[i]}


def _arguments(tmp_path, **changes):
    settings = {"output_dir": str(tmp_path), "report_to": [], "use_cpu": True, "save_strategy": "no",
                "logging_strategy": "no", "disable_tqdm": True, "seed": 0, "data_seed": 0,
                "dataloader_num_workers": 0, **changes}
    return transformers.TrainingArguments(**settings)


def test_trainer_gradient_accumulation_equals_one_large_batch(tmp_path):
    input_ids = tokens(4, 10, seed=5)
    labels = input_ids.clone()
    labels[0, 3:] = -100  # the two micro-batches keep 2 + 9 and 9 + 9 targets
    data = _Rows(input_ids, labels)
    finals = []
    for batch, accumulate in ((4, 1), (2, 2)):
        model = tiny_model("llama", dtype=torch.float64).train()
        trainer = LosslabTrainer(model=model, args=_arguments(
            tmp_path / f"b{batch}", per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulate, max_steps=1, learning_rate=0.5, optim="sgd",
            lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0),
            train_dataset=data, loss="full_l")
        trainer.train()
        finals.append({name: p.detach().clone() for name, p in model.named_parameters()})
    start = dict(tiny_model("llama", dtype=torch.float64).named_parameters())
    moved = max(float((finals[0][n] - start[n].detach()).abs().max()) for n in start)
    assert moved > 1e-4  # the step did change the weights
    for name in finals[0]:
        torch.testing.assert_close(finals[1][name], finals[0][name], rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("loss", PAPER_LOSSES)
def test_trainer_steps_reduce_each_loss(tmp_path, loss):
    input_ids = tokens(8, 16, seed=6)
    model = tiny_model("gpt2", dtype=torch.float32).train()

    def objective() -> float:
        with torch.no_grad():
            return float(causal_lm_loss(model.eval(), input_ids, input_ids, loss=loss))

    before = objective()
    trainer = LosslabTrainer(model=model.train(), args=_arguments(
        tmp_path, per_device_train_batch_size=4, max_steps=12, learning_rate=1e-2,
        lr_scheduler_type="constant", warmup_steps=0), train_dataset=_Rows(input_ids, input_ids),
        loss=loss)
    trainer.train()
    after = objective()
    assert after < 0.9 * before, (loss, before, after)


def test_trainer_needs_labels(tmp_path):
    model = tiny_model("gpt2", dtype=torch.float32)
    trainer = LosslabTrainer(model=model, args=_arguments(tmp_path), loss="m")
    with pytest.raises(ValueError, match="inputs: LosslabTrainer needs batches with 'input_ids' and 'labels'"):
        trainer.compute_loss(model, {"input_ids": tokens(2, 6)})
    with pytest.raises(TypeError, match="loss_options: expected a mapping"):
        LosslabTrainer(model=model, args=_arguments(tmp_path), loss="m", loss_options=[1])
