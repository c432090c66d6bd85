"""Devices, mixed precision and the Ray backend (issue 12).

Every test that starts Ray re-runs itself inside a private network namespace whose only
interface is the loopback (``unshare -n``, then ``ip link set lo up``): Ray's traffic never
leaves this machine, and a test that cannot create a namespace skips and says why. Ray
processes a test starts are stopped by their process ids.

All grids are tiny (digits, 200 training samples, 2 losses × 2 seeds, one torch thread per
run) so the whole file stays within a few minutes on two cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from losslab.experiments.classification import planned_task, run_grid
from losslab.experiments.classification.execution.runner import TrainingSettings

METRICS = ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_cross_entropy",
           "grad_mean", "grad_sd")
GRID = ["--task", "digits-mlp", "--losses", "cross_entropy,l", "--seeds", "2",
        "--max-train", "200", "--max-test", "80", "--threads", "1", "--no-progress"]
INSIDE = "LOSSLAB_TEST_PRIVATE_NETWORK"
CLUSTER_EPOCHS = 120
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(**extra: str) -> dict[str, str]:
    """This environment, with this checkout's sources first on PYTHONPATH (subprocesses and
    Ray workers import the same losslab as the test)."""
    paths = [SRC, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SRC]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "losslab.cli", "compare", *args]


def _results(db: Path) -> dict[tuple[str, str, int], list[tuple[int, tuple[float, ...]]]]:
    connection = sqlite3.connect(db)
    rows = connection.execute(
        f"SELECT r.task, r.loss, r.seed, e.epoch, {', '.join('e.' + m for m in METRICS)} "
        "FROM runs r JOIN epochs e USING (run_id) ORDER BY r.task, r.loss, r.seed, e.epoch"
    ).fetchall()
    connection.close()
    result: dict = {}
    for task, loss, seed, epoch, *metrics in rows:
        result.setdefault((task, loss, seed), []).append((epoch, tuple(metrics)))
    return result


def _all_epochs(db: Path) -> list[tuple]:
    """Every recorded epoch of every run (both stages, each learning rate), in a fixed order."""
    connection = sqlite3.connect(db)
    rows = connection.execute(
        f"SELECT r.task, r.loss, r.seed, r.stage, r.config_hash, r.status, e.epoch, "
        f"{', '.join('e.' + m for m in METRICS)} FROM runs r JOIN epochs e USING (run_id) "
        "ORDER BY r.task, r.loss, r.seed, r.stage, r.config_hash, e.epoch").fetchall()
    connection.close()
    return rows


def _runs(db: Path) -> list[dict]:
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute("SELECT * FROM runs ORDER BY run_id")]
    connection.close()
    return rows


def _ray_installed() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _ray_installed(), reason="Ray is not installed: pip install 'losslab[ray]'")


def _namespace_problem() -> str | None:
    """Why no private network namespace can be made here (None when one can)."""
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` to run Ray in a private network namespace (apt-get install util-linux iproute2)"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0:
        return (f"cannot create a private network namespace for Ray (unshare -n: "
                f"{probe.stderr.strip() or probe.returncode}); Ray tests need root or user namespaces")
    return None


def in_private_network(request: pytest.FixtureRequest, timeout: float = 1500) -> bool:
    """True inside the namespace (run the test body); outside, re-run this very test inside
    one, report its outcome, and return False."""
    if os.environ.get(INSIDE) == "1":
        return True
    problem = _namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
               sys.executable, "-m", "pytest", request.node.nodeid, "-q", "-rs", "-p", "no:cacheprovider"]
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(command, cwd=root, env=_env(**{INSIDE: "1"}), capture_output=True,
                            text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"inside the private network namespace the test failed:\n{output[-6000:]}")
    if " skipped" in output and " passed" not in output:
        reason = [line for line in output.splitlines() if line.startswith("SKIPPED")]
        pytest.skip(reason[0] if reason else "skipped inside the private network namespace")
    return False


# --- devices and precision ------------------------------------------------------------------


def test_default_settings_keep_their_config_and_new_fields_appear_only_when_set():
    before = {"epochs": 5, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "loss_options": {},
              "device": "cpu", "deterministic": True, "optimizer": "adam"}
    assert TrainingSettings().to_config() == before  # hashes of existing databases unchanged
    assert TrainingSettings(device="cuda:1", amp="bf16").to_config() == {
        **before, "device": "cuda", "amp": "bf16"}
    auto = TrainingSettings(device="auto").to_config()["device"]
    assert auto == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"device: expected one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"):
        TrainingSettings(device="gpu")
    with pytest.raises(ValueError, match=r"amp: expected one of bf16, fp16 or None, got 'fp8'"):
        TrainingSettings(amp="fp8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA error cannot occur")
def test_device_cuda_without_cuda_fails_before_any_run(tmp_path, cli_run):
    db = tmp_path / "cuda.sqlite"
    outcome = cli_run("compare", *GRID[:-1], "--epochs", "1", "--device", "cuda", "--db", str(db))
    assert outcome.returncode == 2
    assert "--device: 'cuda' needs CUDA" in outcome.stderr and "--device cpu" in outcome.stderr
    assert not db.exists()  # nothing registered, nothing trained
    bad = cli_run("compare", *GRID[:-1], "--epochs", "1", "--device", "gpu", "--db", str(db))
    assert bad.returncode == 2 and "--device: expected one of auto, cpu, cuda, cuda:N, mps, got 'gpu'" in bad.stderr


def test_amp_and_device_are_recorded(tmp_path):
    task = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 120, "max_test": 60,
                                                 "amp": "bf16", "device": "auto"})
    result = run_grid([task], ["cross_entropy", "full_m"], [0], db=tmp_path / "amp.sqlite",
                      threads=1, progress=False, log=lambda _: None)
    assert result.trained == 2 and not result.failed
    for run in _runs(tmp_path / "amp.sqlite"):
        config, environment = json.loads(run["config"]), json.loads(run["environment"])
        assert config["training"]["amp"] == "bf16"
        assert config["training"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
        assert environment["device"].startswith(config["training"]["device"])
    # The same grid in float32 is a different run (amp is part of the identity).
    plain = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 120, "max_test": 60})
    assert plain.config() != task.config()


CUDA_REASON = "needs a CUDA device (torch.cuda.is_available() is False on this machine)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_every_classification_loss_runs_on_cuda_like_on_the_cpu():
    from losslab.registry import get_loss, loss_names

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 10, (64,), generator=generator)
    for name in loss_names("classification"):
        results = []
        for device in ("cpu", "cuda"):
            x = logits.to(device).requires_grad_(True)
            value = get_loss(name)(x, targets.to(device))
            value.backward()
            results.append((value.detach().cpu(), x.grad.cpu()))
        torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-6, atol=1e-8, msg=name)
        torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_a_grid_trains_on_cuda(tmp_path, amp):
    task = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 200, "max_test": 80,
                                                 "device": "cuda", "amp": amp})
    result = run_grid([task], ["cross_entropy", "m"], [0], db=tmp_path / "gpu.sqlite",
                      progress=False, log=lambda _: None)
    assert result.trained == 2 and not result.failed
    assert all(json.loads(run["environment"])["device"].startswith("cuda:")
               for run in _runs(tmp_path / "gpu.sqlite"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
def test_bench_reports_its_ratios_on_a_gpu(tmp_path, cli_run):
    out = tmp_path / "bench.json"
    outcome = cli_run("bench", "--device", "cuda", "--losses", "paper", "--sizes", "tiny", "--repeats", "2",
                      "--no-end-to-end", "--quiet", "--json", str(out))
    assert outcome.returncode == 0, outcome.stderr
    result = json.loads(out.read_text())
    assert result["config"]["device"] == "cuda" and result["cases"]


# --- Ray: bad input that needs no cluster ---------------------------------------------------


def test_ray_not_installed_says_how_to_install(tmp_path, cli_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    outcome = cli_run("compare", *GRID[:-1], "--epochs", "1", "--backend", "ray",
                      "--db", str(tmp_path / "r.sqlite"))
    assert outcome.returncode == 2
    assert "pip install 'losslab[ray]'" in outcome.stderr
    assert not (tmp_path / "r.sqlite").exists()


@needs_ray
def test_unreachable_ray_address_fails_within_its_timeout_naming_it(tmp_path, cli_run):
    started = time.monotonic()
    outcome = cli_run("compare", *GRID[:-1], "--epochs", "1", "--backend", "ray",
                      "--ray-address", "127.0.0.1:1", "--db", str(tmp_path / "r.sqlite"))
    assert time.monotonic() - started < 30
    assert outcome.returncode == 2
    assert "--ray-address: no Ray cluster answered at 127.0.0.1:1 within 10 s" in outcome.stderr
    malformed = cli_run("compare", *GRID[:-1], "--backend", "ray", "--ray-address", "nowhere",
                        "--db", str(tmp_path / "r.sqlite"))
    assert malformed.returncode == 2 and "--ray-address: expected 'auto' or HOST:PORT, got 'nowhere'" in malformed.stderr
    local = cli_run("compare", *GRID[:-1], "--gpus-per-run", "1", "--db", str(tmp_path / "r.sqlite"))
    assert local.returncode == 2 and "only go with --backend ray" in local.stderr
    cpus = cli_run("compare", *GRID[:-1], "--backend", "ray", "--cpus-per-run", "0",
                   "--db", str(tmp_path / "r.sqlite"))
    assert cpus.returncode == 2 and "--cpus-per-run: expected a positive number, got 0.0" in cpus.stderr


# --- Ray on this machine ----------------------------------------------------------------------


@needs_ray
def test_local_ray_equals_the_local_backend_and_checks_resources_first(tmp_path, request, cli_run):
    if not in_private_network(request):
        return
    import ray

    # Without an address, `losslab compare --backend ray` starts Ray here and stops it after.
    ray_db = tmp_path / "ray.sqlite"
    done = subprocess.run(_cli(*GRID, "--epochs", "2", "--backend", "ray", "--db", str(ray_db)),
                          env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on a local Ray instance (1 CPU(s) per run) × 1 thread(s)" in done.stdout + done.stderr
    local_db = tmp_path / "local.sqlite"
    task = planned_task("digits-mlp", overrides={"epochs": 2, "max_train": 200, "max_test": 80})
    run_grid([task], ["cross_entropy", "l"], [0, 1], db=local_db, threads=1, progress=False,
             log=lambda _: None)
    assert _results(ray_db) == _results(local_db)  # bit-identical, epoch by epoch
    runs = _runs(ray_db)
    assert len(runs) == 4 and all(run["status"] == "finished" for run in runs)
    assert {json.loads(run["config"])["training"]["device"] for run in runs} == {"cpu"}
    assert all(json.loads(run["environment"])["backend"] == "ray" for run in runs)
    assert [run["config_hash"] for run in runs] == [run["config_hash"] for run in _runs(local_db)]

    # Bad resources fail before anything is registered (one Ray instance for these checks).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        db = tmp_path / "bad.sqlite"
        cases = [
            (["--cpus-per-run", "64"], "--cpus-per-run: 64 CPUs per run, but the largest node of "
                                       "this machine's Ray instance has 2; no run could ever start"),
            (["--gpus-per-run", "1"], "--gpus-per-run: 1 GPU(s) per run, but no node of this "
                                      "machine's Ray instance has a GPU"),
            (["--device", "cuda"], "--device: 'cuda' on the Ray backend needs gpus_per_run >= 1"),
            (["--ray-resource", "tpu=1"], "--ray-resource: 1 'tpu' per run, but no node"),
        ]
        for options, message in cases:
            outcome = cli_run("compare", *GRID[:-1], "--epochs", "1", "--backend", "ray", *options,
                              "--db", str(db))
            assert outcome.returncode == 2, (options, outcome.stderr)
            assert message in outcome.stderr, (options, outcome.stderr)
        assert not db.exists() or not _runs(db)  # no run registered, none started
        # A rerun of the finished grid on Ray trains nothing and records nothing twice.
        again = cli_run("compare", *GRID[:-1], "--epochs", "2", "--backend", "ray", "--db", str(ray_db))
        assert again.returncode == 0, again.stderr
        assert _results(ray_db) == _results(local_db)
        # The tuned protocol's sweep with successive halving runs on Ray too, deciding the
        # same as on the local backend (a pure function of the recorded scores).
        on_ray = _asha(tmp_path / "asha-ray.sqlite", backend="ray")
        here = _asha(tmp_path / "asha-local.sqlite")
        assert _halving_records(tmp_path / "asha-ray.sqlite") == _halving_records(tmp_path / "asha-local.sqlite")
        assert on_ray.chosen_learning_rates() == here.chosen_learning_rates()
        assert _all_epochs(tmp_path / "asha-ray.sqlite") == _all_epochs(tmp_path / "asha-local.sqlite")
    finally:
        ray.shutdown()


# --- a real two-node cluster on this machine ------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first found through /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child in children.get(current, []):
            found.append(child)
            frontier.append(child)
    return found


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants, by pid."""
    for pid in [*_descendants(process.pid), process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)


