"""The primer's classification catalogue against torch, MONAI and float64 reference formulas.

References used here:
- torch.nn.functional (cross_entropy, binary_cross_entropy_with_logits, kl_div,
  multi_margin_loss): every argument combination they accept, in float64, to 1e-6.
- torchvision.ops.sigmoid_focal_loss cannot be installed here: ``reference_sigmoid_focal``
  below is written from Lin et al.'s equation with torchvision's alpha/gamma conventions.
- monai.losses.FocalLoss: computes in float32 (it calls ``input.float()``), so it is compared
  at float32 precision (rtol 1e-5). Parameter mapping:
    losslab sigmoid_focal_loss(alpha=a, gamma=g)  <->  FocalLoss(use_softmax=False, alpha=a, gamma=g)
    losslab sigmoid_focal_loss(alpha<0)           <->  FocalLoss(alpha=None)
    losslab softmax_focal_loss(alpha=t (C,), gamma=g, reduction="none")
        <->  FocalLoss(use_softmax=True, to_onehot_y=True, alpha=t, gamma=g,
                       reduction="none").sum(dim=1)   (MONAI keeps one term per class)
    MONAI's scalar softmax alpha a  <->  losslab alpha=tensor([1 - a, a, ..., a]).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import functional as LF
from losslab import nn as LN

REDUCTIONS = ("mean", "sum", "none")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def close(got, expected, rtol=1e-6, atol=1e-9):
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)


def multiclass_case(shape, seed=0, ignore_index=None, dtype=torch.float64):
    """Logits, class indices, one-hot-ish soft targets and a class weight for ``shape``."""
    g = gen(seed)
    logits = torch.randn(shape, generator=g, dtype=dtype) * 2
    class_dim = 0 if len(shape) == 1 else 1
    num_classes = shape[class_dim]
    index_shape = shape[:class_dim] + shape[class_dim + 1 :]
    target = torch.randint(0, num_classes, index_shape, generator=g)
    if ignore_index is not None and target.dim() > 0:
        target.view(-1)[::3] = ignore_index
    elif ignore_index is not None and int(target) == ignore_index:
        # a single ignored target is the all-ignored case, tested on its own below
        target = (target + 1) % num_classes
    soft = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), class_dim)
    weight = torch.rand(num_classes, generator=g, dtype=dtype) + 0.2
    return logits, target, soft, weight


# --- documented entries over torch ---------------------------------------------------------


class TestTorchEntries:
    @pytest.mark.parametrize("shape", [(6, 4), (4,), (3, 4, 2, 2)])
    def test_cross_entropy_every_combination(self, shape):
        logits, _, soft, weight = multiclass_case(shape)
        for ignore_index, reduction, smoothing, use_weight in itertools.product(
            (-100, 1), REDUCTIONS, (0.0, 0.15), (False, True)
        ):
            _, target, _, _ = multiclass_case(shape, ignore_index=ignore_index)
            w = weight if use_weight else None
            kwargs = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
            close(
                LF.cross_entropy(logits, target, ignore_index=ignore_index, **kwargs),
                F.cross_entropy(logits, target, ignore_index=ignore_index, **kwargs),
            )
            close(LF.cross_entropy(logits, soft, **kwargs), F.cross_entropy(logits, soft, **kwargs))

    def test_bce_every_combination(self):
        g = gen(1)
        z = torch.randn(5, 3, generator=g, dtype=torch.float64) * 3
        y = torch.rand(5, 3, generator=g, dtype=torch.float64)
        weight = torch.rand(5, 3, generator=g, dtype=torch.float64)
        pos_weight = torch.rand(3, generator=g, dtype=torch.float64) * 3
        for w, pw, reduction in itertools.product((None, weight), (None, pos_weight), REDUCTIONS):
            kwargs = dict(weight=w, pos_weight=pw, reduction=reduction)
            close(
                LF.binary_cross_entropy_with_logits(z, y, **kwargs),
                F.binary_cross_entropy_with_logits(z, y, **kwargs),
            )

    @pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
    def test_kl_div_every_combination(self):
        g = gen(2)
        log_q = torch.log_softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), 1)
        p = torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), 1)
        with_zero = p.clone()
        with_zero[0, 0] = 0.0  # 0 log 0 = 0 (with log_target torch gives NaN for log 0 = -inf)
        for reduction, log_target in itertools.product(("mean", "batchmean", "sum", "none"), (False, True)):
            target = torch.log(p) if log_target else with_zero
            close(
                LF.kl_div(log_q, target, reduction=reduction, log_target=log_target),
                F.kl_div(log_q, target, reduction=reduction, log_target=log_target),
            )

    def test_kl_div_batchmean_default_is_the_divergence_per_sample(self):
        g = gen(3)
        q = torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), 1)
        p = torch.softmax(torch.randn(4, 5, generator=g, dtype=torch.float64), 1)
        by_hand = (p * (p.log() - q.log())).sum(1).mean()
        close(LF.kl_div(q.log(), p), by_hand, rtol=1e-12, atol=1e-14)

    @pytest.mark.parametrize("shape", [(7, 5), (5,)])
    def test_multi_margin_every_combination(self, shape):
        logits, target, _, weight = multiclass_case(shape, seed=4)
        for p, margin, use_weight, reduction in itertools.product((1, 2), (1.0, 0.3, 2.5), (False, True), REDUCTIONS):
            w = weight if use_weight else None
            close(
                LF.multiclass_hinge_loss(logits, target, p=p, margin=margin, weight=w, reduction=reduction),
                F.multi_margin_loss(logits, target, p=p, margin=margin, weight=w, reduction=reduction),
            )


# --- hinge -----------------------------------------------------------------------------------


class TestHinge:
    def test_binary_hinge_formula_and_label_mapping(self):
        g = gen(5)
        z = torch.randn(4, 6, generator=g, dtype=torch.float64) * 2
        labels01 = torch.randint(0, 2, (4, 6), generator=g)
        sign = labels01.double() * 2 - 1
        for squared, margin in itertools.product((False, True), (1.0, 0.5)):
            expected = torch.clamp(margin - sign * z, min=0) ** (2 if squared else 1)
            for target in (labels01, labels01.double(), sign, sign.long(), labels01.bool()):
                got = LF.binary_hinge_loss(z, target, squared=squared, margin=margin, reduction="none")
                close(got, expected, rtol=1e-12, atol=0)
            close(LF.binary_hinge_loss(z, sign, squared=squared, margin=margin), expected.mean())
            close(LF.binary_hinge_loss(z, sign, squared=squared, margin=margin, reduction="sum"), expected.sum())

    def test_hand_computed(self):
        z = torch.tensor([2.0, 0.5, -0.5, -3.0])
        t = torch.tensor([1, 1, 1, -1])
        close(LF.binary_hinge_loss(z, t, reduction="none"), torch.tensor([0.0, 0.5, 1.5, 0.0]))
        close(LF.binary_hinge_loss(z, t, squared=True, reduction="none"), torch.tensor([0.0, 0.25, 2.25, 0.0]))

    def test_crammer_singer_against_loops(self):
        logits, target, _, weight = multiclass_case((6, 4), seed=6)
        target[2] = -100
        for p, margin in itertools.product((1, 2), (1.0, 0.4)):
            rows = []
            for n in range(6):
                if target[n] == -100:
                    rows.append(torch.tensor(0.0, dtype=torch.float64))
                    continue
                y = int(target[n])
                others = max(float(logits[n, c]) for c in range(4) if c != y)
                rows.append(weight[y] * max(0.0, margin - float(logits[n, y]) + others) ** p)
            expected = torch.stack([torch.as_tensor(r, dtype=torch.float64) for r in rows])
            got = LF.multiclass_hinge_loss(logits, target, kind="crammer_singer", p=p, margin=margin,
                                           weight=weight, reduction="none")
            close(got, expected, rtol=1e-12, atol=1e-14)
            mean = LF.multiclass_hinge_loss(logits, target, kind="crammer_singer", p=p, margin=margin, weight=weight)
            close(mean, expected.sum() / 5)  # the ignored sample leaves the denominator

    def test_weston_watkins_ignore_index_extension(self):
        logits, target, _, _ = multiclass_case((6, 4), seed=7)
        kept = torch.arange(6) != 3
        ignored = target.clone()
        ignored[3] = -100
        close(LF.multiclass_hinge_loss(logits, ignored), F.multi_margin_loss(logits[kept], target[kept]))

    def test_single_class_crammer_singer_is_zero(self):
        z = torch.randn(3, 1, dtype=torch.float64, requires_grad=True)
        loss = LF.multiclass_hinge_loss(z, torch.zeros(3, dtype=torch.long), kind="crammer_singer")
        loss.backward()
        assert loss.item() == 0.0 and torch.isfinite(z.grad).all()


# --- focal -----------------------------------------------------------------------------------


def reference_sigmoid_focal(z, y, alpha, gamma):
    """Lin et al. eq. (5) with torchvision's conventions (soft y: -log p_t is the BCE of y)."""
    p = torch.sigmoid(z)
    ce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss


