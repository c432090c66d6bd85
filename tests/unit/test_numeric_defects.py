"""Numerics at the edges: each case at its stated inputs, against float64 references.

* the sigmoid focal loss's second derivative at extreme logits (float32 and float64), against
  a textbook float64 formula and optax;
* float16 / bfloat16 regression losses computed in float32 and returned in the input's dtype;
* the fused log-cosh exact at zero and never negative in half precision;
* M and L in float32 at logits of 1e4 to 65000 (reference and fused paths);
* the documented probability clamp equals the applied one, per dtype.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import losslab.functional as LF
from losslab._validation import effective_eps

HALF = (torch.float16, torch.bfloat16)


# --- sigmoid focal loss: Hessian at extreme logits ------------------------------------------------


def _textbook_focal(z: torch.Tensor, y: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """torchvision's formula in float64: ``alpha_t (1 - p_t)^gamma BCE`` with ``p = sigmoid(z)``."""
    p = torch.sigmoid(z)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    miss = y * (1 - p) + (1 - y) * p
    return ((y * alpha + (1 - y) * (1 - alpha)) * miss.pow(gamma) * bce).sum()


def _focal_hessian(z: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    return torch.autograd.functional.hessian(
        lambda x: LF.sigmoid_focal_loss(x, y, alpha=0.25, gamma=gamma, reduction="sum"), z
    )


EXTREME = {torch.float32: (89.0, 100.0, 1e4), torch.float64: (710.0, 800.0, 1e4)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_hessian_is_finite_at_extreme_logits(dtype, gamma):
    for magnitude in EXTREME[dtype]:
        # hard labels at both signs and a soft label (the branch that leaked NaN before)
        z = torch.tensor([magnitude, -magnitude, magnitude, -magnitude, magnitude, 3.0], dtype=dtype)
        y = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.3, 0.3], dtype=dtype)
        hessian = _focal_hessian(z, y, gamma)
        assert torch.isfinite(hessian).all(), (magnitude, hessian.diagonal())
        # elementwise loss: the Hessian is diagonal
        torch.testing.assert_close(hessian - torch.diag(hessian.diagonal()), torch.zeros_like(hessian))
        reference = torch.autograd.functional.hessian(
            lambda x, y=y: _textbook_focal(x, y.double(), 0.25, gamma), z.double()
        )
        finite = torch.isfinite(reference)
        torch.testing.assert_close(hessian.double()[finite], reference[finite], rtol=1e-5, atol=1e-30)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sigmoid_focal_hessian_moderate_logits_match_textbook(dtype):
    z = torch.linspace(-30, 30, 13, dtype=dtype)
    y = torch.tensor([0.0, 1.0, 0.3, 0.7, 1.0, 0.0, 0.5, 0.0, 1.0, 0.1, 0.9, 1.0, 0.0], dtype=dtype)
    hessian = _focal_hessian(z, y, 2.0).diagonal()
    reference = torch.autograd.functional.hessian(
        lambda x: _textbook_focal(x, y.double(), 0.25, 2.0), z.double()
    ).diagonal()
    # float32: torch's own second derivative of logsigmoid goes through 1 - sigmoid(z), so
    # entries far below the largest (0.03) carry absolute errors up to ~1e-6 (the textbook
    # formula and optax in float32 do the same); float64 resolves them.
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(hessian.double(), reference, **tolerance)


def test_sigmoid_focal_hessian_matches_optax():
    jax = pytest.importorskip("jax", reason="optax's focal loss runs on JAX")
    optax = pytest.importorskip("optax", reason="the peer implementation")
    z = [100.0, -100.0, 100.0, -100.0, 100.0, -100.0, 2.0, -0.5]
    y = [1.0, 0.0, 0.0, 1.0, 0.3, 0.7, 0.3, 1.0]
    with jax.enable_x64(True):
        import jax.numpy as jnp

        peer = jax.hessian(
            lambda x: optax.sigmoid_focal_loss(x, jnp.asarray(y, jnp.float64), alpha=0.25, gamma=2.0).sum()
        )(jnp.asarray(z, jnp.float64))
        peer = torch.from_numpy(jax.device_get(jnp.diagonal(peer)).copy())
    ours = _focal_hessian(torch.tensor(z, dtype=torch.float64), torch.tensor(y, dtype=torch.float64), 2.0)
    assert torch.isfinite(peer).all()
    torch.testing.assert_close(ours.diagonal(), peer, rtol=1e-9, atol=1e-30)


# --- regression losses in half precision ---------------------------------------------------------