@needs_ray
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finding Ray's process ids needs Linux /proc")
def test_two_node_cluster_every_run_once_and_a_killed_node_loses_nothing(tmp_path, request):
    if not in_private_network(request):
        return
    home = Path(tempfile.mkdtemp(prefix="llray", dir="/tmp"))  # short: Ray's socket paths
    env = _env(HOME=str(home), RAY_AUTH_MODE="token", RAY_health_check_period_ms="1000",
               RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="3",
               RAY_USAGE_STATS_ENABLED="0")
    ray_cli = str(Path(sys.executable).with_name("ray"))
    token = subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert token.returncode == 0, token.stderr
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--block",
              "--disable-usage-stats"]
    started: list[subprocess.Popen] = []
    try:
        head = subprocess.Popen([ray_cli, "start", "--head", "--port", "6379", "--include-dashboard",
                                 "false", "--temp-dir", str(home / "ray"),
                                 "--resources", json.dumps({"slot": 1}), *common],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(head)
        _wait_for_nodes(env, 1)
        second = subprocess.Popen([ray_cli, "start", "--address", "127.0.0.1:6379",
                                   "--resources", json.dumps({"slot": 1, "second_node": 1}), *common],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started.append(second)
        _wait_for_nodes(env, 2)

        db = tmp_path / "cluster.sqlite"
        # Enough epochs that a run on the second node is still training when that node is
        # killed and its death is noticed (health checks every second): on a quiet machine six
        # epochs of this grid finish in a few seconds, before the kill lands.
        epochs = CLUSTER_EPOCHS
        arguments = [*GRID, "--epochs", str(epochs), "--backend", "ray", "--ray-address", "127.0.0.1:6379",
                     "--ray-resource", "slot=1", "--db", str(db)]
        log = tmp_path / "driver.log"
        with log.open("w") as sink:
            driver = subprocess.Popen(_cli(*arguments), env=env, stdout=sink, stderr=subprocess.STDOUT)
        started.append(driver)
        # Wait until runs train on both nodes and one on the second node has recorded an
        # epoch, then kill every process of that node.
        deadline, victim_runs, nodes_seen = time.monotonic() + 240, [], set()
        while time.monotonic() < deadline and driver.poll() is None and not (
                victim_runs and len(nodes_seen) == 2):
            second_pids = set(_descendants(second.pid))
            with contextlib.suppress(sqlite3.OperationalError, FileNotFoundError):
                if db.exists():
                    connection = sqlite3.connect(db, timeout=1)
                    rows = connection.execute(
                        "SELECT run_id, environment, (SELECT COUNT(*) FROM epochs e WHERE "
                        "e.run_id = r.run_id) FROM runs r WHERE status = 'running'").fetchall()
                    connection.close()
                    nodes_seen |= {json.loads(environment)["ray_node_id"]
                                   for _, environment, _ in rows if environment
                                   and "ray_node_id" in json.loads(environment)}
                    victim_runs = [run_id for run_id, environment, epochs in rows
                                   if environment and epochs >= 1
                                   and json.loads(environment).get("pid") in second_pids]
            time.sleep(0.05)
        assert victim_runs, "no run was seen training on the second node before the grid ended"
        assert len(nodes_seen) == 2, f"runs trained on {len(nodes_seen)} node(s), expected both"
        _kill_tree(second)
        # The driver resubmits the lost run from its last recorded epoch, on the head. Once
        # that retry has recorded an epoch, kill the driver too: the next invocation resumes.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None \
                and "retrying from epoch" not in log.read_text():
            time.sleep(0.05)
        epochs_at_retry = sum(len(epochs) for epochs in _results(db).values())
        while time.monotonic() < deadline and driver.poll() is None \
                and sum(len(epochs) for epochs in _results(db).values()) <= epochs_at_retry:
            time.sleep(0.05)
        killed = driver.poll() is None
        _kill_tree(driver)
        output = log.read_text()
        print(output[-2500:])
        assert "its Ray worker or node died" in output and "retrying from epoch" in output, output[-3000:]
        assert killed or driver.returncode == 0, output[-3000:]
        before = _results(db)
        print(f"driver killed mid-grid: {killed}; epochs recorded: "
              f"{sum(len(recorded) for recorded in before.values())} of {4 * epochs}")

        # Re-running completes the grid (on the head alone): nothing lost, nothing twice.
        rerun = subprocess.run(_cli(*arguments), env=env, capture_output=True, text=True, timeout=900)
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
        after = _results(db)
        runs = _runs(db)
        assert len(runs) == 4 and all(run["status"] == "finished" for run in runs)
        assert all([epoch for epoch, _ in recorded] == list(range(1, epochs + 1))
                   for recorded in after.values())
        for key, recorded in before.items():
            assert after[key][: len(recorded)] == recorded

        local_db = tmp_path / "local.sqlite"
        task = planned_task("digits-mlp", overrides={"epochs": epochs, "max_train": 200, "max_test": 80})
        run_grid([task], ["cross_entropy", "l"], [0, 1], db=local_db, threads=1, progress=False,
                 log=lambda _: None)
        assert after == _results(local_db)
    finally:
        for process in reversed(started):
            _kill_tree(process)
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_nodes(env: dict[str, str], count: int, timeout: float = 120) -> None:
    """Until ``count`` nodes of the cluster at 127.0.0.1:6379 are alive."""
    probe = ("import ray, sys; ray.init(address='127.0.0.1:6379', log_to_driver=False, "
             "configure_logging=False); print(sum(n['Alive'] for n in ray.nodes())); ray.shutdown()")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                                text=True, timeout=120)
        if result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster did not reach {count} node(s): {result.stderr[-2000:]}")


# --- successive halving (--sweep-scheduler asha) ---------------------------------------------


def _asha(db: Path, **options):
    from losslab.experiments.classification import compare

    return compare(task="digits-mlp", losses=["cross_entropy", "l"], seeds=1, epochs=4, max_train=200,
                   max_test=80, protocol="tuned", sweep_scheduler="asha", lr_points=3,
                   lr_extend_decades=0, sweep_seeds=1, threads=1, progress=False, log=lambda _: None,
                   db=db, **options)


def _halving_records(db: Path) -> dict[str, dict]:
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT key, value FROM meta WHERE key LIKE 'sweep_scheduler:%'").fetchall()
    connection.close()
    return {key.rsplit(":", 1)[1]: json.loads(value) for key, value in rows}


def test_asha_sweep_stops_poor_rates_and_its_decisions_are_reproducible(tmp_path):
    first = _asha(tmp_path / "a.sqlite")
    records = _halving_records(tmp_path / "a.sqlite")
    assert set(records) == {"cross_entropy", "l"}
    for loss, record in records.items():
        # 3 rates, 2 sweep epochs: rungs at epochs 1 and 2; the best third goes on.
        assert record["rungs"] == [1, 2] and record["eta"] == 3
        assert len(record["stopped"]) == 2 and len(record["survivors"]) == 1
        assert (record["epochs_trained"], record["epochs_without"], record["epochs_saved"]) == (4, 6, 2)
        assert first.selections[("digits-mlp", loss)].lr == record["survivors"][0]
        assert set(first.selections[("digits-mlp", loss)].stopped) == {float(lr) for lr in record["stopped"]}
    sweep_epochs = sqlite3.connect(tmp_path / "a.sqlite").execute(
        "SELECT COUNT(*) FROM epochs JOIN runs USING (run_id) WHERE stage = 'sweep'").fetchone()[0]
    assert sweep_epochs == 8  # 2 losses × 4 epochs instead of 2 × 6
    second = _asha(tmp_path / "b.sqlite")  # same seed, fresh database: same decisions
    assert _halving_records(tmp_path / "b.sqlite") == records
    assert second.chosen_learning_rates() == first.chosen_learning_rates()
    again = _asha(tmp_path / "a.sqlite")  # re-run: nothing trained twice
    assert again.sweep.trained == 0 and again.grid.trained == 0
    assert "successive halving" in first.markdown() and "sweep epochs saved" in first.markdown()
