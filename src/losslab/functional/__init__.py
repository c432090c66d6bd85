"""Pure tensor functions, one module per family; every loss is ``f(input, target, *, ...)``.

Conventions every loss follows (as torch's losses do):

* An empty batch: ``"mean"`` is NaN (0 / 0) with a zero gradient, ``"sum"`` 0, ``"none"`` an
  empty tensor. (``ge2e_loss`` needs two speakers or more and raises instead.)
* Every class-index target ignored (``ignore_index``): ``"mean"`` divides by the summed weight
  of the kept targets, 0, so it is NaN like ``F.cross_entropy``, with a zero gradient; ``"sum"``
  is 0. ``dice_loss`` averages (sample, class) Dice terms, which exist even then.
* Class indices may have any integer dtype (cast to int64); a ``weight`` is cast to the
  input's dtype; embedding inputs of different float dtypes are promoted to a common one;
  float16 / bfloat16 reductions accumulate in float32.
"""

from losslab.functional import (
    alternate,
    classification,
    embedding,
    linear,
    margin,
    regression,
    segmentation,
)
from losslab.functional.alternate import *  # noqa: F403
from losslab.functional.classification import *  # noqa: F403
from losslab.functional.embedding import *  # noqa: F403
from losslab.functional.linear import *  # noqa: F403
from losslab.functional.margin import *  # noqa: F403
from losslab.functional.regression import *  # noqa: F403
from losslab.functional.segmentation import *  # noqa: F403

__all__ = [
    *alternate.__all__,
    *classification.__all__,
    *embedding.__all__,
    *linear.__all__,
    *margin.__all__,
    *regression.__all__,
    *segmentation.__all__,
]
