"""``--until-decided``: seeds in rounds until the paired intervals are narrow; crash-safe."""

from __future__ import annotations

import math
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from losslab.experiments.classification.protocols.sequential import (
    PrecisionTarget,
    extend_seeds,
    half_widths,
    next_seed_count,
    run_until_decided,
    seeds_for_width,
)


def _synthetic(sd_by_loss: dict[str, float], trained: list[tuple[str, int]]):
    """A comparison whose paired differences have known spread: each (loss, seed) is a pure
    function of the seed, so replaying a round gives the same numbers."""

    def run_seeds(seeds):
        result = {"cross_entropy": {}}
        for seed in seeds:
            rng = np.random.default_rng(1000 + seed)
            base = 0.8 + rng.normal(0, 0.02)
            if ("cross_entropy", seed) not in trained:
                trained.append(("cross_entropy", seed))
            result["cross_entropy"][seed] = base
            for loss, sd in sd_by_loss.items():
                result.setdefault(loss, {})[seed] = base + 0.003 + rng.normal(0, sd)
                if (loss, seed) not in trained:
                    trained.append((loss, seed))
        return result

    return run_seeds


def test_stops_at_the_target_width_with_known_variance():
    trained: list[tuple[str, int]] = []
    target = PrecisionTarget(target_width=0.01, max_seeds=40)
    outcome = run_until_decided(_synthetic({"m": 0.012, "l": 0.006}, trained), [0, 1, 2], target,
                                log=lambda _: None)
    assert outcome.stopped == "target"
    last = outcome.rounds[-1]
    assert all(width <= 0.01 for width in last.half_widths.values())
    # the round before did not meet it (otherwise it would have stopped there)
    assert any(width > 0.01 for width in outcome.rounds[-2].half_widths.values())
    # with sd 0.012 the t interval needs about (2.0 * 1.2)^2 ~ 8 seeds: far fewer than 40
    assert 6 <= len(outcome.seeds) <= 16
    assert len(trained) == len(set(trained)) == 3 * len(outcome.seeds)
    # the seeds grow round by round from the first ones, never re-using one
    for before, after in zip(outcome.rounds, outcome.rounds[1:]):
        assert after.seeds[: len(before.seeds)] == before.seeds
        assert len(before.seeds) < len(after.seeds) <= 2 * len(before.seeds)


def test_stops_at_max_seeds_when_noise_is_high():
    target = PrecisionTarget(target_width=0.01, max_seeds=9)
    outcome = run_until_decided(_synthetic({"m": 0.08}, []), [0, 1, 2], target, log=lambda _: None)
    assert outcome.stopped == "max_seeds"
    assert outcome.seeds == list(range(9))
    assert outcome.rounds[-1].half_widths["m"] > 0.01


def test_the_rule_never_reads_the_mean_difference():
    """Shifting one loss's scores by a constant changes nothing about the rounds."""
    def shifted(run_seeds, shift):
        def run(seeds):
            result = run_seeds(seeds)
            result["m"] = {s: v + shift for s, v in result["m"].items()}
            return result
        return run

    target = PrecisionTarget(target_width=0.008, max_seeds=30)
    plain = run_until_decided(_synthetic({"m": 0.01}, []), [0, 1, 2], target, log=lambda _: None)
    moved = run_until_decided(shifted(_synthetic({"m": 0.01}, []), 0.05), [0, 1, 2], target,
                              log=lambda _: None)
    assert [r.seeds for r in plain.rounds] == [r.seeds for r in moved.rounds]


def test_round_sizes_follow_the_t_interval():
    sd = 0.012
    n = seeds_for_width(sd, 0.01, limit=100)
    from scipy import stats

    assert stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= 0.01
    assert stats.t.ppf(0.975, n - 2) * sd / math.sqrt(n - 1) > 0.01
    accuracy = {"cross_entropy": {0: 0.8, 1: 0.8, 2: 0.8}, "m": {0: 0.80, 1: 0.83, 2: 0.77}}
    assert next_seed_count(accuracy, [0, 1, 2], PrecisionTarget(max_seeds=20)) == 6  # capped at 2n
    assert next_seed_count(accuracy, [0, 1, 2], PrecisionTarget(max_seeds=5)) == 5
    assert extend_seeds([4, 0, 1], 6) == [4, 0, 1, 5, 6, 7]
    widths = half_widths(accuracy, [0, 1, 2], "cross_entropy")
    assert widths["m"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.03 / math.sqrt(3))