def reference_softmax_focal(z, target_probs, gamma, alpha=None, weight=None):
    p = torch.softmax(z, 1)
    view = (1, -1) + (1,) * (z.dim() - 2)
    per_class = -target_probs * (1 - p) ** gamma * torch.log(p)
    if alpha is not None:
        per_class = per_class * alpha.view(view)
    if weight is not None:
        per_class = per_class * weight.view(view)
    return per_class.sum(1)


class TestSigmoidFocal:
    @pytest.mark.parametrize("alpha", [0.25, 0.7, -1.0])
    @pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 3.0])
    def test_against_lin_et_al(self, alpha, gamma):
        g = gen(8)
        z = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
        hard = torch.randint(0, 2, (5, 4), generator=g).double()
        soft = torch.rand(5, 4, generator=g, dtype=torch.float64)
        for y in (hard, soft):
            expected = reference_sigmoid_focal(z, y, alpha, gamma)
            close(LF.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none"), expected)
            close(LF.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma), expected.mean())
            close(LF.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="sum"), expected.sum())

    def test_defaults_are_torchvisions(self):
        z = torch.tensor([1.3, -0.4], dtype=torch.float64)
        y = torch.tensor([1.0, 1.0], dtype=torch.float64)
        close(LF.sigmoid_focal_loss(z, y), reference_sigmoid_focal(z, y, 0.25, 2.0).mean())
        assert LN.SigmoidFocalLoss().options() == {"alpha": 0.25, "gamma": 2.0, "reduction": "mean"}

    def test_gamma0_alpha_disabled_is_bce(self):
        g = gen(9)
        z = torch.randn(6, 3, generator=g, dtype=torch.float64) * 4
        y = torch.rand(6, 3, generator=g, dtype=torch.float64)
        for reduction in REDUCTIONS:
            close(
                LF.sigmoid_focal_loss(z, y, alpha=-1, gamma=0, reduction=reduction),
                F.binary_cross_entropy_with_logits(z, y, reduction=reduction),
                rtol=1e-12, atol=1e-14,
            )

    @pytest.mark.parametrize(("alpha", "monai_alpha"), [(0.25, 0.25), (0.8, 0.8), (-1.0, None)])
    @pytest.mark.parametrize("gamma", [0.0, 2.0, 0.7])
    def test_against_monai(self, alpha, monai_alpha, gamma):
        from monai.losses import FocalLoss

        g = gen(10)
        z = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) * 3
        y = torch.randint(0, 2, (2, 3, 4, 4), generator=g).double()
        ref = FocalLoss(use_softmax=False, alpha=monai_alpha, gamma=gamma, reduction="none")(z, y)
        got = LF.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none")
        # MONAI computes in float32 (input.float()): compare at float32 precision.
        close(got, ref.double(), rtol=1e-5, atol=1e-7)
        mean_ref = FocalLoss(use_softmax=False, alpha=monai_alpha, gamma=gamma)(z, y)
        close(LF.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma), mean_ref.double(), rtol=1e-5, atol=1e-7)


