"""The loss registry: ``get_loss(name, **kwargs)`` and ``list_losses(family)``.

Each family registers its entries in its own catalogue module; they are imported here once,
in the order listed (which is the order ``list_losses`` keeps within a family).
"""

import importlib

from losslab.registry._core import (
    ACTIVATIONS,
    FAMILIES,
    OPTIONS,
    SEPARATE_FAMILIES,
    TARGET_KINDS,
    LossInfo,
    get_info,
    get_loss,
    list_losses,
    loss_names,
    paper_losses,
    register,
    signature_hyperparameters,
)

_CATALOGUES = (
    "_classification",
    "_alternate",
    "_regression",
    "_margin",
    "_segmentation",
    "_embedding",
    "_linear",
)

for _module in _CATALOGUES:
    importlib.import_module(f"losslab.registry.{_module}")

# The paper's losses (the entries registered with ``paper=True``): M, full M, L, full L, their
# binary forms and SMAE, in registration order.
PAPER_LOSSES: tuple[str, ...] = paper_losses()

__all__ = [
    "ACTIVATIONS", "FAMILIES", "OPTIONS", "PAPER_LOSSES", "SEPARATE_FAMILIES", "TARGET_KINDS",
    "LossInfo", "get_info", "get_loss", "list_losses", "loss_names", "paper_losses", "register",
    "signature_hyperparameters",
]
