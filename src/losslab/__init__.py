"""losslab: loss functions for PyTorch, exact and stable, and a lab to compare them.

``import losslab`` loads torch and numpy only; plotting, data and experiment code load on
first use from :mod:`losslab.plotting`, :mod:`losslab.experiments` and the command line.
"""

from losslab import functional, nn
from losslab._validation import set_validation
from losslab.nn import *  # noqa: F403
from losslab.registry import FAMILIES, LossInfo, get_info, get_loss, list_losses

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "LossInfo",
    "__version__",
    "functional",
    "get_info",
    "get_loss",
    "list_losses",
    "nn",
    "set_validation",
    *nn.__all__,
]