class TestSoftmaxFocal:
    def test_focal_factor_keeps_precision_near_certainty_and_for_tiny_p(self):
        # Row 0: p_y = 1 - 1e-12, where 1 - p_y from p_y keeps ~4 digits in float64; the loss
        # (1 - p_y)^2 (-log p_y) ~ 1e-36 must keep its digits. Row 1: p_y ~ e^-60, where the loss
        # is ~ -log p_y = 60 and must not underflow.
        z = torch.tensor([[-40.0, 0.0, -math.log(1e12)], [0.0, -60.0, 0.0]], dtype=torch.float64,
                         requires_grad=True)
        target = torch.tensor([1, 1])
        got = LF.softmax_focal_loss(z, target, gamma=2.0, reduction="none")
        lse = torch.logsumexp(z.detach(), 1)
        rest = torch.stack([torch.exp(z[0, 0] - lse[0]) + torch.exp(z[0, 2] - lse[0]),
                            torch.exp(z[1, 0] - lse[1]) + torch.exp(z[1, 2] - lse[1])]).detach()
        log_p = z.detach()[:, 1] - lse
        expected = rest**2 * -log_p
        close(got, expected, rtol=1e-9, atol=0)
        (grad,) = torch.autograd.grad(got.sum(), z)
        assert torch.isfinite(grad).all()

    @pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
    @pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (4,)])
    def test_against_formula(self, gamma, shape):
        logits, _, soft, weight = multiclass_case(shape, seed=11)
        _, target, _, _ = multiclass_case(shape, seed=11, ignore_index=-100)
        alpha = torch.rand(weight.shape[0], generator=gen(12), dtype=torch.float64) + 0.1
        batched = logits.dim() > 1
        z = logits if batched else logits.unsqueeze(0)
        t = target if batched else target.unsqueeze(0)
        s = soft if batched else soft.unsqueeze(0)
        keep = t != -100
        onehot = F.one_hot(torch.where(keep, t, 0), weight.shape[0]).movedim(-1, 1).double()
        for a, w in itertools.product((None, alpha), (None, weight)):
            per_sample = torch.where(keep, reference_softmax_focal(z, onehot, gamma, a, w), 0.0)
            sample_w = torch.where(keep, (w if w is not None else torch.ones_like(weight))[torch.where(keep, t, 0)], 0.0)
            got = LF.softmax_focal_loss(logits, target, gamma=gamma, alpha=a, weight=w, reduction="none")
            close(got, per_sample if batched else per_sample.squeeze(0))
            close(LF.softmax_focal_loss(logits, target, gamma=gamma, alpha=a, weight=w, reduction="sum"), per_sample.sum())
            close(LF.softmax_focal_loss(logits, target, gamma=gamma, alpha=a, weight=w), per_sample.sum() / sample_w.sum())
            soft_expected = reference_softmax_focal(z, s, gamma, a, w)
            close(LF.softmax_focal_loss(logits, soft, gamma=gamma, alpha=a, weight=w, reduction="none"),
                  soft_expected if batched else soft_expected.squeeze(0))
            close(LF.softmax_focal_loss(logits, soft, gamma=gamma, alpha=a, weight=w), soft_expected.mean())

    def test_scalar_alpha_is_uniform_factor(self):
        logits, target, _, _ = multiclass_case((5, 3), seed=13)
        close(LF.softmax_focal_loss(logits, target, alpha=0.4, reduction="sum"),
              0.4 * LF.softmax_focal_loss(logits, target, reduction="sum"))

    def test_gamma0_is_cross_entropy(self):
        logits, _, soft, weight = multiclass_case((3, 4, 2, 2), seed=14)
        _, ignored, _, _ = multiclass_case((3, 4, 2, 2), seed=14, ignore_index=2)
        for w, reduction in itertools.product((None, weight), REDUCTIONS):
            close(LF.softmax_focal_loss(logits, ignored, gamma=0.0, weight=w, ignore_index=2, reduction=reduction),
                  F.cross_entropy(logits, ignored, weight=w, ignore_index=2, reduction=reduction))
            close(LF.softmax_focal_loss(logits, soft, gamma=0.0, weight=w, reduction=reduction),
                  F.cross_entropy(logits, soft, weight=w, reduction=reduction))

    @pytest.mark.parametrize("gamma", [0.0, 2.0, 1.5])
    def test_against_monai(self, gamma):
        from monai.losses import FocalLoss

        logits, target, _, _ = multiclass_case((2, 4, 3, 3), seed=15)
        alpha = torch.tensor([0.1, 0.5, 0.3, 0.9], dtype=torch.float64)
        ref = FocalLoss(use_softmax=True, to_onehot_y=True, alpha=alpha, gamma=gamma, reduction="none")(
            logits, target.unsqueeze(1)
        )
        got = LF.softmax_focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction="none")
        close(got, ref.sum(1).double(), rtol=1e-5, atol=1e-7)
        # MONAI's scalar alpha: (1 - a) for class 0, a for the others.
        ref_scalar = FocalLoss(use_softmax=True, to_onehot_y=True, alpha=0.3, gamma=gamma, reduction="none")(
            logits, target.unsqueeze(1)
        )
        mapped = torch.tensor([0.7, 0.3, 0.3, 0.3], dtype=torch.float64)
        close(LF.softmax_focal_loss(logits, target, gamma=gamma, alpha=mapped, reduction="none"),
              ref_scalar.sum(1).double(), rtol=1e-5, atol=1e-7)


