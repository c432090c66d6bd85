"""Hugging Face Transformers: causal language-model losses without the logits.

A ``*ForCausalLM`` model computes ``logits = lm_head(hidden)`` for every token, a
``(tokens, vocab)`` tensor (4 GiB in float32 at 8k tokens and a 128k vocabulary, and as much
again for its gradient), and only then the loss. :func:`causal_lm_loss` runs the model's
backbone (``model.base_model``: the decoder stack with its final norm, which every
``*ForCausalLM`` exposes under its ``base_model_prefix``), takes the last hidden states and
the output embedding (``model.get_output_embeddings()``: weight and optional bias), applies
the usual causal shift (position ``t`` predicts token ``t + 1``) and ``-100`` masking, and
hands them to :func:`losslab.functional.linear_loss`, which never holds the logits. So any of
losslab's multiclass losses (cross-entropy, M, full M, L, full L, softmax focal, Poly-1) trains
a language model at the memory cost of one chunk of logits.

:class:`LosslabTrainer` is a ``transformers.Trainer`` whose ``compute_loss`` is
:func:`causal_lm_loss`, including Transformers' gradient-accumulation contract
(``num_items_in_batch``: accumulated micro-batches give the loss and gradients of one large
batch).

Transformers is imported here only (the ``hf`` extra); ``import losslab`` never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

try:
    import transformers
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "losslab.integrations.transformers needs Hugging Face Transformers: "
        "pip install 'losslab[hf]'"
    ) from error

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LosslabTrainer", "causal_lm_inputs", "causal_lm_loss", "output_layer"]

IGNORE_INDEX = -100
# Configuration fields of models whose logits are not plain ``lm_head(hidden)``: a fused
# linear loss of the bare projection would silently train another model.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def output_layer(model: nn.Module) -> tuple[Tensor, Tensor | None]:
    """The output projection of a causal language model: ``(weight (V, H), bias (V,) or None)``.

    Raises a ``ValueError`` when the model has no output embedding or changes its logits after
    the projection (soft-capping, a logit scale), which a loss of the bare projection would
    ignore.
    """
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    weight = getattr(head, "weight", None)
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise ValueError(
            f"model: expected a *ForCausalLM model whose get_output_embeddings() is a linear layer, "
            f"got {type(model).__name__} with output embedding {type(head).__name__}"
        )
    config = getattr(model, "config", None)
    for name in _LOGIT_TRANSFORMS:
        value = getattr(config, name, None)
        if value is not None and value != 1.0:
            raise ValueError(
                f"model: {type(model).__name__} transforms its logits after the output layer "
                f"(config.{name}={value!r}); causal_lm_loss computes the loss of the bare "
                "projection, so it does not support this model"
            )
    bias = getattr(head, "bias", None)
    return weight, bias if isinstance(bias, Tensor) else None


def _check_tokens(name: str, value: object, shape: torch.Size | None = None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a tensor of token ids, got {type(value).__name__}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"{name}: expected an integer tensor, got dtype {value.dtype}")
    if shape is None:
        if value.ndim != 2 or value.shape[1] < 2:
            raise ValueError(f"{name}: expected shape (batch, sequence) with sequence >= 2, "
                             f"got {tuple(value.shape)}")
    elif value.shape != shape:
        raise ValueError(f"{name}: expected shape {tuple(shape)} (that of input_ids), got {tuple(value.shape)}")
    return value


def causal_lm_inputs(model: nn.Module, input_ids: Tensor, labels: Tensor, *,
                     attention_mask: Tensor | None = None,
                     model_kwargs: Mapping[str, Any] | None = None
                     ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """The arguments of :func:`~losslab.functional.linear_loss` for a causal language model.

    Runs the backbone (``model.base_model``, with its final norm) and returns
    ``(hidden (N, H), weight (V, H), bias (V,) or None, target (N,))``: the last hidden
    states of every position but the last of each row, and as targets the labels one
    position later (``-100`` where not predicted), ``N = B (T - 1)``. The logits of position
    ``i`` would be ``hidden[i] @ weight.T + bias``; nothing here computes them.

    Raises:
        ValueError/TypeError: naming ``input_ids``, ``labels``, ``attention_mask`` or
            ``model`` for tensors of the wrong kind or shape, or a model without a backbone
            and output layer.
    """
    input_ids = _check_tokens("input_ids", input_ids)
    labels = _check_tokens("labels", labels, input_ids.shape)
    if attention_mask is not None:
        _check_tokens("attention_mask", attention_mask, input_ids.shape)
    weight, bias = output_layer(model)
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        raise ValueError(f"model: expected a *ForCausalLM model with a backbone under base_model, "
                         f"got {type(model).__name__}")
    outputs = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                   return_dict=True, **(model_kwargs or {}))
    hidden = outputs.last_hidden_state
    if torch.is_autocast_enabled(hidden.device.type):
        # What autocast does to the output layer's F.linear: both operands in its dtype
        # (linear_loss then accumulates in float32).
        dtype = torch.get_autocast_dtype(hidden.device.type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    # Position t predicts token t + 1: drop the last position's prediction and the first label.
    hidden = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
    target = labels[:, 1:].reshape(-1).to(device=hidden.device, dtype=torch.long)
    return hidden, weight, bias, target


def causal_lm_loss(
    model: nn.Module,
    input_ids: Tensor,
    labels: Tensor,
    *,
    loss: str = "cross_entropy",
    attention_mask: Tensor | None = None,
    num_items_in_batch: Tensor | int | None = None,
    chunk_size: int | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    **options: Any,
) -> Tensor:
    r"""A causal language model's loss from its hidden states, never computing the logits.

    With ``h_{b,t}`` the last hidden state at position ``t`` of row ``b``, ``W`` and ``c`` the
    output layer's weight and bias, and ``y_{b,t} = labels[b, t]``:

    .. math::

        \text{loss} = \frac{1}{n} \sum_{b} \sum_{t < T-1,\ y_{b,t+1} \ne -100}
                      \ell\big(W h_{b,t} + c,\ y_{b,t+1}\big)

    where ``ℓ`` is the multiclass loss ``loss`` and ``n`` the number of positions kept
    (``reduction="mean"``, Transformers' ``ForCausalLMLoss`` with cross-entropy), or
    ``num_items_in_batch`` when given (the sum divided by it: with ``num_items_in_batch`` the
    kept positions of all micro-batches of one optimizer step, the accumulated gradients equal
    those of the large batch). The sum runs in chunks of positions inside
    :func:`losslab.functional.linear_loss`; the ``(tokens, vocab)`` logits never exist.

    Args:
        model: a Transformers ``*ForCausalLM`` model (Llama, GPT-2, Mistral, Qwen ...): its
            backbone is ``model.base_model`` and its output layer
            ``model.get_output_embeddings()``.
        input_ids: token ids.
        labels: the targets, usually ``input_ids`` with ``-100`` at positions not to predict
            (padding, a prompt); shifted here, as Transformers does.
        loss: a multiclass loss name of :func:`losslab.functional.linear_loss`
            (``"cross_entropy"``, ``"m"``, ``"full_m"``, ``"l"``, ``"full_l"``,
            ``"softmax_focal"``, ``"poly1"``).
        attention_mask: 1 for real tokens, 0 for padding (passed to the backbone; padded
            positions should carry label ``-100``).
        num_items_in_batch: the divisor of the summed loss (Transformers' gradient-accumulation
            contract); ``None``: the mean over the kept positions.
        chunk_size: positions per chunk of :func:`~losslab.functional.linear_loss` (``None``:
            chosen from the sizes).
        model_kwargs: further keyword arguments of the backbone's forward (``position_ids``
            ...).
        **options: the options of :func:`~losslab.functional.linear_loss` and the loss
            (``label_smoothing``, ``eps``, ``gamma``, ``class_weight``, ``z_loss`` ...).

    Returns:
        The scalar loss, differentiable with respect to every parameter of the model.

    Shape:
        - input_ids, labels, attention_mask: ``(B, T)``, ``T >= 2``.
        - output: scalar.

    References:
        Transformers' ``ForCausalLMLoss`` (the shift, ``-100`` and ``num_items_in_batch``
        conventions); Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
        (2024) and Liger-Kernel's fused linear cross-entropy (the loss without the logits).
    """
    from losslab.functional import linear_loss

    if num_items_in_batch is not None:
        count = num_items_in_batch.item() if isinstance(num_items_in_batch, Tensor) else num_items_in_batch
        if isinstance(count, bool) or not isinstance(count, (int, float)) or not count > 0:
            raise ValueError(f"num_items_in_batch: expected a positive count, got {num_items_in_batch!r}")
    if "reduction" in options:
        raise TypeError("reduction: causal_lm_loss always averages over the kept positions "
                        "(or divides the sum by num_items_in_batch); got a reduction option")
    hidden, weight, bias, target = causal_lm_inputs(model, input_ids, labels, attention_mask=attention_mask,
                                                    model_kwargs=model_kwargs)
    if num_items_in_batch is None:
        return linear_loss(hidden, weight, target, loss=loss, bias=bias, ignore_index=IGNORE_INDEX,
                           reduction="mean", chunk_size=chunk_size, **options)
    total = linear_loss(hidden, weight, target, loss=loss, bias=bias, ignore_index=IGNORE_INDEX,
                        reduction="sum", chunk_size=chunk_size, **options)
    if isinstance(num_items_in_batch, Tensor):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


class LosslabTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains a causal language model with a losslab loss.

    ``LosslabTrainer(model=..., args=..., train_dataset=..., loss="full_l",
    loss_options={"eps": 1e-7})``: every other argument is the ``Trainer``'s. The batches
    need ``input_ids`` and ``labels`` (``DataCollatorForLanguageModeling(tokenizer,
    mlm=False)`` makes them), and optionally ``attention_mask``. The loss is
    :func:`causal_lm_loss`; the logits are never computed, so ``return_outputs=True`` (the
    evaluation loop's prediction step) returns only the loss as outputs.

    Gradient accumulation: the Trainer counts the kept target positions of all micro-batches
    of one optimizer step (``num_items_in_batch``), each micro-batch's summed loss is divided
    by that count, and the accumulated gradient equals that of the large batch.
    """

    def __init__(self, *args: Any, loss: str = "cross_entropy",
                 loss_options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        from losslab.functional import linear_loss  # noqa: F401  (fails early if missing)

        if not isinstance(loss, str):
            raise TypeError(f"loss: expected a loss name (str), got {type(loss).__name__}")
        if loss_options is not None and not isinstance(loss_options, Mapping):
            raise TypeError(f"loss_options: expected a mapping of keyword arguments, got "
                            f"{type(loss_options).__name__}")
        super().__init__(*args, **kwargs)
        self.loss_name = loss
        self.loss_options = dict(loss_options or {})
        # compute_loss consumes num_items_in_batch itself: the Trainer must count the items
        # of each accumulated step (it does so only for models that take loss kwargs) and
        # must not divide the returned loss by the number of micro-batches again.
        self.model_accepts_loss_kwargs = True

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Tensor | int | None = None) -> Tensor | tuple[Tensor, Any]:
        """:func:`causal_lm_loss` of the batch ``inputs`` (``input_ids``, ``labels``,
        optional ``attention_mask``), divided by ``num_items_in_batch`` when given."""
        if "input_ids" not in inputs or "labels" not in inputs:
            raise ValueError(
                "inputs: LosslabTrainer needs batches with 'input_ids' and 'labels' (use "
                f"DataCollatorForLanguageModeling(tokenizer, mlm=False)), got keys {sorted(inputs)}"
            )
        unwrapped = self.accelerator.unwrap_model(model)
        value = causal_lm_loss(unwrapped, inputs["input_ids"], inputs["labels"], loss=self.loss_name,
                               attention_mask=inputs.get("attention_mask"),
                               num_items_in_batch=num_items_in_batch, **self.loss_options)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # The count covers every device's tokens while data parallelism averages the
            # devices' gradients: scale back to a sum over devices (as Trainer.compute_loss).
            value = value * self.accelerator.num_processes
        return (value, {"loss": value.detach()}) if return_outputs else value
