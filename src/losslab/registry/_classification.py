"""Registry entries for the classification catalogue (cross-entropy, BCE, hinge, focal, poly, KL)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from losslab.functional import classification as CF
from losslab.nn import classification as CN
from losslab.registry._core import LossInfo, register


def _bce_pointwise(p, y):
    return F.binary_cross_entropy(p, y, reduction="none")


register(
    LossInfo(
        name="cross_entropy", family="classification",
        task="multiclass classification", factory=CN.CrossEntropyLoss,
        functional=CF.cross_entropy,
        input="logits (N, C, d1..dk)", target="class indices (N, d1..dk) or probabilities (N, C, d1..dk)",
        formula="-sum_c y_c log p_c, p = softmax(z)", reference="maximum likelihood (multinomial)",
        reference_impl="torch.nn.functional.cross_entropy", convex=True, bounded=False,
        notes="weighted 'mean' divides by the summed weight of the targets",
        aliases=("ce",), pointwise=_bce_pointwise, activation="softmax",
    )
)
register(
    LossInfo(
        name="binary_cross_entropy", family="binary",
        task="binary / multilabel classification", factory=CN.BCEWithLogitsLoss,
        functional=CF.binary_cross_entropy_with_logits,
        input="logits (*)", target="(*) same shape, values in [0, 1]",
        formula="-(y log p + (1 - y) log(1 - p)), p = sigmoid(z)",
        reference="maximum likelihood (Bernoulli)",
        reference_impl="torch.nn.functional.binary_cross_entropy_with_logits", convex=True,
        bounded=False,
        notes="computed from logits (log-sum-exp trick)", aliases=("bce", "bce_with_logits"),
        pointwise=_bce_pointwise, target_kind="binary", activation="sigmoid",
    )
)


# --- hinge, focal, poly and KL losses --------------------------------------------------------

_MULTICLASS_INPUT = "logits (N, C, d1..dk) or (C,)"
_MULTICLASS_TARGET = "class indices (N, d1..dk) or probabilities (N, C, d1..dk)"
_LIN = "Lin, Goyal, Girshick, He, Dollar, 'Focal Loss for Dense Object Detection', ICCV 2017, arXiv:1708.02002"


def _logit(p):
    return torch.logit(p)


def _hinge_pointwise(squared):
    """f(p, y) of the hinge on the logit z = logit(p), y in {0, 1}."""

    def evaluate(p, y):
        return CF.binary_hinge_loss(_logit(p), y, squared=squared, reduction="none")

    return evaluate


def _sigmoid_focal_pointwise(p, y):
    return CF.sigmoid_focal_loss(_logit(p), y, reduction="none")


def _poly1_pointwise(p, y):
    # the binary case of Poly-1: BCE + eps (1 - p_t) with eps = 1
    p_t = y * p + (1 - y) * (1 - p)
    return F.binary_cross_entropy(p, y, reduction="none") + (1 - p_t)


register(
    LossInfo(
        name="kl_div", family="classification",
        task="matching a target distribution (distillation, soft labels)", factory=CN.KLDivLoss,
        functional=CF.kl_div,
        input="log-probabilities (*)", target="probabilities (*) same shape (log_target: log-probabilities)",
        formula="y (log y - x), x = log q", reference="Kullback & Leibler 1951",
        reference_impl="torch.nn.functional.kl_div", convex=True, bounded=False,
        target_kind="distribution",
        notes="default reduction 'batchmean' (the divergence per sample); torch's default 'mean' "
        "divides by every element", aliases=("kl", "kl_divergence"),
    )
)
register(
    LossInfo(
        name="hinge", family="binary", task="binary classification (max-margin, SVM)",
        factory=CN.BinaryHingeLoss, functional=CF.binary_hinge_loss,
        input="scores / logits (*)", target="(*) same shape, labels in {-1, +1} or {0, 1}",
        formula="max(0, 1 - t z), t = +-1", reference="Cortes & Vapnik 1995",
        reference_impl=None, convex=True,
        bounded=False, target_kind="binary",
        notes="{0, 1} labels are mapped to {-1, +1} (as keras.losses.Hinge does); not "
        "differentiable at t z = 1",
        aliases=("binary_hinge",), pointwise=_hinge_pointwise(False),
    )
)
register(
    LossInfo(
        name="squared_hinge", family="binary", task="binary classification (L2-SVM)",
        factory=functools.partial(CN.BinaryHingeLoss, squared=True),
        functional=functools.partial(CF.binary_hinge_loss, squared=True),
        input="scores / logits (*)", target="(*) same shape, labels in {-1, +1} or {0, 1}",
        formula="max(0, 1 - t z)^2, t = +-1", reference="Cortes & Vapnik 1995 (L2-SVM)",
        reference_impl=None, convex=True, bounded=False,
        target_kind="binary",
        notes="differentiable everywhere; {0, 1} labels are mapped to {-1, +1}", pointwise=_hinge_pointwise(True),
    )
)
register(
    LossInfo(
        name="multi_margin", family="classification",
        task="multiclass classification (multiclass SVM, Weston-Watkins)",
        factory=CN.MulticlassHingeLoss, functional=CF.multiclass_hinge_loss,
        input="scores (N, C) or (C,)", target="class indices (N,) or ()",
        formula="w_y / C sum_{i != y} max(0, m - z_y + z_i)^p",
        reference="Weston & Watkins, ESANN 1999",
        reference_impl="torch.nn.functional.multi_margin_loss", convex=True, bounded=False,
        target_kind="class_index",
        notes="p=2 is the squared hinge; the weight multiplies the powered hinge, as torch "
        "computes; ignore_index is an extension", aliases=("multiclass_hinge", "weston_watkins"),
    )
)
register(
    LossInfo(
        name="crammer_singer", family="classification",
        task="multiclass classification (multiclass SVM, Crammer-Singer)",
        factory=functools.partial(CN.MulticlassHingeLoss, kind="crammer_singer"),
        functional=functools.partial(CF.multiclass_hinge_loss, kind="crammer_singer"),
        input="scores (N, C) or (C,)", target="class indices (N,) or ()",
        formula="w_y max(0, m - z_y + max_{i != y} z_i)^p",
        reference="Crammer & Singer, JMLR 2001", reference_impl=None, convex=True, bounded=False,
        target_kind="class_index",
        notes="only the largest wrong-class violation counts; not divided by C",
    )
)
register(
    LossInfo(
        name="sigmoid_focal", family="binary",
        task="binary / multilabel classification with class imbalance (dense detection)",
        factory=CN.SigmoidFocalLoss, functional=CF.sigmoid_focal_loss,
        input="logits (*)", target="(*) same shape, values in [0, 1]",
        formula="-alpha_t (1 - p_t)^gamma log p_t, p = sigmoid(z)", reference=_LIN,
        reference_impl="torchvision.ops.sigmoid_focal_loss semantics (float64 reference in the "
        "tests); monai.losses.FocalLoss (alpha=None for a negative alpha)", convex=False,
        bounded=False,
        target_kind="binary", activation="sigmoid",
        notes="a negative alpha disables the weighting; computed in log space (finite gradients "
        "for gamma < 1 on saturated logits); gamma=0, alpha<0 is BCE",
        aliases=("focal",), pointwise=_sigmoid_focal_pointwise,
    )
)
register(
    LossInfo(
        name="softmax_focal", family="classification",
        task="multiclass classification with class imbalance",
        factory=CN.SoftmaxFocalLoss, functional=CF.softmax_focal_loss,
        input=_MULTICLASS_INPUT, target=_MULTICLASS_TARGET,
        formula="-sum_c w_c alpha_c y_c (1 - p_c)^gamma log p_c, p = softmax(z)", reference=_LIN,
        reference_impl="monai.losses.FocalLoss(use_softmax=True) (per-sample sum over classes)",
        convex=False, bounded=False,
        activation="softmax",
        notes="alpha rescales classes without entering the mean's denominator; weight follows "
        "cross-entropy; gamma=0 without alpha is cross-entropy",
        aliases=("multiclass_focal",),
    )
)
register(
    LossInfo(
        name="poly1", family="classification", task="multiclass classification",
        factory=CN.PolyLoss, functional=CF.poly_loss,
        input=_MULTICLASS_INPUT, target=_MULTICLASS_TARGET,
        formula="CE + sum_j eps_j (1 - p_t)^j (Poly-1: CE + eps (1 - p_t))",
        reference="Leng et al., 'PolyLoss: A Polynomial Expansion Perspective of Classification "
        "Loss Functions', ICLR 2022, arXiv:2204.12511",
        reference_impl="torch.nn.functional.cross_entropy at epsilon=0", convex=None,
        bounded=False,
        activation="softmax",
        notes="a list of epsilons gives Poly-N; with one logit (binary) Poly-1 is convex in it "
        "iff |eps| <= 1, not convex in general",
        aliases=("poly", "poly_loss"), pointwise=_poly1_pointwise,
    )
)
