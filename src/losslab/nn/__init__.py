"""``torch.nn.Module`` shells over :mod:`losslab.functional`, one module per family."""

from losslab.nn import alternate, classification, regression
from losslab.nn._base import FunctionalLoss
from losslab.nn.alternate import *  # noqa: F403
from losslab.nn.classification import *  # noqa: F403
from losslab.nn.regression import *  # noqa: F403

__all__ = [
    "FunctionalLoss",
    *alternate.__all__,
    *classification.__all__,
    *regression.__all__,
]
