"""Choosing a learning rate from several sweep seeds: plain numbers, then the stored sweep rows.

The rule (see losslab.experiments.classification.protocols.selection): a rate where a seed diverged or
fell more than 5 points below the rate's median is never chosen; among the rates within one
standard error of the best mean, the smallest spread wins, ties to the smaller rate.
"""

from __future__ import annotations

import math
import statistics

import pytest

from losslab.experiments.classification.protocols.selection import (
    FAR_BELOW_MEDIAN,
    choose_learning_rate,
    rate_record,
)


def test_a_rate_that_wins_on_one_seed_and_diverges_on_another_is_not_chosen():
    # 0.1 has the best score of all on seed 0, but seed 1 diverged there.
    choice = choose_learning_rate({0.01: [0.92, 0.91, 0.93], 0.1: [0.97, None, 0.95]})
    assert choice.lr == 0.01
    assert choice.rates[0.1].excluded == "diverged on seed 1"
    assert choice.candidates == (0.01,)


def test_a_rate_with_one_seed_far_below_the_others_is_not_chosen():
    # 0.0316 has the best mean (0.9583 against 0.93) only if its collapsed seed is ignored; it is
    # 0.19 below that rate's median 0.9444.
    scores = {0.01: [0.927, 0.931, 0.932], 0.0316: [0.944, 0.955, 0.75]}
    choice = choose_learning_rate(scores)
    assert choice.lr == 0.01
    reason = choice.rates[0.0316].excluded
    assert reason is not None and "seed 2 at 0.7500" in reason and "19.4 points below the median 0.9440" in reason
    # Just inside the 5-point margin the rate is kept (and wins by its mean).
    median = 0.95
    kept = choose_learning_rate({0.01: [0.90, 0.90, 0.90], 0.03: [0.95, 0.96, median - FAR_BELOW_MEDIAN + 1e-9]})
    assert kept.rates[0.03].excluded is None and kept.lr == 0.03


def test_on_a_small_validation_split_far_below_means_three_binomial_standard_errors():
    # On 60 samples one score at 0.8167 has a binomial sd of sqrt(0.8167 * 0.1833 / 60) = 5.0
    # points, so a seed 8.3 points below the median is noise there: margin 3 x 5.0 = 15 points.
    scores = {0.01: [44 / 60, 49 / 60, 52 / 60], 0.1: [39 / 60, 42 / 60, 39 / 60]}
    median = 49 / 60
    margin = 3 * math.sqrt(median * (1 - median) / 60)
    assert margin == pytest.approx(0.1500, abs=5e-4)
    small = choose_learning_rate(scores, validation_size=60)
    assert small.rates[0.01].excluded is None and small.lr == 0.01
    # Without the split's size only the fixed 5 points apply, and 0.01 is dropped.
    assert "8.3 points below" in choose_learning_rate(scores).rates[0.01].excluded
    # On 300 samples the binomial term (3 x 2.2 points) is below 5 points: 5 points apply.
    large = choose_learning_rate(scores, validation_size=300)
    assert large.rates[0.01].excluded is not None and large.lr == 0.1


def test_within_one_standard_error_the_steadier_rate_wins():
    steady = [0.930, 0.931, 0.929]
    noisy = [0.950, 0.920, 0.935]  # best mean 0.935, sd 0.015, SE 0.00866: 0.930 is within it
    # The steady rate is the larger one, so the smaller-rate tie rule alone would not pick it.
    choice = choose_learning_rate({0.003: noisy, 0.03: steady})
    se = statistics.stdev(noisy) / math.sqrt(3)
    assert choice.best_mean == pytest.approx(0.935, abs=1e-12)
    assert choice.within == pytest.approx(se, rel=1e-12)
    assert statistics.mean(steady) > 0.935 - se  # the premise: within noise
    assert choice.candidates == (0.003, 0.03) and choice.lr == 0.03
    # Beyond one standard error the better mean wins even though it is noisier.
    far = choose_learning_rate({0.003: noisy, 0.03: [0.900, 0.901, 0.899]})
    assert far.candidates == (0.003,) and far.lr == 0.003


