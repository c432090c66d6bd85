"""Workers never outlive the driver: SIGKILL of ``compare --workers 2`` leaves no worker.

The driver is a real CLI subprocess; its workers are found as its ``spawn_main`` children
through /proc. On Linux a worker dies with its parent through ``PR_SET_PDEATHSIG``; the
parent-pid watchdog is the portable path (both in
``losslab.experiments.classification.execution.backends.local``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGUMENTS = ["--task", "digits-mlp", "--losses", "cross_entropy,m", "--seeds", "3", "--epochs", "20",
             "--max-train", "400", "--max-test", "150", "--threads", "1", "--workers", "2",
             "--no-progress"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _workers_of(pid: int) -> list[int]:
    """The live ``spawn_main`` children of ``pid`` (multiprocessing's spawned workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in command and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped: only its exit status is left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finding worker pids needs Linux /proc")
def test_sigkill_of_the_driver_leaves_no_worker_alive(tmp_path):
    db = tmp_path / "orphans.sqlite"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, "-m", "losslab.cli", "compare", *ARGUMENTS, "--db", str(db)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: list[int] = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            workers = _workers_of(driver.pid)
            recorded = 0
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as connection:
                        recorded = connection.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
                except sqlite3.OperationalError:  # tables not created yet
                    pass
            if recorded >= 1 and len(workers) == 2:
                break
            time.sleep(0.05)
        assert driver.poll() is None, f"the grid ended before the kill: {driver.stderr.read()!r}"
        assert len(workers) == 2, f"expected 2 training workers, saw {workers}"
        os.kill(driver.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        driver.wait(timeout=30)
        while time.monotonic() - killed_at < 10 and any(_alive(pid) for pid in workers):
            time.sleep(0.05)
        survivors = [pid for pid in workers if _alive(pid)]
        elapsed = time.monotonic() - killed_at
        print(f"workers {workers} gone {elapsed:.2f} s after the driver's SIGKILL")
        assert not survivors, f"workers {survivors} still alive {elapsed:.1f} s after the driver died"
        # Nothing writes the database any more: its epoch count stays put.
        with sqlite3.connect(db, timeout=5) as connection:
            before = connection.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
        time.sleep(1.0)
        with sqlite3.connect(db, timeout=5) as connection:
            assert connection.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == before
    finally:
        for pid in [driver.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        driver.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="checking process states needs Linux /proc")
def test_the_portable_watchdog_alone_stops_a_worker_whose_parent_died():
    # A middle process starts a "worker" that arms only the watchdog (the parent-death signal
    # is Linux-only: the worker pretends to be elsewhere), then the middle process is killed.
    worker = ("import os, sys, threading\n"
              "from losslab.experiments.classification.execution.backends import local\n"
              "sys.platform = 'darwin'\n"
              "local.PARENT_CHECK_SECONDS = 0.1\n"
              "print(local.die_with_parent(os.getppid()), flush=True)\n"
              "threading.Event().wait(60)\n")
    middle = ("import subprocess, sys, threading\n"
              f"child = subprocess.Popen([sys.executable, '-c', {worker!r}], stdout=subprocess.PIPE, text=True)\n"
              "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
              "threading.Event().wait(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", middle], env=env, stdout=subprocess.PIPE, text=True)
    pid_text, how = parent.stdout.readline().strip().split(" ", 1)
    worker_pid = int(pid_text)
    try:
        assert how == "parent-pid watchdog"
        time.sleep(0.5)
        assert _alive(worker_pid)  # its parent lives: it keeps running
        parent.kill()
        parent.wait(timeout=30)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < 10 and _alive(worker_pid):
            time.sleep(0.05)
        assert not _alive(worker_pid), "the worker outlived its parent by 10 s"
    finally:
        for pid in (parent.pid, worker_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
