"""The loss registry: ``get_loss(name, **kwargs)`` and ``list_losses(family)``.

Each family registers its entries in its own catalogue module; they are imported here once,
in the order listed (which is the order ``list_losses`` keeps within a family).
"""

import importlib

from losslab.registry._core import (
    FAMILIES,
    SEPARATE_FAMILIES,
    LossInfo,
    get_info,
    get_loss,
    list_losses,
    loss_names,
    register,
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

__all__ = ["FAMILIES", "SEPARATE_FAMILIES", "LossInfo", "get_info", "get_loss", "list_losses", "loss_names", "register"]
