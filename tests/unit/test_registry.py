"""The registry: names from the contract, metadata, factories and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import losslab

REQUIRED = [
    "cross_entropy", "m", "full_m", "l", "full_l", "binary_cross_entropy", "binary_m",
    "binary_full_m", "binary_l", "binary_full_l", "mse", "mae", "huber", "smooth_l1", "log_cosh",
    "smae", "parametric_m", "parabolic", "circle", "cosine",
]


def test_required_names_are_registered():
    names = {info.name for info in losslab.list_losses()}
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("name", REQUIRED)
def test_every_entry_builds_a_module_with_metadata(name):
    info = losslab.get_info(name)
    module = losslab.get_loss(name)
    assert isinstance(module, nn.Module)
    record = info.to_dict()
    json.dumps(record)  # plain data
    for key in ("name", "family", "task", "input", "target", "formula", "reference", "convex", "hyperparameters"):
        assert key in record
    assert record["formula"] and record["reference"]


def test_extras_are_marked_and_non_convex_ones_say_so():
    for name in ("parabolic", "circle", "cosine"):
        info = losslab.get_info(name)
        assert info.extra and info.convex is False and "NOT convex" in info.notes
    assert losslab.get_info("parametric_m").extra
    assert {i.name for i in losslab.list_losses(include_extras=False)}.isdisjoint({"parabolic", "circle"})


def test_full_variants_are_configured():
    logits, target = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    full = losslab.get_loss("full_m")(logits, target)
    torch.testing.assert_close(full, losslab.functional.m_loss(logits, target, full=True))
    assert not torch.allclose(full, losslab.get_loss("m")(logits, target))


def test_family_filter_and_aliases():
    regression = losslab.list_losses("regression")
    assert {i.family for i in regression} == {"regression"}
    assert {"mse", "smae"} <= {i.name for i in regression}
    assert losslab.get_info("CE").name == "cross_entropy"
    assert losslab.get_info("smooth-absolute-error").name == "smae"


def test_unknown_names_and_arguments():
    with pytest.raises(ValueError, match=r"name: unknown loss 'ful_m' \(did you mean full_m.*registered losses: .*cross_entropy"):
        losslab.get_loss("ful_m")
    with pytest.raises(ValueError, match="family: expected one of"):
        losslab.list_losses("vision")
    with pytest.raises(TypeError, match="m: .*its keyword arguments: .*ignore_index"):
        losslab.get_loss("m", gamma=2.0)


def test_import_stays_light():
    code = (
        "import sys, losslab, losslab.functional, losslab.nn, losslab.analysis; "
        "heavy = [m for m in ('matplotlib', 'pandas', 'scipy', 'sklearn', 'statsmodels', 'datasets') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
