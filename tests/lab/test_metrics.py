"""Per-epoch classification metrics against scikit-learn and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as sk

from losslab.experiments.classification.trial.metrics import (
    METRICS,
    MetricAccumulator,
    check_metric,
    classification_metrics,
)


def _case(seed: int = 0, n: int = 500, c: int = 6):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=generator) * 2.5
    target = torch.randint(0, c, (n,), generator=generator)
    target[: n // 3] = logits[: n // 3].argmax(dim=1)  # a model that is right a good part of the time
    return logits, target


def test_every_metric_matches_scikit_learn():
    logits, target = _case()
    result = classification_metrics(logits, target)
    p = torch.softmax(logits.double(), dim=1).numpy()
    y, pred = target.numpy(), p.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y, pred), rel=1e-12)
    assert result["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro"), rel=1e-12)
    assert result["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred), rel=1e-12)
    assert result["nll"] == pytest.approx(sk.log_loss(y, p, labels=range(6)), rel=1e-9)
    one_hot = np.eye(6)[y]
    assert result["brier"] == pytest.approx(float(((p - one_hot) ** 2).sum(axis=1).mean()), rel=1e-12)
    assert set(result) == set(METRICS)


def test_ece_equals_a_hand_computation_with_15_bins():
    logits, target = _case(1, n=300, c=4)
    p = torch.softmax(logits.double(), dim=1).numpy()
    confidence, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == target.numpy()).astype(float)
    ece = 0.0
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            ece += inside.sum() / len(p) * abs(correct[inside].mean() - confidence[inside].mean())
    assert classification_metrics(logits, target)["ece"] == pytest.approx(ece, rel=1e-10)
    # a tiny hand case: two samples, confidences 0.9 (right) and 0.6 (wrong), different bins
    two = torch.log(torch.tensor([[0.9, 0.1], [0.6, 0.4]]))
    assert classification_metrics(two, torch.tensor([0, 1]))["ece"] == pytest.approx(
        0.5 * abs(1 - 0.9) + 0.5 * abs(0 - 0.6))


def test_batches_add_up_to_the_whole_split():
    logits, target = _case(2)
    accumulator = MetricAccumulator(6)
    for start in range(0, 500, 64):
        accumulator.update(logits[start:start + 64], target[start:start + 64])
    whole = classification_metrics(logits, target)
    for name, value in accumulator.result().items():
        assert value == pytest.approx(whole[name], rel=1e-12)
    diagram = accumulator.reliability()
    assert sum(diagram["count"]) == 500


def test_f1_with_an_absent_class_follows_scikit_learn():
    logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]]))
    target = torch.tensor([0, 1, 1])  # class 2 neither present nor predicted
    result = classification_metrics(logits, target)
    assert result["macro_f1"] == pytest.approx(sk.f1_score([0, 1, 1], [0, 1, 0], average="macro"))
    assert result["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score([0, 1, 1], [0, 1, 0]))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="metric: expected one of accuracy"):
        check_metric("auc")
    with pytest.raises(ValueError, match="target: expected shape"):
        classification_metrics(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


def test_every_epoch_records_the_metrics_and_its_reliability_bins(tmp_path):
    from losslab.experiments.classification import compare
    from losslab.experiments.classification.storage import ResultsStore

    compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=1, epochs=2, max_train=200,
            max_test=90, db=tmp_path / "m.sqlite", progress=False, log=lambda _: None)
    store = ResultsStore(tmp_path / "m.sqlite")
    for run in store.runs():
        for epoch in store.epochs(run["run_id"]):
            bins = epoch["reliability"]
            count = np.asarray(bins["count"])
            assert count.sum() == 90
            # the bins reproduce the recorded accuracy and ECE exactly
            correct = count * np.asarray(bins["accuracy"])
            assert correct.sum() / 90 == pytest.approx(epoch["eval_accuracy"], abs=1e-12)
            gaps = np.abs(correct - count * np.asarray(bins["confidence"]))
            assert gaps.sum() / 90 == pytest.approx(epoch["eval_ece"], abs=1e-12)
            for name in ("eval_macro_f1", "eval_balanced_accuracy", "eval_brier"):
                assert 0.0 <= epoch[name] <= 2.0


def test_exports_round_trip_through_pandas_and_csv(tmp_path, cli_run):
    import pandas as pd

    from losslab.experiments.classification import compare
    from losslab.experiments.classification.storage import ResultsStore

    db = tmp_path / "x.sqlite"
    result = compare(task="digits-mlp", losses=["cross_entropy", "l"], seeds=2, epochs=2,
                     max_train=200, max_test=90, db=db, progress=False, log=lambda _: None)
    runs = result.to_pandas()
    curves = result.to_pandas("curves")
    assert len(runs) == 4 and len(curves) == 8
    store = ResultsStore(db)
    for run in store.runs():
        last = store.epochs(run["run_id"])[-1]
        row = runs[(runs["loss"] == run["loss"]) & (runs["seed"] == run["seed"])].iloc[0]
        assert row["final_eval_accuracy"] == last["eval_accuracy"]
        assert row["final_eval_ece"] == last["eval_ece"]
        assert row["config.training.lr"] == run["config"]["training"]["lr"]
    accuracy = result.final_accuracy()["digits-mlp"]
    assert {(r.loss, r.seed): r.final_eval_accuracy for r in runs.itertuples()} == {
        (loss, seed): value for loss, by_seed in accuracy.items() for seed, value in by_seed.items()}
    out = cli_run("report", "--db", str(db), "--out", str(tmp_path / "rep"), "--csv",
                  str(tmp_path / "csv"), "--metric", "ece")
    assert out.returncode == 0, out.stderr
    back = pd.read_csv(tmp_path / "csv" / "runs.csv")
    assert sorted(back["final_eval_accuracy"]) == pytest.approx(sorted(runs["final_eval_accuracy"]), rel=1e-15)
    assert len(pd.read_csv(tmp_path / "csv" / "curves.csv")) == 8
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "gives lower expected calibration error" in text or "no detectable difference" in text
    assert "Every metric" in text and (tmp_path / "rep" / "figures").exists()
    with pytest.raises(ValueError, match="kind: expected 'runs' or 'curves'"):
        result.to_pandas("epochs")


def test_curves_round_trip_through_tensorboard_and_mlflow(tmp_path, cli_run):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from losslab.experiments.classification.storage import ResultsStore

    db, board, tracking = tmp_path / "t.sqlite", tmp_path / "tb", tmp_path / "mlruns"
    arguments = ("compare", "--task", "digits-mlp", "--losses", "cross_entropy,full_m", "--seeds", "2",
                 "--epochs", "2", "--max-train", "200", "--max-test", "90", "--db", str(db),
                 "--tensorboard", str(board), "--mlflow", str(tracking))
    out = cli_run(*arguments)
    assert out.returncode == 0, out.stderr
    store = ResultsStore(db)
    runs = store.runs()
    for run in runs:
        events = EventAccumulator(str(board / "digits-mlp" / run["loss"] / f"seed-{run['seed']}"))
        events.Reload()
        epochs = store.epochs(run["run_id"])
        for name in ("eval_accuracy", "eval_ece", "train_loss"):
            points = events.Scalars(name)
            assert [p.step for p in points] == [1, 2]
            assert [p.value for p in points] == pytest.approx([e[name] for e in epochs], rel=1e-6)
    client = MlflowClient(tracking.resolve().as_uri())
    experiment = client.get_experiment_by_name("losslab")
    logged = client.search_runs([experiment.experiment_id])
    children = [r for r in logged if "losslab.run" in r.data.tags]
    parents = [r for r in logged if "losslab.comparison" in r.data.tags]
    assert len(children) == 4 and len(parents) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    for child in children:
        run = next(r for r in runs if r["loss"] == child.data.params["loss"]
                   and r["seed"] == int(child.data.params["seed"]))
        history = client.get_metric_history(child.info.run_id, "eval_accuracy")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (e["epoch"], e["eval_accuracy"]) for e in store.epochs(run["run_id"])]
        assert child.data.params["training.lr"] == "0.001"
    # exporting again duplicates nothing
    again = cli_run(*arguments)
    assert again.returncode == 0, again.stderr
    assert len(client.search_runs([experiment.experiment_id])) == 5
    assert len(list((board / "digits-mlp" / "full_m" / "seed-0").iterdir())) == 1


def test_verdicts_and_precision_can_read_another_metric(tmp_path):
    from losslab.experiments.classification import compare

    result = compare(task="digits-mlp", losses=["cross_entropy", "m"], seeds=2, epochs=2,
                     max_train=200, max_test=90, db=tmp_path / "e.sqlite", progress=False,
                     log=lambda _: None, metric="ece", until_decided=True, max_seeds=3,
                     target_width=0.01)
    outcome = result.precision["digits-mlp"]
    assert outcome.target.metric == "ece" and outcome.stopped == "max_seeds"
    ece = result.tasks[0].final_scores("ece")
    from losslab.experiments.classification.protocols.sequential import half_widths

    assert outcome.rounds[-1].half_widths == pytest.approx(
        half_widths(ece, outcome.seeds, "cross_entropy"))
    text = result.markdown()
    assert "expected calibration error" in text and "ece" not in text.split("|")[0]
    with pytest.raises(ValueError, match="metric: expected one of accuracy"):
        compare(task="digits-mlp", db=tmp_path / "x.sqlite", metric="auc", until_decided=True)
