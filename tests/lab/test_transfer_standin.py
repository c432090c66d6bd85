"""The transfer stand-in of Table 3: a body pretrained once on Fashion-MNIST, cached by checksum,
fine-tuned on the MNIST 5k subset; it must beat the same model from random initialisation.

The pretrainings here are tiny (2,000 or 10,000 Fashion-MNIST images, one epoch) so the file
runs in about a minute; the registered task pretrains on all 60k images.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, replace

import pytest
import torch

from losslab.experiments.classification import planned_task
from losslab.experiments.classification.planning.tasks import get_task
from losslab.experiments.classification.planning.transfer import (
    PRETRAINING_VERSION,
    PretrainedCNN,
    PretrainSettings,
    architecture,
    pretrained_body,
    random_init_twin,
    transfer_line,
    weights_checksum,
)
from losslab.experiments.classification.reporting.transfer_check import transfer_check

TINY = PretrainSettings(max_train=2000, max_test=1000, epochs=1, batch_size=64, seed=0)
ARCH = architecture(get_task("mnist-finetune").model_options)


def test_the_cache_is_reused_and_a_tampered_or_corrupt_file_is_rebuilt(tmp_path):
    first = pretrained_body(TINY, ARCH, cache_dir=tmp_path)
    assert first.built and first.path.is_file() and first.path.parent == tmp_path
    assert first.record["train_images"] == 2000 and first.record["settings"] == asdict(TINY)
    assert 0.3 < first.record["test_accuracy"] <= 1.0  # it learned something on Fashion-MNIST
    written = first.path.stat().st_mtime_ns
    second = pretrained_body(TINY, ARCH, cache_dir=tmp_path)
    assert not second.built and second.path.stat().st_mtime_ns == written
    assert second.weights_sha256 == first.weights_sha256 and second.key == first.key

    # One weight changed, the file otherwise valid: the checksum no longer matches.
    stored = torch.load(first.path, weights_only=True)
    name = next(k for k, v in stored["body"].items() if v.is_floating_point())
    stored["body"][name] = stored["body"][name] + 1.0
    torch.save(stored, first.path)
    rebuilt = pretrained_body(TINY, ARCH, cache_dir=tmp_path)
    assert rebuilt.built and rebuilt.weights_sha256 == first.weights_sha256  # seeded: same weights
    reloaded = torch.load(rebuilt.path, weights_only=True)
    assert weights_checksum(reloaded["body"]) == first.weights_sha256

    # Bytes that are not a torch file at all.
    first.path.write_bytes(b"not a checkpoint")
    assert pretrained_body(TINY, ARCH, cache_dir=tmp_path).built

    # A file whose record names another key (copied from another setting).
    stored = torch.load(first.path, weights_only=True)
    stored["record"]["key"] = "0" * 64
    torch.save(stored, first.path)
    assert pretrained_body(TINY, ARCH, cache_dir=tmp_path).built

    # The key covers the seed and the architecture: other settings, another file.
    other_seed = pretrained_body(replace(TINY, seed=1), ARCH, cache_dir=tmp_path)
    assert other_seed.key != first.key and other_seed.path != first.path
    assert other_seed.weights_sha256 != first.weights_sha256


def test_the_factory_loads_the_body_and_the_seed_draws_the_head(tmp_path):
    body = pretrained_body(TINY, ARCH, cache_dir=tmp_path)
    factory = PretrainedCNN(str(body.path), body.key, body.weights_sha256, ARCH, 1, 10, 28)
    factory = pickle.loads(pickle.dumps(factory))  # workers receive it pickled
    torch.manual_seed(0)
    first = factory()
    torch.manual_seed(1)
    second = factory()
    stored = torch.load(body.path, weights_only=True)["body"]
    # The convolutional blocks are the body, identical whatever the seed.
    assert set(stored) == {n for n in first.state_dict() if n.startswith("features.")}
    for name, tensor in stored.items():
        assert torch.equal(first.state_dict()[name], tensor)
        assert torch.equal(second.state_dict()[name], tensor)
    heads = [model.classifier[-1].weight for model in (first, second)]
    assert not torch.equal(*heads)


def test_bad_pretraining_settings_are_named():
    with pytest.raises(ValueError, match="pretrained: unknown setting.s. epoch; valid: dataset"):
        PretrainSettings.from_options({"epoch": 1})
    with pytest.raises(ValueError, match="pretrained: epochs must be a positive integer, got 0"):
        PretrainSettings.from_options({"epochs": 0})
    with pytest.raises(ValueError, match="pretrained: lr must be a positive number, got -1"):
        PretrainSettings.from_options({"lr": -1})
    with pytest.raises(ValueError, match="pretrained: dataset must be an image data set"):
        pretrained_body(replace(TINY, dataset="rotten-tomatoes"), ARCH)


def test_the_pretrained_body_beats_random_initialisation(tmp_path):
    pretraining = {**asdict(TINY), "max_train": 10000}
    # 500 fine-tuning images, 3 epochs at the task's small rate (3e-4): a budget at which the
    # pretrained convolutions are worth several points.
    planned = planned_task("mnist-finetune", overrides={"epochs": 3, "max_train": 500,
                                                        "max_test": 500},
                           model_options={"pretrained": pretraining})
    # The pretraining is part of the runs' identity; the twin is the same model without it.
    config = planned.config("cross_entropy")["data"]
    assert config["model_options"]["pretrained"]["max_train"] == 10000
    assert config["pretraining_version"] == PRETRAINING_VERSION
    twin = random_init_twin(planned)
    assert "pretrained" not in twin.source.model_options and twin.settings == planned.settings
    assert "pretraining_version" not in twin.config("cross_entropy")["data"]
    record = transfer_check(planned, seeds=[0, 1, 2], db=tmp_path / "t.sqlite", workers=1,
                            threads=1, log=lambda _: None)
    assert record["seeds"] == [0, 1, 2]
    pretrained, scratch = record["pretrained_accuracy"], record["random_init_accuracy"]
    assert all(pretrained[s] > scratch[s] for s in (0, 1, 2)), record
    difference = sum(pretrained[s] - scratch[s] for s in (0, 1, 2)) / 3
    assert record["difference_points"] == pytest.approx(100 * difference, rel=1e-12)
    assert record["difference_points"] > 2.0
    assert record["ci_low_points"] < record["difference_points"] < record["ci_high_points"]
    assert record["pretraining"]["train_images"] == 10000
    line = transfer_line(record, record["pretraining"])
    assert f"{record['difference_points']:+.2f} points" in line and "10000 fashion-mnist images" in line


def test_table3_runs_the_transfer_stand_in_and_reports_the_check(tmp_path, monkeypatch):
    from losslab.experiments.classification import api
    from losslab.experiments.classification.reporting.section import (
        TABLES,
        StandIn,
        TableSpec,
        build_section,
    )
    from losslab.experiments.reproduce import ReproduceContext

    monkeypatch.setattr(api, "COMPARED_LOSSES", ("cross_entropy", "m"))  # two losses: a faster test

    # Table 3 is the transfer stand-in in every preset; the digits MLP from scratch is a second,
    # labelled Table 3 task of the standard preset.
    third = [spec for spec in TABLES if spec.number == 3]
    assert [spec.key for spec in third] == ["3", "3-from-scratch"]
    assert {third[0].stand_in(preset).task for preset in ("quick", "standard", "full")} == {"mnist-finetune"}
    assert [p for p in ("quick", "standard", "full") if third[1].runs_in(p)] == ["standard"]
    assert third[1].stand_in("standard").task == "digits-mlp"
    assert third[1].label == "3 (from scratch)"
    # The same tiny pretraining as above (cached), a tiny fine-tuning, two seeds.
    tiny = TableSpec(3, TABLES[1].paper_setting, TABLES[1].paper, differences="tiny transfer",
                     stand_ins={"quick": StandIn(
                         "mnist-finetune", {"epochs": 1, "max_train": 200, "max_test": 100},
                         model_options={"pretrained": {**asdict(TINY), "max_train": 10000}},
                         seeds=2)})
    context = ReproduceContext(preset="quick", out_dir=tmp_path, seed=0, log=lambda _: None,
                               options={"classification_workers": 1})
    overview, table = build_section(context, tables=(tiny,))
    check = table.data["transfer_check"]
    assert check["seeds"] == [0, 1] and check["pretraining"]["train_images"] == 10000
    # The check's pretrained arm is the table's own cross-entropy runs (fixed protocol).
    ours = table.data["fixed"]["ours"]["cross_entropy"]["summary"]["mean"]
    assert ours == pytest.approx(sum(check["pretrained_accuracy"].values()) / 2, rel=1e-12)
    assert "**Transfer check**" in table.markdown
    assert f"{check['difference_points']:+.2f} points" in table.markdown
    assert overview.data["tables"]["3"]["transfer_check"] is check