def test_bad_targets_are_named():
    with pytest.raises(ValueError, match="target_width"):
        PrecisionTarget(target_width=0)
    with pytest.raises(ValueError, match="max_seeds"):
        PrecisionTarget(max_seeds=1)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losslab.cli", "compare", *args]


def _runs(db) -> list[tuple[str, int, str, int]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT r.loss, r.seed, r.status, COUNT(e.epoch) FROM runs r LEFT JOIN epochs e "
            "ON e.run_id = r.run_id WHERE r.stage = 'test' GROUP BY r.run_id").fetchall()


def _finished_at(db) -> dict[tuple[str, int], str]:
    with sqlite3.connect(db) as connection:
        return {(loss, seed): stamp for loss, seed, stamp in connection.execute(
            "SELECT loss, seed, finished_utc FROM runs WHERE status = 'finished'")}


@pytest.mark.slow
def test_sigkill_mid_round_resumes_without_training_a_seed_twice(tmp_path):
    db = tmp_path / "rounds.sqlite"
    arguments = ["--task", "digits-mlp", "--losses", "cross_entropy,m", "--seeds", "2",
                 "--epochs", "4", "--max-train", "300", "--max-test", "150", "--threads", "1",
                 "--until-decided", "--target-width", "0.05", "--max-seeds", "6", "--no-progress",
                 "--db", str(db)]
    process = subprocess.Popen(_cli(*arguments), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    killed_in_round_two = False
    while time.monotonic() < deadline and process.poll() is None:
        if db.exists():
            try:
                rows = _runs(db)
            except sqlite3.OperationalError:
                rows = []
            # a seed of the second round has recorded an epoch but not all of them
            if any(seed >= 2 and 0 < epochs < 4 for _, seed, _, epochs in rows):
                process.send_signal(signal.SIGKILL)
                killed_in_round_two = True
                break
        time.sleep(0.005)
    process.wait(timeout=30)
    assert killed_in_round_two, f"never caught round two mid-run: {process.stderr.read()!r}"
    before = _finished_at(db)
    assert (("cross_entropy", 0) in before and ("m", 1) in before)  # round one was done
    rerun = subprocess.run(_cli(*arguments), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    after = _finished_at(db)
    for key, stamp in before.items():  # finished before the kill: never trained again
        assert after[key] == stamp
    rows = _runs(db)
    keys = [(loss, seed) for loss, seed, _, _ in rows]
    assert len(keys) == len(set(keys))  # one run per (loss, seed)
    assert all(status == "finished" and epochs == 4 for _, _, status, epochs in rows)
    seeds = sorted({seed for _, seed in keys})
    assert seeds == list(range(len(seeds))) and 3 <= len(seeds) <= 6
    assert "seeds per round 2 → " in rerun.stdout


def test_cli_names_bad_precision_options(tmp_path):
    db = str(tmp_path / "x.sqlite")
    zero = subprocess.run(_cli("--task", "digits-mlp", "--until-decided", "--target-width", "0",
                               "--db", db), capture_output=True, text=True, timeout=120)
    assert zero.returncode != 0 and "--target-width: expected a positive number of points, got 0.0" in zero.stderr
    many = subprocess.run(_cli("--task", "digits-mlp", "--until-decided", "--seeds", "30",
                               "--max-seeds", "20", "--db", db), capture_output=True, text=True, timeout=120)
    assert many.returncode != 0 and "--seeds 30 is more than --max-seeds 20" in many.stderr
    low = subprocess.run(_cli("--task", "digits-mlp", "--until-decided", "--max-seeds", "1",
                              "--db", db), capture_output=True, text=True, timeout=120)
    assert low.returncode != 0 and "--max-seeds: expected an integer of at least 2, got 1" in low.stderr
