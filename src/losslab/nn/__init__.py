"""``torch.nn.Module`` shells over :mod:`losslab.functional`, one module per family."""

from losslab.nn import (
    alternate,
    classification,
    embedding,
    linear,
    margin,
    regression,
    segmentation,
)
from losslab.nn._base import FunctionalLoss
from losslab.nn.alternate import *  # noqa: F403
from losslab.nn.classification import *  # noqa: F403
from losslab.nn.embedding import *  # noqa: F403
from losslab.nn.linear import *  # noqa: F403
from losslab.nn.margin import *  # noqa: F403
from losslab.nn.regression import *  # noqa: F403
from losslab.nn.segmentation import *  # noqa: F403

__all__ = [
    "FunctionalLoss",
    *alternate.__all__,
    *classification.__all__,
    *embedding.__all__,
    *linear.__all__,
    *margin.__all__,
    *regression.__all__,
    *segmentation.__all__,
]
