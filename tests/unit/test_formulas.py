"""The numeric core (losslab.functional._formulas): each formula written once, reached by the
reference formulas, the fused kernels and the Keras adapter, and equal to the plain formulas
in p at float64."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import losslab
from losslab.functional import _formulas as FM
from losslab.functional import alternate, classification, regression

P = torch.tensor([1e-6, 0.01, 0.2, 0.5, 0.7, 0.99, 1 - 1e-6], dtype=torch.float64)
LOG_P, LOG_Q = torch.log(P), torch.log1p(-P)

# the plain formulas in p, for autograd in p (float64, away from 0 and 1) and, in mpmath at 50
# digits, the reference values (mpmath ships with sympy, a torch dependency)
DIRECT = {
    "m_true": lambda p, m: 1 / p - 1,
    "m_false": lambda p, m: 1 / (1 - p) - 1,
    "l_true": lambda p, m: 1 / m.sqrt(p * (2 - p)) - 1,
    "l_false": lambda p, m: 1 / m.sqrt(1 - p**2) - 1,
    "parabolic_true": lambda p, m: 1 - p**2,
    "circle_true": lambda p, m: m.sqrt(1 - p**2),
    "cosine_true": lambda p, m: m.cos(m.pi * p / 2),
}


def _exact(name: str) -> torch.Tensor:
    """DIRECT[name] at each entry of P (taken exactly), in 50-digit arithmetic, rounded to float64."""
    import mpmath

    with mpmath.workdps(50):
        return torch.tensor([float(DIRECT[name](mpmath.mpf(float(p)), mpmath)) for p in P], dtype=torch.float64)


def _definitions() -> dict[str, list[str]]:
    """Top-level function names of every module of the losslab package -> the modules."""
    found: dict[str, list[str]] = {}
    root = Path(losslab.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                found.setdefault(node.name, []).append(str(path.relative_to(root)))
    return found


def test_each_formula_is_defined_once_in_the_core():
    definitions = _definitions()
    core = [name for name in FM.__all__ if callable(getattr(FM, name)) and not isinstance(getattr(FM, name), type)]
    assert "softmax_log_pair" in core and "l_true_terms" in core
    for name in core:
        if name == "softmax_log_pair":       # alternate's public torch form delegates to it
            assert definitions[name] == ["functional/_formulas.py", "functional/alternate.py"]
            continue
        assert definitions[name] == ["functional/_formulas.py"], name
    # the copies the core replaced exist nowhere
    for old in ("_m_true", "_m_false", "_l_true", "_l_false", "_parabolic_true", "_circle_true",
                "_cosine_true", "_softmax_log_pair", "_clip_logs", "_clamp_bounds", "_l_true_kernel"):
        assert old not in definitions, (old, definitions.get(old))


def test_the_consumers_reach_the_core_function_objects():
    from losslab.functional import _fused
    from losslab.functional._fused import elementwise, multiclass

    for name in ("m_true", "m_false", "l_true", "l_false", "parabolic_true", "circle_true",
                 "cosine_true", "parametric_m_true", "probability_log_pair", "clamp_log_pair"):
        assert getattr(alternate, name) is getattr(FM, name), name
    assert alternate._parametric_m_true(2.0).func is FM.parametric_m_true
    assert multiclass.TERMS is FM.TERMS and multiclass.softmax_log_pair is FM.softmax_log_pair
    assert FM.TERMS == {"m": (FM.m_true_terms, FM.m_false_terms), "l": (FM.l_true_terms, FM.l_false_terms)}
    assert _fused.log_cosh_of_error is elementwise.log_cosh_of_error is FM.log_cosh_of_error
    assert regression.log_cosh_of_error is FM.log_cosh_of_error and regression.smae_of_error is FM.smae_of_error
    assert classification.focal_modulation is elementwise.focal_modulation is FM.focal_modulation
    # the fused kernels' (value, k) is the core's, bit for bit
    for kind in ("m", "l"):
        for side, kernel in ((0, multiclass._true_kernel), (1, multiclass._false_kernel)):
            got = kernel(kind, LOG_P, LOG_Q)
            expected = FM.TERMS[kind][side](LOG_P, LOG_Q)
            assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("name", list(DIRECT))
def test_kernels_equal_the_formulas_in_p(name):
    torch.testing.assert_close(getattr(FM, name)(LOG_P, LOG_Q), _exact(name), rtol=1e-12, atol=1e-300)


def test_parametric_m_is_m_at_alpha_one_and_the_power_elsewhere():
    torch.testing.assert_close(FM.parametric_m_true(LOG_P, LOG_Q, alpha=1.0), _exact("m_true"), rtol=1e-12, atol=0)
    torch.testing.assert_close(FM.parametric_m_true(LOG_P, LOG_Q, alpha=2.5), P**-2.5 - 1, rtol=1e-10, atol=0)


@pytest.mark.parametrize("base", ["m", "l"])
@pytest.mark.parametrize("side", [0, 1], ids=["y=1", "y=0"])
def test_terms_give_the_kernel_value_and_k_equal_to_p_dl_dp(base, side):
    kernel = {("m", 0): FM.m_true, ("m", 1): FM.m_false, ("l", 0): FM.l_true, ("l", 1): FM.l_false}[base, side]
    direct = DIRECT[f"{base}_{'true' if side == 0 else 'false'}"]
    value, k = FM.TERMS[base][side](LOG_P, LOG_Q)
    # the same bits as the kernel the reference path differentiates
    assert torch.equal(value, kernel(LOG_P, LOG_Q))
    p = P[1:-1].clone().requires_grad_()        # away from 0 and 1, where autograd in p is exact
    (dl_dp,) = torch.autograd.grad(direct(p, torch).sum(), p)
    torch.testing.assert_close(k[1:-1], P[1:-1] * dl_dp, rtol=1e-9, atol=0)


def test_softmax_log_pair_near_certainty_and_against_float64():
    logits = torch.tensor([[2.0, -1.0, 0.5], [40.0, 0.0, 0.0], [1e4, 1e4 - 3.0, -5.0]], dtype=torch.float64)
    log_p, log_q = FM.softmax_log_pair(logits, 1)
    torch.testing.assert_close(log_p, torch.log_softmax(logits, 1), rtol=1e-13, atol=1e-13)
    # 1 - p_top = 2 e^-40 / (1 + 2 e^-40): the direct log1p(-p) is -inf there
    assert log_q[1, 0].item() == pytest.approx(math.log(2.0) - 40.0 - math.log1p(2 * math.exp(-40.0)), rel=1e-14)
    assert torch.log1p(-torch.softmax(logits, 1))[1, 0] == -math.inf
    p = torch.softmax(logits[:1], 1)
    torch.testing.assert_close(log_q[:1], torch.log1p(-p), rtol=1e-13, atol=0)
    # float32 logits of 1e4 keep a margin of 3: log(1 - p_top) = log_sigmoid(-(3 - log1p(e^-10003)))
    log_q32 = FM.softmax_log_pair(logits[2:].float(), 1)[1]
    expected = -math.log1p(math.exp(3.0 - math.log1p(math.exp(-10003.0))))
    assert log_q32[0, 0].item() == pytest.approx(expected, rel=2e-6)
    # one class: p = 1, log(1 - p) = -inf
    one = FM.softmax_log_pair(torch.zeros(2, 1, dtype=torch.float64), 1)
    assert torch.equal(one[0], torch.zeros(2, 1, dtype=torch.float64)) and (one[1] == -math.inf).all()


def test_probability_log_pair_clamps_in_log_space():
    eps = 1e-7
    probs = torch.tensor([0.0, 1e-9, 0.25, 1 - 1e-9, 1.0], dtype=torch.float32)
    log_p, log_q = FM.probability_log_pair(probs, eps)
    low, high = FM.log_clamp_bounds(eps)
    assert (low, high) == (math.log(eps), math.log1p(-eps))
    # the documented bounds, although float32 cannot hold 1 - 1e-7
    expected_p = torch.tensor([low, low, math.log(0.25), high, high], dtype=torch.float32)
    expected_q = torch.tensor([high, high, math.log(0.75), low, low], dtype=torch.float32)
    assert torch.equal(log_p, expected_p) and torch.equal(log_q, expected_q)
    unclamped = FM.probability_log_pair(probs.double(), 0.0)
    assert unclamped[0][0] == -math.inf and unclamped[1][-1] == -math.inf
    assert FM.log_clamp_bounds(0.0) == (-math.inf, 0.0)


def test_focal_modulation_is_alpha_t_times_one_minus_p_t_to_gamma():
    y = torch.tensor([0.0, 1.0, 0.3, 1.0], dtype=torch.float64)
    p = torch.tensor([0.2, 0.9, 0.6, 0.01], dtype=torch.float64)
    miss = 1 - (y * p + (1 - y) * (1 - p))
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    got = FM.focal_modulation(torch.log(miss), y, alpha=0.25, gamma=2.0)
    torch.testing.assert_close(got, alpha_t * miss**2, rtol=1e-14, atol=0)
    torch.testing.assert_close(FM.focal_modulation(torch.log(miss), y, alpha=-1.0, gamma=0.5), miss**0.5,
                               rtol=1e-14, atol=0)
    torch.testing.assert_close(FM.focal_modulation(None, y, alpha=0.25, gamma=0.0), alpha_t, rtol=1e-15, atol=0)
    assert FM.focal_modulation(None, y, alpha=-1.0, gamma=0.0) is None


def test_regression_formulas():
    e = torch.tensor([-30.0, -2.0, -0.5, 0.0, 1e-4, 0.999, 1.0, 3.0, 1000.0], dtype=torch.float64)
    torch.testing.assert_close(FM.smae_of_error(e), e * torch.tanh(e / 2), rtol=1e-15, atol=0)
    import mpmath

    with mpmath.workdps(50):
        exact = torch.tensor([float(mpmath.log(mpmath.cosh(mpmath.mpf(float(x))))) for x in e], dtype=torch.float64)
    torch.testing.assert_close(FM.log_cosh_of_error(e), exact, rtol=1e-14, atol=0)
    assert FM.log_cosh_of_error(e)[3] == 0.0
    assert FM.log_cosh_of_error(e)[-1].item() == pytest.approx(1000.0 - math.log(2.0), rel=1e-15)
    assert (FM.log_cosh_of_error(torch.linspace(-1e-3, 1e-3, 101, dtype=torch.float32)) >= 0).all()