# --- PolyLoss --------------------------------------------------------------------------------


def reference_poly(z, target_probs, epsilons, weight=None, smoothing=0.0):
    """Leng et al.: CE(smoothed y) + sum_j eps_j (1 - p_t)^j, p_t = sum_c y_c p_c, per sample."""
    num_classes = z.shape[1]
    y = target_probs * (1 - smoothing) + smoothing / num_classes
    view = (1, -1) + (1,) * (z.dim() - 2)
    w = torch.ones(num_classes, dtype=z.dtype) if weight is None else weight
    log_p = torch.log_softmax(z, 1)
    ce = -(y * log_p * w.view(view)).sum(1)
    p_t = (y * log_p.exp()).sum(1)
    return ce, sum(e * (1 - p_t) ** j for j, e in enumerate(epsilons, start=1))


class TestPoly:
    @pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3), (5,)])
    def test_epsilon_zero_is_cross_entropy_for_every_combination(self, shape):
        logits, _, soft, weight = multiclass_case(shape, seed=16)
        for ignore_index, reduction, smoothing, w in itertools.product(
            (-100, 0), REDUCTIONS, (0.0, 0.2), (None, weight)
        ):
            _, target, _, _ = multiclass_case(shape, seed=16, ignore_index=ignore_index)
            kw = dict(weight=w, reduction=reduction, label_smoothing=smoothing)
            close(LF.poly_loss(logits, target, epsilon=0.0, ignore_index=ignore_index, **kw),
                  F.cross_entropy(logits, target, ignore_index=ignore_index, **kw))
            close(LF.poly_loss(logits, soft, epsilon=[0.0, 0.0], **kw), F.cross_entropy(logits, soft, **kw))

    @pytest.mark.parametrize("epsilon", [1.0, -0.5, [1.0, -0.4, 0.25]])
    @pytest.mark.parametrize("smoothing", [0.0, 0.1])
    def test_against_leng_et_al(self, epsilon, smoothing):
        logits, target, soft, weight = multiclass_case((3, 4, 2, 3), seed=17)
        epsilons = epsilon if isinstance(epsilon, list) else [epsilon]
        onehot = F.one_hot(target, 4).movedim(-1, 1).double()
        for w in (None, weight):
            ce, poly = reference_poly(logits, onehot, epsilons, w, smoothing)
            sample_w = torch.ones_like(ce) if w is None else w[target]
            expected = ce + sample_w * poly
            got = LF.poly_loss(logits, target, epsilon=epsilon, weight=w, label_smoothing=smoothing, reduction="none")
            close(got, expected)
            close(LF.poly_loss(logits, target, epsilon=epsilon, weight=w, label_smoothing=smoothing),
                  expected.sum() / sample_w.sum())
            # the same target given as one-hot probabilities: the same per-sample loss
            close(LF.poly_loss(logits, onehot, epsilon=epsilon, weight=w, label_smoothing=smoothing, reduction="none"),
                  expected)
            ce_s, poly_s = reference_poly(logits, soft, epsilons, w, smoothing)
            sw = 1.0 if w is None else (soft * w.view(1, -1, 1, 1)).sum(1)  # unsmoothed target
            close(LF.poly_loss(logits, soft, epsilon=epsilon, weight=w, label_smoothing=smoothing),
                  (ce_s + sw * poly_s).mean())

    def test_default_is_poly1_with_epsilon_one(self):
        logits, target, _, _ = multiclass_case((5, 3), seed=18)
        p_t = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
        close(LF.poly_loss(logits, target), (F.cross_entropy(logits, target, reduction="none") + 1 - p_t).mean())

    def test_all_targets_ignored_gives_nan_with_a_zero_gradient(self):
        # as torch's cross_entropy: NaN (0/0) for "mean", and a zero gradient
        z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        target = torch.full((3,), -100)
        for call in (LF.poly_loss, LF.softmax_focal_loss, LF.multiclass_hinge_loss):
            loss = call(z, target)
            (grad,) = torch.autograd.grad(loss, z)
            assert torch.isnan(loss) and torch.equal(grad, torch.zeros_like(z))

    def test_one_minus_pt_keeps_precision_near_one(self):
        # p_y = 1 - 1e-12: 1 - p_y from p_y (or from expm1 of torch's log_softmax) keeps only
        # ~4 digits in float64; the sum of the other classes' probabilities keeps them all.
        z = torch.tensor([[-40.0, 0.0, -math.log(1e12)]], dtype=torch.float64)
        target = torch.tensor([1])
        lse = torch.logsumexp(z[0], 0)
        expected_miss = torch.exp(z[0, 0] - lse) + torch.exp(z[0, 2] - lse)
        got = LF.poly_loss(z, target, epsilon=1.0, reduction="sum") - F.cross_entropy(z, target, reduction="sum")
        close(got, expected_miss, rtol=1e-9, atol=0)