def test_spreads_within_a_factor_of_two_tie_and_the_smaller_rate_wins():
    # 0.0316 has the best mean (0.945, SE 0.0040) and sd 0.007; 0.01 is within one SE (0.942)
    # with sd 0.010: less than twice 0.007, so a tie, and the smaller rate wins.
    within = choose_learning_rate({0.01: [0.932, 0.952, 0.942], 0.0316: [0.938, 0.952, 0.945]})
    assert within.candidates == (0.01, 0.0316)
    assert within.rates[0.0316].sd == pytest.approx(0.007) and within.rates[0.01].sd == pytest.approx(0.010)
    assert within.lr == 0.01
    # sd 0.020 is more than twice 0.007: the steadier, larger rate wins.
    beyond = choose_learning_rate({0.01: [0.922, 0.962, 0.942], 0.0316: [0.938, 0.952, 0.945]})
    assert beyond.candidates == (0.01, 0.0316) and beyond.lr == 0.0316
    assert choose_learning_rate({0.01: [0.922, 0.962, 0.942], 0.0316: [0.938, 0.952, 0.945]},
                                spread_tie_ratio=3.0).lr == 0.01


def test_ties_go_to_the_smaller_rate():
    # Same mean and the same spread (the scores of one are a permutation of the other's).
    choice = choose_learning_rate({0.01: [0.91, 0.93, 0.92], 0.001: [0.93, 0.92, 0.91]})
    assert choice.lr == 0.001
    # One sweep seed: the best score, ties to the smaller rate (the rule of a single seed).
    assert choose_learning_rate({0.1: [0.9], 0.01: [0.9], 0.001: [0.8]}).lr == 0.01
    assert choose_learning_rate({0.1: [0.91], 0.01: [0.9]}).lr == 0.1


def test_the_record_holds_every_seed_score_mean_spread_and_standard_error():
    scores = [0.9, 0.8, 0.95]
    record = rate_record(0.01, scores, seeds=[4, 5, 6])
    assert record.scores == (0.9, 0.8, 0.95) and record.seeds == (4, 5, 6)
    assert record.mean == pytest.approx(statistics.mean(scores), abs=1e-15)
    assert record.sd == pytest.approx(statistics.stdev(scores), abs=1e-15)
    assert record.se == pytest.approx(statistics.stdev(scores) / math.sqrt(3), abs=1e-15)
    assert record.median == 0.9
    data = choose_learning_rate({0.01: scores, 0.1: [0.5, 0.5, None]}, seeds=[4, 5, 6]).to_dict()
    assert data["rates"]["0.01"]["scores"] == {"4": 0.9, "5": 0.8, "6": 0.95}
    assert data["rates"]["0.1"]["scores"] == {"4": 0.5, "5": 0.5, "6": None}
    assert data["rates"]["0.1"]["excluded"] == "diverged on seed 6"


def test_when_every_rate_is_unstable_the_choice_says_so():
    choice = choose_learning_rate({0.01: [0.9, 0.9, 0.5], 0.1: [0.95, None, 0.9]})
    assert choice.lr == 0.01 and "unstable" in choice.fallback
    everything = choose_learning_rate({0.01: [None], 0.1: [None]})
    assert everything.lr == 0.01 and "diverged" in everything.fallback


