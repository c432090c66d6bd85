"""Soft Dice loss against monai.losses.DiceLoss and a float64 formula from the primer.

Parameter mapping (losslab dice_loss -> monai.losses.DiceLoss):
    squared_denominator      -> squared_pred
    smooth_nr, smooth_dr     -> smooth_nr, smooth_dr (both default 1e-5)
    include_background, batch -> the same
    mode="multiclass", class-index target (N, *)   -> softmax=True, to_onehot_y=True, target (N, 1, *)
    mode="multiclass", one-hot target (N, C, *)    -> softmax=True
    mode="multilabel"        -> sigmoid=True
    mode="binary", input (N, *) -> sigmoid=True with input (N, 1, *)
    ignore_index (class indices) -> ignore_index with to_onehot_y=True
    reduction="none": losslab (N, C) / (N,) / (C,)  <->  MONAI (N, C, 1, ..., 1) / (1, C, 1, ...)
MONAI's one_hot makes float32 targets, so with to_onehot_y the comparison is at 1e-6 absolute
(the squared form takes norms of those float32 targets); with float64 one-hot targets it is
float64-exact.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import functional as LF
from losslab import nn as LN


@pytest.fixture(scope="module")
def monai_losses():
    """MONAI's losses, imported by the tests that compare with them (not when the module is
    collected: the import takes seconds)."""
    from monai import losses

    return losses


def close(got, expected, rtol=1e-6, atol=1e-9):
    torch.testing.assert_close(got, expected, rtol=rtol, atol=atol)


def case(shape=(2, 3, 4, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    index = torch.randint(0, shape[1], shape[:1] + shape[2:], generator=g)
    multilabel = torch.randint(0, 2, shape, generator=g).double()
    return logits, index, multilabel


def one_hot(index, num_classes):
    return F.one_hot(index, num_classes).movedim(-1, 1).double()


def reference_dice(prob, truth, squared, smooth_nr, smooth_dr, batch):
    """The primer's 1 - 2 sum(p g) / (sum p^2 + sum g^2) per (sample, class), smoothed."""
    dims = [0, *range(2, prob.dim())] if batch else list(range(2, prob.dim()))
    inter = (prob * truth).sum(dims)
    if squared:
        denom = (prob**2).sum(dims) + (truth**2).sum(dims)
    else:
        denom = prob.sum(dims) + truth.sum(dims)
    return 1 - (2 * inter + smooth_nr) / (denom + smooth_dr)