# --- numerics --------------------------------------------------------------------------------

SATURATED = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [1e4, 1e4, -1e4]], dtype=torch.float32)
BINARY = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
CLASS_TARGET = torch.tensor([1, 0, 2])


def binary_like(z):
    """Binary targets in the input's dtype (torch's BCE computes in the target's precision)."""
    return BINARY.to(z.dtype)


def _binary_calls():
    return {
        "hinge": lambda z: LF.binary_hinge_loss(z, binary_like(z)),
        "squared_hinge": lambda z: LF.binary_hinge_loss(z, binary_like(z), squared=True),
        "sigmoid_focal": lambda z: LF.sigmoid_focal_loss(z, binary_like(z)),
        "sigmoid_focal_gamma0.5": lambda z: LF.sigmoid_focal_loss(z, binary_like(z), gamma=0.5),
        "sigmoid_focal_gamma0.5_soft": lambda z: LF.sigmoid_focal_loss(z, binary_like(z) * 0.8 + 0.1, gamma=0.5),
        "bce": lambda z: LF.binary_cross_entropy_with_logits(z, binary_like(z)),
    }


def _multiclass_calls():
    return {
        "multi_margin": lambda z: LF.multiclass_hinge_loss(z, CLASS_TARGET),
        "multi_margin_p2": lambda z: LF.multiclass_hinge_loss(z, CLASS_TARGET, p=2),
        "crammer_singer": lambda z: LF.multiclass_hinge_loss(z, CLASS_TARGET, kind="crammer_singer"),
        "softmax_focal": lambda z: LF.softmax_focal_loss(z, CLASS_TARGET),
        "softmax_focal_gamma0.5": lambda z: LF.softmax_focal_loss(z, CLASS_TARGET, gamma=0.5),
        "softmax_focal_gamma0.5_soft": lambda z: LF.softmax_focal_loss(
            z, torch.tensor([[0.1, 0.8, 0.1]] * 3), gamma=0.5
        ),
        "poly1": lambda z: LF.poly_loss(z, CLASS_TARGET),
        "poly_n_smoothed": lambda z: LF.poly_loss(z, CLASS_TARGET, epsilon=[1.0, 0.5, 0.1], label_smoothing=0.1),
        "kl_div": lambda z: LF.kl_div(torch.log_softmax(z, 1), torch.tensor([[0.2, 0.8, 0.0]] * 3)),
    }


ALL_CALLS = {**_binary_calls(), **_multiclass_calls()}


class TestNumerics:
    @pytest.mark.parametrize("name", sorted(ALL_CALLS))
    def test_saturated_logits_float32_finite_loss_and_gradient(self, name):
        z = SATURATED.clone().requires_grad_(True)
        loss = ALL_CALLS[name](z)
        loss.backward()
        assert torch.isfinite(loss), name
        assert torch.isfinite(z.grad).all(), name

    def test_naive_focal_formula_would_fail_the_saturation_test(self):
        # the test above can fail: (1 - p_t) ** 0.5 has an infinite derivative at p_t = 1
        z = torch.tensor([1e4], requires_grad=True)
        p = torch.sigmoid(z)
        naive = F.binary_cross_entropy_with_logits(z, torch.ones(1), reduction="none") * (1 - p) ** 0.5
        naive.sum().backward()
        assert not torch.isfinite(z.grad).all()

    def test_focal_gamma_half_on_saturated_logits_is_exact(self):
        # correct side: p_t = 1 - exp(-1e4): loss ~ 0 and gradient 0; wrong side: loss 0.75 * 1e4 * 1
        z = torch.tensor([1e4, -1e4], requires_grad=True)
        loss = LF.sigmoid_focal_loss(z, torch.tensor([1.0, 1.0]), gamma=0.5, reduction="none")
        loss.sum().backward()
        close(loss.detach(), torch.tensor([0.0, 0.25 * 1e4]), rtol=1e-6, atol=1e-30)
        close(z.grad, torch.tensor([0.0, -0.25]), rtol=1e-6, atol=1e-30)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize("name", sorted(ALL_CALLS))
    def test_half_precision_inputs(self, name, dtype):
        g = gen(19)
        base = torch.randn(3, 3, generator=g) * 2
        low = base.to(dtype).requires_grad_(True)
        loss = ALL_CALLS[name](low)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(low.grad).all()
        reference = ALL_CALLS[name](low.detach().float())
        close(loss.float(), reference, rtol=2e-2, atol=2e-2)
        saturated = SATURATED.to(dtype).clamp(-6e4, 6e4).requires_grad_(True)
        loss = ALL_CALLS[name](saturated)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(saturated.grad).all()

    @pytest.mark.parametrize("name", sorted(ALL_CALLS))
    def test_gradcheck_float64(self, name):
        g = gen(20)
        z = (torch.randn(3, 3, generator=g, dtype=torch.float64) * 1.5).requires_grad_(True)
        # hinge kinks have probability 0 at random points
        assert torch.autograd.gradcheck(lambda x: ALL_CALLS[name](x).double(), (z,))


