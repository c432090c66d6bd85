"""Fixtures shared by the test modules, and the suite's layout.

``tests/unit``: the loss library (fast; ``make test-fast``). ``tests/lab``: the lab in-process
(comparisons, stores, reports). ``tests/integration``: subprocesses, SIGKILL, Ray clusters,
CUDA, the documentation build and Transformers, all marked ``slow``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


def pytest_collection_modifyitems(config, items):
    """Every test under tests/integration is ``slow`` (``-m "not slow"`` leaves them out)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.slow)


@dataclass
class CliOutcome:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_run(capsys):
    """Run ``losslab ARGS`` in this process (exit code, stdout, stderr); ``compare`` runs
    without progress bars."""
    from losslab.cli import main

    def run(*args: str) -> CliOutcome:
        capsys.readouterr()
        code = main([*args, "--no-progress"] if args and args[0] == "compare" else list(args))
        captured = capsys.readouterr()
        return CliOutcome(code, captured.out, captured.err)

    return run