class TestAgainstMonai:
    @pytest.mark.parametrize(("squared", "batch", "include_background"), list(itertools.product((True, False), repeat=3)))
    def test_multiclass(self, squared, batch, include_background, monai_losses):
        logits, index, _ = case()
        kw = dict(squared_denominator=squared, batch=batch, include_background=include_background,
                  smooth_nr=1e-4, smooth_dr=2e-4)
        mkw = dict(squared_pred=squared, batch=batch, include_background=include_background,
                   smooth_nr=1e-4, smooth_dr=2e-4, softmax=True)
        for reduction in ("mean", "sum", "none"):
            ref = monai_losses.DiceLoss(to_onehot_y=True, reduction=reduction, **mkw)(logits, index.unsqueeze(1))
            got = LF.dice_loss(logits, index, reduction=reduction, **kw)
            close(got, ref.reshape(got.shape).double(), atol=1e-6)
            ref_oh = monai_losses.DiceLoss(reduction=reduction, **mkw)(logits, one_hot(index, 3))
            close(LF.dice_loss(logits, one_hot(index, 3), reduction=reduction, **kw), ref_oh.reshape(got.shape))

    @pytest.mark.parametrize(("squared", "batch"), list(itertools.product((True, False), repeat=2)))
    def test_multilabel_and_soft_labels(self, squared, batch, monai_losses):
        logits, _, multilabel = case(seed=1)
        for target in (multilabel, torch.rand(multilabel.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)):
            for reduction in ("mean", "sum", "none"):
                ref = monai_losses.DiceLoss(sigmoid=True, squared_pred=squared, batch=batch, reduction=reduction)(logits, target)
                got = LF.dice_loss(logits, target, mode="multilabel", squared_denominator=squared, batch=batch, reduction=reduction)
                close(got, ref.reshape(got.shape))

    @pytest.mark.parametrize("squared", [True, False])
    def test_binary(self, squared, monai_losses):
        logits, _, multilabel = case((3, 1, 4, 4), seed=3)
        for reduction in ("mean", "none"):
            ref = monai_losses.DiceLoss(sigmoid=True, squared_pred=squared, reduction=reduction)(logits, multilabel)
            got = LF.dice_loss(logits.squeeze(1), multilabel.squeeze(1), mode="binary",
                               squared_denominator=squared, reduction=reduction)
            close(got, ref.reshape(got.shape))
            # the channel of size 1 may be kept: the same per-sample pooling
            close(LF.dice_loss(logits, multilabel, mode="binary", squared_denominator=squared, reduction=reduction), got)

    @pytest.mark.parametrize("ignore_index", [255, 1])
    def test_ignore_index(self, ignore_index, monai_losses):
        logits, index, _ = case(seed=4)
        target = index.clone()
        target[0, :2] = ignore_index
        target[1, 3, 1:] = ignore_index
        for squared in (True, False):
            ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, ignore_index=ignore_index, squared_pred=squared,
                                        reduction="none")(logits, target.unsqueeze(1))
            got = LF.dice_loss(logits, target, ignore_index=ignore_index, squared_denominator=squared, reduction="none")
            close(got, ref.reshape(got.shape).double(), atol=1e-6)

    @pytest.mark.parametrize(("batch", "include_background"), list(itertools.product((True, False), repeat=2)))
    def test_class_weight(self, batch, include_background, monai_losses):
        # MONAI's weight: each class's term times its weight, then the plain mean / sum
        logits, index, multilabel = case(seed=6)
        classes = 3 if include_background else 2
        weight = torch.tensor([0.5, 2.0, 0.0][:classes], dtype=torch.float64)
        for reduction in ("mean", "sum", "none"):
            ref = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=batch, weight=weight,
                                        include_background=include_background, reduction=reduction)(
                logits, index.unsqueeze(1))
            got = LF.dice_loss(logits, index, squared_denominator=False, batch=batch, weight=weight,
                               include_background=include_background, reduction=reduction)
            close(got, ref.reshape(got.shape).double(), atol=1e-6)
            ref = monai_losses.DiceLoss(sigmoid=True, weight=weight, batch=batch,
                                        include_background=include_background, reduction=reduction)(logits, multilabel)
            got = LF.dice_loss(logits, multilabel, mode="multilabel", squared_denominator=False, batch=batch,
                               weight=weight, include_background=include_background, reduction=reduction)
            close(got, ref.reshape(got.shape))
        # the Module keeps the weight as a buffer and gives the same value
        module = LN.DiceLoss(weight=weight, include_background=include_background, batch=batch)
        assert "weight" in dict(module.named_buffers())
        close(module(logits, index), LF.dice_loss(logits, index, weight=weight, batch=batch,
                                                  include_background=include_background))

    def test_default_is_the_primers_squared_form(self):
        logits, index, _ = case(seed=5)
        prob = torch.softmax(logits, 1)
        expected = reference_dice(prob, one_hot(index, 3), True, 1e-5, 1e-5, False)
        close(LF.dice_loss(logits, index, reduction="none"), expected, rtol=1e-12, atol=1e-14)
        close(LN.DiceLoss()(logits, index), expected.mean(), rtol=1e-12, atol=1e-14)
        close(losslab.get_loss("dice")(logits, index), expected.mean(), rtol=1e-12, atol=1e-14)