# --- modules and registry --------------------------------------------------------------------


class TestModulesAndRegistry:
    @pytest.mark.parametrize(
        ("name", "function", "kwargs", "target"),
        [
            ("hinge", LF.binary_hinge_loss, {}, "binary"),
            ("squared_hinge", LF.binary_hinge_loss, {"squared": True}, "binary"),
            ("multiclass_hinge", LF.multiclass_hinge_loss, {}, "class"),
            ("crammer_singer", LF.multiclass_hinge_loss, {"kind": "crammer_singer"}, "class"),
            ("focal", LF.sigmoid_focal_loss, {}, "binary"),
            ("softmax_focal", LF.softmax_focal_loss, {}, "class"),
            ("poly", LF.poly_loss, {}, "class"),
        ],
    )
    def test_registry_module_equals_functional(self, name, function, kwargs, target):
        g = gen(21)
        z = torch.randn(4, 3, generator=g, dtype=torch.float64)
        t = torch.randint(0, 3, (4,), generator=g) if target == "class" else torch.randint(0, 2, (4, 3), generator=g).double()
        module = losslab.get_loss(name)
        close(module(z, t), function(z, t, **kwargs), rtol=0, atol=0)

    def test_kl_module_and_weight_buffer(self):
        log_q = torch.log_softmax(torch.randn(3, 4, dtype=torch.float64), 1)
        p = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
        close(losslab.get_loss("kl_div")(log_q, p), F.kl_div(log_q, p, reduction="batchmean"))
        w = torch.rand(4, dtype=torch.float64)
        module = LN.PolyLoss(weight=w, epsilon=[1.0, 2.0])
        assert "weight" in dict(module.named_buffers())
        target = torch.tensor([0, 3, 1])
        close(module(log_q, target), LF.poly_loss(log_q, target, weight=w, epsilon=[1.0, 2.0]))

    def test_registry_metadata(self):
        for name in ("kl_div", "hinge", "squared_hinge", "multi_margin", "crammer_singer",
                     "sigmoid_focal", "softmax_focal", "poly1"):
            info = losslab.get_info(name)
            assert info.family in ("classification", "binary") and info.formula and info.reference
        assert losslab.get_info("multiclass_hinge").name == "multi_margin"
        assert losslab.get_info("focal").name == "sigmoid_focal"
        assert losslab.get_info("poly").name == "poly1"

    @pytest.mark.parametrize("name", ["hinge", "squared_hinge", "sigmoid_focal", "poly1"])
    def test_pointwise_matches_formula(self, name):
        p = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        z = torch.logit(p)
        for y in (0.0, 1.0):
            yy = torch.full_like(p, y)
            t = 2 * y - 1
            expected = {
                "hinge": torch.clamp(1 - t * z, min=0),
                "squared_hinge": torch.clamp(1 - t * z, min=0) ** 2,
                "sigmoid_focal": reference_sigmoid_focal(z, yy, 0.25, 2.0),
                "poly1": -torch.log(p if y else 1 - p) + (1 - (p if y else 1 - p)),
            }[name]
            close(losslab.get_info(name).pointwise(p, yy), expected)


# --- bad input -------------------------------------------------------------------------------

Z = torch.randn(4, 3)
IDX = torch.tensor([0, 2, 1, 1])
BIN = torch.tensor([[0.0, 1.0, 1.0]] * 4)

