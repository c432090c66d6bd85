"""Pure tensor functions, one module per family; every loss is ``f(input, target, *, ...)``."""

from losslab.functional import (
    alternate,
    classification,
    embedding,
    margin,
    regression,
    segmentation,
)
from losslab.functional.alternate import *  # noqa: F403
from losslab.functional.classification import *  # noqa: F403
from losslab.functional.embedding import *  # noqa: F403
from losslab.functional.margin import *  # noqa: F403
from losslab.functional.regression import *  # noqa: F403
from losslab.functional.segmentation import *  # noqa: F403

__all__ = [
    *alternate.__all__,
    *classification.__all__,
    *embedding.__all__,
    *margin.__all__,
    *regression.__all__,
    *segmentation.__all__,
]