REGRESSION = {
    "mse": (LF.mse_loss, lambda e: e.square()),
    "mae": (LF.l1_loss, lambda e: e.abs()),
    "huber": (LF.huber_loss, lambda e: torch.where(e.abs() <= 1, 0.5 * e.square(), e.abs() - 0.5)),
    "smooth_l1": (LF.smooth_l1_loss, lambda e: torch.where(e.abs() <= 1, 0.5 * e.square(), e.abs() - 0.5)),
    "log_cosh": (LF.log_cosh_loss, lambda e: e.abs() + F.softplus(-2 * e.abs()) - math.log(2)),
    "smae": (LF.smae_loss, lambda e: e * torch.tanh(e / 2)),
}


def test_smae_float16_at_the_range_edge():
    x = torch.tensor([65000.0], dtype=torch.float16, requires_grad=True)
    t = torch.tensor([-65000.0], dtype=torch.float16)
    for impl in ("auto", "reference"):
        x.grad = None
        loss = LF.smae_loss(x, t, impl=impl)
        loss.backward()
        assert loss.dtype == torch.float16
        # the error (130000) and the loss do not fit float16, but the gradient does: 1.0 in float64
        assert x.grad.dtype == torch.float16 and x.grad.item() == 1.0
    # a mean that fits the dtype is finite: (130000 + 0) / 2 = 65000
    x = torch.tensor([65000.0, 1.0], dtype=torch.float16, requires_grad=True)
    t = torch.tensor([-65000.0, 1.0], dtype=torch.float16)
    for impl in ("auto", "reference"):
        x.grad = None
        loss = LF.smae_loss(x, t, impl=impl)
        loss.backward()
        assert loss.dtype == torch.float16 and torch.isfinite(loss)
        assert loss.item() == float(torch.tensor(65000.0, dtype=torch.float16))
        torch.testing.assert_close(x.grad, torch.tensor([0.5, 0.0], dtype=torch.float16))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_half_precision_regression_computed_in_float32(name, dtype):
    function, formula = REGRESSION[name]
    generator = torch.Generator().manual_seed(0)
    # errors whose squares and sums pass float16's 65504 while every mean fits
    x = (torch.randn(64, generator=generator) * 150).to(dtype)
    t = (torch.randn(64, generator=generator) * 150).to(dtype)
    e64 = x.double() - t.double()
    for reduction in ("mean", "sum", "none"):
        xg = x.clone().requires_grad_(True)
        loss = function(xg, t, reduction=reduction)
        assert loss.dtype == dtype
        expected = formula(e64)
        expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
        # the float64 value rounded once to the dtype: finite wherever it fits the dtype (a
        # square or a sum past float16's 65504 is inf, as the true value cast would be)
        rounded = expected.to(dtype)
        assert torch.isfinite(loss[torch.isfinite(rounded)]).all()
        torch.testing.assert_close(loss.double(), rounded.double(), rtol=2 * torch.finfo(dtype).eps, atol=0)
        if reduction == "mean":
            loss.backward()
            x64 = x.double().requires_grad_(True)
            formula(x64 - t.double()).mean().backward()
            torch.testing.assert_close(xg.grad.double(), x64.grad.to(dtype).double(), rtol=2 * torch.finfo(dtype).eps,
                                       atol=2 * float(torch.finfo(dtype).tiny))


def test_float16_mean_square_fits_where_the_squares_do_not():
    x = torch.full((4,), 200.0, dtype=torch.float16)
    loss = LF.mse_loss(x, torch.zeros_like(x))
    assert loss.dtype == torch.float16 and loss.item() == 40000.0   # each square is 40000; the sum 160000


# --- log-cosh: exact at zero, never negative -------------------------------------------------------


@pytest.mark.parametrize("dtype", [*HALF, torch.float32, torch.float64])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_log_cosh_exact_at_zero_and_never_negative(dtype, impl):
    zeros = torch.zeros(6, dtype=dtype)
    for reduction in ("sum", "mean"):
        assert LF.log_cosh_loss(zeros, zeros, reduction=reduction, impl=impl).item() == 0.0
    # tiny to moderate errors, where |e| + softplus(-2|e|) - log 2 rounds below zero
    errors = torch.cat([torch.logspace(-30, 0.5, 4000, dtype=torch.float64), torch.linspace(0, 3, 3001, dtype=torch.float64)])
    errors = torch.cat([errors, -errors]).to(dtype)
    value = LF.log_cosh_loss(errors, torch.zeros_like(errors), reduction="none", impl=impl)
    assert (value >= 0).all()
    mpmath = pytest.importorskip("mpmath", reason="the arbitrary-precision reference (installed with torch)")
    with mpmath.workdps(100):    # log(1 + e^2/2) at e = 1e-30 needs 60 digits and then some
        reference = torch.tensor([float(mpmath.log(mpmath.cosh(mpmath.mpf(e)))) for e in errors.double().tolist()],
                                 dtype=torch.float64)
    rtol = 4 * torch.finfo(dtype).eps if dtype in HALF else 8 * torch.finfo(dtype).eps
    # below the smallest normal number of the compute dtype, e^2 / 2 is subnormal or 0
    atol = torch.finfo(torch.float32 if dtype in HALF else dtype).tiny
    torch.testing.assert_close(value.double(), reference.to(dtype).double(), rtol=rtol, atol=atol)