BAD_INPUT = [
    # (call, exception, message pattern)
    (lambda: LF.kl_div(Z.log_softmax(1), torch.rand(4, 2)), ValueError, r"target: expected the same shape"),
    (lambda: LF.kl_div(Z.log_softmax(1), torch.full((4, 3), 1.5)), ValueError, r"target: expected probabilities in \[0, 1\]"),
    (lambda: LF.kl_div(Z.abs() + 1, torch.full((4, 3), 0.3)), ValueError, r"input: expected log-probabilities"),
    (lambda: LF.kl_div(Z.log_softmax(1), torch.ones(4, 3), log_target=True), ValueError, r"target: expected log-probabilities"),
    (lambda: LF.kl_div(Z.log_softmax(1), IDX), TypeError, r"target: expected a floating-point tensor"),
    (lambda: LF.kl_div(Z.log_softmax(1), Z.softmax(1), reduction="avg"), ValueError, r"reduction: expected one of .*'batchmean'.*got 'avg'"),
    (lambda: LF.binary_hinge_loss(Z, BIN[:, :2]), ValueError, r"target: expected the same shape"),
    (lambda: LF.binary_hinge_loss(Z, BIN * 0.5), ValueError, r"target: expected binary labels in \{-1, \+1\} or \{0, 1\}, got 0\.5"),
    (lambda: LF.binary_hinge_loss(Z, torch.tensor([[-1.0, 0.0, 1.0]] * 4)), ValueError, r"target: .*mix of -1 and 0"),
    (lambda: LF.binary_hinge_loss(IDX, IDX), TypeError, r"input: expected a floating-point tensor"),
    (lambda: LF.binary_hinge_loss(Z, BIN, reduction="mena"), ValueError, r"reduction: expected one of"),
    (lambda: LF.binary_hinge_loss(Z, BIN, margin=float("nan")), ValueError, r"margin: expected a finite number"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX[:3]), ValueError, r"target: expected class indices of shape \(4,\)"),
    (lambda: LF.multiclass_hinge_loss(Z, torch.tensor([0, 3, 1, 1])), ValueError, r"target: expected class indices in \[0, 2\].*got 3"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX.float()), TypeError, r"target: expected an integer tensor"),
    (lambda: LF.multiclass_hinge_loss(Z.view(2, 3, 2), IDX[:2]), ValueError, r"input: expected scores of shape \(N, C\)"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, p=3), ValueError, r"p: expected 1 or 2"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, kind="ovr"), ValueError, r"kind: expected one of"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, weight=torch.ones(4)), ValueError, r"weight: expected .* shape \(3,\), got \(4,\)"),
    (lambda: LF.multiclass_hinge_loss(Z, IDX, reduction="batchmean"), ValueError, r"reduction: expected one of"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN[:2]), ValueError, r"target: expected the same shape"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN + 1), ValueError, r"target: expected binary targets in \[0, 1\], got 2"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN.long()), TypeError, r"target: expected a floating-point tensor"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN, alpha=1.5), ValueError, r"alpha: expected a finite number <= 1, got 1.5"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN, gamma=-1.0), ValueError, r"gamma: expected a finite number >= 0, got -1.0"),
    (lambda: LF.sigmoid_focal_loss(Z, BIN, reduction=None), ValueError, r"reduction: expected one of"),
    (lambda: LF.softmax_focal_loss(Z, IDX[:3]), ValueError, r"target: expected class indices of shape \(4,\)"),
    (lambda: LF.softmax_focal_loss(Z, torch.tensor([0, -1, 1, 1])), ValueError, r"target: expected class indices in \[0, 2\].*got -1"),
    (lambda: LF.softmax_focal_loss(Z, torch.full((4, 3), 2.0)), ValueError, r"target: expected class probabilities in \[0, 1\]"),
    (lambda: LF.softmax_focal_loss(Z, IDX, alpha=torch.ones(2)), ValueError, r"alpha: expected .* shape \(3,\), got \(2,\)"),
    (lambda: LF.softmax_focal_loss(Z, IDX, alpha=-0.5), ValueError, r"alpha: expected a finite number >= 0, got -0.5"),
    (lambda: LF.softmax_focal_loss(Z.long(), IDX), TypeError, r"input: expected a floating-point tensor"),
    (lambda: LF.softmax_focal_loss(Z, IDX, reduction="max"), ValueError, r"reduction: expected one of"),
    (lambda: LF.poly_loss(Z, IDX[:3]), ValueError, r"target: expected class indices of shape \(4,\)"),
    (lambda: LF.poly_loss(Z, torch.tensor([0, 5, 1, 1])), ValueError, r"target: expected class indices in \[0, 2\].*got 5"),
    (lambda: LF.poly_loss(Z, IDX, epsilon=[]), ValueError, r"epsilon: expected a number \(Poly-1\) or a non-empty list"),
    (lambda: LF.poly_loss(Z, IDX, epsilon=[1.0, "a"]), TypeError, r"epsilon\[1\]: expected a finite number, got 'a'"),
    (lambda: LF.poly_loss(Z, IDX, label_smoothing=1.5), ValueError, r"label_smoothing: expected a finite number in \[0, 1\]"),
    (lambda: LF.poly_loss(Z, IDX, weight=torch.ones(3, 1)), ValueError, r"weight: expected a 1-D tensor"),
    (lambda: LF.poly_loss(Z, IDX.bool()), TypeError, r"target: expected an integer tensor"),
    (lambda: LF.poly_loss(Z, IDX, reduction="means"), ValueError, r"reduction: expected one of"),
]


@pytest.mark.parametrize(("call", "error", "pattern"), BAD_INPUT, ids=[f"bad{i}" for i in range(len(BAD_INPUT))])
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


# --- fast paths (issue 6): each checked against the plain formula it replaces ------------------


