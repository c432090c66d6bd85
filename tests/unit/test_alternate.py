"""The paper's losses (M, full M, L, full L, extras) against float64 formulas from the spec."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losslab
from losslab import functional as LF

# float64 reference formulas, straight from spec/losses.md §1, written on p (not on logits).
TRUE_TERM = {
    "m": lambda p: 1.0 / p - 1.0,
    "l": lambda p: 1.0 / torch.sqrt(1.0 - (1.0 - p) ** 2) - 1.0,
}
FALSE_TERM = {
    "m": lambda p: 1.0 / (1.0 - p) - 1.0,
    "l": lambda p: 1.0 / torch.sqrt(1.0 - p**2) - 1.0,
}
MULTICLASS = {"m": LF.m_loss, "l": LF.l_loss}
BINARY = {"m": LF.binary_m_loss, "l": LF.binary_l_loss}


def reference_elementwise(kind: str, full: bool, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = y * TRUE_TERM[kind](p)
    if full:
        loss = loss + (1.0 - y) * FALSE_TERM[kind](p)
    return loss


def reference_multiclass(kind, full, logits, target_probs, weight=None):
    p = torch.softmax(logits.double(), dim=1)
    per_class = reference_elementwise(kind, full, p, target_probs.double())
    if weight is not None:
        per_class = per_class * weight.double().view((1, -1) + (1,) * (logits.dim() - 2))
    return per_class.sum(1)


def one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(target, num_classes).movedim(-1, 1).double()


KINDS = [("m", False), ("m", True), ("l", False), ("l", True)]


class TestMulticlassAgainstFormula:
    @pytest.mark.parametrize(("kind", "full"), KINDS)
    @pytest.mark.parametrize("shape", [(7, 5), (4, 3, 2, 3)])
    def test_class_indices_float64(self, kind, full, shape):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(shape, generator=g, dtype=torch.float64) * 3
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
        expected = reference_multiclass(kind, full, logits, one_hot(target, shape[1]))
        got = MULTICLASS[kind](logits, target, full=full, reduction="none")
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(MULTICLASS[kind](logits, target, full=full), expected.mean())
        torch.testing.assert_close(MULTICLASS[kind](logits, target, full=full, reduction="sum"), expected.sum())

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_soft_targets_and_probability_input(self, kind, full):
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
        soft = torch.softmax(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
        expected = reference_multiclass(kind, full, logits, soft)
        torch.testing.assert_close(MULTICLASS[kind](logits, soft, full=full, reduction="none"), expected)
        probs = torch.softmax(logits, dim=1)
        got = MULTICLASS[kind](probs, soft, full=full, from_logits=False, reduction="none")
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_float32_matches_high_precision_near_certainty(self, kind, full):
        # Margins up to 14 put p_true within ~1e-6 of 1: the regime where a naive 1 - p loses
        # every digit in float32 (and the plain formula loses digits even in float64, hence
        # the 50-digit mpmath reference).
        mpmath = pytest.importorskip("mpmath", reason="mpmath ships with sympy, a torch dependency")
        mpmath.mp.dps = 50
        rows = [[m, 0.0, -0.7] for m in (0.0, 2.0, 6.0, 10.0, 14.0, -3.0)]
        expected = []
        for row in rows:
            exps = [mpmath.exp(mpmath.mpf(v)) for v in row]
            probs = [e / sum(exps) for e in exps]
            total = mpmath.mpf(0)
            for c, p in enumerate(probs):
                if c == 0:
                    total += 1 / p - 1 if kind == "m" else 1 / mpmath.sqrt(p * (2 - p)) - 1
                elif full:
                    total += 1 / (1 - p) - 1 if kind == "m" else 1 / mpmath.sqrt(1 - p * p) - 1
            expected.append(float(total))
        got = MULTICLASS[kind](torch.tensor(rows), torch.zeros(6, dtype=torch.long), full=full, reduction="none")
        torch.testing.assert_close(got.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=0)

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_index_and_one_hot_targets_agree(self, kind, full):
        g = torch.Generator().manual_seed(2)
        logits = torch.randn(9, 4, generator=g, dtype=torch.float64)
        target = torch.randint(0, 4, (9,), generator=g)
        weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
        for reduction in ("none", "sum"):
            a = MULTICLASS[kind](logits, target, full=full, weight=weight, reduction=reduction)
            b = MULTICLASS[kind](logits, one_hot(target, 4), full=full, weight=weight, reduction=reduction)
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(
            MULTICLASS[kind](logits, target, full=full), MULTICLASS[kind](logits, one_hot(target, 4), full=full)
        )

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_weight_and_ignore_index_follow_cross_entropy(self, kind, full):
        g = torch.Generator().manual_seed(3)
        logits = torch.randn(8, 3, generator=g, dtype=torch.float64)
        target = torch.tensor([0, 1, 2, -100, 1, 0, -100, 2])
        weight = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
        keep = target != -100
        safe = torch.where(keep, target, 0)
        per_class = reference_elementwise(kind, full, torch.softmax(logits, 1), one_hot(safe, 3)) * weight
        per_sample = torch.where(keep, per_class.sum(1), 0.0)
        got = MULTICLASS[kind](logits, target, full=full, weight=weight, reduction="none")
        torch.testing.assert_close(got, per_sample)
        expected_mean = per_sample.sum() / weight[safe][keep].sum()
        got_mean = MULTICLASS[kind](logits, target, full=full, weight=weight)
        torch.testing.assert_close(got_mean, expected_mean)
        # the same denominator rule as F.cross_entropy
        ce = F.cross_entropy(logits, target, weight=weight)
        ce_by_hand = (F.cross_entropy(logits, target, weight=weight, reduction="none")).sum() / weight[safe][keep].sum()
        torch.testing.assert_close(ce, ce_by_hand)

    def test_all_ignored_gives_nan_like_cross_entropy_with_a_zero_gradient(self):
        logits = torch.randn(3, 4, requires_grad=True)
        loss = LF.m_loss(logits, torch.full((3,), -100))
        loss.backward()
        assert torch.isnan(loss)
        assert torch.equal(logits.grad, torch.zeros_like(logits))

    def test_unbatched_input(self):
        logits = torch.randn(5, dtype=torch.float64)
        target = torch.tensor(2)
        expected = reference_multiclass("l", True, logits[None], one_hot(target[None], 5))[0]
        torch.testing.assert_close(LF.l_loss(logits, target, full=True, reduction="none"), expected)


class TestIdentities:
    def test_m_is_expm1_of_cross_entropy(self):
        g = torch.Generator().manual_seed(4)
        logits = torch.randn(16, 7, generator=g, dtype=torch.float64) * 4
        target = torch.randint(0, 7, (16,), generator=g)
        torch.testing.assert_close(
            LF.m_loss(logits, target, reduction="none"),
            torch.expm1(F.cross_entropy(logits, target, reduction="none")),
        )

    def test_binary_full_m_is_exponential_loss(self):
        z = torch.linspace(-8, 8, 41, dtype=torch.float64)
        y = (torch.arange(41) % 2).double()
        expected = y * torch.exp(-z) + (1 - y) * torch.exp(z)
        torch.testing.assert_close(LF.binary_m_loss(z, y, full=True, reduction="none"), expected)
        torch.testing.assert_close(LF.binary_m_loss(z, y, reduction="none"), y * torch.exp(-z))

    def test_parametric_m_with_alpha_one_is_m(self):
        logits = torch.randn(5, 3, dtype=torch.float64)
        target = torch.tensor([0, 2, 1, 1, 0])
        torch.testing.assert_close(LF.parametric_m_loss(logits, target, alpha=1.0), LF.m_loss(logits, target))

    def test_hand_computed_values(self):
        half = torch.tensor([0.5], dtype=torch.float64)
        one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        kw = {"from_logits": False, "reduction": "sum"}
        assert LF.binary_m_loss(half, one, **kw).item() == pytest.approx(1.0)
        assert LF.binary_l_loss(half, one, **kw).item() == pytest.approx(1 / math.sqrt(0.75) - 1)
        assert LF.binary_l_loss(half, zero, full=True, **kw).item() == pytest.approx(1 / math.sqrt(0.75) - 1)
        assert LF.binary_m_loss(torch.tensor([0.8], dtype=torch.float64), zero, full=True, **kw).item() == pytest.approx(4.0)
        p = torch.tensor([0.3], dtype=torch.float64)
        assert LF.binary_parabolic_loss(p, one, **kw).item() == pytest.approx(1 - 0.09)
        assert LF.binary_circle_loss(p, one, **kw).item() == pytest.approx(math.sqrt(1 - 0.09))
        assert LF.binary_cosine_loss(p, one, **kw).item() == pytest.approx(math.cos(math.pi * 0.15))
        assert LF.binary_parametric_m_loss(p, one, alpha=2.0, **kw).item() == pytest.approx(1 / 0.09 - 1)

    def test_zero_at_the_right_target(self):
        z = torch.tensor([40.0, -40.0], dtype=torch.float64)
        y = torch.tensor([1.0, 0.0], dtype=torch.float64)
        for fn in (LF.binary_m_loss, LF.binary_l_loss):
            assert fn(z, y, full=True, reduction="sum").item() == pytest.approx(0.0, abs=1e-6)


class TestBinary:
    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_against_formula_with_weights(self, kind, full):
        g = torch.Generator().manual_seed(5)
        z = torch.randn(6, 3, generator=g, dtype=torch.float64) * 2
        y = torch.rand(6, 3, generator=g, dtype=torch.float64)
        pos_weight = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
        weight = torch.rand(6, 1, generator=g, dtype=torch.float64)
        p = torch.sigmoid(z)
        expected = y * TRUE_TERM[kind](p) * pos_weight
        if full:
            expected = expected + (1 - y) * FALSE_TERM[kind](p)
        expected = expected * weight
        got = BINARY[kind](z, y, full=full, pos_weight=pos_weight, weight=weight, reduction="none")
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(BINARY[kind](z, y, full=full, pos_weight=pos_weight, weight=weight), expected.mean())
        got_p = BINARY[kind](p, y, full=full, from_logits=False, pos_weight=pos_weight, weight=weight, reduction="none")
        torch.testing.assert_close(got_p, expected)

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_float32_near_certainty(self, kind, full):
        z = torch.tensor([-12.0, -5.0, 0.0, 5.0, 12.0, 15.0], dtype=torch.float64)
        for target in (0.0, 1.0):
            y = torch.full_like(z, target)
            expected = reference_elementwise(kind, full, torch.sigmoid(z), y)
            got = BINARY[kind](z.float(), y.float(), full=full, reduction="none").double()
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-12)


class TestClampAndNumerics:
    def test_probability_clamp_uses_eps(self):
        p = torch.tensor([0.0, 1e-12], dtype=torch.float64)
        y = torch.ones(2, dtype=torch.float64)
        got = LF.binary_m_loss(p, y, from_logits=False, reduction="none", eps=1e-7)
        torch.testing.assert_close(got, torch.full((2,), 1 / 1e-7 - 1, dtype=torch.float64))

    @pytest.mark.parametrize("name", ["m", "full_m", "l", "full_l", "parametric_m", "parabolic", "circle", "cosine"])
    def test_saturated_logits_float32(self, name):
        logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0], [0.0, 0.0, -1e4]], requires_grad=True)
        target = torch.tensor([1, 1, 2])
        loss = losslab.get_loss(name)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
        binary = losslab.get_loss("binary_" + name)
        z = torch.tensor([1e4, -1e4, 30.0, -30.0], requires_grad=True)
        out = binary(z, torch.tensor([0.0, 1.0, 0.0, 1.0]))
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(z.grad).all()

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_half_precision_inputs(self, dtype, kind, full):
        logits = (torch.randn(32, 10) * 20).to(dtype).requires_grad_(True)
        target = torch.randint(0, 10, (32,))
        loss = MULTICLASS[kind](logits, target, full=full, reduction="sum")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()
        assert logits.grad.dtype == dtype
        z = (torch.randn(64) * 30).to(dtype).requires_grad_(True)
        y = (torch.rand(64) > 0.5).to(dtype)
        out = BINARY[kind](z, y, full=full, reduction="sum")
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(z.grad.float()).all()
        # half inputs are computed in float32; the value matches a float32 evaluation
        ref = BINARY[kind](z.detach().float(), y.float(), full=full, reduction="sum",
                           eps=float(torch.finfo(dtype).eps))
        torch.testing.assert_close(out, ref)


GRADCHECK_FUNCTIONS = [
    ("m", lambda z, t: LF.m_loss(z, t)),
    ("full_m", lambda z, t: LF.m_loss(z, t, full=True)),
    ("l", lambda z, t: LF.l_loss(z, t)),
    ("full_l", lambda z, t: LF.l_loss(z, t, full=True)),
    ("parametric_m", lambda z, t: LF.parametric_m_loss(z, t, alpha=1.5)),
    ("parabolic", lambda z, t: LF.parabolic_loss(z, t)),
    ("circle", lambda z, t: LF.circle_loss(z, t)),
    ("cosine", lambda z, t: LF.cosine_loss(z, t)),
]


class TestGradcheck:
    @pytest.mark.parametrize(("name", "fn"), GRADCHECK_FUNCTIONS)
    def test_multiclass(self, name, fn):
        g = torch.Generator().manual_seed(6)
        z = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
        t = torch.tensor([0, 2, 1, 2])
        assert torch.autograd.gradcheck(lambda x: fn(x, t), (z,))
        soft = torch.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), 1)
        assert torch.autograd.gradcheck(lambda x: fn(x, soft), (z,))

    @pytest.mark.parametrize(("kind", "full"), KINDS)
    def test_binary_and_probability_input(self, kind, full):
        z = torch.randn(5, dtype=torch.float64, requires_grad=True)
        y = torch.rand(5, dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda x: BINARY[kind](x, y, full=full), (z,))
        p = torch.rand(5, dtype=torch.float64).mul(0.8).add(0.1).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x: BINARY[kind](x, y, full=full, from_logits=False), (p,))

    @pytest.mark.parametrize("name", ["binary_parametric_m", "binary_parabolic", "binary_circle", "binary_cosine"])
    def test_binary_extras(self, name):
        z = torch.randn(5, dtype=torch.float64, requires_grad=True)
        y = torch.rand(5, dtype=torch.float64)
        module = losslab.get_loss(name)
        assert torch.autograd.gradcheck(lambda x: module(x, y), (z,))


class TestReductionsAndModules:
    @pytest.mark.parametrize(("name", "full"), [("m", False), ("full_m", True), ("l", False), ("full_l", True)])
    def test_module_matches_functional_and_shapes(self, name, full):
        logits = torch.randn(4, 3, 5, 2)
        target = torch.randint(0, 3, (4, 5, 2))
        fn = MULTICLASS[name.replace("full_", "")]
        for reduction, shape in (("none", (4, 5, 2)), ("mean", ()), ("sum", ())):
            module = losslab.get_loss(name, reduction=reduction)
            out = module(logits, target)
            assert out.shape == shape
            torch.testing.assert_close(out, fn(logits, target, full=full, reduction=reduction))
        binary = losslab.get_loss(f"binary_{name}", reduction="none")
        z, y = torch.randn(4, 6), torch.rand(4, 6)
        assert binary(z, y).shape == (4, 6)
        torch.testing.assert_close(binary(z, y), BINARY[name.replace("full_", "")](z, y, full=full, reduction="none"))

    def test_module_weight_is_a_buffer(self):
        module = losslab.MLoss(weight=torch.tensor([1.0, 2.0]))
        assert "weight" in dict(module.named_buffers())
        module = module.double()
        z = torch.randn(3, 2, dtype=torch.float64)
        t = torch.tensor([0, 1, 1])
        torch.testing.assert_close(module(z, t), LF.m_loss(z, t, weight=torch.tensor([1.0, 2.0], dtype=torch.float64)))


class TestBadInput:
    def test_shape_mismatch_binary(self):
        with pytest.raises(ValueError, match=r"target: expected the same shape as input \(4, 3\), got \(4,\)"):
            LF.binary_m_loss(torch.randn(4, 3), torch.rand(4))

    def test_index_shape_mismatch(self):
        with pytest.raises(ValueError, match=r"target: expected class indices of shape \(4,\)"):
            LF.l_loss(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))

    def test_class_index_out_of_range(self):
        with pytest.raises(ValueError, match=r"target: expected class indices in \[0, 2\].*got 3"):
            LF.m_loss(torch.randn(4, 3), torch.tensor([0, 1, 3, 2]))
        with pytest.raises(ValueError, match="target: expected class indices"):
            LF.m_loss(torch.randn(2, 3), torch.tensor([-1, 0]))

    def test_binary_target_out_of_range(self):
        with pytest.raises(ValueError, match=r"target: expected binary targets in \[0, 1\], got 2"):
            LF.binary_l_loss(torch.randn(3), torch.tensor([0.0, 2.0, 1.0]))
        with pytest.raises(ValueError, match="target: expected binary targets"):
            LF.binary_l_loss(torch.randn(2), torch.tensor([0.0, float("nan")]))

    def test_probability_input_out_of_range(self):
        with pytest.raises(ValueError, match="input: expected probabilities"):
            LF.binary_m_loss(torch.tensor([1.5]), torch.tensor([1.0]), from_logits=False)

    def test_unknown_reduction(self):
        with pytest.raises(ValueError, match=r"reduction: expected one of 'mean', 'sum', 'none', got 'avg'"):
            LF.m_loss(torch.randn(2, 3), torch.tensor([0, 1]), reduction="avg")

    def test_wrong_dtypes(self):
        with pytest.raises(TypeError, match="input: expected a floating-point tensor.*got dtype torch.int64"):
            LF.m_loss(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1]))
        with pytest.raises(TypeError, match="target: expected a floating-point tensor"):
            LF.binary_m_loss(torch.randn(3), torch.tensor([0, 1, 1]))
        with pytest.raises(TypeError, match="input: expected a torch.Tensor, got list"):
            LF.l_loss([0.1, 0.2], torch.tensor([0]))

    def test_weight_shape(self):
        with pytest.raises(ValueError, match=r"weight: expected a 1-D tensor with one entry per class, shape \(3,\), got \(2,\)"):
            LF.m_loss(torch.randn(2, 3), torch.tensor([0, 1]), weight=torch.ones(2))
        with pytest.raises(ValueError, match="pos_weight: expected a tensor that broadcasts"):
            LF.binary_m_loss(torch.randn(4, 3), torch.rand(4, 3), pos_weight=torch.ones(4))

    def test_eps_and_alpha(self):
        with pytest.raises(ValueError, match=r"eps: expected a finite number in \[0, 0.5\), got 0.7"):
            LF.m_loss(torch.randn(2, 3), torch.tensor([0, 1]), eps=0.7)
        with pytest.raises(ValueError, match="alpha: expected a finite number > 0, got -1"):
            LF.parametric_m_loss(torch.randn(2, 3), torch.tensor([0, 1]), alpha=-1)

    def test_value_checks_can_be_disabled(self):
        losslab.set_validation(False)
        try:
            out = LF.binary_m_loss(torch.zeros(2), torch.tensor([0.5, 1.0]))
            assert torch.isfinite(out)
        finally:
            losslab.set_validation(True)