@pytest.mark.parametrize(("scores", "kwargs", "pattern"), [
    ({}, {}, r"scores: expected at least one scored learning rate, got none"),
    ({0.1: [0.9, 0.9], 0.01: [0.9]}, {}, r"scores: expected the same number of seeds at every rate"),
    ({0.1: [1.5]}, {}, r"scores: expected accuracies in \[0, 1\] or None \(diverged\), got 1\.5 at lr 0\.1, seed 0"),
    ({0.1: [0.9, 0.8]}, {"seeds": [1]}, r"seeds: expected one seed per score \(2\), got 1"),
    ({0.1: [0.9]}, {"far_below": 0}, r"far_below: expected a positive accuracy difference, got 0"),
    ({0.1: [0.9]}, {"spread_tie_ratio": 0.5}, r"spread_tie_ratio: expected a number >= 1, got 0\.5"),
    ({0.1: [0.9]}, {"validation_size": 0}, r"validation_size: expected a positive number of samples, got 0"),
])
def test_bad_input_names_the_argument(scores, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        choose_learning_rate(scores, **kwargs)


# --- the rule over stored sweep rows ------------------------------------------------------


def test_the_stored_sweep_is_chosen_by_the_rule_and_records_every_seed(tmp_path):
    """Three sweep seeds of digits, then their last-epoch scores overwritten: the rate that
    wins on two seeds but collapses on the third is passed over for the steady one."""
    from losslab.experiments.classification import ResultsStore, planned_task
    from losslab.experiments.classification.protocols.tuning import (
        TuningSettings,
        derive_selection,
        run_tuned,
    )

    task = planned_task("digits-mlp", overrides={"epochs": 1, "max_train": 200, "max_test": 40})
    tuning = TuningSettings(lr_grid=(1e-3, 1e-2, 1e-1), sweep_epochs=1, val_fraction=0.3,
                            lr_extend_decades=0, sweep_seeds=3)
    db = tmp_path / "seeds.sqlite"
    run_tuned([task], ["cross_entropy"], [0], db=db, tuning=tuning, stages=("sweep",),
              progress=False, log=lambda _: None, threads=1)
    store = ResultsStore(db)
    runs = {(run["config"]["training"]["lr"], run["seed"]): run for run in store.runs(stage="sweep")}
    assert set(runs) == {(lr, seed) for lr in (1e-3, 1e-2, 1e-1) for seed in (0, 1, 2)}
    total = runs[(1e-3, 0)]["config"]["samples"]["eval"]["count"]
    assert total == 60
    correct = {1e-3: (40, 41, 42), 1e-2: (50, 51, 50), 1e-1: (58, 58, 40)}
    with store.transaction() as cursor:
        for lr, counts in correct.items():
            for seed, count in enumerate(counts):
                cursor.execute("UPDATE epochs SET eval_accuracy = ? WHERE run_id = ?",
                               (count / total, runs[(lr, seed)]["run_id"]))
    protocol = tuning.protocol(task)
    assert protocol["sweep_seeds"] == [0, 1, 2] and protocol["selection"]["far_below_median"] == 0.05
    selection = derive_selection(store, task.config(), protocol, "cross_entropy")
    assert selection.lr == 1e-2
    assert selection.scores == {1e-3: (123, 180), 1e-2: (151, 180), 1e-1: (156, 180)}
    record = selection.to_dict()
    assert record["rates"]["0.1"]["scores"] == {"0": 58 / 60, "1": 58 / 60, "2": 40 / 60}
    assert "seed 2 at 0.6667" in record["rates"]["0.1"]["excluded"]
    assert record["rates"]["0.01"]["mean"] == pytest.approx(151 / 180, abs=1e-15)
    assert record["rates"]["0.01"]["sd"] == pytest.approx(statistics.stdev([50 / 60, 51 / 60, 50 / 60]), abs=1e-15)
    # A protocol recorded before this rule (no "selection" entry, as main wrote it) keeps its
    # own: the most correct predictions summed over the seeds, here the collapsing 0.1.
    old = {key: value for key, value in protocol.items() if key != "selection"}
    assert derive_selection(store, task.config(), old, "cross_entropy").lr == 1e-1


def test_the_edge_rule_grows_the_grid_and_the_rule_chooses_over_every_seed(tmp_path):
    """Rates too small for a 3-epoch sweep (as in test_tuning's edge test), now on three sweep
    seeds: the grid grows a decade upwards, and the choice equals the rule applied by hand to
    every seed's recorded last-epoch score."""
    import json
    import sqlite3

    from losslab.experiments.classification import compare

    result = compare(task="digits-mlp", losses=["cross_entropy"], seeds=[0], db=tmp_path / "edge.sqlite",
                     epochs=1, max_train=300, max_test=100, protocol="tuned", lr_grid=[1e-3, 3e-3],
                     sweep_epochs=3, lr_extend_decades=1, sweep_seeds=3, progress=False,
                     log=lambda _: None, threads=1)
    selection = result.selections[("digits-mlp", "cross_entropy")]
    assert selection.added_rates == [9.487e-3, 0.03] and selection.extended == {"low": 0, "high": 1}
    with sqlite3.connect(tmp_path / "edge.sqlite") as connection:
        rows = connection.execute(
            "SELECT runs.config, runs.seed, epochs.eval_accuracy FROM runs JOIN epochs USING (run_id) "
            "WHERE runs.stage = 'sweep' AND epochs.epoch = 3").fetchall()
    by_rate: dict[float, dict[int, float]] = {}
    for config, seed, accuracy in rows:
        total = json.loads(config)["samples"]["eval"]["count"]
        by_rate.setdefault(json.loads(config)["training"]["lr"], {})[seed] = round(accuracy * total) / total
    assert sorted(by_rate) == [1e-3, 3e-3, 9.487e-3, 0.03] and all(len(s) == 3 for s in by_rate.values())
    by_hand = choose_learning_rate({lr: [seeds[s] for s in (0, 1, 2)] for lr, seeds in by_rate.items()})
    assert selection.lr == by_hand.lr
    assert {lr: record.scores for lr, record in selection.choice.rates.items()} == {
        lr: tuple(seeds[s] for s in (0, 1, 2)) for lr, seeds in by_rate.items()}
    tested = _tested_rates(tmp_path / "edge.sqlite")
    assert tested == [by_hand.lr]


def _tested_rates(db) -> list[float]:
    from losslab.experiments.classification import ResultsStore

    return [run["config"]["training"]["lr"] for run in ResultsStore(db).runs(stage="test")]
