"""Conventions shared by every loss and the CLI's rough edges (issue 13): error messages,
integer target dtypes, empty batches, all-ignored targets, half precision, weight dtypes."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys

import pytest
import torch

from losslab.registry import get_info, get_loss, list_losses
from losslab.testing import example_inputs, example_loss

# --- registry and `losslab list` -----------------------------------------------------------


def test_get_loss_names_the_loss_not_its_class():
    with pytest.raises(TypeError) as caught:
        get_loss("l", gamma=2)
    message = str(caught.value)
    assert message.startswith("l: unexpected keyword argument 'gamma'")
    assert "MLoss" not in message and "__init__" not in message
    assert "its keyword arguments: " in message and "ignore_index" in message and "eps" in message
    with pytest.raises(TypeError, match=r"m: unexpected keyword argument 'ignore_indx' \(did you mean ignore_index\?\)"):
        get_loss("m", ignore_indx=3)


def test_extra_formulas_are_not_mangled():
    assert get_info("parametric_m").formula == "sum_c y_c (1/p_c^alpha - 1)"
    assert get_info("cosine").formula == "sum_c y_c cos(pi p_c / 2)"
    assert get_info("parabolic").formula == "sum_c y_c (1 - p_c^2)"
    for info in list_losses():
        assert "alp_c" not in info.formula and "p_ci" not in info.formula, info.name


def test_list_fits_the_terminal_and_json_keeps_the_formulas(cli_run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    out = cli_run("list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    text = " ".join(lines)
    assert "alp_cha" not in text and "p_ci" not in text
    import json

    records = {r["name"]: r for r in json.loads(cli_run("list", "--json").stdout)}
    assert records["parametric_m"]["formula"] == "sum_c y_c (1/p_c^alpha - 1)"


def test_text_table_wraps_only_the_named_columns():
    from losslab.cli._common import text_table

    table = text_table(("a", "b"), [("x", "word " * 20)], max_width=40, wrap=(1,))
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert " ".join(" ".join(line[3:].split()) for line in lines[2:]) == ("word " * 20).strip()


def test_closed_pipe_exits_quietly():
    # `losslab list | head`: the reader closes the pipe before losslab writes
    process = subprocess.Popen(
        [sys.executable, "-m", "losslab.cli", "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert process.returncode == 1


# --- class-index targets -------------------------------------------------------------------


def _tiny_call(name: str, *, dtype: torch.dtype = torch.float64):
    """The registered Module of ``name`` and valid tiny arguments for it (tensors detached)."""
    args, _ = example_inputs(name, seed=0, dtype=dtype, requires_grad=False)
    return example_loss(name), list(args)


_INDEX_KINDS = ("class_index_or_probabilities", "class_index", "segmentation", "embeddings+labels")
INDEX_LOSSES = [i.name for i in list_losses() if i.target_kind in _INDEX_KINDS]
PROBABILITY_OR_INDEX = [i.name for i in list_losses() if "soft_targets" in i.options] + ["dice"]


def test_the_index_losses_are_all_found():
    assert {"cross_entropy", "m", "full_m", "l", "full_l", "parametric_m", "parabolic", "circle", "cosine",
            "softmax_focal", "poly1", "multi_margin", "crammer_singer", "arcface", "dice",
            "batch_hard_triplet", "batch_all_triplet"} <= set(INDEX_LOSSES)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_every_integer_dtype_of_class_indices_is_accepted(name, dtype):
    module, args = _tiny_call(name)
    (position,) = [i for i, a in enumerate(args) if not a.is_floating_point()]
    expected = module(*args)                       # int64 indices
    args[position] = args[position].to(dtype)
    torch.testing.assert_close(module(*args), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_bool_class_indices_are_rejected_by_name(name):
    module, args = _tiny_call(name)
    (position,) = [i for i, a in enumerate(args) if not a.is_floating_point()]
    args[position] = args[position] > 0
    with pytest.raises(TypeError, match=r"(target|labels): expected an integer tensor of class indices.*got dtype torch.bool"):
        module(*args)


@pytest.mark.parametrize("name", PROBABILITY_OR_INDEX)
def test_floating_class_indices_are_named_as_such(name):
    logits = torch.randn(4, 3, 2) if name == "dice" else torch.randn(4, 3)
    target = torch.tensor([[0, 1], [2, 0], [1, 1], [2, 2]]) if name == "dice" else torch.tensor([0, 1, 2, 0])
    shape = "(4, 3, 2)" if name == "dice" else "(4, 3)"
    with pytest.raises(TypeError, match=r"target: got a floating tensor .*class indices must be an integer "
                       r"tensor .*probabilities need the input's shape " + re.escape(shape)):
        get_loss(name)(logits, target.float())


def test_dice_out_of_range_message_offers_no_phantom_ignore_index():
    logits, target = torch.randn(2, 3, 4, 4), torch.full((2, 4, 4), 5)
    with pytest.raises(ValueError) as caught:
        get_loss("dice")(logits, target)
    assert str(caught.value) == "target: expected class indices in [0, 2], got 5"
    with pytest.raises(ValueError, match=r"in \[0, 2\] \(or ignore_index=255\), got 5"):
        get_loss("dice", ignore_index=255)(logits, target)


# --- weight and embedding dtypes -----------------------------------------------------------

WEIGHTED = [(i.name, key) for i in list_losses() for key in ("weight", "pos_weight") if key in i.options]


def test_the_weighted_losses_are_all_found():
    names = {name for name, _ in WEIGHTED}
    assert {"cross_entropy", "m", "full_l", "softmax_focal", "poly1", "multi_margin", "dice",
            "binary_cross_entropy", "binary_m"} <= names
    assert len(WEIGHTED) >= 23


@pytest.mark.parametrize(("name", "key"), WEIGHTED)
def test_a_float64_weight_is_cast_to_the_input_dtype(name, key):
    module, args = _tiny_call(name, dtype=torch.float32)
    size = args[0].shape[-1] if get_info(name).family == "binary" else args[0].shape[1]
    weight = torch.rand(size, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) + 0.5
    expected = type(module)(**{**module.options(), key: weight.float()})(*args)
    value = type(module)(**{**module.options(), key: weight})(*args)
    assert value.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(value, expected, rtol=0, atol=0)


def test_cross_entropy_float64_weight_matches_torch():
    logits, target = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    value = get_loss("cross_entropy", weight=weight)(logits, target)
    torch.testing.assert_close(value, torch.nn.functional.cross_entropy(logits, target, weight=weight.float()))


@pytest.mark.parametrize("name", ["info_nce", "nt_xent", "multiple_negatives_ranking", "contrastive",
                                  "triplet_margin", "margin_ranking"])
def test_mixed_float_dtypes_of_two_inputs_are_promoted(name):
    module, args = _tiny_call(name, dtype=torch.float64)
    floats = [i for i, a in enumerate(args) if a.is_floating_point() and (name != "margin_ranking" or i < 2)]
    assert len(floats) >= 2
    expected = module(*args)                      # everything float64
    mixed = list(args)
    mixed[floats[0]] = args[floats[0]].float()
    value = module(*mixed)
    assert value.dtype == torch.float64
    # the first input lost its float64 digits; the rest is computed in float64
    torch.testing.assert_close(value, module(*[a.double() if a.is_floating_point() else a for a in mixed]),
                               rtol=0, atol=0)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["info_nce", "multiple_negatives_ranking"])
def test_mixed_dtype_negatives_are_promoted(name):
    generator = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(4, 6, generator=generator, dtype=torch.float64) for _ in range(3))
    value = get_loss(name)(a.float(), p, n)
    assert value.dtype == torch.float64
    torch.testing.assert_close(value, get_loss(name)(a.float().double(), p, n), rtol=0, atol=0)


# --- half precision ------------------------------------------------------------------------

# per-element loss about 3e4 for each regression loss: four of them sum past float16's 65504
_HALF_ERROR = {"mse": 173.0}


# every regression loss by default, and both implementations of those that have a fused kernel
_HALF_CASES = [(info.name, impl) for info in list_losses("regression")
               for impl in (None, "reference", "fused")
               if impl is None or "impl" in inspect.signature(info.functional).parameters]


@pytest.mark.parametrize(("name", "impl"), _HALF_CASES)
def test_float16_mean_is_accumulated_in_float32(name, impl):
    options = {} if impl is None else {"impl": impl}
    error = torch.tensor([1.0, 0.97, 1.03, 1.0]) * _HALF_ERROR.get(name, 3e4)
    input, target = error.half(), torch.zeros(4, dtype=torch.float16)
    function = get_info(name).functional       # the Modules take no impl; the functions do
    value = function(input, target, **options)
    expected = function(input.double(), target.double())   # the same float16 errors, in float64
    assert value.dtype == torch.float16 and torch.isfinite(value)
    torch.testing.assert_close(value.double(), expected, rtol=1e-3, atol=0)
    # "sum" does not fit float16: inf, as torch's own losses give
    assert torch.isinf(function(input, target, reduction="sum", **options))


@pytest.mark.parametrize("name", [i.name for i in list_losses("regression")])
def test_float16_gradient_of_the_mean_is_finite(name):
    error = (torch.tensor([1.0, 0.97, 1.03, 1.0]) * _HALF_ERROR.get(name, 3e4)).half().requires_grad_(True)
    get_loss(name)(error, torch.zeros(4, dtype=torch.float16)).backward()
    assert torch.isfinite(error.grad).all()


# --- empty batches -------------------------------------------------------------------------

ALL_LOSSES = [i.name for i in list_losses()]


def _empty_call(name: str, reduction: str):
    """The registered Module of ``name`` (with ``reduction``) and a batch of zero samples."""
    module = example_loss(name, reduction=reduction)
    if name == "ge2e":                              # zero speakers
        return module, [torch.randn(0, 3, 8, dtype=torch.float64, requires_grad=True)]
    args, _ = example_inputs(name, batch=0, seed=0, dtype=torch.float64)
    return module, list(args)


def test_empty_call_covers_every_loss():
    assert len(ALL_LOSSES) >= 40


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_empty_batch_mean_is_nan_sum_is_zero_none_is_empty(name):
    # torch's rule, for every loss: "mean" over no samples is NaN (0 / 0) with a zero
    # gradient, "sum" is 0 and "none" an empty tensor
    reductions = ("batchmean", "sum", "none") if name == "kl_div" else ("mean", "sum", "none")
    module, args = _empty_call(name, reductions[0])
    if name == "ge2e":
        # the documented exception: GE2E is defined over at least two speakers, whatever the batch
        with pytest.raises(ValueError, match=r"embeddings: expected at least 2 speakers in total, got shape \(0, 3, 8\)"):
            module(*args)
        return
    value = module(*args)
    assert value.shape == () and torch.isnan(value), value
    value.backward()
    for tensor in args:
        if tensor.requires_grad:
            assert tensor.grad is not None and tensor.grad.numel() == 0
    module, args = _empty_call(name, "sum")
    value = module(*args)
    assert value.shape == () and value.item() == 0.0
    module, args = _empty_call(name, "none")
    assert module(*args).numel() == 0


# --- every target ignored ------------------------------------------------------------------

IGNORING = [i.name for i in list_losses() if "ignore_index" in i.options and i.name != "dice"]


def test_the_ignoring_losses_are_all_found():
    assert {"cross_entropy", "m", "full_m", "l", "full_l", "softmax_focal", "poly1", "multi_margin",
            "crammer_singer", "parametric_m", "parabolic", "circle", "cosine"} <= set(IGNORING)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", IGNORING)
def test_every_target_ignored_gives_nan_mean_like_cross_entropy(name, weighted):
    # torch's rule: "mean" divides by the summed weight of the kept targets, 0 here, so NaN;
    # the gradient is 0 (not NaN), "sum" is 0 and "none" all zeros
    logits = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    target = torch.full((5,), -100)
    options = {"weight": torch.rand(4, dtype=torch.float64) + 0.5} if weighted else {}
    reference = torch.nn.functional.cross_entropy(logits, target, **options)
    assert torch.isnan(reference)
    value = get_loss(name, **options)(logits, target)
    assert value.shape == () and torch.isnan(value)
    value.backward()
    torch.testing.assert_close(logits.grad, torch.zeros_like(logits), rtol=0, atol=0)
    assert get_loss(name, reduction="sum", **options)(logits, target).item() == 0.0
    torch.testing.assert_close(get_loss(name, reduction="none", **options)(logits, target),
                               torch.zeros(5, dtype=torch.float64), rtol=0, atol=0)


@pytest.mark.parametrize("name", IGNORING)
def test_a_partly_ignored_batch_still_averages_the_kept_targets(name):
    logits = torch.randn(5, 4, dtype=torch.float64)
    target = torch.tensor([0, -100, 3, -100, 1])
    keep = target != -100
    value = get_loss(name)(logits, target)
    expected = get_loss(name, reduction="none")(logits[keep], target[keep]).mean()
    torch.testing.assert_close(value, expected)


def test_dice_with_every_position_ignored_averages_its_dice_terms():
    # dice's "mean" is over (sample, class) Dice terms, which exist even when every position
    # is ignored: each is 1 - smooth_nr / smooth_dr (0 by default), as in MONAI; not NaN
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    target = torch.full((2, 4, 4), 255)
    assert get_loss("dice", ignore_index=255)(logits, target).item() == 0.0
    value = get_loss("dice", ignore_index=255, smooth_nr=0.0, smooth_dr=1.0)(logits, target)
    assert value.item() == 1.0


# --- CSV columns with a few non-numeric cells ----------------------------------------------

_CSV = "a,b,c,label\n1.0,2,x,0\n2.0,3,y,1\n3.0,oops,z,0\n4.0,5,w,1\n5.0,6,v,0\n6.0,7,u,1\n"


def test_a_mostly_numeric_column_left_out_is_warned_about(tmp_path):
    from losslab.data import DataWarning, load_dataset

    path = tmp_path / "table.csv"
    path.write_text(_CSV)
    with pytest.warns(DataWarning) as caught:
        data = load_dataset("csv", path=path, label_column="label")
    assert data.meta["columns"] == ["a"]            # b is left out, c is text
    (warning,) = caught                             # one warning: b, not the text column c
    message = str(warning.message)
    assert "column 'b' has 1 non-numeric cell (first 'oops', data row 3, 1-based" in message
    assert "NOT used as a feature" in message


def test_a_named_feature_column_with_bad_cells_is_an_error(tmp_path):
    from losslab.data import load_dataset

    path = tmp_path / "table.csv"
    path.write_text(_CSV)
    with pytest.raises(ValueError, match=r"feature column 'b' is not numeric .*1 non-numeric cell\(s\), first 'oops'"):
        load_dataset("csv", path=path, label_column="label", feature_columns=["a", "b"])


def test_the_cli_prints_data_warnings_as_one_plain_line(cli_run, monkeypatch, tmp_path):
    import warnings

    from losslab.cli import list_cmd
    from losslab.data import DataWarning

    def run(args):
        warnings.warn("column 'b' has 1 non-numeric cell", DataWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(list_cmd, "run", run)
    out = cli_run("list")
    assert out.returncode == 0
    assert out.stderr.strip() == "losslab list: warning: column 'b' has 1 non-numeric cell"