# --- M and L in float32 at huge logits -------------------------------------------------------------


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).norm() / b.norm())


@pytest.mark.parametrize("center", [1e4, -1e4, 65000.0, -65000.0])
@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("loss", ["m", "full_m", "l", "full_l"])
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
def test_m_and_l_float32_at_huge_logits(loss, impl, center, target_kind):
    function = LF.m_loss if loss.endswith("m") else LF.l_loss
    full = loss.startswith("full")
    generator = torch.Generator().manual_seed(1)
    # logits of magnitude `center` whose differences are of order 1 (nothing is clamped)
    z32 = (center + torch.randn(32, 5, generator=generator)).float()
    if target_kind == "indices":
        y32 = y64 = torch.randint(0, 5, (32,), generator=generator)
    else:
        y32 = torch.softmax(torch.randn(32, 5, generator=generator), 1)
        y64 = y32.double()
    x32 = z32.clone().requires_grad_(True)
    x64 = z32.double().requires_grad_(True)   # the float64 reference at the same (float32) logits
    value32 = function(x32, y32, full=full, impl=impl, reduction="sum")
    value64 = function(x64, y64, full=full, impl="reference", reduction="sum")
    value32.backward()
    value64.backward()
    assert _relative(value32.detach(), value64.detach()) <= 1e-6
    assert _relative(x32.grad, x64.grad) <= 1e-6


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_m_float32_at_huge_logits_against_closed_form(impl):
    # M with class indices is expm1(CE); CE from logits 65000 + d is the CE of d
    offsets = torch.tensor([[0.0, -1.5, 0.25], [2.0, 0.0, -3.0]], dtype=torch.float64)
    target = torch.tensor([1, 2])
    z = (65000.0 + offsets).float().requires_grad_(True)
    value = LF.m_loss(z, target, impl=impl, reduction="sum")
    expected = torch.expm1(F.cross_entropy(offsets, target, reduction="none")).sum()
    assert abs(value.item() - expected.item()) <= 1e-6 * expected.item()


# --- the documented clamp is the applied one --------------------------------------------------------


@pytest.mark.parametrize("dtype", [*HALF, torch.float32, torch.float64])
def test_documented_eps_is_applied(dtype):
    eps = 1e-7
    applied = effective_eps(eps, dtype)
    expected = max(eps, float(torch.finfo(dtype).eps)) if dtype in HALF else eps
    assert applied == expected
    # probabilities of exactly 0 and 1 hit both clamps: y (1/p - 1) at p = eps and
    # p / (1 - p) at p = 1 - eps, with the eps that effective_eps documents
    p = torch.tensor([0.0, 1.0], dtype=dtype)
    y = torch.tensor([1.0, 0.0], dtype=dtype)
    value = LF.binary_m_loss(p, y, full=True, from_logits=False, eps=eps, reduction="none")
    lower, upper = 1 / applied - 1, (1 - applied) / applied
    torch.testing.assert_close(value.double(), torch.tensor([lower, upper], dtype=torch.float64), rtol=1e-6, atol=0)
    # the same from saturated logits
    logits = torch.tensor([-1e4, 1e4], dtype=dtype)
    value = LF.binary_m_loss(logits, y, full=True, eps=eps, reduction="none")
    torch.testing.assert_close(value.double(), torch.tensor([lower, upper], dtype=torch.float64), rtol=1e-6, atol=0)
    # the multiclass form: a one-hot probability row at the wrong class
    probs = torch.tensor([[0.0, 1.0]], dtype=dtype)
    value = LF.m_loss(probs, torch.tensor([0]), full=True, from_logits=False, eps=eps, reduction="sum")
    torch.testing.assert_close(value.double(), torch.tensor(lower + upper, dtype=torch.float64), rtol=1e-6, atol=0)


def test_probability_clamp_gradient_is_zero_where_clamped_and_finite():
    p = torch.tensor([0.0, 1e-9, 0.3, 1 - 1e-9, 1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    LF.binary_m_loss(p, y, full=True, from_logits=False, reduction="sum").backward()
    assert torch.isfinite(p.grad).all()
    assert p.grad[[0, 1, 3, 4]].eq(0).all()
    torch.testing.assert_close(p.grad[2], torch.tensor(-1 / 0.3**2, dtype=torch.float64))
