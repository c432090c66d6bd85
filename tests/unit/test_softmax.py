"""losslab.functional._softmax: the narrow-row softmax equals torch's, in value and gradient."""

from __future__ import annotations

import pytest
import torch

from losslab.functional import _softmax


@pytest.mark.parametrize("classes", [1, 2, 10, 15, 16, 40])
def test_softmax_and_log_softmax_match_torch(classes):
    generator = torch.Generator().manual_seed(classes)
    z = (torch.randn(37, classes, generator=generator, dtype=torch.float64) * 5).requires_grad_()
    upstream = torch.randn(37, classes, generator=generator, dtype=torch.float64)
    for ours, theirs in ((_softmax.softmax, lambda t: torch.softmax(t, 1)),
                         (_softmax.log_softmax, lambda t: torch.log_softmax(t, 1))):
        got = ours(z)
        expected = theirs(z)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-300)
        (grad,) = torch.autograd.grad(got, z, upstream)
        (expected_grad,) = torch.autograd.grad(expected, z, upstream)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-14)


def test_saturated_rows_stay_finite_and_out_is_written():
    z = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3.0, 3.0, 3.0]])
    out = torch.empty_like(z)
    result = _softmax.softmax(z, out=out)
    assert result.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, torch.softmax(z, 1))
    torch.testing.assert_close(_softmax.log_softmax(z), torch.log_softmax(z, 1))
    # the narrow path is taken for contiguous 2-D CPU rows under 16 classes only
    assert _softmax._narrow_rows(z) and not _softmax._narrow_rows(z.t()) and not _softmax._narrow_rows(z[None])