class TestFormula:
    def test_hand_computed(self):
        # p = [0.5, 0.5, 0, 1], g = [1, 0, 0, 1]: squared 1 - 2 * 1.5 / (1.5 + 2) = 1/7; plain 1 - 3 / 4
        p = torch.tensor([[0.5, 0.5, 0.0, 1.0]], dtype=torch.float64)
        g = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
        kw = dict(mode="binary", from_logits=False, smooth_nr=0.0, smooth_dr=0.0, reduction="none")
        close(LF.dice_loss(p, g, **kw), torch.tensor([1 / 7], dtype=torch.float64), rtol=1e-14, atol=0)
        close(LF.dice_loss(p, g, squared_denominator=False, **kw), torch.tensor([0.25], dtype=torch.float64), rtol=1e-14, atol=0)

    @pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
    def test_perfect_prediction_is_zero(self, mode):
        _, index, multilabel = case(seed=6)
        truth = one_hot(index, 3) if mode == "multiclass" else multilabel
        for squared, batch in itertools.product((True, False), repeat=2):
            kw = dict(mode=mode, squared_denominator=squared, batch=batch)
            assert LF.dice_loss(truth, truth, from_logits=False, **kw).item() == 0.0
            # from saturated logits the probabilities are exactly 0 and 1 in float64
            logits = (truth * 2 - 1) * 1e4
            target = index if mode == "multiclass" else truth
            close(LF.dice_loss(logits, target, **kw), torch.tensor(0.0, dtype=torch.float64), rtol=0, atol=1e-12)

    @pytest.mark.parametrize("mode", ["binary", "multilabel"])
    def test_integer_and_bool_masks_equal_float_masks(self, mode):
        logits, _, multilabel = case(seed=10)
        expected = LF.dice_loss(logits, multilabel, mode=mode, reduction="none")
        for mask in (multilabel.long(), multilabel.bool()):
            close(LF.dice_loss(logits, mask, mode=mode, reduction="none"), expected, rtol=0, atol=0)

    def test_disjoint_prediction_is_one(self):
        truth = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
        loss = LF.dice_loss(1 - truth, truth, mode="binary", from_logits=False, smooth_nr=0.0, smooth_dr=0.0)
        assert loss.item() == 1.0

    def test_ignored_pixels_change_nothing(self):
        logits, index, _ = case(seed=7)
        target = index.clone()
        target[:, 0, :] = -1
        masked = LF.dice_loss(logits, target, ignore_index=-1, reduction="none")
        expected = reference_dice(torch.softmax(logits, 1)[:, :, 1:], one_hot(index, 3)[:, :, 1:], True, 1e-5, 1e-5, False)
        close(masked, expected)

    def test_binary_ignore_index_in_label_mask(self):
        logits, _, multilabel = case((2, 6), seed=8)
        target = multilabel.clone()
        target[:, :2] = 255
        got = LF.dice_loss(logits, target, mode="binary", ignore_index=255, reduction="none")
        expected = reference_dice(torch.sigmoid(logits[:, None, 2:]), multilabel[:, None, 2:], True, 1e-5, 1e-5, False)
        close(got, expected.squeeze(1))


SATURATED = torch.tensor([[[1e4, -1e4], [-1e4, 1e4]], [[-1e4, 1e4], [3.0, -2.0]]])  # (N=2, C=2, 2)
INDEX = torch.tensor([[0, 1], [1, 1]])
MULTI = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]]])
CALLS = {
    "multiclass": lambda z: LF.dice_loss(z, INDEX),
    "multiclass_plain_batch": lambda z: LF.dice_loss(z, INDEX, squared_denominator=False, batch=True),
    "multiclass_ignore": lambda z: LF.dice_loss(z, torch.tensor([[0, -1], [1, 1]]), ignore_index=-1),
    "multilabel": lambda z: LF.dice_loss(z, MULTI.to(z.dtype), mode="multilabel"),
    "binary": lambda z: LF.dice_loss(z, MULTI.to(z.dtype), mode="binary", squared_denominator=False),
}