class TestFastPaths:
    @pytest.mark.parametrize("alpha", [0.25, -1.0])
    @pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
    def test_sigmoid_focal_hand_written_backward_matches_autograd(self, alpha, gamma):
        # A target that requires a gradient takes the autograd path: both must agree in value
        # and in the input's gradient, for hard and soft labels.
        g = gen(30)
        z = torch.randn(6, 5, generator=g, dtype=torch.float64) * 4
        hard = torch.randint(0, 2, (6, 5), generator=g).double()
        soft = torch.rand(6, 5, generator=g, dtype=torch.float64)
        upstream = torch.rand(6, 5, generator=g, dtype=torch.float64)
        for y in (hard, soft):
            fast_z = z.clone().requires_grad_(True)
            fast = LF.sigmoid_focal_loss(fast_z, y, alpha=alpha, gamma=gamma, reduction="none")
            (fast * upstream).sum().backward()
            auto_z = z.clone().requires_grad_(True)
            auto = LF.sigmoid_focal_loss(auto_z, y.clone().requires_grad_(True), alpha=alpha, gamma=gamma,
                                         reduction="none")
            (auto * upstream).sum().backward()
            close(fast, auto.detach(), rtol=1e-12, atol=1e-14)
            close(fast_z.grad, auto_z.grad, rtol=1e-10, atol=1e-12)
            ref_z = z.clone().requires_grad_(True)
            (reference_sigmoid_focal(ref_z, y, alpha, gamma) * upstream).sum().backward()
            close(fast_z.grad, ref_z.grad, rtol=1e-9, atol=1e-12)

    def test_softmax_focal_index_path_both_branches_of_log_one_minus_p(self):
        # p_y above and below 1/2 (the two formulas for log(1 - p_y)), float32 against float64
        z = torch.tensor([[4.0, 0.0, -1.0], [0.2, 0.1, 0.0], [-3.0, 2.0, 1.0], [9.0, -9.0, 0.0]])
        target = torch.tensor([0, 0, 0, 0])
        onehot = F.one_hot(target, 3).double()
        for gamma in (0.5, 2.0):
            expected = reference_softmax_focal(z.double(), onehot, gamma)
            got = LF.softmax_focal_loss(z, target, gamma=gamma, reduction="none")
            close(got.double(), expected, rtol=2e-6, atol=1e-7)
            fast_z = z.clone().requires_grad_(True)
            LF.softmax_focal_loss(fast_z, target, gamma=gamma, reduction="sum").backward()
            ref_z = z.double().requires_grad_(True)
            reference_softmax_focal(ref_z, onehot, gamma).sum().backward()
            close(fast_z.grad.double(), ref_z.grad, rtol=2e-5, atol=1e-6)

    @pytest.mark.parametrize("p", [1, 2])
    def test_weston_watkins_masked_path_every_reduction(self, p):
        # With an ignored sample the hinge goes through reduction="none" plus the mask.
        logits, target, _, weight = multiclass_case((6, 4), seed=31)
        ignored = target.clone()
        ignored[2] = 1
        per_sample = F.multi_margin_loss(logits, target, p=p, margin=0.5, weight=weight, reduction="none")
        got = LF.multiclass_hinge_loss(logits, ignored, p=p, margin=0.5, weight=weight, ignore_index=1,
                                       reduction="none")
        # ignore_index=1 is also a real class: only the samples whose target is 1 are skipped
        skipped = ignored == 1
        close(got, torch.where(skipped, 0.0, per_sample), rtol=1e-12, atol=1e-14)
        close(LF.multiclass_hinge_loss(logits, ignored, p=p, margin=0.5, weight=weight, ignore_index=1,
                                       reduction="sum"), per_sample[~skipped].sum())
        close(LF.multiclass_hinge_loss(logits, ignored, p=p, margin=0.5, weight=weight, ignore_index=1),
              per_sample[~skipped].mean())

    def test_ranking_target_check_still_rejects_near_one(self):
        x = torch.zeros(3)
        with pytest.raises(ValueError, match=r"target: expected labels in \{-1, \+1\}.*0\.5"):
            LF.margin_ranking_loss(x, x, torch.tensor([1.0, 0.5, -1.0]))
        with pytest.raises(ValueError, match=r"target: expected labels in \{-1, \+1\}.*nan"):
            LF.margin_ranking_loss(x, x, torch.tensor([1.0, math.nan, -1.0]))

    def test_kl_div_fast_checks_reject_nan_and_out_of_range(self):
        log_q = torch.log_softmax(torch.randn(2, 3, generator=gen(32)), 1)
        p = torch.softmax(torch.randn(2, 3, generator=gen(33)), 1)
        for bad_input in (log_q.clone().index_fill_(1, torch.tensor([0]), math.nan),
                          log_q.clone().index_fill_(1, torch.tensor([0]), 0.1)):
            with pytest.raises(ValueError, match=r"input: expected log-probabilities"):
                LF.kl_div(bad_input, p)
        with pytest.raises(ValueError, match=r"target: expected probabilities in \[0, 1\]"):
            LF.kl_div(log_q, p.clone().index_fill_(1, torch.tensor([2]), math.nan))
        with pytest.raises(ValueError, match=r"target: expected probabilities in \[0, 1\]"):
            LF.kl_div(log_q, p - 0.5)
        with pytest.raises(ValueError, match=r"target: expected log-probabilities"):
            LF.kl_div(log_q, log_q.clone().index_fill_(1, torch.tensor([1]), math.nan), log_target=True)
