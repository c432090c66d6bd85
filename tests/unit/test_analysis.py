"""Loss curves, derivatives and the paper's strictness comparison."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.analysis import crossings, curve, probability_grid, strictness


def _bisect(f, lo, hi):
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (f(lo) > 0):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_m_stricter_than_bce_everywhere():
    s = strictness("m", "cross_entropy")
    assert s.stricter_everywhere
    assert s.stricter_intervals == [(0.0, 1.0)]
    assert s.lenient_intervals == []


def test_l_more_lenient_above_about_0117():
    s = strictness("l")
    # independent root of |dL/dp| = |dBCE/dp|: (1-p)/(p(2-p))^1.5 = 1/p
    root = _bisect(lambda p: (1 - p) / (p * (2 - p)) ** 1.5 - 1 / p, 0.01, 0.5)
    assert len(s.crossings) == 1
    assert s.crossings[0] == pytest.approx(root, abs=1e-9)
    assert round(root, 3) == 0.117
    assert s.lenient_intervals == [(pytest.approx(root, abs=1e-9), 1.0)]
    assert s.stricter_intervals == [(0.0, pytest.approx(root, abs=1e-9))]
    assert "more lenient" in s.summary()


def test_derivatives_match_closed_forms():
    p = probability_grid(101, margin=0.01)
    torch.testing.assert_close(curve("cross_entropy", p).derivative, -1 / p)
    torch.testing.assert_close(curve("m", p).derivative, -1 / p**2)
    torch.testing.assert_close(curve("l", p).derivative, -(1 - p) / (p * (2 - p)) ** 1.5)
    torch.testing.assert_close(curve("full_m", p, y=0.0).derivative, 1 / (1 - p) ** 2)
    torch.testing.assert_close(curve("m", p, y=0.0).value, torch.zeros_like(p))


def test_regression_curves():
    e = torch.linspace(-4, 4, 81, dtype=torch.float64)
    c = curve("smae", e)
    assert c.variable == "e"
    torch.testing.assert_close(c.value, e * torch.tanh(e / 2))
    torch.testing.assert_close(c.derivative, torch.tanh(e / 2) + e / 2 / torch.cosh(e / 2) ** 2)


def test_full_l_crossing_for_a_wrong_class():
    (cross,) = crossings("full_l", "cross_entropy", y=0.0)
    # by symmetry with the y=1 case: p -> 1 - p
    assert cross == pytest.approx(1 - strictness("l").crossings[0], abs=1e-9)


def test_errors():
    with pytest.raises(ValueError, match="strictness compares classification losses"):
        strictness("smae")
    with pytest.raises(ValueError, match="y: expected a target in"):
        curve("m", y=2.0)
    with pytest.raises(ValueError, match="points: expected at least 3"):
        probability_grid(2)
    assert math.isfinite(curve("circle").derivative[5].item())
