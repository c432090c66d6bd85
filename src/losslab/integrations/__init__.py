"""Bridges to other libraries' training stacks.

Each integration lives in its own module and imports its library only there, so that
``import losslab`` (and ``import losslab.integrations``) never loads it:

- :mod:`losslab.integrations.transformers`: the loss of a Hugging Face ``*ForCausalLM``
  model from its last hidden states without the logits (:func:`causal_lm_loss`), and a
  ``transformers.Trainer`` that trains with any of losslab's multiclass losses
  (:class:`LosslabTrainer`). Needs the ``hf`` extra (``pip install 'losslab[hf]'``).
"""
