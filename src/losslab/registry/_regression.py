"""Registry entries for the regression losses."""

from __future__ import annotations

import torch

from losslab.functional import regression as RF
from losslab.nn import regression as RN
from losslab.registry._core import LossInfo, register

_INPUT = "predictions (*)"
_TARGET = "(*) same shape (never broadcast)"


def _pointwise(function, **fixed):
    def evaluate(error):
        return function(error, torch.zeros_like(error), reduction="none", **fixed)

    return evaluate


_ENTRIES = [
    ("mse", RN.MSELoss, RF.mse_loss, "e^2", "torch.nn.functional.mse_loss", True,
     "Gauss / least squares", "maximum likelihood under Gaussian noise; outliers dominate", ("squared_error", "l2")),
    ("mae", RN.L1Loss, RF.l1_loss, "|e|", "torch.nn.functional.l1_loss", True,
     "Laplace / least absolute deviations", "robust; not differentiable at 0", ("l1", "absolute_error")),
    ("huber", RN.HuberLoss, RF.huber_loss, "0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta)",
     "torch.nn.functional.huber_loss", True, "Huber 1964, doi:10.1214/aoms/1177703732",
     "offset delta/2 from MAE for large |e|; one hyperparameter", ()),
    ("smooth_l1", RN.SmoothL1Loss, RF.smooth_l1_loss, "0.5 e^2 / beta if |e| < beta else |e| - 0.5 beta",
     "torch.nn.functional.smooth_l1_loss", True, "Girshick 2015 (Fast R-CNN)",
     "Huber / beta", ()),
    ("log_cosh", RN.LogCoshLoss, RF.log_cosh_loss, "log cosh(e) = |e| + softplus(-2|e|) - log 2",
     "keras.losses.LogCosh", True, "Wang et al. 2020, a survey of loss functions",
     "offset log 2 from MAE for large |e|; overflow-free form", ("logcosh",)),
    ("smae", RN.SMAELoss, RF.smae_loss, "e tanh(e / 2)", "authors' CustomSMAELoss", False,
     "Noel et al., arXiv:2303.09935, section 3",
     "~e^2/2 near 0, -> |e| with no offset; not convex for |e| > ~2.4 but strictly "
     "quasi-convex; not the Huber loss some call 'smooth MAE'", ("smooth_absolute_error",)),
]

# The class names of the Keras forms in losslab.keras (strings: no Keras import here).
_KERAS = {"log_cosh": ("LogCoshLoss",), "smae": ("SMAELoss",)}

# The fused forward+backward kernels (impl="auto" | "reference"), and the paper's loss.
_FUSED = ("log_cosh", "smae")
_PAPER = ("smae",)

for name, module, function, formula, impl, convex, reference, notes, aliases in _ENTRIES:
    register(
        LossInfo(
            name=name, family="regression", task="regression", factory=module, functional=function,
            input=_INPUT, target=_TARGET, formula=formula + ", e = input - target",
            reference=reference, reference_impl=impl, convex=convex, bounded=False,
            notes=notes, aliases=aliases, target_kind="regression",
            fused=name in _FUSED, paper=name in _PAPER,
            pointwise=_pointwise(function), keras=_KERAS.get(name, ()),
        )
    )
