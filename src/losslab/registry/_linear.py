"""Registry entry for the fused output layer + loss (``linear_loss``)."""

from __future__ import annotations

from losslab.functional.linear import LINEAR_LOSSES, linear_loss
from losslab.nn.linear import LinearLoss
from losslab.registry._core import LossInfo, register

register(
    LossInfo(
        name="linear",
        family="output_layer",
        task="a language model's output layer and its loss, without the (N, V) logits",
        factory=LinearLoss,
        functional=linear_loss,
        input="hidden states (..., H), the output layer's weight (V, H) and bias (V,) or None",
        target="class indices (...) in [0, V) or ignore_index",
        formula="loss(h W^T + b, y) + z_loss * w_y * logsumexp(h W^T + b)^2, loss one of "
        + ", ".join(LINEAR_LOSSES),
        reference="Wijmans et al., 'Cut Your Losses in Large-Vocabulary Language Models', "
        "arXiv:2411.09009; Hsu et al., 'Liger Kernel', arXiv:2410.10989",
        reference_impl="loss(F.linear(hidden, weight, bias), target), chunk by chunk",
        convex=None,
        bounded=False,
        hyperparameters={"loss": "cross_entropy", "class_weight": None, "ignore_index": -100,
                         "reduction": "mean", "chunk_size": None, "z_loss": 0.0},
        notes="called as (hidden, weight, target, bias=None); the loss's own options pass through "
        "(label_smoothing, eps, gamma, alpha, epsilon); gradients computed during the forward pass",
        aliases=("linear_loss", "fused_linear"),
    )
)