class TestNumerics:
    @pytest.mark.parametrize("name", sorted(CALLS))
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
    def test_saturated_and_low_precision(self, name, dtype):
        z = SATURATED.detach().to(dtype).clone().requires_grad_(True)
        loss = CALLS[name](z)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
        assert 0.0 <= loss.item() <= 1.0
        reference = CALLS[name](SATURATED.double())
        close(loss.double(), reference, rtol=1e-2, atol=1e-2)

    @pytest.mark.parametrize("name", sorted(CALLS))
    def test_gradcheck_float64(self, name):
        z = torch.randn(2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
        assert torch.autograd.gradcheck(CALLS[name], (z,))

    def test_empty_class_with_empty_prediction_is_finite(self):
        # neither prediction nor label has class 1: 1 - s_nr / s_dr = 0, no 0/0
        p = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]], requires_grad=True)
        loss = LF.dice_loss(p, torch.tensor([[0, 0]]), from_logits=False, reduction="none")
        loss.sum().backward()
        assert torch.equal(loss.detach(), torch.zeros(1, 2)) and torch.isfinite(p.grad).all()


Z = torch.randn(2, 3, 4)
IDX = torch.randint(0, 3, (2, 4))


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: LF.dice_loss(Z, IDX[:, :3]), ValueError, r"target: expected class indices of shape \(2, 4\)"),
        (lambda: LF.dice_loss(Z, torch.full((2, 4), 3)), ValueError, r"target: expected class indices in \[0, 2\].*got 3"),
        (lambda: LF.dice_loss(Z, torch.full((2, 4), -1)), ValueError, r"target: expected class indices in \[0, 2\].*got -1"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3, 3)), ValueError, r"target: expected the same shape as input"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3, 4) + 1), ValueError, r"target: expected one-hot or class probabilities in \[0, 1\]"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3, 4), ignore_index=0), ValueError, r"ignore_index: needs class-index targets"),
        (lambda: LF.dice_loss(Z, torch.full((2, 3, 4), 2.0), mode="multilabel"), ValueError, r"target: expected binary targets .*in \[0, 1\], got 2"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3), mode="binary"), ValueError, r"target: expected the same shape"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3, 4), mode="binary", include_background=False), ValueError, r"include_background: has no meaning in binary mode"),
        (lambda: LF.dice_loss(Z[:, :1], IDX.clamp(max=0), include_background=False), ValueError, r"include_background: False needs at least 2 classes"),
        (lambda: LF.dice_loss(torch.randn(4), IDX), ValueError, r"input: expected at least 2 dimensions"),
        (lambda: LF.dice_loss(Z.long(), IDX), TypeError, r"input: expected a floating-point tensor"),
        (lambda: LF.dice_loss(Z, IDX.float()), TypeError, r"target: got a floating tensor .*class indices must be an integer tensor"),
        (lambda: LF.dice_loss(Z, IDX, mode="softmax"), ValueError, r"mode: expected one of 'binary', 'multiclass', 'multilabel', got 'softmax'"),
        (lambda: LF.dice_loss(Z, IDX, reduction="batchmean"), ValueError, r"reduction: expected one of"),
        (lambda: LF.dice_loss(Z, IDX, smooth_dr=-1.0), ValueError, r"smooth_dr: expected a finite number >= 0"),
        (lambda: LF.dice_loss(Z, IDX, batch=1), TypeError, r"batch: expected a bool"),
        (lambda: LF.dice_loss(Z, IDX, ignore_index=1.5), TypeError, r"ignore_index: expected an integer or None"),
        (lambda: LF.dice_loss(Z.sigmoid() * 2, IDX, from_logits=False), ValueError, r"input: expected probabilities \(from_logits=False\) in \[0, 1\]"),
        (lambda: LF.dice_loss(Z, IDX, weight=torch.ones(2)), ValueError, r"weight: expected one weight per class kept, shape \(3,\)"),
        (lambda: LF.dice_loss(Z, IDX, weight=torch.ones(3), include_background=False), ValueError, r"weight: expected one weight per class kept, shape \(2,\)"),
        (lambda: LF.dice_loss(Z, IDX, weight=torch.tensor([1.0, -1.0, 1.0])), ValueError, r"weight: expected finite class weights >= 0, got -1.0"),
        (lambda: LF.dice_loss(Z, IDX, weight=torch.ones(3, dtype=torch.long)), TypeError, r"weight: expected a floating-point tensor"),
        (lambda: LF.dice_loss(Z, torch.rand(2, 3, 4), mode="binary", weight=torch.ones(1)), ValueError, r"weight: per-class weights need a class dim"),
    ],
)
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
